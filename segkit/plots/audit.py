"""Plots of the data audit (``notebooks/01_data_audit.ipynb``).

Each function takes the audit's tables (see :class:`segkit.audit.AuditResult`), draws on
``ax`` (or a new Axes) and returns the Axes, titled and with units in the axis labels.

Examples
--------
>>> import pandas as pd
>>> daily = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=3, freq="D"), "orders": [4, 0, 6],
...                       "rolling_7d": [4.0, 2.0, 3.3], "is_gap": [False, True, False],
...                       "is_spike": [False, False, True]})
>>> plot_daily_volume(daily).get_title()
'Daily orders'
"""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from segkit.plots import label, new_axes, plain_log_ticks

__all__ = ["plot_daily_volume", "plot_outlier_rule"]

GAP_COLOR = "#d62728"
SPIKE_COLOR = "#ff7f0e"


def plot_daily_volume(daily: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Orders per day, their 7-day rolling mean, and the gap and spike days marked.

    Parameters
    ----------
    daily : DataFrame
        ``date, orders, rolling_7d, is_gap, is_spike`` (:func:`segkit.data.auditfacts.volume_from_counts`).
    ax : Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    Axes
    """
    ax = new_axes(ax, figsize=(10.0, 4.5))
    if daily.empty:
        ax.text(0.5, 0.5, "no orders", ha="center", va="center", transform=ax.transAxes)
        return label(ax, "Daily orders", "Date (day)", "Orders per day (count)")
    sns.lineplot(data=daily, x="date", y="orders", ax=ax, linewidth=0.7, alpha=0.55, label="orders per day")
    sns.lineplot(data=daily, x="date", y="rolling_7d", ax=ax, linewidth=2.0, label="7-day rolling mean")
    gaps = daily[daily["is_gap"]]
    if len(gaps):
        for day in gaps["date"]:
            ax.axvspan(day, day + pd.Timedelta(days=1), color=GAP_COLOR, alpha=0.25, linewidth=0)
        ax.scatter(gaps["date"], np.zeros(len(gaps)), color=GAP_COLOR, marker="x", zorder=3,
                   label=f"gap: no orders where expected ({len(gaps)} days)")
    spikes = daily[daily["is_spike"]]
    if len(spikes):
        ax.scatter(spikes["date"], spikes["orders"], color=SPIKE_COLOR, marker="^", s=40, zorder=3,
                   label=f"spike ({len(spikes)} days)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize="small")
    return label(ax, "Daily orders", "Date (day)", "Orders per day (count)")


def plot_outlier_rule(values: pd.Series | np.ndarray, rule: Mapping[str, Any], ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of positive values on a log axis with the robust outlier bounds drawn.

    Parameters
    ----------
    values : array-like
        Order values or line quantities (non-positive values are not shown).
    rule : mapping
        One row of ``AuditResult.outlier_rules``: ``measure, unit, median, k, min_fold, low, high,
        flagged``.
    ax : Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    Axes

    Examples
    --------
    >>> rule = {"measure": "quantity", "unit": "units per line", "median": 1.0, "k": 5.0, "min_fold": 10.0,
    ...         "low": 0.1, "high": 10.0, "flagged": 1}
    >>> ax = plot_outlier_rule(pd.Series([1, 1, 2, 3, 300]), rule)
    >>> ax.get_xlabel()
    'Quantity (units per line, log scale)'
    """
    ax = new_axes(ax)
    x = pd.Series(np.asarray(values, dtype="float64"))
    x = x[np.isfinite(x) & (x > 0)]
    measure = str(rule["measure"])
    title = f"{measure.capitalize()}: robust outlier rule"
    xlabel = f"{measure.capitalize()} ({rule['unit']}, log scale)"
    if x.empty:
        ax.text(0.5, 0.5, "no positive values", ha="center", va="center", transform=ax.transAxes)
        return label(ax, title, xlabel, "Count")
    sns.histplot(x=x, log_scale=True, bins=min(60, max(10, x.nunique())), ax=ax, color="#4c72b0")
    ax.axvline(rule["median"], color="black", linestyle=":", label=f"median {rule['median']:,.4g}")
    bounds = (f"median ×/÷ exp({rule['k']:g}·MAD of logs),\nat least ×/÷ {rule['min_fold']:g}"
              if "min_fold" in rule else f"median ±{rule['k']:g}·MAD (log scale)")
    for i, bound in enumerate((rule["low"], rule["high"])):
        ax.axvline(bound, color=GAP_COLOR, linestyle="--",
                   label=f"outlier bounds: {bounds}" if i == 0 else None)
    ax.set_yscale("symlog", linthresh=1)
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.plot([], [], " ", label=f"{int(rule['flagged']):,} flagged (kept)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return label(ax, title, xlabel, "Count (symlog scale)")
