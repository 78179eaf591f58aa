"""Notebook 05's per-recipient work on Spark executors (issue 17).

Nothing here defines a metric, a label or a flag: each partition runs the pandas function the one-machine
evaluation applies to the whole table, and the models are fitted on the driver from bounded inputs.

- :func:`evaluation_parts_on_spark`: :func:`segkit.campaign.partials.evaluation_parts` per partition of the
  prepared campaign rows (all rows of a customer in one partition), sent to the driver as JSON
  (:meth:`~segkit.campaign.partials.EvaluationParts.to_json`: exact sums as whole numbers) and merged there,
  so :func:`segkit.campaign.evaluate.evaluate_parts` shows the one-machine numbers bit for bit. What reaches the
  driver: one text per partition, at most (dimensions + 1) × campaigns × segments × arms cells.
- :func:`retention_on_spark`: the relational core's RETENTION of the rows, joined back on the executors.
- :func:`rfm_segments_on_spark`, :func:`lifecycle_stages_on_spark`: the labels at each send, the scorer and the
  stager refitted per send from value distributions (:mod:`segkit.data.spark_ranks`); the labels stay on the
  executors; :func:`recipient_labels_on_spark` brings the recipients' labels to the driver (what 05 on Spark
  does today: :func:`segkit.steps.campaign.labels_at_send`).

Not yet on the executors (05 on Spark still holds them in the kernel): the campaign rows and their preparation,
the cluster names at each send, the retention flags and the evaluation's rows (the two functions above exist and
are tested, not yet called by the step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.campaign.partials import EvaluationParts, evaluation_parts
from segkit.campaign.prepare import lifecycle_stages_staged, rfm_segments_scored, send_scorer, send_table
from segkit.data.relational import (
    PURCHASE_DAYS_AT_SEND,
    RECIPIENTS_TYPING,
    RETENTION,
    RFM_AT_SEND,
    RFM_COLUMNS,
    register_sends,
    retention_parameters,
    retention_recipients,
    typed_result,
)
from segkit.lifecycle import STAGE_VALUES, StageDistributions, purchase_history
from segkit.rfm import RFMScorer, fit_needs

if TYPE_CHECKING:  # the `spark` extra
    from pyspark.sql import DataFrame as SparkFrame

    from segkit.data.spark import SparkLines

__all__ = ["evaluation_parts_on_spark", "retention_on_spark", "rfm_segments_on_spark", "lifecycle_stages_on_spark",
           "recipient_labels_on_spark", "SPARK_DIMENSIONS", "PARTS_SCHEMA", "ROW_ID",
           "SEND_LABELS_SCHEMA"]

#: Spark schema of a partition's :class:`EvaluationParts` (one row).
PARTS_SCHEMA = "parts string"
#: Spark schema of the labels at each send (one row per campaign and customer with a purchase before it).
SEND_LABELS_SCHEMA = "campaign_id string, customer_id string, label string"
#: The column that numbers the campaign rows on Spark (unique, held: :func:`retention_on_spark` joins by it).
ROW_ID = "recipient_row"


def _concat(batches: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
    found = [b for b in batches if len(b)]
    if not found:
        return None
    return pd.concat(found, ignore_index=True) if len(found) > 1 else found[0]


def evaluation_parts_on_spark(rows: "SparkFrame", dimensions: Sequence[str],
                              partitions: int | None = None) -> EvaluationParts:
    """:func:`segkit.campaign.partials.evaluation_parts` of every partition of ``rows``, merged on the driver.

    Parameters
    ----------
    rows : pyspark.sql.DataFrame
        Prepared campaign rows (:func:`segkit.campaign.prepare.prepare_campaign`'s columns, ``retained``,
        and one label column per dimension of ``dimensions``; ``campaign_id, segment, arm`` and the labels as
        text).
    dimensions : sequence of str
        The label columns to segment by (``"none"`` is always added).
    partitions : int, optional
        Partitions of the rows by ``customer_id`` (default: ``spark.sql.shuffle.partitions``); every
        customer's rows are in one, so the distinct customers add up.

    Returns
    -------
    EvaluationParts
        Equal to :func:`~segkit.campaign.partials.evaluation_parts` of all the rows.
    """
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    dims = list(dimensions)

    def parts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        whole = _concat(batches)
        if whole is not None:
            yield pd.DataFrame({"parts": [evaluation_parts(whole, dims).to_json()]})

    count = partitions or int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    with pandas_warnings_quiet(), executor_errors():
        collected = rows.repartition(count, "customer_id").mapInPandas(parts, PARTS_SCHEMA).collect()
    return EvaluationParts.merge([EvaluationParts.from_json(row["parts"]) for row in collected])


def retention_on_spark(lines: "SparkLines", rows: "SparkFrame", first_sent: Mapping[str, Any], days: int,
                       end: pd.Timestamp | None) -> "SparkFrame":
    """``rows`` with the column ``retained`` of :func:`segkit.campaign.prepare.retention_flags`, computed on the
    executors: the relational core's :data:`~segkit.data.relational.RETENTION` read from the recipients of every
    partition (:func:`~segkit.data.relational.retention_recipients`: a row without a send time takes its
    campaign's first, ``first_sent`` of all the rows) and joined back by :data:`ROW_ID`.

    Parameters
    ----------
    lines : SparkLines
        The run's order lines on Spark.
    rows : pyspark.sql.DataFrame
        Campaign rows with ``campaign_id, customer_id, sent_at`` and a unique :data:`ROW_ID` (bigint).
    first_sent : mapping
        Campaign id -> its first send time (NaT / None when it has none).
    days, end
        The retention window and the last day it may end (None = the day after the last purchase).
    """
    from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    if "sent_at" not in rows.columns:  # no send time at all: every flag unknown
        return rows.drop("retained").selectExpr("*", "CAST(NULL AS DOUBLE) AS retained")
    firsts = {str(k): (None if pd.isna(v) else pd.Timestamp(v)) for k, v in first_sent.items()}

    def recipients(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            out = retention_recipients(batch, firsts)
            known = ~np.isnat(out["sent_at"].to_numpy(dtype="datetime64[ns]"))
            yield frame_for_arrow(out.assign(**{ROW_ID: batch[ROW_ID].to_numpy(dtype=np.int64)})[known])

    schema = f"{ROW_ID} bigint, customer_id string, sent_at timestamp_ntz"
    with pandas_warnings_quiet(), executor_errors():
        sent = rows.select(ROW_ID, "campaign_id", "customer_id", "sent_at").mapInPandas(recipients, schema)
        lines.register("recipients", sent, RECIPIENTS_TYPING)
        flags = lines.frame(RETENTION, retention_parameters(days, end))
        return rows.drop("retained").join(flags.selectExpr(ROW_ID, "retained"), ROW_ID, "left")


def rfm_segments_on_spark(lines: "SparkLines", sends: pd.DataFrame, rfm_settings: Any,
                          partitions: int | None = None) -> "SparkFrame":
    """The RFM segment of every customer with a purchase before each send, computed on the executors: equal
    to :func:`segkit.campaign.prepare.rfm_segments` of each send's base (:data:`~segkit.data.relational.RFM_AT_SEND`).

    Per send, the scorer (:func:`~segkit.campaign.prepare.send_scorer`) is fitted on the driver from the value
    distributions of its base (:func:`segkit.data.spark_ranks.value_distributions`,
    :meth:`segkit.rfm.RFMScorer.fit_distributions`: the pandas fit's bounds); each partition of the bases
    is labelled by :func:`~segkit.campaign.prepare.rfm_segments_scored` with its send's scorer.

    Parameters
    ----------
    lines : SparkLines
        The run's order lines on Spark.
    sends : DataFrame
        ``campaign_id, send_date`` (dated sends only; bounded: one row per campaign).
    rfm_settings : RFMSettings
        Notebook 02's settings (``bins``, monetary column, segment map).
    partitions : int, optional
        Range partitions of the bases by campaign and customer (default ``spark.sql.shuffle.partitions``).

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEND_LABELS_SCHEMA` (``label`` = the RFM segment), held on the executors.
    """
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, value_distributions

    register_sends(lines, sends)
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    bases = lines.frame(RFM_AT_SEND).repartitionByRange(count, "campaign_id", "customer_id").localCheckpoint(eager=True)
    sizes = {str(r["campaign_id"]): int(r["n"]) for r in bases.groupBy("campaign_id").agg(F.count("*").alias("n"))
             .collect()}
    scorers: dict[str, dict] = {}
    with executor_errors():
        for campaign_id in sends["campaign_id"].astype(str):
            if not sizes.get(campaign_id):
                continue
            scorer = send_scorer(rfm_settings)
            distributions = value_distributions(bases.where(F.col("campaign_id") == campaign_id), fit_needs(scorer))
            scorer.fit_distributions({"r": distributions[scorer.recency_col], "f": distributions[scorer.frequency_col],
                                      "m": distributions[scorer.monetary_col]})
            scorers[campaign_id] = scorer.to_dict()

    def labels(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = {cid: RFMScorer.from_dict(model) for cid, model in scorers.items()}
        for batch in batches:
            for campaign_id, rows in batch.groupby("campaign_id", sort=True):
                rfm = typed_result(rows.drop(columns="campaign_id").reset_index(drop=True), RFM_COLUMNS)
                named = rfm_segments_scored(rfm, fitted[str(campaign_id)], rfm_settings)
                yield pd.DataFrame({"campaign_id": str(campaign_id), "customer_id": named.index.astype(str),
                                    "label": named.to_numpy(dtype=object)})

    with pandas_warnings_quiet(), executor_errors():
        return bases.mapInPandas(labels, SEND_LABELS_SCHEMA)


#: The purchase days of a send's history as :func:`segkit.lifecycle.purchase_history` reads them.
DAY_COLUMNS = ["customer_id", "order_date", "amount", "orders"]


def _send_days(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of :data:`~segkit.data.relational.PURCHASE_DAYS_AT_SEND` (one send) as the pandas runner types them."""
    return typed_result(rows.rename(columns={"day": "order_date"}).reset_index(drop=True), DAY_COLUMNS)


def lifecycle_stages_on_spark(lines: "SparkLines", sends: pd.DataFrame, lifecycle_settings: Any,
                              partitions: int | None = None) -> "SparkFrame":
    """The lifecycle stage of every customer with a purchase before each send, computed on the executors: equal
    to :func:`segkit.campaign.prepare.lifecycle_stages` of each send's purchase days
    (:data:`~segkit.data.relational.PURCHASE_DAYS_AT_SEND`).

    Per send, the stager (``lifecycle_settings.stager()``) is fitted on the driver from the stage distributions
    of its buyers (:meth:`segkit.lifecycle.StageDistributions.rows` per partition,
    :func:`segkit.data.spark_ranks.value_distributions`, :meth:`~segkit.lifecycle.LifecycleStager.fit_distributions`
    with the first purchase day before the send, the minimum of the partitions' firsts: the pandas fit); each
    partition is staged by :func:`~segkit.campaign.prepare.lifecycle_stages_staged` with its send's stager.

    Parameters
    ----------
    lines : SparkLines
        The run's order lines on Spark.
    sends : DataFrame
        ``campaign_id, send_date`` (dated sends only).
    lifecycle_settings : LifecycleSettings
        Notebook 04's settings.
    partitions : int, optional
        Range partitions by campaign and customer (default ``spark.sql.shuffle.partitions``).

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEND_LABELS_SCHEMA` (``label`` = the lifecycle stage).
    """
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, value_distributions

    register_sends(lines, sends)
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    held = lines.frame(PURCHASE_DAYS_AT_SEND).repartitionByRange(count, "campaign_id", "customer_id").localCheckpoint(
        eager=True)
    days_of = {str(c): pd.Timestamp(d) for c, d in zip(sends["campaign_id"], sends["send_date"])}
    stagers: dict[str, Any] = {}
    for campaign_id, day in days_of.items():
        of_send = held.where(F.col("campaign_id") == campaign_id)

        def values(batches: Iterator[pd.DataFrame], day: pd.Timestamp = day) -> Iterator[pd.DataFrame]:
            found = _concat(batches)
            if found is not None:  # the part's stage values, and its first purchase day on a row of its own
                history = purchase_history(_send_days(found))
                first = pd.DataFrame({name: [np.nan] for name in STAGE_VALUES})
                first["first"] = history["purchase_date"].min()
                yield pd.concat([StageDistributions.rows(history, day).assign(first=pd.NaT), first], ignore_index=True)

        schema = ", ".join([*(f"{name} double" for name in STAGE_VALUES), "first timestamp_ntz"])
        with pandas_warnings_quiet(), executor_errors():
            frame = of_send.mapInPandas(values, schema).localCheckpoint(eager=True)
            first = frame.agg(F.min("first").alias("first")).first()["first"]
            if first is None:  # nobody bought before this send: no stages
                continue
            stager = lifecycle_settings.stager()
            distributions = value_distributions(frame.drop("first"), stager.distribution_needs(), missing="skip")
        stagers[campaign_id] = stager.fit_distributions(
            StageDistributions(**{name: distributions[name] for name in STAGE_VALUES}), day, pd.Timestamp(first))

    def labels(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = _concat(batches)  # a customer's days may span two Arrow batches: stage the partition at once
        if found is None:
            return
        for campaign_id, rows in found.groupby("campaign_id", sort=True):
            cid = str(campaign_id)
            staged = lifecycle_stages_staged(purchase_history(_send_days(rows)), stagers[cid], days_of[cid])
            yield pd.DataFrame({"campaign_id": cid, "customer_id": staged.index.astype(str),
                                "label": staged.to_numpy(dtype=object)})

    with pandas_warnings_quiet(), executor_errors():
        return held.mapInPandas(labels, SEND_LABELS_SCHEMA)


#: The segment dimensions whose labels at each send are computed on the executors (the cluster names at each
#: send still need the customer table as of each send on the driver).
SPARK_DIMENSIONS: tuple[str, ...] = ("rfm_segment", "lifecycle_stage")


def recipient_labels_on_spark(lines: "SparkLines", campaign: pd.DataFrame, dimensions: Sequence[str], *,
                              rfm_settings: Any, lifecycle_settings: Any) -> dict[str, pd.DataFrame]:
    """The labels at each send of ``campaign``'s recipients for the dimensions of ``dimensions`` among
    :data:`SPARK_DIMENSIONS` (:func:`rfm_segments_on_spark`, :func:`lifecycle_stages_on_spark`): only the
    recipients' rows reach the driver (``campaign_id, customer_id, label``), never the send histories; the
    ``given`` of :func:`segkit.campaign.prepare.segments_at_send`.
    """
    from segkit.data.spark import pandas_warnings_quiet

    sends = send_table(campaign)
    wanted = [d for d in SPARK_DIMENSIONS if d in dimensions]
    if not wanted or not len(sends):
        return {}
    ids = pd.DataFrame({"campaign_id": campaign["campaign_id"].astype("string").str.strip().to_numpy(dtype=object),
                        "customer_id": campaign["customer_id"].astype("string").str.strip().to_numpy(dtype=object)})
    with pandas_warnings_quiet():
        recipients = lines.session.createDataFrame(ids, "campaign_id string, customer_id string")
        out = {}
        for dim in wanted:
            labels = (rfm_segments_on_spark(lines, sends, rfm_settings) if dim == "rfm_segment"
                      else lifecycle_stages_on_spark(lines, sends, lifecycle_settings))
            out[dim] = labels.join(recipients, ["campaign_id", "customer_id"], "left_semi").toPandas()
    return out
