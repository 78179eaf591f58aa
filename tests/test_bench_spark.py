"""The Spark cases of ``make bench`` run in smoke mode (their own test file: xdist gives it a worker of
its own, and the JVM it starts is not the test session's). No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from segkit.bench.data import customer_lines_parquet
from segkit.bench.spark import duckdb_relational


def test_the_spark_pipeline_smoke_case_computes_duckdbs_digest_on_spark(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "segkit.bench", "--smoke", "--out", str(out), "--data", str(data),
                           "--only", "spark_pipeline"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cases = {c["case"]: c for c in json.loads((out / "results.json").read_text())["cases"]}
    assert set(cases) == {"spark_pipeline_smoke"}
    relational = cases["spark_pipeline_smoke"]["contenders"]
    assert all(c["ok"] for c in relational.values()), relational
    duck, spark = relational["duckdb_relational"]["result"], relational["spark_relational"]["result"]
    assert spark["digest"] == duck["digest"]  # same counts, money to the cent
    digest = duck["digest"]
    assert digest["buyers"] > 1000 and digest["purchase_days"] > digest["buyers"] and digest["median_gap_total"] > 0
    assert duck["cpu_seconds"] > 0 and spark["session_seconds"] > 0
    if sys.platform == "linux":  # the JVM's CPU time read from /proc, added to the driver's own
        assert spark["cpu_seconds"] > spark["jvm_cpu_seconds"] > 0
        assert spark["jvm_peak_mb"] > spark["driver_python_peak_mb"]  # local mode: the JVM does the work
    # the harness's peak is the worker's own process: the driver's Python, not the JVM beside it
    assert abs(relational["spark_relational"]["median_peak_mb"] - spark["driver_python_peak_mb"]) \
        <= 0.05 * spark["driver_python_peak_mb"]


def test_the_driver_memory_case_data_grow_in_customers_one_purchase_order_each(tmp_path):
    """The data of ``spark_driver_memory`` (same contender as above on other data): each customer has
    exactly one order, so buyers = purchase orders = customers whose order nets above zero."""
    for customers in (500, 5_000):
        path = customer_lines_parquet(tmp_path / f"c{customers}.parquet", customers, 1)
        net = pd.read_parquet(path).groupby("customer_id")["amount"].sum()
        assert len(net) == customers
        counted = duckdb_relational(str(path))["digest"]
        assert counted["buyers"] == counted["purchase_orders"] == int((net > 0).sum()) > 0.9 * customers
