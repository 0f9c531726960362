"""The book: built from the stored outputs with warnings as errors, then opened in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = ROOT / "_build" / "vendor" / "mathjax"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML book into a temporary folder (tools/book.py build: -W --keep-going)."""
    out = tmp_path_factory.mktemp("book")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "book.py"), "build", "--out", str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"book build failed (warnings are errors):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return out / "_build" / "html"


def test_book_builds_without_warnings(built_book: Path) -> None:
    pages = {p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html")}
    for page in ("book/intro.html", "book/setup.html", "book/teaching.html", "book/references.html", "notebooks/00_getting_started.html"):
        assert page in pages
    refs = (built_book / "book" / "references.html").read_text()
    assert "Benzing" in refs and "Optimal Kronecker" in refs


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


def test_pages_in_headless_chromium(built_book: Path, served_book: str) -> None:
    """Every page loads without console errors; chapter pages show their figures and launch to Colab."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium found: install Debian's 'chromium' package (apt-get install chromium) to run the browser test")
    from playwright.sync_api import sync_playwright

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    slug = config["repository"]["url"].removeprefix("https://github.com/")
    branch = config["repository"].get("branch", "main")
    pages = sorted(p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html") if "_static" not in p.parts)
    chapters = [p for p in pages if p.startswith("notebooks/")]
    assert chapters, "no chapter pages were built"
    stubbed: set[str] = set()
    problems: list[str] = []
    shots = os.environ.get("NNSTUDIES_SCREENSHOTS")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context = browser.new_context()

        def offline(route):  # type: ignore[no-untyped-def]
            # The tests may run offline: MathJax comes from a local copy when there is one
            # (`make test` fetches it with npm); other CDN requests (badges, fonts) get an empty
            # body, so that only errors of the book's own pages remain.
            url = urlparse(route.request.url)
            if MATHJAX.is_dir() and url.path.startswith("/npm/mathjax@3/es5/"):
                local = MATHJAX / "es5" / url.path.removeprefix("/npm/mathjax@3/es5/")
                if local.is_file():
                    return route.fulfill(path=str(local))
            stubbed.add(url.netloc)
            route.fulfill(status=200, body="")

        context.route(lambda url: not url.startswith(served_book), offline)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        for name in pages:
            errors.clear()
            response = page.goto(served_book + name, wait_until="load")
            if response is None or response.status != 200:
                problems.append(f"{name}: HTTP {response.status if response else 'no response'}")
            page.wait_for_timeout(200)
            problems += [f"{name}: {e}" for e in errors]
            if name in chapters:
                sizes = page.eval_on_selector_all(
                    ".cell_output img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
                )
                if not sizes:
                    problems.append(f"{name}: no figures in the cell outputs")
                problems += [f"{name}: figure {i} did not load ({s})" for i, s in enumerate(sizes) if not (s[0] and s[1] > 0 and s[2] > 0)]
                links = page.eval_on_selector_all("a[href*='colab.research.google.com/github']", "as => as.map(a => a.href)")
                want = f"https://colab.research.google.com/github/{slug}/blob/{branch}/{name.removesuffix('.html')}.ipynb"
                if want not in links:
                    problems.append(f"{name}: no launch link to {want} (found {links})")
                if not page.query_selector(".math"):
                    problems.append(f"{name}: no math found")
                elif MATHJAX.is_dir():
                    try:
                        page.wait_for_selector("mjx-container", timeout=10_000)
                    except Exception:  # noqa: BLE001
                        problems.append(f"{name}: MathJax did not typeset the math")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(shots) / (name.replace("/", "_") + ".png")), full_page=True)
        browser.close()
    math = "typeset by MathJax" if MATHJAX.is_dir() else "markup only (no local MathJax)"
    print(f"checked {len(pages)} pages; math {math}; external hosts answered offline: {sorted(stubbed)}")
    assert not problems, "\n".join(problems)
