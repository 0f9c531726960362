"""Turn a library function into a control panel — or, outside a live kernel, into a figure that
moves in the book.

In a live Jupyter kernel (Colab, JupyterLab; ipywidgets 7 or 8) :func:`explore` shows
ipywidgets controls and re-draws when a control is released. Anywhere else — papermill,
the book build, nbval, a script, or with ``$NNSTUDIES_STATIC=1`` — nothing waits for
input, so nothing can hang:

* without ``table``, it calls ``fn`` once with the controls' starting values and shows the result;
* with ``table`` and ``chart``, it also computes a grid: every combination of the controls' grid
  values (a :class:`Choice`'s options, a slider's ``grid``), calls ``table(**values)`` once per
  combination, and stores the rows with a Vega-Lite chart whose sliders and dropdowns pick the
  combination to draw. The book's page draws it with no kernel (the bundle comes from the book's
  own ``_static``, written by ``book/_ext/nnstudies_vega.py``); elsewhere the PNG of ``fn`` at the
  starting values shows. The limits and the cost are below.

Example::

    import altair as alt

    def curves(lr: float, method: str) -> list[dict]:          # one grid point -> tidy rows
        h = train(lr=lr, method=method)                        # cached: cheap when asked again
        return [{"step": s, "loss": v} for s, v in enumerate(h.loss)]

    def figure(lr: float, method: str) -> Figure:              # the live figure (and the PNG)
        ...

    explore(
        figure,
        lr=LogSlider(0.03, 1e-3, 3.0, description="learning rate", grid=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0)),
        method=Choice("sgd", ["sgd", "adam"]),
        table=curves,                                          # 6 x 2 = 12 calls when the chapter executes
        chart=lambda rows: rows.mark_line().encode(x="step:Q", y=alt.Y("loss:Q").scale(type="log")),
    )

``chart`` receives an ``alt.Chart`` of the rows already filtered to the chosen grid point (with
the control values as columns) and returns the chart to draw: a mark with encodings, a layer, a
facet. A call without ``table`` works as before: the static figure only.

**The static explorer.**

:func:`nnstudies.explore` calls :func:`static_explorer` outside a live kernel when it is given
``table=`` and ``chart=`` (see the example above). What it stores:

* the rows: ``table(**values)`` for every combination of the controls' grid values (a
  :class:`Choice`'s options, a slider's ``grid``), in a fixed order — the
  first control varies slowest — with the control values added as columns;
* a Vega-Lite spec (made with Altair, never rendered by it: Altair's renderers load Vega from a
  CDN) whose controls are parameter bindings: a dropdown per ``Choice``, a range input over the
  grid's index per slider (its readout shows the grid value), filtering the rows to one point;
* the output: ``text/html`` holding a PNG of ``fn`` at the starting values and the spec in a
  ``<script type="application/json">``, plus the same ``image/png``. The book's bundle
  (``_static/nnstudies-vega.js``) finds each ``div[data-nnstudies-explorer]`` and swaps the PNG for
  the live chart; in Jupyter, on GitHub or with JavaScript off, the PNG stays.

Cost: one ``fn`` call (the PNG) and one ``table`` call per grid point — at most
:data:`MAX_GRID_POINTS` — when the chapter executes; nothing when the page is read. Let
``table`` read trained runs from the cache. The stored rows (at most :data:`MAX_ROWS`) go into
the notebook and the page: thin long curves.
"""

from __future__ import annotations

import base64
import html
import inspect
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .progress import is_interactive

__all__ = [
    "DATA_NAME",
    "MAX_GRID_POINTS",
    "MAX_ROWS",
    "Choice",
    "Control",
    "LogSlider",
    "Slider",
    "StaticExplorer",
    "check_grid",
    "explore",
    "grid_points",
    "grid_rows",
    "starting_values",
    "static_explorer",
    "vega_spec",
]

MAX_GRID_POINTS = 200
"""The most combinations of grid values an explorer may precompute (``table`` calls at execution).
"""
MAX_ROWS = 20_000
"""The most rows an explorer may store in the notebook and the page."""
DATA_NAME = "nnstudies_rows"
"""The name of the rows in the Vega-Lite spec's ``datasets`` (and in the Vega view)."""


def _check_grid(
    name: str, grid: Sequence[float] | None, value: float, low: float, high: float
) -> tuple[float, ...] | None:
    """The grid as a tuple, checked: increasing, inside [low, high], and holding the starting value."""
    if grid is None:
        return None
    values = tuple(grid)
    if not values:
        raise ValueError(f"{name} grid is empty: give the values the book's explorer should offer")
    outside = [v for v in values if not low <= v <= high]
    if outside:
        raise ValueError(f"{name} grid values {outside} lie outside [{low}, {high}]")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name} grid must be strictly increasing, got {values}")
    if not any(math.isclose(v, value, rel_tol=1e-9, abs_tol=0.0) for v in values):
        raise ValueError(
            f"{name} grid {values} must contain the starting value {value}, so the book's chart starts where the figure does"
        )
    return values


@dataclass(frozen=True)
class Slider:
    """A linear slider from ``min`` to ``max`` in steps of ``step`` (ints when all three are ints).

    ``grid``: the values the book's static explorer precomputes (increasing, within the range,
    holding ``value``); needed only when :func:`explore` is given a ``table``.
    """

    value: float
    min: float
    max: float
    step: float = 1
    description: str = ""
    grid: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not self.min <= self.value <= self.max:
            raise ValueError(f"slider value {self.value} lies outside [{self.min}, {self.max}]")
        object.__setattr__(
            self, "grid", _check_grid("slider", self.grid, self.value, self.min, self.max)
        )

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        cls = (
            w.IntSlider
            if all(isinstance(v, int) for v in (self.value, self.min, self.max, self.step))
            else w.FloatSlider
        )
        return cls(
            value=self.value,
            min=self.min,
            max=self.max,
            step=self.step,
            description=self.description or name,
            continuous_update=False,
        )


@dataclass(frozen=True)
class LogSlider:
    """A slider over powers of ten, for learning rates, damping and strengths (``grid`` as for
    :class:`Slider`).
    """

    value: float
    min: float
    max: float
    description: str = ""
    grid: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min <= self.value <= self.max:
            raise ValueError(
                f"log slider needs 0 < min <= value <= max, got {self.min}, {self.value}, {self.max}"
            )
        object.__setattr__(
            self, "grid", _check_grid("log slider", self.grid, self.value, self.min, self.max)
        )

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        return w.FloatLogSlider(
            value=self.value,
            base=10,
            min=math.log10(self.min),
            max=math.log10(self.max),
            step=0.1,
            description=self.description or name,
            continuous_update=False,
            readout_format=".2g",
        )


@dataclass(frozen=True)
class Choice:
    """A dropdown over ``options``, starting at ``value``; in the book's explorer, every option is a
    grid value.
    """

    value: Any
    options: Sequence[Any]
    description: str = ""

    def __post_init__(self) -> None:
        if self.value not in self.options:
            raise ValueError(f"choice {self.value!r} is not among the options {list(self.options)}")

    @property
    def grid(self) -> tuple[Any, ...]:
        return tuple(self.options)

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        return w.Dropdown(
            options=list(self.options), value=self.value, description=self.description or name
        )


Control = Slider | LogSlider | Choice


def _show(result: Any) -> None:
    if result is None:
        return
    from IPython.display import display

    display(result)


def explore(
    fn: Callable[..., Any],
    /,
    *,
    interactive: bool | None = None,
    table: Callable[..., Any] | None = None,
    chart: Callable[[Any], Any] | None = None,
    **controls: Control,
) -> None:
    """Show ``fn`` with one control per keyword argument: a live panel, or a static (or precomputed)
    result.

    ``fn`` should return what to show (a matplotlib ``Figure``, a table, ...); it is
    displayed, not returned, so a cell ending in ``explore(...)`` shows it once.
    ``interactive=None`` decides by :func:`is_interactive`. ``table`` (rows for one grid
    point) and ``chart`` (how to draw them) make the static result a chart that moves in the
    book; see the module docstring. The grid is checked in both modes, so a chapter's author
    sees a bad grid in Jupyter before the book is built.
    """
    if not controls:
        raise ValueError("explore needs at least one control, e.g. lr=LogSlider(0.05, 1e-3, 1.0)")
    for name, control in controls.items():
        if not isinstance(control, (Slider, LogSlider, Choice)):
            raise TypeError(
                f"control {name!r} must be a Slider, LogSlider or Choice, got {type(control).__name__}"
            )
    if (table is None) != (chart is None):
        raise ValueError(
            "explore needs table= and chart= together: the rows of one grid point, and how to draw them"
        )
    if table is not None:
        check_grid(controls, fn, table)
    if not (is_interactive() if interactive is None else interactive):
        if table is None or chart is None:
            _show(fn(**starting_values(controls)))
        else:
            _show(static_explorer(fn, table, chart, controls))
        return

    import ipywidgets as w
    from IPython.display import display

    # ipywidgets 7 and 8 alike: interactive_output, VBox/HBox and Layout are in both.
    widgets = {name: control.widget(name) for name, control in controls.items()}
    output = w.interactive_output(
        lambda **values: _show(fn(**values)), widgets
    )  # re-draws on release
    panel = w.VBox([w.HBox(list(widgets.values()), layout=w.Layout(flex_flow="row wrap")), output])
    display(panel)


def starting_values(controls: Mapping[str, Control]) -> dict[str, Any]:
    """Each control's starting value, by name."""
    return {name: control.value for name, control in controls.items()}


def _grid(name: str, control: Control) -> tuple[Any, ...]:
    if isinstance(control, Choice):
        return control.grid
    if control.grid is None:
        raise ValueError(
            f"control {name!r} needs grid=(...): the values the book's explorer precomputes, e.g. "
            f"grid=({control.min}, {control.value}, {control.max})"
        )
    return tuple(control.grid)


def check_grid(controls: Mapping[str, Control], *functions: Callable[..., Any]) -> int:
    """Check the controls' grids and that each function takes every control; returns the number of
    grid points.
    """
    count = 1
    for name, control in controls.items():
        values = _grid(name, control)
        if isinstance(control, Choice):
            bad = [v for v in values if not isinstance(v, (str, int, float, bool))]
            if bad:
                raise ValueError(
                    f"choice {name!r}: the book's dropdown needs str, int, float or bool options, got {bad}"
                )
        count *= len(values)
    if count > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(_grid(n, c))} {n}" for n, c in controls.items())
        raise ValueError(
            f"the explorer's grid has {count} points ({sizes}), more than {MAX_GRID_POINTS}: give fewer grid values"
        )
    start = starting_values(controls)
    for fn in functions:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins and some callables have none to check
            continue
        try:
            signature.bind(**start)
        except TypeError as error:
            raise TypeError(
                f"{getattr(fn, '__name__', fn)!r} does not take the controls {sorted(start)}: {error}"
            ) from None
    return count


def grid_points(controls: Mapping[str, Control]) -> Iterator[dict[str, Any]]:
    """Every combination of the controls' grid values, the first control varying slowest."""
    names = list(controls)
    for values in itertools.product(*(_grid(n, controls[n]) for n in names)):
        yield dict(zip(names, values))


def _scalar(value: Any) -> Any:
    """A JSON scalar: numpy scalars unwrapped, NaN and infinities as null."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(
        f"explorer rows hold numbers, strings, booleans or None; got {type(value).__name__} {value!r}"
    )


def _records(result: Any) -> list[Mapping[str, Any]]:
    if hasattr(result, "to_dict") and not isinstance(result, Mapping):  # a pandas DataFrame
        result = result.to_dict(orient="records")
    records = list(result) if isinstance(result, (list, tuple)) else None
    if records is None or not all(isinstance(row, Mapping) for row in records):
        raise TypeError(
            f"table(**values) must return a list of dicts (one per row) or a DataFrame, got {type(result).__name__}"
        )
    return records


def grid_rows(table: Callable[..., Any], controls: Mapping[str, Control]) -> list[dict[str, Any]]:
    """``table(**values)`` for every grid point, concatenated, with the control values as columns."""
    rows: list[dict[str, Any]] = []
    for values in grid_points(controls):
        for record in _records(table(**values)):
            clash = set(record) & set(values)
            if clash:
                raise ValueError(
                    f"table rows may not have columns named like the controls: {sorted(clash)}"
                )
            rows.append(
                {
                    **{k: _scalar(v) for k, v in values.items()},
                    **{str(k): _scalar(v) for k, v in record.items()},
                }
            )
        if len(rows) > MAX_ROWS:
            raise ValueError(
                f"the explorer's table has over {MAX_ROWS} rows: thin the curves (every k-th step) or the grid"
            )
    return rows


def _label(value: Any) -> str:
    return format(value, ".4g") if isinstance(value, float) else str(value)


def vega_spec(
    rows: list[dict[str, Any]], controls: Mapping[str, Control], chart: Callable[[Any], Any]
) -> dict[str, Any]:
    """The Vega-Lite spec: ``chart`` of the rows at the chosen grid point, one bound parameter per
    control.
    """
    import altair as alt

    params, tests, readouts = [], [], {}
    bind: Any
    for name, control in controls.items():
        values = [_scalar(v) for v in _grid(name, control)]
        signal, label = f"p_{name}", (control.description or name) + " "
        if isinstance(control, Choice):
            bind = alt.binding_select(
                options=values, labels=[_label(v) for v in values], name=label
            )
            params.append(alt.param(name=signal, value=_scalar(control.value), bind=bind))
            tests.append(f"datum[{json.dumps(name)}] === {signal}")
        else:
            start = min(range(len(values)), key=lambda i: abs(values[i] - control.value))
            bind = alt.binding_range(min=0, max=len(values) - 1, step=1, name=label)
            params.append(alt.param(name=signal, value=start, bind=bind))
            tests.append(f"datum[{json.dumps(name)}] === {json.dumps(values)}[{signal}]")
            readouts[signal] = [_label(v) for v in values]
    base = alt.Chart(alt.Data(name=DATA_NAME)).transform_filter(" && ".join(tests))
    spec: dict[str, Any] = (
        chart(base).add_params(*params).to_dict()
    )  # validated without the rows: quick
    spec["datasets"] = {DATA_NAME: rows}
    spec["usermeta"] = {**spec.get("usermeta", {}), "nnstudies": {"readouts": readouts}}
    return spec


def _png(result: Any) -> bytes:
    """PNG bytes of what ``fn`` returned: a matplotlib figure (then closed) or anything with
    ``_repr_png_``.
    """
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        import matplotlib.pyplot as plt
        from IPython.core.pylabtools import print_figure

        data = print_figure(result, "png", bbox_inches="tight")
        plt.close(result)  # shown once, inside the explorer's output
        return bytes(data)
    png = getattr(result, "_repr_png_", lambda: None)()
    if png is None:
        raise TypeError(
            f"with table=, fn must return a matplotlib Figure (the PNG fallback), got {type(result).__name__}"
        )
    return base64.b64decode(png) if isinstance(png, str) else bytes(png)


class StaticExplorer:
    """An explorer's output: the PNG fallback, the rows and the spec, shown as ``text/html`` +
    ``image/png``.
    """

    def __init__(self, png: bytes, spec: dict[str, Any], summary: str) -> None:
        self.png, self.spec, self.summary = png, spec, summary

    def __repr__(self) -> str:
        return f"<explorer: {self.summary}>"

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.png).decode()
        # "<" escaped, so that no "</script>" in the rows can end the JSON early.
        spec = json.dumps(self.spec, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
        alt_text = html.escape(f"The explorer at its starting values ({self.summary}).")
        return (
            f'<div class="nnstudies-explorer" data-nnstudies-explorer="1">'
            f'<img class="nnstudies-explorer-fallback" style="max-width:100%" alt="{alt_text}" src="data:image/png;base64,{data}">'
            f'<script type="application/json" class="nnstudies-explorer-spec">{spec}</script></div>'
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/html": self._repr_html_(),
            "image/png": base64.b64encode(self.png).decode(),
            "text/plain": repr(self),
        }


def static_explorer(
    fn: Callable[..., Any],
    table: Callable[..., Any],
    chart: Callable[[Any], Any],
    controls: Mapping[str, Control],
) -> StaticExplorer:
    """Compute the explorer's output: ``fn`` once at the starting values, then ``table`` at each
    grid point.
    """
    count = check_grid(controls, fn, table)
    start = starting_values(controls)
    png = _png(fn(**start))
    rows = grid_rows(table, controls)
    summary = ", ".join(f"{name} = {_label(value)}" for name, value in start.items())
    return StaticExplorer(
        png, vega_spec(rows, controls, chart), f"{summary}; {count} grid points, {len(rows)} rows"
    )
