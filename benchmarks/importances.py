"""Per-example importances of the paper's MLP: nnstudies.continual against BackPACK and torch.func, in one run.

    OMP_NUM_THREADS=1 python benchmarks/importances.py [--batch 256] [--hidden 2000 2000] [--repeats 3]
        [--slow-examples 32]

Model 784-2000-2000-10 (random weights), one batch of ``--batch`` random inputs and labels.
Every method computes the mean over the batch of a per-example quantity, one tensor per
parameter:

- exact Fisher diagonal, Σ_y p(y|x) (∂ log p(y|x)/∂θ)²;
- empirical Fisher diagonal, (∂ log p(y_x|x)/∂θ)² with the true label;
- AF, Σ_y p(y|x) |∂ log p(y|x)/∂θ|, and MAS, |∂ ‖softmax f(x)‖²/∂θ| (no BackPACK extension).

Columns: ours (``engine="linear"``: one forward pass, one batch backward pass per label or
one in all, then one matrix product per layer), our generic engine (``engine="vmap"``),
BackPACK (``DiagGGNExact``, ``SumGradSquared``, ``BatchGrad`` then squared or |·|; it
also computes the ordinary gradient), and ``torch.func`` (``vmap`` over examples of
``grad``, ``jacrev`` for one gradient per label). Per-example gradients of 5.6M
parameters do not fit in memory for a whole batch: ``BatchGrad``, ``torch.func`` and
our generic engine take the batch in chunks (``--chunk``; printed), and, being one to two
orders of magnitude slower, are timed once on the first ``--slow-examples`` examples and
scaled up linearly (marked *; their work is linear in the examples). The fast methods'
times are the best of ``--repeats``, interleaved in every repeat so that the machine's
load hits them alike; ratios are to ours within this run. "peak" is the best rate of one
256 × 2000 × 2000 matrix product in this process, "% peak" the method's useful FLOPs
(the matrix products of our route, counted below) over its time, against that peak.
"max rel. diff" is the largest relative difference, over all parameters, to the reference
named in the last column (BackPACK; ours on the same examples; torch.func where BackPACK
has no extension).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from nnstudies import MLP
from nnstudies import continual as cl

Result = list[torch.Tensor]


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of a 256 × 2000 × 2000 matrix product, the best of ``repeats``."""
    a, b = torch.randn(256, 2000), torch.randn(2000, 2000)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(max(repeats, 3)))
    return 2 * 256 * 2000 * 2000 / best / 1e9


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def useful_flops(sizes: list[int], batch: int, labels: int) -> float:
    """Matrix-product FLOPs of our route: forward, ``labels`` backward passes to the hidden
    layers' outputs (none to the input), one weight-sized product per layer."""
    layers = list(itertools.pairwise(sizes))
    fwd = sum(2 * batch * i * o for i, o in layers)
    bwd = sum(2 * batch * i * o for i, o in layers[1:])
    return fwd + labels * bwd + fwd


def backpack_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> dict:
    from backpack import backpack, extend
    from backpack.extensions import BatchGrad, DiagGGNExact, SumGradSquared

    peer = extend(MLP(784, [m.out_features for m in model if isinstance(m, nn.Linear)][:-1], 10))
    peer.load_state_dict(model.state_dict())
    mean_loss = extend(nn.CrossEntropyLoss(reduction="sum"))
    n = len(x)

    def run(extension: object, attribute: str) -> Result:
        peer.zero_grad()
        with backpack(extension):  # type: ignore[arg-type]
            mean_loss(peer(x), y).backward()
        return [getattr(p, attribute) / n for p in peer.parameters()]

    def batch_grad(f: Callable[[torch.Tensor], torch.Tensor]) -> Result:
        total = [torch.zeros_like(p) for p in peer.parameters()]
        for start in range(0, n, chunk):
            peer.zero_grad()
            with backpack(BatchGrad()):
                mean_loss(peer(x[start : start + chunk]), y[start : start + chunk]).backward()
            for t, p in zip(total, peer.parameters()):
                t += f(p.grad_batch).sum(0)  # type: ignore[attr-defined]
        return [t / n for t in total]

    return {
        "exact": lambda: run(DiagGGNExact(), "diag_ggn_exact"),
        "empirical": lambda: run(SumGradSquared(), "sum_grad_squared"),
        "empirical, BatchGrad": lambda: batch_grad(torch.square),
    }


def func_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> dict:
    """torch.func: per-example gradients of all parameters (``vmap`` of ``grad``/``jacrev``)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    n = len(x)

    def logits(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (xi.unsqueeze(0),))[0]

    def log_likelihood(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return logits(p, xi).log_softmax(-1).gather(-1, yi.reshape(1)).squeeze(-1)

    def log_probs(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return logits(p, xi).log_softmax(-1)

    def mas_output(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return logits(p, xi).softmax(-1).square().sum()

    per_label = vmap(jacrev(log_probs), in_dims=(None, 0))
    per_example = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    per_example_mas = vmap(grad(mas_output), in_dims=(None, 0))

    def labelled(square: bool, size: int) -> Result:
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        for start in range(0, n, size):
            xs = x[start : start + size]
            probs = model(xs).softmax(-1).detach()
            for k, g in per_label(params, xs).items():
                f = g.square() if square else g.abs()
                total[k] += torch.einsum("nc,nc...->...", probs, f)
        return [t / n for t in total.values()]

    def single(kind: str) -> Result:
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        for start in range(0, n, chunk):
            xs, ys = x[start : start + chunk], y[start : start + chunk]
            grads = (
                per_example(params, xs, ys) if kind == "empirical" else per_example_mas(params, xs)
            )
            for k, g in grads.items():
                total[k] += (g.square() if kind == "empirical" else g.abs()).sum(0)
        return [t / n for t in total.values()]

    small = max(1, chunk // 4)  # ten gradients per example
    return {
        "exact": lambda: labelled(True, small),
        "empirical": lambda: single("empirical"),
        "AF": lambda: labelled(False, small),
        "MAS": lambda: single("mas"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[2000, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--chunk", type=int, default=32, help="examples per chunk of per-example gradients"
    )
    parser.add_argument(
        "--slow-examples",
        type=int,
        default=32,
        help="examples the per-example-gradient methods are timed on (scaled up; 0: skip them)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    model = MLP(784, args.hidden, 10).eval()
    x = torch.randn(args.batch, 784)
    y = torch.randint(0, 10, (args.batch,))
    sizes = [784, *args.hidden, 10]
    n_params = sum(p.numel() for p in model.parameters())
    peak = matmul_peak(args.repeats)
    print(
        f"MLP {'-'.join(map(str, sizes))} ({n_params / 1e6:.1f}M parameters), batch {args.batch}, "
        f"{torch.get_num_threads()} thread(s), float32, CPU; "
        f"per-example chunks of {args.chunk} (per label: {max(1, args.chunk // 4)})"
    )

    def ours_on(xs: torch.Tensor, ys: torch.Tensor) -> dict[str, Callable[[], Result]]:
        return {
            "exact": lambda: cl.fisher(model, xs, engine="linear"),
            "empirical": lambda: cl.fisher(
                model, xs, kind="empirical", targets=ys, engine="linear"
            ),
            "AF": lambda: cl.absolute_fisher(model, xs, engine="linear"),
            "MAS": lambda: cl.mas(model, xs, engine="linear"),
        }

    ours = ours_on(x, y)
    peers = backpack_runner(model, x, y, args.chunk)
    fast: list[tuple[str, str, Callable[[], Result]]] = [
        *((q, "ours (one forward, batch backward)", fn) for q, fn in ours.items()),
        ("exact", "BackPACK DiagGGNExact", peers["exact"]),
        ("empirical", "BackPACK SumGradSquared", peers["empirical"]),
    ]
    best = [float("inf")] * len(fast)
    values: list[Result] = [fn() for _, _, fn in fast]  # warm-up
    for _ in range(args.repeats):  # interleaved: the machine's load hits every method alike
        peak = max(peak, matmul_peak(1))  # the peak, too, at the load of this repeat
        for i, (_, _, fn) in enumerate(fast):
            start = time.perf_counter()
            values[i] = fn()
            best[i] = min(best[i], time.perf_counter() - start)
    # The per-example-gradient methods, on the first --slow-examples examples, scaled up linearly.
    n = min(args.slow_examples, args.batch)
    xs, ys = x[: max(n, 1)], y[: max(n, 1)]
    generic = {
        "exact": lambda: cl.vmap_importance(
            model, xs, "fisher", engine="vmap", chunk_size=max(1, args.chunk // 4)
        ),
        "empirical": lambda: cl.vmap_importance(
            model, xs, "empirical", targets=ys, engine="vmap", chunk_size=args.chunk
        ),
    }
    small_peers = backpack_runner(model, xs, ys, args.chunk)
    func = func_runner(model, xs, ys, args.chunk)
    slow: list[tuple[str, str, Callable[[], Result]]] = [
        ("exact", "ours, generic vmap engine", generic["exact"]),
        ("exact", "torch.func vmap(jacrev)", func["exact"]),
        ("empirical", "ours, generic vmap engine", generic["empirical"]),
        ("empirical", "BackPACK BatchGrad, squared", small_peers["empirical, BatchGrad"]),
        ("empirical", "torch.func vmap(grad)", func["empirical"]),
        ("AF", "torch.func vmap(jacrev)", func["AF"]),
        ("MAS", "torch.func vmap(grad)", func["MAS"]),
    ]
    print(f"matmul peak (the best 256 x 2000 x 2000 product over the run): {peak:.0f} GFLOP/s")
    if n > 0:
        print(f"per-example-gradient methods (*) timed on {n} examples, scaled to {args.batch}")
    header = (
        f"{'quantity':<10} {'method':<38} {'time (s)':>9} {'vs ours':>8} {'% peak':>7} "
        f"{'max rel. diff':>14}  reference"
    )
    print(header)
    print("-" * len(header))
    ours_time = {q: best[i] for i, (q, name, _) in enumerate(fast) if name.startswith("ours")}
    ours_values = {q: values[i] for i, (q, name, _) in enumerate(fast) if name.startswith("ours")}
    backpack = {"exact": values[4], "empirical": values[5]}
    ours_small = {q: fn() for q, fn in ours_on(xs, ys).items()}

    def show(q: str, name: str, seconds: float, got: Result, ref: Result, ref_name: str) -> None:
        labels = 10 if q in ("exact", "AF") else 1
        rate = useful_flops(sizes, args.batch, labels) / seconds / 1e9
        diff = max(
            ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(got, ref)
        )
        print(
            f"{q:<10} {name:<38} {seconds:>9.3f} {seconds / ours_time[q]:>7.2f}× "
            f"{100 * rate / peak:>6.0f}% {diff:>14.1e}  {ref_name}",
            flush=True,
        )

    for i, (q, name, _) in enumerate(fast):
        if name.startswith("ours") and q in backpack:
            show(q, name, best[i], values[i], backpack[q], "BackPACK")
        elif name.startswith("ours"):
            ref = func[q]()  # ours on the same examples as torch.func
            show(q, name, best[i], ours_small[q], ref, f"torch.func on {len(xs)} examples")
        else:
            show(q, name, best[i], values[i], ours_values[q], "ours")
    for q, name, fn in slow if n > 0 else []:
        start = time.perf_counter()
        got = fn()
        seconds = (time.perf_counter() - start) * args.batch / n
        show(q, f"{name} (*)", seconds, got, ours_small[q], f"ours on {n} examples")


if __name__ == "__main__":
    main()
