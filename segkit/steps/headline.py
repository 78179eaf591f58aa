"""The run's one set of headline numbers, as every notebook and ``index.html`` show them.

The numbers are computed once per run by the data audit (:func:`segkit.audit.headline_numbers` over
the relational core's :data:`segkit.data.relational.HEADLINE`) and stored in
``artifacts/audit_summary.json`` under ``headline``. Every summary (``summaries/NN_name.json``, key
``headline``) carries that same mapping, and :func:`headline_sentence` / :func:`headline_items` turn
it into words and a table — so notebooks 01–05 and the index cannot disagree on net revenue,
purchase orders, cancellation documents, buyers, prospects or guests.

Definitions (those of the relational core's kept value): **net revenue** is every order line's amount
summed (purchases less returns and cancellations, matched to their order or not), in the config's
``report.currency``, shown to the cent; a **purchase order** is an order that kept a positive value once
the cancellations matched to it are netted (a fully cancelled order is not one); a **cancellation
document** is an order made only of return or cancellation lines (a ``C`` invoice), never an order of
its own; a **buyer** kept at least one purchase order and a positive total; customers who **kept
nothing** bought but had it all cancelled or returned; customers with **order lines but no purchase**
have only returns, cancellations or zero-value orders; **prospects** have no order line; **guest lines** (no customer id) are the rows
the guest cleaning rule removed, after exact duplicates; **unmatched cancellation documents** matched no
purchase line in the data, and what they took back is deducted from the customer's total as a whole.

Examples
--------
>>> h = {"currency": "EUR", "net_revenue": 1934530.01, "orders_total": 14849, "purchase_orders": 13929,
...      "cancelled_orders": 3, "cancellation_documents": 917, "other_orders": 0, "customers": 3000,
...      "buyers": 2542, "customers_kept_nothing": 1, "customers_only_returns": 0, "prospects": 457,
...      "guest_lines": 120, "guest_revenue": 5109.77}
>>> print(headline_sentence(h))
Net revenue EUR 1,934,530.01 (returns and cancellations deducted) from 13,929 purchase orders; 917 cancellation or return documents and 3 fully cancelled orders are not purchases. 3,000 customers: 2,542 buyers, 1 who kept nothing (all cancelled or returned), 457 prospects (no order line). 120 guest lines without customer id (EUR 5,109.77) are left out of the customer analyses.
>>> headline_items(h)["Net revenue (EUR)"]
1934530.01
"""

from __future__ import annotations

from typing import Any, Mapping

from segkit.core.labels import and_list

__all__ = ["format_money", "headline_sentence", "headline_items"]


def format_money(value: float, currency: str = "") -> str:
    """Money to the cent with thousands separators, the currency code first when known.

    Examples
    --------
    >>> format_money(1934530.0100000002, "EUR"), format_money(-0.001), format_money(5.5, "GBP")
    ('EUR 1,934,530.01', '0.00', 'GBP 5.50')
    """
    amount = f"{round(float(value), 2) + 0.0:,.2f}"
    return f"{currency} {amount}" if currency else amount


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def headline_sentence(headline: Mapping[str, Any]) -> str:
    """The headline numbers in words (plain text; parts with a count of 0 are left out, except buyers
    and prospects). ``headline``: the ``audit_summary.json`` ``headline`` mapping."""
    cur = str(headline.get("currency") or "")
    docs = [part for part in (
        _count(headline["cancellation_documents"], "cancellation or return document") if headline["cancellation_documents"] else "",
        _count(headline["cancelled_orders"], "fully cancelled order") if headline["cancelled_orders"] else "",
        _count(headline["other_orders"], "order") + " with zero or negative value" if headline["other_orders"] else "",
    ) if part]
    orders = (f"Net revenue {format_money(headline['net_revenue'], cur)} (returns and cancellations deducted) from "
              f"{_count(headline['purchase_orders'], 'purchase order')}")
    if docs:
        listed = and_list(docs)
        shown = headline["cancellation_documents"] + headline["cancelled_orders"] + headline["other_orders"]
        orders += f"; {listed} {'is not a purchase' if shown == 1 else 'are not purchases'}"
    people = [_count(headline["buyers"], "buyer")]
    if headline["customers_kept_nothing"]:
        people.append(f"{headline['customers_kept_nothing']:,} who kept nothing (all cancelled or returned)")
    if headline["customers_only_returns"]:
        people.append(f"{headline['customers_only_returns']:,} with order lines but no purchase (only returns, "
                      "cancellations or zero-value orders)")
    people.append(_count(headline["prospects"], "prospect") + " (no order line)")
    text = f"{orders}."
    unmatched = int(headline.get("unmatched_documents", 0))
    if unmatched:
        text += (f" {_count(unmatched, 'cancellation document')} matched no purchase line in the data (an order "
                 "placed before the data starts, another product or price, a refund of an amount only): "
                 f"{format_money(headline.get('unmatched_value', 0.0), cur)} deducted from those customers' "
                 "totals as a whole, not from an order (a best match by product and price pairs the others).")
    text += f" {_count(headline['customers'], 'customer')}: {', '.join(people)}."
    if headline["guest_lines"]:
        text += (f" {_count(headline['guest_lines'], 'guest line')} without customer id "
                 f"({format_money(headline['guest_revenue'], cur)}) "
                 f"{'is' if headline['guest_lines'] == 1 else 'are'} left out of the customer analyses.")
    return text


def headline_items(headline: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers as a table's named values (money rounded to cents).

    Examples
    --------
    >>> h = {"currency": "", "net_revenue": 10.004, "orders_total": 2, "purchase_orders": 1, "cancelled_orders": 0,
    ...      "cancellation_documents": 1, "other_orders": 0, "customers": 3, "buyers": 1, "customers_kept_nothing": 0,
    ...      "customers_only_returns": 1, "prospects": 1, "guest_lines": 0, "guest_revenue": 0.0}
    >>> headline_items(h)
    {'Net revenue': 10.0, 'Purchase orders': 1, 'Cancellation/return documents': 1, 'Fully cancelled orders': 0, 'Customers': 3, 'Buyers': 1, 'Customers with order lines but no purchase kept': 1, 'Prospects (no order line)': 1, 'Guest lines (no customer id)': 0}
    """
    cur = str(headline.get("currency") or "")
    unmatched = ({"Unmatched cancellation documents": int(headline["unmatched_documents"])}
                 if headline.get("unmatched_documents") else {})
    return {
        "Net revenue" + (f" ({cur})" if cur else ""): round(float(headline["net_revenue"]), 2) + 0.0,
        "Purchase orders": int(headline["purchase_orders"]),
        "Cancellation/return documents": int(headline["cancellation_documents"]),
        "Fully cancelled orders": int(headline["cancelled_orders"]),
        "Customers": int(headline["customers"]),
        "Buyers": int(headline["buyers"]),
        "Customers with order lines but no purchase kept": int(headline["customers_kept_nothing"])
        + int(headline["customers_only_returns"]),
        "Prospects (no order line)": int(headline["prospects"]),
        "Guest lines (no customer id)": int(headline["guest_lines"]),
    } | unmatched
