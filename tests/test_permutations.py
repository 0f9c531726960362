"""nnstudies.permutations against independent references: exact recovery, function preservation,
closed forms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nnstudies import CNN, MLP
from nnstudies.permutations import (
    Curve,
    activation_similarity,
    barrier,
    hidden_activations,
    interpolate,
    interpolation_curve,
    match_activations,
    match_weights,
    max_output_difference,
    permute,
    preactivation_stats,
    random_permutations,
    repair,
    scramble,
    variance_ratio,
)
from nnstudies.training import OptimizerSpec

torch.manual_seed(0)
MODELS = {
    "mlp": lambda: MLP(20, [48, 32, 24], 5),
    "mlp-nobias": lambda: MLP(20, [64], 5, bias=False),
    "cnn1d": lambda: CNN(1, 5, [8, 12, 16], dim=1, pool_after=(0,)),
    "cnn2d": lambda: CNN(3, 5, [6, 10], dim=2),
}
INPUTS = {"mlp": (300, 20), "mlp-nobias": (300, 20), "cnn1d": (200, 20), "cnn2d": (60, 3, 8, 8)}


def _equal_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", MODELS)
def test_permute_preserves_function_and_input(kind: str) -> None:
    torch.manual_seed(1)
    model = MODELS[kind]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(*INPUTS[kind])
    shuffled = permute(model, random_permutations(model, torch.Generator().manual_seed(2)))
    assert max_output_difference(model, shuffled, x) < 1e-5
    assert not _equal_state(model, shuffled)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), (
        "input model must be untouched"
    )


def _explicit_permute(model: MLP, perms: list[torch.Tensor]) -> MLP:
    """Reference: P_l W_l P_{l-1}^T with explicitly formed permutation matrices."""
    out = MLP(model.in_features, list(model.hidden), model.out_features)
    mats = [torch.eye(len(p))[p] for p in perms]  # (P x)_i = x_{p[i]}
    with torch.no_grad():
        for l, (src, dst) in enumerate(zip(model.linears, out.linears)):
            left = mats[l] if l < len(mats) else torch.eye(src.weight.shape[0])
            right = mats[l - 1] if l > 0 else torch.eye(src.weight.shape[1])
            dst.weight.copy_(left @ src.weight @ right.T)
            dst.bias.copy_(left @ src.bias)
    return out


def test_permute_matches_permutation_matrices() -> None:
    torch.manual_seed(3)
    model = MLP(7, [5, 6], 3)
    perms = random_permutations(model, torch.Generator().manual_seed(4))
    ours, ref = permute(model, perms), _explicit_permute(model, perms)
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("method", ["activations", "activations-pearson", "weights"])
def test_matching_recovers_a_shuffled_copy_exactly(kind: str, method: str) -> None:
    torch.manual_seed(5)
    model = MODELS[kind]()
    x = torch.randn(*INPUTS[kind])
    shuffled = permute(model, random_permutations(model, torch.Generator().manual_seed(6)))
    if method == "weights":
        perms = match_weights(model, shuffled, seed=1)
    else:
        perms = match_activations(
            model, shuffled, x, similarity="pearson" if method.endswith("pearson") else "cosine"
        )
    assert _equal_state(permute(shuffled, perms), model)


def test_similarity_against_numpy_reference() -> None:
    torch.manual_seed(7)
    a, b = MLP(6, [9], 2), MLP(6, [9], 2)
    x = torch.randn(500, 6)
    ha = torch.relu(a.linears[0](x)).detach().double().numpy()
    hb = torch.relu(b.linears[0](x)).detach().double().numpy()
    cos = (ha / np.linalg.norm(ha, axis=0)).T @ (hb / np.linalg.norm(hb, axis=0))
    pearson = np.corrcoef(ha.T, hb.T)[:9, 9:]
    (ours_cos,) = activation_similarity(a, b, x, batch_size=64)
    (ours_pearson,) = activation_similarity(a, b, x, similarity="pearson", batch_size=64)
    np.testing.assert_allclose(ours_cos.numpy(), cos, atol=1e-6)
    np.testing.assert_allclose(ours_pearson.numpy(), pearson, atol=1e-6)


def test_weight_matching_maximises_objective_on_small_layer() -> None:
    """With one hidden layer, weight matching is a single assignment: compare with brute force over
    all 5! perms.
    """
    import itertools

    torch.manual_seed(8)
    a, b = MLP(4, [5], 3), MLP(4, [5], 3)
    (p,) = match_weights(a, b)

    def score(q: tuple[int, ...]) -> float:
        q_t = torch.tensor(q)
        bb = permute(b, [q_t])
        with torch.no_grad():
            return float(sum((x * y).sum() for x, y in zip(a.parameters(), bb.parameters())))

    best = max(itertools.permutations(range(5)), key=score)
    assert score(tuple(p.tolist())) == pytest.approx(score(best))


def test_interpolation_endpoints_and_midpoint() -> None:
    torch.manual_seed(9)
    a, b = MLP(4, [6], 3), MLP(4, [6], 3)
    assert _equal_state(interpolate(a, b, 0.0), a)
    for x, y in zip(interpolate(a, b, 1.0).state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x, y)
    for m, x, y in zip(interpolate(a, b, 0.25).parameters(), a.parameters(), b.parameters()):
        torch.testing.assert_close(m, 0.75 * x + 0.25 * y)


def test_barrier_of_a_model_with_itself_is_zero() -> None:
    torch.manual_seed(10)
    model = CNN(1, 4, [4, 4], dim=1)
    x, y = torch.randn(100, 12), torch.randint(4, (100,))
    b = barrier(interpolation_curve(model, model, (x, y)))
    assert abs(b.loss) < 1e-6 and abs(b.error) < 1e-9


def test_barrier_closed_form() -> None:
    curve = Curve([0.0, 0.25, 0.5, 0.75, 1.0], [1.0, 2.0, 3.5, 2.5, 2.0], [0.9, 0.6, 0.5, 0.6, 0.7])
    b = barrier(curve)
    assert b.loss == pytest.approx(3.5 - 1.5)  # line at 0.5 is (1 + 2) / 2
    assert b.error == pytest.approx(0.5 - 0.2)  # errors 0.1 .. 0.3: line at 0.5 is 0.2, curve 0.5
    with pytest.raises(ValueError, match="endpoints"):
        barrier(Curve([0.0, 0.5], [1.0, 2.0], [0.5, 0.5]))


def test_repair_sets_the_interpolated_statistics() -> None:
    """After REPAIR, each hidden unit's pre-activation mean and std equal the interpolated endpoint
    statistics.
    """
    torch.manual_seed(11)
    a, b = MLP(10, [16, 12], 3, bias=False), MLP(10, [16, 12], 3, bias=False)
    x = torch.randn(2000, 10)
    alpha = 0.3
    fixed = repair(a, b, alpha, x)
    assert isinstance(fixed, MLP)

    def preacts(model: MLP) -> list[torch.Tensor]:
        out, h = [], x
        for layer in model.linears[:-1]:
            z = layer(h)
            out.append(z.detach())
            h = torch.relu(z)
        return out

    for za, zb, zm in zip(preacts(a), preacts(b), preacts(fixed)):
        torch.testing.assert_close(
            zm.mean(0), (1 - alpha) * za.mean(0) + alpha * zb.mean(0), atol=1e-4, rtol=1e-4
        )
        target_std = (1 - alpha) * za.std(0, unbiased=False) + alpha * zb.std(0, unbiased=False)
        torch.testing.assert_close(zm.std(0, unbiased=False), target_std, atol=1e-4, rtol=1e-4)
    assert all(layer.bias is None for layer in a.linears), "inputs untouched"


def _conv_preactivations(model: CNN, x: torch.Tensor) -> list[torch.Tensor]:
    """Each conv's pre-activations, by explicit functional calls (convs 3×3, padding 1; 2×2 average
    pooling after conv 1), independent of the library's hooks and layer walk."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    out, h = [], x
    for i, conv in enumerate(convs):
        z = torch.nn.functional.conv2d(h, conv.weight, conv.bias, padding=1)
        out.append(z)
        h = torch.relu(z)
        if i == 1:
            h = torch.nn.functional.avg_pool2d(h, 2)
    return out


def _channel_stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A channel's mean and std over every input and position, as BatchNorm2d's (biased)."""
    return z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3), correction=0)


def test_conv_statistics_and_repair_are_per_channel_over_positions() -> None:
    """On a tiny conv net with pooling, the per-channel pre-activation statistics match an explicit
    per-channel mean and std; after REPAIR each channel of the interpolated net has the interpolated
    endpoint mean and std (Jordan et al.'s reset BatchNorm); the variance ratio is the interpolated
    net's std over the interpolated endpoint std, by hand.
    """
    torch.manual_seed(5)
    a, b = CNN(2, 3, (4, 5, 6, 3), dim=2), CNN(2, 3, (4, 5, 6, 3), dim=2)
    x = torch.randn(60, 2, 8, 8)
    for stats, z in zip(preactivation_stats(a, x, batch_size=25), _conv_preactivations(a, x)):
        mean, std = _channel_stats(z.double())
        torch.testing.assert_close(stats[0], mean, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(stats[1], std, atol=1e-6, rtol=1e-6)
    alpha = 0.4
    fixed = repair(a, b, alpha, x, batch_size=25)
    assert isinstance(fixed, CNN) and all(m.bias is None for m in a if isinstance(m, nn.Conv2d))
    by_hand = zip(_conv_preactivations(a, x), _conv_preactivations(b, x))
    for zm, (za, zb) in zip(_conv_preactivations(fixed, x), by_hand):
        (ma, sa), (mb, sb), (mm, sm) = map(_channel_stats, (za, zb, zm))
        torch.testing.assert_close(mm, (1 - alpha) * ma + alpha * mb, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sm, (1 - alpha) * sa + alpha * sb, atol=1e-4, rtol=1e-4)
    mid = _conv_preactivations(interpolate(a, b, alpha), x)
    ratios = [
        (
            _channel_stats(z)[1]
            / ((1 - alpha) * _channel_stats(za)[1] + alpha * _channel_stats(zb)[1])
        )
        .mean()
        .item()
        for z, za, zb in zip(mid, _conv_preactivations(a, x), _conv_preactivations(b, x))
    ]
    assert variance_ratio(a, b, alpha, x) == pytest.approx(ratios, rel=1e-5)
    assert variance_ratio(a, a, alpha, x) == pytest.approx([1.0] * 4, rel=1e-5)


def test_pearson_similarity_of_pooled_conv_channels_against_a_reference() -> None:
    """Pearson similarity of conv channels after pooling: each layer has its own sample count."""
    torch.manual_seed(6)
    a, b = CNN(1, 3, (3, 4, 5, 2), dim=2), CNN(1, 3, (3, 4, 5, 2), dim=2)
    x = torch.randn(20, 1, 8, 8)
    found = activation_similarity(a, b, x, similarity="pearson", batch_size=7)
    for sim, ha, hb in zip(found, hidden_activations(a, x), hidden_activations(b, x)):
        ra, rb = ha.double().numpy(), hb.double().numpy()
        reference = np.corrcoef(ra.T, rb.T)[: ra.shape[1], ra.shape[1] :]
        np.testing.assert_allclose(sim.numpy(), reference, atol=1e-6)


def test_bad_inputs_are_clear_errors() -> None:
    a = MLP(5, [8], 3)
    with pytest.raises(ValueError, match="architectures|layer 0"):
        match_activations(a, MLP(5, [9], 3), torch.randn(10, 5))
    with pytest.raises(ValueError, match="architectures"):
        interpolate(a, CNN(1, 3, [8], dim=1), 0.5)
    with pytest.raises(ValueError, match="not a permutation"):
        permute(a, [torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])])
    with pytest.raises(ValueError, match="one per hidden layer"):
        permute(a, [])
    with pytest.raises(TypeError, match="support"):
        match_weights(nn.Sequential(nn.Linear(5, 3)), nn.Sequential(nn.Linear(5, 3)))
    with pytest.raises(ValueError, match="similarity"):
        match_activations(a, a, torch.randn(4, 5), similarity="euclid")


# ----------------------------------------------------------------------------- the chapter's module


def test_every_scale_has_a_typed_preset() -> None:
    from nnstudies.chapters import permutations as ch
    from nnstudies.scales import SCALES
    from nnstudies.training import Optimizer

    for scale in SCALES:
        p = ch.preset(scale)
        assert isinstance(p, ch.Preset) and p.pairs >= 3 and p.conv.pairs >= 3
        assert p.match_at[0] == 0 and all(u <= p.mlp.training.steps for u in p.match_at)
    paper = ch.PRESETS[
        "paper"
    ].mlp  # the paper's MLP: 784-1000-10, no biases, AdamW 1e-3, 500 updates
    assert (paper.dataset, paper.network.widths, paper.network.bias) == (
        "fashion_mnist",
        (1000,),
        False,
    )
    assert (paper.training.optimizer.kind, paper.training.lr, paper.training.steps) == (
        Optimizer.ADAMW,
        1e-3,
        500,
    )
    assert paper.training.optimizer.weight_decay == 0.01
    assert (
        ch.PRESETS["full"].mlp == paper
        and ch.PRESETS["full"].conv.small.network.kind is ch.Architecture.CNN
    )
    full, paper_conv = ch.PRESETS["full"].conv, ch.PRESETS["paper"].conv
    assert full.pairs == paper_conv.pairs == 5, "five pairs per learning rate"
    for conv in (full, paper_conv):  # the same target and reserve rule at both learning rates
        assert conv.small.training.with_lr(1.0) == conv.large.training.with_lr(1.0)
        assert conv.small.training.until_loss is not None and conv.small.training.reserves >= 1
    quarter = [c // 4 for c in paper_conv.small.network.widths]
    assert [w >= q for w, q in zip(full.small.network.widths, quarter)] == [True] * 4


def test_paper_conv_part_fits_a_gpu_quarter_hour() -> None:
    """The paper's conv net costs 57.7 GFLOP an update (counted by hand below), and the conv part's
    training at every net's cap fits 15 minutes of one GPU with room for the analysis."""
    from nnstudies.chapters import permutations as ch
    from nnstudies.chapters.permutations.__main__ import gpu_minutes

    setup = ch.PRESETS["paper"].conv.small
    by_hand = (
        2 * 9 * (3 * 64 * 32 * 32 + 64 * 64 * 32 * 32 + 64 * 128 * 16 * 16 + 128 * 128 * 16 * 16)
    )
    assert ch.training_flop(setup) == pytest.approx(3 * 100 * by_hand)
    assert ch.training_flop(setup) == pytest.approx(57.7e9, rel=1e-3)
    assert gpu_minutes(ch.PRESETS["paper"].conv) <= 12


def test_snapshots_are_taken_by_update_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots after 0, 3 and 7 updates of a 7-update run, whatever the epoch length (25 here)."""
    from nnstudies.chapters import permutations as ch

    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    setup = ch.Setup(
        "mnist1d", ch.Network("mlp", (16,)), ch.Training(OptimizerSpec(lr=0.05), 7, 40), 1000, 100
    )
    trained = ch.train_network(setup, seed=3, snapshot_at=(3, 50))  # 50 > 7 updates: ignored
    assert sorted(trained.snapshots) == [0, 3, 7] and trained.history.step[-1] == 7
    torch.manual_seed(3)
    fresh = ch.build_network(setup.network, ch.load_data(setup))
    assert _equal_state(trained.init, fresh), "snapshot 0 is the initialisation"
    assert _equal_state(trained.snapshots[7], trained.model), (
        "the last snapshot is the trained model"
    )
    assert not _equal_state(trained.snapshots[3], trained.model)


def test_claim_values_judge_per_pair() -> None:
    from nnstudies.chapters import permutations as ch

    def pair(naive: float, matched: float, repaired: float = 0.0, train: float = 0.0) -> Any:
        curve = lambda top: Curve([0.0, 0.5, 1.0], [1.0, 1.0 + top, 1.0], [0.8, 0.5, 0.8])
        test = {"naive": curve(naive), "activations": curve(matched), "repair": curve(repaired)}
        on_train = {**test, "activations": curve(train or matched)}  # matched: train differs
        init = {"naive": 0.1, "activations": 0.2, "weights": 0.15}
        return ch.PairResult({"test": test, "train": on_train}, init, (0.1, 0.1))

    small, large = [pair(2.0, 1.0, 0.5)] * 3, [pair(2.0, 0.1, 0.0)] * 3
    conv = ch.LearningRateStudy({}, {"small": small, "large": large})
    mlp = [pair(1.0, 0.1, 0.0, 0.5), pair(2.0, 0.2, 0.1, 1.0), pair(1.0, 0.05, 0.0, 0.5)]
    values = ch.claim_values(mlp, conv, chance=0.1)
    assert values["matching_lowers_barrier"] == pytest.approx([0.9, 1.8, 0.95])
    assert values["mlp_barrier_small"] == pytest.approx([0.1, 0.1, 0.05])
    assert values["mlp_barrier_small_train"] == pytest.approx([0.5] * 3), "training data's own"
    assert values["repair_helps"] == pytest.approx([0.1, 0.1, 0.05]), "on the test split"
    assert values["cnn_larger_barrier_at_large_lr"] == pytest.approx([-1.0] * 3)
    assert values["cnn_repair_removes_barrier"] == pytest.approx([0.5 / 1.1] * 3)
    verdicts = {c.key: c.judge(values[c.key]).verdict for c in ch.CLAIMS}
    assert set(verdicts) == set(values), "every claim has its values"
    assert (
        verdicts["cnn_larger_barrier_at_large_lr"] == "no"
        and verdicts["mlp_barrier_small"] == "yes"
        and verdicts["mlp_barrier_small_train"] == "no"
        and verdicts["cnn_repair_removes_barrier"] == "partly"
    )


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_scramble_moves_at_most_the_chosen_fraction(fraction: float) -> None:
    gen = torch.Generator().manual_seed(9)
    perms = [torch.randperm(200, generator=gen), torch.randperm(50, generator=gen)]
    out = scramble(perms, fraction, gen)
    for p, q in zip(perms, out):
        assert torch.equal(q.sort().values, torch.arange(len(p)))  # still a permutation
        moved = int((p != q).sum())
        assert moved <= round(fraction * len(p))
        if fraction == 0.0:
            assert torch.equal(p, q) and q is not p
    if fraction == 1.0:  # a random permutation keeps about one unit in place, not most
        assert int((perms[0] == out[0]).sum()) < 10


def test_scramble_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        scramble([torch.arange(4)], 1.5)


def _weight_objective_by_hand(a: nn.Module, b: nn.Module) -> float:
    """Σ over every parameter of ⟨θ_A, θ_B⟩ (float64): the weight-matching objective, from the
    models' parameters alone.
    """
    with torch.no_grad():
        return float(
            sum((x.double() * y.double()).sum() for x, y in zip(a.parameters(), b.parameters()))
        )


@pytest.mark.parametrize("start", ["forward", "identity"])
def test_weight_matching_is_a_coordinatewise_optimum_by_brute_force(start: str) -> None:
    """Three hidden layers of 4 units: at the result, no single layer's permutation (all 4! tried
    by brute force, the others held) raises the objective; the objective is at least the
    identity's; the function is unchanged.
    """
    import itertools

    torch.manual_seed(10)
    a, b = MLP(6, [4, 4, 4], 3), MLP(6, [4, 4, 4], 3)
    perms = match_weights(a, b, seed=2, start=start)
    found = _weight_objective_by_hand(a, permute(b, perms))
    assert found >= _weight_objective_by_hand(a, b) - 1e-9
    x = torch.randn(50, 6)
    assert max_output_difference(b, permute(b, perms), x) < 1e-5
    for layer in range(3):
        for q in itertools.permutations(range(4)):
            trial = [p.clone() for p in perms]
            trial[layer] = torch.tensor(q)
            assert _weight_objective_by_hand(a, permute(b, trial)) <= found + 1e-9


def test_weight_matching_forward_start_beats_identity_start_on_related_nets() -> None:
    """B = a shuffled, noisy copy of A (three hidden layers of 64): the forward start (layer by layer
    from the input, on incoming weights) reaches at least the objective of the identity start
    over several layer orders, and recovers the shuffle.
    """
    torch.manual_seed(11)
    a = MLP(30, [64, 64, 64], 5, bias=False)
    b = permute(a, random_permutations(a, torch.Generator().manual_seed(12)))
    with torch.no_grad():
        for w in b.parameters():
            w.add_(0.5 * w.std() * torch.randn_like(w))
    forward = _weight_objective_by_hand(a, permute(b, match_weights(a, b, start="forward")))
    identity = [
        _weight_objective_by_hand(a, permute(b, match_weights(a, b, seed=s, start="identity")))
        for s in range(3)
    ]
    assert forward >= max(identity) - 1e-9
    assert forward > _weight_objective_by_hand(a, b)


def test_weight_matching_rejects_unknown_start() -> None:
    a = MLP(4, [3, 3], 2)
    with pytest.raises(ValueError, match="start"):
        match_weights(a, a, start="random")


def test_training_until_a_loss_stops_at_the_first_check_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``until_loss`` the network is the snapshot at the first check (every 5 updates) whose
    mean loss over the last 50 updates, recomputed here from the full history, is at most the
    target; the history is cut there. A target never reached keeps every update.
    """
    from nnstudies.chapters import permutations as ch

    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    base = ch.Setup(
        "mnist1d", ch.Network("mlp", (16,)), ch.Training(OptimizerSpec(lr=0.05), 40, 40), 1000, 100
    )
    full = ch.train_network(base, seed=4)
    losses = full.history.train_loss
    running = {u: sum(losses[max(0, u - 50) : u]) / min(u, 50) for u in range(5, 41, 5)}
    target = sorted(running.values())[3]  # reached at some check, not at the first
    expected = min(u for u, r in running.items() if r <= target)
    until = dataclasses.replace(base.training, until_loss=target, check_every=5)
    stopped = ch.train_network(dataclasses.replace(base, training=until), seed=4)
    assert stopped.updates == expected and max(stopped.snapshots) == expected
    assert stopped.history.train_loss == losses[:expected]
    assert _equal_state(stopped.model, stopped.snapshots[expected])
    assert not _equal_state(stopped.model, full.model)
    never = dataclasses.replace(base.training, until_loss=-1.0, check_every=5)
    assert ch.train_network(dataclasses.replace(base, training=never), seed=4).updates == 40


def test_a_net_that_never_reaches_the_target_is_set_aside_for_a_reserve_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reserve rule: seed s missing the target is replaced by s + 1000, then s + 2000; the
    seeds set aside are recorded; with no reserve left the last net is kept; without a target,
    or once reached, nothing is replaced. The first tries run as one sweep, then each round of
    reserves that is needed.
    """
    from nnstudies.chapters import permutations as ch
    from nnstudies.chapters.permutations import experiment as ex
    from nnstudies.training import History

    final = {3: 2.0, 1003: 0.5, 5: 2.0, 1005: 2.0, 2005: 1.9, 7: 0.4}
    sweeps: list[list[int]] = []

    def fake_run_all(specs: list[ex.TrainNetwork], **_: object) -> list[ex.TrainNetwork]:
        sweeps.append([s.seed for s in specs])
        return list(specs)

    def fake_trained(spec: ex.TrainNetwork) -> ex.Trained:
        history = History(step=[1], train_loss=[final[spec.seed]])
        return ex.Trained(nn.Linear(1, 1), history, {}, spec.seed)

    monkeypatch.setattr(ex, "run_all", fake_run_all)
    monkeypatch.setattr(ex, "_trained", fake_trained)
    net = ch.Network("cnn", (2, 2, 2, 2), bias=False)
    rule = ch.Setup(
        "mnist1d", net, ch.Training(OptimizerSpec(), 10, 10, until_loss=0.85, reserves=2)
    )
    a, b, c = ex.train_all([ex.network_spec(rule, s) for s in (3, 5, 7)])
    assert (a.seed, a.set_aside) == (1003, (3,))
    assert (b.seed, b.set_aside, b.final_train_loss) == (2005, (5, 1005), 1.9)
    assert (c.seed, c.set_aside) == (7, ())
    assert sweeps == [[3, 5, 7], [1003, 1005], [2005]]
    no_target = rule.with_training(until_loss=None)
    assert ex.train_all([ex.network_spec(no_target, 5)])[0].set_aside == ()
    assert ex.train_all([ex.network_spec(rule.with_training(reserves=0), 5)])[0].seed == 5


def test_warmup_only_changes_the_first_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm-up over 5 updates: the first update's loss is the same (same weights, same batch), the
    run differs afterwards from one without warm-up, and a warm-up of 1 is no warm-up.
    """
    from nnstudies.chapters import permutations as ch

    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    base = ch.Setup(
        "mnist1d", ch.Network("mlp", (16,)), ch.Training(OptimizerSpec(lr=0.05), 10, 40), 1000, 100
    )

    def run(warmup: int) -> list[float]:
        setup = base.with_training(optimizer=OptimizerSpec(lr=0.05, warmup=warmup))
        return ch.train_network(setup, seed=5).history.train_loss

    plain, warm, one = run(0), run(5), run(1)
    assert warm[0] == plain[0] and warm[1:] != plain[1:]
    assert one == plain


# ----------------------------------------------------------------------------- the engine's route


def _tiny(steps: int, **changes: Any) -> Any:
    from nnstudies.chapters import permutations as ch

    training = dataclasses.replace(ch.Training(OptimizerSpec(lr=0.05), steps, 40), **changes)
    return ch.Setup("mnist1d", ch.Network("mlp", (16,)), training, 1000, 100)


def test_training_to_a_target_uses_fits_stop_and_matches_the_uncut_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training to a target ends inside ``fit`` (``history.stopped_at``; no NaN step, no cut
    history): its history, snapshots and weights are bit-identical to the same run's, trained
    without a reachable target, up to the stop; its last evaluation is that of the stopped
    weights.
    """
    from nnstudies.chapters import permutations as ch
    from nnstudies.training import evaluate

    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    uncut = ch.train_network(_tiny(40, until_loss=-1.0, check_every=5), seed=4)
    losses = uncut.history.train_loss
    running = {u: uncut.history.running_loss(u) for u in range(5, 41, 5)}
    target = sorted(running.values())[3]
    expected = min(u for u, r in running.items() if r <= target)
    stopped = ch.train_network(_tiny(40, until_loss=target, check_every=5), seed=4)
    assert stopped.history.stopped_at == expected and stopped.updates == expected
    assert stopped.history.train_loss == losses[:expected]
    assert sorted(stopped.snapshots) == [u for u in sorted(uncut.snapshots) if u <= expected]
    for u, net in stopped.snapshots.items():
        assert _equal_state(net, uncut.snapshots[u])
    assert _equal_state(stopped.model, uncut.snapshots[expected])
    data = ch.load_data(_tiny(40))
    assert stopped.history.eval_step[-1] == expected
    last = evaluate(uncut.snapshots[expected], data.x_test, data.y_test)
    assert (stopped.history.test_loss[-1], stopped.history.test_accuracy[-1]) == last
    assert uncut.history.stopped_at is None and uncut.updates == 40


def test_warmup_is_a_scheduler_bit_identical_to_writing_the_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Warm-up reaches the optimizer as ``OptimizerSpec.scheduler`` passed to ``fit`` (nothing
    writes ``param_groups`` in the step), and trains exactly as lr·min(1, k/warmup) written
    before update k.
    """
    import torch.nn.functional as F

    from nnstudies.chapters.permutations import experiment as ex
    from nnstudies.training import minibatches

    monkeypatch.delenv("NNSTUDIES_DRY_RUN", raising=False)
    schedulers: list[object] = []
    real_fit = ex.fit

    def spy(*args: object, **kwargs: object) -> object:
        schedulers.append(kwargs.get("scheduler"))
        return real_fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ex, "fit", spy)
    setup = _tiny(10, optimizer=OptimizerSpec(lr=0.05, warmup=5))
    trained = ex.train_network(setup, seed=5)
    assert isinstance(schedulers[0], torch.optim.lr_scheduler.LambdaLR)
    data = ex.load_data(setup)
    torch.manual_seed(5)
    model = ex.build_network(setup.network, data)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = minibatches(data, 40, seed=5)
    losses = []
    for k in range(1, 11):
        for group in opt.param_groups:
            group["lr"] = 0.05 * min(1.0, k / 5)
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert trained.history.train_loss == losses and _equal_state(trained.model, model)


def test_trained_seed_is_the_seed_that_trained_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Trained.seed`` is the training seed on every path (it was 0 off the reserve path), and the
    pairs of a study go through one sweep.
    """
    from nnstudies.chapters.permutations import experiment as ex

    monkeypatch.setenv("NNSTUDIES_DRY_RUN", "1")
    assert ex.train_network(_tiny(5), seed=3).seed == 3
    sweeps: list[int] = []
    real = ex.run_all

    def counting(specs: list[ex.TrainNetwork], **kwargs: object) -> list[object]:
        sweeps.append(len(specs))
        return real(specs, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ex, "run_all", counting)
    pairs = ex.train_pairs(_tiny(5), 2)
    assert [(a.seed, b.seed) for a, b in pairs] == [(0, 1), (2, 3)] and sweeps == [4]
