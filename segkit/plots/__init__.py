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
    "figure_alt_text", "show_alt_text", "THEME", "RC", "FIGSIZE", "MONEY_PLACEHOLDER"]

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
    show_alt_text()


def figure_alt_text(fig: "matplotlib.figure.Figure") -> str:
    """Alt text of a figure for the HTML reports: its title and, per plot, the title and what the
    axes show (segkit's plots are titled and labelled, :func:`label`).

    Examples
    --------
    >>> set_theme(); ax = label(new_axes(), "Orders per day", "date", "orders")
    >>> figure_alt_text(ax.figure)
    'Chart: Orders per day (x: date; y: orders).'
    >>> figure_alt_text(new_axes().figure)
    'Chart without a title.'
    """
    parts = [fig.get_suptitle()] if fig.get_suptitle() else []
    for ax in fig.axes:
        axes = "; ".join(f"{name}: {text}" for name, text in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if text)
        title = ax.get_title() or ax.get_title("left")
        if title or axes:
            parts.append(" ".join(p for p in (title, f"({axes})" if axes else "") if p))
    return f"Chart: {' | '.join(parts)}." if parts else "Chart without a title."


def show_alt_text() -> None:
    """In an IPython kernel, give every matplotlib figure shown as PNG its :func:`figure_alt_text`
    (output metadata ``alt``, which segkit's report template writes as the image's ``alt``); outside
    IPython, nothing. Called by :func:`set_theme`."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return
    shell = get_ipython()
    if shell is None:
        return
    import importlib

    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    if backend.startswith("module://"):  # the inline backend registers its PNG formatter when first loaded
        importlib.import_module(backend.removeprefix("module://"))
    png = shell.display_formatter.formatters["image/png"]
    draw = png.lookup_by_type(Figure) if Figure in png.type_printers else None
    if draw is None or getattr(draw, "segkit_alt_text", False):
        return

    def with_alt(fig: Figure) -> tuple[bytes | None, dict[str, str]]:
        return draw(fig), {"alt": figure_alt_text(fig)}

    with_alt.segkit_alt_text = True  # type: ignore[attr-defined]
    png.for_type(Figure, with_alt)


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
