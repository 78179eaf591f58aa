"""Where a step reads its order-level tables from: the run's clean lines, through the relational core.

Whatever engine the audit used, it writes ``artifacts/transactions_clean.parquet`` (pandas with
pyarrow, DuckDB with ``COPY``). Every function here runs the relational core's queries
(:mod:`segkit.data.relational`) over that file through one object (:func:`run_lines`): a
:class:`segkit.data.engine.OrderLines` (DuckDB), or with ``engine.kind: spark`` a
:class:`segkit.data.spark.SparkOrderLines` (the same queries and methods on Apache Spark, on
``engine.spark.master``). No step loads the clean lines into pandas (they can be 100M), and there
is one way of reading them. The only other choice is the relation itself, which API users and tests
make by passing a frame to the same classes. :func:`check_engine` refuses a Spark engine that cannot
start here (no pyspark, no Java), or a null sample size that would collect every customer to the Spark
driver (:data:`SPARK_SAMPLES`), before any work.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from segkit.core.config import redacted_master
from segkit.core.errors import ConfigError
from segkit.data.engine import EngineSettings, OrderLines, SparkSettings, choose_engine
from segkit.data.relational import OrderLineTables
from segkit.steps.pipeline import RunContext

if TYPE_CHECKING:  # the `spark` extra: imported only when engine.kind is spark
    from segkit.data.spark import SparkOrderLines

__all__ = ["check_engine", "SPARK_SAMPLES", "spark_sample_error", "spark_lines", "duckdb_lines", "run_lines", "rfm_for", "orders_for", "purchase_days_for",
    "first_non_purchase_for", "send_history_for", "behaviour_for", "kept_value_for"]


def _clean_lines(ctx: "RunContext") -> Path:
    """Path of ``transactions_clean.parquet``, built in interactive mode, never loaded here."""
    path = ctx.artifact_path("transactions_clean")
    if not path.exists() and ctx.interactive:
        ctx.build_upstream("transactions_clean")
    if not path.exists():
        ctx.read_artifact("transactions_clean")  # raises UpstreamMissingError naming the notebook to run
    return path


#: The sample sizes that bound what reaches the Spark driver, as ``(section, key)`` -> (what null would do, the
#: work that reads the sample on the driver). On ``engine.kind: spark`` they must be whole numbers: null means
#: "no sample", every customer collected to the driver.
SPARK_SAMPLES: dict[tuple[str, str], tuple[str, str]] = {
    ("clustering", "fit_sample"): ("fits on every customer", "the fit"),
    ("lifecycle", "holdout_sample"): ("checks the models on every customer", "the holdout check"),
}


def spark_sample_error(section: str, key: str) -> ConfigError:
    """The error for a null ``section.key`` of :data:`SPARK_SAMPLES` on ``engine.kind: spark``: what null would
    do and what to write. :func:`check_engine` raises it before the first notebook; the step that reads the
    sample raises it too (a run folder's config, or a context made by hand).

    Examples
    --------
    >>> print(spark_sample_error("clustering", "fit_sample"))
    clustering.fit_sample is null, which fits on every customer; on engine.kind: spark the fit runs on the driver \
from a seeded sample: set clustering.fit_sample (e.g. 200000).
    """
    does, work = SPARK_SAMPLES[(section, key)]
    return ConfigError(f"{section}.{key} is null, which {does}; on engine.kind: spark {work} runs on the driver "
                       f"from a seeded sample: set {section}.{key} (e.g. 200000).")


def check_engine(config: Mapping[str, Any]) -> EngineSettings:
    """The checked ``engine`` section; with ``engine.kind: spark``, also that Spark can start here and that no
    sample size of :data:`SPARK_SAMPLES` is null.

    Called by ``segkit run`` before the first notebook, and by :func:`run_lines`, so that a missing
    extra or runtime is said once, plainly, instead of as a traceback halfway through a run.

    Raises
    ------
    ConfigError
        An invalid ``engine`` value (:meth:`EngineSettings.from_config`); for ``spark``: pyspark not
        installed, no Java 17+ runtime (not needed for a Spark Connect ``sc://`` master),
        ``engine.spark.conf`` changing a setting the relational core's SQL relies on, or a null
        ``clustering.fit_sample`` or ``lifecycle.holdout_sample`` (:func:`spark_sample_error`).

    Examples
    --------
    >>> check_engine({"engine": {"kind": "duckdb"}}).kind
    'duckdb'
    >>> check_engine({"engine": {"kind": "spark", "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": []}}}})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: engine.spark.conf.spark.sql.shuffle.partitions = []; use one value (text, number or true/false), as spark-submit --conf takes it (see segkit/defaults/engine.yml).
    """
    settings = EngineSettings.from_config(config)
    if settings.kind != "spark":
        return settings
    for section, key in SPARK_SAMPLES:  # a missing key or section takes the default, a whole number
        values = config.get(section)
        if isinstance(values, Mapping) and key in values and values[key] is None:
            raise spark_sample_error(section, key)
    from segkit.data import spark  # the `spark` extra: imports pyspark when it is there

    if spark.SPARK_IMPORT_ERROR is not None:
        raise ConfigError(f"engine.kind is spark, but the `spark` extra is not installed ({spark.SPARK_IMPORT_ERROR}). "
                          "Install it with pip install 'segkit[spark]' (pyspark and sqlglot), or set engine.kind: "
                          "duckdb.")
    changed = sorted(k for k, v in settings.spark.conf.items()
                     if k.startswith("spark.sql.") and spark.SESSION_CONF.get(k, v) != v)
    if changed:
        raise ConfigError(f"engine.spark.conf sets {', '.join(changed)}, which the relational core's SQL relies on "
                          f"({', '.join(f'{k}: {spark.SESSION_CONF[k]}' for k in changed)}); remove "
                          f"{'it' if len(changed) == 1 else 'them'} from engine.spark.conf.")
    master = settings.spark.master
    if spark.is_connect_master(master):  # a client: no Java here, but a server that answers
        problem = spark.connect_address_problem(master)
        if problem:
            raise ConfigError(f"engine.spark.master = {redacted_master(master)!r}: {problem}.")
    problem = None if spark.is_connect_master(master) else spark.java_problem()
    if problem:
        raise ConfigError(f"engine.kind is spark, but Spark cannot start on {master}: {problem}")
    return settings


def spark_lines(source: str | Path, settings: SparkSettings) -> "SparkOrderLines":
    """Clean order lines (a Parquet file or folder) as :class:`segkit.data.spark.SparkOrderLines` in this
    process's Spark session on ``settings.master`` with ``settings.conf``
    (:func:`segkit.data.spark.spark_session`; started on the first call).

    The same object for the same file (unchanged since: same size and modification time) and settings,
    so that what it holds on the executors (the registered lines, the orders and cancellation matches
    several tables read) serves every table a step asks for.

    Examples
    --------
    >>> lines = spark_lines("reports/run/artifacts/transactions_clean.parquet", SparkSettings("local[2]"))  # doctest: +SKIP
    """
    stat = Path(source).stat()
    return _spark_lines_of(str(source), stat.st_size, stat.st_mtime_ns, settings.master,
                           tuple(sorted(settings.conf.items())))


@functools.lru_cache(maxsize=4)
def _spark_lines_of(source: str, size: int, modified: int, master: str,
                    conf: tuple[tuple[str, str], ...]) -> "SparkOrderLines":
    """:func:`spark_lines` (cached by file version and settings; ``size`` and ``modified`` are the key only)."""
    from segkit.data.spark import SparkOrderLines

    return SparkOrderLines(source, master, dict(conf))


def duckdb_lines(ctx: "RunContext") -> OrderLines:
    """The run's clean order lines as :class:`OrderLines` (DuckDB) whatever ``engine.kind`` says, with the
    ``engine`` section's memory limit and spill folder: how the data audit reads them.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = duckdb_lines(open_run("01_data_audit"))  # doctest: +SKIP
    """
    settings = EngineSettings.from_config(ctx.config)
    return OrderLines(_clean_lines(ctx), memory_limit=settings.memory_limit, temp_directory=settings.temp_directory)


def run_lines(ctx: "RunContext") -> OrderLineTables:
    """The run's clean order lines (``artifacts/transactions_clean.parquet``) as the steps after the
    audit read them: :func:`spark_lines` when ``engine.kind`` is ``spark``, else :func:`duckdb_lines`
    (the same methods, :class:`~segkit.data.relational.OrderLineTables`).

    Raises
    ------
    UpstreamMissingError
        The file is missing and the context is not interactive (naming the notebook to run).
    ConfigError
        ``engine.kind: spark`` where Spark cannot start (:func:`check_engine`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = run_lines(open_run("02_rfm"))  # doctest: +SKIP
    """
    if choose_engine(ctx.config) != "spark":
        return duckdb_lines(ctx)
    return spark_lines(_clean_lines(ctx), check_engine(ctx.config).spark)


def rfm_for(ctx: "RunContext") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The RFM base of the run as of its ``as_of``, and the counts behind its notes
    (:meth:`OrderLines.rfm_with_info`; only the customer-level result is in memory).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> rfm, info = rfm_for(open_run("02_rfm"))  # doctest: +SKIP
    """
    return run_lines(ctx).rfm_with_info(ctx.as_of)


def orders_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.order_table` of the run's clean lines (:meth:`OrderLines.orders`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> orders = orders_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).orders()


def purchase_days_for(ctx: "RunContext", as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`segkit.data.orders.purchase_days` of the run's clean lines as seen at ``as_of`` (None = every
    line; :meth:`OrderLines.purchase_days`): only the customer-by-day table is ever in memory.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> days = purchase_days_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).purchase_days(as_of)


def kept_value_for(ctx: "RunContext", as_of: str | pd.Timestamp) -> pd.Series:
    """Each buyer's kept value as seen at ``as_of``: the RFM base's ``monetary_total`` (every order and
    cancellation document before ``as_of``, cancellations matched; unmatched adjustments included), the
    one per-customer total of segkit. Index ``customer_id`` (string), sorted.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> ctx = open_run("04_lifecycle")                    # doctest: +SKIP
    >>> kept = kept_value_for(ctx, ctx.as_of)             # doctest: +SKIP
    """
    rfm = run_lines(ctx).rfm(as_of)
    return pd.Series(rfm["monetary_total"].to_numpy(dtype="float64"), name="monetary_total",
                     index=pd.Index(rfm["customer_id"], dtype="string", name="customer_id"))


def first_non_purchase_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.first_non_purchase` of the run's clean lines
    (:meth:`OrderLines.first_non_purchase`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> first = first_non_purchase_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).first_non_purchase()


def send_history_for(ctx: "RunContext") -> OrderLineTables:
    """The run's clean order lines as :func:`segkit.campaign.segments_at_send` and
    :func:`segkit.campaign.retention_flags` read them (:func:`run_lines`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = send_history_for(open_run("05_campaign_evaluation"))  # doctest: +SKIP
    """
    return run_lines(ctx)


def behaviour_for(ctx: "RunContext", as_of: str | pd.Timestamp | None, max_channels: int = 6) -> pd.DataFrame:
    """The behaviour columns of :func:`segkit.features.customer_table` as of ``as_of``, from the run's
    clean lines (:meth:`OrderLines.behaviour`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> ctx = open_run("03_clustering")                  # doctest: +SKIP
    >>> behaviour = behaviour_for(ctx, ctx.as_of)        # doctest: +SKIP
    """
    return run_lines(ctx).behaviour(as_of, max_channels)
