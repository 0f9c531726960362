"""The book's explorers: the precomputed grid, its checks, and the chart moving in headless Chromium with no network."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import pytest

from nnstudies import Choice, LogSlider, Slider, explore
from nnstudies.explorer import MAX_GRID_POINTS, StaticExplorer, grid_points, static_explorer

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

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
BUNDLE_CACHE = (
    ROOT / "_build" / "vega-bundle-cache"
)  # bundling takes seconds; keyed by versions, so safe to keep


def toy_table(rate: float, kind: str) -> list[dict[str, Any]]:
    """A line per grid point: y = rate * x, shifted up or down."""
    return [{"x": x, "y": rate * x + (1.0 if kind == "up" else -1.0)} for x in range(4)]


def toy_figure(rate: float, kind: str) -> Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    rows = toy_table(rate, kind)
    ax.plot([r["x"] for r in rows], [r["y"] for r in rows])
    return fig


def toy_controls() -> dict[str, Any]:
    return {
        "rate": LogSlider(0.1, 0.01, 10.0, description="rate", grid=(0.01, 0.1, 1.0, 10.0)),
        "kind": Choice("up", ["up", "down"]),
    }


def toy_chart(rows: Any) -> Any:
    return rows.mark_line().encode(x="x:Q", y="y:Q")


def toy_explorer() -> StaticExplorer:
    return static_explorer(toy_figure, toy_table, toy_chart, toy_controls())


# ----------------------------------------------------------------------------- the grid


def test_grid_rows_equal_fresh_calls_of_the_live_function(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float, str]] = []

    def figure(rate: float, kind: str) -> Figure:
        calls.append(("figure", rate, kind))
        return toy_figure(rate, kind)

    def table(rate: float, kind: str) -> list[dict[str, Any]]:
        calls.append(("table", rate, kind))
        return toy_table(rate, kind)

    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    explore(figure, interactive=False, table=table, chart=toy_chart, **toy_controls())
    (out,) = shown
    assert isinstance(out, StaticExplorer)
    # Deterministic order: the figure at the starting values, then the grid with the first control slowest.
    assert calls == [("figure", 0.1, "up")] + [
        ("table", r, k) for r in (0.01, 0.1, 1.0, 10.0) for k in ("up", "down")
    ]
    rows = out.spec["datasets"]["nnstudies_rows"]
    assert len(rows) == 8 * 4
    for rate, kind in [(0.01, "down"), (1.0, "up")]:
        stored = [r for r in rows if r["rate"] == rate and r["kind"] == kind]
        assert stored == [{"rate": rate, "kind": kind, **row} for row in toy_table(rate, kind)]
    assert plt.get_fignums() == [], (
        "the figure drawn for the PNG must be closed, not shown a second time"
    )


def test_output_bundle_has_png_fallback_and_no_cdn() -> None:
    out = toy_explorer()
    bundle = out._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    html = bundle["text/html"]
    assert (
        'data-nnstudies-explorer="1"' in html
        and f'src="data:image/png;base64,{bundle["image/png"]}"' in html
    )
    assert "<script src" not in html and "cdn" not in html.lower() and "jsdelivr" not in html
    assert out.png.startswith(b"\x89PNG")
    params = {p["name"]: p["bind"] for p in out.spec["params"]}
    assert params["p_rate"] == {"input": "range", "min": 0, "max": 3, "step": 1, "name": "rate "}
    assert params["p_kind"]["input"] == "select" and params["p_kind"]["options"] == ["up", "down"]


def test_explore_without_grid_still_shows_the_static_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    explore(lambda rate: f"figure at {rate}", interactive=False, rate=LogSlider(0.1, 0.01, 1.0))
    assert "figure at 0.1" in capsys.readouterr().out


def test_live_kernel_ignores_the_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    table_calls: list[Any] = []

    def table(**values: Any) -> list[dict[str, Any]]:
        table_calls.append(values)
        return []

    explore(
        lambda rate, kind: None, interactive=True, table=table, chart=toy_chart, **toy_controls()
    )
    assert any(isinstance(o, w.VBox) for o in shown) and table_calls == []


# ----------------------------------------------------------------------------- checks


def test_control_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        LogSlider(0.1, 0.01, 1.0, grid=(0.01, 0.1, 3.0))
    with pytest.raises(ValueError, match="outside"):
        Slider(4, 0, 8, grid=(-1, 4))
    with pytest.raises(ValueError, match="starting value"):
        Slider(4, 0, 8, grid=(0, 2, 8))
    with pytest.raises(ValueError, match="increasing"):
        Slider(4, 0, 8, grid=(4, 2))
    many = {f"c{i}": Choice(0, list(range(3))) for i in range(5)}  # 3**5 = 243 points
    assert 3**5 > MAX_GRID_POINTS
    with pytest.raises(ValueError, match=f"243 points.*more than {MAX_GRID_POINTS}"):
        explore(lambda **v: None, interactive=False, table=lambda **v: [], chart=toy_chart, **many)
    with pytest.raises(ValueError, match="needs grid="):
        explore(
            toy_figure,
            interactive=False,
            table=toy_table,
            chart=toy_chart,
            rate=LogSlider(0.1, 0.01, 1.0),
            kind=Choice("up", ["up"]),
        )
    with pytest.raises(
        TypeError, match="does not take the controls"
    ):  # a control the functions do not know
        explore(
            toy_figure,
            interactive=False,
            table=toy_table,
            chart=toy_chart,
            **toy_controls(),
            width=Slider(2, 1, 3, grid=(1, 2, 3)),
        )
    with pytest.raises(TypeError, match="must be a Slider"):
        explore(toy_figure, interactive=False, table=toy_table, chart=toy_chart, rate=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="together"):
        explore(toy_figure, interactive=False, table=toy_table, **toy_controls())
    with pytest.raises(ValueError, match="named like the controls"):
        static_explorer(toy_figure, lambda rate, kind: [{"rate": 1}], toy_chart, toy_controls())
    with pytest.raises(ValueError, match="dropdown needs"):
        explore(
            lambda m: None,
            interactive=False,
            table=lambda m: [],
            chart=toy_chart,
            m=Choice(None, [None, 1]),
        )
    assert len(list(grid_points(toy_controls()))) == 8


# ----------------------------------------------------------------------------- the browser


def _extension() -> Any:
    spec = importlib.util.spec_from_file_location(
        "nnstudies_vega", ROOT / "book" / "_ext" / "nnstudies_vega.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script>const _ = (text) => text; /* as Sphinx's doctools.js declares */</script>
<script defer src="_static/{bundle}"></script></head>
<body><main>{explorer}</main></body></html>"""

DRAWN = """el => {
  const rows = [];
  const walk = (item) => {
    if (item.datum && "x" in item.datum) rows.push({rate: item.datum.rate, kind: item.datum.kind, x: item.datum.x, y: item.datum.y});
    (item.items || []).forEach(walk);
  };
  walk(el.nnstudiesView.scenegraph().root);
  return rows;
}"""


def _open(browser: Any, url: str) -> tuple[Any, Any, list[str], list[str]]:
    context = browser.new_context()
    blocked: list[str] = []
    origin = url.rsplit("/", 1)[0] + "/"

    def route(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.goto(url, wait_until="load")
    return context, page, errors, blocked


def test_explorer_moves_in_headless_chromium(site: tuple[Path, str]) -> None:
    """The extension's bundle draws the stored explorer; each control changes the drawn data; no network, no errors."""
    chromium = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if chromium is None:
        pytest.skip(
            "no Chromium found: install Debian's 'chromium' package (apt-get install chromium) to run the browser test"
        )
    from playwright.sync_api import sync_playwright

    root, url = site
    bundle = _extension().write_bundle(root / "_static", BUNDLE_CACHE)
    assert bundle.name == "nnstudies-vega.js" and bundle.stat().st_size > 100_000
    (root / "explorer.html").write_text(
        PAGE.format(bundle=bundle.name, explorer=toy_explorer()._repr_html_())
    )

    def expected(rate: float, kind: str) -> list[dict[str, Any]]:
        return [{"rate": rate, "kind": kind, **row} for row in toy_table(rate, kind)]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        context, page, errors, blocked = _open(browser, url + "explorer.html")
        page.wait_for_selector("div[data-nnstudies-ready]", timeout=30_000)
        explorer = page.query_selector("div[data-nnstudies-explorer]")
        assert explorer is not None
        assert page.is_hidden("img.nnstudies-explorer-fallback") and page.is_visible(
            ".nnstudies-explorer-chart svg"
        )
        assert explorer.evaluate(DRAWN) == expected(0.1, "up")

        slider = page.locator('input[type="range"][name="p_rate"]')
        slider.focus()
        slider.press("ArrowRight")  # as a reader does: grid index 1 -> 2
        page.wait_for_function("el => el.nnstudiesView.signal('p_rate') === 2", arg=explorer)
        assert explorer.evaluate(DRAWN) == expected(1.0, "up")
        assert (
            slider.evaluate("input => input.nextElementSibling.textContent") == "1"
        )  # the readout shows the grid value

        page.select_option('select[name="p_kind"]', label="down")
        page.wait_for_function("el => el.nnstudiesView.signal('p_kind') === 'down'", arg=explorer)
        assert explorer.evaluate(DRAWN) == expected(1.0, "down")
        assert errors == [], errors
        context.close()

        # Without the wrapper, the bundle's top-level names clash with Sphinx's `const _`: the wrapper is needed.
        source = bundle.read_text()
        wrap = _extension().WRAP
        (root / "_static" / "bare.js").write_text(
            source[source.index(wrap[0]) + len(wrap[0]) : source.rindex(wrap[1])]
        )
        (root / "bare.html").write_text(
            PAGE.format(bundle="bare.js", explorer=toy_explorer()._repr_html_())
        )
        context, page, bare_errors, _ = _open(browser, url + "bare.html")
        page.wait_for_timeout(500)
        assert any("already been declared" in e for e in bare_errors), bare_errors
        context.close()

        # Where the bundle is absent (Jupyter, GitHub, JavaScript off) the PNG stays.
        (root / "fallback.html").write_text(
            PAGE.format(bundle="absent.js", explorer=toy_explorer()._repr_html_())
        )
        context, page, _, _ = _open(browser, url + "fallback.html")
        assert page.is_visible("img.nnstudies-explorer-fallback")
        assert (
            page.evaluate(
                "() => document.querySelector('img.nnstudies-explorer-fallback').naturalWidth"
            )
            > 0
        )
        context.close()
        browser.close()
    assert blocked == [], f"requests left localhost: {blocked}"


def test_extension_adds_the_script_only_where_an_explorer_is() -> None:
    ext = _extension()
    added: list[tuple[str, dict[str, Any]]] = []

    class App:
        def add_js_file(self, name: str, **kw: Any) -> None:
            added.append((name, kw))

    ext._page(App(), "intro", "page.html", {"body": "<p>no explorer</p>"}, None)
    assert added == []
    ext._page(App(), "ch", "page.html", {"body": toy_explorer()._repr_html_()}, None)
    assert added == [("nnstudies-vega.js", {"loading_method": "defer"})]
