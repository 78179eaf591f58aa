"""Loading user files (segkit.io): formats, column maps, derived columns and clear errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from segkit.config import load_config
from segkit.errors import ConfigError, DataError
from segkit.io import customers_from_transactions, load_inputs, load_table

ROOT = Path(__file__).resolve().parents[1]
UCI_SMALL = ROOT / "tests" / "data" / "online_retail_ii_small.csv"
UCI_CONFIG = ROOT / "data" / "configs" / "online_retail_ii.yml"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def uci_config(tmp_path):
    shutil.copy(UCI_CONFIG, tmp_path / "online_retail_ii.yml")
    shutil.copy(UCI_SMALL, tmp_path / "online_retail_II.csv")
    return load_config(tmp_path / "online_retail_ii.yml")


def test_the_uci_online_retail_layout_loads_through_its_shipped_config(uci_config):
    tables = load_inputs(uci_config)
    tx = tables["transactions"]
    assert tables["customers"] is None and tables["campaign"] is None
    assert list(tx.columns) == ["customer_id", "order_date", "order_id", "amount", "quantity", "unit_price",
                                "product_id", "category", "channel", "country"]
    assert len(tx) == 30
    assert tx["customer_id"].iloc[0] == "13085"
    assert tx["customer_id"].isna().sum() == 2
    assert tx["order_date"].iloc[0] == pd.Timestamp("2009-12-01 07:45:00")
    assert str(tx["order_date"].dtype) == "datetime64[ns]"
    assert tx["amount"].iloc[0] == pytest.approx(12 * 6.95)
    cancelled = tx[tx["order_id"].str.startswith("C")]
    assert cancelled["order_id"].unique().tolist() == ["C489449", "C491972"]
    assert (cancelled["quantity"] < 0).all()
    assert tx.loc[15, "product_id"] == "POST"
    assert tx.attrs["absent_columns"] == ["amount", "category", "channel"]


def test_uci_country_reaches_the_derived_customers_table(uci_config):
    tx = load_inputs(uci_config)["transactions"]
    customers = customers_from_transactions(tx)
    assert customers["customer_id"].tolist() == ["12346", "12533", "12682", "13078", "13085", "15362",
                                                 "16321", "18087", "18102"]
    assert customers.set_index("customer_id")["country"].to_dict()["16321"] == "Australia"
    assert customers["customer_id"].is_unique
