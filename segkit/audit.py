"""Data audit: what is in the inputs, what is wrong with them, and the cleaned tables.

:func:`run_audit` takes the input tables (see :mod:`segkit.core.schema`; loaded with
:func:`segkit.data.io.load_inputs`) and returns an :class:`AuditResult`: a findings table ranked by
severity (error / warning / info, thresholds in ``segkit/defaults/audit.yml``), the cleaning rules
applied with the rows each touched, and the cleaned tables that notebooks 02–05 read.
:func:`segkit.steps.audit.build_audit_artifacts` is the producer of ``notebooks/01_data_audit.ipynb``
(:func:`audit_inputs`, the lines read from the files).

One computation at every size: the order lines are read, typed, checked and cleaned by DuckDB
(:class:`segkit.data.engine.TransactionLog`, which computes the *facts*: counts, the first
offending rows, statistics of small aggregated tables), whether they come from files (CSV,
Parquet, Excel through :mod:`segkit.data.io`) or from a pandas frame (:func:`run_audit`);
this module turns the facts into findings and cleaning rules (:func:`audit_log`). Customers and
campaign tables are checked and cleaned in pandas by :func:`customer_facts` and :func:`campaign_audit_facts`:
of the whole table here, or on ``engine.kind: spark`` of each partition on the executors (every row of a
customer in one), their facts merged here (:class:`SparkCustomers`, :class:`SparkCampaign`): the same findings.

Two kinds of count appear and they answer different questions:

* a **finding** counts the rows of the *input* with that property, each check on its own
  (a duplicated guest-checkout row counts in both ``exact_duplicates`` and ``guest_checkouts``);
* a **cleaning rule** counts the rows it removed, flagged or filled, applied in order, so that
  ``rows in = rows out + sum of rows removed`` holds exactly.

Before any rule, every id and text cell of every table loses its invisible control characters
(:data:`segkit.data.auditfacts.CONTROL_CHARACTER_RANGES`: NUL and other controls, bidi overrides),
reported per column as ``control_characters`` with escaped examples.

Cleaning rules for transactions, in order (nothing is dropped silently):

1. exact duplicate rows (all columns equal): dropped, the first copy kept;
2. rows without order date, 3. rows without amount: dropped (they cannot be analysed);
4. rows without customer id (guest checkouts): dropped from the customer analyses;
5. lines with a negative unit price (accounting adjustments, data errors): dropped;
6. far-future dates (after the ``audit.future_quantile`` of the order dates plus
   ``audit.future_tolerance_days``): dropped;
7. orders on or after ``as_of``: dropped (``as_of`` is the analysis date; the default, the day
   after the last order that is not in the future, keeps every order);
8. missing order ids filled (each such row is its own order, id ``row-<file row>``);
9. returns/cancellations kept and flagged ``is_return`` (negative quantity or amount, or an order
   id starting with ``io.return_invoice_prefix``);
10. zero-price lines kept (free items, samples) and flagged in the findings;
11. near duplicates (a later order's line repeating an earlier order's line of the customer on
    the same day) and outliers in order value and quantity (outside ``exp(median ± k · MAD)`` of
    the logs, see :func:`segkit.data.auditfacts.log_bounds`) flagged in the findings, kept.

Examples
--------
>>> import pandas as pd
>>> tx = pd.DataFrame({"customer_id": ["a", "a", "b", None],
...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"]),
...                    "order_id": ["1", "1", "2", "3"], "amount": [10.0, 10.0, 5.0, 7.0]})
>>> result = run_audit({"transactions": tx, "customers": None, "campaign": None})
>>> result.status, str(result.as_of.date()), len(result.transactions)
('warnings', '2024-01-03', 2)
>>> result.findings[["check", "severity", "count"]].values.tolist()
[['exact_duplicates', 'warning', 1], ['guest_checkouts', 'warning', 1]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.core.calendar import holiday_explanations, shop_countries
from segkit.core.config import data_source, load_config, source_scheme
from segkit.core.errors import ConfigError, DataError, format_rows
from segkit.core.escaping import formula_cells
from segkit.core.privacy import pseudonymize_ids
from segkit.core.schema import CAMPAIGN, CUSTOMERS, TableSpec
from segkit.data.auditfacts import (
    CHECKS,
    CONTROL_CHARACTER_CLASS,
    CONTROL_ROWS,
    SEVERITIES,
    TX_DROP_RULES,
    TX_INPUT_CHECKS,
    AuditSettings,
    CleanFacts,
    ControlCharacterFacts,
    InputFacts,
    escape_control_characters,
    row_limit,
)
from segkit.data.engine import (EXCEL_SUFFIXES, EngineSettings, OrderLines, TransactionLog, choose_engine,
                                derived_customers_table)
from segkit.data.io import load_table
from segkit.data.bounded import merged_parts, partition_rows
from segkit.data.relational import OrderLineTables
from segkit.data.spark import SparkOrderLines
from segkit.data.spark_audit import (SparkSideTable, SparkTransactionLog, arrow_frame, spark_csv_encoding, spark_schema,
                                     spark_side_table, typed_side_rows)
from segkit.data.statuses import StatusFacts

__all__ = [
    "AuditResult",
    "AuditSettings",
    "CHECKS",
    "run_audit",
    "audit_log",
    "audit_inputs",
    "gap_periods",
    "missing_values",
    "arm_balance",
    "headline_numbers",
    "HEADLINE_KEYS",
]

FINDING_COLUMNS: tuple[str, ...] = ("check", "table", "severity", "count", "share", "message", "examples")
RULE_COLUMNS: tuple[str, ...] = ("rule", "table", "action", "rows_affected")
_EXAMPLE_COLUMNS = {
    "transactions": ("order_id", "customer_id", "order_date", "product_id", "quantity", "unit_price", "amount"),
    "customers": ("customer_id", "signup_date", "country"),
    "campaign": ("campaign_id", "customer_id", "arm", "sent_at"),
}
_ROW = "_row"  # position of a row in its input table (0-based), carried through cleaning


# ----------------------------------------------------------------------------- result
@dataclass
class AuditResult:
    """Everything the audit found, and the cleaned tables.

    Attributes
    ----------
    findings : DataFrame
        ``check, table, severity, count, share, message, examples``, errors first, then
        warnings, then info; within a level by share and count (largest first).
    cleaning_rules : DataFrame
        ``rule, table, action (dropped/filled/added/flagged/emptied), rows_affected`` in the order applied.
    as_of : Timestamp or None
        Analysis date; orders on or after it are excluded.
    period : dict
        ``{"start": Timestamp, "end": Timestamp}`` of the clean transactions (None when empty).
    counts : dict
        Headline counts (rows in/clean per table, orders, customers, buyers, prospects…).
    transactions, customers, campaign : DataFrame
        The cleaned tables (``campaign`` is None without a campaign file; ``transactions`` is set
        by :func:`run_audit` only: for a run the clean lines stay in DuckDB and go to
        ``transactions_clean.parquet``).
    missing : DataFrame
        ``table, column, missing, share`` for every input column.
    daily : DataFrame
        Daily volume (see :func:`segkit.data.auditfacts.volume_from_counts`).
    gaps : DataFrame
        Gap periods (see :func:`gap_periods`).
    returns : dict
        See :func:`returns_summary`.
    outlier_rules : DataFrame
        ``measure, unit, n, median, scale_log, k, min_fold, low, high, flagged``: the robust rule.
    order_values : DataFrame
        ``order_id, value, is_outlier`` per purchase order (plot input).
    quantities : DataFrame
        ``quantity, is_outlier`` per purchase line (plot input).
    arms : DataFrame
        ``campaign_id, arm, customers, share`` (empty without campaign).
    checks : DataFrame
        ``check, table, count`` of every check run, including those that found nothing.
    offending : dict
        check → up to 10 offending rows (``row`` = line in the input file).
    engine : str
        ``"pandas"``, ``"duckdb"`` or ``"spark"``: how the later steps take their order-level tables
        from the clean lines (``engine.kind``, :func:`segkit.data.engine.choose_engine`; ``"pandas"``
        from :func:`run_audit`, whose clean lines are in memory); recorded in ``audit_summary.json``.
        The audit itself is DuckDB's, or Spark's for ``engine.kind: spark``
        (:class:`segkit.data.spark_audit.SparkTransactionLog`: the same SQL, the same findings).
    guests : dict
        ``input_lines, input_revenue`` (rows of the input without customer id, the finding's count)
        and ``lines, revenue`` (those the guest cleaning rule removed, after exact duplicates).
    headline : dict or None
        The run's headline numbers (:func:`headline_numbers`; ``audit_summary.json`` key ``headline``),
        None when the audit has errors (no clean lines).
    customer_rows : SparkCustomerTable or None
        On ``engine.kind: spark`` with a customers table: the clean customers held on the executors
        (:meth:`SparkCustomerTable.write` writes ``customers_clean.parquet``); ``customers`` is then None.
    campaign_rows : SparkCampaignTable or None
        The same for the campaign table (``campaign`` is then None; :attr:`campaign_overview` says what
        ``overview_table`` shows of it).
    """

    findings: pd.DataFrame
    cleaning_rules: pd.DataFrame
    as_of: pd.Timestamp | None
    period: dict[str, pd.Timestamp | None]
    counts: dict[str, int]
    transactions: pd.DataFrame | None
    customers: pd.DataFrame
    campaign: pd.DataFrame | None
    missing: pd.DataFrame
    daily: pd.DataFrame
    gaps: pd.DataFrame
    returns: dict[str, float]
    outlier_rules: pd.DataFrame
    order_values: pd.DataFrame
    quantities: pd.DataFrame
    arms: pd.DataFrame
    checks: pd.DataFrame
    offending: dict[str, pd.DataFrame] = field(default_factory=dict)
    engine: str = "pandas"
    guests: dict[str, float] = field(default_factory=dict)
    headline: dict[str, Any] | None = None
    customer_rows: "SparkCustomerTable | None" = None
    campaign_rows: "SparkCampaignTable | None" = None

    @property
    def campaign_overview(self) -> dict[str, Any] | None:
        """``customer_ids`` (distinct customers), ``first_date`` and ``last_date`` (``sent_at``) of the clean
        campaign rows; None without a campaign table."""
        if self.campaign_rows is not None:
            facts = self.campaign_rows.facts
            return {"customer_ids": facts.customer_ids, "first_date": facts.first_sent, "last_date": facts.last_sent}
        if self.campaign is None:
            return None
        dates = self.campaign["sent_at"] if "sent_at" in self.campaign else pd.Series(dtype="datetime64[ns]")
        return {"customer_ids": int(self.campaign["customer_id"].nunique()), "first_date": dates.min(),
                "last_date": dates.max()}

    @property
    def status(self) -> str:
        """``"errors"`` if any error finding, else ``"warnings"`` if any warning, else ``"ok"``."""
        levels = set(self.findings["severity"])
        return "errors" if "error" in levels else "warnings" if "warning" in levels else "ok"

    @property
    def passed(self) -> list[str]:
        """Checks that ran and found nothing, in the order they ran."""
        found = set(self.findings["check"])
        return [c for c in dict.fromkeys(self.checks["check"]) if c not in found]

    def summary(self) -> dict[str, Any]:
        """The ``audit_summary.json`` document (shape fixed in docs/DEVELOPING.md)."""
        def day(ts: pd.Timestamp | None) -> str | None:
            return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%d")

        findings = self.findings.astype(object).where(self.findings.notna(), None)
        return {
            "as_of": day(self.as_of),
            "period": {"start": day(self.period["start"]), "end": day(self.period["end"])},
            "status": self.status,
            "findings": findings.to_dict("records"),
            "cleaning_rules": self.cleaning_rules.to_dict("records"),
            "counts": dict(self.counts),
            "definitions": dict(COUNT_DEFINITIONS),
            "engine": self.engine,
            "passed": self.passed,
            "returns": {k: (None if pd.isna(v) else v) for k, v in self.returns.items()},
            "outlier_rules": self.outlier_rules.astype(object).where(self.outlier_rules.notna(), None)
                                 .to_dict("records"),
            **({"headline": dict(self.headline)} if self.headline is not None else {}),
        }

    def failure_message(self) -> str:
        """Plain-text findings table (check, table, severity, count, first example) and what to do."""
        table = self.findings[self.findings["severity"] != "info"].copy()
        table["example"] = table["examples"].fillna("").str.split("; ").str[0].str.slice(0, 90)
        text = table[["check", "table", "severity", "count", "example"]].to_string(index=False)
        errors = self.findings[self.findings["severity"] == "error"]
        advice = "\n".join(f"- {c}: {CHECKS[c][1]}" for c in dict.fromkeys(errors["check"]))
        return (
            f"The data audit found {len(errors)} error-severity problem(s); the clean tables were not written "
            f"and the pipeline stops here.\n\n{text}\n\nWhat to do:\n{advice}\n"
            "- If the data are right, relax the rule in your config (audit.severity.<check>.error_share or "
            "level; defaults in segkit/defaults/audit.yml) and run again."
        )


# ----------------------------------------------------------------------------- pure checks
def gap_periods(daily: pd.DataFrame) -> pd.DataFrame:
    """Consecutive gap days of the daily volume (:func:`segkit.data.auditfacts.volume_from_counts`)
    merged into periods.

    Closed weekdays inside a gap do not break it (a shop closed on Sundays with a lost week
    has one gap period, not two).

    Returns
    -------
    DataFrame
        ``start, end, gap_days, expected_orders`` (expected orders lost, summed).

    Examples
    --------
    >>> daily = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=6, freq="D"),
    ...                       "is_gap": [False, True, True, False, True, False],
    ...                       "open_weekday": True, "orders": [5, 0, 0, 5, 0, 5], "expected": 5.0})
    >>> gap_periods(daily)[["gap_days", "expected_orders"]].to_dict("list")
    {'gap_days': [2, 1], 'expected_orders': [10.0, 5.0]}
    """
    cols = {"start": "datetime64[ns]", "end": "datetime64[ns]", "gap_days": "int64", "expected_orders": "float64"}
    if daily.empty or not daily["is_gap"].any():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})
    # Days that may sit inside a gap: gaps, and closed weekdays without orders.
    quiet = daily["is_gap"] | (~daily["open_weekday"] & (daily["orders"] == 0))
    run = (quiet != quiet.shift()).cumsum()
    gaps = daily.assign(run=run)[quiet]
    periods = gaps.groupby("run").agg(
        start=("date", lambda d: d[gaps.loc[d.index, "is_gap"]].min()),
        end=("date", lambda d: d[gaps.loc[d.index, "is_gap"]].max()),
        gap_days=("is_gap", "sum"),
        expected_orders=("expected", lambda e: e[gaps.loc[e.index, "is_gap"]].sum()),
    )
    periods = periods[periods["gap_days"] > 0].reset_index(drop=True)
    return periods.astype(cols)


def missing_values(tables: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Missing cells per column of each table present.

    Returns
    -------
    DataFrame
        ``table, column, missing, share`` (share of the table's rows).

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": ["a", None], "amount": [1.0, 2.0]})
    >>> missing_values({"transactions": t, "customers": None}).values.tolist()
    [['transactions', 'customer_id', 1, 0.5], ['transactions', 'amount', 0, 0.0]]
    """
    parts = []
    for name, frame in tables.items():
        if frame is None:
            continue
        cols = [c for c in frame.columns if c != _ROW]
        counts = frame[cols].isna().sum()
        parts.append(pd.DataFrame({
            "table": name, "column": cols, "missing": counts.to_numpy(dtype="int64"),
            "share": counts.to_numpy(dtype="float64") / len(frame) if len(frame) else np.nan,
        }))
    if not parts:
        return pd.DataFrame({"table": [], "column": [], "missing": [], "share": []})
    return pd.concat(parts, ignore_index=True).astype({"table": "string", "column": "string"})


def arm_balance(campaign: pd.DataFrame | None) -> pd.DataFrame:
    """Customers per arm of each campaign and their share within the campaign.

    Examples
    --------
    >>> c = pd.DataFrame({"campaign_id": ["x"] * 4, "customer_id": list("abcd"),
    ...                   "arm": ["control", "email", "email", "email"]})
    >>> arm_balance(c).values.tolist()
    [['x', 'control', 1, 0.25], ['x', 'email', 3, 0.75]]
    """
    if campaign is None or campaign.empty:
        return pd.DataFrame({"campaign_id": pd.Series(dtype="string"), "arm": pd.Series(dtype="string"),
                             "customers": pd.Series(dtype="int64"), "share": pd.Series(dtype="float64")})
    return arm_shares(campaign.groupby(["campaign_id", "arm"], dropna=False, observed=True).size()
                      .rename("customers").reset_index())


def arm_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`arm_balance` of counted rows: ``campaign_id, arm, customers`` (one row per campaign and arm, sorted)
    with each arm's share within its campaign."""
    out = counts.copy()
    out["share"] = out["customers"] / out.groupby("campaign_id", dropna=False)["customers"].transform("sum")
    return out.astype({"customers": "int64"})


#: The keys of the headline (:func:`headline_numbers`), in the order they are shown.
#: What the counts of ``audit_summary.json`` that sound alike mean (its ``definitions`` entry): the order-line
#: counts of the audit are distinct ids, the headline's are kept purchases.
COUNT_DEFINITIONS: dict[str, str] = {
    "counts.orders": "distinct order ids in the clean order lines: purchases, fully cancelled orders and "
                     "cancellation or return documents alike (the purchases are headline.purchase_orders)",
    "counts.buyers": "distinct customer ids with a clean order line, whether or not they kept a purchase "
                     "(who did is headline.buyers)",
    "headline.purchase_orders": "orders that kept a positive value after the cancellations matched to them; "
                                "cancellation documents are not orders",
    "headline.buyers": "customers who kept a purchase order and a positive total",
}

HEADLINE_KEYS: tuple[str, ...] = (
    "currency", "net_revenue", "orders_total", "purchase_orders", "cancelled_orders", "cancellation_documents",
    "other_orders", "customers", "buyers", "customers_kept_nothing", "customers_only_returns", "prospects",
    "guest_lines", "guest_revenue", "unmatched_documents", "unmatched_value",
)


def headline_numbers(result: AuditResult, line_numbers: Mapping[str, int | float],
                     config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's one set of headline numbers: :data:`HEADLINE_KEYS`, written to ``audit_summary.json``
    (key ``headline``) and shown by every notebook and ``index.html`` (:mod:`segkit.steps.headline`).

    ``line_numbers`` are the relational core's (:func:`segkit.data.relational.headline_of` of the clean
    lines: net revenue, purchase orders, cancellation documents, buyers…); the audit adds ``customers``
    (the clean customers table), ``prospects`` (customers without any order line), ``guest_lines`` and
    ``guest_revenue`` (rows the guest cleaning rule removed, after exact duplicates: see
    ``result.guests``) and ``currency`` (``report.currency`` of ``config``; "" when unset).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", None], "order_id": ["1", "C1", "2"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"]),
    ...                    "amount": [10.0, -10.0, 7.0]})
    >>> h = run_audit({"transactions": tx}).headline
    >>> h["net_revenue"], h["purchase_orders"], h["customers_kept_nothing"], h["guest_lines"], h["currency"]
    (0.0, 0, 1, 1, 'EUR')
    """
    customers = int(result.counts["customers"])
    with_lines = int(line_numbers["customers_with_lines"])
    numbers = {key: line_numbers[key] for key in line_numbers if key != "customers_with_lines"}
    numbers.update({
        "currency": str(((config or {}).get("report") or {}).get("currency") or ""),
        "customers": customers,
        "prospects": customers - with_lines,
        "guest_lines": int(result.guests.get("lines", 0)),
        "guest_revenue": round(float(result.guests.get("revenue", 0.0)), 2) + 0.0,
    })
    return {key: numbers[key] for key in HEADLINE_KEYS}


# ----------------------------------------------------------------------------- helpers
def _canonical(frame: pd.DataFrame | None,
               spec: TableSpec) -> tuple[pd.DataFrame | None, tuple[list[ControlCharacterFacts], int]]:
    """Canonical columns of a customers or campaign table (customer-level, pandas; the order lines
    are read by :class:`segkit.data.engine.TransactionLog`) in canonical dtypes, blank text as
    missing, plus ``_row`` = the frame's integer index (:func:`segkit.data.io.load_table` sets it to
    the 0-based data row of the file) or the row position. ``attrs["absent_columns"]`` lists
    canonical columns the input did not have (also those :func:`segkit.core.schema.validate` added).

    Control characters (:data:`segkit.data.auditfacts.CONTROL_CHARACTER_RANGES`) are removed from
    every id and text cell before it is trimmed; returned with the frame: the facts per column that
    had any, and the number of rows changed (see :func:`_report_control_characters`)."""
    if frame is None:
        return None, ([], 0)
    absent = [c for c in spec.columns if c not in frame.columns or c in frame.attrs.get("absent_columns", ())]
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise DataError(f"{spec.name}: required column(s) {', '.join(missing)} missing. "
                        f"Map them in the config's columns.{spec.name} section (see segkit.data.io).")
    if spec.one_of and not any(all(c in frame.columns for c in group) for group in spec.one_of):
        need = " or ".join(" + ".join(g) for g in spec.one_of)
        raise DataError(f"{spec.name}: needs {need}. Map them in the config's columns.{spec.name} section.")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    controls: dict[str, tuple[pd.Series, pd.Series]] = {}
    for col, dtype in {**spec.dtypes, **spec.extra}.items():
        if col not in frame.columns or (col in absent and col != "delivered"):
            continue
        values = frame[col].reset_index(drop=True)
        try:
            if dtype.startswith("datetime"):
                values = pd.to_datetime(values)
            elif dtype == "string":
                text = values.astype("string")
                values, changed = _without_control_characters(text)
                if changed.any():
                    controls[col] = (changed, text)
                values = values.str.strip().replace("", pd.NA)
            else:
                values = values.astype(dtype)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{spec.name}: column '{col}' cannot be read as {dtype} ({exc}). "
                            "Load the files with segkit.data.io.load_inputs, which says which rows are wrong.") from None
        out[col] = values
    integer_index = pd.api.types.is_integer_dtype(frame.index.dtype) and frame.index.is_unique
    out[_ROW] = np.asarray(frame.index if integer_index else np.arange(len(frame)), dtype="int64")
    out.attrs["absent_columns"] = absent
    facts = []
    for col, (changed, text) in controls.items():
        rows = pd.DataFrame({_ROW: out.loc[changed, _ROW], col: text[changed]}).head(CONTROL_ROWS)
        cleaned = pd.Series(out.loc[changed, col].dropna().unique(), dtype="string")
        collisions = int(_isin(cleaned, out.loc[~changed, col]).sum()) if col.endswith("_id") else 0
        facts.append(ControlCharacterFacts(spec.name, col, int(changed.sum()), rows.reset_index(drop=True),
                                           collisions))
    changed_rows = int(np.logical_or.reduce([c.to_numpy() for c, _ in controls.values()]).sum()) if controls else 0
    return out, (facts, changed_rows)


def _without_control_characters(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``text`` without control characters, and the mask of the cells that had any (pyarrow's RE2
    with :data:`segkit.data.auditfacts.CONTROL_CHARACTER_CLASS`, the pattern
    :meth:`segkit.data.engine.TransactionLog.remove_control_characters` uses on the order lines)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(text, type=pa.large_string(), from_pandas=True)
    found = pc.fill_null(pc.match_substring_regex(array, CONTROL_CHARACTER_CLASS), False)
    changed = pd.Series(found.to_numpy(zero_copy_only=False).astype(bool), index=text.index)
    if not changed.any():
        return text, changed
    cleaned = pc.replace_substring_regex(array, CONTROL_CHARACTER_CLASS, "")
    return pd.Series(cleaned.to_pylist(), index=text.index, dtype="string"), changed


def _report_control_characters(found: Mapping[str, tuple[list[ControlCharacterFacts], int]],
                               sizes: Mapping[str, int], col: _Collector) -> None:
    """Finding ``control_characters`` per column that had any (examples escaped, ``\\x00``), and the
    cleaning rule per table (rows with at least one cell changed)."""
    for table, (facts, changed_rows) in found.items():
        for fact in facts:
            merged = ""
            if fact.collisions:
                merged = (f" Without them, {fact.collisions:,} distinct id(s) equal an id already in this column, "
                          "so their rows now count under that id" +
                          (" (duplicate_customer_ids reports the repeated customer rows)."
                           if (table, fact.column) == ("customers", "customer_id") else "."))
            shown = fact.rows.head(row_limit(col.settings))
            shown = shown.assign(**{fact.column: shown[fact.column].map(escape_control_characters).astype("string")})
            col.add("control_characters", table, fact.count, sizes[table],
                    f"removed in the cleaned tables (shown here as escapes such as \\x00).{merged}", rows=shown,
                    examples=_examples_text(shown, (fact.column,), col.settings),
                    label=f"Cells with control characters in column '{fact.column}'",
                    key=f"control_characters ({table}.{fact.column})")
        col.rule("control characters removed from ids and text", table, "edited", changed_rows)


def _with_all_columns(frame: pd.DataFrame, spec: TableSpec, extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with every canonical column (absent ones empty) in canonical order and dtype."""
    dtypes = dict(spec.dtypes, **(extra or {}))
    out = frame.reset_index(drop=True)
    for col, dtype in dtypes.items():
        if col not in out:
            out[col] = pd.Series(pd.NA if dtype != "float64" else np.nan, index=out.index, dtype=dtype)
    return out[list(dtypes)].astype(dtypes)


def _pseudonymized(frame: pd.DataFrame, settings: AuditSettings) -> pd.DataFrame:
    if settings.pseudonymize and "customer_id" in frame:
        return frame.assign(customer_id=pseudonymize_ids(frame["customer_id"], settings.salt))
    return frame


def format_value(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "<missing>"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:,.2f}" if value != int(value) else f"{value:,.0f}"
    return str(value)


def _examples_text(rows: pd.DataFrame, columns: Iterable[str], settings: AuditSettings) -> str:
    """``row N: col=value, …; row M: …`` for the first ``settings.examples`` rows (ids pseudonymised)."""
    head = _pseudonymized(rows.head(settings.examples), settings)
    cols = [c for c in columns if c in head.columns]
    parts = []
    for record in head.to_dict("records"):
        where = format_rows([record[_ROW]], limit=1) + ": " if _ROW in record else ""
        parts.append(where + ", ".join(f"{c}={format_value(record[c])}" for c in cols))
    return "; ".join(parts)


def _offending(rows: pd.DataFrame) -> pd.DataFrame:
    """Up to 10 rows for the explorer (real ids: display through ``shareable``); ``row`` is the
    line in the input file (header = line 1)."""
    head = rows.head(10).copy()
    if _ROW in head:
        head.insert(0, "row", head.pop(_ROW) + 2)
    return head.reset_index(drop=True)


class _Collector:
    """Accumulates findings, check counts and cleaning rules while the audit runs."""

    def __init__(self, settings: AuditSettings):
        self.settings = settings
        self.findings: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []
        self.offending: dict[str, pd.DataFrame] = {}

    def add(self, check: str, table: str, count: int, denominator: int | None, note: str,
            rows: pd.DataFrame | None = None, examples: str | None = None, always: bool = False,
            label: str | None = None, key: str | None = None) -> None:
        """Record a check; a finding when ``count > 0`` (or ``always``).

        The message reads ``"<label>: <count> (<share>); <note>"``; ``label`` defaults to the
        check's label in :data:`CHECKS`. ``rows`` are the offending rows (examples, explorer).
        """
        self.checks.append({"check": check, "table": table, "count": int(count)})
        if count == 0 and not always:
            return
        share = count / denominator if denominator else np.nan
        share_text = f" ({percent_text(share)})" if denominator else ""
        message = f"{label or CHECKS[check][0]}: {count:,}{share_text}; {note}"
        if rows is not None:
            if examples is None:
                examples = _examples_text(rows, _EXAMPLE_COLUMNS.get(table, rows.columns), self.settings)
            self.offending[key or check] = _offending(rows)
        self.findings.append({
            "check": check, "table": table, "severity": self.settings.severity_for(check, share),
            "count": int(count), "share": share, "message": message, "examples": examples or "",
        })

    def rule(self, rule: str, table: str, action: str, rows: int) -> None:
        self.rules.append({"rule": rule, "table": table, "action": action, "rows_affected": int(rows)})

    def findings_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.findings, columns=list(FINDING_COLUMNS))
        frame = frame.astype({"count": "int64", "share": "float64"})
        rank = frame["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
        order = np.lexsort((frame["check"].to_numpy(dtype=str), -frame["count"].to_numpy(),
                            -frame["share"].fillna(0).to_numpy(), rank.to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
        return frame.astype({c: "string" for c in ("check", "table", "severity", "message", "examples")})

    def rules_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rules, columns=list(RULE_COLUMNS)).astype(
            {"rule": "string", "table": "string", "action": "string", "rows_affected": "int64"})


def _isin(values: pd.Series, lookup: pd.Series) -> np.ndarray:
    """``values.isin(lookup)`` for id columns, as a bool array; missing values are never in.

    pandas' ``isin`` on string columns loops over ``lookup`` in Python (seconds for 100k ids);
    ``pyarrow.compute.is_in`` hashes it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.is_in(pa.array(values.astype("string"), type=pa.large_string()),
                     value_set=pa.array(lookup.dropna().astype("string"), type=pa.large_string()))
    return found.to_numpy(zero_copy_only=False).astype(bool)


def percent_text(share: float | None) -> str:
    """Percent text; two decimals under 0.1% so that small shares do not read as 0.0%."""
    if share is None or pd.isna(share):
        return "n/a"
    return f"{100 * share:.2f}%" if 0 < share < 0.001 else f"{100 * share:.1f}%"


def _drop(frame: pd.DataFrame, mask: pd.Series, col: _Collector, rule: str, table: str) -> pd.DataFrame:
    """Apply one dropping cleaning rule and record how many rows it removed."""
    col.rule(rule, table, "dropped", int(mask.sum()))
    return frame.loc[~mask]


# ----------------------------------------------------------------------------- audit steps
# Each transaction step is split in two halves: TransactionLog (:mod:`segkit.data.engine`, SQL)
# computes the *facts* (counts, the first offending rows, statistics of small aggregated
# tables), and ``_report_*`` turns facts into findings and rules.

def _check_missing_values(missing: pd.DataFrame, sizes: Mapping[str, int],
                          rows_of: Callable[[str, str], pd.DataFrame], col: _Collector) -> None:
    """One info finding per column with empty cells (columns with a check of their own excluded);
    ``rows_of(table, column)`` gives the first rows with that cell empty."""
    dedicated = {("transactions", "customer_id"), ("transactions", "order_date"), ("transactions", "amount"),
                 ("customers", "customer_id"), ("campaign", "customer_id")}
    for rec in missing[missing["missing"] > 0].to_dict("records"):
        if (rec["table"], rec["column"]) in dedicated:
            continue
        col.add("missing_values", rec["table"], rec["missing"], sizes[rec["table"]], "left empty (unknown).",
                rows=rows_of(rec["table"], rec["column"]), label=f"Empty cells in column '{rec['column']}'",
                key=f"missing_values ({rec['table']}.{rec['column']})")


def _guest_note(facts: InputFacts) -> str:
    """The guest finding's note: its revenue and, when exact duplicates are among the guest rows, what the
    cleaning rule removed after them (the headline's guest lines)."""
    note = f"{facts.guest_revenue:,.2f} revenue; dropped from the customer analyses"
    removed = facts.dropped["guest_checkouts"]
    if removed == facts.counts["guest_checkouts"]:
        return note + "."
    return (f"{note}. Once exact duplicates are removed, {removed:,} rows ({facts.guest_dropped_revenue:,.2f}): "
            "the guest cleaning rule's count and the headline's guest lines.")


def _report_identical_lines(facts: InputFacts, col: _Collector) -> None:
    """Finding ``identical_lines_without_order_id``: copies of lines without an order id, how many
    customers and how much money, and what ``audit.identical_lines_without_order_id`` did with them
    (``keep``: a flagged rule; ``drop``: they are in the exact duplicates' count and rule)."""
    found = facts.identical_without_order_id
    if not found or not found["lines"]:
        return  # not listed among the checks that passed: most inputs have order ids
    n = found["lines"]
    if found["action"] == "kept":
        meaning = ("kept, each a purchase of its own (audit.identical_lines_without_order_id: keep: without an "
                   "order id an identical line may be a repeat purchase); set it to drop if they are a doubled "
                   "export, and they are removed as exact duplicates, the first copy kept.")
    else:
        meaning = ("dropped as exact duplicates, the first copy kept (audit.identical_lines_without_order_id: "
                   "drop); set it to keep if customers really bought the same thing twice, and each counts as "
                   "a purchase.")
    col.add("identical_lines_without_order_id", "transactions", n, facts.n_rows,
            f"{found['customers']:,} customers, worth {found['amount']:,.2f}; {meaning}", rows=found["rows"])
    if found["action"] == "kept":
        col.rule("identical lines without order id kept (repeat purchases)", "transactions", "flagged", n)


_MEANING_TEXT = {"purchase": "purchases", "not_purchase": "no purchases", "pending": "pending"}


def _report_order_statuses(facts: StatusFacts, col: _Collector) -> None:
    """Findings of the order contract (:mod:`segkit.data.statuses`): orders by status and what each counts
    as, refunds, cancelled orders and how they were treated, test orders (removed), zero-value orders,
    guest orders, and dates that lost their UTC offset (a spreadsheet re-saved the file)."""
    n = facts.orders
    if len(facts.by_status):
        def part(row: Any) -> str:
            meaning = _MEANING_TEXT.get(row.meaning, row.meaning)
            if row.meaning == "pending":
                meaning = (f"pending, counted as {'purchases' if facts.pending_rule == 'purchase' else 'no purchases'}:"
                           " orders.pending")
            return f"{row.status} {row.orders:,} ({meaning})"

        by_status = "; ".join(part(r) for r in facts.by_status.itertuples(index=False))
        recorded, kept = float(facts.by_status["recorded"].sum()), float(facts.by_status["kept"].sum())
        guests = (f" {facts.guest_orders:,} orders have no customer id (guest orders, e.g. marketplace orders "
                  f"without e-mail; {facts.guest_value:,.2f} kept): left out of the customer analyses."
                  if facts.guest_orders else "")
        col.add("order_statuses", "transactions", n, None,
                f"{by_status}. Value analysed: {facts.analysed}; {recorded:,.2f} recorded, {kept:,.2f} kept after "
                f"refunds and statuses.{guests}", examples="", always=True)
    col.add("refunds", "transactions", facts.refunded_orders, n,
            f"{facts.refunded_value:,.2f} refunded; {facts.partially_refunded_purchases:,} orders keep their value "
            f"less the refund (still purchases), the others refunded in full are no purchases. Value not kept "
            f"(refunds, refunded, voided and cancelled orders): {facts.value_not_kept:,.2f}.", examples="")
    if facts.cancelled_orders:
        rule = ("count by their status and refunds (orders.cancelled: by_status)" if facts.cancelled_rule == "by_status"
                else "are never purchases (orders.cancelled: not_purchase)")
        col.add("cancelled_orders", "transactions", facts.cancelled_orders, n,
                f"{facts.cancelled_still_purchases:,} still kept money and count as purchases, the others keep "
                f"nothing. Cancelled orders still paid {rule}; cancelled orders never captured are no purchases.",
                examples="")
    if facts.repeated_orders:
        col.add("orders_in_several_files", "transactions", facts.repeated_orders, n,
                f"the same order (same id, same lines) more than once, as overlapping exports hold it; counted once "
                f"({facts.repeated_lines:,} repeated lines removed before the audit).", examples="")
        col.rule("orders exported more than once counted once", "transactions", "dropped", facts.repeated_lines)
    if facts.test_orders:
        col.add("test_orders", "transactions", facts.test_orders, n + facts.test_orders,
                f"{facts.test_lines:,} lines removed before the audit (orders.test_payment_methods).",
                examples=facts.test_examples)
        col.rule("test orders removed (orders.test_payment_methods)", "transactions", "dropped", facts.test_lines)
    col.add("zero_value_orders", "transactions", facts.zero_value_orders, n,
            "kept as orders, no purchases (exchanges, samples, free orders).", examples=facts.zero_value_examples)
    if facts.rows_without_offset:
        col.add("spreadsheet_resaved", "transactions", facts.rows_without_offset, facts.dated_rows,
                "orders.dates_have_offsets says the export writes each time with its UTC offset "
                "(2024-03-10 23:30:00 -0700), so this file was probably re-saved by a spreadsheet. Lost: the "
                "offsets (times are read as the wall time they show, the shop's local time, so days are unchanged), "
                "seconds, maybe amounts (rounded to what the cells displayed); yes/no became TRUE/FALSE. Export "
                "the orders again from the shop's admin and use that file unchanged for exact values.",
                examples=format_rows(facts.first_rows_without_offset))


def _report_currency(facts: StatusFacts, config: Mapping[str, Any], col: _Collector) -> None:
    """Finding ``currency_mismatch``: the file's one currency (its ``currency`` column) is not
    ``report.currency``, so every amount would be labelled with the wrong currency."""
    configured = str((config.get("report") or {}).get("currency") or "")
    if facts.currency and configured and facts.currency != configured.strip().upper():
        col.add("currency_mismatch", "transactions", facts.orders, facts.orders,
                f"the file's currency column says {facts.currency!r}, report.currency says {configured!r}: amounts "
                f"are in {facts.currency} but would be labelled {configured}. Set report.currency: "
                f"{facts.currency} in the config.", examples="")


def _report_input(facts: InputFacts, settings: AuditSettings, col: _Collector) -> None:
    """Findings of the row checks and the transaction cleaning rules, from :class:`InputFacts`."""
    notes = {
        "exact_duplicates": "dropped, the first copy kept.",
        "missing_order_date": "dropped.",
        "missing_amount": "dropped.",
        "guest_checkouts": _guest_note(facts),
        "negative_price": "adjustments or errors, not sales; dropped.",
        "zero_price": "free items, or prices lost in the export; kept.",
        "future_dates": (f"dated after {format_value(facts.cutoff)} = the {settings.future_quantile:.0%} quantile of order "
                         f"dates + {settings.future_tolerance_days} days; dropped."),
        "after_as_of": f"as_of = {format_value(facts.as_of)}; left out of this run.",
    }
    for check in TX_INPUT_CHECKS:
        col.add(check, "transactions", facts.counts[check], facts.n_rows, notes[check], rows=facts.rows[check])
    _report_identical_lines(facts, col)
    for check, rule in TX_DROP_RULES:
        col.rule(rule, "transactions", "dropped", facts.dropped[check])
    col.rule("missing order ids filled (each row its own order)", "transactions", "filled", facts.filled)
    col.rule("returns and cancellations flagged is_return (kept)", "transactions", "flagged", facts.returns_flagged)
    col.rule("zero-price lines kept (free items)", "transactions", "flagged", facts.zero_flagged)


def _report_clean(facts: CleanFacts, n_in: int, settings: AuditSettings, col: _Collector,
                  countries: Sequence[str] = ()) -> dict[str, Any]:
    """Findings and flagging rules of the checks on what the analyses will use, from :class:`CleanFacts`."""
    n_clean = facts.n_clean
    if n_clean == 0:
        col.add("no_transactions_left", "transactions", n_in, n_in, "see the cleaning rules.", always=True)
    returns = facts.returns
    col.add("returns", "transactions", returns["return_lines"], n_clean,
            f"in {returns['return_orders']:,} orders, value {returns['returned_value']:,.2f} = "
            f"{percent_text(returns['returned_share'])} of gross revenue; kept, flagged is_return.", rows=facts.return_rows)
    same = ", ".join(["customer", "day"] + list(facts.near_same))
    col.add("near_duplicates", "transactions", facts.near_count, n_clean, f"same {same}; kept.", rows=facts.near_rows)
    col.rule("near duplicates flagged (kept)", "transactions", "flagged", facts.near_count)

    rules = []
    for measure, unit, f in (("order value", "currency per order", facts.order_rule),
                             ("quantity", "units per line", facts.quantity_rule)):
        median, scale, low, high = f.stats
        rules.append({"measure": measure, "unit": unit, "n": f.n, "median": median, "scale_log": scale,
                      "k": settings.outlier_k, "min_fold": settings.outlier_min_fold, "low": low, "high": high,
                      "flagged": f.flagged})
    o_rule, q_rule = rules
    rule_text = (f"outside {{low}}–{{high}} = median {{median}} ×/÷ exp({settings.outlier_k:g} · MAD of the logs), "
                 f"at least ×/÷ {settings.outlier_min_fold:g}; kept.")
    flagged_orders = facts.order_rule.rows
    col.add("order_value_outliers", "transactions", o_rule["flagged"], facts.order_rule.n,
            rule_text.format(**{k: format_value(o_rule[k]) for k in ("low", "high", "median")}), rows=flagged_orders,
            examples=_examples_text(flagged_orders, ("order_id", "order_date", "lines", "value"), settings))
    col.add("quantity_outliers", "transactions", q_rule["flagged"], facts.quantity_rule.n,
            rule_text.format(**{k: format_value(q_rule[k]) for k in ("low", "high", "median")}),
            rows=facts.quantity_rule.rows)
    col.rule("lines of order value outliers flagged (kept)", "transactions", "flagged", facts.order_rule.flagged_lines)
    col.rule("quantity outliers flagged (kept)", "transactions", "flagged", q_rule["flagged"])

    daily = facts.daily
    gaps = gap_periods(daily)
    # gaps on (or next to) the shop's public holidays are a note, the others a warning
    gaps["holidays"] = holiday_explanations(gaps, daily.loc[daily["is_gap"], "date"], countries).astype("string")
    on_holiday = (gaps["holidays"] != "").to_numpy()
    for check, rows in (("volume_gaps", gaps[~on_holiday]), ("volume_gaps_holidays", gaps[on_holiday])):
        named = f" of {', '.join(countries)}" if check == "volume_gaps_holidays" else ""
        col.add(check, "transactions", int(rows["gap_days"].sum()), int(daily["open_weekday"].sum()),
                f"in {len(rows)} period(s){named}, ~{rows['expected_orders'].sum():,.0f} orders expected in total.",
                rows=rows, examples="; ".join(
                    f"{format_value(g['start'])} to {format_value(g['end'])} ({g['gap_days']} days, "
                    f"~{g['expected_orders']:,.0f} orders expected"
                    + (f": {g['holidays']}" if g["holidays"] else "") + ")"
                    for g in rows.head(settings.examples).to_dict("records")))
    spikes = daily[daily["is_spike"]]
    col.add("volume_spikes", "transactions", len(spikes), len(daily),
            f"orders > expected + {settings.spike_k:g} robust SD; check they were real (sales, campaigns).",
            rows=spikes[["date", "weekday", "orders", "expected"]],
            examples="; ".join(f"{format_value(r['date'])}: {r['orders']} orders (expected ~{r['expected']:,.0f})"
                               for r in spikes.head(settings.examples).to_dict("records")))
    return {
        "returns": returns, "daily": daily, "gaps": gaps,
        "outlier_rules": pd.DataFrame([o_rule, q_rule]).astype({"measure": "string", "unit": "string"}),
        "order_values": facts.order_values, "quantities": facts.quantities,
    }


def birth_year_bounds(as_of: pd.Timestamp, settings: AuditSettings) -> tuple[int, int]:
    """Plausible birth years as of ``as_of``: customers aged ``birth_year_min_age`` to
    ``birth_year_max_age`` years (defaults 10 and 110, ``segkit/defaults/audit.yml``).

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> birth_year_bounds(pd.Timestamp("2025-01-01"), AuditSettings.from_config(load_config()))
    (1915, 2015)
    """
    return as_of.year - settings.birth_year_max_age, as_of.year - settings.birth_year_min_age


@dataclass
class CustomerFacts:
    """What the customers checks and cleaning rules of :func:`audit_log` count, of all the customers table's rows
    or of a part holding every row of its customers (:func:`customer_facts`); the facts of disjoint parts merge
    (:meth:`merge`) into those of the whole table, so that Spark checks the table per partition and the findings
    are the one-machine ones.

    Attributes
    ----------
    rows_in : int
        Rows of the (canonical) customers table.
    found : dict
        Check -> (count, its first offending rows: at most ``limit``, in the order the finding lists them).
    with_date : int
        Rows with a signup date.
    emptied : int
        Kept rows whose implausible birth year is emptied.
    customers, buyers : int
        Clean customers (the table's and the buyers it lacked), buyers (customer ids of the clean lines).
    """

    rows_in: int
    found: dict[str, tuple[int, pd.DataFrame]]
    with_date: int
    emptied: int
    customers: int
    buyers: int

    #: The order each check's rows are listed in: the input's row order, or the clean table's (by customer id).
    ORDER = {"customers_without_id": _ROW, "duplicate_customer_ids": _ROW, "signup_after_as_of": _ROW,
             "implausible_birth_year": _ROW, "buyers_not_in_customers": "customer_id",
             "customers_without_orders": "customer_id", "formula_like_ids": "customer_id"}

    @classmethod
    def merge(cls, parts: Sequence["CustomerFacts"], limit: int) -> "CustomerFacts":
        """The facts of all the rows of ``parts`` (disjoint parts, each customer id in one), ``limit`` rows kept."""
        found = {}
        for check, order in cls.ORDER.items():
            counted = [p.found[check] for p in parts if check in p.found]
            if not counted:
                continue
            rows = [r for _, r in counted if len(r)]
            merged = (pd.concat(rows, ignore_index=True).sort_values(order, kind="mergesort").head(limit)
                      .reset_index(drop=True) if len(rows) > 1 else (rows[0] if rows else counted[0][1]))
            found[check] = (sum(n for n, _ in counted), merged)
        return cls(rows_in=sum(p.rows_in for p in parts), found=found, with_date=sum(p.with_date for p in parts),
                   emptied=sum(p.emptied for p in parts), customers=sum(p.customers for p in parts),
                   buyers=sum(p.buyers for p in parts))


def customer_facts(customers_in: pd.DataFrame | None, buyers: pd.Series, as_of: pd.Timestamp | None,
                   settings: AuditSettings, limit: int | None = None) -> tuple[CustomerFacts | None, pd.DataFrame | None]:
    """The :class:`CustomerFacts` of a customers table (:func:`_canonical`'s, all of it or a part with every row
    of its customers) and ``buyers`` (the sorted customer ids of the clean lines among them), and its clean rows:
    customers_clean = the table ∪ ``buyers``, sorted by id, implausible birth years (see :func:`birth_year_bounds`)
    emptied. ``limit``: offending rows kept per check (default :func:`segkit.data.auditfacts.row_limit`).
    (None, None) without a customers table."""
    if customers_in is None:
        return None, None
    limit = row_limit(settings) if limit is None else limit
    no_id = customers_in["customer_id"].isna()
    dup_id = customers_in["customer_id"].duplicated(keep="first") & ~no_id
    signup = customers_in["signup_date"] if "signup_date" in customers_in else pd.Series(pd.NaT, index=customers_in.index)
    late = ((signup >= as_of) if as_of is not None else signup.notna() & False).fillna(False).astype(bool)
    years = customers_in["birth_year"] if "birth_year" in customers_in else pd.Series(pd.NA, index=customers_in.index)
    if as_of is None:
        odd_year = pd.Series(False, index=customers_in.index)
    else:
        low, high = birth_year_bounds(as_of, settings)
        odd_year = ((years < low) | (years > high)).fillna(False).astype(bool)
    kept = ~no_id & ~dup_id
    customers = customers_in.loc[kept]
    emptied = odd_year.loc[customers.index]
    if emptied.any():
        customers = customers.assign(birth_year=customers["birth_year"].mask(emptied))
    new_buyers = buyers[~_isin(buyers, customers["customer_id"])]
    customers = pd.concat([customers.drop(columns=_ROW), pd.DataFrame({"customer_id": new_buyers})], ignore_index=True)
    customers = _with_all_columns(customers, CUSTOMERS).sort_values("customer_id", kind="mergesort", ignore_index=True)
    prospects = ~_isin(customers["customer_id"], buyers)
    formula = formula_cells(customers["customer_id"])
    found = {
        "customers_without_id": (int(no_id.sum()), customers_in[no_id].head(limit)),
        "duplicate_customer_ids": (int(dup_id.sum()), customers_in[_isin(customers_in["customer_id"],
                                                                         customers_in.loc[dup_id, "customer_id"])].head(limit)),
        "signup_after_as_of": (int(late.sum()), customers_in[late].head(limit)),
        "implausible_birth_year": (int(odd_year.sum()), customers_in[odd_year].head(limit)),
        "buyers_not_in_customers": (len(new_buyers), pd.DataFrame({"customer_id": new_buyers}).head(limit)),
        "customers_without_orders": (int(prospects.sum()), customers[prospects].head(limit)),
        "formula_like_ids": (int(formula.sum()), customers[formula].head(limit)),
    }
    facts = CustomerFacts(rows_in=len(customers_in), found=found, with_date=int(signup.notna().sum()),
                          emptied=int(emptied.sum()), customers=len(customers), buyers=len(buyers))
    return facts, customers


def derived_customer_facts(derived: pd.DataFrame, settings: AuditSettings,
                           limit: int | None = None) -> tuple[CustomerFacts, pd.DataFrame]:
    """The :class:`CustomerFacts` and clean rows of the customers of a run without a customers table: ``derived``
    (:func:`segkit.data.engine.derived_customers_table`, all of it or a part) holds one row per buyer, so nothing
    is dropped or emptied and no customer is without orders; customers_clean = ``derived`` with every canonical
    column, sorted by id. ``limit``: offending rows kept per check (default :func:`row_limit`)."""
    limit = row_limit(settings) if limit is None else limit
    customers = _with_all_columns(derived, CUSTOMERS).sort_values("customer_id", kind="mergesort", ignore_index=True)
    formula = formula_cells(customers["customer_id"])
    found = {"customers_without_orders": (0, customers.head(0)),
             "formula_like_ids": (int(formula.sum()), customers[formula].head(limit))}
    return CustomerFacts(rows_in=0, found=found, with_date=0, emptied=0, customers=len(customers),
                         buyers=len(customers)), customers


def _report_customers(facts: CustomerFacts | None, buyers: int, col: _Collector, as_of: pd.Timestamp | None) -> None:
    """Findings and cleaning rules of the customers table from its :class:`CustomerFacts` (None: the customers
    were derived from the transactions, ``buyers`` of them)."""
    if facts is None:
        col.rule("customers derived from transactions (no customers file)", "customers", "added", buyers)
        return
    n_cust = facts.rows_in
    found = facts.found
    for check, note in (("customers_without_id", "dropped."), ("duplicate_customer_ids", "the first row is kept.")):
        col.add(check, "customers", found[check][0], n_cust, note, rows=found[check][1])
    late, rows = found["signup_after_as_of"]
    every = ("that is every customer with a signup date, so as_of or the date format is probably wrong; "
             if late and late == facts.with_date else "")
    col.add("signup_after_as_of", "customers", late, n_cust,
            f"as_of = {format_value(as_of)}; {every}kept as given (not yet customers on as_of).", rows=rows)
    note = ""
    if as_of is not None:
        low, high = birth_year_bounds(as_of, col.settings)
        note = (f"outside {low}–{high} (ages {col.settings.birth_year_min_age}–{col.settings.birth_year_max_age} on "
                f"as_of); treated as unknown (emptied in customers_clean).")
    odd, rows = found["implausible_birth_year"]
    col.add("implausible_birth_year", "customers", odd, n_cust, note, rows=rows,
            examples=_examples_text(rows, ("customer_id", "birth_year"), col.settings))
    col.rule("customers without customer id", "customers", "dropped", found["customers_without_id"][0])
    col.rule("repeated customer ids (first kept)", "customers", "dropped", found["duplicate_customer_ids"][0])
    col.rule("implausible birth years emptied (unknown)", "customers", "emptied", facts.emptied)
    new, rows = found["buyers_not_in_customers"]
    col.add("buyers_not_in_customers", "customers", new, buyers, "added with empty attributes.", rows=rows,
            examples="")
    col.rule("buyers missing from the customers table added", "customers", "added", new)


def _report_customer_ids(found: Mapping[str, tuple[int, pd.DataFrame]], customers: int, col: _Collector) -> None:
    """Findings on the clean customers: without orders, and ids that CSV files of the run neutralise with a
    leading ``'`` (:func:`segkit.core.escaping.neutralise_formula`), so they read differently there."""
    count, rows = found["customers_without_orders"]
    col.add("customers_without_orders", "customers", count, customers, "kept.", rows=rows, examples="")
    count, rows = found["formula_like_ids"]
    col.add("formula_like_ids", "customers", count, customers,
            "kept; in the CSV files of the run they start with ' (spreadsheet-safe).", rows=rows,
            examples=_examples_text(rows, ("customer_id",), col.settings))


def _clean_customers(customers_in: pd.DataFrame | None, buyers: pd.Series,
                     derive: Callable[[], pd.DataFrame], col: _Collector,
                     as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """customers_clean = customers table ∪ ``buyers`` (sorted ids of the clean transactions);
    without a customers table, ``derive()`` builds it from the transactions (:func:`derived_customer_facts`).
    Implausible birth years (see :func:`birth_year_bounds`) are emptied."""
    facts, customers = customer_facts(customers_in, buyers, as_of, col.settings)
    _report_customers(facts, len(buyers), col, as_of)
    if facts is None:
        facts, customers = derived_customer_facts(derive(), col.settings)
    _report_customer_ids(facts.found, len(customers), col)
    return customers


@dataclass
class CampaignAuditFacts:
    """What the campaign checks and cleaning rules of :func:`audit_log` count, of all the campaign rows or of a
    part holding every row of its customers (:func:`campaign_audit_facts`); disjoint parts merge (:meth:`merge`).

    Attributes
    ----------
    rows_in : int
        Campaign rows (canonical).
    found : dict
        Check -> (count, its first offending rows in input order, at most ``limit``).
    converting : int
        Rows with negative revenue that converted.
    unknown_dropped : int
        Rows of unknown customers dropped after the repeated pairs.
    arms : DataFrame
        ``campaign_id, arm, customers``: clean rows per campaign and arm.
    rows_clean, customer_ids : int
        Clean rows, and distinct customers among them.
    campaigns : set of str
        The clean rows' campaign ids.
    first_sent, last_sent : Timestamp or NaT
        The clean rows' first and last ``sent_at``.
    """

    rows_in: int
    found: dict[str, tuple[int, pd.DataFrame]]
    converting: int
    unknown_dropped: int
    arms: pd.DataFrame
    rows_clean: int
    customer_ids: int
    campaigns: set
    first_sent: Any = pd.NaT
    last_sent: Any = pd.NaT

    CHECKS = ("campaign_duplicates", "unknown_campaign_customers", "negative_campaign_revenue")

    @classmethod
    def merge(cls, parts: Sequence["CampaignAuditFacts"], limit: int) -> "CampaignAuditFacts":
        """The facts of all the rows of ``parts`` (disjoint parts, each customer's rows in one)."""
        found = {check: (sum(p.found[check][0] for p in parts), _first_rows([p.found[check][1] for p in parts],
                                                                            _ROW, limit)) for check in cls.CHECKS}
        arms = [p.arms for p in parts if len(p.arms)]
        counts = (pd.concat(arms, ignore_index=True).groupby(["campaign_id", "arm"], dropna=False, observed=True)
                  ["customers"].sum() if arms else parts[0].arms.set_index(["campaign_id", "arm"])["customers"])
        sent = [t for p in parts for t in (p.first_sent, p.last_sent) if not pd.isna(t)]
        return cls(rows_in=sum(p.rows_in for p in parts), found=found, converting=sum(p.converting for p in parts),
                   unknown_dropped=sum(p.unknown_dropped for p in parts), arms=counts.rename("customers").reset_index(),
                   rows_clean=sum(p.rows_clean for p in parts), customer_ids=sum(p.customer_ids for p in parts),
                   campaigns=set().union(*(p.campaigns for p in parts)),
                   first_sent=min(sent) if sent else pd.NaT, last_sent=max(sent) if sent else pd.NaT)


def campaign_audit_facts(campaign_in: pd.DataFrame, customer_ids: pd.Series | None, settings: AuditSettings,
                         limit: int | None = None) -> tuple[CampaignAuditFacts, pd.DataFrame]:
    """The :class:`CampaignAuditFacts` of campaign rows (:func:`_canonical`'s, all or a part with every row of its
    customers) and their clean rows: one row per (campaign, customer), known customers only (``customer_ids``: the
    clean customers' ids, at least those the rows name), ``_row`` kept."""
    limit = row_limit(settings) if limit is None else limit
    pair_dup = campaign_in.duplicated(["campaign_id", "customer_id"], keep="first") & campaign_in["customer_id"].notna()
    unknown = pd.Series(~_isin(campaign_in["customer_id"], customer_ids), index=campaign_in.index)
    revenue = campaign_in["revenue"] if "revenue" in campaign_in else pd.Series(np.nan, index=campaign_in.index)
    negative = (revenue < 0).fillna(False).astype(bool)
    converted = campaign_in["converted"] if "converted" in campaign_in else pd.Series(pd.NA, index=campaign_in.index)
    clean = campaign_in[~pair_dup & ~unknown]
    counts = clean.groupby(["campaign_id", "arm"], dropna=False, observed=True).size().rename("customers")
    sent = clean["sent_at"] if "sent_at" in clean else pd.Series(dtype="datetime64[ns]")
    facts = CampaignAuditFacts(
        rows_in=len(campaign_in),
        found={"campaign_duplicates": (int(pair_dup.sum()), campaign_in[pair_dup].head(limit)),
               "unknown_campaign_customers": (int(unknown.sum()), campaign_in[unknown].head(limit)),
               "negative_campaign_revenue": (int(negative.sum()), campaign_in[negative].head(limit))},
        converting=int((negative & converted.fillna(False).astype(bool)).sum()),
        unknown_dropped=int((unknown & ~pair_dup).sum()), arms=counts.reset_index(), rows_clean=len(clean),
        customer_ids=int(clean["customer_id"].nunique()), campaigns=set(clean["campaign_id"].dropna().astype(str)),
        first_sent=sent.min(), last_sent=sent.max())
    return facts, clean


def _report_campaign(facts: CampaignAuditFacts, col: _Collector) -> None:
    """Findings and cleaning rules of the campaign rows from their :class:`CampaignAuditFacts`."""
    n_camp, found = facts.rows_in, facts.found
    col.add("campaign_duplicates", "campaign", found["campaign_duplicates"][0], n_camp, "the first row is kept.",
            rows=found["campaign_duplicates"][1])
    col.add("unknown_campaign_customers", "campaign", found["unknown_campaign_customers"][0], n_camp,
            "cannot be joined to segments; dropped.", rows=found["unknown_campaign_customers"][1])
    count, rows = found["negative_campaign_revenue"]
    col.add("negative_campaign_revenue", "campaign", count, n_camp,
            f"{facts.converting:,} of them on converting rows; kept in campaign_clean as given, treated as unknown by "
            "the campaign evaluation: left out of revenue per recipient and incremental revenue (not counted as "
            "0 nor as a loss).", rows=rows,
            examples=_examples_text(rows, ("campaign_id", "customer_id", "arm", "converted", "revenue"), col.settings))
    col.rule("repeated (campaign, customer) rows (first kept)", "campaign", "dropped", found["campaign_duplicates"][0])
    col.rule("campaign rows of unknown customers", "campaign", "dropped", facts.unknown_dropped)


def _clean_campaign(campaign_in: pd.DataFrame | None, customer_ids: pd.Series | None,
                    col: _Collector) -> tuple[pd.DataFrame | None, CampaignAuditFacts | None]:
    """campaign_clean: one row per (campaign, customer), known customers only (``customer_ids``: the clean
    customers' ids, at least those the campaign names), and its facts."""
    if campaign_in is None:
        return None, None
    facts, clean = campaign_audit_facts(campaign_in, customer_ids, col.settings)
    _report_campaign(facts, col)
    return clean.drop(columns=_ROW).reset_index(drop=True), facts


# ----------------------------------------------------------------------------- customers on Spark
_KEY, _BUYER = "_segkit_key", "_segkit_buyer"


def _partitions(frame: Any) -> int:
    return int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions"))


def _collected_parts(frame: Any, part: Callable[[pd.DataFrame], Any]) -> list[Any]:
    """``part`` of every partition of ``frame`` (its rows as one pandas frame), run on the executors; its
    results (bounded: counts and a few rows) reach the driver pickled (:func:`segkit.data.bounded.merged_parts`)."""
    return merged_parts(frame, lambda rows: [part(rows)], lambda lists: [found for each in lists for found in each],
                        whole=True)


class SparkSideFacts:
    """A customers or campaign table checked on the executors (``engine.kind: spark``): :func:`audit_log`'s input
    facts of it (control characters, empty cells, countries), computed per partition by the pandas function the
    one-machine audit applies to the whole table (:func:`_canonical`) and merged here.

    The rows are partitioned by their clean ``customer_id`` (without control characters, stripped: every row of
    a customer in one partition, so repeated ids, repeated (campaign, customer) pairs and ids that control
    characters made equal are seen) and held. Ids of other columns made equal by removing control characters
    (a campaign id) are counted from the distinct values of each partition (bounded: the campaigns).
    """

    def __init__(self, table: SparkSideTable, spec: TableSpec, settings: AuditSettings):
        from pyspark.sql import types as T

        from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet
        from segkit.data.spark_ranks import executor_errors

        self.settings, self.spec = settings, spec
        self.meta = {"dtypes": table.dtypes, "attrs": table.attrs}
        meta, limit = self.meta, row_limit(settings)
        absent = set(table.attrs.get("absent_columns", ()))
        #: the columns of the canonical table (:func:`_canonical`): those the input had (``delivered`` always)
        self.columns = [c for c in {**spec.dtypes, **spec.extra} if c in table.dtypes and (c not in absent
                                                                                          or c == "delivered")]

        def keyed(batches: Any) -> Any:
            for batch in batches:
                ordered = batch.sort_values("_row", kind="stable").reset_index(drop=True)
                ids = _without_control_characters(typed_side_rows(ordered, meta)["customer_id"])[0]
                key = ids.str.strip().replace("", pd.NA)
                yield frame_for_arrow(ordered.assign(**{_KEY: key.to_numpy(dtype=object, na_value=None)}))

        schema = T.StructType([*table.rows.schema.fields, T.StructField(_KEY, T.StringType(), True)])
        with pandas_warnings_quiet(), executor_errors():
            self.rows = table.rows.mapInPandas(keyed, schema).repartition(_partitions(table.rows), _KEY) \
                .localCheckpoint(eager=True)
        other_ids = [c for c in self.columns if c.endswith("_id") and c != "customer_id"]

        def inputs(rows: pd.DataFrame) -> dict[str, Any]:
            typed = typed_side_rows(rows, meta)
            table_in, (controls, changed) = _canonical(typed, spec)
            columns = [c for c in table_in.columns if c != _ROW]
            empty = table_in[columns].isna()
            values = {}
            for column in other_ids:  # distinct clean values with and without control characters
                had = _without_control_characters(typed[column].astype("string"))[1].to_numpy()
                values[column] = (set(table_in.loc[had, column].dropna()), set(table_in.loc[~had, column].dropna()))
            return {"rows": len(table_in), "controls": controls, "changed": changed, "columns": columns,
                    "missing": empty.sum().to_numpy(dtype="int64"), "values": values,
                    "null_rows": {c: table_in[empty[c].to_numpy()].head(limit) for c in columns},
                    "countries": (table_in["country"].dropna().astype("string").value_counts(sort=False)
                                  if "country" in columns else None)}

        parts = _collected_parts(self.rows, inputs)
        self.rows_in = sum(p["rows"] for p in parts)
        columns = parts[0]["columns"]
        counts = np.sum([p["missing"] for p in parts], axis=0).astype("int64")
        self.missing = pd.DataFrame({"table": spec.name, "column": columns, "missing": counts,
                                     "share": counts.astype("float64") / self.rows_in})
        self.null_rows = {c: _first_rows([p["null_rows"][c] for p in parts], _ROW, limit) for c in columns}
        found = [p["countries"] for p in parts if p["countries"] is not None]
        #: customers per country value (None without a country column): merged counts, never a row per customer
        self.country_counts = pd.concat(found).groupby(level=0, sort=True).sum() if found else None
        facts: dict[str, list[ControlCharacterFacts]] = {}
        for part in parts:
            for fact in part["controls"]:
                facts.setdefault(fact.column, []).append(fact)

        def collisions(column: str, found: Sequence[ControlCharacterFacts]) -> int:
            if column not in other_ids:  # the partitioning key: each value in one partition
                return sum(f.collisions for f in found)
            cleaned = set().union(*(p["values"][column][0] for p in parts))
            return len(cleaned & set().union(*(p["values"][column][1] for p in parts)))

        order = list({**spec.dtypes, **spec.extra})
        self.controls = ([ControlCharacterFacts(spec.name, column, sum(f.count for f in found),
                                                _first_rows([f.rows for f in found], _ROW, CONTROL_ROWS),
                                                collisions(column, found))
                          for column, found in sorted(facts.items(), key=lambda item: order.index(item[0]))],
                         sum(p["changed"] for p in parts))

    def _with_ids(self, ids: Any) -> Any:
        """The held rows and the rows of ``ids`` (a Spark frame of ``customer_id``: buyers, clean customers), marked
        :data:`_BUYER`, partitioned by customer id together."""
        from pyspark.sql import functions as F

        rows = self.rows.withColumn(_BUYER, F.lit(False))
        ids = ids.select(F.col("customer_id").cast("string").alias(_KEY), F.lit(True).alias(_BUYER))
        return rows.unionByName(ids, allowMissingColumns=True).repartition(_partitions(self.rows), _KEY) \
            .localCheckpoint(eager=True)



def _split_ids(frame: pd.DataFrame, meta: Mapping[str, Any], spec: TableSpec) -> tuple[pd.DataFrame, pd.Series]:
    """A partition of :meth:`SparkSideFacts._with_ids`: the table's rows (:func:`_canonical`) and the ids (sorted)."""
    is_id = frame[_BUYER].to_numpy(dtype=bool)
    table_in, _ = _canonical(typed_side_rows(frame[~is_id], meta), spec)
    ids = pd.Series(frame.loc[is_id, _KEY].to_numpy(dtype=object), dtype="string") \
        .sort_values(kind="mergesort", ignore_index=True)
    return table_in, ids


class SparkCustomers(SparkSideFacts):
    """The customers table on the executors (:class:`SparkSideFacts`) and its cleaning (:meth:`clean`)."""

    def __init__(self, table: SparkSideTable, settings: AuditSettings):
        super().__init__(table, CUSTOMERS, settings)

    def clean(self, buyers: Any, as_of: pd.Timestamp | None) -> "SparkCustomerTable":
        """The clean customers (:func:`customer_facts` per partition, with ``buyers``: a Spark frame of the clean
        lines' distinct ``customer_id``), held on the executors, and their merged :class:`CustomerFacts`."""
        settings, limit, meta = self.settings, row_limit(self.settings), self.meta
        both = self._with_ids(buyers)

        def part(frame: pd.DataFrame) -> tuple[CustomerFacts, pd.DataFrame]:
            customers_in, buyer_ids = _split_ids(frame, meta, CUSTOMERS)
            return customer_facts(customers_in, buyer_ids, as_of, settings, limit)

        merged = CustomerFacts.merge(_collected_parts(both, lambda frame: part(frame)[0]), limit)
        table = _held_rows(both, lambda frame: part(frame)[1], CUSTOMERS.dtypes)
        return SparkCustomerTable(table, merged)


def _derived_customers_on_spark(log: TransactionLog,
                                settings: AuditSettings) -> tuple["SparkCustomerTable", pd.Series]:
    """The customers of a Spark audit without a customers table, derived from the clean lines on the executors:
    ``log``'s :meth:`~segkit.data.engine.TransactionLog.derived_customers_sql` run by Spark (one row per buyer),
    typed (:func:`segkit.data.engine.derived_customers_table`) and checked (:func:`derived_customer_facts`) per
    partition, held there; and how many of them have each country value (for :func:`shop_countries`). What
    reaches the driver: per partition its facts (counts, a few rows) and country counts."""
    limit = row_limit(settings)
    derived = log.con.sql(log.derived_customers_sql()).frame.localCheckpoint(eager=True)

    def part(frame: pd.DataFrame) -> tuple[CustomerFacts, pd.DataFrame]:
        return derived_customer_facts(derived_customers_table(frame), settings, limit)

    def facts(frame: pd.DataFrame) -> tuple[CustomerFacts, pd.Series]:
        found, customers = part(frame)
        return found, customers["country"].dropna().astype("string").value_counts(sort=False)

    # the facts of no customer first: those of a log without buyers, and every check's (empty) rows
    parts = [facts(pd.DataFrame({"customer_id": pd.Series([], dtype="string")}))]
    parts += _collected_parts(derived, facts)
    merged = CustomerFacts.merge([found for found, _ in parts], limit)
    countries = pd.concat([counts for _, counts in parts]).groupby(level=0, sort=True).sum()
    table = _held_rows(derived, lambda frame: part(frame)[1], CUSTOMERS.dtypes)
    return SparkCustomerTable(table, merged), countries


class SparkCampaign(SparkSideFacts):
    """The campaign table on the executors (:class:`SparkSideFacts`) and its cleaning (:meth:`clean`)."""

    def __init__(self, table: SparkSideTable, settings: AuditSettings):
        super().__init__(table, CAMPAIGN, settings)

    def clean(self, customer_ids: Any) -> "SparkCampaignTable":
        """The clean campaign rows (:func:`campaign_audit_facts` per partition, with ``customer_ids``: a Spark frame
        of the clean customers' ``customer_id``), held on the executors with ``_row``, and their merged
        :class:`CampaignAuditFacts`."""
        settings, limit, meta = self.settings, row_limit(self.settings), self.meta
        both = self._with_ids(customer_ids)

        def part(frame: pd.DataFrame) -> tuple[CampaignAuditFacts, pd.DataFrame]:
            campaign_in, ids = _split_ids(frame, meta, CAMPAIGN)
            return campaign_audit_facts(campaign_in, ids, settings, limit)

        merged = CampaignAuditFacts.merge(_collected_parts(both, lambda frame: part(frame)[0]), limit)
        dtypes = {**{c: CAMPAIGN.known[c] for c in self.columns}, _ROW: "int64"}
        table = _held_rows(both, lambda frame: part(frame)[1], dtypes)
        return SparkCampaignTable(table, merged)


def _held_rows(frame: Any, rows: Callable[[pd.DataFrame], pd.DataFrame], dtypes: Mapping[str, str]) -> Any:
    """``rows`` of every partition of ``frame`` (a typed pandas table with ``dtypes``), held on the executors."""
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    def run(batches: Any) -> Any:
        found = partition_rows(batches)
        if found is not None:
            yield arrow_frame(rows(found), dtypes)

    with pandas_warnings_quiet(), executor_errors():
        return frame.mapInPandas(run, spark_schema(dtypes)).localCheckpoint(eager=True)


def _first_rows(parts: Sequence[pd.DataFrame], order: str, limit: int) -> pd.DataFrame:
    """The first ``limit`` rows of ``parts`` (each in ``order`` already) by ``order``."""
    found = [p for p in parts if len(p)]
    if not found:
        return parts[0].head(0).reset_index(drop=True)
    if len(found) == 1:
        return found[0].head(limit).reset_index(drop=True)
    return pd.concat(found, ignore_index=True).sort_values(order, kind="mergesort").head(limit).reset_index(drop=True)


@dataclass
class SparkCustomerTable:
    """The clean customers of a Spark audit (:meth:`SparkCustomers.clean`), held on the executors.

    Attributes
    ----------
    rows : pyspark.sql.DataFrame
        customers_clean's columns (canonical order, Spark types of the canonical dtypes).
    facts : CustomerFacts
        Of the whole table.
    """

    rows: Any
    facts: CustomerFacts

    def known_ids(self, ids: pd.Series) -> pd.Series:
        """Those of ``ids`` (e.g. the campaign's customer ids) that are clean customers: joined on the executors,
        only ids among ``ids`` reach the driver."""
        wanted = pd.DataFrame({"customer_id": pd.Series(ids.dropna().unique(), dtype=object)})
        if wanted.empty:
            return pd.Series([], dtype="string")
        from segkit.data.spark import pandas_warnings_quiet

        with pandas_warnings_quiet():
            asked = self.rows.sparkSession.createDataFrame(wanted, "customer_id string")
            found = self.rows.select("customer_id").join(asked, "customer_id", "left_semi").collect()
        return pd.Series([r["customer_id"] for r in found], dtype="string")

    def write(self, dest: str | Path) -> Path:
        """``customers_clean.parquet`` as a Parquet dataset: ``part-00000.parquet`` … in ``customer_id`` order (each
        part sorted), the rows and columns of the one-machine file (times in microseconds)."""
        return _write_dataset(self.rows, "customer_id", dest)


@dataclass
class SparkCampaignTable:
    """The clean campaign rows of a Spark audit (:meth:`SparkCampaign.clean`), held on the executors.

    Attributes
    ----------
    rows : pyspark.sql.DataFrame
        campaign_clean's columns (those of the input, canonical order and types) and ``_row``.
    facts : CampaignAuditFacts
        Of the whole table.
    """

    rows: Any
    facts: CampaignAuditFacts

    def write(self, dest: str | Path) -> Path:
        """``campaign_clean.parquet`` as a Parquet dataset: ``part-00000.parquet`` … in input row order, the rows and
        columns of the one-machine file (times in microseconds)."""
        return _write_dataset(self.rows, _ROW, dest, drop=(_ROW,))


def _write_dataset(rows: Any, order: str, dest: str | Path, drop: Sequence[str] = ()) -> Path:
    """``rows`` as the Parquet dataset ``dest``: range partitions by ``order``, each sorted, written to a sibling
    folder and published in place (:func:`segkit.core.files.publish_parquet_parts`: ``part-00000.parquet`` …)."""
    import os
    import shutil

    from segkit.core.files import publish_parquet_parts

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():  # a file of a run on another engine
        dest.unlink()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        rows.repartitionByRange(_partitions(rows), order).sortWithinPartitions(order).drop(*drop) \
            .write.mode("overwrite").parquet(str(tmp))
        publish_parquet_parts(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# ----------------------------------------------------------------------------- the audit
def run_audit(
    tables: Mapping[str, pd.DataFrame | None],
    as_of: str | pd.Timestamp | None = None,
    config: Mapping[str, Any] | None = None,
) -> AuditResult:
    """Audit the input tables and clean them, the order lines in DuckDB (:func:`audit_log`).

    Parameters
    ----------
    tables : mapping
        ``transactions`` (required), ``customers`` and ``campaign`` (None when absent): frames as
        returned by :func:`segkit.data.io.load_inputs`, or built by hand with canonical column
        names. The transactions frame is handed to :class:`segkit.data.engine.TransactionLog`,
        which types its text cells by the rules it applies to files.
    as_of : str or Timestamp, optional
        Analysis date ``YYYY-MM-DD``; orders on or after it are dropped. None = the day after the
        last order that is not in the future.
    config : mapping, optional
        Merged configuration (sections ``audit``, ``io``, ``privacy``, ``engine``); None = shipped
        defaults.

    Returns
    -------
    AuditResult
        With the clean lines in memory (``transactions``); ``engine`` is ``"pandas"``.

    Raises
    ------
    DataError
        A table lacks a required column or a cell cannot take its canonical type.
    ConfigError
        An invalid ``audit`` setting or ``as_of``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "b"], "order_date": pd.to_datetime(["2024-01-01", "2024-01-09"]),
    ...                    "amount": [10.0, -3.0]})
    >>> r = run_audit({"transactions": tx}, as_of="2024-01-05")
    >>> r.cleaning_rules.set_index("rule").loc["orders on or after as_of", "rows_affected"]
    np.int64(1)
    """
    if config is None:
        config = load_config()
    AuditSettings.from_config(config)
    if tables.get("transactions") is None:
        raise DataError("No transactions table: set data.transactions in the config to your order-lines file.")
    with TransactionLog(tables["transactions"], config) as log:
        result = audit_log(log, as_of, customers=tables.get("customers"), campaign=tables.get("campaign"))
        result.transactions = log.clean_frame()
    result.engine = "pandas"
    if result.status != "errors":
        result.headline = headline_numbers(result, OrderLines(result.transactions).headline(), config)
    return result


def audit_log(log: TransactionLog, as_of: str | pd.Timestamp | None = None, customers: pd.DataFrame | None = None,
              campaign: pd.DataFrame | None = None) -> AuditResult:
    """The audit of the order lines staged in ``log`` (plus the small ``customers``/``campaign`` frames).

    ``log`` (:class:`segkit.data.engine.TransactionLog`) computes the facts of the order lines in
    DuckDB; this function turns them into findings, cleaning rules and counts, and cleans the
    customers and campaign tables (pandas, customer-level). The result's ``transactions`` is None
    (the clean lines stay in DuckDB: :meth:`TransactionLog.write_clean` writes them,
    :meth:`TransactionLog.clean_frame` reads them into memory) and ``order_values``/``quantities``
    hold at most ``engine.plot_sample`` rows. On Spark (a :class:`~segkit.data.spark_audit.SparkTransactionLog`),
    tables read by :func:`~segkit.data.spark_audit.spark_side_table` and, without a customers table, the
    customers derived from the lines stay on the executors: ``customers``/``campaign`` are then None and
    ``customer_rows``/``campaign_rows`` hold them.

    Parameters
    ----------
    log : TransactionLog
        The staged order lines (a file, a folder or glob of files, or a frame).
    as_of : str or Timestamp, optional
        Analysis date; None = the day after the last order that is not in the future.
    customers, campaign : DataFrame, optional
        Customers / campaign tables (:func:`segkit.data.io.load_table`), as for :func:`run_audit`.

    Returns
    -------
    AuditResult

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01,10\\na,1,2024-01-01,10\\n,2,2024-01-02,5\\n")
    >>> with TransactionLog(p) as log:
    ...     result = audit_log(log)
    >>> result.findings[["check", "count"]].values.tolist(), result.counts["transactions_rows_clean"]
    ([['exact_duplicates', 1], ['guest_checkouts', 1]], 1)
    """
    settings = log.settings
    col = _Collector(settings)
    on_spark = isinstance(customers, SparkSideTable)
    held = SparkCustomers(customers, settings) if on_spark else None  # checked per partition on the executors
    # no customers table on Spark: the customers derived from the clean lines stay on the executors too
    derive_on_spark = customers is None and isinstance(log, SparkTransactionLog)
    held_campaign = SparkCampaign(campaign, settings) if isinstance(campaign, SparkSideTable) else None
    customers_in, customer_controls = (None, held.controls) if held is not None else _canonical(customers, CUSTOMERS)
    campaign_in, campaign_controls = (None, held_campaign.controls) if held_campaign is not None \
        else _canonical(campaign, CAMPAIGN)
    others = {"customers": customers_in, "campaign": campaign_in}
    spark_sides = {"customers": held, "campaign": held_campaign}
    sizes = {"transactions": log.n_rows}
    for table, frame in others.items():
        if spark_sides[table] is not None or frame is not None:
            sizes[table] = spark_sides[table].rows_in if spark_sides[table] is not None else len(frame)
    controls = {"transactions": log.remove_control_characters(), "customers": customer_controls,
                "campaign": campaign_controls}
    _report_control_characters({t: c for t, c in controls.items() if t in sizes}, sizes, col)
    columns, counts = log.missing_counts()
    part = pd.DataFrame({"table": "transactions", "column": columns, "missing": np.asarray(counts, dtype="int64"),
                         "share": np.asarray(counts, dtype="float64") / log.n_rows if log.n_rows else np.nan})
    rest = missing_values(others)
    if held is not None or held_campaign is not None:  # the tables in the order missing_values lists them
        found = [side.missing if side is not None else missing_values({table: others[table]})
                 for table, side in spark_sides.items()]
        rest = pd.concat([r for r in found if len(r)] or [rest], ignore_index=True).astype(
            {"table": "string", "column": "string"})
    missing = pd.concat([part] + ([rest] if len(rest) else []), ignore_index=True).astype(
        {"table": "string", "column": "string"})

    def rows_of(table: str, column: str) -> pd.DataFrame:
        if table == "transactions":
            return log.null_rows(column)
        if spark_sides[table] is not None:
            return spark_sides[table].null_rows[column]
        frame = others[table]
        return frame[frame[column].isna()]

    _check_missing_values(missing, sizes, rows_of, col)
    facts = log.input_facts(as_of)
    _report_input(facts, settings, col)
    if log.status_facts is not None:
        _report_order_statuses(log.status_facts, col)
        _report_currency(log.status_facts, log.config, col)
    clean = log.clean_facts()
    if held is not None or derive_on_spark:  # the buyers stay on the executors too
        customer_table, country_counts = _derived_customers_on_spark(log, settings) if held is None \
            else (None, held.country_counts)
        countries = shop_countries(settings.holiday_countries, counts=country_counts)
        found = _report_clean(clean, log.n_rows, settings, col, countries)
        if held is not None:
            buyers_rows = log.con.sql("SELECT DISTINCT customer_id FROM clean WHERE customer_id IS NOT NULL").frame
            customer_table = held.clean(buyers_rows, facts.as_of)
        _report_customers(None if held is None else customer_table.facts, customer_table.facts.buyers, col,
                          facts.as_of)
        _report_customer_ids(customer_table.facts.found, customer_table.facts.customers, col)
        n_buyers, n_customers = customer_table.facts.buyers, customer_table.facts.customers
        prospects = customer_table.facts.found["customers_without_orders"][0]
        customers = None
        known_ids = None if campaign_in is None else customer_table.known_ids(campaign_in["customer_id"])
        clean_ids = customer_table.rows.select("customer_id")
    else:
        buyers = log.buyers()
        derived = log.derived_customers(buyers) if customers_in is None else None  # with the lines' country
        known = customers_in if customers_in is not None else derived
        countries = shop_countries(settings.holiday_countries, known["country"] if "country" in known else None)
        found = _report_clean(clean, log.n_rows, settings, col, countries)
        customers = _clean_customers(customers_in, buyers, lambda: derived, col, facts.as_of)
        customer_table = None
        n_buyers, n_customers = len(buyers), len(customers)
        prospects = int((~_isin(customers["customer_id"], buyers)).sum())
        known_ids = customers["customer_id"]
        clean_ids = None
    campaign_table = None
    if held_campaign is not None:  # cleaned on the executors, against the clean customers' ids there
        if clean_ids is None:  # customers cleaned here (a pandas customers table, or lines audited by DuckDB)
            from segkit.data.spark import pandas_warnings_quiet

            with pandas_warnings_quiet():
                clean_ids = held_campaign.rows.sparkSession.createDataFrame(
                    pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(dtype=object)}),
                    "customer_id string")
        campaign_table = held_campaign.clean(clean_ids)
        _report_campaign(campaign_table.facts, col)
        campaign_clean, campaign_facts = None, campaign_table.facts
        arms = arm_shares(campaign_facts.arms) if len(campaign_facts.arms) else arm_balance(None)
    else:
        campaign_clean, campaign_facts = _clean_campaign(campaign_in, known_ids, col)
        arms = arm_balance(campaign_clean)
    if not arms.empty:
        text = "; ".join(
            f"{cid}: " + ", ".join(f"{a} {n:,} ({percent_text(s)})" for a, n, s in zip(g["arm"], g["customers"], g["share"]))
            for cid, g in arms.groupby("campaign_id", sort=True))
        col.add("campaign_arm_balance", "campaign", int(arms["campaign_id"].nunique()), None,
                f"customers per arm: {text}.", rows=arms, examples="")
    counts = {
        "transactions_rows_in": facts.n_rows,
        "transactions_rows_clean": clean.n_clean,
        "orders": log.n_orders,
        "customers": n_customers,
        "buyers": n_buyers,
        "prospects": prospects,
        "return_lines": found["returns"]["return_lines"],
        "days": len(found["daily"]),
        "customers_rows_in": held.rows_in if held is not None else 0 if customers_in is None else len(customers_in),
        "campaign_rows_in": 0 if campaign_facts is None else campaign_facts.rows_in,
        "campaign_rows_clean": 0 if campaign_facts is None else campaign_facts.rows_clean,
        "campaigns": 0 if campaign_facts is None else len(campaign_facts.campaigns),
    }
    return AuditResult(
        findings=col.findings_frame(), cleaning_rules=col.rules_frame(), as_of=facts.as_of, period=log.period,
        counts=counts, transactions=None, customers=customers, campaign=campaign_clean, missing=missing,
        daily=found["daily"], gaps=found["gaps"], returns=found["returns"],
        outlier_rules=found["outlier_rules"], order_values=found["order_values"],
        quantities=found["quantities"], arms=arms, checks=pd.DataFrame(col.checks, columns=["check", "table", "count"]),
        offending=col.offending, engine="duckdb", customer_rows=customer_table, campaign_rows=campaign_table,
        guests={"input_lines": facts.counts["guest_checkouts"], "input_revenue": facts.guest_revenue,
                "lines": facts.dropped["guest_checkouts"], "revenue": facts.guest_dropped_revenue},
    )


def audit_transactions_from_files(
    source: str | Path | Sequence[str | Path],
    config: Mapping[str, Any] | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], pd.Timestamp | None, dict[str, pd.Timestamp | None]]:
    """The transaction audit of the user's file(s) ``source``: :func:`audit_log` without customers
    or campaign tables, as five values.

    Parameters
    ----------
    source : path, glob or list of paths
        The user's transaction file(s) (CSV, Parquet or one Excel workbook; a file, a folder or a
        glob), mapped with the config's ``columns.transactions`` and ``io`` options.
    config : mapping, optional
        Configuration (sections ``columns``, ``io``, ``audit``, ``privacy``, ``engine``); None = defaults.
    as_of : str or Timestamp, optional
        Analysis date; None = the day after the last order that is not in the future.

    Returns
    -------
    (findings, cleaning_rules, counts, as_of, period)
        As the fields of :class:`AuditResult` (customers derived from the transactions).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01,10\\na,1,2024-01-01,10\\n,2,2024-01-02,5\\n")
    >>> findings, rules, counts, as_of, period = audit_transactions_from_files(p)
    >>> findings[["check", "count"]].values.tolist(), counts["transactions_rows_clean"], str(as_of.date())
    ([['exact_duplicates', 1], ['guest_checkouts', 1]], 1, '2024-01-03')
    """
    with TransactionLog(source, config) as log:
        result = audit_log(log, as_of)
    return result.findings, result.cleaning_rules, result.counts, result.as_of, result.period


def audit_inputs(config: Mapping[str, Any], as_of: str | pd.Timestamp | None = None,
                 clean_path: str | Path | None = None,
                 clean_lines: Callable[[Path], OrderLineTables] | None = None,
                 customers_path: str | Path | None = None, campaign_path: str | Path | None = None) -> AuditResult:
    """The whole data audit of a run, from the configured files.

    The transactions (``data.transactions``: a CSV/Parquet file, a folder or glob of them, or an
    Excel workbook) are read and audited by :class:`TransactionLog` (DuckDB), or for ``engine.kind:
    spark`` by :class:`segkit.data.spark_audit.SparkTransactionLog` (also ``s3a://``, ``hdfs://``,
    ``abfss://`` paths and ``table:catalog.schema.name``: :func:`segkit.core.config.data_source`). Customers
    and campaign tables (customer-level) are local files loaded with :mod:`segkit.data.io`; on Spark they may
    also be a URI (``file:`` too: a file, folder or glob) or a table, read by Spark and collected here
    (:func:`segkit.data.spark_audit.load_spark_table`, errors naming the value as written). With ``clean_path`` and no
    error finding, the clean lines are written there (:meth:`TransactionLog.write_clean`). The
    result's ``engine`` is :func:`segkit.data.engine.choose_engine` of the config: how the later
    steps take their order-level tables from the clean lines (recorded in ``audit_summary.json``);
    the audit itself is the same computation on either engine.

    The headline numbers (:func:`headline_numbers`) are the relational core's over the clean lines written,
    read by ``clean_lines(clean_path)``: by default DuckDB (:class:`~segkit.data.engine.OrderLines`, the
    ``engine`` section's memory limit and spill folder), or on ``engine.kind: spark`` Spark
    (:class:`segkit.data.spark.SparkOrderLines` on ``engine.spark``), so that no pass over the lines runs in
    this process; ``segkit run`` passes the run's own reader (``segkit.steps.sources.run_lines``), whose
    relations held on the executors then serve the outlier lookup too.

    On ``engine.kind: spark`` the customers and campaign tables (local files too) stay on the executors: each is
    read, typed and checked per partition (:func:`segkit.data.spark_audit.spark_side_table`: the local reader's
    errors), its findings are counted per partition (:class:`SparkCustomers`, :func:`customer_facts`;
    :class:`SparkCampaign`, :func:`campaign_audit_facts`) and merged here, and with ``customers_path`` /
    ``campaign_path`` and no error finding Spark writes ``customers_clean.parquet`` / ``campaign_clean.parquet``
    there as Parquet datasets; the result's ``customers`` and ``campaign`` are then None and ``customer_rows`` /
    ``campaign_rows`` hold them. Without a customers table, the customers derived from the clean lines
    (:meth:`~segkit.data.engine.TransactionLog.derived_customers_sql`, the query DuckDB runs) are built, checked
    (:func:`derived_customer_facts`) and written the same way, and the campaign is cleaned against their ids there.
    """
    kind = EngineSettings.from_config(config).kind
    # a table or URI only on Spark (ConfigError saying so otherwise)
    sources = {t: data_source(config, t, kind) for t in ("transactions", "customers", "campaign")}
    path = sources["transactions"]
    if path is None:
        source = config.get("_source")
        raise ConfigError(f"data.transactions is not set{f' in {source}' if source else ''}: "
                          "give the path of your transactions file (or folder of files).")
    # audited by Spark where the lines live (issue 17)
    open_log: Callable[..., TransactionLog] = SparkTransactionLog if kind == "spark" else TransactionLog
    try:
        log = open_log(path, config)
    except DataError as exc:
        if isinstance(path, str):  # a table or URI: its errors start with it; say which setting names it
            raise DataError(f"data.transactions: {exc}") from None
        raise
    with log:
        tables = {t: _side_table(config, t, sources[t], kind) for t in ("customers", "campaign")}
        result = audit_log(log, as_of, customers=tables["customers"], campaign=tables["campaign"])
        if clean_path is not None and result.status != "errors":
            log.write_clean(clean_path)
            if result.customer_rows is not None and customers_path is not None:
                result.customer_rows.write(customers_path)
            if result.campaign_rows is not None and campaign_path is not None:
                result.campaign_rows.write(campaign_path)
    result.engine = choose_engine(config)
    if clean_path is not None and result.status != "errors":
        lines = (clean_lines or _engine_lines(config))(Path(clean_path))
        result.headline = headline_numbers(result, lines.headline(), config)
    return result


def _engine_lines(config: Mapping[str, Any]) -> Callable[[Path], OrderLineTables]:
    """How :func:`audit_inputs` reads the clean lines by default: Spark on ``engine.kind: spark``, else DuckDB."""
    engine = EngineSettings.from_config(config)
    if engine.kind == "spark":
        return lambda path: SparkOrderLines(path, engine.spark.master, engine.spark.conf)
    return lambda path: OrderLines(path, memory_limit=engine.memory_limit, temp_directory=engine.temp_directory)


def _side_table(config: Mapping[str, Any], table: str, source: str | Path | None,
                kind: str) -> pd.DataFrame | SparkSideTable | None:
    """The customers or campaign table of a run (None when not given): a local file by :func:`load_table`; on
    Spark, a URI or table (``data.<table>`` as written: any scheme, ``file:`` included) or a local file Spark reads
    alike (:func:`spark_reads_local_table`) kept on the executors by
    :func:`segkit.data.spark_audit.spark_side_table`, ``source`` being what :func:`data_source` made of it."""
    if source is None:
        return None
    value = (config.get("data") or {}).get(table)
    if kind == "spark" and (source_scheme(value) is not None or spark_reads_local_table(source, config)):
        # kept on the executors (issue 17)
        return spark_side_table(source, table, config, label=str(value) if source_scheme(value) is not None
                                else str(source))
    return load_table(source, table, config=config)


def spark_reads_local_table(source: str | Path, config: Mapping[str, Any]) -> bool:
    """Whether Spark reads the local customers or campaign table ``source`` as :func:`load_table` reads it: not
    an Excel workbook, a ``.bz2``/``.xz`` file, nor text in an ``io.encoding`` Spark's CSV reader lacks (cp1252, …),
    which the kernel reads with :func:`load_table` on Spark too (an Excel sheet holds at most 1,048,576 rows).

    Examples
    --------
    >>> spark_reads_local_table("customers.csv", {}), spark_reads_local_table("customers.xlsx", {})
    (True, False)
    >>> spark_reads_local_table("customers.csv.bz2", {}), spark_reads_local_table("c.csv", {"io": {"encoding": "cp1252"}})
    (False, False)
    """
    name = str(source).lower()
    if name.endswith((*EXCEL_SUFFIXES, ".bz2", ".xz")):  # what input_files refuses to stream
        return False
    try:
        spark_csv_encoding((config.get("io") or {}).get("encoding"))
    except ConfigError:
        return False
    return True
