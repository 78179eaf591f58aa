"""Odd input is reported and handled in a stated way, the same on both engines (issue 14):
negative campaign revenue, signups after as_of, implausible birth years, files with a
byte-order mark, a workbook whose first sheet is not the table, and cancellation invoices
that net positive."""

from __future__ import annotations

import codecs
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_log, run_audit
from segkit.campaign import arm_metrics, prepare_campaign, retention_flags
from segkit.cli import EXIT_OK, main
from segkit.core.config import load_config
from segkit.core.errors import DataError
from segkit.data.auditfacts import CHECKS
from segkit.data.engine import (
    TransactionLog,
    behaviour_table_from_files,
    order_table_from_files,
    purchase_days_from_files,
    retention_flags_from_files,
    rfm_with_info_from_files,
)
from segkit.data.io import load_table
from segkit.data.orders import order_table, purchase_days, purchase_orders, rfm_table
from segkit.features import customer_table
from segkit.report.runinfo import input_files
from segkit.steps.pipeline import NOTEBOOKS

from run_helpers import make_notebook, tiny_inputs

TX_CSV = ("customer_id,order_date,order_id,product_id,quantity,unit_price\n"
          "a,2024-01-02 10:00,1001,P1,2,10\n"
          "a,2024-01-10 10:00,C1002,P1,-1,10\n"     # a cancellation invoice: a returned item ...
          "a,2024-01-10 10:00,C1002,POST,1,15\n"    # ... and a postage line: nets +5
          "b,2024-01-05 10:00,1003,P2,1,20\n"
          "b,2024-01-20 10:00,1004,P2,1,20\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def both_audits(tmp_path: Path, customers: pd.DataFrame | None = None, campaign: pd.DataFrame | None = None,
                as_of: str | None = None):
    """The pandas and the DuckDB audit of TX_CSV with these customers / campaign tables."""
    path = tmp_path / "tx.csv"
    path.write_text(TX_CSV)
    config = load_config()
    pandas = run_audit({"transactions": load_table(path, "transactions"), "customers": customers,
                        "campaign": campaign}, as_of=as_of, config=config)
    with TransactionLog(path, config) as log:
        duck = audit_log(log, as_of, customers=customers, campaign=campaign)
    assert_frame_equal(pandas.findings, duck.findings)
    assert_frame_equal(pandas.cleaning_rules, duck.cleaning_rules)
    assert_frame_equal(pandas.customers, duck.customers)
    if campaign is not None:
        assert_frame_equal(pandas.campaign, duck.campaign)
    return pandas, duck


def finding(result, check: str) -> dict:
    rows = result.findings[result.findings["check"] == check]
    assert len(rows) == 1, f"no single {check} finding in {result.findings['check'].tolist()}"
    return rows.iloc[0].to_dict()


# ----------------------------------------------------------------------------- campaign revenue
def campaign_frame(revenue: list[float]) -> pd.DataFrame:
    """Two e-mail recipients and one control customer, all converting, with these revenues."""
    return pd.DataFrame({
        "campaign_id": pd.array(["x"] * 3, dtype="string"), "customer_id": pd.array(["a", "b", "c"], dtype="string"),
        "arm": pd.array(["email", "email", "control"], dtype="string"),
        "converted": pd.array([True, True, True], dtype="boolean"), "revenue": revenue,
    })


def test_negative_campaign_revenue_is_a_finding_naming_rows_and_what_segkit_does(tmp_path):
    customers = pd.DataFrame({"customer_id": pd.array(["a", "b", "c"], dtype="string")})
    pandas, _ = both_audits(tmp_path, customers=customers, campaign=campaign_frame([30.0, -40.0, 10.0]))
    found = finding(pandas, "negative_campaign_revenue")
    assert (found["table"], found["severity"], found["count"]) == ("campaign", "warning", 1)
    assert "1 of them on converting rows" in found["message"]
    assert "left out of revenue per recipient" in found["message"]
    assert found["examples"].startswith("row 3: ") and "revenue=-40" in found["examples"]
    assert pandas.campaign["revenue"].tolist() == [30.0, -40.0, 10.0]  # kept as given


def test_negative_campaign_revenue_is_unknown_not_money_in_the_revenue_metrics():
    prepared = prepare_campaign(campaign_frame([30.0, -40.0, 10.0]))
    assert np.isnan(prepared["revenue"].iloc[1])
    metrics = arm_metrics(prepared).query("metric == 'revenue_per_recipient'").set_index("arm")
    # the mean of the known revenue (30), not (30 - 40) / 2 and not (30 + 0) / 2
    assert (metrics.loc["email", "value"], metrics.loc["email", "n"]) == (pytest.approx(30.0), 1)
    # a campaign whose only non-zero revenue is negative records no revenue at all
    assert prepare_campaign(campaign_frame([0.0, -40.0, 0.0]))["revenue"].isna().all()


# ----------------------------------------------------------------------------- customers
def test_signups_after_as_of_for_everyone_are_a_finding_that_says_check_as_of(tmp_path):
    customers = pd.DataFrame({"customer_id": pd.array(["a", "b", "c"], dtype="string"),
                              "signup_date": pd.to_datetime(["2030-01-01", "2030-02-01", None])})
    pandas, _ = both_audits(tmp_path, customers=customers, as_of="2024-02-01")
    found = finding(pandas, "signup_after_as_of")
    assert (found["table"], found["severity"], found["count"]) == ("customers", "warning", 2)
    assert "as_of = 2024-02-01" in found["message"]
    assert "every customer with a signup date, so as_of or the date format is probably wrong" in found["message"]
    assert "signup_date=2030-01-01" in found["examples"]
    assert "run.as_of" in CHECKS["signup_after_as_of"][1] and "io.date_format" in CHECKS["signup_after_as_of"][1]
    # kept as given: a run with an earlier as_of sees later signups
    assert pandas.customers.set_index("customer_id")["signup_date"].notna().sum() == 2


def test_a_few_later_signups_do_not_claim_that_as_of_is_wrong(tmp_path):
    customers = pd.DataFrame({"customer_id": pd.array(["a", "b", "c"], dtype="string"),
                              "signup_date": pd.to_datetime(["2023-01-01", "2024-03-01", "2023-06-01"])})
    pandas, _ = both_audits(tmp_path, customers=customers, as_of="2024-02-01")
    found = finding(pandas, "signup_after_as_of")
    assert found["count"] == 1 and "probably wrong" not in found["message"]


def test_implausible_birth_years_are_a_finding_and_unknown_in_customers_clean_on_both_engines(tmp_path):
    customers = pd.DataFrame({"customer_id": pd.array(["a", "b", "c", "d"], dtype="string"),
                              "birth_year": pd.array([1800, 2100, 1990, None], dtype="Int64")})
    pandas, duck = both_audits(tmp_path, customers=customers, as_of="2024-02-01")
    found = finding(pandas, "implausible_birth_year")
    assert (found["table"], found["severity"], found["count"]) == ("customers", "warning", 2)
    assert "outside 1914–2014" in found["message"] and "treated as unknown" in found["message"]
    first, second = found["examples"].split("; ")
    assert first.startswith("row 2: customer_id=c-") and first.endswith(", birth_year=1800")
    assert second.startswith("row 3: customer_id=c-") and second.endswith(", birth_year=2100")
    for result in (pandas, duck):
        years = result.customers.set_index("customer_id")["birth_year"]
        assert years.isna().to_dict() == {"a": True, "b": True, "c": False, "d": True}
        rules = result.cleaning_rules.set_index("rule")
        assert rules.loc["implausible birth years emptied (unknown)", "rows_affected"] == 2


def test_the_birth_year_range_is_configurable(tmp_path):
    customers = pd.DataFrame({"customer_id": pd.array(["a"], dtype="string"),
                              "birth_year": pd.array([2012], dtype="Int64")})
    tx = load_table(_write(tmp_path / "tx.csv", TX_CSV), "transactions")
    strict = load_config(overrides={"audit": {"birth_year_min_age": 16}})
    result = run_audit({"transactions": tx, "customers": customers}, as_of="2024-02-01", config=strict)
    assert finding(result, "implausible_birth_year")["count"] == 1
    assert "implausible_birth_year" not in run_audit({"transactions": tx, "customers": customers},
                                                     as_of="2024-02-01").findings["check"].tolist()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- byte-order marks
TEXT = "customer_id,order_date,amount\nKöln-1,2024-01-01,10\nb,2024-01-02,5\n"
MARKED = {
    "utf-8": codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    "utf-16-le": codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    "utf-16-be": codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
    "utf-32-le": codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"),
    "utf-32-be": codecs.BOM_UTF32_BE + TEXT.encode("utf-32-be"),
}


@pytest.mark.parametrize("encoding", list(MARKED))
def test_a_file_with_a_byte_order_mark_is_read_in_its_encoding_by_both_engines(tmp_path, encoding):
    path = tmp_path / "tx.csv"
    path.write_bytes(MARKED[encoding])
    before = sha256(path)
    tx = load_table(path, "transactions")
    assert tx["customer_id"].tolist() == ["Köln-1", "b"] and tx["amount"].tolist() == [10.0, 5.0]
    assert list(tx.attrs["columns"]) == ["customer_id", "order_date", "amount"]
    with TransactionLog(path, load_config()) as log:
        audit_log(log)
        clean = pd.read_parquet(log.write_clean(tmp_path / "clean.parquet"))
    assert clean["customer_id"].tolist() == ["Köln-1", "b"] and clean["amount"].tolist() == [10.0, 5.0]
    assert sha256(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["clean.parquet", "tx.csv"]


def test_a_byte_order_mark_that_contradicts_io_encoding_says_which_to_set(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes(MARKED["utf-16-le"])
    with pytest.raises(DataError, match=r"tx.csv: starts with a UTF-16 LE byte-order mark.*io.encoding is "
                                        r"'latin-1'.*Remove io.encoding"):
        load_table(path, "transactions", io_options={"encoding": "latin-1"})


def test_utf16_without_a_byte_order_mark_asks_for_io_encoding_instead_of_suggesting_latin1(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes(TEXT.encode("utf-16-le"))
    with pytest.raises(DataError, match="looks like UTF-16 or UTF-32 text") as err:
        load_table(path, "transactions")
    assert "latin-1" not in str(err.value) and "'utf-16-le'" in str(err.value)
    assert load_table(path, "transactions", io_options={"encoding": "utf-16-le"})["amount"].tolist() == [10.0, 5.0]


# ----------------------------------------------------------------------------- Excel sheets
def test_a_workbook_whose_first_sheet_is_a_readme_names_its_sheets_and_the_sheet_to_set(tmp_path):
    path = tmp_path / "orders.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"Notes": ["Export of 2024-02-01"]}).to_excel(book, sheet_name="README", index=False)
        pd.DataFrame({"customer_id": ["a"], "order_date": ["2024-01-01"], "amount": [1.0]}).to_excel(
            book, sheet_name="orders", index=False)
    with pytest.raises(DataError) as err:
        load_table(path, "transactions")
    message = str(err.value)
    assert "sheet 'README' was read (io.sheet_name = 0 (the first sheet)" in message
    assert "the workbook's sheets are 'README', 'orders'" in message
    assert "Sheet 'orders' has the transactions columns: set io.sheet_name: 'orders'" in message
    assert load_table(path, "transactions", io_options={"sheet_name": "orders"})["amount"].tolist() == [1.0]


def test_a_workbook_without_any_sheet_with_the_columns_says_so(tmp_path):
    path = tmp_path / "orders.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"Notes": ["x"]}).to_excel(book, sheet_name="README", index=False)
        pd.DataFrame({"Other": ["y"]}).to_excel(book, sheet_name="Sheet2", index=False)
    with pytest.raises(DataError, match="No sheet has them: set io.sheet_name"):
        load_table(path, "transactions")


# ----------------------------------------------------------------------------- cancellation invoices
@pytest.fixture
def cancelled(tmp_path):
    """TX_CSV audited (pandas lines in memory) and written clean by the DuckDB engine."""
    path = _write(tmp_path / "tx.csv", TX_CSV)
    config = load_config()
    clean = run_audit({"transactions": load_table(path, "transactions")}, config=config).transactions
    with TransactionLog(path, config) as log:
        audit_log(log)
        on_disk = log.write_clean(tmp_path / "clean.parquet")
    assert_frame_equal(pd.read_parquet(on_disk), clean)
    assert clean.loc[clean["order_id"] == "C1002", "is_return"].all()
    return clean, on_disk


def test_a_cancellation_invoice_that_nets_positive_is_never_a_purchase_on_either_engine(cancelled):
    clean, on_disk = cancelled
    expected = {"1001": True, "C1002": False, "1003": True, "1004": True}
    assert dict(zip(order_table(clean)["order_id"], order_table(clean)["is_purchase"])) == expected
    assert_frame_equal(order_table_from_files(on_disk), order_table(clean))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rfm = rfm_table(clean, as_of="2024-02-01")
    duck_rfm, info = rfm_with_info_from_files(on_disk, as_of="2024-02-01")
    assert rfm.set_index("customer_id")["frequency"].to_dict() == {"a": 1, "b": 2}
    assert rfm.set_index("customer_id")["monetary_total"].to_dict() == {"a": 25.0, "b": 40.0}  # net keeps it
    assert_frame_equal(duck_rfm, rfm)
    assert (info["purchase_orders"], info["non_purchase_orders"], info["cancellation_documents"]) == (3, 0, 1)
    days = purchase_days(purchase_orders(clean))
    assert days["order_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-05", "2024-01-20"]
    assert_frame_equal(purchase_days_from_files(on_disk), days)


def test_features_and_campaign_retention_do_not_count_a_cancellation_invoice_as_a_purchase(cancelled):
    clean, on_disk = cancelled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = customer_table(clean, as_of="2024-02-01").set_index("customer_id")
    behaviour = behaviour_table_from_files(on_disk, "2024-02-01").set_index("customer_id")
    # C1002 takes back the P1 of order 1001 (kept 10.00); its postage stays with the document
    assert features.loc["a", ["frequency", "aov"]].tolist() == [1, 10.0]
    assert np.isnan(features.loc["a", "median_days_between_orders"])
    assert_frame_equal(behaviour[features.columns.intersection(behaviour.columns)],
                       features[features.columns.intersection(behaviour.columns)], check_dtype=False)
    sends = pd.DataFrame({"campaign_id": ["x", "x"], "customer_id": ["a", "b"],
                          "sent_at": pd.to_datetime(["2024-01-08", "2024-01-08"])})
    assert retention_flags(sends, clean, days=5, as_of="2024-02-01").tolist() == [0.0, 0.0]
    assert retention_flags_from_files(sends, on_disk, days=5, as_of="2024-02-01").tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- control characters
CONTROL_TX = ("customer_id,order_date,order_id,product_id,category,quantity,unit_price\n"
              "C\x00000002,2024-01-02,1,P\x011,Shoes \u202eevil,1,10\n"   # NUL in an id, SOH, RTL override
              "C000002,2024-01-03,2,P1,Shoes,1,10\n"
              "C000003,2024-01-04,3,P2,\x00,1,10\n"                      # nothing left but the NUL: empty
              "C000004,2024-01-05,4,P2,Bags\u2066x\u2069,1,10\n"        # bidi isolates
              "C000005,2024-01-06,5,P2,Tab\there,1,10\n")                # a tab is whitespace: kept
CONTROL_CUSTOMERS = "customer_id,country\nC\x00000002,DE\nC000002,FR\nC000003,\u202eFR\n"


def test_control_characters_are_reported_escaped_and_removed_the_same_on_both_engines(tmp_path):
    tx_path, cu_path = tmp_path / "tx.csv", tmp_path / "customers.csv"
    tx_path.write_bytes(CONTROL_TX.encode())
    cu_path.write_bytes(CONTROL_CUSTOMERS.encode())
    config = load_config()
    customers = load_table(cu_path, "customers")
    pandas = run_audit({"transactions": load_table(tx_path, "transactions"), "customers": customers,
                        "campaign": None}, config=config)
    with TransactionLog(tx_path, config) as log:
        duck = audit_log(log, None, customers=customers)
        log.write_clean(tmp_path / "clean.parquet")
    assert_frame_equal(pandas.findings, duck.findings)
    assert_frame_equal(pandas.cleaning_rules, duck.cleaning_rules)
    assert_frame_equal(pandas.checks, duck.checks)
    assert_frame_equal(pandas.customers, duck.customers)
    assert list(pandas.offending) == list(duck.offending)
    for key in pandas.offending:
        assert_frame_equal(pandas.offending[key], duck.offending[key])

    found = pandas.findings[pandas.findings["check"] == "control_characters"]
    by_column = {(r["table"], r["message"].split("'")[1]): r for r in found.to_dict("records")}
    assert {k: v["count"] for k, v in by_column.items()} == {
        ("transactions", "customer_id"): 1, ("transactions", "product_id"): 1, ("transactions", "category"): 3,
        ("customers", "customer_id"): 1, ("customers", "country"): 1}
    assert set(found["severity"]) == {"warning"}
    assert by_column[("transactions", "category")]["examples"] == (
        "row 2: category=Shoes \\u202eevil; row 4: category=\\x00; row 5: category=Bags\\u2066x\\u2069")
    assert by_column[("transactions", "product_id")]["examples"] == "row 2: product_id=P\\x011"
    assert "1 distinct id(s) equal an id already in this column" in by_column[("transactions", "customer_id")]["message"]
    assert "duplicate_customer_ids reports" in by_column[("customers", "customer_id")]["message"]
    assert "equal an id" not in by_column[("customers", "country")]["message"]
    assert pandas.findings.set_index("check").loc["duplicate_customer_ids", "count"] == 1  # C\x00000002 = C000002
    rules = pandas.cleaning_rules.set_index(["rule", "table"])["rows_affected"]
    assert rules[("control characters removed from ids and text", "transactions")] == 3
    assert rules[("control characters removed from ids and text", "customers")] == 2
    assert "control_characters" in CHECKS

    on_disk = pd.read_parquet(tmp_path / "clean.parquet")
    for clean in (pandas.transactions, on_disk):
        assert clean["customer_id"].tolist() == ["C000002", "C000002", "C000003", "C000004", "C000005"]
        assert clean["product_id"].tolist() == ["P1", "P1", "P2", "P2", "P2"]
        assert clean["category"].fillna("<NA>").tolist() == ["Shoes evil", "Shoes", "<NA>", "Bagsx", "Tab\there"]
    assert pandas.customers.set_index("customer_id")["country"].fillna("<NA>").to_dict() == {
        "C000002": "DE", "C000003": "FR", "C000004": "<NA>", "C000005": "<NA>"}


def test_clean_text_gives_no_control_character_finding_nor_rule_rows(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(TX_CSV)
    result = run_audit({"transactions": load_table(path, "transactions")})
    assert "control_characters" not in set(result.findings["check"])
    assert result.cleaning_rules.set_index("rule").loc["control characters removed from ids and text",
                                                       "rows_affected"] == 0


# --------------------------------------------------------------------------- file names with wildcards
def test_a_run_takes_inputs_whose_names_hold_wildcards_as_those_files_and_run_json_lists_them(tmp_path, monkeypatch):
    """The issue's reproduction: ``campaign[1].csv`` failed after all notebooks had run, and
    ``orders (2024) [final].csv`` was refused at once, although both files exist."""
    folder = tmp_path / "notebooks"
    for name in NOTEBOOKS:
        make_notebook(folder, name, "x = 1")
    monkeypatch.setattr("segkit.report.runner.default_notebooks_dir", lambda: folder)
    monkeypatch.chdir(tmp_path)
    data = tiny_inputs(tmp_path / "br")
    tx = data["transactions"].rename(tmp_path / "br" / "orders (2024) [final].csv")
    customers = data["customers"].rename(tmp_path / "br" / "customers*.csv")
    (tmp_path / "words").mkdir()
    campaign = tmp_path / "words" / "campaign[1].csv"
    campaign.write_text("campaign_id,customer_id,arm\nk,C000001,treatment\nk,C000002,control\n")
    (tmp_path / "words" / "campaign1.csv").write_text("campaign_id,customer_id,arm\nother,C000001,treatment\n")
    out = tmp_path / "run"
    code = main(["run", "--transactions", str(tx), "--customers", str(customers), "--campaign", str(campaign),
                 "--out", str(out), "--quiet"])
    assert code == EXIT_OK
    inputs = json.loads((out / "run.json").read_text())["inputs"]
    assert {table: (Path(info["path"]), info["sha256"]) for table, info in inputs.items()} == {
        "transactions": (tx.resolve(), sha256(tx)), "customers": (customers.resolve(), sha256(customers)),
        "campaign": (campaign.resolve(), sha256(campaign))}
    assert sorted(p.name for p in tmp_path.iterdir() if ".building-" in p.name) == []


def test_run_json_records_an_input_it_cannot_read_instead_of_failing_the_finished_run(tmp_path):
    """run.json is written after the notebooks: an input moved away meanwhile is recorded, not
    raised; only the transactions may be a glob of files."""
    (tmp_path / "a1.csv").write_text("x\n1\n")
    info = input_files({"transactions": str(tmp_path / "a*.csv"), "campaign": str(tmp_path / "a*.csv"),
                        "customers": str(tmp_path / "gone[1].csv")})
    assert [Path(f["path"]).name for f in info["transactions"]["files"]] == ["a1.csv"]
    assert info["campaign"] == {"path": str(tmp_path / "a*.csv"), "size": None, "sha256": None,
                                "error": "file not found"}
    assert info["customers"]["error"] == "file not found"
