"""The bounded inputs of the CLV and lifecycle fits, counted on Spark executors (issue 17).

Notebook 04 fits its models over all customers. Each likelihood or threshold reads a customer only
through a few numbers, so the fit needs how many customers share each value, not the customers:

=====================================  ================================  ==========================================
fit (segkit)                           count table (this module)         rows reaching the driver
=====================================  ================================  ==========================================
``BetaGeoModel.fit_patterns``          :func:`purchase_pattern_counts`   distinct ``(frequency, recency, T)``
``GammaGammaModel.fit_patterns``       :func:`order_value_counts`        distinct ``(frequency, monetary_value)``
``OneTimeBuyerModel.fit_counts``       :func:`first_repeat_counts`       distinct ``(days, repeated)``
``ValueDistribution.of_counts``        :func:`value_counts`              distinct values (whole days, purchase
(stage thresholds)                                                       days)
=====================================  ================================  ==========================================

Each function is one ``groupBy`` + ``count`` run by the executors (a partial count per partition,
merged in the shuffle); only the counted table is collected, as a pandas frame sorted by its value
columns, with a ``customers`` column (int64). The fits condense their input again
(:func:`segkit.data.distribution.condense`), so the fit from this table is the fit of the one-machine path, value
for value: the pandas path condenses the same per-customer numbers into the same table
(:func:`segkit.clv.purchase_pattern_table`, :func:`~segkit.clv.order_value_table`,
:func:`~segkit.clv.first_repeat_table`, :meth:`segkit.data.distribution.ValueDistribution.of_values`), tested in
``tests/test_spark_patterns.py``.

What reaches the driver (bytes: 8 per value column and 8 for the count, per row, as pandas holds it)
--------------------------------------------------------------------------------------------------------
**Two of these tables are not bounded: they grow with the customers.** The BG/NBD patterns grow about
as customers^0.7 (measured below), and the Gamma-Gamma ``(frequency, monetary_value)`` pairs are nearly
one per repeat buyer when order values are in cents (a reviewer's measurement: almost every repeat buyer
holds a pair of its own). They are far smaller than the per-customer columns, but a driver fitting 100M
customers holds millions of rows of them. Only the first-to-second durations and the whole-day
distributions are bounded by the data's days.

* **BG/NBD patterns**: ``T`` and ``recency`` are whole days divided by 7 within the data's ``D`` days,
  ``recency <= T``, so there are at most ``D + F * D (D + 1) / 2`` patterns for ``F`` distinct repeat
  frequencies, whatever the customers; in practice far fewer, since most customers have small
  frequencies. Measured on simulated BG/NBD customers aged 0-730 days (numpy, one machine): 100k customers
  give 42k patterns, 1M give 332k, 4M give 889k (growth about customers^0.7 and slowing). Estimate for
  100M customers over two years: 5-9 million patterns, 160-290 MB (32 bytes a row), against 3.2 GB for
  the per-customer columns; the fit's time per likelihood evaluation is proportional to the patterns.
* **Gamma-Gamma pairs**: bounded by the distinct ``(frequency, monetary_value)`` pairs, **not** by the
  data's days: a mean order value is money over purchase days, so most repeat buyers with cent prices
  hold a pair of their own. The table is at most as long as the repeat buyers (24 bytes a row): for
  100M customers of whom 40M repeat buyers, up to about 1 GB. The likelihood has no smaller sufficient
  statistic (``log(x m + v)`` is not linear in ``m``); bounding it further means evaluating the
  likelihood and its gradient on the executors at every optimiser step (a Spark job per step, the
  sums in another order: no longer equal to the last bit), which this module does not do.
* **First-to-second purchase durations**: whole days within the data, twice: at most ``2 D`` rows.
* **Stage-threshold distributions**: the gaps between purchase days and the first-to-second gaps
  (whole days: at most ``D`` rows each) and the repeat buyers' purchase days (at most the largest count).
  The repeat buyers' revenue (``monetary_total``, the loyal-value threshold) is money: counted here it
  is bounded only by the repeat buyers; at scale it is one exact order statistic (the value at position
  ``ceil((n - 1) q)`` of the sorted revenues): :func:`segkit.data.spark_ranks.value_distributions` with
  :meth:`segkit.lifecycle.LifecycleStager.distribution_needs` builds its
  :class:`~segkit.data.distribution.ValueDistribution` from the rows next to that position.

Examples
--------
Not run as doctests (they start Spark); ``tests/test_spark_patterns.py`` runs them:

>>> from segkit.clv import BetaGeoModel
>>> from segkit.data.spark import spark_session
>>> inputs = spark_session().read.parquet("artifacts/scoring/lifecycle_inputs.parquet")  # doctest: +SKIP
>>> BetaGeoModel().fit_patterns(purchase_pattern_counts(inputs))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from segkit.core.errors import DataError
from segkit.data.spark import pandas_warnings_quiet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["COUNT_COLUMN", "CLV_PREFIX", "count_table", "purchase_pattern_counts", "order_value_counts",
           "first_repeat_counts", "value_counts"]

#: Name of the count column of every table returned here (customers with the value).
COUNT_COLUMN = "customers"
#: Prefix of the CLV input columns in the per-customer scoring input (segkit.steps.spark_scoring.CLV_COLUMNS).
CLV_PREFIX = "clv_"


def count_table(frame: "SparkFrame", columns: Mapping[str, str] | Sequence[str], count: str = COUNT_COLUMN,
                what: str = "the count table") -> pd.DataFrame:
    """Rows of ``frame`` counted per distinct value of ``columns``, on the executors; collected sorted.

    Rows where **every** one of the columns is null are not counted: a customer without a purchase has no
    CLV input. A row with only **some** of them null or NaN is an error, as in the one-machine fits
    (found in the same job: such rows form count groups of their own).

    Parameters
    ----------
    frame : pyspark DataFrame
        One row per customer (or per event being counted).
    columns : mapping or sequence of str
        Output name -> column of ``frame`` (a sequence: the same names).
    count : str
        Name of the count column (int64).
    what : str
        What the table is for, in error messages.

    Returns
    -------
    DataFrame
        The output columns (numbers as float64, booleans as bool) and ``count``, one row per distinct
        value, sorted by the columns in order (as :func:`segkit.data.distribution.condense` sorts).

    Raises
    ------
    DataError
        A column is missing from ``frame`` (the message lists the columns it has), or rows hold some of
        the columns but not all (the message counts them and names up to five by ``customer_id``).
    """
    from pyspark.sql import functions as F  # the `spark` extra: imported only when Spark runs

    names = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    missing = [source for source in names.values() if source not in frame.columns]
    if missing:
        raise DataError(f"{what}: column(s) {', '.join(map(repr, missing))} missing from the Spark frame (it has "
                        f"{', '.join(map(repr, frame.columns))}). Pass the per-customer input with these columns "
                        "(segkit.steps.spark_scoring builds it, CLV columns prefixed 'clv_').")
    kinds = dict(frame.dtypes)
    no_input = F.lit(True)
    for source in names.values():
        no_input &= F.col(source).isNull()
    selected = frame.where(~no_input).select(*[F.col(source).alias(name) for name, source in names.items()])
    counted = selected.groupBy(*names).agg(F.count(F.lit(1)).alias(count))
    with pandas_warnings_quiet():
        table = counted.toPandas()
    incomplete = table[list(names)].isna().any(axis=1)  # null, and NaN (pandas reads Spark's NaN as NaN)
    if incomplete.any():
        raise DataError(f"{what}: {int(table.loc[incomplete, count].sum()):,} row(s) of the Spark frame have some "
                        f"of {', '.join(map(repr, names.values()))} missing or NaN, e.g. "
                        f"{', '.join(_examples(frame, names.values()))}. A customer without a purchase has all of "
                        "them empty; rebuild the per-customer input (segkit.steps.spark_scoring) from the cleaned "
                        "purchases.")
    for name in names:
        table[name] = table[name].astype(bool if kinds[names[name]] == "boolean" else "float64")
    table[count] = table[count].astype("int64")
    order = np.lexsort([table[name].to_numpy(dtype="float64") for name in reversed(list(names))])
    return table.iloc[order].reset_index(drop=True)


def _examples(frame: "SparkFrame", columns: Iterable[str]) -> list[str]:
    """Up to five rows (by ``customer_id`` when the frame has it) with some but not all of ``columns`` missing:
    a small extra job, run only to word an error."""
    from pyspark.sql import functions as F

    some, every = F.lit(False), F.lit(True)
    for source in columns:
        value = F.col(source)
        gap = value.isNull() | (F.isnan(value) if dict(frame.dtypes)[source] in ("double", "float") else F.lit(False))
        some, every = some | gap, every & value.isNull()
    if "customer_id" not in frame.columns:
        return ["(no customer_id column)"]
    rows = frame.where(some & ~every).select("customer_id").limit(5).collect()
    return [f"customer_id {row['customer_id']!r}" for row in rows]


def purchase_pattern_counts(frame: "SparkFrame", prefix: str = CLV_PREFIX) -> pd.DataFrame:
    """BG/NBD's bounded input: customers per ``(frequency, recency, T)`` (read from ``<prefix>frequency`` …).

    Equal to :func:`segkit.clv.purchase_pattern_table` of the same customers; fitted by
    :meth:`segkit.clv.BetaGeoModel.fit_patterns`. See the module notes for its size.
    """
    return count_table(frame, {c: f"{prefix}{c}" for c in ("frequency", "recency", "T")},
                       what="BG/NBD patterns")


def order_value_counts(frame: "SparkFrame", prefix: str = CLV_PREFIX) -> pd.DataFrame:
    """Gamma-Gamma's input as counts: customers per ``(frequency, monetary_value)``.

    Equal to :func:`segkit.clv.order_value_table` of the same customers (every customer with a purchase:
    the one-time buyers are the one pair ``(0, 0)``); fitted by :meth:`segkit.clv.GammaGammaModel.fit_patterns`.
    Bounded by the distinct pairs, not by the data's days (module notes).
    """
    return count_table(frame, {c: f"{prefix}{c}" for c in ("frequency", "monetary_value")},
                       what="Gamma-Gamma order values")


def first_repeat_counts(frame: "SparkFrame", days: str = "days", repeated: str = "repeated") -> pd.DataFrame:
    """The one-time buyer model's bounded input: buyers per ``(days, repeated)``.

    ``frame`` holds each buyer's days from the first purchase day to the second (or to the last observed
    day) and whether the second was seen (:func:`segkit.clv.first_repeat_durations`). Equal to
    :func:`segkit.clv.first_repeat_table`; fitted by :meth:`segkit.clv.OneTimeBuyerModel.fit_counts`.
    """
    return count_table(frame, {"days": days, "repeated": repeated}, what="first-to-second purchase durations")


def value_counts(frame: "SparkFrame", column: str, count: str = COUNT_COLUMN) -> pd.DataFrame:
    """How many rows hold each value of ``column``: a complete value distribution as a table.

    For the stage thresholds' distributions (gaps between purchase days, purchase days of repeat
    buyers: filter ``frame`` first); read with
    ``ValueDistribution.of_counts(table[column], table[count])`` (:mod:`segkit.data.distribution`).
    """
    return count_table(frame, [column], count=count, what=f"the distribution of {column!r}")
