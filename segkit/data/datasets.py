"""Sample data: a synthetic online shop, the bundled sample, and the CDNOW transaction log.

:func:`generate_shop` simulates an online shop whose customers belong to latent behavioural
segments, so every analysis in segkit can be checked against a known truth: the segment each
customer was drawn from, when they stopped buying, and how much an e-mail really changed their
chance to buy. It also plants a known number of dirty rows of each kind for the data audit.

Generative model (all draws from one ``numpy.random.Generator`` seeded with ``seed``):

- **Customers** sign up between ``start`` and ``end`` (a rising trend plus three acquisition
  waves driven by paid social). ``prospect_share`` of them never buy; the buyers belong to one
  of four latent segments (:data:`SEGMENTS`): ``vip``, ``regular``, ``bargain``, ``one_off``.
- **Purchases** follow a Pareto/NBD-like process per buyer: the first order shortly after
  signup, then repeat orders at a gamma-distributed personal rate, modulated by a seasonal
  intensity (Q4 and Black Friday peak), until a latent exponential "death" (constant churn
  hazard). Some churned buyers come back after a long gap (reactivation) for a second spell.
- **Order lines**: the number of lines, categories, price level, quantities and sales channel
  depend on the segment (each customer's category and channel mix is a Dirichlet draw around
  the segment's mix). A share of lines is returned later on a cancellation order
  ``"C" + order_id``, with negative quantity and amount.
- **E-mail campaigns**: opted-in customers are randomised into ``control`` (no e-mail) and
  ``email``. The true intention-to-treat uplift in conversion depends on the segment and is
  stored per customer in ``truth.true_uplift``. Conversions are orders in the transactions.
- **Dirt**: exact duplicates, guest checkouts (no customer id), zero and negative prices,
  order dates typed as 2099, quantity typos (x100) and campaign rows for unknown customers,
  each counted exactly in ``GeneratedShop.dirt`` (see :data:`DIRT_KINDS`).

This shop shares segkit's assumptions (cancellations named after their order, a history that
starts with the data). :mod:`segkit.data.online_retail` simulates a real export's habits instead
(``python -m segkit.data.datasets --online-retail``).

Examples
--------
>>> shop = generate_shop(n_customers=300, seed=1)
>>> shop.customers["customer_id"].iloc[0]
'C000001'
>>> sorted(shop.truth["latent_segment"].unique())
['bargain', 'one_off', 'prospect', 'regular', 'vip']
>>> int(shop.transactions["customer_id"].isna().sum()) == shop.dirt["missing_customer_id"]
True
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segkit.core.config import project_root
from segkit.core.errors import ConfigError, DataError
from segkit.core.files import atomic_write_text, dumps_json, write_frame
from segkit.core.schema import CAMPAIGN, CUSTOMERS, TRANSACTIONS
from segkit.data.io import load_table
from segkit.data.online_retail import generate_online_retail, write_online_retail

__all__ = [
    "SegmentProfile",
    "SEGMENTS",
    "DIRT_KINDS",
    "DEFAULT_DIRT_RATES",
    "GeneratedShop",
    "generate_shop",
    "write_sample",
    "load_sample",
    "sample_dirt",
    "load_cdnow",
    "SAMPLE_DIR",
    "TRUTH_DTYPES",
]

SAMPLE_DIR = Path("data") / "sample"  # relative to the project root

CATEGORIES: tuple[str, ...] = (
    "electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery",
)
# Median list price per category (EUR); product prices are log-normal around it.
CATEGORY_MEDIAN_PRICE: tuple[float, ...] = (140.0, 45.0, 35.0, 18.0, 40.0, 14.0, 25.0, 7.0)
PRODUCTS_PER_CATEGORY = 60
CHANNELS: tuple[str, ...] = ("web", "app", "store", "marketplace")
ACQUISITION_CHANNELS: tuple[str, ...] = (
    "organic_search", "paid_search", "paid_social", "referral", "affiliate", "direct",
)
COUNTRIES: tuple[tuple[str, str, float], ...] = (  # country, region, share of customers
    ("Germany", "DACH", 0.33), ("Austria", "DACH", 0.06), ("Switzerland", "DACH", 0.05),
    ("France", "Western Europe", 0.12), ("Netherlands", "Benelux", 0.08),
    ("Belgium", "Benelux", 0.04), ("Spain", "Southern Europe", 0.07),
    ("Italy", "Southern Europe", 0.08), ("Sweden", "Nordics", 0.04),
    ("Denmark", "Nordics", 0.03), ("Poland", "Central & Eastern Europe", 0.06),
    ("Czechia", "Central & Eastern Europe", 0.04),
)
GENDERS: tuple[tuple[str | None, float], ...] = (
    ("female", 0.51), ("male", 0.45), ("diverse", 0.01), (None, 0.03),
)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
# Relative order intensity by calendar month (Jan..Dec) and on the Black Friday weekend.
MONTH_FACTOR = np.array([0.85, 0.80, 0.92, 0.95, 0.98, 0.95, 0.90, 0.90, 1.00, 1.05, 1.35, 1.55])
BLACK_FRIDAY_FACTOR = 2.2
# Relative order intensity by hour of day (local time).
HOUR_WEIGHTS = np.array([
    1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.6, 2.8, 3.0,
    3.2, 3.0, 2.8, 2.8, 3.0, 3.3, 3.8, 4.4, 4.8, 4.4, 3.2, 1.8,
])
CHANNEL_CONCENTRATION = 40.0  # Dirichlet concentration of a customer's channel mix
GUEST_CHANNEL_MIX = (0.55, 0.20, 0.0, 0.25)  # guest checkouts happen online
SALE_DISCOUNT = 0.2          # price cut on sale days (Jan/Jul sales, Black Friday weekend)
MAX_NATURAL_QUANTITY = 10    # clean lines never exceed this; planted typos are x100
QUANTITY_TYPO_FACTOR = 100
FUTURE_YEAR = 2099
CONTROL_ARM = "control"
EMAIL_ARM = "email"
DELIVERY_RATE = 0.97
EMAIL_COST = 0.01            # cost per e-mail sent (EUR)
CONVERSION_WINDOW_DAYS = 14
SEND_MINUTE = 9 * 60         # campaigns go out at 09:00


@dataclass(frozen=True)
class SegmentProfile:
    """Behaviour of one latent customer segment.

    Rates are per year, durations in days, mixes are probabilities in the order of
    ``CHANNELS`` / ``CATEGORIES`` / ``ACQUISITION_CHANNELS``.

    Examples
    --------
    >>> SEGMENTS["vip"].purchase_rate > SEGMENTS["regular"].purchase_rate
    True
    """

    share: float                   # share of buyers (prospects excluded)
    purchase_rate: float           # mean repeat orders per year while active
    lifetime_days: float           # mean active lifetime (churn hazard = 1 / lifetime)
    reactivation_prob: float       # chance a churned customer comes back after a long gap
    lines_mean: float              # order lines = 1 + Poisson(lines_mean)
    quantity_mean: float           # quantity = 1 + Poisson(quantity_mean), at most 10
    price_position: tuple[float, float]  # Beta(a, b) position in the category's price ladder
    channel_mix: tuple[float, ...]
    category_mix: tuple[float, ...]
    category_concentration: float  # Dirichlet concentration of a customer's category mix
    season_strength: float         # exponent on the seasonal intensity (1 = average)
    sale_discount_prob: float      # chance a line bought on a sale day is discounted
    opt_in: float                  # e-mail consent at signup
    open_rate: float
    click_rate: float              # of opened
    conversion_active: float       # 14-day purchase probability without e-mail, while active
    conversion_lapsed: float       # ... after churn (or before the first order)
    email_effect: float            # added conversion probability when the e-mail is delivered
    unsubscribe_rate: float        # of delivered
    acquisition_mix: tuple[float, ...]
    birth_year_mean: float


SEGMENTS: dict[str, SegmentProfile] = {
    "vip": SegmentProfile(
        share=0.12, purchase_rate=11.0, lifetime_days=1100, reactivation_prob=0.30,
        lines_mean=1.6, quantity_mean=0.15, price_position=(6.0, 1.5),
        channel_mix=(0.08, 0.86, 0.04, 0.02),
        category_mix=(0.22, 0.18, 0.14, 0.12, 0.12, 0.08, 0.08, 0.06), category_concentration=12,
        season_strength=1.0, sale_discount_prob=0.3, opt_in=0.80, open_rate=0.45, click_rate=0.25,
        conversion_active=0.22, conversion_lapsed=0.05, email_effect=0.03, unsubscribe_rate=0.002,
        acquisition_mix=(0.30, 0.10, 0.05, 0.30, 0.05, 0.20), birth_year_mean=1976,
    ),
    "regular": SegmentProfile(
        share=0.38, purchase_rate=6.0, lifetime_days=900, reactivation_prob=0.25,
        lines_mean=1.0, quantity_mean=0.15, price_position=(3.0, 3.0),
        channel_mix=(0.88, 0.05, 0.04, 0.03),
        category_mix=(0.10, 0.28, 0.22, 0.14, 0.10, 0.12, 0.02, 0.02), category_concentration=6,
        season_strength=1.0, sale_discount_prob=0.4, opt_in=0.60, open_rate=0.30, click_rate=0.15,
        conversion_active=0.08, conversion_lapsed=0.02, email_effect=0.06, unsubscribe_rate=0.004,
        acquisition_mix=(0.30, 0.25, 0.15, 0.10, 0.05, 0.15), birth_year_mean=1982,
    ),
    "bargain": SegmentProfile(
        share=0.28, purchase_rate=7.0, lifetime_days=450, reactivation_prob=0.35,
        lines_mean=1.1, quantity_mean=1.5, price_position=(1.0, 6.0),
        channel_mix=(0.08, 0.04, 0.02, 0.86),
        category_mix=(0.02, 0.06, 0.25, 0.18, 0.04, 0.03, 0.14, 0.28), category_concentration=6,
        season_strength=1.6, sale_discount_prob=0.9, opt_in=0.70, open_rate=0.35, click_rate=0.20,
        conversion_active=0.10, conversion_lapsed=0.03, email_effect=0.12, unsubscribe_rate=0.008,
        acquisition_mix=(0.10, 0.20, 0.35, 0.05, 0.25, 0.05), birth_year_mean=1988,
    ),
    "one_off": SegmentProfile(
        share=0.22, purchase_rate=0.2, lifetime_days=30, reactivation_prob=0.03,
        lines_mean=0.2, quantity_mean=0.0, price_position=(5.0, 2.0),
        channel_mix=(0.05, 0.02, 0.90, 0.03),
        category_mix=(0.30, 0.15, 0.05, 0.15, 0.05, 0.03, 0.25, 0.02), category_concentration=3,
        season_strength=1.8, sale_discount_prob=0.4, opt_in=0.35, open_rate=0.15, click_rate=0.08,
        conversion_active=0.03, conversion_lapsed=0.01, email_effect=0.01, unsubscribe_rate=0.010,
        acquisition_mix=(0.20, 0.45, 0.20, 0.05, 0.05, 0.05), birth_year_mean=1984,
    ),
}
# Prospects sign up but never buy (so their e-mail conversion and uplift are zero).
PROSPECT = "prospect"
PROSPECT_PROFILE = SegmentProfile(
    share=0.0, purchase_rate=0.0, lifetime_days=1.0, reactivation_prob=0.0, lines_mean=0.0,
    quantity_mean=0.0, price_position=(2.0, 2.0), channel_mix=(0.50, 0.30, 0.10, 0.10),
    category_mix=(1 / 8,) * 8, category_concentration=1, season_strength=1.0,
    sale_discount_prob=0.0, opt_in=0.45, open_rate=0.12, click_rate=0.04, conversion_active=0.0,
    conversion_lapsed=0.0, email_effect=0.0, unsubscribe_rate=0.012,
    acquisition_mix=(0.25, 0.30, 0.25, 0.05, 0.05, 0.10), birth_year_mean=1985,
)

DIRT_KINDS: tuple[str, ...] = (
    "duplicate_rows",            # transactions: exact copy of a clean line (count = extra rows)
    "missing_customer_id",       # transactions: one-line guest-checkout orders
    "zero_unit_price",           # transactions: unit_price == 0 (amount 0)
    "negative_unit_price",       # transactions: unit_price < 0, positive quantity
    "future_order_date",         # transactions: year typed as 2099 (one-line orders)
    "quantity_outlier",          # transactions: quantity typed x100 (>= 100)
    "campaign_unknown_customer",  # campaign: customer_id not in the customers table
)
# Share of transaction rows (campaign rows for the last kind) planted per kind.
DEFAULT_DIRT_RATES: dict[str, float] = {
    "duplicate_rows": 0.003,
    "missing_customer_id": 0.004,
    "zero_unit_price": 0.0008,
    "negative_unit_price": 0.0003,
    "future_order_date": 0.0003,
    "quantity_outlier": 0.0004,
    "campaign_unknown_customer": 0.003,
}

TRUTH_DTYPES: dict[str, str] = {
    "customer_id": "string",
    "latent_segment": "string",        # vip / regular / bargain / one_off / prospect
    "purchase_rate": "float64",        # personal repeat orders per year while active
    "churn_date": "datetime64[ns]",    # end of the last active spell; NaT = active at `end`
    "reactivation_date": "datetime64[ns]",  # start of a second spell after a long gap
    "alive_at_end": "boolean",         # still active at `end` (<NA> for prospects)
    "true_uplift": "float64",          # ITT conversion uplift of one e-mail (email vs control)
}


@dataclass
class GeneratedShop:
    """Tables of one simulated shop plus what was planted in them.

    Attributes
    ----------
    transactions, customers, campaign : pandas.DataFrame
        Canonical tables (column names and dtypes of :mod:`segkit.core.schema`), dirt included.
    truth : pandas.DataFrame
        One row per customer of ``customers``, columns :data:`TRUTH_DTYPES`.
    dirt : dict of str to int
        Exact number of planted rows per kind of :data:`DIRT_KINDS`.
    start, end : pandas.Timestamp
        The simulated period (orders fall on ``start`` .. ``end`` inclusive, except the 2099 typos).
    """

    transactions: pd.DataFrame
    customers: pd.DataFrame
    campaign: pd.DataFrame
    truth: pd.DataFrame
    dirt: dict[str, int] = field(default_factory=dict)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None


# --------------------------------------------------------------------------- small helpers

Arrays = dict[str, np.ndarray]    # parallel arrays of one table being built
Profiles = dict[str, np.ndarray]  # segment profile attributes, indexed by segment code


def _cum_probs(probs: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities (rows normalised to 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.cumsum(probs / probs.sum(axis=-1, keepdims=True), axis=-1)


def _choose(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray,
            chunk: int = 1_000_000) -> np.ndarray:
    """Draw one category per event from the cumulative probabilities ``cum[rows]``.

    Inverse-CDF sampling, vectorised in chunks so that ``len(rows) x n_categories`` never
    exceeds ``chunk x n_categories`` elements in memory.
    """
    u = rng.random(rows.size)
    out = np.empty(rows.size, dtype=np.int64)
    for lo in range(0, rows.size, chunk):
        sl = slice(lo, lo + chunk)
        out[sl] = (cum[rows[sl]] < u[sl, None]).sum(axis=1)
    return np.minimum(out, cum.shape[1] - 1)


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """One Dirichlet draw per row of ``alpha`` (n x k), as cumulative probabilities."""
    g = rng.gamma(alpha) + 1e-12
    return _cum_probs(g)


def _minutes_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Time of day in minutes, following the diurnal profile :data:`HOUR_WEIGHTS`."""
    hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    return hour * 60 + rng.integers(0, 60, size=n)


def _black_friday_weekend(dates: pd.DatetimeIndex) -> np.ndarray:
    """True on Black Friday .. Cyber Monday (Friday after the 4th Thursday of November)."""
    nov1 = pd.to_datetime(pd.DataFrame({"year": dates.year, "month": 11, "day": 1}))
    first_thursday = 1 + (3 - nov1.dt.day_of_week.to_numpy()) % 7
    black_friday = nov1 + pd.to_timedelta(first_thursday + 21, unit="D")
    delta = (dates - pd.DatetimeIndex(black_friday)).days.to_numpy()
    return (delta >= 0) & (delta < 4)


def _sale_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Sale days: January and July sales (2nd-14th / 1st-14th) and the Black Friday weekend."""
    month, day = dates.month.to_numpy(), dates.day.to_numpy()
    return (((month == 1) & (day >= 2)) | (month == 7)) & (day <= 14) | _black_friday_weekend(dates)


def _seasonality(dates: pd.DatetimeIndex, strength: float) -> np.ndarray:
    """Daily order intensity (mean 1 over ``dates``): monthly factors and Black Friday peak."""
    s = MONTH_FACTOR[dates.month.to_numpy() - 1] * np.where(
        _black_friday_weekend(dates), BLACK_FRIDAY_FACTOR, 1.0)
    s = s ** strength
    return s / s.mean()


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, as an Arrow string array (vectorised)."""
    digits = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _as_string(codes: np.ndarray, labels: Sequence[str] | pa.Array) -> pd.Series:
    """Strings ``labels[codes]`` (``-1`` = missing) as a pandas ``string`` Series."""
    labels = labels if isinstance(labels, pa.Array) else pa.array(list(labels), type=pa.string())
    codes = np.asarray(codes, dtype=np.int64)
    taken = pc.take(labels, pa.array(codes, mask=codes < 0))
    return pd.Series(pd.arrays.ArrowStringArray(taken), dtype="string")


def _dirt_count(rate: float, base: int) -> int:
    """Rows to plant for ``rate``: at least one when the rate is positive."""
    return 0 if rate <= 0 or base <= 0 else max(1, int(round(rate * base)))


def _validate_args(n_customers: int, start: pd.Timestamp, end: pd.Timestamp,
                   prospect_share: float, shares: Mapping[str, float], n_campaigns: int,
                   control_share: float, return_rate: float, rates: Mapping[str, float]) -> None:
    if int(n_customers) < 1:
        raise ConfigError(f"generate_shop: n_customers must be at least 1, got {n_customers}.")
    if (end - start).days < 90:
        raise ConfigError(
            f"generate_shop: the period {start.date()} .. {end.date()} is shorter than 90 days; "
            "give an `end` at least three months after `start`.")
    if not 0 <= prospect_share < 1:
        raise ConfigError(f"generate_shop: prospect_share must be in [0, 1), got {prospect_share}.")
    unknown = sorted(set(shares) - set(SEGMENTS))
    if unknown or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ConfigError(
            f"generate_shop: segment_shares must map {sorted(SEGMENTS)} to non-negative shares "
            f"with a positive sum; got {dict(shares)}.")
    if not 0 <= n_campaigns <= 6:
        raise ConfigError(f"generate_shop: n_campaigns must be 0..6, got {n_campaigns}.")
    if not 0 < control_share < 1:
        raise ConfigError(f"generate_shop: control_share must be in (0, 1), got {control_share}.")
    if not 0 <= return_rate <= 0.3:
        raise ConfigError(f"generate_shop: return_rate must be in [0, 0.3], got {return_rate}.")
    bad = sorted(set(rates) - set(DIRT_KINDS))
    if bad:
        raise ConfigError(f"generate_shop: unknown dirt kind(s) {bad}; known kinds: {list(DIRT_KINDS)}.")
    if any(not 0 <= v <= 0.05 for v in rates.values()):
        raise ConfigError(f"generate_shop: dirt rates must be in [0, 0.05]; got {dict(rates)}.")


# --------------------------------------------------------------------------- model pieces


def _profile_arrays(names: Sequence[str]) -> dict[str, np.ndarray]:
    """Profile attributes stacked per segment code (code = position in ``names``); mixes are 2-D."""
    profiles = [SEGMENTS.get(n, PROSPECT_PROFILE) for n in names]
    return {f: np.array([getattr(p, f) for p in profiles], dtype=np.float64)
            for f in SegmentProfile.__dataclass_fields__}


def _signup_days(rng: np.random.Generator, n: int, dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Signup day index per customer and whether it came from a paid-social acquisition wave."""
    n_days = len(dates)
    trend = np.linspace(0.7, 1.3, n_days) * _seasonality(dates, 0.5)
    base = np.searchsorted(np.cumsum(trend) / trend.sum(), rng.random(n), side="right")
    centres = np.array([0.12, 0.42, 0.78]) * (n_days - 1)
    wave_day = np.rint(rng.normal(centres[rng.integers(0, 3, n)], 8.0))
    in_wave = rng.random(n) < 0.25
    day = np.where(in_wave, wave_day, base)
    return np.clip(day, 0, n_days - 1).astype(np.int64), in_wave


def _spell_orders(rng: np.random.Generator, cums: np.ndarray, seg: np.ndarray, rate: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat orders of a non-homogeneous Poisson process on ``(lo, hi)`` (days) per customer.

    ``cums[k]`` is the cumulative seasonal intensity of segment ``k`` on the day grid; the
    expected count is ``rate / 365 * (cum(hi) - cum(lo))`` and times are drawn by inverting
    the cumulative intensity. Returns (customer position, day index) per order.
    """
    grid = np.arange(cums.shape[1], dtype=np.float64)
    c_lo, c_hi = np.zeros(lo.size), np.zeros(lo.size)
    for k in range(cums.shape[0]):
        m = seg == k
        c_lo[m], c_hi[m] = np.interp(lo[m], grid, cums[k]), np.interp(hi[m], grid, cums[k])
    mass = np.clip(c_hi - c_lo, 0.0, None)
    owner = np.repeat(np.arange(lo.size), rng.poisson(rate / 365.0 * mass))
    u = c_lo[owner] + rng.random(owner.size) * mass[owner]
    t = np.empty(owner.size)
    for k in range(cums.shape[0]):
        m = seg[owner] == k
        t[m] = np.interp(u[m], cums[k], grid)
    return owner, np.minimum(np.floor(t).astype(np.int64), cums.shape[1] - 2)


@dataclass
class _Orders:
    """Order-level arrays (one entry per order) while the shop is being built."""

    cust: np.ndarray      # customer position, -1 = guest
    day: np.ndarray       # day index from `start`
    minute: np.ndarray    # minute of day
    kind: np.ndarray      # 0 organic, 1 campaign conversion, 2 guest

    def subset(self, index: np.ndarray) -> "_Orders":
        return _Orders(self.cust[index], self.day[index], self.minute[index], self.kind[index])

    def concat(self, other: "_Orders") -> "_Orders":
        return _Orders(*(np.concatenate([getattr(self, f), getattr(other, f)])
                         for f in ("cust", "day", "minute", "kind")))


def _purchase_histories(rng: np.random.Generator, seg: np.ndarray, buyers: np.ndarray, rate: np.ndarray,
                        signup_day: np.ndarray, profiles: Profiles, cums: np.ndarray,
                        n_days: int) -> tuple[_Orders, Arrays]:
    """Organic orders and the latent lifecycle (churn, reactivation) of every buyer."""
    b_seg = seg[buyers]
    life = profiles["lifetime_days"][b_seg]
    delay = np.where(rng.random(buyers.size) < 0.45, 0, np.floor(rng.exponential(12.0, buyers.size)))
    first = np.minimum(signup_day[buyers] + delay, n_days - 1).astype(np.int64)
    death1 = first + rng.exponential(life)
    react = death1 + 120.0 + rng.exponential(150.0, buyers.size)
    reactivated = (death1 < n_days) & (rng.random(buyers.size) < profiles["reactivation_prob"][b_seg]) \
        & (react < n_days)
    death2 = react + rng.exponential(0.7 * life)
    b_rate = rate[buyers]

    o1, d1 = _spell_orders(rng, cums, b_seg, b_rate, first + 1.0, np.minimum(death1, n_days))
    r_idx = np.flatnonzero(reactivated)
    r_day = np.floor(react[r_idx]).astype(np.int64)
    o2, d2 = _spell_orders(rng, cums, b_seg[r_idx], b_rate[r_idx], r_day + 1.0,
                           np.minimum(death2[r_idx], n_days))
    cust = np.concatenate([buyers, buyers[o1], buyers[r_idx], buyers[r_idx][o2]])
    day = np.concatenate([first, d1, r_day, d2])
    orders = _Orders(cust, day, _minutes_of_day(rng, cust.size), np.zeros(cust.size, np.int8))
    final_death = np.where(reactivated, death2, death1)
    life_table = {
        "first": first, "death1": death1, "reactivated": reactivated, "react": react,
        "death2": death2, "final_death": final_death,
    }
    return orders, life_table


def _active_at(buyers: np.ndarray, n: int, life: Arrays, day: int) -> np.ndarray:
    """Whether each customer (all ``n``) is in an active spell on ``day``."""
    active_b = ((life["first"] <= day) & (day < life["death1"])) | (
        life["reactivated"] & (life["react"] <= day) & (day < life["death2"]))
    out = np.zeros(n, dtype=bool)
    out[buyers] = active_b
    return out


def _campaigns(rng: np.random.Generator, n_campaigns: int, n_days: int, seg: np.ndarray,
               signup_day: np.ndarray, buyers: np.ndarray, life: Arrays, profiles: Profiles,
               control_share: float) -> tuple[np.ndarray, list[Arrays], list[_Orders], np.ndarray]:
    """Campaign sends and outcomes, plus the conversion orders they cause."""
    n = seg.size
    consent = rng.random(n) < profiles["opt_in"][seg]
    fractions = np.linspace(0.45, 0.94, n_campaigns) if n_campaigns > 1 else np.array([0.8])
    send_days = np.unique(np.rint(fractions[:n_campaigns] * (n_days - 1)).astype(np.int64))
    blocks, conv_orders = [], []
    for k, d in enumerate(send_days):  # a handful of campaigns; each one fully vectorised
        who = np.flatnonzero(consent & (signup_day < d))
        s = seg[who]
        control = rng.random(who.size) < control_share
        delivered = ~control & (rng.random(who.size) < DELIVERY_RATE)
        opened = delivered & (rng.random(who.size) < profiles["open_rate"][s])
        clicked = opened & (rng.random(who.size) < profiles["click_rate"][s])
        active = _active_at(buyers, n, life, d)[who]
        p0 = np.where(active, profiles["conversion_active"][s], profiles["conversion_lapsed"][s])
        organic = rng.random(who.size) < p0
        # e-mail effect: extra conversions among the delivered who would not have bought,
        # with probability effect / (1 - p0), so P(convert | delivered) = p0 + effect exactly.
        caused = delivered & ~organic & (
            rng.random(who.size) < profiles["email_effect"][s] / np.maximum(1.0 - p0, 1e-9))
        opened |= caused
        clicked |= caused
        converted = organic | caused
        unsubscribed = delivered & (rng.random(who.size) < profiles["unsubscribe_rate"][s])
        consent[who[unsubscribed]] = False
        c_idx = who[converted]
        lag = np.minimum(np.floor(rng.exponential(3.0, c_idx.size)), CONVERSION_WINDOW_DAYS - 1)
        c_day = np.minimum(d + lag, n_days - 1).astype(np.int64)
        c_min = _minutes_of_day(rng, c_idx.size)
        c_min = np.where(c_day == d, np.maximum(c_min, SEND_MINUTE + 15), c_min)
        conv_orders.append(_Orders(c_idx, c_day, c_min, np.ones(c_idx.size, np.int8)))
        blocks.append({
            "campaign": np.full(who.size, k), "cust": who, "control": control,
            "delivered": delivered, "opened": opened, "clicked": clicked,
            "converted": converted, "unsubscribed": unsubscribed,
        })
    return send_days, blocks, conv_orders, consent


def _lines(rng: np.random.Generator, orders: _Orders, seg_of_order: np.ndarray, profiles: Profiles,
           cat_cum: np.ndarray, price: np.ndarray, sale_day: np.ndarray) -> Arrays:
    """Expand orders into lines: category, product, quantity, unit price (unique products per order)."""
    n_lines = 1 + np.minimum(rng.poisson(profiles["lines_mean"][seg_of_order]), 7)
    n_lines[orders.kind == 2] = 1
    order = np.repeat(np.arange(orders.cust.size), n_lines)
    seg = seg_of_order[order]
    guest = orders.kind[order] == 2
    cat = np.where(guest, rng.integers(0, len(CATEGORIES), order.size),
                   _choose(rng, cat_cum, np.maximum(orders.cust[order], 0)))
    beta_a, beta_b = profiles["price_position"][seg].T
    pos = np.minimum((rng.beta(beta_a, beta_b) * PRODUCTS_PER_CATEGORY).astype(np.int64),
                     PRODUCTS_PER_CATEGORY - 1)
    product = cat * PRODUCTS_PER_CATEGORY + pos
    keep = ~pd.Series(order * len(price) + product).duplicated().to_numpy()
    order, seg, product, cat, guest = order[keep], seg[keep], product[keep], cat[keep], guest[keep]
    quantity = 1 + np.minimum(rng.poisson(profiles["quantity_mean"][seg]), MAX_NATURAL_QUANTITY - 1)
    quantity[guest] = 1
    discounted = sale_day[orders.day[order]] & (rng.random(order.size) < profiles["sale_discount_prob"][seg])
    unit_price = np.where(discounted, np.round(price[product] * (1 - SALE_DISCOUNT), 2), price[product])
    return {"order": order, "product": product, "category": cat,
            "quantity": quantity.astype(np.float64), "unit_price": unit_price}


def _catalogue(rng: np.random.Generator) -> np.ndarray:
    """List prices of all products, sorted ascending within each category, ending in .99."""
    median = np.repeat(np.array(CATEGORY_MEDIAN_PRICE), PRODUCTS_PER_CATEGORY)
    raw = median * np.exp(rng.normal(0.0, 0.55, median.size))
    ladder = np.sort(raw.reshape(len(CATEGORIES), PRODUCTS_PER_CATEGORY), axis=1).ravel()
    return np.maximum(np.round(ladder) - 0.01, 0.99)


def _returns(rng: np.random.Generator, lines: Arrays, orders: _Orders, return_rate: float,
             n_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pick returned lines; one cancellation per order, 1-29 days after the purchase."""
    order = lines["order"]
    eligible = (orders.kind[order] == 0) & (orders.day[order] <= n_days - 2)
    p = min(1.0, return_rate * order.size / max(int(eligible.sum()), 1))
    returned = eligible & (rng.random(order.size) < p)
    delay = 1 + np.minimum(np.floor(rng.exponential(8.0, orders.day.size)), 28).astype(np.int64)
    r_day = np.minimum(orders.day + delay, n_days - 1)
    r_min = _minutes_of_day(rng, orders.day.size)
    q = lines["quantity"][returned]
    r_qty = -(1 + np.floor(rng.random(q.size) * q))
    return returned, r_day, r_min, r_qty


# --------------------------------------------------------------------------- the generator


def generate_shop(
    n_customers: int = 3000,
    seed: int = 42,
    start: str | pd.Timestamp = "2023-01-01",
    end: str | pd.Timestamp = "2024-12-31",
    *,
    prospect_share: float = 0.15,
    segment_shares: Mapping[str, float] | None = None,
    n_campaigns: int = 3,
    control_share: float = 0.2,
    return_rate: float = 0.03,
    dirt: Mapping[str, float] | None = None,
) -> GeneratedShop:
    """Simulate an online shop: customers, order lines, e-mail campaigns, truth and dirt.

    Parameters
    ----------
    n_customers : int
        Customers in the customers table (prospects included). Ids are ``C`` + 6 digits
        (7 from 500,000 customers on), numbered from 1.
    seed : int
        Seed of the only random generator used: the same arguments give identical tables.
    start, end : str or Timestamp
        First and last day of the simulated period (at least 90 days apart).
    prospect_share : float
        Share of customers who sign up but never buy.
    segment_shares : mapping, optional
        Share of buyers per latent segment (keys of :data:`SEGMENTS`; normalised to sum 1).
        Default: the ``share`` of each profile (vip 12%, regular 38%, bargain 28%, one_off 22%).
    n_campaigns : int
        E-mail campaigns (0..6), sent at 09:00 between 45% and 94% of the period.
    control_share : float
        Probability that a recipient is held out in the ``control`` arm.
    return_rate : float
        Expected share of transaction rows that are return lines.
    dirt : mapping, optional
        Share of rows to plant per kind of :data:`DIRT_KINDS` (missing kinds use
        :data:`DEFAULT_DIRT_RATES`; ``{kind: 0}`` plants none). A positive rate plants at least
        one row.

    Returns
    -------
    GeneratedShop
        ``transactions``, ``customers``, ``campaign`` (canonical), ``truth`` and ``dirt``.

    Raises
    ------
    ConfigError
        An argument is out of range (the message names it and the allowed values).

    Notes
    -----
    Everything is vectorised (numpy over customers, orders and lines); 1M customers
    (about 10M transaction rows) take well under a few minutes on two cores.

    Examples
    --------
    >>> shop = generate_shop(n_customers=500, seed=7, dirt={k: 0 for k in DIRT_KINDS})
    >>> list(shop.transactions.columns) == list(TRANSACTIONS.columns)
    True
    >>> shop.dirt["duplicate_rows"], int(shop.transactions.duplicated().sum())
    (0, 0)
    >>> bool((shop.transactions["order_id"].str.startswith("C") == (shop.transactions["quantity"] < 0)).all())
    True
    """
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    shares = dict(segment_shares) if segment_shares is not None else {k: p.share for k, p in SEGMENTS.items()}
    rates = {**DEFAULT_DIRT_RATES, **(dict(dirt) if dirt is not None else {})}
    _validate_args(n_customers, start, end, prospect_share,
                   shares, n_campaigns, control_share, return_rate, {**(dirt or {})})
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    dates = pd.date_range(start, end, freq="D")
    n_days = len(dates)

    # --- customers and their latent segment (code 0 = prospect, then SEGMENTS order)
    names = [PROSPECT, *SEGMENTS]
    buyer_p = np.array([shares.get(k, 0.0) for k in SEGMENTS])
    seg_p = np.concatenate([[prospect_share], (1 - prospect_share) * buyer_p / buyer_p.sum()])
    seg = rng.choice(len(names), size=n, p=seg_p)
    profiles = _profile_arrays(names)
    signup_day, in_wave = _signup_days(rng, n, dates)
    shape = 4.0
    rate = rng.gamma(shape, profiles["purchase_rate"][seg] / shape)
    buyers = np.flatnonzero(seg != 0)
    chan_cum = _dirichlet_rows(rng, CHANNEL_CONCENTRATION * profiles["channel_mix"][seg])
    cat_cum = _dirichlet_rows(rng, profiles["category_concentration"][seg, None] * profiles["category_mix"][seg])

    # --- organic purchase histories, campaigns and the orders they convert
    cums = np.stack([np.concatenate([[0.0], np.cumsum(_seasonality(dates, s))])
                     for s in profiles["season_strength"]])
    orders, life = _purchase_histories(rng, seg, buyers, rate, signup_day, profiles, cums, n_days)
    send_days, blocks, conv_orders, consent = _campaigns(
        rng, n_campaigns, n_days, seg, signup_day, buyers, life, profiles, control_share)
    for extra in conv_orders:
        orders = orders.concat(extra)
    channel = _choose(rng, chan_cum, orders.cust)

    # --- guest checkouts: one-line orders without customer id (count from the expected rows)
    expected_rows = (1 + profiles["lines_mean"][seg[orders.cust]]).sum() * (1 + return_rate)
    n_guest = _dirt_count(rates["missing_customer_id"], int(expected_rows))
    g_day = np.searchsorted(cums[2] / cums[2][-1], rng.random(n_guest), side="right") - 1
    orders = orders.concat(_Orders(np.full(n_guest, -1), np.minimum(g_day, n_days - 1),
                                   _minutes_of_day(rng, n_guest), np.full(n_guest, 2, np.int8)))
    channel = np.concatenate([channel, rng.choice(len(CHANNELS), n_guest, p=GUEST_CHANNEL_MIX)])

    # --- order numbers follow time; lines are generated in that order
    by_time = np.lexsort((orders.kind, orders.cust, orders.day * 1440 + orders.minute))
    conversion_number = np.argsort(by_time)[np.flatnonzero(orders.kind == 1)]  # campaign row order
    orders, channel = orders.subset(by_time), channel[by_time]
    seg_of_order = np.where(orders.cust >= 0, seg[np.maximum(orders.cust, 0)], 0)  # guests: code 0
    price = _catalogue(rng)
    lines = _lines(rng, orders, seg_of_order, profiles, cat_cum, price, _sale_days(dates))
    order_value = np.bincount(lines["order"], weights=np.round(lines["quantity"] * lines["unit_price"], 2),
                              minlength=orders.cust.size)
    returned, r_day, r_min, r_qty = _returns(rng, lines, orders, return_rate, n_days)
    rows = _assemble_rows(lines, returned, r_day, r_min, r_qty, orders, channel)
    rows, dirt_counts = _plant_transaction_dirt(rng, rows, rates, dates, n_guest)

    width = max(6, len(str(2 * n)))  # room for the unknown campaign ids beyond n
    cust_ids = _ids("C", np.arange(1, n + 1), width)
    transactions = _transactions_frame(rows, cust_ids, orders.cust.size, start, price.size)
    customers = _customers_frame(rng, seg, names, signup_day, in_wave, chan_cum, consent, profiles,
                                 cust_ids, dates, end)
    campaign, n_unknown = _campaign_frame(rng, blocks, send_days, dates, order_value[conversion_number],
                                          cust_ids, rates, control_share, width)
    dirt_counts["campaign_unknown_customer"] = n_unknown
    truth = _truth_frame(seg, names, rate, buyers, life, n_days, dates, cust_ids)
    return GeneratedShop(transactions=transactions, customers=customers, campaign=campaign,
                         truth=truth, dirt={k: int(dirt_counts[k]) for k in DIRT_KINDS},
                         start=start, end=end)


def _assemble_rows(lines: Arrays, returned: np.ndarray, r_day: np.ndarray, r_min: np.ndarray,
                   r_qty: np.ndarray, orders: _Orders, channel: np.ndarray) -> Arrays:
    """Row arrays (purchase lines, then return lines) with what dirt planting needs."""
    o = lines["order"]
    r = np.flatnonzero(returned)
    ro = o[r]
    ts = np.concatenate([orders.day[o] * 1440 + orders.minute[o], r_day[ro] * 1440 + r_min[ro]])
    both = np.concatenate([o, ro])
    rows = {
        "order": both,
        "cust": orders.cust[both],
        "kind": orders.kind[both],
        "is_return": np.concatenate([np.zeros(o.size, bool), np.ones(r.size, bool)]),
        "product": np.concatenate([lines["product"], lines["product"][r]]),
        "category": np.concatenate([lines["category"], lines["category"][r]]),
        "channel": channel[both],
        "quantity": np.concatenate([lines["quantity"], r_qty]),
        "unit_price": np.concatenate([lines["unit_price"], lines["unit_price"][r]]),
        "ts": ts,                # minutes since `start`: the order date as exported
        "entry_ts": ts.copy(),   # when the row was entered (sort key; differs for date typos)
    }
    rows["amount"] = np.round(rows["quantity"] * rows["unit_price"], 2)
    # an order with a returned line is never a target for dirt (keeps every kind unambiguous)
    has_return = np.zeros(orders.cust.size, bool)
    has_return[ro] = True
    rows["order_has_return"] = has_return[both]
    rows["order_lines"] = np.bincount(o, minlength=orders.cust.size)[both]
    return rows


OUTPUT_ROW_FIELDS = ("order", "cust", "is_return", "product", "category", "channel",
                     "quantity", "unit_price", "amount", "ts")


def _plant_transaction_dirt(rng: np.random.Generator, rows: Arrays, rates: Mapping[str, float],
                            dates: pd.DatetimeIndex, n_guest: int) -> tuple[Arrays, dict[str, int]]:
    """Plant each kind of transaction dirt on disjoint clean organic rows; count exactly.

    Returns the rows in export order (entry time, order number, purchase before return; a
    duplicate follows the lines of its order) and the planted count per kind.
    """
    n_rows = rows["order"].size
    clean = (rows["kind"] == 0) & ~rows["is_return"] & ~rows["order_has_return"]
    day = rows["ts"] // 1440
    leap_day = (dates.month.to_numpy() == 2) & (dates.day.to_numpy() == 29)
    one_line = clean & (rows["order_lines"] == 1) & ~leap_day[np.minimum(day, len(dates) - 1)]
    counts = {"missing_customer_id": n_guest}

    pool = rng.permutation(np.flatnonzero(one_line))
    future = pool[:min(_dirt_count(rates["future_order_date"], n_rows), pool.size)]
    counts["future_order_date"] = future.size
    clean[future] = False
    pool = rng.permutation(np.flatnonzero(clean))
    chosen, offset = {}, 0
    for kind in ("zero_unit_price", "negative_unit_price", "quantity_outlier", "duplicate_rows"):
        chosen[kind] = pool[offset:offset + _dirt_count(rates[kind], n_rows)]
        counts[kind] = chosen[kind].size
        offset += chosen[kind].size

    rows["unit_price"][chosen["zero_unit_price"]] = 0.0
    neg = chosen["negative_unit_price"]
    rows["unit_price"][neg] = -rows["unit_price"][neg]
    rows["quantity"][chosen["quantity_outlier"]] *= QUANTITY_TYPO_FACTOR
    touched = np.concatenate([chosen["zero_unit_price"], neg, chosen["quantity_outlier"]])
    rows["amount"][touched] = np.round(rows["quantity"][touched] * rows["unit_price"][touched], 2)
    if future.size:
        stamp = pd.Timestamp(dates[0]) + pd.to_timedelta(rows["ts"][future], unit="min")
        typo = pd.to_datetime(pd.DataFrame({
            "year": FUTURE_YEAR, "month": stamp.month, "day": stamp.day,
            "hour": stamp.hour, "minute": stamp.minute}))
        rows["ts"][future] = ((typo - pd.Timestamp(dates[0])) // pd.Timedelta(minutes=1)).to_numpy()
    keep = np.concatenate([np.arange(n_rows), chosen["duplicate_rows"]])
    n_orders = int(rows["order"].max()) + 1 if n_rows else 1
    key = (rows["entry_ts"][keep] * (2 * n_orders) + rows["order"][keep] * 2
           + rows["is_return"][keep])
    keep = keep[np.argsort(key, kind="stable")]
    return {f: rows[f][keep] for f in OUTPUT_ROW_FIELDS}, counts


def _transactions_frame(rows: Arrays, cust_ids: pa.Array, n_orders: int, start: pd.Timestamp,
                        n_products: int) -> pd.DataFrame:
    """Canonical transactions frame from the row arrays."""
    width = max(7, len(str(n_orders)))
    order_ids = _ids("O", np.arange(1, n_orders + 1), width)
    labels = pa.concat_arrays([order_ids, pc.binary_join_element_wise("C", order_ids, "")])
    stamp = np.datetime64(start.to_datetime64(), "m") + rows["ts"].astype("timedelta64[m]")
    frame = pd.DataFrame({
        "customer_id": _as_string(rows["cust"], cust_ids),
        "order_date": stamp.astype("datetime64[ns]"),
        "order_id": _as_string(rows["order"] + n_orders * rows["is_return"], labels),
        "amount": rows["amount"],
        "quantity": rows["quantity"],
        "unit_price": rows["unit_price"],
        "product_id": _as_string(rows["product"], _ids("P", np.arange(1, n_products + 1), 5)),
        "category": _as_string(rows["category"], CATEGORIES),
        "channel": _as_string(rows["channel"], CHANNELS),
    })
    return frame.astype(TRANSACTIONS.dtypes)


def _customers_frame(rng: np.random.Generator, seg: np.ndarray, names: Sequence[str],
                     signup_day: np.ndarray, in_wave: np.ndarray, chan_cum: np.ndarray,
                     consent: np.ndarray, profiles: Profiles, cust_ids: pa.Array,
                     dates: pd.DatetimeIndex, end: pd.Timestamp) -> pd.DataFrame:
    """Canonical customers frame: demographics, acquisition and channel preference."""
    n = seg.size
    country_p = np.array([c[2] for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), n, p=country_p / country_p.sum())
    region_names = sorted({c[1] for c in COUNTRIES})
    region = np.array([region_names.index(c[1]) for c in COUNTRIES])[country]
    acquisition = _choose(rng, _cum_probs(profiles["acquisition_mix"]), seg)
    paid_social = ACQUISITION_CHANNELS.index("paid_social")
    acquisition = np.where(in_wave & (rng.random(n) < 0.6), paid_social, acquisition)
    # preferred channel: the customer's most likely channel (stated in the profile)
    chan_p = np.diff(chan_cum, axis=1, prepend=0.0)
    preferred = chan_p.argmax(axis=1)
    birth = np.rint(rng.normal(profiles["birth_year_mean"][seg], 12.0))
    birth = np.clip(birth, end.year - 85, end.year - 18)
    birth_missing = rng.random(n) < 0.04
    age = end.year - birth
    band = np.searchsorted(np.array([25, 35, 45, 55, 65]), age, side="right")
    band = np.where(birth_missing, -1, band)
    gender_p = np.array([g[1] for g in GENDERS])
    gender = rng.choice(len(GENDERS), n, p=gender_p)
    gender = np.where(gender == len(GENDERS) - 1, -1, gender)
    frame = pd.DataFrame({
        "customer_id": _as_string(np.arange(n), cust_ids),
        "signup_date": dates.to_numpy()[signup_day],
        "country": _as_string(country, [c[0] for c in COUNTRIES]),
        "region": _as_string(region, region_names),
        "acquisition_channel": _as_string(acquisition, ACQUISITION_CHANNELS),
        "preferred_channel": _as_string(preferred, CHANNELS),
        "email_opt_in": consent,
        "birth_year": pd.array(np.where(birth_missing, np.nan, birth), dtype="Float64").astype("Int64"),
        "age_band": _as_string(band, AGE_BANDS),
        "gender": _as_string(gender, [g[0] for g in GENDERS[:-1]]),
    })
    return frame.astype(CUSTOMERS.dtypes)


def _campaign_frame(rng: np.random.Generator, blocks: list[Arrays], send_days: np.ndarray,
                    dates: pd.DatetimeIndex, conversion_value: np.ndarray, cust_ids: pa.Array,
                    rates: Mapping[str, float], control_share: float,
                    width: int) -> tuple[pd.DataFrame, int]:
    """Canonical campaign frame; revenue = gross value of the conversion order (0 otherwise).

    ``conversion_value`` holds the value of each conversion order in the order the campaign
    blocks list their converted rows (campaign by campaign, recipients in id order).
    """
    columns = ["campaign", "cust", "control", "delivered", "opened", "clicked", "converted", "unsubscribed"]
    if not blocks:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in CAMPAIGN.dtypes.items()}), 0
    b = {c: np.concatenate([blk[c] for blk in blocks]) for c in columns}
    revenue = np.zeros(b["cust"].size)
    revenue[b["converted"]] = conversion_value
    n = len(cust_ids)
    # unknown customers: ids beyond the customers table (deleted accounts, CRM mismatch)
    k = _dirt_count(rates["campaign_unknown_customer"], b["cust"].size)
    u_control = rng.random(k) < control_share
    u_deliv = ~u_control & (rng.random(k) < DELIVERY_RATE)
    u_open = u_deliv & (rng.random(k) < 0.25)
    u_conv = rng.random(k) < 0.04
    u = {
        "campaign": rng.integers(0, len(send_days), k), "cust": n + np.arange(k), "control": u_control,
        "delivered": u_deliv, "opened": u_open, "clicked": u_open & (rng.random(k) < 0.2),
        "converted": u_conv, "unsubscribed": u_deliv & (rng.random(k) < 0.005),
    }
    u_revenue = np.where(u_conv, np.round(np.exp(rng.normal(3.8, 0.8, k)), 2), 0.0)
    b = {c: np.concatenate([b[c], u[c]]) for c in columns}
    revenue = np.concatenate([revenue, u_revenue])
    all_ids = pa.concat_arrays([cust_ids, _ids("C", np.arange(n + 1, n + k + 1), width)])
    sent = dates.to_numpy()[send_days] + np.timedelta64(SEND_MINUTE, "m")
    labels = [f"EM-{pd.Timestamp(t):%Y%m%d}" for t in sent]
    frame = pd.DataFrame({
        "campaign_id": _as_string(b["campaign"], labels),
        "customer_id": _as_string(b["cust"], all_ids),
        "arm": _as_string(np.where(b["control"], 0, 1), [CONTROL_ARM, EMAIL_ARM]),
        "sent_at": sent[b["campaign"]].astype("datetime64[ns]"),
        "delivered": b["delivered"], "opened": b["opened"], "clicked": b["clicked"],
        "converted": b["converted"], "revenue": revenue, "unsubscribed": b["unsubscribed"],
        "cost": np.where(b["control"], 0.0, EMAIL_COST),
    })
    frame = frame.sort_values(["campaign_id", "customer_id"], kind="stable", ignore_index=True)
    return frame.astype(CAMPAIGN.dtypes), k


def _truth_frame(seg: np.ndarray, names: Sequence[str], rate: np.ndarray, buyers: np.ndarray,
                 life: Arrays, n_days: int, dates: pd.DatetimeIndex,
                 cust_ids: pa.Array) -> pd.DataFrame:
    """Planted truth per customer: segment, rate, churn/reactivation dates, ITT uplift."""
    n = seg.size
    final = np.full(n, np.inf)
    final[buyers] = life["final_death"]
    react = np.full(n, np.inf)
    react[buyers] = np.where(life["reactivated"], life["react"], np.inf)
    day0 = dates[0].to_datetime64().astype("datetime64[D]")

    def as_date(x: np.ndarray) -> np.ndarray:
        out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        ok = x < n_days
        out[ok] = (day0 + np.floor(x[ok]).astype("timedelta64[D]")).astype("datetime64[ns]")
        return out

    alive = pd.array(final >= n_days, dtype="boolean")
    alive[seg == 0] = pd.NA
    effect = np.array([SEGMENTS.get(k, PROSPECT_PROFILE).email_effect for k in names])
    frame = pd.DataFrame({
        "customer_id": _as_string(np.arange(n), cust_ids),
        "latent_segment": _as_string(seg, names),
        "purchase_rate": np.round(rate, 4),
        "churn_date": as_date(final),
        "reactivation_date": as_date(react),
        "alive_at_end": alive,
        "true_uplift": np.round(DELIVERY_RATE * effect[seg], 6),
    })
    return frame.astype(TRUTH_DTYPES)


# --------------------------------------------------------------------------- files


def write_sample(folder: str | Path, shop: GeneratedShop) -> dict[str, Path]:
    """Write a generated shop as ``transactions.csv, customers.csv, campaign.csv, truth.csv, dirt.json``.

    CSVs have canonical column names, ISO dates (``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS``),
    ``\\n`` line ends and deterministic float formatting: the same shop gives the same bytes.

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing files of these names are replaced (atomically).
    shop : GeneratedShop
        From :func:`generate_shop`.

    Returns
    -------
    dict of str to Path
        File per table name (``transactions``, ``customers``, ``campaign``, ``truth``, ``dirt``).

    Examples
    --------
    >>> import tempfile
    >>> paths = write_sample(tempfile.mkdtemp(), generate_shop(200, seed=3))
    >>> sorted(p.name for p in paths.values())
    ['campaign.csv', 'customers.csv', 'dirt.json', 'transactions.csv', 'truth.csv']
    """
    folder = Path(folder)
    paths = {name: folder / f"{name}.csv" for name in ("transactions", "customers", "campaign", "truth")}
    for name, path in paths.items():
        write_frame(path, getattr(shop, name))
    paths["dirt"] = folder / "dirt.json"
    atomic_write_text(paths["dirt"], dumps_json(shop.dirt))
    return paths


def _sample_folder(folder: str | Path | None) -> Path:
    path = Path(folder) if folder is not None else project_root() / SAMPLE_DIR
    if not (path / "transactions.csv").is_file():
        raise DataError(
            f"{path}: no bundled sample found (transactions.csv missing). Regenerate it with "
            "`python -m segkit.data.datasets --out data/sample`.")
    return path


def _read_csv_typed(path: Path, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Read a CSV written by :func:`write_sample` and coerce to ``dtypes`` (the truth table,
    which is not a canonical input table of :mod:`segkit.data.io`)."""
    dates = [c for c, d in dtypes.items() if d.startswith("datetime")]
    frame = pd.read_csv(path, dtype={c: d for c, d in dtypes.items() if c not in dates},
                        parse_dates=dates, keep_default_na=True)
    return frame.astype({c: dtypes[c] for c in frame.columns if c in dtypes})


def load_sample(folder: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Load the bundled sample (``data/sample``) as canonical tables plus the planted truth.

    Parameters
    ----------
    folder : str or Path, optional
        A folder written by :func:`write_sample`; default the bundled ``data/sample``.

    Returns
    -------
    dict
        ``transactions``, ``customers``, ``campaign`` (read with :func:`segkit.data.io.load_table`:
        canonical and validated, dirt included) and ``truth``.

    Raises
    ------
    DataError
        The folder holds no sample.

    Examples
    --------
    >>> tables = load_sample()
    >>> sorted(tables)
    ['campaign', 'customers', 'transactions', 'truth']
    >>> str(tables["transactions"]["order_date"].dtype)
    'datetime64[ns]'
    """
    path = _sample_folder(folder)
    out = {spec.name: load_table(path / f"{spec.name}.csv", spec.name)
           for spec in (TRANSACTIONS, CUSTOMERS, CAMPAIGN)}
    out["truth"] = _read_csv_typed(path / "truth.csv", TRUTH_DTYPES)
    return out


def sample_dirt(folder: str | Path | None = None) -> dict[str, int]:
    """Planted dirt counts of the bundled sample (``dirt.json``).

    Examples
    --------
    >>> sorted(sample_dirt()) == sorted(DIRT_KINDS)
    True
    """
    return json.loads((_sample_folder(folder) / "dirt.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- CDNOW

CDNOW_FILES = {"sample": "CDNOW_sample.txt", "master": "CDNOW_master.txt"}


def load_cdnow(which: str = "sample") -> pd.DataFrame:
    """The CDNOW transaction log, as canonical transactions.

    ``sample`` ships with segkit (``segkit/resources/cdnow``: a copy of the file in ``lifetimes``,
    MIT); ``master`` is read from an installed ``lifetimes`` (a dev dependency).

    CDNOW (Fader, Hardie & Lee 2005) lists CD purchases of a cohort of customers who first
    bought in Q1 1997, observed until June 1998. ``master`` has all 23,570 customers;
    ``sample`` 2,357 of them (the data of the BG/NBD paper). Raw lines are whitespace
    separated: customer id, (sample only: a second, sample-internal id), date ``YYYYMMDD``,
    number of CDs, dollar value.

    Parameters
    ----------
    which : {"sample", "master"}
        Which file to read.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (the master id, zero-padded as in the file, so sample and master
        ids agree), ``order_date``, ``order_id`` (``<customer_id>-<n>``, the customer's n-th
        row; each row is one order), ``amount`` (dollars), ``quantity`` (CDs), in file order.

    Raises
    ------
    ConfigError
        ``which`` is not ``"sample"`` or ``"master"``.
    DataError
        ``master`` without ``lifetimes`` installed.

    Examples
    --------
    >>> cd = load_cdnow()
    >>> cd["customer_id"].nunique(), len(cd)
    (2357, 6919)
    >>> cd.iloc[0].tolist()[:2]
    ['00004', Timestamp('1997-01-01 00:00:00')]
    """
    if which not in CDNOW_FILES:
        raise ConfigError(f"load_cdnow: which must be 'sample' or 'master', got {which!r}.")
    if which == "sample":  # shipped with segkit (segkit/resources/cdnow/README.md: source and licence)
        source = resources.files("segkit").joinpath("resources", "cdnow", CDNOW_FILES[which])
    else:
        try:
            with warnings.catch_warnings():  # lifetimes sets a (pandas 3: no-op) option at import
                warnings.filterwarnings("ignore", message=".*chained_assignment.*")
                source = resources.files("lifetimes").joinpath("datasets", CDNOW_FILES[which])
        except ModuleNotFoundError:
            raise DataError("load_cdnow('master') reads the full CDNOW log from the `lifetimes` package, which "
                            "is not installed: pip install -e '.[dev]' (or pip install lifetimes). "
                            "load_cdnow('sample') needs nothing extra.") from None
    with resources.as_file(source) as path:
        raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, comment=None)
    if not raw.iloc[0, 0].strip().isdigit():  # master has a header line
        raw = raw.iloc[1:].reset_index(drop=True)
    raw = raw.iloc[:, [0, -3, -2, -1]]
    raw.columns = ["customer_id", "date", "quantity", "amount"]
    customer = raw["customer_id"].astype("string")
    seq = customer.groupby(customer, sort=False).cumcount() + 1
    frame = pd.DataFrame({
        "customer_id": customer,
        "order_date": pd.to_datetime(raw["date"], format="%Y%m%d"),
        "order_id": customer + "-" + seq.astype("string"),
        "amount": raw["amount"].astype("float64"),
        "quantity": raw["quantity"].astype("float64"),
    })
    return frame.astype({c: TRANSACTIONS.dtypes[c] for c in frame.columns})


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segkit.data.datasets --out data/sample``: generate and write a sample shop.

    With ``--online-retail``: an export in the UCI Online Retail layout with its truth
    (:func:`segkit.data.online_retail.generate_online_retail`; default period 2010-12-01 to
    2011-12-09), read by a copy of ``data/configs/online_retail_ii.yml`` placed in ``--out``.
    """
    parser = argparse.ArgumentParser(prog="python -m segkit.data.datasets", description=main.__doc__)
    parser.add_argument("--out", default=str(SAMPLE_DIR), help="output folder (default data/sample)")
    parser.add_argument("--customers", type=int, default=3000, help="number of customers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default=None, help="first day (default 2023-01-01; 2010-12-01 with --online-retail)")
    parser.add_argument("--end", default=None, help="last day (default 2024-12-31; 2011-12-09 with --online-retail)")
    parser.add_argument("--online-retail", action="store_true",
                        help="write an Online-Retail-like export with planted truth instead of the sample shop")
    args = parser.parse_args(argv)
    if args.online_retail:
        export = generate_online_retail(args.customers, seed=args.seed, start=args.start or "2010-12-01",
                                        end=args.end or "2011-12-09")
        paths = write_online_retail(args.out, export)
        print(f"wrote {len(export.lines)} lines of {export.planted['customers_in_export']} customers to "
              f"{paths['lines']} (truth: {', '.join(p.name for k, p in paths.items() if k != 'lines')})")
        return 0
    args.start, args.end = args.start or "2023-01-01", args.end or "2024-12-31"
    shop = generate_shop(args.customers, seed=args.seed, start=args.start, end=args.end)
    paths = write_sample(args.out, shop)
    print(f"wrote {len(shop.transactions)} transaction rows, {len(shop.customers)} customers, "
          f"{len(shop.campaign)} campaign rows to {Path(args.out)} ({', '.join(p.name for p in paths.values())})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
