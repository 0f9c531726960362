"""nnstudies.optim against explicitly formed matrices, per-example autograd loops, and a peer
library (curvlinops).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnstudies import MLP
from nnstudies.optim import (
    FOOF,
    KFAC,
    NaturalGradient,
    a_inner_cosine,
    damped_inverse,
    foof_direction,
    heuristic_damping,
    input_factor,
    kfac_direction,
    layer_statistics,
    natural_gradient_direction,
    output_factor,
    sample_labels,
    training_step,
)


@pytest.fixture(autouse=True)
def _float64() -> None:
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def tiny(bias: bool = True, seed: int = 0) -> tuple[MLP, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = MLP(5, [4, 3], 3, bias=bias, init="torch").double()
    x = torch.randn(7, 5)
    y = torch.randint(3, (7,))
    return model, x, y


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reference: a Python loop of autograd gradients of ℓ_i, flattened over all parameters (B ×
    |θ|)."""
    rows = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        rows.append(
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])
        )
    return torch.stack(rows)


def explicit_factors(
    model: MLP, x: torch.Tensor, y: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Reference: (Ā, Ḡ, ∇W̃) per layer from a loop over examples, with inputs and output gradients
    by autograd.
    """
    out = []
    layers = model.linears
    for index, layer in enumerate(layers):
        a_sum = g_sum = grad_sum = 0
        for i in range(len(x)):
            h = x[i : i + 1]
            for j, l in enumerate(layers):
                if j == index:
                    a = torch.cat([h, torch.ones(1, 1)], 1) if l.bias is not None else h
                    z = l(h)
                    break
                h = torch.relu(l(h))
            logits = z
            for l in layers[index + 1 :]:
                logits = l(torch.relu(logits))
            (e,) = torch.autograd.grad(F.cross_entropy(logits, y[i : i + 1]), z)
            a, e = a.detach().reshape(-1), e.reshape(-1)
            a_sum = a_sum + torch.outer(a, a)
            g_sum = g_sum + torch.outer(e, e)
            grad_sum = grad_sum + torch.outer(e, a)
        b = len(x)
        out.append((a_sum / b, g_sum / b, grad_sum / b))
    return out


def as_matrices(model: MLP, direction: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer [W b] from a per-parameter list."""
    it = iter(direction)
    mats = []
    for layer in model.linears:
        w = next(it)
        mats.append(torch.cat([w, next(it)[:, None]], 1) if layer.bias is not None else w)
    return mats


@pytest.mark.parametrize("bias", [True, False])
def test_statistics_match_an_explicit_loop(bias: bool) -> None:
    model, x, y = tiny(bias)
    stats = layer_statistics(model, x, y)
    for s, (a, g, grad) in zip(stats, explicit_factors(model, x, y)):
        torch.testing.assert_close(s.a_factor(), a)
        torch.testing.assert_close(s.g_factor(), g)
        torch.testing.assert_close(s.gradient(), grad)
    # and the gradient is the gradient of the batch-mean loss
    auto = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    ours = as_matrices(
        model,
        [
            g
            for s in stats
            for g in ([s.gradient()[:, :-1], s.gradient()[:, -1]] if bias else [s.gradient()])
        ],
    )
    torch.testing.assert_close(ours, as_matrices(model, list(auto)))


def test_foof_direction_explicit() -> None:
    model, x, y = tiny()
    lam = 0.3
    ours = as_matrices(model, foof_direction(model, x, y, lam))
    for d, (a, _, grad) in zip(ours, explicit_factors(model, x, y)):
        torch.testing.assert_close(d, grad @ torch.linalg.inv(a + lam * torch.eye(len(a))))


def test_kfac_heuristic_explicit() -> None:
    model, x, y = tiny()
    lam = 0.5
    ours = as_matrices(model, kfac_direction(model, x, y, lam))
    for d, (a, g, grad) in zip(ours, explicit_factors(model, x, y)):
        pi = math.sqrt((a.trace() / len(a)) / (g.trace() / len(g)))
        lam_a, lam_g = pi * math.sqrt(lam), math.sqrt(lam) / pi
        expected = (
            torch.linalg.inv(g + lam_g * torch.eye(len(g)))
            @ grad
            @ torch.linalg.inv(a + lam_a * torch.eye(len(a)))
        )
        torch.testing.assert_close(d, expected)


def test_kfac_standard_damping_is_the_damped_kronecker_product() -> None:
    model, x, y = tiny()
    lam = 0.05
    ours = as_matrices(model, kfac_direction(model, x, y, lam, damping_kind="standard"))
    for d, (a, g, grad) in zip(ours, explicit_factors(model, x, y)):
        big = torch.kron(a, g) + lam * torch.eye(
            len(a) * len(g)
        )  # acts on vec(X) = columns stacked
        vec = torch.linalg.solve(big, grad.T.reshape(-1))
        torch.testing.assert_close(d, vec.reshape(grad.shape[1], grad.shape[0]).T)


@pytest.mark.parametrize("fisher", ["empirical", "mc"])
def test_natural_gradient_against_explicit_fisher(fisher: str) -> None:
    model, x, y = tiny()
    lam = 0.1
    labels = (
        y
        if fisher == "empirical"
        else sample_labels(model(x), generator=torch.Generator().manual_seed(3))
    )
    g_i = per_example_grads(model, x, labels)
    fisher_matrix = g_i.T @ g_i / len(x)
    grad = torch.cat(
        [
            g.reshape(-1)
            for g in torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        ]
    )
    expected = torch.linalg.solve(fisher_matrix + lam * torch.eye(len(grad)), grad)
    ours = natural_gradient_direction(
        model, x, y, lam, fisher=fisher, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(torch.cat([d.reshape(-1) for d in ours]), expected)


def test_conv2d_statistics_and_natural_gradient() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 2, 2, stride=2, bias=False),
        nn.Flatten(),
        nn.Linear(2 * 2 * 2, 3),
    )
    x, y = torch.randn(5, 2, 4, 4), torch.randint(3, (5,))
    stats = layer_statistics(model, x, y)
    auto = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    torch.testing.assert_close(stats[0].gradient()[:, :-1].reshape(3, 2, 3, 3), auto[0])
    torch.testing.assert_close(stats[0].gradient()[:, -1], auto[1])
    torch.testing.assert_close(stats[1].gradient().reshape(2, 3, 2, 2), auto[2])
    lam = 0.2
    g_i = per_example_grads(model, x, y)
    grad = torch.cat([g.reshape(-1) for g in auto])
    expected = torch.linalg.solve(g_i.T @ g_i / len(x) + lam * torch.eye(len(grad)), grad)
    ours = natural_gradient_direction(model, x, y, lam)
    torch.testing.assert_close(torch.cat([d.reshape(-1) for d in ours]), expected)


def test_kfac_matches_curvlinops() -> None:
    """The KFAC curvature Ā ⊗ Ḡ against a peer library: curvlinops' KFACLinearOperator (empirical
    Fisher), as dense matrices.
    """
    curvlinops = pytest.importorskip(
        "curvlinops",
        reason="curvlinops (a test-only peer library) is not installed; `make test` installs it",
    )
    model, x, y = tiny()
    params = list(model.parameters())
    op = curvlinops.KFACLinearOperator(
        model,
        nn.CrossEntropyLoss(),
        params,
        [(x, y)],
        fisher_type="empirical",
        separate_weight_and_bias=False,
        check_deterministic=False,
    )
    dim = sum(p.numel() for p in params)
    theirs = op @ torch.eye(dim)
    stats = layer_statistics(model, x, y)

    def ours_times(v: torch.Tensor) -> torch.Tensor:
        """Apply X ↦ Ḡ X Ā per layer to a parameter-space vector (W row-major, then b)."""
        out, offset = [], 0
        for s, layer in zip(stats, model.linears):
            n, m = layer.weight.shape
            w = v[offset : offset + n * m].reshape(n, m)
            b = v[offset + n * m : offset + n * m + n]
            y_ = s.g_factor() @ torch.cat([w, b[:, None]], 1) @ s.a_factor()
            out += [y_[:, :-1].reshape(-1), y_[:, -1]]
            offset += n * m + n
        return torch.cat(out)

    ours = torch.stack([ours_times(col) for col in torch.eye(dim).T], dim=1)
    torch.testing.assert_close(torch.as_tensor(theirs), ours)


@pytest.mark.parametrize("order", ["dense", "factored"])
@pytest.mark.parametrize("kind", ["foof", "kfac-heuristic", "kfac-standard", "natural"])
def test_optimizer_step_equals_lr_times_direction(kind: str, order: str) -> None:
    model, x, y = tiny()
    before = [p.detach().clone() for p in model.parameters()]
    lr, lam = 0.1, 0.7
    if kind == "foof":
        direction = foof_direction(model, x, y, lam)
        opt = FOOF(model, lr, lam, momentum=0.0, decay=0.0, inv_period=1, order=order)
    elif kind.startswith("kfac"):
        damping_kind = kind.split("-")[1]
        direction = kfac_direction(model, x, y, lam, damping_kind=damping_kind, fisher="empirical")
        opt = KFAC(
            model,
            lr,
            lam,
            damping_kind=damping_kind,
            fisher="empirical",
            decay=0.0,
            inv_period=1,
            order=order,
        )
    else:
        direction = natural_gradient_direction(model, x, y, lam)
        opt = NaturalGradient(model, lr, lam, fisher="empirical")
    opt.zero_grad()
    outputs = model(x)
    loss = F.cross_entropy(outputs, y)
    if isinstance(opt, KFAC):
        opt.backward(loss, outputs)
        opt.step()
    elif isinstance(opt, NaturalGradient):
        loss.backward()
        opt.step(fisher_inputs=x, fisher_targets=y)
    else:
        loss.backward()
        opt.step()
    for p, p0, d in zip(model.parameters(), before, direction):
        torch.testing.assert_close(p.detach(), p0 - lr * d)


def _foof_momentum_step(ref, stats, velocity, inverse, lr=0.1, beta=0.9):
    """One FOOF update with heavy-ball momentum written out by hand: the velocity of the full
    gradients [∇W | ∇b], times the damped inverse of Ā, subtracted from each layer. Returns the
    velocity."""
    grads = [s.gradient() for s in stats]
    velocity = grads if velocity is None else [beta * v + g for v, g in zip(velocity, grads)]
    with torch.no_grad():
        for layer, v, inv in zip(ref.linears, velocity, inverse):
            d = v @ inv
            layer.weight -= lr * d[:, :-1]
            layer.bias -= lr * d[:, -1]
    return velocity


@pytest.mark.parametrize("order", ["auto", "dense", "factored"])
def test_foof_momentum_and_period(order: str) -> None:
    """Heavy-ball momentum on the raw gradient, preconditioner frozen between inversions: the
    factored order (momentum kept on the preconditioned gradient between inversions, recomputed
    from the raw buffer at each inversion) gives the same updates, across two inversions."""
    model, x, y = tiny(seed=1)
    opt = FOOF(model, 0.1, 0.5, momentum=0.9, decay=0.0, inv_period=3, stat_steps=1, order=order)
    ref = MLP(5, [4, 3], 3, init="torch").double()
    ref.load_state_dict(model.state_dict())
    velocity = None
    inverse = None
    for step in range(8):
        xb = x + 0.1 * step
        if (
            step % 3 == 0
        ):  # the only steps whose inputs feed Ā (stat_steps=1, decay 0): refresh the inverse
            stats = layer_statistics(ref, xb, y)
            inverse = [
                torch.linalg.inv(s.a_factor() + 0.5 * torch.eye(s.a_factor().shape[0]))
                for s in stats
            ]
        velocity = _foof_momentum_step(ref, layer_statistics(ref, xb, y), velocity, inverse)
        opt.zero_grad()
        F.cross_entropy(model(xb), y).backward()
        opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("damping_kind", ["heuristic", "standard"])
def test_kfac_factored_order_with_momentum_equals_dense(damping_kind: str) -> None:
    """KFAC with momentum, T = 3, seven steps: the factored order (momentum on the preconditioned
    gradient between inversions) gives the dense order's parameters (momentum on the raw gradient,
    whose one-step form is checked against kfac_direction above)."""
    models = []
    for order in ("dense", "factored"):
        model, x, y = tiny(seed=2)
        opt = KFAC(
            model,
            0.1,
            0.5,
            damping_kind=damping_kind,
            fisher="empirical",
            momentum=0.9,
            inv_period=3,
            order=order,
        )
        for step in range(7):
            xb = x + 0.1 * step
            opt.zero_grad()
            outputs = model(xb)
            opt.backward(F.cross_entropy(outputs, y), outputs)
            opt.step()
        models.append(model)
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q)


def test_a_inner_cosine_of_a_direction_with_itself_is_one() -> None:
    model, x, y = tiny()
    d = foof_direction(model, x, y, 1.0)
    assert a_inner_cosine(model, x, d, d) == pytest.approx([1.0, 1.0, 1.0])
    neg = [-t for t in d]
    assert a_inner_cosine(model, x, d, neg) == pytest.approx([-1.0, -1.0, -1.0])


def test_bad_inputs() -> None:
    model, x, y = tiny()
    with pytest.raises(ValueError, match="BatchNorm1d"):
        FOOF(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 0.1, 1.0)
    with pytest.raises(ValueError, match="damping"):
        kfac_direction(model, x, y, 0.0)
    with pytest.raises(ValueError, match="damping_kind"):
        kfac_direction(model, x, y, 1.0, damping_kind="both")
    with pytest.raises(ValueError, match="fisher"):
        natural_gradient_direction(model, x, y, 1.0, fisher="exact")
    opt = KFAC(model, 0.1, 1.0)
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="optimizer.backward"):
        opt.step()
    with pytest.raises(ValueError, match="fisher_inputs"):
        NaturalGradient(model, 0.1, 1.0).step()


def test_singular_factor_is_reported() -> None:
    model, x, y = tiny()
    opt = FOOF(model, 0.1, 1e-30, momentum=0.0, decay=0.0, inv_period=1)
    F.cross_entropy(
        model(torch.zeros_like(x)), y
    ).backward()  # inputs all zero: Ā is singular (but for the bias)
    with pytest.raises(FloatingPointError, match="singular|positive definite"):
        opt.step()


# ----------------------------------------------------------- the one place for factors and inverses


def _spd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2 * n, generator=g)
    return x @ x.T / (2 * n)


@pytest.mark.parametrize("kind", ["foof", "heuristic", "standard"])
def test_damped_inverse_against_explicit_matrices(kind: str) -> None:
    a, g = _spd(4, 0), _spd(3, 1)
    grad = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    lam = 0.2
    if kind == "foof":
        ours = damped_inverse(a, None, lam).apply(grad)
        expected = grad @ torch.linalg.inv(a + lam * torch.eye(4))
    elif kind == "heuristic":
        ours = damped_inverse(a, g, lam, "heuristic").apply(grad)
        pi = math.sqrt((a.trace() / 4) / (g.trace() / 3))
        lam_a, lam_g = pi * math.sqrt(lam), math.sqrt(lam) / pi
        assert heuristic_damping(a, g, lam) == pytest.approx((lam_a, lam_g))
        expected = (
            torch.linalg.inv(g + lam_g * torch.eye(3))
            @ grad
            @ torch.linalg.inv(a + lam_a * torch.eye(4))
        )
    else:
        ours = damped_inverse(a, g, lam, "standard").apply(grad)
        vec = torch.linalg.solve(torch.kron(a, g) + lam * torch.eye(12), grad.T.reshape(-1))
        expected = vec.reshape(4, 3).T
    torch.testing.assert_close(ours, expected)


def test_factors_average_over_examples_and_positions() -> None:
    a = torch.randn(5, 3, 4)  # (B, positions, features)
    e = torch.randn(5, 3, 2)
    torch.testing.assert_close(
        input_factor(a), sum(torch.outer(v, v) for v in a.reshape(-1, 4)) / 15
    )
    torch.testing.assert_close(
        output_factor(e), sum(torch.outer(v, v) for v in e.reshape(-1, 2)) / 5
    )


@pytest.mark.parametrize("kind", ["heuristic", "standard"])
def test_optimizer_inverses_are_the_directions_inverses(kind: str) -> None:
    """KFAC.invert() and kfac_direction share damped_inverse: one step with fresh factors is −η ×
    the direction.
    """
    model, x, y = tiny(seed=2)
    opt = KFAC(model, 0.1, 0.3, damping_kind=kind, fisher="empirical", decay=0.0, inv_period=1)
    direction = kfac_direction(model, x, y, 0.3, damping_kind=kind, fisher="empirical")
    before = [p.detach().clone() for p in model.parameters()]
    training_step(opt, model, x, y)
    for p, p0, d in zip(model.parameters(), before, direction):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * d)
    opt.invert()  # the same factors again: the same update direction
    with pytest.raises(RuntimeError, match="no Ā yet"):
        FOOF(model, 0.1, 1.0).invert()


def test_chapter_cosine_matches_a_inner_cosine() -> None:
    """The chapter's KFAC-vs-FOOF cosine equals a_inner_cosine of kfac_direction and foof_direction
    at λ_A.
    """
    from nnstudies.chapters.neuron_descent import cosine_to_foof

    model, x, y = tiny(bias=False, seed=3)
    lam = 0.1
    heuristic, standard = cosine_to_foof(model, x, y, lam, seed=5)
    expected = {}
    for kind in ("heuristic", "standard"):
        kfac = kfac_direction(
            model,
            x,
            y,
            lam,
            damping_kind=kind,
            fisher="mc",
            generator=torch.Generator().manual_seed(5),
        )
        stats = layer_statistics(
            model, x, y, fisher="mc", generator=torch.Generator().manual_seed(5)
        )
        cosines = []
        for i, s in enumerate(stats):
            lam_a, _ = heuristic_damping(s.a_factor(), s.g_factor(), lam)
            cosines.append(a_inner_cosine(model, x, kfac, foof_direction(model, x, y, lam_a))[i])
        expected[kind] = sum(cosines) / len(cosines)
    assert heuristic == pytest.approx(expected["heuristic"])
    assert standard == pytest.approx(expected["standard"])


def test_tuning_avoids_the_edge_of_stability() -> None:
    """A grid point whose next larger learning rate fails (diverges, climbs, or ends 10× worse) is
    not chosen.
    """
    from nnstudies.chapters.neuron_descent import Method, MethodRun, Setting, TuningResult
    from nnstudies.training import History

    def run(final: float, best: float | None = None, diverged: bool = False) -> MethodRun:
        h = History(
            train_loss=[2.3], eval_step=[1, 2], metrics={"train_loss": [best or final, final]}
        )
        h.diverged_at = 7 if diverged else None
        return MethodRun(Method.SGD, Setting(0.1), 0, h)

    tuning = TuningResult(
        Method.SGD,
        {
            Setting(0.01): [run(0.3)],
            Setting(0.03): [run(0.1)],
            Setting(0.1): [run(0.01)],
            Setting(0.3): [run(1.9, best=1.5)],
        },
    )
    assert not tuning.stable(
        Setting(0.1)
    )  # its neighbour 0.3 ends 190× worse: the cliff is one step away
    assert tuning.choice == Setting(0.03)
    assert tuning.best == tuning.setting("best point") == Setting(0.1)  # the best point protocol
    assert tuning.setting("stability rule") == tuning.choice
    with pytest.raises(ValueError, match="unknown protocol"):
        tuning.setting("median")
    tuning.runs[Setting(0.3)] = [run(2.3, diverged=True)]
    assert tuning.choice == Setting(0.03)
    tuning.runs[Setting(0.3)] = [run(0.05)]
    assert tuning.choice == Setting(0.1)
    tuning.runs[Setting(0.1)] = [run(0.01, best=0.001)]  # climbing at the end: 10× above its best
    assert math.isinf(tuning.score(Setting(0.1)))
    assert tuning.choice == Setting(0.01)  # 0.3 sits on the grid's edge: nothing checks it
    assert not tuning.stable(Setting(0.3))


def test_tuning_grid_grows_past_a_winning_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``extend=2`` a grid whose best learning rate sits at an end gains the next 1-3-10 step
    beyond it, at most twice per end, and the choice then needs the added point's stability; a
    best point inside the grid adds nothing. Each round is one run_all over the round's points.
    """
    from dataclasses import replace

    from nnstudies.chapters.neuron_descent import Method, Setting, grid, studies, tune
    from nnstudies.chapters.neuron_descent.presets import SMOKE
    from nnstudies.runs import Run
    from nnstudies.training import History

    rounds: list[int] = []

    def fake(specs: list, **_: object) -> list[Run]:
        rounds.append(len(specs))
        out = []
        for spec in specs:
            final = 0.01 * (1 + abs(math.log10(spec.setting.lr / best_lr)))  # lowest at best_lr
            h = History(train_loss=[2.3], eval_step=[1], metrics={"train_loss": [final]})
            out.append(Run(spec, "key", {}, h, 0.0))
        return out

    preset = replace(
        SMOKE, mlp=replace(SMOKE.mlp, grids={Method.SGD: grid((0.01, 0.03, 0.1))}, extend=2)
    )
    monkeypatch.setattr(studies, "run_all", fake)
    lrs = lambda result: sorted(s.lr for s in result.runs)
    best_lr = 0.3  # one step above the grid: 0.3 is added, then 1.0 checks it
    result = tune(preset, Method.SGD)
    assert lrs(result) == [0.01, 0.03, 0.1, 0.3, 1.0]
    assert result.choice == Setting(0.3)
    assert rounds == [3, 1, 1]
    best_lr = 100.0  # far above: two steps, and the best stays on the edge, unchosen
    result = tune(preset, Method.SGD)
    assert lrs(result) == [0.01, 0.03, 0.1, 0.3, 1.0]
    assert result.choice == Setting(0.3)
    best_lr = 0.001  # below: 0.003, then 0.001
    assert lrs(tune(preset, Method.SGD)) == [0.001, 0.003, 0.01, 0.03, 0.1]
    best_lr = 0.03  # inside: nothing added
    assert lrs(tune(preset, Method.SGD)) == [0.01, 0.03, 0.1]


# ------------------------------------------------------- issue 23: cost levers and directions


@pytest.mark.parametrize("kind", ["foof", "heuristic", "standard"])
def test_unapply_undoes_apply(kind: str) -> None:
    """DampedInverse.unapply multiplies by the damped curvature: unapply(apply(G)) = G, and for
    standard damping it is (Ā ⊗ Ḡ + λI) vec G, formed explicitly."""
    torch.manual_seed(6)
    a = torch.randn(9, 4)
    e = torch.randn(9, 3)
    a_bar, g_bar = a.T @ a / 9, e.T @ e / 9
    inverse = damped_inverse(a_bar, None if kind == "foof" else g_bar, 0.3, kind)
    grad = torch.randn(3, 4)
    torch.testing.assert_close(inverse.unapply(inverse.apply(grad)), grad)
    if kind == "standard":
        big = torch.kron(a_bar, g_bar) + 0.3 * torch.eye(12)
        expected = (big @ grad.T.reshape(-1)).reshape(4, 3).T
        torch.testing.assert_close(inverse.unapply(grad), expected)


@pytest.mark.parametrize("kind", ["foof", "kfac"])
def test_backward_forms_no_weight_gradient_of_factored_layers(kind: str) -> None:
    """optimizer.backward leaves .grad of the layers built in the factored order empty (their ∇W̃
    is never formed) and gives the update of the dense order, which reads ∇W̃ from autograd."""
    models = []
    for order in ("dense", "factored"):
        model, x, y = tiny(seed=7)
        opt: FOOF | KFAC = (
            FOOF(model, 0.1, 0.5, momentum=0.0, inv_period=1, order=order)
            if kind == "foof"
            else KFAC(model, 0.1, 0.5, fisher="empirical", inv_period=1, order=order)
        )
        opt.zero_grad()
        outputs = model(x)
        opt.backward(F.cross_entropy(outputs, y), outputs)
        grads = [p.grad for p in model.parameters()]
        assert (
            all(g is None for g in grads)
            if order == "factored"
            else all(g is not None for g in grads)
        )
        opt.step()
        models.append(model)
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q)


def _factored_foof(seed: int, **schedule: int) -> tuple[MLP, MLP, FOOF, torch.Tensor, torch.Tensor]:
    """A FOOF with momentum in the factored order, a copy of its model for the explicit loop, and
    a batch."""
    torch.manual_seed(seed)
    model = MLP(20, [16], 3, init="torch").double()
    ref = MLP(20, [16], 3, init="torch").double()
    ref.load_state_dict(model.state_dict())
    x, y = torch.randn(8, 20), torch.randint(3, (8,))
    opt = FOOF(model, 0.1, 0.5, momentum=0.9, decay=0.0, order="factored", **schedule)
    return model, ref, opt, x, y


def _foof_inverse(ref: MLP, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """(Ā + 0.5 I)⁻¹ of each layer of ``ref`` on one batch, by an explicit inverse."""
    return [
        torch.linalg.inv(s.a_factor() + 0.5 * torch.eye(s.a_factor().shape[0]))
        for s in layer_statistics(ref, x, y)
    ]


@pytest.mark.parametrize("period", [1, 3])
def test_foof_momentum_without_weight_gradients(period: int) -> None:
    """FOOF through optimizer.backward (factored order, no ∇W̃) with momentum across inversions:
    the parameters of an explicit loop with momentum on the raw gradient, both where a layer keeps
    the raw buffer (T·B < m̃: T = 1) and where it carries the direction over (T = 3)."""
    model, ref, opt, x, y = _factored_foof(8, inv_period=period, stat_steps=1)
    velocity, inverse = None, None
    for step in range(7):
        xb = x + 0.1 * step
        if step % period == 0:
            inverse = _foof_inverse(ref, xb, y)
        velocity = _foof_momentum_step(ref, layer_statistics(ref, xb, y), velocity, inverse)
        opt.zero_grad()
        training_step(opt, model, xb, y)
    assert any(opt._raw.values()) == (period == 1)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_invert_off_schedule_carries_the_momentum_over() -> None:
    """``invert()`` called between scheduled inversions re-expresses the momentum in the new
    preconditioner: the following updates are those of an explicit loop with momentum on the raw
    gradient whose inverse changes at that point (here, where only the direction is carried)."""
    model, ref, opt, x, y = _factored_foof(3, inv_period=100, stat_steps=100)
    velocity, inverse = None, _foof_inverse(ref, x, y)
    for step in range(6):
        xb = x + 0.1 * step
        if step == 2:  # Ā at the invert() below: this batch's (decay 0), before this update
            later = _foof_inverse(ref, xb, y)
        if step == 3:
            opt.invert()
            inverse = later
        velocity = _foof_momentum_step(ref, layer_statistics(ref, xb, y), velocity, inverse)
        opt.zero_grad()
        training_step(opt, model, xb, y)
    assert not any(opt._raw.values())
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)
    with pytest.raises(TypeError):
        opt.inverses[model.linears[0]] = None  # type: ignore[index]


def test_kfac_statistics_only_before_each_inversion() -> None:
    """With stat_steps S < T, KFAC's Ā and Ḡ are moving averages of the S batches that end with
    each inversion only, formed explicitly here from those batches."""
    model, x, y = tiny(seed=9)
    opt = KFAC(model, 1e-3, 0.5, fisher="empirical", decay=0.5, inv_period=4, stat_steps=2)
    fed: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    for step in range(9):
        xb = x + 0.1 * step
        if step % 4 == 0 or step % 4 > 2:  # steps 0, 3, 4, 7, 8
            fed.append([(s.a_factor(), s.g_factor()) for s in layer_statistics(model, xb, y)])
        opt.zero_grad()
        training_step(opt, model, xb, y)
    assert len(fed) == 5
    for i, layer in enumerate(opt.layers):
        a_ref = g_ref = None
        for batch in fed:
            a, g = batch[i]
            a_ref = a if a_ref is None else 0.5 * a_ref + 0.5 * a
            g_ref = g if g_ref is None else 0.5 * g_ref + 0.5 * g
        torch.testing.assert_close(opt._factors[layer][0], a_ref)
        torch.testing.assert_close(opt._factors[layer][1], g_ref)


def test_direction_cosines_against_explicit_fisher() -> None:
    """The chapter's KFAC-vs-natural-gradient cosine: the exact natural gradient from an explicitly
    formed Fisher of per-example autograd gradients (the same sampled labels), KFAC's direction
    from kfac_direction, compared by a_inner_cosine; and the gradient-vs-FOOF baseline."""
    from nnstudies.chapters.neuron_descent import direction_cosines

    model, x, y = tiny(seed=10)
    lam, lam_ng = 0.3, 0.05
    got = direction_cosines(model, x, y, lam, natural_damping=lam_ng, seed=11)
    labels = sample_labels(model(x), generator=torch.Generator().manual_seed(11))
    g_i = per_example_grads(model, x, labels)
    params = list(model.parameters())
    grad = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    flat = torch.cat([g.reshape(-1) for g in grad])
    natural_flat = torch.linalg.solve(g_i.T @ g_i / len(x) + lam_ng * torch.eye(len(flat)), flat)
    natural, offset = [], 0
    for p in params:
        natural.append(natural_flat[offset : offset + p.numel()].reshape(p.shape))
        offset += p.numel()
    kfac = kfac_direction(
        model, x, y, lam, fisher="mc", generator=torch.Generator().manual_seed(11)
    )
    expected = a_inner_cosine(model, x, kfac, natural)
    assert got["cosine_kfac_natural"] == pytest.approx(sum(expected) / len(expected))
    baseline = a_inner_cosine(model, x, list(grad), natural)
    assert got["cosine_gradient_natural"] == pytest.approx(sum(baseline) / len(baseline))
    stats = layer_statistics(model, x, y, fisher="mc", generator=torch.Generator().manual_seed(11))
    foof = []
    for i, s in enumerate(stats):
        lam_a, _ = heuristic_damping(s.a_factor(), s.g_factor(), lam)
        foof.append(a_inner_cosine(model, x, list(grad), foof_direction(model, x, y, lam_a))[i])
    assert got["cosine_gradient_foof"] == pytest.approx(sum(foof) / len(foof))
