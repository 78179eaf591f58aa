"""RFM analysis: per-customer recency/frequency/monetary, scores, named segments, tiers, actions.

Data shaping is done by pure functions (:func:`order_table`, :func:`rfm_table`,
:func:`lifetimes_summary`, :func:`pareto_curve` ...); anything learned from a customer base is
an estimator (:class:`RFMScorer`, :class:`LoyaltyTiers`) so an analyst can fit on one month and
score the next. :func:`build_rfm_artifacts` is the producer behind ``notebooks/02_rfm.ipynb``.

Returns and cancellations follow the audit's cleaned table (see ``docs/DEVELOPING.md``):
**net revenue** sums every line, negative return lines included; an order whose net amount is
≤ 0 (fully returned or cancelled) is **not a purchase**: it does not count in ``frequency`` nor
move ``recency``, but its (negative) amount stays in ``monetary_total``.

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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from segkit.errors import ConfigError, DataError, format_rows
from segkit.escaping import escape_markdown

# Time units accepted by lifetimes_summary: pandas period alias == numpy timedelta unit.
LIFETIMES_FREQS: tuple[str, ...] = ("D", "W", "h")


# --------------------------------------------------------------------------- validation helpers
def _require_columns(frame: pd.DataFrame, columns: list[str], what: str, fix: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what}: column(s) {', '.join(map(repr, missing))} missing "
            f"(columns present: {', '.join(map(str, frame.columns)) or 'none'}). {fix}"
        )


def _as_datetime(values: pd.Series, column: str, what: str) -> pd.Series:
    """``values`` as datetime64 (naive), or a DataError naming the unparseable rows."""
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


def _no_missing(values: pd.Series, column: str, what: str) -> None:
    missing = values.isna()
    if missing.any():
        raise DataError(
            f"{what}: column '{column}' is empty at {format_rows(np.flatnonzero(missing.to_numpy()))}. "
            "Fill or drop those rows (the data audit removes rows without customer id)."
        )


# --------------------------------------------------------------------------- lifetimes summary
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
    _require_columns(transactions, columns, what,
                     "Pass the column names with customer_id_col/datetime_col/monetary_value_col.")
    ids = transactions[customer_id_col]
    _no_missing(ids, customer_id_col, what)
    dates = _as_datetime(transactions[datetime_col], datetime_col, what)
    if monetary_value_col:
        values = pd.to_numeric(transactions[monetary_value_col], errors="coerce").astype("float64")
        _no_missing(values, monetary_value_col, what)

    if observation_period_end is None:
        end = dates.max()
    else:
        try:
            end = pd.Timestamp(observation_period_end)
        except (TypeError, ValueError):
            raise ConfigError(f"lifetimes_summary: observation_period_end={observation_period_end!r} "
                              "is not a date; use YYYY-MM-DD.") from None
    end = end.to_period(freq).to_timestamp()
    period = dates.dt.to_period(freq).dt.to_timestamp()
    keep = (period <= end).to_numpy()
    if not keep.any():
        raise DataError(f"{what}: no transaction on or before observation_period_end={end.date()} "
                        f"(first transaction {dates.min().date()}). Choose a later end date.")

    categorical = isinstance(ids.dtype, pd.CategoricalDtype)  # purchase_days: group on the integer codes
    codes, uniques = customer_codes(ids) if categorical else (None, None)
    frame = pd.DataFrame({"cid": codes[keep] if categorical else ids.array[keep], "period": period.to_numpy()[keep]})
    if monetary_value_col:
        frame["value"] = values.to_numpy()[keep]
        per = frame.groupby(["cid", "period"], sort=True)["value"].sum().reset_index()
    else:
        per = frame.drop_duplicates(["cid", "period"]).sort_values(["cid", "period"], kind="mergesort")
    grouped = per.groupby("cid", sort=True)["period"]
    first, last, count = grouped.min(), grouped.max(), grouped.size()
    unit = np.timedelta64(1, freq)
    out = pd.DataFrame({
        "frequency": (count - 1).astype("float64"),
        "recency": (last - first) / unit / freq_multiplier,
        "T": (end - first) / unit / freq_multiplier,
    })
    if monetary_value_col:
        repeat = per["value"].where(per["cid"].duplicated())  # first period of each customer → NaN
        out["monetary_value"] = repeat.groupby(per["cid"], sort=True).mean().fillna(0.0)
    if categorical:
        out.index = uniques.take(out.index.to_numpy())
    out.index = out.index.rename(customer_id_col)
    return out.astype("float64")


# --------------------------------------------------------------------------- orders and RFM table
def _default_as_of(dates: pd.Series) -> pd.Timestamp:
    """The day after the last order (the analysis date when none is given)."""
    return dates.max().normalize() + pd.Timedelta(days=1)


def return_line_mask(transactions: pd.DataFrame) -> np.ndarray:
    """True for return and cancellation lines.

    The audit's ``is_return`` flag when the lines carry it (``transactions_clean``: a negative
    quantity or amount, or an order id starting with ``io.return_invoice_prefix``, e.g. the
    ``C`` invoices of UCI Online Retail), else a negative amount.

    Examples
    --------
    >>> return_line_mask(pd.DataFrame({"amount": [5.0, -2.0], "is_return": [True, False]})).tolist()
    [True, False]
    >>> return_line_mask(pd.DataFrame({"amount": [5.0, -2.0]})).tolist()
    [False, True]
    """
    if "is_return" in transactions.columns:
        return transactions["is_return"].fillna(False).to_numpy(dtype=bool)
    return (pd.to_numeric(transactions["amount"], errors="coerce") < 0).fillna(False).to_numpy(dtype=bool)


def purchase_flags(net_amount: np.ndarray | pd.Series, only_returns: np.ndarray | pd.Series) -> np.ndarray:
    """The purchase rule for orders: net amount > 0 and at least one line that is not a return.

    An order made only of return/cancellation lines (:func:`return_line_mask`) is never a
    purchase, even when its lines net positive (a cancellation invoice with a returned item and
    a postage line); an order that nets to ≤ 0 (fully returned) is not one either. The DuckDB
    engine applies the same rule in SQL (``segkit.engine``).

    Examples
    --------
    >>> purchase_flags(np.array([10.0, 3.0, -1.0]), np.array([False, True, False])).tolist()
    [True, False, False]
    """
    return (np.asarray(net_amount, dtype="float64") > 0) & ~np.asarray(only_returns, dtype=bool)


def _orders(transactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index, pd.Index]:
    """Orders as integer codes: frame ``c`` (customer code), ``o`` (order code), ``order_date``,
    ``amount``, ``is_purchase`` sorted by (c, o), plus the customer and order id uniques
    (customer codes follow the sorted ids)."""
    what = "transactions"
    _require_columns(transactions, ["customer_id", "order_date", "amount"], what,
                     "Map your columns to the canonical names in the config (columns.transactions); "
                     "amount can be computed from quantity and unit_price at load.")
    ids = transactions["customer_id"]
    _no_missing(ids, "customer_id", what)
    dates = _as_datetime(transactions["order_date"], "order_date", what)
    amount = pd.to_numeric(transactions["amount"], errors="coerce").astype("float64")
    _no_missing(amount, "amount", what)
    # One int64 key per (customer, order) keeps the group-by fast on tens of millions of lines.
    cust_code, cust_uniques = pd.factorize(ids.astype("string"), sort=True)
    if "order_id" in transactions.columns and transactions["order_id"].notna().all():
        order_code, order_uniques = pd.factorize(transactions["order_id"].astype("string"), sort=False)
    else:  # every line is its own order (missing order ids too)
        order_code = np.arange(len(transactions))
        order_uniques = pd.Index(np.arange(len(transactions)).astype(str), dtype="string")
    n_o = max(len(order_uniques), 1)
    key = cust_code.astype("int64") * n_o + order_code
    grouped = pd.DataFrame({"order_date": dates.to_numpy(), "amount": amount.to_numpy(),
                            "r": return_line_mask(transactions)}).groupby(key, sort=True)
    orders = grouped.agg(order_date=("order_date", "min"), amount=("amount", "sum"), only_returns=("r", "min"))
    keys = orders.index.to_numpy()
    orders = orders.reset_index(drop=True)
    orders.insert(0, "c", keys // n_o)
    orders.insert(1, "o", keys % n_o)
    orders["is_purchase"] = purchase_flags(orders["amount"], orders.pop("only_returns"))
    return orders, cust_uniques, order_uniques


def order_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per order: ``customer_id, order_id, order_date, amount`` (net), ``is_purchase``.

    Lines are grouped by ``(customer_id, order_id)``; the order date is its earliest line's, the
    amount the sum of its lines (return lines included). ``is_purchase``: ``amount > 0`` and not
    made only of return/cancellation lines (:func:`purchase_flags`).
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
    orders, cust_uniques, order_uniques = _orders(transactions)
    return pd.DataFrame({
        "customer_id": pd.array(cust_uniques.take(orders["c"].to_numpy()), dtype="string"),
        "order_id": pd.array(order_uniques.take(orders["o"].to_numpy()), dtype="string"),
        "order_date": orders["order_date"].to_numpy(),
        "amount": orders["amount"].to_numpy(),
        "is_purchase": orders["is_purchase"].to_numpy(),
    })


def purchase_orders(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Purchase orders (net amount > 0) dated before ``as_of``: the input of lifetimes-style models.

    Columns ``customer_id, order_id, order_date, amount`` (net). ``as_of`` is exclusive: orders
    on or after that day are left out (None = keep all).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-09"]),
    ...                    "amount": [10.0, -4.0, 6.0]})
    >>> purchase_orders(tx, as_of="2024-01-05")["order_id"].tolist()
    ['1']
    """
    orders = order_table(transactions)
    keep = orders["is_purchase"]
    if as_of is not None:
        keep &= orders["order_date"] < _timestamp(as_of)
    return orders.loc[keep, ["customer_id", "order_id", "order_date", "amount"]].reset_index(drop=True)


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
    _require_columns(orders, ["customer_id", "order_date", "amount"], "purchase orders",
                     "Build them with segkit.rfm.purchase_orders(transactions).")
    codes, ids = customer_codes(orders["customer_id"])
    dates = _as_datetime(orders["order_date"], "order_date", "purchase orders")
    day = dates.dt.normalize()
    if "orders" in orders.columns and day_pairs_sorted(codes, day.to_numpy()) \
            and (day == dates).all():  # already one row per customer and day, in order
        return pd.DataFrame({
            "customer_id": pd.Categorical.from_codes(codes, categories=ids),
            "order_date": day.to_numpy(),
            "amount": orders["amount"].to_numpy(dtype="float64"),
            "orders": orders["orders"].to_numpy(dtype="int64"),
        })
    frame = pd.DataFrame({"c": codes, "order_date": day.to_numpy(),
                          "amount": orders["amount"].to_numpy(dtype="float64")})
    daily = frame.groupby(["c", "order_date"], sort=True).agg(amount=("amount", "sum"), orders=("amount", "size"))
    daily = daily.reset_index()
    return pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(daily["c"].to_numpy(), categories=ids),
        "order_date": daily["order_date"].to_numpy(),
        "amount": daily["amount"].to_numpy(dtype="float64"),
        "orders": daily["orders"].to_numpy(dtype="int64"),
    })


def _timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"as_of = {value!r} is not a date; use YYYY-MM-DD.") from None
    if pd.isna(ts):
        raise ConfigError(f"as_of = {value!r} is not a date; use YYYY-MM-DD.")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


class RFMWarning(UserWarning):
    """Something the analyst should know about an RFM result (excluded orders, fewer bins...)."""


RFM_COLUMNS: tuple[str, ...] = (
    "customer_id", "recency_days", "frequency", "monetary_total", "monetary_avg",
    "tenure_days", "first_order_date", "last_order_date",
)


def _rfm_with_info(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None) -> tuple[pd.DataFrame, dict]:
    """:func:`rfm_table` plus the counts behind its warnings (used by the producer)."""
    orders, ids, _ = _orders(transactions)
    if orders.empty:
        raise DataError("transactions: the table has no rows, so there is nothing to score. "
                        "Check the input file and the data audit's cleaning counts.")
    as_of = _default_as_of(orders["order_date"]) if as_of is None else _timestamp(as_of)
    after = (orders["order_date"] >= as_of).to_numpy()
    info = {"as_of": as_of, "orders_after_as_of": int(after.sum()),
            "customers_after_as_of_only": 0}
    if after.any():
        later_only = np.setdiff1d(orders["c"].to_numpy()[after], orders["c"].to_numpy()[~after])
        info["customers_after_as_of_only"] = int(len(later_only))
        orders = orders.loc[~after].reset_index(drop=True)
    if orders.empty:
        raise DataError(f"transactions: every order is dated on or after as_of = {as_of.date()}, so "
                        "nothing is left to analyse. Choose a later as_of (or leave it empty: the day "
                        "after the last order).")
    code = orders["c"].to_numpy()
    net = np.bincount(code, weights=orders["amount"].to_numpy(), minlength=len(ids))
    purchase = orders["is_purchase"].to_numpy()
    dates = pd.Series(orders["order_date"].to_numpy()[purchase])
    g = dates.groupby(code[purchase], sort=True)
    first, last, count = g.min(), g.max(), g.size()
    buyers = count.index.to_numpy()
    as_of_dates = pd.Series(as_of, index=count.index)
    rfm = pd.DataFrame({
        "customer_id": pd.array(ids.take(buyers), dtype="string"),
        "recency_days": (as_of_dates - last.dt.normalize()).dt.days.to_numpy().astype("int64"),
        "frequency": count.to_numpy().astype("int64"),
        "monetary_total": net[buyers],
        "monetary_avg": net[buyers] / count.to_numpy(),
        "tenure_days": (as_of_dates - first.dt.normalize()).dt.days.to_numpy().astype("int64"),
        "first_order_date": first.to_numpy(),
        "last_order_date": last.to_numpy(),
    })
    info.update({
        "purchase_orders": int(purchase.sum()),
        "non_purchase_orders": int((~purchase).sum()),
        "customers_without_purchase": int(len(np.unique(code)) - len(buyers)),
        "customers_non_positive_net": int((rfm["monetary_total"] <= 0).sum()),
        "period_start": orders["order_date"].min(),
        "period_end": orders["order_date"].max(),
        "net_revenue": float(net.sum()),
    })
    return rfm, info


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
          and cancellations. It can be zero or negative (a customer returned more than they
          kept, e.g. a return of an order bought before the data starts): such customers are
          **kept** and land in the lowest M score;
        - ``monetary_avg``: ``monetary_total / frequency`` (net revenue per purchase order);
        - ``tenure_days``: days from the first purchase's date to ``as_of``;
        - ``first_order_date``, ``last_order_date``: of purchase orders.

        Customers whose every order is a return/cancellation or nets to ≤ 0 have no purchase:
        they are left out (their count is reported by :func:`build_rfm_artifacts`).

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
    0           a             5          2            10.0            9
    1           b             1          1             5.0            1
    """
    rfm, info = _rfm_with_info(transactions, as_of)
    if info["orders_after_as_of"]:
        warnings.warn(
            f"{info['orders_after_as_of']:,} order(s) dated on or after as_of = {info['as_of'].date()} "
            f"were excluded ({info['customers_after_as_of_only']:,} customer(s) have only such orders).",
            RFMWarning, stacklevel=2,
        )
    return rfm


# --------------------------------------------------------------------------- tie-aware scoring
MAX_EXACT_CANDIDATES = 1024  # distinct values up to which the balanced cut search is exact
GRID = 512  # otherwise: candidate cuts near every 1/GRID of the customers


def balanced_edges(values: np.ndarray | pd.Series, bins: int) -> np.ndarray:
    """Lower bounds of score groups 2..g: contiguous groups of tied-together values, as equal
    in size as the ties allow.

    A value is never split between two groups. With ``m`` distinct values and ``m >= bins``
    there are exactly ``bins`` non-empty groups, chosen to minimise the sum of squared group
    sizes (the variance of the group sizes); among equally balanced choices, the cuts closest
    to the plain quantile positions ``j·n/bins`` win. With ``m < bins`` every distinct value
    is its own group (``m`` groups). The search is exact (dynamic programming over all cut
    points) up to 1,024 distinct values; above that the candidate cuts are those next to every
    1/512-th of the customers (and next to the ideal quantiles), so each cut is within n/512
    customers of the best one.

    Parameters
    ----------
    values : array-like of float
        The reference values (one per customer), no NaN.
    bins : int
        Requested number of groups.

    Returns
    -------
    ndarray
        ``g - 1`` increasing values; a value ``x`` is in group ``1 + #(edges <= x)``.

    Examples
    --------
    Six customers bought once, two twice, one three times, one four times: a plain quintile
    cut would split the one-order customers; here they stay together.

    >>> balanced_edges(np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 4]), 3).tolist()
    [2.0, 3.0]
    >>> balanced_edges(np.array([1.0, 2.0, 3.0, 4.0]), 3).tolist()   # sizes 1, 2, 1
    [2.0, 4.0]
    """
    x = np.asarray(values, dtype="float64")
    distinct, counts = np.unique(x, return_counts=True)
    m, n = len(distinct), len(x)
    if m <= bins:
        return distinct[1:]
    cum = np.concatenate([[0], np.cumsum(counts)]).astype("float64")  # cum[i] = customers below distinct[i]
    gaps = np.arange(1, m)  # cut before distinct[gap]
    if m - 1 > MAX_EXACT_CANDIDATES:
        targets = np.concatenate([n * np.arange(1, GRID) / GRID, n * np.arange(1, bins) / bins])
        pos = np.searchsorted(cum[gaps], targets)
        gaps = np.unique(np.clip(np.concatenate([pos, pos - 1]), 0, m - 2)) + 1
    size_below = cum[gaps]  # customers before each candidate cut
    c = len(size_below)
    tie_weight = 1.0 / ((bins - 1) * n + 1.0)  # secondary criterion, always < 1 in total
    ideal = n * np.arange(1, bins) / bins
    cost = size_below ** 2 + tie_weight * np.abs(size_below - ideal[0])
    back = []
    later = np.triu(np.ones((c, c), dtype=bool), k=1)  # previous cut index < this cut index
    for j in range(1, bins - 1):
        step = np.where(later, cost[:, None] + (size_below[None, :] - size_below[:, None]) ** 2, np.inf)
        arg = np.argmin(step, axis=0)
        cost = step[arg, np.arange(c)] + tie_weight * np.abs(size_below - ideal[j])
        back.append(arg)
    total = cost + (n - size_below) ** 2
    cut = [int(np.argmin(total))]
    for arg in reversed(back):
        cut.append(int(arg[cut[-1]]))
    return distinct[gaps[np.array(cut[::-1])]]


def group_scores(n_groups: int, bins: int, reverse: bool = False) -> np.ndarray:
    """Score (1..bins) of each of ``n_groups`` ordered groups: group ``j`` of ``g`` scores
    ``ceil(bins·(j − ½)/g)``, the score whose band holds the middle of the group's band.

    With ``g == bins`` group ``j`` scores ``j``. With fewer groups (ties) the scores spread
    over the scale instead of bunching at the bottom: one group scores the middle, two groups
    score 2 and 4 on a 1–5 scale. ``reverse`` gives the highest score to the first group.

    Examples
    --------
    >>> group_scores(5, 5).tolist(), group_scores(2, 5).tolist(), group_scores(1, 5).tolist()
    ([1, 2, 3, 4, 5], [2, 4], [3])
    >>> group_scores(3, 5, reverse=True).tolist()
    [5, 3, 1]
    """
    j = np.arange(1, n_groups + 1)
    if reverse:
        j = j[::-1]
    return (bins * (2 * j - 1) + 2 * n_groups - 1) // (2 * n_groups)


def to_five_point(scores: np.ndarray | pd.Series, bins: int) -> np.ndarray:
    """Map scores on a 1..bins scale to the 1–5 scale of the segment map (band midpoints).

    Score ``s`` of ``bins`` covers the quantile band ``[(s−1)/bins, s/bins]``; it maps to the
    1–5 score whose band holds that band's midpoint. ``bins=5`` is unchanged; ``bins=10`` maps
    1,2→1, 3,4→2 …; ``bins=3`` maps to 1, 3, 5; ``bins=4`` to 1, 2, 4, 5.

    Examples
    --------
    >>> to_five_point(np.arange(1, 11), 10).tolist()
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    >>> to_five_point(np.array([1, 2, 3, 4]), 4).tolist()
    [1, 2, 4, 5]
    """
    s = np.asarray(scores, dtype="int64")
    return (5 * (2 * s - 1) + 2 * bins - 1) // (2 * bins)


SCORE_COLUMNS = {"r": "r_score", "f": "f_score", "m": "m_score"}
#: Score of a metric with one distinct value (it cannot separate customers): ``"middle"`` =
#: :func:`group_scores` of one group, ``"lowest"`` = 1. Frequency scores the lowest level: the
#: segment map reads a high F as "buys often" (Champions, Loyal Customers, Can't Lose Them are
#: defined by a high FM), and when every customer bought the same number of times nobody buys
#: more often than anyone else; in the usual case, everyone bought once, F = 1 ("fewest
#: orders") is literally true. Recency and spend have no such reading: they stay neutral.
SINGLE_LEVEL_SCORE: dict[str, str] = {"r": "middle", "f": "lowest", "m": "middle"}
METRIC_NAMES: dict[str, str] = {"r": "recency", "f": "frequency", "m": "monetary value"}


class RFMScorer(TransformerMixin, BaseEstimator):
    """Scores 1..``bins`` for recency, frequency and monetary value, learned from a base.

    ``fit`` learns, per metric, the value bounds of the score groups from a reference base
    (see :func:`balanced_edges`); ``transform`` scores any table with the same columns using
    those bounds, so an analyst can fit on one month and score the next.

    Ties: a value is never split between two scores (customers with the same recency,
    frequency or spend always get the same score), and groups are as balanced as ties allow.
    When a metric has fewer distinct values than ``bins`` (e.g. every customer ordered once),
    it gets fewer effective groups, spread over the scale by :func:`group_scores`, and ``fit``
    warns (:class:`RFMWarning`) — as pymc-marketing's ``rfm_segments`` falls back to fewer
    quartiles with a warning. A metric with a single value cannot separate customers: recency
    and monetary value then score the neutral middle for everyone, frequency scores 1 (see
    :data:`SINGLE_LEVEL_SCORE`). Recency is reversed: the
    most recent customers score ``bins``. New values beyond the reference range take the
    first/last score; values between two reference groups take the lower group.

    Parameters
    ----------
    bins : int, default 5
        Number of score levels (2–20).
    recency_col, frequency_col, monetary_col : str
        Columns of the RFM table to score.

    Attributes
    ----------
    edges_ : dict[str, ndarray]
        Per metric (``"r"``, ``"f"``, ``"m"``), the lower bound of groups 2..g (ascending values).
    n_groups_ : dict[str, int]
        Effective number of groups per metric (``< bins`` when ties leave too few values).
    n_customers_ : int
        Size of the reference base.

    Examples
    --------
    >>> base = pd.DataFrame({"recency_days": [1, 5, 9, 30, 60], "frequency": [5, 4, 3, 2, 1],
    ...                      "monetary_total": [50.0, 40.0, 30.0, 20.0, 10.0]})
    >>> scorer = RFMScorer(bins=5).fit(base)
    >>> scorer.transform(base)["r_score"].tolist()
    [5, 4, 3, 2, 1]
    >>> scorer.transform(pd.DataFrame({"recency_days": [2], "frequency": [9],
    ...                                "monetary_total": [45.0]})).iloc[0].tolist()
    [5, 5, 4]
    """

    def __init__(self, bins: int = 5, recency_col: str = "recency_days", frequency_col: str = "frequency",
                 monetary_col: str = "monetary_total"):
        self.bins = bins
        self.recency_col = recency_col
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col

    def _columns(self) -> dict[str, str]:
        return {"r": self.recency_col, "f": self.frequency_col, "m": self.monetary_col}

    def _values(self, rfm: pd.DataFrame, metric: str, what: str) -> np.ndarray:
        column = self._columns()[metric]
        _require_columns(rfm, [column], what, "Score the output of segkit.rfm.rfm_table or pass the "
                         "column names (recency_col, frequency_col, monetary_col).")
        values = pd.to_numeric(rfm[column], errors="coerce")
        _no_missing(values, column, what)
        return values.to_numpy(dtype="float64")

    def fit(self, rfm: pd.DataFrame, y: object = None) -> "RFMScorer":
        """Learn the score bounds from the reference base ``rfm`` (one row per customer)."""
        if isinstance(self.bins, bool) or not isinstance(self.bins, (int, np.integer)) or not 2 <= self.bins <= 20:
            raise ConfigError(f"rfm.bins = {self.bins!r}: use a whole number of score levels from 2 to 20 "
                              "(5 is the usual RFM scale).")
        if len(rfm) == 0:
            raise DataError("RFMScorer.fit: the reference table has no customers; there is nothing to "
                            "learn score bounds from. Check as_of and the transactions.")
        self.edges_, self.n_groups_ = {}, {}
        fewer = []
        for metric in "rfm":
            edges = balanced_edges(self._values(rfm, metric, "RFMScorer.fit"), int(self.bins))
            self.edges_[metric] = edges
            self.n_groups_[metric] = len(edges) + 1
            if len(edges) + 1 < self.bins:
                fewer.append(f"{self._columns()[metric]} has {len(edges) + 1} distinct value(s), "
                             f"so {SCORE_COLUMNS[metric]} uses {len(edges) + 1} level(s) "
                             f"({', '.join(map(str, sorted(set(self.level_scores(metric).tolist()))))})")
        self.n_customers_ = len(rfm)
        if fewer:
            warnings.warn(f"Fewer effective score levels than bins={self.bins}: " + "; ".join(fewer) + ".",
                          RFMWarning, stacklevel=2)
        return self

    def level_scores(self, metric: str) -> np.ndarray:
        """Score of each fitted group of ``metric`` (``"r"``, ``"f"``, ``"m"``), lowest values first.

        :func:`group_scores` of the fitted groups; a metric with a single group scores as
        :data:`SINGLE_LEVEL_SCORE` says.
        """
        n_groups = self.n_groups_[metric]
        if n_groups == 1 and SINGLE_LEVEL_SCORE[metric] == "lowest":
            return np.array([1], dtype="int64")
        return group_scores(n_groups, int(self.bins), reverse=metric == "r")

    def unseparated(self) -> list[str]:
        """Metrics (``"r"``, ``"f"``, ``"m"``) with one distinct value in the reference base: they
        cannot separate customers."""
        check_is_fitted(self, ["edges_", "n_groups_"])
        return [metric for metric in "rfm" if self.n_groups_[metric] == 1]

    def transform(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Scores ``r_score, f_score, m_score`` (int64, 1..bins) for the rows of ``rfm``."""
        check_is_fitted(self, ["edges_", "n_groups_"])
        out = {}
        for metric in "rfm":
            group = np.searchsorted(self.edges_[metric], self._values(rfm, metric, "RFMScorer.transform"),
                                    side="right")
            out[SCORE_COLUMNS[metric]] = self.level_scores(metric)[group].astype("int64")
        return pd.DataFrame(out, index=rfm.index)



# --------------------------------------------------------------------------- named segments
SCALE = 5  # the segment map is defined on 1-5 scores
BOX_KEYS = ("r", "f", "m", "fm")
SEGMENT_KEYS = ("name", "action", "description", "any_of") + BOX_KEYS


def _combo(r: int, f: int, m: int) -> str:
    return f"R{r} F{f} M{m}"


def _list_combos(combos: list[str], limit: int = 8) -> str:
    more = f" and {len(combos) - limit} more" if len(combos) > limit else ""
    return "; ".join(combos[:limit]) + more


def _score_range(value: object, where: str) -> tuple[int, int]:
    bounds = value if isinstance(value, (list, tuple)) else [value]
    ok = (len(bounds) in (1, 2) and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= SCALE
                                        for b in bounds))
    if not ok or bounds[0] > bounds[-1]:
        raise ConfigError(f"{where} = {value!r}: use one score 1-5 or a range [low, high] with "
                          "1 <= low <= high <= 5.")
    return int(bounds[0]), int(bounds[-1])


class SegmentMap:
    """Named segments over (R, F, M) scores on the 1–5 scale, validated exhaustive and disjoint.

    Built from the ``rfm.segments`` list of the config (see ``segkit/defaults/rfm.yml``): each
    segment has a ``name``, an ``action``, optional ``description`` and one box of inclusive
    score ranges over ``r, f, m`` and ``fm = ceil((f + m) / 2)`` (absent key = any score), or
    ``any_of:`` a list of such boxes. Every one of the 125 (R, F, M) combinations must fall in
    exactly one segment and every segment must be reachable; otherwise :class:`ConfigError`
    names the overlapping or uncovered combinations.

    Attributes
    ----------
    names : list of str
        Segment names in config order.
    actions, descriptions : dict
        Recommended action and description per segment.
    lookup : ndarray, shape (5, 5, 5)
        Index into ``names`` of combination ``(r-1, f-1, m-1)``.

    Examples
    --------
    >>> from segkit.config import load_config
    >>> segments = SegmentMap.from_config(load_config()["rfm"]["segments"])
    >>> segments.assign([5, 1, 3], [5, 1, 1], [5, 1, 1]).tolist()
    ['Champions', 'Lost', 'Promising']
    """

    def __init__(self, names: list[str], actions: dict[str, str], descriptions: dict[str, str],
                 lookup: np.ndarray):
        self.names = names
        self.actions = actions
        self.descriptions = descriptions
        self.lookup = lookup

    @classmethod
    def from_config(cls, segments: object, where: str = "rfm.segments") -> "SegmentMap":
        """Validate a ``segments`` list from the config and build the lookup table."""
        if not isinstance(segments, list) or not segments:
            raise ConfigError(f"{where} must be a non-empty list of segments (name, action, score ranges); "
                              f"got {type(segments).__name__}. See segkit/defaults/rfm.yml.")
        r, f, m = np.meshgrid(np.arange(1, 6), np.arange(1, 6), np.arange(1, 6), indexing="ij")
        grid = {"r": r, "f": f, "m": m, "fm": (f + m + 1) // 2}
        matches, names, actions, descriptions = [], [], {}, {}
        for i, seg in enumerate(segments):
            here = f"{where}[{i}]"
            if not isinstance(seg, dict) or not isinstance(seg.get("name"), str) or not seg["name"].strip():
                raise ConfigError(f"{here} needs a `name:` (text), e.g. `- name: Champions`.")
            name = seg["name"]
            here = f"{where} '{name}'"
            unknown = sorted(set(seg) - set(SEGMENT_KEYS))
            if unknown:
                raise ConfigError(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(SEGMENT_KEYS)}.")
            if name in actions:
                raise ConfigError(f"{here} is defined twice; give one entry with `any_of:` listing its boxes.")
            boxes = seg.get("any_of", [{k: seg[k] for k in BOX_KEYS if k in seg}])
            if "any_of" in seg and (any(k in seg for k in BOX_KEYS) or not isinstance(boxes, list) or not boxes):
                raise ConfigError(f"{here}: `any_of:` must be a non-empty list of boxes and replaces r/f/m/fm.")
            hit = np.zeros(r.shape, dtype=bool)
            for j, box in enumerate(boxes):
                if not isinstance(box, dict) or set(box) - set(BOX_KEYS):
                    raise ConfigError(f"{here}: box {j + 1} must be a mapping over {', '.join(BOX_KEYS)}; got {box!r}.")
                inside = np.ones(r.shape, dtype=bool)
                for key, value in box.items():
                    lo, hi = _score_range(value, f"{here}: {key}")
                    inside &= (grid[key] >= lo) & (grid[key] <= hi)
                hit |= inside
            action = seg.get("action", "")
            if not isinstance(action, str):
                raise ConfigError(f"{here}: `action:` must be text; got {action!r}.")
            names.append(name)
            actions[name] = action
            descriptions[name] = str(seg.get("description", ""))
            matches.append(hit)
        stack = np.stack(matches)
        count = stack.sum(axis=0)
        problems = []
        overlap = [(_combo(*(np.array(ix) + 1)), [names[s] for s in np.flatnonzero(stack[(slice(None),) + ix])])
                   for ix in zip(*np.nonzero(count > 1))]
        if overlap:
            problems.append(f"{len(overlap)} combination(s) match more than one segment: "
                            + _list_combos([f"{c} ({', '.join(s)})" for c, s in overlap]))
        gaps = [_combo(*(np.array(ix) + 1)) for ix in zip(*np.nonzero(count == 0))]
        if gaps:
            problems.append(f"{len(gaps)} combination(s) match no segment: {_list_combos(gaps)}")
        unreachable = [n for n, hit in zip(names, matches) if not hit.any()]
        if unreachable:
            problems.append(f"segment(s) matching no combination: {', '.join(unreachable)}")
        if problems:
            raise ConfigError(f"{where}: every (R, F, M) score combination must fall in exactly one segment. "
                              + ". ".join(problems) + ". Adjust the score ranges in your config.")
        return cls(names, actions, descriptions, stack.argmax(axis=0))

    def assign(self, r: object, f: object, m: object) -> pd.Series:
        """Segment name of each (r, f, m) triple of 1–5 scores."""
        r, f, m = (np.asarray(v, dtype="int64") for v in (r, f, m))
        idx = self.lookup[r - 1, f - 1, m - 1]
        return pd.Series(np.array(self.names, dtype=object)[idx], dtype="string")

    def combinations(self) -> pd.DataFrame:
        """All 125 combinations with their segment (``r, f, m, fm, segment``)."""
        r, f, m = (a.ravel() for a in np.meshgrid(*[np.arange(1, 6)] * 3, indexing="ij"))
        return pd.DataFrame({"r": r, "f": f, "m": m, "fm": (f + m + 1) // 2,
                             "segment": self.assign(r, f, m).to_numpy()})


# --------------------------------------------------------------------------- loyalty tiers
class LoyaltyTiers(BaseEstimator):
    """Loyalty tiers (e.g. Bronze/Silver/Gold/Platinum) by rules on one column.

    Parameters
    ----------
    levels : list of dict
        ``{"name": ..., "min": ...}`` from the highest tier to the lowest; the last tier takes
        everyone else (its ``min`` is ignored).
    basis : str
        Column ranked (default ``monetary_total``).
    method : {"percentile", "threshold"}
        ``percentile``: ``min`` is the share (0–1) of the reference customers with a strictly
        lower value, so tied customers always share a tier; ``fit`` turns it into a value
        threshold. ``threshold``: ``min`` is a value of ``basis``.

    Attributes
    ----------
    thresholds_ : dict[str, float]
        Lowest value of ``basis`` for each tier but the last (``inf`` = tier empty).

    Examples
    --------
    >>> base = pd.DataFrame({"monetary_total": [10.0, 20.0, 20.0, 40.0, 80.0]})
    >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 0.6}, {"name": "Basic"}]).fit(base)
    >>> tiers.thresholds_
    {'Gold': 40.0}
    >>> tiers.transform(base).tolist()
    ['Basic', 'Basic', 'Basic', 'Gold', 'Gold']
    """

    def __init__(self, levels: list[dict], basis: str = "monetary_total", method: str = "percentile"):
        self.levels = levels
        self.basis = basis
        self.method = method

    @classmethod
    def from_config(cls, tiers: object, where: str = "rfm.tiers") -> "LoyaltyTiers":
        """Build from the ``rfm.tiers`` config section, validating it."""
        if not isinstance(tiers, dict) or not isinstance(tiers.get("levels"), list) or len(tiers["levels"]) < 2:
            raise ConfigError(f"{where} needs `levels:` with at least two tiers, highest first, e.g. "
                              "[{name: Gold, min: 0.8}, {name: Bronze}].")
        method = tiers.get("method", "percentile")
        if method not in ("percentile", "threshold"):
            raise ConfigError(f"{where}.method = {method!r}: use percentile or threshold.")
        levels = tiers["levels"]
        mins = []
        for i, level in enumerate(levels):
            if not isinstance(level, dict) or not isinstance(level.get("name"), str):
                raise ConfigError(f"{where}.levels[{i}] needs a `name:`; got {level!r}.")
            if i < len(levels) - 1:
                value = level.get("min")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{where} tier '{level['name']}' needs a numeric `min:`.")
                if method == "percentile" and not 0 <= value <= 1:
                    raise ConfigError(f"{where} tier '{level['name']}': min = {value} must be a share "
                                      "between 0 and 1 with method percentile (0.95 = top 5 %).")
                mins.append(value)
        if any(a <= b for a, b in zip(mins, mins[1:])):
            raise ConfigError(f"{where}: list tiers from highest to lowest with decreasing `min` "
                              f"(got {mins}).")
        names = [lv["name"] for lv in levels]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: tier names must be unique (got {names}).")
        return cls(levels=levels, basis=tiers.get("basis", "monetary_total"), method=method)

    def _values(self, rfm: pd.DataFrame, what: str) -> np.ndarray:
        _require_columns(rfm, [self.basis], what, "Set rfm.tiers.basis to a column of the RFM table.")
        values = pd.to_numeric(rfm[self.basis], errors="coerce")
        _no_missing(values, self.basis, what)
        return values.to_numpy(dtype="float64")

    @property
    def names(self) -> list[str]:
        """Tier names from highest to lowest."""
        return [lv["name"] for lv in self.levels]

    def fit(self, rfm: pd.DataFrame, y: object = None) -> "LoyaltyTiers":
        """Turn the rules into value thresholds on the reference base ``rfm``."""
        x = self._values(rfm, "LoyaltyTiers.fit")
        self.thresholds_ = {}
        if self.method == "threshold":
            self.thresholds_ = {lv["name"]: float(lv["min"]) for lv in self.levels[:-1]}
            return self
        if len(x) == 0:
            raise DataError("LoyaltyTiers.fit: the reference table has no customers.")
        distinct, counts = np.unique(x, return_counts=True)
        share_below = np.concatenate([[0], np.cumsum(counts)[:-1]]) / len(x)
        for lv in self.levels[:-1]:
            pos = np.searchsorted(share_below, float(lv["min"]) - 1e-12, side="left")
            self.thresholds_[lv["name"]] = float(distinct[pos]) if pos < len(distinct) else float("inf")
        return self

    def transform(self, rfm: pd.DataFrame) -> pd.Series:
        """Tier name of each row (string Series, same index)."""
        check_is_fitted(self, "thresholds_")
        x = self._values(rfm, "LoyaltyTiers.transform")
        tier = np.full(len(x), self.levels[-1]["name"], dtype=object)
        for lv in reversed(self.levels[:-1]):  # highest tier written last wins
            tier[x >= self.thresholds_[lv["name"]]] = lv["name"]
        return pd.Series(tier, index=rfm.index, dtype="string")


# --------------------------------------------------------------------------- revenue concentration
def _net_sorted_desc(rfm: pd.DataFrame, column: str) -> np.ndarray:
    _require_columns(rfm, [column], "RFM table", "Pass the output of segkit.rfm.rfm_table.")
    return np.sort(rfm[column].to_numpy(dtype="float64"))[::-1]


def revenue_concentration(rfm: pd.DataFrame, top_share: float = 0.2, column: str = "monetary_total") -> float:
    """Share of net revenue from the top ``top_share`` of customers (by ``column``).

    The top group is the ``ceil(top_share · n)`` customers with the highest net revenue (ties
    at the boundary do not matter: tied customers contribute the same amount). NaN when the
    total net revenue is not positive.

    Examples
    --------
    >>> rfm = pd.DataFrame({"monetary_total": [100.0, 10.0, 10.0, 5.0, 5.0]})
    >>> revenue_concentration(rfm, 0.2)
    0.7692307692307693
    """
    if not 0 < top_share <= 1:
        raise ConfigError(f"rfm.top_share = {top_share!r}: use a share between 0 and 1 (0.2 = top 20 %).")
    values = _net_sorted_desc(rfm, column)
    total = values.sum()
    if len(values) == 0 or total <= 0:
        return float("nan")
    k = int(np.ceil(top_share * len(values) - 1e-9))
    return float(values[:k].sum() / total)


def pareto_curve(rfm: pd.DataFrame, points: int | None = 201, column: str = "monetary_total") -> pd.DataFrame:
    """Cumulative share of net revenue against cumulative share of customers (best first).

    Returns ``customer_share`` (0..1) and ``revenue_share`` (0 at 0; 1 at 1 when total net is
    positive; customers with negative net make the curve overshoot 1 before it ends). With
    ``points`` the curve is sampled at that many evenly spaced customer shares (exact values
    at those points); None keeps one point per customer.

    Examples
    --------
    >>> rfm = pd.DataFrame({"monetary_total": [60.0, 30.0, 10.0, 0.0]})
    >>> pareto_curve(rfm, points=None)["revenue_share"].tolist()
    [0.0, 0.6, 0.9, 1.0, 1.0]
    """
    values = _net_sorted_desc(rfm, column)
    n = len(values)
    cum = np.concatenate([[0.0], np.cumsum(values)])
    total = cum[-1]
    customers = np.arange(n + 1)
    if points is not None and n + 1 > points:
        customers = np.unique(np.round(np.linspace(0, n, points)).astype("int64"))
    share = cum[customers] / total if total > 0 else np.full(len(customers), np.nan)
    return pd.DataFrame({"customer_share": customers / max(n, 1), "revenue_share": share})


# --------------------------------------------------------------------------- settings
MONETARY_COLUMNS = ("monetary_total", "monetary_avg")
SEGMENT_CSV_COLUMNS: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "monetary_avg",
    "r_score", "f_score", "m_score", "rfm_segment", "tier", "recommended_action",
)


@dataclass(frozen=True)
class RFMSettings:
    """The validated ``rfm`` config section."""

    bins: int
    monetary_column: str
    top_share: float
    sample_size: int
    segments: SegmentMap
    tiers: LoyaltyTiers

    @classmethod
    def from_config(cls, section: dict | None) -> "RFMSettings":
        """Validate the ``rfm`` section (defaults from ``segkit/defaults/rfm.yml`` if absent).

        Examples
        --------
        >>> RFMSettings.from_config(None).bins
        5
        """
        from segkit.config import load_config
        cfg = {**load_config()["rfm"], **(section or {})}
        bins = cfg.get("bins")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 20:
            raise ConfigError(f"rfm.bins = {bins!r}: use a whole number of score levels from 2 to 20 "
                              "(5 is the usual RFM scale).")
        if cfg.get("monetary_column") not in MONETARY_COLUMNS:
            raise ConfigError(f"rfm.monetary_column = {cfg.get('monetary_column')!r}: use one of "
                              f"{', '.join(MONETARY_COLUMNS)}.")
        top = cfg.get("top_share")
        if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 1:
            raise ConfigError(f"rfm.top_share = {top!r}: use a share between 0 and 1 (0.2 = top 20 %).")
        size = cfg.get("sample_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"rfm.sample_size = {size!r}: use a whole number ≥ 0.")
        return cls(bins=bins, monetary_column=cfg["monetary_column"], top_share=float(top), sample_size=size,
                   segments=SegmentMap.from_config(cfg.get("segments")),
                   tiers=LoyaltyTiers.from_config(cfg.get("tiers")))


# --------------------------------------------------------------------------- the analysis
@dataclass
class RFMResult:
    """Everything notebook 02 shows (see :func:`analyse_rfm`)."""

    rfm: pd.DataFrame           # one row per buying customer: RFM values, scores, segment, tier, action
    segments: pd.DataFrame      # segment table (non-empty segments, config order)
    tiers: pd.DataFrame         # tier table (non-empty tiers, highest first)
    pareto: pd.DataFrame        # customer_share, revenue_share
    top_share: float            # e.g. 0.2
    top_share_revenue: float    # share of net revenue from the top_share customers (NaN if net ≤ 0)
    as_of: pd.Timestamp
    info: dict                  # counts: orders, exclusions, period, net revenue
    warnings: list[str]
    settings: RFMSettings
    scorer: RFMScorer
    tier_model: LoyaltyTiers
    seed: int = 0
    currency: str = ""          # report.currency of the config, for money in texts ("" = not set)


def _group_table(rfm: pd.DataFrame, by: str, label: str, order: list[str],
                 first: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Customers, shares of customers and net revenue, ``first`` aggregates, mean F and M per
    non-empty group of ``by``, rows in ``order``, the group in column ``label``."""
    total = rfm["monetary_total"].sum()
    g = rfm.groupby(by, sort=False)
    table = pd.DataFrame({
        "customers": g.size().astype("int64"),
        "share_of_customers": g.size() / max(len(rfm), 1),
        "share_of_revenue": g["monetary_total"].sum() / total if total > 0 else np.nan,
        **{name: g[column].agg(how) for name, (column, how) in first.items()},
        "mean_frequency": g["frequency"].mean(),
        "mean_monetary_total": g["monetary_total"].mean(),
    })
    table = table.loc[[n for n in order if n in table.index]].rename_axis(label).reset_index()
    table[label] = table[label].astype("string")
    return table


def segment_table(rfm: pd.DataFrame, segments: SegmentMap) -> pd.DataFrame:
    """Per non-empty segment (config order): customers, shares, mean R/F/M, recommended action.

    Examples
    --------
    >>> from segkit.config import load_config
    >>> seg = SegmentMap.from_config(load_config()["rfm"]["segments"])
    >>> rfm = pd.DataFrame({"rfm_segment": ["Lost", "Champions", "Champions"],
    ...                     "recency_days": [300, 2, 4], "frequency": [1, 9, 7],
    ...                     "monetary_total": [10.0, 500.0, 490.0]})
    >>> segment_table(rfm, seg)[["segment", "customers", "share_of_revenue"]]
         segment  customers  share_of_revenue
    0  Champions          2              0.99
    1       Lost          1              0.01
    """
    table = _group_table(rfm, "rfm_segment", "segment", segments.names,
                         {"mean_recency_days": ("recency_days", "mean")})
    table["recommended_action"] = table["segment"].map(segments.actions).astype("string")
    return table


def tier_table(rfm: pd.DataFrame, tiers: LoyaltyTiers) -> pd.DataFrame:
    """Per non-empty tier (highest first): customers, shares, lowest basis value, means.

    Examples
    --------
    >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 100}, {"name": "Basic"}], method="threshold")
    >>> rfm = pd.DataFrame({"tier": ["Gold", "Basic", "Basic"], "monetary_total": [150.0, 30.0, 20.0],
    ...                     "frequency": [3, 1, 1]})
    >>> tier_table(rfm, tiers)[["tier", "customers", "share_of_revenue"]]
        tier  customers  share_of_revenue
    0   Gold          1              0.75
    1  Basic          2              0.25
    """
    return _group_table(rfm, "tier", "tier", tiers.names, {f"min_{tiers.basis}": (tiers.basis, "min")})


def analyse_rfm(
    transactions: pd.DataFrame | None,
    as_of: str | pd.Timestamp | None = None,
    settings: RFMSettings | None = None,
    seed: int = 0,
    *,
    base: tuple[pd.DataFrame, dict] | None = None,
) -> RFMResult:
    """The whole RFM analysis of notebook 02 on a transactions table (no files written).

    ``base`` = an RFM table and its counts computed elsewhere (out-of-core,
    :func:`segkit.engine.rfm_for`); then ``transactions`` is not used.

    Builds :func:`rfm_table`, fits :class:`RFMScorer` and :class:`LoyaltyTiers` on this base,
    assigns segments (scores mapped to the 1–5 scale first when ``bins != 5``, see
    :func:`to_five_point`), tiers and actions, and the segment, tier and Pareto tables.
    :class:`RFMWarning` messages are collected into ``result.warnings`` (shown in the summary)
    instead of being printed.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> result = analyse_rfm(tx)
    >>> result.rfm[["customer_id", "r_score", "f_score", "m_score", "rfm_segment"]]
      customer_id  r_score  f_score  m_score         rfm_segment
    0           a        3        4        5     Loyal Customers
    1           b        1        4        3     Can't Lose Them
    2           c        5        2        1  Potential Loyalist
    >>> result.warnings[0]  # doctest: +ELLIPSIS
    'Fewer effective score levels than bins=5: recency_days has 3 distinct value(s), so r_score uses 3 level(s) (1, 3, 5); ...'
    """
    settings = settings or RFMSettings.from_config(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RFMWarning)
        rfm, info = base if base is not None else _rfm_with_info(transactions, as_of)
        if info["orders_after_as_of"]:
            warnings.warn(f"{info['orders_after_as_of']:,} order(s) dated on or after as_of = "
                          f"{info['as_of'].date()} were excluded ({info['customers_after_as_of_only']:,} "
                          "customer(s) have only such orders).", RFMWarning)
        scorer = RFMScorer(bins=settings.bins, monetary_col=settings.monetary_column).fit(rfm)
        scores = scorer.transform(rfm)
        tier_model = settings.tiers.fit(rfm)
    messages = [str(w.message) for w in caught if issubclass(w.category, RFMWarning)]
    for w in caught:  # anything else is not ours to swallow
        if not issubclass(w.category, RFMWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    rfm = pd.concat([rfm, scores], axis=1)
    five = {k: to_five_point(rfm[k], settings.bins) for k in ("r_score", "f_score", "m_score")}
    rfm["rfm_segment"] = settings.segments.assign(five["r_score"], five["f_score"], five["m_score"]).to_numpy()
    rfm["rfm_segment"] = rfm["rfm_segment"].astype("string")
    rfm["tier"] = tier_model.transform(rfm)
    rfm["recommended_action"] = rfm["rfm_segment"].map(settings.segments.actions).astype("string")
    return RFMResult(
        rfm=rfm,
        segments=segment_table(rfm, settings.segments),
        tiers=tier_table(rfm, tier_model),
        pareto=pareto_curve(rfm),
        top_share=settings.top_share,
        top_share_revenue=revenue_concentration(rfm, settings.top_share),
        as_of=info["as_of"],
        info=info,
        warnings=messages,
        settings=settings,
        scorer=scorer,
        tier_model=tier_model,
        seed=seed,
    )


def score_table(rfm: pd.DataFrame, scorer: RFMScorer) -> pd.DataFrame:
    """Value range and customers of every score level, per metric (how ties were resolved).

    Examples
    --------
    >>> base = pd.DataFrame({"recency_days": [1, 5, 9, 30], "frequency": [1, 1, 1, 2],
    ...                      "monetary_total": [5.0, 10.0, 20.0, 40.0]})
    >>> scorer = RFMScorer(bins=2).fit(base)
    >>> score_table(pd.concat([base, scorer.transform(base)], axis=1), scorer).iloc[2:4]
          metric  score  lowest  highest  customers
    2  frequency      1     1.0      1.0          3
    3  frequency      2     2.0      2.0          1
    """
    parts = []
    for metric, column in scorer._columns().items():
        g = rfm.groupby(SCORE_COLUMNS[metric])[column]
        part = g.agg(lowest="min", highest="max", customers="size").rename_axis("score").reset_index()
        part.insert(0, "metric", column)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["metric"] = out["metric"].astype("string")
    out[["lowest", "highest"]] = out[["lowest", "highest"]].astype("float64")
    return out


def segment_choices(segments: pd.DataFrame, min_cell_size: int = 0) -> dict[str, str]:
    """Explorer choices: segments with at least ``min_cell_size`` customers (smaller ones are
    suppressed in shared reports, so their customers are not listed either).

    Examples
    --------
    >>> segment_choices(pd.DataFrame({"segment": ["Champions", "Lost"], "customers": [40, 3]}), 10)
    {'Champions': 'Champions'}
    """
    keep = segments.loc[segments["customers"] >= min_cell_size, "segment"]
    return {str(s): str(s) for s in keep}


# --------------------------------------------------------------------------- explorer and summary
PROFILE_COLUMNS: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "monetary_avg", "tenure_days",
    "r_score", "f_score", "m_score",
)


def segment_profile(rfm: pd.DataFrame, segment: str, n_sample: int = 5, seed: int = 0) -> pd.DataFrame:
    """Profile of one segment (mean and median row) followed by a random sample of its customers.

    The explorer of notebook 02 shows this per segment; display it through
    :func:`segkit.pipeline.shareable` so the sampled ``customer_id`` are pseudonymised.

    Parameters
    ----------
    rfm : DataFrame
        ``RFMResult.rfm``.
    segment : str
        A segment present in ``rfm["rfm_segment"]``.
    n_sample : int
        Customers sampled (fewer if the segment is smaller); sorted by net revenue.
    seed : int
        Random seed of the sample.

    Examples
    --------
    >>> rfm = pd.DataFrame({"customer_id": ["a", "b", "c"], "rfm_segment": ["Lost", "Lost", "Champions"],
    ...                     "recency_days": [300, 200, 2], "frequency": [1, 1, 8],
    ...                     "monetary_total": [10.0, 30.0, 900.0], "monetary_avg": [10.0, 30.0, 112.5],
    ...                     "tenure_days": [300, 200, 400], "r_score": [1, 1, 5], "f_score": [1, 1, 5],
    ...                     "m_score": [1, 2, 5], "tier": ["Bronze", "Bronze", "Gold"]})
    >>> segment_profile(rfm, "Lost", n_sample=1, seed=0)[["row", "customer_id", "monetary_total"]]
                       row customer_id  monetary_total
    0  mean of 2 customers        <NA>            20.0
    1               median        <NA>            20.0
    2      sample customer           b            30.0
    """
    _require_columns(rfm, ["customer_id", "rfm_segment", "tier", *PROFILE_COLUMNS], "RFM table",
                     "Pass RFMResult.rfm.")
    members = rfm[rfm["rfm_segment"] == segment]
    if members.empty:
        present = ", ".join(pd.unique(rfm["rfm_segment"].dropna().astype(str)))
        raise ConfigError(f"No customer is in segment {segment!r}. Segments present: {present or 'none'}.")
    stats = members[list(PROFILE_COLUMNS)].astype("float64")
    summary = pd.DataFrame([stats.mean(), stats.median()])
    summary.insert(0, "row", [f"mean of {len(members):,} customers", "median"])
    sample = members.sample(n=min(n_sample, len(members)), random_state=seed)
    sample = sample.sort_values(["monetary_total", "customer_id"], ascending=[False, True], kind="mergesort")
    sample = sample[["customer_id", *PROFILE_COLUMNS, "tier"]].assign(row="sample customer")
    out = pd.concat([summary, sample], ignore_index=True)
    out["row"] = out["row"].astype("string")
    out["customer_id"] = out["customer_id"].astype("string")
    out["tier"] = out["tier"].astype("string")
    return out[["row", "customer_id", *PROFILE_COLUMNS, "tier"]]


def _count(n: int, word: str) -> str:
    """``"1 customer"``, ``"2,540 customers"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.0f}%"


def _money(value: float, currency: str = "") -> str:
    """``"EUR 1,934,530"`` (whole units; no prefix without a currency).

    Examples
    --------
    >>> _money(1934530.01, "EUR"), _money(-12.6)
    ('EUR 1,934,530', '-13')
    """
    return f"{currency} {value:,.0f}" if currency else f"{value:,.0f}"


def frequency_note(result: RFMResult) -> str:
    """Markdown for the distributions: how purchase counts spread and what ties do to the F score.

    Generated from the data, so it holds on any shop (no "most customers order once" unless they do).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabcd"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> frequency_note(analyse_rfm(tx)).split(". ")[1]
    '75% of customers bought once and 100% at most twice (median 1 purchase order)'
    """
    f = result.rfm["frequency"].to_numpy()
    n = len(f)
    if n == 0:
        return "No buying customers to describe."
    values, counts = np.unique(f, return_counts=True)
    top = int(np.argmax(counts))
    groups = result.rfm["f_score"].value_counts()
    levels = len(groups)
    median = float(np.median(f))
    text = (f"The dashed lines are the bounds between score levels. {_pct(float((f == 1).mean()))} of customers bought "
            f"once and {_pct(float((f <= 2).mean()))} at most twice (median {median:g} purchase "
            f"order{'' if median == 1 else 's'}). Frequency takes {len(values):,} distinct "
            f"value{'' if len(values) == 1 else 's'}, the most common ({values[top]:g}) shared by "
            f"{_pct(counts[top] / n)} of customers. Customers with the same value always get the same score, so ")
    if levels < result.settings.bins:
        text += f"F uses only {levels} of the {result.settings.bins} levels here and "
    text += (f"the F levels hold between {int(groups.min()):,} and {int(groups.max()):,} customers (an even split "
             f"would be about {n / max(levels, 1):,.0f} each); the table below gives every level.")
    return text


def separation_statements(result: RFMResult) -> list[str]:
    """One sentence per metric that cannot separate customers (a single value in the base).

    Says what every customer shares and what the score and the segments do with it (see
    :data:`SINGLE_LEVEL_SCORE`); empty when every metric separates customers.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("abc"), "order_id": list("123"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    ...                    "amount": [50.0, 60.0, 20.0]})
    >>> print(separation_statements(analyse_rfm(tx))[0])
    Frequency cannot separate customers: everyone bought 1 time (purchase orders), so every customer scores F = 1 and no segment claims frequent buying (Champions, Loyal Customers, Can't Lose Them cannot occur): the segments rest on recency and monetary value.
    """
    rfm, scorer = result.rfm, result.scorer
    out = []
    for metric in scorer.unseparated():
        column = scorer._columns()[metric]
        value = float(rfm[column].iloc[0]) if len(rfm) else float("nan")
        score = int(scorer.level_scores(metric)[0])
        if metric == "f":
            combos = result.settings.segments.combinations()
            five = int(to_five_point(np.array([score]), scorer.bins)[0])
            reachable = set(combos.loc[combos["f"] == five, "segment"])
            excluded = [name for name in result.settings.segments.names if name not in reachable]
            out.append(f"Frequency cannot separate customers: everyone bought {value:,.0f} "
                       f"time{'' if value == 1 else 's'} (purchase orders), so every customer scores F = {score} "
                       "and no segment claims frequent buying"
                       + (f" ({', '.join(excluded)} cannot occur)" if excluded else "")
                       + ": the segments rest on recency and monetary value.")
        elif metric == "r":
            out.append(f"Recency cannot separate customers: every last purchase was {value:,.0f} "
                       f"day{'' if value == 1 else 's'} before {result.as_of:%Y-%m-%d}, so every customer scores "
                       f"the neutral R = {score}: read the segment names for frequency and spend only, not for "
                       "recency (no customer bought more recently than another).")
        else:
            what = "net revenue per purchase order" if column == "monetary_avg" else "net revenue"
            out.append(f"Monetary value cannot separate customers: everyone's {what} is "
                       f"{_money(value, result.currency) if abs(value) >= 1 else f'{value:g}'}, so every customer "
                       f"scores the neutral M = {score}: read the segment names for recency and frequency only, "
                       "not for spend (no customer spent more than another).")
    return out


def separation_note(result: RFMResult) -> str:
    """Markdown above the segment table: which metrics separate customers, and what the segments rest on.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aab"), "order_id": list("123"), "amount": [5.0, 9.0, 20.0],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])})
    >>> separation_note(analyse_rfm(tx))
    'Recency, frequency and monetary value each separate customers here (2, 2 and 2 score levels), so every segment rests on all three.'
    """
    statements = separation_statements(result)
    if statements:  # segment names and the currency come from the config: escaped
        return " ".join(f"**{escape_markdown(head)}**: {escape_markdown(body)}"
                        for head, body in (s.split(": ", 1) for s in statements))
    levels = [result.scorer.n_groups_[m] for m in "rfm"]
    return (f"Recency, frequency and monetary value each separate customers here ({levels[0]}, {levels[1]} and "
            f"{levels[2]} score levels), so every segment rests on all three.")


def tiers_note(result: RFMResult) -> str:
    """Markdown list of the loyalty-tier rules of this run, with the value thresholds they gave.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": [f"c{i:02d}" for i in range(20)], "order_id": [str(i) for i in range(20)],
    ...                    "order_date": pd.to_datetime(["2024-01-01"] * 20), "amount": np.arange(1.0, 21.0)})
    >>> print(tiers_note(analyse_rfm(tx)))
    - **Platinum**: net revenue of at least 20 (spends more than at least 95% of customers)
    - **Gold**: net revenue of at least 17 (spends more than at least 80% of customers)
    - **Silver**: net revenue of at least 11 (spends more than at least 50% of customers)
    - **Bronze**: everyone else
    """
    model = result.tier_model
    what = {"monetary_total": "net revenue", "monetary_avg": "net revenue per purchase order",
            "frequency": "purchase orders"}.get(model.basis, f"`{model.basis}`")
    money = model.basis in ("monetary_total", "monetary_avg")
    lines = []
    for level in model.levels[:-1]:
        value = model.thresholds_[level["name"]]
        rule = (f"{'spends' if money else 'has'} more than at least {float(level['min']):.0%} of customers"
                if model.method == "percentile" else "")
        if not np.isfinite(value):
            lines.append(f"- **{escape_markdown(level['name'])}**: empty (no customer {rule or 'reaches the threshold'})")
            continue
        amount = _money(value, escape_markdown(result.currency)) if money else f"{value:,.0f}"
        lines.append(f"- **{escape_markdown(level['name'])}**: {what} of at least {amount}" + (f" ({rule})" if rule else ""))
    lines.append(f"- **{escape_markdown(model.levels[-1]['name'])}**: everyone else")
    return "\n".join(lines)


def summarize(result: RFMResult) -> dict:
    """The executive summary of notebook 02, generated from the results.

    Returns the keyword arguments of :func:`segkit.pipeline.show_summary`: ``title``,
    ``analysed``, ``findings`` (3–5), ``actions``, ``headlines`` and ``warnings``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> s = summarize(analyse_rfm(tx))
    >>> s["findings"][0]
    'The top 20% of customers (1 of 3) bring 69% of net revenue.'
    """
    rfm, seg, info = result.rfm, result.segments, result.info
    n = len(rfm)
    net = float(rfm["monetary_total"].sum())
    top_k = int(np.ceil(result.top_share * n - 1e-9))
    excluded = []
    if info["non_purchase_orders"]:
        excluded.append(f"{_count(info['non_purchase_orders'], 'order')} netting to zero or less (returns, "
                        "cancellations) deducted from revenue but not counted as purchases")
    if info["customers_without_purchase"]:
        excluded.append(f"{_count(info['customers_without_purchase'], 'customer')} without any purchase left out")
    analysed = (f"{_count(n, 'buying customer')} with {_count(info['purchase_orders'], 'purchase order')} from "
                f"{info['period_start']:%Y-%m-%d} to {info['period_end']:%Y-%m-%d}, scored as of "
                f"{result.as_of:%Y-%m-%d} on {result.settings.bins} levels per R, F and M. Net revenue "
                f"{_money(net, result.currency)} (returns deducted)" + ("; " + "; ".join(excluded) if excluded else "") + ".")

    findings = []
    separation = separation_statements(result)
    if separation:  # first: it changes how every segment below reads
        findings.append(" ".join(separation))
    if pd.isna(result.top_share_revenue):
        findings.append("Net revenue is not positive overall, so revenue concentration is not defined.")
    else:
        findings.append(f"The top {_pct(result.top_share)} of customers ({top_k:,} of {n:,}) bring "
                        f"{_pct(result.top_share_revenue)} of net revenue.")
    largest = seg.sort_values(["customers", "share_of_revenue"], ascending=False, kind="mergesort").iloc[0]
    findings.append(f"The largest segment is {largest['segment']}: {_count(largest['customers'], 'customer')} "
                    f"({_pct(largest['share_of_customers'])}) bringing {_pct(largest['share_of_revenue'])} "
                    "of net revenue.")
    by_name = seg.set_index("segment")
    best = [s for s in ("Champions", "Loyal Customers") if s in by_name.index]
    if best:
        findings.append(f"{' and '.join(best)} are {_pct(by_name.loc[best, 'share_of_customers'].sum())} of "
                        f"customers and bring {_pct(by_name.loc[best, 'share_of_revenue'].sum())} of net revenue.")
    risk = [s for s in ("At Risk", "Can't Lose Them") if s in by_name.index]
    if risk:
        members = rfm[rfm["rfm_segment"].isin(risk)]
        findings.append(f"{_count(len(members), 'valuable past customer')} ({' and '.join(risk)}) not buying for "
                        f"{members['recency_days'].median():.0f} days (median) brought "
                        f"{_pct(by_name.loc[risk, 'share_of_revenue'].sum())} of net revenue.")
    once = float((rfm["frequency"] == 1).mean())
    findings.append(f"{_pct(once)} of customers bought only once"
                    + (f"; {_count(info['customers_non_positive_net'], 'customer')} with zero or negative net "
                       "revenue after returns." if info["customers_non_positive_net"] else "."))
    findings = findings[:5]

    ranked = seg.sort_values(["share_of_revenue", "customers"], ascending=False, kind="mergesort")
    chosen = list(ranked["segment"].head(3))
    for name in risk + [largest["segment"]]:
        if name not in chosen:
            chosen.append(name)
    actions = [f"{name} ({_count(by_name.loc[name, 'customers'], 'customer')}, "
               f"{_pct(by_name.loc[name, 'share_of_revenue'])} of revenue): {by_name.loc[name, 'recommended_action']}"
               for name in chosen if by_name.loc[name, "recommended_action"]]

    headlines = {
        "Buying customers": n,
        "Net revenue" + (f" ({result.currency})" if result.currency else ""): round(net),
        f"Revenue share of top {_pct(result.top_share)}": (None if pd.isna(result.top_share_revenue)
                                                          else round(100 * result.top_share_revenue, 1)),
        "Median recency (days)": int(np.ceil(rfm["recency_days"].median())),
        "One-time buyers (%)": round(100 * once, 1),
    }
    return {"title": "RFM segmentation", "analysed": analysed, "findings": findings, "actions": actions,
            "headlines": headlines, "warnings": list(result.warnings)}


# --------------------------------------------------------------------------- producer
def build_rfm_artifacts(ctx) -> RFMResult:
    """Producer of notebook 02: ``artifacts/rfm.parquet`` and its ``customer_segments.csv`` columns.

    Reads ``transactions_clean`` and ``customers_clean`` (built by the audit in interactive
    mode), runs :func:`analyse_rfm` with the ``rfm`` config section and the run's ``as_of``
    and seed, writes ``rfm.parquet`` (one row per buying customer: ``customer_id``, the RFM
    values, scores, ``rfm_segment``, ``tier``, ``recommended_action``) and adds
    ``recency_days … recommended_action`` to ``customer_segments.csv`` for every customer of
    ``customers_clean`` (empty for customers without a purchase).

    Examples
    --------
    >>> from segkit.pipeline import open_run
    >>> result = build_rfm_artifacts(open_run("02_rfm"))  # doctest: +SKIP
    """
    try:
        settings = RFMSettings.from_config(ctx.section("rfm"))
    except ConfigError as exc:
        if ctx.config.get("_source"):  # name the user's file
            raise ConfigError(f"{ctx.config['_source']}: {exc}") from None
        raise
    from segkit.engine import rfm_for  # in memory or out-of-core, as the audit chose

    base = rfm_for(ctx)
    customers = ctx.read_artifact("customers_clean")
    _require_columns(customers, ["customer_id"], "artifacts/customers_clean.parquet",
                     "Re-run 01_data_audit to rebuild it.")
    result = analyse_rfm(None, ctx.as_of, settings, seed=ctx.seed, base=base)
    result.currency = str((ctx.config.get("report") or {}).get("currency") or "")
    ctx.write_artifact("rfm", result.rfm)
    columns = result.rfm[["customer_id", *SEGMENT_CSV_COLUMNS]]
    others = customers.loc[~customers["customer_id"].isin(columns["customer_id"]), ["customer_id"]]
    ctx.update_customer_segments(pd.concat([columns, others.astype({"customer_id": "string"})],
                                           ignore_index=True))
    return result
