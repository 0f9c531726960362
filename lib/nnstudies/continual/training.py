"""Training with a method's penalty, task after task: the step, one task, a whole run, its result.

:func:`continual_step` is one update (task loss, the path accumulators, the penalty, Adam);
:func:`train_task` runs it through :func:`nnstudies.training.fit` with a fresh Adam;
:func:`run_continual` learns the tasks in order, measures each task's Ω and grows the
:class:`~nnstudies.continual.penalty.QuadraticPenalty`, and returns a :class:`ContinualResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..device import threads as threads_
from ..tasks.continual import Task, head_logits, task_accuracy
from ..training import History, Optimizer, OptimizerSpec, fit, minibatches
from .importances import Importances
from .methods import METHODS, Regulariser
from .path import PathAccumulator, minibatch_gradient
from .penalty import QuadraticPenalty

__all__ = ["ContinualResult", "continual_step", "pearson", "run_continual", "train_task"]


def continual_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    *,
    classes: tuple[int, ...] | None = None,
    penalty: QuadraticPenalty | None = None,
    accumulators: Sequence[PathAccumulator] = (),
    independent: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Callable[[int], float]:
    """One update on the next minibatch: task loss, path accumulators, penalty, optimizer step; returns the task loss.

    ``independent`` yields the other minibatches that SIU and SIB need (its own random stream).
    """

    def step(t: int) -> float:
        x, y = next(batches)
        loss = F.cross_entropy(head_logits(model(x), classes), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # p.grad = g_t, the gradient of the task loss alone
        other = (
            minibatch_gradient(model, *next(independent), classes=classes) if independent else None
        )
        for accumulator in accumulators:
            accumulator.before_step(independent=other)  # reads g_t and θ_t
        if penalty is not None:
            penalty(model).backward()  # p.grad += 2c Ω ⊙ (θ − θ_old)
        optimizer.step()
        for accumulator in accumulators:
            accumulator.after_step()  # e.g. SI: ω −= g_t ⊙ (θ_{t+1} − θ_t)
        return loss.item()

    return step


@dataclass
class ContinualResult:
    """What :func:`run_continual` returns.

    ``accuracy[i, j]``: test accuracy on task j after training task i, for j ≤ i (NaN
    for tasks not yet trained: nothing uses them, and measuring them cost as much as
    the rest); ``val_accuracy`` the same on the validation split (NaN when there is none); ``train_loss[k]``: the task loss at every step of task k.
    ``importances[name][k]``: Ω of task k alone (not summed) for the method and every
    tracked measure; ``seconds``: wall time.
    """

    accuracy: torch.Tensor
    val_accuracy: torch.Tensor
    train_loss: list[list[float]] = field(default_factory=list)
    importances: dict[str, list[Importances]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_tasks(self) -> int:
        return int(self.accuracy.shape[0])

    def average_accuracy(self, after: int | None = None, *, split: str = "test") -> float:
        """Mean accuracy over the first ``after`` tasks after training them (default: all tasks), ``split`` "test" or "val"."""
        n = self.n_tasks if after is None else after
        if not 1 <= n <= self.n_tasks:
            raise ValueError(f"after must lie in 1..{self.n_tasks}, got {after}")
        matrix = self.accuracy if split == "test" else self.val_accuracy
        return float(matrix[n - 1, :n].mean())

    def forgetting(self, after: int | None = None) -> float:
        """Mean over tasks j < n of (test accuracy right after learning j − after learning task n); NaN for n = 1."""
        n = self.n_tasks if after is None else after
        if n < 2:
            return math.nan
        return float(
            torch.stack(
                [self.accuracy[j, j] - self.accuracy[n - 1, j] for j in range(n - 1)]
            ).mean()
        )

    def first(self, n: int) -> ContinualResult:
        """The result after the first ``n`` tasks: a run on ``tasks[:n]`` is the first part of a run on more."""
        if not 1 <= n <= self.n_tasks:
            raise ValueError(f"n must lie in 1..{self.n_tasks}, got {n}")
        importances = {m: v[:n] for m, v in self.importances.items()}
        return ContinualResult(
            self.accuracy[:n, :n],
            self.val_accuracy[:n, :n],
            self.train_loss[:n],
            importances,
            self.seconds,
        )

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "val_accuracy": self.val_accuracy,
            "train_loss": self.train_loss,
            "importances": self.importances,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ContinualResult:
        return cls(
            d["accuracy"], d["val_accuracy"], d["train_loss"], d["importances"], d["seconds"]
        )


def _check_run(
    method: str, track: Sequence[str], tasks: Sequence[Task], sizes: dict[str, int | None]
) -> list[str]:
    """The measures a run computes (its method's first; plain names), after checking its arguments."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(map(str, METHODS))}")
    unknown = [t for t in track if t not in METHODS or t == Regulariser.NONE]
    if unknown:
        raise ValueError(
            f"unknown measures to track {unknown}; choose from {list(map(str, METHODS))[1:]}"
        )
    if not tasks:
        raise ValueError("no tasks")
    bad = {name: value for name, value in sizes.items() if value is not None and value < 1}
    if bad:
        raise ValueError(f"these must be >= 1: {bad}")
    named = ([method] if method != Regulariser.NONE else []) + list(track)
    return list(dict.fromkeys(Regulariser(m).value for m in named))


def train_task(
    model: nn.Module,
    task: Task,
    *,
    penalty: QuadraticPenalty | None,
    accumulators: Sequence[PathAccumulator],
    lr: float,
    batch_size: int,
    steps: int,
    seed: int,
    show_progress: bool = True,
    desc: str = "task",
) -> History:
    """Learn one task: a fresh Adam, :func:`continual_step` run ``steps`` times by :func:`~nnstudies.training.fit`.

    Minibatches come from a random stream seeded by ``seed``; SIU's and SIB's independent
    minibatches from another one, so tracking them leaves the trajectory unchanged.
    """
    # Adam's state is reset at every task, as in the paper
    optimizer = OptimizerSpec(Optimizer.ADAM, lr=lr).make(model.parameters())
    for accumulator in accumulators:
        accumulator.begin_task()
    data = task.training_set()
    others = (
        minibatches(data, batch_size, seed=2 * seed + 1)
        if any(a.needs_independent for a in accumulators)
        else None
    )
    step = continual_step(
        model,
        optimizer,
        minibatches(data, batch_size, seed=2 * seed),
        classes=task.classes,
        penalty=penalty,
        accumulators=accumulators,
        independent=others,
    )
    return fit(
        step,
        steps=steps,
        show_progress=show_progress,
        desc=desc,
        hint=f" ({desc}); try a smaller strength c",
    )


def _evaluate(result: ContinualResult, k: int, model: nn.Module, tasks: Sequence[Task]) -> None:
    """Row k of the accuracy matrices: test and validation accuracy of tasks 0..k after training task k."""
    for j, other in enumerate(tasks[: k + 1]):
        result.accuracy[k, j] = task_accuracy(model, other, "test")
        result.val_accuracy[k, j] = task_accuracy(model, other, "val")


def run_continual(
    model: nn.Module,
    tasks: Sequence[Task],
    method: Regulariser | str,
    strength: float,
    *,
    epochs: int = 5,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    damping: float = 0.1,
    n_importance: int = 1000,
    track: Sequence[str] = (),
    seed: int = 0,
    show_progress: bool = True,
    desc: str | None = None,
    threads: int | None = None,
) -> ContinualResult:
    """Train ``model`` (in place) on ``tasks`` in order with ``method``'s quadratic penalty of strength ``strength``.

    Each task: a fresh Adam (learning rate ``lr``) runs :func:`continual_step` through
    :func:`~nnstudies.training.fit` for ``steps`` updates (default: ``epochs`` passes over the
    task's training set in minibatches of ``batch_size``). At the task's end the method's Ω
    is measured (measures after a task: on its first ``n_importance`` training inputs) and
    added to the penalty. ``method`` is a :class:`~nnstudies.continual.methods.Regulariser` (or
    its name); ``track`` names more measures computed on the same trajectory (they do not change it: SIU and SIB draw their
    independent minibatches from a stream of their own). Minibatches of task k come from a
    stream seeded by (``seed``, k), so the first k tasks of a longer run are the run on k tasks.
    ``threads`` sets torch's intra-op threads for the run (restored afterwards).
    """
    measures = _check_run(
        method,
        track,
        tasks,
        {"epochs": epochs, "steps": steps, "batch_size": batch_size, "n_importance": n_importance},
    )
    started, device, n = time.perf_counter(), next(model.parameters()).device, len(tasks)
    tasks = [t.to(device) for t in tasks]
    accumulators = {m: build(model, damping) for m in measures if (build := METHODS[m].during_task)}
    result = ContinualResult(
        torch.full((n, n), math.nan),
        torch.full((n, n), math.nan),
        importances={m: [] for m in measures},
    )
    penalty: QuadraticPenalty | None = None
    model.train()
    with threads_(threads):
        for k, task in enumerate(tasks):
            history = train_task(
                model,
                task,
                penalty=penalty if strength > 0 else None,
                accumulators=list(accumulators.values()),
                lr=lr,
                batch_size=batch_size,
                steps=steps or epochs * math.ceil(len(task.y_train) / batch_size),
                seed=seed * 1_000_003 + k,
                show_progress=show_progress,
                desc=f"{desc or method}, task {k + 1}/{n}",
            )
            result.train_loss.append(history.train_loss)
            for m in measures:  # this task's Ω of every measure
                after = METHODS[m].after_task
                omega = (
                    after(model, task.x_train[:n_importance], task.classes)
                    if after
                    else accumulators[m].end_task()
                )
                result.importances[m].append([o.detach().cpu() for o in omega])
            if method != "none":
                own, anchor = (
                    [o.to(device) for o in result.importances[method][-1]],
                    [p.detach() for p in model.parameters()],
                )
                penalty = (
                    QuadraticPenalty(own, anchor, strength)
                    if penalty is None
                    else penalty.add_task(own, anchor)
                )
            _evaluate(result, k, model, tasks)
    result.seconds = time.perf_counter() - started
    return result


def pearson(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """Pearson correlation of two importances over all parameters (each flattened and concatenated)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise ValueError("the two importances must have the same number and shapes of tensors")
    x = torch.cat([t.reshape(-1) for t in a]).double()
    y = torch.cat([t.reshape(-1) for t in b]).double()
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.norm() * y.norm()).item()
    if denominator == 0:
        raise ValueError("an importance is constant; its correlation is undefined")
    return float((x @ y).item() / denominator)
