"""ipywidgets explorers on top of plain functions, live in JupyterLab and static in HTML.

In batch runs (``SEGKIT_QUIET=1``: ``segkit run``, the tests) only the static view is built.

The logic of an explorer is a plain function ``render(choice) -> DataFrame | str | Figure``
(tested on its own). :func:`explorer` wraps it in a dropdown for JupyterLab and also carries a
static ``text/html`` rendering of every choice (as collapsible sections) in the same output.

Which of the two a reader sees: JupyterLab renders the richest representation it has a renderer
for, and the widget view (``application/vnd.jupyter.widget-view+json``) outranks ``text/html``,
also once its model is gone (after a save, shutdown and reopen it shows "Error displaying widget:
model not found" and never falls back). So a saved notebook must not hold the widget view: the
report builder strips it from exported HTML, and JupyterLab started by ``make lab`` strips it on
every save (:func:`segkit.widgets.lab.pre_save_hook`), so a reopened notebook shows the static
view. A notebook without a widget front end (nbconvert, papermill) shows the static view too.

Examples
--------
>>> view = explorer({"a": 1, "b": 2}, lambda v: f"value {v}", description="Pick")
>>> "value 2" in view._repr_mimebundle_()["text/html"]
True
"""

from __future__ import annotations

import html
import os
from typing import Any, Callable, Mapping

import pandas as pd

from segkit.widgets.display import frame_html, scrollable

__all__ = ["explorer"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def to_html(obj: Any) -> str:
    """HTML of a DataFrame, Styler, matplotlib Figure/Axes or string (escaped); tables scroll
    sideways inside their own box (:func:`segkit.widgets.display.scrollable`)."""
    if isinstance(obj, pd.DataFrame):
        return scrollable(obj.to_html(border=0, classes="dataframe", float_format=lambda v: f"{v:,.2f}"))
    if hasattr(obj, "to_html") and obj.__class__.__name__ == "Styler":
        return scrollable(obj.to_html())
    fig = getattr(obj, "figure", None) if hasattr(obj, "get_figure") and not hasattr(obj, "savefig") else obj
    if hasattr(fig, "savefig"):
        import base64
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        return f'<img alt="figure" src="data:image/png;base64,{data}"/>'
    if isinstance(obj, str):  # text, never markup (it may name ids, arms or segments from the data)
        return f"<p>{html.escape(obj)}</p>"
    return f"<pre>{html.escape(repr(obj))}</pre>"


def initial_label(choices: Mapping[str, Any], initial: Any = None) -> str | None:
    """Label of the choice an explorer opens on: the one whose value (or label) is ``initial``,
    else the first.

    Raises
    ------
    ValueError
        ``initial`` is neither a label nor a value of ``choices`` (a bug of the caller).

    Examples
    --------
    >>> initial_label({"k = 2": 2, "k = 4 (chosen)": 4}, 4)
    'k = 4 (chosen)'
    >>> initial_label({"k = 2": 2, "k = 4": 4})
    'k = 2'
    """
    if not choices:
        return None
    if initial is None:
        return next(iter(choices))
    for label, value in choices.items():
        if label == initial or _same(value, initial):
            return label
    raise ValueError(f"explorer: initial choice {initial!r} is not one of {list(choices)}.")


def _same(value: Any, initial: Any) -> bool:
    try:
        return bool(value == initial)
    except (TypeError, ValueError):  # e.g. a DataFrame value: not comparable to a label
        return False


def static_html(choices: Mapping[str, Any], render: Callable[[Any], Any], title: str = "",
                initial: Any = None) -> str:
    """Every choice rendered, each in a ``<details>`` block (the ``initial`` one, else the first, open)."""
    parts = [f"<div class='segkit-static-explorer'><p><b>{html.escape(title)}</b> "
             "(static view: expand a choice)</p>"] if title else ["<div class='segkit-static-explorer'>"]
    opened = initial_label(choices, initial)
    for label, value in choices.items():
        open_attr = " open" if label == opened else ""
        parts.append(f"<details{open_attr}><summary>{html.escape(str(label))}</summary>"
                     f"{to_html(render(value))}</details>")
    parts.append("</div>")
    return "".join(parts)


class Explorer:
    """A live widget plus its static HTML rendering, displayed as one output."""

    def __init__(self, widget: Any, static: str):
        self.widget = widget
        self.static = static

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle: dict = {"text/html": self.static, "text/plain": "Explorer (static view below)"}
        if self.widget is not None:
            live = self.widget._repr_mimebundle_() or {}
            if WIDGET_MIME in live:
                bundle[WIDGET_MIME] = live[WIDGET_MIME]
        return bundle


def live_widget(choices: Mapping[str, Any], render: Callable[[Any], Any], description: str = "Choose",
                initial: Any = None) -> Any:
    """The dropdown and the output it fills with ``render(choice)`` (an ``ipywidgets.VBox``).

    The dropdown is as wide as its longest option label (at most the output's width) and its
    description is never cut: a label is often told from the next only by its end ("churn
    window 51 days (75% of gaps)" against "(90% of gaps)").
    """
    import ipywidgets as w
    from IPython.display import HTML, display

    out = w.Output(layout=w.Layout(max_width="100%", overflow="auto"))
    dropdown = w.Dropdown(options=list(choices.items()), description=description,
                          layout=w.Layout(width="max-content", max_width="100%"),
                          style={"description_width": "initial"})
    label = initial_label(choices, initial)
    if label is not None:
        dropdown.value = choices[label]

    def show(change: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            result = render(dropdown.value)
            if isinstance(result, pd.DataFrame) or result.__class__.__name__ == "Styler":
                display(HTML(frame_html(result)))  # scrolls sideways inside the output when wide
            else:
                display(result.get_figure() if hasattr(result, "get_figure") and not hasattr(result, "savefig") else result)

    dropdown.observe(show, names="value")
    show()
    return w.VBox([dropdown, out], layout=w.Layout(max_width="100%"))


def explorer(
    choices: Mapping[str, Any],
    render: Callable[[Any], Any],
    description: str = "Choose",
    title: str = "",
    initial: Any = None,
) -> Explorer:
    """Dropdown explorer: pick a choice, see ``render(choice)``; static HTML of all choices.

    Parameters
    ----------
    choices : mapping
        Label shown → value passed to ``render``.
    render : callable
        Plain function (tested separately) returning a DataFrame, Figure/Axes or text.
    description : str
        Label of the dropdown.
    title : str
        Heading of the static rendering.
    initial : optional
        Value (or label) of the choice shown first, e.g. the notebook's chosen k; None = the first.
    """
    static = static_html(choices, render, title, initial)
    widget = None
    try:
        from IPython import get_ipython

        # Not in a Jupyter kernel, or a batch run (segkit run, tests: SEGKIT_QUIET=1) whose HTML
        # shows only the static view: no live widget (no comm traffic with an absent front end).
        if getattr(get_ipython(), "kernel", None) is None or os.environ.get("SEGKIT_QUIET") == "1":
            return Explorer(None, static)
        widget = live_widget(choices, render, description, initial)
    except ImportError:  # no widget library available: the static view is enough
        widget = None
    return Explorer(widget, static)
