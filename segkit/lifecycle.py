"""Customer lifecycle: stages as of a date, their evolution, cohorts, churn risk and CLV.

Everything is computed from **purchase days**: purchase orders (net amount > 0, see
:func:`segkit.data.orders.purchase_orders`) grouped per customer and calendar day, so two orders on one
day are one purchase, as in the BG/NBD inputs (:mod:`segkit.clv`). ``as_of`` is exclusive as
everywhere in segkit: a stage "as of 2024-07-01" uses purchases up to 2024-06-30.

Stage rules
-----------
Every customer (buyers, customers with order lines but no purchase, and every customer of the
customers table: a customer whose ``signup_date`` is on or after ``as_of`` had not signed up yet
and is a ``prospect``, reported in the warnings) gets exactly one stage, by the first rule that
holds. The snapshots over time count a prospect from its signup date on:

==================  =============================================================================
stage               rule (days are whole days to ``as_of``)
==================  =============================================================================
no_net_purchase     order lines before ``as_of`` but nothing kept: every order returned or cancelled
                    in full, only returns or cancellations (of orders placed before the data
                    starts), or orders of zero value, see
                    :func:`segkit.data.orders.first_non_purchase`. Not a prospect: they ordered
engaged_prospect    no order line, opened/clicked a delivered e-mail before ``as_of``
prospect            no order line (and not engaged, or no campaign data)
lapsed              last purchase more than ``churn_window_days`` ago
first_seen          first purchase at most ``new_window_days`` ago, but less than one churn window
                    after the data's first day: the customer may have bought before the data
                    starts, so "new" would be a guess (off with ``data_starts_with_shop: true``)
new                 first purchase at most ``new_window_days`` ago
at_risk             one purchase only (past the new window: the second purchase is overdue), or
                    a repeat buyer whose ``p_purchase_90d`` is below ``at_risk_chance_ratio`` x
                    the live repeat buyers' mean (with a fitted model; without one: overdue
                    against both their own and the base's interval, last purchase more than
                    ``overdue_factor`` x their mean gap and more than ``base_interval_days``
                    ago), or P(alive) < ``p_alive_threshold``
reactivated         bought again after a gap longer than the churn window (their latest purchase)
loyal               at least ``loyal_min_purchases`` purchase days and ``loyal_min_value`` revenue
active              every other repeat buyer (within their expected repurchase interval)
==================  =============================================================================

Default thresholds come from the gaps between consecutive purchase days of all customers up to
the fitting date (:class:`LifecycleStager`): churn window = 90th percentile of gaps (90 % of
repeat purchases happen sooner), base interval = median gap, new window = 75th percentile of the
time from first to second purchase, loyal = top 20 % of repeat buyers by purchase days and by
revenue. Each can be set in ``lifecycle.yml`` or as a notebook parameter.

P(alive), expected purchases and CLV
------------------------------------
Repeat buyers: BG/NBD (P(alive), expected purchases) and Gamma-Gamma (order value), see
:mod:`segkit.clv`. One-time buyers: BG/NBD's P(alive) = 1 is an artefact of the model (dropout can
only follow a repeat purchase), so their ``p_alive`` is the share of one-time buyers of the same
age who went on to buy again, read from the data (:class:`segkit.clv.OneTimeBuyerModel`), and
their expected purchases and CLV use the data's chance of a second purchase within the horizon
(:func:`segkit.clv.expected_purchases`). CLV is this model value for every buyer whatever the
stage; totals are reported by stage, and the summary presents the CLV of live buyers as value to
expect and that of lapsed customers as win-back potential, next to what lapsed customers really
bought in the holdout check. :data:`EXPORT_COLUMNS` documents the exported columns.

Money per customer
------------------
There is one per-customer total in segkit, the customer's **kept value** as seen at ``as_of``: every
order and cancellation document before it, cancellations matched to the orders they take back
(:mod:`segkit.data.cancellations`), and what matched nothing (returns of orders placed before the data
starts) kept as a customer-level adjustment. ``lifecycle.parquet``'s ``monetary_total`` is this value,
equal to RFM's (:func:`segkit.data.orders.rfm_table`; 0 for customers who are no buyers). Order-level
kept values (a purchase day's ``amount``: its purchase orders net of the cancellations matched to
them) stay what CLV's spend per purchase (Gamma-Gamma) and the cohorts read; the stage rules'
``loyal_min_value`` reads their running total (the purchases in the data), which leaves out the
unmatched adjustments.

Examples
--------
>>> from segkit.data.orders import purchase_orders
>>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"],
...                    "order_date": pd.to_datetime(["2024-02-01", "2024-03-01", "2024-05-20"]),
...                    "amount": [20.0, 30.0, 15.0]})
>>> history = purchase_history(purchase_orders(tx, as_of="2024-06-01"))
>>> th = StageThresholds(churn_window_days=120, new_window_days=30, base_interval_days=45)
>>> state = customer_state(history, "2024-06-01")
>>> assign_lifecycle_stage(state, th).tolist()
['at_risk', 'new']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from segkit.clv import (
    BetaGeoModel,
    ChanceCalibrator,
    GammaGammaModel,
    OneTimeBuyerModel,
    calibration_error,
    cross_fitted_calibration,
    decile_calibration,
    ranking_auc,
    wilson_interval,
    calibration_holdout_summary,
    customer_lifetime_value,
    expected_purchases,
    first_repeat_durations,
    holdout_check,
    p_alive_calibration,
)
from segkit.core.dates import parse_as_of
from segkit.core.errors import ConfigError, DataError, ModelFitError
from segkit.core.progress import progress
from segkit.data.distribution import DistributionNeeds, ValueDistribution
from segkit.data.orders import customer_codes, day_pairs_sorted, purchase_days

STAGES: tuple[str, ...] = (
    "prospect", "engaged_prospect", "no_net_purchase", "first_seen", "new", "active", "loyal", "at_risk", "lapsed",
    "reactivated",
)
PROSPECT_STAGES: tuple[str, ...] = ("prospect", "engaged_prospect")
#: Customers with order lines who kept nothing: every order returned or cancelled in full, only returns
#: or cancellations (of orders placed before the data starts), or orders of zero value. Not
#: prospects (they did order), not buyers.
NO_PURCHASE_STAGES: tuple[str, ...] = ("no_net_purchase",)
BUYER_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s not in PROSPECT_STAGES + NO_PURCHASE_STAGES)
#: Buyers who have not lapsed: the live customer base.
LIVE_STAGES: tuple[str, ...] = ("first_seen", "new", "active", "loyal", "at_risk", "reactivated")
PHASES: tuple[str, ...] = ("awareness", "consideration", "conversion", "retention", "advocacy")
NOT_YET = "(not yet a customer)"
SNAPSHOT_FREQS: dict[str, str] = {"M": "month", "W": "week", "Q": "quarter"}
SOURCE = "artifacts/transactions_clean.parquet"
#: The columns 04_lifecycle adds to ``customer_segments.csv`` and what each holds.
EXPORT_COLUMNS: dict[str, str] = {
    "lifecycle_stage": "stage as of as_of by the rules of this notebook (prospect, engaged_prospect, "
                       "no_net_purchase, first_seen, new, active, loyal, at_risk, lapsed, reactivated)",
    "p_alive": "chance the customer is still a customer. Repeat buyers: BG/NBD P(alive). One-time buyers: share of "
               "one-time buyers of the same age (days since the first purchase) who went on to buy again, from "
               "the data (Kaplan-Meier), because BG/NBD gives every one-time buyer 1 by construction. When a 90-day "
               "holdout could be calibrated, never below the calibrated 90-day purchase chance nor the share of "
               "customers with the same model P(alive) who bought in the holdout (a customer who buys is alive). Empty for "
               "prospects and when the models could not be fitted",
    "p_purchase_90d": "chance of at least one purchase in the next 90 days: BG/NBD's closed form P(alive) x (1 - "
                      "P(no purchase in 90 days | alive)); one-time buyers from the data unless the holdout chose "
                      "plain BG/NBD; calibrated on the 90-day holdout (isotonic) when that misses less there, cross-fitted "
                      "and out of sample (see the holdout section: which variant, and why)",
    "expected_purchases_90d": "expected purchase days in the next 90 days (BG/NBD; one-time buyers: the data's "
                              "chance of a second purchase within 90 days x BG/NBD's purchases of a customer who "
                              "buys at least once)",
    "clv_12m": "predicted value of the next 12 months: expected purchases x expected order value (Gamma-Gamma) x "
               "margin, discounted monthly. A model value for every buyer whatever the stage: for lapsed "
               "customers it is win-back potential, not value to expect (see the holdout check by stage)",
}


# --------------------------------------------------------------------------- purchases
def purchase_history(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per customer and purchase day, with the running history of that customer.

    Parameters
    ----------
    orders : DataFrame
        Purchase orders ``customer_id, order_date, amount`` (:func:`segkit.data.orders.purchase_orders`).

    Returns
    -------
    DataFrame
        Sorted by ``customer_id`` (categorical, sorted categories: large histories group and
        search on its integer codes), ``purchase_date``: ``amount`` (that day's net revenue),
        ``n_purchases`` (purchase days so far, int32), ``first_purchase``, ``gap_days`` (days since
        the previous purchase day, NaN for the first; float32, exact for whole days) and
        ``monetary_total`` (revenue so far). The narrow types keep 100M-line histories small.

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["a", "a", "a"], "amount": [5.0, 7.0, 1.0],
    ...     "order_date": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-11 10:00"])})
    >>> purchase_history(orders)[["purchase_date", "amount", "n_purchases", "gap_days"]]
      purchase_date  amount  n_purchases  gap_days
    0    2024-01-01    12.0            1       NaN
    1    2024-01-11     1.0            2      10.0
    """
    missing = [c for c in ("customer_id", "order_date", "amount") if c not in orders.columns]
    if missing:
        raise DataError(f"{SOURCE}: column(s) {', '.join(map(repr, missing))} missing from the purchase "
                        "orders. Build them with segkit.data.orders.purchase_orders(transactions).")
    days = purchase_days(orders)  # customer_id categorical: the rest runs on integer codes
    codes = days["customer_id"].cat.codes.to_numpy()
    dates = days["order_date"].to_numpy()
    starts = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, dtype=bool)
    group = np.cumsum(starts) - 1
    first_row = np.flatnonzero(starts)
    gaps = np.full(len(codes), np.nan, dtype=np.float32)
    if len(codes) > 1:
        gaps[1:] = np.diff(dates).astype("timedelta64[D]").astype("float32")
    gaps[starts] = np.nan
    return pd.DataFrame({
        "customer_id": days["customer_id"],
        "purchase_date": dates,
        "amount": days["amount"].to_numpy(),
        "n_purchases": (np.arange(len(codes), dtype=np.int64) - first_row[group] + 1).astype(np.int32),
        "first_purchase": dates[first_row][group],
        "gap_days": gaps,
        "monetary_total": days["amount"].groupby(codes, sort=False).cumsum().to_numpy(),
    })


def last_purchase_rows(history: pd.DataFrame, as_of: str | pd.Timestamp) -> tuple[np.ndarray, pd.Index]:
    """Row of each customer's last purchase day before ``as_of`` in a :func:`purchase_history`.

    A binary search per customer on the sorted history, so snapshots cost no copy of it.

    Returns
    -------
    rows : ndarray
        Positions into ``history`` (one per customer with a purchase before ``as_of``).
    ids : Index
        Their customer ids (sorted).

    Examples
    --------
    >>> h = purchase_history(pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": 1.0,
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-09"])}))
    >>> rows, ids = last_purchase_rows(h, "2024-01-06")
    >>> rows.tolist(), ids.tolist()
    ([1], ['a'])
    """
    rows, positions, ids = _last_purchase_positions(history, as_of)
    return rows, ids.take(positions)


def _last_purchase_positions(history: pd.DataFrame, as_of: str | pd.Timestamp) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """:func:`last_purchase_rows` as positions: ``rows``, their customers' positions in ``ids``, ``ids``."""
    as_of = parse_as_of(as_of)
    codes, ids = customer_codes(history["customer_id"])
    day = history["purchase_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    if not len(day):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), ids
    if not day_pairs_sorted(codes, day.astype("datetime64[D]")):
        raise DataError(f"{SOURCE}: the purchase history is not one row per customer and day sorted by customer "
                        "and date. Build it with segkit.lifecycle.purchase_history(orders).")
    low = int(day.min())
    span = int(day.max()) - low + 2
    key = codes * span + (day - low)
    cut = min(max(int(as_of.to_datetime64().astype("datetime64[D]").astype(np.int64)) - low, 0), span - 1)
    everyone = np.arange(len(ids), dtype=np.int64)
    rows = np.searchsorted(key, everyone * span + cut, side="left") - 1
    has = rows >= 0
    has[has] = codes[rows[has]] == everyone[has]
    return rows[has], everyone[has], ids


def engagement_dates(campaign: pd.DataFrame | None, columns: tuple[str, ...] = ("opened", "clicked")) -> pd.Series | None:
    """First date each customer engaged with an e-mail (any of ``columns`` true).

    Rows without ``sent_at`` count as engaged since forever. Returns None without campaign
    data or without any of the engagement columns.

    Examples
    --------
    >>> c = pd.DataFrame({"customer_id": ["a", "a", "b"], "opened": [False, True, False],
    ...                   "sent_at": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-01"])})
    >>> engagement_dates(c).to_dict()
    {'a': Timestamp('2024-02-01 00:00:00')}
    """
    if campaign is None or "customer_id" not in campaign.columns:
        return None
    present = [c for c in columns if c in campaign.columns]
    if not present:
        return None
    engaged = campaign[present].fillna(False).astype(bool).any(axis=1)
    if "sent_at" in campaign.columns:
        sent = pd.to_datetime(campaign["sent_at"]).astype("datetime64[ns]").fillna(pd.Timestamp.min)
    else:
        sent = pd.Series(pd.Timestamp.min, index=campaign.index)
    rows = pd.DataFrame({"customer_id": campaign["customer_id"].astype("string"), "sent_at": sent})[engaged.to_numpy()]
    return rows.groupby("customer_id", sort=True)["sent_at"].min()


def customer_state(
    history: pd.DataFrame,
    as_of: str | pd.Timestamp,
    customers: pd.DataFrame | None = None,
    engagement: pd.Series | None = None,
    non_purchase: pd.DataFrame | None = None,
    data_start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Each customer's purchase state as of ``as_of`` (exclusive): what the stage rules read.

    Parameters
    ----------
    history : DataFrame
        From :func:`purchase_history`.
    as_of : str or Timestamp
        Analysis date; purchases on or after it are ignored.
    customers : DataFrame, optional
        ``customer_id`` [, ``signup_date``]: adds prospects (no purchase before ``as_of``) whose
        signup date is before ``as_of`` or unknown (pass only ``customer_id`` to add every
        customer: what the producer does at ``as_of``, see :func:`signups_on_or_after`).
    engagement : Series, optional
        From :func:`engagement_dates`.
    non_purchase : DataFrame, optional
        ``customer_id, first_order_date`` of the customers whose first order is not a purchase
        (:func:`segkit.data.orders.first_non_purchase`): those with an order before ``as_of``
        but no purchase are added with ``has_orders`` (stage ``no_net_purchase``, not prospect).
    data_start : Timestamp, optional
        First day of the data: fills ``first_purchase_days_into_data``, which the
        ``first_seen`` rule reads. None = NaN (the data starts with the shop).

    Returns
    -------
    DataFrame
        Index ``customer_id`` (sorted): ``n_purchases`` (0 = no purchase), ``first_purchase``,
        ``last_purchase``, ``recency_days``, ``tenure_days``, ``gap_before_last_days``,
        ``own_interval_days`` (mean gap between purchase days), ``monetary_total``,
        ``has_orders`` (an order line before ``as_of``, purchase or not),
        ``first_purchase_days_into_data`` (days from ``data_start`` to the first purchase), ``engaged``.

    Examples
    --------
    >>> h = purchase_history(pd.DataFrame({"customer_id": ["a", "a"], "amount": [5.0, 5.0],
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-21"])}))
    >>> customer_state(h, "2024-02-01")[["n_purchases", "recency_days", "own_interval_days"]].iloc[0].tolist()
    [2.0, 11.0, 20.0]
    """
    as_of = parse_as_of(as_of)
    state, positions, ids = _buyer_state(history, as_of)
    state.index = ids.take(positions)
    ordered = pd.Index([], dtype="string")
    if non_purchase is not None and len(non_purchase):
        seen = non_purchase.loc[(non_purchase["first_order_date"] < as_of).to_numpy(), "customer_id"]
        ordered = pd.Index(seen.astype("string").unique()).difference(state.index)
    if (customers is not None and len(customers)) or len(ordered):
        known = customers if customers is not None else pd.DataFrame({"customer_id": pd.array([], dtype="string")})
        if "signup_date" in known.columns:
            signup = known["signup_date"]
            known = known[(signup.isna() | (signup < as_of)).to_numpy()]
        extra = pd.Index(known["customer_id"].astype("string").unique()).union(ordered).difference(state.index)
        if len(extra):
            prospects = pd.DataFrame({"n_purchases": 0, "monetary_total": 0.0}, index=extra)
            state = pd.concat([state, prospects.astype({"n_purchases": "int64"})])
            state = state.sort_index()
    state.index = pd.Index(state.index, dtype="string", name="customer_id")
    for col in ("recency_days", "tenure_days", "own_interval_days", "gap_before_last_days"):
        state[col] = state[col].astype("float64")
    state["has_orders"] = (state["n_purchases"] > 0).to_numpy() | state.index.isin(ordered)
    state["first_purchase_days_into_data"] = days_into_data(state["first_purchase"], data_start)
    if engagement is not None:
        first = engagement.reindex(state.index)
        state["engaged"] = (first < as_of).fillna(False).to_numpy(dtype=bool)
    else:
        state["engaged"] = False
    return state


def days_into_data(first_purchase: pd.Series | np.ndarray, data_start: pd.Timestamp | None) -> np.ndarray:
    """Days from the data's first day to each first purchase (NaN without ``data_start``).

    The ``first_seen`` rule reads it: a first purchase less than one churn window into the data
    may come from a customer who bought before the data starts.

    Examples
    --------
    >>> days_into_data(pd.to_datetime(["2024-01-01", "2024-03-01"]), pd.Timestamp("2024-01-01")).tolist()
    [0.0, 60.0]
    """
    first = pd.to_datetime(pd.Series(np.asarray(first_purchase)))
    if data_start is None:
        return np.full(len(first), np.nan)
    return ((first - pd.Timestamp(data_start).normalize()) / pd.Timedelta(days=1)).to_numpy(dtype="float64")


def signups_on_or_after(customers: pd.DataFrame | None, as_of: str | pd.Timestamp,
                        buyers: pd.Index | None = None) -> int:
    """Customers whose ``signup_date`` is on or after ``as_of`` (not signed up yet), buyers excluded.

    :func:`segkit.steps.lifecycle.build_lifecycle_artifacts` stages them ``prospect`` at ``as_of`` (the snapshots count
    them from their signup on); its warnings say how many, so a customers table dated after the
    analysis date does not pass unnoticed.

    Parameters
    ----------
    customers : DataFrame, optional
        ``customer_id`` [, ``signup_date``]; without a signup date nobody is counted.
    as_of : str or Timestamp
        Analysis date (exclusive).
    buyers : Index, optional
        Customer ids with a purchase before ``as_of``: they are buyers whatever their signup date.

    Examples
    --------
    >>> customers = pd.DataFrame({"customer_id": ["a", "b", "c"],
    ...     "signup_date": pd.to_datetime(["2024-01-01", "2024-03-01", None])})
    >>> signups_on_or_after(customers, "2024-02-01"), signups_on_or_after(customers, "2024-02-01", pd.Index(["b"]))
    (1, 0)
    """
    if customers is None or "signup_date" not in customers.columns or customers.empty:
        return 0
    late = customers.loc[(customers["signup_date"] >= parse_as_of(as_of)).to_numpy(dtype=bool), "customer_id"]
    ids = pd.Index(late.astype("string").unique())
    if buyers is not None:
        ids = ids.difference(pd.Index(buyers, dtype="string"))
    return int(len(ids))


def _buyer_state(history: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, pd.Index]:
    """Buyers' columns of :func:`customer_state` (no ``engaged``), their positions in ``ids``, ``ids``.

    Everything positional: a snapshot of ten million customers costs a few numeric columns,
    not a string index (:func:`stage_history` calls this once per snapshot).
    """
    rows, positions, ids = _last_purchase_positions(history, as_of)

    def at_rows(column: str, dtype: str | None = None) -> np.ndarray:
        return history[column].to_numpy(dtype=dtype)[rows]

    n_purchases = at_rows("n_purchases", "int64")
    first = pd.to_datetime(at_rows("first_purchase"))
    last = pd.to_datetime(at_rows("purchase_date"))
    span = (last - first).days.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(n_purchases > 1, span / (n_purchases - 1), np.nan)
    state = pd.DataFrame({
        "n_purchases": n_purchases,
        "first_purchase": first,
        "last_purchase": last,
        "gap_before_last_days": at_rows("gap_days", "float64"),
        "monetary_total": at_rows("monetary_total", "float64"),
        "recency_days": (as_of - last).days.to_numpy(dtype="float64"),
        "tenure_days": (as_of - first).days.to_numpy(dtype="float64"),
        "own_interval_days": own,
    })
    return state, positions, ids


# --------------------------------------------------------------------------- stage rules
@dataclass(frozen=True)
class StageThresholds:
    """The numbers behind the stage rules (see the module notes for the rules).

    Examples
    --------
    >>> StageThresholds(churn_window_days=180, new_window_days=30, base_interval_days=40).overdue_factor
    2.0
    """

    churn_window_days: float
    new_window_days: float
    base_interval_days: float
    overdue_factor: float = 2.0
    loyal_min_purchases: float = 3.0
    loyal_min_value: float = 0.0
    p_alive_threshold: float = 0.5
    at_risk_chance_ratio: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"lifecycle.{f.name} = {value!r} is not a number. Set a number in "
                                  "lifecycle.yml or the notebook parameter (null = data-driven default).")
        for name in ("churn_window_days", "new_window_days", "base_interval_days", "overdue_factor"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"lifecycle.{name} = {getattr(self, name)!r} must be > 0.")
        if not 0 <= self.p_alive_threshold <= 1:
            raise ConfigError(f"lifecycle.p_alive_threshold = {self.p_alive_threshold!r} must be between 0 and 1 "
                              "(0 switches the P(alive) rule off).")
        if not 0 <= self.at_risk_chance_ratio <= 1:
            raise ConfigError(f"lifecycle.at_risk_chance_ratio = {self.at_risk_chance_ratio!r} must be between 0 and 1 "
                              "(0 switches the purchase-chance rule off).")


def assign_lifecycle_stage(
    state: pd.DataFrame, thresholds: StageThresholds, p_alive: pd.Series | np.ndarray | None = None,
    p_purchase: pd.Series | np.ndarray | None = None, chance_reference: float | None = None,
) -> pd.Series:
    """The lifecycle stage of every customer of ``state`` (pure function of its inputs).

    Parameters
    ----------
    state : DataFrame
        From :func:`customer_state` (``n_purchases, recency_days, tenure_days,
        gap_before_last_days, own_interval_days, monetary_total, engaged`` [, ``has_orders``,
        ``first_purchase_days_into_data``]). Without ``has_orders`` no customer is
        ``no_net_purchase``; without ``first_purchase_days_into_data`` (or NaN: the data starts
        with the shop) nobody is ``first_seen``.
    thresholds : StageThresholds
    p_alive : array_like, optional
        BG/NBD P(alive) per row; NaN or None = the P(alive) rule is not used.
    p_purchase : array_like, optional
        Chance of a purchase in the next 90 days per row (as exported, ``p_purchase_90d``). Given,
        it replaces the overdue rule: a repeat buyer is at risk when their chance is below
        ``at_risk_chance_ratio`` x the mean chance of the live repeat buyers
        (:func:`low_purchase_chance`). Overdue against the own interval did not separate who buys
        (Online Retail: 75 % of the overdue bought in the next 90 days, 77 % of the active).
    chance_reference : float, optional
        That mean chance computed over the whole base (:func:`live_repeat_buyers`) when ``state`` is
        one part of it (a Spark partition); None = the mean over the rows of ``state``.

    Returns
    -------
    Series
        Categorical with categories :data:`STAGES`, index of ``state``.

    Examples
    --------
    >>> state = pd.DataFrame({"n_purchases": [0, 1, 3, 3], "recency_days": [np.nan, 10, 400, 20],
    ...     "tenure_days": [np.nan, 10, 600, 500], "gap_before_last_days": [np.nan, np.nan, 50, 30],
    ...     "own_interval_days": [np.nan, np.nan, 100, 240], "monetary_total": [0, 9, 300, 90],
    ...     "engaged": [True, False, False, False]})
    >>> th = StageThresholds(churn_window_days=300, new_window_days=30, base_interval_days=60)
    >>> assign_lifecycle_stage(state, th).tolist()
    ['engaged_prospect', 'new', 'lapsed', 'loyal']
    """
    t = thresholds
    n = state["n_purchases"].to_numpy()
    recency = state["recency_days"].to_numpy(dtype=float)
    tenure = state["tenure_days"].to_numpy(dtype=float)
    own = state["own_interval_days"].to_numpy(dtype=float)
    gap = state["gap_before_last_days"].to_numpy(dtype=float)
    buyer = n > 0
    has_orders = state["has_orders"].to_numpy(dtype=bool) if "has_orders" in state.columns else buyer
    into_data = (state["first_purchase_days_into_data"].to_numpy(dtype=float)
                 if "first_purchase_days_into_data" in state.columns else np.full(len(n), np.nan))
    with np.errstate(invalid="ignore"):
        overdue = (recency > t.overdue_factor * own) & (recency > t.base_interval_days)
        low_alive = np.zeros(len(n), dtype=bool) if p_alive is None else (
            np.asarray(p_alive, dtype=float) < t.p_alive_threshold)
        if p_purchase is not None:
            overdue = low_purchase_chance(np.asarray(p_purchase, dtype=float), n, recency, t, chance_reference)
        conditions = [
            ~buyer & has_orders,
            ~buyer & state["engaged"].to_numpy(dtype=bool),
            ~buyer,
            recency > t.churn_window_days,
            (tenure <= t.new_window_days) & (into_data < t.churn_window_days),
            tenure <= t.new_window_days,
            (n == 1) | overdue | low_alive,
            gap > t.churn_window_days,
            (n >= t.loyal_min_purchases) & (state["monetary_total"].to_numpy(dtype=float) >= t.loyal_min_value),
        ]
    choices = ["no_net_purchase", "engaged_prospect", "prospect", "lapsed", "first_seen", "new", "at_risk",
               "reactivated", "loyal"]
    labels = np.select(conditions, choices, default="active")
    return pd.Series(pd.Categorical(labels, categories=STAGES), index=state.index, name="lifecycle_stage")


def live_repeat_buyers(p_purchase: np.ndarray, n_purchases: np.ndarray, recency_days: np.ndarray,
                       thresholds: StageThresholds) -> np.ndarray:
    """Rows whose purchase chance makes the reference of :func:`low_purchase_chance`: repeat buyers
    who have not lapsed (last purchase within the churn window) and have a chance.

    Examples
    --------
    >>> th = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=40)
    >>> live_repeat_buyers(np.array([0.8, 0.6, np.nan]), np.array([3, 1, 2]), np.array([10.0, 20.0, 30.0]), th).tolist()
    [True, False, False]
    """
    return (n_purchases > 1) & (recency_days <= thresholds.churn_window_days) & np.isfinite(p_purchase)


def low_purchase_chance(p_purchase: np.ndarray, n_purchases: np.ndarray, recency_days: np.ndarray,
                        thresholds: StageThresholds, reference: float | None = None) -> np.ndarray:
    """Repeat buyers whose purchase chance is below ``at_risk_chance_ratio`` x that of the live repeat buyers.

    The reference is the mean chance of the repeat buyers who have not lapsed (last purchase
    within the churn window) at the same date (:func:`live_repeat_buyers`), so the rule adapts to the
    shop's rhythm and season. ``reference`` gives that mean computed elsewhere (over the whole base
    when these rows are one part of it; NaN = no live repeat buyer); None = over these rows.

    Examples
    --------
    >>> th = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=40)
    >>> low_purchase_chance(np.array([0.8, 0.6, 0.2, np.nan]), np.array([3, 2, 2, 2]),
    ...                     np.array([10.0, 20.0, 30.0, 40.0]), th).tolist()
    [False, False, True, False]
    """
    if reference is None:
        repeat_live = live_repeat_buyers(p_purchase, n_purchases, recency_days, thresholds)
        reference = float(p_purchase[repeat_live].mean()) if repeat_live.any() else float("nan")
    if thresholds.at_risk_chance_ratio <= 0 or not np.isfinite(reference):
        return np.zeros(len(p_purchase), dtype=bool)
    with np.errstate(invalid="ignore"):
        return (n_purchases > 1) & (p_purchase < thresholds.at_risk_chance_ratio * reference)


def inter_purchase_gaps(history: pd.DataFrame, as_of: str | pd.Timestamp) -> pd.DataFrame:
    """Gaps between consecutive purchase days completed before ``as_of``.

    Returns ``gap_days`` and ``to_purchase`` (2 = the gap from first to second purchase).

    Examples
    --------
    >>> h = purchase_history(pd.DataFrame({"customer_id": ["a"] * 3, "amount": 1.0,
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-30"])}))
    >>> inter_purchase_gaps(h, "2024-02-01")["gap_days"].tolist()
    [7.0, 22.0]
    """
    rows = history[(history["purchase_date"] < parse_as_of(as_of)) & history["gap_days"].notna()]
    return pd.DataFrame({"gap_days": rows["gap_days"].to_numpy(dtype="float64"),
                         "to_purchase": rows["n_purchases"].to_numpy(dtype="int64")})


def higher_quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile that is a value of the data: ``np.quantile(values, q, method="higher")``.

    The value at 0-based position ``ceil((n - 1) q)`` of the sorted values (numpy's definition of
    ``"higher"``), so :meth:`segkit.data.distribution.ValueDistribution.higher_quantile` reads it
    exactly from counts.

    Examples
    --------
    >>> higher_quantile(np.arange(1.0, 101.0), 0.9)
    91.0
    """
    return float(np.quantile(values, q, method="higher"))


@dataclass(frozen=True)
class StageDistributions:
    """What :meth:`LifecycleStager.fit_distributions` derives the stage thresholds from.

    Each is a :class:`~segkit.data.distribution.ValueDistribution` whose "higher" quantiles the fit reads
    (:meth:`LifecycleStager.distribution_needs` names which).

    Attributes
    ----------
    gaps : ValueDistribution
        Days between consecutive purchase days before ``as_of`` (every gap of every customer).
    second_gaps : ValueDistribution
        The first-to-second purchase gaps among them.
    repeat_purchases : ValueDistribution
        Purchase days of each repeat buyer (more than one purchase day).
    repeat_values : ValueDistribution
        Revenue (``monetary_total``) of each repeat buyer.

    ``gaps``, ``second_gaps`` and ``repeat_purchases`` take whole-number values bounded by the
    data's days and the most purchase days: complete distributions of them are bounded inputs
    (on Spark: :func:`segkit.data.spark_patterns.value_counts` read by ``ValueDistribution.of_counts``).
    ``repeat_values`` is money: its distinct values grow with the buyers, so at scale it holds only the
    rows next to the loyal quantile's position
    (:func:`segkit.data.spark_ranks.value_distributions` with :meth:`LifecycleStager.distribution_needs`).
    """

    gaps: ValueDistribution
    second_gaps: ValueDistribution
    repeat_purchases: ValueDistribution
    repeat_values: ValueDistribution

    @classmethod
    def of(cls, history: pd.DataFrame, as_of: str | pd.Timestamp) -> "StageDistributions":
        """From a purchase history (:func:`purchase_history`), as of ``as_of`` (exclusive).

        Examples
        --------
        >>> h = purchase_history(pd.DataFrame({"customer_id": ["a"] * 3 + ["b"], "amount": 5.0,
        ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-30", "2024-01-02"])}))
        >>> d = StageDistributions.of(h, "2024-02-01")
        >>> d.gaps.values.tolist(), d.second_gaps.values.tolist(), d.repeat_purchases.values.tolist()
        ([7.0, 22.0], [7.0], [3.0])
        """
        as_of = parse_as_of(as_of)
        gaps = inter_purchase_gaps(history, as_of)
        state = customer_state(history, as_of)
        repeat = state[(state["n_purchases"] > 1).to_numpy()]
        return cls(gaps=ValueDistribution.of_values(gaps["gap_days"].to_numpy()),
                   second_gaps=ValueDistribution.of_values(
                       gaps.loc[(gaps["to_purchase"] == 2).to_numpy(), "gap_days"].to_numpy()),
                   repeat_purchases=ValueDistribution.of_values(repeat["n_purchases"].to_numpy(dtype="float64")),
                   repeat_values=ValueDistribution.of_values(repeat["monetary_total"].to_numpy(dtype="float64")))


class LifecycleStager(BaseEstimator):
    """Fits stage thresholds on one customer base and assigns stages as of any date.

    Parameters left None are derived in :meth:`fit` from the inter-purchase-time distribution
    (see the module notes); given values are used as they are.

    Parameters
    ----------
    churn_window_days, new_window_days, base_interval_days : float, optional
        Stage windows in days (None = data-driven).
    overdue_factor : float
        Multiple of the customer's own mean gap after which they are overdue.
    loyal_min_purchases, loyal_min_value : float, optional
        Loyal customers' minimum purchase days and revenue (None = data-driven).
    p_alive_threshold : float
        Customers below this BG/NBD P(alive) are at risk (0 = rule off).
    at_risk_chance_ratio : float
        With a fitted model, repeat buyers whose 90-day purchase chance is below this multiple of
        the live repeat buyers' mean are at risk (replaces the overdue rule; 0 = rule off).
    churn_quantile, base_interval_quantile, new_window_quantile, loyal_quantile : float
        Quantiles behind the data-driven defaults.
    min_gaps : int
        Fewer gaps than this: the fallback windows are used (and a warning recorded).
    fallback_churn_window_days, fallback_new_window_days, fallback_base_interval_days : float
        Windows used when the data has too few repeat purchases.
    data_starts_with_shop : bool
        True when the data starts with the shop (nobody bought before it): no ``first_seen``
        stage. False (default): a first purchase within one churn window of the data's first
        day may come from a customer who bought before, so it is ``first_seen``, not ``new``.

    Attributes
    ----------
    thresholds_ : StageThresholds
    data_start_ : Timestamp or None
        First day of the data (None when ``data_starts_with_shop``).
    first_seen_until_ : Timestamp or None
        ``data_start_`` + the churn window: first purchases before it are ``first_seen``.
    threshold_table_ : DataFrame
        ``threshold, value, source, meaning`` for display.
    n_gaps_ : int
        Gaps between purchase days the defaults were derived from.
    warnings_ : list of str

    Examples
    --------
    >>> from segkit.data.orders import purchase_orders
    >>> tx = pd.DataFrame({"customer_id": list("aaabbc"), "order_id": list("123456"),
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-01-10",
    ...                                   "2024-01-20", "2024-05-01"]), "amount": 10.0})
    >>> history = purchase_history(purchase_orders(tx))
    >>> stager = LifecycleStager(min_gaps=1).fit(history, "2024-06-01")
    >>> stager.thresholds_.churn_window_days
    31.0
    >>> stager.predict(history, "2024-06-01")["lifecycle_stage"].tolist()
    ['lapsed', 'lapsed', 'new']
    """

    def __init__(
        self,
        churn_window_days: float | None = None,
        new_window_days: float | None = None,
        base_interval_days: float | None = None,
        overdue_factor: float = 2.0,
        loyal_min_purchases: float | None = None,
        loyal_min_value: float | None = None,
        p_alive_threshold: float = 0.5,
        at_risk_chance_ratio: float = 0.5,
        churn_quantile: float = 0.9,
        base_interval_quantile: float = 0.5,
        new_window_quantile: float = 0.75,
        loyal_quantile: float = 0.8,
        min_gaps: int = 20,
        fallback_churn_window_days: float = 365.0,
        fallback_new_window_days: float = 90.0,
        fallback_base_interval_days: float = 90.0,
        data_starts_with_shop: bool = False,
    ):
        self.churn_window_days = churn_window_days
        self.new_window_days = new_window_days
        self.base_interval_days = base_interval_days
        self.overdue_factor = overdue_factor
        self.loyal_min_purchases = loyal_min_purchases
        self.loyal_min_value = loyal_min_value
        self.p_alive_threshold = p_alive_threshold
        self.at_risk_chance_ratio = at_risk_chance_ratio
        self.churn_quantile = churn_quantile
        self.base_interval_quantile = base_interval_quantile
        self.new_window_quantile = new_window_quantile
        self.loyal_quantile = loyal_quantile
        self.min_gaps = min_gaps
        self.fallback_churn_window_days = fallback_churn_window_days
        self.fallback_new_window_days = fallback_new_window_days
        self.fallback_base_interval_days = fallback_base_interval_days
        self.data_starts_with_shop = data_starts_with_shop

    def fit(self, history: pd.DataFrame, as_of: str | pd.Timestamp,
            data_start: pd.Timestamp | None = None) -> "LifecycleStager":
        """Derive the thresholds left None from purchases before ``as_of``.

        ``data_start`` is the data's first day (None = the first purchase day of ``history``). The
        history is reduced to its distributions (:meth:`StageDistributions.of`) and fitted by
        :meth:`fit_distributions`: the one fit, whichever engine counted them.
        """
        start = data_start if data_start is not None else (history["purchase_date"].min() if len(history) else None)
        self._check_quantiles()
        return self.fit_distributions(StageDistributions.of(history, as_of), as_of, start)

    def _check_quantiles(self) -> None:
        for name in ("churn_quantile", "base_interval_quantile", "new_window_quantile", "loyal_quantile"):
            q = getattr(self, name)
            if not 0 < q < 1:
                raise ConfigError(f"lifecycle.{name} = {q!r} must be between 0 and 1 (exclusive).")

    def distribution_needs(self) -> dict[str, DistributionNeeds]:
        """The quantiles :meth:`fit_distributions` reads of each :class:`StageDistributions` field: what a
        producer that holds only some rows of a distribution must keep (e.g. ``repeat_values`` on Spark).

        Examples
        --------
        >>> LifecycleStager().distribution_needs()["repeat_values"].quantiles == (LifecycleStager().loyal_quantile,)
        True
        """
        gap_quantiles = (self.churn_quantile, self.base_interval_quantile, self.new_window_quantile)
        return {"gaps": DistributionNeeds(quantiles=tuple(sorted(set(gap_quantiles)))),
                "second_gaps": DistributionNeeds(quantiles=(self.new_window_quantile,)),
                "repeat_purchases": DistributionNeeds(quantiles=(self.loyal_quantile,)),
                "repeat_values": DistributionNeeds(quantiles=(self.loyal_quantile,))}

    def fit_distributions(self, distributions: StageDistributions, as_of: str | pd.Timestamp,
                          data_start: pd.Timestamp | None) -> "LifecycleStager":
        """Derive the thresholds left None from the gap and repeat-buyer distributions before ``as_of``.

        ``data_start`` is the data's first day (None: no ``first_seen`` stage, as with
        ``data_starts_with_shop``).
        """
        self._check_quantiles()
        as_of = parse_as_of(as_of)
        all_gaps, second = distributions.gaps, distributions.second_gaps
        repeat_n, repeat_value = distributions.repeat_purchases, distributions.repeat_values
        enough = all_gaps.n >= max(int(self.min_gaps), 1)
        self.warnings_: list[str] = []
        if not enough:
            self.warnings_.append(
                f"Only {all_gaps.n} gaps between purchases before {as_of.date()} (at least {self.min_gaps} "
                "needed for data-driven stage windows): the fallback windows of lifecycle.yml are used. "
                "Set churn_window_days/new_window_days/base_interval_days for your business.")
        rows: list[tuple[str, float, str, str]] = []

        def pick(name: str, given: float | None, derive, source: str, fallback: float | None, meaning: str) -> float:
            if given is not None:
                value, src = float(given), f"set: lifecycle.{name} (lifecycle.yml or notebook parameter)"
            elif fallback is not None and not enough:
                value, src = float(fallback), "fallback (too few repeat purchases in the data)"
            else:
                value, src = float(derive()), source
            rows.append((name, value, src, meaning))
            return value

        n_gaps = f"{all_gaps.n:,} gaps between purchase days"
        churn = pick("churn_window_days", self.churn_window_days, lambda: all_gaps.higher_quantile(self.churn_quantile),
                     f"data: {self.churn_quantile:.0%} quantile of {n_gaps}", self.fallback_churn_window_days,
                     "no purchase for longer than this = lapsed")
        base = pick("base_interval_days", self.base_interval_days,
                    lambda: all_gaps.higher_quantile(self.base_interval_quantile),
                    f"data: {self.base_interval_quantile:.0%} quantile of {n_gaps}", self.fallback_base_interval_days,
                    "the base's usual repurchase interval (overdue beyond it and beyond the own interval)")
        new = pick("new_window_days", self.new_window_days,
                   lambda: (second if second.n else all_gaps).higher_quantile(self.new_window_quantile),
                   f"data: {self.new_window_quantile:.0%} quantile of {second.n:,} first-to-second purchase gaps",
                   self.fallback_new_window_days, "first purchase at most this long ago = new")
        pick("overdue_factor", self.overdue_factor, lambda: 2.0, "", None,
             "overdue when the last purchase is longer ago than this multiple of the own mean gap")
        loyal_n = pick("loyal_min_purchases", self.loyal_min_purchases,
                       lambda: max(3.0, repeat_n.higher_quantile(self.loyal_quantile)) if repeat_n.n else 3.0,
                       f"data: top {1 - self.loyal_quantile:.0%} of {repeat_n.n:,} repeat buyers by purchase days (at least 3)",
                       None, "loyal: at least this many purchase days")
        loyal_v = pick("loyal_min_value", self.loyal_min_value,
                       lambda: repeat_value.higher_quantile(self.loyal_quantile) if repeat_value.n else 0.0,
                       f"data: top {1 - self.loyal_quantile:.0%} of repeat buyers by revenue", None,
                       "loyal: at least this much revenue")
        pick("p_alive_threshold", self.p_alive_threshold, lambda: 0.5, "", None,
             "BG/NBD P(alive) below this = at risk")
        pick("at_risk_chance_ratio", self.at_risk_chance_ratio, lambda: 0.5, "", None,
             "repeat buyer whose chance of a purchase in the next 90 days is below this multiple of the live "
             "repeat buyers' mean = at risk (with a fitted model; replaces the overdue rule)")
        self.thresholds_ = StageThresholds(
            churn_window_days=churn, new_window_days=new, base_interval_days=base,
            overdue_factor=float(self.overdue_factor), loyal_min_purchases=loyal_n, loyal_min_value=loyal_v,
            p_alive_threshold=float(self.p_alive_threshold), at_risk_chance_ratio=float(self.at_risk_chance_ratio))
        self.threshold_table_ = pd.DataFrame(rows, columns=["threshold", "value", "source", "meaning"])
        self.n_gaps_ = int(all_gaps.n)
        self.as_of_ = as_of
        self.data_start_ = (None if self.data_starts_with_shop or data_start is None or pd.isna(data_start)
                            else pd.Timestamp(data_start).normalize())
        self.first_seen_until_ = (None if self.data_start_ is None
                                  else self.data_start_ + pd.Timedelta(days=self.thresholds_.churn_window_days))
        return self

    def predict(
        self,
        history: pd.DataFrame,
        as_of: str | pd.Timestamp,
        customers: pd.DataFrame | None = None,
        engagement: pd.Series | None = None,
        bgnbd: BetaGeoModel | None = None,
        thresholds: StageThresholds | None = None,
        one_time: OneTimeBuyerModel | None = None,
        choice: "ExportChoice | None" = None,
        non_purchase: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Stages as of ``as_of`` (any date) with the fitted thresholds.

        Parameters
        ----------
        history, as_of, customers, engagement, non_purchase
            As for :func:`customer_state` (the data's start is the fitted ``data_start_``).
        bgnbd : BetaGeoModel, optional
            Fitted model: adds ``p_alive`` and switches on the P(alive) rule.
        thresholds : StageThresholds, optional
            Use these instead of the fitted ones (what-if analysis).
        one_time : OneTimeBuyerModel, optional
            P(alive) of one-time buyers from the data (see :func:`p_alive_as_of`).
        choice : ExportChoice, optional
            The variant chosen on the holdout (see :func:`chances_as_of`).

        Returns
        -------
        DataFrame
            :func:`customer_state` columns plus ``p_alive``, ``p_purchase_90d`` and ``lifecycle_stage``.
        """
        check_is_fitted(self, "thresholds_")
        state = customer_state(history, as_of, customers, engagement, non_purchase, self.data_start_)
        if bgnbd is not None:
            state["p_alive"], state["p_purchase_90d"] = chances_as_of(bgnbd, state, one_time, choice)
        else:
            state["p_alive"] = state["p_purchase_90d"] = np.nan
        state["lifecycle_stage"] = assign_lifecycle_stage(
            state, thresholds or self.thresholds_, state["p_alive"] if bgnbd is not None else None,
            state["p_purchase_90d"] if bgnbd is not None else None)
        return state


def p_alive_as_of(bgnbd: BetaGeoModel, state: pd.DataFrame, one_time: OneTimeBuyerModel | None = None,
                  choice: "ExportChoice | None" = None) -> np.ndarray:
    """P(alive) of buyers from their state (NaN for prospects).

    BG/NBD with ``frequency = n_purchases - 1``, ``recency`` = first to last purchase, ``T`` =
    first purchase to the last observed day (``as_of`` - 1), in the model's time unit: the same
    numbers as :func:`segkit.clv.clv_summary` with ``observation_period_end = as_of - 1 day``.
    Given ``one_time``, one-time buyers get :meth:`segkit.clv.OneTimeBuyerModel.p_alive` of their
    age in days instead of BG/NBD's 1; given ``choice``, the calibration chosen on the holdout
    (:func:`model_chances`).
    """
    return chances_as_of(bgnbd, state, one_time, choice)[0]


def chances_as_of(bgnbd: BetaGeoModel, state: pd.DataFrame, one_time: OneTimeBuyerModel | None = None,
                  choice: "ExportChoice | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """``(p_alive, p_purchase_90d)`` of buyers from their state (NaN for prospects), see :func:`model_chances`."""
    buyer = (state["n_purchases"] > 0).to_numpy()
    alive, purchase = np.full(len(state), np.nan), np.full(len(state), np.nan)
    if buyer.any():
        unit = bgnbd.time_unit_days
        rows = state[buyer]
        summary = pd.DataFrame({
            "frequency": (rows["n_purchases"] - 1).to_numpy(dtype=float),
            "recency": (rows["tenure_days"] - rows["recency_days"]).to_numpy(dtype=float) / unit,
            "T": (rows["tenure_days"] - 1).to_numpy(dtype=float) / unit,
        })
        alive[buyer], purchase[buyer] = model_chances(bgnbd, summary, one_time, choice)
    return alive, purchase


#: Days ahead of the exported purchase chance ``p_purchase_90d`` (and of the default holdout).
CHANCE_DAYS = 90.0


@dataclass(frozen=True)
class ExportChoice:
    """Which model feeds the exported chances, chosen on the holdout (:func:`run_holdout_check`).

    ``base``: ``"bgnbd"`` (BG/NBD's closed forms for everyone) or ``"one_time"`` (one-time buyers'
    chances from the data, :class:`segkit.clv.OneTimeBuyerModel`). ``purchase_map`` and
    ``alive_map`` (isotonic maps fitted on the holdout, :class:`segkit.clv.ChanceCalibrator`), when
    set, floor P(alive): a customer who buys is alive, so P(alive) is never below the share of
    customers like them who bought in 90 days; with ``calibrate_chance`` the exported 90-day
    purchase chance is the calibrated one too (False when the calibration, learnt on one holdout,
    did not miss less on the next: :func:`run_holdout_check`). ``reason`` says why, in words.
    """

    base: str = "one_time"
    purchase_map: ChanceCalibrator | None = None
    alive_map: ChanceCalibrator | None = None
    reason: str = ""
    calibrate_chance: bool = True

    @property
    def variant(self) -> str:
        """``"bgnbd"``, ``"one_time"`` or ``"calibrated"`` (the chance calibrated on top of ``base``)."""
        return "calibrated" if self.purchase_map is not None and self.calibrate_chance else self.base


def model_chances(bgnbd: BetaGeoModel, summary: pd.DataFrame, one_time: OneTimeBuyerModel | None = None,
                  choice: ExportChoice | None = None, days: float = CHANCE_DAYS) -> tuple[np.ndarray, np.ndarray]:
    """P(alive) and the chance of at least one purchase in the next ``days`` days, as exported.

    Repeat buyers: BG/NBD (:meth:`segkit.clv.BetaGeoModel.p_alive`, ``p_purchase_within``).
    One-time buyers: P(alive) from ``one_time`` when fitted (otherwise BG/NBD's 1, an artefact
    :func:`score_customers` does not export); their purchase chance from ``one_time`` unless ``choice.base`` is ``"bgnbd"``.
    With ``choice.purchase_map`` (only for ``days`` = 90, the holdout's length) P(alive) becomes
    ``max(P(alive), calibrated chance, alive_map(P(alive)))``, and the chance the calibrated one
    when ``choice.calibrate_chance``.

    Examples
    --------
    >>> from segkit.clv import simulate_customers
    >>> s = simulate_customers(800, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> bg = BetaGeoModel().fit(s)
    >>> alive, buy = model_chances(bg, s)
    >>> bool((buy <= alive).all()), bool((alive[s["frequency"] == 0] == 1).all())
    (True, True)
    """
    alive = np.asarray(bgnbd.p_alive(summary), dtype=float).copy()
    purchase = np.asarray(bgnbd.p_purchase_within(summary, days), dtype=float).copy()
    one = summary["frequency"].to_numpy() == 0
    age = summary["T"].to_numpy(dtype=float)[one] * bgnbd.time_unit_days
    if one_time is not None:
        alive[one] = one_time.p_alive(age)
    if one_time is not None and (choice is None or choice.base == "one_time"):
        purchase[one] = one_time.p_purchase_within(age, days)
    if choice is not None and choice.purchase_map is not None and days == CHANCE_DAYS:
        calibrated = choice.purchase_map.predict(purchase)
        floor = calibrated if choice.alive_map is None else np.fmax(calibrated, choice.alive_map.predict(alive))
        alive = np.fmax(alive, floor)
        if choice.calibrate_chance:
            purchase = calibrated
    return alive, purchase


# --------------------------------------------------------------------------- snapshots
def snapshot_dates(first_purchase: pd.Timestamp, as_of: str | pd.Timestamp, freq: str = "M") -> pd.DataFrame:
    """Snapshot dates: the end of each period (month, week, quarter) up to ``as_of``.

    A snapshot "as of" a date is exclusive like ``as_of``: the snapshot of January 2024 is
    taken as of 2024-02-01. The last period ends at ``as_of`` and is ``partial`` when
    ``as_of`` falls inside it.

    Examples
    --------
    >>> snapshot_dates(pd.Timestamp("2024-01-15"), "2024-03-10")  # doctest: +NORMALIZE_WHITESPACE
      period snapshot_date  partial
    0  2024-01    2024-02-01    False
    1  2024-02    2024-03-01    False
    2  2024-03    2024-03-10     True
    """
    if freq not in SNAPSHOT_FREQS:
        raise ConfigError(f"lifecycle.snapshot_freq = {freq!r} is not supported; use one of "
                          f"{', '.join(SNAPSHOT_FREQS)} ({', '.join(SNAPSHOT_FREQS.values())}).")
    as_of = parse_as_of(as_of)
    last_day = as_of - pd.Timedelta(days=1)
    periods = pd.period_range(pd.Timestamp(first_purchase).to_period(freq), last_day.to_period(freq), freq=freq)
    ends = periods.end_time.normalize() + pd.Timedelta(days=1)
    dates = ends.where(ends <= as_of, as_of)
    return pd.DataFrame({"period": periods.astype(str), "snapshot_date": dates, "partial": np.asarray(ends > as_of)})


def stage_history(
    stager: LifecycleStager,
    history: pd.DataFrame,
    dates: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    engagement: pd.Series | None = None,
    bgnbd: BetaGeoModel | None = None,
    one_time: OneTimeBuyerModel | None = None,
    choice: ExportChoice | None = None,
    non_purchase: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stage of every customer at every snapshot (one vectorised stage assignment per date).

    ``non_purchase`` (:func:`segkit.data.orders.first_non_purchase`): customers with an order but
    no purchase yet are ``no_net_purchase`` from their first order on.

    Returns
    -------
    DataFrame
        Index ``customer_id``, one column per snapshot period, values: codes into
        :data:`STAGES` (int8), -1 = not yet a customer at that date.
    """

    check_is_fitted(stager, "thresholds_")
    history_codes, known = customer_codes(history["customer_id"])
    ids = known.take(np.unique(history_codes))
    customer_ids = customers["customer_id"].astype("string") if customers is not None else None
    if customer_ids is not None:
        ids = ids.union(pd.Index(customer_ids.unique()))
    ordered_ids = non_purchase["customer_id"].astype("string") if non_purchase is not None else None
    if ordered_ids is not None:
        ids = ids.union(pd.Index(ordered_ids.unique()))
    ids = pd.Index(ids.sort_values(), dtype="string", name="customer_id")
    # Positions into ``ids`` computed once; each snapshot is then numbers only. Prospects (known
    # customers without a purchase yet) are staged here as customer_state + assign_lifecycle_stage
    # would: engaged_prospect when engaged before the date, else prospect.
    known_position = ids.get_indexer(known)
    if customer_ids is not None:
        customer_position = ids.get_indexer(customer_ids)
        signup = (customers["signup_date"].to_numpy(dtype="datetime64[ns]") if "signup_date" in customers.columns
                  else np.full(len(customers), np.datetime64("NaT"), dtype="datetime64[ns]"))
    engaged_since = (engagement.reindex(ids).to_numpy(dtype="datetime64[ns]") if engagement is not None
                     else np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[ns]"))
    if ordered_ids is not None:
        ordered_position = ids.get_indexer(ordered_ids)
        first_order = non_purchase["first_order_date"].to_numpy(dtype="datetime64[ns]")
    prospect, engaged_prospect = STAGES.index("prospect"), STAGES.index("engaged_prospect")
    codes = np.full((len(ids), len(dates)), -1, dtype=np.int8)
    for j, day in enumerate(progress(dates["snapshot_date"], desc="lifecycle snapshots", total=len(dates))):
        day = parse_as_of(day)
        column = codes[:, j]
        if customer_ids is not None:
            known_then = customer_position[np.isnat(signup) | (signup < day.to_datetime64())]
            column[known_then] = np.where(engaged_since[known_then] < day.to_datetime64(), engaged_prospect, prospect)
        if ordered_ids is not None:  # buyers among them are overwritten below
            column[ordered_position[first_order < day.to_datetime64()]] = STAGES.index("no_net_purchase")
        state, positions, _ = _buyer_state(history, day)
        state["engaged"] = False
        state["first_purchase_days_into_data"] = days_into_data(state["first_purchase"], stager.data_start_)
        p_alive, p_purchase = chances_as_of(bgnbd, state, one_time, choice) if bgnbd is not None else (None, None)
        column[known_position[positions]] = assign_lifecycle_stage(
            state, stager.thresholds_, p_alive, p_purchase).cat.codes.to_numpy()
    return pd.DataFrame(codes, index=ids, columns=list(dates["period"]))


def stage_counts(stages_over_time: pd.DataFrame, dates: pd.DataFrame) -> pd.DataFrame:
    """Customers per stage and snapshot (long table: ``snapshots.parquet``).

    Returns ``period, snapshot_date, partial, lifecycle_stage, customers, share`` (share of the
    customers known at that snapshot).

    Examples
    --------
    >>> dates = snapshot_dates(pd.Timestamp("2024-01-10"), "2024-03-01")
    >>> new, active = STAGES.index("new"), STAGES.index("active")
    >>> codes = pd.DataFrame({"2024-01": [new, -1], "2024-02": [active, new]}, index=["a", "b"])
    >>> stage_counts(codes, dates).query("customers > 0")[["period", "lifecycle_stage", "customers"]].values.tolist()
    [['2024-01', 'new', 1], ['2024-02', 'new', 1], ['2024-02', 'active', 1]]
    """
    codes = stages_over_time.to_numpy()
    k = len(STAGES)
    counts = np.stack([np.bincount(col[col >= 0], minlength=k) for col in codes.T]) if codes.size else np.zeros((0, k), int)
    out = pd.DataFrame({
        "period": np.repeat(dates["period"].to_numpy(), k),
        "snapshot_date": np.repeat(dates["snapshot_date"].to_numpy(), k),
        "partial": np.repeat(dates["partial"].to_numpy(), k),
        "lifecycle_stage": np.tile(np.array(STAGES, dtype=object), len(dates)),
        "customers": counts.reshape(-1).astype("int64"),
    })
    total = out.groupby("period", sort=False)["customers"].transform("sum")
    out["share"] = (out["customers"] / total.where(total > 0)).astype("float64")
    out["lifecycle_stage"] = out["lifecycle_stage"].astype("string")
    out["period"] = out["period"].astype("string")
    return out


def transition_counts(stages_over_time: pd.DataFrame, last: int | None = None) -> pd.DataFrame:
    """Stage-to-stage moves between consecutive snapshots, pooled over the snapshot pairs.

    Parameters
    ----------
    stages_over_time : DataFrame
        From :func:`stage_history`.
    last : int, optional
        Pool only the last ``last`` pairs (None = all).

    Returns
    -------
    DataFrame
        Rows: stage at the earlier snapshot (plus :data:`NOT_YET` for customers who joined),
        columns: stage at the later one; values: customers.

    Examples
    --------
    >>> new, active, lapsed = STAGES.index("new"), STAGES.index("active"), STAGES.index("lapsed")
    >>> s = pd.DataFrame({"p1": [new, new, -1], "p2": [active, lapsed, new]}, index=["a", "b", "c"])
    >>> m = transition_counts(s)
    >>> int(m.loc["new", "active"]), int(m.loc["new", "lapsed"]), int(m.loc[NOT_YET, "new"])
    (1, 1, 1)
    """
    codes = stages_over_time.to_numpy()
    k = len(STAGES)
    start = 0 if last is None else max(codes.shape[1] - 1 - last, 0)
    matrix = np.zeros((k + 1) * k, dtype=np.int64)
    for t in range(start, codes.shape[1] - 1):  # one pair of snapshots at a time: memory of one column
        before, after = codes[:, t].astype(np.int16), codes[:, t + 1].astype(np.int16)
        keep = after >= 0
        matrix += np.bincount((before[keep] + 1) * k + after[keep], minlength=(k + 1) * k)
    matrix = matrix.reshape(k + 1, k)
    index = pd.Index([NOT_YET, *STAGES], name="from_stage")
    return pd.DataFrame(matrix, index=index, columns=pd.Index(STAGES, name="to_stage"))


def row_shares(matrix: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its total (rows without customers stay NaN).

    Examples
    --------
    >>> row_shares(pd.DataFrame({"x": [1, 0], "y": [3, 0]}))["y"].tolist()
    [0.75, nan]
    """
    totals = matrix.sum(axis=1)
    return matrix.div(totals.where(totals > 0), axis=0)


def period_rates(stages_over_time: pd.DataFrame, history: pd.DataFrame, dates: pd.DataFrame,
                 complete_from: pd.Timestamp | None = None) -> pd.DataFrame:
    """Churn, reactivation and repeat-purchase rates per snapshot period.

    For period *t* (from snapshot *t-1* to snapshot *t*):

    - ``churn_rate``: live buyers at *t-1* (new, active, loyal, at risk, reactivated) who are
      lapsed at *t*, over live buyers at *t-1*;
    - ``reactivation_rate``: lapsed customers at *t-1* who bought during the period, over lapsed
      customers at *t-1*;
    - ``repeat_purchase_rate``: buyers at *t-1* who bought again during the period, over buyers
      at *t-1*;

    plus counts ``live_start, lapsed_start, buyers_start, churned, reactivated, repeat_buyers,
    new_customers`` (first purchase in the period), ``live_end``. The first period has no
    predecessor and is left out.

    ``window_complete`` is False for a period that starts before ``complete_from`` (the data's
    first day + the churn window, :attr:`LifecycleStager.first_seen_until_`; None = every period
    complete): at its start the churn window reaches before the data, so customers who bought
    only before the data are missing, nobody can have lapsed yet and the rates (churn 0 %) and
    the live base say nothing about the shop. Such periods are left out of plots and summaries.
    """
    codes = stages_over_time.to_numpy()
    n_dates = len(dates)
    ids = stages_over_time.index
    snap = dates["snapshot_date"].to_numpy(dtype="datetime64[ns]")
    period_of = np.searchsorted(snap, history["purchase_date"].to_numpy(dtype="datetime64[ns]"), side="right")
    rows = period_of < n_dates
    bought = np.zeros(codes.shape, dtype=bool)
    history_codes, history_ids = customer_codes(history["customer_id"])
    bought[ids.get_indexer(history_ids)[history_codes[rows]], period_of[rows]] = True
    first = (history["n_purchases"].to_numpy() == 1) & rows
    new_customers = np.bincount(period_of[first], minlength=n_dates)
    stage_code = {s: i for i, s in enumerate(STAGES)}
    live_codes = [stage_code[s] for s in LIVE_STAGES]
    buyer_codes = [stage_code[s] for s in BUYER_STAGES]
    counts = np.zeros((8, max(n_dates, 1)), dtype=np.int64)  # one snapshot column at a time
    previous = None
    for t in range(n_dates):
        live, lapsed = np.isin(codes[:, t], live_codes), codes[:, t] == stage_code["lapsed"]
        buyers = np.isin(codes[:, t], buyer_codes)
        counts[0:3, t] = live.sum(), lapsed.sum(), buyers.sum()
        if previous is not None:
            was_live, was_lapsed, was_buyer = previous
            counts[3:6, t] = ((was_live & lapsed).sum(), (was_lapsed & bought[:, t]).sum(),
                              (was_buyer & bought[:, t]).sum())
        previous = live, lapsed, buyers
    live_start, lapsed_start, buyers_start = counts[0, :-1], counts[1, :-1], counts[2, :-1]
    churned, reactivated, repeat = counts[3, 1:n_dates], counts[4, 1:n_dates], counts[5, 1:n_dates]

    def rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)

    return pd.DataFrame({
        "period": dates["period"].to_numpy()[1:],
        "snapshot_date": dates["snapshot_date"].to_numpy()[1:],
        "partial": dates["partial"].to_numpy()[1:],
        "live_start": live_start, "churned": churned, "churn_rate": rate(churned, live_start),
        "lapsed_start": lapsed_start, "reactivated": reactivated,
        "reactivation_rate": rate(reactivated, lapsed_start),
        "buyers_start": buyers_start, "repeat_buyers": repeat, "repeat_purchase_rate": rate(repeat, buyers_start),
        "new_customers": new_customers[1:], "live_end": counts[0, 1:n_dates],
        "window_complete": (np.ones(max(n_dates - 1, 0), dtype=bool) if complete_from is None
                            else snap[:-1] >= np.datetime64(pd.Timestamp(complete_from), "ns")),
    })


def complete_periods(rates: pd.DataFrame) -> pd.DataFrame:
    """The periods of :func:`period_rates` whose rates mean something: not partial, and with the churn
    window complete (``window_complete``, when present).

    Examples
    --------
    >>> r = pd.DataFrame({"period": ["a", "b", "c"], "partial": [False, False, True],
    ...                   "window_complete": [False, True, True]})
    >>> complete_periods(r)["period"].tolist()
    ['b']
    """
    keep = ~rates["partial"].to_numpy(dtype=bool)
    if "window_complete" in rates.columns:
        keep &= rates["window_complete"].to_numpy(dtype=bool)
    return rates[keep]


# --------------------------------------------------------------------------- cohorts
def cohort_table(history: pd.DataFrame, as_of: str | pd.Timestamp,
                 first_seen_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Acquisition-month cohorts by months since first purchase (``cohorts.parquet``).

    A customer's cohort is the calendar month of their first purchase; month 0 is that month
    (retention 1 by definition). Every cohort has a row for each month up to ``as_of``'s month
    (zeros included); the month containing ``as_of`` - 1 is ``partial`` unless it is complete.
    ``first_seen`` marks the cohorts that start before ``first_seen_until`` (the data's first day
    + the churn window, :attr:`LifecycleStager.first_seen_until_`; None = none): their customers
    were first seen then, not necessarily acquired (they may have bought before the data), so
    they are no acquisition cohorts and :func:`cohort_matrix` leaves them out.

    Returns
    -------
    DataFrame
        ``cohort`` ("YYYY-MM"), ``months_since_first``, ``cohort_size``, ``customers_purchasing``,
        ``retention`` (share of the cohort purchasing), ``revenue``, ``revenue_per_customer``,
        ``cumulative_revenue_per_customer``, ``partial``, ``first_seen``.

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [10.0, 4.0, 6.0],
    ...     "order_date": pd.to_datetime(["2024-01-05", "2024-03-02", "2024-01-20"])})
    >>> cohort_table(purchase_history(orders), "2024-04-01")[["months_since_first", "retention", "revenue"]]
       months_since_first  retention  revenue
    0                   0        1.0     16.0
    1                   1        0.0      0.0
    2                   2        0.5      4.0
    """
    as_of = parse_as_of(as_of)
    rows = history[history["purchase_date"] < as_of]
    if rows.empty:
        return pd.DataFrame(columns=["cohort", "months_since_first", "cohort_size", "customers_purchasing",
                                     "retention", "revenue", "revenue_per_customer",
                                     "cumulative_revenue_per_customer", "partial", "first_seen"])
    def month_number(d: pd.Series) -> np.ndarray:
        return (d.dt.year * 12 + d.dt.month - 1).to_numpy()
    cohort = month_number(rows["first_purchase"])
    k = month_number(rows["purchase_date"]) - cohort
    cells = pd.DataFrame({"cohort": cohort, "k": k, "customer_id": customer_codes(rows["customer_id"])[0],
                          "amount": rows["amount"].to_numpy()})
    grouped = cells.groupby(["cohort", "k"], sort=True).agg(
        customers_purchasing=("customer_id", "nunique"), revenue=("amount", "sum"))
    sizes = grouped.xs(0, level="k")["customers_purchasing"]
    last_day = as_of - pd.Timedelta(days=1)
    last_month = last_day.year * 12 + last_day.month - 1
    span = last_month - sizes.index.to_numpy() + 1
    grid = pd.MultiIndex.from_arrays([np.repeat(sizes.index.to_numpy(), span),
                                      np.concatenate([np.arange(s) for s in span])], names=["cohort", "k"])
    out = grouped.reindex(grid, fill_value=0).reset_index()
    out["cohort_size"] = sizes.reindex(out["cohort"]).to_numpy()
    out["retention"] = out["customers_purchasing"] / out["cohort_size"]
    out["revenue_per_customer"] = out["revenue"] / out["cohort_size"]
    out["cumulative_revenue_per_customer"] = out.groupby("cohort")["revenue_per_customer"].cumsum()
    month_complete = (last_day + pd.Timedelta(days=1)).day == 1
    out["partial"] = (out["cohort"] + out["k"] == last_month) & (not month_complete)
    if first_seen_until is None:
        out["first_seen"] = False
    else:
        until = pd.Timestamp(first_seen_until)
        out["first_seen"] = out["cohort"] < until.year * 12 + until.month - 1 + (until.day > 1)
    out["cohort"] = pd.array([f"{c // 12}-{c % 12 + 1:02d}" for c in out["cohort"]], dtype="string")
    out = out.rename(columns={"k": "months_since_first"})
    return out[["cohort", "months_since_first", "cohort_size", "customers_purchasing", "retention", "revenue",
                "revenue_per_customer", "cumulative_revenue_per_customer", "partial", "first_seen"]].astype(
        {"months_since_first": "int64", "cohort_size": "int64", "customers_purchasing": "int64", "revenue": "float64"})


def cohort_matrix(cohorts: pd.DataFrame, value: str = "retention", min_cohort_size: int = 1,
                  include_first_seen: bool = False) -> pd.DataFrame:
    """Cohort x months-since-first-purchase matrix of ``value`` (cohorts smaller than
    ``min_cohort_size`` left out, so that no small group is shown; ``first_seen`` cohorts, see
    :func:`cohort_table`, only with ``include_first_seen``).

    Examples
    --------
    >>> c = pd.DataFrame({"cohort": ["2024-01", "2024-01", "2024-02"], "months_since_first": [0, 1, 0],
    ...                   "cohort_size": [20, 20, 5], "retention": [1.0, 0.3, 1.0]})
    >>> cohort_matrix(c, min_cohort_size=10).to_dict("index")
    {'2024-01': {0: 1.0, 1: 0.3}}
    """
    keep = cohorts["cohort_size"] >= min_cohort_size
    if not include_first_seen and "first_seen" in cohorts.columns:
        keep &= ~cohorts["first_seen"].astype(bool)
    rows = cohorts[keep]
    return rows.pivot(index="cohort", columns="months_since_first", values=value)


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class LifecycleSettings:
    """The ``lifecycle`` config section, validated (see ``segkit/defaults/lifecycle.yml``)."""

    snapshot_freq: str = "M"
    horizon_months: int = 12
    discount_rate: float = 0.10
    margin: float = 1.0
    holdout_months: int = 3
    penalizer_coef: float = 0.0
    min_repeat_buyers: int = 20
    holdout_max_frequency: int = 7
    max_relative_se: float = 1.0
    engagement_columns: tuple[str, ...] = ("opened", "clicked")
    stages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The stage-threshold keys of the section: parameters of :class:`LifecycleStager`.
    stager_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "LifecycleSettings":
        """Validate the ``lifecycle`` section; unknown keys and wrong types are a ConfigError."""
        stager_keys = set(LifecycleStager().get_params())
        known = ({f.name for f in fields(cls)} - {"stager_params"}) | stager_keys
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"lifecycle: unknown key(s) {', '.join(map(repr, unknown))} in the config. "
                              f"Known keys: {', '.join(sorted(known))}.")
        values = {k: v for k, v in section.items() if k not in stager_keys}
        stager = {k: v for k, v in section.items() if k in stager_keys}
        for name, v in stager.items():
            if name == "data_starts_with_shop":
                if not isinstance(v, bool):
                    raise ConfigError(f"lifecycle.data_starts_with_shop = {v!r} must be true or false (true: "
                                      "nobody bought before the data starts).")
                continue
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ConfigError(f"lifecycle.{name} = {v!r} is not a number (null = data-driven default where "
                                  "allowed). Fix it in the config or the notebook parameter.")
        values["stager_params"] = stager
        for name in ("horizon_months", "holdout_months", "min_repeat_buyers", "min_gaps", "holdout_max_frequency"):
            if name in values:
                v = values[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 0:
                    raise ConfigError(f"lifecycle.{name} = {v!r} must be a whole number >= 0.")
                values[name] = int(v)
        if values.get("horizon_months", 12) < 1:
            raise ConfigError("lifecycle.horizon_months must be at least 1 month.")
        for name in ("discount_rate", "margin", "penalizer_coef", "max_relative_se"):
            if name in values and (isinstance(values[name], bool) or not isinstance(values[name], (int, float))):
                raise ConfigError(f"lifecycle.{name} = {values[name]!r} is not a number.")
        if values.get("max_relative_se", 1.0) <= 0:
            raise ConfigError("lifecycle.max_relative_se must be > 0 (1.0 = flag a parameter whose standard error "
                              "exceeds its estimate).")
        rate = values.get("discount_rate", 0.1)
        if not -1 < rate <= 1:
            raise ConfigError(f"lifecycle.discount_rate = {rate!r}: an annual rate written as a share, 0.10 means "
                              f"10 % a year ({rate!r} would be {rate * 100:,.0f} %); use a value above -1 and at most "
                              "1 (100 %).")
        margin = values.get("margin", 1.0)
        if not 0 <= margin <= 1:
            raise ConfigError(f"lifecycle.margin = {margin!r}: the share of revenue that is profit, 0.30 means 30 % "
                              "(1.0: the CLV is revenue); use a value from 0 to 1.")
        if "engagement_columns" in values:
            columns = values["engagement_columns"] or ()
            values["engagement_columns"] = (columns,) if isinstance(columns, str) else tuple(columns)
        settings = cls(**values)
        settings.stage_info()  # validates the stages mapping
        if settings.snapshot_freq not in SNAPSHOT_FREQS:
            raise ConfigError(f"lifecycle.snapshot_freq = {settings.snapshot_freq!r} is not supported; use one of "
                              f"{', '.join(SNAPSHOT_FREQS)}.")
        return settings

    def stager(self) -> LifecycleStager:
        """A :class:`LifecycleStager` with the section's thresholds (others: its defaults)."""
        return LifecycleStager(**self.stager_params)

    def stage_info(self) -> pd.DataFrame:
        """``lifecycle_stage, phase, meaning, recommended_action`` per stage, from ``stages:``."""
        missing = [s for s in STAGES if s not in self.stages]
        if missing:
            raise ConfigError(f"lifecycle.stages: stage(s) {', '.join(missing)} missing. Every stage of "
                              f"{', '.join(STAGES)} needs a phase, a meaning and an action.")
        rows = []
        for stage in STAGES:
            entry = self.stages[stage] or {}
            phase = entry.get("phase")
            if phase not in PHASES:
                raise ConfigError(f"lifecycle.stages.{stage}.phase = {phase!r}; use one of {', '.join(PHASES)}.")
            rows.append((stage, phase, str(entry.get("meaning", "")), str(entry.get("action", ""))))
        return pd.DataFrame(rows, columns=["lifecycle_stage", "phase", "meaning", "recommended_action"])


# --------------------------------------------------------------------------- CLV scoring
@dataclass
class CLVModels:
    """Fitted BG/NBD, one-time buyer and Gamma-Gamma models (None when a fit failed) and what
    went wrong; ``identification`` holds the weak-identification warnings (also in ``warnings``)."""

    bgnbd: BetaGeoModel | None
    gamma_gamma: GammaGammaModel | None
    warnings: list[str]
    one_time: OneTimeBuyerModel | None = None
    identification: list[str] = field(default_factory=list)
    #: The variant chosen on the holdout (None = no holdout: BG/NBD with the one-time buyer model).
    choice: ExportChoice | None = None


def _estimates(params: Mapping[str, float], errors: Mapping[str, float], names: list[str]) -> str:
    return ", ".join(f"{k} = {params[k]:.3g} (SE {errors.get(k, float('nan')):.3g})" for k in names)


def identification_warnings(bgnbd: BetaGeoModel | None, gamma_gamma: GammaGammaModel | None) -> list[str]:
    """Plain-language warnings for weakly identified parameters of the fitted models.

    Examples
    --------
    >>> from segkit.clv import simulate_customers
    >>> s = simulate_customers(2000, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> identification_warnings(BetaGeoModel().fit(s), None)
    []
    """
    out = []
    if bgnbd is not None and bgnbd.weak_parameters_:
        weak = bgnbd.weak_parameters_
        text = (f"BG/NBD parameters weakly identified: {_estimates(bgnbd.params_, bgnbd.standard_errors_, weak)} "
                f"(standard error above {bgnbd.max_relative_se:g} x the estimate, or a shape run off to 0 or "
                "infinity).")
        if {"a", "b"} & set(weak):
            text += (" The data do not tell how much the dropout chance varies between customers; its mean "
                     f"a/(a+b) = {bgnbd.dropout_mean_:.1%} per repeat purchase (SE {bgnbd.dropout_mean_se_:.1%}) is "
                     "better determined. P(alive) of repeat buyers after a long silence rests on that split: check "
                     "the P(alive) calibration in the holdout section before acting on single values.")
        else:
            text += " Predictions resting on them are uncertain; check the holdout section before use."
        out.append(text)
    if gamma_gamma is not None and gamma_gamma.weak_parameters_:
        weak = gamma_gamma.weak_parameters_
        out.append(f"Gamma-Gamma parameters weakly identified: "
                   f"{_estimates(gamma_gamma.params_, gamma_gamma.standard_errors_, weak)}: expected order values "
                   "and CLV are uncertain.")
    return out


def fit_clv_models(summary: pd.DataFrame, settings: LifecycleSettings,
                   durations: pd.DataFrame | None = None) -> CLVModels:
    """Fit the models; a :class:`ModelFitError` becomes a warning and a None model.

    Parameters
    ----------
    summary : DataFrame
        From :func:`segkit.clv.clv_summary`.
    settings : LifecycleSettings
    durations : DataFrame, optional
        From :func:`segkit.clv.first_repeat_durations` on the same purchases and end: fits the
        one-time buyer model (only together with BG/NBD; its P(alive) replaces BG/NBD's 1).
    """
    messages: list[str] = []
    bgnbd = gamma_gamma = one_time = None
    try:
        bgnbd = BetaGeoModel(penalizer_coef=settings.penalizer_coef, min_repeat_buyers=settings.min_repeat_buyers,
                             max_relative_se=settings.max_relative_se).fit(summary)
    except ModelFitError as exc:
        messages.append(str(exc))
    try:
        gamma_gamma = GammaGammaModel(penalizer_coef=settings.penalizer_coef,
                                      min_repeat_buyers=settings.min_repeat_buyers,
                                      max_relative_se=settings.max_relative_se).fit(summary)
    except ModelFitError as exc:
        messages.append(str(exc))
    if bgnbd is not None and durations is not None:
        try:
            one_time = OneTimeBuyerModel(min_repeat_buyers=settings.min_repeat_buyers).fit(
                durations["days"], durations["repeated"])
        except ModelFitError as exc:
            messages.append(str(exc))
    identification = identification_warnings(bgnbd, gamma_gamma)
    return CLVModels(bgnbd, gamma_gamma, messages + identification, one_time, identification)


def score_customers(models: CLVModels, summary: pd.DataFrame, settings: LifecycleSettings) -> pd.DataFrame:
    """``p_alive, p_purchase_90d, expected_purchases_90d, expected_order_value, clv_12m`` (+ ``clv_<h>m``) per buyer.

    The chances come from :func:`model_chances` with ``models.choice`` (the variant chosen on the
    holdout); one-time buyers' expected purchases and CLV from ``models.one_time`` unless the
    holdout chose plain BG/NBD. Without the one-time buyer model their P(alive) is left empty
    (BG/NBD's 1 is not a prediction) unless a holdout calibration floors it. Columns a failed
    model would feed are NaN.
    """
    out = pd.DataFrame(index=summary.index)
    nan = np.full(len(summary), np.nan)
    bg, gg, one_time = models.bgnbd, models.gamma_gamma, models.one_time
    if models.choice is not None and models.choice.base == "bgnbd":
        one_time_purchases = None
    else:
        one_time_purchases = one_time
    if bg is not None:
        p_alive, out["p_purchase_90d"] = model_chances(bg, summary, one_time, models.choice)
        if one_time is None and (models.choice is None or models.choice.purchase_map is None):
            p_alive[summary["frequency"].to_numpy() == 0] = np.nan  # BG/NBD's 1 is not a prediction
        out["p_alive"] = p_alive
        out["expected_purchases_90d"] = expected_purchases(bg, summary, CHANCE_DAYS, one_time_purchases)
    else:
        out["p_alive"] = out["p_purchase_90d"] = out["expected_purchases_90d"] = nan
    out["expected_order_value"] = gg.predict(summary) if gg is not None else nan
    horizons = sorted({12, settings.horizon_months})
    for h in horizons:
        out[f"clv_{h}m"] = (customer_lifetime_value(bg, gg, summary, h, settings.discount_rate, settings.margin,
                                                    one_time=one_time_purchases)
                            if bg is not None and gg is not None else nan)
    return out


def one_time_curve(model: OneTimeBuyerModel, max_days: float, step: float = 7.0) -> pd.DataFrame:
    """P(alive) and 90-day purchase chance of a one-time buyer by age (days since the purchase).

    Examples
    --------
    >>> m = OneTimeBuyerModel(min_repeat_buyers=1).fit([10, 20, 30, 40, 50], [True, True, False, True, False])
    >>> one_time_curve(m, 21, step=7)["p_alive"].round(3).tolist()
    [0.7, 0.7, 0.625, 0.5]
    """
    ages = np.arange(0.0, float(max_days) + step / 2, step)
    return pd.DataFrame({"age_days": ages, "p_alive": model.p_alive(ages),
                         "p_purchase_90d": model.p_purchase_within(ages, 90.0)})


def clv_overview(lifecycle: pd.DataFrame, column: str) -> dict[str, float]:
    """Total, mean and concentration (top-decile share) of predicted CLV.

    Examples
    --------
    >>> round(clv_overview(pd.DataFrame({"clv": [90.0] + [10.0 / 9] * 9 + [np.nan]}), "clv")["top_decile_share"], 6)
    0.9
    """
    values = lifecycle[column].dropna().to_numpy(dtype=float)
    if len(values) == 0:
        return {"customers": 0, "total": float("nan"), "mean": float("nan"), "median": float("nan"),
                "top_decile_share": float("nan")}
    ordered = np.sort(values)[::-1]
    top = max(int(math.ceil(len(ordered) * 0.1)), 1)
    total = float(ordered.sum())
    return {"customers": int(len(values)), "total": total, "mean": float(values.mean()),
            "median": float(np.median(values)),
            "top_decile_share": float(ordered[:top].sum() / total) if total > 0 else float("nan")}


@dataclass
class HoldoutCheck:
    """The calibration/holdout check (:func:`run_holdout_check`); tables are None when skipped.

    ``by_frequency``: predicted vs actual holdout repeat purchases by calibration frequency
    (:func:`segkit.clv.holdout_check`, predictions as exported). ``calibration`` and
    ``calibration_bgnbd``: P(alive) deciles at the cut-off against who bought in the holdout
    (:func:`segkit.clv.p_alive_calibration`), as exported and with BG/NBD's P(alive) = 1 for
    one-time buyers. ``by_stage``: stage at the cut-off, predicted vs actual holdout purchases
    and revenue. ``errors``: calibration error of each variant (:func:`segkit.clv.calibration_error`).
    """

    cutoff: pd.Timestamp | None = None
    by_frequency: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    calibration_bgnbd: pd.DataFrame | None = None
    by_stage: pd.DataFrame | None = None
    errors: dict[str, float] = field(default_factory=dict)
    warning: str | None = None
    #: Holdout length in days (the exported chances are calibrated only when it is 90).
    days: float = float("nan")
    #: ``prediction, variant, auc, calibration_error`` of every prediction and baseline.
    evaluation: pd.DataFrame | None = None
    #: Decile tables (:func:`segkit.clv.decile_calibration`) of the exported predictions and the past-rate baseline.
    deciles: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: The variant chosen for the export, with its calibration maps.
    choice: ExportChoice | None = None
    #: :func:`season_comparison` of the holdout and the prediction period.
    season: dict[str, Any] | None = None
    #: The variant behind the values reported "as exported" (chosen on the holdout before the cut-off,
    #: see :func:`run_holdout_check`; ``choice`` itself when the data are too short for that).
    reported_choice: ExportChoice | None = None
    #: Where the reported calibrated values come from, in words.
    reported_from: str = ""


def holdout_by_stage(stages: pd.Series, cal: pd.DataFrame, predicted: np.ndarray,
                     predicted_revenue: np.ndarray | None = None) -> pd.DataFrame:
    """Predicted vs actual holdout purchases (and revenue) of the customers of each stage.

    Parameters
    ----------
    stages : Series
        Stage at the cut-off, indexed like ``cal``.
    cal : DataFrame
        From :func:`segkit.clv.calibration_holdout_summary` (``frequency_holdout``, ``revenue_holdout``).
    predicted, predicted_revenue : array
        Predicted holdout purchases and revenue per customer (revenue optional).

    Returns
    -------
    DataFrame
        Buyer stages in :data:`BUYER_STAGES` order: ``customers, predicted_purchases,
        actual_purchases, purchases_error_pct, predicted_revenue, actual_revenue,
        revenue_error_pct`` and ``bought_share`` (share who bought in the holdout) with its 95 %
        Wilson interval ``bought_low, bought_high``.

    Examples
    --------
    >>> cal = pd.DataFrame({"frequency_holdout": [2, 0, 1], "revenue_holdout": [50.0, 0.0, 10.0]})
    >>> t = holdout_by_stage(pd.Series(["active", "lapsed", "lapsed"]), cal, np.array([1.5, 0.5, 0.5]),
    ...                      np.array([40.0, 20.0, 20.0]))
    >>> t.set_index("lifecycle_stage").loc["lapsed", ["predicted_purchases", "actual_purchases", "revenue_error_pct"]].tolist()
    [1.0, 1.0, 300.0]
    """
    frame = pd.DataFrame({"lifecycle_stage": np.asarray(stages, dtype=object),
                          "bought": cal["frequency_holdout"].to_numpy(dtype=float) > 0,
                          "predicted_purchases": np.asarray(predicted, dtype=float),
                          "actual_purchases": cal["frequency_holdout"].to_numpy(dtype=float),
                          "predicted_revenue": (np.asarray(predicted_revenue, dtype=float) if predicted_revenue is not None
                                                else np.full(len(cal), np.nan)),
                          "actual_revenue": (cal["revenue_holdout"].to_numpy(dtype=float) if "revenue_holdout" in cal
                                             else np.full(len(cal), np.nan))})
    g = frame.groupby("lifecycle_stage", sort=False)
    table = pd.DataFrame({"customers": g.size(), "bought": g["bought"].sum()}).join(
        g[["predicted_purchases", "actual_purchases", "predicted_revenue", "actual_revenue"]].sum(min_count=1))
    table = table.reindex([st for st in BUYER_STAGES if st in table.index])
    table["bought_share"] = table["bought"] / table["customers"]
    table["bought_low"], table["bought_high"] = wilson_interval(table["bought"], table["customers"])

    def error(pred: pd.Series, actual: pd.Series) -> pd.Series:
        return 100 * (pred - actual) / actual.where(actual > 0)

    table["purchases_error_pct"] = error(table["predicted_purchases"], table["actual_purchases"])
    table["revenue_error_pct"] = error(table["predicted_revenue"], table["actual_revenue"])
    table = table.rename_axis("lifecycle_stage").reset_index().astype({"customers": "int64", "lifecycle_stage": "string"})
    return table[["lifecycle_stage", "customers", "bought_share", "bought_low", "bought_high", "predicted_purchases",
                  "actual_purchases", "purchases_error_pct", "predicted_revenue", "actual_revenue", "revenue_error_pct"]]


def season_comparison(purchase_dates: pd.Series, cutoff: pd.Timestamp, as_of: pd.Timestamp,
                      days: float = CHANCE_DAYS, tolerance: float = 0.2, peak: float = 1.3) -> dict[str, Any]:
    """Is the holdout's season like the prediction period's? From the data's month-of-year profile.

    Purchase days per calendar day are averaged per month of the year over all the data (each
    month's mean over the days observed) and divided by the overall mean: the month's level. The
    holdout (``cutoff`` to ``as_of - 1``) and the prediction period (``as_of`` and the ``days - 1``
    days after) each get the mean level of their days. They differ when one level is more than
    ``tolerance`` off the other, or when a peak month (level >= ``peak``, the highest) falls in one
    period only. Months the data never covered leave ``coverage`` below 1; under a half the
    comparison is not made (``comparable`` False). A level mixes season and trend: with one year
    of data they cannot be told apart.

    Returns
    -------
    dict
        ``holdout_level, prediction_level, coverage, comparable, differs, peak_month`` (name or
        None), ``peak_in_holdout, peak_in_prediction``, ``months_not_in_data`` (names of the
        prediction period's months the data before ``as_of`` never covered).

    Examples
    --------
    >>> d = pd.Series(pd.date_range("2023-01-01", "2023-12-31")).repeat(1)
    >>> d = pd.concat([d, d[d.dt.month == 12].repeat(3)])  # December: 4 purchases a day
    >>> out = season_comparison(d, pd.Timestamp("2023-10-03"), pd.Timestamp("2024-01-01"))
    >>> out["peak_month"], out["peak_in_holdout"], out["peak_in_prediction"], out["differs"]
    ('December', True, False, True)
    """
    daily = pd.to_datetime(purchase_dates).dt.normalize().value_counts()
    every_day = pd.date_range(daily.index.min(), as_of - pd.Timedelta(days=1))
    daily = daily.reindex(every_day, fill_value=0).astype(float)
    overall = float(daily.mean()) if len(daily) else 0.0
    level = (daily.groupby(daily.index.month).mean() / overall) if overall > 0 else pd.Series(dtype=float)
    holdout = pd.date_range(cutoff, as_of - pd.Timedelta(days=1))
    coming = pd.date_range(as_of, periods=int(days))
    hold_levels = level.reindex(holdout.month).to_numpy(dtype=float)
    coming_levels = level.reindex(coming.month).to_numpy(dtype=float)
    coverage = float(np.isfinite(coming_levels).mean()) if len(coming_levels) else 0.0
    out: dict[str, Any] = {"holdout_level": float(np.nanmean(hold_levels)) if np.isfinite(hold_levels).any() else float("nan"),
                           "prediction_level": (float(np.nanmean(coming_levels)) if np.isfinite(coming_levels).any()
                                                else float("nan")),
                           "coverage": coverage, "comparable": coverage >= 0.5, "differs": False, "peak_month": None,
                           "peak_in_holdout": False, "peak_in_prediction": False,
                           "months_not_in_data": [pd.Timestamp(2000, int(m), 1).month_name() for m in
                                                  pd.unique(coming.month[~np.isfinite(coming_levels)])]}
    if not out["comparable"] or not np.isfinite(out["holdout_level"]) or out["holdout_level"] <= 0:
        out["comparable"] = False
        return out
    top = int(level.idxmax())
    if level[top] >= peak:
        out["peak_month"] = pd.Timestamp(2000, top, 1).month_name()
        out["peak_in_holdout"] = bool((holdout.month == top).any())
        out["peak_in_prediction"] = bool((coming.month == top).any())
    ratio = out["prediction_level"] / out["holdout_level"]
    out["differs"] = bool(abs(ratio - 1) > tolerance or out["peak_in_holdout"] != out["peak_in_prediction"])
    return out


def holdout_length_days(settings: LifecycleSettings) -> int:
    """Days of the holdout: 30 per ``holdout_months`` (the default 3 = the 90 days of ``p_purchase_90d``)."""
    return 30 * int(settings.holdout_months)


def choose_export(chances: Mapping[str, np.ndarray], alive: np.ndarray, bought: np.ndarray, days: float,
                  min_buyers: int, out_of_sample: Mapping[str, float] | None = None
                  ) -> tuple[ExportChoice, dict[str, np.ndarray]]:
    """Pick the variant of the purchase chance that is best calibrated on the holdout.

    ``chances`` maps ``"bgnbd"`` (and ``"one_time"`` when fitted) to each customer's predicted
    chance of a purchase in the holdout; ``alive`` is P(alive) as the models give it. The base
    is the variant with the smaller calibration error (:func:`segkit.clv.calibration_error` of
    the deciles; plain BG/NBD must miss by at least 1 point less to replace the one-time buyer model).
    The isotonic maps (:class:`segkit.clv.ChanceCalibrator`) are fitted whenever the holdout allows
    and always floor P(alive); the calibrated chance is judged on cross-fitted values
    (:func:`segkit.clv.cross_fitted_calibration`) and exported when it misses less
    (``calibrate_chance``), and, given ``out_of_sample`` (the calibration error on this holdout of
    the chance calibrated on the holdout before, ``"calibrated"``, and of the same chance
    uncalibrated, ``"raw"``: :func:`run_holdout_check`), only when it missed less there too: the
    export applies a calibration learnt on one holdout to the next 90 days. Calibration needs a 90-day holdout (the exported horizon) and at least ``min_buyers``
    customers who bought and as many who did not.

    Returns
    -------
    (ExportChoice, dict)
        The choice (maps fitted on all holdout customers) and the cross-fitted values
        ``"calibrated"`` (chance) and ``"calibrated_alive"`` (floored P(alive)) when computed.
    """
    errors = {name: calibration_error(decile_calibration(p, bought)) for name, p in chances.items()}
    # the one-time buyer model is the design; plain BG/NBD only when it misses clearly less (1 point)
    base = "bgnbd" if "one_time" not in errors or errors["bgnbd"] < errors["one_time"] - 0.01 else "one_time"
    reason = (f"{'BG/NBD with the one-time buyer model' if base == 'one_time' else 'plain BG/NBD'} misses the holdout "
              f"purchase share by {100 * errors[base]:.1f} points per decile"
              + ("" if len(errors) == 1 else
                 f" (the other variant {100 * max(errors.values()):.1f})"))
    cross: dict[str, np.ndarray] = {}
    n_bought = int(bought.sum())
    if days != CHANCE_DAYS or min(n_bought, len(bought) - n_bought) < max(int(min_buyers), 1):
        why = (f"the holdout is {days:.0f} days, not the {CHANCE_DAYS:.0f} the export predicts"
               if days != CHANCE_DAYS else f"only {n_bought:,} of {len(bought):,} customers bought in the holdout")
        return ExportChoice(base=base, reason=f"{reason}; no calibration: {why}."), cross
    raw = chances[base]
    cross["calibrated"] = cross_fitted_calibration(raw, bought)
    finite = np.isfinite(alive)
    alive_cross = np.full(len(alive), np.nan)
    if finite.sum() >= 2:
        alive_cross[finite] = cross_fitted_calibration(alive[finite], bought[finite])
    cross["calibrated_alive"] = np.fmax(alive, np.fmax(cross["calibrated"], alive_cross))
    calibrated_error = calibration_error(decile_calibration(cross["calibrated"], bought))
    alive_map = ChanceCalibrator().fit(alive[finite], bought[finite]) if finite.any() else None
    calibrate = bool(calibrated_error < errors[base])
    verdict = ("so the exported chance is calibrated" if calibrate else
               "not less, so the exported chance is not calibrated")
    if calibrate and out_of_sample is not None and not out_of_sample["calibrated"] < out_of_sample["raw"]:
        calibrate = False
        verdict = (f"but out of sample the calibration learnt on the {days:.0f} days before the cut-off missed this "
                   f"holdout by {100 * out_of_sample['calibrated']:.1f} points per decile against "
                   f"{100 * out_of_sample['raw']:.1f} uncalibrated, so the exported chance is not calibrated")
    return ExportChoice(
        base=base, purchase_map=ChanceCalibrator().fit(raw, bought), alive_map=alive_map, calibrate_chance=calibrate,
        reason=(f"{reason}; calibrated on the holdout (isotonic regression of who bought on the predicted chance, "
                f"judged cross-fitted) it misses by {100 * calibrated_error:.1f} points, {verdict}; P(alive) is "
                "floored by the calibrated chance (a customer who buys is alive).")), cross


def holdout_purchases(orders: pd.DataFrame, seen_at_cutoff: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The purchase days a holdout check reads: before ``cutoff`` as they were known at it, from it on as
    known at ``as_of``.

    ``orders`` are the purchase days as seen at ``as_of`` (:meth:`segkit.data.engine.OrderLines.purchase_days`),
    ``seen_at_cutoff`` the same as seen at ``cutoff`` (only the lines before it read and matched). An order
    before the cut-off that a later cancellation takes back is a purchase of the calibration period (nobody
    knew better then) and no purchase of the holdout; cutting ``orders`` instead would let the holdout's
    cancellations reach back into the calibration period.

    Returns
    -------
    DataFrame
        ``customer_id`` (categorical, sorted categories), ``order_date``, ``amount``: the rows of
        ``seen_at_cutoff`` before ``cutoff``, then those of ``orders`` on or after it.

    Examples
    --------
    >>> seen_then = pd.DataFrame({"customer_id": ["a", "b"], "amount": [5.0, 9.0],
    ...                           "order_date": pd.to_datetime(["2024-01-03", "2024-01-20"])})
    >>> seen_now = pd.DataFrame({"customer_id": ["a", "a"], "amount": [5.0, 7.0],  # b's order cancelled later
    ...                          "order_date": pd.to_datetime(["2024-01-03", "2024-02-10"])})
    >>> holdout_purchases(seen_now, seen_then, pd.Timestamp("2024-02-01"))
      customer_id order_date  amount
    0           a 2024-01-03     5.0
    1           b 2024-01-20     9.0
    2           a 2024-02-10     7.0
    """
    columns = ["customer_id", "order_date", "amount"]
    parts = [seen_at_cutoff.loc[(seen_at_cutoff["order_date"] < cutoff).to_numpy(), columns],
             orders.loc[(orders["order_date"] >= cutoff).to_numpy(), columns]]
    ids = pd.api.types.union_categoricals(
        [pd.Categorical(part["customer_id"].astype("string")) for part in parts], sort_categories=True)
    return pd.DataFrame({"customer_id": ids,
                         "order_date": np.concatenate([part["order_date"].to_numpy(dtype="datetime64[ns]") for part in parts]),
                         "amount": np.concatenate([part["amount"].to_numpy(dtype="float64") for part in parts])})


@dataclass(frozen=True)
class HoldoutFit:
    """The models fitted on the purchases before a cut-off, and what each customer did after it.

    ``cal`` is :func:`segkit.clv.calibration_holdout_summary` (calibration columns and
    ``frequency_holdout``); ``chances`` maps ``"bgnbd"`` (and ``"one_time"`` when the one-time buyer
    model was fitted) to the predicted chance of a purchase in the holdout; ``alive`` is P(alive)
    with the one-time buyer model when fitted (else BG/NBD's); ``bought`` whether each customer
    bought in the holdout.
    """

    cutoff: pd.Timestamp
    cal: pd.DataFrame
    model: BetaGeoModel
    one_time: OneTimeBuyerModel | None
    gamma_gamma: GammaGammaModel | None
    chances: dict[str, np.ndarray]
    alive: np.ndarray
    bought: np.ndarray


def fit_holdout_models(orders: pd.DataFrame, cutoff: pd.Timestamp, end: pd.Timestamp, days: float,
                       settings: LifecycleSettings) -> HoldoutFit:
    """Fit BG/NBD, the one-time buyer model and Gamma-Gamma on ``orders`` before ``cutoff``; holdout up to ``end``.

    ``end`` is exclusive (the day after the holdout's last day). Raises what
    :func:`segkit.clv.calibration_holdout_summary` and :meth:`segkit.clv.BetaGeoModel.fit` raise
    (:class:`DataError`, :class:`ModelFitError`); a one-time buyer or Gamma-Gamma model that cannot
    be fitted is None.
    """
    cal_end = cutoff - pd.Timedelta(days=1)
    cal = calibration_holdout_summary(orders, cal_end, end - pd.Timedelta(days=1))
    model = BetaGeoModel(penalizer_coef=settings.penalizer_coef, min_repeat_buyers=settings.min_repeat_buyers).fit(cal)
    durations = first_repeat_durations(orders, cal_end).reindex(cal.index)
    try:
        one_time = OneTimeBuyerModel(min_repeat_buyers=settings.min_repeat_buyers).fit(
            durations["days"], durations["repeated"])
    except ModelFitError:
        one_time = None
    try:
        gamma_gamma = GammaGammaModel(penalizer_coef=settings.penalizer_coef,
                                      min_repeat_buyers=settings.min_repeat_buyers).fit(cal)
    except ModelFitError:
        gamma_gamma = None
    chances = {"bgnbd": model.p_purchase_within(cal, days)}
    alive = model.p_alive(cal)
    if one_time is not None:
        alive, chances["one_time"] = model_chances(model, cal, one_time, None, days)
    return HoldoutFit(cutoff=cutoff, cal=cal, model=model, one_time=one_time, gamma_gamma=gamma_gamma,
                      chances=chances, alive=np.asarray(alive, dtype=float),
                      bought=cal["frequency_holdout"].to_numpy() > 0)


def earlier_holdout_choice(orders: pd.DataFrame, cutoff: pd.Timestamp, days: float, settings: LifecycleSettings,
                           seen_at: Callable[[pd.Timestamp], pd.DataFrame] | None = None) -> ExportChoice | None:
    """The export variant :func:`choose_export` would have chosen on the cut-off day: on the holdout before it.

    The models are fitted on the purchases before ``cutoff - days`` (as known then, with
    ``seen_at``) and judged on the ``days`` before ``cutoff``. Applied to the models fitted at the
    cut-off, this choice gives the chances the export made on the cut-off day would have held, so
    the holdout after the cut-off judges them as it will judge today's export: out of sample, the
    calibration fitted on other purchases. None when the data before the cut-off are too short (two
    months of calibration and a holdout) or the models cannot be fitted.
    """
    earlier = cutoff - pd.Timedelta(days=days)
    before = orders.loc[(orders["order_date"] < cutoff).to_numpy()]
    if before.empty or earlier - before["order_date"].min().normalize() < pd.Timedelta(days=2 * 30):
        return None
    if seen_at is not None:
        before = holdout_purchases(before, seen_at(earlier), earlier)
    try:
        fit = fit_holdout_models(before, earlier, cutoff, days, settings)
    except (ModelFitError, DataError):
        return None
    return choose_export(fit.chances, fit.alive, fit.bought, days, settings.min_repeat_buyers)[0]


def run_holdout_check(orders: pd.DataFrame, as_of: pd.Timestamp, settings: LifecycleSettings,
                      history: pd.DataFrame | None = None,
                      seen_at: Callable[[pd.Timestamp], pd.DataFrame] | None = None) -> HoldoutCheck:
    """Refit everything on the data up to ``as_of`` minus the holdout and compare with the holdout.

    The holdout is :func:`holdout_length_days` long (90 days by default: the horizon of the
    exported ``p_purchase_90d``). The models (BG/NBD, the one-time buyer model, Gamma-Gamma) and
    the stage thresholds are fitted on the calibration period only; predictions for the holdout
    are compared with what each customer really did: repeat purchases by calibration frequency;
    P(alive), the purchase chance and expected purchases by decile (with 95 % intervals) and by
    AUC of "bought in the holdout", against the baselines recency (days since the last purchase),
    frequency (purchase days) and the past purchase rate; purchases, revenue and the share who
    bought by the stage at the cut-off. The variant that feeds the export is chosen here
    (:func:`choose_export`), and the holdout's season is compared with the prediction period's
    (:func:`season_comparison`). Skipped (tables None, ``warning`` says why) when the period is
    too short or the calibration fit fails.

    What the check reports "as exported" is what the export made on the cut-off day would have
    said: the variant and calibration chosen on the holdout before the cut-off
    (:func:`earlier_holdout_choice`), applied to the models fitted at the cut-off, and the stages
    at the cut-off staged with it. The holdout it is judged on never entered its fit. When the
    data are too short for that earlier holdout, the calibrated values are cross-fitted on the
    holdout itself (:func:`segkit.clv.cross_fitted_calibration`: a customer's own outcome never
    enters their value) and ``reported_from`` says so.

    ``seen_at`` gives the purchase days as seen at a day (only the lines before it read and their
    cancellations matched: ``lambda day: OrderLines(...).purchase_days(day)``): the calibration period
    is then what was known at the cut-off (:func:`holdout_purchases`), so a cancellation between the
    cut-off and ``as_of`` does not reach back into it. None = ``orders`` cut at the cut-off, right only
    for purchase days that no later cancellation changes (e.g. a history without cancellation documents).

    ``history`` (:func:`purchase_history` of ``orders``), when given and ``seen_at`` is not, is used as
    it is: a history's rows before the cut-off are the history of the purchases before it, so the stage
    rules at the cut-off need no second history.
    """
    if settings.holdout_months <= 0:
        return HoldoutCheck()
    days = float(holdout_length_days(settings))
    cutoff = as_of - pd.Timedelta(days=days)
    first = orders["order_date"].min().normalize()
    if cutoff - first < pd.Timedelta(days=2 * 30):
        return HoldoutCheck(cutoff=cutoff, days=days, warning=(
            f"Holdout check skipped: a {days:.0f}-day holdout leaves less than two months "
            f"of calibration data before {cutoff.date()}. Use a shorter lifecycle.holdout_months."))
    if seen_at is not None:  # the calibration period as known at the cut-off, with its own history
        orders, history = holdout_purchases(orders, seen_at(cutoff), cutoff), None
    try:
        fit = fit_holdout_models(orders, cutoff, as_of, days, settings)
    except (ModelFitError, DataError) as exc:
        return HoldoutCheck(cutoff=cutoff, days=days, warning=f"Holdout check skipped: {exc}")
    cal, model, one_time, gamma_gamma, chances, alive, bought = (
        fit.cal, fit.model, fit.one_time, fit.gamma_gamma, fit.chances, fit.alive, fit.bought)
    actual = cal["frequency_holdout"].to_numpy(dtype=float)
    bg_alive, bg_buy = model.p_alive(cal), chances["bgnbd"]
    earlier = earlier_holdout_choice(orders, cutoff, days, settings, seen_at)
    out_of_sample = None
    if earlier is not None and earlier.purchase_map is not None:
        raw = chances[earlier.base]
        out_of_sample = {name: calibration_error(decile_calibration(values, bought))
                         for name, values in (("calibrated", earlier.purchase_map.predict(raw)), ("raw", raw))}
    choice, cross = choose_export(chances, alive, bought, days, settings.min_repeat_buyers, out_of_sample)
    if earlier is not None:
        reported = earlier
        exported_alive, exported_chance = model_chances(model, cal, one_time, earlier, days)
        reported_from = (f"the variant and calibration chosen on the {days:.0f} days before the cut-off "
                         f"({(cutoff - pd.Timedelta(days=days)).date()} to {(cutoff - pd.Timedelta(days=1)).date()}), "
                         "as the export made on the cut-off day would have held them")
        dates = orders["order_date"]
        per_day = [float(((dates >= start) & (dates < start + pd.Timedelta(days=days))).sum()) / days
                   for start in (cutoff - pd.Timedelta(days=days), cutoff)]
        if per_day[0] > 0 and abs(per_day[1] / per_day[0] - 1) > 0.2:  # season_comparison's tolerance
            reported_from += (f"; the holdout had {per_day[1] / per_day[0]:.2f} x the purchase days per day of those "
                              f"{days:.0f} days (season and trend), so the chances learnt there run "
                              f"{'low' if per_day[1] > per_day[0] else 'high'} on it")
    else:
        reported = choice
        exported_chance = cross["calibrated"] if choice.variant == "calibrated" else chances[choice.base]
        exported_alive = cross["calibrated_alive"] if choice.purchase_map is not None else alive
        reported_from = ("cross-fitted on the holdout itself (the data before the cut-off are too short for an "
                         "earlier holdout): each customer's value from a calibration fitted on the other half")
    base_one_time = one_time if reported.base == "one_time" else None
    predicted = expected_purchases(model, cal, days, base_one_time)
    calibration = p_alive_calibration(exported_alive, exported_chance, bought)
    calibration_bgnbd = p_alive_calibration(bg_alive, bg_buy, bought)
    tenure = cal["T"].to_numpy(dtype=float) * model.time_unit_days
    past_rate = (cal["frequency"].to_numpy(dtype=float) + 1) / (tenure + 1) * days
    recency = -(cal["T"] - cal["recency"]).to_numpy(dtype=float)
    rows = [("p_alive", "exported", exported_alive, "share"), ("p_alive", "bgnbd", bg_alive, "share"),
            *[("p_purchase_90d", name, p, "share") for name, p in chances.items()],
            ("p_purchase_90d", "exported", exported_chance, "share"),
            ("expected_purchases_90d", "exported", predicted, "count"),
            ("expected_purchases_90d", "bgnbd", model.predict(cal, days), "count"),
            ("expected_purchases_90d", "baseline: past rate", past_rate, "count"),
            ("baseline", "recency", recency, None), ("baseline", "frequency", cal["frequency"].to_numpy(dtype=float), None)]
    evaluation = []
    for prediction, variant, values, kind in rows:
        target = actual if kind == "count" else bought
        finite = np.isfinite(values)
        error = calibration_error(decile_calibration(values, target, kind)) if kind is not None else float("nan")
        evaluation.append((prediction, variant, ranking_auc(values[finite], bought[finite]), error))
    evaluation_table = pd.DataFrame(evaluation, columns=["prediction", "variant", "auc", "calibration_error"])
    deciles = {"p_alive": decile_calibration(exported_alive, bought, "share"),
               "p_purchase_90d": decile_calibration(exported_chance, bought, "share"),
               "expected_purchases_90d": decile_calibration(predicted, actual, "count"),
               "past_rate": decile_calibration(past_rate, actual, "count")}
    revenue = predicted * gamma_gamma.predict(cal) if gamma_gamma is not None else None
    if history is None:
        history = purchase_history(orders[orders["order_date"] < cutoff])
    stager = settings.stager().fit(history, cutoff)
    stages = stager.predict(history, cutoff, bgnbd=model, one_time=one_time, choice=reported)["lifecycle_stage"]
    return HoldoutCheck(
        cutoff=cutoff, by_frequency=holdout_check(model, cal, settings.holdout_max_frequency, base_one_time),
        calibration=calibration, calibration_bgnbd=calibration_bgnbd,
        by_stage=holdout_by_stage(stages.astype("string").reindex(cal.index), cal, predicted, revenue),
        errors={"exported": calibration_error(calibration), "bgnbd": calibration_error(calibration_bgnbd)},
        days=days, evaluation=evaluation_table, deciles=deciles, choice=choice,
        season=season_comparison(orders["order_date"], cutoff, as_of, days), reported_choice=reported,
        reported_from=reported_from)


# --------------------------------------------------------------------------- widget logic
def stage_sizes(stages: pd.Series, stage_info: pd.DataFrame | None = None) -> pd.DataFrame:
    """Customers and share per stage, in :data:`STAGES` order (empty stages kept with 0).

    Examples
    --------
    >>> stage_sizes(pd.Series(["new", "new", "lapsed"]))[["lifecycle_stage", "customers"]].iloc[[0, 4, 8]]
    ... # doctest: +NORMALIZE_WHITESPACE
      lifecycle_stage  customers
    0        prospect          0
    4             new          2
    8          lapsed          1
    """
    counts = pd.Series(pd.Categorical(stages, categories=STAGES)).value_counts(sort=False)
    out = pd.DataFrame({"lifecycle_stage": pd.array(STAGES, dtype="string"),
                        "customers": counts.reindex(STAGES).to_numpy().astype("int64")})
    total = out["customers"].sum()
    out["share"] = out["customers"] / total if total else np.nan
    if stage_info is not None:
        out = out.merge(stage_info.astype({"lifecycle_stage": "string"}), on="lifecycle_stage", how="left")
    return out


# --------------------------------------------------------------------------- display tables
# --------------------------------------------------------------------------- producer
# --------------------------------------------------------------------------- summary
__all__ = [
    "STAGES", "NO_PURCHASE_STAGES", "days_into_data", "PHASES", "StageThresholds", "LifecycleStager", "LifecycleSettings", "purchase_history",
    "customer_state", "engagement_dates", "assign_lifecycle_stage", "inter_purchase_gaps", "snapshot_dates",
    "stage_history", "stage_counts", "transition_counts", "row_shares", "period_rates", "complete_periods", "cohort_table",
    "cohort_matrix", "fit_clv_models", "score_customers", "clv_overview", "stage_sizes", "holdout_by_stage",
    "run_holdout_check", "holdout_purchases", "HoldoutCheck", "one_time_curve", "identification_warnings", "EXPORT_COLUMNS",
    "signups_on_or_after", "ExportChoice", "model_chances", "chances_as_of", "p_alive_as_of", "low_purchase_chance",
    "season_comparison", "choose_export", "holdout_length_days", "CHANCE_DAYS", "HoldoutFit", "fit_holdout_models",
    "earlier_holdout_choice", "live_repeat_buyers", "higher_quantile", "StageDistributions",
]
