"""Customers and campaign tables kept on the Spark executors (issue 17, notebook 01).

:func:`segkit.data.spark_audit.spark_side_table` types and checks the table per partition with the local reader's
functions: the same table and the same errors (file, column, whole-file rows, what to do) as
:func:`segkit.data.io.load_table`. The audit of a customers table on Spark (:func:`segkit.audit.audit_inputs`,
``engine.kind: spark``) counts its findings per partition: the same ``audit_summary.json`` findings as DuckDB's,
and ``customers_clean.parquet`` written by Spark as a dataset with the one-machine rows. Without a customers file the
customers derived from the clean lines stay on the executors too (the DuckDB run's query, checked per partition): the
same findings, counts and clean tables as DuckDB's, and no buyer's id reaches the driver.

One Spark session for the file; a missing Java fails (never a skip).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_inputs
from segkit.core.config import load_config, project_root
from segkit.core.errors import DataError
from segkit.core.files import parquet_parts
from segkit.data.io import load_table
from segkit.data.spark import spark_session
from segkit.data.spark_audit import spark_side_table, typed_side_rows
from segkit.steps.pipeline import RunContext

pytestmark = pytest.mark.slow

SAMPLE = project_root() / "data" / "sample"
CUSTOMERS_HEADER = "customer_id,signup_date,country,birth_year,email_opt_in\n"


@pytest.fixture(scope="module")
def session():
    return spark_session()


def _side(path, table: str, session) -> pd.DataFrame:
    side = spark_side_table(path, table, load_config(), session=session, partitions=3)
    return typed_side_rows(side.rows.toPandas(), side)


@pytest.mark.parametrize("table", ["customers", "campaign"])
def test_a_table_typed_per_partition_equals_the_local_readers(session, table):
    path = SAMPLE / f"{table}.csv"
    got, expected = _side(path, table, session), load_table(path, table, config=load_config())
    assert_frame_equal(got, expected, check_index_type=False)
    assert got.attrs == expected.attrs


BAD = {
    "bad_date": CUSTOMERS_HEADER + "C1,2024-01-01,DE,1980,yes\nC2,someday,FR,1970,no\nC3,2024-01-03,DE,1990,no\n",
    "duplicate_id": CUSTOMERS_HEADER + "".join(f"{i},2024-01-01,DE,1980,yes\n" for i in range(20)) + "7.0,,,,\n3,,,,\n",
    "missing_column": "signup_date,country\n2024-01-01,DE\n",
    "bad_flag": CUSTOMERS_HEADER + "C1,2024-01-01,DE,1980,maybe\nC2,2024-01-02,FR,1970,no\nC3,2024-01-03,DE,1990,perhaps\n",
    "mixed_dates_across_rows": CUSTOMERS_HEADER + "".join(
        f"C{i},{'2024-01-0' + str(i % 9 + 1) if i % 2 else '01/0' + str(i % 9 + 1) + '/2024'},DE,1980,yes\n"
        for i in range(12)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_customers_table_raises_the_local_readers_error_on_spark(session, tmp_path, name):
    path = tmp_path / "customers.csv"
    path.write_text(BAD[name])
    with pytest.raises(DataError) as local:
        load_table(path, "customers", config=load_config())
    with pytest.raises(DataError) as on_spark:
        _side(path, "customers", session)
    assert str(on_spark.value) == str(local.value)


def test_a_bad_row_in_the_second_of_two_csv_parts_is_named_by_its_whole_file_row(session, tmp_path):
    rows = [f"C{i},2024-01-{i % 28 + 1:02d},DE,1980,yes\n" for i in range(40)]
    rows[31] = "C31,2024-13-45,DE,1980,yes\n"
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.csv").write_text(CUSTOMERS_HEADER + "".join(rows[:20]))
    (tmp_path / "parts" / "b.csv").write_text(CUSTOMERS_HEADER + "".join(rows[20:]))
    whole = tmp_path / "whole.csv"
    whole.write_text(CUSTOMERS_HEADER + "".join(rows))
    with pytest.raises(DataError) as local:
        load_table(whole, "customers", config=load_config())
    with pytest.raises(DataError) as on_spark:
        _side(str(tmp_path / "parts" / "*.csv"), "customers", session)
    assert "row 33" in str(local.value)
    assert str(on_spark.value).split(": ", 1)[1] == str(local.value).split(": ", 1)[1]


#: Customers with what the audit must find: an id of control characters only, ids made equal by removing
#: control characters, a repeated id, a signup after as_of, an implausible birth year, a formula-like id,
#: empty cells, and customers without orders (the sample's buyers are not in it: buyers_not_in_customers).
HOSTILE_CUSTOMERS = CUSTOMERS_HEADER + (
    "12346,2010-01-01,United Kingdom,1980,yes\n"
    "12347\x07,2010-01-02,France,1850,no\n"
    "12347,2010-01-03,France,1975,\n"
    "\x07,2010-01-04,Germany,1990,yes\n"
    "=HYPERLINK(1),2030-01-01,,1985,no\n"
    "P1,,United Kingdom,,yes\n"
    "P2,2010-01-05,United Kingdom,2019,no\n"
)


@pytest.mark.parametrize("customers", ["sample", "hostile"])
def test_the_customers_findings_and_clean_table_on_spark_equal_duckdbs(session, tmp_path, customers):
    config = load_config()
    if customers == "hostile":
        (tmp_path / "customers.csv").write_text(HOSTILE_CUSTOMERS)
        config["data"]["customers"] = str(tmp_path / "customers.csv")
        # the repeated ids are an error by default: as a warning the clean tables are written and compared
        config["audit"]["severity"]["duplicate_customer_ids"] = {"level": "warning", "error_share": None}
    duck = audit_inputs(config, clean_path=tmp_path / "duck.parquet")
    spark = copy.deepcopy(config)
    spark.setdefault("engine", {}).update(kind="spark", spark={**spark["engine"].get("spark", {}),
                                                                "master": session.sparkContext.master})
    dest, campaign_dest = tmp_path / "customers_clean.parquet", tmp_path / "campaign_clean.parquet"
    got = audit_inputs(spark, clean_path=tmp_path / "spark.parquet", customers_path=dest, campaign_path=campaign_dest)
    assert got.customers is None and got.customer_rows is not None and duck.status != "errors"
    assert got.campaign is None and got.campaign_rows is not None
    assert got.campaign_overview == duck.campaign_overview
    assert_frame_equal(got.arms, duck.arms)
    expected, found = duck.summary(), got.summary()
    for key in ("engine", "outlier_rules"):  # the engines' names; the order lines' statistics (tests/test_spark_audit.py)
        expected.pop(key), found.pop(key)
    assert found == expected
    for key, rows in duck.offending.items():
        assert_frame_equal(got.offending[key], rows, check_dtype=False, obj=key)
    assert_frame_equal(got.missing, duck.missing)
    parts = parquet_parts(dest)
    assert len(parts) >= 1 and dest.is_dir()
    written = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert_frame_equal(written.astype(duck.customers.dtypes.to_dict()), duck.customers)
    written = pd.concat([pd.read_parquet(p) for p in parquet_parts(campaign_dest)], ignore_index=True)
    assert_frame_equal(written.astype(duck.campaign.dtypes.to_dict()), duck.campaign)
    if customers == "hostile":
        checks = set(expected["passed"]) | {f["check"] for f in expected["findings"]}
        assert {"duplicate_customer_ids", "customers_without_id", "implausible_birth_year", "signup_after_as_of",
                "formula_like_ids", "control_characters", "buyers_not_in_customers"} <= {
            f["check"] for f in found["findings"]}, checks


#: A campaign with what the audit must find: campaign ids made equal by removing a control character, a repeated
#: (campaign, customer) pair, a customer unknown to the customers table and the lines, negative revenue.
HOSTILE_CAMPAIGN = "campaign_id,customer_id,arm,sent_at,converted,revenue\n" + (
    "A,12346,email,2011-01-01,yes,10\n"
    "A\x07,P1,control,2011-01-01,no,\n"
    "A\x07,12346,email,2011-01-02,no,\n"
    "B,ZZ9,email,2011-02-01,yes,-5\n"
    "B,P2,control,2011-02-01,yes,-1\n"
    "B,12347,email,,no,3\n"
)


def test_a_hostile_campaign_table_gives_the_same_findings_and_clean_rows_on_spark(session, tmp_path):
    config = load_config()
    (tmp_path / "customers.csv").write_text(HOSTILE_CUSTOMERS)
    (tmp_path / "campaign.csv").write_text(HOSTILE_CAMPAIGN)
    config["data"].update(customers=str(tmp_path / "customers.csv"), campaign=str(tmp_path / "campaign.csv"))
    for check in ("duplicate_customer_ids", "campaign_duplicates", "unknown_campaign_customers"):  # written, compared
        config["audit"]["severity"][check] = {"level": "warning", "error_share": None}
    duck = audit_inputs(config, clean_path=tmp_path / "duck.parquet")
    spark = copy.deepcopy(config)
    spark.setdefault("engine", {}).update(kind="spark", spark={**spark["engine"].get("spark", {}),
                                                                "master": session.sparkContext.master})
    dest = tmp_path / "campaign_clean.parquet"
    got = audit_inputs(spark, clean_path=tmp_path / "spark.parquet", campaign_path=dest)
    expected, found = duck.summary(), got.summary()
    for key in ("engine", "outlier_rules"):
        expected.pop(key), found.pop(key)
    assert found == expected
    assert {"campaign_duplicates", "unknown_campaign_customers", "negative_campaign_revenue",
            "campaign_arm_balance"} <= {f["check"] for f in found["findings"]}
    controls = [f for f in found["findings"] if f["check"] == "control_characters" and f["table"] == "campaign"]
    assert len(controls) == 1 and "1 distinct id(s) equal an id already in this column" in controls[0]["message"]
    for key, rows in duck.offending.items():
        assert_frame_equal(got.offending[key], rows, check_dtype=False, obj=key)
    written = pd.concat([pd.read_parquet(p) for p in parquet_parts(dest)], ignore_index=True)
    assert_frame_equal(written.astype(duck.campaign.dtypes.to_dict()), duck.campaign)
    assert got.campaign_overview == duck.campaign_overview and len(duck.campaign) == 4 and duck.status == "warnings"


def _spy_on_driver_rows(monkeypatch) -> tuple[list[tuple[str, list[str], int]], list[int]]:
    """Records of what reaches the driver from Spark, and leaves it for Spark: every action that brings rows
    (``collect``, ``toPandas``: its name, the frame's columns, the rows), and the rows of every frame made from
    driver data (``createDataFrame``; -1 for data without a length)."""
    from pyspark.sql import SparkSession  # (classic: the session of a local master)
    from pyspark.sql.classic.dataframe import DataFrame  # the class whose actions run locally

    actions: list[tuple[str, list[str], int]] = []
    for name in ("collect", "toPandas"):
        original = getattr(DataFrame, name)

        def spied(self, *args, _original=original, _name=name, **kwargs):
            out = _original(self, *args, **kwargs)
            actions.append((_name, list(self.columns), len(out)))
            return out

        monkeypatch.setattr(DataFrame, name, spied)
    made: list[int] = []
    create = SparkSession.createDataFrame

    def create_spied(self, data, *args, **kwargs):
        made.append(len(data) if hasattr(data, "__len__") else -1)
        return create(self, data, *args, **kwargs)

    monkeypatch.setattr(SparkSession, "createDataFrame", create_spied)
    return actions, made


def test_the_spark_audit_brings_no_customer_or_campaign_table_to_the_driver(session, tmp_path, monkeypatch):
    """Spy on every Spark action of the audit of the sample (3,000 customers, 3,481 campaign rows): none brings
    more than a few rows carrying customer ids to the driver, the local pandas reader does not read the tables,
    and the buyers of the lines are not collected (each of these was so before issue 17's 01 work); and no
    warning of pyspark about pandas 3 escapes (the notebook would show it)."""
    import segkit.audit as audit_module
    from segkit.data.spark_audit import SparkTransactionLog

    actions, _ = _spy_on_driver_rows(monkeypatch)
    read_locally: list[str] = []
    monkeypatch.setattr(audit_module, "load_table", lambda *a, **k: read_locally.append(a[1]))
    monkeypatch.setattr(SparkTransactionLog, "buyers", lambda self: pytest.fail("the buyers were collected"))
    config = load_config()
    config.setdefault("engine", {}).update(kind="spark", spark={**config["engine"].get("spark", {}),
                                                                "master": session.sparkContext.master})
    with warnings.catch_warnings(record=True) as caught:  # nothing pyspark says of pandas 3 reaches the notebook
        warnings.simplefilter("always")
        result = audit_inputs(config, clean_path=tmp_path / "spark.parquet",
                              customers_path=tmp_path / "customers_clean.parquet",
                              campaign_path=tmp_path / "campaign_clean.parquet")
    assert [str(w.message) for w in caught if "pandas" in str(w.message)] == []
    assert result.counts["customers"] >= 3000 and result.counts["campaign_rows_in"] == 3481
    assert read_locally == []
    with_ids = [(name, rows) for name, columns, rows in actions if "customer_id" in columns]
    assert actions and max(rows for _, rows in with_ids) <= 100, with_ids


def _lines_with_customer_attributes(folder) -> str:
    """The sample's order lines with the customer attributes lines may carry (``country``, ``email_opt_in``, changing
    along each customer's lines, some empty), two customers whose newest line decides in a hard way (two lines on
    the same date: the first in the file; the newest line without a country: the one before), and 12 customers
    with formula-like ids (more than the rows a finding lists, so that the parts' rows are merged)."""
    lines = pd.read_csv(SAMPLE / "transactions.csv", dtype=str, keep_default_na=False)
    position = np.arange(len(lines))
    lines["country"] = np.array(["United Kingdom", "France", "Germany", ""])[position % 4]
    lines["email_opt_in"] = np.array(["yes", "no", ""])[position % 3]

    def line(customer: str, order: str, date: str, country: str, opt_in: str) -> dict:
        return {"customer_id": customer, "order_date": date, "order_id": order, "amount": "10", "quantity": "1",
                "unit_price": "10", "product_id": "P00001", "category": "sports", "channel": "web",
                "country": country, "email_opt_in": opt_in}

    extra = [line("T1", "OT1a", "2023-06-01 10:00:00", "France", "yes"),
             line("T1", "OT1b", "2023-06-01 10:00:00", "Germany", "no"),
             line("T2", "OT2a", "2023-01-01 10:00:00", "Spain", "no"),
             line("T2", "OT2b", "2023-06-01 10:00:00", "", "")]
    extra += [line(f"{'=@'[i % 2]}ID{i:02d}", f"OF{i:02d}", "2023-05-01 12:00:00", "Austria", "yes") for i in range(12)]
    path = folder / "lines.csv"
    pd.concat([lines, pd.DataFrame(extra)], ignore_index=True).to_csv(path, index=False)
    return str(path)


def _missing_as_none(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.astype(object).where(rows.notna(), None)


def _run(config, folder) -> RunContext:
    """A run folder for the artifacts of ``config``'s audit, read as the notebooks read them."""
    (folder / "artifacts").mkdir(parents=True)
    return RunContext(notebook="02_rfm", run_dir=folder, config=config, seed=0, interactive=False)


@pytest.mark.parametrize("inputs", ["lines_with_customer_attributes_and_campaign", "sample_lines_alone"])
def test_without_a_customers_file_the_derived_customers_on_spark_equal_duckdbs(session, tmp_path, inputs):
    config = load_config()
    del config["data"]["customers"]
    if inputs == "sample_lines_alone":
        del config["data"]["campaign"]
    else:
        config["data"]["transactions"] = _lines_with_customer_attributes(tmp_path)
        # campaign rows of customers who bought nothing are an error by default: as a warning the tables are written
        config["audit"]["severity"]["unknown_campaign_customers"] = {"level": "warning", "error_share": None}
    duck_run = _run(config, tmp_path / "duck")
    duck = audit_inputs(config, clean_path=duck_run.artifact_path("transactions_clean"))
    assert duck.status != "errors"
    duck_run.write_artifact("customers_clean", duck.customers)
    if duck.campaign is not None:
        duck_run.write_artifact("campaign_clean", duck.campaign)
    spark = copy.deepcopy(config)
    spark.setdefault("engine", {}).update(kind="spark", spark={**spark["engine"].get("spark", {}),
                                                                "master": session.sparkContext.master})
    spark_run = _run(spark, tmp_path / "spark")
    got = audit_inputs(spark, clean_path=spark_run.artifact_path("transactions_clean"),
                       customers_path=spark_run.artifact_path("customers_clean"),
                       campaign_path=spark_run.artifact_path("campaign_clean"))
    assert got.customers is None and got.customer_rows is not None  # held on the executors, written by Spark
    assert spark_run.artifact_path("customers_clean").is_dir()
    expected, found = duck.summary(), got.summary()
    for key in ("engine", "outlier_rules"):  # the engines' names; the order lines' statistics (tests/test_spark_audit.py)
        expected.pop(key), found.pop(key)
    assert found == expected
    assert_frame_equal(got.findings, duck.findings)
    assert_frame_equal(got.cleaning_rules, duck.cleaning_rules)
    assert list(got.offending) == list(duck.offending)
    for key, rows in duck.offending.items():  # (an empty flag of the lines: None on Spark, <NA> on DuckDB)
        assert_frame_equal(_missing_as_none(got.offending[key]), _missing_as_none(rows), check_dtype=False, obj=key)
    customers = spark_run.read_artifact("customers_clean")
    assert_frame_equal(customers, duck_run.read_artifact("customers_clean"))
    assert got.counts["customers"] == got.counts["buyers"] == len(customers) and got.counts["prospects"] == 0
    rule = duck.cleaning_rules.set_index("rule").loc["customers derived from transactions (no customers file)"]
    assert rule["rows_affected"] == len(customers)
    if inputs == "sample_lines_alone":
        assert not spark_run.artifact_path("campaign_clean").exists() and got.campaign_rows is None
        assert customers["country"].isna().all()
        return
    assert got.campaign is None and got.campaign_rows is not None
    assert_frame_equal(spark_run.read_artifact("campaign_clean"), duck_run.read_artifact("campaign_clean"))
    assert got.campaign_overview == duck.campaign_overview
    assert_frame_equal(got.arms, duck.arms)
    by_id = customers.set_index("customer_id")
    assert by_id.loc["T1", "country"] == "France" and bool(by_id.loc["T1", "email_opt_in"])  # first of the newest
    assert by_id.loc["T2", "country"] == "Spain" and not bool(by_id.loc["T2", "email_opt_in"])
    assert by_id["country"].notna().sum() > 1000 and by_id["email_opt_in"].notna().sum() > 1000
    formula = [f for f in found["findings"] if f["check"] == "formula_like_ids"]
    assert len(formula) == 1 and formula[0]["count"] == 12 and len(got.offending["formula_like_ids"]) == 10
    assert {f["check"] for f in found["findings"]} >= {"unknown_campaign_customers", "campaign_arm_balance"}


def test_without_a_customers_file_the_spark_audit_brings_no_customers_to_the_driver(session, tmp_path, monkeypatch):
    """Spy on every Spark action and every frame made from driver data in the audit of the sample's lines and
    campaign without a customers file: none carries more than a few rows of customer ids, the buyers of the lines
    are not collected and the customers are not derived in pandas (each of these was so before)."""
    from segkit.data.engine import TransactionLog
    from segkit.data.spark_audit import SparkTransactionLog

    actions, made = _spy_on_driver_rows(monkeypatch)
    monkeypatch.setattr(SparkTransactionLog, "buyers", lambda self: pytest.fail("the buyers were collected"))
    monkeypatch.setattr(TransactionLog, "derived_customers", lambda *a: pytest.fail("derived in pandas"))
    config = load_config()
    del config["data"]["customers"]
    config["audit"]["severity"]["unknown_campaign_customers"] = {"level": "warning", "error_share": None}
    config.setdefault("engine", {}).update(kind="spark", spark={**config["engine"].get("spark", {}),
                                                                "master": session.sparkContext.master})
    result = audit_inputs(config, clean_path=tmp_path / "spark.parquet",
                          customers_path=tmp_path / "customers_clean.parquet",
                          campaign_path=tmp_path / "campaign_clean.parquet")
    assert result.counts["customers"] > 1000 and result.counts["campaign_rows_in"] == 3481
    assert len(pd.read_parquet(tmp_path / "customers_clean.parquet")) == result.counts["customers"]
    with_ids = [(name, rows) for name, columns, rows in actions if "customer_id" in columns]
    assert actions and max(rows for _, rows in with_ids) <= 100, with_ids
    assert max(made, default=0) <= 100, made
