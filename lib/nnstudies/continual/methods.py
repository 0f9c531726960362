"""The methods by name: :class:`Regulariser` chooses one in code, :data:`METHODS` says where its
importance Ω comes from, and how the book names and draws it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .importances import Importances, absolute_fisher, fisher, mas, sqrt_fisher
from .path import SOS, OnAF, PathAccumulator, SynapticIntelligence

__all__ = ["METHODS", "PATH", "POSTHOC", "Method", "Regulariser"]


class Regulariser(enum.StrEnum):
    """A method of continual learning, by the name the book prints (a ``str``: ``"SI"`` == SI)."""

    NONE = "none"  #: no penalty
    EWC = "EWC"  #: the exact Fisher, after the task
    SQRT_FISHER = "sqrtFisher"  #: √Fisher (rEWC), after the task
    AF = "AF"  #: the absolute Fisher, after the task
    MAS = "MAS"  #: memory-aware synapses, after the task
    SI = "SI"  #: synaptic intelligence, during training
    SIU = "SIU"  #: SI on an independent minibatch (unbiased)
    SIB = "SIB"  #: SI's bias alone
    SOS = "SOS"  #: √ of Adam's second moment, during training
    ONAF = "OnAF"  #: the online absolute Fisher, during training
    GRADSUM = "gradsum"  #: Σ_t |g_t| over a task's steps, unscaled (a baseline), during training

    @classmethod
    def of(cls, name: str, what: str = "method") -> Regulariser:
        """``name`` as a member; a ``ValueError`` naming the choices when it is none."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(
                f"unknown {what} {name!r}; choose one of {[m.value for m in cls]}"
            ) from None


AfterTask = Callable[[nn.Module, torch.Tensor, "tuple[int, ...] | None"], Importances]
DuringTask = Callable[[nn.Module, float], PathAccumulator]


@dataclass(frozen=True)
class Method:
    """A regularisation method: where its importance Ω comes from, and how the book names and draws it.

    ``after_task(model, inputs, classes)`` measures Ω after a task on single examples;
    ``during_task(model, damping)`` makes the :class:`PathAccumulator` that collects Ω while
    the task trains. Neither: no penalty (``"none"``).
    """

    name: Regulariser
    label: str
    colour: str
    after_task: AfterTask | None = None
    during_task: DuringTask | None = None

    @property
    def kind(self) -> str:
        """``"none"``, ``"after the task"`` or ``"during training"``."""
        return (
            "after the task"
            if self.after_task
            else "during training"
            if self.during_task
            else "none"
        )


def _si(variant: str) -> DuringTask:
    return lambda model, damping: SynapticIntelligence(model, damping=damping, variant=variant)


_R = Regulariser
METHODS: dict[str, Method] = {  # keyed by Regulariser (a str)
    m.name: m
    for m in (
        Method(_R.NONE, "none", "#999999"),
        Method(
            _R.EWC, "EWC", "#0072B2", after_task=lambda model, x, c: fisher(model, x, classes=c)
        ),
        Method(
            _R.SQRT_FISHER,
            "√Fisher",
            "#56B4E9",
            after_task=lambda model, x, c: sqrt_fisher(model, x, classes=c),
        ),
        Method(
            _R.AF,
            "AF",
            "#009E73",
            after_task=lambda model, x, c: absolute_fisher(model, x, classes=c),
        ),
        Method(_R.MAS, "MAS", "#CC79A7", after_task=lambda model, x, c: mas(model, x, classes=c)),
        Method(_R.SI, "SI", "#D55E00", during_task=_si("SI")),
        Method(_R.SIU, "SIU", "#E69F00", during_task=_si("SIU")),
        Method(_R.SIB, "SIB", "#882255", during_task=_si("SIB")),
        Method(_R.SOS, "SOS", "#000000", during_task=lambda model, damping: SOS(model)),
        Method(
            _R.ONAF,
            "OnAF",
            "#44AA99",
            during_task=lambda model, damping: OnAF(model, damping=damping),
        ),
        Method(
            _R.GRADSUM,
            "Σ|g|",
            "#BBBBBB",
            during_task=lambda model, damping: OnAF(model, damping=damping, rescale=False),
        ),
    )
}
"""Every method by name: ``"none"``, the measures after a task, and those accumulated during training."""
POSTHOC = tuple(name for name, m in METHODS.items() if m.after_task)
PATH = tuple(name for name, m in METHODS.items() if m.during_task)
