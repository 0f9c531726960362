"""The book's Sphinx extension (_config.yml: sphinx.local_extensions), for what only a hook inside the
build can do: serve MathJax and the Colab badge from the book itself, label citations author-year,
and say under each chapter's title when and at which commit its outputs were made.

It imports nothing of nnstudies (and so no torch): building the book needs only the stored notebooks.
``tools/book.py`` uses its MathJax fetch too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The badge image of every chapter's first cell. Colab and GitHub show it from Colab's site; the book
# shows its own drawing in its place (BADGE_COPY, see `setup`), so that a page makes no request elsewhere.
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_COPY = "/book/_static/colab-badge.svg"  # from the book's root


# MathJax is served by the book itself (no CDN: the book reads offline). The npm package is fetched once,
# pinned and checked against the registry's integrity hash, into _build/vendor; every build copies the
# parts a page loads (tex-chtml.js, its fonts, the TeX extensions it autoloads) into _static/mathjax.
MATHJAX_VERSION = "3.2.2"
MATHJAX_INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
MATHJAX_DIR = ROOT / "_build" / "vendor" / f"mathjax-{MATHJAX_VERSION}"
MATHJAX_PARTS = ["tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions"]  # under es5/


def mathjax() -> Path:
    """The unpacked MathJax package (its es5 folder), fetched with npm on first use."""
    es5 = MATHJAX_DIR / "es5"
    if (es5 / "tex-chtml.js").is_file():
        return es5
    npm = shutil.which("npm")
    help_ = (
        f"The book serves MathJax {MATHJAX_VERSION} itself and fetches it once with npm. Install npm "
        f"(Debian: apt-get install npm), or unpack the npm package mathjax@{MATHJAX_VERSION} into {MATHJAX_DIR}."
    )
    if npm is None:
        raise SystemExit(f"npm not found. {help_}")
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(Path(tmp).glob("mathjax-*.tgz"))
        if run.returncode != 0 or len(tarballs) != 1:
            raise SystemExit(
                f"npm pack mathjax@{MATHJAX_VERSION} failed: {run.stderr.strip()[-2000:]}\n{help_}"
            )
        digest = (
            "sha512-" + base64.b64encode(hashlib.sha512(tarballs[0].read_bytes()).digest()).decode()
        )
        if digest != MATHJAX_INTEGRITY:
            raise SystemExit(
                f"mathjax@{MATHJAX_VERSION} from npm has integrity {digest}, expected {MATHJAX_INTEGRITY}"
            )
        with tarfile.open(tarballs[0]) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python < 3.10.12: the tarball's integrity was checked above
                tar.extractall(tmp)
        MATHJAX_DIR.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(MATHJAX_DIR, ignore_errors=True)
        shutil.move(Path(tmp) / "package", MATHJAX_DIR)
    print(f"fetched MathJax {MATHJAX_VERSION} into {MATHJAX_DIR.relative_to(ROOT)}")
    return es5


# ----------------------------------------------------------------------------- when the outputs were made


def outputs_made(notebook: Path) -> tuple[str, str, str] | None:
    """(scale, commit, date) of a chapter's stored outputs: the scale they were made at, and the
    commit that stored them, with its date: the first commit whose copy of the notebook carries
    the hash its outputs were made from (``metadata.nnstudies.source_hash``, written by
    ``tools/book.py execute``). Commit and date are "" when no commit holds them yet. None for a
    notebook without that hash, or outside a git checkout (a shallow clone names its only commit:
    the book's workflow fetches the whole history)."""
    meta = json.loads(notebook.read_text()).get("metadata", {}).get("nnstudies", {})
    made_from = meta.get("source_hash")
    if not made_from:
        return None
    log = subprocess.run(
        ["git", "log", "--format=%h %cs", "-S", made_from, "--", notebook.name],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if log.returncode != 0:
        return None
    commits = [line.split() for line in log.stdout.splitlines() if line.strip()]
    commit, date = commits[-1] if commits else ("", "")  # the oldest: the one that stored them
    return meta.get("scale", "cpu"), commit, date


# ----------------------------------------------------------------------------- Sphinx


def _author_year_labels() -> type:
    """A pybtex label style: "Martens and Grosse, 2015", "Benzing et al., 2022", and a, b, ... where two
    entries would read the same ("Benzing, 2022a" and "Benzing, 2022b"); "n.d." for an entry without a year."""
    from collections.abc import Iterator

    from pybtex.database import Entry, Person
    from pybtex.richtext import Text
    from pybtex.style.labels import BaseLabelStyle

    def surname(person: Person) -> str:
        return str(Text.from_latex(" ".join(person.prelast_names + person.last_names)))

    def label(entry: Entry) -> tuple[str, str]:
        """The label and the separator before a letter that tells it apart ("2022a", "n.d.-a")."""
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [surname(p) for p in people]
        if not names:
            raise ValueError(f"{entry.key}: a bibliography entry needs an author or an editor")
        who = (
            f"{names[0]} et al." if len(names) > 2 or names[-1] == "others" else " and ".join(names)
        )
        year = entry.fields.get("year")
        return (f"{who}, {year}", "") if year else (f"{who}, n.d.", "-")

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries: list[Entry]) -> Iterator[str]:
            labels = [label(entry) for entry in sorted_entries]
            total = {text: [t for t, _ in labels].count(text) for text, _ in labels}
            seen: dict[str, int] = {}
            for text, sep in labels:
                seen[text] = seen.get(text, 0) + 1
                yield (
                    text
                    if total[text] == 1
                    else text + sep + "abcdefghijklmnopqrstuvwxyz"[seen[text] - 1]
                )

    return AuthorYearLabels


def setup(app):  # type: ignore[no-untyped-def]
    """Sphinx extension: MathJax and the Colab badge served by the book; citations labelled author-year."""
    from docutils import nodes
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style

    class AuthorYearStyle(Style):  # the bibliography style of _config.yml's bibtex_default_style
        default_label_style = "nnstudies-author-year"
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "nnstudies-author-year", _author_year_labels())
    register_plugin("pybtex.style.formatting", "nnstudies-author-year", AuthorYearStyle)

    def local_badge(app, doctree) -> None:  # type: ignore[no-untyped-def]
        for image in doctree.findall(nodes.image):
            if image["uri"] == COLAB_BADGE:
                image["uri"] = BADGE_COPY  # Sphinx copies it into _images like any local image

    def copy_mathjax(app, exception) -> None:  # type: ignore[no-untyped-def]
        if exception is not None or app.builder.format != "html":
            return
        es5, target = mathjax(), Path(app.outdir) / "_static" / "mathjax"
        for part in MATHJAX_PARTS:
            if (es5 / part).is_dir():
                shutil.copytree(es5 / part, target / part, dirs_exist_ok=True)
            else:
                (target / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(es5 / part, target / part)
        license_ = MATHJAX_DIR / "LICENSE"
        if license_.is_file():
            shutil.copy2(license_, target / "LICENSE")

    def made_line(app, doctree) -> None:  # type: ignore[no-untyped-def]
        """Under a chapter's title, when and at which commit its outputs were made."""
        source = Path(app.env.doc2path(app.env.docname))
        made = outputs_made(source) if source.suffix == ".ipynb" else None
        sections = list(doctree.findall(nodes.section))
        if made is None or not sections:
            return
        scale, commit, date = made
        stored = f" and stored in commit {commit} on {date}." if commit else ", not committed yet."
        line = nodes.paragraph(classes=["nnstudies-made"])
        line += nodes.emphasis(
            "",
            "",
            nodes.Text("This page's outputs were made at the "),
            nodes.literal("", scale),
            nodes.Text(" scale" + stored),
        )
        sections[0].insert(1, line)

    app.connect("doctree-read", made_line)
    app.connect("builder-inited", lambda app: mathjax())
    app.connect(
        "doctree-read", local_badge, priority=400
    )  # before Sphinx collects the images (500)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
