"""BG/NBD + Gamma-Gamma fit: segkit's own maximum likelihood (scipy) vs lifetimes, same summaries.

lifetimes is a dev dependency (``pip install -e '.[dev]'``, which ``make bench`` does): the peer
that segkit's fits are compared with, not something segkit uses.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from segkit.clv import BetaGeoModel, GammaGammaModel, simulate_customers

__all__ = ["PARAMS_BGNBD", "PARAMS_GG", "write_summaries", "lifetimes_direct", "segkit_clv"]

PARAMS_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)
PARAMS_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def write_summaries(path: str | Path, n_customers: int, seed: int = 0) -> Path:
    """Simulated customer summaries (39-week calibration, paper parameters) as Parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate_customers(n_customers, PARAMS_BGNBD, PARAMS_GG, T=39.0, seed=seed).reset_index().to_parquet(path)
    return path


def _rounded(params: dict) -> dict:
    return {k: round(float(v), 3) for k, v in params.items()}


def lifetimes_direct(path: str) -> dict:
    """Baseline: lifetimes' BetaGeoFitter and GammaGammaFitter on the summaries.

    Columns are passed as numpy arrays: lifetimes 0.11 fails on pandas 3 Series. At lifetimes'
    default gradient tolerance (1e-7) the Gamma-Gamma fit raises ``ConvergenceError`` on this
    base, so it is given 1e-6 (the tolerance segkit used to retry with when it wrapped lifetimes).
    """
    s = pd.read_parquet(path)
    with warnings.catch_warnings():  # lifetimes sets a pandas option at import that pandas 3 deprecates
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        bg = BetaGeoFitter().fit(*(s[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")))
        rep = s[s["frequency"] > 0]
        gg = GammaGammaFitter().fit(*(rep[c].to_numpy(dtype=float) for c in ("frequency", "monetary_value")),
                                    tol=1e-6)
    return {"bgnbd": _rounded(bg.params_.to_dict()), "gamma_gamma": _rounded(gg.params_.to_dict())}


def segkit_clv(path: str) -> dict:
    """segkit: :class:`segkit.clv.BetaGeoModel` and :class:`segkit.clv.GammaGammaModel` (scipy)."""
    s = pd.read_parquet(path).set_index("customer_id")
    bg = BetaGeoModel().fit(s)
    gg = GammaGammaModel().fit(s)
    return {"bgnbd": _rounded(bg.params_), "gamma_gamma": _rounded(gg.params_)}
