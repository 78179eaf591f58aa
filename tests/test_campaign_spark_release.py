"""Notebook 05 on Spark leaves nothing of its own held on the executors (issue 17, review).

05 holds the campaign rows, each send's RFM bases and purchase days, each send's stage values, customer table and
cluster names, and the labels at each send (local checkpoints and persisted frames) while it evaluates. Once the
cell sums are collected, and when any step fails, :func:`segkit.steps.campaign.evaluate_on_spark` releases them:
the Spark session then holds no persisted RDD that 05 made. The sends are registered once, so the three label
dimensions read one computation of the send histories. What the run's order lines hold for every step
(:meth:`segkit.data.spark.SparkLines.materialise`: the orders and cancellation matches several tables read, kept
for reuse by design) is told apart by watching ``materialise``.

One small shop (300 customers) run through 01-04 on DuckDB, then 05 on Spark (the shared local session) from the
same run folder: once to the end, and once per failure point (the lifecycle refit, the second send's customer
table, the cell sums).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from segkit.core.errors import DataError
from segkit.data.datasets import generate_shop, write_sample
from segkit.steps.audit import build_audit_artifacts
from segkit.steps.campaign import build_campaign_artifacts
from segkit.steps.cluster import build_cluster_artifacts
from segkit.steps.lifecycle import build_lifecycle_artifacts
from segkit.steps.pipeline import open_run
from segkit.steps.rfm import build_rfm_artifacts
from tests.run_helpers import shop_config

DIMENSIONS = {"rfm_segment", "lifecycle_stage", "cluster_name"}


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run folder with 01-04's artifacts (DuckDB) and a config of the same shop on Spark (``local[2]``, the
    tests' shared session)."""
    folder = tmp_path_factory.mktemp("release_shop")
    write_sample(folder, generate_shop(n_customers=300, seed=11))
    duckdb = shop_config(folder, folder, "duckdb")
    run = folder / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for notebook, producer in (("01_data_audit", build_audit_artifacts), ("02_rfm", build_rfm_artifacts),
                                   ("03_clustering", build_cluster_artifacts),
                                   ("04_lifecycle", build_lifecycle_artifacts)):
            producer(open_run(notebook, run_dir=run, config_path=duckdb))
    spark = folder / "spark.yml"
    spark.write_text(duckdb.read_text().replace("kind: duckdb", "kind: spark\n  spark:\n    master: local[2]"))
    return run, spark


def persistent_rdds() -> set[int]:
    """Ids of the RDDs the shared Spark session holds (local checkpoints and persisted frames)."""
    from segkit.data.spark import spark_session

    return {int(key) for key in spark_session().sparkContext._jsc.getPersistentRDDs().keySet()}


@pytest.fixture
def held_by_05(monkeypatch):
    """``held()``: the RDDs held now that were not held before the test and that the run's lines did not
    materialise (their shared relations), how many frames were held meanwhile (local checkpoints or persist),
    and the names of the relations the lines materialised, in order."""
    from segkit.data.spark import SparkLines, spark_session

    DataFrame = type(spark_session().range(1))  # pyspark's classic DataFrame (the public class is its facade)
    before = persistent_rdds()
    by_lines: set[int] = set()
    holds, materialised = [], []
    materialise, checkpoint, persist = SparkLines.materialise, DataFrame.localCheckpoint, DataFrame.persist

    def watched_materialise(self, query, *args, **kwargs):
        materialised.append(query.name)
        held = persistent_rdds()
        try:
            return materialise(self, query, *args, **kwargs)
        finally:
            by_lines.update(persistent_rdds() - held)

    def counted(method):
        def call(self, *args, **kwargs):
            holds.append(method.__name__)
            return method(self, *args, **kwargs)
        return call

    monkeypatch.setattr(SparkLines, "materialise", watched_materialise)
    monkeypatch.setattr(DataFrame, "localCheckpoint", counted(checkpoint))
    monkeypatch.setattr(DataFrame, "persist", counted(persist))

    def held() -> tuple[set[int], int, list[str]]:
        return persistent_rdds() - before - by_lines, len(holds), materialised

    return held


def run_05(run: Path, config: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_campaign_artifacts(open_run("05_campaign_evaluation", run_dir=run, config_path=config))


def test_05_on_spark_releases_what_it_held_once_the_cell_sums_are_collected(shop_run, held_by_05):
    run, config = shop_run
    result = run_05(run, config)
    assert DIMENSIONS <= set(result.by_dimension)
    assert len({segment for rows in result.by_dimension.values() for segment in rows["segment"]}) > 5
    left, holds, materialised = held_by_05()
    assert holds >= 10  # the rows, bases, purchase days, stage values, tables and names: held on the way
    assert left == set()
    # the sends are registered once: the RFM, lifecycle and cluster labels read one computation of the send
    # histories (registering the sends again would drop the held ones and compute them again)
    at_send = [name for name in materialised if name.endswith("_at_send")]
    assert "orders_at_send" in at_send and len(at_send) == len(set(at_send)), at_send


def _fail_on_call(monkeypatch, owner, name: str, call: int) -> None:
    """``owner.name`` raising a DataError on its ``call``-th call (1-based); the calls before run as they are."""
    original, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise DataError(f"{name} failed (test)")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


@pytest.mark.parametrize("where", ["lifecycle refit", "second send's customer table", "cell sums"])
def test_05_on_spark_releases_what_it_held_when_a_step_fails(shop_run, held_by_05, monkeypatch, where):
    """Failures on the driver with frames held: during the lifecycle refits (the RFM labels, the campaign rows, the
    purchase days and a send's stage values held), building the second send's customer table (every other label,
    the bases and the first send's names held), and summing the cells (every label held)."""
    from segkit.data import spark_ranks
    from segkit.steps import campaign, cluster

    run, config = shop_run
    if where == "lifecycle refit":
        distributions = spark_ranks.value_distributions

        def fitting(frame, needs, *args, **kwargs):
            if kwargs.get("missing") == "skip":  # the stager's fit (the RFM scorer's reads every value)
                raise DataError("value_distributions failed (test)")
            return distributions(frame, needs, *args, **kwargs)

        monkeypatch.setattr(spark_ranks, "value_distributions", fitting)
    elif where == "second send's customer table":
        _fail_on_call(monkeypatch, cluster, "spark_customer_table", 2)
    else:
        _fail_on_call(monkeypatch, campaign, "campaign_parts_on_spark", 1)
    with pytest.raises(DataError, match=r"failed \(test\)"):
        run_05(run, config)
    left, holds, _ = held_by_05()
    assert holds >= {"lifecycle refit": 3, "second send's customer table": 6, "cell sums": 8}[where]
    assert left == set()
