"""DuckDB for every order line: read, audit and aggregate transaction logs of any size.

The order-line computations (orders, purchase days, the RFM base, behaviour features) are the
relational core's queries (:mod:`segkit.data.relational`), written once; this module runs them over
CSV/Parquet files, a folder of them or a glob (:func:`file_lines`), streaming the rows, so that
100M order lines are audited and aggregated on one machine with bounded memory (DuckDB spills to
``temp_directory`` beyond ``memory_limit``); :mod:`segkit.data.orders` runs the same queries over
a pandas frame. Sums are exact (DECIMAL), so results do not depend on DuckDB's parallel summation
order; every listing has an explicit, stable order.

What runs where:

* :class:`TransactionLog` reads, maps and types the order lines in SQL at every size (config
  ``columns`` and ``io`` options, the clear errors of :mod:`segkit.data.io`: file, column, example
  values and rows, what to change), stages them once in a temporary DuckDB database and computes
  the audit's facts there (:meth:`TransactionLog.input_facts`, :meth:`TransactionLog.clean_facts`,
  :meth:`TransactionLog.remove_control_characters`). Its source is CSV (optionally .gz; .bz2
  and .xz and text in other encodings than UTF-8/Latin-1 are read from UTF-8 copies in the
  temporary folder) or Parquet, one file, a folder or a glob; or a frame: an Excel workbook's
  cells read by :func:`segkit.data.io.read_cells`, or the transactions frame given to
  :func:`segkit.audit.run_audit`. A frame's text is typed by the same SQL as a CSV cell.
  What operates on small aggregated tables (one row per day, the statistics of the outlier
  rules, the messages and cleaning rules) is the audit's own code (:mod:`segkit.audit`).
* :meth:`TransactionLog.write_clean` writes ``transactions_clean.parquet`` with DuckDB ``COPY``
  (canonical columns and dtypes, input row order), never materialised in pandas.
* :func:`order_table_from_files`, :func:`rfm_table_from_files`, :func:`purchase_days_from_files`
  and :func:`behaviour_table_from_files` are :func:`segkit.data.orders.order_table`,
  :func:`segkit.data.orders.rfm_table`, :func:`segkit.data.orders.purchase_days` and the behaviour
  columns of :func:`segkit.features.customer_table` over a (clean) line file.
* :func:`choose_engine` reads the ``engine`` config section (``segkit/defaults/engine.yml``): how
  the steps after the audit take their order-level tables (the audit is the same either way).

Row numbers in messages are 0-based data rows over the files in sorted order (one file: the
spreadsheet row as for :mod:`segkit.data.io`; a frame: its integer index), shown 1-based with the
header as row 1.

How cells are read (one rule for every source): a CSV line that is completely empty (not even
delimiters) is skipped by DuckDB's reader and not counted in row numbers (``segkit.data.io``
counts it); dates with month names are read with a fixed list of formats (``01-Dec-2009``,
``Dec 1, 2009`` …); time-zone aware timestamps keep their UTC wall time; DuckDB reads Latin-1
itself, which refuses the bytes 0x80–0x9F (C1 controls; set ``io.encoding: cp1252`` for Windows
exports).

Examples
--------
>>> import tempfile, pathlib
>>> from segkit.bench.data import order_lines_parquet
>>> path = order_lines_parquet(pathlib.Path(tempfile.mkdtemp()) / "l.parquet", n_lines=2000)
>>> rfm = rfm_table_from_files(path)
>>> list(rfm.columns)[:4]
['customer_id', 'recency_days', 'frequency', 'monetary_total']
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import glob as globlib
import inspect
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import duckdb
import numpy as np
import pandas as pd

from segkit.core.config import deep_merge, load_config, redacted_master, resolve_path, spark_connect_refusal
from segkit.core.dates import day_after, parse_as_of
from segkit.core.errors import ConfigError, DataError, first_line, format_rows
from segkit.core.schema import (BOOLEAN_FALSE, BOOLEAN_TRUE, CUSTOMERS, DMY, TRANSACTIONS, TRANSACTIONS_CLEAN_EXTRA,
                                Where, examples, validate)
from segkit.data import io as segio
from segkit.data.relational import sql_identifier as _ident  # the one quoting of SQL text
from segkit.data.relational import sql_literal as _quote
from segkit.data.relational import DuckDBExecutor, OrderLineTables, QueryExecutor, frame_lines, lines_view_sql
from segkit.data.statuses import OrderContract, apply_order_contract
from segkit.data.auditfacts import (
    CONTROL_CHARACTER_CLASS,
    CONTROL_ROWS,
    TX_DROP_RULES,
    AuditSettings,
    CleanFacts,
    ControlCharacterFacts,
    InputFacts,
    OutlierFacts,
    log_bounds,
    row_limit,
    volume_from_counts,
)

__all__ = [
    "EngineSettings",
    "SparkSettings",
    "SPARK_MASTER",
    "OrderLines",
    "TransactionLog",
    "CUSTOMER_ATTRIBUTES",
    "EXCEL_SUFFIXES",
    "derived_customers_table",
    "write_clean_transactions",
    "order_table_from_files",
    "rfm_table_from_files",
    "behaviour_table_from_files",
    "rfm_with_info_from_files",
    "retention_flags_from_files",
    "purchase_days_from_files",
    "first_non_purchase_from_files",
    "choose_engine",
    "kth_smallest",
    "input_files",
    "source_relation",
    "connect",
]

ENGINE_KINDS: tuple[str, ...] = ("auto", "pandas", "duckdb", "spark")
#: What ``engine.spark.master`` may be: a local master (``local``, ``local[4]``, ``local[*]``, ``local[4,2]``),
#: a cluster manager (``spark://``, ``k8s://``, ``mesos://``, ``yarn``) or a Spark Connect address (``sc://``).
SPARK_MASTER = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn|(spark|k8s|mesos)://\S+"
                          r"|sc://([^\s/:;\[\]]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?(;\S*)?")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
# Compressed text that TransactionLog decompresses to a scratch copy first (DuckDB reads .gz only).
DECOMPRESSED_SUFFIXES = tuple(f"{t}{z}" for z in (".bz2", ".xz") for t in (".csv", ".tsv", ".txt"))
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
DECIMAL = "DECIMAL(38, 6)"  # exact sums of money (amounts have at most cents in practice)
# Whitespace that segkit.data.io strips around text cells (pyarrow's trim of Unicode whitespace, common part).
_WS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(160)"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ISO_START = r"^\d{4}-\d{1,2}-\d{1,2}"
_UTC_OFFSET = r"(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_DMY_FIELDS = ("first", "second", "year", "hour", "minute", "second_", "ampm")
_MONTH_NAME_FORMATS = ("%d-%b-%Y", "%d %b %Y", "%d-%b-%Y %H:%M", "%d %b %Y %H:%M", "%d-%b-%Y %H:%M:%S",
                       "%d %b %Y %H:%M:%S", "%d-%B-%Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y")
#: Whitespace trimmed around a cell once its control characters are gone: what Python's
#: ``str.strip()`` removes (RE2; \x1c–\x1f are control characters, removed before).
_WHITESPACE_CLASS = r"[\t-\r\x{20}\x{85}\pZ]"
_MIN_TS, _MAX_TS = "TIMESTAMP '1677-09-22 00:12:43'", "TIMESTAMP '2262-04-11 23:47:16'"


def _ts(value: pd.Timestamp) -> str:
    return f"TIMESTAMP {_quote(pd.Timestamp(value).strftime('%Y-%m-%d %H:%M:%S.%f'))}"


def _float(value: float) -> str:
    """A DOUBLE literal that round-trips exactly."""
    if value is None or not math.isfinite(value):
        return "CAST('nan' AS DOUBLE)" if value is None or math.isnan(value) else f"CAST('{value}' AS DOUBLE)"
    return f"CAST({float(value)!r} AS DOUBLE)"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SparkSettings:
    """Validated ``engine.spark`` section: where the steps after the audit run when ``engine.kind`` is ``spark``.

    Attributes
    ----------
    master : str
        Spark master URL (:data:`SPARK_MASTER`): ``local[*]`` (every local core), ``spark://host:7077``,
        ``yarn``, ``k8s://…``, or a Spark Connect address ``sc://host:15002``.
    conf : dict of str to str
        Spark settings passed through to the session builder (``spark.executor.memory: 4g``;
        ``spark.hadoop.*`` for storage credentials); values as Spark reads them (``true``/``false``).

    Examples
    --------
    >>> SparkSettings.from_section({"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 8}}).conf
    {'spark.sql.shuffle.partitions': '8'}
    >>> SparkSettings.from_section({"master": "localhost"})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: engine.spark.master = 'localhost'; use a Spark master URL (local[*], local[4], spark://host:7077, yarn, k8s://https://host:6443) or a Spark Connect address (sc://host:15002) (see segkit/defaults/engine.yml).
    """

    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_section(cls, section: Any, where: str = "see segkit/defaults/engine.yml") -> "SparkSettings":
        """Read and check an ``engine.spark`` mapping (None = the defaults); ConfigError otherwise."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigError(f"engine.spark = {section!r}; use a mapping with master and conf, e.g. "
                              f"spark: {{master: 'local[*]', conf: {{}}}} ({where}).")
        unknown = sorted(set(map(str, section)) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"engine.spark: unknown key(s) {', '.join(unknown)}; known: master, conf ({where}).")
        master = section.get("master", cls.master)
        if not isinstance(master, str) or not SPARK_MASTER.fullmatch(master.strip()):
            raise ConfigError(redacted_master(f"engine.spark.master = {master!r}; use a Spark master URL (local[*], "
                                              "local[4], spark://host:7077, yarn, k8s://https://host:6443) or a Spark "
                                              f"Connect address (sc://host:15002) ({where})."))
        conf = section.get("conf") or {}
        if not isinstance(conf, Mapping):
            raise ConfigError(f"engine.spark.conf = {conf!r}; use a mapping of Spark settings, e.g. "
                              f"conf: {{spark.executor.memory: 4g}} ({where}).")
        checked: dict[str, str] = {}
        for key, value in conf.items():
            if not isinstance(key, str) or not key.startswith("spark."):
                raise ConfigError(f"engine.spark.conf: {key!r} is not a Spark setting; Spark settings start with "
                                  f"'spark.' (spark.executor.memory: 4g; Hadoop ones as spark.hadoop.*) ({where}).")
            if isinstance(value, bool):
                checked[key] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                checked[key] = str(value)
            else:
                raise ConfigError(f"engine.spark.conf.{key} = {value!r}; use one value (text, number or "
                                  f"true/false), as spark-submit --conf takes it ({where}).")
        refusal = spark_connect_refusal(master, checked)
        if refusal:
            raise ConfigError(f"{refusal} ({where}).")
        return cls(master=master.strip(), conf=checked)


@dataclass(frozen=True)
class EngineSettings:
    """Validated ``engine`` section of the configuration (``segkit/defaults/engine.yml``).

    Attributes
    ----------
    kind : {"auto", "pandas", "duckdb", "spark"}
        How the steps after the audit take their order-level tables from the clean lines
        (:mod:`segkit.steps.sources`): ``pandas`` = ``transactions_clean`` read into memory,
        ``duckdb`` = aggregated out-of-core from the file, ``spark`` = the relational core's queries
        run on Apache Spark (:attr:`spark`); ``auto`` = DuckDB when the input is
        larger than ``auto_threshold_mb`` or is a folder/glob of files. The audit ignores it: the
        order lines are read, audited and cleaned by :class:`TransactionLog` (DuckDB) whatever
        the kind; ``audit_summary.json`` records the kind under ``engine``.
    auto_threshold_mb : float
        Input size (MB on disk) above which ``auto`` picks DuckDB.
    memory_limit : str or None
        DuckDB memory limit (e.g. ``"1500MB"``); beyond it DuckDB spills to disk.
    temp_directory : str or None
        Where DuckDB stages and spills (None = the system's temporary folder).
    threads : int or None
        DuckDB threads (None = all cores).
    plot_sample : int
        Order values / quantities kept for the audit's plots when the engine is DuckDB.
    spark : SparkSettings
        The ``engine.spark`` section (master URL, settings passed through), read whatever the kind.

    Examples
    --------
    >>> EngineSettings.from_config({"engine": {"kind": "spark"}}).spark.master
    'local[*]'
    >>> EngineSettings.from_config({"engine": {"kind": "polars"}})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: engine.kind = 'polars'; use one of auto, pandas, duckdb, spark (see segkit/defaults/engine.yml).
    """

    kind: str = "auto"
    auto_threshold_mb: float = 500.0
    memory_limit: str | None = "1500MB"
    temp_directory: str | None = None
    threads: int | None = None
    plot_sample: int = 100_000
    spark: SparkSettings = field(default_factory=SparkSettings)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "EngineSettings":
        """Read and check ``config["engine"]`` (missing keys keep the defaults); ConfigError otherwise."""
        section = dict((config or {}).get("engine") or {})
        where = "see segkit/defaults/engine.yml"
        unknown = sorted(set(section) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"engine: unknown key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)} ({where}).")
        out = cls(**{**section, "spark": SparkSettings.from_section(section.get("spark"), where)})
        if out.kind not in ENGINE_KINDS:
            raise ConfigError(f"engine.kind = {out.kind!r}; use one of {', '.join(ENGINE_KINDS)} ({where}).")
        if isinstance(out.auto_threshold_mb, bool) or not isinstance(out.auto_threshold_mb, (int, float)) \
                or out.auto_threshold_mb < 0:
            raise ConfigError(f"engine.auto_threshold_mb = {out.auto_threshold_mb!r}; use a size in MB ≥ 0 ({where}).")
        if out.memory_limit is not None and not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*",
                                                             str(out.memory_limit), flags=re.IGNORECASE):
            raise ConfigError(f"engine.memory_limit = {out.memory_limit!r}; use a size such as '1500MB' or '4GB', "
                              f"or null for DuckDB's default ({where}).")
        if out.threads is not None and (isinstance(out.threads, bool) or not isinstance(out.threads, int)
                                        or out.threads < 1):
            raise ConfigError(f"engine.threads = {out.threads!r}; use a whole number ≥ 1 or null ({where}).")
        if isinstance(out.plot_sample, bool) or not isinstance(out.plot_sample, int) or out.plot_sample < 100:
            raise ConfigError(f"engine.plot_sample = {out.plot_sample!r}; use a whole number ≥ 100 ({where}).")
        return out


# ----------------------------------------------------------------------------- files
GLOB_CHARACTERS = "*?["


def is_file_set(path: str | Path) -> bool:
    """True when ``path`` names a transaction log split into files: a folder, or a glob.

    A path that exists is never a glob: ``orders (2024) [final].csv`` is that file although
    ``*``, ``?`` and ``[`` are wildcards; they act as such only when nothing has that name.

    Examples
    --------
    >>> is_file_set("exports/orders-*.parquet"), is_file_set("orders.csv")
    (True, False)
    """
    path = Path(path)
    return path.is_dir() or (not path.exists() and any(ch in str(path) for ch in GLOB_CHARACTERS))


def is_workbook(source: Any) -> bool:
    """True when ``source`` is one Excel file (``.xlsx``, ``.xlsm``; ``.xls`` is refused with advice),
    which :mod:`segkit.data.io` reads for :class:`TransactionLog` (DuckDB reads no Excel).

    Examples
    --------
    >>> is_workbook("orders.xlsx"), is_workbook("orders.csv"), is_workbook(["a.xlsx", "b.xlsx"])
    (True, False, False)
    """
    return isinstance(source, (str, Path)) and str(source).lower().endswith(EXCEL_SUFFIXES)


def glob_literal(path: str | Path) -> str:
    """``path`` with its wildcards bracketed (``[`` → ``[[]``, ``*`` → ``[*]``, ``?`` → ``[?]``), so that
    DuckDB's ``read_csv``/``read_parquet``, which take every path as a glob, read exactly that file.

    Examples
    --------
    >>> glob_literal("br/orders (2024) [final].csv"), glob_literal("a*b?.csv")
    ('br/orders (2024) [[]final].csv', 'a[*]b[?].csv')
    """
    return re.sub(r"[*?\[]", lambda m: f"[{m.group()}]", str(path))


def input_files(source: str | Path | Sequence[str | Path], *, decompress: bool = False,
                what: str = "the transaction log") -> tuple[list[str], str]:
    """The files of ``source`` (a file, a folder, a glob, or a list of them) and their format.

    A folder is read as all its ``*.parquet`` files, else all its CSV files (``.csv``, ``.tsv``,
    ``.txt``, optionally ``.gz``); files are taken in sorted order.

    Returns
    -------
    (files, kind) : (list of str, {"parquet", "csv"})

    ``decompress``: also accept ``.bz2``/``.xz`` CSV files (kind ``"csv"``), which
    :class:`TransactionLog` decompresses to a scratch copy before DuckDB reads them. ``what``: the table the
    files hold, as messages name it.

    Raises
    ------
    DataError
        Nothing found, a format DuckDB cannot stream (Excel; .bz2/.xz unless ``decompress``), or
        Parquet mixed with CSV.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "b.csv").write_text("a\\n1\\n"); _ = (d / "a.csv").write_text("a\\n2\\n")
    >>> [pathlib.Path(f).name for f in input_files(d)[0]], input_files(d)[1]
    (['a.csv', 'b.csv'], 'csv')
    """
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    files: list[str] = []
    for p in paths:
        p = Path(p)
        if is_file_set(p) and not p.is_dir():
            found = sorted(f for f in globlib.glob(str(p)) if Path(f).is_file())
            if not found:
                raise DataError(f"{p}: no file matches this pattern, and no file has this name "
                                f"({', '.join(GLOB_CHARACTERS)} are wildcards). Check the path of {what}.")
            files += found
        elif p.is_dir():
            found = sorted(p.glob("*.parquet")) or sorted(p.glob("*.pq")) or sorted(
                f for f in p.iterdir() if f.name.lower().endswith(CSV_SUFFIXES))
            if not found:
                raise DataError(f"{p}: the folder holds no .parquet or .csv files. Point at the files "
                                f"of {what} (a file, a folder of them, or a glob).")
            files += [str(f) for f in found]
        elif not p.exists():
            raise DataError(f"{p}: file not found. Check the path of {what}.")
        else:
            files.append(str(p))
    kinds = set()
    for f in files:
        name = f.lower()
        if name.endswith(PARQUET_SUFFIXES):
            kinds.add("parquet")
        elif name.endswith(CSV_SUFFIXES) or (decompress and name.endswith(DECOMPRESSED_SUFFIXES)):
            kinds.add("csv")
        elif name.endswith(EXCEL_SUFFIXES):
            raise DataError(f"{f}: an Excel workbook is read as {what} only as one local file given by its path, "
                            "not as a part of a folder or glob, nor by Spark (a file: URI). Export it as CSV or "
                            "Parquet.")
        elif name.endswith((".bz2", ".xz")):
            raise DataError(f"{f}: order-line files here are read as plain or .gz-compressed CSV, or Parquet. "
                            "Recompress the file with gzip (or export Parquet).")
        else:
            raise DataError(f"{f}: unsupported file type for the large-input engine. Use CSV (.csv, .tsv, .txt, "
                            "optionally .gz) or Parquet (.parquet).")
    if len(kinds) > 1:
        raise DataError(f"{source}: mixes Parquet and CSV files; convert them to one format.")
    return files, kinds.pop()


def input_bytes(source: str | Path | Sequence[str | Path]) -> int:
    """Total size on disk of the files of ``source`` (see :func:`input_files`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"; _ = p.write_text("a\\n1\\n")
    >>> input_bytes(p)
    4
    """
    return sum(os.path.getsize(f) for f in input_files(source)[0])


def source_relation(source: str | Path | Sequence[str | Path], csv_options: Mapping[str, Any] | None = None) -> str:
    """SQL table expression reading ``source``: a file, a folder of files, a glob, or a list.

    Parquet and CSV (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``) are supported; a folder is
    read as all its ``*.parquet`` files, else all its CSV files (see :func:`input_files`). Files
    with different columns are combined by column name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"; _ = p.write_text("a\\n1\\n")
    >>> source_relation(p).startswith("read_csv(")
    True
    """
    files, kind = input_files(source)
    listing = "[" + ", ".join(_quote(glob_literal(f)) for f in files) + "]"
    if kind == "parquet":
        return f"read_parquet({listing}, union_by_name = true)"
    if csv_options:
        opts = "".join(f", {k} = {v}" for k, v in csv_options.items())
        return f"read_csv({listing}, header = true{opts})"
    return f"read_csv({listing}, union_by_name = true, header = true)"



def connect(memory_limit: str | None = None, threads: int | None = None,
            temp_directory: str | Path | None = None, database: str | Path | None = None,
            preserve_order: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for bounded-memory work (spills to ``temp_directory``).

    ``preserve_order=True`` keeps the insertion order of scans (needed when rows are staged or
    written in input order); ``database`` is a file for staged tables (None = in memory).

    Examples
    --------
    >>> connect(memory_limit="500MB").sql("SELECT current_setting('memory_limit')").fetchall()[0][0] != ""
    True
    """
    con = duckdb.connect(str(database) if database else ":memory:")
    con.execute(f"SET preserve_insertion_order = {'true' if preserve_order else 'false'}")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")  # time-zone aware inputs keep their UTC wall time
    if memory_limit:
        con.execute(f"SET memory_limit = {_quote(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory:
        con.execute(f"SET temp_directory = {_quote(str(temp_directory))}")
    return con


def choose_engine(config: Mapping[str, Any]) -> str:
    """``"pandas"``, ``"duckdb"`` or ``"spark"``: how the steps after the audit read the run's clean
    lines (``engine.kind``; ``auto`` by size, never Spark). The audit is DuckDB's for every kind but
    ``spark`` (:mod:`segkit.data.spark_audit`).

    ``auto`` picks DuckDB when ``data.transactions`` is a folder or a glob, or a file larger than
    ``engine.auto_threshold_mb``; Excel and .bz2/.xz inputs give pandas.

    Examples
    --------
    >>> choose_engine({"engine": {"kind": "auto"}, "data": {"transactions": None}})
    'pandas'
    """
    settings = EngineSettings.from_config(config)
    if settings.kind != "auto":
        return settings.kind

    path = resolve_path(config, (config.get("data") or {}).get("transactions"))
    if path is None:
        return "pandas"
    if is_file_set(path):
        return "duckdb"
    if not path.is_file() or path.name.lower().endswith((".xlsx", ".xlsm", ".xls", ".bz2", ".xz")):
        return "pandas"
    return "duckdb" if path.stat().st_size > settings.auto_threshold_mb * 2**20 else "pandas"


# ----------------------------------------------------------------------------- column mapping in SQL
@dataclass
class _Mapped:
    """How the user's files (or a frame of their cells) map onto canonical transactions."""

    numbered: str                 # raw table expression with the 0-based input row ``_row``
    source: str                   # for messages
    labels: dict[str, str]        # canonical → user column (for messages)
    names: dict[str, str]         # canonical → column of ``numbered``
    types: dict[str, str]         # canonical → DuckDB type of the user column
    columns: list[str]            # canonical columns of the staged table (canonical order)
    absent: list[str]             # canonical columns the input did not have (or derived)


def _describe(con: duckdb.DuckDBPyConnection, relation: str, source: str) -> list[tuple[str, str]]:
    try:
        return [(r[0], r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    except duckdb.Error as exc:
        raise DataError(f"{source}: cannot be read ({first_line(exc)}). Check that the files are complete CSV "
                        "or Parquet files with a header row; for CSV, set io.delimiter / io.encoding if needed.") \
            from None


_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def size_in_bytes(size: str) -> int:
    """Bytes of a DuckDB size such as ``"1500MB"`` or ``"4 GiB"`` (MB = 10^6 bytes, MiB = 2^20).

    Examples
    --------
    >>> size_in_bytes("1500MB"), size_in_bytes("2GiB")
    (1500000000, 2147483648)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", str(size))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"engine.memory_limit = {size!r}; use a size such as '1500MB' or '4GB'.")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def memory_ceiling() -> int:
    """Largest DuckDB memory limit an automatic retry may use: half of this machine's memory
    (the rest is for the notebook's pandas tables and everything else running)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf (Windows)
        return 4 * 10**9


def _grow_memory_limit(func: _F) -> _F:
    """Rerun an out-of-core aggregation with twice the ``memory_limit`` when DuckDB runs out of it.

    ``engine.memory_limit`` keeps small and medium inputs in bounded memory; some steps cannot
    spill everything to disk (a sort or a hash table of tens of millions of customers and orders,
    the result handed to pandas), and at 100M order lines they need more. The limit doubles up to
    :func:`memory_ceiling`; beyond it the error says what to do. No limit (None) = DuckDB's own
    default, not retried.
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        limit = bound.arguments.get("memory_limit")
        while True:
            try:
                return func(*bound.args, **bound.kwargs)
            except duckdb.OutOfMemoryException as exc:
                if limit is None:
                    raise DataError(f"{bound.arguments.get('source')}: DuckDB ran out of memory aggregating the "
                                    f"transaction log ({first_line(exc)}). Set engine.memory_limit and "
                                    "engine.temp_directory (a disk with free space).") from None
                larger = 2 * size_in_bytes(limit)
                if larger > memory_ceiling():
                    raise DataError(
                        f"{bound.arguments.get('source')}: DuckDB ran out of memory aggregating the transaction log "
                        f"even with memory_limit = {limit} ({first_line(exc)}); segkit doubles engine.memory_limit "
                        f"up to half of this machine's memory ({memory_ceiling() / 1e9:.1f} GB). Close other "
                        "programs, set engine.temp_directory to a disk with free space (DuckDB spills there), or "
                        "run on a machine with more memory.") from None
                limit = f"{larger // 10**6}MB"
                bound.arguments["memory_limit"] = limit

    return wrapper  # type: ignore[return-value]


def _utf8_inputs(files: list[str], opts: Mapping[str, Any], scratch: Path) -> tuple[list[str], dict[str, Any]]:
    """The CSV files as DuckDB reads them, and the read options for them.

    Files DuckDB's CSV reader does not read directly are transcoded to UTF-8 copies in ``scratch``
    (the inputs are only read): text in another encoding than UTF-8 or Latin-1 (UTF-16 and UTF-32
    announced by a byte-order mark, or ``io.encoding`` such as cp1252), and ``.bz2``/``.xz``
    compressed files; the options then say UTF-8. Other files are returned as they are.
    """
    direct = ("utf-8", "iso8859-1")  # codec names of what DuckDB reads itself (utf-8-sig is utf-8)
    encodings = [segio.text_encoding(name, opts.get("encoding")) for name in files]
    if all(codecs.lookup(e).name.split("-sig")[0] in direct for e in encodings) and not any(
            name.lower().endswith(DECOMPRESSED_SUFFIXES) for name in files):
        return list(files), dict(opts)
    scratch.mkdir(parents=True, exist_ok=True)
    out = [str(segio.utf8_copy(name, encoding, scratch / f"part-{i:05d}.csv"))
           for i, (name, encoding) in enumerate(zip(files, encodings))]
    return out, {**opts, "encoding": None}


def csv_layout(files: Sequence[str], opts: Mapping[str, Any], names: Sequence[str] | None = None,
               what: str = "the transaction log") -> tuple[str, list[str]]:
    """The delimiter and the header of CSV ``files`` as :mod:`segkit.data.io` reads them: the delimiter
    sniffed on the first file unless ``io.delimiter``, the header of the first file, which every file must
    have (else a DataError naming the file), text decoded as ``io.encoding`` says (default UTF-8).
    ``names`` are the files as messages name them (the user's files, when ``files`` are UTF-8 copies);
    ``what`` is the table the files hold, as messages name it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"; _ = p.write_text("a;b\\n1;2\\n")
    >>> csv_layout([str(p)], {})
    (';', ['a', 'b'])
    """
    shown = list(names or files)
    encoding = codecs.lookup(str(opts.get("encoding") or "utf-8")).name
    headers: list[list[str]] = []
    delimiter = opts.get("delimiter")
    for f, path in zip(files, map(Path, shown)):
        sample = segio.file_sample(Path(f), ".gz" if f.lower().endswith(".gz") else None)
        if not sample.strip():
            raise DataError(f"{path}: the file is empty. Export {what} again (with a header row and data rows).")
        text = sample.decode(encoding, errors="replace").lstrip("\ufeff")
        if delimiter is None:
            delimiter = segio.sniff_delimiter(text) or ("\t" if ".tsv" in path.name.lower() else ",")
        headers.append(next(csv.reader([text.splitlines()[0]], delimiter=delimiter)))
        repeated = sorted({h for h in headers[-1] if headers[-1].count(h) > 1})
        if repeated:
            raise DataError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once. Give every "
                            "column its own name in the export.")
        if headers[-1] != headers[0]:
            raise DataError(f"{path}: its header {headers[-1]!r} differs from that of {shown[0]} ({headers[0]!r}). "
                            f"Export every part of {what} with the same columns.")
    return str(delimiter), headers[0]


def _csv_options(files: list[str], opts: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, str]:
    """``read_csv`` options for the files: the delimiter and header of :func:`csv_layout`, all text."""
    encoding = opts.get("encoding") or "utf-8"
    codec = codecs.lookup(str(encoding)).name
    if codec.startswith("utf-8"):
        duck_encoding = "utf-8"
    elif codec == "iso8859-1":
        duck_encoding = "latin-1"
    else:  # pragma: no cover - _utf8_inputs transcodes every other encoding
        raise DataError(f"io.encoding {encoding!r}: DuckDB reads UTF-8 and Latin-1 text only; other "
                        "encodings are read from UTF-8 copies (_utf8_inputs). This is a bug: please report it.")
    delimiter, header = csv_layout(files, {**opts, "encoding": duck_encoding}, names)
    columns = "{" + ", ".join(f"{_quote(h)}: 'VARCHAR'" for h in header) + "}"
    return {"delim": _quote(delimiter), "quote": "'\"'", "escape": "'\"'", "columns": columns,
            "encoding": _quote(duck_encoding), "auto_detect": "false", "strict_mode": "true"}


def _map_columns(con: duckdb.DuckDBPyConnection, source: Any, config: Mapping[str, Any] | None,
                 scratch: Path) -> _Mapped:

    files, kind = input_files(source, decompress=True)
    label = files[0] if len(files) == 1 else f"{source} ({len(files)} files)"
    opts = segio.read_options(config)
    config_hint = segio.config_file_hint(config)
    mapping = segio.check_column_map("transactions", ((config or {}).get("columns") or {}).get("transactions"),
                                     config_hint)
    if kind == "parquet":
        relation = source_relation(files)
    else:
        readable, readable_opts = _utf8_inputs(files, opts, scratch)
        relation = source_relation(readable, _csv_options(readable, readable_opts, names=files))
    described = _describe(con, relation, label)
    header = [name for name, _ in described]
    positions = segio.resolve_columns(header, TRANSACTIONS, mapping, label, config_hint)
    labels = {c: header[p] for c, p in positions.items()}
    types = {c: described[p][1] for c, p in positions.items()}
    # the columns used, under their canonical names: a user column named _row stays apart from the numbering
    used = ", ".join(f"{_ident(u)} AS {_ident(c)}" for c, u in labels.items())
    return _mapped(f"(SELECT {used}, CAST(ordinality - 1 AS BIGINT) AS _row FROM {relation} WITH ORDINALITY)",
                   label, labels, {c: c for c in labels}, types)


def _mapped(numbered: str, source: str, labels: dict[str, str], names: dict[str, str],
            types: dict[str, str]) -> _Mapped:
    known = {**TRANSACTIONS.dtypes, **TRANSACTIONS.extra}
    columns = [c for c in known if c in labels or c in ("order_id", "amount")]
    absent = [c for c in TRANSACTIONS.columns if c not in labels]
    return _Mapped(numbered=numbered, source=source, labels=labels, names=names, types=types, columns=columns,
                   absent=absent)


#: How an input maps onto canonical transactions, public for the readers of other engines
#: (:meth:`TransactionLog.map_source`, :mod:`segkit.data.spark_audit`).
MappedInput = _Mapped
mapped_input = _mapped

FRAME_VIEW = "_segkit_frame"  # the name a frame of order lines is registered under in DuckDB


def _map_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, config: Mapping[str, Any] | None) -> _Mapped:
    """Register the order lines of ``frame`` in DuckDB for :func:`_stage_sql`.

    ``frame`` has canonical column names (:func:`segkit.data.io.read_cells`: the cells as the file
    holds them, text for CSV and Excel; or a canonical table such as :func:`segkit.data.io.load_table`
    returns, or one built by hand). Its ``attrs`` may give ``source`` (file, for messages),
    ``columns`` (canonical → the file's column names, for messages) and ``absent_columns``
    (canonical columns the file did not have: derived ones are derived again in SQL). Text and
    other object columns are handed over as text, so DuckDB parses them by the rules it applies to
    CSV cells; numbers and dates keep their type. The row of a cell is the frame's integer index
    (0-based data row of the file), else its position.
    """
    source = str(frame.attrs.get("source") or "transactions")
    config_hint = segio.config_file_hint(config)
    absent = set(frame.attrs.get("absent_columns") or ())
    header = [c for c in frame.columns if isinstance(c, str) and c in TRANSACTIONS.known and c not in absent]
    positions = segio.resolve_columns(header, TRANSACTIONS, {}, source, config_hint)
    shown = dict(frame.attrs.get("columns") or {})
    cells = {}
    for c, p in positions.items():
        values = frame[header[p]].reset_index(drop=True)
        kind = values.dtype.kind if not isinstance(values.dtype, pd.CategoricalDtype) else "O"
        if not (kind in "fiuM" or isinstance(values.dtype, pd.DatetimeTZDtype)):
            values = values.astype(object).astype("string")
        cells[c] = values
    integer_index = pd.api.types.is_integer_dtype(frame.index.dtype) and frame.index.is_unique
    cells["_row"] = np.asarray(frame.index if integer_index else np.arange(len(frame)), dtype="int64")
    con.register(FRAME_VIEW, pd.DataFrame(cells, index=pd.RangeIndex(len(frame))))
    types = {c: t for c, t in _describe(con, FRAME_VIEW, source) if c in positions}
    labels = {c: str(shown.get(c, c)) for c in positions}
    return _mapped(f"(SELECT * FROM {FRAME_VIEW})", source, labels, {c: c for c in positions}, types)


def _is_text(sql_type: str) -> bool:
    return sql_type.upper() in ("VARCHAR", "TEXT", "STRING", "BLOB")


def _is_numeric(sql_type: str) -> bool:
    t = sql_type.upper()
    return t in ("DOUBLE", "FLOAT", "REAL", "BOOLEAN", "HUGEINT", "UHUGEINT") or t.startswith(
        ("DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"))


def _is_temporal(sql_type: str) -> bool:
    return sql_type.upper().startswith(("TIMESTAMP", "DATE"))


def _stage_sql(m: _Mapped, opts: Mapping[str, Any], offsets: bool = False) -> tuple[str, dict[str, str]]:
    """SQL creating the staged ``lines`` table, and canonical → kind of parse check per column.

    Levels: ``a`` = raw rows with their 0-based row and blank rows removed; ``b`` = trimmed text
    (or typed numbers/dates); ``c`` = canonical values plus ``_bad_<col>`` (the raw text of cells
    that cannot be read, NULL otherwise) and, for text dates, their kind (ISO / day-month).
    """
    raw = {c: _ident(u) for c, u in m.names.items()}
    level_b, level_c, checks = ["_row"], ["_row"], {}
    decimal = opts.get("decimal", ".")
    date_format = opts.get("date_format")
    dayfirst = bool(opts.get("dayfirst"))
    for c in m.labels:
        dtype = TRANSACTIONS.known[c]
        t_type, r = m.types[c], raw[c]
        if c.endswith("_id") or dtype == "string":
            level_b.append(f"nullif(trim(CAST({r} AS VARCHAR), {_WS}), '') AS {_ident('_t_' + c)}")
            t = _ident("_t_" + c)
            # only ids with a "." can look like a float ("12346.0"); the regex runs on those alone
            value = (f"CASE WHEN contains({t}, '.') THEN regexp_replace({t}, '^(-?\\d+)\\.0+$', '\\1') ELSE {t} END"
                     if c.endswith("_id") else t)
            level_c.append(f"{value} AS {_ident(c)}")
        elif dtype == "float64":
            if _is_numeric(t_type):
                level_b.append(f"CAST({r} AS DOUBLE) AS {_ident('_x_' + c)}")
                x = _ident("_x_" + c)
                level_c.append(f"CASE WHEN isnan({x}) THEN NULL ELSE {x} END AS {_ident(c)}")
                level_c.append(f"CASE WHEN isinf({x}) THEN CAST({x} AS VARCHAR) END AS {_ident('_bad_' + c)}")
                checks[c] = "infinite"
            elif _is_text(t_type):
                level_b.append(f"nullif(trim(CAST({r} AS VARCHAR), {_WS}), '') AS {_ident('_t_' + c)}")
                t = _ident("_t_" + c)
                number = t
                if decimal == ",":
                    number = (f"replace(CASE WHEN regexp_full_match({t}, '^[-+]?\\d{{1,3}}(?:\\.\\d{{3}})+(?:,\\d+)?$') "
                              f"THEN replace({t}, '.', '') ELSE {t} END, ',', '.')")
                parsed = f"CASE WHEN regexp_full_match({number}, {_quote(_NUMBER)}) THEN TRY_CAST({number} AS DOUBLE) END"
                level_c.append(f"CASE WHEN isfinite({parsed}) THEN {parsed} END AS {_ident(c)}")
                level_c.append(f"CASE WHEN {t} IS NOT NULL AND NOT coalesce(isfinite({parsed}), false) THEN {t} END "
                               f"AS {_ident('_bad_' + c)}")
                checks[c] = "number"
            else:
                raise DataError(f"{m.source}: column {m.labels[c]!r} (mapped to {c!r}) has type {t_type}, which is "
                                "not a number. Export it as numbers, or map another column.")
        elif dtype == "boolean":  # as segkit.core.schema.coerce_boolean: yes/no, true/false, 1/0, y/n, any case
            level_b.append(f"nullif(trim(CAST({r} AS VARCHAR), {_WS}), '') AS {_ident('_t_' + c)}")
            t = _ident("_t_" + c)
            token = f"regexp_replace(lower({t}), '^(-?\\d+)\\.0+$', '\\1')"
            flag = (f"(CASE WHEN {token} IN ({', '.join(map(_quote, BOOLEAN_TRUE))}) THEN true "
                    f"WHEN {token} IN ({', '.join(map(_quote, BOOLEAN_FALSE))}) THEN false END)")
            level_c.append(f"{flag} AS {_ident(c)}")
            level_c.append(f"CASE WHEN {t} IS NOT NULL AND {flag} IS NULL THEN {t} END AS {_ident('_bad_' + c)}")
            checks[c] = "boolean"
        elif dtype.startswith("datetime"):
            if _is_temporal(t_type):
                level_b.append(f"CAST({r} AS TIMESTAMP) AS {_ident('_x_' + c)}")
                x = _ident("_x_" + c)
                level_c.append(f"{x} AS {_ident(c)}")
                level_c.append(f"CASE WHEN {x} < {_MIN_TS} OR {x} > {_MAX_TS} THEN CAST({x} AS VARCHAR) END "
                               f"AS {_ident('_bad_' + c)}")
                checks[c] = "date_range"
            elif _is_text(t_type):
                level_b.append(f"nullif(trim(CAST({r} AS VARCHAR), {_WS}), '') AS {_ident('_t_' + c)}")
                t = _ident("_t_" + c)
                if date_format:
                    parsed = f"try_strptime({t}, {_quote(date_format)})"
                    level_c.append(f"{parsed} AS {_ident(c)}")
                    level_c.append(f"CASE WHEN {t} IS NOT NULL AND {parsed} IS NULL THEN {t} END AS {_ident('_bad_' + c)}")
                    checks[c] = "date_format"
                else:
                    level_c.extend(_text_date_sql(c, t, dayfirst, offsets))
                    checks[c] = "date_text"
            else:
                level_b.append(f"{r} AS {_ident('_x_' + c)}")
                level_c.append(f"NULL::TIMESTAMP AS {_ident(c)}")
                level_c.append(f"CASE WHEN {_ident('_x_' + c)} IS NOT NULL THEN CAST({_ident('_x_' + c)} AS VARCHAR) END "
                               f"AS {_ident('_bad_' + c)}")
                checks[c] = "numbers_as_dates"
    # rows empty in every mapped column are skipped (spreadsheets save trailing empty rows), as by segkit.data.io
    blank = " AND ".join(
        f"{_ident('_t_' + c)} IS NULL" if f"AS {_ident('_t_' + c)}" in " ".join(level_b)
        else f"({_ident('_x_' + c)} IS NULL" + (f" OR isnan({_ident('_x_' + c)}))" if _is_numeric(m.types[c]) and
                                                 TRANSACTIONS.known[c] == "float64" else ")")
        for c in m.labels)
    select = []
    for c in m.columns:
        if c in m.labels:
            select.append(_ident(c))
        elif c == "amount":
            select.append("quantity * unit_price AS amount")
        elif c == "order_id":
            select.append("'row-' || CAST(_row + 2 AS VARCHAR) AS order_id")
    extra = [_ident(x) for c in checks for x in (f"_bad_{c}",)] + [
        _ident(x) for c, kind in checks.items() if kind == "date_text"
        for x in (f"_dk_{c}", f"_do_{c}", f"_dt_{c}", f"_tz_{c}")]
    sql = f"""
        CREATE TABLE lines AS
        WITH a AS (SELECT * FROM {m.numbered}),
        b AS (SELECT {', '.join(level_b)} FROM a),
        c AS (SELECT {', '.join(level_c)} FROM b WHERE NOT ({blank}))
        SELECT {', '.join(select + ['_row'] + extra)}, false AS _dup FROM c
    """
    return sql, checks


def _text_date_sql(c: str, t: str, dayfirst: bool, offsets: bool = False) -> list[str]:
    """Level-c expressions reading text dates like :func:`segkit.core.schema.coerce_datetime`: ISO 8601
    (UTC offsets dropped, wall time kept), numeric day/month/year (month-first unless ``dayfirst``),
    and dates with a month name; plus the kind of each value for the column-wide checks and whether it
    carried a UTC offset (``_tz_<column>``, read by :mod:`segkit.data.statuses`; only when ``offsets``,
    else false: a regular expression per cell is not free at 100M lines)."""
    iso = (f"CASE WHEN regexp_matches({t}, {_quote(_ISO_START)}) "
           f"THEN TRY_CAST(regexp_replace({t}, {_quote(_UTC_OFFSET)}, '\\1') AS TIMESTAMP) END")

    names = "[" + ", ".join(_quote(n) for n in _DMY_FIELDS) + "]"
    m = f"regexp_extract({t}, {_quote(DMY)}, {names})"
    first, second = f"TRY_CAST(nullif({m}.first, '') AS INTEGER)", f"TRY_CAST(nullif({m}.second, '') AS INTEGER)"
    year_text = f"{m}.year"
    year = (f"(CASE WHEN length({year_text}) = 2 THEN CAST({year_text} AS INTEGER) + "
            f"CASE WHEN CAST({year_text} AS INTEGER) < 69 THEN 2000 ELSE 1900 END "
            f"ELSE TRY_CAST(nullif({year_text}, '') AS INTEGER) END)")
    day, month = (first, second) if dayfirst else (second, first)
    hour = f"coalesce(TRY_CAST(nullif({m}.hour, '') AS INTEGER), 0)"
    ampm = f"lower(nullif({m}.ampm, ''))"
    hour24 = f"(CASE WHEN {ampm} IS NULL THEN {hour} ELSE {hour} % 12 + CASE WHEN {ampm} = 'pm' THEN 12 ELSE 0 END END)"
    minute = f"coalesce(nullif({m}.minute, ''), '00')"
    sec = f"lpad(coalesce(nullif({m}.second_, ''), '00'), 2, '0')"
    dmy_ts = (f"TRY_CAST(printf('%04d-%02d-%02d %02d:%s:%s', {year}, {month}, {day}, {hour24}, {minute}, {sec}) "
              "AS TIMESTAMP)")
    is_dmy = f"({first} IS NOT NULL)"
    named = "try_strptime(" + t + ", [" + ", ".join(_quote(f) for f in _MONTH_NAME_FORMATS) + "])"
    value = (f"(CASE WHEN {t} IS NULL THEN NULL WHEN ({iso}) IS NOT NULL THEN {iso} "
             f"WHEN {is_dmy} THEN {dmy_ts} ELSE {named} END)")
    in_range = f"({value} BETWEEN {_MIN_TS} AND {_MAX_TS})"
    return [
        f"CASE WHEN {in_range} THEN {value} END AS {_ident(c)}",
        f"CASE WHEN {t} IS NOT NULL AND NOT coalesce({in_range}, false) THEN {t} END AS {_ident('_bad_' + c)}",
        f"CAST(CASE WHEN {t} IS NULL THEN 0 WHEN ({iso}) IS NOT NULL THEN 1 WHEN {is_dmy} THEN 2 ELSE 3 END "
        f"AS TINYINT) AS {_ident('_dk_' + c)}",
        f"CAST(CASE WHEN NOT {is_dmy} OR ({iso}) IS NOT NULL THEN 0 WHEN {first} > 12 THEN 1 WHEN {second} > 12 THEN 2 "
        f"ELSE 0 END AS TINYINT) AS {_ident('_do_' + c)}",
        f"CASE WHEN {is_dmy} AND ({iso}) IS NULL AND ({first} > 12 OR {second} > 12) THEN {t} END "
        f"AS {_ident('_dt_' + c)}",
        (f"({t} IS NOT NULL AND regexp_matches({t}, {_quote(_UTC_OFFSET)}))" if offsets else "false")
        + f" AS {_ident('_tz_' + c)}",
    ]


def _read_error(m: _Mapped, exc: BaseException) -> DataError:
    """A :class:`DataError` for a file DuckDB cannot parse, worded like :mod:`segkit.data.io`'s."""
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    file = re.search(r"^\s*file = (.+)$", text, flags=re.MULTILINE)
    where = file.group(1).strip() if file else m.source
    delimiter = re.search(r"^\s*delimiter = (.) ", text, flags=re.MULTILINE)
    if line and fields:
        detail = f"line {line.group(1)} has {fields.group(2)} fields but the header has {fields.group(1)}"
        shown = repr(delimiter.group(1)) if delimiter else "the delimiter"
        return DataError(
            f"{where}: cannot be split into columns: {detail}. A value probably contains the delimiter "
            f"{shown} without quotes (or io.delimiter is wrong): put such values in double quotes, "
            "or set io.delimiter in the config.")
    if "Conversion Error" in text and re.search(r"\(\d+ files\)", where):
        return DataError(f"{where}: cannot be read: {first_line(exc)}. The files probably do not share one schema: "
                         "a column stored as numbers in one file holds text (or empty strings) in another. "
                         "Export every part with the same column types, or as CSV.")
    return DataError(f"{where}: cannot be read: {first_line(exc)}. Check that the file is complete; for CSV, "
                     "set io.delimiter and io.encoding if the defaults do not fit.")


def _rows_text(first: Sequence[int], total: int) -> str:
    """:func:`segkit.core.errors.format_rows` for ``total`` rows of which the first few are known."""
    text = format_rows(list(first)[:5])
    if total > 5:
        text += f" (and {total - 5} more)"
    elif total > 1 and len(first) == 1:
        text = text.replace("row ", "rows ", 1)
    return text


def _examples_text(values: Sequence[Any], n_distinct: int) -> str:
    """:func:`segkit.core.schema.examples` for ``n_distinct`` distinct values of which the first 5 are known."""
    shown = examples(pd.Series(list(values)[:5], dtype=object))
    return shown + (f" (and {n_distinct - 5} more distinct)" if n_distinct > 5 else "")


def _fail(m: _Mapped, column: str, problem: str, first_rows: Sequence[int], total: int, fix: str) -> DataError:
    where = Where(m.source, m.labels)
    rows = f" ({_rows_text(first_rows, total)})" if total else ""
    return DataError(f"{m.source}: {where.column(column)}: {problem}{rows}. {fix}")


def _validate_staged(con: duckdb.DuckDBPyConnection, m: _Mapped, checks: Mapping[str, str],
                     opts: Mapping[str, Any]) -> None:
    """Raise the :mod:`segkit.data.io` errors for cells that cannot be read (in column order), then for
    rows without an order date."""
    for c in [c for c in TRANSACTIONS.known if c in m.labels]:  # segkit.core.schema.validate's order
        kind = checks.get(c)
        if kind is None:
            continue
        bad = _ident(f"_bad_{c}")
        if kind == "date_text":
            dk, do = _ident(f"_dk_{c}"), _ident(f"_do_{c}")
            stats = con.sql(f"""
                SELECT min(_row) FILTER (WHERE {dk} = 1), min(_row) FILTER (WHERE {dk} = 2),
                       count(*) FILTER (WHERE {do} = 1), count(*) FILTER (WHERE {do} = 2),
                       min(_row) FILTER (WHERE {do} = 1), min(_row) FILTER (WHERE {do} = 2)
                FROM lines""").fetchall()[0]
            iso_row, dmy_row, n_first_day, n_second_day, first_day_row, second_day_row = stats
            text = _ident(f"_dt_{c}")

            def raw_of(row: int) -> str:
                return _raw_cell(con, m, c, row)
            if iso_row is not None and dmy_row is not None:
                raise _fail(m, c, "mixed date formats: ISO dates such as "
                            f"{raw_of(iso_row)!r} ({format_rows([iso_row])}) and day/month dates such as "
                            f"{raw_of(dmy_row)!r} ({format_rows([dmy_row])}) whose day/month order is ambiguous",
                            [], 0, "Export all dates in one format (ISO 2024-03-31 is safest), then set "
                            "io.date_format or io.dayfirst if it is not ISO.")
            if n_first_day and n_second_day:
                raise _fail(m, c, f"ambiguous dates: {raw_of(first_day_row)!r} ({format_rows([first_day_row])}) is "
                            f"day-first but {raw_of(second_day_row)!r} ({format_rows([second_day_row])}) is "
                            "month-first", [], 0,
                            "Export the dates in one consistent format (ISO 2024-03-31 is safest).")
            dayfirst = bool(opts.get("dayfirst"))
            if n_first_day and not dayfirst:
                rows, values, distinct = _bad_listing(con, f"{do} = 1", text)
                raise _fail(m, c, f"day-first dates such as {_examples_text(values, distinct)} read as month-first",
                            rows, n_first_day,
                            "Set io.dayfirst: true in the config (or io.date_format, e.g. '%d/%m/%Y').")
            if n_second_day and dayfirst:
                rows, values, distinct = _bad_listing(con, f"{do} = 2", text)
                raise _fail(m, c, f"month-first dates such as {_examples_text(values, distinct)} read as day-first",
                            rows, n_second_day,
                            "Set io.dayfirst: false in the config (or io.date_format, e.g. '%m/%d/%Y').")
        n_bad = con.sql(f"SELECT count(*) FROM lines WHERE {bad} IS NOT NULL").fetchall()[0][0]
        if not n_bad:
            continue
        rows, values, distinct = _bad_listing(con, f"{bad} IS NOT NULL", bad)
        if kind == "infinite":
            raise _fail(m, c, "infinite values", rows, n_bad, "Replace them with real numbers.")
        if kind == "boolean":
            raise _fail(m, c, f"unexpected values for a yes/no column: {_examples_text(values, distinct)}", rows,
                        n_bad, "Use 1/0, true/false, yes/no or y/n (leave the cell empty when unknown).")
        if kind == "number":
            comma, thousands = con.sql(
                f"SELECT bool_or(regexp_full_match({bad}, '^[-+]?\\d+,\\d+$')), "
                f"bool_or(regexp_full_match({bad}, '^[-+]?\\d{{1,3}}(?:,\\d{{3}})+(?:\\.\\d+)?$')) "
                f"FROM lines WHERE {bad} IS NOT NULL").fetchall()[0]
            if comma:
                fix = ("These look like decimal commas: set io.decimal: ',' in the config "
                       "(or export numbers with '.' as the decimal separator).")
            elif thousands:
                fix = "These contain thousands separators: export numbers without them."
            else:
                fix = ("Numbers only: remove currency signs, units and text such as 'n/a' "
                       "(leave a cell empty when the value is missing).")
            raise _fail(m, c, f"text that is not a number: {_examples_text(values, distinct)}", rows, n_bad, fix)
        if kind == "date_format":
            raise _fail(m, c, f"dates that do not match io.date_format {opts.get('date_format')!r}: "
                        f"{_examples_text(values, distinct)}", rows, n_bad,
                        "Fix io.date_format in the config (strftime codes, e.g. '%d/%m/%Y %H:%M') "
                        "or correct these cells.")
        if kind == "numbers_as_dates":
            raise _fail(m, c, f"numbers where dates are expected: {_examples_text(values, distinct)}", rows, n_bad,
                        "Export the column as dates (e.g. 2024-03-31).")
        if kind == "date_range":
            raise _fail(m, c, f"dates outside 1677-2262: {_examples_text(values, distinct)}", rows, n_bad,
                        "Placeholder dates (e.g. 9999-12-31) must be left empty instead.")
        serial = con.sql(f"SELECT bool_and(regexp_full_match({bad}, '^\\d{{5}}(?:\\.\\d+)?$')) FROM lines "
                         f"WHERE {bad} IS NOT NULL").fetchall()[0][0]
        hint = ("These look like Excel day numbers: format the column as dates in Excel before exporting "
                "(or export .xlsx)." if serial else
                "Set io.date_format in the config (e.g. '%d/%m/%Y %H:%M') or io.dayfirst: true/false.")
        raise _fail(m, c, f"values that are not dates: {_examples_text(values, distinct)}", rows, n_bad, hint)
    missing = con.sql("SELECT count(*) FROM lines WHERE order_date IS NULL").fetchall()[0][0]
    if missing:
        rows = [r[0] for r in con.sql("SELECT _row FROM lines WHERE order_date IS NULL ORDER BY _row LIMIT 5")
                .fetchall()]
        raise _fail(m, "order_date", "missing values", rows, missing,
                    "Every transactions row needs a value in 'order_date': fill these cells or remove the rows.")


def _raw_cell(con: duckdb.DuckDBPyConnection, m: _Mapped, c: str, row: int) -> str:
    """The text of one cell as written in the file (for messages)."""
    value = con.sql(f"SELECT CAST({_ident(m.names[c])} AS VARCHAR) FROM {m.numbered} "
                    f"WHERE _row = {int(row)}").fetchall()
    text = value[0][0] if value else ""
    return (text or "").strip()


def _bad_listing(con: duckdb.DuckDBPyConnection, where: str, value: str) -> tuple[list[int], list[str], int]:
    """First 5 rows matching ``where``, the first 5 distinct ``value`` in order of appearance, and
    the count of distinct values."""
    rows = [r[0] for r in con.sql(f"SELECT _row FROM lines WHERE {where} ORDER BY _row LIMIT 5").fetchall()]
    values = con.sql(f"SELECT v FROM (SELECT {value} AS v, min(_row) AS r FROM lines WHERE {where} GROUP BY v) "
                     "ORDER BY r LIMIT 6").fetchall()
    distinct = con.sql(f"SELECT count(DISTINCT {value}) FROM lines WHERE {where}").fetchall()[0][0]
    return rows, [v[0] for v in values], distinct


KTH_FETCH = 200_000  # values sorted directly by kth_smallest (below this, no histogram pass)


def kth_smallest(con: duckdb.DuckDBPyConnection, relation: str, column: str, ks: Sequence[int],
                 fetch: int | None = None, buckets: int = 4096) -> dict[int, float]:
    """Exact ``k``-th smallest values (0-based) of a numeric ``column`` of ``relation``, in bounded memory.

    A histogram of ``buckets`` equal-width buckets over the range narrows down the bucket that
    holds each ``k``, repeatedly, until it holds at most ``fetch`` values (then sorted) or a
    single value; every pass is a scan with a small GROUP BY, so nothing like all values is ever
    held in memory (DuckDB's ``median`` keeps them all). NULLs are ignored.

    Examples
    --------
    >>> con = connect()
    >>> kth_smallest(con, "(SELECT range * 1.0 AS x FROM range(1000))", "x", [0, 499, 999], fetch=10, buckets=8)
    {0: 0.0, 499: 499.0, 999: 999.0}
    """
    col = _ident(column)
    fetch = KTH_FETCH if fetch is None else fetch
    out: dict[int, float] = {}
    for k in sorted(set(int(k) for k in ks)):
        where, below = f"{col} IS NOT NULL", 0
        while True:
            n, lo, hi = con.sql(f"SELECT count(*), min({col}), max({col}) FROM {relation} WHERE {where}").fetchall()[0]
            if not 0 <= k - below < n:
                raise ValueError(f"k = {k} is outside the {below + n} values")
            if lo == hi:
                out[k] = float(lo)
                break
            width = (float(hi) - float(lo)) / buckets
            if n <= fetch or width == 0:
                out[k] = float(con.sql(f"SELECT {col} FROM {relation} WHERE {where} ORDER BY {col} "
                                       f"LIMIT 1 OFFSET {k - below}").fetchall()[0][0])
                break
            bucket = f"least(CAST(floor(({col} - {_float(lo)}) / {_float(width)}) AS BIGINT), {buckets - 1})"
            counts = con.sql(f"SELECT {bucket} AS b, count(*) AS n FROM {relation} WHERE {where} "
                             "GROUP BY b ORDER BY b").fetchall()
            for b, count in counts:
                if k - below < count:
                    where = f"{where} AND {bucket} = {int(b)}"
                    break
                below += count
    return out


# ----------------------------------------------------------------------------- the staged log
_STRING_COLUMNS = tuple(c for c, t in {**TRANSACTIONS.dtypes, **TRANSACTIONS.extra}.items() if t == "string")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A DuckDB result in canonical pandas dtypes (string ids/text, datetime64[ns], float64, …)."""
    out = frame.copy()
    for c in out.columns:
        if c in _STRING_COLUMNS or c in ("order_id",):
            out[c] = out[c].astype("string")
        elif c in ("order_date", "date", "start", "end", "first_order_date", "last_order_date"):
            out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
        elif c in ("amount", "quantity", "unit_price", "value"):
            out[c] = out[c].astype("float64")
        elif c in ("_row", "lines"):
            out[c] = out[c].astype("int64")
        elif c in ("is_return", "is_outlier"):
            out[c] = out[c].astype(bool)
    return out


class TransactionLog:
    """Order lines mapped to canonical columns and staged once in a temporary DuckDB database: the
    one reader of transactions, at every size.

    The staging maps and types the user's columns in SQL (config ``columns.transactions`` and
    ``io`` options) and raises the :mod:`segkit.data.io` errors — file, column, example values and
    rows, what to change — for cells that cannot be read; then the ``orders`` contract
    (:func:`segkit.data.statuses.apply_order_contract`: order-level fields carried over each order,
    statuses and refunds turned into kept line amounts, test orders removed; its facts in
    ``status_facts``, None when the input maps no such column). The staged table lives in a temporary
    folder (``engine.temp_directory``) that :meth:`close` removes; DuckDB spills there beyond
    ``engine.memory_limit``, so memory stays bounded whatever the size of the files.

    Parameters
    ----------
    source : path, glob, list of paths, or DataFrame
        The user's transaction file(s): CSV (optionally .gz, .bz2, .xz) or Parquet, one file, a
        folder or a glob; or one Excel workbook (its cells read by
        :func:`segkit.data.io.read_cells`); or a frame with canonical column names (see
        :func:`_map_frame`: text typed as CSV cells are, rows named by the integer index).
    config : mapping, optional
        Merged configuration (``columns``, ``io``, ``audit``, ``privacy``, ``engine``); None = defaults.
    memory_limit, temp_directory, threads : optional
        Override the ``engine`` section.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("Customer,Order,Date,Amount\\n7,A1,2024-01-05,10\\n7,A1,2024-01-05,10\\n,A2,2024-01-06,5\\n")
    >>> cfg = {"columns": {"transactions": {"customer_id": "Customer", "order_id": "Order", "order_date": "Date"}}}
    >>> with TransactionLog(p, cfg) as log:
    ...     facts = log.input_facts(None)
    >>> facts.n_rows, facts.counts["exact_duplicates"], facts.counts["guest_checkouts"]
    (3, 1, 1)
    """

    def __init__(self, source: str | Path | Sequence[str | Path] | pd.DataFrame,
                 config: Mapping[str, Any] | None = None, *,
                 memory_limit: str | None = None, temp_directory: str | Path | None = None,
                 threads: int | None = None):

        merged = deep_merge(load_config(), config or {})
        self.config = merged
        self.engine = EngineSettings.from_config(merged)
        self.settings = AuditSettings.from_config(merged)
        self.opts = segio.read_options(merged)
        base = temp_directory or (resolve_path(merged, self.engine.temp_directory)
                                  if self.engine.temp_directory else None)
        if base is not None:
            Path(base).mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="segkit-engine-", dir=base)
        folder = Path(self._tmp.name)
        self._prepared: dict[str, Any] | None = None
        try:
            self.con = self.open_stage(folder, memory_limit or self.engine.memory_limit,
                                       threads or self.engine.threads)
            self.mapped = self.map_source(source, folder)
            contract = OrderContract.from_config(merged)
            sql, checks = _stage_sql(self.mapped, self.opts, offsets=contract.dates_have_offsets)
            try:
                self.con.execute(sql)
            except self.ENGINE_ERRORS as exc:
                raise _read_error(self.mapped, exc) from None
            _validate_staged(self.con, self.mapped, checks, self.opts)
            if FRAME_VIEW in self.mapped.numbered:
                self.con.unregister(FRAME_VIEW)
            self.n_rows = int(self.con.sql("SELECT count(*) FROM lines").fetchall()[0][0])
            if self.n_rows == 0 and not isinstance(source, pd.DataFrame):
                raise DataError(f"{self.mapped.source}: has no data rows (or every row is empty in the columns "
                                "segkit uses). Export the transactions table with its rows.")
            #: what the ``orders`` contract (statuses, refunds, order-level fields) found; None = not used
            self.status_facts = apply_order_contract(self.con, contract, self.mapped.columns, self.mapped.labels,
                                                     self.mapped.source)
        except BaseException:
            self.close()
            raise

    #: Errors of the staging engine that mean "this file cannot be read" (worded by ``_read_error``).
    ENGINE_ERRORS: tuple[type[BaseException], ...] = (duckdb.Error,)

    def open_stage(self, folder: Path, memory_limit: str | None, threads: int | None) -> Any:
        """The connection the lines are staged and audited on: DuckDB, its database and spill files in
        ``folder``. An engine hook: :class:`segkit.data.spark_audit.SparkTransactionLog` returns a Spark
        session speaking the same SQL instead."""
        return connect(memory_limit, threads, temp_directory=folder / "spill", database=folder / "stage.duckdb",
                       preserve_order=True)

    def map_source(self, source: Any, folder: Path) -> "MappedInput":
        """Register ``source`` on :attr:`con` as the raw relation of :func:`_stage_sql`, numbered by input
        row, and say how its columns map onto canonical ones (config ``columns.transactions``). An engine hook
        (see :meth:`open_stage`)."""
        if isinstance(source, pd.DataFrame):
            return _map_frame(self.con, source, self.config)
        if is_workbook(source):  # DuckDB does not read Excel: pandas reads the cells, DuckDB types them
            return _map_frame(self.con, segio.read_cells(Path(source), "transactions", config=self.config),
                              self.config)
        return _map_columns(self.con, source, self.config, scratch=folder / "utf8")

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Close the connection and remove the staged data."""
        try:
            if hasattr(self, "con"):
                self.con.close()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> "TransactionLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    @property
    def columns(self) -> list[str]:
        """Canonical columns of the staged lines (in canonical order; ``amount`` and ``order_id`` always)."""
        return list(self.mapped.columns)

    def _has(self, column: str) -> bool:
        return column in self.mapped.columns

    def _frame(self, sql: str) -> pd.DataFrame:
        return _typed(self.con.sql(sql).df())

    def _value(self, sql: str) -> Any:
        return self.con.sql(sql).fetchall()[0][0]

    def null_rows(self, column: str) -> pd.DataFrame:
        """The first input rows (:meth:`input_rows`) where ``column`` is empty."""
        return self.input_rows(f"{_ident(column)} IS NULL")

    def input_rows(self, where: str) -> pd.DataFrame:
        """First offending input rows (pandas ``tx[mask].head(row_limit)``: canonical columns, ``_row``)."""
        cols = ", ".join(_ident(c) for c in self.columns)
        return self._frame(f"SELECT {cols}, _row FROM lines WHERE {where} ORDER BY _row "
                           f"LIMIT {row_limit(self.settings)}")

    def _clean_rows(self, where: str) -> pd.DataFrame:
        """First clean rows matching ``where`` (canonical columns, ``_row``, ``is_return``)."""
        cols = ", ".join(_ident(c) for c in self.columns)
        return self._frame(f"SELECT {cols}, _row, is_return FROM clean WHERE {where} ORDER BY _row "
                           f"LIMIT {row_limit(self.settings)}")

    def _kth_date(self, k: int) -> pd.Timestamp:
        """The ``k``-th smallest order date (0-based), found through the per-day histogram."""
        day, before = self.con.sql(f"""
            WITH d AS (SELECT CAST(order_date AS DATE) AS day, count(*) AS n FROM lines
                       WHERE order_date IS NOT NULL GROUP BY day),
                 c AS (SELECT day, n, sum(n) OVER (ORDER BY day) - n AS before FROM d)
            SELECT day, before FROM c WHERE before <= {k} AND {k} < before + n""").fetchall()[0]
        value = self._value(f"SELECT order_date FROM lines WHERE order_date >= DATE '{day}' "
                            f"AND order_date < DATE '{day}' + INTERVAL 1 DAY ORDER BY order_date "
                            f"LIMIT 1 OFFSET {int(k - before)}")
        return pd.Timestamp(value)

    def _predicates(self, cutoff: pd.Timestamp | None, as_of: pd.Timestamp | None) -> dict[str, str]:
        """The row checks of :data:`segkit.data.auditfacts.TX_INPUT_CHECKS` as NULL-safe SQL predicates."""
        price = self._has("unit_price")
        future = f"coalesce(order_date > {_ts(cutoff)}, false)" if cutoff is not None else "false"
        after = f"coalesce(order_date >= {_ts(as_of)} AND NOT {future}, false)" if as_of is not None else "false"
        return {
            "exact_duplicates": "_dup",
            "missing_order_date": "order_date IS NULL",
            "missing_amount": "amount IS NULL",
            "guest_checkouts": "customer_id IS NULL",
            "negative_price": "coalesce(unit_price < 0, false)" if price else "false",
            "zero_price": ("coalesce(unit_price = 0 OR (unit_price IS NULL AND amount = 0), false)" if price
                           else "coalesce(amount = 0, false)"),
            "future_dates": future,
            "after_as_of": after,
        }

    def _mark_duplicates(self) -> None:
        """Flag ``_dup`` on every copy of a row after its first (all columns equal, missing equal).
        Rows are grouped by a hash first, so only candidate rows are compared exactly.

        Copies without an order id (``_identical``: the input has no order ids, or the cell is empty)
        are flagged only when ``audit.identical_lines_without_order_id`` is ``drop``: without an id an
        identical line may be a repeat purchase. Every copy is listed in ``_dup_rows``.

        When the order contract judged duplicates per whole order (``status_facts.duplicates_by_order``:
        orders exported twice were kept once), lines with an order id are not compared: two identical
        lines of one order are two items of it, whose value the order's total already counts."""
        has_order_id = "order_id" not in self.mapped.absent
        cols = ", ".join(_ident(c) for c in self.columns if has_order_id or c != "order_id")
        no_id = "order_id IS NULL" if has_order_id else "true"
        by_order = self.status_facts is not None and self.status_facts.duplicates_by_order
        self.con.execute("CREATE OR REPLACE TABLE _dup_rows (_row BIGINT, _identical BOOLEAN)")
        self.con.execute(f"CREATE OR REPLACE TABLE _dup_hash AS SELECT hash({cols}) AS h FROM lines "
                         f"{'WHERE order_id IS NULL ' if by_order else ''}GROUP BY h HAVING count(*) > 1")
        if not self._value("SELECT count(*) FROM _dup_hash"):
            return
        self.con.execute(f"""
            INSERT INTO _dup_rows
            SELECT _row, {no_id} FROM (
                SELECT _row, order_id, row_number() OVER (PARTITION BY {cols} ORDER BY _row) AS copy
                FROM lines WHERE hash({cols}) IN (SELECT h FROM _dup_hash){' AND order_id IS NULL' if by_order else ''})
            WHERE copy > 1""")
        dropped = "" if self.settings.identical_lines_without_order_id == "drop" else " WHERE NOT _identical"
        self.con.execute(f"UPDATE lines SET _dup = true WHERE _row IN (SELECT _row FROM _dup_rows{dropped})")

    def _identical_without_order_id(self) -> dict[str, Any]:
        """Facts of the copies of identical lines without order id (after :meth:`_mark_duplicates`):
        ``lines, customers`` (distinct, guests not counted), ``amount`` (their money), ``action`` and the
        first ``rows`` (input columns and ``_row``)."""
        where = "_row IN (SELECT _row FROM _dup_rows WHERE _identical)"
        n, customers, amount = self.con.sql(
            f"SELECT count(*), count(DISTINCT customer_id), sum(CAST(amount AS {DECIMAL})) FROM lines "
            f"WHERE {where}").fetchall()[0]
        action = "dropped" if self.settings.identical_lines_without_order_id == "drop" else "kept"
        return {"lines": int(n), "customers": int(customers), "amount": float(amount or 0), "action": action,
                "rows": self.input_rows(where)}

    # ------------------------------------------------------------------ cleaning
    def prepare(self, as_of: str | pd.Timestamp | None = None) -> dict[str, Any]:
        """Mark duplicates, find the future-date cutoff and ``as_of``, and define the ``clean`` view.

        Returns the facts later steps need (``cutoff``, ``as_of``, ``predicates``). Called by
        :meth:`audit` and :meth:`write_clean`; repeated calls with the same ``as_of`` reuse it.
        """
        key = None if as_of is None else parse_as_of(as_of)
        if self._prepared is not None and self._prepared["key"] == key:
            return self._prepared
        if self._prepared is None:
            self._mark_duplicates()
        n_dates = int(self._value("SELECT count(order_date) FROM lines"))
        cutoff = None
        if n_dates:
            k = int(np.floor((n_dates - 1) * np.float64(self.settings.future_quantile)))
            cutoff = self._kth_date(k) + pd.Timedelta(days=self.settings.future_tolerance_days)
        if key is None:
            last = self._value(f"SELECT max(order_date) FROM lines WHERE order_date <= {_ts(cutoff)}") \
                if cutoff is not None else None
            as_of_ts = None if last is None else day_after(last)
        else:
            as_of_ts = key
        preds = self._predicates(cutoff, as_of_ts)
        dropping = [preds[check] for check, _ in TX_DROP_RULES]
        has_order_id = "order_id" not in self.mapped.absent
        filled = ("coalesce(order_id, 'row-' || CAST(_row + 2 AS VARCHAR))" if has_order_id
                  else "'row-' || CAST(_row + 2 AS VARCHAR)")
        returns = [f"coalesce({c} < 0, false)" for c in ("quantity", "amount") if self._has(c)]
        if self.settings.return_prefix:
            returns.append(f"coalesce(starts_with({filled}, {_quote(self.settings.return_prefix)}), false)")
        select = [f"{filled} AS order_id" if c == "order_id" else _ident(c) for c in self.columns]
        if self.status_facts is not None:  # the value before statuses and refunds (segkit.data.statuses)
            select.append("recorded_amount")
        self.con.execute(f"""
            CREATE OR REPLACE VIEW clean AS
            SELECT {', '.join(select)}, _row, ({' OR '.join(returns) or 'false'}) AS is_return,
                   {'order_id IS NULL' if has_order_id else 'true'} AS _filled, {preds['zero_price']} AS _zero
            FROM lines WHERE NOT ({' OR '.join(dropping)})""")
        self._prepared = {"key": key, "cutoff": cutoff, "as_of": as_of_ts, "predicates": preds}
        return self._prepared

    def write_clean(self, dest: str | Path, as_of: str | pd.Timestamp | None = None) -> Path:
        """Write ``transactions_clean.parquet`` (canonical columns and dtypes plus ``is_return``, input row order)
        with DuckDB ``COPY``, atomically (a temporary file renamed into place).

        Parameters
        ----------
        dest : str or Path
            Target Parquet file.
        as_of : str or Timestamp, optional
            Analysis date (None = the day after the last order that is not in the future); the
            one of :meth:`audit` when it ran already.

        Returns
        -------
        Path
        """
        if self._prepared is None or as_of is not None:
            self.prepare(as_of)
        import pyarrow as pa

        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in self.clean_dtypes().items()})
        meta = pa.Schema.from_pandas(empty, preserve_index=False).metadata[b"pandas"].decode()
        select = self.clean_select()
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            self.con.execute(f"COPY (SELECT {', '.join(select)} FROM clean) TO {_quote(str(tmp))} "
                             f"(FORMAT parquet, KV_METADATA {{pandas: {_quote(meta)}}})")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def clean_dtypes(self) -> dict[str, str]:
        """Columns and pandas dtypes of ``transactions_clean.parquet``: the canonical columns, ``is_return`` and,
        only where statuses changed amounts, ``recorded_amount``."""
        return {c: t for c, t in {**TRANSACTIONS.dtypes, **TRANSACTIONS_CLEAN_EXTRA}.items()
                if c != "recorded_amount" or self.status_facts is not None}

    def clean_select(self, timestamp_type: str = "TIMESTAMP_NS") -> list[str]:
        """The columns of :meth:`clean_dtypes` as SQL expressions over the ``clean`` view (a column the input
        lacks is a typed NULL); ``timestamp_type`` is how dates are stored (Spark has no ``TIMESTAMP_NS``)."""
        duck = {"string": "VARCHAR", "float64": "DOUBLE", "datetime64[ns]": timestamp_type, "boolean": "BOOLEAN"}
        return [f"CAST({_ident(c) if c in ('is_return', 'recorded_amount') or self._has(c) else 'NULL'} "
                f"AS {duck[t]}) AS {_ident(c)}" for c, t in self.clean_dtypes().items()]

    def clean_frame(self, as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """The clean lines in memory: what :meth:`write_clean` writes, read back (for small logs
        and the :func:`segkit.audit.run_audit` API; a run keeps them on disk)."""
        path = self.write_clean(Path(self._tmp.name) / "clean.parquet", as_of)
        try:
            return pd.read_parquet(path)
        finally:
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the audit
    def remove_control_characters(self) -> tuple[list[ControlCharacterFacts], int]:
        """Find and remove the control characters (:data:`segkit.data.auditfacts.CONTROL_CHARACTER_CLASS`)
        of every id and text column of the staged lines, in place, before any check.

        Returns the facts per column that had any (cells changed, the first :data:`CONTROL_ROWS`
        of them as read, cleaned ids equal to an id of another row) and the rows changed. A cell
        loses the characters, is trimmed, and is missing when nothing is left.
        """
        pattern = _quote(CONTROL_CHARACTER_CLASS)
        edges = _quote(f"^{_WHITESPACE_CLASS}+|{_WHITESPACE_CLASS}+$")
        columns = [c for c, dtype in TRANSACTIONS.known.items() if dtype == "string" and c in self.mapped.labels]
        facts, updates = [], {}
        for c in columns:
            col = _ident(c)
            hit = f"coalesce(regexp_matches({col}, {pattern}), false)"
            count = int(self._value(f"SELECT count(*) FROM lines WHERE {hit}"))
            if not count:
                continue
            cleaned = f"nullif(regexp_replace(regexp_replace({col}, {pattern}, '', 'g'), {edges}, '', 'g'), '')"
            rows = self.con.sql(f"SELECT _row, {col} FROM lines WHERE {hit} ORDER BY _row LIMIT {CONTROL_ROWS}") \
                .df().astype({"_row": "int64", c: "string"})
            collisions = int(self._value(
                f"SELECT count(DISTINCT v) FROM (SELECT {cleaned} AS v FROM lines WHERE {hit}) "
                f"WHERE v IN (SELECT {col} FROM lines WHERE NOT {hit})")) if c.endswith("_id") else 0
            facts.append(ControlCharacterFacts("transactions", c, count, rows, collisions))
            updates[c] = (hit, cleaned)
        if not updates:
            return facts, 0
        any_hit = " OR ".join(hit for hit, _ in updates.values())
        changed_rows = int(self._value(f"SELECT count(*) FROM lines WHERE {any_hit}"))
        for c, (hit, cleaned) in updates.items():
            self.con.execute(f"UPDATE lines SET {_ident(c)} = {cleaned} WHERE {hit}")
        return facts, changed_rows

    def missing_counts(self) -> tuple[list[str], list[int]]:
        """Empty cells per canonical column (``cancelled_at`` left out: empty means not cancelled)."""
        columns = [c for c in self.columns if c != "cancelled_at"]
        counts = self.con.sql("SELECT " + ", ".join(f"count(*) - count({_ident(c)})" for c in columns)
                              + " FROM lines").fetchall()[0]
        return columns, [int(v) for v in counts]

    def input_facts(self, as_of: str | pd.Timestamp | None) -> InputFacts:
        prep = self.prepare(as_of)
        preds = prep["predicates"]
        counts = self.con.sql(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE {p})" for p in preds.values())
            + f", sum(CAST(amount AS {DECIMAL})) FILTER (WHERE customer_id IS NULL) FROM lines").fetchall()[0]
        found = {check: int(n) for check, n in zip(preds, counts)}
        guest_revenue = float(counts[-1] or 0)
        dropped, earlier = {}, []
        parts = []
        for check, _ in TX_DROP_RULES:
            cond = preds[check] if not earlier else f"{preds[check]} AND NOT ({' OR '.join(earlier)})"
            parts.append(f"count(*) FILTER (WHERE {cond})")
            earlier.append(preds[check])
            if check == "guest_checkouts":  # the money of the guest rows the rule removes (after duplicates)
                parts.append(f"sum(CAST(amount AS {DECIMAL})) FILTER (WHERE {cond})")
        values = list(self.con.sql("SELECT " + ", ".join(parts) + " FROM lines").fetchall()[0])
        guest_dropped_revenue = float(values.pop(1 + [c for c, _ in TX_DROP_RULES].index("guest_checkouts")) or 0)
        for (check, _), n in zip(TX_DROP_RULES, values):
            dropped[check] = int(n)
        filled, returns, zero = self.con.sql(
            "SELECT count(*) FILTER (WHERE _filled), count(*) FILTER (WHERE is_return), "
            "count(*) FILTER (WHERE _zero) FROM clean").fetchall()[0]
        empty = self._frame(f"SELECT {', '.join(_ident(c) for c in self.columns)}, _row FROM lines LIMIT 0")
        rows = {check: (self.input_rows(preds[check]) if found[check] else empty) for check in preds}
        return InputFacts(
            n_rows=self.n_rows, counts=found, rows=rows, guest_revenue=guest_revenue, cutoff=prep["cutoff"],
            as_of=prep["as_of"], dropped=dropped, filled=int(filled), returns_flagged=int(returns),
            zero_flagged=int(zero), guest_dropped_revenue=guest_dropped_revenue,
            identical_without_order_id=self._identical_without_order_id())

    def _outlier_stats(self, table: str, value: str, where: str) -> tuple[int, tuple[float, float, float, float]]:
        """``n`` and :func:`segkit.data.auditfacts.log_bounds` of the positive ``value``s.

        The medians are exact and computed as numpy does (the mean of the two middle values for
        an even count), by selecting the middle values out-of-core (:func:`kth_smallest`): an
        SQL ``median`` would hold every value in memory."""
        rows = f"(SELECT {value} AS v FROM {table} WHERE {where} AND {value} > 0 AND isfinite({value}))"
        n = int(self._value(f"SELECT count(*) FROM {rows}"))
        if not n:
            return 0, (np.nan, np.nan, np.nan, np.nan)
        middle = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        values = kth_smallest(self.con, rows, "v", middle)
        center = float(np.median(np.log(np.array([values[k] for k in middle], dtype="float64"))))
        deviation = f"(SELECT abs(ln(v) - {_float(center)}) AS d FROM {rows})"
        spread = kth_smallest(self.con, deviation, "d", middle)
        mad = float(np.median(np.array([spread[k] for k in middle], dtype="float64")))
        mean_deviation = float(self._value(f"SELECT fsum(d) FROM {deviation}")) / n if mad == 0 else np.nan
        stats = log_bounds(center, mad, mean_deviation, self.settings.outlier_k,
                                  self.settings.outlier_min_fold)
        return n, stats

    def clean_facts(self) -> CleanFacts:
        settings, limit, sample = self.settings, row_limit(self.settings), self.engine.plot_sample
        n_clean, return_lines, gross, returned, net, start, end = self.con.sql(f"""
            SELECT count(*), count(*) FILTER (WHERE is_return),
                   sum(CAST(amount AS {DECIMAL})) FILTER (WHERE NOT is_return),
                   sum(abs(CAST(amount AS {DECIMAL}))) FILTER (WHERE is_return),
                   sum(CAST(amount AS {DECIMAL})), min(order_date), max(order_date)
            FROM clean""").fetchall()[0]
        return_orders = self._value("SELECT count(*) FROM (SELECT order_id FROM clean WHERE is_return GROUP BY order_id)")
        self.n_orders = int(self._value("SELECT count(*) FROM (SELECT order_id FROM clean GROUP BY order_id)"))
        self.period = {"start": None if start is None else pd.Timestamp(start).normalize(),
                        "end": None if end is None else pd.Timestamp(end).normalize()}
        gross, returned = float(gross or 0), float(returned or 0)
        returns = {"return_lines": int(return_lines), "return_orders": int(return_orders), "gross_revenue": gross,
                   "returned_value": returned, "returned_share": returned / gross if gross > 0 else np.nan,
                   "net_revenue": float(net or 0)}
        empty_clean = self._frame(f"SELECT {', '.join(_ident(c) for c in self.columns)}, _row, is_return "
                                  "FROM clean LIMIT 0")

        # near duplicates: hash the keys first, compare exactly only where a key has several orders
        near_count, near_rows = 0, empty_clean
        if "order_id" not in self.mapped.absent:
            extra = [c for c in settings.near_duplicate_columns if self._has(c) and c not in ("customer_id", "order_date")]
            keys = ["customer_id", "date_trunc('day', order_date)"] + [_ident(c) for c in extra]
            names = ["customer_id", "_day"] + extra
            keyed = ", ".join(f"{k} AS {_ident(n)}" for k, n in zip(keys, names))
            cand = "NOT is_return AND customer_id IS NOT NULL"
            self.con.execute(f"""
                CREATE OR REPLACE TABLE _near_hash AS
                SELECT h FROM (SELECT hash({', '.join(keys)}) AS h, order_id FROM clean WHERE {cand} GROUP BY h, order_id)
                GROUP BY h HAVING count(*) > 1""")
            self.con.execute(f"""
                CREATE OR REPLACE TABLE _near AS
                WITH per AS (
                    SELECT {keyed}, order_id, min(order_date) AS d, count(*) AS n FROM clean
                    WHERE {cand} AND hash({', '.join(keys)}) IN (SELECT h FROM _near_hash) GROUP BY ALL)
                SELECT {', '.join(_ident(n) for n in names)}, min_by(order_id, (d, order_id)) AS _first_order,
                       sum(n) - min_by(n, (d, order_id)) AS _flagged
                FROM per GROUP BY ALL HAVING count(*) > 1""")
            near_count = int(self._value("SELECT coalesce(sum(_flagged), 0) FROM _near"))
            if near_count:
                on = " AND ".join(f"{k} IS NOT DISTINCT FROM g.{_ident(n)}" for k, n in zip(
                    [f"c.{_ident('customer_id')}", "date_trunc('day', c.order_date)"] + [f"c.{_ident(x)}" for x in extra],
                    names))
                cols = ", ".join(f"c.{_ident(c)}" for c in self.columns)
                near_rows = self._frame(f"""
                    SELECT {cols}, c._row, c.is_return FROM clean c JOIN _near g ON {on}
                    WHERE NOT c.is_return AND c.order_id <> g._first_order ORDER BY c._row LIMIT {limit}""")

        # order values: one row per order of non-return lines with a positive value
        self.con.execute(f"""
            CREATE OR REPLACE TABLE _orders AS
            SELECT order_id, arg_min(customer_id, _row) AS customer_id, min(order_date) AS order_date,
                   count(*) AS lines, CAST(sum(CAST(amount AS {DECIMAL})) AS DOUBLE) AS value, min(_row) AS first_row
            FROM clean WHERE NOT is_return GROUP BY order_id HAVING sum(CAST(amount AS {DECIMAL})) > 0""")
        n_orders, o_stats = self._outlier_stats("_orders", "value", "true")
        outside = (f"(value < {_float(o_stats[2])} OR value > {_float(o_stats[3])})" if n_orders else "false")
        o_flagged, o_lines = self.con.sql(f"SELECT count(*), coalesce(sum(lines), 0) FROM _orders WHERE {outside}") \
            .fetchall()[0]
        o_rows = self._frame(f"SELECT order_id, customer_id, order_date, lines, value, first_row AS _row, "
                             f"true AS is_outlier FROM _orders WHERE {outside} "  # the most extreme first
                             f"ORDER BY abs(ln(value) - ln({_float(o_stats[0])})) DESC, order_id LIMIT {limit}")
        pick = "" if n_orders <= sample else f"ORDER BY hash(order_id) LIMIT {sample}"
        order_values = self._frame(f"SELECT * FROM (SELECT order_id, value, {outside} AS is_outlier FROM _orders {pick}) "
                                   "ORDER BY order_id")

        # quantities of purchase lines
        if self._has("quantity"):
            q_where = "NOT is_return AND quantity > 0"
            n_q, q_stats = self._outlier_stats("clean", "quantity", q_where)
            q_out = (f"(quantity < {_float(q_stats[2])} OR quantity > {_float(q_stats[3])})" if n_q else "false")
            q_flagged = int(self._value(f"SELECT count(*) FROM clean WHERE {q_where} AND {q_out}"))
            q_rows = self._clean_rows(f"{q_where} AND {q_out}") if q_flagged else empty_clean
            pick = "" if n_q <= sample else f"ORDER BY hash(_row) LIMIT {sample}"
            quantities = self._frame(f"SELECT quantity, is_outlier FROM (SELECT quantity, {q_out} AS is_outlier, _row "
                                     f"FROM clean WHERE {q_where} {pick}) ORDER BY _row")
        else:
            n_q, q_stats, q_flagged, q_rows = 0, (np.nan,) * 4, 0, empty_clean
            quantities = pd.DataFrame({"quantity": pd.Series(dtype="float64"), "is_outlier": pd.Series(dtype=bool)})

        counts = self._frame(f"""
            SELECT day AS date, count(*) AS orders, CAST(sum(revenue) AS DOUBLE) AS revenue FROM (
                SELECT date_trunc('day', order_date) AS day, order_id, sum(CAST(amount AS {DECIMAL})) AS revenue
                FROM clean GROUP BY ALL)
            GROUP BY day ORDER BY day""").astype({"orders": "int64"})
        daily = volume_from_counts(
            counts, window_days=settings.volume_window_days, spike_k=settings.spike_k,
            open_weekday_share=settings.open_weekday_share, gap_max_probability=settings.gap_max_probability,
            min_days=settings.volume_min_days)
        return CleanFacts(
            n_clean=int(n_clean), returns=returns,
            return_rows=self._clean_rows("is_return") if return_lines else empty_clean,
            near_count=near_count, near_rows=near_rows,
            near_same=[c for c in settings.near_duplicate_columns if self._has(c)],
            order_rule=OutlierFacts(o_stats, n_orders, int(o_flagged), o_rows, int(o_lines)),
            quantity_rule=OutlierFacts(q_stats, n_q, q_flagged, q_rows),
            order_values=order_values.reset_index(drop=True), quantities=quantities.reset_index(drop=True),
            daily=daily)

    def buyers(self) -> pd.Series:
        """Sorted distinct customer ids of the clean lines (after :meth:`prepare`)."""
        ids = self.con.sql("SELECT DISTINCT customer_id FROM clean ORDER BY customer_id").df()["customer_id"]
        return pd.Series(ids.to_numpy(dtype=object), dtype="string").reset_index(drop=True)

    def derived_customers_sql(self) -> str:
        """The query of the customers table of a run without a customers file, over the clean lines (after
        :meth:`prepare`): one row per customer id, with the customer attributes the lines carry
        (:data:`CUSTOMER_ATTRIBUTES`: UCI's Country, Shopify's Billing Country and Accepts Marketing, carried
        over each order by :mod:`segkit.data.statuses`), each from the customer's newest line that has it
        (latest ``order_date``; same date: the line first in the file), so a customer who moved or changed
        their consent is described as they are now.

        DuckDB dialect, the one definition: :meth:`derived_customers` runs it here, and the Spark audit runs
        the same text on the executors (:class:`segkit.data.spark_audit.SparkConnection` translates it;
        ``arg_max`` with a ``(date, -row)`` key is Spark's ``max_by``). Its rows, all or a part, become the
        customers table by :func:`derived_customers_table`."""
        # the newest line: latest order_date, then the first in the file (highest -_row)
        newest = "".join(f", arg_max({_ident(c)}, (order_date, -_row)) FILTER (WHERE {_ident(c)} IS NOT NULL) "
                         f"AS {_ident(c)}" for c in CUSTOMER_ATTRIBUTES if self._has(c))
        return f"SELECT customer_id{newest} FROM clean WHERE customer_id IS NOT NULL GROUP BY customer_id"

    def derived_customers(self, buyers: pd.Series) -> pd.DataFrame:
        """The customers table of a run without a customers file (:meth:`derived_customers_sql`), in memory:
        one row per customer id of the clean lines (``buyers``), in their order."""
        frame = pd.DataFrame({"customer_id": buyers})
        if any(self._has(c) for c in CUSTOMER_ATTRIBUTES):
            frame = frame.merge(self.con.sql(self.derived_customers_sql()).df().astype({"customer_id": "string"}),
                                on="customer_id", how="left")
        return derived_customers_table(frame)


#: The customer attributes order lines may carry, which the customers derived from them take
#: (:meth:`TransactionLog.derived_customers_sql`).
CUSTOMER_ATTRIBUTES = ("country", "email_opt_in")


def derived_customers_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of :meth:`TransactionLog.derived_customers_sql` (all of them or a part, as DuckDB or Spark gives them)
    as the customers table: canonical columns and dtypes (:func:`segkit.core.schema.validate`), in their order."""
    typed = rows.astype({c: CUSTOMERS.dtypes[c] for c in ("customer_id", *CUSTOMER_ATTRIBUTES) if c in rows})
    return validate(typed.reset_index(drop=True), CUSTOMERS.name, source="transactions (derived customers)")


# ----------------------------------------------------------------------------- module-level entry points
def write_clean_transactions(
    source: str | Path | Sequence[str | Path],
    dest: str | Path,
    config: Mapping[str, Any] | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> Path:
    """Write the cleaned line table (``transactions_clean.parquet``) of ``source`` with DuckDB ``COPY``.

    Columns, dtypes and row order are those of :meth:`TransactionLog.write_clean` (canonical columns plus
    ``is_return``, ``order_id`` filled); the lines are never loaded into pandas.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); p = d / "t.csv"
    >>> _ = p.write_text("customer_id,order_date,amount\\na,2024-01-01,10\\na,2024-01-02,-4\\n,2024-01-02,5\\n")
    >>> out = pd.read_parquet(write_clean_transactions(p, d / "clean.parquet"))
    >>> out[["customer_id", "order_id", "amount", "is_return"]].values.tolist()
    [['a', 'row-2', 10.0, False], ['a', 'row-3', -4.0, True]]
    """
    with TransactionLog(source, config) as log:
        return log.write_clean(dest, as_of)


# ----------------------------------------------------------------------------- aggregation of clean lines
# The computations are the relational core's queries (segkit.data.relational), run here over files.
CANONICAL_NEEDED = "It needs the canonical columns customer_id, order_id, order_date and amount."


def _lines_sql(source: str | Path | Sequence[str | Path]) -> str:
    """Canonical lines of ``source`` with their 1-based position ``_pos`` in file order."""
    return f"(SELECT *, ordinality AS _pos FROM {source_relation(source)} WITH ORDINALITY)"


@contextlib.contextmanager
def _scratch(memory_limit: str | None, temp_directory: str | Path | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on a temporary database file, so that intermediate tables spill to disk beyond
    the memory limit (tables of an in-memory database would have to fit); removed afterwards."""
    scratch = tempfile.TemporaryDirectory(prefix="segkit-engine-", dir=temp_directory)
    con = connect(memory_limit=memory_limit, temp_directory=Path(scratch.name) / "spill",
                  database=Path(scratch.name) / "scratch.duckdb")
    try:
        yield con
    finally:
        con.close()
        scratch.cleanup()


def _run(source: Any, sql: str, what: str, memory_limit: str | None = None,
         temp_directory: str | Path | None = None, threads: int | None = None) -> pd.DataFrame:
    con = connect(memory_limit=memory_limit, temp_directory=temp_directory, threads=threads)
    try:
        return con.sql(sql).df()
    except duckdb.OutOfMemoryException:
        raise  # retried with a larger limit (_grow_memory_limit)
    except duckdb.Error as exc:
        raise DataError(f"{source}: could not aggregate the transaction log ({first_line(exc)}). {what}") from None
    finally:
        con.close()


def _line_columns(source: Any, con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
    """Column names of the (canonical) line files of ``source`` (file metadata / a CSV header only), read
    on ``con`` (None = a connection of its own: opening one costs about as much as reading the names)."""
    own = con is None
    con = duckdb.connect() if con is None else con
    try:
        return {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source_relation(source)}").fetchall()}
    except duckdb.Error as exc:
        raise DataError(f"{source}: cannot be read ({first_line(exc)}). Use the cleaned transactions "
                        "(artifacts/transactions_clean.parquet).") from None
    finally:
        if own:
            con.close()


def _require_line_columns(source: Any, files: list[str], what: str,
                          con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
    """The column names of the line ``files`` of ``source`` (read on ``con``: :func:`_line_columns`); a
    :class:`DataError` naming ``source``, the missing canonical columns, those present and what to do when
    one is missing (before any query)."""
    columns = _line_columns(files, con)
    missing = [c for c in ("customer_id", "order_date", "amount") if c not in columns]
    if missing:
        raise DataError(f"{source}: column(s) {', '.join(map(repr, missing))} missing (columns present: "
                        f"{', '.join(sorted(columns)) or 'none'}). {what} Map your columns in the config "
                        "(columns.transactions) and re-run 01_data_audit, which writes them.")
    return columns


@contextlib.contextmanager
def file_lines(source: str | Path | Sequence[str | Path], memory_limit: str | None = None,
               temp_directory: str | Path | None = None, *, positions: bool = False,
               what: str = CANONICAL_NEEDED) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection (on a scratch database that spills beyond ``memory_limit``) whose ``lines``
    relation is the canonical order lines of ``source``, typed by
    :func:`segkit.data.relational.lines_view_sql`; the relational core's queries run on it.

    ``positions``: number the lines in file order (``_pos``; needed for listings in input order and
    for lines without order ids). DuckDB errors become a :class:`DataError` naming ``source``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01,10\\n")
    >>> with file_lines(p) as con:
    ...     con.sql("SELECT customer_id, amount FROM lines").fetchall()
    [('a', Decimal('10.000000'))]
    """
    files, _ = input_files(source)
    with _scratch(memory_limit, temp_directory) as con:
        columns = _require_line_columns(source, files, what, con)
        try:
            relation = source_relation(files)
            all_ids = "order_id" in columns and bool(
                con.sql(f"SELECT count(*) = count(order_id) FROM {relation}").fetchall()[0][0])
            if positions or not all_ids:
                relation = _lines_sql(files)
            con.execute("CREATE VIEW lines AS " + lines_view_sql(
                relation, sorted(columns), all_order_ids=all_ids,
                positions="_pos" if positions or not all_ids else None))
            yield con
        except duckdb.OutOfMemoryException:
            raise  # retried with a larger limit (_grow_memory_limit)
        except duckdb.Error as exc:
            raise DataError(f"{source}: could not aggregate the transaction log ({first_line(exc)}). "
                            f"{what}") from None


@_grow_memory_limit
def _on_lines(source: Any, lines: "OrderLines", task: Callable[[QueryExecutor], _T], positions: bool,
              what: str, canonical: bool, memory_limit: str | None = None,
              temp_directory: str | Path | None = None) -> _T:
    """``task`` run on a connection whose ``lines`` relation is ``lines`` (``source`` names it in
    messages); retried with a larger ``memory_limit`` when DuckDB runs out of it."""
    if lines.in_memory:
        with frame_lines(lines.source) as con:
            return task(DuckDBExecutor(con))
    if canonical:
        _check_canonical(lines.source, memory_limit, temp_directory)
    with file_lines(lines.source, memory_limit, temp_directory, positions=positions, what=what) as con:
        return task(DuckDBExecutor(con))


class OrderLines(OrderLineTables):
    """Order lines as the relational core reads them on DuckDB: a pandas frame (registered in DuckDB and
    scanned in place) or Parquet/CSV files (streamed, spilling beyond ``memory_limit``).

    The order-level tables (:class:`~segkit.data.relational.OrderLineTables`: ``orders``, ``rfm``,
    ``purchase_days`` …) are the core's runner functions on a
    :class:`~segkit.data.relational.DuckDBExecutor`; :class:`segkit.data.spark.SparkOrderLines` gives
    the same tables from Spark. The frame is checked as :func:`segkit.data.relational.frame_lines`
    checks it; files are read by :func:`file_lines`.

    Parameters
    ----------
    source : DataFrame, path, glob or list of paths
        Canonical order lines (``transactions_clean``): ``customer_id, order_date, amount`` and,
        when known, ``order_id, is_return, category, channel``.
    memory_limit, temp_directory
        DuckDB's memory limit and spill folder for files (``engine`` config section).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"], "amount": [5.0, -2.0, 7.0],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-03-01"])})
    >>> OrderLines(tx).purchase_orders("2024-02-01")["order_id"].tolist()
    ['1']
    """

    def __init__(self, source: pd.DataFrame | str | Path | Sequence[str | Path], memory_limit: str | None = None,
                 temp_directory: str | Path | None = None):
        self.source = source
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory

    def run(self, task: Callable[[QueryExecutor], _T], *, positions: bool = False, what: str | None = None,
            canonical: bool = False) -> _T:
        """``task(executor)`` on a :class:`~segkit.data.relational.DuckDBExecutor` holding ``lines``.

        ``positions``: number file lines in input order (listings in input order, channels of an
        order's first line); ``what``: what a file-reading error advises (None = the canonical columns);
        ``canonical``: first check that no line misses an id, date or amount.
        """
        name = "transactions" if self.in_memory else self.source
        return _on_lines(name, self, task, positions, what or CANONICAL_NEEDED, canonical,
                         memory_limit=self.memory_limit, temp_directory=self.temp_directory)


def rfm_table_from_files(
    source: str | Path | Sequence[str | Path],
    as_of: str | pd.Timestamp | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """:func:`segkit.data.orders.rfm_table` computed out-of-core from order-line files
    (:meth:`OrderLines.rfm`).

    Parameters
    ----------
    source : path, glob or list of paths
        Canonical order lines (``customer_id, order_id, order_date, amount``) in Parquet or CSV.
    as_of : str or Timestamp, optional
        Exclusive analysis date; None = the day after the last order.
    memory_limit : str, optional
        DuckDB memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk.
    temp_directory : str or Path, optional
        Where DuckDB spills (default: its own temporary folder).

    Returns
    -------
    DataFrame
        The columns of :func:`segkit.data.orders.rfm_table` with the same dtypes, sorted by customer.
    """
    return OrderLines(source, memory_limit, temp_directory).rfm(as_of)


def order_table_from_files(source: str | Path | Sequence[str | Path], memory_limit: str | None = None,
                           temp_directory: str | Path | None = None) -> pd.DataFrame:
    """:func:`segkit.data.orders.order_table` computed out-of-core: one row per ``(customer_id, order_id)``.

    Same columns, dtypes and row order (customers sorted; within a customer, orders in the order
    their id first appears in the lines); amounts are exact sums.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,2,2024-01-05,3\\na,1,2024-01-01,10\\na,1,2024-01-01,-10\\n")
    >>> order_table_from_files(p)[["order_id", "amount", "is_purchase"]]
      order_id  amount  is_purchase
    0        2     3.0         True
    1        1     0.0        False
    """
    return OrderLines(source, memory_limit, temp_directory).orders()


def _check_canonical(source: Any, memory_limit: str | None, temp_directory: str | Path | None) -> None:
    _require_line_columns(source, input_files(source)[0], CANONICAL_NEEDED)  # named before a query fails on it
    checks = _run(source, f"""
        SELECT count(*) - count(customer_id), count(*) - count(order_date), count(*) - count(amount),
               min(_pos) FILTER (WHERE customer_id IS NULL OR order_date IS NULL OR amount IS NULL)
        FROM {_lines_sql(source)}""", "It needs the canonical columns customer_id, order_date and amount.",
        memory_limit, temp_directory).iloc[0].tolist()
    for column, n in zip(("customer_id", "order_date", "amount"), checks[:3]):
        if n:
            raise DataError(f"{source}: column {column!r} has {int(n)} missing value(s) (first at "
                            f"{format_rows([int(checks[3]) - 1])}). Use the cleaned transactions "
                            "(artifacts/transactions_clean.parquet), which have none.")


def purchase_days_from_files(source: str | Path | Sequence[str | Path], memory_limit: str | None = None,
                             temp_directory: str | Path | None = None) -> pd.DataFrame:
    """:func:`segkit.data.orders.purchase_days` of the purchase orders of ``source``, computed out-of-core.

    DuckDB groups the lines into orders, keeps purchases and sums them per customer and day
    (:data:`segkit.data.relational.PURCHASE_DAYS`); only that table reaches memory, with the
    customer id as a categorical (no Python string per row).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01 09:00,10\\n"
    ...                  "a,2,2024-01-01 18:00,2\\na,3,2024-01-05,-4\\nb,4,2024-01-02,6\\n")
    >>> purchase_days_from_files(p)
      customer_id order_date  amount  orders
    0           a 2024-01-01    12.0       2
    1           b 2024-01-02     6.0       1
    """
    return OrderLines(source, memory_limit, temp_directory).purchase_days()


def first_non_purchase_from_files(source: str | Path | Sequence[str | Path], memory_limit: str | None = None,
                                  temp_directory: str | Path | None = None) -> pd.DataFrame:
    """:func:`segkit.data.orders.first_non_purchase` of the lines of ``source``, computed out-of-core
    (:meth:`OrderLines.first_non_purchase`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,C1,2024-01-01,-4\\nb,2,2024-01-02,6\\n")
    >>> first_non_purchase_from_files(p)
      customer_id first_order_date first_purchase_date
    0           a       2024-01-01                 NaT
    """
    return OrderLines(source, memory_limit, temp_directory).first_non_purchase()


def behaviour_table_from_files(
    source: str | Path | Sequence[str | Path],
    as_of: str | pd.Timestamp | None = None,
    *,
    max_channels: int = 6,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """The behaviour columns of :func:`segkit.features.customer_table`, computed out-of-core
    (:meth:`OrderLines.behaviour`).

    One row per buying customer, sorted by id, with ``recency_days, frequency, monetary_total,
    tenure_days, aov, median_days_between_orders, return_share`` and, when the lines have them,
    ``category_breadth, favourite_category`` and ``channel_share_<channel>…``. ``attrs["as_of"]``
    is the analysis date.

    Parameters
    ----------
    source : path, glob or list of paths
        Canonical clean lines (``transactions_clean.parquet``): ``customer_id, order_date, amount``
        and, when known, ``order_id, is_return, category, channel``.
    as_of : str or Timestamp, optional
        Exclusive analysis date; None = the day after the last line.
    max_channels : int
        Channels with their own share column (the rest are ``other``).
    memory_limit, temp_directory
        DuckDB's memory limit and spill folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount,category\\n"
    ...                  "a,1,2024-01-01,20,toys\\na,2,2024-01-11,40,books\\nb,3,2024-01-05,10,toys\\n")
    >>> behaviour_table_from_files(p, as_of="2024-01-21")[["customer_id", "aov", "median_days_between_orders"]]
      customer_id   aov  median_days_between_orders
    0           a  30.0                        10.0
    1           b  10.0                         NaN
    """
    return OrderLines(source, memory_limit, temp_directory).behaviour(as_of, max_channels)


def rfm_with_info_from_files(
    source: str | Path | Sequence[str | Path],
    as_of: str | pd.Timestamp | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`rfm_table_from_files` plus the counts behind the RFM notebook's warnings
    (:meth:`OrderLines.rfm_with_info`): ``as_of, orders_after_as_of, customers_after_as_of_only,
    purchase_orders, non_purchase_orders, customers_without_purchase, customers_non_positive_net,
    period_start, period_end, net_revenue`` (exact).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-01,10\\nb,2,2024-01-02,-3\\nc,3,2024-02-01,4\\n")
    >>> rfm, info = rfm_with_info_from_files(p, as_of="2024-01-15")
    >>> rfm["customer_id"].tolist(), info["orders_after_as_of"], info["customers_without_purchase"], info["net_revenue"]
    (['a'], 1, 1, 7.0)
    """
    return OrderLines(source, memory_limit, temp_directory).rfm_with_info(as_of)


def retention_flags_from_files(campaign: pd.DataFrame, source: str | Path | Sequence[str | Path], days: int,
                               as_of: str | pd.Timestamp | None = None, memory_limit: str | None = None,
                               temp_directory: str | Path | None = None) -> pd.Series:
    """:func:`segkit.campaign.retention_flags` over order-line files (:meth:`OrderLines.retention_flags`):
    only the campaign rows are in memory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("customer_id,order_id,order_date,amount\\na,1,2024-01-05,5\\nb,2,2024-02-20,9\\n")
    >>> camp = pd.DataFrame({"campaign_id": ["c"] * 3, "customer_id": ["a", "b", "c"],
    ...                      "sent_at": pd.to_datetime(["2024-01-01", None, "2024-01-20"])})
    >>> retention_flags_from_files(camp, p, days=30, as_of="2024-02-10").tolist()
    [1.0, 0.0, nan]
    """
    return OrderLines(source, memory_limit, temp_directory).retention_flags(campaign, days, as_of)
