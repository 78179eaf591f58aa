"""Per-arm metrics of a prepared campaign frame, their comparison with the control arm (lifts,
tests, corrected p-values, minimum detectable effects, verdicts) and the sample-ratio check.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from segkit.campaign.settings import (
    ALL_SEGMENTS,
    METRIC_BY_NAME,
    METRICS,
    SRM_BORDERLINE_P,
    UNLABELLED,
    CampaignSettings,
    SampleRatioMismatchWarning,
)
from segkit.campaign.stats import (
    CORRECTION_LABELS,
    adjust_pvalues,
    diff_interval,
    fisher_exact_pvalue,
    mde_means,
    mde_proportions,
    mean_interval,
    p_text,
    ratio_interval,
    ratio_of_means_interval,
    welch_diff,
    wilson_interval,
    ztest_2prop,
)
from segkit.core.errors import ConfigError
from segkit.data.distribution import exact_float, exact_mean, exact_square_sums, exact_sums, exact_variance

__all__ = [
    "TEST_NAMES", "CELL_KEYS", "cell_sums", "merge_cell_sums", "empty_cell_sums", "arm_metrics", "arm_metrics_of_sums", "compare_arms", "finish_comparisons", "verdicts", "expected_shares",
    "srm_table", "srm_table_of_counts", "srm_warnings", "segment_table", "segment_table_of_sums",
]

# the tests of ``compare_arms``' column ``test``, as prose names
TEST_NAMES = {"z-test": "two-proportion z-test", "Fisher exact": "Fisher exact test", "Welch t": "Welch t-test"}


# ============================================================================ per-arm metrics
def _segment_order(segments: pd.Series) -> list[str]:
    names = sorted(set(segments.dropna().astype(str)) - {ALL_SEGMENTS, UNLABELLED})
    return [ALL_SEGMENTS, *names, *([UNLABELLED] if (segments == UNLABELLED).any() else [])]


def _sort_results(table: pd.DataFrame, control_arm: str) -> pd.DataFrame:
    seg_rank = {s: i for i, s in enumerate(_segment_order(table["segment"]))}
    metric_rank = {m.name: i for i, m in enumerate(METRICS)}
    keys = pd.DataFrame({
        "c": table["campaign_id"].astype(str), "s": table["segment"].map(seg_rank),
        "a0": (table["arm"] != control_arm).astype(int), "a": table["arm"].astype(str),
        "m": table["metric"].map(metric_rank)})
    order = keys.sort_values(["c", "s", "a0", "a", "m"], kind="mergesort").index
    return table.loc[order].reset_index(drop=True)


#: The keys of a cell of :func:`cell_sums`.
CELL_KEYS: tuple[str, ...] = ("campaign_id", "segment", "arm")
#: :func:`cell_sums`' exact sums (Python ints of :func:`segkit.data.distribution.exact_sums`' units).
EXACT_COLUMNS: tuple[str, ...] = ("cost_sum", "revenue_sum", "revenue_squares")


def _count_columns() -> list[str]:
    """:func:`cell_sums`' whole counts, in their order."""
    counts = ["customers", "buyers"]
    for m in METRICS:
        if m.kind == "proportion":
            counts += [f"n|{m.name}", f"x|{m.name}"]
    return [*counts, "cost_n", "revenue_n"]


def empty_cell_sums() -> pd.DataFrame:
    """:func:`cell_sums` of no rows: its columns and types, no cells."""
    out = pd.DataFrame({k: pd.Series([], dtype=object) for k in CELL_KEYS}).astype(str)
    for c in _count_columns():
        out[c] = np.zeros(0, np.int64)
    for c in EXACT_COLUMNS:
        out[c] = pd.Series([], dtype=object)
    return out


def cell_sums(prepared: pd.DataFrame) -> pd.DataFrame:
    """What :func:`arm_metrics` reads of a prepared frame: additive sums per campaign × segment × arm.

    One row per cell with customers: ``campaign_id, segment, arm`` (text), whole counts (``customers``,
    ``buyers`` = customers with revenue > 0, per proportion metric ``n|<metric>`` its denominator and
    ``x|<metric>`` its events, ``cost_n`` and ``revenue_n`` the known costs and revenues) and exact sums
    (``cost_sum``, ``revenue_sum``, ``revenue_squares``: Python ints, :func:`segkit.data.distribution.exact_sums`
    and :func:`~segkit.data.distribution.exact_square_sums`). The sums of disjoint parts of the rows merged
    by :func:`merge_cell_sums` are the sums of all of them, bit for bit: the one-machine evaluation applies
    this to the whole frame, Spark to each partition (:mod:`segkit.steps.spark_campaign`).

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abc"),
    ...     "arm": ["email", "email", "control"], "converted": [1, 0, 0], "revenue": [2.5, 0, 0]}))
    >>> cell_sums(prep)[["arm", "customers", "x|conversion_rate", "revenue_n", "revenue_sum"]].assign(
    ...     revenue_sum=lambda t: t["revenue_sum"].map(exact_float))
           arm  customers  x|conversion_rate  revenue_n  revenue_sum
    0  control          1                  0          1          0.0
    1    email          2                  1          2          2.5
    """
    f = prepared
    if not len(f):
        return empty_cell_sums()
    counts = _count_columns()
    data: dict[str, Any] = {"customers": np.ones(len(f), np.int64)}
    revenue = f["revenue"].to_numpy(dtype=float)
    cost = f["cost"].to_numpy(dtype=float)
    data["buyers"] = (revenue > 0).astype(np.int64)
    for m in METRICS:
        if m.kind != "proportion":
            continue
        y = f[m.outcome].to_numpy(dtype=float)
        base = f[m.base].to_numpy(dtype=float) == 1 if m.base else np.ones(len(f), bool)
        den = ~np.isnan(y) & base
        data[f"n|{m.name}"] = den.astype(np.int64)
        data[f"x|{m.name}"] = (den & (y == 1)).astype(np.int64)
    data["cost_n"] = (~np.isnan(cost)).astype(np.int64)
    data["revenue_n"] = (~np.isnan(revenue)).astype(np.int64)
    keys = pd.DataFrame({k: f[k].astype(str).to_numpy() for k in CELL_KEYS})
    grouped = keys.groupby(list(CELL_KEYS), sort=True)
    out = grouped.size().index.to_frame(index=False).astype(str)
    group = grouped.ngroup().to_numpy()
    summed = pd.DataFrame({c: data[c] for c in counts}).groupby(group, sort=True).sum()
    for c in counts:
        out[c] = summed[c].to_numpy(dtype=np.int64)
    money = pd.DataFrame({"cost": cost, "revenue": revenue})
    sums = exact_sums(money, group, range(len(out)))
    squares = exact_square_sums(money[["revenue"]], group, range(len(out)))
    out["cost_sum"] = sums["cost"].to_numpy()
    out["revenue_sum"] = sums["revenue"].to_numpy()
    out["revenue_squares"] = squares["revenue"].to_numpy()
    return out


def merge_cell_sums(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """:func:`cell_sums` of disjoint parts of the rows added cell by cell: the sums of all the rows, in
    :func:`cell_sums`' order and types (no parts, or only empty ones: no cells).

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"),
    ...     "arm": ["email", "control"] * 2, "revenue": [0.1, 0.2, 0.3, 0.0]}))
    >>> whole = cell_sums(prep)
    >>> merged = merge_cell_sums([cell_sums(prep.iloc[:1]), cell_sums(prep.iloc[1:])])
    >>> merged.equals(whole)
    True
    """
    counts = _count_columns()
    frames = [p for p in parts if len(p)]
    if not frames:
        return empty_cell_sums()
    table = pd.concat(frames, ignore_index=True)
    grouped = table.groupby(list(CELL_KEYS), sort=True)
    out = grouped.size().index.to_frame(index=False).astype(str)
    summed = grouped[counts].sum()
    for c in counts:
        out[c] = summed[c].to_numpy(dtype=np.int64)
    for c in EXACT_COLUMNS:  # Python ints: added exactly
        out[c] = pd.Series([sum(v) for v in grouped[c].agg(list)], dtype=object).to_numpy()
    return out


def arm_metrics(prepared: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Counts, rates and revenue per campaign × segment × arm × metric, with 95% intervals.

    ``prepared`` comes from :func:`prepare_campaign`. Every campaign also gets the segment
    ``"All customers"``. Columns: ``campaign_id, segment, arm, metric, n`` (denominator),
    ``count`` (events; buyers for revenue), ``value, ci_low, ci_high`` (Wilson for rates, t for
    revenue), ``sd`` (revenue), ``var``, ``customers`` (assigned to the cell), ``cost`` (sum;
    NaN when none given). Metrics never observed in a campaign (e.g. no ``opened`` column) are
    left out. :func:`arm_metrics_of_sums` of :func:`cell_sums`.

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"),
    ...     "arm": ["email", "email", "control", "control"], "converted": [1, 0, 0, 0]}))
    >>> arm_metrics(prep).query("metric == 'conversion_rate'")[["arm", "n", "count", "value"]].reset_index(drop=True)
           arm  n  count  value
    0  control  2      0    0.0
    1    email  2      1    0.5
    """
    return arm_metrics_of_sums(cell_sums(prepared), alpha)


def arm_metrics_of_sums(sums: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """:func:`arm_metrics` from the cells' sums (:func:`cell_sums`, or :func:`merge_cell_sums` of parts).

    The ``"All customers"`` cells are the sums over each campaign's segments. Means and variances are
    the exact ones correctly rounded (:func:`segkit.data.distribution.exact_mean`,
    :func:`~segkit.data.distribution.exact_variance`), so the table does not depend on how the rows
    were split.
    """
    counts = _count_columns()
    overall = merge_cell_sums([sums.assign(segment=ALL_SEGMENTS)]) if len(sums) else sums
    cells = [overall]
    if (sums["segment"] != ALL_SEGMENTS).any():
        cells.append(sums)
    cells = pd.concat(cells, ignore_index=True)
    n_rev = cells["revenue_n"].to_numpy(dtype=np.int64)
    rev_mean = np.array([exact_mean(s, n) for s, n in zip(cells["revenue_sum"], n_rev)], dtype=float)
    rev_var = np.array([exact_variance(s, q, n) for s, q, n in zip(cells["revenue_sum"], cells["revenue_squares"],
                                                                     n_rev)], dtype=float)
    cost = np.array([exact_float(s) if n else np.nan for s, n in zip(cells["cost_sum"], cells["cost_n"])], dtype=float)
    parts = []
    base_cols = cells[["campaign_id", "segment", "arm", "customers"]].assign(cost=cost)
    for m in METRICS:
        if m.kind == "proportion":
            n = cells[f"n|{m.name}"].to_numpy(dtype=float)
            count = cells[f"x|{m.name}"].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(n > 0, count / n, np.nan)
            low, high = wilson_interval(count, n, alpha)
            var = np.where(n > 0, value * (1 - value), np.nan)
        else:
            n = n_rev.astype(float)
            count = cells["buyers"].to_numpy(dtype=float)
            value = rev_mean
            var = rev_var
            low, high = mean_interval(n, value, var, alpha)
        parts.append(base_cols.assign(metric=m.name, n=n.astype(np.int64), count=count.astype(np.int64),
                                      value=value, ci_low=low, ci_high=high,
                                      sd=np.sqrt(var) if m.kind == "mean" else np.nan, var=var))
    cols = ["campaign_id", "segment", "arm", "metric", "n", "count", "value", "ci_low", "ci_high", "sd", "var",
            "customers", "cost"]
    if not parts or not len(cells):
        return pd.DataFrame(columns=cols)
    long = pd.concat(parts, ignore_index=True)
    long["customers"] = long["customers"].astype(np.int64)
    observed = long.groupby(["campaign_id", "metric"])["n"].transform("sum") > 0
    long = long[observed.to_numpy()]
    return _sort_results(long[cols], control_arm="").reset_index(drop=True)


# ============================================================================ comparisons
def compare_arms(metrics: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Add lift against the control arm to :func:`arm_metrics` rows of the other arms.

    New columns: ``lift_abs, lift_ci_low, lift_ci_high`` (difference; Newcombe or Welch),
    ``lift_rel, lift_rel_ci_low, lift_rel_ci_high`` (ratio − 1; Katz log or delta method),
    ``lift_se`` (for sums of revenue lifts), ``test`` and ``p_value`` (z-test, Fisher exact or
    Welch t), the control's ``n_c, count_c, value_c, sd_c, customers_c`` and ``note``. Control
    rows and incomparable rows (engagement metrics against a holdout, empty control) have
    empty lift fields; ``note`` says why.

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcdefgh"),
    ...     "arm": ["email"] * 4 + ["control"] * 4, "converted": [1, 1, 0, 0, 1, 0, 0, 0]}))
    >>> out = compare_arms(arm_metrics(prep), CampaignSettings())
    >>> out.query("metric == 'conversion_rate'")[["arm", "lift_abs", "test", "p_value"]].reset_index(drop=True)
           arm  lift_abs          test  p_value
    0  control       NaN                    NaN
    1    email      0.25  Fisher exact      1.0
    """
    s = settings
    keys = ["campaign_id", "segment", "metric"]
    ctrl = metrics.loc[metrics["arm"] == s.control_arm, keys + ["n", "count", "value", "sd", "var", "customers"]]
    ctrl = ctrl.rename(columns={c: f"{c}_c" for c in ("n", "count", "value", "sd", "var", "customers")})
    out = metrics.merge(ctrl, on=keys, how="left", validate="many_to_one")
    for col in ("lift_abs", "lift_ci_low", "lift_ci_high", "lift_rel", "lift_rel_ci_low", "lift_rel_ci_high",
                "lift_se", "p_value"):
        out[col] = np.nan
    out["test"] = ""
    out["note"] = ""
    treat = (out["arm"] != s.control_arm).to_numpy()
    engagement = out["metric"].map(lambda m: METRIC_BY_NAME[m].engagement).to_numpy(dtype=bool)
    no_control = treat & out["n_c"].isna().to_numpy()
    out.loc[no_control, "note"] = "no control customers to compare with"
    holdout = treat & engagement & s.control_is_holdout
    out.loc[holdout & ~no_control, "note"] = "engagement metric: not compared with a holdout that receives nothing"
    empty = treat & ~no_control & ~holdout & ((out["n"] == 0) | (out["n_c"] == 0)).to_numpy()
    out.loc[empty, "note"] = "an arm has no customers for this metric"
    comparable = treat & ~no_control & ~holdout & ~empty
    is_mean = (out["metric"].map(lambda m: METRIC_BY_NAME[m].kind) == "mean").to_numpy()

    prop = comparable & ~is_mean
    if prop.any():
        c1, n1 = out.loc[prop, "count"].to_numpy(float), out.loc[prop, "n"].to_numpy(float)
        c2, n2 = out.loc[prop, "count_c"].to_numpy(float), out.loc[prop, "n_c"].to_numpy(float)
        low, high = diff_interval(c1, n1, c2, n2, s.alpha)
        rlow, rhigh = ratio_interval(c1, n1, c2, n2, s.alpha)
        k = c1 + c2
        min_expected = np.minimum(n1, n2) * np.minimum(k, n1 + n2 - k) / (n1 + n2)
        exact = min_expected < s.exact_test_min_expected
        _, pz = ztest_2prop(c1, n1, c2, n2)
        p = pz.copy()
        if exact.any():
            p[exact] = fisher_exact_pvalue(c1[exact], n1[exact], c2[exact], n2[exact])
        p1, p2 = c1 / n1, c2 / n2
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(p2 > 0, p1 / p2 - 1, np.nan)
        out.loc[prop, "lift_abs"] = p1 - p2
        out.loc[prop, "lift_ci_low"], out.loc[prop, "lift_ci_high"] = low, high
        out.loc[prop, "lift_rel"] = rel
        out.loc[prop, "lift_rel_ci_low"], out.loc[prop, "lift_rel_ci_high"] = rlow - 1, rhigh - 1
        out.loc[prop, "lift_se"] = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        out.loc[prop, "p_value"] = p
        out.loc[prop, "test"] = np.where(exact, "Fisher exact", "z-test")
        exact_note = pd.Series(np.where(exact, f"Fisher exact test: smallest expected count < "
                                               f"{s.exact_test_min_expected:g}", ""), dtype="string")
        zero_note = pd.Series(np.where((c1 == 0) | (c2 == 0), "relative lift undefined: an arm has no events", ""),
                              dtype="string")
        sep = pd.Series(np.where((exact_note != "") & (zero_note != ""), "; ", ""), dtype="string")
        out.loc[prop, "note"] = (exact_note + sep + zero_note).to_numpy()

    mean = comparable & is_mean
    if mean.any():
        g = out.loc[mean]
        w = welch_diff(g["n"], g["value"], g["var"], g["n_c"], g["value_c"], g["var_c"], s.alpha)
        rlow, rhigh = ratio_of_means_interval(g["n"], g["value"], g["var"], g["n_c"], g["value_c"], g["var_c"], s.alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(g["value_c"] > 0, g["value"] / g["value_c"] - 1, np.nan)
        out.loc[mean, "lift_abs"] = w["diff"]
        out.loc[mean, "lift_ci_low"], out.loc[mean, "lift_ci_high"] = w["low"], w["high"]
        out.loc[mean, "lift_rel"] = rel
        out.loc[mean, "lift_rel_ci_low"], out.loc[mean, "lift_rel_ci_high"] = rlow - 1, rhigh - 1
        out.loc[mean, "lift_se"] = w["se"]
        out.loc[mean, "p_value"] = w["p"]
        out.loc[mean, "test"] = "Welch t"
        few = (np.minimum(g["count"], g["count_c"]) < s.revenue_min_buyers).to_numpy()
        out.loc[mean, "note"] = np.where(
            few, f"fewer than {s.revenue_min_buyers} buyers in an arm: the revenue interval is approximate", "")
    return out


def finish_comparisons(compared: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Adjusted p-values, small-cell flags, minimum detectable effects and verdicts.

    ``p_adjusted``: the correction of ``settings.correction`` across the segments of one
    campaign, arm and metric (the "All customers" row keeps its own p-value). ``small_cell``:
    the cell (or, for a compared row, either arm) has fewer than ``min_cell_size`` customers.
    ``mde_abs``: the smallest upward lift detectable with ``settings.power`` at this size.

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcdefgh"),
    ...     "arm": ["email"] * 4 + ["control"] * 4, "converted": [1, 1, 0, 0, 1, 0, 0, 0]}))
    >>> s = CampaignSettings(min_cell_size=5)
    >>> out = finish_comparisons(compare_arms(arm_metrics(prep), s), s)
    >>> out.query("arm == 'email' and metric == 'conversion_rate'")["verdict"].iloc[0]
    'Too few customers to judge (4 vs 4 in control; minimum 5): not used for targeting.'
    """
    s = settings
    out = compared.copy()
    family = (out["segment"] != ALL_SEGMENTS) & out["p_value"].notna()
    out["p_adjusted"] = out["p_value"]
    if family.any():
        fam = out.loc[family]
        groups = fam["campaign_id"].astype(str) + "\x1f" + fam["arm"].astype(str) + "\x1f" + fam["metric"]
        out.loc[family, "p_adjusted"] = adjust_pvalues(fam["p_value"].to_numpy(), s.correction, groups.to_numpy())
    out["family_size"] = out.loc[family].groupby(["campaign_id", "arm", "metric"])["p_value"].transform("size")
    treat = (out["arm"] != s.control_arm).to_numpy()
    small = out["customers"].to_numpy() < s.min_cell_size
    small |= treat & (out["customers_c"].fillna(np.inf).to_numpy() < s.min_cell_size)
    out["small_cell"] = small
    is_mean = (out["metric"].map(lambda m: METRIC_BY_NAME[m].kind) == "mean").to_numpy()
    has = out["lift_abs"].notna().to_numpy()
    mde = np.full(len(out), np.nan)
    prop = has & ~is_mean
    if prop.any():
        mde[prop] = mde_proportions(out.loc[prop, "value_c"], out.loc[prop, "n"], out.loc[prop, "n_c"], s.alpha, s.power)
    mean = has & is_mean
    if mean.any():
        mde[mean] = mde_means(out.loc[mean, "sd"], out.loc[mean, "n"], out.loc[mean, "sd_c"], out.loc[mean, "n_c"],
                              s.alpha, s.power)
    out["mde_abs"] = mde
    out["verdict"] = verdicts(out, s)
    return out


def _fmt_effect(value: float, kind: str, signed: bool = True) -> str:
    if pd.isna(value):
        return "n/a"
    if kind == "proportion":
        return f"{value * 100:+.1f} pp" if signed else f"{value * 100:.1f} pp"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def verdicts(table: pd.DataFrame, settings: CampaignSettings) -> pd.Series:
    """Plain-language verdict for every row of a :func:`finish_comparisons` table ("" for control rows).

    Significance is the adjusted p-value below ``alpha``; the interval gives size and
    direction; a non-significant result says how large an effect the test could have detected.
    """
    s = settings
    corr = CORRECTION_LABELS[s.correction]

    def one(r: pd.Series) -> str:
        if r["arm"] == s.control_arm:
            return ""
        m = METRIC_BY_NAME[r["metric"]]
        if pd.isna(r["lift_abs"]):
            return f"Not compared: {r['note'] or 'no comparison possible'}."
        if r["small_cell"]:
            return (f"Too few customers to judge ({int(r['customers'])} vs {int(r['customers_c'])} in control; "
                    f"minimum {s.min_cell_size}): not used for targeting.")
        unit = f"{' ' + s.currency if s.currency else ''} per customer" if m.kind == "mean" else ""
        effect = (f"{_fmt_effect(r['lift_abs'], m.kind)}{unit} (95% CI {_fmt_effect(r['lift_ci_low'], m.kind)} to "
                  f"{_fmt_effect(r['lift_ci_high'], m.kind)})")
        if pd.isna(r["p_value"]):
            return f"No test possible (no variation): {effect}."
        p_adj, p = r["p_adjusted"], r["p_value"]
        overall = r["segment"] == ALL_SEGMENTS or s.correction == "none" or r.get("family_size", 1) == 1
        excludes0 = (r["lift_ci_low"] > 0) or (r["lift_ci_high"] < 0)
        if not overall:
            effect = effect.replace("(95% CI", "(95% CI, not adjusted for multiple segments,", 1)
        if p_adj >= s.alpha and excludes0:
            test = TEST_NAMES.get(r["test"], r["test"])
            if not overall and p < s.alpha:  # the correction, not the interval, is why
                return (f"Inconclusive: {effect} excludes 0 and the {test} gives {p_text(p)}: significant before "
                        f"correction, not after {corr} correction across {int(r['family_size'])} segments "
                        f"({p_text(p_adj, 'adjusted p')}, above {s.alpha:g}), so this is not called a difference.")
            why = f"the {test} gives {p_text(p)}" + ("" if overall else f", {p_text(p_adj, 'adjusted p')}")
            return (f"Inconclusive: {effect} excludes 0, but {why}, above {s.alpha:g}; the interval and the test "
                    "disagree at the margin (small counts), so this is not called a difference.")
        if p_adj < s.alpha:
            better = (r["lift_abs"] > 0) == m.higher_is_better
            word = "Higher" if r["lift_abs"] > 0 else "Lower"
            how = p_text(p) if overall else f"significant after {corr} correction, {p_text(p_adj, 'adjusted p')}"
            return f"{word} than control ({'better' if better else 'worse'}): {effect}; {how}."
        if p < s.alpha:
            return (f"Suggestive only: {effect}; {p_text(p)}, not significant after {corr} correction across "
                    f"{int(r['family_size'])} segments.")
        detect = (f"; at this size only effects of about {_fmt_effect(r['mde_abs'], m.kind, signed=False)}{unit} "
                  f"or more are detected reliably ({s.power:.0%} power)") if pd.notna(r["mde_abs"]) else ""
        return f"No clear difference: {effect}, {p_text(p)}{detect}."

    return pd.Series([one(r) for _, r in table.iterrows()], index=table.index, dtype="string")


# ============================================================================ sample-ratio mismatch
def expected_shares(arms: Sequence[str], expected_split: Mapping[str, float] | None) -> np.ndarray | None:
    """Designed share of each arm: named shares, the rest split equally over unnamed arms.

    Arms named in ``expected_split`` but absent from this campaign are dropped and the shares
    renormalised. None without a configured split.

    Examples
    --------
    >>> expected_shares(["control", "a", "b"], {"control": 0.2}).round(2)
    array([0.2, 0.4, 0.4])
    """
    if not expected_split:
        return None
    named = {a: float(expected_split[a]) for a in arms if a in expected_split}
    rest = [a for a in arms if a not in named]
    left = 1.0 - sum(expected_split.values())
    shares = np.array([named.get(a, left / len(rest) if rest else 0.0) for a in arms], dtype=float)
    if rest and left <= 1e-12:
        raise ConfigError(f"campaign.expected_split = {dict(expected_split)} leaves no share for arm(s) "
                          f"{', '.join(map(repr, rest))}. Name every arm or leave part of the split unassigned.")
    return shares / shares.sum()


def srm_table(prepared: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """Sample-ratio-mismatch check per campaign, overall and per segment.

    Chi-square goodness of fit (``scipy.stats.chisquare``) of the customers per arm against the
    expected shares: ``expected_split`` when configured (overall and every segment), else
    (segments only) the campaign's overall split. Rows with an expected count below 5 per arm
    are not tested. ``srm`` is p < ``srm_alpha``; a campaign's overall split against the design
    with ``srm_alpha`` <= p < :data:`SRM_BORDERLINE_P` is not flagged but its ``note`` calls it
    borderline. ``smallest_arm`` is the customers of the smallest arm (the count that the
    privacy threshold applies to). Columns: ``campaign_id, segment, customers, smallest_arm,
    observed, expected, control_share, expected_control_share, chi2, p_value, srm, note``.

    Examples
    --------
    >>> from segkit.campaign import prepare_campaign
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
    ...                                       "arm": ["control"] * 300 + ["email"] * 700}))
    >>> t = srm_table(prep, CampaignSettings(expected_split={"control": 0.2}))
    >>> t[["segment", "control_share", "srm"]]
             segment  control_share   srm
    0  All customers            0.3  True
    """
    return srm_table_of_counts(cell_sums(prepared)[[*CELL_KEYS, "customers"]], settings)


def srm_table_of_counts(counts: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """:func:`srm_table` from the customers per campaign × segment × arm (``campaign_id, segment, arm,
    customers``: :func:`cell_sums` of the rows, or its merge over parts; cells without customers may be absent)."""
    s = settings
    rows = []
    counts = counts[counts["customers"].to_numpy() > 0].astype({k: str for k in CELL_KEYS})
    for cid, camp in counts.groupby("campaign_id", sort=True):
        arms = sorted(camp["arm"].unique(), key=lambda a: (a != s.control_arm, a))
        per_arm = camp.groupby("arm")["customers"].sum()
        overall = pd.DataFrame([per_arm.reindex(arms, fill_value=0)], index=[ALL_SEGMENTS])
        segs = camp.pivot_table(index="segment", columns="arm", values="customers", aggfunc="sum", fill_value=0)
        segs = segs.reindex(columns=arms, fill_value=0).drop(index=[ALL_SEGMENTS], errors="ignore")
        table = pd.concat([overall, segs]) if (camp["segment"] != ALL_SEGMENTS).any() else overall
        obs = table.to_numpy(dtype=float)
        total = obs.sum(axis=1)
        design = expected_shares(arms, s.expected_split)
        base = design if design is not None else obs[0] / obs[0].sum()
        exp = total[:, None] * base[None, :]
        tested = (len(arms) > 1) & (exp.min(axis=1) >= 5)
        if design is None:
            tested[0] = False
        chi2 = np.full(len(table), np.nan)
        p = np.full(len(table), np.nan)
        if tested.any():
            res = stats.chisquare(obs[tested], exp[tested], axis=1)
            chi2[tested], p[tested] = res.statistic, res.pvalue
        first = np.arange(len(table)) == 0
        borderline = first & tested & (design is not None) & (p >= s.srm_alpha) & (p < SRM_BORDERLINE_P)
        note = np.where(len(arms) < 2, "one arm only",
                        np.where(~tested & first & (design is None),
                                 "overall split not tested: set campaign.expected_split",
                                 np.where(~tested, "too few customers to test",
                                          np.where(borderline, f"borderline: {s.srm_alpha:g} <= p < "
                                                   f"{SRM_BORDERLINE_P:g}; check how customers were assigned", ""))))
        ctrl_idx = arms.index(s.control_arm) if s.control_arm in arms else None
        fmt_obs = [" · ".join(f"{a} {int(v):,}" for a, v in zip(arms, r)) for r in obs]
        fmt_exp = " · ".join(f"{a} {v:.1%}" for a, v in zip(arms, base))
        rows.append(pd.DataFrame({
            "campaign_id": cid, "segment": table.index.astype(str), "customers": total.astype(np.int64),
            "smallest_arm": obs.min(axis=1).astype(np.int64), "observed": fmt_obs, "expected": np.where(tested | (design is not None), fmt_exp, ""),
            "control_share": obs[:, ctrl_idx] / total if ctrl_idx is not None else np.nan,
            "expected_control_share": base[ctrl_idx] if ctrl_idx is not None else np.nan,
            "chi2": chi2, "p_value": p, "srm": np.nan_to_num(p, nan=1.0) < s.srm_alpha, "note": note}))
    return pd.concat(rows, ignore_index=True)


def srm_warnings(srm: pd.DataFrame, settings: CampaignSettings) -> list[str]:
    """One loud message per sample-ratio mismatch (also issued as :class:`SampleRatioMismatchWarning`).

    Against a configured ``expected_split`` the split is not what the design intended; without
    one, a segment's split differs from its campaign's overall split (the overall split itself is
    then not tested), and the message says that instead of blaming a design nobody stated.
    """
    msgs = []
    if settings.expected_split:
        against, why = "expected", ("The arm split is not what the design intended, so assignment or tracking is "
                                    "broken and the lifts may be biased")
    else:
        against, why = "the campaign's overall split", (
            "In a split drawn at random every segment gets about the campaign's shares; this one does not, so the "
            "control group was drawn differently in this segment or one arm lost customers in tracking, and its "
            "lifts may be biased")
    for _, r in srm[srm["srm"]].iterrows():
        msg = (f"SAMPLE-RATIO MISMATCH in campaign {r['campaign_id']}, {r['segment']}: observed {r['observed']} "
               f"vs {against} {r['expected']} (chi-square {p_text(r['p_value'])} < {settings.srm_alpha:g}). {why}: "
               "find out how the control group was drawn before acting on these results.")
        warnings.warn(msg, SampleRatioMismatchWarning, stacklevel=2)
        msgs.append(msg)
    return msgs


def segment_table(prepared: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """The finished comparison table (:func:`finish_comparisons`) of a prepared campaign frame."""
    return segment_table_of_sums(cell_sums(prepared), settings)


def segment_table_of_sums(sums: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """:func:`segment_table` from the cells' sums (:func:`cell_sums`, or :func:`merge_cell_sums` of parts)."""
    table = finish_comparisons(compare_arms(arm_metrics_of_sums(sums, settings.alpha), settings), settings)
    return _sort_results(table, settings.control_arm)
