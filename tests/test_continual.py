"""nnstudies.continual against independent references: per-example loops, a closed-form path integral, autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nnstudies import CNN, MLP, Dataset
from nnstudies import continual as cl
from nnstudies.tasks import continual as tasks_cl
from nnstudies.training import minibatches

torch.manual_seed(0)


def _tiny() -> tuple[MLP, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = MLP(6, [5, 4], 3).double()
    for p in model.parameters():  # non-zero biases so that every path is exercised
        torch.nn.init.normal_(p, std=0.7)
    x = torch.randn(9, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (9,))
    return model, x, y


def _example_grad(model: torch.nn.Module, scalar: torch.Tensor) -> list[torch.Tensor]:
    return [
        g.detach() for g in torch.autograd.grad(scalar, list(model.parameters()), retain_graph=True)
    ]


def _loop(
    model: torch.nn.Module,
    x: torch.Tensor,
    kind: str,
    y: torch.Tensor | None = None,
    classes: list[int] | None = None,
) -> list[torch.Tensor]:
    """The reference: one example at a time, one label at a time, explicit sums."""
    total = [torch.zeros_like(p) for p in model.parameters()]
    for n in range(len(x)):
        logits = model(x[n : n + 1])[0]
        if classes is not None:
            logits = logits[classes]
        if kind in ("fisher", "absolute"):
            probs = logits.softmax(-1).detach()
            for label in range(len(logits)):
                g = _example_grad(model, logits.log_softmax(-1)[label])
                for t, gi in zip(total, g):
                    t += probs[label] * (gi**2 if kind == "fisher" else gi.abs())
        elif kind == "empirical":
            g = _example_grad(model, logits.log_softmax(-1)[y[n]])  # type: ignore[index]
            for t, gi in zip(total, g):
                t += gi**2
        else:
            out = logits.softmax(-1) if kind == "mas_probs" else logits
            g = _example_grad(model, (out**2).sum())
            for t, gi in zip(total, g):
                t += gi.abs()
    return [t / len(x) for t in total]


def _close(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-10) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        assert torch.allclose(u, v, atol=tol, rtol=1e-9), (u - v).abs().max()


@pytest.mark.parametrize("engine", ["linear", "vmap"])
@pytest.mark.parametrize("classes", [None, [0, 2]])
def test_importances_equal_per_example_loop(engine: str, classes: list[int] | None) -> None:
    model, x, y = _tiny()
    yc = y % 2 if classes else y
    _close(
        cl.fisher(model, x, engine=engine, classes=classes),
        _loop(model, x, "fisher", classes=classes),
    )
    _close(
        cl.fisher(model, x, kind="empirical", targets=yc, engine=engine, classes=classes),
        _loop(model, x, "empirical", yc, classes=classes),
    )
    _close(
        cl.absolute_fisher(model, x, engine=engine, classes=classes),
        _loop(model, x, "absolute", classes=classes),
    )
    _close(
        cl.mas(model, x, engine=engine, classes=classes),
        _loop(model, x, "mas_probs", classes=classes),
    )
    _close(
        cl.mas(model, x, on="logits", engine=engine, classes=classes),
        _loop(model, x, "mas_logits", classes=classes),
    )


def test_cnn_uses_vmap_engine_and_matches_loop() -> None:
    torch.manual_seed(1)
    model = CNN(1, 3, [4, 4], dim=1, bias=True).double()
    x = torch.randn(5, 8, dtype=torch.float64)
    _close(cl.fisher(model, x), _loop(model, x, "fisher"))
    _close(cl.mas(model, x), _loop(model, x, "mas_probs"))
    with pytest.raises(ValueError, match="linear"):
        cl.fisher(model, x, engine="linear")


def test_linear_engine_matches_backpack_and_chunks() -> None:
    """The one-forward, batch-backward engine against a peer library (BackPACK's exact GGN
    diagonal = the exact Fisher for softmax cross-entropy; its sum of squared per-example
    gradients = N times the empirical Fisher), on several chunks."""
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact, SumGradSquared

    torch.manual_seed(4)
    model = MLP(7, [6, 5], 4).double()
    x = torch.randn(11, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (11,))
    peer = extend(MLP(7, [6, 5], 4).double())
    peer.load_state_dict(model.state_dict())
    loss = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    with backpack(DiagGGNExact(), SumGradSquared()):
        loss(peer(x), y).backward()
    exact = [p.diag_ggn_exact / len(x) for p in peer.parameters()]
    empirical = [p.sum_grad_squared / len(x) for p in peer.parameters()]
    _close(cl.vmap_importance(model, x, "fisher", engine="linear", chunk_size=4), exact)
    _close(
        cl.vmap_importance(model, x, "empirical", targets=y, engine="linear", chunk_size=4),
        empirical,
    )


def test_inplace_activation_falls_back_to_vmap() -> None:
    model, x, _ = _tiny()
    inplace = torch.nn.Sequential(
        *(torch.nn.ReLU(inplace=True) if isinstance(m, torch.nn.ReLU) else m for m in model)
    )
    with pytest.raises(ValueError, match="linear"):
        cl.fisher(inplace, x, engine="linear")
    _close(cl.fisher(inplace, x), _loop(model, x, "fisher"))


def test_importances_are_shaped_like_parameters_and_model_is_untouched() -> None:
    model, x, _ = _tiny()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    out = cl.absolute_fisher(model, x)
    assert [o.shape for o in out] == [p.shape for p in model.parameters()]
    assert model.training and all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_fisher_of_a_linear_softmax_model_in_closed_form() -> None:
    """For logits W x (no bias), the exact Fisher of W is Σ_y p_y (e_y − p)² x², in closed form."""
    torch.manual_seed(2)
    model = MLP(4, [3], 3).double()
    # make it linear end to end: look only at the last layer, with fixed hidden features
    x = torch.randn(6, 4, dtype=torch.float64)
    h = torch.relu(model[1](x)).detach()
    w = model[3].weight
    p = (h @ w.T + model[3].bias).softmax(-1).detach()
    expected = torch.zeros_like(w)
    for n in range(len(x)):
        for label in range(3):
            e = F.one_hot(torch.tensor(label), 3).double()
            expected += p[n, label] * torch.outer((e - p[n]) ** 2, h[n] ** 2)
    assert torch.allclose(cl.fisher(model, x)[2], expected / len(x), atol=1e-12)


# ----------------------------------------------------------------------------- SI and friends


def _quadratic_run(variant: str, damping: float, steps: int = 40, lr: float = 0.1):  # type: ignore[no-untyped-def]
    """θ on L(θ) = ½ a (θ − θ*)², plain gradient descent, noise added to the 'same-batch' gradient."""
    a, target = 2.0, 3.0
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    acc = cl.SynapticIntelligence(model, damping=damping, variant=variant)
    acc.begin_task()
    gen = torch.Generator().manual_seed(0)
    thetas, grads, indeps = [0.0], [], []
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        noise = 0.3 * torch.randn((), generator=gen)
        theta = model.weight.sum()
        (0.5 * a * (theta - target) ** 2 + noise * theta).backward()
        g_ind = a * (theta.item() - target) + 0.3 * torch.randn((), generator=gen).item()
        acc.before_step(independent=[torch.tensor([[g_ind]])])
        grads.append(model.weight.grad.item())
        indeps.append(g_ind)
        opt.step()
        acc.after_step()
        thetas.append(model.weight.item())
    return acc.end_task()[0].item(), thetas, grads, indeps, a, target


@pytest.mark.parametrize("variant", ["SI", "SIU", "SIB"])
def test_si_path_integral_matches_closed_form(variant: str) -> None:
    omega, thetas, grads, indeps, _, _ = _quadratic_run(variant, damping=0.1)
    g = {"SI": grads, "SIU": indeps, "SIB": [u - v for u, v in zip(grads, indeps)]}[variant]
    expected = sum(-gt * (b - a) for gt, a, b in zip(g, thetas[:-1], thetas[1:]))
    expected = max(0.0, expected / ((thetas[-1] - thetas[0]) ** 2 + 0.1))
    assert math.isclose(omega, expected, rel_tol=1e-5)


def test_si_on_noiseless_quadratic_equals_loss_decrease() -> None:
    """Without noise and with tiny steps, ω = −∫ g dθ = L(θ_0) − L(θ_T) (the path integral of a gradient field)."""
    a, target, lr, steps = 2.0, 3.0, 1e-3, 3000
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(0.0)
    acc = cl.SynapticIntelligence(model, damping=1.0)
    acc.begin_task()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * a * (model.weight.sum() - target) ** 2).backward()
        acc.before_step()
        opt.step()
        acc.after_step()
    theta = model.weight.item()
    # closed form of gradient descent: θ_T = θ* (1 − (1 − lr a)^T)
    assert math.isclose(theta, target * (1 - (1 - lr * a) ** steps), rel_tol=1e-9)
    decrease = 0.5 * a * target**2 - 0.5 * a * (theta - target) ** 2
    omega = acc.omega[0].item()
    # Σ −g_t Δθ_t = Σ lr g_t² is a left Riemann sum of ∫ a(θ*−θ) dθ; its error is ≤ lr·a·decrease
    assert abs(omega - decrease) <= lr * a * decrease + 1e-9
    assert math.isclose(acc.end_task()[0].item(), max(0.0, omega) / (theta**2 + 1.0), rel_tol=1e-12)


def test_sos_and_onaf_match_their_formulas() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    sos, onaf = cl.SOS(model, beta=0.9), cl.OnAF(model, damping=0.5)
    gradsum = cl.METHODS["gradsum"].during_task(model, 0.5)  # type: ignore[misc]
    for acc in (sos, onaf, gradsum):
        acc.begin_task()
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    v = [torch.zeros_like(p) for p in model.parameters()]
    w = [torch.zeros_like(p) for p in model.parameters()]
    steps = 7
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(4, 3)).square().mean().backward()
        for acc in (sos, onaf, gradsum):
            acc.before_step()
        for vi, wi, p in zip(v, w, model.parameters()):
            vi.mul_(0.9).add_(0.1 * p.grad**2)
            wi.add_(p.grad.abs())
        opt.step()
        for acc in (sos, onaf, gradsum):
            acc.after_step()
    for got, vi in zip(sos.end_task(), v):
        assert torch.allclose(got, (vi / (1 - 0.9**steps)).sqrt(), atol=1e-6)
    for got, wi, p, s in zip(onaf.end_task(), w, model.parameters(), start):
        assert torch.allclose(got, wi / ((p.detach() - s) ** 2 + 0.5), atol=1e-6)
    for got, wi in zip(gradsum.end_task(), w):  # the plain sum Σ_t |g_t|, not rescaled
        assert torch.allclose(got, wi, atol=1e-6)


def test_accumulator_call_order_errors() -> None:
    model = torch.nn.Linear(2, 1)
    si = cl.SynapticIntelligence(model)
    with pytest.raises(RuntimeError, match="begin_task"):
        si.before_step()
    si.begin_task()
    with pytest.raises(RuntimeError, match="backward"):
        si.before_step()
    with pytest.raises(RuntimeError, match="end_task|step"):
        si.end_task()
    model(torch.randn(3, 2)).sum().backward()
    with pytest.raises(ValueError, match="independent"):
        _needs_independent(model)
    with pytest.raises(ValueError, match="variant"):
        cl.SynapticIntelligence(model, variant="XYZ")
    with pytest.raises(ValueError, match="damping"):
        cl.SynapticIntelligence(model, damping=0.0)


def _needs_independent(model: torch.nn.Module) -> None:
    siu = cl.SynapticIntelligence(model, variant="SIU")
    siu.begin_task()
    siu.before_step()


# ----------------------------------------------------------------------------- the penalty


def test_penalty_value_and_gradient() -> None:
    torch.manual_seed(4)
    model = MLP(3, [4], 2).double()
    omega = [torch.rand_like(p) for p in model.parameters()]
    more = [torch.rand_like(p) for p in model.parameters()]
    anchor = [torch.randn_like(p) for p in model.parameters()]
    c = 0.7
    penalty = cl.QuadraticPenalty(
        omega, [torch.randn_like(p) for p in model.parameters()], c
    ).add_task(more, anchor)
    value = penalty(model)
    expected = c * sum(
        ((o + m) * (p - a) ** 2).sum()
        for o, m, p, a in zip(omega, more, model.parameters(), anchor)
    )
    assert torch.allclose(value, expected)
    grads = torch.autograd.grad(value, list(model.parameters()))
    for g, o, m, p, a in zip(grads, omega, more, model.parameters(), anchor):
        assert torch.allclose(g, 2 * c * (o + m) * (p.detach() - a), atol=1e-12)


def test_penalty_errors() -> None:
    model = MLP(3, [4], 2)
    params = [p.detach() for p in model.parameters()]
    ones = [torch.ones_like(p) for p in params]
    with pytest.raises(ValueError, match="not finite"):
        cl.QuadraticPenalty([o * float("nan") for o in ones], params, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        cl.QuadraticPenalty([-o for o in ones], params, 1.0)
    with pytest.raises(ValueError, match="strength"):
        cl.QuadraticPenalty(ones, params, -1.0)
    with pytest.raises(ValueError, match="shape"):
        cl.QuadraticPenalty([ones[0].T, *ones[1:]], params, 1.0)
    other = MLP(3, [5], 2)
    with pytest.raises(ValueError, match="shape|parameters"):
        cl.QuadraticPenalty(ones, params, 1.0)(other)


def test_bad_inputs() -> None:
    model, x, y = _tiny()
    with pytest.raises(ValueError, match="kind"):
        cl.fisher(model, x, kind="sampled")
    with pytest.raises(ValueError, match="target"):
        cl.fisher(model, x, kind="empirical")
    with pytest.raises(ValueError, match="target"):
        cl.fisher(model, x, kind="empirical", targets=y[:3])
    with pytest.raises(ValueError, match="output"):
        cl.mas(model, x, on="hidden")
    with pytest.raises(ValueError, match="inputs"):
        cl.fisher(model, x[0])
    with pytest.raises(ValueError, match="engine"):
        cl.fisher(model, x, engine="fast")
    with torch.no_grad():
        model[1].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="not finite"):
        cl.absolute_fisher(model, x)


# ----------------------------------------------------------------------------- tasks and training


def _data(n: int = 60, d: int = 8, classes: int = 4) -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset(
        "toy",
        torch.randn(n, d, generator=g),
        torch.arange(n) % classes,
        torch.randn(n // 2, d, generator=g),
        torch.arange(n // 2) % classes,
        classes,
    )


def test_permuted_tasks_are_permutations() -> None:
    data = _data()
    tasks = tasks_cl.permuted_tasks(data, 3, seed=1, validation=0.25)
    assert len(tasks) == 3 and all(t.classes is None for t in tasks)
    for t in tasks:
        assert len(t.y_val) == 15 and len(t.y_train) == 45
        # every task's test inputs are the originals with columns reordered by one permutation
        cols = [
            int((data.x_test == t.x_test[:, [j]]).all(0).nonzero()[0])
            for j in range(data.x_test.shape[1])
        ]
        assert sorted(cols) == list(range(data.x_test.shape[1]))
        assert torch.equal(t.x_test, data.x_test[:, cols]) and torch.equal(t.y_test, data.y_test)
    assert not torch.equal(tasks[0].x_test, tasks[1].x_test)
    again = tasks_cl.permuted_tasks(data, 3, seed=1, validation=0.25)
    assert all(torch.equal(a.x_train, b.x_train) for a, b in zip(tasks, again))
    with pytest.raises(ValueError):
        tasks_cl.permuted_tasks(data, 0, seed=1)


def test_split_tasks_classes() -> None:
    data = _data()
    tasks = tasks_cl.split_tasks(data, 2)
    assert [t.classes for t in tasks] == [(0, 1), (2, 3)]
    for t in tasks:
        assert set(t.y_train.tolist()) == {0, 1} and set(t.y_test.tolist()) == {0, 1}
        original = data.y_test[(data.y_test >= t.classes[0]) & (data.y_test <= t.classes[1])]
        assert torch.equal(t.y_test + t.classes[0], original)
    with pytest.raises(ValueError, match="classes_per_task"):
        tasks_cl.split_tasks(data, 3)


def test_run_continual_shapes_and_errors() -> None:
    data = _data(120)
    tasks = tasks_cl.split_tasks(data, 2, validation=0.2)

    def make() -> MLP:
        torch.manual_seed(0)
        return MLP(8, [16], 4)

    result = cl.run_continual(
        make(),
        tasks,
        "SI",
        0.1,
        epochs=2,
        batch_size=16,
        n_importance=20,
        track=("SIU", "MAS"),
        show_progress=False,
    )
    lower = torch.tril(torch.ones(2, 2, dtype=torch.bool))  # tasks not yet trained: not measured
    assert result.accuracy.shape == (2, 2) and not torch.isnan(result.accuracy[lower]).any()
    assert torch.isnan(result.accuracy[~lower]).all()
    assert set(result.importances) == {"SI", "SIU", "MAS"}
    assert all(len(v) == 2 for v in result.importances.values())
    assert [len(losses) for losses in result.train_loss] == [
        2 * math.ceil(len(t.y_train) / 16) for t in tasks
    ]
    # the head's masking: a split task's importance of the other head's output weights is zero
    mas_task1 = result.importances["MAS"][0]
    assert torch.all(mas_task1[-2][2:] == 0) and torch.any(mas_task1[-2][:2] > 0)
    # tracking more measures does not change the trajectory
    plain = cl.run_continual(
        make(), tasks, "SI", 0.1, epochs=2, batch_size=16, n_importance=20, show_progress=False
    )
    assert torch.allclose(plain.accuracy, result.accuracy, rtol=0, atol=0, equal_nan=True)
    # the first task of a two-task run is the one-task run
    first = cl.run_continual(
        make(), tasks[:1], "SI", 0.1, epochs=2, batch_size=16, n_importance=20, show_progress=False
    )
    assert (
        torch.equal(first.accuracy[0, 0], plain.accuracy[0, 0])
        and first.train_loss[0] == plain.train_loss[0]
    )
    assert plain.average_accuracy(1) == float(plain.accuracy[0, 0])
    assert torch.equal(plain.first(1).accuracy, first.accuracy) and plain.first(1).importances[
        "SI"
    ][0][0].equal(first.importances["SI"][0][0])
    assert math.isclose(plain.forgetting(), float(plain.accuracy[0, 0] - plain.accuracy[1, 0]))
    with pytest.raises(ValueError, match="unknown method"):
        cl.run_continual(make(), tasks, "LwF", 1.0)
    with pytest.raises(ValueError, match="track"):
        cl.run_continual(make(), tasks, "SI", 1.0, track=("none",))


def test_registry_names_every_method_once() -> None:
    assert list(cl.METHODS) == [
        "none",
        "EWC",
        "sqrtFisher",
        "AF",
        "MAS",
        "SI",
        "SIU",
        "SIB",
        "SOS",
        "OnAF",
        "gradsum",
    ]
    assert set(cl.POSTHOC) | set(cl.PATH) | {"none"} == set(cl.METHODS) and not set(
        cl.POSTHOC
    ) & set(cl.PATH)
    assert len({m.colour for m in cl.METHODS.values()}) == len(cl.METHODS)
    assert cl.METHODS["none"].kind == "none" and cl.METHODS["EWC"].kind == "after the task"
    model, x, _ = _tiny()
    for name in cl.POSTHOC:  # each measure after a task is its function
        expected = {
            "EWC": cl.fisher,
            "sqrtFisher": cl.sqrt_fisher,
            "AF": cl.absolute_fisher,
            "MAS": cl.mas,
        }[name](model, x)
        _close(cl.METHODS[name].after_task(model, x, None), expected)  # type: ignore[misc]
    _close(cl.sqrt_fisher(model, x), [f.sqrt() for f in _loop(model, x, "fisher")])
    kinds = {name: type(cl.METHODS[name].during_task(model, 0.1)).__name__ for name in cl.PATH}  # type: ignore[misc]
    assert kinds == {
        "SI": "SynapticIntelligence",
        "SIU": "SynapticIntelligence",
        "SIB": "SynapticIntelligence",
        "SOS": "SOS",
        "OnAF": "OnAF",
        "gradsum": "OnAF",
    }


def test_continual_step_against_a_written_out_loop() -> None:
    """The step (task loss, SI reading the task gradient only, penalty, Adam) against the same update written out."""
    data = _data(64)
    task = tasks_cl.permuted_tasks(data, 1, seed=0)[0]
    torch.manual_seed(5)
    model = MLP(8, [6], 4).double()
    twin = MLP(8, [6], 4).double()
    twin.load_state_dict(model.state_dict())
    omega = [torch.rand_like(p) for p in model.parameters()]
    anchor = [torch.randn_like(p) for p in model.parameters()]
    penalty = cl.QuadraticPenalty(omega, anchor, 0.3)
    si = cl.SynapticIntelligence(model, damping=0.1)
    si.begin_task()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    double = tasks_cl.Task(
        "t",
        task.x_train.double(),
        task.y_train,
        task.x_val.double(),
        task.y_val,
        task.x_test.double(),
        task.y_test,
    )
    step = cl.continual_step(
        model,
        opt,
        minibatches(double.training_set(), 16, seed=3),
        penalty=penalty,
        accumulators=[si],
    )
    # the reference: Adam written out, ω = Σ −g_task ⊙ Δθ
    params = list(twin.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    w = [torch.zeros_like(p) for p in params]
    batches = minibatches(double.training_set(), 16, seed=3)
    for t in range(1, 9):
        loss = step(t)
        x, y = next(batches)
        task_loss = F.cross_entropy(twin(x), y)
        g_task = torch.autograd.grad(task_loss, params)
        g_pen = [2 * 0.3 * o * (p.detach() - a) for o, p, a in zip(omega, params, anchor)]
        assert math.isclose(loss, task_loss.item(), rel_tol=1e-12)
        with torch.no_grad():
            for i, p in enumerate(params):
                g = g_task[i] + g_pen[i]
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g**2
                delta = -0.01 * (m[i] / (1 - 0.9**t)) / ((v[i] / (1 - 0.999**t)).sqrt() + 1e-8)
                p += delta
                w[i] -= g_task[i] * delta
    for p, q in zip(model.parameters(), params):
        assert torch.allclose(p, q, atol=1e-10)
    _close(si.omega, w, tol=1e-10)


def test_pearson() -> None:
    a = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    assert math.isclose(cl.pearson(a, [2 * t + 1 for t in a]), 1.0)
    assert math.isclose(cl.pearson(a, [-t for t in a]), -1.0)
    with pytest.raises(ValueError):
        cl.pearson(a, a[:1])


# ----------------------------------------------------------------------------- the chapter's judging


def test_tuning_chooses_on_validation_and_claims_flag_fragile_verdicts() -> None:
    from nnstudies.chapters import continual_learning as ch

    tuning = ch.Tuning(
        "permuted",
        0,
        {"none": (0.0,), "EWC": (1.0, 3.0, 9.0), "SI": (1.0, 3.0), "SIU": (2.0, 7.0)},
        {"none": (0.40,), "EWC": (0.42, 0.45, 0.45), "SI": (0.46, 0.43), "SIU": (0.425, 0.43)},
        {
            "none": (0.9,),
            "EWC": (0.9, 0.1, 0.1),
            "SI": (0.1, 0.9),
            "SIU": (0.1, 0.1),
        },  # test: never used
    )
    assert tuning.chosen == {"none": 0.0, "EWC": 3.0, "SI": 1.0, "SIU": 7.0}  # a tie: the smaller c
    assert tuning.best == "SI"
    assert set(ch.near_ties(tuning)) == {
        "EWC",
        "SIU",
    }  # SI's choice, and the best method, lead by > 1 point
    # a gap far from every boundary of its rule is robust; one at the margin is flagged
    assert ch.fragile_claims({"beats_none_permuted": [0.05, 0.045, 0.055]}) == []
    ((claim, verdict, reason),) = ch.fragile_claims({"beats_none_permuted": [0.019, 0.021, 0.02]})
    assert claim.key == "beats_none_permuted" and verdict == "partly" and reason.startswith("yes")
    # so is a claim that rests on a strength the tuning seed chose by less than a point
    robust_siu = {"siu_worse": [0.05, 0.045, 0.055]}
    assert ch.fragile_claims(robust_siu) == []
    ((flagged, verdict, why),) = ch.fragile_claims(robust_siu, {"permuted": tuning})
    assert flagged.key == "siu_worse" and verdict == "yes" and "SIU strength by 0.5%" in why
    # a claim not tested at the scale is not listed there: its table row says why
    tied_sib = {"sib_as_good": [0.001, -0.002, 0.0]}
    ((flagged, _, _),) = ch.fragile_claims(tied_sib, {"permuted": tuning}, scale="full")
    assert flagged.key == "sib_as_good"
    assert ch.fragile_claims(tied_sib, {"permuted": tuning}, scale="cpu") == []


def test_tuning_grid_grows_past_a_winning_end_and_reports_what_stays_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from nnstudies.chapters import continual_learning as ch
    from nnstudies.chapters.continual_learning import experiment

    preset = replace(
        ch.PRESETS["cpu"],
        methods=(cl.Regulariser.EWC, cl.Regulariser.SI, cl.Regulariser.SIU),
        strength_factors=(0.1, 1.0, 10.0),
        extra_tuning_seeds=(7,),
        max_extend=2,
    )
    c0 = preset.permuted.strengths
    # validation accuracy peaks at 100 × c0 for EWC (reached after one extension), beyond 1000 × c0 for SI
    # (still at the end after two), at c0 for SIU (no extension); the second seed is one point lower
    peak = {"EWC": 100.0, "SI": 1e6, "SIU": 1.0, "none": 1.0}
    asked: list[tuple[str, float, int]] = []
    sweeps: list[int] = []

    class Run:
        def __init__(self, method: str, c: float, seed: int) -> None:
            f = c / c0[method] if method != "none" else 1.0  # type: ignore[index]
            self.val = 0.8 - 0.01 * abs(math.log10(f / peak[method])) - 0.01 * (seed == 7)

        def average_accuracy(self, split: str = "test") -> float:
            return self.val if split == "val" else 0.0

    def fake_runs(specs: list[ch.ContinualRun], desc: str = "") -> list[Run]:
        sweeps.append(len(specs))
        asked.extend((s.method, s.strength, s.seed) for s in specs)
        return [Run(s.method, s.strength, s.seed) for s in specs]

    monkeypatch.setattr(experiment, "train_runs", fake_runs)
    tuning = ch.tune(preset, "permuted")
    factors = {
        m: [round(c / c0[m], 6) for c in cs] for m, cs in tuning.strengths.items() if m != "none"
    }
    assert factors == {
        "EWC": [0.1, 1, 10, 100, 1000],
        "SI": [0.1, 1, 10, 100, 1000],
        "SIU": [0.1, 1, 10],
    }
    assert tuning.chosen["EWC"] == 100 * c0["EWC"] and tuning.chosen["SIU"] == c0["SIU"]  # type: ignore[index]
    assert tuning.edges == {"SI": 1000 * c0["SI"]}  # type: ignore[index]
    assert tuning.seeds == (0, 7) and {s for _, _, s in asked} == {0, 7}
    assert math.isclose(tuning.val["SIU"][1], 0.795)  # type: ignore[index]  # the mean over both tuning seeds
    assert len(asked) == 2 * (1 + 5 + 5 + 3)
    # one sweep per round: the grids, then each extension of the grids that still end in a winner
    assert sweeps == [2 * (1 + 3 + 3 + 3), 2 * 2, 2 * 2]
    # a claim on a method left at the end of its grid is flagged
    ((claim, _, why),) = ch.fragile_claims(
        {"siu_worse": [0.05, 0.045, 0.055]}, {"permuted": tuning}
    )
    assert claim.key == "siu_worse" and "end of the grid for SI (c = " in why
