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

Modules, each using only those listed after it
    :mod:`~segkit.campaign.evaluate` (:func:`evaluate_campaigns`, :class:`CampaignResult`);
    :mod:`~segkit.campaign.decisions` (ROI, targeting, pooling over campaigns, Qini, power
    table), :mod:`~segkit.campaign.metrics` (arm metrics, comparisons, verdicts, SRM) and
    :mod:`~segkit.campaign.prepare` (segments at each send, retention, the prepared frame);
    :mod:`~segkit.campaign.settings` (:class:`CampaignSettings`, :data:`METRICS`, shared names);
    :mod:`~segkit.campaign.stats` (intervals, tests, multiple testing, power on plain arrays).
    Import the names from ``segkit.campaign``.

Examples
--------
>>> import pandas as pd
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

from segkit.campaign.decisions import (
    decide_targets,
    heterogeneity_table,
    lift_variance,
    policy_table,
    pool_campaigns,
    pooled_segments,
    power_table,
    qini_curve,
    roi_table,
    targeting_table,
)
from segkit.campaign.evaluate import CampaignResult, campaign_overview, evaluate_campaigns
from segkit.campaign.metrics import (
    TEST_NAMES,
    arm_metrics,
    compare_arms,
    expected_shares,
    finish_comparisons,
    segment_table,
    srm_table,
    srm_warnings,
    verdicts,
)
from segkit.campaign.prepare import (
    NO_PURCHASE,
    lifecycle_stages,
    lifecycle_stages_as_of,
    prepare_campaign,
    retention_flags,
    rfm_segments,
    rfm_segments_as_of,
    segment_column,
    segment_labels,
    segments_at_send,
    send_dates,
)
from segkit.campaign.settings import (
    ALL_SEGMENTS,
    DIMENSION_ARTIFACT,
    DIMENSION_LABELS,
    FLAG_COLUMNS,
    METRIC_BY_NAME,
    METRICS,
    OUTCOME_METRICS,
    RESULT_COLUMNS,
    SEGMENT_DIMENSIONS,
    SRM_BORDERLINE_P,
    TARGETING_RULES,
    UNLABELLED,
    CampaignSettings,
    Metric,
    SampleRatioMismatchWarning,
)
from segkit.campaign.stats import (
    CORRECTION_LABELS,
    CORRECTIONS,
    adjust_pvalues,
    diff_interval,
    fisher_exact_pvalue,
    mde_means,
    mde_proportions,
    mean_interval,
    p_text,
    random_effects,
    ratio_interval,
    ratio_of_means_interval,
    sample_size_means,
    sample_size_proportions,
    welch_diff,
    wilson_interval,
    ztest_2prop,
)

__all__ = [
    # evaluation and its result
    "evaluate_campaigns", "CampaignResult", "CampaignSettings", "SampleRatioMismatchWarning",
    # metrics and shared names
    "Metric", "METRICS", "METRIC_BY_NAME", "OUTCOME_METRICS", "FLAG_COLUMNS", "RESULT_COLUMNS",
    "ALL_SEGMENTS", "UNLABELLED", "SEGMENT_DIMENSIONS", "DIMENSION_LABELS", "DIMENSION_ARTIFACT",
    "TARGETING_RULES", "SRM_BORDERLINE_P", "TEST_NAMES", "CORRECTIONS", "CORRECTION_LABELS",
    # input preparation, segments at each send
    "prepare_campaign", "segment_labels", "segment_column", "retention_flags", "send_dates", "NO_PURCHASE",
    "segments_at_send", "rfm_segments", "rfm_segments_as_of",
    "lifecycle_stages", "lifecycle_stages_as_of",
    # arm metrics, comparisons, sample-ratio mismatch
    "arm_metrics", "compare_arms", "finish_comparisons", "segment_table", "verdicts",
    "expected_shares", "srm_table", "srm_warnings",
    # ROI, targeting, pooling, uplift curve, power
    "roi_table", "targeting_table", "decide_targets", "policy_table", "qini_curve", "pool_campaigns",
    "lift_variance", "heterogeneity_table", "pooled_segments", "power_table", "campaign_overview",
    # statistics on arrays
    "wilson_interval", "diff_interval", "ratio_interval", "ztest_2prop", "fisher_exact_pvalue",
    "mean_interval", "welch_diff", "ratio_of_means_interval", "mde_proportions", "mde_means",
    "sample_size_proportions", "sample_size_means", "adjust_pvalues", "p_text", "random_effects",
]
