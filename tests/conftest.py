"""Shared test setup: quiet progress bars, seeded numpy, a headless matplotlib backend."""

from __future__ import annotations

import os

os.environ.setdefault("SEGKIT_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_numpy():
    np.random.seed(12345)
    yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")

# A fixed pseudonym salt for the test suite (and the notebook kernels it starts), so notebook
# regression outputs do not depend on the per-clone secret in .segkit/salt.
os.environ.setdefault("SEGKIT_SALT", "segkit-tests")


DISPLAY_OPTIONS: tuple[str, ...] = ("display.float_format", "display.max_colwidth", "display.max_columns",
                                    "display.width")


def _kept_display_options():
    import pandas as pd

    saved = {k: pd.get_option(k) for k in DISPLAY_OPTIONS}
    yield
    for k, v in saved.items():
        pd.set_option(k, v)


#: open_run() sets notebook display options (segkit.steps.pipeline.set_display); keep them from leaking
#: into other tests (doctests print frames): per test, and per module for a module-scoped fixture that
#: calls open_run (its options would otherwise reach the next test file on the same xdist worker).
_restore_pandas_display_options = pytest.fixture(autouse=True)(_kept_display_options)
_restore_pandas_display_options_of_the_module = pytest.fixture(autouse=True, scope="module")(_kept_display_options)


#: Test files that take minutes (Spark runs, whole pipelines, the browser, the bench smoke), longest first.
#: Under ``pytest -n 3 --dist loadfile`` (``make test``: three workers on two cores, because the Spark and
#: notebook tests wait on their JVMs and kernels about half the time) workers take files in collection order;
#: starting the long ones first keeps one of them from running alone at the end (longest-first scheduling).
#: Ranked by one run of each file alone on a busy two-core machine (2026-12-07: the pipeline ~11-13 min, the
#: bench smoke ~5.5, the real-export truth and e2e ~4, test_spark ~3, ... test_spark_patterns ~0.7);
#: test_scheduling (~4) stays after the heavy files: its Ctrl-C test waits on notebook kernels under load.
LONG_FILES: tuple[str, ...] = (
    "test_spark_pipeline.py", "test_bench.py", "test_jupyterlab.py", "test_real_export_truth.py",
    "test_e2e.py", "test_campaign_spark_release.py", "test_spark.py", "test_spark_audit.py", "test_spark_inputs.py",
    "test_spark_side_tables.py",
    "test_lifecycle_spark.py", "test_campaign.py", "test_shopify.py", "test_scheduling.py",
    "test_online_retail_fixture.py", "test_cluster_views.py", "test_lifecycle_holdout_sample.py",
    "test_lifecycle_history.py", "test_spark_sample.py", "test_bench_spark.py", "test_spark_ranks.py",
    "test_lifecycle_views.py", "test_spark_patterns.py", "test_campaign_spark.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the :data:`LONG_FILES` first, in that order; every other test keeps its collected order."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
