"""Data audit: every check on tiny frames, planted dirt found exactly, cleaning, producer, notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal, assert_series_equal

from segkit.audit import arm_balance, gap_periods, missing_values, run_audit
from segkit.core.config import load_config
from segkit.core.errors import AuditFailedError, ConfigError
from segkit.core.files import dumps_json
from segkit.core.schema import CAMPAIGN, CUSTOMERS, TRANSACTIONS
from segkit.data.auditfacts import AuditSettings, volume_from_counts
from segkit.data.datasets import generate_shop, write_sample
from segkit.plots.audit import plot_daily_volume, plot_outlier_rule
from segkit.steps.audit import build_audit_artifacts, finding_rows, overview_table, raise_if_failed, summarize
from segkit.steps.pipeline import open_run

ROOT = Path(__file__).resolve().parents[1]
VOLUME = dict(window_days=29, spike_k=5.0, open_weekday_share=0.5, gap_max_probability=0.001, min_days=28)
# generator dirt kind -> audit check that must count it exactly
DIRT_CHECKS = {
    "duplicate_rows": "exact_duplicates",
    "missing_customer_id": "guest_checkouts",
    "zero_unit_price": "zero_price",
    "negative_unit_price": "negative_price",
    "future_order_date": "future_dates",
    "quantity_outlier": "quantity_outliers",
    "campaign_unknown_customer": "unknown_campaign_customers",
}


def lines(rows: list[tuple]) -> pd.DataFrame:
    """Transactions from (customer, date-time, order id, product, quantity, unit price) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "order_id", "product_id", "quantity",
                                        "unit_price"])
    frame["order_date"] = pd.to_datetime(frame["order_date"], format="%Y-%m-%d %H:%M")
    frame["amount"] = frame["quantity"] * frame["unit_price"]
    return frame.astype({"customer_id": "string", "order_id": "string", "product_id": "string"})


def counts_of(result) -> dict[str, int]:
    return dict(zip(result.findings["check"], result.findings["count"]))


def rules_of(result) -> dict[str, int]:
    return dict(zip(result.cleaning_rules["rule"], result.cleaning_rules["rows_affected"]))


def orders_per_day(counts: list[int], start: str = "2024-01-01") -> pd.DataFrame:
    """The per-day counts the audit computes from the lines (days without orders are absent):
    ``counts[i]`` orders of value 1 on day i."""
    days = pd.date_range(start, periods=len(counts), freq="D")
    kept = [i for i, n in enumerate(counts) if n]
    return pd.DataFrame({"date": days[kept].astype("datetime64[ns]"),
                         "orders": np.asarray([counts[i] for i in kept], dtype="int64"),
                         "revenue": np.asarray([counts[i] for i in kept], dtype="float64")})


def audited(rows: list[tuple], **audit) -> "AuditResult":
    """run_audit of lines(rows) with these ``audit`` settings (everything else the defaults)."""
    return run_audit({"transactions": lines(rows)}, config=load_config(overrides={"audit": audit} if audit else None))


def quantity_lines(quantities: list[float]) -> list[tuple]:
    """One order per quantity (unit price 1), a day apart."""
    return [("a", f"2024-01-{i + 1:02d} 09:00", str(i), "P", q, 1.0) for i, q in enumerate(quantities)]


def outlier_rule(result, measure: str) -> dict:
    return result.outlier_rules.set_index("measure").loc[measure].to_dict()


# One of each kind of problem (rows are numbered from 0; the file row is +2).
DIRTY = [
    ("a", "2024-01-01 10:00", "O1", "P1", 1.0, 10.0),    # 0 fine
    ("a", "2024-01-01 10:00", "O1", "P1", 1.0, 10.0),    # 1 exact duplicate of 0
    (None, "2024-01-02 11:00", "O2", "P2", 1.0, 5.0),    # 2 guest checkout
    ("b", "2024-01-03 12:00", "O3", "P3", 2.0, -4.0),    # 3 negative unit price
    ("b", "2024-01-04 12:00", "O4", "P4", 1.0, 0.0),     # 4 zero price (kept)
    ("c", "2024-01-05 09:00", "C5", "P1", -1.0, 10.0),   # 5 return (kept, flagged)
    ("c", "2099-01-05 09:00", "O6", "P1", 1.0, 10.0),    # 6 far future
    ("d", "2024-01-06 09:00", "O7", "P5", 3.0, 20.0),    # 7 fine
    ("d", "2024-01-06 15:00", "O8", "P5", 3.0, 20.0),    # 8 near duplicate of 7
    ("e", "2024-01-10 09:00", None, "P6", 1.0, 8.0),     # 9 no order id (filled)
]


# ----------------------------------------------------------------------------- the checks, by value
def test_returns_are_negative_quantity_negative_amount_or_the_cancellation_prefix():
    tx = pd.DataFrame({"customer_id": ["a"] * 5, "order_date": pd.to_datetime(["2024-01-01"] * 5),
                       "order_id": pd.array(["C9", "7", "8", None, "c1"], dtype="string"),
                       "quantity": [1.0, -1.0, 1.0, 1.0, 1.0], "amount": [5.0, -5.0, 5.0, -2.0, 5.0]})
    assert run_audit({"transactions": tx}).transactions["is_return"].tolist() == [True, True, False, True, False]
    no_prefix = load_config(overrides={"io": {"return_invoice_prefix": None}})
    assert run_audit({"transactions": tx}, config=no_prefix).transactions["is_return"].tolist() == [
        False, True, False, True, False]


def test_exact_duplicates_keep_the_first_copy_and_treat_missing_values_as_equal():
    tx = pd.DataFrame({"customer_id": ["a"] * 5, "order_date": pd.to_datetime(["2024-01-01"] * 5),
                       "order_id": ["1"] * 5, "amount": [1.0, 1.0, 2.0, 3.0, 3.0],
                       "channel": pd.array(["x", "x", "x", None, None], dtype="string")})
    result = run_audit({"transactions": tx})
    assert counts_of(result)["exact_duplicates"] == 2
    assert finding_rows(result, "exact_duplicates")["row"].tolist() == [3, 6]
    assert result.transactions["amount"].tolist() == [1.0, 2.0, 3.0]


def test_near_duplicates_are_later_orders_repeating_a_line_on_the_same_day():
    result = audited([
        ("a", "2024-01-01 09:00", "1", "P", 1.0, 5.0),
        ("a", "2024-01-01 09:30", "2", "P", 1.0, 5.0),   # same day, other order: flagged
        ("a", "2024-01-01 10:00", "3", "P", 1.0, 5.0),   # and again: flagged
        ("a", "2024-01-01 09:00", "1", "Q", 1.0, 5.0),   # other product
        ("a", "2024-01-02 09:00", "4", "P", 1.0, 5.0),   # next day
        ("b", "2024-01-01 09:00", "5", "P", 1.0, 5.0),   # other customer
        ("a", "2024-01-01 11:00", "6", "P", 2.0, 5.0),   # other quantity
        ("a", "2024-01-01 12:00", "C7", "P", -1.0, 5.0),  # a return is never a near duplicate
    ], near_duplicate_columns=["product_id", "quantity", "amount"])
    assert counts_of(result)["near_duplicates"] == 2
    assert finding_rows(result, "near_duplicates")["row"].tolist() == [3, 4]


def test_near_duplicates_flag_the_later_order_even_when_it_comes_first_in_the_file():
    result = audited([("a", "2024-01-01 12:00", "2", "P", 1.0, 5.0), ("a", "2024-01-01 08:00", "1", "P", 1.0, 5.0)],
                     near_duplicate_columns=["product_id", "amount"])
    assert finding_rows(result, "near_duplicates")["row"].tolist() == [2]


def test_outlier_bounds_use_the_scaled_mad_of_the_logs():
    rule = outlier_rule(audited(quantity_lines([1, 2, 4, 8, 16]), outlier_k=1, outlier_min_fold=1),
                        "quantity")
    assert rule["median"] == pytest.approx(4.0) and rule["n"] == 5
    assert rule["scale_log"] == pytest.approx(1.4826 * np.log(2))
    assert (rule["low"], rule["high"]) == pytest.approx((4 * np.exp(-1.4826 * np.log(2)),
                                                         4 * np.exp(1.4826 * np.log(2))))
    assert rule["flagged"] == 2  # 1 and 16


def test_outlier_bounds_fall_back_to_the_mean_absolute_deviation_when_the_mad_is_zero():
    # quantity 0 and a return (-3) are not purchase lines: ignored
    rule = outlier_rule(audited(quantity_lines([1, 1, 1, 2, 4, 0, -3]), outlier_k=2, outlier_min_fold=1),
                        "quantity")
    assert rule["median"] == 1.0 and rule["n"] == 5
    assert rule["scale_log"] == pytest.approx(1.2533 * (np.log(2) + np.log(4)) / 5)
    assert rule["high"] == pytest.approx(np.exp(2 * rule["scale_log"]))


def test_outlier_bounds_never_come_closer_to_the_median_than_min_fold():
    rule = outlier_rule(audited(quantity_lines([1, 1, 1, 2, 4]), outlier_k=2, outlier_min_fold=10), "quantity")
    assert (rule["low"], rule["high"]) == pytest.approx((0.1, 10.0))
    rule = outlier_rule(audited(quantity_lines([3, 3, 3]), outlier_k=5, outlier_min_fold=1), "quantity")
    assert (rule["low"], rule["high"], rule["flagged"]) == pytest.approx((3.0, 3.0, 0))  # all equal: none outside
    no_quantity = run_audit({"transactions": lines(quantity_lines([1, 2])).drop(columns=["quantity", "unit_price"])})
    assert np.isnan([outlier_rule(no_quantity, "quantity")[k] for k in ("median", "low", "high")]).all()


def test_order_values_sum_purchase_lines_per_order_and_skip_non_positive_orders():
    result = audited([("a", "2024-01-01 09:00", "1", "P", 2.0, 5.0), ("a", "2024-01-01 09:00", "1", "Q", 1.0, 3.0),
                      ("b", "2024-01-02 09:00", "2", "P", 1.0, 0.0), ("b", "2024-01-03 09:00", "C1", "P", -1.0, 5.0)])
    assert result.order_values[["order_id", "value"]].to_dict("list") == {"order_id": ["1"], "value": [13.0]}
    assert outlier_rule(result, "order value")["n"] == 1


def test_dates_after_a_quantile_of_the_dates_plus_the_tolerance_are_in_the_future():
    result = audited([("a", f"{day} 09:00", str(i), "P", 1.0, 1.0)
                      for i, day in enumerate(["2024-01-01", "2024-01-02", "2024-01-03", "2099-01-01"])],
                     future_quantile=0.5, future_tolerance_days=10)
    found = result.findings.set_index("check").loc["future_dates"]
    assert found["count"] == 1 and "dated after 2024-01-12" in found["message"]


def test_the_default_as_of_is_the_day_after_the_last_order_that_is_not_in_the_future():
    rows = [("a", d, str(i), "P", 1.0, 1.0) for i, d in enumerate(["2024-03-01 10:00", "2024-03-05 23:59",
                                                                    "2099-01-01 00:00"])]
    assert audited(rows).as_of == pd.Timestamp("2024-03-06")
    assert audited(rows, future_tolerance_days=100_000).as_of == pd.Timestamp("2099-01-02")


def test_a_lost_day_on_a_trading_weekday_is_a_gap_but_a_closed_sunday_is_not():
    counts = [0 if day.day_name() == "Sunday" else 20 for day in pd.date_range("2024-01-01", periods=56)]
    counts[16] = 0                                                   # Wednesday 2024-01-17
    daily = volume_from_counts(orders_per_day(counts), **VOLUME)
    assert daily.loc[daily["is_gap"], "date"].tolist() == [pd.Timestamp("2024-01-17")]
    assert not daily.loc[daily["weekday"] == "Sunday", "open_weekday"].any()
    assert not daily["is_spike"].any()
    assert daily["orders"].sum() == sum(counts)
    assert daily.loc[daily["date"] == "2024-01-08", "rolling_7d"].item() == pytest.approx(120 / 7)


def test_zero_days_are_not_gaps_when_the_volume_is_too_low_for_a_zero_to_be_surprising():
    daily = volume_from_counts(orders_per_day([1, 0] * 28), **VOLUME)
    assert daily["open_weekday"].all() and not daily["is_gap"].any()


def test_a_day_far_above_the_expected_volume_is_a_spike():
    counts = [20] * 56
    counts[30] = 200
    counts[40] = 35                                                  # within Poisson noise: 20 + 5·sqrt(20) = 42
    daily = volume_from_counts(orders_per_day(counts), **VOLUME)
    assert daily.loc[daily["is_spike"], "date"].tolist() == [pd.Timestamp("2024-01-31")]
    assert daily["expected"].eq(20).all()


def test_short_periods_are_not_assessed_for_gaps_and_spikes():
    daily = volume_from_counts(orders_per_day([20, 0, 0, 300, 20]), **VOLUME)
    assert len(daily) == 5 and not daily["is_gap"].any() and not daily["is_spike"].any()
    assert volume_from_counts(orders_per_day([]), **VOLUME).empty


def test_gap_periods_merge_consecutive_gap_days_across_a_closed_weekday():
    daily = pd.DataFrame({
        "date": pd.date_range("2024-01-05", periods=6, freq="D"),      # Fri .. Wed
        "orders": [9, 0, 0, 0, 9, 0], "expected": 9.0,
        "open_weekday": [True, True, False, True, True, True],          # closed on Sunday
        "is_gap": [False, True, False, True, False, True],
    })
    gaps = gap_periods(daily)
    assert gaps.to_dict("list") == {
        "start": [pd.Timestamp("2024-01-06"), pd.Timestamp("2024-01-10")],
        "end": [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-10")],
        "gap_days": [2, 1], "expected_orders": [18.0, 9.0]}


def test_missing_values_count_empty_cells_per_column_of_each_table():
    t = pd.DataFrame({"customer_id": pd.array(["a", None, None], dtype="string"), "amount": [1.0, np.nan, 3.0]})
    c = pd.DataFrame({"customer_id": pd.array(["a"], dtype="string")})
    expected = pd.DataFrame({"table": ["transactions", "transactions", "customers"],
                             "column": ["customer_id", "amount", "customer_id"],
                             "missing": [2, 1, 0], "share": [2 / 3, 1 / 3, 0.0]}).astype(
        {"table": "string", "column": "string"})
    assert_frame_equal(missing_values({"transactions": t, "customers": c, "campaign": None}), expected)


def test_the_returns_summary_gives_the_returned_share_of_gross_revenue():
    rows = [("a", "2024-01-01 09:00", "1", "P", 1.0, 300.0), ("a", "2024-01-02 09:00", "2", "P", 1.0, 100.0),
            ("a", "2024-01-03 09:00", "C1", "P", -1.0, 30.0), ("a", "2024-01-03 09:00", "C1", "Q", -1.0, 10.0)]
    assert audited(rows).returns == {"return_lines": 2, "return_orders": 1, "gross_revenue": 400.0,
                                     "returned_value": 40.0, "returned_share": 0.1, "net_revenue": 360.0}
    nothing_left = run_audit({"transactions": lines(rows)}, as_of="2023-01-01")
    assert np.isnan(nothing_left.returns["returned_share"])


def test_arm_balance_counts_customers_per_arm_within_each_campaign():
    c = pd.DataFrame({"campaign_id": ["x", "x", "x", "y"], "customer_id": list("abcd"),
                      "arm": ["control", "email", "email", "email"]})
    assert arm_balance(c).to_dict("list") == {"campaign_id": ["x", "x", "y"], "arm": ["control", "email", "email"],
                                              "customers": [1, 2, 1], "share": [1 / 3, 2 / 3, 1.0]}
    assert arm_balance(None).empty


# ----------------------------------------------------------------------------- run_audit
def test_each_problem_is_found_once_and_cleaned_by_its_rule():
    result = run_audit({"transactions": lines(DIRTY), "customers": None, "campaign": None})
    assert counts_of(result) == {"exact_duplicates": 1, "guest_checkouts": 1, "negative_price": 1, "future_dates": 1,
                                 "zero_price": 1, "returns": 1, "near_duplicates": 1, "missing_values": 1}
    assert result.findings.set_index("check").loc["missing_values", "message"] == (
        "Empty cells in column 'order_id': 1 (10.0%); left empty (unknown).")
    assert rules_of(result) == {
        "exact duplicate rows": 1, "rows without order date": 0, "rows without amount": 0,
        "rows without customer id (guest checkouts)": 1, "lines with a negative unit price": 1,
        "far-future order dates": 1, "orders on or after as_of": 0,
        "missing order ids filled (each row its own order)": 1,
        "returns and cancellations flagged is_return (kept)": 1, "zero-price lines kept (free items)": 1,
        "near duplicates flagged (kept)": 1, "lines of order value outliers flagged (kept)": 0,
        "quantity outliers flagged (kept)": 0, "customers derived from transactions (no customers file)": 5,
        "control characters removed from ids and text": 0}
    tx = result.transactions
    assert tx["order_id"].tolist() == ["O1", "O4", "C5", "O7", "O8", "row-11"]
    assert tx["is_return"].tolist() == [False, False, True, False, False, False]
    assert result.as_of == pd.Timestamp("2024-01-11")
    assert result.period == {"start": pd.Timestamp("2024-01-01"), "end": pd.Timestamp("2024-01-10")}
    assert result.status == "warnings"
    assert result.customers["customer_id"].tolist() == ["a", "b", "c", "d", "e"]
    assert result.passed == ["missing_order_date", "missing_amount", "after_as_of", "order_value_outliers",
                             "quantity_outliers", "volume_gaps", "volume_gaps_holidays", "volume_spikes",
                             "customers_without_orders", "formula_like_ids"]


def test_findings_quote_offending_rows_by_their_line_in_the_input_file():
    cfg = load_config(overrides={"privacy": {"pseudonymize_ids": False}})
    result = run_audit({"transactions": lines(DIRTY)}, config=cfg)
    examples = dict(zip(result.findings["check"], result.findings["examples"]))
    assert examples["negative_price"] == ("row 5: order_id=O3, customer_id=b, order_date=2024-01-03 12:00, "
                                          "product_id=P3, quantity=2, unit_price=-4, amount=-8")
    assert examples["guest_checkouts"].startswith("row 4: order_id=O2, customer_id=<missing>")
    assert finding_rows(result, "near_duplicates")["row"].tolist() == [10]
    with pytest.raises(KeyError, match="known: "):
        finding_rows(result, "volume_gaps")


def test_examples_pseudonymise_customer_ids_by_default():
    result = run_audit({"transactions": lines(DIRTY)})
    text = " ".join(result.findings["examples"])
    assert "customer_id=b," not in text and "customer_id=c-" in text


def test_rows_in_equal_rows_out_plus_rows_dropped_for_every_table():
    result = run_audit({"transactions": lines(DIRTY)})
    rules = result.cleaning_rules
    dropped = rules[rules["action"] == "dropped"].groupby("table")["rows_affected"].sum()
    assert len(DIRTY) == len(result.transactions) + dropped["transactions"]


def test_orders_on_or_after_as_of_are_dropped_and_counted():
    result = run_audit({"transactions": lines(DIRTY)}, as_of="2024-01-06")
    assert counts_of(result)["after_as_of"] == 3                    # rows 7, 8, 9; the 2099 row is "future"
    assert rules_of(result)["orders on or after as_of"] == 3
    assert counts_of(result)["future_dates"] == 1
    assert result.transactions["order_date"].max() < pd.Timestamp("2024-01-06")
    assert result.period["end"] == pd.Timestamp("2024-01-05")


def test_an_as_of_that_is_not_a_date_is_a_config_error():
    with pytest.raises(ConfigError, match="as_of = 'soon' is not a date"):
        run_audit({"transactions": lines(DIRTY)}, as_of="soon")


def test_clean_tables_have_exactly_the_contract_columns_and_dtypes():
    result = run_audit({"transactions": lines(DIRTY).drop(columns=["product_id"])})
    tx = result.transactions
    assert list(tx.columns) == list(TRANSACTIONS.columns) + ["is_return"]
    assert {c: str(t) for c, t in tx.dtypes.items()} == {**TRANSACTIONS.dtypes, "is_return": "boolean"}
    assert tx["product_id"].isna().all()
    assert list(result.customers.columns) == list(CUSTOMERS.columns)
    assert {c: str(t) for c, t in result.customers.dtypes.items()} == CUSTOMERS.dtypes
    assert result.customers["customer_id"].is_unique


def test_customers_clean_is_the_customers_table_plus_buyers_missing_from_it():
    customers = pd.DataFrame({"customer_id": ["a", "b", "x"], "country": ["DE", "FR", "IT"]})
    result = run_audit({"transactions": lines(DIRTY), "customers": customers})
    assert result.customers[["customer_id", "country"]].astype(object).where(
        result.customers[["customer_id", "country"]].notna(), None).values.tolist() == [
        ["a", "DE"], ["b", "FR"], ["c", None], ["d", None], ["e", None], ["x", "IT"]]
    assert counts_of(result)["buyers_not_in_customers"] == 3
    assert counts_of(result)["customers_without_orders"] == 1         # x: a prospect
    assert result.counts["prospects"] == 1 and result.counts["buyers"] == 5


def test_without_a_customers_file_customers_are_derived_with_their_country():
    tx = lines(DIRTY).assign(country=["DE", "DE", "NL", "FR", "FR", "AT", "AT", "ES", "ES", "PL"])
    result = run_audit({"transactions": tx})
    assert result.customers["country"].tolist() == ["DE", "FR", "AT", "ES", "PL"]
    assert "country" not in result.transactions.columns


def test_without_order_ids_exact_duplicates_ignore_the_derived_ids_and_near_duplicates_are_not_assessed():
    tx = lines(DIRTY).drop(columns=["order_id"])
    tx["order_id"] = pd.array([f"row-{i + 2}" for i in range(len(tx))], dtype="string")  # as schema.validate
    tx.attrs["absent_columns"] = ["order_id"]
    dropping = load_config(overrides={"audit": {"identical_lines_without_order_id": "drop"}})
    result = run_audit({"transactions": tx}, config=dropping)
    assert counts_of(result)["exact_duplicates"] == 1
    assert counts_of(result)["identical_lines_without_order_id"] == 1
    assert "near_duplicates" not in counts_of(result)
    assert result.transactions["order_id"].tolist() == ["row-2", "row-6", "row-7", "row-9", "row-10", "row-11"]
    kept = run_audit({"transactions": tx})  # the default, keep: the identical line is a purchase of its own
    assert "exact_duplicates" not in counts_of(kept) and counts_of(kept)["identical_lines_without_order_id"] == 1
    assert kept.transactions["order_id"].tolist() == ["row-2", "row-3", "row-6", "row-7", "row-9", "row-10", "row-11"]


def test_campaign_rows_of_unknown_customers_and_repeated_pairs_are_dropped():
    campaign = pd.DataFrame({"campaign_id": ["K1"] * 5, "customer_id": ["a", "b", "zz", "a", None],
                             "arm": ["control", "email", "email", "control", "email"]})
    result = run_audit({"transactions": lines(DIRTY), "campaign": campaign})
    found = counts_of(result)
    assert (found["campaign_duplicates"], found["unknown_campaign_customers"], found["campaign_arm_balance"]) == (1, 2, 1)
    assert result.campaign["customer_id"].tolist() == ["a", "b"]
    assert result.arms["customers"].tolist() == [1, 1]
    assert rules_of(result)["campaign rows of unknown customers"] == 2


def test_customer_table_problems_are_found_when_the_table_was_not_validated():
    customers = pd.DataFrame({"customer_id": ["a", "a", None, "b"]})
    result = run_audit({"transactions": lines(DIRTY), "customers": customers})
    assert counts_of(result)["duplicate_customer_ids"] == 1 and counts_of(result)["customers_without_id"] == 1
    assert result.status == "errors"                                    # one row per customer is the contract


def test_outliers_in_order_value_and_quantity_are_flagged_and_kept():
    rows = [(f"c{i}", "2024-01-01 10:00", f"O{i}", "P", float(1 + i % 3), 10.0 + i % 7) for i in range(60)]
    rows += [("big", "2024-01-02 10:00", "X1", "P", 300.0, 12.0)]      # a typo: quantity x100
    result = run_audit({"transactions": lines(rows)})
    assert counts_of(result)["quantity_outliers"] == 1 and counts_of(result)["order_value_outliers"] == 1
    assert len(result.transactions) == 61
    assert result.order_values.loc[result.order_values["is_outlier"], "order_id"].tolist() == ["X1"]
    q_rule = result.outlier_rules.set_index("measure").loc["quantity"]
    # logs of 1, 2, 3 (20 each) and 300: median log 2, median |deviation| = log(3/2)
    assert q_rule["median"] == pytest.approx(2.0) and q_rule["flagged"] == 1
    assert q_rule["high"] == pytest.approx(2 * np.exp(5 * 1.4826 * np.log(1.5)))


def test_severity_becomes_error_above_the_configured_share():
    tx = lines([(None, "2024-01-01 10:00", "1", "P", 1.0, 1.0), (None, "2024-01-01 11:00", "2", "P", 1.0, 1.0),
                ("a", "2024-01-01 12:00", "3", "P", 1.0, 1.0)])
    assert run_audit({"transactions": tx}).findings.set_index("check").loc["guest_checkouts", "severity"] == "error"
    relaxed = load_config(overrides={"audit": {"severity": {"guest_checkouts": {"error_share": None}}}})
    result = run_audit({"transactions": tx}, config=relaxed)
    assert result.findings.set_index("check").loc["guest_checkouts", "severity"] == "warning"
    assert result.status == "warnings"


def test_findings_are_ranked_errors_then_warnings_then_info():
    tx = lines(DIRTY[:3] + [(None, "2024-01-02 12:00", "O9", "P", 1.0, 1.0)] * 1)
    strict = load_config(overrides={"audit": {"severity": {"zero_price": {"level": "error"}}}})
    result = run_audit({"transactions": lines(DIRTY)}, config=strict)
    ranks = result.findings["severity"].map({"error": 0, "warning": 1, "info": 2})
    assert ranks.is_monotonic_increasing and result.findings["severity"].iloc[0] == "error"
    assert len(tx) == 4


@pytest.mark.parametrize("override, match", [
    ({"outlier_k": -1}, "audit.outlier_k = -1"),
    ({"future_quantile": 2}, "audit.future_quantile"),
    ({"severity": {"guest_checkouts": {"level": "fatal"}}}, "level = 'fatal'"),
    ({"severity": {"guest_chekouts": {"level": "error"}}}, "unknown check"),
    ({"severity": {"zero_price": {"error_share": 5}}}, "error_share = 5"),
    ({"near_duplicate_columns": ["sku"]}, "near_duplicate_columns"),
])
def test_invalid_audit_settings_are_config_errors_naming_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        AuditSettings.from_config(load_config(overrides={"audit": override}))


def test_when_nothing_is_left_after_cleaning_the_audit_fails():
    result = run_audit({"transactions": lines(DIRTY)}, as_of="2023-01-01")
    assert result.findings.set_index("check").loc["no_transactions_left", "severity"] == "error"
    assert result.transactions.empty and result.period == {"start": None, "end": None}
    assert result.daily.empty and result.status == "errors"
    json.loads(dumps_json(result.summary()))                          # still valid JSON (no NaN)


def test_an_empty_transactions_table_gives_an_error_finding_not_a_traceback():
    result = run_audit({"transactions": lines([])})
    assert result.status == "errors" and result.as_of is None


def test_the_failure_message_is_a_readable_findings_table_with_what_to_do():
    tx = lines([(None, "2024-01-01 10:00", "1", "P", 1.0, 1.0), (None, "2024-01-01 11:00", "2", "P", 1.0, 1.0),
                ("a", "2024-01-01 12:00", "3", "P", 1.0, 1.0)])
    result = run_audit({"transactions": tx})
    with pytest.raises(AuditFailedError) as err:
        raise_if_failed(result)
    text = str(err.value)
    header, first = text.splitlines()[2:4]
    assert header.split() == ["check", "table", "severity", "count", "example"]
    assert first.split()[:4] == ["guest_checkouts", "transactions", "error", "2"]
    assert "row 2: order_id=1" in first
    assert "Guest orders are left out of customer analyses" in text and "audit.severity" in text
    assert err.value.result is result
    raise_if_failed(run_audit({"transactions": lines(DIRTY)}))          # warnings only: no error


def test_the_audit_is_deterministic():
    a = run_audit({"transactions": lines(DIRTY)})
    b = run_audit({"transactions": lines(DIRTY)})
    assert_frame_equal(a.findings, b.findings)
    assert_frame_equal(a.transactions, b.transactions)
    assert dumps_json(a.summary()) == dumps_json(b.summary())


def test_the_summary_json_has_the_contract_shape():
    summary = json.loads(dumps_json(run_audit({"transactions": lines(DIRTY)}).summary()))
    assert summary["as_of"] == "2024-01-11" and summary["status"] == "warnings"
    assert summary["period"] == {"start": "2024-01-01", "end": "2024-01-10"}
    assert {"check", "severity", "count", "message", "examples"} <= set(summary["findings"][0])
    assert {"rule", "rows_affected"} <= set(summary["cleaning_rules"][0])
    assert summary["counts"]["transactions_rows_in"] == 10 and summary["counts"]["transactions_rows_clean"] == 6


def test_summarize_states_status_removals_and_returns_from_the_result():
    result = run_audit({"transactions": lines(DIRTY)})
    s = summarize(result)
    assert s["analysed"] == ("10 order lines read, 6 analysed after cleaning, from 2024-01-01 to 2024-01-10 "
                             "(analysis date as_of 2024-01-11), "
                             "5 customers.")  # who bought: the run's headline numbers
    assert s["findings"][0] == "Audit status: warnings (0 errors, 4 warnings, 4 notes)."
    assert s["findings"][1].startswith("Cleaning removed 4 of 10 transaction rows (40.0%): exact duplicate rows 1;")
    # gross 10 + 0 + 60 + 60 + 8 = 138, returned 10: 7.2%; net 128
    assert s["findings"][2] == ("Returns and cancellations are 7.2% of gross revenue (return lines: 1); "
                                "net revenue EUR 128.00 includes them.")
    # orders: 4 purchase orders and the cancellation document C5 apart (not 6 "orders")
    assert s["headlines"] == {"Status": "warnings", "Order lines (clean)": 6, "Net revenue (EUR)": 128.0,
                              "Purchase orders": 4, "Cancellation/return documents": 1, "Fully cancelled orders": 0,
                              "Customers": 5, "Buyers": 3, "Customers with order lines but no purchase kept": 2,
                              "Prospects (no order line)": 0, "Guest lines (no customer id)": 1,
                              "Unmatched cancellation documents": 1,  # C5: c never bought P1 before it
                              "Rows removed": 4, "Returns, share of gross revenue": "7.2%"}
    assert s["warnings"] == ["Data-quality warnings (4): exact_duplicates, future_dates, guest_checkouts, "
                             "negative_price; see the data-quality table of 01_data_audit."]
    assert 3 <= len(s["findings"]) <= 5
    assert s["actions"][-1].startswith("Data are fit for analysis")


def test_overview_table_counts_rows_in_and_out_per_table():
    customers = pd.DataFrame({"customer_id": ["a", "x"]})
    out = overview_table(run_audit({"transactions": lines(DIRTY), "customers": customers}))
    assert out[["table", "rows_in", "rows_clean", "rows_removed", "customer_ids"]].values.tolist() == [
        ["transactions", 10, 6, 4, 5], ["customers", 2, 6, 0, 6]]


def test_overview_table_shows_order_ids_beside_the_headlines_purchase_orders_and_documents():
    # clean orders: O1, O4 (zero value), C5 (a cancellation document), O7, O8, row-11: six order ids,
    # four purchase orders (the headline's), one document; the headline's numbers, not a second count
    result = run_audit({"transactions": lines(DIRTY)})
    out = overview_table(result).set_index("table")
    assert out.loc["transactions", ["order_ids", "purchase_orders", "cancellation_documents"]].tolist() == [6, 4, 1]
    assert (out.loc["transactions", "purchase_orders"], out.loc["transactions", "order_ids"]) == (
        result.headline["purchase_orders"], result.counts["orders"])
    assert out.loc["customers", ["order_ids", "purchase_orders"]].isna().all()
    definitions = result.summary()["definitions"]
    assert definitions["counts.orders"].startswith("distinct order ids in the clean order lines")
    assert definitions["counts.buyers"].startswith("distinct customer ids with a clean order line")
    assert "headline.purchase_orders" in definitions["counts.orders"]


# ----------------------------------------------------------------------------- generated shop
@pytest.fixture(scope="module")
def shop():
    return generate_shop(n_customers=500, seed=1)


@pytest.fixture(scope="module")
def shop_result(shop):
    return run_audit({"transactions": shop.transactions, "customers": shop.customers, "campaign": shop.campaign})


def test_every_kind_of_planted_dirt_is_found_and_counted_exactly(shop, shop_result):
    found = counts_of(shop_result)
    assert {kind: found.get(check, 0) for kind, check in DIRT_CHECKS.items()} == shop.dirt
    assert all(shop.dirt[kind] > 0 for kind in DIRT_CHECKS)          # the test can fail


def test_the_generated_shop_cleans_to_consistent_counts(shop, shop_result):
    rules = shop_result.cleaning_rules
    dropped = rules[rules["action"] == "dropped"].groupby("table")["rows_affected"].sum()
    assert len(shop.transactions) == len(shop_result.transactions) + dropped["transactions"]
    assert len(shop.campaign) == len(shop_result.campaign) + dropped["campaign"]
    assert len(shop_result.transactions) == len(shop.transactions) - sum(
        shop.dirt[k] for k in ("duplicate_rows", "missing_customer_id", "negative_unit_price", "future_order_date"))
    assert not shop_result.transactions.duplicated().any()
    assert shop_result.transactions["customer_id"].notna().all()
    assert shop_result.transactions["order_date"].max() < shop_result.as_of
    assert shop_result.as_of == pd.Timestamp(shop.end) + pd.Timedelta(days=1)
    assert_series_equal(shop_result.transactions["is_return"].astype(bool).rename(None),
                        shop_result.transactions["order_id"].str.startswith("C").astype(bool).rename(None))
    assert set(shop_result.customers["customer_id"]) == set(shop.customers["customer_id"])


# ----------------------------------------------------------------------------- plots
def test_the_volume_plot_marks_gaps_and_spikes_with_titled_labelled_axes():
    counts = [20] * 56
    counts[10], counts[30] = 0, 200
    ax = plot_daily_volume(volume_from_counts(orders_per_day(counts), **VOLUME))
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Daily orders", "Date (day)", "Orders per day (count)")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "gap: no orders where expected (1 days)" in labels and "spike (1 days)" in labels


def test_the_outlier_plot_draws_the_rule_bounds(shop_result):
    rule = shop_result.outlier_rules.iloc[1]
    ax = plot_outlier_rule(shop_result.quantities["quantity"], rule)
    xs = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    assert xs == pytest.approx([rule["low"], rule["high"]])
    assert ax.get_title() == "Quantity: robust outlier rule"


# ----------------------------------------------------------------------------- producer
def write_config(folder: Path, shop=None, campaign: bool = True, transactions_csv: str | None = None) -> Path:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    if shop is not None:
        write_sample(data, shop)
    if transactions_csv is not None:
        (data / "transactions.csv").write_text(transactions_csv)
    entry = {"transactions": "data/transactions.csv",
             "customers": "data/customers.csv" if shop is not None else None,
             "campaign": "data/campaign.csv" if shop is not None and campaign else None}
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump({"data": entry}))
    return path


def test_the_producer_writes_the_clean_tables_summary_and_customer_list(tmp_path, shop):
    ctx = open_run("01_data_audit", run_dir=tmp_path / "run", config_path=write_config(tmp_path, shop))
    result = build_audit_artifacts(ctx)
    tx = pd.read_parquet(ctx.artifact_path("transactions_clean"))
    assert list(tx.columns) == list(TRANSACTIONS.columns) + ["is_return"]
    assert len(tx) == result.counts["transactions_rows_clean"] > 0 and tx["order_id"].notna().all()
    customers = pd.read_parquet(ctx.artifact_path("customers_clean"))
    assert list(customers.columns) == list(CUSTOMERS.columns) and customers["customer_id"].is_unique
    campaign = pd.read_parquet(ctx.artifact_path("campaign_clean"))
    assert list(campaign.columns) == list(CAMPAIGN.columns)
    assert len(campaign) == len(shop.campaign) - shop.dirt["campaign_unknown_customer"]
    summary = ctx.read_artifact("audit_summary")
    assert summary["status"] == "warnings" and summary["as_of"] == result.as_of.strftime("%Y-%m-%d")
    assert {f["check"]: f["count"] for f in summary["findings"]}["exact_duplicates"] == shop.dirt["duplicate_rows"]
    segments = ctx.read_artifact("customer_segments")
    assert list(segments.columns) == ["customer_id"]
    assert segments["customer_id"].tolist() == sorted(customers["customer_id"])
    assert ctx.as_of == result.as_of


def test_without_a_campaign_file_no_campaign_table_is_written_and_a_stale_one_is_removed(tmp_path, shop):
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "artifacts" / "campaign_clean.parquet").write_bytes(b"stale")
    ctx = open_run("01_data_audit", run_dir=run, config_path=write_config(tmp_path, shop, campaign=False))
    result = build_audit_artifacts(ctx)
    assert result.campaign is None and not ctx.has_artifact("campaign_clean")
    assert ctx.has_artifact("transactions_clean")


def test_a_rerun_audit_checks_a_spark_runs_dataset_when_the_run_wrote_no_csv(tmp_path, shop):
    """Above CSV_MAX_ROWS a Spark run writes customer_segments only as customer_segments.parquet/. Re-running
    01 on the same customers keeps it (no CSV of ids alone hides its columns); on other customers it goes,
    with the scoring inputs under artifacts/scoring/."""
    ctx = open_run("01_data_audit", run_dir=tmp_path / "run", config_path=write_config(tmp_path, shop))
    build_audit_artifacts(ctx)
    ids = ctx.read_artifact("customer_segments")["customer_id"]
    csv, dataset, scoring = (ctx.artifact_path("customer_segments"), ctx.artifacts_dir / "customer_segments.parquet",
                             ctx.artifacts_dir / "scoring")
    csv.unlink()
    dataset.mkdir()
    pd.DataFrame({"customer_id": ids, "tier": "gold"}).to_parquet(dataset / "part-00000.parquet")
    build_audit_artifacts(ctx)
    assert not csv.exists() and ctx.read_artifact("customer_segments").columns.tolist() == ["customer_id", "tier"]

    pd.DataFrame({"customer_id": [*ids, "C_GONE"], "tier": "gold"}).to_parquet(dataset / "part-00000.parquet")
    scoring.mkdir()
    (scoring / "lifecycle_inputs.parquet").write_bytes(b"of the earlier customers")
    build_audit_artifacts(ctx)
    assert not dataset.exists() and not scoring.exists()
    segments = ctx.read_artifact("customer_segments")
    assert segments.columns.tolist() == ["customer_id"] and segments["customer_id"].tolist() == ids.tolist()


def test_an_audit_with_errors_writes_the_summary_but_no_clean_tables_and_raises(tmp_path):
    csv = ("customer_id,order_date,order_id,amount\n,2024-01-01,1,5\n,2024-01-02,2,5\n"
           "C1,2024-01-03,3,5\n,2024-01-04,4,5\n")
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    for stale in ("transactions_clean.parquet", "customers_clean.parquet", "customer_segments.csv"):
        (run / "artifacts" / stale).write_text("stale")
    (run / "artifacts" / "customer_segments.parquet").mkdir()  # a Spark run's dataset
    (run / "artifacts" / "customer_segments.parquet" / "part-00000.parquet").write_text("stale")
    ctx = open_run("01_data_audit", run_dir=run, config_path=write_config(tmp_path, transactions_csv=csv))
    with pytest.raises(AuditFailedError, match="guest_checkouts +transactions +error +3") as err:
        build_audit_artifacts(ctx)
    assert err.value.result.status == "errors"
    summary = ctx.read_artifact("audit_summary")
    assert summary["status"] == "errors"
    assert [f["check"] for f in summary["findings"] if f["severity"] == "error"] == ["guest_checkouts"]
    assert sorted(p.name for p in ctx.artifacts_dir.iterdir()) == ["audit_summary.json"]
    result = build_audit_artifacts(ctx, raise_on_error=False)          # what the notebook does
    assert result.status == "errors"


# ----------------------------------------------------------------------------- notebook
def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("data", {}).get("text/html", "")) + str(out.get("text", "")))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_notebook_runs_on_the_sample_in_interactive_mode(tmp_path):
    import papermill as pm

    out = tmp_path / "01_data_audit.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "01_data_audit.ipynb"), str(out), parameters={"run_dir": None},
                        kernel_name="segkit", cwd=str(ROOT / "notebooks"), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    text = _outputs_text(nb)
    assert "guest_checkouts" in text and "exact duplicate rows" in text
    summary = json.loads((ROOT / "reports" / "interactive" / "01_data_audit" / "summaries" / "01_data_audit.json").read_text())
    assert summary["headlines"]["Status"] == "warnings"
    assert (ROOT / "reports" / "interactive" / "01_data_audit" / "artifacts" / "transactions_clean.parquet").exists()


@pytest.mark.slow
def test_the_notebook_shows_the_findings_table_before_stopping_on_errors(tmp_path):
    import papermill as pm

    csv = "customer_id,order_date,order_id,amount\n,2024-01-01,1,5\n,2024-01-02,2,5\nC1,2024-01-03,3,5\n"
    config = write_config(tmp_path, transactions_csv=csv)
    out = tmp_path / "01_data_audit.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(ROOT / "notebooks" / "01_data_audit.ipynb"), str(out),
                            parameters={"run_dir": str(tmp_path / "run"), "config_path": str(config)},
                            kernel_name="segkit", progress_bar=False)
    assert err.value.ename == "AuditFailedError"
    nb = nbformat.read(out, as_version=4)
    failed = next(i for i, c in enumerate(nb.cells) if any(o["output_type"] == "error" for o in c.get("outputs", [])))
    assert "raise_if_failed" in nb.cells[failed].source
    assert "guest_checkouts" in _outputs_text(nbformat.v4.new_notebook(cells=nb.cells[:failed]))
    summary = json.loads((tmp_path / "run" / "summaries" / "01_data_audit.json").read_text())
    assert summary["headlines"]["Status"] == "errors"


def test_the_outlier_list_says_which_outlier_orders_were_cancelled_later_from_the_matches(tmp_path):
    # the Online-Retail-like export plants an order of 80,995 units (168,469.60) cancelled 12 minutes later
    import shutil

    from segkit.core.config import project_root
    from segkit.data.online_retail import generate_online_retail, write_online_retail

    export = generate_online_retail(600, seed=7)  # four outlier orders, one of them partly cancelled
    write_online_retail(tmp_path / "export", export)
    config = project_root() / "data" / "configs" / "online_retail_ii.yml"
    shutil.copy(config, tmp_path / "export" / config.name)
    result = build_audit_artifacts(open_run("01_data_audit", tmp_path / "run", tmp_path / "export" / config.name))
    truth = export.orders.set_index("invoice")
    huge = truth[truth["gross_value"] == truth["gross_value"].max()].iloc[0]
    listed = finding_rows(result, "order_value_outliers").set_index("order_id")
    assert listed.index[0] == huge.name  # the most extreme outlier first
    cancelled = listed.loc[huge.name]
    assert cancelled["cancelled_by"].startswith(f"{huge['cancelled_by']} on {huge['invoice_date']:%Y-%m-%d} ")
    assert cancelled["cancelled_by"].endswith("(168,469.60)") and cancelled["kept_value"] == 0.0
    # every listed order: cancelled by what the truth says, kept what the truth says
    for order_id, row in listed.iterrows():
        assert row["kept_value"] == pytest.approx(truth.loc[order_id, "kept_value"], abs=0.005)
        assert (row["cancelled_by"] != "") == (truth.loc[order_id, "cancelled_value"] > 0)
    summary = json.loads((tmp_path / "run" / "artifacts" / "audit_summary.json").read_text())
    message = next(f["message"] for f in summary["findings"] if f["check"] == "order_value_outliers")
    assert (f"Cancelled later: order {huge.name} (value 168,469.60; kept 0) by {huge['cancelled_by']} on "
            f"{huge['invoice_date']:%Y-%m-%d} ") in message
    assert (listed["cancelled_by"] != "").sum() == 2 and "kept 1.15" in message  # a partial cancellation too
