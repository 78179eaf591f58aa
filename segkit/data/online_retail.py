"""An Online-Retail-like shop export with planted truth (the UCI "Online Retail" layout).

:func:`segkit.data.datasets.generate_shop` shares segkit's own assumptions. This generator
reproduces what the public UCI "Online Retail" export of a UK gift wholesaler does instead
(``data/configs/online_retail_ii.yml`` reads its file), and returns what it planted, so tests can
check segkit against the truth rather than against itself:

- **Layout**: ``Invoice, StockCode, Description, Quantity, InvoiceDate, Price, Customer ID,
  Country``, one row per invoice line, no amount column; customer ids are floats as text
  (``"17850.0"``), empty for guest checkouts (``guest_line_share`` of the lines, about 25 %).
- **History that starts mid-life**: the shop opened ``history_years`` before the export's first
  day, with a growing customer base; only documents from ``start`` to ``end`` are exported. Each
  customer's true first purchase (often before the data) is in the truth.
- **Customers**: ``wholesale`` accounts (long lives, rare and large orders, so long gaps),
  ``retail`` shops, and an ``occasional`` tail most of whom buy once (:data:`CUSTOMER_TYPES`);
  orders follow a seasonal intensity with a pre-Christmas peak (:data:`MONTH_FACTOR`).
- **Cancellations** are separate invoices ``"C" + number`` with negative quantities that never
  name the invoice they cancel. They follow their order by minutes or by days to weeks, and
  cancel it completely or in part; some cancel orders placed before the data starts, so a few
  customers' only lines are cancellations. One planted order of 80,995 units at £2.08
  (£168,469.60) is cancelled 12 minutes later by a customer who keeps £2.90.
- **Other lines**: postage (``POST``, on foreign customers' orders), manual lines (``M``),
  discounts (``D``, on ``C`` invoices), bank charges, free items at price 0, stock adjustments
  (negative quantity, price 0, no customer, on ordinary invoices) and exactly repeated lines
  (copies of a line on the same invoice: an export artefact, counted once in the truth).
- **Closed days**: no document on the public holidays of the shop's country (the ``holidays``
  package), in the Christmas shutdown (24 Dec to 3 Jan) or on Saturdays.

The truth: per exported line (``line_truth``: its kind, the row and invoice a cancellation line
cancels, or none, and the row a repeated line copies), per purchase invoice (``orders``: gross,
cancelled and kept value) and per customer account (``customers``: true first purchase, orders
before the data, kept value, only-cancellation customers, alive at the end). Rows are the
0-based data rows of the written CSV, which is also the index :func:`segkit.data.io.load_table`
gives the loaded lines.

Examples
--------
>>> export = generate_online_retail(300, seed=2)
>>> list(export.lines.columns)
['Invoice', 'StockCode', 'Description', 'Quantity', 'InvoiceDate', 'Price', 'Customer ID', 'Country']
>>> cancelled = export.line_truth[export.line_truth["kind"] == "cancellation"]
>>> bool(export.lines.loc[cancelled.index, "Invoice"].str.startswith("C").all())
True
>>> bool((export.lines.loc[cancelled.index, "Quantity"] < 0).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError
from segkit.core.files import atomic_write_text, dumps_json, write_frame

__all__ = [
    "CustomerType",
    "CUSTOMER_TYPES",
    "HOME_COUNTRIES",
    "LINE_KINDS",
    "MONTH_FACTOR",
    "OnlineRetailExport",
    "closed_days",
    "generate_online_retail",
    "write_online_retail",
    "EXPORT_FILE_NAME",
]

#: The file name ``data/configs/online_retail_ii.yml`` reads: copy that config next to it.
EXPORT_FILE_NAME = "online_retail_II.csv"

#: Supported shop countries: ISO code -> (``Country`` value of home customers, holidays subdivision).
HOME_COUNTRIES: dict[str, tuple[str, str | None]] = {
    "GB": ("United Kingdom", "ENG"),
    "DE": ("Germany", None),
    "FR": ("France", None),
    "NL": ("Netherlands", None),
}
FOREIGN_COUNTRIES: tuple[str, ...] = (
    "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland", "Portugal",
    "Australia", "Norway", "United Kingdom",
)
FOREIGN_SHARE = 0.10                 # share of accounts abroad; their orders carry a postage line
CHRISTMAS_SHUTDOWN = ((12, 24), (1, 3))  # closed from 24 Dec to 3 Jan inclusive
SATURDAY = 5

#: Relative order intensity by calendar month (Jan..Dec): the pre-Christmas peak of a gift wholesaler.
MONTH_FACTOR = np.array([0.70, 0.70, 0.90, 0.75, 0.95, 0.90, 0.90, 0.90, 1.30, 1.45, 1.90, 1.20])
# Relative intensity by opening hour 7..19 (local time).
HOUR_WEIGHTS = np.array([0.2, 1.5, 3.0, 3.5, 3.5, 3.8, 3.2, 3.0, 2.5, 1.5, 0.5, 0.3, 0.2])
FIRST_HOUR = 7

# Line kinds of ``line_truth["kind"]``.
LINE_KINDS: tuple[str, ...] = (
    "purchase",          # a product line on a customer's purchase invoice
    "postage",           # StockCode POST on a purchase invoice
    "manual",            # StockCode M on a purchase invoice
    "bank_charges",      # StockCode BANK CHARGES on a purchase invoice
    "free_item",         # a product at price 0 on a purchase invoice
    "repeated_line",     # an exact copy of a line of the same invoice (export artefact)
    "guest_purchase",    # a line of an order without customer id
    "stock_adjustment",  # negative quantity, price 0, no customer, on an ordinary invoice
    "cancellation",      # a C-invoice line that cancels (part of) one earlier purchase line
    "discount",          # StockCode D on a C invoice (cancels no line)
    "manual_refund",     # StockCode M on a C invoice (cancels no line)
)
PURCHASE_SIDE = ("purchase", "postage", "manual", "bank_charges", "free_item")
#: Non-product stock codes, appended to the catalogue: kind -> (StockCode, Description).
SPECIAL_CODES: dict[str, tuple[str, str]] = {
    "postage": ("POST", "POSTAGE"), "manual": ("M", "Manual"), "bank_charges": ("BANK CHARGES", "Bank Charges"),
    "discount": ("D", "Discount"),
}
STOCK_ADJUSTMENT_NOTES = ("damaged", "?", "check", "lost", "wet damaged", None)
PACK_SIZES = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24, 36, 48, 72, 96, 144])

# The planted "£168,469.60 cancelled 12 minutes later" pattern (UCI Online Retail, 9 Dec 2011).
HUGE_ORDER_QUANTITY = 80_995
HUGE_ORDER_PRICE = 2.08
HUGE_ORDER_KEPT_PRICES = (1.65, 1.25)  # an earlier small order: the £2.90 the customer keeps
HUGE_ORDER_CANCEL_MINUTES = 12
HUGE_ORDER_DESCRIPTION = "PAPER CRAFT , LITTLE BIRDIE"
INVOICE_BASE = 480_000  # the shop's first invoice number
CUSTOMER_ID_BASE = 12_346


@dataclass(frozen=True)
class CustomerType:
    """Buying behaviour of one kind of account (rates per year, durations in days).

    Examples
    --------
    >>> CUSTOMER_TYPES["wholesale"].lifetime_days > CUSTOMER_TYPES["occasional"].lifetime_days
    True
    """

    share: float            # share of accounts
    orders_per_year: float  # mean repeat orders per year while active (personal rate: gamma around it)
    rate_shape: float       # gamma shape of the personal rate (small = heterogeneous, long gaps)
    lifetime_days: float    # mean active life after the first order (exponential)
    one_time_share: float   # share who never order again after the first order
    lines_factor: float     # order lines relative to ``lines_per_order``
    pack_weights: tuple[float, ...]  # weights over PACK_SIZES for a line's quantity
    foreign_factor: float   # relative chance of being abroad


CUSTOMER_TYPES: dict[str, CustomerType] = {
    "wholesale": CustomerType(
        share=0.07, orders_per_year=2.5, rate_shape=3.0, lifetime_days=2500, one_time_share=0.0,
        lines_factor=1.6, pack_weights=(0, 0, 0, 0, 0, 0, 1, 3, 4, 2, 3, 2, 2, 2), foreign_factor=2.0),
    "retail": CustomerType(
        share=0.38, orders_per_year=6.0, rate_shape=1.5, lifetime_days=1100, one_time_share=0.15,
        lines_factor=1.0, pack_weights=(3, 4, 2, 3, 4, 1, 2, 6, 2, 0.2, 0.2, 0, 0, 0), foreign_factor=1.0),
    "occasional": CustomerType(
        share=0.55, orders_per_year=2.0, rate_shape=1.5, lifetime_days=400, one_time_share=0.70,
        lines_factor=0.6, pack_weights=(6, 4, 2, 3, 3, 1, 1, 2, 0.5, 0, 0, 0, 0, 0), foreign_factor=0.8),
}

CUSTOMER_TRUTH_DTYPES: dict[str, str] = {
    "customer_id": "string",              # as segkit reads it ("17850.0" in the file -> "17850")
    "customer_type": "string",            # wholesale / retail / occasional
    "country": "string",
    "true_first_purchase": "datetime64[ns]",  # may be before the export's first day
    "first_purchase_before_data": "bool",
    "orders_before_data": "int64",         # purchase invoices before `start` (not exported)
    "purchase_orders_in_data": "int64",    # exported purchase invoices that keep some value
    "fully_cancelled_orders": "int64",     # exported purchase invoices cancelled completely in the export
    "gross_value": "float64",              # exported purchase invoices (repeated lines counted once)
    "kept_value": "float64",               # gross minus the exported cancellations matched to them
    "adjustment_value": "float64",         # discounts, manual refunds, cancellations of pre-data orders (<= 0)
    "only_cancellations": "bool",          # every exported line of this customer is on a C invoice
    "in_export": "bool",                   # the customer has at least one exported line
    "churn_date": "datetime64[ns]",        # end of the active life; NaT = alive at `end`
    "alive_at_end": "bool",
}
ORDER_TRUTH_DTYPES: dict[str, str] = {
    "invoice": "string", "customer_id": "string", "invoice_date": "datetime64[ns]",
    "gross_value": "float64", "cancelled_value": "float64", "kept_value": "float64",
    "fully_cancelled": "bool", "cancelled_by": "string",
}
LINE_TRUTH_DTYPES: dict[str, str] = {
    "invoice": "string", "kind": "string", "customer_id": "string",
    "cancels_row": "Int64",            # the exported purchase line it cancels (<NA>: none, or before the data)
    "cancels_invoice": "string",       # the purchase invoice it cancels, also when that is before the data
    "cancels_before_data": "boolean",  # <NA> for lines that are not cancellations
    "duplicate_of_row": "Int64",       # the line a repeated line copies
}


@dataclass
class OnlineRetailExport:
    """One simulated Online-Retail-like export plus what was planted in it.

    Attributes
    ----------
    lines : pandas.DataFrame
        The export, columns ``Invoice, StockCode, Description, Quantity, InvoiceDate, Price,
        Customer ID, Country`` (``Customer ID`` as the file holds it: ``"17850.0"`` or ``<NA>``);
        the index is the 0-based data row of the written CSV.
    line_truth : pandas.DataFrame
        One row per line, same index: ``invoice, kind`` (:data:`LINE_KINDS`), ``customer_id``,
        ``cancels_row, cancels_invoice, cancels_before_data, duplicate_of_row``.
    orders : pandas.DataFrame
        One row per exported purchase invoice of a customer: ``invoice, customer_id,
        invoice_date, gross_value, cancelled_value, kept_value, fully_cancelled, cancelled_by``.
    customers : pandas.DataFrame
        One row per account the shop ever had (``in_export`` says whether it has an exported line).
    closed_days : pandas.DataFrame
        ``date, reason`` for every day from ``start`` to ``end`` without any document.
    planted : dict of str to int or str
        Counts of what was planted (and the id of the huge-cancellation customer).
    start, end : pandas.Timestamp
        First and last exported day; ``opened`` the shop's first day.
    country : str
        ISO code of the shop's country (its public holidays).
    """

    lines: pd.DataFrame
    line_truth: pd.DataFrame
    orders: pd.DataFrame
    customers: pd.DataFrame
    closed_days: pd.DataFrame
    planted: dict[str, int | str] = field(default_factory=dict)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    opened: pd.Timestamp | None = None
    country: str = "GB"

    @property
    def cancellations(self) -> pd.DataFrame:
        """The truth of every line on a ``C`` invoice (kinds cancellation, discount, manual_refund)."""
        on_c = self.lines["Invoice"].str.startswith("C")
        return self.line_truth[on_c.to_numpy()]


# --------------------------------------------------------------------------- calendar


def closed_days(days: pd.DatetimeIndex, country: str) -> pd.Series:
    """Why the shop is closed on each of ``days`` (``<NA>`` = open): public holiday, shutdown, Saturday.

    Examples
    --------
    >>> reasons = closed_days(pd.date_range("2011-04-21", "2011-04-26"), "GB")
    >>> reasons.tolist()
    [<NA>, 'public holiday: Good Friday', 'Saturday', <NA>, 'public holiday: Easter Monday', <NA>]
    """
    subdiv = HOME_COUNTRIES[country][1]
    public = holidays.country_holidays(country, subdiv=subdiv, years=sorted(set(days.year)))
    month, day = days.month.to_numpy(), days.day.to_numpy()
    (m0, d0), (m1, d1) = CHRISTMAS_SHUTDOWN
    shutdown = ((month == m0) & (day >= d0)) | ((month == m1) & (day <= d1))
    saturday = days.day_of_week.to_numpy() == SATURDAY
    reasons = [
        f"public holiday: {public[d]}" if d in public
        else "Christmas shutdown" if shut
        else "Saturday" if sat
        else None
        for d, shut, sat in zip(days.date, shutdown, saturday)
    ]
    return pd.Series(reasons, index=days, dtype="string")


def _next_open(day: np.ndarray, is_open: np.ndarray) -> np.ndarray:
    """The first open day index at or after each ``day`` (``is_open.size`` when there is none)."""
    open_idx = np.flatnonzero(is_open)
    pos = np.searchsorted(open_idx, day, side="left")
    return np.where(pos < open_idx.size, open_idx[np.minimum(pos, open_idx.size - 1)], is_open.size)


# --------------------------------------------------------------------------- the generator


def _validate(n_customers: int, start: pd.Timestamp, end: pd.Timestamp, history_years: float,
              country: str, guest_line_share: float, lines_per_order: float) -> None:
    if int(n_customers) < 10:
        raise ConfigError(f"generate_online_retail: n_customers must be at least 10, got {n_customers}.")
    if (end - start).days < 60:
        raise ConfigError(f"generate_online_retail: the export {start.date()} .. {end.date()} is shorter "
                          "than 60 days; give an `end` at least two months after `start`.")
    if not 0 <= history_years <= 20:
        raise ConfigError(f"generate_online_retail: history_years must be in [0, 20], got {history_years}.")
    if country not in HOME_COUNTRIES:
        raise ConfigError(f"generate_online_retail: country {country!r} is not supported; "
                          f"use one of {sorted(HOME_COUNTRIES)}.")
    if not 0 <= guest_line_share < 0.8:
        raise ConfigError(f"generate_online_retail: guest_line_share must be in [0, 0.8), got {guest_line_share}.")
    if not 1 <= lines_per_order <= 60:
        raise ConfigError(f"generate_online_retail: lines_per_order must be in [1, 60], got {lines_per_order}.")


class _Builder:
    """Documents (invoices) and their lines over the shop's whole life, before export and truth.

    Documents: ``day`` (index on the day grid), ``minute``, ``cust`` (-1 guest / none), ``is_c``.
    Lines: ``doc``, ``product`` (catalogue index, -1 for special codes), ``qty``, ``price``,
    ``kind`` (index into LINE_KINDS), ``cancels`` and ``copy_of`` (line index, -1 none).
    """

    def __init__(self) -> None:
        self.docs: dict[str, list[np.ndarray]] = {k: [] for k in ("day", "minute", "cust", "is_c")}
        self.lines: dict[str, list[np.ndarray]] = {
            k: [] for k in ("doc", "product", "qty", "price", "kind", "cancels", "copy_of", "note")}
        self.n_docs = 0
        self.n_lines = 0

    def add_docs(self, day: np.ndarray, minute: np.ndarray, cust: np.ndarray, is_c: bool) -> np.ndarray:
        n = day.size
        for key, value in (("day", day), ("minute", minute), ("cust", cust), ("is_c", np.full(n, is_c))):
            self.docs[key].append(np.asarray(value))
        ids = np.arange(self.n_docs, self.n_docs + n)
        self.n_docs += n
        return ids

    def add_lines(self, doc: np.ndarray, product: np.ndarray, qty: np.ndarray, price: np.ndarray,
                  kind: str, cancels: np.ndarray | None = None, copy_of: np.ndarray | None = None,
                  note: np.ndarray | None = None) -> np.ndarray:
        n = doc.size
        none = np.full(n, -1, dtype=np.int64)
        values = {"doc": doc, "product": product, "qty": qty, "price": price,
                  "kind": np.full(n, LINE_KINDS.index(kind)), "cancels": none if cancels is None else cancels,
                  "copy_of": none if copy_of is None else copy_of,
                  "note": np.full(n, -1) if note is None else note}
        for key, value in values.items():
            self.lines[key].append(np.asarray(value))
        ids = np.arange(self.n_lines, self.n_lines + n)
        self.n_lines += n
        return ids

    def frozen(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        docs = {k: np.concatenate(v) for k, v in self.docs.items()}
        lines = {k: np.concatenate(v) for k, v in self.lines.items()}
        return docs, lines


def _catalogue(rng: np.random.Generator, n_products: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stock codes, descriptions, list prices and popularity (cumulative) of the gift catalogue.

    Codes and descriptions go on with :data:`SPECIAL_CODES` at ``n_products + k``; the last product
    is the one of the huge order.
    """
    numbers = rng.choice(np.arange(20_000, 90_000), n_products, replace=False)
    letters = np.where(rng.random(n_products) < 0.25, rng.choice(list("ABCDEFGLNPRSW"), n_products), "")
    codes = np.array([f"{n}{s}" for n, s in zip(numbers, letters)], dtype=object)
    adjectives = ("WHITE", "RED", "PINK", "BLUE", "VINTAGE", "REGENCY", "HANGING", "SET OF 3", "JUMBO",
                  "GLASS", "LUNCH", "PAPER", "HEART", "STAR", "RETROSPOT", "PARTY", "CHRISTMAS", "WOODEN")
    nouns = ("T-LIGHT HOLDER", "LANTERN", "BAG", "TEACUP AND SAUCER", "CAKE STAND", "BUNTING", "DOORMAT",
             "ALARM CLOCK", "NAPKINS", "CANDLE", "CUSHION COVER", "MUG", "PHOTO FRAME", "DECORATION",
             "STORAGE TIN", "NOTEBOOK", "WALL SIGN")
    a, b, c = (rng.integers(0, len(adjectives), n_products), rng.integers(0, len(adjectives), n_products),
               rng.integers(0, len(nouns), n_products))
    descriptions = np.array([f"{adjectives[i]} {adjectives[j]} {nouns[k]}" if i != j else f"{adjectives[i]} {nouns[k]}"
                             for i, j, k in zip(a, b, c)], dtype=object)
    prices = np.maximum(np.round(np.exp(rng.normal(np.log(2.5), 0.8, n_products)) * 20) / 20 - 0.05, 0.12)
    popularity = rng.pareto(1.2, n_products) + 0.05
    descriptions[-1], prices[-1] = HUGE_ORDER_DESCRIPTION, HUGE_ORDER_PRICE
    codes = np.concatenate([codes, [c for c, _ in SPECIAL_CODES.values()]])
    descriptions = np.concatenate([descriptions, [d for _, d in SPECIAL_CODES.values()]])
    return codes, descriptions, np.round(prices, 2), np.cumsum(popularity / popularity.sum())


def generate_online_retail(
    n_customers: int = 4000,
    *,
    seed: int = 0,
    start: str | pd.Timestamp = "2010-12-01",
    end: str | pd.Timestamp = "2011-12-09",
    history_years: float = 3.0,
    country: str = "GB",
    lines_per_order: float = 18.0,
    guest_line_share: float = 0.25,
    full_cancel_rate: float = 0.012,
    partial_cancel_rate: float = 0.10,
    repeated_line_rate: float = 0.01,
    cancel_only_share: float = 0.008,
    huge_cancellation: bool = True,
    n_products: int = 1500,
) -> OnlineRetailExport:
    """Simulate an export in the UCI "Online Retail" layout, with what it plants as truth.

    Parameters
    ----------
    n_customers : int
        Accounts the shop has had from its opening to ``end`` (about half appear in the export;
        ``customers["in_export"]``), plus one account for the huge cancellation.
    seed : int
        Seed of the one ``numpy.random.Generator``: the same arguments give the same frames.
    start, end : str or Timestamp
        First and last exported day; documents outside are simulated but not exported.
    history_years : float
        Years the shop traded before ``start`` (0: the data starts with the shop).
    country : str
        ISO code of the shop's country (:data:`HOME_COUNTRIES`): its public holidays are closed days.
    lines_per_order : float
        Mean lines of a retail order (wholesale orders have more, occasional ones fewer).
    guest_line_share : float
        Share of exported lines without a customer id.
    full_cancel_rate, partial_cancel_rate : float
        Chance that a customer's order is later cancelled completely / in part.
    repeated_line_rate : float
        Share of customers' product lines exported twice (exact copies on the same invoice).
    cancel_only_share : float
        Customers (share of those in the export, at least one) whose only exported lines cancel
        an order placed before ``start``; planted on top of any that arise by chance.
    huge_cancellation : bool
        Plant the 80,995-unit order (£168,469.60) cancelled 12 minutes later on the last open day.
    n_products : int
        Size of the product catalogue.

    Returns
    -------
    OnlineRetailExport
        The export lines and the truth frames (see :class:`OnlineRetailExport`).

    Raises
    ------
    ConfigError
        An argument out of range (the message names it).

    Examples
    --------
    >>> export = generate_online_retail(400, seed=1)
    >>> export.planted["fully_cancelled_orders"] > 0
    True
    >>> huge = export.orders[export.orders["customer_id"] == export.planted["huge_cancellation_customer"]]
    >>> huge["gross_value"].max(), huge["kept_value"].sum()
    (np.float64(168469.6), np.float64(2.9))
    >>> closed = export.closed_days.set_index("date")["reason"]
    >>> closed[pd.Timestamp("2011-04-29")]
    'public holiday: Wedding of William and Catherine'
    """
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    _validate(n_customers, start, end, history_years, country, guest_line_share, lines_per_order)
    rng = np.random.default_rng(seed)
    opened = (start - pd.Timedelta(days=round(history_years * 365.25))).normalize()
    days = pd.date_range(opened, end, freq="D")
    n_days, day_start = len(days), int((start - opened).days)
    reasons = closed_days(days, country)
    is_open = reasons.isna().to_numpy()
    intensity = MONTH_FACTOR[days.month.to_numpy() - 1] * is_open
    home_name = HOME_COUNTRIES[country][0]
    codes, descriptions, list_price, popularity = _catalogue(rng, n_products)
    special = {kind: n_products + k for k, kind in enumerate(SPECIAL_CODES)}
    build = _Builder()

    # ---- accounts: type, country, first purchase (a growing shop), personal rate, life
    n = int(n_customers)
    type_names = list(CUSTOMER_TYPES)
    types = [CUSTOMER_TYPES[t] for t in type_names]
    ctype = rng.choice(len(types), n, p=np.array([t.share for t in types]) / sum(t.share for t in types))
    attr = {f: np.array([getattr(t, f) for t in types], dtype=np.float64)[ctype]
            for f in ("orders_per_year", "rate_shape", "lifetime_days", "one_time_share", "lines_factor",
                      "foreign_factor")}
    foreign = rng.random(n) < FOREIGN_SHARE * attr["foreign_factor"]
    abroad = [c for c in FOREIGN_COUNTRIES if c != home_name]
    cust_country = np.where(foreign, rng.choice(abroad, n), home_name).astype(object)
    growth = np.exp(np.arange(n_days) / 365.25 * 0.35) * intensity
    first = np.searchsorted(np.cumsum(growth) / growth.sum(), rng.random(n), side="right").clip(0, n_days - 1)
    rate = rng.gamma(attr["rate_shape"], attr["orders_per_year"] / attr["rate_shape"])
    one_time = rng.random(n) < attr["one_time_share"]
    death = np.where(one_time, first + 0.5, first + rng.exponential(attr["lifetime_days"]))

    # ---- repeat orders: thinning of a Poisson process with the seasonal intensity
    span = np.clip(np.minimum(death, n_days) - first - 1, 0, None)
    imax = intensity.max()
    owner = np.repeat(np.arange(n), rng.poisson(rate / 365.25 * span * imax))
    cand = np.floor(first[owner] + 1 + rng.random(owner.size) * span[owner]).astype(np.int64)
    keep = rng.random(owner.size) < intensity[np.minimum(cand, n_days - 1)] / imax
    o_cust = np.concatenate([np.arange(n), owner[keep]])
    o_day = np.concatenate([first, cand[keep]]).astype(np.int64)
    hours = FIRST_HOUR + rng.choice(HOUR_WEIGHTS.size, o_cust.size, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    o_minute = hours * 60 + rng.integers(0, 60, o_cust.size)
    order_doc = build.add_docs(o_day, o_minute, o_cust, is_c=False)

    # ---- order lines: distinct products per order, packs by type, extras
    n_lines = 1 + rng.poisson(np.maximum(lines_per_order * attr["lines_factor"][o_cust] - 1, 0))
    l_order = np.repeat(np.arange(o_cust.size), n_lines)
    l_product = np.minimum(np.searchsorted(popularity, rng.random(l_order.size)), n_products - 1)
    distinct = ~pd.DataFrame({"o": l_order, "p": l_product}).duplicated().to_numpy()
    l_order, l_product = l_order[distinct], l_product[distinct]
    pack_cum = np.cumsum(np.array([t.pack_weights for t in types]), axis=1)
    pack_cum = pack_cum / pack_cum[:, -1:]
    l_type = ctype[o_cust[l_order]]
    l_qty = PACK_SIZES[(pack_cum[l_type] < rng.random(l_order.size)[:, None]).sum(axis=1)]
    l_price = np.where(l_qty >= 100, np.round(list_price[l_product] * 0.85, 2), list_price[l_product])
    product_lines = build.add_lines(order_doc[l_order], l_product, l_qty, l_price, "purchase")

    post_orders = np.flatnonzero(foreign[o_cust])
    build.add_lines(order_doc[post_orders], np.full(post_orders.size, special["postage"]),
                                 rng.integers(1, 4, post_orders.size),
                                 np.where(cust_country[o_cust[post_orders]] == "EIRE", 40.0, 18.0), "postage")
    manual = np.flatnonzero(rng.random(o_cust.size) < 0.008)
    build.add_lines(order_doc[manual], np.full(manual.size, special["manual"]), np.ones(manual.size, np.int64),
                    np.round(np.exp(rng.normal(np.log(15.0), 1.2, manual.size)), 2), "manual")
    bank = np.flatnonzero(rng.random(o_cust.size) < 0.003)
    build.add_lines(order_doc[bank], np.full(bank.size, special["bank_charges"]), np.ones(bank.size, np.int64),
                    np.full(bank.size, 15.0), "bank_charges")
    gifts = np.flatnonzero(rng.random(o_cust.size) < 0.006)  # a product given away at price 0
    build.add_lines(order_doc[gifts], rng.choice(n_products - 1, gifts.size), rng.integers(1, 13, gifts.size),
                    np.zeros(gifts.size), "free_item")

    # ---- the huge order cancelled 12 minutes later (one extra occasional account)
    open_export_days = np.flatnonzero(is_open[day_start:]) + day_start
    huge_cust = -1
    if huge_cancellation:
        huge_cust = n
        last_open = int(open_export_days[-1])
        early = int(open_export_days[max(0, open_export_days.size // 2)])
        small = build.add_docs(np.array([early]), np.array([10 * 60 + 23]), np.array([huge_cust]), is_c=False)
        build.add_lines(np.repeat(small, 2), rng.choice(n_products - 1, 2, replace=False), np.array([1, 1]),
                        np.array(HUGE_ORDER_KEPT_PRICES), "purchase")
        big = build.add_docs(np.array([last_open]), np.array([9 * 60 + 15]), np.array([huge_cust]), is_c=False)
        big_line = build.add_lines(big, np.array([n_products - 1]), np.array([HUGE_ORDER_QUANTITY]),
                                   np.array([HUGE_ORDER_PRICE]), "purchase")
        cancel = build.add_docs(np.array([last_open]), np.array([9 * 60 + 15 + HUGE_ORDER_CANCEL_MINUTES]),
                                np.array([huge_cust]), is_c=True)
        build.add_lines(cancel, np.array([n_products - 1]), np.array([-HUGE_ORDER_QUANTITY]),
                        np.array([HUGE_ORDER_PRICE]), "cancellation", cancels=big_line)
        ctype = np.append(ctype, type_names.index("occasional"))
        cust_country = np.append(cust_country, home_name)
        death = np.append(death, n_days + 1.0)
        o_day = np.append(o_day, [early, last_open])
        o_cust = np.append(o_cust, [huge_cust, huge_cust])
        order_doc = np.append(order_doc, np.concatenate([small, big]))

    # ---- cancellations of customers' orders: full or partial, minutes or days later
    docs_so_far, lines_so_far = build.frozen()
    cancellable = docs_so_far["cust"][order_doc] != huge_cust
    draw = rng.random(order_doc.size)
    full = cancellable & (draw < full_cancel_rate)
    partial = cancellable & ~full & (draw < full_cancel_rate + partial_cancel_rate)
    _cancel_orders(rng, build, order_doc, full, partial, docs_so_far, lines_so_far, is_open, n_days)

    # ---- customers whose only exported lines cancel an order placed before the data
    c_docs, _ = build.frozen()
    in_window = (c_docs["day"] >= day_start) & (c_docs["day"] < n_days)
    seen = np.unique(c_docs["cust"][in_window & (c_docs["cust"] >= 0)])
    target = max(1, int(round(cancel_only_share * seen.size))) if history_years > 0 else 0
    _, cancelled_lines = build.frozen()
    cancelled_docs = cancelled_lines["doc"][cancelled_lines["cancels"][cancelled_lines["cancels"] >= 0]]
    before = np.flatnonzero((o_day < day_start) & ~np.isin(order_doc, cancelled_docs))
    latest = pd.DataFrame({"cust": o_cust[before], "day": o_day[before], "doc": order_doc[before]}) \
        .sort_values(["cust", "day", "doc"]).groupby("cust").tail(1)
    latest = latest[~latest["cust"].isin(seen)].sort_values(["day", "cust"], ascending=[False, True]).head(target)
    if len(latest):
        picked = np.isin(order_doc, latest["doc"].to_numpy())
        cancel_day = dict(zip(latest["doc"].tolist(), rng.choice(open_export_days[:15], len(latest)).tolist()))
        _cancel_orders(rng, build, order_doc, picked, np.zeros_like(picked), docs_so_far, lines_so_far, is_open,
                       n_days, cancel_day=cancel_day)

    # ---- discounts and manual refunds (C invoices that cancel no line)
    for kind, chance in (("discount", 0.004), ("manual_refund", 0.004)):
        chosen = np.flatnonzero(cancellable & (rng.random(order_doc.size) < chance))
        day = _next_open(o_day[chosen] + rng.integers(0, 20, chosen.size), is_open)
        ok = day < n_days
        docs = build.add_docs(day[ok], FIRST_HOUR * 60 + rng.integers(60, 600, ok.sum()), o_cust[chosen][ok], is_c=True)
        code = special["discount" if kind == "discount" else "manual"]
        build.add_lines(docs, np.full(docs.size, code), -np.ones(docs.size, np.int64),
                        np.round(np.exp(rng.normal(np.log(10.0), 1.0, docs.size)), 2), kind)

    # ---- repeated lines (exact copies on the same invoice)
    copies = product_lines[rng.random(product_lines.size) < repeated_line_rate]
    docs_now, lines_now = build.frozen()
    build.add_lines(lines_now["doc"][copies], lines_now["product"][copies], lines_now["qty"][copies],
                    lines_now["price"][copies], "repeated_line", copy_of=copies)

    # ---- guest orders and stock adjustments (no customer id), in the export window only
    docs_now, lines_now = build.frozen()
    exported_doc = (docs_now["day"] >= day_start)
    customer_lines = int(exported_doc[lines_now["doc"]].sum())
    guest_target = int(round(guest_line_share / (1 - guest_line_share) * customer_lines))
    guest_mean = 1.5 * lines_per_order
    n_drawn = 2 * int(np.ceil(guest_target / guest_mean)) + 1  # more than needed: cut at the target below
    g_n = 1 + rng.poisson(guest_mean - 1, n_drawn)
    g_order = np.repeat(np.arange(n_drawn), g_n)
    g_product = np.minimum(np.searchsorted(popularity, rng.random(g_order.size)), n_products - 1)
    g_keep = ~pd.DataFrame({"o": g_order, "p": g_product}).duplicated().to_numpy()
    g_keep &= np.cumsum(g_keep) <= guest_target
    g_order, g_product = g_order[g_keep], g_product[g_keep]
    n_guest_orders = int(g_order.max()) + 1 if g_order.size else 0
    w = intensity[day_start:] / intensity[day_start:].sum()
    g_day = day_start + rng.choice(w.size, n_guest_orders, p=w)
    g_docs = build.add_docs(g_day, FIRST_HOUR * 60 + rng.integers(0, 12 * 60, n_guest_orders),
                            np.full(n_guest_orders, -1), is_c=False)
    build.add_lines(g_docs[g_order], g_product, PACK_SIZES[rng.choice(4, g_order.size)],
                    list_price[g_product], "guest_purchase")
    n_adjust = max(1, int(round(0.003 * customer_lines)))
    a_day = day_start + rng.choice(w.size, n_adjust, p=w)
    a_docs = build.add_docs(a_day, FIRST_HOUR * 60 + rng.integers(0, 12 * 60, n_adjust), np.full(n_adjust, -1),
                            is_c=False)
    build.add_lines(a_docs, rng.choice(n_products, n_adjust), -rng.integers(1, 100, n_adjust), np.zeros(n_adjust),
                    "stock_adjustment", note=rng.integers(0, len(STOCK_ADJUSTMENT_NOTES), n_adjust))

    docs, lines = build.frozen()
    return _export(rng, docs, lines, codes, descriptions, ctype, type_names, cust_country, death, huge_cust,
                   days, day_start, reasons, opened, country)


def _cancel_orders(rng: np.random.Generator, build: _Builder, order_doc: np.ndarray, full: np.ndarray,
                   partial: np.ndarray, docs: dict[str, np.ndarray], lines: dict[str, np.ndarray],
                   is_open: np.ndarray, n_days: int, cancel_day: dict[int, int] | None = None) -> None:
    """Add one C invoice per chosen order: every positive line (``full``) or some product lines.

    The C invoice follows its order by 2-90 minutes (half of them) or by days to weeks (next open
    day), unless ``cancel_day`` fixes the day per order document.
    """
    chosen = np.flatnonzero(full | partial)
    if chosen.size == 0:
        return
    doc = order_doc[chosen]
    minutes_later = rng.random(chosen.size) < 0.5
    lag_days = np.ceil(np.exp(rng.normal(np.log(8.0), 1.0, chosen.size))).astype(np.int64).clip(1, 90)
    day = np.where(minutes_later, docs["day"][doc], _next_open(docs["day"][doc] + lag_days, is_open))
    minute = np.where(minutes_later, np.minimum(docs["minute"][doc] + rng.integers(2, 91, chosen.size), 23 * 60 + 59),
                      FIRST_HOUR * 60 + rng.integers(60, 660, chosen.size))
    if cancel_day is not None:
        day = np.array([cancel_day[int(d)] for d in doc])
        minute = FIRST_HOUR * 60 + rng.integers(60, 660, chosen.size)
    ok = day < n_days
    c_docs = build.add_docs(day[ok], minute[ok], docs["cust"][doc][ok], is_c=True)
    c_of = dict(zip(doc[ok].tolist(), c_docs.tolist()))
    is_full = dict(zip(doc[ok].tolist(), full[chosen][ok].tolist()))
    # candidate lines of the chosen orders
    on = np.flatnonzero(np.isin(lines["doc"], doc[ok]) & (lines["price"] > 0) & (lines["qty"] > 0))
    line_doc = lines["doc"][on]
    whole = np.array([is_full[int(d)] for d in line_doc], dtype=bool)
    product = lines["kind"][on] == LINE_KINDS.index("purchase")
    # partial: each product line with chance 0.15 (at least one: the order's first product line)
    first_of_doc = product & ~pd.Series(line_doc).where(product).duplicated().to_numpy()
    take = whole | (product & ((rng.random(on.size) < 0.15) | first_of_doc))
    qty = lines["qty"][on]
    part_qty = np.where((rng.random(on.size) < 0.6) | (qty == 1), qty, 1 + rng.integers(0, np.maximum(qty - 1, 1)))
    qty_cancelled = np.where(whole, qty, part_qty)
    sel = on[take]
    build.add_lines(np.array([c_of[int(d)] for d in lines["doc"][sel]], dtype=np.int64), lines["product"][sel],
                    -qty_cancelled[take], lines["price"][sel], "cancellation", cancels=sel)


def _export(rng: np.random.Generator, docs: dict[str, np.ndarray], lines: dict[str, np.ndarray],
            codes: np.ndarray, descriptions: np.ndarray, ctype: np.ndarray, type_names: list[str],
            cust_country: np.ndarray, death: np.ndarray, huge_cust: int, days: pd.DatetimeIndex,
            day_start: int, reasons: pd.Series, opened: pd.Timestamp, country: str) -> OnlineRetailExport:
    """Number the documents in time order, cut the export window, build the lines and the truth."""
    n_accounts, n_days = ctype.size, len(days)
    home_name = HOME_COUNTRIES[country][0]
    # invoices: one number sequence in time order, "C" before the number of cancellation documents
    time = docs["day"] * 1440 + docs["minute"]
    number = np.empty(time.size, dtype=np.int64)
    number[np.lexsort((np.arange(time.size), time))] = INVOICE_BASE + np.arange(time.size)
    invoice = np.where(docs["is_c"], "C", "") + number.astype(str)
    ids = rng.choice(np.arange(CUSTOMER_ID_BASE, CUSTOMER_ID_BASE + 2 * n_accounts), n_accounts,
                     replace=False).astype(str)
    # exported lines, in invoice order (a repeated line after the lines of its invoice)
    exported = docs["day"][lines["doc"]] >= day_start
    order = np.flatnonzero(exported)
    order = order[np.lexsort((order, number[lines["doc"][order]]))]
    row_of = np.full(lines["doc"].size, -1, dtype=np.int64)
    row_of[order] = np.arange(order.size)
    doc, cust = lines["doc"][order], docs["cust"][lines["doc"][order]]
    kind = np.array(LINE_KINDS, dtype=object)[lines["kind"][order]]
    description = descriptions[lines["product"][order]].astype(object)
    note = lines["note"][order]
    description[note >= 0] = np.array(STOCK_ADJUSTMENT_NOTES, dtype=object)[note[note >= 0]]
    has_id = cust >= 0
    minutes = docs["day"][doc].astype("timedelta64[D]") + docs["minute"][doc].astype("timedelta64[m]")
    frame = pd.DataFrame({
        "Invoice": pd.array(invoice[doc], dtype="string"),
        "StockCode": pd.array(codes[lines["product"][order]], dtype="string"),
        "Description": pd.array(description, dtype="string"),
        "Quantity": lines["qty"][order].astype(np.int64),
        "InvoiceDate": (np.datetime64(opened.date(), "ns") + minutes).astype("datetime64[ns]"),
        "Price": np.round(lines["price"][order].astype(np.float64), 2),
        "Customer ID": pd.array(np.where(has_id, np.char.add(ids[np.maximum(cust, 0)], ".0"), None), dtype="string"),
        "Country": pd.array(np.where(has_id, cust_country[np.maximum(cust, 0)], home_name), dtype="string"),
    })
    canonical_id = pd.array(np.where(has_id, ids[np.maximum(cust, 0)], None), dtype="string")
    # line truth
    target = lines["cancels"][order]
    is_cancel = target >= 0
    cancels_row = np.where(is_cancel, row_of[np.maximum(target, 0)], -1)
    copy_of = lines["copy_of"][order]
    cancels_before = pd.array(np.where(is_cancel, docs["day"][lines["doc"][np.maximum(target, 0)]] < day_start, False),
                              dtype="boolean")
    cancels_before[~is_cancel & ~np.isin(kind, ["discount", "manual_refund"])] = pd.NA
    line_truth = pd.DataFrame({
        "invoice": frame["Invoice"],
        "kind": pd.array(kind, dtype="string"),
        "customer_id": canonical_id,
        "cancels_row": pd.array(np.where(cancels_row >= 0, cancels_row, 0), dtype="Int64"),
        "cancels_invoice": pd.array(np.where(is_cancel, invoice[lines["doc"][np.maximum(target, 0)]], None),
                                    dtype="string"),
        "cancels_before_data": cancels_before,
        "duplicate_of_row": pd.array(np.where(copy_of >= 0, row_of[np.maximum(copy_of, 0)], 0), dtype="Int64"),
    }).astype(LINE_TRUTH_DTYPES)
    line_truth.loc[cancels_row < 0, "cancels_row"] = pd.NA
    line_truth.loc[copy_of < 0, "duplicate_of_row"] = pd.NA
    value = frame["Quantity"].to_numpy() * frame["Price"].to_numpy()

    # order truth: exported purchase invoices of customers
    purchase_side = np.isin(kind, PURCHASE_SIDE) & has_id
    matched = is_cancel & (cancels_row >= 0)
    by_doc = pd.DataFrame({"doc": np.concatenate([doc[purchase_side], lines["doc"][target[matched]]]),
                           "gross": np.concatenate([value[purchase_side], np.zeros(matched.sum())]),
                           "cancelled": np.concatenate([np.zeros(purchase_side.sum()), -value[matched]])})
    sums = by_doc.groupby("doc").sum()
    cancelled_by = pd.Series(invoice[doc[matched]], index=lines["doc"][target[matched]])
    cancelled_by = cancelled_by[~cancelled_by.index.duplicated()]
    kept = (sums["gross"] - sums["cancelled"]).round(2)
    orders = pd.DataFrame({
        "invoice": invoice[sums.index],
        "customer_id": ids[docs["cust"][sums.index]],
        "invoice_date": (np.datetime64(opened.date(), "ns") + docs["day"][sums.index].astype("timedelta64[D]")
                         + docs["minute"][sums.index].astype("timedelta64[m]")),
        "gross_value": sums["gross"].round(2).to_numpy(),
        "cancelled_value": sums["cancelled"].round(2).to_numpy(),
        "kept_value": kept.to_numpy(),
        "fully_cancelled": ((sums["cancelled"] > 0) & (kept.abs() < 0.005)).to_numpy(),
        "cancelled_by": cancelled_by.reindex(sums.index).to_numpy(),
    }).astype(ORDER_TRUTH_DTYPES).sort_values("invoice", ignore_index=True)

    # customer truth
    purchase_doc = ~docs["is_c"] & (docs["cust"] >= 0)
    first_time = pd.Series(time[purchase_doc]).groupby(docs["cust"][purchase_doc]).min() \
        .reindex(range(n_accounts)).to_numpy()
    before = pd.Series(docs["day"][purchase_doc] < day_start).groupby(docs["cust"][purchase_doc]).sum() \
        .reindex(range(n_accounts), fill_value=0).to_numpy()
    per_order = orders.assign(kept_order=orders["kept_value"].abs() >= 0.005).groupby("customer_id").agg(
        purchase_orders_in_data=("kept_order", "sum"), fully_cancelled_orders=("fully_cancelled", "sum"),
        gross_value=("gross_value", "sum"), kept_value=("kept_value", "sum"))
    adjusting = has_id & (np.isin(kind, ["discount", "manual_refund"])
                          | (is_cancel & np.asarray(cancels_before.fillna(False), dtype=bool)))
    adjustment = pd.Series(value[adjusting]).groupby(canonical_id[adjusting]).sum()
    on_c = frame["Invoice"].str.startswith("C").to_numpy()
    lines_per = pd.DataFrame({"id": canonical_id[has_id], "c": on_c[has_id]}).groupby("id")["c"].agg(["all", "size"])
    churned = death < n_days
    customers = pd.DataFrame({
        "customer_id": ids,
        "customer_type": np.array(type_names, dtype=object)[ctype],
        "country": cust_country,
        "true_first_purchase": np.datetime64(opened.date(), "ns") + first_time.astype("timedelta64[m]"),
        "first_purchase_before_data": first_time < day_start * 1440,
        "orders_before_data": before.astype(np.int64),
    }).set_index("customer_id", drop=False)
    customers = customers.join(per_order).fillna({c: 0 for c in per_order.columns})
    customers["adjustment_value"] = adjustment.reindex(customers.index, fill_value=0.0).round(2)
    customers["only_cancellations"] = lines_per["all"].reindex(customers.index, fill_value=False).astype(bool)
    customers["in_export"] = customers.index.isin(lines_per.index)
    churn_day = np.floor(np.where(churned, death, 0)).astype(np.int64)
    customers["churn_date"] = np.where(churned, days.to_numpy()[np.minimum(churn_day, n_days - 1)],
                                       np.datetime64("NaT"))
    customers["alive_at_end"] = ~churned
    customers[["gross_value", "kept_value"]] = customers[["gross_value", "kept_value"]].round(2)
    customers = customers.reset_index(drop=True)[list(CUSTOMER_TRUTH_DTYPES)].astype(CUSTOMER_TRUTH_DTYPES)

    start = days[day_start]
    window = reasons.iloc[day_start:]
    closed = window[window.notna()]
    closed = pd.DataFrame({"date": closed.index, "reason": closed.to_numpy()}).astype(
        {"date": "datetime64[ns]", "reason": "string"})
    c_kinds = line_truth["kind"]
    in_export = customers[customers["in_export"]]
    planted: dict[str, int | str] = {
        "lines": len(frame),
        "lines_without_customer_id": int((~has_id).sum()),
        "cancellation_invoices": int(frame.loc[on_c, "Invoice"].nunique()),
        "lines_on_cancellation_invoices": int(on_c.sum()),
        "cancellation_lines": int((c_kinds == "cancellation").sum()),
        "cancellation_lines_of_orders_before_data": int(line_truth["cancels_before_data"].fillna(False).sum()),
        "fully_cancelled_orders": int(orders["fully_cancelled"].sum()),
        "partially_cancelled_orders": int(((orders["cancelled_value"] > 0) & ~orders["fully_cancelled"]).sum()),
        "cancel_only_customers": int(in_export["only_cancellations"].sum()),
        "customers_in_export": len(in_export),
        "customers_first_purchase_before_data": int(in_export["first_purchase_before_data"].sum()),
        "repeated_lines": int((c_kinds == "repeated_line").sum()),
        "closed_days": len(closed),
        "huge_cancellation_customer": str(ids[huge_cust]) if huge_cust >= 0 else "",
    }
    planted.update({f"{k}_lines": int((c_kinds == k).sum())
                    for k in ("postage", "manual", "bank_charges", "free_item", "discount", "manual_refund",
                              "stock_adjustment", "guest_purchase")})
    planted["zero_price_lines"] = int((frame["Price"] == 0).sum())
    return OnlineRetailExport(lines=frame, line_truth=line_truth, orders=orders, customers=customers,
                              closed_days=closed, planted=planted, start=start, end=days[-1], opened=opened,
                              country=country)


# --------------------------------------------------------------------------- files

TRUTH_FILES = {"line_truth": "truth_lines.csv", "orders": "truth_orders.csv", "customers": "truth_customers.csv",
               "closed_days": "closed_days.csv"}


def write_online_retail(folder: str | Path, export: OnlineRetailExport) -> dict[str, Path]:
    """Write an export as ``online_retail_II.csv`` plus its truth (``truth_*.csv``, ``closed_days.csv``,
    ``planted.json``).

    The export file has the name ``data/configs/online_retail_ii.yml`` reads, so a copy of that
    config in ``folder`` reads it as it is. Dates are written ``YYYY-MM-DD HH:MM:SS`` as in the
    real CSV; ``truth_lines.csv`` has a ``row`` column (the 0-based data row of the export).

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing files of these names are replaced (atomically).
    export : OnlineRetailExport
        From :func:`generate_online_retail`.

    Returns
    -------
    dict of str to Path
        File per name: ``lines``, ``line_truth``, ``orders``, ``customers``, ``closed_days``, ``planted``.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_online_retail(tempfile.mkdtemp(), generate_online_retail(200, seed=3))
    >>> paths["lines"].name, paths["lines"].read_text().splitlines()[0]
    ('online_retail_II.csv', 'Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country')
    """
    folder = Path(folder)
    paths = {"lines": folder / EXPORT_FILE_NAME}
    write_frame(paths["lines"], export.lines)
    for name, file_name in TRUTH_FILES.items():
        paths[name] = folder / file_name
        frame = getattr(export, name)
        write_frame(paths[name], frame.rename_axis("row").reset_index() if name == "line_truth" else frame)
    paths["planted"] = folder / "planted.json"
    atomic_write_text(paths["planted"], dumps_json(export.planted))
    return paths
