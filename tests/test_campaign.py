"""Tests of segkit.campaign: statistics against statsmodels/scipy, tables on hand-built campaigns,
coverage by simulation, errors, the producer and the summary."""

from __future__ import annotations

import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import normal_power_het, normal_sample_size_one_tail
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from segkit import campaign as cp
from segkit.campaign import (
    ALL_SEGMENTS,
    UNLABELLED,
    CampaignSettings,
    SampleRatioMismatchWarning,
    adjust_pvalues,
    diff_interval,
    evaluate_campaigns,
    fisher_exact_pvalue,
    mde_means,
    mde_proportions,
    mean_interval,
    ratio_interval,
    sample_size_means,
    sample_size_proportions,
    welch_diff,
    wilson_interval,
    ztest_2prop,
)
from segkit.core.config import load_config
from segkit.core.errors import ConfigError, DataError, UpstreamMissingError
from segkit.steps import campaign as cs

TOL = 1e-9


@pytest.fixture(autouse=True)
def _restore_pandas_display():
    """open_run sets notebook display options globally; keep them from leaking into later doctests."""
    keys = ("display.float_format", "display.max_colwidth", "display.max_columns", "display.width")
    saved = {k: pd.get_option(k) for k in keys}
    yield
    for key, value in saved.items():
        pd.set_option(key, value)


# --------------------------------------------------------------------------- helpers
def cell(campaign: str, segment: str, arm: str, n: int, converted: int, revenue: list[float] | None = None,
         prefix: str = "") -> pd.DataFrame:
    """``n`` customers of one campaign × segment × arm, the first ``converted`` of them converting."""
    ids = [f"{prefix}{campaign}-{segment}-{arm}-{i}" for i in range(n)]
    rev = np.zeros(n)
    if revenue is not None:
        rev[: len(revenue)] = revenue
    return pd.DataFrame({"campaign_id": campaign, "customer_id": ids, "arm": arm, "segment": segment,
                         "converted": np.arange(n) < converted, "revenue": rev})


def build(*cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Campaign frame and customer_segments labels (``rfm_segment``) from cells."""
    frame = pd.concat(cells, ignore_index=True)
    labels = frame[["customer_id", "segment"]].drop_duplicates("customer_id").rename(
        columns={"segment": "rfm_segment"})
    return frame.drop(columns="segment"), labels


def row(result, campaign, segment, arm, metric) -> pd.Series:
    t = result.table
    hit = t[(t["campaign_id"] == campaign) & (t["segment"] == segment) & (t["arm"] == arm) & (t["metric"] == metric)]
    assert len(hit) == 1, (campaign, segment, arm, metric)
    return hit.iloc[0]


LOOSE = CampaignSettings(min_cell_size=1)


# --------------------------------------------------------------------------- statistics vs statsmodels / scipy
GRID = [(0, 10), (1, 10), (3, 10), (10, 10), (5, 200), (17, 1000), (999, 1000), (250, 5000)]


def test_wilson_interval_equals_statsmodels_and_is_empty_for_no_customers():
    counts = np.array([c for c, _ in GRID] + [0])
    nobs = np.array([n for _, n in GRID] + [0])
    low, high = wilson_interval(counts, nobs)
    for c, n, lo, hi in zip(counts[:-1], nobs[:-1], low, high):
        ref = proportion_confint(c, n, alpha=0.05, method="wilson")
        assert lo == pytest.approx(ref[0], abs=TOL) and hi == pytest.approx(ref[1], abs=TOL)
    assert np.isnan(low[-1]) and np.isnan(high[-1])


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_newcombe_diff_and_katz_ratio_intervals_equal_statsmodels_cell_by_cell(alpha):
    rng = np.random.default_rng(3)
    n1 = rng.integers(5, 3000, 40)
    n2 = rng.integers(5, 800, 40)
    c1 = rng.binomial(n1, 0.1)
    c2 = rng.binomial(n2, 0.08)
    c1[0], c2[1] = 0, 0  # zero events: diff defined, ratio undefined
    low, high = diff_interval(c1, n1, c2, n2, alpha)
    rlow, rhigh = ratio_interval(c1, n1, c2, n2, alpha)
    for i in range(40):
        ref = confint_proportions_2indep(c1[i], n1[i], c2[i], n2[i], method="newcomb", compare="diff", alpha=alpha)
        assert low[i] == pytest.approx(ref[0], abs=TOL) and high[i] == pytest.approx(ref[1], abs=TOL)
        if c1[i] > 0 and c2[i] > 0:
            ref = confint_proportions_2indep(c1[i], n1[i], c2[i], n2[i], method="log", compare="ratio", alpha=alpha)
            assert rlow[i] == pytest.approx(ref[0], rel=TOL) and rhigh[i] == pytest.approx(ref[1], rel=TOL)
        else:
            assert np.isnan(rlow[i]) and np.isnan(rhigh[i])


def test_pooled_ztest_equals_statsmodels_proportions_ztest():
    rng = np.random.default_rng(4)
    n1, n2 = rng.integers(20, 5000, 30), rng.integers(20, 2000, 30)
    c1, c2 = rng.binomial(n1, 0.2), rng.binomial(n2, 0.18)
    z, p = ztest_2prop(c1, n1, c2, n2)
    for i in range(30):
        rz, rp = proportions_ztest([c1[i], c2[i]], [n1[i], n2[i]])
        assert z[i] == pytest.approx(rz, abs=TOL) and p[i] == pytest.approx(rp, abs=TOL)


def test_pooled_ztest_without_variance_gives_p_one_and_empty_arm_gives_nan():
    z, p = ztest_2prop([0, 5, 3], [10, 5, 0], [0, 7, 1], [20, 7, 4])
    assert np.isnan(z[0]) and p[0] == 1.0 and p[1] == 1.0
    assert np.isnan(p[2])


def test_vectorised_fisher_exact_equals_scipy_including_ties_and_degenerate_tables():
    tables = [(8, 10, 1, 6), (3, 10, 3, 10), (0, 50, 4, 12), (2, 3, 0, 40), (0, 10, 0, 20), (10, 10, 5, 5),
              (1, 400, 6, 100), (15, 30, 2, 30), (5, 9, 4, 9), (0, 1, 1, 1), (7, 2000, 1, 500), (30, 60, 30, 60)]
    c1, n1, c2, n2 = (np.array(x) for x in zip(*tables))
    got = fisher_exact_pvalue(c1, n1, c2, n2)
    tiny_chunks = fisher_exact_pvalue(c1, n1, c2, n2, max_cells=5)
    for i, (a, n, b, m) in enumerate(tables):
        ref = stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue
        assert got[i] == pytest.approx(ref, abs=TOL)
        assert tiny_chunks[i] == pytest.approx(ref, abs=TOL)


def test_fisher_exact_agrees_with_scipy_on_a_random_grid_of_small_tables():
    rng = np.random.default_rng(5)
    n1, n2 = rng.integers(1, 60, 200), rng.integers(1, 60, 200)
    c1, c2 = rng.binomial(n1, 0.15), rng.binomial(n2, 0.3)
    got = fisher_exact_pvalue(c1, n1, c2, n2)
    ref = [stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue for a, n, b, m in zip(c1, n1, c2, n2)]
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def test_mean_and_welch_intervals_equal_statsmodels_on_zero_inflated_revenue():
    rng = np.random.default_rng(6)
    x1 = np.where(rng.random(700) < 0.08, rng.lognormal(3, 1, 700), 0.0)
    x2 = np.where(rng.random(180) < 0.05, rng.lognormal(3, 1, 180), 0.0)
    low, high = mean_interval([len(x1)], [x1.mean()], [x1.var(ddof=1)])
    ref = DescrStatsW(x1).tconfint_mean(alpha=0.05)
    assert low[0] == pytest.approx(ref[0], abs=TOL) and high[0] == pytest.approx(ref[1], abs=TOL)
    w = welch_diff(len(x1), x1.mean(), x1.var(ddof=1), len(x2), x2.mean(), x2.var(ddof=1))
    cm = CompareMeans(DescrStatsW(x1), DescrStatsW(x2))
    ref_ci = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    t, p, df = cm.ttest_ind(usevar="unequal")
    assert w["low"] == pytest.approx(ref_ci[0], abs=TOL) and w["high"] == pytest.approx(ref_ci[1], abs=TOL)
    assert w["t"] == pytest.approx(t, abs=TOL) and w["p"] == pytest.approx(p, abs=TOL)
    assert w["df"] == pytest.approx(df, abs=1e-6)


def test_welch_is_empty_with_fewer_than_two_customers_or_no_variance():
    w = welch_diff([1, 5, 5], [2.0, 0.0, 1.0], [np.nan, 0.0, 1.0], [5, 5, 1], [1.0, 0.0, 1.0], [1.0, 0.0, np.nan])
    assert np.isnan(w["low"]).all() and np.isnan(w["p"]).all()
    assert w["diff"][1] == 0.0


def test_mde_for_proportions_has_exactly_the_target_power_in_statsmodels():
    p2 = np.array([0.01, 0.05, 0.2, 0.0, 0.5])
    n1 = np.array([5000, 1000, 300, 2000, 50])
    n2 = np.array([1250, 1000, 100, 500, 60])
    mde = mde_proportions(p2, n1, n2, alpha=0.05, power=0.8)
    for i in range(len(p2)):
        pw = power_proportions_2indep(mde[i], p2[i], n1[i], ratio=n2[i] / n1[i], alpha=0.05, return_results=False)
        assert pw == pytest.approx(0.8, abs=TOL)
    assert np.isnan(mde_proportions([0.3], [0], [10])).all()


def test_mde_for_means_has_exactly_the_target_power_in_statsmodels():
    sd1, n1, sd2, n2 = np.array([10.0, 40.0]), np.array([1000, 300]), np.array([8.0, 25.0]), np.array([250, 90])
    mde = mde_means(sd1, n1, sd2, n2, alpha=0.05, power=0.9)
    se = np.sqrt(sd1 ** 2 / n1 + sd2 ** 2 / n2)
    pw = normal_power_het(mde, 1, 0.05, std_null=se, std_alternative=se)
    np.testing.assert_allclose(pw, 0.9, atol=TOL)


def test_sample_sizes_equal_statsmodels_rounded_up():
    diff, p2, ratio = np.array([0.005, 0.01, 0.03]), np.array([0.05, 0.02, 0.3]), np.array([0.25, 1.0, 0.5])
    got = sample_size_proportions(diff, p2, ratio)
    for i in range(3):
        ref = samplesize_proportions_2indep_onetail(diff[i], p2[i], 0.8, ratio=ratio[i], alpha=0.05)
        assert got[i] == np.ceil(ref)
    assert np.isnan(sample_size_proportions([0.0, 0.5], [0.1, 0.7])).all()
    got = sample_size_means([2.0], [20.0], [15.0], ratio=[0.5])
    ref = normal_sample_size_one_tail(2.0, 0.8, 0.025, std_null=np.sqrt(20.0 ** 2 + 15.0 ** 2 / 0.5))
    assert got[0] == np.ceil(ref)


@pytest.mark.parametrize("method", ["holm", "fdr_bh", "bonferroni"])
def test_grouped_adjustment_equals_multipletests_per_family(method):
    rng = np.random.default_rng(8)
    p = rng.uniform(0, 0.2, 30)
    p[[3, 7]] = p[2]  # ties
    p[5] = np.nan
    groups = np.repeat(["a", "b", "c"], 10)
    got = adjust_pvalues(p, method, groups)
    for g in "abc":
        mask = (groups == g) & ~np.isnan(p)
        ref = multipletests(p[mask], alpha=0.05, method=method)[1]
        np.testing.assert_allclose(got[mask], ref, atol=TOL, rtol=0)
    assert np.isnan(got[5])
    np.testing.assert_array_equal(adjust_pvalues(p, "none", groups), p)


def test_random_effects_pooling_equals_statsmodels_dersimonian_laird_and_truncates_tau2():
    hetero_d, hetero_v = np.array([0.02, 0.10, 0.05, -0.01]), np.array([0.0004, 0.0009, 0.0002, 0.0005])
    homo_d, homo_v = np.array([0.050, 0.052, 0.049]), np.array([0.0004, 0.0009, 0.0002])
    got = cp.random_effects(np.r_[hetero_d, homo_d], np.r_[hetero_v, homo_v], ["h"] * 4 + ["o"] * 3).set_index("group")
    ref = combine_effects(hetero_d, hetero_v, method_re="dl")
    h = got.loc["h"]
    assert h["tau2"] > 0 and h["tau2"] == pytest.approx(ref.tau2, rel=TOL)
    assert h["mean"] == pytest.approx(ref.mean_effect_re, abs=TOL)
    assert (h["ci_low"], h["ci_high"]) == pytest.approx(tuple(ref.conf_int(use_t=False)[1]), abs=TOL)
    with warnings.catch_warnings():  # statsmodels takes the square root of its negative variance
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = combine_effects(homo_d, homo_v, method_re="dl")
        ref_fe_ci = tuple(ref.conf_int(use_t=False)[0])
    o = got.loc["o"]
    assert ref.tau2 < 0 and o["tau2"] == 0.0 and o["i2"] == 0.0  # statsmodels leaves tau2 negative
    assert o["mean"] == pytest.approx(ref.mean_effect_fe, abs=TOL)
    assert (o["ci_low"], o["ci_high"]) == pytest.approx(ref_fe_ci, abs=TOL)


# --------------------------------------------------------------------------- coverage by simulation
def test_lift_intervals_cover_the_true_lift_93_to_97_percent_of_simulated_campaigns():
    rng = np.random.default_rng(20241123)
    sims = 4000
    n_t = np.array([3000, 800, 1600, 400, 6000])
    n_c = n_t // 4
    p_c = np.array([0.05, 0.10, 0.02, 0.30, 0.08])
    lift = np.array([0.01, 0.03, 0.0, -0.05, 0.005])  # true effect per segment
    c_t = rng.binomial(n_t, p_c + lift, size=(sims, 5))
    c_c = rng.binomial(n_c, p_c, size=(sims, 5))
    low, high = diff_interval(c_t, n_t, c_c, n_c)
    covered = (low <= lift) & (lift <= high)
    assert 0.93 <= covered.mean() <= 0.97
    assert ((covered.mean(axis=0) >= 0.93) & (covered.mean(axis=0) <= 0.97)).all()
    ratio = (p_c + lift) / p_c
    rlow, rhigh = ratio_interval(c_t, n_t, c_c, n_c)
    covered = (rlow <= ratio) & (ratio <= rhigh)
    assert 0.93 <= covered.mean() <= 0.97


def test_welch_revenue_lift_interval_covers_the_truth_with_enough_buyers():
    rng = np.random.default_rng(11)
    sims, n1, n2, pc, pt, mu, sigma = 2000, 3000, 1000, 0.06, 0.08, 3.5, 1.0
    x1 = np.where(rng.random((sims, n1)) < pt, rng.lognormal(mu, sigma, (sims, n1)), 0.0)
    x2 = np.where(rng.random((sims, n2)) < pc, rng.lognormal(mu, sigma, (sims, n2)), 0.0)
    truth = (pt - pc) * np.exp(mu + sigma ** 2 / 2)
    w = welch_diff(n1, x1.mean(1), x1.var(1, ddof=1), n2, x2.mean(1), x2.var(1, ddof=1))
    covered = (w["low"] <= truth) & (truth <= w["high"])
    assert 0.93 <= covered.mean() <= 0.97


def test_the_pipeline_reproduces_the_interval_functions_on_many_simulated_campaigns():
    """Campaigns as simulations: the evaluated lifts cover the planted truth and equal the array functions."""
    rng = np.random.default_rng(99)
    sims, segs = 150, {"A": (0.05, 0.02), "B": (0.15, 0.0)}  # segment: (control rate, true lift)
    frames = []
    for seg, (p, lift) in segs.items():
        n_t, n_c = 600, 200
        arm = np.tile(np.r_[np.repeat("email", n_t), np.repeat("control", n_c)], sims)
        sim = np.repeat(np.arange(sims), n_t + n_c)
        conv = rng.random(len(arm)) < np.where(arm == "email", p + lift, p)
        frames.append(pd.DataFrame({"campaign_id": pd.Series(sim).map("s{:03d}".format),
                                    "customer_id": [f"{seg}{i}" for i in range(len(arm))], "arm": arm,
                                    "segment": seg, "converted": conv}))
    camp = pd.concat(frames, ignore_index=True)
    labels = camp[["customer_id", "segment"]].rename(columns={"segment": "rfm_segment"})
    res = evaluate_campaigns(camp.drop(columns="segment"), labels)
    t = res.table[(res.table["metric"] == "conversion_rate") & (res.table["arm"] == "email")
                  & (res.table["segment"] != ALL_SEGMENTS)]
    truth = t["segment"].map({k: v[1] for k, v in segs.items()})
    covered = (t["lift_ci_low"] <= truth) & (truth <= t["lift_ci_high"])
    assert len(t) == 2 * sims
    assert 0.92 <= covered.mean() <= 0.98
    low, high = diff_interval(t["count"], t["n"], t["count_c"], t["n_c"])
    np.testing.assert_allclose(t["lift_ci_low"], low, atol=TOL)
    np.testing.assert_allclose(t["lift_ci_high"], high, atol=TOL)


# --------------------------------------------------------------------------- per-arm metrics
def test_metric_denominators_follow_the_funnel():
    camp = pd.DataFrame({
        "campaign_id": "c", "customer_id": list("abcdefgh"),
        "arm": ["email"] * 5 + ["control"] * 3,
        "delivered": [True, True, True, True, False, None, None, None],
        "opened": [True, True, False, None, False, None, None, None],
        "clicked": [True, False, False, False, False, None, None, None],
        "unsubscribed": [False, True, False, False, False, None, None, None],
        "converted": [True, False, False, True, False, True, False, False],
        "revenue": [30.0, None, None, 10.0, None, 5.0, None, None],
    })
    res = evaluate_campaigns(camp, settings=LOOSE)
    email = res.table[(res.table["arm"] == "email")].set_index("metric")
    got = email.loc[["delivery_rate", "open_rate", "click_rate", "click_to_open_rate", "unsubscribe_rate",
                     "conversion_rate", "revenue_per_recipient"], ["n", "count", "value"]]
    expected = pd.DataFrame({"n": [5, 3, 4, 2, 4, 5, 5], "count": [4, 2, 1, 1, 1, 2, 2],
                             "value": [0.8, 2 / 3, 0.25, 0.5, 0.25, 0.4, 8.0]}, index=got.index)
    assert_frame_equal(got, expected, check_dtype=False)
    control = res.table[(res.table["arm"] == "control")].set_index("metric")
    assert control.loc["open_rate", "n"] == 0 and np.isnan(control.loc["open_rate", "value"])
    assert control.loc["conversion_rate", "value"] == pytest.approx(1 / 3)


def test_arm_table_shows_each_metric_with_its_interval_and_leaves_holdout_engagement_empty():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(40)],
                         "arm": ["email", "control"] * 20, "opened": [True, None, False, None] * 10,
                         "converted": [True, False, False, False] * 10, "revenue": [10.0, 0, 0, 0] * 10})
    t = cs.arm_table(evaluate_campaigns(camp)).set_index("arm")
    assert t.loc["email", "Open rate"] == "50.0% (29.9–70.1)" and t.loc["control", "Open rate"] == ""
    low, high = wilson_interval([10], [20])
    assert t.loc["email", "Conversion rate"] == f"50.0% ({low[0] * 100:.1f}–{high[0] * 100:.1f})"
    assert t.loc["email", "Revenue per recipient"].startswith("5.0 (")
    assert list(t.columns[:2]) == ["campaign_id", "customers"]


def test_absent_delivered_column_counts_every_row_as_delivered_and_absent_opens_are_left_out():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"), "arm": ["email", "email", "control", "control"],
                         "converted": [1, 0, 0, 0]})
    res = evaluate_campaigns(camp, settings=LOOSE)
    metrics = set(res.table["metric"])
    assert "delivery_rate" in metrics and "open_rate" not in metrics and "revenue_per_recipient" not in metrics
    assert row(res, "c", ALL_SEGMENTS, "email", "delivery_rate")["value"] == 1.0


def test_rates_and_intervals_per_segment_equal_statsmodels_on_the_counts():
    camp, labels = build(cell("c", "A", "email", 400, 40), cell("c", "A", "control", 100, 5),
                         cell("c", "B", "email", 300, 9), cell("c", "B", "control", 80, 2))
    res = evaluate_campaigns(camp, labels)
    for seg, (c1, n1, c2, n2) in {"A": (40, 400, 5, 100), "B": (9, 300, 2, 80)}.items():
        r = row(res, "c", seg, "email", "conversion_rate")
        assert (r["n"], r["count"], r["value"]) == (n1, c1, c1 / n1)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(proportion_confint(c1, n1, method="wilson"), abs=TOL)
        ref = confint_proportions_2indep(c1, n1, c2, n2, method="newcomb")
        assert (r["lift_ci_low"], r["lift_ci_high"]) == pytest.approx(ref, abs=TOL)
        assert r["lift_rel"] == pytest.approx((c1 / n1) / (c2 / n2) - 1)
    a = row(res, "c", "A", "email", "conversion_rate")
    assert a["test"] == "z-test" and a["p_value"] == pytest.approx(proportions_ztest([40, 5], [400, 100])[1], abs=TOL)
    b = row(res, "c", "B", "email", "conversion_rate")  # expected control conversions 80 * 11/380 = 2.3 < 5
    assert b["test"] == "Fisher exact"
    assert b["p_value"] == pytest.approx(stats.fisher_exact([[9, 291], [2, 78]]).pvalue, abs=TOL)
    overall = row(res, "c", ALL_SEGMENTS, "email", "conversion_rate")
    assert (overall["n"], overall["count"]) == (700, 49) and overall["p_adjusted"] == overall["p_value"]


def test_revenue_lift_equals_statsmodels_welch_on_the_raw_revenue():
    rng = np.random.default_rng(12)
    rev_t = list(rng.lognormal(3, 1, 60))
    rev_c = list(rng.lognormal(3, 1, 8))
    camp, labels = build(cell("c", "A", "email", 500, 60, rev_t), cell("c", "A", "control", 150, 8, rev_c))
    res = evaluate_campaigns(camp, labels)
    r = row(res, "c", "A", "email", "revenue_per_recipient")
    x1 = np.r_[rev_t, np.zeros(440)]
    x2 = np.r_[rev_c, np.zeros(142)]
    cm = CompareMeans(DescrStatsW(x1), DescrStatsW(x2))
    assert (r["lift_ci_low"], r["lift_ci_high"]) == pytest.approx(cm.tconfint_diff(usevar="unequal"), abs=TOL)
    assert r["p_value"] == pytest.approx(cm.ttest_ind(usevar="unequal")[1], abs=TOL)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(DescrStatsW(x1).tconfint_mean(), abs=TOL)
    assert r["test"] == "Welch t" and r["count"] == 60
    assert "fewer than 30 buyers" in r["note"]  # 8 buyers in control


def test_p_values_are_corrected_across_segments_but_not_across_metrics_or_the_overall_row():
    cells = []
    for seg, (c1, c2) in {"A": (60, 5), "B": (45, 8), "C": (30, 9), "D": (35, 7)}.items():
        cells += [cell("c", seg, "email", 400, c1), cell("c", seg, "control", 100, c2)]
    camp, labels = build(*cells)
    for method in ("holm", "fdr_bh"):
        res = evaluate_campaigns(camp, labels, settings=CampaignSettings(correction=method))
        t = res.table[(res.table["metric"] == "conversion_rate") & (res.table["arm"] == "email")
                      & (res.table["segment"] != ALL_SEGMENTS)]
        ref = multipletests(t["p_value"].to_numpy(), method=method)[1]
        np.testing.assert_allclose(t["p_adjusted"], ref, atol=TOL)
        assert (t["p_adjusted"] >= t["p_value"] - 1e-15).all()


def test_engagement_metrics_are_not_compared_with_a_holdout_unless_the_control_was_mailed():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(40)],
                         "arm": ["email", "control"] * 20, "opened": [True, False, False, False] * 10,
                         "converted": [True, False] * 20})
    holdout = evaluate_campaigns(camp, settings=LOOSE)
    r = row(holdout, "c", ALL_SEGMENTS, "email", "open_rate")
    assert np.isnan(r["lift_abs"]) and "holdout" in r["verdict"]
    mailed = evaluate_campaigns(camp, settings=CampaignSettings(min_cell_size=1, control_is_holdout=False))
    assert row(mailed, "c", ALL_SEGMENTS, "email", "open_rate")["lift_abs"] == pytest.approx(0.5)


def test_small_and_control_less_segments_are_flagged_and_never_targeted():
    camp, labels = build(cell("c", "Big", "email", 500, 100), cell("c", "Big", "control", 120, 6),
                         cell("c", "Tiny", "email", 6, 5), cell("c", "Tiny", "control", 3, 0),
                         cell("c", "NoControl", "email", 50, 40))
    with pytest.warns(SampleRatioMismatchWarning, match="NoControl"):  # a segment without control is a mismatch
        res = evaluate_campaigns(camp, labels, settings=CampaignSettings(min_cell_size=10))
    tiny = row(res, "c", "Tiny", "email", "conversion_rate")
    assert tiny["small_cell"] and tiny["verdict"].startswith("Too few customers to judge (6 vs 3")
    nocontrol = row(res, "c", "NoControl", "email", "conversion_rate")
    assert np.isnan(nocontrol["lift_abs"]) and "no control customers" in nocontrol["verdict"]
    target = res.targeting.set_index("segment")
    # no evidence against a small or control-less segment: it is sent by default, never left out
    assert bool(target.loc["Big", "send"]) and target.loc["Tiny", "send"] and target.loc["NoControl", "send"]
    assert target.loc["Tiny", "reason"].startswith("sent by default")
    assert res.policy["segments_to_send"].tolist() == ["Big, NoControl, Tiny"]


def test_customers_without_a_label_form_an_unlabelled_segment():
    camp, labels = build(cell("c", "A", "email", 30, 3), cell("c", "A", "control", 30, 1),
                         cell("c", "Z", "email", 20, 2), cell("c", "Z", "control", 20, 2))
    labels = labels[~labels["customer_id"].str.contains("-Z-")]
    res = evaluate_campaigns(camp, labels)
    assert set(res.table["segment"]) == {ALL_SEGMENTS, "A", UNLABELLED}
    assert row(res, "c", UNLABELLED, "email", "conversion_rate")["n"] == 20
    assert res.table["segment"].iloc[-1] == UNLABELLED  # listed last


def test_verdicts_say_better_worse_and_how_large_an_effect_was_detectable():
    camp = pd.concat([cell("c", "x", "email", 2000, 300), cell("c", "x", "control", 500, 40)], ignore_index=True)
    camp["unsubscribed"] = np.r_[np.arange(2000) < 100, np.zeros(500, bool)]
    camp = camp.drop(columns="segment")
    res = evaluate_campaigns(camp, settings=CampaignSettings(control_is_holdout=False))
    conv = row(res, "c", ALL_SEGMENTS, "email", "conversion_rate")["verdict"]
    assert conv.startswith("Higher than control (better): +7.0 pp (95% CI")
    unsub = row(res, "c", ALL_SEGMENTS, "email", "unsubscribe_rate")["verdict"]
    assert unsub.startswith("Higher than control (worse): +5.0 pp")
    flat = evaluate_campaigns(pd.concat([cell("c", "x", "email", 400, 20), cell("c", "x", "control", 100, 5)])
                              .drop(columns="segment"))
    text = row(flat, "c", ALL_SEGMENTS, "email", "conversion_rate")["verdict"]
    mde = row(flat, "c", ALL_SEGMENTS, "email", "conversion_rate")["mde_abs"]
    assert text.startswith("No clear difference: +0.0 pp") and f"about {mde * 100:.1f} pp or more" in text


# --------------------------------------------------------------------------- SRM
def test_sample_ratio_mismatch_is_detected_against_the_configured_split_and_warned_loudly():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
                         "arm": ["control"] * 280 + ["email"] * 720, "converted": False})
    with pytest.warns(SampleRatioMismatchWarning, match="SAMPLE-RATIO MISMATCH in campaign c"):
        res = evaluate_campaigns(camp, settings=CampaignSettings(expected_split={"control": 0.2}))
    overall = res.srm.iloc[0]
    ref = stats.chisquare([280, 720], [200, 800])
    assert overall["chi2"] == pytest.approx(ref.statistic) and overall["p_value"] == pytest.approx(ref.pvalue)
    assert overall["srm"] and any("SAMPLE-RATIO" in w for w in res.warnings)
    assert "not as designed" in " ".join(cs.summarize(res)["findings"])
    assert f"c p = {ref.pvalue:.2g}" in " ".join(cs.summarize(res)["findings"])


def test_without_a_configured_split_segments_are_checked_against_the_campaign_split():
    camp, labels = build(cell("c", "A", "email", 400, 0), cell("c", "A", "control", 100, 0),
                         cell("c", "B", "email", 300, 0), cell("c", "B", "control", 200, 0))
    with pytest.warns(SampleRatioMismatchWarning):
        res = evaluate_campaigns(camp, labels)
    srm = res.srm.set_index("segment")
    assert np.isnan(srm.loc[ALL_SEGMENTS, "p_value"]) and "expected_split" in srm.loc[ALL_SEGMENTS, "note"]
    ref = stats.chisquare([100, 400], [150, 350])  # overall control share 300/1000
    assert srm.loc["A", "p_value"] == pytest.approx(ref.pvalue) and srm.loc["A", "srm"] and srm.loc["B", "srm"]
    # no design was configured: the messages say what was compared, and blame no design
    msgs = [w for w in res.warnings if "SAMPLE-RATIO" in w]
    assert len(msgs) == 2 and all("vs the campaign's overall split" in m and "design" not in m for m in msgs)
    findings = " ".join(cs.summarize(res)["findings"])
    assert "2 segment(s) differs from their campaign's overall split" in findings
    assert "not as designed" not in findings and "no designed split configured" in findings


def test_a_p_value_that_underflows_reads_below_1e_300_not_zero():
    camp = pd.concat([cell("c", "A", "email", 20_000, 10_000), cell("c", "A", "control", 20_000, 0)])
    res = evaluate_campaigns(camp.drop(columns="segment"))
    verdict = row(res, "c", ALL_SEGMENTS, "email", "conversion_rate")
    assert verdict["p_value"] == 0.0
    assert "p < 1e-300" in verdict["verdict"] and "p = 0" not in verdict["verdict"]


def test_a_p_value_next_to_a_threshold_keeps_a_third_digit():
    # 0.0501 printed as "0.05" read as significant in "not after (Holm, adjusted p = 0.05)"
    assert cp.p_text(0.0501, "adjusted p") == "adjusted p = 0.0501" and cp.p_text(0.00096) == "p = 0.00096"
    assert cp.p_text(0.05) == "p = 0.05" and cp.p_text(0.0123) == "p = 0.012"


def test_a_balanced_split_raises_no_warning():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
                         "arm": ["control"] * 205 + ["email"] * 795, "converted": False})
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleRatioMismatchWarning)
        res = evaluate_campaigns(camp, settings=CampaignSettings(expected_split={"control": 0.2, "email": 0.8}))
    assert not res.srm["srm"].any() and res.srm["p_value"].iloc[0] > 0.5


# --------------------------------------------------------------------------- ROI, targeting, uplift curve, power
def test_roi_and_costs_per_increment_from_the_cost_column_or_cost_per_send():
    camp, labels = build(cell("c", "A", "email", 100, 20, [50.0] * 20), cell("c", "A", "control", 100, 10, [40.0] * 10))
    camp["cost"] = np.where(camp["arm"] == "email", 0.5, np.nan)
    res = evaluate_campaigns(camp, labels)
    r = res.roi[res.roi["segment"] == "A"].iloc[0]
    # revenue per recipient 10 vs 4: +6 per customer, x 100 sent = 600; cost 50
    assert r["incremental_conversions"] == pytest.approx(10.0)
    assert r["incremental_revenue"] == pytest.approx(600.0) and r["cost"] == pytest.approx(50.0)
    assert r["roi"] == pytest.approx((600 - 50) / 50)
    assert r["cost_per_incremental_conversion"] == pytest.approx(5.0)
    welch = row(res, "c", "A", "email", "revenue_per_recipient")
    assert r["roi_ci_low"] == pytest.approx((welch["lift_ci_low"] * 100 - 50) / 50)
    override = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=2.0))
    assert override.roi[override.roi["segment"] == "A"]["cost"].iloc[0] == pytest.approx(200.0)
    none = evaluate_campaigns(camp.drop(columns="cost"), labels)
    assert np.isnan(none.roi["roi"]).all()


def test_cost_per_incremental_conversion_is_empty_when_the_campaign_adds_nothing():
    camp, labels = build(cell("c", "A", "email", 100, 5), cell("c", "A", "control", 100, 8))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=1.0))
    r = res.roi[res.roi["segment"] == "A"].iloc[0]
    assert r["incremental_conversions"] == pytest.approx(-3.0) and np.isnan(r["cost_per_incremental_conversion"])


def test_targeting_leaves_out_a_segment_only_with_evidence_and_never_loses_value_against_send_to_all():
    rev = lambda k, v: [v] * k  # noqa: E731
    camp, labels = build(
        cell("c", "Sure", "email", 1000, 200, rev(200, 20.0)), cell("c", "Sure", "control", 1000, 100, rev(100, 20.0)),
        cell("c", "Maybe", "email", 200, 24, rev(24, 20.0)), cell("c", "Maybe", "control", 200, 20, rev(20, 20.0)),
        cell("c", "Worse", "email", 500, 20, rev(20, 20.0)), cell("c", "Worse", "control", 500, 30, rev(30, 20.0)))
    ev = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=0.1))  # rule: evidence
    # Worse: -2 pp x 20 = -0.4 per send, but its upper bound is above the cost 0.1: no evidence, so it is sent
    assert ev.targeting.set_index("segment")["send"].to_dict() == {"Maybe": True, "Sure": True, "Worse": True}
    policy = ev.policy.iloc[0]
    # per send: Sure +2.0 x 1000 sends, Maybe +0.4 x 200, Worse -0.4 x 500
    assert policy["expected_incremental_revenue"] == pytest.approx(2.0 * 1000 + 0.4 * 200 - 0.4 * 500)
    assert policy["expected_cost"] == pytest.approx(0.1 * 1700) and policy["sends_targeted"] == 1700
    risk = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=0.1, targeting_rule="expected_value"))
    assert risk.targeting.set_index("segment")["send"].to_dict() == {"Maybe": True, "Sure": True, "Worse": False}
    costly = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=5.0))
    sent = costly.targeting.set_index("segment")["send"]
    assert not sent["Worse"] and not sent["Maybe"]  # upper bounds well below 5 per send
    for res in (ev, risk, costly):
        p = res.policy.iloc[0]
        assert p["expected_net"] >= p["expected_net_all"] - 1e-9

def test_segments_are_pooled_over_campaigns_for_the_next_send():
    cells = []
    for cid, (a_t, a_c, b_t, b_c) in {"one": (60, 20, 10, 10), "two": (70, 25, 12, 9), "three": (50, 22, 8, 11)}.items():
        cells += [cell(cid, "A", "email", 400, a_t, [20.0] * a_t, prefix=cid), cell(cid, "A", "control", 200, a_c,
                  [20.0] * a_c, prefix=cid), cell(cid, "B", "email", 400, b_t, [20.0] * b_t, prefix=cid),
                  cell(cid, "B", "control", 200, b_c, [20.0] * b_c, prefix=cid)]
    camp, labels = build(*cells)
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=0.05))
    pooled = res.pooled.set_index("segment")
    a = res.table[(res.table["segment"] == "A") & (res.table["arm"] == "email")
                  & (res.table["metric"] == "conversion_rate")]
    var = ((a["lift_ci_high"] - a["lift_ci_low"]) / (2 * stats.norm.isf(0.025))) ** 2
    ref = combine_effects(a["lift_abs"].to_numpy(), var.to_numpy(), method_re="dl")
    assert pooled.loc["A", "campaigns"] == 3
    assert pooled.loc["A", "lift_abs"] == pytest.approx(ref.mean_effect_re if ref.tau2 > 0 else ref.mean_effect_fe,
                                                        abs=TOL)
    assert pooled.loc["A", "customers"] == 600 and pooled.loc["A", "cost_per_send"] == pytest.approx(0.05)
    # B: pooled revenue lift per send -0.50, upper 95% bound below the cost 0.05: evidence, so left out
    assert pooled["send"].to_dict() == {"A": True, "B": False}
    assert pooled.loc["B", "reason"].startswith("left out: upper 95% bound of incremental revenue per send")
    policy = res.pooled_policy.iloc[0]
    assert policy["campaign_id"] == "All campaigns" and policy["segments_to_send"] == "A"
    inc = pooled["incremental_revenue_per_customer"]
    assert pooled.loc["A", "sends"] == 400
    assert policy["expected_incremental_revenue"] == pytest.approx(inc["A"] * 400)
    assert policy["expected_net"] > policy["expected_net_all"]
    out = cs.summarize(res)
    assert "send to every eligible customer except B" in out["actions"][0]
    assert out["headlines"]["Segments in the next send"] == "1 of 2"


def test_qini_curve_ranks_segments_by_lift_and_measures_area_over_random():
    camp, labels = build(cell("c", "A", "email", 100, 30), cell("c", "A", "control", 100, 10),
                         cell("c", "B", "email", 100, 10), cell("c", "B", "control", 100, 10))
    q = evaluate_campaigns(camp, labels).qini
    assert q["segment"].tolist() == ["", "A", "B"]
    np.testing.assert_allclose(q["share_targeted"], [0, 0.5, 1.0])
    np.testing.assert_allclose(q["incremental"], [0, 20.0, 20.0])  # +0.2 x 100 sends (the ROI basis), then +0
    np.testing.assert_allclose(q["random"], [0, 10.0, 20.0])
    assert q["qini"].iloc[0] == pytest.approx(0.5 * 0.5 * 10 + 0.5 * (10 + 0) / 2)


def test_power_table_gives_mde_and_the_sizes_needed_for_the_target_lift():
    camp, labels = build(cell("c", "A", "email", 4000, 220), cell("c", "A", "control", 1000, 50))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(target_lift=0.01))
    p = res.power.set_index("segment").loc["A"]
    assert p["base_rate"] == pytest.approx(0.05) and p["target_lift_abs"] == pytest.approx(0.01)
    ref = samplesize_proportions_2indep_onetail(0.01, 0.05, 0.8, ratio=0.25, alpha=0.05)
    assert p["n_sent_needed"] == np.ceil(ref) and p["n_control_needed"] == np.ceil(np.ceil(ref) * 0.25)
    assert not p["powered"]
    pw = power_proportions_2indep(p["mde_abs"], 0.05, 4000, ratio=0.25, return_results=False)
    assert pw == pytest.approx(0.8, abs=TOL) and p["mde_rel"] == pytest.approx(p["mde_abs"] / 0.05)


# --------------------------------------------------------------------------- several campaigns, determinism
def test_several_campaigns_are_evaluated_each_as_if_alone():
    c1, l1 = build(cell("one", "A", "email", 300, 30), cell("one", "A", "control", 100, 5))
    c2, l2 = build(cell("two", "A", "sms", 200, 10), cell("two", "A", "control", 200, 12),
                   cell("two", "B", "sms", 100, 10), cell("two", "B", "control", 100, 2))
    both = evaluate_campaigns(pd.concat([c1, c2]), pd.concat([l1, l2]))
    alone = evaluate_campaigns(c1, l1)
    got = both.results[both.results["campaign_id"] == "one"].reset_index(drop=True)
    assert_frame_equal(got, alone.results)
    assert both.campaigns[["campaign_id", "arm"]].values.tolist() == [["one", "email"], ["two", "sms"]]


def test_results_do_not_depend_on_the_row_order():
    camp, labels = build(cell("c", "A", "email", 300, 30, [5.0] * 30), cell("c", "A", "control", 100, 5, [4.0] * 5),
                         cell("c", "B", "email", 200, 10), cell("c", "B", "control", 60, 4))
    first = evaluate_campaigns(camp, labels)
    shuffled = evaluate_campaigns(camp.sample(frac=1, random_state=1), labels.sample(frac=1, random_state=2))
    assert_frame_equal(first.results, shuffled.results)
    assert_frame_equal(first.targeting, shuffled.targeting)


def test_a_campaign_without_control_is_reported_and_a_file_without_any_control_is_an_error():
    c1, _ = build(cell("one", "A", "email", 30, 3), cell("one", "A", "control", 30, 1))
    c2, _ = build(cell("two", "A", "email", 30, 3))
    res = evaluate_campaigns(pd.concat([c1, c2]))
    assert any("Campaign two has no 'control' arm" in w for w in res.warnings)
    assert row(res, "two", ALL_SEGMENTS, "email", "conversion_rate")["value"] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"no campaign has an arm named 'control' \(arms found — two: email\)"):
        evaluate_campaigns(c2)


def test_tiny_campaign_of_two_customers_gives_rates_without_crashing():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": ["1", "2"], "arm": ["email", "control"],
                         "converted": [True, False], "revenue": [9.0, 0.0]})
    res = evaluate_campaigns(camp)
    r = row(res, "c", ALL_SEGMENTS, "email", "conversion_rate")
    assert r["small_cell"] and r["p_value"] == 1.0
    assert np.isnan(row(res, "c", ALL_SEGMENTS, "email", "revenue_per_recipient")["lift_ci_low"])
    assert res.targeting["send"].all() and res.targeting["reason"].str.startswith("sent by default").all()
    assert 3 <= len(cs.summarize(res)["findings"]) <= 5


# --------------------------------------------------------------------------- retention
def test_retention_counts_purchases_within_the_window_after_the_send():
    camp = pd.DataFrame({"campaign_id": ["c"] * 5 + ["d"], "customer_id": ["a", "b", "c", "d", "e", "a"],
                         "sent_at": pd.to_datetime(["2024-01-01", "2024-01-01", None, "2024-01-01", "2024-01-25",
                                                    None])})
    tx = pd.DataFrame({
        "customer_id": ["a", "b", "b", "c", "d", "d", None, "e"],
        "order_id": ["1", "2", "2", "3", "4", "5", "6", "7"],
        "order_date": pd.to_datetime(["2024-01-10", "2024-01-05", "2024-01-05", "2024-01-31", "2023-12-20",
                                      "2024-02-15", "2024-01-02", "2024-02-01"]),
        "amount": [10.0, 8.0, -8.0, 4.0, 5.0, 5.0, 1.0, 3.0],
    })
    got = cp.retention_flags(camp, tx, days=30, as_of="2024-02-10")
    # a: bought on day 9 -> 1; b: order 2 fully returned -> not a purchase -> 0;
    # c: no send time -> campaign's first send 2024-01-01, bought on day 30 -> 1;
    # d: bought before and 45 days after -> 0; e: window ends 2024-02-24 > as_of -> unknown even though
    # e already bought (counting early buyers of unfinished windows would bias retention up);
    # campaign d has no send time at all -> unknown
    np.testing.assert_array_equal(got.to_numpy(), [1.0, 0.0, 1.0, 0.0, np.nan, np.nan])


def test_retention_rate_and_cost_per_retained_customer_use_the_transactions():
    camp, labels = build(cell("c", "A", "email", 10, 0), cell("c", "A", "control", 10, 0))
    camp["sent_at"] = pd.Timestamp("2024-03-01")
    buyers = [f"c-A-email-{i}" for i in range(6)] + [f"c-A-control-{i}" for i in range(3)]
    tx = pd.DataFrame({"customer_id": buyers, "order_id": [str(i) for i in range(9)],
                       "order_date": pd.Timestamp("2024-03-05"), "amount": 20.0})
    res = evaluate_campaigns(camp, labels, tx, settings=CampaignSettings(cost_per_send=1.0, min_cell_size=1),
                             as_of="2024-06-01")
    r = row(res, "c", "A", "email", "retention_rate")
    assert (r["count"], r["n"], r["lift_abs"]) == (6, 10, pytest.approx(0.3))
    roi = res.roi[res.roi["segment"] == "A"].iloc[0]
    assert roi["retained"] == 6 and roi["cost_per_retained"] == pytest.approx(10 / 6)
    assert roi["cost_per_incremental_retained"] == pytest.approx(10 / 3)


# --------------------------------------------------------------------------- input errors
def test_missing_columns_and_missing_ids_are_clear_data_errors():
    with pytest.raises(DataError, match=r"campaign_clean: required column\(s\) 'arm' missing .*columns.campaign"):
        evaluate_campaigns(pd.DataFrame({"campaign_id": ["c"], "customer_id": ["a"]}))
    bad = pd.DataFrame({"campaign_id": ["c", "c", None], "customer_id": ["a", "b", "c"], "arm": ["x", "control", "x"]})
    with pytest.raises(DataError, match=r"column 'campaign_id' is empty at row 4\."):
        evaluate_campaigns(bad)
    with pytest.raises(DataError, match="has no rows"):
        evaluate_campaigns(pd.DataFrame(columns=["campaign_id", "customer_id", "arm"]))


def test_repeated_customers_and_unreadable_flags_name_the_rows():
    dup = pd.DataFrame({"campaign_id": "c", "customer_id": ["a", "b", "a"], "arm": ["x", "control", "control"]})
    with pytest.raises(DataError, match=r"customer 'a' appears more than once in campaign 'c' \(rows 2, 4\)"):
        evaluate_campaigns(dup)
    flags = pd.DataFrame({"campaign_id": "c", "customer_id": ["a", "b"], "arm": ["x", "control"],
                          "converted": ["yes", "maybe"]})
    with pytest.raises(DataError, match=r"column 'converted' has values that are not yes/no flags at row 3 "
                                        r"\(e.g. 'maybe'\)"):
        evaluate_campaigns(flags)
    money = pd.DataFrame({"campaign_id": "c", "customer_id": ["a", "b"], "arm": ["x", "control"],
                          "revenue": ["12", "€3"]})
    with pytest.raises(DataError, match=r"column 'revenue' has values that are not numbers at row 3"):
        evaluate_campaigns(money)


def test_a_missing_segment_dimension_names_the_notebook_to_run():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": ["a", "b"], "arm": ["x", "control"]})
    labels = pd.DataFrame({"customer_id": ["a"], "rfm_segment": ["Champions"]})
    with pytest.raises(DataError, match=r"no column 'cluster_name'.*\(03_clustering\)"):
        evaluate_campaigns(camp, labels, settings=CampaignSettings(segment_by="cluster_name"))
    assert evaluate_campaigns(camp, labels).segment_by == "rfm_segment"  # auto


@pytest.mark.parametrize("section, message", [
    ({"correction": "sidak"}, "campaign.correction = 'sidak' is not supported"),
    ({"alpha": 1.5}, r"campaign.alpha = 1.5 is out of range"),
    ({"segment_by": "country"}, "campaign.segment_by = 'country' is not supported"),
    ({"expected_split": {"control": 1.2}}, "shares must be in"),
    ({"retention_days": "thirty"}, "campaign.retention_days = 'thirty' is not a whole number"),
    ({"cost_per_send": -1}, "campaign.cost_per_send = -1 is out of range"),
    ({"bogus": 1}, "campaign: unknown key"),
    ({"currency": "USD"}, "set once, as report.currency"),
])
def test_invalid_settings_are_config_errors_naming_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        CampaignSettings.from_config({"campaign": section})


def test_settings_defaults_match_the_shipped_campaign_yml():
    cfg = load_config()
    expected = CampaignSettings(currency=cfg["report"]["currency"])
    assert CampaignSettings.from_config(cfg) == expected
    cfg = load_config(overrides={"privacy": {"min_cell_size": 25}})
    assert CampaignSettings.from_config(cfg).min_cell_size == 25


# --------------------------------------------------------------------------- views, summary, plots
def test_lift_view_and_explorer_choices_cover_every_available_dimension():
    camp, labels = build(cell("c", "A", "email", 50, 10), cell("c", "A", "control", 50, 4))
    labels["lifecycle_stage"] = "active"
    res = evaluate_campaigns(camp, labels)
    choices = cs.explorer_choices(res)
    assert choices["lifecycle_stage · Conversion rate"] == ("lifecycle_stage", "conversion_rate")
    assert set(d for d, _ in choices.values()) == {"rfm_segment", "lifecycle_stage", "none"}
    view = cs.lift_view(res, "lifecycle_stage", "conversion_rate")
    assert view["segment"].tolist() == [ALL_SEGMENTS, "active"]
    assert view["lift_abs"].tolist() == pytest.approx([0.12, 0.12])
    assert view["smallest_arm"].tolist() == [50, 50]
    brief = cs.lift_view(res, "lifecycle_stage", "conversion_rate", brief=True)
    assert list(brief.columns) == ["campaign_id", "segment", "smallest_arm", "lift_abs", "lift_ci_low", "lift_ci_high",
                                   "p_adjusted", "verdict"]
    with pytest.raises(ConfigError, match="available"):
        cs.lift_view(res, "cluster_name", "conversion_rate")


def test_summary_has_findings_actions_and_headlines_from_the_results():
    camp, labels = build(cell("c", "Good", "email", 2000, 400, [30.0] * 400),
                         cell("c", "Good", "control", 500, 50, [30.0] * 50),
                         cell("c", "Flat", "email", 2000, 100, [30.0] * 100),
                         cell("c", "Flat", "control", 500, 25, [30.0] * 25))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=0.2))
    out = cs.summarize(res)
    assert set(out) == {"title", "analysed", "findings", "actions", "headlines", "warnings"}
    assert 3 <= len(out["findings"]) <= 5
    # Flat: 0 lift, upper bound of its revenue per send above the cost 0.2: no evidence to skip it
    assert out["actions"][0].startswith("Next email send (pooled over 1 campaigns): send to all eligible customers")
    assert len([a for a in out["actions"] if a.startswith("Next")]) == 1
    assert out["headlines"]["Segments in the next send"] == "2 of 2" and out["headlines"]["Campaigns"] == 1
    assert "ROI" not in out["headlines"]
    inc = res.campaigns["incremental_revenue"].iloc[0]
    assert out["headlines"]["Incremental revenue per 1,000 sends"] == pytest.approx(round(inc / 4000 * 1000, 2))
    assert out["headlines"]["Assignments (customer × campaign)"] == 5000
    assert out["headlines"]["Distinct customers"] == 5000
    assert "RFM segment: lifts differ" in " ".join(out["findings"])
    json.dumps(out)  # serialisable for summaries/05_campaign_evaluation.json


def test_plots_return_titled_axes_with_one_mark_per_row():
    from segkit.plots import campaign as pc

    camp, labels = build(cell("c", "A", "email", 200, 30), cell("c", "A", "control", 60, 4),
                         cell("c", "B", "email", 200, 10), cell("c", "B", "control", 60, 4))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(expected_split={"control": 0.2}))
    ax = pc.plot_lift_forest(res.table, "conversion_rate")
    assert [t.get_text() for t in ax.get_yticklabels()] == [ALL_SEGMENTS, "A", "B"]
    assert ax.get_title() == "Conversion rate: lift vs control (95% intervals)"
    ax = pc.plot_arm_rates(cs.arm_overview(res))
    assert len(ax.patches) == 2 * 2  # 2 arms x (delivery, conversion)
    assert pc.plot_srm(res.srm).get_ylabel() == "" and pc.plot_qini(res.qini).get_title().startswith("Uplift curve")
    plt.close("all")


# --------------------------------------------------------------------------- producer
def _write_run(ctx, camp: pd.DataFrame, labels: pd.DataFrame) -> None:
    ctx.write_artifact("campaign_clean", camp)
    tx = pd.DataFrame({"customer_id": camp["customer_id"].iloc[:5].to_numpy(), "order_id": list("12345"),
                       "order_date": pd.Timestamp("2024-03-04"), "amount": 10.0, "is_return": False})
    ctx.write_artifact("transactions_clean", tx)
    ctx.write_artifact("audit_summary", {"as_of": "2024-06-01"})
    ctx.update_customer_segments(labels)


def test_producer_writes_campaign_results_in_long_format(tmp_path):
    from segkit.steps.pipeline import open_run

    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path, overrides={"campaign": {"cost_per_send": 0.1}})
    camp, labels = build(cell("c", "A", "email", 100, 20, [25.0] * 20), cell("c", "A", "control", 40, 3),
                         cell("c", "B", "email", 80, 8), cell("c", "B", "control", 30, 3))
    camp["sent_at"] = pd.Timestamp("2024-03-01")
    _write_run(ctx, camp, labels)
    result = cs.build_campaign_artifacts(ctx)
    out = pd.read_csv(tmp_path / "artifacts" / "campaign_results.csv")
    required = ["campaign_id", "segment_by", "segment", "arm", "metric", "n", "value", "ci_low", "ci_high",
                "lift_abs", "lift_ci_low", "lift_ci_high", "p_value", "p_adjusted"]
    assert list(out.columns[:5]) == required[:5] and set(required) <= set(out.columns)
    assert len(out) == len(result.results) and (out["segment_by"] == "rfm_segment").all()
    # the run's labels (A, B) come from after the send; as of the send nobody had bought yet
    assert set(out["segment"]) == {ALL_SEGMENTS, "no purchase before send"}
    assert out.duplicated(["campaign_id", "segment", "arm", "metric"]).sum() == 0
    control = out[out["arm"] == "control"]
    assert control[["lift_abs", "lift_ci_low", "lift_ci_high", "p_value", "p_adjusted"]].isna().all().all()
    retention = out[(out["metric"] == "retention_rate") & (out["arm"] == "email") & (out["segment"] == ALL_SEGMENTS)]
    assert retention["value"].iloc[0] == pytest.approx(5 / 180)


def test_the_producer_lists_a_sample_ratio_mismatch_in_its_warnings_not_as_a_python_warning(tmp_path):
    from segkit.steps.pipeline import open_run

    # a Python warning would print into the notebook's HTML as stderr, after the warnings list
    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path, overrides={"campaign": {"expected_split": {"control": 0.5, "email": 0.5}}})
    camp, labels = build(cell("c", "A", "email", 400, 40), cell("c", "A", "control", 100, 10))
    camp["sent_at"] = pd.Timestamp("2024-03-01")
    _write_run(ctx, camp, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleRatioMismatchWarning)
        result = cs.build_campaign_artifacts(ctx)
    mismatches = [w for w in result.warnings if "SAMPLE-RATIO MISMATCH in campaign c" in w]
    assert mismatches and all("not what the design intended" in m for m in mismatches)  # overall + its segment
    assert result.srm.set_index("segment").loc[ALL_SEGMENTS, "srm"]


def test_producer_without_campaign_data_explains_what_to_do(tmp_path):
    from segkit.steps.pipeline import open_run

    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path)
    with pytest.raises(UpstreamMissingError, match=r"no campaign file was given\. Set data\.campaign"):
        cs.build_campaign_artifacts(ctx)


# --------------------------------------------------------------------------- the generated shop (known truth)
def test_lifts_per_latent_segment_recover_the_planted_uplift_of_the_generated_shop():
    from segkit.data.datasets import generate_shop

    shop = generate_shop(20000, seed=3)
    labels = shop.truth[["customer_id", "latent_segment"]].rename(columns={"latent_segment": "cluster_name"})
    res = evaluate_campaigns(shop.campaign, labels)
    truth = shop.truth.groupby("latent_segment")["true_uplift"].first()
    t = res.table[(res.table["metric"] == "conversion_rate") & (res.table["arm"] == "email")
                  & res.table["segment"].isin(truth.index)]
    assert len(t) == 3 * 5  # three campaigns x five latent segments
    planted = t["segment"].map(truth)
    covered = (t["lift_ci_low"] <= planted) & (planted <= t["lift_ci_high"])
    assert covered.sum() >= 13  # 95% intervals: all 15 cover with probability ~0.46, >= 13 with ~0.96
    pooled = t.groupby("segment")["lift_abs"].mean().sort_values(ascending=False)
    assert pooled.index[:2].tolist() == ["bargain", "regular"]  # the two largest planted effects
    sent = res.targeting[res.targeting["segment"] == "bargain"]["send"]
    assert len(sent) == 3 and sent.all()


# --------------------------------------------------------------------------- the notebook
@pytest.mark.slow
def test_the_notebook_runs_alone_on_the_sample_and_writes_campaign_results(tmp_path):
    import re

    from segkit.core.config import project_root

    from run_helpers import run_sample_notebook

    outputs, text = run_sample_notebook("05_campaign_evaluation", tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    assert "Lift by segment dimension and metric" in text and "rfm_segment · Conversion rate" in text
    assert "What was analysed" in text and "Next email send" in text
    assert not re.search(r"\bC\d{6}\b", text)  # no raw sample id anywhere
    assert "NaN" not in text and "<NA>" not in text  # merged "Other" rows show dashes
    assert "The random split into control and email" in text and "surely" not in text
    results = pd.read_csv(project_root() / "reports" / "interactive" / "05_campaign_evaluation" / "artifacts" / "campaign_results.csv")
    assert set(results["campaign_id"]) == {"EM-20231125", "EM-20240522", "EM-20241117"}
    email = results[(results["arm"] == "email") & (results["segment"] == ALL_SEGMENTS)
                    & (results["metric"] == "conversion_rate")]
    assert (email["lift_ci_low"] > 0).all()  # the planted e-mail effect is found in every campaign


def test_producer_without_segment_labels_evaluates_all_customers_only(tmp_path):
    from segkit.steps.pipeline import open_run

    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path)
    camp, _ = build(cell("c", "A", "email", 60, 12), cell("c", "A", "control", 20, 2))
    ctx.write_artifact("campaign_clean", camp)
    ctx.write_artifact("transactions_clean", pd.DataFrame({"customer_id": ["x"], "order_id": ["1"],
                                                           "order_date": pd.Timestamp("2024-01-01"), "amount": 1.0}))
    result = cs.build_campaign_artifacts(ctx)  # no customer_segments.csv: 02-04 did not run
    assert result.segment_by == "none" and set(result.results["segment"]) == {ALL_SEGMENTS}
    with pytest.raises(UpstreamMissingError, match="customer_segments.csv"):
        cs.build_campaign_artifacts(open_run("05_campaign_evaluation", run_dir=tmp_path,
                                             overrides={"campaign": {"segment_by": "rfm_segment"}}))


def test_a_large_campaign_file_is_aggregated_exactly():
    rng = np.random.default_rng(21)
    n = 300_000
    camp = pd.DataFrame({"campaign_id": rng.choice(["a", "b", "c"], n), "customer_id": np.arange(n).astype(str),
                         "arm": np.where(rng.random(n) < 0.2, "control", "email"),
                         "converted": rng.random(n) < 0.05,
                         "revenue": np.where(rng.random(n) < 0.05, rng.lognormal(3, 1, n), 0.0)})
    labels = pd.DataFrame({"customer_id": camp["customer_id"], "rfm_segment": rng.choice(list("PQRSTU"), n)})
    res = evaluate_campaigns(camp, labels)
    t = res.table[res.table["metric"] == "conversion_rate"].set_index(["campaign_id", "segment", "arm"])
    ref = camp.assign(segment=labels["rfm_segment"]).groupby(["campaign_id", "segment", "arm"])["converted"].agg(
        ["size", "sum"])
    got = t.loc[ref.index, ["n", "count"]]
    np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())
    rev = res.table[(res.table["metric"] == "revenue_per_recipient") & (res.table["segment"] == ALL_SEGMENTS)]
    means = camp.groupby(["campaign_id", "arm"])["revenue"].mean()
    np.testing.assert_allclose(rev.set_index(["campaign_id", "arm"])["value"].loc[means.index], means, rtol=1e-12)


# --------------------------------------------------------------------------- review fixes: no hindsight, every dimension
def _shop_run(tmp_path_factory):
    """A full run on the bundled sample shop (generated by segkit.data.datasets; producers 01-05)."""
    from segkit.steps.audit import build_audit_artifacts
    from segkit.steps.cluster import build_cluster_artifacts
    from segkit.steps.lifecycle import build_lifecycle_artifacts
    from segkit.steps.pipeline import open_run
    from segkit.steps.rfm import build_rfm_artifacts

    run = tmp_path_factory.mktemp("shop")
    over = {"campaign": {"expected_split": {"control": 0.2, "email": 0.8}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, producer in (("01_data_audit", build_audit_artifacts), ("02_rfm", build_rfm_artifacts),
                               ("03_clustering", build_cluster_artifacts), ("04_lifecycle", build_lifecycle_artifacts)):
            producer(open_run(name, run_dir=run, overrides=over))
        result = cs.build_campaign_artifacts(open_run("05_campaign_evaluation", run_dir=run, overrides=over))
    return run, over, result


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    return _shop_run(tmp_path_factory)


@pytest.fixture(scope="module")
def shop_result(shop_run):
    return shop_run[2]


def test_campaign_evaluation_uses_notebook_03s_saved_model_and_falls_back_to_a_refit(shop_run, tmp_path):
    import shutil

    from segkit.steps.pipeline import open_run

    run, over, result = shop_run
    # the saved model reproduces every label of 03: nothing to warn about
    assert [w for w in result.warnings if w.startswith("Cluster model:")] == []
    assert cs.fitted_cluster_model(open_run("05_campaign_evaluation", run_dir=run, overrides=over))[1] == ""
    saved = (run / "artifacts" / "campaign_results.csv").read_bytes()
    older = tmp_path / "older"
    shutil.copytree(run, older)
    (older / "artifacts" / "cluster_model.json").unlink()  # a run folder from before the artifact existed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = cs.build_campaign_artifacts(open_run("05_campaign_evaluation", run_dir=older, overrides=over))
    assert (older / "artifacts" / "campaign_results.csv").read_bytes() == saved
    assert "has no artifacts/cluster_model.json (written by 03_clustering), so it was refitted with the same " \
           "settings, seed and k = " in " ".join(refit.warnings)
    text = (run / "artifacts" / "cluster_model.json").read_text()
    (older / "artifacts" / "cluster_model.json").write_text(text[: len(text) // 2])  # truncated: corrupt JSON
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corrupt = cs.build_campaign_artifacts(open_run("05_campaign_evaluation", run_dir=older, overrides=over))
    assert (older / "artifacts" / "campaign_results.csv").read_bytes() == saved
    said = next(w for w in corrupt.warnings if w.startswith("Cluster model:"))
    assert said.startswith("Cluster model: artifacts/cluster_model.json could not be used (")
    assert "so it was refitted with the same settings" in said and "reproduces 100.0%" in said


def test_no_segment_is_structurally_without_conversions_because_of_post_send_information(shop_result):
    # the run's labels (as of as_of) put churned-after-the-send customers in "At Risk"/"Lost" with 0 of n
    # converting in both arms; segments as of the send have buyers in every large segment
    assert set(shop_result.by_dimension) == {"rfm_segment", "lifecycle_stage", "cluster_name", "none"}
    for dim, t in shop_result.by_dimension.items():
        if dim == "none":
            continue
        conv = t[(t["metric"] == "conversion_rate") & (t["segment"] != ALL_SEGMENTS)]
        big = conv[(conv["customers"] >= 30) & (conv["customers_c"] >= 30)]
        both_zero = big[(big["count"] == 0) & (big["value_c"] == 0)]
        assert both_zero.empty, (dim, both_zero[["campaign_id", "segment"]].to_dict("records"))
        assert UNLABELLED not in set(t["segment"])
        assert "no purchase before send" in set(t["segment"])


def test_segment_intervals_cover_the_planted_uplift(shop_result):
    from segkit.core.config import project_root

    truth = pd.read_csv(project_root() / "data" / "sample" / "truth.csv", dtype={"customer_id": "string"})
    labels = shop_result.segment_labels.merge(truth[["customer_id", "true_uplift"]], on="customer_id", how="left")
    covered, total = 0, 0
    for dim, t in shop_result.by_dimension.items():
        if dim == "none":
            continue
        planted = labels.groupby(["campaign_id", dim])["true_uplift"].mean()
        conv = t[(t["metric"] == "conversion_rate") & (t["segment"] != ALL_SEGMENTS) & ~t["small_cell"]]
        true = planted.reindex(pd.MultiIndex.from_arrays([conv["campaign_id"].astype(str), conv["segment"].astype(str)]))
        inside = (conv["lift_ci_low"].to_numpy() <= true.to_numpy()) & (true.to_numpy() <= conv["lift_ci_high"].to_numpy())
        total += len(conv)
        covered += int(inside.sum())
    # 95% intervals: about 95% cover; with ~60 cells, fewer than 85% would be very unlikely (binomial p < 0.01)
    assert total > 40 and covered / total >= 0.85, (covered, total)
    # the planted effect: bargain hunters (true uplift 11.6 pp) vs the rest; pooled by cluster it shows up
    pooled = shop_result.pooled_by_dimension
    clusters = pooled[pooled["segment_by"] == "cluster_name"].set_index("segment")
    prospects = clusters.loc["no purchase before send"]
    assert prospects["lift_ci_low"] <= 0.0 <= prospects["lift_ci_high"]  # planted: 0 for prospects
    # the cluster with the largest planted uplift (the bargain hunters' marketplace cluster; since issue 16
    # named from its median customer, who opens e-mails) shows the largest measured lift
    named = labels.dropna(subset=["cluster_name"]).groupby("cluster_name")["true_uplift"].mean()
    assert named.idxmax() == clusters["lift_abs"].idxmax() == "Marketplace-first, e-mail-engaged customers"
    best = clusters.loc["Marketplace-first, e-mail-engaged customers"]
    assert best["lift_ci_low"] <= 0.1164 <= best["lift_ci_high"]


def test_summary_tests_every_dimension_for_different_lifts_and_recommends_one_send(shop_result):
    out = cs.summarize(shop_result)
    het = shop_result.heterogeneity
    assert set(het["segment_by"]) == {"rfm_segment", "lifecycle_stage", "cluster_name"}
    text = " ".join(out["findings"])
    assert "cluster" in text and "lifecycle stage" in text and "RFM segment" in text
    assert "Marketplace-first, e-mail-engaged customers" in text  # the cluster of the planted uplift (cluster names: issue 16)
    nexts = [a for a in out["actions"] if a.startswith("Next")]
    assert len(nexts) == 1 and "send to all eligible customers" in nexts[0] and "EM-" not in nexts[0]
    assert "ROI" not in out["headlines"] and "Incremental revenue per 1,000 sends EUR" in out["headlines"]
    assert out["headlines"]["Distinct customers"] < out["headlines"]["Assignments (customer × campaign)"]
    assert "p = " in " ".join(f for f in out["findings"] if "split" in f)
    policy = shop_result.pooled_policy.iloc[0]
    assert policy["expected_net"] >= policy["expected_net_all"]


def test_heterogeneity_q_equals_statsmodels_homogeneity_test():
    t = pd.DataFrame({"campaign_id": "c", "arm": "email", "metric": "conversion_rate", "small_cell": False,
                      "segment": ["A", "B", "C"], "lift_abs": [0.01, 0.05, 0.12],
                      "lift_ci_low": [-0.02, 0.01, 0.05], "lift_ci_high": [0.04, 0.09, 0.19]})
    h = cp.heterogeneity_table({"rfm_segment": t}, CampaignSettings()).iloc[0]
    var = ((t["lift_ci_high"] - t["lift_ci_low"]) / (2 * stats.norm.isf(0.025))) ** 2
    ref = combine_effects(t["lift_abs"].to_numpy(), var.to_numpy(), method_re="dl")
    hom = ref.test_homogeneity()
    stat, p, df = hom.statistic, hom.pvalue, hom.df
    assert h["q"] == pytest.approx(stat, abs=TOL) and h["p_value"] == pytest.approx(p, abs=TOL) and h["df"] == df


def test_verdict_says_inconclusive_when_the_interval_excludes_zero_but_the_exact_test_does_not():
    # 7 of 20 vs 0 of 10: Newcombe interval +2.5 pp to ..., Fisher p = 0.064 (the reviewer's case)
    camp, labels = build(cell("c", "S", "email", 20, 7), cell("c", "S", "control", 10, 0))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(min_cell_size=5))
    r = row(res, "c", "S", "email", "conversion_rate")
    assert r["test"] == "Fisher exact" and r["lift_ci_low"] > 0 and r["p_adjusted"] >= 0.05
    assert r["verdict"].startswith("Inconclusive")
    assert "not adjusted" not in r["verdict"]  # a single segment: nothing to adjust for
    # here the interval and the test really disagree (no correction involved): the margin wording stays
    assert f"but the Fisher exact test gives p = {r['p_value']:.2g}, above 0.05; the interval and the test disagree at " \
           "the margin (small counts)" in r["verdict"]


def test_roi_is_revenue_based_unless_a_gross_margin_is_configured():
    camp, labels = build(cell("c", "A", "email", 100, 20, [25.0] * 20), cell("c", "A", "control", 100, 10, [25.0] * 10))
    plain = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=1.0)).roi.iloc[0]
    margin = evaluate_campaigns(camp, labels, settings=CampaignSettings(cost_per_send=1.0, gross_margin=0.4)).roi.iloc[0]
    assert plain["roi_basis"] == "revenue-based, not profit" and plain["roi"] == pytest.approx((250 - 100) / 100)
    assert margin["roi"] == pytest.approx((0.4 * 250 - 100) / 100)
    assert plain["incremental_revenue_per_1000_sends"] == pytest.approx(2500.0)


def test_the_money_sentence_counts_campaigns_not_campaign_arm_pairs():
    # issue 14: one campaign with three e-mail variants plus a one-arm campaign were "the 4 campaigns"
    cells = [cell("spring", "A", arm, 300, conv, [30.0] * conv, prefix="s") for arm, conv in
             (("subject_a", 45), ("subject_b", 40), ("subject_c", 35), ("control", 20))]
    cells += [cell("summer", "A", arm, 300, conv, [30.0] * conv, prefix="u") for arm, conv in
              (("email", 40), ("control", 20))]
    camp, labels = build(*cells)
    money = [f for f in cs.summarize(evaluate_campaigns(camp, labels, settings=LOOSE))["findings"] if "per 1,000" in f]
    assert len(money) == 1
    assert money[0].startswith("Together the 2 campaigns (4 treatment arms, each compared with control) added about ")
    three_arms = build(*cells[:4])
    money = [f for f in cs.summarize(evaluate_campaigns(*three_arms, settings=LOOSE))["findings"] if "per 1,000" in f]
    assert money[0].startswith("Campaign spring (3 treatment arms, each compared with control) added about ")


# --------------------------------------------------------------------------- what the report says (review of 05)
def _edge_and_flat_segments(campaign: str = "c", prefix: str = "", scale: int = 3) -> list[pd.DataFrame]:
    """One segment with a lift of +5 pp (15% vs 10%; unadjusted p about 0.03 with ``scale=3``, i.e. 600
    e-mailed and 300 control customers) and three segments without lift."""
    sent, ctrl = 200 * scale, 100 * scale
    cells = [cell(campaign, "Edge", "email", sent, 30 * scale, prefix=prefix),
             cell(campaign, "Edge", "control", ctrl, 10 * scale, prefix=prefix)]
    for seg in ("F1", "F2", "F3"):
        cells += [cell(campaign, seg, "email", sent, 20 * scale, prefix=prefix),
                  cell(campaign, seg, "control", ctrl, 10 * scale, prefix=prefix)]
    return cells


def test_an_inconclusive_verdict_names_the_correction_when_the_correction_is_the_cause():
    res = evaluate_campaigns(*build(*_edge_and_flat_segments()))
    r = row(res, "c", "Edge", "email", "conversion_rate")
    assert r["lift_ci_low"] > 0 and r["p_value"] < 0.05 <= r["p_adjusted"]  # interval and raw test agree
    assert r["verdict"].startswith("Inconclusive: +5.0 pp")
    assert (f"the two-proportion z-test gives p = {r['p_value']:.2g}: significant before correction, not after Holm "
            f"correction across 4 segments (adjusted p = {r['p_adjusted']:.2g}, above 0.05)") in r["verdict"]
    assert "disagree at the margin" not in r["verdict"] and "test test" not in r["verdict"]


def test_the_pooled_next_send_calls_a_gain_sure_only_after_the_correction_across_segments():
    cells = []
    for cid in ("one", "two", "three"):  # each campaign a third of the single one above: pooled, the same evidence
        cells += _edge_and_flat_segments(cid, prefix=cid, scale=1)
        cells += [cell(cid, "Strong", "email", 200, 50, prefix=cid), cell(cid, "Strong", "control", 100, 10, prefix=cid)]
    res = evaluate_campaigns(*build(*cells), settings=CampaignSettings(cost_per_send=0.01))
    pooled = res.pooled.set_index("segment")
    edge, strong = pooled.loc["Edge"], pooled.loc["Strong"]
    assert edge["lift_ci_low"] > 0 and edge["p_value"] < 0.05 <= edge["p_adjusted"]  # pooled over 3 campaigns
    assert not edge["sure_gain"]
    assert edge["reason"] == (f"send: the interval excludes 0 before correction for 5 segments; not after (Holm, "
                              f"adjusted p = {edge['p_adjusted']:.2g}) — no evidence that a send here is worth less "
                              "than it costs")
    assert strong["sure_gain"] and strong["reason"].startswith("send: the lift is positive after Holm correction "
                                                               "across 5 segments (adjusted p")
    # the same rule as the verdicts and the plot's colours: a sure gain is a significant adjusted test
    assert (pooled["sure_gain"] == ((pooled["p_adjusted"] < 0.05) & (pooled["lift_abs"] > 0))).all()
    assert not pooled["reason"].str.contains("surely").any()
    # per campaign, too: the targeting table follows the adjusted p-values of the segment table
    single = evaluate_campaigns(*build(*_edge_and_flat_segments())).targeting.set_index("segment")
    assert not single.loc["Edge", "sure_gain"]
    assert "the interval excludes 0 before correction for 4 segments; not after" in single.loc["Edge", "reason"]


def test_a_split_just_above_the_alarm_line_is_called_borderline_with_the_thresholds():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
                         "arm": ["control"] * 235 + ["email"] * 765, "converted": False})
    res = evaluate_campaigns(camp, settings=CampaignSettings(expected_split={"control": 0.2, "email": 0.8}))
    overall = res.srm.iloc[0]
    ref = stats.chisquare([235, 765], [200, 800])
    assert 0.001 < ref.pvalue < 0.01 and not overall["srm"]
    assert overall["note"] == "borderline: 0.001 <= p < 0.01; check how customers were assigned"
    out = cs.summarize(res)
    findings, actions = " ".join(out["findings"]), " ".join(out["actions"])
    assert (f"The random split into control and email is borderline in c: 23.5% control vs 20.0% planned "
            f"(chi-square p = {ref.pvalue:.2g}) — a mismatch is flagged below p = 0.001, borderline below 0.01") in findings
    assert "looks as designed" not in findings
    assert "Check how customers were assigned to control and email in c before relying on its lifts" in actions


def test_the_split_text_uses_the_arm_names_and_says_what_each_split_is_compared_with():
    camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(1000)],
                         "arm": ["holdout"] * 200 + ["sms"] * 800, "converted": False})
    design = CampaignSettings(control_arm="holdout", expected_split={"holdout": 0.2, "sms": 0.8})
    findings = " ".join(cs.summarize(evaluate_campaigns(camp, settings=design))["findings"])
    assert "The random split into holdout and sms looks as designed" in findings and "e-mail" not in findings
    # with a design, every segment is compared with the design (as the notebook now says), not with the campaign
    seg_camp, labels = build(cell("c", "A", "email", 350, 0), cell("c", "A", "control", 150, 0),
                             cell("c", "B", "email", 400, 0), cell("c", "B", "control", 100, 0))
    with pytest.warns(SampleRatioMismatchWarning):  # overall 25% control vs a 20% design
        srm = evaluate_campaigns(seg_camp, labels, settings=CampaignSettings(expected_split={"control": 0.2})).srm
    assert srm.set_index("segment")["expected_control_share"].tolist() == pytest.approx([0.2, 0.2, 0.2])
    assert cs.srm_reference(CampaignSettings(expected_split={"control": 0.2, "email": 0.8})).startswith(
        "Here every row — each campaign overall and each of its segments — is compared with the designed split of "
        "campaign.expected_split (control 20.0% · email 80.0%)")
    assert cs.srm_reference(CampaignSettings()).startswith(
        "Here no designed split is configured (campaign.expected_split): each segment is compared with its "
        "campaign's overall split, and the overall split itself is not tested")


def test_the_next_test_is_planned_on_the_latest_campaigns_base_rate():
    # "A-late" sorts first but was sent last; its control converts 10%, the older campaign's 5%
    camp = pd.concat([cell("A-late", "x", "email", 800, 120, prefix="a"), cell("A-late", "x", "control", 200, 20, prefix="a"),
                      cell("B-early", "x", "email", 800, 80, prefix="b"), cell("B-early", "x", "control", 200, 10, prefix="b")],
                     ignore_index=True).drop(columns="segment")
    camp["sent_at"] = np.where(camp["campaign_id"] == "A-late", "2024-11-17 09:00", "2023-11-25 09:00")
    res = evaluate_campaigns(camp)
    plan = [a for a in cs.summarize(res)["actions"] if a.startswith("Plan the next test")]
    need = res.power.set_index("campaign_id").loc["A-late"]
    assert plan == [f"Plan the next test: on a base of 10.0% (conversion rate in control of the latest campaign, "
                    f"A-late, sent 2024-11-17), detecting a lift of 2.0 pp with 80% power needs about "
                    f"{int(need['n_sent_needed']):,} customers in the email arm and {int(need['n_control_needed']):,} "
                    "in control for each segment you want to judge (the same split; power table: per segment)."]
    undated = cs.summarize(evaluate_campaigns(camp.drop(columns="sent_at")))["actions"]
    assert any("the largest campaign, " in a and "no send dates tell the latest" in a for a in undated)


def test_plots_leave_out_cells_under_the_privacy_threshold_with_a_note():
    from segkit.plots import campaign as pc

    camp, labels = build(cell("c", "A", "email", 200, 30), cell("c", "A", "control", 60, 4),
                         cell("c", "Tiny", "email", 20, 3), cell("c", "Tiny", "control", 5, 0))
    res = evaluate_campaigns(camp, labels, settings=CampaignSettings(expected_split={"control": 0.2}, min_cell_size=3))
    note = "Not shown: 1 row(s) with fewer than 10 customers in an arm (privacy.min_cell_size), as in the tables."
    for ax in (pc.plot_lift_forest(res.table, "conversion_rate", min_cell_size=10),
               pc.plot_srm(res.srm, min_cell_size=10)):
        assert [t.get_text() for t in ax.get_yticklabels()] == [ALL_SEGMENTS, "A"]
        assert [t.get_text() for t in ax.texts] == [note]
    assert res.srm.set_index("segment").loc["Tiny", "smallest_arm"] == 5
    shown = pc.plot_lift_forest(res.table, "conversion_rate")  # no threshold given: every row, no note
    assert "Tiny" in [t.get_text() for t in shown.get_yticklabels()] and not shown.texts
    plt.close("all")


def test_merged_rows_of_report_tables_show_a_dash_not_nan():
    from segkit.core.privacy import suppress_small_groups
    from segkit.steps.pipeline import dash_missing

    camp, labels = build(cell("c", "A", "email", 200, 30), cell("c", "A", "control", 60, 4),
                         cell("c", "T1", "email", 20, 3), cell("c", "T1", "control", 6, 0),
                         cell("c", "T2", "email", 20, 3), cell("c", "T2", "control", 7, 0))
    res = evaluate_campaigns(camp, labels, settings=LOOSE)
    view = suppress_small_groups(cs.lift_view(res, "rfm_segment", "conversion_rate"), "smallest_arm", 10, "segment")
    shown = dash_missing(view.round(4))
    other = shown.set_index("segment").loc["Other (2 groups under 10)"]
    assert other["campaign_id"] == "–" and other["lift_abs"] == "–" and other["verdict"] == "–"
    assert other["smallest_arm"] == 13
    html = shown.to_html()
    assert "NaN" not in html and "&lt;NA&gt;" not in html


def test_srm_and_uplift_legends_sit_outside_the_plot_area():
    from segkit.plots import campaign as pc

    cells = []
    for cid in ("EM-2024-11-17-black-friday-reactivation-wave-1", "EM-2024-11-24-black-friday-reactivation-wave-2"):
        cells += [cell(cid, seg, arm, n, k, prefix=cid) for seg, arm, n, k in
                  (("A", "email", 300, 60), ("A", "control", 75, 5), ("B", "email", 300, 20), ("B", "control", 75, 6))]
    res = evaluate_campaigns(*build(*cells), settings=CampaignSettings(expected_split={"control": 0.2}))
    for ax in (pc.plot_srm(res.srm), pc.plot_qini(res.qini)):
        ax.figure.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        assert not legend.overlaps(ax.get_window_extent())
    plt.close("all")


def test_the_measured_and_the_forecast_revenue_per_1000_sends_say_which_is_which():
    # a large campaign with a small revenue lift and a small one with a large lift: per send, the campaigns
    # measured 1,640 / 800 sends; the pooled segment lift weighs the campaigns by precision, not by sends
    cells = [cell("spring", "A", "email", 600, 60, [20.0] * 60, prefix="s"),
             cell("spring", "A", "control", 300, 24, [20.0] * 24, prefix="s"),
             cell("summer", "A", "email", 200, 40, [50.0] * 40, prefix="u"),
             cell("summer", "A", "control", 100, 10, [30.0] * 10, prefix="u")]
    result = evaluate_campaigns(*build(*cells), settings=LOOSE)
    measured = cs.campaign_totals(result)["incremental_revenue_per_1000"].iloc[0]
    forecast = result.pooled_policy["expected_incremental_revenue_per_1000"].iloc[0]
    assert measured == pytest.approx(2050.0) and round(forecast) == 3498
    out = cs.summarize(result)
    [money] = [f for f in out["findings"] if "per 1,000" in f]
    assert money.startswith("Together the 2 campaigns added about 2,050 revenue per 1,000 e-mails sent, as measured "
                            "(each campaign's sent arm against its control; ")
    [send] = [a for a in out["actions"] if a.startswith("Next email send")]
    assert ("expected incremental revenue of the next send about 3,498 per 1,000 sends (95% CI -2,958 to 9,953), a "
            "forecast from the segment lifts pooled over the 2 campaigns (each weighted by the precision of its "
            "estimate, not by its sends), so not the 2,050 per 1,000 sends the campaigns measured; optimistic") in send


def test_a_send_time_with_a_time_zone_keeps_its_local_day_in_the_evaluations_send_dates():
    """The first send of a campaign is its local time (the day that cuts the segments), not UTC's: 22:30 in New York
    on 1 March is 2 March in UTC."""
    from segkit.campaign.partials import evaluation_parts
    from segkit.campaign.prepare import prepare_campaign

    sent = pd.Series(pd.to_datetime(["2024-03-01 22:30", "2024-03-01 23:00"]).tz_localize("America/New_York"))
    rows = pd.DataFrame({"campaign_id": ["c1", "c1"], "customer_id": ["a", "b"], "arm": ["control", "email"],
                         "sent_at": sent, "converted": [0, 1]})
    first = evaluation_parts(prepare_campaign(rows), []).first_sent
    assert first["sent_at"].tolist() == [pd.Timestamp("2024-03-01 22:30")]
