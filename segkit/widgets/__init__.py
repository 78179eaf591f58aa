"""ipywidgets explorers on top of plain functions, live in JupyterLab and static in HTML.

In batch runs (``SEGKIT_QUIET=1``: ``segkit run``, the tests) only the static view is built.

The logic of an explorer is a plain function ``render(choice) -> DataFrame | str | Figure``
(tested on its own). :func:`explorer` wraps it in a dropdown/slider for JupyterLab and also
carries a static ``text/html`` rendering of every choice (as collapsible sections). The report
builder strips the live widget view from exported HTML, so the manager sees the static one; a
notebook without a widget front end (nbconvert, papermill) also shows the static one.

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

__all__ = ["explorer"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def to_html(obj: Any) -> str:
    """HTML of a DataFrame, Styler, matplotlib Figure/Axes or string (escaped)."""
    if isinstance(obj, pd.DataFrame):
        return obj.to_html(border=0, classes="dataframe", float_format=lambda v: f"{v:,.2f}")
    if hasattr(obj, "to_html") and obj.__class__.__name__ == "Styler":
        return obj.to_html()
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


def static_html(choices: Mapping[str, Any], render: Callable[[Any], Any], title: str = "") -> str:
    """Every choice rendered, each in a ``<details>`` block (the first one open)."""
    parts = [f"<div class='segkit-static-explorer'><p><b>{html.escape(title)}</b> "
             "(static view: expand a choice)</p>"] if title else ["<div class='segkit-static-explorer'>"]
    for i, (label, value) in enumerate(choices.items()):
        open_attr = " open" if i == 0 else ""
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


def explorer(
    choices: Mapping[str, Any],
    render: Callable[[Any], Any],
    description: str = "Choose",
    title: str = "",
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
    """
    static = static_html(choices, render, title)
    widget = None
    try:
        from IPython import get_ipython

        # Not in a Jupyter kernel, or a batch run (segkit run, tests: SEGKIT_QUIET=1) whose HTML
        # shows only the static view: no live widget (no comm traffic with an absent front end).
        if getattr(get_ipython(), "kernel", None) is None or os.environ.get("SEGKIT_QUIET") == "1":
            return Explorer(None, static)
        import ipywidgets as w
        from IPython.display import display

        out = w.Output()
        dropdown = w.Dropdown(options=list(choices.items()), description=description)

        def show(change: Any = None) -> None:
            out.clear_output(wait=True)
            with out:
                result = render(dropdown.value)
                display(result.get_figure() if hasattr(result, "get_figure") and not hasattr(result, "savefig") else result)

        dropdown.observe(show, names="value")
        widget = w.VBox([dropdown, out])
        show()
    except Exception:  # no widget front end available: the static view is enough
        widget = None
    return Explorer(widget, static)
