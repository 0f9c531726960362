"""The book: built from the stored outputs with warnings as errors, then opened in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import posixpath
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML book into a temporary folder (tools/book.py build: -W --keep-going)."""
    out = tmp_path_factory.mktemp("book")
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "book.py"), "build", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, (
        f"book build failed (warnings are errors):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    )
    return out / "_build" / "html"


def test_book_builds_without_warnings(built_book: Path) -> None:
    pages = {p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html")}
    for page in (
        "book/intro.html",
        "book/setup.html",
        "book/teaching.html",
        "book/references.html",
        "notebooks/00_getting_started.html",
    ):
        assert page in pages
    refs = (built_book / "book" / "references.html").read_text()
    assert "Benzing" in refs and "Optimal Kronecker" in refs


CITATION = re.compile(
    r'<a class="reference internal" href="(?:[^"]*/)?references\.html#([^"]+)"[^>]*>(.*?)</a>',
    re.DOTALL,
)


def test_citations_are_unambiguous(built_book: Path) -> None:
    """A citation's text names one work: two works never read the same ("Benzing, 2022" twice), and no
    citation is left with 'others' or without a year."""
    targets: dict[str, set[str]] = {}
    for page in built_book.rglob("*.html"):
        for target, html in CITATION.findall(page.read_text()):
            text = re.sub(r"<[^>]+>", "", html).strip()
            targets.setdefault(text, set()).add(target)
    assert targets, "no citations found in the built pages"
    shared = {text: sorted(ids) for text, ids in targets.items() if len(ids) > 1}
    assert not shared, f"one citation text for several works: {shared}"
    vague = sorted(text for text in targets if "others" in text or "n.d." in text)
    assert not vague, f"citations without their authors or year: {vague}"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def served_book(built_book: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


# What a stored output shows as a table: an HTML table, or a Markdown table (its |---| rule line).
MARKDOWN_RULE = re.compile(r"^\s*\|[\s:|-]*---[\s:|-]*$", re.MULTILINE)
REMOVED = {"remove-cell", "remove-output"}
# Visible text (code blocks excluded) must not show unrendered Markdown or TeX.
RAW = {
    # '---' turns into an em dash when Sphinx's smart quotes set a raw table as a paragraph
    "a Markdown table rule '|---'": re.compile(r"\|\s*:?(?:---|—|–)"),
    "'$$'": re.compile(r"\$\$"),
    "a stray '$'": re.compile(r"(?<!\$)\$(?!\$)"),
    "a TeX command": re.compile(r"\\[A-Za-z]{2,}|\\[()\[\]]"),
}
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.IGNORECASE)
VISIBLE_TEXT = """() => {
    const hide = document.createElement('style');
    hide.textContent = 'pre, code, kbd, samp { display: none !important; }';
    document.head.appendChild(hide);
    const text = document.body.innerText;
    hide.remove();
    return text;
}"""
IMAGES = "imgs => imgs.map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])"
MERROR_TEXT = "es => es.map(e => e.getAttribute('data-mjx-error') || e.textContent)"
UNTYPESET = "ms => ms.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent)"
MATHJAX_DONE = """() => !(window.MathJax && MathJax.startup && MathJax.startup.promise) ? 'not loaded'
    : Promise.race([MathJax.startup.promise.then(() => 'done'), new Promise(r => setTimeout(() => r('still typesetting after 20 s'), 20000))])"""


def expected_tables(notebook: Path) -> int:
    """How many tables the stored outputs of a notebook hold (in cells the book shows)."""
    nb = nbformat.read(notebook, as_version=4)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or REMOVED & set(cell.metadata.get("tags", [])):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "<table" in data.get("text/html", ""):  # myst-nb prefers HTML to Markdown
                count += data["text/html"].count("<table")
            else:
                count += len(MARKDOWN_RULE.findall(data.get("text/markdown", "")))
    return count


def _context(text: str, match: re.Match[str]) -> str:
    return repr(text[max(0, match.start() - 40) : match.end() + 40])


FINGERPRINT = """el => {
  const data = [];
  const walk = (item) => {
    if (item.datum) data.push(JSON.stringify(item.datum));
    (item.items || []).forEach(walk);
  };
  walk(el.nnstudiesView.scenegraph().root);
  return data.join("|");
}"""


def expected_explorers(notebook: Path) -> int:
    """How many explorers (precomputed Vega-Lite charts) a stored notebook's outputs hold."""
    nb = nbformat.read(notebook, as_version=4)
    return sum(
        "data-nnstudies-explorer" in "".join(o.get("data", {}).get("text/html", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def check_explorers(page: Any, name: str, expected: int) -> list[str]:
    """Every explorer on the page is drawn, and moving each of its controls changes what is drawn."""
    found = page.query_selector_all("div[data-nnstudies-explorer]")
    if len(found) < expected:
        return [
            f"{name}: {len(found)} explorers in the page, but the stored outputs hold {expected}"
        ]
    problems = []
    for index, explorer in enumerate(found):
        try:
            page.wait_for_function(
                "el => el.hasAttribute('data-nnstudies-ready') && el.nnstudiesView",
                arg=explorer,
                timeout=20_000,
            )
        except Exception:  # noqa: BLE001
            problems.append(f"{name}: explorer {index} was not drawn")
            continue
        controls = explorer.query_selector_all("input[type=range], select")
        if not controls:
            problems.append(f"{name}: explorer {index} has no controls")
        for control in controls:
            before = explorer.evaluate(FINGERPRINT)
            if control.evaluate("c => c.tagName") == "SELECT":
                options = control.evaluate("s => [...s.options].map(o => o.value)")
                current = control.evaluate("s => s.value")
                control.select_option(next(o for o in options if o != current))
            else:
                at_max = control.evaluate("i => Number(i.value) >= Number(i.max)")
                control.focus()
                control.press("ArrowLeft" if at_max else "ArrowRight")
            page.wait_for_timeout(300)
            if explorer.evaluate(FINGERPRINT) == before:
                label = control.evaluate("c => c.name")
                problems.append(
                    f"{name}: explorer {index}: moving {label} did not change what is drawn"
                )
    return problems


# A reader's laptop: the width at which every code block and claims table must read without sideways scrolling.
WINDOW = {"width": 1300, "height": 2000}
MAX_CLAIM_LINES = 4  # lines of text a claims-table row may take
# Folded solutions (sphinx-togglebutton) are laid out too, as a reader who opens them sees them; FOLD folds
# them again.
UNFOLD = """() => [...document.querySelectorAll('.toggle-hidden')].map(e => { e.classList.remove('toggle-hidden'); return e; })"""
FOLD = "es => es.forEach(e => e.classList.add('toggle-hidden'))"
# Every code block (input, output, listing) whose content is wider than its box: it scrolls sideways.
CODE_SCROLL = """() => [...document.querySelectorAll('pre')]
    .filter(p => p.getClientRects().length > 0 && p.scrollWidth > p.clientWidth + 1)
    .map(p => [p.scrollWidth, p.clientWidth, p.textContent.trim().split('\\n')[0].slice(0, 70)])"""
# Each row of a claims table (an output table with a 'verdict' column): its height in lines of its text.
CLAIM_ROWS = """() => [...document.querySelectorAll('.cell_output table')]
    .filter(t => [...t.querySelectorAll('th')].some(th => /verdict/i.test(th.textContent)))
    .flatMap((t, ti) => [...t.querySelectorAll('tbody tr')].map(tr => {
        const lines = [...tr.children].map(td => {
            const s = getComputedStyle(td);
            const line = s.lineHeight === 'normal' ? 1.2 * parseFloat(s.fontSize) : parseFloat(s.lineHeight);
            const box = td.getBoundingClientRect().height - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)
                - parseFloat(s.borderTopWidth) - parseFloat(s.borderBottomWidth);
            return box / line;
        });
        return [ti, Math.max(...lines), tr.innerText.replace(/\\s+/g, ' ').slice(0, 70)];
    }))"""
# A tqdm bar's line: "desc: 100%|██████████| 640/640 [00:01<00:00, ...]".
TQDM = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")


def layout_problems(page: Any, name: str) -> list[str]:
    """At the reader's window: no code block scrolls sideways, no claims-table row is taller than
    MAX_CLAIM_LINES lines, and no progress bar was stored in the page."""
    folded = page.evaluate_handle(UNFOLD)
    problems = [
        f"{name}: code block scrolls sideways ({width} px of content in {box} px): {first!r}"
        for width, box, first in page.evaluate(CODE_SCROLL)
    ]
    page.evaluate(FOLD, folded)
    problems += [
        f"{name}: claims table {table}: a row {lines:.1f} lines tall (at most {MAX_CLAIM_LINES}): {text!r}"
        for table, lines, text in page.evaluate(CLAIM_ROWS)
        if lines > MAX_CLAIM_LINES + 0.25
    ]
    bars = TQDM.findall(page.evaluate("() => document.body.innerText"))
    if bars:
        problems.append(f"{name}: {len(bars)} progress-bar lines in the page, e.g. {bars[0]!r}")
    return problems


def test_pages_in_headless_chromium(built_book: Path, served_book: str) -> None:
    """What a reader sees, offline: every request that leaves the local server is blocked and is a failure.

    Every page loads without console errors, shows no raw Markdown or TeX, typesets its math with MathJax
    (no errors), and loads its images; chapter pages show their figures, every table their stored outputs
    hold as a <table>, a Colab badge served by the book itself, and a launch link to Colab.
    """
    chromium = _chromium()
    if chromium is None:
        pytest.skip(
            "no Chromium found: install Debian's 'chromium' package (apt-get install chromium) to run the browser test"
        )
    from playwright.sync_api import sync_playwright

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    slug = config["repository"]["url"].removeprefix("https://github.com/")
    branch = config["repository"].get("branch", "main")
    pages = sorted(
        p.relative_to(built_book).as_posix()
        for p in built_book.rglob("*.html")
        if "_static" not in p.parts
    )
    chapters = [p for p in pages if p.startswith("notebooks/")]
    assert chapters, "no chapter pages were built"
    tables = {
        f"notebooks/{nb.stem}.html": expected_tables(nb)
        for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    }
    explorers = {
        f"notebooks/{nb.stem}.html": expected_explorers(nb)
        for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    }
    assert sum(tables.values()) > 0, (
        "no stored output holds a table: the table check would check nothing"
    )
    problems: list[str] = []
    current = [""]
    shots = os.environ.get("NNSTUDIES_SCREENSHOTS")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport=WINDOW)

        def block(route):  # type: ignore[no-untyped-def]
            # The book must work offline: a request to any other host is a failure, not something to stub.
            problems.append(f"{current[0]}: request to another host blocked: {route.request.url}")
            route.abort("blockedbyclient")

        def elsewhere(url: str) -> bool:
            return urlparse(url).scheme in ("http", "https", "ws", "wss") and not url.startswith(
                served_book
            )

        context.route(elsewhere, block)
        page = context.new_page()
        errors: list[str] = []

        def console(msg):  # type: ignore[no-untyped-def]
            if msg.type == "error" or (msg.type == "warning" and "mathjax" in msg.text.lower()):
                errors.append(f"console {msg.type}: {msg.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        for name in pages:
            current[0] = name
            errors.clear()
            redirect = REDIRECT.search((built_book / name).read_text())
            if redirect:  # the root index.html only sends the reader on
                if (
                    posixpath.normpath(posixpath.join(posixpath.dirname(name), redirect[1]))
                    not in pages
                ):
                    problems.append(
                        f"{name}: redirects to a page that was not built: {redirect[1]}"
                    )
                continue
            response = page.goto(served_book + name, wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{name}: HTTP {response.status if response else 'no response'}")
            if page.query_selector(".math"):
                state = page.evaluate(MATHJAX_DONE)
                if state != "done":
                    problems.append(f"{name}: MathJax {state}")
                else:
                    merrors = page.eval_on_selector_all("mjx-merror", MERROR_TEXT)
                    problems += [f"{name}: MathJax error: {e}" for e in merrors]
                    raw = page.eval_on_selector_all(".math", UNTYPESET)
                    problems += [f"{name}: math not typeset: {m[:80]!r}" for m in raw]
            elif name in chapters:
                problems.append(f"{name}: no math found")
            page.wait_for_timeout(200)
            problems += [f"{name}: {e}" for e in errors]
            text = page.evaluate(VISIBLE_TEXT)
            for what, pattern in RAW.items():
                hits = list(pattern.finditer(text))
                problems += [
                    f"{name}: visible text shows {what} ({len(hits)} in all): {_context(text, m)}"
                    for m in hits[:3]
                ]
            images = page.eval_on_selector_all("img", IMAGES)
            problems += [
                f"{name}: image did not load: {src}"
                for src, complete, width in images
                if not (complete and width > 0)
            ]
            if name in chapters:
                sizes = page.eval_on_selector_all(
                    ".cell_output img",
                    "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])",
                )
                if not sizes:
                    problems.append(f"{name}: no figures in the cell outputs")
                problems += [
                    f"{name}: figure {i} did not load ({s})"
                    for i, s in enumerate(sizes)
                    if not (s[0] and s[1] > 0 and s[2] > 0)
                ]
                found = len(page.query_selector_all(".cell_output table"))
                if found < tables.get(name, 0):
                    problems.append(
                        f"{name}: {found} tables in the cell outputs, but the stored outputs hold {tables[name]}"
                    )
                badges = [src for src, _, _ in images if "colab-badge" in src]
                if not badges:
                    problems.append(f"{name}: no Colab badge")
                away = [src for src in badges if not src.startswith(served_book)]
                problems += [
                    f"{name}: the Colab badge is not served by the book: {src}" for src in away
                ]
                links = page.eval_on_selector_all(
                    "a[href*='colab.research.google.com/github']", "as => as.map(a => a.href)"
                )
                want = f"https://colab.research.google.com/github/{slug}/blob/{branch}/{name.removesuffix('.html')}.ipynb"
                if want not in links:
                    problems.append(f"{name}: no launch link to {want} (found {links})")
            if name in chapters:
                problems += check_explorers(page, name, explorers.get(name, 0))
            problems += layout_problems(page, name)
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(
                    path=str(Path(shots) / (name.replace("/", "_") + ".png")), full_page=True
                )
        browser.close()
    print(
        f"checked {len(pages)} pages offline; tables expected per chapter: {tables}; explorers: {explorers}"
    )
    assert sum(explorers.values()) > 0, (
        "no stored output holds an explorer: the explorer check would check nothing"
    )
    assert not problems, "\n".join(problems)
