"""``engine.spark.master: sc://host:port``: segkit on a Spark Connect server (issue 17).

One standalone Connect server for the module (:func:`connect_server`: ``spark-submit`` of pyspark's own
``SparkConnectServer`` on ``local[2]``, a free port, its logs and scratch space in a temporary folder, its
Python workers importing this checkout's segkit), killed at the end. A server that does not come up fails
the tests with its log: never a skip.

* The bundled sample's ``segkit run`` on the Connect server equals its DuckDB run: every label, every number
  of customer_segments and the tables within 1e-9 relative, the same audit findings, and ``run.json``
  records the ``sc://`` master, the server's Spark version and the client's pyspark.
* The pieces, each in a Python process of its own (a Connect session switches pyspark's process-wide
  Connect mode on, which the classic session other test modules share in their process must not see):
  a frame made before a relation is held again (another date) still reads its own rows, in a
  :class:`~segkit.data.spark.SparkLines` and a :class:`~segkit.data.spark_audit.SparkConnection` (on Connect
  a frame reads a temporary view by name when an action runs; replacing the view changed the frame and with
  it 448 of the sample's 3,000 ``p_alive``), two such objects sharing the one Connect session keep their
  views apart, Parquet footers and checkpoints without a JVM, the refusal of settings a Connect client cannot
  set, and Spark's read errors in segkit's words.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from tests.test_spark_pipeline import LABELS, TABLES, read_table, segkit_run

ROOT = Path(__file__).resolve().parents[1]
#: A hang guard, not a time limit: a server that has not opened its port after this long (about 7 s on an idle
#: two-core machine) is taken as hung; one that exits is reported at once.
START_SECONDS = 900


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory) -> str:
    """The address (``sc://localhost:<port>``) of a Spark Connect server started for this module.

    pyspark's ``SparkConnectServer`` (its jar ships in pyspark) through ``spark-submit`` on ``local[2]``, with
    the settings segkit gives a local session it starts itself (:data:`segkit.data.spark.LOCAL_CONF`), logs
    (``SPARK_LOG_DIR``), ``spark.local.dir`` and the warehouse in a temporary folder, and ``PYSPARK_PYTHON`` /
    ``PYTHONPATH`` so that its Python workers (``mapInPandas``) run this interpreter with this checkout's segkit.
    """
    from pyspark.find_spark_home import _find_spark_home

    from segkit.data.spark import LOCAL_CONF

    folder = tmp_path_factory.mktemp("connect_server")
    port = free_port()
    spark_home = _find_spark_home()
    env = dict(os.environ, SPARK_HOME=spark_home, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1",
               SPARK_LOG_DIR=str(folder), SPARK_PID_DIR=str(folder),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port),
            "spark.ui.enabled": "false", "spark.sql.warehouse.dir": str(folder / "warehouse"),
            "spark.local.dir": str(folder / "local"), **LOCAL_CONF}
    command = [str(Path(spark_home) / "bin" / "spark-submit"), "--class",
               "org.apache.spark.sql.connect.service.SparkConnectServer", "--name", "segkit tests",
               "--master", "local[2]", *[x for key, value in conf.items() for x in ("--conf", f"{key}={value}")],
               "spark-internal"]
    log = folder / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not port_open(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not come up on port {port} (exit code {server.poll()}); "
                            f"its log ({log}):\n{log.read_text(errors='replace')[-5000:]}")
            time.sleep(0.5)
        yield f"sc://localhost:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def on_connect(address: str, code: str) -> dict:
    """Run ``code`` in a new Python process whose ``ADDRESS`` is ``address``; what it assigned to ``result``
    (JSON). A failure shows the process's output."""
    script = "import json\nADDRESS = " + repr(address) + "\n" + textwrap.dedent(code) + \
        "\nprint('RESULT=' + json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT=")]
    if done.returncode != 0 or not found:
        raise AssertionError(f"the Connect script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(found[-1][len("RESULT="):])


# ------------------------------------------------------------------------------------------------ the sample
@pytest.fixture(scope="module")
def runs(connect_server, tmp_path_factory) -> dict[str, Path]:
    """The sample's run folders on the Connect server (``connect``) and on DuckDB (``duckdb``), side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_connect_run = pool.submit(segkit_run, tmp_path_factory.mktemp("connect"),
                                     {"kind": "spark", "spark": {"master": connect_server}})
        duckdb_run = pool.submit(segkit_run, tmp_path_factory.mktemp("duckdb"), {"kind": "duckdb"})
        return {"duckdb": duckdb_run.result(), "connect": on_connect_run.result()}


@pytest.mark.slow
def test_segkit_run_on_spark_connect_gives_the_duckdb_runs_results(runs):
    duck = read_table(runs["duckdb"] / "artifacts" / "customer_segments.csv")
    on_connect = read_table(runs["connect"] / "artifacts" / "customer_segments.csv")
    assert len(duck) > 2000 and set(LABELS) <= set(duck.columns)
    for column in LABELS:
        assert on_connect[column].tolist() == duck[column].tolist(), column
    # p_alive comes from the lifecycle model calibrated on holdout tables at two earlier dates: on Connect those
    # read the orders held last (as of the run's date) until each relation got a view of its own
    assert_frame_equal(on_connect, duck, check_exact=False, rtol=1e-9)
    for name in TABLES:
        assert_frame_equal(read_table(runs["connect"] / "artifacts" / name),
                           read_table(runs["duckdb"] / "artifacts" / name), check_exact=False, rtol=1e-9, obj=name)


@pytest.mark.slow
def test_the_connect_run_has_the_same_audit_findings_and_records_the_server(runs, connect_server):
    audit = {kind: json.loads((run / "artifacts" / "audit_summary.json").read_text()) for kind, run in runs.items()}
    assert audit["connect"]["engine"] == "spark"
    assert audit["connect"]["findings"] == audit["duckdb"]["findings"] and audit["duckdb"]["findings"]
    record = json.loads((runs["connect"] / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["engine"] == {"kind": "spark", "spark_master": connect_server,
                                "spark_version": metadata.version("pyspark"),  # the server's: the same jars here
                                "spark_client_version": metadata.version("pyspark")}
    assert (runs["connect"].parent / "terminal.txt").read_text() == ""


# ------------------------------------------------------------------------------------------------ the pieces
@pytest.mark.slow
def test_a_frame_made_before_a_relation_is_held_again_reads_its_own_rows(connect_server):
    """The orders held as of one date, then as of a later one: the first date's frame keeps its purchase days
    (on Connect the second materialise replaced the view ``orders`` that the first frame read at its action)."""
    result = on_connect(connect_server, """
        import pandas as pd
        from segkit.data import relational
        from segkit.data.spark import SparkLines, spark_session

        session = spark_session(ADDRESS)
        tx = pd.DataFrame({"customer_id": ["a", "a", "b", "b", "c"], "order_id": ["1", "2", "3", "C3", "4"],
                           "amount": [5.0, 6.0, 7.0, -7.0, 8.0],
                           "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-05", "2024-03-02",
                                                         "2024-04-01"])})
        lines = SparkLines(tx, session=session)
        days = lambda day: lines.frame(relational.PURCHASE_DAYS, {"as_of": pd.Timestamp(day).to_pydatetime()})
        early = days("2024-01-10")
        late = days("2024-05-01")  # holds the orders again, as of another date
        result = {"early": sorted(early.select("customer_id").toPandas()["customer_id"])}
        other = SparkLines(tx.assign(customer_id="z"), session=session)  # a second object in the same session
        other.run(relational.PURCHASE_DAYS, {"as_of": pd.Timestamp("2024-01-10").to_pydatetime()})
        result["late"] = sorted(late.select("customer_id").toPandas()["customer_id"])
        result["views"] = sorted(set(lines.views.current.values()) & set(other.views.current.values()))
    """)
    assert result["early"] == ["a", "b"]  # b's cancellation (2024-03-02) not seen yet
    assert result["late"] == ["a", "a", "c"]  # not the other lines' (customer z)
    assert result["views"] == []


@pytest.mark.slow
def test_sql_connections_sharing_the_connect_session_keep_their_relations(connect_server):
    """Two SparkConnection objects (two audits) in one Connect session: a table defined again (UPDATE) leaves a
    frame made before unchanged, the other connection's table of the same name apart, and close() drops only
    its own views."""
    result = on_connect(connect_server, """
        from segkit.data.spark import child_session, spark_session
        from segkit.data.spark_audit import SparkConnection

        base = spark_session(ADDRESS)
        first, second = SparkConnection(child_session(base)), SparkConnection(child_session(base))
        first.execute("CREATE TABLE t AS SELECT 1 AS x")
        before = first.sql("SELECT x FROM t")
        second.execute("CREATE TABLE t AS SELECT 2 AS x")
        first.execute("UPDATE t SET x = 3")
        second.close()
        result = {"before": before.fetchall(), "after": first.sql("SELECT t.x FROM t").fetchall(),
                  "same_session": first.session is second.session,
                  "views": sorted(t.name for t in base.catalog.listTables() if t.isTemporary)}
    """)
    assert result["before"] == [[1]] and result["after"] == [[3]] and result["same_session"]
    assert len(result["views"]) == 2 and all(v.endswith("_t") for v in result["views"])  # first's two versions


@pytest.mark.slow
def test_parquet_footers_checkpoints_settings_and_read_errors_without_a_jvm(connect_server, tmp_path):
    pd.DataFrame({"customer_id": ["a"], "order_date": pd.to_datetime(["2024-01-01 10:00:00.123456789"]),
                  "seen": pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Berlin")}).to_parquet(tmp_path / "n.parquet")
    (tmp_path / "a.csv").write_text("customer_id,country,region\nC1,DE,north\n")
    (tmp_path / "b.csv").write_text("customer_id,region,country\nC2,south,AT\n")
    uri = (tmp_path / "*.csv").as_uri().replace("%2A", "*")
    result = on_connect(connect_server, f"""
        from pyspark.errors import PySparkException
        from segkit.core.errors import ConfigError, DataError
        from segkit.data.spark import parquet_column_facts, spark_session, timestamps_from_nanoseconds
        from segkit.data.spark_audit import load_spark_table
        from segkit.data.spark_ranks import range_partitioned, release_checkpoint

        result = {{}}
        try:
            spark_session(ADDRESS, {{"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "3"}})
        except ConfigError as exc:
            result["refused"] = str(exc)
        session = spark_session(ADDRESS, {{"spark.sql.shuffle.partitions": "3"}})
        result["partitions"] = session.conf.get("spark.sql.shuffle.partitions")
        read = session.read.parquet({str(tmp_path / "n.parquet")!r})
        facts = parquet_column_facts(read)
        result["facts"] = [sorted(facts.nanoseconds), facts.time_zones]
        result["stamp"] = str(timestamps_from_nanoseconds(read).first()["order_date"])
        ranged = range_partitioned(session.range(10).withColumnRenamed("id", "v"), ["v"], 2)
        result["ranged"] = ranged.count()
        release_checkpoint(ranged)
        try:
            ranged.count()
            result["released"] = False
        except PySparkException:
            result["released"] = True
        try:
            load_spark_table({uri!r}, "customers", {{"engine": {{"kind": "spark", "spark": {{"master": ADDRESS}}}}}})
        except DataError as exc:
            result["headers"] = str(exc)
        try:
            load_spark_table("s3a://bucket/customers.csv", "customers",
                             {{"engine": {{"kind": "spark", "spark": {{"master": ADDRESS}}}}}})
        except DataError as exc:
            result["s3a"] = str(exc)
    """)
    assert result["refused"].startswith("engine.spark.conf: spark.executor.memory cannot be set from a Spark "
                                        "Connect client"), result["refused"]
    assert result["partitions"] == "3"
    assert result["facts"] == [["order_date"], {"seen": "Europe/Berlin"}]
    assert result["stamp"] == "2024-01-01 10:00:00.123457"  # rounded to the microsecond, as DuckDB casts it
    assert result["ranged"] == 10 and result["released"]
    assert result["headers"] == (
        f"data.customers: {uri}: the headers of its CSV parts differ ({(tmp_path / 'b.csv').as_uri()}'s header is "
        "not the first part's): their columns would be read in the first part's order. Export every part of the "
        "customers table with the same columns, in the same order."), result["headers"]
    assert "no filesystem connector for s3a" in result["s3a"] and "Spark Connect server" in result["s3a"], result["s3a"]


def test_a_connect_master_refuses_settings_only_its_server_can_take():
    """Checked with the config, before the first notebook (segkit run exits 2): a Connect client can set only
    runtime spark.sql.* settings; the server ignored the others (executor memory, packages) silently."""
    from segkit.core.errors import ConfigError
    from segkit.data.engine import SparkSettings

    with pytest.raises(ConfigError) as refused:
        SparkSettings.from_section({"master": "sc://localhost:15002",
                                    "conf": {"spark.sql.shuffle.partitions": 8, "spark.jars.packages": "x:y:1",
                                             "spark.executor.memory": "2g"}})
    assert str(refused.value).startswith("engine.spark.conf: spark.executor.memory, spark.jars.packages cannot be "
                                         "set from a Spark Connect client (sc://localhost:15002)"), str(refused.value)
    assert SparkSettings.from_section({"master": "sc://localhost:15002",
                                       "conf": {"spark.sql.shuffle.partitions": 8}}).conf == {
        "spark.sql.shuffle.partitions": "8"}


def test_a_token_in_a_connect_address_is_never_shown():
    """Databricks-style addresses carry a personal access token (``;token=…``): the config check's message and
    run.json's ``spark_master`` show ``<redacted>`` instead (README: give it as SPARK_CONNECT_AUTHENTICATE_TOKEN)."""
    from segkit.core.errors import ConfigError
    from segkit.data.engine import SparkSettings
    from segkit.report.runinfo import engine_info

    address = "sc://localhost:1/;token=dapiSECRET42;x-databricks-cluster-id=0123"
    with pytest.raises(ConfigError) as refused:
        SparkSettings.from_section({"master": address, "conf": {"spark.executor.memory": "2g"}})
    assert "dapiSECRET42" not in str(refused.value)
    assert "(sc://localhost:1/;token=<redacted>;x-databricks-cluster-id=0123)" in str(refused.value)
    with pytest.raises(ConfigError) as malformed:
        SparkSettings.from_section({"master": address.replace("sc://", "sc:/")})
    assert "dapiSECRET42" not in str(malformed.value) and "token=<redacted>" in str(malformed.value)
    recorded = engine_info({"engine": {"kind": "spark", "spark": {"master": address}}})
    assert recorded["spark_master"] == "sc://localhost:1/;token=<redacted>;x-databricks-cluster-id=0123"


@pytest.mark.parametrize("master", ["sc://", "sc://localhost:notaport", "sc://two words:15002", "sc://:15002"])
def test_a_malformed_connect_address_is_refused_with_the_config(master):
    """Before the first notebook (exit 2), not as a traceback once 01 has started."""
    from segkit.core.errors import ConfigError
    from segkit.data.engine import SparkSettings

    with pytest.raises(ConfigError, match=r"^engine.spark.master = .*; use a Spark master URL"):
        SparkSettings.from_section({"master": master})


def test_a_connect_address_where_nothing_listens_is_refused_before_the_first_notebook():
    """pyspark's client would retry for about ten minutes and then blame the first setting it sends."""
    from segkit.core.errors import ConfigError
    from segkit.steps.sources import check_engine

    port = free_port()
    with pytest.raises(ConfigError) as refused:
        check_engine({"engine": {"kind": "spark", "spark": {"master": f"sc://localhost:{port}/;token=dapiX"}}})
    assert str(refused.value) == (
        f"engine.spark.master = 'sc://localhost:{port}/;token=<redacted>': nothing accepts connections at "
        f"localhost:{port} (Connection refused): start the Spark Connect server there (README, \"Running on a "
        "Spark cluster\"), or correct engine.spark.master.")


@pytest.mark.slow
def test_workers_that_cannot_import_segkit_and_a_bad_sql_value_are_named(connect_server):
    """The server's Python workers without segkit (here: a module they lack) get a message naming
    PYSPARK_PYTHON, not a worker traceback blaming an input file; a spark.sql value Spark does not take is
    named as a bad value, not as a setting to move to the server; the workers here pass."""
    result = on_connect(connect_server, """
        from segkit.core.errors import ConfigError
        from segkit.data.spark import python_workers_problem, spark_session

        result = {}
        try:
            spark_session(ADDRESS, {"spark.sql.shuffle.partitions": "banana"})
        except ConfigError as exc:
            result["bad_value"] = str(exc)
        session = spark_session(ADDRESS)
        result["missing"] = python_workers_problem(session, "segkit_not_installed_here")
        result["segkit"] = python_workers_problem(session)
    """)
    assert result["bad_value"].startswith("engine.spark.conf.spark.sql.shuffle.partitions = 'banana' is not a "
                                          "value Spark takes ("), result["bad_value"]
    assert result["bad_value"].endswith("Correct it in engine.spark.conf.")
    assert result["missing"].startswith("the Python workers of the Spark executors cannot import "
                                        "segkit_not_installed_here ("), result["missing"]
    assert "No module named 'segkit_not_installed_here'" in result["missing"]
    assert "Start the Spark Connect server with PYSPARK_PYTHON" in result["missing"]
    assert result["segkit"] is None
