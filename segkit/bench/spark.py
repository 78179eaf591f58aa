"""Spark contenders: the relational part of the pipeline on local Spark vs segkit's DuckDB path.

The relational part is what the steps read from the order lines before any model is fitted: the
headline numbers (:data:`~segkit.data.relational.HEADLINE`), the RFM base with its counts
(:data:`~segkit.data.relational.RFM_BASE`, :data:`~segkit.data.relational.RFM_COUNTS`,
:data:`~segkit.data.relational.LATER_COUNTS`), the purchase days that the CLV summary reads
(:data:`~segkit.data.relational.PURCHASE_DAYS`) and the behaviour features
(:data:`~segkit.data.relational.BEHAVIOUR`, :data:`~segkit.data.relational.CHANNEL_ORDERS`), all as
of the day after the last line.

- :func:`duckdb_relational` (baseline): segkit's DuckDB path over the Parquet file
  (:class:`segkit.data.engine.OrderLines`, memory limit 1500MB as in ``engine.yml``); the
  per-customer tables come back to Python as pandas frames, as the steps use them today.
- :func:`spark_relational`: the same core queries on Spark (:class:`segkit.data.spark.SparkLines`,
  transpiled by sqlglot); the per-customer relations are written as Parquet datasets by the
  executors and only one-row aggregates (headline, counts, digests) reach the driver, which is how
  a cluster run keeps its driver small (``docs/SCALE.md``).

Both return the same ``digest`` (customers, money totals, row counts), so a case can check that
they computed the same thing, and ``cpu_seconds``: the CPU time of the work (Spark: the Python process
and the JVM), which a busy shared machine inflates less than wall time. :func:`spark_relational`
adds the peak memory of the driver's Python process and of the JVM (local mode: the JVM is the
Spark driver and its executors in one process).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from segkit.core.dates import day_after
from segkit.data.engine import OrderLines
from segkit.data.relational import BEHAVIOUR, CHANNEL_ORDERS, HEADLINE, LAST_LINE_DATE, LATER_COUNTS, PURCHASE_DAYS, \
    RFM_BASE, RFM_COUNTS, Query

__all__ = ["DUCKDB_MEMORY_LIMIT", "SPARK_BENCH_CONF", "PER_CUSTOMER", "relational_digest", "duckdb_relational",
           "spark_relational", "process_peak_mb", "process_cpu_seconds", "children_usage"]

DUCKDB_MEMORY_LIMIT = "1500MB"  # the engine.yml default
#: Spark settings of the full-size cases: the local JVM (driver and executors in one) gets 4 GB of heap
#: (Spark's default is 1 GB), and shuffles 8 partitions (segkit's local default, 2, suits small data).
SPARK_BENCH_CONF: dict[str, str] = {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "8"}
#: The per-customer relations of the relational part: written by the executors on Spark.
PER_CUSTOMER: tuple[Query, ...] = (RFM_BASE, PURCHASE_DAYS, BEHAVIOUR, CHANNEL_ORDERS)


def relational_digest(buyers: int, monetary_total: float, purchase_days: int, purchase_day_amount: float,
                      gap_total: float, channel_rows: int, net_revenue: float, purchase_orders: int) -> dict:
    """What both contenders computed, rounded so that engines agree: counts exact, money to cents.

    ``gap_total`` is the sum over buyers of the median days between purchase days (behaviour)."""
    return {"buyers": int(buyers), "monetary_total": round(float(monetary_total), 2),
            "purchase_days": int(purchase_days), "purchase_day_amount": round(float(purchase_day_amount), 2),
            "median_gap_total": round(float(gap_total), 2), "channel_rows": int(channel_rows),
            "net_revenue": round(float(net_revenue), 2), "purchase_orders": int(purchase_orders)}


def duckdb_relational(path: str) -> dict:
    """Baseline: headline, RFM with info, purchase days and behaviour through
    :class:`segkit.data.engine.OrderLines` (DuckDB over the file, results as pandas frames)."""
    lines = OrderLines(path, memory_limit=DUCKDB_MEMORY_LIMIT)
    headline = lines.headline()
    rfm, info = lines.rfm_with_info()
    days = lines.purchase_days(info["as_of"])
    behaviour = lines.behaviour(info["as_of"], rfm=rfm)
    channels = lines.run(lambda executor: len(executor.run(CHANNEL_ORDERS, {"as_of": info["as_of"].to_pydatetime()})))
    digest = relational_digest(len(rfm), rfm["monetary_total"].sum(), len(days), days["amount"].sum(),
                               behaviour["median_days_between_orders"].sum(),
                               channels, headline["net_revenue"], info["purchase_orders"])
    return {"digest": digest, "cpu_seconds": round(process_cpu_seconds(), 1)}


def process_peak_mb() -> float:
    """This process's own peak resident memory (MB), children excluded."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used, children excluded."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_usage() -> tuple[float | None, float | None]:
    """The largest peak resident memory (MB) among this process's running children and the CPU
    seconds they have used together (Linux ``/proc``: ``VmHWM``, ``utime + stime``); (None, None)
    where ``/proc`` lists no children. Read before the children exit: a child that the process never
    waits for (Spark's JVM) is not in the process's resource usage.

    On a shared machine CPU seconds say more than wall seconds: a process that waits for a core
    uses none."""
    peaks, cpu = [], 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for listing in Path("/proc/self/task").glob("*/children"):
        for pid in listing.read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
            fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of stat
    return (max(peaks), cpu) if peaks else (None, None)


def spark_relational(path: str, master: str = "local[2]", conf: dict[str, str] | None = None) -> dict:
    """The same queries on Spark (``master``, more settings in ``conf``): per-customer relations
    written as Parquet by the executors; one-row results and digests collected. Adds ``session_seconds`` (starting the
    session and its JVM, part of the timed work), ``driver_python_peak_mb`` and ``jvm_peak_mb``."""
    from segkit.data.spark import SparkLines, spark_session

    started = time.perf_counter()
    session = spark_session(master, conf)
    session_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="segkit-bench-spark-") as out:
        lines = SparkLines(path, session=session)
        headline = lines.run(HEADLINE).iloc[0]
        (last,) = lines.first_row(LAST_LINE_DATE)
        params: dict[str, Any] = {"as_of": day_after(pd.Timestamp(last))}
        counts = lines.run(RFM_COUNTS, params).iloc[0]
        lines.run(LATER_COUNTS, params)
        written = {}
        for query in PER_CUSTOMER:
            folder = str(Path(out) / query.name)
            lines.frame(query, params).write.parquet(folder)
            written[query.name] = lines.session.read.parquet(folder)
        rfm = written[RFM_BASE.name].selectExpr("count(*) AS n", "sum(monetary_total) AS total").first()
        days = written[PURCHASE_DAYS.name].selectExpr("count(*) AS n", "sum(amount) AS total").first()
        gaps = written[BEHAVIOUR.name].join(written[RFM_BASE.name], "customer_id", "left_semi") \
            .selectExpr("sum(median_days_between_orders) AS total").first()
        digest = relational_digest(rfm["n"], rfm["total"] or 0.0, days["n"], days["total"] or 0.0,
                                   gaps["total"] or 0.0, written[CHANNEL_ORDERS.name].count(),
                                   headline["net_revenue"], counts["purchase_orders"])
    jvm_peak, jvm_cpu = children_usage()
    return {"digest": digest, "session_seconds": round(session_seconds, 1),
            "driver_python_peak_mb": round(process_peak_mb(), 1), "jvm_peak_mb": _rounded(jvm_peak),
            "cpu_seconds": round(process_cpu_seconds() + (jvm_cpu or 0.0), 1), "jvm_cpu_seconds": _rounded(jvm_cpu)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
