"""What 04_lifecycle shows of its per-customer table, as bounded aggregates (segkit.lifecycle.LifecycleView).

Each aggregate is one pandas definition applied to the whole table (one machine) or to every partition and
merged (Spark). The tests check (1) the view's tables and numbers against the per-customer definitions the
notebook used before (crosstab, groupby, sorted sums, numpy quantiles and histograms), (2) that the parts of
random partitions merge to the view of the whole table, through the JSON an executor sends, and (3) that
Spark computes the same view on its executors (one shared session, one small frame, a few jobs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from segkit.lifecycle import (
    BUYER_STAGES,
    CURVE_POINTS,
    LIVE_STAGES,
    STAGES,
    LifecycleCounts,
    LifecycleTails,
    LifecycleView,
    ViewPlan,
    clv_overview,
    curve_counts,
    lifecycle_view,
    stage_sizes,
    stage_table,
)

COLUMN = "clv_12m"


def lifecycle_table(customers: int, seed: int) -> pd.DataFrame:
    """A per-customer table in ``lifecycle.parquet``'s layout with an ``rfm_segment``: prospects and
    no-purchase customers without CLV, buyers with tied and distinct CLV (zeros, a few NaN), one-time and
    repeat buyers, stages in every phase."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(STAGES, customers, p=[0.08, 0.04, 0.03, 0.05, 0.1, 0.2, 0.1, 0.15, 0.2, 0.05])
    buyer = np.isin(stage, BUYER_STAGES)
    n_purchases = np.where(buyer, rng.choice([1, 1, 2, 3, 7], customers), 0)
    clv = np.where(rng.random(customers) < 0.3, rng.integers(0, 40, customers).astype(float),  # ties, zeros
                   rng.lognormal(4, 1.5, customers))
    clv = np.where(buyer & (rng.random(customers) > 0.02), clv, np.nan)
    first = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, customers), unit="D")
    last = first + pd.to_timedelta(rng.integers(0, 300, customers), unit="D")
    segment = rng.choice(["Champions", "At Risk", "Hibernating", "New"], customers)
    return pd.DataFrame({
        "customer_id": pd.array([f"c{i}" for i in range(customers)], dtype="string"),
        "lifecycle_stage": pd.array(stage, dtype="string"),
        "n_purchases": n_purchases.astype("int64"),
        "first_purchase": pd.Series(first).where(buyer).astype("datetime64[ns]"),
        "last_purchase": pd.Series(last).where(buyer).astype("datetime64[ns]"),
        "tenure_days": np.where(buyer, rng.integers(1, 900, customers), np.nan).astype(float),
        "p_alive": np.where(buyer & (rng.random(customers) > 0.05), rng.random(customers), np.nan),
        "expected_purchases_90d": np.where(buyer, rng.random(customers) * 2, np.nan),
        COLUMN: clv,
        "rfm_segment": pd.array(np.where(buyer | (rng.random(customers) < 0.5), segment, None), dtype="string"),
    })


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return lifecycle_table(3000, seed=4)


@pytest.fixture(scope="module")
def view(table) -> LifecycleView:
    return lifecycle_view(table, COLUMN)


def assert_same_view(got: LifecycleView, expected: LifecycleView) -> None:
    """Counts, distributions, histograms and sums equal, bit for bit (the sums are exact, whatever the order)."""
    a, b = got.counts, expected.counts
    for name in ("stages", "risk"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    pd.testing.assert_frame_equal(a.by_stage, b.by_stage, check_exact=True)
    pd.testing.assert_frame_equal(a.segment_stages.reset_index(drop=True), b.segment_stages.reset_index(drop=True))
    assert (a.first_purchase, a.last_purchase, a.one_time_buyers, a.lapsed_positive, a.p_alive_known) == (
        b.first_purchase, b.last_purchase, b.one_time_buyers, b.lapsed_positive, b.p_alive_known)
    np.testing.assert_array_equal(a.age_range, b.age_range)
    np.testing.assert_array_equal(a.clv_range, b.clv_range)
    assert a.clv_sums == b.clv_sums
    assert got.distributions == expected.distributions
    for name in ("ages", "clv_live", "clv_lapsed"):
        np.testing.assert_array_equal(getattr(got.tails, name), getattr(expected.tails, name), err_msg=name)
    for group in expected.tails.above:
        np.testing.assert_array_equal(got.tails.above[group], expected.tails.above[group], err_msg=group)
        assert got.tails.above_sum[group].tolist() == expected.tails.above_sum[group].tolist(), group
    assert got.clv_by_stage().equals(expected.clv_by_stage())
    for group in ("all", "live", "lapsed"):
        np.testing.assert_equal(got.clv_overview(group), expected.clv_overview(group), err_msg=group)  # NaN == NaN
    assert got.top_sums("live")[1].tolist() == expected.top_sums("live")[1].tolist()


# --------------------------------------------------------------------------- the view equals the per-customer tables
def test_stage_sizes_crosstab_and_clv_by_stage_equal_the_per_customer_definitions(table, view):
    pd.testing.assert_frame_equal(stage_table(view.counts.stages), stage_sizes(table["lifecycle_stage"]))
    joined = table.dropna(subset=["rfm_segment"])
    expected = pd.crosstab(joined["rfm_segment"], joined["lifecycle_stage"]).reindex(columns=list(BUYER_STAGES),
                                                                                     fill_value=0)
    pd.testing.assert_frame_equal(view.rfm_crosstab(), expected, check_names=False)
    assert view.rfm_crosstab().to_numpy().sum() == int(joined["lifecycle_stage"].isin(BUYER_STAGES).sum())
    rows = table[table["lifecycle_stage"].isin(BUYER_STAGES)]
    grouped = rows.groupby("lifecycle_stage", sort=False).agg(
        customers=("lifecycle_stage", "size"), mean_p_alive=("p_alive", "mean"),
        expected_purchases_90d=("expected_purchases_90d", "sum"), clv_total=(COLUMN, "sum"), clv_mean=(COLUMN, "mean"))
    grouped = grouped.reindex([s for s in BUYER_STAGES if s in grouped.index])
    grouped["clv_share"] = grouped["clv_total"] / grouped["clv_total"].sum()
    expected = grouped.reset_index().astype({"customers": "int64"})
    pd.testing.assert_frame_equal(view.clv_by_stage(), expected, check_exact=False, rtol=1e-12,
                                  check_dtype=False)
    assert view.clv_by_stage()["lifecycle_stage"].tolist() == [s for s in BUYER_STAGES if (rows["lifecycle_stage"] == s).any()]


def test_clv_overviews_medians_top_deciles_and_the_histogram_cut_are_exact(table, view):
    buyers = table[table["n_purchases"] > 0]
    groups = {"all": buyers, "live": buyers[buyers["lifecycle_stage"].isin(LIVE_STAGES)],
              "lapsed": buyers[buyers["lifecycle_stage"] == "lapsed"]}
    for group, rows in groups.items():
        got, expected = view.clv_overview(group), clv_overview(rows, COLUMN)
        assert got["customers"] == expected["customers"] and got["median"] == expected["median"], group
        for key in ("total", "mean", "top_decile_share"):
            assert math.isclose(got[key], expected[key], rel_tol=1e-12), (group, key)
    live = groups["live"][COLUMN].dropna().to_numpy()
    assert view.distributions["live_positive"].linear_quantile(0.9) == float(np.quantile(live[live > 0], 0.9))
    assert not view.distributions["all"].complete  # the bounded path: only the rows near the needed positions


def test_histograms_and_the_concentration_curve_count_what_the_plots_counted(table, view):
    repeat = table[(table["n_purchases"] > 1) & table["p_alive"].notna()]
    for i, stage in enumerate(BUYER_STAGES):
        values = 100 * (1 - repeat.loc[repeat["lifecycle_stage"] == stage, "p_alive"].to_numpy())
        np.testing.assert_array_equal(view.counts.risk[i], np.histogram(values, bins=100 * np.linspace(0, 1, 21))[0])
    ages = table.loc[table["n_purchases"] == 1, "tenure_days"].to_numpy()
    counts, edges = np.histogram(ages, bins=40)
    np.testing.assert_array_equal(view.tails.ages, counts)
    np.testing.assert_array_equal(view.plan.age_edges, edges)
    live = np.sort(table.loc[table["lifecycle_stage"].isin(LIVE_STAGES) & (table["n_purchases"] > 0), COLUMN]
                   .dropna().to_numpy())[::-1]
    ks, held = view.top_sums("live")
    assert len(live) <= CURVE_POINTS and ks[1:].tolist() == list(range(1, len(live) + 1))  # every customer
    np.testing.assert_allclose(held[1:], np.cumsum(live), rtol=1e-12)


def test_the_concentration_curve_of_many_customers_has_a_bounded_number_of_exact_points():
    values = np.random.default_rng(1).lognormal(3, 1, 3 * CURVE_POINTS).round(1)  # ties across thresholds
    table = pd.DataFrame({"lifecycle_stage": "active", "n_purchases": 2, COLUMN: values})
    ks, held = lifecycle_view(table, COLUMN).top_sums("live")
    assert len(ks) <= CURVE_POINTS + 2 and ks[-1] == len(values)
    np.testing.assert_array_equal(ks[1:], curve_counts(len(values)))
    np.testing.assert_allclose(held, np.cumsum(np.sort(values)[::-1])[ks - 1], rtol=1e-12)


# --------------------------------------------------------------------------- partitions merge to the whole
@pytest.mark.parametrize("parts", [1, 2, 7])
def test_parts_of_random_partitions_merged_through_json_are_the_view_of_the_whole_table(table, view, parts):
    where = np.random.default_rng(parts).integers(0, parts, len(table))
    slices = [table[where == i] for i in range(parts)] + [table.iloc[:0]]  # and an empty slice
    counts = LifecycleCounts.merge([LifecycleCounts.from_json(LifecycleCounts.of(s, COLUMN).to_json())
                                    for s in slices])
    plan = ViewPlan.of(counts, view.distributions)
    tails = LifecycleTails.merge([LifecycleTails.from_json(LifecycleTails.of(s, COLUMN, plan).to_json())
                                  for s in slices])
    assert_same_view(LifecycleView(COLUMN, counts, view.distributions, plan, tails), view)


def float_order_table(customers: int, seed: int) -> pd.DataFrame:
    """:func:`lifecycle_table` whose CLV, P(alive) and expected purchases mix huge and tiny values of both signs
    (1e16, -1e16, 0.1, 3.3, ...): a float sum of them depends on the order it adds them in."""
    rng = np.random.default_rng(seed)
    table = lifecycle_table(customers, seed)
    tricky = rng.choice([1e16, -1e16, 0.1, 0.2, 0.3, 3.3, 1e-3, 123.456], customers)
    buyer = table["n_purchases"].to_numpy() > 0
    return table.assign(**{COLUMN: np.where(buyer, tricky, np.nan),
                           "p_alive": np.where(buyer, rng.choice([0.1, 0.2, 0.7, 1 / 3], customers), np.nan),
                           "expected_purchases_90d": np.where(buyer, tricky / 7, np.nan)})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_parts_equal_the_whole_table_bit_for_bit_whatever_the_float_order(seed):
    """Finding 4: the sums of the parts were added in partition order, so Spark could show another last digit
    than DuckDB. Random splits of values whose float sums depend on their order give the whole table's view,
    bit for bit: CLV by stage, the CLV totals, means and top-decile shares, the concentration curve."""
    table = float_order_table(2000, seed)
    whole = lifecycle_view(table, COLUMN)
    clv = table.loc[table["n_purchases"] > 0, COLUMN].to_numpy()
    shuffled = np.random.default_rng(seed).permutation(clv)
    assert float(np.sum(clv)) != sum(shuffled.tolist())  # these values do expose the order of a float sum
    where = np.random.default_rng(seed + 10).integers(0, 5, len(table))
    slices = [table[where == i] for i in range(5)]
    counts = LifecycleCounts.merge([LifecycleCounts.from_json(LifecycleCounts.of(s, COLUMN).to_json())
                                    for s in slices])
    plan = ViewPlan.of(counts, whole.distributions)
    assert_same_view(LifecycleView(COLUMN, counts, whole.distributions, plan,
                                   LifecycleTails.merge([LifecycleTails.from_json(LifecycleTails.of(s, COLUMN, plan)
                                                                                  .to_json()) for s in slices])), whole)
    live = np.sort(table.loc[table["lifecycle_stage"].isin(LIVE_STAGES) & (table["n_purchases"] > 0), COLUMN]
                   .dropna().to_numpy())
    from fractions import Fraction
    assert whole.clv_overview("live")["total"] == float(sum(map(Fraction, live)))  # exact, rounded once


def test_a_table_without_any_model_output_gives_empty_clv_and_risk_and_no_crosstab():
    table = lifecycle_table(50, seed=2).drop(columns="rfm_segment").assign(p_alive=np.nan, clv_12m=np.nan)
    view = lifecycle_view(table, COLUMN)
    assert view.counts.risk.sum() == 0 and view.plan.clv_edges is None and view.rfm_crosstab() is None
    assert np.isnan(view.clv_overview("live")["total"]) and view.clv_by_stage()["clv_share"].isna().all()


# --------------------------------------------------------------------------- the same view on Spark
@pytest.mark.slow
@pytest.mark.filterwarnings("error::FutureWarning")  # finding 6: pyspark's pandas-3 note stays quiet
def test_spark_computes_the_same_view_on_its_executors(table, view):
    from segkit.data.spark import child_session, pandas_warnings_quiet, spark_session
    from segkit.steps.lifecycle import lifecycle_view_on_spark

    session = child_session(spark_session())
    with pandas_warnings_quiet():
        frame = session.createDataFrame(table.astype({"customer_id": "object", "lifecycle_stage": "object",
                                                      "rfm_segment": "object"})).repartition(3)
    assert_same_view(lifecycle_view_on_spark(frame, COLUMN, partitions=3), view)


def test_merging_no_parts_says_what_is_missing():
    """Merging no parts has no snapshot dates, stages or bins to take the shape from: a DataError (a ValueError)
    that says so and what the part of no customers is, not a bare IndexError."""
    from segkit.core.errors import DataError
    from segkit.lifecycle import HistoryCounts, SnapshotChances

    for kind in (SnapshotChances, HistoryCounts, LifecycleCounts, LifecycleTails):
        with pytest.raises(DataError, match=rf"^{kind.__name__}\.merge got no parts: .* Merge at least one part; "
                                            rf"the part of no customers is {kind.__name__}\.of of ") as raised:
            kind.merge([])
        assert isinstance(raised.value, ValueError)
