"""Turn a library function into a control panel — or, outside a live kernel, into one static figure.

>>> explore(plot_learning_rate, lr=LogSlider(0.05, 1e-3, 1.0))   # doctest: +SKIP

In a live Jupyter kernel (Colab, JupyterLab) this shows ipywidgets controls and
re-draws when a control is released. Anywhere else — papermill, the book build,
nbval, a script, or with ``$NNSTUDIES_STATIC=1`` — it calls the function once
with the controls' starting values and displays the result, so a static figure
stays in the stored notebook. Nothing waits for input, so nothing can hang.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .progress import is_interactive

__all__ = ["Choice", "Control", "LogSlider", "Slider", "explore"]


@dataclass(frozen=True)
class Slider:
    """A linear slider from ``min`` to ``max`` in steps of ``step`` (ints when all three are ints)."""

    value: float
    min: float
    max: float
    step: float = 1
    description: str = ""

    def __post_init__(self) -> None:
        if not self.min <= self.value <= self.max:
            raise ValueError(f"slider value {self.value} lies outside [{self.min}, {self.max}]")

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        cls = w.IntSlider if all(isinstance(v, int) for v in (self.value, self.min, self.max, self.step)) else w.FloatSlider
        return cls(value=self.value, min=self.min, max=self.max, step=self.step, description=self.description or name, continuous_update=False)


@dataclass(frozen=True)
class LogSlider:
    """A slider over powers of ten, for learning rates, damping and strengths."""

    value: float
    min: float
    max: float
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.min <= self.value <= self.max:
            raise ValueError(f"log slider needs 0 < min <= value <= max, got {self.min}, {self.value}, {self.max}")

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        return w.FloatLogSlider(
            value=self.value, base=10, min=math.log10(self.min), max=math.log10(self.max), step=0.1,
            description=self.description or name, continuous_update=False, readout_format=".2g",
        )


@dataclass(frozen=True)
class Choice:
    """A dropdown over ``options``, starting at ``value``."""

    value: Any
    options: Sequence[Any]
    description: str = ""

    def __post_init__(self) -> None:
        if self.value not in self.options:
            raise ValueError(f"choice {self.value!r} is not among the options {list(self.options)}")

    def widget(self, name: str) -> Any:
        import ipywidgets as w

        return w.Dropdown(options=list(self.options), value=self.value, description=self.description or name)


Control = Slider | LogSlider | Choice


def _show(result: Any) -> None:
    if result is None:
        return
    from IPython.display import display

    display(result)


def explore(fn: Callable[..., Any], /, *, interactive: bool | None = None, **controls: Control) -> None:
    """Show ``fn`` with one control per keyword argument: a live panel, or one static result.

    ``fn`` should return what to show (a matplotlib ``Figure``, a table, ...); it is
    displayed, not returned, so a cell ending in ``explore(...)`` shows it once.
    ``interactive=None`` decides by :func:`is_interactive`.
    """
    if not controls:
        raise ValueError("explore needs at least one control, e.g. lr=LogSlider(0.05, 1e-3, 1.0)")
    for name, control in controls.items():
        if not isinstance(control, (Slider, LogSlider, Choice)):
            raise TypeError(f"control {name!r} must be a Slider, LogSlider or Choice, got {type(control).__name__}")
    if not (is_interactive() if interactive is None else interactive):
        _show(fn(**{name: control.value for name, control in controls.items()}))
        return

    import ipywidgets as w
    from IPython.display import display

    widgets = {name: control.widget(name) for name, control in controls.items()}
    output = w.interactive_output(lambda **values: _show(fn(**values)), widgets)  # re-draws on release
    panel = w.VBox([w.HBox(list(widgets.values()), layout=w.Layout(flex_flow="row wrap")), output])
    display(panel)
