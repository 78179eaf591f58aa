"""Local customers and campaign files that Spark does not read as pandas does, audited with ``engine.kind: spark``.

On Spark, 01 keeps a customers or campaign table on the executors (:func:`segkit.data.spark_audit.spark_side_table`).
Spark reads no Excel workbook, no ``.bz2``/``.xz`` file and no text in an encoding its CSV reader lacks: such a local
file is read in the kernel by :func:`segkit.data.io.load_table`, as on DuckDB (:func:`segkit.audit.spark_reads_local_table`),
so the audit's findings and clean tables equal DuckDB's; it is not refused as a file "not given by its path".

One Spark session for the file; a missing Java fails (never a skip).
"""

from __future__ import annotations

import bz2
import copy

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import audit_inputs
from segkit.core.config import load_config, project_root
from segkit.data.spark import pandas_warnings_quiet, spark_session

pytestmark = pytest.mark.slow

SAMPLE = project_root() / "data" / "sample"


@pytest.fixture(scope="module")
def session():
    return spark_session()


@pytest.mark.parametrize("customers", ["excel", "none"])
def test_an_excel_customers_table_and_a_bz2_campaign_on_spark_equal_duckdbs(session, tmp_path, customers):
    """An Excel customers table (or none: the customers derived from the lines on the executors) and a
    ``.bz2`` campaign file, both read in the kernel."""
    campaign = tmp_path / "campaign.csv.bz2"
    campaign.write_bytes(bz2.compress((SAMPLE / "campaign.csv").read_bytes()))
    config = load_config()
    config["data"].update(campaign=str(campaign))
    if customers == "excel":
        path = tmp_path / "customers.xlsx"
        pd.read_csv(SAMPLE / "customers.csv", dtype=str, keep_default_na=False).to_excel(path, index=False)
        config["data"]["customers"] = str(path)
    else:
        config["data"].pop("customers", None)
    duck = audit_inputs(config, clean_path=tmp_path / "duck.parquet")
    spark = copy.deepcopy(config)
    spark.setdefault("engine", {}).update(kind="spark", spark={**spark["engine"].get("spark", {}),
                                                                "master": "local[2]"})
    got = audit_inputs(spark, clean_path=tmp_path / "spark.parquet")
    assert duck.status != "errors" and got.engine != duck.engine
    assert len(duck.customers) == (3000 if customers == "excel" else duck.counts["buyers"]) and len(duck.campaign) > 3000
    expected, found = duck.summary(), got.summary()
    for key in ("engine", "outlier_rules"):  # the engines' names; the order lines' statistics (test_spark_audit.py)
        expected.pop(key), found.pop(key)
    assert found == expected
    if customers == "excel":
        assert_frame_equal(got.customers, duck.customers)
    else:  # derived on the executors (tests/test_spark_side_tables.py)
        assert got.customers is None
        with pandas_warnings_quiet():
            held = got.customer_rows.rows.toPandas().astype(duck.customers.dtypes.to_dict())
        assert_frame_equal(held.sort_values("customer_id", ignore_index=True), duck.customers)
    assert_frame_equal(got.campaign, duck.campaign)
    assert_frame_equal(got.missing, duck.missing)
