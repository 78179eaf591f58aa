"""The clustering fitted from bounded inputs (a seeded sample + whole-table summaries) equals the fit on
the whole pandas table: segkit.data.bounded, FeatureBuilder.fit_summaries, segkit.cluster.fit_cluster_model.

The summaries are also computed in parts and merged (:class:`PartedSummaries`), as Spark's executors
compute them (tests/test_spark_sample.py runs the Spark side itself)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segkit.cluster import (ClusterSettings, cluster_customers, fit_cluster_model, model_features, order_by_counts,
                            plan_positions, projection, sample_plan, stability)
from segkit.core.errors import DataError
from segkit.data.bounded import (ColumnCounts, CustomerSample, FrameSummaries, Moments, numeric_values,
                                 sample_positions)
from segkit.data.distribution import ValueDistribution
from segkit.features import FeatureBuilder


def customer_like(n: int, seed: int = 0) -> pd.DataFrame:
    """A customer table in customer_id order: three planted groups, gaps in numeric and categorical
    columns, a rare level, a column only used to fill another."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    freq = np.array([1.0, 4.0, 12.0])[group] + rng.integers(0, 3, n)
    table = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "recency_days": np.array([300.0, 60.0, 10.0])[group] * rng.uniform(0.5, 1.5, n),
        "frequency": freq.astype("int64"),
        "monetary_total": freq * rng.lognormal(3, 0.5, n),
        "tenure_days": rng.uniform(30, 900, n).round(),
        "median_days_between_orders": np.where(freq > 1, rng.uniform(5, 90, n), np.nan),
        "open_rate": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        "preferred_channel": np.where(rng.random(n) < 0.1, None, np.array(["web", "app", "store"])[group]),
        "region": np.where(rng.random(n) < 0.004, "Far", np.where(rng.random(n) < 0.5, "North", "South")),
    })
    table.attrs.update(as_of="2024-01-01", original_values={})
    return table


class PartedSummaries(FrameSummaries):
    """The summaries of a table computed per part and merged, medians from the parts' value counts merged —
    what :class:`segkit.data.spark_sample.SparkSummaries` does on executors, without Spark."""

    def __init__(self, table: pd.DataFrame, parts: int = 3):
        super().__init__(table)
        self.parts = [table.iloc[i::parts] for i in range(parts)]  # interleaved: no part is sorted

    def counts(self, numeric, categorical):
        merged = ColumnCounts.merge(ColumnCounts.of(p, numeric, categorical) for p in self.parts)
        return ColumnCounts.from_json(merged.to_json())  # as they cross from the executors

    def medians(self, columns):
        out = {}
        for col in columns:
            values = [numeric_values(p, col) for p in self.parts]
            parts = [ValueDistribution.of_values(v[~np.isnan(v)]) for v in values]
            out[col] = ValueDistribution.of_counts(np.concatenate([d.values for d in parts]),
                                                   np.concatenate([d.counts for d in parts])).median()
        return out

    def moments(self, values):
        return Moments.from_json(Moments.merge(Moments.of(values(p)) for p in self.parts).to_json())


def settings(**extra) -> ClusterSettings:
    base = {"feature_sets": {"mixed": {"numeric": ["recency_days", "frequency", "monetary_total", "tenure_days",
                                                   "median_days_between_orders", "open_rate"],
                                       "categorical": ["preferred_channel", "region"]}},
            "feature_set": "mixed", "k_min": 2, "k_max": 4, "n_init": 2, "min_category_share": 0.01,
            "selection": {"sample_size": 500, "silhouette_sample": 200, "n_init": 1},
            "stability": {"max_customers": 400, "runs": 2, "n_init": 1}, "projection_sample": 300}
    return ClusterSettings.from_config({**base, **extra})


def assert_builders_equal(ours: FeatureBuilder, full: FeatureBuilder, rtol: float = 0.0) -> None:
    a, b = ours.to_dict(), full.to_dict()
    for key in ("center_", "scale_"):
        np.testing.assert_allclose(a["fitted"][key], b["fitted"][key], rtol=rtol, atol=0)
        a["fitted"][key] = b["fitted"][key]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ------------------------------------------------------------------ the sample positions
def test_sample_positions_are_the_seeded_draw_in_customer_id_order():
    assert sample_positions(10, 4, seed=3).tolist() == np.sort(
        np.random.default_rng(3).choice(10, size=4, replace=False)).tolist()
    assert sample_positions(10, 10, seed=3).tolist() == list(range(10))
    assert sample_positions(10, None, seed=3).tolist() == list(range(10))
    s = settings(fit_sample=1000)
    plan = sample_plan(5000, s, seed=7)
    assert {k: len(v) for k, v in plan.items()} == {"selection": 500, "fit": 1000, "stability": 400,
                                                     "projection": 300}
    assert plan["stability"].tolist() == sample_positions(5000, 400, 7 + 2).tolist()
    union = plan_positions(plan)
    assert len(union) <= 2200 and set(plan["fit"]) <= set(union)


def test_a_sample_without_a_position_the_fit_needs_is_a_clear_error():
    table = customer_like(60)
    sample = CustomerSample.of(table, [0, 1, 2])
    assert sample.take([2, 0])["customer_id"].tolist() == ["c00002", "c00000"]
    with pytest.raises(DataError, match=r"lacks positions \[5\].*sample_plan"):
        sample.take([1, 5])
    with pytest.raises(DataError, match="0…59"):
        CustomerSample.of(table, [60])


# ------------------------------------------------------------------ the summaries
def test_merged_moments_equal_numpys_and_one_part_is_bit_identical():
    v = np.random.default_rng(1).lognormal(5, 2, 1001)
    whole = Moments.of(pd.DataFrame({"x": v}))
    assert whole.mean("x") == v.mean() and whole.std("x") == v.std()
    parts = Moments.merge([Moments.of(pd.DataFrame({"x": v[i::7]})) for i in range(7)] + [Moments.of(pd.DataFrame({"x": v[:0]}))])
    assert parts.count["x"] == 1001
    np.testing.assert_allclose([parts.mean("x"), parts.std("x")], [v.mean(), v.std()], rtol=1e-13)


@pytest.mark.parametrize("n", [7, 8])
def test_the_median_from_the_two_middle_positions_is_numpys(n):
    v = np.random.default_rng(n).normal(size=n)
    v[[1, 3]] = np.nan
    assert ValueDistribution.of_values(v[~np.isnan(v)]).median() == np.nanmedian(v)


def test_the_builder_fitted_from_merged_summaries_equals_the_builder_fitted_on_the_table():
    table = customer_like(700, seed=2)
    full = settings().builder("mixed").fit(table)
    assert full.skipped_features_ == {}
    assert full.categories_["region"] == ["North", "South"]  # "Far" is rarer than min_category_share
    assert full.impute_values_["median_days_between_orders"] == "column:tenure_days"
    assert full.missing_report_.set_index("feature").loc["preferred_channel", "missing"] > 0
    same = settings().builder("mixed").fit_summaries(FrameSummaries(table))
    assert_builders_equal(same, full)  # the pandas path: bit for bit
    parted = settings().builder("mixed").fit_summaries(PartedSummaries(table))
    assert_builders_equal(parted, full, rtol=1e-12)
    pd.testing.assert_frame_equal(parted.transform(table), full.transform(table), rtol=1e-12)


# ------------------------------------------------------------------ the fit
@pytest.mark.parametrize("n, fit_sample", [(600, None), (1600, 1000)], ids=["at most fit_sample", "larger"])
def test_the_fit_from_the_sample_and_summaries_equals_the_fit_on_the_whole_table(n, fit_sample):
    table = customer_like(n, seed=4)
    s = settings(fit_sample=fit_sample)
    full = cluster_customers(table, s, seed=5, run_stability=False, run_projection=False)
    plan = sample_plan(n, s, seed=5)
    picked = plan_positions(plan)
    assert (len(picked) < n) == (fit_sample is not None)  # larger: the fit never sees the whole table
    sample = CustomerSample.of(table, picked)
    fit = fit_cluster_model(sample, PartedSummaries(table), s, seed=5)
    assert_builders_equal(fit.builder, full.builder, rtol=1e-12)
    assert (fit.method, fit.k, fit.reason) == (full.method, full.k, full.reason)
    assert fit.method == "kprototypes" and len(fit.selection) == 3
    pd.testing.assert_frame_equal(fit.selection, full.selection, rtol=1e-9)
    ours, theirs = fit.estimator, full.model.estimator
    assert len(ours.labels_) == len(theirs.labels_) == min(n, fit_sample or n)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)  # the same labels on the sample
    np.testing.assert_allclose(ours.centroids_num_, theirs.centroids_num_, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours.centroids_cat_, theirs.centroids_cat_)
    assert ours.gamma_ == pytest.approx(theirs.gamma_, rel=1e-9)
    assert ours.cost_ == pytest.approx(theirs.cost_, rel=1e-9)
    # every customer's cluster from the fitted model, as cluster_customers assigns them
    raw = ours.predict(fit.builder.transform(table))
    np.testing.assert_array_equal(full.model.numbers[raw], full.assignments["cluster"].to_numpy())


def test_the_stability_refits_and_the_projection_need_only_their_samples_rows():
    table = customer_like(1600, seed=4)
    s = settings(fit_sample=1000)
    full = cluster_customers(table, s, seed=5, k=3, run_selection=False)
    plan = sample_plan(len(table), s, seed=5, run_selection=False)
    fit = fit_cluster_model(CustomerSample.of(table, plan_positions(plan)), FrameSummaries(table), s, seed=5,
                            k=3, run_selection=False)
    # a scoring pass: every customer's raw label, counted per label (k numbers) for the cluster numbers
    raw = fit.estimator.predict(model_features(fit.builder, table, fit.method))
    numbers = order_by_counts(np.bincount(raw, minlength=3))[raw]
    np.testing.assert_array_equal(numbers, full.assignments["cluster"].to_numpy())
    rows = plan["stability"]
    alone = stability(fit.features_at(rows), 3, fit.method, 5, numbers[rows], s)
    assert (alone.mean_ari, alone.customers) == (full.stability.mean_ari, full.stability.customers) == (
        full.stability.mean_ari, 400)
    pd.testing.assert_series_equal(alone.cluster_jaccard, full.stability.cluster_jaccard)
    rows = plan["projection"]
    drawn = projection(fit.features_at(rows), numbers[rows], fit.estimator.gamma_, 5, 300, customers=len(table))
    pd.testing.assert_frame_equal(drawn, full.projection)
    assert drawn.attrs == full.projection.attrs and drawn.attrs["customers"] == 1600 and len(drawn) == 300
