"""Exact order statistics of one value per customer (or per event), held bounded: segkit's one such type.

What the driver-side fits read of a column's distribution: the RFM score bounds and the tiers
(:mod:`segkit.rfm`), the lifecycle stage thresholds (higher quantiles,
:class:`segkit.lifecycle.StageDistributions`), Gamma-Gamma's money scale and the feature builder's medians
(:meth:`ValueDistribution.median`). :func:`condense` merges repeated rows of count tables (the CLV patterns too).

:func:`segkit.rfm.balanced_edges` (score bounds) and :class:`segkit.rfm.LoyaltyTiers` (percentile tiers)
need of a column only its **sorted distinct values with the number of customers below each** — and, once
there are many distinct values, only the few of them next to known **customer positions** (the cut
candidates near every ``n/GRID``-th customer and the ideal quantiles ``n·k/bins``; a tier's share
``(min − SHARE_TOLERANCE)·n``). :class:`ValueDistribution` holds exactly that: ``n`` customers, ``m``
distinct values, and a subset of the distinct values (all of them: ``complete``) with their global index,
customers below and customers at the value. :class:`DistributionNeeds` says which rows a fit needs, so
the producer (numpy here, Spark executors in :mod:`segkit.data.spark_ranks`) and the fit on the driver
agree; :func:`rows_near` is the one selection rule both producers apply. A fit that reads order statistics
(:meth:`ValueDistribution.value_at`, :meth:`~ValueDistribution.higher_quantile`,
:meth:`~ValueDistribution.median`) asks for their positions (``DistributionNeeds(quantiles=..., median=True)``);
a distribution counted elsewhere (``groupBy(value).count()``) is read with :meth:`ValueDistribution.of_counts`.

Pure numpy: no Spark, no analysis imported.

Examples
--------
>>> d = ValueDistribution.of_values([3.0, 1.0, 1.0, 2.0, 3.0, 3.0])
>>> d.n, d.m, d.complete, d.values.tolist(), d.below.tolist(), d.counts.tolist()
(6, 3, True, [1.0, 2.0, 3.0], [0, 2, 3], [2, 1, 3])
>>> d.higher_quantile(0.5), d.median(), d.value_at(1)
(3.0, 2.5, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from segkit.core.errors import DataError

__all__ = ["MAX_EXACT_CANDIDATES", "GRID", "SHARE_TOLERANCE", "POSITION_SLACK", "edge_positions",
           "share_positions", "higher_position", "median_positions", "linear_positions", "DistributionNeeds", "rows_near", "condense",
           "whole_counts", "exact_sums", "exact_sum", "exact_square_sums", "exact_variance", "exact_mean", "exact_ratio", "exact_float", "above_sums",
           "ValueDistribution"]

MAX_EXACT_CANDIDATES = 1024  # distinct values up to which the balanced cut search is exact
GRID = 512  # otherwise: candidate cuts near every 1/GRID of the customers
#: A tier's share ``min`` is reached by the first value with ``customers below / n >= min - SHARE_TOLERANCE``
#: (so that 0.6 of 5 customers is 3 customers despite float rounding).
SHARE_TOLERANCE = 1e-12
#: Rows are kept when a needed position is within this many customers of them: the producer's float
#: positions and the fit's comparisons may round differently, an extra row is harmless, a missing one is not.
POSITION_SLACK = 1.0


def edge_positions(n: int, bins: int) -> npt.NDArray[np.float64]:
    """Customer positions next to which :func:`segkit.rfm.balanced_edges` looks for cuts (above
    :data:`MAX_EXACT_CANDIDATES` distinct values): every ``n/GRID``-th customer, then the ideal quantiles
    ``n·k/bins``.

    Examples
    --------
    >>> edge_positions(1024, 4)[[0, 1, -3, -2, -1]].tolist()
    [2.0, 4.0, 256.0, 512.0, 768.0]
    """
    return np.concatenate([n * np.arange(1, GRID) / GRID, n * np.arange(1, bins) / bins])


def share_positions(n: int, shares: Sequence[float]) -> npt.NDArray[np.float64]:
    """Customer positions of percentile tiers with these ``min`` shares: ``(min − SHARE_TOLERANCE)·n``.

    Examples
    --------
    >>> share_positions(1000, [0.5]).round(6).tolist()
    [500.0]
    """
    return (np.asarray(shares, dtype="float64") - SHARE_TOLERANCE) * n


def higher_position(n: int, q: float) -> int:
    """0-based position of ``numpy.quantile(values, q, method="higher")`` among ``n`` sorted values:
    ``ceil((n - 1) q)``, numpy's own formula.

    Examples
    --------
    >>> higher_position(100, 0.9), higher_position(1, 0.5)
    (90, 0)
    """
    return int(np.ceil((n - 1) * q))


def median_positions(n: int) -> tuple[int, int]:
    """0-based positions of the two middle values of ``n`` sorted values (equal when ``n`` is odd).

    Examples
    --------
    >>> median_positions(5), median_positions(4)
    ((2, 2), (1, 2))
    """
    return (n - 1) // 2, n // 2


def linear_positions(n: int, q: float) -> tuple[int, int]:
    """0-based positions of the two sorted values that ``numpy.quantile(values, q)`` (linear, pandas'
    default) interpolates between, of ``n`` values (:meth:`ValueDistribution.linear_quantile`).

    Examples
    --------
    >>> linear_positions(101, 0.99), linear_positions(1, 0.99)
    ((99, 100), (0, 0))
    """
    low = int(np.floor((n - 1) * q))
    return low, min(low + 1, n - 1)


@dataclass(frozen=True)
class DistributionNeeds:
    """What fits need of one column's distribution: the score bounds for ``bins`` levels (None: not
    scored), the percentile tiers with these ``shares`` (empty: no tiers on this column), the "higher"
    ``quantiles`` (:meth:`ValueDistribution.higher_quantile`) and the ``median``.

    Examples
    --------
    >>> needs = DistributionNeeds(bins=5, shares=(0.9, 0.5))
    >>> needs.every_value(1025), needs.every_value(1026), len(needs.positions(10_000))
    (True, False, 517)
    >>> DistributionNeeds(shares=(0.5,)).merge(DistributionNeeds(bins=3)).bins
    3
    >>> DistributionNeeds(quantiles=(0.9,), median=True).positions(101).tolist()
    [50.0, 90.0]
    """

    bins: int | None = None
    shares: tuple[float, ...] = ()
    max_exact: int = MAX_EXACT_CANDIDATES
    quantiles: tuple[float, ...] = ()
    median: bool = False
    #: Further 0-based customer positions whose values are read (:meth:`ValueDistribution.value_at`), e.g. the
    #: two order statistics of a linear quantile or the k-th largest values of a Pareto curve.
    at: tuple[int, ...] = ()

    def every_value(self, m: int) -> bool:
        """Whether a column with ``m`` distinct values needs all of them (the exact cut search, or
        fewer distinct values than bins)."""
        return m - 1 <= self.max_exact or (self.bins is not None and m <= self.bins)

    def positions(self, n: int) -> npt.NDArray[np.float64]:
        """The customer positions whose neighbouring distinct values the fits read (sorted, unique)."""
        parts = [share_positions(n, self.shares), [higher_position(n, q) for q in self.quantiles]]
        if self.bins is not None:
            parts.append(edge_positions(n, self.bins))
        if self.median and n:
            parts.append(median_positions(n))
        parts.append([p for p in self.at if 0 <= p < n])
        return np.unique(np.concatenate(parts).astype("float64"))

    def merge(self, other: "DistributionNeeds") -> "DistributionNeeds":
        """The needs of a column that serves both fits (e.g. ``monetary_total``: scored and tiered)."""
        if self.bins is not None and other.bins is not None and self.bins != other.bins:
            raise DataError(f"One column scored with {self.bins} and with {other.bins} levels: "
                            "fit one scorer per column.")
        return DistributionNeeds(bins=self.bins if self.bins is not None else other.bins,
                                 shares=tuple(sorted(set(self.shares) | set(other.shares))),
                                 max_exact=min(self.max_exact, other.max_exact),
                                 quantiles=tuple(sorted(set(self.quantiles) | set(other.quantiles))),
                                 median=self.median or other.median,
                                 at=tuple(sorted(set(self.at) | set(other.at))))


def rows_near(below: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], previous_count: int,
              positions: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which of consecutive distinct values (ascending) the fits need: those whose span from the previous
    value's first customer to the next value's first customer, ``[below − previous count, below + count]``,
    holds a position within :data:`POSITION_SLACK`.

    That keeps, for every position ``p``, the last value with fewer than ``p`` customers below and the first
    with at least ``p`` (the pair any "first value reaching p" search needs, with its proof of being first),
    at most five values per position. The rule reads each value's own row plus one number from before it
    (``previous_count``: the customers at the value just before ``below[0]``, 0 for the first value), so a
    Spark partition can apply it alone.

    Parameters
    ----------
    below, counts : ndarray of int
        Customers below each value and at it, for consecutive distinct values in ascending order.
    previous_count : int
        Customers at the distinct value just before the first one here (0 if there is none).
    positions : ndarray of float
        Sorted needed positions (:meth:`DistributionNeeds.positions`).

    Examples
    --------
    >>> rows_near(np.array([0, 2, 3, 6]), np.array([2, 1, 3, 1]), 0, np.array([4.5])).tolist()
    [False, False, True, True]
    """
    below = np.asarray(below, dtype="int64")
    counts = np.asarray(counts, dtype="int64")
    previous = np.concatenate([[previous_count], counts[:-1]]).astype("int64")
    low = (below - previous).astype("float64") - POSITION_SLACK
    high = (below + counts).astype("float64") + POSITION_SLACK
    first_at_or_above_low = np.searchsorted(positions, low, side="left")  # a position p with low <= p <= high?
    return (first_at_or_above_low < len(positions)) & (
        np.asarray(positions)[np.minimum(first_at_or_above_low, len(positions) - 1)] <= high)


def condense(columns: Sequence[Any], customers: Any = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of ``columns`` in sorted order and how many customers each holds.

    Rows are sorted as ``np.unique(axis=0)`` sorts them (first column first) and equal rows are
    merged, their ``customers`` summed (1 per row when not given); ``-0.0`` is read as ``0.0`` (Spark's
    ``groupBy`` merges them, so a count table from Spark has only ``0.0``). A table that lists a row twice
    (as partial counts from several partitions may) or in any order therefore condenses to the same
    arrays as the customer-level columns: what makes a fit from a count table equal to the fit from
    the customers.

    Parameters
    ----------
    columns : sequence of array_like
        Equal-length columns (compared as floats).
    customers : array_like of int, optional
        Customers per row (default 1 each).

    Returns
    -------
    (list of ndarray, ndarray)
        The distinct rows' columns (float) and their customers (int64).

    Examples
    --------
    >>> values, counts = condense([[2.0, 0.0, 2.0], [5.0, 1.0, 5.0]], [3, 1, 2])
    >>> [v.tolist() for v in values], counts.tolist()
    ([[0.0, 2.0], [1.0, 5.0]], [1, 5])
    """
    arrays = [np.asarray(c, dtype=float).ravel() + 0.0 for c in columns]  # -0.0 is 0.0, as Spark's groupBy has it
    n = len(arrays[0])
    if len(arrays) == 1 and customers is None:  # one value per customer: sorting the values alone is enough
        values = np.sort(arrays[0])           # (as np.unique does; twice as fast as the ordering below)
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if n else np.zeros(0, np.int64)
        return [values[starts]], np.diff(np.append(starts, n)).astype(np.int64)
    counts = np.ones(n, dtype=np.int64) if customers is None else np.asarray(customers, dtype=np.int64).ravel()
    order = np.lexsort(arrays[::-1])  # sorted as np.unique(axis=0) sorts, several times faster
    arrays = [a[order] for a in arrays]
    first = np.ones(n, dtype=bool)
    for a in arrays:
        first[1:] &= a[1:] == a[:-1]
    first[1:] = ~first[1:]  # a row starts a group where any column differs from the row before
    starts = np.flatnonzero(first)
    totals = np.add.reduceat(counts[order], starts) if n else np.zeros(0, dtype=np.int64)
    return [a[starts] for a in arrays], totals.astype(np.int64)


def whole_counts(counts: Any, what: str, name: str = "count", rows: Sequence[Any] | None = None
                 ) -> npt.NDArray[np.int64]:
    """Customer counts as int64, checked: each a whole number of at least 1 (text numbers read as numbers).

    Parameters
    ----------
    counts : array_like
        One count per row of a count table.
    what, name : str
        The table and the count column, for the message.
    rows : sequence, optional
        Labels of the rows (default 0, 1, …), for the message.

    Raises
    ------
    DataError
        Counts that are missing, not whole, or below 1; the message names the first rows.

    Examples
    --------
    >>> whole_counts([2, 1.0], "gaps").tolist()
    [2, 1]
    """
    raw = pd.to_numeric(pd.Series(np.asarray(counts).reshape(-1)), errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(raw) | (raw < 1) | (raw != np.round(raw))
    if bad.any():
        labels = np.asarray(rows if rows is not None else np.arange(len(raw)))[bad][:5]
        raise DataError(f"{what}: {int(bad.sum())} row(s) of the count table have a {name!r} value that is not a "
                        f"whole number of at least 1, e.g. row(s) {', '.join(map(str, labels))}. Rebuild the table: "
                        "each row counts the customers with its value.")
    return raw.astype("int64")


#: Every finite float64 is a whole multiple of 2**-1074, and ``frexp``'s 53-bit mantissa of a subnormal one
#: of 2**-1126: :func:`exact_sums` counts in that unit.
_UNIT_BITS = 1126


def exact_sums(values: pd.DataFrame, groups: npt.ArrayLike, keys: Sequence[Any]) -> pd.DataFrame:
    """The exact sum of each column of ``values`` per group, as whole numbers of 2**-1126 (Python ints).

    Floating-point sums depend on the order of summation; these do not: sums of parts add up to the sum of
    the whole, bit for bit, so a mean over Spark partitions merged on the driver is the one-machine mean
    (:func:`exact_mean`: correctly rounded). Each value is split into its 53-bit mantissa (two 26/27-bit
    halves, summed in int64 per group and binary exponent) and its exponent; NaN is left out.

    Parameters
    ----------
    values : DataFrame
        Numeric columns (read as float64).
    groups : array_like
        The group of each row (one of ``keys``).
    keys : sequence
        The groups, in the order of the result's index (a group without rows sums to 0).

    Returns
    -------
    DataFrame
        Index ``keys``, the columns of ``values``, object dtype (Python ints).

    Raises
    ------
    DataError
        A column holds ±inf (a float sum would show inf; an exact sum has no such value).
    ValueError
        A row's group is not among ``keys``.

    Examples
    --------
    >>> v = pd.DataFrame({"x": [0.1, 0.2, 0.3, 1e16, -1e16]})
    >>> s = exact_sums(v, np.array([1, 1, 1, 2, 2]), [1, 2])
    >>> exact_mean(s.loc[1, "x"], 3), exact_mean(s.loc[2, "x"], 2), float(np.mean([0.1, 0.2, 0.3]))
    (0.2, 0.0, 0.20000000000000004)
    """
    keys = list(keys)
    position = pd.Index(keys).get_indexer(np.asarray(groups))
    if (position < 0).any():
        unknown = pd.unique(np.asarray(groups)[position < 0])[:3].tolist()
        raise ValueError(f"exact_sums: rows of groups not among keys ({unknown}); pass every group as a key")
    out = pd.DataFrame(0, index=pd.Index(keys), columns=values.columns, dtype=object)
    for j, column in enumerate(values.columns):
        v = values[column].to_numpy(dtype="float64")
        keep = ~np.isnan(v) & (v != 0)
        if np.isinf(v[keep]).any():
            raise DataError(f"{column}: {int(np.isinf(v[keep]).sum()):,} infinite value(s) where a sum is shown; an "
                            "infinite amount, score or CLV cannot be summed. Check the input or the model that "
                            "produced it.")
        mantissa, exponent = np.frexp(v[keep])
        whole = np.ldexp(mantissa, 53).astype(np.int64)  # v = whole * 2**(exponent - 53), |whole| < 2**53
        high, low = whole >> 26, whole & ((1 << 26) - 1)
        summed = pd.DataFrame({"g": position[keep], "e": exponent, "high": high, "low": low}).groupby(
            ["g", "e"], sort=True)[["high", "low"]].sum()
        totals = [0] * len(keys)
        for (g, e), h, lo in zip(summed.index.tolist(), summed["high"].tolist(), summed["low"].tolist()):
            totals[g] += ((h << 26) + lo) << (e - 53 + _UNIT_BITS)
        for i, total in enumerate(totals):
            out.iat[i, j] = total
    return out


def exact_sum(values: npt.ArrayLike) -> int:
    """The exact sum of ``values`` (NaN left out) in whole 2**-1126 (:func:`exact_sums` of one group).

    Examples
    --------
    >>> exact_float(exact_sum([1e16, 1.0, -1e16])), float(sum([1e16, 1.0, -1e16]))
    (1.0, 0.0)
    """
    x = pd.DataFrame({"x": np.asarray(values, dtype="float64").reshape(-1)})
    return int(exact_sums(x, np.zeros(len(x), dtype="int64"), [0]).iat[0, 0])


def exact_square_sums(values: pd.DataFrame, groups: npt.ArrayLike, keys: Sequence[Any]) -> pd.DataFrame:
    """The exact sum of the squares of each column of ``values`` per group, as whole numbers of 2**-2252 (the
    square of :func:`exact_sums`' unit; Python ints): with :func:`exact_sums` and a count, the input of
    :func:`exact_variance`, additive over parts like them.

    Each value's 53-bit mantissa is split into halves ``h·2**26 + l``; ``h²``, ``h·l`` and ``l²`` are split
    again into 27-bit halves and summed in int64 per group and binary exponent (exact for up to 2**36 rows a
    group). NaN is left out; ±inf is refused as in :func:`exact_sums`.

    Examples
    --------
    >>> v = pd.DataFrame({"x": [0.1, 0.2, 0.3]})
    >>> q = exact_square_sums(v, np.array([1, 2, 2]), [1, 2])["x"]
    >>> q.sum() == exact_square_sums(v, np.zeros(3, int), [0]).iat[0, 0]
    True
    >>> exact_variance(exact_sum(v["x"]), q.sum(), 3)
    0.009999999999999998
    """
    keys = list(keys)
    exact_sums(values.iloc[:0], np.asarray(groups)[:0], keys)  # the same refusals (unknown groups below)
    position = pd.Index(keys).get_indexer(np.asarray(groups))
    if (position < 0).any():
        unknown = pd.unique(np.asarray(groups)[position < 0])[:3].tolist()
        raise ValueError(f"exact_square_sums: rows of groups not among keys ({unknown}); pass every group as a key")
    out = pd.DataFrame(0, index=pd.Index(keys), columns=values.columns, dtype=object)
    half = (1 << 27) - 1
    for j, column in enumerate(values.columns):
        v = values[column].to_numpy(dtype="float64")
        keep = ~np.isnan(v) & (v != 0)
        if np.isinf(v[keep]).any():
            raise DataError(f"{column}: {int(np.isinf(v[keep]).sum()):,} infinite value(s) where a sum of squares "
                            "is needed (a variance); an infinite amount cannot be summed. Check the input.")
        mantissa, exponent = np.frexp(np.abs(v[keep]))
        whole = np.ldexp(mantissa, 53).astype(np.int64)  # |v| = whole * 2**(exponent - 53), whole < 2**53
        high, low = whole >> 26, whole & ((1 << 26) - 1)  # < 2**27, < 2**26
        products = {"hh": high * high, "hl": high * low, "ll": low * low}  # < 2**54 each: int64
        parts = {"g": position[keep], "e": exponent}
        for name, p in products.items():
            parts[f"{name}1"], parts[f"{name}0"] = p >> 27, p & half
        columns = [c for c in parts if c not in ("g", "e")]
        summed = pd.DataFrame(parts).groupby(["g", "e"], sort=True)[columns].sum()
        totals = [0] * len(keys)
        for (g, e), row in zip(summed.index.tolist(), summed.itertuples(index=False)):
            hh, hl, ll = ((row[2 * i] << 27) + row[2 * i + 1] for i in range(3))
            # whole² = hh·2**52 + 2·hl·2**26 + ll, in units of 2**(2·(e - 53))
            totals[g] += ((hh << 52) + (hl << 27) + ll) << (2 * (e - 53 + _UNIT_BITS))
        for i, total in enumerate(totals):
            out.iat[i, j] = total
    return out


def exact_variance(total: int, squares: int, count: int, ddof: int = 1) -> float:
    """The variance of ``count`` values from their exact sum (:func:`exact_sums`) and exact sum of squares
    (:func:`exact_square_sums`), correctly rounded; NaN when ``count <= ddof``.

    Examples
    --------
    >>> v = pd.DataFrame({"x": [1e8 + 1, 1e8 + 2, 1e8 + 3]})
    >>> g = np.zeros(3, int)
    >>> exact_variance(exact_sums(v, g, [0]).iat[0, 0], exact_square_sums(v, g, [0]).iat[0, 0], 3)
    1.0
    """
    from fractions import Fraction

    count = int(count)
    if count <= ddof:
        return float("nan")
    spread = count * int(squares) - int(total) * int(total)  # n·Σx² − (Σx)², in 2**-2252
    return float(Fraction(spread, (count * (count - ddof)) << (2 * _UNIT_BITS)))


def exact_mean(total: int, count: int) -> float:
    """``total`` (whole 2**-1126, :func:`exact_sums`) divided by ``count``, correctly rounded (NaN for no rows).

    Examples
    --------
    >>> exact_mean(exact_sum([0.1, 0.2, 0.3]), 3), exact_mean(0, 0)
    (0.2, nan)
    """
    from fractions import Fraction

    return float(Fraction(int(total), int(count) << _UNIT_BITS)) if count else float("nan")


def exact_ratio(numerator: int, denominator: int) -> float:
    """The quotient of two exact sums (:func:`exact_sums`, same unit), correctly rounded (NaN when
    ``denominator`` is 0): a share of a total.

    Examples
    --------
    >>> exact_ratio(exact_sum([0.1]), exact_sum([0.1, 0.2])), exact_ratio(1, 0)
    (0.3333333333333333, nan)
    """
    from fractions import Fraction

    return float(Fraction(int(numerator), int(denominator))) if denominator else float("nan")


def exact_float(total: int) -> float:
    """An exact sum (:func:`exact_sums`) as the nearest float.

    Examples
    --------
    >>> exact_float(exact_sum([1e16, 1.0, -1e16])), float(sum([1e16, 1.0, -1e16]))
    (1.0, 0.0)
    """
    return exact_mean(total, 1)


def above_sums(money: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold, the customers whose ``money`` is above it and the exact sum of their money (Python
    ints, :func:`exact_sums`): additive over parts (the Pareto curve of :mod:`segkit.rfm`, the CLV tails of
    :mod:`segkit.lifecycle`).

    Examples
    --------
    >>> count, total = above_sums(np.array([1e16, 1.0, -1e16, 5.0]), np.array([-2e16, 0.0]))
    >>> count.tolist(), [exact_mean(t, 1) for t in total], float(np.sum([1e16, 1.0, -1e16, 5.0]))
    ([4, 3], [6.0, 1.0000000000000006e+16], 5.0)
    """
    money = np.asarray(money, dtype="float64")
    thresholds = np.asarray(thresholds, dtype="float64")
    distinct = np.unique(thresholds)
    bucket = np.searchsorted(distinct, money, side="left")  # thresholds below each value
    keys = np.arange(len(distinct) + 1)
    sums = exact_sums(pd.DataFrame({"m": money}), bucket, keys)["m"].tolist()
    counts = np.bincount(bucket, minlength=len(keys))
    suffix_sum, suffix_count = [0] * (len(keys) + 1), [0] * (len(keys) + 1)
    for b in range(len(keys) - 1, -1, -1):
        suffix_sum[b], suffix_count[b] = suffix_sum[b + 1] + sums[b], suffix_count[b + 1] + int(counts[b])
    at = np.searchsorted(distinct, thresholds) + 1  # above threshold j: the buckets after j's
    return (np.array([suffix_count[i] for i in at], dtype="int64"),
            np.array([suffix_sum[i] for i in at], dtype=object))


def _frozen(values: object, dtype: str) -> np.ndarray:
    array = np.array(values, dtype=dtype).reshape(-1)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ValueDistribution:
    """The sorted distinct values of one per-customer column with customers below each, maybe a subset.

    Parameters
    ----------
    n : int
        Customers (rows of the column).
    m : int
        Distinct values of the column.
    index : ndarray of int
        Global rank (0..m−1) of each value held, ascending.
    values : ndarray of float
        The values held, ascending.
    below : ndarray of int
        Customers with a strictly lower value.
    counts : ndarray of int
        Customers with this value.
    column : str, optional
        The column described (checked by the fits that take a column name).

    Raises
    ------
    DataError
        The rows contradict each other (not ascending, counts not adding up): a producer's bug or a
        mixed-up input, never silently used.

    Examples
    --------
    The median tier of 100 customers with distinct values needs four rows, and proves its answer from them:

    >>> d = ValueDistribution.of_values(np.arange(100.0), DistributionNeeds(shares=(0.5,), max_exact=3))
    >>> d.complete, d.index.tolist(), d.first_reaching(d.below / d.n, [0.5 - SHARE_TOLERANCE]).tolist()
    (False, [48, 49, 50, 51], [50])
    """

    n: int
    m: int
    index: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    below: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    column: str | None = None

    def __post_init__(self) -> None:
        for name, dtype in (("index", "int64"), ("values", "float64"), ("below", "int64"), ("counts", "int64")):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "m", int(self.m))
        k = len(self.index)
        what = f"Value distribution of {self.column!r}" if self.column else "Value distribution"
        if not (len(self.values) == len(self.below) == len(self.counts) == k) or k > self.m:
            raise DataError(f"{what}: index, values, below and counts must be {min(k, self.m)} rows alike; got "
                            f"{k}, {len(self.values)}, {len(self.below)}, {len(self.counts)} (m = {self.m}).")
        adjacent = np.diff(self.index) == 1
        problems = [
            (k and (self.index[0] < 0 or self.index[-1] >= self.m), "index outside 0..m-1"),
            (np.any(np.diff(self.index) <= 0), "index not strictly ascending"),
            (np.any(np.diff(self.values) <= 0) or np.isnan(self.values).any(), "values not strictly ascending"),
            (np.any(self.counts < 1), "a count below 1"),
            (k and (self.below[0] < 0 or self.below[-1] + self.counts[-1] > self.n), "customers beyond n"),
            (np.any(np.diff(self.below) < self.counts[:-1]), "customers below not adding up"),
            (np.any(self.below[1:][adjacent] != (self.below + self.counts)[:-1][adjacent]),
             "customers below not adding up between neighbours"),
            (k and self.index[0] == 0 and self.below[0] != 0, "the lowest value has customers below"),
            (k and self.index[-1] == self.m - 1 and self.below[-1] + self.counts[-1] != self.n,
             "the highest value's customers do not end at n"),
            (k == 0 and (self.m > 0) != (self.n > 0), "m and n disagree"),
        ]
        wrong = [text for bad, text in problems if bad]
        if wrong:
            raise DataError(f"{what}: {'; '.join(wrong)}. Build it with ValueDistribution.of_values or "
                            "segkit.data.spark_ranks.value_distribution.")

    @property
    def complete(self) -> bool:
        """Whether every distinct value is held."""
        return len(self.index) == self.m

    @classmethod
    def of_values(cls, values: npt.ArrayLike, needs: DistributionNeeds | None = None,
                  column: str | None = None) -> "ValueDistribution":
        """The distribution of an array (one value per customer, no NaN): complete, or — with ``needs``
        that do not need every value — only the rows :func:`rows_near` keeps.

        Examples
        --------
        >>> d = ValueDistribution.of_values(np.repeat(np.arange(3000.0), 2), DistributionNeeds(bins=5))
        >>> d.n, d.m, d.complete, len(d.index) <= 5 * len(DistributionNeeds(bins=5).positions(d.n))
        (6000, 3000, False, True)
        """
        return cls.of_counts(values, None, needs, column)

    @classmethod
    def of_counts(cls, values: npt.ArrayLike, counts: npt.ArrayLike | None = None,
                  needs: DistributionNeeds | None = None, column: str | None = None) -> "ValueDistribution":
        """The distribution of ``values`` each held by ``counts`` customers (1 each when None).

        The rows may come in any order and repeat a value (partial counts of several partitions): what a
        ``groupBy(value).count()`` returns (:func:`segkit.data.spark_patterns.value_counts`), or a pattern
        table's column with its ``customers``. Rows are merged by :func:`condense`.

        Raises
        ------
        DataError
            A value is missing (NaN) or a count is not a whole number of at least 1; the message names
            the rows.

        Examples
        --------
        >>> d = ValueDistribution.of_counts([30.0, 7.0, 14.0, 7.0], [1, 1, 1, 1])
        >>> d == ValueDistribution.of_counts([7.0, 14.0, 30.0], [2, 1, 1]), d.values.tolist(), d.n
        (True, [7.0, 14.0, 30.0], 4)
        """
        x = np.asarray(values, dtype="float64").reshape(-1)
        what = f"Value distribution of {column!r}" if column else "Value distribution"
        c = None if counts is None else whole_counts(counts, what)
        if c is not None and len(c) != len(x):
            raise DataError(f"{what}: {len(c)} counts for {len(x)} values; pass one count per value.")
        if np.isnan(x).any():
            raise DataError(f"{what}: {int(np.isnan(x).sum())} value(s) are missing (NaN), e.g. row(s) "
                            f"{', '.join(map(str, np.flatnonzero(np.isnan(x))[:5]))}. Drop or fill them first.")
        (distinct,), totals = condense([x], c)
        below = np.concatenate([[0], np.cumsum(totals)[:-1]]).astype("int64")
        n = int(totals.sum())
        keep = np.arange(len(distinct))
        if needs is not None and not needs.every_value(len(distinct)):
            keep = np.flatnonzero(rows_near(below, totals, 0, needs.positions(n)))
        return cls(n=n, m=len(distinct), index=keep, values=distinct[keep], below=below[keep],
                   counts=totals[keep], column=column)

    def __eq__(self, other: object) -> bool:
        """Same column name, sizes and rows held."""
        if not isinstance(other, ValueDistribution):
            return NotImplemented
        return ((self.n, self.m, self.column) == (other.n, other.m, other.column)
                and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in ("index", "values", "below",
                                                                                        "counts")))

    __hash__ = None  # type: ignore[assignment]

    def value_at(self, position: int) -> float:
        """The value at 0-based ``position`` of the sorted values (each repeated by its customers).

        Raises
        ------
        DataError
            The position is outside ``0 … n − 1``, or the rows held do not cover it (the distribution
            was built for other needs).

        Examples
        --------
        >>> ValueDistribution.of_values([5.0, 1.0, 1.0]).value_at(2)
        5.0
        """
        p = int(position)
        if not 0 <= p < self.n:
            raise DataError(f"{self._what().capitalize()} has {self.n:,} values; there is no position {p}.")
        at = int(np.searchsorted(self.below, p, side="right")) - 1
        if at < 0 or self.below[at] + self.counts[at] <= p:
            raise DataError(f"{self._what().capitalize()} holds no row at position {p}: it was built for other "
                            "needs. Build it with DistributionNeeds that ask for this position (quantiles, median).")
        return float(self.values[at])

    def higher_quantile(self, q: float) -> float:
        """``numpy.quantile(values, q, method="higher")`` of the values (exact): the value at
        :func:`higher_position`.

        Raises
        ------
        DataError
            The distribution is empty, ``q`` is outside [0, 1], or its position is not held.
        """
        if self.n == 0:
            raise DataError(f"{self._what().capitalize()} is empty; there is no quantile.")
        if not 0 <= q <= 1:
            raise DataError(f"Quantile {q!r} of {self._what()}: it must lie between 0 and 1.")
        return self.value_at(higher_position(self.n, q))

    def median(self) -> float:
        """``numpy.median`` of the values (exact): the middle value, or the mean of the two middle values.

        Raises
        ------
        DataError
            The distribution is empty, or its middle positions are not held.
        """
        if self.n == 0:
            raise DataError(f"{self._what().capitalize()} is empty; there is no median.")
        low, high = median_positions(self.n)
        if low == high:
            return self.value_at(low)
        return float(np.mean(np.array([self.value_at(low), self.value_at(high)], dtype="float64")))

    def linear_quantile(self, q: float) -> float:
        """``Series.quantile(q)`` (linear interpolation, pandas' and numpy's default) of the values, exactly:
        numpy's own interpolation of the two order statistics at :func:`linear_positions` (held when they are
        among the needs' ``at`` positions, or near a ``quantiles`` position). ``q`` goes to numpy as pandas
        hands it over (a percentage divided by 100), so it equals pandas bit for bit; for the usual shares
        (0.5, 0.9, 0.99 …) that is ``numpy.quantile(values, q)`` too.

        Raises
        ------
        DataError
            The distribution is empty, ``q`` is outside [0, 1], or its positions are not held.

        Examples
        --------
        >>> values = np.array([1.0, 2.0, 4.0, 8.0, 100.0])
        >>> d = ValueDistribution.of_values(values, DistributionNeeds(at=linear_positions(5, 0.99)))
        >>> bool(d.linear_quantile(0.99) == pd.Series(values).quantile(0.99) == np.quantile(values, 0.99))
        True
        """
        if self.n == 0:
            raise DataError(f"{self._what().capitalize()} is empty; there is no quantile.")
        if not 0 <= q <= 1:
            raise DataError(f"Quantile {q!r} of {self._what()}: it must lie between 0 and 1.")
        q = float(np.true_divide(q * 100, 100))  # as pandas hands it to numpy (a percentage)
        low, high = linear_positions(self.n, q)
        pair = np.array([self.value_at(low), self.value_at(high)], dtype="float64")
        return float(np.quantile(pair, (self.n - 1) * q - low))

    def to_frame(self) -> pd.DataFrame:
        """The rows held: ``index, value, below, count``."""
        return pd.DataFrame({"index": self.index, "value": self.values, "below": self.below, "count": self.counts})

    def _what(self) -> str:
        return f"the value distribution of {self.column!r}" if self.column else "the value distribution"

    def require_complete(self, why: str) -> "ValueDistribution":
        """This distribution if it holds every value, else a :class:`DataError` saying ``why`` they are needed."""
        if not self.complete:
            raise DataError(f"{self._what().capitalize()} holds {len(self.index):,} of its {self.m:,} distinct "
                            f"values, but {why} needs all of them. Build it with the DistributionNeeds of that fit.")
        return self

    def rows(self, index: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Positions in the held rows of global ranks ``index`` (a :class:`DataError` if one is not held)."""
        wanted = np.asarray(index, dtype="int64")
        at = np.searchsorted(self.index, wanted)
        held = at < len(self.index)
        held[held] = self.index[at[held]] == wanted[held]
        if not held.all():
            raise DataError(f"{self._what().capitalize()} lacks distinct value(s) of rank "
                            f"{', '.join(map(str, wanted[~held][:5].tolist()))}: it was built for other needs. "
                            "Build it with the DistributionNeeds of this fit.")
        return at

    def first_reaching(self, key: npt.NDArray, targets: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Global rank of the first distinct value whose ``key`` (ascending, one per held row, e.g.
        ``below`` or ``below / n``) is ``>= target``, for each target (``m`` when none is).

        The answer is proven from the held rows alone: the value found must directly follow a held value
        whose key is below the target (or be the lowest value); otherwise a :class:`DataError` says the
        distribution was built for other needs.
        """
        t = np.asarray(targets, dtype="float64")
        at = np.searchsorted(key, t, side="left")
        k = len(self.index)
        rank = np.where(at < k, self.index[np.minimum(at, max(k - 1, 0))] if k else self.m, self.m)
        before = np.where(at > 0, self.index[np.maximum(at - 1, 0)] if k else -1, -1)
        proven = (rank == 0) | (before == rank - 1)
        if not proven.all():
            raise DataError(f"{self._what().capitalize()} holds no rows next to customer position(s) "
                            f"{', '.join(f'{v:g}' for v in t[~proven][:5])}: it was built for other needs. "
                            "Build it with the DistributionNeeds of this fit.")
        return rank.astype("int64")
