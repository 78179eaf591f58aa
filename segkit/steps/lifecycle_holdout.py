"""Notebook 04's holdout check on a seeded sample of customers, the same on DuckDB and Spark (issue 17).

The holdout check (:func:`segkit.lifecycle.run_holdout_check`) refits the models on the purchases before
a cut-off, judges them on the holdout after it, and chooses the variant of the chances that feeds the
export. It is an evaluation and a choice, so it is made on a bounded, seeded sample of customers: at most
``lifecycle.holdout_sample`` (200,000 by default), so that on Spark what reaches the driver does not grow
with the customers.

Which customers
    The check reads purchase days as known on three days: ``as_of`` (the purchases before it, each scaled
    to its customer's kept value: :func:`segkit.lifecycle.spend_scaled`), the cut-off (``as_of`` minus the
    holdout) and the earlier cut-off (one holdout before that, where the export choice the cut-off day would
    have held is made: :func:`segkit.lifecycle.earlier_holdout_choice`). The sample is drawn from every
    customer with a purchase day in any of the three (``customers``): sorted by ``customer_id`` (code point
    order, on both engines), the customers at :func:`segkit.data.bounded.sample_positions` of their number,
    the holdout cap and the run's seed: the rule of 03's clustering sample. Each sampled customer's purchase
    days are read whole, on each of the three days; a customer outside the sample is not read at all. Of the
    sample, the check judges those with a purchase before the cut-off (as known then); the others still count
    in the season and purchase rates of the holdout, as they do when every customer is read.
With no more customers than the cap (the bundled sample, every test fixture) the sample is every customer
and the check is :func:`~segkit.lifecycle.run_holdout_check` of the whole tables, bit for bit.

On DuckDB the kernel holds the purchase days (``orders``, built by
:func:`segkit.steps.lifecycle.build_lifecycle_artifacts`) and the check takes the sample's rows of them. On
Spark only the sampled customers' rows reach the driver: the customers are counted and picked by position
on the executors (:func:`segkit.data.spark_sample.rows_at_positions`), and the purchase days and kept values
are semi-joined with the picked ids there before they are collected.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> ctx = open_run("04_lifecycle")                                         # doctest: +SKIP
>>> check = holdout_check_for(ctx, as_of, LifecycleSettings(), orders)     # doctest: +SKIP
>>> sample_note(check)                                                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segkit.data.bounded import sample_positions
from segkit.lifecycle import (
    HoldoutCheck,
    LifecycleSettings,
    holdout_length_days,
    purchase_history,
    run_holdout_check,
    spend_scaled,
)
from segkit.steps.sources import purchase_days_for, spark_sample_error

if TYPE_CHECKING:  # the `spark` extra
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["HoldoutInputs", "holdout_days", "holdout_customers", "customers_of", "holdout_orders",
           "holdout_inputs", "holdout_inputs_on_spark", "sample_on_spark", "holdout_check_for", "sample_note",
           "sample_record"]


@dataclass(frozen=True)
class HoldoutInputs:
    """What a holdout check reads, of the sampled customers.

    Attributes
    ----------
    orders : DataFrame
        Purchase days before ``as_of`` as known at ``as_of`` (``customer_id, order_date, amount``), each scaled
        to its customer's kept value (:func:`holdout_orders`).
    seen : dict
        The purchase days as known at the cut-off and at the earlier cut-off (:func:`holdout_days`), keyed by
        the day (:meth:`segkit.data.engine.OrderLines.purchase_days`, not scaled: as the check reads them).
    customers : int
        Customers the sample was drawn from (:func:`holdout_customers`).
    sample_customers : int
        Customers in the sample (``customers`` when at most the cap).
    """

    orders: pd.DataFrame
    seen: dict[pd.Timestamp, pd.DataFrame]
    customers: int
    sample_customers: int

    def seen_at(self, day: pd.Timestamp) -> pd.DataFrame:
        """The purchase days as known at ``day`` (the cut-off or the earlier cut-off): the check's ``seen_at``."""
        return self.seen[pd.Timestamp(day)]


def holdout_days(as_of: pd.Timestamp, settings: LifecycleSettings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The cut-off and the earlier cut-off of the check at ``as_of``: one and two holdouts before it.

    Examples
    --------
    >>> holdout_days(pd.Timestamp("2024-12-01"), LifecycleSettings(holdout_months=3))
    (Timestamp('2024-09-02 00:00:00'), Timestamp('2024-06-04 00:00:00'))
    """
    days = pd.Timedelta(days=holdout_length_days(settings))
    return as_of - days, as_of - 2 * days


def customers_of(days: pd.DataFrame) -> pd.Index:
    """The distinct ``customer_id`` of a purchase-day table, as text, sorted (a categorical's unused
    categories left out).

    Examples
    --------
    >>> days = pd.DataFrame({"customer_id": pd.Categorical(["b", "a", "b"], categories=["a", "b", "c"])})
    >>> customers_of(days).tolist()
    ['a', 'b']
    """
    ids = days["customer_id"]
    if isinstance(ids.dtype, pd.CategoricalDtype):
        present = ids.cat.categories.take(np.unique(ids.cat.codes.to_numpy()[ids.cat.codes.to_numpy() >= 0]))
    else:
        present = pd.Index(ids.dropna().unique())
    return pd.Index(present.astype("string"), name="customer_id").sort_values()


def holdout_customers(customers: pd.Index, cap: int | None, seed: int) -> pd.Index:
    """The sampled customers of ``customers`` (sorted, distinct ids): those at
    ``sample_positions(len(customers), cap, seed)`` (every customer with at most ``cap``; None = no cap).

    Examples
    --------
    >>> ids = pd.Index([f"c{i:04d}" for i in range(1000)], dtype="string")
    >>> holdout_customers(ids, 3, seed=7).tolist()
    ['c0624', 'c0684', 'c0943']
    >>> len(holdout_customers(ids, 5000, seed=7))
    1000
    """
    return customers[sample_positions(len(customers), cap, seed)]


def holdout_orders(days: pd.DataFrame, kept_total: pd.Series) -> pd.DataFrame:
    """The check's purchases as of ``as_of``: ``customer_id, order_date, amount`` of each purchase day
    (:func:`segkit.lifecycle.purchase_history` of ``days``), scaled to each customer's kept value
    (:func:`segkit.lifecycle.spend_scaled` with ``kept_total``, index ``customer_id``), as
    :func:`segkit.steps.lifecycle.build_lifecycle_artifacts` builds them.

    Examples
    --------
    >>> days = pd.DataFrame({"customer_id": ["a", "a"], "amount": [10.0, 30.0],
    ...                      "order_date": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    >>> holdout_orders(days, pd.Series({"a": 20.0}))["amount"].tolist()
    [5.0, 15.0]
    """
    history = purchase_history(days)
    orders = history[["customer_id", "purchase_date", "amount"]].rename(columns={"purchase_date": "order_date"})
    return spend_scaled(orders, kept_total)


def _rows_of(days: pd.DataFrame, sample: pd.Index) -> pd.DataFrame:
    return days.loc[days["customer_id"].isin(sample).to_numpy()]


def holdout_inputs(orders: pd.DataFrame, seen: dict[pd.Timestamp, pd.DataFrame], cap: int | None,
                   seed: int) -> HoldoutInputs:
    """The sample's rows of the purchase days a kernel holds (DuckDB): :class:`HoldoutInputs`.

    ``orders`` are the spend-scaled purchase days before ``as_of`` (:func:`holdout_orders`), ``seen`` those as
    known at the cut-offs (:func:`holdout_days`). With at most ``cap`` customers the tables are taken as they
    are (no copy).

    Examples
    --------
    >>> day = pd.Timestamp("2024-01-01")
    >>> orders = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(1500)], "order_date": day, "amount": 1.0})
    >>> inputs = holdout_inputs(orders, {day: orders.iloc[:0]}, cap=1000, seed=0)
    >>> inputs.customers, inputs.sample_customers, len(inputs.orders)
    (1500, 1000, 1000)
    """
    customers = customers_of(orders)
    for days in seen.values():
        customers = customers.union(customers_of(days))
    sample = holdout_customers(customers, cap, seed)
    if len(sample) < len(customers):
        orders = _rows_of(orders, sample)
        seen = {day: _rows_of(days, sample) for day, days in seen.items()}
    return HoldoutInputs(orders, seen, len(customers), len(sample))


def _typed_days(rows: pd.DataFrame) -> pd.DataFrame:
    """Spark's purchase-day rows (``customer_id, day, amount, orders``) as
    :meth:`segkit.data.engine.OrderLines.purchase_days` gives them: sorted by customer and day, the customer
    id a categorical of the sorted ids."""
    rows = rows.sort_values(["customer_id", "day"], kind="stable")
    ids = rows["customer_id"].astype("string")
    categories = pd.Index(ids.unique(), dtype="string", name="customer_id").sort_values()
    return pd.DataFrame({"customer_id": pd.Categorical(ids, categories=categories),
                         "order_date": rows["day"].to_numpy().astype("datetime64[ns]"),
                         "amount": rows["amount"].to_numpy().astype("float64"),
                         "orders": rows["orders"].to_numpy().astype("int64")})


def holdout_inputs_on_spark(ctx: Any, as_of: pd.Timestamp, settings: LifecycleSettings) -> HoldoutInputs:
    """:class:`HoldoutInputs` of the sampled customers, picked and read by Spark: only their rows are collected.

    The relational core's purchase days (as known at ``ctx.as_of``, before ``as_of``; at the cut-off; at the
    earlier cut-off) are lazy Spark frames; their distinct customers are counted, the sample's ids picked at
    :func:`segkit.data.bounded.sample_positions` (:func:`segkit.data.spark_sample.rows_at_positions`:
    at most ``settings.holdout_sample`` ids reach the driver), and each table, and the RFM base's kept value
    at ``as_of``, is semi-joined with them (broadcast) on the executors before it is collected. With at most
    ``holdout_sample`` customers no id is picked: the tables are every customer's.

    Raises
    ------
    ConfigError
        ``lifecycle.holdout_sample`` is null: the check would collect every customer's purchase days.
    """
    from pyspark.sql import functions as F

    from segkit.core.dates import resolve_as_of
    from segkit.data import relational
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint
    from segkit.steps.sources import run_lines

    cap = settings.holdout_sample
    if cap is None:  # refused before the first notebook too (segkit.steps.sources.check_engine)
        raise spark_sample_error("lifecycle", "holdout_sample")
    lines = run_lines(ctx).run(lambda held: held, canonical=True)  # lines missing an id, date or amount: refused

    def days_at(day: pd.Timestamp) -> "SparkFrame":
        return lines.frame(relational.PURCHASE_DAYS, {"as_of": pd.Timestamp(day).to_pydatetime()})

    cut = resolve_as_of(ctx.as_of, pd.Series([relational.last_order_date(lines)]))  # as the kernel reads them
    cutoff, earlier = holdout_days(as_of, settings)
    with pandas_warnings_quiet(), executor_errors():
        # The cut-offs first: the orders matched as of as_of, held last, serve 04's own tables next.
        # Each table held once on the executors: its ids are sampled and its sampled rows read from the same
        # matching of the cancellations, not a second one.
        tables = {cutoff: days_at(cutoff), earlier: days_at(earlier),
                  "orders": days_at(cut).where(F.col("day") < F.lit(pd.Timestamp(as_of).to_pydatetime()))}
        tables = {key: frame.localCheckpoint(eager=True) for key, frame in tables.items()}
        try:
            kept = lines.frame(relational.RFM_BASE, {"as_of": pd.Timestamp(as_of).to_pydatetime()})
            ids = [frame.select("customer_id") for frame in tables.values()]
            sample, customers, size = sample_on_spark(ids[0].union(ids[1]).union(ids[2]).distinct(), cap, ctx.seed)

            def picked(frame: "SparkFrame") -> "SparkFrame":
                return frame if sample is None else frame.join(sample, on="customer_id", how="left_semi")

            read = {key: _typed_days(picked(frame).select("customer_id", "day", "amount", "orders").toPandas())
                    for key, frame in tables.items()}
            values = picked(kept).select("customer_id", F.col("monetary_total").cast("double")).toPandas()
        finally:
            for frame in tables.values():
                release_checkpoint(frame)
    kept_total = pd.Series(values["monetary_total"].to_numpy(dtype="float64"), name="monetary_total",
                           index=pd.Index(values["customer_id"], dtype="string", name="customer_id")).sort_index()
    orders = holdout_orders(read.pop("orders")[["customer_id", "order_date", "amount"]], kept_total)
    return HoldoutInputs(orders, read, customers, size)


def sample_on_spark(customers: "SparkFrame", cap: int | None, seed: int) -> tuple["SparkFrame | None", int, int]:
    """The sampled customers of a Spark frame of distinct ``customer_id`` (:func:`holdout_customers` on Spark).

    The ids are counted and, when more than ``cap``, those at :func:`segkit.data.bounded.sample_positions`
    are picked by the executors (:func:`segkit.data.spark_sample.rows_at_positions`: only they reach the
    driver) and handed back as a small frame to broadcast.

    Returns
    -------
    tuple
        The sampled ids as a broadcast Spark frame (``customer_id``; None: every customer), the number of
        customers and of sampled customers.
    """
    from pyspark.sql import functions as F

    from segkit.data.spark_ranks import release_checkpoint
    from segkit.data.spark_sample import rows_at_positions

    held = customers.localCheckpoint(eager=True)  # counted, then picked from: computed once
    try:
        count = int(held.count())
        positions = sample_positions(count, cap, seed)
        if len(positions) == count:
            return None, count, count
        ids = rows_at_positions(held, ["customer_id"], positions)[["customer_id"]]
    finally:
        release_checkpoint(held)
    frame = held.sparkSession.createDataFrame(ids.astype({"customer_id": object}), "customer_id string")
    return F.broadcast(frame), count, len(positions)


def holdout_check_for(ctx: Any, as_of: pd.Timestamp, settings: LifecycleSettings,
                      orders: pd.DataFrame | None) -> HoldoutCheck:
    """04's holdout check (:func:`segkit.lifecycle.run_holdout_check`) on the seeded sample of customers.

    Parameters
    ----------
    ctx : RunContext
        The run (its clean lines, ``as_of`` and seed).
    as_of : Timestamp
        The analysis date.
    settings : LifecycleSettings
        The ``lifecycle`` section (``holdout_months``, ``holdout_sample``, the models' settings).
    orders : DataFrame or None
        DuckDB: the kernel's purchase days before ``as_of``, spend-scaled (:func:`holdout_orders`); the days as
        known at the cut-offs are read here (:func:`segkit.steps.sources.purchase_days_for`) and the sample's
        rows taken (:func:`holdout_inputs`). None (``engine.kind: spark``): Spark picks and reads the sample
        (:func:`holdout_inputs_on_spark`).

    Returns
    -------
    HoldoutCheck
        With ``customers`` and ``sample_customers`` (equal when every customer was read).
    """
    if settings.holdout_months <= 0:  # no check (run_holdout_check's own answer): nothing to read
        return HoldoutCheck()
    if orders is None:
        inputs = holdout_inputs_on_spark(ctx, as_of, settings)
    else:
        inputs = holdout_inputs(orders, {day: purchase_days_for(ctx, day) for day in holdout_days(as_of, settings)},
                                settings.holdout_sample, ctx.seed)
    check = run_holdout_check(inputs.orders, as_of, settings, seen_at=inputs.seen_at)
    return replace(check, customers=inputs.customers, sample_customers=inputs.sample_customers)


def sample_note(check: HoldoutCheck) -> str:
    """Markdown sentence: the check was judged on a seeded sample (empty when it read every customer).

    Examples
    --------
    >>> sample_note(HoldoutCheck(customers=2_500_000, sample_customers=200_000))
    'Judged on a seeded sample of 200,000 of 2,500,000 customers (`lifecycle.holdout_sample`): its counts and totals are those of the sample.'
    >>> sample_note(HoldoutCheck(customers=2_525, sample_customers=2_525))
    ''
    """
    if not check.sampled:
        return ""
    return (f"Judged on a seeded sample of {check.sample_customers:,} of {check.customers:,} customers "
            "(`lifecycle.holdout_sample`): its counts and totals are those of the sample.")


def sample_record(check: HoldoutCheck) -> dict[str, int]:
    """The keys ``clv_model.json``'s ``holdout`` block gains when the check read a sample: ``sample_customers``
    and ``customers`` (none when it read every customer, so that such runs keep their bytes).

    Examples
    --------
    >>> sample_record(HoldoutCheck(customers=2_500_000, sample_customers=200_000))
    {'sample_customers': 200000, 'customers': 2500000}
    >>> sample_record(HoldoutCheck(customers=2_525, sample_customers=2_525))
    {}
    """
    return {"sample_customers": check.sample_customers, "customers": check.customers} if check.sampled else {}
