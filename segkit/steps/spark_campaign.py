"""Notebook 05's per-recipient work on Spark executors (issue 17).

Nothing here defines a metric, a label, a check or a flag: each partition runs the pandas function the
one-machine evaluation applies to the whole table, and the models are fitted on the driver from bounded inputs.

- :func:`campaign_rows_on_spark`: the campaign rows read, numbered in file order and partitioned by customer on the
  executors; :func:`segkit.campaign.prepare.campaign_facts` per partition, merged on the driver, raises the
  one-machine check's error (row numbers of the whole file) and gives each campaign's first send time and
  whether it records revenue (a first pass: bounded by checks and campaigns).
- :func:`campaign_parts_on_spark`: the labels at each send and the retention flags joined to the rows on the
  executors, each partition prepared (:func:`segkit.campaign.prepare.prepare_campaign`) and summed
  (:func:`evaluation_parts_on_spark`: :func:`segkit.campaign.partials.evaluation_parts`, sent to the driver as
  JSON: exact sums as whole numbers) and merged there, so :func:`segkit.campaign.evaluate.evaluate_parts` shows
  the one-machine numbers bit for bit. What reaches the driver: one text per partition, at most
  (dimensions + 1) × campaigns × segments × arms cells.
- :func:`retention_on_spark`: the relational core's RETENTION of the rows, joined back on the executors.
- :func:`rfm_segments_on_spark`, :func:`lifecycle_stages_on_spark` (:func:`send_labels_on_spark`): the labels at
  each send, the scorer and the stager refitted per send from value distributions
  (:mod:`segkit.data.spark_ranks`); the labels stay on the executors.
- :func:`cluster_agreement_on_spark`: how many of ``clusters.parquet``'s names the saved cluster model gives,
  counted per partition.
- :func:`cluster_names_on_spark`: the cluster names at each send, the run's cluster model applied per partition
  to the customer table as of each send (built on the executors, one send at a time).

The campaign rows and the labels at each send are returned held on the executors (local checkpoints); what a
function holds on the way (bases, purchase days, stage values, customer tables) is released before it returns,
also when it raises. The caller (:func:`segkit.steps.campaign.evaluate_on_spark`) releases the rows and labels
(:func:`release_send_frames`) once the cell sums are collected, or when a step fails.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.campaign.evaluate import labelled_rows
from segkit.campaign.partials import EvaluationParts, evaluation_parts
from segkit.campaign.prepare import (
    CampaignFacts,
    campaign_facts,
    check_campaign_table,
    cluster_names,
    lifecycle_stages_staged,
    prepare_campaign,
    rfm_segments_scored,
    send_labels,
    send_scorer,
)
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
from segkit.data.bounded import partition_rows
from segkit.cluster import predict_clusters_frame
from segkit.lifecycle import STAGE_VALUES, StageDistributions, purchase_history
from segkit.rfm import RFMScorer, RFMWarning, fit_needs

if TYPE_CHECKING:  # the `spark` extra
    from pyspark.sql import DataFrame as SparkFrame

    from segkit.data.spark import SparkLines

__all__ = ["evaluation_parts_on_spark", "retention_on_spark", "rfm_segments_on_spark", "lifecycle_stages_on_spark",
           "send_labels_on_spark", "release_send_frames", "campaign_rows_on_spark", "cluster_names_on_spark", "campaign_parts_on_spark",
           "cluster_agreement", "cluster_agreement_on_spark", "send_labels_frame", "SPARK_DIMENSIONS",
           "PARTS_SCHEMA", "ROW_ID", "SEND_LABELS_SCHEMA", "CAMPAIGN_KEY", "CUSTOMER_KEY"]

#: Spark schema of a partition's :class:`EvaluationParts` (one row).
PARTS_SCHEMA = "parts string"
#: Spark schema of the labels at each send (one row per campaign and customer with a purchase before it).
SEND_LABELS_SCHEMA = "campaign_id string, customer_id string, label string"
#: The column that numbers the campaign rows on Spark (unique, held: :func:`retention_on_spark` joins by it).
ROW_ID = "recipient_row"


def evaluation_parts_on_spark(rows: "SparkFrame", dimensions: Sequence[str], partitions: int | None = None, *,
                              key: str = "customer_id",
                              prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> EvaluationParts:
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
        Partitions of the rows by ``key`` (default: ``spark.sql.shuffle.partitions``); every
        customer's rows are in one, so the distinct customers add up.
    key : str
        The column that names each row's customer (as prepared: stripped).
    prepare : callable, optional
        Applied to each partition's rows first: raw campaign rows -> prepared rows (:func:`campaign_parts_on_spark`).

    Returns
    -------
    EvaluationParts
        Equal to :func:`~segkit.campaign.partials.evaluation_parts` of all the rows.
    """
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    dims = list(dimensions)

    def parts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        whole = partition_rows(batches)
        if whole is not None:
            yield pd.DataFrame({"parts": [evaluation_parts(whole if prepare is None else prepare(whole), dims)
                                          .to_json()]})

    count = partitions or int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    with pandas_warnings_quiet(), executor_errors():
        collected = rows.repartition(count, key).mapInPandas(parts, PARTS_SCHEMA).collect()
    return EvaluationParts.merge([EvaluationParts.from_json(row["parts"]) for row in collected])


def retention_on_spark(lines: "SparkLines", rows: "SparkFrame", first_sent: Mapping[str, Any], days: int,
                       end: pd.Timestamp | None, campaign_column: str = "campaign_id") -> "SparkFrame":
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
    campaign_column : str
        The column of ``rows`` that names the campaign as ``first_sent`` does.
    """
    from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    if "sent_at" not in rows.columns:  # no send time at all: every flag unknown
        return rows.drop("retained").selectExpr("*", "CAST(NULL AS DOUBLE) AS retained")
    firsts = {str(k): (None if pd.isna(v) else pd.Timestamp(v)) for k, v in first_sent.items()}

    def recipients(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            out = retention_recipients(batch.rename(columns={campaign_column: "campaign_id"}), firsts)
            known = ~np.isnat(out["sent_at"].to_numpy(dtype="datetime64[ns]"))
            yield frame_for_arrow(out.assign(**{ROW_ID: batch[ROW_ID].to_numpy(dtype=np.int64)})[known])

    schema = f"{ROW_ID} bigint, customer_id string, sent_at timestamp_ntz"
    with pandas_warnings_quiet(), executor_errors():
        sent = rows.select(ROW_ID, campaign_column, "customer_id", "sent_at").mapInPandas(recipients, schema)
        lines.register("recipients", sent, RECIPIENTS_TYPING)
        flags = lines.frame(RETENTION, retention_parameters(days, end))
        return rows.drop("retained").join(flags.selectExpr(ROW_ID, "retained"), ROW_ID, "left")


def rfm_segments_on_spark(lines: "SparkLines", sends: pd.DataFrame, rfm_settings: Any,
                          partitions: int | None = None, *, register: bool = True) -> "SparkFrame":
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
    register : bool
        Register ``sends`` first (:func:`~segkit.data.relational.register_sends`). False: the caller registered
        these very sends, so the send histories the lines hold (:meth:`segkit.data.spark.SparkLines.materialise`)
        are read again, not recomputed (registering drops them).

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEND_LABELS_SCHEMA` (``label`` = the RFM segment), held on the executors (a local checkpoint:
        free it with :func:`segkit.data.spark_ranks.release_checkpoint` after the last action that reads it).
        The bases are released before it returns, also when it raises.
    """
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint, value_distributions

    if register:
        register_sends(lines, sends)
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    bases = lines.frame(RFM_AT_SEND).repartitionByRange(count, "campaign_id", "customer_id").localCheckpoint(eager=True)
    try:
        sizes = {str(r["campaign_id"]): int(r["n"]) for r in bases.groupBy("campaign_id").agg(F.count("*").alias("n"))
                 .collect()}
        scorers: dict[str, dict] = {}
        with executor_errors():
            for campaign_id in sends["campaign_id"].astype(str):
                if not sizes.get(campaign_id):
                    continue
                scorer = send_scorer(rfm_settings)
                distributions = value_distributions(bases.where(F.col("campaign_id") == campaign_id),
                                                    fit_needs(scorer))
                with warnings.catch_warnings():  # as rfm_segments: a send's few score levels are not 05's finding
                    warnings.simplefilter("ignore", RFMWarning)
                    scorer.fit_distributions({"r": distributions[scorer.recency_col],
                                              "f": distributions[scorer.frequency_col],
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
            return bases.mapInPandas(labels, SEND_LABELS_SCHEMA).localCheckpoint(eager=True)
    finally:
        release_checkpoint(bases)


#: The purchase days of a send's history as :func:`segkit.lifecycle.purchase_history` reads them.
DAY_COLUMNS = ["customer_id", "order_date", "amount", "orders"]


def _send_days(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of :data:`~segkit.data.relational.PURCHASE_DAYS_AT_SEND` (one send) as the pandas runner types them."""
    return typed_result(rows.rename(columns={"day": "order_date"}).reset_index(drop=True), DAY_COLUMNS)


def lifecycle_stages_on_spark(lines: "SparkLines", sends: pd.DataFrame, lifecycle_settings: Any,
                              partitions: int | None = None, *, register: bool = True) -> "SparkFrame":
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
    register : bool
        Register ``sends`` first (:func:`~segkit.data.relational.register_sends`). False: the caller registered
        these very sends, so the send histories the lines hold (:meth:`segkit.data.spark.SparkLines.materialise`)
        are read again, not recomputed (registering drops them).

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEND_LABELS_SCHEMA` (``label`` = the lifecycle stage), held on the executors (a local checkpoint:
        free it with :func:`segkit.data.spark_ranks.release_checkpoint` after the last action that reads it).
        The purchase days and each send's stage values are released before it returns, also when it raises.
    """
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint, value_distributions

    if register:
        register_sends(lines, sends)
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    held = lines.frame(PURCHASE_DAYS_AT_SEND).repartitionByRange(count, "campaign_id", "customer_id").localCheckpoint(
        eager=True)
    try:
        days_of = {str(c): pd.Timestamp(d) for c, d in zip(sends["campaign_id"], sends["send_date"])}
        stagers = {campaign_id: stager for campaign_id, day in days_of.items()
                   if (stager := _send_stager(held.where(F.col("campaign_id") == campaign_id), day,
                                              lifecycle_settings)) is not None}

        def labels(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            found = partition_rows(batches)  # a customer's days may span two Arrow batches: stage the partition
            if found is None:
                return
            for campaign_id, rows in found.groupby("campaign_id", sort=True):
                cid = str(campaign_id)
                staged = lifecycle_stages_staged(purchase_history(_send_days(rows)), stagers[cid], days_of[cid])
                yield pd.DataFrame({"campaign_id": cid, "customer_id": staged.index.astype(str),
                                    "label": staged.to_numpy(dtype=object)})

        with pandas_warnings_quiet(), executor_errors():
            return held.mapInPandas(labels, SEND_LABELS_SCHEMA).localCheckpoint(eager=True)
    finally:
        release_checkpoint(held)


def _send_stager(of_send: "SparkFrame", day: pd.Timestamp, lifecycle_settings: Any) -> Any:
    """The stager of one send (:func:`lifecycle_stages_on_spark`), fitted on the driver from the stage values of
    its purchase days (``of_send``: rows of :data:`~segkit.data.relational.PURCHASE_DAYS_AT_SEND`) and its buyers'
    first purchase day; None when nobody bought before it. The stage values are held while they are read, then
    released (also when a step fails)."""
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint, value_distributions

    def values(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = partition_rows(batches)
        if found is not None:  # the part's stage values, and its first purchase day on a row of its own
            history = purchase_history(_send_days(found))
            first = pd.DataFrame({name: [np.nan] for name in STAGE_VALUES})
            first["first"] = history["purchase_date"].min()
            yield pd.concat([StageDistributions.rows(history, day).assign(first=pd.NaT), first], ignore_index=True)

    schema = ", ".join([*(f"{name} double" for name in STAGE_VALUES), "first timestamp_ntz"])
    with pandas_warnings_quiet(), executor_errors():
        frame = of_send.mapInPandas(values, schema).localCheckpoint(eager=True)
        try:
            first = frame.agg(F.min("first").alias("first")).first()["first"]
            if first is None:  # nobody bought before this send: no stages
                return None
            stager = lifecycle_settings.stager()
            distributions = value_distributions(frame.drop("first"), stager.distribution_needs(), missing="skip")
        finally:
            release_checkpoint(frame)
    with warnings.catch_warnings():  # as lifecycle_stages: the send's stager fit is quiet
        warnings.simplefilter("ignore")
        return stager.fit_distributions(StageDistributions(**{name: distributions[name] for name in STAGE_VALUES}),
                                        day, pd.Timestamp(first))


#: The segment dimensions whose labels at each send are computed on the executors (the cluster names at each
#: send still need the customer table as of each send on the driver).
SPARK_DIMENSIONS: tuple[str, ...] = ("rfm_segment", "lifecycle_stage")
#: Columns :func:`campaign_rows_on_spark` adds to the campaign rows: each row's campaign and customer, stripped
#: (as :func:`segkit.campaign.prepare.segments_at_send` and :func:`~segkit.campaign.prepare.prepare_campaign` name
#: them).
CAMPAIGN_KEY, CUSTOMER_KEY = "_segkit_campaign", "_segkit_customer"


def send_labels_on_spark(lines: "SparkLines", sends: pd.DataFrame, dimensions: Sequence[str], *,
                         rfm_settings: Any, lifecycle_settings: Any, register: bool = True) -> dict[str, "SparkFrame"]:
    """The labels at each send (:data:`SEND_LABELS_SCHEMA`, held on the executors: release each with
    :func:`release_send_frames`) of the dimensions of ``dimensions`` among :data:`SPARK_DIMENSIONS`
    (:func:`rfm_segments_on_spark`, :func:`lifecycle_stages_on_spark`) for the dated ``sends``
    (``campaign_id, send_date``), registered once (``register``; False: by the caller), so that every
    dimension reads the same held send histories. When one dimension fails, those made before it are released."""
    wanted = [d for d in SPARK_DIMENSIONS if d in dimensions]
    found: dict[str, "SparkFrame"] = {}
    if not len(sends):
        return found
    if register:
        register_sends(lines, sends)
    try:
        for dim in wanted:
            found[dim] = (rfm_segments_on_spark(lines, sends, rfm_settings, register=False) if dim == "rfm_segment"
                          else lifecycle_stages_on_spark(lines, sends, lifecycle_settings, register=False))
    except BaseException:
        release_send_frames(found.values())
        raise
    return found


def release_send_frames(frames: Iterable["SparkFrame"]) -> None:
    """Free what 05's Spark frames hold on the executors: the campaign rows of :func:`campaign_rows_on_spark`
    and the labels at each send (:func:`send_labels_on_spark`, :func:`cluster_names_on_spark`), once the last
    action that reads them (:func:`campaign_parts_on_spark`) has run. A frame made on the driver
    (:func:`send_labels_frame`) holds nothing and is passed over."""
    from segkit.data.spark_ranks import release_checkpoint

    for frame in frames:
        release_checkpoint(frame)


def cluster_agreement(model: Any, clusters: pd.DataFrame) -> tuple[int, int]:
    """How many customers of ``clusters`` (rows of ``clusters.parquet``, all or a part) ``model`` gives 03's
    cluster name (:func:`segkit.cluster.predict_clusters_frame`, names compared as text), and how many there are."""
    names = predict_clusters_frame(model, clusters)
    same = (pd.Series(names.to_numpy()).astype(str).to_numpy()
            == pd.Series(clusters["cluster_name"].to_numpy()).astype(str).to_numpy())
    return int(same.sum()), len(same)


def cluster_agreement_on_spark(session: Any, path: str, model: Any) -> tuple[int, int]:
    """:func:`cluster_agreement` of the Parquet file ``path`` (``clusters.parquet``), per partition on the executors
    (the model travels as its JSON) and added up on the driver: two numbers per partition reach it.

    Raises
    ------
    DataError
        ``model`` cannot label the rows (a feature column missing): :func:`segkit.cluster.predict_clusters_frame`'s
        error, as in pandas.
    """
    from segkit.cluster import SegmentModel
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors

    saved = model.to_dict()

    def counts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = partition_rows(batches)
        if found is not None:
            agreeing, total = cluster_agreement(SegmentModel.from_dict(saved), found)
            yield pd.DataFrame({"agreeing": [agreeing], "total": [total]})

    with pandas_warnings_quiet(), executor_errors():
        found = session.read.parquet(path).mapInPandas(counts, "agreeing bigint, total bigint").collect()
    return sum(int(r["agreeing"]) for r in found), sum(int(r["total"]) for r in found)


def cluster_names_on_spark(ctx: Any, lines: "SparkLines", model: Any, sends: pd.DataFrame,
                           first_sent: Mapping[str, Any], *, register: bool = True) -> "SparkFrame":
    """The cluster name at each send of every customer with a purchase before it, on the executors: equal to
    the cluster names of :func:`segkit.campaign.prepare.segments_at_send`.

    Per dated send, the customer table as of its day is built on the executors as notebook 03 builds its own
    (:func:`segkit.steps.cluster.spark_customer_table` with the send's RFM base,
    :data:`~segkit.data.relational.RFM_AT_SEND`, and the campaign rows sent before the day) and each partition is
    named by :func:`segkit.campaign.prepare.cluster_names` with the run's model (travelling as its JSON).

    Parameters
    ----------
    ctx : RunContext
        The run (its customers, campaign rows, clustering and campaign settings).
    model : SegmentModel
        The run's cluster model.
    sends : DataFrame
        ``campaign_id, send_date`` (dated sends only).
    first_sent : mapping
        Campaign -> first send time (None: none), to know whether any row was sent before a day.
    register : bool
        Register ``sends`` first (:func:`~segkit.data.relational.register_sends`). False: the caller registered
        these very sends, so the send histories the lines hold (:meth:`segkit.data.spark.SparkLines.materialise`)
        are read again, not recomputed (registering drops them).

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEND_LABELS_SCHEMA` (``label`` = the cluster name), held on the executors (a local checkpoint:
        free it with :func:`release_send_frames` after the last action that reads it). What it holds on the way
        (the bases, each send's customer table and names) is released before it returns, also when it raises.
    """
    from pyspark.sql import functions as F

    from segkit.cluster import ClusterSettings, SegmentModel
    from segkit.data.spark import pandas_warnings_quiet, timestamps_from_nanoseconds
    from segkit.data.spark_ranks import executor_errors, release_checkpoint
    from segkit.steps.cluster import spark_customer_table

    settings = ClusterSettings.from_config(ctx.section("clustering"))
    camp = ctx.section("campaign")  # as segments_at_send's customer tables count e-mails (segkit.steps.campaign)
    control = (camp.get("control_arm", "control") if camp.get("control_is_holdout", True) else None) or "control"
    if register:
        register_sends(lines, sends)
    bases = lines.frame(RFM_AT_SEND).localCheckpoint(eager=True)
    found: list["SparkFrame"] = []
    try:
        sizes = {str(r["campaign_id"]): int(r["n"]) for r in bases.groupBy("campaign_id").agg(F.count("*").alias("n"))
                 .collect()}
        rows = timestamps_from_nanoseconds(lines.session.read.parquet(str(ctx.artifact_path("campaign_clean"))))
        saved = model.to_dict()
        sent = [pd.Timestamp(t) for t in first_sent.values() if t is not None and not pd.isna(t)]
        for campaign_id, day in zip(sends["campaign_id"].astype(str), pd.to_datetime(sends["send_date"])):
            if not sizes.get(campaign_id):  # nobody bought before this send: no names
                continue
            earlier = rows.where(F.col("sent_at") < F.lit(day.to_pydatetime())) if any(t < day for t in sent) else None
            buyers = bases.where(F.col("campaign_id") == campaign_id).drop("campaign_id", "send_date")
            with executor_errors():
                table, _ = spark_customer_table(ctx, settings, day=day, buyers=buyers, campaign=earlier,
                                                control_arm=control)

            def names(batches: Iterator[pd.DataFrame], campaign_id: str = campaign_id) -> Iterator[pd.DataFrame]:
                fitted = SegmentModel.from_dict(saved)
                for batch in batches:
                    named = cluster_names(fitted, batch)
                    yield pd.DataFrame({"campaign_id": campaign_id, "customer_id": named.index.astype(str),
                                        "label": named.to_numpy(dtype=object)})

            try:
                with pandas_warnings_quiet(), executor_errors():
                    found.append(table.mapInPandas(names, SEND_LABELS_SCHEMA).localCheckpoint(eager=True))
            finally:
                table.unpersist()
        if not found:
            return send_labels_frame(lines.session, pd.DataFrame(columns=["campaign_id", "customer_id", "label"]))
        out = found[0]
        for more in found[1:]:
            out = out.unionByName(more)
        # one held frame for the caller to release; the sends' own copies are released below
        return out.localCheckpoint(eager=True) if len(found) > 1 else found.pop()
    finally:
        for frame in [bases, *found]:
            release_checkpoint(frame)


def send_labels_frame(session: Any, labels: pd.DataFrame) -> "SparkFrame":
    """Labels at each send computed on the driver (``campaign_id, customer_id, label``) as a Spark frame of
    :data:`SEND_LABELS_SCHEMA`, for :func:`campaign_parts_on_spark`."""
    from segkit.data.spark import pandas_warnings_quiet

    text = {c: labels[c].astype("string").astype(object).where(labels[c].notna(), None).tolist()
            for c in ("campaign_id", "customer_id", "label")}
    with pandas_warnings_quiet():
        return session.createDataFrame(list(zip(*text.values())), SEND_LABELS_SCHEMA)


def campaign_rows_on_spark(lines: "SparkLines", path: str, source: str,
                           partitions: int | None = None) -> tuple["SparkFrame", list[str], CampaignFacts]:
    """The campaign rows of the Parquet file ``path`` on the executors, checked as the one-machine evaluation
    checks them, with what the evaluation needs to know of all of them before it prepares any.

    Every row gets its 0-based number in the file (:data:`ROW_ID`, :func:`segkit.data.spark.number_file_lines`:
    a message names rows as in the whole file) and its stripped campaign and customer (:data:`CAMPAIGN_KEY`,
    :data:`CUSTOMER_KEY`); the rows are partitioned by customer (a customer's rows in one partition: repeated
    customers are seen, distinct customers add up) and held. Each partition's
    :func:`segkit.campaign.prepare.campaign_facts` merged on the driver (a few rows per check and one value per
    campaign) gives the first failed check's DataError, raised here, each campaign's first send time and
    whether it records revenue.

    Returns
    -------
    rows : pyspark.sql.DataFrame
        The rows with :data:`ROW_ID`, :data:`CAMPAIGN_KEY`, :data:`CUSTOMER_KEY`, held on the executors (free
        them with :func:`release_send_frames` after the last action; released here when a check fails).
    columns : list of str
        The file's columns (what :func:`segkit.campaign.prepare.prepare_campaign` reads).
    facts : CampaignFacts
        Of all the rows, without a failed check.

    Raises
    ------
    DataError
        As :func:`~segkit.campaign.prepare.prepare_campaign` of the whole file: a key column missing, no row,
        an empty key, a repeated customer in a campaign, a flag or amount that cannot be read.
    """
    from segkit.data.spark import (frame_for_arrow, number_file_lines, pandas_warnings_quiet, parquet_column_facts,
                                   timestamps_from_nanoseconds)
    from segkit.data.spark_ranks import executor_errors

    raw = lines.session.read.parquet(path)
    columns = list(raw.columns)
    check_campaign_table(columns, 1, source)  # the columns first; the rows are counted below
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))

    def keys(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield frame_for_arrow(pd.DataFrame({
                ROW_ID: batch[ROW_ID].to_numpy(dtype=np.int64),
                CAMPAIGN_KEY: batch["campaign_id"].astype("string").str.strip().to_numpy(dtype=object),
                CUSTOMER_KEY: batch["customer_id"].astype("string").str.strip().to_numpy(dtype=object)}))

    def facts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = partition_rows(batches)
        if found is not None:
            yield pd.DataFrame({"facts": [campaign_facts(found[columns], found[ROW_ID].to_numpy()).to_json()]})

    with pandas_warnings_quiet(), executor_errors():
        # pandas writes its times in nanoseconds, which Spark reads as whole numbers: times again (as pandas reads them)
        numbered = timestamps_from_nanoseconds(number_file_lines(raw, column=ROW_ID), parquet_column_facts(raw))
        keyed = numbered.select(ROW_ID, "campaign_id", "customer_id").mapInPandas(
            keys, f"{ROW_ID} bigint, {CAMPAIGN_KEY} string, {CUSTOMER_KEY} string")
        rows = numbered.join(keyed, ROW_ID).repartition(count, CUSTOMER_KEY).localCheckpoint(eager=True)
        try:
            merged = CampaignFacts.merge([CampaignFacts.from_json(r["facts"])
                                          for r in rows.mapInPandas(facts, "facts string").collect()])
            check_campaign_table(columns, merged.rows, source)
            error = merged.error(source)
            if error is not None:
                raise error
        except BaseException:
            release_send_frames([rows])
            raise
    return rows, columns, merged


def campaign_parts_on_spark(lines: "SparkLines", rows: "SparkFrame", columns: Sequence[str], facts: CampaignFacts,
                            dimensions: Sequence[str], labels: Mapping[str, "SparkFrame"], *,
                            retention: tuple[int, pd.Timestamp | None] | None, source: str,
                            partitions: int | None = None) -> EvaluationParts:
    """:func:`segkit.campaign.partials.evaluation_parts` of the campaign rows of :func:`campaign_rows_on_spark`,
    prepared on the executors as :func:`segkit.campaign.evaluate.evaluate_campaigns` prepares them in pandas.

    The retention flags are the relational core's (:func:`retention_on_spark`, each campaign's first send time
    from ``facts``) and each dimension's labels at each send are joined to the rows by campaign and customer;
    each partition then runs :func:`segkit.campaign.prepare.prepare_campaign` (with ``facts``' revenue flags:
    a campaign records revenue or not in every partition as in the whole),
    :func:`segkit.campaign.prepare.send_labels` and :func:`segkit.campaign.evaluate.labelled_rows`, and its
    parts are merged on the driver (:func:`evaluation_parts_on_spark`).

    Parameters
    ----------
    labels : mapping of str to pyspark.sql.DataFrame
        Per dimension of ``dimensions``: :data:`SEND_LABELS_SCHEMA` rows (at least the recipients' among the
        buyers before each send; a recipient without a row made no purchase before it).
    retention : (days, end) or None
        The retention window and the last day it may end (None = the day after the last purchase); None: no
        retention flags.
    """
    from pyspark.sql import functions as F

    dims = list(dimensions)
    for dim in dims:
        found = labels[dim].select(F.col("campaign_id").alias(CAMPAIGN_KEY), F.col("customer_id").alias(CUSTOMER_KEY),
                                   F.col("label").alias(dim))
        rows = rows.join(found, [CAMPAIGN_KEY, CUSTOMER_KEY], "left")
    if retention is not None:
        rows = retention_on_spark(lines, rows, facts.first_sent, retention[0], retention[1],
                                  campaign_column=CAMPAIGN_KEY)
    dated = {campaign_id: sent is not None for campaign_id, sent in facts.first_sent.items()}
    recorded = dict(facts.revenue_recorded)

    def prepare(batch: pd.DataFrame) -> pd.DataFrame:
        prepared = prepare_campaign(batch[list(columns)], source=source, revenue_recorded=recorded)
        if "retained" in batch.columns:
            prepared["retained"] = batch["retained"].to_numpy(dtype=float, na_value=np.nan)
        campaign_ids = batch[CAMPAIGN_KEY].astype("string").to_numpy(dtype=object)
        sent = np.array([dated.get(c, False) for c in campaign_ids], dtype=bool)
        at_send = pd.DataFrame({"campaign_id": campaign_ids,
                                "customer_id": batch[CUSTOMER_KEY].to_numpy(dtype=object),
                                **{dim: send_labels(batch[dim], sent) for dim in dims}})
        return labelled_rows(prepared, at_send, dims)

    return evaluation_parts_on_spark(rows, dims, partitions, key=CUSTOMER_KEY, prepare=prepare)
