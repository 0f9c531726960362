"""The Colab route: a chapter's first cell installs the book's library into a Python that already has
torch, as on Colab, and the chapter then runs and shows the stored ``full`` results.

The repository as it is now (the working tree, committed to a throwaway repository on branch ``main``)
stands in for the book's GitHub repository: the first cell's install line is run with its address
swapped for that ``git+file://`` one. The fresh virtual environment sees this environment's torch,
installed outside it as Colab's is, and gets ipykernel and a recent pip from the package index (the
local one here); then the chapter runs in it with papermill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "00_getting_started.ipynb"
INSTALL_LINE = re.compile(r'"nnstudies @ git\+([^"@]+)@([^"]+)"')
KERNEL = "nnstudies-colab-simulation"


def repository() -> tuple[str, str]:
    """(url, branch) from _config.yml: where every chapter's first cell installs from."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return config["url"].rstrip("/"), config.get("branch", "main")


def first_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_every_first_cell_installs_from_the_one_address() -> None:
    url, branch = repository()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        found = INSTALL_LINE.findall(first_cell(path))
        assert found == [(url, branch)], f"{path.name}: the install line is not {url}@{branch}"


def test_the_address_is_written_nowhere_else() -> None:
    """Text that names the repository names the address of _config.yml (the one place it is kept)."""
    url, _ = repository()
    pattern = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
    for name in ("README.md", "pyproject.toml", "book/setup.md", "book/intro.md"):
        text = (ROOT / name).read_text()
        assert "<repository-url>" not in text, f"{name} has a placeholder instead of the address"
        others = {m.rstrip(".") for m in pattern.findall(text)} - {url}
        assert not others, f"{name} names another repository address: {sorted(others)}"


def _run(args: list[str], cwd: Path | None = None, **env: str) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


def _snapshot(tree: Path, into: Path) -> None:
    """Commit the working tree as it is (tracked and new files, without ignored ones) to a new
    repository ``into`` on branch main. The checkout's own git state is not touched."""
    files = _run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=tree).split("\0")
    into.mkdir(parents=True)
    for name in filter(None, files):
        source = tree / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run([*git, "init", "--quiet", "--initial-branch=main"], cwd=into)
    _run([*git, "add", "--all"], cwd=into)
    _run([*git, "commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", "snapshot"], cwd=into)


def _preinstall_torch(venv: Path, shelf: Path) -> None:
    """Put this environment's torch on the fresh environment's path, outside its site-packages, as
    Colab's torch is: links to the package and its metadata, named by a .pth file. Whatever else
    torch needs, pip installs into the fresh environment with the library."""
    import importlib.metadata

    torch = importlib.metadata.distribution("torch")
    site = Path(str(torch.locate_file("")))
    shelf.mkdir()
    names = (torch.read_text("top_level.txt") or "torch").split()
    for name in [*names, f"torch-{torch.version}.dist-info"]:
        (shelf / name).symlink_to(site / name)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "preinstalled-torch.pth").write_text(f"{shelf}\n")


def _kernel(venv: Path, jupyter: Path) -> None:
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Colab simulation", "language": "python"})
    )


TORCH = "import json, torch; print(json.dumps([torch.__version__, torch.__file__]))"
CHECK = """
import json, sys, torch, nnstudies
from importlib.metadata import version
from nnstudies.results import load_results, results_dir
stored = {}
for chapter in sys.argv[1:]:
    found = load_results(chapter, "full")
    stored[chapter] = None if found is None else found.values
print(json.dumps({"torch": torch.__version__, "torch_file": torch.__file__,
                  "nnstudies": nnstudies.__version__, "nnstudies_dist": version("nnstudies"),
                  "nnstudies_file": nnstudies.__file__, "results_dir": str(results_dir()),
                  "python": sys.version.split()[0], "stored": stored}))
"""


@pytest.mark.colab
def test_the_first_cell_installs_the_library_as_on_colab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to install from a git+file:// address")
    import torch

    started = time.perf_counter()
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "NNSTUDIES_RESULTS_STORE", "NNSTUDIES_RESULTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("NNSTUDIES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")

    repo, venv = tmp_path / "repository", tmp_path / "venv"
    _snapshot(ROOT, repo)
    # A fresh Python with a Jupyter kernel and a recent pip, and with torch installed outside its own
    # site-packages, as Colab has them.
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip", "ipykernel"])
    _preinstall_torch(venv, tmp_path / "preinstalled")
    before = json.loads(_run([python, "-c", TORCH]))
    assert before[0] == torch.__version__
    _kernel(venv, tmp_path / "jupyter")
    setup = time.perf_counter() - started

    # Without the library and with nowhere to install it from, the first cell says so plainly.
    cell = first_cell(CHAPTER)
    nowhere = INSTALL_LINE.sub(f'"nnstudies @ git+file://{tmp_path}/absent@main"', cell)
    offline = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(nowhere)])
    with pytest.raises(CellExecutionError, match="pip could not install it"):
        NotebookClient(offline, kernel_name=KERNEL, timeout=300).execute()

    # The chapter, its first cell installing from the repository as it is now.
    nb = nbformat.read(CHAPTER, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source = INSTALL_LINE.sub(f'"nnstudies @ git+file://{repo}@main"', first.source)
    nbformat.write(nb, tmp_path / CHAPTER.name)
    started_chapter = time.perf_counter()
    papermill.execute_notebook(
        str(tmp_path / CHAPTER.name),
        str(tmp_path / "executed.ipynb"),
        parameters={"SCALE": "smoke"},
        cwd=str(tmp_path),
        kernel_name=KERNEL,
        progress_bar=False,
        execution_timeout=600,
    )  # raises PapermillExecutionError on any cell error
    chapter = time.perf_counter() - started_chapter

    chapters = sorted(p.name for p in (ROOT / "results").iterdir() if p.is_dir())
    after = json.loads(_run([python, "-c", CHECK, *chapters], cwd=tmp_path))
    assert [after["torch"], after["torch_file"]] == before, "installing nnstudies replaced torch"
    assert not list(venv.glob("lib/python*/site-packages/torch*")), "pip installed a second torch"
    assert str(venv) in after["nnstudies_file"], "the chapter did not use the installed copy"
    assert str(venv) in after["results_dir"], "the stored results were not read from the package"
    assert after["nnstudies"] == after["nnstudies_dist"], "two version numbers"
    for name in chapters:
        path = ROOT / "results" / name / "full.json"
        expected = json.loads(path.read_text())["values"]
        assert after["stored"][name] == expected, f"the installed copy lacks {path}"
    print(
        f"\nColab simulation: Python {after['python']}, torch {after['torch']} kept, nnstudies "
        f"{after['nnstudies']}; a fresh environment with torch {setup:.0f} s, chapter 0 at smoke "
        f"with its install {chapter:.0f} s, all {time.perf_counter() - started:.0f} s"
    )


def test_every_chapter_takes_keep_cache_on_drive() -> None:
    """Each chapter's parameters cell sets KEEP_CACHE_ON_DRIVE, and a later cell hands it to the
    library's one helper (nnstudies.colab.keep_on_drive), not to code of its own."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        parameters = next(c for c in code if "parameters" in c.metadata.get("tags", []))
        assert re.search(r"^KEEP_CACHE_ON_DRIVE = False\b", parameters.source, re.MULTILINE), (
            path.name
        )
        calls = [c for c in code if "keep_on_drive(KEEP_CACHE_ON_DRIVE)" in c.source]
        assert calls, (
            f"{path.name} never passes KEEP_CACHE_ON_DRIVE to nnstudies.colab.keep_on_drive"
        )
        assert code.index(calls[0]) > code.index(parameters)
        assert not any("use_google_drive" in c.source for c in code), path.name


def test_keep_on_drive_keeps_models_and_data_on_the_drive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nnstudies import colab
    from nnstudies.cache import CACHE_ENV, cache_dir
    from nnstudies.data import DATA_ENV, data_dir

    drive = tmp_path / "MyDrive" / "nnstudies-cache"
    mounted: list[str] = []

    def fake_mount(folder: str) -> Path:  # what nnstudies.cache.use_google_drive does on Colab
        mounted.append(folder)
        drive.mkdir(parents=True)
        import os

        os.environ[CACHE_ENV] = str(drive)
        return drive

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "local-models"))
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "local-data"))
    monkeypatch.setattr(colab, "use_google_drive", fake_mount)
    assert colab.keep_on_drive(False) is None and mounted == []
    assert data_dir() == tmp_path / "local-data"

    assert colab.keep_on_drive(True) == drive and mounted == ["nnstudies-cache"]
    assert cache_dir() == drive and data_dir() == drive / "data"
    from nnstudies.data import mnist1d

    mnist1d(num_samples=100)  # a data set lands on the drive
    assert list((drive / "data").glob("mnist1d-*.npz"))


def test_keep_on_drive_outside_colab_says_so() -> None:
    from nnstudies import colab

    with pytest.raises(RuntimeError, match="Colab"):
        colab.keep_on_drive(True)
