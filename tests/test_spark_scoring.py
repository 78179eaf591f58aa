"""Per-customer scoring on Spark executors equals the one-machine pipeline (issue 17).

The bundled sample goes through steps 01-04 in-process (the DuckDB/pandas path); the models they
fitted travel as JSON (:class:`segkit.steps.spark_scoring.ScoringModels`) and score the same customers,
read by Spark from the run folder, in three range partitions, so every partition scores only a part of the base and the
at-risk rule's reference has to be the whole base's. Labels must be identical, numbers equal to
1e-9 relative; the Parquet dataset Spark writes reads back as the pipeline's ``customer_segments.csv``.
One shared Spark session (``segkit.data.spark.spark_session``); a missing Java fails, never skips.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from segkit.core.errors import DataError
from segkit.core.files import read_frame
from segkit.data.spark import pandas_warnings_quiet, spark_session
from segkit.steps.audit import build_audit_artifacts
from segkit.steps.cluster import build_cluster_artifacts
from segkit.steps.lifecycle import build_lifecycle_artifacts
from segkit.steps.pipeline import open_run
from segkit.steps.rfm import build_rfm_artifacts
from segkit.steps.spark_scoring import (
    SEGMENT_COLUMNS,
    ScoringModels,
    rfm_model_dict,
    run_scoring,
    save_lifecycle_inputs,
    save_rfm_model,
    score_on_spark,
    score_partition,
    scoring_inputs,
    write_run_segments,
)

pytestmark = pytest.mark.slow

PARTITIONS = 3
LABELS = ("rfm_segment", "tier", "recommended_action", "cluster_name", "lifecycle_stage")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """Steps 01-04 on the bundled sample: the run folder, the models (through JSON) and the scoring input."""
    run = tmp_path_factory.mktemp("sample") / "run"
    build_audit_artifacts(open_run("01_data_audit", run_dir=run))
    rfm_ctx, lifecycle_ctx = open_run("02_rfm", run_dir=run), open_run("04_lifecycle", run_dir=run)
    rfm = build_rfm_artifacts(rfm_ctx)
    clusters = build_cluster_artifacts(open_run("03_clustering", run_dir=run))
    lifecycle = build_lifecycle_artifacts(lifecycle_ctx)
    save_rfm_model(rfm_ctx, rfm)  # what 02 and 04 save with engine.kind: spark
    save_lifecycle_inputs(lifecycle_ctx, lifecycle)
    models = ScoringModels.from_results(rfm, clusters, lifecycle)
    inputs = scoring_inputs(rfm.rfm, clusters.table, lifecycle.state, lifecycle.clv_summary)
    saved = {"rfm_model": rfm_model_dict(rfm), "stage_thresholds": dataclasses.asdict(lifecycle.stage_thresholds)}
    return run, models, inputs, saved


@pytest.fixture(scope="module")
def scored_on_spark(sample_run):
    """The sample's customers as Spark reads them from the run folder, scored in three partitions (lazy)."""
    run, _, _, _ = sample_run
    frame, models = run_scoring(open_run("05_campaign_evaluation", run_dir=run))
    return score_on_spark(frame, models, partitions=PARTITIONS)


def pipeline_columns(run) -> pd.DataFrame:
    """What the pipeline computed per customer, unrounded: rfm.parquet, clusters.parquet, lifecycle.parquet."""
    art = run / "artifacts"
    ids = read_frame(art / "customer_segments.csv", dtype={"customer_id": "string"}, usecols=["customer_id"])
    rfm = pd.read_parquet(art / "rfm.parquet").drop(columns=["tenure_days", "first_order_date", "last_order_date"])
    clusters = pd.read_parquet(art / "clusters.parquet", columns=["customer_id", "cluster", "cluster_name"])
    lifecycle = pd.read_parquet(art / "lifecycle.parquet", columns=[
        "customer_id", "lifecycle_stage", "p_alive", "p_purchase_90d", "expected_purchases_90d", "clv_12m"])
    out = ids.merge(rfm, on="customer_id", how="left").merge(clusters, on="customer_id", how="left")
    return out.merge(lifecycle, on="customer_id", how="left")[list(SEGMENT_COLUMNS)]


def assert_same_customers(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same ids in the same order, labels identical (empty where empty), numbers to 1e-9 relative."""
    assert list(got.columns) == list(expected.columns)
    assert got["customer_id"].astype(str).tolist() == expected["customer_id"].astype(str).tolist()
    for column in SEGMENT_COLUMNS[1:]:
        if column in LABELS:
            want = expected[column].astype("string").fillna("<empty>").tolist()
            assert got[column].astype("string").fillna("<empty>").tolist() == want, column
        else:
            a, b = (pd.to_numeric(f[column]).to_numpy(dtype="float64") for f in (got, expected))
            assert np.array_equal(np.isnan(a), np.isnan(b)), column
            np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=0, err_msg=column)


def test_each_partition_scores_its_customers_as_the_pipeline_did(sample_run, scored_on_spark):
    run, models, inputs, _ = sample_run
    with pandas_warnings_quiet():
        got = scored_on_spark.toPandas().sort_values("customer_id", kind="mergesort").reset_index(drop=True)
    expected = pipeline_columns(run)
    assert len(got) == len(expected) == 3000
    assert expected["lifecycle_stage"].eq("at_risk").sum() > 30 and expected["cluster"].notna().sum() > 2000
    assert_same_customers(got, expected)
    # the at-risk rule needs the whole base's reference: a partition alone would stage its customers differently
    third = inputs.iloc[: len(inputs) // PARTITIONS]
    alone = score_partition(third, models)["lifecycle_stage"].astype(str)
    assert (alone != expected["lifecycle_stage"].iloc[: len(third)].astype(str).to_numpy()).any()


def test_the_models_read_back_from_the_run_folder_score_alike(sample_run):
    run, models, inputs, saved = sample_run
    art = run / "artifacts"
    again = ScoringModels.from_artifacts(json.loads(json.dumps(saved["rfm_model"])),
                                         json.loads((art / "cluster_model.json").read_text()),
                                         saved["stage_thresholds"], json.loads((art / "clv_model.json").read_text()))
    assert again.clv.choice is not None and again.clv.choice.purchase_map is not None  # the holdout's variant too
    pd.testing.assert_frame_equal(score_partition(inputs, again), score_partition(inputs, models))


def test_customer_segments_dataset_reads_back_as_the_pipeline_csv(sample_run, tmp_path):
    run, _, _, _ = sample_run
    art = run / "artifacts"
    pipeline_csv = (art / "customer_segments.csv").read_bytes()
    (art / "customer_segments.csv").unlink()
    folder, csv = write_run_segments(open_run("05_campaign_evaluation", run_dir=run), partitions=PARTITIONS)
    files = sorted(p for p in (art / "customer_segments.parquet").glob("part-*.parquet"))
    assert len(files) == PARTITIONS
    parts = [pq.read_table(p).to_pandas() for p in files]
    assert all(len(p) > 500 and p["customer_id"].is_monotonic_increasing for p in parts)
    dataset = pd.concat(parts, ignore_index=True)
    assert dataset["customer_id"].is_monotonic_increasing  # the files in name order are the CSV's row order
    assert csv == art / "customer_segments.csv" and csv.read_bytes() == pipeline_csv
    assert_same_customers(dataset, read_frame(csv, dtype={"customer_id": "string"}))


def test_an_input_without_the_lifecycle_state_is_refused_before_spark_runs(sample_run):
    _, models, inputs, _ = sample_run
    partial = inputs.drop(columns=["state_n_purchases", "state_engaged"]).head(5)
    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(partial)
    with pytest.raises(DataError, match=r"lacks state_n_purchases, state_engaged .*scoring_inputs"):
        score_on_spark(frame, models, partitions=PARTITIONS)
