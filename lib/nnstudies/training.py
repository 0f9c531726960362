"""The book's one training loop, :func:`fit`, and the classification training built on it.

Every experiment in the book is a *step function* — one update, returning the
training loss — run by :func:`fit`, which owns what all of them share: the progress
bar, the stop on a NaN or infinite loss, timing, evaluation every so many steps,
snapshots at chosen steps, and the returned :class:`History`. In a dry run
(``$NNSTUDIES_DRY_RUN=1``) every loop stops after two steps.

>>> step = classification_step(model, torch.optim.SGD(model.parameters(), lr=0.05), batches)  # doctest: +SKIP
>>> history = fit(step, steps=1000, evaluate=lambda: test_metrics(model, data))               # doctest: +SKIP
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset
from .progress import progress
from .scales import dry_run

__all__ = [
    "DRY_RUN_STEPS",
    "DivergenceError",
    "History",
    "Optimizer",
    "OptimizerSpec",
    "classification_step",
    "evaluate",
    "fit",
    "make_optimizer",
    "minibatches",
    "test_metrics",
    "train",
]

DRY_RUN_STEPS = 2


@dataclass
class History:
    """What happened during training: the loss of every step, and evaluations along the way."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_at: int | None = None  #: the step after which ``fit``'s ``stop`` ended the run early
    diverged_at: int | None = None  #: the step whose loss was not finite (``on_divergence="stop"``)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats, e.g. for JSON or a DataFrame."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(**values)

    def running_loss(self, step: int | None = None, window: int = 50) -> float:
        """The mean training loss of the ``window`` steps up to ``step`` (default: the last step);
        infinite when no step is in that window.
        """
        last = self.step[-1] if step is None and self.step else (step or 0)
        tail = [x for s, x in zip(self.step, self.train_loss) if last - window < s <= last]
        return sum(tail) / len(tail) if tail else math.inf

    def add_evaluation(self, step: int, values: Mapping[str, float]) -> None:
        """Keep the evaluation at ``step``: ``test_loss`` and ``test_accuracy`` in their fields,
        others in ``metrics``.
        """
        self.eval_step.append(step)
        for name, value in values.items():
            target = (
                getattr(self, name)
                if name in ("test_loss", "test_accuracy")
                else self.metrics.setdefault(name, [])
            )
            target.append(float(value))

    @property
    def final_test_accuracy(self) -> float:
        if not self.test_accuracy:
            raise ValueError("this history holds no evaluation (train with eval_every > 0)")
        return self.test_accuracy[-1]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite. ``.step`` says when; ``.history`` keeps everything up to
    then.
    """

    def __init__(self, step: int, loss: float, history: History, hint: str = "") -> None:
        self.step, self.loss, self.history, self.hint = step, loss, history, hint
        super().__init__(f"training diverged: the loss became {loss} at step {step}{hint}")

    def __reduce__(self) -> tuple[Any, ...]:  # intact across processes (an engine worker's error)
        return (type(self), (self.step, self.loss, self.history, self.hint))


class Optimizer(enum.Enum):
    """The optimizers a :class:`OptimizerSpec` names."""

    SGD = "sgd"  #: with heavy-ball momentum
    ADAM = "adam"
    ADAMW = "adamw"


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and its schedule: the one route by which a learning rate reaches an optimizer.

    ``warmup`` > 0: the learning rate rises linearly, ``lr · t / warmup`` at update t, then stays.
    """

    kind: Optimizer = Optimizer.SGD
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup: int = 0

    def make(self, params: Any) -> torch.optim.Optimizer:
        """The optimizer over ``params``."""
        return make_optimizer(
            self.kind.value, params, self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )

    def scheduler(
        self, optimizer: torch.optim.Optimizer
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The schedule, for :func:`fit` to step after each update (None: a constant rate)."""
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if not self.warmup:
            return None
        warmup = self.warmup
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: min(1.0, (e + 1) / warmup))


def make_optimizer(
    name: str, params: Any, lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
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
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096
) -> tuple[float, float]:
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


def fit(
    step: Callable[[int], float | torch.Tensor],
    *,
    steps: int,
    evaluate: Callable[[], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    snapshot_at: Iterable[int] = (),
    on_snapshot: Callable[[int], None] | None = None,
    desc: str | None = "training",
    show_progress: bool = True,
    hint: str = "",
    stop: Callable[[int, History], bool] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_divergence: Literal["raise", "stop"] = "raise",
) -> History:
    """Run ``step(t)`` for t = 1 … ``steps``; return the :class:`History`.

    ``step(t)`` makes one update and returns its training loss. ``evaluate()`` returns
    named numbers (``test_loss``, ``test_accuracy``, anything else); it runs every
    ``eval_every`` steps (default: only at the end) and after the last step.
    ``on_snapshot(t)`` runs after step ``t`` for each ``t`` in ``snapshot_at`` (``0``:
    before the first step).

    ``stop(t, history)``, asked after step ``t`` (and its snapshot), ends the run early when
    true: the last step is evaluated and ``history.stopped_at`` is ``t``. ``scheduler``, a
    torch learning-rate scheduler of the step's optimizer, is stepped after every update.
    A NaN or infinite loss raises a :class:`DivergenceError` naming the step, keeping the
    history so far, with ``hint``; with ``on_divergence="stop"`` the loop ends there instead
    and returns the history with ``diverged_at`` set. In a dry run, only the first two steps
    run.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    total = min(steps, DRY_RUN_STEPS) if dry_run() else steps
    marks = set(snapshot_at)
    if marks and on_snapshot is None:
        raise ValueError("snapshot_at needs on_snapshot, the function that keeps a snapshot")
    if any(not 0 <= t <= steps for t in marks):
        raise ValueError(f"snapshot steps must lie in 0..{steps}, got {sorted(marks)}")
    history = History()
    started = time.perf_counter()
    if 0 in marks and on_snapshot is not None:
        on_snapshot(0)
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
    with progress(total=total, desc=desc, disable=not show_progress) as bar:
        for t in range(1, total + 1):
            loss = step(t)
            value = float(loss.item() if isinstance(loss, torch.Tensor) else loss)
            if not math.isfinite(value):  # the history keeps every finite step
                history.seconds = time.perf_counter() - started
                if on_divergence == "stop":
                    history.diverged_at = t
                    return history
                raise DivergenceError(t, value, history, hint)
            if scheduler is not None:
                scheduler.step()
            history.step.append(t)
            history.train_loss.append(value)
            ending = t == total or (stop is not None and stop(t, history))
            if evaluate is not None and ((eval_every and t % eval_every == 0) or ending):
                values = evaluate()
                history.add_evaluation(t, values)
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
            if t in marks and on_snapshot is not None:
                on_snapshot(t)
            bar.update(1)
            if ending:
                history.stopped_at = t if t < total else None
                break
    history.seconds = time.perf_counter() - started
    return history


def minibatches(
    data: Dataset, batch_size: int, *, seed: int = 0, device: torch.device | str | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless minibatches of ``data``'s training set: each epoch a new random order drawn from
    ``seed``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x, y = (
        (data.x_train, data.y_train)
        if device is None
        else (data.x_train.to(device), data.y_train.to(device))
    )
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(y), generator=generator).to(x.device)
        for start in range(0, len(y), batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]


def classification_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
) -> Callable[[int], float]:
    """One update of ``model`` on the next minibatch: cross-entropy, backward, optimizer step;
    returns the loss.
    """

    def step(t: int) -> float:
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def test_metrics(model: nn.Module, data: Dataset) -> dict[str, float]:
    """``test_loss`` and ``test_accuracy`` of ``model`` on ``data``'s test set."""
    loss, accuracy = evaluate(model, data.x_test, data.y_test)
    return {"test_loss": loss, "test_accuracy": accuracy}


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
    snapshot_at: Iterable[int] = (),
    on_snapshot: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train ``model`` in place with minibatch cross-entropy through :func:`fit`; return its
    ``History``.

    Each epoch visits the training set once in a random order drawn from ``seed``.
    The test set is evaluated every ``eval_every`` steps (default: once per epoch)
    and at the end. ``optimizer`` is a name for :func:`make_optimizer` or a function
    ``model -> torch.optim.Optimizer``. ``max_steps`` stops after that many updates
    (within the given epochs); ``on_snapshot(t, model)`` runs after each update ``t``
    in ``snapshot_at`` (``0``: the initialisation), e.g. to keep copies.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    data = data.to(device)
    opt = (
        make_optimizer(
            optimizer, model.parameters(), lr, momentum=momentum, weight_decay=weight_decay
        )
        if isinstance(optimizer, str)
        else optimizer(model)
    )
    steps_per_epoch = math.ceil(len(data.y_train) / batch_size)
    total = (
        epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    )
    model.train()
    step = classification_step(model, opt, minibatches(data, batch_size, seed=seed))
    keep = (lambda t: on_snapshot(t, model)) if on_snapshot is not None else None
    hint = f" (lr={lr}); try a smaller learning rate" if isinstance(optimizer, str) else ""
    return fit(
        step,
        steps=total,
        evaluate=lambda: test_metrics(model, data),
        eval_every=eval_every or steps_per_epoch,
        snapshot_at=snapshot_at,
        on_snapshot=keep,
        desc=desc,
        show_progress=show_progress,
        hint=hint,
    )
