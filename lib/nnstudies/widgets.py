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
  starting values shows. See :mod:`nnstudies.explorer` for the limits and the cost.

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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .progress import is_interactive

__all__ = ["Choice", "Control", "LogSlider", "Slider", "explore"]


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
        from .explorer import check_grid

        check_grid(controls, fn, table)
    if not (is_interactive() if interactive is None else interactive):
        if table is None or chart is None:
            _show(fn(**starting_values(controls)))
        else:
            from .explorer import static_explorer

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
