"""Per-update wall time and peak memory of SGD, FOOF, KFAC and the exact natural gradient.

    python benchmarks/optimizers.py [--sizes 784 1000 1000 1000 10] [--batch 100] [--updates 100]

MLP 784-1000-1000-1000-10 (ReLU, no bias), batch 100, random inputs (and lr small enough that no run
diverges: the cost of an update does not depend on it). Each setting runs in a fresh subprocess, so
"peak memory" is that process's high-water mark: resident memory (ru_maxrss) on the CPU,
torch.cuda.max_memory_allocated on a GPU. Time is the median over ``--updates`` updates after
warm-up; with an inversion period T the median hides the inversion steps, so the mean (which
amortises them: 100 updates include one inversion at T=100) is printed too. Targets: FOOF (T=100) ≤
1.3 × SGD; FOOF ≥ 1.3 × faster than KFAC at equal T (the paper saw ~1.5×).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "SGD": {"method": "sgd", "lr": 1e-3},
    "FOOF (T=1)": {"method": "foof", "lr": 1e-3, "damping": 0.1, "inv_period": 1},
    "FOOF (T=100)": {"method": "foof", "lr": 1e-3, "damping": 0.1, "inv_period": 100},
    "KFAC (T=1)": {"method": "kfac", "lr": 1e-3, "damping": 1e-3, "inv_period": 1},
    "KFAC (T=100)": {"method": "kfac", "lr": 1e-3, "damping": 1e-3, "inv_period": 100},
    "exact natural gradient": {"method": "natural", "lr": 1e-3, "damping": 0.3},
}


def child(label: str, sizes: list[int], batch: int, updates: int) -> None:
    """Run one setting; print a JSON line: median and mean seconds per update, peak memory (MB)."""
    import torch

    from nnstudies import MLP, get_device
    from nnstudies.chapters.neuron_descent import METHODS, Setting
    from nnstudies.optim import training_step

    device = get_device()
    torch.manual_seed(0)
    model = MLP(sizes[0], sizes[1:-1], sizes[-1], bias=False).to(device)
    s = SETTINGS[label]
    opt = METHODS[s["method"]].build(
        model,
        Setting(s["lr"], s.get("damping")),
        loss="cross_entropy",
        inv_period=s.get("inv_period", 1),
        generator=torch.Generator().manual_seed(0),
    )
    x = torch.randn(batch, sizes[0], device=device)
    y = torch.randint(sizes[-1], (batch,), device=device)
    warmup = 3
    times = []
    for step in range(warmup + updates):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        training_step(opt, model, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {
                "median": times[len(times) // 2],
                "mean": sum(times) / len(times),
                "peak_mb": peak,
                "device": str(device),
                "threads": torch.get_num_threads(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 1000, 1000, 1000, 10])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.sizes, args.batch, args.updates)
        return
    rows = {}
    for label in SETTINGS:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            label,
            "--batch",
            str(args.batch),
            "--updates",
            str(args.updates),
            "--sizes",
            *map(str, args.sizes),
        ]
        rows[label] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
    first = next(iter(rows.values()))
    print(
        f"MLP {'-'.join(map(str, args.sizes))}, batch {args.batch}, {args.updates} updates, "
        f"device {first['device']}, "
        f"{first['threads']} threads"
    )
    sgd = rows["SGD"]["mean"]
    print(f"{'setting':<24} {'median ms':>10} {'mean ms':>9} {'× SGD':>7} {'peak MB':>8}")
    for label, r in rows.items():
        print(
            f"{label:<24} {1e3 * r['median']:>10.1f} {1e3 * r['mean']:>9.1f} "
            f"{r['mean'] / sgd:>7.2f} {r['peak_mb']:>8.0f}"
        )
    for t in (1, 100):
        ratio = rows[f"KFAC (T={t})"]["mean"] / rows[f"FOOF (T={t})"]["mean"]
        print(f"KFAC / FOOF time per update at T={t}: {ratio:.2f}")


if __name__ == "__main__":
    main()
