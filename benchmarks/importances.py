"""Time of each importance over 1,000 examples: nnstudies.continual (torch.func) against a per-example loop.

    python benchmarks/importances.py [--examples 1000] [--hidden 2000 2000] [--loop-examples 100]

The model is the paper's MLP 784-2000-2000-10 (random weights, random inputs).
Columns: the library with its default engine for MLPs ("linear": ``vmap(grad)`` of
the per-example output sensitivities, then one matrix product per layer), the
library with the generic engine ("vmap": ``vmap`` of ``grad``/``jacrev`` over all
parameters, in chunks), and the reference loop, one backward pass per example (and
per label for the Fisher and AF), timed on ``--loop-examples`` examples and scaled
up linearly to ``--examples``. Target on 2 CPU cores: the library ≥ 10× faster than
the loop. Memory-bound per-example gradients of a 6M-parameter network are the
generic engine's limit; the printout says what was measured.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch

from nnstudies import MLP, get_device
from nnstudies import continual as cl


def timed(fn: Callable[[], object], repeats: int = 1) -> float:
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


def loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """The per-example reference: one (or one per label) backward pass per example."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for n in range(len(x)):
        logits = model(x[n : n + 1])[0]
        if kind in ("fisher", "absolute"):
            logp = logits.log_softmax(-1)
            probs = logp.exp().detach()
            for label in range(len(logits)):
                grads = torch.autograd.grad(logp[label], params, retain_graph=True)
                for t, g in zip(total, grads):
                    t.add_(g.square() if kind == "fisher" else g.abs(), alpha=float(probs[label]))
        else:
            scalar = (
                logits.log_softmax(-1)[y[n]]
                if kind == "empirical"
                else logits.softmax(-1).square().sum()
            )
            grads = torch.autograd.grad(scalar, params)
            for t, g in zip(total, grads):
                t.add_(g.square() if kind == "empirical" else g.abs())
    return [t / len(x) for t in total]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[2000, 2000])
    parser.add_argument(
        "--loop-examples", type=int, default=100, help="examples the loop is timed on (scaled up)"
    )
    parser.add_argument(
        "--vmap-examples",
        type=int,
        default=100,
        help="examples the generic engine is timed on (scaled up)",
    )
    args = parser.parse_args()
    device = get_device()
    torch.manual_seed(0)
    model = MLP(784, args.hidden, 10).to(device)
    x = torch.randn(args.examples, 784, device=device)
    y = torch.randint(0, 10, (args.examples,), device=device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"device {device}, {torch.get_num_threads()} threads; MLP 784-{'-'.join(map(str, args.hidden))}-10 "
        f"({n_params / 1e6:.1f}M parameters); {args.examples} examples"
    )
    print(
        f"loop timed on {args.loop_examples} and generic vmap on {args.vmap_examples} examples, both scaled to {args.examples}"
    )
    measures = {
        "Fisher (exact)": ("fisher", lambda xs, ys, e: cl.fisher(model, xs, engine=e)),
        "Fisher (empirical)": (
            "empirical",
            lambda xs, ys, e: cl.fisher(model, xs, kind="empirical", targets=ys, engine=e),
        ),
        "AF": ("absolute", lambda xs, ys, e: cl.absolute_fisher(model, xs, engine=e)),
        "MAS": ("mas", lambda xs, ys, e: cl.mas(model, xs, engine=e)),
    }
    header = f"{'importance':<20} {'library (s)':>12} {'generic vmap (s)':>17} {'loop (s)':>10} {'speed-up':>9} {'vmap speed-up':>14} {'max rel. diff':>14}"
    print(header)
    print("-" * len(header))
    scale_loop = args.examples / args.loop_examples
    scale_vmap = args.examples / args.vmap_examples
    for name, (kind, fn) in measures.items():
        fn(x[:8], y[:8], "linear")  # warm up
        t_lib = timed(partial(fn, x, y, "linear"))
        xs, ys = x[: args.vmap_examples], y[: args.vmap_examples]
        t_vmap = timed(partial(fn, xs, ys, "vmap")) * scale_vmap
        xl, yl = x[: args.loop_examples], y[: args.loop_examples]
        t_loop = timed(partial(loop, model, xl, yl, kind)) * scale_loop
        ref, got = loop(model, xl, yl, kind), fn(xl, yl, "linear")
        diff = max(
            ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(got, ref)
        )
        print(
            f"{name:<20} {t_lib:>12.2f} {t_vmap:>17.2f} {t_loop:>10.2f} {t_loop / t_lib:>8.1f}× {t_loop / t_vmap:>13.1f}× {diff:>14.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
