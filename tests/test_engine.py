"""The out-of-core engine computes exactly what the in-memory RFM path computes."""

from __future__ import annotations

import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from segkit.bench.data import order_lines_parquet
from segkit.core.errors import DataError
from segkit.data.engine import input_files, is_file_set, rfm_table_from_files, source_relation
from segkit.data.io import load_table
from segkit.data.orders import rfm_table


def _in_memory(path, as_of=None):
    tx = pd.read_parquet(path) if path.is_file() else pd.concat(
        [pd.read_parquet(p) for p in sorted(path.glob("*.parquet"))], ignore_index=True)
    tx = tx.astype({"customer_id": "string", "order_id": "string"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rfm_table(tx, as_of=as_of)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("as_of", [None, "2023-03-15"])
def test_engine_rfm_equals_the_in_memory_rfm_table(tmp_path, as_of):
    path = order_lines_parquet(tmp_path / "lines.parquet", n_lines=30_000)
    _assert_same(rfm_table_from_files(path, as_of=as_of), _in_memory(path, as_of))


def test_engine_reads_a_folder_of_parts_like_one_file(tmp_path):
    folder = order_lines_parquet(tmp_path / "parts", n_lines=20_000, files=4)
    assert len(list(folder.glob("*.parquet"))) == 4
    _assert_same(rfm_table_from_files(folder), _in_memory(folder))
    _assert_same(rfm_table_from_files(str(folder / "*.parquet")), _in_memory(folder))


def test_engine_handles_returns_fully_returned_orders_and_csv_input(tmp_path):
    tx = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c"],
        "order_id": ["1", "1", "2", "3", "C3", "4"],
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-01-10",
                                      "2024-01-12", "2024-03-01"]),
        "amount": [10.0, -10.0, 25.0, 8.0, -8.0, 4.5],
    })
    csv = tmp_path / "tx.csv"
    tx.to_csv(csv, index=False)
    got = rfm_table_from_files(csv, as_of="2024-03-01")
    # c's only order is on as_of (exclusive); a's order 1 nets to zero: not a purchase. b's C3 (no
    # product: matched by amount) cancels all of order 3, so b kept nothing and is no buyer (issue 16).
    assert got["customer_id"].tolist() == ["a"]
    assert got["frequency"].tolist() == [1]
    assert got["monetary_total"].tolist() == [25.0]
    assert got["recency_days"].tolist() == [29]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_same(got, rfm_table(tx.astype({"customer_id": "string", "order_id": "string"}),
                                    as_of="2024-03-01"))


def test_engine_errors_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        source_relation(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .parquet or .csv files"):
        source_relation(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("who,when\nx,2024-01-01\n")
    with pytest.raises(DataError, match="canonical columns customer_id, order_id, order_date and amount"):
        rfm_table_from_files(bad)


def test_the_large_input_and_audit_bench_cases_run_in_smoke_mode(tmp_path):
    from segkit.bench.cases import build_cases
    from segkit.bench.harness import run_case

    cases = build_cases(tmp_path, smoke=True, only=["large", "audit"], log=lambda _: None)
    assert [c.name for c in cases] == ["large_smoke", "audit_smoke", "audit_growth_smoke"]
    results = {c.name: run_case(c) for c in cases}
    for result in results.values():
        assert all(r["ok"] for r in result["contenders"].values()), result
    audit = results["audit_smoke"]["contenders"]
    assert audit["segkit_engine_audit"]["result"] == audit["pandas_audit"]["result"]   # same audit, both engines
    growth = results["audit_growth_smoke"]["contenders"]
    assert [g["result"]["rows_in"] for g in growth.values()] == [20_000, 60_000]


def test_an_aggregation_that_runs_out_of_its_memory_limit_is_rerun_with_twice_the_limit(tmp_path, monkeypatch):
    """engine.memory_limit bounds memory; a step that cannot spill (100M lines) gets more, up to a ceiling."""
    import segkit.data.engine as engine

    path = order_lines_parquet(tmp_path / "lines.parquet", n_lines=200_000)
    expected = rfm_table_from_files(path, memory_limit="1GB")
    limits = []
    connect = engine.connect

    def recording(*args, **kwargs):
        limits.append(kwargs.get("memory_limit"))
        return connect(*args, **kwargs)

    monkeypatch.setattr(engine, "connect", recording)
    got = rfm_table_from_files(path, memory_limit="1MB")  # far too little for this aggregation
    _assert_same(got, expected)
    assert limits[0] == "1MB" and limits[1] == "2MB" and len(limits) > 2
    assert [engine.size_in_bytes(x) for x in limits] == [10**6 * 2 ** i for i in range(len(limits))]
    monkeypatch.setattr(engine, "memory_ceiling", lambda: 3 * 10**6)
    with pytest.raises(DataError, match=r"lines\.parquet: DuckDB ran out of memory .*even with memory_limit = 2MB"
                                        r".*engine\.temp_directory"):
        rfm_table_from_files(path, memory_limit="1MB")


LINES = "customer_id,order_id,order_date,amount\n{who},1,2024-01-02,10\n"


@pytest.mark.parametrize(("name", "decoy"), [("campaign[1].csv", "campaign1.csv"),
                                             ("orders (2024) [final].csv", "orders (2024) f.csv"),
                                             ("star*.csv", "starX.csv"), ("what?.csv", "whatX.csv")])
def test_an_existing_file_whose_name_holds_wildcards_is_that_file_on_both_engines(tmp_path, name, decoy):
    target, other = tmp_path / name, tmp_path / decoy
    target.write_text(LINES.format(who="right"))
    other.write_text(LINES.format(who="decoy"))   # what the name matches when read as a pattern
    assert not is_file_set(target)
    assert input_files(target) == ([str(target)], "csv")
    assert load_table(target, "transactions")["customer_id"].tolist() == ["right"]

    def read(source) -> list[str]:  # what DuckDB reads for the files
        return sorted(r[0] for r in duckdb.sql(f"SELECT customer_id FROM {source_relation(source)}").fetchall())

    assert read(target) == ["right"]
    assert read([target, other]) == ["decoy", "right"]


def test_wildcards_make_a_glob_only_when_no_file_has_that_name(tmp_path):
    for name in ("c[1].csv", "c1.csv", "c2.csv"):
        (tmp_path / name).write_text(LINES.format(who=name))
    assert is_file_set(tmp_path / "c[0-9].csv")
    assert [Path(f).name for f in input_files(tmp_path / "c[0-9].csv")[0]] == ["c1.csv", "c2.csv"]
    with pytest.raises(DataError, match=r"x\[9\]\.csv: no file matches this pattern, and no file has this name"):
        input_files(tmp_path / "x[9].csv")
