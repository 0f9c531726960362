"""A run spec for the engine's tests, in a module of its own so that spawned workers and submitit
jobs can import it (tests/ is on their path)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nnstudies.runs import Spec
from nnstudies.training import History, OptimizerSpec, fit

BUILDS: list[int] = []  #: seeds built in this process (a cache hit builds nothing)


@dataclass(frozen=True)
class Regression(Spec):
    """Linear regression on random data, by SGD with warm-up: a few milliseconds a run."""

    seed: int = 0
    steps: int = 40
    optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(lr=0.05, warmup=5))
    fail: bool = False

    def build(self) -> nn.Module:
        BUILDS.append(self.seed)
        torch.manual_seed(self.seed)
        return nn.Linear(16, 1)

    def train(self, model: nn.Module) -> History:
        if self.fail:
            raise ValueError(f"seed {self.seed} was asked to fail")
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(512, 16, generator=g)
        y = x @ torch.randn(16, 1, generator=g)
        opt = self.optimizer.make(model.parameters())

        def step(t: int) -> float:
            loss = ((model(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        return fit(
            step, steps=self.steps, scheduler=self.optimizer.scheduler(opt), show_progress=False
        )
