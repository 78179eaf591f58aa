"""Per-customer scoring on Spark executors, and ``customer_segments`` written by Spark (issue 17).

The models are fitted on the driver from bounded inputs (the RFM score bounds and tier thresholds,
the seeded clustering sample, the condensed BG/NBD patterns, the stage thresholds) and travel to
the executors as the JSON segkit already writes (:class:`ScoringModels`: ``RFMScorer``,
``SegmentMap``, ``LoyaltyTiers`` :meth:`to_dict`, ``cluster_model.json``, ``clv_model.json`` and
the stage thresholds). Every partition of the per-customer input rebuilds them once with their
``from_dict`` and scores its customers with the very functions the DuckDB/pandas path calls
(:func:`~segkit.rfm.score_base`: :meth:`~segkit.rfm.RFMScorer.transform` and :func:`~segkit.rfm.rfm_labels`,
:meth:`~segkit.cluster.SegmentModel.predict`, :func:`~segkit.lifecycle.chances_as_of`,
:func:`~segkit.lifecycle.assign_lifecycle_stage`, :func:`~segkit.lifecycle.score_customers`):
:func:`score_partition`. Nothing here defines a score, a segment, a stage or a CLV.

One number is not per customer: the at-risk rule compares a repeat buyer's 90-day purchase chance
with the mean chance of all live repeat buyers (:func:`~segkit.lifecycle.low_purchase_chance`). A
first pass over the partitions returns each one's sum and count of those chances (two numbers per
partition reach the driver, :func:`chance_reference_parts`); their ratio is handed to the scoring
pass. The mean is summed in another order than numpy's, so it can differ from the one-machine
value in the last bits (about 1e-16 relative): a customer whose chance sits exactly on that
boundary is the only one who could be staged differently.

The input (:func:`scoring_inputs` builds it from the pandas frames the pipeline computes) is one row
per customer, keyed by ``customer_id`` (text):

* the RFM base and the behaviour features: ``recency_days, frequency, monetary_total, monetary_avg,
  tenure_days`` and every column the cluster model reads (``customer_table``); empty for a customer
  without a purchase, who gets no RFM score and no cluster;
* the lifecycle state, each column prefixed ``state_`` (:data:`STATE_COLUMNS`, as
  :func:`~segkit.lifecycle.customer_state` returns them at ``as_of``); every customer has one;
* the BG/NBD and Gamma-Gamma input, prefixed ``clv_`` (:data:`CLV_COLUMNS`, as
  :func:`~segkit.clv.clv_summary` returns them); empty for a customer without a purchase.

The output has the columns of ``customer_segments.csv`` in its order
(:data:`SEGMENT_COLUMNS`, unrounded). :func:`write_customer_segments` writes it as a Parquet
dataset (money rounded to cents as in the CSV; :func:`score_on_spark` range-partitions the
customers by ``customer_id``: one file per partition, rows sorted by ``customer_id`` within it
and the files ``part-00000.parquet`` … in ``customer_id`` order, so reading the folder in file-name order
gives the CSV's row order; the same input, partitioning and models give the same file names and bytes)
and, when it has at most ``csv_max_rows`` rows, also as the CSV through segkit's one CSV writer
(:func:`segkit.core.files.write_frame`, formula cells neutralised), collected on the driver: that is
what "fits one machine" means.

In ``segkit run`` with ``engine.kind: spark`` (:func:`scores_on_spark`, the one place that decides it),
02 and 04 save what the artifacts do not hold yet under ``artifacts/scoring/`` (:func:`save_rfm_model`,
:func:`save_lifecycle_inputs`: the fitted RFM estimators, the stage thresholds, the lifecycle state and
CLV input per customer), and 02, 03 and 04 each end with :func:`write_run_segments` instead of the
driver-side merge (:meth:`segkit.steps.pipeline.RunContext.update_customer_segments`):
:func:`run_scoring` has Spark read and join those inputs with ``customers_clean.parquet``,
``rfm.parquet`` and ``clusters.parquet`` on the executors, and every customer is scored again and
written as ``artifacts/customer_segments.parquet/`` and ``customer_segments.csv``. Which notebooks'
columns it writes is what the DuckDB run's merge would have at that point (:func:`segment_steps`): the
columns ``customer_segments`` already has plus the running notebook's; so after 02 alone the file
has the RFM columns only, and re-running 03 or 04 rescores the other notebook's columns from its
saved inputs, which gives the same values.

Examples
--------
Not run as a doctest (it starts Spark); ``tests/test_spark_pipeline.py`` runs it on a ``segkit run``'s folder:

>>> models = ScoringModels.from_results(rfm_result, cluster_result, lifecycle_result)  # doctest: +SKIP
>>> scored = score_on_spark(session.createDataFrame(scoring_inputs(...)), models)       # doctest: +SKIP
>>> write_customer_segments(scored, run_dir / "artifacts")                             # doctest: +SKIP
>>> write_run_segments(open_run("05_campaign_evaluation", run_dir=run_dir))            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from segkit.clv import BetaGeoModel, ChanceCalibrator, GammaGammaModel, OneTimeBuyerModel
from segkit.cluster import SegmentModel
from segkit.core.errors import DataError, UpstreamMissingError
from segkit.core.files import (atomic_write_text, dumps_json, folder_lock, parquet_parts, publish_parquet_parts, read_frame,
                               write_csv_batches, write_frame)
from segkit.core.modelio import model_dict, model_parts
from segkit.data.engine import EngineSettings, choose_engine
from segkit.lifecycle import (
    EXPORT_COLUMNS,
    CLVModels,
    ExportChoice,
    LifecycleSettings,
    StageThresholds,
    assign_lifecycle_stage,
    chance_reference,
    chance_reference_part,
    chances_as_of,
    score_customers,
)
from segkit.rfm import SCORE_COLUMNS, SEGMENT_CSV_COLUMNS, LoyaltyTiers, RFMScorer, SegmentMap, score_base
from segkit.steps.pipeline import (CUSTOMER_SEGMENT_COLUMNS, CUSTOMER_SEGMENTS, CUSTOMER_SEGMENTS_DATASET,
                                   SPARK_SCORING_FILES, SPARK_SCORING_FOLDER, RunContext, money_to_cents)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import DataFrameReader

__all__ = ["STATE_COLUMNS", "CLV_COLUMNS", "RFM_COLUMNS", "SEGMENT_COLUMNS", "CSV_MAX_ROWS", "CSV_BATCH_ROWS", "PARQUET_FOLDER",
           "ScoringModels", "rfm_model_dict", "scoring_inputs", "lifecycle_inputs", "score_partition",
           "chance_reference_parts", "cluster_labels", "score_on_spark",
           "segments_schema", "write_customer_segments", "SCORING_FOLDER", "STEP_COLUMNS", "scores_on_spark",
           "segment_steps", "segment_columns", "save_rfm_model", "save_lifecycle_inputs", "save_stage_thresholds", "run_scoring", "run_reader",
           "write_run_segments"]

#: The stage rules' per-customer state (:func:`segkit.lifecycle.customer_state`), ``state_`` + name in the input.
STATE_COLUMNS: tuple[str, ...] = ("n_purchases", "recency_days", "tenure_days", "gap_before_last_days",
                                  "own_interval_days", "monetary_total", "engaged", "has_orders",
                                  "first_purchase_days_into_data")
#: The CLV models' per-buyer input (:func:`segkit.clv.clv_summary`), ``clv_`` + name in the input.
CLV_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")
#: The RFM base columns of ``customer_segments`` (the scorer's and the tiers' inputs among them).
RFM_COLUMNS: tuple[str, ...] = ("recency_days", "frequency", "monetary_total", "monetary_avg")
#: The scored columns, in ``customer_segments.csv``'s order (its fixed columns, then the others by name).
SEGMENT_COLUMNS: tuple[str, ...] = (*CUSTOMER_SEGMENT_COLUMNS, "p_purchase_90d")
_WHOLE = {"recency_days", "frequency", "r_score", "f_score", "m_score", "cluster"}
_TEXT = {"customer_id", "rfm_segment", "tier", "recommended_action", "cluster_name", "lifecycle_stage"}
#: Up to this many customers ``customer_segments.csv`` is written too (a spreadsheet opens at most 1,048,576
#: rows; above it the Parquet dataset is the export). The driver holds :data:`CSV_BATCH_ROWS` rows at a time.
CSV_MAX_ROWS = 1_000_000
#: Rows of the dataset read into the driver at a time to write the CSV (about 200 bytes a customer in pandas).
CSV_BATCH_ROWS = 65_536
#: The Parquet dataset's folder under ``artifacts/``.
PARQUET_FOLDER = CUSTOMER_SEGMENTS_DATASET
#: The columns each notebook adds to ``customer_segments`` (what the DuckDB run's merge adds after it).
STEP_COLUMNS: dict[str, tuple[str, ...]] = {"02_rfm": SEGMENT_CSV_COLUMNS, "03_clustering": ("cluster", "cluster_name"),
                                            "04_lifecycle": tuple(EXPORT_COLUMNS)}


@dataclass(frozen=True)
class ScoringModels:
    """The fitted models every partition scores with; JSON both ways (:meth:`to_dict`, :meth:`from_dict`).

    Attributes
    ----------
    scorer, segments, tiers : RFMScorer, SegmentMap, LoyaltyTiers
        Notebook 02's fitted scorer, segment map and tiers (``RFMResult.scorer / settings.segments / tier_model``).
    cluster : SegmentModel or None
        Notebook 03's model (``cluster_model.json``); None = no cluster columns.
    thresholds : StageThresholds or None
        Notebook 04's fitted stage thresholds; None = 04 has not run (no lifecycle columns).
    clv : CLVModels or None
        Notebook 04's models and the variant chosen on the holdout (``clv_model.json``); None = BG/NBD
        was not fitted (its columns stay empty, stages without the P(alive) and chance rules).
    settings : LifecycleSettings
        CLV horizon, discount rate and margin (from ``clv_model.json``).
    cluster_json, clv_json : dict or None
        The saved forms the two models were read from, written back by :meth:`to_dict` as they came.
    """

    scorer: RFMScorer
    segments: SegmentMap
    tiers: LoyaltyTiers
    cluster: SegmentModel | None
    thresholds: StageThresholds | None
    clv: CLVModels | None
    settings: LifecycleSettings
    cluster_json: Mapping[str, Any] | None = None
    clv_json: Mapping[str, Any] | None = None

    @classmethod
    def from_results(cls, rfm: Any, cluster: Any, lifecycle: Any) -> "ScoringModels":
        """The models of a run's results (:class:`segkit.rfm.RFMResult`, :class:`segkit.cluster.ClusterResult`
        or None, :class:`segkit.steps.lifecycle.LifecycleResult`), as they would be read back from JSON."""
        from segkit.cluster import cluster_model_dict

        return cls.from_parts(rfm.scorer, rfm.settings.segments, rfm.tier_model,
                              cluster_model_dict(cluster) if cluster is not None else None,
                              lifecycle.stage_thresholds, lifecycle.clv_model)

    @classmethod
    def from_parts(cls, scorer: RFMScorer, segments: SegmentMap, tiers: LoyaltyTiers,
                   cluster_model: Mapping[str, Any] | None, thresholds: StageThresholds | None,
                   clv_model: Mapping[str, Any] | None) -> "ScoringModels":
        """The models from the fitted RFM estimators, the ``cluster_model.json`` and ``clv_model.json``
        artifacts (dicts, None when absent) and the stage thresholds: through JSON, as the executors get them."""
        return cls.from_dict(json.loads(json.dumps(_as_dict(scorer, segments, tiers, cluster_model, thresholds,
                                                            clv_model))))

    @classmethod
    def from_artifacts(cls, rfm_model: Mapping[str, Any], cluster_model: Mapping[str, Any] | None,
                       stage_thresholds: Mapping[str, float] | None,
                       clv_model: Mapping[str, Any] | None) -> "ScoringModels":
        """The models from their saved forms: :func:`rfm_model_dict`'s, ``cluster_model.json``'s,
        the stage thresholds' (``dataclasses.asdict`` of :class:`~segkit.lifecycle.StageThresholds`) and
        ``clv_model.json``'s (None for an absent one: that notebook's columns are not scored)."""
        return cls.from_dict(model_dict("ScoringModels", {**{k: rfm_model[k] for k in ("scorer", "segments", "tiers")},
                                                          "cluster_model": cluster_model,
                                                          "stage_thresholds": (None if stage_thresholds is None
                                                                               else dict(stage_thresholds)),
                                                          "clv_model": clv_model}, {}))

    def to_dict(self) -> dict:
        """Everything :meth:`from_dict` needs, as plain JSON-able values (see :mod:`segkit.core.modelio`)."""
        return _as_dict(self.scorer, self.segments, self.tiers, self.cluster_json, self.thresholds, self.clv_json)

    @classmethod
    def from_dict(cls, data: Any) -> "ScoringModels":
        """The models from :meth:`to_dict`'s output; :class:`DataError` names a part that is wrong."""
        params, _ = model_parts(data, "ScoringModels", params=("scorer", "segments", "tiers", "cluster_model",
                                                                "stage_thresholds", "clv_model"))
        try:
            stage = params["stage_thresholds"]
            thresholds = None if stage is None else StageThresholds(**stage)
        except TypeError as exc:
            raise DataError(f"Saved ScoringModels: stage_thresholds has the wrong form ({exc}). "
                            "Run 04_lifecycle again.") from None
        clv_json = params["clv_model"]
        clv, settings = _clv_models(clv_json)
        cluster_json = params["cluster_model"]
        return cls(scorer=RFMScorer.from_dict(params["scorer"]), segments=SegmentMap.from_dict(params["segments"]),
                   tiers=LoyaltyTiers.from_dict(params["tiers"]),
                   cluster=SegmentModel.from_dict(cluster_json) if cluster_json is not None else None,
                   thresholds=thresholds, clv=clv, settings=settings, cluster_json=cluster_json, clv_json=clv_json)

    @property
    def cluster_inputs(self) -> list[str]:
        """Input columns the cluster model reads (its features and the columns its gaps are filled from)."""
        if self.cluster is None:
            return []
        builder = self.cluster.builder
        fills = [v.split(":", 1)[1] for v in builder.impute_values_.values() if isinstance(v, str)]
        return list(dict.fromkeys([*builder.numeric_features_, *builder.categorical_features_, *fills]))


def rfm_model_dict(rfm: Any) -> dict:
    """Notebook 02's fitted scorer, segment map and tiers (of an :class:`segkit.rfm.RFMResult`) as JSON-able
    dicts: what :meth:`ScoringModels.from_artifacts` reads as ``rfm_model``."""
    return {"scorer": rfm.scorer.to_dict(), "segments": rfm.settings.segments.to_dict(), "tiers": rfm.tier_model.to_dict()}


def _as_dict(scorer: RFMScorer, segments: SegmentMap, tiers: LoyaltyTiers, cluster_model: Mapping[str, Any] | None,
             thresholds: StageThresholds | None, clv_model: Mapping[str, Any] | None) -> dict:
    return model_dict("ScoringModels", {
        "scorer": scorer.to_dict(), "segments": segments.to_dict(), "tiers": tiers.to_dict(),
        "cluster_model": None if cluster_model is None else dict(cluster_model),
        "stage_thresholds": (None if thresholds is None
                             else {k: float(v) for k, v in dataclasses.asdict(thresholds).items()}),
        "clv_model": None if clv_model is None else dict(clv_model)}, {})


def _clv_models(clv_model: Mapping[str, Any] | None) -> tuple[CLVModels | None, LifecycleSettings]:
    """The fitted CLV models and the export variant of a ``clv_model.json`` (as
    :func:`segkit.steps.lifecycle.build_lifecycle_artifacts` writes it), and its horizon settings."""
    if clv_model is None:
        return None, LifecycleSettings()
    settings = LifecycleSettings(horizon_months=int(clv_model["horizon_months"]),
                                 discount_rate=float(clv_model["discount_rate_annual"]), margin=float(clv_model["margin"]))
    gamma_gamma, one_time = clv_model.get("gamma_gamma"), clv_model.get("one_time_buyers")
    holdout = clv_model.get("holdout")
    choice = None
    if holdout is not None:  # the variant chosen on the holdout (no block: the holdout was skipped)
        purchase_map, alive_map = holdout.get("p_purchase_90d_calibration"), holdout.get("p_alive_floor_calibration")
        choice = ExportChoice(base=holdout["export_base"],
                              purchase_map=ChanceCalibrator.from_dict(purchase_map) if purchase_map else None,
                              alive_map=ChanceCalibrator.from_dict(alive_map) if alive_map else None,
                              reason=str(holdout.get("export_reason", "")),
                              calibrate_chance=bool(holdout.get("p_purchase_90d_calibrated", True)) or not purchase_map)
    models = CLVModels(bgnbd=BetaGeoModel.from_dict(clv_model["bgnbd"]),
                       gamma_gamma=GammaGammaModel.from_dict(gamma_gamma) if gamma_gamma else None, warnings=[],
                       one_time=OneTimeBuyerModel.from_dict(one_time) if one_time else None, choice=choice)
    return models, settings


def scoring_inputs(rfm: pd.DataFrame, table: pd.DataFrame, state: pd.DataFrame,
                   clv_summary: pd.DataFrame | None) -> pd.DataFrame:
    """The per-customer input of :func:`score_partition` from the pandas frames a run computes.

    Parameters
    ----------
    rfm : DataFrame
        The RFM base (``rfm.parquet`` or :func:`segkit.steps.sources.rfm_for`): ``customer_id`` and
        :data:`RFM_COLUMNS`.
    table : DataFrame
        The customer table notebook 03 clusters (:func:`segkit.features.customer_table`); its columns
        the RFM base has are taken from ``rfm``.
    state : DataFrame
        The lifecycle state indexed by ``customer_id`` (``LifecycleResult.state``): :data:`STATE_COLUMNS`.
    clv_summary : DataFrame or None
        :func:`segkit.clv.clv_summary` indexed by ``customer_id`` (as 04 computes it).

    Returns
    -------
    DataFrame
        One row per customer of any of them, sorted by ``customer_id`` (text).
    """
    ids = {"customer_id": "string"}
    base = rfm[["customer_id", *RFM_COLUMNS]].astype(ids)
    features = table[["customer_id", *[c for c in table.columns if c not in base.columns]]].astype(ids)
    frame = base.merge(features, on="customer_id", how="outer").merge(lifecycle_inputs(state, clv_summary),
                                                                      on="customer_id", how="outer")
    return frame.sort_values("customer_id", kind="mergesort").reset_index(drop=True)


def lifecycle_inputs(state: pd.DataFrame, clv_summary: pd.DataFrame | None) -> pd.DataFrame:
    """``customer_id`` and the ``state_`` and ``clv_`` columns of :func:`scoring_inputs` (one row per
    customer of ``state``, ``clv_`` empty for those without a purchase), sorted by ``customer_id``."""
    ids = {"customer_id": "string"}
    frame = state[list(STATE_COLUMNS)].add_prefix("state_").rename_axis("customer_id").reset_index().astype(ids)
    if clv_summary is not None:
        clv = clv_summary[list(CLV_COLUMNS)].add_prefix("clv_").rename_axis("customer_id").reset_index().astype(ids)
        frame = frame.merge(clv, on="customer_id", how="left")
    return frame.sort_values("customer_id", kind="mergesort").reset_index(drop=True)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"The per-customer scoring input lacks {', '.join(missing)} ({what}). Build it with "
                        "segkit.steps.spark_scoring.scoring_inputs (columns as its docstring lists them).")


def _input_columns(models: ScoringModels) -> list[str]:
    """Every input column scoring with ``models`` reads (the lifecycle's only with its thresholds)."""
    state = [f"state_{c}" for c in STATE_COLUMNS] if models.thresholds is not None else []
    clv = [f"clv_{c}" for c in CLV_COLUMNS] if models.clv is not None and state else []
    return ["customer_id", *RFM_COLUMNS, *models.cluster_inputs, *state, *clv]


def _stage_state(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``state_`` columns as :func:`segkit.lifecycle.customer_state` names them (customers with a state)."""
    state = frame[[f"state_{c}" for c in STATE_COLUMNS]].set_axis(list(STATE_COLUMNS), axis=1)
    state = state[state["n_purchases"].notna().to_numpy()]
    return state.astype({"n_purchases": "int64", "engaged": bool, "has_orders": bool,
                         **{c: "float64" for c in STATE_COLUMNS if c not in ("n_purchases", "engaged", "has_orders")}})


def _stage_chances(models: ScoringModels, state: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    """P(alive) and the 90-day purchase chance the stage rules read (None without BG/NBD)."""
    if models.clv is None:
        return None, None
    return chances_as_of(models.clv.bgnbd, state, models.clv.one_time, models.clv.choice)


def chance_reference_parts(frame: pd.DataFrame, models: ScoringModels) -> tuple[int, int]:
    """Exact sum and count of the 90-day purchase chances of the live repeat buyers of ``frame`` (one partition,
    :func:`segkit.lifecycle.chance_reference_part`): over the partitions, :func:`segkit.lifecycle.chance_reference`
    of them is the at-risk rule's reference (``(0, 0)`` without BG/NBD)."""
    _require(frame, [f"state_{c}" for c in STATE_COLUMNS], "the lifecycle state")
    if models.clv is None:
        return 0, 0
    return chance_reference_part(_stage_state(frame), models.clv, models.thresholds)


def score_partition(frame: pd.DataFrame, models: ScoringModels, chance_reference: float | None = None) -> pd.DataFrame:
    """The ``customer_segments`` columns of the customers of ``frame`` (one partition of the input).

    Parameters
    ----------
    frame : DataFrame
        Rows of :func:`scoring_inputs`.
    models : ScoringModels
    chance_reference : float, optional
        Mean 90-day purchase chance of all live repeat buyers (:func:`chance_reference_parts` over every
        partition; NaN = none); None = over ``frame`` (all customers in one frame).

    Returns
    -------
    DataFrame
        :data:`SEGMENT_COLUMNS`, one row per row of ``frame`` in its order; whole numbers as ``Int64``,
        labels as ``string``, empty where a customer has no purchase (RFM, cluster, CLV) or no state, and
        where a model is absent (``models.cluster`` None: no cluster; ``models.thresholds`` None: no
        lifecycle stage nor CLV, the ``state_`` and ``clv_`` inputs are then not read).
    """
    n = len(frame)
    _require(frame, ["customer_id", *RFM_COLUMNS, *models.cluster_inputs], "the RFM base and behaviour features")
    out = pd.DataFrame({c: pd.array([pd.NA] * n, dtype="Int64") if c in _WHOLE
                        else pd.array([pd.NA] * n, dtype="string") if c in _TEXT else np.full(n, np.nan)
                        for c in SEGMENT_COLUMNS})
    out["customer_id"] = frame["customer_id"].astype("string").to_numpy()
    buyer = frame["frequency"].notna().to_numpy()
    buyers = frame[buyer].reset_index(drop=True)
    for column in RFM_COLUMNS:
        out.loc[buyer, column] = buyers[column].to_numpy(dtype="float64")
    if buyer.any():
        scored = score_base(buyers, models.scorer, models.segments, models.tiers)
        for column in (*SCORE_COLUMNS.values(), "rfm_segment", "tier", "recommended_action"):
            out.loc[buyer, column] = scored[column].to_numpy()
        if models.cluster is not None:
            clusters, names = cluster_labels(models.cluster, buyers)
            out.loc[buyer, "cluster"] = clusters
            out.loc[buyer, "cluster_name"] = names

    if models.thresholds is None:  # 04 has not run: no lifecycle columns
        return out
    _require(frame, [f"state_{c}" for c in STATE_COLUMNS], "the lifecycle state")
    has_state = frame["state_n_purchases"].notna().to_numpy()
    state = _stage_state(frame)
    if len(state):
        alive, chance = _stage_chances(models, state)
        stage = assign_lifecycle_stage(state, models.thresholds, alive, chance, chance_reference)
        out.loc[has_state, "lifecycle_stage"] = stage.astype("string").to_numpy()

    if models.clv is not None:
        _require(frame, [f"clv_{c}" for c in CLV_COLUMNS], "the CLV models' input")
        modelled = frame["clv_frequency"].notna().to_numpy()
        summary = frame.loc[modelled, [f"clv_{c}" for c in CLV_COLUMNS]].set_axis(list(CLV_COLUMNS), axis=1)
        if len(summary):
            scores = score_customers(models.clv, summary.astype("float64").reset_index(drop=True), models.settings)
            for column in ("p_alive", "p_purchase_90d", "expected_purchases_90d", "clv_12m"):
                out.loc[modelled, column] = scores[column].to_numpy(dtype="float64")
    return out


def cluster_labels(model: SegmentModel, buyers: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Cluster number and name of each buying customer of ``buyers`` (rows of the customer table notebook 03
    clusters, e.g. one partition) with notebook 03's fitted model: how Spark labels customers, in
    :func:`score_partition` and when 03 writes ``clusters.parquet`` (:mod:`segkit.steps.cluster`)."""
    clusters = model.predict(buyers)
    return clusters, [model.names[int(c)] for c in clusters]


def segments_schema() -> str:
    """The Spark schema (DDL) of :func:`score_partition`'s output."""
    kinds = {c: "bigint" if c in _WHOLE else "string" if c in _TEXT else "double" for c in SEGMENT_COLUMNS}
    return ", ".join(f"`{c}` {kind}" for c, kind in kinds.items())


def score_on_spark(inputs: "SparkFrame", models: ScoringModels, partitions: int | None = None) -> "SparkFrame":
    """Score every customer of ``inputs`` (a Spark DataFrame of :func:`scoring_inputs`' columns) on the executors.

    ``inputs`` is first range-partitioned by ``customer_id`` into ``partitions`` parts (None: the
    session's ``spark.sql.shuffle.partitions``), so each partition holds one range of ids and its scored
    rows become one file of :func:`write_customer_segments`. The models go to the executors as their
    JSON text (captured by the partition functions: it works on a Spark Connect session too, which has
    no ``SparkContext.broadcast``; the text is a few kB), and each partition rebuilds them once. With
    BG/NBD fitted, two passes over ``inputs``: the at-risk reference (:func:`chance_reference_parts`, two
    numbers per partition collected) and the scoring (:func:`score_partition`, lazy: computed when
    written); without it (or without the lifecycle) only the scoring.

    Returns
    -------
    pyspark.sql.DataFrame
        :data:`SEGMENT_COLUMNS` (schema :func:`segments_schema`), one row per input row, unrounded.
    """
    from segkit.data.spark import pandas_warnings_quiet

    _require(pd.DataFrame(columns=inputs.columns), _input_columns(models), "checked before Spark runs")
    count = partitions or int(inputs.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    ranged = inputs.repartitionByRange(count, "customer_id")
    text = json.dumps(models.to_dict())

    def parts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        here = ScoringModels.from_dict(json.loads(text))
        found = [chance_reference_parts(batch, here) for batch in batches]
        # the exact sum as decimal text: a whole number of 2**-1126, far beyond a bigint
        yield pd.DataFrame({"chance_sum": [str(sum(total for total, _ in found))],
                            "live_repeat_buyers": [sum(n for _, n in found)]})

    reference = float("nan")  # no chance: the at-risk rule's chance test is not applied (as on one machine)
    if models.clv is not None and models.thresholds is not None:
        with pandas_warnings_quiet():
            collected = ranged.mapInPandas(parts, "chance_sum string, live_repeat_buyers bigint").collect()
        reference = chance_reference([(int(row["chance_sum"]), int(row["live_repeat_buyers"])) for row in collected])

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        here = ScoringModels.from_dict(json.loads(text))
        for batch in batches:
            yield score_partition(batch, here, reference)

    with pandas_warnings_quiet():
        return ranged.mapInPandas(score, segments_schema())


def _in_cents(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        yield money_to_cents(batch)


def write_customer_segments(scored: "SparkFrame", artifacts: str | Path, csv_max_rows: int | None = CSV_MAX_ROWS,
                            columns: Sequence[str] = SEGMENT_COLUMNS) -> tuple[str, Path | None]:
    """Write scored customers as the dataset ``artifacts/customer_segments.parquet/`` and, when small, the CSV.

    Money is rounded to cents on the executors by the CSV's own rule
    (:func:`segkit.steps.pipeline.money_to_cents`), each partition sorted by ``customer_id`` and written
    as one file (``part-00000.parquet`` …, in ``customer_id`` order after :func:`score_on_spark`'s ranges).
    Spark writes into a hidden folder beside the dataset, which then replaces it
    (:func:`segkit.core.files.publish_parquet_parts`: fixed part names, no ``_SUCCESS`` or ``.crc``
    files); the old CSV is removed before and the new one written after, so a reader (the CSV when
    there is one, else the dataset) never sees a CSV beside another write's dataset.

    Parameters
    ----------
    scored : pyspark.sql.DataFrame
        :func:`score_on_spark`'s output.
    artifacts : str or Path
        The run's ``artifacts/`` folder: local, or any URL Spark writes (``s3a://``…: then no CSV, and
        the dataset is written in place with Spark's own file names).
    csv_max_rows : int, optional
        Also write ``customer_segments.csv`` when there are at most this many customers (counted from
        the files' Parquet footers; the files are read in name order on the driver, which is the CSV's
        row order, and written by :func:`segkit.core.files.write_csv_batches`, :data:`CSV_BATCH_ROWS` rows at a
        time); None = never. A CSV that is
        not written is removed, so that no older one is read in its place (05 then reads the dataset:
        :meth:`segkit.steps.pipeline.RunContext.read_artifact`).
    columns : sequence of str
        The columns written, in this order (``customer_id`` first): :data:`SEGMENT_COLUMNS` or those of
        the notebooks that have run (:func:`write_run_segments`).

    Returns
    -------
    tuple
        The dataset's folder and the CSV's path (None when not written).
    """
    from segkit.data.spark import pandas_warnings_quiet

    remote = "://" in str(artifacts)
    folder = f"{str(artifacts).rstrip('/')}/{PARQUET_FOLDER}"
    chosen = scored.select(*columns)
    with pandas_warnings_quiet():
        rounded = chosen.mapInPandas(_in_cents, chosen.schema).sortWithinPartitions("customer_id")
        if remote:
            rounded.write.mode("overwrite").parquet(folder)
            return folder, None
        written = Path(artifacts) / f".{PARQUET_FOLDER}.{os.getpid()}.tmp"
        csv = Path(artifacts) / CUSTOMER_SEGMENTS
        try:
            rounded.write.mode("overwrite").parquet(str(written))
            csv.unlink(missing_ok=True)  # from here until the new CSV is written, readers take the dataset
            files = publish_parquet_parts(written, Path(folder))
        finally:
            if written.exists():
                shutil.rmtree(written)
    if csv_max_rows is None or sum(pq.ParquetFile(f).metadata.num_rows for f in files) > csv_max_rows:
        return folder, None
    batches = (_csv_dtypes(batch.to_pandas()) for f in files for batch in pq.ParquetFile(f).iter_batches(CSV_BATCH_ROWS))
    write_csv_batches(csv, batches, columns)  # one batch of rows on the driver at a time
    return folder, csv


def _csv_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole numbers as ``Int64`` and labels as ``string``, as the CSV of the pandas path has them."""
    return frame.astype({**{c: "Int64" for c in frame.columns if c in _WHOLE},
                         **{c: "string" for c in frame.columns if c in _TEXT}})


# ----------------------------------------------------------------------------- a run folder's scoring
#: Folder under ``artifacts/`` holding what the Spark scoring of a run reads beyond the usual artifacts
#: (written only with ``engine.kind: spark``, by :func:`save_rfm_model` and :func:`save_lifecycle_inputs`).
SCORING_FOLDER = SPARK_SCORING_FOLDER
RFM_MODEL, STAGE_THRESHOLDS, LIFECYCLE_INPUTS = SPARK_SCORING_FILES


def scores_on_spark(ctx: RunContext) -> bool:
    """Whether Spark scores and writes this run's ``customer_segments`` (``engine.kind: spark``): the one
    place that decides it. 02, 03 and 04 then save their inputs and call :func:`write_run_segments`
    instead of merging their columns on the driver (:meth:`RunContext.update_customer_segments`)."""
    return choose_engine(ctx.config) == "spark"


def save_rfm_model(ctx: RunContext, rfm: Any) -> Path:
    """``artifacts/scoring/rfm_model.json``: notebook 02's fitted scorer, segment map and tiers
    (:func:`rfm_model_dict` of its :class:`segkit.rfm.RFMResult`)."""
    path = ctx.artifacts_dir / SCORING_FOLDER / RFM_MODEL
    atomic_write_text(path, dumps_json(rfm_model_dict(rfm)))
    return path


def save_lifecycle_inputs(ctx: RunContext, state: pd.DataFrame, clv_summary: pd.DataFrame | None,
                          thresholds: StageThresholds) -> Path:
    """``artifacts/scoring/lifecycle_inputs.parquet`` (``customer_id`` and the ``state_`` and ``clv_``
    columns of :func:`scoring_inputs`, one row per customer: :func:`lifecycle_inputs` of notebook 04's
    state at ``as_of`` and :func:`segkit.clv.clv_summary`) and ``stage_thresholds.json``."""
    folder = ctx.artifacts_dir / SCORING_FOLDER
    write_frame(folder / LIFECYCLE_INPUTS, lifecycle_inputs(state, clv_summary))
    save_stage_thresholds(ctx, thresholds)
    return folder / LIFECYCLE_INPUTS


def save_stage_thresholds(ctx: RunContext, thresholds: StageThresholds) -> Path:
    """``artifacts/scoring/stage_thresholds.json``: notebook 04's fitted stage thresholds."""
    path = ctx.artifacts_dir / SCORING_FOLDER / STAGE_THRESHOLDS
    atomic_write_text(path, dumps_json(dataclasses.asdict(thresholds)))
    return path


def segment_steps(ctx: RunContext) -> tuple[str, ...]:
    """The notebooks whose columns ``customer_segments`` gets when ``ctx.notebook`` ends: those whose
    columns it already has (the CSV's header, else the dataset's schema) and ``ctx.notebook`` itself.

    That is what the DuckDB run's merge keeps (it adds a notebook's columns and never drops one): after
    02 alone the RFM columns, after 04 re-run on a complete run every column.
    """
    csv = ctx.artifact_path("customer_segments")
    if csv.exists():
        have = set(read_frame(csv, nrows=0).columns)
    else:
        files = parquet_parts(ctx.artifacts_dir / PARQUET_FOLDER)
        have = set(pq.read_schema(files[0]).names) if files else set()
    return tuple(step for step, columns in STEP_COLUMNS.items()
                 if step == ctx.notebook or set(columns) & have)


def segment_columns(steps: Sequence[str]) -> list[str]:
    """``customer_id`` and the columns the notebooks ``steps`` add (:data:`STEP_COLUMNS`), in the order
    of ``customer_segments.csv`` (:data:`SEGMENT_COLUMNS`).

    Examples
    --------
    >>> segment_columns(["02_rfm", "03_clustering"])[-3:]
    ['recommended_action', 'cluster', 'cluster_name']
    """
    return ["customer_id", *[c for c in SEGMENT_COLUMNS if any(c in STEP_COLUMNS[step] for step in steps)]]


def run_scoring(ctx: RunContext, steps: Sequence[str] | None = None) -> tuple["SparkFrame", ScoringModels]:
    """A run's customers as Spark reads them from ``artifacts/`` and the models, ready for :func:`score_on_spark`.

    Spark reads ``customers_clean.parquet`` (every customer's id), ``rfm.parquet`` (the RFM base),
    with 03 ``clusters.parquet`` (the behaviour features, filled as the model saw them) and with 04
    ``scoring/lifecycle_inputs.parquet``, and joins them by ``customer_id`` on the executors (nothing per
    customer passes through the driver): one row per customer of any of them, as the DuckDB run's
    merge has them. The models come from ``scoring/rfm_model.json``, ``cluster_model.json`` (03),
    ``scoring/stage_thresholds.json`` and ``clv_model.json`` (04; absent when BG/NBD could not be fitted).

    Parameters
    ----------
    ctx : RunContext
    steps : sequence of str, optional
        The notebooks whose columns are scored (02 always); None = :func:`segment_steps`. A notebook
        left out has no model here (its columns stay empty) and its inputs are not read.

    Raises
    ------
    UpstreamMissingError
        An input of a scored notebook is missing (naming the notebook to run with ``engine.kind: spark``).
    """
    steps = segment_steps(ctx) if steps is None else tuple(steps)
    art = ctx.artifacts_dir
    needed = {art / "customers_clean.parquet": "01_data_audit", art / "rfm.parquet": "02_rfm",
              art / SCORING_FOLDER / RFM_MODEL: "02_rfm"}
    if "03_clustering" in steps:
        needed.update({art / "clusters.parquet": "03_clustering", art / "cluster_model.json": "03_clustering"})
    if "04_lifecycle" in steps:
        needed.update({art / SCORING_FOLDER / LIFECYCLE_INPUTS: "04_lifecycle",
                       art / SCORING_FOLDER / STAGE_THRESHOLDS: "04_lifecycle"})
    for path, notebook in needed.items():
        if not path.exists():
            raise UpstreamMissingError(f"Scoring on Spark needs {path.relative_to(ctx.run_dir)}, which is missing. "
                                       f"Run {notebook} with engine.kind: spark first (segkit run --only {notebook} "
                                       f"--out {ctx.run_dir}).")
    lifecycle = "04_lifecycle" in steps
    clv_path = art / "clv_model.json"
    models = ScoringModels.from_artifacts(
        json.loads((art / SCORING_FOLDER / RFM_MODEL).read_text()),
        json.loads((art / "cluster_model.json").read_text()) if "03_clustering" in steps else None,
        json.loads((art / SCORING_FOLDER / STAGE_THRESHOLDS).read_text()) if lifecycle else None,
        json.loads(clv_path.read_text()) if lifecycle and clv_path.exists() else None)
    read = run_reader(ctx)
    frame = read.parquet(str(art / "rfm.parquet")).select("customer_id", *RFM_COLUMNS)
    frame = read.parquet(str(art / "customers_clean.parquet")).select("customer_id").distinct() \
        .join(frame, "customer_id", "full_outer")
    if models.cluster is not None:
        features = read.parquet(str(art / "clusters.parquet"))
        wanted = [c for c in models.cluster_inputs if c in features.columns and c not in RFM_COLUMNS]
        frame = frame.join(features.select("customer_id", *wanted), "customer_id", "full_outer")
        # a column the model only fills gaps from: the stored features have no gaps left
        for column in (c for c in models.cluster_inputs if c not in features.columns and c not in RFM_COLUMNS):
            frame = frame.selectExpr("*", f"CAST(NULL AS DOUBLE) AS `{column}`")
    if lifecycle:
        frame = frame.join(read.parquet(str(art / SCORING_FOLDER / LIFECYCLE_INPUTS)), "customer_id", "full_outer")
    return frame, models


def run_reader(ctx: RunContext) -> "DataFrameReader":
    """Spark's reader of a run's artifacts: the run's session (started by its steps, else this process's), in
    a child session with segkit's pinned SQL settings, whatever the context's defaults."""
    from segkit.data.spark import child_session, spark_session

    engine = EngineSettings.from_config(ctx.config)
    root = spark_session(engine.spark.master, engine.spark.conf) if engine.kind == "spark" else spark_session()
    return child_session(root).read


def write_run_segments(ctx: RunContext, partitions: int | None = None,
                       csv_max_rows: int | None = CSV_MAX_ROWS) -> tuple[str, Path | None]:
    """Score a run's customers on Spark and write ``customer_segments.parquet/`` (and the CSV when it fits)
    with the columns of the notebooks that have run (:func:`segment_steps`): :func:`run_scoring`,
    :func:`score_on_spark`, :func:`write_customer_segments`. What 02, 03 and 04 end with on Spark.

    From reading which columns there are to writing, it holds the lock on ``artifacts/`` that
    :meth:`~segkit.steps.pipeline.RunContext.update_customer_segments` holds: two notebooks open at
    once (03 and 04 in JupyterLab) write one after the other, and the later one keeps the other's columns.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> write_run_segments(open_run("05_campaign_evaluation", run_dir="reports/run"))  # doctest: +SKIP
    """
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(ctx.artifacts_dir):
        steps = segment_steps(ctx)
        frame, models = run_scoring(ctx, steps)
        return write_customer_segments(score_on_spark(frame, models, partitions), ctx.artifacts_dir, csv_max_rows,
                                       segment_columns(steps))
