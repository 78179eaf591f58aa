"""The producer chain (audit → rfm → cluster → lifecycle → campaign) gives the same
customer_segments.csv and campaign results whether the audit's engine is pandas (in memory) or
DuckDB (out-of-core)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import build_audit_artifacts
from segkit.campaign import build_campaign_artifacts
from segkit.cluster import build_cluster_artifacts
from segkit.datasets import generate_shop, write_sample
from segkit.lifecycle import build_lifecycle_artifacts
from segkit.pipeline import open_run
from segkit.rfm import build_rfm_artifacts

PRODUCERS = (("01_data_audit", build_audit_artifacts), ("02_rfm", build_rfm_artifacts),
             ("03_clustering", build_cluster_artifacts), ("04_lifecycle", build_lifecycle_artifacts),
             ("05_campaign_evaluation", build_campaign_artifacts))


@pytest.fixture(scope="module")
def shop_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine_shop")
    write_sample(folder, generate_shop(n_customers=400, seed=11))
    return folder


def _run(folder, tmp_path, kind: str):
    config = tmp_path / f"{kind}.yml"
    config.write_text(f"data:\n  transactions: {folder / 'transactions.csv'}\n  customers: {folder / 'customers.csv'}\n"
                      f"  campaign: {folder / 'campaign.csv'}\nengine:\n  kind: {kind}\n"
                      "clustering:\n  k: 3\n  n_init: 2\nrun:\n  seed: 7\n")
    run = tmp_path / f"run_{kind}"
    for notebook, producer in PRODUCERS:
        producer(open_run(notebook, run_dir=run, config_path=config))
    return run / "artifacts"


@pytest.mark.slow
def test_the_producer_chain_gives_the_same_customer_segments_with_either_engine(shop_folder, tmp_path):
    pandas_run = _run(shop_folder, tmp_path, "pandas")
    duckdb_run = _run(shop_folder, tmp_path, "duckdb")
    assert json.loads((pandas_run / "audit_summary.json").read_text())["engine"] == "pandas"
    assert json.loads((duckdb_run / "audit_summary.json").read_text())["engine"] == "duckdb"
    expected = pd.read_csv(pandas_run / "customer_segments.csv", dtype={"customer_id": "string"})
    got = pd.read_csv(duckdb_run / "customer_segments.csv", dtype={"customer_id": "string"})
    assert {"rfm_segment", "cluster_name", "lifecycle_stage", "clv_12m"} <= set(got.columns)
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)
    # written with 10 significant digits: the files are byte for byte the same
    assert (duckdb_run / "customer_segments.csv").read_bytes() == (pandas_run / "customer_segments.csv").read_bytes()
    assert_frame_equal(pd.read_parquet(duckdb_run / "transactions_clean.parquet"),
                       pd.read_parquet(pandas_run / "transactions_clean.parquet"))
    for name in ("rfm.parquet", "lifecycle.parquet", "clusters.parquet"):
        assert_frame_equal(pd.read_parquet(duckdb_run / name), pd.read_parquet(pandas_run / name),
                           check_exact=False, rtol=1e-9)
    results = pd.read_csv(duckdb_run / "campaign_results.csv")
    assert_frame_equal(results, pd.read_csv(pandas_run / "campaign_results.csv"))
    retention = results[results["metric"] == "retention_rate"]
    assert len(retention) and retention["value"].notna().any()
