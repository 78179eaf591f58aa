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
    order_value_table,
    purchase_pattern_table,
    simulate_customers,
)
from segkit.core.errors import DataError
from segkit.data.spark import pandas_warnings_quiet, spark_session
from segkit.data.spark_patterns import (
    first_repeat_counts,
    order_value_counts,
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
