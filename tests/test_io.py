"""Loading user files (segkit.data.io): formats, column maps, derived columns and clear errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from segkit.core.config import load_config
from segkit.core.errors import ConfigError, DataError
from segkit.audit import audit_inputs, run_audit
from segkit.data.io import load_inputs, load_table

ROOT = Path(__file__).resolve().parents[1]
UCI_SMALL = ROOT / "tests" / "data" / "online_retail_ii_small.csv"
UCI_CONFIG = ROOT / "data" / "configs" / "online_retail_ii.yml"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def uci_config(tmp_path):
    shutil.copy(UCI_CONFIG, tmp_path / "online_retail_ii.yml")
    shutil.copy(UCI_SMALL, tmp_path / "online_retail_II.csv")
    return load_config(tmp_path / "online_retail_ii.yml")


def test_the_uci_online_retail_layout_loads_through_its_shipped_config(uci_config):
    tables = load_inputs(uci_config)
    tx = tables["transactions"]
    assert tables["customers"] is None and tables["campaign"] is None
    assert list(tx.columns) == ["customer_id", "order_date", "order_id", "amount", "quantity", "unit_price",
                                "product_id", "category", "channel", "country"]
    assert len(tx) == 30
    assert tx["customer_id"].iloc[0] == "13085"
    assert tx["customer_id"].isna().sum() == 2
    assert tx["order_date"].iloc[0] == pd.Timestamp("2009-12-01 07:45:00")
    assert str(tx["order_date"].dtype) == "datetime64[ns]"
    assert tx["amount"].iloc[0] == pytest.approx(12 * 6.95)
    cancelled = tx[tx["order_id"].str.startswith("C")]
    assert cancelled["order_id"].unique().tolist() == ["C489449", "C491972"]
    assert (cancelled["quantity"] < 0).all()
    assert tx.loc[15, "product_id"] == "POST"
    assert tx.attrs["absent_columns"] == ["amount", "category", "channel"]


def test_uci_country_reaches_the_derived_customers_table(uci_config):
    customers = audit_inputs(uci_config).customers
    assert customers["customer_id"].tolist() == ["12346", "12533", "12682", "13078", "13085", "15362",
                                                 "16321", "18087", "18102"]
    assert customers.set_index("customer_id")["country"].to_dict()["16321"] == "Australia"
    assert customers["customer_id"].is_unique


# ------------------------------------------------------------------------------------- formats

TX_CSV = ("customer_id,order_date,order_id,quantity,unit_price,channel\n"
          "00123,2024-01-05 10:00:00,A1,2,1.50,web\n"
          "12346.0,2024-01-06 11:30:00,A2,1,4,app\n"
          ",2024-01-07 09:00:00,A3,-1,4,web\n")


def expected_tx() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.array(["00123", "12346", pd.NA], dtype="string"),
        "order_date": pd.to_datetime(["2024-01-05 10:00", "2024-01-06 11:30", "2024-01-07 09:00"]).astype(
            "datetime64[ns]"),
        "order_id": pd.array(["A1", "A2", "A3"], dtype="string"),
        "amount": [3.0, 4.0, -4.0],
        "quantity": [2.0, 1.0, -1.0],
        "unit_price": [1.5, 4.0, 4.0],
        "product_id": pd.array([pd.NA] * 3, dtype="string"),
        "category": pd.array([pd.NA] * 3, dtype="string"),
        "channel": pd.array(["web", "app", "web"], dtype="string"),
    })


def test_a_csv_loads_with_canonical_columns_dtypes_and_ids_as_text(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(TX_CSV)
    out = load_table(path, "transactions")
    pd.testing.assert_frame_equal(out, expected_tx())
    assert out.attrs["source"] == str(path)


@pytest.mark.parametrize("suffix", [".csv.gz", ".tsv", ".txt", ".csv.bz2"])
def test_compressed_and_tab_separated_text_files_load_the_same(tmp_path, suffix):
    import bz2
    import gzip

    text = TX_CSV.replace(",", "\t") if suffix == ".tsv" else TX_CSV
    data = text.encode()
    data = gzip.compress(data) if suffix.endswith(".gz") else bz2.compress(data) if suffix.endswith(".bz2") else data
    path = tmp_path / f"tx{suffix}"
    path.write_bytes(data)
    pd.testing.assert_frame_equal(load_table(path, "transactions"), expected_tx())


def test_semicolon_files_with_decimal_commas_load_when_io_decimal_is_comma(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(TX_CSV.replace(",", ";").replace("1.50", "1,50"))
    pd.testing.assert_frame_equal(load_table(path, "transactions", io_options={"decimal": ","}), expected_tx())


def test_latin1_files_load_when_io_encoding_is_set_and_a_utf8_bom_is_ignored(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("customer_id,country\n1,Côte d'Ivoire\n".encode("latin-1"))
    assert load_table(latin, "customers", io_options={"encoding": "latin-1"})["country"].tolist() == ["Côte d'Ivoire"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffcustomer_id,country\n1,France\n".encode("utf-8"))
    assert load_table(bom, "customers")["customer_id"].tolist() == ["1"]


def test_excel_sheets_load_with_native_dates_numbers_and_text_ids(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    import datetime as dt

    book = openpyxl.Workbook()
    book.active.title = "notes"
    sheet = book.create_sheet("orders")
    sheet.append(["Customer", "Date", "Order", "Qty", "Price", "Channel"])
    sheet.append(["00123", dt.datetime(2024, 1, 5, 10), "A1", 2, 1.5, "web"])
    sheet.append([12346.0, dt.datetime(2024, 1, 6, 11, 30), "A2", 1, 4, "app"])
    sheet.append([None, dt.datetime(2024, 1, 7, 9), "A3", -1, 4, "web"])
    path = tmp_path / "tx.xlsx"
    book.save(path)
    columns = {"customer_id": "Customer", "order_date": "Date", "order_id": "Order", "quantity": "Qty",
               "unit_price": "Price", "channel": "Channel"}
    out = load_table(path, "transactions", columns=columns, io_options={"sheet_name": "orders"})
    pd.testing.assert_frame_equal(out, expected_tx())


def test_parquet_files_load_with_numeric_ids_and_native_dates(tmp_path):
    frame = pd.DataFrame({"customer_id": [123.0, 12346.0, None],
                          "order_date": pd.to_datetime(["2024-01-05 10:00", "2024-01-06 11:30", "2024-01-07 09:00"]),
                          "order_id": ["A1", "A2", "A3"], "quantity": [2, 1, -1], "unit_price": [1.5, 4.0, 4.0],
                          "channel": ["web", "app", "web"], "unused": [1, 2, 3]})
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    out = load_table(path, "transactions")
    expected = expected_tx()
    expected["customer_id"] = pd.array(["123", "12346", pd.NA], dtype="string")
    pd.testing.assert_frame_equal(out, expected)


def test_parquet_date_columns_and_categorical_text_are_coerced(tmp_path):
    import datetime as dt

    frame = pd.DataFrame({"customer_id": ["7", "8"], "signup_date": [dt.date(2024, 1, 2), None],
                          "region": pd.Categorical(["North", "South"]), "birth_year": [1980, None]})
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path)
    out = load_table(path, "customers")
    assert out["signup_date"].tolist()[0] == pd.Timestamp("2024-01-02") and pd.isna(out["signup_date"].iloc[1])
    assert out["region"].dtype == "string" and out["region"].tolist() == ["North", "South"]
    assert out["birth_year"].tolist() == [1980, pd.NA]


def test_headers_match_loosely_and_extra_columns_are_dropped(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(" Customer ID ,Email-Opt-In,Notes,Birth Year\n7,Y,vip,1980\n8,n,,\n")
    out = load_table(path, "customers")
    assert out["customer_id"].tolist() == ["7", "8"]
    assert out["email_opt_in"].tolist() == [True, False]
    assert out["birth_year"].tolist() == [1980, pd.NA]
    assert "Notes" not in out.columns and "notes" not in out.columns
    assert out.attrs["columns"]["customer_id"] == "Customer ID"


def test_empty_rows_are_skipped_but_row_numbers_still_match_the_file(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,email_opt_in\n1,yes\n\n,\n2,maybe\n,\n")
    with pytest.raises(DataError, match=r"'maybe' \(row 5\)"):
        load_table(path, "customers")
    path.write_text("customer_id,email_opt_in\n1,yes\n\n,\n2,no\n,\n")
    out = load_table(path, "customers")
    assert out.index.tolist() == [0, 3]
    assert out.attrs["blank_rows"] == 3 and out.attrs["blank_row_examples"] == [1, 2, 4]


def test_a_delimiter_at_the_end_of_every_line_is_tolerated(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,country\n1,France,\n2,Spain,\n")
    assert load_table(path, "customers")["country"].tolist() == ["France", "Spain"]


def test_transactions_without_order_ids_get_one_order_per_row(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,order_date,amount\n1,2024-01-01,10\n1,2024-01-01,5\n")
    out = load_table(path, "transactions")
    assert out["order_id"].tolist() == ["row-2", "row-3"]
    assert out["order_id"].is_unique


def test_load_inputs_resolves_paths_against_the_config_folder_and_skips_absent_optional_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("Kunde;Datum;Umsatz\n1;31.12.2023;12,50\n")
    (tmp_path / "shop.yml").write_text(
        "data:\n  transactions: data/orders.csv\n"
        "columns:\n  transactions: {customer_id: Kunde, order_date: Datum, amount: Umsatz}\n"
        "io:\n  dayfirst: true\n  decimal: ','\n")
    tables = load_inputs(load_config(tmp_path / "shop.yml"))
    assert tables["customers"] is None and tables["campaign"] is None
    tx = tables["transactions"]
    assert tx["order_date"].tolist() == [pd.Timestamp("2023-12-31")] and tx["amount"].tolist() == [12.5]


def test_load_inputs_requires_a_transactions_path(tmp_path):
    (tmp_path / "c.yml").write_text("data:\n  customers: c.csv\n")
    with pytest.raises(ConfigError, match="data.transactions is not set"):
        load_inputs(load_config(tmp_path / "c.yml"))


def test_the_sample_config_loads_the_bundled_sample_like_the_defaults():
    if not (ROOT / "data" / "sample" / "transactions.csv").exists():
        pytest.skip("bundled sample not generated")
    explicit = load_inputs(load_config(ROOT / "data" / "configs" / "sample.yml"))
    default = load_inputs(load_config())
    for table in ("transactions", "customers", "campaign"):
        pd.testing.assert_frame_equal(explicit[table], default[table])
        assert explicit[table].attrs["absent_columns"] == []


def test_customers_derived_from_transactions_take_the_most_frequent_then_latest_country():
    tx = pd.DataFrame({
        "customer_id": pd.array(["b", "a", "a", "a", "a", "b", None], dtype="string"),
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01",
                                      "2024-01-02", "2024-05-01"]),
        "country": pd.array(["Spain", "Spain", "EIRE", "EIRE", "Spain", None, "Norway"], dtype="string"),
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    })
    out = run_audit({"transactions": tx}).customers   # the audit derives them without a customers file
    assert out["customer_id"].tolist() == ["a", "b"]
    # a: Spain 2 lines (latest 2024-04-01) vs EIRE 2 lines (latest 2024-03-01) -> Spain
    assert out["country"].tolist() == ["Spain", "Spain"]
    assert list(out.columns)[:3] == ["customer_id", "signup_date", "country"]
    no_country = run_audit({"transactions": tx.drop(columns="country")}).customers
    assert no_country["country"].isna().all() and len(no_country) == 2


# ---------------------------------------------------------------------------- error catalogue
# Each malformed input must give a DataError naming the file, the column (where one is at fault),
# example rows (1-based as in a spreadsheet) and what to change; the file stays byte-identical.

GOOD_HEADER = "customer_id,order_date,amount\n"


def _excel_bytes(rows: list[list], title: str = "Sheet1") -> bytes:
    import io as _io

    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    buffer = _io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


MALFORMED = {
    "empty file": ("tx.csv", b"", "transactions", None, None,
                   ["tx.csv", "empty (0 bytes)", "Export the transactions table again"]),
    "whitespace only": ("tx.csv", b"\n\n  \n", "transactions", None, None,
                        ["tx.csv", "the file is empty", "header row"]),
    "header only": ("tx.csv", GOOD_HEADER.encode(), "transactions", None, None,
                    ["tx.csv", "header but no data rows", "Export the transactions table with its rows"]),
    "missing required column": (
        "tx.csv", b"Customer,InvoiceDate,amount\n1,2024-01-01,3\n", "transactions", {"customer_id": "Customer"},
        None, ["tx.csv", "required column 'order_date' is missing", "'Customer', 'InvoiceDate', 'amount'",
               "order_date \u2192 'InvoiceDate'", "set columns.transactions.order_date"]),
    "no header row": ("tx.csv", b"1,2024-01-01,3\n2,2024-01-02,4\n", "transactions", None, None,
                      ["tx.csv", "required columns 'customer_id', 'order_date' are missing",
                       "first row looks like data", "needs a header row"]),
    "unparseable dates": (
        "tx.csv", (GOOD_HEADER + "1,2024-01-01,3\n2,yesterday,4\n3,31.02.,5\n").encode(), "transactions", None, None,
        ["tx.csv", "column 'order_date'", "'yesterday', '31.02.'", "rows 3, 4", "io.date_format", "io.dayfirst"]),
    "mixed date formats": (
        "tx.csv", (GOOD_HEADER + "1,2024-01-01,3\n2,05/01/2024,4\n").encode(), "transactions", None, None,
        ["tx.csv", "column 'order_date'", "mixed date formats", "'05/01/2024' (row 3)", "one format"]),
    "day-first and month-first": (
        "tx.csv", (GOOD_HEADER + "1,13/01/2024,3\n2,01/13/2024,4\n").encode(), "transactions", None, None,
        ["tx.csv", "column 'order_date'", "ambiguous dates", "(row 2)", "(row 3)", "consistent format"]),
    "decimal comma": (
        "tx.csv", b"customer_id;order_date;amount\n1;2024-01-01;12,50\n2;2024-01-02;3\n", "transactions", None, None,
        ["tx.csv", "column 'amount'", "'12,50'", "(row 2)", "io.decimal: ','"]),
    "n/a in a numeric column": (
        "tx.csv", (GOOD_HEADER + "1,2024-01-01,3\n2,2024-01-02,n/a\n3,2024-01-03,n/a\n").encode(), "transactions",
        {"amount": "amount"}, None, ["tx.csv", "column 'amount'", "not a number: 'n/a'", "rows 3, 4",
                                     "leave a cell empty"]),
    "text in a mapped price column": (
        "tx.csv", b"cid,date,qty,Price\n1,2024-01-01,1,EUR 5\n", "transactions",
        {"customer_id": "cid", "order_date": "date", "quantity": "qty", "unit_price": "Price"}, None,
        ["tx.csv", "column 'Price' (mapped to 'unit_price')", "'EUR 5'", "(row 2)", "remove currency signs"]),
    "wrong delimiter": (
        "tx.csv", b"customer_id;order_date;amount\n1;2024-01-01;12,50\n", "transactions", None, {"delimiter": ","},
        ["tx.csv", "only one column", "looks like ';'-separated", "Set io.delimiter: ';'"]),
    "tab file read with commas": (
        "tx.tsv", b"customer_id\torder_date\tamount\n1\t2024-01-01\t3\n", "transactions", None, {"delimiter": ","},
        ["tx.tsv", "looks like tab-separated", "io.delimiter: '\\t'"]),
    "wrong encoding": (
        "c.csv", "customer_id,country\n1,France\n2,Côte d'Ivoire\n".encode("latin-1"), "customers", None, None,
        ["c.csv", "not valid UTF-8", "line 3", "io.encoding", "latin-1"]),
    "unquoted delimiter in a value": (
        "c.csv", b"customer_id,country\n1,France\n2,Korea, Republic of\n", "customers", None, None,
        ["c.csv", "line 3 has 3 fields but the header has 2", "double quotes", "io.delimiter"]),
    "values shifted on every row": (
        "c.csv", b"customer_id,country\n1,France,x\n2,Spain,y\n", "customers", None, None,
        ["c.csv", "every data row has more fields than the header", "fix the header row"]),
    "duplicate customer ids": (
        "c.csv", b"customer_id,country\n7,UK\n8,FR\n7.0,DE\n", "customers", None, None,
        ["c.csv", "column 'customer_id'", "duplicate ids: '7'", "rows 2, 4", "one row per customer"]),
    "missing customer id in customers": (
        "c.csv", b"customer_id,country\n7,UK\n,FR\n", "customers", None, None,
        ["c.csv", "column 'customer_id'", "missing values (row 3)", "fill these cells or remove the rows"]),
    "mapping to an unknown column": (
        "tx.csv", (GOOD_HEADER + "1,2024-01-01,3\n").encode(), "transactions", {"customer_id": "Customer_No"}, None,
        ["tx.csv", "columns.transactions.customer_id names column 'Customer_No'", "not in the file",
         "'customer_id', 'order_date', 'amount'", "Fix the column map"]),
    "neither amount nor quantity and price": (
        "tx.csv", b"customer_id,order_date,qty\n1,2024-01-01,3\n", "transactions", None, None,
        ["tx.csv", "needs 'amount' or 'quantity' + 'unit_price'", "quantity \u2192 'qty'",
         "columns.transactions.quantity and columns.transactions.unit_price"]),
    "unsupported extension": ("tx.json", b"[]", "transactions", None, None,
                              ["tx.json", "unsupported file type '.json'", ".parquet", ".xlsx", "convert"]),
    "old excel format": ("tx.xls", b"\xd0\xcf\x11\xe0", "transactions", None, None,
                         ["tx.xls", "unsupported file type '.xls'", "save as .xlsx"]),
    "corrupt parquet": ("tx.parquet", b"PAR1 this is not parquet", "transactions", None, None,
                        ["tx.parquet", "not a readable Parquet file", "export it again"]),
    "corrupt excel": ("tx.xlsx", b"PK\x03\x04 truncated", "transactions", None, None,
                      ["tx.xlsx", "not a readable .xlsx workbook", "save it again"]),
    "booleans with unexpected values": (
        "c.csv", b"customer_id,email_opt_in\n1,yes\n2,maybe\n3,2\n", "customers", None, None,
        ["c.csv", "column 'email_opt_in'", "'maybe', '2'", "rows 3, 4", "1/0, true/false, yes/no or y/n"]),
    "campaign arm missing": (
        "camp.csv", b"campaign_id,customer_id,Group\nc1,1,control\nc1,2,\nc1,3, \n", "campaign", {"arm": "Group"},
        None, ["camp.csv", "column 'Group' (mapped to 'arm')", "missing values (rows 3, 4)", "fill these cells"]),
    "placeholder dates": (
        "c.csv", b"customer_id,signup_date\n1,2020-01-01\n2,9999-12-31\n", "customers", None, None,
        ["c.csv", "column 'signup_date'", "9999-12-31", "(row 3)", "left empty"]),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_inputs_give_a_clear_error_and_leave_the_file_untouched(tmp_path, case):
    name, content, table, columns, options, fragments = MALFORMED[case]
    path = tmp_path / name
    path.write_bytes(content)
    before = sha256(path)
    with pytest.raises(DataError) as err:
        load_table(path, table, columns=columns, io_options=options)
    message = str(err.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert sha256(path) == before


def test_a_missing_file_names_the_path_and_the_config_key(tmp_path):
    with pytest.raises(DataError) as err:
        load_table(tmp_path / "nope.csv", "customers")
    assert str(err.value) == (f"{tmp_path / 'nope.csv'}: the customers file does not exist. Check data.customers "
                              "in the config (relative paths are resolved against the config file's folder).")


def test_a_missing_excel_sheet_lists_the_sheets(tmp_path):
    path = tmp_path / "tx.xlsx"
    path.write_bytes(_excel_bytes([["customer_id", "order_date", "amount"], ["1", "2024-01-01", 3]], "2009-2010"))
    before = sha256(path)
    with pytest.raises(DataError) as err:
        load_table(path, "transactions", io_options={"sheet_name": "Year 2010-2011"})
    assert str(err.value) == (f"{path}: has no sheet 'Year 2010-2011'; its sheets are '2009-2010'. "
                              "Set io.sheet_name in the config to one of these (a name or a 0-based number).")
    with pytest.raises(DataError, match="has no sheet 3"):
        load_table(path, "transactions", io_options={"sheet_name": 3})
    assert sha256(path) == before


def test_excel_row_numbers_in_messages_match_the_sheet(tmp_path):
    path = tmp_path / "c.xlsx"
    path.write_bytes(_excel_bytes([["customer_id", "email_opt_in"], ["1", "yes"], [None, None], ["3", "perhaps"]]))
    with pytest.raises(DataError, match=r"'perhaps' \(row 4\)"):
        load_table(path, "customers")


def test_an_unknown_canonical_name_in_the_column_map_is_a_config_error_naming_the_config(tmp_path):
    (tmp_path / "tx.csv").write_text(GOOD_HEADER + "1,2024-01-01,3\n")
    (tmp_path / "shop.yml").write_text("data:\n  transactions: tx.csv\ncolumns:\n  transactions:\n"
                                       "    customerid: customer_id\n")
    with pytest.raises(ConfigError) as err:
        load_inputs(load_config(tmp_path / "shop.yml"))
    assert str(err.value).startswith("columns.transactions (in shop.yml): 'customerid' is not a canonical "
                                     "transactions column (did you mean 'customer_id'?)")


def test_an_optional_file_that_is_configured_but_missing_is_an_error(tmp_path):
    (tmp_path / "tx.csv").write_text(GOOD_HEADER + "1,2024-01-01,3\n")
    (tmp_path / "shop.yml").write_text("data:\n  transactions: tx.csv\n  campaign: campaign.csv\n")
    with pytest.raises(DataError, match=r"campaign.csv: the campaign file does not exist. Check data.campaign in "
                                        r"the config \(in shop.yml\)"):
        load_inputs(load_config(tmp_path / "shop.yml"))


@pytest.mark.parametrize(("options", "message"), [
    ({"delimiter": ";;"}, "io.delimiter must be one character"),
    ({"encoding": "klingon"}, "io.encoding 'klingon' is not a known encoding"),
    ({"decimal": "."}, None),
    ({"decimal": "'"}, "io.decimal must be '.' or ','"),
    ({"dayfirst": "yes"}, "io.dayfirst must be true or false"),
    ({"delimeter": ";"}, "Unknown io option 'delimeter' \\(did you mean 'delimiter'\\?\\)"),
])
def test_invalid_io_options_are_config_errors(tmp_path, options, message):
    path = tmp_path / "tx.csv"
    path.write_text(GOOD_HEADER + "1,2024-01-01,3\n")
    if message is None:
        assert len(load_table(path, "transactions", io_options=options)) == 1
        return
    with pytest.raises(ConfigError, match=message):
        load_table(path, "transactions", io_options=options)


def test_guest_checkouts_without_customer_id_are_kept_in_transactions(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(GOOD_HEADER + ",2024-01-01,3\n1,2024-01-02,4\n")
    out = load_table(path, "transactions")
    assert out["customer_id"].isna().tolist() == [True, False]


def test_loading_never_modifies_any_input_file(uci_config, tmp_path):
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    before = {p: sha256(p) for p in files}
    stamps = {p: p.stat().st_mtime_ns for p in files}
    load_inputs(uci_config)
    assert {p: sha256(p) for p in files} == before
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
