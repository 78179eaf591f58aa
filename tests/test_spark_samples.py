"""On ``engine.kind: spark`` a null ``clustering.fit_sample`` or ``lifecycle.holdout_sample`` ("no sample": every
customer collected to the driver) is refused before the first notebook (issue 17, review).

:func:`segkit.steps.sources.check_engine`, which ``segkit run`` calls before any notebook, raises the ConfigError
the notebook's step raises (:func:`segkit.steps.sources.spark_sample_error`): it names the key, says it is null
and what to write. ``segkit run`` then exits 2 and makes no run folder. DuckDB runs keep null (every customer).
No test here starts Spark.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from segkit.cluster import ClusterSettings
from segkit.core.config import load_config
from segkit.core.errors import ConfigError
from segkit.lifecycle import LifecycleSettings
from segkit.steps.sources import SPARK_SAMPLES, check_engine
from tests.run_helpers import segkit_cli
from tests.spark_configs import sample_config

SPARK = {"kind": "spark", "spark": {"master": "local[2]"}}
MESSAGES = {
    ("clustering", "fit_sample"): "clustering.fit_sample is null, which fits on every customer; on engine.kind: "
                                  "spark the fit runs on the driver from a seeded sample: set clustering.fit_sample "
                                  "(e.g. 200000).",
    ("lifecycle", "holdout_sample"): "lifecycle.holdout_sample is null, which checks the models on every customer; "
                                     "on engine.kind: spark the holdout check runs on the driver from a seeded "
                                     "sample: set lifecycle.holdout_sample (e.g. 200000)."}


def step_error(section: str) -> str:
    """The message the notebook's own step gives for the null sample (03's Spark fit, 04's Spark holdout check);
    both refuse it before touching Spark."""
    from segkit.steps import cluster, lifecycle_holdout

    with pytest.raises(ConfigError) as caught:
        if section == "clustering":
            settings = ClusterSettings({**ClusterSettings.from_config().raw, "fit_sample": None})
            cluster.spark_cluster_result(SimpleNamespace(), None, {}, settings, 7)
        else:
            as_of = pd.Timestamp("2024-06-01")
            lifecycle_holdout.holdout_inputs_on_spark(SimpleNamespace(as_of=as_of, seed=7), as_of,
                                                      LifecycleSettings.from_config({**load_config()["lifecycle"], "holdout_sample": None}))
    return str(caught.value)


@pytest.mark.parametrize("section, key", list(MESSAGES))
def test_check_engine_refuses_a_null_sample_on_spark_with_the_notebooks_message(section, key):
    assert set(SPARK_SAMPLES) == set(MESSAGES)
    with pytest.raises(ConfigError) as caught:
        check_engine({"engine": SPARK, section: {key: None, "other": 1}})
    assert str(caught.value) == MESSAGES[(section, key)] == step_error(section)


@pytest.mark.parametrize("config", [
    {"engine": SPARK},  # no section: the defaults' whole numbers
    {"engine": SPARK, "clustering": {"k": 3}, "lifecycle": {}},  # no key: the default
    {"engine": SPARK, "clustering": {"fit_sample": 5000}, "lifecycle": {"holdout_sample": 200000}},
    {"engine": {"kind": "duckdb"}, "clustering": {"fit_sample": None}, "lifecycle": {"holdout_sample": None}},
])
def test_whole_numbers_and_a_null_off_spark_pass(config):
    assert check_engine(config).kind == config["engine"]["kind"]


@pytest.mark.parametrize("section, key", list(MESSAGES))
def test_segkit_run_on_spark_with_a_null_sample_stops_before_any_notebook(tmp_path, section, key):
    config = sample_config(tmp_path, SPARK)
    values = yaml.safe_load(config.read_text())
    values.setdefault(section, {})[key] = None
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    done = segkit_cli("run", "--config", config, "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"segkit: {config}: {MESSAGES[(section, key)]}"
    assert not (tmp_path / "run").exists()
