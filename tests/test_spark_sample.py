"""The clustering's bounded inputs computed on Spark (segkit.data.spark_sample) equal pandas': the rows at
the sample positions of the customer_id order, the whole-table summaries, and the fit made from them.

One shared session (:func:`segkit.data.spark.spark_session`), a table of ~1,100 customers spread in
shuffled order over several partitions; a few Spark jobs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from segkit.cluster import cluster_customers, fit_cluster_model, plan_positions, sample_plan
from segkit.core.errors import DataError
from segkit.data.bounded import FrameSummaries
from segkit.data.spark import pandas_warnings_quiet, spark_session
from segkit.data.spark_sample import SparkSummaries, customer_sample
from tests.test_cluster_sample import assert_builders_equal, customer_like, settings

N = 1100


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """customer_like with ids whose code-point order is not their case-blind or accent-blind order,
    sorted by customer_id as segkit.features.customer_table sorts them."""
    t = customer_like(N, seed=4)
    prefix = np.array(["a", "B", "É", "e", "z", "Z", "ß", "10", "9"])[np.arange(N) % 9]
    t["customer_id"] = [f"{p}{i}" for p, i in zip(prefix, np.random.default_rng(0).permutation(N))]
    out = t.sort_values("customer_id", kind="stable").reset_index(drop=True)
    out.attrs.update(t.attrs)
    return out


@pytest.fixture(scope="module")
def frame(table):
    """The table on Spark: shuffled rows in 4 partitions (the order must come from customer_id)."""
    shuffled = table.sample(frac=1.0, random_state=1)
    with pandas_warnings_quiet():
        return spark_session().createDataFrame(shuffled).repartition(4)


class RecordedSummaries(SparkSummaries):
    """SparkSummaries that keep what they answered (to compare with pandas' without asking twice)."""

    def counts(self, numeric, categorical):
        self.asked = (list(numeric), list(categorical))
        self.counted = super().counts(numeric, categorical)
        return self.counted

    def medians(self, columns):
        self.found = super().medians(columns)
        return self.found


@pytest.fixture(scope="module")
def spark_fit(table, frame) -> SimpleNamespace:
    """The clustering fitted from Spark's bounded inputs (sample rows and summaries), and pandas' fit."""
    s = settings(fit_sample=1000)
    plan = sample_plan(N, s, seed=5, run_selection=False)
    sample = customer_sample(frame, plan_positions(plan), customers=N, attrs=table.attrs, partitions=3)
    summaries = RecordedSummaries(frame, attrs=table.attrs, partitions=3)
    fit = fit_cluster_model(sample, summaries, s, seed=5, k=3, run_selection=False)
    full = cluster_customers(table, s, seed=5, k=3, run_selection=False, run_stability=False,
                             run_projection=False)
    return SimpleNamespace(plan=plan, sample=sample, summaries=summaries, fit=fit, full=full)


def test_the_rows_picked_on_spark_are_the_tables_rows_at_those_positions(table, spark_fit):
    wanted = plan_positions(spark_fit.plan)
    assert 1000 <= len(wanted) < N and wanted[0] == 0  # the fit sample, stability's and projection's
    picked, expected = spark_fit.sample.rows, table.iloc[wanted]
    assert spark_fit.sample.positions.tolist() == wanted.tolist() and spark_fit.sample.customers == N
    assert picked["customer_id"].tolist() == expected["customer_id"].tolist()
    for col in ("recency_days", "frequency", "monetary_total", "open_rate", "median_days_between_orders"):
        np.testing.assert_array_equal(picked[col].to_numpy(dtype=float), expected[col].to_numpy(dtype=float))
    for col in ("preferred_channel", "region"):
        assert picked[col].fillna("<NA>").tolist() == expected[col].fillna("<NA>").tolist()
    assert picked.attrs == table.attrs


def test_the_summaries_on_spark_equal_the_pandas_tables(table, spark_fit):
    summaries, local = spark_fit.summaries, FrameSummaries(table)
    numeric, categorical = summaries.asked
    assert len(numeric) == 6 and categorical == ["preferred_channel", "region"]
    assert summaries.counted == local.counts(numeric, categorical)  # exact
    assert summaries.counted.levels["region"]["Far"] > 0
    assert summaries.found == local.medians(numeric)  # exact
    assert_builders_equal(spark_fit.fit.builder, spark_fit.full.builder, rtol=1e-12)


def test_the_fit_from_spark_inputs_equals_the_fit_on_the_pandas_table(spark_fit):
    ours, theirs = spark_fit.fit.estimator, spark_fit.full.model.estimator
    assert len(ours.labels_) == 1000
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.centroids_num_, theirs.centroids_num_, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours.centroids_cat_, theirs.centroids_cat_)
    assert ours.gamma_ == pytest.approx(theirs.gamma_, rel=1e-9)


@pytest.fixture(scope="module")
def small_batches():
    """A child session whose Arrow batches hold two rows: an integer column with a null in one batch only
    reaches pandas as int64 in one batch and float64 in the other."""
    session = spark_session().newSession()
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "2")
    return session


def test_category_levels_counted_on_spark_are_pandas_level_texts_whatever_the_batches(small_batches):
    table = pd.DataFrame({"tier": pd.array([1, 2, None, 1], dtype="Int64"),
                          "member": pd.array([True, None, False, True], dtype="boolean"),
                          "score": [1.0, 2.5, np.nan, 1e20], "x": [1.0, 2.0, 3.0, 4.0]})
    with pandas_warnings_quiet():
        frame = small_batches.createDataFrame(table).coalesce(1)
    categorical = ["tier", "member", "score"]
    counted = SparkSummaries(frame).counts(["x"], categorical)
    expected = FrameSummaries(table).counts(["x"], categorical)
    assert counted.levels["tier"] == {"1": 2, "2": 1, "Unknown": 1}  # never "1.0" from a batch with the null
    assert counted.levels["score"] == {"1.0": 1, "1e+20": 1, "2.5": 1, "Unknown": 1}
    assert counted == expected
    assert list(counted.levels["member"]) == list(expected.levels["member"]) == ["True", "False", "Unknown"]


def test_text_in_a_numeric_feature_is_a_data_error_naming_the_column_not_a_spark_traceback():
    from segkit.data.bounded import numeric_values

    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(pd.DataFrame({"customer_id": ["a", "b"], "spend": ["1.5", "lots"]}))
    summaries = SparkSummaries(frame)
    with pytest.raises(DataError, match=r"^Feature 'spend' must be numeric, but the Spark table holds it as string"):
        summaries.counts(["spend"], [])
    with pytest.raises(DataError, match=r"^Feature 'spend' must be numeric"):
        summaries.medians(["spend"])
    # an error raised by segkit's own code on an executor comes back as that error, its message whole
    with pytest.raises(DataError) as raised:
        summaries.moments(lambda batch: pd.DataFrame({"spend": numeric_values(batch, "spend")}))
    assert str(raised.value).startswith("Feature 'spend' must be numeric, but 1 values are not numbers (row 2, e.g. 'lots')")
    assert "Traceback" not in str(raised.value) and raised.value.__cause__ is None


def test_a_sample_refuses_customers_without_an_id_and_frees_the_ids_it_held(frame):
    jvm = spark_session().sparkContext._jsc.sc()
    held = jvm.getPersistentRDDs().size()
    customer_sample(frame, [0, 5], customers=N, partitions=3)
    assert jvm.getPersistentRDDs().size() == held  # the checkpointed ids are released
    with pandas_warnings_quiet():
        no_id = spark_session().createDataFrame(pd.DataFrame({"customer_id": ["a", None, "b"], "x": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match=r"^1 row\(s\) of the table have no customer_id: .* Drop or fill those rows"):
        customer_sample(no_id, [0, 1])
    assert jvm.getPersistentRDDs().size() == held
