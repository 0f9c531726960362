"""The faster OK against the OK of commit 41b53a1, then per-step time and memory of the online
learners against the hidden size n, timed interleaved.

    python benchmarks/rtrl.py [--ns 16 32 64 128] [--batch 16] [--steps 5] [--repeats 3]
                              [--ok-only]

OK speed: the OK step of commit 41b53a1 (QR of the tall term matrices, loaded from
``git show 41b53a1:lib/nnstudies/rtrl.py`` into a temporary module) and today's (Gram
matrices, in-place products, D's sparsity, no host syncs) at n = 128, batch 16, r = 16,
one thread, interleaved over ``--repeats`` repeats (each the median of ``--steps`` steps
after the rank has filled); the FLOPs per step counted by hand and the fraction of this
machine's measured matmul peak (a 1024 × 1024 float32 matmul, best of 5) they reach.

Learners: exact RTRL, UORO, KF-RTRL, OK (r = 2, 8) and TBPTT (k = 10), each on the
recurrent highway cell with 4 inputs and 4 outputs, batch 16 (the chapter's
``nnstudies.chapters.rtrl.Learner`` builds them). Time: every repeat times every size
and every learner in turn (interleaved, so that a busy moment hits all alike), each the
median of ``--steps`` steps after one warm-up step; the table shows the median over the
repeats (exact RTRL: ``--exact-steps``, fewer, because one step costs seconds at n = 128 on
a CPU); on a CPU one thread. Memory: on CUDA ``torch.cuda.max_memory_allocated`` above
the allocation before the run; on a Linux CPU the process's peak resident set (VmHWM,
reset through /proc/self/clear_refs) above its resident set before the run — it includes
allocator slack and is rounded to pages, and memory the allocator kept from an earlier
learner is reused without showing up, so small values read low (even 0). The learner's
persistent state (influence matrix, Kronecker factors, TBPTT window) is counted exactly.
Then the fitted exponent of time against n over the three largest sizes, pooled over the
repeats with its 95% confidence interval, and the speed-up of OK (r = 8) over exact RTRL
at the largest n, per repeat. Asymptotically exact RTRL ≈ n⁴ and OK ≈ n³.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from nnstudies import get_device, rtrl
from nnstudies.chapters.rtrl import Algorithm, Learner, exponent_interval, measure_step
from nnstudies.device import threads

LEARNERS = [
    Learner(Algorithm.EXACT),
    Learner(Algorithm.UORO),
    Learner(Algorithm.KF),
    Learner(Algorithm.OK, rank=2),
    Learner(Algorithm.OK, rank=8),
    Learner(Algorithm.TBPTT, horizon=10),
]


BASELINE_COMMIT = "41b53a1"


def baseline_module() -> ModuleType:
    """The OK of commit 41b53a1 (QR reduction), loaded from git into a temporary module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:lib/nnstudies/rtrl.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"rtrl_{BASELINE_COMMIT}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"rtrl_{BASELINE_COMMIT}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ok_flops(n: int, batch: int, rank: int, inputs: int = 4, gates: int = 2) -> dict[str, float]:
    m, gn, R1 = inputs + n + 1, gates * n, rank + 1
    N = n * gn
    return {
        "H A_k (bmm)": 2.0 * batch * n * n * gn * rank,
        "Gram of the matrices": 2.0 * batch * N * rank * rank,
        "new terms A M": 2.0 * batch * N * rank * rank,
        "vectors (Gram, product)": 4.0 * batch * m * R1 * R1,
    }


def matmul_peak(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * size**3 / best


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_ok(module: ModuleType, n: int, batch: int, rank: int, steps: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    model = module.RecurrentModel(module.RHNCell(4, n), torch.nn.Linear(n, 4))
    learner = module.OK(model, rank, generator=torch.Generator().manual_seed(seed))
    learner.reset(batch)
    g = torch.Generator().manual_seed(seed + 1)
    xs = torch.nn.functional.one_hot(
        torch.randint(0, 4, (steps + 3 + rank, batch), generator=g), 4
    ).float()
    ys = torch.randint(0, 4, (steps + 3 + rank, batch), generator=g)
    times = []
    for t in range(xs.shape[0]):  # the first r + 3 steps fill the rank: not timed
        start = time.perf_counter()
        learner.step(xs[t], ys[t])
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[rank + 3 :])


def ok_speed(repeats: int, steps: int, n: int = 128, batch: int = 16, rank: int = 16) -> None:
    """Print the OK step of commit 41b53a1 against today's, interleaved, one thread."""
    old = baseline_module()
    times: dict[str, list[float]] = {"41b53a1": [], "today": []}
    with threads(1):
        for _ in range(repeats):
            times["41b53a1"].append(time_ok(old, n, batch, rank, steps))
            times["today"].append(time_ok(rtrl, n, batch, rank, steps))
    peak = matmul_peak()
    flops = ok_flops(n, batch, rank)
    total = sum(flops.values())
    print(f"OK step, n = {n}, batch {batch}, r = {rank}, RHN cell, float32, CPU, one thread")
    print(f"measured matmul peak (1024^3 float32, best of 5): {peak / 1e9:.1f} GFLOP/s")
    print("FLOPs per step (today): " + ", ".join(f"{k} {v / 1e9:.2f}G" for k, v in flops.items()))
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:>8}: {med * 1e3:7.1f} ms per step (repeats: "
            + ", ".join(f"{t * 1e3:.0f}" for t in ts)
            + f"); today's FLOPs / time = {total / med / 1e9:.1f} GFLOP/s"
            + f" = {total / med / peak:.0%} of peak"
        )
    ratios = [o / t for o, t in zip(times["41b53a1"], times["today"])]
    print("speed-up per repeat: " + ", ".join(f"{r:.2f}x" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--exact-steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ok-only", action="store_true", help="only the OK speed comparison")
    args = parser.parse_args()
    ok_speed(args.repeats, max(args.steps, 3))
    if args.ok_only:
        return
    device = get_device()
    memory = (
        "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS (VmHWM) increase"
    )
    print(
        f"device {device}, batch {args.batch}; time per step in ms (median over {args.repeats} interleaved repeats of "
        f"the median of {args.steps} steps; exact RTRL {args.exact_steps}{'; one CPU thread' if device.type == 'cpu' else ''}); "
        f"memory: {memory}, MiB"
    )
    print(
        "each cell: time per step, MiB of the learner's persistent state (exact count), MiB of peak memory"
    )
    seconds: dict[Learner, list[list[float]]] = {spec: [[] for _ in args.ns] for spec in LEARNERS}
    state: dict[Learner, list[float]] = {spec: [0.0] * len(args.ns) for spec in LEARNERS}
    peak: dict[Learner, list[float]] = {spec: [float("nan")] * len(args.ns) for spec in LEARNERS}
    for _ in range(args.repeats):
        for i, n in enumerate(args.ns):
            for spec in LEARNERS:
                steps = args.exact_steps if spec.algorithm is Algorithm.EXACT else args.steps
                s, mib, held = measure_step(spec, n, batch=args.batch, steps=steps, device=device)
                seconds[spec][i].append(s)
                state[spec][i] = held
                peak[spec][i] = mib if mib is not None else float("nan")
    fit_ns = args.ns[-3:]
    print(
        f"{'learner':>14} "
        + " ".join(f"{'n=' + str(n):>26}" for n in args.ns)
        + f" {'exponent (95% CI)':>22}"
    )
    for spec in LEARNERS:
        cells = [
            f"{statistics.median(seconds[spec][i]) * 1e3:8.2f} ms {state[spec][i]:7.1f} {peak[spec][i]:6.0f}"
            for i in range(len(args.ns))
        ]
        if len(fit_ns) >= 2:
            slope, low, high = exponent_interval(
                fit_ns,
                [
                    [seconds[spec][len(args.ns) - len(fit_ns) + j][r] for j in range(len(fit_ns))]
                    for r in range(args.repeats)
                ],
            )
            fitted = f"{slope:6.2f} [{low:5.2f}, {high:5.2f}]"
        else:
            fitted = "—"
        print(
            f"{spec.label:>14} " + " ".join(f"{c:>26}" for c in cells) + f" {fitted:>22}",
            flush=True,
        )
    exact, ok = Learner(Algorithm.EXACT), Learner(Algorithm.OK, rank=8)
    ratios = [e / o for e, o in zip(seconds[exact][-1], seconds[ok][-1])]
    print(
        f"at n = {args.ns[-1]}: OK (r=8) is "
        + ", ".join(f"{r:.1f}x" for r in ratios)
        + " faster per step than exact RTRL (per repeat)"
    )
    if args.ns[-1] < 256:
        print(
            "(add --ns 32 64 128 256 to see the asymptotic slopes; exact RTRL then needs about 6 GB and minutes)"
        )
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
