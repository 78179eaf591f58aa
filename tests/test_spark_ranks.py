"""Value distributions built on Spark executors equal numpy's, and the RFM fits from them equal the pandas fit.

One shared session (``segkit.data.spark.spark_session``), one small frame of 3,000 customers whose spend has
more distinct values than the exact search takes (so the distribution holds only some rows), its distinct
values range-partitioned over four partitions (several columns share a partition; a column's values straddle
partitions). A second test lowers the exact limit and puts a tier's position right at a partition boundary,
in a session whose Arrow batches are small (a partition arrives in several batches). A missing Java or
pyspark fails here with the message of ``spark_session``: never a skip.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from segkit.core.errors import DataError
from segkit.data.distribution import DistributionNeeds, ValueDistribution
from segkit.data.spark import child_session, pandas_warnings_quiet, spark_session
from segkit.data.spark_ranks import PART, distributions_from_counts, range_partitioned_counts, value_distributions
from segkit.rfm import LoyaltyTiers, RFMScorer, balanced_edges, balanced_edges_of, fit_needs

pytestmark = pytest.mark.slow

TIERS = LoyaltyTiers([{"name": "Platinum", "min": 0.95}, {"name": "Gold", "min": 0.8},
                      {"name": "Silver", "min": 0.5}, {"name": "Bronze"}])


@pytest.fixture(scope="module")
def session():
    return spark_session()


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    rng = np.random.default_rng(17)
    n = 3000
    return pd.DataFrame({"recency_days": rng.integers(0, 400, n),
                         "frequency": rng.geometric(0.4, n),                   # heavy ties
                         "monetary_total": np.round(rng.lognormal(4.0, 1.0, n), 2)})  # ~2,700 distinct


def test_the_rfm_fits_from_spark_distributions_equal_the_pandas_fit(session, base):
    scorer = RFMScorer(bins=5)
    needs = fit_needs(scorer, TIERS)
    with pandas_warnings_quiet():
        frame = session.createDataFrame(base)
    got = value_distributions(frame, needs, partitions=4)
    for column, need in needs.items():
        expected = ValueDistribution.of_values(base[column], need, column=column)
        pd.testing.assert_frame_equal(got[column].to_frame(), expected.to_frame())
        assert (got[column].n, got[column].m, got[column].column) == (3000, expected.m, column)
    assert got["frequency"].complete and got["recency_days"].complete
    assert not got["monetary_total"].complete and got["monetary_total"].m > 1025

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = scorer.fit_distributions({k: got[c] for k, c in
                                           {"r": "recency_days", "f": "frequency", "m": "monetary_total"}.items()})
        on_table = RFMScorer(bins=5).fit(base)
    assert {k: v.tolist() for k, v in fitted.edges_.items()} == {k: v.tolist() for k, v in on_table.edges_.items()}
    assert fitted.n_groups_ == on_table.n_groups_ == {"r": 5, "f": 5, "m": 5}
    assert fitted.n_customers_ == 3000
    assert TIERS.fit_distribution(got["monetary_total"]).thresholds_ == TIERS.fit(base).thresholds_


def test_rows_next_to_a_partition_boundary_are_kept_when_the_exact_limit_is_low(session):
    small_batches = child_session(session)
    small_batches.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")
    spend = np.random.default_rng(3).permutation(np.repeat(np.arange(600) * 1.5, 5))  # 600 values, 5 customers each
    days = np.random.default_rng(4).integers(0, 300, len(spend))
    with pandas_warnings_quiet():
        frame = small_batches.createDataFrame(pd.DataFrame({"spend": spend, "days": days}))
    held = range_partitioned_counts(frame, ["spend", "days"], partitions=4)
    with pandas_warnings_quiet():
        firsts = held.where("key = 0").groupBy(PART).agg({"value": "min"}).toPandas()
    assert len(firsts) >= 2   # the spend column spans partitions
    boundary = float(firsts.sort_values(PART)["min(value)"].iloc[1])  # first value of the second partition
    below = int((spend < boundary).sum())
    # position 2.5 customers before the boundary: inside the last value of the partition before, whose 5
    # customers tell the next partition that its first value is the first to reach the share
    tiers = LoyaltyTiers([{"name": "Top", "min": (below - 2.5) / len(spend)}, {"name": "Rest"}], basis="spend")
    needs = {"spend": DistributionNeeds(shares=tiers.shares, max_exact=10),
             "days": DistributionNeeds(bins=5, max_exact=40)}

    got = distributions_from_counts(held, ["spend", "days"], needs)

    spend_rows = got["spend"].to_frame()
    assert spend_rows["value"].tolist() == [boundary - 1.5, boundary]   # one on each side of the boundary
    pd.testing.assert_frame_equal(spend_rows, ValueDistribution.of_values(spend, needs["spend"]).to_frame())
    pd.testing.assert_frame_equal(got["days"].to_frame(), ValueDistribution.of_values(days, needs["days"]).to_frame())
    assert tiers.fit_distribution(got["spend"]).thresholds_ == {"Top": boundary}
    assert tiers.fit(pd.DataFrame({"spend": spend})).thresholds_ == {"Top": boundary}
    assert got["days"].m - 1 > 40   # the candidate search, from the rows next to its positions
    assert balanced_edges_of(got["days"], 5, max_exact=40).tolist() == balanced_edges(days, 5, max_exact=40).tolist()


def test_a_missing_value_names_the_column_or_is_skipped_when_asked(session):
    with pandas_warnings_quiet():
        frame = session.createDataFrame(pd.DataFrame({"frequency": [1.0, None, 2.0, np.nan]}))
    with pytest.raises(DataError, match=r"column 'frequency' is empty or NaN for 2 customer\(s\)\. Fill or drop"):
        value_distributions(frame, {"frequency": DistributionNeeds(bins=5)}, partitions=2)
    # the medians' reading (numpy.nanmedian): missing and NaN values left out
    skipped = value_distributions(frame, {"frequency": DistributionNeeds(median=True)}, partitions=2, missing="skip")
    assert skipped["frequency"] == ValueDistribution.of_values([1.0, 2.0], column="frequency")
    assert skipped["frequency"].median() == 1.5
    with pytest.raises(DataError, match=r"column\(s\) 'monetary_total' missing \(columns present: frequency\)"):
        value_distributions(frame, {"monetary_total": DistributionNeeds(bins=5)})
