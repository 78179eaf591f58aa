"""The bounded inputs of notebook 04's fits counted on Spark equal pandas' tables, and so do the fits (issue 17).

One shared Spark session (``segkit.data.spark.spark_session``), one tiny per-customer frame in the
layout of the scoring input (``clv_`` columns, empty for a customer without a purchase) plus the
first-to-second purchase durations, four ``groupBy`` + ``count`` jobs. The tables Spark collects must be
the tables :mod:`segkit.clv` and :class:`segkit.data.distribution.ValueDistribution` build from the same customers,
and the models fitted from them the models fitted on the customers, to the last bit. A missing Java
or pyspark fails here with the message of ``spark_session``: never a skip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segkit.clv import (
    BetaGeoModel,
    GammaGammaModel,
    OneTimeBuyerModel,
    first_repeat_table,
    order_value_sample,
    order_value_table,
    purchase_pattern_table,
    simulate_customers,
)
from segkit.core.errors import DataError
from segkit.data.spark import pandas_warnings_quiet, spark_session
from segkit.data.spark_patterns import (
    first_repeat_counts,
    order_value_counts,
    order_value_sample_counts,
    purchase_pattern_counts,
    value_counts,
)
from segkit.data.distribution import ValueDistribution

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    """600 buyers (ages of 20 or 39 weeks, whole-day recencies, whole-money order values: many shared
    patterns) and 50 customers without a purchase (no CLV input), in the scoring input's layout."""
    summary = simulate_customers(600, {"r": 0.6, "alpha": 4.0, "a": 0.8, "b": 2.4}, {"p": 6.0, "q": 4.0, "v": 15.0},
                                 T=np.repeat([20.0, 39.0], 300), seed=8)
    summary["recency"] = np.floor(summary["recency"] * 7) / 7
    summary["monetary_value"] = summary["monetary_value"].round(0)
    frame = summary.add_prefix("clv_").rename_axis("customer_id").reset_index()
    rng = np.random.default_rng(8)
    frame["days"] = np.where(frame["clv_frequency"] > 0, rng.integers(1, 60, len(frame)), frame["clv_T"] * 7)
    frame["repeated"] = (frame["clv_frequency"] > 0).to_numpy()
    prospects = pd.DataFrame({"customer_id": [f"p{i}" for i in range(50)]})
    return pd.concat([frame, prospects], ignore_index=True).astype({"customer_id": "string"})


@pytest.fixture(scope="module")
def buyers(customers) -> pd.DataFrame:
    rows = customers[customers["clv_frequency"].notna()]
    return rows.set_index("customer_id").filter(like="clv_").rename(columns=lambda c: c.removeprefix("clv_"))


@pytest.fixture(scope="module")
def on_spark(customers):
    with pandas_warnings_quiet():
        return spark_session().createDataFrame(customers.astype({"customer_id": "object"}))


def test_bgnbd_patterns_counted_on_spark_are_pandas_patterns_and_give_the_same_fit(on_spark, buyers):
    counted = purchase_pattern_counts(on_spark)
    expected = purchase_pattern_table(buyers)
    pd.testing.assert_frame_equal(counted, expected)
    assert counted["customers"].sum() == 600 and len(counted) < 0.7 * 600
    assert BetaGeoModel().fit_patterns(counted).to_dict() == BetaGeoModel().fit(buyers).to_dict()


def test_gamma_gamma_pairs_counted_on_spark_are_pandas_pairs_and_give_the_same_fit(on_spark, buyers):
    counted = order_value_counts(on_spark)
    pd.testing.assert_frame_equal(counted, order_value_table(buyers))
    assert GammaGammaModel().fit_patterns(counted).to_dict() == GammaGammaModel().fit(buyers).to_dict()


def test_first_repeat_durations_and_value_counts_on_spark_are_pandas_and_give_the_same_curve(on_spark, customers):
    buyers = customers[customers["days"].notna()]
    counted = first_repeat_counts(on_spark)
    pd.testing.assert_frame_equal(counted, first_repeat_table(buyers[["days", "repeated"]]))
    fitted = OneTimeBuyerModel().fit(buyers["days"], buyers["repeated"])
    assert OneTimeBuyerModel().fit_counts(counted).to_dict() == fitted.to_dict()
    frequencies = value_counts(on_spark, "clv_frequency", count="n")
    assert ValueDistribution.of_counts(frequencies["clv_frequency"], frequencies["n"]) == ValueDistribution.of_values(
        buyers["clv_frequency"])


def test_a_frame_without_the_clv_columns_is_named_with_the_columns_it_has(on_spark):
    with pytest.raises(DataError, match=r"BG/NBD patterns: column\(s\) 'clv_recency' missing from the Spark frame "
                                        r"\(it has 'customer_id', 'clv_frequency'"):
        purchase_pattern_counts(on_spark.select("customer_id", "clv_frequency", "clv_T"))


def test_a_customer_with_some_clv_inputs_missing_is_an_error_not_left_out():
    rows = pd.DataFrame({"customer_id": ["a", "b", "p", "c"], "clv_frequency": [1.0, 2.0, None, 0.0],
                         "clv_recency": [1.0, np.nan, None, 0.0], "clv_T": [3.0, 4.0, None, None]})
    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(rows)
    with pytest.raises(DataError, match=r"^BG/NBD patterns: 2 row\(s\) of the Spark frame have some of 'clv_frequency', "
                                        r"'clv_recency', 'clv_T' missing or NaN, e.g. customer_id '[bc]', "
                                        r"customer_id '[bc]'\. A customer without a purchase has all of them empty"):
        purchase_pattern_counts(frame)
    # "p", with no input at all, is a customer without a purchase: left out
    counted = order_value_counts(frame.where("customer_id != 'b'").withColumnRenamed("clv_recency", "clv_monetary_value"))
    assert counted.to_dict("list") == {"frequency": [0.0, 1.0], "monetary_value": [0.0, 1.0], "customers": [1, 1]}


def collected_rows(monkeypatch) -> list[tuple[str, tuple[str, ...], int, set[str]]]:
    """Every result a Spark action hands the driver from now on: (action, columns, rows, customer ids)."""
    from pyspark.sql.classic.dataframe import DataFrame  # the frames of a local session

    collected: list[tuple[str, tuple[str, ...], int, set[str]]] = []
    for name in ("collect", "toPandas", "toArrow", "take", "head", "tail", "toLocalIterator"):
        action = getattr(DataFrame, name)

        def spied(frame, *args, __action=action, __name=name, **kwargs):
            result = __action(frame, *args, **kwargs)
            if __name == "toLocalIterator":
                result = list(result)
            rows = result.to_pandas() if hasattr(result, "to_pandas") else (
                result if isinstance(result, pd.DataFrame) else pd.DataFrame(
                    [r.asDict() for r in (result if isinstance(result, list) else [result]) if r is not None]))
            ids = set(rows["customer_id"].astype(str)) if "customer_id" in rows.columns else set()
            collected.append((__name, tuple(frame.columns), len(rows), ids))
            return iter(result) if __name == "toLocalIterator" else result
        monkeypatch.setattr(DataFrame, name, spied)
    return collected


def test_a_gamma_gamma_sample_on_spark_is_the_pandas_sample_and_only_it_reaches_the_driver(on_spark, buyers,
                                                                                            monkeypatch):
    """lifecycle.order_value_sample below the repeat buyers: Spark picks the customers pandas picks (seeded
    positions in customer_id order: ids "0".."599" sort as text, "10" before "2"), counts the same pairs, and
    no result collected holds more rows than the cap."""
    cap, seed = 100, 11
    rows, repeat_buyers = order_value_sample(buyers, cap, seed)
    assert repeat_buyers > 2 * cap and len(rows) == cap
    collected = collected_rows(monkeypatch)
    counted, counted_buyers = order_value_sample_counts(on_spark, cap, seed)
    assert counted_buyers == repeat_buyers
    pd.testing.assert_frame_equal(counted, order_value_table(rows))
    assert GammaGammaModel().fit_patterns(counted).to_dict() == GammaGammaModel().fit(rows).to_dict()
    assert [ids for *_, ids in collected if ids] == [set(rows.index)]  # the sample's ids, once
    assert max(n for _, _, n, _ in collected) <= cap


def test_with_a_cap_above_the_repeat_buyers_spark_counts_every_pair_and_the_fit_is_todays(on_spark, buyers,
                                                                                           monkeypatch):
    repeat = buyers[(buyers["frequency"] > 0) & (buyers["monetary_value"] > 0)]
    collected = collected_rows(monkeypatch)
    counted, repeat_buyers = order_value_sample_counts(on_spark, len(repeat), seed=11)
    assert repeat_buyers == len(repeat)
    pd.testing.assert_frame_equal(counted, order_value_table(repeat))  # the one-time buyers' (0, 0) left out
    assert GammaGammaModel().fit_patterns(counted).to_dict() == GammaGammaModel().fit(buyers).to_dict()
    assert max(n for _, _, n, _ in collected) <= len(repeat) and not any(ids for *_, ids in collected)


def test_a_customer_with_a_missing_or_negative_order_value_is_an_error_sampled_or_not():
    """As segkit.clv.order_value_sample checks every row of the summary: a customer outside the sample too."""
    rows = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "p"], "clv_frequency": [1.0, 2.0, 0.0, 3.0, None],
                         "clv_monetary_value": [5.0, None, 0.0, -4.0, None]})
    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(rows)
    for cap in (1, 1000):
        with pytest.raises(DataError, match=r"^Gamma-Gamma order values: 2 row\(s\) of the Spark frame have "
                                            r"'clv_frequency' or 'clv_monetary_value' missing, NaN or negative beside "
                                            r"a purchase, e.g. customer_id '[bd]', customer_id '[bd]'\."):
            order_value_sample_counts(frame, cap, seed=0)
    # "p", with no input at all, is a customer without a purchase: left out
    counted, repeat_buyers = order_value_sample_counts(frame.where("customer_id in ('a', 'c', 'p')"), 1, seed=0)
    assert repeat_buyers == 1 and counted.to_dict("list") == {"frequency": [1.0], "monetary_value": [5.0],
                                                              "customers": [1]}
