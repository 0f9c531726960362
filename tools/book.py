"""Maintainer tooling behind `make book`: keep notebooks in step with _config.yml, execute them, build the book.

    python tools/book.py sync              # badge and install line from _config.yml's repository
    python tools/book.py execute [--force] # run changed chapters at the cpu scale, store outputs
    python tools/book.py build [--out DIR] # HTML book from the stored outputs, warnings as errors
    python tools/book.py check             # exit 1 when a stored notebook is stale or out of sync
    python tools/book.py results --scale full [00 ...]  # run chapters at full (or paper), store results/<chapter>/<scale>.json
    python tools/book.py student [--out DIR]           # the student edition: no solutions, an empty cell for code
    python tools/book.py pdf [--out DIR]               # the book as one PDF (single-page HTML printed by Chromium)
    python tools/book.py crosscheck [00 ...]           # re-execute at cpu with another floating-point path, compare verdicts
    python tools/book.py verify [00 ...]               # certify stored results across a refactor (same numbers), or say to re-run

A chapter is re-executed only when its code cells, the library modules it imports
(directly or not) or its stored results changed since its stored outputs were made:
the hash of these is kept in the notebook's metadata (``metadata.nnstudies.source_hash``),
so a fresh clone knows its stored outputs are current without running anything.
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
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results"
SCALE = "cpu"

sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from nnstudies_book import mathjax

from nnstudies.provenance import PACKAGE, imported_modules
from nnstudies.provenance import source_hash as provenance_source_hash


def repository() -> tuple[str, str]:
    """(url, branch) of the book's repository, from _config.yml: the one place it is kept."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def chapters(only: list[str] | None = None) -> list[Path]:
    """The chapter notebooks, or those ``only`` names: 04, 04_rtrl or 04_rtrl.ipynb.

    A name that matches no chapter is an error, never a silent no-op.
    """
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    unknown = [n for n in only if not any(n in (p.name, p.stem, p.stem[:2]) for p in found)]
    if unknown:
        raise SystemExit(f"no chapter matches {unknown}; chapters: {[p.stem for p in found]}")
    return [p for p in found if {p.name, p.stem, p.stem[:2]} & set(only)]


def notebook_modules(nb: nbformat.NotebookNode) -> set[str]:
    """The library modules a notebook imports in its code cells (the package itself included)."""
    found = {PACKAGE}
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                found |= imported_modules(cell.source)
            except SyntaxError:
                pass
    return found


def source_hash(nb: nbformat.NotebookNode, scale: str = SCALE, name: str | None = None) -> str:
    """Hash of what decides a notebook's outputs: its code cells, the scale, the library modules it imports
    (transitively, see nnstudies.provenance) and its stored results (``results/<chapter>/*.json``).

    Editing one chapter's module therefore leaves the other chapters current.
    """
    digest = hashlib.sha256(scale.encode())
    for cell in nb.cells:
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", []):
            digest.update(b"\0cell\0" + cell.source.encode())
    digest.update(b"\0library\0" + library_hash(nb).encode())
    if name:
        for path in sorted((RESULTS / name).glob("*.json")):
            digest.update(b"\0results\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def library_hash(nb: nbformat.NotebookNode) -> str:
    return provenance_source_hash(sorted(notebook_modules(nb)))


def stored_hash(nb: nbformat.NotebookNode) -> str | None:
    return nb.metadata.get("nnstudies", {}).get("source_hash")


# ----------------------------------------------------------------------------- sync


def synced(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The notebook with its Colab badge and install line pointing at _config.yml's repository."""
    url, branch = repository()
    slug = url.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{slug}/blob/{branch}/notebooks/{name}"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = re.sub(
                r"https://colab\.research\.google\.com/github/[^)\s]+", colab, cell.source
            )
        elif cell.cell_type == "code":
            cell.source = re.sub(
                r'"nnstudies @ git\+[^"]+"', f'"nnstudies @ git+{url}@{branch}"', cell.source
            )
    return nb


def problems(path: Path) -> list[str]:
    """What is wrong with a stored chapter: out of sync with _config.yml, stale, unexecuted or failed."""
    nb = nbformat.read(path, as_version=4)
    found = []
    if nbformat.writes(synced(nbformat.read(path, as_version=4), path.name)) != nbformat.writes(nb):
        found.append(
            "badge or install line differs from _config.yml's repository (run: python tools/book.py sync)"
        )
    if stored_hash(nb) != source_hash(nb, name=path.stem):
        found.append(
            "stored outputs are stale: code or library changed since the last execution (run: make book)"
        )
    if any(
        o.get("output_type") == "error"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    ):
        found.append("a stored output is an error")
    return found


def sync() -> None:
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        if nbformat.writes(synced(nb, path.name)) != before:
            nbformat.write(nb, path)
            print(f"synced {path.relative_to(ROOT)}")


# ----------------------------------------------------------------------------- execute


def _clean(nb: nbformat.NotebookNode) -> None:
    """Drop run-specific metadata (timings, papermill bookkeeping) so stored notebooks diff cleanly."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


def execute(force: bool = False, only: list[str] | None = None, timeout: int = 1800) -> None:
    import papermill

    os.environ["NNSTUDIES_STATIC"] = "1"
    os.environ.pop(
        "NNSTUDIES_SCALE", None
    )  # the stored outputs are always the notebook's own default, cpu
    for path in chapters(only):
        nb = nbformat.read(path, as_version=4)
        digest = source_hash(nb, name=path.stem)
        if not force and stored_hash(nb) == digest and not problems(path):
            print(f"{path.name}: unchanged since its last execution, skipped")
            continue
        print(f"{path.name}: executing at the {SCALE} scale ...", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            # An empty model cache: stored outputs show a fresh reader's run (progress bars, timings).
            os.environ["NNSTUDIES_CACHE"] = str(Path(tmp) / "models")
            out = Path(tmp) / path.name
            try:
                papermill.execute_notebook(
                    str(path),
                    str(out),
                    cwd=str(NOTEBOOKS),
                    kernel_name="python3",
                    progress_bar=False,
                    execution_timeout=timeout,
                    parameters={},
                )
            except Exception:
                kept = ROOT / "_build" / "failed" / path.name
                kept.parent.mkdir(parents=True, exist_ok=True)
                if out.exists():
                    shutil.copy(out, kept)
                print(
                    f"{path.name}: FAILED; the stored notebook is unchanged, the failed run is in {kept}",
                    file=sys.stderr,
                )
                raise
            executed = nbformat.read(out, as_version=4)
        _clean(executed)
        executed.metadata["nnstudies"] = {"source_hash": digest, "scale": SCALE}
        nbformat.write(executed, path)
        print(f"{path.name}: done in {time.perf_counter() - started:.0f} s, outputs stored")


# ----------------------------------------------------------------------------- results


def store_results(
    chapter: str,
    scale: str,
    values: dict,
    *,
    provenance: dict,
) -> Path:
    """Write ``results/<chapter>/<scale>.json``: what the chapter recorded, with its ``provenance``
    (commit and hashes as they were when the run started, times, workers)."""
    if values.get("dry_run"):
        raise SystemExit(
            f"{chapter}: these results come from a dry run (NNSTUDIES_DRY_RUN); they are never stored"
        )
    if values.get("scale") not in (None, scale):
        raise SystemExit(
            f"{chapter}: the run recorded scale {values.get('scale')!r}, not {scale!r}; nothing stored"
        )
    commit = str(provenance.get("commit", ""))
    if not commit or commit == "unknown" or commit.endswith("+dirty"):
        raise SystemExit(
            f"{chapter}: the code that ran is not a commit ({commit or 'no commit'}); results from "
            "uncommitted code are never stored: commit, then run again"
        )
    values = dict(values)
    env = values.pop("environment", {})
    provenance = {
        "chapter": chapter,
        "scale": scale,
        "seeds": values.get("seeds"),
        **provenance,
        **env,
    }
    return write_results(
        RESULTS / chapter / f"{scale}.json", {"provenance": provenance, "values": values}
    )


def write_results(path: Path, stored: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def results(scale: str, only: list[str] | None = None, timeout: int = 4 * 3600) -> None:
    """Run chapters at ``scale`` (full or paper) with papermill into _build/results and store what they record.

    The chapter's sweeps go through the engine (nnstudies.runs): a process pool over every core, or
    the executor ``$NNSTUDIES_EXECUTOR`` names (``slurm``). The code must be committed: results
    from uncommitted code are refused before anything runs.
    """
    import resource

    import papermill

    from nnstudies.claims import chapter_claims, fingerprints
    from nnstudies.provenance import code_hashes, git_commit
    from nnstudies.runs import default_workers, make_executor

    if scale not in ("full", "paper"):
        raise SystemExit(f"make results stores the long scales 'full' and 'paper', not {scale!r}")
    if os.environ.get("NNSTUDIES_DRY_RUN", "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
        "off",
    ):
        raise SystemExit("results of a dry run (NNSTUDIES_DRY_RUN) are never stored; unset it")
    commit = git_commit(ROOT)
    if commit == "unknown" or commit.endswith("+dirty"):
        raise SystemExit(
            f"the library or notebooks differ from the commit ({commit}): commit first, then run"
        )
    make_executor()  # an unknown $NNSTUDIES_EXECUTOR, or submitit missing, fails here and not later
    out_dir = ROOT / "_build" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in chapters(only):
        nb = nbformat.read(path, as_version=4)
        modules = sorted(notebook_modules(nb))  # the code as it is when the run starts
        provenance = {
            "commit": commit,
            "modules": modules,
            **code_hashes(modules, scale, path),
            "claims": fingerprints(chapter_claims(modules)),  # the rules as the run starts
            "workers": default_workers(),
            "executor": os.environ.get("NNSTUDIES_EXECUTOR") or "local",
        }
        print(f"{path.name}: running at the {scale} scale ...", flush=True)
        started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(
                {
                    "NNSTUDIES_STATIC": "1",
                    "NNSTUDIES_SCALE": scale,
                    "NNSTUDIES_RESULTS_DIR": tmp,
                    "NNSTUDIES_CACHE": os.environ.get("NNSTUDIES_RESULTS_CACHE")
                    or str(Path(tmp) / "models"),
                }
            )
            out = out_dir / f"{path.stem}-{scale}.ipynb"
            papermill.execute_notebook(
                str(path),
                str(out),
                cwd=str(NOTEBOOKS),
                kernel_name="python3",
                progress_bar=False,
                execution_timeout=timeout,
                parameters={},
            )
            recorded = Path(tmp) / f"{path.stem}.json"
            if not recorded.exists():
                raise SystemExit(f"{path.name} recorded nothing at {scale}; nothing stored")
            values = json.loads(recorded.read_text())
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        provenance["wall_seconds"] = round(time.perf_counter() - started, 1)
        provenance["cpu_seconds"] = round(
            cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime, 1
        )
        stored = store_results(path.stem, scale, values, provenance=provenance)
        print(
            f"{path.name}: done in {provenance['wall_seconds']:.0f} s wall, {provenance['cpu_seconds']:.0f} s CPU; "
            f"stored {stored.relative_to(ROOT)}; the executed notebook is {out.relative_to(ROOT)}"
        )


# ----------------------------------------------------------------------------- verify


def verify(only: list[str] | None = None, modes: list[str] | None = None) -> bool:
    """Certify stored results across a change of the numeric code, or say they must be re-run.

    For each stored result whose code differs from the code here, run the chapter from the commit
    its numbers stand for (the stored commit, or the last certificate's) and from this commit, at
    smoke and in a full-shaped dry run (tools/verify.py; smoke is skipped, and said so, where its
    preset changed between the two). Bit-identical recorded numbers and trained states: a
    certificate is appended (from, to, date, machine, torch, hashes, the checks made). Otherwise
    the chapter must be re-run; nothing is written. Needs a clean checkout (a certificate names a
    commit).
    """
    import verify as check
    from nnstudies.provenance import code_hashes, environment, git_commit
    from nnstudies.results import StoredResults

    head = git_commit(ROOT)
    if head == "unknown" or head.endswith("+dirty"):
        raise SystemExit(
            f"verify certifies committed code only; the checkout is {head}: commit first"
        )
    ok = True
    for path in chapters(only):
        nb = nbformat.read(path, as_version=4)
        modules = sorted(notebook_modules(nb))
        for stored_path in sorted((RESULTS / path.stem).glob("*.json")):
            stored = json.loads(stored_path.read_text())
            provenance = stored["provenance"]
            scale = provenance["scale"]
            result = StoredResults(path.stem, scale, stored["values"], provenance, stored_path)
            if result.is_current:
                print(f"{stored_path.relative_to(ROOT)}: current, nothing to certify")
                continue
            chain = provenance.get("certificates", [])
            base = chain[-1]["to"] if chain else provenance.get("commit", "unknown")
            if base == "unknown" or base.endswith("+dirty"):
                print(
                    f"{stored_path.relative_to(ROOT)}: made from uncommitted code ({base}); re-run it: "
                    f"make results SCALE={scale} CHAPTER={path.stem[:2]}"
                )
                ok = False
                continue
            print(
                f"{stored_path.relative_to(ROOT)}: comparing the code of {base} with {head} ...",
                flush=True,
            )
            found, compared = check.compare(path.stem, base, modes or list(check.MODES))
            if found or not compared:
                ok = False
                print("\n".join(f"    {line}" for line in found or ["no mode compared"]))
                print(
                    f"  not certified: re-run it: make results SCALE={scale} CHAPTER={path.stem[:2]}"
                )
                continue
            env = environment()
            certificate = {
                "from": base,
                "to": head,
                "date": env["date"],
                "machine": f"{env['cpu']} ({env['cpu_capability']})",
                "torch": env["torch"],
                "checks": compared,
                "modules": modules,
                **code_hashes(modules, scale, path),
            }
            provenance.setdefault("certificates", []).append(certificate)
            write_results(stored_path, stored)
            print(f"  bit-identical: certificate {base} -> {head} appended")
    return ok


# ----------------------------------------------------------------------------- cross-check

# Another machine's floating point, on this one: other vector instructions for torch's own kernels, oneDNN
# and MKL, and one thread instead of several. Each changes the rounding of sums and products.
ELSEWHERE = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def verdicts(nb: nbformat.NotebookNode, scale: str = SCALE) -> dict[str, str]:
    """``claim statement -> verdict at scale`` from the claims tables among a notebook's outputs."""
    found: dict[str, str] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = "".join(output.get("data", {}).get("text/markdown", ""))
            lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
            if not lines or "the paper claims" not in lines[0]:
                continue
            split = lambda line: [
                c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))
            ]
            header = split(lines[0])
            column = header.index("verdict")
            for line in lines[2:]:
                cells = split(line)
                verdict = re.search(rf"\b{scale}(?:, [a-z]+)*: \*\*(.+?)\*\*", cells[column])
                found[cells[0]] = verdict[1] if verdict else "?"
    return found


def crosscheck(only: list[str] | None = None, timeout: int = 3600) -> bool:
    """Re-execute chapters at cpu with another floating-point path (ELSEWHERE); compare the verdicts with the stored run."""
    import papermill

    out_dir = ROOT / "_build" / "crosscheck"
    out_dir.mkdir(parents=True, exist_ok=True)
    same = True
    for path in chapters(only):
        stored = verdicts(nbformat.read(path, as_version=4))
        print(f"{path.name}: re-executing at {SCALE} with {ELSEWHERE} ...", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            saved = {
                k: os.environ.get(k)
                for k in (*ELSEWHERE, "NNSTUDIES_CACHE", "NNSTUDIES_STATIC", "NNSTUDIES_SCALE")
            }
            os.environ.update(
                {**ELSEWHERE, "NNSTUDIES_CACHE": str(Path(tmp) / "models"), "NNSTUDIES_STATIC": "1"}
            )
            os.environ.pop("NNSTUDIES_SCALE", None)
            try:
                papermill.execute_notebook(
                    str(path),
                    str(out_dir / path.name),
                    cwd=str(NOTEBOOKS),
                    kernel_name="python3",
                    progress_bar=False,
                    execution_timeout=timeout,
                    parameters={},
                )
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        again = verdicts(nbformat.read(out_dir / path.name, as_version=4))
        print(f"  {len(stored)} claims, {time.perf_counter() - started:.0f} s")
        for claim in sorted(set(stored) | set(again)):
            flag = "same" if stored.get(claim) == again.get(claim) else "DIFFERENT"
            same &= flag == "same"
            print(
                f"  {flag:9} stored {stored.get(claim, '-'):>26} | elsewhere {again.get(claim, '-'):>26} | {claim}"
            )
    return same


# ----------------------------------------------------------------------------- student edition


def is_coding_solution(cell: nbformat.NotebookNode) -> bool:
    """A solution (tagged ``solution``) that answers with code: a code cell, or a folded answer
    holding a Python listing. The exercise above it is a coding exercise."""
    if "solution" not in cell.metadata.get("tags", []):
        return False
    return cell.cell_type == "code" or "```python" in cell.source


def student(out: Path | None = None) -> Path:
    """The student edition: every chapter without its solution cells (tagged ``solution``) and
    without outputs. Under each coding exercise, in place of its solution, an empty code cell
    (tagged ``answer``) waits for the student's code."""
    folder = out or ROOT / "_build" / "student"
    folder.mkdir(parents=True, exist_ok=True)
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        cells, removed, answers = [], 0, 0
        for cell in nb.cells:
            if "solution" not in cell.metadata.get("tags", []):
                cells.append(cell)
                continue
            removed += 1
            if is_coding_solution(cell):
                answers += 1
                cells.append(nbformat.v4.new_code_cell("", metadata={"tags": ["answer"]}))
        nb.cells = cells
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("nnstudies", None)
        nbformat.write(nb, folder / path.name)
        print(f"{path.name}: {removed} solution cells removed, {answers} empty cells for code")
    print(f"The student edition is in {folder}")
    return folder


# ----------------------------------------------------------------------------- build


def build(out: Path | None = None) -> Path:
    """Build the HTML book from the stored outputs; warnings are errors. Returns the index page."""
    mathjax()  # here rather than inside Sphinx, so that a failed fetch reads plainly
    args = [
        sys.executable,
        "-m",
        "jupyter_book",
        "build",
        str(ROOT),
        "--warningiserror",
        "--keep-going",
    ]
    if out is not None:
        args += ["--path-output", str(out)]
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    if jb:
        args[:3] = [jb]
    subprocess.run(args, check=True, cwd=ROOT)
    index = (out or ROOT) / "_build" / "html" / "index.html"
    if not index.exists():
        raise SystemExit(f"the build finished but {index} is missing")
    return index


# ----------------------------------------------------------------------------- PDF

#: The browsers the PDF is printed with, the first found.
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def pdf(out: Path | None = None) -> Path:
    """The whole book as one PDF, with no LaTeX: Jupyter Book's single-page HTML build of the stored
    outputs, printed by headless Chromium (what Jupyter Book's ``pdfhtml`` builder does, with the
    system's Chromium instead of one that Playwright downloads). Returns the PDF's path."""
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    if browser is None:
        raise SystemExit(
            "make pdf prints the book with Chromium: install Debian's chromium (apt-get install chromium)"
        )
    mathjax()
    root = out or ROOT
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    args = [jb, "build", str(ROOT), "--builder", "singlehtml", "--warningiserror", "--keep-going"]
    subprocess.run([*args, "--path-output", str(root)], check=True, cwd=ROOT)
    single = root / "_build" / "singlehtml"
    config = yaml.safe_load((ROOT / "_toc.yml").read_text())
    # The single page is written at the root document's path (book/intro.html), but its links to
    # images and styles are relative to the build's root: print a copy that sits there.
    page = single / "nnstudies.html"
    shutil.copyfile(single / f"{config['root']}.html", page)
    target = root / "_build" / "pdf" / "nnstudies.pdf"
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            "--virtual-time-budget=30000",  # time for MathJax to typeset, and the figures to load
            f"--print-to-pdf={target}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
    )
    if not target.is_file() or target.stat().st_size == 0:
        raise SystemExit(f"Chromium wrote no PDF at {target}")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync")
    ex = sub.add_parser("execute")
    ex.add_argument("--force", action="store_true", help="execute even unchanged chapters")
    ex.add_argument("only", nargs="*", help="chapter names (default: all)")
    bd = sub.add_parser("build")
    bd.add_argument("--out", type=Path, default=None)
    sub.add_parser("check")
    cc = sub.add_parser(
        "crosscheck", help="re-execute at cpu with another floating-point path; compare verdicts"
    )
    cc.add_argument("only", nargs="*")
    rt = sub.add_parser(
        "rules-then", help="record the rules of stored results made before runs recorded them"
    )
    rt.add_argument("only", nargs="*")
    st = sub.add_parser("student")
    st.add_argument("--out", type=Path, default=None)
    pd = sub.add_parser("pdf")
    pd.add_argument("--out", type=Path, default=None)
    rs = sub.add_parser("results")
    rs.add_argument("--scale", default="full", help="full or paper")
    rs.add_argument(
        "only", nargs="*", help="chapters, e.g. 00 or 00_getting_started (default: all)"
    )
    vf = sub.add_parser(
        "verify",
        help="certify stored results across a change of the numeric code, or say to re-run",
    )
    vf.add_argument("only", nargs="*", help="chapters (default: all)")
    vf.add_argument(
        "--modes", nargs="+", default=None, help="smoke and/or full-dry (default: both)"
    )
    args = parser.parse_args()
    if args.command == "verify":
        sys.exit(0 if verify(args.only, args.modes) else 1)
    if args.command == "sync":
        sync()
    elif args.command == "execute":
        execute(args.force, args.only)
    elif args.command == "crosscheck":
        sys.exit(0 if crosscheck(args.only) else 1)
    elif args.command == "student":
        student(args.out)
    elif args.command == "pdf":
        print(f"The book as a PDF: {pdf(args.out)}")
    elif args.command == "rules-then":
        from rules_then import rules_then  # tools/rules_then.py

        rules_then(args.only)
    elif args.command == "results":
        results(args.scale, args.only)
    elif args.command == "build":
        index = build(args.out)
        print(f"\nThe book is ready: {index}")
    else:
        bad = {p.name: problems(p) for p in chapters()}
        for name, found in bad.items():
            for text in found:
                print(f"{name}: {text}")
        sys.exit(1 if any(bad.values()) else 0)


if __name__ == "__main__":
    main()
