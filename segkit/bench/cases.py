"""The benchmark cases of ``make bench`` and the data they run on.

Data is generated once into the data folder (``.bench/``) before any timing. Sizes (full /
smoke):

- ``rfm_1m``, ``rfm_10m`` / ``rfm_smoke``: customer-level RFM from order lines in Parquet —
  segkit's out-of-core engine and in-memory path vs the same RFM definition as one DuckDB statement
  on a bare connection (baseline: orders, cancellations matched, buyers), a plain DuckDB GROUP BY
  that matches no cancellation (its ratio is the price of the matching) and a pandas groupby.
  Target: engine within 1.1× of the baseline's time and memory; ≤ 2 GB at 10M.
- ``large_100m`` / ``large_smoke``: the out-of-core engine over a folder of Parquet parts
  (100M lines) with a 2 GB DuckDB memory limit vs the plain DuckDB GROUP BY. Generation (~2.5
  min on 2 cores) plus both runs fit in 10 minutes.
- ``audit_1m``, ``audit_10m`` / ``audit_smoke``: the whole data audit plus the clean table,
  out-of-core (:class:`segkit.data.engine.TransactionLog`, DuckDB limit 1500MB) vs the in-memory path
  (``load_table`` + ``run_audit``, baseline). Target: ≤ 2 GB peak at 10M lines, not slower.
- ``audit_growth`` / ``audit_growth_smoke``: the out-of-core audit at 10M (baseline) and 30M
  lines: the time ratio is the growth for 3× the lines. The audit of 100M lines does not fit the
  10-minute budget of a case on 2 cores, so it is extrapolated from these two sizes.
- ``kproto_20k``, ``kproto_100k``: segkit's k-prototypes vs ``kmodes`` (baseline), same k, init,
  n_init. Target: time ratio ≤ 1/50 at an equal or lower cost.
- ``kmeans_100k``: segkit's k-means path vs scikit-learn's KMeans alone.
- ``clv_100k``: segkit's BG/NBD + Gamma-Gamma (its own scipy fit) vs lifetimes (baseline, a dev
  dependency). Target: the same parameters, not slower.
- ``pipeline_sample``, ``pipeline_1m``: ``segkit run`` end to end vs the runner over trivial
  notebooks. Targets: ≤ 30 s (sample), ≤ 120 s (1M order lines) on 2 cores.
- ``pipeline_growth`` / ``pipeline_growth_smoke``: ``segkit run`` end to end on 3 (baseline) and
  10 copies of the 118k-customer shop (3.5M and 11.8M order lines, as a folder of Parquet parts:
  the out-of-core engine), the largest whole-pipeline size that fits the 10-minute budget of a
  case; the ratios are the growth of time and of the largest kernel's memory for 3.3× the data.
- ``spark_pipeline_10m`` / ``spark_pipeline_smoke``: the relational part of the pipeline (headline,
  RFM base with its counts, purchase days, behaviour: :mod:`segkit.bench.spark`) on 10M order lines:
  segkit's DuckDB path (baseline, results as pandas frames) vs local Spark (``local[2]``: the same
  core queries transpiled, per-customer relations written as Parquet by the executors). Honest
  ratio: local Spark on one 2-core machine is expected to be slower than DuckDB; the case shows by
  how much, and that both compute the same digest.
- ``spark_driver_memory`` / ``spark_driver_memory_smoke``: the same Spark work on 1M (baseline) and
  10M customers of one order each (2M and 20M order lines): the memory ratio is the growth of the
  driver's Python process (the harness measures the worker process; Spark's JVM is another process,
  its peak reported in the result as ``jvm_peak_mb``). Target: below 1.5× for 10× the customers.
  Both Spark cases are long on 2 cores: Spark took about 90 CPU seconds plus 37 per million lines
  in runs at 1M and 3M lines (``docs/SCALE.md``), so some 8 and 14 minutes of CPU for the 10M and
  20M lines of the full sizes (estimated, not run);
  every Spark contender also reports ``cpu_seconds``, a fairer figure than wall time on a shared
  machine.
- ``spark_run_growth``: ``segkit run`` end to end with ``engine.kind: spark`` (``local[2]``) on 1
  (baseline) and 10 copies of a 30k-customer generated shop (30k and 300k customers): the memory
  ratio is the growth of the largest notebook kernel, which is the Spark driver's Python process
  (every notebook's peak in ``peak_memory_mb_by_notebook``). Target: below 1.5× for 10× the
  customers. The sizes are those a local Spark run of the whole pipeline finishes on 2 cores within
  a case's budget; 1M vs 10M customers is measured for the relational part (``spark_driver_memory``).
- ``spark_run_growth_samples``: the same with ``clustering.fit_sample`` and ``lifecycle.holdout_sample``
  20,000 at both sizes (:data:`EQUAL_SAMPLES`): 03's and 04's samples grow with the customers up to their
  200,000 cap in ``spark_run_growth``; here they do not, so the ratio is the growth of everything else
  (what a shop above the cap sees).
- ``pipeline_100m`` (on request only: ``python -m segkit.bench --only pipeline_100m``, about 75
  minutes on 2 cores, so not part of ``make bench``): ``segkit run`` end to end on 10 (baseline)
  and 85 copies of the 118k-customer shop: 11.8M and 100M order lines, 1.18M and 10M customers.
  Shows the whole pipeline at 100M lines on a 24 GB machine: the time ratio for 8.5× the data
  and the largest kernel's memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml

from segkit.bench.harness import Case, Contender
from segkit.core.config import project_root

__all__ = ["rfm_case", "large_case", "audit_case", "audit_growth_case", "kproto_case", "kmeans_case",
    "clv_case", "pipeline_case", "pipeline_growth_case", "spark_pipeline_case", "spark_driver_memory_case", "spark_run_growth_case",
    "EQUAL_SAMPLES", "case_plan", "build_cases"]

#: Orders per customer of the driver-memory case's data (:func:`segkit.bench.data.customer_lines_parquet`).
DRIVER_CASE_ORDERS = 1


def _lines(data_dir: Path, n: int, files: int = 1) -> Path:
    from segkit.bench.data import order_lines_parquet

    name = f"lines_{n}" + (f"_x{files}" if files > 1 else "") + ("" if files > 1 else ".parquet")
    path = data_dir / name
    if not path.exists():
        order_lines_parquet(path, n, files=files)
    return path


def _shop_config(data_dir: Path, n_customers: int) -> Path:
    """A generated shop (``segkit.data.datasets``) written as CSV + a config pointing at it."""
    from segkit.data.datasets import generate_shop, write_sample

    folder = data_dir / f"shop_{n_customers}"
    config = folder / "config.yml"
    if not config.exists():
        write_sample(folder, generate_shop(n_customers=n_customers, seed=42))
        config.write_text("data:\n  transactions: transactions.csv\n  customers: customers.csv\n"
                          "  campaign: campaign.csv\nrun:\n  seed: 42\n")
    return config


def rfm_case(data_dir: Path, n: int, name: str, repeats: int, pandas: bool = True) -> Case:
    path = str(_lines(data_dir, n))
    contenders = [Contender("duckdb_sql_same_definition", "segkit.bench.rfm:duckdb_sql_same_definition", {"path": path}),
                  Contender("segkit_engine", "segkit.bench.rfm:segkit_engine", {"path": path}),
                  Contender("duckdb_sql", "segkit.bench.rfm:duckdb_sql", {"path": path})]
    if pandas:
        contenders += [Contender("segkit_in_memory", "segkit.bench.rfm:segkit_in_memory", {"path": path}),
                       Contender("pandas_groupby", "segkit.bench.rfm:pandas_groupby", {"path": path})]
    return Case(name, contenders, repeats=repeats,
                description=f"customer-level RFM from {n:,} order lines (Parquet)",
                target="segkit_engine within 1.1× of duckdb_sql_same_definition in time and memory; ≤ 2 GB peak "
                       "at 10M lines. duckdb_sql (a GROUP BY that matches no cancellation) is shown for the price "
                       "of the cancellation matching, not a target")


def large_case(data_dir: Path, n: int, name: str, files: int, repeats: int) -> Case:
    path = str(_lines(data_dir, n, files=files))
    return Case(name, [
        Contender("duckdb_sql", "segkit.bench.rfm:duckdb_sql", {"path": path + "/*.parquet"}),
        Contender("segkit_engine", "segkit.bench.large:segkit_engine_bounded", {"path": path}),
    ], repeats=repeats, description=f"out-of-core RFM over {n:,} order lines in {files} Parquet files",
        target="completes on the 24 GB machine with bounded memory (DuckDB limit 2 GB, spills to disk)")


def audit_case(data_dir: Path, n: int, name: str, repeats: int) -> Case:
    path = str(_lines(data_dir, n))
    return Case(name, [
        Contender("pandas_audit", "segkit.bench.large:pandas_audit", {"path": path}),
        Contender("segkit_engine_audit", "segkit.bench.large:segkit_audit_bounded", {"path": path}),
    ], repeats=repeats, description=f"data audit + clean table of {n:,} order lines (Parquet): out-of-core vs in memory",
        target="segkit_engine_audit ≤ 2 GB peak at 10M lines and no slower than the in-memory audit")


def audit_growth_case(data_dir: Path, sizes: tuple[int, int], name: str) -> Case:
    small, large = sizes
    return Case(name, [
        Contender(f"segkit_engine_audit_{small:,}", "segkit.bench.large:segkit_audit_bounded",
                  {"path": str(_lines(data_dir, small))}),
        Contender(f"segkit_engine_audit_{large:,}", "segkit.bench.large:segkit_audit_bounded",
                  {"path": str(_lines(data_dir, large))}),
    ], repeats=1, description=f"growth of the out-of-core audit: {small:,} vs {large:,} order lines "
                              f"({large / small:g}× the lines)",
        target=f"time ratio ≤ {large / small:g} (linear or better); peak memory bounded (DuckDB limit 1500MB)")


def kproto_case(n: int, name: str, repeats: int) -> Case:
    kw = {"n_rows": n, "seed": 0}
    return Case(name, [Contender("kmodes", "segkit.bench.cluster:kmodes_kprototypes", kw),
                       Contender("segkit", "segkit.bench.cluster:segkit_kprototypes", kw)],
                repeats=repeats, description=f"k-prototypes, {n:,} rows (3 numeric + 3 categorical), k=5, n_init=1",
                target="segkit time ratio ≤ 0.02 (≥ 50× faster) with cost ≤ kmodes' cost")


def kmeans_case(n: int, name: str, repeats: int) -> Case:
    kw = {"n_rows": n, "seed": 0}
    return Case(name, [Contender("sklearn_kmeans", "segkit.bench.cluster:sklearn_kmeans", kw),
                       Contender("segkit", "segkit.bench.cluster:segkit_kmeans", kw)],
                repeats=repeats, description=f"k-means, {n:,} rows, k=5",
                target="segkit's path adds little over scikit-learn alone (ratio ≈ 1)")


def clv_case(data_dir: Path, n: int, name: str, repeats: int) -> Case:
    from segkit.bench.clv import write_summaries

    path = data_dir / f"clv_{n}.parquet"
    if not path.exists():
        write_summaries(path, n)
    kw = {"path": str(path)}
    return Case(name, [Contender("lifetimes", "segkit.bench.clv:lifetimes_direct", kw),
                       Contender("segkit", "segkit.bench.clv:segkit_clv", kw)],
                repeats=repeats, description=f"BG/NBD + Gamma-Gamma maximum-likelihood fit, {n:,} customers",
                target="same parameters as lifetimes (the peer), time ratio ≤ 1")


def pipeline_case(data_dir: Path, config: Path, name: str, what: str, repeats: int, target: str) -> Case:
    from segkit.bench.pipeline import trivial_notebooks

    trivial = trivial_notebooks(data_dir / "trivial_notebooks")
    return Case(name, [
        Contender("runner_overhead", "segkit.bench.pipeline:runner_overhead",
                  {"config": str(config), "notebooks_dir": str(trivial)}),
        Contender("segkit_run", "segkit.bench.pipeline:segkit_run", {"config": str(config)}),
    ], repeats=repeats, description=f"segkit run end to end on {what}", target=target)


def _tiled_config(data_dir: Path, copies: int, base_customers: int) -> Path:
    """``copies`` copies of the generated shop of ``base_customers`` (:func:`segkit.bench.data.tiled_shop`)."""
    from segkit.bench.data import tiled_shop

    config = data_dir / f"tiled_{base_customers}_x{copies}" / "config.yml"
    if not config.exists():
        base = _shop_config(data_dir, base_customers).parent
        tiled_shop(config.parent, base, copies)
    return config


def pipeline_growth_case(data_dir: Path, base_customers: int, copies: tuple[int, int], name: str) -> Case:
    """``segkit run`` on two sizes of a tiled shop (out-of-core engine): growth of time and memory."""
    small, large = copies
    return Case(name, [
        Contender(f"segkit_run_x{small}", "segkit.bench.pipeline:segkit_run",
                  {"config": str(_tiled_config(data_dir, small, base_customers))}),
        Contender(f"segkit_run_x{large}", "segkit.bench.pipeline:segkit_run",
                  {"config": str(_tiled_config(data_dir, large, base_customers))}),
    ], repeats=1, description=f"segkit run end to end on {small} and {large} copies of a generated shop "
                              f"({base_customers:,} customers each; transactions as a folder of Parquet parts, "
                              "so the out-of-core engine)",
        target=f"time ratio ≤ {large / small:g} (linear or better); peak memory (largest kernel) grows no faster "
               "than the data")


#: The samples of ``spark_run_growth_samples``: below the smaller shop's customers, so equal at both sizes.
EQUAL_SAMPLES: dict[str, dict[str, int]] = {"clustering": {"fit_sample": 20_000},
                                            "lifecycle": {"holdout_sample": 20_000}}


def _spark_config(config: Path, sections: dict[str, dict] | None = None, name: str = "spark.yml") -> Path:
    """``name`` beside ``config``: the same shop with ``engine.kind: spark`` on ``local[2]``, with
    :data:`segkit.bench.spark.SPARK_BENCH_CONF` (4 GB of JVM heap: local mode's default 1 GB stalls in
    garbage collection at 300,000 customers), and ``sections`` (whole config sections) added."""
    from segkit.bench.spark import SPARK_BENCH_CONF

    spark = config.with_name(name)
    settings = yaml.safe_load(config.read_text()) or {}
    settings.update(sections or {})
    settings["engine"] = {"kind": "spark", "spark": {"master": "local[2]", "conf": dict(SPARK_BENCH_CONF)}}
    text = yaml.safe_dump(settings, sort_keys=False)
    if not spark.exists() or spark.read_text() != text:
        spark.write_text(text)
    return spark


def spark_run_growth_case(data_dir: Path, base_customers: int, copies: tuple[int, int], name: str,
                          equal_samples: bool = False) -> Case:
    """``segkit run`` with ``engine.kind: spark`` on two sizes of a tiled shop: the Spark driver's growth.

    The kernels of the notebooks are the Spark drivers' Python processes; each one's peak is in
    ``run.json`` and the contender's ``peak_mb`` is the largest (:func:`segkit.bench.pipeline.segkit_run`).
    With ``equal_samples`` the clustering and holdout samples are :data:`EQUAL_SAMPLES` at both sizes, so
    the ratio leaves out their growth up to the default cap (200,000 customers) and shows the rest.
    """
    small, large = copies
    sections, file, what = (EQUAL_SAMPLES, "spark_samples.yml", "; clustering.fit_sample and lifecycle.holdout_sample "
                            "20,000 at both sizes") if equal_samples else (None, "spark.yml", "")
    suffix = "_samples" if equal_samples else ""
    return Case(name, [
        Contender(f"segkit_run_spark{suffix}_x{small}", "segkit.bench.pipeline:segkit_run",
                  {"config": str(_spark_config(_tiled_config(data_dir, small, base_customers), sections, file))}),
        Contender(f"segkit_run_spark{suffix}_x{large}", "segkit.bench.pipeline:segkit_run",
                  {"config": str(_spark_config(_tiled_config(data_dir, large, base_customers), sections, file))}),
    ], repeats=1, description=f"segkit run end to end on local Spark (local[2]) on {small} and {large} copies of a "
                              f"generated shop ({base_customers:,} customers each{what})",
        target=f"memory ratio < 1.5 for {large / small:g}x the customers (the largest notebook kernel, i.e. Spark "
               "driver's Python process; per notebook in peak_memory_mb_by_notebook)")


def _spark_kwargs(path: Path, smoke: bool) -> dict:
    from segkit.bench.spark import SPARK_BENCH_CONF

    return {"path": str(path)} if smoke else {"path": str(path), "conf": SPARK_BENCH_CONF}


def spark_pipeline_case(data_dir: Path, n: int, name: str, repeats: int, smoke: bool = False) -> Case:
    """The relational part of the pipeline on ``n`` order lines: DuckDB (baseline) vs local Spark
    (:data:`segkit.bench.spark.SPARK_BENCH_CONF` unless ``smoke``)."""
    path = _lines(data_dir, n)
    return Case(name, [Contender("duckdb_relational", "segkit.bench.spark:duckdb_relational", {"path": str(path)}),
                       Contender("spark_relational", "segkit.bench.spark:spark_relational",
                                 _spark_kwargs(path, smoke))],
                repeats=repeats, description=f"headline, RFM with info, purchase days and behaviour of {n:,} order "
                                             "lines (Parquet): segkit's DuckDB path vs local Spark (local[2])",
                target="the same digest on both engines; the time ratio is reported as measured (local Spark on "
                       "one machine is expected to be slower than DuckDB)")


def _customer_lines(data_dir: Path, n_customers: int) -> Path:
    from segkit.bench.data import customer_lines_parquet

    path = data_dir / f"customers_{n_customers}_x{DRIVER_CASE_ORDERS}.parquet"
    if not path.exists():
        customer_lines_parquet(path, n_customers, DRIVER_CASE_ORDERS)
    return path


def spark_driver_memory_case(data_dir: Path, sizes: tuple[int, int], name: str, smoke: bool = False) -> Case:
    """The Spark contender of :func:`spark_pipeline_case` on two numbers of customers: the driver's growth."""
    small, large = sizes
    return Case(name, [
        Contender(f"spark_relational_{small:,}_customers", "segkit.bench.spark:spark_relational",
                  _spark_kwargs(_customer_lines(data_dir, small), smoke)),
        Contender(f"spark_relational_{large:,}_customers", "segkit.bench.spark:spark_relational",
                  _spark_kwargs(_customer_lines(data_dir, large), smoke)),
    ], repeats=1, description=f"peak memory of the Spark driver's Python process: {small:,} vs {large:,} customers "
                              f"({DRIVER_CASE_ORDERS} order{'' if DRIVER_CASE_ORDERS == 1 else 's'} each; "
                              "per-customer relations written by the executors)",
        target=f"memory ratio < 1.5 for {large / small:g}× the customers (the driver's Python process; the JVM's "
               "peak is in the result, jvm_peak_mb)")


def case_plan(data_dir: Path, smoke: bool = False,
              only: list[str] | None = None) -> list[tuple[str, Callable[[], Case]]]:
    """The cases to run, by name, each with the function that generates its data and builds it.

    ``only`` keeps the cases whose names start with one of its prefixes; the cases run on
    request only (``pipeline_100m``) are included when ``only`` names them exactly.
    """
    sample_config = project_root() / "data" / "configs" / "sample.yml"
    if smoke:
        plan = [
            ("rfm_smoke", lambda: rfm_case(data_dir, 20_000, "rfm_smoke", 1)),
            ("large_smoke", lambda: large_case(data_dir, 50_000, "large_smoke", 2, 1)),
            ("audit_smoke", lambda: audit_case(data_dir, 20_000, "audit_smoke", 1)),
            ("audit_growth_smoke", lambda: audit_growth_case(data_dir, (20_000, 60_000), "audit_growth_smoke")),
            ("kproto_smoke", lambda: kproto_case(400, "kproto_smoke", 1)),
            ("kmeans_smoke", lambda: kmeans_case(1_000, "kmeans_smoke", 1)),
            ("clv_smoke", lambda: clv_case(data_dir, 2_000, "clv_smoke", 1)),
            ("pipeline_smoke", lambda: pipeline_case(data_dir, _shop_config(data_dir, 300), "pipeline_smoke",
                                                     "a 300-customer generated shop", 1, "")),
            ("pipeline_growth_smoke", lambda: pipeline_growth_case(data_dir, 300, (1, 2), "pipeline_growth_smoke")),
            ("spark_pipeline_smoke", lambda: spark_pipeline_case(data_dir, 20_000, "spark_pipeline_smoke", 1,
                                                                 smoke=True)),
            ("spark_driver_memory_smoke", lambda: spark_driver_memory_case(data_dir, (500, 5_000),
                                                                           "spark_driver_memory_smoke", smoke=True)),
        ]
    else:
        plan = [
            ("rfm_1m", lambda: rfm_case(data_dir, 1_000_000, "rfm_1m", 5)),
            ("rfm_10m", lambda: rfm_case(data_dir, 10_000_000, "rfm_10m", 3)),
            ("large_100m", lambda: large_case(data_dir, 100_000_000, "large_100m", 20, 1)),
            ("audit_1m", lambda: audit_case(data_dir, 1_000_000, "audit_1m", 3)),
            ("audit_10m", lambda: audit_case(data_dir, 10_000_000, "audit_10m", 1)),
            ("audit_growth", lambda: audit_growth_case(data_dir, (10_000_000, 30_000_000), "audit_growth")),
            ("kproto_20k", lambda: kproto_case(20_000, "kproto_20k", 3)),
            ("kproto_100k", lambda: kproto_case(100_000, "kproto_100k", 1)),
            ("kmeans_100k", lambda: kmeans_case(100_000, "kmeans_100k", 3)),
            ("clv_100k", lambda: clv_case(data_dir, 100_000, "clv_100k", 3)),
            ("pipeline_sample", lambda: pipeline_case(data_dir, sample_config, "pipeline_sample",
                                                      "the bundled sample", 3, "segkit_run ≤ 30 s on 2 cores")),
            ("pipeline_1m", lambda: pipeline_case(data_dir, _shop_config(data_dir, 118_000), "pipeline_1m",
                                                  "a generated shop of ~1M order lines / ~118k customers", 1,
                                                  "segkit_run ≤ 120 s on 2 cores")),
            ("pipeline_growth", lambda: pipeline_growth_case(data_dir, 118_000, (3, 10), "pipeline_growth")),
            ("spark_pipeline_10m", lambda: spark_pipeline_case(data_dir, 10_000_000, "spark_pipeline_10m", 1)),
            ("spark_driver_memory", lambda: spark_driver_memory_case(data_dir, (1_000_000, 10_000_000),
                                                                     "spark_driver_memory")),
            ("spark_run_growth", lambda: spark_run_growth_case(data_dir, 30_000, (1, 10), "spark_run_growth")),
            ("spark_run_growth_samples", lambda: spark_run_growth_case(data_dir, 30_000, (1, 10),
                                                                       "spark_run_growth_samples", equal_samples=True)),
        ]
    # Too long for make bench: run only when named exactly in --only.
    on_request = [] if smoke else [
        ("pipeline_100m", lambda: pipeline_growth_case(data_dir, 118_000, (10, 85), "pipeline_100m")),
    ]
    plan += [(name, build) for name, build in on_request if only and name in only]
    return [(name, build) for name, build in plan if not only or any(name.startswith(p) for p in only)]


def build_cases(data_dir: Path, smoke: bool = False, only: list[str] | None = None,
                log: Callable[[str], None] = print) -> list[Case]:
    """Generate the data (cached in ``data_dir``) and return the cases to run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, build in case_plan(data_dir, smoke, only):
        log(f"preparing {name} …")
        cases.append(build())
    return cases
