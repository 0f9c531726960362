"""Do two versions of the code compute the same numbers? The check behind `tools/book.py verify`.

    python tools/verify.py compare 01 [--base COMMIT] [--modes smoke full-dry]

runs chapter 01's notebook from ``COMMIT`` (a git worktree under ``_build/verify``) and from the
working tree, on this machine, one torch thread, each with an empty model cache: at ``smoke``
and in a ``full``-shaped dry run (``NNSTUDIES_DRY_RUN=1``). It then compares every number the
chapter recorded (timings and the environment left out) and a digest of every trained state
in the model cache (the weights' bytes, dtypes and shapes, in any order). Prints the differences;
exit status 0 when everything is bit-identical. A mode whose preset itself differs between the
two versions is not run: at ``smoke`` it is skipped, and said so (the stored ``full`` numbers do
not depend on it); in the ``full``-shaped run it is a difference (the stored numbers cannot
hold). The base commit's runs are kept, keyed by commit, chapter and mode, so a second
comparison only runs the new code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "_build" / "verify"
MODES = {
    "smoke": {"NNSTUDIES_SCALE": "smoke"},
    "full-dry": {"NNSTUDIES_SCALE": "full", "NNSTUDIES_DRY_RUN": "1"},
}
#: Recorded values that measure the machine rather than the method: never compared (times; claims
#: marked ``timing`` are left out too, by the list ``timing_claims`` that the chapter records).
TIMING = re.compile(
    r"(^|[._ ])(seconds|secs|wall|time|times|timing|timings|ms|per_update_ms|environment|date)($|[._ ])",
    re.IGNORECASE,
)

#: Values the claims modules derive from the measurements (outside the numeric hash, like the
#: rules): re-judging stored numbers must never need a re-run, so they are not compared. The
#: measurements they come from, and every trained state, still are.
JUDGED = re.compile(r"^(claim\.|claim_rules|seed_roles|timing_claims|fragile)")


#: Prints a chapter package's preset of one scale as canonical JSON, from the checkout on PYTHONPATH.
_PRESET = """
import sys
from nnstudies.provenance import preset_values
print(preset_values([sys.argv[1]], sys.argv[2]))
"""


def preset(root: Path, chapter: str, mode: str) -> str | None:
    """The preset ``mode`` runs chapter ``chapter`` at, as the checkout ``root`` defines it
    (canonical JSON; ``"{}"`` for a chapter with no presets), or None where that checkout cannot
    say (older code): then the mode is compared as usual."""
    package = "nnstudies.chapters." + notebook(root, chapter).stem[3:]
    env = {**os.environ, "PYTHONPATH": str(root / "lib")}
    done = subprocess.run(
        [sys.executable, "-c", _PRESET, package, MODES[mode]["NNSTUDIES_SCALE"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def notebook(root: Path, chapter: str) -> Path:
    found = [
        p
        for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if chapter in (p.stem, p.stem[:2], p.name)
    ]
    if len(found) != 1:
        raise SystemExit(f"no single chapter {chapter!r} in {root / 'notebooks'}")
    return found[0]


def worktree(commit: str, repo: Path = ROOT, work: Path = WORK) -> Path:
    """A checkout of ``commit`` of ``repo`` under ``work`` (made once)."""
    full = subprocess.run(
        ["git", "rev-parse", commit], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = work / f"tree-{full[:12]}"
    if not (path / "lib").is_dir():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=repo, check=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), full],
            cwd=repo,
            check=True,
            capture_output=True,
        )
    return path


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def state_digests(cache: Path) -> list[str]:
    """A digest of each trained state (``state_dict``) in a model cache folder, sorted."""
    import torch

    found = []
    for path in sorted(cache.rglob("*.pt")):
        stored = torch.load(path, map_location="cpu", weights_only=True)
        state = stored.get("state_dict", {}) if isinstance(stored, dict) else {}
        digest = hashlib.sha256()
        for tensor in sorted(
            _tensors(state), key=lambda t: (str(t.dtype), tuple(t.shape), t.numpy().tobytes())
        ):
            digest.update(
                f"{tensor.dtype}{tuple(tensor.shape)}".encode()
                + tensor.contiguous().numpy().tobytes()
            )
        found.append(digest.hexdigest())
    return sorted(found)


def numbers(values: Any, where: str = "") -> dict[str, Any]:
    """Flatten recorded values to ``path -> leaf``, leaving out timings and the environment."""
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for key, value in values.items():
            if TIMING.search(str(key)) or key in ("dry_run",):
                continue
            out.update(numbers(value, f"{where}.{key}" if where else str(key)))
        return out
    if isinstance(values, list):
        out = {}
        for i, value in enumerate(values):
            out.update(numbers(value, f"{where}[{i}]"))
        return out
    return {where: values}


def run(root: Path, chapter: str, mode: str, into: Path, timeout: int = 3600) -> dict[str, Any]:
    """Execute ``chapter`` from the checkout ``root`` in ``mode``; return its recorded values and state digests."""
    nb = notebook(root, chapter)
    into.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **MODES[mode],
        "PYTHONPATH": str(root / "lib"),
        "NNSTUDIES_RESULTS_DIR": str(into / "recorded"),
        "NNSTUDIES_CACHE": str(into / "cache"),
        "NNSTUDIES_RESULTS_STORE": str(root / "results"),
        "NNSTUDIES_STATIC": "1",
        "NNSTUDIES_WORKERS": "1",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    if mode != "full-dry":
        env.pop("NNSTUDIES_DRY_RUN", None)
    command = [
        sys.executable,
        "-m",
        "papermill",
        str(nb),
        str(into / nb.name),
        "--cwd",
        str(nb.parent),
        "-k",
        "python3",
        "--no-progress-bar",
        "--execution-timeout",
        str(timeout),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{nb} from {root} failed in mode {mode}:\n{done.stderr[-3000:]}")
    recorded = json.loads((into / "recorded" / f"{nb.stem}.json").read_text())
    result = {
        "values": numbers(recorded),
        "states": state_digests(into / "cache"),
        "timing_claims": recorded.get("timing_claims", []),
    }
    (into / "summary.json").write_text(json.dumps(result))
    return result


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 20) -> list[str]:
    """What differs between two runs' summaries (empty: bit-identical). Claims either side marks
    as timings are left out."""
    found = []
    timing = {f"claim.{k}" for side in (old, new) for k in side.get("timing_claims", [])}
    keep = lambda values: {
        k: v for k, v in values.items() if k.partition("[")[0] not in timing and not JUDGED.match(k)
    }
    a, b = keep(old["values"]), keep(new["values"])
    for key in sorted(set(a) | set(b)):
        if key not in a:
            found.append(f"only in the new run: {key} = {b[key]!r}")
        elif key not in b:
            found.append(f"only in the old run: {key} = {a[key]!r}")
        elif a[key] != b[key] or type(a[key]) is not type(b[key]):
            found.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    missing, extra = (
        Counter(old["states"]) - Counter(new["states"]),
        Counter(new["states"]) - Counter(old["states"]),
    )
    if missing or extra:
        found.append(
            f"trained states: {len(old['states'])} old, {len(new['states'])} new; "
            f"{sum(missing.values())} old states not among the new, {sum(extra.values())} new states not among the old"
        )
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def compare(
    chapter: str, base: str, modes: list[str], new_root: Path = ROOT, work: Path = WORK
) -> tuple[list[str], list[str]]:
    """Run ``chapter`` from commit ``base`` of ``new_root``'s repository and from ``new_root``'s
    working tree in each mode; return the differences (empty: bit-identical) and the modes
    compared (``smoke`` is left out where its preset changed)."""
    work.mkdir(parents=True, exist_ok=True)
    old_root = worktree(base, new_root, work)
    commit = old_root.name.removeprefix("tree-")
    found: list[str] = []
    compared: list[str] = []
    for mode in modes:
        old_preset, new_preset = preset(old_root, chapter, mode), preset(new_root, chapter, mode)
        if None not in (old_preset, new_preset) and old_preset != new_preset:
            scale = MODES[mode]["NNSTUDIES_SCALE"]
            if mode == "smoke":
                print(
                    f"  {mode}: not compared: the {scale} preset changed since {commit}, so its "
                    "numbers would differ whatever the code; the stored full numbers do not use it"
                )
            else:
                found.append(f"{mode}: the {scale} preset changed since {commit}")
            continue
        compared.append(mode)
        kept = work / "runs" / f"{commit}-{notebook(old_root, chapter).stem}-{mode}"
        if (kept / "summary.json").exists():
            old = json.loads((kept / "summary.json").read_text())
        else:
            shutil.rmtree(kept, ignore_errors=True)
            print(f"  running {chapter} from {commit} ({mode}) ...", flush=True)
            old = run(old_root, chapter, mode, kept)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            print(f"  running {chapter} from {new_root} ({mode}) ...", flush=True)
            new = run(new_root, chapter, mode, Path(tmp))
        diff = differences(old, new)
        print(
            f"  {mode}: {len(old['values'])} recorded numbers, {len(old['states'])} trained states: "
            + ("bit-identical" if not diff else f"{len(diff)} differences")
        )
        found += [f"{mode}: {d}" for d in diff]
    return found, compared


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("chapter")
    cmp_.add_argument("--base", default="HEAD")
    cmp_.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    found, compared = compare(args.chapter, args.base, args.modes)
    for line in found:
        print("  " + line)
    if not compared:
        print("  no mode compared")
    raise SystemExit(1 if found or not compared else 0)


if __name__ == "__main__":
    main()
