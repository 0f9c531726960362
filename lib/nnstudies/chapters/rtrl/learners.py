"""The chapter's online learners as data: :class:`Algorithm` (which one) and :class:`Learner` (one
configured: OK's rank, TBPTT's horizon), the model they train, and the online step that every
training run feeds to :func:`nnstudies.training.fit`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...device import get_device
from ...rtrl import (
    KFRTRL,
    OK,
    TBPTT,
    UORO,
    ChunkedTBPTT,
    ExactRTRL,
    KroneckerCell,
    OnlineLearner,
    RecurrentModel,
    RHNCell,
)
from ...tasks.sequences import SequenceStep

__all__ = ["Algorithm", "Learner", "build_model", "generator", "online_step"]


class Algorithm(enum.Enum):
    """The online learning algorithms of the chapter (the values are their short names)."""

    EXACT = "exact"
    UORO = "uoro"
    KF = "kf"
    OK = "ok"
    TBPTT = "tbptt"  #: sliding window of k steps, an update at every step
    TBPTT_EVERY_K = "tbptt-every-k"  #: chunks of k steps, an update every k steps (the paper's)

    @property
    def label(self) -> str:
        """The name on the page; OK's holds ``{rank}``, TBPTT's ``{horizon}``."""
        return _LABELS[self]

    @property
    def options(self) -> tuple[str, ...]:
        """The :class:`Learner` fields this algorithm uses, its *knob* first."""
        return _OPTIONS.get(self, ())

    @property
    def knob(self) -> str | None:
        """The setting that is varied (OK: ``rank``, TBPTT: ``horizon``), or None."""
        return self.options[0] if self.options else None


_LABELS = {
    Algorithm.EXACT: "exact RTRL",
    Algorithm.UORO: "UORO",
    Algorithm.KF: "KF-RTRL",
    Algorithm.OK: "OK (r={rank})",
    Algorithm.TBPTT: "TBPTT (k={horizon})",
    Algorithm.TBPTT_EVERY_K: "TBPTT (k={horizon}, every k)",
}
_OPTIONS = {
    Algorithm.OK: ("rank", "unbiased"),
    Algorithm.TBPTT: ("horizon",),
    Algorithm.TBPTT_EVERY_K: ("horizon",),
}


@dataclass(frozen=True)
class Learner:
    """A learner as configured: its :class:`Algorithm`, OK's rank r (and bias), TBPTT's horizon k.

    Settings the algorithm does not use are reset to their defaults, so that
    ``Learner(Algorithm.OK, rank=4, horizon=3)`` equals ``Learner(Algorithm.OK, rank=4)``: one
    configuration, one key.
    """

    algorithm: Algorithm
    rank: int = 1
    horizon: int = 1
    unbiased: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, Algorithm):
            raise TypeError(
                f"unknown learner {self.algorithm!r}; choose one of {[a.name for a in Algorithm]}"
            )
        for name in ("rank", "horizon", "unbiased"):
            if name not in self.algorithm.options:
                object.__setattr__(self, name, type(self).__dataclass_fields__[name].default)

    @property
    def label(self) -> str:
        """The name on the page, e.g. ``OK (r=4)`` or ``TBPTT (k=3)``."""
        text = self.algorithm.label.format(rank=self.rank, horizon=self.horizon)
        return text if self.unbiased else text + ", biased"

    def build(
        self, model: RecurrentModel, generator: torch.Generator | None = None
    ) -> OnlineLearner:
        """The learner for ``model``; the random ones draw their signs from ``generator``."""
        algorithm = self.algorithm
        if algorithm is Algorithm.EXACT:
            return ExactRTRL(model)
        if algorithm is Algorithm.UORO:
            return UORO(model, generator=generator)
        if algorithm is Algorithm.KF:
            return KFRTRL(model, generator=generator)
        if algorithm is Algorithm.OK:
            return OK(model, self.rank, unbiased=self.unbiased, generator=generator)
        if algorithm is Algorithm.TBPTT_EVERY_K:
            return ChunkedTBPTT(model, self.horizon)
        return TBPTT(model, self.horizon)


def build_model(
    hidden: int,
    inputs: int,
    outputs: int,
    *,
    init_std: float | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    cell: type[KroneckerCell] = RHNCell,
) -> RecurrentModel:
    """A :class:`~nnstudies.rtrl.RecurrentModel`: a recurrent highway cell (or ``cell``) of
    ``hidden`` units and a linear readout."""
    torch.manual_seed(seed)
    core = cell(inputs, hidden, init_std=init_std)
    return RecurrentModel(core, nn.Linear(hidden, outputs)).to(
        device=device or get_device(), dtype=dtype
    )


def online_step(
    model: RecurrentModel,
    learner: OnlineLearner,
    stream: Any,
    optimizer: torch.optim.Optimizer,
    *,
    clip: float,
    observe: Callable[[SequenceStep, float], None] | None = None,
) -> Callable[[int], float]:
    """One online update per time step, for :func:`nnstudies.training.fit`.

    The learner adds its estimate of ``∂L_t/∂θ`` to ``.grad`` (it never changes θ); the cell
    weight's gradient is clipped to norm ``clip``, as in the authors' code; Adam updates θ. A
    learner that is not :attr:`~nnstudies.rtrl.OnlineLearner.ready` (TBPTT inside a chunk of k
    steps) leaves θ alone.
    ``observe(s, loss)`` sees every step (the copy task's curriculum does).
    """

    def step(t: int) -> float:
        s = stream.next()
        learner.reset_where(s.reset)  # streams that start a new sequence: zero state and influence
        optimizer.zero_grad(set_to_none=True)
        loss = float(learner.step(s.x, s.y))
        if learner.ready:
            torch.nn.utils.clip_grad_norm_([model.cell.weight], clip)
            optimizer.step()
        if observe is not None:
            observe(s, loss)
        return loss

    return step


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed`` (the learners' random signs)."""
    return torch.Generator(device=device).manual_seed(seed)
