"""The data audit on Apache Spark (issue 17): Spark's facts, findings and errors are DuckDB's.

:class:`segkit.data.spark_audit.SparkTransactionLog` runs the SQL of :class:`segkit.data.engine.TransactionLog`
on Spark; here both audit the same inputs — the bundled sample, a small hostile CSV (text cells in every
form the reader types, guests, duplicates, negative amounts, future dates, control characters), the same
lines as typed Parquet read as a Spark table (``table:``), CSV parts named by a URI passed to Spark as
written (``file:``, the filesystem of the URI reader that is here), Shopify's export with the orders contract
of ``data/configs/shopify.yml`` (statuses, refunds, order fields carried, overlapping exports) — and every field
of the :class:`~segkit.audit.AuditResult` must be equal, as must the clean lines each engine writes (and the
contract's :class:`~segkit.data.statuses.StatusFacts`). Bad input must raise the same
:class:`~segkit.core.errors.DataError` text (file, column, rows, what to do).

One Spark session for the file (:func:`segkit.data.spark.spark_session`). A missing Java or pyspark fails
here with the message of ``spark_session`` (``tests/spark_setup.py`` installs Java): never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_log
from segkit.core.config import load_config, project_root
from segkit.core.errors import ConfigError, DataError
from segkit.data.engine import OrderLines, TransactionLog, file_lines
from segkit.data.io import load_table
from segkit.data.relational import HEADLINE, LATER_COUNTS, ORDER_LIST, RFM_BASE, run
from segkit.data.spark import spark_session
from segkit.data.shopify import ShopifyExport, generate_shopify_export, write_shopify_export
from segkit.data.spark_audit import SparkTransactionLog, duckdb_to_spark, load_spark_table, strftime_to_spark
from segkit.data.statuses import StatusFacts
from segkit.steps.audit import finding_rows
from tests.audit_helpers import assert_same_audit
from tests.test_shopify import CONFIG as SHOPIFY_CONFIG
from tests.test_shopify import N_CUSTOMERS, SEED

pytestmark = pytest.mark.slow

SAMPLE = project_root() / "data" / "sample" / "transactions.csv"

#: A small order-line file with what the audit must find, every cell text (as a CSV export holds it).
HOSTILE_CSV = """\
customer_id,order_id,order_date,amount,quantity,unit_price,product_id,country
C1,O1,2024-01-05 10:00:00,20.00,2,10.00,P1,DE
C1,O1,2024-01-05 10:00:00,20.00,2,10.00,P1,DE
C1,O2,2024-01-05T18:30:00Z,35.5,1,35.5,P2,DE
 C2 ,O3,2024-01-07,15,1,15,P1,FR
C2,O4,07-Jan-2024,15,1,15,P1,AT
,O5,2024-01-08 09:00:00,40,4,10,P3,
,O5,2024-01-08 09:00:00,12,1,12,P4,
C3,,2024-01-09,9.99,1,9.99,P5,IT
C3,,2024-01-09,9.99,1,9.99,P5,IT
C4,O6,2024-01-10,-10,-1,10,P1,ES
C4,O7,2024-01-11,0,1,0,P6,ES
C5,O8,2024-01-12,-5,1,-5,P7,
C5,O9,2099-01-01,30,3,10,P1,
C6.0,O10,2024-01-13 12:00:00,+7.5e1,3,25,P8,NL
C7\x07,O11,2024-01-14,5000,500,10,P9,NL
C8,O12,2024-01-15,12.5,1,12.5,P10,
C8,O13,"Jan 16, 2024",12.5,1,12.5,P10,
"""


@pytest.fixture(scope="module")
def session():
    return spark_session()


def _log(log_class, source, session, config=None):
    """``source`` staged by ``log_class`` (Spark's on the test session) with ``config`` (default: the defaults)."""
    extra = {"session": session} if log_class is SparkTransactionLog else {}
    return log_class(source, load_config() if config is None else config, **extra)


def _audit(log_class, source, tmp_path: Path, session=None):
    """The audit of ``source`` by ``log_class`` and the clean lines it writes (a file, or Spark's folder)."""
    with _log(log_class, source, session) as log:
        result = audit_log(log)
        written = log.write_clean(tmp_path / f"{log_class.__name__}" / "transactions_clean.parquet")
    return result, written


def _assert_same_clean_lines(duck_file: Path, spark_folder: Path) -> None:
    """Spark's Parquet dataset holds DuckDB's clean lines (columns, order, values) and reads as one log."""
    assert spark_folder.is_dir() and sorted(p.name for p in spark_folder.glob("*.parquet"))
    duck, spark = pd.read_parquet(duck_file), pd.read_parquet(spark_folder)
    assert list(spark.columns) == list(duck.columns)
    spark = spark.astype(duck.dtypes.to_dict())
    assert_frame_equal(duck, spark)
    assert OrderLines(spark_folder).headline() == OrderLines(duck_file).headline()


def test_duckdb_constructs_spark_lacks_are_translated():
    assert duckdb_to_spark("SELECT regexp_extract(t, '(?P<a>x)(?P<b_>y)', ['a', 'b_']).b_ FROM t") == \
        "SELECT REGEXP_EXTRACT(t, '(x)(y)', 2) FROM t"
    assert duckdb_to_spark("SELECT try_strptime(t, ['%d-%b-%Y', '%b %d, %Y']) FROM t") == \
        "SELECT COALESCE(TRY_TO_TIMESTAMP(t, 'd-MMM-yyyy'), TRY_TO_TIMESTAMP(t, 'MMM d, yyyy')) FROM t"
    assert duckdb_to_spark("SELECT fsum(v), hash(a, b) FROM t") == "SELECT SUM(v), XXHASH64(a, b) FROM t"
    assert strftime_to_spark("%Y-%m-%dT%H:%M") == "yyyy-M-d'T'H:m"


def test_date_formats_parse_on_spark_as_duckdb_parses_them_or_are_refused(session):
    import duckdb

    cases = [("%Y%m%d", "20240102"), ("%Y%m%d%H%M", "202401021530"), ("%d/%m/%Y %H:%M", "2/1/2024 7:05")]
    for fmt, text in cases:  # compact formats: two-letter fields, or Spark's d/M would take every digit
        spark = session.sql(f"SELECT try_to_timestamp('{text}', '{strftime_to_spark(fmt)}') AS t").first()["t"]
        duck = duckdb.sql(f"SELECT try_strptime('{text}', '{fmt}') AS t").fetchall()[0][0]
        assert spark == duck is not None, (fmt, spark, duck)
    with pytest.raises(ConfigError, match=r"two-digit year \(%y\) is read as 1969-2068 by DuckDB and as "
                                          r"2000-2099 by Spark\. Use a four-digit year"):
        strftime_to_spark("%d/%m/%y")  # 15/03/95: 1995 on DuckDB, 2095 on Spark (a future date, dropped)


def test_the_sample_audit_and_clean_lines_on_spark_equal_duckdbs(session, tmp_path):
    duck, duck_file = _audit(TransactionLog, SAMPLE, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, SAMPLE, tmp_path, session)
    assert spark.counts["transactions_rows_in"] == 31042 and len(spark.findings) == 10
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)


def test_a_hostile_csv_gives_the_same_facts_and_findings_on_spark(session, tmp_path):
    # in five parts whose names Spark's file paths percent-encode (space, "#", "%") or not ("!", "é"): the
    # lines are numbered in the order DuckDB reads the files (by name), so the offending rows and the
    # ids of lines without an order id (named by their row) are the same; by the raw paths "a!b" came first
    header, *rows = HOSTILE_CSV.splitlines(keepends=True)
    path = tmp_path / "hostile"
    path.mkdir()
    for name, part in (("a b", rows[:4]), ("a!b", rows[4:8]), ("a#b", rows[8:11]), ("a%b", rows[11:14]),
                       ("aé", rows[14:])):
        (path / f"{name}.csv").write_text(header + "".join(part))
    duck, duck_file = _audit(TransactionLog, path, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, path, tmp_path, session)
    found = dict(zip(duck.findings["check"], duck.findings["count"]))
    assert {k: found.get(k) for k in ("exact_duplicates", "guest_checkouts", "negative_price", "zero_price",
                                      "future_dates", "returns", "control_characters")} == {
        "exact_duplicates": 1, "guest_checkouts": 2, "negative_price": 1, "zero_price": 1, "future_dates": 1,
        "returns": 1, "control_characters": 1}
    assert duck.customers["country"].notna().sum() == 6  # derived from the lines: each customer's newest
    assert_same_audit(duck, spark)
    for check, rows in duck.offending.items():  # the rows each finding lists, by their line numbers
        assert_frame_equal(spark.offending[check], rows, check_dtype=False, obj=check)
    assert duck.offending["negative_price"]["row"].tolist() == [13]  # the 12th line: the first of "a%b.csv"
    _assert_same_clean_lines(duck_file, spark_folder)
    assert "row-9" in pd.read_parquet(duck_file)["order_id"].tolist()  # a line without an order id, by its row


def test_typed_parquet_read_as_a_spark_table_gives_the_same_audit(session, tmp_path):
    # pandas writes timestamps in nanoseconds, which Spark reads as integers: read from a table (not a local
    # file, whose footer pyarrow could read) they must still be order dates (a finer time than microseconds too)
    csv = tmp_path / "hostile.csv"
    csv.write_text(HOSTILE_CSV)
    with TransactionLog(csv, load_config()) as log:
        typed = log.clean_frame().drop(columns=["is_return"])
    typed.loc[typed.index[-1], "order_date"] += pd.Timedelta(nanoseconds=123_456_789)
    parquet = tmp_path / "typed.parquet"
    typed.to_parquet(parquet)
    assert str(pq.read_schema(parquet).field("order_date").type) == "timestamp[ns]"
    session.sql(f"CREATE TABLE hostile_lines USING parquet LOCATION '{parquet}'")
    try:
        duck, duck_file = _audit(TransactionLog, parquet, tmp_path)
        spark, spark_folder = _audit(SparkTransactionLog, "table:hostile_lines", tmp_path, session)
    finally:
        session.sql("DROP TABLE hostile_lines")
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)


def test_a_uri_kept_as_written_is_read_by_spark_as_duckdb_reads_the_same_files(session, tmp_path):
    """The reader of URIs (``s3a://``, ``hdfs://``, …: passed to Spark as written, the format from the suffix,
    files numbered by name, no local listing) on the one filesystem here, ``file:``: a glob of CSV parts gives
    DuckDB's audit of the same folder. The folder itself is read as Parquet, and the error says to give a glob.
    Before: a file: URI given as text was taken for a local path ("no file matches this pattern")."""
    header, *rows = HOSTILE_CSV.splitlines(keepends=True)
    folder = tmp_path / "orders"
    folder.mkdir()
    # the first part the smallest (Spark plans the largest first), its one line duplicated in the second
    for name, part in (("part-1", rows[:1]), ("part-2", rows[1:12]), ("part-3", rows[12:])):
        (folder / f"{name}.csv").write_text(header + "".join(part))
    uri = f"file://{folder}/*.csv"
    duck, duck_file = _audit(TransactionLog, folder, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, uri, tmp_path, session)
    assert dict(zip(spark.findings["check"], spark.findings["count"]))["exact_duplicates"] == 1
    assert_same_audit(duck, spark)  # the offending rows too, by their line numbers across the parts
    assert duck.offending["negative_price"]["row"].tolist() == [13]
    _assert_same_clean_lines(duck_file, spark_folder)
    with pytest.raises(DataError) as err:
        SparkTransactionLog(folder.as_uri(), load_config(), session=session)
    assert str(err.value).startswith(f"{folder.as_uri()}: Spark cannot read it (")
    assert str(err.value).endswith("complete CSV or Parquet files with the transaction log, or give a local file. "
                                   "A URI is read as Parquet unless it ends in .csv "
                                   "(or .csv.gz, .tsv, .txt): give a folder of CSV parts as a glob "
                                   "(s3a://lake/orders/*.csv).")


def test_a_table_that_is_not_read_from_files_is_refused_saying_what_to_give(session, tmp_path):
    """segkit numbers order lines by file (Spark's _metadata column); a view has none. Before: Spark's
    [UNRESOLVED_COLUMN] error about _metadata, and "Check the path (or table name)"."""
    csv = tmp_path / "hostile.csv"
    csv.write_text(HOSTILE_CSV)
    session.read.option("header", True).csv(str(csv)).createOrReplaceGlobalTempView("segkit_lines_view")
    try:
        with pytest.raises(DataError) as err:
            SparkTransactionLog("table:global_temp.segkit_lines_view", load_config(), session=session)
    finally:
        session.catalog.dropGlobalTempView("segkit_lines_view")
    assert str(err.value) == (
        "table:global_temp.segkit_lines_view is not a file-based table (a view, or a JDBC, Iceberg or other table "
        "without Spark's _metadata column): segkit numbers the order lines by the files they are read from, as "
        "DuckDB reads them. Give its files (their folder, a glob or a URI) or a file-based (Parquet, CSV, Delta) "
        "table.")


@pytest.mark.parametrize("name, body", [
    ("day_first.csv", "customer_id,order_date,amount\na,2024-01-01,1\na,13/04/2024,2\nb,14/04/2024,3\n"),
    ("not_dates.csv", "customer_id,order_date,amount\na,2024-01-01,1\na,soon,2\nb,45123,3\n"),
    ("decimal_comma.csv", "customer_id,order_date,amount\na,2024-01-01,\"12,50\"\nb,2024-01-02,\"3,10\"\n"),
    ("integer_dates.parquet", None),
])
def test_bad_input_raises_duckdbs_error_on_spark(session, tmp_path, name, body):
    path = tmp_path / name
    if body is None:
        pd.DataFrame({"customer_id": ["a", "b"], "order_date": [20240101, 20240102], "amount": [1.0, 2.0]}
                     ).to_parquet(path)
    else:
        path.write_text(body)
    messages = []
    for log_class in (TransactionLog, SparkTransactionLog):
        with pytest.raises(DataError) as err:
            with _log(log_class, path, session):
                pass
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert messages[1].startswith(f"{path}: column 'order_date'" if name != "decimal_comma.csv"
                                  else f"{path}: column 'amount'")
    assert "row" in messages[1]


# ------------------------------------------------------------------ the orders contract (statuses, refunds) on Spark
def _contract_audit(log_class, source, config, tmp_path: Path, session=None):
    """The audit of ``source`` with ``config`` by ``log_class``, its status facts and the clean lines it writes."""
    with _log(log_class, source, session, config) as log:
        result = audit_log(log)
        written = log.write_clean(tmp_path / log_class.__name__ / "transactions_clean.parquet")
        return result, log.status_facts, written


def _assert_same_contract_audit(source, config, tmp_path: Path, session) -> tuple[StatusFacts, pd.DataFrame]:
    """``source`` audited with the orders contract on both engines: the same audit (findings' text and counts,
    every table), the same status facts (sums of floats to the last few bits: the engines add in other orders)
    and the same clean lines, to the last bit. Returns DuckDB's facts and findings."""
    duck, duck_facts, duck_file = _contract_audit(TransactionLog, source, config, tmp_path)
    spark, spark_facts, spark_folder = _contract_audit(SparkTransactionLog, source, config, tmp_path, session)
    assert_same_audit(duck, spark)
    facts, found = vars(duck_facts).copy(), vars(spark_facts).copy()
    assert_frame_equal(found.pop("by_status"), facts.pop("by_status"), check_exact=False, rtol=1e-12)
    sums = [k for k, v in facts.items() if isinstance(v, float)]
    assert {k: v for k, v in found.items() if k not in sums} == {k: v for k, v in facts.items() if k not in sums}
    assert {k: found[k] for k in sums} == pytest.approx({k: facts[k] for k in sums}, rel=1e-12)
    _assert_same_clean_lines(duck_file, spark_folder)
    duck_lines, spark_lines = pd.read_parquet(duck_file), pd.read_parquet(spark_folder)
    assert "recorded_amount" in spark_lines.columns  # every amount to the last bit, not to assert_frame_equal's rtol
    assert_frame_equal(spark_lines.astype(duck_lines.dtypes.to_dict()), duck_lines, check_exact=True)
    return duck_facts, duck.findings


def test_a_shopify_export_is_audited_on_spark_with_the_orders_contract_as_on_duckdb(session, tmp_path):
    """Issue 17: the Shopify preset on Spark was refused ("Audit this export with engine.kind: duckdb"); now
    :mod:`segkit.data.statuses`' statements run there: e-mail keys, order fields carried to every line, numeric
    channels named, statuses, refunds, cancellations, test and zero-value orders, guests, the currency."""
    export = generate_shopify_export(N_CUSTOMERS, seed=SEED)
    path = write_shopify_export(tmp_path / "export", export)
    facts, findings = _assert_same_contract_audit(path, load_config(SHOPIFY_CONFIG), tmp_path, session)
    assert facts.test_orders == 2 and facts.refunded_orders > 0 and facts.guest_orders > 0
    assert facts.currency == "USD" and facts.rows_without_offset == 0
    assert {"order_statuses", "refunds", "cancelled_orders", "test_orders", "zero_value_orders"} <= set(
        findings["check"])


def test_orders_of_overlapping_exports_and_another_shop_systems_statuses_are_kept_once_on_spark_as_on_duckdb(
        session, tmp_path):
    """The order copies of overlapping exports (each counted once), and a WooCommerce-like export: statuses on
    every row, line amounts without an order value, a pending rule, a line without order id, numeric channels,
    an amount whose share rounds at a tie (the same on both engines)."""
    export = generate_shopify_export(N_CUSTOMERS, seed=SEED)
    names = export.lines["Name"].drop_duplicates().tolist()
    folder = tmp_path / "overlap"
    for part, keep in (("orders_export_1.csv", names[:70]), ("orders_export_2.csv", names[50:])):
        write_shopify_export(folder, ShopifyExport(export.lines[export.lines["Name"].isin(keep)], export.orders,
                                                   export.customers), name=part)
    facts, findings = _assert_same_contract_audit(folder, load_config(SHOPIFY_CONFIG), tmp_path / "shop", session)
    assert (facts.repeated_orders, facts.orders) == (20, len(names) - 2)  # less the two test orders
    assert "orders_in_several_files" in set(findings["check"])
    woo = tmp_path / "woo.csv"
    woo.write_text("order,customer,date,line_total,status,refund,channel\n"
                   "W1,a@x.org,2024-05-01 10:00,30,completed,0,123\n"
                   "W1,a@x.org,2024-05-01 10:00,10,completed,0,\n"
                   "W2,A@X.org,2024-05-09 11:00,40,completed,10,web\n"
                   "W3,b@x.org,2024-05-10 12:00,25,refunded,25,\n"
                   "W4,c@x.org,2024-05-11 09:00,50,on-hold,0,\n"
                   ",c@x.org,2024-05-11 09:30,7,completed,0,\n"
                   "W5,c@x.org,2024-05-12 09:00,20,processing,0,77\n"
                   "W6,d@x.org,2024-05-13 09:00,51.1821625,completed,0,\n")  # a tie at the 7th decimal
    config = load_config(overrides={
        "columns": {"transactions": {"order_id": "order", "customer_id": "customer", "order_date": "date",
                                     "amount": "line_total", "order_status": "status", "refunded_amount": "refund",
                                     "channel": "channel"}},
        "orders": {"statuses": {"completed": "purchase", "processing": "purchase", "refunded": "not_purchase",
                                "on-hold": "pending"}, "pending": "not_purchase", "customer_key": "email",
                   "order_level_columns": ["channel"], "numeric_channel_name": "app {id}"}})
    facts, _ = _assert_same_contract_audit(woo, config, tmp_path / "woo", session)
    assert facts.refunded_orders == 2
    clean = pd.read_parquet(tmp_path / "woo" / "SparkTransactionLog" / "transactions_clean.parquet")
    assert clean["channel"].fillna("-").tolist() == ["app 123", "app 123", "web", "-", "-", "-", "app 77", "-"]
    # 51.1821625 is stored as 51.18216249999...: DuckDB's round(x, 6) gave 51.182162, Spark's 51.182163
    assert clean["amount"].tolist() == [30.0, 10.0, 30.0, 0.0, 0.0, 7.0, 20.0, 51.182163]


def test_an_unknown_order_status_raises_duckdbs_error_on_spark(session, tmp_path):
    export = generate_shopify_export(20, seed=2)
    first = export.lines.index[export.lines["Financial Status"] != ""][3]
    export.lines.loc[first, "Financial Status"] = "chargeback"
    path = write_shopify_export(tmp_path, export)
    messages = []
    for log_class in (TransactionLog, SparkTransactionLog):
        with pytest.raises(DataError) as err:
            with _log(log_class, path, session, load_config(SHOPIFY_CONFIG)):
                pass
        messages.append(str(err.value))
    assert messages[1] == messages[0]
    assert f"'Financial Status' (mapped to 'order_status'): unknown order status(es) 'chargeback' in 1 row(s) " \
           f"(row {int(first) + 2})" in messages[1]
    assert "chargeback: purchase | not_purchase | pending" in messages[1]


def test_a_folder_of_parquet_parts_is_numbered_in_file_order_as_duckdb_numbers_it(session, tmp_path):
    # parts of unequal size, the first by name the smallest: Spark plans the largest split first, so the rows
    # are numbered by the files' order, not by the order Spark reads them; timestamps in nanoseconds (pandas')
    lines = pd.read_csv(SAMPLE, dtype=str).astype({"amount": float, "quantity": float, "unit_price": float})
    lines["order_date"] = pd.to_datetime(lines["order_date"])
    folder = tmp_path / "parts"
    folder.mkdir()
    for name, part in (("part-a", lines.iloc[:700]), ("part-b", lines.iloc[700:20000]), ("part-c", lines.iloc[20000:])):
        part.to_parquet(folder / f"{name}.parquet", index=False)
    duck, duck_file = _audit(TransactionLog, folder, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, folder, tmp_path, session)
    assert spark.findings["check"].tolist() == duck.findings["check"].tolist() and len(duck.findings) == 10
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)


#: What a Spark context segkit did not start may be set to (a pyspark shell's or a cluster's spark-defaults):
#: each changes what the core's and the audit's SQL mean unless segkit's sessions pin their own settings.
FOREIGN_CONF = {
    "spark.sql.session.timeZone": "America/New_York",   # times cast and shown in another zone
    "spark.sql.timestampType": "TIMESTAMP_LTZ",          # TIMESTAMP and datetime parameters zoned
    "spark.sql.parser.escapedStringLiterals": "true",    # '\\d' in a regex literal stays two characters
    "spark.sql.legacy.timeParserPolicy": "LEGACY",       # lenient dates: 2024-02-30 is 1 March
    "spark.sql.ansi.enabled": "false",
}
#: Run in a child process (one SparkContext per process, and this file's is segkit's): start Spark with
#: FOREIGN_CONF and nothing of segkit's, in the New York time zone, then audit and query with segkit.
FOREIGN_CONTEXT_SCRIPT = """
import json, sys
from pathlib import Path
import pandas as pd
from pyspark.sql import SparkSession
from segkit.audit import audit_log
from segkit.core.config import load_config
from segkit.core.errors import DataError
from segkit.data.relational import HEADLINE, LATER_COUNTS, ORDER_LIST, RFM_BASE
from segkit.data.spark import SparkLines
from segkit.data.spark_audit import SparkTransactionLog

folder, conf, as_of = Path(sys.argv[1]), json.loads(sys.argv[2]), pd.Timestamp(sys.argv[3])
builder = SparkSession.builder.master("local[1]").appName("not-segkit").config("spark.ui.enabled", "false")
for key, value in conf.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
with SparkTransactionLog(folder / "hostile.csv", load_config(), session=spark) as log:
    log.write_clean(folder / "spark_clean")
lines = SparkLines(folder / "spark_clean", positions=True, session=spark)
spark.createDataFrame([(1,)], "x INT")  # the user's own work makes their session the active one (zoned, New York)
for query in (HEADLINE, LATER_COUNTS, RFM_BASE, ORDER_LIST):
    lines.run(query, {"as_of": as_of}).to_parquet(folder / f"{query.name}.parquet")
try:
    SparkTransactionLog(folder / "not_a_day.csv", load_config(), session=spark).close()
except DataError as exc:
    (folder / "not_a_day.txt").write_text(str(exc))
"""


def test_a_spark_context_segkit_did_not_start_gives_duckdbs_audit_and_core_results(tmp_path):
    # a context started with other SQL settings, in another time zone (the Python process's too, which
    # pyspark's conversion of a naive datetime parameter reads), and another session active when queries run
    (tmp_path / "hostile.csv").write_text(HOSTILE_CSV)
    (tmp_path / "not_a_day.csv").write_text("customer_id,order_date,amount\na,2024-01-01,1\na,2024-02-30,2\n")
    as_of = "2024-01-13 09:00:00"  # C6.0's order at 12:00 is after it: five hours later it would be before
    env = {**os.environ, "TZ": "America/New_York", "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, "-c", FOREIGN_CONTEXT_SCRIPT, str(tmp_path), json.dumps(FOREIGN_CONF),
                           as_of], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with TransactionLog(tmp_path / "hostile.csv", load_config()) as log:
        duck_file = log.write_clean(tmp_path / "duck_clean.parquet")
    _assert_same_clean_lines(duck_file, tmp_path / "spark_clean")
    with file_lines(duck_file, positions=True) as duck:
        for query in (HEADLINE, LATER_COUNTS, RFM_BASE, ORDER_LIST):
            expected = run(duck, query, {"as_of": pd.Timestamp(as_of).to_pydatetime()})
            got = pd.read_parquet(tmp_path / f"{query.name}.parquet")
            assert_frame_equal(got, expected, check_dtype=False, obj=query.name)
    assert pd.read_parquet(tmp_path / "later_counts.parquet")["orders_after_as_of"].tolist() == [4]
    with pytest.raises(DataError) as duck_error:
        TransactionLog(tmp_path / "not_a_day.csv", load_config()).close()
    assert (tmp_path / "not_a_day.txt").read_text() == str(duck_error.value)


def test_order_lines_with_bytes_that_are_not_utf8_are_refused_on_spark_as_duckdb_refuses_them(session, tmp_path):
    """Spark's CSV reader decoded the byte \\xf6 (Latin-1 "ö") as U+FFFD and the audit went on with the customer
    "K\ufffdln" where DuckDB refuses the file; now Spark refuses it too, naming the column and the rows."""
    path = tmp_path / "lines.csv"
    body = "customer_id,order_id,order_date,amount\nC1,1,2024-01-01,10\n" + "".join(
        f"K\xf6ln{i},{i + 2},2024-01-02,5\n" for i in range(7))
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(DataError, match="cannot be read"):
        _audit(TransactionLog, path, tmp_path)
    with pytest.raises(DataError) as spark:
        _audit(SparkTransactionLog, path, tmp_path, session)
    assert str(spark.value) == (
        f"{path}: is not valid UTF-8 text: column 'customer_id' holds bytes that are not UTF-8 (rows 3, 4, 5, 6, 7 "
        "(and 2 more), e.g. 'K\ufffdln0'; Spark shows each as \ufffd). Set io.encoding in the config to the file's "
        "encoding, e.g. 'latin-1' or 'cp1252' for Western European exports."), str(spark.value)
    config = load_config(overrides={"io": {"encoding": "latin-1"}})
    with SparkTransactionLog(path, config, session=session) as log:  # read as what it is: accepted
        assert audit_log(log).status != "errors"  # (Spark refused Python's name for it, "iso8859-1")
        written = log.write_clean(tmp_path / "latin" / "transactions_clean.parquet")
    assert "Köln0" in set(pd.read_parquet(written)["customer_id"])
    with pytest.raises(ConfigError, match="Spark's CSV reader reads UTF-8, Latin-1"):
        SparkTransactionLog(path, load_config(overrides={"io": {"encoding": "cp1252"}}), session=session)


# ------------------------------------------------------------------ step 01 on Spark: nothing over the lines here
#: Order lines with three order-value outliers: 99 cancelled 12 minutes later by C99, 77 with a smaller
#: document two days later, 55 never cancelled.
OUTLIER_LINES = pd.DataFrame(
    [("a", str(i), f"2024-01-{i + 1:02d} 10:00", 18.0 + i) for i in range(14)]
    + [("b", "99", "2024-01-20 09:00", 9000.0), ("b", "C99", "2024-01-20 09:12", -9000.0),
       ("c", "77", "2024-01-21 11:00", 5000.0), ("c", "C78", "2024-01-23 12:00", -1000.0),
       ("d", "55", "2024-01-22 08:00", 7000.0)],
    columns=["customer_id", "order_id", "order_date", "amount"])


@pytest.fixture(scope="module")
def audit_steps(session, tmp_path_factory):
    """Step 01 (``build_audit_artifacts``) on :data:`OUTLIER_LINES` with ``engine.kind: duckdb`` and ``spark``
    (the shared session's master); on Spark with every DuckDB connection recorded (where it was opened).
    Returns ``{kind: (result, run context)}`` and the list of DuckDB connections of the Spark step."""
    import duckdb
    import traceback

    from segkit.steps.audit import build_audit_artifacts
    from segkit.steps.pipeline import open_run

    folder = tmp_path_factory.mktemp("audit_steps")
    OUTLIER_LINES.to_csv(folder / "transactions.csv", index=False)
    steps, opened = {}, []
    connect = duckdb.connect
    for kind, engine in (("duckdb", {"kind": "duckdb"}),
                         ("spark", {"kind": "spark", "spark": {"master": session.sparkContext.master}})):
        config = folder / f"{kind}.yml"
        config.write_text(json.dumps({"data": {"transactions": str(folder / "transactions.csv")}, "engine": engine}))
        ctx = open_run("01_data_audit", run_dir=folder / kind, config_path=config)
        if kind == "spark":
            duckdb.connect = lambda *args, **kwargs: (opened.append(traceback.format_stack(limit=8)),
                                                      connect(*args, **kwargs))[1]
        try:
            steps[kind] = (build_audit_artifacts(ctx), ctx)
        finally:
            duckdb.connect = connect
    return steps, opened


def test_the_spark_audit_step_marks_the_cancelled_outliers_as_the_duckdb_step_does(audit_steps):
    steps, _ = audit_steps
    (duck, _), (spark, spark_ctx) = steps["duckdb"], steps["spark"]
    listed = spark.offending["order_value_outliers"]
    assert_frame_equal(listed, duck.offending["order_value_outliers"])
    assert listed[["order_id", "kept_value", "cancelled_by"]].values.tolist() == [
        ["99", 0.0, "C99 on 2024-01-20 09:12 (9,000)"], ["55", 7000.0, ""], ["77", 5000.0, ""]]
    message = spark.findings.set_index("check").loc["order_value_outliers", "message"]
    assert message == duck.findings.set_index("check").loc["order_value_outliers", "message"]
    assert message.endswith(" kept. Cancelled later: order 99 (value 9,000; kept 0) by C99 on 2024-01-20 09:12 (9,000).")
    assert_frame_equal(spark.findings, duck.findings)
    assert spark.headline == duck.headline and duck.headline["cancellation_documents"] == 2
    assert spark_ctx.read_artifact("audit_summary") == {**steps["duckdb"][1].read_artifact("audit_summary"),
                                                         "engine": "spark"}


def test_the_spark_audit_step_opens_no_duckdb_over_the_lines(audit_steps):
    """The headline numbers and the outlier orders' cancellations came from a DuckDB pass over every clean line
    in this process (the notebook's kernel) whatever the engine; on Spark they are the executors' work."""
    _, opened = audit_steps
    assert opened == [], "".join(opened[0])


def test_a_user_column_named_row_stays_apart_from_the_audits_row_numbers_on_both_engines(session, tmp_path):
    """The audit numbers the input lines ``_row``; a column of the file with that name was taken for the
    numbering on DuckDB (here text: a bare Binder Error) and replaced by it on Spark (mapped as order_id: the
    line numbers became the order ids)."""
    path = tmp_path / "with_row.csv"
    path.write_text("customer_id,_row,order_id,order_date,amount\n"
                    "a,x7,1,2024-01-01,10\n,x8,2,2024-01-02,5\nb,x9,3,2024-01-03,-4\n")
    duck, duck_file = _audit(TransactionLog, path, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, path, tmp_path, session)
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)
    assert finding_rows(duck, "guest_checkouts")["row"].tolist() == [3]
    config = load_config(overrides={"columns": {"transactions": {"order_id": "_row"}}})
    for log_class, extra in ((TransactionLog, {}), (SparkTransactionLog, {"session": session})):
        with log_class(path, config, **extra) as log:
            written = log.write_clean(tmp_path / log_class.__name__ / "mapped" / "transactions_clean.parquet")
        assert pd.read_parquet(written)["order_id"].tolist() == ["x7", "x9"], log_class.__name__


def test_a_parquet_tables_footer_is_read_once_and_its_zoned_nanosecond_times_read_as_locally(session, tmp_path,
                                                                                             monkeypatch):
    """``load_spark_table`` read the first file's footer (and listed the files) in ``read_spark_source`` for the
    nanosecond columns, then again for the time zones: now once, and a zoned nanosecond column (pandas' default)
    still reads as the local reader reads it (its wall time in the zone it was written in)."""
    import segkit.data.spark as spark_module
    import segkit.data.spark_audit as spark_audit

    path = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": ["C1", "C2"],
                  "signup_date": pd.to_datetime(["2024-01-05 23:30", "2024-06-01 00:30"]).tz_localize("Europe/Berlin")}
                 ).to_parquet(path)  # nanoseconds, in Europe/Berlin
    config = load_config(overrides={"engine": {"kind": "spark", "spark": {"master": session.sparkContext.master}}})
    reads = []
    footer = spark_module.parquet_column_facts

    def counted(frame):
        reads.append(frame)
        return footer(frame)
    monkeypatch.setattr(spark_module, "parquet_column_facts", counted)
    monkeypatch.setattr(spark_audit, "parquet_column_facts", counted)
    got = load_spark_table(path, "customers", config, session=session)
    assert len(reads) == 1
    assert got["signup_date"].tolist() == [pd.Timestamp("2024-01-05 23:30"), pd.Timestamp("2024-06-01 00:30")]
    assert_frame_equal(got, load_table(path, "customers", config=config))
