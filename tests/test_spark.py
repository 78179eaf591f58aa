"""The relational core on Apache Spark (issue 17): the same queries and tables give DuckDB's values.

One Spark session for the file (``segkit.data.spark.spark_session``, local[2]); each dataset (the bundled
sample's clean file, an Online-Retail-like clean frame) is registered once as
:class:`~segkit.data.spark.SparkOrderLines` (module-scoped fixtures), whose lines hold the relations
that several queries share, so the tests after the first reuse them. Every public method of
:class:`~segkit.data.engine.OrderLines` (DuckDB) and its :class:`SparkOrderLines` twin must return the
same columns, dtypes, row order and values (ids, dates and counts exactly, money to 1e-9 relative),
and the core's queries compared as statements too (DuckDB as written, Spark transpiled by sqlglot). A
missing Java or pyspark fails here with the message of ``spark_session`` (``tests/spark_setup.py``,
run by ``make test``, installs Java): never a skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from segkit.campaign.prepare import order_lines
from segkit.core.config import load_config, project_root
from segkit.core.errors import DataError
from segkit.data.cancellations import kept_orders_of
from segkit.data.engine import OrderLines, TransactionLog, file_lines
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
    DuckDBExecutor,
    OrderLineTables,
    Query,
    frame_lines,
    run,
    summary_of,
)
from segkit.data.spark import (SparkLines, SparkOrderLines, java_problem, nanosecond_columns, spark_session,
                               timestamps_from_nanoseconds)

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
    """One dataset on both engines: a DuckDB connection holding ``lines`` and the same lines on Spark
    (which holds the relations its queries share, :meth:`SparkLines.hold_shared`, for the next ones)."""

    name: str
    duck: duckdb.DuckDBPyConnection
    spark: SparkLines
    as_of: pd.Timestamp

    def both(self, query: Query, with_as_of: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        params = {"as_of": self.as_of} if with_as_of else {}
        return (run(self.duck, query, {k: v.to_pydatetime() for k, v in params.items()}),
                self.spark.run(query, params))


@pytest.fixture(scope="module")
def session():
    return spark_session()


@pytest.fixture(scope="module")
def sample_clean(tmp_path_factory) -> Path:
    """The bundled sample as the audit cleans it: its transactions_clean.parquet."""
    folder = tmp_path_factory.mktemp("sample")
    with TransactionLog(SAMPLE, load_config()) as log:
        return log.write_clean(folder / "transactions_clean.parquet")


@pytest.fixture(scope="module")
def retail_clean(tmp_path_factory) -> pd.DataFrame:
    """An Online-Retail-like export (C invoices, partial and full cancellations, cancellations of orders
    before the data) cleaned by the audit with the UCI config, as a pandas frame."""
    folder = tmp_path_factory.mktemp("retail")
    write_online_retail(folder, generate_online_retail(300, seed=11))
    shutil.copy(RETAIL_CONFIG, folder / RETAIL_CONFIG.name)
    config = load_config(folder / RETAIL_CONFIG.name)
    with TransactionLog(folder / "online_retail_II.csv", config) as log:
        return log.clean_frame()


@pytest.fixture(scope="module")
def sample_engines(sample_tables) -> Iterator[Engines]:
    """The sample's clean lines: DuckDB and Spark read the file (Spark: the lines of :func:`sample_tables`)."""
    with file_lines(sample_tables.duck.source, positions=True) as duck:
        yield Engines("sample", duck, sample_tables.spark.lines(), AS_OF)


@pytest.fixture(scope="module")
def retail_engines(retail_tables) -> Iterator[Engines]:
    """The Online-Retail-like clean lines: both engines read the pandas frame."""
    with frame_lines(retail_tables.duck.source) as duck:
        yield Engines("retail", duck, retail_tables.spark.lines(), RETAIL_AS_OF)


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
    # also the one whole statement on Spark here (nothing held): the matching chain inlined as written.
    # File order is by name, as DuckDB sorts names; Spark's file paths percent-encode a space, "#" and "%"
    # ("a%20b" sorts after "a!b"): numbered by the raw paths, "a!b" would come first.
    lines = pd.DataFrame({"customer_id": ["b", "a", "b"], "amount": [5.0, 7.0, -5.0],
                          "order_date": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"])})
    for name, customer in (("aé", "f"), ("a%b", "e"), ("a#b", "d"), ("a!b", "c"), ("a b", "b")):
        lines.iloc[:2].assign(customer_id=customer).to_parquet(tmp_path / f"{name}.parquet")
    with file_lines(tmp_path / "*.parquet") as duck:
        expected = run(duck, ORDER_LIST)
    assert expected[["customer_id", "order_id"]].values.tolist() == [
        ["b", "0"], ["b", "1"], ["c", "2"], ["c", "3"], ["d", "4"], ["d", "5"], ["e", "6"], ["e", "7"], ["f", "8"],
        ["f", "9"]]
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


# ----------------------------------------------------------------------------- the order-level tables
@dataclass
class Tables:
    """One dataset as :class:`OrderLines` (DuckDB) and :class:`SparkOrderLines`, with an analysis date,
    two campaigns' sends and their recipients (a row without a send time, a customer without lines)."""

    name: str
    duck: OrderLines
    spark: SparkOrderLines
    as_of: pd.Timestamp
    sends: pd.DataFrame
    campaign: pd.DataFrame

    def both(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return getattr(self.duck, method)(*args, **kwargs), getattr(self.spark, method)(*args, **kwargs)


def tables_over(name: str, source: Any, session: Any, as_of: pd.Timestamp, days: tuple[str, str]) -> Tables:
    ids = sorted(pd.read_parquet(source)["customer_id"].unique() if isinstance(source, Path)
                 else source["customer_id"].dropna().unique())[:40]
    sends = pd.DataFrame({"campaign_id": ["spring", "autumn"], "send_date": pd.to_datetime(list(days))})
    campaign = pd.DataFrame({"campaign_id": ["spring"] * 21 + ["autumn"] * 21,
                             "customer_id": [*ids[:20], "nobody", *ids[20:40], "nobody"]})
    campaign["sent_at"] = campaign["campaign_id"].map(dict(zip(sends["campaign_id"], sends["send_date"])))
    campaign.loc[3, "sent_at"] = pd.NaT  # uses its campaign's first send time
    return Tables(name, OrderLines(source), SparkOrderLines(source, session=session), as_of, sends, campaign)


@pytest.fixture(scope="module")
def sample_tables(session, sample_clean) -> Tables:
    return tables_over("sample", sample_clean, session, AS_OF, ("2024-03-01", "2024-09-15"))


@pytest.fixture(scope="module")
def retail_tables(session, retail_clean) -> Tables:
    return tables_over("retail", retail_clean, session, RETAIL_AS_OF, ("2010-06-01", "2011-03-01"))


DATASETS = ("sample_tables", "retail_tables")


def assert_same_table(duck: pd.DataFrame, spark: pd.DataFrame, what: str) -> None:
    """The same columns, dtypes, rows in the same order and attrs; ids, dates and counts exact, floats
    (money, shares, day gaps) within 1e-9 relative."""
    assert len(duck) > 0, f"{what}: empty on DuckDB, nothing compared"
    try:
        pd.testing.assert_frame_equal(spark, duck, check_exact=False, rtol=1e-9, atol=0.0)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    integers = [c for c, dtype in duck.dtypes.items() if pd.api.types.is_integer_dtype(dtype)]
    assert spark[integers].equals(duck[integers]), f"{what}: counts differ"
    assert spark.attrs == duck.attrs, what


def assert_same_numbers(duck: dict[str, Any], spark: dict[str, Any], what: str) -> None:
    """The same keys; floats (money) within 1e-9 relative, counts and dates exact."""
    assert list(spark) == list(duck), what
    for key, value in duck.items():
        if isinstance(value, float):
            assert spark[key] == pytest.approx(value, rel=1e-9), f"{what}.{key}: {spark[key]} on Spark, {value}"
        else:
            assert spark[key] == value and type(spark[key]) is type(value), f"{what}.{key}: {spark[key]!r}, {value!r}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_order_listing_is_the_same_table_on_spark_as_on_duckdb(dataset, request):
    tables: Tables = request.getfixturevalue(dataset)
    for what, (duck, spark) in {
        "orders": tables.both("orders"),
        "purchase_orders": tables.both("purchase_orders", tables.as_of),
        "purchase_days": tables.both("purchase_days", tables.as_of),
        "first_non_purchase": tables.both("first_non_purchase"),
        "kept orders": tables.both("run", kept_orders_of),
    }.items():
        assert_same_table(duck, spark, f"{tables.name} {what}")
    days = tables.spark.purchase_days(tables.as_of)
    assert isinstance(days["customer_id"].dtype, pd.CategoricalDtype)
    assert days["customer_id"].cat.categories.is_monotonic_increasing


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_rfm_base_its_counts_and_the_headline_are_the_same_on_spark(dataset, request):
    tables: Tables = request.getfixturevalue(dataset)
    (duck_rfm, duck_info), (spark_rfm, spark_info) = tables.both("rfm_with_info", tables.as_of)
    assert_same_table(duck_rfm, spark_rfm, f"{tables.name} rfm_with_info")
    assert_same_numbers(duck_info, spark_info, f"{tables.name} rfm_with_info")
    assert duck_info["orders_after_as_of"] > 0  # the cut leaves orders out: LATER_COUNTS was read
    # another analysis date on the same Spark lines: nothing held for the first date is reused for it
    assert tables.both("has_purchase_before", "2000-01-01") == (False, False)
    assert tables.both("has_purchase_before", tables.as_of) == (True, True)
    assert_same_table(*tables.both("rfm", tables.as_of), f"{tables.name} rfm")
    # ... and the orders as seen at as_of, held for has_purchase_before, are read, not matched again
    assert "orders_before" in tables.spark.lines().hold_shared(RFM_BASE, {"as_of": tables.as_of})
    duck, spark = tables.both("headline")
    assert_same_numbers(duck, spark, f"{tables.name} headline")
    assert duck["cancellation_documents"] > 0


@pytest.mark.parametrize("dataset", DATASETS)
def test_behaviour_features_are_the_same_on_spark(dataset, request):
    tables: Tables = request.getfixturevalue(dataset)
    duck, spark = tables.both("behaviour", tables.as_of)
    assert_same_table(duck, spark, f"{tables.name} behaviour")
    assert duck["median_days_between_orders"].notna().any() and (duck["return_share"] > 0).any()
    if tables.name == "sample":  # categories and channels (CHANNEL_ORDERS) are in the sample
        assert "favourite_category" in duck and any(c.startswith("channel_share_") for c in duck.columns)


@pytest.mark.parametrize("dataset", DATASETS)
def test_send_histories_and_retention_are_the_same_on_spark(dataset, request):
    tables: Tables = request.getfixturevalue(dataset)
    later = tables.sends.iloc[1:].assign(send_date=tables.as_of)  # registered again: held relations dropped
    for sends in (tables.sends, later):
        assert_same_table(*tables.both("rfm_at_send", sends), f"{tables.name} rfm_at_send")
        assert_same_table(*tables.both("purchase_days_at_send", sends), f"{tables.name} purchase_days_at_send")
    for as_of in (None, tables.as_of):
        duck, spark = tables.both("retention_flags", tables.campaign, 60, as_of)
        pd.testing.assert_series_equal(spark, duck)
        assert duck.notna().any() and set(duck.dropna()) == {0.0, 1.0}


def test_lifetimes_summaries_are_the_same_on_spark(sample_tables):
    # SUMMARY reads a registered `purchases` relation: the same frame registered on each engine
    days = sample_tables.duck.purchase_days(AS_OF)
    purchases = pd.DataFrame({"c": days["customer_id"].cat.codes.to_numpy(dtype=np.int64),
                              "order_date": days["order_date"].to_numpy(), "amount": days["amount"].to_numpy()})
    typing = "c, CAST(order_date AS TIMESTAMP) AS order_date, CAST(amount AS DECIMAL(38, 6)) AS amount"
    spark_lines = sample_tables.spark.lines()
    spark_lines.register("purchases", purchases, typing)
    with frame_lines(pd.DataFrame(columns=["customer_id", "order_date", "amount"])) as con:
        duck_lines = DuckDBExecutor(con)
        duck_lines.register("purchases", purchases, typing)
        for freq, multiplier in (("D", 1.0), ("W", 1.0), ("h", 24.0)):
            end = AS_OF - pd.Timedelta(days=1)
            duck, spark = summary_of(duck_lines, freq, end, multiplier), summary_of(spark_lines, freq, end, multiplier)
            assert_same_table(duck, spark, f"summary {freq}")
            assert (duck["frequency"] > 0).any()


def test_spark_order_lines_are_order_line_tables_that_the_campaign_code_takes_as_they_are(sample_tables):
    assert isinstance(sample_tables.spark, OrderLineTables) and isinstance(sample_tables.duck, OrderLineTables)
    assert order_lines(sample_tables.spark) is sample_tables.spark


def test_a_line_file_missing_an_amount_is_named_alike_on_both_engines(session, tmp_path):
    lines = pd.DataFrame({"customer_id": ["a", "b", "c"], "order_id": ["1", "2", "3"], "amount": [5.0, None, 7.0],
                          "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    path = tmp_path / "lines.parquet"
    lines.to_parquet(path)
    with pytest.raises(DataError) as duck:
        OrderLines(path).orders()
    with pytest.raises(DataError) as spark:
        SparkOrderLines(path, session=session).orders()
    assert str(spark.value) == str(duck.value)
    assert "column 'amount' has 1 missing value(s) (first at row 3)" in str(spark.value)  # row 1: the header



def test_nanosecond_timestamps_read_by_spark_are_duckdbs_microseconds(session, tmp_path):
    # Spark reads Parquet TIMESTAMP(NANOS) (pandas' default) as integers; a URI folder's footer tells which they
    # are, and they round to microseconds as DuckDB casts them (half away from zero, before 1970 too); an
    # integer column stays an integer
    stamps = pd.to_datetime(pd.Series([1704067200000000499, 1704067200000000500, 1704067200000001500, -501, -500,
                                       -1500], dtype="int64"))
    folder = tmp_path / "ns"
    folder.mkdir()
    pd.DataFrame({"order_date": stamps, "quantity": np.arange(6)}).to_parquet(folder / "part-0.parquet")
    read = session.read.parquet(folder.as_uri())
    assert nanosecond_columns(read) == {"order_date"}
    spark = timestamps_from_nanoseconds(read).toPandas()
    duck = duckdb.sql(f"SELECT CAST(order_date AS TIMESTAMP) AS order_date, quantity "
                      f"FROM '{folder}/part-0.parquet'").df()
    assert spark["order_date"].astype("datetime64[us]").tolist() == duck["order_date"].astype("datetime64[us]").tolist()
    assert spark["order_date"].astype("datetime64[us]").astype("int64").tolist() == [1704067200000000, 1704067200000001,
                                                                                     1704067200000002, -1, -1, -2]
    assert spark["quantity"].tolist() == list(range(6))
    assert nanosecond_columns(session.read.parquet(folder.as_uri()).select("quantity")) == frozenset()
