"""Cancellations matched to what they cancel, and one definition of kept value per order and customer.

Many exports (UCI Online Retail: ``C…`` invoices with negative quantities) record a cancellation or
return as a document of its own that names no order. Counted as it stands, an order cancelled 12
minutes later is still a purchase. The relational core (:mod:`segkit.data.relational`:
:data:`~segkit.data.relational.CANCELLATION_MATCHES`, :data:`~segkit.data.relational.ORDERS`,
:data:`~segkit.data.relational.KEPT_ORDER_LIST`, :data:`~segkit.data.relational.KEPT_CUSTOMERS`)
matches such documents to the earlier purchases they cancel; this module runs those queries. Every
order-level table of segkit (RFM, behaviour features, purchase days for lifecycle and CLV, segments and
purchase days at each campaign send, retention, first non-purchase) reads these kept orders, each cut
at its own date before matching (:func:`~segkit.data.relational.cancellation_matching_over`).

The matching rule
-----------------
* A **cancellation document** is an order (customer, order id) whose lines are all returns
  (``is_return``: a ``C`` invoice, a negative quantity or amount; without order ids every line is its
  own order, so a single negative line). Its lines with a negative amount are **cancellation lines**.
  A return line inside an order that also has purchase lines refers to that order by its id and nets
  there, as before; it is not matched again.
* A cancellation line is matched to the **same customer's earlier purchase lines of the same key**:
  same ``product_id`` and the same unit price (``abs(unit_price)``) when the line has a product, a
  non-zero quantity and a price; then quantities are matched (``abs(quantity)``). A line with a product
  but no quantity or price is matched on its product alone, money for money (its units are its amount).
* **Without product ids** (CDNOW-like data) a cancellation line matches only an earlier purchase line
  of the same customer, also without product, of exactly the same amount, line for line. Returning
  part of a line (12.00 of 24.00) therefore matches nothing and stays an adjustment: matching money
  greedily across a customer's orders would guess, and could wipe out orders that were kept.
* Per key, purchases are a stack: a cancellation takes **quantity up to what is left, from the most
  recent earlier purchase first**, and may split over several earlier purchase orders; a later
  cancellation cannot take what an earlier one already took, nor anything bought after it.
  "Earlier" is ``order_date`` order; at the same timestamp purchases come before cancellations
  (a document can cancel an order placed the same minute), and among equal dates the larger order id
  counts as more recent (deterministic; SQL string order). Lines of one order with the same key are
  one purchase (their net units; an order whose lines of a key net to no units offers none).
* What cannot be matched (no such product bought earlier, the product or price absent, an order placed
  before the data starts, more cancelled than bought) stays a **customer-level adjustment**: it stays in
  its cancellation document, which is never an order.
* Matched money is ``units x unit price`` (the amount itself for money-matched keys), moved from the
  document to the purchase order, so each customer's total is unchanged.

Kept value
----------
An order's **kept** value is its net amount (its own lines) less the money matched to it; it is a
**purchase** when kept > 0 and not every line is a return (the order definition of
:func:`~segkit.data.relational.orders_over` net of the matched money), so a fully cancelled order is no
purchase. A cancellation document is not an order: its kept value is what matched nothing, an
**adjustment** of its customer, counted (``unmatched_documents``). A customer's ``kept_total`` is the sum
of everything (orders kept + adjustments, equal to the customer's net); a customer **is a buyer** when
they kept a purchase order and ``kept_total > 0``: who kept nothing is not a buyer.

The matching is computed without recursion (portable SQL, transpiled to Spark like every query of the
core): per key, the running sum of signed units in event order reflected at zero is the stack height;
a cancellation removes the levels between its heights before and after, and each level belongs to the
latest earlier purchase that pushed it and has not lost it since.

Examples
--------
A £100 order cancelled 12 minutes later keeps nothing; the customer is no buyer:

>>> lines = pd.DataFrame({"customer_id": ["a", "a"], "order_id": ["536365", "C536379"],
...                       "order_date": pd.to_datetime(["2010-12-01 09:00", "2010-12-01 09:12"]),
...                       "product_id": ["85123A", "85123A"], "quantity": [40, -40],
...                       "unit_price": [2.5, 2.5], "amount": [100.0, -100.0], "is_return": [False, True]})
>>> with frame_lines(lines) as con:
...     kept_orders_of(con)[["order_id", "recorded", "kept", "is_cancellation", "is_purchase"]]
  order_id  recorded  kept  is_cancellation  is_purchase
0   536365     100.0   0.0            False        False
1  C536379    -100.0   0.0             True        False
>>> with frame_lines(lines) as con:
...     kept_customers_of(con)[["customer_id", "recorded_purchases", "purchase_orders", "kept_total", "is_buyer"]]
  customer_id  recorded_purchases  purchase_orders  kept_total  is_buyer
0           a                   1                0         0.0     False
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from segkit.data.relational import (CANCELLATION_MATCHES, KEPT_CUSTOMERS, KEPT_ORDER_LIST, LinesOn, Query, executor_of,
                                     frame_lines)

__all__ = ["cancellation_matches_of", "kept_orders_of", "kept_customers_of", "kept_value", "cancellations_of_orders"]

MATCH_COLUMNS: tuple[str, ...] = (
    "customer_id", "cancellation_order_id", "cancellation_date", "purchase_order_id", "purchase_date",
    "product_id", "unit_value", "units", "amount",
)
KEPT_ORDER_COLUMNS: tuple[str, ...] = (
    "customer_id", "order_id", "order_date", "recorded", "kept", "is_cancellation", "was_purchase", "is_purchase",
)
KEPT_CUSTOMER_COUNTS: tuple[str, ...] = (
    "recorded_purchases", "purchase_orders", "cancelled_orders", "cancellation_documents", "unmatched_documents",
)
KEPT_CUSTOMER_MONEY: tuple[str, ...] = ("cancelled", "orders_kept", "adjustments", "kept_total")


#: Lookups of chosen orders (the relation ``wanted_orders``: ``customer_id, order_id``) in the core's matches
#: and kept values: filters of :data:`~segkit.data.relational.CANCELLATION_MATCHES` and
#: :data:`~segkit.data.relational.KEPT_ORDER_LIST`, nothing computed again.
WANTED_MATCHES = Query("wanted_matches", """
    SELECT m.* FROM cancellation_matches AS m
    JOIN wanted_orders AS w ON m.customer_id = w.customer_id AND m.purchase_order_id = w.order_id""",
                       (CANCELLATION_MATCHES,), "customer_id, purchase_order_id, cancellation_date, cancellation_order_id")
WANTED_KEPT = Query("wanted_kept", """
    SELECT k.* FROM kept_order_list AS k
    JOIN wanted_orders AS w ON k.customer_id = w.customer_id AND k.order_id = w.order_id""",
                    (KEPT_ORDER_LIST,), "customer_id, order_id")


def _typed(frame: pd.DataFrame, strings: Sequence[str] = (), dates: Sequence[str] = (),
           floats: Sequence[str] = (), ints: Sequence[str] = (), flags: Sequence[str] = ()) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for col in frame.columns:
        values = frame[col].reset_index(drop=True)
        if col in strings:
            out[col] = values.astype("string")
        elif col in dates:
            out[col] = values.astype("datetime64[ns]")
        elif col in floats:
            out[col] = values.astype("float64")
        elif col in ints:
            out[col] = values.astype("int64")
        elif col in flags:
            out[col] = values.astype(bool)
        else:
            raise AssertionError(f"no dtype given for column {col!r}")
    return out


def cancellation_matches_of(lines: LinesOn, provided: Sequence[str] = ()) -> pd.DataFrame:
    """Every match of a cancellation document to an earlier purchase order of ``lines``.

    Parameters
    ----------
    lines : QueryExecutor or DuckDBPyConnection
        Where the canonical ``lines`` relation is held (:func:`~segkit.data.relational.frame_lines`,
        :func:`segkit.data.engine.file_lines`, :class:`segkit.data.spark.SparkLines`).
    provided : sequence of str
        Relations ``lines`` already holds (e.g. a materialised ``orders``), not recomputed.

    Returns
    -------
    DataFrame
        ``customer_id, cancellation_order_id, cancellation_date, purchase_order_id, purchase_date,
        product_id`` (NA without product), ``unit_value`` (the unit price; the line amount without
        product; NaN when matched money for money), ``units`` and ``amount`` (money moved, > 0), one row
        per (document, purchase order, key); by customer, document date, key, most recent purchase first.
    """
    return _typed(executor_of(lines).run(CANCELLATION_MATCHES, provided=provided),
                  strings=("customer_id", "cancellation_order_id", "purchase_order_id", "product_id"),
                  dates=("cancellation_date", "purchase_date"), floats=("unit_value", "units", "amount"))


def kept_orders_of(lines: LinesOn, provided: Sequence[str] = ()) -> pd.DataFrame:
    """Every order and cancellation document of ``lines`` with its recorded and kept value.

    Returns
    -------
    DataFrame
        ``customer_id, order_id, order_date, recorded`` (net of its own lines), ``kept`` (net of matched
        cancellations; for a document, the unmatched adjustment), ``is_cancellation`` (a document, not an
        order), ``was_purchase`` (purchase before matching), ``is_purchase`` (kept > 0, not a document);
        sorted by customer, date and order id.
    """
    return _typed(executor_of(lines).run(KEPT_ORDER_LIST, provided=provided), strings=("customer_id", "order_id"),
                  dates=("order_date",), floats=("recorded", "kept"),
                  flags=("is_cancellation", "was_purchase", "is_purchase"))


def kept_customers_of(lines: LinesOn, provided: Sequence[str] = ()) -> pd.DataFrame:
    """Kept value per customer with any line of ``lines``, sorted by customer.

    Returns
    -------
    DataFrame
        ``customer_id``; counts ``recorded_purchases`` (purchase orders before matching),
        ``purchase_orders`` (kept), ``cancelled_orders`` (purchases no more), ``cancellation_documents``,
        ``unmatched_documents`` (documents left with an adjustment); money ``cancelled`` (matched away
        from orders), ``orders_kept``, ``adjustments`` (unmatched, usually < 0), ``kept_total``
        (= orders_kept + adjustments, the customer's net); ``is_buyer`` (a kept purchase order and
        kept_total > 0).
    """
    return _typed(executor_of(lines).run(KEPT_CUSTOMERS, provided=provided), strings=("customer_id",),
                  ints=KEPT_CUSTOMER_COUNTS, floats=KEPT_CUSTOMER_MONEY, flags=("is_buyer",))


def cancellations_of_orders(lines: LinesOn, orders: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The matches and kept values of some orders of ``lines``: what cancelled them.

    Parameters
    ----------
    lines : QueryExecutor or DuckDBPyConnection
        Where the canonical ``lines`` relation is held (:class:`segkit.data.engine.OrderLines` ``run``
        hands one to its task).
    orders : DataFrame
        ``customer_id, order_id`` of the orders to look up (e.g. the audit's outlier orders).

    Returns
    -------
    matches : DataFrame
        The rows of :func:`cancellation_matches_of` whose purchase order is one of ``orders``, by
        customer, purchase order and document date.
    kept : DataFrame
        The rows of :func:`kept_orders_of` of ``orders`` (``recorded``, ``kept``, ``is_purchase``…).

    Examples
    --------
    >>> lines = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_id": ["536365", "536366", "C536379"],
    ...                       "order_date": pd.to_datetime(["2010-12-01 09:00", "2010-12-01 09:05", "2010-12-01 09:12"]),
    ...                       "product_id": ["85123A", "71053", "85123A"], "quantity": [40, 1, -40],
    ...                       "unit_price": [2.5, 3.0, 2.5], "amount": [100.0, 3.0, -100.0],
    ...                       "is_return": [False, False, True]})
    >>> with frame_lines(lines) as con:
    ...     matches, kept = cancellations_of_orders(con, pd.DataFrame({"customer_id": ["a"], "order_id": ["536365"]}))
    >>> matches[["purchase_order_id", "cancellation_order_id", "amount"]].values.tolist(), kept["kept"].tolist()
    ([['536365', 'C536379', 100.0]], [0.0])
    """
    wanted = pd.DataFrame({"customer_id": orders["customer_id"].astype("string").astype(object),
                           "order_id": orders["order_id"].astype("string").astype(object)}).drop_duplicates()
    executor = executor_of(lines)
    executor.register("wanted_orders", wanted,
                      "CAST(customer_id AS VARCHAR) AS customer_id, CAST(order_id AS VARCHAR) AS order_id")
    matches = _typed(executor.run(WANTED_MATCHES, provided=("wanted_orders",)),
                     strings=("customer_id", "cancellation_order_id", "purchase_order_id", "product_id"),
                     dates=("cancellation_date", "purchase_date"), floats=("unit_value", "units", "amount"))
    kept = _typed(executor.run(WANTED_KEPT, provided=("wanted_orders",)), strings=("customer_id", "order_id"),
                  dates=("order_date",), floats=("recorded", "kept"),
                  flags=("is_cancellation", "was_purchase", "is_purchase"))
    return matches, kept


def kept_value(transactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Matches, kept orders and kept customers of a frame of order lines (canonical columns; ``product_id,
    quantity, unit_price, is_return, order_id`` used when present).

    Raises
    ------
    DataError
        A canonical column missing or empty, dates unreadable (naming the rows).
    """
    with frame_lines(transactions) as con:
        return cancellation_matches_of(con), kept_orders_of(con), kept_customers_of(con)
