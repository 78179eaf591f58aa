"""The out-of-core audit (segkit.data.engine) finds, cleans and aggregates exactly what the pandas path does."""

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


def _pandas_lines(source, config=None) -> pd.DataFrame:
    """What segkit.data.io gives for the source; a folder is its files concatenated (rows numbered across files)."""
    if source.is_file():
        return load_table(source, "transactions", config=config)
    files = sorted(source.iterdir())
    parts = [load_table(f, "transactions", config=config) for f in files]
    tx = pd.concat(parts, ignore_index=True)
    tx.attrs = dict(parts[0].attrs)
    return tx


def _assert_same_audit(a, b) -> None:
    assert_frame_equal(a.findings, b.findings)
    assert_frame_equal(a.cleaning_rules, b.cleaning_rules)
    assert a.counts == b.counts
    assert (a.as_of, a.period) == (b.as_of, b.period)
    assert_frame_equal(a.missing, b.missing)
    assert_frame_equal(a.checks, b.checks)
    assert_frame_equal(a.daily, b.daily, check_exact=False, rtol=1e-12)
    assert_frame_equal(a.gaps, b.gaps)
    assert_frame_equal(a.outlier_rules, b.outlier_rules, check_exact=False, rtol=1e-12)
    assert_frame_equal(a.customers, b.customers)
    assert_frame_equal(a.order_values, b.order_values, check_exact=False, rtol=1e-12)
    assert_frame_equal(a.quantities, b.quantities)
    assert a.returns == pytest.approx(b.returns, rel=1e-12, nan_ok=True)
    assert list(a.offending) == list(b.offending)
    for key in a.offending:
        assert_frame_equal(a.offending[key], b.offending[key], check_exact=False, rtol=1e-12)
    assert (a.engine, b.engine) == ("pandas", "duckdb")


@pytest.mark.parametrize("name", ["sample_csv", "shop_csv", "shop_parquet", "shop_csv_parts", "shop_parquet_parts"])
def test_engine_audit_equals_run_audit_and_writes_the_same_clean_lines(inputs, name, tmp_path, monkeypatch):
    import segkit.data.engine

    monkeypatch.setattr(segkit.data.engine, "KTH_FETCH", 100)  # exact medians through the histogram passes
    config = load_config()
    expected = run_audit({"transactions": _pandas_lines(inputs[name])}, config=config)
    with TransactionLog(inputs[name], config) as log:
        got = audit_log(log)
        clean = log.write_clean(tmp_path / "transactions_clean.parquet")
    _assert_same_audit(expected, got)
    assert got.transactions is None
    assert got.counts["transactions_rows_in"] > got.counts["transactions_rows_clean"] > 0
    # the clean lines: same columns, dtypes, values and row order as the pandas path
    assert_frame_equal(pd.read_parquet(clean), expected.transactions)


def test_the_five_tuple_entry_point_and_an_explicit_as_of_agree_with_run_audit(inputs):
    config = load_config()
    expected = run_audit({"transactions": _pandas_lines(inputs["shop_csv"])}, as_of="2024-06-01", config=config)
    findings, rules, counts, as_of, period = audit_transactions_from_files(inputs["shop_csv"], config,
                                                                          as_of="2024-06-01")
    assert_frame_equal(findings, expected.findings)
    assert_frame_equal(rules, expected.cleaning_rules)
    assert counts == expected.counts and as_of == pd.Timestamp("2024-06-01") and period == expected.period
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
    expected = run_audit({"transactions": load_table(csv, "transactions", config=config)}, config=config)
    with TransactionLog(csv, config) as log:
        got = audit_log(log)
        clean = pd.read_parquet(log.write_clean(tmp_path / "clean.parquet"))
    _assert_same_audit(expected, got)
    assert_frame_equal(clean, expected.transactions)
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
    (tmp_path / "t.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match="Excel workbooks are read by the in-memory engine only"):
        TransactionLog(tmp_path / "t.xlsx")
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


def test_campaign_retention_from_files_equals_the_in_memory_flags(inputs, tmp_path):
    from segkit.campaign import retention_flags
    from segkit.data.engine import retention_flags_from_files

    shop = generate_shop(n_customers=800, seed=3)
    clean = write_clean_transactions(inputs["shop_parquet"], tmp_path / "clean.parquet")
    lines = pd.read_parquet(clean)
    for days, as_of in ((30, None), (14, "2024-10-01")):
        expected = retention_flags(shop.campaign, lines, days, as_of)
        got = retention_flags_from_files(shop.campaign, clean, days, as_of)
        pd.testing.assert_series_equal(got, expected)
    assert got.isna().any() and (got == 1).any() and (got == 0).any()


def test_rows_empty_in_every_column_are_skipped_and_row_numbers_still_count_them(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,order_id,order_date,amount,channel\n"
                    "a,1,2024-01-01,5,web\n"
                    " , ,, ,\n"                    # row 3: blank
                    ",2,2024-01-02,7,\n"           # row 4: guest
                    ",,,,\n")                      # row 5: blank
    expected = run_audit({"transactions": load_table(path, "transactions")})
    with TransactionLog(path) as log:
        got = audit_log(log)
    _assert_same_audit(expected, got)
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


def test_encodings_duckdb_cannot_read_exactly_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("customer_id,order_date,amount\nZoë,2024-01-01,1\n".encode("cp1252"))
    with pytest.raises(DataError, match="reads UTF-8 and Latin-1 text only"):
        TransactionLog(path, {"io": {"encoding": "cp1252"}})
    with TransactionLog(path, {"io": {"encoding": "latin-1"}}) as log:
        result = audit_log(log)
    assert result.customers["customer_id"].tolist() == ["Zoë"]


def test_kth_smallest_is_exact_on_skewed_values_with_ties_and_a_tiny_fetch():
    from segkit.data.engine import connect, kth_smallest

    rng = np.random.default_rng(0)
    values = np.concatenate([np.ones(3000), rng.lognormal(0, 2, 5000), [1e9, 1e-9], np.full(700, 2.5)])
    con = connect()
    con.register("v", pd.DataFrame({"x": values}))
    ks = [0, 1, 3999, 4000, 5000, len(values) // 2, len(values) - 1]
    got = kth_smallest(con, "v", "x", ks, fetch=20, buckets=16)
    assert got == {k: float(np.sort(values)[k]) for k in ks}
