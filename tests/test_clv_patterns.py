"""Notebook 04's fits from bounded inputs (count tables) equal the fits from the customers (issue 17).

Every model and threshold 04 fits over all customers has a fit from a count table: BG/NBD from the
``(frequency, recency, T)`` patterns, Gamma-Gamma from the ``(frequency, monetary_value)`` pairs, the
one-time buyer model from the ``(days, repeated)`` durations, the stage thresholds from value counts,
the chance calibration from its bins. The fit from the customers condenses them and calls that fit,
so both are one fit; here a table in another row order, with a value split over several rows (as
partial counts from Spark partitions come), must give the very same model, and the condensed fit the
customer-level likelihood, median, correlation and quantiles. Data: simulated customers with many
repeated patterns (whole-day ages and recencies, whole-money order values) and the CDNOW sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from segkit.clv import (
    BetaGeoModel,
    ChanceCalibrator,
    GammaGammaModel,
    OneTimeBuyerModel,
    bgnbd_log_likelihood,
    clv_summary,
    first_repeat_durations,
    first_repeat_table,
    gamma_gamma_log_likelihood,
    order_value_sample,
    order_value_table,
    purchase_pattern_table,
    simulate_customers,
    weighted_correlation,
)
from segkit.core.config import load_config
from segkit.core.errors import DataError
from segkit.data.bounded import sample_positions
from segkit.data.datasets import load_cdnow
from segkit.data.distribution import ValueDistribution, condense
from segkit.lifecycle import (
    LifecycleSettings,
    LifecycleStager,
    StageDistributions,
    fit_clv_models,
    higher_quantile,
    purchase_history,
)

BGNBD = {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}
GAMMA_GAMMA = {"p": 6.0, "q": 4.0, "v": 15.0}


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """6,000 customers aged 20, 30 or 39 weeks, recency in whole days, order values in whole money:
    many customers per pattern and per pair."""
    ages = np.repeat([20.0, 30.0, 39.0], 2000)
    frame = simulate_customers(6000, BGNBD, GAMMA_GAMMA, T=ages, seed=5)
    frame["recency"] = np.floor(frame["recency"] * 7) / 7
    frame["monetary_value"] = frame["monetary_value"].round(0)
    return frame


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow("sample")


def shuffled_and_split(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The same counts as Spark's partitions may deliver them: rows in another order, each count of
    at least 2 split over two rows."""
    split = table[table["customers"] >= 2]
    first = split.assign(customers=split["customers"] // 2)
    rest = table.assign(customers=table["customers"] - first["customers"].reindex(table.index, fill_value=0))
    parts = pd.concat([rest, first], ignore_index=True)
    return parts.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_the_pattern_table_is_far_shorter_than_the_customers_and_counts_each_one(summary):
    patterns = purchase_pattern_table(summary)
    assert list(patterns.columns) == ["frequency", "recency", "T", "customers"]
    assert patterns["customers"].sum() == len(summary)
    assert len(patterns) < len(summary) / 4
    assert not patterns.duplicated(["frequency", "recency", "T"]).any()


def test_bgnbd_from_patterns_in_any_order_and_split_is_the_fit_from_the_customers(summary):
    from_customers = BetaGeoModel().fit(summary).to_dict()
    patterns = purchase_pattern_table(summary)
    assert BetaGeoModel().fit_patterns(patterns).to_dict() == from_customers
    assert BetaGeoModel().fit_patterns(shuffled_and_split(patterns)).to_dict() == from_customers
    assert from_customers["n_customers"] == 6000 and from_customers["n_patterns"] == len(patterns)
    assert from_customers["n_repeat_buyers"] == int((summary["frequency"] > 0).sum())


def test_bgnbd_log_likelihood_from_patterns_is_the_sum_over_the_customers(summary):
    model = BetaGeoModel().fit_patterns(purchase_pattern_table(summary))
    per_customer = bgnbd_log_likelihood(model.params_, summary["frequency"], summary["recency"], summary["T"])
    assert model.log_likelihood_ == pytest.approx(per_customer, rel=1e-12, abs=0)


def test_gamma_gamma_from_pairs_in_any_order_and_split_is_the_fit_from_the_customers(summary):
    from_customers = GammaGammaModel().fit(summary)
    pairs = order_value_table(summary)
    assert len(pairs) < (summary["frequency"] > 0).sum() / 4
    assert GammaGammaModel().fit_patterns(pairs).to_dict() == from_customers.to_dict()
    assert GammaGammaModel().fit_patterns(shuffled_and_split(pairs, seed=1)).to_dict() == from_customers.to_dict()


def test_gamma_gamma_from_pairs_reads_the_customer_level_median_correlation_and_likelihood(summary):
    model = GammaGammaModel().fit_patterns(order_value_table(summary))
    buyers = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    x, m = buyers["frequency"].to_numpy(), buyers["monetary_value"].to_numpy()
    assert model.n_customers_ == len(buyers)
    assert model.money_scale_ == float(np.median(m))
    assert model.frequency_monetary_corr_ == pytest.approx(float(np.corrcoef(x, m)[0, 1]), rel=1e-12, abs=0)
    assert model.log_likelihood_ == pytest.approx(gamma_gamma_log_likelihood(model.params_, x, m), rel=1e-12, abs=0)


@pytest.mark.parametrize("values, counts", [([3.0, 1.0, 2.0], [1, 2, 1]), ([5.0, 1.0, 2.0], [1, 2, 2]),
                                            ([2.0], [4]), ([9.0, 1.0], [1, 1])])
def test_the_median_from_counts_and_the_weighted_correlation_are_numpys_on_the_repeated_values(values, counts):
    repeated = np.repeat(values, counts)
    assert ValueDistribution.of_counts(values, counts).median() == float(np.median(repeated))
    if len(values) > 1:
        other = np.arange(len(values), dtype=float) ** 2
        assert weighted_correlation(values, other, counts) == pytest.approx(
            float(np.corrcoef(repeated, np.repeat(other, counts))[0, 1]), rel=1e-12)


def test_cdnow_bgnbd_and_gamma_gamma_from_their_count_tables_are_the_papers_fits(cdnow):
    calibration = clv_summary(cdnow, "1997-09-30")
    bg = BetaGeoModel().fit_patterns(shuffled_and_split(purchase_pattern_table(calibration), seed=2))
    assert bg.to_dict() == BetaGeoModel().fit(calibration).to_dict()
    assert {k: round(v, 3) for k, v in bg.params_.items()} == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert bg.n_patterns_ == 1016 and bg.n_customers_ == 2357
    gg = GammaGammaModel().fit_patterns(shuffled_and_split(order_value_table(calibration), seed=3))
    assert gg.to_dict() == GammaGammaModel().fit(calibration).to_dict()
    assert gg.n_customers_ == 946 and gg.params_["q"] == pytest.approx(3.74, abs=0.005)


def test_the_one_time_buyer_curve_from_counts_is_the_kaplan_meier_of_the_buyers(cdnow):
    durations = first_repeat_durations(cdnow, "1997-09-30")
    table = first_repeat_table(durations)
    assert table["customers"].sum() == len(durations) and len(table) <= 2 * 273
    fitted = OneTimeBuyerModel().fit(durations["days"], durations["repeated"])
    for counted in (OneTimeBuyerModel().fit_counts(table), OneTimeBuyerModel().fit_counts(shuffled_and_split(table))):
        assert counted.to_dict() == fitted.to_dict()
    # the Kaplan-Meier estimate itself, by hand: S = prod(1 - events / at risk) over the event days
    d, e = durations["days"].to_numpy(), durations["repeated"].to_numpy()
    first_day = fitted.days_[0]
    assert fitted.survival_[0] == 1 - (e & (d == first_day)).sum() / (d >= first_day).sum()


@pytest.mark.parametrize("n", [1, 2, 7, 11, 101, 1000])
def test_distribution_quantiles_are_numpys_higher_quantiles_exactly(n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 40, n).astype(float)
    counts = ValueDistribution.of_values(values)
    for q in np.linspace(0.01, 0.99, 99):
        assert counts.higher_quantile(q) == higher_quantile(values, q), q


def test_stage_thresholds_from_count_tables_equal_the_fit_on_the_history(cdnow):
    history = purchase_history(cdnow.assign(customer_id=cdnow["customer_id"].astype("string")))
    as_of = pd.Timestamp("1998-01-01")
    fitted = LifecycleStager().fit(history, as_of)
    exact = StageDistributions.of(history, as_of)
    # what Spark's groupBy + count returns: value and count columns, rows in any order
    tables = {name: pd.DataFrame({"value": dist.values, "n": dist.counts}).iloc[::-1]
              for name, dist in vars(exact).items()}
    counted = StageDistributions(**{name: ValueDistribution.of_counts(t["value"], t["n"])
                                    for name, t in tables.items()})
    assert counted == exact
    refit = LifecycleStager().fit_distributions(counted, as_of, history["purchase_date"].min())
    pd.testing.assert_frame_equal(refit.threshold_table_, fitted.threshold_table_)
    assert refit.thresholds_ == fitted.thresholds_ and refit.first_seen_until_ == fitted.first_seen_until_
    assert fitted.n_gaps_ == int(history.loc[history["purchase_date"] < as_of, "gap_days"].notna().sum())
    # a producer that keeps only the rows next to the quantiles the fit reads (money on Spark) fits the same
    needs = {name: dataclasses.replace(need, max_exact=0)
             for name, need in LifecycleStager().distribution_needs().items()}
    sparse = StageDistributions(**{name: ValueDistribution.of_values(np.repeat(dist.values, dist.counts), needs[name])
                                   for name, dist in vars(exact).items()})
    assert not sparse.repeat_values.complete and len(sparse.repeat_values.index) <= 5
    partial = LifecycleStager().fit_distributions(sparse, as_of, history["purchase_date"].min())
    assert partial.thresholds_ == fitted.thresholds_


def test_the_chance_calibration_from_its_bins_is_the_fit_on_the_customers():
    rng = np.random.default_rng(4)
    predicted = np.round(rng.uniform(0, 1, 3000), 2)  # ties: bins split them by the customers' order
    happened = rng.uniform(0, 1, 3000) < predicted * 0.8
    fitted = ChanceCalibrator().fit(predicted, happened)
    bins = fitted.bins_for(len(predicted))
    order = np.argsort(predicted, kind="stable")
    group = np.empty(len(predicted), dtype=np.int64)
    group[order] = np.arange(len(predicted)) * bins // len(predicted)
    from_bins = ChanceCalibrator().fit_bins(np.bincount(group), np.bincount(group, weights=predicted),
                                            np.bincount(group, weights=happened.astype(float)))
    assert from_bins.to_dict() == fitted.to_dict() and bins == 20


def test_a_count_table_without_counts_or_with_a_zero_count_is_named():
    patterns = pd.DataFrame({"frequency": [0.0, 1.0], "recency": [0.0, 2.0], "T": [5.0, 5.0]})
    with pytest.raises(DataError, match=r"BG/NBD: column\(s\) 'customers' missing from the count table"):
        BetaGeoModel().fit_patterns(patterns)
    with pytest.raises(DataError, match=r"Gamma-Gamma: 1 row\(s\) .* 'customers' value that is not a whole number "
                                        r"of at least 1, e\.g\. row\(s\) 1"):
        GammaGammaModel().fit_patterns(pd.DataFrame({"frequency": [0.0, 1.0], "monetary_value": [0.0, 3.0],
                                                     "customers": [4, 0]}))
    with pytest.raises(DataError, match=r"BG/NBD: 1 row\(s\) have invalid frequency/recency/T .* e\.g\. row 1"):
        BetaGeoModel().fit_patterns(patterns.assign(recency=[0.0, 9.0], customers=[3, 2]))
    with pytest.raises(DataError, match="ChanceCalibrator.fit_bins: .* every bin hold at least one customer"):
        ChanceCalibrator().fit_bins([3, 0], [1.0, 0.0], [1, 0])


def test_minus_zero_condenses_with_zero_as_sparks_group_by_merges_them():
    (values,), counts = condense([[-0.0, 0.0, 1.0, -0.0]])
    assert values.tolist() == [0.0, 1.0] and counts.tolist() == [3, 1]
    assert not np.signbit(values).any()
    (frequency, money), counts = condense([[-0.0], [5.0]], [2])
    assert not np.signbit(frequency).any() and counts.tolist() == [2]


# --------------------------------------------------------------------------- Gamma-Gamma on a seeded sample
# Gamma-Gamma's exact input is about one (frequency, mean order value) pair per repeat buyer, so it is fitted on
# at most lifecycle.order_value_sample of them (1,000,000 by default): a seeded sample by position in customer_id
# order, the rule of the clustering and holdout samples, picked the same way by Spark
# (segkit.data.spark_patterns.order_value_sample_counts, tests/test_spark_patterns.py).

def repeat_ids(summary: pd.DataFrame) -> list[str]:
    """The repeat buyers' ids (frequency and mean order value above 0) in code-point order."""
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    return sorted(map(str, repeat.index))


def test_the_gamma_gamma_sample_is_seeded_by_position_among_the_repeat_buyers_in_customer_id_order(summary):
    ids = repeat_ids(summary)
    assert 2000 < len(ids) < len(summary)
    rows, buyers = order_value_sample(summary, 1000, seed=7)
    assert buyers == len(ids)
    # ids are "0".."5999": code-point order ("10" before "2"), not numeric order, as Spark sorts text
    assert rows.index.tolist() == [ids[i] for i in sample_positions(len(ids), 1000, 7)]
    pd.testing.assert_frame_equal(rows, summary.loc[rows.index])
    shuffled, _ = order_value_sample(summary.sample(frac=1.0, random_state=3), 1000, seed=7)
    pd.testing.assert_frame_equal(shuffled, rows)  # the rows' order in the summary does not matter
    assert order_value_sample(summary, 1000, seed=8)[0].index.tolist() != rows.index.tolist()
    whole, _ = order_value_sample(summary, len(ids), seed=7)
    assert whole is summary  # no more repeat buyers than the cap: the summary as it is


def test_a_bad_value_outside_the_sample_is_still_an_error(summary):
    broken = summary.copy()
    broken.iloc[0, broken.columns.get_loc("monetary_value")] = np.nan
    with pytest.raises(DataError, match="Gamma-Gamma"):
        order_value_sample(broken, 1000, seed=7)


def test_fit_clv_models_fits_gamma_gamma_on_the_seeded_sample_and_bgnbd_on_everyone(summary):
    settings = LifecycleSettings.from_config({**load_config()["lifecycle"], "order_value_sample": 1000})
    every = fit_clv_models(summary, LifecycleSettings.from_config(load_config()["lifecycle"]), seed=7)
    capped = fit_clv_models(summary, settings, seed=7)
    rows, buyers = order_value_sample(summary, 1000, seed=7)
    expected = GammaGammaModel(min_repeat_buyers=settings.min_repeat_buyers).fit(rows)
    assert capped.gamma_gamma.to_dict() == expected.to_dict() and capped.gamma_gamma.n_customers_ == 1000
    assert capped.order_value_buyers == buyers == every.gamma_gamma.n_customers_ and capped.order_value_sampled
    assert capped.bgnbd.to_dict() == every.bgnbd.to_dict()  # BG/NBD reads every customer
    assert every.order_value_buyers is None and not every.order_value_sampled
    # a sample of 1,000 of ~2,400 draws p, q, v within a few standard errors of the whole fit
    for name, value in every.gamma_gamma.params_.items():
        assert abs(capped.gamma_gamma.params_[name] - value) < 4 * capped.gamma_gamma.standard_errors_[name]


def test_with_the_default_cap_the_cdnow_gamma_gamma_fit_is_todays_fit_bit_for_bit(cdnow):
    calibration = clv_summary(cdnow, "1997-09-30")
    settings = LifecycleSettings.from_config(load_config()["lifecycle"])
    assert settings.order_value_sample == 1_000_000
    models = fit_clv_models(calibration, settings, seed=42)
    today = GammaGammaModel(min_repeat_buyers=settings.min_repeat_buyers).fit(calibration)
    assert models.gamma_gamma.to_dict() == today.to_dict() and models.order_value_buyers is None
    assert {k: round(v, 2) for k, v in models.gamma_gamma.params_.items()} == {"p": 6.25, "q": 3.74, "v": 15.44}
