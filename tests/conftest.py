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
