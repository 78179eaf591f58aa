"""Issue 19: Shopify's orders export read unchanged with ``data/configs/shopify.yml``, against planted truth.

The export comes from :func:`segkit.data.shopify.generate_shopify_export` (one row per line item,
order-level fields on the first row only, e-mail keys whose case varies, DST offsets, every financial
status, partial refunds, cancellations, test-gateway and Total-0 orders, marketplace orders without
e-mail, multi-line notes). One ``segkit run`` on it is checked against the truth (orders counted once,
buyers, kept purchase orders and value per customer, net revenue, refunded and voided orders not
purchases, no e-mail in any HTML); the 78- and 73-column layouts and a spreadsheet-re-saved copy go
through the audit and the relational core; bad input fails with a message naming file, column, rows
and the fix. The status contract is generic: a small export of another shop system with the same habits
works through a config. The headline counts refunded and voided orders as cancelled orders (one
definition with the cancellation matching); the customers table is derived from the orders (newest
order's Accepts Marketing and Billing Country). Issue 19's Done-when is checked on an export no other
test uses (another seed, layout and size) against purchase counts computed from the raw CSV with plain
pandas.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from segkit.audit import audit_log
from segkit.core.config import deep_merge, load_config, project_root
from segkit.core.errors import ConfigError, DataError
from segkit.data.engine import OrderLines, TransactionLog
from segkit.data.shopify import LAYOUTS, ShopifyExport, generate_shopify_export, write_shopify_export
from segkit.data.statuses import OrderContract
from tests.run_helpers import segkit_cli

CONFIG = project_root() / "data" / "configs" / "shopify.yml"
N_CUSTOMERS, SEED = 120, 19


def planted(export: ShopifyExport) -> dict[str, float]:
    """The headline numbers the truth implies (guests and test orders are not in the customer analyses)."""
    known = export.orders[~export.orders["guest"] & ~export.orders["test"]]
    return {"orders_total": len(known), "purchase_orders": int(known["is_purchase"].sum()),
            "buyers": int(export.customers["is_buyer"].sum()), "net_revenue": export.net_revenue,
            "customers": len(export.customers)}


def audited(path: Path, tmp: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Audit ``path`` with the shipped preset; the findings, the headline and RFM of its clean lines."""
    config = load_config(CONFIG)
    with TransactionLog(path, config) as log:
        result = audit_log(log)
        clean = log.write_clean(tmp / "transactions_clean.parquet")
    lines = OrderLines(clean)
    return lines.headline(), result.findings, lines.rfm()


@pytest.fixture(scope="module")
def export() -> ShopifyExport:
    return generate_shopify_export(N_CUSTOMERS, seed=SEED)


@pytest.fixture(scope="module")
def run(export, tmp_path_factory) -> Path:
    """``segkit run --config shopify.yml --transactions orders_export_1.csv`` on the unchanged export."""
    tmp = tmp_path_factory.mktemp("shopify")
    path = write_shopify_export(tmp / "export", export)
    config = shutil.copy(CONFIG, tmp / "export" / "shopify.yml")
    done = segkit_cli("run", "--config", config, "--transactions", path, "--out", tmp / "run")
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "run"


# --------------------------------------------------------------------------- the fixture is Shopify's layout
def test_the_generator_writes_shopifys_layouts_with_order_fields_on_the_first_row_only(export, tmp_path):
    assert {n: len(generate_shopify_export(20, seed=1, layout=n).lines.columns) for n in LAYOUTS} == \
        {79: 79, 78: 78, 73: 73}
    lines = export.lines
    per_order = lines.groupby("Name", sort=False)
    assert per_order["Financial Status"].apply(lambda s: (s != "").sum()).eq(1).all()
    assert (per_order.size() > 1).any() and per_order["Email"].nunique().le(1).all()
    created = lines["Created at"]
    assert created.str.endswith("-0700").any() and created.str.endswith("-0800").any()
    assert lines["Notes"].str.contains("\n").any() and lines["Phone"].str.startswith("'").all()
    assert set(export.orders["status"]) == {"paid", "partially_refunded", "refunded", "voided", "pending",
                                            "authorized", "partially_paid"}
    text = write_shopify_export(tmp_path, export).read_text()
    assert text.splitlines()[0].startswith("Name,Email,Financial Status,Paid at")


# --------------------------------------------------------------------------- one whole run against the truth
def test_a_run_on_the_unchanged_export_counts_orders_once_and_gives_the_planted_headline(run, export):
    summary = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    truth = planted(export)
    headline = summary["headline"]
    assert headline["orders_total"] == truth["orders_total"] < len(export.lines)
    assert headline["purchase_orders"] == truth["purchase_orders"]
    assert headline["buyers"] == truth["buyers"]
    assert headline["net_revenue"] == pytest.approx(truth["net_revenue"], abs=0.01)
    assert headline["customers"] == truth["customers"]
    assert headline["currency"] == "USD"


def test_rfm_lists_the_buyers_by_lower_cased_email_with_their_kept_orders_and_value(run, export):
    rfm = pd.read_parquet(run / "artifacts" / "rfm.parquet").set_index("customer_id")
    buyers = export.customers[export.customers["is_buyer"]].set_index("customer")
    assert sorted(rfm.index) == sorted(buyers.index)
    assert (rfm["frequency"] == buyers["purchase_orders"].reindex(rfm.index)).all()
    assert (rfm["monetary_total"] - buyers["kept"].reindex(rfm.index)).abs().max() < 0.005
    varied = export.lines.loc[export.lines["Email"].ne("") & export.lines["Email"].ne(export.lines["Email"].str.lower()),
                              "Email"]
    assert len(varied) and varied.str.lower().isin(rfm.index).any()  # Ann.Lee@… and ann.lee@… are one customer


def test_customers_whose_only_orders_were_refunded_voided_or_never_captured_are_not_buyers(run, export):
    rfm = pd.read_parquet(run / "artifacts" / "rfm.parquet")
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype={"customer_id": str})
    orders = export.orders
    for status in ("refunded", "voided"):
        only = orders[~orders["guest"]].groupby("customer")["status"].agg(lambda s: set(s) == {status})
        who = only[only].index
        assert len(who), f"the fixture plants a customer whose only order is {status}"
        assert not set(who) & set(rfm["customer_id"])
        assert set(who) <= set(segments["customer_id"])  # still a customer, with no purchase
    cancelled_pending = orders[orders["cancelled"] & (orders["status"] == "pending")]
    assert len(cancelled_pending) and not cancelled_pending["is_purchase"].any()


def test_no_email_address_appears_in_any_html_but_customer_segments_keeps_them(run, export):
    emails = set(export.customers["customer"]) | set(export.lines["Email"][export.lines["Email"] != ""])
    pages = list(run.rglob("*.html"))
    assert len(pages) == 5  # 01-04 (no campaign file) and index.html
    for page in pages:
        text = page.read_text(encoding="utf-8").lower()
        assert "@example.com" not in text, page.name
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype={"customer_id": str})
    assert set(segments["customer_id"]) == set(export.customers["customer"])
    assert set(segments["customer_id"]) <= {e.lower() for e in emails}


def test_the_audit_reports_statuses_refunds_cancellations_test_guest_and_zero_value_orders(run, export):
    summary = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    found = {f["check"]: f for f in summary["findings"]}
    orders = export.orders[~export.orders["test"]]
    assert found["order_statuses"]["count"] == len(orders)
    text = found["order_statuses"]["message"]
    for status, n in orders["status"].value_counts().items():
        assert f"{status} {n:,} (" in text
    assert "refunded" in text and "(no purchases)" in text and "counted as purchases: orders.pending" in text
    assert f"{int(orders['guest'].sum()):,} orders have no customer id" in text
    assert found["refunds"]["count"] == int((orders["refunded"] > 0).sum())
    assert f"{orders['refunded'].sum():,.2f} refunded" in found["refunds"]["message"]
    assert found["cancelled_orders"]["count"] == int(orders["cancelled"].sum())
    assert found["test_orders"]["count"] == int(export.orders["test"].sum()) == 2
    assert found["zero_value_orders"]["count"] == 1
    rules = {r["rule"]: r["rows_affected"] for r in summary["cleaning_rules"]}
    assert rules["test orders removed (orders.test_payment_methods)"] >= 2
    assert "spreadsheet_resaved" not in found


def test_an_order_at_2330_local_time_stays_on_its_day_whatever_the_offset(run, export):
    clean = pd.read_parquet(run / "artifacts" / "transactions_clean.parquet")
    late = export.lines[export.lines["Created at"].str.contains(" 23:30:00 ")]
    assert {"-0700", "-0800"} <= set(late["Created at"].str[-5:])
    for name in late["Name"].unique():
        day = export.orders.set_index("name").loc[name, "day"]
        dates = clean.loc[clean["order_id"] == name, "order_date"]
        assert len(dates) and (dates.dt.date == day).all() and (dates.dt.hour == 23).all()


def test_order_level_fields_reach_every_line_of_their_order(run, export):
    clean = pd.read_parquet(run / "artifacts" / "transactions_clean.parquet")
    assert clean["channel"].notna().all()
    # Source: the shop's own channels as written, a marketplace's numeric app id named as such
    assert set(clean["channel"]) == {"web", "pos", "shopify_draft_order", "marketplace (app 580111)"}
    from_marketplace = export.lines.loc[export.lines["Source"] == "580111", "Name"]
    with_email = export.lines.loc[export.lines["Name"].isin(from_marketplace) & (export.lines["Email"] != ""), "Name"]
    assert len(with_email) and (clean.loc[clean["order_id"].isin(with_email), "channel"]
                                == "marketplace (app 580111)").all()
    multi = clean.groupby("order_id")["amount"].agg(["size", "sum"])
    multi = multi[multi["size"] > 1]
    kept = export.orders.set_index("name")["kept"]
    assert len(multi) > 20
    assert (multi["sum"] - kept.reindex(multi.index)).abs().max() < 0.005  # every line carries its share


def test_refunded_and_voided_orders_are_cancelled_orders_in_the_headline_and_who_had_only_those_kept_nothing(
        run, export):
    """One definition with the cancellation matching: an order that recorded value and kept nothing."""
    headline = json.loads((run / "artifacts" / "audit_summary.json").read_text())["headline"]
    known = export.orders[~export.orders["guest"] & ~export.orders["test"]]
    recorded_not_kept = known[(known["subtotal"] > 0) & ~known["is_purchase"]]
    assert {"refunded", "voided"} <= set(recorded_not_kept["status"])
    assert headline["cancelled_orders"] == len(recorded_not_kept) > 0
    assert headline["other_orders"] == int((known["subtotal"] == 0).sum()) == 1  # the Total-0 sample
    assert headline["orders_total"] == headline["purchase_orders"] + headline["cancelled_orders"] + \
        headline["other_orders"]
    per = known.groupby("customer").agg(recorded=("subtotal", lambda s: bool((s > 0).any())),
                                        bought=("is_purchase", "any"))
    kept_nothing = per[per["recorded"] & ~per["bought"]].index
    only_refunded = known.groupby("customer")["status"].agg(lambda s: set(s) <= {"refunded", "voided"})
    assert set(only_refunded[only_refunded].index) <= set(kept_nothing)
    assert headline["customers_kept_nothing"] == len(kept_nothing)
    assert headline["customers_only_returns"] == int((~per["recorded"]).sum()) == 1


def test_customers_are_derived_from_the_orders_with_the_newest_orders_consent_and_billing_country(run, export):
    customers = pd.read_parquet(run / "artifacts" / "customers_clean.parquet").set_index("customer_id")
    first_rows = export.lines[export.lines["Financial Status"] != ""]  # order-level fields: first row only
    orders = first_rows[(first_rows["Email"] != "") & (first_rows["Payment Method"] != "bogus")].assign(
        customer=lambda o: o["Email"].str.strip().str.lower(),
        placed=lambda o: pd.to_datetime(o["Created at"].str[:19]))
    newest = orders.sort_values("placed").groupby("customer").tail(1).set_index("customer")
    assert sorted(customers.index) == sorted(newest.index)
    varies = orders.groupby("customer")[["Accepts Marketing", "Billing Country"]].nunique()
    assert (varies > 1).any().all()  # the newest order decides for some customers
    expected = newest["Accepts Marketing"].eq("yes").reindex(customers.index)
    assert customers["email_opt_in"].astype(bool).tolist() == expected.tolist()
    assert customers["email_opt_in"].notna().all()
    assert customers["country"].tolist() == newest["Billing Country"].reindex(customers.index).tolist()


# --------------------------------------------------------------------------- other layouts, re-saved copies
@pytest.mark.parametrize("layout", [78, 73])
def test_the_older_78_and_73_column_layouts_give_the_same_truth(layout, tmp_path):
    export = generate_shopify_export(60, seed=5, layout=layout)
    headline, _, rfm = audited(write_shopify_export(tmp_path, export), tmp_path)
    truth = planted(export)
    assert {k: headline[k] for k in ("orders_total", "purchase_orders", "buyers")} == \
        {k: truth[k] for k in ("orders_total", "purchase_orders", "buyers")}
    assert headline["net_revenue"] == pytest.approx(truth["net_revenue"], abs=0.01)
    assert len(rfm) == truth["buyers"]


def test_a_spreadsheet_resaved_copy_gives_the_same_truth_and_says_what_was_lost(tmp_path):
    export = generate_shopify_export(60, seed=7, resaved=True)
    assert not export.lines["Created at"].str.contains(r"[+-]\d{4}$").any()
    assert set(export.lines["Accepts Marketing"]) - {""} == {"TRUE", "FALSE"}
    headline, findings, _ = audited(write_shopify_export(tmp_path, export), tmp_path)
    truth = planted(export)
    assert headline["purchase_orders"] == truth["purchase_orders"] and headline["buyers"] == truth["buyers"]
    assert headline["net_revenue"] == pytest.approx(truth["net_revenue"], abs=0.01)
    resaved = findings.set_index("check").loc["spreadsheet_resaved"]
    assert resaved["severity"] == "warning" and resaved["count"] == len(export.lines)
    assert "re-saved by a spreadsheet" in resaved["message"] and "offsets" in resaved["message"]
    assert "Export the orders again" in resaved["message"] and resaved["examples"].startswith("rows 2, 3")


# --------------------------------------------------------------------------- bad input
def read_error(tmp_path: Path, column: str, value: str, nth_order: int) -> tuple[str, Path, int]:
    """The preset's :class:`DataError` on an export whose ``nth_order``-th order has ``value`` in ``column``
    (on its first row): the message, the file and the file's row number of the cell."""
    export = generate_shopify_export(20, seed=2)
    first = export.lines.index[export.lines["Financial Status"] != ""][nth_order]
    export.lines.loc[first, column] = value
    path = write_shopify_export(tmp_path, export)
    with pytest.raises(DataError) as err:
        TransactionLog(path, load_config(CONFIG)).close()
    return str(err.value), path, int(first) + 2


def test_an_unknown_status_names_the_file_column_rows_and_the_config_key(tmp_path):
    message, path, row = read_error(tmp_path, "Financial Status", "chargeback", 3)
    assert str(path) in message and "'Financial Status' (mapped to 'order_status')" in message
    assert f"'chargeback' in 1 row(s) (row {row})" in message
    assert "orders.statuses" in message and "chargeback: purchase | not_purchase | pending" in message


def test_a_file_that_is_not_a_shopify_export_fails_before_anything_runs_naming_the_missing_columns(tmp_path):
    config = shutil.copy(CONFIG, tmp_path / "shopify.yml")
    done = segkit_cli("run", "--config", config, "--transactions",
                      project_root() / "data" / "sample" / "transactions.csv", "--out", tmp_path / "run")
    assert done.returncode in (1, 2)
    output = done.stdout + done.stderr
    assert "transactions.csv" in output and "'Email'" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()


def test_an_accepts_marketing_value_that_is_not_yes_or_no_names_the_file_column_rows_and_the_fix(tmp_path):
    message, path, row = read_error(tmp_path, "Accepts Marketing", "perhaps", 2)
    assert str(path) in message and "'Accepts Marketing' (mapped to 'email_opt_in')" in message
    assert "unexpected values for a yes/no column: 'perhaps'" in message and f"row {row})" in message
    assert "yes/no" in message.split("perhaps")[-1]


def test_a_numeric_channel_name_without_a_place_for_the_id_is_a_config_error():
    with pytest.raises(ConfigError, match=r"orders.numeric_channel_name = 'marketplace '.*\{id\}"):
        OrderContract.from_config({"orders": {"numeric_channel_name": "marketplace "}})


def test_a_status_meaning_that_is_not_known_is_a_config_error():
    with pytest.raises(ConfigError, match="orders.statuses.*purchase, not_purchase, pending"):
        OrderContract.from_config({"orders": {"statuses": {"paid": "yes"}}})
    with pytest.raises(ConfigError, match="orders.pending"):
        OrderContract.from_config({"orders": {"pending": "maybe"}})


# --------------------------------------------------------------------------- the contract is generic
def test_another_shop_systems_statuses_and_refunds_work_through_the_config(tmp_path):
    """A WooCommerce-like export: statuses on every row, an amount per line, refunds as an order amount."""
    path = tmp_path / "woo.csv"
    path.write_text(
        "order,customer,date,line_total,status,refund\n"
        "W1,a@x.org,2024-05-01 10:00,30,completed,0\n"
        "W1,a@x.org,2024-05-01 10:00,10,completed,0\n"
        "W2,A@X.org,2024-05-09 11:00,40,completed,10\n"          # partial refund: keeps 30
        "W3,b@x.org,2024-05-10 12:00,25,refunded,25\n"           # refunded: no purchase, b is no buyer
        "W4,c@x.org,2024-05-11 09:00,50,on-hold,0\n"             # pending, counted as not_purchase here
        "W5,c@x.org,2024-05-12 09:00,20,processing,0\n")
    config = deep_merge(load_config(), {
        "columns": {"transactions": {"order_id": "order", "customer_id": "customer", "order_date": "date",
                                     "amount": "line_total", "order_status": "status", "refunded_amount": "refund"}},
        "orders": {"statuses": {"completed": "purchase", "processing": "purchase", "refunded": "not_purchase",
                                "on-hold": "pending"}, "pending": "not_purchase", "customer_key": "email"}})
    with TransactionLog(path, config) as log:
        assert log.status_facts is not None and log.status_facts.refunded_orders == 2
        clean = log.write_clean(tmp_path / "clean.parquet")
    rfm = OrderLines(clean).rfm().set_index("customer_id")
    assert rfm["frequency"].to_dict() == {"a@x.org": 2, "c@x.org": 1}
    assert rfm["monetary_total"].to_dict() == pytest.approx({"a@x.org": 70.0, "c@x.org": 20.0})
    lines = pd.read_parquet(clean)
    assert lines.groupby("order_id")["recorded_amount"].sum().to_dict() == pytest.approx(
        {"W1": 40.0, "W2": 40.0, "W3": 25.0, "W4": 50.0, "W5": 20.0})
    headline = OrderLines(clean).headline()  # W3 refunded and W4 on hold (not counted): recorded, kept nothing
    assert {k: headline[k] for k in ("purchase_orders", "cancelled_orders", "other_orders", "buyers",
                                     "customers_kept_nothing")} == {
        "purchase_orders": 3, "cancelled_orders": 2, "other_orders": 0, "buyers": 2, "customers_kept_nothing": 1}


def test_an_export_without_order_level_columns_is_read_as_before(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,order_id,order_date,amount\nA,1,2024-01-01,10\na,2,2024-01-02,5\n")
    with TransactionLog(path) as log:
        assert log.status_facts is None
        clean = log.clean_frame()
    assert clean["customer_id"].tolist() == ["A", "a"] and clean["amount"].tolist() == [10.0, 5.0]


def test_mapping_order_status_without_saying_what_the_statuses_mean_is_an_error_listing_them(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,order_id,order_date,amount,state\na,1,2024-01-01,10,done\nb,2,2024-01-02,5,gone\n")
    config = deep_merge(load_config(), {"columns": {"transactions": {"order_status": "state"}}})
    with pytest.raises(DataError, match=r"column 'state' \(mapped to 'order_status'\): unknown order status\(es\) "
                                        r"'done', 'gone' in 2 row\(s\) \(rows 2, 3\)\. .*orders\.statuses"):
        TransactionLog(path, config).close()


# --------------------------------------------------------------------------- issue 19's Done-when, unseen export
UNSEEN = {"n_customers": 240, "seed": 2026, "layout": 73}  # used by no other test: another seed, layout, size
PURCHASE_STATUSES = {"paid", "partially_paid", "partially_refunded"}  # data/configs/shopify.yml, read by a person
PENDING_STATUSES = {"pending", "authorized"}  # purchases unless cancelled (orders.pending: purchase)


def purchases_from_the_statuses(path: Path) -> pd.DataFrame:
    """Each customer's purchase orders, computed from the raw CSV with plain pandas (no segkit code).

    One order per ``Name``; its first row holds the order-level fields. The customer is the e-mail,
    trimmed and lower-cased; orders without one (guests) and test orders (the bogus gateway) are left
    out. An order is a purchase when its status is a purchase status (or pending and not cancelled) and
    it keeps money: ``Subtotal x (1 - Refunded Amount / Total) > 0``.
    """
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    orders = raw.drop_duplicates("Name", keep="first").copy()
    orders["customer"] = orders["Email"].str.strip().str.lower()
    orders = orders[(orders["customer"] != "") & (orders["Payment Method"].str.lower() != "bogus")]
    status = orders["Financial Status"].str.strip().str.lower()
    cancelled = orders["Cancelled at"].str.strip() != ""
    counts = status.isin(PURCHASE_STATUSES) | (status.isin(PENDING_STATUSES) & ~cancelled)
    subtotal, total, refunded = (pd.to_numeric(orders[c]) for c in ("Subtotal", "Total", "Refunded Amount"))
    kept = (subtotal * (1 - refunded / total.where(total > 0))).fillna(0).where(counts, 0.0)
    orders = orders.assign(status=status, purchase=kept > 0.005)
    per = orders.groupby("customer")
    return pd.DataFrame({"purchases": per["purchase"].sum().astype(int),
                         "only_refunded_or_voided": per["status"].agg(lambda s: set(s) <= {"refunded", "voided"})})


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> tuple[Path, Path]:
    """An export of another seed and layout, run with the shipped preset and the file unchanged."""
    tmp = tmp_path_factory.mktemp("shopify_unseen")
    path = write_shopify_export(tmp / "export", generate_shopify_export(**UNSEEN))
    config = shutil.copy(CONFIG, tmp / "export" / "shopify.yml")
    done = segkit_cli("run", "--config", config, "--transactions", path, "--out", tmp / "run")
    assert done.returncode == 0, done.stdout + done.stderr
    return path, tmp / "run"


def test_done_when_buyers_and_purchase_counts_equal_an_independent_count_from_the_statuses(unseen):
    path, run = unseen
    truth = purchases_from_the_statuses(path)
    rfm = pd.read_parquet(run / "artifacts" / "rfm.parquet").set_index("customer_id")
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype={"customer_id": str})
    assert sorted(segments["customer_id"]) == sorted(truth.index)  # every customer, by lower-cased e-mail
    counted = rfm["frequency"].reindex(truth.index).fillna(0).astype(int)
    same = counted == truth["purchases"]
    assert len(truth) > 200 and same.mean() >= 0.98, truth[~same].assign(segkit=counted[~same])
    assert set(rfm.index) == set(truth.index[truth["purchases"] > 0])  # the buyers


def test_done_when_customers_whose_only_orders_were_refunded_or_voided_are_not_buyers(unseen):
    path, run = unseen
    truth = purchases_from_the_statuses(path)
    only = truth.index[truth["only_refunded_or_voided"]]
    assert len(only) >= 2  # the planted refunded-only and voided-only customers, at least
    rfm = pd.read_parquet(run / "artifacts" / "rfm.parquet")
    assert not set(only) & set(rfm["customer_id"])
    headline = json.loads((run / "artifacts" / "audit_summary.json").read_text())["headline"]
    assert headline["buyers"] == int((truth["purchases"] > 0).sum())
    assert headline["customers_kept_nothing"] >= len(only)


def test_done_when_no_email_address_appears_in_any_html(unseen):
    path, run = unseen
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    addresses = {e.strip().lower() for e in raw["Email"] if e.strip()}
    pages = sorted(run.rglob("*.html"))
    assert len(addresses) > 200 and len(pages) == 5
    for page in pages:
        text = page.read_text(encoding="utf-8").lower()
        assert "@example.com" not in text, page.name
        assert not [a for a in addresses if a.split("@")[0] in text], page.name


# --------------------------------------------------------------------------- duplicates, overlapping and mixed exports
def order_rows(lines: pd.DataFrame, name: str) -> pd.DataFrame:
    return lines[lines["Name"] == name]


def test_two_identical_line_items_of_one_order_are_both_kept_and_the_subtotal_stays_whole(tmp_path):
    export = generate_shopify_export(20, seed=4)
    lines = export.lines
    paid = export.orders[(export.orders["status"] == "paid") & ~export.orders["cancelled"] & ~export.orders["test"]
                         & ~export.orders["guest"] & (export.orders["subtotal"] > 0)]
    name = next(n for n in paid["name"] if len(order_rows(lines, n)) >= 2)
    rows = order_rows(lines, name)
    second = rows.iloc[[1]]  # a line item without the order fields, bought twice on one order
    value = float(second["Lineitem quantity"].iloc[0]) * float(second["Lineitem price"].iloc[0]) \
        - float(second["Lineitem discount"].iloc[0])
    subtotal = round(float(rows["Subtotal"].iloc[0]) + value, 2)
    at = lines.index.get_loc(second.index[0]) + 1
    export.lines = pd.concat([lines.iloc[:at], second, lines.iloc[at:]], ignore_index=True)
    export.lines.loc[export.lines["Name"].eq(name) & export.lines["Subtotal"].ne(""), "Subtotal"] = f"{subtotal:.2f}"
    path = write_shopify_export(tmp_path, export)
    config = load_config(CONFIG)
    with TransactionLog(path, config) as log:
        findings = audit_log(log).findings.set_index("check")
        clean = pd.read_parquet(log.write_clean(tmp_path / "clean.parquet"))
    assert "exact_duplicates" not in findings.index  # lines of one order are not duplicates of each other
    kept = clean[clean["order_id"] == name]
    assert len(kept) == len(rows) + 1
    assert kept["amount"].sum() == pytest.approx(subtotal, abs=0.01)


def test_orders_shared_by_overlapping_exports_are_counted_once_with_their_whole_value(export, tmp_path):
    single = write_shopify_export(tmp_path / "one", export)
    names = export.lines["Name"].drop_duplicates().tolist()  # newest first
    newer, older = set(names[: len(names) // 2 + 20]), set(names[len(names) // 2 - 20:])  # 41 orders in both
    folder = tmp_path / "overlap"
    for part, keep in (("orders_export_1.csv", newer), ("orders_export_2.csv", older)):
        write_shopify_export(folder, ShopifyExport(export.lines[export.lines["Name"].isin(keep)], export.orders,
                                                   export.customers), name=part)
    shared = len(newer & older)
    whole, _, whole_rfm = audited(single, tmp_path / "one")
    headline, findings, rfm = audited(folder, tmp_path / "overlap")
    assert headline == pytest.approx(whole)
    assert headline["net_revenue"] == pytest.approx(planted(export)["net_revenue"], abs=0.01)
    pd.testing.assert_frame_equal(rfm, whole_rfm)
    found = findings.set_index("check").loc["orders_in_several_files"]
    assert found["count"] == shared and "counted once" in found["message"]
    assert "exact_duplicates" not in set(findings["check"])


def test_exports_of_two_stores_numbering_orders_alike_stop_with_an_error_saying_to_run_per_store(tmp_path):
    folder = tmp_path / "stores"
    write_shopify_export(folder, generate_shopify_export(20, seed=1), name="orders_us.csv")
    write_shopify_export(folder, generate_shopify_export(20, seed=2), name="orders_eu.csv")
    with pytest.raises(DataError) as err:
        TransactionLog(folder, load_config(CONFIG)).close()
    message = str(err.value)
    assert message.startswith(f"{folder} (2 files): column 'Name'")
    assert re.search(r"order id\(s\) belong to several orders .*: '#1\d{3}', '#1\d{3}'", message)
    assert "several orders (different 'Email' or 'Created at')" in message
    assert "once per store" in message and "rows " in message


def test_a_semicolon_delimited_resave_says_so_and_what_to_set(export, tmp_path):
    path = tmp_path / "orders_export_1.csv"
    export.lines.to_csv(path, index=False, sep=";", lineterminator="\n")
    with pytest.raises(DataError) as err:
        TransactionLog(path, load_config(CONFIG)).close()
    message = str(err.value)
    assert message.startswith(str(path)) and "semicolon-delimited" in message
    assert "io.delimiter: ';'" in message and "export the file again" in message


# --------------------------------------------------------------------------- currency
def test_an_export_in_another_currency_than_report_currency_is_a_warning_saying_what_to_set(tmp_path):
    export = generate_shopify_export(20, seed=5)
    export.lines["Currency"] = export.lines["Currency"].replace("USD", "EUR")
    _, findings, _ = audited(write_shopify_export(tmp_path, export), tmp_path)
    found = findings.set_index("check").loc["currency_mismatch"]
    assert found["severity"] == "warning"
    assert "says 'EUR', report.currency says 'USD'" in found["message"]
    assert "Set report.currency: EUR" in found["message"]


def test_orders_in_several_currencies_stop_with_an_error_naming_the_codes_and_rows(tmp_path):
    export = generate_shopify_export(20, seed=5)
    first = export.lines.index[export.lines["Currency"] != ""][4]
    export.lines.loc[first, "Currency"] = "CAD"
    path = write_shopify_export(tmp_path, export)
    with pytest.raises(DataError) as err:
        TransactionLog(path, load_config(CONFIG)).close()
    message = str(err.value)
    assert message.startswith(f"{path}: column 'Currency'") and "2 currencies: 'USD'" in message
    assert "'CAD' (1 orders)" in message and f"(rows 2, {int(first) + 2})" in message
    assert "cannot be summed" in message and "once per currency" in message
