"""Setup shared by the tests (``tests/``) and the doctests of the package (``segkit/``, collected by
``make test`` with ``--doctest-modules``).

Lives at the repository root, not inside ``segkit/``, so that it is never part of the installed package.
``__main__.py`` modules (``python -m segkit.bench``, ``python -m segkit.report``) are not imported
for doctests: pytest skips them itself (importing them would run the command).
"""

from __future__ import annotations

import os
import warnings

import pytest

# Same defaults as tests/conftest.py, for `pytest segkit` on its own: no progress bars, headless plots.
os.environ.setdefault("SEGKIT_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _doctests_start_from_pandas_and_matplotlib_defaults(request: pytest.FixtureRequest):
    """Each doctest starts from pandas' default display options and closes the figures it drew.

    ``open_run()`` sets notebook display options (:func:`segkit.steps.pipeline.set_display`); a
    module-scoped fixture calling it (tests/test_campaign.py) leaves them set for whatever runs next
    in the same worker, and the printed frames of a doctest would then differ from its docstring.
    """
    if type(request.node).__name__ != "DoctestItem":  # pytest's doctest item (its class is not public)
        yield
        return
    import matplotlib.pyplot as plt
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated display options warn when reset
        pd.reset_option("^display\\.")
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.reset_option("^display\\.")
    plt.close("all")
