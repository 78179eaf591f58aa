"""Tests of segkit.data.online_retail (the Online-Retail-like export with planted truth) and of the
real CDNOW master log: the fixture plants what it says, deterministically, and segkit runs on it."""

from __future__ import annotations

import json
import shutil
import sys

import holidays
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.core.config import load_config, project_root
from segkit.core.errors import ConfigError, DataError
from segkit.data.datasets import load_cdnow, main
from segkit.data.io import load_inputs
from segkit.data.online_retail import (
    CUSTOMER_TYPES,
    HUGE_ORDER_CANCEL_MINUTES,
    OnlineRetailExport,
    generate_online_retail,
    write_online_retail,
)
from tests.run_helpers import segkit_cli

CONFIG = project_root() / "data" / "configs" / "online_retail_ii.yml"
N_CUSTOMERS, SEED = 1500, 7


@pytest.fixture(scope="module")
def export() -> OnlineRetailExport:
    return generate_online_retail(N_CUSTOMERS, seed=SEED)


@pytest.fixture(scope="module")
def matched(export) -> pd.DataFrame:
    """Each cancellation line that cancels an exported purchase line, beside that purchase line."""
    truth = export.line_truth
    cancel = truth[(truth["kind"] == "cancellation") & truth["cancels_row"].notna()]
    lines = export.lines
    return pd.concat([lines.loc[cancel.index].reset_index(names="row"),
                      lines.loc[cancel["cancels_row"].astype(int)].reset_index(names="row").add_suffix("_bought")],
                     axis=1)


# --------------------------------------------------------------------------- cancellations


def test_cancellations_are_separate_c_invoices_with_negative_quantities_that_name_no_order(export):
    lines, truth = export.lines, export.line_truth
    on_c = lines["Invoice"].str.startswith("C")
    assert (lines.loc[on_c, "Quantity"] < 0).all()
    assert set(truth.loc[on_c, "kind"]) == {"cancellation", "discount", "manual_refund"}
    # a C invoice is its own document: its number is never the number of the invoice it cancels
    cancel = truth[truth["kind"] == "cancellation"]
    assert (cancel["invoice"].str[1:] != cancel["cancels_invoice"]).all()
    assert export.planted["cancellation_invoices"] == lines.loc[on_c, "Invoice"].nunique() > 100


def test_each_matched_cancellation_takes_back_part_or_all_of_an_earlier_line_of_the_same_customer(matched):
    m = matched
    assert len(m) > 300
    assert (m["Customer ID"] == m["Customer ID_bought"]).all()
    assert (m["StockCode"] == m["StockCode_bought"]).all() and (m["Price"] == m["Price_bought"]).all()
    assert ((-m["Quantity"] <= m["Quantity_bought"]) & (m["Quantity_bought"] > 0)).all()
    assert (-m["Quantity"] < m["Quantity_bought"]).any()  # some take back only part of a line
    lag = m["InvoiceDate"] - m["InvoiceDate_bought"]
    assert (lag > pd.Timedelta(0)).all()
    assert (lag <= pd.Timedelta(hours=2)).mean() > 0.3  # minutes later ...
    assert (lag >= pd.Timedelta(days=14)).sum() > 20    # ... or weeks later


def test_fully_and_partially_cancelled_orders_net_to_what_their_lines_say(export):
    lines, truth, orders = export.lines, export.line_truth, export.orders
    value = lines["Quantity"] * lines["Price"]
    purchase = truth["kind"].isin(["purchase", "postage", "manual", "bank_charges", "free_item"]) \
        & truth["customer_id"].notna()
    gross = value[purchase].groupby(lines.loc[purchase, "Invoice"]).sum()
    cancel = truth["cancels_row"].notna()
    cancelled = (-value[cancel]).groupby(truth.loc[cancel, "cancels_invoice"]).sum()
    by_invoice = orders.set_index("invoice")
    assert np.allclose(by_invoice["gross_value"], gross.reindex(by_invoice.index), atol=0.005)
    assert np.allclose(by_invoice["cancelled_value"], cancelled.reindex(by_invoice.index, fill_value=0), atol=0.005)
    full = orders[orders["fully_cancelled"]]
    partial = orders[(orders["cancelled_value"] > 0) & ~orders["fully_cancelled"]]
    assert len(full) == export.planted["fully_cancelled_orders"] >= 15
    assert len(partial) == export.planted["partially_cancelled_orders"] >= 100
    assert (full["kept_value"] == 0).all() and (partial["kept_value"] > 0).all()


def test_the_huge_order_is_cancelled_twelve_minutes_later_and_its_customer_keeps_two_pounds_ninety(export):
    who = export.planted["huge_cancellation_customer"]
    orders = export.orders[export.orders["customer_id"] == who]
    huge = orders.loc[orders["gross_value"].idxmax()]
    assert huge["gross_value"] == 168_469.60 and huge["fully_cancelled"]
    cancel_line = export.lines[export.lines["Invoice"] == huge["cancelled_by"]].iloc[0]
    assert cancel_line["Quantity"] == -80_995
    assert cancel_line["InvoiceDate"] - huge["invoice_date"] == pd.Timedelta(minutes=HUGE_ORDER_CANCEL_MINUTES)
    assert huge["invoice_date"].normalize() == export.lines["InvoiceDate"].max().normalize()  # the last open day
    customer = export.customers.set_index("customer_id").loc[who]
    assert customer["kept_value"] == 2.90 and customer["purchase_orders_in_data"] == 1


def test_cancellations_of_orders_before_the_data_match_no_exported_line(export):
    truth = export.line_truth
    before = truth[truth["cancels_before_data"].fillna(False).astype(bool)]
    assert len(before) == export.planted["cancellation_lines_of_orders_before_data"] > 20
    assert before["cancels_row"].isna().all() and before["cancels_invoice"].notna().all()
    assert not before["cancels_invoice"].isin(export.lines["Invoice"]).any()
    first_exported = export.lines["Invoice"].str.removeprefix("C").astype(int).min()
    assert (before["cancels_invoice"].astype(int) < first_exported).all()


def test_some_customers_only_cancel_an_order_placed_before_the_data(export):
    customers = export.customers
    only = customers[customers["only_cancellations"]]
    assert len(only) == export.planted["cancel_only_customers"] >= 5
    ids = export.lines["Customer ID"].str.removesuffix(".0")
    their_lines = export.lines[ids.isin(only["customer_id"]).to_numpy()]
    assert their_lines["Invoice"].str.startswith("C").all()
    assert set(their_lines["Customer ID"].str.removesuffix(".0")) == set(only["customer_id"])
    assert (only["first_purchase_before_data"] & (only["purchase_orders_in_data"] == 0)).all()
    assert (only["adjustment_value"] < 0).all() and (only["kept_value"] == 0).all()


# --------------------------------------------------------------------------- other lines


def test_postage_manual_discount_bank_charges_zero_price_and_stock_adjustment_lines_are_planted(export):
    lines, kind = export.lines, export.line_truth["kind"]
    code = lines["StockCode"]
    on_c = lines["Invoice"].str.startswith("C")
    assert (code[kind == "postage"] == "POST").all() and (kind == "postage").sum() > 50
    assert (lines.loc[code == "POST", "Country"] != "United Kingdom").all()
    assert (code[kind.isin(["manual", "manual_refund"])] == "M").all() and (kind == "manual").sum() > 3
    assert (code[kind == "discount"] == "D").all() and on_c[kind == "discount"].all()
    assert (lines.loc[kind == "discount", "Quantity"] == -1).all() and (kind == "discount").sum() > 3
    assert (code[kind == "bank_charges"] == "BANK CHARGES").all() and (kind == "bank_charges").sum() > 0
    assert ((lines["Price"] == 0) == kind.isin(["free_item", "stock_adjustment"])).all()
    adjust = lines[(kind == "stock_adjustment").to_numpy()]
    assert len(adjust) > 20 and (adjust["Quantity"] < 0).all() and adjust["Customer ID"].isna().all()
    assert not adjust["Invoice"].str.startswith("C").any()  # negative quantity outside a C invoice


def test_repeated_lines_are_exact_copies_on_the_same_invoice(export):
    truth = export.line_truth
    copies = truth[truth["kind"] == "repeated_line"]
    assert len(copies) == export.planted["repeated_lines"] > 100
    original = export.lines.loc[copies["duplicate_of_row"].astype(int)].reset_index(drop=True)
    assert_frame_equal(export.lines.loc[copies.index].reset_index(drop=True), original)
    assert export.lines.duplicated().sum() == len(copies)  # and nothing else is repeated


def test_a_quarter_of_the_lines_have_no_customer_id_and_ids_are_floats_as_text(export):
    ids = export.lines["Customer ID"]
    assert ids.isna().mean() == pytest.approx(0.25, abs=0.02)
    assert ids.dropna().str.fullmatch(r"\d{5}\.0").all()


# --------------------------------------------------------------------------- calendar and history


def test_no_line_falls_on_a_public_holiday_the_christmas_shutdown_or_a_saturday(export):
    day = export.lines["InvoiceDate"].dt.normalize()
    closed = export.closed_days
    assert not day.isin(closed["date"]).any()
    public = holidays.country_holidays("GB", subdiv="ENG", years=[2010, 2011])
    in_window = [pd.Timestamp(d) for d in public if export.start <= pd.Timestamp(d) <= export.end]
    assert pd.Timestamp("2011-04-29") in in_window and pd.Timestamp("2011-08-29") in in_window
    assert set(in_window) <= set(closed["date"])
    for first, last in (("2010-12-24", "2011-01-03"),):
        assert set(pd.date_range(first, last)) <= set(closed["date"])
    assert (day.dt.day_of_week != 5).all()
    # every open weekday has trade (the gaps are exactly the closed days)
    assert set(pd.date_range(export.start, export.end)) - set(closed["date"]) == set(day.unique())


def test_the_history_starts_in_the_middle_of_the_shops_life(export):
    customers = export.customers[export.customers["in_export"]]
    before = customers[customers["first_purchase_before_data"]]
    assert len(before) == export.planted["customers_first_purchase_before_data"]
    assert 0.2 < len(before) / len(customers) < 0.6
    assert (before["true_first_purchase"] < export.start).all() and (before["orders_before_data"] > 0).all()
    assert (before["true_first_purchase"] < export.start - pd.Timedelta(days=365)).sum() > 50  # years before
    seen = export.lines.assign(id=export.lines["Customer ID"].str.removesuffix(".0")).groupby("id")["InvoiceDate"].min()
    assert (seen[before["customer_id"]].to_numpy() > before["true_first_purchase"].to_numpy()).all()
    after = customers[~customers["first_purchase_before_data"]]
    assert (seen[after["customer_id"]].to_numpy() == after["true_first_purchase"].to_numpy()).all()


def test_wholesale_customers_order_rarely_in_large_quantities_and_the_tail_buys_once(export):
    customers = export.customers[export.customers["in_export"]].set_index("customer_id")
    orders = export.orders.join(customers["customer_type"], on="customer_id")
    lines = export.lines[export.line_truth["kind"] == "purchase"]
    kind = customers["customer_type"].reindex(lines["Customer ID"].str.removesuffix(".0")).to_numpy()
    quantity = lines["Quantity"].groupby(kind).median()
    assert quantity["wholesale"] >= 4 * quantity["retail"]
    gap = orders.sort_values("invoice_date").groupby("customer_id")["invoice_date"].diff().dt.days
    gaps = gap.groupby(orders["customer_type"]).median()
    assert gaps["wholesale"] > 60  # long gaps between large orders
    buyers = customers[customers["purchase_orders_in_data"] > 0]
    once = (buyers["purchase_orders_in_data"] == 1).groupby(buyers["customer_type"]).mean()
    assert once["occasional"] > 0.6 and (buyers["purchase_orders_in_data"] == 1).mean() > 0.35
    assert set(customers["customer_type"]) == set(CUSTOMER_TYPES)


def test_november_is_the_seasonal_peak(export):
    per_month = export.lines.groupby(export.lines["InvoiceDate"].dt.to_period("M")).size()
    assert per_month.idxmax() == pd.Period("2011-11", "M")
    assert per_month[pd.Period("2011-11", "M")] > 2 * per_month[pd.Period("2011-02", "M")]


# --------------------------------------------------------------------------- determinism, arguments, files


def test_the_same_seed_gives_the_same_export_and_another_seed_another():
    a, b = generate_online_retail(300, seed=5), generate_online_retail(300, seed=5)
    for name in ("lines", "line_truth", "orders", "customers", "closed_days"):
        assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.planted == b.planted
    assert not generate_online_retail(300, seed=6).lines.equals(a.lines)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"country": "XX"}, "country 'XX' is not supported"),
    ({"n_customers": 3}, "n_customers must be at least 10"),
    ({"end": "2010-12-20"}, "shorter than 60 days"),
    ({"guest_line_share": 0.9}, "guest_line_share must be in"),
])
def test_arguments_out_of_range_raise_a_config_error_that_names_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_online_retail(**{"n_customers": 100, **kwargs})


def test_a_german_shop_closes_on_german_holidays():
    export = generate_online_retail(200, seed=1, country="DE", start="2011-09-01", end="2011-12-09")
    closed = export.closed_days.set_index("date")["reason"]
    assert closed[pd.Timestamp("2011-10-03")] == "public holiday: German Unity Day"
    assert (export.lines["Country"] == "Germany").mean() > 0.8


def test_the_shipped_config_reads_the_written_export(export, tmp_path):
    paths = write_online_retail(tmp_path, export)
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    transactions = load_inputs(load_config(tmp_path / CONFIG.name))["transactions"]
    assert len(transactions) == len(export.lines)
    assert (transactions.index == export.lines.index).all()  # truth rows are the loaded rows
    ids = export.lines["Customer ID"].str.removesuffix(".0")
    assert transactions["customer_id"].astype(object).where(transactions["customer_id"].notna()).equals(
        ids.astype(object).where(ids.notna()))
    assert np.allclose(transactions["amount"], export.lines["Quantity"] * export.lines["Price"])
    truth = pd.read_csv(paths["line_truth"], dtype={"customer_id": str, "invoice": str})
    assert truth["row"].tolist() == list(range(len(export.lines)))
    assert json.loads(paths["planted"].read_text()) == export.planted


def test_the_module_command_line_writes_the_online_retail_mode(tmp_path, capsys):
    assert main(["--online-retail", "--customers", "200", "--seed", "3", "--out", str(tmp_path)]) == 0
    written = pd.read_csv(tmp_path / "online_retail_II.csv", dtype=str)
    assert list(written.columns) == ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
                                     "Customer ID", "Country"]
    assert written["InvoiceDate"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    assert written["InvoiceDate"].min() >= "2010-12-01" and written["InvoiceDate"].max().startswith("2011-12-09")
    assert "planted.json" in capsys.readouterr().out


def test_segkit_run_completes_on_the_export_and_counts_what_was_planted(export, tmp_path):
    folder = tmp_path / "export"
    write_online_retail(folder, export)
    shutil.copy(CONFIG, folder / CONFIG.name)
    done = segkit_cli("run", "--config", folder / CONFIG.name, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    artifacts = tmp_path / "run" / "artifacts"
    findings = {f["check"]: f for f in json.loads((artifacts / "audit_summary.json").read_text())["findings"]}
    assert findings["guest_checkouts"]["count"] == export.planted["lines_without_customer_id"]
    assert findings["exact_duplicates"]["count"] == export.planted["repeated_lines"]
    assert findings["returns"]["count"] == export.planted["lines_on_cancellation_invoices"]
    segments = pd.read_csv(artifacts / "customer_segments.csv", dtype={"customer_id": str})
    in_export = export.customers.loc[export.customers["in_export"], "customer_id"]
    assert set(segments["customer_id"]) == set(in_export)


# --------------------------------------------------------------------------- the real CDNOW master log


def test_the_cdnow_master_log_holds_the_facts_of_the_real_export():
    master = load_cdnow("master")
    assert (master["order_date"].min(), master["order_date"].max()) == (
        pd.Timestamp("1997-01-01"), pd.Timestamp("1998-06-30"))
    assert int((master["amount"] == 0).sum()) == 80
    repeated = master.drop(columns="order_id").duplicated().sum()
    assert repeated == 255


def test_the_cdnow_master_log_without_lifetimes_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lifetimes", None)  # import lifetimes -> ModuleNotFoundError
    with pytest.raises(DataError, match=r"pip install -e '\.\[dev\]' \(or pip install lifetimes\)"):
        load_cdnow("master")
