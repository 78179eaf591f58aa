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

import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping, Sequence

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
    clv_summary,
    customer_lifetime_value,
    expected_purchases,
    first_repeat_durations,
    first_repeat_table,
    holdout_check,
    order_value_sample,
    order_value_table,
    purchase_pattern_table,
    p_alive_calibration,
)
from segkit.core.dates import parse_as_of
from segkit.core.errors import ConfigError, DataError, ModelFitError
from segkit.core.progress import progress
from segkit.data.distribution import (DistributionNeeds, ValueDistribution, above_sums, exact_float, exact_mean,
                                      exact_ratio, exact_sum, exact_sums)
from segkit.data.orders import customer_codes, day_pairs_sorted, purchase_days
from segkit.data.relational import kept_share

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


@dataclass(frozen=True)
class PurchaseDaySpan:
    """What 04 reads of the purchase days of every line before anything is staged, as counts that add up
    over any split of the rows (:meth:`merge`): the days, the last of them (``as_of`` defaults to the day
    after it) and the days and purchase orders dated on or after a given ``as_of`` (left out, with a warning).

    Examples
    --------
    >>> days = pd.DataFrame({"order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    ...                      "orders": [1, 2, 3]})
    >>> span = PurchaseDaySpan.merge([PurchaseDaySpan.of(days[:1], pd.Timestamp("2024-02-01")),
    ...                               PurchaseDaySpan.of(days[1:], pd.Timestamp("2024-02-01"))])
    >>> span.days, span.last_day.date(), span.later_days, span.later_orders
    (3, datetime.date(2024, 3, 1), 2, 5)
    >>> PurchaseDaySpan.merge([]).days
    0
    """

    days: int                       # customer purchase days
    last_day: pd.Timestamp | None   # the latest purchase day (None without any)
    later_days: int                 # days dated on or after the as_of given (0 without one)
    later_orders: int               # purchase orders of those days

    @classmethod
    def of(cls, days: pd.DataFrame, as_of: pd.Timestamp | None) -> "PurchaseDaySpan":
        """The span of purchase days ``order_date, orders`` (:func:`segkit.data.orders.purchase_days`, a part
        of them or all); ``as_of`` None = nothing is later."""
        dates = days["order_date"].to_numpy(dtype="datetime64[ns]")
        later = (dates >= parse_as_of(as_of).to_datetime64() if as_of is not None
                 else np.zeros(len(dates), dtype=bool))
        return cls(int(len(dates)), pd.Timestamp(dates.max()) if len(dates) else None, int(later.sum()),
                   int(days["orders"].to_numpy(dtype="int64")[later].sum()))

    @classmethod
    def merge(cls, parts: Sequence["PurchaseDaySpan"]) -> "PurchaseDaySpan":
        """The span of the rows of all ``parts`` (no parts: no day)."""
        last = [p.last_day for p in parts if p.last_day is not None]
        return cls(sum(p.days for p in parts), max(last) if last else None, sum(p.later_days for p in parts),
                   sum(p.later_orders for p in parts))


@dataclass(frozen=True)
class HistorySpan:
    """What 04 reads of its customers besides their stages, as counts that add up over disjoint customers
    (:meth:`merge`): the purchase days before ``as_of`` and the first of them (the snapshots start there),
    the first order of the customers whose first order is not a purchase (with the first purchase, the data's
    first day: :attr:`data_start`), and the customers without a purchase whose signup date is on or after
    ``as_of`` (:func:`signups_on_or_after`).

    Examples
    --------
    >>> days = pd.DataFrame({"customer_id": ["a", "a", "b"],
    ...                      "order_date": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-01-09"])})
    >>> non_purchase = pd.DataFrame({"customer_id": ["c"], "first_order_date": pd.to_datetime(["2024-01-02"])})
    >>> customers = pd.DataFrame({"customer_id": ["a", "d"], "signup_date": pd.to_datetime(["2024-05-01", "2024-05-01"])})
    >>> span = HistorySpan.of(days, non_purchase, customers, "2024-03-01")
    >>> span.days, span.first_purchase.date(), span.data_start.date(), span.not_signed_up
    (3, datetime.date(2024, 1, 5), datetime.date(2024, 1, 2), 1)
    """

    days: int                              # purchase days before as_of
    first_purchase: pd.Timestamp | None    # the first of them
    first_order: pd.Timestamp | None       # first order of the customers whose first order is not a purchase
    not_signed_up: int                     # customers without a purchase who sign up on or after as_of

    @classmethod
    def of(cls, days: pd.DataFrame, non_purchase: pd.DataFrame | None, customers: pd.DataFrame | None,
           as_of: str | pd.Timestamp) -> "HistorySpan":
        """The span of the customers of ``days`` (``customer_id, order_date``: purchase days before ``as_of``),
        ``non_purchase`` (``first_order_date``, :func:`segkit.data.orders.first_non_purchase`) and
        ``customers`` (``customer_id`` [, ``signup_date``])."""
        dates = days["order_date"].to_numpy(dtype="datetime64[ns]")
        orders = (non_purchase["first_order_date"].to_numpy(dtype="datetime64[ns]") if non_purchase is not None
                  else np.zeros(0, dtype="datetime64[ns]"))
        orders = orders[~np.isnat(orders)]
        buyers = (pd.Index(days["customer_id"].astype("string").unique(), dtype="string")
                  if customers is not None and "signup_date" in customers.columns else None)
        return cls(int(len(dates)), pd.Timestamp(dates.min()) if len(dates) else None,
                   pd.Timestamp(orders.min()) if len(orders) else None, signups_on_or_after(customers, as_of, buyers))

    @classmethod
    def merge(cls, parts: Sequence["HistorySpan"]) -> "HistorySpan":
        """The span of the customers of all ``parts`` (disjoint customers; no parts: nobody)."""
        def first(name: str) -> pd.Timestamp | None:
            found = [getattr(p, name) for p in parts if getattr(p, name) is not None]
            return min(found) if found else None

        return cls(sum(p.days for p in parts), first("first_purchase"), first("first_order"),
                   sum(p.not_signed_up for p in parts))

    @property
    def data_start(self) -> pd.Timestamp | None:
        """The data's first day: the first purchase or the first order that is not one, whichever is earlier."""
        found = [d for d in (self.first_purchase, self.first_order) if d is not None]
        return min(found) if found else None

    def require_purchases(self, as_of: str | pd.Timestamp) -> "HistorySpan":
        """This span, or a :class:`DataError` when no purchase is dated before ``as_of``
        (:func:`require_purchases_before`)."""
        require_purchases_before(self.days, as_of)
        return self


def require_purchases_before(days: int, as_of: str | pd.Timestamp) -> None:
    """A :class:`DataError` when there are no purchase ``days`` before ``as_of``: nothing to stage.

    Examples
    --------
    >>> require_purchases_before(0, "2024-07-01")
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: artifacts/transactions_clean.parquet: every purchase is dated on or after as_of = 2024-07-01. Choose a later as_of.
    """
    if days == 0:
        raise DataError(f"{SOURCE}: every purchase is dated on or after as_of = {parse_as_of(as_of).date()}. "
                        "Choose a later as_of.")


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


def chance_reference_sum(p_purchase: np.ndarray, n_purchases: np.ndarray, recency_days: np.ndarray,
                         thresholds: StageThresholds) -> tuple[int, int]:
    """The exact sum (:func:`segkit.data.distribution.exact_sum`) of the purchase chances of the live repeat
    buyers (:func:`live_repeat_buyers`) and their number: the at-risk rule's reference is their ratio
    (:func:`chance_reference`), and sums of disjoint parts of the customers add up to the whole's, bit for bit.

    Examples
    --------
    >>> th = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=40)
    >>> total, n = chance_reference_sum(np.array([0.1, 0.2, 0.3, 0.9]), np.array([2, 2, 2, 1]),
    ...                                 np.array([1.0, 2.0, 3.0, 4.0]), th)
    >>> n, exact_mean(total, n)
    (3, 0.2)
    """
    live = live_repeat_buyers(p_purchase, n_purchases, recency_days, thresholds)
    return exact_sum(np.asarray(p_purchase, dtype="float64")[live]), int(live.sum())


def chance_reference(parts: list[tuple[int, int]]) -> float:
    """The at-risk rule's reference of the customers of all ``parts`` (:func:`chance_reference_sum` or
    :func:`chance_reference_part` of disjoint customers): their mean chance, correctly rounded; NaN without
    a live repeat buyer.

    Examples
    --------
    >>> chance_reference([(exact_sum([0.1, 0.2]), 2), (exact_sum([0.3]), 1)]), chance_reference([(0, 0)])
    (0.2, nan)
    """
    return exact_mean(sum(int(total) for total, _ in parts), sum(int(n) for _, n in parts))


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
        reference = exact_mean(*chance_reference_sum(p_purchase, n_purchases, recency_days, thresholds))
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


#: The distributions of :class:`StageDistributions`, in its order (the columns of :meth:`StageDistributions.rows`).
STAGE_VALUES: tuple[str, ...] = ("gaps", "second_gaps", "repeat_purchases", "repeat_values")


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
        rows = cls.rows(history, as_of)
        return cls(**{name: ValueDistribution.of_values(rows[name].dropna().to_numpy()) for name in STAGE_VALUES})

    @staticmethod
    def rows(history: pd.DataFrame, as_of: str | pd.Timestamp) -> pd.DataFrame:
        """The values of each distribution (:data:`STAGE_VALUES`), one column each, NaN where a column has
        fewer values than the longest: per customer, so the rows of a part of the customers (a Spark
        partition) are that part's values; :func:`segkit.data.spark_ranks.value_distributions` of them
        (``missing="skip"``) gives the distributions of every part together."""
        as_of = parse_as_of(as_of)
        gaps = inter_purchase_gaps(history, as_of)
        state = customer_state(history, as_of)
        repeat = state[(state["n_purchases"] > 1).to_numpy()]
        values = {"gaps": gaps["gap_days"].to_numpy(dtype="float64"),
                  "second_gaps": gaps.loc[(gaps["to_purchase"] == 2).to_numpy(), "gap_days"].to_numpy(dtype="float64"),
                  "repeat_purchases": repeat["n_purchases"].to_numpy(dtype="float64"),
                  "repeat_values": repeat["monetary_total"].to_numpy(dtype="float64")}
        n = max(len(v) for v in values.values())
        return pd.DataFrame({name: np.r_[v, np.full(n - len(v), np.nan)] for name, v in values.items()})

    def gap_days(self) -> ValueDistribution:
        """The gaps as 04 shows them (the gap histogram, the threshold widget's churn windows): every distinct
        gap with its count, named ``gap_days``, whichever engine counted them.

        Raises
        ------
        DataError
            The gaps were counted only near some quantiles (build them with every value:
            :func:`segkit.steps.spark_lifecycle.stage_distributions_on_spark`).
        """
        return replace(self.gaps, column="gap_days").require_complete("the gap histogram")


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
    chance_references: np.ndarray | None = None,
) -> pd.DataFrame:
    """Stage of every customer at every snapshot (one vectorised stage assignment per date).

    ``non_purchase`` (:func:`segkit.data.orders.first_non_purchase`): customers with an order but
    no purchase yet are ``no_net_purchase`` from their first order on. ``chance_references``: the
    at-risk rule's mean chance of the live repeat buyers at each snapshot computed over the whole base
    (:meth:`SnapshotChances.references`) when ``history`` is one part of it (a Spark partition); None =
    over the rows of ``history``.

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
        state, positions, p_alive, p_purchase = _snapshot_buyers(stager, history, day, bgnbd, one_time, choice)
        reference = None if chance_references is None else float(chance_references[j])
        column[known_position[positions]] = assign_lifecycle_stage(
            state, stager.thresholds_, p_alive, p_purchase, reference).cat.codes.to_numpy()
    return pd.DataFrame(codes, index=ids, columns=list(dates["period"]))


def _snapshot_buyers(stager: LifecycleStager, history: pd.DataFrame, day: pd.Timestamp, bgnbd: BetaGeoModel | None,
                     one_time: OneTimeBuyerModel | None, choice: ExportChoice | None,
                     ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The buyers' state at snapshot ``day`` as the stage rules read it, their positions
    (:func:`_buyer_state`) and their ``(p_alive, p_purchase)`` (None, None without BG/NBD)."""
    state, positions, _ = _buyer_state(history, day)
    state["engaged"] = False
    state["first_purchase_days_into_data"] = days_into_data(state["first_purchase"], stager.data_start_)
    p_alive, p_purchase = chances_as_of(bgnbd, state, one_time, choice) if bgnbd is not None else (None, None)
    return state, positions, p_alive, p_purchase


@dataclass
class SnapshotChances:
    """The at-risk rule's reference at every snapshot as additive parts: the sum of the 90-day purchase
    chances of the live repeat buyers (:func:`live_repeat_buyers`) and their number, per snapshot date.
    Parts of disjoint customers merge by adding (:meth:`merge`); :meth:`references` is their ratio.

    Examples
    --------
    >>> sums = lambda *values: np.array([exact_sum(v) for v in values], dtype=object)
    >>> parts = [SnapshotChances(sums([0.5, 0.5], []), np.array([2, 0])), SnapshotChances(sums([0.5], []), np.array([1, 0]))]
    >>> SnapshotChances.merge(parts).references().tolist()
    [0.5, nan]
    """

    chance_sum: np.ndarray   # per snapshot date: exact sums (:func:`chance_reference_sum`, Python ints)
    live_repeat: np.ndarray  # per snapshot date (int64)

    @classmethod
    def of(cls, stager: LifecycleStager, history: pd.DataFrame, dates: pd.DataFrame, bgnbd: BetaGeoModel | None,
           one_time: OneTimeBuyerModel | None = None, choice: ExportChoice | None = None) -> "SnapshotChances":
        """The parts of the buyers of ``history`` at every date of ``dates`` (zeros without BG/NBD or
        without a purchase chance)."""
        check_is_fitted(stager, "thresholds_")
        sums, counts = np.zeros(len(dates), dtype=object), np.zeros(len(dates), dtype=np.int64)
        sums[:] = [0] * len(dates)
        if bgnbd is None:
            return cls(sums, counts)
        for j, day in enumerate(dates["snapshot_date"]):
            state, _, _, p_purchase = _snapshot_buyers(stager, history, parse_as_of(day), bgnbd, one_time, choice)
            if p_purchase is None:
                continue
            sums[j], counts[j] = chance_reference_sum(np.asarray(p_purchase, dtype=float), state["n_purchases"].to_numpy(),
                                                      state["recency_days"].to_numpy(dtype=float), stager.thresholds_)
        return cls(sums, counts)

    @classmethod
    def merge(cls, parts: list["SnapshotChances"]) -> "SnapshotChances":
        """The parts of the customers of all ``parts`` (disjoint customers, the same snapshot dates)."""
        _require_parts(parts, "SnapshotChances", "SnapshotChances.of of no customer (an empty history)")
        sums = np.zeros(len(parts[0].chance_sum), dtype=object)
        sums[:] = [sum(int(p.chance_sum[j]) for p in parts) for j in range(len(sums))]
        return cls(sums, np.sum([p.live_repeat for p in parts], axis=0))

    def references(self) -> np.ndarray:
        """Mean chance of the live repeat buyers per snapshot date, correctly rounded (:func:`chance_reference`;
        NaN = none: the rule is not applied)."""
        return np.array([chance_reference([(total, n)]) for total, n in zip(self.chance_sum, self.live_repeat)],
                        dtype="float64")


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
    return stage_count_table(snapshot_stage_counts(stages_over_time.to_numpy()), dates)


def snapshot_stage_counts(codes: np.ndarray) -> np.ndarray:
    """Customers per snapshot (rows) and stage (columns, :data:`STAGES`) of a :func:`stage_history`'s codes
    (int64; additive over disjoint customers)."""
    k = len(STAGES)
    if not codes.shape[1]:
        return np.zeros((0, k), dtype=np.int64)
    return np.stack([np.bincount(col[col >= 0], minlength=k) for col in codes.T]).astype(np.int64)


def stage_count_table(counts: np.ndarray, dates: pd.DataFrame) -> pd.DataFrame:
    """:func:`stage_counts`' table of :func:`snapshot_stage_counts` (summed over parts)."""
    k = len(STAGES)
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
    return transition_table(snapshot_moves(stages_over_time.to_numpy()), last)


def snapshot_moves(codes: np.ndarray) -> np.ndarray:
    """Stage-to-stage moves of each pair of consecutive snapshots of a :func:`stage_history`'s codes:
    shape ``(pairs, len(STAGES) + 1, len(STAGES))`` (row 0: not yet a customer), int64, additive over
    disjoint customers."""
    k = len(STAGES)
    pairs = max(codes.shape[1] - 1, 0)
    moves = np.zeros((pairs, (k + 1) * k), dtype=np.int64)
    for t in range(pairs):  # one pair of snapshots at a time: memory of one column
        before, after = codes[:, t].astype(np.int16), codes[:, t + 1].astype(np.int16)
        keep = after >= 0
        moves[t] = np.bincount((before[keep] + 1) * k + after[keep], minlength=(k + 1) * k)
    return moves.reshape(pairs, k + 1, k)


def transition_table(moves: np.ndarray, last: int | None = None) -> pd.DataFrame:
    """:func:`transition_counts`' table of :func:`snapshot_moves` (summed over parts), pooled over the
    last ``last`` pairs (None = all)."""
    k = len(STAGES)
    start = 0 if last is None else max(len(moves) - last, 0)
    matrix = moves[start:].sum(axis=0, dtype=np.int64).reshape(k + 1, k)
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
    counts, new_customers = period_counts(stages_over_time, history, dates)
    return rate_table_of(counts, new_customers, dates, complete_from)


def period_counts(stages_over_time: pd.DataFrame, history: pd.DataFrame,
                  dates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The counts behind :func:`period_rates`, additive over disjoint customers: per snapshot (columns)
    the live, lapsed and buyer customers and (from the second snapshot on) those churned, reactivated
    and buying again (rows, shape ``(6, max(len(dates), 1))``), and the new customers per period."""
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
    counts = np.zeros((6, max(n_dates, 1)), dtype=np.int64)  # one snapshot column at a time
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
    return counts, new_customers


def rate_table_of(counts: np.ndarray, new_customers: np.ndarray, dates: pd.DataFrame,
                  complete_from: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`period_rates`' table of :func:`period_counts` (summed over parts)."""
    n_dates = len(dates)
    snap = dates["snapshot_date"].to_numpy(dtype="datetime64[ns]")
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
    return cohort_table_of(cohort_cells(history, as_of), as_of, first_seen_until)


def cohort_cells(history: pd.DataFrame, as_of: str | pd.Timestamp) -> pd.DataFrame:
    """The cells behind :func:`cohort_table`: index ``cohort`` (month number), ``k`` (months since the
    first purchase), sorted; ``customers_purchasing`` and ``revenue`` (its exact sum, Python ints:
    :func:`segkit.data.distribution.exact_sums`). Additive over disjoint customers (:func:`merge_cohort_cells`),
    bit for bit."""
    as_of = parse_as_of(as_of)
    rows = history[history["purchase_date"] < as_of]

    def month_number(d: pd.Series) -> np.ndarray:
        return (d.dt.year * 12 + d.dt.month - 1).to_numpy()
    cohort = month_number(rows["first_purchase"])
    k = month_number(rows["purchase_date"]) - cohort
    cells = pd.DataFrame({"cohort": cohort, "k": k, "customer_id": customer_codes(rows["customer_id"])[0],
                          "amount": rows["amount"].to_numpy()})
    grouped = cells.groupby(["cohort", "k"], sort=True)
    out = grouped.agg(customers_purchasing=("customer_id", "nunique"))
    out["revenue"] = exact_sums(cells[["amount"]], grouped.ngroup().to_numpy(), range(len(out)))["amount"].to_numpy()
    return out


def merge_cohort_cells(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`cohort_cells` of parts of disjoint customers, added up: what :func:`cohort_cells` of them all gives."""
    found = [part for part in parts if len(part)]
    if not found:
        return parts[0] if parts else pd.DataFrame(
            {"customers_purchasing": pd.Series(dtype="int64"), "revenue": pd.Series(dtype=object)},
            index=pd.MultiIndex.from_arrays([[], []], names=["cohort", "k"]))
    grouped = pd.concat(found).groupby(level=["cohort", "k"], sort=True)
    out = grouped[["customers_purchasing"]].sum()
    out["revenue"] = pd.Series(grouped["revenue"].agg(lambda sums: sum(sums.tolist())), dtype=object)
    return out


def cohort_table_of(grouped: pd.DataFrame, as_of: str | pd.Timestamp,
                    first_seen_until: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`cohort_table` of :func:`cohort_cells` (merged over parts)."""
    as_of = parse_as_of(as_of)
    if grouped.empty:
        return pd.DataFrame(columns=["cohort", "months_since_first", "cohort_size", "customers_purchasing",
                                     "retention", "revenue", "revenue_per_customer",
                                     "cumulative_revenue_per_customer", "partial", "first_seen"])
    sizes = grouped.xs(0, level="k")["customers_purchasing"]
    last_day = as_of - pd.Timedelta(days=1)
    last_month = last_day.year * 12 + last_day.month - 1
    span = last_month - sizes.index.to_numpy() + 1
    grid = pd.MultiIndex.from_arrays([np.repeat(sizes.index.to_numpy(), span),
                                      np.concatenate([np.arange(s) for s in span])], names=["cohort", "k"])
    out = grouped.reindex(grid, fill_value=0).reset_index()
    out["revenue"] = np.array([exact_float(total) for total in out["revenue"]], dtype="float64")
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


def _require_parts(parts: Sequence[Any], what: str, empty: str) -> None:
    """A :class:`DataError` (a ``ValueError``) when there is no part to merge: the shape of the merged counts
    (snapshots, histogram bins) comes from the parts, so no part has no answer; a part of no customers is
    ``empty``."""
    if not len(parts):
        raise DataError(f"{what}.merge got no parts: there is nothing to take the snapshot dates, stages or bins "
                        f"from. Merge at least one part; the part of no customers is {empty}.")


# --------------------------------------------------------------------------- history, in parts
@dataclass
class HistoryCounts:
    """Everything the history tables (:class:`HistoryTables`: snapshots, transitions, period rates,
    cohorts) are made of, as counts and sums that add up over disjoint sets of customers: computed for
    the whole base on one machine, or per Spark partition (each customer's rows in one) and merged on the
    driver (:meth:`merge`). Its size is bounded by the snapshots, stages and cohort months, not the customers.

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [10.0, 4.0, 6.0],
    ...     "order_date": pd.to_datetime(["2024-01-05", "2024-03-02", "2024-02-20"])})
    >>> history = purchase_history(orders)
    >>> stager = LifecycleStager(churn_window_days=60, new_window_days=30).fit(history, "2024-04-01")
    >>> dates = snapshot_dates(history["purchase_date"].min(), "2024-04-01")
    >>> part = lambda ids: HistoryCounts.of(stager, history[history["customer_id"].isin(ids)], dates, "2024-04-01")
    >>> merged = HistoryCounts.merge([part(["a"]), part(["b"])])
    >>> whole = HistoryCounts.of(stager, history, dates, "2024-04-01")
    >>> HistoryTables.of(merged, dates, "2024-04-01").snapshots.equals(HistoryTables.of(whole, dates, "2024-04-01").snapshots)
    True
    """

    stages: np.ndarray         # (snapshots, stages): :func:`snapshot_stage_counts`
    moves: np.ndarray          # (snapshot pairs, stages + 1, stages): :func:`snapshot_moves`
    period: np.ndarray         # (6, snapshots): :func:`period_counts`
    new_customers: np.ndarray  # (snapshots,)
    cohorts: pd.DataFrame      # :func:`cohort_cells`

    @classmethod
    def of(cls, stager: LifecycleStager, history: pd.DataFrame, dates: pd.DataFrame, as_of: str | pd.Timestamp,
           customers: pd.DataFrame | None = None, engagement: pd.Series | None = None,
           bgnbd: BetaGeoModel | None = None, one_time: OneTimeBuyerModel | None = None,
           choice: ExportChoice | None = None, non_purchase: pd.DataFrame | None = None,
           chance_references: np.ndarray | None = None) -> "HistoryCounts":
        """The counts of the customers of ``history``, ``customers`` and ``non_purchase`` (arguments of
        :func:`stage_history`; ``chance_references`` from :class:`SnapshotChances` over the whole base
        when these customers are one part of it)."""
        over_time = stage_history(stager, history, dates, customers, engagement, bgnbd, one_time, choice,
                                  non_purchase=non_purchase, chance_references=chance_references)
        codes = over_time.to_numpy()
        period, new_customers = period_counts(over_time, history, dates)
        return cls(snapshot_stage_counts(codes), snapshot_moves(codes), period, new_customers,
                   cohort_cells(history, as_of))

    @classmethod
    def merge(cls, parts: list["HistoryCounts"]) -> "HistoryCounts":
        """The counts of the union of ``parts`` (disjoint customers, the same snapshot dates)."""
        _require_parts(parts, "HistoryCounts", "HistoryCounts.of of no customer (an empty history)")

        def total(name: str) -> np.ndarray:
            return np.sum([getattr(part, name) for part in parts], axis=0, dtype=np.int64)

        return cls(total("stages"), total("moves"), total("period"), total("new_customers"),
                   merge_cohort_cells([part.cohorts for part in parts]))


@dataclass
class HistoryTables:
    """04's history tables: ``snapshots`` (:func:`stage_counts`, ``snapshots.parquet``), ``transitions``
    and ``transitions_latest`` (:func:`transition_counts`, all pairs and the last), ``rates``
    (:func:`period_rates`) and ``cohorts`` (:func:`cohort_table`, ``cohorts.parquet``)."""

    snapshots: pd.DataFrame
    transitions: pd.DataFrame
    transitions_latest: pd.DataFrame
    rates: pd.DataFrame
    cohorts: pd.DataFrame

    @classmethod
    def of(cls, counts: HistoryCounts, dates: pd.DataFrame, as_of: str | pd.Timestamp,
           first_seen_until: pd.Timestamp | None = None) -> "HistoryTables":
        """The tables of ``counts`` (``first_seen_until``: :attr:`LifecycleStager.first_seen_until_`)."""
        return cls(snapshots=stage_count_table(counts.stages, dates), transitions=transition_table(counts.moves),
                   transitions_latest=transition_table(counts.moves, last=1),
                   rates=rate_table_of(counts.period, counts.new_customers, dates, first_seen_until),
                   cohorts=cohort_table_of(counts.cohorts, as_of, first_seen_until))


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
    #: Customers the holdout check reads at most: a seeded sample above it (None = every customer).
    holdout_sample: int | None = 200_000
    #: Repeat buyers the Gamma-Gamma model is fitted on at most: a seeded sample above it (:func:`fit_clv_models`).
    order_value_sample: int = 1_000_000
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
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or int(v) != v or v < 0:
                    raise ConfigError(f"lifecycle.{name} = {v!r} must be a whole number >= 0.")
                values[name] = int(v)
        sample = values.get("holdout_sample", 200_000)
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, (int, float))
                                   or not np.isfinite(sample) or int(sample) != sample or sample < 1000):
            raise ConfigError(f"lifecycle.holdout_sample = {sample!r}; use a whole number >= 1000 (customers the "
                              "holdout check reads at most, a seeded sample above it), or null for every customer.")
        if sample is not None:
            values["holdout_sample"] = int(sample)
        buyers = values.get("order_value_sample", 1_000_000)
        if (isinstance(buyers, bool) or not isinstance(buyers, (int, float)) or not np.isfinite(buyers)
                or int(buyers) != buyers or buyers < 1000):
            raise ConfigError(f"lifecycle.order_value_sample = {buyers!r}; use a whole number >= 1000 (repeat buyers "
                              "the Gamma-Gamma model is fitted on at most, a seeded sample above it; 1000000 by "
                              "default). For every repeat buyer, use a number at least as large as them.")
        values["order_value_sample"] = int(buyers)
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
    #: Repeat buyers a seeded sample of ``gamma_gamma.n_customers_`` was drawn from for the Gamma-Gamma fit
    #: (``lifecycle.order_value_sample``); None = fitted on every repeat buyer (or not fitted).
    order_value_buyers: int | None = None

    @property
    def order_value_sampled(self) -> bool:
        """Whether the Gamma-Gamma model was fitted on a sample of the repeat buyers."""
        return self.order_value_buyers is not None


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
                   durations: pd.DataFrame | None = None, seed: int = 0) -> CLVModels:
    """Fit the models; a :class:`ModelFitError` becomes a warning and a None model.

    BG/NBD and the one-time buyer model read every customer; Gamma-Gamma at most
    ``settings.order_value_sample`` repeat buyers (:func:`segkit.clv.order_value_sample`: a seeded sample by
    position in ``customer_id`` order when there are more, the customers Spark's
    :func:`segkit.data.spark_patterns.order_value_sample_counts` picks).

    Parameters
    ----------
    summary : DataFrame
        From :func:`segkit.clv.clv_summary` (index ``customer_id``).
    settings : LifecycleSettings
    durations : DataFrame, optional
        From :func:`segkit.clv.first_repeat_durations` on the same purchases and end: fits the
        one-time buyer model (only together with BG/NBD; its P(alive) replaces BG/NBD's 1).
    seed : int
        The run's seed: draws the Gamma-Gamma sample (no effect with at most ``order_value_sample``
        repeat buyers).
    """
    first_repeat = None
    if durations is not None:
        days, repeated = np.asarray(durations["days"], dtype=float), np.asarray(durations["repeated"], dtype=bool)
        first_repeat = first_repeat_table(pd.DataFrame({"days": days, "repeated": repeated}))
    values, repeat_buyers = order_value_sample(summary, settings.order_value_sample, seed)
    return fit_clv_tables(purchase_pattern_table(summary), order_value_table(values), first_repeat, settings,
                          repeat_buyers)


def fit_clv_tables(patterns: pd.DataFrame, pairs: pd.DataFrame, first_repeat: pd.DataFrame | None,
                   settings: LifecycleSettings, repeat_buyers: int | None = None) -> CLVModels:
    """:func:`fit_clv_models` from the models' bounded inputs: a :class:`ModelFitError` becomes a warning and a
    None model.

    Parameters
    ----------
    patterns : DataFrame
        Customers per ``(frequency, recency, T)``: :func:`segkit.clv.purchase_pattern_table`, or
        :func:`segkit.data.spark_patterns.purchase_pattern_counts` on Spark.
    pairs : DataFrame
        Customers per ``(frequency, monetary_value)`` of the repeat buyers Gamma-Gamma is fitted on:
        :func:`segkit.clv.order_value_table` of :func:`segkit.clv.order_value_sample`'s rows (or
        :func:`~segkit.data.spark_patterns.order_value_sample_counts`).
    first_repeat : DataFrame, optional
        Buyers per ``(days, repeated)``: :func:`segkit.clv.first_repeat_table` (or
        :func:`~segkit.data.spark_patterns.first_repeat_counts`); fits the one-time buyer model (only
        together with BG/NBD).
    settings : LifecycleSettings
    repeat_buyers : int, optional
        The repeat buyers ``pairs`` were sampled from; more than the fitted model's: recorded as
        :attr:`CLVModels.order_value_buyers` (None: ``pairs`` hold every repeat buyer).
    """
    messages: list[str] = []
    bgnbd = gamma_gamma = one_time = None
    try:
        bgnbd = BetaGeoModel(penalizer_coef=settings.penalizer_coef, min_repeat_buyers=settings.min_repeat_buyers,
                             max_relative_se=settings.max_relative_se).fit_patterns(patterns)
    except ModelFitError as exc:
        messages.append(str(exc))
    try:
        gamma_gamma = GammaGammaModel(penalizer_coef=settings.penalizer_coef,
                                      min_repeat_buyers=settings.min_repeat_buyers,
                                      max_relative_se=settings.max_relative_se).fit_patterns(pairs)
    except ModelFitError as exc:
        messages.append(str(exc))
    if bgnbd is not None and first_repeat is not None:
        try:
            one_time = OneTimeBuyerModel(min_repeat_buyers=settings.min_repeat_buyers).fit_counts(first_repeat)
        except ModelFitError as exc:
            messages.append(str(exc))
    identification = identification_warnings(bgnbd, gamma_gamma)
    sampled_from = (repeat_buyers if gamma_gamma is not None and repeat_buyers is not None
                    and repeat_buyers > gamma_gamma.n_customers_ else None)
    return CLVModels(bgnbd, gamma_gamma, messages + identification, one_time, identification,
                     order_value_buyers=sampled_from)


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


def spend_scaled(orders: pd.DataFrame, kept_total: pd.Series) -> pd.DataFrame:
    """Each purchase's amount scaled to its customer's kept value, where that is less than the purchases paid.

    ``kept_total`` is RFM's one total per customer (index ``customer_id``, text): the kept value with
    unmatched adjustments (returns of orders before the data, another price, amount-only refunds). The
    spend models read each purchase scaled to it (:func:`segkit.data.relational.kept_share`), so an
    unmatched cancellation cannot leave a huge order value in CLV. Per customer: a part of the customers
    gives that part's rows.

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["a", "a", "b"], "amount": [10.0, 30.0, 5.0],
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"])})
    >>> spend_scaled(orders, pd.Series({"a": 20.0, "b": 9.0}))["amount"].tolist()
    [5.0, 15.0, 5.0]
    """
    paid = orders.groupby("customer_id", observed=True, sort=False)["amount"].sum()
    share = pd.Series(kept_share(kept_total.reindex(paid.index.astype("string")).to_numpy(dtype="float64"),
                                 paid.to_numpy(dtype="float64")), index=paid.index)
    if (share < 1).any():
        orders = orders.assign(amount=orders["amount"].to_numpy(dtype="float64")
                               * share.reindex(orders["customer_id"]).to_numpy(dtype="float64"))
    return orders


#: :func:`customer_state`'s columns in :func:`customer_inputs` (``state_`` + name), in its order.
INPUT_STATE_COLUMNS: tuple[str, ...] = (
    "n_purchases", "first_purchase", "last_purchase", "recency_days", "tenure_days", "gap_before_last_days",
    "own_interval_days", "monetary_total", "has_orders", "first_purchase_days_into_data", "engaged")
#: :func:`segkit.clv.clv_summary`'s columns in :func:`customer_inputs` (``clv_`` + name).
INPUT_CLV_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")


def customer_inputs(days: pd.DataFrame, kept_total: pd.Series, as_of: str | pd.Timestamp,
                    customers: pd.DataFrame | None = None, engagement: pd.Series | None = None,
                    non_purchase: pd.DataFrame | None = None, data_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Each customer's lifecycle state and CLV input at ``as_of``: what 04 stages and scores, one row per customer.

    The very steps of :func:`segkit.steps.lifecycle.build_lifecycle_artifacts`: :func:`purchase_history` of the
    purchase days, :func:`customer_state` (with ``customers``, ``engagement``, ``non_purchase``, ``data_start``
    as there), the purchases scaled to the kept value (:func:`spend_scaled`), :func:`segkit.clv.clv_summary` and
    :func:`segkit.clv.first_repeat_durations` to the day before ``as_of``. Everything is per customer, so on
    Spark each partition of customers (all of a customer's rows in one) gives its customers' rows.

    Parameters
    ----------
    days : DataFrame
        Purchase days before ``as_of`` (``customer_id, order_date, amount``; the relational core's
        ``purchase_days``).
    kept_total : Series
        RFM's kept value per customer (index ``customer_id``, text).
    as_of : str or Timestamp
    customers, engagement, non_purchase, data_start
        As for :func:`customer_state`.

    Returns
    -------
    DataFrame
        ``customer_id`` (text, sorted); ``state_`` + :data:`INPUT_STATE_COLUMNS`; ``clv_`` +
        :data:`INPUT_CLV_COLUMNS`, ``first_repeat_days``, ``first_repeat_seen`` (empty without a purchase);
        ``kept_total`` (empty without an RFM row).
    """
    history = purchase_history(days)
    orders = spend_scaled(history[["customer_id", "purchase_date", "amount"]].rename(
        columns={"purchase_date": "order_date"}), kept_total)
    return inputs_of_history(history, orders, kept_total, as_of, customers, engagement, non_purchase, data_start)


def inputs_of_history(history: pd.DataFrame, orders: pd.DataFrame, kept_total: pd.Series, as_of: str | pd.Timestamp,
                      customers: pd.DataFrame | None = None, engagement: pd.Series | None = None,
                      non_purchase: pd.DataFrame | None = None, data_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`customer_inputs` from what the one-machine producer already holds: the :func:`purchase_history`
    of the purchase days and its purchases scaled to the kept value (``orders``: :func:`spend_scaled`)."""
    as_of = parse_as_of(as_of)
    state = customer_state(history, as_of, customers, engagement, non_purchase, data_start)
    end = as_of - pd.Timedelta(days=1)
    if len(orders):
        summary = clv_summary(orders, end)
        durations = first_repeat_durations(orders, end).reindex(summary.index)
    else:  # a part of the customers without a purchase (prospects only): no CLV input
        none = pd.Index([], dtype="string", name="customer_id")
        summary = pd.DataFrame({c: pd.Series(dtype="float64") for c in INPUT_CLV_COLUMNS}).set_axis(none)
        durations = pd.DataFrame({"days": pd.Series(dtype="float64"), "repeated": pd.Series(dtype=bool)}).set_axis(none)
    ids = state.index
    out = pd.DataFrame({"customer_id": pd.array(ids, dtype="string")})
    for column in INPUT_STATE_COLUMNS:
        out[f"state_{column}"] = state[column].to_numpy()
    for column in INPUT_CLV_COLUMNS:
        out[f"clv_{column}"] = summary[column].reindex(ids).to_numpy(dtype="float64")
    out["first_repeat_days"] = durations["days"].reindex(ids).to_numpy(dtype="float64")
    out["first_repeat_seen"] = durations["repeated"].reindex(ids).astype("boolean").to_numpy()
    out["kept_total"] = kept_total.reindex(ids).to_numpy(dtype="float64")
    return out


def input_state(inputs: pd.DataFrame) -> pd.DataFrame:
    """The :func:`customer_state` frame (index ``customer_id``) of rows of :func:`customer_inputs`."""
    state = inputs[[f"state_{c}" for c in INPUT_STATE_COLUMNS]].set_axis(list(INPUT_STATE_COLUMNS), axis=1)
    state.index = pd.Index(inputs["customer_id"], dtype="string", name="customer_id")
    return state.astype({"n_purchases": "int64", "has_orders": bool, "engaged": bool,
                         "first_purchase": "datetime64[ns]", "last_purchase": "datetime64[ns]"})


def input_summary(inputs: pd.DataFrame) -> pd.DataFrame:
    """The :func:`segkit.clv.clv_summary` frame (index ``customer_id``, buyers only) of rows of
    :func:`customer_inputs`."""
    buyers = inputs[inputs["clv_frequency"].notna().to_numpy()]
    summary = buyers[[f"clv_{c}" for c in INPUT_CLV_COLUMNS]].set_axis(list(INPUT_CLV_COLUMNS), axis=1)
    summary.index = pd.Index(buyers["customer_id"], dtype="string", name="customer_id")
    return summary.astype("float64")


def chance_state(inputs: pd.DataFrame, models: CLVModels) -> pd.DataFrame:
    """The :func:`input_state` of rows of :func:`customer_inputs` with each customer's ``p_alive`` and
    ``p_purchase_90d`` (:func:`chances_as_of`; NaN without BG/NBD): what the stage rules read, as
    :meth:`LifecycleStager.predict` gives it for the whole base."""
    state = input_state(inputs)
    if models.bgnbd is not None:
        state["p_alive"], state["p_purchase_90d"] = chances_as_of(models.bgnbd, state, models.one_time, models.choice)
    else:
        state["p_alive"] = state["p_purchase_90d"] = np.nan
    return state


def input_durations(inputs: pd.DataFrame) -> pd.DataFrame:
    """The :func:`segkit.clv.first_repeat_durations` frame (``days, repeated``; index ``customer_id``, buyers only,
    in :func:`input_summary`'s order) of rows of :func:`customer_inputs`."""
    buyers = inputs[inputs["clv_frequency"].notna().to_numpy()]
    return pd.DataFrame({"days": buyers["first_repeat_days"].to_numpy(dtype="float64"),
                         "repeated": buyers["first_repeat_seen"].to_numpy(dtype=bool)},
                        index=pd.Index(buyers["customer_id"], dtype="string", name="customer_id"))


def chance_reference_part(state: pd.DataFrame, models: CLVModels, thresholds: StageThresholds) -> tuple[int, int]:
    """:func:`chance_reference_sum` of the 90-day purchase chances of the customers of ``state`` (a part of
    the customers): the exact sum and count that :func:`chance_reference` of all parts turns into the at-risk
    rule's reference (:func:`low_purchase_chance`); ``(0, 0)`` without BG/NBD."""
    if models.bgnbd is None or state.empty:
        return 0, 0
    _, chance = chances_as_of(models.bgnbd, state, models.one_time, models.choice)
    return chance_reference_sum(chance, state["n_purchases"].to_numpy(), state["recency_days"].to_numpy(dtype=float),
                                thresholds)


def lifecycle_table(state: pd.DataFrame, scores: pd.DataFrame, kept_total: pd.Series,
                    stage_info: pd.DataFrame) -> pd.DataFrame:
    """``lifecycle.parquet``'s rows: each customer's stage, phase and action, state and scores.

    Parameters
    ----------
    state : DataFrame
        Index ``customer_id``: :func:`customer_state`'s columns and ``lifecycle_stage``.
    scores : DataFrame
        :func:`score_customers` reindexed to ``state``'s customers.
    kept_total : Series
        RFM's kept value per customer (index ``customer_id``): the ``monetary_total`` of a buyer (the stage
        rules read the purchase days' running total instead); a buyer without one keeps the running total.
    stage_info : DataFrame
        :meth:`LifecycleSettings.stage_info`.
    """
    info = stage_info.set_index("lifecycle_stage")
    stage = state["lifecycle_stage"].astype("string").to_numpy()
    lifecycle = pd.DataFrame({
        "customer_id": state.index.astype("string"),
        "lifecycle_stage": stage,
        "phase": info["phase"].reindex(stage).to_numpy(),
        "recommended_action": info["recommended_action"].reindex(stage).to_numpy(),
    })
    del stage
    for col in ("n_purchases", "first_purchase", "last_purchase", "recency_days", "tenure_days",
                "own_interval_days", "monetary_total", "engaged"):
        lifecycle[col] = state[col].to_numpy()
    kept = kept_total.reindex(lifecycle["customer_id"]).to_numpy(dtype="float64")
    bought = (lifecycle["n_purchases"] > 0).to_numpy()
    lifecycle["monetary_total"] = np.where(bought, np.where(np.isnan(kept), lifecycle["monetary_total"], kept), 0.0)
    del kept, bought
    for col in scores.columns:
        lifecycle[col] = scores[col].to_numpy(dtype=float)
    return lifecycle.astype({"phase": "string", "recommended_action": "string", "lifecycle_stage": "string"})


def lifecycle_rows(inputs: pd.DataFrame, models: CLVModels, thresholds: StageThresholds, settings: LifecycleSettings,
                   stage_info: pd.DataFrame, chance_reference: float | None = None) -> pd.DataFrame:
    """:func:`lifecycle_table` of rows of :func:`customer_inputs` (a part of the customers): staged with
    :func:`assign_lifecycle_stage` as :meth:`LifecycleStager.predict` stages them, scored by
    :func:`score_customers`.

    ``chance_reference`` is the mean 90-day purchase chance of all live repeat buyers (from
    :func:`chance_reference_part` of every part); None = of ``inputs`` (all customers in one frame).
    """
    state = chance_state(inputs, models)
    known = models.bgnbd is not None
    state["lifecycle_stage"] = assign_lifecycle_stage(state, thresholds, state["p_alive"] if known else None,
                                                      state["p_purchase_90d"] if known else None, chance_reference)
    scores = score_customers(models, input_summary(inputs), settings).reindex(state.index)
    kept = pd.Series(inputs["kept_total"].to_numpy(dtype="float64"), index=state.index)
    return lifecycle_table(state, scores, kept, stage_info)


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
    #: Customers the check's seeded sample was drawn from and those it read
    #: (:func:`segkit.steps.lifecycle_holdout.holdout_check_for`; 0 = not recorded).
    customers: int = 0
    sample_customers: int = 0

    @property
    def sampled(self) -> bool:
        """Whether the check read a seeded sample of its customers rather than all of them."""
        return self.sample_customers < self.customers


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
    return stage_table(counts.reindex(STAGES).to_numpy().astype("int64"), stage_info)


def stage_table(counts: np.ndarray, stage_info: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`stage_sizes` from the customers per stage of :data:`STAGES` (e.g. :meth:`LifecycleView.stage_counts`).

    Examples
    --------
    >>> stage_table(np.arange(10))["share"].iloc[-1].round(3)
    np.float64(0.2)
    """
    out = pd.DataFrame({"lifecycle_stage": pd.array(STAGES, dtype="string"),
                        "customers": np.asarray(counts, dtype="int64")})
    total = out["customers"].sum()
    out["share"] = out["customers"] / total if total else np.nan
    if stage_info is not None:
        out = out.merge(stage_info.astype({"lifecycle_stage": "string"}), on="lifecycle_stage", how="left")
    return out


def threshold_choices(
    thresholds: StageThresholds, gaps: ValueDistribution | np.ndarray,
    quantiles: tuple[float, ...] = (0.75, 0.8, 0.9, 0.95, 0.99), overdue_factors: tuple[float, ...] = (1.5, 2.0, 3.0),
) -> dict[str, StageThresholds]:
    """The threshold widget's choices: churn windows at several gap quantiles (exact, of the gaps' distribution
    or array) x overdue factors.

    Examples
    --------
    >>> th = StageThresholds(churn_window_days=90, new_window_days=30, base_interval_days=30)
    >>> list(threshold_choices(th, np.arange(1.0, 101.0), (0.5,), (2.0,)))
    ['churn window 51 days (50% of gaps shorter) · overdue factor 2']
    """
    if not isinstance(gaps, ValueDistribution):
        gaps = ValueDistribution.of_values(np.asarray(gaps, dtype="float64"), column="gap_days")
    choices = {}
    for q in quantiles:
        window = gaps.higher_quantile(q) if gaps.n else thresholds.churn_window_days
        for factor in overdue_factors:
            label = f"churn window {window:,.0f} days ({q:.0%} of gaps shorter) · overdue factor {factor:g}"
            choices[label] = replace(thresholds, churn_window_days=window, overdue_factor=factor)
    return choices


def threshold_reference_parts(state: pd.DataFrame, choices: Sequence[StageThresholds]) -> list[tuple[int, int]]:
    """:func:`chance_reference_sum` of the customers of ``state`` (with ``p_purchase_90d``: :func:`chance_state`)
    under each of ``choices``: the at-risk rule's reference depends on the churn window. Parts of disjoint
    customers merge with :func:`chance_reference` choice by choice (:func:`threshold_references`).

    Examples
    --------
    >>> state = pd.DataFrame({"n_purchases": [2, 3], "recency_days": [10.0, 200.0], "p_purchase_90d": [0.5, 0.25]})
    >>> th = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=30)
    >>> [n for _, n in threshold_reference_parts(state, [th, replace(th, churn_window_days=300)])]
    [1, 2]
    """
    chance = state["p_purchase_90d"].to_numpy(dtype="float64")
    n, recency = state["n_purchases"].to_numpy(), state["recency_days"].to_numpy(dtype="float64")
    return [chance_reference_sum(chance, n, recency, th) for th in choices]


def merge_reference_parts(parts: Sequence[Sequence[tuple[int, int]]]) -> list[tuple[int, int]]:
    """:func:`threshold_reference_parts` of disjoint customers (each a list over the same choices), added
    choice by choice, exactly: the parts of their union (no parts: none).

    Examples
    --------
    >>> merge_reference_parts([[(3, 1), (5, 2)], [(4, 1), (0, 0)]])
    [(7, 2), (5, 2)]
    """
    if not parts:
        return []
    return [(sum(int(part[i][0]) for part in parts), sum(int(part[i][1]) for part in parts))
            for i in range(len(parts[0]))]


def threshold_references(parts: Sequence[Sequence[tuple[int, int]]]) -> list[float]:
    """The at-risk rule's reference of each choice over the customers of all ``parts``
    (:func:`threshold_reference_parts` of disjoint customers): :func:`chance_reference` of their sums.

    Examples
    --------
    >>> threshold_references([[(exact_sum([0.5]), 1)], [(exact_sum([0.25]), 1)]])
    [0.375]
    >>> threshold_references([])
    []
    """
    return [chance_reference([pair]) for pair in merge_reference_parts(parts)]


def threshold_stage_counts(state: pd.DataFrame, choices: Sequence[StageThresholds],
                           references: Sequence[float] | None = None, chances: bool = True) -> np.ndarray:
    """Customers per stage (:data:`STAGES`) of ``state`` staged with each of ``choices``: what the threshold
    widget shows, ``(choices, stages)`` counts that add up over disjoint parts of the customers.

    Parameters
    ----------
    state : DataFrame
        :func:`customer_state` columns with ``p_alive`` and ``p_purchase_90d`` (:func:`chance_state`,
        :meth:`LifecycleStager.predict`).
    choices : sequence of StageThresholds
    references : sequence of float, optional
        The at-risk rule's reference of each choice over the whole base (:func:`threshold_references`) when
        ``state`` is one part of it; None = over the rows of ``state``.
    chances : bool
        Whether ``state`` holds the model's chances (BG/NBD fitted): the P(alive) and purchase-chance rules
        apply; False = the overdue rule, as :func:`assign_lifecycle_stage` without chances.

    Examples
    --------
    >>> state = pd.DataFrame({"n_purchases": [2, 2], "recency_days": [100.0, 200.0], "tenure_days": [300.0, 400.0],
    ...     "gap_before_last_days": 30.0, "own_interval_days": 30.0, "monetary_total": 50.0, "engaged": False})
    >>> th = StageThresholds(churn_window_days=150, new_window_days=30, base_interval_days=30)
    >>> counts = threshold_stage_counts(state, [th, replace(th, churn_window_days=250)], chances=False)
    >>> counts[:, [STAGES.index("at_risk"), STAGES.index("lapsed")]].tolist()
    [[1, 1], [2, 0]]
    """
    counts = np.zeros((len(choices), len(STAGES)), dtype="int64")
    p_alive = state["p_alive"] if chances else None
    p_purchase = state["p_purchase_90d"] if chances and "p_purchase_90d" in state.columns else None
    for i, th in enumerate(choices):
        reference = None if references is None else references[i]
        stages = assign_lifecycle_stage(state, th, p_alive, p_purchase, reference)
        counts[i] = np.bincount(stages.cat.codes.to_numpy(), minlength=len(STAGES))[:len(STAGES)]
    return counts


# --------------------------------------------------------------------------- display tables
# --------------------------------------------------------------------------- producer
# --------------------------------------------------------------------------- summary
__all__ = [
    "STAGES", "NO_PURCHASE_STAGES", "days_into_data", "PHASES", "StageThresholds", "LifecycleStager", "LifecycleSettings", "purchase_history",
    "customer_state", "engagement_dates", "assign_lifecycle_stage", "inter_purchase_gaps", "snapshot_dates",
    "stage_history", "stage_counts", "transition_counts", "row_shares", "period_rates", "complete_periods", "cohort_table",
    "cohort_matrix", "fit_clv_models", "fit_clv_tables", "score_customers", "spend_scaled", "customer_inputs",
    "INPUT_STATE_COLUMNS", "INPUT_CLV_COLUMNS", "inputs_of_history", "input_state", "input_summary", "input_durations", "chance_reference_part", "chance_reference_sum",
    "chance_reference", "lifecycle_table",
    "lifecycle_rows", "STAGE_VALUES", "clv_overview", "stage_sizes", "holdout_by_stage",
    "run_holdout_check", "holdout_purchases", "HoldoutCheck", "one_time_curve", "identification_warnings", "EXPORT_COLUMNS",
    "signups_on_or_after", "ExportChoice", "model_chances", "chances_as_of", "p_alive_as_of", "low_purchase_chance",
    "season_comparison", "choose_export", "holdout_length_days", "CHANCE_DAYS", "HoldoutFit", "fit_holdout_models",
    "earlier_holdout_choice", "live_repeat_buyers", "higher_quantile", "StageDistributions",
    "LifecycleCounts", "LifecycleTails", "LifecycleView", "ViewPlan", "TopNeeds", "VIEW_NEEDS", "VIEW_VALUES",
    "view_values", "lifecycle_view", "stage_table", "VIEW_DEFAULTS", "top_count", "curve_counts",
    "SnapshotChances", "HistoryCounts", "HistoryTables", "PurchaseDaySpan", "HistorySpan", "require_purchases_before", "chance_state",
    "threshold_choices", "threshold_reference_parts", "merge_reference_parts", "threshold_references", "threshold_stage_counts", "snapshot_stage_counts", "stage_count_table",
    "snapshot_moves", "transition_table", "period_counts", "rate_table_of", "cohort_cells", "merge_cohort_cells",
    "cohort_table_of",
]


# --------------------------------------------------------------------------- bounded views
# What 04_lifecycle shows of the per-customer table (stage sizes, the RFM crosstab, the churn-risk and
# CLV figures, CLV by stage, the summary's numbers), as aggregates of bounded size. Each is defined
# once, as a pandas function of a slice of customers: the one-machine path applies it to the whole
# table, Spark to every partition, and the parts are merged (counts, sums, min/max add up; exact
# order statistics come from ValueDistribution). Two passes: the first gives the counts, sums, ranges
# and value distributions; the second, given the histogram edges and CLV thresholds they fix
# (:class:`ViewPlan`), the histograms and the CLV held above each threshold.

#: Edges (percent) of the churn-risk histogram (1 − P(alive) of repeat buyers).
RISK_EDGES = 100 * np.linspace(0, 1, 21)
#: Bins of the histogram of one-time buyers' ages (numpy's ``bins=40`` over their range).
AGE_BINS = 40
#: Edges of the CLV histogram (log-spaced over the positive CLV of live and lapsed buyers).
CLV_EDGES = 40
#: Quantile of the live buyers' positive CLV marked in the CLV histogram.
CLV_CUT_QUANTILE = 0.9
#: Share of the highest CLV whose share of the total the summary reports (the top decile).
TOP_SHARE = 0.1
#: Points of the CLV concentration curve (every customer when there are at most this many).
CURVE_POINTS = 2000
#: The CLV groups of the summary: every buyer, live buyers, lapsed buyers (CLV known).
CLV_GROUPS: tuple[str, ...] = ("all", "live", "lapsed")
#: The value columns of the view's distributions: the CLV groups, and the live buyers' positive CLV.
VIEW_VALUES: tuple[str, ...] = (*CLV_GROUPS, "live_positive")
_BY_STAGE = ("customers", "p_alive_sum", "p_alive_known", "expected_sum", "clv_sum", "clv_known")


def top_count(n: int, share: float = TOP_SHARE) -> int:
    """How many of ``n`` customers the top ``share`` holds: ``max(ceil(n·share), 1)``.

    Examples
    --------
    >>> top_count(95), top_count(3), top_count(100)
    (10, 1, 10)
    """
    return max(int(math.ceil(n * share)), 1)


def curve_counts(n: int, points: int = CURVE_POINTS) -> np.ndarray:
    """The numbers of top customers at which the CLV concentration curve is drawn: every ``k`` up to
    ``points`` customers, else ``points`` steps spread evenly, plus the top decile.

    Examples
    --------
    >>> curve_counts(5).tolist(), curve_counts(10_000, 4).tolist()
    ([1, 2, 3, 4, 5], [1000, 2500, 5000, 7500, 10000])
    """
    if n <= points:
        return np.arange(1, n + 1, dtype="int64")
    spread = np.round(np.arange(1, points + 1) * n / points).astype("int64")
    return np.unique(np.r_[spread, top_count(n)])


@dataclass(frozen=True)
class TopNeeds(DistributionNeeds):
    """:class:`DistributionNeeds` that also hold the values where the top customers start: the top
    ``top_share`` (:func:`top_count`) and, with ``curve``, every point of :func:`curve_counts`."""

    top_share: float | None = None
    curve: bool = False

    def positions(self, n: int) -> np.ndarray:
        extra = []
        if n and self.top_share is not None:
            extra.append([n - top_count(n, self.top_share)])
        if n and self.curve:
            extra.append(n - curve_counts(n))
        return np.unique(np.concatenate([super().positions(n), *extra]).astype("float64"))


#: What each distribution of the view must hold.
VIEW_NEEDS: dict[str, DistributionNeeds] = {
    "all": TopNeeds(median=True, top_share=TOP_SHARE), "lapsed": TopNeeds(median=True, top_share=TOP_SHARE),
    "live": TopNeeds(median=True, top_share=TOP_SHARE, curve=True),
    "live_positive": DistributionNeeds(quantiles=(CLV_CUT_QUANTILE,)),
}


def view_values(lifecycle: pd.DataFrame, column: str) -> pd.DataFrame:
    """The CLV of each customer in each group of the view (NaN outside it): :data:`VIEW_VALUES` columns.

    ``all``: buyers with a CLV; ``live``: buyers of :data:`LIVE_STAGES`; ``lapsed``; ``live_positive``: live
    buyers with a CLV above 0 (the CLV histogram's population).

    Examples
    --------
    >>> lc = pd.DataFrame({"lifecycle_stage": ["new", "lapsed", "prospect"], "n_purchases": [1, 2, 0],
    ...                    "clv_12m": [0.0, 5.0, np.nan]})
    >>> view_values(lc, "clv_12m").to_numpy().tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[0.0, 0.0, nan, nan], [5.0, nan, 5.0, nan], [nan, nan, nan, nan]]
    """
    values = lifecycle[column].to_numpy(dtype="float64", na_value=np.nan)
    stage = lifecycle["lifecycle_stage"].astype("string").to_numpy(dtype=object, na_value="")
    known = (lifecycle["n_purchases"].to_numpy() > 0) & ~np.isnan(values)
    live = known & np.isin(stage, LIVE_STAGES)
    masks = {"all": known, "live": live, "lapsed": known & (stage == "lapsed"), "live_positive": live & (values > 0)}
    return pd.DataFrame({name: np.where(mask, values, np.nan) for name, mask in masks.items()}, index=lifecycle.index)


def _minmax(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if len(values) else (np.nan, np.nan)


@dataclass(frozen=True)
class LifecycleCounts:
    """The first pass of the view over a slice of customers: counts, sums and ranges, all additive.

    Attributes
    ----------
    stages : ndarray of int
        Customers per stage of :data:`STAGES`.
    segment_stages : DataFrame
        ``rfm_segment, lifecycle_stage, customers`` of the customers with an RFM segment.
    risk : ndarray of int
        Repeat buyers with a P(alive) per buyer stage (rows, :data:`BUYER_STAGES`) and churn-risk bin
        (:data:`RISK_EDGES`).
    by_stage : DataFrame
        Per buyer stage (index :data:`BUYER_STAGES`, columns ``customers, p_alive_sum, p_alive_known,
        expected_sum, clv_sum, clv_known``; Python ints): customers, exact sum
        (:func:`segkit.data.distribution.exact_sums`) and count of known ``p_alive``, exact sum of
        ``expected_purchases_90d``, exact sum and count of known CLV.
    first_purchase, last_purchase : int or None
        The buyers' first and last purchase (nanoseconds since the epoch).
    one_time_buyers : int
    age_range : tuple of float
        Smallest and largest ``tenure_days`` of the one-time buyers (NaN without any).
    clv_range : tuple of float
        Smallest and largest positive CLV of live and lapsed buyers (NaN without any).
    clv_sums : dict
        CLV group (:data:`CLV_GROUPS`) → (customers with a CLV, their CLV's exact sum).
    lapsed_positive : int
        Lapsed buyers with a CLV above 0.
    p_alive_known : int
        Customers with a P(alive).
    """

    stages: np.ndarray
    segment_stages: pd.DataFrame
    risk: np.ndarray
    by_stage: pd.DataFrame
    first_purchase: int | None
    last_purchase: int | None
    one_time_buyers: int
    age_range: tuple[float, float]
    clv_range: tuple[float, float]
    clv_sums: dict[str, tuple[int, int]]
    lapsed_positive: int
    p_alive_known: int

    @classmethod
    def of(cls, lifecycle: pd.DataFrame, column: str) -> "LifecycleCounts":
        """The counts of a slice of ``lifecycle.parquet``'s rows (with ``rfm_segment`` when known: NA = none)."""
        stage = lifecycle["lifecycle_stage"].astype("string").to_numpy(dtype=object, na_value="")
        n_purchases = lifecycle["n_purchases"].to_numpy(dtype="float64", na_value=np.nan)
        p_alive = lifecycle["p_alive"].to_numpy(dtype="float64", na_value=np.nan)
        bought = n_purchases > 0
        stages = np.array([(stage == s).sum() for s in STAGES], dtype="int64")
        if "rfm_segment" in lifecycle.columns:
            pairs = pd.DataFrame({"rfm_segment": lifecycle["rfm_segment"].astype("string").to_numpy(),
                                  "lifecycle_stage": stage}).dropna().astype("string")
            segment_stages = pairs.groupby(["rfm_segment", "lifecycle_stage"], sort=True).size().rename(
                "customers").reset_index()
        else:
            segment_stages = pd.DataFrame({"rfm_segment": pd.array([], dtype="string"),
                                           "lifecycle_stage": pd.array([], dtype="string"),
                                           "customers": np.zeros(0, dtype="int64")})
        repeat = (n_purchases > 1) & ~np.isnan(p_alive)
        risk = np.array([np.histogram(100 * (1 - p_alive[repeat & (stage == s)]), bins=RISK_EDGES)[0]
                         for s in BUYER_STAGES], dtype="int64")
        buyer = np.isin(stage, BUYER_STAGES)
        rows = lifecycle.loc[buyer]
        values = pd.DataFrame({"p_alive": p_alive[buyer],
                               "expected": rows["expected_purchases_90d"].to_numpy(dtype="float64", na_value=np.nan),
                               "clv": rows[column].to_numpy(dtype="float64", na_value=np.nan)})
        position = pd.Index(BUYER_STAGES).get_indexer(stage[buyer])
        sums = exact_sums(values, position, range(len(BUYER_STAGES)))

        def known(name: str) -> list[int]:
            return np.bincount(position[~np.isnan(values[name].to_numpy())], minlength=len(BUYER_STAGES)).tolist()

        by_stage = pd.DataFrame({"customers": np.bincount(position, minlength=len(BUYER_STAGES)).tolist(),
                                 "p_alive_sum": sums["p_alive"].tolist(), "p_alive_known": known("p_alive"),
                                 "expected_sum": sums["expected"].tolist(), "clv_sum": sums["clv"].tolist(),
                                 "clv_known": known("clv")}, index=pd.Index(BUYER_STAGES, name="lifecycle_stage"),
                                dtype=object)
        first, last = (lifecycle.loc[bought, name].to_numpy(dtype="datetime64[ns]")
                       for name in ("first_purchase", "last_purchase"))
        first, last = first[~np.isnat(first)], last[~np.isnat(last)]
        one_time = n_purchases == 1
        values = view_values(lifecycle, column)
        shown = np.r_[values["live_positive"].dropna().to_numpy(),
                      values["lapsed"].to_numpy()[values["lapsed"].to_numpy() > 0]]
        return cls(
            stages=stages, segment_stages=segment_stages, risk=risk, by_stage=by_stage,
            first_purchase=int(first.min().astype("int64")) if len(first) else None,
            last_purchase=int(last.max().astype("int64")) if len(last) else None,
            one_time_buyers=int(one_time.sum()),
            age_range=_minmax(lifecycle.loc[one_time, "tenure_days"].to_numpy(dtype="float64")),
            clv_range=_minmax(shown),
            clv_sums={g: (int(values[g].notna().sum()), exact_sum(values[g].to_numpy())) for g in CLV_GROUPS},
            lapsed_positive=int((values["lapsed"].to_numpy() > 0).sum()),
            p_alive_known=int((~np.isnan(p_alive)).sum()))

    @classmethod
    def merge(cls, parts: list["LifecycleCounts"]) -> "LifecycleCounts":
        """The counts of the customers of all ``parts`` (slices of disjoint customers)."""
        _require_parts(parts, "LifecycleCounts", "LifecycleCounts.of of an empty slice")
        first = [p.first_purchase for p in parts if p.first_purchase is not None]
        last = [p.last_purchase for p in parts if p.last_purchase is not None]
        pairs = pd.concat([p.segment_stages for p in parts], ignore_index=True)
        pairs = (pairs.groupby(["rfm_segment", "lifecycle_stage"], sort=True)["customers"].sum().reset_index()
                 if len(pairs) else parts[0].segment_stages)

        def ranges(name: str) -> tuple[float, float]:  # NaN = no value in that part
            pairs = np.array([getattr(p, name) for p in parts], dtype="float64")
            return float(np.fmin.reduce(pairs[:, 0])), float(np.fmax.reduce(pairs[:, 1]))

        return cls(
            stages=sum(p.stages for p in parts), segment_stages=pairs, risk=sum(p.risk for p in parts),
            by_stage=_added([p.by_stage for p in parts]), first_purchase=min(first) if first else None,
            last_purchase=max(last) if last else None, one_time_buyers=sum(p.one_time_buyers for p in parts),
            age_range=ranges("age_range"), clv_range=ranges("clv_range"),
            clv_sums={g: (sum(p.clv_sums[g][0] for p in parts), sum(p.clv_sums[g][1] for p in parts))
                      for g in CLV_GROUPS},
            lapsed_positive=sum(p.lapsed_positive for p in parts), p_alive_known=sum(p.p_alive_known for p in parts))

    def to_json(self) -> str:
        """The counts as JSON (what an executor sends to the driver)."""
        return json.dumps({"stages": self.stages.tolist(), "segment_stages": self.segment_stages.to_dict("list"),
                           "risk": self.risk.tolist(), "by_stage": self.by_stage.to_dict("list"),
                           "first_purchase": self.first_purchase, "last_purchase": self.last_purchase,
                           "one_time_buyers": self.one_time_buyers, "age_range": _json_pair(self.age_range),
                           "clv_range": _json_pair(self.clv_range),
                           "clv_sums": {g: list(v) for g, v in self.clv_sums.items()},
                           "lapsed_positive": self.lapsed_positive,
                           "p_alive_known": self.p_alive_known})

    @classmethod
    def from_json(cls, text: str) -> "LifecycleCounts":
        data = json.loads(text)
        return cls(stages=np.array(data["stages"], dtype="int64"),
                   segment_stages=pd.DataFrame(data["segment_stages"]).astype(
                       {"rfm_segment": "string", "lifecycle_stage": "string", "customers": "int64"}),
                   risk=np.array(data["risk"], dtype="int64").reshape(len(BUYER_STAGES), -1),
                   by_stage=pd.DataFrame(data["by_stage"], index=pd.Index(BUYER_STAGES, name="lifecycle_stage"),
                                         dtype=object), first_purchase=data["first_purchase"],
                   last_purchase=data["last_purchase"], one_time_buyers=data["one_time_buyers"],
                   age_range=_pair(data["age_range"]), clv_range=_pair(data["clv_range"]),
                   clv_sums={g: (int(v[0]), int(v[1])) for g, v in data["clv_sums"].items()},
                   lapsed_positive=data["lapsed_positive"],
                   p_alive_known=data["p_alive_known"])


def _added(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Tables of Python ints of the same shape, added cell by cell (exactly)."""
    out = tables[0].copy()
    for table in tables[1:]:
        out = out + table
    return out


def _json_pair(pair: tuple[float, float]) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in pair]


def _pair(values: list[float | None]) -> tuple[float, float]:
    return tuple(np.nan if v is None else float(v) for v in values)  # type: ignore[return-value]


@dataclass(frozen=True)
class ViewPlan:
    """What the second pass needs from the first: the histogram edges and, per CLV group, the values at
    which its top customers start (the top decile first, then the curve's points for ``live``)."""

    age_edges: np.ndarray | None
    clv_edges: np.ndarray | None
    thresholds: dict[str, np.ndarray]
    tops: dict[str, np.ndarray]

    @classmethod
    def of(cls, counts: LifecycleCounts, distributions: Mapping[str, ValueDistribution]) -> "ViewPlan":
        low, high = counts.age_range
        age_edges = None if np.isnan(low) else np.histogram_bin_edges(np.array([low, high]), bins=AGE_BINS)
        low, high = counts.clv_range
        clv_edges = (None if np.isnan(low) or distributions["live_positive"].n == 0
                     else np.geomspace(max(low, 1e-2), high * 1.01, CLV_EDGES))
        thresholds, tops = {}, {}
        for group in CLV_GROUPS:
            n = distributions[group].n
            ks = (np.r_[top_count(n), curve_counts(n)] if group == "live" else np.array([top_count(n)])) if n else \
                np.array([], dtype="int64")
            tops[group] = ks.astype("int64")
            thresholds[group] = np.array([distributions[group].value_at(n - k) for k in ks], dtype="float64")
        return cls(age_edges, clv_edges, thresholds, tops)


def _exact_added(arrays: list[Any]) -> np.ndarray:
    """Arrays of exact sums (Python ints) of the same length, added element by element, as an object array."""
    out = np.zeros(len(arrays[0]), dtype=object)
    out[:] = [sum(int(a[i]) for a in arrays) for i in range(len(out))]
    return out


@dataclass(frozen=True)
class LifecycleTails:
    """The second pass over a slice of customers: histograms on the plan's edges, and per CLV group and
    threshold the customers above it and their CLV's sum (all additive)."""

    ages: np.ndarray
    clv_live: np.ndarray
    clv_lapsed: np.ndarray
    above: dict[str, np.ndarray]
    above_sum: dict[str, np.ndarray]  # exact sums (:func:`segkit.data.distribution.above_sums`: Python ints)

    @classmethod
    def of(cls, lifecycle: pd.DataFrame, column: str, plan: ViewPlan) -> "LifecycleTails":
        """The tails of a slice of ``lifecycle.parquet``'s rows."""
        one_time = lifecycle["n_purchases"].to_numpy(dtype="float64", na_value=np.nan) == 1
        ages = (np.histogram(lifecycle.loc[one_time, "tenure_days"].to_numpy(dtype="float64"), plan.age_edges)[0]
                if plan.age_edges is not None else np.zeros(0, dtype="int64"))
        values = view_values(lifecycle, column)
        hist = lambda v: (np.histogram(v[v > 0], plan.clv_edges)[0] if plan.clv_edges is not None  # noqa: E731
                          else np.zeros(0, dtype="int64"))
        above, above_sum = {}, {}
        for group in CLV_GROUPS:
            above[group], above_sum[group] = above_sums(values[group].dropna().to_numpy(), plan.thresholds[group])
        return cls(ages.astype("int64"), hist(values["live"].dropna().to_numpy()).astype("int64"),
                   hist(values["lapsed"].dropna().to_numpy()).astype("int64"), above, above_sum)

    @classmethod
    def merge(cls, parts: list["LifecycleTails"]) -> "LifecycleTails":
        """The tails of the customers of all ``parts`` (slices of disjoint customers, the same plan)."""
        _require_parts(parts, "LifecycleTails", "LifecycleTails.of of an empty slice with the plan")
        return cls(sum(p.ages for p in parts), sum(p.clv_live for p in parts), sum(p.clv_lapsed for p in parts),
                   {g: sum(p.above[g] for p in parts) for g in CLV_GROUPS},
                   {g: _exact_added([p.above_sum[g] for p in parts]) for g in CLV_GROUPS})

    def to_json(self) -> str:
        return json.dumps({"ages": self.ages.tolist(), "clv_live": self.clv_live.tolist(),
                           "clv_lapsed": self.clv_lapsed.tolist(),
                           "above": {g: v.tolist() for g, v in self.above.items()},
                           "above_sum": {g: [int(x) for x in v] for g, v in self.above_sum.items()}})

    @classmethod
    def from_json(cls, text: str) -> "LifecycleTails":
        data = json.loads(text)
        return cls(np.array(data["ages"], dtype="int64"), np.array(data["clv_live"], dtype="int64"),
                   np.array(data["clv_lapsed"], dtype="int64"),
                   {g: np.array(v, dtype="int64") for g, v in data["above"].items()},
                   {g: _exact_added([v]) for g, v in data["above_sum"].items()})


@dataclass(frozen=True)
class LifecycleView:
    """What 04_lifecycle shows of its per-customer table, bounded whatever the customers
    (:func:`lifecycle_view` on one machine; per partition and merged on Spark)."""

    column: str
    counts: LifecycleCounts
    distributions: dict[str, ValueDistribution]
    plan: ViewPlan
    tails: LifecycleTails

    @property
    def customers(self) -> int:
        return int(self.counts.stages.sum())

    @property
    def buyers(self) -> int:
        return int(self.counts.stages[[STAGES.index(s) for s in BUYER_STAGES]].sum())

    def stage_counts(self) -> pd.Series:
        """Customers per stage (:data:`STAGES` order)."""
        return pd.Series(self.counts.stages, index=pd.Index(STAGES, name="lifecycle_stage"), name="customers")

    def _top_exact_sums(self, group: str) -> tuple[np.ndarray, list[int]]:
        ks, values = self.plan.tops[group], self.plan.thresholds[group]
        each = exact_sums(pd.DataFrame({"v": values}), np.arange(len(values)), range(len(values)))["v"].tolist()
        return ks, [int(total) + (int(k) - int(n)) * value for k, n, total, value
                    in zip(ks, self.tails.above[group], self.tails.above_sum[group], each)]

    def top_sums(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        """The numbers ``k`` of top customers of a CLV group and the sum of their CLV (exact, then rounded once:
        the customers above each threshold plus ties at it)."""
        ks, totals = self._top_exact_sums(group)
        return ks, np.array([exact_float(total) for total in totals], dtype="float64")

    def clv_total(self, group: str) -> tuple[int, float]:
        """Customers of a CLV group with a CLV, and their CLV's sum (exact, rounded once)."""
        n, total = self.counts.clv_sums[group]
        return n, exact_float(total)

    def clv_overview(self, group: str) -> dict[str, float]:
        """:func:`clv_overview` of a CLV group: customers, total, mean, median, top-decile share."""
        n, total = self.counts.clv_sums[group]
        if n == 0:
            return {"customers": 0, "total": float("nan"), "mean": float("nan"), "median": float("nan"),
                    "top_decile_share": float("nan")}
        top = self._top_exact_sums(group)[1][0]
        return {"customers": n, "total": exact_float(total), "mean": exact_mean(total, n),
                "median": self.distributions[group].median(),
                "top_decile_share": exact_ratio(top, total) if total > 0 else float("nan")}

    def clv_by_stage(self) -> pd.DataFrame:
        """Customers, mean P(alive), expected 90-day purchases and predicted CLV per buyer stage."""
        table = self.counts.by_stage
        table = table[(table["customers"] > 0).to_numpy(dtype=bool)]

        def each(function: Callable[..., float], *columns: str) -> np.ndarray:
            return np.array([function(*row) for row in zip(*(table[c].tolist() for c in columns))], dtype="float64")

        total = sum(table["clv_sum"].tolist())
        out = pd.DataFrame({"customers": table["customers"].to_numpy(dtype="int64"),
                            "mean_p_alive": each(exact_mean, "p_alive_sum", "p_alive_known"),
                            "expected_purchases_90d": each(exact_float, "expected_sum"),
                            "clv_total": each(exact_float, "clv_sum"),
                            "clv_mean": each(exact_mean, "clv_sum", "clv_known"),
                            "clv_share": (each(lambda clv: exact_ratio(clv, total), "clv_sum") if total > 0
                                          else np.full(len(table), np.nan))},
                           index=pd.Index(table.index, name="lifecycle_stage"))
        return out.reset_index()

    def rfm_crosstab(self) -> pd.DataFrame | None:
        """Buyers per RFM segment (rows) and buyer stage (columns); None without RFM segments."""
        pairs = self.counts.segment_stages
        if not len(pairs):
            return None
        table = pairs.pivot(index="rfm_segment", columns="lifecycle_stage", values="customers")
        return table.reindex(columns=list(BUYER_STAGES)).fillna(0).astype("int64")

    def lapsed_p_alive(self) -> float:
        """Mean P(alive) of the lapsed buyers (NaN without one)."""
        row = self.counts.by_stage.loc["lapsed"]
        return exact_mean(row["p_alive_sum"], row["p_alive_known"])


#: What :func:`lifecycle_view` takes a column missing from its table to hold (a table of live buyers'
#: CLV, say): one purchase, lifecycle stage active, nothing else known.
VIEW_DEFAULTS: dict[str, Any] = {"lifecycle_stage": "active", "n_purchases": 1, "p_alive": np.nan,
                                 "expected_purchases_90d": np.nan, "first_purchase": pd.NaT,
                                 "last_purchase": pd.NaT, "tenure_days": np.nan}


def lifecycle_view(lifecycle: pd.DataFrame, column: str) -> LifecycleView:
    """The :class:`LifecycleView` of a whole per-customer table (the one-machine path; Spark applies the
    same passes per partition). Columns of :data:`VIEW_DEFAULTS` (and ``column``) it lacks are taken
    to hold their default (NaN for ``column``).

    Examples
    --------
    >>> lc = pd.DataFrame({"lifecycle_stage": ["new", "lapsed", "prospect"], "n_purchases": [1, 2, 0],
    ...     "p_alive": [0.9, 0.2, np.nan], "expected_purchases_90d": [0.5, 0.1, np.nan], "clv_12m": [30.0, 10.0, np.nan],
    ...     "first_purchase": pd.to_datetime(["2024-05-01", "2023-01-01", None]),
    ...     "last_purchase": pd.to_datetime(["2024-05-01", "2023-06-01", None]), "tenure_days": [31.0, 500.0, np.nan]})
    >>> view = lifecycle_view(lc, "clv_12m")
    >>> view.customers, view.clv_overview("all")["total"], view.clv_by_stage()["customers"].tolist()
    (3, 40.0, [1, 1])
    """
    missing = {k: v for k, v in {**VIEW_DEFAULTS, column: np.nan}.items() if k not in lifecycle.columns}
    if missing:
        lifecycle = lifecycle.assign(**missing)
    counts = LifecycleCounts.of(lifecycle, column)
    values = view_values(lifecycle, column)
    distributions = {name: ValueDistribution.of_values(values[name].dropna().to_numpy(), VIEW_NEEDS[name], name)
                     for name in VIEW_VALUES}
    plan = ViewPlan.of(counts, distributions)
    return LifecycleView(column, counts, distributions, plan, LifecycleTails.of(lifecycle, column, plan))
