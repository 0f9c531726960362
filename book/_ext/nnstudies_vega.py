"""Sphinx extension: serve the Vega libraries for nnstudies explorers from the book itself, never a CDN.

Registered in ``_config.yml`` (``sphinx: local_extensions``). At the end of an HTML build it writes
``_static/nnstudies-vega.js``: ``vl_convert.javascript_bundle`` (Vega, Vega-Lite, vega-embed; no
network) around ``nnstudies_vega.js``, which draws every ``div[data-nnstudies-explorer]`` on the
page (see ``lib/nnstudies/explorer.py``). The bundle's top-level ``const`` names would clash with
Sphinx's own scripts (``doctools.js`` declares a global ``const _``), so it is wrapped in a function
and publishes only ``window.nnstudiesVega``. The script is added, deferred, to the pages that hold
an explorer. The bundle is cached beside the doctrees, keyed by the vl-convert version, the
Vega-Lite version and this wrapper, so a rebuild does not bundle again (that takes seconds).
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from typing import Any

BUNDLE = "nnstudies-vega.js"
MARKER = 'data-nnstudies-explorer="'
SNIPPET = Path(__file__).with_name("nnstudies_vega.js")
WRAP = (
    '(function () {\n"use strict";\n',
    "\n})();\n",
)  # one function scope: no global but window.nnstudiesVega
HEADER = "/* nnstudies explorers: Vega {vega}, Vega-Lite {vl}, vega-embed {embed} (BSD-3-Clause), bundled by vl-convert {vlc}. */\n"


def vega_lite_version() -> str | None:
    """The Vega-Lite version (``"6.4"``) of the installed Altair, when vl-convert can bundle it; else None (its latest)."""
    import vl_convert as vlc

    try:
        import altair as alt
    except ImportError:
        return None
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vlc.get_vegalite_versions() else None


def bundle_source(vl_version: str | None = None) -> str:
    """The wrapped bundle: the Vega libraries and the drawing snippet inside one function scope."""
    import vl_convert as vlc

    code = vlc.javascript_bundle(SNIPPET.read_text(), vl_version=vl_version)
    header = HEADER.format(
        vega=vlc.get_vega_version(),
        vl=vl_version or vlc.get_vegalite_versions()[-1],
        embed=vlc.get_vega_embed_version(),
        vlc=version("vl-convert-python"),
    )
    return header + WRAP[0] + code + WRAP[1]


def write_bundle(static_dir: Path, cache_dir: Path | None = None) -> Path:
    """Write ``nnstudies-vega.js`` into ``static_dir`` (a build's ``_static``), bundling only on a cache miss."""
    vl_version = vega_lite_version()
    key = hashlib.sha256(
        "\0".join(
            [version("vl-convert-python"), str(vl_version), SNIPPET.read_text(), *WRAP, HEADER]
        ).encode()
    )
    cached = (
        (cache_dir / f"nnstudies-vega-{key.hexdigest()[:16]}.js") if cache_dir is not None else None
    )
    if cached is not None and cached.is_file():
        source = cached.read_text()
    else:
        source = bundle_source(vl_version)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            for stale in cached.parent.glob("nnstudies-vega-*.js"):
                stale.unlink()
            cached.write_text(source)
    static_dir.mkdir(parents=True, exist_ok=True)
    target = static_dir / BUNDLE
    target.write_text(source)
    return target


def _page(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if MARKER in context.get("body", ""):
        app.add_js_file(
            BUNDLE, loading_method="defer"
        )  # this page only (Sphinx resets the list per page)


def _finished(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    try:
        write_bundle(Path(app.outdir) / "_static", Path(app.doctreedir))
    except ImportError:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "vl-convert-python is not installed (pip install -e '.[book]'): the book's explorers would show their PNG only"
        )


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _page)
    app.connect("build-finished", _finished)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
