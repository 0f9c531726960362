"""Per-step time and memory of the online learners against the hidden size n, timed interleaved.

    python benchmarks/rtrl.py [--ns 16 32 64 128] [--batch 16] [--steps 5] [--repeats 3]

Learners: exact RTRL, UORO, KF-RTRL, OK (r = 2, 8) and TBPTT (k = 10), each on the
recurrent highway cell with 4 inputs and 4 outputs, batch 16 (the chapter's registry,
``nnstudies.chapters.rtrl.LEARNERS``, builds them). Time: every repeat times every size
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
import statistics

import torch

from nnstudies import get_device
from nnstudies.chapters.rtrl import Spec, exponent_interval, measure_step

LEARNERS = [
    Spec("exact"),
    Spec("uoro"),
    Spec("kf"),
    Spec("ok", rank=2),
    Spec("ok", rank=8),
    Spec("tbptt", horizon=10),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--exact-steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
    seconds: dict[Spec, list[list[float]]] = {spec: [[] for _ in args.ns] for spec in LEARNERS}
    state: dict[Spec, list[float]] = {spec: [0.0] * len(args.ns) for spec in LEARNERS}
    peak: dict[Spec, list[float]] = {spec: [float("nan")] * len(args.ns) for spec in LEARNERS}
    for _ in range(args.repeats):
        for i, n in enumerate(args.ns):
            for spec in LEARNERS:
                steps = args.exact_steps if spec.kind == "exact" else args.steps
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
    exact, ok = Spec("exact"), Spec("ok", rank=8)
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
