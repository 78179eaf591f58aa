"""Notebook 04's per-customer work on Spark executors: the state and CLV input, the model fits from
bounded inputs, and ``lifecycle.parquet`` written by Spark (issue 17).

Nothing here defines a state, a stage, a model input or a score: each partition of customers runs the
one-machine functions of :mod:`segkit.lifecycle` on its customers (all of a customer's rows in one
partition), and the models are fitted on the driver by the estimators' bounded-input fits.

1. :func:`tagged_rows_on_spark`: the relational core's purchase days, kept values and first non-purchase
   orders (:meth:`segkit.data.spark.SparkLines.frame`), the run's customers (with signup dates) and campaign
   rows, tagged by ``kind`` in one frame: the one union of per-customer rows that both the work below
   (:func:`customer_rows_on_spark`: range-partitioned by ``customer_id`` and held on the executors) and the
   history tables (:func:`history_counts_on_spark`, per bucket of customers,
   :func:`history_inputs_of_rows`) read.
2. The stage thresholds: :meth:`segkit.lifecycle.StageDistributions.rows` per partition,
   :func:`segkit.data.spark_ranks.value_distributions` with
   :meth:`~segkit.lifecycle.LifecycleStager.distribution_needs`, then
   :meth:`~segkit.lifecycle.LifecycleStager.fit_distributions`.
3. :func:`segkit.lifecycle.customer_inputs` per partition (the state at ``as_of``, the CLV input, the
   first-to-second durations); BG/NBD, Gamma-Gamma and the one-time buyer model from their count tables
   (:mod:`segkit.data.spark_patterns`, :func:`segkit.lifecycle.fit_clv_tables`).
4. The at-risk reference under the fitted thresholds and every choice of the threshold widget (exact sums and
   counts per Arrow batch, :func:`segkit.lifecycle.threshold_reference_parts`, merged by
   :func:`segkit.lifecycle.threshold_references`: the one-machine means, bit for bit), the widget's stage sizes
   (:func:`segkit.lifecycle.threshold_stage_counts` per batch, added), then
   then :func:`segkit.lifecycle.lifecycle_rows` per partition, written by Spark as Parquet parts that the
   driver copies into ``artifacts/lifecycle.parquet`` batch by batch
   (:func:`segkit.core.files.copy_parquet_parts`), and the scoring input of ``customer_segments``
   (``artifacts/scoring/lifecycle_inputs.parquet``) the same way.

Before the fits, :func:`purchase_day_span_on_spark` gives ``as_of`` and the later purchases of every line
and :func:`history_span_on_spark` the data's first day, the snapshots' start and the signups after ``as_of``
(:class:`segkit.lifecycle.PurchaseDaySpan`, :class:`segkit.lifecycle.HistorySpan`: partials merged on the driver).

What reaches the driver: the count tables of the CLV fits (see :mod:`segkit.data.spark_patterns` for
their sizes; Gamma-Gamma's is of a seeded sample of at most ``lifecycle.order_value_sample`` repeat buyers),
the value distributions' rows near the needed quantiles (every distinct gap: whole days), a few numbers per
partition (the spans, the references, the widget's choices x stages counts).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd

from segkit.clv import BetaGeoModel, GammaGammaModel, OneTimeBuyerModel
from segkit.core.dates import resolve_as_of
from segkit.data import relational
from segkit.lifecycle import (
    INPUT_CLV_COLUMNS,
    INPUT_STATE_COLUMNS,
    PROSPECT_STAGES,
    STAGE_VALUES,
    STAGES,
    CLVModels,
    ExportChoice,
    HistoryCounts,
    HistorySpan,
    HistoryTables,
    LifecycleSettings,
    LifecycleStager,
    PurchaseDaySpan,
    SnapshotChances,
    StageDistributions,
    StageThresholds,
    chance_state,
    customer_inputs,
    engagement_dates,
    fit_clv_tables,
    lifecycle_rows,
    merge_reference_parts,
    purchase_history,
    snapshot_dates,
    threshold_choices,
    threshold_reference_parts,
    threshold_references,
    threshold_stage_counts,
)
from segkit.data.distribution import ValueDistribution
from segkit.data.bounded import merged_parts, partition_rows

if TYPE_CHECKING:  # the `spark` extra
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["SparkLifecycle", "HistoryInputs", "tagged_rows_on_spark", "customer_rows_on_spark",
           "customer_inputs_of_rows", "history_inputs_of_rows", "history_span_of_rows", "engagement_of_rows",
           "stage_rows_of_rows", "purchase_days_frame", "purchase_day_span_on_spark",
           "history_span_on_spark", "stage_distributions_on_spark", "fit_clv_on_spark",
           "chance_references_on_spark", "threshold_counts_on_spark", "write_lifecycle_on_spark",
           "history_counts_on_spark", "lifecycle_on_spark", "INPUTS_SCHEMA"]


#: Spark schema of :func:`segkit.lifecycle.customer_inputs`' rows.
INPUTS_SCHEMA = ", ".join(
    ["customer_id string"]
    + [f"state_{c} " + {"n_purchases": "bigint", "first_purchase": "timestamp_ntz", "last_purchase": "timestamp_ntz",
                        "has_orders": "boolean", "engaged": "boolean"}.get(c, "double") for c in INPUT_STATE_COLUMNS]
    + [f"clv_{c} double" for c in INPUT_CLV_COLUMNS]
    + ["first_repeat_days double", "first_repeat_seen boolean", "kept_total double"])


@dataclass
class SparkLifecycle:
    """What :func:`lifecycle_on_spark` fitted, counted and wrote (nothing per customer)."""

    models: CLVModels
    stager: LifecycleStager
    longest_wait: float          # longest first-to-second (or censored) wait of a buyer, in days
    prospects: int               # customers staged prospect or engaged_prospect
    prospects_with_signup: int   # of them with a signup date
    span: HistorySpan            # purchase days before as_of, the data's first day, signups after as_of
    gaps: ValueDistribution      # every gap between purchase days (StageDistributions.gap_days)
    choices: dict[str, StageThresholds]  # the threshold widget's choices (segkit.lifecycle.threshold_choices)
    choice_counts: np.ndarray    # customers per stage under each choice (choices x STAGES)
    history: HistoryTables       # snapshots, transitions, period rates, cohorts (history_counts_on_spark)


class HistoryInputs(NamedTuple):
    """What :meth:`segkit.lifecycle.HistoryCounts.of` reads of a part of the customers
    (:func:`history_inputs_of_rows`)."""

    history: pd.DataFrame             # purchase_history of their purchase days before as_of
    customers: pd.DataFrame           # customer_id (and signup_date when known)
    engagement: pd.Series | None      # engagement_dates: first engaged send per customer
    non_purchase: pd.DataFrame        # customer_id, first_order_date


def _kind(rows: pd.DataFrame, kind: str, columns: list[str]) -> pd.DataFrame:
    return rows.loc[(rows["kind"] == kind).to_numpy(), columns].reset_index(drop=True)


def _days(rows: pd.DataFrame) -> pd.DataFrame:
    days = _kind(rows, "day", ["customer_id", "order_date", "amount"])
    return days.astype({"customer_id": "string", "order_date": "datetime64[ns]", "amount": "float64"})


def engagement_of_rows(rows: pd.DataFrame, engagement_columns: tuple[str, ...]) -> pd.Series | None:
    """:func:`segkit.lifecycle.engagement_dates` of the ``campaign`` rows among the tagged rows (None without
    campaign rows carrying an engagement column)."""
    present = [c for c in engagement_columns if c in rows.columns]
    if "sent_at" not in rows.columns or not present:
        return None
    campaign = _kind(rows, "campaign", ["customer_id", "sent_at", *present])
    return engagement_dates(campaign.astype({"customer_id": "string", "sent_at": "datetime64[ns]"}), engagement_columns)


def _non_purchase(rows: pd.DataFrame) -> pd.DataFrame:
    return _kind(rows, "non_purchase", ["customer_id", "first_order_date", "first_purchase_date"]).astype(
        {"customer_id": "string", "first_order_date": "datetime64[ns]", "first_purchase_date": "datetime64[ns]"})


def customer_inputs_of_rows(rows: pd.DataFrame, as_of: pd.Timestamp, data_start: pd.Timestamp | None,
                            engagement_columns: tuple[str, ...]) -> pd.DataFrame:
    """:func:`segkit.lifecycle.customer_inputs` of the tagged rows of :func:`customer_rows_on_spark` (one
    partition of customers, or all of them)."""
    kept = _kind(rows, "kept", ["customer_id", "kept"])
    kept_total = pd.Series(kept["kept"].to_numpy(dtype="float64"),
                           index=pd.Index(kept["customer_id"], dtype="string", name="customer_id"))
    customers = _kind(rows, "customer", ["customer_id"]).astype({"customer_id": "string"})
    return customer_inputs(_days(rows), kept_total, as_of, customers, engagement_of_rows(rows, engagement_columns),
                           _non_purchase(rows), data_start)


def _customers(rows: pd.DataFrame) -> pd.DataFrame:
    customers = _kind(rows, "customer", ["customer_id", *(["signup_date"] if "signup_date" in rows.columns else [])])
    return customers.astype({"customer_id": "string", **({"signup_date": "datetime64[ns]"}
                                                         if "signup_date" in customers.columns else {})})


def history_inputs_of_rows(rows: pd.DataFrame, engagement_columns: tuple[str, ...]) -> HistoryInputs:
    """The inputs of :meth:`segkit.lifecycle.HistoryCounts.of` of the customers of the tagged rows of
    :func:`tagged_rows_on_spark` (one bucket of customers, or all of them): their purchase history
    (:func:`segkit.lifecycle.purchase_history` of the ``day`` rows, dated before ``as_of`` already), customers
    with their signup dates, engagement and first non-purchase orders."""
    return HistoryInputs(purchase_history(_days(rows)), _customers(rows), engagement_of_rows(rows, engagement_columns),
                         _non_purchase(rows)[["customer_id", "first_order_date"]])


def history_span_of_rows(rows: pd.DataFrame, as_of: pd.Timestamp) -> HistorySpan:
    """:meth:`segkit.lifecycle.HistorySpan.of` of the customers of the tagged rows (one partition of
    customers, or all of them): their purchase days, first non-purchase orders and signup dates."""
    return HistorySpan.of(_days(rows), _non_purchase(rows), _customers(rows), as_of)


def stage_rows_of_rows(rows: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """:meth:`segkit.lifecycle.StageDistributions.rows` of the purchase days among the tagged rows."""
    days = _days(rows)
    if days.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in STAGE_VALUES})
    return StageDistributions.rows(purchase_history(days), as_of)


def tagged_rows_on_spark(ctx: Any, as_of: pd.Timestamp, days_as_of: pd.Timestamp | None,
                         engagement_columns: tuple[str, ...]) -> "SparkFrame":
    """Every row 04 reads per customer, tagged by ``kind``, as one lazy Spark frame: what the state, the CLV
    input and the stages at ``as_of`` (:func:`customer_rows_on_spark`) and the history tables
    (:func:`history_counts_on_spark`) are computed from, per part of the customers.

    ``day``: the core's purchase days as seen at ``days_as_of`` (None: every line), before ``as_of``
    (``order_date, amount``); ``kept``: the RFM base's ``monetary_total`` at ``as_of``; ``non_purchase``: the
    core's first non-purchase orders (``first_order_date, first_purchase_date``); ``customer``:
    ``customers_clean``'s ids (and ``signup_date`` when it has one); ``campaign``: ``campaign_clean``'s send dates
    and engagement columns (when the run has one).
    """
    from pyspark.sql import functions as F

    from segkit.data.spark import timestamps_from_nanoseconds
    from segkit.steps.spark_scoring import run_reader

    lines = _run_lines(ctx)
    days = purchase_days_frame(lines, days_as_of).where(F.col("day") < F.lit(pd.Timestamp(as_of).to_pydatetime()))
    frames = [days.select("customer_id", F.lit("day").alias("kind"), F.col("day").alias("order_date"),
                          F.col("amount").cast("double").alias("amount")),
              lines.frame(relational.RFM_BASE, {"as_of": pd.Timestamp(as_of).to_pydatetime()}).select(
                  "customer_id", F.lit("kept").alias("kind"), F.col("monetary_total").cast("double").alias("kept")),
              lines.frame(relational.FIRST_NON_PURCHASE).select(
                  "customer_id", F.lit("non_purchase").alias("kind"), "first_order_date", "first_purchase_date")]
    read = run_reader(ctx)
    customers = timestamps_from_nanoseconds(read.parquet(str(ctx.artifact_path("customers_clean"))))
    signup = ([F.col("signup_date").cast("timestamp_ntz").alias("signup_date")]
              if "signup_date" in customers.columns else [])
    frames.append(customers.select(F.col("customer_id").cast("string").alias("customer_id"),
                                   F.lit("customer").alias("kind"), *signup))
    if ctx.has_artifact("campaign_clean"):
        campaign = timestamps_from_nanoseconds(read.parquet(str(ctx.artifact_path("campaign_clean"))))
        present = [c for c in engagement_columns if c in campaign.columns]
        if present and "customer_id" in campaign.columns:
            sent = F.col("sent_at") if "sent_at" in campaign.columns else F.lit(None).cast("timestamp_ntz")
            frames.append(campaign.select(F.col("customer_id").cast("string").alias("customer_id"),
                                          F.lit("campaign").alias("kind"), sent.alias("sent_at"),
                                          *[F.col(c).cast("boolean").alias(c) for c in present]))
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame, allowMissingColumns=True)
    return rows


def _run_lines(ctx: Any) -> Any:
    """The run's clean lines on Spark (:func:`segkit.steps.sources.run_lines`); lines missing an id, date or
    amount are refused."""
    from segkit.steps.sources import run_lines

    return run_lines(ctx).run(lambda held: held, canonical=True)


def purchase_days_frame(lines: Any, days_as_of: pd.Timestamp | None) -> "SparkFrame":
    """The relational core's purchase days (:data:`segkit.data.relational.PURCHASE_DAYS`: ``customer_id, day,
    amount, orders``) of ``lines`` (:class:`segkit.data.spark.SparkLines`) as seen at ``days_as_of`` (None:
    every line), as a lazy Spark frame."""
    cut = resolve_as_of(days_as_of, pd.Series([relational.last_order_date(lines)]))
    return lines.frame(relational.PURCHASE_DAYS, {"as_of": pd.Timestamp(cut).to_pydatetime()})


def purchase_day_span_on_spark(ctx: Any, as_of: pd.Timestamp | None,
                               days_as_of: pd.Timestamp | None = None) -> PurchaseDaySpan:
    """:class:`segkit.lifecycle.PurchaseDaySpan` of the run's purchase days as seen at ``days_as_of`` (None: of
    every line), counted per Arrow batch on the executors (``as_of``: the run's, None = nothing is later): what
    the one-machine path reads of ``purchase_days_for(ctx, days_as_of)``, without it."""
    from pyspark.sql import functions as F

    days = purchase_days_frame(_run_lines(ctx), days_as_of).select(F.col("day").alias("order_date"), "orders")
    return merged_parts(days, lambda batch: PurchaseDaySpan.of(batch, as_of), PurchaseDaySpan.merge)


def history_span_on_spark(rows: "SparkFrame", as_of: pd.Timestamp) -> HistorySpan:
    """:class:`segkit.lifecycle.HistorySpan` of the customers of ``rows`` (:func:`customer_rows_on_spark`),
    one part per partition of customers (:func:`history_span_of_rows`), merged on the driver."""
    return merged_parts(rows, lambda part: history_span_of_rows(part, as_of), HistorySpan.merge, whole=True)


def customer_rows_on_spark(ctx: Any, as_of: pd.Timestamp, days_as_of: pd.Timestamp | None,
                           engagement_columns: tuple[str, ...], partitions: int | None = None) -> "SparkFrame":
    """:func:`tagged_rows_on_spark`, range-partitioned by ``customer_id`` (``partitions``; default
    ``spark.sql.shuffle.partitions``) and held on the executors (``localCheckpoint``; release it with
    :func:`segkit.data.spark_ranks.release_checkpoint`)."""
    rows = tagged_rows_on_spark(ctx, as_of, days_as_of, engagement_columns)
    count = partitions or int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return rows.repartitionByRange(count, "customer_id").localCheckpoint(eager=True)


def _schema(frame: pd.DataFrame) -> str:
    kinds = {"string": "string", "int64": "bigint", "float64": "double", "bool": "boolean",
             "datetime64[ns]": "timestamp_ntz", "boolean": "boolean"}
    return ", ".join(f"`{c}` {kinds[str(t)]}" for c, t in frame.dtypes.items())


def stage_distributions_on_spark(rows: "SparkFrame", stager: LifecycleStager, as_of: pd.Timestamp,
                                 partitions: int | None = None) -> StageDistributions:
    """The :class:`segkit.lifecycle.StageDistributions` of every partition of ``rows``
    (:func:`customer_rows_on_spark`) together, with the rows ``stager``'s fit needs
    (:meth:`~segkit.lifecycle.LifecycleStager.distribution_needs`) and every gap (whole days, bounded by the
    data's days: 04 shows them all, :meth:`~segkit.lifecycle.StageDistributions.gap_days`)."""
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, value_distributions

    def values(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = partition_rows(batches)
        if found is not None:
            yield stage_rows_of_rows(found, as_of)

    needs = stager.distribution_needs()
    needs["gaps"] = replace(needs["gaps"], max_exact=sys.maxsize)
    with pandas_warnings_quiet(), executor_errors():
        frame = rows.mapInPandas(values, ", ".join(f"{name} double" for name in STAGE_VALUES))
        distributions = value_distributions(frame, needs, partitions, missing="skip")
    return StageDistributions(**{name: distributions[name] for name in STAGE_VALUES})


def inputs_on_spark(rows: "SparkFrame", as_of: pd.Timestamp, data_start: pd.Timestamp | None,
                    engagement_columns: tuple[str, ...]) -> "SparkFrame":
    """:func:`segkit.lifecycle.customer_inputs` of every partition of ``rows``, held on the executors."""
    from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    def inputs(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = partition_rows(batches)
        if found is not None:
            yield frame_for_arrow(customer_inputs_of_rows(found, as_of, data_start, engagement_columns))

    with pandas_warnings_quiet(), executor_errors():
        return rows.mapInPandas(inputs, INPUTS_SCHEMA).localCheckpoint(eager=True)


def fit_clv_on_spark(inputs: "SparkFrame", settings: LifecycleSettings, seed: int = 0) -> tuple[CLVModels, float]:
    """BG/NBD, Gamma-Gamma and the one-time buyer model from the count tables of ``inputs``
    (:func:`segkit.lifecycle.customer_inputs` rows): :func:`segkit.lifecycle.fit_clv_tables`, equal to
    :func:`segkit.lifecycle.fit_clv_models` of the same customers with the same ``seed`` (the run's: Gamma-Gamma
    reads the seeded sample of at most ``settings.order_value_sample`` repeat buyers that the DuckDB run reads,
    :func:`segkit.data.spark_patterns.order_value_sample_counts`); and the longest first-to-second wait."""
    from segkit.data.spark_patterns import first_repeat_counts, order_value_sample_counts, purchase_pattern_counts

    first_repeat = first_repeat_counts(inputs, days="first_repeat_days", repeated="first_repeat_seen")
    pairs, repeat_buyers = order_value_sample_counts(inputs, settings.order_value_sample, seed)
    models = fit_clv_tables(purchase_pattern_counts(inputs), pairs, first_repeat, settings, repeat_buyers)
    longest = float(first_repeat["days"].max()) if len(first_repeat) else float("nan")
    return models, longest


def _parts(frame: "SparkFrame", folder: str) -> list:
    from segkit.core.files import parquet_parts

    frame.write.mode("overwrite").parquet(folder)
    return parquet_parts(folder)


class _ShippedModels:
    """Fitted CLV models as they travel to the executors: their JSON (rebuilt there once per process)."""

    def __init__(self, models: CLVModels):
        self.text = json.dumps({"bgnbd": None if models.bgnbd is None else models.bgnbd.to_dict(),
                                "gamma_gamma": None if models.gamma_gamma is None else models.gamma_gamma.to_dict(),
                                "one_time": None if models.one_time is None else models.one_time.to_dict()})
        self.choice = models.choice
        self._models: CLVModels | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"text": self.text, "choice": self.choice, "_models": None}

    def models(self) -> CLVModels:
        if self._models is None:
            fitted = json.loads(self.text)
            self._models = CLVModels(
                bgnbd=BetaGeoModel.from_dict(fitted["bgnbd"]) if fitted["bgnbd"] else None,
                gamma_gamma=GammaGammaModel.from_dict(fitted["gamma_gamma"]) if fitted["gamma_gamma"] else None,
                warnings=[], one_time=OneTimeBuyerModel.from_dict(fitted["one_time"]) if fitted["one_time"] else None,
                choice=self.choice)
        return self._models


def chance_references_on_spark(inputs: "SparkFrame", models: CLVModels,
                               thresholds: Sequence[StageThresholds]) -> list[float]:
    """The at-risk rule's reference under each of ``thresholds`` over every customer of ``inputs``
    (:func:`segkit.lifecycle.customer_inputs` rows): :func:`segkit.lifecycle.threshold_reference_parts` of
    every Arrow batch (exact sums), merged (:func:`segkit.lifecycle.threshold_references`): the one-machine
    means, bit for bit. NaN without BG/NBD."""
    if models.bgnbd is None:
        return [float("nan")] * len(thresholds)
    shipped, listed = _ShippedModels(models), list(thresholds)

    def part(batch: pd.DataFrame) -> list[tuple[int, int]]:
        return threshold_reference_parts(chance_state(batch, shipped.models()), listed)

    return threshold_references([merged_parts(inputs, part, merge_reference_parts)])


def threshold_counts_on_spark(inputs: "SparkFrame", models: CLVModels, choices: Sequence[StageThresholds],
                              references: Sequence[float]) -> np.ndarray:
    """Customers per stage of every customer of ``inputs`` under each of ``choices`` (the threshold widget):
    :func:`segkit.lifecycle.threshold_stage_counts` of every Arrow batch with the whole base's ``references``
    (:func:`chance_references_on_spark`), added on the driver; ``(choices, STAGES)``."""
    shipped, listed, known = _ShippedModels(models), list(choices), models.bgnbd is not None

    def part(batch: pd.DataFrame) -> np.ndarray:
        return threshold_stage_counts(chance_state(batch, shipped.models()), listed, references, known)

    def added(parts: list[np.ndarray]) -> np.ndarray:
        return (np.sum(parts, axis=0, dtype="int64") if parts
                else np.zeros((len(listed), len(STAGES)), dtype="int64"))

    return merged_parts(inputs, part, added)


def write_lifecycle_on_spark(ctx: Any, inputs: "SparkFrame", models: CLVModels, thresholds: StageThresholds,
                             settings: LifecycleSettings, stage_info: pd.DataFrame,
                             reference: float) -> tuple[int, int]:
    """Stage and score every customer of ``inputs`` per partition (:func:`segkit.lifecycle.lifecycle_rows`, with
    ``reference``: the at-risk rule's reference over every customer, :func:`chance_references_on_spark`) and
    write ``artifacts/lifecycle.parquet`` (the DuckDB run's columns, dtypes and row order) and the scoring
    input of ``customer_segments``; returns (prospects, prospects with a signup date)."""
    from pyspark.sql import functions as F

    from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet, timestamps_from_nanoseconds
    from segkit.data.spark_ranks import executor_errors
    from segkit.steps.pipeline import SPARK_SCORING_FOLDER
    from segkit.core.files import copy_parquet_parts
    from segkit.steps.spark_scoring import CLV_COLUMNS, LIFECYCLE_INPUTS, STATE_COLUMNS, run_reader, save_stage_thresholds

    shipped = _ShippedModels(models)
    template = lifecycle_rows(pd.DataFrame({c: pd.Series(dtype="float64") for c in inputs.columns}).astype(
        {"customer_id": "string"}), models, thresholds, settings, stage_info, reference)
    dtypes = {c: str(t) for c, t in template.dtypes.items()}

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        here = shipped.models()
        for batch in batches:
            if len(batch):
                yield frame_for_arrow(lifecycle_rows(batch, here, thresholds, settings, stage_info, reference).astype(dtypes))

    folder = ctx.artifacts_dir / f".lifecycle.parquet.{os.getpid()}.parts"
    scoring = ctx.artifacts_dir / SPARK_SCORING_FOLDER
    try:
        with pandas_warnings_quiet(), executor_errors():
            copy_parquet_parts(_parts(inputs.mapInPandas(score, _schema(template)), str(folder)),
                               ctx.artifact_path("lifecycle"), dtypes)
            shutil.rmtree(folder, ignore_errors=True)
            selected = inputs.select("customer_id", *[F.col(f"state_{c}") for c in STATE_COLUMNS],
                                     *[F.col(f"clv_{c}") for c in CLV_COLUMNS])
            scoring.mkdir(parents=True, exist_ok=True)
            input_types = {"customer_id": "string", **{f"state_{c}": "float64" for c in STATE_COLUMNS},
                           "state_n_purchases": "int64", "state_engaged": "bool", "state_has_orders": "bool",
                           **{f"clv_{c}": "float64" for c in CLV_COLUMNS}}
            copy_parquet_parts(_parts(selected, str(folder)), scoring / LIFECYCLE_INPUTS,
                               {c: input_types[c] for c in selected.columns})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    save_stage_thresholds(ctx, thresholds)
    read = run_reader(ctx)
    written = timestamps_from_nanoseconds(read.parquet(str(ctx.artifact_path("lifecycle"))))
    prospects = written.where(F.col("lifecycle_stage").isin(list(PROSPECT_STAGES))).select("customer_id")
    customers = read.parquet(str(ctx.artifact_path("customers_clean")))
    signed = 0
    if "signup_date" in customers.columns:
        known = customers.groupBy(F.col("customer_id").cast("string").alias("customer_id")).agg(
            F.first("signup_date").alias("signup_date"))
        signed = prospects.join(known, "customer_id").where(F.col("signup_date").isNotNull()).count()
    return int(prospects.count()), int(signed)


def lifecycle_on_spark(ctx: Any, settings: LifecycleSettings, stage_info: pd.DataFrame, as_of: pd.Timestamp,
                       days_as_of: pd.Timestamp | None, choice: ExportChoice | None,
                       partitions: int | None = None) -> SparkLifecycle:
    """Notebook 04's fits, ``lifecycle.parquet`` and its per-customer aggregates on Spark (steps 1-4 of the
    module notes): the :class:`~segkit.lifecycle.HistorySpan` (the data's first day, the snapshots' start,
    signups after ``as_of``), the gaps, the stage sizes under every choice of the threshold widget, and the
    history tables (:func:`history_counts_on_spark` of the same held rows: the union is read once).

    ``choice`` is the export variant the holdout check chose; ``days_as_of`` what the purchase days are read
    as seen at (``ctx.as_of``: None = every line).

    Raises
    ------
    DataError
        No purchase is dated before ``as_of`` (:meth:`~segkit.lifecycle.HistorySpan.require_purchases`).
    """
    from segkit.data.spark_ranks import release_checkpoint

    rows = customer_rows_on_spark(ctx, as_of, days_as_of, settings.engagement_columns, partitions)
    inputs = None
    try:
        span = history_span_on_spark(rows, as_of).require_purchases(as_of)
        stager = settings.stager()
        distributions = stage_distributions_on_spark(rows, stager, as_of, partitions)
        stager.fit_distributions(distributions, as_of, span.data_start)
        gaps = distributions.gap_days()
        choices = threshold_choices(stager.thresholds_, gaps)
        inputs = inputs_on_spark(rows, as_of, stager.data_start_, settings.engagement_columns)
        models, longest = fit_clv_on_spark(inputs, settings, ctx.seed)
        models = replace(models, choice=choice)
        references = chance_references_on_spark(inputs, models, [stager.thresholds_, *choices.values()])
        choice_counts = threshold_counts_on_spark(inputs, models, list(choices.values()), references[1:])
        prospects, signed = write_lifecycle_on_spark(ctx, inputs, models, stager.thresholds_, settings, stage_info,
                                                     references[0])
        release_checkpoint(inputs)
        inputs = None
        dates = snapshot_dates(span.first_purchase, as_of, settings.snapshot_freq)
        counts = history_counts_on_spark(rows, stager, dates, as_of, models, settings.engagement_columns, partitions)
        history = HistoryTables.of(counts, dates, as_of, stager.first_seen_until_)
    finally:
        release_checkpoint(rows)
        if inputs is not None:
            release_checkpoint(inputs)
    return SparkLifecycle(models, stager, longest, prospects, signed, span, gaps, choices, choice_counts, history)


def history_counts_on_spark(frame: "SparkFrame", stager: LifecycleStager, dates: pd.DataFrame,
                            as_of: pd.Timestamp, models: CLVModels, engagement_columns: tuple[str, ...],
                            partitions: int | None = None) -> HistoryCounts:
    """The :class:`~segkit.lifecycle.HistoryCounts` of the customers of ``frame`` (tagged rows,
    :func:`tagged_rows_on_spark`; held by :func:`lifecycle_on_spark`), counted on the executors: the rows grouped into
    ``partitions`` buckets of customers (hash of the id; default ``spark.sql.shuffle.partitions``; a bucket's rows
    are one pandas frame), each bucket counted (:meth:`~segkit.lifecycle.HistoryCounts.of` of
    :func:`history_inputs_of_rows`) and the counts merged on the driver.
    With BG/NBD, a first pass gives the at-risk rule's reference at every snapshot over the whole base
    (:class:`~segkit.lifecycle.SnapshotChances`, two numbers per snapshot and bucket): a bucket must not
    compare its customers with its own mean. What reaches the driver is bounded by the buckets, snapshots,
    stages and cohort months, not the customers.
    """
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint

    count = partitions or int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    held = frame.selectExpr("*", f"pmod(xxhash64(customer_id), {count}) AS bucket").localCheckpoint(eager=True)
    bgnbd, one_time, choice = models.bgnbd, models.one_time, models.choice

    def merged(count_part: Callable[[HistoryInputs], Any]) -> list[Any]:
        def part(rows: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"part": [pickle.dumps(count_part(history_inputs_of_rows(rows, engagement_columns)))]})

        with pandas_warnings_quiet(), executor_errors():
            found = held.groupBy("bucket").applyInPandas(part, "part binary").collect()
        return [pickle.loads(row["part"]) for row in found]

    try:
        references = None
        if bgnbd is not None:
            def chances(inputs: HistoryInputs) -> SnapshotChances:
                return SnapshotChances.of(stager, inputs.history, dates, bgnbd, one_time, choice)

            references = SnapshotChances.merge(merged(chances)).references()

        def counted(inputs: HistoryInputs) -> HistoryCounts:
            return HistoryCounts.of(stager, inputs.history, dates, as_of, inputs.customers, inputs.engagement, bgnbd,
                                    one_time, choice, inputs.non_purchase, references)

        return HistoryCounts.merge(merged(counted))
    finally:
        release_checkpoint(held)
