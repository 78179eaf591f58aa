"""The audit of order lines (segkit.data.engine.TransactionLog, DuckDB at every size): what it finds and
cleans, the same whatever form the log comes in (CSV, Parquet, parts, Excel, compressed, a frame), and
the reader's messages, which are those of segkit.data.io."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_log, audit_transactions_from_files, run_audit
from segkit.core.config import load_config, project_root
from segkit.core.errors import ConfigError, DataError
from segkit.core.schema import TRANSACTIONS
from segkit.data.datasets import generate_shop
from segkit.data.engine import (
    EngineSettings,
    TransactionLog,
    behaviour_table_from_files,
    choose_engine,
    order_table_from_files,
    write_clean_transactions,
)
from segkit.data.io import load_table
from segkit.data.orders import order_table
from segkit.features import customer_table
from tests.audit_helpers import assert_same_audit

SAMPLE = project_root() / "data" / "sample" / "transactions.csv"


def _parts(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    edges = np.linspace(0, len(frame), n + 1).astype(int)
    return [frame.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The bundled sample and a generated shop as CSV / Parquet, one file and a folder of parts."""
    root = tmp_path_factory.mktemp("engine_inputs")
    shop = generate_shop(n_customers=800, seed=3).transactions
    out = {"sample_csv": SAMPLE}
    out["shop_csv"] = root / "shop.csv"
    shop.to_csv(out["shop_csv"], index=False)
    out["shop_parquet"] = root / "shop.parquet"
    shop.to_parquet(out["shop_parquet"], index=False)
    for kind in ("csv", "parquet"):
        folder = root / f"parts_{kind}"
        folder.mkdir()
        for i, part in enumerate(_parts(shop, 3)):
            if kind == "csv":
                part.to_csv(folder / f"part-{i}.csv", index=False)
            else:
                part.to_parquet(folder / f"part-{i}.parquet", index=False)
        out[f"shop_{kind}_parts"] = folder
    return out


def _audit(source, config=None, as_of=None, tmp_path=None):
    """The audit of ``source`` (a path or a frame) and, given ``tmp_path``, its clean lines."""
    with TransactionLog(source, config if config is not None else load_config()) as log:
        result = audit_log(log, as_of)
        clean = pd.read_parquet(log.write_clean(tmp_path / "clean.parquet")) if tmp_path is not None else None
    return result, clean


@pytest.fixture(scope="module")
def shop_csv_audit(inputs, tmp_path_factory):
    return _audit(inputs["shop_csv"], tmp_path=tmp_path_factory.mktemp("shop_csv_audit"))


def test_the_audit_of_the_shop_counts_the_planted_dirt_exactly(shop_csv_audit):
    result, clean = shop_csv_audit
    dirt = generate_shop(n_customers=800, seed=3).dirt
    counts = dict(zip(result.findings["check"], result.findings["count"]))
    for kind, check in {"duplicate_rows": "exact_duplicates", "missing_customer_id": "guest_checkouts",
                        "zero_unit_price": "zero_price", "negative_unit_price": "negative_price",
                        "future_order_date": "future_dates", "quantity_outlier": "quantity_outliers"}.items():
        assert counts.get(check, 0) == dirt[kind], check
    rules = result.cleaning_rules.set_index("rule")["rows_affected"]
    dropped = int(rules[result.cleaning_rules.set_index("rule")["action"] == "dropped"].sum())
    assert result.counts["transactions_rows_in"] == len(clean) + dropped
    assert result.counts["transactions_rows_clean"] == len(clean)
    assert not clean.duplicated().any() and clean["customer_id"].notna().all()
    assert clean["order_date"].max() < result.as_of
    assert (clean["is_return"] == clean["order_id"].str.startswith("C")).all()
    assert list(clean.columns) == list(TRANSACTIONS.columns) + ["is_return"]


@pytest.mark.parametrize("name", ["shop_parquet", "shop_csv_parts", "shop_parquet_parts", "shop_frame"])
def test_every_form_of_the_log_gives_the_audit_and_clean_lines_of_the_single_csv(
        inputs, shop_csv_audit, name, tmp_path, monkeypatch):
    import segkit.data.engine

    monkeypatch.setattr(segkit.data.engine, "KTH_FETCH", 100)  # exact medians through the histogram passes
    expected, expected_clean = shop_csv_audit
    source = load_table(inputs["shop_csv"], "transactions") if name == "shop_frame" else inputs[name]
    got, clean = _audit(source, tmp_path=tmp_path)
    assert_same_audit(expected, got)
    assert_frame_equal(clean, expected_clean)


def test_the_bundled_sample_audits_to_its_known_counts(inputs):
    result, _ = _audit(inputs["sample_csv"])
    counts = dict(zip(result.findings["check"], result.findings["count"]))
    assert result.counts["transactions_rows_in"] == 31042
    assert result.counts["transactions_rows_in"] - result.counts["transactions_rows_clean"] == sum(
        result.cleaning_rules.loc[result.cleaning_rules["action"] == "dropped", "rows_affected"])
    assert counts["exact_duplicates"] > 0 and counts["guest_checkouts"] > 0
    # money summed exactly (DECIMAL): net = gross - returned to the cent
    r = result.returns
    assert round(r["gross_revenue"] - r["returned_value"], 2) == r["net_revenue"] == round(r["net_revenue"], 2)


def test_the_five_tuple_entry_point_and_an_explicit_as_of(inputs):
    expected, _ = _audit(inputs["shop_csv"], as_of="2024-06-01")
    findings, rules, counts, as_of, period = audit_transactions_from_files(inputs["shop_csv"], load_config(),
                                                                          as_of="2024-06-01")
    assert_frame_equal(findings, expected.findings)
    assert_frame_equal(rules, expected.cleaning_rules)
    assert counts == expected.counts and as_of == pd.Timestamp("2024-06-01") and period == expected.period
    assert period["end"] < pd.Timestamp("2024-06-01")
    after = rules.set_index("rule").loc["orders on or after as_of", "rows_affected"]
    assert after > 1000


def test_orders_with_ids_shared_by_two_customers_and_lines_without_order_ids(tmp_path):
    lines = pd.DataFrame({
        "customer_id": ["b", "a", "a", "b", "a"],
        "order_id": ["9", "9", "1", "1", "1"],
        "order_date": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03", "2024-01-04", "2024-01-05"])
                        .astype("datetime64[ns]"),   # as in transactions_clean.parquet
        "amount": [5.0, 3.0, 2.0, -1.0, 4.0],
    })
    path = tmp_path / "l.parquet"
    lines.to_parquet(path, index=False)
    for orders in (order_table_from_files(path), order_table(lines)):
        # customers sorted; a customer's orders in the order their id first appears in the lines
        assert list(zip(orders["customer_id"], orders["order_id"], orders["amount"], orders["is_purchase"])) == [
            ("a", "9", 3.0, True), ("a", "1", 6.0, True), ("b", "9", 5.0, True), ("b", "1", -1.0, False)]
    no_ids = lines.assign(order_id=[None, "9", "1", "1", "1"])
    no_ids.to_parquet(path, index=False)
    for orders in (order_table_from_files(path), order_table(no_ids)):
        # an id missing: every line is its own order, named by its 0-based position
        assert list(zip(orders["customer_id"], orders["order_id"], orders["amount"])) == [
            ("a", "1", 3.0), ("a", "2", 2.0), ("a", "4", 4.0), ("b", "0", 5.0), ("b", "3", -1.0)]


def test_column_maps_day_first_dates_decimal_commas_and_semicolons_are_read_in_sql(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text(
        "Invoice;InvoiceDate;Customer ID;Qty;Price;Country\n"
        "1;13/04/2024 10:00;00123;2;1,50;France\n"
        "1;13/04/2024 10:00;00123;2;1,50;France\n"      # exact duplicate
        "C2;14/04/2024 09:30;00123;-1;1,50;France\n"    # return
        "3;02/05/2024;;1;9,99;Spain\n"                  # guest
        "4;03/05/2024 18:05;12346.0;3;0;Spain\n"        # zero price, float-looking id
        "5;04/05/2024 08:00; 77 ;1;1.234,50;Spain\n"    # thousands dot
    )
    config = load_config(overrides={
        "columns": {"transactions": {"order_id": "Invoice", "order_date": "InvoiceDate", "customer_id": "Customer ID",
                                     "quantity": "Qty", "unit_price": "Price", "country": "Country"}},
        "io": {"dayfirst": True, "decimal": ","}})
    got, clean = _audit(csv, config, tmp_path=tmp_path)
    counts = dict(zip(got.findings["check"], got.findings["count"]))
    assert {k: counts.get(k) for k in ("exact_duplicates", "guest_checkouts", "zero_price", "returns")} == {
        "exact_duplicates": 1, "guest_checkouts": 1, "zero_price": 1, "returns": 1}
    assert clean["order_date"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-04-13 10:00", "2024-04-14 09:30", "2024-05-03 18:05", "2024-05-04 08:00"]
    assert clean["is_return"].tolist() == [False, True, False, False]
    assert clean["customer_id"].tolist() == ["00123", "00123", "12346", "77"]
    assert clean["amount"].tolist() == [3.0, -1.5, 0.0, 1234.5]
    assert got.customers.set_index("customer_id")["country"].to_dict() == {"00123": "France", "12346": "Spain",
                                                                           "77": "Spain"}


def _io_error(path, config=None) -> str:
    with pytest.raises(DataError) as err:
        load_table(path, "transactions", config=config)
    return str(err.value)


def _engine_error(path, config=None) -> str:
    with pytest.raises(DataError) as err:
        with TransactionLog(path, config):
            pass
    return str(err.value)


@pytest.mark.parametrize("body, io", [
    ("customer_id,order_date,amount\na,2024-01-01,12,50\n", {}),                          # ragged row
    ("customer_id,order_date,amount\na,2024-01-01,1\nb,2024-01-01,12,50\n", {}),           # one ragged row
    ("customer_id,order_date,amount\na,2024-01-01,\"12,50\"\nb,2024-01-02,n/a\n", {}),     # decimal comma, text
    ("customer_id,order_date,amount\na,2024-01-01,1\na,2024-01-02,1 EUR\n", {}),          # unit in the cell
    ("customer_id,order_date,amount\na,13/04/2024,1\na,14/04/2024,2\n", {}),              # day-first, not set
    ("customer_id,order_date,amount\na,04/13/2024,1\n", {"dayfirst": True}),              # month-first, dayfirst
    ("customer_id,order_date,amount\na,2024-01-01,1\na,01/02/2024,2\n", {}),              # mixed formats
    ("customer_id,order_date,amount\na,13/04/2024,1\na,04/13/2024,2\n", {"dayfirst": True}),  # ambiguous
    ("customer_id,order_date,amount\na,soon,1\na,45123,2\n", {}),                         # not dates
    ("customer_id,order_date,amount\na,2024-01-01,1\na,,2\n", {}),                        # missing date
    ("customer_id,order_date,amount\na,2024/01/01,1\n", {"date_format": "%Y-%m-%d"}),     # date_format mismatch
    ("customer,when,amount\na,2024-01-01,1\n", {}),                                       # missing columns
])
def test_unreadable_values_raise_the_same_message_as_segkit_io(tmp_path, body, io):
    path = tmp_path / "t.csv"
    path.write_text(body)
    config = load_config(overrides={"io": io}) if io else load_config()
    message = _io_error(path, config)
    if "more fields than the header" in message:   # pandas reads one ragged row as an index column
        assert _engine_error(path, config) == (
            f"{path}: cannot be split into columns: line 2 has 4 fields but the header has 3. A value probably "
            "contains the delimiter ',' without quotes (or io.delimiter is wrong): put such values in double "
            "quotes, or set io.delimiter in the config.")
        return
    assert _engine_error(path, config) == message


def test_parquet_errors_name_the_column_and_rows(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"customer_id": ["a", "b"], "order_date": [20240101, 20240102], "amount": [1.0, 2.0]}).to_parquet(path)
    assert _engine_error(path) == _io_error(path)
    pd.DataFrame({"customer_id": ["a", "b"], "order_date": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                  "amount": [1.0, np.inf]}).to_parquet(path)
    assert _engine_error(path) == _io_error(path)
    assert "infinite values (row 3)" in _engine_error(path)


def test_paths_that_the_engine_cannot_stream_are_explained(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        TransactionLog(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .parquet or .csv files"):
        TransactionLog(tmp_path / "empty")
    (tmp_path / "t.xlsx").write_bytes(b"PK not a workbook")
    with pytest.raises(DataError, match="is not a readable .xlsx workbook"):   # read by segkit.data.io
        TransactionLog(tmp_path / "t.xlsx")
    (tmp_path / "t.xls").write_bytes(b"")
    with pytest.raises(DataError, match="save as .xlsx"):
        TransactionLog(tmp_path / "t.xls")
    with pytest.raises(DataError, match="no file matches this pattern"):
        TransactionLog(tmp_path / "*.parquet")


def test_exact_duplicates_treat_missing_values_as_equal_and_keep_the_first_copy(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,order_id,order_date,amount,channel\n"
                    "a,1,2024-01-01,5,\n"      # row 2
                    "a,1,2024-01-01,5,web\n"   # row 3: differs in channel
                    "a,1,2024-01-01,5,\n"      # row 4: copy of row 2
                    "a,1,2024-01-01,5,\n")     # row 5: copy of row 2
    with TransactionLog(path) as log:
        result = audit_log(log)
        clean = pd.read_parquet(log.write_clean(tmp_path / "c.parquet"))
    dup = result.findings.set_index("check").loc["exact_duplicates"]
    assert dup["count"] == 2 and dup["examples"].startswith("row 4: ")
    assert clean["channel"].tolist() == [pd.NA, "web"]


def test_engine_settings_and_the_automatic_choice(tmp_path):
    big = tmp_path / "t.csv"
    big.write_text("customer_id,order_date,amount\n" + "a,2024-01-01,1\n" * 1000)
    cfg = {"data": {"transactions": str(big)}, "engine": {"kind": "auto", "auto_threshold_mb": 0.01}}
    assert choose_engine(cfg) == "duckdb"
    assert choose_engine({**cfg, "engine": {"kind": "auto", "auto_threshold_mb": 1}}) == "pandas"
    assert choose_engine({**cfg, "data": {"transactions": str(tmp_path)}}) == "duckdb"   # a folder
    assert choose_engine({**cfg, "engine": {"kind": "pandas", "auto_threshold_mb": 0}}) == "pandas"
    assert EngineSettings.from_config(load_config()).kind == "auto"
    with pytest.raises(ConfigError, match="engine.memory_limit"):
        EngineSettings.from_config({"engine": {"memory_limit": "lots"}})
    with pytest.raises(ConfigError, match="unknown key"):
        EngineSettings.from_config({"engine": {"memry_limit": "1GB"}})


def test_the_summary_records_the_engine(inputs):
    with TransactionLog(inputs["sample_csv"]) as log:
        summary = audit_log(log).summary()
    assert summary["engine"] == "duckdb"
    assert json.loads(json.dumps(summary, default=str))["counts"]["transactions_rows_in"] == 31042


def test_rows_empty_in_every_column_are_skipped_and_row_numbers_still_count_them(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,order_id,order_date,amount,channel\n"
                    "a,1,2024-01-01,5,web\n"
                    " , ,, ,\n"                    # row 3: blank
                    ",2,2024-01-02,7,\n"           # row 4: guest
                    ",,,,\n")                      # row 5: blank
    got, _ = _audit(path)
    assert got.counts["transactions_rows_in"] == 2
    assert got.findings.set_index("check").loc["guest_checkouts", "examples"].startswith("row 4: ")


def test_customer_table_from_the_out_of_core_behaviour_equals_the_in_memory_one(inputs, tmp_path):
    shop = generate_shop(n_customers=800, seed=3)
    clean = write_clean_transactions(inputs["shop_csv"], tmp_path / "clean.parquet")
    lines = pd.read_parquet(clean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = customer_table(lines, shop.customers, shop.campaign, "2024-09-01")
    got = customer_table(None, shop.customers, shop.campaign, "2024-09-01",
                         behaviour=behaviour_table_from_files(clean, "2024-09-01"))
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)
    assert {"open_rate", "emails_received", "age_band", "channel_share_web"} <= set(got.columns)


def test_errors_follow_the_canonical_column_order_whatever_the_order_of_the_column_map(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Price,When,Who,Total\nabc,yesterday,a,1\n")
    config = load_config(overrides={"columns": {"transactions": {
        "unit_price": "Price", "order_date": "When", "customer_id": "Who", "amount": "Total"}}})
    message = _engine_error(path, config)
    assert message == _io_error(path, config)
    assert "column 'When' (mapped to 'order_date')" in message


def test_text_in_encodings_duckdb_does_not_read_is_read_from_a_utf8_copy(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("customer_id,order_date,amount\nZoë€,2024-01-01,1\n".encode("cp1252"))
    for encoding in ("cp1252", "windows-1252"):
        result, _ = _audit(path, {"io": {"encoding": encoding}})
        assert result.customers["customer_id"].tolist() == ["Zoë€"]
    path.write_bytes("customer_id,order_date,amount\nZoë,2024-01-01,1\n".encode("latin-1"))
    result, _ = _audit(path, {"io": {"encoding": "latin-1"}})   # read by DuckDB directly
    assert result.customers["customer_id"].tolist() == ["Zoë"]
    assert path.read_bytes().startswith(b"customer_id")   # the input is only read


WORKBOOK_LINES = pd.DataFrame({
    "Kunde": ["00123", "00123", "00123", None, "12346.0", " 77 "],
    "Datum": ["13/04/2024 10:00", "13/04/2024 10:00", "14/04/2024 09:30", "02/05/2024", "03/05/2024 18:05",
              "04/05/2024 08:00"],
    "Beleg": ["1", "1", "C2", "3", "4", "5"],
    "Betrag": ["3,00", "3,00", "-1,50", "9,99", "0", "1.234,50"],
})
WORKBOOK_CONFIG = {"columns": {"transactions": {"customer_id": "Kunde", "order_date": "Datum", "order_id": "Beleg",
                                                "amount": "Betrag"}},
                   "io": {"dayfirst": True, "decimal": ","}}


@pytest.mark.parametrize("form", ["xlsx", "csv.bz2", "csv.xz", "csv.gz"])
def test_workbooks_and_compressed_files_are_typed_by_the_rules_of_csv_cells(tmp_path, form):
    csv = tmp_path / "lines.csv"
    WORKBOOK_LINES.to_csv(csv, index=False, sep=";")
    path = tmp_path / f"lines.{form}"
    if form == "xlsx":
        WORKBOOK_LINES.to_excel(path, index=False)   # text cells, as an export typed as text
    else:
        WORKBOOK_LINES.to_csv(path, index=False, sep=";")
    config = load_config(overrides=WORKBOOK_CONFIG)
    expected, expected_clean = _audit(csv, config, tmp_path=tmp_path)
    got, clean = _audit(path, config, tmp_path=tmp_path)
    assert_same_audit(expected, got)
    assert_frame_equal(clean, expected_clean)
    assert clean["customer_id"].tolist() == ["00123", "00123", "12346", "77"]
    assert clean["amount"].tolist() == [3.0, -1.5, 0.0, 1234.5]
    assert clean["order_date"].dt.strftime("%d.%m.%Y").tolist() == ["13.04.2024", "14.04.2024", "03.05.2024",
                                                                   "04.05.2024"]
    guest = got.findings.set_index("check").loc["guest_checkouts", "examples"]
    assert guest.startswith("row 5: ")   # the spreadsheet row, header = row 1


def test_a_bad_cell_in_a_workbook_is_named_by_file_column_and_row(tmp_path):
    path = tmp_path / "lines.xlsx"
    WORKBOOK_LINES.assign(Betrag=["3,00", "3,00", "-1,50", "n/a", "0", "1.234,50"]).to_excel(path, index=False)
    with pytest.raises(DataError) as err:
        TransactionLog(path, load_config(overrides=WORKBOOK_CONFIG))
    assert str(err.value) == (f"{path}: column 'Betrag' (mapped to 'amount'): text that is not a number: 'n/a' "
                              "(row 5). Numbers only: remove currency signs, units and text such as 'n/a' "
                              "(leave a cell empty when the value is missing).")


def test_a_frame_is_typed_by_the_rules_of_csv_cells_and_named_by_its_rows(tmp_path):
    frame = pd.DataFrame({"customer_id": [7, 7, 8], "order_date": ["2024-01-05", "2024-01-05 10:00", "soon"],
                          "amount": ["10", "2.5", "1"]}, index=[4, 5, 9])
    with pytest.raises(DataError, match=r"transactions: column 'order_date': values that are not dates: 'soon' "
                                        r"\(row 11\)"):
        run_audit({"transactions": frame})
    result = run_audit({"transactions": frame.iloc[:2]})
    assert result.transactions["customer_id"].tolist() == ["7", "7"]
    assert result.transactions["amount"].tolist() == [10.0, 2.5]
    assert result.transactions["order_id"].tolist() == ["row-6", "row-7"]   # from the index: file rows


def test_kth_smallest_is_exact_on_skewed_values_with_ties_and_a_tiny_fetch():
    from segkit.data.engine import connect, kth_smallest

    rng = np.random.default_rng(0)
    values = np.concatenate([np.ones(3000), rng.lognormal(0, 2, 5000), [1e9, 1e-9], np.full(700, 2.5)])
    con = connect()
    con.register("v", pd.DataFrame({"x": values}))
    ks = [0, 1, 3999, 4000, 5000, len(values) // 2, len(values) - 1]
    got = kth_smallest(con, "v", "x", ks, fetch=20, buckets=16)
    assert got == {k: float(np.sort(values)[k]) for k in ks}
