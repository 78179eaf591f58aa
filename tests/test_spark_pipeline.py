"""``engine.kind: spark``: the bundled sample's ``segkit run`` on Spark equals the DuckDB run (issue 17).

One ``segkit run`` of the bundled sample on Spark local mode (``engine.spark.master: local[2]``) and one
with ``engine.kind: duckdb`` (module-scoped: the Spark run is the slow one, about a minute per notebook
on a busy two-core machine). The audit reads with DuckDB either way; steps 02-05 read the run's clean
lines through the relational core on Spark (``segkit.steps.sources.run_lines``), so every label,
segment and stage must be the same, every number within 1e-9 relative, the same audit findings, and
``run.json`` must name Spark, its master and version. A missing Java or pyspark fails here with the
run's ConfigError (``tests/spark_setup.py``, run by ``make test``, installs Java): never a skip.

The engine section's checks (a bad master or setting, no Java, no pyspark) are tested without
starting Spark.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

from segkit.core.config import bundled_sample_config
from segkit.core.errors import ConfigError
from segkit.data import spark
from segkit.steps.sources import check_engine
from tests.run_helpers import segkit_cli

MASTER = "local[2]"
#: Artifacts compared between the runs beyond customer_segments.csv (tables with numbers: 1e-9 relative).
TABLES = ("rfm.parquet", "clusters.parquet", "lifecycle.parquet", "snapshots.parquet", "campaign_results.csv")
LABELS = ("rfm_segment", "cluster_name", "lifecycle_stage")


def sample_config(folder: Path, engine: dict) -> Path:
    """The bundled sample's config (``data/configs/sample.yml``, data paths made absolute) with ``engine``."""
    source = bundled_sample_config()
    config = yaml.safe_load(source.read_text())
    config["data"] = {table: str((source.parent / path).resolve()) if path else None
                      for table, path in config["data"].items()}
    config["engine"] = engine
    path = folder / f"{engine['kind']}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def segkit_run(folder: Path, engine: dict) -> Path:
    """``segkit run --config <the sample with engine> --out folder/run --quiet``; the run folder, with what
    the command printed in ``folder/terminal.txt``."""
    out = folder / "run"
    done = segkit_cli("run", "--config", sample_config(folder, engine), "--out", out, "--quiet")
    if done.returncode != 0:
        raise AssertionError(f"segkit run ({engine}) failed with exit code {done.returncode}:\n{done.stdout}\n"
                             f"{done.stderr}")
    (folder / "terminal.txt").write_text(done.stdout + done.stderr)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The sample run folders: ``duckdb`` and ``spark`` (one Spark pipeline run for the module)."""
    return {"duckdb": segkit_run(tmp_path_factory.mktemp("duckdb"), {"kind": "duckdb"}),
            "spark": segkit_run(tmp_path_factory.mktemp("spark"), {"kind": "spark", "spark": {"master": MASTER}})}


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
def test_java_and_spark_start_up_notes_stay_out_of_the_reports_and_the_terminal(runs):
    """The Spark driver's JVM inherits the kernel's standard error: without segkit.data.spark sending it to
    a log while the session starts, "WARNING: Using incubator modules" and "Setting default log level"
    appear in the notebooks 02-05, their HTML reports and the terminal of a --quiet run."""
    assert stderr_outputs(runs["spark"]) == stderr_outputs(runs["duckdb"]) == []
    assert (runs["spark"].parent / "terminal.txt").read_text() == ""


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
    settings = check_engine({"engine": {"kind": "spark", "spark": {"master": " sc://cluster:15002 ", "conf": {
        "spark.executor.memory": "4g", "spark.sql.shuffle.partitions": 400, "spark.speculation": True}}}})
    assert settings.spark.master == "sc://cluster:15002"
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
    # a Spark Connect client needs no local Java; other engines never look
    assert check_engine({"engine": {"kind": "spark", "spark": {"master": "sc://cluster:15002"}}}).kind == "spark"
    assert check_engine({"engine": {"kind": "duckdb"}}).kind == "duckdb"


def test_spark_without_pyspark_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(spark, "SPARK_IMPORT_ERROR", ImportError("No module named 'pyspark'"))
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": {"kind": "spark"}})
    assert str(caught.value) == ("engine.kind is spark, but the `spark` extra is not installed (No module named "
                                 "'pyspark'). Install it with pip install 'segkit[spark]' (pyspark and sqlglot), or "
                                 "set engine.kind: duckdb.")
