"""Plotting: one seaborn theme, set in one place; domain plots in submodules.

Every plot function takes ``ax: matplotlib.axes.Axes | None = None`` and returns the ``Axes``
(titled, axes labelled with units), never calls ``plt.show()``, and changes no global state
at import. Domain modules: ``segkit.plots.audit``, ``.rfm``, ``.cluster``, ``.lifecycle``,
``.campaign``.

Examples
--------
>>> import segkit.plots as sp
>>> sp.set_theme()
>>> ax = sp.new_axes()
>>> ax.get_figure() is not None
True
"""

from __future__ import annotations

import matplotlib

__all__ = ["set_theme", "set_currency", "money_text", "new_axes", "label", "plain_number", "plain_log_ticks",
    "THEME", "RC", "FIGSIZE", "MONEY_PLACEHOLDER"]

matplotlib.use("Agg") if matplotlib.get_backend().lower() in ("", "template") else None

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

THEME = dict(style="whitegrid", context="notebook", palette="colorblind")
FIGSIZE = (8.0, 4.5)
#: Unit shown for the ``(currency)`` placeholder in plot labels; set from ``report.currency``.
MONEY_PLACEHOLDER = "(currency)"
_money_unit = {"unit": "currency units"}


def set_currency(currency: str | None) -> None:
    """Unit that replaces ``(currency)`` in plot titles and labels (e.g. ``"EUR"``)."""
    _money_unit["unit"] = str(currency) if currency else "currency units"


def money_text(text: str) -> str:
    """``text`` with the ``(currency)`` placeholder replaced by the configured unit.

    Examples
    --------
    >>> set_currency("EUR"); money_text("Revenue (currency)")
    'Revenue (EUR)'
    >>> set_currency(None)
    """
    return text.replace(MONEY_PLACEHOLDER, f"({_money_unit['unit']})")


#: matplotlib settings of the theme. ``text.parse_math`` off: segkit draws no formulas, and text
#: from the data (campaign ids, customer and channel names) must read as typed — with maths on,
#: ``"$5 off $10"`` would be drawn as an italic formula "5off10".
RC = {"figure.figsize": FIGSIZE, "figure.dpi": 100, "savefig.dpi": 100, "axes.titleweight": "bold",
      "text.parse_math": False}


def set_theme() -> None:
    """Apply segkit's seaborn theme and :data:`RC` (called by :func:`segkit.steps.pipeline.open_run`,
    so every notebook and ``segkit run`` draws with it; call it yourself before using the plot
    functions elsewhere).

    Examples
    --------
    >>> set_theme(); new_axes().set_title("$5 off $10").get_parse_math()
    False
    """
    sns.set_theme(**THEME, rc=RC)


def plain_number(value: float, position: int | None = None) -> str:
    """A tick value as a plain number: thousands separated, small values as they are.

    Examples
    --------
    >>> [plain_number(v) for v in (0.01, 1.0, 100.0, 10000.0, -1000.0, 0.0)]
    ['0.01', '1', '100', '10,000', '-1,000', '0']
    """
    return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:g}"


def plain_log_ticks(axis: "matplotlib.axis.Axis") -> None:
    """Label a log or symlog axis with plain numbers ("1", "100", "10,000"); call it after setting the scale.

    matplotlib writes log ticks as formulas (``$\\mathdefault{10^{2}}$``), which :func:`set_theme`'s
    ``text.parse_math: False`` would show as that code; plain numbers also read better in a report.

    Examples
    --------
    >>> set_theme(); ax = new_axes(); ax.set_xscale("log"); _ = ax.set_xlim(1, 1000); plain_log_ticks(ax.xaxis)
    >>> ax.figure.canvas.draw(); [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    ['0.1', '1', '10', '100', '1,000', '10,000']
    """
    from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(plain_number))
    # minor ticks: labelled (plainly) only when the axis spans too few decades for major ones
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False) if axis.get_scale() == "log" else NullFormatter())


def new_axes(ax: plt.Axes | None = None, figsize: tuple[float, float] | None = None) -> plt.Axes:
    """Return ``ax`` or a fresh Axes on a new figure."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize or FIGSIZE)
    return ax


def label(ax: plt.Axes, title: str, xlabel: str, ylabel: str) -> plt.Axes:
    """Set title and axis labels (units belong in the labels; ``(currency)`` becomes the
    configured unit) and return ``ax``."""
    ax.set_title(money_text(title))
    ax.set_xlabel(money_text(xlabel))
    ax.set_ylabel(money_text(ylabel))
    return ax
