"""Pseudonyms are stable, secret-salted, and small groups never show in shared tables."""

from __future__ import annotations

import stat

import pandas as pd
import pytest

import segkit.core.privacy as privacy
from segkit.core.privacy import pseudonymize_ids, salt_for, shareable_table, suppress_small_groups
from segkit.steps.pipeline import readable_number


@pytest.fixture
def salt_home(tmp_path, monkeypatch):
    monkeypatch.delenv(privacy.SALT_ENV, raising=False)
    monkeypatch.setattr(privacy, "salt_file", lambda: tmp_path / ".segkit" / "salt")
    return tmp_path / ".segkit" / "salt"


def test_without_env_or_config_a_random_secret_is_created_once_and_reused(salt_home):
    first = salt_for({"privacy": {"salt": None}})
    assert len(first) == 32 and first != "segkit"
    assert salt_for({}) == first  # stable across runs
    assert stat.S_IMODE(salt_home.stat().st_mode) == 0o600


def test_the_environment_beats_the_config_which_beats_the_secret_file(salt_home, monkeypatch):
    assert salt_for({"privacy": {"salt": "from-config"}}) == "from-config"
    monkeypatch.setenv(privacy.SALT_ENV, "from-env")
    assert salt_for({"privacy": {"salt": "from-config"}}) == "from-env"
    assert not salt_home.exists()


def test_pseudonyms_are_stable_distinct_and_keep_missing_ids_missing():
    ids = pd.Series(["C1", "C2", "C1", None], dtype="string")
    out = pseudonymize_ids(ids, "s")
    assert out[0] == out[2] != out[1]
    assert out[0].startswith("c-") and len(out[0]) == 12
    assert pd.isna(out[3])
    assert pseudonymize_ids(ids, "other")[0] != out[0]


def test_shareable_table_hides_ids_in_columns_and_index(monkeypatch):
    monkeypatch.setenv(privacy.SALT_ENV, "k")
    table = pd.DataFrame({"customer_id": ["C000001", "C000002"], "value": [1.0, 2.0]})
    out = shareable_table(table, {"privacy": {"pseudonymize_ids": True}})
    assert not out["customer_id"].isin(["C000001", "C000002"]).any()
    indexed = shareable_table(table.set_index("customer_id"), {"privacy": {"pseudonymize_ids": True}})
    assert "C000001" not in indexed.index
    kept = shareable_table(table, {"privacy": {"pseudonymize_ids": False}})
    assert kept["customer_id"].tolist() == ["C000001", "C000002"]


@pytest.mark.parametrize("interactive, real", [(True, True), (False, False)])
def test_ids_are_real_in_the_analysts_own_notebook_and_pseudonyms_in_a_run(monkeypatch, tmp_path, interactive, real):
    from segkit.steps.pipeline import RunContext, shareable

    monkeypatch.setenv(privacy.SALT_ENV, "k")
    ctx = RunContext(notebook="02_rfm", run_dir=tmp_path, seed=1, interactive=interactive,
                     config={"privacy": {"pseudonymize_ids": True, "min_cell_size": 10}})
    customers = pd.DataFrame({"customer_id": ["C000001", "C000002"], "rfm_segment": ["Lost", "Lost"]})
    shown = shareable(ctx, customers)["customer_id"].tolist()
    pseudonyms = pseudonymize_ids(customers["customer_id"], "k").tolist()
    assert shown == (["C000001", "C000002"] if real else pseudonyms)
    groups = pd.DataFrame({"segment": ["a", "b", "c"], "customers": [50, 4, 3]})
    # small groups are merged on both sides
    assert shareable(ctx, groups, count_column="customers", label_column="segment")["segment"].tolist() == ["a"]


def test_small_groups_are_merged_and_a_still_small_remainder_is_dropped():
    t = pd.DataFrame({"segment": ["a", "b", "c", "d"], "customers": [50, 6, 5, 40],
                      "revenue": [10.0, 2.0, 3.0, 8.0]})
    out = suppress_small_groups(t, "customers", 10, label_column="segment")
    assert out["segment"].tolist() == ["a", "d", "Other (2 groups under 10)"]
    assert out["customers"].tolist() == [50, 40, 11]
    assert pd.isna(out["revenue"].iloc[-1])  # a mix cannot be shown honestly
    tiny = suppress_small_groups(t.iloc[[0, 2]], "customers", 10, label_column="segment")
    assert tiny["segment"].tolist() == ["a"]
    assert suppress_small_groups(t, "customers", 1).equals(t)


@pytest.mark.parametrize("value, text", [
    (1934530.012, "1,934,530"), (873.4321, "873.43"), (0.003962, "0.00396"), (0.0, "0"),
    (-2500.5, "-2,500"), (float("nan"), "–"),
])
def test_report_numbers_are_readable(value, text):
    assert readable_number(value) == text


def test_plot_labels_show_the_configured_currency():
    import matplotlib.pyplot as plt

    from segkit.plots import label, set_currency

    set_currency("GBP")
    try:
        ax = label(plt.subplots()[1], "Revenue (currency) by month", "Month", "Net revenue (currency)")
        assert ax.get_ylabel() == "Net revenue (GBP)" and ax.get_title() == "Revenue (GBP) by month"
    finally:
        set_currency(None)
    assert label(plt.subplots()[1], "t", "x", "Revenue (currency)").get_ylabel() == "Revenue (currency units)"
