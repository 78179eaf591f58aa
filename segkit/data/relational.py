"""The relational core: every order-line computation of segkit, written once as SQL.

Orders, purchase days, the RFM base, the lifetimes-style ``(frequency, recency, T, monetary)``
summary and the behaviour features are :class:`Query` objects: DuckDB-dialect SQL over canonical
relations, composed by name (a query lists the queries it reads; :meth:`Query.text` chains them
as CTEs). DuckDB runs them at every size: over a pandas frame registered as ``lines``
(:func:`frame_lines`, what :mod:`segkit.data.orders` does for tables in memory) or over Parquet/CSV
files (:mod:`segkit.data.engine`, out of core). The same texts run on Apache Spark
(:mod:`segkit.data.spark`) through ``sqlglot.transpile(sql, read="duckdb", write="spark")``: the
runner functions (``rfm_of``, ``purchase_days_of`` …) take a :class:`QueryExecutor` (a DuckDB
connection, :class:`DuckDBExecutor`, or Spark's ``SparkLines``) and :class:`OrderLineTables` gives
every order-level table on either engine. The texts keep to a portable subset
(``tests/test_relational.py`` transpiles every query and lints it): no reader functions, no
``QUALIFY``, no ``hash``/quantile functions, money summed as ``DECIMAL(38, 6)`` and cast to
``DOUBLE`` before a division and in result columns, ``date_trunc`` always under a cast, windows
filtered in an outer query. Parameters (``$as_of`` …) are bound by the engine, never formatted in.

The canonical input relation, typed by each engine's reader (:func:`lines_view_sql` for DuckDB)::

    lines(customer_id VARCHAR, order_id VARCHAR, order_date TIMESTAMP, amount DECIMAL(38, 6),
          is_return BOOLEAN, _pos BIGINT, category VARCHAR, channel VARCHAR,
          product_id VARCHAR, quantity DECIMAL(38, 6), unit_price DECIMAL(38, 6))

``order_id`` is the line's position (0-based) when the input has no complete order ids (every
line its own order); ``is_return`` is the audit's flag, else ``amount < 0``; ``_pos`` is the
1-based position in input order (NULL where no query needs it); ``category`` and ``channel``
are NULL when unknown, ``'unknown'`` (:data:`segkit.core.labels.UNKNOWN`) for an empty cell;
``product_id``, ``quantity`` and ``unit_price`` are NULL when the input has no such column or cell.

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

import abc
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, Union

import duckdb
import numpy as np
import pandas as pd

from segkit.core.dates import day_after, parse_as_of, resolve_as_of
from segkit.core.errors import DataError, format_rows
from segkit.core.labels import UNKNOWN, value_columns

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Query", "QUERIES", "ORDERS", "ORDER_LIST", "PURCHASE_DAYS", "RFM_BASE", "RFM_COUNTS",
    "BEHAVIOUR", "CHANNEL_ORDERS", "SUMMARY", "MONEY", "LINE_INPUTS", "PURCHASE_ORDERS", "RFM_AT_SEND",
    "PURCHASE_DAYS_AT_SEND", "RETENTION", "FIRST_NON_PURCHASE", "first_non_purchase_of", "lines_view_sql",
    "frame_lines", "run", "order_table_of",
    "purchase_orders_of", "purchase_days_of", "rfm_of", "rfm_counts_of", "rfm_with_info_of", "rfm_info_of", "with_non_positive_net", "summary_of",
    "behaviour_of", "channel_columns", "channel_counts", "behaviour_rows", "rfm_at_send_of", "purchase_days_at_send_of", "register_sends", "RECIPIENTS_TYPING", "retention_recipients", "retention_parameters", "retention_of", "last_order_date",
    "RESULT_DTYPES", "typed_result",
    "require_columns", "no_missing", "as_datetime", "sql_literal", "sql_identifier", "LineFeed", "line_feed",
    "CANCELLATION_MATCHES", "KEPT_ORDERS", "KEPT_ORDER_LIST", "KEPT_CUSTOMERS",
    "HEADLINE", "HEADLINE_COUNTS", "headline_of",
    "CancellationMatching", "cancellation_matching_over", "orders_over", "buyers_over", "ORDERS_BEFORE",
    "RECORDED_ORDERS", "LATER_COUNTS",
    "LAST_LINE_DATE", "LINE_DETAILS", "PURCHASE_DAY_CUSTOMERS", "CODED_PURCHASE_DAYS",
    "QueryExecutor", "DuckDBExecutor", "LinesOn", "executor_of", "OrderLineTables",
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
        >>> Query("b", "SELECT x FROM a", order_by="x").text(provided=("b",))
        'SELECT * FROM b ORDER BY x'
        """
        chain = self.chain(provided)
        order = f" ORDER BY {self.order_by}" if self.order_by else ""
        if not chain:  # the engine holds this very relation (materialised): read it in order
            return f"SELECT * FROM {self.name}{order}"
        ctes = ",\n".join(f"{q.name} AS ({q.sql.strip()})" for q in chain)
        return f"WITH {ctes}\nSELECT * FROM {self.name}{order}"


def orders_over(lines: str, name: str, uses: tuple[Query, ...] = (), keys: str = "", where: str = "") -> Query:
    """The order definition over the line relation ``lines`` (one of the core's own relation
    names, never data): one row per (customer, order) with its date (earliest line), net amount,
    recorded amount (before order statuses and refunds: the lines' ``recorded_amount``, their
    ``amount`` where the input has none, :mod:`segkit.data.statuses`), purchase flag, whether it is
    a cancellation document (every line a return), first line position and channel (of its first line).

    ``keys`` (``"campaign_id, send_date, "``: column names with a trailing comma and space, or
    empty) groups further: one order definition per send history (:data:`RFM_AT_SEND`); ``where``
    (a condition on the lines, e.g. ``order_date < $as_of``) keeps only some lines.
    """
    return Query(name, f"""
        SELECT {keys}customer_id, order_id,
               min(order_date) AS order_date,
               sum(amount) AS amount,
               sum(coalesce(recorded_amount, amount)) AS recorded_amount,
               sum(amount) > 0 AND NOT bool_and(is_return) AS is_purchase,
               bool_and(is_return) AS is_cancellation,
               min(_pos) AS first_pos,
               arg_min(channel, _pos) AS channel
        FROM {lines}{f" WHERE {where}" if where else ""}
        GROUP BY {keys}customer_id, order_id""", uses)


def buyers_over(orders: Query, name: str, keys: str = "") -> Query:
    """The customers of ``orders`` who are buyers: a purchase order and a kept total (every order
    and cancellation document summed) above zero; who kept nothing is no buyer. Grouped by ``keys``."""
    return Query(name, f"""
        SELECT {keys}customer_id
        FROM {orders.name}
        GROUP BY {keys}customer_id
        HAVING sum(amount) > 0 AND bool_or(is_purchase)""", (orders,))


def _key_columns(keys: str) -> list[str]:
    return [c.strip() for c in keys.split(",") if c.strip()]


def _same(a: str, b: str, keys: str, *more: str) -> str:
    """``a.k = b.k AND ...`` over ``keys``, ``customer_id`` and ``more`` (join conditions)."""
    return " AND ".join(f"{a}.{c} = {b}.{c}" for c in [*_key_columns(keys), "customer_id", *more])


def _of(alias: str, keys: str) -> str:
    """``keys`` qualified by ``alias`` (``"s.campaign_id, s.send_date, "``)."""
    return "".join(f"{alias}.{c}, " for c in _key_columns(keys))


def purchase_days_over(orders: Query, name: str, keys: str = "") -> Query:
    """One row per buyer (:func:`buyers_over`) and purchase day of ``orders`` (several purchase
    orders on a day are one purchase day: amounts summed, orders counted), grouped further by ``keys``."""
    buyers = buyers_over(orders, f"{name}_buyers", keys)
    return Query(name, f"""
        SELECT {_of('o', keys)}o.customer_id, CAST(date_trunc('day', o.order_date) AS TIMESTAMP) AS day,
               CAST(sum(o.amount) AS DOUBLE) AS amount, count(*) AS orders
        FROM {orders.name} AS o
        JOIN {buyers.name} AS b ON {_same('o', 'b', keys)}
        WHERE o.is_purchase
        GROUP BY {_of('o', keys)}o.customer_id, CAST(date_trunc('day', o.order_date) AS TIMESTAMP)""",
                 (orders, buyers), f"{keys}customer_id, day")


def rfm_base_over(orders: Query, name: str, keys: str = "", as_of: str = "$as_of") -> Query:
    """The RFM base of ``orders`` (already cut at the analysis date ``as_of``, a parameter or a
    column): one row per buyer (a purchase order and a net above zero), grouped further by ``keys``."""
    per_customer = Query(f"{name}_per_customer", f"""
        SELECT {keys}customer_id,
               sum(amount) AS net,
               count(*) FILTER (WHERE is_purchase) AS frequency,
               min(order_date) FILTER (WHERE is_purchase) AS first_order_date,
               max(order_date) FILTER (WHERE is_purchase) AS last_order_date
        FROM {orders.name}
        GROUP BY {keys}customer_id""", (orders,))
    return Query(name, f"""
        SELECT {keys}customer_id,
               date_diff('day', CAST(last_order_date AS DATE), CAST({as_of} AS DATE)) AS recency_days,
               frequency,
               CAST(net AS DOUBLE) AS monetary_total,
               CAST(net AS DOUBLE) / frequency AS monetary_avg,
               date_diff('day', CAST(first_order_date AS DATE), CAST({as_of} AS DATE)) AS tenure_days,
               first_order_date, last_order_date
        FROM {per_customer.name}
        WHERE frequency > 0 AND net > 0""", (per_customer,), f"{keys}customer_id")


# ----------------------------------------------------------------------------- cancellations matched
# Cancellation documents matched to the earlier purchase lines they cancel; the rule in full is in
# :mod:`segkit.data.cancellations`. Key (customer, product, unit value); units taken from the most
# recent earlier purchase first: a stack per key, i.e. running sums reflected at zero (no recursion).
# The lines are aggregated once (the recorded orders, which name the documents); the matching reads
# only return lines and the lines of a cancelled key, and the recorded orders are then adjusted by
# the money each match moves. Cost (DuckDB): without cancellation documents the second pass over the
# lines stops at its first chunk (its join has nothing to match); with documents it reads every line
# once more (about a third of a plain GROUP BY's time), then works on those customers' lines only.


@dataclass(frozen=True)
class CancellationMatching:
    """The matching of one line relation's cancellation documents (:func:`cancellation_matching_over`):
    ``recorded`` (:func:`orders_over` of the lines as they are), ``pairs`` (units and money each document
    takes from each earlier purchase order) and ``orders`` (the recorded orders net of the matches: the
    columns of :func:`orders_over`)."""

    recorded: Query
    pairs: Query
    orders: Query


def cancellation_matching_over(lines: str, name: str, suffix: str = "", uses: tuple[Query, ...] = (),
                               keys: str = "", where: str = "") -> CancellationMatching:
    """The orders over the line relation ``lines`` (a core relation name: ``lines``, the lines before
    ``$as_of``, each send's history) with cancellations matched (named ``name``; the intermediate
    queries ``<query><suffix>``), grouped further by ``keys`` and cut by ``where`` (:func:`orders_over`;
    a condition read in each pass over the lines, so a line view is scanned, never copied). Each history sees
    only its own lines, so a cancellation after a cut never changes an order before it as seen at the cut.

    An order's ``amount`` is its recorded net less the money matched away from it (a document keeps
    what matched nothing); ``is_purchase`` = that amount > 0 and not a cancellation document.
    """
    def named(query: str, sql: str, deps: tuple[Query, ...]) -> Query:
        return Query(f"{query}{suffix}", sql, deps)

    recorded = orders_over(lines, f"recorded_orders{suffix}", uses, keys, where)
    cut = f"(SELECT * FROM {lines} WHERE {where})" if where else lines
    documents = named("cancellation_documents", f"""
        SELECT {keys}customer_id, order_id FROM {recorded.name} WHERE is_cancellation""", (recorded,))
    # one more pass over the lines, keeping those of customers with a document, each with its key. No
    # condition on the lines' own columns here: DuckDB would evaluate it in the scan, on every line (a
    # cast of every amount); lines of zero amount are left out where they are read (< 0, <> 0 below).
    customer_lines = named("match_customer_lines", f"""
        SELECT {_of('l', keys)}l.customer_id, l.order_id, l.order_date, l.product_id, l.amount,
               CASE WHEN l.product_id IS NULL THEN abs(l.amount)
                    WHEN l.quantity <> 0 AND l.unit_price IS NOT NULL THEN abs(l.unit_price) END AS unit_value,
               CASE WHEN l.product_id IS NULL THEN CAST(1 AS {MONEY})
                    WHEN l.quantity <> 0 AND l.unit_price IS NOT NULL THEN abs(l.quantity)
                    ELSE abs(l.amount) END AS units
        FROM {cut} AS l
        JOIN (SELECT DISTINCT {keys}customer_id FROM {documents.name}) AS c ON {_same('l', 'c', keys)}""",
                           (*uses, documents))
    cancelled = named("match_cancelled_lines", f"""
        SELECT {_of('k', keys)}k.customer_id, k.order_id, k.order_date, k.product_id, k.unit_value, k.units
        FROM {customer_lines.name} AS k
        JOIN {documents.name} AS d ON {_same('k', 'd', keys, 'order_id')}
        WHERE k.amount < 0""", (customer_lines, documents))
    # the purchase lines of a key that some document cancels, and the documents' cancellation lines
    signed_units = "sum(CASE WHEN k.amount > 0 THEN k.units WHEN k.amount < 0 THEN -k.units ELSE 0 END)"
    events = named("match_events", f"""
        SELECT {_of('k', keys)}k.customer_id, k.product_id, k.unit_value, k.order_id, false AS is_cancellation,
               min(k.order_date) FILTER (WHERE k.amount <> 0) AS order_date, {signed_units} AS units
        FROM {customer_lines.name} AS k
        JOIN (SELECT DISTINCT {keys}customer_id, product_id, unit_value FROM {cancelled.name}) AS c
          ON {_same('k', 'c', keys)} AND k.product_id IS NOT DISTINCT FROM c.product_id
             AND k.unit_value IS NOT DISTINCT FROM c.unit_value
        LEFT JOIN {documents.name} AS d ON {_same('k', 'd', keys, 'order_id')}
        WHERE d.order_id IS NULL
        GROUP BY {_of('k', keys)}k.customer_id, k.product_id, k.unit_value, k.order_id
        HAVING {signed_units} > 0
        UNION ALL
        SELECT {keys}customer_id, product_id, unit_value, order_id, true AS is_cancellation,
               min(order_date) AS order_date, -sum(units) AS units
        FROM {cancelled.name}
        GROUP BY {keys}customer_id, product_id, unit_value, order_id""", (customer_lines, documents, cancelled))
    running = named("match_running", f"""
        SELECT {keys}customer_id, product_id, unit_value, order_id, is_cancellation, order_date, units,
               dense_rank() OVER (PARTITION BY {keys}customer_id ORDER BY product_id, unit_value) AS k,
               row_number() OVER (PARTITION BY {keys}customer_id, product_id, unit_value
                                  ORDER BY order_date, is_cancellation, order_id) AS seq,
               sum(units) OVER (PARTITION BY {keys}customer_id, product_id, unit_value
                                ORDER BY order_date, is_cancellation, order_id
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
        FROM {events.name}""", (events,))
    # The stack of a key's purchased units not yet cancelled, after (``height``) and before each event:
    # the running sum reflected at zero, ``running - least(lowest running sum so far, 0)``.
    heights = named("match_heights", f"""
        SELECT {keys}customer_id, k, seq, order_id, order_date, is_cancellation, product_id, unit_value,
               running - least(min(running) OVER (PARTITION BY {keys}customer_id, k ORDER BY seq
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0) AS height,
               running - units - least(coalesce(min(running) OVER (PARTITION BY {keys}customer_id, k ORDER BY seq
                                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
                                       0) AS height_before
        FROM {running.name}""", (running,))
    # The units of an earlier purchase ``p`` that a cancellation ``c`` takes: ``c`` removes the levels
    # ``(c.height, c.height_before]`` of the stack; ``p`` still holds ``(p.height_before, lowest height
    # from p up to c]``.
    pairs = named("match_pairs", f"""
        SELECT {_of('c', keys)}c.customer_id, c.order_id AS cancellation_order_id, c.order_date AS cancellation_date,
               p.order_id AS purchase_order_id, p.order_date AS purchase_date, c.product_id, c.unit_value,
               min(s.height) - greatest(p.height_before, c.height) AS units,
               CAST((min(s.height) - greatest(p.height_before, c.height))
                    * coalesce(c.unit_value, CAST(1 AS {MONEY})) AS {MONEY}) AS amount
        FROM {heights.name} AS c
        JOIN {heights.name} AS p
          ON {_same('p', 'c', keys, 'k')} AND p.seq < c.seq AND NOT p.is_cancellation
             AND p.height > c.height AND p.height_before < c.height_before
        JOIN {heights.name} AS s
          ON {_same('s', 'c', keys, 'k')} AND s.seq >= p.seq AND s.seq < c.seq
        WHERE c.is_cancellation
        GROUP BY {_of('c', keys)}c.customer_id, c.order_id, c.order_date, p.order_id, p.order_date, c.product_id,
                 c.unit_value, p.height_before, c.height
        HAVING min(s.height) > greatest(p.height_before, c.height)""", (heights,))
    # the money each match moves: out of the purchase order, into the document (which keeps only what
    # matched nothing); every customer's total is unchanged
    moved = named("match_moved", f"""
        SELECT {keys}customer_id, order_id, sum(amount) AS amount
        FROM (SELECT {keys}customer_id, purchase_order_id AS order_id, -amount AS amount FROM {pairs.name}
              UNION ALL
              SELECT {keys}customer_id, cancellation_order_id AS order_id, amount FROM {pairs.name}) AS moves
        GROUP BY {keys}customer_id, order_id""", (pairs,))
    orders = Query(name, f"""
        SELECT {_of('r', keys)}r.customer_id, r.order_id, r.order_date,
               r.amount + coalesce(m.amount, 0) AS amount,
               r.amount + coalesce(m.amount, 0) > 0 AND NOT r.is_cancellation AS is_purchase,
               r.is_cancellation, r.first_pos, r.channel
        FROM {recorded.name} AS r
        LEFT JOIN {moved.name} AS m ON {_same('r', 'm', keys, 'order_id')}""", (recorded, moved))
    return CancellationMatching(recorded, pairs, orders)


#: The matching over every line (:data:`ORDERS`); ``MATCHING_BEFORE`` over the lines before ``$as_of``.
MATCHING = cancellation_matching_over("lines", "orders")
LINES_BEFORE = Query("lines_before", "SELECT * FROM lines WHERE order_date < $as_of")
MATCHING_BEFORE = cancellation_matching_over("lines", "orders_before", "_before", where="order_date < $as_of")

#: Every order and cancellation document as its lines recorded it (before matching).
RECORDED_ORDERS = MATCHING.recorded
MATCH_PAIRS = MATCHING.pairs

#: The orders of segkit: every order and cancellation document, net of the cancellations matched to it
#: (:mod:`segkit.data.cancellations`): a fully cancelled order is no purchase, a document is no order.
ORDERS = MATCHING.orders
KEPT_ORDERS = ORDERS

#: :data:`ORDERS` as seen at ``$as_of``: only the lines before it are read and matched, so a later
#: cancellation does not reach back into the orders before the cut.
ORDERS_BEFORE = MATCHING_BEFORE.orders

#: Every order, as :func:`segkit.data.orders.order_table` lists them: customers sorted; a customer's
#: orders in the order their id first appears in the lines.
ORDER_LIST = Query("order_list", """
    SELECT customer_id, order_id, order_date, CAST(amount AS DOUBLE) AS amount, is_purchase,
           min(first_pos) OVER (PARTITION BY order_id) AS first_seen
    FROM orders""", (ORDERS,), "customer_id, first_seen, order_id")

BUYERS_BEFORE = buyers_over(ORDERS_BEFORE, "buyers_before")

#: The purchase orders of buyers as seen at ``$as_of`` (:data:`ORDERS_BEFORE`), listed as :data:`ORDER_LIST`.
PURCHASE_ORDERS = Query("purchase_orders", """
    SELECT customer_id, order_id, order_date, amount, first_seen
    FROM (SELECT o.customer_id, o.order_id, o.order_date, o.amount, o.is_purchase,
                 b.customer_id IS NOT NULL AS is_buyer,
                 min(o.first_pos) OVER (PARTITION BY o.order_id) AS first_seen
          FROM orders_before AS o
          LEFT JOIN buyers_before AS b ON b.customer_id = o.customer_id) AS listed
    WHERE is_purchase AND is_buyer""", (ORDERS_BEFORE, BUYERS_BEFORE), "customer_id, first_seen, order_id")

#: One row per buyer and purchase day as seen at ``$as_of`` (several purchase orders on a day are one
#: purchase day).
PURCHASE_DAYS = purchase_days_over(ORDERS_BEFORE, "purchase_days")

#: The RFM base: one row per buyer as seen at ``$as_of``.
RFM_BASE = rfm_base_over(ORDERS_BEFORE, "rfm_base")

#: Orders and documents as their lines record them: how many, how many dated on or after ``$as_of``
#: (what the cut leaves out) and the customers with only such orders.
LATER_COUNTS = Query("later_counts", """
    SELECT sum(n) AS orders_total, sum(n_after) AS orders_after_as_of,
           count(*) FILTER (WHERE first_date >= $as_of) AS customers_after_as_of_only
    FROM (SELECT customer_id, count(*) AS n, count(*) FILTER (WHERE order_date >= $as_of) AS n_after,
                 min(order_date) AS first_date
          FROM (SELECT customer_id, order_id, min(order_date) AS order_date
                FROM lines GROUP BY customer_id, order_id) AS recorded
          GROUP BY customer_id) AS per_customer""")

#: Orders as seen at ``$as_of``: purchase orders, other orders (netting to zero or less: returns,
#: cancellations, free items), cancellation documents (their own count, never orders), period, net revenue.
ORDER_COUNTS = Query("order_counts", """
    SELECT count(*) FILTER (WHERE is_purchase) AS purchase_orders,
           count(*) FILTER (WHERE NOT is_purchase AND NOT is_cancellation) AS non_purchase_orders,
           count(*) FILTER (WHERE is_cancellation) AS cancellation_documents,
           min(order_date) AS period_start,
           max(order_date) AS period_end,
           CAST(sum(amount) AS DOUBLE) AS net_revenue
    FROM orders_before""", (ORDERS_BEFORE,))

CUSTOMER_COUNTS = Query("customer_counts", """
    SELECT count(*) AS customers_before_as_of,
           count(*) FILTER (WHERE NOT purchased) AS customers_without_purchase,
           count(*) FILTER (WHERE purchased AND net <= 0) AS customers_kept_nothing
    FROM (SELECT customer_id, bool_or(is_purchase) AS purchased, sum(amount) AS net
          FROM orders_before GROUP BY customer_id) AS per_customer""", (ORDERS_BEFORE,))

#: The counts behind the RFM notebook's notes as seen at ``$as_of`` (one row): :data:`ORDER_COUNTS`
#: and :data:`CUSTOMER_COUNTS` (what :data:`LATER_COUNTS` adds is read only when lines reach ``$as_of``).
RFM_COUNTS = Query("rfm_counts", "SELECT * FROM order_counts CROSS JOIN customer_counts",
                   (ORDER_COUNTS, CUSTOMER_COUNTS))

#: Customers whose first order is not a purchase (only returns or cancellations, say of orders placed
#: before the data starts, or a zero-value order) or who kept nothing (no buyer: :func:`buyers_over`):
#: when each was first seen and their first purchase (NULL = none, or kept nothing). Every other
#: customer is first seen at their first purchase (:data:`PURCHASE_DAYS`).
FIRST_NON_PURCHASE = Query("first_non_purchase", """
    SELECT customer_id, first_order_date, first_purchase_date
    FROM (SELECT customer_id, min(order_date) AS first_order_date,
                 CASE WHEN sum(amount) > 0 THEN min(order_date) FILTER (WHERE is_purchase) END AS first_purchase_date
          FROM orders GROUP BY customer_id) AS per_customer
    WHERE first_purchase_date IS NULL OR first_order_date < first_purchase_date""", (ORDERS,), "customer_id")

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
#: The behaviour features read the RFM base's orders: the lines before ``$as_of``, cancellations matched.
BEHAVIOUR_ORDERS = ORDERS_BEFORE

PURCHASE_VALUE = Query("purchase_value", """
    SELECT customer_id, count(*) AS n, sum(amount) AS value
    FROM orders_before WHERE is_purchase GROUP BY customer_id""", (BEHAVIOUR_ORDERS,))
DAY_GAPS = Query("day_gaps", """
    SELECT customer_id,
           date_diff('day', lag(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap
    FROM (SELECT DISTINCT customer_id, CAST(order_date AS DATE) AS day
          FROM orders_before WHERE is_purchase) AS days""", (BEHAVIOUR_ORDERS,))
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
    FROM orders_before WHERE is_purchase
    GROUP BY customer_id, channel""", (BEHAVIOUR_ORDERS,), "customer_id, channel")

# ----------------------------------------------------------------------------- campaign sends
# Input relations, registered by the caller: ``sends(campaign_id VARCHAR, send_date TIMESTAMP)``, one row
# per campaign with its segmentation day; ``recipients(recipient_row BIGINT, customer_id VARCHAR,
# sent_at TIMESTAMP)``, one row per campaign row with a known send time.
SEND_KEYS = "campaign_id, send_date, "

#: Every send's history: the lines dated strictly before its day (nothing the e-mail caused).
LINES_AT_SEND = Query("lines_at_send", """
    SELECT s.campaign_id, s.send_date, l.*
    FROM sends AS s JOIN lines AS l ON l.order_date < s.send_date""")
#: Each send's history matched on its own: a cancellation on or after the send day stays out of it.
ORDERS_AT_SEND = cancellation_matching_over("lines_at_send", "orders_at_send", "_at_send", (LINES_AT_SEND,),
                                            SEND_KEYS).orders

#: The RFM base of each send (``campaign_id, send_date`` + the :data:`RFM_BASE` columns, as of ``send_date``).
RFM_AT_SEND = rfm_base_over(ORDERS_AT_SEND, "rfm_at_send", SEND_KEYS, as_of="send_date")

#: The purchase days of each send's history (``campaign_id, send_date`` + the :data:`PURCHASE_DAYS` columns).
PURCHASE_DAYS_AT_SEND = purchase_days_over(ORDERS_AT_SEND, "purchase_days_at_send", SEND_KEYS)

#: When the retention window of a send ends is known: ``$end``, else the day after the last purchase.
RETENTION_END = Query("retention_end", """
    SELECT coalesce(CAST($end AS TIMESTAMP),
                    CAST(date_trunc('day', max(order_date)) AS TIMESTAMP) + INTERVAL 1 DAY) AS end_at
    FROM orders WHERE is_purchase""", (ORDERS,))

#: Per recipient: 1.0 when the customer made a purchase after ``sent_at`` and no later than ``$window``
#: microseconds after it, 0.0 if not, NULL when the window ends after the end of the data.
RETENTION = Query("retention", """
    SELECT r.recipient_row,
           CASE WHEN e.end_at IS NULL OR date_diff('microsecond', r.sent_at, e.end_at) < $window
                THEN CAST(NULL AS DOUBLE)
                ELSE CAST(count(o.order_id) > 0 AS DOUBLE) END AS retained
    FROM recipients AS r
    CROSS JOIN retention_end AS e
    LEFT JOIN orders AS o
      ON o.customer_id = r.customer_id AND o.is_purchase AND o.order_date > r.sent_at
         AND date_diff('microsecond', r.sent_at, o.order_date) <= $window
    GROUP BY r.recipient_row, r.sent_at, e.end_at""", (ORDERS, RETENTION_END), "recipient_row")

#: Every match of a cancellation document's units to an earlier purchase order's (``amount`` = units x
#: unit value, positive).
CANCELLATION_MATCHES = Query("cancellation_matches", """
    SELECT customer_id, cancellation_order_id, cancellation_date, purchase_order_id, purchase_date,
           product_id, CAST(unit_value AS DOUBLE) AS unit_value, CAST(units AS DOUBLE) AS units,
           CAST(amount AS DOUBLE) AS amount
    FROM match_pairs""", (MATCH_PAIRS,),
    "customer_id, cancellation_date, cancellation_order_id, product_id, unit_value, purchase_date DESC, "
    "purchase_order_id")

KEPT_ORDER_VALUES = Query("kept_order_values", """
    SELECT o.customer_id, o.order_id, o.order_date, o.recorded_amount AS recorded, k.amount AS kept,
           k.is_cancellation, o.recorded_amount > 0 AND NOT o.is_cancellation AS was_purchase, k.is_purchase
    FROM recorded_orders AS o
    JOIN orders AS k ON k.customer_id = o.customer_id AND k.order_id = o.order_id""", (RECORDED_ORDERS, ORDERS))

#: Every order and cancellation document: ``recorded`` (net of its own lines before order statuses and
#: refunds), ``kept`` (net of matched cancellations; for a document, what matched nothing: a customer-level
#: adjustment), ``was_purchase`` (recorded > 0, never a document) and ``is_purchase`` (kept > 0, never a
#: document).
KEPT_ORDER_LIST = Query("kept_order_list", """
    SELECT customer_id, order_id, order_date, CAST(recorded AS DOUBLE) AS recorded, CAST(kept AS DOUBLE) AS kept,
           is_cancellation, was_purchase, is_purchase
    FROM kept_order_values""", (KEPT_ORDER_VALUES,), "customer_id, order_date, order_id")

#: Kept value per customer with any line: purchase orders recorded and kept, orders lost to cancellations,
#: cancellation documents and those with an unmatched remainder, money cancelled from orders, orders'
#: kept value, unmatched adjustments, ``kept_total`` (the customer's net) and ``is_buyer`` (kept a
#: purchase order and ``kept_total > 0``).
KEPT_CUSTOMERS = Query("kept_customers", """
    SELECT customer_id,
           count(*) FILTER (WHERE was_purchase) AS recorded_purchases,
           count(*) FILTER (WHERE is_purchase) AS purchase_orders,
           count(*) FILTER (WHERE was_purchase AND NOT is_purchase) AS cancelled_orders,
           count(*) FILTER (WHERE is_cancellation) AS cancellation_documents,
           count(*) FILTER (WHERE is_cancellation AND kept <> 0) AS unmatched_documents,
           CAST(coalesce(sum(recorded - kept) FILTER (WHERE NOT is_cancellation), 0) AS DOUBLE) AS cancelled,
           CAST(coalesce(sum(kept) FILTER (WHERE NOT is_cancellation), 0) AS DOUBLE) AS orders_kept,
           CAST(coalesce(sum(kept) FILTER (WHERE is_cancellation), 0) AS DOUBLE) AS adjustments,
           CAST(sum(kept) AS DOUBLE) AS kept_total,
           sum(kept) > 0 AND count(*) FILTER (WHERE is_purchase) > 0 AS is_buyer
    FROM kept_order_values
    GROUP BY customer_id""", (KEPT_ORDER_VALUES,), "customer_id")

# ----------------------------------------------------------------------------- headline numbers
#: The run's headline numbers (one row), on the kept-value definitions above: ``net_revenue`` (every
#: line's amount summed: purchases less returns and cancellations, matched or not), ``orders_total``
#: (distinct orders and documents) = ``purchase_orders`` (kept value > 0) + ``cancelled_orders``
#: (recorded purchases that cancellations, refunds or statuses took entirely: a refunded or voided
#: order, :mod:`segkit.data.statuses`) + ``cancellation_documents`` (orders made only
#: of return or cancellation lines) + ``other_orders`` (zero or negative net, e.g. free items);
#: ``customers_with_lines`` = ``buyers`` (:data:`KEPT_CUSTOMERS` ``is_buyer``) + ``customers_kept_nothing``
#: (bought, but cancellations, returns or refunds took it all) + ``customers_only_returns`` (no purchase at all:
#: only returns, cancellations or zero-value orders); ``unmatched_documents`` (cancellation documents
#: with a remainder that matched no earlier purchase line) and ``unmatched_value`` (that remainder, the
#: customer-level adjustments: negative for returns).
HEADLINE = Query("headline", f"""
    SELECT CAST(coalesce(o.net, 0) AS DOUBLE) AS net_revenue,
           o.orders_total, o.purchase_orders, o.cancelled_orders, o.cancellation_documents, o.other_orders,
           o.unmatched_documents, CAST(coalesce(o.unmatched, 0) AS DOUBLE) AS unmatched_value,
           c.customers_with_lines, c.buyers, c.customers_kept_nothing, c.customers_only_returns
    FROM (SELECT sum(CAST(kept AS {MONEY})) AS net,
                 count(*) AS orders_total,
                 count(*) FILTER (WHERE is_purchase) AS purchase_orders,
                 count(*) FILTER (WHERE was_purchase AND NOT is_purchase AND NOT is_cancellation) AS cancelled_orders,
                 count(*) FILTER (WHERE is_cancellation) AS cancellation_documents,
                 count(*) FILTER (WHERE NOT is_purchase AND NOT was_purchase AND NOT is_cancellation) AS other_orders,
                 count(*) FILTER (WHERE is_cancellation AND kept <> 0) AS unmatched_documents,
                 sum(CAST(kept AS {MONEY})) FILTER (WHERE is_cancellation) AS unmatched
          FROM kept_order_values) AS o
    CROSS JOIN (SELECT count(*) AS customers_with_lines,
                       count(*) FILTER (WHERE is_buyer) AS buyers,
                       count(*) FILTER (WHERE NOT is_buyer AND recorded_purchases > 0) AS customers_kept_nothing,
                       count(*) FILTER (WHERE NOT is_buyer AND recorded_purchases = 0) AS customers_only_returns
                FROM kept_customers) AS c""", (KEPT_ORDER_VALUES, KEPT_CUSTOMERS))

# ----------------------------------------------------------------------------- what the runners ask besides
#: The latest line date (NULL without lines): the default analysis date is the day after it.
LAST_LINE_DATE = Query("last_line_date", "SELECT max(order_date) AS last_order_date FROM lines")

#: Whether the lines before ``$as_of`` know any category or channel (else no such behaviour column).
LINE_DETAILS = Query("line_details", """
    SELECT count(category) > 0 AS has_category, count(channel) > 0 AS has_channel
    FROM lines WHERE order_date < $as_of""")

#: The customers of :data:`PURCHASE_DAYS` (held as ``purchase_days``) numbered 0, 1, … in id order, and
#: the purchase days by those codes: each id crosses into Python once, the day rows carry integers.
PURCHASE_DAY_CUSTOMERS = Query("purchase_day_customers", """
    SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INTEGER) AS code
    FROM (SELECT DISTINCT customer_id FROM purchase_days) AS d""", (PURCHASE_DAYS,), "code")
CODED_PURCHASE_DAYS = Query("coded_purchase_days", """
    SELECT i.code, d.day, d.amount, d.orders
    FROM purchase_days AS d JOIN purchase_day_customers AS i ON i.customer_id = d.customer_id""",
                            (PURCHASE_DAYS, PURCHASE_DAY_CUSTOMERS), "code, day")

#: Every query of the core (the portable-subset test transpiles each).
QUERIES: tuple[Query, ...] = (ORDER_LIST, PURCHASE_ORDERS, PURCHASE_DAYS, RFM_BASE, RFM_COUNTS, BEHAVIOUR,
                              FIRST_NON_PURCHASE, CHANNEL_ORDERS, RFM_AT_SEND, PURCHASE_DAYS_AT_SEND, RETENTION, *SUMMARY.values(),
                              CANCELLATION_MATCHES, KEPT_ORDER_LIST, KEPT_CUSTOMERS, HEADLINE, LATER_COUNTS,
                              LAST_LINE_DATE, LINE_DETAILS, PURCHASE_DAY_CUSTOMERS, CODED_PURCHASE_DAYS)

# ----------------------------------------------------------------------------- DuckDB: typing the input
#: Canonical line columns the core reads; ``lines_view_sql`` types whichever the input has.
LINE_INPUTS: tuple[str, ...] = ("customer_id", "order_id", "order_date", "amount", "is_return", "category",
                                "channel", "product_id", "quantity", "unit_price", "recorded_amount")


def sql_literal(text: Any) -> str:
    """``text`` as a SQL string literal (quotes doubled): the one quoting of values written into SQL.

    >>> sql_literal("O'Brien")
    "'O''Brien'"
    """
    return "'" + str(text).replace("'", "''") + "'"


def sql_identifier(name: Any) -> str:
    """``name`` as a quoted SQL identifier (double quotes doubled), e.g. a column name from a file.

    >>> print(sql_identifier('Lineitem "qty" sold'))
    "Lineitem ""qty"" sold"
    """
    return '"' + str(name).replace('"', '""') + '"'


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
    text = {c: (f"coalesce(CAST({c} AS VARCHAR), {sql_literal(UNKNOWN)})" if c in columns else "CAST(NULL AS VARCHAR)")
            for c in ("category", "channel")}
    item = {c: f"CAST({c} AS {kind})" if c in columns else f"CAST(NULL AS {kind})"
            for c, kind in (("product_id", "VARCHAR"), ("quantity", MONEY), ("unit_price", MONEY),
                            ("recorded_amount", MONEY))}
    return f"""
        SELECT CAST(customer_id AS VARCHAR) AS customer_id, {order} AS order_id,
               CAST(order_date AS TIMESTAMP) AS order_date, CAST(amount AS {MONEY}) AS amount,
               {is_return} AS is_return, {pos} AS _pos, {text['category']} AS category, {text['channel']} AS channel,
               {item['product_id']} AS product_id, {item['quantity']} AS quantity, {item['unit_price']} AS unit_price,
               {item['recorded_amount']} AS recorded_amount
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


@dataclass(frozen=True)
class LineFeed:
    """The order lines of a pandas frame, checked and reduced to what the core reads (:func:`line_feed`).

    ``frame`` holds ``customer_id, order_date, amount, _pos`` (1-based input position) and whichever of
    :data:`LINE_INPUTS` the input has, as plain NumPy columns (object strings, ``datetime64[ns]``,
    ``float64``, ``bool``); ``columns`` names the canonical ones and ``all_order_ids`` says whether
    every line has an order id: the arguments of :func:`lines_view_sql`, which each engine runs
    over ``frame`` (DuckDB as written, Spark transpiled).
    """

    frame: pd.DataFrame
    columns: tuple[str, ...]
    all_order_ids: bool


def line_feed(transactions: pd.DataFrame, what: str = "transactions") -> LineFeed:
    """Check a frame of order lines and hand over only what the core reads (:class:`LineFeed`).

    ``customer_id, order_date, amount`` must be present and filled and dates readable
    (:class:`DataError` naming rows otherwise).
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
    for col in ("category", "channel", "product_id"):
        if col in transactions.columns:
            feed[col] = transactions[col].astype("string").to_numpy(dtype=object)
            columns.append(col)
    for col in ("quantity", "unit_price", "recorded_amount"):
        if col in transactions.columns:
            feed[col] = pd.to_numeric(transactions[col], errors="coerce").astype("float64").to_numpy()
            columns.append(col)
    return LineFeed(feed, tuple(columns), all_ids)


@contextlib.contextmanager
def frame_lines(transactions: pd.DataFrame, what: str = "transactions") -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection whose ``lines`` relation is the order lines of a pandas frame.

    The frame is checked (:func:`line_feed`) and scanned by DuckDB in place; only the columns the
    core reads are handed over.
    """
    feed = line_feed(transactions, what)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("line_feed", feed.frame)
        con.execute("CREATE VIEW lines AS " + lines_view_sql("line_feed", feed.columns,
                                                             all_order_ids=feed.all_order_ids, positions="_pos"))
        yield con
    finally:
        con.close()


def run(con: duckdb.DuckDBPyConnection, query: Query, params: Mapping[str, Any] | None = None,
        provided: Sequence[str] = ()) -> pd.DataFrame:
    """``query`` run by DuckDB on ``con`` (which holds ``lines`` or the ``provided`` relations),
    its parameters bound by name (only those its text uses)."""
    sql = query.text(provided)
    return con.execute(sql, _used_params(sql, params)).df()


def _used_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``params`` whose ``$name`` marker ``sql`` contains (DuckDB refuses unused ones)."""
    return {k: v for k, v in (params or {}).items() if f"${k}" in sql}


# ----------------------------------------------------------------------------- executors: where queries run
class QueryExecutor(Protocol):
    """Where the relational core's queries run: an engine holding the canonical ``lines`` relation.

    The runner functions below (``*_of``) take one, so that each order-level table is computed by the
    same statements on every engine: :class:`DuckDBExecutor` (a DuckDB connection) and
    :class:`segkit.data.spark.SparkLines` (a Spark session; the texts transpiled). In every method
    ``params`` bind the query's ``$name`` markers (those its text uses) and ``provided`` names
    relations the engine already holds (:meth:`materialise`, :meth:`register`), which are read, not
    recomputed. What differs between engines is only how a pandas frame is typed (:meth:`register`).
    """

    def run(self, query: Query, params: Mapping[str, Any] | None = None,
            provided: Sequence[str] = ()) -> pd.DataFrame:
        """``query``'s rows as a pandas frame, in the query's order."""
        ...

    def first_row(self, query: Query, params: Mapping[str, Any] | None = None,
                  provided: Sequence[str] = ()) -> tuple[Any, ...]:
        """The first row of ``query`` as Python values (None for NULL): for one-row answers."""
        ...

    def arrow(self, query: Query, params: Mapping[str, Any] | None = None,
              provided: Sequence[str] = ()) -> "pa.Table":
        """``query``'s rows as an Arrow table, in the query's order (no Python object per value)."""
        ...

    def materialise(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> None:
        """Compute ``query`` once and hold it as the relation ``query.name`` (replacing one held before)."""
        ...

    def register(self, name: str, frame: pd.DataFrame, typing: str) -> None:
        """Hold ``frame`` as the relation ``name``, its columns typed by ``typing``: a select list over
        them in DuckDB's dialect (``CAST(campaign_id AS VARCHAR) AS campaign_id, …``)."""
        ...


class DuckDBExecutor:
    """:class:`QueryExecutor` on a DuckDB connection holding ``lines`` (:func:`frame_lines`,
    :func:`segkit.data.engine.file_lines`): the statements run as written.

    Examples
    --------
    >>> lines = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"], "amount": [5.0, -1.0],
    ...                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    >>> with frame_lines(lines) as con:
    ...     DuckDBExecutor(con).first_row(LAST_LINE_DATE)
    (datetime.datetime(2024, 1, 2, 0, 0),)
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def run(self, query: Query, params: Mapping[str, Any] | None = None,
            provided: Sequence[str] = ()) -> pd.DataFrame:
        """:func:`run` on this connection."""
        return run(self.con, query, params, provided)

    def first_row(self, query: Query, params: Mapping[str, Any] | None = None,
                  provided: Sequence[str] = ()) -> tuple[Any, ...]:
        """The first row of ``query`` (a tuple of Python values)."""
        sql = query.text(provided)
        return self.con.execute(sql, _used_params(sql, params)).fetchone()

    def arrow(self, query: Query, params: Mapping[str, Any] | None = None,
              provided: Sequence[str] = ()) -> "pa.Table":
        """``query``'s rows as an Arrow table (DuckDB's relation API: no copy of the rows)."""
        sql = query.text(provided)
        return self.con.sql(sql, params=_used_params(sql, params) or None).to_arrow_table()

    def materialise(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> None:
        """``query`` as the temporary table ``query.name`` (spilled to disk beyond the memory limit)."""
        sql = f"CREATE OR REPLACE TEMP TABLE {query.name} AS {query.text(provided)}"
        self.con.execute(sql, _used_params(sql, params))

    def register(self, name: str, frame: pd.DataFrame, typing: str) -> None:
        """``frame`` scanned in place as ``<name>_feed``; ``name`` the view typing it."""
        self.con.register(f"{name}_feed", frame)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {typing} FROM {name}_feed")


#: What the runner functions take: an executor, or a DuckDB connection (run as :class:`DuckDBExecutor`).
LinesOn = Union[QueryExecutor, duckdb.DuckDBPyConnection]


def executor_of(lines: LinesOn) -> QueryExecutor:
    """``lines`` as a :class:`QueryExecutor` (a DuckDB connection wrapped in :class:`DuckDBExecutor`)."""
    return DuckDBExecutor(lines) if isinstance(lines, duckdb.DuckDBPyConnection) else lines


def _timestamp(value: pd.Timestamp) -> Any:
    return pd.Timestamp(value).to_pydatetime()


def last_order_date(lines: LinesOn) -> pd.Timestamp:
    """The latest line date of ``lines`` (NaT without lines: :data:`LAST_LINE_DATE`)."""
    return pd.Timestamp(executor_of(lines).first_row(LAST_LINE_DATE)[0])


#: segkit's dtypes of the columns of order-level results (string ids, datetime64[ns], float64, int64, bool).
RESULT_DTYPES: dict[str, str | type] = {
    "campaign_id": "string", "customer_id": "string", "order_id": "string", "order_date": "datetime64[ns]",
    "amount": "float64", "orders": "int64", "is_purchase": bool, "recency_days": "int64", "frequency": "int64",
    "tenure_days": "int64", "monetary_total": "float64", "monetary_avg": "float64",
    "first_order_date": "datetime64[ns]", "last_order_date": "datetime64[ns]",
}


def typed_result(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a query result with segkit's dtypes (:data:`RESULT_DTYPES`), indexed from 0."""
    return pd.DataFrame({c: frame[c].astype(RESULT_DTYPES[c]) for c in columns}).reset_index(drop=True)


def order_table_of(lines: LinesOn) -> pd.DataFrame:
    """:data:`ORDER_LIST` with segkit's dtypes (string ids, datetime64[ns], float64, bool)."""
    return typed_result(executor_of(lines).run(ORDER_LIST),
                        ["customer_id", "order_id", "order_date", "amount", "is_purchase"])


def purchase_orders_of(lines: LinesOn, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """:data:`PURCHASE_ORDERS` before ``as_of`` (None = every purchase order): ``customer_id, order_id,
    order_date, amount`` with segkit's dtypes, in :func:`order_table_of`'s order."""
    executor = executor_of(lines)
    day = resolve_as_of(as_of, pd.Series([last_order_date(executor)]))  # None: the day after the last line
    frame = executor.run(PURCHASE_ORDERS, {"as_of": None if pd.isna(day) else _timestamp(day)})
    return typed_result(frame, ["customer_id", "order_id", "order_date", "amount"])


def first_non_purchase_of(lines: LinesOn) -> pd.DataFrame:
    """:data:`FIRST_NON_PURCHASE` with segkit's dtypes (string ids, datetime64[ns]; NaT = no purchase)."""
    frame = executor_of(lines).run(FIRST_NON_PURCHASE)
    return pd.DataFrame({
        "customer_id": frame["customer_id"].astype("string"),
        "first_order_date": frame["first_order_date"].astype("datetime64[ns]"),
        "first_purchase_date": frame["first_purchase_date"].astype("datetime64[ns]"),
    })


def purchase_days_of(lines: LinesOn, provided: Sequence[str] = (),
                     as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """:data:`PURCHASE_DAYS` as seen at ``as_of`` (None = every line) with the customer id as a categorical
    of sorted ids (:data:`PURCHASE_DAY_CUSTOMERS`: each id crosses into Python once, the day rows carry
    integer codes)."""
    executor = executor_of(lines)
    params: dict[str, Any] = {}
    if "$as_of" in PURCHASE_DAYS.text(provided):  # else the caller provides the orders, already cut
        day = resolve_as_of(as_of, pd.Series([last_order_date(executor)]))
        params["as_of"] = None if pd.isna(day) else _timestamp(day)
    executor.materialise(PURCHASE_DAYS, params, provided)
    executor.materialise(PURCHASE_DAY_CUSTOMERS, provided=(PURCHASE_DAYS.name,))
    held = (PURCHASE_DAYS.name, PURCHASE_DAY_CUSTOMERS.name)
    ids = executor.arrow(PURCHASE_DAY_CUSTOMERS, provided=held).column("customer_id").to_pandas()
    rows = executor.arrow(CODED_PURCHASE_DAYS, provided=held)
    return pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(rows.column("code").to_numpy().astype(np.int64),
                                                 categories=pd.Index(ids, dtype="string", name="customer_id")),
        "order_date": rows.column("day").to_numpy().astype("datetime64[ns]"),
        "amount": rows.column("amount").to_numpy().astype("float64"),
        "orders": rows.column("orders").to_numpy().astype("int64"),
    })


def rfm_of(lines: LinesOn, as_of: pd.Timestamp, provided: Sequence[str] = ()) -> pd.DataFrame:
    """:data:`RFM_BASE` as of ``as_of`` with segkit's dtypes, sorted by customer."""
    return typed_result(executor_of(lines).run(RFM_BASE, {"as_of": _timestamp(as_of)}, provided), RFM_COLUMNS)


def rfm_counts_of(lines: LinesOn, as_of: pd.Timestamp, provided: Sequence[str] = ()) -> dict[str, Any]:
    """:data:`RFM_COUNTS` as of ``as_of`` as a dict of Python numbers and Timestamps."""
    row = executor_of(lines).run(RFM_COUNTS, {"as_of": _timestamp(as_of)}, provided).iloc[0]
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("period_start", "period_end"):
            out[key] = pd.Timestamp(value)
        elif key == "net_revenue":
            out[key] = 0.0 if pd.isna(value) else float(value)
        else:
            out[key] = int(value)
    return out


#: The counts of :data:`HEADLINE` (every column but ``net_revenue``), in its column order.
HEADLINE_COUNTS: tuple[str, ...] = (
    "orders_total", "purchase_orders", "cancelled_orders", "cancellation_documents", "other_orders",
    "unmatched_documents", "customers_with_lines", "buyers", "customers_kept_nothing", "customers_only_returns",
)


def headline_of(lines: LinesOn) -> dict[str, int | float]:
    """:data:`HEADLINE` of ``lines``: ``net_revenue`` (float, rounded to cents) and the
    :data:`HEADLINE_COUNTS` (ints).

    Examples
    --------
    >>> lines = pd.DataFrame({"customer_id": ["a", "a", "b", "b"], "order_id": ["1", "C1", "2", "3"],
    ...                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
    ...                       "amount": [10.0, -10.0, 5.0, 0.0], "is_return": [False, True, False, False],
    ...                       "product_id": ["p", "p", "q", "r"], "quantity": [1.0, -1.0, 1.0, 1.0],
    ...                       "unit_price": [10.0, 10.0, 5.0, 0.0]})
    >>> with frame_lines(lines) as con:
    ...     h = headline_of(con)
    >>> h["net_revenue"], h["purchase_orders"], h["cancelled_orders"], h["cancellation_documents"], h["other_orders"]
    (5.0, 1, 1, 1, 1)
    >>> h["buyers"], h["customers_kept_nothing"], h["customers_only_returns"], h["unmatched_documents"]
    (1, 1, 0, 0)
    """
    row = executor_of(lines).run(HEADLINE).iloc[0]
    out: dict[str, int | float] = {"net_revenue": round(float(row["net_revenue"]), 2) + 0.0,
                                   "unmatched_value": round(float(row["unmatched_value"]), 2) + 0.0}
    out.update({key: int(row[key]) for key in HEADLINE_COUNTS})
    return out


def rfm_with_info_of(lines: LinesOn, as_of: str | pd.Timestamp | None,
                     provided: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`rfm_with_info` on ``lines`` (a frame or files): the orders as seen at ``as_of``
    (:data:`ORDERS_BEFORE`) are materialised once, then the RFM base and its counts read them; the
    orders the cut leaves out are counted only when lines reach ``as_of``."""
    info = rfm_info_of(lines, as_of, provided)
    rfm = rfm_of(executor_of(lines), info["as_of"], provided=(ORDERS_BEFORE.name,))
    return rfm, with_non_positive_net(info, int((rfm["monetary_total"] <= 0).sum()))


def with_non_positive_net(info: dict[str, Any], customers: int) -> dict[str, Any]:
    """:func:`rfm_info_of`'s counts with ``customers_non_positive_net`` (the RFM base's customers whose
    ``monetary_total`` is ≤ 0, counted wherever the base is) in its place, as :func:`rfm_with_info_of` has it."""
    items = list(info.items())
    at = list(info).index("customers_kept_nothing") + 1
    return dict(items[:at] + [("customers_non_positive_net", int(customers))] + items[at:])


def rfm_info_of(lines: LinesOn, as_of: str | pd.Timestamp | None,
                provided: tuple[str, ...] = ()) -> dict[str, Any]:
    """The counts of :func:`rfm_with_info_of` but ``customers_non_positive_net`` (which counts the RFM
    base's rows), without the base: the orders as seen at ``as_of`` (:data:`ORDERS_BEFORE`) are left
    materialised, so that :data:`RFM_BASE` with ``provided=(ORDERS_BEFORE.name,)`` reads them next (on Spark,
    as a frame that stays on the executors)."""
    executor = executor_of(lines)
    last = last_order_date(executor)
    if pd.isna(last):
        raise DataError("transactions: the table has no rows, so there is nothing to score. "
                        "Check the input file and the data audit's cleaning counts.")
    as_of_ts = resolve_as_of(as_of, pd.Series([last]))
    params = {"as_of": _timestamp(as_of_ts)}
    executor.materialise(ORDERS_BEFORE, params)
    counts = rfm_counts_of(executor, as_of_ts, provided=(ORDERS_BEFORE.name,))
    later = {"orders_after_as_of": 0, "customers_after_as_of_only": 0}
    if last >= as_of_ts:  # lines on or after as_of: count what the cut leaves out
        row = executor.run(LATER_COUNTS, params).iloc[0]
        later = {key: int(row[key]) for key in later}
        if later["orders_after_as_of"] == int(row["orders_total"]):
            raise DataError(f"transactions: every order is dated on or after as_of = {as_of_ts.date()}, so "
                            "nothing is left to analyse. Choose a later as_of (or leave it empty: the day "
                            "after the last order).")
    return {
        "as_of": as_of_ts,
        **later,
        "purchase_orders": counts["purchase_orders"],
        "non_purchase_orders": counts["non_purchase_orders"],
        "cancellation_documents": counts["cancellation_documents"],
        "customers_without_purchase": counts["customers_without_purchase"],
        "customers_kept_nothing": counts["customers_kept_nothing"],
        "period_start": counts["period_start"],
        "period_end": counts["period_end"],
        "net_revenue": counts["net_revenue"],
    }


def kept_share(kept_total: Any, purchase_total: Any) -> np.ndarray:
    """Share of the value of a customer's purchase orders that the customer kept overall.

    A cancellation that matches no earlier purchase line (an order placed before the data starts,
    another unit price, a refund with only an amount) stays a customer-level adjustment: the
    customer's kept value (``kept_total``, RFM's ``monetary_total``) is then below the sum of the
    kept values of their purchase orders (``purchase_total``). Order values that feed spend models
    (Gamma-Gamma, expected order value) and the clusters' order value are multiplied by this share,
    so such an adjustment is spread over the customer's purchases in proportion to their value;
    1 when nothing is left unmatched (or either total is missing), 0 when the customer kept nothing.

    Examples
    --------
    >>> kept_share([812.85, 100.0, 5.0, None], [168472.50, 100.0, 0.0, 10.0]).round(6).tolist()
    [0.004825, 1.0, 1.0, 1.0]
    """
    kept = np.asarray(pd.to_numeric(pd.Series(kept_total, dtype="object"), errors="coerce"), dtype="float64")
    total = np.asarray(pd.to_numeric(pd.Series(purchase_total, dtype="object"), errors="coerce"), dtype="float64")
    share = np.ones(len(kept))
    known = np.isfinite(kept) & np.isfinite(total) & (total > 0)
    share[known] = np.clip(kept[known] / total[known], 0.0, 1.0)
    return share


def summary_of(lines: LinesOn, freq: str, end: pd.Timestamp, multiplier: float) -> pd.DataFrame:
    """:data:`SUMMARY` of the ``purchases`` relation of ``lines`` (index: customer code ``c``)."""
    frame = executor_of(lines).run(SUMMARY[freq], {"end": _timestamp(end), "multiplier": float(multiplier)},
                                   ("purchases",))
    return frame.set_index("c").astype("float64")


def behaviour_of(lines: LinesOn, as_of: pd.Timestamp, max_channels: int, rfm: pd.DataFrame) -> pd.DataFrame:
    """The behaviour columns of :func:`segkit.features.customer_table` for the customers of ``rfm``.

    ``recency_days, frequency, monetary_total, tenure_days`` from ``rfm``; ``aov,
    median_days_between_orders, return_share`` and, when the lines before ``as_of`` have them,
    ``category_breadth, favourite_category`` and ``channel_share_<channel>`` (the ``max_channels``
    channels with most purchase orders, the rest as ``other``; shares of the customer's purchase
    orders) from :data:`BEHAVIOUR` and :data:`CHANNEL_ORDERS`. Sorted by customer.
    """
    executor = executor_of(lines)
    params = {"as_of": _timestamp(as_of)}
    has_category, has_channel = executor.first_row(LINE_DETAILS, params)
    per = executor.run(BEHAVIOUR, params)
    counts, channels = None, None
    if has_channel:
        long = executor.run(CHANNEL_ORDERS, params)
        channels = channel_columns(long.groupby("channel")["n"].sum(), max_channels)
        counts = channel_counts(long, channels)
    base = behaviour_rows(rfm, per, counts, channels, bool(has_category))
    originals = base.attrs["original_values"]
    base = base.sort_values("customer_id", kind="stable").reset_index(drop=True)
    base.attrs["as_of"] = str(pd.Timestamp(as_of).date())
    base.attrs["original_values"] = originals
    return base


def channel_columns(totals: pd.Series, max_channels: int) -> list[str]:
    """The channels with a share column: the ``max_channels`` with most purchase orders (``totals``: orders
    per channel over every customer; ties by name), then ``other`` when there are more channels."""
    top = sorted(totals.index, key=lambda ch: (-totals[ch], str(ch)))[:max_channels]
    return top + (["other"] if len(totals) > len(top) else [])


def channel_counts(long: pd.DataFrame, channels: Sequence[str]) -> pd.DataFrame:
    """Purchase orders per customer (index) and channel of ``channels`` (columns) from :data:`CHANNEL_ORDERS`'
    rows (``customer_id, channel, n``; every customer's, or one partition's): a channel not among ``channels``
    is counted as ``other``. Customers without a row are absent (:func:`behaviour_rows` gives them zeros).

    Examples
    --------
    >>> long = pd.DataFrame({"customer_id": ["a", "a", "b"], "channel": ["web", "shop", "app"], "n": [2, 1, 4]})
    >>> channel_counts(long, ["web", "other"]).to_dict("index")
    {'a': {'other': 1, 'web': 2}, 'b': {'other': 4, 'web': 0}}
    >>> channel_counts(long.iloc[:0], ["web", "other"]).shape
    (0, 0)
    """
    if long.empty:
        return pd.DataFrame(index=pd.Index([], dtype="string", name="customer_id"))
    named = long["channel"].where(long["channel"].isin(list(channels)), "other")
    return long.assign(channel=named).pivot_table(index="customer_id", columns="channel", values="n",
                                                  aggfunc="sum", fill_value=0)


def behaviour_rows(rfm: pd.DataFrame, per: pd.DataFrame, channel_counts: pd.DataFrame | None,
                   channels: Sequence[str] | None, has_category: bool) -> pd.DataFrame:
    """The behaviour columns of the customers of ``rfm`` (in its order) from :data:`BEHAVIOUR`'s rows and the
    purchase orders per channel: the rest of :func:`behaviour_of`, for all customers or one partition of them.

    Parameters
    ----------
    rfm : DataFrame
        ``customer_id, recency_days, frequency, monetary_total, tenure_days`` (the RFM base).
    per : DataFrame
        :data:`BEHAVIOUR`'s rows (any customers; those of ``rfm`` are read).
    channel_counts : DataFrame or None
        Purchase orders per customer (index) and channel of ``channels`` (columns; a channel not among
        them counted as ``other``); None = the lines have no channel.
    channels : sequence of str or None
        :func:`channel_columns` of every customer's orders (the share columns, in order).
    has_category : bool
        Whether the lines know categories (adds ``category_breadth, favourite_category``).

    Returns
    -------
    DataFrame
        One row per row of ``rfm``; ``attrs["original_values"]``: share column → channel as typed.
    """
    base = rfm[["customer_id", "recency_days", "frequency", "monetary_total", "tenure_days"]].copy()
    base["customer_id"] = base["customer_id"].astype("string")
    per = per.set_index(per["customer_id"].astype("string")).reindex(base["customer_id"])
    aov = per["aov"].to_numpy(dtype=float, na_value=np.nan)
    # unmatched cancellations (customer-level adjustments) come out of the order value too
    base["aov"] = aov * kept_share(base["monetary_total"].to_numpy(dtype=float), aov * base["frequency"].to_numpy(dtype=float))
    base["median_days_between_orders"] = per["median_days_between_orders"].to_numpy(dtype=float, na_value=np.nan)
    base["return_share"] = per["return_share"].fillna(0.0).to_numpy(dtype=float)
    if has_category:
        base["category_breadth"] = per["category_breadth"].fillna(0).to_numpy(dtype=float)
        base["favourite_category"] = pd.array(per["favourite_category"].to_numpy(dtype=object), dtype="string")
    originals: dict[str, str] = {}
    if channel_counts is not None and channels is not None:
        shares = channel_counts.reindex(columns=list(channels), fill_value=0)
        shares = shares.div(shares.sum(axis=1), axis=0)
        originals = value_columns("channel_share_", shares.columns)  # column -> channel as typed
        shares.columns = list(originals)
        shares = shares.reindex(base["customer_id"].to_numpy()).fillna(0.0)
        for col in shares.columns:
            base[col] = shares[col].to_numpy(dtype=float)
    base.attrs["original_values"] = originals
    return base


def register_sends(executor: QueryExecutor, sends: pd.DataFrame) -> None:
    """Register ``sends`` (``campaign_id``, ``send_date``) as the relation the send queries read."""
    executor.register("sends", pd.DataFrame({
        "campaign_id": sends["campaign_id"].astype("string").to_numpy(dtype=object),
        "send_date": pd.to_datetime(sends["send_date"]).to_numpy(dtype="datetime64[ns]"),
    }), "CAST(campaign_id AS VARCHAR) AS campaign_id, CAST(send_date AS TIMESTAMP) AS send_date")


def rfm_at_send_of(lines: LinesOn, sends: pd.DataFrame) -> pd.DataFrame:
    """:data:`RFM_AT_SEND` for ``sends`` (one row per campaign: ``campaign_id, send_date``):
    ``campaign_id`` + the :func:`rfm_of` columns and dtypes, sorted by campaign and customer."""
    executor = executor_of(lines)
    register_sends(executor, sends)
    return typed_result(executor.run(RFM_AT_SEND), ["campaign_id", *RFM_COLUMNS])


def purchase_days_at_send_of(lines: LinesOn, sends: pd.DataFrame) -> pd.DataFrame:
    """:data:`PURCHASE_DAYS_AT_SEND` for ``sends``: ``campaign_id, customer_id, order_date`` (the day),
    ``amount, orders``, sorted by campaign, customer and day."""
    executor = executor_of(lines)
    register_sends(executor, sends)
    frame = executor.run(PURCHASE_DAYS_AT_SEND).rename(columns={"day": "order_date"})
    return typed_result(frame, ["campaign_id", "customer_id", "order_date", "amount", "orders"])


#: How the ``recipients`` relation of :data:`RETENTION` is typed (``recipient_row`` a row number, the send time
#: known: rows without one are not recipients).
RECIPIENTS_TYPING = "recipient_row, CAST(customer_id AS VARCHAR) AS customer_id, CAST(sent_at AS TIMESTAMP) AS sent_at"


def retention_parameters(days: int, end: pd.Timestamp | None) -> dict[str, Any]:
    """:data:`RETENTION`'s parameters: the window of ``days`` (microseconds) and its last possible end
    (None = the day after the last purchase)."""
    return {"end": None if end is None or pd.isna(end) else _timestamp(end), "window": int(days) * 86_400 * 1_000_000}


def retention_recipients(campaign: pd.DataFrame, first_sent: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The recipients of :func:`retention_of`: ``customer_id`` (stripped) and ``sent_at``, where a row without a
    send time takes its campaign's first (``first_sent``: campaign id -> time, for rows that are a part of
    the campaigns' rows; None = the earliest among ``campaign``'s rows)."""
    sent = pd.to_datetime(campaign["sent_at"], errors="coerce") if "sent_at" in campaign else \
        pd.Series(pd.NaT, index=campaign.index, dtype="datetime64[ns]")
    if first_sent is None:
        first = sent.groupby(pd.factorize(campaign["campaign_id"])[0]).transform("min")
    else:
        first = pd.to_datetime(campaign["campaign_id"].astype(str).map(dict(first_sent)))
    return pd.DataFrame({"customer_id": campaign["customer_id"].astype("string").str.strip().to_numpy(),
                         "sent_at": sent.fillna(first).to_numpy(dtype="datetime64[ns]")})


def retention_of(lines: LinesOn, recipients: pd.DataFrame, days: int, end: pd.Timestamp | None) -> np.ndarray:
    """:data:`RETENTION` of ``recipients`` (``customer_id, sent_at``, NaT = unknown send time): one
    flag per row, 1.0 retained within ``days``, 0.0 not, NaN unknown (no send time, or the window ends
    after ``end``; None = the day after the last purchase)."""
    executor = executor_of(lines)
    sent = pd.to_datetime(recipients["sent_at"]).to_numpy(dtype="datetime64[ns]")
    known = ~np.isnat(sent)
    executor.register("recipients", pd.DataFrame({
        "recipient_row": np.flatnonzero(known).astype(np.int64),
        "customer_id": recipients["customer_id"].astype("string").to_numpy(dtype=object)[known],
        "sent_at": sent[known],
    }), RECIPIENTS_TYPING)
    frame = executor.run(RETENTION, retention_parameters(days, end))
    out = np.full(len(recipients), np.nan)
    out[frame["recipient_row"].to_numpy(dtype=np.int64)] = frame["retained"].to_numpy(dtype=float, na_value=np.nan)
    return out


# ----------------------------------------------------------------------------- order lines on an engine
_T = TypeVar("_T")


def _analysis_date(executor: QueryExecutor, as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    """``as_of`` parsed, or the day after the last line of ``lines`` (:mod:`segkit.core.dates`)."""
    return parse_as_of(as_of) if as_of is not None else day_after(last_order_date(executor))


class OrderLineTables(abc.ABC):
    """The order-level tables of some order lines, each one runner function of the core on one engine.

    :class:`segkit.data.engine.OrderLines` (DuckDB) and :class:`segkit.data.spark.SparkOrderLines`
    (Apache Spark) implement :meth:`run`: they hold the lines and hand a :class:`QueryExecutor` to a
    task. The public methods are defined here once, so both give the same columns, dtypes, row order
    and values; the steps take either.

    Attributes
    ----------
    source : DataFrame, path, glob or list of paths
        The canonical order lines (``transactions_clean``).
    """

    source: Any

    @property
    def in_memory(self) -> bool:
        """Whether the lines are a pandas frame (else files)."""
        return isinstance(self.source, pd.DataFrame)

    @abc.abstractmethod
    def run(self, task: Callable[[QueryExecutor], _T], *, positions: bool = False, what: str | None = None,
            canonical: bool = False) -> _T:
        """``task(executor)`` on an executor holding ``lines``.

        ``positions``: number file lines in input order (listings in input order, channels of an
        order's first line); ``what``: what a file-reading error message advises (None = the engine's
        advice); ``canonical``: first check that no line misses an id, date or amount.
        """

    def orders(self) -> pd.DataFrame:
        """:func:`segkit.data.orders.order_table`: one row per order (:data:`ORDER_LIST`)."""
        return self.run(order_table_of, positions=True, canonical=True)

    def purchase_orders(self, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """Purchase orders dated before ``as_of`` (None = all): ``customer_id, order_id, order_date, amount``."""
        day = None if as_of is None else parse_as_of(as_of)
        return self.run(lambda executor: purchase_orders_of(executor, day), positions=True, canonical=True)

    def purchase_days(self, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """:func:`segkit.data.orders.purchase_days` of the buyers' purchase orders as seen at ``as_of``
        (only lines before it read and matched; None = every line), categorical customer ids."""
        day = None if as_of is None else parse_as_of(as_of)
        return self.run(lambda executor: purchase_days_of(executor, as_of=day), canonical=True)

    def first_non_purchase(self) -> pd.DataFrame:
        """:func:`segkit.data.orders.first_non_purchase`: customers whose first order is not a purchase."""
        return self.run(first_non_purchase_of, canonical=True)

    def rfm(self, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """The RFM base as of ``as_of`` (None = the day after the last line)."""
        return self.run(lambda executor: rfm_of(executor, _analysis_date(executor, as_of)))

    def rfm_with_info(self, as_of: str | pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
        """:meth:`rfm` plus the counts behind the RFM notebook's notes (:func:`segkit.data.orders.rfm_with_info`)."""
        return self.run(lambda executor: rfm_with_info_of(executor, as_of))

    def headline(self) -> dict[str, int | float]:
        """The headline numbers of the lines (:func:`headline_of`): net revenue, purchase orders, fully
        cancelled orders, cancellation documents, buyers and the customers who kept nothing or only returned."""
        return self.run(headline_of, canonical=True)

    def has_purchase_before(self, day: str | pd.Timestamp) -> bool:
        """Whether any purchase order is dated before ``day`` (else there is nobody to segment)."""
        return self.run(lambda executor: rfm_counts_of(executor, parse_as_of(day))["purchase_orders"] > 0)

    def behaviour(self, as_of: str | pd.Timestamp | None = None, max_channels: int = 6,
                  rfm: pd.DataFrame | None = None) -> pd.DataFrame:
        """The behaviour columns of :func:`segkit.features.customer_table` as of ``as_of``.

        :func:`behaviour_of` for the customers of ``rfm`` (default: the RFM base as of ``as_of``);
        ``attrs["as_of"]`` is the analysis date.

        Raises
        ------
        DataError
            No dated line, or no purchase before ``as_of``.
        """
        what = "The features need customer_id, order_date and amount (map them in columns.transactions)."

        def task(executor: QueryExecutor) -> pd.DataFrame:
            if as_of is None and pd.isna(last_order_date(executor)):
                raise DataError(f"{self.source if not self.in_memory else 'transactions'}: no dated order lines "
                                "(column 'order_date'); nothing to cluster.")
            as_of_ts = _analysis_date(executor, as_of)
            base = rfm_of(executor, as_of_ts) if rfm is None else rfm
            if base.empty:
                raise DataError(f"transactions: no purchase (order with net amount > 0) before as_of = "
                                f"{as_of_ts.date()}; nothing to cluster.")
            return behaviour_of(executor, as_of_ts, max_channels, base)

        return self.run(task, positions=True, what=what)

    def rfm_at_send(self, sends: pd.DataFrame) -> pd.DataFrame:
        """The RFM base of every send's history (:data:`RFM_AT_SEND`).

        ``sends``: ``campaign_id, send_date`` (the day segments are taken at; only lines dated
        strictly before it count). One row per campaign and buying customer.
        """
        return self.run(lambda executor: rfm_at_send_of(executor, sends))

    def purchase_days_at_send(self, sends: pd.DataFrame) -> pd.DataFrame:
        """The purchase days of every send's history (:data:`PURCHASE_DAYS_AT_SEND`)."""
        return self.run(lambda executor: purchase_days_at_send_of(executor, sends))

    def retention_flags(self, campaign: pd.DataFrame, days: int,
                        as_of: str | pd.Timestamp | None = None) -> pd.Series:
        """:func:`segkit.campaign.retention_flags` of ``campaign`` (:data:`RETENTION`).

        1.0 when the customer made a purchase after ``sent_at`` and no later than ``days`` after
        it, 0.0 if not, NaN when unknown: no send time in the whole campaign (a row without one
        uses its campaign's first), or the window ends after ``as_of`` (None = the day after the
        last purchase).
        """
        recipients = retention_recipients(campaign)
        end = None if as_of is None else pd.Timestamp(as_of)
        flags = self.run(lambda executor: retention_of(executor, recipients, days, end))
        return pd.Series(flags, index=campaign.index, name="retained")
