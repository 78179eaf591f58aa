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


def set_theme() -> None:
    """Apply segkit's seaborn theme (called by :func:`segkit.steps.pipeline.open_run`)."""
    sns.set_theme(**THEME, rc={"figure.figsize": FIGSIZE, "figure.dpi": 100, "savefig.dpi": 100,
                               "axes.titleweight": "bold"})


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
