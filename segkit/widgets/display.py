"""How a notebook kernel shows segkit's tables and errors (set up by ``open_run``).

- Wide tables scroll sideways inside their own output instead of running past the view:
  DataFrame and Styler HTML is wrapped in a box with ``overflow-x: auto`` (:func:`scrollable`).
- A :class:`~segkit.core.errors.SegkitError` (a data, config or parameter problem the analyst
  can fix) shows its message without a traceback, as ``segkit run`` prints it; the traceback
  stays one ``%tb`` away. Any other exception keeps its traceback: it is a bug.

Examples
--------
>>> scrollable("<table></table>")
'<div class="segkit-scroll" style="overflow-x: auto; max-width: 100%;"><table></table></div>'
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from segkit.core.errors import SegkitError

__all__ = ["SCROLL_CLASS", "scrollable", "install_notebook_display"]

#: Class of the box around a table (the report's CSS may style it further).
SCROLL_CLASS = "segkit-scroll"


def scrollable(table_html: str) -> str:
    """``table_html`` inside a box that scrolls sideways when the table is wider than the output."""
    return f'<div class="{SCROLL_CLASS}" style="overflow-x: auto; max-width: 100%;">{table_html}</div>'


def frame_html(frame: Any) -> str | None:
    """The notebook HTML of a DataFrame or Styler (its ``_repr_html_``) in a :func:`scrollable` box;
    None when it has none (pandas' ``display.notebook_repr_html`` off), so plain text is shown."""
    inner = frame._repr_html_()
    return None if inner is None else scrollable(inner)


def show_segkit_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    """IPython custom exception handler: the error's class and message, no traceback.

    The kernel still reports the cell as failed with this ``ename``/``evalue`` (papermill,
    ``segkit run`` and nbval see the same failure); ``%tb`` shows the full traceback.
    """
    shell.showtraceback((etype, value, tb), exception_only=True)
    return shell.InteractiveTB.get_exception_only(etype, value)


def install_notebook_display(shell: Any = None) -> bool:
    """In a Jupyter kernel: scrolling tables and brief :class:`SegkitError` messages.

    Parameters
    ----------
    shell : IPython shell, optional
        Default: the running one (``get_ipython()``).

    Returns
    -------
    bool
        True when installed (an IPython shell is running), False otherwise (plain Python).
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython comes with ipykernel
            return False
        shell = get_ipython()
    if shell is None:
        return False
    html_formatter = shell.display_formatter.formatters["text/html"]
    html_formatter.for_type(pd.DataFrame, frame_html)
    html_formatter.for_type_by_name("pandas.io.formats.style", "Styler", frame_html)
    shell.set_custom_exc((SegkitError,), show_segkit_error)
    return True
