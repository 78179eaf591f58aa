"""Bounded inputs of the driver-side fits: seeded samples of a per-customer table and whole-table summaries.

A model is fitted on the driver from inputs whose size does not grow with the customers (issue 17):
the rows of a seeded sample, and column summaries (counts, medians, means and standard deviations,
category counts). This module defines them as plain pandas/numpy objects and computes them from a
pandas table; :mod:`segkit.data.spark_sample` computes the same objects on Spark executors. The
estimators that read them live above (:meth:`segkit.features.FeatureBuilder.fit_summaries`,
:func:`segkit.cluster.fit_cluster_model`); their pandas path calls the same code with
:class:`FrameSummaries` and :meth:`CustomerSample.of`.

The row order of a per-customer table is the contract of every sample: **ascending ``customer_id``**
(text, compared by code point: the order of :func:`segkit.features.customer_table`, and Spark's
binary order of UTF-8 text). :func:`sample_positions` turns (number of customers, size, seed) into
positions in that order; whoever holds the table picks the rows at those positions.

Examples
--------
>>> table = pd.DataFrame({"customer_id": list("abcde"), "frequency": [1.0, 2.0, np.nan, 4.0, 8.0],
...                       "region": ["N", None, "S", "S", "S"]})
>>> sample_positions(5, 3, seed=0).tolist()
[2, 3, 4]
>>> CustomerSample.of(table, [1, 2, 4]).take([2, 4])["customer_id"].tolist()
['c', 'e']
>>> counts = FrameSummaries(table).counts(["frequency"], ["region"])
>>> counts.rows, counts.finite, counts.levels["region"]
(5, {'frequency': 4}, {'S': 3, 'N': 1, 'Unknown': 1})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

import numpy as np
import pandas as pd

from segkit.core.errors import DataError, format_rows
from segkit.core.labels import UNKNOWN

__all__ = ["sample_positions", "CustomerSample", "numeric_values", "level_texts", "ColumnCounts", "Moments", "TableSummaries",
           "FrameSummaries", "partition_rows", "merged_parts"]


def sample_positions(customers: int, size: int | None, seed: int) -> np.ndarray:
    """Positions (0-based, ascending) of a seeded sample of ``size`` of ``customers`` rows.

    Every seeded sample of the clustering (:func:`segkit.cluster.sample_plan`) is drawn with it: the
    positions index the per-customer table in ascending ``customer_id`` order (this module's
    contract), so a driver that knows only the number of customers computes them (an array of at
    most ``size`` integers) and Spark picks the same customers
    (:func:`segkit.data.spark_sample.rows_at_positions`).

    Parameters
    ----------
    customers : int
        Rows of the whole table.
    size : int or None
        Rows to draw; None, or ``customers <= size``: every row (``0 … customers - 1``).
    seed : int
        Seed of ``numpy.random.default_rng``; the draw is ``choice(customers, size, replace=False)``,
        sorted.

    Examples
    --------
    >>> sample_positions(4, None, 0).tolist(), sample_positions(4, 10, 0).tolist()
    ([0, 1, 2, 3], [0, 1, 2, 3])
    >>> sample_positions(1000, 3, seed=7).tolist()
    [624, 684, 943]
    """
    if size is None or customers <= size:
        return np.arange(customers)
    return np.sort(np.random.default_rng(seed).choice(customers, size=int(size), replace=False))


@dataclass(frozen=True)
class CustomerSample:
    """Rows of a per-customer table at known positions (ascending ``customer_id`` order).

    Attributes
    ----------
    rows : DataFrame
        The table's rows at ``positions``, in that order, with the table's columns (and ``attrs``).
    positions : ndarray
        Ascending, distinct positions of ``rows`` in the whole table.
    customers : int
        Rows of the whole table.
    """

    rows: pd.DataFrame
    positions: np.ndarray
    customers: int

    @classmethod
    def of(cls, table: pd.DataFrame, positions: Iterable[int]) -> "CustomerSample":
        """The rows of a pandas ``table`` (already in ``customer_id`` order) at ``positions``."""
        pos = np.unique(np.asarray(positions, dtype=np.int64))
        if len(pos) and (pos[0] < 0 or pos[-1] >= len(table)):
            raise DataError(f"Sample positions must lie in 0…{len(table) - 1} (the table has {len(table)} rows); "
                            f"got {pos[0]}…{pos[-1]}.")
        rows = table.iloc[pos]
        rows.attrs.update(table.attrs)
        return cls(rows, pos, int(len(table)))

    def locate(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row numbers in :attr:`rows` of ``positions`` (each must be in the sample).

        Raises
        ------
        DataError
            A position that was not picked; the message names the first ones.
        """
        wanted = np.asarray(positions, dtype=np.int64)
        at = np.searchsorted(self.positions, wanted)
        found = (at < len(self.positions)) & (self.positions[np.minimum(at, max(len(self.positions) - 1, 0))]
                                              == wanted) if len(self.positions) else np.zeros(len(wanted), bool)
        if not found.all():
            missing = wanted[~found][:5].tolist()
            raise DataError(f"The customer sample lacks positions {missing}: pick the rows of every position the "
                            "fit needs (segkit.cluster.sample_plan) from the whole table.")
        return at

    def take(self, positions: Sequence[int] | np.ndarray) -> pd.DataFrame:
        """The sample's rows at ``positions`` of the whole table, in the given order."""
        return self.rows.iloc[self.locate(positions)]


def numeric_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric feature column as float64, missing values as NaN (text numbers converted).

    Raises
    ------
    DataError
        Text that is not a number; the message names the column and rows.

    Examples
    --------
    >>> numeric_values(pd.DataFrame({"x": ["1", None, "2.5"]}), "x").tolist()
    [1.0, nan, 2.5]
    """
    values = table[column]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        converted = pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            raise DataError(f"Feature {column!r} must be numeric, but {int(bad.sum())} values are "
                            f"not numbers ({format_rows(np.flatnonzero(bad.to_numpy()))}, e.g. "
                            f"{values[bad].iloc[0]!r}). Fix them or drop the column from the feature set.")
        values = converted
    return values.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _level_values(table: pd.DataFrame, column: str) -> pd.Series:
    return table[column].astype("string").fillna(UNKNOWN)


def _by_count(levels: Mapping[str, int]) -> dict[str, int]:
    """Level counts ordered by count (descending), then level."""
    return dict(sorted(((str(k), int(v)) for k, v in levels.items()), key=lambda kv: (-kv[1], kv[0])))


def level_texts(counted: pd.DataFrame) -> dict[str, int]:
    """Level → count of one categorical column counted elsewhere (Spark's ``groupBy``), as pandas names levels.

    The one-machine path names a level ``table[column].astype("string")`` (a missing value:
    ``"Unknown"``). A count table gives each level either as text already in that form (text, integers,
    booleans) or, for a floating-point column, as its value, written here by pandas so that both paths
    agree (``1.0`` is ``"1.0"``, ``1e+20`` is ``"1e+20"``).

    Parameters
    ----------
    counted : DataFrame
        ``level`` (text or missing), ``number`` (the value of a floating-point level, else missing) and
        ``count``; levels may repeat (their counts are summed).

    Returns
    -------
    dict
        Level text → count, ordered by count (descending), then level.

    Examples
    --------
    >>> level_texts(pd.DataFrame({"level": ["1", None, None, None], "number": [None, None, 2.5, 1e20],
    ...                           "count": [2, 1, 1, 3]}))
    {'1e+20': 3, '1': 2, '2.5': 1, 'Unknown': 1}
    """
    level = counted["level"].astype("string").reset_index(drop=True)
    number = pd.to_numeric(counted["number"], errors="coerce").astype("float64").reset_index(drop=True)
    has_number = number.notna()
    level[has_number] = number[has_number].astype("string")
    totals = counted["count"].astype("int64").groupby(level.fillna(UNKNOWN).to_numpy()).sum()
    return _by_count(dict(totals.items()))


@dataclass
class ColumnCounts:
    """Counts over a whole table that a feature builder needs (mergeable over parts of the table).

    Attributes
    ----------
    rows : int
    finite : dict
        Numeric column → rows with a finite value.
    present : dict
        Numeric column → rows with a value that is not NaN (infinite ones count: the medians' values).
    missing : dict
        Categorical column → missing values.
    levels : dict
        Categorical column → {level (text; a missing value as ``"Unknown"``) → rows}; as many entries
        as the column has distinct values.
    """

    rows: int
    finite: dict = field(default_factory=dict)
    present: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)

    @classmethod
    def of(cls, table: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str],
           numbers: Callable[[str], np.ndarray] | None = None) -> "ColumnCounts":
        """The counts of one pandas table (or one part of a table).

        Parameters
        ----------
        table : DataFrame
            The table.
        numeric, categorical : sequence of str
            Its numeric and categorical feature columns.
        numbers : callable, optional
            Column → its values as float64 (default :func:`numeric_values` of ``table``; a caller that
            converts each column once passes its own, e.g. :meth:`FrameSummaries.numbers`).
        """
        out = cls(int(len(table)))
        for col in numeric:
            values = numbers(col) if numbers is not None else numeric_values(table, col)
            out.finite[col] = int(np.isfinite(values).sum())
            out.present[col] = int((~np.isnan(values)).sum())
        for col in categorical:
            out.missing[col] = int(table[col].isna().sum())
            out.levels[col] = _by_count(dict(_level_values(table, col).value_counts().items()))
        return out

    @classmethod
    def merge(cls, parts: Iterable["ColumnCounts"]) -> "ColumnCounts":
        """The counts of the union of disjoint parts (sums; level counts ordered by count, then level).

        Parameters
        ----------
        parts : iterable of ColumnCounts
            Counts of disjoint parts of one table (same columns).
        """
        parts = list(parts)
        out = cls(sum(p.rows for p in parts))
        for name in ("finite", "present", "missing"):
            total: dict = {}
            for p in parts:
                for col, value in getattr(p, name).items():
                    total[col] = total.get(col, 0) + int(value)
            setattr(out, name, total)
        for p in parts:
            for col, levels in p.levels.items():
                merged = out.levels.setdefault(col, {})
                for level, count in levels.items():
                    merged[level] = merged.get(level, 0) + int(count)
        out.levels = {col: _by_count(levels) for col, levels in out.levels.items()}
        return out

    def to_json(self) -> str:
        """The counts as one JSON object (keys ``rows``, ``finite``, ``present``, ``missing``, ``levels``)."""
        return json.dumps({"rows": self.rows, "finite": self.finite, "present": self.present,
                           "missing": self.missing, "levels": self.levels})

    @classmethod
    def from_json(cls, text: str) -> "ColumnCounts":
        """The counts :meth:`to_json` wrote.

        Parameters
        ----------
        text : str
            A JSON object of :meth:`to_json`.
        """
        data = json.loads(text)
        return cls(int(data["rows"]), data["finite"], data["present"], data["missing"], data["levels"])


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per column (mergeable over parts of a table).

    :meth:`of` computes them as numpy's ``mean``/``std`` do (one part gives ``std`` bit for bit);
    :meth:`merge` combines parts with the pairwise update of Chan, Golub & LeVeque (1979), so a
    table split into parts gives the same values up to rounding (about 1e-16 relative).

    Examples
    --------
    >>> v = np.array([1.0, 2.0, 4.0, 8.0])
    >>> whole = Moments.of(pd.DataFrame({"x": v}))
    >>> bool(whole.std("x") == v.std()), bool(whole.mean("x") == v.mean())
    (True, True)
    >>> parts = Moments.merge([Moments.of(pd.DataFrame({"x": v[:1]})), Moments.of(pd.DataFrame({"x": v[1:]}))])
    >>> bool(np.isclose(parts.std("x"), v.std(), rtol=1e-15))
    True
    """

    count: dict = field(default_factory=dict)
    means: dict = field(default_factory=dict)
    m2: dict = field(default_factory=dict)

    @classmethod
    def of(cls, values: pd.DataFrame) -> "Moments":
        """Count, mean and sum of squared deviations of each column of ``values`` (read as float64).

        Parameters
        ----------
        values : DataFrame
            Numeric columns without missing values (a NaN makes that column's mean NaN, as numpy's).
        """
        out = cls()
        for col in values.columns:
            v = values[col].to_numpy(dtype=np.float64)
            n = len(v)
            mean = v.mean() if n else 0.0
            deviation = v - mean
            out.count[col], out.means[col] = n, float(mean)
            out.m2[col] = float(np.sum(deviation * deviation)) if n else 0.0
        return out

    @classmethod
    def merge(cls, parts: Iterable["Moments"]) -> "Moments":
        """The moments of the union of disjoint parts (Chan, Golub & LeVeque's pairwise update).

        Parameters
        ----------
        parts : iterable of Moments
            Moments of disjoint parts of one table; a part without rows adds nothing.
        """
        out = cls()
        for part in parts:
            for col, nb in part.count.items():
                if nb == 0:
                    out.count.setdefault(col, 0)
                    out.means.setdefault(col, 0.0)
                    out.m2.setdefault(col, 0.0)
                    continue
                na = out.count.get(col, 0)
                if na == 0:
                    out.count[col], out.means[col], out.m2[col] = nb, part.means[col], part.m2[col]
                    continue
                n = na + nb
                delta = part.means[col] - out.means[col]
                out.means[col] = out.means[col] + delta * nb / n
                out.m2[col] = out.m2[col] + part.m2[col] + delta * delta * na * nb / n
                out.count[col] = n
        return out

    def mean(self, column: str) -> float:
        """Mean of ``column`` (0.0 for a column without values)."""
        return float(self.means[column])

    def std(self, column: str) -> float:
        """Population standard deviation (``ddof=0``, as ``numpy.std``)."""
        n = self.count[column]
        return float(np.sqrt(self.m2[column] / n)) if n else float("nan")

    def to_json(self) -> str:
        """The moments as one JSON object (keys ``count``, ``means``, ``m2``; floats written exactly)."""
        return json.dumps({"count": self.count, "means": self.means, "m2": self.m2})

    @classmethod
    def from_json(cls, text: str) -> "Moments":
        """The moments :meth:`to_json` wrote.

        Parameters
        ----------
        text : str
            A JSON object of :meth:`to_json`.
        """
        data = json.loads(text)
        return cls(data["count"], data["means"], data["m2"])


class TableSummaries(Protocol):
    """Whole-table summaries a feature builder is fitted from (:meth:`segkit.features.FeatureBuilder.fit_summaries`).

    :class:`FrameSummaries` computes them from a pandas table;
    :class:`segkit.data.spark_sample.SparkSummaries` on Spark executors. Each answer is bounded: a few
    numbers per column, and per categorical column one count per level.
    """

    @property
    def columns(self) -> list[str]: ...

    @property
    def attrs(self) -> Mapping[str, Any]: ...

    def counts(self, numeric: Sequence[str], categorical: Sequence[str]) -> ColumnCounts: ...

    def medians(self, columns: Sequence[str]) -> dict[str, float]: ...

    def moments(self, values: Callable[[pd.DataFrame], pd.DataFrame]) -> Moments: ...


class FrameSummaries:
    """:class:`TableSummaries` of a pandas table (the one-machine path).

    Parameters
    ----------
    table : DataFrame
        A per-customer table (:func:`segkit.features.customer_table`).
    """

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self._numbers: dict[str, np.ndarray] = {}

    def numbers(self, column: str) -> np.ndarray:
        """:func:`numeric_values` of ``column``, converted once per column and kept for the next summary."""
        if column not in self._numbers:
            self._numbers[column] = numeric_values(self.table, column)
        return self._numbers[column]

    @property
    def columns(self) -> list[str]:
        """The table's column names (text)."""
        return [str(c) for c in self.table.columns]

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The table's ``attrs`` (``as_of``, ``original_values``)."""
        return self.table.attrs

    def counts(self, numeric: Sequence[str], categorical: Sequence[str]) -> ColumnCounts:
        """:class:`ColumnCounts` of the table (:meth:`ColumnCounts.of`)."""
        return ColumnCounts.of(self.table, numeric, categorical, self.numbers)

    def medians(self, columns: Sequence[str]) -> dict[str, float]:
        """Median of each column's values that are not NaN (``numpy.nanmedian``; NaN for a column without
        one). Spark's :class:`~segkit.data.spark_sample.SparkSummaries` reads the same number from the
        column's :class:`~segkit.data.distribution.ValueDistribution` (``tests/test_cluster_sample.py``
        checks that both readings are equal)."""
        out = {}
        for col in columns:
            values = self.numbers(col)
            out[col] = float(np.nanmedian(values)) if (~np.isnan(values)).any() else float("nan")
        return out

    def moments(self, values: Callable[[pd.DataFrame], pd.DataFrame]) -> Moments:
        """:class:`Moments` of the columns ``values(table)`` returns."""
        return Moments.of(values(self.table))


def partition_rows(batches: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
    """All the rows of one partition given to a ``mapInPandas`` function (its Arrow batches: one customer's rows
    may span two), None when it has none.

    Examples
    --------
    >>> partition_rows(iter([pd.DataFrame({"a": [1]}), pd.DataFrame({"a": []}), pd.DataFrame({"a": [2]})]))["a"].tolist()
    [1, 2]
    >>> partition_rows(iter([])) is None
    True
    """
    parts = [batch for batch in batches if len(batch)]
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


_T = TypeVar("_T")


def merged_parts(frame: Any, part: Callable[[pd.DataFrame], _T], merge: Callable[[list[_T]], _T],
                 whole: bool = False) -> _T:
    """``merge`` of ``part`` of the rows of ``frame``, on the executors: of every Arrow batch (a part that
    adds up over any split of the rows), or with ``whole`` of every partition in one frame (a part that reads
    a customer's rows together: ``frame`` partitioned by customer); merged per
    partition, sent pickled, merged on the driver. What reaches the driver is one part per partition."""
    import pickle

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    def parts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        if whole:
            found = partition_rows(batches)
            done = [] if found is None else [part(found)]
        else:
            done = [part(batch) for batch in batches if len(batch)]
        if done:
            yield pd.DataFrame({"part": [pickle.dumps(merge(done))]})

    with pandas_warnings_quiet(), executor_errors():
        rows = frame.mapInPandas(parts, "part binary").collect()
    return merge([pickle.loads(row["part"]) for row in rows])
