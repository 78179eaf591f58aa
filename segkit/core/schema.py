"""Canonical tables: the column names and types every segkit module works with.

User files are mapped onto these names once, at load (:mod:`segkit.data.io`); inside segkit only
canonical names are used. :func:`validate` checks a canonical frame, coerces dtypes and
derives the columns the contract promises:

- ids (``*_id`` columns) are pandas ``string``, stripped; float-looking ids such as
  ``"12346.0"`` (numbers that went through a spreadsheet) become ``"12346"``; leading zeros are
  kept (``"00123"``);
- dates are ``datetime64[ns]`` (naive, local time of the export);
- money and quantities ``float64``; ``birth_year`` ``Int64``; flags ``boolean`` (accepting
  1/0, true/false, yes/no, y/n, any case);
- other text is ``string`` with surrounding whitespace removed; empty cells are missing (``<NA>``).

Derived columns: transactions without ``amount`` get ``amount = quantity * unit_price``;
transactions without ``order_id`` get one order per row, ``order_id = "row-<n>"`` where ``n``
is the row number as a spreadsheet shows it (header = row 1); a campaign without ``delivered``
counts every row as delivered (``True``). Other optional columns that are absent are added
as all-missing columns of their dtype, and listed in ``frame.attrs["absent_columns"]``.

Row numbers in messages come from the frame's index, read as 0-based data rows (what
:func:`segkit.data.io.load_table` returns), and are shown 1-based as in a spreadsheet
(:func:`segkit.core.errors.format_rows`).

Examples
--------
>>> TRANSACTIONS.required
('customer_id', 'order_date')
>>> TRANSACTIONS.dtypes["amount"]
'float64'
>>> import pandas as pd
>>> raw = pd.DataFrame({"customer_id": ["12346.0", None], "order_date": ["2024-01-05", "2024-01-06"],
...                     "quantity": ["2", "1"], "unit_price": ["1.50", "4"]})
>>> out = validate(raw, "transactions")
>>> out[["customer_id", "order_id", "amount"]]
  customer_id order_id  amount
0       12346    row-2     3.0
1        <NA>    row-3     4.0
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from segkit.core.errors import ConfigError, DataError, format_rows

__all__ = ["TableSpec", "TRANSACTIONS", "CUSTOMERS", "CAMPAIGN", "TABLES", "TRANSACTIONS_CLEAN_EXTRA",
    "BOOLEAN_TRUE", "BOOLEAN_FALSE", "SYNONYMS", "DMY", "get_spec", "Where", "examples", "suggest_columns",
    "normalize_name", "coerce_id", "coerce_text", "coerce_float", "coerce_integer", "coerce_boolean",
    "coerce_datetime", "check_columns", "validate"]


@dataclass(frozen=True)
class TableSpec:
    """Column contract of one canonical table.

    Attributes
    ----------
    name : str
        Table name (``transactions``, ``customers``, ``campaign``).
    required : tuple of str
        Columns that must be present.
    dtypes : dict
        Every canonical column and its dtype, in output order.
    one_of : tuple of tuple of str
        Alternatives: at least one of these groups must be fully present.
    not_null : tuple of str
        Columns that must have a value in every row.
    unique : tuple of tuple of str
        Column groups whose values must not repeat.
    extra : dict
        Non-canonical columns carried along when the input has (or maps) them, with their dtype
        (transactions: ``country`` and ``email_opt_in``, which belong to the customer; see
        :meth:`segkit.data.engine.TransactionLog.derived_customers`).
    """

    name: str
    required: tuple[str, ...]
    dtypes: dict[str, str] = field(default_factory=dict)
    one_of: tuple[tuple[str, ...], ...] = ()
    not_null: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """Canonical column names in output order."""
        return tuple(self.dtypes)

    @property
    def known(self) -> dict[str, str]:
        """Canonical plus extra columns with their dtypes (what a column map may name)."""
        return {**self.dtypes, **self.extra}


TRANSACTIONS = TableSpec(
    name="transactions",
    required=("customer_id", "order_date"),
    one_of=(("amount",), ("quantity", "unit_price")),
    not_null=("order_date",),  # customer_id may be missing: guest checkouts (the audit counts them)
    dtypes={
        "customer_id": "string",
        "order_date": "datetime64[ns]",
        "order_id": "string",        # absent → each row is one order ("row-<n>")
        "amount": "float64",         # line revenue; = quantity * unit_price when not given
        "quantity": "float64",
        "unit_price": "float64",
        "product_id": "string",
        "category": "string",
        "channel": "string",
    },
    extra={
        "country": "string",         # customer attribute found in transaction exports (UCI, Shopify)
        "email_opt_in": "boolean",   # customer attribute found in order exports (Shopify's Accepts Marketing)
        # order-level fields (the status contract, segkit.data.statuses): given on one line of an
        # order or on all, carried to every line of it; meanings set in the config's `orders` section
        "order_status": "string",    # e.g. Shopify's Financial Status: paid, refunded, voided ...
        "refunded_amount": "float64",  # money refunded on the order (not a negative line)
        "cancelled_at": "datetime64[ns]",  # when the order was cancelled (empty = not cancelled)
        "order_value": "float64",    # the order's value to analyse, spread over its lines (e.g. Subtotal)
        "order_total": "float64",    # what the customer paid, of which refunded_amount is a part (e.g. Total)
        "payment_method": "string",  # gateway; orders.test_payment_methods marks test orders
        "currency": "string",        # the order's currency code (Shopify's Currency): one per input
    },
)

CUSTOMERS = TableSpec(
    name="customers",
    required=("customer_id",),
    not_null=("customer_id",),
    unique=(("customer_id",),),
    dtypes={
        "customer_id": "string",
        "signup_date": "datetime64[ns]",
        "country": "string",
        "region": "string",
        "acquisition_channel": "string",
        "preferred_channel": "string",
        "email_opt_in": "boolean",
        "birth_year": "Int64",
        "age_band": "string",
        "gender": "string",
    },
)

CAMPAIGN = TableSpec(
    name="campaign",
    required=("campaign_id", "customer_id", "arm"),
    not_null=("campaign_id", "customer_id", "arm"),
    unique=(("campaign_id", "customer_id"),),   # one row per customer per campaign
    dtypes={
        "campaign_id": "string",
        "customer_id": "string",
        "arm": "string",             # one arm is the control/holdout (campaign.control_arm)
        "sent_at": "datetime64[ns]",
        "delivered": "boolean",      # optional; absent → every row counts as delivered
        "opened": "boolean",
        "clicked": "boolean",
        "converted": "boolean",
        "revenue": "float64",
        "unsubscribed": "boolean",
        "cost": "float64",           # optional cost of this send
    },
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (TRANSACTIONS, CUSTOMERS, CAMPAIGN)}

# Columns the audit adds to transactions_clean.parquet (see segkit.audit).
TRANSACTIONS_CLEAN_EXTRA: dict[str, str] = {
    "is_return": "boolean",  # negative quantity/amount or a cancellation invoice ("C" prefix)
    # the line's value before order statuses and refunds (segkit.data.statuses; written only when the
    # `orders` contract applied): `amount` is what was kept, the relational core counts an order that
    # recorded value and kept nothing (refunded, voided) as a cancelled order
    "recorded_amount": "float64",
}

BOOLEAN_TRUE: tuple[str, ...] = ("1", "true", "yes", "y")
BOOLEAN_FALSE: tuple[str, ...] = ("0", "false", "no", "n")

# Names analysts' exports often use, only to *suggest* a mapping in error messages.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer", "customerid", "customer_no", "client_id", "user_id", "member_id", "buyer_id"),
    "order_date": ("date", "invoicedate", "invoice_date", "orderdate", "order_datetime", "purchase_date",
                   "transaction_date", "created_at", "timestamp"),
    "order_id": ("invoice", "invoiceno", "invoice_no", "order", "orderid", "order_number", "transaction_id"),
    "amount": ("revenue", "sales", "total", "line_total", "value", "order_value", "net_amount"),
    "quantity": ("qty", "units", "quantity_ordered"),
    "unit_price": ("price", "unitprice", "item_price"),
    "product_id": ("stockcode", "sku", "item_id", "product", "article"),
    "campaign_id": ("campaign", "mailing_id", "campaign_name"),
    "arm": ("group", "variant", "treatment", "test_group", "cell"),
    "sent_at": ("send_date", "sent", "sent_date"),
    "signup_date": ("registration_date", "created", "first_seen", "join_date"),
}

# Patterns are plain strings (not compiled) so pandas hands them to pyarrow's vectorised kernels.
_ID_FLOAT = r"^(-?\d+)\.0+$"
DMY = (r"^(?P<first>\d{1,2})[/.\-](?P<second>\d{1,2})[/.\-](?P<year>\d{4}|\d{2})"
        r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second_>\d{2}(?:\.\d+)?))?\s*(?P<ampm>[AaPp][Mm])?)?$")
_MONTH_NAME = (r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b.*\b\d{4}\b"
               r"|\b\d{4}\b.*\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")
_UTC_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_EXCEL_SERIAL = r"^\d{5}(?:\.\d+)?$"
_DECIMAL_COMMA = r"^[-+]?\d+,\d+$"
_THOUSANDS = r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"
_THOUSANDS_DOT = r"^[-+]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$"


def get_spec(table: str) -> TableSpec:
    """The :class:`TableSpec` of a canonical table, or a :class:`ConfigError` naming the valid ones.

    Examples
    --------
    >>> get_spec("customers").required
    ('customer_id',)
    """
    try:
        return TABLES[table]
    except KeyError:
        raise ConfigError(f"Unknown table {table!r}: expected one of {', '.join(TABLES)}.") from None


# ----------------------------------------------------------------------------------------------
# Message helpers


@dataclass(frozen=True)
class Where:
    """Where a value came from, for messages: the source (file) and the user's column names."""

    source: str = "data frame"
    labels: Mapping[str, str] = field(default_factory=dict)

    def column(self, canonical: str) -> str:
        """``column 'InvoiceDate' (mapped to 'order_date')`` or ``column 'order_date'``."""
        user = self.labels.get(canonical, canonical)
        if user != canonical:
            return f"column {user!r} (mapped to {canonical!r})"
        return f"column {canonical!r}"

    def fail(self, canonical: str, problem: str, rows: Iterable | None, fix: str) -> DataError:
        """A :class:`DataError` ``"<source>: <column>: <problem> (<rows>). <fix>"``."""
        rows = list(rows) if rows is not None else []
        where_rows = f" ({format_rows(rows)})" if rows else ""
        return DataError(f"{self.source}: {self.column(canonical)}: {problem}{where_rows}. {fix}")


def examples(values: pd.Series, limit: int = 5) -> str:
    """Up to ``limit`` distinct values, quoted, in order of appearance.

    Examples
    --------
    >>> examples(pd.Series(["12,50", "n/a", "12,50"]))
    "'12,50', 'n/a'"
    """
    uniq = pd.unique(values.astype(object))
    shown = ", ".join(repr(str(v)) for v in uniq[:limit])
    return shown + (f" (and {len(uniq) - limit} more distinct)" if len(uniq) > limit else "")


def suggest_columns(canonical: str, available: Sequence[str], limit: int = 3) -> list[str]:
    """Columns of a file that may be meant for ``canonical`` (synonyms, then close spellings).

    Examples
    --------
    >>> suggest_columns("order_date", ["Invoice", "InvoiceDate", "Price"])
    ['InvoiceDate']
    >>> suggest_columns("customer_id", ["Customer ID", "Country"])
    ['Customer ID']
    """
    norm = {normalize_name(c): c for c in available}
    found: list[str] = []
    for name in (canonical, *SYNONYMS.get(canonical, ())):
        key = normalize_name(name)
        if key in norm and norm[key] not in found:
            found.append(norm[key])
    for key in difflib.get_close_matches(normalize_name(canonical), list(norm), n=limit, cutoff=0.6):
        if norm[key] not in found:
            found.append(norm[key])
    return found[:limit]


def normalize_name(name: str) -> str:
    """Column name compared loosely: lower case, runs of spaces/dashes/dots as one underscore.

    Examples
    --------
    >>> normalize_name(" Customer ID ")
    'customer_id'
    """
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower()).strip("_")


def _rows(mask: pd.Series) -> pd.Index:
    return mask.index[mask.to_numpy(dtype=bool)]


def _text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values as stripped ``string`` and the mask of cells that hold something."""
    text = values.astype("string").str.strip()
    present = text.notna() & text.ne("")
    return text.where(present), present.fillna(False).astype(bool)


# ----------------------------------------------------------------------------------------------
# Coercion, one function per canonical dtype


def coerce_id(values: pd.Series) -> pd.Series:
    """Ids as stripped ``string``; ``"12346.0"`` → ``"12346"``; leading zeros kept; empty → NA.

    Examples
    --------
    >>> coerce_id(pd.Series(["00123", " 12346.0", "", 13085.0])).tolist()
    ['00123', '12346', <NA>, '13085']
    """
    text, _ = _text(values)
    return text.str.replace(_ID_FLOAT, r"\1", regex=True)


def coerce_text(values: pd.Series) -> pd.Series:
    """Text as stripped ``string``; empty cells → NA.

    Examples
    --------
    >>> coerce_text(pd.Series([" web ", ""])).tolist()
    ['web', <NA>]
    """
    return _text(values)[0]


def coerce_float(values: pd.Series, where: Where, column: str, decimal: str = ".") -> pd.Series:
    """Numbers as ``float64``; text that is not a number is a :class:`DataError` showing it.

    Parameters
    ----------
    values : Series
        Raw values (text or numbers).
    where : Where
        Source and column names for messages.
    column : str
        Canonical column name.
    decimal : {".", ","}
        Decimal separator of text numbers; with ``","`` dots grouping thousands are removed.

    Examples
    --------
    >>> coerce_float(pd.Series(["1.5", " 2", ""]), Where(), "amount").tolist()
    [1.5, 2.0, nan]
    >>> coerce_float(pd.Series(["12,50"]), Where(), "amount", decimal=",").tolist()
    [12.5]
    """
    if ptypes.is_bool_dtype(values.dtype) or ptypes.is_numeric_dtype(values.dtype):
        out = values.astype("float64")
        bad = pd.Series(np.isinf(out.to_numpy()), index=values.index)
        if bad.any():
            raise where.fail(column, "infinite values", _rows(bad), "Replace them with real numbers.")
        return out
    text, present = _text(values)
    number = text
    if decimal == ",":
        thousands = text.str.match(_THOUSANDS_DOT).fillna(False).astype(bool)
        number = text.where(~thousands, text.str.replace(".", "", regex=False))
        number = number.str.replace(",", ".", regex=False)
    out = pd.to_numeric(number.astype(object), errors="coerce").astype("float64")
    bad = present & (out.isna() | np.isinf(out))
    if bad.any():
        shown = text[bad]
        if shown.str.match(_DECIMAL_COMMA).any():
            fix = ("These look like decimal commas: set io.decimal: ',' in the config "
                   "(or export numbers with '.' as the decimal separator).")
        elif shown.str.match(_THOUSANDS).any():
            fix = "These contain thousands separators: export numbers without them."
        else:
            fix = ("Numbers only: remove currency signs, units and text such as 'n/a' "
                   "(leave a cell empty when the value is missing).")
        raise where.fail(column, f"text that is not a number: {examples(shown)}", _rows(bad), fix)
    return out


def coerce_integer(values: pd.Series, where: Where, column: str, decimal: str = ".") -> pd.Series:
    """Whole numbers as ``Int64``; fractions are a :class:`DataError`.

    Examples
    --------
    >>> coerce_integer(pd.Series(["1980", "1975.0", ""]), Where(), "birth_year").tolist()
    [1980, 1975, <NA>]
    """
    out = coerce_float(values, where, column, decimal)
    bad = out.notna() & (out % 1 != 0)
    if bad.any():
        raise where.fail(column, f"expected whole numbers, found {examples(values[bad])}", _rows(bad),
                         "Use whole numbers (e.g. a year such as 1984).")
    return out.astype("Int64")


def coerce_boolean(values: pd.Series, where: Where, column: str) -> pd.Series:
    """Flags as ``boolean`` from 1/0, true/false, yes/no, y/n (any case); empty → NA.

    Examples
    --------
    >>> coerce_boolean(pd.Series(["Yes", "n", "1.0", "FALSE", ""]), Where(), "opened").tolist()
    [True, False, True, False, <NA>]
    """
    if ptypes.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    text, present = _text(values)
    token = text.str.lower().str.replace(_ID_FLOAT, r"\1", regex=True)
    is_true = token.isin(BOOLEAN_TRUE).fillna(False).astype(bool)
    is_false = token.isin(BOOLEAN_FALSE).fillna(False).astype(bool)
    bad = present & ~is_true & ~is_false
    if bad.any():
        raise where.fail(
            column, f"unexpected values for a yes/no column: {examples(text[bad])}", _rows(bad),
            "Use 1/0, true/false, yes/no or y/n (leave the cell empty when unknown).")
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[is_true] = True
    out[is_false] = False
    return out


def coerce_datetime(values: pd.Series, where: Where, column: str,
                    date_format: str | None = None, dayfirst: bool = False) -> pd.Series:
    """Dates/times as naive ``datetime64[ns]``.

    Without ``date_format``: ISO 8601 (``2009-12-01 07:45:00``) is read directly; numeric
    day/month/year dates (``01/12/2009 7:45``, ``1.12.09``) are read month-first unless
    ``dayfirst``; dates with a month name and a four-digit year (``01-Dec-2009``) are read too.
    Values that cannot be read, a mix of ISO and numeric dates in one column, numeric dates
    that are day-first in some rows and month-first in others, and values that contradict
    ``dayfirst`` (``13/04/2024`` month-first) are a :class:`DataError` showing the values.
    Time-zone aware values keep their local wall time. Dates outside 1677-2262 (placeholders
    such as 9999-12-31) are an error.

    Examples
    --------
    >>> coerce_datetime(pd.Series(["2009-12-01 07:45:00", ""]), Where(), "order_date").tolist()
    [Timestamp('2009-12-01 07:45:00'), NaT]
    >>> coerce_datetime(pd.Series(["13/04/2024"]), Where(), "order_date", dayfirst=True).tolist()
    [Timestamp('2024-04-13 00:00:00')]
    """
    hint = "Set io.date_format in the config (e.g. '%d/%m/%Y %H:%M') or io.dayfirst: true/false."
    if ptypes.is_datetime64_any_dtype(values.dtype):
        out = values
    elif isinstance(values.dtype, pd.StringDtype) or (
            values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")):
        out = _parse_date_text(values, where, column, date_format, dayfirst, hint)
    elif ptypes.is_numeric_dtype(values.dtype) or ptypes.is_bool_dtype(values.dtype):
        bad = values.notna()
        raise where.fail(column, f"numbers where dates are expected: {examples(values[bad])}",
                         _rows(bad), "Export the column as dates (e.g. 2024-03-31).")
    elif pd.api.types.infer_dtype(values, skipna=True) in ("date", "datetime", "datetime64"):
        out = pd.to_datetime(values)  # date/datetime objects (Parquet date32, Python objects)
    else:  # objects mixing dates and text: their text forms (dates print as ISO)
        out = _parse_date_text(values.astype("string"), where, column, date_format, dayfirst, hint)
    if getattr(out.dtype, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    lo, hi = pd.Timestamp.min, pd.Timestamp.max
    bad = out.notna() & ((out < lo) | (out > hi))
    if bad.any():
        raise where.fail(column, f"dates outside 1677-2262: {examples(out[bad].astype(str))}", _rows(bad),
                         "Placeholder dates (e.g. 9999-12-31) must be left empty instead.")
    return out.astype("datetime64[ns]")


def _iso(text: pd.Series) -> pd.Series:
    """ISO 8601 text → Timestamps (NaT where not ISO). Values with different UTC offsets (summer
    and winter time) keep their local wall time: the offset is dropped before parsing."""
    try:
        out = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # mixed UTC offsets
        out = pd.to_datetime(text.str.replace(_UTC_OFFSET, "", regex=True), format="ISO8601", errors="coerce")
    if getattr(out.dtype, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def _parse_date_text(values: pd.Series, where: Where, column: str, date_format: str | None,
                     dayfirst: bool, hint: str) -> pd.Series:
    text, present = _text(values)
    if date_format:
        try:
            out = pd.to_datetime(text, format=date_format, errors="coerce")
        except ValueError as exc:
            raise DataError(f"io.date_format {date_format!r} is not a valid format: {exc}. "
                            "Use strftime codes such as '%d/%m/%Y %H:%M'.") from None
        bad = present & out.isna()
        if bad.any():
            raise where.fail(column, f"dates that do not match io.date_format {date_format!r}: "
                             f"{examples(text[bad])}", _rows(bad),
                             "Fix io.date_format in the config (strftime codes, e.g. '%d/%m/%Y %H:%M') "
                             "or correct these cells.")
        return out
    out = _iso(text)
    failed = present & out.isna()
    if not failed.any():
        return out
    ftext = text[failed]
    parts = _extract(ftext, DMY)
    numeric = parts["first"].notna()
    iso_ok = present & out.notna()
    if numeric.any() and iso_ok.any():
        num_rows, iso_rows = numeric.index[numeric], iso_ok.index[iso_ok]
        raise where.fail(
            column, "mixed date formats: ISO dates such as "
            f"{text[iso_rows[0]]!r} ({format_rows(iso_rows[:1])}) and day/month dates such as "
            f"{text[num_rows[0]]!r} ({format_rows(num_rows[:1])}) whose day/month order is ambiguous",
            None, "Export all dates in one format (ISO 2024-03-31 is safest), then set io.date_format "
            "or io.dayfirst if it is not ISO.")
    if numeric.any():
        out = out.copy()
        out[numeric.index[numeric]] = _parse_dmy(parts[numeric], text, where, column, dayfirst)
    rest = failed.copy()
    rest[numeric.index[numeric]] = False
    if rest.any():
        other = text[rest]
        named = other.str.contains(_MONTH_NAME).fillna(False).astype(bool)
        if named.any():
            uniq = pd.Series(pd.unique(other[named].astype(object)))
            parsed = pd.to_datetime(uniq, format="mixed", dayfirst=dayfirst, errors="coerce")
            lookup = pd.Series(parsed.to_numpy(), index=uniq.to_numpy())
            out = out.copy()
            out[other.index[named]] = lookup.reindex(other[named].to_numpy()).to_numpy()
    bad = present & out.isna()
    if bad.any():
        if text[bad].str.match(_EXCEL_SERIAL).all():
            hint = ("These look like Excel day numbers: format the column as dates in Excel before "
                    "exporting (or export .xlsx).")
        raise where.fail(column, f"values that are not dates: {examples(text[bad])}", _rows(bad), hint)
    return out


def _extract(text: pd.Series, pattern: str) -> pd.DataFrame:
    """``str.extract`` with named groups, vectorised by pyarrow; unmatched groups are NA."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(text.astype(object), type=pa.string(), from_pandas=True)
    found = pc.extract_regex(arr, pattern)
    valid = found.is_valid().to_numpy(zero_copy_only=False)
    names = [found.type.field(i).name for i in range(found.type.num_fields)]
    out = pd.DataFrame({name: found.field(name).to_pandas().set_axis(text.index).astype("string")
                        for name in names}, index=text.index)
    return out.where(out.ne("") & valid[:, None])


def _parse_dmy(parts: pd.DataFrame, text: pd.Series, where: Where, column: str,
               dayfirst: bool) -> pd.Series:
    """Numeric d/m/y (or m/d/y) strings → Timestamps, checking the day/month order."""
    first, second = parts["first"].astype(int), parts["second"].astype(int)
    first_day, second_day = first > 12, second > 12
    if first_day.any() and second_day.any():
        a, b = first_day.index[first_day], second_day.index[second_day]
        raise where.fail(
            column, f"ambiguous dates: {text[a[0]]!r} ({format_rows(a[:1])}) is day-first but "
            f"{text[b[0]]!r} ({format_rows(b[:1])}) is month-first", None,
            "Export the dates in one consistent format (ISO 2024-03-31 is safest).")
    if first_day.any() and not dayfirst:
        rows = first_day.index[first_day]
        raise where.fail(
            column, f"day-first dates such as {examples(text[rows])} read as month-first", rows,
            "Set io.dayfirst: true in the config (or io.date_format, e.g. '%d/%m/%Y').")
    if second_day.any() and dayfirst:
        rows = second_day.index[second_day]
        raise where.fail(
            column, f"month-first dates such as {examples(text[rows])} read as day-first", rows,
            "Set io.dayfirst: false in the config (or io.date_format, e.g. '%m/%d/%Y').")
    day, month = (first, second) if dayfirst else (second, first)
    year = parts["year"].astype(int)
    short = parts["year"].str.len() == 2
    year = year.where(~short, year + np.where(year < 69, 2000, 1900))  # as strptime's %y
    hour = parts["hour"].fillna("0").astype(int)
    ampm = parts["ampm"].str.lower()
    is_pm = ampm.eq("pm").fillna(False).to_numpy(dtype=bool)
    hour = hour.where(ampm.isna(), hour % 12 + np.where(is_pm, 12, 0))
    iso = (year.astype(str).str.zfill(4) + "-" + month.astype(str).str.zfill(2) + "-"
           + day.astype(str).str.zfill(2) + " " + hour.astype(str).str.zfill(2) + ":"
           + parts["minute"].fillna("00") + ":" + parts["second_"].fillna("00").str.zfill(2))
    out = pd.to_datetime(iso, format="ISO8601", errors="coerce")
    bad = out.isna()
    if bad.any():
        rows = bad.index[bad]
        raise where.fail(column, f"impossible dates: {examples(text[rows])}", rows,
                         "Correct these cells (day or month out of range).")
    return out


# ----------------------------------------------------------------------------------------------
# Table validation


def check_columns(present: Iterable[str], spec: TableSpec, source: str = "data frame",
                  available: Sequence[str] | None = None, config_hint: str = "") -> None:
    """Raise a :class:`DataError` when required columns (or every ``one_of`` group) are missing.

    Parameters
    ----------
    present : iterable of str
        Canonical columns the input provides.
    spec : TableSpec
        The table contract.
    source : str
        File name (or description) for the message.
    available : sequence of str, optional
        The file's own column names, to list them and suggest close matches.
    config_hint : str
        Where the column map lives, e.g. ``" in my.yml"``.

    Examples
    --------
    >>> check_columns(["customer_id"], CUSTOMERS)
    >>> check_columns(["customer_id", "Date"], TRANSACTIONS)
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: data frame: required column 'order_date' is missing. Map it in the config: ...
    """
    present = set(present)
    listing = f" The file's columns are: {', '.join(map(repr, available))}." if available is not None else ""

    def suggestion(name: str) -> str:
        sug = suggest_columns(name, available or [])
        return f"{name} → {' or '.join(map(repr, sug))}" if sug else ""

    missing = [c for c in spec.required if c not in present]
    if missing:
        word = "column" if len(missing) == 1 else "columns"
        hints = [suggestion(c) for c in missing]
        close = f" Close matches: {'; '.join(h for h in hints if h)}." if any(hints) else ""
        keys = ", ".join(f"columns.{spec.name}.{c}" for c in missing)
        raise DataError(f"{source}: required {word} {', '.join(map(repr, missing))} "
                        f"{'is' if len(missing) == 1 else 'are'} missing.{listing}{close} Map "
                        f"{'it' if len(missing) == 1 else 'them'} in the config{config_hint}: set {keys} "
                        "to your column name.")
    if spec.one_of and not any(all(c in present for c in group) for group in spec.one_of):
        groups = " or ".join(" + ".join(repr(c) for c in g) for g in spec.one_of)
        lacking = [c for g in spec.one_of for c in g if c not in present]
        hints = [suggestion(c) for c in lacking]
        close = f" Close matches: {'; '.join(h for h in hints if h)}." if any(hints) else ""
        options = " or ".join(" and ".join(f"columns.{spec.name}.{c}" for c in g) for g in spec.one_of)
        raise DataError(f"{source}: needs {groups} to know each line's revenue; found neither.{listing}{close} "
                        f"Set {options} in the config{config_hint}.")


def validate(frame: pd.DataFrame, table: str, *, source: str = "data frame",
             labels: Mapping[str, str] | None = None, date_format: str | None = None,
             dayfirst: bool = False, decimal: str = ".") -> pd.DataFrame:
    """Check a frame with canonical column names against its table contract and coerce dtypes.

    Parameters
    ----------
    frame : DataFrame
        Canonical column names; values as text or native types. Its index is read as 0-based
        data rows for messages (any non-integer index is replaced by positions). Unknown
        columns are dropped. Not modified.
    table : {"transactions", "customers", "campaign"}
        Which contract.
    source : str
        File name (or description) used in messages.
    labels : mapping, optional
        Canonical → user column names, so messages name the user's column.
    date_format, dayfirst, decimal
        How text dates and numbers are written (``io`` config section).

    Returns
    -------
    DataFrame
        Exactly the table's canonical columns in contract order with contract dtypes, plus any
        ``spec.extra`` columns present; ``attrs["absent_columns"]`` lists the optional columns
        the input did not have (added as missing, or derived: ``amount``, ``order_id``,
        ``delivered``).

    Raises
    ------
    DataError
        Missing columns, unreadable values, missing values in ``not_null`` columns, repeated keys.

    Examples
    --------
    >>> out = validate(pd.DataFrame({"customer_id": ["7", "8"], "email_opt_in": ["yes", "0"]}), "customers")
    >>> out["email_opt_in"].tolist(), str(out["signup_date"].dtype)
    ([True, False], 'datetime64[ns]')
    >>> validate(pd.DataFrame({"customer_id": ["7", "7.0"]}), "customers")
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: data frame: column 'customer_id': duplicate ids: '7' (rows 2, 3). ...
    """
    spec = get_spec(table)
    where = Where(source, dict(labels or {}))
    check_columns(frame.columns, spec, source)
    if not ptypes.is_integer_dtype(frame.index.dtype):
        frame = frame.reset_index(drop=True)
    known = spec.known
    out: dict[str, pd.Series] = {}
    for column, dtype in known.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if column.endswith("_id"):
            out[column] = coerce_id(values)
        elif dtype == "string":
            out[column] = coerce_text(values)
        elif dtype == "float64":
            out[column] = coerce_float(values, where, column, decimal)
        elif dtype == "Int64":
            out[column] = coerce_integer(values, where, column, decimal)
        elif dtype == "boolean":
            out[column] = coerce_boolean(values, where, column)
        elif dtype.startswith("datetime64"):
            out[column] = coerce_datetime(values, where, column, date_format, dayfirst)
        else:  # pragma: no cover - guarded by the specs above
            raise TypeError(f"no coercion for dtype {dtype}")
    absent = [c for c in spec.columns if c not in out]
    index = frame.index
    if spec is TRANSACTIONS:
        if "amount" not in out:
            out["amount"] = out["quantity"] * out["unit_price"]
        if "order_id" not in out:
            out["order_id"] = pd.Series("row-" + (np.asarray(index) + 2).astype(str), index=index,
                                        dtype="string")
    if spec is CAMPAIGN and "delivered" not in out:
        out["delivered"] = pd.Series(True, index=index, dtype="boolean")
    for column in spec.not_null:
        missing = out[column].isna()
        if missing.any():
            raise where.fail(column, "missing values", _rows(missing),
                             f"Every {spec.name} row needs a value in {column!r}: fill these cells or remove the rows.")
    for key in spec.unique:
        dup = pd.DataFrame({k: out[k] for k in key}).duplicated(keep=False)
        if dup.any():
            shown = out[key[0]][dup] if len(key) == 1 else (out[key[0]] + " / " + out[key[1]])[dup]
            what = "duplicate ids" if len(key) == 1 else f"repeated {' + '.join(key)} pairs"
            raise where.fail(
                key[-1] if len(key) == 1 else key[1], f"{what}: {examples(shown)}", _rows(dup),
                f"The {spec.name} table needs one row per {' and '.join(k.replace('_id', '') for k in key)}: "
                "remove the repeated rows (ids like '7' and '7.0' count as the same id).")
    result = pd.DataFrame(
        {c: out[c] if c in out else pd.Series(index=index, dtype=known[c]) for c in spec.columns}, index=index)
    for column in spec.extra:
        if column in out:
            result[column] = out[column]
    result.attrs["absent_columns"] = absent
    return result
