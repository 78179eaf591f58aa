"""The relational core on Apache Spark (issue 17): the same queries give DuckDB's values.

One Spark session for the file (``segkit.data.spark.spark_session``, local[2]); each dataset's lines are
registered once and its matching chains materialised once (module-scoped fixtures), then every query
that the RFM table, the headline, kept customers, purchase days and the cancellation matches read runs
on DuckDB (the full statement, as written) and on Spark (transpiled by sqlglot) and must agree: counts,
ids and dates exactly, money to 1e-9 relative. A missing Java or pyspark fails here with the message
of ``spark_session`` (``tests/spark_setup.py``, run by ``make test``, installs Java): never a skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from segkit.core.config import load_config, project_root
from segkit.core.errors import DataError
from segkit.data.engine import TransactionLog, file_lines
from segkit.data.online_retail import generate_online_retail, write_online_retail
from segkit.data.relational import (
    CANCELLATION_MATCHES,
    HEADLINE,
    KEPT_CUSTOMERS,
    LATER_COUNTS,
    ORDER_LIST,
    PURCHASE_DAYS,
    RFM_BASE,
    RFM_COUNTS,
    Query,
    frame_lines,
    run,
)
from segkit.data.spark import SparkLines, java_problem, spark_session

pytestmark = pytest.mark.slow

SAMPLE = project_root() / "data" / "sample" / "transactions.csv"
RETAIL_CONFIG = project_root() / "data" / "configs" / "online_retail_ii.yml"
AS_OF = pd.Timestamp("2024-12-01")          # the sample's lines reach beyond it: LATER_COUNTS counts them
RETAIL_AS_OF = pd.Timestamp("2011-09-01")
#: Each query with what it needs beyond ``lines``: (query, needs $as_of); run with every parameter bound.
CORE_QUERIES: tuple[tuple[Query, bool], ...] = (
    (RFM_BASE, True), (RFM_COUNTS, True), (LATER_COUNTS, True), (PURCHASE_DAYS, True),
    (HEADLINE, False), (KEPT_CUSTOMERS, False), (CANCELLATION_MATCHES, False),
)


@dataclass
class Engines:
    """One dataset on both engines: a DuckDB connection holding ``lines`` and the same lines on Spark,
    with Spark's shared relations held once per parameter set (``provided``)."""

    name: str
    duck: duckdb.DuckDBPyConnection
    spark: SparkLines
    as_of: pd.Timestamp
    held: dict[bool, tuple[str, ...]]

    def both(self, query: Query, with_as_of: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        params = {"as_of": self.as_of} if with_as_of else {}
        return (run(self.duck, query, {k: v.to_pydatetime() for k, v in params.items()}),
                self.spark.run(query, params, provided=self.held[with_as_of]))


def engines_over(name: str, duck: duckdb.DuckDBPyConnection, spark: SparkLines, as_of: pd.Timestamp) -> Engines:
    held = {False: spark.hold_shared(HEADLINE)}
    held[True] = spark.hold_shared(RFM_COUNTS, {"as_of": as_of})
    return Engines(name, duck, spark, as_of, held)


@pytest.fixture(scope="module")
def session():
    return spark_session()


@pytest.fixture(scope="module")
def sample_engines(session, tmp_path_factory) -> Iterator[Engines]:
    """The bundled sample as the audit cleans it (transactions_clean.parquet): DuckDB and Spark read the file."""
    folder = tmp_path_factory.mktemp("sample")
    with TransactionLog(SAMPLE, load_config()) as log:
        clean = log.write_clean(folder / "transactions_clean.parquet")
    with file_lines(clean) as duck:
        yield engines_over("sample", duck, SparkLines(clean, session=session), AS_OF)


@pytest.fixture(scope="module")
def retail_engines(session, tmp_path_factory) -> Iterator[Engines]:
    """An Online-Retail-like export (C invoices, partial and full cancellations, cancellations of orders
    before the data) cleaned by the audit with the UCI config; both engines read the clean lines as a
    pandas frame."""
    folder = tmp_path_factory.mktemp("retail")
    write_online_retail(folder, generate_online_retail(300, seed=11))
    shutil.copy(RETAIL_CONFIG, folder / RETAIL_CONFIG.name)
    config = load_config(folder / RETAIL_CONFIG.name)
    with TransactionLog(folder / "online_retail_II.csv", config) as log:
        lines = log.clean_frame()
    with frame_lines(lines) as duck:
        yield engines_over("retail", duck, SparkLines(lines, session=session), RETAIL_AS_OF)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A result with engine-neutral dtypes: ids as str, dates as datetime64[ns], numbers as float64,
    flags as bool (DuckDB and Spark hand pandas different widths and string types)."""
    out = {}
    for column, values in frame.items():
        if pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values.astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(values):
            out[column] = values.astype(bool)
        elif pd.api.types.is_numeric_dtype(values) or values.map(lambda v: hasattr(v, "as_tuple")).any():
            out[column] = pd.to_numeric(values.astype(object), errors="raise").astype("float64")
        else:
            out[column] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out)


def assert_same_values(duck: pd.DataFrame, spark: pd.DataFrame, what: str) -> None:
    """Same columns and rows in the same order; money within 1e-9 relative, everything else exact."""
    assert list(spark.columns) == list(duck.columns), what
    assert len(spark) == len(duck), f"{what}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    d, s = comparable(duck), comparable(spark)
    for column in d.columns:
        if d[column].dtype == "float64":
            exact = column not in {"net_revenue", "unmatched_value", "monetary_total", "monetary_avg", "amount",
                                   "unit_value", "cancelled", "orders_kept", "adjustments", "kept_total"}
            tolerance = {"rtol": 0.0, "atol": 0.0} if exact else {"rtol": 1e-9, "atol": 1e-9}
            close = np.isclose(s[column], d[column], equal_nan=True, **tolerance)
            assert close.all(), f"{what}.{column}: first differing row {np.flatnonzero(~close)[:5].tolist()}: " \
                                f"{s[column][~close].head(3).tolist()} on Spark, {d[column][~close].head(3).tolist()}"
        else:
            assert s[column].tolist() == d[column].tolist(), f"{what}.{column} differs"


@pytest.mark.parametrize("query,with_as_of", CORE_QUERIES, ids=[q.name for q, _ in CORE_QUERIES])
def test_the_bundled_sample_gives_the_same_values_on_spark_as_on_duckdb(sample_engines, query, with_as_of):
    duck, spark = sample_engines.both(query, with_as_of)
    assert len(duck) > 0
    assert_same_values(duck, spark, f"sample {query.name}")


@pytest.mark.parametrize("query,with_as_of", CORE_QUERIES, ids=[q.name for q, _ in CORE_QUERIES])
def test_an_online_retail_like_export_gives_the_same_values_on_spark_as_on_duckdb(retail_engines, query,
                                                                                    with_as_of):
    duck, spark = retail_engines.both(query, with_as_of)
    assert len(duck) > 0
    assert_same_values(duck, spark, f"retail {query.name}")


def test_the_comparison_sees_what_cancellations_and_the_cut_change(sample_engines, retail_engines):
    # the datasets exercise the matching and the as_of cut, so equal results above are not empty agreement
    for engines in (sample_engines, retail_engines):
        headline = engines.both(HEADLINE, False)[1].iloc[0]
        assert headline["cancellation_documents"] > 0 and headline["cancelled_orders"] > 0
        later = engines.both(LATER_COUNTS, True)[1].iloc[0]
        assert later["orders_after_as_of"] > 0
    retail = retail_engines.both(HEADLINE, False)[1].iloc[0]
    assert retail["unmatched_documents"] > 0  # cancellations of orders placed before the export starts


def test_a_missing_parameter_and_a_missing_column_are_named(session, tmp_path):
    lines = pd.DataFrame({"customer_id": ["a"], "order_id": ["1"], "amount": [5.0],
                          "order_date": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(ValueError, match="query 'rfm_base' needs the parameter.*as_of"):
        SparkLines(lines, session=session).run(RFM_BASE)
    path = tmp_path / "lines.parquet"
    lines.drop(columns="amount").to_parquet(path)
    with pytest.raises(DataError, match=r"lines.parquet: column\(s\) 'amount' missing"):
        SparkLines(path, session=session)


def test_lines_without_order_ids_are_numbered_in_file_order_as_on_duckdb(session, tmp_path):
    # also the one whole statement on Spark here (nothing held): the matching chain inlined as written
    lines = pd.DataFrame({"customer_id": ["b", "a", "b"], "amount": [5.0, 7.0, -5.0],
                          "order_date": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"])})
    lines.to_parquet(tmp_path / "part-1.parquet")
    lines.assign(customer_id="c").to_parquet(tmp_path / "part-2.parquet")
    with file_lines(tmp_path / "*.parquet") as duck:
        expected = run(duck, ORDER_LIST)
    assert expected[["customer_id", "order_id"]].values.tolist() == [
        ["a", "1"], ["b", "0"], ["b", "2"], ["c", "3"], ["c", "4"], ["c", "5"]]
    got = SparkLines(str(tmp_path / "*.parquet"), session=session).run(ORDER_LIST)
    assert_same_values(expected, got, "order_list without order ids")


def test_no_java_is_a_clear_error_never_a_skip():
    assert "openjdk-17-jre-headless" in java_problem({"PATH": "/nonexistent"})
    assert java_problem({"JAVA_HOME": "/nonexistent"}).startswith("JAVA_HOME is '/nonexistent'")
    assert java_problem() is None, java_problem()  # this machine must have Java: tests/spark_setup.py installs it


def test_the_comparison_catches_a_decimal_division_that_the_portable_subset_lint_forbids(session):
    # Spark divides DECIMAL(38, 6) into DECIMAL(38, 6) (rounded), DuckDB into DOUBLE: why the core casts first
    lines = pd.DataFrame({"customer_id": ["a", "a"], "order_id": ["1", "2"], "amount": [100.0, 0.000001],
                          "order_date": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    uncast = Query("uncast", "SELECT customer_id, CAST(sum(amount) AS DECIMAL(38, 6)) / count(*) AS amount "
                             "FROM lines GROUP BY customer_id")
    with frame_lines(lines) as duck:
        expected = run(duck, uncast)
    with pytest.raises(AssertionError, match=r"uncast.amount: .*\[50.000001\] on Spark, \[50.0000005\]"):
        assert_same_values(expected, SparkLines(lines, session=session).run(uncast), "uncast")
