"""The data audit of order lines on Apache Spark: :class:`~segkit.data.engine.TransactionLog`'s own SQL, run by Spark.

:class:`SparkTransactionLog` is a :class:`~segkit.data.engine.TransactionLog` whose staging connection is a
Spark session (:class:`SparkConnection`) instead of DuckDB: every statement of the audit — the typing of
the cells and the errors for bad input (file, column, rows, what to do), the orders contract of
:mod:`segkit.data.statuses` (statuses, refunds, order-level fields, e-mail keys, test orders), the duplicates,
the future-date cutoff, the facts of :mod:`segkit.data.auditfacts` — is the DuckDB-dialect text the DuckDB audit runs,
transpiled by :func:`duckdb_to_spark`. Nothing here defines a check or a count: a second copy would be a
bug. What is Spark's own:

* how the input is read (:meth:`SparkTransactionLog.map_source`): CSV and Parquet files (a file, a folder,
  a glob, ``s3a://``/``hdfs://``/``abfss://`` paths) or a table (``table:catalog.schema.orders``), each
  row numbered in DuckDB's file order (``_row``: :func:`~segkit.data.spark.number_file_lines`, the one
  numbering of file lines on Spark, which :class:`~segkit.data.spark.SparkLines` uses too) without a global sort;
* the few DuckDB constructs Spark lacks, translated in :func:`duckdb_to_spark` (struct-valued
  ``regexp_extract``, ``try_strptime``, ``fsum``, ``hash``) or defined once per session as Spark SQL
  functions with DuckDB's meaning (:data:`SHIM_FUNCTIONS`: ``isfinite``, ``is_inf``, ``regexp_full_match``);
* the DDL: ``CREATE TABLE … AS`` is a checkpointed temporary view, ``UPDATE`` rewrites the view
  (:meth:`SparkConnection.execute`);
* :meth:`SparkTransactionLog.write_clean` writes ``transactions_clean.parquet`` as a Parquet dataset (a
  folder of ``part-*.parquet`` files in input row order), which :class:`~segkit.data.engine.OrderLines`
  and :class:`~segkit.data.spark.SparkLines` both read.
* :func:`spark_side_table` reads a customers or campaign table (``engine.kind: spark``; local files too) with the
  same reader and numbering and keeps it on the executors: each partition (by the table's key) is typed and checked
  by the local reader's functions, only one line per partition reaches the driver, and a table that fails is checked
  again whole in one task, so that its error names the rows of the whole file as the local reader does;
* :func:`load_spark_table` reads a customers or campaign table that is a URI or a table (``engine.kind: spark``)
  with the same reader (:func:`read_spark_source`) and numbering, collects the columns it uses to the driver
  (customer-level tables, held there on DuckDB too) and hands them to the local reader's own mapping, cleaning
  and checks (:func:`segkit.data.io.canonical_cells`, :func:`segkit.data.io.typed_table`).

Known differences and limits (tested where said, the rest listed so that nobody relies on it):

* the plotted samples of order values and quantities differ once there are more than
  ``engine.plot_sample`` of them (a hash picks them; Spark's is another hash); ``fsum`` (compensated)
  becomes a plain sum, used only when the MAD of the logs is zero;
* not read here (DuckDB's :class:`~segkit.data.engine.TransactionLog` reads them): pandas frames, Excel
  workbooks, ``.bz2``/``.xz`` files; a CSV row with more fields than the header raises Spark's parse
  error, not DuckDB's "line N has F fields" message; a CSV file is read by one task (quoted values may
  hold line breaks), so split large CSV exports into parts or export Parquet;
* a URI (``s3a://…``, or ``file:/…`` given here as text) is passed to Spark as written and read as Parquet
  unless every path ends with a CSV suffix (a folder of CSV parts: a glob, ``s3a://lake/orders/*.csv``); its
  files are numbered by name; its CSV files are read with ``io.delimiter`` (default comma, not sniffed) and
  the first file's header, which every part must repeat (Spark's ``enforceSchema=False``: a part with other
  columns or another column order is refused with a DataError saying so), without the other checks
  :func:`~segkit.data.engine.csv_layout` makes of local files (tested on a ``file:`` glob of CSV parts);
* local files are handed to Spark as ``file:`` URIs (a bare path would be a path of ``fs.defaultFS``, HDFS on
  a cluster), messages name them by their paths;
* Parquet timestamps in nanoseconds (pandas' default) are read as timestamps from local files, URIs and
  file-based tables alike (:func:`segkit.data.spark.timestamps_from_nanoseconds`: the first file's footer says
  which integer columns they are); a timestamp written with a time zone is an instant to Spark's SQL, as to
  DuckDB's: order lines keep its UTC time on both engines (the pandas reader of a small file keeps the zone's
  wall time), while :func:`load_spark_table` gives the zone's wall time, as the local reader of customers and
  campaign files does;
* a ``table:`` must be file-based (Parquet, CSV, Delta: Spark's ``_metadata`` column numbers the rows); a
  view, a JDBC or an Iceberg table is refused with a DataError saying so (tested on a view).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import pandas as pd

from segkit.core.config import TABLE_PREFIX, resolve_source, source_scheme
from segkit.core.errors import ConfigError, DataError, first_line, format_rows
from segkit.core.files import publish_parquet_parts
from segkit.core.schema import DMY as DMY_PATTERN
from segkit.core.schema import TRANSACTIONS, coerce_id, get_spec
from segkit.data import io as segio
from segkit.data.bounded import partition_rows
from segkit.data.engine import (
    CSV_SUFFIXES,
    EngineSettings,
    MappedInput,
    TransactionLog,
    csv_layout,
    input_files,
    mapped_input,
)
from segkit.data.relational import sql_identifier
from segkit.data.spark import (SPARK_ERRORS, ParquetColumnFacts, ViewNames, child_session, frame_for_arrow,
                               number_file_lines, pandas_warnings_quiet, parquet_column_facts, reads_files,
                               spark_session, timestamps_from_nanoseconds, with_view_names)

try:  # the `spark` extra
    import sqlglot
    from sqlglot import exp
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F
    from pyspark.sql import types as spark_types
except ImportError:  # pragma: no cover - spark_session() raises the ConfigError that says what to install
    PySparkException = Exception  # type: ignore[misc,assignment]

__all__ = ["SHIM_FUNCTIONS", "TABLE_PREFIX", "duckdb_to_spark", "strftime_to_spark", "SparkConnection",
           "SparkTransactionLog", "SparkSource", "read_spark_source", "spark_csv_encoding", "SPARK_CSV_ENCODINGS",
           "refuse_replaced_bytes_in_lines", "load_spark_table", "FILESYSTEM_CONNECTORS",
           "URI_PARQUET_HINT", "spark_read_problem", "spark_source", "SparkSideTable", "spark_side_table",
           "typed_side_rows", "arrow_frame", "spark_schema"]

#: DuckDB scalar functions Spark lacks, defined in each session as Spark SQL functions with DuckDB's meaning
#: (NULL in, NULL out).
SHIM_FUNCTIONS: dict[str, str] = {
    "isfinite": "CREATE OR REPLACE TEMPORARY FUNCTION isfinite(x DOUBLE) RETURNS BOOLEAN "
                "RETURN IF(x IS NULL, NULL, NOT (isnan(x) OR abs(x) = double('inf')))",
    "is_inf": "CREATE OR REPLACE TEMPORARY FUNCTION is_inf(x DOUBLE) RETURNS BOOLEAN "
              "RETURN IF(x IS NULL, NULL, abs(x) = double('inf'))",
    "regexp_full_match": "CREATE OR REPLACE TEMPORARY FUNCTION regexp_full_match(s STRING, p STRING) "
                         "RETURNS BOOLEAN RETURN s RLIKE concat('^(?:', p, ')$')",
}
# strftime directives of DuckDB's (try_)strptime → Spark datetime pattern letters (parsing)
_STRFTIME = {"%d": "d", "%m": "M", "%Y": "yyyy", "%H": "H", "%I": "h", "%M": "m", "%S": "s",
             "%b": "MMM", "%B": "MMMM", "%p": "a", "%f": "SSSSSS", "%%": "%"}
# numeric directives written with two pattern letters (two digits) when they touch another directive:
# Spark's one-letter field takes every digit it can, so "yyyyMd" cannot split "20240102"
_FIXED_WIDTH = {"%d": "dd", "%m": "MM", "%H": "HH", "%I": "hh", "%M": "mm", "%S": "ss"}
_SPARK_TO_DUCKDB_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "float": "FLOAT", "bigint": "BIGINT",
                          "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT", "boolean": "BOOLEAN",
                          "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP", "date": "DATE", "binary": "BLOB"}


def strftime_to_spark(pattern: str) -> str:
    """A DuckDB/Python ``strptime`` pattern as a Spark datetime pattern (letters of literal text quoted).

    Raises
    ------
    ConfigError
        A directive Spark's parser has no equivalent for, or ``%y``: a two-digit year is 1969–2068 to
        DuckDB and 2000–2099 to Spark, so ``95`` would silently become 2095 (a future date, dropped).

    Examples
    --------
    >>> strftime_to_spark("%d-%b-%Y %H:%M"), strftime_to_spark("%b %d, %Y"), strftime_to_spark("%Y-%m-%dT%H")
    ('d-MMM-yyyy H:m', 'MMM d, yyyy', "yyyy-M-d'T'H")
    >>> strftime_to_spark("%Y%m%d %H%M%S")
    'yyyyMMdd HHmmss'
    """
    out = []
    tokens = re.findall(r"%.|[^%]+", pattern)
    for i, token in enumerate(tokens):
        if token.startswith("%"):
            if token == "%y":
                raise ConfigError(f"io.date_format {pattern!r}: a two-digit year (%y) is read as 1969-2068 by "
                                  "DuckDB and as 2000-2099 by Spark. Use a four-digit year (%Y) in the export, or "
                                  "engine.kind: duckdb.")
            if token not in _STRFTIME:
                raise ConfigError(f"date format {pattern!r}: {token} has no Spark equivalent; use "
                                  f"{', '.join(_STRFTIME)} (or engine.kind: duckdb).")
            touching = any(0 <= j < len(tokens) and tokens[j].startswith("%") and tokens[j] != "%%"
                           for j in (i - 1, i + 1))
            out.append(_FIXED_WIDTH[token] if touching and token in _FIXED_WIDTH else _STRFTIME[token])
        else:
            out.append(re.sub(r"[A-Za-z']+", lambda m: "'" + m.group().replace("'", "''") + "'", token))
    return "".join(out)


def _group_index(pattern: str, name: str) -> int:
    """The number of the named group ``name`` of ``pattern`` (Python's, Java's and RE2's numbering agree)."""
    return re.compile(pattern).groupindex[name]


def _java_regex(pattern: str) -> str:
    """``pattern`` with its Python/RE2 named groups ``(?P<name>…)`` as plain groups (Java's names allow no
    ``_``); the groups keep their numbers, by which :func:`duckdb_to_spark` extracts them."""
    return re.sub(r"\(\?P<\w+>", "(", pattern)


def _java_replacement(text: str) -> str:
    r"""A DuckDB (RE2) replacement as Java's: ``\1`` → ``$1``, ``$`` → ``\$`` (``\\`` stays a backslash).

    Examples
    --------
    >>> _java_replacement(r"\1 costs $"), _java_replacement(r"a\\b")
    ('$1 costs \\$', 'a\\\\b')
    """
    return re.sub(r"\\(\d)|\\\\|\$", lambda m: f"${m.group(1)}" if m.group(1) else
                  ("\\\\" if m.group() == "\\\\" else "\\$"), text)


def _translate(node: "exp.Expression") -> "exp.Expression":
    """One DuckDB construct as what Spark runs (see :func:`duckdb_to_spark`)."""
    if isinstance(node, exp.Dot) and isinstance(node.this, exp.RegexpExtract) \
            and isinstance(node.this.args.get("group"), exp.Array):
        # regexp_extract(s, p, [names]).field → regexp_extract(s, p, <number of the group named field>)
        pattern = node.this.expression.name
        index = _group_index(pattern, node.expression.name)
        return exp.RegexpExtract(this=node.this.this, expression=exp.Literal.string(_java_regex(pattern)),
                                 group=exp.Literal.number(index))
    if isinstance(node, exp.RegexpReplace):
        # DuckDB replaces the first match unless 'g'; Spark every match: the same only for anchored patterns
        modifiers = node.args.get("modifiers")
        pattern = node.expression.name
        if "g" not in (modifiers.name if modifiers is not None else "") and not (
                pattern.startswith("^") or pattern.endswith("$")):
            raise NotImplementedError(f"regexp_replace of the first match of {pattern!r} has no Spark form here; "
                                      "anchor the pattern or replace every match ('g').")
        return exp.RegexpReplace(this=node.this, expression=exp.Literal.string(_java_regex(pattern)),
                                 replacement=exp.Literal.string(_java_replacement(node.args["replacement"].name)))
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "try_strptime":  # try_strptime(s, fmt | [fmt, …]) → coalesce(try_to_timestamp(s, fmt'), …)
            text, formats = node.expressions
            listed = formats.expressions if isinstance(formats, exp.Array) else [formats]
            tries = [exp.Anonymous(this="try_to_timestamp",
                                   expressions=[text.copy(), exp.Literal.string(strftime_to_spark(f.name))])
                     for f in listed]
            return tries[0] if len(tries) == 1 else exp.Coalesce(this=tries[0], expressions=tries[1:])
        if name == "fsum":
            return exp.Sum(this=node.expressions[0])
        if name == "hash":  # only ever a pre-filter or a sample order: a 64-bit hash, fewer collisions
            return exp.Anonymous(this="xxhash64", expressions=node.expressions)
    if isinstance(node, exp.Literal) and node.is_string and "(?P<" in node.name:
        return exp.Literal.string(_java_regex(node.name))
    return node


def duckdb_to_spark(text: str, views: Mapping[str, str] | None = None) -> str:
    """One DuckDB-dialect statement or query as Spark SQL: :func:`sqlglot.transpile` plus the translations
    of the constructs it leaves to DuckDB (struct-valued ``regexp_extract``, ``try_strptime``, ``fsum``,
    ``hash``, Python-style named groups); the functions of :data:`SHIM_FUNCTIONS` are passed through. The
    relations ``views`` names read those temporary views (:func:`~segkit.data.spark.with_view_names`).

    Examples
    --------
    >>> duckdb_to_spark("SELECT regexp_extract(t, '(?P<a>x)(?P<b>y)', ['a', 'b']).b, fsum(v) FROM t")
    "SELECT REGEXP_EXTRACT(t, '(x)(y)', 2), SUM(v) FROM t"
    """
    tree = with_view_names(sqlglot.parse_one(text, read="duckdb"), views or {})
    return tree.transform(_translate).sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


class _SparkResult:
    """A lazily evaluated query: the part of DuckDB's relation API the audit uses."""

    def __init__(self, frame: Any):
        self.frame = frame

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.frame.collect()]

    def df(self) -> pd.DataFrame:
        with pandas_warnings_quiet():
            return self.frame.toPandas()


class SparkConnection:
    """A Spark session that runs DuckDB-dialect SQL: the part of a DuckDB connection that
    :class:`~segkit.data.engine.TransactionLog` uses (``sql``, ``execute``, ``close``).

    ``CREATE TABLE name AS query`` holds the result as a checkpointed temporary view (computed once, as
    DuckDB stages a table); ``CREATE VIEW`` is a temporary view; ``CREATE TABLE name (columns)`` an empty
    one; ``INSERT INTO name query`` and ``UPDATE name SET … WHERE …`` compute the new rows and hold them
    under the same name.

    Each relation defined is a temporary view of its own (:attr:`views`, :class:`~segkit.data.spark.ViewNames`),
    never replaced: a frame made before a relation is defined again (``UPDATE lines …``) reads the rows it was
    made from, on Spark Connect too (where a frame reads views by name when an action runs).

    Parameters
    ----------
    session : SparkSession
        Where the relations live (a child session of :func:`~segkit.data.spark.spark_session`; on Spark
        Connect the process's one session).
    """

    def __init__(self, session: Any):
        self.session = session
        #: the temporary views of the relations defined here
        self.views = ViewNames(session)
        for statement in SHIM_FUNCTIONS.values():
            session.sql(statement)

    def _spark(self, text: str) -> str:
        return duckdb_to_spark(text, self.views.current)

    def sql(self, text: str) -> _SparkResult:
        """The query ``text`` (DuckDB dialect), lazily."""
        return _SparkResult(self.session.sql(self._spark(text)))

    def _hold(self, name: str, frame: Any) -> None:
        self.views.create(name, frame.localCheckpoint(eager=True))

    def execute(self, text: str) -> None:
        """Run one DuckDB-dialect statement (the kinds listed in the class docstring)."""
        tree = sqlglot.parse_one(text, read="duckdb")
        if isinstance(tree, exp.Create):
            name = tree.this.this.name if isinstance(tree.this, exp.Schema) else tree.this.name
            query = tree.expression
            if query is None:  # CREATE TABLE name (column type, …)
                columns = ", ".join(f"CAST(NULL AS {c.args['kind'].sql('duckdb')}) AS {sql_identifier(c.name)}"
                                    for c in tree.this.expressions)
                self.views.create(name, self.session.sql(self._spark(f"SELECT {columns} LIMIT 0")))
                return
            frame = self.session.sql(self._spark(query.sql("duckdb")))
            if str(tree.args.get("kind", "")).upper() == "VIEW":
                self.views.create(name, frame)
            else:
                self._hold(name, frame)
            return
        if isinstance(tree, exp.Insert):
            name = tree.this.name
            added = self.session.sql(self._spark(tree.expression.sql("duckdb")))
            held = self.views.frame(name)
            self._hold(name, held.union(added.toDF(*held.columns)))  # by position, as DuckDB inserts
            return
        if isinstance(tree, exp.Update):
            name = tree.this.name
            where = tree.args.get("where")
            condition = where.this.sql("duckdb") if where is not None else None
            changes = {eq.this.name: eq.expression.sql("duckdb") for eq in tree.expressions}
            select = []
            for column in self.views.frame(name).columns:
                ident = sql_identifier(column)
                if column in changes:
                    value = changes[column] if condition is None else \
                        f"CASE WHEN {condition} THEN {changes[column]} ELSE {ident} END"
                    select.append(f"{value} AS {ident}")
                else:
                    select.append(ident)
            self._hold(name, self.session.sql(self._spark(f"SELECT {', '.join(select)} FROM {name}")))
            return
        raise NotImplementedError(f"SparkConnection.execute: no Spark form for {type(tree).__name__} statements "
                                  f"({text.strip()[:80]!r}).")

    def close(self) -> None:
        """Drop the temporary views made here (the session, its executors and other objects' views stay)."""
        self.views.drop()


def _duckdb_type(data_type: Any) -> str:
    """The DuckDB name of a Spark column type (what the staging SQL branches on)."""
    name = data_type.simpleString()
    if name.startswith("decimal"):
        return name.upper()
    return _SPARK_TO_DUCKDB_TYPES.get(name, name.upper())


def _is_uri(path: str) -> bool:
    """True for a URI Spark reads as written: ``s3a://…``, ``hdfs://…``, ``abfss://…``, also ``file:/…`` given
    to :class:`SparkTransactionLog` as text (``segkit run`` hands it a ``file:`` URI's local path instead)."""
    return source_scheme(path) not in (None, "table")


def _spark_file_uri(path: str) -> str:
    """A local file as Spark is handed it: ``file://`` and its absolute path, not percent-encoded (Spark takes
    ``%20`` in a path literally; a bare path would be a path of ``fs.defaultFS``, HDFS on a cluster).

    Examples
    --------
    >>> _spark_file_uri("/data/a b#1.csv")
    'file:///data/a b#1.csv'
    """
    absolute = Path(os.path.abspath(path)).as_posix()
    return "file://" + ("" if absolute.startswith("/") else "/") + absolute  # file:///C:/… on Windows


def _source_paths(source: str | Path | Sequence[str | Path]) -> list[str]:
    """The paths of a file source (one path or a list of them) as text."""
    return [str(p) for p in ([source] if isinstance(source, (str, Path)) else source)]


def _uri_format(paths: Sequence[str]) -> str:
    """The format a URI source is read in: ``"csv"`` when every path ends with a CSV suffix (a file or a
    glob: ``s3a://lake/orders/*.csv``), else ``"parquet"`` (a URI folder is not listed here: Spark reads it)."""
    return "csv" if all(p.lower().rstrip("/").endswith(CSV_SUFFIXES) for p in paths) else "parquet"


#: Added to Spark's read error for a URI read as Parquet (:func:`_uri_format`).
URI_PARQUET_HINT = ("A URI is read as Parquet unless it ends in .csv (or .csv.gz, .tsv, .txt): give a folder of CSV "
                    "parts as a glob (s3a://lake/orders/*.csv).")


#: Maven packages of the Hadoop filesystem connectors, by URI scheme: named when Spark has none for a path.
FILESYSTEM_CONNECTORS: dict[str, str] = {
    "s3a": "org.apache.hadoop:hadoop-aws", "abfss": "org.apache.hadoop:hadoop-azure",
    "abfs": "org.apache.hadoop:hadoop-azure", "wasbs": "org.apache.hadoop:hadoop-azure",
    "gs": "com.google.cloud.bigdataoss:gcs-connector",
}


def spark_read_problem(exc: BaseException, source: str | None = None) -> str:
    """What Spark said when it could not read ``source``, in one line: the first line of a Spark error, the
    Java exception of a JVM error (whose own first line is only "An error occurred while calling o79.parquet"),
    and for a URI whose filesystem Spark has no connector for, which connector to add.

    Examples
    --------
    >>> spark_read_problem(ValueError("[PATH_NOT_FOUND] Path does not exist: file:/x.\\nSQLSTATE: 42K03"))
    '[PATH_NOT_FOUND] Path does not exist: file:/x.'
    """
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()).strip().splitlines()[0] if java is not None else first_line(exc)
    if "ClassNotFoundException" not in text or "org.apache.hadoop.fs" not in text:
        return text
    scheme = source_scheme(source) or "this"
    package = FILESYSTEM_CONNECTORS.get(scheme, "the connector's package")
    if _from_connect(exc):  # the server's packages are fixed when it starts
        return (f"{text}; this Spark Connect server has no filesystem connector for {scheme}: URIs. Start the "
                f"server with it (spark.jars.packages: {package}:<the version for its Spark's Hadoop>) or use a "
                "server that has it")
    return (f"{text}; this Spark has no filesystem connector for {scheme}: URIs. Add it in engine.spark.conf "
            f"(spark.jars.packages: {package}:<the version for your Spark's Hadoop>) or run on a cluster that has it")


def _from_connect(exc: BaseException) -> bool:
    """True for an error a Spark Connect server sent (pyspark's ``pyspark.errors.exceptions.connect``)."""
    return type(exc).__module__.startswith("pyspark.errors.exceptions.connect")


def _error_messages(exc: BaseException) -> list[str]:
    """The messages of ``exc`` and of its causes, outermost first: a JVM error's (classic session) by its Java
    cause chain; a Spark Connect error's from its text (its message, then each ``Caused by:`` line of the
    server's stack trace, which the server sends unless ``spark.sql.connect.serverStacktrace.enabled`` is off);
    another error's text."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        messages = []
        while java is not None:
            messages.append(str(java.getMessage() or ""))
            java = java.getCause()
        return messages
    text = str(exc)
    return [first_line(exc)] + [line.split("Caused by:", 1)[1].strip() for line in text.splitlines()
                                if line.strip().startswith("Caused by:")]


def spark_source(config: Mapping[str, Any], value: str | Path | None) -> str | Path | None:
    """A ``data.*`` value as :class:`SparkTransactionLog` reads it: a table (``table:…``) or a URI
    (``s3a://…``, ``hdfs://…``, ``abfss://…``) as written, a ``file:`` URI as its local path, a local path
    resolved against the config's folder (:func:`segkit.core.config.resolve_source`).

    Examples
    --------
    >>> cfg = {"_base_dir": "/shop"}
    >>> spark_source(cfg, "table:main.sales.orders"), spark_source(cfg, "s3a://lake/orders/"), spark_source(cfg, "o.csv")
    ('table:main.sales.orders', 's3a://lake/orders/', PosixPath('/shop/o.csv'))
    """
    return resolve_source(config, value)


#: Python's codec names of the encodings Spark 4's CSV reader accepts (its ``charset`` option refuses every
#: other name, Python's own spelling of these included: "iso8859-1" is refused, "ISO-8859-1" read).
SPARK_CSV_ENCODINGS: dict[str, str] = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "iso8859-1": "ISO-8859-1",
                                       "ascii": "US-ASCII", "utf-16": "UTF-16", "utf-16-be": "UTF-16BE",
                                       "utf-16-le": "UTF-16LE", "utf-32": "UTF-32"}


def spark_csv_encoding(encoding: str | None) -> str:
    """``io.encoding`` (any name Python knows, default UTF-8) as Spark's CSV reader names it.

    Raises
    ------
    ConfigError
        An encoding Spark's CSV reader does not read (cp1252, …), saying which ones it reads and what to do.

    Examples
    --------
    >>> spark_csv_encoding("latin-1"), spark_csv_encoding(None), spark_csv_encoding("utf_8_sig")
    ('ISO-8859-1', 'UTF-8', 'UTF-8')
    """
    name = codecs.lookup(str(encoding or "utf-8")).name
    if name not in SPARK_CSV_ENCODINGS:
        raise ConfigError(f"io.encoding {encoding!r}: Spark's CSV reader reads UTF-8, Latin-1 (ISO-8859-1), US-ASCII, "
                          "UTF-16 and UTF-32 text only. Convert the export to UTF-8 (or give it as Parquet), or audit "
                          "it with engine.kind: duckdb.")
    return SPARK_CSV_ENCODINGS[name]


class SparkSource(NamedTuple):
    """What :func:`read_spark_source` read.

    Attributes
    ----------
    frame : Spark DataFrame
        The rows, not yet numbered.
    label : str
        How messages name the source (as DuckDB's reader does).
    files : list of str or None
        The local files in the order DuckDB reads them (None for URIs and tables: numbered by name).
    kind : str
        ``"csv"`` (every cell text), ``"parquet"`` or ``"table"``.
    facts : ParquetColumnFacts
        What the first file's Parquet footer says of the columns (:func:`~segkit.data.spark.parquet_column_facts`,
        read once here: nanosecond and zoned timestamps); empty for CSV.
    """

    frame: Any
    label: str
    files: list[str] | None
    kind: str
    facts: ParquetColumnFacts


def read_spark_source(session: Any, source: str | Path | Sequence[str | Path], opts: Mapping[str, Any],
                      rows: str = "the order lines", what: str = "the transaction log") -> SparkSource:
    """``source`` read by Spark, as a :class:`SparkSource` (the rows, how messages name them, the local files,
    what was read and the Parquet footer's column facts).

    A ``table:<name>`` is read from the catalog; it must be read from files (:func:`~segkit.data.spark.reads_files`:
    its rows are numbered by them, so that errors name rows): a view, a JDBC, an Iceberg table raise a
    :class:`~segkit.core.errors.DataError` saying what to give (``rows`` names what is numbered).

    Local files (a file, a folder, a glob: :func:`~segkit.data.engine.input_files`) are read with the
    delimiter and header of :func:`~segkit.data.engine.csv_layout` (sniffed as :mod:`segkit.data.io` sniffs,
    every file's header checked); URIs as :func:`_uri_format` says, their CSV with ``io.delimiter`` (default
    comma) and the first file's header, which every part must repeat (``enforceSchema=False``; Spark refuses a
    part whose header differs, :func:`load_spark_table` says so). Local files reach Spark as ``file:`` URIs (not
    paths of ``fs.defaultFS``). CSV cells are text: quote and escape ``"`` (a doubled quote is a
    quote, a backslash is a backslash, as pandas and DuckDB read them; Spark's default escape is a backslash),
    ``io.encoding`` (default UTF-8; a UTF-8 byte-order mark is dropped), empty cells NULL, wholly empty lines
    skipped (by Spark, as by DuckDB). Parquet keeps its types (nanosecond timestamps as timestamps:
    :func:`~segkit.data.spark.timestamps_from_nanoseconds`).

    Parameters
    ----------
    session : SparkSession
        Where to read.
    source : str, Path or list of them
        Local paths, URIs passed to Spark as written, or ``table:<name>``.
    opts : mapping
        Read options (:func:`segkit.data.io.read_options`).
    rows, what : str
        What the rows are and what the files hold, for messages (a table not read from files, no file found).
    """
    text = str(source) if isinstance(source, (str, Path)) else ""
    if isinstance(source, str) and text.startswith(TABLE_PREFIX):
        raw = session.table(text[len(TABLE_PREFIX):])
        if not reads_files(raw):
            raise DataError(
                f"{text} is not a file-based table (a view, or a JDBC, Iceberg or other table without Spark's "
                f"_metadata column): segkit numbers {rows} by the files they are read from, as DuckDB reads them. "
                "Give its files (their folder, a glob or a URI) or a file-based (Parquet, CSV, Delta) table.")
        facts = parquet_column_facts(raw)
        return SparkSource(timestamps_from_nanoseconds(raw, facts), text, None, "table", facts)
    paths = _source_paths(source)
    if any(_is_uri(p) for p in paths):
        kind = _uri_format(paths)
        files, label = paths, paths[0] if len(paths) == 1 else f"{source} ({len(paths)} paths)"
        local = None
        delimiter, header = (opts.get("delimiter") or ","), None
    else:
        local, kind = input_files(source, what=what)
        files = [_spark_file_uri(f) for f in local]
        label = local[0] if len(local) == 1 else f"{source} ({len(local)} files)"
        delimiter, header = None, None
        if kind == "csv":  # DuckDB's reader's delimiter and header checks
            delimiter, header = csv_layout(local, opts, what=what)
    if kind == "parquet":
        raw = session.read.parquet(*files)
        facts = parquet_column_facts(raw)
        return SparkSource(timestamps_from_nanoseconds(raw, facts), label, local, kind, facts)
    encoding = spark_csv_encoding(opts.get("encoding"))
    # multiLine: quoted values may hold line breaks, as DuckDB reads them (a file is then one task)
    # enforceSchema=False (URIs): every part's header must match the first one's (Spark otherwise takes the
    # columns of every part in the first part's order: parts exported in another column order would swap values)
    reader = session.read.options(header=True, sep=delimiter, quote='"', escape='"', encoding=encoding,
                                  mode="FAILFAST", multiLine=True, inferSchema=False, enforceSchema=header is not None)
    if header is not None:
        reader = reader.schema(spark_types.StructType(
            [spark_types.StructField(h, spark_types.StringType(), True) for h in header]))
    return SparkSource(reader.csv(files), label, local, kind, ParquetColumnFacts())


def load_spark_table(source: str | Path, table: str, config: Mapping[str, Any], *, label: str | None = None,
                     session: Any = None) -> pd.DataFrame:
    """A customers or campaign table that Spark reads, as the canonical, validated table
    :func:`segkit.data.io.load_table` gives of a local file (same columns, dtypes, index, ``attrs`` and errors).

    The source is read by Spark where it lives: CSV or Parquet files (a folder, a glob, ``s3a://``,
    ``hdfs://``, ``abfss://``, ``file:`` … URIs: :func:`read_spark_source`; CSV cells as text as pandas reads
    them locally) or a file-based table (``table:catalog.schema.customers``). Its rows are numbered in file
    order as DuckDB and the local reader number them (:func:`~segkit.data.spark.number_file_lines`; the files of
    a folder or glob one after the other, as if one file), only the columns the table uses are kept, and they
    are **collected to the driver**: these are customer-level tables, one row per customer or per send, which
    reach the driver on DuckDB too (the audit joins them there). The engine-independent rest is the local
    reader's: column map and loose name matching, blank rows (:func:`segkit.data.io.canonical_cells`), typing
    and checks (:func:`segkit.data.io.typed_table`), every message naming ``label``.

    Differences from the local reader (the CSV options of ``config["io"]``): ``delimiter`` is sniffed for local
    files as there, for other URIs it is ``io.delimiter`` (default comma); ``encoding`` is passed to Spark
    (UTF-8 by default; a UTF-8 byte-order mark is dropped; UTF-16/UTF-32 marks are not detected); ``decimal``,
    ``date_format`` and ``dayfirst`` apply as locally (in the typing); ``sheet_name`` does not apply (Spark reads
    no Excel: give an Excel workbook as a local file). A wholly empty line (not even delimiters) is skipped by
    Spark without being counted, so rows below it are named one row higher than the local reader names them; a
    spreadsheet's empty rows (``,,,``) are counted as blank rows as there. Empty CSV cells are ``""`` as in
    pandas' reading (Spark reads them as NULL). With UTF-8 (the default ``encoding``) a cell holding U+FFFD,
    which Spark puts for each invalid byte, is refused as the local reader refuses invalid UTF-8 (naming the
    column and rows; a file that holds U+FFFD as a character is refused too). Parquet columns keep their types;
    a timestamp column written with a time zone (pyarrow's schema in the footer:
    :func:`~segkit.data.spark.parquet_column_facts`) is given in that zone's wall time, as pandas reads it
    locally (Spark gives the instant in UTC). Other differences of Spark's CSV reader (a line of spaces only or a
    row with fewer fields than the header stops the read; an open quote at the end of the file is read;
    ``\\r\\n`` inside a quoted value becomes ``\\n``): README, "Running on a Spark cluster".

    Parameters
    ----------
    source : str or Path
        Local paths (a file, folder or glob, e.g. a ``file:`` URI's path) or a URI or ``table:name`` as written.
    table : {"customers", "campaign"}
        Which canonical table it holds (``transactions`` works too, for tests; runs audit order lines with
        :class:`SparkTransactionLog`).
    config : mapping
        The merged config: ``columns.<table>``, ``io``, ``engine.spark`` (the session, when none is running).
    label : str, optional
        How messages name the source: the value as the user wrote it (``data.<table>``); default ``source``.
    session : SparkSession, optional
        Default :func:`~segkit.data.spark.spark_session` of ``engine.spark``; read in a child session of it.

    Raises
    ------
    DataError
        Spark cannot read the source (the message starts with ``data.<table>:``, names the value, what Spark
        said and what to do), or the table breaks its contract (as :func:`segkit.data.io.load_table` says, naming
        ``label``, the column and the rows).
    ConfigError
        The column map or ``io`` options are invalid.

    Examples
    --------
    Not run as a doctest (it starts Spark); as 01_data_audit reads ``data.customers: s3a://lake/crm/customers/``:

    >>> load_spark_table("s3a://lake/crm/customers/", "customers", config)  # doctest: +SKIP
    """
    side = _side_cells(source, table, config, label=label, session=session)
    with _side_read_errors(side):
        with pandas_warnings_quiet():
            cells = side.numbered.toPandas()
    return side.typed(cells)


class _SideCells(NamedTuple):
    """A customers or campaign table read by Spark, numbered, not yet typed (:func:`_side_cells`), and how its
    cells become the local reader's table (:meth:`canonical`, :meth:`typed`: on the driver or per partition)."""

    numbered: Any  # the columns used, as c0, c1, … (by position), and _row
    source: str | Path
    table: str
    label: str
    setting: str
    names: list[str]  # the file's name of c0, c1, …
    zones: dict[str, str]
    kind: str
    opts: dict[str, Any]
    mapping: dict[str, str]
    config_hint: str

    def canonical(self, cells: pd.DataFrame) -> pd.DataFrame:
        """Cells ``c0, c1, …, _row`` (all the rows or a part) as :func:`segkit.data.io.canonical_cells` gives
        them locally: indexed by the 0-based data row, CSV cells text ("" when empty), zoned times as wall time."""
        cells = cells.set_index("_row").sort_index()
        cells.index = pd.Index(cells.index.to_numpy("int64"))  # the 0-based data row, as load_table's
        cells.columns = list(self.names)
        for position, name in enumerate(cells.columns):
            if name in self.zones:  # an instant (collected in UTC, the session's zone) → its wall time where written
                utc = pd.to_datetime(cells.iloc[:, position]).dt.tz_localize("UTC")
                cells.isetitem(position, utc.dt.tz_convert(self.zones[name]).dt.tz_localize(None))
        if self.kind == "csv":  # every cell text, an empty one "" as pandas reads it locally
            cells = cells.astype(object).where(cells.notna(), "")
            if spark_csv_encoding(self.opts.get("encoding")) == "UTF-8":
                _refuse_replaced_bytes(cells, f"{self.setting}: {self.label}")
        return segio.canonical_cells(cells, self.table, self.label, self.mapping, self.config_hint)

    def typed(self, cells: pd.DataFrame) -> pd.DataFrame:
        """:func:`segkit.data.io.typed_table` of :meth:`canonical`: the local reader's table and errors."""
        return segio.typed_table(self.canonical(cells), self.table, self.opts)


def _side_cells(source: str | Path, table: str, config: Mapping[str, Any], *, label: str | None = None,
                session: Any = None) -> _SideCells:
    """``source`` read by Spark and numbered in file order (what :func:`load_spark_table` and
    :func:`spark_side_table` read), with what typing its cells takes."""
    label = label or str(source)
    setting = f"data.{table}"
    config_hint = segio.config_file_hint(config)
    opts = segio.read_options(config)
    mapping = segio.check_column_map(table, (config.get("columns") or {}).get(table), config_hint)
    engine = EngineSettings.from_config(config)
    spark = child_session(session or spark_session(engine.spark.master, engine.spark.conf))
    side = _SideCells(None, source, table, label, setting, [], {}, "", dict(opts), dict(mapping), config_hint)
    with _side_read_errors(side):
        raw, _, files, kind, facts = read_spark_source(spark, source, opts, f"the {table} table's rows",
                                                       f"the {table} table")
        header = list(raw.columns)
        positions = segio.resolve_columns(header, get_spec(table), mapping, label, config_hint)
        kept = sorted(set(positions.values()))
        # the columns used, by position (c0, c1, …): a user column named _row stays apart from the numbering
        used = [F.col("`" + header[p].replace("`", "``") + "`").alias(f"c{i}") for i, p in enumerate(kept)]
        numbered = number_file_lines(raw.select(*used), files=files)
    return side._replace(numbered=numbered, names=[header[p] for p in kept], zones=dict(facts.time_zones), kind=kind)


@contextlib.contextmanager
def _side_read_errors(side: _SideCells) -> Iterator[None]:
    """Spark's refusals and segkit's errors while reading a customers or campaign table, named by its setting."""
    try:
        yield
    except SPARK_ERRORS as exc:
        raise _read_refusal(exc, side.source, f"{side.setting}: {side.label}", f"the {side.table} table") from None
    except DataError as exc:
        if str(exc).startswith((f"{side.setting}:", f"{side.label}:")):  # a bad row: as the local reader names it
            raise
        if str(exc).startswith(side.label):  # a table not read from files
            raise DataError(f"{side.setting}: {exc}") from None
        raise DataError(f"{side.setting} = {side.label!r}: {exc}") from None  # a local file set not found


#: Spark types of the canonical pandas dtypes (:mod:`segkit.core.schema`) of a typed customers or campaign table.
_SPARK_TYPES = {"string": "string", "float64": "double", "Int64": "bigint", "int64": "bigint", "boolean": "boolean",
                "datetime64[ns]": "timestamp_ntz"}
_META = "_segkit_meta"
_KEY = "_segkit_key"


class SparkSideTable(NamedTuple):
    """A customers or campaign table typed and checked on the executors (:func:`spark_side_table`).

    Attributes
    ----------
    rows : pyspark.sql.DataFrame
        The canonical columns in canonical order (Spark types of the canonical dtypes: ``string``, ``double``,
        ``bigint``, ``boolean``, ``timestamp_ntz``) and ``_row`` (the 0-based data row in the whole file), held
        on the executors, partitioned by the table's key (``customer_id``; campaign and customer).
    dtypes : dict
        Column -> canonical pandas dtype (what :func:`typed_side_rows` gives each part again).
    attrs : dict
        The local reader's ``attrs`` of the whole table (``source``, ``columns``, ``absent_columns``,
        ``blank_rows``, ``blank_row_examples``).
    """

    rows: Any
    dtypes: dict[str, str]
    attrs: dict[str, Any]


def typed_side_rows(part: pd.DataFrame, table: SparkSideTable | Mapping[str, Any]) -> pd.DataFrame:
    """Rows of :attr:`SparkSideTable.rows` (as a ``mapInPandas`` function gets them) as the local reader's table:
    canonical dtypes again, indexed by ``_row`` (sorted), ``attrs`` of the whole table.

    ``table``: the :class:`SparkSideTable`, or its ``{"dtypes": …, "attrs": …}`` (what travels to the executors).
    """
    dtypes = table.dtypes if isinstance(table, SparkSideTable) else table["dtypes"]
    attrs = table.attrs if isinstance(table, SparkSideTable) else table["attrs"]
    frame = part.sort_values("_row", kind="stable")
    out = pd.DataFrame({c: _canonical_values(frame[c], t) for c, t in dtypes.items()})
    out.index = pd.Index(frame["_row"].to_numpy("int64"))
    out.attrs.update(json.loads(json.dumps(attrs)))
    return out


def _canonical_values(values: pd.Series, dtype: str) -> pd.Series:
    """A column back from Arrow (object, float for whole numbers with gaps, …) in its canonical dtype."""
    if dtype == "string":
        return pd.Series(values.to_numpy(dtype=object), dtype="string")
    if dtype.startswith("datetime64"):
        return pd.Series(pd.to_datetime(values).to_numpy(dtype="datetime64[ns]"))
    return pd.Series(values.to_numpy(dtype=object), dtype=object).astype(dtype) if dtype != "float64" \
        else pd.Series(values.to_numpy(dtype="float64"))


_ATTRS = ("source", "columns", "absent_columns", "blank_rows", "blank_row_examples")


def arrow_frame(frame: pd.DataFrame, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """The columns ``dtypes`` of a typed table (canonical dtypes) as a pandas function run by Spark returns
    them (:data:`_SPARK_TYPES`: missing text, flags and whole numbers as None)."""
    return pd.DataFrame({c: _arrow_values(frame[c], t) for c, t in dtypes.items()})


def spark_schema(dtypes: Mapping[str, str]) -> str:
    """The Spark schema (DDL) of canonical dtypes, e.g. ``{"customer_id": "string"}`` → ``"`customer_id` string"``."""
    return ", ".join(f"`{c}` {_SPARK_TYPES[t]}" for c, t in dtypes.items())


def _arrow_values(values: pd.Series, dtype: str) -> Any:
    """A typed column as Spark takes it back from a pandas function: missing values None (text, flags, whole
    numbers), times and floats as numpy arrays."""
    if dtype in ("string", "boolean", "Int64"):
        return pd.Series(values.to_numpy(dtype=object), dtype=object).where(values.notna().to_numpy(), None).to_numpy()
    return values.to_numpy()


def _meta_row(meta: Mapping[str, Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """A part's one line for the driver (:func:`spark_side_table`): its facts as JSON, every other column empty."""
    row = {c: pd.Series([None], dtype=object) for c in dtypes}
    return pd.DataFrame({**row, "_row": pd.Series([None], dtype=object), _META: [json.dumps(meta)]})


def _date_profile(canonical: pd.DataFrame, spec: Any) -> dict[str, list[bool]]:
    """Per text date column of ``canonical`` (a part's cells): whether it holds numeric day/month dates
    (:data:`segkit.core.schema.DMY`), other dates, day-first (> 12) and month-first (second > 12) ones. The
    local reader decides some things over a whole column (mixed formats, the day/month order): parts whose
    profiles together could meet such a decision are checked again as one (:func:`spark_side_table`)."""
    found: dict[str, list[bool]] = {}
    for column, dtype in spec.known.items():
        if not dtype.startswith("datetime") or column not in canonical.columns:
            continue
        values = canonical[column]
        if not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
            continue
        text = values.astype("string").str.strip()
        present = (text.notna() & text.ne("")).fillna(False).astype(bool)
        parts = text[present].str.extract(DMY_PATTERN)
        numeric = parts["first"].notna()
        first = pd.to_numeric(parts["first"], errors="coerce")
        second = pd.to_numeric(parts["second"], errors="coerce")
        found[column] = [bool(numeric.any()), bool((~numeric).any()), bool((first > 12).any()),
                         bool((second > 12).any())]
    return found


def _profiles_meet(profiles: Sequence[Mapping[str, Sequence[bool]]]) -> bool:
    """Whether parts' date profiles (:func:`_date_profile`) could meet a whole-column decision that no part
    met alone: numeric dates in one part and other dates in another, day-first and month-first ones."""
    columns = {c for p in profiles for c in p}
    for column in columns:
        seen = [any(p[column][i] for p in profiles if column in p) for i in range(4)]
        if (seen[0] and seen[1]) or (seen[2] and seen[3]):
            return True
    return False


def spark_side_table(source: str | Path, table: str, config: Mapping[str, Any], *, label: str | None = None,
                     session: Any = None, partitions: int | None = None) -> SparkSideTable:
    """A customers or campaign table read, typed and checked on the executors: :func:`load_spark_table`'s table
    and errors without collecting its rows (``engine.kind: spark``; local files too).

    The rows are read and numbered in file order as :func:`load_spark_table` numbers them, partitioned by the
    table's key (:data:`segkit.core.schema.CUSTOMERS`' ``customer_id``, the campaign's ``campaign_id`` and
    ``customer_id``, as :func:`segkit.core.schema.coerce_id` makes them: a repeated key is in one part), and each
    part is typed and checked by the local reader's own functions (:func:`segkit.data.io.canonical_cells`,
    :func:`segkit.data.io.typed_table`). What reaches the driver: one line per part (its error, blank rows and a
    few facts of its date columns). When a part fails, or parts could together meet a decision the local reader
    takes over a whole column (:func:`_date_profile`), the whole table is checked again as one part, in one task
    on an executor, so that the error is the local reader's for the whole file (rows numbered in it).

    Raises
    ------
    DataError, ConfigError
        As :func:`load_spark_table`.
    """
    side = _side_cells(source, table, config, label=label, session=session)
    cells_of = side._replace(numbered=None)  # what the executors take along (not the Spark frame)
    spec = get_spec(table)
    dtypes = dict(spec.dtypes)
    keys = [c for c in (spec.unique[0] if spec.unique else ("customer_id",))]
    mapping_positions = segio.resolve_columns(side.names, spec, side.mapping, side.label, side.config_hint)
    key_columns = [f"c{mapping_positions[k]}" for k in keys]
    schema = ", ".join([f"`{c}` {_SPARK_TYPES[t]}" for c, t in dtypes.items()] + ["_row bigint", f"{_META} string"])

    def keyed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            text = [coerce_id(batch[c].astype("string")).fillna("") for c in key_columns]
            key = text[0] if len(text) == 1 else text[0] + "\x1f" + text[1]
            yield frame_for_arrow(batch.assign(**{_KEY: key.to_numpy(dtype=object)}))

    def typed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cells = partition_rows(batches)
        if cells is None:
            return
        cells = cells.drop(columns=[_KEY], errors="ignore")
        meta: dict[str, Any] = {"error": None, "profile": {}}
        try:
            canonical = cells_of.canonical(cells)
            meta["profile"] = _date_profile(canonical, spec)
            out = segio.typed_table(canonical, table, cells_of.opts)
        except DataError as exc:
            meta["error"] = str(exc)
            yield _meta_row(meta, dtypes)
            return
        meta["attrs"] = {k: out.attrs[k] for k in _ATTRS}
        rows = pd.DataFrame({c: _arrow_values(out[c], t) for c, t in dtypes.items()})
        rows["_row"] = out.index.to_numpy(dtype="int64")
        rows[_META] = pd.Series([None] * len(rows), dtype=object)
        yield rows
        yield _meta_row(meta, dtypes)

    def whole(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cells = partition_rows(batches)
        if cells is None:
            return
        try:
            out = cells_of.typed(cells.drop(columns=[_KEY], errors="ignore"))
        except DataError as exc:
            yield pd.DataFrame({"error": [str(exc)], "attrs": [None]})
            return
        yield pd.DataFrame({"error": [None], "attrs": [json.dumps({k: out.attrs[k] for k in _ATTRS})]})

    count = partitions or int(side.numbered.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    with _side_read_errors(side), pandas_warnings_quiet():
        with_key = spark_types.StructType([*side.numbered.schema.fields,
                                           spark_types.StructField(_KEY, spark_types.StringType(), True)])
        cells = side.numbered.mapInPandas(keyed, with_key).repartition(count, _KEY)
        held = cells.mapInPandas(typed, schema).localCheckpoint(eager=True)
        metas = [json.loads(r[_META]) for r in held.where(F.col(_META).isNotNull()).select(_META).collect()]
        if not metas:  # no row at all: the local reader's refusal of a table without rows
            empty = pd.DataFrame({**{f"c{i}": pd.Series(dtype=object) for i in range(len(side.names))},
                                  "_row": pd.Series(dtype="int64")})
            side.typed(empty)
        parts = [m for m in metas if m["error"] is None]
        attrs = None
        if len(parts) < len(metas) or _profiles_meet([m["profile"] for m in metas]):
            found = cells.repartition(1).mapInPandas(whole, "error string, attrs string").collect()
            if found and found[0]["error"] is not None:
                raise DataError(found[0]["error"])
            attrs = json.loads(found[0]["attrs"])
    if attrs is None:
        attrs = dict(parts[0]["attrs"])
        attrs["blank_rows"] = sum(int(p["attrs"]["blank_rows"]) for p in parts)
        attrs["blank_row_examples"] = sorted(r for p in parts for r in p["attrs"]["blank_row_examples"])[:5]
    rows = held.where(F.col(_META).isNull()).drop(_META)
    return SparkSideTable(rows, dtypes, attrs)


def _refuse_replaced_bytes(cells: pd.DataFrame, source: str) -> None:
    """Raise the local reader's "not valid UTF-8 text" refusal when a text cell of ``cells`` (read by Spark as
    UTF-8, which replaces every invalid byte with U+FFFD instead of failing) holds U+FFFD, naming the column,
    the rows (``cells``' index: 0-based data rows), a value and what to do. A file that holds U+FFFD as a
    character is refused too (the local reader accepts it): such a replacement character marks a past decoding
    loss."""
    for position, column in enumerate(cells.columns):  # (names may repeat)
        values = cells.iloc[:, position].astype(str)
        bad = values[values.str.contains("\ufffd", regex=False)]
        if len(bad):
            raise _not_utf8(source, column, [int(r) for r in bad.index], bad.iloc[0])


def _not_utf8(source: str, column: str, rows: Sequence[int], example: str, total: int | None = None) -> DataError:
    """The refusal of text Spark decoded with replacement characters: which source, column, rows (0-based data
    rows, the first of ``total``), an example and what to do."""
    return DataError(
        f"{source}: is not valid UTF-8 text: column {column!r} holds bytes that are not UTF-8 "
        f"({format_rows(rows, total=total)}, e.g. {example!r}; Spark shows each as \ufffd). Set io.encoding in the "
        "config to the file's encoding, e.g. 'latin-1' or 'cp1252' for Western European exports.")


def refuse_replaced_bytes_in_lines(raw: Any, columns: Mapping[str, str], source: str) -> None:
    """:func:`_refuse_replaced_bytes` for order lines that stay on Spark: ``raw`` (CSV cells as text, numbered
    ``_row``) is searched on the executors for U+FFFD in ``columns`` (column of ``raw`` → the file's name of it,
    for the message); only when some cell holds one, the first five offending rows of the first such column and
    their count reach the driver.

    Raises
    ------
    DataError
        Naming ``source``, the column, the rows and what to do, as for a customers or campaign file.
    """
    for column, shown in columns.items():
        quoted = "`" + column.replace("`", "``") + "`"
        bad = raw.where(f"instr({quoted}, '\ufffd') > 0")
        first = bad.orderBy("_row").select("_row", F.col(quoted).alias("value")).limit(5).collect()
        if first:
            raise _not_utf8(source, shown, [int(r["_row"]) for r in first], first[0]["value"], bad.count())


def _header_mismatch(exc: BaseException) -> str | None:
    """The file named by Spark's refusal of a CSV part whose header differs from the first part's (read with
    ``enforceSchema=False``: :func:`read_spark_source`), "" when Spark names none; None for any other error."""
    messages = _error_messages(exc)
    if not any("CSV header does not conform to the schema" in m for m in messages):
        return None
    named = [m.group(1) for m in (re.search(r"while reading file (\S+?)\.?\s", m) for m in messages) if m]
    return named[0] if named else ""


def _read_refusal(exc: BaseException, source: str | Path | Sequence[str | Path], where: str, what: str) -> DataError:
    """The DataError for Spark's refusal ``exc`` to read ``source``, naming ``where`` (the setting and value as
    written) and ``what`` (the table): CSV parts whose headers differ, else what Spark said and what to check."""
    part = _header_mismatch(exc)
    if part is not None:
        which = f" ({part}'s header is not the first part's)" if part else ""
        return DataError(f"{where}: the headers of its CSV parts differ{which}: their columns would be read in the "
                         f"first part's order. Export every part of {what} with the same columns, in the same order.")
    text = str(source) if isinstance(source, (str, Path)) else None
    paths = _source_paths(source)
    read_as_parquet = not (text or "").startswith(TABLE_PREFIX) and any(_is_uri(p) for p in paths) \
        and _uri_format(paths) == "parquet"
    return DataError(f"{where}: Spark cannot read it ({spark_read_problem(exc, text)}). Check the path (or table name) "
                     f"and that the files are complete CSV or Parquet files with {what}, or give a local file."
                     + (f" {URI_PARQUET_HINT}" if read_as_parquet else ""))


#: Spark settings of the audit's own session (:meth:`SparkTransactionLog.open_stage`), besides
#: :data:`~segkit.data.spark.SESSION_CONF`. The staging SQL types every mapped column in one wide projection (a
#: text date with UTC offsets: regular expressions and a CASE per kind of date), and each checkpoint of it had
#: Spark infer the constraints of that plan: for the 16 columns of Shopify's export (two text dates) over nine
#: minutes for 309 lines on a busy 2-core machine, 3.5 s without. An optimisation only: results do not depend on it.
_STAGE_CONF: dict[str, str] = {"spark.sql.constraintPropagation.enabled": "false"}


class SparkTransactionLog(TransactionLog):
    """:class:`~segkit.data.engine.TransactionLog` on Spark: the same audit facts, findings and errors,
    computed by Spark from the same SQL (see the module docstring).

    Parameters
    ----------
    source : str, Path or list of them
        CSV (optionally .gz) or Parquet: a file, a folder, a glob, or ``s3a://``/``hdfs://``/``abfss://``
        paths Spark reads (any URI given as text, ``file:`` too, is passed to Spark as written: see the module
        docstring); or ``table:catalog.schema.orders`` (a file-based table of the session's catalog).
    config : mapping, optional
        Merged configuration, as for :class:`~segkit.data.engine.TransactionLog`.
    session : SparkSession, optional
        Default :func:`~segkit.data.spark.spark_session` on the config's ``engine.spark`` master and conf; the
        log works in a child session of it (:func:`~segkit.data.spark.child_session`), its relations in views of
        its own (:class:`SparkConnection`).

    Examples
    --------
    Not run as a doctest (it starts Spark); with the sample, as 01_data_audit does on ``engine.kind: spark``:

    >>> from segkit.audit import audit_log  # doctest: +SKIP
    >>> with SparkTransactionLog("data/sample/transactions.csv") as log:  # doctest: +SKIP
    ...     result = audit_log(log)
    ...     log.write_clean("reports/run/artifacts/transactions_clean.parquet")
    """

    ENGINE_ERRORS = (PySparkException,)

    def __init__(self, source: str | Path | Sequence[str | Path], config: Mapping[str, Any] | None = None, *,
                 session: Any = None):
        if isinstance(source, pd.DataFrame):
            raise DataError("SparkTransactionLog reads files or a table (table:catalog.schema.name); audit a frame "
                            "with segkit.data.engine.TransactionLog.")
        self._base_session = session
        super().__init__(source, config)

    def open_stage(self, folder: Path, memory_limit: str | None, threads: int | None) -> SparkConnection:
        """A :class:`SparkConnection` on a child session of ``session``, else of the process's Spark session
        on ``engine.spark.master`` with ``engine.spark.conf`` (started by the first call)."""
        base = self._base_session or spark_session(self.engine.spark.master, self.engine.spark.conf)
        session = child_session(base)
        for key, value in _STAGE_CONF.items():
            session.conf.set(key, value)
        return SparkConnection(session)

    def map_source(self, source: Any, folder: Path) -> MappedInput:
        """Read ``source`` with Spark as the raw relation ``_segkit_raw`` (every CSV cell as text, Parquet
        and table columns typed), numbered ``_row`` in file order, and map its columns."""
        session = self.con.session
        config = self.config
        config_hint = segio.config_file_hint(config)
        mapping = segio.check_column_map("transactions", (config.get("columns") or {}).get("transactions"),
                                         config_hint)
        text = str(source) if isinstance(source, (str, Path)) else None
        try:
            # files: the local files in DuckDB's order (None: numbered by name)
            raw, label, files, kind, _ = read_spark_source(session, source, self.opts)
            header = list(raw.columns)
            positions = segio.resolve_columns(header, TRANSACTIONS, mapping, label, config_hint)
            labels = {c: header[p] for c, p in positions.items()}
            types = {c: _duckdb_type(raw.schema[header[p]].dataType) for c, p in positions.items()}
            mapped = mapped_input("_segkit_raw", label, labels, {c: c for c in labels}, types)
            # the columns used, under their canonical names: a user column named _row stays apart from the numbering
            used = [F.col("`" + u.replace("`", "``") + "`").alias(c) for c, u in labels.items()]
            numbered = number_file_lines(raw.select(*used), files=files)
            # Spark decodes invalid bytes as U+FFFD where DuckDB refuses the file
            if kind == "csv" and spark_csv_encoding(self.opts.get("encoding")) == "UTF-8":
                refuse_replaced_bytes_in_lines(numbered, labels, label)
            self.con.views.create("_segkit_raw", numbered)
        except SPARK_ERRORS as exc:
            raise _read_refusal(exc, source, text or str(source), "the transaction log") from None
        return mapped

    def write_clean(self, dest: str | Path, as_of: str | pd.Timestamp | None = None) -> Path:
        """Write ``transactions_clean.parquet`` as a Parquet dataset: a folder of ``part-*.parquet`` files
        holding the columns and values of :meth:`TransactionLog.write_clean <segkit.data.engine.TransactionLog.write_clean>`
        in input row order (parts in name order: ``part-00000.parquet`` …), written to a sibling folder and
        published in place by :func:`segkit.core.files.publish_parquet_parts`.

        Timestamps are stored in microseconds (Spark writes no nanoseconds); readers see the same values."""
        if self._prepared is None or as_of is not None:
            self.prepare(as_of)
        clean = self.con.sql(f"SELECT {', '.join(self.clean_select('TIMESTAMP'))}, _row FROM clean").frame
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            clean.orderBy("_row").drop("_row").write.mode("overwrite").parquet(str(tmp))
            publish_parquet_parts(tmp, dest)  # part-00000.parquet …, no _SUCCESS or .crc files
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return dest
