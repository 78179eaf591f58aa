"""Order statuses and refunds: shop exports that say what happened to an order in its own columns.

Shop systems such as Shopify export **one row per line item** and record what happened to an order
as order-level fields, never as negative lines: a financial status (``paid``, ``refunded``,
``partially_refunded``, ``voided``, ``pending`` …), the money refunded, when it was cancelled, the
gateway it was paid through; and they often write these fields on the **order's first row only**.
This module is the reader's step that turns such fields into the canonical order lines the relational
core (:mod:`segkit.data.relational`) defines kept value on. It runs in the staged ``lines`` table of
:class:`segkit.data.engine.TransactionLog` (DuckDB, any size) or of its Spark form
(:class:`segkit.data.spark_audit.SparkTransactionLog`), once, before the audit. Both run the same statements:
queries, ``CREATE OR REPLACE TABLE … AS`` (``lines`` rewritten whole, in ``_row`` order, never changed in place
by a join) and ``UPDATE … SET … WHERE`` (see :func:`apply_order_contract`):

1. **Customer key**: with ``orders.customer_key: email`` the customer id is an e-mail address compared
   trimmed and in lower case (``Ann@Shop.com`` and ``ann@shop.com`` are one customer). An order without
   one is a guest order: the audit counts it and leaves it out of the customer analyses.
   **One store, one currency, each order once** (when the file maps its own ``order_id``): an order id
   with several customers or several order dates is a :class:`~segkit.core.errors.DataError` (exports of
   stores that number orders alike, e.g. both from ``#1001``: run once per store); a ``currency`` column
   with several codes is one too (amounts in different currencies cannot be summed; one code is
   :attr:`StatusFacts.currency`, which the audit compares with ``report.currency``); an order that the
   input holds more than once with the same lines (overlapping exports: each contiguous run of an id's
   rows is one copy) is kept once, before values are spread, and counted (``repeated_orders``). Lines of
   one order are then never exact duplicates of each other (two identical items of an order are two).
2. **Order-level fields carried to every line** of their order (same ``order_id``), whichever line holds
   them: ``order_status, refunded_amount, cancelled_at, order_value, order_total, payment_method`` and the
   columns listed in ``orders.order_level_columns`` (e.g. ``channel``, ``country``, ``email_opt_in``: the
   customer attributes a customers table is derived from, see
   :meth:`segkit.data.engine.TransactionLog.derived_customers`). A ``channel`` that is only digits (a
   marketplace's app id in Shopify's ``Source``) is named by ``orders.numeric_channel_name``
   (``marketplace (app 580111)``); other channels (``web``, ``pos``, ``shopify_draft_order``) stay as written.
3. **Statuses checked**: every ``order_status`` must be listed in ``orders.statuses`` with its meaning
   (``purchase``, ``not_purchase``, ``pending``); an unknown one is a :class:`~segkit.core.errors.DataError`
   naming the file, the column, the rows and the config key to set.
4. **Test orders removed**: orders paid through ``orders.test_payment_methods`` (Shopify's ``bogus``
   gateway) are deleted from the lines and counted.
5. **Value analysed, then kept value**: a line's ``amount`` (``quantity × unit_price`` unless mapped) is
   rescaled so that an order's lines sum to its ``order_value`` when it is mapped (Shopify's ``Subtotal``:
   merchandise after discounts, without shipping and taxes; map ``Total`` instead to analyse what the
   customer paid), in proportion to the lines' own amounts. Then the order's **kept value** replaces it:

   * an order whose status means ``not_purchase`` (refunded in full, voided, never captured), a
     ``pending`` order when ``orders.pending: not_purchase``, and a cancelled order that is pending (it
     will never be captured) or, with ``orders.cancelled: not_purchase``, any cancelled order, keeps
     **nothing**: its lines' amounts become 0, so the core counts it as an order that is no purchase, its
     customer is no buyer unless other orders were kept, and net revenue leaves it out;
   * any other order keeps ``value × (1 − refunded_amount / order_total)`` (``order_value`` when no
     ``order_total`` is mapped; at least 0), spread over its lines in proportion to their amounts: a
     partial refund reduces the order's kept value, a refund of everything makes it no purchase.

   The recorded and kept values are reported by the audit (:class:`StatusFacts`); the clean lines carry
   the kept amounts (``amount``), so every step after the audit (RFM, clusters, lifecycle, CLV, campaign
   retention) reads one definition, and the value before statuses and refunds (``recorded_amount``), which
   the relational core reads as an order's recorded value: an order that recorded value and kept nothing
   (refunded, voided) is a *cancelled order* in the headline, as a fully matched cancellation makes one,
   and a customer who bought only such orders *kept nothing*. Cancellation documents, where an export has
   them as well, are matched on top (:mod:`segkit.data.cancellations`).
6. **Re-saved files**: with ``orders.dates_have_offsets: true``, order dates without their UTC offset
   mean a spreadsheet re-saved the file (it drops offsets, may round amounts, turns yes/no into
   TRUE/FALSE): counted for a warning that says what was lost. Dates with an offset are read as the
   shop's local wall time (the order's own offset), so an order at 23:30 −0700 stays on its day.

Nothing happens for an input that maps none of these columns and keeps the defaults (the result is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from segkit.core.errors import ConfigError
from segkit.core.schema import TRANSACTIONS, Where, examples
from segkit.data.relational import sql_identifier as _ident  # the one quoting of SQL text
from segkit.data.relational import sql_literal as _quote

__all__ = ["ORDER_LEVEL_COLUMNS", "STATUS_MEANINGS", "OrderContract", "StatusFacts", "apply_order_contract",
           "carried_columns", "contract_applies"]

#: The canonical order-level columns (:data:`segkit.core.schema.TRANSACTIONS` ``extra``).
ORDER_LEVEL_COLUMNS: tuple[str, ...] = (
    "order_status", "refunded_amount", "cancelled_at", "order_value", "order_total", "payment_method")
#: What a status may mean (``orders.statuses`` values).
STATUS_MEANINGS: tuple[str, ...] = ("purchase", "not_purchase", "pending")
_KEYS = ("customer_id", "order_id", "order_date")  # never carried: they identify the line's order


@dataclass(frozen=True)
class OrderContract:
    """The validated ``orders`` section of the configuration (``segkit/defaults/orders.yml``).

    Examples
    --------
    >>> OrderContract.from_config({"orders": {"statuses": {"Paid": "purchase"}}}).statuses
    {'paid': 'purchase'}
    """

    statuses: Mapping[str, str] = field(default_factory=dict)
    pending: str = "purchase"
    cancelled: str = "by_status"
    test_payment_methods: tuple[str, ...] = ()
    order_level_columns: tuple[str, ...] = ()
    customer_key: str = "as_is"
    dates_have_offsets: bool = False
    numeric_channel_name: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "OrderContract":
        """Read and check ``config["orders"]``; a :class:`ConfigError` naming the key otherwise."""
        section = dict(config.get("orders") or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"orders: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))} "
                              "(see segkit/defaults/orders.yml).")
        statuses = section.get("statuses") or {}
        if not isinstance(statuses, Mapping):
            raise ConfigError(f"orders.statuses must map each status to one of {', '.join(STATUS_MEANINGS)}, "
                              f"not {statuses!r}.")
        bad = {k: v for k, v in statuses.items() if v not in STATUS_MEANINGS}
        if bad:
            raise ConfigError(f"orders.statuses: {bad!r}: each status means one of {', '.join(STATUS_MEANINGS)}.")

        def choice(key: str, options: Sequence[Any]) -> Any:
            value = section.get(key, cls.__dataclass_fields__[key].default)
            if value not in options:
                raise ConfigError(f"orders.{key} = {value!r}; use one of {', '.join(map(str, options))} "
                                  "(see segkit/defaults/orders.yml).")
            return value

        def names(key: str) -> tuple[str, ...]:
            value = section.get(key) or []
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"orders.{key} = {value!r}; give a list of names.")
            return tuple(value)

        carried = names("order_level_columns")
        wrong = [c for c in carried if c not in TRANSACTIONS.known or c in _KEYS]
        if wrong:
            raise ConfigError(f"orders.order_level_columns: {', '.join(map(repr, wrong))} cannot be carried over "
                              "an order; list canonical transaction columns other than customer_id, order_id and "
                              "order_date (e.g. channel, country).")
        channel_name = section.get("numeric_channel_name")
        if channel_name is not None and (not isinstance(channel_name, str) or "{id}" not in channel_name):
            raise ConfigError(f"orders.numeric_channel_name = {channel_name!r}; give a text with {{id}} where the "
                              "number goes, such as 'marketplace (app {id})', or null (numbers kept as they are).")
        return cls(statuses={str(k).strip().lower(): str(v) for k, v in statuses.items()},
                   pending=choice("pending", ("purchase", "not_purchase")),
                   cancelled=choice("cancelled", ("by_status", "not_purchase")),
                   test_payment_methods=tuple(v.strip().lower() for v in names("test_payment_methods")),
                   order_level_columns=carried,
                   customer_key=choice("customer_key", ("as_is", "email")),
                   dates_have_offsets=choice("dates_have_offsets", (True, False)),
                   numeric_channel_name=channel_name)


@dataclass
class StatusFacts:
    """What :func:`apply_order_contract` found and did (for the audit's findings).

    ``by_status``: one row per status (``status``: ``(empty)`` when none), with ``meaning`` (its
    ``orders.statuses`` entry), ``orders``, ``purchases`` (kept something), ``recorded`` (value before
    refunds) and ``kept`` (after); test orders are not in it. Counts are of orders (distinct order ids)
    unless named ``lines``/``rows``.
    """

    orders: int
    by_status: pd.DataFrame
    analysed: str
    refunded_orders: int = 0
    refunded_value: float = 0.0
    partially_refunded_purchases: int = 0
    value_not_kept: float = 0.0
    cancelled_orders: int = 0
    cancelled_still_purchases: int = 0
    cancelled_rule: str = "by_status"
    pending_rule: str = "purchase"
    test_orders: int = 0
    test_lines: int = 0
    test_examples: str = ""
    zero_value_orders: int = 0
    zero_value_examples: str = ""
    guest_orders: int = 0
    guest_value: float = 0.0
    rows_without_offset: int | None = None
    #: the one currency code of the input's ``currency`` column (None when not mapped or empty)
    currency: str | None = None
    #: orders exported more than once (same id, same lines: overlapping exports), kept once; their extra lines
    repeated_orders: int = 0
    repeated_lines: int = 0
    #: true = duplicates were judged per whole order here, so lines of one order are never duplicates of each
    #: other (two identical line items of an order are two items; :meth:`TransactionLog._mark_duplicates`)
    duplicates_by_order: bool = False
    first_rows_without_offset: list[int] = field(default_factory=list)
    dated_rows: int = 0


def carried_columns(contract: OrderContract, columns: Sequence[str]) -> list[str]:
    """The order-level columns of ``columns`` that :func:`apply_order_contract` carries over each order."""
    present = [c for c in ORDER_LEVEL_COLUMNS if c in columns]
    return list(dict.fromkeys(c for c in (*present, *contract.order_level_columns) if c in columns and c not in _KEYS))


def contract_applies(contract: OrderContract, columns: Sequence[str]) -> bool:
    """True when :func:`apply_order_contract` checks or changes lines with ``columns`` (else it returns None)."""
    return bool(carried_columns(contract, columns)) or contract.customer_key != "as_is" \
        or contract.dates_have_offsets or contract.numeric_channel_name is not None


def apply_order_contract(con: Any, contract: OrderContract, columns: Sequence[str],
                         labels: Mapping[str, str], source: str) -> StatusFacts | None:
    """Apply the order contract to the staged ``lines`` table on ``con`` (see the module docstring).

    Every statement is one DuckDB and :class:`segkit.data.spark_audit.SparkConnection` both run: queries,
    ``CREATE OR REPLACE TABLE name AS query`` and ``UPDATE lines SET … WHERE …`` (no ``UPDATE … FROM``,
    ``DELETE`` or ``ALTER TABLE``): ``lines`` is rewritten whole, ordered by ``_row`` (the input order, which
    DuckDB keeps and the clean lines are written in), with its columns in their order and types and
    ``recorded_amount DOUBLE`` added last.

    Parameters
    ----------
    con : DuckDBPyConnection or SparkConnection
        Holds ``lines``: canonical columns typed, ``_row`` (0-based input row), ``amount`` filled, and
        ``_tz_order_date`` when order dates were read from text.
    contract : OrderContract
        The ``orders`` section.
    columns : sequence of str
        Canonical columns of ``lines`` the input mapped.
    labels : mapping
        Canonical → the file's column names (for messages).
    source : str
        The file, for messages.

    Returns
    -------
    StatusFacts or None
        None when the input maps no order-level column and the contract changes nothing.

    Raises
    ------
    DataError
        A status that ``orders.statuses`` does not list (file, column, values, rows, what to set).
    """
    present = [c for c in ORDER_LEVEL_COLUMNS if c in columns]
    carried = carried_columns(contract, columns)
    if not contract_applies(contract, columns):
        return None
    if "order_status" in columns:  # before the fill: the rows named are the file's own
        _check_statuses(con, contract, labels, source)
    if contract.customer_key == "email":
        con.execute("UPDATE lines SET customer_id = lower(customer_id) WHERE customer_id IS NOT NULL")
    currency = _single_currency(con, labels, source) if "currency" in columns else None
    copies = (0, 0)
    if "order_id" in labels:  # the file's own order ids (not one id per row)
        _check_reused_order_ids(con, labels, source)
        if present:  # before values are spread: an order exported twice is one order
            copies = _drop_order_copies(con, columns, present)
    channel_name = contract.numeric_channel_name if "channel" in columns else None
    if (carried and "order_id" in columns) or channel_name is not None:
        _carry_order_fields(con, carried if "order_id" in columns else [], channel_name)
    status = "lower(order_status)" if "order_status" in columns else "CAST(NULL AS VARCHAR)"
    meaning = ("CASE " + " ".join(f"WHEN status = {_quote(k)} THEN {_quote(v)}" for k, v in contract.statuses.items())
               + " ELSE 'purchase' END") if contract.statuses else "'purchase'"
    has = set(columns)
    value = "coalesce(max(order_value), sum(amount))" if "order_value" in has else "sum(amount)"
    tests = ", ".join(_quote(t) for t in contract.test_payment_methods)
    con.execute(f"""
        CREATE OR REPLACE TABLE _order_values AS
        SELECT order_id, min(_row) AS first_row, count(*) AS lines, sum(amount) AS base, {value} AS value,
               {'max(refunded_amount)' if 'refunded_amount' in has else 'CAST(NULL AS DOUBLE)'} AS refunded,
               {'max(order_total)' if 'order_total' in has else 'CAST(NULL AS DOUBLE)'} AS total,
               {'bool_or(cancelled_at IS NOT NULL)' if 'cancelled_at' in has else 'false'} AS cancelled,
               {f'bool_or(lower(payment_method) IN ({tests}))' if tests and 'payment_method' in has else 'false'}
                   AS is_test,
               bool_and(customer_id IS NULL) AS guest,
               min({status}) AS status
        FROM lines GROUP BY order_id""")
    counted = (f"(meaning = 'purchase' OR (meaning = 'pending' AND {_quote(contract.pending)} = 'purchase')) "
               f"AND NOT (cancelled AND (meaning = 'pending' OR {_quote(contract.cancelled)} = 'not_purchase'))")
    con.execute(f"""
        CREATE OR REPLACE TABLE _order_contract AS
        SELECT *, coalesce(value, 0) * kept_share AS kept
        FROM (SELECT *,
                     CASE WHEN NOT counted THEN 0.0
                          WHEN coalesce(refunded, 0) <= 0 THEN 1.0
                          WHEN coalesce(total, value) <= 0 THEN 0.0
                          ELSE greatest(0.0, 1.0 - refunded / coalesce(total, value)) END AS kept_share
              FROM (SELECT *, {counted} AS counted FROM (SELECT *, {meaning} AS meaning FROM _order_values)))""")
    facts = _facts(con, contract, present, labels)
    facts.repeated_orders, facts.repeated_lines = copies
    facts.currency = currency
    facts.duplicates_by_order = bool(present) and "order_id" in labels
    _keep_order_values(con)
    return facts


def _columns(con: Any, table: str) -> list[str]:
    """The columns of ``table`` on ``con`` (DuckDB or :class:`segkit.data.spark_audit.SparkConnection`), in order."""
    return [str(c) for c in con.sql(f"SELECT * FROM {table} LIMIT 0").df().columns]


def _rewrite_lines(con: Any, values: Mapping[str, str], joined: str = "", where: str = "") -> None:
    """Replace ``lines`` by ``SELECT values FROM lines joined where``, in ``_row`` order (the input order, kept).

    ``values`` maps each output column to its SQL expression over ``lines`` (and the joined relation), in the
    output order. One statement DuckDB and Spark both run: what ``UPDATE … FROM``, ``DELETE`` and ``ALTER
    TABLE`` do on DuckDB alone."""
    select = ", ".join(f"{expr} AS {_ident(c)}" for c, expr in values.items())
    con.execute(f"CREATE OR REPLACE TABLE lines AS SELECT {select} FROM lines{joined}{where} ORDER BY lines._row")


def _as_held(con: Any) -> dict[str, str]:
    """Every column of ``lines`` as it is (the ``values`` of :func:`_rewrite_lines` that change nothing)."""
    return {c: f"lines.{_ident(c)}" for c in _columns(con, "lines")}


def _micro(value: str) -> str:
    """SQL rounding ``value`` (DOUBLE) to 6 decimals, half away from zero, as DuckDB and Spark both compute it.

    ``round(x, 6)`` differs between them at ties: DuckDB rounds the exact binary value (51.1821625 is stored
    as 51.18216249999… and becomes 51.182162), Spark the shortest decimal text (51.182163). Rounding the
    product by a million to a whole number is the same on both (a tie is then exactly representable)."""
    return f"round(({value}) * 1000000.0) / 1000000.0"


def _carry_order_fields(con: Any, carried: Sequence[str], channel_name: str | None) -> None:
    """Give every line of an order the order-level fields ``carried`` (each the first non-empty value of the
    order, by ``_row``) where the line has none, and name a channel that is only digits by ``channel_name``."""
    values = _as_held(con)
    joined = ""
    if carried:
        firsts = ", ".join(f"arg_min({_ident(c)}, _row) FILTER (WHERE {_ident(c)} IS NOT NULL) AS {_ident(c)}"
                           for c in carried)
        joined = (f" LEFT JOIN (SELECT order_id, {firsts} FROM lines WHERE order_id IS NOT NULL GROUP BY order_id)"
                  " AS f ON lines.order_id = f.order_id")
        values.update({c: f"coalesce(lines.{_ident(c)}, f.{_ident(c)})" for c in carried})
    if channel_name is not None:
        channel = values["channel"]
        values["channel"] = (f"CASE WHEN regexp_full_match({channel}, '[0-9]+') "
                             f"THEN replace({_quote(channel_name)}, '{{id}}', {channel}) ELSE {channel} END")
    _rewrite_lines(con, values, joined)


def _keep_order_values(con: Any) -> None:
    """Remove the test orders' lines and give every other line of an order its share of the order's value
    (``recorded_amount``, added as the last column) and of its kept value (``amount``), in proportion to the
    lines' amounts (equal shares when they sum to 0); lines without order id or amount stay as they are."""
    values = _as_held(con)
    share = "CASE WHEN o.base <> 0 THEN lines.amount * o.value / o.base ELSE o.value / o.lines END"
    spread = "o.order_id IS NOT NULL AND lines.amount IS NOT NULL"
    values["amount"] = f"CASE WHEN {spread} THEN {_micro(f'{share} * o.kept_share')} ELSE lines.amount END"
    values["recorded_amount"] = f"CAST(CASE WHEN {spread} THEN {_micro(share)} END AS DOUBLE)"
    _rewrite_lines(con, values, " LEFT JOIN _order_contract AS o ON lines.order_id = o.order_id",
                   " WHERE NOT coalesce(o.is_test, false)")


def _single_currency(con: Any, labels: Mapping[str, str], source: str) -> str | None:
    """The one currency code of the ``currency`` column (upper case), None when it is empty; an error naming
    the codes, their orders and first rows when there are several (amounts in different currencies cannot
    be summed)."""
    found = con.sql("SELECT upper(trim(currency)) AS code, count(DISTINCT order_id) AS orders, min(_row) AS first_row "
                    "FROM lines WHERE nullif(trim(currency), '') IS NOT NULL GROUP BY code ORDER BY first_row").fetchall()
    if len(found) <= 1:
        return found[0][0] if found else None
    codes = ", ".join(f"{code!r} ({orders:,} orders)" for code, orders, _ in found[:5])
    raise Where(source, dict(labels)).fail(
        "currency", f"the orders are in {len(found)} currencies: {codes}", [int(r[2]) for r in found[:5]],
        "Amounts in different currencies cannot be summed: export each currency's orders (each store) separately "
        "and run segkit once per currency, with report.currency set to it")


def _check_reused_order_ids(con: Any, labels: Mapping[str, str], source: str) -> None:
    """Stop when one order id has several customers or several order dates: the input mixes exports that
    number their orders alike (two stores both counting from #1001), whose orders would merge silently."""
    checked = [c for c in ("customer_id", "order_date") if c in labels]
    if not checked:
        return
    differ = " OR ".join(f"count(DISTINCT {_ident(c)}) > 1" for c in checked)  # empty cells are no variant
    variants = ", ".join(_ident(c) for c in checked)  # the first row of each (customer, date) of an id, numbered
    reused = con.sql(f"SELECT order_id, min(_row) AS first_row, min(_row) FILTER (WHERE k = 2) AS second_row, "
                     f"min(_row) FILTER (WHERE k = 3) AS third_row FROM ("
                     f"SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY _row) AS k FROM ("
                     f"SELECT order_id, {variants}, min(_row) AS _row FROM lines WHERE order_id IS NOT NULL "
                     f"GROUP BY order_id, {variants})) GROUP BY order_id HAVING {differ} ORDER BY first_row"
                     ).fetchall()
    if not reused:
        return
    which = " or ".join(f"{labels[c]!r}" for c in checked)
    shown = ", ".join(repr(str(r[0])) for r in reused[:5])
    rows = sorted({int(x) for r in reused[:3] for x in r[1:4] if x is not None})
    raise Where(source, dict(labels)).fail(
        "order_id", f"{len(reused):,} order id(s) belong to several orders (different {which}): {shown}", rows,
        "The input looks like the exports of several stores (each numbers its orders from #1001) or of "
        "different systems put together; their orders would be merged into one. Run segkit once per store "
        "(one store's export, or a folder of one store's exports, per run)")


def _drop_order_copies(con: Any, columns: Sequence[str], present: Sequence[str]) -> tuple[int, int]:
    """Delete the copies of orders that the input holds more than once (overlapping exports): an order's
    rows are contiguous in an export, so each contiguous run of an order id's rows is one copy; when an
    order has several copies, each carrying its order-level fields, with the same lines (as many, equal at
    each place), the first is kept. Returns (orders that had copies, lines deleted)."""
    content = ", ".join(_ident(c) for c in columns)
    fields = " OR ".join(f"{_ident(c)} IS NOT NULL" for c in present)
    con.execute(f"""
        CREATE OR REPLACE TABLE _order_copies AS
        WITH r AS (SELECT order_id, _row, hash({content}) AS h,
                          _row - row_number() OVER (PARTITION BY order_id ORDER BY _row) AS copy, ({fields}) AS f
                   FROM lines WHERE order_id IS NOT NULL),
             p AS (SELECT *, row_number() OVER (PARTITION BY order_id, copy ORDER BY _row) AS place FROM r),
             c AS (SELECT order_id, copy, min(_row) AS first_row, max(_row) AS last_row, count(*) AS n_lines,
                          bool_or(f) AS has_fields
                   FROM p GROUP BY order_id, copy),
             differ AS (SELECT DISTINCT order_id FROM p GROUP BY order_id, place HAVING count(DISTINCT h) > 1),
             o AS (SELECT order_id FROM c GROUP BY order_id
                   HAVING count(*) > 1 AND bool_and(has_fields) AND count(DISTINCT n_lines) = 1)
        SELECT c.order_id, c.first_row, c.last_row,
               row_number() OVER (PARTITION BY c.order_id ORDER BY c.first_row) AS n
        FROM c JOIN o ON c.order_id = o.order_id
        WHERE c.order_id NOT IN (SELECT order_id FROM differ)""")
    later = ("EXISTS (SELECT 1 FROM _order_copies AS k WHERE k.n > 1 AND lines.order_id = k.order_id "
             "AND lines._row BETWEEN k.first_row AND k.last_row)")
    orders = con.sql("SELECT count(DISTINCT order_id) FROM _order_copies").fetchall()[0][0]
    lines = con.sql(f"SELECT count(*) FROM lines WHERE {later}").fetchall()[0][0] if orders else 0
    if lines:
        _rewrite_lines(con, _as_held(con), where=f" WHERE NOT {later}")
    return int(orders), int(lines)


def _check_statuses(con: Any, contract: OrderContract, labels: Mapping[str, str],
                    source: str) -> None:
    known = ", ".join(_quote(k) for k in contract.statuses)
    where = f"order_status IS NOT NULL AND lower(order_status) NOT IN ({known})" if known else "order_status IS NOT NULL"
    n = con.sql(f"SELECT count(*) FROM lines WHERE {where}").fetchall()[0][0]
    if not n:
        return
    found = con.sql(f"SELECT order_status, min(_row) AS r FROM lines WHERE {where} GROUP BY order_status "
                    "ORDER BY r").df()
    rows = [int(r[0]) for r in con.sql(f"SELECT _row FROM lines WHERE {where} ORDER BY _row LIMIT 5").fetchall()]
    listed = ", ".join(f"{k}: {v}" for k, v in contract.statuses.items()) or "none"
    new = ", ".join(f"{str(s).strip().lower()}: purchase | not_purchase | pending" for s in found["order_status"][:3])
    error = Where(source, dict(labels)).fail(
        "order_status", f"unknown order status(es) {examples(found['order_status'])} in {n:,} row(s)", rows,
        f"Say what each means in the config, under orders.statuses ({new}); listed now: {listed}")
    raise error


def _facts(con: Any, contract: OrderContract, present: Sequence[str],
           labels: Mapping[str, str]) -> StatusFacts:
    by_status = con.sql("""
        SELECT coalesce(status, '(empty)') AS status, meaning, count(*) AS orders,
               count(*) FILTER (WHERE kept > 0) AS purchases,
               CAST(sum(coalesce(value, 0)) AS DOUBLE) AS recorded, CAST(sum(kept) AS DOUBLE) AS kept
        FROM _order_contract WHERE NOT is_test
        GROUP BY ALL ORDER BY orders DESC, status""").df()
    (orders, refunded_orders, refunded_value, partial, not_kept, cancelled, cancelled_kept, tests, test_lines,
     zero, guests, guest_value) = con.sql("""
        SELECT count(*) FILTER (WHERE NOT is_test),
               count(*) FILTER (WHERE NOT is_test AND refunded > 0),
               coalesce(sum(refunded) FILTER (WHERE NOT is_test AND refunded > 0), 0),
               count(*) FILTER (WHERE NOT is_test AND kept > 0 AND kept < value),
               coalesce(sum(coalesce(value, 0) - kept) FILTER (WHERE NOT is_test), 0),
               count(*) FILTER (WHERE NOT is_test AND cancelled),
               count(*) FILTER (WHERE NOT is_test AND cancelled AND kept > 0),
               count(*) FILTER (WHERE is_test), coalesce(sum(lines) FILTER (WHERE is_test), 0),
               count(*) FILTER (WHERE NOT is_test AND counted AND coalesce(value, 0) = 0),
               count(*) FILTER (WHERE NOT is_test AND guest),
               coalesce(sum(kept) FILTER (WHERE NOT is_test AND guest), 0)
        FROM _order_contract""").fetchall()[0]

    def order_ids(where: str) -> str:
        ids = con.sql(f"SELECT order_id FROM _order_contract WHERE {where} ORDER BY first_row LIMIT 5").fetchall()
        return ", ".join(repr(str(i[0])) for i in ids)

    if "order_value" in present:
        analysed = f"the order value ({labels['order_value']!r}) spread over the lines"
    elif "amount" in labels:
        analysed = f"the line amount ({labels['amount']!r})"
    else:
        analysed = "quantity × unit price of each line"
    facts = StatusFacts(
        orders=int(orders), by_status=by_status, analysed=analysed, refunded_orders=int(refunded_orders),
        refunded_value=float(refunded_value), partially_refunded_purchases=int(partial),
        value_not_kept=float(not_kept), cancelled_orders=int(cancelled), cancelled_still_purchases=int(cancelled_kept),
        cancelled_rule=contract.cancelled, pending_rule=contract.pending, test_orders=int(tests),
        test_lines=int(test_lines), test_examples=order_ids("is_test") if tests else "",
        zero_value_orders=int(zero),
        zero_value_examples=order_ids("NOT is_test AND counted AND coalesce(value, 0) = 0") if zero else "",
        guest_orders=int(guests), guest_value=float(guest_value))
    if contract.dates_have_offsets and "_tz_order_date" in _columns(con, "lines"):
        where = "order_date IS NOT NULL AND NOT coalesce(_tz_order_date, false)"
        n, dated = con.sql(f"SELECT count(*) FILTER (WHERE {where}), count(order_date) FROM lines").fetchall()[0]
        facts.rows_without_offset, facts.dated_rows = int(n), int(dated)
        facts.first_rows_without_offset = [int(r[0]) for r in con.sql(
            f"SELECT _row FROM lines WHERE {where} ORDER BY _row LIMIT 5").fetchall()]
    return facts
