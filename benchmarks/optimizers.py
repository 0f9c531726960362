"""Time and FLOPs per update of SGD, FOOF and KFAC (ours and curvlinops'), in one run.

    python benchmarks/optimizers.py [--updates 20] [--repeats 3] [--threads 1]

Two models at batch 100, random inputs of Fashion-MNIST's shape (the cost of an update does not
depend on the data): the paper's MLP 784-1000-1000-1000-10 (ReLU, no biases) and a small conv net
(:func:`conv_net`: three 3×3 convolutions, global average pooling, a linear read-out). In each repeat the settings take
turns, one update each, ``--updates`` times, so that a change in the machine's load hits all of
them alike; the median update is taken per repeat and the ratios are formed within the repeat.

- ``FOOF``, ``KFAC`` (heuristic damping): time(T) = median update without inversion + one
  inversion (timed on its own) / T, for T = 1 and T = 100.
- ``curvlinops KFAC``: curvlinops' ``KFACLinearOperator`` (Monte-Carlo Fisher, as our KFAC) built on
  the batch, with its ``KFACInverseLinearOperator`` (heuristic damping) applied to the gradient;
  at T = 1 the factors and the inverse are rebuilt every update, at T = 100 once per 100 updates
  (amortised like ours). It keeps no moving averages: per update it does what ours does.
- FLOPs per update: counted by ``torch.utils.flop_counter.FlopCounterMode`` over one update
  (matrix products and convolutions), plus the inversion's Cholesky factorisation and inverse
  counted as 2·m³ per m × m factor (m³/3 + 2m³/3 multiply-adds), divided by T.

Targets (issue 12): FOOF (T=100) ≤ 1.3 × SGD; KFAC (T=100) ≤ 2.5 × SGD; KFAC / FOOF ≥ 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnstudies import MLP, optim
from nnstudies.device import threads
from nnstudies.optim import training_step

BATCH = 100


def conv_net() -> nn.Sequential:
    """Three 3×3 convolutions (32, 64, 64 channels; max-pooling after the first two), global
    average pooling and a linear read-out: like the paper's ResNets, its cost is in the activations,
    its factors are small (at most 577 × 577)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def paper_mlp() -> nn.Module:
    return MLP(784, [1000, 1000, 1000], 10, bias=False)


class CurvlinopsKFAC:
    """One update: gradient, then curvlinops' KFAC inverse (rebuilt every ``period`` updates)."""

    def __init__(self, model: nn.Module, damping: float, lr: float) -> None:
        import curvlinops

        self.curvlinops, self.model, self.damping, self.lr = curvlinops, model, damping, lr
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.inverse: Any = None

    def invert(self, x: torch.Tensor, y: torch.Tensor) -> None:
        op = self.curvlinops.KFACLinearOperator(
            self.model,
            nn.CrossEntropyLoss(),
            self.params,
            [(x, y)],
            fisher_type="mc",
            check_deterministic=False,
        )
        self.inverse = self.curvlinops.KFACInverseLinearOperator(
            op, damping=self.damping, use_heuristic_damping=True
        )
        self.inverse @ torch.zeros(sum(p.numel() for p in self.params))  # build the inverses

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.inverse is None:
            self.invert(x, y)
        self.model.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        grads = [p.grad for p in self.params]
        assert all(g is not None for g in grads)
        direction = self.inverse @ grads
        with torch.no_grad():
            for p, d in zip(self.params, direction):
                p.add_(torch.as_tensor(d).reshape(p.shape), alpha=-self.lr)


Update = Callable[[], None]


def _update(
    opt: torch.optim.Optimizer, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> Update:
    def run() -> None:
        training_step(opt, model, x, y)

    return run


def settings(
    make: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor
) -> dict[str, tuple[Update, Callable[[], None] | None, Callable[[], list[int]]]]:
    """Per label: one update without inversion, one inversion (or None), the inverted factor sizes."""
    out: dict[str, tuple[Update, Callable[[], None] | None, Callable[[], list[int]]]] = {}
    lr = 1e-6

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return make()

    m_sgd = fresh()
    sgd = torch.optim.SGD(m_sgd.parameters(), lr=lr, momentum=0.9)
    out["SGD"] = (_update(sgd, m_sgd, x, y), None, list)

    m_foof = fresh()
    foof = optim.FOOF(m_foof, lr, 1.0, inv_period=10**9)
    out["FOOF"] = (
        _update(foof, m_foof, x, y),
        foof.invert,
        lambda: [a.shape[0] for a in foof._a.values()],
    )

    m_kfac = fresh()
    kfac = optim.KFAC(m_kfac, lr, 1.0, inv_period=10**9)
    out["KFAC"] = (
        _update(kfac, m_kfac, x, y),
        kfac.invert,
        lambda: [f.shape[0] for fs in kfac._factors.values() for f in fs if f is not None],
    )

    m_cl = fresh()
    cl = CurvlinopsKFAC(m_cl, 1.0, lr)
    out["curvlinops KFAC"] = (lambda: cl.step(x, y), lambda: cl.invert(x, y), out["KFAC"][2])
    return out


def flops(update: Update) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        update()
    return float(counter.get_total_flops())


def bench(name: str, make: Callable[[], nn.Module], updates: int, repeats: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(10, (BATCH,))
    runs = settings(make, x, y)
    for update, invert, _ in runs.values():  # warm-up; the first update inverts
        for _ in range(2):
            update()
        if invert is not None:
            invert()
    per_repeat: dict[str, list[dict[int, float]]] = {label: [] for label in runs}
    for _ in range(repeats):
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(updates):
            for label, (update, _, _) in runs.items():
                started = time.perf_counter()
                update()
                times[label].append(time.perf_counter() - started)
        for label, (_, invert, _) in runs.items():
            inversion = 0.0
            if invert is not None:
                started = time.perf_counter()
                invert()
                inversion = time.perf_counter() - started
            step = statistics.median(times[label])
            per_repeat[label].append({t: step + inversion / t for t in (1, 100)})
    step_flops = {label: flops(update) for label, (update, _, _) in runs.items()}
    inv_flops = {label: sum(2.0 * m**3 for m in sizes()) for label, (_, _, sizes) in runs.items()}

    def ratio(a: str, ta: int, b: str, tb: int) -> float:
        return statistics.median(r[ta] / s[tb] for r, s in zip(per_repeat[a], per_repeat[b]))

    print(f"\n{name}, batch {BATCH}: {updates} updates x {repeats} repeats, interleaved")
    print(f"{'update':<22} {'T':>4} {'ms':>8} {'x SGD':>7} {'GFLOP':>7} {'GFLOP x SGD':>12}")
    sgd_flops = step_flops["SGD"]
    for label in runs:
        for t in (1, 100) if label != "SGD" else (1,):
            ms = 1e3 * statistics.median(r[t] for r in per_repeat[label])
            gf = (step_flops[label] + inv_flops[label] / t) / 1e9
            t_text = "—" if label == "SGD" else str(t)
            print(
                f"{label:<22} {t_text:>4} {ms:>8.1f} {ratio(label, t, 'SGD', 1):>7.2f} "
                f"{gf:>7.2f} {gf / (sgd_flops / 1e9):>12.2f}"
            )
    print(
        f"FOOF (T=100) / SGD {ratio('FOOF', 100, 'SGD', 1):.2f} (target <= 1.3); "
        f"KFAC (T=100) / SGD {ratio('KFAC', 100, 'SGD', 1):.2f} (target <= 2.5); "
        f"KFAC / FOOF at T=100 {ratio('KFAC', 100, 'FOOF', 100):.2f}, "
        f"at T=1 {ratio('KFAC', 1, 'FOOF', 1):.2f} (target >= 1.5); "
        f"curvlinops KFAC / ours at T=1 {ratio('curvlinops KFAC', 1, 'KFAC', 1):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with threads(args.threads):
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
        bench("MLP 784-1000-1000-1000-10", paper_mlp, args.updates, args.repeats)
        bench("conv net (Fashion-MNIST shape)", conv_net, args.updates, args.repeats)


if __name__ == "__main__":
    main()
