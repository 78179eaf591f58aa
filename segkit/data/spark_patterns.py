"""The bounded inputs of the CLV and lifecycle fits, counted on Spark executors (issue 17).

Notebook 04 fits its models over all customers. Each likelihood or threshold reads a customer only
through a few numbers, so the fit needs how many customers share each value, not the customers:

=====================================  ================================  ==========================================
fit (segkit)                           count table (this module)         rows reaching the driver
=====================================  ================================  ==========================================
``BetaGeoModel.fit_patterns``          :func:`purchase_pattern_counts`   distinct ``(frequency, recency, T)``
``GammaGammaModel.fit_patterns``       :func:`order_value_counts`        distinct ``(frequency, monetary_value)``;
                                                                         04: of at most ``order_value_sample``
                                                                         repeat buyers (a seeded sample above
                                                                         it: :func:`order_value_sample_counts`)
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
**One of these tables is not bounded: it grows with the customers.** The BG/NBD patterns grow about
as customers^0.7 (measured below): far smaller than the per-customer columns, but a driver fitting 100M
customers holds millions of rows of them. The Gamma-Gamma ``(frequency, monetary_value)`` pairs are nearly
one per repeat buyer when order values are in cents (a reviewer's measurement: almost every repeat buyer
holds a pair of its own), so 04 reads them of a seeded sample of at most ``lifecycle.order_value_sample``
repeat buyers (:func:`order_value_sample_counts`). The first-to-second durations and the whole-day
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
  statistic (``log(x m + v)`` is not linear in ``m``); bounding it exactly would mean evaluating the
  likelihood and its gradient on the executors at every optimiser step (a Spark job per step, the
  sums in another order: no longer equal to the last bit), which this module does not do. Instead
  :func:`order_value_sample_counts` bounds it by a seeded sample of at most ``size`` repeat buyers (the
  customers :func:`segkit.clv.order_value_sample` picks on one machine: the same model on either engine):
  at most ``size`` rows of ``customer_id`` and the two values reach the driver (1,000,000 by default:
  about 80 MB of driver memory, measured).
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
from segkit.data.bounded import sample_positions
from segkit.data.distribution import condense
from segkit.data.spark import pandas_warnings_quiet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["COUNT_COLUMN", "CLV_PREFIX", "count_table", "purchase_pattern_counts", "order_value_counts",
           "order_value_sample_counts", "first_repeat_counts", "value_counts"]

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


def order_value_sample_counts(frame: "SparkFrame", size: int | None, seed: int,
                              prefix: str = CLV_PREFIX) -> tuple[pd.DataFrame, int]:
    """Gamma-Gamma's input, bounded: customers per ``(frequency, monetary_value)`` of at most ``size`` repeat buyers.

    The repeat buyers (``<prefix>frequency > 0`` and ``<prefix>monetary_value > 0``, the rows
    :meth:`segkit.clv.GammaGammaModel.fit_patterns` keeps) are counted on the executors. With at most
    ``size`` of them (or ``size`` None) their pairs are counted there (:func:`order_value_counts`: at most
    ``size`` rows collected). With more, the rows of those at :func:`segkit.data.bounded.sample_positions`
    of their number, ``size`` and ``seed`` in ``customer_id`` order are picked on the executors
    (:func:`segkit.data.spark_sample.rows_at_positions`): ``size`` rows of ``customer_id`` and the two
    values reach the driver (about 80 MB of its memory at 1,000,000, measured) and are counted there. Either way the table equals
    :func:`segkit.clv.order_value_table` of :func:`segkit.clv.order_value_sample`'s rows of the same
    customers, less the rows the fit leaves out (one-time buyers), and so gives the same fit.

    Parameters
    ----------
    frame : pyspark DataFrame
        One row per customer with ``customer_id`` and the CLV input columns (``<prefix>frequency`` …).
    size : int or None
        Repeat buyers to fit on at most (``lifecycle.order_value_sample``).
    seed : int
        The run's seed.
    prefix : str
        Prefix of the CLV input columns.

    Returns
    -------
    tuple
        The count table (``frequency, monetary_value, customers``, sorted) and the number of repeat
        buyers it was drawn from.

    Raises
    ------
    DataError
        A column is missing, or a customer's ``frequency`` or ``monetary_value`` is missing, NaN or negative
        while the other is not missing (any customer, sampled or not: as :func:`segkit.clv.order_value_sample`).
    """
    from pyspark.sql import functions as F

    from segkit.data.spark_sample import rows_at_positions

    names = {c: f"{prefix}{c}" for c in ("frequency", "monetary_value")}
    missing = [source for source in ("customer_id", *names.values()) if source not in frame.columns]
    if missing:
        raise DataError(f"Gamma-Gamma order values: column(s) {', '.join(map(repr, missing))} missing from the Spark "
                        f"frame (it has {', '.join(map(repr, frame.columns))}). Pass the per-customer input "
                        "(segkit.steps.spark_scoring builds it, CLV columns prefixed 'clv_').")
    frequency, value = F.col(names["frequency"]), F.col(names["monetary_value"])
    # As segkit.clv.order_value_sample checks every customer, sampled or not: a value missing, NaN or negative
    # beside one present is an error (a customer without a purchase has both empty).
    invalid = ((frequency.isNull() | value.isNull()) & ~(frequency.isNull() & value.isNull())) | (
        F.isnan(frequency) | F.isnan(value) | (frequency < 0) | (value < 0))
    repeat_buyer = (frequency > 0) & (value > 0)
    row = frame.agg(F.count(F.when(repeat_buyer & ~invalid, 1)).alias("repeat_buyers"),
                    F.count(F.when(invalid, 1)).alias("invalid_rows")).collect()[0]  # two numbers
    buyers, bad = int(row["repeat_buyers"]), int(row["invalid_rows"])
    if bad:
        found = frame.where(invalid).select("customer_id").limit(5).collect()  # five ids, to word the error
        examples = [f"customer_id {r['customer_id']!r}" for r in found]
        raise DataError(f"Gamma-Gamma order values: {bad:,} row(s) of the Spark frame have {names['frequency']!r} or "
                        f"{names['monetary_value']!r} missing, NaN or negative beside a purchase, e.g. "
                        f"{', '.join(examples)}. A customer without a purchase has both empty; rebuild the "
                        "per-customer input (segkit.steps.spark_scoring) from the cleaned purchases.")
    repeat = frame.where(repeat_buyer)
    positions = sample_positions(buyers, size, seed)
    if len(positions) == buyers:
        return order_value_counts(repeat, prefix), buyers
    with pandas_warnings_quiet():  # building the executors' pick (mapInPandas) warns of pandas 3 too
        rows = rows_at_positions(repeat.select("customer_id", *names.values()), ["customer_id"], positions)
    (x, m), counts = condense([rows[names["frequency"]].to_numpy(dtype="float64"),
                               rows[names["monetary_value"]].to_numpy(dtype="float64")])
    return pd.DataFrame({"frequency": x, "monetary_value": m, COUNT_COLUMN: counts.astype("int64")}), buyers


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
