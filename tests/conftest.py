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


@pytest.fixture(autouse=True)
def _restore_pandas_display_options():
    """open_run() sets notebook display options (segkit.steps.pipeline.set_display); keep them from
    leaking into other tests (doctests print frames)."""
    import pandas as pd

    keys = ["display.float_format", "display.max_colwidth", "display.max_columns", "display.width"]
    saved = {k: pd.get_option(k) for k in keys}
    yield
    for k, v in saved.items():
        pd.set_option(k, v)
