"""Issue 16: one set of headline numbers (net revenue, purchase orders apart from cancellation documents,
buyers, customers who kept nothing, prospects, guests) in notebooks 01-05 and index.html, whatever the
engine; identical lines without order ids as a config choice; money to cents in customer_segments.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from segkit.audit import run_audit
from segkit.core.config import load_config
from segkit.core.errors import ConfigError
from segkit.data.datasets import generate_shop, load_cdnow, write_sample
from segkit.data.engine import OrderLines
from segkit.report.index import render_index
from segkit.steps import audit as step_audit
from segkit.steps import campaign as step_campaign
from segkit.steps import cluster as step_cluster
from segkit.steps import lifecycle as step_lifecycle
from segkit.steps import rfm as step_rfm
from segkit.steps.headline import headline_items, headline_sentence
from segkit.steps.pipeline import open_run, summary_markdown
from tests.run_helpers import shop_config

STEPS = (("01_data_audit", step_audit), ("02_rfm", step_rfm), ("03_clustering", step_cluster),
         ("04_lifecycle", step_lifecycle), ("05_campaign_evaluation", step_campaign))


def _lines(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "product_id", "quantity",
                                        "unit_price"])
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    frame["amount"] = frame["quantity"] * frame["unit_price"]
    return frame


# An Online-Retail-like log: C invoices carry no reference to the order they cancel.
RETAIL = _lines([
    ("a", "1", "2024-01-02 10:00", "P1", 2.0, 10.0),   # a: kept purchase (20)
    ("a", "2", "2024-01-05 10:00", "P2", 1.0, 50.0),   # a: bought 50 ...
    ("a", "C2", "2024-01-05 10:12", "P2", -1.0, 50.0),  # ... and cancelled it 12 minutes later: not a purchase
    ("b", "3", "2024-01-03 09:00", "P1", 4.0, 10.0),   # b: bought 40 ...
    ("b", "C3", "2024-01-04 09:00", "P1", -4.0, 10.0),  # ... and cancelled all: kept nothing, not a buyer
    ("c", "C9", "2024-01-02 12:00", "P3", -1.0, 7.5),  # c: only a cancellation (of an order before the data)
    ("d", "4", "2024-01-06 08:00", "P4", 1.0, 0.0),    # d: a free item only (zero value)
    ("e", "5", "2024-01-07 08:00", "P1", 3.0, 10.0),   # e: bought 30, returned 1 unit: kept 20
    ("e", "C5", "2024-01-08 08:00", "P1", -1.0, 10.0),
    (None, "6", "2024-01-07 09:00", "P1", 1.0, 10.0),  # a guest line, exported twice
    (None, "6", "2024-01-07 09:00", "P1", 1.0, 10.0),
])
CUSTOMERS = pd.DataFrame({"customer_id": list("abcdef")})  # f: a prospect without any order line


def test_the_headline_counts_kept_purchase_orders_cancellation_documents_and_customers_apart():
    result = run_audit({"transactions": RETAIL, "customers": CUSTOMERS})
    assert result.headline == {
        "currency": "EUR",
        "net_revenue": 32.5,  # 20 + 50 - 50 + 40 - 40 - 7.5 + 0 + 30 - 10
        "orders_total": 9, "purchase_orders": 2,  # a's order 1 and e's order 5
        "cancelled_orders": 2,  # a's order 2, b's order 3
        "cancellation_documents": 4,  # C2, C3, C9, C5: never orders of their own
        "other_orders": 1,  # d's free item
        "customers": 6, "buyers": 2, "customers_kept_nothing": 1, "customers_only_returns": 2, "prospects": 1,
        "guest_lines": 1, "guest_revenue": 10.0,
        "unmatched_documents": 1, "unmatched_value": -7.5,  # c's C9: no purchase of P3 in the data
    }
    assert result.summary()["headline"] == result.headline
    sentence = headline_sentence(result.headline)
    assert ("1 cancellation document matched no purchase line in the data (an order placed before the data starts, "
            "another product or price, a refund of an amount only): EUR -7.50 deducted from those customers' totals "
            "as a whole") in sentence
    assert headline_items(result.headline)["Unmatched cancellation documents"] == 1


def test_the_headline_of_the_lines_is_the_same_from_a_frame_and_from_the_clean_parquet_file(tmp_path):
    clean = run_audit({"transactions": RETAIL}).transactions
    path = tmp_path / "transactions_clean.parquet"
    clean.to_parquet(path, index=False)
    from_frame, from_file = OrderLines(clean).headline(), OrderLines(path).headline()
    assert from_frame == from_file
    assert (from_file["purchase_orders"], from_file["cancellation_documents"], from_file["buyers"]) == (2, 4, 2)


def test_the_guest_finding_says_how_many_rows_the_cleaning_rule_removed_after_exact_duplicates():
    result = run_audit({"transactions": RETAIL, "customers": CUSTOMERS})
    guests = result.findings.set_index("check").loc["guest_checkouts"]
    assert guests["count"] == 2  # input rows without customer id, the duplicate included
    assert guests["message"] == (
        "Rows without customer id (guest checkouts): 2 (18.2%); 20.00 revenue; dropped from the customer analyses. "
        "Once exact duplicates are removed, 1 rows (10.00): the guest cleaning rule's count and the headline's "
        "guest lines.")
    rules = result.cleaning_rules.set_index("rule")["rows_affected"]
    assert rules["rows without customer id (guest checkouts)"] == 1 == result.headline["guest_lines"]


def test_the_headline_sentence_and_table_state_money_to_the_cent_with_the_currency():
    headline = run_audit({"transactions": RETAIL, "customers": CUSTOMERS}).headline
    assert headline_sentence(headline) == (
        "Net revenue EUR 32.50 (returns and cancellations deducted) from 2 purchase orders; 4 cancellation or return "
        "documents, 2 fully cancelled orders and 1 order with zero or negative value are not purchases. "
        "1 cancellation document matched no purchase line in the data (an order placed before the data starts, "
        "another product or price, a refund of an amount only): EUR -7.50 deducted from those customers' totals as a "
        "whole, not from an order (a best match by product and price pairs the others). "
        "6 customers: 2 buyers, 1 who kept nothing (all cancelled or returned), 2 with order lines but no purchase "
        "(only returns, cancellations or zero-value orders), 1 prospect (no order line). 1 guest line without "
        "customer id (EUR 10.00) is left out of the customer analyses.")
    assert headline_items({**headline, "currency": "GBP", "net_revenue": 1934530.0100000002})[
        "Net revenue (GBP)"] == 1934530.01


# ------------------------------------------------------------------ one headline in every notebook and the index
@pytest.fixture(scope="module")
def shop_folder(tmp_path_factory):
    """The generator's shop plus planted cancellations: a customer whose only order a C invoice cancels
    in full, and one with only a cancellation."""
    folder = tmp_path_factory.mktemp("headline_shop")
    shop = generate_shop(n_customers=400, seed=11)
    write_sample(folder, shop)
    tx = pd.read_csv(folder / "transactions.csv", dtype=str)
    first = tx.iloc[0].to_dict()
    planted = []
    for customer, order, amount, when in (("ZZ-CANCELLED", "ZZ1", "80.00", "2024-03-01 10:00:00"),
                                          ("ZZ-CANCELLED", "CZZ1", "-80.00", "2024-03-01 10:30:00"),
                                          ("ZZ-ONLY-RETURN", "CZZ2", "-15.00", "2024-03-02 10:00:00")):
        row = dict(first, customer_id=customer, order_id=order, order_date=when)
        for col, value in (("amount", amount), ("quantity", "-1" if amount.startswith("-") else "1"),
                           ("unit_price", amount.lstrip("-")), ("product_id", "ZZP")):
            if col in row:
                row[col] = value
        planted.append(row)
    pd.concat([tx, pd.DataFrame(planted)], ignore_index=True).to_csv(folder / "transactions.csv", index=False)
    return folder


def _run_with_summaries(folder, tmp_path, kind: str):
    config = shop_config(folder, tmp_path, kind)
    run = tmp_path / f"run_{kind}"
    summaries = {}
    for notebook, step in STEPS:
        ctx = open_run(notebook, run_dir=run, config_path=config)
        producer = next(getattr(step, name) for name in step.__all__ if name.startswith("build_"))
        summary = step.summarize(producer(ctx))
        summaries[notebook] = ctx.record_summary(**summary)
    audit = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    return run, summaries, audit


@pytest.mark.slow
def test_every_notebook_summary_and_the_index_show_one_headline_whatever_the_engine(shop_folder, tmp_path):
    runs = {kind: _run_with_summaries(shop_folder, tmp_path, kind) for kind in ("pandas", "duckdb")}
    headlines = {kind: audit["headline"] for kind, (_, _, audit) in runs.items()}
    assert headlines["pandas"] == headlines["duckdb"]
    headline = headlines["duckdb"]
    assert headline["customers_kept_nothing"] >= 1 and headline["customers_only_returns"] >= 1
    sentence = headline_sentence(headline)
    for kind, (run, summaries, audit) in runs.items():
        assert audit["engine"] == kind
        for notebook, summary in summaries.items():
            on_disk = json.loads((run / "summaries" / f"{notebook}.json").read_text())
            assert on_disk["headline"] == headline, (kind, notebook)
            assert sentence in summary_markdown(on_disk).replace("\\", "")
        # the numbers each notebook states itself agree with the headline
        assert summaries["01_data_audit"]["headlines"]["Buyers"] == headline["buyers"]
        assert summaries["01_data_audit"]["headlines"]["Purchase orders"] == headline["purchase_orders"]
        assert summaries["02_rfm"]["headlines"]["Buying customers"] == headline["buyers"]
        assert summaries["03_clustering"]["headlines"]["Customers clustered"] == headline["buyers"]
        assert summaries["04_lifecycle"]["headlines"]["Buyers"] == headline["buyers"]
        assert f"{headline['purchase_orders']:,} purchase orders" in summaries["02_rfm"]["analysed"]
        record = {"status": "ok", "run": {"name": kind}, "as_of": audit["as_of"], "seed": 7, "inputs": {},
                  "notebooks": [{"name": n, "status": "ok"} for n in summaries]}
        page = render_index(record, summaries, audit)
        assert page.count("<h2>Headline numbers</h2>") == 1
        assert f"<p>{sentence}</p>" in page.replace("&#x27;", "'")
        # money in the export to the cent
        segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype=str)
        for col in ("monetary_total", "monetary_avg", "clv_12m"):
            decimals = segments[col].dropna().str.partition(".")[2].str.len()
            assert decimals.max() <= 2 and not segments[col].str.contains("e", na=False).any(), col
    assert ((runs["pandas"][0] / "artifacts" / "customer_segments.csv").read_bytes()
            == (runs["duckdb"][0] / "artifacts" / "customer_segments.csv").read_bytes())


# ------------------------------------------------------------------ money to cents in customer_segments.csv
def test_customer_segments_money_columns_are_written_to_cents_and_parquet_keeps_full_precision(tmp_path):
    ctx = open_run("02_rfm", run_dir=tmp_path)
    ctx.update_customer_segments(pd.DataFrame({
        "customer_id": ["a", "b", "c"], "monetary_total": [4.547473509e-13, 1379.8378125, -0.001],
        "monetary_avg": [21.98666667, 0.1 + 0.2, 5.0], "p_alive": [0.4740851317, 0.5, 1.0]}))
    ctx.update_customer_segments(pd.DataFrame({"customer_id": ["a", "b", "c"], "clv_12m": [170.407254, None, 2.5]}))
    text = (tmp_path / "artifacts" / "customer_segments.csv").read_text()
    assert text.splitlines() == ["customer_id,monetary_total,monetary_avg,p_alive,clv_12m",
                                 "a,0,21.99,0.4740851317,170.41",
                                 "b,1379.84,0.3,0.5,",
                                 "c,0,5,1,2.5"]


# ------------------------------------------------------------------ identical lines without order ids
CDNOW_LIKE = pd.DataFrame({  # CDNOW's layout: customer, day, CDs, dollars; no order id
    "customer_id": ["00001", "00001", "00001", "00002", "00002", "00003"],
    "order_date": pd.to_datetime(["1997-01-01", "1997-01-01", "1997-01-01", "1997-02-03", "1997-02-03",
                                  "1997-03-01"]),
    "quantity": [1.0, 1.0, 1.0, 2.0, 2.0, 1.0],
    "amount": [11.77, 11.77, 11.77, 29.33, 29.33, 12.0],
})


def _config(choice: str | None = None):
    return load_config(overrides={"audit": {"identical_lines_without_order_id": choice}} if choice else None)


def test_identical_lines_without_order_ids_are_kept_by_default_as_repeat_purchases_and_reported():
    result = run_audit({"transactions": CDNOW_LIKE})
    found = result.findings.set_index("check")
    assert "exact_duplicates" not in found.index
    assert found.loc["identical_lines_without_order_id", "severity"] == "info"
    assert found.loc["identical_lines_without_order_id", "message"] == (
        "Identical lines without order id: 3 (50.0%); 2 customers, worth 52.87; kept, each a purchase of its own "
        "(audit.identical_lines_without_order_id: keep: without an order id an identical line may be a repeat "
        "purchase); set it to drop if they are a doubled export, and they are removed as exact duplicates, "
        "the first copy kept.")
    assert len(result.transactions) == 6 and result.headline["net_revenue"] == 105.97
    rules = result.cleaning_rules.set_index("rule")["rows_affected"]
    assert rules["identical lines without order id kept (repeat purchases)"] == 3
    assert rules["exact duplicate rows"] == 0


def test_identical_lines_without_order_ids_are_dropped_as_exact_duplicates_when_configured():
    result = run_audit({"transactions": CDNOW_LIKE}, config=_config("drop"))
    found = result.findings.set_index("check")
    assert found.loc["exact_duplicates", "count"] == 3
    assert found.loc["identical_lines_without_order_id", "message"].startswith(
        "Identical lines without order id: 3 (50.0%); 2 customers, worth 52.87; dropped as exact duplicates, "
        "the first copy kept (audit.identical_lines_without_order_id: drop)")
    assert result.transactions["amount"].tolist() == [11.77, 29.33, 12.0]
    assert result.headline["net_revenue"] == 53.1


def test_with_order_ids_exact_duplicates_are_dropped_whatever_the_choice():
    with_ids = CDNOW_LIKE.assign(order_id=["1", "1", "1", "2", "2", "3"])
    for choice in ("keep", "drop"):
        result = run_audit({"transactions": with_ids}, config=_config(choice))
        found = result.findings.set_index("check")
        assert found.loc["exact_duplicates", "count"] == 3 and "identical_lines_without_order_id" not in found.index
        assert len(result.transactions) == 3


def test_an_unknown_choice_for_identical_lines_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r"audit.identical_lines_without_order_id = 'merge'; use keep"):
        run_audit({"transactions": CDNOW_LIKE}, config=_config("merge"))


def test_the_real_cdnow_master_without_order_ids_has_255_identical_lines_of_164_customers():
    master = load_cdnow("master").drop(columns="order_id")
    kept = run_audit({"transactions": master})
    message = kept.findings.set_index("check").loc["identical_lines_without_order_id", "message"]
    assert message.startswith("Identical lines without order id: 255 (0.4%); 164 customers, worth 4,332.88; kept")
    assert kept.counts["transactions_rows_clean"] == 69_659
    dropped = run_audit({"transactions": master}, config=_config("drop"))
    assert dropped.counts["transactions_rows_clean"] == 69_659 - 255
    assert round(kept.headline["net_revenue"] - dropped.headline["net_revenue"], 2) == 4332.88
