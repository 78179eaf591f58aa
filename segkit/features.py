"""Customer features for clustering: a behaviour table from the cleaned tables, and a fitted builder.

Two steps, kept apart so that a model fitted on one month can score the next:

1. :func:`customer_table` — a pure function from the cleaned tables (``transactions_clean``,
   optionally ``customers_clean`` and ``campaign_clean``) to one row per buying customer with
   interpretable values: RFM, average order value, median days between orders, category breadth,
   return share, share of orders per channel, favourite category (the relational core's behaviour
   query, :mod:`segkit.data.relational`, run by DuckDB), e-mail engagement, and the customer's
   attributes (region, channels, age band, ...).
2. :class:`FeatureBuilder` — a scikit-learn transformer that picks the features that exist,
   imputes missing values explicitly (and reports how many per column), log-transforms skewed
   amounts, standardises numeric columns and caps rare categories. Everything is learnt in
   ``fit`` and reused by ``transform`` for new customers. What ``fit`` needs of all customers is a
   few bounded summaries (:meth:`FeatureBuilder.fit_summaries`, :mod:`segkit.data.bounded`), which
   Spark executors compute as well (:mod:`segkit.data.spark_sample`).

Examples
--------
>>> tx = pd.DataFrame({
...     "customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"],
...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-11", "2024-01-05"]),
...     "amount": [20.0, 40.0, 10.0], "category": ["toys", "books", "toys"],
...     "channel": ["web", "app", "web"]})
>>> table = customer_table(tx, as_of="2024-01-21")
>>> table[["customer_id", "frequency", "aov", "median_days_between_orders"]]
  customer_id  frequency   aov  median_days_between_orders
0           a          2  30.0                        10.0
1           b          1  10.0                         NaN
>>> fb = FeatureBuilder(numeric=["frequency", "aov"], categorical=["favourite_category"]).fit(table)
>>> fb.transform(table).round(2)  # doctest: +NORMALIZE_WHITESPACE
             frequency  aov favourite_category
customer_id
a                  1.0  1.0              books
b                 -1.0 -1.0               toys
"""

from __future__ import annotations

import fnmatch
import functools
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from segkit.core.dates import resolve_as_of
from segkit.core.errors import ConfigError, DataError, format_rows
from segkit.core.labels import OTHER, UNKNOWN, feature_label
from segkit.core.modelio import float_array, from_pairs, model_dict, model_parts, pairs
from segkit.data.bounded import ColumnCounts, FrameSummaries, TableSummaries, numeric_values
from segkit.data.engine import OrderLines

__all__ = ["BEHAVIOUR_FEATURES", "PROFILE_FEATURES", "LOG_FEATURES", "DEFAULT_IMPUTE", "AGE_BANDS",
    "EXCLUDED_ATTRIBUTES", "CUSTOMER_COLUMN_ORDER", "email_engagement", "customer_attributes", "customer_table",
    "resolve_features", "signed_log1p", "FeatureBuilder"]

# Default feature lists (the `clustering.feature_sets` of clustering.yml override them).
# "a|b" means: the first of these columns that exists (region is coarser than country).
BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "aov", "tenure_days",
    "median_days_between_orders", "category_breadth", "return_share", "channel_share_*",
    "open_rate", "click_rate",
)
PROFILE_FEATURES: tuple[str, ...] = (
    "region|country", "acquisition_channel", "preferred_channel", "favourite_category", "age_band",
)
LOG_FEATURES: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "aov", "tenure_days",
    "median_days_between_orders", "category_breadth",
)
# How a missing numeric value is filled: "median", "zero", a number, or "column:<name>".
# A one-order customer has no gap between orders: at least the time since that order has
# passed, so the tenure is the honest lower bound.
DEFAULT_IMPUTE: dict[str, Any] = {"median_days_between_orders": "column:tenure_days"}
AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 55, "45-54"),
    (55, 65, "55-64"), (65, 200, "65+"),
)
_EMPTY_TABLE = ("The customer table is empty: there are no buying customers to cluster. "
               "Check the data audit (cleaned transactions) and as_of.")
# Sensitive attributes never used as clustering features (they can still be profiled).
EXCLUDED_ATTRIBUTES: tuple[str, ...] = ("gender", "birth_year")
#: The order of the columns :func:`customer_table` puts after the behaviour columns, where available: the
#: campaign columns of :func:`email_engagement`, then the attributes of :func:`customer_attributes`.
#: A table built in parts (a Spark bucket each, :mod:`segkit.steps.cluster`) orders their union by it.
CUSTOMER_COLUMN_ORDER: tuple[str, ...] = (
    "emails_received", "open_rate", "click_rate",
    "country", "region", "acquisition_channel", "preferred_channel", "age_band", "email_opt_in",
)


def email_engagement(campaign: pd.DataFrame | None, control_arm: str = "control") -> pd.DataFrame:
    """Open and click rates per customer over the e-mails delivered to them.

    Control-arm rows (no e-mail sent) are left out; without a ``delivered`` column every
    remaining row counts as delivered.

    Parameters
    ----------
    campaign : DataFrame or None
        Canonical campaign rows (``customer_id, arm`` and ``opened``/``clicked`` if known).
    control_arm : str
        Name of the hold-out arm (``campaign.control_arm`` in the config).

    Returns
    -------
    DataFrame
        Index ``customer_id``; columns ``emails_received`` and, when the flags exist,
        ``open_rate``, ``click_rate``. Empty without campaign data.

    Examples
    --------
    >>> camp = pd.DataFrame({"customer_id": ["a", "a", "b"], "arm": ["email", "email", "control"],
    ...                      "opened": [True, False, False], "clicked": [False, False, False]})
    >>> email_engagement(camp)  # doctest: +NORMALIZE_WHITESPACE
                 emails_received  open_rate  click_rate
    customer_id
    a                          2        0.5         0.0
    """
    if campaign is None or campaign.empty or "customer_id" not in campaign.columns:
        return pd.DataFrame(index=pd.Index([], name="customer_id", dtype="string"))
    rows = campaign
    if "arm" in rows.columns:
        rows = rows.loc[rows["arm"].astype("string") != control_arm]
    if "delivered" in rows.columns:
        rows = rows.loc[rows["delivered"].fillna(True).astype(bool)]
    ids = rows["customer_id"].astype("string")
    out = pd.DataFrame({"emails_received": ids.groupby(ids.to_numpy()).size()})
    for flag, name in (("opened", "open_rate"), ("clicked", "click_rate")):
        if flag in rows.columns:
            values = rows[flag].astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            out[name] = pd.Series(values).groupby(ids.to_numpy()).mean()
    out.index = pd.Index(out.index, name="customer_id", dtype="string")
    return out.sort_index()


def customer_attributes(customers: pd.DataFrame | None, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Categorical attributes per customer from the customers table.

    Keeps ``country, region, acquisition_channel, preferred_channel, age_band`` and
    ``email_opt_in`` (as ``"yes"/"no"``) where present; a missing ``age_band`` is derived from
    ``birth_year`` and ``as_of``. Gender and birth year are not returned: segkit does not
    cluster customers on sensitive attributes.

    Examples
    --------
    >>> cust = pd.DataFrame({"customer_id": ["a", "b"], "country": ["DE", None],
    ...                      "birth_year": [1990, 1950]})
    >>> customer_attributes(cust, pd.Timestamp("2024-06-01"))  # doctest: +NORMALIZE_WHITESPACE
                country age_band
    customer_id
    a                DE    25-34
    b               NaN      65+
    """
    if customers is None or customers.empty:
        return pd.DataFrame(index=pd.Index([], name="customer_id", dtype="string"))
    if "customer_id" not in customers.columns:
        raise DataError("customers: column 'customer_id' is missing; map it in columns.customers.")
    out = pd.DataFrame(index=pd.Index(customers["customer_id"].astype("string"), name="customer_id"))
    for col in ("country", "region", "acquisition_channel", "preferred_channel", "age_band"):
        if col in customers.columns and customers[col].notna().any():
            out[col] = customers[col].astype("string").to_numpy()
    if "birth_year" in customers.columns and as_of is not None:
        age = as_of.year - pd.to_numeric(customers["birth_year"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        band = pd.Series(pd.NA, index=out.index, dtype="string")
        for lo, hi, name in AGE_BANDS:
            band[(age >= lo) & (age < hi)] = name
        out["age_band"] = out["age_band"].fillna(band) if "age_band" in out.columns else band
        if out["age_band"].isna().all():
            out = out.drop(columns="age_band")
    if "email_opt_in" in customers.columns and customers["email_opt_in"].notna().any():
        flag = customers["email_opt_in"].astype("boolean")
        out["email_opt_in"] = pd.array(np.where(flag.fillna(False), "yes", "no"), dtype="string")
        out.loc[flag.isna().to_numpy(), "email_opt_in"] = pd.NA
    out = out[~out.index.duplicated(keep="first")]
    return out


def _behaviour_columns(transactions: pd.DataFrame, as_of: str | pd.Timestamp | None, rfm: pd.DataFrame | None,
                       max_channels: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The behaviour columns of :func:`customer_table` from the order lines in memory
    (:meth:`segkit.data.engine.OrderLines.behaviour`, as for files), and the analysis date."""
    for col in ("customer_id", "order_date", "amount"):
        if col not in transactions.columns:
            raise DataError(f"transactions: column {col!r} is missing; the features need "
                            "customer_id, order_date and amount (map them in columns.transactions).")
    dates = pd.to_datetime(transactions["order_date"], errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        raise DataError(f"transactions: column 'order_date' has {int(bad.sum())} missing or unreadable dates "
                        f"({format_rows(np.flatnonzero(bad))}). The data audit (01_data_audit) removes or "
                        "reports them; run it first or fix the dates.")
    transactions = transactions.assign(order_date=dates)
    as_of_ts = resolve_as_of(as_of, dates)
    if rfm is not None:
        known = pd.Index(transactions["customer_id"].astype("string")[(dates < as_of_ts).to_numpy()].unique())
        unknown = ~rfm["customer_id"].astype("string").isin(known).to_numpy()
        if unknown.any():
            raise DataError("The RFM table lists customers without order lines before as_of "
                            f"({format_rows(np.flatnonzero(unknown))}); rebuild it from the same data.")
    return OrderLines(transactions).behaviour(as_of_ts, max_channels, rfm), as_of_ts


def customer_table(
    transactions: pd.DataFrame | None,
    customers: pd.DataFrame | None = None,
    campaign: pd.DataFrame | None = None,
    as_of: str | pd.Timestamp | None = None,
    *,
    rfm: pd.DataFrame | None = None,
    control_arm: str = "control",
    max_channels: int = 6,
    behaviour: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per buying customer with interpretable behaviour and attribute columns.

    Parameters
    ----------
    transactions : DataFrame
        Canonical order lines (``transactions_clean``): ``customer_id, order_date, amount`` and,
        when known, ``order_id, category, channel, is_return``. Lines on or after ``as_of``
        are ignored.
    customers, campaign : DataFrame, optional
        ``customers_clean`` / ``campaign_clean``; their columns are added when present.
    as_of : str or Timestamp, optional
        Analysis date (exclusive). None = the day after the last order.
    rfm : DataFrame, optional
        The RFM table of the same transactions and ``as_of`` (artifact ``rfm``); computed with
        the relational core's RFM base (:func:`segkit.data.orders.rfm_table`) when not given.
    control_arm : str
        Hold-out arm of the campaign table (its rows carry no e-mail).
    max_channels : int
        Channels with their own share column (the rest are pooled as ``other``).
    behaviour : DataFrame, optional
        The behaviour columns already computed (:meth:`segkit.data.engine.OrderLines.behaviour`, e.g.
        over the run's clean file by :func:`segkit.steps.sources.behaviour_for`, with
        ``attrs["as_of"]``); then ``transactions`` and ``rfm`` are not used.

    Returns
    -------
    DataFrame
        Sorted by ``customer_id``; customers with at least one purchase order (net > 0), as in
        RFM. Columns: ``customer_id, recency_days, frequency, monetary_total, aov`` (mean net
        value of a purchase order), ``tenure_days, median_days_between_orders`` (NaN with one
        purchase day), ``category_breadth`` (distinct categories bought), ``return_share``
        (returned value / purchased value, 0–1), ``channel_share_<channel>…``,
        ``favourite_category``, then ``emails_received, open_rate, click_rate`` (campaign) and
        the attributes of :func:`customer_attributes` (customers), where available.
        ``attrs``: ``as_of``, and ``original_values`` (``channel_share_<slug>`` → the channel as
        typed in the data, for names and texts; :class:`FeatureBuilder` keeps it).

    Raises
    ------
    DataError
        Required columns missing or no purchase before ``as_of``.
    """
    if behaviour is None:
        base, as_of_ts = _behaviour_columns(transactions, as_of, rfm, max_channels)
    else:
        base, as_of_ts = behaviour.copy(), pd.Timestamp(behaviour.attrs["as_of"])
    originals = dict(base.attrs.get("original_values") or {})
    base = base.set_index("customer_id")
    engagement = email_engagement(campaign, control_arm)
    if not engagement.empty:
        base = base.join(engagement, how="left")
        base["emails_received"] = base["emails_received"].fillna(0).astype("int64")
    attrs = customer_attributes(customers, as_of_ts)
    if not attrs.empty:
        base = base.join(attrs, how="left")
    added = [c for c in CUSTOMER_COLUMN_ORDER if c in base.columns]
    base = base[[c for c in base.columns if c not in added] + added]
    base = base.sort_index(kind="stable").reset_index()
    base.attrs.update(as_of=str(as_of_ts.date()), original_values=originals)
    return base


# =============================================================================== builder
def resolve_features(table: pd.DataFrame, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Columns of ``table`` named by ``patterns`` (``*`` globs, ``a|b`` = first that exists).

    Returns the matched columns (in pattern order, without repeats) and the patterns that
    matched nothing.

    Examples
    --------
    >>> t = pd.DataFrame(columns=["region", "country", "channel_share_web", "frequency"])
    >>> resolve_features(t, ["frequency", "channel_share_*", "region|country", "open_rate"])
    (['frequency', 'channel_share_web', 'region'], ['open_rate'])
    """
    found: list[str] = []
    missing: list[str] = []
    cols = [str(c) for c in table.columns]
    for pat in patterns:
        hits: list[str] = []
        for alt in str(pat).split("|"):
            hits = sorted(fnmatch.filter(cols, alt)) if any(ch in alt for ch in "*?[") else [alt] * (alt in cols)
            if hits:
                break
        if not hits:
            missing.append(str(pat))
        found += [h for h in hits if h not in found]
    return found, missing


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) · log(1 + |x|)``: log1p that keeps negative amounts (net refunds) finite.

    Examples
    --------
    >>> signed_log1p(np.array([-1.0, 0.0, np.e - 1])).round(3).tolist()
    [-0.693, 0.0, 1.0]
    """
    return np.sign(x) * np.log1p(np.abs(x))


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """Customer table → model-ready features, learnt once and reused for new customers.

    Parameters
    ----------
    numeric : sequence of str
        Numeric feature patterns (``*`` globs; ``a|b`` = the first that exists). Columns that do
        not exist, are entirely missing or constant are skipped (see ``skipped_features_``).
    categorical : sequence of str
        Categorical feature patterns, same rules. ``gender``/``birth_year`` are refused.
    log : sequence of str
        Numeric columns transformed with :func:`signed_log1p` before scaling (skewed amounts).
    impute : mapping, optional
        Column → how to fill missing values: ``"median"`` (default), ``"zero"``, a number, or
        ``"column:<name>"`` (the value of another column of the same customer, e.g. tenure for
        the gap between orders of a one-order customer). Categorical gaps become ``"Unknown"``.
    max_categories : int
        Most frequent levels kept per categorical column; the others become ``"Other"``.
    min_category_share : float
        Levels rarer than this share also become ``"Other"``.
    clip : float or None
        Scaled values are clipped to ±``clip`` standard deviations (outliers cannot form
        their own cluster); None = no clipping.

    Attributes
    ----------
    numeric_features_, categorical_features_ : list of str
    skipped_features_ : dict
        Pattern or column → why it was not used.
    impute_values_ : dict
        Numeric column → fill value (a number, or ``"column:<name>"``).
    center_, scale_ : Series
        Mean and standard deviation of each numeric feature after imputation and log.
    categories_ : dict
        Categorical column → levels kept (others map to ``"Other"``).
    missing_report_ : DataFrame
        Missing values of the fitted table per feature (see :meth:`missing_report`).
    original_values_ : dict
        Used feature made per category value (``channel_share_<slug>``) → that value as typed in
        the data (the fitted table's ``attrs["original_values"]``, see :func:`customer_table`), for
        cluster names and texts; :func:`segkit.core.labels.feature_label` reads it.

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": ["a", "b", "c"], "frequency": [1.0, 3.0, np.nan],
    ...                   "region": ["N", None, "S"]})
    >>> fb = FeatureBuilder(numeric=["frequency"], categorical=["region"], log=[]).fit(t)
    >>> fb.impute_values_
    {'frequency': 2.0}
    >>> fb.missing_report_[["feature", "missing", "filled_with"]]
         feature  missing filled_with
    0  frequency        1           2
    1     region        1     Unknown
    """

    def __init__(self, numeric: Sequence[str] = BEHAVIOUR_FEATURES,
                 categorical: Sequence[str] = PROFILE_FEATURES, log: Sequence[str] = LOG_FEATURES,
                 impute: Mapping[str, Any] | None = None, max_categories: int = 8,
                 min_category_share: float = 0.01, clip: float | None = 5.0):
        self.numeric = numeric
        self.categorical = categorical
        self.log = log
        self.impute = impute
        self.max_categories = max_categories
        self.min_category_share = min_category_share
        self.clip = clip

    # ------------------------------------------------------------------ helpers
    def _rules(self) -> dict[str, Any]:
        return {**DEFAULT_IMPUTE, **dict(self.impute or {})}

    def _fill_rule(self, col: str, median: float, columns: Sequence[str]) -> Any:
        rule = self._rules().get(col, "median")
        if isinstance(rule, (int, float)) and not isinstance(rule, bool):
            return float(rule)
        if rule == "zero":
            return 0.0
        if rule == "median":
            return median
        if isinstance(rule, str) and rule.startswith("column:"):
            other = rule.split(":", 1)[1]
            if other not in columns:
                raise ConfigError(f"impute rule for {col!r} refers to column {other!r}, which the "
                                  f"customer table does not have. Use 'median' or an existing column.")
            return rule
        raise ConfigError(f"impute rule {rule!r} for {col!r} is unknown; use 'median', 'zero', a "
                          "number or 'column:<name>'.")

    def _filled(self, table: pd.DataFrame, col: str) -> np.ndarray:
        values = numeric_values(table, col)
        fill = self.impute_values_[col]
        miss = ~np.isfinite(values)
        if miss.any():
            if isinstance(fill, str):
                other = numeric_values(table, fill.split(":", 1)[1])
                values = np.where(miss, other, values)
                values = np.where(np.isfinite(values), values, self.center_raw_[col])
            else:
                values = np.where(miss, fill, values)
        return values

    def _log_part(self, col: str, values: np.ndarray) -> np.ndarray:
        return signed_log1p(values) if col in self.log_features_ else values

    # ------------------------------------------------------------------ estimator API
    def fit(self, table: pd.DataFrame, y: None = None) -> "FeatureBuilder":
        """Learn which features exist, fill values, log/scale parameters and category levels.

        The whole-table statistics are those of :class:`segkit.data.bounded.FrameSummaries`
        (:meth:`fit_summaries` does the fitting, for a pandas table and for Spark alike).
        """
        if not isinstance(table, pd.DataFrame) or table.empty:
            raise DataError(_EMPTY_TABLE)
        return self.fit_summaries(FrameSummaries(table))

    def fit_summaries(self, summaries: TableSummaries) -> "FeatureBuilder":
        """Fit from whole-table summaries instead of the table: bounded inputs, asked for in order.

        What the builder learns from all customers, and nothing else: the table's columns (which
        features exist), :class:`~segkit.data.bounded.ColumnCounts` (rows, finite values per numeric
        column, missing values and the count of every level per categorical column), the median of
        each numeric column with a value (fill value and fallback), and the mean and standard
        deviation of every numeric feature after filling and log (:meth:`unscaled`, summed by
        :meth:`~segkit.data.bounded.TableSummaries.moments`). :meth:`fit` calls it with
        :class:`~segkit.data.bounded.FrameSummaries`; :class:`segkit.data.spark_sample.SparkSummaries`
        computes the same summaries on Spark executors.

        Parameters
        ----------
        summaries : segkit.data.bounded.TableSummaries

        Returns
        -------
        FeatureBuilder
            ``self``, fitted as :meth:`fit` on the table the summaries describe.

        Raises
        ------
        DataError
            An empty table, or no usable feature.
        ConfigError
            A sensitive attribute among the features, or an unknown fill rule.
        """
        banned = [c for c in self.categorical for alt in str(c).split("|") if alt in EXCLUDED_ATTRIBUTES]
        if banned:
            raise ConfigError(f"Feature(s) {banned} are sensitive attributes and are not used for "
                              "clustering; remove them from clustering.feature_sets.")
        columns = list(summaries.columns)
        shape = pd.DataFrame(columns=columns)
        numeric, miss_num = resolve_features(shape, self.numeric)
        categorical, miss_cat = resolve_features(shape, self.categorical)
        numeric = [c for c in numeric if c != "customer_id"]
        categorical = [c for c in categorical if c != "customer_id" and c not in numeric]
        counts = summaries.counts(numeric, categorical)
        if counts.rows == 0:
            raise DataError(_EMPTY_TABLE)
        self.skipped_features_ = {p: "not in the data" for p in miss_num + miss_cat}
        kept_num = []
        for col in numeric:
            if counts.finite[col] == 0:
                self.skipped_features_[col] = "no values"
            else:
                kept_num.append(col)
        medians = summaries.medians(kept_num)
        self.impute_values_ = {col: self._fill_rule(col, medians[col], columns) for col in kept_num}
        self.center_raw_ = {col: medians[col] for col in kept_num}
        self.log_features_ = [c for c in kept_num if c in set(self.log)]
        moments = summaries.moments(functools.partial(self.unscaled, columns=tuple(kept_num)))
        center, scale = {}, {}
        for col in list(kept_num):
            sd = moments.std(col)
            if not sd > 1e-12:
                self.skipped_features_[col] = "constant"
                kept_num.remove(col)
                del self.impute_values_[col]
                continue
            center[col], scale[col] = moments.mean(col), sd
        self.categories_ = {}
        kept_cat = []
        for col in categorical:
            level_counts = counts.levels[col]
            ranked = sorted(level_counts, key=lambda v: (-level_counts[v], str(v)))
            levels = [v for v in ranked if level_counts[v] >= self.min_category_share * counts.rows][: self.max_categories]
            others = any(v not in levels for v, c in level_counts.items() if c > 0)
            if len(set(levels) | ({OTHER} if others else set())) < 2:
                self.skipped_features_[col] = "a single level"
                continue
            self.categories_[col] = sorted(levels)
            kept_cat.append(col)
        if not kept_num and not kept_cat:
            raise DataError(f"None of the feature patterns {list(self.numeric) + list(self.categorical)} "
                            f"gives a usable column (skipped: {self.skipped_features_}). Check the "
                            "feature set in clustering.yml against the customer table's columns.")
        self.numeric_features_, self.categorical_features_ = kept_num, kept_cat
        originals = summaries.attrs.get("original_values") or {}
        self.original_values_ = {c: str(originals[c]) for c in kept_num if c in originals}
        self.center_, self.scale_ = pd.Series(center, dtype=float), pd.Series(scale, dtype=float)
        self.missing_report_ = self._report(counts)
        self.n_features_in_ = len(columns)
        return self

    def unscaled(self, table: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Numeric features filled and log-transformed, before standardising (what ``center_`` and
        ``scale_`` are the mean and standard deviation of).

        Parameters
        ----------
        table : DataFrame
            A customer table (or a part of one: the values are computed row by row).
        columns : sequence of str, optional
            Numeric features with a fill value (default: ``numeric_features_``).
        """
        cols = list(self.numeric_features_ if columns is None else columns)
        # copy=False: each column is a new array already (pandas would copy them all into one block)
        return pd.DataFrame({c: self._log_part(c, self._filled(table, c)) for c in cols}, index=table.index,
                            columns=cols, dtype=np.float64, copy=False)

    def _report(self, counts: ColumnCounts) -> pd.DataFrame:
        rows = []
        n = max(counts.rows, 1)
        for col in self.numeric_features_:
            miss = counts.rows - int(counts.finite[col])
            fill = self.impute_values_[col]
            rows.append((col, "numeric", miss, miss / n,
                         fill.replace("column:", "value of ") if isinstance(fill, str) else f"{fill:g}"))
        for col in self.categorical_features_:
            miss = int(counts.missing[col])
            rows.append((col, "categorical", miss, miss / n, UNKNOWN))
        return pd.DataFrame(rows, columns=["feature", "kind", "missing", "share", "filled_with"])

    def missing_report(self, table: pd.DataFrame) -> pd.DataFrame:
        """Missing values per used feature of ``table`` and what they are filled with.

        Columns ``feature, kind, missing, share, filled_with``.
        """
        check_is_fitted(self, "categories_")
        return self._report(ColumnCounts.of(table, self.numeric_features_, self.categorical_features_))

    def describe(self) -> pd.DataFrame:
        """The features used and how each enters the model, with the fitted table's missing values.

        Columns ``feature, kind, transformation, missing, share, filled_with``.

        Examples
        --------
        >>> t = pd.DataFrame({"frequency": [1.0, 2.0, 6.0], "region": ["N", "S", "S"]})
        >>> FeatureBuilder(numeric=["frequency"], categorical=["region"]).fit(t).describe()["transformation"].tolist()
        ['log(1 + x), standardised, clipped at ±5 sd', 'levels: N, S']
        """
        check_is_fitted(self, "categories_")
        how = {}
        for col in self.numeric_features_:
            how[col] = ("log(1 + x), standardised" if col in self.log_features_ else "standardised") + (
                f", clipped at ±{self.clip:g} sd" if self.clip is not None else "")
        for col in self.categorical_features_:
            how[col] = "levels: " + ", ".join(self.categories_[col])
        for col in self.original_values_:
            how[col] = f"{feature_label(col, self.original_values_)}: {how[col]}"
        out = self.missing_report_.copy()
        out.insert(2, "transformation", out["feature"].map(how))
        return out

    def _check_columns(self, table: pd.DataFrame) -> None:
        need = self.numeric_features_ + self.categorical_features_
        need += [v.split(":", 1)[1] for v in self.impute_values_.values() if isinstance(v, str)]
        missing = sorted(set(c for c in need if c not in table.columns))
        if missing:
            raise DataError(f"The customer table lacks column(s) {missing} that the fitted features "
                            "use; build it with segkit.features.customer_table from the same kind of data.")

    def imputed(self, table: pd.DataFrame) -> pd.DataFrame:
        """The used features with missing values filled, on their original scale (for profiles)."""
        check_is_fitted(self, "categories_")
        self._check_columns(table)
        out = pd.DataFrame({c: self._filled(table, c) for c in self.numeric_features_}, index=table.index)
        for col in self.categorical_features_:
            out[col] = table[col].astype("string").fillna(UNKNOWN)
        return self._indexed(out, table)

    @staticmethod
    def _indexed(out: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
        if "customer_id" in table.columns:
            out.index = pd.Index(table["customer_id"].astype("string"), name="customer_id")
        return out

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """Model features: numeric ones filled, log-transformed, standardised (and clipped),
        then categorical ones as strings with unseen/rare levels mapped to ``"Other"``.

        The index is ``customer_id`` when the table has that column.
        """
        check_is_fitted(self, "categories_")
        self._check_columns(table)
        data = {}
        for col in self.numeric_features_:
            z = (self._log_part(col, self._filled(table, col)) - self.center_[col]) / self.scale_[col]
            data[col] = np.clip(z, -self.clip, self.clip) if self.clip is not None else z
        out = pd.DataFrame(data, index=table.index, dtype=np.float64)
        for col in self.categorical_features_:
            values = table[col].astype("string").fillna(UNKNOWN)
            out[col] = values.where(values.isin(self.categories_[col]), OTHER).astype("string")
        return self._indexed(out, table)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "categories_")
        return np.array(self.numeric_features_ + self.categorical_features_, dtype=object)

    # ------------------------------------------------------------------ saving (no pickle)
    _REPORT_COLUMNS = ("feature", "kind", "missing", "share", "filled_with")

    def to_dict(self) -> dict:
        """The parameters and fitted state as plain JSON-able values (see :mod:`segkit.core.modelio`).

        Floats are Python floats, so ``json`` round-trips them exactly and
        :meth:`from_dict` rebuilds a builder whose ``transform`` gives the same bits.

        Examples
        --------
        >>> import json
        >>> t = pd.DataFrame({"frequency": [1.0, 2.0, 6.0], "region": ["N", "S", "S"]})
        >>> fb = FeatureBuilder(numeric=["frequency"], categorical=["region"]).fit(t)
        >>> again = FeatureBuilder.from_dict(json.loads(json.dumps(fb.to_dict())))
        >>> again.transform(t).equals(fb.transform(t))
        True
        """

        check_is_fitted(self, "categories_")
        params = {"numeric": list(self.numeric), "categorical": list(self.categorical), "log": list(self.log),
                  "impute": None if self.impute is None else pairs(dict(self.impute)),
                  "max_categories": int(self.max_categories),
                  "min_category_share": float(self.min_category_share),
                  "clip": None if self.clip is None else float(self.clip)}
        fill = {c: (v if isinstance(v, str) else float(v)) for c, v in self.impute_values_.items()}
        report = [[str(f), str(k), int(m), float(s), str(w)]
                  for f, k, m, s, w in self.missing_report_[list(self._REPORT_COLUMNS)].itertuples(index=False)]
        fitted = {"numeric_features_": list(self.numeric_features_),
                  "categorical_features_": list(self.categorical_features_),
                  "log_features_": list(self.log_features_),
                  "skipped_features_": pairs(self.skipped_features_),
                  "impute_values_": pairs(fill),
                  "center_raw_": pairs({c: float(v) for c, v in self.center_raw_.items()}),
                  "center_": [float(self.center_[c]) for c in self.numeric_features_],
                  "scale_": [float(self.scale_[c]) for c in self.numeric_features_],
                  "categories_": [[c, list(map(str, self.categories_[c]))] for c in self.categorical_features_],
                  "missing_report_": report,
                  "n_features_in_": int(self.n_features_in_),
                  "original_values_": pairs(self.original_values_)}
        return model_dict("FeatureBuilder", params, fitted)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureBuilder":
        """A fitted builder from :meth:`to_dict`'s output (e.g. read back from JSON).

        Raises
        ------
        DataError
            Not a saved FeatureBuilder, or parts missing or inconsistent.
        """

        keys = ("numeric_features_", "categorical_features_", "log_features_", "skipped_features_",
                "impute_values_", "center_raw_", "center_", "scale_", "categories_", "missing_report_",
                "n_features_in_")
        params, fitted = model_parts(data, "FeatureBuilder", params=("numeric", "categorical", "log"), fitted=keys)
        if params.get("impute") is not None:
            params["impute"] = from_pairs(params["impute"], "impute")
        fb = cls(**params)
        numeric = [str(c) for c in fitted["numeric_features_"]]
        center = float_array(fitted["center_"], "center_", shape=(len(numeric),))
        scale = float_array(fitted["scale_"], "scale_", shape=(len(numeric),))
        fill = from_pairs(fitted["impute_values_"], "impute_values_")
        if set(fill) != set(numeric):
            raise DataError("Saved FeatureBuilder: impute_values_ must have one entry per numeric feature. "
                            "Fit the model again.")
        fb.numeric_features_ = numeric
        fb.categorical_features_ = [str(c) for c in fitted["categorical_features_"]]
        fb.log_features_ = [str(c) for c in fitted["log_features_"]]
        fb.skipped_features_ = from_pairs(fitted["skipped_features_"], "skipped_features_")
        fb.impute_values_ = {c: (v if isinstance(v, str) else float(v)) for c, v in fill.items()}
        fb.center_raw_ = {c: float(v) for c, v in from_pairs(fitted["center_raw_"], "center_raw_").items()}
        fb.center_ = pd.Series(dict(zip(numeric, center.tolist())), dtype=float)
        fb.scale_ = pd.Series(dict(zip(numeric, scale.tolist())), dtype=float)
        fb.categories_ = {c: list(levels) for c, levels in from_pairs(fitted["categories_"], "categories_").items()}
        if list(fb.categories_) != fb.categorical_features_:
            raise DataError("Saved FeatureBuilder: categories_ must list the levels of every categorical "
                            "feature. Fit the model again.")
        fb.missing_report_ = pd.DataFrame([tuple(r) for r in fitted["missing_report_"]],
                                          columns=list(cls._REPORT_COLUMNS))
        fb.n_features_in_ = int(fitted["n_features_in_"])
        # absent from models saved before segkit kept the values as typed: texts then use the slugs
        originals = from_pairs(fitted.get("original_values_") or [], "original_values_")
        fb.original_values_ = {str(c): str(v) for c, v in originals.items() if c in numeric}
        return fb
