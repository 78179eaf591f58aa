"""segkit.rfm: RFM table, tie-aware scores, segment map, tiers, lifetimes summary, producer."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.errors import ConfigError, DataError
from segkit.rfm import lifetimes_summary, order_table, purchase_orders, rfm_table, RFMWarning


def tx(rows: list[tuple]) -> pd.DataFrame:
    """Order lines from (customer_id, order_id, date, amount) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount"])
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["order_id"] = frame["order_id"].astype("string")
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    return frame


def cdnow_log() -> pd.DataFrame:
    """The CDNOW sample transaction log (2,357 customers) shipped with lifetimes."""
    path = resources.files("lifetimes") / "datasets" / "CDNOW_sample.txt"
    with resources.as_file(path) as p:
        log = pd.read_csv(p, sep=r"\s+", header=None, names=["master_id", "customer_id", "date", "cds", "amount"],
                          dtype={"master_id": str, "customer_id": str, "date": str})
    log["order_date"] = pd.to_datetime(log["date"], format="%Y%m%d")
    return log


# --------------------------------------------------------------------------- lifetimes summary
@pytest.mark.parametrize("freq, end, multiplier", [
    ("D", "1997-09-30", 1),
    ("W", "1997-09-30", 1),   # end mid-week: lifetimes keeps the rest of that week, so do we
    ("W", None, 1),
    ("h", "1998-01-01", 24),
])
def test_lifetimes_summary_equals_lifetimes_on_cdnow_customer_by_customer(freq, end, multiplier):
    from lifetimes.utils import summary_data_from_transaction_data

    log = cdnow_log()
    expected = summary_data_from_transaction_data(
        log, "customer_id", "order_date", monetary_value_col="amount",
        observation_period_end=end, freq=freq, freq_multiplier=multiplier)
    got = lifetimes_summary(log, end, freq=freq, freq_multiplier=multiplier)
    assert len(got) == 2357
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def test_lifetimes_summary_without_monetary_column_equals_lifetimes():
    from lifetimes.utils import summary_data_from_transaction_data

    log = cdnow_log()
    expected = summary_data_from_transaction_data(log, "customer_id", "order_date",
                                                  observation_period_end="1997-09-30", freq="W")
    got = lifetimes_summary(log, "1997-09-30", freq="W", monetary_value_col=None)
    assert_frame_equal(got, expected)


def test_lifetimes_summary_counts_same_period_orders_once_and_sums_their_value():
    frame = tx([("a", "1", "2024-01-01", 1.0), ("a", "2", "2024-01-03", 2.0),
                ("a", "3", "2024-01-10", 5.0), ("a", "4", "2024-01-11", 7.0)])
    got = lifetimes_summary(frame, "2024-01-14", freq="W")
    assert got.loc["a"].tolist() == [1.0, 1.0, 1.0, 12.0]  # weeks of Jan 1 and Jan 8


def test_lifetimes_summary_names_the_missing_column():
    with pytest.raises(DataError, match="'when'"):
        lifetimes_summary(tx([("a", "1", "2024-01-01", 1.0)]), "2024-02-01", datetime_col="when")


def test_lifetimes_summary_rejects_an_unsupported_time_unit():
    with pytest.raises(ConfigError, match="freq='M'"):
        lifetimes_summary(tx([("a", "1", "2024-01-01", 1.0)]), "2024-02-01", freq="M")


def test_lifetimes_summary_refuses_an_end_before_every_transaction():
    with pytest.raises(DataError, match="no transaction on or before"):
        lifetimes_summary(tx([("a", "1", "2024-03-01", 1.0)]), "2024-01-01", freq="D")
