"""Positions in a sorted Spark table without collecting it: range partitions with offsets, and value distributions.

**The primitive** (:func:`range_partitioned` and :func:`partition_totals`): a frame is range-partitioned and
sorted by its order columns, each row tagged with its partition (:data:`PART`) and locally checkpointed (every
later pass sees the same partitions in the same order); one aggregation per partition (JVM only) reaches the
driver — a few int64 per partition (and key) — which turns them into offsets (the rows, or customers, before
each partition); then each partition acts alone from its offset (``mapInPandas``). Two uses:

* :func:`value_distributions` — exact order statistics of per-customer columns (below);
* :func:`segkit.data.spark_sample.rows_at_positions` — the rows of a table at given positions of its order
  (the clustering's seeded samples).

**Value distributions.** :meth:`segkit.rfm.RFMScorer.fit_distributions` and
:meth:`segkit.rfm.LoyaltyTiers.fit_distribution` fit the score bounds and the percentile tiers from a
:class:`~segkit.data.distribution.ValueDistribution` per column (sorted distinct values with customers below
each; only the rows next to the fits' customer positions once a column has many distinct values).
:func:`value_distributions` builds them from a Spark DataFrame of one row per customer without collecting it,
and without a global single-partition window:

1. the columns are stacked and their distinct values counted (one ``groupBy(column, value)`` over one read of
   the frame), range-partitioned by ``(column, value)``, sorted within partitions and checkpointed
   (:func:`range_partitioned_counts`), so both passes below see the same partitions in the same order;
2. pass one (an aggregation by partition and column, no Python): per partition and column, the distinct values,
   customers, the customers at the last value and those with a missing value reach the driver, which turns them
   into offsets (distinct values and customers before each partition, customers at the value just before it);
3. pass two (``mapInPandas``): each partition numbers its values and counts the customers below them from its
   offsets and keeps only the rows :func:`~segkit.data.distribution.rows_near` keeps for the column's needed
   positions (all rows when the fits need every value, :meth:`DistributionNeeds.every_value`).

What reaches the driver is bounded by partitions and targets, not customers: Spark's range-partitioning sample
(about 20 values per partition), one row of six numbers per partition and column (48 bytes; 200 partitions and
3 columns: under 30 kB), and per column at most ``5 × len(needs.positions(n))`` rows of five numbers (36 bytes:
about 2,600 rows, 94 kB, for 5 score levels and four tiers; 10 rows for a median, 5 per quantile) — or all
``m`` rows when ``m − 1 <= max_exact`` (1,024: at most 37 kB) or ``m <= bins``.

The same distributions serve every exact order statistic of the driver-side fits: the feature builder's
medians (``DistributionNeeds(median=True)``, ``missing="skip"``: :class:`segkit.data.spark_sample.SparkSummaries`)
and the lifecycle's higher quantiles (``DistributionNeeds(quantiles=...)``).

Values are cast to DOUBLE on Spark, as the one-machine fit reads them (``float64``); a missing or NaN value is
a :class:`~segkit.core.errors.DataError` naming the column (``missing="raise"``), or left out
(``missing="skip"``, as ``numpy.nanmedian``). Executors need segkit installed (they run
:func:`~segkit.data.distribution.rows_near`), as for :mod:`segkit.steps.spark_scoring`.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Iterator, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.core.errors import DataError
from segkit.data.distribution import DistributionNeeds, ValueDistribution, rows_near
from segkit.data.spark import is_connect, pandas_warnings_quiet

try:  # the `spark` extra
    from pyspark.sql import functions
    from pyspark.sql import types as spark_types
except ImportError:  # pragma: no cover - spark_session() raises the ConfigError that says what to install
    pass

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["PART", "NUMERIC_TYPES", "require_numeric", "executor_errors", "range_partitioned", "release_checkpoint", "partition_totals", "range_partitioned_counts", "distributions_from_counts",
           "value_distributions", "value_distribution"]

#: Column of :func:`range_partitioned`'s result: the partition of each row (Spark's partition id).
PART = "_segkit_part"

#: Spark type names (``DataFrame.dtypes``) read as numbers, as the one-machine path reads them (float64).
NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "boolean")


def require_numeric(frame: "SparkFrame", columns: Sequence[str], what: str = "Feature") -> None:
    """Refuse, on the driver and before any job, columns of ``frame`` that Spark does not hold as numbers.

    Spark's ``CAST(text AS DOUBLE)`` turns a text value into NULL without a word, where the one-machine
    path (:func:`segkit.data.bounded.numeric_values`) refuses it: checking the schema keeps the two
    paths' answers apart from nothing.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        The table.
    columns : sequence of str
        Columns that must be numeric (absent ones are left to the caller).
    what : str
        What a column is, at the start of the message ("Feature", "Column").

    Raises
    ------
    DataError
        The first column whose type is not numeric (text, dates …); the message names it and its type.
    """
    kinds = dict(frame.dtypes)
    for column in columns:
        kind = kinds.get(column)
        if kind is not None and kind not in NUMERIC_TYPES and not kind.startswith("decimal"):
            raise DataError(f"{what} {column!r} must be numeric, but the Spark table holds it as {kind} (a value "
                            "that is not a number, or a column read as text). Fix the values or cast the column "
                            "to a number, or drop the column from the feature set.")


#: The segkit error an executor raised, in the text of pyspark's ``PythonException``.
_EXECUTOR_ERROR = re.compile(r"segkit\.core\.errors\.(DataError|ConfigError): (.*)")


@contextlib.contextmanager
def executor_errors() -> Iterator[None]:
    """Re-raise a segkit error that a Python function raised on an executor as that error, not a Spark traceback.

    pyspark wraps an exception raised in ``mapInPandas`` into a ``PythonException`` whose text holds the
    executor's traceback; the segkit message (one line, naming the column and what to do) is taken from it.
    Any other failure is re-raised unchanged.
    """
    from pyspark.errors import PythonException

    from segkit.core.errors import ConfigError

    try:
        yield
    except PythonException as exc:
        found = _EXECUTOR_ERROR.findall(str(exc))
        if not found:
            raise
        kind, message = found[-1]
        raise (DataError if kind == "DataError" else ConfigError)(message.strip()) from None


def range_partitioned(frame: "SparkFrame", order_by: Sequence[str], partitions: int | None = None) -> "SparkFrame":
    """``frame`` range-partitioned and sorted by ``order_by``, each row tagged with its :data:`PART`, checkpointed.

    Partition ``i`` holds rows that all sort before those of partition ``i + 1``; the local checkpoint
    makes the partition totals (:func:`partition_totals`) and the pass that acts per partition see the same
    partitions in the same order (Spark's range bounds come from a sample: recomputing could move them).
    The checkpoint is a copy of ``frame`` on the executors: select only the columns the passes need, and
    free it with :func:`release_checkpoint` after the last pass.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        The table (rows that tie on ``order_by`` have no defined order among themselves).
    order_by : sequence of str
        Columns of the order (ascending; text by UTF-8 bytes = code points).
    partitions : int, optional
        Range partitions (default ``spark.sql.shuffle.partitions``).
    """
    count = partitions or int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    ranged = frame.repartitionByRange(count, *order_by).sortWithinPartitions(*order_by)
    return ranged.withColumn(PART, functions.spark_partition_id()).localCheckpoint(eager=True)


def release_checkpoint(ranged: "SparkFrame") -> None:
    """Free the executors' copy held by a :func:`range_partitioned` frame's local checkpoint.

    ``DataFrame.unpersist`` does not release a local checkpoint (its blocks belong to the RDD the plan
    reads); this unpersists that RDD. On Spark Connect (no JVM here) it asks the server to drop the checkpointed
    relation (what the client does when the frame's Python object is collected; the server's context cleaner
    then frees the blocks). Call it once the last pass over ``ranged`` has run: ``ranged`` cannot be read after.
    """
    if is_connect(ranged):
        _release_connect_checkpoint(ranged)
        return
    plan = ranged._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def _release_connect_checkpoint(ranged: "SparkFrame") -> None:
    """Send Spark Connect's ``RemoveCachedRemoteRelation`` for a checkpointed frame (nothing for another frame).
    Reading the frame afterwards fails (``DATAFRAME_NOT_FOUND``, as a released checkpoint does on a classic
    session); the client's second removal, when the frame is collected, is harmless."""
    from pyspark.sql.connect.plan import CachedRemoteRelation, RemoveRemoteCachedRelation

    relation = ranged._plan
    if not isinstance(relation, CachedRemoteRelation) or relation._relation_id is None:
        return
    client = ranged.sparkSession.client
    client.execute_command(RemoveRemoteCachedRelation(relation).command(session=client))


def partition_totals(ranged: "SparkFrame", totals: Mapping[str, "Column"], cumulative: Sequence[str],
                     key: str | None = None) -> pd.DataFrame:
    """Aggregates of every partition of :func:`range_partitioned` (per ``key``), with their offsets.

    One Spark job (an aggregation in the JVM); what reaches the driver is one row of ``len(totals)`` numbers
    per partition (and key value): 8 bytes a number.

    Parameters
    ----------
    ranged : pyspark.sql.DataFrame
        A result of :func:`range_partitioned`.
    totals : mapping
        Output name → aggregate column (e.g. ``functions.count(functions.lit(1))``).
    cumulative : sequence of str
        Names of ``totals`` (whole numbers) whose sum over the earlier partitions (of the same ``key``) is
        wanted: returned as ``<name>_before`` (int64).
    key : str, optional
        A column the order starts with whose values are counted apart (e.g. the column number of stacked
        columns).

    Returns
    -------
    DataFrame
        ``key`` (if given), :data:`PART`, the totals and the ``_before`` offsets, sorted by key and partition.
    """
    by = [key, PART] if key else [PART]
    with pandas_warnings_quiet():
        table = ranged.groupBy(*by).agg(*[column.alias(name) for name, column in totals.items()]).toPandas()
    table = table.sort_values(by, kind="stable").reset_index(drop=True)
    for name in cumulative:
        values = table[name].astype("int64")
        running = values.groupby(table[key]).cumsum() if key else values.cumsum()
        table[f"{name}_before"] = (running - values).astype("int64")
    return table


def range_partitioned_counts(frame: "SparkFrame", columns: list[str], partitions: int | None = None,
                             missing: Literal["raise", "skip"] = "raise") -> "SparkFrame":
    """Customers per distinct value of each of ``columns``, :func:`range_partitioned` by ``(key, value)``.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        One row per customer.
    columns : list of str
        Numeric columns of ``frame`` (cast to DOUBLE).
    partitions : int, optional
        Range partitions of the distinct values (default ``spark.sql.shuffle.partitions``).
    missing : {"raise", "skip"}
        ``"skip"``: missing and NaN values are left out here (``numpy.nanmedian``'s reading); ``"raise"``:
        they are counted, and :func:`distributions_from_counts` refuses them.

    Returns
    -------
    pyspark.sql.DataFrame
        ``key`` (position of the column in ``columns``), ``value``, ``count``, :data:`PART`, sorted by
        ``key, value`` across partitions in partition order; locally checkpointed.

    Raises
    ------
    DataError
        A column missing from ``frame``, or not numeric there (:func:`require_numeric`).
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(f"Value distributions on Spark: column(s) {', '.join(map(repr, absent))} missing "
                        f"(columns present: {', '.join(frame.columns) or 'none'}). Pass columns of the RFM table.")
    require_numeric(frame, columns, "Column")
    pair = functions.explode(functions.array(*[
        functions.struct(functions.lit(key).alias("key"), functions.col(f"`{c}`").cast("double").alias("value"))
        for key, c in enumerate(columns)])).alias("pair")
    stacked = frame.select(pair).select("pair.key", "pair.value")
    if missing == "skip":
        stacked = stacked.where(functions.col("value").isNotNull() & ~functions.isnan("value"))
    counts = stacked.groupBy("key", "value").agg(functions.count(functions.lit(1)).alias("count"))
    return range_partitioned(counts, ["key", "value"], partitions)


def distributions_from_counts(held: "SparkFrame", columns: list[str],
                              needs: Mapping[str, DistributionNeeds]) -> dict[str, ValueDistribution]:
    """The value distribution of each column from :func:`range_partitioned_counts` (two passes over ``held``).

    Raises
    ------
    DataError
        A column has missing or NaN values (the one-machine fit refuses them too).
    """
    unknown = functions.col("value").isNull() | functions.isnan("value")
    totals = partition_totals(held, {
        "rows": functions.count(functions.lit(1)), "customers": functions.sum("count"),
        "last_count": functions.max_by("count", "value"),
        "missing": functions.sum(functions.when(unknown, functions.col("count")).otherwise(0))},
        cumulative=["rows", "customers"], key="key")
    empty = [(columns[int(k)], int(v)) for k, v in totals.groupby("key")["missing"].sum().items() if v]
    if empty:
        raise DataError("Value distributions on Spark: " + "; ".join(
            f"column {c!r} is empty or NaN for {v:,} customer(s)" for c, v in empty)
            + ". Fill or drop those rows before fitting (the RFM base has a value for every customer).")
    last_before = totals.groupby("key")["last_count"].shift(1, fill_value=0).astype("int64")
    offsets = {(int(part), int(key)): (int(i), int(b), int(p)) for part, key, i, b, p in zip(
        totals[PART], totals["key"], totals["rows_before"], totals["customers_before"], last_before)}
    shape = {int(key): (int(group["customers"].sum()), int(group["rows"].sum()))
             for key, group in totals.groupby("key")}
    positions = {key: (None if needs[c].every_value(shape.get(key, (0, 0))[1])
                       else needs[c].positions(shape[key][0])) for key, c in enumerate(columns)}

    def near_rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        state: dict[int, tuple[int, int, int]] = {}
        for batch in batches:
            for key, rows in batch.groupby("key", sort=False):
                key = int(key)
                index0, below0, previous = state.get(key) or offsets[(int(rows[PART].iat[0]), key)]
                count = rows["count"].to_numpy("int64")
                below = below0 + np.concatenate([[0], np.cumsum(count)[:-1]]).astype("int64")
                keep = (np.ones(len(rows), dtype=bool) if positions[key] is None
                        else rows_near(below, count, previous, positions[key]))
                state[key] = (index0 + len(rows), below0 + int(count.sum()), int(count[-1]))
                yield pd.DataFrame({"key": key, "index": index0 + np.flatnonzero(keep),
                                    "value": rows["value"].to_numpy("float64")[keep], "below": below[keep],
                                    "count": count[keep]})

    schema = spark_types.StructType([
        spark_types.StructField("key", spark_types.IntegerType()),
        spark_types.StructField("index", spark_types.LongType()),
        spark_types.StructField("value", spark_types.DoubleType()),
        spark_types.StructField("below", spark_types.LongType()),
        spark_types.StructField("count", spark_types.LongType())])
    with pandas_warnings_quiet(), executor_errors():
        kept = held.mapInPandas(near_rows, schema).toPandas().sort_values(["key", "index"], kind="stable")
    out = {}
    for key, column in enumerate(columns):
        rows = kept[kept["key"] == key]
        n, m = shape.get(key, (0, 0))
        out[column] = ValueDistribution(n=n, m=m, index=rows["index"], values=rows["value"], below=rows["below"],
                                        counts=rows["count"], column=column)
    return out


def value_distributions(frame: "SparkFrame", needs: Mapping[str, DistributionNeeds], partitions: int | None = None,
                        missing: Literal["raise", "skip"] = "raise") -> dict[str, ValueDistribution]:
    """The value distribution of each column of ``needs`` (e.g. :func:`segkit.rfm.fit_needs`), in one go.

    One read of ``frame``, one shuffle, a checkpoint and two passes (see the module docstring); what reaches
    the driver is bounded by ``partitions`` and the needs' positions, not by the customers.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        One row per customer (e.g. the RFM base on Spark).
    needs : mapping
        Column → :class:`~segkit.data.distribution.DistributionNeeds`.
    partitions : int, optional
        Range partitions of the distinct values (default ``spark.sql.shuffle.partitions``).
    missing : {"raise", "skip"}
        A missing or NaN value: a :class:`~segkit.core.errors.DataError` naming the column, or left out
        (``n`` is then the customers with a value).

    Returns
    -------
    dict
        Column → :class:`~segkit.data.distribution.ValueDistribution` (named after its column); equal, row for
        row, to ``ValueDistribution.of_values(column values, needs[column])``.
    """
    columns = list(needs)
    held = range_partitioned_counts(frame, columns, partitions, missing)
    try:
        return distributions_from_counts(held, columns, needs)
    finally:
        release_checkpoint(held)


def value_distribution(frame: "SparkFrame", column: str, needs: DistributionNeeds,
                       partitions: int | None = None) -> ValueDistribution:
    """The value distribution of one column (:func:`value_distributions` of one column)."""
    return value_distributions(frame, {column: needs}, partitions)[column]
