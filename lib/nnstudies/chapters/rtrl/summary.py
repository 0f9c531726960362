"""Chapter 4's closing tables from a stored run (:func:`stored_summary`), and the names of TBPTT's
two variants (:func:`variant_name`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .learners import Algorithm
from .presets import TBPTT_VARIANTS

__all__ = ["stored_summary", "variant_name"]

_VARIANT_NAMES = {
    Algorithm.TBPTT_EVERY_K: "TBPTT(k), an update every k steps",
    Algorithm.TBPTT: "TBPTT(k), sliding window",
}


def variant_name(variant: Algorithm) -> str:
    """How the page names one of :data:`~.presets.TBPTT_VARIANTS`."""
    return _VARIANT_NAMES[variant]


def _mean_sd(values: Sequence[float], fmt: str = ".3f") -> str:
    xs = np.asarray(values, dtype=float)
    return f"{xs.mean():{fmt}} ± {xs.std(ddof=1):{fmt}}" if len(xs) > 1 else f"{xs[0]:{fmt}}"


def stored_summary(values: Mapping[str, Any], *, scale: str = "full") -> Any:
    """The closing tables of a stored run, as Markdown: bits per character (mean ± sd over seeds),
    TBPTT's k sweep in both variants with the k at which each catches OK, the noise at steady
    state, and the fitted cost exponents with their 95% intervals. Parts a stored run predates are
    left out."""
    from IPython.display import Markdown

    from .cost import exponent_interval

    parts: list[str] = []

    def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])

    if "char_bpc_ok" in values:
        bigram = float(values["char_bigram"])
        rows = [
            [
                label,
                ", ".join(f"{v:.3f}" for v in bpc),
                _mean_sd(bpc),
                f"{bigram - np.mean(bpc):.3f}",
            ]
            for label, bpc in zip(
                values["char_learners"], (values["char_bpc_ok"], values["char_bpc_tbptt"])
            )
        ]
        gap = np.asarray(values["char_bpc_ok"]) - np.asarray(values["char_bpc_tbptt"])
        parts += [
            (
                f"**Characters** (`{scale}`; the bigram model: {bigram:.3f} bits/char, character "
                f"frequencies alone: {float(values['char_unigram']):.3f}):"
            ),
            table(
                ["learner", "held-out bits/char per seed", "mean ± sd", "below the bigram"], rows
            ),
            f"OK − TBPTT, same seed: {_mean_sd(gap)} bits/char.",
        ]
    if "copy_k_sweep" in values:
        sweep = values["copy_k_sweep"]
        ok = sweep["ok"]
        rows = [[ok["label"], "–", _mean_sd(ok["lengths"], ".1f"), f"{np.mean(ok['seconds']):.0f}"]]
        for variant in TBPTT_VARIANTS:
            for k, row in sorted(sweep[variant.value].items(), key=lambda kv: int(kv[0])):
                rows.append(
                    [
                        variant_name(variant),
                        k,
                        _mean_sd(row["lengths"], ".1f"),
                        f"{np.mean(row['seconds']):.0f}",
                    ]
                )
        catches = []
        for variant in TBPTT_VARIANTS:
            k = sweep["catch_up"][variant.value]
            name = variant_name(variant)
            if k is None:
                catches.append(f"{name}: no swept k reaches OK")
            else:
                cost = np.mean(sweep[variant.value][str(k)]["seconds"])
                catches.append(
                    f"{name}: first at k = {k}, {cost:.0f} s per run against OK's "
                    f"{np.mean(ok['seconds']):.0f} s"
                )
        parts += [
            (
                f"**Copy task, TBPTT's k swept** (`{scale}`; T₊ reached, mean ± sd over seeds; "
                "seconds per run on one thread, two runs at a time):"
            ),
            table(["learner", "k", "T₊", "seconds per run"], rows),
            "The k at which TBPTT reaches OK's mean T₊: " + "; ".join(catches) + ".",
        ]
    if "noise_steps" in values:
        noise = values["variance_mean"]
        order = sorted(noise, key=lambda label: -float(np.mean(noise[label])))
        rows = [[label, _mean_sd(noise[label], ".3g")] for label in order]
        steps = values["noise_steps"]
        parts += [
            (
                f"**Noise at steady state** (`{scale}`; relative variance E‖ĝ − g‖² / ‖g‖² per "
                f"step, averaged over steps {steps['settle'] + 1}–"
                f"{steps['settle'] + steps['steps']}, mean ± sd over seeds):"
            ),
            table(["learner", "relative variance"], rows),
        ]
    if "cost_seconds" in values:
        ns = [float(n) for n in values["cost_sizes"]][-3:]
        rows = []
        for label, by_repeat in values["cost_seconds"].items():
            slope, low, high = exponent_interval(ns, [row[-3:] for row in by_repeat])
            rows.append([label, f"{slope:.2f}", f"{low:.2f} – {high:.2f}"])
        parts += [
            f"**Cost** (`{scale}`; exponent of seconds per step against n over n = "
            + ", ".join(f"{n:g}" for n in ns)
            + ", all repeats pooled):",
            table(["learner", "fitted exponent", "95% interval"], rows),
        ]
    return Markdown("\n\n".join(parts))
