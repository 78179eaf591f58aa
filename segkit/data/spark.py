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
and line positions, when needed, taken in file order from Spark's ``_metadata`` columns.

The session (:func:`spark_session`) is started once per process (local mode by default: ``local[2]``,
UTC, quiet logs, few shuffle partitions, ``TIMESTAMP`` = ``TIMESTAMP_NTZ`` as in DuckDB) and reused;
each :class:`SparkLines` works in its own child session (shared executors) with the SQL settings of
:data:`SESSION_CONF` (:func:`child_session`), also in a context segkit did not start. A ``sc://host:port``
master is a Spark Connect server: the session is its client, one per process (no child sessions), and every
temporary view segkit makes has a name of its own, never replaced (:class:`ViewNames`), since a Connect frame
reads views by name when an action runs.
It needs the ``spark`` extra (``pip install 'segkit[spark]'``: ``pyspark``, ``sqlglot``) and a Java
17+ runtime (Debian: ``apt-get install openjdk-17-jre-headless``); without either, a
:class:`~segkit.core.errors.ConfigError` says what to install.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import itertools
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import unquote

import numpy as np
import pandas as pd

from segkit.core.config import file_uri_path, redacted_master, source_scheme, spark_connect_refusal
from segkit.core.errors import ConfigError, DataError, first_line, format_rows
from segkit.data.relational import (LINE_INPUTS, OrderLineTables, Query, QueryExecutor, line_feed, lines_view_sql,
                                    require_columns)

try:  # the `spark` extra; segkit without it never imports pyspark
    import sqlglot
    from sqlglot import exp
    from pyspark.errors import AnalysisException, PySparkException
    from pyspark.sql import SparkSession, functions
    from pyspark.sql import types as spark_types
    from pyspark.sql.window import Window
    SPARK_IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    SPARK_IMPORT_ERROR = exc
    PySparkException = AnalysisException = Exception  # type: ignore[misc,assignment]
try:  # a classic (JVM) session's errors; the Connect-only client (pyspark-client) has no py4j
    from py4j.protocol import Py4JJavaError
    #: What Spark raises when it refuses a statement or a read: pyspark's errors (those of a Spark Connect
    #: session among them), and on a classic session the JVM's own (``Py4JJavaError``) where pyspark does not wrap it.
    SPARK_ERRORS: tuple[type[BaseException], ...] = (PySparkException, Py4JJavaError)
except ImportError:  # pragma: no cover - exercised only with pyspark-client
    Py4JJavaError = PySparkException  # type: ignore[misc,assignment]  # no JVM in this process: never raised
    SPARK_ERRORS = (PySparkException,)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkFrame

__all__ = ["DEFAULT_MASTER", "SESSION_CONF", "LOCAL_CONF", "JAVA_INSTALL_HINT", "SPARK_ERRORS", "java_problem",
           "is_connect_master", "is_connect", "spark_session", "connect_address_problem", "connect_server_version",
           "python_workers_problem", "child_session", "ViewNames",
           "with_view_names", "reads_files", "ParquetColumnFacts", "parquet_column_facts", "nanosecond_columns",
           "timestamps_from_nanoseconds", "number_file_lines", "spark_sql", "SparkLines", "SparkOrderLines",
           "pandas_warnings_quiet", "frame_for_arrow"]

DEFAULT_MASTER = "local[2]"
#: Spark settings the core's texts rely on: set on the session this module starts, and the ``spark.sql.*``
#: ones again on every child session segkit works in (:func:`child_session`), whatever the context was
#: started with (a pyspark shell's or a cluster's spark-defaults.conf). Besides segkit's own choices (UTC,
#: naive timestamps, nanosecond Parquet as integers, Arrow), they are Spark 4's defaults, which the
#: transpiled SQL was checked under (tests/test_spark.py): a context started otherwise would change its meaning.
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",                 # as DuckDB's connections (SET TimeZone = 'UTC')
    "spark.sql.timestampType": "TIMESTAMP_NTZ",          # TIMESTAMP and datetime literals naive, as DuckDB's
    "spark.sql.legacy.parquet.nanosAsLong": "true",      # TIMESTAMP(NANOS) columns readable (as integers)
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parser.escapedStringLiterals": "false",   # '\\d' in a transpiled regex is \d, as in DuckDB
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",    # strict date parsing: 2024-13-45 is no date
    "spark.sql.ansi.enabled": "true",                    # an overflow or a bad cast is an error, as in DuckDB
    "spark.sql.ansi.doubleQuotedIdentifiers": "false",   # "x" stays a string literal
    "spark.sql.parser.quotedRegexColumnNames": "false",  # `x` names a column, never a regex of columns
    "spark.sql.caseSensitive": "false",                  # column names as DuckDB matches them
    "spark.sql.decimalOperations.allowPrecisionLoss": "true",  # DECIMAL(38, 6) sums keep 6 digits, no NULL
    "spark.sql.legacy.exponentLiteralAsDecimal.enabled": "false",  # 1E2 is a DOUBLE, as in DuckDB
    "spark.sql.legacy.statisticalAggregate": "false",    # stddev of one value is NULL, as in DuckDB
    "spark.sql.legacy.setopsPrecedence.enabled": "false",  # INTERSECT before UNION, as in DuckDB
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
_MASTER: list[str] = []  # the master (or sc:// address) it was started on
_T = TypeVar("_T")


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


def frame_for_arrow(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as a pandas function run by Spark (``mapInPandas``, ``applyInPandas``) may return it: each
    Arrow-backed column (pandas 3's strings, ``string[pyarrow]``, ``*[pyarrow]``) held in more than one Arrow chunk
    (what ``pd.concat`` of such frames makes) or in none (a filter that kept no row) made one chunk, same dtype and
    values.

    Spark turns each returned column into one Arrow array; a column of several chunks, or of none, fails in the
    Python worker ("Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array"). Other columns are left as they
    are; the caller's frame is not changed.

    Examples
    --------
    >>> part = pd.DataFrame({"customer_id": pd.array(["a"], dtype="string")})
    >>> both = pd.concat([part, part], ignore_index=True)
    >>> both["customer_id"].array.__arrow_array__().num_chunks
    2
    >>> ready = frame_for_arrow(both)
    >>> ready["customer_id"].array.__arrow_array__().num_chunks, str(ready["customer_id"].dtype)
    (1, 'string')
    """
    import pyarrow as pa

    joined: dict[Any, Any] = {}
    for position, dtype in enumerate(frame.dtypes):
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            continue
        values = frame.iloc[:, position].array
        arrow = values.__arrow_array__() if hasattr(values, "__arrow_array__") else None
        if isinstance(arrow, pa.ChunkedArray) and arrow.num_chunks != 1:
            joined[position] = pd.array(arrow.combine_chunks(), dtype=dtype)
    if not joined:
        return frame
    out = frame.copy(deep=False)
    for position, values in joined.items():
        out.isetitem(position, values)
    return out


@contextlib.contextmanager
def pandas_warnings_quiet() -> Iterator[None]:
    """Silence what pyspark says about pandas 3 while converting frames ("does not yet fully support
    pandas >= 3.0.0", pandas' deprecated ``copy`` keyword): the conversions segkit makes are checked
    value for value against DuckDB by ``tests/test_spark.py``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated")
        yield


@contextlib.contextmanager
def _deprecated_conf_quiet() -> Iterator[None]:
    """Silence the Spark Connect client's warning that a SQL setting of :data:`SESSION_CONF` is deprecated
    (``spark.sql.parser.escapedStringLiterals``): segkit sets it to its default on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The SQL config .* has been deprecated")
        yield


def _require_spark() -> None:
    if SPARK_IMPORT_ERROR is not None:
        raise ConfigError(f"Running on Spark needs the `spark` extra ({SPARK_IMPORT_ERROR}): "
                          "pip install 'segkit[spark]' (pyspark and sqlglot).")


@contextlib.contextmanager
def _jvm_output_to(log: Path) -> Iterator[None]:
    """Standard error (file descriptor 2) goes to ``log`` while the body runs. The Spark driver's JVM,
    started there, keeps that stream for good, so Java's and Spark's start-up notes ("Using incubator
    modules", "Setting default log level") land in the log instead of a notebook's output, its HTML
    report or the terminal of ``segkit run``. When the body fails, the log is copied to standard error:
    what explains the failure is not hidden."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 2)
    try:
        yield
    except BaseException:
        os.dup2(saved, 2)
        sys.stderr.write(log.read_text(errors="replace"))
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def is_connect_master(master: str | None) -> bool:
    """True for a Spark Connect address (``sc://host:port``, optionally ``/;token=…`` and other parameters).

    Examples
    --------
    >>> is_connect_master("sc://localhost:15002"), is_connect_master("local[2]"), is_connect_master(None)
    (True, False, False)
    """
    return bool(master) and str(master).startswith("sc://")


def is_connect(session_or_frame: Any) -> bool:
    """True when ``session_or_frame`` (a Spark session or DataFrame) is Spark Connect's (a client of a server:
    no JVM in this process, temporary views read by name when an action runs), False for a classic one."""
    return type(session_or_frame).__module__.startswith("pyspark.sql.connect")


def connect_address_problem(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at the Spark Connect address ``address`` (``sc://host:port``, default port 15002):
    a message naming the host and port, or None when a server accepts connections there (a TCP check, within
    about ``timeout`` seconds: pyspark's client would retry for minutes before failing).

    Examples
    --------
    >>> connect_address_problem("sc://localhost:1/;token=x")[:37]
    'nothing accepts connections at localh'
    """
    import socket
    from urllib.parse import urlparse

    try:
        parsed = urlparse(address.split(";", 1)[0])
        host, port = parsed.hostname or "localhost", parsed.port or 15002
    except ValueError as exc:  # a port that is not a number
        return f"{redacted_master(address)} is not a host and port ({exc})"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return (f"nothing accepts connections at {host}:{port} ({exc.strerror or exc}): start the Spark Connect "
                "server there (README, \"Running on a Spark cluster\"), or correct engine.spark.master")


def connect_server_version(address: str, timeout: float = 5.0) -> str | None:
    """The Spark version of the Spark Connect server at ``address`` (``sc://host:port``), or None when it does
    not answer within about ``timeout`` seconds, the Connect client is not installed or anything else fails
    (what ``run.json`` records: never a reason for a run to fail).

    Asked in a session of its own, stopped after: the process's :func:`spark_session` is not started, and
    pyspark's process-wide Connect mode is not switched on (a classic session of the process keeps working).
    """
    if connect_address_problem(address, timeout):
        return None
    try:
        with pandas_warnings_quiet():
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        session = ConnectSession.builder.remote(address).create()
    except Exception:  # noqa: BLE001 - a version to record, not a step of the run
        return None
    try:
        return str(session.version)
    except Exception:  # noqa: BLE001
        return None
    finally:
        with contextlib.suppress(Exception):
            session.stop()


def python_workers_problem(session: "SparkSession", module: str = "segkit") -> str | None:
    """Why the Python workers of ``session``'s executors cannot run segkit: they cannot import ``module``
    (``PYSPARK_PYTHON`` of a Spark Connect server names a Python without it, pandas or pyarrow), or it is
    another version than here; None when they can. One task on one row.

    On a Spark Connect server the workers are the server's, started with its environment; without this
    check the first ``mapInPandas`` fails with a worker traceback that names no cause the user can act on.
    """
    import importlib

    here = getattr(importlib.import_module(module), "__version__", None) if module == "segkit" else None

    def version(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        imported = importlib.import_module(module)
        for _ in batches:
            yield pd.DataFrame({"version": [str(getattr(imported, "__version__", ""))]})

    try:
        with pandas_warnings_quiet():
            found = session.range(1).mapInPandas(version, "version string").collect()
    except PySparkException as exc:
        cause = next((line.strip() for line in str(exc).splitlines()
                      if "Error:" in line and ("No module named" in line or "ImportError" in line)), first_line(exc))
        return (f"the Python workers of the Spark executors cannot import {module} ({cause}). Start the Spark "
                "Connect server with PYSPARK_PYTHON set to a Python that has segkit (the version here), pandas and "
                "pyarrow (README, \"Running on a Spark cluster\")")
    there = found[0]["version"] if found else None
    if here is not None and there != here:
        return (f"the Python workers of the Spark executors have {module} {there}, this client {here}: install "
                "the same version on both")
    return None


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> "SparkSession":
    """The Spark session of this process: started on the first call, the same one afterwards.

    A ``sc://host:port`` master is a Spark Connect server: the session is its client (no Java here, no JVM
    settings). Only runtime SQL settings (``spark.sql.*``) can be set on it: the ``spark.sql.*`` ones of
    :data:`SESSION_CONF` and of ``conf``; any other key of ``conf`` is refused (a ConfigError naming it),
    since the server fixed it when it started and would ignore it (set it on the server: its
    ``spark-submit`` or ``spark-defaults.conf``). :data:`LOCAL_CONF` is the server's choice there too.

    Parameters
    ----------
    master : str, optional
        Spark master URL of the first call (default :data:`DEFAULT_MASTER`, ``local[2]``: two local
        cores), or a Spark Connect address ``sc://host:port``; None on a later call = whichever master the
        running session has.
    conf : mapping, optional
        More Spark settings for the first call, over :data:`SESSION_CONF`.

    Raises
    ------
    ConfigError
        pyspark (or, for ``sc://``, its ``connect`` client packages) is not installed, Java 17+ is missing,
        a later call asks for another master, or ``conf`` has a key a Spark Connect session cannot set.
    """
    _require_spark()
    if _SESSION:
        running = _MASTER[0]
        if master is not None and master != running:
            raise ConfigError(redacted_master(f"A Spark session on {running!r} is already running in this process; "
                                              f"it cannot also run on {master!r}. Use one master per process."))
        return _SESSION[0]
    master = master or DEFAULT_MASTER
    if is_connect_master(master):
        session = _connect_session(master, conf or {})
        _SESSION.append(session)
        _MASTER.append(master)
        return session
    problem = java_problem()
    if problem:
        raise ConfigError(f"Cannot start Spark: {problem}")
    if master.startswith("local"):  # a local driver talks to itself: no guessing of the host's address
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # local Python workers (mapInPandas, pandas UDFs) run this interpreter, with segkit and pandas
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
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
    with pandas_warnings_quiet(), _jvm_output_to(log_config.parent / "driver.log"):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    quiet_kernel_shutdown()
    _SESSION.append(session)
    _MASTER.append(master)
    return session


def _connect_session(address: str, conf: Mapping[str, str]) -> "SparkSession":
    """A Spark Connect session on the server at ``address`` with the ``spark.sql.*`` settings of
    :data:`SESSION_CONF` and ``conf`` (see :func:`spark_session`)."""
    refusal = spark_connect_refusal(address, conf)
    if refusal:
        raise ConfigError(f"{refusal}.")
    unreachable = connect_address_problem(address)
    if unreachable:
        raise ConfigError(f"Cannot reach the Spark Connect server at {redacted_master(address)}: {unreachable}.")
    try:
        with pandas_warnings_quiet():
            from pyspark.sql.connect.session import SparkSession as ConnectSession  # noqa: F401 - checks the client
    except ImportError as exc:
        raise ConfigError(redacted_master(f"A Spark Connect master ({address}) needs pyspark's Connect client "
                                          f"({exc}): pip install 'segkit[spark]' (it includes pyspark[connect]).")
                          ) from None
    try:
        with pandas_warnings_quiet():
            session = SparkSession.builder.remote(address).getOrCreate()
    except PySparkException as exc:
        raise ConfigError(redacted_master(f"Cannot reach the Spark Connect server at {address} ({first_line(exc)}). "
                                          "Check that it runs and that engine.spark.master names its host and port.")
                          ) from None
    settings = {**{k: v for k, v in SESSION_CONF.items() if k.startswith("spark.sql.")}, **conf}
    for key, value in settings.items():
        try:
            with _deprecated_conf_quiet():
                session.conf.set(key, value)
        except PySparkException as exc:
            if "INVALID_CONF_VALUE" in str(exc):
                raise ConfigError(f"engine.spark.conf.{key} = {value!r} is not a value Spark takes "
                                  f"({first_line(exc)}). Correct it in engine.spark.conf.") from None
            raise ConfigError(redacted_master(f"engine.spark.conf: {key} cannot be set on the Spark Connect server at "
                                              f"{address} ({first_line(exc)}). Set it on the server instead.")
                              ) from None
    problem = python_workers_problem(session)
    if problem:
        raise ConfigError(f"Spark Connect server at {redacted_master(address)}: {problem}.")
    return session


#: What asyncio logs when a Jupyter kernel that ran Spark exits while its control channel still waits
#: (the JVM's shutdown hooks delay the exit): harmless, and it reached the terminal of ``segkit run``.
KERNEL_SHUTDOWN_NOISE: tuple[str, str] = ("Task was destroyed but it is pending", "Kernel.dispatch_control")


def _is_kernel_shutdown_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not all(part in message for part in KERNEL_SHUTDOWN_NOISE)


def quiet_kernel_shutdown() -> None:
    """Drop asyncio's "Task was destroyed but it is pending" about an ipykernel's ``dispatch_control``
    task (:data:`KERNEL_SHUTDOWN_NOISE`), logged when a kernel that started Spark exits; every other
    asyncio message still shows. Idempotent.

    Examples
    --------
    >>> quiet_kernel_shutdown(); quiet_kernel_shutdown()
    >>> logging.getLogger("asyncio").filters.count(_is_kernel_shutdown_noise)
    1
    """
    logger = logging.getLogger("asyncio")
    if _is_kernel_shutdown_noise not in logger.filters:
        logger.addFilter(_is_kernel_shutdown_noise)


def child_session(base: "SparkSession") -> "SparkSession":
    """A new session on ``base``'s context (its own temporary views and SQL settings, shared executors)
    with the ``spark.sql.*`` settings of :data:`SESSION_CONF`: the core's texts mean there what they mean
    on DuckDB also when the context was not started by :func:`spark_session` (a pyspark shell, a cluster
    whose defaults set another time zone, ``escapedStringLiterals``, the ``LEGACY`` date parser …).

    A new session each call on a classic session: segkit's SQL settings and temporary views stay out of
    ``base`` (a pyspark shell's or a cluster notebook's session keeps its own settings). On Spark Connect,
    ``base`` itself, with those settings set: a Connect server refuses to combine frames of two sessions
    (``SESSION_NOT_SAME``), and pyspark 4.3 binds a ``localCheckpoint`` to the active session rather than the
    frame's, so a child session's checkpoint could not be read. Either way the objects working in a session
    name their temporary views uniquely (:class:`ViewNames`), so sharing one is safe. Timestamp parameters do
    not depend on these settings: :meth:`SparkLines.frame` binds them as typed literals (:func:`_spark_parameter`).
    """
    child = base if is_connect(base) else base.newSession()
    with _deprecated_conf_quiet():
        for key, value in SESSION_CONF.items():
            if key.startswith("spark.sql."):
                child.conf.set(key, value)
    return child


def _file_order_key(uri: str) -> str:
    """A file of Spark's ``_metadata.file_path`` (a URI, characters such as space, ``%`` and ``#``
    percent-encoded) as the name DuckDB's reader sorts: a ``file:`` URI's local path
    (:func:`segkit.core.config.file_uri_path`), another URI decoded."""
    return str(file_uri_path(uri)) if source_scheme(uri) == "file" else unquote(uri)


def reads_files(frame: "SparkFrame") -> bool:
    """True when ``frame``'s rows are read from files: it has Spark's hidden ``_metadata`` column (file path,
    block, row index), by which :func:`number_file_lines` numbers them. False for a view, a frame made on the
    driver, and tables that are not file sources (JDBC, Iceberg, …)."""
    try:
        frame.select("_metadata")
    except AnalysisException:
        return False
    return True


@dataclass(frozen=True)
class ParquetColumnFacts:
    """What the footer of a Parquet file says of its columns beyond Spark's schema.

    Attributes
    ----------
    nanoseconds : frozenset of str
        Integer columns (as Spark reads them) stored as ``TIMESTAMP(NANOS)`` (pandas' and pyarrow's default),
        which Spark reads as integers (``spark.sql.legacy.parquet.nanosAsLong``; Spark has no such type).
    time_zones : dict of str to str
        Timestamp columns written with a time zone (pyarrow's ``ARROW:schema`` metadata, e.g. a pandas column in
        ``Europe/Berlin``) → that zone. Spark reads them as instants (shown in UTC, the session's zone); pandas
        shows their wall time in the zone.
    """

    nanoseconds: frozenset[str] = frozenset()
    time_zones: dict[str, str] = field(default_factory=dict)


def parquet_column_facts(frame: "SparkFrame") -> ParquetColumnFacts:
    """:class:`ParquetColumnFacts` of ``frame``'s Parquet files (empty for a frame not read from Parquet files).

    Read from the footer of ``frame``'s first input file through Hadoop's file system, so a local file, a URI
    (``s3a://``, ``hdfs://``, …) and a file-based table are treated alike (one footer read: the files of one
    dataset share a schema); only when ``frame`` has integer or timestamp columns. A first file that is not a
    Parquet file (a table of CSV files) has no facts. On Spark Connect (no JVM in this process) the footer is
    read here by pyarrow, so only a local (``file:``) first file, at the same path on the client as on the
    server (a server on this machine, or a shared mount); another URI is refused.

    Raises
    ------
    DataError
        The footer cannot be read (the file is gone, access denied, a network error): naming the file and
        what Hadoop (or pyarrow) said.
    ConfigError
        On Spark Connect, the first file is not a local file (``s3a://``, ``hdfs://``, …).

    Examples
    --------
    >>> parquet_column_facts(spark_session().read.parquet("orders.parquet"))  # doctest: +SKIP
    ParquetColumnFacts(nanoseconds=frozenset({'order_date'}), time_zones={})
    """
    candidates = {f.name for f in frame.schema.fields
                  if isinstance(f.dataType, (spark_types.LongType, spark_types.TimestampType))}
    files = frame.inputFiles() if candidates else []
    if not files:
        return ParquetColumnFacts()
    if is_connect(frame):
        nanos, arrow_schema = _footer_from_client(files[0])
        return _column_facts(frame, candidates, nanos, arrow_schema)
    session = frame.sparkSession
    jvm = session._jvm
    try:
        source = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(
            jvm.org.apache.hadoop.fs.Path(files[0]), session._jsc.hadoopConfiguration())
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(source)
    except Py4JJavaError as exc:
        java = exc.java_exception
        said = (str(java.getMessage() or "").strip().splitlines() or [str(java.getClass().getName())])[0]
        if "is not a Parquet file" in said:  # parquet-mr's RuntimeException: CSV, Delta's JSON log
            return ParquetColumnFacts()
        raise DataError(f"{files[0]}: its Parquet footer cannot be read ({said}). Check that the file "
                        "is still there and readable with the session's credentials, then run again.") from None
    try:
        footer = reader.getFooter().getFileMetaData()
        schema = footer.getSchema()
        nanos = {f.getName() for f in schema.getFields()
                 if f.getLogicalTypeAnnotation() is not None
                 and f.getLogicalTypeAnnotation().toString().startswith("TIMESTAMP(NANOS")}
        arrow_schema = footer.getKeyValueMetaData().get("ARROW:schema")
    finally:
        reader.close()
    return _column_facts(frame, candidates, nanos, None if arrow_schema is None else str(arrow_schema))


def _footer_from_client(file: str) -> tuple[set[str], str | None]:
    """The top-level ``TIMESTAMP(NANOS)`` columns and the ``ARROW:schema`` metadata (base64 text, or None) of the
    Parquet footer of ``file`` (a ``file:`` URI or a local path), read by pyarrow here: Spark Connect's footer read.
    A file that is not Parquet has neither."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    scheme = source_scheme(file)
    if scheme not in (None, "file"):
        raise ConfigError(f"{file}: on a Spark Connect master segkit reads a Parquet file's footer (which columns "
                          f"hold nanosecond timestamps) from this client, which reads local files only, not "
                          f"{scheme}: URIs. Run this input on a classic master (local[*], spark://, yarn, k8s://), "
                          "or give files the client can read at the server's path.")
    path = file_uri_path(file) if scheme == "file" else Path(file)
    try:
        metadata = pq.read_metadata(str(path))
    except pa.ArrowInvalid as exc:
        if "magic bytes" in str(exc) or "not a parquet file" in str(exc).lower():  # a CSV table, Delta's JSON log
            return set(), None
        raise DataError(f"{file}: its Parquet footer cannot be read ({first_line(exc)}). Check that the file "
                        "is still there and readable, then run again.") from None
    except OSError as exc:
        raise DataError(f"{file}: its Parquet footer cannot be read from this Spark Connect client "
                        f"({first_line(exc)}): the client reads the server's files at the same path, so run it "
                        "on the server's machine or a shared mount, or use a classic master.") from None
    schema = metadata.schema
    nanos = set()
    for index in range(len(schema)):
        column = schema.column(index)
        logical = column.logical_type
        if "." not in column.path and logical.type == "TIMESTAMP" and '"nanoseconds"' in logical.to_json():
            nanos.add(column.path)
    arrow_schema = (metadata.metadata or {}).get(b"ARROW:schema")
    return nanos, None if arrow_schema is None else arrow_schema.decode()


def _column_facts(frame: "SparkFrame", candidates: set[str], nanos: set[str],
                  arrow_schema: str | None) -> ParquetColumnFacts:
    """:class:`ParquetColumnFacts` of ``frame`` from its first file's footer: the ``TIMESTAMP(NANOS)`` column names
    and the ``ARROW:schema`` metadata (base64 text, or None)."""
    zones = {}
    if arrow_schema is not None:
        import pyarrow as pa

        written = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(arrow_schema)))
        zones = {f.name: f.type.tz for f in written
                 if f.name in candidates and pa.types.is_timestamp(f.type) and f.type.tz is not None}
    longs = {f.name for f in frame.schema.fields if isinstance(f.dataType, spark_types.LongType)}
    return ParquetColumnFacts(frozenset(nanos & longs), zones)


def nanosecond_columns(frame: "SparkFrame") -> frozenset[str]:
    """The ``nanoseconds`` of :func:`parquet_column_facts`: integer columns of ``frame`` that its Parquet files
    store as ``TIMESTAMP(NANOS)``.

    Examples
    --------
    >>> nanosecond_columns(spark_session().read.parquet("orders.parquet"))  # doctest: +SKIP
    frozenset({'order_date'})
    """
    return parquet_column_facts(frame).nanoseconds


def timestamps_from_nanoseconds(frame: "SparkFrame", facts: ParquetColumnFacts | None = None) -> "SparkFrame":
    """``frame`` with its :func:`nanosecond_columns` as timestamps again, in microseconds (DuckDB's ``TIMESTAMP``
    has no finer unit either): rounded to the nearest microsecond, half away from zero, as DuckDB casts a
    ``TIMESTAMP_NS`` (exact integer arithmetic: a nanosecond count does not fit a double). Other columns unchanged,
    in order. ``facts``: the frame's :func:`parquet_column_facts` when the caller read them already (else read
    here: the first file's footer and the listing of the input files).

    Examples
    --------
    >>> timestamps_from_nanoseconds(spark_session().read.parquet("orders.parquet")).schema["order_date"]  # doctest: +SKIP
    StructField('order_date', TimestampNTZType(), True)
    """
    nanos = (parquet_column_facts(frame) if facts is None else facts).nanoseconds
    if not nanos:
        return frame

    def micros(column: str) -> str:
        c = "`" + column.replace("`", "``") + "`"
        return (f"timestamp_micros(CASE WHEN {c} >= 0 THEN ({c} + 500) DIV 1000 ELSE -((500 - {c}) DIV 1000) END) "
                f"AS {c}")

    return frame.selectExpr(*[micros(c) if c in nanos else "`" + c.replace("`", "``") + "`" for c in frame.columns])


def number_file_lines(frame: "SparkFrame", *, files: Sequence[str] | None = None,
                      column: str = "_row") -> "SparkFrame":
    """``frame`` with ``column``: each row's 0-based number in file order, as DuckDB numbers the same files.

    File order is: files by name (decoded: Spark's ``_metadata.file_path`` percent-encodes a space as
    ``%20``, ``%`` as ``%25``, ``#`` as ``%23``; DuckDB and the file system sort the names themselves),
    or in the order of ``files`` (local paths, as :func:`segkit.data.engine.input_files` lists them:
    a list of paths in the order given); rows as stored in a file. There is no global sort and no window
    over all lines: a row's number is its file's (or split's) offset, from a small table of row counts
    per file (split), plus its row in the file (split). Parquet rows know their row in the file
    (``_metadata.row_index``); other files (CSV) are numbered within each split in read order, fixed
    first by a checkpoint on the executors (a split is read by one task, in file order).

    Parameters
    ----------
    frame : Spark DataFrame
        Rows as Spark reads them from files (``session.read``, optionally a projection of it) or from a
        file-based table: whatever has Spark's ``_metadata`` columns.
    files : sequence of str, optional
        The local files in the order to number them (default: by decoded name).
    column : str
        Name of the number column (BIGINT).

    Raises
    ------
    DataError
        ``frame`` is not read from files (:func:`reads_files`): its rows have no file order to number.

    Examples
    --------
    Files compare by their decoded names, as DuckDB sorts them ("a b" before "a!b"; "a%20b" would come after):

    >>> sorted(["file:/data/a!b.parquet", "file:/data/a%20b.parquet"], key=_file_order_key)
    ['file:/data/a%20b.parquet', 'file:/data/a!b.parquet']
    """
    if not reads_files(frame):
        raise DataError("These rows are not read from files (a view, a frame made on the driver, a JDBC or Iceberg "
                        "table): segkit numbers order lines by the files they are read from. Read the files "
                        "themselves, or a file-based (Parquet, CSV, Delta) table.")
    metadata = frame.select("_metadata").schema["_metadata"].dataType.fieldNames()
    if "row_index" in metadata:  # Parquet: a file's rows are numbered by Spark, one offset per file
        located = frame.select("*", functions.col("_metadata.file_path").alias("_file"),
                               functions.lit(0).cast("long").alias("_block"),
                               functions.col("_metadata.row_index").alias("_within"))
    else:  # numbered within each split; the checkpoint fixes the read order the numbering follows
        located = frame.select("*", functions.col("_metadata.file_path").alias("_file"),
                               functions.col("_metadata.file_block_start").alias("_block"),
                               functions.monotonically_increasing_id().alias("_seq")).localCheckpoint(eager=True)
        within = functions.row_number().over(Window.partitionBy("_file", "_block").orderBy("_seq")) - 1
        located = located.withColumn("_within", within).drop("_seq")
    counts = located.groupBy("_file", "_block").agg(functions.count(functions.lit(1)).alias("n")).collect()
    rank = {os.path.abspath(f): i for i, f in enumerate(files or ())}

    def order(file: str) -> tuple[int, str]:
        name = _file_order_key(file)
        return rank.get(name, len(rank)), name

    offsets, start = [], 0
    for row in sorted(counts, key=lambda r: (order(r["_file"]), r["_block"])):
        offsets.append((row["_file"], row["_block"], start))
        start += row["n"]
    session = frame.sparkSession
    table = session.createDataFrame(offsets, "_file STRING, _block BIGINT, _offset BIGINT")
    numbered = located.join(functions.broadcast(table), ["_file", "_block"]) \
        .withColumn(column, (functions.col("_offset") + functions.col("_within")).cast("long"))
    return numbered.drop("_file", "_block", "_within", "_offset")


def spark_sql(text: str, views: Mapping[str, str] | None = None) -> str:
    """``text`` (DuckDB dialect: a :meth:`Query.text`) as Spark SQL; ``$name`` markers become ``:name``; the
    relations it reads that ``views`` names (a name in the text → the temporary view that holds it now:
    :attr:`ViewNames.current`) read those views (:func:`with_view_names`).

    Examples
    --------
    >>> spark_sql("SELECT customer_id, date_diff('day', CAST(d AS DATE), CAST($as_of AS DATE)) AS r FROM lines")
    'SELECT customer_id, DATEDIFF(DAY, CAST(d AS DATE), CAST(:as_of AS DATE)) AS r FROM lines'
    >>> spark_sql("SELECT lines.customer_id FROM lines", {"lines": "_segkit1_0_lines"})
    'SELECT lines.customer_id FROM _segkit1_0_lines AS lines'
    """
    _require_spark()
    read = set(_tables_in(text)) if views else set()
    return _spark_sql(text, tuple(sorted((name, views[name]) for name in read if name in views)) if views else ())


@functools.lru_cache(maxsize=512)
def _spark_sql(text: str, views: tuple[tuple[str, str], ...]) -> str:
    if not views:
        return sqlglot.transpile(text, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)[0]
    tree = with_view_names(sqlglot.parse_one(text, read="duckdb"), dict(views))
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


def with_view_names(tree: "exp.Expression", views: Mapping[str, str]) -> "exp.Expression":
    """``tree`` (a parsed statement, changed in place and returned) reading the temporary view ``views[name]``
    wherever it reads the relation ``name``: an unqualified table that is not one of its own CTEs, renamed and
    aliased by its old name (``FROM lines`` → ``FROM _segkit1_4_lines AS lines``), so columns qualified by that
    name still resolve.

    Examples
    --------
    >>> tree = sqlglot.parse_one("WITH o AS (SELECT * FROM lines) SELECT * FROM o JOIN orders USING (k)")
    >>> with_view_names(tree, {"lines": "v1", "o": "v2", "orders": "v3"}).sql()
    'WITH o AS (SELECT * FROM v1 AS lines) SELECT * FROM o JOIN v3 AS orders USING (k)'
    """
    if not views:
        return tree
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if name in views and name not in ctes and not table.args.get("db") and not table.args.get("catalog"):
            table.set("this", exp.to_identifier(views[name]))
            if not table.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
    return tree


#: Numbers the owners of :class:`ViewNames` in this process (each owner's views share a prefix).
_VIEW_OWNERS = itertools.count(1)


class ViewNames:
    """The temporary views of one object working in a Spark session (:class:`SparkLines`, a
    :class:`segkit.data.spark_audit.SparkConnection`): each relation it defines gets a view name of its own
    (``_segkit<owner>_<n>_<name>``), never replaced, and SQL reads the newest view of each name
    (:attr:`current`, :func:`spark_sql`).

    Why: on Spark Connect a lazy frame (``session.sql``, ``session.table``) reads a temporary view by name
    when an action runs, not when the frame is made, so replacing a view (the orders held again at another
    date) would silently change frames made before; and the objects of one process share one Connect session
    (:func:`child_session`). On a classic session a frame's plan is resolved when it is made, so a view that a
    newer one of the same name supersedes is dropped at once (what replacing it did); on Connect it stays
    until :meth:`drop`. The frames behind the views are kept referenced here: a Connect checkpoint is released
    when its Python object is collected.

    Parameters
    ----------
    session : SparkSession
        Where the views live.
    """

    def __init__(self, session: "SparkSession"):
        self.session = session
        self.prefix = f"_segkit{next(_VIEW_OWNERS)}"
        #: name in the SQL texts → the view that holds it now
        self.current: dict[str, str] = {}
        self._frames: dict[str, "SparkFrame"] = {}  # view → the frame it shows
        self._count = itertools.count()

    def create(self, name: str, frame: "SparkFrame") -> str:
        """Show ``frame`` as a new view for the relation ``name`` (which SQL read through :meth:`sql` reads from
        now on); the view's name is returned."""
        view = f"{self.prefix}_{next(self._count)}_{re.sub(r'[^0-9A-Za-z_]', '_', name)}"
        frame.createTempView(view)
        superseded = self.current.get(name)
        self.current[name] = view
        self._frames[view] = frame
        if superseded is not None and not is_connect(self.session):
            self._drop(superseded)
        return view

    def frame(self, name: str) -> "SparkFrame":
        """The frame the relation ``name`` holds now (KeyError when none)."""
        return self._frames[self.current[name]]

    def sql(self, text: str) -> str:
        """``text`` (DuckDB dialect) as Spark SQL reading these views (:func:`spark_sql`)."""
        return spark_sql(text, self.current)

    def _drop(self, view: str) -> None:
        self.session.catalog.dropTempView(view)
        self._frames.pop(view, None)

    def drop(self) -> None:
        """Drop every view made here (other objects' views in the session stay)."""
        for view in list(self._frames):
            self._drop(view)
        self.current.clear()


def _spark_value(value: Any) -> Any:
    """A parameter as a plain Python value with the core's type (naive UTC timestamps, plain numbers)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64, dt.datetime)):
        stamp = pd.Timestamp(value)
        return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _spark_parameter(value: Any) -> Any:
    """A parameter as Spark binds it: timestamps and dates as typed literals (``TIMESTAMP_NTZ '…'``).

    pyspark would turn a naive ``datetime`` into a zoned ``TIMESTAMP`` read in the Python process's local
    time zone unless the *active* session prefers ``TIMESTAMP_NTZ`` (which another session, a shell's or
    a cluster's, may not): a typed literal means the same instant in every session and process.
    """
    value = _spark_value(value)
    if isinstance(value, dt.datetime):
        return functions.expr(f"TIMESTAMP_NTZ '{value.isoformat(sep=' ')}'")
    if isinstance(value, dt.date):
        return functions.expr(f"DATE '{value.isoformat()}'")
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


class SparkLines:
    """Order lines registered as the ``lines`` relation of a Spark session; runs core queries on them.

    A :class:`~segkit.data.relational.QueryExecutor`: the core's runner functions (``rfm_of``,
    ``purchase_days_of`` …) take it as they take a DuckDB connection. Spark inlines a relation each
    time a statement reads it, so before a query runs, the relations its chain reads more than once
    (the cancellation matching's, the orders as seen at ``as_of``) are materialised on the executors
    (:meth:`hold_shared`) and kept, keyed by their definition and parameters, for later queries: the
    orders are matched once per analysis date, not once per table.

    Parameters
    ----------
    source : DataFrame, path, glob or list of paths
        Canonical order lines: a pandas frame (checked as :func:`~segkit.data.relational.frame_lines`
        checks it) or Parquet files (``transactions_clean.parquet``, a folder or a glob of them).
    positions : bool
        Know the input order of file lines (``_pos``: listings in input order, an order's first line):
        1, 2, … in DuckDB's file order (:func:`number_file_lines`: per-file offsets, no global sort); always
        on for frames, and for files whose order ids are incomplete (each line its own order, named by its
        position).
    session : SparkSession, optional
        Default :func:`spark_session`; the lines live in a child session of it (:func:`child_session`), their
        relations in views of their own (:attr:`views`).
    what : str
        How messages name a frame (files are named by their path).

    Examples
    --------
    Not run as a doctest (it would start a second JVM beside tests/test_spark.py's session):

    >>> from segkit.data.relational import HEADLINE, headline_of
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "C1", "2"], "amount": [5.0, -5.0, 7.0],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-03-01"])})
    >>> lines = SparkLines(tx)  # doctest: +SKIP
    >>> lines.run(HEADLINE).loc[0, ["net_revenue", "buyers"]].to_dict()  # doctest: +SKIP
    {'net_revenue': 7.0, 'buyers': 1}
    >>> headline_of(lines)["buyers"]  # doctest: +SKIP
    1
    """

    def __init__(self, source: pd.DataFrame | str | Path | Sequence[str | Path], *, positions: bool = False,
                 session: "SparkSession | None" = None, what: str = "transactions"):
        self.source = source
        self.session = child_session(session or spark_session())
        #: this object's temporary views: ``lines``, ``line_feed``, the relations held and registered
        self.views = ViewNames(self.session)
        self.name = what if isinstance(source, pd.DataFrame) else str(source)
        #: relations held (:meth:`materialise`): name -> (definition and parameters, relations it reads)
        self._held: dict[str, tuple[Any, frozenset[str]]] = {}
        self._registered: set[str] = set()  # relations registered from frames (:meth:`register`)
        self._complete = isinstance(source, pd.DataFrame)  # a frame is checked by line_feed
        self._paths: list[str] = []
        try:
            if isinstance(source, pd.DataFrame):
                self._register_frame(source, what)
            else:
                self._register_files(source, positions)
        except PySparkException as exc:
            raise DataError(f"{self.name}: Spark could not read the order lines ({first_line(exc)}). "
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
        self._paths = paths
        read = timestamps_from_nanoseconds(self.session.read.parquet(*paths))
        present = [c for c in read.columns if c in LINE_INPUTS]
        require_columns(pd.DataFrame(columns=read.columns), ["customer_id", "order_date", "amount"], self.name,
                        "Give the cleaned transactions (artifacts/transactions_clean.parquet), which 01_data_audit "
                        "writes with the canonical columns.")
        all_ids = "order_id" in present and bool(
            read.selectExpr("count(*) = count(order_id) AS complete").first()["complete"])
        # without complete order ids each line is its own order, named by its position
        positions = positions or not all_ids
        selected = [f"`{c}`" for c in present]
        if positions:  # 1, 2, … in DuckDB's file order: files by name, rows as stored
            read = number_file_lines(read).selectExpr(*selected, "_row + 1 AS _pos")
        else:
            read = read.selectExpr(*selected)
        self._create_lines(read, tuple(present), all_ids, positions)

    def _create_lines(self, frame: "SparkFrame", columns: Sequence[str], all_order_ids: bool, positions: bool) -> None:
        self.views.create("line_feed", frame)
        view = lines_view_sql("line_feed", columns, all_order_ids=all_order_ids,
                              positions="_pos" if positions else None)
        self.views.create("lines", self.session.sql(self.views.sql(view)))

    def frame(self, query: Query, params: Mapping[str, Any] | None = None,
              provided: Sequence[str] = ()) -> "SparkFrame":
        """``query`` as a Spark DataFrame (lazy): :meth:`Query.text` without the ``provided`` relations
        and those already held (:meth:`hold_shared`, which runs first), transpiled, its ``$name``
        parameters bound from ``params``."""
        missing = sorted(set(re.findall(r"\$([A-Za-z_]\w*)", query.text(provided))) - set(params or {}))
        if missing:
            raise ValueError(f"query {query.name!r} needs the parameter(s) {', '.join(missing)}")
        held = self.hold_shared(query, params, provided)
        return self._statement(query, params, held)

    def _statement(self, query: Query, params: Mapping[str, Any] | None, provided: Sequence[str]) -> "SparkFrame":
        sql = self.views.sql(query.text(provided))
        bound = {k: _spark_parameter(v) for k, v in (params or {}).items() if f":{k}" in sql}
        try:
            return self.session.sql(sql, args=bound)
        except PySparkException as exc:
            raise self._error(query, exc) from None

    def _collect(self, query: Query, params: Mapping[str, Any] | None, provided: Sequence[str],
                 how: Callable[["SparkFrame"], _T]) -> _T:
        result = self.frame(query, params, provided)
        try:
            with pandas_warnings_quiet():
                return how(result)
        except PySparkException as exc:
            raise self._error(query, exc) from None

    def run(self, query: Query, params: Mapping[str, Any] | None = None,
            provided: Sequence[str] = ()) -> pd.DataFrame:
        """``query`` on these lines (:meth:`frame`), collected as a pandas frame in the query's order
        (money columns DOUBLE, as the core casts them; timestamps naive)."""
        return self._collect(query, params, provided, lambda result: result.toPandas())

    def first_row(self, query: Query, params: Mapping[str, Any] | None = None,
                  provided: Sequence[str] = ()) -> tuple[Any, ...]:
        """The first row of ``query`` as Python values (None for NULL; an empty tuple without rows)."""
        row = self._collect(query, params, provided, lambda result: result.first())
        return () if row is None else tuple(row)

    def arrow(self, query: Query, params: Mapping[str, Any] | None = None,
              provided: Sequence[str] = ()) -> "pa.Table":
        """``query``'s rows as an Arrow table in the query's order (Spark's Arrow batches, no pandas)."""
        return self._collect(query, params, provided, lambda result: result.toArrow())

    def materialise(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> None:
        """Compute ``query`` once and hold it (checkpointed on the executors) as the relation named
        ``query.name``, which later queries read when it is listed in their ``provided`` (a view of its own,
        :class:`ViewNames`: frames made before still read the relation they were made from).

        Spark inlines a relation that a statement reads twice, so a long chain (the cancellation
        matching) is best materialised once, as DuckDB's runners materialise the orders. A relation
        already held from the same definition and parameters (nothing ``provided``) is not recomputed.
        """
        key = self._key(query, params)
        if not provided and self._held.get(query.name, (None,))[0] == key:
            return
        try:
            held = self.frame(query, params, provided).localCheckpoint(eager=True)
            self.views.create(query.name, held)
        except PySparkException as exc:
            raise self._error(query, exc) from None
        # reusable later only when computed from its definition: every relation provided held by key or registered
        known = all(self._held.get(name, (None,))[0] is not None or name in self._registered for name in provided)
        self._held[query.name] = (key if known else None, _relations_read(query))

    def register(self, name: str, frame: "pd.DataFrame | SparkFrame", typing: str) -> None:
        """Hold ``frame`` (pandas, or a Spark frame: left on the executors) as the relation ``name``
        (``<name>_feed`` typed by ``typing``, a DuckDB-dialect select list, transpiled); relations held
        before that read ``name`` are dropped."""
        if isinstance(frame, pd.DataFrame):
            with pandas_warnings_quiet():
                feed = self.session.createDataFrame([] if frame.empty else frame, _schema_of(frame))
        elif frame.sparkSession is self.session:
            feed = frame
        else:  # temp views belong to a session: this one's (child_session) reads only its own
            raise ValueError(f"register({name!r}): the Spark frame belongs to another session; make it from "
                             "these lines' session (SparkLines.session)")
        self.views.create(f"{name}_feed", feed)
        self.views.create(name, self.session.sql(self.views.sql(f"SELECT {typing} FROM {name}_feed")))
        self._held = {held: entry for held, entry in self._held.items() if name not in entry[1]}
        self._registered.add(name)

    def hold_shared(self, query: Query, params: Mapping[str, Any] | None = None,
                    provided: Sequence[str] = ()) -> tuple[str, ...]:
        """The relations of ``query``'s chain to read rather than recompute, ``provided`` first: those
        held from the same definition and parameters before, and every relation that the rest of the
        chain reads more than once (by two queries, or twice by one: a self-join), materialised now in
        dependency order. Pass them as ``provided`` to run ``query`` with the same ``params``."""
        held = list(provided)
        for relation in query.chain(held)[:-1]:
            if self._held.get(relation.name, (None,))[0] == self._key(relation, params):
                held.append(relation.name)
        chain = query.chain(held)
        reads = Counter(name for q in chain for name in _tables_in(q.sql))
        for relation in chain[:-1]:
            if reads[relation.name] > 1 and relation.name not in held:
                self.materialise(relation, params, held)
                held.append(relation.name)
        return tuple(held)

    def _key(self, query: Query, params: Mapping[str, Any] | None) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What a held relation was computed from: its whole definition and the parameters it reads."""
        text = query.text()
        return text, tuple(sorted((k, repr(_spark_value(v))) for k, v in (params or {}).items() if f"${k}" in text))

    def require_complete(self) -> None:
        """A :class:`DataError` naming the column, the count and the first line (1-based, in file order)
        when line files miss a customer id, date or amount (a frame is checked on registration)."""
        if self._complete:
            return
        columns = ("customer_id", "order_date", "amount")
        counts = self.session.sql(self.views.sql(f"SELECT {', '.join(f'count(*) - count({c}) AS {c}' for c in columns)} "
                                                 "FROM line_feed")).first()
        for column in columns:
            if counts[column]:
                first = number_file_lines(self.session.read.parquet(*self._paths)).where(
                    f"`{column}` IS NULL").agg({"_row": "min"}).first()[0]
                raise DataError(f"{self.name}: column {column!r} has {int(counts[column])} missing value(s) (first "
                                f"at {format_rows([int(first)])}). Use the cleaned transactions "
                                "(artifacts/transactions_clean.parquet), which have none.")
        self._complete = True

    def _error(self, query: Query, exc: BaseException) -> DataError:
        return DataError(f"{self.name}: Spark could not run the relational core's query {query.name!r} "
                         f"({first_line(exc)}).")


@functools.lru_cache(maxsize=512)
def _tables_in(sql: str) -> tuple[str, ...]:
    """The relation names one query's SQL reads (each time it reads them: a self-join names one twice)."""
    return tuple(table.name for table in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table))


def _relations_read(query: Query) -> frozenset[str]:
    """Every relation name ``query``'s whole chain reads (its inputs among them)."""
    return frozenset(name for q in query.chain() for name in _tables_in(q.sql))


class SparkOrderLines(OrderLineTables):
    """Order lines on Apache Spark: the order-level tables of :class:`segkit.data.engine.OrderLines`
    (same methods, columns, dtypes, row order and values), computed by Spark from the core's queries.

    The lines are registered once (:class:`SparkLines`) and the relations that several tables read
    (the orders as seen at ``as_of``, the cancellation matching) are held on the executors the first
    time and reused, so a run's steps do not recompute them.

    Parameters
    ----------
    source : DataFrame, path, glob or list of paths
        Canonical order lines: a pandas frame or Parquet files (a run's
        ``artifacts/transactions_clean.parquet``, a folder or a glob of them).
    master : str, optional
        Spark master URL (``local[*]``, ``spark://host:7077``, ``sc://host:15002``) of the process's
        session (:func:`spark_session`; None = the running session, else ``local[2]``).
    conf : mapping, optional
        More Spark settings for the session (when it starts).
    session : SparkSession, optional
        A session to use instead (tests share one).

    Examples
    --------
    Not run as a doctest (it would start a JVM):

    >>> SparkOrderLines("reports/june/artifacts/transactions_clean.parquet").rfm("2024-06-01")  # doctest: +SKIP
    """

    def __init__(self, source: pd.DataFrame | str | Path | Sequence[str | Path], master: str | None = None,
                 conf: Mapping[str, str] | None = None, *, session: "SparkSession | None" = None):
        self.source = source
        self.session = session or spark_session(master, conf)
        self._lines: SparkLines | None = None

    def lines(self) -> SparkLines:
        """The :class:`SparkLines` of the source, registered on first use, with line positions (input
        order: :func:`number_file_lines`, one count per file), so every table reads the same held relations."""
        if self._lines is None:
            self._lines = SparkLines(self.source, positions=True, session=self.session)
        return self._lines

    def run(self, task: Callable[[QueryExecutor], _T], *, positions: bool = False, what: str | None = None,
            canonical: bool = False) -> _T:
        """``task(lines)`` with the :class:`SparkLines` of the source (``canonical``: first check that no
        line misses an id, date or amount). ``positions`` is always on (:meth:`lines`); ``what`` is unused:
        Spark's reading errors say what the files need."""
        lines = self.lines()
        if canonical:
            lines.require_complete()
        return task(lines)
