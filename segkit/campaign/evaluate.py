"""The campaign evaluation end to end on plain frames: :func:`evaluate_campaigns` and its
:class:`CampaignResult`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from segkit.campaign.decisions import (
    heterogeneity_table,
    policy_table,
    pool_campaigns,
    pooled_segments,
    power_table,
    qini_curve,
    roi_table,
    targeting_table,
)
from segkit.campaign.metrics import segment_table_of_sums, srm_table_of_counts, srm_warnings
from segkit.campaign.partials import NO_DIMENSION, EvaluationParts, evaluation_parts
from segkit.campaign.prepare import prepare_campaign, retention_flags, segment_labels, send_dates
from segkit.campaign.settings import ALL_SEGMENTS, RESULT_COLUMNS, SEGMENT_DIMENSIONS, CampaignSettings
from segkit.core.errors import ConfigError
from segkit.data.engine import OrderLines

__all__ = [
    "campaign_overview", "CampaignResult", "chosen_dimension", "evaluate_campaigns", "evaluate_parts",
    "label_dimensions", "labelled_rows",
]


def campaign_overview(table: pd.DataFrame, roi: pd.DataFrame, srm: pd.DataFrame, policy: pd.DataFrame,
                      settings: CampaignSettings, sent_on: pd.Series | None = None) -> pd.DataFrame:
    """One row per campaign × sent arm: sizes, primary lift overall, increments, ROI, SRM, targeting.

    ``send_date`` is the campaign's day of sending (``sent_on``, :func:`send_dates`; NaT when unknown).
    """
    s = settings
    keys = ["campaign_id", "arm"]
    prim = table[(table["metric"] == s.primary_metric) & (table["arm"] != s.control_arm)
                 & (table["segment"] == ALL_SEGMENTS)]
    out = prim[keys + ["customers", "customers_c", "value", "value_c", "lift_abs", "lift_ci_low", "lift_ci_high",
                       "p_value", "verdict"]].rename(
        columns={"customers": "customers_sent", "customers_c": "customers_control", "value": "rate_sent",
                 "value_c": "rate_control"})
    r = roi[roi["segment"] == ALL_SEGMENTS][keys + ["incremental_conversions", "incremental_conversions_se",
                                                    "incremental_revenue", "incremental_revenue_ci_low",
                                                    "incremental_revenue_ci_high", "incremental_revenue_se",
                                                    "cost", "roi", "roi_ci_low", "roi_ci_high"]]
    out = out.merge(r, on=keys, how="left")
    srm_any = srm.groupby("campaign_id")["srm"].any().rename("srm")
    out = out.merge(srm_any, left_on="campaign_id", right_index=True, how="left")
    days = sent_on if sent_on is not None else pd.Series(dtype="datetime64[ns]")
    out["send_date"] = pd.to_datetime(out["campaign_id"].astype(str).map(days.to_dict()))
    return out.reset_index(drop=True)


# ============================================================================ orchestration
@dataclass
class CampaignResult:
    """Everything notebook 05 shows (see :func:`evaluate_campaigns`).

    Attributes
    ----------
    settings : CampaignSettings
    segment_by : str
        Segment dimension used (``"none"`` = overall only).
    results : DataFrame
        Long table (the ``campaign_results.csv`` artifact): one row per campaign × segment × arm × metric.
    table : DataFrame
        ``results`` plus working columns (control values, standard errors).
    srm, roi, targeting, policy, qini, power, campaigns : DataFrame
        See :func:`srm_table`, :func:`roi_table`, :func:`targeting_table`, :func:`policy_table`,
        :func:`qini_curve`, :func:`power_table`, :func:`campaign_overview`.
    pooled, pooled_policy : DataFrame
        Segment lifts pooled over the campaigns with the targeting decision for the next send
        (:func:`pool_campaigns`) and the value of that policy (:func:`policy_table`).
    by_dimension : dict of str to DataFrame
        Lift rows (sent arms) of every available segment dimension, for the explorer.
    heterogeneity, pooled_by_dimension : DataFrame
        :func:`heterogeneity_table` and :func:`pooled_segments` over every dimension.
    warnings : list of str
    """

    settings: CampaignSettings
    segment_by: str
    results: pd.DataFrame
    table: pd.DataFrame
    srm: pd.DataFrame
    roi: pd.DataFrame
    targeting: pd.DataFrame
    policy: pd.DataFrame
    qini: pd.DataFrame
    power: pd.DataFrame
    campaigns: pd.DataFrame
    pooled: pd.DataFrame = field(default_factory=pd.DataFrame)
    pooled_policy: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_dimension: dict[str, pd.DataFrame] = field(default_factory=dict)
    heterogeneity: pd.DataFrame = field(default_factory=pd.DataFrame)
    distinct_customers: int = 0
    segment_labels: pd.DataFrame | None = None   # labels as of each send (campaign_id, customer_id, dims)
    pooled_by_dimension: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)
    retention_note: str = ""


def _check_arms(cells: pd.DataFrame, settings: CampaignSettings, source: str) -> list[str]:
    """Refuse a control arm that no campaign has; note campaigns without one or with only it (from the cells
    of :func:`segkit.campaign.metrics.cell_sums`)."""
    pairs = cells[["campaign_id", "arm"]].drop_duplicates().astype(str).sort_values(["campaign_id", "arm"])
    arms_by = pairs.groupby("campaign_id", sort=True)["arm"].agg(list)
    has = arms_by.map(lambda a: settings.control_arm in a)
    if not has.any():
        listing = "; ".join(f"{c}: {', '.join(a)}" for c, a in arms_by.head(5).items())
        raise ConfigError(f"campaign.control_arm = {settings.control_arm!r}: no campaign has an arm named "
                          f"{settings.control_arm!r} (arms found — {listing}) in {source}; use the name of the "
                          "control/holdout arm.")
    msgs = []
    for cid in arms_by.index[~has.to_numpy()]:
        msgs.append(f"Campaign {cid} has no {settings.control_arm!r} arm (arms: {', '.join(arms_by[cid])}): "
                    "its rates are shown but no lift, ROI or targeting can be computed.")
    for cid in arms_by.index[arms_by.map(len) < 2]:
        if has[cid]:
            msgs.append(f"Campaign {cid} has only the control arm: nothing to compare.")
    return msgs


def chosen_dimension(settings: CampaignSettings, available: list[str]) -> str:
    """The dimension the results are segmented by: ``settings.segment_by``, or for ``"auto"`` the first of
    :data:`SEGMENT_DIMENSIONS` among ``available`` (``"none"`` without any)."""
    if settings.segment_by == "auto":
        return available[0] if available else NO_DIMENSION
    return settings.segment_by


def evaluate_campaigns(
    campaign: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    transactions: "pd.DataFrame | OrderLines | None" = None,
    settings: CampaignSettings | None = None,
    as_of: str | pd.Timestamp | None = None,
    source: str = "campaign_clean",
) -> CampaignResult:
    """Evaluate every campaign in ``campaign`` against its control arm, overall and per segment.

    Parameters
    ----------
    campaign : DataFrame
        Canonical campaign rows (``campaign_id, customer_id, arm`` required; ``sent_at,
        delivered, opened, clicked, converted, revenue, unsubscribed, cost`` optional).
    labels : DataFrame, optional
        ``customer_segments.csv``: ``customer_id`` plus segment columns.
    transactions : DataFrame or OrderLines, optional
        Cleaned order lines, for retention (``retention_rate``, :func:`retention_flags`): a frame or
        :class:`segkit.data.engine.OrderLines` (the run's clean file); None = not computed.
    settings : CampaignSettings, optional
        Defaults of ``defaults/campaign.yml`` when None. ``segment_by="auto"`` picks the first of
        :data:`SEGMENT_DIMENSIONS` present in ``labels``.
    as_of : date, optional
        End of the data (exclusive): retention windows ending later are unknown.
    source : str
        Name of the campaign table in messages.

    Returns
    -------
    CampaignResult

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(200)],
    ...                      "arm": ["email", "control"] * 100, "converted": [True, False, False, False] * 50})
    >>> res = evaluate_campaigns(camp)
    >>> res.campaigns[["campaign_id", "arm", "rate_sent", "rate_control", "lift_abs"]]
      campaign_id    arm  rate_sent  rate_control  lift_abs
    0           c  email        0.5           0.0       0.5
    """
    s = (settings or CampaignSettings()).validated()
    available = [d for d in SEGMENT_DIMENSIONS if labels is not None and d in labels.columns]
    dimension = chosen_dimension(s, available)
    prepared = prepare_campaign(campaign, source=source)  # validates before anything else reads it
    _check_arms(prepared[["campaign_id", "arm"]], s, source)  # a wrong control arm stops before retention
    if transactions is not None:
        prepared["retained"] = retention_flags(prepared, transactions, s.retention_days, as_of).to_numpy()
    dims = label_dimensions(dimension, available)
    return evaluate_parts(evaluation_parts(labelled_rows(prepared, labels, dims), dims), s, dimension, available,
                          source, retention=transactions is not None)


def label_dimensions(dimension: str, available: Sequence[str]) -> list[str]:
    """The label columns the evaluation gives its rows: the chosen dimension, then the explorer's."""
    return [d for d in dict.fromkeys([dimension, *available]) if d != NO_DIMENSION]


def labelled_rows(prepared: pd.DataFrame, labels: pd.DataFrame | None, dimensions: Sequence[str]) -> pd.DataFrame:
    """``prepared`` (:func:`segkit.campaign.prepare.prepare_campaign`'s rows) with a column per dimension of
    ``dimensions``: each row's segment label (:func:`segkit.campaign.prepare.segment_labels`, by campaign and
    customer when ``labels`` are labels at each send)."""
    for dim in dimensions:
        prepared[dim] = segment_labels(prepared["customer_id"], labels, dim, campaign_ids=prepared["campaign_id"])
    return prepared


def evaluate_parts(parts: EvaluationParts, settings: CampaignSettings, dimension: str, available: Sequence[str],
                   source: str = "campaign_clean", retention: bool = True) -> CampaignResult:
    """:func:`evaluate_campaigns` from the sums of its rows (:func:`segkit.campaign.partials.evaluation_parts`
    of all the rows, or :meth:`~segkit.campaign.partials.EvaluationParts.merge` of parts of them).

    Parameters
    ----------
    parts : EvaluationParts
        Cell sums of ``dimension`` and every dimension of ``available`` (and ``"none"``).
    settings : CampaignSettings
        Validated settings.
    dimension : str
        The dimension of the results (:func:`chosen_dimension`).
    available : sequence of str
        The dimensions of the explorer (segment columns the run has).
    source : str
        Name of the campaign table in messages.
    retention : bool
        Whether the rows have retention flags (else the result says retention was not computed).
    """
    s = settings
    warn = _check_arms(parts.cells_of(NO_DIMENSION), s, source)
    retention_note = ""
    if retention:
        if parts.retention_unknown:
            retention_note = (f"Retention unknown for {parts.retention_unknown:,} of {parts.rows:,} campaign customers: "
                              f"their {s.retention_days}-day window ends after the data (or no send date).")
            warn.append(retention_note)
    else:
        retention_note = "No transactions given: retention not computed."
    by_dimension: dict[str, pd.DataFrame] = {}
    table = None
    for dim in dict.fromkeys([dimension, *available, NO_DIMENSION]):
        t = segment_table_of_sums(parts.cells_of(dim), s)
        if dim == dimension:
            table = t
        by_dimension[dim] = t[t["arm"] != s.control_arm].reset_index(drop=True)
    counts = parts.cells_of(dimension)[["campaign_id", "segment", "arm", "customers"]]
    srm = srm_table_of_counts(counts, s)
    warn = srm_warnings(srm, s) + warn
    roi = roi_table(table, s)
    targeting = targeting_table(table, roi, s)
    policy = policy_table(targeting)
    qini = qini_curve(table, s)
    power = power_table(table, s)
    campaigns = campaign_overview(table, roi, srm, policy, s, send_dates(parts.first_sent))
    pooled = pool_campaigns(table, roi, s)
    pooled_policy = policy_table(pooled)
    results = table.assign(segment_by=dimension)
    results["customers_c"] = results["customers_c"]
    results = results[list(RESULT_COLUMNS)]
    small = table[table["small_cell"] & (table["segment"] != ALL_SEGMENTS) & (table["arm"] != s.control_arm)]
    n_small = len(small.drop_duplicates(["campaign_id", "segment", "arm"]))
    if n_small:
        warn.append(f"{n_small} segment comparison(s) have fewer than {s.min_cell_size} customers in an arm: too "
                    "few to judge, so they are not tested and never left out of a send.")
    return CampaignResult(settings=s, segment_by=dimension, results=results, table=table, srm=srm, roi=roi,
                          targeting=targeting, policy=policy, qini=qini, power=power, campaigns=campaigns,
                          pooled=pooled, pooled_policy=pooled_policy, by_dimension=by_dimension,
                          heterogeneity=heterogeneity_table(by_dimension, s),
                          distinct_customers=int(parts.customers),
                          pooled_by_dimension=pooled_segments(by_dimension, s), warnings=warn, retention_note=retention_note)
