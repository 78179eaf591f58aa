"""04's history tables (snapshots, transitions, period rates, cohorts) from counts that add up over parts of
the customers: :class:`segkit.lifecycle.HistoryCounts` of random parts, merged, equals the whole base (what
Spark does per bucket of customers, :func:`segkit.steps.spark_lifecycle.history_counts_on_spark`), with the at-risk
rule's reference taken over the whole base (:class:`segkit.lifecycle.SnapshotChances`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.lifecycle import (
    HistoryCounts,
    HistoryTables,
    SnapshotChances,
    cohort_table,
    period_rates,
    snapshot_dates,
    stage_counts,
    stage_history,
    transition_counts,
)
from segkit.data.distribution import exact_mean
from segkit.steps.spark_lifecycle import history_inputs_of_rows
from tests.test_lifecycle import shop_models  # noqa: F401 (the fixture, shared)


@pytest.fixture(scope="module")
def shop(shop_models):
    """test_lifecycle's generated shop (400 customers: history, customers with signup dates, engagement, fitted
    models) with customers whose first order is no purchase, the stager fitted and monthly snapshot dates."""
    history, _, as_of, settings, models, customers, engagement = shop_models
    buyers = history["customer_id"].astype("string").unique()
    never = customers.loc[~customers["customer_id"].isin(buyers), "customer_id"].head(6).to_numpy()
    first = history.groupby("customer_id", observed=True)["purchase_date"].min()
    earlier = first.head(4)  # bought, but their first order was a return 20 days before
    non_purchase = pd.DataFrame({
        "customer_id": pd.array([*never, *earlier.index.astype("string")], dtype="string"),
        "first_order_date": np.r_[np.full(len(never), history["purchase_date"].min() + pd.Timedelta(days=40)),
                                  (earlier - pd.Timedelta(days=20)).to_numpy()].astype("datetime64[ns]")})
    data_start = min(history["purchase_date"].min(), non_purchase["first_order_date"].min())
    stager = settings.stager().fit(history, as_of, data_start=data_start)
    dates = snapshot_dates(history["purchase_date"].min(), as_of, settings.snapshot_freq)
    return dict(history=history, as_of=as_of, models=models, customers=customers, engagement=engagement,
                non_purchase=non_purchase, stager=stager, dates=dates)


def whole_tables(shop: dict) -> HistoryTables:
    """The tables as one machine computes them from the stage of every customer at every snapshot."""
    m = shop["models"]
    over_time = stage_history(shop["stager"], shop["history"], shop["dates"], shop["customers"], shop["engagement"],
                              m.bgnbd, m.one_time, m.choice, non_purchase=shop["non_purchase"])
    until = shop["stager"].first_seen_until_
    return HistoryTables(stage_counts(over_time, shop["dates"]), transition_counts(over_time),
                         transition_counts(over_time, last=1),
                         period_rates(over_time, shop["history"], shop["dates"], until),
                         cohort_table(shop["history"], shop["as_of"], until))


def parts_of(shop: dict, parts: int, seed: int) -> list[dict]:
    """The shop's inputs split into ``parts`` random sets of customers (each customer's rows in one)."""
    ids = pd.Index(pd.concat([shop["history"]["customer_id"].astype("string"), shop["customers"]["customer_id"],
                              shop["non_purchase"]["customer_id"]]).unique())
    bucket = pd.Series(np.random.default_rng(seed).integers(0, parts, len(ids)), index=ids)

    def rows(frame: pd.DataFrame, k: int) -> pd.DataFrame:
        return frame[(bucket.reindex(frame["customer_id"].astype("string")).to_numpy() == k)]

    engagement = shop["engagement"]
    return [dict(history=rows(shop["history"], k), customers=rows(shop["customers"], k),
                 non_purchase=rows(shop["non_purchase"], k),
                 engagement=engagement[bucket.reindex(engagement.index).to_numpy() == k]) for k in range(parts)]


def counts_of(shop: dict, part: dict, references: np.ndarray | None) -> HistoryCounts:
    m = shop["models"]
    return HistoryCounts.of(shop["stager"], part["history"], shop["dates"], shop["as_of"], part["customers"],
                            part["engagement"], m.bgnbd, m.one_time, m.choice, part["non_purchase"], references)


def references_of(shop: dict, parts: list[dict]) -> np.ndarray:
    m = shop["models"]
    return SnapshotChances.merge([SnapshotChances.of(shop["stager"], part["history"], shop["dates"], m.bgnbd,
                                                     m.one_time, m.choice) for part in parts]).references()


def assert_same_tables(got: HistoryTables, expected: HistoryTables) -> None:
    for name in ("snapshots", "transitions", "transitions_latest", "rates"):
        assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=True, obj=name)
    assert_frame_equal(got.cohorts, expected.cohorts, check_exact=True, obj="cohorts")  # revenue summed exactly


@pytest.mark.parametrize("parts, seed", [(1, 0), (4, 1)])
def test_counts_of_random_parts_merged_give_the_whole_bases_tables(shop, parts, seed):
    expected = whole_tables(shop)
    pieces = parts_of(shop, parts, seed)
    references = references_of(shop, pieces)
    merged = HistoryCounts.merge([counts_of(shop, part, references) for part in pieces])
    got = HistoryTables.of(merged, shop["dates"], shop["as_of"], shop["stager"].first_seen_until_)
    assert_same_tables(got, expected)
    snapshots = expected.snapshots
    assert {"prospect", "engaged_prospect", "no_net_purchase", "at_risk", "lapsed"} <= set(
        snapshots.loc[snapshots["customers"] > 0, "lifecycle_stage"])
    assert expected.rates["churned"].sum() > 0 and expected.cohorts["revenue"].sum() > 0


def test_a_part_staged_against_its_own_mean_chance_gives_other_counts(shop):
    """Why the references: the at-risk rule compares a repeat buyer's chance with the mean of the live
    repeat buyers; a part's own mean is not the base's, and its stages (hence counts) differ."""
    pieces = parts_of(shop, 7, 2)
    references = references_of(shop, pieces)
    own = HistoryCounts.merge([counts_of(shop, part, None) for part in pieces])
    whole = HistoryCounts.merge([counts_of(shop, part, references) for part in pieces])
    assert not np.array_equal(own.stages, whole.stages)
    finite = references[np.isfinite(references)]  # NaN: no live repeat buyer yet (the first month)
    assert references.shape == (len(shop["dates"]),) and len(finite) >= len(references) - 1
    assert ((finite > 0.5) & (finite < 0.8)).all()


def tagged_rows(shop: dict) -> pd.DataFrame:
    """The shop as the tagged rows Spark reads per bucket (segkit.steps.spark_lifecycle.tagged_rows_on_spark):
    purchase days, customers with signup dates, first non-purchase orders, one opened send per engaged customer."""
    history, customers, non_purchase, engagement = (shop[k] for k in ("history", "customers", "non_purchase",
                                                                       "engagement"))
    rows = pd.concat([
        pd.DataFrame({"customer_id": history["customer_id"].astype(str), "kind": "day",
                      "order_date": history["purchase_date"], "amount": history["amount"]}),
        pd.DataFrame({"customer_id": customers["customer_id"].astype(str), "kind": "customer",
                      "signup_date": customers["signup_date"]}),
        pd.DataFrame({"customer_id": non_purchase["customer_id"].astype(str), "kind": "non_purchase",
                      "first_order_date": non_purchase["first_order_date"], "first_purchase_date": pd.NaT}),
        pd.DataFrame({"customer_id": engagement.index.astype(str), "kind": "campaign", "sent_at": engagement.to_numpy(),
                      "opened": True}),
    ], ignore_index=True)
    return rows.astype({"customer_id": object, "kind": object, "order_date": "datetime64[ns]", "amount": float,
                        "signup_date": "datetime64[ns]", "first_order_date": "datetime64[ns]",
                        "first_purchase_date": "datetime64[ns]", "sent_at": "datetime64[ns]", "opened": object})


def test_the_history_inputs_of_a_buckets_tagged_rows_are_the_one_machine_inputs():
    day = pd.Timestamp
    rows = pd.DataFrame({
        "customer_id": ["a", "a", "b", "c", "a", "a", "d"],
        "kind": ["day", "day", "customer", "non_purchase", "campaign", "campaign", "customer"],
        "order_date": [day("2024-01-03"), day("2024-02-10"), pd.NaT, pd.NaT, pd.NaT, pd.NaT, pd.NaT],
        "amount": [5.0, 7.0, None, None, None, None, None],
        "signup_date": [pd.NaT, pd.NaT, day("2023-12-01"), pd.NaT, pd.NaT, pd.NaT, pd.NaT],
        "first_order_date": [pd.NaT, pd.NaT, pd.NaT, day("2024-01-20"), pd.NaT, pd.NaT, pd.NaT],
        "first_purchase_date": pd.NaT,
        "sent_at": [pd.NaT, pd.NaT, pd.NaT, pd.NaT, day("2023-11-01"), day("2024-01-01"), pd.NaT],
        "opened": [None, None, None, None, False, True, None]})
    got = history_inputs_of_rows(rows, ("opened", "clicked"))
    assert got.history["purchase_date"].tolist() == [day("2024-01-03"), day("2024-02-10")]
    assert got.history["n_purchases"].tolist() == [1, 2] and got.history["monetary_total"].tolist() == [5.0, 12.0]
    assert got.customers["customer_id"].tolist() == ["b", "d"]
    assert got.customers["signup_date"].isna().tolist() == [False, True]
    assert got.non_purchase.to_dict("list") == {"customer_id": ["c"], "first_order_date": [day("2024-01-20")]}
    assert got.engagement.to_dict() == {"a": day("2024-01-01")}  # the first send opened, not the first send
    alone = history_inputs_of_rows(rows[rows["kind"] == "customer"], ("opened", "clicked"))
    assert alone.history.empty and len(alone.engagement) == 0


def test_the_tagged_rows_give_the_shops_inputs(shop):
    got = history_inputs_of_rows(tagged_rows(shop), ("opened", "clicked"))
    assert_frame_equal(got.history.reset_index(drop=True), shop["history"].reset_index(drop=True),
                       check_dtype=False, check_categorical=False)
    assert got.engagement.sort_index().to_dict() == shop["engagement"].sort_index().to_dict()


@pytest.mark.slow
@pytest.mark.filterwarnings("error::FutureWarning")  # finding 6: pyspark's pandas-3 note stays quiet
def test_spark_counts_every_bucket_of_customers_on_its_executors(shop):
    from segkit.data.spark import child_session, pandas_warnings_quiet, spark_session
    from segkit.steps.spark_lifecycle import history_counts_on_spark

    session = child_session(spark_session())
    with pandas_warnings_quiet():
        frame = session.createDataFrame(tagged_rows(shop))
    counts = history_counts_on_spark(frame, shop["stager"], shop["dates"], shop["as_of"], shop["models"],
                                     ("opened", "clicked"), partitions=3)
    got = HistoryTables.of(counts, shop["dates"], shop["as_of"], shop["stager"].first_seen_until_)
    assert_same_tables(got, whole_tables(shop))


def test_cohort_revenue_and_the_at_risk_reference_of_parts_are_the_wholes_bit_for_bit():
    """Finding 4: merged parts added floats in part order. Amounts and chances whose float sums depend on the
    order (1e16, -1e16, 0.1, ...), split at random: the merged cohort cells and table and the at-risk reference
    are the whole's, bit for bit, and the reference is the exact mean rounded once."""
    from fractions import Fraction

    from segkit.lifecycle import (
        StageThresholds,
        chance_reference,
        chance_reference_sum,
        cohort_cells,
        cohort_table_of,
        merge_cohort_cells,
        purchase_history,
    )

    rng = np.random.default_rng(5)
    n = 3000
    amounts = rng.choice([1e16, -1e16, 0.1, 0.2, 0.3, 3.3, 1e-3], n)
    orders = pd.DataFrame({"customer_id": pd.array([f"c{i}" for i in rng.integers(0, 400, n)], dtype="string"),
                           "order_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D"),
                           "amount": amounts}).drop_duplicates(["customer_id", "order_date"])
    history = purchase_history(orders)
    assert float(np.sum(amounts)) != sum(rng.permutation(amounts).tolist())  # the values expose the float order
    whole = cohort_cells(history, "2024-06-01")
    part = pd.Series(rng.integers(0, 6, 400), index=[f"c{i}" for i in range(400)])
    pieces = [cohort_cells(history[(part.reindex(history["customer_id"].astype(str)).to_numpy() == k)], "2024-06-01")
              for k in range(6)]
    merged = merge_cohort_cells(pieces)
    assert merged.index.equals(whole.index) and merged["revenue"].tolist() == whole["revenue"].tolist()
    assert merged["customers_purchasing"].tolist() == whole["customers_purchasing"].tolist()
    assert_frame_equal(cohort_table_of(merged, "2024-06-01"), cohort_table_of(whole, "2024-06-01"), check_exact=True)
    cells = history[history["purchase_date"] < pd.Timestamp("2024-06-01")]
    first = cohort_table_of(whole, "2024-06-01").iloc[0]
    in_first = cells[(cells["first_purchase"].dt.to_period("M") == cells["purchase_date"].dt.to_period("M"))
                     & (cells["first_purchase"].dt.strftime("%Y-%m") == first["cohort"])]
    assert first["revenue"] == float(sum(map(Fraction, in_first["amount"])))  # exact, rounded once

    thresholds = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=40)
    chance = rng.choice([0.1, 0.2, 0.7, 1 / 3, 1e-9], n)
    n_purchases, recency = rng.integers(1, 5, n), rng.integers(0, 200, n).astype(float)
    split = rng.integers(0, 7, n)
    parts = [chance_reference_sum(chance[split == k], n_purchases[split == k], recency[split == k], thresholds)
             for k in range(7)]
    live = (n_purchases > 1) & (recency <= 100)
    assert chance_reference(parts) == exact_mean(*chance_reference_sum(chance, n_purchases, recency, thresholds))
    assert chance_reference(parts) == float(sum(map(Fraction, chance[live])) / int(live.sum()))
