"""The engine's sweep throughput: one sweep of chapter 0's runs, in this process and on a process pool.

    python benchmarks/engine.py [--scale smoke] [--workers 1 2] [--repeats 2]

Each repeat runs the same sweep (the learning-rate study of chapter 0 at ``--scale``: one MLP per
learning rate and seed) with an empty cache, once per worker count, the worker counts interleaved.
It prints, per worker count, the best wall time, the speed-up over one worker (taken in the same
repeat), the pool's efficiency (speed-up / workers) and the CPU time of this process and its
children. Every run uses one torch thread wherever it runs, so the numbers of every sweep must be
equal: the script checks it. The pool's start (spawned workers import torch) is part of the time;
a pool is reused across sweeps of one session, as in a notebook.

On a shared machine, say what else was running when you quote the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from nnstudies import runs
from nnstudies.chapters import getting_started as ch


def cpu_seconds() -> float:
    """CPU time of this process, its finished children and its live ones (the pool's workers)."""
    import psutil

    own, dead = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    live = sum(sum(c.cpu_times()[:2]) for c in psutil.Process().children(recursive=True))
    return own.ru_utime + own.ru_stime + dead.ru_utime + dead.ru_stime + live


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", default="smoke", choices=["smoke", "cpu"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    p = ch.PRESETS[args.scale]
    specs = [ch.MLPRun.of(p, lr, seed) for lr in p.learning_rates for seed in p.seeds]
    best: dict[int, tuple[float, float]] = {}
    losses: dict[int, list[list[float]]] = {}
    for _ in range(args.repeats):
        for workers in args.workers:
            runs._MEMORY.clear()
            with tempfile.TemporaryDirectory() as cache:
                started, cpu = time.perf_counter(), cpu_seconds()
                done = runs.run_all(specs, workers=workers, root=cache, show_progress=False)
                wall, used = time.perf_counter() - started, cpu_seconds() - cpu
            losses[workers] = [r.history.train_loss for r in done]
            if workers not in best or wall < best[workers][0]:
                best[workers] = (wall, used)
    same = all(v == losses[args.workers[0]] for v in losses.values())
    print(
        f"chapter 0 at {args.scale}: {len(specs)} runs a sweep, {os.cpu_count()} cores, best of {args.repeats}"
    )
    print(f"{'workers':>8} {'wall s':>8} {'CPU s':>8} {'speed-up':>9} {'efficiency':>11}")
    base = best[args.workers[0]][0]
    for workers, (wall, used) in best.items():
        speedup = base / wall
        print(f"{workers:>8} {wall:>8.1f} {used:>8.1f} {speedup:>8.2f}x {speedup / workers:>10.0%}")
    print("the same numbers from every worker count:", same)
    if not same:
        raise SystemExit("the sweeps disagree: the engine is not deterministic")


if __name__ == "__main__":
    main()
