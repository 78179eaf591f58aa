"""The relational core: every order-line computation of segkit, written once as SQL.

Orders, purchase days, the RFM base, the lifetimes-style ``(frequency, recency, T, monetary)``
summary and the behaviour features are :class:`Query` objects: DuckDB-dialect SQL over canonical
relations, composed by name (a query lists the queries it reads; :meth:`Query.text` chains them
as CTEs). DuckDB runs them at every size: over a pandas frame registered as ``lines``
(:func:`frame_lines`, what :mod:`segkit.data.orders` does for tables in memory) or over Parquet/CSV
files (:mod:`segkit.data.engine`, out of core). The same texts are meant to run on Apache Spark
through ``sqlglot.transpile(sql, read="duckdb", write="spark")``, so they keep to a portable subset
(``tests/test_relational.py`` transpiles every query and lints it): no reader functions, no
``QUALIFY``, no ``hash``/quantile functions, money summed as ``DECIMAL(38, 6)`` and cast to
``DOUBLE`` before a division and in result columns, ``date_trunc`` always under a cast, windows
filtered in an outer query. Parameters (``$as_of`` …) are bound by the engine, never formatted in.

The canonical input relation, typed by each engine's reader (:func:`lines_view_sql` for DuckDB)::

    lines(customer_id VARCHAR, order_id VARCHAR, order_date TIMESTAMP, amount DECIMAL(38, 6),
          is_return BOOLEAN, _pos BIGINT, category VARCHAR, channel VARCHAR)

``order_id`` is the line's position (0-based) when the input has no complete order ids (every
line its own order); ``is_return`` is the audit's flag, else ``amount < 0``; ``_pos`` is the
1-based position in input order (NULL where no query needs it); ``category`` and ``channel``
are NULL when unknown, ``'unknown'`` (:data:`segkit.core.labels.UNKNOWN`) for an empty cell.

Definitions (they are the contract of every table built here): the lines of one customer and
order form an order dated by its earliest line; its amount is the net sum of its lines (returns
included); it is a **purchase** when that net is > 0 and not every line is a return or
cancellation (a ``C`` invoice netting positive is no purchase). ``as_of`` (exclusive) comes from
:mod:`segkit.core.dates` (None = the day after the last order).

Examples
--------
>>> lines = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "1", "C2"],
...                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"]),
...                       "amount": [10.0, 2.5, 4.0], "is_return": [False, False, True]})
>>> with frame_lines(lines) as con:
...     run(con, ORDER_LIST)[["customer_id", "order_id", "amount", "is_purchase"]]
  customer_id order_id  amount  is_purchase
0           a        1    12.5         True
1           b       C2     4.0        False
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd

from segkit.core.dates import resolve_as_of
from segkit.core.errors import DataError, format_rows
from segkit.core.labels import UNKNOWN, value_columns

__all__ = [
    "Query", "QUERIES", "ORDERS", "ORDER_LIST", "PURCHASE_DAYS", "RFM_BASE", "RFM_COUNTS",
    "BEHAVIOUR", "CHANNEL_ORDERS", "SUMMARY", "MONEY", "LINE_INPUTS", "lines_view_sql", "frame_lines",
    "run", "order_table_of", "purchase_days_of", "rfm_of", "rfm_counts_of", "rfm_with_info_of", "summary_of", "behaviour_of",
    "last_order_date", "require_columns", "no_missing", "as_datetime",
]

MONEY = "DECIMAL(38, 6)"  # exact sums of money: results do not depend on the summation order
RFM_COLUMNS: tuple[str, ...] = (
    "customer_id", "recency_days", "frequency", "monetary_total", "monetary_avg",
    "tenure_days", "first_order_date", "last_order_date",
)


@dataclass(frozen=True)
class Query:
    """One relation of the core: a single ``SELECT`` (no ``WITH``, no ``ORDER BY``) over the
    relations named in ``uses`` (other queries) and the engine's inputs (``lines`` …).

    ``order_by`` orders the result when it is the final query (listings have an explicit,
    stable order). :meth:`text` is the whole statement; ``provided`` names relations the
    engine already holds (a registered frame, a materialised table), which are not recomputed.
    """

    name: str
    sql: str
    uses: tuple["Query", ...] = ()
    order_by: str = ""

    def chain(self, provided: Sequence[str] = ()) -> list["Query"]:
        """This query and the queries it reads, each once, in dependency order."""
        out: list[Query] = []

        def visit(q: Query) -> None:
            if q.name in provided or any(o.name == q.name for o in out):
                return
            for dep in q.uses:
                visit(dep)
            out.append(q)

        visit(self)
        return out

    def text(self, provided: Sequence[str] = ()) -> str:
        """The full SQL statement (DuckDB dialect): the chain as CTEs, then the ordered result.

        Examples
        --------
        >>> print(Query("b", "SELECT x FROM a", (Query("a", "SELECT 1 AS x"),), "x").text())
        WITH a AS (SELECT 1 AS x),
        b AS (SELECT x FROM a)
        SELECT * FROM b ORDER BY x
        """
        ctes = ",\n".join(f"{q.name} AS ({q.sql.strip()})" for q in self.chain(provided))
        order = f" ORDER BY {self.order_by}" if self.order_by else ""
        return f"WITH {ctes}\nSELECT * FROM {self.name}{order}"


def orders_over(lines: str, name: str, uses: tuple[Query, ...] = ()) -> Query:
    """The order definition over the line relation ``lines`` (one of the core's own relation
    names, never data): one row per (customer, order) with its date (earliest line), net amount,
    purchase flag, first line position and channel (of its first line)."""
    return Query(name, f"""
        SELECT customer_id, order_id,
               min(order_date) AS order_date,
               sum(amount) AS amount,
               sum(amount) > 0 AND NOT bool_and(is_return) AS is_purchase,
               min(_pos) AS first_pos,
               arg_min(channel, _pos) AS channel
        FROM {lines}
        GROUP BY customer_id, order_id""", uses)


ORDERS = orders_over("lines", "orders")

#: Every order, as :func:`segkit.data.orders.order_table` lists them: customers sorted; a customer's
#: orders in the order their id first appears in the lines.
ORDER_LIST = Query("order_list", """
    SELECT customer_id, order_id, order_date, CAST(amount AS DOUBLE) AS amount, is_purchase,
           min(first_pos) OVER (PARTITION BY order_id) AS first_seen
    FROM orders""", (ORDERS,), "customer_id, first_seen, order_id")

#: One row per customer and purchase day (several purchase orders on a day are one purchase day).
PURCHASE_DAYS = Query("purchase_days", """
    SELECT customer_id, CAST(date_trunc('day', order_date) AS TIMESTAMP) AS day,
           CAST(sum(amount) AS DOUBLE) AS amount, count(*) AS orders
    FROM orders
    WHERE is_purchase
    GROUP BY customer_id, CAST(date_trunc('day', order_date) AS TIMESTAMP)""", (ORDERS,), "customer_id, day")

ORDERS_BEFORE = Query("orders_before", "SELECT * FROM orders WHERE order_date < $as_of", (ORDERS,))

RFM_PER_CUSTOMER = Query("rfm_per_customer", """
    SELECT customer_id,
           sum(amount) AS net,
           count(*) FILTER (WHERE is_purchase) AS frequency,
           min(order_date) FILTER (WHERE is_purchase) AS first_order_date,
           max(order_date) FILTER (WHERE is_purchase) AS last_order_date
    FROM orders_before
    GROUP BY customer_id""", (ORDERS_BEFORE,))

#: The RFM base: one row per customer with a purchase before ``$as_of``.
RFM_BASE = Query("rfm_base", """
    SELECT customer_id,
           date_diff('day', CAST(last_order_date AS DATE), CAST($as_of AS DATE)) AS recency_days,
           frequency,
           CAST(net AS DOUBLE) AS monetary_total,
           CAST(net AS DOUBLE) / frequency AS monetary_avg,
           date_diff('day', CAST(first_order_date AS DATE), CAST($as_of AS DATE)) AS tenure_days,
           first_order_date, last_order_date
    FROM rfm_per_customer
    WHERE frequency > 0""", (RFM_PER_CUSTOMER,), "customer_id")

ORDER_COUNTS = Query("order_counts", """
    SELECT count(*) AS orders_total,
           count(*) FILTER (WHERE order_date >= $as_of) AS orders_after_as_of,
           count(*) FILTER (WHERE order_date < $as_of AND is_purchase) AS purchase_orders,
           count(*) FILTER (WHERE order_date < $as_of AND NOT is_purchase) AS non_purchase_orders,
           min(order_date) FILTER (WHERE order_date < $as_of) AS period_start,
           max(order_date) FILTER (WHERE order_date < $as_of) AS period_end,
           CAST(sum(amount) FILTER (WHERE order_date < $as_of) AS DOUBLE) AS net_revenue
    FROM orders""", (ORDERS,))

CUSTOMER_COUNTS = Query("customer_counts", """
    SELECT count(*) FILTER (WHERE NOT before) AS customers_after_as_of_only,
           count(*) FILTER (WHERE before) AS customers_before_as_of,
           count(*) FILTER (WHERE before AND NOT buyer) AS customers_without_purchase
    FROM (SELECT customer_id, bool_or(order_date < $as_of) AS before,
                 bool_or(order_date < $as_of AND is_purchase) AS buyer
          FROM orders GROUP BY customer_id) AS per_customer""", (ORDERS,))

#: The counts behind the RFM notebook's notes (one row).
RFM_COUNTS = Query("rfm_counts", "SELECT * FROM order_counts CROSS JOIN customer_counts",
                   (ORDER_COUNTS, CUSTOMER_COUNTS))

# ----------------------------------------------------------------------------- lifetimes summary
# Input relation ``purchases(c BIGINT, order_date TIMESTAMP, amount DECIMAL)``: ``c`` is a customer
# code (the caller keeps the ids, of any type); ``$end`` is the end of observation, floored to its period.
_SUMMARY_UNITS = {"D": ("day", 86_400), "W": ("week", 604_800), "h": ("hour", 3_600)}


def _summary(freq: str) -> Query:
    unit, seconds = _SUMMARY_UNITS[freq]
    periods = Query(f"summary_periods_{freq}", f"""
        SELECT c, period, sum(amount) AS value
        FROM (SELECT c, CAST(date_trunc('{unit}', order_date) AS TIMESTAMP) AS period, amount FROM purchases) AS p
        WHERE period <= $end
        GROUP BY c, period""")
    ranked = Query(f"summary_ranked_{freq}", f"""
        SELECT c, period, value, row_number() OVER (PARTITION BY c ORDER BY period) AS k
        FROM {periods.name}""", (periods,))
    return Query(f"summary_{freq}", f"""
        SELECT c,
               CAST(count(*) - 1 AS DOUBLE) AS frequency,
               CAST(date_diff('second', min(period), max(period)) AS DOUBLE) / {seconds} / $multiplier AS recency,
               CAST(date_diff('second', min(period), CAST($end AS TIMESTAMP)) AS DOUBLE) / {seconds} / $multiplier AS "T",
               coalesce(CAST(sum(value) FILTER (WHERE k > 1) AS DOUBLE) / nullif(count(*) - 1, 0), 0) AS monetary_value
        FROM {ranked.name}
        GROUP BY c""", (ranked,), "c")


#: lifetimes' ``summary_data_from_transaction_data`` per time unit (``D`` days, ``W`` weeks from Monday, ``h`` hours).
SUMMARY: dict[str, Query] = {freq: _summary(freq) for freq in _SUMMARY_UNITS}

# ----------------------------------------------------------------------------- behaviour features
LINES_BEFORE = Query("lines_before", "SELECT * FROM lines WHERE order_date < $as_of")
BEHAVIOUR_ORDERS = orders_over("lines_before", "behaviour_orders", (LINES_BEFORE,))

PURCHASE_VALUE = Query("purchase_value", """
    SELECT customer_id, count(*) AS n, sum(amount) AS value
    FROM behaviour_orders WHERE is_purchase GROUP BY customer_id""", (BEHAVIOUR_ORDERS,))
DAY_GAPS = Query("day_gaps", """
    SELECT customer_id,
           date_diff('day', lag(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap
    FROM (SELECT DISTINCT customer_id, CAST(order_date AS DATE) AS day
          FROM behaviour_orders WHERE is_purchase) AS days""", (BEHAVIOUR_ORDERS,))
RANKED_GAPS = Query("ranked_gaps", """
    SELECT customer_id, gap,
           row_number() OVER (PARTITION BY customer_id ORDER BY gap) AS i,
           count(*) OVER (PARTITION BY customer_id) AS n
    FROM day_gaps WHERE gap IS NOT NULL""", (DAY_GAPS,))
MEDIAN_GAP = Query("median_gap", """
    SELECT customer_id, avg(gap) AS gap
    FROM ranked_gaps WHERE i = (n + 1) // 2 OR i = (n + 2) // 2
    GROUP BY customer_id""", (RANKED_GAPS,))
RETURNED_MONEY = Query("returned_money", """
    SELECT customer_id,
           -sum(CASE WHEN is_return THEN least(amount, 0) ELSE 0 END) AS returned,
           coalesce(sum(amount) FILTER (WHERE NOT is_return AND amount > 0), 0) AS gross
    FROM lines_before GROUP BY customer_id""", (LINES_BEFORE,))
CATEGORY_VALUE = Query("category_value", """
    SELECT customer_id, category,
           count(*) OVER (PARTITION BY customer_id) AS breadth,
           row_number() OVER (PARTITION BY customer_id ORDER BY sum(amount) DESC, category) AS k
    FROM lines_before WHERE NOT is_return AND amount > 0
    GROUP BY customer_id, category""", (LINES_BEFORE,))
FAVOURITE = Query("favourite", "SELECT customer_id, breadth, category FROM category_value WHERE k = 1",
                  (CATEGORY_VALUE,))

#: Behaviour columns per customer with lines before ``$as_of`` (the RFM base is joined by the caller).
BEHAVIOUR = Query("behaviour", """
    SELECT m.customer_id,
           CAST(p.value AS DOUBLE) / p.n AS aov,
           g.gap AS median_days_between_orders,
           CASE WHEN m.gross > 0
                THEN least(greatest(CAST(m.returned AS DOUBLE) / CAST(m.gross AS DOUBLE), 0), 1)
                ELSE 0 END AS return_share,
           CAST(coalesce(f.breadth, 0) AS DOUBLE) AS category_breadth,
           f.category AS favourite_category
    FROM returned_money AS m
    LEFT JOIN purchase_value AS p ON p.customer_id = m.customer_id
    LEFT JOIN median_gap AS g ON g.customer_id = m.customer_id
    LEFT JOIN favourite AS f ON f.customer_id = m.customer_id""",
                  (RETURNED_MONEY, PURCHASE_VALUE, MEDIAN_GAP, FAVOURITE), "customer_id")

#: Purchase orders per customer and channel (of the order's first line), before ``$as_of``.
CHANNEL_ORDERS = Query("channel_orders", """
    SELECT customer_id, channel, count(*) AS n
    FROM behaviour_orders WHERE is_purchase
    GROUP BY customer_id, channel""", (BEHAVIOUR_ORDERS,), "customer_id, channel")

#: Every query of the core (the portable-subset test transpiles each).
QUERIES: tuple[Query, ...] = (ORDER_LIST, PURCHASE_DAYS, RFM_BASE, RFM_COUNTS, BEHAVIOUR, CHANNEL_ORDERS,
                              *SUMMARY.values())

# ----------------------------------------------------------------------------- DuckDB: typing the input
#: Canonical line columns the core reads; ``lines_view_sql`` types whichever the input has.
LINE_INPUTS: tuple[str, ...] = ("customer_id", "order_id", "order_date", "amount", "is_return", "category",
                                "channel")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lines_view_sql(relation: str, columns: Sequence[str], *, all_order_ids: bool, positions: str | None) -> str:
    """DuckDB's typing of the canonical ``lines`` relation over ``relation`` (a registered frame or a
    file reader), for a source with these ``columns`` (engine-specific, not part of the portable core).

    ``all_order_ids``: the source has an order id on every line (else each line is its own order,
    named by its 0-based position); ``positions``: the SQL of the 1-based line position (None = not
    needed, NULL).
    """
    if not all_order_ids and positions is None:
        raise ValueError("lines without complete order ids need line positions (each line is its own order)")
    pos = positions or "CAST(NULL AS BIGINT)"
    order = "CAST(order_id AS VARCHAR)" if all_order_ids else f"CAST({positions} - 1 AS VARCHAR)"
    is_return = "coalesce(is_return, false)" if "is_return" in columns else "coalesce(amount < 0, false)"
    text = {c: (f"coalesce(CAST({c} AS VARCHAR), {_literal(UNKNOWN)})" if c in columns else "CAST(NULL AS VARCHAR)")
            for c in ("category", "channel")}
    return f"""
        SELECT CAST(customer_id AS VARCHAR) AS customer_id, {order} AS order_id,
               CAST(order_date AS TIMESTAMP) AS order_date, CAST(amount AS {MONEY}) AS amount,
               {is_return} AS is_return, {pos} AS _pos, {text['category']} AS category, {text['channel']} AS channel
        FROM {relation}"""


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str, fix: str) -> None:
    """A :class:`DataError` naming the missing ``columns`` of ``frame`` (and those present)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what}: column(s) {', '.join(map(repr, missing))} missing "
            f"(columns present: {', '.join(map(str, frame.columns)) or 'none'}). {fix}"
        )


def no_missing(values: pd.Series, column: str, what: str) -> None:
    """A :class:`DataError` naming the rows where ``values`` is empty."""
    missing = values.isna()
    if missing.any():
        raise DataError(
            f"{what}: column '{column}' is empty at {format_rows(np.flatnonzero(missing.to_numpy()))}. "
            "Fill or drop those rows (the data audit removes rows without customer id)."
        )


def as_datetime(values: pd.Series, column: str, what: str) -> pd.Series:
    """``values`` as naive datetime64, or a :class:`DataError` naming the unparseable or empty rows."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = dates.isna() & values.notna()
        if bad.any():
            raise DataError(
                f"{what}: column '{column}' has values that are not dates at "
                f"{format_rows(np.flatnonzero(bad.to_numpy()))} (e.g. {values[bad].iloc[0]!r}). "
                "Fix them or set io.date_format in the config."
            )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    missing = dates.isna()
    if missing.any():
        raise DataError(
            f"{what}: column '{column}' is empty at {format_rows(np.flatnonzero(missing.to_numpy()))}. "
            "Drop those rows or fill the dates (the data audit removes them)."
        )
    return dates


@contextlib.contextmanager
def frame_lines(transactions: pd.DataFrame, what: str = "transactions") -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection whose ``lines`` relation is the order lines of a pandas frame.

    The frame is checked (``customer_id, order_date, amount`` present and filled, dates readable:
    :class:`DataError` naming rows otherwise) and scanned by DuckDB in place; only the columns the
    core reads are handed over.
    """
    require_columns(transactions, ["customer_id", "order_date", "amount"], what,
                    "Map your columns to the canonical names in the config (columns.transactions); "
                    "amount can be computed from quantity and unit_price at load.")
    ids = transactions["customer_id"]
    no_missing(ids, "customer_id", what)
    dates = as_datetime(transactions["order_date"], "order_date", what)
    amount = pd.to_numeric(transactions["amount"], errors="coerce").astype("float64")
    no_missing(amount, "amount", what)
    feed = pd.DataFrame({
        "customer_id": ids.astype("string").to_numpy(dtype=object),
        "order_date": dates.to_numpy(dtype="datetime64[ns]"),
        "amount": amount.to_numpy(),
        "_pos": np.arange(1, len(transactions) + 1, dtype=np.int64),
    })
    columns = ["customer_id", "order_date", "amount"]
    all_ids = "order_id" in transactions.columns and bool(transactions["order_id"].notna().all())
    if all_ids:
        feed["order_id"] = transactions["order_id"].astype("string").to_numpy(dtype=object)
        columns.append("order_id")
    if "is_return" in transactions.columns:
        feed["is_return"] = transactions["is_return"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        columns.append("is_return")
    for col in ("category", "channel"):
        if col in transactions.columns:
            feed[col] = transactions[col].astype("string").to_numpy(dtype=object)
            columns.append(col)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("line_feed", feed)
        con.execute("CREATE VIEW lines AS " + lines_view_sql("line_feed", columns, all_order_ids=all_ids,
                                                             positions="_pos"))
        yield con
    finally:
        con.close()


def run(con: duckdb.DuckDBPyConnection, query: Query, params: Mapping[str, Any] | None = None,
        provided: Sequence[str] = ()) -> pd.DataFrame:
    """``query`` run by DuckDB on ``con`` (which holds ``lines`` or the ``provided`` relations),
    its parameters bound by name (only those its text uses)."""
    sql = query.text(provided)
    bound = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
    return con.execute(sql, bound).df()


def _timestamp(value: pd.Timestamp) -> Any:
    return pd.Timestamp(value).to_pydatetime()


def last_order_date(con: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    """The latest line date of ``lines`` (NaT without lines)."""
    return pd.Timestamp(con.execute("SELECT max(order_date) FROM lines").fetchall()[0][0])


def order_table_of(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """:data:`ORDER_LIST` with segkit's dtypes (string ids, datetime64[ns], float64, bool)."""
    frame = run(con, ORDER_LIST)
    return pd.DataFrame({
        "customer_id": frame["customer_id"].astype("string"),
        "order_id": frame["order_id"].astype("string"),
        "order_date": frame["order_date"].astype("datetime64[ns]"),
        "amount": frame["amount"].astype("float64"),
        "is_purchase": frame["is_purchase"].astype(bool),
    })


def purchase_days_of(con: duckdb.DuckDBPyConnection, provided: Sequence[str] = ()) -> pd.DataFrame:
    """:data:`PURCHASE_DAYS` with the customer id as a categorical of sorted ids (each id crosses into
    Python once; the day rows carry integer codes)."""
    con.execute(f"CREATE TEMP TABLE days AS {PURCHASE_DAYS.text(provided)}")
    con.execute("CREATE TEMP TABLE ids AS SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 "
                "AS INTEGER) AS code FROM (SELECT DISTINCT customer_id FROM days) AS d")
    ids = con.sql("SELECT customer_id FROM ids ORDER BY code").to_arrow_table().column("customer_id").to_pandas()
    rows = con.sql("SELECT i.code, d.day, d.amount, d.orders FROM days d JOIN ids i USING (customer_id) "
                   "ORDER BY i.code, d.day").fetchnumpy()
    return pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(np.asarray(rows["code"], dtype=np.int64),
                                                 categories=pd.Index(ids, dtype="string", name="customer_id")),
        "order_date": np.asarray(rows["day"]).astype("datetime64[ns]"),
        "amount": np.asarray(rows["amount"], dtype="float64"),
        "orders": np.asarray(rows["orders"], dtype="int64"),
    })


def rfm_of(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, provided: Sequence[str] = ()) -> pd.DataFrame:
    """:data:`RFM_BASE` as of ``as_of`` with segkit's dtypes, sorted by customer."""
    frame = run(con, RFM_BASE, {"as_of": _timestamp(as_of)}, provided)
    frame["customer_id"] = frame["customer_id"].astype("string")
    for col in ("recency_days", "frequency", "tenure_days"):
        frame[col] = frame[col].astype("int64")
    for col in ("first_order_date", "last_order_date"):
        frame[col] = frame[col].astype("datetime64[ns]")
    frame["monetary_total"] = frame["monetary_total"].astype("float64")
    frame["monetary_avg"] = frame["monetary_avg"].astype("float64")
    return frame[list(RFM_COLUMNS)].reset_index(drop=True)


def rfm_counts_of(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, provided: Sequence[str] = ()) -> dict[str, Any]:
    """:data:`RFM_COUNTS` as of ``as_of`` as a dict of Python numbers and Timestamps."""
    row = run(con, RFM_COUNTS, {"as_of": _timestamp(as_of)}, provided).iloc[0]
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("period_start", "period_end"):
            out[key] = pd.Timestamp(value)
        elif key == "net_revenue":
            out[key] = 0.0 if pd.isna(value) else float(value)
        else:
            out[key] = int(value)
    return out


def rfm_with_info_of(con: duckdb.DuckDBPyConnection, as_of: str | pd.Timestamp | None,
                     provided: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`rfm_with_info` on a DuckDB connection holding ``lines`` (a frame or files): the orders
    are materialised once, then the RFM base and its counts read them."""
    last = last_order_date(con)
    if pd.isna(last):
        raise DataError("transactions: the table has no rows, so there is nothing to score. "
                        "Check the input file and the data audit's cleaning counts.")
    as_of_ts = resolve_as_of(as_of, pd.Series([last]))
    con.execute(f"CREATE TEMP TABLE orders AS {ORDERS.text()}")
    counts = rfm_counts_of(con, as_of_ts, provided=("orders",))
    if counts["orders_after_as_of"] == counts["orders_total"]:
        raise DataError(f"transactions: every order is dated on or after as_of = {as_of_ts.date()}, so "
                        "nothing is left to analyse. Choose a later as_of (or leave it empty: the day "
                        "after the last order).")
    rfm = rfm_of(con, as_of_ts, provided=("orders",))
    info = {
        "as_of": as_of_ts,
        "orders_after_as_of": counts["orders_after_as_of"],
        "customers_after_as_of_only": counts["customers_after_as_of_only"],
        "purchase_orders": counts["purchase_orders"],
        "non_purchase_orders": counts["non_purchase_orders"],
        "customers_without_purchase": counts["customers_without_purchase"],
        "customers_non_positive_net": int((rfm["monetary_total"] <= 0).sum()),
        "period_start": counts["period_start"],
        "period_end": counts["period_end"],
        "net_revenue": counts["net_revenue"],
    }
    return rfm, info


def summary_of(con: duckdb.DuckDBPyConnection, freq: str, end: pd.Timestamp, multiplier: float) -> pd.DataFrame:
    """:data:`SUMMARY` of the ``purchases`` relation on ``con`` (index: customer code ``c``)."""
    frame = run(con, SUMMARY[freq], {"end": _timestamp(end), "multiplier": float(multiplier)}, ("purchases",))
    return frame.set_index("c").astype("float64")


def behaviour_of(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, max_channels: int,
                 rfm: pd.DataFrame) -> pd.DataFrame:
    """The behaviour columns of :func:`segkit.features.customer_table` for the customers of ``rfm``.

    ``recency_days, frequency, monetary_total, tenure_days`` from ``rfm``; ``aov,
    median_days_between_orders, return_share`` and, when the lines before ``as_of`` have them,
    ``category_breadth, favourite_category`` and ``channel_share_<channel>`` (the ``max_channels``
    channels with most purchase orders, the rest as ``other``; shares of the customer's purchase
    orders) from :data:`BEHAVIOUR` and :data:`CHANNEL_ORDERS`. Sorted by customer.
    """
    params = {"as_of": _timestamp(as_of)}
    has_category, has_channel = con.execute(
        "SELECT count(category) > 0, count(channel) > 0 FROM lines WHERE order_date < $as_of", params).fetchall()[0]
    per = run(con, BEHAVIOUR, params)
    base = rfm[["customer_id", "recency_days", "frequency", "monetary_total", "tenure_days"]].copy()
    base["customer_id"] = base["customer_id"].astype("string")
    per = per.set_index(per["customer_id"].astype("string")).reindex(base["customer_id"])
    base["aov"] = per["aov"].to_numpy(dtype=float, na_value=np.nan)
    base["median_days_between_orders"] = per["median_days_between_orders"].to_numpy(dtype=float, na_value=np.nan)
    base["return_share"] = per["return_share"].fillna(0.0).to_numpy(dtype=float)
    if has_category:
        base["category_breadth"] = per["category_breadth"].fillna(0).to_numpy(dtype=float)
        base["favourite_category"] = pd.array(per["favourite_category"].to_numpy(dtype=object), dtype="string")
    if has_channel:
        long = run(con, CHANNEL_ORDERS, params)
        totals = long.groupby("channel")["n"].sum()
        top = sorted(totals.index, key=lambda ch: (-totals[ch], str(ch)))[:max_channels]
        long["channel"] = long["channel"].where(long["channel"].isin(top), "other")
        shares = long.pivot_table(index="customer_id", columns="channel", values="n", aggfunc="sum", fill_value=0)
        shares = shares.div(shares.sum(axis=1), axis=0)
        order = [t for t in top if t in shares.columns] + (["other"] if "other" in shares.columns else [])
        shares = shares[order]
        originals = value_columns("channel_share_", shares.columns)  # column -> channel as typed
        shares.columns = list(originals)
        shares = shares.reindex(base["customer_id"].to_numpy()).fillna(0.0)
        for col in shares.columns:
            base[col] = shares[col].to_numpy(dtype=float)
    base = base.sort_values("customer_id", kind="stable").reset_index(drop=True)
    base.attrs["as_of"] = str(pd.Timestamp(as_of).date())
    base.attrs["original_values"] = originals if has_channel else {}
    return base
