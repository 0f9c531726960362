"""A plain, readable training loop with a progress bar, a returned history, and a stop on divergence."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset
from .progress import progress

__all__ = ["DivergenceError", "History", "evaluate", "make_optimizer", "train"]


@dataclass
class History:
    """What happened during training: the loss of every step, and evaluations along the way."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats, e.g. for JSON or a DataFrame."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(**values)

    @property
    def final_test_accuracy(self) -> float:
        if not self.test_accuracy:
            raise ValueError("this history holds no evaluation (train with eval_every > 0)")
        return self.test_accuracy[-1]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite. ``.step`` says when; ``.history`` keeps everything up to then."""

    def __init__(self, step: int, loss: float, history: History, hint: str = "") -> None:
        self.step, self.loss, self.history = step, loss, history
        super().__init__(f"training diverged: the loss became {loss} at step {step}{hint}")


def make_optimizer(name: str, params: Any, lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``"sgd"`` (with heavy-ball momentum), ``"adam"`` or ``"adamw"``."""
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be positive and finite, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd', 'adam' or 'adamw'")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in evaluation mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(dim=1) == target).sum().item()
    model.train(was_training)
    return total_loss / len(y), correct / len(y)


def train(
    model: nn.Module,
    data: Dataset,
    *,
    lr: float,
    epochs: int,
    batch_size: int = 128,
    optimizer: str | Callable[[nn.Module], torch.optim.Optimizer] = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    eval_every: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    desc: str | None = "training",
    show_progress: bool = True,
    max_steps: int | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train ``model`` in place with minibatch cross-entropy; return its ``History``.

    Each epoch visits the training set once in a random order drawn from ``seed``.
    The test set is evaluated every ``eval_every`` steps (default: once per epoch)
    and at the end. ``optimizer`` is a name for :func:`make_optimizer` or a function
    ``model -> torch.optim.Optimizer``. A NaN or infinite loss stops training with
    a :class:`DivergenceError` that names the step and keeps the history so far.
    ``max_steps`` stops after that many updates (within the given epochs);
    ``on_epoch_end(epoch, model)`` is called after each full epoch (1, 2, ...),
    e.g. to keep snapshots.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    data = data.to(device)
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum=momentum, weight_decay=weight_decay) if isinstance(optimizer, str) else optimizer(model)
    n = len(data.y_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    if total < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    eval_every = eval_every or steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    history = History()
    started = time.perf_counter()
    model.train()
    step = 0
    with progress(total=total, desc=desc, disable=not show_progress) as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, batch_size):
                index = order[start : start + batch_size]
                loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
                value = loss.item()
                step += 1
                if not math.isfinite(value):
                    history.seconds = time.perf_counter() - started
                    hint = f" (lr={lr}); try a smaller learning rate" if isinstance(optimizer, str) else ""
                    raise DivergenceError(step, value, history, hint)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.step.append(step)
                history.train_loss.append(value)
                if step % eval_every == 0 or step == total:
                    test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
                    history.eval_step.append(step)
                    history.test_loss.append(test_loss)
                    history.test_accuracy.append(test_acc)
                    bar.set_postfix(loss=f"{value:.3f}", test_acc=f"{test_acc:.3f}", refresh=False)
                bar.update(1)
                if step == total:
                    break
            if on_epoch_end is not None and step == epoch * steps_per_epoch:
                on_epoch_end(epoch, model)
            if step == total:
                break
    history.seconds = time.perf_counter() - started
    return history
