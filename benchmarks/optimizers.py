"""Time and FLOPs per update of SGD, FOOF and KFAC (ours and curvlinops'), in one run.

    python benchmarks/optimizers.py [--updates 20] [--repeats 3] [--threads 1]

Two models at batch 100, random inputs of Fashion-MNIST's shape (the cost of an update does not
depend on the data): the paper's MLP 784-1000-1000-1000-10 (ReLU, no biases) and a small conv net
(:func:`conv_net`: three 3×3 convolutions, global average pooling, a linear read-out). In each repeat the settings take
turns, one update each, ``--updates`` times, so that a change in the machine's load hits all of
them alike; the median update is taken per repeat and the ratios are formed within the repeat.

- ``FOOF``, ``KFAC`` (heuristic damping), as the chapter runs them: the moving averages are fed in
  the min(T, 10) updates that end with each inversion (``stat_steps``; KFAC's Monte-Carlo Ḡ and
  its second backward pass only then), and ``optimizer.backward`` forms no ∇W̃ of a layer built
  in the factored order (E and A stay apart). time(T) = median plain update + min(T, 10)/T ×
  (median update that feeds the averages − plain) + one inversion (timed on its own) / T, for
  T = 1, 10 and 100.
- ``curvlinops KFAC``: curvlinops' ``KFACLinearOperator`` (Monte-Carlo Fisher, as our KFAC) built on
  the batch, with its ``KFACInverseLinearOperator`` (heuristic damping) applied to the gradient;
  at T = 1 the factors and the inverse are rebuilt every update, at T = 100 once per 100 updates
  (amortised like ours). It keeps no moving averages: per update it does what ours does.
  ``curvlinops KFAC, S=10`` builds its factors from 10 batches per inversion, the statistics our
  S = 10 gathers (compare it with ``KFAC``; ``curvlinops KFAC`` with ``KFAC, S=1``).
- FLOPs per update: counted by ``torch.utils.flop_counter.FlopCounterMode`` over one update
  (matrix products and convolutions), amortised as the time is, plus the inversion's Cholesky
  factorisation and inverse counted as 2·m³ per m × m factor (m³/3 + 2m³/3 multiply-adds) / T.

Targets (issue 23): FOOF (T=100) ≤ 1.3 × SGD, which is below exact FOOF's FLOP floor on the MLP
(printed as "FOOF's floor": Eᵀ(A P) costs B·m̃² more than SGD's Eᵀ A per layer, before any
statistics or inversion); KFAC (T=100) ≤ 2.5 × SGD; ours no slower than curvlinops' KFAC on either
model at the same T.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnstudies import MLP, optim
from nnstudies.chapters.neuron_descent.experiment import conv_net
from nnstudies.device import threads
from nnstudies.optim import training_step

BATCH = 100
CURVLINOPS_10 = "curvlinops KFAC, S=10"  #: its factors from 10 batches per inversion, as ours


def paper_mlp() -> nn.Module:
    return MLP(784, [1000, 1000, 1000], 10, bias=False)


class CurvlinopsKFAC:
    """One update: gradient, then curvlinops' KFAC inverse (rebuilt by :meth:`invert`, its factors
    from ``batches`` batches: 1 as curvlinops' examples do, 10 as much as our ``stat_steps``)."""

    def __init__(self, model: nn.Module, damping: float, lr: float, batches: int = 1) -> None:
        import curvlinops

        self.curvlinops, self.model, self.damping, self.lr = curvlinops, model, damping, lr
        self.batches = batches
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.inverse: Any = None

    def invert(self, x: torch.Tensor, y: torch.Tensor) -> None:
        op = self.curvlinops.KFACLinearOperator(
            self.model,
            nn.CrossEntropyLoss(),
            self.params,
            [(x, y)] * self.batches,
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


def _sizes(opt: optim.FOOF | optim.KFAC) -> list[int]:
    """The sizes of the factors each inversion inverts (Ā's, and Ḡ's for KFAC)."""
    return [
        side.shape[0]
        for inverse in opt.inverses.values()
        for side in (inverse.input_side, inverse.output_side)
        if side is not None
    ]


Setting = tuple[Update, Update | None, Callable[[], None] | None, Callable[[], list[int]]]


def settings(make: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict[str, Setting]:
    """Per label: one plain update, one update that also feeds the moving averages (None: no
    statistics), one inversion (or None), the inverted factor sizes."""
    out: dict[str, Setting] = {}
    lr = 1e-6

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return make()

    m_sgd = fresh()
    sgd = torch.optim.SGD(m_sgd.parameters(), lr=lr, momentum=0.9)
    out["SGD"] = (_update(sgd, m_sgd, x, y), None, None, list)

    # plain: statistics at step 0 only (stat_steps 1, no inversion); collecting: every step
    m_foof, m_foof_stat = fresh(), fresh()
    foof = optim.FOOF(m_foof, lr, 1.0, inv_period=10**9, stat_steps=1)
    foof_stat = optim.FOOF(m_foof_stat, lr, 1.0, inv_period=10**9, stat_steps=10**9)
    out["FOOF"] = (
        _update(foof, m_foof, x, y),
        _update(foof_stat, m_foof_stat, x, y),
        foof.invert,  # an inversion step's work: the inverses, and the momentum carried over
        partial(_sizes, foof),
    )

    m_kfac, m_kfac_stat = fresh(), fresh()
    kfac = optim.KFAC(m_kfac, lr, 1.0, inv_period=10**9, stat_steps=1)
    kfac_stat = optim.KFAC(m_kfac_stat, lr, 1.0, inv_period=10**9, stat_steps=10**9)
    out["KFAC"] = (
        _update(kfac, m_kfac, x, y),
        _update(kfac_stat, m_kfac_stat, x, y),
        kfac.invert,
        partial(_sizes, kfac),
    )

    for label, batches in (("curvlinops KFAC", 1), (CURVLINOPS_10, 10)):
        cl = CurvlinopsKFAC(fresh(), 1.0, lr, batches)
        out[label] = (
            partial(cl.step, x, y),
            None,
            partial(cl.invert, x, y),
            out["KFAC"][3],
        )
    return out


def flops(update: Update) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        update()
    return float(counter.get_total_flops())


PERIODS = (1, 10, 100)


def amortised(
    plain: float, stat: float | None, inversion: float, period: int, stat_steps: int = 10
) -> float:
    """Seconds (or FLOPs) per update at inversion period T: the statistics fed in min(T, S) of
    every T updates (S = 10: FOOF's and KFAC's default ``stat_steps``; S = 1: one batch per
    inversion, as curvlinops' operator built on one batch), one inversion per T."""
    share = min(period, stat_steps) / period
    extra = 0.0 if stat is None else share * max(stat - plain, 0.0)
    return plain + extra + inversion / period


def bench(name: str, make: Callable[[], nn.Module], updates: int, repeats: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(10, (BATCH,))
    runs = settings(make, x, y)
    for update, stat, invert, _ in runs.values():  # warm-up; the first update inverts
        for _ in range(2):
            update()
            if stat is not None:
                stat()
        if invert is not None:
            invert()
    per_repeat: dict[str, list[dict[int, float]]] = {label: [] for label in runs}
    for _ in range(repeats):
        times: dict[str, list[float]] = {label: [] for label in runs}
        stat_times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(updates):
            for label, (update, stat, _, _) in runs.items():
                started = time.perf_counter()
                update()
                times[label].append(time.perf_counter() - started)
                if stat is not None:
                    started = time.perf_counter()
                    stat()
                    stat_times[label].append(time.perf_counter() - started)
        for label, (_, stat, invert, _) in runs.items():
            inversion = 0.0
            if invert is not None:
                started = time.perf_counter()
                invert()
                inversion = time.perf_counter() - started
            step = statistics.median(times[label])
            stat_step = statistics.median(stat_times[label]) if stat is not None else None
            per_repeat[label].append(
                {t: amortised(step, stat_step, inversion, t) for t in PERIODS}
                | {-t: amortised(step, stat_step, inversion, t, 1) for t in PERIODS}
            )
    step_flops = {label: flops(update) for label, (update, _, _, _) in runs.items()}
    stat_flops = {
        label: flops(stat) if stat is not None else step_flops[label]
        for label, (_, stat, _, _) in runs.items()
    }
    inv_flops = {  # matrix products counted, plus 2·m³ per Cholesky factorisation and inverse
        label: (0.0 if invert is None else flops(invert)) + sum(2.0 * m**3 for m in sizes())
        for label, (_, _, invert, sizes) in runs.items()
    }

    def ratio(a: str, ta: int, b: str, tb: int) -> float:
        return statistics.median(r[ta] / s[tb] for r, s in zip(per_repeat[a], per_repeat[b]))

    print(f"\n{name}, batch {BATCH}: {updates} updates x {repeats} repeats, interleaved")
    print(f"{'update':<22} {'T':>4} {'ms':>8} {'x SGD':>7} {'GFLOP':>7} {'GFLOP x SGD':>12}")
    sgd_flops = step_flops["SGD"]
    for label in runs:
        rows = [(label, 1)] if label == "SGD" else [(label, t) for t in PERIODS]
        if label == CURVLINOPS_10:  # 10 batches per inversion need T >= 10
            rows = [(label, t) for t in PERIODS if t >= 10]
        if label in ("FOOF", "KFAC"):  # statistics from one batch per inversion (S = 1)
            rows += [(f"{label}, S=1", -t) for t in PERIODS if t > 1]
        for text, t in rows:
            ms = 1e3 * statistics.median(r[t] for r in per_repeat[label])
            gf = (
                amortised(
                    step_flops[label],
                    stat_flops[label],
                    inv_flops[label],
                    abs(t),
                    1 if t < 0 else 10,
                )
                / 1e9
            )
            t_text = "—" if label == "SGD" else str(abs(t))
            print(
                f"{text:<22} {t_text:>4} {ms:>8.1f} {ratio(label, t, 'SGD', 1):>7.2f} "
                f"{gf:>7.2f} {gf / (sgd_flops / 1e9):>12.2f}"
            )
    foof_flops = amortised(step_flops["FOOF"], stat_flops["FOOF"], inv_flops["FOOF"], 100)
    kfac_flops = amortised(step_flops["KFAC"], stat_flops["KFAC"], inv_flops["KFAC"], 100)
    print(  # no statistics, no inversion: exact FOOF's Eᵀ(A P) adds B·m̃² per layer to SGD's work
        f"FOOF's floor: its plain update alone takes {step_flops['FOOF'] / sgd_flops:.2f}x SGD's "
        "FLOPs (forward, output gradients, Eᵀ(A P); no statistics, no inversion)"
    )
    print(
        f"FOOF (T=100) / SGD {ratio('FOOF', 100, 'SGD', 1):.2f} time, "
        f"{foof_flops / sgd_flops:.2f} FLOPs (target <= 1.3); "
        f"KFAC (T=100) / SGD {ratio('KFAC', 100, 'SGD', 1):.2f} time, "
        f"{kfac_flops / sgd_flops:.2f} FLOPs (target <= 2.5); "
        f"KFAC / FOOF at T=100 {ratio('KFAC', 100, 'FOOF', 100):.2f}, "
        f"at T=1 {ratio('KFAC', 1, 'FOOF', 1):.2f}; "
        f"curvlinops KFAC / ours at T=1 {ratio('curvlinops KFAC', 1, 'KFAC', 1):.2f}, "
        f"at T=100 with as many batches per inversion {ratio(CURVLINOPS_10, 100, 'KFAC', 100):.2f}"
        f" (S=10), {ratio('curvlinops KFAC', 100, 'KFAC', -100):.2f} (S=1), "
        f"curvlinops at S=1 against ours at S=10 {ratio('curvlinops KFAC', 100, 'KFAC', 100):.2f}"
        " (target >= 1)"
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
