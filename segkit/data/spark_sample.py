"""The clustering's bounded inputs computed on Spark executors: sampled rows and whole-table summaries.

On Spark the per-customer table (the columns of :func:`segkit.features.customer_table`) is a Spark
DataFrame and never reaches the driver. What the driver fits the clustering from
(:func:`segkit.cluster.fit_cluster_model`) is computed here, as the plain pandas/numpy objects of
:mod:`segkit.data.bounded`:

* :func:`rows_at_positions` — the rows at given positions of the table in ``customer_id`` order (the
  contract of :func:`segkit.data.bounded.sample_positions`). The driver computes the positions (at most
  the sample sizes, :func:`segkit.cluster.sample_plan`); the ``customer_id`` column alone is
  range-partitioned with its partitions' row counts and offsets
  (:func:`segkit.data.spark_ranks.range_partitioned` and :func:`~segkit.data.spark_ranks.partition_totals`:
  24 bytes per partition reach the driver), each partition keeps the ids whose global position (its
  partition's offset + the row's place in it) was asked for, and those ids (as many as the positions) are
  broadcast and joined back to the table; the ids' checkpoint is released afterwards. No global window, no
  single partition, no collect of the table: only the picked rows are collected (:func:`customer_sample`).
* :class:`SparkSummaries` — the whole-table summaries a :class:`segkit.features.FeatureBuilder` is
  fitted from (:class:`segkit.data.bounded.TableSummaries`). The counts are JVM aggregations (a few
  numbers per column, and one row per categorical level from ``groupBy(column, level).count()``); the
  moments run segkit's own pandas functions (:meth:`~segkit.data.bounded.Moments.of` of the builder's
  :meth:`~segkit.features.FeatureBuilder.unscaled`) on every partition (``mapInPandas``) and merge the
  partial results on the driver (three numbers per column and partition); the medians are exact order statistics
  (:func:`segkit.data.spark_ranks.value_distributions` with ``DistributionNeeds(median=True)``, NaN left out,
  read by :meth:`~segkit.data.distribution.ValueDistribution.median`).

The summaries equal those of the pandas table (:class:`segkit.data.bounded.FrameSummaries`): counts and
medians exactly, means and standard deviations up to the order of summation (about 1e-16 relative).

Examples
--------
Spark runs it (``tests/test_spark_sample.py``), so not as a doctest::

    from segkit.cluster import fit_cluster_model, plan_positions, sample_plan

    customers = frame.count()
    plan = sample_plan(customers, settings, seed)
    fit = fit_cluster_model(customer_sample(frame, plan_positions(plan), customers), SparkSummaries(frame),
                            settings, seed)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.core.errors import DataError
from segkit.data.bounded import ColumnCounts, CustomerSample, Moments, level_texts
from segkit.data.distribution import DistributionNeeds
from segkit.data.spark import pandas_warnings_quiet
from segkit.data.spark_ranks import (
    PART,
    executor_errors,
    partition_totals,
    range_partitioned,
    release_checkpoint,
    require_numeric,
    value_distributions,
)

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["POSITION", "rows_at_positions", "customer_sample", "SparkSummaries"]

#: Column of :func:`rows_at_positions`' result: each row's position in the ordered table.
POSITION = "position"


def rows_at_positions(frame: "SparkFrame", order_by: Sequence[str], positions: Sequence[int] | np.ndarray,
                      partitions: int | None = None) -> pd.DataFrame:
    """The rows of a Spark DataFrame at ``positions`` of its ``order_by`` order, as a pandas frame.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        The table. Rows that tie on ``order_by`` have no defined order among themselves: for a
        sample of customers, order by ``customer_id`` (unique).
    order_by : sequence of str
        Columns of the order (ascending, Spark's ordering: text by UTF-8 bytes = code points).
    positions : array of int
        0-based positions wanted (any order, repeats ignored); at most as many as a sample needs.
    partitions : int, optional
        Range partitions (default: the session's ``spark.sql.shuffle.partitions``).

    Returns
    -------
    DataFrame
        ``frame``'s columns and :data:`POSITION`, one row per distinct position, ascending.

    Raises
    ------
    DataError
        A position outside the table.
    """
    from pyspark.sql import functions, types

    wanted = np.unique(np.asarray(positions, dtype=np.int64))
    keys = frame.select(*[functions.col(f"`{c}`") for c in order_by])
    ranged = range_partitioned(keys, order_by, partitions)  # the order key only: a small copy on the executors
    try:
        no_key = functions.lit(False)
        for column in order_by:
            no_key |= functions.col(f"`{column}`").isNull()
        sizes = partition_totals(ranged, {"rows": functions.count(functions.lit(1)),
                                          "no_key": functions.count(functions.when(no_key, 1))}, cumulative=["rows"])
        nulls = int(sizes["no_key"].sum())
        if nulls:
            raise DataError(f"{nulls:,} row(s) of the table have no {' / '.join(order_by)}: a sample picks rows by "
                            f"their place in the {' / '.join(order_by)} order, which a missing value does not have. "
                            "Drop or fill those rows before sampling.")
        total = int(sizes["rows"].sum())
        if len(wanted) and (wanted[0] < 0 or wanted[-1] >= total):
            raise DataError(f"Positions {wanted[0]}…{wanted[-1]} asked of a table of {total:,} rows; the positions "
                            "must come from sample_positions of this table's row count.")
        offsets = dict(zip(sizes[PART].astype(int).tolist(), sizes["rows_before"].astype(int).tolist()))

        def pick(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            seen = 0
            for batch in batches:
                if batch.empty:
                    continue
                first = offsets[int(batch[PART].iloc[0])] + seen
                at = first + np.arange(len(batch), dtype=np.int64)
                seen += len(batch)
                keep = np.isin(at, wanted[(wanted >= first) & (wanted < first + len(batch))])
                if keep.any():
                    yield batch.loc[keep].drop(columns=PART).assign(**{POSITION: at[keep]})

        schema = types.StructType(list(keys.schema.fields) + [types.StructField(POSITION, types.LongType())])
        picked_keys = ranged.mapInPandas(pick, schema)  # at most len(wanted) rows: broadcast to the join
        with pandas_warnings_quiet(), executor_errors():
            picked = frame.join(functions.broadcast(picked_keys), on=list(order_by), how="inner").toPandas()
    finally:
        release_checkpoint(ranged)
    picked = picked[[*frame.columns, POSITION]]
    return picked.sort_values(POSITION, kind="stable").reset_index(drop=True)


def customer_sample(frame: "SparkFrame", positions: Sequence[int] | np.ndarray, customers: int | None = None,
                    attrs: Mapping[str, Any] | None = None, partitions: int | None = None) -> CustomerSample:
    """A :class:`segkit.data.bounded.CustomerSample` of a per-customer Spark table (``customer_id`` order).

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        The customer table, one row per ``customer_id``.
    positions : array of int
        Positions to pick (:func:`segkit.cluster.plan_positions` of the clustering's
        :func:`~segkit.cluster.sample_plan`).
    customers : int, optional
        Rows of ``frame`` when already counted (the plan needs it first); counted otherwise.
    attrs : mapping, optional
        ``attrs`` of the table (``as_of``, ``original_values``) given to the sample's rows.
    """
    rows = rows_at_positions(frame, ["customer_id"], positions, partitions)
    pos = rows.pop(POSITION).to_numpy(dtype=np.int64)
    rows.attrs.update(attrs or {})
    return CustomerSample(rows, pos, int(frame.count() if customers is None else customers))


def _collect_parts(frame: "SparkFrame", part: Callable[[pd.DataFrame], Any], merge: Callable[[list], Any],
                   decode: Callable[[str], Any]) -> Any:
    """``merge`` of ``part`` of every batch, merged per partition on the executors, then on the driver."""

    def summarise(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        parts = [part(batch) for batch in batches]
        if parts:
            yield pd.DataFrame({"part": [merge(parts).to_json()]})

    with pandas_warnings_quiet(), executor_errors():
        rows = frame.mapInPandas(summarise, "part string").collect()
    return merge([decode(row["part"]) for row in rows])


class SparkSummaries:
    """:class:`segkit.data.bounded.TableSummaries` of a per-customer Spark table, computed on the executors.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        The customer table (the columns of :func:`segkit.features.customer_table`).
    attrs : mapping, optional
        The table's ``attrs`` (``original_values``: the channel of each ``channel_share_*`` as typed).
    partitions : int, optional
        Range partitions of the medians' values (default: the session's shuffle partitions).

    Examples
    --------
    Spark runs it, so not as a doctest: ``FeatureBuilder(...).fit_summaries(SparkSummaries(frame))``.
    """

    def __init__(self, frame: "SparkFrame", attrs: Mapping[str, Any] | None = None, partitions: int | None = None):
        self.frame = frame
        self._attrs = dict(attrs or {})
        self.partitions = partitions

    @property
    def columns(self) -> list[str]:
        """The Spark table's column names (from its schema: no job)."""
        return list(self.frame.columns)

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The table's ``attrs`` as given (``as_of``, ``original_values``); a Spark frame has none of its own."""
        return self._attrs

    def counts(self, numeric: Sequence[str], categorical: Sequence[str]) -> ColumnCounts:
        """:class:`~segkit.data.bounded.ColumnCounts` of the whole table, counted in the JVM (two Spark jobs).

        One aggregation gives the rows, the finite and present values of each numeric column and the
        missing values of each categorical column (a few numbers); one ``groupBy(column, level).count()``
        of the categorical columns stacked gives one row per level. A level's text is the one pandas gives
        the column's values (:func:`segkit.data.bounded.level_texts`): Spark's text of an integer or a
        string is pandas' (``"1"``, never ``"1.0"``), booleans read ``"True"``/``"False"``, and a
        floating-point level is written by pandas on the driver from its value; a missing (or NaN) value
        is ``"Unknown"``.

        Raises
        ------
        DataError
            A numeric column that Spark does not hold as a number (:func:`~segkit.data.spark_ranks.require_numeric`).
        """
        from pyspark.sql import functions as F

        numeric, categorical = list(numeric), list(categorical)
        require_numeric(self.frame, numeric)
        kinds = dict(self.frame.dtypes)
        floating = {c for c in categorical if kinds[c] in ("float", "double")}

        def col(name: str) -> "Column":
            return F.col(f"`{name}`")

        def absent(name: str) -> "Column":
            return col(name).isNull() | F.isnan(col(name)) if name in floating else col(name).isNull()

        totals = [F.count(F.lit(1)).alias("rows")]
        for i, name in enumerate(numeric):
            value = col(name).cast("double")
            present = value.isNotNull() & ~F.isnan(value)
            totals += [F.count(F.when(present & (F.abs(value) != float("inf")), 1)).alias(f"finite{i}"),
                       F.count(F.when(present, 1)).alias(f"present{i}")]
        totals += [F.count(F.when(absent(name), 1)).alias(f"missing{i}") for i, name in enumerate(categorical)]
        row = self.frame.agg(*totals).collect()[0]
        out = ColumnCounts(int(row["rows"]))
        out.finite = {name: int(row[f"finite{i}"]) for i, name in enumerate(numeric)}
        out.present = {name: int(row[f"present{i}"]) for i, name in enumerate(numeric)}
        out.missing = {name: int(row[f"missing{i}"]) for i, name in enumerate(categorical)}
        if not categorical:
            return out

        def text(name: str) -> "Column":
            if name in floating:
                return F.lit(None).cast("string")  # written by pandas from `number` (level_texts)
            if kinds[name] == "boolean":
                return F.when(col(name), "True").when(~col(name), "False")
            return col(name).cast("string")

        pairs = F.explode(F.array(*[F.struct(
            F.lit(i).alias("key"), F.when(~absent(name), text(name)).alias("level"),
            (F.when(~absent(name), col(name).cast("double")) if name in floating
             else F.lit(None).cast("double")).alias("number")) for i, name in enumerate(categorical)]))
        stacked = self.frame.select(pairs.alias("pair")).select("pair.key", "pair.level", "pair.number")
        with pandas_warnings_quiet():
            levels = stacked.groupBy("key", "level", "number").count().toPandas()
        out.levels = {name: level_texts(levels.loc[levels["key"] == i]) for i, name in enumerate(categorical)}
        return out

    def medians(self, columns: Sequence[str]) -> dict[str, float]:
        """Exact median of each column's values that are not NaN (as ``numpy.nanmedian``).

        One :func:`segkit.data.spark_ranks.value_distributions` of all ``columns`` (NaN and missing left out)
        holding the rows next to each column's two middle positions; what reaches the driver is bounded by
        the partitions and those positions (all distinct values of a column with at most 1,025 of them).

        Raises
        ------
        DataError
            A column that Spark does not hold as a number (:func:`~segkit.data.spark_ranks.require_numeric`).
        """
        columns = list(columns)
        if not columns:
            return {}
        require_numeric(self.frame, columns)
        found = value_distributions(self.frame, {c: DistributionNeeds(median=True) for c in columns},
                                    self.partitions, missing="skip")
        return {c: found[c].median() for c in columns}

    def moments(self, values: Callable[[pd.DataFrame], pd.DataFrame]) -> Moments:
        """:class:`~segkit.data.bounded.Moments` of ``values`` applied to every batch of the table (one Spark job).

        ``values`` runs on the executors (pickled with its fitted state; it must be row-wise).
        """
        return _collect_parts(self.frame, lambda batch: Moments.of(values(batch)), Moments.merge, Moments.from_json)
