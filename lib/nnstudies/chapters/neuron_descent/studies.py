"""Chapter 2's studies built from runs: the tuning that picks each method's setting
(:func:`tune`), single runs at the chosen setting (:func:`train_run`) and the comparison of every
method on several seeds (:func:`compare`).

Each round of a tuning (every grid point of every method, on every tuning seed) and each
comparison goes through one :func:`~nnstudies.runs.run_all`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...runs import Run, execute, run_all
from ...training import History
from .experiment import MethodRun, NeuronRun, experiment_of, run_spec
from .methods import Kind, Method
from .presets import GRIDS, GRIDS_AUTOENCODER, Preset, Setting

#: The two ways a tuning picks a setting (the same words as :class:`nnstudies.claims.Protocol`):
#: the best grid point on the tuning seeds, and the stability rule (:meth:`TuningResult.stable`).
BEST, STABLE = "best point", "stability rule"
PROTOCOLS = (BEST, STABLE)

__all__ = [
    "BEST",
    "PROTOCOLS",
    "STABLE",
    "Comparison",
    "TuningResult",
    "chosen_setting",
    "chosen_settings",
    "compare",
    "compare_protocols",
    "protocols",
    "statistics_check",
    "train_run",
    "tune",
    "tune_many",
]


def _finished(run: MethodRun) -> bool:
    """Trained: no divergence, the final loss below half the first one and not climbing (≤ 1.25 ×
    its best).
    """
    losses = run.history.metrics.get("train_loss", [])
    if run.diverged_at is not None or not losses or not math.isfinite(losses[-1]):
        return False
    return losses[-1] <= 0.5 * run.history.train_loss[0] and losses[-1] <= 1.25 * min(losses)


@dataclass(frozen=True)
class TuningResult:
    """Every grid point's runs, one per tuning seed, and the rule that picks a setting from them."""

    method: Method
    runs: dict[Setting, list[MethodRun]] = field(default_factory=dict)

    def score(self, setting: Setting) -> float:
        """The mean over tuning seeds of log10(final training loss); inf unless every run
        finished (see ``stable``).
        """
        runs = self.runs[setting]
        return (
            float(np.mean([math.log10(r.final_train_loss) for r in runs]))
            if all(map(_finished, runs))
            else math.inf
        )

    def neighbours(self, setting: Setting) -> list[Setting | None]:
        """The grid points one step closer to the edge of stability: the next larger learning
        rate and, where the grid has several dampings, the next smaller damping (None where the
        grid ends).
        """
        larger = [s for s in self.runs if s.damping == setting.damping and s.lr > setting.lr]
        out: list[Setting | None] = [min(larger, key=lambda s: s.lr) if larger else None]
        if len({s.damping for s in self.runs}) > 1 and setting.damping is not None:
            lam = setting.damping
            smaller = [s for s in self.runs if s.lr == setting.lr and (s.damping or lam) < lam]
            out.append(max(smaller, key=lambda s: s.damping or 0.0) if smaller else None)
        return out

    def stable(self, setting: Setting) -> bool:
        """The point trained on every seed, and so did its neighbours towards the edge, ending
        less than 10× worse.

        A neighbour one grid step away that diverges, fails to halve its loss, climbs at the end
        (final > 1.25 × best) or falls off a cliff (a 10× higher loss) means the point sits near
        the edge of stability, where a seed or another machine's floating point can tip it over.
        A point on the grid's edge (no neighbour to check) is not chosen either: widen the grid.
        """
        score = self.score(setting)
        return math.isfinite(score) and all(
            s is not None and self.score(s) < score + 1.0 for s in self.neighbours(setting)
        )

    @property
    def choice(self) -> Setting:
        """The best-scoring stable grid point; if no point is stable, the best-scoring one that
        finished (else the smallest learning rate), flagged by :attr:`fallback`.
        """
        candidates = [s for s in self.runs if self.stable(s)]
        if candidates:
            return min(candidates, key=self.score)
        finished = [s for s in self.runs if math.isfinite(self.score(s))]
        if finished:
            return min(finished, key=self.score)
        return min(self.runs, key=lambda s: (s.lr, -(s.damping or 0.0)))

    @property
    def best(self) -> Setting:
        """The best-scoring grid point that trained on every tuning seed (else the smallest
        learning rate): the best-point protocol."""
        finished = [s for s in self.runs if math.isfinite(self.score(s))]
        if finished:
            return min(finished, key=self.score)
        return min(self.runs, key=lambda s: (s.lr, -(s.damping or 0.0)))

    def setting(self, protocol: str) -> Setting:
        """The setting ``protocol`` picks: :attr:`best` (``BEST``) or :attr:`choice` (``STABLE``)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        return self.best if protocol == BEST else self.choice

    @property
    def fallback(self) -> bool:
        """True when no grid point was stable and :attr:`choice` fell back: widen the grid."""
        return not any(self.stable(s) for s in self.runs)

    def table(self) -> list[tuple[Setting, float, bool]]:
        """(setting, score, stable) for every grid point, best score first."""
        return sorted(
            ((s, self.score(s), self.stable(s)) for s in self.runs), key=lambda row: row[1]
        )

    def extension(self, extended: dict[bool, int], extend: int) -> list[Setting]:
        """The points a grid grows by after a round: one 1-3-10 step past an end whose learning
        rate scores best (at its damping), at most ``extend`` steps per end; ``extended`` counts
        the steps added so far above (True) and below (False) and is updated.
        """
        best = self.table()[0][0]
        row = [s.lr for s in self.runs if s.damping == best.damping]
        grown = []
        for up, at_end in ((True, best.lr == max(row)), (False, best.lr == min(row))):
            if at_end and math.isfinite(self.score(best)) and extended[up] < extend:
                extended[up] += 1
                grown.append(Setting(_lr_step(best.lr, up), best.damping))
        return grown


def _lr_step(lr: float, up: bool) -> float:
    """The next learning rate of a 1-3-10 grid above (or below) ``lr``: 0.1 → 0.3 → 1 → 3."""
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10**exponent
    if up:
        nxt = 3 * 10**exponent if mantissa < 2 else 10 ** (exponent + 1)
    else:
        nxt = 3 * 10 ** (exponent - 1) if mantissa < 2 else 10**exponent
    return float(f"{nxt:.3g}")


#: Rough cost of an update relative to SGD's (the paper's MLP at batch 100, one thread): the order
#: in which a pool takes runs, dearest first, so that no long run is left alone at the end.
_COST = {
    Method.SGD: 1.0,
    Method.ADAM: 1.2,
    Method.NATURAL: 2.7,
    Method.NATURAL_SAME: 2.7,
    Method.KFAC: 1.7,
    Method.KFAC_STANDARD: 6.0,
    Method.FOOF: 1.5,
}


def _run_dearest_first(specs: Sequence[NeuronRun], desc: str) -> dict[NeuronRun, Run[History]]:
    """Every distinct spec through one :func:`~nnstudies.runs.run_all`, dearest first (by
    :data:`_COST` × updates × batch); returned by spec, whatever the order."""
    unique = sorted(
        dict.fromkeys(specs),
        key=lambda s: -_COST.get(s.method, 1.0) * s.steps * s.batch_size,
    )
    return dict(zip(unique, run_all(unique, desc=desc)))


def _probes(method: Method, kind: Kind) -> bool:
    """Whether a comparison run records the direction cosines along training (KFAC's to FOOF's,
    to the exact natural gradient's, and the gradient's to both): the MLP's heuristic KFAC."""
    return method is Method.KFAC and kind is Kind.MLP


def tune_many(
    p: Preset,
    methods: Iterable[Method],
    kind: Kind = Kind.MLP,
    *,
    seeds: Sequence[int] | None = None,
) -> dict[Method, TuningResult]:
    """Train every grid point of each of ``methods`` for the preset's full run length: the
    experiment's own ``grids`` (tuned in the run, on its ``tune_seeds``), else ``GRIDS`` or
    ``GRIDS_AUTOENCODER`` on seeds 0 and 1 (how the fixed settings of `smoke` and `cpu` were
    chosen). With the experiment's grids, a grid grows past a winning end by rounds
    (:meth:`TuningResult.extension`); each round is one :func:`~nnstudies.runs.run_all`.

    ``TuningResult.setting(protocol)`` then picks the best point or the best stable point (cached:
    each run trains once).
    """
    kind = Kind(kind)
    exp = experiment_of(p, kind)
    grids = exp.grids or (GRIDS_AUTOENCODER if kind is Kind.AUTOENCODER else GRIDS)
    chosen_seeds = tuple(seeds) if seeds is not None else exp.tune_seeds if exp.grids else (0, 1)
    todo = {Method(m): list(grids[Method(m).tuned_as]) for m in methods}
    results = {m: TuningResult(m) for m in todo}
    extended = {m: {True: 0, False: 0} for m in todo}  # steps added above and below
    while any(todo.values()):
        specs = [
            run_spec(p, m, setting, seed=s, kind=kind)
            for m, grid in todo.items()
            for setting in grid
            for s in chosen_seeds
        ]
        done = _run_dearest_first(specs, f"tuning ({kind})")
        runs = iter(specs)
        for m, grid in todo.items():
            for setting in grid:
                results[m].runs[setting] = [
                    MethodRun.of(done[spec]) for spec in (next(runs) for _ in chosen_seeds)
                ]
        todo = {
            m: results[m].extension(extended[m], exp.extend) if grid and exp.grids else []
            for m, grid in todo.items()
        }
    return results


def tune(
    p: Preset, method: Method, kind: Kind = Kind.MLP, *, seeds: Sequence[int] | None = None
) -> TuningResult:
    """:func:`tune_many` for one method."""
    return tune_many(p, [method], kind, seeds=seeds)[Method(method)]


def chosen_settings(
    p: Preset, methods: Iterable[Method], kind: Kind = Kind.MLP, protocol: str = STABLE
) -> dict[Method, Setting]:
    """Each method's setting at preset ``p`` under ``protocol``: tuned in the run
    (:func:`tune_many`, every method of the experiment in the same rounds) where the experiment
    has grids, else the preset's fixed one (chosen at `cpu` by the stability rule). The control
    uses the MLP's settings (the identical-data natural gradient the natural gradient's).
    """
    kind, asked = Kind(kind), [Method(m) for m in methods]
    if kind is Kind.CONTROL:
        kind, tuned = Kind.MLP, {m: m.tuned_as for m in asked}
    else:
        tuned = {m: m for m in asked}
    exp = experiment_of(p, kind)
    if exp.grids is None:
        return {m: exp.settings[t] for m, t in tuned.items()}
    results = tune_many(p, dict.fromkeys([*exp.methods, *tuned.values()]), kind)
    return {m: results[t].setting(protocol) for m, t in tuned.items()}


def chosen_setting(
    p: Preset, method: Method, kind: Kind = Kind.MLP, protocol: str = STABLE
) -> Setting:
    """``method``'s setting at preset ``p`` (see :func:`chosen_settings`)."""
    return chosen_settings(p, [method], kind, protocol)[Method(method)]


def protocols(p: Preset, kind: Kind = Kind.MLP) -> tuple[str, ...]:
    """The protocols a comparison runs: both where the experiment tunes in the run, else the
    stability rule alone (the fixed settings were chosen by it)."""
    exp = experiment_of(p, Kind.MLP if Kind(kind) is Kind.CONTROL else kind)
    return PROTOCOLS if exp.grids else (STABLE,)


def train_run(
    p: Preset,
    method: Method,
    *,
    seed: int = 0,
    kind: Kind = Kind.MLP,
    setting: Setting | None = None,
    inv_period: int | None = None,
    steps: int | None = None,
    probes: bool = False,
) -> MethodRun:
    """Train the chapter's model with ``method`` (executed as a :class:`NeuronRun`, cached, on
    one CPU thread).

    ``setting`` (lr, damping) defaults to the chosen one (:func:`chosen_setting`),
    ``inv_period`` and ``steps`` to the preset's. A run that diverges is returned, with
    :attr:`MethodRun.diverged_at` set. ``probes=True`` (the comparison's KFAC runs) also records
    the cosines of KFAC's direction to FOOF's at every evaluation. The trained network:
    ``execute(run_spec(...)).model()``.
    """
    spec = run_spec(
        p,
        method,
        setting or chosen_setting(p, method, kind),
        seed=seed,
        kind=kind,
        inv_period=inv_period,
        steps=steps,
        probes=probes,
    )
    return MethodRun.of(execute(spec))


# ------------------------------------------------------------------ the comparison on several seeds


@dataclass(frozen=True)
class Comparison:
    """Every method's runs, one per judging seed (same seed: same initialisation and batches for
    every method), at the settings one ``protocol`` picked."""

    kind: Kind
    seeds: tuple[int, ...]
    runs: dict[Method, list[MethodRun]]
    protocol: str = STABLE

    def final_losses(self, method: Method) -> list[float]:
        return [r.final_train_loss for r in self.runs[method]]

    def log_ratio(self, worse: Method, better: Method) -> list[float]:
        """Per seed, log10(loss of ``worse`` / loss of ``better``): 1 means ``better`` ends 10×
        lower."""
        return [
            math.log10(w / b) for w, b in zip(self.final_losses(worse), self.final_losses(better))
        ]

    def updates(self) -> dict[str, list[int]]:
        """Per method, the updates each run made (fewer where it diverged)."""
        return {
            f"{m}": [r.history.eval_step[-1] if r.history.eval_step else 0 for r in runs]
            for m, runs in self.runs.items()
        }


def compare_protocols(
    p: Preset, kind: Kind = Kind.MLP, *, methods: Sequence[Method] | None = None
) -> dict[str, Comparison]:
    """Every method of the preset (or ``methods``) on every judging seed (``p.seeds``), at the
    settings of each protocol the experiment runs (:func:`protocols`), in one
    :func:`~nnstudies.runs.run_all` (a run two protocols share trains once).

    The MLP's heuristic KFAC runs also record the direction cosines along training (see
    :class:`~.experiment.NeuronRun`), with the exact natural gradient at its own setting's damping.
    """
    kind = Kind(kind)
    names = [Method(m) for m in (methods or experiment_of(p, kind).methods or list(Method))]
    specs: dict[str, dict[Method, list[NeuronRun]]] = {}
    for protocol in protocols(p, kind):
        settings = chosen_settings(p, names, kind, protocol)
        natural = (
            chosen_setting(p, Method.NATURAL, Kind.MLP, protocol) if kind is Kind.MLP else None
        )
        specs[protocol] = {
            m: [
                run_spec(
                    p,
                    m,
                    settings[m],
                    seed=s,
                    kind=kind,
                    probes=_probes(m, kind),
                    natural_damping=natural.damping if natural and _probes(m, kind) else None,
                )
                for s in p.seeds
            ]
            for m in names
        }
    extra = _statistics_specs(p) if kind is Kind.MLP else []  # in the same pool (cached)
    everything = [spec for by in specs.values() for ss in by.values() for spec in ss] + extra
    done = _run_dearest_first(everything, f"compare ({kind})")
    return {
        protocol: Comparison(
            kind,
            p.seeds,
            {m: [MethodRun.of(done[spec]) for spec in ss] for m, ss in by.items()},
            protocol,
        )
        for protocol, by in specs.items()
    }


def compare(
    p: Preset,
    kind: Kind = Kind.MLP,
    *,
    methods: Sequence[Method] | None = None,
    protocol: str = STABLE,
) -> Comparison:
    """The comparison under one ``protocol`` (see :func:`compare_protocols`; cached)."""
    return compare_protocols(p, kind, methods=methods)[protocol]


def statistics_check(p: Preset, protocol: str = STABLE) -> list[MethodRun] | None:
    """KFAC on the MLP with its statistics fed at every update (``stat_steps`` = T), at the
    comparison's setting on the first judging seed: the check that feeding them only in the
    updates before each inversion (the runs' default, for speed) costs no training loss. None
    where the runs feed them at every update anyway."""
    specs = _statistics_specs(p, protocol)
    if not specs:
        return None
    return [MethodRun.of(run) for run in run_all(specs, desc="KFAC, statistics every update")]


def _statistics_specs(p: Preset, protocol: str = STABLE) -> list[NeuronRun]:
    """The runs of :func:`statistics_check` (none where the statistics are fed at every update)."""
    exp = p.mlp
    stat_steps = min(exp.inv_period, 10) if exp.stat_steps is None else exp.stat_steps
    if stat_steps >= exp.inv_period:
        return []
    setting = chosen_setting(p, Method.KFAC, Kind.MLP, protocol)
    return [
        run_spec(p, Method.KFAC, setting, seed=s, stat_steps=exp.inv_period) for s in p.seeds[:1]
    ]
