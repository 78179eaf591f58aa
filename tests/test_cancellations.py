"""Cancellation documents matched to the earlier purchases they cancel; kept value per order and customer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from segkit.core.config import load_config, project_root
from segkit.data.cancellations import cancellation_matches_of, kept_customers_of, kept_orders_of, kept_value
from segkit.data.engine import OrderLines, TransactionLog, file_lines
from segkit.data.online_retail import generate_online_retail
from segkit.data.orders import (first_non_purchase, lifetimes_summary, purchase_orders, rfm_table,
                                rfm_with_info)
from segkit.data.relational import (
    CANCELLATION_MATCHES,
    KEPT_CUSTOMERS,
    KEPT_ORDER_LIST,
    ORDERS,
    QUERIES,
    frame_lines,
    run,
)

SAMPLE = project_root() / "data" / "sample" / "transactions.csv"
COLUMNS = ["customer_id", "order_id", "order_date", "product_id", "quantity", "unit_price"]


def lines_of(rows: list[tuple]) -> pd.DataFrame:
    """Order lines in the Online Retail layout: amount = quantity x unit price, returns by negative quantity."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["order_date"] = pd.to_datetime(frame["order_date"]).astype("datetime64[ns]")
    frame["amount"] = frame["quantity"] * frame["unit_price"]
    frame["is_return"] = frame["quantity"] < 0
    return frame


def orders_by_id(lines: pd.DataFrame) -> pd.DataFrame:
    return kept_value(lines)[1].set_index("order_id")


def customer(lines: pd.DataFrame, customer_id: str) -> dict:
    customers = kept_value(lines)[2].set_index("customer_id")
    return customers.loc[customer_id].to_dict()


def matches_as_tuples(lines: pd.DataFrame) -> list[tuple]:
    matches = kept_value(lines)[0]
    return list(matches[["cancellation_order_id", "purchase_order_id", "product_id", "units", "amount"]]
                .itertuples(index=False, name=None))


# --------------------------------------------------------------------------- the matching rule
def test_an_order_cancelled_twelve_minutes_later_is_no_purchase_and_the_customer_keeps_the_rest():
    # UCI Online Retail: 80,995 x 2.08 = 168,469.60 bought and cancelled 12 minutes later; 2.90 kept
    lines = lines_of([
        ("16446", "553573", "2011-05-18 09:52", "22980", 1, 1.65),
        ("16446", "553573", "2011-05-18 09:52", "22982", 1, 1.25),
        ("16446", "581483", "2011-12-09 09:15", "23843", 80995, 2.08),
        ("16446", "C581484", "2011-12-09 09:27", "23843", -80995, 2.08),
    ])
    orders = orders_by_id(lines)
    assert orders.loc["581483", ["recorded", "kept", "was_purchase", "is_purchase"]].tolist() == \
        [168469.6, 0.0, True, False]
    assert orders.loc["C581484", ["kept", "is_cancellation", "is_purchase"]].tolist() == [0.0, True, False]
    assert orders.loc["553573", ["kept", "is_purchase"]].tolist() == [2.9, True]
    assert customer(lines, "16446") == {
        "recorded_purchases": 2, "purchase_orders": 1, "cancelled_orders": 1, "cancellation_documents": 1,
        "unmatched_documents": 0, "cancelled": 168469.6, "orders_kept": 2.9, "adjustments": 0.0,
        "kept_total": 2.9, "is_buyer": True}


def test_a_partial_cancellation_leaves_the_order_a_purchase_of_what_was_kept():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 10, 3.0), ("a", "C2", "2024-01-02", "P1", -4, 3.0)])
    assert orders_by_id(lines).loc["1", ["recorded", "kept", "is_purchase"]].tolist() == [30.0, 18.0, True]
    assert matches_as_tuples(lines) == [("C2", "1", "P1", 4.0, 12.0)]


def test_a_cancellation_splits_over_earlier_orders_most_recent_first():
    lines = lines_of([
        ("a", "1", "2024-01-01", "P1", 2, 5.0),
        ("a", "2", "2024-01-05", "P1", 3, 5.0),
        ("a", "C3", "2024-01-06", "P1", -4, 5.0),   # all 3 of order 2, then 1 of order 1
        ("a", "4", "2024-01-07", "P1", 1, 5.0),     # bought after the cancellation: not taken
    ])
    assert matches_as_tuples(lines) == [("C3", "2", "P1", 3.0, 15.0), ("C3", "1", "P1", 1.0, 5.0)]
    orders = orders_by_id(lines)
    assert orders["kept"].to_dict() == {"1": 5.0, "2": 0.0, "C3": 0.0, "4": 5.0}
    assert orders["is_purchase"].to_dict() == {"1": True, "2": False, "C3": False, "4": True}


def test_a_later_cancellation_cannot_take_what_an_earlier_one_took_nor_what_was_bought_after_it():
    lines = lines_of([
        ("a", "1", "2024-01-01", "P1", 2, 5.0),
        ("a", "C2", "2024-01-02", "P1", -1, 5.0),   # 1 of order 1
        ("a", "3", "2024-01-03", "P1", 2, 5.0),
        ("a", "C4", "2024-01-04", "P1", -3, 5.0),   # 2 of order 3 (most recent), the 1 left of order 1
        ("a", "C5", "2024-01-05", "P1", -1, 5.0),   # nothing left: an adjustment
    ])
    assert matches_as_tuples(lines) == [("C2", "1", "P1", 1.0, 5.0), ("C4", "3", "P1", 2.0, 10.0),
                                        ("C4", "1", "P1", 1.0, 5.0)]
    assert customer(lines, "a") == {
        "recorded_purchases": 2, "purchase_orders": 0, "cancelled_orders": 2, "cancellation_documents": 3,
        "unmatched_documents": 1, "cancelled": 20.0, "orders_kept": 0.0, "adjustments": -5.0,
        "kept_total": -5.0, "is_buyer": False}


def test_the_cancellation_of_an_order_placed_before_the_data_starts_stays_an_adjustment():
    lines = lines_of([
        ("a", "C1", "2024-01-01", "P7", -2, 4.0),   # its order predates the data
        ("a", "2", "2024-01-03", "P7", 2, 4.0),     # the same product bought later: not what C1 cancels
        ("a", "3", "2024-01-04", "P8", 1, 20.0),
    ])
    assert matches_as_tuples(lines) == []
    orders = orders_by_id(lines)
    assert orders.loc["C1", ["recorded", "kept", "is_cancellation"]].tolist() == [-8.0, -8.0, True]
    assert orders.loc["2", ["kept", "is_purchase"]].tolist() == [8.0, True]
    found = customer(lines, "a")
    assert (found["purchase_orders"], found["unmatched_documents"], found["adjustments"], found["kept_total"],
            found["is_buyer"]) == (2, 1, -8.0, 20.0, True)


def test_each_product_of_a_cancellation_goes_to_the_order_that_sold_it():
    lines = lines_of([
        ("a", "1", "2024-01-01", "P1", 1, 10.0),
        ("a", "2", "2024-01-02", "P2", 1, 7.0),
        ("a", "2", "2024-01-02", "P1", 1, 9.0),     # P1 at another price
        ("a", "C3", "2024-01-03", "P1", -1, 10.0),  # P1 at 10: order 1, although order 2 is more recent
        ("a", "C3", "2024-01-03", "P2", -1, 7.0),
    ])
    assert matches_as_tuples(lines) == [("C3", "1", "P1", 1.0, 10.0), ("C3", "2", "P2", 1.0, 7.0)]
    assert orders_by_id(lines)["kept"].to_dict() == {"1": 0.0, "2": 9.0, "C3": 0.0}


def test_a_line_of_zero_amount_neither_sells_nor_returns_units_of_its_product():
    lines = lines_of([
        ("a", "1", "2024-01-01", "P1", 1, 10.0),
        ("a", "2", "2024-01-02", "P1", 1, 10.0),
        ("a", "2", "2024-01-02", "P1", 1, 10.0),
        ("a", "C3", "2024-01-03", "P1", -1, 10.0),
    ])
    lines.loc[2, "amount"] = 0.0  # a second P1 given away in order 2: amount 0 although quantity x price is 10
    assert matches_as_tuples(lines) == [("C3", "2", "P1", 1.0, 10.0)]  # order 2 sold one P1, the most recent
    assert orders_by_id(lines)["kept"].to_dict() == {"1": 10.0, "2": 0.0, "C3": 0.0}


def test_a_cancellation_at_another_price_matches_nothing_and_reduces_the_customers_total():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 2, 2.10), ("a", "C2", "2024-01-02", "P1", -2, 1.95)])
    assert matches_as_tuples(lines) == []
    found = customer(lines, "a")
    assert (found["purchase_orders"], found["unmatched_documents"], found["orders_kept"], found["adjustments"],
            found["kept_total"], found["is_buyer"]) == (1, 1, 4.2, -3.9, pytest.approx(0.3), True)


def test_a_customer_whose_purchases_are_outweighed_by_unmatched_returns_kept_nothing_and_is_no_buyer():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 1, 10.0), ("a", "C2", "2024-01-02", "P9", -1, 15.0)])
    found = customer(lines, "a")
    assert (found["purchase_orders"], found["kept_total"], found["is_buyer"]) == (1, -5.0, False)


def test_a_cancellation_invoice_alone_is_no_order_and_its_customer_no_buyer():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 1, 10.0), ("b", "C2", "2024-01-02", "P1", -3, 10.0)])
    assert matches_as_tuples(lines) == []          # another customer's purchase is never matched
    orders = kept_value(lines)[1]
    assert orders.loc[orders["customer_id"] == "b", ["order_id", "kept", "is_cancellation", "is_purchase"]] \
        .values.tolist() == [["C2", -30.0, True, False]]
    assert customer(lines, "b") == {
        "recorded_purchases": 0, "purchase_orders": 0, "cancelled_orders": 0, "cancellation_documents": 1,
        "unmatched_documents": 1, "cancelled": 0.0, "orders_kept": 0.0, "adjustments": -30.0,
        "kept_total": -30.0, "is_buyer": False}


def test_without_product_ids_a_return_matches_an_earlier_line_of_exactly_its_amount_only():
    # CDNOW-like: no order ids (every line its own order), no products; returns are negative lines
    lines = pd.DataFrame({
        "customer_id": ["a"] * 5,
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]),
        "amount": [12.0, 24.0, -12.0, -5.0, 30.0],
    })
    matches, orders, customers = kept_value(lines)
    # line 2 (0-based) takes line 0, the most recent earlier purchase of exactly 12.00; -5 matches nothing
    assert matches[["cancellation_order_id", "purchase_order_id", "units", "amount"]].values.tolist() == \
        [["2", "0", 1.0, 12.0]]
    assert orders.set_index("order_id")["kept"].to_dict() == {"0": 0.0, "1": 24.0, "2": 0.0, "3": -5.0, "4": 30.0}
    assert orders.set_index("order_id")["is_purchase"].to_dict() == \
        {"0": False, "1": True, "2": False, "3": False, "4": True}
    assert customers.iloc[0][["purchase_orders", "unmatched_documents", "adjustments", "kept_total"]].tolist() \
        == [2, 1, -5.0, 49.0]


def test_a_return_inside_an_order_nets_there_and_is_not_matched_again():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 2, 5.0),
                      ("a", "2", "2024-01-02", "P1", 3, 5.0), ("a", "2", "2024-01-02", "P1", -1, 5.0)])
    assert matches_as_tuples(lines) == []
    assert orders_by_id(lines)["kept"].to_dict() == {"1": 10.0, "2": 10.0}


def test_random_histories_never_match_more_than_was_bought_or_cancelled_and_keep_every_total():
    rng = np.random.default_rng(7)
    n = 3000
    quantity = rng.integers(1, 6, n) * np.where(rng.random(n) < 0.3, -1, 1)
    lines = pd.DataFrame({
        "customer_id": rng.integers(0, 40, n).astype(str),
        "order_id": [("C" if q < 0 else "") + str(i // 2) for i, q in enumerate(quantity)],  # 2 lines an order
        "order_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, n) * 1440, unit="min"),
        "product_id": rng.integers(0, 4, n).astype(str),
        "quantity": quantity.astype(float),
        "unit_price": rng.choice([1.5, 2.0], n),
    })
    lines["order_date"] = lines.groupby("order_id")["order_date"].transform("min")   # one date an order
    lines["amount"] = lines["quantity"] * lines["unit_price"]
    lines["is_return"] = lines["quantity"] < 0
    matches, orders, customers = kept_value(lines)
    assert len(matches) > 100
    units = lines.groupby(["order_id", "product_id", "unit_price"])["quantity"].sum().abs()
    taken_from = matches.groupby(["purchase_order_id", "product_id", "unit_value"])["units"].sum()
    given_by = matches.groupby(["cancellation_order_id", "product_id", "unit_value"])["units"].sum()
    assert (taken_from <= units.reindex(taken_from.index).to_numpy()).all()
    assert (given_by <= units.reindex(given_by.index).to_numpy()).all()
    assert (matches["purchase_date"] <= matches["cancellation_date"]).all()
    assert (orders.loc[orders["was_purchase"], "kept"] >= -1e-9).all()
    net = lines.groupby("customer_id")["amount"].sum()
    assert np.allclose(customers.set_index("customer_id")["kept_total"].reindex(net.index), net, atol=1e-9)


# --------------------------------------------------------------------------- engines and portability
@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_files_carry_product_quantity_and_price_to_the_same_matches(source, tmp_path):
    lines = lines_of([("a", "1", "2024-01-01", "P1", 2, 5.0), ("a", "2", "2024-01-05", "P1", 3, 5.0),
                      ("a", "C3", "2024-01-06", "P1", -4, 5.0), ("b", "C4", "2024-01-06", "P1", -1, 5.0)])
    path = tmp_path / f"lines.{source}"
    lines.to_parquet(path, index=False) if source == "parquet" else lines.to_csv(path, index=False)
    expected = kept_value(lines)
    with file_lines(path, positions=True) as con:
        got = (cancellation_matches_of(con), kept_orders_of(con), kept_customers_of(con))
    for want, have in zip(expected, got):
        pd.testing.assert_frame_equal(have, want)
    assert got[0]["purchase_order_id"].tolist() == ["2", "1"]


def test_kept_value_on_the_bundled_sample_nets_cancellations_against_their_own_orders(tmp_path):
    # the sample names each cancellation after the order it cancels (C + order id): the planted truth
    with TransactionLog(SAMPLE, load_config()) as log:
        clean = log.write_clean(tmp_path / "transactions_clean.parquet")
    with file_lines(clean) as con:
        matches, orders, customers = cancellation_matches_of(con), kept_orders_of(con), kept_customers_of(con)
        net = con.sql("SELECT CAST(sum(amount) AS DOUBLE) FROM lines").fetchall()[0][0]
    planted = matches["purchase_order_id"] == matches["cancellation_order_id"].str[1:]
    assert planted.sum() >= 0.99 * len(matches) and len(matches) > 900
    # where not, the customer bought the same product at the same price again, after the original order
    # and before cancelling: most recent first takes that one
    original = orders.set_index("order_id")["order_date"].reindex(matches.loc[~planted, "cancellation_order_id"].str[1:])
    assert (matches.loc[~planted, "purchase_date"].to_numpy() > original.to_numpy()).all()
    documents = orders[orders["is_cancellation"]]
    assert (documents["kept"] == 0).all() and not documents["is_purchase"].any()
    lost = orders["was_purchase"] & ~orders["is_purchase"]
    assert lost.sum() > 100 and (orders.loc[lost, "kept"].abs() < 1e-9).all()
    assert customers["kept_total"].sum() == pytest.approx(net, abs=1e-6)           # nothing created or lost
    assert (orders.loc[orders["was_purchase"], "kept"] >= 0).all()
    assert ((customers["recorded_purchases"] > 0) & ~customers["is_buyer"]).sum() > 10


@pytest.mark.parametrize("query", [CANCELLATION_MATCHES, KEPT_ORDER_LIST, KEPT_CUSTOMERS], ids=lambda q: q.name)
def test_the_kept_value_queries_are_core_queries_and_transpile_to_spark_with_their_windows_intact(query):
    assert query in QUERIES   # so tests/test_relational.py lints them with every other query
    spark = sqlglot.transpile(query.text(), read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)[0]
    assert "QUALIFY" not in spark.upper() and "HASH(" not in spark.upper()
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in spark     # the stack height before an event
    assert "ORDER BY order_date NULLS LAST, is_cancellation NULLS LAST, order_id NULLS LAST" in spark


def test_the_runners_accept_a_materialised_orders_relation():
    lines = lines_of([("a", "1", "2024-01-01", "P1", 2, 5.0), ("a", "C2", "2024-01-02", "P1", -2, 5.0)])
    with frame_lines(lines) as con:
        con.execute(f"CREATE TEMP TABLE orders AS {ORDERS.text()}")
        assert run(con, KEPT_CUSTOMERS, provided=("orders",))["purchase_orders"].tolist() == [0]


# --------------------------------------------------------------------------- every consumer reads kept value
HUGE = [("16446", "553573", "2011-05-18 09:52", "22980", 1, 1.65),
        ("16446", "553573", "2011-05-18 09:52", "22982", 1, 1.25),
        ("16446", "581483", "2011-12-09 09:15", "23843", 80995, 2.08),
        ("16446", "C581484", "2011-12-09 09:27", "23843", -80995, 2.08),
        ("b", "1", "2011-06-01 10:00", "P1", 1, 10.0),
        ("b", "C2", "2011-06-02 10:00", "P9", -1, 15.0)]     # kept nothing: -5 after an unmatched return


def test_the_huge_cancelled_order_is_no_purchase_and_its_customer_keeps_2_90_in_rfm_lifecycle_and_clv_inputs():
    lines = lines_of(HUGE)
    rfm = rfm_table(lines).set_index("customer_id")
    assert rfm.loc["16446", ["frequency", "monetary_total"]].tolist() == [1, pytest.approx(2.90)]
    days = OrderLines(lines).purchase_days()             # what lifecycle (monetary_total) and CLV read
    assert days["customer_id"].astype(str).tolist() == ["16446"]
    assert days["amount"].tolist() == [pytest.approx(2.90)] and days["order_date"].dt.day.tolist() == [18]
    assert purchase_orders(lines)["order_id"].tolist() == ["553573"]
    summary = lifetimes_summary(purchase_orders(lines), "2011-12-10", freq="D")
    assert summary.loc["16446", ["frequency", "T", "monetary_value"]].tolist() == [0.0, 206.0, 0.0]


def test_a_customer_who_kept_nothing_has_no_rfm_row_no_purchase_day_and_is_first_seen_without_purchase():
    lines = lines_of(HUGE)
    rfm, info = rfm_with_info(lines, None)
    assert "b" not in set(rfm["customer_id"]) and (rfm["monetary_total"] > 0).all()
    assert (info["customers_kept_nothing"], info["customers_without_purchase"], info["cancellation_documents"],
            info["purchase_orders"], info["non_purchase_orders"]) == (1, 0, 2, 2, 1)
    assert "b" not in set(OrderLines(lines).purchase_days()["customer_id"].astype(str))
    first = first_non_purchase(lines).set_index("customer_id")
    assert first.index.tolist() == ["b"] and pd.isna(first.loc["b", "first_purchase_date"])   # lifecycle: no_net_purchase


CUT = [("a", "1", "2024-01-01", "P1", 4, 25.0), ("a", "C2", "2024-01-20", "P1", -4, 25.0)]


def test_a_cancellation_after_the_cut_does_not_change_the_order_before_it_as_seen_at_the_cut():
    lines = lines_of(CUT)
    at_cut = rfm_table(lines, as_of="2024-01-10")
    assert at_cut[["customer_id", "frequency", "monetary_total"]].values.tolist() == [["a", 1, 100.0]]
    assert OrderLines(lines).purchase_days("2024-01-10")["amount"].tolist() == [100.0]
    assert purchase_orders(lines, "2024-01-10")["order_id"].tolist() == ["1"]
    # with the whole history the order is cancelled: no buyer, no purchase day
    assert rfm_table(lines, as_of="2024-01-25").empty
    assert OrderLines(lines).purchase_days().empty


def test_each_campaign_sees_the_history_before_its_send_day_with_only_those_cancellations():
    lines = lines_of(CUT)
    sends = pd.DataFrame({"campaign_id": ["before", "after"],
                          "send_date": pd.to_datetime(["2024-01-10", "2024-01-25"])})
    rfm = OrderLines(lines).rfm_at_send(sends)
    assert rfm[["campaign_id", "customer_id", "monetary_total"]].values.tolist() == [["before", "a", 100.0]]
    days = OrderLines(lines).purchase_days_at_send(sends)
    assert days[["campaign_id", "amount"]].values.tolist() == [["before", 100.0]]


def test_every_consumer_reads_the_planted_kept_value_of_an_online_retail_like_export():
    export = generate_online_retail(600, seed=11)
    raw, truth = export.lines, export.line_truth
    keep = raw["Customer ID"].notna() & truth["duplicate_of_row"].isna()
    lines = pd.DataFrame({
        "customer_id": raw.loc[keep, "Customer ID"].str.replace(".0", "", regex=False),
        "order_id": raw.loc[keep, "Invoice"], "order_date": raw.loc[keep, "InvoiceDate"],
        "product_id": raw.loc[keep, "StockCode"], "quantity": raw.loc[keep, "Quantity"].astype(float),
        "unit_price": raw.loc[keep, "Price"].astype(float)})
    lines["amount"] = lines["quantity"] * lines["unit_price"]
    lines["is_return"] = lines["order_id"].str.startswith("C") | (lines["quantity"] < 0)
    customers = export.customers[export.customers["in_export"]].set_index("customer_id")
    kept = customers["kept_value"] + customers["adjustment_value"]
    kept_orders = customers["purchase_orders_in_data"] - customers["fully_cancelled_orders"]
    buyers = set(customers.index[(kept > 0.005) & (kept_orders > 0)])
    rfm = rfm_table(lines).set_index("customer_id")
    days = OrderLines(lines).purchase_days()
    day_value = days.groupby("customer_id", observed=True)["amount"].sum()
    day_value.index = day_value.index.astype(str)
    # buyers: the planted ones, but for the rule's known limit (a return matched to the most recent
    # purchase of the same product and price, which may not be the one the shop meant)
    assert len(set(rfm.index) ^ buyers) <= 0.01 * len(buyers) + 1
    assert set(day_value.index) == set(rfm.index)
    common = rfm.index.intersection(customers.index)
    assert np.allclose(rfm.loc[common, "monetary_total"], kept.loc[common], atol=1e-6)   # RFM = kept value
    # lifecycle / CLV read purchase days: the kept value of purchase orders, without the unmatched
    # adjustments (returns of orders before the data) that RFM's net includes
    in_truth = day_value.index.intersection(customers.index)
    matches = np.isclose(day_value.loc[in_truth], customers.loc[in_truth, "kept_value"], atol=1e-6)
    assert matches.mean() >= 0.97
    assert (rfm.loc[common, "frequency"] == kept_orders.loc[common]).mean() >= 0.97
    huge = export.planted["huge_cancellation_customer"]
    assert rfm.loc[huge, ["frequency", "monetary_total"]].tolist() == [1, pytest.approx(2.90)]
