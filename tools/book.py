"""Maintainer tooling behind `make book`: keep notebooks in step with _config.yml, execute them, build the book.

    python tools/book.py sync              # badge and install line from _config.yml's repository
    python tools/book.py execute [--force] # run changed chapters at the cpu scale, store outputs
    python tools/book.py build [--out DIR] # HTML book from the stored outputs, warnings as errors
    python tools/book.py check             # exit 1 when a stored notebook is stale or out of sync

A chapter is re-executed only when its code cells or the library changed since
its stored outputs were made: the hash of both is kept in the notebook's metadata
(``metadata.nnstudies.source_hash``), so a fresh clone knows its stored outputs
are current without running anything.
"""

from __future__ import annotations

import argparse
import hashlib
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
LIBRARY = ROOT / "lib" / "nnstudies"
SCALE = "cpu"


def repository() -> tuple[str, str]:
    """(url, branch) of the book's repository, from _config.yml: the one place it is kept."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def chapters() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def source_hash(nb: nbformat.NotebookNode, scale: str = SCALE) -> str:
    """Hash of what decides a notebook's outputs: its code cells, the library's source, the scale."""
    digest = hashlib.sha256(scale.encode())
    for cell in nb.cells:
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", []):
            digest.update(b"\0cell\0" + cell.source.encode())
    for path in sorted(LIBRARY.rglob("*.py")):
        digest.update(b"\0file\0" + path.relative_to(LIBRARY).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


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
            cell.source = re.sub(r"https://colab\.research\.google\.com/github/[^)\s]+", colab, cell.source)
        elif cell.cell_type == "code":
            cell.source = re.sub(r'"nnstudies @ git\+[^"]+"', f'"nnstudies @ git+{url}@{branch}"', cell.source)
    return nb


def problems(path: Path) -> list[str]:
    """What is wrong with a stored chapter: out of sync with _config.yml, stale, unexecuted or failed."""
    nb = nbformat.read(path, as_version=4)
    found = []
    if nbformat.writes(synced(nbformat.read(path, as_version=4), path.name)) != nbformat.writes(nb):
        found.append("badge or install line differs from _config.yml's repository (run: python tools/book.py sync)")
    if stored_hash(nb) != source_hash(nb):
        found.append("stored outputs are stale: code or library changed since the last execution (run: make book)")
    if any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs):
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
    os.environ.pop("NNSTUDIES_SCALE", None)  # the stored outputs are always the notebook's own default, cpu
    for path in chapters():
        if only and path.name not in only and path.stem not in only:
            continue
        nb = nbformat.read(path, as_version=4)
        digest = source_hash(nb)
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
                    str(path), str(out), cwd=str(NOTEBOOKS), kernel_name="python3",
                    progress_bar=False, execution_timeout=timeout, parameters={},
                )
            except Exception:
                kept = ROOT / "_build" / "failed" / path.name
                kept.parent.mkdir(parents=True, exist_ok=True)
                if out.exists():
                    shutil.copy(out, kept)
                print(f"{path.name}: FAILED; the stored notebook is unchanged, the failed run is in {kept}", file=sys.stderr)
                raise
            executed = nbformat.read(out, as_version=4)
        _clean(executed)
        executed.metadata["nnstudies"] = {"source_hash": digest, "scale": SCALE}
        nbformat.write(executed, path)
        print(f"{path.name}: done in {time.perf_counter() - started:.0f} s, outputs stored")


# ----------------------------------------------------------------------------- build


def build(out: Path | None = None) -> Path:
    """Build the HTML book from the stored outputs; warnings are errors. Returns the index page."""
    args = [sys.executable, "-m", "jupyter_book", "build", str(ROOT), "--warningiserror", "--keep-going"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync")
    ex = sub.add_parser("execute")
    ex.add_argument("--force", action="store_true", help="execute even unchanged chapters")
    ex.add_argument("only", nargs="*", help="chapter names (default: all)")
    bd = sub.add_parser("build")
    bd.add_argument("--out", type=Path, default=None)
    sub.add_parser("check")
    args = parser.parse_args()
    if args.command == "sync":
        sync()
    elif args.command == "execute":
        execute(args.force, args.only)
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
