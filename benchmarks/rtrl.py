"""Per-step time and peak memory of the online learners against the hidden size n.

    python benchmarks/rtrl.py [--ns 16 32 64 128] [--batch 16] [--steps 5] [--exact-steps 2]

Learners: exact RTRL, UORO, KF-RTRL, OK (r = 2, 8) and TBPTT (k = 10), each on the
recurrent highway cell with 4 inputs and 4 outputs, batch 16. Time: the best of
``--steps`` steps after one warm-up step (exact RTRL: ``--exact-steps``, fewer because
one step costs seconds at n = 128 on a CPU); on a CPU one thread. Memory: on CUDA
``torch.cuda.max_memory_allocated`` above the allocation before the run; on a Linux
CPU the process's peak resident set (VmHWM, reset through /proc/self/clear_refs)
above its resident set before the run — it includes allocator slack and is
rounded to pages, and memory the allocator kept from an earlier learner is reused without
showing up, so small values read low (even 0). (``tracemalloc`` cannot be used: it does not
see torch's tensors.) The learner's persistent state (influence matrix, Kronecker factors,
TBPTT window) is also counted exactly.
Then the fitted exponent of time against n (least squares on log-log, over the
given ns and over the two largest) and the speed-up of OK (r = 8) over exact RTRL
at the largest n. Targets: exact RTRL ≈ n⁴, OK ≈ n³; OK (r = 8) at n = 128 at
least 10× faster than exact RTRL.
"""

from __future__ import annotations

import argparse

import torch

from nnstudies import get_device
from nnstudies.rtrl_chapter import fit_exponent, measure_step

LEARNERS = [  # (label, kind, keywords)
    ("exact RTRL", "exact", {}),
    ("UORO", "uoro", {}),
    ("KF-RTRL", "kf", {}),
    ("OK (r=2)", "ok", {"rank": 2}),
    ("OK (r=8)", "ok", {"rank": 8}),
    ("TBPTT (k=10)", "tbptt", {"horizon": 10}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--exact-steps", type=int, default=2)
    args = parser.parse_args()
    device = get_device()
    memory = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS (VmHWM) increase"
    print(f"device {device}, batch {args.batch}; time per step in ms (best of {args.steps}; exact RTRL best of "
          f"{args.exact_steps}{'; one CPU thread' if device.type == 'cpu' else ''}); memory: {memory}, MiB")
    print("each cell: time per step, MiB of the learner's persistent state (exact count), MiB of peak memory")
    print(f"{'learner':>14} " + " ".join(f"{'n=' + str(n):>26}" for n in args.ns) + f" {'exponent':>9} {'top-2':>6}")
    times: dict[str, list[float]] = {}
    for name, kind, kw in LEARNERS:
        steps = args.exact_steps if kind == "exact" else args.steps
        cells, times[name] = [], []
        for n in args.ns:
            seconds, mib, state = measure_step(kind, n, batch=args.batch, steps=steps, device=device, **kw)
            times[name].append(seconds)
            cells.append(f"{seconds * 1e3:8.2f} ms {state:7.1f} {mib if mib is not None else float('nan'):6.0f}")
        slope = fit_exponent(args.ns, times[name]) if len(args.ns) > 1 else float("nan")
        top = fit_exponent(args.ns[-2:], times[name][-2:]) if len(args.ns) > 1 else float("nan")
        print(f"{name:>14} " + " ".join(f"{c:>26}" for c in cells) + f" {slope:9.2f} {top:6.2f}", flush=True)
    for n in sorted({128, args.ns[-1]} & set(args.ns)):
        i = args.ns.index(n)
        ratio = times["exact RTRL"][i] / times["OK (r=8)"][i]
        print(f"at n = {n}: OK (r=8) is {ratio:.1f}x faster per step than exact RTRL (target at n = 128: >= 10x)")
    if args.ns[-1] < 256:
        print("(add --ns 16 32 64 128 256 to see the asymptotic slopes; exact RTRL then needs about 6 GB and a minute)")
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
