"""Files segkit writes: atomically (temporary file + ``os.replace``), deterministically, and
formula-safe in CSV; a folder lock between processes; stable JSON.

Every layer that writes a file uses these (datasets, the run folder, the report).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from segkit.core.escaping import neutralise_formula_cells, restore_formula_cells

__all__ = ["atomic_write_bytes", "atomic_write_text", "parquet_parts", "SPARK_PART_FILE", "write_frame", "write_csv_batches", "ROW_GROUP_ROWS", "read_frame", "folder_lock",
    "publish_parquet_parts", "copy_parquet_parts", "dumps_json", "csv_float", "CENTS_FROM", "CENTS_UNTIL"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


#: From this magnitude on, ``%.10g`` would drop cents (123456789.12 -> 123456789.1): two decimals instead.
CENTS_FROM = 1e8
#: From this magnitude on, a float64 no longer holds cents: its shortest exact form instead.
CENTS_UNTIL = 1e15


def csv_float(value: float) -> str:
    """How :func:`write_frame` writes a float in a CSV (pandas ``float_format``; NaN never reaches it).

    ``%.10g`` below :data:`CENTS_FROM` in magnitude (what segkit has always written: short, and exact to
    the cent); two decimals from there to :data:`CENTS_UNTIL`, so that money keeps its cents; beyond, the
    shortest text that reads back as the same float.

    Examples
    --------
    >>> [csv_float(v) for v in (21.98666667, 0.1, -0.0, 99999999.99, 123456789.12, -123456789.5, 2.5e16)]
    ['21.98666667', '0.1', '-0', '99999999.99', '123456789.12', '-123456789.50', '2.5e+16']
    """
    size = abs(value)
    if size < CENTS_FROM:
        return "%.10g" % value
    if size < CENTS_UNTIL:
        return f"{value:.2f}"
    return repr(float(value))


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame atomically as Parquet or CSV (by suffix), deterministically.

    In a CSV, text cells a spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``)
    get a leading ``'`` (:func:`segkit.core.escaping.neutralise_formula_cells`); :func:`read_frame`
    removes it again. Numbers, negative ones too, are written as numbers; floats as :func:`csv_float`
    writes them (money of 1e8 and more keeps its cents). A CSV too large for memory is written from
    batches by :func:`write_csv_batches`, the same bytes.
    """
    path = Path(path)
    if path.suffix == ".csv":
        write_csv_batches(path, [frame])
        return
    if path.suffix != ".parquet":
        raise ValueError(f"unsupported artifact type: {path.name}")
    with _atomic_file(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv_batches(path: Path, batches: Iterable[pd.DataFrame], columns: Sequence[str] = ()) -> None:
    """Write the rows of ``batches`` (frames with the same columns, in order) as one CSV, atomically.

    The bytes are those :func:`write_frame` writes for the batches concatenated (the header once,
    each cell by the same rules), but only one batch is in memory at a time: for a table read
    part by part, such as the files of a Parquet dataset. No batch at all writes the header of
    ``columns`` (as :func:`write_frame` of an empty frame with them).

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> frame = pd.DataFrame({"customer_id": ["a", "=1+1", "c"], "m": [1.5, -2.0, None]})
    >>> write_frame(folder / "whole.csv", frame)
    >>> write_csv_batches(folder / "parts.csv", [frame.iloc[:1], frame.iloc[1:]])
    >>> (folder / "parts.csv").read_bytes() == (folder / "whole.csv").read_bytes()
    True
    """
    path = Path(path)
    with _atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        written = False
        for batch in batches:
            neutralise_formula_cells(batch).to_csv(out, index=False, header=not written, float_format=csv_float,
                                                   lineterminator="\n")
            written = True
        if not written:
            pd.DataFrame(columns=list(columns)).to_csv(out, index=False, lineterminator="\n")


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` that replaces it (mode :data:`_FILE_MODE`) when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_frame(path: Path, **read_csv_args: Any) -> pd.DataFrame:
    """Read a CSV written by :func:`write_frame`: the formula-neutralising ``'`` is removed.

    Examples
    --------
    >>> p = Path(tempfile.mkdtemp()) / "x.csv"
    >>> write_frame(p, pd.DataFrame({"customer_id": ["=1+1", "-7"], "m": [-2.5, 1.0]}))
    >>> p.read_text().splitlines()
    ['customer_id,m', "'=1+1,-2.5", '-7,1']
    >>> read_frame(p, dtype={"customer_id": "string"})["customer_id"].tolist()
    ['=1+1', '-7']
    """
    return restore_formula_cells(pd.read_csv(path, **read_csv_args))


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive lock between processes on an existing folder (``flock`` on the folder itself,
    so no lock file is left behind). A no-op where ``fcntl`` does not exist (Windows), where
    ``segkit run`` also runs one notebook at a time.

    Examples
    --------
    >>> with folder_lock(Path(tempfile.mkdtemp())):
    ...     pass
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


#: A data file of a Spark Parquet write: ``part-<partition>-<job uuid>-c000.snappy.parquet``.
#: A Parquet data file of a Spark dataset: Spark's ``part-00000-<job uuid>-c000.snappy.parquet`` or, once
#: :func:`publish_parquet_parts` renamed it, ``part-00000.parquet`` (group 1: the partition number).
SPARK_PART_FILE = re.compile(r"part-(\d+)[\w.-]*\.parquet")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def publish_parquet_parts(written: Path, dest: Path) -> list[Path]:
    """Make the Parquet dataset a Spark job wrote into ``written`` (a hidden folder beside ``dest``) the
    folder ``dest``, with the same file names and bytes for the same rows.

    The data files (Spark's ``part-<n>-<job uuid>-c000.snappy.parquet``) are renamed ``part-00000.parquet``,
    ``part-00001.parquet`` … in partition order (name order stays row order); Spark's ``_SUCCESS`` and
    Hadoop's ``.*.crc`` checksums are removed. Then ``dest`` is replaced: the old folder is moved aside
    first and removed after, so ``dest`` is at every moment either the old dataset or the new one.

    Parameters
    ----------
    written : Path
        The folder Spark wrote (``frame.write.parquet(str(written))``), on this machine.
    dest : Path
        The dataset's folder; a file or folder already there is replaced.

    Returns
    -------
    list of Path
        The part files of ``dest``, in name order.

    Examples
    --------
    >>> spark = Path(tempfile.mkdtemp()) / ".x.tmp"; spark.mkdir()
    >>> for name in ("part-00001-u-c000.snappy.parquet", "part-00000-u-c000.snappy.parquet", "_SUCCESS",
    ...              ".part-00000-u-c000.snappy.parquet.crc"):
    ...     _ = (spark / name).write_text(name[:12])
    >>> [(p.name, p.read_text()) for p in publish_parquet_parts(spark, spark.with_name("x.parquet"))]
    [('part-00000.parquet', 'part-00000-u'), ('part-00001.parquet', 'part-00001-u')]
    """
    written, dest = Path(written), Path(dest)
    numbered = sorted((int(m.group(1)), path.name) for path in written.iterdir()
                      if path.is_file() and (m := SPARK_PART_FILE.fullmatch(path.name)))
    data = [written / name for _, name in numbered]
    for path in written.iterdir():  # _SUCCESS, .*.crc: Spark's and Hadoop's bookkeeping
        if path not in data:
            _remove(path)
    width = max(5, len(str(len(data) - 1)))
    for i, path in enumerate(data):
        path.rename(written / f"part-{i:0{width}d}.parquet")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    _remove(old)  # left by a process killed here
    if dest.exists() or dest.is_symlink():
        os.replace(dest, old)
    os.replace(written, dest)
    _remove(old)
    return parquet_parts(dest)


#: Rows of each row group :func:`copy_parquet_parts` writes (the last one of a file may be shorter).
ROW_GROUP_ROWS = 65_536


def copy_parquet_parts(files: Iterable[str | Path], path: Path, dtypes: dict[str, str]) -> None:
    """Copy the rows of Parquet files (a Spark dataset's parts, in the order given: row order) into one
    Parquet file at ``path``, batch by batch, atomically: the file a pandas run writes with ``dtypes``.

    Each stored batch is read into pandas, given the pandas ``dtypes`` (column order included: columns not
    named are dropped) and written in row groups of :data:`ROW_GROUP_ROWS` rows (the last one shorter), so
    the driver holds about one row group at a time, never the table, and the file's bytes depend on the rows
    only, not on how Spark split them into parts and batches. No file (or no row) writes an empty file
    with the columns.

    Parameters
    ----------
    files : iterable of path
        The Parquet parts, e.g. :func:`parquet_parts` or :func:`publish_parquet_parts` of a Spark output.
    path : Path
        The Parquet file to write (replaced when the copy succeeds; untouched when it fails).
    dtypes : dict
        Column → pandas dtype of the written file (the dtypes of the DuckDB run's file).

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i, ids in enumerate([["a", "b"], ["c"]]):
    ...     pd.DataFrame({"n": range(len(ids)), "customer_id": ids}).to_parquet(folder / f"part-{i}.parquet")
    >>> copy_parquet_parts(parquet_parts(folder), folder / "all.parquet", {"customer_id": "string", "n": "float64"})
    >>> pd.read_parquet(folder / "all.parquet").to_dict("list")
    {'customer_id': ['a', 'b', 'c'], 'n': [0.0, 1.0, 0.0]}
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    dtypes = dict(dtypes)
    with _atomic_file(Path(path)) as tmp:
        writer = None
        pending: list = []  # converted batches not yet written: fewer than ROW_GROUP_ROWS rows
        try:
            for file in files:
                for batch in pq.ParquetFile(file).iter_batches():
                    frame = pa.Table.from_batches([batch]).to_pandas().astype(dtypes)[list(dtypes)]
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    pending.append(table.cast(writer.schema))
                    if sum(len(t) for t in pending) >= ROW_GROUP_ROWS:
                        held = pa.concat_tables(pending)
                        whole = len(held) - len(held) % ROW_GROUP_ROWS
                        for start in range(0, whole, ROW_GROUP_ROWS):  # one chunk per group: split-free pages
                            writer.write_table(held.slice(start, ROW_GROUP_ROWS).combine_chunks())
                        pending = [held.slice(whole)]
            if pending and sum(len(t) for t in pending):
                writer.write_table(pa.concat_tables(pending).combine_chunks())
            if writer is None:  # no rows: an empty file with the columns
                table = pa.Table.from_pandas(pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes.items()}),
                                             preserve_index=False)
                writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def parquet_parts(folder: str | Path) -> list[Path]:
    """The data files of a Parquet dataset folder written by :func:`publish_parquet_parts`, in name order
    (which is row order); ``[]`` when the folder does not exist or holds none.

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("part-00001.parquet", "part-00000.parquet", "notes.txt"):
    ...     _ = (folder / name).write_text("")
    >>> [p.name for p in parquet_parts(folder)], parquet_parts(folder / "missing")
    (['part-00000.parquet', 'part-00001.parquet'], [])
    """
    return sorted(Path(folder).glob("part-*.parquet"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: Any) -> str:
    """Stable JSON (sorted keys, indented) used for every JSON artifact."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False) + "\n"
