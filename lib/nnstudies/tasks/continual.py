"""Continual-learning task streams: Permuted (single head) and Split (multi-head) versions of a data set.

A :class:`Task` holds its train / validation / test tensors and, for a multi-head task,
the output units of its head. :func:`permuted_tasks` makes every task the same problem
with its input features in a fixed random order of its own; :func:`split_tasks` gives
every task a few classes of its own. :func:`task_accuracy` scores a model on a task
(its head only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data import Dataset

__all__ = ["Task", "head_logits", "permuted_tasks", "split_tasks", "task_accuracy"]


def head_logits(logits: torch.Tensor, classes: Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    """The logits of a task's head: the columns ``classes`` (all of them when ``None``)."""
    if classes is None:
        return logits
    index = (
        classes
        if isinstance(classes, torch.Tensor)
        else torch.as_tensor(list(classes), device=logits.device)
    )
    return logits[..., index.to(device=logits.device, dtype=torch.long)]


@dataclass(frozen=True)
class Task:
    """One task of a continual-learning benchmark, its data on one device.

    ``classes`` is ``None`` for a single-head task (all outputs compete). For a
    multi-head (split) task it lists the output units of its head: the network keeps
    one output per class of the whole data set, a task's logits are the columns
    ``classes`` (the other outputs are ignored — masked out — in its loss, its
    importances and its accuracy), and its labels ``y_*`` are positions in ``classes``
    (0 … k−1). Since tasks' classes are disjoint, each head's output weights are its own.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...] | None = None

    def to(self, device: torch.device | str) -> Task:
        """The same task with its tensors on ``device``."""
        return Task(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_val.to(device),
            self.y_val.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.classes,
        )

    @property
    def num_classes(self) -> int:
        """Labels of this task: the size of its head (all outputs' labels seen for a single-head task)."""
        if self.classes is not None:
            return len(self.classes)
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def training_set(self) -> Dataset:
        """The task's training split as a :class:`~nnstudies.data.Dataset` (its validation split as the 'test' part),
        e.g. for :func:`nnstudies.training.minibatches`."""
        return Dataset(
            self.name, self.x_train, self.y_train, self.x_val, self.y_val, self.num_classes
        )


def _train_val(dataset: Dataset, validation: float, seed: int) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val): a random ``validation`` fraction of the training set held out."""
    if not 0 <= validation < 1:
        raise ValueError(f"validation must be a fraction in [0, 1), got {validation}")
    n = len(dataset.y_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(
        dataset.x_train.device
    )
    n_val = round(validation * n)
    val, train = order[:n_val], order[n_val:]
    return (
        dataset.x_train[train],
        dataset.y_train[train],
        dataset.x_train[val],
        dataset.y_train[val],
    )


def permuted_tasks(
    dataset: Dataset, n_tasks: int, seed: int, *, validation: float = 0.0
) -> list[Task]:
    """``n_tasks`` single-head tasks, each the data set with its input features in a fixed random order.

    Every task's permutation (of the flattened input) is drawn from ``seed``; all tasks
    use the same examples. ``validation`` holds out that fraction of the training set.
    """
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}")
    xtr, ytr, xva, yva = _train_val(dataset, validation, seed)
    generator = torch.Generator().manual_seed(seed)
    d = dataset.in_features
    tasks = []
    for k in range(n_tasks):
        perm = torch.randperm(d, generator=generator).to(xtr.device)
        xs = [x.reshape(len(x), d)[:, perm].reshape(x.shape) for x in (xtr, xva, dataset.x_test)]
        tasks.append(Task(f"permutation {k + 1}", xs[0], ytr, xs[1], yva, xs[2], dataset.y_test))
    return tasks


def _classes_of(
    x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of consecutive ``classes``, labelled by their position among them."""
    keep = (y >= classes[0]) & (y <= classes[-1])
    return x[keep], y[keep] - classes[0]


def split_tasks(
    dataset: Dataset, classes_per_task: int, *, validation: float = 0.0, seed: int = 0
) -> list[Task]:
    """Multi-head tasks of ``classes_per_task`` consecutive classes each: (0, 1), (2, 3), … for 2.

    Labels become positions within the task's classes; see :class:`Task` for the heads.
    """
    c = dataset.num_classes
    if not isinstance(classes_per_task, int) or classes_per_task < 2 or c % classes_per_task:
        raise ValueError(
            f"classes_per_task must be an int >= 2 dividing the {c} classes, got {classes_per_task!r}"
        )
    xtr, ytr, xva, yva = _train_val(dataset, validation, seed)
    tasks = []
    for start in range(0, c, classes_per_task):
        classes = tuple(range(start, start + classes_per_task))
        parts = [
            _classes_of(x, y, classes)
            for x, y in ((xtr, ytr), (xva, yva), (dataset.x_test, dataset.y_test))
        ]
        tasks.append(Task(f"classes {classes}", *parts[0], *parts[1], *parts[2], classes=classes))
    return tasks


@torch.no_grad()
def task_accuracy(
    model: nn.Module, task: Task, split: str = "test", *, batch_size: int = 4096
) -> float:
    """Accuracy of ``model`` on ``task`` (its head only for split tasks); ``split`` is "train", "val" or "test"."""
    splits = {
        "train": (task.x_train, task.y_train),
        "val": (task.x_val, task.y_val),
        "test": (task.x_test, task.y_test),
    }
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; choose 'train', 'val' or 'test'")
    x, y = splits[split]
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = head_logits(model(x[start : start + batch_size]), task.classes)
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum().item())
    model.train(was_training)
    return correct / len(y)
