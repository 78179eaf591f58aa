"""The data audit on Apache Spark (issue 17): Spark's facts, findings and errors are DuckDB's.

:class:`segkit.data.spark_audit.SparkTransactionLog` runs the SQL of :class:`segkit.data.engine.TransactionLog`
on Spark; here both audit the same inputs — the bundled sample, a small hostile CSV (text cells in every
form the reader types, guests, duplicates, negative amounts, future dates, control characters), the same
lines as typed Parquet read as a Spark table (``table:``) — and every field of the
:class:`~segkit.audit.AuditResult` must be equal, as must the clean lines each engine writes. Bad input
must raise the same :class:`~segkit.core.errors.DataError` text (file, column, rows, what to do).

One Spark session for the file (:func:`segkit.data.spark.spark_session`). A missing Java or pyspark fails
here with the message of ``spark_session`` (``tests/spark_setup.py`` installs Java): never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_log
from segkit.core.config import load_config, project_root
from segkit.core.errors import ConfigError, DataError
from segkit.data.engine import OrderLines, TransactionLog
from segkit.data.spark import spark_session
from segkit.data.spark_audit import SparkTransactionLog, duckdb_to_spark, strftime_to_spark
from tests.audit_helpers import assert_same_audit

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


def _log(log_class, source, session):
    """``source`` staged by ``log_class`` (Spark's on the test session)."""
    extra = {"session": session} if log_class is SparkTransactionLog else {}
    return log_class(source, load_config(), **extra)


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
    path = tmp_path / "hostile.csv"
    path.write_text(HOSTILE_CSV)
    duck, duck_file = _audit(TransactionLog, path, tmp_path)
    spark, spark_folder = _audit(SparkTransactionLog, path, tmp_path, session)
    found = dict(zip(duck.findings["check"], duck.findings["count"]))
    assert {k: found.get(k) for k in ("exact_duplicates", "guest_checkouts", "negative_price", "zero_price",
                                      "future_dates", "returns", "control_characters")} == {
        "exact_duplicates": 1, "guest_checkouts": 2, "negative_price": 1, "zero_price": 1, "future_dates": 1,
        "returns": 1, "control_characters": 1}
    assert duck.customers["country"].notna().sum() == 6  # derived from the lines: each customer's newest
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)


def test_typed_parquet_read_as_a_spark_table_gives_the_same_audit(session, tmp_path):
    csv = tmp_path / "hostile.csv"
    csv.write_text(HOSTILE_CSV)
    with TransactionLog(csv, load_config()) as log:
        typed = log.clean_frame().drop(columns=["is_return"])
    parquet = tmp_path / "typed.parquet"
    typed.to_parquet(parquet, coerce_timestamps="us", allow_truncated_timestamps=True)
    session.sql(f"CREATE TABLE hostile_lines USING parquet LOCATION '{parquet}'")
    try:
        duck, duck_file = _audit(TransactionLog, parquet, tmp_path)
        spark, spark_folder = _audit(SparkTransactionLog, "table:hostile_lines", tmp_path, session)
    finally:
        session.sql("DROP TABLE hostile_lines")
    assert_same_audit(duck, spark)
    _assert_same_clean_lines(duck_file, spark_folder)


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


def test_order_lines_that_need_the_orders_contract_are_refused_with_what_to_do(session, tmp_path):
    path = tmp_path / "statuses.csv"
    path.write_text("customer_id,order_id,order_date,amount,order_status\na,1,2024-01-01,5,paid\n")
    with pytest.raises(ConfigError) as err:
        SparkTransactionLog(path, load_config(), session=session)
    assert str(err.value).startswith(f"{path}: these order lines need the orders contract")
    assert "Audit this export with engine.kind: duckdb" in str(err.value)


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
