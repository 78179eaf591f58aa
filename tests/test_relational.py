"""The relational core: each order-line computation written once, checked on values, portable to Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlglot
from pandas.testing import assert_frame_equal
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from segkit.core.errors import DataError
from segkit.data.engine import (
    OrderLines,
    behaviour_table_from_files,
    order_table_from_files,
    purchase_days_from_files,
    rfm_with_info_from_files,
)
from segkit.data.orders import order_table, purchase_days, purchase_orders, rfm_with_info
from segkit.data.relational import QUERIES, RFM_COLUMNS, Query
from segkit.features import customer_table

READERS = ("read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto")
FORBIDDEN_FUNCTIONS = ("hash", "quantile_cont", "quantile_disc", "median", "percentile_cont", "random")


# --------------------------------------------------------------------------- portable subset
def portable_subset_problems(sql: str) -> list[str]:
    """What in ``sql`` (DuckDB dialect) the spike found Spark runs wrongly or not at all."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    problems = []
    if tree.find(exp.Qualify):
        problems.append("QUALIFY (filter windows in an outer query)")
    for node in tree.find_all(exp.Func):
        name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
        if name in FORBIDDEN_FUNCTIONS or isinstance(node, (exp.Quantile, exp.Median, exp.PercentileCont)):
            problems.append(f"{name}() differs between engines")
        if name in READERS:
            problems.append(f"{name}() (reading belongs to each engine's reader)")
    for node in tree.find_all(exp.DateTrunc, exp.TimestampTrunc):
        if not isinstance(node.parent, exp.Cast):
            problems.append("date_trunc not under CAST(... AS TIMESTAMP) (Spark returns a zoned timestamp)")
    for node in tree.find_all(exp.Div):
        left = node.this
        while isinstance(left, exp.Div):
            left = left.this
        if not (isinstance(left, exp.Cast) and left.to.is_type("double")):
            problems.append(f"division without a DOUBLE left operand: {node.sql('duckdb')}")
    for node in tree.find_all(exp.Avg):
        if node.find(exp.Cast) and any(c.to.is_type("decimal") for c in node.find_all(exp.Cast)):
            problems.append("avg over DECIMAL (DECIMAL(38, 10) on Spark)")
    if tree.find(exp.Join) and any(j.args.get("using") for j in tree.find_all(exp.Join)):
        problems.append("JOIN USING (write ON)")
    return problems


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.name)
def test_every_core_query_transpiles_to_spark_and_keeps_to_the_portable_subset(query):
    sql = query.text()
    assert portable_subset_problems(sql) == []
    spark = sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)
    assert len(spark) == 1 and spark[0].startswith("WITH ")
    assert "$" not in spark[0]  # parameters become Spark's named markers
    if "$as_of" in sql:
        assert ":as_of" in spark[0]


def test_the_portable_subset_lint_catches_what_the_spike_found_wrong():
    bad = Query("bad", """
        SELECT customer_id, hash(customer_id) AS h, quantile_cont(amount, 0.5) AS q,
               date_trunc('day', order_date) AS d, sum(amount) / count(*) AS mean
        FROM read_parquet('x.parquet')
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY order_date) > 1""")
    found = " | ".join(portable_subset_problems(bad.text()))
    for problem in ("QUALIFY", "hash()", "percentile_cont()", "read_parquet()", "date_trunc not under CAST",
                    "division without a DOUBLE"):
        assert problem in found, problem


def test_queries_compose_their_inputs_once_in_dependency_order():
    a = Query("a", "SELECT 1 AS x")
    b = Query("b", "SELECT x FROM a", (a,))
    c = Query("c", "SELECT * FROM a JOIN b ON true", (a, b), "x")
    assert [q.name for q in c.chain()] == ["a", "b", "c"]
    assert [q.name for q in c.chain(provided=("a",))] == ["b", "c"]
    assert c.text().endswith("SELECT * FROM c ORDER BY x")


# --------------------------------------------------------------------------- values
def tricky_lines() -> pd.DataFrame:
    """Hand-built lines: one order over two days, a C invoice netting positive, a fully returned
    order, zero-amount orders, a customer with only a zero order and one with an order on as_of."""
    rows = [
        ("a", "o1", "2024-01-01 10:00", 10.0, False, "toys", "web"),
        ("a", "o1", "2024-01-03 09:00", 5.0, False, "books", "app"),    # same order, later day
        ("a", "C2", "2024-01-05 00:00", -3.0, True, "toys", "web"),     # C invoice: returned item...
        ("a", "C2", "2024-01-05 00:00", 4.0, True, "postage", "web"),   # ...and postage: nets +1, no purchase
        ("b", "o3", "2024-01-02 00:00", 8.0, False, "toys", "store"),
        ("b", "o3", "2024-01-02 00:00", -8.0, True, "toys", "store"),   # fully returned: net 0
        ("b", "o4", "2024-01-04 00:00", 0.0, False, "toys", "store"),   # zero amount
        ("b", "o5", "2024-01-06 12:00", 2.5, False, "books", "web"),
        ("c", "o6", "2024-01-02 00:00", 0.0, False, "toys", "web"),     # only a zero order: no buyer
        ("d", "o7", "2024-01-10 00:00", 7.0, False, "toys", "web"),     # on as_of: excluded
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount", "is_return",
                                        "category", "channel"])
    frame["order_date"] = pd.to_datetime(frame["order_date"]).astype("datetime64[ns]")
    return frame.astype({"customer_id": "string", "order_id": "string", "category": "string",
                         "channel": "string"})


AS_OF = "2024-01-10"


@pytest.fixture(params=["frame", "parquet", "csv"])
def engine(request, tmp_path):
    """The same computation from a pandas frame and from Parquet / CSV files: (orders, days, rfm, behaviour)."""
    lines = tricky_lines()
    if request.param == "frame":
        return {"orders": lambda: order_table(lines),
                "days": lambda: purchase_days(purchase_orders(lines)),
                "rfm": lambda: rfm_with_info(lines, AS_OF),
                "behaviour": lambda: customer_table(lines, as_of=AS_OF, max_channels=2)}
    path = tmp_path / f"lines.{request.param}"
    lines.to_parquet(path, index=False) if request.param == "parquet" else lines.to_csv(path, index=False)
    return {"orders": lambda: order_table_from_files(path),
            "days": lambda: purchase_days_from_files(path),
            "rfm": lambda: rfm_with_info_from_files(path, AS_OF),
            "behaviour": lambda: customer_table(None, as_of=AS_OF, behaviour=behaviour_table_from_files(
                path, AS_OF, max_channels=2))}


def test_orders_are_net_sums_dated_by_their_first_line_and_purchases_need_a_kept_line(engine):
    expected = pd.DataFrame({
        "customer_id": pd.array(["a", "a", "b", "b", "b", "c", "d"], dtype="string"),
        "order_id": pd.array(["o1", "C2", "o3", "o4", "o5", "o6", "o7"], dtype="string"),
        "order_date": pd.to_datetime(["2024-01-01 10:00", "2024-01-05 00:00", "2024-01-02 00:00", "2024-01-04 00:00",
                                      "2024-01-06 12:00", "2024-01-02 00:00", "2024-01-10 00:00"]).astype("datetime64[ns]"),
        "amount": [15.0, 1.0, 0.0, 0.0, 2.5, 0.0, 7.0],
        "is_purchase": [True, False, False, False, True, False, True],
    })
    assert_frame_equal(engine["orders"](), expected)


def test_purchase_days_sum_purchase_orders_per_customer_and_day(engine):
    days = engine["days"]()
    assert days["customer_id"].astype(str).tolist() == ["a", "b", "d"]
    assert days["order_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-06", "2024-01-10"]
    assert days["amount"].tolist() == [15.0, 2.5, 7.0]
    assert days["orders"].tolist() == [1, 1, 1]
    assert list(days["customer_id"].cat.categories) == ["a", "b", "d"]


def test_the_rfm_base_keeps_buyers_before_as_of_and_counts_what_it_left_out(engine):
    rfm, info = engine["rfm"]()
    expected = pd.DataFrame({
        "customer_id": pd.array(["a", "b"], dtype="string"),
        "recency_days": np.array([9, 4], dtype="int64"),
        "frequency": np.array([1, 1], dtype="int64"),
        "monetary_total": [16.0, 2.5],   # a: 15 + the C invoice's net 1 (money, not a purchase)
        "monetary_avg": [16.0, 2.5],
        "tenure_days": np.array([9, 4], dtype="int64"),
        "first_order_date": pd.to_datetime(["2024-01-01 10:00", "2024-01-06 12:00"]).astype("datetime64[ns]"),
        "last_order_date": pd.to_datetime(["2024-01-01 10:00", "2024-01-06 12:00"]).astype("datetime64[ns]"),
    })
    assert_frame_equal(rfm, expected)
    assert info == {
        "as_of": pd.Timestamp(AS_OF), "orders_after_as_of": 1, "customers_after_as_of_only": 1,
        "purchase_orders": 2, "non_purchase_orders": 3, "cancellation_documents": 1,   # C2: a document
        "customers_without_purchase": 1, "customers_kept_nothing": 0,
        "customers_non_positive_net": 0, "period_start": pd.Timestamp("2024-01-01 10:00"),
        "period_end": pd.Timestamp("2024-01-06 12:00"), "net_revenue": 18.5,
    }


def test_behaviour_features_follow_the_same_orders(engine):
    table = engine["behaviour"]().set_index("customer_id")
    assert table.index.tolist() == ["a", "b"]
    assert table["aov"].tolist() == [15.0, 2.5]
    assert table["median_days_between_orders"].isna().all()          # one purchase day each
    assert table["return_share"].tolist() == [3.0 / 15.0, 8.0 / 10.5]  # returned / bought (zero lines not bought)
    assert table["category_breadth"].tolist() == [2.0, 2.0]
    assert table["favourite_category"].tolist() == ["toys", "toys"]  # b: toys bought for 8 (then returned) > books 2.5
    # purchase orders by the channel of their first line: a o1 web; b o5 web; top 2 = web (+ other unused)
    assert [c for c in table.columns if c.startswith("channel_share_")] == ["channel_share_web"]
    assert table["channel_share_web"].tolist() == [1.0, 1.0]


def test_customers_without_an_id_are_named_by_row_before_anything_is_computed():
    lines = tricky_lines()
    lines.loc[4, "customer_id"] = pd.NA   # a guest line
    with pytest.raises(DataError, match=r"'customer_id' is empty at row 6"):
        order_table(lines)


def test_an_order_whose_lines_cancel_in_floating_point_is_not_a_purchase():
    lines = pd.DataFrame({"customer_id": ["a"] * 3, "order_id": ["1"] * 3,
                          "order_date": pd.to_datetime(["2024-01-01"] * 3),
                          "amount": [0.1, 0.2, -0.3]})   # 5.55e-17 in floats, 0 exactly
    assert order_table(lines)["is_purchase"].tolist() == [False]


# --------------------------------------------------------------------------- campaign sends (one class for lines)
@pytest.fixture(params=["frame", "parquet"])
def as_lines(request, tmp_path):
    """Wrap a frame of lines as OrderLines over the frame itself or over a Parquet file of it."""
    def wrap(frame: pd.DataFrame) -> OrderLines:
        if request.param == "frame":
            return OrderLines(frame)
        path = tmp_path / "lines.parquet"
        frame.to_parquet(path, index=False)
        return OrderLines(path)
    return wrap


def send_lines() -> pd.DataFrame:
    """Lines around sends on 2024-03-01 09:00 and 2024-03-15 09:00 (retention window: 7 days)."""
    rows = [
        ("a", "1", "2024-02-01 10:00", 20.0, False),   # before both sends
        ("a", "2", "2024-03-01 08:00", 5.0, False),    # send day, before the 09:00 send
        ("b", "3", "2024-03-01 18:00", 8.0, False),    # send day, after the send: retained
        ("c", "4", "2024-03-08 09:00", 6.0, False),    # exactly 7 days after the send: retained
        ("d", "5", "2024-03-08 09:00:01", 6.0, False), # one second too late
        ("e", "C6", "2024-03-02 12:00", -9.0, True),   # only a cancelled order: never a purchase
        ("f", "7", "2024-02-20 00:00", 4.0, False),    # bought before the first send only
        ("f", "8", "2024-03-10 00:00", 3.0, False),    # ... and between the sends
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount", "is_return"])
    frame["order_date"] = pd.to_datetime(frame["order_date"], format="ISO8601").astype("datetime64[ns]")
    return frame.astype({"customer_id": "string", "order_id": "string"})


def send_campaign() -> pd.DataFrame:
    ids = ["a", "b", "c", "d", "e", "guest-1"]
    return pd.DataFrame({"campaign_id": "m1", "customer_id": ids, "arm": "email",
                         "sent_at": pd.to_datetime(["2024-03-01 09:00"] * 5 + [None])})


def test_retention_counts_a_purchase_after_the_send_up_to_exactly_n_days_later(as_lines):
    flags = as_lines(send_lines()).retention_flags(send_campaign(), days=7, as_of="2024-04-01")
    # a: bought on the send day but before the send; b: same day after it; c: exactly 7 days later;
    # d: 7 days and a second; e: only a cancelled order; guest-1: unknown in the lines, no own
    # send time (its campaign's first is used)
    assert flags.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert flags.name == "retained"


def test_retention_is_unknown_when_the_window_ends_after_the_data_or_nothing_was_sent(as_lines):
    camp = send_campaign()
    lines = as_lines(send_lines())
    # as_of 2024-03-08 00:00: every 7-day window from 2024-03-01 09:00 ends after it
    assert lines.retention_flags(camp, days=7, as_of="2024-03-08").isna().all()
    # default end: the day after the last purchase (2024-03-11): windows ending 2024-03-08 09:00 are known
    assert lines.retention_flags(camp, days=7).tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    unsent = camp.assign(sent_at=pd.NaT)
    assert lines.retention_flags(unsent, days=7, as_of="2024-04-01").isna().all()


def test_retention_flags_leave_guest_lines_out_of_a_frame():
    lines = send_lines()
    guest = pd.DataFrame({"customer_id": [pd.NA], "order_id": ["9"], "is_return": [False],
                          "order_date": pd.to_datetime(["2024-03-02"]).astype("datetime64[ns]"), "amount": [50.0]})
    lines = pd.concat([lines, guest.astype({"customer_id": "string", "order_id": "string"})], ignore_index=True)
    from segkit.campaign import retention_flags
    got = retention_flags(send_campaign(), lines, days=7, as_of="2024-04-01")
    assert got.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_the_rfm_base_at_each_send_uses_only_lines_before_the_send_day(as_lines):
    sends = pd.DataFrame({"campaign_id": ["m1", "m2"],
                          "send_date": pd.to_datetime(["2024-03-01", "2024-03-15"])})
    rfm = as_lines(send_lines()).rfm_at_send(sends)
    assert list(rfm.columns) == ["campaign_id", *RFM_COLUMNS]
    m1 = rfm[rfm["campaign_id"] == "m1"].set_index("customer_id")
    m2 = rfm[rfm["campaign_id"] == "m2"].set_index("customer_id")
    # m1 (day 2024-03-01): a's order at 08:00 on the send day is not history; e never bought
    assert m1.index.tolist() == ["a", "f"]
    assert m1.loc["a", ["recency_days", "frequency", "monetary_total", "tenure_days"]].tolist() == [29, 1, 20.0, 29]
    assert m1.loc["f", "recency_days"] == 10
    # m2 (2024-03-15): everything up to 2024-03-14; e's cancelled order is no purchase
    assert m2.index.tolist() == ["a", "b", "c", "d", "f"]
    assert m2.loc["a", ["recency_days", "frequency", "monetary_total", "monetary_avg"]].tolist() == [14, 2, 25.0, 12.5]
    assert m2.loc["f", ["recency_days", "frequency", "tenure_days"]].tolist() == [5, 2, 24]
    assert m2.loc["d", "last_order_date"] == pd.Timestamp("2024-03-08 09:00:01")


def test_purchase_days_at_each_send_are_cut_at_the_send_day(as_lines):
    sends = pd.DataFrame({"campaign_id": ["m1", "m2"],
                          "send_date": pd.to_datetime(["2024-03-01", "2024-03-15"])})
    days = as_lines(send_lines()).purchase_days_at_send(sends)
    got = [(r.campaign_id, r.customer_id, str(r.order_date.date()), r.amount, r.orders) for r in days.itertuples()]
    assert got == [("m1", "a", "2024-02-01", 20.0, 1), ("m1", "f", "2024-02-20", 4.0, 1),
                   ("m2", "a", "2024-02-01", 20.0, 1), ("m2", "a", "2024-03-01", 5.0, 1),
                   ("m2", "b", "2024-03-01", 8.0, 1), ("m2", "c", "2024-03-08", 6.0, 1),
                   ("m2", "d", "2024-03-08", 6.0, 1), ("m2", "f", "2024-02-20", 4.0, 1),
                   ("m2", "f", "2024-03-10", 3.0, 1)]


def test_purchase_orders_are_the_orders_flagged_as_purchases_before_as_of(as_lines):
    lines = tricky_lines()
    got = as_lines(lines).purchase_orders(AS_OF)
    assert got[["customer_id", "order_id"]].values.tolist() == [["a", "o1"], ["b", "o5"]]
    assert got["amount"].tolist() == [15.0, 2.5]
    assert purchase_orders(lines)["order_id"].tolist() == ["o1", "o5", "o7"]  # no as_of: all purchases
