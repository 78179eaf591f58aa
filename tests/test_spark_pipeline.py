"""``engine.kind: spark``: the bundled sample's ``segkit run`` on Spark equals the DuckDB run (issue 17).

One ``segkit run`` of the bundled sample on Spark local mode (``engine.spark.master: local[2]``) and one
with ``engine.kind: duckdb`` (module-scoped: the Spark run is the slow one, about a minute per notebook
on a busy two-core machine). The audit runs on the run's engine (Spark: ``segkit.data.spark_audit``);
steps 02-05 read the run's clean lines through the relational core on Spark
(``segkit.steps.sources.run_lines``), so every label, segment and stage must be the same, every number
within 1e-9 relative, the same audit findings, and ``run.json`` must name Spark, its master and version.
A missing Java or pyspark fails here with the run's ConfigError (``tests/spark_setup.py``, run by
``make test``, installs Java): never a skip. Both runs cluster with :data:`SMALL_CLUSTERING` (samples far
smaller than the buyers); the Spark run's kernels execute ``tests/spark_kernel_spy.py`` first (an IPython
startup script in an ``IPYTHONDIR`` given to that command only), which records what each notebook's step
brings to its driver: the collect spies of 02-05 read those records and the steps' results, and re-run no step.

On Spark, 02-04 end with the per-customer scoring on the executors (``segkit.steps.spark_scoring``):
``customer_segments`` is written by Spark (two range partitions) as the Parquet dataset and the CSV,
which must be the DuckDB run's bytes. The scoring is checked further on the Spark run's folder, with
this process's one shared Spark session and no other pipeline run: the models read back from the run
folder against the DuckDB run's own columns (and a partition alone staging differently), the columns
after each notebook and ``--only`` re-run against the DuckDB merge's, 04 after 02 alone with the CSV
left out above ``CSV_MAX_ROWS`` and read from the dataset instead, the refusal of an input without
the lifecycle state, the reading through a session with segkit's SQL settings, the same file names and
bytes for the same customers, and a second ``segkit run`` into the Spark run's ``--out`` (the check that
precedes it). Without Spark: a driver-side merge after a Spark run, and the lock ``write_run_segments`` holds.

The engine section's checks (a bad master or setting, no Java, no pyspark) are tested without
starting Spark.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from pandas.testing import assert_frame_equal

from segkit.core.errors import ConfigError, DataError
from segkit.core.files import parquet_parts, read_frame, write_frame
from segkit.data import spark
from segkit.report.runfolder import RunFolderError, check_replaceable
from segkit.steps import spark_scoring
from segkit.steps.pipeline import NOTEBOOKS, open_run
from segkit.steps.sources import check_engine
from segkit.steps.spark_scoring import (
    SEGMENT_COLUMNS,
    STEP_COLUMNS,
    run_scoring,
    score_on_spark,
    score_partition,
    segment_columns,
    segment_steps,
    write_customer_segments,
    write_run_segments,
)
from tests.run_helpers import segkit_cli
from tests.spark_configs import assert_read_the_uri, sample_config

MASTER = "local[2]"
#: Artifacts compared between the runs beyond customer_segments.csv (tables with numbers: 1e-9 relative).
TABLES = ("rfm.parquet", "clusters.parquet", "lifecycle.parquet", "snapshots.parquet", "campaign_results.csv")
LABELS = ("rfm_segment", "cluster_name", "lifecycle_stage")


#: The clustering section of both runs' config: samples far smaller than the sample's 2,525 buyers, so that
#: what 03 on Spark brings to its driver can be told from a per-customer table (the 03 spy below).
SMALL_CLUSTERING = {"k": 3, "k_max": 4, "fit_sample": 1000, "selection": {"sample_size": 200},
                    "stability": {"max_customers": 200, "runs": 2}, "projection_sample": 100}
#: The IPython startup script that records what the Spark run's kernels bring to their driver.
KERNEL_SPY = Path(__file__).with_name("spark_kernel_spy.py")


def kernel_spy_environment(folder: Path) -> dict[str, str]:
    """The environment that makes every kernel of a ``segkit run`` execute :data:`KERNEL_SPY` first: an
    ``IPYTHONDIR`` of its own under ``folder`` with the script in ``profile_default/startup/``, and the
    folder its records go to (``folder/kernel_spy``)."""
    startup = folder / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copyfile(KERNEL_SPY, startup / "00-segkit-kernel-spy.py")
    (folder / "kernel_spy").mkdir()
    return {"IPYTHONDIR": str(folder / "ipython"), "SEGKIT_TEST_KERNEL_SPY": str(folder / "kernel_spy")}


def segkit_run(folder: Path, engine: dict, inputs_as_uris: bool = False, spied: bool = False) -> Path:
    """``segkit run --config <the sample with engine and SMALL_CLUSTERING> --out folder/run --quiet``; the run
    folder, with what the command printed in ``folder/terminal.txt`` (``spied``: and what its kernels did in
    ``folder/kernel_spy/``)."""
    out = folder / "run"
    config = sample_config(folder, engine, inputs_as_uris, sections={"clustering": SMALL_CLUSTERING})
    env = kernel_spy_environment(folder) if spied else None
    done = segkit_cli("run", "--config", config, "--out", out, "--quiet", env=env)
    if done.returncode != 0:
        raise AssertionError(f"segkit run ({engine}) failed with exit code {done.returncode}:\n{done.stdout}\n"
                             f"{done.stderr}")
    (folder / "terminal.txt").write_text(done.stdout + done.stderr)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The sample run folders: ``duckdb`` and ``spark`` (one Spark pipeline run for the module, its kernels
    spied on), made side by side: the Spark run waits on its JVM and many small jobs most of the time, the
    DuckDB run fills the gaps."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        spark_run = pool.submit(segkit_run, tmp_path_factory.mktemp("spark"),
                                {"kind": "spark", "spark": {"master": MASTER}}, inputs_as_uris=True, spied=True)
        duckdb_run = pool.submit(segkit_run, tmp_path_factory.mktemp("duckdb"), {"kind": "duckdb"})
        return {"duckdb": duckdb_run.result(), "spark": spark_run.result()}


def stderr_outputs(run: Path) -> list[str]:
    """The text every notebook of ``run`` showed on standard error (what its HTML report shows too)."""
    return [output["text"] for notebook in sorted(run.glob("*.ipynb"))
            for cell in nbformat.read(notebook, as_version=4).cells
            for output in cell.get("outputs", []) if output.get("name") == "stderr"]


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"customer_id": "string"}, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


@pytest.mark.slow
def test_segkit_run_on_spark_gives_the_duckdb_runs_customer_segments(runs):
    duck = read_table(runs["duckdb"] / "artifacts" / "customer_segments.csv")
    on_spark = read_table(runs["spark"] / "artifacts" / "customer_segments.csv")
    assert len(duck) > 2000 and set(LABELS) <= set(duck.columns)
    for column in LABELS:  # labels, segments and stages: identical, customer by customer
        assert on_spark[column].tolist() == duck[column].tolist(), column
    assert duck["lifecycle_stage"].nunique() > 2 and duck["cluster_name"].nunique() > 1
    assert_frame_equal(on_spark, duck, check_exact=False, rtol=1e-9)
    for name in TABLES:
        assert_frame_equal(read_table(runs["spark"] / "artifacts" / name),
                           read_table(runs["duckdb"] / "artifacts" / name), check_exact=False, rtol=1e-9, obj=name)


@pytest.mark.slow
def test_the_spark_run_has_the_same_audit_findings_and_records_spark(runs):
    audit = {kind: json.loads((run / "artifacts" / "audit_summary.json").read_text()) for kind, run in runs.items()}
    assert (audit["duckdb"]["engine"], audit["spark"]["engine"]) == ("duckdb", "spark")
    assert audit["spark"]["findings"] == audit["duckdb"]["findings"] and audit["duckdb"]["findings"]
    record = {kind: json.loads((run / "run.json").read_text()) for kind, run in runs.items()}
    assert record["spark"]["status"] == "ok"
    assert record["spark"]["engine"] == {"kind": "spark", "spark_master": MASTER,
                                         "spark_version": metadata.version("pyspark")}
    assert record["duckdb"]["engine"] == {"kind": "duckdb"}
    assert [n["name"] for n in record["spark"]["notebooks"]] == [n["name"] for n in record["duckdb"]["notebooks"]]


@pytest.mark.slow
def test_the_spark_run_read_its_transactions_customers_and_campaign_from_file_uris(runs):
    """``segkit run`` on Spark accepts ``data.transactions``, ``data.customers`` and ``data.campaign`` as
    ``file:///`` URIs and reads the local files they name (the audit gets the order lines' local path, not the
    URI: Spark's reader of URIs as written is tested in tests/test_spark_audit.py; the customers and campaign
    tables are read, checked and written by Spark: segkit.audit.SparkCustomers / SparkCampaign); the run records
    the URIs as written and its results (clean tables, findings, segments) equal the DuckDB run's. The Spark
    run's clean tables are Parquet datasets (folders of parts), which a notebook reads back with the canonical
    dtypes (RunContext.read_artifact) as the DuckDB run's one file."""
    assert_read_the_uri(runs["spark"])
    duck = yaml.safe_load((runs["duckdb"] / "config.yml").read_text())["data"]
    assert all(not path.startswith("file:") and Path(path).is_file() for path in duck.values())
    ctx = open_run("05_campaign_evaluation", run_dir=runs["spark"])
    for table in ("customers", "campaign"):
        name = f"{table}_clean"
        assert (runs["spark"] / "artifacts" / f"{name}.parquet").is_dir()  # Spark's parts, not one file
        assert (runs["duckdb"] / "artifacts" / f"{name}.parquet").is_file()
        assert_frame_equal(ctx.read_artifact(name), pd.read_parquet(runs["duckdb"] / "artifacts" / f"{name}.parquet"),
                           obj=table)


@pytest.mark.slow
def test_java_and_spark_start_up_notes_stay_out_of_the_reports_and_the_terminal(runs):
    """The Spark driver's JVM inherits the kernel's standard error: without segkit.data.spark sending it to
    a log while the session starts, "WARNING: Using incubator modules" and "Setting default log level"
    appear in the notebooks 02-05, their HTML reports and the terminal of a --quiet run."""
    assert stderr_outputs(runs["spark"]) == stderr_outputs(runs["duckdb"]) == []
    assert (runs["spark"].parent / "terminal.txt").read_text() == ""


# ------------------------------------------------------------------ customer_segments scored on the executors
SCORED_LABELS = ("rfm_segment", "tier", "recommended_action", "cluster_name", "lifecycle_stage")


def pipeline_columns(run: Path) -> pd.DataFrame:
    """What a run computed per customer, unrounded: rfm.parquet, clusters.parquet, lifecycle.parquet."""
    art = run / "artifacts"
    ids = read_frame(art / "customer_segments.csv", dtype={"customer_id": "string"}, usecols=["customer_id"])
    rfm = pd.read_parquet(art / "rfm.parquet").drop(columns=["tenure_days", "first_order_date", "last_order_date"])
    clusters = pd.read_parquet(art / "clusters.parquet", columns=["customer_id", "cluster", "cluster_name"])
    lifecycle = pd.read_parquet(art / "lifecycle.parquet", columns=[
        "customer_id", "lifecycle_stage", "p_alive", "p_purchase_90d", "expected_purchases_90d", "clv_12m"])
    out = ids.merge(rfm, on="customer_id", how="left").merge(clusters, on="customer_id", how="left")
    return out.merge(lifecycle, on="customer_id", how="left")[list(SEGMENT_COLUMNS)]


def assert_same_customers(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same columns, same ids in the same order, labels identical (empty where empty), numbers to 1e-9 relative."""
    assert list(got.columns) == list(expected.columns)
    assert got["customer_id"].astype(str).tolist() == expected["customer_id"].astype(str).tolist()
    for column in got.columns[1:]:
        if column in SCORED_LABELS:
            want = expected[column].astype("string").fillna("<empty>").tolist()
            assert got[column].astype("string").fillna("<empty>").tolist() == want, column
        else:
            a, b = (pd.to_numeric(f[column]).to_numpy(dtype="float64") for f in (got, expected))
            assert np.array_equal(np.isnan(a), np.isnan(b)), column
            np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=0, err_msg=column)


def dataset_parts(run: Path) -> list[pd.DataFrame]:
    """The part files of a run's ``customer_segments.parquet/``, in name order."""
    return [pq.read_table(f).to_pandas() for f in parquet_parts(run / "artifacts" / "customer_segments.parquet")]


@pytest.fixture(scope="module")
def scoring(runs):
    """The models and the per-customer input of the Spark run's scoring, as Spark reads them from its folder
    (the models through the JSON its steps saved; the input joined by Spark, here in pandas)."""
    frame, models = run_scoring(open_run("05_campaign_evaluation", run_dir=runs["spark"]))
    with spark.pandas_warnings_quiet():
        inputs = frame.toPandas()
    return models, inputs.sort_values("customer_id", kind="mergesort").reset_index(drop=True)


@pytest.mark.slow
def test_the_spark_run_writes_customer_segments_also_as_a_parquet_dataset_in_customer_id_order(runs):
    """Scored on the executors in two range partitions (local[2]): the CSV the same bytes as DuckDB's."""
    art = {kind: run / "artifacts" for kind, run in runs.items()}
    assert sorted(p.name for p in (art["spark"] / "scoring").iterdir()) == [
        "lifecycle_inputs.parquet", "rfm_model.json", "stage_thresholds.json"]  # what 02 and 04 saved for it
    parts = dataset_parts(runs["spark"])
    assert len(parts) == 2 and all(len(p) > 500 and p["customer_id"].is_monotonic_increasing for p in parts)
    dataset = pd.concat(parts, ignore_index=True)
    assert dataset["customer_id"].is_monotonic_increasing  # the files in name order are the CSV's row order
    csv = read_frame(art["spark"] / "customer_segments.csv", dtype={"customer_id": "string"})
    assert list(dataset.columns) == list(SEGMENT_COLUMNS)
    assert_same_customers(dataset, csv)
    assert (art["spark"] / "customer_segments.csv").read_bytes() == (art["duckdb"] / "customer_segments.csv").read_bytes()
    assert not (art["duckdb"] / "customer_segments.parquet").exists() and not (art["duckdb"] / "scoring").exists()


@pytest.mark.slow
def test_a_second_run_into_the_spark_runs_out_is_allowed_but_not_over_a_users_file(runs, tmp_path):
    """What segkit run (and --only) checks on --out before it runs: every entry of a Spark run's folder is
    segkit's (transactions_clean.parquet/ as Spark wrote it, customer_segments.parquet/ with fixed part names,
    scoring/); a file of the user's inside a dataset folder is not."""
    check_replaceable(runs["spark"], "--out")
    assert sorted(p.name for p in (runs["spark"] / "artifacts" / "customer_segments.parquet").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet"]
    copy = tmp_path / "run"
    shutil.copytree(runs["spark"], copy, symlinks=True)
    (copy / "artifacts" / "customer_segments.parquet" / "part-00002.csv").write_text("the user's")
    with pytest.raises(RunFolderError, match=r"holds 1 entry that segkit did not write: "
                                             r"artifacts/customer_segments\.parquet/part-00002\.csv\. "):
        check_replaceable(copy, "--out")


@pytest.mark.slow
def test_the_scoring_reads_with_segkits_sql_settings_and_the_same_customers_give_the_same_files(runs, tmp_path):
    """run_scoring reads through a child session with segkit's pinned settings, whatever the context's are;
    write_customer_segments twice on the same scored customers: the same file names and bytes, no temp left."""
    root = spark.spark_session(MASTER)
    zone = root.conf.get("spark.sql.session.timeZone")
    root.conf.set("spark.sql.session.timeZone", "America/New_York")  # as a cluster's spark-defaults may set it
    try:
        frame, models = run_scoring(open_run("05_campaign_evaluation", run_dir=runs["spark"]))
    finally:
        root.conf.set("spark.sql.session.timeZone", zone)
    assert frame.sparkSession is not root and frame.sparkSession.conf.get("spark.sql.session.timeZone") == "UTC"
    few = frame.orderBy("customer_id").limit(300)
    written = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        folder, csv = write_customer_segments(score_on_spark(few, models, partitions=2), tmp_path / name)
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [  # no hidden folder left
            "customer_segments.csv", "customer_segments.parquet"]
        written.append({p.name: p.read_bytes() for p in Path(folder).iterdir()})
    assert sorted(written[0]) == ["part-00000.parquet", "part-00001.parquet"] and written[0] == written[1]
    assert csv.read_bytes() == (tmp_path / "first" / "customer_segments.csv").read_bytes()


@pytest.mark.slow
def test_the_models_read_back_from_the_run_folder_score_as_the_duckdb_pipeline_did(runs, scoring):
    """The DuckDB run computed its columns with the models in memory; the Spark run's folder holds them as JSON
    (cluster_model.json, clv_model.json, scoring/*.json). A partition alone would stage differently: the
    at-risk rule's reference is the whole base's (score_on_spark's first pass)."""
    models, inputs = scoring
    expected = pipeline_columns(runs["duckdb"])
    assert len(inputs) == len(expected) == 3000
    assert expected["lifecycle_stage"].eq("at_risk").sum() > 30 and expected["cluster"].notna().sum() > 2000
    assert models.clv.choice is not None and models.clv.choice.purchase_map is not None  # the holdout's variant
    assert_same_customers(score_partition(inputs, models), expected)
    first = inputs["customer_id"].isin(dataset_parts(runs["spark"])[0]["customer_id"]).to_numpy()
    alone = score_partition(inputs[first], models)["lifecycle_stage"].astype(str).to_numpy()
    assert 500 < first.sum() < 2500 and (alone != expected.loc[first, "lifecycle_stage"].astype(str).to_numpy()).any()


@pytest.mark.slow
def test_an_input_without_the_lifecycle_state_is_refused_before_spark_runs(scoring):
    models, inputs = scoring
    partial = inputs.drop(columns=["state_n_purchases", "state_engaged"]).head(5)
    with spark.pandas_warnings_quiet():
        frame = spark.spark_session().createDataFrame(partial)
    with pytest.raises(DataError, match=r"lacks state_n_purchases, state_engaged .*scoring_inputs"):
        score_on_spark(frame, models, partitions=2)


@pytest.mark.parametrize("notebooks", [
    ("02_rfm",), ("02_rfm", "03_clustering"), ("02_rfm", "04_lifecycle"),
    ("02_rfm", "03_clustering", "04_lifecycle", "04_lifecycle"),  # 04 re-run after 03
    ("02_rfm", "04_lifecycle", "03_clustering", "03_clustering"),  # 03 re-run after 04
    ("02_rfm", "03_clustering", "04_lifecycle", "02_rfm"),
])
def test_spark_writes_the_columns_the_duckdb_merge_has_after_each_notebook(tmp_path, notebooks):
    """After the audit's ids, each notebook in turn: the columns write_run_segments would write (from the
    segments as they are and the running notebook) are those RunContext.update_customer_segments leaves."""
    run = tmp_path / "run"
    open_run("01_data_audit", run_dir=run).update_customer_segments(pd.DataFrame({"customer_id": ["c1", "c2"]}))
    for notebook in notebooks:
        ctx = open_run(notebook, run_dir=run)
        on_spark = segment_columns(segment_steps(ctx))
        ctx.update_customer_segments(pd.DataFrame({"customer_id": ["c1"], **{c: [1] for c in STEP_COLUMNS[notebook]}}))
        assert on_spark == list(read_frame(ctx.artifact_path("customer_segments"), nrows=0).columns), notebook


def test_a_clean_table_spark_wrote_as_a_dataset_reads_back_canonical_and_a_duckdb_rerun_replaces_it(tmp_path):
    """01 on Spark writes customers_clean.parquet as a folder of parts; a notebook reads it back with the
    canonical dtypes, parts in name order; a later one-machine 01 into the same run folder writes the file
    in its place."""
    ctx = open_run("01_data_audit", run_dir=tmp_path / "run")
    folder = ctx.artifacts_dir / "customers_clean.parquet"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["c2"], "signup_date": pd.to_datetime(["2024-01-02"]).astype("datetime64[us]")}) \
        .to_parquet(folder / "part-00001-x.snappy.parquet")
    pd.DataFrame({"customer_id": ["c1"], "signup_date": pd.to_datetime(["2024-01-01"]).astype("datetime64[us]")}) \
        .to_parquet(folder / "part-00000-x.snappy.parquet")
    read = ctx.read_artifact("customers_clean")
    assert read["customer_id"].tolist() == ["c1", "c2"]
    assert str(read["customer_id"].dtype) == "string" and read["signup_date"].dtype == "datetime64[ns]"
    ctx.write_artifact("customers_clean", read.iloc[:1])
    assert folder.is_file() and pd.read_parquet(folder)["customer_id"].tolist() == ["c1"]


def test_without_the_csv_the_datasets_columns_say_which_notebooks_have_run(tmp_path):
    """Above CSV_MAX_ROWS a Spark run has no CSV: the dataset's schema stands for its header."""
    ctx = open_run("04_lifecycle", run_dir=tmp_path / "run")
    folder = ctx.artifacts_dir / "customer_segments.parquet"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["c1"], **{c: [1] for c in STEP_COLUMNS["02_rfm"]}}).to_parquet(
        folder / "part-00000-x.snappy.parquet")
    assert segment_steps(ctx) == ("02_rfm", "04_lifecycle")
    assert ctx.has_artifact("customer_segments")
    assert ctx.read_artifact("customer_segments", columns=["customer_id", "rfm_segment", "cluster_name"]).columns.tolist() \
        == ["customer_id", "rfm_segment"]


def test_a_notebook_merging_on_the_driver_starts_from_sparks_dataset_and_removes_sparks_copies(tmp_path):
    """A folder whose engine.kind changed: 04 on DuckDB after a Spark run above CSV_MAX_ROWS (the dataset, no
    CSV). The merge keeps the dataset's columns, then removes the dataset and scoring/: a later Spark 03 must
    not rescore 04's columns from the earlier run's scoring/lifecycle_inputs.parquet."""
    ctx = open_run("04_lifecycle", run_dir=tmp_path / "run")
    dataset, scoring = ctx.artifacts_dir / "customer_segments.parquet", ctx.artifacts_dir / "scoring"
    dataset.mkdir()
    pd.DataFrame({"customer_id": ["c1", "c2"], "rfm_segment": ["Champions", "Lost"]}).to_parquet(
        dataset / "part-00000.parquet")
    scoring.mkdir()
    (scoring / "lifecycle_inputs.parquet").write_bytes(b"of the earlier run")
    ctx.update_customer_segments(pd.DataFrame({"customer_id": ["c2"], "lifecycle_stage": ["lapsed"]}))
    assert not dataset.exists() and not scoring.exists()
    assert read_frame(ctx.artifact_path("customer_segments"), keep_default_na=False).to_dict("list") == {
        "customer_id": ["c1", "c2"], "rfm_segment": ["Champions", "Lost"], "lifecycle_stage": ["", "lapsed"]}


def test_write_run_segments_holds_the_artifacts_lock_from_reading_the_columns_to_writing(tmp_path, monkeypatch):
    """As update_customer_segments does: 03 and 04 open at once in JupyterLab must not lose each other's columns."""
    class Probed(Exception):
        pass

    def probe(ctx, steps):  # where Spark would read the inputs: another writer must wait for the lock
        fd = os.open(ctx.artifacts_dir, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        raise Probed(steps)

    monkeypatch.setattr(spark_scoring, "run_scoring", probe)
    ctx = open_run("03_clustering", run_dir=tmp_path / "run")
    ctx.update_customer_segments(pd.DataFrame({"customer_id": ["c1"], "rfm_segment": ["Lost"]}))
    with pytest.raises(Probed) as probed:
        write_run_segments(ctx)
    assert probed.value.args == (("02_rfm", "03_clustering"),)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64 and labels as text, whatever file they were read from."""
    return frame.astype({c: "float64" if c not in ("customer_id", *SCORED_LABELS) else "string" for c in frame.columns})


@pytest.mark.slow
def test_04_after_02_alone_writes_what_the_duckdb_run_has_then_and_05_reads_the_dataset_above_csv_max_rows(
        runs, tmp_path):
    """segkit run --only 04_lifecycle after --only 02_rfm on Spark: on a copy of the Spark run's folder without
    what 03 writes, customer_segments after 02 alone (the DuckDB merge's), and one customer too many for a CSV."""
    duck = read_frame(runs["duckdb"] / "artifacts" / "customer_segments.csv", dtype={"customer_id": "string"})
    run = tmp_path / "run"
    shutil.copytree(runs["spark"] / "artifacts", run / "artifacts")
    for name in ("clusters.parquet", "cluster_model.json"):
        (run / "artifacts" / name).unlink()
    ctx = open_run("04_lifecycle", run_dir=run)
    shutil.rmtree(ctx.artifacts_dir / "customer_segments.parquet")  # as after the audit and 02 alone
    write_frame(ctx.artifact_path("customer_segments"), duck[["customer_id", *STEP_COLUMNS["02_rfm"]]])

    folder, csv = write_run_segments(ctx, csv_max_rows=len(duck) - 1)
    assert folder == f"{run}/artifacts/customer_segments.parquet"
    assert csv is None and not ctx.artifact_path("customer_segments").exists()  # no stale CSV left to read
    assert_frame_equal(comparable(ctx.read_artifact("customer_segments")),  # what 05 reads: the dataset
                       comparable(duck.drop(columns=["cluster", "cluster_name"])), check_exact=False, rtol=1e-9)


# ------------------------------------------------------------------ the engine section, checked before any work
def test_a_bad_spark_master_stops_segkit_run_before_any_notebook(tmp_path):
    config = sample_config(tmp_path, {"kind": "spark", "spark": {"master": "localhost:7077"}})
    done = segkit_cli("run", "--config", config, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"segkit: {config}: engine.spark.master = 'localhost:7077'; use a Spark master URL (local[*], local[4], "
        "spark://host:7077, yarn, k8s://https://host:6443) or a Spark Connect address (sc://host:15002) "
        "(see segkit/defaults/engine.yml).")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("spark_section, message", [
    ({"conf": {"executor.memory": "4g"}},
     "engine.spark.conf: 'executor.memory' is not a Spark setting; Spark settings start with 'spark.' "
     "(spark.executor.memory: 4g; Hadoop ones as spark.hadoop.*) (see segkit/defaults/engine.yml)."),
    ({"conf": {"spark.executor.memory": None}},
     "engine.spark.conf.spark.executor.memory = None; use one value (text, number or true/false), as "
     "spark-submit --conf takes it (see segkit/defaults/engine.yml)."),
    ({"masters": "local[2]"}, "engine.spark: unknown key(s) masters; known: master, conf (see segkit/defaults/engine.yml)."),
    ("local[2]", "engine.spark = 'local[2]'; use a mapping with master and conf, e.g. spark: {master: 'local[*]', "
                 "conf: {}} (see segkit/defaults/engine.yml)."),
])
def test_a_bad_engine_spark_value_is_a_config_error_saying_what_to_write(spark_section, message):
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": {"kind": "spark", "spark": spark_section}})
    assert str(caught.value) == message


def test_spark_settings_pass_through_as_spark_reads_them():
    # (a Spark Connect master takes only spark.sql.* keys: tests/test_spark_connect.py)
    settings = check_engine({"engine": {"kind": "spark", "spark": {"master": " spark://cluster:7077 ", "conf": {
        "spark.executor.memory": "4g", "spark.sql.shuffle.partitions": 400, "spark.speculation": True}}}})
    assert settings.spark.master == "spark://cluster:7077"
    assert settings.spark.conf == {"spark.executor.memory": "4g", "spark.sql.shuffle.partitions": "400",
                                   "spark.speculation": "true"}
    assert check_engine({"engine": {"kind": "spark"}}).spark.master == "local[*]"  # the default


def test_a_setting_the_core_relies_on_cannot_be_changed():
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": {"kind": "spark", "spark": {"conf": {"spark.sql.session.timeZone": "Europe/Berlin",
                                                                        "spark.sql.shuffle.partitions": 8}}}})
    assert str(caught.value) == ("engine.spark.conf sets spark.sql.session.timeZone, which the relational core's SQL "
                                 "relies on (spark.sql.session.timeZone: UTC); remove it from engine.spark.conf.")


def test_spark_without_java_is_a_config_error_naming_what_to_install(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/java")
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": {"kind": "spark", "spark": {"master": MASTER}}})
    text = str(caught.value)
    assert text.startswith("engine.kind is spark, but Spark cannot start on local[2]: JAVA_HOME is '/nonexistent/java'")
    assert "apt-get install -y openjdk-17-jre-headless" in text
    # a Spark Connect client needs no local Java (a server that answers: tests/test_spark_connect.py); other
    # engines never look
    monkeypatch.setattr(spark, "connect_address_problem", lambda address: None)
    assert check_engine({"engine": {"kind": "spark", "spark": {"master": "sc://cluster:15002"}}}).kind == "spark"
    assert check_engine({"engine": {"kind": "duckdb"}}).kind == "duckdb"


def test_spark_without_pyspark_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(spark, "SPARK_IMPORT_ERROR", ImportError("No module named 'pyspark'"))
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": {"kind": "spark"}})
    assert str(caught.value) == ("engine.kind is spark, but the `spark` extra is not installed (No module named "
                                 "'pyspark'). Install it with pip install 'segkit[spark]' (pyspark and sqlglot), or "
                                 "set engine.kind: duckdb.")


# --------------------------------------------------------------------------- every notebook: what it shows
def shown_outputs(notebook: Path) -> list[list[dict]]:
    """What each code cell of an executed notebook shows: its tables (HTML, text), Markdown, figures (the
    PNG bytes) and text streams (standard error included: a warning shown on one engine only differs)."""
    shown = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        shown.append([dict(output.get("data") or {output.get("name", "stream"): output.get("text")})
                      for output in cell.get("outputs", [])])
    return shown


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_shows_on_spark_exactly_what_it_shows_on_duckdb(runs, notebook):
    """On Spark, 01 audits on the executors, 02 and 03 keep their per-customer tables there and show overviews
    merged from per-partition partials (exact sums), 04 fits, scores and counts its history there: each code
    cell shows the DuckDB run's tables, Markdown, text and figures to the byte, and the summary is the same."""
    shown = {kind: shown_outputs(run / f"{notebook}.ipynb") for kind, run in runs.items()}
    assert len(shown["spark"]) == len(shown["duckdb"]) > 15
    for cell, (on_spark, on_duckdb) in enumerate(zip(shown["spark"], shown["duckdb"])):
        assert on_spark == on_duckdb, f"code cell {cell} of {notebook}.ipynb"
    kinds = {key for cell in shown["duckdb"] for output in cell for key in output}
    assert {"text/html", "text/markdown", "text/plain", "image/png"} <= kinds  # tables, notes, figures compared
    assert "stderr" not in kinds
    summaries = {kind: json.loads((run / "summaries" / f"{notebook}.json").read_text()) for kind, run in runs.items()}
    assert summaries["spark"] == summaries["duckdb"] and summaries["duckdb"]["findings"]


# --------------------------------------------------------------------------- what each Spark kernel collects
#: The Spark actions the spies below count as bringing rows to the driver (``toArrow`` is counted by 02 and 04).
COUNTED_ACTIONS = ("collect", "toPandas", "take", "head", "tail", "toLocalIterator")


@dataclass(frozen=True)
class KernelRecords:
    """What one notebook's kernel of the Spark run did while its ``build_*_artifacts`` ran, as
    tests/spark_kernel_spy.py recorded it: every Spark action (``collect``, ``toPandas``, ``toArrow``,
    ``take``, ``head``, ``tail``, ``toLocalIterator``; in the order they returned, nested ones first) with
    its frame's columns and the result's size, the artifacts read into pandas, the ``write_run_segments``
    calls (nothing is recorded while one runs: its CSV is collected up to CSV_MAX_ROWS by design), the
    FutureWarnings shown while the step ran, and the step's result, pickled by the kernel."""

    notebook: str
    pids: frozenset[int]
    actions: tuple[dict, ...]
    artifacts: tuple[str, ...]
    written: tuple[dict, ...]
    future_warnings: tuple[str, ...]
    end: dict

    def of(self, *methods: str) -> list[dict]:
        """The actions of these methods, in order."""
        return [action for action in self.actions if action["method"] in methods]

    @property
    def collected(self) -> list[tuple[tuple[str, ...], int]]:
        """(columns, rows) of every counted action (a ``toLocalIterator`` once exhausted): the length of a list
        or pandas result, 1 for anything else."""
        return [(tuple(a["columns"]), a["length"]) for a in self.of(*COUNTED_ACTIONS) if a.get("completed", True)]

    @property
    def rows(self) -> list[int]:
        """The rows of the counted actions on frames with a ``customer_id`` column (``toLocalIterator``: 1 per row)."""
        rows: list[int] = []
        for action in self.of(*COUNTED_ACTIONS):
            if "customer_id" in action["columns"]:
                rows += [1] * action["length"] if action["method"] == "toLocalIterator" else [action["length"]]
        return rows

    def result(self) -> Any:
        """The step's result, as the kernel returned it to the notebook."""
        assert self.end.get("pickled"), f"{self.notebook}'s kernel could not pickle its result: {self.end}"
        return pickle.loads(Path(self.end["pickled"]).read_bytes())


def read_kernel_records(spy: Path) -> dict[str, KernelRecords]:
    """The records of ``spy/records.jsonl``, per notebook; a notebook whose kernel recorded no step end
    (its step failed, or the startup script never ran) is left out."""
    assert (spy / "records.jsonl").is_file(), f"no kernel recorded anything in {spy}: IPYTHONDIR did not reach them"
    records = [json.loads(line) for line in (spy / "records.jsonl").read_text().splitlines()]
    out = {}
    for notebook in dict.fromkeys(r["notebook"] for r in records if r["notebook"]):
        mine = [r for r in records if r["notebook"] == notebook]
        ends = [r for r in mine if r["kind"] == "step" and r["phase"] == "end"]
        if len(ends) != 1:
            continue
        in_step = [r for r in mine if r["step"] == ends[0]["step"]]
        out[notebook] = KernelRecords(
            notebook=notebook, pids=frozenset(r["pid"] for r in mine),
            actions=tuple(r for r in in_step if r["kind"] == "action"),
            artifacts=tuple(r["name"] for r in in_step if r["kind"] == "artifact"),
            written=tuple({"of_the_step": r["of_the_step"], "notebook": r["ctx_notebook"]}
                          for r in mine if r["kind"] == "write_run_segments"),
            future_warnings=tuple(f"{r['filename']}:{r['lineno']}: {r['message']}"
                                  for r in in_step if r["kind"] == "warning"),
            end=ends[0])
    return out


@pytest.fixture(scope="module")
def kernels(runs) -> dict[str, KernelRecords]:
    """What each notebook's kernel of the Spark run did in its step (tests/spark_kernel_spy.py)."""
    return read_kernel_records(runs["spark"].parent / "kernel_spy")


def kernel_of(kernels: dict[str, KernelRecords], notebook: str) -> KernelRecords:
    """The records of ``notebook``'s kernel, which must have recorded its step in another process (a spy that
    saw nothing of the kernel would pass vacuously)."""
    assert notebook in kernels, f"no step of {notebook} recorded by the Spark run's kernels: {sorted(kernels)}"
    records = kernels[notebook]
    assert len(records.pids) == 1 and os.getpid() not in records.pids, records.pids
    assert records.actions, f"{notebook}'s kernel recorded no Spark action in its step"
    return records


@pytest.mark.slow
def test_every_kernel_of_the_spark_run_recorded_its_step_and_its_spark_actions(kernels):
    """The spies below read these records: each notebook ran in a kernel of its own (not this process) that
    executed tests/spark_kernel_spy.py (the run's IPYTHONDIR reached it), ran its step once on Spark, and
    handed back a result."""
    assert sorted(kernels) == sorted(NOTEBOOKS)
    pids = [next(iter(kernel_of(kernels, notebook).pids)) for notebook in NOTEBOOKS]
    assert len(set(pids)) == len(NOTEBOOKS)
    for notebook in NOTEBOOKS:
        assert kernels[notebook].end["shuffle_partitions"] >= 1  # the step ran on a Spark session
    for notebook in NOTEBOOKS[1:]:  # the spies' steps (the audit's result holds Spark frames: not pickled)
        assert kernels[notebook].result() is not None


# --------------------------------------------------------------------------- C cluster: what 03 collects
@pytest.mark.slow
def test_03_on_spark_brings_no_more_customer_rows_to_the_driver_than_its_samples(runs, kernels, tmp_path):
    """With samples far smaller than the 2,525 buyers (both runs' SMALL_CLUSTERING), no Spark action of 03's
    step in the Spark run's kernel brought more customers' rows to the driver than the samples hold, and no
    per-customer artifact was read into pandas (a collected customer table would show 2,525 rows here).
    ``customer_segments.csv``, written by Spark and collected up to CSV_MAX_ROWS by design, is left out
    (tested above)."""
    from segkit.cluster import ClusterSettings, plan_positions, sample_plan

    run = tmp_path / "run"
    shutil.copytree(runs["spark"], run)
    assert yaml.safe_load((runs["spark"].parent / "spark.yml").read_text())["clustering"] == SMALL_CLUSTERING
    ctx = open_run("03_clustering", run, run / "config.yml")
    settings = ClusterSettings.from_config(ctx.section("clustering"))
    buyers = len(pd.read_parquet(runs["duckdb"] / "artifacts" / "clusters.parquet", columns=["customer_id"]))
    held = len(plan_positions(sample_plan(buyers, settings, ctx.seed)))
    assert held < buyers == 2525
    kernel = kernel_of(kernels, "03_clustering")
    result = kernel.result()
    assert kernel.written == ({"of_the_step": True, "notebook": "03_clustering"},)
    assert result.info["customers"] == buyers and result.info["fitted_on"] == 1000
    assert max(kernel.rows) == held, sorted(kernel.rows)[-5:]  # the samples' rows, once; nothing larger
    assert kernel.artifacts == ()
    assert len(result.table) == held and len(pd.read_parquet(runs["spark"] / "artifacts" / "clusters.parquet")) == buyers


# --------------------------------------------------------------------------- A audit: what 01 shows
def close_to(got, expected, where: str = "") -> None:
    """``got`` equals ``expected`` (JSON values), numbers within 1e-9 relative."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), where
        for key in expected:
            close_to(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            close_to(g, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=0), where
    else:
        assert got == expected, where


@pytest.mark.slow
def test_the_spark_runs_audit_summary_is_the_duckdb_runs(runs):
    """01 on Spark audits the lines on the executors, and its headline numbers and the outlier orders'
    cancellations are looked up there too (no DuckDB pass in the kernel: tests/test_spark_audit.py): every
    cell shows what the DuckDB run's shows (overview, findings, offending rows, rules, summary; figures by
    their text), and ``audit_summary.json`` and the notebook summary are the DuckDB run's."""
    audit = {kind: json.loads((run / "artifacts" / "audit_summary.json").read_text()) for kind, run in runs.items()}
    close_to({**audit["spark"], "engine": "duckdb"}, audit["duckdb"], "audit_summary")
    assert audit["duckdb"]["headline"]["purchase_orders"] > 0
    summaries = {kind: json.loads((run / "summaries" / "01_data_audit.json").read_text()) for kind, run in runs.items()}
    assert summaries["spark"] == summaries["duckdb"] and summaries["duckdb"]["headlines"]["Order lines (clean)"] > 0


# --------------------------------------------------------------------------- R rfm: what 02 shows
@pytest.mark.slow
def test_02_on_spark_brings_no_customer_rows_to_the_driver_through_spark(runs, kernels):
    """Every Spark action of 02's step in the Spark run's kernel returned counts, distribution rows or pickled
    partials: none carried a ``customer_id`` (a collected RFM base would), each is bounded by what the fits and
    medians need or by the partitions (whatever its columns), and none of the run's per-customer artifacts was
    read into pandas. The driver reads only the sampled customers and the capped list, batch by batch, from the
    ``rfm.parquet`` Spark wrote (equal to the DuckDB run's). ``write_run_segments`` (the CSV, collected up to
    CSV_MAX_ROWS by design) is left out."""
    from segkit.data.distribution import ValueDistribution
    from segkit.rfm import PROFILE_COLUMNS, fit_needs, median_groups, overview_needs

    kernel = kernel_of(kernels, "02_rfm")
    result = kernel.result()
    columns = [action["columns"] for action in kernel.of("toPandas", "toArrow", "collect", "toLocalIterator")]
    assert kernel.written == ({"of_the_step": True, "notebook": "02_rfm"},)
    assert result.rfm is None and result.overview.customers == 2525
    assert len(columns) > 5 and ["part"] in columns  # the counts, distributions and partials were seen
    assert not [c for c in columns if "customer_id" in c], columns
    assert kernel.artifacts == ()
    # every collect is bounded, whatever its columns: value distributions hold what the fits need (the rows
    # numpy keeps of the DuckDB run's base) or the medians' middle rows; the rest a row per partition and column
    settings, duck = result.settings, pd.read_parquet(runs["duckdb"] / "artifacts" / "rfm.parquet")
    needs = fit_needs(result.scorer, settings.tiers)
    for column, need in overview_needs(len(duck), settings).items():
        needs[column] = needs[column].merge(need) if column in needs else need
    fit_rows = sum(len(ValueDistribution.of_values(duck[c].to_numpy("float64"), need).index) for c, need in needs.items())
    keys = len(median_groups(settings.segments)) * len(PROFILE_COLUMNS)  # the medians' columns
    partitions = kernel.end["shuffle_partitions"]  # the kernel's session's spark.sql.shuffle.partitions
    distribution_rows = [n for c, n in kernel.collected if c == ("key", "index", "value", "below", "count")]
    assert len(distribution_rows) == 2 and max(distribution_rows) <= fit_rows < 2525
    assert min(distribution_rows) <= 5 * 2 * keys  # at most five rows near each of a median's two positions
    assert max(n for c, n in kernel.collected if c != ("key", "index", "value", "below", "count")) <= keys * partitions
    assert_frame_equal(pd.read_parquet(runs["spark"] / "artifacts" / "rfm.parquet"),
                       pd.read_parquet(runs["duckdb"] / "artifacts" / "rfm.parquet"), check_exact=False, rtol=1e-9)
    assert len(result.overview.customer_list) == 2525 and not result.overview.list_capped


# --------------------------------------------------------------------------- L2b lifecycle: 04's history tables
@pytest.mark.slow
def test_04_on_spark_counts_the_history_tables_on_the_executors_and_writes_the_duckdb_runs_cohorts(runs):
    """Snapshots (in TABLES) and cohorts come from counts merged over buckets of customers
    (segkit.steps.spark_lifecycle.history_counts_on_spark): the same months, counts and revenue as the DuckDB run, bit for
    bit (revenue is summed exactly, whatever the buckets)."""
    cohorts = {kind: pd.read_parquet(run / "artifacts" / "cohorts.parquet") for kind, run in runs.items()}
    assert len(cohorts["duckdb"]) > 10 and cohorts["duckdb"]["customers_purchasing"].sum() > 0
    assert_frame_equal(cohorts["spark"], cohorts["duckdb"], check_exact=True)  # revenue summed exactly (finding 4)


# --------------------------------------------------------------------------- F1 rfm fixes: 02's medians and errors on Spark
def test_02s_medians_counted_on_spark_are_the_pandas_medians_and_an_empty_group_is_nan_on_both():
    """The explorer's medians on Spark (segkit.steps.rfm.group_medians_on_spark: value distributions counted by
    the executors) equal segkit.rfm.group_medians of the same scored rows, exactly, group by group."""
    from segkit.data.spark import pandas_warnings_quiet, spark_session
    from segkit.rfm import PROFILE_COLUMNS, group_medians
    from segkit.steps.rfm import group_medians_on_spark

    rng = np.random.default_rng(3)
    scored = pd.DataFrame({"rfm_segment": ["Lost", "Champions", "Lost", "Lost", "At Risk", "Lost", "Champions"],
                           **{c: np.round(rng.lognormal(2, 1, 7), 2) for c in PROFILE_COLUMNS}})
    groups = [("Lost",), ("Champions",), ("Hibernating",), ("At Risk", "Can't Lose Them")]
    with pandas_warnings_quiet():
        on_spark = group_medians_on_spark(spark_session().createDataFrame(scored), groups)
    expected = group_medians(scored, groups)
    np.testing.assert_equal(on_spark, expected)
    assert np.isnan(expected[("Hibernating",)]["frequency"]) and expected[("Lost",)]["frequency"] > 0


def test_02_without_a_buyer_stops_on_spark_with_the_duckdb_runs_message(tmp_path, monkeypatch):
    """Lines whose only order before as_of kept nothing (bought and returned in full): 02 on Spark stops before
    any fit with the DataError the DuckDB run gives (segkit.rfm.require_buyers), not a fit's internal one."""
    from types import SimpleNamespace

    from segkit.data.engine import OrderLines
    from segkit.data.spark import SparkOrderLines, spark_session
    from segkit.rfm import RFMSettings, analyse_rfm
    from segkit.steps import rfm as rfm_step
    from segkit.steps import sources

    lines = pd.DataFrame({"customer_id": ["a", "a"], "order_id": ["1", "1"], "amount": [25.0, -25.0],
                          "order_date": pd.to_datetime(["2024-01-01", "2024-01-01"])})
    as_of = pd.Timestamp("2024-06-01")
    with pytest.raises(DataError) as on_duckdb:
        analyse_rfm(None, as_of, base=OrderLines(lines).rfm_with_info(as_of))
    ctx = SimpleNamespace(as_of=as_of, seed=0, artifacts_dir=tmp_path,
                          artifact_path=lambda name: tmp_path / f"{name}.parquet")
    monkeypatch.setattr(sources, "run_lines", lambda _: SparkOrderLines(lines, session=spark_session()))
    with pytest.raises(DataError) as on_spark:
        rfm_step.rfm_on_spark(ctx, RFMSettings.from_config(None))
    assert str(on_spark.value) == str(on_duckdb.value)
    assert str(on_duckdb.value).startswith("No buying customer before as_of = 2024-06-01: ")
    assert not list(tmp_path.iterdir())  # nothing written


# --------------------------------------------------------------------------- F3 lifecycle: what 04 collects
#: Columns of the Spark results 04 on Spark still brings to its kernel per customer (a ``customer_id``), in the
#: order it asks for them: only the holdout check's seeded sample (segkit.steps.lifecycle_holdout, H's; every
#: customer of the 3,000 of the sample, under lifecycle.holdout_sample). as_of, the data's start, the snapshots'
#: start, the later purchases, the gaps, the threshold widget's stage sizes and the not-signed-up count are
#: partials per partition merged on the driver (segkit.steps.spark_lifecycle).
SAMPLE_DAYS_04 = ("toPandas", ("customer_id", "day", "amount", "orders"))
KNOWN_04_CUSTOMER_COLLECTS = [
    SAMPLE_DAYS_04,  # the sample's purchase days as seen at the holdout cut-off (calibration period)
    SAMPLE_DAYS_04,  # ... and at the earlier cut-off that checks the export choice
    SAMPLE_DAYS_04,  # ... and before as_of (the holdout's orders)
    ("toPandas", ("customer_id", "monetary_total")),  # the sample's kept value: the holdout's spend scaling
]
#: Columns of 04's other Spark results: value distributions' rows, count tables, merged parts (bounded by the
#: needs, the patterns and the partitions, not by the customers) and one-row checks of the lines and of the
#: Gamma-Gamma input (its repeat buyers counted: the sample's 2,000-odd are under lifecycle.order_value_sample, so
#: their pairs are counted on the executors, no id collected).
BOUNDED_04_COLLECTS = {
    ("complete",), ("_file", "_block", "n"), ("last_order_date",),
    ("key", "_segkit_part", "rows", "customers", "last_count", "missing"), ("key", "index", "value", "below", "count"),
    ("days", "repeated", "customers"), ("frequency", "recency", "T", "customers"),
    ("repeat_buyers", "invalid_rows"), ("frequency", "monetary_value", "customers"), ("part",),
}
#: A look at the first lines (SparkLines' checks of the clean lines) reads at most this many.
FIRST_LINES = 3


@pytest.mark.slow
def test_04_on_spark_collects_per_customer_only_its_known_kernel_inputs_and_warns_nothing(kernels):
    """04 on Spark stages, scores and aggregates on the executors; what its step in the Spark run's kernel still
    collected per customer is the known list above (the holdout check's seeded sample): any new per-customer
    collect fails here, as does any new kind of result, and it read no artifact into pandas. No Spark call let
    pyspark's FutureWarning about pandas 3 out while the step ran (finding 6: a notebook shows it on stderr)."""
    kernel = kernel_of(kernels, "04_lifecycle")
    result = kernel.result()
    assert kernel.future_warnings == ()
    results = [(a["method"], tuple(a["columns"]), a["rows"])
               for a in kernel.of("collect", "toPandas", "toArrow", "take", "head", "tail")]
    assert kernel.written == ({"of_the_step": True, "notebook": "04_lifecycle"},)
    assert result.lifecycle is None and (result.view.customers, result.view.buyers) == (3000, 2525)
    per_customer = [(name, columns) for name, columns, rows in results
                    if {"customer_id", "code"} & set(columns) and rows > FIRST_LINES]
    assert per_customer == KNOWN_04_CUSTOMER_COLLECTS
    others = {columns for _, columns, _ in results if not {"customer_id", "code"} & set(columns)}
    assert others == BOUNDED_04_COLLECTS
    assert kernel.artifacts == ()  # the executors read the customers and the campaign


# --------------------------------------------------------------------------- K campaign: what 05 collects
#: The artifacts 05 on Spark reads into pandas: the saved cluster model (JSON). Not the campaign rows, not
#: customer_segments (its header only), not clusters.parquet (the model's agreement is counted per partition),
#: not the customers (the customer tables as of each send are built on the executors).
KNOWN_05_ARTIFACTS = ["cluster_model"]
#: The columns of everything 05 on Spark collects: none has a row per recipient or customer. A look at the clean
#: lines, counts per file (numbering the campaign rows), a text per partition (the rows' checks and first sends;
#: the evaluation's cell sums), the agreement counts, buyers per send, partition totals and value distributions
#: (the RFM and lifecycle refits), the first purchase before a send, and what 03's customer table reads of the
#: whole at each send (which line details exist, channel totals, each bucket's columns and buyers).
BOUNDED_05_COLLECTS = {("complete",), ("_file", "_block", "n"), ("facts",), ("parts",), ("agreeing", "total"),
                       ("campaign_id", "n"), ("key", "_segkit_part", "rows", "customers", "last_count", "missing"),
                       ("key", "index", "value", "below", "count"), ("first",), ("has_category", "has_channel"),
                       ("channel", "n"), ("columns", "buyers")}


@pytest.mark.slow
def test_05_on_spark_collects_no_row_per_recipient_and_shows_the_duckdb_runs_results(runs, kernels, tmp_path):
    """05 on Spark checks, labels (RFM, lifecycle and cluster names at each send), flags and sums the campaign rows
    on the executors: nothing its step in the Spark run's kernel collected has a row per recipient or customer
    (any such result, a new kind of result or a new artifact read into pandas fails here), and its results are
    the DuckDB run's, every segment dimension of the explorer, the warnings and the summary included."""
    from segkit.steps import campaign as campaign_step

    duckdb = tmp_path / "duckdb"
    shutil.copytree(runs["duckdb"], duckdb)
    expected = campaign_step.build_campaign_artifacts(open_run("05_campaign_evaluation", duckdb, duckdb / "config.yml"))
    kernel = kernel_of(kernels, "05_campaign_evaluation")
    result = kernel.result()
    assert kernel.written == ()
    assert result.distinct_customers > 0 and result.segment_labels is None
    per_recipient = [(columns, rows) for columns, rows in kernel.collected
                     if {"customer_id", "recipient_row"} & set(columns) and rows > FIRST_LINES]
    assert per_recipient == []
    assert {columns for columns, _ in kernel.collected} <= BOUNDED_05_COLLECTS
    assert list(kernel.artifacts) == KNOWN_05_ARTIFACTS
    assert set(result.by_dimension) == set(expected.by_dimension) == {"rfm_segment", "cluster_name",
                                                                      "lifecycle_stage", "none"}
    for dim, table in expected.by_dimension.items():
        assert_frame_equal(result.by_dimension[dim], table, check_exact=False, rtol=1e-9, obj=dim)
    assert result.warnings == expected.warnings
    assert campaign_step.summarize(result) == campaign_step.summarize(expected)
    assert_frame_equal(read_table(runs["spark"] / "artifacts" / "campaign_results.csv"),
                       read_table(duckdb / "artifacts" / "campaign_results.csv"), check_exact=True)
