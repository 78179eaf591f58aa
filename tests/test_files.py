"""Tests of segkit.core.files: how CSV artifacts write numbers."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd

from segkit.core.files import read_frame, write_csv_batches, write_frame


def test_money_of_a_hundred_million_and_more_keeps_its_cents_in_a_csv(tmp_path):
    frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                          "monetary_total": [123456789.12, -123456789.12, 99999999.99, 4.547473509e-13, np.nan],
                          "clv_12m": [1234567890123.45, 21.98666667, 1e8, 0.5, 2.5e16]})
    path = tmp_path / "customer_segments.csv"
    write_frame(path, frame)
    assert path.read_text().splitlines() == [
        "customer_id,monetary_total,clv_12m",
        "a,123456789.12,1234567890123.45",  # %.10g wrote 123456789.1 and 1.234567890e+12
        "b,-123456789.12,21.98666667",
        "c,99999999.99,100000000.00",
        "d,4.547473509e-13,0.5",
        "e,,2.5e+16",
    ]
    back = read_frame(path)
    pd.testing.assert_frame_equal(back, frame)


def test_floats_below_a_hundred_million_are_written_byte_for_byte_as_before(tmp_path):
    rng = np.random.default_rng(16)
    size = 10.0 ** rng.integers(-12, 8, 3000)  # every magnitude below 1e8
    values = rng.choice([-1.0, 1.0], 3000) * rng.random(3000) * size
    values[::97] = np.nan
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(3000)], "value": values,
                          "cents": np.round(values, 2), "p": rng.random(3000)})
    path = tmp_path / "values.csv"
    write_frame(path, frame)
    assert np.nanmax(np.abs(values)) < 1e8
    assert path.read_bytes() == frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()


def test_a_csv_written_from_batches_is_the_csv_of_the_whole_frame_and_holds_one_batch_at_a_time(tmp_path):
    frame = pd.DataFrame({"customer_id": pd.array(["a", "=HYPERLINK(1)", "c", "+d", "e"], dtype="string"),
                          "frequency": pd.array([1, None, 3, 4, 5], dtype="Int64"),
                          "monetary_total": [10.5, -2.0, None, 123456789.01, 0.1 + 0.2],
                          "rfm_segment": pd.array(["Lost", None, "@x", "Champions", "-1"], dtype="string")})
    write_frame(tmp_path / "whole.csv", frame)
    alive_before: list[int] = []
    handed_out: list[weakref.ref] = []

    def batches():
        for start in range(0, len(frame), 2):
            gc.collect()
            alive_before.append(sum(ref() is not None for ref in handed_out))
            yield handed(frame.iloc[start:start + 2].copy())

    def handed(batch: pd.DataFrame) -> pd.DataFrame:
        handed_out.append(weakref.ref(batch))
        return batch

    write_csv_batches(tmp_path / "parts.csv", batches())
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert "'=HYPERLINK(1)" in (tmp_path / "parts.csv").read_text()  # formula cells neutralised in every batch
    assert alive_before == [0, 1, 1]  # only the batch just written is held while the next is made
    assert not list(tmp_path.glob(".*.tmp"))


def test_one_parquet_file_copied_from_parts_has_the_same_bytes_however_spark_split_the_rows(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from segkit.core import files

    monkeypatch.setattr(files, "ROW_GROUP_ROWS", 4)
    rows = pd.DataFrame({"customer_id": [f"c{i:02d}" for i in range(10)], "value": np.arange(10) / 3})
    copies = []
    for n, split in enumerate([(3, 7), (5, 5), (1, 2, 7), (10,)]):
        folder = tmp_path / f"split{n}"
        folder.mkdir()
        start = 0
        for i, size in enumerate(split):  # parts as Spark writes them, each in row groups of its own
            rows.iloc[start:start + size].to_parquet(folder / f"part-{i}.parquet", index=False, row_group_size=2)
            start += size
        files.copy_parquet_parts(files.parquet_parts(folder), folder / "all.parquet",
                                 {"customer_id": "string", "value": "float64"})
        copies.append(folder / "all.parquet")
    assert len({path.read_bytes() for path in copies}) == 1  # the same bytes for every split
    layout = pq.ParquetFile(copies[0]).metadata
    assert [layout.row_group(i).num_rows for i in range(layout.num_row_groups)] == [4, 4, 2]
    assert pd.read_parquet(copies[0]).equals(rows.astype({"customer_id": "string"}))


def test_a_csv_of_no_batch_is_the_header_of_its_columns_as_write_frame_writes_an_empty_frame(tmp_path):
    write_frame(tmp_path / "empty.csv", pd.DataFrame(columns=["customer_id", "rfm_segment"]))
    write_csv_batches(tmp_path / "none.csv", iter(()), ["customer_id", "rfm_segment"])
    assert (tmp_path / "none.csv").read_bytes() == (tmp_path / "empty.csv").read_bytes() == b"customer_id,rfm_segment\n"
