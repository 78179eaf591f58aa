"""Apache Spark runner of the relational core (issue 17): the same ``Query`` texts, transpiled.

Every order-line computation of segkit is one DuckDB-dialect ``Query`` in
:mod:`segkit.data.relational`. This module runs those same texts on Spark: :class:`SparkLines`
registers the canonical ``lines`` relation in a Spark session, typed by the core's own
:func:`~segkit.data.relational.lines_view_sql` (transpiled, so DuckDB and Spark read one typing),
and :meth:`SparkLines.run` transpiles ``query.text()`` with ``sqlglot`` (``read="duckdb",
write="spark"``) and binds its ``$as_of``-style parameters as Spark named parameters. Nothing
here defines an order, a purchase or a sum: a second copy of a computation is a bug.

What is Spark-specific is only how lines are read: a pandas frame is checked and reduced by
:func:`~segkit.data.relational.line_feed` (as DuckDB's :func:`~segkit.data.relational.frame_lines`
does) and handed to Spark with an explicit schema; Parquet files (a file, a folder or a glob, such as
a run's ``artifacts/transactions_clean.parquet``) are read by Spark, with nanosecond timestamps (what
the audit writes) read as integers and turned into timestamps (Spark reads no ``TIMESTAMP(NANOS)``),
and line positions, when needed, numbered in file order from Spark's ``_metadata`` columns.

The session (:func:`spark_session`) is started once per process (local mode by default: ``local[2]``,
UTC, quiet logs, few shuffle partitions, ``TIMESTAMP`` = ``TIMESTAMP_NTZ`` as in DuckDB) and reused;
each :class:`SparkLines` works in its own child session (its own temporary views, shared executors).
It needs the ``spark`` extra (``pip install 'segkit[spark]'``: ``pyspark``, ``sqlglot``) and a Java
17+ runtime (Debian: ``apt-get install openjdk-17-jre-headless``); without either, a
:class:`~segkit.core.errors.ConfigError` says what to install.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
from collections import Counter
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError, DataError
from segkit.data.relational import LINE_INPUTS, Query, line_feed, lines_view_sql, require_columns

try:  # the `spark` extra; segkit without it never imports pyspark
    import sqlglot
    from sqlglot import exp
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession
    from pyspark.sql import types as spark_types
    SPARK_IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    SPARK_IMPORT_ERROR = exc
    PySparkException = Exception  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["DEFAULT_MASTER", "SESSION_CONF", "LOCAL_CONF", "JAVA_INSTALL_HINT", "java_problem", "spark_session",
           "spark_sql", "SparkLines", "pandas_warnings_quiet"]

DEFAULT_MASTER = "local[2]"
#: Spark SQL settings the core's texts rely on (set on every session this module starts).
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",                 # as DuckDB's connections (SET TimeZone = 'UTC')
    "spark.sql.timestampType": "TIMESTAMP_NTZ",          # TIMESTAMP and datetime literals naive, as DuckDB's
    "spark.sql.legacy.parquet.nanosAsLong": "true",      # TIMESTAMP(NANOS) columns readable (as integers)
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
#: Added for a ``local[...]`` master: the core's statements are chains of small stages, which adaptive
#: execution re-plans one by one (the sample's headline took 52 s with it, 24 s without, on a busy 2-core machine).
LOCAL_CONF: dict[str, str] = {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "2"}
JAVA_INSTALL_HINT = ("Spark needs a Java 17 or later runtime: on Debian/Ubuntu run "
                     "`apt-get install -y openjdk-17-jre-headless` (make test does it: tests/spark_setup.py), "
                     "or set JAVA_HOME to a Java 17+ installation.")
_LOG4J2 = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""
_SESSION: list["SparkSession"] = []  # the session this process started (at most one)


def java_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why Spark cannot start its Java gateway here (no ``java``, or older than 17), or None.

    ``env`` is the environment to look in (default ``os.environ``): ``JAVA_HOME/bin/java`` when
    ``JAVA_HOME`` is set, else ``java`` on ``PATH``.

    Examples
    --------
    >>> java_problem({"PATH": "/nonexistent"}).startswith("no Java runtime found")
    True
    """
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME")
    if home:
        java = str(Path(home) / "bin" / "java")
        if not os.access(java, os.X_OK):
            return f"JAVA_HOME is {home!r} but {java} is not an executable. {JAVA_INSTALL_HINT}"
    else:
        java = shutil.which("java", path=env.get("PATH", ""))
        if java is None:
            return f"no Java runtime found (no `java` on PATH, JAVA_HOME not set). {JAVA_INSTALL_HINT}"
    done = subprocess.run([java, "-version"], capture_output=True, text=True)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if found is None:
        return f"`{java} -version` did not say which Java it is ({(done.stderr or done.stdout).strip()[:200]!r}). " \
               f"{JAVA_INSTALL_HINT}"
    major = int(found.group(2)) if found.group(1) == "1" else int(found.group(1))  # "1.8" is Java 8
    if major < 17:
        return f"{java} is Java {major}. {JAVA_INSTALL_HINT}"
    return None


@contextlib.contextmanager
def pandas_warnings_quiet() -> Iterator[None]:
    """Silence what pyspark says about pandas 3 while converting frames ("does not yet fully support
    pandas >= 3.0.0", pandas' deprecated ``copy`` keyword): the conversions segkit makes are checked
    value for value against DuckDB by ``tests/test_spark.py``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated")
        yield


def _require_spark() -> None:
    if SPARK_IMPORT_ERROR is not None:
        raise ConfigError(f"Running on Spark needs the `spark` extra ({SPARK_IMPORT_ERROR}): "
                          "pip install 'segkit[spark]' (pyspark and sqlglot).")


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None) -> "SparkSession":
    """The Spark session of this process: started on the first call, the same one afterwards.

    Parameters
    ----------
    master : str
        Spark master URL of the first call (``local[2]``: two local cores).
    conf : mapping, optional
        More Spark settings for the first call, over :data:`SESSION_CONF`.

    Raises
    ------
    ConfigError
        pyspark is not installed, Java 17+ is missing, or a later call asks for another master.
    """
    _require_spark()
    if _SESSION:
        session = _SESSION[0]
        running = session.sparkContext.master
        if master != running:
            raise ConfigError(f"A Spark session on {running!r} is already running in this process; it cannot "
                              f"also run on {master!r}. Use one master per process.")
        return session
    problem = java_problem()
    if problem:
        raise ConfigError(f"Cannot start Spark: {problem}")
    if master.startswith("local"):  # a local driver talks to itself: no guessing of the host's address
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log_config = Path(tempfile.mkdtemp(prefix="segkit-spark-")) / "log4j2.properties"
    log_config.write_text(_LOG4J2)
    builder = SparkSession.builder.master(master).appName("segkit")
    # a local session's warehouse beside its log settings, not a spark-warehouse/ in the working folder
    local = {**LOCAL_CONF, "spark.sql.warehouse.dir": str(log_config.parent / "warehouse")} \
        if master.startswith("local") else {}
    for key, value in {**SESSION_CONF, **local,
                       "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log_config}",
                       **(conf or {})}.items():
        builder = builder.config(key, value)
    with pandas_warnings_quiet():
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _SESSION.append(session)
    return session


@functools.lru_cache(maxsize=256)
def spark_sql(text: str) -> str:
    """``text`` (DuckDB dialect: a :meth:`Query.text`) as Spark SQL; ``$name`` markers become ``:name``.

    Examples
    --------
    >>> spark_sql("SELECT customer_id, date_diff('day', CAST(d AS DATE), CAST($as_of AS DATE)) AS r FROM lines")
    'SELECT customer_id, DATEDIFF(DAY, CAST(d AS DATE), CAST(:as_of AS DATE)) AS r FROM lines'
    """
    _require_spark()
    return sqlglot.transpile(text, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)[0]


def _spark_value(value: Any) -> Any:
    """A parameter as a Python value Spark binds with the core's type (naive timestamps, plain numbers)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64, dt.datetime)):
        stamp = pd.Timestamp(value)
        return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _schema_of(frame: pd.DataFrame) -> "spark_types.StructType":
    """The Spark schema of a :func:`~segkit.data.relational.line_feed` frame (naive dates as TIMESTAMP_NTZ)."""
    fields = []
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_datetime64_any_dtype(dtype):
            kind: spark_types.DataType = spark_types.TimestampNTZType()
        elif pd.api.types.is_bool_dtype(dtype):
            kind = spark_types.BooleanType()
        elif pd.api.types.is_integer_dtype(dtype):
            kind = spark_types.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            kind = spark_types.DoubleType()
        else:
            kind = spark_types.StringType()
        fields.append(spark_types.StructField(str(name), kind, nullable=True))
    return spark_types.StructType(fields)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SparkLines:
    """Order lines registered as the ``lines`` relation of a Spark session; runs core queries on them.

    Parameters
    ----------
    source : DataFrame, path, glob or list of paths
        Canonical order lines: a pandas frame (checked as :func:`~segkit.data.relational.frame_lines`
        checks it) or Parquet files (``transactions_clean.parquet``, a folder or a glob of them).
    positions : bool
        Number file lines in file order (``_pos``: listings in input order, an order's first line);
        always on for frames, and for files whose order ids are incomplete (each line its own order).
    session : SparkSession, optional
        Default :func:`spark_session`; the lines live in a child session of it (own views).
    what : str
        How messages name a frame (files are named by their path).

    Examples
    --------
    Not run as a doctest (it would start a second JVM beside tests/test_spark.py's session):

    >>> from segkit.data.relational import HEADLINE
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "C1", "2"], "amount": [5.0, -5.0, 7.0],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-03-01"])})
    >>> lines = SparkLines(tx)  # doctest: +SKIP
    >>> lines.run(HEADLINE, provided=lines.hold_shared(HEADLINE)).loc[0, ["net_revenue", "buyers"]].to_dict()  # doctest: +SKIP
    {'net_revenue': 7.0, 'buyers': 1}
    """

    def __init__(self, source: pd.DataFrame | str | Path | Sequence[str | Path], *, positions: bool = False,
                 session: "SparkSession | None" = None, what: str = "transactions"):
        self.source = source
        self.session = (session or spark_session()).newSession()
        self.name = what if isinstance(source, pd.DataFrame) else str(source)
        try:
            if isinstance(source, pd.DataFrame):
                self._register_frame(source, what)
            else:
                self._register_files(source, positions)
        except PySparkException as exc:
            raise DataError(f"{self.name}: Spark could not read the order lines ({_first_line(exc)}). "
                            "Give Parquet files with the canonical columns (artifacts/transactions_clean.parquet)."
                            ) from None

    def _register_frame(self, frame: pd.DataFrame, what: str) -> None:
        feed = line_feed(frame, what)
        data = feed.frame
        if data.empty:  # Arrow needs rows to convert; an empty frame gets the schema alone
            spark_frame = self.session.createDataFrame([], _schema_of(data))
        else:
            with pandas_warnings_quiet():
                spark_frame = self.session.createDataFrame(data, _schema_of(data))
        self._create_lines(spark_frame, feed.columns, feed.all_order_ids, positions=True)

    def _register_files(self, source: str | Path | Sequence[str | Path], positions: bool) -> None:
        paths = [str(p) for p in source] if isinstance(source, (list, tuple)) else [str(source)]
        read = self.session.read.parquet(*paths)
        present = [c for c in read.columns if c in LINE_INPUTS]
        require_columns(pd.DataFrame(columns=read.columns), ["customer_id", "order_date", "amount"], self.name,
                        "Give the cleaned transactions (artifacts/transactions_clean.parquet), which 01_data_audit "
                        "writes with the canonical columns.")
        if isinstance(read.schema["order_date"].dataType, spark_types.LongType):  # TIMESTAMP(NANOS) as integers
            read = read.selectExpr(*["timestamp_micros(order_date DIV 1000) AS order_date" if c == "order_date"
                                     else f"`{c}`" for c in read.columns])
        all_ids = "order_id" in present and bool(
            read.selectExpr("count(*) = count(order_id) AS complete").first()["complete"])
        if positions or not all_ids:  # file order: DuckDB's (files by name, rows as stored)
            read = read.selectExpr("*", "row_number() OVER (ORDER BY _metadata.file_path, _metadata.row_index) AS _pos")
            positions = True
        self._create_lines(read, tuple(present), all_ids, positions)

    def _create_lines(self, frame: "SparkFrame", columns: Sequence[str], all_order_ids: bool, positions: bool) -> None:
        frame.createOrReplaceTempView("line_feed")
        view = lines_view_sql("line_feed", columns, all_order_ids=all_order_ids,
                              positions="_pos" if positions else None)
        self.session.sql(f"CREATE OR REPLACE TEMP VIEW lines AS {spark_sql(view)}")

    def frame(self, query: Query, params: Mapping[str, Any] | None = None,
              provided: Sequence[str] = ()) -> "SparkFrame":
        """``query`` as a Spark DataFrame (lazy): :meth:`Query.text` without the ``provided`` relations
        (:meth:`materialise`), transpiled, its ``$name`` parameters bound from ``params``."""
        sql = spark_sql(query.text(provided))
        bound = {k: _spark_value(v) for k, v in (params or {}).items() if f":{k}" in sql}
        missing = sorted(set(re.findall(r":([A-Za-z_]\w*)", sql)) - set(bound))
        if missing:
            raise ValueError(f"query {query.name!r} needs the parameter(s) {', '.join(missing)}")
        try:
            return self.session.sql(sql, args=bound)
        except PySparkException as exc:
            raise self._error(query, exc) from None

    def run(self, query: Query, params: Mapping[str, Any] | None = None,
            provided: Sequence[str] = ()) -> pd.DataFrame:
        """``query`` on these lines (:meth:`frame`), collected as a pandas frame in the query's order
        (money columns DOUBLE, as the core casts them; timestamps naive)."""
        result = self.frame(query, params, provided)
        try:
            with pandas_warnings_quiet():
                return result.toPandas()
        except PySparkException as exc:
            raise self._error(query, exc) from None

    def materialise(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> int:
        """Compute ``query`` once and hold it (checkpointed on the executors) as the relation named
        ``query.name``, which later queries read when it is listed in their ``provided``; its row count.

        Spark inlines a relation that a statement reads twice, so a long chain (the cancellation
        matching) is best materialised once, as DuckDB's runners materialise the orders.
        """
        try:
            held = self.frame(query, params, provided).localCheckpoint(eager=True)
            held.createOrReplaceTempView(query.name)
            return held.count()
        except PySparkException as exc:
            raise self._error(query, exc) from None

    def hold_shared(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> tuple[str, ...]:
        """:meth:`materialise` every relation of ``query``'s chain that is read more than once (by two
        queries, or twice by one: a self-join), in dependency order; the names now held, ``provided``
        included, to pass as ``provided`` to :meth:`run` of ``query`` with the same ``params``."""
        chain = query.chain(provided)
        reads = Counter(table.name for q in chain for table in sqlglot.parse_one(q.sql, read="duckdb").find_all(exp.Table))
        held = list(provided)
        for relation in chain[:-1]:
            if reads[relation.name] > 1:
                self.materialise(relation, params, held)
                held.append(relation.name)
        return tuple(held)

    def _error(self, query: Query, exc: BaseException) -> DataError:
        return DataError(f"{self.name}: Spark could not run the relational core's query {query.name!r} "
                         f"({_first_line(exc)}).")
