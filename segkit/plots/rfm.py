"""Plots of notebook 02 (RFM): distributions, the R×F grid, segment shares, the Pareto curve.

Every function takes ``ax=None`` and returns the ``Axes`` (titled, axes labelled with units).

Examples
--------
>>> import pandas as pd
>>> rfm = pd.DataFrame({"r_score": [5, 5, 1], "f_score": [5, 4, 1],
...                     "rfm_segment": ["Champions", "Champions", "Lost"]})
>>> ax = plot_rf_grid(rfm)
>>> ax.get_title()
'Customers by recency and frequency score'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from segkit.plots import label, new_axes
from segkit.rfm import Histogram, rf_cells

if TYPE_CHECKING:
    from segkit.rfm import RFMScorer

__all__ = ["plot_distribution", "plot_rf_grid", "plot_segment_shares", "plot_pareto"]

UNITS = {
    "recency_days": "Recency (days since last purchase)",
    "frequency": "Frequency (purchase orders)",
    "monetary_total": "Net revenue per customer (currency)",
    "monetary_avg": "Net revenue per purchase order (currency)",
    "tenure_days": "Tenure (days since first purchase)",
    "f_score": "F score (1 = fewest orders)",
    "r_score": "R score (1 = longest ago)",
    "m_score": "M score (1 = lowest net revenue)",
}


def plot_distribution(
    rfm: pd.DataFrame | Histogram,
    column: str,
    edges: Sequence[float] | None = None,
    clip_quantile: float = 0.99,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Histogram of one RFM metric, with the score bounds as dashed lines.

    Whole-number metrics with few values (frequency) get one bar per value. Values above the
    ``clip_quantile`` are gathered in the last bar so a long tail does not squash the plot
    (the title says so). ``rfm`` is the table, or the counts already made of its ``column``
    (:class:`segkit.rfm.Histogram`, e.g. ``RFMOverview.histograms[column]``): the same figure.

    Examples
    --------
    >>> rfm = pd.DataFrame({"frequency": [1, 1, 1, 2, 3, 12]})
    >>> plot_distribution(rfm, "frequency", edges=[2, 3]).get_xlabel()
    'Frequency (purchase orders)'
    """
    ax = new_axes(ax)
    counts = rfm if isinstance(rfm, Histogram) else Histogram.of_values(rfm[column], column, clip_quantile)
    top, integer = counts.top, counts.integer
    if integer:
        ax.bar(counts.bar_values, counts.bar_counts, width=0.8, color=sns.color_palette()[0])
    else:  # the bars numpy's 40 equal bins give, drawn from their counts
        ax.hist(counts.bin_edges[:-1], bins=counts.bin_edges, weights=counts.bin_counts, color=sns.color_palette()[0])
    for edge in edges if edges is not None else []:
        if edge <= top:
            ax.axvline(edge - (0.5 if integer else 0.0), color="0.3", linestyle="--", linewidth=1)
    name = UNITS.get(column, column)
    title = f"Distribution of {name.split(' (')[0].lower()}"
    if counts.clipped:
        title += f" ({counts.clipped:,} above {top:,.0f} shown at {top:,.0f})"
    label(ax, title, name, "Customers")
    return ax


def plot_rf_grid(rfm: pd.DataFrame, x: str = "f_score", ax: plt.Axes | None = None, *,
                 scorer: RFMScorer | None = None, cells: pd.DataFrame | None = None) -> plt.Axes:
    """Heatmap of customers by R score (rows, most recent on top) and ``x`` (F score).

    Each cell shows its number of customers and, on grids of up to 6 × 6 scores, its most
    common segment (a cell can hold several segments because segments also depend on M).

    The levels are the scores that can occur: with the fitted ``scorer`` (an
    :class:`~segkit.rfm.RFMScorer`), the scores of its groups (1..bins, fewer when ties leave
    fewer groups); without it, 1 up to the highest score in ``rfm``. ``cells`` are the customers
    per (``r_score``, ``x``, ``rfm_segment``) already counted (:func:`segkit.rfm.rf_cells`, e.g.
    ``RFMOverview.cells``); then ``rfm`` is not read (pass None).

    Examples
    --------
    >>> rfm = pd.DataFrame({"r_score": [3, 3, 1], "f_score": [2, 2, 1],
    ...                     "rfm_segment": ["About To Sleep"] * 2 + ["Lost"]})
    >>> ax = plot_rf_grid(rfm)
    >>> sorted(t.get_text() for t in ax.texts if t.get_text())
    ['1\\nLost', '2\\nAbout To Sleep']
    >>> [t.get_text() for t in ax.get_yticklabels()], [t.get_text() for t in ax.get_xticklabels()]
    (['3', '2', '1'], ['1', '2'])
    """
    ax = new_axes(ax, figsize=(9.0, 6.0))
    cells = rf_cells(rfm, x) if cells is None else cells
    if scorer is not None:
        levels_r = sorted(set(scorer.level_scores("r").tolist()))
        levels_x = sorted(set(scorer.level_scores(x[0]).tolist()))
    else:
        levels_r = range(1, int(cells["r_score"].max()) + 1)
        levels_x = range(1, int(cells[x].max()) + 1)
    counts = (cells.groupby(["r_score", x])["customers"].sum().unstack(fill_value=0)
              .reindex(index=levels_r, columns=levels_x, fill_value=0).astype("int64"))
    counts.index.name, counts.columns.name = "r_score", x
    dominant = (cells.rename(columns={"customers": "n"})
                .sort_values(["n", "rfm_segment"], ascending=[False, True], kind="mergesort")
                .drop_duplicates(["r_score", x]).set_index(["r_score", x])["rfm_segment"])
    named = max(len(levels_r), len(levels_x)) <= 6
    text = counts.astype(object).copy()
    for r in counts.index:
        for c in counts.columns:
            n = counts.loc[r, c]
            text.loc[r, c] = (f"{n:,}\n{dominant.get((r, c), '')}" if named else f"{n:,}") if n else ""
    counts, text = counts.iloc[::-1], text.iloc[::-1]
    sns.heatmap(counts, annot=text.to_numpy(), fmt="", cmap="Blues", cbar_kws={"label": "Customers"},
                annot_kws={"fontsize": 7}, linewidths=0.5, ax=ax)
    label(ax, "Customers by recency and frequency score", UNITS.get(x, x),
          f"R score ({max(levels_r)} = most recent)")
    return ax


def plot_segment_shares(segments: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Share of customers against share of net revenue per segment (horizontal bars).

    Examples
    --------
    >>> seg = pd.DataFrame({"segment": ["Champions", "Lost"], "share_of_customers": [0.2, 0.8],
    ...                     "share_of_revenue": [0.7, 0.3]})
    >>> plot_segment_shares(seg).get_xlabel()
    'Share (%)'
    """
    ax = new_axes(ax)
    long = segments.melt(id_vars="segment", value_vars=["share_of_customers", "share_of_revenue"],
                         var_name="measure", value_name="share")
    long["share"] = 100 * long["share"]
    long["measure"] = long["measure"].map({"share_of_customers": "Customers", "share_of_revenue": "Net revenue"})
    sns.barplot(data=long, y="segment", x="share", hue="measure", orient="h", ax=ax)
    ax.legend(title="")
    label(ax, "Segments: share of customers and of net revenue", "Share (%)", "")
    return ax


def plot_pareto(pareto: pd.DataFrame, top_share: float = 0.2, top_share_revenue: float | None = None,
                ax: plt.Axes | None = None) -> plt.Axes:
    """Cumulative share of net revenue against share of customers, best customers first.

    The marker at ``top_share`` is labelled with ``top_share_revenue`` (the exact figure,
    :attr:`segkit.rfm.RFMOverview.top_share_revenue`) or, if not given, read off the curve.

    Examples
    --------
    >>> curve = pd.DataFrame({"customer_share": [0, 0.5, 1], "revenue_share": [0, 0.9, 1]})
    >>> plot_pareto(curve).get_ylabel()
    'Cumulative share of net revenue (%)'
    """
    ax = new_axes(ax)
    xs, ys = 100 * pareto["customer_share"], 100 * pareto["revenue_share"]
    ax.plot(xs, ys, label="Customers, highest net revenue first")
    ax.plot([0, 100], [0, 100], color="0.6", linestyle=":", label="Every customer equal")
    if top_share_revenue is not None:
        at = 100 * float(top_share_revenue)
    else:
        at = float(np.interp(100 * top_share, xs, ys)) if ys.notna().all() else np.nan
    if not np.isnan(at):
        ax.axvline(100 * top_share, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"top {100 * top_share:.0f}% → {at:.0f}% of revenue", (100 * top_share, at),
                    xytext=(8, -14), textcoords="offset points")
    ax.legend(loc="lower right")
    label(ax, "Revenue concentration (Pareto curve)", "Customers (%)", "Cumulative share of net revenue (%)")
    return ax
