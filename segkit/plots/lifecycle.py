"""Lifecycle plots: stage sizes, growth, transitions, rates, cohorts, churn risk, CLV, holdout.

Every function takes the tables of :mod:`segkit.lifecycle` (or of its
:class:`~segkit.lifecycle.LifecycleResult`), an optional ``ax``, and returns the titled,
labelled ``Axes``. Stages keep the same colour in every plot (:data:`STAGE_COLORS`).

Examples
--------
>>> import pandas as pd
>>> from segkit.lifecycle import stage_sizes
>>> ax = plot_stage_sizes(stage_sizes(pd.Series(["new", "active", "active"])))
>>> ax.get_title()
'Customers by lifecycle stage'
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap

from segkit.lifecycle import (AGE_BINS, BUYER_STAGES, CLV_CUT_QUANTILE, RISK_EDGES, SNAPSHOT_FREQS, STAGES,
                              LifecycleView, StageThresholds, complete_periods, lifecycle_view)
from segkit.data.distribution import ValueDistribution
from segkit.plots import label, new_axes, plain_log_ticks

__all__ = ["plot_stage_sizes", "plot_stage_counts", "plot_transition_matrix", "plot_period_rates",
    "plot_cohort_heatmap", "plot_gap_distribution", "plot_churn_risk", "plot_clv_distribution",
    "plot_clv_concentration", "plot_holdout_calibration", "plot_one_time_buyers"]


def _money_unit(currency: str) -> str:
    return currency or "currency units"


def _no_data(ax: plt.Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)


STAGE_COLORS: dict[str, tuple[float, float, float]] = dict(
    zip(STAGES, sns.color_palette("colorblind", len(STAGES)))
)


def plot_stage_sizes(sizes: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars: customers per stage (``lifecycle_stage, customers`` of :func:`stage_sizes`)."""
    ax = new_axes(ax)
    data = sizes.iloc[::-1]
    stages = data["lifecycle_stage"].astype(str).to_numpy()
    ax.barh(stages, data["customers"].to_numpy(), color=[STAGE_COLORS.get(s, "grey") for s in stages])
    total = max(int(data["customers"].sum()), 1)
    for y, n in enumerate(data["customers"].to_numpy()):
        ax.annotate(f"{n:,} ({n / total:.0%})", (n, y), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=9)
    ax.margins(x=0.18)
    return label(ax, "Customers by lifecycle stage", "Customers", "Stage")


def plot_stage_counts(snapshots: pd.DataFrame, stages: tuple[str, ...] = BUYER_STAGES,
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Stacked area of customers per stage over the snapshots (``snapshots.parquet``)."""
    ax = new_axes(ax)
    wide = snapshots.pivot(index="snapshot_date", columns="lifecycle_stage", values="customers")
    wide = wide.reindex(columns=[s for s in stages if s in wide.columns]).fillna(0)
    ax.stackplot(wide.index, wide.to_numpy().T, labels=list(wide.columns),
                 colors=[STAGE_COLORS[s] for s in wide.columns], alpha=0.9)
    ax.legend(loc="upper left", fontsize=8, ncol=2, frameon=True)
    return label(ax, "Customers per lifecycle stage over time", "Snapshot date (as of)", "Customers")


def plot_transition_matrix(matrix: pd.DataFrame, shares: bool = True, min_cell_size: int = 1,
                           ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of stage-to-stage moves between consecutive snapshots.

    Parameters
    ----------
    matrix : DataFrame
        Counts from :func:`segkit.lifecycle.transition_counts`.
    shares : bool
        Show row shares (where customers of a stage went) instead of counts.
    min_cell_size : int
        Cells with fewer customers are left blank (privacy of small groups).
    """
    ax = new_axes(ax, figsize=(8.5, 6.0))
    counts = matrix.loc[matrix.sum(axis=1) > 0]
    totals = counts.sum(axis=1)
    values = counts.div(totals, axis=0) if shares else counts.astype(float)
    masked = values.mask(counts < min_cell_size)
    if counts.empty:
        _no_data(ax, "No stage transitions to show: there is only one snapshot (all purchases fall in one "
                     "period), so no customer can be seen moving between stages yet.")
    elif masked.isna().all(axis=None):
        _no_data(ax, f"No stage transitions to show: every cell holds fewer than {min_cell_size:,} customers "
                     "(the privacy threshold).")
    else:
        sns.heatmap(masked, annot=True, fmt=".0%" if shares else ",.0f", cmap="Blues", ax=ax, linewidths=0.5,
                    cbar_kws={"label": "Share of the row's customers" if shares else "Customers"},
                    annot_kws={"fontsize": 8})
    what = "share of customers moving" if shares else "customers moving"
    label(ax, f"Stage transitions between consecutive snapshots ({what})", "Stage at the later snapshot",
          "Stage at the earlier snapshot")
    ax.tick_params(axis="x", rotation=45)
    return ax


def plot_period_rates(rates: pd.DataFrame, freq: str = "M", ax: plt.Axes | None = None) -> plt.Axes:
    """Churn, reactivation and repeat-purchase rates per period (partial periods, and periods whose
    churn window reaches before the data's start, ``window_complete`` False, left out: their churn
    would read 0 %).

    ``freq`` is the snapshot period (``M``, ``W``, ``Q``): the rates are per that period and the
    legend and axis say so.
    """
    ax = new_axes(ax)
    unit = SNAPSHOT_FREQS.get(freq, "period")
    data = complete_periods(rates)
    for column, name in (("churn_rate", "Churn rate"), ("reactivation_rate", "Reactivation rate"),
                         ("repeat_purchase_rate", "Repeat-purchase rate")):
        ax.plot(data["snapshot_date"], 100 * data[column], marker="o", markersize=3, label=f"{name} per {unit}")
    ax.legend(fontsize=8)
    return label(ax, f"Churn, reactivation and repeat purchase per {unit}", f"End of the {unit} (as of)",
                 f"Rate per {unit} (%)")


def plot_cohort_heatmap(matrix: pd.DataFrame, value_label: str, fmt: str = ".0%", scale_from: int = 0,
                        ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of a cohort matrix (:func:`segkit.lifecycle.cohort_matrix`).

    Parameters
    ----------
    matrix : DataFrame
        Cohorts (rows) x months since the first purchase (columns).
    value_label : str
        Names the values with their unit (e.g. "Share of the cohort purchasing").
    fmt : str
        Format of the cell annotations.
    scale_from : int
        Months before this are drawn in grey with their values written in, but left off the
        colour scale: month 0 of retention is 100 % by definition and would otherwise flatten
        every later month into one colour (``scale_from=1``).

    An empty matrix (no cohort, or every cohort under the privacy threshold) or one without a
    month from ``scale_from`` on (all purchases in the acquisition month so far) is drawn as a
    note saying so instead of a heatmap.
    """
    ax = new_axes(ax, figsize=(10.0, max(3.0, 0.3 * len(matrix) + 1.5)))
    months = "Months since first purchase" + (f" (before month {scale_from}: grey, off the colour scale)"
                                               if scale_from > 0 else "")
    title = f"Cohorts: {value_label.lower()}"
    if matrix.empty:
        _no_data(ax, "No cohort to show: there is no acquisition cohort (cohorts starting within one churn "
                     "window of the data's first day are first seen, not acquired, and left out), or every cohort "
                     "has fewer customers than the privacy threshold.")
        return label(ax, title, months, "Acquisition month (first purchase)")
    annotate = len(matrix.columns) <= 18
    early = np.broadcast_to(np.asarray(matrix.columns) < scale_from, matrix.shape)
    values = matrix.to_numpy(dtype=float)
    scaled = values[~early & np.isfinite(values)]
    limits = {"vmin": float(scaled.min()), "vmax": float(scaled.max())} if scaled.size else {}
    if scaled.size:
        sns.heatmap(matrix, mask=early, annot=annotate, fmt=fmt, cmap="viridis", ax=ax,
                    annot_kws={"fontsize": 7},
                    cbar_kws={"label": value_label + (f" (from month {scale_from})" if scale_from > 0 else "")},
                    **limits)
    else:  # said in the title: label() below sets it
        title += (f" (no month from month {scale_from} on yet: nothing after acquisition to measure)"
                  if scale_from > 0 else " (no value to show)")
    if scale_from > 0 and (early & np.isfinite(values)).any():
        sns.heatmap(matrix, mask=~early | ~np.isfinite(values), annot=annotate, fmt=fmt, ax=ax, cbar=False,
                    cmap=ListedColormap(["0.88"]), annot_kws={"fontsize": 7, "color": "0.3"})
    return label(ax, title, months, "Acquisition month (first purchase)")


def plot_gap_distribution(gaps: ValueDistribution | np.ndarray, thresholds: StageThresholds,
                          ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of the days between consecutive purchases, with the stage windows marked.

    ``gaps``: their complete :class:`~segkit.data.distribution.ValueDistribution` (whole days: bounded by
    the data's days), or the gaps themselves.
    """
    ax = new_axes(ax)
    if not isinstance(gaps, ValueDistribution):
        gaps = ValueDistribution.of_values(np.asarray(gaps, dtype=float), column="gap_days")
    if gaps.n:
        gaps = gaps.require_complete("the gap histogram counts every gap")
        upper = max(gaps.linear_quantile(0.99), thresholds.churn_window_days * 1.1)
        ax.hist(np.clip(gaps.values, 0, upper), bins=60, weights=gaps.counts.astype(float), color="0.6")
    for value, name, style in ((thresholds.new_window_days, "new window", ":"),
                               (thresholds.base_interval_days, "base interval", "--"),
                               (thresholds.churn_window_days, "churn window", "-")):
        ax.axvline(value, color="black", linestyle=style, label=f"{name}: {value:,.0f} days")
    ax.legend(fontsize=8)
    return label(ax, "Days between consecutive purchases and the stage windows",
                 "Days between purchases (last bin: longer gaps)", "Gaps")


def _view(lifecycle: LifecycleView | pd.DataFrame, column: str) -> LifecycleView:
    """The view a plot reads: given, or of a whole per-customer frame (:func:`segkit.lifecycle.lifecycle_view`)."""
    return lifecycle if isinstance(lifecycle, LifecycleView) else lifecycle_view(lifecycle, column)


def _bars(ax: plt.Axes, edges: np.ndarray, counts: list[np.ndarray], **style) -> None:
    """``ax.hist`` of already counted bins: one weighted value in the middle of every bin."""
    middle = (edges[:-1] + edges[1:]) / 2
    ax.hist([middle] * len(counts), bins=edges, weights=[np.asarray(c, dtype=float) for c in counts], **style)


def plot_churn_risk(lifecycle: LifecycleView | pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of churn risk = 1 - P(alive) of repeat buyers, stacked by stage.

    One-time buyers are left out: their P(alive) is not BG/NBD's (which is 1 by construction)
    but read from the data by their age, see :func:`plot_one_time_buyers`. Reads the bounded
    :class:`~segkit.lifecycle.LifecycleView` (or the per-customer frame, through one).
    """
    ax = new_axes(ax)
    risk = _view(lifecycle, "clv_12m").counts.risk
    stages = [s for i, s in enumerate(BUYER_STAGES) if risk[i].sum() > 0]
    if stages:
        _bars(ax, RISK_EDGES, [risk[BUYER_STAGES.index(s)] for s in stages], stacked=True, label=stages,
              color=[STAGE_COLORS[s] for s in stages])
        ax.legend(fontsize=8)
    else:
        _no_data(ax, "No P(alive): the BG/NBD model was not fitted (see the warning above).")
    return label(ax, "Churn risk of repeat buyers (BG/NBD)", "Churn risk = 1 - P(alive) (%)", "Customers")


def plot_clv_distribution(lifecycle: LifecycleView | pd.DataFrame, column: str = "clv_12m", currency: str = "",
                          ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of predicted CLV (log-spaced bins) of the live buyers — the population of the
    summary's CLV headline — with their top-decile threshold marked; lapsed customers (win-back
    potential) stacked on top in a lighter shade, named in the legend.

    Reads the bounded :class:`~segkit.lifecycle.LifecycleView` (or the per-customer frame, through one).

    Examples
    --------
    >>> lc = pd.DataFrame({"lifecycle_stage": ["active"] * 9 + ["loyal", "lapsed"],
    ...                    "clv_12m": [10.0] * 9 + [500.0, 2000.0]})
    >>> plot_clv_distribution(lc, currency="EUR").get_legend_handles_labels()[1]
    ['live buyers', 'lapsed customers', 'top 10% of live buyers above 59 EUR']
    """
    ax = new_axes(ax)
    view = _view(lifecycle, column)
    who = "live buyers"
    edges, live, lapsed = view.plan.clv_edges, view.tails.clv_live, view.tails.clv_lapsed
    if edges is not None:
        groups, names, colors = [live], [who], ["0.35"]
        if view.counts.lapsed_positive:
            groups, names, colors = [live, lapsed], [who, "lapsed customers"], ["0.35", "0.78"]
        _bars(ax, edges, groups, stacked=True, color=colors, label=names)
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        cut = view.distributions["live_positive"].linear_quantile(CLV_CUT_QUANTILE)
        ax.axvline(cut, color="black", linestyle="--", label=f"top 10% of {who} above {cut:,.0f} {currency}".rstrip())
        ax.legend(fontsize=8)
    elif not np.isnan(view.counts.clv_range[0]):
        _no_data(ax, f"No {who} with a positive predicted CLV.")
    else:
        _no_data(ax, "No CLV: the models were not fitted (see the warning above).")
    return label(ax, f"Predicted customer lifetime value ({column})",
                 f"Predicted CLV ({_money_unit(currency)}, log scale)", "Customers")


def plot_clv_concentration(lifecycle: LifecycleView | pd.DataFrame, column: str = "clv_12m",
                           ax: plt.Axes | None = None) -> plt.Axes:
    """Cumulative share of predicted CLV against the share of customers (highest first), over the
    live buyers — the population of the summary's CLV headline, so the marked top-decile share is
    the summary's (:meth:`segkit.lifecycle.LifecycleView.clv_overview`). The curve has a point per
    customer up to :data:`~segkit.lifecycle.CURVE_POINTS` live buyers, that many points beyond.

    Examples
    --------
    >>> lc = pd.DataFrame({"lifecycle_stage": ["active"] * 9 + ["loyal", "lapsed"],
    ...                    "clv_12m": [10.0] * 9 + [90.0, 5000.0]})
    >>> plot_clv_concentration(lc).get_legend_handles_labels()[1][1]
    'top 10% of live buyers hold 50%'
    """
    ax = new_axes(ax)
    view = _view(lifecycle, column)
    who = "live buyers"
    n, total = view.clv_total("live")
    if n and total > 0:
        ks, held = view.top_sums("live")
        share_customers, share_value = 100 * ks[1:] / n, 100 * held[1:] / total
        ax.plot(np.r_[0, share_customers], np.r_[0, share_value], label=f"{who} ranked by CLV")
        ax.scatter([100 * ks[0] / n], [100 * held[0] / total], color="black", zorder=3,
                   label=f"top 10% of {who} hold {100 * view.clv_overview('live')['top_decile_share']:.0f}%")
        ax.plot([0, 100], [0, 100], color="0.6", linestyle=":", label="equal value")
        ax.legend(fontsize=8)
    elif view.clv_total("lapsed")[0] and view.clv_total("lapsed")[1] > 0:
        _no_data(ax, f"No {who} with a predicted CLV.")
    else:
        _no_data(ax, "No CLV: the models were not fitted (see the warning above).")
    return label(ax, f"Concentration of predicted CLV ({who})", f"{who.capitalize()}, highest CLV first (%)",
                 f"Share of the {who}' total CLV (%)")


def plot_holdout_calibration(deciles: Mapping[str, pd.DataFrame], days: float = 90.0,
                             ax: plt.Axes | None = None) -> plt.Axes:
    """The holdout check in one figure: the exported chances at the cut-off against who bought after it.

    One point per decile of each prediction (:func:`segkit.clv.decile_calibration`, in
    :attr:`segkit.lifecycle.HoldoutCheck.deciles`), with the 95 % interval of the share who
    bought. The 90-day purchase chance should sit on the diagonal. P(alive) is a different
    quantity: a customer who buys is alive, but one alive need not buy within ``days``, so its
    points sit on or below the diagonal; above the dashed line (P(alive) + 5 points) more
    customers bought than P(alive) allows. Expected purchases are counts, not chances: they are
    in the tables next to the figure.

    Examples
    --------
    >>> t = pd.DataFrame({"decile": [1, 2], "customers": [50, 50], "predicted": [0.1, 0.6],
    ...                   "actual": [0.12, 0.55], "actual_low": [0.05, 0.41], "actual_high": [0.24, 0.68]})
    >>> ax = plot_holdout_calibration({"p_purchase_90d": t, "p_alive": t.assign(predicted=[0.2, 0.9])})
    >>> ax.get_title(), len(ax.containers)
    ('Holdout: predicted at the cut-off vs bought in the next 90 days', 2)
    """
    ax = new_axes(ax)
    title = f"Holdout: predicted at the cut-off vs bought in the next {days:.0f} days"
    series = [("p_purchase_90d", "o", "90-day purchase chance (p_purchase_90d): on the diagonal"),
              ("p_alive", "s", "P(alive): on or below the diagonal")]
    shown = [(deciles.get(name), marker, text) for name, marker, text in series
             if deciles.get(name) is not None and len(deciles.get(name))]
    if not shown:
        _no_data(ax, "No holdout check: see the warnings above.")
        return label(ax, title, "Predicted at the cut-off, mean of the decile (%)", "Bought in the holdout (%)")
    ax.plot([0, 100], [0, 100], color="0.6", linestyle=":", label="predicted = bought")
    ax.plot([0, 95], [5, 100], color="0.4", linestyle="--", linewidth=0.8,
            label="P(alive) + 5 points: P(alive) too low above")
    for table, marker, text in shown:
        x, y = 100 * table["predicted"].to_numpy(dtype=float), 100 * table["actual"].to_numpy(dtype=float)
        error = [y - 100 * table["actual_low"].to_numpy(dtype=float), 100 * table["actual_high"].to_numpy(dtype=float) - y]
        ax.errorbar(x, y, yerr=error, marker=marker, linestyle="-", capsize=2, label=text)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    return label(ax, title, "Predicted at the cut-off, mean of the decile (%)",
                 "Bought in the holdout, with 95 % interval (%)")


def plot_one_time_buyers(curve: pd.DataFrame | None, ages: LifecycleView | np.ndarray | None = None,
                         ax: plt.Axes | None = None) -> plt.Axes:
    """P(alive) of a one-time buyer by age, read from the data, with the one-time buyers' ages.

    ``curve`` from :func:`segkit.lifecycle.one_time_curve`; ``ages`` (days since the purchase of
    today's one-time buyers, or the :class:`~segkit.lifecycle.LifecycleView` that counted them) adds a
    histogram on a second axis.
    """
    ax = new_axes(ax)
    if curve is None or curve.empty:
        _no_data(ax, "No estimate for one-time buyers: the models were not fitted (see the warning above).")
        return label(ax, "One-time buyers: chance of buying again by age", "Days since the first purchase",
                     "Chance (%)")
    if isinstance(ages, LifecycleView):
        edges, counts = ages.plan.age_edges, ages.tails.ages
    elif ages is not None and len(ages):
        counts, edges = np.histogram(np.asarray(ages, dtype=float), bins=AGE_BINS)
    else:
        edges = counts = None
    if edges is not None:
        twin = ax.twinx()
        _bars(twin, edges, [counts], color="0.85")
        twin.set_ylabel("One-time buyers today")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    ax.plot(curve["age_days"], 100 * curve["p_alive"], label="P(alive): bought again later")
    ax.plot(curve["age_days"], 100 * curve["p_purchase_90d"], linestyle="--", label="bought again within 90 days")
    ax.axhline(100, color="0.6", linestyle=":", label="BG/NBD for every one-time buyer")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    return label(ax, "One-time buyers: chance of buying again by age", "Days since the first purchase",
                 "Chance (%)")
