"""``segkit run``'s inputs on ``engine.kind: spark`` (issue 17): tables and URIs that Spark reads where they live.

``data.transactions`` (or ``--transactions``) may be a URI of any filesystem Spark reads (``s3a://``,
``hdfs://``, ``abfss://``, ``gs://``, ``dbfs:/``, ``file://``) or ``table:<name>`` on Spark: it reaches the
run's ``config.yml`` and ``run.json`` as written (no size or hash for a table or a remote URI; a ``file:`` URI
is a local file, checked before any notebook and hashed as one). So may ``data.customers`` and ``data.campaign``:
Spark reads them (``file:`` URIs too: a file, a folder or a glob of parts), numbers their rows in file order and
collects them to the driver, where the local reader's own code maps, cleans and checks them
(:func:`segkit.data.spark_audit.load_spark_table`): the same tables and the same errors as the same files read
locally, naming the value as written. Any other engine refuses such a value before the first notebook (exit 2).
A table or URI that Spark cannot read stops the audit (01) with a DataError naming the setting
(``data.transactions``, ``data.customers`` …), what was given and what Spark said.

A ``file:`` URI is the local file it names wherever segkit reads it as a path (``load_inputs``, an interactive
notebook's check for changed inputs, ``RunContext.input_path``); a table name with a space after ``table:`` is
refused before any notebook.

The tests marked slow use the process's one Spark session, on a few rows; the others run without Spark. That
``segkit run`` accepts ``file://`` URIs on Spark for all three inputs and reads the local files they name is
proved by the one shared Spark pipeline run (``tests/test_spark_pipeline.py`` with ``tests/spark_configs.py``'s
``sample_config(..., inputs_as_uris=True)`` and ``assert_read_the_uri``); Spark's reader of order lines given as
a URI passed as written, by ``tests/test_spark_audit.py`` (a ``file:`` glob of CSV parts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

from segkit.audit import audit_inputs
from segkit.core.config import data_source, file_uri_path, load_config, local_path, project_root, source_scheme
from segkit.core.errors import ConfigError, DataError
from segkit.data.io import load_inputs, load_table
from segkit.data.spark import spark_session
from segkit.data.engine import csv_layout
from segkit.data.engine import input_files as input_files_of
from segkit.data.spark_audit import URI_PARQUET_HINT, load_spark_table
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


@pytest.mark.parametrize("flags, refused", [
    (("--transactions", "s3a://lake/shop/orders/"), "--transactions = 's3a://lake/shop/orders/'"),
    (("--transactions", SAMPLE / "transactions.csv", "--customers", "s3a://lake/crm/customers/"),
     "--customers = 's3a://lake/crm/customers/'"),
])
def test_a_uri_flag_on_duckdb_stops_segkit_run_before_any_notebook_with_exit_code_2(tmp_path, flags, refused):
    """The flag reaches the check as typed (it was a Path: s3a://lake/o/ became s3a:/lake/o/, then "missing");
    a customers URI is refused as a transactions one (on Spark both are read)."""
    done = segkit_cli("run", *flags, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"segkit: {refused} is a URI (s3a:), which segkit reads only with engine.kind: spark, but engine.kind is "
        "auto. Set engine.kind: spark (README, \"Running on a Spark cluster\") to read it with Apache Spark, or "
        "copy the data here and give its local path.")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("table", ["customers", "campaign"])
def test_on_spark_customers_and_campaign_may_be_a_table_or_uri_and_other_engines_refuse_them(tmp_path, table):
    """Before: on Spark too, "must be a local file for now" (exit 2)."""
    data = {"transactions": "s3a://lake/shop/orders/", table: f"table:main.sales.{table}"}
    config = config_file(tmp_path, data, SPARK)
    assert effective_config(RunOptions(config=config))["data"][table] == f"table:main.sales.{table}"
    duck = config_file(tmp_path, {**data, "transactions": str(SAMPLE / "transactions.csv")}, {"kind": "duckdb"})
    assert refusal(duck) == (
        f"data.{table} in {duck} = 'table:main.sales.{table}' is a table of the Spark catalog, which segkit reads "
        "only with engine.kind: spark, but engine.kind is duckdb. Set engine.kind: spark (README, \"Running on a "
        "Spark cluster\") to read it with Apache Spark, or copy the data here and give its local path.")
    # a file: URI's folder or glob of parts: checked as its files before any notebook, kept as written
    parts = tmp_path / f"{table} parts"
    parts.mkdir()
    for name in ("a.csv", "b.csv"):
        (parts / name).write_text((SAMPLE / f"{table}.csv").read_text())
    for value in (parts.as_uri(), (parts / "*.csv").as_uri().replace("%2A", "*")):
        cfg = effective_config(RunOptions(config=config_file(tmp_path, {**data, table: value}, SPARK)))
        assert cfg["data"][table] == value
        recorded = input_files(cfg["data"])[table]  # run.json: hashed as the files they are
        assert recorded["path"] == value and [Path(f["path"]).name for f in recorded["files"]] == ["a.csv", "b.csv"]
        assert recorded["size"] == 2 * (SAMPLE / f"{table}.csv").stat().st_size and len(recorded["sha256"]) == 64
    config = config_file(tmp_path, {**data, table: (tmp_path / "none" / "*.csv").as_uri().replace("%2A", "*")}, SPARK)
    with pytest.raises(DataError, match=rf"^The {table} input \(from data\.{table} in .*\): .*no file matches"):
        effective_config(RunOptions(config=config))
    # run.json: a remote URI or table is recorded as written, not read here
    assert input_files({table: f"table:main.sales.{table}"})[table] == {
        "path": f"table:main.sales.{table}", "size": None, "sha256": None,
        "not_hashed": "a table read by Spark where it lives: segkit run does not read it on this machine"}


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
                                      "Parquet files with the transaction log, or give a local file."
                                      + ("" if source.startswith("table:") else f" {URI_PARQUET_HINT}"))


#: A customers export whose map names the id column ``Kunde``; C1's region holds a doubled quote, a comma and a
#: backslash just before its closing quote (Spark's default escape, a backslash, would read past that quote);
#: the row of commas only is a spreadsheet's empty row (skipped, counted); rows 0-3 go to one part, 4-6 to another.
CUSTOMER_ROWS = ['C1,2024-01-05,Germany,"DACH, ""north"" \\ south\\",yes', "C2,2024-02-01,Austria,DACH,no", ",,,,",
                 "C3,2024-03-01,Poland,CEE,yes", "C4,2024-04-01,France,West,no", "C5,2024-05-01,Spain,South,",
                 "C6,2024-06-01,Italy,South,yes"]
CUSTOMER_HEADER = "Kunde,signup_date,country,region,email_opt_in"


def side_inputs(folder: Path, bad: bool = False) -> dict[str, tuple[Path, Path, str]]:
    """For customers and campaign: (the whole table as one local file, its parts' local folder or glob, the
    ``file:///`` URI of the parts as a user writes it). The customers are CSV parts given as a glob, the campaign
    Parquet parts given as their folder. ``bad``: C5's signup date is no date, the campaign's row 4 has no
    customer id (both in the second part)."""
    rows = [r.replace("2024-05-01", "someday") if bad else r for r in CUSTOMER_ROWS]
    folder.mkdir()
    (folder / "customers.csv").write_text("\n".join([CUSTOMER_HEADER, *rows]) + "\n")
    (folder / "customers").mkdir()
    for name, part in (("part-1.csv", rows[:4]), ("part-2.csv", rows[4:])):
        (folder / "customers" / name).write_text("\n".join([CUSTOMER_HEADER, *part]) + "\n")
    sends = pd.DataFrame({"campaign_id": ["S1"] * 6, "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
                          "arm": ["email", "control"] * 3, "sent_at": pd.to_datetime(["2024-06-03 09:00"] * 6),
                          "converted": [True, False, False, True, False, False],
                          "revenue": [12.5, 0.0, 0.0, 30.0, 0.0, 0.0]})
    if bad:
        sends.loc[4, "customer_id"] = None
    sends.to_parquet(folder / "campaign.parquet", index=False)
    (folder / "campaign").mkdir()
    sends.iloc[:3].to_parquet(folder / "campaign" / "part-1.parquet", index=False)
    sends.iloc[3:].to_parquet(folder / "campaign" / "part-2.parquet", index=False)
    glob = (folder / "customers" / "*.csv").as_uri().replace("%2A", "*")
    return {"customers": (folder / "customers.csv", folder / "customers" / "*.csv", glob),
            "campaign": (folder / "campaign.parquet", folder / "campaign", (folder / "campaign").as_uri())}


def spark_config(session, overrides: dict | None = None) -> dict:
    """The default config on Spark (the session's master), with ``overrides``."""
    return load_config(overrides={**(overrides or {}),
                                  "engine": {"kind": "spark", "spark": {"master": session.sparkContext.master}}})


def side_config(session) -> dict:
    return load_config(overrides={"columns": {"customers": {"customer_id": "Kunde"}},
                                  "engine": {"kind": "spark", "spark": {"master": session.sparkContext.master}}})


@pytest.mark.slow
def test_customers_and_campaign_given_as_file_uris_of_parts_read_on_spark_as_the_whole_files_read_locally(
        session, tmp_path):
    """What audit_inputs reads on Spark (data_source's local path of the URI, named by the URI as written) equals
    load_table of the same rows as one local file: values, dtypes, row index, blank rows and column names."""
    config, read = side_config(session), {}
    for table, (whole, _, uri) in side_inputs(tmp_path / "inputs").items():
        source = data_source({**config, "data": {table: uri}}, table, "spark")
        got, expected = load_spark_table(source, table, config, label=uri), load_table(whole, table, config=config)
        assert_frame_equal(got, expected, obj=table)
        assert got.attrs == {**expected.attrs, "source": uri}, table
        read[table] = got
    customers, campaign = read["customers"], read["campaign"]
    assert customers.loc[0, "region"] == 'DACH, "north" \\ south\\'  # as pandas reads the cell
    assert customers.index.tolist() == [0, 1, 3, 4, 5, 6] and customers.attrs["blank_row_examples"] == [2]
    assert customers.attrs["columns"]["customer_id"] == "Kunde" and customers["email_opt_in"].isna().tolist() == [
        False, False, False, False, True, False]
    assert campaign.index.tolist() == [0, 1, 2, 3, 4, 5] and campaign["revenue"].tolist()[3] == 30.0
    assert str(campaign["sent_at"].dtype).startswith("datetime64") and campaign.attrs["source"].endswith("/campaign")


@pytest.mark.slow
def test_a_bad_row_in_a_part_is_named_as_in_the_whole_file_read_locally_with_the_uri(session, tmp_path):
    """Rows are numbered across the parts in file order, as if one file: the message is the local reader's,
    with the URI as written in place of the local file's path."""
    config, said = side_config(session), {}
    inputs = side_inputs(tmp_path / "inputs", bad=True)
    for table, (whole, parts, uri) in inputs.items():
        with pytest.raises(DataError) as local:
            load_table(whole, table, config=config)
        with pytest.raises(DataError) as on_spark:
            load_spark_table(parts, table, config, label=uri)
        said[table] = str(on_spark.value)
        assert said[table] == str(local.value).replace(str(whole), uri), table
    # C5 is data row 5, row 7 as a spreadsheet shows it (the header is row 1); the campaign's data row 4 is row 6
    assert said["customers"].startswith(f"{inputs['customers'][2]}: column 'signup_date'"), said["customers"]
    assert "row 7" in said["customers"] and "someday" in said["customers"]
    assert said["campaign"].startswith(f"{inputs['campaign'][2]}: column 'customer_id'"), said["campaign"]
    assert "row 6" in said["campaign"]


@pytest.mark.slow
def test_a_customers_table_spark_cannot_find_names_data_customers(session):
    with pytest.raises(DataError) as caught:
        load_spark_table("table:default.segkit_no_such_customers", "customers", side_config(session))
    assert str(caught.value).startswith(
        "data.customers: table:default.segkit_no_such_customers: Spark cannot read it ([TABLE_OR_VIEW_NOT_FOUND] "
        "The table or view `default`.`segkit_no_such_customers` cannot be found."), str(caught.value)
    assert str(caught.value).endswith("Check the path (or table name) and that the files are complete CSV or Parquet "
                                      "files with the customers table, or give a local file.")


@pytest.mark.slow
def test_a_customers_view_or_a_glob_matching_nothing_is_named_as_the_customers_table(session, tmp_path):
    # one reader for every table (read_spark_source): its messages name the table it reads, not "order lines"
    session.createDataFrame([("c1",)], "customer_id STRING").createOrReplaceGlobalTempView("segkit_customers_view")
    try:
        with pytest.raises(DataError) as view:
            load_spark_table("table:global_temp.segkit_customers_view", "customers", side_config(session))
    finally:
        session.catalog.dropGlobalTempView("segkit_customers_view")
    assert str(view.value) == (
        "data.customers: table:global_temp.segkit_customers_view is not a file-based table (a view, or a JDBC, "
        "Iceberg or other table without Spark's _metadata column): segkit numbers the customers table's rows by the "
        "files they are read from, as DuckDB reads them. Give its files (their folder, a glob or a URI) or a "
        "file-based (Parquet, CSV, Delta) table.")
    with pytest.raises(DataError) as nothing:
        load_spark_table(tmp_path / "none-*.csv", "customers", side_config(session))  # a file: URI's local glob
    assert str(nothing.value).endswith("Check the path of the customers table."), str(nothing.value)
    assert "transaction" not in str(nothing.value)


@pytest.mark.parametrize("table, what", [("customers", "the customers table"), ("transactions", "the transaction log")])
def test_messages_about_input_files_name_the_table_they_hold(tmp_path, table, what):
    """Before: every such message named "the transaction log", also for a customers or campaign file."""
    (tmp_path / "a.csv").write_text("customer_id,country\nC1,DE\n")
    (tmp_path / "b.csv").write_text("customer_id,region\nC2,north\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "book.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError) as parts:
        csv_layout([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], {}, what=what)
    assert str(parts.value).endswith(f"Export every part of {what} with the same columns."), str(parts.value)
    with pytest.raises(DataError) as workbook:
        input_files_of(tmp_path / "book.xlsx", what=what)
    assert str(workbook.value) == (f"{tmp_path / 'book.xlsx'}: an Excel workbook is read as {what} only as one local "
                                   "file given by its path, not as a part of a folder or glob, nor by Spark (a file: "
                                   "URI). Export it as CSV or Parquet.")
    config = config_file(tmp_path, {"transactions": str(SAMPLE / "transactions.csv"),
                                    table: (tmp_path / "empty").as_uri()}, SPARK)
    with pytest.raises(DataError) as folder:
        effective_config(RunOptions(config=config))
    assert str(folder.value).endswith(f"the folder holds no .parquet or .csv files. Point at the files of {what} "
                                      "(a file, a folder of them, or a glob)."), str(folder.value)


@pytest.mark.slow
def test_uri_csv_parts_whose_columns_come_in_another_order_are_refused_not_swapped(session, tmp_path):
    """Spark takes the first part's header for every part given as a URI: b.csv's region and country were read
    as country and region. Now Spark checks each part's header (enforceSchema=False) and segkit says what to do."""
    (tmp_path / "a.csv").write_text("customer_id,country,region\nC1,DE,north\n")
    (tmp_path / "b.csv").write_text("customer_id,region,country\nC2,south,AT\n")
    uri = (tmp_path / "*.csv").as_uri().replace("%2A", "*")
    with pytest.raises(DataError) as caught:
        load_spark_table(uri, "customers", spark_config(session))
    assert str(caught.value) == (
        f"data.customers: {uri}: the headers of its CSV parts differ ({(tmp_path / 'b.csv').as_uri()}'s header is "
        "not the first part's): their columns would be read in the first part's order. Export every part of the "
        "customers table with the same columns, in the same order."), str(caught.value)


@pytest.mark.slow
def test_invalid_utf8_is_refused_on_spark_as_by_the_local_reader(session, tmp_path):
    """Spark's CSV reader replaced the byte \\xf6 (Latin-1 "ö") with U+FFFD and went on; the local reader refuses
    the file and says to set io.encoding. Now Spark's reading refuses it too, naming the column and the row."""
    path = tmp_path / "customers.csv"
    path.write_bytes("customer_id,country\nC1,DE\nK\xf6ln2,DE\n".encode("latin-1"))
    config = spark_config(session)
    with pytest.raises(DataError) as local:
        load_table(path, "customers", config=config)
    with pytest.raises(DataError) as on_spark:
        load_spark_table(path, "customers", config)
    assert "is not valid UTF-8 text" in str(local.value) and "Set io.encoding" in str(local.value)
    assert str(on_spark.value) == (
        f"data.customers: {path}: is not valid UTF-8 text: column 'customer_id' holds bytes that are not UTF-8 "
        "(row 3, e.g. 'K\ufffdln2'; Spark shows each as \ufffd). Set io.encoding in the config to the file's "
        "encoding, e.g. 'latin-1' or 'cp1252' for Western European exports."), str(on_spark.value)


@pytest.mark.slow
def test_a_parquet_table_with_a_row_column_and_zoned_times_reads_as_locally(session, tmp_path):
    """A user column named _row (mapped as the region) was overwritten by the row numbering; a timestamp written
    in Europe/Berlin came back in UTC (22:30 instead of 23:30), where the local reader keeps the Berlin time."""
    path = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": ["C1", "C2"], "_row": ["north", "south"],
                  "signup_date": pd.to_datetime(["2024-01-05 23:30", "2024-06-01 00:30"]).tz_localize("Europe/Berlin")}
                 ).to_parquet(path, coerce_timestamps="us")
    config = spark_config(session, {"columns": {"customers": {"region": "_row"}}})
    got, expected = load_spark_table(path, "customers", config), load_table(path, "customers", config=config)
    assert got["region"].tolist() == ["north", "south"]
    assert got["signup_date"].tolist() == [pd.Timestamp("2024-01-05 23:30"), pd.Timestamp("2024-06-01 00:30")]
    assert_frame_equal(got, expected)


@pytest.mark.slow
def test_local_files_reach_spark_as_file_uris_not_paths_of_the_default_filesystem(session, tmp_path):
    """On a cluster a bare path is a path of fs.defaultFS (HDFS): a local customers file was looked for there."""
    path = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": ["C1", "C2"]}).to_parquet(path)
    hadoop = session._jsc.hadoopConfiguration()
    default_fs = hadoop.get("fs.defaultFS")
    hadoop.set("fs.defaultFS", "segkit-no-such-fs://namenode:8020")
    try:
        got = load_spark_table(path, "customers", spark_config(session))
    finally:
        hadoop.set("fs.defaultFS", default_fs)
    assert got["customer_id"].tolist() == ["C1", "C2"]
