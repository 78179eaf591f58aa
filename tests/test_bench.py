"""The benchmark suite runs end to end at tiny sizes (no timing assertions: numbers of a smoke
run mean nothing), and its contenders agree on what they computed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from segkit.bench.harness import Case, Contender, run_case


@pytest.mark.slow
def test_make_bench_smoke_runs_every_case_and_the_contenders_agree(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "segkit.bench", "--smoke", "--out", str(out), "--data", str(data),
                           "--only", ",".join(NON_SPARK_CASES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    cases = {c["case"]: c for c in doc["cases"]}
    from segkit.bench.cases import case_plan  # every smoke case is run here or in test_bench_spark.py
    planned = {name for name, _ in case_plan(data, smoke=True)}
    assert set(cases) == {n for n in planned if not n.startswith("spark")} and planned - set(cases) == {
        "spark_pipeline_smoke", "spark_driver_memory_smoke"}
    assert set(cases) >= {"rfm_smoke", "large_smoke", "kproto_smoke", "kmeans_smoke", "clv_smoke", "pipeline_smoke",
                          "pipeline_growth_smoke"}
    for case in cases.values():
        base = case["contenders"][case["baseline"]]
        assert base["time_ratio_vs_baseline"] == 1.0
        for name, c in case["contenders"].items():
            assert c["ok"], (case["case"], name, c.get("error"))
            assert c["median_seconds"] > 0 and c["median_peak_mb"] > 0
    rfm = cases["rfm_smoke"]["contenders"]
    assert rfm["segkit_engine"]["result"] == rfm["segkit_in_memory"]["result"]  # same RFM base
    assert rfm["segkit_engine"]["result"] == rfm["duckdb_sql_same_definition"]["result"]  # the same definition
    assert cases["rfm_smoke"]["baseline"] == "duckdb_sql_same_definition"
    assert rfm["duckdb_sql"]["result"] == rfm["pandas_groupby"]["result"]
    clv = cases["clv_smoke"]["contenders"]
    ours, theirs = clv["segkit"]["result"], clv["lifetimes"]["result"]  # same maximum-likelihood fit
    for model in ("bgnbd", "gamma_gamma"):  # (optimiser tolerances may differ: 1e-7 vs 1e-6)
        assert ours[model] == pytest.approx(theirs[model], rel=0.01), model
    pipe = cases["pipeline_smoke"]["contenders"]["segkit_run"]["result"]
    assert pipe["status"] == "complete" or pipe["status"] == "ok"
    assert len(pipe["seconds_by_notebook"]) == 5
    if sys.platform == "linux":  # the case's peak is the largest process of the run: a notebook kernel
        assert len(pipe["peak_memory_mb_by_notebook"]) == 5
        assert cases["pipeline_smoke"]["contenders"]["segkit_run"]["median_peak_mb"] >= pipe["peak_mb"] > 50
    growth = cases["pipeline_growth_smoke"]["contenders"]
    for name in ("segkit_run_x1", "segkit_run_x2"):  # tiled shop: a folder of parts, the out-of-core engine
        assert growth[name]["result"]["status"] in ("complete", "ok"), growth[name]
        assert len(growth[name]["result"]["seconds_by_notebook"]) == 5
    table = (out / "results.md").read_text()
    assert "SMOKE RUN" in table and table.count("| kproto_smoke |") == 2


#: The case families of the smoke run above; Spark's run in tests/test_bench_spark.py (own worker, own JVM).
NON_SPARK_CASES = ("rfm", "large", "audit", "kproto", "kmeans", "clv", "pipeline")


def test_the_100m_line_pipeline_case_runs_only_when_named(monkeypatch, tmp_path):
    from segkit.bench import cases as bench_cases

    monkeypatch.setattr(bench_cases, "_tiled_config", lambda data_dir, copies, base: tmp_path / f"x{copies}.yml")
    names = lambda **kw: [name for name, _ in bench_cases.case_plan(tmp_path, **kw)]
    assert "pipeline_growth" in names() and "pipeline_100m" not in names()  # make bench: not run
    assert names(only=["pipeline"]) == ["pipeline_sample", "pipeline_1m", "pipeline_growth"]
    assert names(only=["pipeline_100m"]) == ["pipeline_100m"]
    assert names(smoke=True, only=["pipeline_100m"]) == []
    (case,) = bench_cases.build_cases(tmp_path, only=["pipeline_100m"], log=lambda _: None)
    assert [c.name for c in case.contenders] == ["segkit_run_x10", "segkit_run_x85"]
    assert [c.kwargs["config"] for c in case.contenders] == [str(tmp_path / "x10.yml"), str(tmp_path / "x85.yml")]


def write_shop_config(folder: Path) -> Path:
    """A shop's config.yml as the tiled shops have it (their data paths are relative)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text("data:\n  transactions: transactions\n  customers: customers.csv\nrun:\n  seed: 42\n")
    return folder / "config.yml"


def test_the_spark_cases_compare_duckdb_with_spark_and_one_driver_at_two_sizes(monkeypatch, tmp_path):
    from segkit.bench import cases as bench_cases

    monkeypatch.setattr(bench_cases, "_lines", lambda data_dir, n, files=1: tmp_path / f"lines_{n}.parquet")
    monkeypatch.setattr(bench_cases, "_customer_lines", lambda data_dir, n: tmp_path / f"customers_{n}.parquet")
    monkeypatch.setattr(bench_cases, "_tiled_config", lambda data_dir, copies, base: write_shop_config(
        tmp_path / f"tiled_{base}_x{copies}"))
    full = {case.name: case for case in bench_cases.build_cases(tmp_path, only=["spark"], log=lambda _: None)}
    assert list(full) == ["spark_pipeline_10m", "spark_driver_memory", "spark_run_growth", "spark_run_growth_samples"]
    pipeline = full["spark_pipeline_10m"].contenders
    assert [(c.name, c.func) for c in pipeline] == [("duckdb_relational", "segkit.bench.spark:duckdb_relational"),
                                                    ("spark_relational", "segkit.bench.spark:spark_relational")]
    assert {c.kwargs["path"] for c in pipeline} == {str(tmp_path / "lines_10000000.parquet")}
    assert pipeline[1].kwargs["conf"]["spark.driver.memory"] == "4g"  # Spark's 1 GB default is too small there
    driver = full["spark_driver_memory"].contenders
    assert [c.func for c in driver] == ["segkit.bench.spark:spark_relational"] * 2
    assert [c.kwargs["path"] for c in driver] == [str(tmp_path / "customers_1000000.parquet"),
                                                  str(tmp_path / "customers_10000000.parquet")]
    assert "< 1.5" in full["spark_driver_memory"].target
    run = full["spark_run_growth"]  # segkit run on Spark, 30k and 300k customers: the kernels (drivers) compared
    assert [(c.name, c.func) for c in run.contenders] == [("segkit_run_spark_x1", "segkit.bench.pipeline:segkit_run"),
                                                          ("segkit_run_spark_x10", "segkit.bench.pipeline:segkit_run")]
    for contender, copies in zip(run.contenders, (1, 10)):
        config = yaml.safe_load(Path(contender.kwargs["config"]).read_text())
        assert Path(contender.kwargs["config"]).parent == tmp_path / f"tiled_30000_x{copies}"
        assert config["engine"] == {"kind": "spark", "spark": {"master": "local[2]", "conf": {
            "spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "8"}}}  # 1 GB stalls in GC at 300k
        assert config["data"] == {"transactions": "transactions", "customers": "customers.csv"}  # the shop's, kept
        assert "clustering" not in config and "lifecycle" not in config  # the default samples (capped at 200,000)
    assert "< 1.5" in run.target
    equal = full["spark_run_growth_samples"]  # the same runs with both samples 20,000 at both sizes
    assert [c.name for c in equal.contenders] == ["segkit_run_spark_samples_x1", "segkit_run_spark_samples_x10"]
    for contender, copies in zip(equal.contenders, (1, 10)):
        path = Path(contender.kwargs["config"])
        assert path == tmp_path / f"tiled_30000_x{copies}" / "spark_samples.yml"
        config = yaml.safe_load(path.read_text())
        assert config["clustering"] == {"fit_sample": 20000} and config["lifecycle"] == {"holdout_sample": 20000}
        assert config["engine"]["spark"]["conf"]["spark.driver.memory"] == "4g"
        assert config["data"] == {"transactions": "transactions", "customers": "customers.csv"}
    assert "< 1.5" in equal.target and "20,000" in equal.description
    smoke = [name for name, _ in bench_cases.case_plan(tmp_path, smoke=True, only=["spark"])]
    assert smoke == ["spark_pipeline_smoke", "spark_driver_memory_smoke"]


def test_a_failing_contender_is_reported_not_hidden():
    case = Case("c", [Contender("base", "statistics:mean", {"data": [1.0, 3.0]}),
                      Contender("broken", "statistics:mean", {"data": []})], repeats=2)
    res = run_case(case)
    assert res["contenders"]["base"]["ok"] and res["contenders"]["base"]["result"] == 2.0
    broken = res["contenders"]["broken"]
    assert not broken["ok"] and "StatisticsError" in broken["error"]
