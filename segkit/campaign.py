"""Campaign evaluation: A/B per segment with honest statistics, uplift, ROI, power.

:func:`segkit.steps.campaign.build_campaign_artifacts` is the producer behind ``notebooks/05_campaign_evaluation.ipynb``;
:func:`evaluate_campaigns` does the work on plain frames. Every campaign in the file is evaluated
on its own (arm by arm against the control arm), overall and per segment of one dimension
(``rfm_segment``, ``lifecycle_stage`` or ``cluster_name`` of ``customer_segments.csv``).

Metrics (:data:`METRICS`) and their denominators
    ``delivery_rate`` delivered / sent; ``open_rate`` opened / delivered; ``click_rate`` clicked /
    delivered; ``click_to_open_rate`` clicked / opened; ``unsubscribe_rate`` unsubscribed /
    delivered; ``conversion_rate`` converted / assigned; ``retention_rate`` customers with a purchase
    (an order with net amount > 0) within ``retention_days`` after the send / assigned;
    ``revenue_per_recipient`` mean campaign revenue per assigned customer (zeros included).
    Outcomes (conversion, retention, revenue) are compared with the control per *assigned*
    customer (intention to treat): a holdout receives nothing, so "delivered" has no meaning
    there, and undelivered sends are part of what the campaign did. A missing flag is "not
    observed" and leaves the denominator; missing revenue in a campaign that records revenue (any
    non-zero amount) is 0; a negative revenue is invalid (the audit reports it): unknown, left out
    of the revenue metrics.

Methods (all two-sided, level ``1 - alpha``)
    - Rates: Wilson score interval (``statsmodels proportion_confint(method="wilson")``).
    - Absolute lift (difference of rates): Newcombe's hybrid score interval (method 10 of
      Newcombe 1998; ``confint_proportions_2indep(method="newcomb")``), which keeps close to
      nominal coverage for small counts and rates near 0 where the Wald interval fails.
    - Relative lift (ratio − 1): Katz log interval (``compare="ratio", method="log"``); undefined
      (empty) when either arm has no events.
    - p-value: pooled two-proportion z-test (``proportions_ztest``), or Fisher's exact test
      (``scipy.stats.fisher_exact``) when the smallest expected count of the 2×2 table is below
      ``exact_test_min_expected`` (Cochran's rule, default 5). Fisher is conservative, never
      anti-conservative, and fast at any size (Boschloo is more powerful but costs
      O(n1·n2) per table).
    - Revenue per recipient: Welch t interval for the mean and for the difference of means,
      Welch t-test (``statsmodels CompareMeans(..., usevar="unequal")``). Why not the bootstrap:
      revenue is zero-inflated and right-skewed, but the *mean* of n recipients is close to normal
      once there are a few dozen buyers, and percentile bootstrap intervals are no better for
      small skewed samples (they are too narrow as well; Hesterberg 2015); Welch is
      deterministic, O(n) from group sums (10M rows are fine) and checkable against
      statsmodels; its unequal variances fit a treatment that adds buyers. Cells with fewer
      than ``revenue_min_buyers`` buyers in an arm are marked approximate. The relative revenue
      lift uses the delta method on log(mean ratio).
    - Multiple testing: the lift p-values of one campaign, arm and metric are corrected across
      segments (the values of ``statsmodels multipletests``: Holm, Benjamini–Hochberg, Bonferroni
      or none); the "All customers" row is its own single test.
    - Sample-ratio mismatch: chi-square goodness of fit of customers per arm, overall against
      ``expected_split`` (if configured) and per segment against ``expected_split`` or the
      campaign's overall split; p < ``srm_alpha`` (0.001) raises a loud warning, and a campaign's
      overall split with p below :data:`SRM_BORDERLINE_P` (0.01) is noted as borderline.
    - Power: minimum detectable (upward) effect at the observed sizes and control rate, solved
      from ``power_proportions_2indep`` (means: ``normal_power_het``); sample size for
      ``target_relative_lift`` from ``samplesize_proportions_2indep_onetail``
      (means: ``normal_sample_size_one_tail``).
    - Several campaigns: each is evaluated on its own; for the next send, each segment's lifts
      are pooled over the campaigns by a DerSimonian–Laird random-effects meta-analysis
      (between-campaign variance truncated at 0; ``statsmodels combine_effects(method_re="dl")``
      when that is not negative) and corrected across segments.

ROI, targeting, uplift curve
    Incremental conversions / revenue = lift × customers in the sent arm (with the lift's
    interval); ROI = (incremental revenue − cost) / cost (revenue, not margin); cost per
    incremental conversion and per (incremental) retained customer. Targeting (config
    ``targeting_rule``, :func:`decide_targets`): the default is to send; a segment is left out
    only with evidence that a send there is worth less than it costs. ``evidence`` (default) =
    leave out where the upper 95% bound of the incremental revenue per send is below the cost per
    send (without revenue data: where the upper bound of the primary lift is below 0);
    ``expected_value`` = leave out where the *estimated* incremental revenue per send is below the
    cost per send (risk-neutral; more exclusions on noise). Either way every excluded segment has
    a negative estimated net value, so the policy is never worth less than sending to all; small
    cells, or segments without a measurable lift, are sent (no evidence against them). The
    policy's expected incremental revenue assumes each segment is the size it had in this
    campaign. Segments are chosen and valued on the same data, so the policy value and the uplift
    (Qini) curve, which ranks segments by estimated lift, are optimistic (winner's curse) —
    confirm with the next test.

Examples
--------
>>> camp = pd.DataFrame({
...     "campaign_id": ["c1"] * 8, "customer_id": list("abcdefgh"),
...     "arm": ["email"] * 4 + ["control"] * 4,
...     "converted": [True, True, False, False, True, False, False, False],
...     "revenue": [10.0, 30.0, 0, 0, 20.0, 0, 0, 0]})
>>> res = evaluate_campaigns(camp, settings=CampaignSettings(min_cell_size=1))
>>> row = res.results.query("arm == 'email' and metric == 'conversion_rate'").iloc[0]
>>> float(row["value"]), float(row["lift_abs"]), row["test"]
(0.5, 0.25, 'Fisher exact')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import normal_power_het, normal_sample_size_one_tail
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_confint,
    samplesize_proportions_2indep_onetail,
)

from segkit.core.dates import day_after
from segkit.core.errors import ConfigError, DataError, format_rows
from segkit.core.schema import BOOLEAN_FALSE, BOOLEAN_TRUE
from segkit.data.engine import behaviour_table_from_files, purchase_days_from_files, rfm_table_from_files
from segkit.data.orders import RFMWarning, order_table, purchase_orders, rfm_table
from segkit.features import customer_table
from segkit.lifecycle import purchase_history
from segkit.rfm import RFMScorer, to_five_point

ALL_SEGMENTS = "All customers"
DIMENSION_LABELS = {"rfm_segment": "RFM segment", "lifecycle_stage": "lifecycle stage", "cluster_name": "cluster",
                    "none": "all customers"}
UNLABELLED = "unlabelled"
SEGMENT_DIMENSIONS: tuple[str, ...] = ("rfm_segment", "lifecycle_stage", "cluster_name")
# Which artifact builds each dimension (interactive mode builds it on demand).
DIMENSION_ARTIFACT = {"rfm_segment": "rfm", "lifecycle_stage": "lifecycle", "cluster_name": "clusters"}
CORRECTIONS: dict[str, str | None] = {"holm": "holm", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}
CORRECTION_LABELS = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg", "bonferroni": "Bonferroni", "none": "no"}
# the tests of ``compare_arms``' column ``test``, as prose names
TEST_NAMES = {"z-test": "two-proportion z-test", "Fisher exact": "Fisher exact test", "Welch t": "Welch t-test"}
TARGETING_RULES: tuple[str, ...] = ("evidence", "expected_value")
# A campaign's overall split with srm_alpha <= p < SRM_BORDERLINE_P against the designed split is
# "borderline": no alarm, but worth checking how customers were assigned.
SRM_BORDERLINE_P = 0.01

RESULT_COLUMNS: tuple[str, ...] = (
    "campaign_id", "segment_by", "segment", "arm", "metric", "n", "count", "value", "ci_low", "ci_high",
    "lift_abs", "lift_ci_low", "lift_ci_high", "lift_rel", "lift_rel_ci_low", "lift_rel_ci_high",
    "test", "p_value", "p_adjusted", "mde_abs", "customers", "small_cell", "verdict", "note",
)


@dataclass(frozen=True)
class Metric:
    """One campaign metric: ``outcome`` column over the rows where ``base`` is true."""

    name: str
    label: str
    outcome: str
    base: str | None = None          # None = every assigned customer
    kind: str = "proportion"         # "proportion" or "mean"
    engagement: bool = False         # needs a message: not compared with a holdout
    higher_is_better: bool = True


METRICS: tuple[Metric, ...] = (
    Metric("delivery_rate", "Delivered / sent", "delivered", None, engagement=True),
    Metric("open_rate", "Open rate", "opened", "delivered", engagement=True),
    Metric("click_rate", "Click rate", "clicked", "delivered", engagement=True),
    Metric("click_to_open_rate", "Click-to-open rate", "clicked", "opened", engagement=True),
    Metric("unsubscribe_rate", "Unsubscribe rate", "unsubscribed", "delivered", engagement=True,
           higher_is_better=False),
    Metric("conversion_rate", "Conversion rate", "converted"),
    Metric("retention_rate", "Retention rate", "retained"),
    Metric("revenue_per_recipient", "Revenue per recipient", "revenue", kind="mean"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
OUTCOME_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if not m.engagement)
FLAG_COLUMNS: tuple[str, ...] = ("delivered", "opened", "clicked", "converted", "unsubscribed")


class SampleRatioMismatchWarning(UserWarning):
    """The customers per arm differ from the designed split more than chance allows."""


# ============================================================================ settings
@dataclass(frozen=True)
class CampaignSettings:
    """Knobs of the campaign evaluation (``campaign`` config section, see ``defaults/campaign.yml``).

    Examples
    --------
    >>> s = CampaignSettings.from_config({"campaign": {"correction": "fdr_bh"}, "privacy": {"min_cell_size": 5}})
    >>> s.correction, s.min_cell_size
    ('fdr_bh', 5)
    >>> CampaignSettings.from_config({"campaign": {"correction": "sidak"}})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: campaign.correction = 'sidak' is not supported. Use one of: holm, fdr_bh, bonferroni, none.
    """

    control_arm: str = "control"
    control_is_holdout: bool = True
    segment_by: str = "auto"
    primary_metric: str = "conversion_rate"
    alpha: float = 0.05
    correction: str = "holm"
    min_cell_size: int = 10
    exact_test_min_expected: float = 5.0
    expected_split: Mapping[str, float] | None = None
    srm_alpha: float = 0.001
    cost_per_send: float | None = None
    retention_days: int = 30
    power: float = 0.8
    target_lift: float = 0.02
    targeting_rule: str = "evidence"
    gross_margin: float | None = None
    revenue_min_buyers: int = 30
    currency: str = ""               # from report.currency: unit of money in texts

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CampaignSettings":
        """Settings from a full config (``campaign`` section; ``privacy.min_cell_size`` as fallback)."""
        section = dict(config.get("campaign") or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"campaign: unknown key(s) {', '.join(map(repr, unknown))}. "
                              f"Known keys: {', '.join(sorted(known))}.")
        if "currency" in section:
            raise ConfigError("campaign.currency: the unit of money is set once, as report.currency.")
        if section.get("min_cell_size") is None:
            section["min_cell_size"] = (config.get("privacy") or {}).get("min_cell_size", 10)
        section["currency"] = str((config.get("report") or {}).get("currency") or "")
        values = {k: v for k, v in section.items() if v is not None or k in ("expected_split", "cost_per_send", "gross_margin")}
        return cls(**values).validated()

    def validated(self) -> "CampaignSettings":
        """Check every value; return the settings with numbers coerced, or raise a ConfigError."""
        def number(key: str, low: float, high: float, integer: bool = False, open_low: bool = True) -> float:
            value = getattr(self, key)
            try:
                out = int(value) if integer else float(value)
                if integer and out != float(value):
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(f"campaign.{key} = {value!r} is not a {'whole ' if integer else ''}number.") from None
            if not (low < out if open_low else low <= out) or not out < high:
                raise ConfigError(f"campaign.{key} = {value!r} is out of range; use a value in "
                                  f"{'(' if open_low else '['}{low}, {high}).")
            return out

        def choice(key: str, options: Sequence[str]) -> str:
            value = getattr(self, key)
            if value not in options:
                raise ConfigError(f"campaign.{key} = {value!r} is not supported. Use one of: {', '.join(options)}.")
            return value

        choice("correction", tuple(CORRECTIONS))
        choice("segment_by", (*SEGMENT_DIMENSIONS, "none", "auto"))
        choice("primary_metric", OUTCOME_METRICS)
        choice("targeting_rule", TARGETING_RULES)
        if not isinstance(self.control_arm, str) or not self.control_arm.strip():
            raise ConfigError(f"campaign.control_arm = {self.control_arm!r}: give the name of the control arm "
                              "as it appears in the campaign file's arm column.")
        margin = self.gross_margin
        if margin is not None:
            margin = number("gross_margin", 0, 1 + 1e-12)
        cost = self.cost_per_send
        if cost is not None:
            cost = number("cost_per_send", 0, np.inf, open_low=False)
        split = self.expected_split
        if split is not None:
            if not isinstance(split, Mapping) or not split:
                raise ConfigError(f"campaign.expected_split = {split!r}: give a mapping arm -> share, "
                                  "e.g. {control: 0.2, email: 0.8}, or null.")
            try:
                split = {str(k): float(v) for k, v in split.items()}
            except (TypeError, ValueError):
                raise ConfigError(f"campaign.expected_split = {split!r}: shares must be numbers.") from None
            if any(not 0 < v <= 1 for v in split.values()) or sum(split.values()) > 1 + 1e-9:
                raise ConfigError(f"campaign.expected_split = {split!r}: shares must be in (0, 1] and sum to "
                                  "at most 1.")
        return replace(
            self,
            control_arm=self.control_arm.strip(),
            control_is_holdout=bool(self.control_is_holdout),
            alpha=number("alpha", 0, 0.5),
            min_cell_size=int(number("min_cell_size", 0, np.inf, integer=True, open_low=False)),
            exact_test_min_expected=number("exact_test_min_expected", 0, np.inf, open_low=False),
            srm_alpha=number("srm_alpha", 0, 1),
            retention_days=int(number("retention_days", 0, np.inf, integer=True)),
            power=number("power", 0, 1),
            target_lift=number("target_lift", 0, np.inf),
            gross_margin=margin,
            revenue_min_buyers=int(number("revenue_min_buyers", 0, np.inf, integer=True, open_low=False)),
            cost_per_send=cost,
            expected_split=split,
        )


# ============================================================================ statistics (arrays)
def _arrays(*values: Any, dtype: type = float) -> list[np.ndarray]:
    return [np.asarray(v, dtype=dtype) for v in np.broadcast_arrays(*values)]


def wilson_interval(count: Any, nobs: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``count / nobs``, element-wise (NaN where ``nobs`` is 0).

    Same values as ``statsmodels.stats.proportion.proportion_confint(..., method="wilson")``.

    Examples
    --------
    >>> low, high = wilson_interval([3, 0], [10, 0])
    >>> np.round(low, 4), np.round(high, 4)
    (array([0.1078,    nan]), array([0.6032,    nan]))
    """
    count, nobs = _arrays(count, nobs)
    ok = nobs > 0
    low, high = proportion_confint(np.where(ok, count, 0.0), np.where(ok, nobs, 1.0), alpha=alpha, method="wilson")
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def diff_interval(count1: Any, nobs1: Any, count2: Any, nobs2: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe hybrid score interval for ``p1 - p2`` (NaN where an arm is empty).

    Same values as ``confint_proportions_2indep(..., method="newcomb")``.

    Examples
    --------
    >>> low, high = diff_interval([30], [100], [20], [100])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (-0.0202, 0.2167)
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    ok = (n1 > 0) & (n2 > 0)
    low, high = confint_proportions_2indep(np.where(ok, c1, 0.0), np.where(ok, n1, 1.0), np.where(ok, c2, 0.0),
                                           np.where(ok, n2, 1.0), method="newcomb", compare="diff", alpha=alpha)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def ratio_interval(count1: Any, nobs1: Any, count2: Any, nobs2: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Katz log interval for the rate ratio ``p1 / p2`` (NaN where either arm has no events).

    Same values as ``confint_proportions_2indep(..., compare="ratio", method="log")``.

    Examples
    --------
    >>> low, high = ratio_interval([30, 0], [100, 100], [20, 5], [100, 100])
    >>> np.round(low, 4), np.round(high, 4)
    (array([0.916,   nan]), array([2.4564,    nan]))
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    ok = (c1 > 0) & (c2 > 0) & (n1 > 0) & (n2 > 0)
    low, high = confint_proportions_2indep(np.where(ok, c1, 1.0), np.where(ok, n1, 2.0), np.where(ok, c2, 1.0),
                                           np.where(ok, n2, 2.0), method="log", compare="ratio", alpha=alpha)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def ztest_2prop(count1: Any, nobs1: Any, count2: Any, nobs2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of ``p1 = p2``: ``(z, two-sided p)``, element-wise.

    Same values as ``statsmodels.stats.proportion.proportions_ztest([c1, c2], [n1, n2])``.
    Where the pooled rate is 0 or 1 (no variance) the statistic is NaN and the p-value 1.

    Examples
    --------
    >>> z, p = ztest_2prop([30], [100], [20], [100])
    >>> round(float(z[0]), 4), round(float(p[0]), 4)
    (1.633, 0.1025)
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (c1 + c2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.where(se > 0, (c1 / n1 - c2 / n2) / se, np.nan)
    p = np.where(np.isnan(z), 1.0, 2 * stats.norm.sf(np.abs(z)))
    empty = (n1 == 0) | (n2 == 0)
    return np.where(empty, np.nan, z), np.where(empty, np.nan, p)


def fisher_exact_pvalue(count1: Any, nobs1: Any, count2: Any, nobs2: Any, max_cells: int = 2_000_000) -> np.ndarray:
    """Two-sided Fisher exact p-value of the 2×2 table ``[[c1, n1-c1], [c2, n2-c2]]``, vectorised.

    Same values as ``scipy.stats.fisher_exact(table).pvalue``: the sum of the hypergeometric
    probabilities of all tables (same margins) no more likely than the observed one. Computed on
    a padded grid of each table's support, ``max_cells`` grid cells at a time.

    Examples
    --------
    >>> np.round(fisher_exact_pvalue([8, 3], [10, 10], [1, 3], [6, 10]), 6)
    array([0.034965, 1.      ])
    """
    c1, n1, c2, n2 = (a.ravel() for a in _arrays(count1, nobs1, count2, nobs2, dtype=np.int64))
    shape = np.broadcast_shapes(*(np.shape(v) for v in (count1, nobs1, count2, nobs2)))
    out = np.full(c1.shape, np.nan)
    empty = (n1 == 0) | (n2 == 0)
    k, total = c1 + c2, n1 + n2
    degenerate = ~empty & ((k == 0) | (k == total))
    out[degenerate] = 1.0
    todo = np.flatnonzero(~empty & ~degenerate)
    if todo.size:
        lo = np.maximum(0, k - n2)
        width = np.minimum(k, n1) - lo + 1
        gamma = 1 + 1e-14  # scipy's relative tolerance for "equally likely"
        order = todo[np.argsort(width[todo], kind="stable")]
        start = 0
        while start < order.size:  # chunks bounded by grid size (widths sorted ascending)
            stop = start + 1
            while stop < order.size and (stop + 1 - start) * width[order[stop]] <= max_cells:
                stop += 1
            idx = order[start:stop]
            start = stop
            w = int(width[idx].max())
            x = lo[idx, None] + np.arange(w)[None, :]
            valid = x <= (lo[idx] + width[idx] - 1)[:, None]
            M, n, N = total[idx, None], n1[idx, None], k[idx, None]
            pmf = np.where(valid, stats.hypergeom.pmf(x, M, n, N), 0.0)
            pexact = stats.hypergeom.pmf(c1[idx], total[idx], n1[idx], k[idx])
            mode = ((k[idx] + 1) * (n1[idx] + 1)) // (total[idx] + 2)
            pmode = stats.hypergeom.pmf(mode, total[idx], n1[idx], k[idx])
            tie = np.abs(pexact - pmode) / np.maximum(pexact, pmode) <= 1e-14
            same_side = np.where((c1[idx] < mode)[:, None], x <= c1[idx, None], x >= c1[idx, None])
            mask = valid & ((pmf <= (pexact * gamma)[:, None]) | same_side)
            out[idx] = np.where(tie, 1.0, np.minimum((pmf * mask).sum(axis=1), 1.0))
    return out.reshape(shape)


def mean_interval(nobs: Any, mean: Any, var: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """t interval for a mean from ``n``, mean and variance (ddof=1); NaN where ``n < 2``.

    Same values as ``statsmodels DescrStatsW(x).tconfint_mean(alpha)``.

    Examples
    --------
    >>> low, high = mean_interval([4], [2.5], [np.var([1, 2, 3, 4], ddof=1)])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.4457, 4.5543)
    """
    n, m, v = _arrays(nobs, mean, var)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.isf(alpha / 2, n - 1) * np.sqrt(v / n)
    ok = n >= 2
    return np.where(ok, m - half, np.nan), np.where(ok, m + half, np.nan)


def welch_diff(nobs1: Any, mean1: Any, var1: Any, nobs2: Any, mean2: Any, var2: Any,
               alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Welch comparison of two means from group statistics (variances with ddof=1).

    Returns arrays ``diff, low, high, se, df, t, p``: the difference ``mean1 - mean2``, its Welch
    t interval, standard error, Satterthwaite degrees of freedom, t statistic and two-sided
    p-value — the values of ``statsmodels CompareMeans(d1, d2).tconfint_diff(usevar="unequal")``
    and ``ttest_ind(x1, x2, usevar="unequal")``. NaN where an arm has fewer than 2 customers or
    both variances are 0.

    Examples
    --------
    >>> r = welch_diff([5], [2.0], [2.5], [4], [1.0], [1.0 / 3])
    >>> round(float(r["diff"][0]), 3), round(float(r["df"][0]), 3), round(float(r["p"][0]), 4)
    (1.0, 5.25, 0.2448)
    """
    n1, m1, v1, n2, m2, v2 = _arrays(nobs1, mean1, var1, nobs2, mean2, var2)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2 = v1 / n1, v2 / n2
        se2 = s1 + s2
        se = np.sqrt(se2)
        df = se2 ** 2 / (s1 ** 2 / (n1 - 1) + s2 ** 2 / (n2 - 1))
        diff = m1 - m2
        t = diff / se
        p = 2 * stats.t.sf(np.abs(t), df)
        half = stats.t.isf(alpha / 2, df) * se
    ok = (n1 >= 2) & (n2 >= 2) & (se2 > 0)
    nan = np.full(diff.shape, np.nan)
    return {"diff": np.where((n1 > 0) & (n2 > 0), diff, np.nan), "low": np.where(ok, diff - half, nan),
            "high": np.where(ok, diff + half, nan), "se": np.where(ok, se, nan), "df": np.where(ok, df, nan),
            "t": np.where(ok, t, nan), "p": np.where(ok, p, nan)}


def ratio_of_means_interval(nobs1: Any, mean1: Any, var1: Any, nobs2: Any, mean2: Any, var2: Any,
                            alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method interval for ``mean1 / mean2`` on the log scale (NaN unless both means > 0).

    ``exp(log(m1/m2) ± z·sqrt(v1/(n1·m1²) + v2/(n2·m2²)))``.

    Examples
    --------
    >>> low, high = ratio_of_means_interval([100], [2.0], [4.0], [100], [1.0], [1.0])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (1.5158, 2.6388)
    """
    n1, m1, v1, n2, m2, v2 = _arrays(nobs1, mean1, var1, nobs2, mean2, var2)
    ok = (m1 > 0) & (m2 > 0) & (n1 >= 2) & (n2 >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v1 / (n1 * m1 ** 2) + v2 / (n2 * m2 ** 2))
        center = np.log(m1 / m2)
    z = stats.norm.isf(alpha / 2)
    return np.where(ok, np.exp(center - z * se), np.nan), np.where(ok, np.exp(center + z * se), np.nan)


def _bisect_increasing(func, low: np.ndarray, high: np.ndarray, target: float, iterations: int = 200) -> np.ndarray:
    """Vectorised bisection for ``func(x) = target`` with ``func`` increasing on ``[low, high]``;
    NaN where ``func(high) < target``."""
    low, high = low.astype(float).copy(), high.astype(float).copy()
    reachable = func(high) >= target
    for _ in range(iterations):
        mid = (low + high) / 2
        below = func(mid) < target
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
        if np.all(high - low <= 1e-15 * np.maximum(1.0, np.abs(high))):
            break
    return np.where(reachable, (low + high) / 2, np.nan)


def mde_proportions(prop2: Any, nobs1: Any, nobs2: Any, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest increase ``p1 - p2`` that the two-sided pooled z-test detects with ``power``.

    Solves ``statsmodels power_proportions_2indep(diff, prop2, nobs1, ratio=nobs2/nobs1, alpha)
    == power`` for ``diff`` (vectorised bisection). NaN when no increase up to ``p1 = 1`` is
    detectable or an arm is empty.

    Examples
    --------
    >>> np.round(mde_proportions([0.05, 0.05], [1000, 10000], [1000, 10000]), 5)
    array([0.03098, 0.00899])
    """
    p2, n1, n2 = _arrays(prop2, nobs1, nobs2)
    ok = (n1 > 0) & (n2 > 0) & (p2 >= 0) & (p2 < 1)
    p2s, n1s, ratio = np.where(ok, p2, 0.5), np.where(ok, n1, 1.0), np.where(ok, n2 / np.where(ok, n1, 1.0), 1.0)

    def pw(diff: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(power_proportions_2indep(diff, p2s, n1s, ratio=ratio, alpha=alpha,
                                                          return_results=False), nan=0.0)

    # p1 = 1 exactly with p2 = 0 has no variance at all; stop just short of it
    out = _bisect_increasing(pw, np.zeros_like(p2s), (1.0 - p2s) * (1 - 1e-9), power)
    return np.where(ok, out, np.nan)


def mde_means(sd1: Any, nobs1: Any, sd2: Any, nobs2: Any, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest increase of a mean that a two-sided z-test detects with ``power`` (Welch-type SE).

    Solves ``statsmodels normal_power_het(diff, nobs=1, alpha, std_null=se, std_alternative=se)
    == power`` with ``se = sqrt(sd1²/n1 + sd2²/n2)``.

    Examples
    --------
    >>> round(float(mde_means([10.0], [1000], [10.0], [1000])[0]), 4)
    1.2529
    """
    s1, n1, s2, n2 = _arrays(sd1, nobs1, sd2, nobs2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(s1 ** 2 / n1 + s2 ** 2 / n2)
    ok = np.isfinite(se) & (se > 0)
    se_ = np.where(ok, se, 1.0)

    def pw(diff: np.ndarray) -> np.ndarray:
        return normal_power_het(diff, 1, alpha, std_null=se_, std_alternative=se_)

    out = _bisect_increasing(pw, np.zeros_like(se_), 20 * se_, power)
    return np.where(ok, out, np.nan)


def sample_size_proportions(diff: Any, prop2: Any, ratio: Any = 1.0, alpha: float = 0.05,
                            power: float = 0.8) -> np.ndarray:
    """Customers needed in arm 1 (arm 2 gets ``ratio`` times as many) to detect ``p1 = p2 + diff``.

    ``statsmodels samplesize_proportions_2indep_onetail`` (two-sided test), rounded up.
    NaN where ``diff <= 0`` or ``p2 + diff > 1``.

    Examples
    --------
    >>> sample_size_proportions([0.005, 0.01], [0.05, 0.05], ratio=0.25)
    array([78911., 20799.])
    """
    d, p2, r = _arrays(diff, prop2, ratio)
    ok = (d > 0) & (p2 >= 0) & (p2 + d <= 1) & (r > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = samplesize_proportions_2indep_onetail(np.where(ok, d, 0.1), np.where(ok, p2, 0.1), power,
                                                  ratio=np.where(ok, r, 1.0), alpha=alpha)
    return np.where(ok, np.ceil(n - 1e-9), np.nan)


def sample_size_means(diff: Any, sd1: Any, sd2: Any, ratio: Any = 1.0, alpha: float = 0.05,
                      power: float = 0.8) -> np.ndarray:
    """Customers needed in arm 1 (arm 2: ``ratio`` times as many) to detect a mean increase ``diff``.

    ``statsmodels normal_sample_size_one_tail(diff, power, alpha/2, std_null=sqrt(sd1² + sd2²/ratio))``
    rounded up.

    Examples
    --------
    >>> sample_size_means([1.0], [10.0], [10.0])
    array([1570.])
    """
    d, s1, s2, r = _arrays(diff, sd1, sd2, ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(s1 ** 2 + s2 ** 2 / r)
    ok = (d > 0) & np.isfinite(std) & (std > 0) & (r > 0)
    n = normal_sample_size_one_tail(np.where(ok, d, 1.0), power, alpha / 2, std_null=np.where(ok, std, 1.0))
    return np.where(ok, np.ceil(n - 1e-9), np.nan)


def adjust_pvalues(pvalues: Any, method: str = "holm", groups: Any = None) -> np.ndarray:
    """Multiple-testing adjusted p-values within each group (NaN entries left out), vectorised.

    Holm step-down, Benjamini–Hochberg step-up or Bonferroni: the values of ``statsmodels
    multipletests(p, method=...)[1]`` applied to each group separately (computed with one sort
    over all groups; ``multipletests`` itself runs a garbage collection per call for Holm, too
    slow for many families).

    Examples
    --------
    >>> adjust_pvalues([0.01, np.nan, 0.04, 0.03], "holm")
    array([0.03,  nan, 0.06, 0.06])
    >>> adjust_pvalues([0.01, 0.04, 0.03, 0.5], "fdr_bh", groups=["a", "a", "a", "b"])
    array([0.03, 0.04, 0.04, 0.5 ])
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    out = p.copy()
    ok = ~np.isnan(p)
    if CORRECTIONS[method] is None or not ok.any():
        return out
    g = np.zeros(len(p), np.int64) if groups is None else pd.factorize(np.asarray(groups, dtype=object).ravel())[0]
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((p[idx], g[idx]))]
    gs, ps = g[order], p[order]
    frame = pd.DataFrame({"g": gs})
    m = frame.groupby("g")["g"].transform("size").to_numpy(dtype=float)
    rank = frame.groupby("g").cumcount().to_numpy(dtype=float) + 1  # 1-based rank within the family
    if method == "bonferroni":
        adj = np.minimum(ps * m, 1.0)
    elif method == "holm":
        adj = pd.Series(ps * (m - rank + 1)).groupby(gs).cummax().to_numpy()
        adj = np.minimum(adj, 1.0)
    else:  # fdr_bh: running minimum from the largest p downwards
        raw = pd.Series(ps * m / rank)
        adj = raw[::-1].groupby(gs[::-1]).cummin()[::-1].to_numpy()
        adj = np.minimum(adj, 1.0)
    out[order] = adj
    return out


# ============================================================================ input preparation
def _flag_values(values: pd.Series, column: str, source: str) -> np.ndarray:
    """A flag column as floats 1/0/NaN, or a DataError naming the rows with other values."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(values):
        out = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isnan(out) & ~np.isin(out, (0.0, 1.0))
    else:
        text = values.astype("string").str.strip().str.lower()
        out = np.where(text.isin(BOOLEAN_TRUE).fillna(False).to_numpy(dtype=bool), 1.0,
                       np.where(text.isin(BOOLEAN_FALSE).fillna(False).to_numpy(dtype=bool), 0.0, np.nan))
        bad = (text.notna() & (text != "")).to_numpy(dtype=bool) & np.isnan(out)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{source}: column '{column}' has values that are not yes/no flags at {format_rows(rows)} "
                        f"(e.g. {values.iloc[rows[0]]!r}). Use true/false, 1/0 or yes/no (empty = not observed).")
    return out


def _numeric_values(values: pd.Series, column: str, source: str) -> np.ndarray:
    out = pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(out) & values.notna().to_numpy(dtype=bool)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{source}: column '{column}' has values that are not numbers at {format_rows(rows)} "
                        f"(e.g. {values.iloc[rows[0]]!r}). Fix these cells (amounts without currency signs).")
    return out


def segment_labels(customer_ids: pd.Series, labels: pd.DataFrame | None, dimension: str,
                   source: str = "customer_segments.csv", campaign_ids: pd.Series | None = None) -> pd.Series:
    """Segment label of each customer in ``customer_ids`` (``"unlabelled"`` when missing).

    ``dimension = "none"`` gives every customer the segment ``"All customers"``. When
    ``labels`` has a ``campaign_id`` column (labels as of each send, :func:`segments_at_send`),
    a row is looked up by campaign and customer (``campaign_ids`` aligned with ``customer_ids``).

    Examples
    --------
    >>> labels = pd.DataFrame({"customer_id": ["a", "b"], "rfm_segment": ["Champions", None]})
    >>> segment_labels(pd.Series(["a", "b", "z"]), labels, "rfm_segment").tolist()
    ['Champions', 'unlabelled', 'unlabelled']
    """
    ids = customer_ids.astype("string")
    if dimension == "none":
        return pd.Series(ALL_SEGMENTS, index=customer_ids.index, dtype="string")
    if labels is None or dimension not in labels.columns:
        have = [c for c in SEGMENT_DIMENSIONS if labels is not None and c in labels.columns]
        raise DataError(f"{source}: no column '{dimension}' to segment the campaign by (segment dimensions "
                        f"present: {', '.join(have) or 'none'}). Run the notebook that writes it "
                        f"({ {'rfm_segment': '02_rfm', 'cluster_name': '03_clustering', 'lifecycle_stage': '04_lifecycle'}[dimension] }) "
                        "or set segment_by to one that is present (or 'none').")
    if "customer_id" not in labels.columns:
        raise DataError(f"{source}: column 'customer_id' is missing; the file must have one row per customer.")
    per_send = "campaign_id" in labels.columns and campaign_ids is not None
    keyed = labels[["customer_id", dimension]].copy()
    keyed["customer_id"] = keyed["customer_id"].astype("string")
    if per_send:
        keyed["customer_id"] = labels["campaign_id"].astype("string").str.strip() + "\x1f" + keyed["customer_id"]
        ids = campaign_ids.astype("string").str.strip() + "\x1f" + ids.str.strip()
    dup = keyed["customer_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataError(f"{source}: customer ids repeat at {format_rows(rows)} "
                        f"(e.g. {keyed['customer_id'].iloc[rows[0]]!r}). It must have one row per customer: "
                        "rebuild it by rerunning the segmentation notebooks.")
    lookup = pd.Series(keyed[dimension].astype("string").to_numpy(), index=keyed["customer_id"].to_numpy())
    out = pd.Series(lookup.reindex(ids.to_numpy()).to_numpy(), index=customer_ids.index, dtype="string")
    out = out.str.strip()
    return out.mask(out.isna() | (out == ""), UNLABELLED)


def retention_flags(campaign: pd.DataFrame, transactions: pd.DataFrame, days: int,
                    as_of: str | pd.Timestamp | None = None) -> pd.Series:
    """1.0 when the customer made a purchase within ``days`` after the send, else 0.0; NaN if unknown.

    A purchase is an order with net amount > 0 (:func:`segkit.data.orders.order_table`), dated after
    ``sent_at`` and no later than ``sent_at + days``. Rows without ``sent_at`` (a holdout is often
    not stamped) use their campaign's first send time; a campaign without any ``sent_at`` is
    NaN, as is every row whose window ends after ``as_of`` (default: the day after the last
    order): its outcome is not known yet, and counting only those who already bought would bias
    retention upwards.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["c"] * 3, "customer_id": ["a", "b", "c"],
    ...                      "sent_at": pd.to_datetime(["2024-01-01", None, "2024-01-20"])})
    >>> tx = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"],
    ...                    "order_date": pd.to_datetime(["2024-01-05", "2024-02-20"]), "amount": [5.0, 9.0]})
    >>> retention_flags(camp, tx, days=30, as_of="2024-02-10").tolist()
    [1.0, 0.0, nan]
    """

    sent = pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign else \
        pd.Series(pd.NaT, index=campaign.index, dtype="datetime64[ns]")
    first = sent.groupby(pd.factorize(campaign["campaign_id"])[0]).transform("min")
    sent = sent.fillna(first)
    tx = transactions[transactions["customer_id"].notna()] if "customer_id" in transactions else transactions
    orders = order_table(tx)
    orders = orders.loc[orders["is_purchase"], ["customer_id", "order_date"]]
    end = (pd.Timestamp(as_of) if as_of is not None else
           day_after(orders["order_date"].max()))
    # integer customer keys: merge_asof "by" on codes is much faster than on strings
    ids = pd.concat([campaign["customer_id"].astype("string").str.strip(), orders["customer_id"].astype("string")],
                    ignore_index=True)
    codes = pd.factorize(ids)[0]
    left = pd.DataFrame({"customer": codes[:len(campaign)], "sent_at": sent.to_numpy(dtype="datetime64[ns]"),
                         "row": np.arange(len(campaign))})
    known = left["sent_at"].notna().to_numpy()
    result = np.full(len(campaign), np.nan)
    if known.any():
        lk = left[known].sort_values("sent_at", kind="mergesort")
        right = pd.DataFrame({"customer": codes[len(campaign):],
                              "order_date": orders["order_date"].to_numpy(dtype="datetime64[ns]")})
        right = right.sort_values("order_date", kind="mergesort")
        nxt = pd.merge_asof(lk, right, left_on="sent_at", right_on="order_date", by="customer",
                            direction="forward", allow_exact_matches=False)
        window_end = nxt["sent_at"] + pd.Timedelta(days=int(days))
        hit = (nxt["order_date"].notna() & (nxt["order_date"] <= window_end)).to_numpy()
        complete = (window_end <= end).to_numpy() if pd.notna(end) else np.zeros(len(nxt), bool)
        # only complete windows count: keeping early buyers of unfinished windows would bias retention up
        result[nxt["row"].to_numpy()] = np.where(complete, hit.astype(float), np.nan)
    return pd.Series(result, index=campaign.index, name="retained")


# ============================================================================ segments as of each send
NO_PURCHASE = "no purchase before send"


def send_dates(campaign: pd.DataFrame) -> pd.Series:
    """Segmentation date of each campaign: the day of its earliest ``sent_at`` (midnight).

    Segments use only data *strictly before* this day, so that nothing the e-mail caused (a
    purchase on the send day included) can shape the segment a recipient is counted in.
    NaT for a campaign without any send time.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["a", "a", "b"],
    ...                      "sent_at": pd.to_datetime(["2024-03-02 09:00", "2024-03-01 18:00", None])})
    >>> send_dates(camp).dt.strftime("%Y-%m-%d").tolist()
    ['2024-03-01', nan]
    """
    ids = campaign["campaign_id"].astype("string").str.strip()
    sent = (pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign.columns
            else pd.Series(pd.NaT, index=campaign.index, dtype="datetime64[ns]"))
    return sent.groupby(ids.to_numpy(), sort=True).min().dt.normalize().rename("send_date")


class LinesInMemory:
    """The order lines :func:`segments_at_send` segments recipients from, held in memory.

    Each method sees only the lines dated strictly before ``day``. The out-of-core twin,
    :class:`segkit.campaign.LinesOnDisk`, answers the same questions from the clean file with DuckDB.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"], "amount": 5.0,
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01"])})
    >>> LinesInMemory(tx).purchase_orders(pd.Timestamp("2024-02-01"))["customer_id"].tolist()
    ['a']
    """

    def __init__(self, transactions: pd.DataFrame):
        self.transactions = transactions
        self._dates = pd.to_datetime(transactions["order_date"])

    def before(self, day: pd.Timestamp) -> pd.DataFrame:
        return self.transactions[(self._dates < day).to_numpy()]

    def any_before(self, day: pd.Timestamp) -> bool:
        return bool((self._dates < day).any())

    def rfm_table(self, day: pd.Timestamp) -> pd.DataFrame:
        """:func:`segkit.data.orders.rfm_table` of the lines before ``day`` (empty without any)."""

        tx = self.before(day)
        if tx.empty:
            return pd.DataFrame(columns=["customer_id"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RFMWarning)
            return rfm_table(tx, day)

    def purchase_orders(self, day: pd.Timestamp) -> pd.DataFrame:
        """Purchase orders (:func:`segkit.data.orders.purchase_orders`) of the lines before ``day``."""

        tx = self.before(day)
        return purchase_orders(tx, day) if len(tx) else pd.DataFrame(columns=["customer_id", "order_date", "amount"])

    def customer_table(self, day: pd.Timestamp, customers: pd.DataFrame | None, campaign: pd.DataFrame | None,
                       control_arm: str, max_channels: int) -> pd.DataFrame:
        """:func:`segkit.features.customer_table` as of ``day``."""

        return customer_table(self.before(day), customers, campaign, day, control_arm=control_arm,
                              max_channels=max_channels)


def rfm_segments_as_of(transactions: pd.DataFrame, as_of: pd.Timestamp, rfm_settings: Any) -> pd.Series:
    """RFM segment of every buyer with purchases strictly before ``as_of`` (index ``customer_id``).

    The RFM table is computed on the orders before ``as_of`` and the scorer is **refitted** on
    that base (the same ``bins``, monetary column and segment map as notebook 02): a score is a
    customer's rank among the customers known at the send, which is what the marketer saw then.
    Applying the run's edges instead would score every early campaign's recipients low on
    frequency and spend only because their history was shorter.

    Examples
    --------
    >>> from segkit.rfm import RFMSettings
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-02-02", "2024-05-02"]),
    ...     "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> rfm_segments_as_of(tx, pd.Timestamp("2024-04-01"), RFMSettings.from_config(None)).to_dict()
    {'a': 'Potential Loyalist', 'b': 'About To Sleep'}
    """
    return rfm_segments(LinesInMemory(transactions).rfm_table(as_of), rfm_settings)


def rfm_segments(rfm: pd.DataFrame, rfm_settings: Any) -> pd.Series:
    """RFM segments of the customers of an RFM table, scored among themselves (index ``customer_id``)."""

    if rfm.empty:
        return pd.Series([], dtype="string", name="rfm_segment")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFMWarning)
        scores = RFMScorer(bins=rfm_settings.bins, monetary_col=rfm_settings.monetary_column).fit(rfm).transform(rfm)
    five = [to_five_point(scores[c], rfm_settings.bins) for c in ("r_score", "f_score", "m_score")]
    names = rfm_settings.segments.assign(*five).to_numpy()
    return pd.Series(names, index=pd.Index(rfm["customer_id"].astype("string").to_numpy(), name="customer_id"),
                     dtype="string", name="rfm_segment")


def lifecycle_stages_as_of(transactions: pd.DataFrame, as_of: pd.Timestamp, lifecycle_settings: Any) -> pd.Series:
    """Lifecycle stage of every buyer with purchases strictly before ``as_of`` (index ``customer_id``).

    The stager of notebook 04 (same ``lifecycle`` settings) is fitted on the purchase history
    before ``as_of`` and stages are assigned as of that day. The BG/NBD P(alive) rule is not
    applied: the run's BG/NBD model is fitted on purchases after the send.

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> from segkit.lifecycle import LifecycleSettings
    >>> tx = pd.DataFrame({"customer_id": list("aabc"), "order_id": list("1234"),
    ...     "order_date": pd.to_datetime(["2023-01-01", "2024-03-01", "2024-03-20", "2024-05-02"]),
    ...     "amount": 10.0})
    >>> lifecycle_stages_as_of(tx, pd.Timestamp("2024-04-01"), LifecycleSettings.from_config(load_config()["lifecycle"])).to_dict()
    {'a': 'reactivated', 'b': 'new'}
    """
    return lifecycle_stages(LinesInMemory(transactions).purchase_orders(as_of), as_of, lifecycle_settings)


def lifecycle_stages(orders: pd.DataFrame, as_of: pd.Timestamp, lifecycle_settings: Any) -> pd.Series:
    """Lifecycle stages as of ``as_of`` from the purchase orders (or days) before it (index ``customer_id``)."""

    if orders.empty:
        return pd.Series([], dtype="string", name="lifecycle_stage")
    history = purchase_history(orders)
    stager = lifecycle_settings.stager()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stages = stager.fit(history, as_of).predict(history, as_of)["lifecycle_stage"]
    return pd.Series(stages.astype("string").to_numpy(), index=pd.Index(stages.index.astype("string"),
                     name="customer_id"), dtype="string", name="lifecycle_stage")


def segments_at_send(campaign: pd.DataFrame, transactions: "pd.DataFrame | LinesInMemory", dimensions: Sequence[str],
                     *, rfm_settings: Any = None, lifecycle_settings: Any = None, cluster_model: Any = None,
                     customers: pd.DataFrame | None = None, control_arm: str | None = "control",
                     max_channels: int = 6) -> pd.DataFrame:
    """Segment labels of every campaign recipient as of the day of that campaign's first send.

    One row per campaign row: ``campaign_id, customer_id`` and one column per dimension of
    ``dimensions`` (``rfm_segment`` via :func:`rfm_segments_as_of`, ``lifecycle_stage`` via
    :func:`lifecycle_stages_as_of`, ``cluster_name`` = ``cluster_model`` — the run's fitted
    feature builder + clusterer, :class:`segkit.cluster.SegmentModel` — applied to the customer
    table built from data before the send, :func:`segkit.features.customer_table`; its e-mail
    features count only earlier campaigns). Recipients without a purchase before the send are
    the segment ``"no purchase before send"`` in every dimension. Campaigns without a send
    date cannot be segmented without hindsight: their labels are ``"unlabelled"``. ``transactions``
    is the clean order lines, or a source of them (:class:`LinesInMemory`,
    :class:`segkit.campaign.LinesOnDisk` for logs the run keeps out of memory).

    Examples
    --------
    >>> from segkit.rfm import RFMSettings
    >>> camp = pd.DataFrame({"campaign_id": ["c", "c", "c"], "customer_id": ["a", "b", "z"],
    ...     "arm": ["email", "control", "email"], "sent_at": pd.to_datetime(["2024-04-01 09:00"] * 3)})
    >>> tx = pd.DataFrame({"customer_id": list("aabz"), "order_id": list("1234"),
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-04-01"]),
    ...     "amount": 10.0})
    >>> segments_at_send(camp, tx, ["rfm_segment"], rfm_settings=RFMSettings.from_config(None))
      campaign_id customer_id              rfm_segment
    0           c           a                Champions
    1           c           b           About To Sleep
    2           c           z  no purchase before send
    """
    lines = LinesInMemory(transactions) if isinstance(transactions, pd.DataFrame) else transactions
    ids = campaign["campaign_id"].astype("string").str.strip()
    cust = campaign["customer_id"].astype("string").str.strip()
    out = pd.DataFrame({"campaign_id": ids.to_numpy(), "customer_id": cust.to_numpy()})
    for dim in dimensions:
        out[dim] = pd.array([UNLABELLED] * len(out), dtype="string")
    dates = send_dates(campaign)
    sent = pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign.columns else None
    for cid, day in dates.dropna().items():
        rows = (ids == cid).to_numpy()
        who = cust[rows].to_numpy()
        for dim in dimensions:
            if dim == "rfm_segment":
                lab = rfm_segments(lines.rfm_table(day), rfm_settings)
            elif dim == "lifecycle_stage":
                lab = lifecycle_stages(lines.purchase_orders(day), day, lifecycle_settings)
            elif dim == "cluster_name":
                lab = _clusters_as_of(lines, day, cluster_model, customers, campaign, sent, control_arm,
                                      max_channels)
            else:
                raise ConfigError(f"Unknown segment dimension {dim!r}; use one of {', '.join(SEGMENT_DIMENSIONS)}.")
            values = lab.reindex(who).fillna(NO_PURCHASE).to_numpy()
            out.loc[rows, dim] = values
    return out


def _clusters_as_of(lines: "LinesInMemory", day: pd.Timestamp, model: Any, customers: pd.DataFrame | None,
                    campaign: pd.DataFrame, sent: pd.Series | None, control_arm: str | None,
                    max_channels: int) -> pd.Series:
    """Cluster names of buyers before ``day`` from the fitted ``model`` (features as of ``day``)."""
    if model is None or not lines.any_before(day):
        return pd.Series([], dtype="string", name="cluster_name")
    earlier = campaign[(sent < day).to_numpy()] if sent is not None else campaign.iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = lines.customer_table(day, customers, earlier if len(earlier) else None,
                                     control_arm=control_arm or "control", max_channels=max_channels)
    # before the first campaign nobody has e-mail features: missing, imputed by the fitted builder
    used = [*getattr(model.builder, "numeric_features_", []), *getattr(model.builder, "categorical_features_", [])]
    for col in used:
        if col not in table.columns:
            table[col] = np.nan
    names = model.predict_names(table)
    ids = table["customer_id"].astype("string").to_numpy() if "customer_id" in table.columns else names.index
    return pd.Series(names.to_numpy(), index=pd.Index(ids, name="customer_id"), dtype="string", name="cluster_name")


def _key_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of stripped text keys (-1 = missing/empty) and the sorted unique names."""
    raw_codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names = pd.Series(pd.Index(uniques).astype(str), dtype="string").str.strip()
    names = names.mask(names == "")
    name_codes, name_uniques = pd.factorize(names, use_na_sentinel=True)
    order = np.argsort(np.asarray(name_uniques, dtype=object).astype(str), kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    mapped = np.where(name_codes >= 0, rank[np.maximum(name_codes, 0)] if len(rank) else -1, -1)
    out = np.where(raw_codes >= 0, mapped[np.maximum(raw_codes, 0)] if len(mapped) else -1, -1)
    return out.astype(np.int64), np.asarray(name_uniques, dtype=object)[order].astype(str)


def segment_column(segments: Any, n: int) -> pd.Categorical:
    """Segment labels as a Categorical (``"All customers"`` for all when None, missing → ``"unlabelled"``)."""
    if segments is None:
        return pd.Categorical.from_codes(np.zeros(n, np.int64), categories=[ALL_SEGMENTS])
    codes, names = _key_codes(pd.Series(np.asarray(segments, dtype=object)).fillna(UNLABELLED))
    if (codes < 0).any():  # empty text labels
        names = np.append(names, UNLABELLED) if UNLABELLED not in names else names
        codes = np.where(codes < 0, int(np.flatnonzero(names == UNLABELLED)[0]), codes)
    return pd.Categorical.from_codes(codes, categories=names)


def prepare_campaign(campaign: pd.DataFrame, segments: pd.Series | None = None,
                     retained: pd.Series | None = None, source: str = "campaign_clean") -> pd.DataFrame:
    """Check a canonical campaign frame and return the per-customer frame the statistics use.

    Columns: ``campaign_id, arm, segment`` (strings), flags ``delivered, opened, clicked,
    converted, unsubscribed, retained`` as 1.0/0.0/NaN (NaN = not observed; an absent
    ``delivered`` column means delivered), ``revenue`` (missing → 0 in a campaign that records
    revenue; NaN throughout a campaign without any non-zero amount: revenue not recorded; a
    negative amount is invalid → NaN, unknown, left out of the revenue metrics) and
    ``cost`` (NaN = not given).

    Raises
    ------
    DataError
        Missing ``campaign_id``/``customer_id``/``arm`` (column or values), repeated
        customer per campaign, flags or amounts that cannot be read; the message names the
        column and rows.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["c", "c"], "customer_id": ["a", "b"], "arm": ["email", "control"],
    ...                      "converted": ["yes", "no"], "revenue": [12.0, None]})
    >>> prepare_campaign(camp)[["arm", "delivered", "converted", "revenue"]]
           arm  delivered  converted  revenue
    0    email        1.0        1.0     12.0
    1  control        1.0        0.0      0.0
    """
    missing = [c for c in ("campaign_id", "customer_id", "arm") if c not in campaign.columns]
    if missing:
        raise DataError(f"{source}: required column(s) {', '.join(map(repr, missing))} missing (columns present: "
                        f"{', '.join(map(str, campaign.columns)) or 'none'}). Map them under columns.campaign in "
                        "the config.")
    if len(campaign) == 0:
        raise DataError(f"{source}: the campaign table has no rows. Check the campaign file (data.campaign).")
    frame = campaign.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    codes = {}
    for column in ("campaign_id", "customer_id", "arm"):
        codes[column], names = _key_codes(frame[column])
        empty = codes[column] < 0
        if empty.any():
            raise DataError(f"{source}: column '{column}' is empty at {format_rows(np.flatnonzero(empty))}. "
                            "Every campaign row needs a campaign, a customer and an arm: fill or drop these rows.")
        if column == "customer_id":
            out[column] = pd.array(names.take(codes[column]), dtype="string")
        else:
            out[column] = pd.Categorical.from_codes(codes[column], categories=names)
    key = codes["campaign_id"].astype(np.int64) * (int(codes["customer_id"].max()) + 1) + codes["customer_id"]
    dup = pd.Series(key).duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataError(f"{source}: customer {out['customer_id'].iloc[rows[0]]!r} appears more than once in campaign "
                        f"{out['campaign_id'].iloc[rows[0]]!r} ({format_rows(rows)}). Keep one row per customer "
                        "and campaign (a customer belongs to one arm).")
    out["segment"] = segment_column(segments, len(frame))
    for column in FLAG_COLUMNS:
        if column in frame.columns:
            out[column] = _flag_values(frame[column], column, source)
        else:
            out[column] = 1.0 if column == "delivered" else np.nan
    out["retained"] = (np.asarray(retained, dtype=float) if retained is not None else np.nan)
    revenue = (_numeric_values(frame["revenue"], "revenue", source) if "revenue" in frame.columns
               else np.full(len(frame), np.nan))
    # a negative revenue is invalid (the audit reports it): unknown, left out of the revenue metrics
    invalid = revenue < 0
    valid = np.where(invalid, 0.0, np.nan_to_num(revenue))
    # a campaign "records revenue" when some row has a non-zero amount (all 0 = not recorded)
    records = pd.Series(valid != 0).groupby(codes["campaign_id"]).transform("any").to_numpy()
    out["revenue"] = np.where(records & ~invalid, valid, np.nan)
    out["cost"] = (_numeric_values(frame["cost"], "cost", source) if "cost" in frame.columns
                   else np.nan)
    if "sent_at" in frame.columns:
        out["sent_at"] = pd.to_datetime(frame["sent_at"], errors="coerce")
    return out


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


def arm_metrics(prepared: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Counts, rates and revenue per campaign × segment × arm × metric, with 95% intervals.

    ``prepared`` comes from :func:`prepare_campaign`. Every campaign also gets the segment
    ``"All customers"``. Columns: ``campaign_id, segment, arm, metric, n`` (denominator),
    ``count`` (events; buyers for revenue), ``value, ci_low, ci_high`` (Wilson for rates, t for
    revenue), ``sd`` (revenue), ``var``, ``customers`` (assigned to the cell), ``cost`` (sum;
    NaN when none given). Metrics never observed in a campaign (e.g. no ``opened`` column) are
    left out.

    Examples
    --------
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"),
    ...     "arm": ["email", "email", "control", "control"], "converted": [1, 0, 0, 0]}))
    >>> arm_metrics(prep).query("metric == 'conversion_rate'")[["arm", "n", "count", "value"]].reset_index(drop=True)
           arm  n  count  value
    0  control  2      0    0.0
    1    email  2      1    0.5
    """
    f = prepared
    data: dict[str, Any] = {"campaign_id": f["campaign_id"].to_numpy(), "segment": f["segment"].to_numpy(),
                            "arm": f["arm"].to_numpy(), "customers": np.ones(len(f), np.int64),
                            "cost": f["cost"].to_numpy(dtype=float), "revenue": f["revenue"].to_numpy(dtype=float),
                            "buyers": (f["revenue"].to_numpy(dtype=float) > 0).astype(np.int64)}
    sums = ["customers", "buyers"]
    for m in METRICS:
        if m.kind != "proportion":
            continue
        y = f[m.outcome].to_numpy(dtype=float)
        base = f[m.base].to_numpy(dtype=float) == 1 if m.base else np.ones(len(f), bool)
        den = ~np.isnan(y) & base
        data[f"n|{m.name}"] = den.astype(np.int64)
        data[f"x|{m.name}"] = (den & (y == 1)).astype(np.int64)
        sums += [f"n|{m.name}", f"x|{m.name}"]
    wide = pd.DataFrame(data)

    def aggregate(keys: list[str]) -> pd.DataFrame:
        g = wide.groupby(keys, sort=True, observed=True)
        out = g[sums].sum()
        out["cost"] = g["cost"].sum(min_count=1)
        out["rev_n"] = g["revenue"].count()
        out["rev_mean"] = g["revenue"].mean()
        out["rev_var"] = g["revenue"].var(ddof=1)
        out = out.reset_index()
        return out.astype({k: str for k in keys})

    cells = [aggregate(["campaign_id", "arm"]).assign(segment=ALL_SEGMENTS)]
    if (f["segment"] != ALL_SEGMENTS).any():
        cells.append(aggregate(["campaign_id", "segment", "arm"]))
    cells = pd.concat(cells, ignore_index=True)
    parts = []
    base_cols = cells[["campaign_id", "segment", "arm", "customers", "cost"]]
    for m in METRICS:
        if m.kind == "proportion":
            n = cells[f"n|{m.name}"].to_numpy(dtype=float)
            count = cells[f"x|{m.name}"].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(n > 0, count / n, np.nan)
            low, high = wilson_interval(count, n, alpha)
            var = np.where(n > 0, value * (1 - value), np.nan)
        else:
            n = cells["rev_n"].to_numpy(dtype=float)
            count = cells["buyers"].to_numpy(dtype=float)
            value = cells["rev_mean"].to_numpy(dtype=float)
            var = cells["rev_var"].to_numpy(dtype=float)
            low, high = mean_interval(n, value, var, alpha)
        parts.append(base_cols.assign(metric=m.name, n=n.astype(np.int64), count=count.astype(np.int64),
                                      value=value, ci_low=low, ci_high=high,
                                      sd=np.sqrt(var) if m.kind == "mean" else np.nan, var=var))
    long = pd.concat(parts, ignore_index=True)
    observed = long.groupby(["campaign_id", "metric"])["n"].transform("sum") > 0
    long = long[observed.to_numpy()]
    cols = ["campaign_id", "segment", "arm", "metric", "n", "count", "value", "ci_low", "ci_high", "sd", "var",
            "customers", "cost"]
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
    >>> prep = prepare_campaign(pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
    ...                                       "arm": ["control"] * 300 + ["email"] * 700}))
    >>> t = srm_table(prep, CampaignSettings(expected_split={"control": 0.2}))
    >>> t[["segment", "control_share", "srm"]]
             segment  control_share   srm
    0  All customers            0.3  True
    """
    s = settings
    rows = []
    for cid, camp in prepared.groupby("campaign_id", sort=True, observed=True):
        arm = camp["arm"].astype(str)
        segment = camp["segment"].astype(str)
        arms = sorted(arm.unique(), key=lambda a: (a != s.control_arm, a))
        counts = pd.crosstab(segment, arm).reindex(columns=arms, fill_value=0)
        overall = pd.DataFrame([arm.value_counts().reindex(arms, fill_value=0)], index=[ALL_SEGMENTS])
        segs = counts.drop(index=[ALL_SEGMENTS], errors="ignore")
        table = pd.concat([overall, segs]) if (segment != ALL_SEGMENTS).any() else overall
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


def p_text(p: float, name: str = "p") -> str:
    """A p-value for prose: ``p = 0.032``; one that underflowed to 0 reads ``p < 1e-300``, never ``p = 0``.

    Two significant digits, or three where two would round onto a usual threshold (0.05, 0.01,
    0.001) that the value is not: 0.0501 reads 0.0501, never "0.05" next to "not significant".

    Examples
    --------
    >>> p_text(0.0317), p_text(0.0, "adjusted p"), p_text(0.0501), p_text(0.05)
    ('p = 0.032', 'adjusted p < 1e-300', 'p = 0.0501', 'p = 0.05')
    """
    if p == 0:
        return f"{name} < 1e-300"
    text = f"{p:.2g}"
    if float(text) in (0.05, 0.01, 0.001) and float(text) != p:
        text = f"{p:.3g}"
    return f"{name} = {text}"


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


def random_effects(effect: Any, variance: Any, groups: Any, alpha: float = 0.05) -> pd.DataFrame:
    """DerSimonian–Laird random-effects pooling of ``effect`` (variance ``variance``) within groups.

    Per group: ``k`` estimates, fixed-effect mean, Cochran's ``q``, ``tau2`` = max(0, (q − (k−1)) /
    c) (truncated at 0 as in the method's definition), the random-effects ``mean``, its ``se``,
    normal ``ci_low``/``ci_high``, two-sided ``p_value`` and ``i2`` = max(0, (q − (k−1)) / q).
    Equal to ``statsmodels.stats.meta_analysis.combine_effects(..., method_re="dl")`` whenever
    q ≥ k − 1; statsmodels does not truncate a negative ``tau2``, which makes the random-effects
    interval narrower than the fixed-effect one (here it equals the fixed-effect interval).

    Examples
    --------
    >>> r = random_effects([0.10, 0.30, 0.20], [0.01, 0.01, 0.02], ["a", "a", "b"])
    >>> r[["group", "k", "mean", "tau2"]]
      group  k  mean  tau2
    0     a  2   0.2  0.01
    1     b  1   0.2  0.00
    """
    d = pd.DataFrame({"group": np.asarray(groups, dtype=object), "d": np.asarray(effect, dtype=float),
                      "v": np.asarray(variance, dtype=float)})
    d = d[np.isfinite(d["d"]) & np.isfinite(d["v"]) & (d["v"] > 0)].copy()
    columns = ["group", "k", "fixed_mean", "q", "tau2", "i2", "mean", "se", "ci_low", "ci_high", "p_value"]
    if d.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "group" else float) for c in columns})
    d["w"] = 1 / d["v"]
    d["wd"] = d["w"] * d["d"]
    d["wd2"] = d["wd"] * d["d"]
    d["w2"] = d["w"] ** 2
    g = d.groupby("group", sort=True)
    agg = g[["w", "wd", "wd2", "w2"]].sum()
    agg["k"] = g.size()
    q = (agg["wd2"] - agg["wd"] ** 2 / agg["w"]).clip(lower=0.0)
    df = agg["k"] - 1
    c = agg["w"] - agg["w2"] / agg["w"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = ((q - df) / c).where(c > 0, 0.0).clip(lower=0.0).fillna(0.0)
        i2 = ((q - df) / q).where(q > 0, 0.0).clip(lower=0.0)
    d["w_re"] = 1 / (d["v"] + d["group"].map(tau2))
    d["wd_re"] = d["w_re"] * d["d"]
    re = d.groupby("group", sort=True)[["w_re", "wd_re"]].sum()
    mean = re["wd_re"] / re["w_re"]
    se = 1 / np.sqrt(re["w_re"])
    z = stats.norm.isf(alpha / 2)
    out = pd.DataFrame({"k": agg["k"], "fixed_mean": agg["wd"] / agg["w"], "q": q, "tau2": tau2, "i2": i2,
                        "mean": mean, "se": se, "ci_low": mean - z * se, "ci_high": mean + z * se,
                        "p_value": 2 * stats.norm.sf(np.abs(mean / se))})
    return out.rename_axis("group").reset_index()


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


def _check_arms(prepared: pd.DataFrame, settings: CampaignSettings, source: str) -> list[str]:
    pairs = prepared[["campaign_id", "arm"]].drop_duplicates().astype(str).sort_values(["campaign_id", "arm"])
    arms_by = pairs.groupby("campaign_id", sort=True)["arm"].agg(list)
    has = arms_by.map(lambda a: settings.control_arm in a)
    if not has.any():
        listing = "; ".join(f"{c}: {', '.join(a)}" for c, a in arms_by.head(5).items())
        raise ConfigError(f"{source}: no campaign has an arm named {settings.control_arm!r} (arms found — {listing}). "
                          "Set control_arm (notebook parameter or campaign.control_arm in the config) to the name "
                          "of the control/holdout arm.")
    msgs = []
    for cid in arms_by.index[~has.to_numpy()]:
        msgs.append(f"Campaign {cid} has no {settings.control_arm!r} arm (arms: {', '.join(arms_by[cid])}): "
                    "its rates are shown but no lift, ROI or targeting can be computed.")
    for cid in arms_by.index[arms_by.map(len) < 2]:
        if has[cid]:
            msgs.append(f"Campaign {cid} has only the control arm: nothing to compare.")
    return msgs


def segment_table(prepared: pd.DataFrame, settings: CampaignSettings) -> pd.DataFrame:
    """The finished comparison table (:func:`finish_comparisons`) of a prepared campaign frame."""
    table = finish_comparisons(compare_arms(arm_metrics(prepared, settings.alpha), settings), settings)
    return _sort_results(table, settings.control_arm)


def evaluate_campaigns(
    campaign: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    transactions: pd.DataFrame | None = None,
    settings: CampaignSettings | None = None,
    as_of: str | pd.Timestamp | None = None,
    source: str = "campaign_clean",
    *,
    retention: Callable[[pd.DataFrame, int, Any], pd.Series] | None = None,
) -> CampaignResult:
    """Evaluate every campaign in ``campaign`` against its control arm, overall and per segment.

    Parameters
    ----------
    campaign : DataFrame
        Canonical campaign rows (``campaign_id, customer_id, arm`` required; ``sent_at,
        delivered, opened, clicked, converted, revenue, unsubscribed, cost`` optional).
    labels : DataFrame, optional
        ``customer_segments.csv``: ``customer_id`` plus segment columns.
    transactions : DataFrame, optional
        Cleaned transactions, for retention (``retention_rate``); None = not computed.
    settings : CampaignSettings, optional
        Defaults of ``defaults/campaign.yml`` when None. ``segment_by="auto"`` picks the first of
        :data:`SEGMENT_DIMENSIONS` present in ``labels``.
    as_of : date, optional
        End of the data (exclusive): retention windows ending later are unknown.
    source : str
        Name of the campaign table in messages.
    retention : callable, optional
        ``(campaign, days, as_of) -> flags`` computing retention instead of ``transactions``
        (the out-of-core engine: :func:`segkit.steps.sources.retention_for`).

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
    dimension = s.segment_by
    if dimension == "auto":
        dimension = available[0] if available else "none"
    prepared = prepare_campaign(campaign, source=source)  # validates before anything else reads it
    warn = _check_arms(prepared, s, source)
    retention_note = ""
    if transactions is not None or retention is not None:
        flags = (retention(prepared, s.retention_days, as_of) if retention is not None
                 else retention_flags(prepared, transactions, s.retention_days, as_of))
        prepared["retained"] = flags.to_numpy()
        unknown = int(prepared["retained"].isna().sum())
        if unknown:
            retention_note = (f"Retention unknown for {unknown:,} of {len(prepared):,} campaign customers: their "
                              f"{s.retention_days}-day window ends after the data (or no send date).")
            warn.append(retention_note)
    else:
        retention_note = "No transactions given: retention not computed."
    ids = prepared["customer_id"]
    by_dimension: dict[str, pd.DataFrame] = {}
    table = None
    for dim in dict.fromkeys([dimension, *available, "none"]):
        segs = segment_labels(ids, labels, dim, campaign_ids=prepared["campaign_id"]) if dim != "none" else None
        frame = prepared.assign(segment=segment_column(segs, len(prepared)))
        t = segment_table(frame, s)
        if dim == dimension:
            prepared, table = frame, t
        by_dimension[dim] = t[t["arm"] != s.control_arm].reset_index(drop=True)
    srm = srm_table(prepared, s)
    warn = srm_warnings(srm, s) + warn
    roi = roi_table(table, s)
    targeting = targeting_table(table, roi, s)
    policy = policy_table(targeting)
    qini = qini_curve(table, s)
    power = power_table(table, s)
    campaigns = campaign_overview(table, roi, srm, policy, s, send_dates(prepared))
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
                          distinct_customers=int(prepared["customer_id"].nunique()),
                          pooled_by_dimension=pooled_segments(by_dimension, s), warnings=warn, retention_note=retention_note)


class LinesOnDisk:
    """The clean order lines of a run kept out of memory, as :func:`segkit.campaign.segments_at_send`
    reads them: the out-of-core twin of :class:`segkit.campaign.LinesInMemory`.

    RFM and the behaviour table as of a day are DuckDB queries over the file; the purchase days
    are aggregated once (:func:`purchase_days_from_files`) and cut at each day. As everywhere in
    segkit's order tables, an order belongs to the day of its first line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01,10\\nb,2,2024-03-01,6\\n")
    >>> LinesOnDisk(p).purchase_orders(pd.Timestamp("2024-02-01"))["customer_id"].tolist()
    ['a']
    """

    def __init__(self, source: str | Path | Sequence[str | Path], memory_limit: str | None = None,
                 temp_directory: str | Path | None = None):
        self.source = source
        self.limits = {"memory_limit": memory_limit, "temp_directory": temp_directory}
        self._days: pd.DataFrame | None = None

    def _purchase_days(self) -> pd.DataFrame:
        if self._days is None:
            self._days = purchase_days_from_files(self.source, **self.limits)
        return self._days

    def any_before(self, day: pd.Timestamp) -> bool:
        """Whether any purchase is dated before ``day`` (no purchase: nobody to segment)."""
        return bool((self._purchase_days()["order_date"] < day).any())

    def rfm_table(self, day: pd.Timestamp) -> pd.DataFrame:
        """:func:`rfm_table_from_files` as of ``day``."""
        return rfm_table_from_files(self.source, day, **self.limits)

    def purchase_orders(self, day: pd.Timestamp) -> pd.DataFrame:
        """The purchase days before ``day`` (:func:`segkit.data.orders.purchase_days`)."""
        days = self._purchase_days()
        return days[(days["order_date"] < day).to_numpy()].reset_index(drop=True)

    def customer_table(self, day: pd.Timestamp, customers: pd.DataFrame | None, campaign: pd.DataFrame | None,
                       control_arm: str, max_channels: int) -> pd.DataFrame:
        """:func:`segkit.features.customer_table` as of ``day`` from :func:`behaviour_table_from_files`."""

        behaviour = behaviour_table_from_files(self.source, day, max_channels=max_channels, **self.limits)
        return customer_table(None, customers, campaign, day, control_arm=control_arm, max_channels=max_channels,
                              behaviour=behaviour)
