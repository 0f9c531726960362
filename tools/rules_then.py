"""Record in stored results the rules (claims' fingerprints) of the commit that made them.

``tools/book.py rules-then [CHAPTER ...]``: for results stored before runs recorded their rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from book import RESULTS, ROOT, write_results

# Run with the library of an old commit on sys.path: print each claim's decision as that code stated it
# (rules before the third edition had no minimum effect: "partly" was any lead beyond the threshold).
_RULES_THEN = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except Exception:
        continue
    for c in getattr(module, "CLAIMS", ()):
        r = c.rule
        found[c.key] = {"kind": r.kind, "threshold": r.threshold, "margin": r.margin, "k": r.k,
                        "min_runs": r.min_runs,
                        "minimum": getattr(r, "minimum", None if r.kind == "within" else 0.0),
                        "point": getattr(c, "point", ""), "untested": dict(getattr(c, "untested", {})),
                        "protocol": getattr(getattr(c, "protocol", None), "value", None)}
print(json.dumps(found))
"""


def rules_then(only: list[str] | None = None) -> None:
    """Record in each stored result the fingerprints of its claims as they stood at the result's commit.

    For results stored before runs recorded them (``provenance["claims"]``): the claims modules of
    that commit are imported from a ``git archive`` of it, so that a rule changed since is found.
    """
    from nnstudies.claims import Claim, Protocol, Rule, fingerprints

    for path in sorted(RESULTS.glob("*/*.json")):
        if only and not any(path.parent.name.startswith(o) for o in only):
            continue
        stored = json.loads(path.read_text())
        provenance = stored["provenance"]
        if "claims" in provenance:
            print(f"{path.relative_to(ROOT)}: records its rules already")
            continue
        commit = provenance["commit"]
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(
                ["git", "archive", commit, "lib"], cwd=ROOT, capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            names = [m for m in provenance["modules"] if m.startswith("nnstudies.")]
            out = subprocess.run(
                [sys.executable, "-c", _RULES_THEN, *names],
                env={**os.environ, "PYTHONPATH": str(Path(tmp) / "lib")},
                capture_output=True,
                text=True,
                check=True,
            )
        then = json.loads(out.stdout)
        claims = [
            Claim(
                key,
                "",
                "",
                "",
                Rule(d["kind"], d["threshold"], d["margin"], d["k"], d["min_runs"], d["minimum"]),
                point=d["point"],
                untested=d["untested"],
                protocol=Protocol(d["protocol"]) if d["protocol"] else None,
            )
            for key, d in then.items()
        ]
        provenance["claims"] = fingerprints(claims)
        provenance["claims_from"] = f"the claims modules of commit {commit}, read afterwards"
        write_results(path, stored)
        print(f"{path.relative_to(ROOT)}: {len(claims)} claims' rules of commit {commit} recorded")
