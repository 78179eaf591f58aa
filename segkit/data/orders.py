"""Order lines in memory → orders, purchase days and customer summaries, run by DuckDB.

The order definition used everywhere in segkit is written once, as SQL, in
:mod:`segkit.data.relational`: the lines of one customer and ``order_id`` form an order dated by
its earliest line; its amount is the net sum of its lines (returns included); it is a
**purchase** when that net is > 0 and not every line is a return. The functions here run those
queries over a pandas frame (DuckDB scans it in place): :func:`order_table`,
:func:`purchase_orders`, :func:`purchase_days` (one row per customer and purchase day),
:func:`rfm_table` (the RFM base) and :func:`lifetimes_summary` (frequency, recency, T). Their
out-of-core twins over files (:mod:`segkit.data.engine`) run the same queries. Money is summed
exactly (``DECIMAL(38, 6)``).

Examples
--------
>>> tx = pd.DataFrame({
...     "customer_id": ["a", "a", "b"],
...     "order_id": ["1", "2", "3"],
...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-03"]),
...     "amount": [10.0, 20.0, 5.0],
... })
>>> lifetimes_summary(tx, "2024-01-10", freq="D")  # doctest: +NORMALIZE_WHITESPACE
             frequency  recency    T  monetary_value
customer_id
a                  1.0      7.0  9.0            20.0
b                  0.0      0.0  7.0             0.0
"""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd

from segkit.core.dates import parse_as_of
from segkit.core.errors import ConfigError, DataError
from segkit.data.relational import (
    MONEY,
    RFM_COLUMNS,
    as_datetime,
    first_non_purchase_of,
    frame_lines,
    no_missing,
    order_table_of,
    purchase_days_of,
    purchase_orders_of,
    require_columns,
    rfm_with_info_of,
    summary_of,
)

__all__ = [
    "order_table", "first_non_purchase", "purchase_orders", "purchase_days", "rfm_table", "rfm_with_info",
    "lifetimes_summary",
    "RFMWarning", "RFM_COLUMNS", "LIFETIMES_FREQS", "customer_codes", "day_pairs_sorted",
    "require_columns", "no_missing",
]

# Time units accepted by lifetimes_summary: pandas period alias == numpy timedelta unit.
LIFETIMES_FREQS: tuple[str, ...] = ("D", "W", "h")


def lifetimes_summary(
    transactions: pd.DataFrame,
    observation_period_end: str | pd.Timestamp | None,
    freq: str = "W",
    freq_multiplier: float = 1,
    monetary_value_col: str | None = "amount",
    customer_id_col: str = "customer_id",
    datetime_col: str = "order_date",
) -> pd.DataFrame:
    """Per-customer ``frequency, recency, T, monetary_value`` exactly as lifetimes computes them.

    A vectorised re-implementation of ``lifetimes.utils.summary_data_from_transaction_data``
    (lifetimes 0.11.3, ``include_first_transaction=False``), tested equal to it customer by
    customer on the CDNOW log. It transforms rows ``customer_id, datetime [, monetary_value]``
    into one row per customer:

    - every datetime and ``observation_period_end`` are floored to the start of their period
      (``freq``); transactions in the same period are one purchase (their values summed);
    - ``frequency`` = number of distinct purchase periods − 1 (repeat purchases);
    - ``recency`` = last − first purchase period, ``T`` = end − first purchase period, both in
      ``freq`` units divided by ``freq_multiplier``;
    - ``monetary_value`` = mean of the per-period sums over the repeat periods (0 when none).

    As in lifetimes, a transaction is kept when its *period* starts on or before the period of
    ``observation_period_end``: with ``freq="W"`` an order later in the same week as the end
    date counts. Pass an end date at a period boundary (or filter first) if that matters.
    Purchases are whatever rows you pass: for segkit's cleaned data pass purchase orders
    (:func:`purchase_orders`), so fully returned orders do not count as repeat purchases.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction (order or line).
    observation_period_end : str or Timestamp, optional
        End of the observation period; None = the last transaction date (as lifetimes).
    freq : {"D", "W", "h"}
        Time unit of ``recency`` and ``T`` (weeks start on Monday, as pandas ``W`` periods).
    freq_multiplier : float
        Divides ``recency`` and ``T`` (``freq="h", freq_multiplier=24`` gives fractional days).
    monetary_value_col : str or None
        Column of transaction values; None = no ``monetary_value`` column.
    customer_id_col, datetime_col : str
        Names of the customer id and datetime columns.

    Returns
    -------
    DataFrame
        Index ``customer_id_col`` (sorted), float columns ``frequency, recency, T``
        [, ``monetary_value``].

    Raises
    ------
    DataError
        Missing columns, empty ids/dates/values, or no transaction up to the end date.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-15"]),
    ...                    "amount": [1.0, 2.0, 4.0]})
    >>> lifetimes_summary(tx, "2024-01-21", freq="W")  # doctest: +NORMALIZE_WHITESPACE
                 frequency  recency    T  monetary_value
    customer_id
    a                  1.0      2.0  2.0             4.0
    """
    what = "lifetimes_summary(transactions)"
    if freq not in LIFETIMES_FREQS:
        raise ConfigError(f"lifetimes_summary: freq={freq!r} is not supported; use one of "
                          f"{', '.join(LIFETIMES_FREQS)} (days, weeks, hours).")
    columns = [customer_id_col, datetime_col] + ([monetary_value_col] if monetary_value_col else [])
    require_columns(transactions, columns, what,
                     "Pass the column names with customer_id_col/datetime_col/monetary_value_col.")
    ids = transactions[customer_id_col]
    no_missing(ids, customer_id_col, what)
    dates = as_datetime(transactions[datetime_col], datetime_col, what)
    if monetary_value_col:
        values = pd.to_numeric(transactions[monetary_value_col], errors="coerce").astype("float64")
        no_missing(values, monetary_value_col, what)

    if observation_period_end is None:
        end = dates.max()
    else:
        try:
            end = pd.Timestamp(observation_period_end)
        except (TypeError, ValueError):
            raise ConfigError(f"lifetimes_summary: observation_period_end={observation_period_end!r} "
                              "is not a date; use YYYY-MM-DD.") from None
    end = end.to_period(freq).to_timestamp()
    if not (dates.dt.to_period(freq).dt.to_timestamp() <= end).any():
        raise DataError(f"{what}: no transaction on or before observation_period_end={end.date()} "
                        f"(first transaction {dates.min().date()}). Choose a later end date.")
    # DuckDB sees integer customer codes: the ids keep their type and order (sorted as pandas sorts them).
    codes, uniques = customer_codes(ids) if isinstance(ids.dtype, pd.CategoricalDtype) else \
        pd.factorize(ids, sort=True)
    feed = pd.DataFrame({"c": np.asarray(codes, dtype=np.int64), "order_date": dates.to_numpy(dtype="datetime64[ns]"),
                         "amount": values.to_numpy() if monetary_value_col else np.zeros(len(dates))})
    con = duckdb.connect()
    try:
        con.register("purchase_feed", feed)
        con.execute("CREATE VIEW purchases AS SELECT c, CAST(order_date AS TIMESTAMP) AS order_date, "
                    f"CAST(amount AS {MONEY}) AS amount FROM purchase_feed")
        out = summary_of(con, freq, end, freq_multiplier)
    finally:
        con.close()
    if not monetary_value_col:
        out = out.drop(columns="monetary_value")
    out.index = pd.Index(uniques).take(out.index.to_numpy()).rename(customer_id_col)
    return out


def order_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per order: ``customer_id, order_id, order_date, amount`` (net), ``is_purchase``.

    Lines are grouped by ``(customer_id, order_id)``; the order date is its earliest line's, the
    amount the sum of its lines (return lines included). ``is_purchase``: ``amount > 0`` and not
    made only of return/cancellation lines (``is_return``, else a negative amount).
    Without an ``order_id`` column every line is its own order.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_id": ["1", "1", "2"],
    ...                    "order_date": pd.to_datetime(["2024-01-01"] * 2 + ["2024-01-05"]),
    ...                    "amount": [10.0, -10.0, 3.0]})
    >>> order_table(tx)[["order_id", "amount", "is_purchase"]]
      order_id  amount  is_purchase
    0        1     0.0        False
    1        2     3.0         True
    """
    with frame_lines(transactions) as con:
        return order_table_of(con)


def first_non_purchase(transactions: pd.DataFrame) -> pd.DataFrame:
    """Customers whose first order is not a purchase, when each was first seen and first bought.

    ``customer_id, first_order_date, first_purchase_date`` (NaT = no purchase at all), one row per
    customer whose earliest order is a return, a cancellation or a zero-value order
    (:data:`segkit.data.relational.FIRST_NON_PURCHASE`); what the lifecycle stages read to tell a
    customer who only returned from a prospect.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "b", "b", "c"], "order_id": ["C1", "C2", "3", "4"],
    ...                    "order_date": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-05", "2024-01-03"]),
    ...                    "amount": [-5.0, -2.0, 8.0, 0.0]})
    >>> first_non_purchase(tx)
      customer_id first_order_date first_purchase_date
    0           a       2024-01-02                 NaT
    1           b       2024-01-01          2024-01-05
    2           c       2024-01-03                 NaT
    """
    with frame_lines(transactions) as con:
        return first_non_purchase_of(con)


def purchase_orders(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Purchase orders dated before ``as_of``: the input of lifetimes-style models.

    The orders of :func:`order_table` whose purchase flag is set (net amount > 0 and not only
    returns: :data:`segkit.data.relational.PURCHASE_ORDERS`), in its order. Columns
    ``customer_id, order_id, order_date, amount`` (net). ``as_of`` is exclusive: orders on or
    after that day are left out (None = keep all).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-09"]),
    ...                    "amount": [10.0, -4.0, 6.0]})
    >>> purchase_orders(tx, as_of="2024-01-05")["order_id"].tolist()
    ['1']
    """
    day = None if as_of is None else parse_as_of(as_of)
    with frame_lines(transactions) as con:
        return purchase_orders_of(con, day)


def customer_codes(ids: pd.Series | pd.Index | pd.Categorical) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of customer ids and the sorted ids they index (``ids[codes]`` = the input).

    Free for a categorical with sorted categories (what :func:`purchase_days` returns), else one
    :func:`pandas.factorize`. Group-bys and joins on tens of millions of rows run on the codes.

    Examples
    --------
    >>> codes, ids = customer_codes(pd.Series(["b", "a", "b"]))
    >>> codes.tolist(), ids.tolist()
    ([1, 0, 1], ['a', 'b'])
    """
    values = ids.array if isinstance(ids, (pd.Series, pd.Index)) else ids
    if isinstance(values, pd.Categorical) and values.categories.is_monotonic_increasing and not (values.codes < 0).any():
        return np.asarray(values.codes, dtype=np.int64), pd.Index(values.categories, dtype="string", name="customer_id")
    codes, uniques = pd.factorize(pd.array(values, dtype="string"), sort=True)
    return codes.astype(np.int64), pd.Index(uniques, dtype="string", name="customer_id")


def day_pairs_sorted(codes: np.ndarray, days: np.ndarray) -> bool:
    """True when ``(codes, days)`` pairs are strictly increasing: one row per customer and day, sorted.

    Examples
    --------
    >>> d = np.array(["2024-01-01", "2024-01-03", "2024-01-01"], dtype="datetime64[ns]")
    >>> day_pairs_sorted(np.array([0, 0, 1]), d), day_pairs_sorted(np.array([0, 1, 0]), d)
    (True, False)
    """
    if len(codes) < 2:
        return True
    step_code = np.diff(codes)
    step_day = np.diff(days.astype("datetime64[ns]").view("int64"))
    return bool(((step_code > 0) | ((step_code == 0) & (step_day > 0))).all())


def purchase_days(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and purchase day: what the lifecycle and CLV models read.

    Several purchase orders on one day are one purchase day (lifetimes' convention with
    ``freq="D"``); their amounts are summed. The customer id is a categorical with sorted
    categories, so that tens of millions of rows group and join on integer codes.

    Parameters
    ----------
    orders : DataFrame
        Purchase orders ``customer_id, order_date, amount`` (:func:`purchase_orders`).

    Returns
    -------
    DataFrame
        Sorted by ``customer_id, order_date``: ``customer_id`` (categorical), ``order_date`` (the
        day, at midnight), ``amount`` (that day's net revenue) and ``orders`` (purchase orders
        that day).

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["b", "a", "a"], "amount": [2.0, 5.0, 7.0],
    ...     "order_date": pd.to_datetime(["2024-01-03 10:00", "2024-01-01 09:00", "2024-01-01 18:00"])})
    >>> purchase_days(orders)
      customer_id order_date  amount  orders
    0           a 2024-01-01    12.0       2
    1           b 2024-01-03     2.0       1
    """
    require_columns(orders, ["customer_id", "order_date", "amount"], "purchase orders",
                     "Build them with segkit.data.orders.purchase_orders(transactions).")
    codes, ids = customer_codes(orders["customer_id"])
    dates = as_datetime(orders["order_date"], "order_date", "purchase orders")
    day = dates.dt.normalize()
    if "orders" in orders.columns and day_pairs_sorted(codes, day.to_numpy()) \
            and (day == dates).all():  # already one row per customer and day, in order
        return pd.DataFrame({
            "customer_id": pd.Categorical.from_codes(codes, categories=ids),
            "order_date": day.to_numpy(),
            "amount": orders["amount"].to_numpy(dtype="float64"),
            "orders": orders["orders"].to_numpy(dtype="int64"),
        })
    amount = pd.to_numeric(orders["amount"], errors="coerce").astype("float64")
    no_missing(amount, "amount", "purchase orders")
    feed = pd.DataFrame({"customer_id": ids.to_numpy(dtype=object)[codes],
                         "order_date": dates.to_numpy(dtype="datetime64[ns]"), "amount": amount.to_numpy()})
    con = duckdb.connect()
    try:
        con.register("order_feed", feed)
        con.execute("CREATE VIEW orders_before AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
                    f"CAST(order_date AS TIMESTAMP) AS order_date, CAST(amount AS {MONEY}) AS amount, "
                    "true AS is_purchase FROM order_feed")
        days = purchase_days_of(con, provided=("orders_before",))
    finally:
        con.close()
    days["order_date"] = days["order_date"].astype(dates.dtype)  # the input's resolution
    return days


class RFMWarning(UserWarning):
    """Something the analyst should know about an RFM result (excluded orders, fewer bins...)."""


def rfm_with_info(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None) -> tuple[pd.DataFrame, dict]:
    """:func:`rfm_table` plus the counts behind its warnings (used by the producer): ``as_of,
    orders_after_as_of, customers_after_as_of_only, purchase_orders, non_purchase_orders,
    customers_without_purchase, customers_non_positive_net, period_start, period_end, net_revenue``."""
    with frame_lines(transactions) as con:
        return rfm_with_info_of(con, as_of)


def rfm_table(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Recency, frequency and monetary value per buying customer as of ``as_of``.

    Parameters
    ----------
    transactions : DataFrame
        Canonical order lines (``customer_id, order_date, amount`` and usually ``order_id``;
        without ``order_id`` every line is an order), e.g. ``transactions_clean``.
    as_of : str or Timestamp, optional
        Analysis date (midnight; exclusive). Orders dated on or after it are excluded with an
        :class:`RFMWarning` giving their count. None = the day after the last order.

    Returns
    -------
    DataFrame
        One row per customer with at least one purchase order (net amount > 0), sorted by id:

        - ``recency_days``: days from the last purchase's date to ``as_of`` (≥ 1);
        - ``frequency``: number of distinct purchase orders;
        - ``monetary_total``: net revenue, i.e. every order before ``as_of`` including returns
          and cancellations (the customer's kept value, :mod:`segkit.data.cancellations`); always
          above zero: a customer who kept nothing is no buyer and has no row;
        - ``monetary_avg``: ``monetary_total / frequency`` (net revenue per purchase order);
        - ``tenure_days``: days from the first purchase's date to ``as_of``;
        - ``first_order_date``, ``last_order_date``: of purchase orders.

        Customers whose every order is a return/cancellation or nets to ≤ 0, or whose net is ≤ 0
        (kept nothing), are left out; cancellation documents are matched to the orders they cancel
        first (:mod:`segkit.data.cancellations`), so a fully cancelled order is no purchase
        (their counts are reported by :func:`segkit.steps.rfm.build_rfm_artifacts`).

    Raises
    ------
    DataError
        Missing columns, empty ids/dates/amounts, or nothing before ``as_of``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "order_id": ["1", "2", "3", "4"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-06",
    ...                                                  "2024-01-09"]),
    ...                    "amount": [10.0, 30.0, -30.0, 5.0]})
    >>> rfm_table(tx, as_of="2024-01-10")[["customer_id", "recency_days", "frequency",
    ...                                     "monetary_total", "tenure_days"]]
      customer_id  recency_days  frequency  monetary_total  tenure_days
    0           a             9          1            10.0            9
    1           b             1          1             5.0            1

    Order 3 returns exactly what order 2 bought (the same customer, an earlier line of the same
    amount), so order 2 is cancelled: ``a`` bought once.
    """
    rfm, info = rfm_with_info(transactions, as_of)
    if info["orders_after_as_of"]:
        warnings.warn(
            f"{info['orders_after_as_of']:,} order(s) dated on or after as_of = {info['as_of'].date()} "
            f"were excluded ({info['customers_after_as_of_only']:,} customer(s) have only such orders).",
            RFMWarning, stacklevel=2,
        )
    return rfm
