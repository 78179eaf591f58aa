"""Data audit: what is in the inputs, what is wrong with them, and the cleaned tables.

:func:`run_audit` takes the canonical tables (see :mod:`segkit.core.schema`; loaded with
:func:`segkit.data.io.load_inputs`) and returns an :class:`AuditResult`: a findings table ranked by
severity (error / warning / info, thresholds in ``segkit/defaults/audit.yml``), the cleaning rules
applied with the rows each touched, and the cleaned tables that notebooks 02–05 read.
:func:`segkit.steps.audit.build_audit_artifacts` is the producer of ``notebooks/01_data_audit.ipynb``.

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
6. far-future dates (see :func:`future_cutoff`): dropped;
7. orders on or after ``as_of``: dropped (``as_of`` is the analysis date; the default, the day
   after the last order that is not in the future, keeps every order);
8. missing order ids filled (each such row is its own order, id ``segkit-row-<file row>``);
9. returns/cancellations kept and flagged ``is_return`` (negative quantity or amount, or an order
   id starting with ``io.return_invoice_prefix``);
10. zero-price lines kept (free items, samples) and flagged in the findings;
11. near duplicates and outliers in order value and quantity flagged in the findings, kept.

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

from segkit.core.config import load_config, resolve_path
from segkit.core.dates import day_after, parse_as_of
from segkit.core.errors import ConfigError, DataError, format_rows
from segkit.core.escaping import formula_cells
from segkit.core.privacy import pseudonymize_ids
from segkit.core.schema import CAMPAIGN, CUSTOMERS, TRANSACTIONS, TRANSACTIONS_CLEAN_EXTRA, TableSpec
from segkit.data.auditfacts import (
    CHECKS,
    CONTROL_CHARACTER_CLASS,
    SEVERITIES,
    TX_DROP_RULES,
    TX_INPUT_CHECKS,
    AuditSettings,
    CleanFacts,
    ControlCharacterFacts,
    InputFacts,
    OutlierFacts,
    escape_control_characters,
    log_bounds,
    row_limit,
    volume_from_counts,
)
from segkit.data.engine import TransactionLog
from segkit.data.io import customers_from_transactions, load_table

__all__ = [
    "AuditResult",
    "AuditSettings",
    "CHECKS",
    "run_audit",
    "return_mask",
    "exact_duplicate_mask",
    "near_duplicate_mask",
    "robust_log_bounds",
    "order_values",
    "future_cutoff",
    "default_as_of",
    "daily_volume",
    "gap_periods",
    "missing_values",
    "returns_summary",
    "arm_balance",
]

FINDING_COLUMNS: tuple[str, ...] = ("check", "table", "severity", "count", "share", "message", "examples")
RULE_COLUMNS: tuple[str, ...] = ("rule", "table", "action", "rows_affected")
_EXAMPLE_COLUMNS = {
    "transactions": ("order_id", "customer_id", "order_date", "product_id", "quantity", "unit_price", "amount"),
    "customers": ("customer_id", "signup_date", "country"),
    "campaign": ("campaign_id", "customer_id", "arm", "sent_at"),
}
_ROW = "_row"  # position of a row in its input table (0-based), carried through cleaning
#: Offending rows kept per column with control characters (``audit.examples`` is at most 100).
_CONTROL_ROWS = 100
#: Whitespace trimmed around a cell once its control characters are gone: what Python's
#: ``str.strip()`` removes (RE2, for DuckDB; \x1c–\x1f are control characters, removed before).
_WHITESPACE_CLASS = r"[\t-\r\x{20}\x{85}\pZ]"


# ----------------------------------------------------------------------------- settings
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
        The cleaned tables (``campaign`` is None without a campaign file; ``transactions`` is None
        when the out-of-core engine ran: the clean lines are then only on disk, in
        ``transactions_clean.parquet``).
    missing : DataFrame
        ``table, column, missing, share`` for every input column.
    daily : DataFrame
        Daily volume (see :func:`daily_volume`).
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
        ``"pandas"`` (in memory) or ``"duckdb"`` (out-of-core, :mod:`segkit.data.engine`); recorded in
        ``audit_summary.json``.
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
            "engine": self.engine,
            "passed": self.passed,
            "returns": {k: (None if pd.isna(v) else v) for k, v in self.returns.items()},
            "outlier_rules": self.outlier_rules.astype(object).where(self.outlier_rules.notna(), None)
                                 .to_dict("records"),
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
def return_mask(transactions: pd.DataFrame, prefix: str | None) -> pd.Series:
    """True for return/cancellation lines: negative quantity or amount, or an order id with ``prefix``.

    Examples
    --------
    >>> tx = pd.DataFrame({"order_id": ["C1", "2", "3", None], "quantity": [1.0, -2.0, 1.0, 1.0],
    ...                    "amount": [5.0, -4.0, 3.0, -1.0]})
    >>> return_mask(tx, "C").tolist()
    [True, True, False, True]
    """
    mask = pd.Series(False, index=transactions.index)
    for col in ("quantity", "amount"):
        if col in transactions:
            mask |= (transactions[col] < 0).fillna(False).astype(bool)
    if prefix and "order_id" in transactions:
        ids = transactions["order_id"].astype("string")
        mask |= ids.str.startswith(prefix).fillna(False).astype(bool)
    return mask


def exact_duplicate_mask(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.Series:
    """True for every copy of a row after its first occurrence (missing values compare equal).

    Examples
    --------
    >>> f = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "x", "x", None]})
    >>> exact_duplicate_mask(f).tolist()
    [False, True, False, False]
    """
    cols = list(columns) if columns is not None else list(frame.columns)
    if frame.empty:
        return pd.Series(False, index=frame.index)
    return frame.duplicated(subset=cols, keep="first")


def near_duplicate_mask(transactions: pd.DataFrame, columns: Iterable[str], is_return: pd.Series | None = None) -> pd.Series:
    """True for lines repeating an earlier order's line under another order id on the same day.

    A near duplicate is a line (not a return) with the same ``customer_id``, calendar day of
    ``order_date`` and values of ``columns`` (those present; missing values compare equal) as a
    line of an *earlier* order (by time, then order id) of a different ``order_id``. Lines of the
    first order of each group are not flagged, so the count is the number of surplus lines.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...                    "order_date": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:05",
    ...                                                  "2024-01-02 09:00", "2024-01-01 10:00"]),
    ...                    "order_id": ["1", "2", "3", "4"], "amount": [5.0, 5.0, 5.0, 5.0]})
    >>> near_duplicate_mask(tx, ["amount"]).tolist()
    [False, True, False, False]
    """
    out = pd.Series(False, index=transactions.index)
    candidate = transactions["customer_id"].notna() & transactions["order_id"].notna()
    if is_return is not None:
        candidate &= ~is_return
    sub = transactions.loc[candidate]
    if sub.empty:
        return out
    keys = ["customer_id", "_day"] + [c for c in columns if c in sub.columns and c not in ("customer_id", "order_date")]
    sub = sub.assign(_day=sub["order_date"].dt.floor("D")).sort_values(["order_date", "order_id"], kind="mergesort")
    first = sub.groupby(keys, dropna=False, sort=False)["order_id"].transform("first")
    out.loc[sub.index] = (sub["order_id"] != first).to_numpy(dtype=bool)
    return out


def robust_log_bounds(values: pd.Series | np.ndarray, k: float,
                      min_fold: float = 1.0) -> tuple[float, float, float, float]:
    """Robust outlier bounds for positive values: ``exp(median ± k · scale)`` of ``log(values)``.

    ``scale`` is 1.4826 × MAD of the logs, or 1.2533 × their mean absolute deviation when the MAD
    is 0 (more than half of the values equal), following Iglewicz & Hoaglin (1993). Non-positive
    and missing values are ignored. The bounds are at least ``min_fold`` times (and at most
    1/``min_fold`` of) the median: for small counts such as quantities (mostly 1, a few up to 10)
    the log-MAD is tiny and would otherwise flag ordinary values. The statistics are computed here;
    :func:`log_bounds` turns them into bounds (the out-of-core engine computes the same statistics
    in SQL and calls it too).

    Returns
    -------
    (median, scale_log, low, high) : tuple of float
        NaN when there are no positive values.

    Examples
    --------
    >>> med, scale, low, high = robust_log_bounds([1, 2, 4, 8, 16], k=1)
    >>> round(med, 2), round(scale, 3), round(low, 2), round(high, 2)
    (4.0, 1.028, 1.43, 11.18)
    >>> round(robust_log_bounds([1, 1, 1, 2, 3], k=5, min_fold=10)[3], 6)   # log-MAD bound 6.2 < 10 × median
    10.0
    """
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    logs = np.log(x)
    center = float(np.median(logs))
    deviation = np.abs(logs - center)
    mad = float(np.median(deviation))
    return log_bounds(center, mad, float(np.mean(deviation)) if mad == 0 else np.nan, k, min_fold)


def order_values(transactions: pd.DataFrame, is_return: pd.Series) -> pd.DataFrame:
    """Value of each purchase order: the sum of ``amount`` over its non-return lines (> 0 only).

    Returns
    -------
    DataFrame
        ``order_id, customer_id, order_date, lines, value, first_row`` (one row per order).

    Examples
    --------
    >>> tx = pd.DataFrame({"order_id": ["1", "1", "2", "3"], "customer_id": ["a", "a", "b", "b"],
    ...                    "order_date": pd.to_datetime(["2024-01-01"] * 4), "amount": [2.0, 3.0, -1.0, 4.0]})
    >>> order_values(tx, tx["amount"] < 0)["value"].tolist()
    [5.0, 4.0]
    """
    lines = transactions.loc[~is_return]
    if _ROW not in lines:
        lines = lines.assign(**{_ROW: np.arange(len(lines))})
    grouped = lines.groupby("order_id", sort=True, observed=True).agg(
        customer_id=("customer_id", "first"), order_date=("order_date", "min"),
        lines=("amount", "size"), value=("amount", "sum"), first_row=(_ROW, "min"))
    return grouped.loc[grouped["value"] > 0].reset_index()


def future_cutoff(dates: pd.Series, quantile: float, tolerance_days: int) -> pd.Timestamp | None:
    """Latest plausible order date: the ``quantile`` of ``dates`` plus ``tolerance_days``.

    Dates after it are "in the future" (placeholders such as 2099-01-01, day/month swaps into
    later years). Deterministic for the data; None when there is no date.

    Examples
    --------
    >>> d = pd.Series(pd.date_range("2024-01-01", periods=200, freq="D").append(pd.DatetimeIndex(["2099-01-01"])))
    >>> future_cutoff(d, quantile=0.99, tolerance_days=365)
    Timestamp('2025-07-17 00:00:00')
    """
    valid = dates.dropna()
    if valid.empty:
        return None
    return pd.Timestamp(valid.quantile(quantile, interpolation="lower")) + pd.Timedelta(days=tolerance_days)


def default_as_of(dates: pd.Series, cutoff: pd.Timestamp | None) -> pd.Timestamp | None:
    """The day after the last order date that is not after ``cutoff`` (None without dates).

    Examples
    --------
    >>> d = pd.Series(pd.to_datetime(["2024-03-01 10:00", "2024-03-05 18:30", "2099-01-01 00:00"]))
    >>> default_as_of(d, cutoff=pd.Timestamp("2025-01-01"))
    Timestamp('2024-03-06 00:00:00')
    """
    valid = dates.dropna()
    if cutoff is not None:
        valid = valid[valid <= cutoff]
    if valid.empty:
        return None
    return day_after(valid.max())


def daily_volume(
    transactions: pd.DataFrame,
    *,
    window_days: int,
    spike_k: float,
    open_weekday_share: float,
    gap_max_probability: float,
    min_days: int,
) -> pd.DataFrame:
    """Orders per day over the data's period, with the expected volume, gaps and spikes.

    * A weekday is *open* when it has orders on at least ``open_weekday_share`` of its days
      (a shop closed on Sundays has no gaps on Sundays).
    * ``expected`` is the centred rolling median (``window_days``) of orders on open weekdays
      with orders, interpolated over long outages.
    * A *gap* is a zero-order day on an open weekday where a zero is implausible under a Poisson
      volume: ``exp(-expected) < gap_max_probability``.
    * A *spike* is a day with ``orders > expected + spike_k · max(s, sqrt(expected))``, where
      ``s`` is 1.4826 × the median absolute residual (robust to the spikes themselves) and
      ``sqrt(expected)`` the Poisson noise floor.

    Periods shorter than ``min_days`` days are not assessed (``is_gap``/``is_spike`` all False).

    Returns
    -------
    DataFrame
        ``date, weekday, orders, revenue, rolling_7d, expected, open_weekday, is_gap, is_spike``
        (one row per calendar day from the first to the last order day).

    Examples
    --------
    >>> days = pd.date_range("2024-01-01", periods=56, freq="D")
    >>> tx = pd.DataFrame({"order_date": days.repeat(20), "amount": 1.0})
    >>> tx["order_id"] = [str(i) for i in range(len(tx))]
    >>> tx = tx[tx["order_date"] != "2024-01-20"]               # a lost day
    >>> daily = daily_volume(tx, window_days=29, spike_k=5, open_weekday_share=0.5,
    ...                      gap_max_probability=0.001, min_days=28)
    >>> daily.loc[daily["is_gap"], "date"].dt.strftime("%Y-%m-%d").tolist()
    ['2024-01-20']
    """
    return volume_from_counts(daily_counts(transactions), window_days=window_days, spike_k=spike_k,
                              open_weekday_share=open_weekday_share,
                              gap_max_probability=gap_max_probability, min_days=min_days)


def daily_counts(transactions: pd.DataFrame) -> pd.DataFrame:
    """Distinct orders and revenue per calendar day that has order lines (the input of
    :func:`volume_from_counts`; one row per day, so the out-of-core engine computes it in SQL).

    Returns
    -------
    DataFrame
        ``date, orders, revenue`` sorted by date; days without lines are absent.

    Examples
    --------
    >>> tx = pd.DataFrame({"order_date": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00", "2024-01-03 09:00"]),
    ...                    "order_id": ["1", "1", "2"], "amount": [1.0, 2.0, 4.0]})
    >>> daily_counts(tx).values.tolist()
    [[Timestamp('2024-01-01 00:00:00'), 1, 3.0], [Timestamp('2024-01-03 00:00:00'), 1, 4.0]]
    """
    valid = transactions.loc[transactions["order_date"].notna()]
    day = valid["order_date"].dt.floor("D")
    grouped = valid.groupby(day)
    return pd.DataFrame({
        "date": grouped.size().index.astype("datetime64[ns]"),
        "orders": grouped["order_id"].nunique().to_numpy(dtype="int64"),
        "revenue": grouped["amount"].sum().to_numpy(dtype="float64"),
    })


def gap_periods(daily: pd.DataFrame) -> pd.DataFrame:
    """Consecutive gap days of :func:`daily_volume` merged into periods.

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


def returns_summary(transactions: pd.DataFrame, is_return: pd.Series) -> dict[str, float]:
    """Returns and their share of revenue.

    ``gross_revenue`` sums purchase lines (not returns); ``returned_value`` the absolute amount of
    return lines; ``returned_share = returned_value / gross_revenue``; ``net_revenue`` the sum of
    all amounts (returns negative), the revenue every later notebook uses.

    Examples
    --------
    >>> tx = pd.DataFrame({"order_id": ["1", "2", "C3"], "amount": [80.0, 20.0, -10.0]})
    >>> r = returns_summary(tx, tx["amount"] < 0)
    >>> r["returned_share"], r["net_revenue"], r["return_orders"]
    (0.1, 90.0, 1)
    """
    amount = transactions["amount"]
    gross = float(amount[~is_return].sum())
    returned = float(amount[is_return].abs().sum())
    return {
        "return_lines": int(is_return.sum()),
        "return_orders": int(transactions.loc[is_return, "order_id"].nunique()),
        "gross_revenue": gross,
        "returned_value": returned,
        "returned_share": returned / gross if gross > 0 else np.nan,
        "net_revenue": float(amount.sum()),
    }


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
    counts = campaign.groupby(["campaign_id", "arm"], dropna=False, observed=True).size().rename("customers")
    out = counts.reset_index()
    out["share"] = out["customers"] / out.groupby("campaign_id", dropna=False)["customers"].transform("sum")
    return out.astype({"customers": "int64"})


# ----------------------------------------------------------------------------- helpers
def _canonical(frame: pd.DataFrame | None,
               spec: TableSpec) -> tuple[pd.DataFrame | None, tuple[list[ControlCharacterFacts], int]]:
    """Canonical (and ``spec.extra``) columns of ``frame`` in canonical dtypes, blank text as missing,
    plus ``_row`` = the frame's integer index (:func:`segkit.data.io.load_table` sets it to the 0-based
    data row of the file) or the row position. ``attrs["absent_columns"]`` lists canonical
    columns the input did not have (also those :func:`segkit.core.schema.validate` added or derived).

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
        if col not in frame.columns or (col in absent and col not in ("order_id", "amount", "delivered")):
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
    if spec is TRANSACTIONS and "amount" not in out:
        out["amount"] = out["quantity"] * out["unit_price"]
    integer_index = pd.api.types.is_integer_dtype(frame.index.dtype) and frame.index.is_unique
    out[_ROW] = np.asarray(frame.index if integer_index else np.arange(len(frame)), dtype="int64")
    out.attrs["absent_columns"] = absent
    facts = []
    for col, (changed, text) in controls.items():
        rows = pd.DataFrame({_ROW: out.loc[changed, _ROW], col: text[changed]}).head(_CONTROL_ROWS)
        cleaned = pd.Series(out.loc[changed, col].dropna().unique(), dtype="string")
        collisions = int(_isin(cleaned, out.loc[~changed, col]).sum()) if col.endswith("_id") else 0
        facts.append(ControlCharacterFacts(spec.name, col, int(changed.sum()), rows.reset_index(drop=True),
                                           collisions))
    changed_rows = int(np.logical_or.reduce([c.to_numpy() for c, _ in controls.values()]).sum()) if controls else 0
    return out, (facts, changed_rows)


def _without_control_characters(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``text`` without control characters, and the mask of the cells that had any (pyarrow's RE2
    with :data:`segkit.data.auditfacts.CONTROL_CHARACTER_CLASS`, the pattern the DuckDB path uses)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(text, type=pa.large_string(), from_pandas=True)
    found = pc.fill_null(pc.match_substring_regex(array, CONTROL_CHARACTER_CLASS), False)
    changed = pd.Series(found.to_numpy(zero_copy_only=False).astype(bool), index=text.index)
    if not changed.any():
        return text, changed
    cleaned = pc.replace_substring_regex(array, CONTROL_CHARACTER_CLASS, "")
    return pd.Series(cleaned.to_pylist(), index=text.index, dtype="string"), changed


def _log_control_characters(log: TransactionLog) -> tuple[list[ControlCharacterFacts], int]:
    """:func:`_canonical`'s control-character step for the staged lines of ``log`` (SQL, in place):
    the same facts, then the characters removed and the cells trimmed (empty → missing)."""
    pattern = f"'{CONTROL_CHARACTER_CLASS}'"
    edges = f"'^{_WHITESPACE_CLASS}+|{_WHITESPACE_CLASS}+$'"
    columns = [c for c, dtype in TRANSACTIONS.known.items() if dtype == "string" and c in log.mapped.labels]
    facts, updates = [], {}
    for c in columns:
        hit = f'coalesce(regexp_matches("{c}", {pattern}), false)'
        count = int(log.con.sql(f"SELECT count(*) FROM lines WHERE {hit}").fetchall()[0][0])
        if not count:
            continue
        cleaned = f"""nullif(regexp_replace(regexp_replace("{c}", {pattern}, '', 'g'), {edges}, '', 'g'), '')"""
        rows = log.con.sql(f'SELECT _row AS {_ROW}, "{c}" FROM lines WHERE {hit} ORDER BY _row '
                           f'LIMIT {_CONTROL_ROWS}').df().astype({_ROW: "int64", c: "string"})
        collisions = int(log.con.sql(
            f'SELECT count(DISTINCT v) FROM (SELECT {cleaned} AS v FROM lines WHERE {hit}) '
            f'WHERE v IN (SELECT "{c}" FROM lines WHERE NOT {hit})').fetchall()[0][0]) if c.endswith("_id") else 0
        facts.append(ControlCharacterFacts("transactions", c, count, rows, collisions))
        updates[c] = (hit, cleaned)
    if not updates:
        return facts, 0
    any_hit = " OR ".join(hit for hit, _ in updates.values())
    changed_rows = int(log.con.sql(f"SELECT count(*) FROM lines WHERE {any_hit}").fetchall()[0][0])
    for c, (hit, cleaned) in updates.items():
        log.con.execute(f'UPDATE lines SET "{c}" = {cleaned} WHERE {hit}')
    return facts, changed_rows


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
# Each transaction step is split in two halves so that the in-memory path (pandas, here) and the
# out-of-core path (:mod:`segkit.data.engine`, SQL over the files) share one definition of every
# message, rule and count: a path computes the *facts* (counts, the first offending rows,
# statistics of small aggregated tables), and ``_report_*`` turns facts into findings and rules.

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


def _input_facts(tx: pd.DataFrame, as_of: str | pd.Timestamp | None,
                 settings: AuditSettings) -> tuple[InputFacts, pd.DataFrame]:
    """Row checks on the input transactions and the cleaning rules in order (see module doc);
    returns the facts and the clean lines (``order_id`` filled, ``is_return`` added)."""
    # A derived order id (one order per row) would make every row unique: compare without it.
    has_order_id = "order_id" not in tx.attrs["absent_columns"]
    dup = exact_duplicate_mask(tx, [c for c in tx.columns if c != _ROW and (has_order_id or c != "order_id")])
    no_date = tx["order_date"].isna()
    no_amount = tx["amount"].isna()
    guest = tx["customer_id"].isna()
    price = tx["unit_price"] if "unit_price" in tx else pd.Series(np.nan, index=tx.index)
    negative_price = (price < 0).fillna(False).astype(bool)
    zero_price = ((price == 0) | (price.isna() & (tx["amount"] == 0))).fillna(False).astype(bool)
    cutoff = future_cutoff(tx["order_date"], settings.future_quantile, settings.future_tolerance_days)
    future = (tx["order_date"] > cutoff).fillna(False).astype(bool) if cutoff is not None else no_date & False
    as_of_ts = default_as_of(tx["order_date"], cutoff) if as_of is None else parse_as_of(as_of)
    after = (((tx["order_date"] >= as_of_ts) & ~future).fillna(False).astype(bool) if as_of_ts is not None
             else no_date & False)
    masks = {"exact_duplicates": dup, "missing_order_date": no_date, "missing_amount": no_amount,
             "guest_checkouts": guest, "negative_price": negative_price, "zero_price": zero_price,
             "future_dates": future, "after_as_of": after}
    limit = row_limit(settings)

    clean, dropped = tx, {}
    for check, _ in TX_DROP_RULES:
        mask = masks[check].loc[clean.index]
        dropped[check] = int(mask.sum())
        clean = clean.loc[~mask]
    # Rows without order id are each their own order, named like segkit.core.schema.validate does.
    order_id = clean["order_id"] if has_order_id else pd.Series(pd.NA, index=clean.index, dtype="string")
    no_order_id = order_id.isna()
    clean = clean.assign(order_id=order_id.where(~no_order_id, "row-" + (clean[_ROW] + 2).astype("string")))
    clean = clean.assign(is_return=return_mask(clean, settings.return_prefix).to_numpy())
    facts = InputFacts(
        n_rows=len(tx), counts={c: int(m.sum()) for c, m in masks.items()},
        rows={c: tx[m].head(limit) for c, m in masks.items()},
        guest_revenue=float(tx.loc[guest, "amount"].sum()), cutoff=cutoff, as_of=as_of_ts, dropped=dropped,
        filled=int(no_order_id.sum()), returns_flagged=int(clean["is_return"].sum()),
        zero_flagged=int(zero_price.loc[clean.index].sum()))
    return facts, clean


def _report_input(facts: InputFacts, settings: AuditSettings, col: _Collector) -> None:
    """Findings of the row checks and the transaction cleaning rules, from :class:`InputFacts`."""
    notes = {
        "exact_duplicates": "dropped, the first copy kept.",
        "missing_order_date": "dropped.",
        "missing_amount": "dropped.",
        "guest_checkouts": f"{facts.guest_revenue:,.2f} revenue; dropped from the customer analyses.",
        "negative_price": "adjustments or errors, not sales; dropped.",
        "zero_price": "free items, or prices lost in the export; kept.",
        "future_dates": (f"dated after {format_value(facts.cutoff)} = the {settings.future_quantile:.0%} quantile of order "
                         f"dates + {settings.future_tolerance_days} days; dropped."),
        "after_as_of": f"as_of = {format_value(facts.as_of)}; left out of this run.",
    }
    for check in TX_INPUT_CHECKS:
        col.add(check, "transactions", facts.counts[check], facts.n_rows, notes[check], rows=facts.rows[check])
    for check, rule in TX_DROP_RULES:
        col.rule(rule, "transactions", "dropped", facts.dropped[check])
    col.rule("missing order ids filled (each row its own order)", "transactions", "filled", facts.filled)
    col.rule("returns and cancellations flagged is_return (kept)", "transactions", "flagged", facts.returns_flagged)
    col.rule("zero-price lines kept (free items)", "transactions", "flagged", facts.zero_flagged)


def _clean_facts(clean: pd.DataFrame, absent: Iterable[str], settings: AuditSettings) -> CleanFacts:
    """Returns, near duplicates, outliers and daily volume of the clean lines (pandas)."""
    is_return = clean["is_return"].astype(bool)
    limit = row_limit(settings)
    # Without order ids in the input, "another order" has no meaning: no near duplicates.
    near = (near_duplicate_mask(clean, settings.near_duplicate_columns, is_return) if "order_id" not in absent
            else pd.Series(False, index=clean.index))
    orders = order_values(clean, is_return)
    qty_lines = clean.loc[~is_return & (clean["quantity"] > 0).fillna(False).astype(bool)] if "quantity" in clean \
        else clean.iloc[0:0].assign(quantity=pd.Series(dtype="float64"))
    rules = []
    for values in (orders["value"], qty_lines["quantity"]):
        stats = robust_log_bounds(values, settings.outlier_k, settings.outlier_min_fold)
        rules.append((stats, ((values < stats[2]) | (values > stats[3])).to_numpy(dtype=bool)))
    (o_stats, o_flag), (q_stats, q_flag) = rules
    orders["is_outlier"] = o_flag
    flagged_orders = orders[orders["is_outlier"]].rename(columns={"first_row": _ROW})
    q_out = qty_lines[q_flag]
    return CleanFacts(
        n_clean=len(clean), returns=returns_summary(clean, is_return), return_rows=clean[is_return].head(limit),
        near_count=int(near.sum()), near_rows=clean[near].head(limit),
        near_same=[c for c in settings.near_duplicate_columns if c in clean],
        order_rule=OutlierFacts(o_stats, len(orders), int(o_flag.sum()), flagged_orders.head(limit),
                                int(flagged_orders["lines"].sum())),
        quantity_rule=OutlierFacts(q_stats, len(qty_lines), len(q_out), q_out.head(limit)),
        order_values=orders[["order_id", "value", "is_outlier"]].reset_index(drop=True),
        quantities=pd.DataFrame({"quantity": qty_lines["quantity"].to_numpy(dtype="float64"), "is_outlier": q_flag}),
        daily=daily_volume(clean, window_days=settings.volume_window_days, spike_k=settings.spike_k,
                           open_weekday_share=settings.open_weekday_share,
                           gap_max_probability=settings.gap_max_probability, min_days=settings.volume_min_days),
    )


def _report_clean(facts: CleanFacts, n_in: int, settings: AuditSettings, col: _Collector) -> dict[str, Any]:
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
    col.add("volume_gaps", "transactions", int(daily["is_gap"].sum()), int(daily["open_weekday"].sum()),
            f"in {len(gaps)} period(s), ~{gaps['expected_orders'].sum():,.0f} orders expected in total.", rows=gaps,
            examples="; ".join(f"{format_value(g['start'])} to {format_value(g['end'])} ({g['gap_days']} days, "
                               f"~{g['expected_orders']:,.0f} orders expected)"
                               for g in gaps.head(settings.examples).to_dict("records")))
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


def _check_customer_dates(customers_in: pd.DataFrame, as_of: pd.Timestamp | None, col: _Collector) -> pd.Series:
    """Findings on signup dates and birth years of the customers file; returns the mask of rows
    whose birth year is implausible (emptied by the caller). Signup dates on or after ``as_of``
    are kept as given: such a customer was not known yet on ``as_of`` (a run with an earlier
    ``as_of`` sees later signups), and the finding says when that is suspicious."""
    n_cust = len(customers_in)
    signup = customers_in["signup_date"] if "signup_date" in customers_in else pd.Series(pd.NaT, index=customers_in.index)
    late = ((signup >= as_of) if as_of is not None else signup.notna() & False).fillna(False).astype(bool)
    with_date = int(signup.notna().sum())
    every = ("that is every customer with a signup date, so as_of or the date format is probably wrong; "
             if late.any() and int(late.sum()) == with_date else "")
    col.add("signup_after_as_of", "customers", int(late.sum()), n_cust,
            f"as_of = {format_value(as_of)}; {every}kept as given (not yet customers on as_of).", rows=customers_in[late])
    years = customers_in["birth_year"] if "birth_year" in customers_in else pd.Series(pd.NA, index=customers_in.index)
    if as_of is None:
        odd = pd.Series(False, index=customers_in.index)
        note = ""
    else:
        low, high = birth_year_bounds(as_of, col.settings)
        odd = ((years < low) | (years > high)).fillna(False).astype(bool)
        note = (f"outside {low}–{high} (ages {col.settings.birth_year_min_age}–{col.settings.birth_year_max_age} on "
                f"as_of); treated as unknown (emptied in customers_clean).")
    col.add("implausible_birth_year", "customers", int(odd.sum()), n_cust, note, rows=customers_in[odd],
            examples=_examples_text(customers_in[odd], ("customer_id", "birth_year"), col.settings))
    return odd


def _clean_customers(customers_in: pd.DataFrame | None, buyers: pd.Series,
                     derive: Callable[[], pd.DataFrame], col: _Collector,
                     as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """customers_clean = customers table ∪ ``buyers`` (sorted ids of the clean transactions);
    without a customers table, ``derive()`` builds it from the transactions. Implausible birth
    years (see :func:`birth_year_bounds`) are emptied."""
    if customers_in is None:
        customers = derive()  # with each buyer's country when present
        col.rule("customers derived from transactions (no customers file)", "customers", "added", len(buyers))
    else:
        n_cust = len(customers_in)
        no_id = customers_in["customer_id"].isna()
        dup_id = customers_in["customer_id"].duplicated(keep="first") & ~no_id
        col.add("customers_without_id", "customers", int(no_id.sum()), n_cust, "dropped.", rows=customers_in[no_id])
        col.add("duplicate_customer_ids", "customers", int(dup_id.sum()), n_cust, "the first row is kept.",
                rows=customers_in[_isin(customers_in["customer_id"], customers_in.loc[dup_id, "customer_id"])])
        odd_year = _check_customer_dates(customers_in, as_of, col)
        customers = _drop(customers_in, no_id, col, "customers without customer id", "customers")
        customers = _drop(customers, dup_id.loc[customers.index], col, "repeated customer ids (first kept)",
                          "customers")
        emptied = odd_year.loc[customers.index]
        col.rule("implausible birth years emptied (unknown)", "customers", "emptied", int(emptied.sum()))
        if emptied.any():
            customers = customers.assign(birth_year=customers["birth_year"].mask(emptied))
        new_buyers = buyers[~_isin(buyers, customers["customer_id"])]
        col.add("buyers_not_in_customers", "customers", len(new_buyers), len(buyers),
                "added with empty attributes.", rows=pd.DataFrame({"customer_id": new_buyers}), examples="")
        col.rule("buyers missing from the customers table added", "customers", "added", len(new_buyers))
        customers = pd.concat([customers.drop(columns=_ROW), pd.DataFrame({"customer_id": new_buyers})],
                              ignore_index=True)
    customers = _with_all_columns(customers, CUSTOMERS).sort_values("customer_id", kind="mergesort",
                                                                      ignore_index=True)
    prospects = ~_isin(customers["customer_id"], buyers)
    col.add("customers_without_orders", "customers", int(prospects.sum()), len(customers), "kept.",
            rows=customers[prospects], examples="")
    _check_formula_ids(customers, col)
    return customers


def _check_formula_ids(customers: pd.DataFrame, col: _Collector) -> None:
    """Finding ``formula_like_ids``: customer ids that CSV files of the run neutralise with a
    leading ``'`` (:func:`segkit.core.escaping.neutralise_formula`), so they read differently there."""
    odd = formula_cells(customers["customer_id"])
    col.add("formula_like_ids", "customers", int(odd.sum()), len(customers),
            "kept; in the CSV files of the run they start with ' (spreadsheet-safe).", rows=customers[odd],
            examples=_examples_text(customers[odd], ("customer_id",), col.settings))


def _clean_campaign(campaign_in: pd.DataFrame | None, customers: pd.DataFrame,
                    col: _Collector) -> pd.DataFrame | None:
    """campaign_clean: one row per (campaign, customer), known customers only."""
    if campaign_in is None:
        return None
    n_camp = len(campaign_in)
    pair_dup = campaign_in.duplicated(["campaign_id", "customer_id"], keep="first") & campaign_in["customer_id"].notna()
    unknown = pd.Series(~_isin(campaign_in["customer_id"], customers["customer_id"]), index=campaign_in.index)
    col.add("campaign_duplicates", "campaign", int(pair_dup.sum()), n_camp, "the first row is kept.",
            rows=campaign_in[pair_dup])
    col.add("unknown_campaign_customers", "campaign", int(unknown.sum()), n_camp,
            "cannot be joined to segments; dropped.", rows=campaign_in[unknown])
    revenue = campaign_in["revenue"] if "revenue" in campaign_in else pd.Series(np.nan, index=campaign_in.index)
    negative = (revenue < 0).fillna(False).astype(bool)
    converted = campaign_in["converted"] if "converted" in campaign_in else pd.Series(pd.NA, index=campaign_in.index)
    n_converting = int((negative & converted.fillna(False).astype(bool)).sum())
    col.add("negative_campaign_revenue", "campaign", int(negative.sum()), n_camp,
            f"{n_converting:,} of them on converting rows; kept in campaign_clean as given, treated as unknown by "
            "the campaign evaluation: left out of revenue per recipient and incremental revenue (not counted as "
            "0 nor as a loss).", rows=campaign_in[negative],
            examples=_examples_text(campaign_in[negative], ("campaign_id", "customer_id", "arm", "converted",
                                                            "revenue"), col.settings))
    campaign = _drop(campaign_in, pair_dup, col, "repeated (campaign, customer) rows (first kept)", "campaign")
    campaign = _drop(campaign, unknown.loc[campaign.index], col, "campaign rows of unknown customers", "campaign")
    return campaign.drop(columns=_ROW).reset_index(drop=True)


# ----------------------------------------------------------------------------- the audit
def run_audit(
    tables: Mapping[str, pd.DataFrame | None],
    as_of: str | pd.Timestamp | None = None,
    config: Mapping[str, Any] | None = None,
) -> AuditResult:
    """Audit the canonical input tables and clean them.

    Parameters
    ----------
    tables : mapping
        ``transactions`` (required), ``customers`` and ``campaign`` (None when absent): canonical
        frames as returned by :func:`segkit.data.io.load_inputs`.
    as_of : str or Timestamp, optional
        Analysis date ``YYYY-MM-DD``; orders on or after it are dropped. None = the day after the
        last order that is not in the future.
    config : mapping, optional
        Merged configuration (sections ``audit``, ``io``, ``privacy``); None = shipped defaults.

    Returns
    -------
    AuditResult

    Raises
    ------
    DataError
        A table lacks a required column or a column cannot take its canonical type.
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
    settings = AuditSettings.from_config(config)
    if tables.get("transactions") is None:
        raise DataError("No transactions table: set data.transactions in the config to your order-lines file.")
    tx, tx_controls = _canonical(tables["transactions"], TRANSACTIONS)
    customers_in, customer_controls = _canonical(tables.get("customers"), CUSTOMERS)
    campaign_in, campaign_controls = _canonical(tables.get("campaign"), CAMPAIGN)
    col = _Collector(settings)
    inputs = {"transactions": tx, "customers": customers_in, "campaign": campaign_in}
    sizes = {t: len(f) for t, f in inputs.items() if f is not None}
    controls = {"transactions": tx_controls, "customers": customer_controls, "campaign": campaign_controls}
    _report_control_characters({t: c for t, c in controls.items() if t in sizes}, sizes, col)
    missing = missing_values(inputs)
    _check_missing_values(missing, sizes, lambda t, c: inputs[t][inputs[t][c].isna()], col)
    facts, clean = _input_facts(tx, as_of, settings)
    _report_input(facts, settings, col)
    found = _report_clean(_clean_facts(clean, tx.attrs["absent_columns"], settings), len(tx), settings, col)
    transactions = _with_all_columns(clean.drop(columns=_ROW), TRANSACTIONS, TRANSACTIONS_CLEAN_EXTRA)
    transactions["order_date"] = transactions["order_date"].astype("datetime64[ns]")
    n_clean = len(transactions)
    period = {"start": transactions["order_date"].min().normalize() if n_clean else None,
              "end": transactions["order_date"].max().normalize() if n_clean else None}
    buyers = pd.Series(clean["customer_id"].unique(), dtype="string").sort_values(ignore_index=True)
    return _finish_audit(
        col, missing=missing, facts=facts, found=found, n_clean=n_clean,
        orders=int(transactions["order_id"].nunique()), period=period, customers_in=customers_in,
        campaign_in=campaign_in, buyers=buyers, derive=lambda: customers_from_transactions(clean),
        transactions=transactions, engine="pandas")


def _finish_audit(col: _Collector, *, missing: pd.DataFrame, facts: InputFacts, found: Mapping[str, Any],
                  n_clean: int, orders: int, period: dict[str, pd.Timestamp | None],
                  customers_in: pd.DataFrame | None, campaign_in: pd.DataFrame | None, buyers: pd.Series,
                  derive: Callable[[], pd.DataFrame], transactions: pd.DataFrame | None,
                  engine: str) -> AuditResult:
    """Customers and campaign steps, counts and the :class:`AuditResult` (shared by both engines)."""
    customers = _clean_customers(customers_in, buyers, derive, col, facts.as_of)
    campaign = _clean_campaign(campaign_in, customers, col)
    arms = arm_balance(campaign)
    if not arms.empty:
        text = "; ".join(
            f"{cid}: " + ", ".join(f"{a} {n:,} ({percent_text(s)})" for a, n, s in zip(g["arm"], g["customers"], g["share"]))
            for cid, g in arms.groupby("campaign_id", sort=True))
        col.add("campaign_arm_balance", "campaign", int(arms["campaign_id"].nunique()), None,
                f"customers per arm: {text}.", rows=arms, examples="")
    counts = {
        "transactions_rows_in": facts.n_rows,
        "transactions_rows_clean": n_clean,
        "orders": orders,
        "customers": len(customers),
        "buyers": len(buyers),
        "prospects": int((~_isin(customers["customer_id"], buyers)).sum()),
        "return_lines": found["returns"]["return_lines"],
        "days": len(found["daily"]),
        "customers_rows_in": 0 if customers_in is None else len(customers_in),
        "campaign_rows_in": 0 if campaign_in is None else len(campaign_in),
        "campaign_rows_clean": 0 if campaign is None else len(campaign),
        "campaigns": 0 if campaign is None else int(campaign["campaign_id"].nunique()),
    }
    return AuditResult(
        findings=col.findings_frame(), cleaning_rules=col.rules_frame(), as_of=facts.as_of, period=period,
        counts=counts, transactions=transactions, customers=customers, campaign=campaign, missing=missing,
        daily=found["daily"], gaps=found["gaps"], returns=found["returns"],
        outlier_rules=found["outlier_rules"], order_values=found["order_values"],
        quantities=found["quantities"], arms=arms, checks=pd.DataFrame(col.checks, columns=["check", "table", "count"]),
        offending=col.offending, engine=engine,
    )


# ----------------------------------------------------------------------------- reporting
def audit_log(log: TransactionLog, as_of: str | pd.Timestamp | None = None, customers: pd.DataFrame | None = None,
          campaign: pd.DataFrame | None = None) -> AuditResult:
    """:func:`run_audit` of the lines of ``log`` (a :class:`segkit.data.engine.TransactionLog`) (plus small ``customers``/``campaign`` frames).

    Same findings, cleaning rules, counts, ``as_of`` and period as the pandas path; the
    result's ``transactions`` is None (write the clean lines with :meth:`TransactionLog.write_clean`) and
    ``order_values``/``quantities`` hold at most ``engine.plot_sample`` rows.

    Parameters
    ----------
    as_of : str or Timestamp, optional
        Analysis date; None = the day after the last order that is not in the future.
    customers, campaign : DataFrame, optional
        Canonical customers / campaign tables (:func:`segkit.data.io.load_table`), as for ``run_audit``.

    Returns
    -------
    AuditResult
    """
    settings = log.settings
    col = _Collector(settings)
    customers_in, customer_controls = _canonical(customers, CUSTOMERS)
    campaign_in, campaign_controls = _canonical(campaign, CAMPAIGN)
    others = {"customers": customers_in, "campaign": campaign_in}
    sizes = {"transactions": log.n_rows, **{t: len(f) for t, f in others.items() if f is not None}}
    controls = {"transactions": _log_control_characters(log), "customers": customer_controls,
                "campaign": campaign_controls}
    _report_control_characters({t: c for t, c in controls.items() if t in sizes}, sizes, col)
    columns, counts = log.missing_counts()
    part = pd.DataFrame({"table": "transactions", "column": columns, "missing": np.asarray(counts, dtype="int64"),
                         "share": np.asarray(counts, dtype="float64") / log.n_rows})
    rest = missing_values(others)
    missing = pd.concat([part] + ([rest] if len(rest) else []), ignore_index=True).astype(
        {"table": "string", "column": "string"})

    def rows_of(table: str, column: str) -> pd.DataFrame:
        if table == "transactions":
            return log.null_rows(column)
        frame = others[table]
        return frame[frame[column].isna()]

    _check_missing_values(missing, sizes, rows_of, col)
    facts = log.input_facts(as_of)
    _report_input(facts, settings, col)
    clean = log.clean_facts()
    found = _report_clean(clean, log.n_rows, settings, col)
    buyers = log.buyers()
    return _finish_audit(
        col, missing=missing, facts=facts, found=found, n_clean=clean.n_clean, orders=log.n_orders, period=log.period, customers_in=customers_in, campaign_in=campaign_in,
        buyers=buyers, derive=lambda: log.derived_customers(buyers), transactions=None, engine="duckdb")


def audit_transactions_from_files(
    source: str | Path | Sequence[str | Path],
    config: Mapping[str, Any] | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], pd.Timestamp | None, dict[str, pd.Timestamp | None]]:
    """The transaction audit of :func:`segkit.audit.run_audit`, computed out-of-core in SQL.

    Parameters
    ----------
    source : path, glob or list of paths
        The user's transaction file(s) (CSV or Parquet; a file, a folder or a glob), mapped with
        the config's ``columns.transactions`` and ``io`` options.
    config : mapping, optional
        Configuration (sections ``columns``, ``io``, ``audit``, ``privacy``, ``engine``); None = defaults.
    as_of : str or Timestamp, optional
        Analysis date; None = the day after the last order that is not in the future.

    Returns
    -------
    (findings, cleaning_rules, counts, as_of, period)
        As the fields of :class:`segkit.audit.AuditResult` for ``run_audit({"transactions": …})``
        (customers derived from the transactions).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_date,amount\\na,2024-01-01,10\\na,2024-01-01,10\\n,2024-01-02,5\\n")
    >>> findings, rules, counts, as_of, period = audit_transactions_from_files(p)
    >>> findings[["check", "count"]].values.tolist(), counts["transactions_rows_clean"], str(as_of.date())
    ([['exact_duplicates', 1], ['guest_checkouts', 1]], 1, '2024-01-03')
    """
    with TransactionLog(source, config) as log:
        result = audit_log(log, as_of)
    return result.findings, result.cleaning_rules, result.counts, result.as_of, result.period


def audit_inputs(config: Mapping[str, Any], as_of: str | pd.Timestamp | None = None,
                 clean_path: str | Path | None = None) -> AuditResult:
    """The whole data audit of a run with the transactions out-of-core (``engine.kind: duckdb``).

    Customers and campaign files (customer-level, small) are loaded with :mod:`segkit.data.io`; the
    transactions are audited by :class:`TransactionLog`. With ``clean_path`` and no error
    finding, the clean lines are written there (:meth:`TransactionLog.write_clean`).
    """

    data = config.get("data") or {}
    path = resolve_path(config, data.get("transactions"))
    if path is None:
        source = config.get("_source")
        raise ConfigError(f"data.transactions is not set{f' in {source}' if source else ''}: "
                          "give the path of your transactions file (or folder of files).")
    tables = {t: (load_table(p, t, config=config) if (p := resolve_path(config, data.get(t))) is not None else None)
              for t in ("customers", "campaign")}
    with TransactionLog(path, config) as log:
        result = audit_log(log, as_of, customers=tables["customers"], campaign=tables["campaign"])
        if clean_path is not None and result.status != "errors":
            log.write_clean(clean_path)
    return result
