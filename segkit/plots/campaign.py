"""Campaign evaluation plots (notebook 05): arm rates, lift forest, sample-ratio check, uplift curve.

Each function takes a table of :class:`segkit.campaign.CampaignResult` and ``ax=None`` and returns
the Axes (titled, axes labelled with units); none calls ``plt.show()``.

Examples
--------
>>> import pandas as pd
>>> from segkit.campaign import evaluate_campaigns
>>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(40)],
...                      "arm": ["email", "control"] * 20, "converted": [1, 0, 0, 0] * 10})
>>> ax = plot_lift_forest(evaluate_campaigns(camp).table, "conversion_rate")
>>> ax.get_xlabel()
'Lift vs control (percentage points)'
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from segkit.campaign import ALL_SEGMENTS, METRIC_BY_NAME
from segkit.plots import label, new_axes

__all__ = ["plot_arm_rates", "plot_lift_forest", "plot_srm", "plot_qini"]

COLORS = {"better": "#029e73", "worse": "#d55e00", "unclear": "#7f7f7f", "small": "#bbbbbb"}


def _tall_axes(ax: plt.Axes | None, rows: int) -> plt.Axes:
    """``ax``, or a new Axes tall enough for ``rows`` labelled rows."""
    return new_axes(ax, figsize=(8.0, max(3.0, 0.28 * rows + 1.4)) if ax is None else None)


def _separate(ax: plt.Axes, groups: pd.Series) -> None:
    """Thin horizontal lines between consecutive row groups (e.g. campaigns)."""
    change = np.flatnonzero(groups.to_numpy()[1:] != groups.to_numpy()[:-1])
    for i in change:
        ax.axhline(i + 0.5, color="#999999", lw=0.6)


def _without_small_groups(rows: pd.DataFrame, counts: pd.Series, min_cell_size: int) -> tuple[pd.DataFrame, str]:
    """``rows`` whose count is at least ``min_cell_size`` (the privacy threshold of the report
    tables), and a note on how many were left out ("" when none)."""
    small = (counts.fillna(0).to_numpy(float) < min_cell_size)
    if not small.any():
        return rows.reset_index(drop=True), ""
    note = (f"Not shown: {int(small.sum())} row(s) with fewer than {min_cell_size} customers in an arm "
            "(privacy.min_cell_size), as in the tables.")
    return rows[~small].reset_index(drop=True), note


def _footnote(ax: plt.Axes, note: str) -> None:
    """A small note under the x-axis label (kept in the saved figure by ``bbox_inches="tight"``)."""
    if note:
        ax.annotate(note, xy=(0, 0), xycoords="axes fraction", xytext=(0, -48), textcoords="offset points",
                    ha="left", va="top", fontsize="small", color="#555555")


def _legend_outside(ax: plt.Axes, **kwargs) -> None:
    """Legend to the right of the plot area, where it covers no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _row_labels(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """``"campaign · segment"`` labels, leaving out columns with a single value."""
    varying = [c for c in columns if frame[c].nunique() > 1] or columns[-1:]
    return [" · ".join(str(v) for v in row) for row in frame[varying].itertuples(index=False)]


def plot_arm_rates(overview: pd.DataFrame, campaign_id: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Rates per arm of one campaign (all customers) with their 95% Wilson intervals.

    ``overview`` is :func:`segkit.campaign.arm_overview`; revenue (not a rate) is left out.

    Examples
    --------
    >>> ov = pd.DataFrame({"campaign_id": "c", "arm": ["control", "email"], "metric": "conversion_rate",
    ...                    "value": [0.05, 0.07], "ci_low": [0.04, 0.06], "ci_high": [0.06, 0.08]})
    >>> plot_arm_rates(ov).get_title()
    'Campaign c: rates by arm (95% Wilson intervals)'
    """
    ax = new_axes(ax)
    campaign_id = campaign_id if campaign_id is not None else str(overview["campaign_id"].iloc[0])
    data = overview[(overview["campaign_id"].astype(str) == str(campaign_id))
                    & (overview["metric"].map(lambda m: METRIC_BY_NAME[m].kind) == "proportion")
                    & overview["value"].notna()]
    metrics = list(dict.fromkeys(data["metric"]))
    arms = list(dict.fromkeys(data["arm"]))
    height = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        d = data[data["arm"] == arm].set_index("metric").reindex(metrics)
        y = np.arange(len(metrics)) + (i - (len(arms) - 1) / 2) * height
        err = np.clip(np.vstack([d["value"] - d["ci_low"], d["ci_high"] - d["value"]]) * 100, 0, None)
        ax.barh(y, d["value"] * 100, height=height * 0.9, xerr=np.nan_to_num(err), label=str(arm),
                capsize=2, error_kw={"elinewidth": 1})
    ax.set_yticks(np.arange(len(metrics)), [METRIC_BY_NAME[m].label for m in metrics])
    ax.invert_yaxis()
    ax.legend(title="Arm", loc="best")
    return label(ax, f"Campaign {campaign_id}: rates by arm (95% Wilson intervals)", "Rate (%)", "")


def plot_lift_forest(table: pd.DataFrame, metric: str, control_arm: str = "control", alpha: float = 0.05,
                     ax: plt.Axes | None = None, min_cell_size: int = 0) -> plt.Axes:
    """Forest plot of the lift against control per campaign × arm × segment for ``metric``.

    Points are the lifts, lines their 95% intervals; green/orange = significantly better/worse
    after the multiple-testing correction, grey = no clear difference, hollow = small cell.
    Rows whose smaller arm (``smallest_arm``, as in the pooled table, else the smaller of
    ``customers`` and ``customers_c``) has fewer than ``min_cell_size`` customers — the report's
    privacy threshold — are left out, with a note under the plot.
    """
    m = METRIC_BY_NAME[metric]
    rows = table[(table["metric"] == metric) & (table["arm"] != control_arm) & table["lift_abs"].notna()]
    counts = (rows["smallest_arm"] if "smallest_arm" in rows
              else np.minimum(rows["customers"], rows["customers_c"].fillna(0)))
    rows, note = _without_small_groups(rows, counts, min_cell_size)
    ax = _tall_axes(ax, len(rows))
    _footnote(ax, note)
    scale = 100.0 if m.kind == "proportion" else 1.0
    labels = _row_labels(rows, ["campaign_id", "arm", "segment"])
    y = np.arange(len(rows))
    for i, r in rows.iterrows():
        significant = pd.notna(r["p_adjusted"]) and r["p_adjusted"] < alpha
        good = (r["lift_abs"] > 0) == m.higher_is_better
        color = COLORS["small"] if r["small_cell"] else (
            COLORS["better" if good else "worse"] if significant else COLORS["unclear"])
        ax.plot([r["lift_ci_low"] * scale, r["lift_ci_high"] * scale], [i, i], color=color, lw=2)
        ax.plot(r["lift_abs"] * scale, i, "o", color=color, mfc="white" if r["small_cell"] else color,
                ms=7 if r["segment"] == ALL_SEGMENTS else 5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, labels)
    _separate(ax, rows["campaign_id"].astype(str) + "|" + rows["arm"].astype(str))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    unit = "percentage points" if m.kind == "proportion" else "per customer"
    return label(ax, f"{m.label}: lift vs control (95% intervals)", f"Lift vs control ({unit})", "")


def plot_srm(srm: pd.DataFrame, srm_alpha: float = 0.001, ax: plt.Axes | None = None,
             min_cell_size: int = 0) -> plt.Axes:
    """Observed vs expected control share per campaign × segment; mismatches in orange.

    The grey band is the range a random split stays in with probability ``1 - srm_alpha``
    (normal approximation to the binomial, for rows that were tested): a point outside it is a
    sample-ratio mismatch. Rows whose smallest arm (``smallest_arm``, else ``customers``) has
    fewer than ``min_cell_size`` customers are left out with a note, as in the report's table.
    The legend sits outside the plot area.

    Examples
    --------
    >>> t = pd.DataFrame({"campaign_id": "c", "segment": ["All customers", "A"], "control_share": [0.21, 0.3],
    ...                   "expected_control_share": [0.2, 0.2], "customers": [1000, 400], "p_value": [0.4, 1e-6],
    ...                   "srm": [False, True]})
    >>> plot_srm(t).get_xlabel()
    'Share of customers in the control arm (%)'
    """
    rows, note = _without_small_groups(srm, srm["smallest_arm"] if "smallest_arm" in srm else srm["customers"],
                                       min_cell_size)
    ax = _tall_axes(ax, len(rows))
    _footnote(ax, note)
    y = np.arange(len(rows))
    colors = np.where(rows["srm"].to_numpy(bool), COLORS["worse"], COLORS["unclear"])
    p, n = rows["expected_control_share"].to_numpy(float), rows["customers"].to_numpy(float)
    half = stats.norm.isf(srm_alpha / 2) * np.sqrt(p * (1 - p) / n) * 100
    tested = rows["p_value"].notna().to_numpy() if "p_value" in rows else np.ones(len(rows), bool)
    ax.hlines(y[tested], np.maximum(p * 100 - half, 0)[tested], np.minimum(p * 100 + half, 100)[tested],
              color="#cccccc", lw=6,
              label=f"random split ({1 - srm_alpha:.1%})")
    ax.scatter(rows["expected_control_share"] * 100, y, marker="|", s=200, color="black", label="expected")
    ax.scatter(rows["control_share"] * 100, y, color=colors, zorder=3, label="observed")
    ax.set_yticks(y, _row_labels(rows, ["campaign_id", "segment"]))
    _separate(ax, rows["campaign_id"].astype(str))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    _legend_outside(ax)
    return label(ax, "Sample-ratio check: control share", "Share of customers in the control arm (%)", "")


def plot_qini(qini: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Uplift (Qini) curve per campaign × arm: cumulative incremental outcomes vs share targeted.

    Segment names are written at the points when there is a single curve. The legend sits
    outside the plot area, so long campaign names cover no curve.

    Examples
    --------
    >>> q = pd.DataFrame({"campaign_id": "c", "arm": "email", "metric": "conversion_rate", "segment": ["", "B", "A"],
    ...                   "share_targeted": [0, 0.35, 1], "incremental": [0, 7, 5.7], "random": [0, 2.0, 5.7]})
    >>> plot_qini(q).get_ylabel()
    'Cumulative incremental conversions (customers)'
    """
    ax = new_axes(ax)
    curves = list(qini.groupby(["campaign_id", "arm"], sort=True))
    for (cid, arm), g in curves:
        line, = ax.plot(g["share_targeted"] * 100, g["incremental"], marker="o", label=f"{cid} · {arm}")
        ax.plot(g["share_targeted"] * 100, g["random"], ls="--", color=line.get_color(), alpha=0.6)
        if len(curves) == 1:
            for _, r in g.iloc[1:].iterrows():
                ax.annotate(str(r["segment"]), (r["share_targeted"] * 100, r["incremental"]), fontsize=8,
                            xytext=(3, -10), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.8)
    if len(qini):
        _legend_outside(ax, title="Campaign · arm (dashed: random)")
    metric = str(qini["metric"].iloc[0]) if len(qini) else "conversion_rate"
    ylabel = {"conversion_rate": "Cumulative incremental conversions (customers)",
              "retention_rate": "Cumulative incremental retained (customers)",
              "revenue_per_recipient": "Cumulative incremental revenue (currency)"}[metric]
    return label(ax, "Uplift curve: segments ranked by estimated lift", "Customers targeted (%)", ylabel)
