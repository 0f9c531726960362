"""Time of activation matching and weight matching against width and depth.

    python benchmarks/permutations.py [--inputs 10000] [--widths 256 512 1000 2048 4096]
                                      [--depths 1 2 4]

Random (untrained) MLPs with 784 inputs and 10 outputs; activation matching on
``--inputs`` random inputs. Prints a table, with the floating-point work of
activation matching (two forward passes and one similarity product per layer)
and the rate achieved. Targets on 2 CPU cores: activation matching of a 2×1000
MLP on 10k inputs ≤ 1 s, weight matching ≤ 10 s. Random networks are the hard
case for the assignment solver; trained networks' similarity matrices solve
several times faster.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from nnstudies import MLP, get_device
from nnstudies.permutations import match_activations, match_weights


def timed(fn, repeats: int = 1) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1000, 2048, 4096])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--max-width-deep",
        type=int,
        default=1000,
        help="skip widths above this for depth > 2 (minutes each)",
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = get_device()
    torch.manual_seed(0)
    x = torch.randn(args.inputs, 784, device=device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, {args.inputs} inputs, "
        f"best of {args.repeats}"
    )
    print(
        f"{'depth':>5} {'width':>6} {'activations (s)':>16} {'GFLOP':>7} {'GFLOP/s':>8} "
        f"{'weights (s)':>12}"
    )
    for depth in args.depths:
        for width in args.widths:
            if depth > 2 and width > args.max_width_deep:
                continue
            a = MLP(784, [width] * depth, 10).to(device)
            b = MLP(784, [width] * depth, 10).to(device)
            t_act = timed(lambda a=a, b=b: match_activations(a, b, x), args.repeats)
            t_w = timed(lambda a=a, b=b: match_weights(a, b), args.repeats)
            # forward passes of both networks, plus one (width x N) @ (N x width) product per
            # hidden layer
            sizes = [784] + [width] * depth + [10]
            flop = (
                2
                * args.inputs
                * (2 * sum(i * o for i, o in itertools.pairwise(sizes)) + depth * width * width)
            )
            print(
                f"{depth:>5} {width:>6} {t_act:>16.3f} {flop / 1e9:>7.1f} "
                f"{flop / 1e9 / t_act:>8.1f} {t_w:>12.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
