"""nnstudies.rtrl against independent references: autograd Jacobians, BPTT through the unrolled sequence,
exhaustive enumeration of the random signs, and statistics over many draws (fixed seeds)."""

from __future__ import annotations

import itertools
import math
import pathlib

import pytest
import torch
from torch import nn

from nnstudies import DownloadError, rtrl
from nnstudies.rtrl import (
    KFRTRL,
    OK,
    TBPTT,
    UORO,
    ExactRTRL,
    RecurrentModel,
    RHNCell,
    TanhCell,
    ok_reduce,
)
from nnstudies.tasks import sequences
from nnstudies.tasks.sequences import CopyTask

F64 = torch.float64
CELLS = {"rhn": RHNCell, "tanh": TanhCell}


def _model(
    kind: str = "rhn",
    n_in: int = 3,
    n: int = 5,
    n_out: int = 4,
    *,
    seed: int = 0,
    dtype: torch.dtype = F64,
    init_std: float = 0.5,
) -> RecurrentModel:
    torch.manual_seed(seed)
    model = RecurrentModel(CELLS[kind](n_in, n, init_std=init_std), nn.Linear(n, n_out))
    with torch.no_grad():  # a forget gate away from ½ and a non-trivial readout
        model.readout.weight.mul_(3)
    return model.to(dtype)


def _sequence(
    T: int, B: int, n_in: int = 3, n_out: int = 4, *, seed: int = 1, dtype: torch.dtype = F64
):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, n_in, generator=g, dtype=dtype), torch.randint(
        0, n_out, (T, B), generator=g
    )


def _run(
    learner: rtrl.OnlineLearner,
    xs: torch.Tensor,
    ys: torch.Tensor,
    resets: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Accumulated .grad of every parameter after running ``learner`` over the sequence (parameters fixed)."""
    model = learner.model
    model.zero_grad(set_to_none=True)
    learner.reset(xs.shape[1])
    for t in range(xs.shape[0]):
        if resets is not None:
            learner.reset_where(resets[t])
        learner.step(xs[t], ys[t])
    return [p.grad.clone() for p in model.parameters()]


def _bptt(
    model: RecurrentModel, xs: torch.Tensor, ys: torch.Tensor, resets: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Reference: autograd through the unrolled sequence of Σ_t mean_b CE."""
    return list(torch.autograd.grad(model.sequence_loss(xs, ys, resets), list(model.parameters())))


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).norm() / y.norm()) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- cells


@pytest.mark.parametrize("kind", CELLS)
def test_cell_jacobian_and_factors_match_autograd(kind: str) -> None:
    model = _model(kind)
    cell = model.cell
    B = 3
    x, _ = _sequence(1, B)
    h = (
        torch.randn(B, cell.hidden_size, dtype=F64, generator=torch.Generator().manual_seed(5))
        * 0.7
    )
    cs = cell.step(x[0], h)
    assert torch.allclose(cs.h, cell(x[0], h), atol=1e-14)
    # H = ∂h_t/∂h_{t-1}: the per-example diagonal blocks of autograd's Jacobian
    J_h = torch.autograd.functional.jacobian(lambda hh: cell(x[0], hh), h)  # (B, n, B, n)
    H_ref = torch.stack([J_h[b, :, b, :] for b in range(B)])
    assert torch.allclose(cs.H, H_ref, atol=1e-12)
    # F = ∂h_t/∂W with F[i, p, q] = â[p] D[i, q]  (θ = row-major vec(W))
    W = cell.weight.detach().clone()

    def with_weight(w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(cell, {"weight": w}, (x[0], h))

    J_w = torch.autograd.functional.jacobian(with_weight, W)  # (B, n, m, gn)
    F_factor = cs.a[:, None, :, None] * cs.D[:, :, None, :]
    assert torch.allclose(F_factor, J_w, atol=1e-12)
    assert torch.equal(cs.a[:, -1], torch.ones(B, dtype=F64))


def test_rhn_forget_bias_sets_initial_gate() -> None:
    cell = RHNCell(2, 6, init_std=0.0, forget_bias=2.0)
    cs = cell.step(torch.zeros(1, 2), torch.zeros(1, 6))
    assert torch.allclose(cs.H, torch.eye(6) * torch.sigmoid(torch.tensor(2.0)), atol=1e-6)


# ----------------------------------------------------------------------------- exact learners


@pytest.mark.parametrize("kind", CELLS)
def test_exact_rtrl_equals_bptt(kind: str) -> None:
    model = _model(kind)
    xs, ys = _sequence(9, 4)
    resets = torch.zeros(9, 4, dtype=torch.bool)
    resets[5, 1] = resets[3, 2] = True  # new sequences start mid-stream for two elements
    assert _rel(_run(ExactRTRL(model), xs, ys, resets), _bptt(model, xs, ys, resets)) < 1e-8
    assert _rel(_run(ExactRTRL(model), xs, ys), _bptt(model, xs, ys)) < 1e-8


@pytest.mark.parametrize("kind", CELLS)
def test_tbptt_with_full_horizon_equals_bptt(kind: str) -> None:
    model = _model(kind)
    xs, ys = _sequence(8, 3)
    reference = _bptt(model, xs, ys)
    for k in (8, 20):
        assert _rel(_run(TBPTT(model, k), xs, ys), reference) < 1e-10
    assert _rel(_run(TBPTT(model, 2), xs, ys), reference) > 1e-3  # truncation changes the gradient


def test_tbptt_truncated_matches_a_hand_unrolled_reference() -> None:
    model = _model("rhn")
    xs, ys = _sequence(7, 2)
    k = 3
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for t in range(
        len(xs)
    ):  # reference: for each t, roll forward without grad to t-k, then k steps with grad
        h = None
        with torch.no_grad():
            for s in range(max(0, t - k + 1)):
                h = model.cell(xs[s], h)
        for s in range(max(0, t - k + 1), t + 1):
            h = model.cell(xs[s], h)
        loss = nn.functional.cross_entropy(model.readout(h), ys[t])
        for acc, g in zip(total, torch.autograd.grad(loss, params)):
            acc += g
    assert _rel(_run(TBPTT(model, k), xs, ys), total) < 1e-10


@pytest.mark.parametrize("kind", CELLS)
def test_chunked_tbptt_over_one_chunk_equals_bptt_of_the_mean_loss(kind: str) -> None:
    model = _model(kind)
    xs, ys = _sequence(8, 3)
    resets = torch.zeros(8, 3, dtype=torch.bool)
    resets[5, 1] = True
    reference = [g / 8 for g in _bptt(model, xs, ys, resets)]
    learner = rtrl.ChunkedTBPTT(model, 8)
    model.zero_grad(set_to_none=True)
    learner.reset(3)
    ready = []
    for t in range(8):
        learner.reset_where(resets[t])
        learner.step(xs[t], ys[t])
        ready.append(learner.ready)
    assert ready == [False] * 7 + [True]  # one update, after the chunk's last step
    assert _rel([p.grad.clone() for p in model.parameters()], reference) < 1e-10


def test_chunked_tbptt_matches_a_hand_unrolled_reference() -> None:
    model = _model("rhn")
    xs, ys = _sequence(7, 2)
    k = 3
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for start in (0, 3):  # the two whole chunks; the last step (6) starts a chunk that never ends
        h = None
        with torch.no_grad():
            for s in range(start):
                h = model.cell(xs[s], h)
        losses = []
        for s in range(start, start + k):
            h = model.cell(xs[s], h)
            losses.append(nn.functional.cross_entropy(model.readout(h), ys[s]))
        for acc, g in zip(total, torch.autograd.grad(torch.stack(losses).mean(), params)):
            acc += g
    got = _run(rtrl.ChunkedTBPTT(model, k), xs, ys)
    assert _rel(got, total) < 1e-10
    assert _rel(_run(TBPTT(model, k), xs, ys), total) > 1e-3  # the sliding window differs


@pytest.mark.parametrize("kind", CELLS)
def test_ok_biased_with_rank_at_least_length_is_exact(kind: str) -> None:
    model = _model(kind)
    xs, ys = _sequence(6, 3)
    reference = _bptt(model, xs, ys)
    for r in (6, 9):
        assert _rel(_run(OK(model, r, unbiased=False), xs, ys), reference) < 1e-8
    assert (
        _rel(_run(OK(model, 2, unbiased=False), xs, ys), reference) > 1e-4
    )  # below T it is an approximation


def test_readout_gradient_is_exact_for_every_learner() -> None:
    model = _model("rhn")
    xs, ys = _sequence(5, 3)
    reference = _bptt(model, xs, ys)
    g = torch.Generator().manual_seed(0)
    for learner in (
        UORO(model, generator=g),
        KFRTRL(model, generator=g),
        OK(model, 1, generator=g),
    ):
        grads = _run(learner, xs, ys)
        assert _rel(grads[1:], reference[1:]) < 1e-10  # readout weight and bias: no recurrence


# ----------------------------------------------------------------------------- the OK reduction


def _kron_sum(u: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Explicitly formed Σ_k u_kᵀ ⊗ A_k, as (B, n, m·gn) with θ = row-major vec."""
    B, m, _ = u.shape
    n, gn = A.shape[1:3]
    return torch.einsum("bpk,biqk->bipq", u, A).reshape(B, n, m * gn)


def _with_spectrum(
    sigma: list[float], B: int = 2, m: int = 6, n: int = 4, gn: int = 8, seed: int = 3
):
    """Terms whose Kronecker sum has singular values ``sigma``, mixed by a random invertible matrix (same sum)."""
    g = torch.Generator().manual_seed(seed)
    R1 = len(sigma)
    Qu = torch.linalg.qr(torch.randn(B, m, R1, generator=g, dtype=F64))[0]
    Qa = torch.linalg.qr(torch.randn(B, n * gn, R1, generator=g, dtype=F64))[0]
    M = torch.randn(B, R1, R1, generator=g, dtype=F64) + 3 * torch.eye(R1, dtype=F64)
    u = Qu * torch.tensor(sigma, dtype=F64) @ M
    A = (Qa @ torch.linalg.inv(M).transpose(1, 2)).reshape(B, n, gn, R1)
    return u, A


@pytest.mark.parametrize(
    ("sigma", "K"), [([10, 1, 0.5, 0.2], 2), ([3, 1.1, 1, 0.5], 3), ([1, 1.05, 1.1, 1.2], 4)]
)
def test_ok_reduce_is_unbiased_with_the_stated_variance_over_all_signs(
    sigma: list[float], K: int
) -> None:
    u, A = _with_spectrum(sigma)
    B, r = u.shape[0], len(sigma) - 1
    exact = _kron_sum(u, A)
    outs = []
    for signs in itertools.product(
        [-1.0, 1.0], repeat=r + 1
    ):  # every sign pattern: an exact expectation
        un, An, info = ok_reduce(u, A, signs=torch.tensor(signs, dtype=F64).expand(B, r + 1))
        outs.append(_kron_sum(un, An))
    outs = torch.stack(outs)
    assert torch.allclose(
        info["sigma"], torch.tensor(sorted(sigma), dtype=F64).expand(B, -1), atol=1e-10
    )
    assert float((outs.mean(0) - exact).norm() / exact.norm()) < 1e-12
    # the K smallest are mixed (the largest K with (K−1) σ_(K) ≤ Σ_{j≤K} σ_(j)), with the closed-form variance
    assert info["mixed"].sum(1).tolist() == [K] * B
    s = sum(sorted(sigma)[:K])
    closed_form = s * s / (K - 1) - sum(x * x for x in sorted(sigma)[:K])
    variance = ((outs - exact) ** 2).flatten(2).sum(2).mean(0)
    assert torch.allclose(variance, torch.full((B,), closed_form, dtype=F64), rtol=1e-9)
    assert torch.allclose(info["variance"], variance, rtol=1e-9)


def test_ok_reduce_beats_kf_rtrl_style_mixing() -> None:
    """One step from one Kronecker product: OK(1)'s variance is at most KF-RTRL's, over all signs."""
    g = torch.Generator().manual_seed(8)
    u, a = torch.randn(1, 5, generator=g, dtype=F64), torch.randn(1, 5, generator=g, dtype=F64)
    HA, D = (
        torch.randn(1, 3, 4, generator=g, dtype=F64),
        torch.randn(1, 3, 4, generator=g, dtype=F64),
    )
    exact = _kron_sum(torch.stack([u, a], -1), torch.stack([HA, D], -1))
    p0, p1 = math.sqrt(float(HA.norm() / u.norm())), math.sqrt(float(D.norm() / a.norm()))
    kf, ok = [], []
    for s0, s1 in itertools.product([-1.0, 1.0], repeat=2):
        kf_u, kf_A = s0 * p0 * u + s1 * p1 * a, s0 / p0 * HA + s1 / p1 * D
        kf.append(float(((_kron_sum(kf_u[..., None], kf_A[..., None]) - exact) ** 2).sum()))
        un, An, _ = ok_reduce(
            torch.stack([u, a], -1),
            torch.stack([HA, D], -1),
            signs=torch.tensor([[s0, s1]], dtype=F64),
        )
        ok.append(float(((_kron_sum(un, An) - exact) ** 2).sum()))
    assert sum(ok) / 4 <= sum(kf) / 4 * (1 + 1e-12)


def test_ok_reduce_biased_drops_the_smallest_singular_value() -> None:
    g = torch.Generator().manual_seed(4)
    u = torch.randn(2, 5, 4, generator=g, dtype=F64)
    A = torch.randn(2, 3, 6, 4, generator=g, dtype=F64)
    un, An, info = ok_reduce(u, A, unbiased=False)
    error = ((_kron_sum(un, An) - _kron_sum(u, A)) ** 2).flatten(1).sum(1)
    S_ref = torch.linalg.svdvals(
        _kron_sum(u, A).reshape(2, 3, 5, 6).permute(0, 2, 1, 3).reshape(2, 5, 18)
    )
    # the Kronecker sum's singular values are those of its rearrangement (Van Loan–Pitsianis)
    assert torch.allclose(info["sigma"].flip(-1), S_ref[:, :4], atol=1e-10)
    assert torch.allclose(error, info["sigma"][:, 0] ** 2, atol=1e-10)
    assert torch.allclose(un.norm(dim=1), An.flatten(1, 2).norm(dim=1), atol=1e-10)  # rebalanced


def test_ok_reduce_handles_more_terms_than_dimensions_and_zero_terms() -> None:
    u = torch.zeros(1, 3, 6, dtype=F64)
    u[0, :, -1] = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    A = torch.zeros(1, 2, 2, 6, dtype=F64)
    A[0, :, :, -1] = torch.eye(2, dtype=F64)
    for unbiased in (True, False):
        un, An, _ = ok_reduce(u, A, unbiased=unbiased, generator=torch.Generator().manual_seed(0))
        assert un.shape == (1, 3, 5) and An.shape == (1, 2, 2, 5)
        assert torch.allclose(
            _kron_sum(un, An), _kron_sum(u, A), atol=1e-12
        )  # one live term: kept exactly


# ----------------------------------------------------------------------------- unbiasedness and variance over draws


def _draws(
    make, model: RecurrentModel, xs: torch.Tensor, ys: torch.Tensor, draws: int
) -> torch.Tensor:
    """Accumulated cell-weight gradient of one sequence for ``draws`` independent draws (run side by side as a batch)."""
    learner = make(model)
    learner.reset(draws)
    total = 0
    with torch.no_grad():
        for t in range(xs.shape[0]):
            learner.step(xs[t].expand(draws, -1), ys[t].expand(draws))
            total = total + learner.example_grads
    model.zero_grad(set_to_none=True)
    return total.flatten(1)


def _exact(model: RecurrentModel, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    return _draws(ExactRTRL, model, xs, ys, 1)[0]


def _max_z(samples: torch.Tensor, exact: torch.Tensor) -> float:
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    return float(((mean - exact).abs() / (se + 1e-12 * exact.abs().max())).max())


ESTIMATORS = {
    "UORO": lambda g: lambda m: UORO(m, generator=g),
    "KF-RTRL": lambda g: lambda m: KFRTRL(m, generator=g),
    "OK(1)": lambda g: lambda m: OK(m, 1, generator=g),
    "OK(2)": lambda g: lambda m: OK(m, 2, generator=g),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_are_unbiased(name: str) -> None:
    """Mean of 4000 draws vs the exact gradient, coordinate-wise z-scores (64 coordinates, fixed seeds).

    |z| < 5.5 for all coordinates: an unbiased estimator fails with probability ≈ 64·4e-8.
    The biased OK reduction, given the same test, fails it (the test has power).
    """
    model = _model("rhn", 2, 4, 3, init_std=0.8)
    xs, ys = _sequence(6, 1, 2, 3)
    exact = _exact(model, xs, ys)
    samples = _draws(ESTIMATORS[name](torch.Generator().manual_seed(11)), model, xs, ys, 4000)
    assert _max_z(samples, exact) < 5.5
    if name == "OK(1)":
        biased = _draws(lambda m: OK(m, 1, unbiased=False), model, xs, ys, 4000)
        assert float((biased.mean(0) - exact).norm() / exact.norm()) > 0.01


def test_ok_has_less_variance_than_kf_rtrl_and_falls_with_rank() -> None:
    model = _model("rhn", 2, 6, 3, init_std=0.8)
    xs, ys = _sequence(12, 1, 2, 3, seed=7)
    exact = _exact(model, xs, ys)
    variance = {}
    for name, make in [
        ("KF-RTRL", lambda m: KFRTRL(m, generator=torch.Generator().manual_seed(1)))
    ] + [
        (f"OK({r})", lambda m, r=r: OK(m, r, generator=torch.Generator().manual_seed(1)))
        for r in (1, 2, 4, 8)
    ]:
        samples = _draws(make, model, xs, ys, 500)
        variance[name] = float(((samples - exact) ** 2).sum(1).mean())
    assert variance["OK(1)"] < 0.9 * variance["KF-RTRL"], variance
    assert variance["OK(8)"] < variance["OK(4)"] < variance["OK(2)"] < variance["OK(1)"], variance


# ----------------------------------------------------------------------------- dtypes, devices, repeatability


def test_float32_agrees_with_float64_and_draws_are_repeatable() -> None:
    xs, ys = _sequence(6, 3)
    for make in (
        ExactRTRL,
        lambda m: OK(m, 2, unbiased=False),
        lambda m: TBPTT(m, 3),
    ):  # deterministic learners
        grads = {}
        for dtype in (torch.float32, F64):
            grads[dtype] = _run(make(_model("rhn", dtype=dtype)), xs.to(dtype), ys)
            assert all(g.dtype == dtype for g in grads[dtype])
        assert _rel([g.double() for g in grads[torch.float32]], grads[F64]) < 1e-4
    for make in (
        lambda m: OK(m, 2, generator=torch.Generator().manual_seed(5)),
        lambda m: UORO(m),
        lambda m: KFRTRL(m),
    ):
        grads32 = _run(make(_model("rhn", dtype=torch.float32)), xs.float(), ys)
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads32)
    model = _model("rhn")
    for make in (
        lambda s: OK(model, 2, generator=torch.Generator().manual_seed(s)),
        lambda s: KFRTRL(model, generator=torch.Generator().manual_seed(s)),
        lambda s: UORO(model, generator=torch.Generator().manual_seed(s)),
    ):
        assert _rel(_run(make(1), xs, ys), _run(make(1), xs, ys)) == 0.0
        assert _rel(_run(make(1), xs, ys), _run(make(2), xs, ys)) > 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_learners_on_cuda_match_cpu() -> None:
    xs, ys = _sequence(6, 3)
    model = _model("rhn")
    reference = _bptt(model, xs, ys)
    gpu = _model("rhn").cuda()
    for learner in (ExactRTRL(gpu), TBPTT(gpu, 6), OK(gpu, 6, unbiased=False)):
        grads = _run(learner, xs.cuda(), ys.cuda())
        assert _rel([g.cpu() for g in grads], reference) < 1e-8
    _run(OK(gpu, 2, generator=torch.Generator(device="cuda").manual_seed(0)), xs.cuda(), ys.cuda())
    _run(
        OK(gpu, 2, generator=torch.Generator().manual_seed(0)), xs.cuda(), ys.cuda()
    )  # a CPU generator works too


def test_step_leaves_parameters_alone() -> None:
    model = _model("rhn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xs, ys = _sequence(4, 2)
    for learner in (ExactRTRL(model), UORO(model), KFRTRL(model), OK(model, 2), TBPTT(model, 2)):
        _run(learner, xs, ys)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors() -> None:
    model = _model("rhn")
    with pytest.raises(ValueError, match="rank"):
        OK(model, 0)
    with pytest.raises(ValueError, match="rank"):
        OK(model, -2)
    with pytest.raises(ValueError, match="horizon"):
        TBPTT(model, 0)
    learner = OK(model, 2)
    with pytest.raises(RuntimeError, match="reset"):
        learner.step(torch.zeros(2, 3, dtype=F64), torch.zeros(2, dtype=torch.int64))
    learner.reset(2)
    with pytest.raises(ValueError, match="x_t"):
        learner.step(torch.zeros(2, 4, dtype=F64), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="x_t"):
        learner.step(torch.zeros(3, 3, dtype=F64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="y_t"):
        learner.step(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="mask"):
        learner.reset_where(torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="x_t"):
        model.cell(torch.zeros(2, 5, dtype=F64))
    with pytest.raises(ValueError, match="h_prev"):
        model.cell(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="readout"):
        RecurrentModel(RHNCell(3, 5), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="batch_size"):
        learner.reset(0)
    with pytest.raises(ValueError):
        ok_reduce(torch.zeros(1, 3, 1), torch.zeros(1, 2, 2, 1))
    with pytest.raises(ValueError):
        CopyTask(0)


# ----------------------------------------------------------------------------- tasks


def test_copy_task_sequences_and_curriculum() -> None:
    task = CopyTask(1, T_start=3, curriculum=False, generator=torch.Generator().manual_seed(0))
    steps = [task.next() for _ in range(16)]
    x = torch.stack([s.x[0].argmax() for s in steps])
    y = torch.stack([s.y[0] for s in steps])
    assert bool(steps[0].reset[0]) and bool(steps[8].reset[0]) and not bool(steps[1].reset[0])
    seq_x, seq_y = x[:8], y[:8]
    assert seq_x[0] == 2 and bool((seq_x[4:] == 3).all()) and bool((seq_x[1:4] < 2).all())
    assert bool((seq_y[:4] == 3).all()) and torch.equal(seq_y[4:], seq_x[:4])
    xs, ys = task.batch(5, 7)
    assert xs.shape == (12, 7, 4) and torch.equal(ys[6:], xs[:6].argmax(-1))
    grow = CopyTask(2, ema=0.5)
    grown = [grow.observe(0.0) for _ in range(20)]
    assert grow.T > 1 and any(grown)
    assert not CopyTask(2, ema=0.5).observe(5.0)


def test_char_stream_predicts_the_next_character() -> None:
    codes, symbols = sequences.encode_text("Hello, world! ß")
    assert (
        symbols[int(codes[0])] == "h" and int(codes[-1]) == len(symbols) - 1
    )  # 'ß' is not in the alphabet
    stream = sequences.char_stream(codes, len(symbols), 2, reset_every=3)
    a, b = stream.next(), stream.next()
    assert (
        torch.equal(a.x.argmax(1)[0], codes[0])
        and torch.equal(a.y[0], codes[1])
        and torch.equal(b.x.argmax(1)[0], codes[1])
    )
    assert bool(a.reset.all()) and not bool(b.reset.any())
    assert len(sequences.pydoc_text()) > 100_000


def test_ptb_offline_error_names_the_embedded_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise DownloadError(
            "could not download ptb.char.train.txt (ConnectionError); are you offline?"
        )

    monkeypatch.setattr(sequences, "fetch", offline)
    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    with pytest.raises(DownloadError, match="pydoc_text"):
        sequences.ptb_text("train", root=str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        sequences.ptb_text("dev")


def test_ptb_is_checked_by_its_hash_and_says_so_when_none_is_pinned(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import subprocess

    folder = tmp_path / "ptb"
    folder.mkdir()
    content = b"a _ c a t\nt h e _ d o g\n"
    (folder / "ptb.char.valid.txt").write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    # the git object id, against git itself
    blob = (
        subprocess.run(
            ["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    assert sequences.git_blob_id(content) == blob
    monkeypatch.setitem(sequences.PTB_GIT_BLOBS, "valid", blob)
    monkeypatch.setitem(sequences.PTB_SHA256, "valid", None)
    assert sequences.ptb_text("valid", root=str(tmp_path)) == "a cat\nthe dog"
    printed = capsys.readouterr().out
    assert "UNCHECKED" in printed and digest in printed  # the first person online can pin it
    monkeypatch.setitem(sequences.PTB_SHA256, "valid", digest)
    assert sequences.ptb_text("valid", root=str(tmp_path)) == "a cat\nthe dog"
    assert "UNCHECKED" not in capsys.readouterr().out
    monkeypatch.setitem(sequences.PTB_SHA256, "valid", "0" * 64)
    with pytest.raises(DownloadError, match="not the pinned"):
        sequences.ptb_text("valid", root=str(tmp_path))
    monkeypatch.setitem(sequences.PTB_SHA256, "valid", digest)
    monkeypatch.setitem(sequences.PTB_GIT_BLOBS, "valid", "0" * 40)
    with pytest.raises(DownloadError, match="not the pinned"):
        sequences.ptb_text("valid", root=str(tmp_path))
    # the pinned files come from fixed commits
    assert all(len(u.split("/")[5]) == 40 for u in sequences.PTB_URLS.values())


def test_ptb_dry_run_stands_in_random_text_of_its_vocabulary(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("NNSTUDIES_DRY_RUN", "1")
    with pytest.warns(UserWarning, match="dry run"):
        text = sequences.ptb_text("train", root=str(tmp_path))
    assert len(set(text)) == sequences.PTB_SYMBOLS and len(text) > 10_000


# ----------------------------------------------------------------------------- the chapter's helpers


def test_chapter_learners_name_build_and_colour_every_algorithm() -> None:
    from nnstudies.chapters import rtrl as ch

    model = _model("rhn")
    A = ch.Algorithm
    expected = {
        A.EXACT: ExactRTRL,
        A.UORO: UORO,
        A.KF: KFRTRL,
        A.OK: OK,
        A.TBPTT: TBPTT,
        A.TBPTT_EVERY_K: rtrl.ChunkedTBPTT,
    }
    assert set(A) == set(expected)
    for algorithm, cls in expected.items():
        learner = ch.Learner(algorithm, rank=3, horizon=4)
        built = learner.build(model, torch.Generator().manual_seed(0))
        assert type(built) is cls and ch.colour(learner)
    assert ch.Learner(A.OK, rank=3).build(model).rank == 3  # type: ignore[attr-defined]
    assert ch.Learner(A.TBPTT, horizon=4).build(model).horizon == 4  # type: ignore[attr-defined]
    assert ch.Learner(A.OK, rank=3, horizon=4) == ch.Learner(A.OK, rank=3)  # one key per setting
    labels = [ch.Learner(a, rank=4, horizon=3).label for a in A]
    assert labels == [
        "exact RTRL",
        "UORO",
        "KF-RTRL",
        "OK (r=4)",
        "TBPTT (k=3)",
        "TBPTT (k=3, every k)",
    ]
    assert ch.Learner(A.OK, rank=2, unbiased=False).label == "OK (r=2), biased"
    assert not ch.Learner(A.OK, rank=2, unbiased=False).build(model).unbiased  # type: ignore[attr-defined]
    assert ch.colour(ch.Learner(A.OK, rank=1)) != ch.colour(ch.Learner(A.OK, rank=16))
    with pytest.raises(TypeError, match="unknown learner"):
        ch.Learner("ok")  # type: ignore[arg-type]
    for p in ch.PRESETS.values():  # every preset is typed and complete
        assert p.horizon.horizons == (p.horizon.length + 1, p.horizon.length + 2)
        assert len(p.curriculum.seeds) >= 3 and len(p.characters.seeds) >= 2


def test_chapter_runs_use_one_thread_and_restore_the_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """A copy-task and a character run executed directly (not through a sweep's worker) train on
    one torch thread, and leave the caller's thread count as it was."""
    from dataclasses import replace

    from nnstudies.chapters import rtrl as ch
    from nnstudies.chapters.rtrl import characters, experiment
    from nnstudies.runs import execute

    seen: list[int] = []
    for module in (experiment, characters):
        real = module.fit

        def counting(*args: object, _real=real, **kwargs: object):  # type: ignore[no-untyped-def]
            seen.append(torch.get_num_threads())
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "fit", counting)
    p = ch.PRESETS["smoke"]
    tiny = replace(p, horizon=replace(p.horizon, steps=3))
    learner = ch.Learner(ch.Algorithm.OK, rank=2)
    copy = replace(ch.copy_spec(learner, tiny, length=1), device="cpu")
    chars = replace(ch.char_spec(learner, p), steps=2, eval_every=2, eval_steps=3, device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for spec in (copy, chars):
            run = execute(spec, root=tmp_path)
            assert torch.get_num_threads() == 2
            assert run.model().cell.hidden_size == p.copy.hidden  # type: ignore[union-attr]
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]
    copy_run = ch.CopyRun.of(execute(copy, root=tmp_path))
    assert copy_run.spec == learner and len(copy_run.lengths) == 3 and copy_run.final_length == 1


def test_chapter_online_step_through_fit_learns_the_copy_task_at_a_short_length() -> None:
    """The online step run by fit: OK(2) on T = 1 copies the bit after a few hundred updates (fixed seeds)."""
    from nnstudies.chapters import rtrl as ch
    from nnstudies.device import threads
    from nnstudies.training import fit

    model = ch.build_model(16, 4, 4, init_std=0.2, seed=0, device=torch.device("cpu"))
    task = CopyTask(8, T_start=1, curriculum=False, generator=torch.Generator().manual_seed(0))
    learner = ch.Learner(ch.Algorithm.OK, rank=2).build(model, torch.Generator().manual_seed(1))
    learner.reset(8)
    seen: list[float] = []
    step = ch.online_step(
        model,
        learner,
        task,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        clip=1.0,
        observe=lambda s, loss: seen.append(loss),
    )
    with threads(1):
        history = fit(step, steps=400, show_progress=False)
    assert seen == history.train_loss
    assert sum(history.train_loss[-50:]) / 50 < 0.5 * sum(history.train_loss[:50]) / 50
    profile = ch.length_profile(model, [1])
    assert profile[0] < 0.3  # bits per copied bit, guessing is 1


def test_chapter_cost_study_exponents_and_interval() -> None:
    from nnstudies.chapters import rtrl as ch

    assert abs(ch.fit_exponent([2, 4, 8], [1.0, 8.0, 64.0]) - 3.0) < 1e-9
    slope, lo, hi = ch.exponent_interval(
        [2, 4, 8], [[1.0, 8.0, 64.0], [1.1, 8.0, 60.0], [0.9, 8.5, 66.0]]
    )
    assert lo < 3.0 < hi and abs(slope - 3.0) < 0.1
    exact, ok = ch.Learner(ch.Algorithm.EXACT), ch.Learner(ch.Algorithm.OK, rank=2)
    threads = torch.get_num_threads()
    seconds, _, state = ch.measure_step(ok, 8, batch=2, steps=1)
    assert state > 0 and seconds > 0 and torch.get_num_threads() == threads
    study = ch.CostStudy(
        (4, 8, 16),
        2,
        {exact: [[1.0, 16.0, 256.0]] * 3, ok: [[1.0, 8.0, 64.0]] * 3},
        exact,
        ok,
        judged=False,
    )
    assert study.exponents(study.exact) == pytest.approx(
        [4.0] * 3
    ) and study.ratios() == pytest.approx([4.0] * 3)


def test_chapter_bigram_baseline_against_a_hand_count() -> None:
    from nnstudies.chapters import rtrl as ch

    train, test = torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([0, 1, 1])
    # add-one counts: from 0: {0: 1, 1: 4}; from 1: {0: 3, 1: 1}; p(1|0) = 4/5, p(1|1) = 1/4
    expected = -(math.log2(4 / 5) + math.log2(1 / 4)) / 2
    assert ch.bigram_bits(train, test, 2) == pytest.approx(expected)
    assert ch.unigram_bits(torch.tensor([0, 1, 0, 1]), 2) == pytest.approx(1.0)


def test_chapter_online_step_updates_every_k_steps_with_chunked_tbptt() -> None:
    """With TBPTT updating every k steps, the online step leaves the parameters alone inside a
    chunk and changes them at its last step; with the sliding window, at every step."""
    from nnstudies.chapters import rtrl as ch

    for algorithm, changed in (
        (ch.Algorithm.TBPTT_EVERY_K, [False, False, True] * 2),
        (ch.Algorithm.TBPTT, [True] * 6),
    ):
        model = ch.build_model(6, 4, 4, init_std=0.2, seed=0, device=torch.device("cpu"))
        task = CopyTask(3, T_start=2, curriculum=False, generator=torch.Generator().manual_seed(0))
        learner = ch.Learner(algorithm, horizon=3).build(model)
        learner.reset(3)
        step = ch.online_step(
            model, learner, task, torch.optim.Adam(model.parameters(), lr=1e-2), clip=1.0
        )
        seen = []
        for t in range(6):
            before = model.cell.weight.detach().clone()
            step(t)
            seen.append(not torch.equal(before, model.cell.weight))
        assert seen == changed, algorithm


def test_chapter_catch_up_is_the_first_swept_k_to_reach_ok() -> None:
    """The k at which TBPTT catches OK: the smallest swept k whose mean length reaches OK's mean."""
    from nnstudies.chapters import rtrl as ch
    from nnstudies.training import History

    def runs(learner: ch.Learner, lengths: list[int]) -> list[ch.CopyRun]:
        return [
            ch.CopyRun(learner, s, History(seconds=1.0), [T], []) for s, T in enumerate(lengths)
        ]

    ok = ch.Learner(ch.Algorithm.OK, rank=8)
    every = {k: ch.Learner(ch.Algorithm.TBPTT_EVERY_K, horizon=k) for k in (5, 8, 10)}
    sliding = {k: ch.Learner(ch.Algorithm.TBPTT, horizon=k) for k in (5, 8, 10)}
    table = {ok: runs(ok, [9, 10, 10])}
    table |= {learner: runs(learner, [6, 7, 7]) for learner in every.values()}
    table |= {sliding[5]: runs(sliding[5], [7, 7, 7]), sliding[8]: runs(sliding[8], [9, 10, 9])}
    table[sliding[10]] = runs(sliding[10], [10, 10, 10])
    study = ch.CurriculumStudy(table, ok, every[8], (5, 8, 10))
    assert study.catch_up(ch.Algorithm.TBPTT_EVERY_K) is None
    assert study.catch_up(ch.Algorithm.TBPTT) == 10  # 9.33 < 9.67 at k = 8
    assert study.seconds(ok) == [1.0, 1.0, 1.0]
