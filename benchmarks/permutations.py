"""Activation matching against this machine's float32 matmul peak; weight matching against a peer.

    OMP_NUM_THREADS=1 python benchmarks/permutations.py [--inputs 10000] [--repeats 3]
                                                          [--widths 256 1000 2000] [--trained]
                                                          [--max-width-deep 1000]

Part 1 (activation matching, :func:`nnstudies.permutations.match_activations`): on MLPs
784-w-10 (one hidden layer, no biases, as the paper's) and 784-w-w-w-10, the time of the
forward passes and similarity products (:func:`activation_similarity`) and of the linear
assignments, the FLOP count of the first part (both networks' forward passes, 2·N·Σ fan_in·fan_out
each, plus one N×w by N×w product per hidden layer, 2·N·w²), and the rate against the float32
matmul peak measured in the same run (a 2048×2048 by 2048×2048 product, best of several).
Target: at least 70% of peak for the forward and similarity part.

Part 2 (weight matching, :func:`nnstudies.permutations.match_weights`, from its default forward
start and from the identity as Git Re-Basin): against the peer
``rebasin`` (PyPI, ``PermutationCoordinateDescent``: the same coordinate descent of Git Re-Basin,
found through a traced graph of the model), on the same pair. Both objectives are computed here
from the permuted weights, by one formula independent of both implementations:
Σ_l ⟨W_A^l, W_B'^l⟩ over all weight layers. ``--trained`` uses the chapter's trained pairs at
``full`` (from the cache, trained if missing: minutes); otherwise random Kaiming-normal pairs.

Timings are the best of ``--repeats`` runs, the variants interleaved; ratios are taken within this
run. State the thread count when you quote them.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from nnstudies import MLP
from nnstudies.permutations import (
    activation_similarity,
    match_activations,
    match_weights,
    permute,
)


def best_of(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each function, the functions run in turn ``repeats`` times."""
    times = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def matmul_peak(repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an n×n float32 matrix product, best of ``repeats`` (after a warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = best_of({"mm": lambda: a @ b}, max(repeats, 5))["mm"]
    return 2 * n**3 / t / 1e9


def forward_flop(sizes: list[int], n: int) -> float:
    return 2.0 * n * sum(i * o for i, o in itertools.pairwise(sizes))


def activation_part(args: argparse.Namespace, peak: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(args.inputs, 784)
    mm_a, mm_b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    print(
        f"\nActivation matching on {args.inputs} inputs (best of {args.repeats}); fp32 matmul "
        f"peak {peak:.1f} GFLOP/s at the start, and per row, interleaved with its repeats"
    )
    print(
        f"{'network':>22} {'similarity (s)':>15} {'GFLOP':>7} {'GFLOP/s':>8} {'peak':>6} "
        f"{'of peak':>8} "
        f"{'assignment (s)':>15} {'total (s)':>10}"
    )
    for depth in (1, 3):
        for width in args.widths:
            if depth > 1 and width > args.max_width_deep:
                continue
            sizes = [784, *[width] * depth, 10]
            a = MLP(784, [width] * depth, 10, bias=False)
            b = MLP(784, [width] * depth, 10, bias=False)
            sims = activation_similarity(a, b, x)
            t = best_of(
                {
                    "peak": lambda: mm_a @ mm_b,
                    "similarity": lambda a=a, b=b: activation_similarity(a, b, x),
                    "assignment": lambda sims=sims: [
                        linear_sum_assignment(s.numpy(), maximize=True) for s in sims
                    ],
                    "total": lambda a=a, b=b: match_activations(a, b, x),
                },
                args.repeats,
            )
            flop = 2 * forward_flop(sizes, args.inputs) + depth * 2.0 * args.inputs * width**2
            rate = flop / t["similarity"] / 1e9
            row_peak = 2 * 2048**3 / t["peak"] / 1e9
            name = "-".join(map(str, sizes))
            print(
                f"{name:>22} {t['similarity']:>15.3f} {flop / 1e9:>7.1f} {rate:>8.1f} "
                f"{row_peak:>6.1f} {rate / row_peak:>8.0%} {t['assignment']:>15.3f} "
                f"{t['total']:>10.3f}",
                flush=True,
            )


def objective(a: nn.Module, b: nn.Module) -> float:
    """Σ over weight layers of ⟨W_A, W_B⟩ (float64), from the weights alone."""
    total = 0.0
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        if name.endswith("weight"):
            total += float((wa.double() * wb.double()).sum())
    return total


def peer_weight_matching(a: nn.Module, b: nn.Module, x: torch.Tensor, seed: int) -> nn.Module:
    """B permuted by the peer ``rebasin`` (a copy; ``b`` untouched), its layer orders from ``seed``."""
    from rebasin import PermutationCoordinateDescent

    torch.manual_seed(seed)
    b = copy.deepcopy(b)
    pcd = PermutationCoordinateDescent(a, b, x)
    pcd.rebasin(max_iterations=100)
    return b


def pairs(args: argparse.Namespace) -> list[tuple[str, nn.Module, nn.Module]]:
    if args.trained:
        from nnstudies.chapters import permutations as ch

        p = ch.PRESETS["full"]
        found = []
        for label, setup in (("paper MLP, trained", p.mlp), ("3x1000 MLP, trained", p.deep)):
            assert setup is not None
            snapshot_at = p.match_at if setup == p.mlp else ()
            a, b = ch.train_pair(setup, pair=0, snapshot_at=snapshot_at)
            found.append((label, a.model.cpu(), b.model.cpu()))
        return found
    torch.manual_seed(1)
    return [
        (
            f"{'-'.join(map(str, [784, *w, 10]))}, random",
            MLP(784, w, 10, bias=False),
            MLP(784, w, 10, bias=False),
        )
        for w in ([1000], [1000, 1000, 1000], [512] * 4)
    ]


def weight_part(args: argparse.Namespace) -> None:
    try:
        import rebasin  # noqa: F401
    except ImportError:
        print("\nWeight matching: the peer `rebasin` is not installed (pip install rebasin)")
        return
    seeds = range(args.repeats)
    print(
        f"\nWeight matching against the peer rebasin: {len(seeds)} random layer orders each "
        "(ours: match_weights(seed=s), from its default forward start and from the identity as "
        "Git Re-Basin; peer: torch.manual_seed(s)), run in turn; objective Σ_l <W_A, W_B'> from "
        "the permuted weights, mean and best over the orders; time, mean"
    )
    variants: dict[str, Callable[[nn.Module, nn.Module, int], nn.Module]] = {
        "ours": lambda a, b, s: permute(b, match_weights(a, b, seed=s)),
        "ours, identity start": lambda a, b, s: permute(
            b, match_weights(a, b, seed=s, start="identity")
        ),
        "peer": lambda a, b, s: peer_weight_matching(a, b, x, s),
    }
    print(
        f"{'pair':>30} {'variant':>21} {'identity':>9} {'mean':>9} {'best':>9} {'time (s)':>9} "
        f"{'÷ peer':>7}"
    )
    x = torch.randn(2, 784)
    xs = torch.randn(256, 784)
    for label, a, b in pairs(args):
        found: dict[str, list[float]] = {k: [] for k in variants}
        times: dict[str, list[float]] = {k: [] for k in variants}
        drift = 0.0
        for seed in seeds:
            for name, fn in variants.items():
                start = time.perf_counter()
                permuted = fn(a, b, seed)
                times[name].append(time.perf_counter() - start)
                found[name].append(objective(a, permuted))
                with torch.no_grad():  # each must leave B's function unchanged
                    drift = max(drift, (permuted(xs) - b(xs)).abs().max().item())
        mean = {k: sum(v) / len(v) for k, v in times.items()}
        for name in variants:
            print(
                f"{label:>30} {name:>21} {objective(a, b):>9.2f} "
                f"{sum(found[name]) / len(seeds):>9.2f} {max(found[name]):>9.2f} "
                f"{mean[name]:>9.3f} {mean[name] / mean['peer']:>7.2f}",
                flush=True,
            )
        print(f"{'':>30} (max output change of B after any permutation: {drift:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--max-width-deep", type=int, default=1000, help="skip wider 3-layer nets (minutes each)"
    )
    parser.add_argument("--trained", action="store_true", help="the chapter's trained full pairs")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    peak = matmul_peak(args.repeats)
    activation_part(args, peak)
    weight_part(args)
    print(f"\nfp32 matmul peak again at the end: {matmul_peak(args.repeats):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
