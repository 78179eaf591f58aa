"""What the data audit checks, with which settings, and the facts computed for it.

The audit's transaction steps are split in two halves: :class:`segkit.data.engine.TransactionLog`
(DuckDB, at every size) computes the *facts* of the order lines (:class:`InputFacts`,
:class:`CleanFacts`, :class:`ControlCharacterFacts`: counts, the first offending rows, statistics
of small aggregated tables), and :mod:`segkit.audit` turns facts into findings and cleaning
rules; it computes the facts of the customer-level tables (customers, campaign) in pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from segkit.core.calendar import shop_countries
from segkit.core.errors import ConfigError
from segkit.core.privacy import salt_for
from segkit.core.schema import TRANSACTIONS

__all__ = ["SEVERITIES", "IDENTICAL_LINE_CHOICES", "MAD_SCALE", "MEAN_AD_SCALE", "CHECKS", "AuditSettings", "log_bounds",
    "volume_from_counts", "TX_INPUT_CHECKS", "TX_DROP_RULES", "InputFacts", "OutlierFacts", "CleanFacts",
    "CONTROL_CHARACTER_RANGES", "CONTROL_CHARACTER_CLASS", "is_control_character",
    "escape_control_characters", "ControlCharacterFacts", "CONTROL_ROWS", "row_limit"]

SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
#: Values of ``audit.identical_lines_without_order_id``.
IDENTICAL_LINE_CHOICES: tuple[str, ...] = ("keep", "drop")


MAD_SCALE = 1.4826  # MAD → standard deviation for normal data


MEAN_AD_SCALE = 1.2533  # mean absolute deviation → standard deviation (sqrt(pi/2))


# Each check: the label of its count in messages ("<label>: <count> (<share>); ...") and what
# to do when it fires (used in the failure message and the summary's actions).
CHECKS: dict[str, tuple[str, str]] = {
    "no_transactions_left": (
        "Transaction rows, all removed by cleaning",
        "Check the column mapping, the date format and as_of: every row was removed by a cleaning rule."),
    "missing_order_date": (
        "Rows without order date",
        "Fill the order date in the export, or check the date column mapping."),
    "missing_amount": (
        "Rows without amount (nor quantity × unit price)",
        "Fill amount, or quantity and unit price, in the export."),
    "missing_values": (
        "Empty cells",
        "Analyses that use these columns treat empty cells as unknown; fill them at the source if they matter."),
    "exact_duplicates": (
        "Exact duplicate rows",
        "Duplicates usually come from overlapping exports; check how the files were combined."),
    "identical_lines_without_order_id": (
        "Identical lines without order id",
        "Without order ids, identical lines (same customer, time, product, quantity and amount) may be repeat "
        "purchases or a doubled export: export the order id, or set audit.identical_lines_without_order_id."),
    "near_duplicates": (
        "Lines repeating an earlier order's line under another order id",
        "Check whether these are double submissions; if so, de-duplicate them at the source."),
    "guest_checkouts": (
        "Rows without customer id (guest checkouts)",
        "Guest orders are left out of customer analyses; link them to customers (e.g. by e-mail) if possible."),
    "negative_price": (
        "Lines with a negative unit price",
        "Negative prices are usually accounting adjustments, not sales; fix or remove them at the source."),
    "zero_price": (
        "Lines with a zero price",
        "Free items and samples are kept; check that prices were not lost in the export."),
    "returns": (
        "Return and cancellation lines",
        "Returns stay in, flagged is_return; net revenue includes them."),
    "future_dates": (
        "Rows dated implausibly far after the bulk of the data",
        "Fix the dates at the source (placeholder dates such as 2099, or a wrong date format)."),
    "after_as_of": (
        "Rows dated on or after the analysis date as_of",
        "They are left out of this run; move as_of later to include them."),
    "order_value_outliers": (
        "Orders with an extreme value",
        "Check these orders (wholesale buyers, test orders, wrong prices); they are kept."),
    "quantity_outliers": (
        "Lines with an extreme quantity",
        "Check these lines (bulk buys, typing errors such as an extra 00); they are kept."),
    "volume_gaps": (
        "Days without orders where orders were expected",
        "Check whether the export is missing these days (shop outage, missing file)."),
    "volume_gaps_holidays": (
        "Days without orders on or next to public holidays",
        "Expected: the shop closes or slows down on these holidays (audit.holiday_countries sets the countries, "
        "else the customers' most common country). Nothing to fix unless the shop was open."),
    "volume_spikes": (
        "Days with far more orders than expected",
        "Check that these were real (sales, campaigns) and not duplicated loads."),
    "duplicate_customer_ids": (
        "Customer rows repeating an earlier customer id",
        "Keep one row per customer id in the customers file."),
    "customers_without_id": (
        "Customer rows without customer id",
        "Fill the id or remove these rows from the customers file."),
    "customers_without_orders": (
        "Customers without orders in the period (prospects)",
        "Prospects are kept in the customer table; they have no RFM scores."),
    "buyers_not_in_customers": (
        "Buyers missing from the customers table",
        "Missing buyers get a customer row with empty attributes; complete the customers export if possible."),
    "campaign_duplicates": (
        "Campaign rows repeating a (campaign, customer) pair",
        "One row per customer per campaign is expected; keep one in the campaign file."),
    "unknown_campaign_customers": (
        "Campaign rows of customers in neither the customers table nor the transactions",
        "Test sends and mistyped ids cannot be joined to segments; check the campaign export's customer ids."),
    "signup_after_as_of": (
        "Customers who signed up on or after the analysis date as_of",
        "Check as_of (run.as_of) and how signup dates are read (io.date_format, io.dayfirst): a signup on or "
        "after as_of means the customer was not known yet on that date."),
    "implausible_birth_year": (
        "Birth years outside the plausible range",
        "Fix these birth years at the source (placeholders such as 1800 or 2100, typing errors); segkit treats "
        "them as unknown (audit.birth_year_min_age / birth_year_max_age set the range)."),
    "negative_campaign_revenue": (
        "Campaign rows with a negative revenue",
        "Campaign revenue cannot be negative: check the campaign export (refunds booked as revenue, sign "
        "errors); segkit treats these amounts as unknown and leaves them out of the revenue metrics."),
    "campaign_arm_balance": (
        "Campaigns",
        "Compare the split with the plan; notebook 05 tests it (sample ratio mismatch)."),
    "order_statuses": (
        "Orders by status",
        "Check that each status means what orders.statuses says (purchase, not_purchase, pending); only "
        "kept value counts: refunded and voided orders are no purchases."),
    "refunds": (
        "Orders with money refunded",
        "Refunds reduce the order's kept value (spread over its lines); an order refunded in full is no purchase."),
    "cancelled_orders": (
        "Cancelled orders",
        "orders.cancelled sets whether a cancelled order that is still paid counts by its status (by_status) or "
        "never (not_purchase); a cancelled order never captured is no purchase."),
    "currency_mismatch": (
        "Orders in another currency than report.currency",
        "Set report.currency to the file's currency, so that amounts are labelled with it."),
    "orders_in_several_files": (
        "Orders that appear in more than one file",
        "Overlapping exports (e.g. two date ranges that share days) hold some orders twice; each is counted "
        "once. Export date ranges that do not overlap to be sure no order is missing or doubled."),
    "test_orders": (
        "Test orders (test payment gateway)",
        "Removed from every analysis (orders.test_payment_methods lists the gateways)."),
    "zero_value_orders": (
        "Orders of value 0",
        "Exchanges, samples and free orders are kept as orders but are no purchases."),
    "spreadsheet_resaved": (
        "Order dates without their UTC offset",
        "The file looks re-saved by a spreadsheet: export the orders again from the shop's admin and run on "
        "that file unchanged."),
    "control_characters": (
        "Cells with invisible control characters",
        "segkit removes them from the cleaned tables (NUL and other control characters cut or garble ids in "
        "e-mail tools and spreadsheets; right-to-left overrides make text read differently from what it is). "
        "Fix the export if the values matter: they usually come from a binary field, a wrong encoding or "
        "copied text."),
    "formula_like_ids": (
        "Customer ids a spreadsheet would run as a formula (starting with = + - @, tab or CR)",
        "customer_segments.csv writes them with a leading ' so that a spreadsheet shows them as text: remove "
        "that quote when you import the file into a tool that matches customers by id, or fix the ids at the "
        "source."),
}


@dataclass(frozen=True)
class AuditSettings:
    """Validated ``audit`` section of the configuration (see ``segkit/defaults/audit.yml``).

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> AuditSettings.from_config(load_config()).outlier_k
    5.0
    """

    examples: int
    outlier_k: float
    outlier_min_fold: float
    future_quantile: float
    future_tolerance_days: int
    volume_window_days: int
    spike_k: float
    open_weekday_share: float
    gap_max_probability: float
    volume_min_days: int
    birth_year_min_age: int
    birth_year_max_age: int
    near_duplicate_columns: tuple[str, ...]
    severity: Mapping[str, Mapping[str, Any]]
    return_prefix: str | None
    pseudonymize: bool
    salt: str
    #: ``audit.holiday_countries`` as ISO codes; None = the customers' most common country.
    holiday_countries: tuple[str, ...] | None = None
    #: ``audit.identical_lines_without_order_id``: ``keep`` (the default: each line a purchase) or ``drop``
    #: (copies after the first removed as exact duplicates).
    identical_lines_without_order_id: str = "keep"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "AuditSettings":
        """Read and validate the ``audit``, ``io`` and ``privacy`` sections; ConfigError otherwise."""
        audit = dict(config.get("audit") or {})
        if not audit:
            raise ConfigError("The configuration has no 'audit' section (segkit/defaults/audit.yml is missing?).")

        def number(key: str, low: float, high: float = np.inf, integer: bool = False) -> Any:
            value = audit.get(key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
            if not ok or (integer and int(value) != value):
                kind = "an integer" if integer else "a number"
                raise ConfigError(f"audit.{key} = {value!r} must be {kind} between {low} and {high}; "
                                  f"see segkit/defaults/audit.yml.")
            return int(value) if integer else float(value)

        severity = dict(audit.get("severity") or {})
        unknown = sorted(set(severity) - set(CHECKS))
        if unknown:
            raise ConfigError(f"audit.severity: unknown check(s) {', '.join(unknown)}. "
                              f"Known checks: {', '.join(CHECKS)}.")
        for check in CHECKS:
            rule = severity.get(check) or {}
            level = rule.get("level", "warning")
            share = rule.get("error_share")
            if level not in SEVERITIES:
                raise ConfigError(f"audit.severity.{check}.level = {level!r}; use one of {', '.join(SEVERITIES)}.")
            if share is not None and not (isinstance(share, (int, float)) and 0 <= share <= 1):
                raise ConfigError(f"audit.severity.{check}.error_share = {share!r}; use a share between 0 and 1, "
                                  "or null for never.")
            severity[check] = {"level": level, "error_share": share}
        columns = audit.get("near_duplicate_columns") or []
        if isinstance(columns, str) or not all(c in TRANSACTIONS.dtypes for c in columns):
            raise ConfigError(f"audit.near_duplicate_columns = {columns!r}; list transaction columns "
                              f"({', '.join(TRANSACTIONS.columns)}).")
        prefix = (config.get("io") or {}).get("return_invoice_prefix")
        privacy = config.get("privacy") or {}
        return cls(
            examples=number("examples", 0, 100, integer=True),
            outlier_k=number("outlier_k", 0.5),
            outlier_min_fold=number("outlier_min_fold", 1.0),
            future_quantile=number("future_quantile", 0.5, 1.0),
            future_tolerance_days=number("future_tolerance_days", 0, integer=True),
            volume_window_days=number("volume_window_days", 3, integer=True),
            spike_k=number("spike_k", 0.5),
            open_weekday_share=number("open_weekday_share", 0.0, 1.0),
            gap_max_probability=number("gap_max_probability", 0.0, 1.0),
            volume_min_days=number("volume_min_days", 7, integer=True),
            birth_year_min_age=number("birth_year_min_age", 0, 150, integer=True),
            birth_year_max_age=number("birth_year_max_age", 0, 150, integer=True),
            near_duplicate_columns=tuple(columns),
            severity=severity,
            return_prefix=str(prefix) if prefix not in (None, "") else None,
            pseudonymize=bool(privacy.get("pseudonymize_ids", True)),
            salt=salt_for({"privacy": privacy}),
            holiday_countries=cls._holiday_countries(audit.get("holiday_countries")),
            identical_lines_without_order_id=cls._identical_lines(audit.get("identical_lines_without_order_id", "keep")),
        )

    @staticmethod
    def _identical_lines(value: Any) -> str:
        """``audit.identical_lines_without_order_id``: ``keep`` or ``drop``."""
        if value not in IDENTICAL_LINE_CHOICES:
            raise ConfigError(f"audit.identical_lines_without_order_id = {value!r}; use keep (identical lines "
                              "without order id are separate purchases) or drop (they are exact duplicates; the "
                              "first copy is kept). See segkit/defaults/audit.yml.")
        return str(value)

    @staticmethod
    def _holiday_countries(value: Any) -> tuple[str, ...] | None:
        """``audit.holiday_countries`` (null, a code or name, or a list of them) as ISO codes."""
        if value is None:
            return None
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
            raise ConfigError(f"audit.holiday_countries = {value!r}; list countries (ISO codes such as GB, DE, or "
                              "names), [] for none, or null to take the customers' most common country.")
        return shop_countries(values)

    def severity_for(self, check: str, share: float | None) -> str:
        """Configured level of ``check``, raised to error when ``share`` exceeds its error_share.

        Examples
        --------
        >>> from segkit.core.config import load_config
        >>> s = AuditSettings.from_config(load_config())
        >>> s.severity_for("guest_checkouts", 0.1), s.severity_for("guest_checkouts", 0.6)
        ('warning', 'error')
        """
        rule = self.severity[check]
        limit = rule["error_share"]
        if limit is not None and share is not None and not np.isnan(share) and share > limit:
            return "error"
        return rule["level"]


def log_bounds(center: float, mad: float, mean_deviation: float, k: float,
               min_fold: float = 1.0) -> tuple[float, float, float, float]:
    """Robust outlier bounds for positive values from statistics of their logs: ``exp(median ± k · scale)``.

    ``scale`` is 1.4826 × the MAD of the logs, or 1.2533 × their mean absolute deviation when the
    MAD is 0 (more than half of the values equal), following Iglewicz & Hoaglin (1993). The
    bounds are at least ``min_fold`` times (and at most 1/``min_fold`` of) the median: for small
    counts such as quantities (mostly 1, a few up to 10) the log-MAD is tiny and would otherwise
    flag ordinary values. :class:`segkit.data.engine.TransactionLog` computes the statistics of the
    positive order values and line quantities in SQL (exact medians, out-of-core).

    Parameters
    ----------
    center : float
        Median of the logs (NaN when there are no values).
    mad : float
        Median absolute deviation of the logs from ``center`` (unscaled).
    mean_deviation : float
        Mean absolute deviation of the logs from ``center``; used only when ``mad`` is 0.
    k : float
        Width of the rule in scaled deviations of the logs (``audit.outlier_k``).
    min_fold : float
        The bounds are never closer to the median than this factor (``audit.outlier_min_fold``).

    Returns
    -------
    (median, scale_log, low, high) : tuple of float

    Examples
    --------
    >>> [round(v, 3) for v in log_bounds(0.0, 0.5, float("nan"), k=1)]
    [1.0, 0.741, 0.476, 2.099]
    """
    if center is None or np.isnan(center):
        return (np.nan, np.nan, np.nan, np.nan)
    scale = MAD_SCALE * mad
    if scale == 0:
        scale = MEAN_AD_SCALE * mean_deviation
    median = float(np.exp(center))
    # exp(log(x)) may miss x by one ulp: widen by 1e-12 so values on a bound are inside it.
    low = min(float(np.exp(center - k * scale)), median / min_fold) * (1 - 1e-12)
    high = max(float(np.exp(center + k * scale)), median * min_fold) * (1 + 1e-12)
    return (median, scale, low, high)


def volume_from_counts(
    counts: pd.DataFrame,
    *,
    window_days: int,
    spike_k: float,
    open_weekday_share: float,
    gap_max_probability: float,
    min_days: int,
) -> pd.DataFrame:
    """Orders per day over the data's period, with the expected volume, gaps and spikes.

    ``counts`` has one row per calendar day with order lines (``date, orders, revenue``:
    distinct orders and revenue, computed from the clean lines by
    :meth:`segkit.data.engine.TransactionLog.clean_facts`); days without lines count 0.

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
    >>> counts = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-03"]), "orders": [2, 1],
    ...                        "revenue": [5.0, 1.0]})
    >>> daily = volume_from_counts(counts, window_days=29, spike_k=5, open_weekday_share=0.5,
    ...                            gap_max_probability=0.001, min_days=28)
    >>> daily["orders"].tolist(), bool(daily["is_gap"].any())
    ([2, 0, 1], False)
    """
    columns = ["date", "weekday", "orders", "revenue", "rolling_7d", "expected", "open_weekday", "is_gap", "is_spike"]
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            columns, ["datetime64[ns]", "string", "int64", "float64", "float64", "float64", "bool", "bool", "bool"])})
    by_day = counts.set_index(pd.DatetimeIndex(counts["date"]).floor("D"))
    days = pd.date_range(by_day.index.min(), by_day.index.max(), freq="D")
    orders = by_day["orders"].reindex(days, fill_value=0).astype("int64")
    revenue = by_day["revenue"].reindex(days, fill_value=0.0).astype("float64")
    weekday = pd.Series(days.day_of_week, index=days)
    open_share = (orders > 0).groupby(weekday).mean()
    open_day = weekday.map(open_share).to_numpy() >= open_weekday_share
    basis = orders.astype("float64").where(open_day & (orders > 0))
    expected = basis.rolling(window_days, center=True, min_periods=1).median()
    expected = expected.interpolate(limit_direction="both") if expected.notna().any() else expected
    assess = len(days) >= min_days and expected.notna().any()
    if assess:
        residual = (orders - expected)[basis.notna()]
        scale = MAD_SCALE * float(np.median(np.abs(residual))) if len(residual) else 0.0
        noise = np.maximum(scale, np.sqrt(expected.to_numpy()))
        is_gap = open_day & (orders.to_numpy() == 0) & (np.exp(-expected.to_numpy()) < gap_max_probability)
        is_spike = orders.to_numpy() > expected.to_numpy() + spike_k * noise
    else:
        is_gap = is_spike = np.zeros(len(days), dtype=bool)
    return pd.DataFrame({
        "date": days.astype("datetime64[ns]"),
        "weekday": pd.Series(days.day_name(), dtype="string").to_numpy(),
        "orders": orders.to_numpy(),
        "revenue": revenue.to_numpy(),
        "rolling_7d": orders.rolling(7, min_periods=1).mean().to_numpy(),
        "expected": expected.to_numpy(),
        "open_weekday": open_day,
        "is_gap": np.asarray(is_gap, dtype=bool),
        "is_spike": np.asarray(is_spike, dtype=bool),
    }).astype({"weekday": "string"})


TX_INPUT_CHECKS: tuple[str, ...] = ("exact_duplicates", "missing_order_date", "missing_amount", "guest_checkouts",
                                    "negative_price", "zero_price", "future_dates", "after_as_of")


# Dropping cleaning rules for transactions, in the order applied: (check whose rows it drops, rule).
TX_DROP_RULES: tuple[tuple[str, str], ...] = (
    ("exact_duplicates", "exact duplicate rows"),
    ("missing_order_date", "rows without order date"),
    ("missing_amount", "rows without amount"),
    ("guest_checkouts", "rows without customer id (guest checkouts)"),
    ("negative_price", "lines with a negative unit price"),
    ("future_dates", "far-future order dates"),
    ("after_as_of", "orders on or after as_of"),
)


@dataclass
class InputFacts:
    """What the row checks found in the input transactions (:meth:`segkit.data.engine.TransactionLog.input_facts`).

    ``counts`` and ``rows`` are keyed by :data:`TX_INPUT_CHECKS`: rows of the *input* with that
    property, and the first :func:`row_limit` of them in input order (with ``_row``).
    ``dropped`` is keyed by the checks of :data:`TX_DROP_RULES`: rows each rule removed, applied in
    order. ``filled``, ``returns_flagged``, ``zero_flagged``: rows of the clean table with a filled
    order id, flagged ``is_return``, with a zero price. ``guest_revenue``: money of the input rows without
    customer id; ``guest_dropped_revenue``: of those the guest rule removed (``dropped["guest_checkouts"]``,
    after exact duplicates). ``identical_without_order_id``: copies (after the first) of lines without an
    order id that equal another line in every column: ``lines, customers, amount`` (their money),
    ``action`` (``kept`` or ``dropped``: ``audit.identical_lines_without_order_id``), ``rows`` (the first).
    """

    n_rows: int
    counts: dict[str, int]
    rows: dict[str, pd.DataFrame]
    guest_revenue: float
    cutoff: pd.Timestamp | None
    as_of: pd.Timestamp | None
    dropped: dict[str, int]
    filled: int
    returns_flagged: int
    zero_flagged: int
    guest_dropped_revenue: float = 0.0
    identical_without_order_id: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutlierFacts:
    """One robust outlier rule applied: ``stats`` = (median, scale_log, low, high) of
    :func:`log_bounds`, ``n`` values checked, ``flagged`` outside, the first flagged ``rows``;
    ``flagged_lines`` = order lines of the flagged orders (order-value rule only)."""

    stats: tuple[float, float, float, float]
    n: int
    flagged: int
    rows: pd.DataFrame
    flagged_lines: int = 0


@dataclass
class CleanFacts:
    """What the checks on the clean transactions found (:meth:`segkit.data.engine.TransactionLog.clean_facts`).

    ``order_values`` (``order_id, value, is_outlier``) and ``quantities`` (``quantity, is_outlier``)
    are plot inputs: every purchase order / line up to ``engine.plot_sample``, a deterministic
    sample above it.
    """

    n_clean: int
    returns: dict[str, float]
    return_rows: pd.DataFrame
    near_count: int
    near_rows: pd.DataFrame
    near_same: list[str]
    order_rule: OutlierFacts
    quantity_rule: OutlierFacts
    order_values: pd.DataFrame
    quantities: pd.DataFrame
    daily: pd.DataFrame


#: Invisible characters removed from every id and text cell of the cleaned tables:
#: the C0 controls but tab, line feed and carriage return (ordinary whitespace, kept inside a value
#: and trimmed around it), DEL, the C1 controls, and the bidirectional embeddings, overrides and
#: isolates (U+202A–U+202E, U+2066–U+2069), which make text display in another order than it is.
CONTROL_CHARACTER_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))

#: :data:`CONTROL_CHARACTER_RANGES` as an RE2 character class (DuckDB's ``regexp_*`` and pyarrow's
#: ``*_regex`` functions both use RE2, so one pattern serves the order lines and the customer tables).
CONTROL_CHARACTER_CLASS: str = "[" + "".join(
    f"\\x{{{low:04X}}}-\\x{{{high:04X}}}" for low, high in CONTROL_CHARACTER_RANGES) + "]"


def is_control_character(char: str) -> bool:
    """True for a character of :data:`CONTROL_CHARACTER_RANGES`.

    Examples
    --------
    >>> [is_control_character(c) for c in ("\\x00", "\\t", "\\u202e", "é")]
    [True, False, True, False]
    """
    code = ord(char)
    return any(low <= code <= high for low, high in CONTROL_CHARACTER_RANGES)


def escape_control_characters(text: str) -> str:
    """``text`` with each control character written as an escape (``\\x00``, ``\\u202e``), for messages.

    Examples
    --------
    >>> print(escape_control_characters("C\\x00000002 \\u202eabc"))
    C\\x00000002 \\u202eabc
    """
    return "".join((f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") if is_control_character(c) else c
                   for c in text)


@dataclass
class ControlCharacterFacts:
    """Cells of one column holding :data:`CONTROL_CHARACTER_RANGES` characters (any table).

    ``count``: cells changed; ``rows``: the first :func:`row_limit` of them in input order, ``_row``
    and the column's value *as read*; ``collisions``: distinct cleaned values that equal a value
    of the column that had no control characters (ids that now name another row's customer, order
    or product).
    """

    table: str
    column: str
    count: int
    rows: pd.DataFrame
    collisions: int


#: Offending rows kept per column with control characters (``audit.examples`` is at most 100).
CONTROL_ROWS = 100


def row_limit(settings: AuditSettings) -> int:
    """Offending rows kept per check: enough for the examples and the explorer (10).

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> row_limit(AuditSettings.from_config(load_config()))
    10
    """
    return max(10, settings.examples)
