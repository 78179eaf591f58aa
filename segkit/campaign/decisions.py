"""What to do next from a campaign's lifts: ROI, which segments to target, the policy's value,
the uplift (Qini) curve, lifts pooled over campaigns and the sizes the next test needs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from segkit.campaign.settings import ALL_SEGMENTS, METRIC_BY_NAME, CampaignSettings
from segkit.campaign.stats import (
    CORRECTION_LABELS,
    adjust_pvalues,
    p_text,
    random_effects,
    sample_size_means,
    sample_size_proportions,
)

__all__ = [
    "roi_table", "targeting_table", "decide_targets", "pool_campaigns", "lift_variance",
    "heterogeneity_table", "pooled_segments", "policy_table", "qini_curve", "power_table",
]


# ============================================================================ ROI, targeting, uplift curve, power
def _lift_rows(table: pd.DataFrame, metric: str, settings: CampaignSettings) -> pd.DataFrame:
    keys = ["campaign_id", "segment", "arm"]
    rows = table[(table["metric"] == metric) & (table["arm"] != settings.control_arm)]
    return rows.set_index(keys)


def roi_table(table: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Incremental conversions and revenue, cost, ROI per campaign × sent arm × segment.

    ``cost`` = ``cost_per_send`` × customers in the sent arm when set, else the sum of the
    ``cost`` column over them (NaN when neither exists). Every increment is lift × customers of
    the sent arm (per send). ``roi = (margin × incremental_revenue - cost) / cost`` with
    ``margin = gross_margin`` when configured, else 1 (``roi_basis`` = "revenue-based, not
    profit"), with the interval of the incremental revenue carried through (cost is fixed).
    ``cost_per_incremental_conversion`` and ``cost_per_incremental_retained`` are empty when the
    increment is not positive.

    Examples
    --------
    >>> from segkit.campaign import arm_metrics, compare_arms, finish_comparisons, prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcdefgh"),
    ...     "arm": ["email"] * 4 + ["control"] * 4, "converted": [1, 1, 0, 0, 1, 0, 0, 0],
    ...     "revenue": [20.0, 20.0, 0, 0, 10.0, 0, 0, 0]}))
    >>> s = CampaignSettings(min_cell_size=1, cost_per_send=1.0)
    >>> r = roi_table(finish_comparisons(compare_arms(arm_metrics(prep), s), s), s)
    >>> r[["incremental_conversions", "incremental_revenue", "cost", "roi"]]
       incremental_conversions  incremental_revenue  cost  roi
    0                      1.0                 30.0   4.0  6.5
    """
    s = settings
    anchor = table[(table["arm"] != s.control_arm)].drop_duplicates(["campaign_id", "segment", "arm"])
    out = anchor[["campaign_id", "segment", "arm", "customers", "customers_c", "cost", "small_cell"]].copy()
    out = out.rename(columns={"customers": "customers_sent", "customers_c": "customers_control"})
    out = out.set_index(["campaign_id", "segment", "arm"])
    if s.cost_per_send is not None:
        out["cost"] = s.cost_per_send * out["customers_sent"]
    n = out["customers_sent"].astype(float)
    for metric, prefix in (("conversion_rate", "incremental_conversions"), ("revenue_per_recipient", "incremental_revenue"),
                           ("retention_rate", "incremental_retained")):
        lift = _lift_rows(table, metric, s).reindex(out.index)
        out[prefix] = lift["lift_abs"] * n
        out[f"{prefix}_ci_low"] = lift["lift_ci_low"] * n
        out[f"{prefix}_ci_high"] = lift["lift_ci_high"] * n
        out[f"{prefix}_se"] = lift["lift_se"] * n
        if metric == "retention_rate":
            out["retained"] = lift["count"]
        if metric == "conversion_rate":
            out["conversions"] = lift["count"]
    cost = out["cost"].where(out["cost"] > 0)
    margin = 1.0 if s.gross_margin is None else s.gross_margin
    out["roi_basis"] = "revenue-based, not profit" if s.gross_margin is None else f"gross margin {s.gross_margin:.0%}"
    with np.errstate(divide="ignore", invalid="ignore"):
        out["roi"] = (margin * out["incremental_revenue"] - cost) / cost
        out["roi_ci_low"] = (margin * out["incremental_revenue_ci_low"] - cost) / cost
        out["roi_ci_high"] = (margin * out["incremental_revenue_ci_high"] - cost) / cost
        out["incremental_revenue_per_1000_sends"] = out["incremental_revenue"] / n.where(n > 0) * 1000
        out["cost_per_incremental_conversion"] = (cost / out["incremental_conversions"]).where(
            out["incremental_conversions"] > 0)
        out["cost_per_retained"] = (cost / out["retained"]).where(out["retained"] > 0)
        out["cost_per_incremental_retained"] = (cost / out["incremental_retained"]).where(out["incremental_retained"] > 0)
    out["cost_per_send"] = out["cost"] / n.where(n > 0)
    return out.reset_index()


def targeting_table(table: pd.DataFrame, roi: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Send-or-not per campaign × sent arm × segment, by ``settings.targeting_rule``.

    Columns: ``customers`` (both arms: the segment's size in this campaign), ``sends``
    (customers of the sent arm: the basis of every incremental number), the primary lift
    and its interval, ``incremental_revenue_per_customer`` (revenue lift) with its standard
    error, ``cost_per_send``, ``small_cell``, ``send`` and ``reason``. Small cells and segments
    without a measurable lift are never sent to.

    Examples
    --------
    >>> from segkit.campaign import arm_metrics, compare_arms, finish_comparisons, prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(400)],
    ...     "arm": ["email", "control"] * 200, "segment": None,
    ...     "converted": np.r_[np.tile([1, 0], 60), np.zeros(280, int)]}),
    ...     segments=pd.Series(["A"] * 200 + ["B"] * 200))
    >>> s = CampaignSettings()
    >>> t = finish_comparisons(compare_arms(arm_metrics(prep), s), s)
    >>> targeting_table(t, roi_table(t, s), s)[["segment", "sends", "lift_abs", "send"]]
      segment  sends  lift_abs  send
    0       A    100       0.6  True
    1       B    100       0.0  True
    """
    s = settings
    prim = table[(table["metric"] == s.primary_metric) & (table["arm"] != s.control_arm)]
    segmented = (prim["segment"] != ALL_SEGMENTS).groupby([prim["campaign_id"], prim["arm"]]).transform("any")
    # per segment; a campaign without segments (segment_by = none) is one segment: all customers
    prim = prim[(prim["segment"] != ALL_SEGMENTS) | ~segmented]
    keys = ["campaign_id", "segment", "arm"]
    out = prim[keys + ["customers", "customers_c", "lift_abs", "lift_ci_low", "lift_ci_high", "p_value", "p_adjusted",
                       "family_size", "small_cell"]].copy()
    out["sends"] = out["customers"]
    out["customers"] = out["customers"] + out["customers_c"].fillna(0).astype(np.int64)
    out = out.drop(columns="customers_c").set_index(keys)
    rev = _lift_rows(table, "revenue_per_recipient", s).reindex(out.index)
    out["incremental_revenue_per_customer"] = rev["lift_abs"]
    out["incremental_revenue_se"] = rev["lift_se"]
    out["cost_per_send"] = roi.set_index(keys)["cost_per_send"].reindex(out.index)
    return decide_targets(out, s).reset_index()


def decide_targets(frame: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Add ``sure_gain``, ``send`` and ``reason``: the default is to send; a segment is left out only
    with evidence that a send there is worth less than it costs.

    ``frame`` has ``lift_abs, lift_ci_low, lift_ci_high`` (primary metric), ``small_cell``,
    ``incremental_revenue_per_customer`` and ``incremental_revenue_se`` (revenue lift per
    customer of the sent arm, i.e. per send; NaN without revenue data) and ``cost_per_send``
    (NaN when unknown = 0). Rules (``settings.targeting_rule``):

    - ``evidence`` (default): leave a segment out when the upper ``1 - alpha`` bound of its
      incremental revenue per send is below the cost per send (without revenue data: when the
      upper bound of the primary lift is below 0). Everything else is sent.
    - ``expected_value``: leave out where the *estimated* incremental revenue per send is below
      the cost per send (risk-neutral; more exclusions on noise).

    Either way every excluded segment has a negative estimated net value per send, so the
    policy's estimated value is never below sending to all. Segments too small to judge, or
    without a measurable lift, are sent (no evidence against them).

    ``sure_gain`` is the same call as the verdicts': the primary lift is positive and its
    p-value *after the correction across segments* (optional columns ``p_adjusted`` and
    ``family_size``, the number of segments corrected for; without them a single test, judged
    by its interval) is below ``alpha``. A segment whose unadjusted interval excludes 0 but
    whose adjusted p-value does not is no sure gain, and ``reason`` says so.

    Examples
    --------
    >>> f = pd.DataFrame({"lift_abs": [0.02, -0.003, -0.05], "lift_ci_low": [0.01, -0.04, -0.09],
    ...     "lift_ci_high": [0.03, 0.03, -0.01], "small_cell": [False, False, True],
    ...     "incremental_revenue_per_customer": [0.5, -0.02, -2.0], "incremental_revenue_se": [0.2, 0.1, 0.5],
    ...     "cost_per_send": [0.01, 0.01, 0.01]})
    >>> decide_targets(f, CampaignSettings())["send"].tolist()
    [True, True, True]
    >>> decide_targets(f, CampaignSettings(targeting_rule="expected_value"))["send"].tolist()
    [True, False, True]
    >>> g = f.assign(p_value=[0.01, 0.9, 0.02], p_adjusted=[0.2, 1.0, 0.04], family_size=3)
    >>> print(decide_targets(g, CampaignSettings())["reason"].iloc[0])
    send: the interval excludes 0 before correction for 3 segments; not after (Holm, adjusted p = 0.2) — no evidence that a send here is worth less than it costs
    """
    s = settings
    z = stats.norm.isf(s.alpha / 2)
    out = frame.copy()
    cost = out["cost_per_send"].fillna(0.0).astype(float)
    measurable = out["lift_abs"].notna() & ~out["small_cell"].astype(bool)
    inc = out["incremental_revenue_per_customer"].astype(float)
    revenue_known = inc.notna()
    se = out["incremental_revenue_se"].astype(float) if "incremental_revenue_se" in out else pd.Series(np.nan, out.index)
    upper = np.where(revenue_known, inc + z * se.fillna(np.inf), out["lift_ci_high"].astype(float))
    point = np.where(revenue_known, inc, out["lift_abs"].astype(float))
    bar = np.where(revenue_known, cost, 0.0)
    basis = np.where(revenue_known, "incremental revenue per send", "primary lift")
    interval_above0 = (out["lift_ci_low"] > 0).fillna(False).to_numpy(bool)
    p_raw = out["p_value"].astype(float).to_numpy() if "p_value" in out else np.full(len(out), np.nan)
    p_adj = out["p_adjusted"].astype(float).to_numpy() if "p_adjusted" in out else np.full(len(out), np.nan)
    family = (out["family_size"].fillna(1).astype(float).to_numpy() if "family_size" in out
              else np.ones(len(out)))
    corrected = (family > 1) & (s.correction != "none")
    positive = (out["lift_abs"] > 0).fillna(False).to_numpy(bool)
    sure = np.where(np.isnan(p_adj), interval_above0, positive & (p_adj < s.alpha))
    out["sure_gain"] = sure & measurable.to_numpy()
    if s.targeting_rule == "evidence":
        drop = measurable.to_numpy() & (upper < bar)
    else:
        drop = measurable.to_numpy() & (point < bar)
    out["send"] = ~drop
    cur = f" {s.currency}" if s.currency else ""
    corr = CORRECTION_LABELS[s.correction]
    no_evidence = "no evidence that a send here is worth less than it costs"

    def why_send(i: int) -> str:
        if not measurable.iloc[i]:
            return "sent by default: too few customers (or no lift) to judge"
        if out["sure_gain"].iloc[i]:
            if np.isnan(p_adj[i]):
                return "send: the lift is positive (its 95% interval excludes 0)"
            if corrected[i]:
                return (f"send: the lift is positive after {corr} correction across {int(family[i])} segments "
                        f"({p_text(p_adj[i], 'adjusted p')})")
            return f"send: the lift is positive ({p_text(p_adj[i])})"
        if interval_above0[i] and corrected[i] and p_raw[i] < s.alpha:
            return (f"send: the interval excludes 0 before correction for {int(family[i])} segments; not after "
                    f"({corr}, {p_text(p_adj[i], 'adjusted p')}) — {no_evidence}")
        if interval_above0[i] and not np.isnan(p_adj[i]):
            return (f"send: the interval excludes 0 but the test does not ({p_text(p_adj[i], 'adjusted p' if corrected[i] else 'p')}"
                    f", small counts) — {no_evidence}")
        return f"send: {no_evidence}"

    reason = [
        (f"left out: {'upper 95% bound of ' if s.targeting_rule == 'evidence' else ''}{b} "
         f"{(u if s.targeting_rule == 'evidence' else p):+.4f} is below {'the cost per send' if rk else 'zero'}"
         f"{f' ({c:.4f}{cur})' if rk else ''}") if d else why_send(i)
        for i, (d, b, u, p, rk, c) in enumerate(zip(drop, basis, upper, point, revenue_known, cost))]
    out["reason"] = pd.array(reason, dtype="string")
    return out


def pool_campaigns(table: pd.DataFrame, roi: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Segment lifts pooled over campaigns per sent arm, and the targeting decision for the next send.

    For each arm name and segment, the primary-metric lifts of the campaigns are pooled with
    :func:`random_effects` (variances from the Newcombe interval's half-width, which stays
    positive with zero events; Welch standard errors for revenue), p-values are corrected
    across segments, and :func:`decide_targets` applies the targeting rule with the pooled
    incremental revenue per customer and the average cost per send. ``customers`` is the
    segment's average size per campaign (both arms); ``smallest_arm`` the customers of its smaller
    arm over all campaigns (the count a privacy threshold applies to); ``small_cell`` means that over all
    campaigns one arm has fewer than ``min_cell_size`` customers. With one campaign this is
    that campaign's targeting.

    Examples
    --------
    >>> from segkit.campaign import evaluate_campaigns
    >>> camp = pd.DataFrame({"campaign_id": np.repeat(["a", "b"], 40), "customer_id": [str(i) for i in range(80)],
    ...     "arm": ["email", "control"] * 40, "converted": [1, 0, 0, 0] * 20})
    >>> res = evaluate_campaigns(camp)
    >>> pool_campaigns(res.table, res.roi, res.settings)[["arm", "segment", "campaigns", "lift_abs", "send"]]
         arm        segment  campaigns  lift_abs  send
    0  email  All customers          2       0.5  True
    """
    s = settings
    z = stats.norm.isf(s.alpha / 2)
    treat = table[(table["arm"] != s.control_arm) & table["lift_abs"].notna()]
    segmented = (treat["segment"] != ALL_SEGMENTS).any()
    treat = treat[(treat["segment"] != ALL_SEGMENTS) | (not segmented)]
    key = pd.Series((treat["arm"].astype(str) + "\x1f" + treat["segment"].astype(str)).to_numpy(dtype=object),
                    index=treat.index)
    prim = treat["metric"] == s.primary_metric
    half = (treat["lift_ci_high"] - treat["lift_ci_low"]) / (2 * z)
    is_mean = METRIC_BY_NAME[s.primary_metric].kind == "mean"
    var = (treat["lift_se"] if is_mean else half) ** 2
    pooled = random_effects(treat.loc[prim, "lift_abs"], var[prim], key[prim], s.alpha)
    if pooled.empty:
        return pd.DataFrame(columns=["campaign_id", "arm", "segment", "metric", "campaigns", "customers", "sends",
                                     "smallest_arm", "lift_abs", "lift_ci_low", "lift_ci_high", "p_value", "p_adjusted",
                                     "family_size", "small_cell", "send", "sure_gain", "reason"])
    rev = treat["metric"] == "revenue_per_recipient"
    rpool = random_effects(treat.loc[rev, "lift_abs"], treat.loc[rev, "lift_se"] ** 2, key[rev], s.alpha)
    rpool = rpool.set_index("group").reindex(pooled["group"])
    cells = treat[prim].assign(key=key[prim], size=treat.loc[prim, "customers"] + treat.loc[prim, "customers_c"])
    sizes = cells.groupby("key").agg(customers=("size", "mean"), sent=("customers", "sum"),
                                     control=("customers_c", "sum")).reindex(pooled["group"])
    costs = roi.assign(key=roi["arm"].astype(str) + "\x1f" + roi["segment"].astype(str))
    costs = costs.groupby("key").agg(cost=("cost", lambda c: c.sum(min_count=1)),
                                     sent=("customers_sent", "sum")).reindex(pooled["group"])
    parts = pooled["group"].str.split("\x1f", n=1, expand=True)
    out = pd.DataFrame({
        "campaign_id": "All campaigns", "arm": parts[0].to_numpy(), "segment": parts[1].to_numpy(),
        "metric": s.primary_metric, "campaigns": pooled["k"].to_numpy(),
        "customers": np.rint(sizes["customers"].to_numpy()).astype(np.int64),
        "sends": np.rint(sizes["sent"].to_numpy() / pooled["k"].to_numpy()).astype(np.int64),
        "lift_abs": pooled["mean"].to_numpy(), "lift_ci_low": pooled["ci_low"].to_numpy(),
        "lift_ci_high": pooled["ci_high"].to_numpy(), "p_value": pooled["p_value"].to_numpy(),
        "tau2": pooled["tau2"].to_numpy(), "i2": pooled["i2"].to_numpy(),
        "incremental_revenue_per_customer": rpool["mean"].to_numpy(),
        "incremental_revenue_se": rpool["se"].to_numpy(),
        "cost_per_send": (costs["cost"] / costs["sent"]).to_numpy(),
        "smallest_arm": np.minimum(sizes["sent"], sizes["control"]).to_numpy().astype(np.int64),
        "small_cell": ((sizes["sent"] < s.min_cell_size) | (sizes["control"] < s.min_cell_size)).to_numpy(),
    })
    fam = out["segment"] != ALL_SEGMENTS
    out["p_adjusted"] = out["p_value"]
    out.loc[fam, "p_adjusted"] = adjust_pvalues(out.loc[fam, "p_value"], s.correction, out.loc[fam, "arm"])
    out["family_size"] = 1
    out.loc[fam, "family_size"] = out.loc[fam].groupby("arm")["segment"].transform("size")
    return decide_targets(out, s)


def lift_variance(rows: pd.DataFrame, alpha: float = 0.05) -> pd.Series:
    """Variance of each row's absolute lift: ``lift_se²`` for means, and for rates the squared
    half-width of its (Newcombe score) interval over z — as in :func:`pool_campaigns`."""
    z = stats.norm.isf(alpha / 2)
    half = ((rows["lift_ci_high"] - rows["lift_ci_low"]) / (2 * z)) ** 2
    is_mean = rows["metric"].map(lambda m: METRIC_BY_NAME[m].kind == "mean").to_numpy(bool)
    se = rows["lift_se"] ** 2 if "lift_se" in rows else half
    return pd.Series(np.where(is_mean, se, half), index=rows.index, dtype=float)


def heterogeneity_table(by_dimension: Mapping[str, pd.DataFrame], settings: CampaignSettings) -> pd.DataFrame:
    """Do the lifts of the primary metric differ between the segments of a dimension?

    Per dimension, Cochran's Q test of equal lifts across the segments (cells too small to
    judge left out), within each campaign × sent arm: ``Q = Σ w (lift − weighted mean)²`` with
    ``w = 1 / variance`` (:func:`lift_variance`), ``k − 1`` degrees of freedom (the value of
    ``statsmodels combine_effects(...).test_homogeneity()``). The campaigns are independent,
    so their Q and degrees of freedom add up to one chi-square test per dimension. The
    p-values are corrected across the dimensions (``settings.correction``).

    Columns: ``segment_by, comparisons, segments, q, df, p_value, p_adjusted, different``.

    Examples
    --------
    >>> t = pd.DataFrame({"campaign_id": "c", "arm": "email", "metric": "conversion_rate",
    ...     "segment": ["All customers", "A", "B"], "small_cell": False,
    ...     "lift_abs": [0.05, 0.0, 0.1], "lift_ci_low": [0.03, -0.0196, 0.0804],
    ...     "lift_ci_high": [0.07, 0.0196, 0.1196]})
    >>> h = heterogeneity_table({"rfm_segment": t}, CampaignSettings())
    >>> int(h["segments"].iloc[0]), int(h["df"].iloc[0]), round(float(h["q"].iloc[0]), 2)
    (2, 1, 50.0)
    """
    s = settings
    rows = []
    for dim, t in by_dimension.items():
        if dim == "none":
            continue
        r = t[(t["metric"] == s.primary_metric) & (t["arm"] != s.control_arm) & (t["segment"] != ALL_SEGMENTS)
              & t["lift_abs"].notna() & ~t["small_cell"].astype(bool)]
        var = lift_variance(r, s.alpha)
        r = r[(var > 0).to_numpy() & np.isfinite(var.to_numpy())]
        var = var[r.index]
        q_total, df_total, comps, segs = 0.0, 0, 0, set()
        for _, g in r.groupby(["campaign_id", "arm"], sort=True, observed=True):
            if len(g) < 2:
                continue
            w = 1.0 / var[g.index].to_numpy()
            x = g["lift_abs"].to_numpy(float)
            mean = np.sum(w * x) / np.sum(w)
            q_total += float(np.sum(w * (x - mean) ** 2))
            df_total += len(g) - 1
            comps += 1
            segs |= set(g["segment"].astype(str))
        p = float(stats.chi2.sf(q_total, df_total)) if df_total else np.nan
        rows.append({"segment_by": dim, "comparisons": comps, "segments": len(segs), "q": q_total if df_total else np.nan,
                     "df": df_total, "p_value": p})
    out = pd.DataFrame(rows, columns=["segment_by", "comparisons", "segments", "q", "df", "p_value"])
    out["p_adjusted"] = out["p_value"]
    ok = out["p_value"].notna()
    if ok.any():
        out.loc[ok, "p_adjusted"] = adjust_pvalues(out.loc[ok, "p_value"].to_numpy(), s.correction)
    out["different"] = (out["p_adjusted"] < s.alpha).fillna(False).astype(bool)
    return out


def pooled_segments(by_dimension: Mapping[str, pd.DataFrame], settings: CampaignSettings) -> pd.DataFrame:
    """Primary-metric lift of every segment of every dimension, pooled over the campaigns.

    Random-effects pooling (:func:`random_effects`) per dimension × sent arm × segment, corrected
    across the segments of a dimension and arm; ``significant_in`` counts the campaigns in
    which the segment's own lift was significant after the correction.
    """
    s = settings
    parts = []
    for dim, t in by_dimension.items():
        r = t[(t["metric"] == s.primary_metric) & (t["arm"] != s.control_arm) & t["lift_abs"].notna()
              & ~t["small_cell"].astype(bool)]
        if dim != "none":
            r = r[r["segment"] != ALL_SEGMENTS]
        if r.empty:
            continue
        key = (r["arm"].astype(str) + "\x1f" + r["segment"].astype(str)).to_numpy(dtype=object)
        pooled = random_effects(r["lift_abs"], lift_variance(r, s.alpha), key, s.alpha)
        sig = (r.assign(key=key, sig=(r["p_adjusted"] < s.alpha) & (r["lift_abs"] > 0))
               .groupby("key")["sig"].sum().reindex(pooled["group"]))
        part_names = pooled["group"].str.split("\x1f", n=1, expand=True)
        out = pd.DataFrame({"segment_by": dim, "arm": part_names[0].to_numpy(), "segment": part_names[1].to_numpy(),
                            "campaigns": pooled["k"].to_numpy(), "lift_abs": pooled["mean"].to_numpy(),
                            "lift_ci_low": pooled["ci_low"].to_numpy(), "lift_ci_high": pooled["ci_high"].to_numpy(),
                            "p_value": pooled["p_value"].to_numpy(), "significant_in": sig.to_numpy().astype(int)})
        out["p_adjusted"] = adjust_pvalues(out["p_value"].to_numpy(), s.correction, out["arm"].to_numpy())
        parts.append(out)
    cols = ["segment_by", "arm", "segment", "campaigns", "lift_abs", "lift_ci_low", "lift_ci_high", "p_value",
            "significant_in", "p_adjusted"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def policy_table(targeting: pd.DataFrame) -> pd.DataFrame:
    """Estimated value of the recommended policy per campaign × sent arm, and of sending to all.

    Basis: sends (customers of the sent arm, column ``sends``; ``customers`` when absent).
    ``expected_incremental_revenue`` = Σ over recommended segments of incremental revenue per
    send × sends (normal interval from the summed variances, segments being independent);
    ``expected_cost`` = Σ sends × cost per send; ``expected_net`` = difference; ``*_per_1000``
    per 1,000 sends of the policy. ``*_all`` columns: the same for sending to every segment.
    Segments without revenue data count 0. Because :func:`decide_targets` leaves out only segments
    with a negative estimated net value, ``expected_net >= expected_net_all``; if rounding or
    missing values ever broke that, the policy falls back to sending to all.

    Examples
    --------
    >>> t = pd.DataFrame({"campaign_id": "c", "arm": "email", "segment": ["A", "B"], "sends": [100, 50],
    ...     "incremental_revenue_per_customer": [2.0, -1.0], "incremental_revenue_se": [0.5, 0.5],
    ...     "cost_per_send": [0.1, 0.1], "send": [True, False]})
    >>> p = policy_table(t)
    >>> p["segments_to_send"].iloc[0], float(p["expected_net"].iloc[0]), float(p["expected_net_all"].iloc[0])
    ('A', 190.0, 135.0)
    """
    rows = []
    z = stats.norm.isf(0.025)
    size_col = "sends" if "sends" in targeting.columns else "customers"
    for (cid, arm), g in targeting.groupby(["campaign_id", "arm"], sort=True):
        size = g[size_col].astype(float)
        rev = (g["incremental_revenue_per_customer"] * size).fillna(0.0)
        var = ((g["incremental_revenue_se"] * size) ** 2).fillna(0.0)
        cost = (g["cost_per_send"] * size).fillna(0.0)
        sel = g["send"].to_numpy(bool)
        every = np.ones(len(g), bool)
        if (rev - cost)[sel].sum() < (rev - cost).sum() - 1e-9:
            sel = every
        has_rev = bool(g["incremental_revenue_per_customer"].notna().any())
        exp_rev, exp_sd = float(rev[sel].sum()), float(np.sqrt(var[sel].sum()))
        sends = float(size[sel].sum())
        rows.append({
            "campaign_id": cid, "arm": arm,
            "segments_to_send": ", ".join(g.loc[sel, "segment"].astype(str)),
            "segments_left_out": ", ".join(g.loc[~sel, "segment"].astype(str)),
            "segments": int(len(g)), "segments_recommended": int(sel.sum()),
            "sends_targeted": int(sends), "share_targeted": float(sends / size.sum()) if size.sum() else np.nan,
            "expected_incremental_revenue": exp_rev if has_rev else np.nan,
            "expected_incremental_revenue_ci_low": exp_rev - z * exp_sd if has_rev else np.nan,
            "expected_incremental_revenue_ci_high": exp_rev + z * exp_sd if has_rev else np.nan,
            "expected_cost": float(cost[sel].sum()) if g["cost_per_send"].notna().any() else np.nan,
            "expected_incremental_revenue_all": float(rev.sum()) if has_rev else np.nan,
            "expected_cost_all": float(cost.sum()) if g["cost_per_send"].notna().any() else np.nan,
            "sends_all": int(size.sum()),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["expected_net"] = out["expected_incremental_revenue"] - out["expected_cost"].fillna(0.0)
    out["expected_net_all"] = out["expected_incremental_revenue_all"] - out["expected_cost_all"].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in ("expected_incremental_revenue", "expected_incremental_revenue_ci_low",
                    "expected_incremental_revenue_ci_high", "expected_net"):
            out[f"{col}_per_1000"] = out[col] / out["sends_targeted"].where(out["sends_targeted"] > 0) * 1000
    return out


def qini_curve(table: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Segment-level uplift (Qini) curve of the primary metric per campaign × sent arm.

    Segments are ranked by estimated lift (best first); ``share_targeted`` is the cumulative
    share of sends (customers of the sent arm) and ``incremental`` the cumulative incremental
    outcomes (lift × sends: the same basis as the ROI table) if those segments were sent to; ``random`` is the straight line of
    targeting at random. ``qini`` (same on every row of a curve) is the area between curve and
    random line. Ranked on the data that estimated the lifts, the curve is optimistic.

    Examples
    --------
    >>> t = pd.DataFrame({"campaign_id": "c", "arm": "email", "metric": "conversion_rate",
    ...     "segment": ["All customers", "A", "B"], "customers": [150, 100, 50], "customers_c": [50, 30, 20],
    ...     "lift_abs": [0.02, -0.01, 0.1]})
    >>> qini_curve(t, CampaignSettings())[["segment", "share_targeted", "incremental", "random"]]
      segment  share_targeted  incremental    random
    0                0.000000          0.0  0.000000
    1       B        0.333333          5.0  1.333333
    2       A        1.000000          4.0  4.000000
    """
    s = settings
    rows = table[(table["metric"] == s.primary_metric) & (table["arm"] != s.control_arm)
                 & (table["segment"] != ALL_SEGMENTS) & table["lift_abs"].notna()]
    parts = []
    for (cid, arm), g in rows.groupby(["campaign_id", "arm"], sort=True):
        g = g.sort_values(["lift_abs", "segment"], ascending=[False, True], kind="mergesort")
        size = g["customers"].to_numpy(float)  # sends: customers of the sent arm
        inc = np.cumsum(g["lift_abs"].to_numpy(float) * size)
        share = np.cumsum(size) / size.sum()
        x = np.r_[0.0, share]
        y = np.r_[0.0, inc]
        rand = x * inc[-1]
        qini = float(np.trapezoid(y - rand, x))
        parts.append(pd.DataFrame({"campaign_id": cid, "arm": arm, "metric": s.primary_metric, "rank": np.arange(len(x)),
                                   "segment": ["", *g["segment"].astype(str)], "share_targeted": x,
                                   "incremental": y, "random": rand, "qini": qini}))
    cols = ["campaign_id", "arm", "metric", "rank", "segment", "share_targeted", "incremental", "random", "qini"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def power_table(table: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Minimum detectable effect at the observed sizes and the sizes needed for the target lift.

    Per campaign × sent arm × segment for the primary metric: ``base_rate`` (control value),
    ``observed_lift``, ``mde_abs`` / ``mde_rel`` (smallest upward lift detectable with
    ``power`` at ``alpha``), ``target_lift_abs`` (= ``target_lift``: an absolute effect, e.g.
    0.02 = 2 percentage points; money per customer for revenue) and the customers needed per
    arm for it at the same arm ratio; ``powered`` says whether both arms are large enough.

    Examples
    --------
    >>> t = pd.DataFrame({"campaign_id": "c", "arm": "email", "metric": "conversion_rate", "segment": "A",
    ...     "n": [4000], "n_c": [1000], "value_c": [0.05], "sd": np.nan, "sd_c": np.nan, "lift_abs": [0.004],
    ...     "mde_abs": [0.02]})
    >>> power_table(t, CampaignSettings())[["mde_rel", "n_sent_needed", "n_control_needed", "powered"]]
       mde_rel  n_sent_needed  n_control_needed  powered
    0      0.4         5725.0            1432.0    False
    """
    s = settings
    m = METRIC_BY_NAME[s.primary_metric]
    rows = table[(table["metric"] == s.primary_metric) & (table["arm"] != s.control_arm) & table["n_c"].notna()]
    out = rows[["campaign_id", "arm", "segment", "n", "n_c", "value_c", "lift_abs", "mde_abs"]].rename(
        columns={"n": "n_sent", "n_c": "n_control", "value_c": "base_rate", "lift_abs": "observed_lift"}).copy()
    out["n_control"] = out["n_control"].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mde_rel"] = (out["mde_abs"] / out["base_rate"]).where(out["base_rate"] > 0)
        ratio = (out["n_control"] / out["n_sent"]).where(out["n_sent"] > 0).to_numpy(float)
    out["target_lift_abs"] = s.target_lift
    if m.kind == "proportion":
        need = sample_size_proportions(out["target_lift_abs"], out["base_rate"], ratio, s.alpha, s.power)
    else:
        need = sample_size_means(out["target_lift_abs"], rows["sd"], rows["sd_c"], ratio, s.alpha, s.power)
    out["n_sent_needed"] = need
    out["n_control_needed"] = np.ceil(need * ratio - 1e-9)
    out["powered"] = ((out["n_sent"] >= out["n_sent_needed"]) & (out["n_control"] >= out["n_control_needed"])).fillna(False)
    return out.reset_index(drop=True)
