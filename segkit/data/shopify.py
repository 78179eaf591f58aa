"""A Shopify-like orders export (``orders_export_1.csv``) with planted truth.

What Shopify's admin exports (issue 19, facts from genuine exports of several shops), reproduced so that
tests check segkit against what was planted rather than against itself (``data/configs/shopify.yml``
reads the file unchanged):

- **Layout**: the 79 columns of the current export (:data:`COLUMNS_79`); older exports have 78 (no
  ``Payment References``) or 73 (nor ``Outstanding Balance, Employee, Location, Device ID, Payment ID``):
  ``layout=78`` / ``73``.
- **One row per line item**, an order's rows contiguous, newest order first. ``Name, Email, Created at,
  Phone``, the ``Lineitem …`` columns, ``Vendor`` and ``Lineitem discount`` repeat on every row; every
  other order-level field (``Financial Status, Subtotal, Total, Refunded Amount, Cancelled at, Payment
  Method, Source, Billing Country, Notes`` …) is on the first row only.
- **Customers by e-mail**, whose case varies between one person's orders (``Ann.Lee@…`` and
  ``ann.lee@…``); marketplace orders (``Source`` a numeric app id) mostly have no e-mail (one planted
  marketplace order has one); other orders come from ``web``, ``pos`` or ``shopify_draft_order``.
- Customer attributes on each order's first row, varying between one person's orders: ``Accepts
  Marketing`` (yes/no) and ``Billing Country`` (US/CA).
- ``Created at`` is ``YYYY-MM-DD HH:MM:SS ±HHMM`` in the shop's zone (America/Los_Angeles: −0800 in
  winter, −0700 in summer); some orders are placed at 23:30 local time.
- **Statuses**: ``paid, partially_refunded, refunded, voided, pending, authorized, partially_paid``;
  ``Refunded Amount`` = ``Total`` when refunded, part of it when partially refunded; ``Cancelled at`` on
  refunded, voided and some still-paid orders; orders of ``Total`` 0 (samples); test orders through the
  ``bogus`` gateway; ``Notes`` with line breaks; ``Phone`` and ``Billing Zip`` prefixed with ``'``.
- Amounts: ``Subtotal`` = Σ quantity × price − line discounts; ``Taxes`` 8 % of it; ``Total`` =
  ``Subtotal + Shipping + Taxes``.
- ``resaved=True``: the file as a spreadsheet re-saves it: offsets gone (``3/10/2024 23:30``, seconds
  dropped too), ``TRUE``/``FALSE`` for yes/no, amounts without trailing zeros, the ``'`` prefixes removed.

The truth (:class:`ShopifyExport`): per order (``orders``: name, customer key, local day, status,
whether cancelled / a test / a guest order, ``subtotal``, ``total``, ``refunded`` and ``kept`` — the
merchandise value kept: ``Subtotal × (1 − Refunded Amount / Total)`` for an order that counts as a
purchase, 0 for refunded, voided, cancelled-pending and test orders) and per customer (``customers``:
purchase orders, kept value, buyer or not), under the preset's rules (pending and authorized orders
count as purchases; a cancelled order still paid counts by its status).

Examples
--------
>>> export = generate_shopify_export(40, seed=3)
>>> len(export.lines.columns)
79
>>> int((export.lines["Financial Status"] != "").groupby(export.lines["Name"]).sum().max())  # first row only
1
>>> sorted(export.orders["status"].unique())[:3]
['authorized', 'paid', 'partially_paid']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError

__all__ = ["COLUMNS_79", "LAYOUTS", "REPEATED_COLUMNS", "ShopifyExport", "generate_shopify_export",
           "write_shopify_export"]

_TAX_COLUMNS = tuple(f"Tax {i} {part}" for i in range(1, 6) for part in ("Name", "Value"))
#: The current export's columns, in Shopify's order.
COLUMNS_79: tuple[str, ...] = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing",
    "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount", "Shipping Method",
    "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem compare at price",
    "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable", "Lineitem fulfillment status",
    "Billing Name", "Billing Street", "Billing Address1", "Billing Address2", "Billing Company", "Billing City",
    "Billing Zip", "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes", "Cancelled at",
    "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Outstanding Balance", "Employee",
    "Location", "Device ID", "Id", "Tags", "Risk Level", "Source", "Lineitem discount", *_TAX_COLUMNS, "Phone",
    "Receipt Number", "Duties", "Billing Province Name", "Shipping Province Name", "Payment ID",
    "Payment Terms Name", "Next Payment Due At", "Payment References",
)
#: The columns of each layout (79 current, 78 without Payment References, 73 older).
LAYOUTS: dict[int, tuple[str, ...]] = {
    79: COLUMNS_79,
    78: COLUMNS_79[:-1],
    73: tuple(c for c in COLUMNS_79[:-1]
              if c not in ("Outstanding Balance", "Employee", "Location", "Device ID", "Payment ID")),
}
#: Columns written on every row of an order; every other column is on its first row only.
REPEATED_COLUMNS: tuple[str, ...] = (
    "Name", "Email", "Created at", "Phone", "Vendor", "Lineitem discount",
    *(c for c in COLUMNS_79 if c.startswith("Lineitem ")))

ZONE = ZoneInfo("America/Los_Angeles")
MARKETPLACE_SOURCE = "580111"   # a marketplace's numeric app id
_OWN_SOURCES = ("web", "pos", "shopify_draft_order")  # the shop's own channels (Source)
TEST_GATEWAY = "bogus"
#: Status → share of ordinary orders (the planted special orders come on top).
STATUS_SHARES: dict[str, float] = {
    "paid": 0.70, "partially_refunded": 0.08, "refunded": 0.08, "voided": 0.04, "pending": 0.04,
    "authorized": 0.03, "partially_paid": 0.03}
_CATALOGUE = (("Linen shirt", "LS-01", 39.90), ("Wool socks", "WS-02", 12.50), ("Canvas bag", "CB-03", 24.00),
              ("Mug", "MG-04", 9.99), ("Notebook", "NB-05", 6.45), ("Scarf", "SC-06", 29.95))
_FIRST = ("Ann", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo")
_LAST = ("Lee", "Moss", "Nyx", "Ortiz", "Park", "Quinn", "Ruiz", "Sato", "Tam", "Udo")


@dataclass
class ShopifyExport:
    """A generated export and its truth.

    Attributes
    ----------
    lines : DataFrame
        The CSV's rows as text, in file order (newest order first), the layout's columns.
    orders : DataFrame
        One row per order: ``name, customer`` (lower-case e-mail, NA for guests), ``day`` (local date),
        ``status, cancelled, test, guest, subtotal, total, refunded, kept, is_purchase`` (kept > 0).
    customers : DataFrame
        One row per customer key with an order that is no test: ``customer, orders, purchase_orders, kept,
        is_buyer``.
    """

    lines: pd.DataFrame
    orders: pd.DataFrame
    customers: pd.DataFrame

    @property
    def net_revenue(self) -> float:
        """Merchandise kept by known customers (guests and test orders excluded), rounded to cents."""
        known = self.orders[~self.orders["guest"] & ~self.orders["test"]]
        return round(float(known["kept"].sum()), 2)


def _money(x: float) -> str:
    return f"{x:.2f}"


def _plain(text: str) -> str:
    """A number as a spreadsheet's General format writes it (``20.00`` → ``20``, ``19.90`` → ``19.9``)."""
    return text if not text or not text[0].isdigit() or "." not in text else text.rstrip("0").rstrip(".")


def _shopify_time(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S %z")


def generate_shopify_export(n_customers: int = 120, seed: int = 0, layout: int = 79,
                            resaved: bool = False) -> ShopifyExport:
    """A Shopify orders export of ``n_customers`` customers (plus marketplace guests) with planted truth.

    Parameters
    ----------
    n_customers : int
        Customers with an e-mail (each places 1–4 orders); about a tenth as many marketplace orders without
        e-mail come on top, plus the planted special orders (a customer whose only order is refunded, one
        whose only order is voided, a Total-0 sample, test orders, a cancelled order still paid …).
    seed : int
        Random seed; the same arguments give the same export.
    layout : {79, 78, 73}
        Number of columns (:data:`LAYOUTS`).
    resaved : bool
        Write the file as a spreadsheet re-saves it (see the module docstring).

    Returns
    -------
    ShopifyExport
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout = {layout!r}; Shopify's orders export has {', '.join(map(str, LAYOUTS))} columns.")
    if n_customers < 10:
        raise ConfigError(f"n_customers = {n_customers}; use at least 10 (the planted special orders need them).")
    rng = np.random.default_rng(seed)
    people = [(f"{_FIRST[i % 10]} {_LAST[(i // 10) % 10]}", f"{_FIRST[i % 10]}.{_LAST[(i // 10) % 10]}{i}@Example.com")
              for i in range(n_customers)]
    start = dt.datetime(2024, 1, 8, tzinfo=ZONE)
    plans: list[dict] = []
    for person, (name, email) in enumerate(people):
        for _ in range(int(rng.integers(1, 5))):
            status = str(rng.choice(list(STATUS_SHARES), p=np.array(list(STATUS_SHARES.values()))))
            plans.append({"person": person, "status": status})
    for _ in range(max(2, n_customers // 10)):
        plans.append({"person": None, "status": "paid"})  # marketplace orders, no e-mail
    # planted specials: persons 0-5 get exactly these orders (their random ones are replaced)
    plans = [p for p in plans if p["person"] not in range(6)]
    plans += [
        {"person": 0, "status": "refunded", "cancelled": True},      # only order refunded: no buyer
        {"person": 1, "status": "voided", "cancelled": True},        # only order voided: no buyer
        {"person": 2, "status": "paid", "zero": True},               # a Total-0 sample only: no buyer
        {"person": 3, "status": "paid", "cancelled": True},          # cancelled, still paid: a purchase
        {"person": 3, "status": "paid", "test": True},               # test order: removed
        {"person": 4, "status": "paid", "late": True},               # 23:30 in summer (-0700)
        {"person": 4, "status": "paid", "late": True, "winter": True},  # 23:30 in winter (-0800)
        {"person": 5, "status": "pending", "cancelled": True},       # cancelled before capture: none
        {"person": 5, "status": "authorized"},                       # pending capture: a purchase
        {"person": None, "status": "paid", "test": True},            # guest test order
        {"person": 6, "status": "paid", "marketplace": True},        # a marketplace order with an e-mail
    ]
    order = rng.permutation(len(plans))
    plans = [plans[i] for i in order]
    seconds = np.sort(rng.integers(0, 600 * 86_400, size=len(plans)))
    rows: list[dict] = []
    truth: list[dict] = []
    for k, plan in enumerate(plans):
        placed = start + dt.timedelta(seconds=int(seconds[k]))
        if plan.get("late"):
            day = dt.date(2024, 7, 14) if not plan.get("winter") else dt.date(2024, 12, 14)
            placed = dt.datetime(day.year, day.month, day.day, 23, 30, 0, tzinfo=ZONE)
        placed = placed.astimezone(ZONE)
        name = f"#{1001 + k}"
        person = plan["person"]
        email = ""
        if person is not None:
            email = people[person][1]
            email = email.lower() if rng.random() < 0.5 else email  # case varies between orders
        n_items = int(rng.integers(1, 4))
        items = []
        for j in rng.choice(len(_CATALOGUE), size=n_items, replace=False):
            title, sku, price = _CATALOGUE[int(j)]
            qty = int(rng.integers(1, 4))
            price = 0.0 if plan.get("zero") else price
            discount = round(qty * price * 0.1, 2) if price and rng.random() < 0.2 else 0.0
            items.append((title, sku, price, qty, discount))
        subtotal = round(sum(q * p - d for _, _, p, q, d in items), 2)
        shipping = 0.0 if subtotal == 0 or subtotal > 80 else 5.0
        taxes = round(subtotal * 0.08, 2)
        total = round(subtotal + shipping + taxes, 2)
        status = plan["status"]
        refunded = 0.0
        if status == "refunded":
            refunded = total
        elif status == "partially_refunded":
            refunded = round(total * float(rng.choice([0.25, 0.4, 0.5])), 2)
        cancelled = bool(plan.get("cancelled")) or (status in ("refunded", "voided") and rng.random() < 0.5)
        test = bool(plan.get("test"))
        counts = status in ("paid", "partially_refunded", "partially_paid", "pending", "authorized") and not (
            cancelled and status in ("pending", "authorized"))
        kept = subtotal * (1 - refunded / total) if counts and total > 0 else 0.0
        if test:
            kept = 0.0
        truth.append({"name": name, "customer": email.strip().lower() or pd.NA, "day": placed.date(),
                      "status": status, "cancelled": cancelled, "test": test, "guest": not email,
                      "subtotal": subtotal, "total": total, "refunded": refunded, "kept": kept,
                      "is_purchase": kept > 0})
        created = _shopify_time(placed)
        cancelled_at = _shopify_time(placed + dt.timedelta(hours=2)) if cancelled else ""
        paid_at = "" if status in ("voided", "pending", "authorized") else created
        buyer = people[person][0] if person is not None else "Marketplace Buyer"
        source = str(rng.choice(_OWN_SOURCES, p=[0.8, 0.15, 0.05]))
        if (person is None or plan.get("marketplace")) and not test:
            source = MARKETPLACE_SOURCE
        phone = f"'+1 555 {1000 + (person or 0):04d}"
        first = {
            "Financial Status": status, "Paid at": paid_at, "Fulfillment Status": "fulfilled",
            "Accepts Marketing": "yes" if rng.random() < 0.6 else "no", "Currency": "USD",
            "Subtotal": _money(subtotal), "Shipping": _money(shipping), "Taxes": _money(taxes), "Total": _money(total),
            "Discount Amount": _money(sum(d for *_, d in items)), "Shipping Method": "Standard",
            "Billing Name": buyer, "Billing Zip": "'02134", "Billing Country": "US" if rng.random() < 0.85 else "CA",
            "Billing Phone": phone, "Shipping Name": buyer, "Shipping Zip": "'02134", "Shipping Country": "US",
            "Notes": "Leave at the door.\nRing twice, please." if rng.random() < 0.15 else "",
            "Note Attributes": "gift: yes\nwrap: no" if rng.random() < 0.1 else "",
            "Cancelled at": cancelled_at, "Payment Method": TEST_GATEWAY if test else "Shopify Payments",
            "Payment Reference": f"c{k}.1", "Refunded Amount": _money(refunded),
            "Outstanding Balance": _money(-refunded if status == "partially_refunded" else 0.0),
            "Id": str(5_000_000_000 + k), "Tags": "", "Risk Level": "Low",
            "Source": source,
            "Tax 1 Name": "State Tax 8%", "Tax 1 Value": _money(taxes), "Receipt Number": "", "Duties": "",
            "Payment ID": f"p{k}", "Payment Terms Name": "", "Next Payment Due At": "", "Payment References": f"c{k}.1",
        }
        for i, (title, sku, price, qty, discount) in enumerate(items):
            row = {c: "" for c in COLUMNS_79}
            row.update({"Name": name, "Email": email, "Created at": created, "Phone": phone, "Vendor": "Acme",
                        "Lineitem quantity": str(qty), "Lineitem name": title, "Lineitem price": _money(price),
                        "Lineitem compare at price": "", "Lineitem sku": sku, "Lineitem requires shipping": "true",
                        "Lineitem taxable": "true", "Lineitem fulfillment status": "fulfilled",
                        "Lineitem discount": _money(discount)})
            if i == 0:
                row.update(first)
            rows.append(row)
    lines = pd.DataFrame(rows, columns=list(COLUMNS_79))
    # newest order first, each order's rows contiguous
    lines["_k"] = lines["Name"].str[1:].astype(int)
    lines = lines.iloc[np.lexsort((np.arange(len(lines)), -lines["_k"].to_numpy()))].drop(columns="_k")
    lines = lines[list(LAYOUTS[layout])].reset_index(drop=True)
    if resaved:
        lines = _resaved(lines)
    orders = pd.DataFrame(truth).astype({"customer": "string"})
    counted = orders[~orders["test"] & ~orders["guest"]]
    per = counted.groupby("customer")
    customers = pd.DataFrame({"orders": per.size(), "purchase_orders": per["is_purchase"].sum(),
                              "kept": per["kept"].sum()})
    customers["is_buyer"] = (customers["purchase_orders"] > 0) & (customers["kept"] > 0)
    customers = customers.reset_index().rename(columns={"index": "customer"})
    return ShopifyExport(lines=lines, orders=orders, customers=customers)


def _resaved(lines: pd.DataFrame) -> pd.DataFrame:
    """What a spreadsheet does to the export when it re-saves it as CSV."""
    out = lines.copy()
    for column in ("Created at", "Paid at", "Cancelled at", "Fulfilled at"):
        if column in out:
            parts = out[column].str.extract(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})")  # wall time, offset lost
            out[column] = [f"{int(m)}/{int(d)}/{y} {int(h)}:{mi}" if isinstance(y, str) else ""
                           for y, m, d, h, mi in parts.itertuples(index=False)]
    for column in out.columns:
        values = out[column]
        if column in ("Accepts Marketing", "Lineitem requires shipping", "Lineitem taxable"):
            out[column] = values.replace({"yes": "TRUE", "no": "FALSE", "true": "TRUE", "false": "FALSE"})
        elif column in ("Phone", "Billing Zip", "Shipping Zip", "Billing Phone"):
            out[column] = values.str.lstrip("'")
        elif column in ("Subtotal", "Shipping", "Taxes", "Total", "Discount Amount", "Refunded Amount",
                        "Lineitem price", "Lineitem discount", "Outstanding Balance", "Tax 1 Value"):
            out[column] = values.map(_plain)
    return out


def write_shopify_export(folder: str | Path, export: ShopifyExport, name: str = "orders_export_1.csv") -> Path:
    """Write ``export.lines`` as Shopify does (UTF-8, comma, quotes where needed, ``\\n`` line ends)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    export.lines.to_csv(path, index=False, lineterminator="\n")
    return path
