"""``segkit run``'s inputs on ``engine.kind: spark`` (issue 17): tables and URIs that Spark reads where they live.

``data.transactions`` (or ``--transactions``) may be a URI of any filesystem Spark reads (``s3a://``,
``hdfs://``, ``abfss://``, ``gs://``, ``dbfs:/``, ``file://``) or ``table:<name>`` on Spark: it reaches the
run's ``config.yml`` and ``run.json`` as written (no size or hash for a table or a remote URI; a ``file:`` URI
is a local file, checked before any notebook and hashed as one). Any other engine refuses such a value before
the first notebook (exit 2), and so does Spark for the customers and campaign tables (read by pandas on the
machine running segkit). A table or URI that Spark cannot read stops the audit (01) with a DataError naming
``data.transactions``, what was given and what Spark said.

A ``file:`` URI is the local file it names wherever segkit reads it as a path (``load_inputs``, an interactive
notebook's check for changed inputs, ``RunContext.input_path``); a table name with a space after ``table:`` is
refused before any notebook.

Everything but the last test runs without Spark. That ``segkit run`` accepts a ``file://`` URI on Spark and
reads the local file it names is proved by the one shared Spark pipeline run (``tests/test_spark_pipeline.py``
with ``tests/spark_configs.py``'s ``sample_config(..., transactions_as_uri=True)`` and ``assert_read_the_uri``);
Spark's reader of a URI passed as written, by ``tests/test_spark_audit.py`` (a ``file:`` glob of CSV parts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segkit.audit import audit_inputs
from segkit.core.config import file_uri_path, load_config, local_path, project_root, source_scheme
from segkit.core.errors import ConfigError, DataError
from segkit.data.io import load_inputs
from segkit.data.spark import spark_session
from segkit.data.spark_audit import URI_PARQUET_HINT
from segkit.report.index import render_index
from segkit.report.runfolder import protected_paths
from segkit.report.runinfo import input_files
from segkit.report.runner import RunOptions, effective_config, write_config
from segkit.steps.pipeline import open_run
from tests.run_helpers import segkit_cli

SAMPLE = project_root() / "data" / "sample"
SPARK = {"kind": "spark", "spark": {"master": "local[2]"}}
#: data.transactions values Spark reads where they live: kept as written.
REMOTE = ["s3a://lake/shop/orders/", "s3a://lake/shop/orders/2024-*.parquet", "hdfs:///warehouse/orders",
          "abfss://shop@account.dfs.core.windows.net/orders", "gs://lake/orders.csv", "dbfs:/mnt/shop/orders",
          "table:main.sales.orders"]


def config_file(folder: Path, data: dict, engine: dict | None = None) -> Path:
    """``folder/config.yml`` with ``data`` (and ``engine``)."""
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump({"data": data, **({"engine": engine} if engine else {})}))
    return path


def refusal(config: Path) -> str:
    """The message of the ConfigError that ``segkit run --config config`` stops with before any notebook."""
    with pytest.raises(ConfigError) as caught:
        effective_config(RunOptions(config=config))
    return str(caught.value)


@pytest.mark.parametrize("value, scheme", [
    ("table:main.sales.orders", "table"), ("S3A://lake/o/", "s3a"), ("file:///d/o.csv", "file"), ("dbfs:/mnt/o", "dbfs"),
    ("orders.csv", None), ("/d/2024-*.parquet", None), ("C:/shop/o.csv", None), ("shop:2024.csv", None),
])
def test_a_table_or_uri_is_told_from_a_local_path(value, scheme):
    assert source_scheme(value) == scheme
    assert source_scheme(Path(value)) is None  # a Path is a local path ("s3a://x" as a Path is already "s3a:/x")


@pytest.mark.parametrize("value", REMOTE)
def test_on_spark_a_table_or_uri_reaches_the_runs_config_as_written(tmp_path, value):
    """Before: resolved as a local path against the config's folder ("…/s3a:/lake/…") and refused as missing."""
    cfg = effective_config(RunOptions(config=config_file(tmp_path, {"transactions": value}, SPARK)))
    assert cfg["data"] == {"transactions": value, "customers": None, "campaign": None}
    write_config(cfg, tmp_path / "run_config.yml")
    assert yaml.safe_load((tmp_path / "run_config.yml").read_text())["data"]["transactions"] == value


def test_a_file_uri_is_a_local_file_checked_before_any_notebook_and_kept_as_written(tmp_path):
    parts = tmp_path / "orders 2024"
    parts.mkdir()
    (parts / "a.csv").write_text((SAMPLE / "transactions.csv").read_text())
    for value in (parts.as_uri(), (parts / "a.csv").as_uri(), (parts / "*.csv").as_uri().replace("%2A", "*")):
        cfg = effective_config(RunOptions(config=config_file(tmp_path, {"transactions": value}, SPARK)))
        assert cfg["data"]["transactions"] == value
    missing = (tmp_path / "gone.csv").as_uri()
    config = config_file(tmp_path, {"transactions": missing}, SPARK)
    with pytest.raises(DataError) as caught:
        effective_config(RunOptions(config=config))
    assert str(caught.value) == (f"The transactions file {tmp_path / 'gone.csv'} (from data.transactions in {config}) "
                                 "does not exist. Check the path and spelling, or leave transactions out if you do "
                                 "not have it.")


def test_a_file_uri_naming_a_windows_drive_is_that_drives_path():
    """Before: file:///C:/shop/o.csv was /C:/shop/o.csv, a path on no drive."""
    assert [str(file_uri_path(uri)) for uri in ("file:///C:/shop/o.csv", "file:/d:/o%201.csv",
                                                "file://localhost/E:/o.csv", "file:///C:")] == [
        "C:/shop/o.csv", "d:/o 1.csv", "E:/o.csv", "C:"]
    assert str(file_uri_path("file:///Cx:/o.csv")) == "/Cx:/o.csv"  # not a drive: a folder named "Cx:"


def test_a_table_name_with_a_space_after_table_is_refused_before_any_notebook(tmp_path):
    config = config_file(tmp_path, {"transactions": "table: main.sales.orders"}, SPARK)
    assert refusal(config) == (f"data.transactions in {config} = 'table: main.sales.orders': a table name does "
                               "not start or end with a space; write table:main.sales.orders.")


def test_a_file_uri_input_is_its_local_file_for_load_inputs_and_an_interactive_notebook(tmp_path, monkeypatch):
    """Before: both took the URI for a path under the config's folder (<folder>/file:/…): load_inputs said the
    file does not exist, and a notebook opened in Jupyter kept its cached artifacts after the file changed."""
    orders = tmp_path / "shop 2024" / "orders.csv"
    orders.parent.mkdir()
    sample = (SAMPLE / "transactions.csv").read_text()
    orders.write_text(sample)
    config = config_file(tmp_path, {"transactions": orders.as_uri()}, SPARK)
    from_uri = load_inputs(load_config(config))["transactions"]
    assert from_uri.attrs["source"] == str(orders) and len(from_uri) == 31042
    (tmp_path / "remote").mkdir()
    remote = config_file(tmp_path / "remote", {"transactions": "s3a://lake/shop/orders/"}, SPARK)
    with pytest.raises(ConfigError) as caught:
        load_inputs(load_config(remote))
    assert str(caught.value) == (
        "data.transactions = 's3a://lake/shop/orders/' is a URI (s3a:), which pandas cannot read: load_inputs "
        "reads local files. Read it with Apache Spark (engine.kind: spark, README \"Running on a Spark cluster\"), "
        "or copy the data here and give its local path.")

    monkeypatch.setenv("SEGKIT_INTERACTIVE_DIR", str(tmp_path / "lab"))
    ctx = open_run("01_data_audit", config_path=config)
    assert ctx.input_path("transactions") == orders
    cached = ctx.artifact_path("audit_summary")
    cached.write_text("{}")
    open_run("01_data_audit", config_path=config)
    assert cached.exists()  # nothing changed: the cache stays
    orders.write_text(sample + sample.splitlines(keepends=True)[1])  # one more order line
    open_run("01_data_audit", config_path=config)
    assert not cached.exists()  # the input changed: the notebook's cached artifacts are gone


@pytest.mark.parametrize("kind", ["auto", "duckdb", "pandas"])
def test_on_another_engine_a_table_or_uri_is_a_config_error_saying_what_to_do(tmp_path, kind):
    config = config_file(tmp_path, {"transactions": "table:main.sales.orders"}, {"kind": kind})
    assert refusal(config) == (
        f"data.transactions in {config} = 'table:main.sales.orders' is a table of the Spark catalog, which segkit "
        f"reads only with engine.kind: spark, but engine.kind is {kind}. Set engine.kind: spark (README, \"Running "
        "on a Spark cluster\") to read it with Apache Spark, or copy the data here and give its local path.")
    local = SAMPLE / "transactions.csv"
    message = refusal(config_file(tmp_path, {"transactions": local.as_uri()}, {"kind": kind}))
    assert "is a URI (file:), which segkit reads only with engine.kind: spark" in message
    assert message.endswith(f"or give the path itself ({local}).")


def test_a_uri_flag_on_duckdb_stops_segkit_run_before_any_notebook_with_exit_code_2(tmp_path):
    """The flag reaches the check as typed (it was a Path: s3a://lake/o/ became s3a:/lake/o/, then "missing")."""
    done = segkit_cli("run", "--transactions", "s3a://lake/shop/orders/", "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "segkit: --transactions = 's3a://lake/shop/orders/' is a URI (s3a:), which segkit reads only with "
        "engine.kind: spark, but engine.kind is auto. Set engine.kind: spark (README, \"Running on a Spark "
        "cluster\") to read it with Apache Spark, or copy the data here and give its local path.")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("table", ["customers", "campaign"])
def test_on_spark_customers_and_campaign_must_be_local_files_for_now(tmp_path, table):
    data = {"transactions": "s3a://lake/shop/orders/", table: f"table:main.sales.{table}"}
    config = config_file(tmp_path, data, SPARK)
    assert refusal(config) == (
        f"data.{table} in {config} = 'table:main.sales.{table}' is a table of the Spark catalog: on Spark, {table} "
        f"must be a local file for now (only data.transactions is read by Spark where it lives; the {table} table "
        "is read on the machine running segkit). Copy it to a CSV or Parquet file here and give its path.")
    # the same from Python (segkit.audit.audit_inputs, as 01 calls it), before Spark is asked anything
    with pytest.raises(ConfigError, match=rf"^data\.{table} = 'table:main\.sales\.{table}' is a table"):
        audit_inputs(load_config(config))
    # a file: URI is a local file: taken for every table on Spark
    data[table] = (SAMPLE / f"{table}.csv").as_uri()
    assert effective_config(RunOptions(config=config_file(tmp_path, data, SPARK)))["data"][table] == data[table]


def test_run_json_records_a_table_or_uri_as_written_without_reading_it(tmp_path):
    """What can be known without reading the data is what was given: no size, no hash, and why. A file: URI is
    hashed as the local file it is. Before: "file not found" for every URI, and index.html failed on it."""
    local = SAMPLE / "customers.csv"
    data = {"transactions": "s3a://lake/shop/orders/", "customers": local.as_uri(), "campaign": None}
    inputs = input_files(data)
    assert inputs["transactions"] == {
        "path": "s3a://lake/shop/orders/", "size": None, "sha256": None,
        "not_hashed": "a URI (s3a:) read by Spark where it lives: segkit run does not read it on this machine"}
    assert input_files({"transactions": "table:main.sales.orders"})["transactions"]["not_hashed"] == (
        "a table read by Spark where it lives: segkit run does not read it on this machine")
    assert inputs["customers"]["path"] == local.as_uri() and inputs["customers"]["size"] == local.stat().st_size
    assert len(inputs["customers"]["sha256"]) == 64
    page = render_index({"status": "ok", "run": {}, "inputs": json.loads(json.dumps(inputs)), "notebooks": []}, {}, None)
    assert "s3a://lake/shop/orders/ <span class='muted'>(a URI (s3a:) read by Spark where it lives" in page
    assert f"customers.csv (226.3 KB, sha256 {inputs['customers']['sha256'][:12]}…)" in page


def test_the_local_file_a_file_uri_names_is_protected_from_out(tmp_path):
    """--out may not be or hold an input: a file: URI's folder is that input's folder, a remote URI none here."""
    value = (tmp_path / "shop" / "orders.csv").as_uri()
    assert local_path(value) == tmp_path / "shop" / "orders.csv"
    protected = protected_paths({"transactions": value, "customers": "table:main.sales.customers"}, None)
    assert protected[f"the transactions input {value}"] == (tmp_path / "shop" / "orders.csv").resolve()
    assert not any("table:" in label for label in protected)


@pytest.fixture(scope="module")
def session():
    """The process's Spark session (shared with the other Spark test files run by this worker)."""
    return spark_session()


@pytest.mark.slow
@pytest.mark.parametrize("source, said", [
    ("table:default.segkit_no_such_orders",
     "table:default.segkit_no_such_orders: Spark cannot read it ([TABLE_OR_VIEW_NOT_FOUND] The table or view "
     "`default`.`segkit_no_such_orders` cannot be found."),
    ("s3a://segkit-no-such-bucket/orders/",
     "s3a://segkit-no-such-bucket/orders/: Spark cannot read it (java.lang.RuntimeException: "
     "java.lang.ClassNotFoundException: Class org.apache.hadoop.fs.s3a.S3AFileSystem not found; this Spark has no "
     "filesystem connector for s3a: URIs. Add it in engine.spark.conf (spark.jars.packages: "
     "org.apache.hadoop:hadoop-aws:<the version for your Spark's Hadoop>) or run on a cluster that has it)."),
])
def test_a_table_or_uri_spark_cannot_read_stops_the_audit_naming_the_setting(session, source, said):
    """Not checked by segkit run (that would start a Spark application in the runner), so 01's audit says it.
    Before: a missing connector was a Py4JJavaError traceback; no message named data.transactions."""
    engine = {"kind": "spark", "spark": {"master": session.sparkContext.master}}
    config = load_config(overrides={"data": {"transactions": source, "customers": None, "campaign": None},
                                    "engine": engine})
    with pytest.raises(DataError) as caught:
        audit_inputs(config)
    assert str(caught.value).startswith(f"data.transactions: {said}"), str(caught.value)
    assert str(caught.value).endswith("Check the path (or table name) and that the files are complete CSV or "
                                      "Parquet files." + ("" if source.startswith("table:") else f" {URI_PARQUET_HINT}"))
