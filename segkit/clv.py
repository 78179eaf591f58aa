"""Customer lifetime value: BG/NBD (repeat purchases, P(alive)) and Gamma-Gamma (order value).

Both models are fitted by maximum likelihood with the ``lifetimes`` package (archived, but exact
and fast: 0.1-0.2 s on the CDNOW sample). This module wraps it so that segkit's API does not leak
its quirks:

* importing ``lifetimes`` changes process-wide state (a ``FutureWarning`` filter, a deprecated
  pandas option that warns under pandas 3) and its likelihood function resets the warning filters
  on every call: every call into ``lifetimes`` here runs inside :func:`warnings.catch_warnings`,
  which restores the filters afterwards;
* its fitter prints the optimiser's output on failure and raises a bare ``ValueError`` subclass:
  both become a :class:`segkit.errors.ModelFitError` that says what to try;
* its log-likelihood is reported per customer on a rescaled time axis: :func:`bgnbd_log_likelihood`
  gives the total log-likelihood in the data's own time unit, comparable with the literature.

Time discretisation (reproducing Fader, Hardie & Lee 2005)
----------------------------------------------------------
The BG/NBD inputs are ``frequency`` (repeat purchase *days*), ``recency`` and ``T``, measured in
**weeks as days / 7** (``time_unit_days=7``: lifetimes' ``freq="D", freq_multiplier=7``). On the
CDNOW sample (2,357 customers, calibration ending 1997-09-30) this reproduces the paper exactly:
946 repeat buyers, r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, log-likelihood -9582.4, and
Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44. Calendar weeks (``freq="W"``) do not: purchases in
the same Monday-Sunday week merge (935 repeat buyers) and ages round to whole weeks, giving
r = 0.291, alpha = 6.852, a = 0.665, b = 2.320.

Examples
--------
>>> import pandas as pd
>>> orders = pd.DataFrame({
...     "customer_id": ["a", "a", "a", "b", "c", "c"],
...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-15", "2024-03-01",
...                                   "2024-02-01", "2024-01-10", "2024-01-10"]),
...     "amount": [10.0, 20.0, 30.0, 5.0, 7.0, 8.0]})
>>> clv_summary(orders, "2024-03-31")  # doctest: +NORMALIZE_WHITESPACE
             frequency   recency          T  monetary_value
customer_id
a                  2.0  8.571429  12.857143            25.0
b                  0.0  0.000000   8.428571             0.0
c                  0.0  0.000000  11.571429             0.0
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from segkit.errors import DataError, ModelFitError
from segkit.rfm import lifetimes_summary

#: Time unit of the model inputs, in days (weeks, as in Fader, Hardie & Lee 2005).
TIME_UNIT_DAYS = 7
#: Average month length used for CLV horizons and the 90-day window conversions.
DAYS_PER_MONTH = 365.25 / 12
SUMMARY_COLUMNS = ("frequency", "recency", "T")
#: Gradient tolerances tried in turn. The objective is lifetimes' mean negative log-likelihood
#: per customer, so 1e-6 is still a very tight optimum; BFGS at 1e-7 often stops with "precision
#: loss" on flat ridges (e.g. a, b -> infinity when every customer has the same dropout chance).
TOLERANCES = (1e-7, 1e-6, 1e-5)


@contextlib.contextmanager
def _quiet_lifetimes():
    """Run lifetimes code without it touching global warning filters or printing."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _lifetimes() -> Any:
    """Import ``lifetimes`` without keeping the warning filter it installs at import."""
    with _quiet_lifetimes():
        import lifetimes
    return lifetimes


def clv_summary(
    purchases: pd.DataFrame,
    observation_period_end: str | pd.Timestamp,
    time_unit_days: float = TIME_UNIT_DAYS,
) -> pd.DataFrame:
    """Per-customer BG/NBD / Gamma-Gamma inputs from purchases (lifetimes' summary format).

    :func:`segkit.rfm.lifetimes_summary` (equal to lifetimes' ``summary_data_from_transaction_data``)
    with ``freq="D", freq_multiplier=time_unit_days``.

    Parameters
    ----------
    purchases : DataFrame
        ``customer_id, order_date, amount``: one row per purchase (net amount > 0). Several
        purchases on one day count as one purchase day (amounts summed).
    observation_period_end : str or Timestamp
        Last day observed, **inclusive** (lifetimes' and the paper's convention; segkit's
        ``as_of`` is exclusive, so pass ``as_of - 1 day``); later purchases are ignored.
    time_unit_days : float
        Length of the model's time unit in days (7 = weeks as days/7, see the module notes).

    Returns
    -------
    DataFrame
        Index ``customer_id``; ``frequency`` (repeat purchase days), ``recency`` (first to last
        purchase), ``T`` (first purchase to the end), both in time units, ``monetary_value``
        (mean amount of the repeat purchase days, 0 for one-time buyers).

    Examples
    --------
    >>> p = pd.DataFrame({"customer_id": ["a", "a"], "amount": [3.0, 5.0],
    ...                   "order_date": pd.to_datetime(["2024-01-01", "2024-01-15"])})
    >>> clv_summary(p, "2024-01-28").iloc[0].tolist()
    [1.0, 2.0, 3.857142857142857, 5.0]
    """
    summary = lifetimes_summary(purchases, observation_period_end, freq="D",
                                freq_multiplier=time_unit_days, monetary_value_col="amount")
    summary.index = summary.index.astype("string")
    return summary


def simulate_customers(
    n: int,
    bgnbd_params: dict[str, float],
    gamma_gamma_params: dict[str, float] | None = None,
    T: float | np.ndarray = 39.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Draw customer summaries from the BG/NBD (and Gamma-Gamma) generative process.

    Each customer has a purchase rate ``lambda ~ Gamma(r, rate=alpha)`` and a dropout
    probability ``p ~ Beta(a, b)``; after each repeat purchase they drop out with probability
    ``p``. Given ``N ~ Poisson(lambda T)`` purchases of an immortal customer, the observed
    ``frequency`` is ``min(J, N)`` with ``J ~ Geometric(p)`` and ``recency`` is the
    ``frequency``-th of ``N`` uniform order statistics, ``T * Beta(x, N - x + 1)`` (vectorised).
    Order values: ``nu ~ Gamma(q, rate=v)`` and ``z ~ Gamma(p, rate=nu)``, so the mean of ``x``
    values is ``Gamma(p x, rate=x nu)``.

    Parameters
    ----------
    n : int
        Customers.
    bgnbd_params : dict
        ``r, alpha, a, b`` (time in the model's unit).
    gamma_gamma_params : dict, optional
        ``p, q, v``; given, a ``monetary_value`` column is added (0 for one-time buyers).
    T : float or array
        Age of each customer at the end of the observation, in time units.
    seed : int
        Random seed.

    Returns
    -------
    DataFrame
        ``frequency, recency, T`` (+ ``monetary_value``), index ``customer_id`` ``"0"``...

    Examples
    --------
    >>> s = simulate_customers(3, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=1)
    >>> list(s.columns), bool((s["recency"] <= s["T"]).all())
    (['frequency', 'recency', 'T'], True)
    """
    rng = np.random.default_rng(seed)
    age = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(bgnbd_params["r"], 1.0 / bgnbd_params["alpha"], n)
    dropout = rng.beta(bgnbd_params["a"], bgnbd_params["b"], n)
    purchases = rng.poisson(lam * age)
    x = np.minimum(rng.geometric(np.clip(dropout, 1e-12, 1.0)), purchases)
    recency = np.where(x > 0, age * rng.beta(np.maximum(x, 1), np.maximum(purchases - x + 1, 1)), 0.0)
    out = pd.DataFrame({"frequency": x.astype(float), "recency": recency, "T": age},
                       index=pd.Index([str(i) for i in range(n)], dtype="string", name="customer_id"))
    if gamma_gamma_params is not None:
        p, q, v = (gamma_gamma_params[k] for k in ("p", "q", "v"))
        nu = rng.gamma(q, 1.0 / v, n)
        xs = np.maximum(x, 1)
        out["monetary_value"] = np.where(x > 0, rng.gamma(p * xs, 1.0 / (xs * nu)), 0.0)
    return out


def _json_safe(value: Any) -> Any:
    """Floats that are not finite (an undefined standard error) become None, for JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fit_with_retries(fitter: Any, data: tuple, failure: str) -> float:
    """Fit a lifetimes fitter, retrying with looser gradient tolerances; return the one used."""
    reason = ""
    for tol in TOLERANCES:
        try:
            with _quiet_lifetimes():
                fitter.fit(*data, tol=tol)
            return tol
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
    raise ModelFitError(f"{failure} (gradient tolerances {', '.join(map(str, TOLERANCES))} tried): {reason} "
                        "Try a small penalizer (lifecycle.penalizer_coef: 0.001) or more data; the "
                        "model's columns stay empty.")


def _check_summary(summary: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise DataError(
            f"{what}: column(s) {', '.join(map(repr, missing))} missing from the customer summary. "
            "Build it with segkit.clv.clv_summary(purchases, observation_period_end)."
        )
    values = summary[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1) | (values < 0).any(axis=1)
    if "recency" in columns and "T" in columns:
        bad |= values["recency"] > values["T"] + 1e-9
    if "frequency" in columns:
        bad |= values["frequency"] != np.round(values["frequency"])
    if bad.any():
        rows = ", ".join(map(str, summary.index[bad.to_numpy()][:5]))
        raise DataError(
            f"{what}: {int(bad.sum())} customer(s) have invalid {'/'.join(columns)} (missing, negative, "
            f"non-integer frequency or recency > T), e.g. customer_id {rows}. "
            "Rebuild the summary with segkit.clv.clv_summary from the cleaned purchases."
        )


def bgnbd_log_likelihood(
    params: dict[str, float], frequency: Any, recency: Any, T: Any
) -> float:
    """Total BG/NBD log-likelihood in the data's time unit (Fader, Hardie & Lee 2005, eq. 6).

    Parameters
    ----------
    params : dict
        ``r, alpha, a, b``.
    frequency, recency, T : array_like
        Repeat purchases ``x``, time of last purchase ``t_x`` and age ``T`` of each customer.

    Returns
    -------
    float

    Examples
    --------
    >>> p = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    >>> round(bgnbd_log_likelihood(p, [0, 2], [0.0, 30.43], [38.86, 38.86]), 4)
    -10.0133
    """
    r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    x = np.asarray(frequency, dtype=float)
    tx = np.asarray(recency, dtype=float)
    t_age = np.asarray(T, dtype=float)
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    ln_a3 = -(r + x) * np.log(alpha + t_age)
    ln_a4 = np.where(
        x > 0,
        np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + tx),
        -np.inf,
    )
    return float(np.sum(ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)))


class BetaGeoModel(BaseEstimator):
    """BG/NBD model of repeat purchases and dropout (Fader, Hardie & Lee 2005), fitted by ML.

    Adapted from ``lifetimes.BetaGeoFitter`` (which does the optimisation); see the module notes
    for what this wrapper changes.

    Parameters
    ----------
    penalizer_coef : float
        L2 penalty on the parameters (0 = plain maximum likelihood, as in the paper).
    min_repeat_buyers : int
        Fewer customers with a repeat purchase than this raises :class:`ModelFitError`: the
        dropout process cannot be estimated without repeat buyers.
    time_unit_days : float
        Length of the time unit of the summary's ``recency`` and ``T`` in days.

    Attributes
    ----------
    params_ : dict
        ``r, alpha, a, b`` (``alpha`` in time units).
    log_likelihood_ : float
        Total log-likelihood in the data's time unit.
    standard_errors_ : dict
        Asymptotic standard errors of the parameters (NaN where the Hessian is not invertible).
    tol_ : float
        Gradient tolerance the optimiser converged with (see :data:`TOLERANCES`).
    n_customers_, n_repeat_buyers_ : int
        Customers fitted and those among them with ``frequency > 0``.

    Examples
    --------
    >>> summary = simulate_customers(2000, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> model = BetaGeoModel().fit(summary)
    >>> {k: round(v, 1) for k, v in model.params_.items()}
    {'r': 0.3, 'alpha': 5.1, 'a': 0.8, 'b': 2.8}
    >>> bool((model.p_alive(summary) <= 1).all())
    True
    """

    def __init__(self, penalizer_coef: float = 0.0, min_repeat_buyers: int = 10,
                 time_unit_days: float = TIME_UNIT_DAYS):
        self.penalizer_coef = penalizer_coef
        self.min_repeat_buyers = min_repeat_buyers
        self.time_unit_days = time_unit_days

    def fit(self, summary: pd.DataFrame) -> "BetaGeoModel":
        """Fit on a customer summary (``frequency, recency, T`` as from :func:`clv_summary`).

        Raises
        ------
        ModelFitError
            Too few repeat buyers, or the optimiser did not converge.
        """
        _check_summary(summary, SUMMARY_COLUMNS, "BG/NBD")
        x = summary["frequency"].to_numpy(dtype=float)
        repeat = int((x > 0).sum())
        if repeat < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"BG/NBD not fitted: only {repeat:,} of {len(x):,} customers made a repeat purchase "
                f"(at least {self.min_repeat_buyers:,} needed to estimate dropout). Use a longer "
                "data period or a later as_of; P(alive), expected purchases and CLV stay empty."
            )
        fitter = _lifetimes().BetaGeoFitter(penalizer_coef=self.penalizer_coef)
        self.tol_ = _fit_with_retries(
            fitter, (x, summary["recency"].to_numpy(dtype=float), summary["T"].to_numpy(dtype=float)),
            f"BG/NBD did not converge on {len(x):,} customers ({repeat:,} repeat buyers)")
        params = {k: float(v) for k, v in fitter.params_.items()}
        if not all(np.isfinite(v) and v > 0 for v in params.values()):
            raise ModelFitError(f"BG/NBD fit returned invalid parameters {params}. Try a small penalizer.")
        self.params_ = params
        self.standard_errors_ = {k: float(v) for k, v in fitter.standard_errors_.items()}
        self.log_likelihood_ = bgnbd_log_likelihood(params, x, summary["recency"], summary["T"])
        self.n_customers_ = len(x)
        self.n_repeat_buyers_ = repeat
        self._fitter = fitter
        return self

    @property
    def dropout_mean_(self) -> float:
        """Mean chance of dropping out after a repeat purchase, ``a / (a + b)``."""
        check_is_fitted(self, "params_")
        return self.params_["a"] / (self.params_["a"] + self.params_["b"])

    def _arrays(self, summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        _check_summary(summary, SUMMARY_COLUMNS, "BG/NBD")
        return tuple(summary[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS)  # type: ignore[return-value]

    def predict(self, summary: pd.DataFrame, days: float = 90.0) -> np.ndarray:
        """Expected repeat purchases of each customer in the next ``days`` days (eq. 10).

        ``days`` may also be a column vector (shape ``(k, 1)``) to get a ``(k, n)`` array.
        """
        x, tx, t_age = self._arrays(summary)
        t = np.asarray(days, dtype=float) / self.time_unit_days
        with _quiet_lifetimes():
            out = self._fitter.conditional_expected_number_of_purchases_up_to_time(t, x, tx, t_age)
        return np.asarray(out, dtype=float)

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """P(alive) of each customer given its history.

        By construction of the BG/NBD model a customer can only drop out right after a repeat
        purchase, so one-time buyers (``frequency == 0``) always get P(alive) = 1.
        """
        x, tx, t_age = self._arrays(summary)
        with _quiet_lifetimes():
            out = self._fitter.conditional_probability_alive(x, tx, t_age)
        return np.asarray(out, dtype=float).reshape(len(x))

    def expected_purchases_new_customer(self, days: float) -> float:
        """Expected repeat purchases of a customer just acquired, in their first ``days`` days (eq. 9)."""
        check_is_fitted(self, "params_")
        with _quiet_lifetimes():
            return float(self._fitter.expected_number_of_purchases_up_to_time(days / self.time_unit_days))

    def to_dict(self) -> dict[str, Any]:
        """Parameters for ``clv_model.json`` (``r, alpha, a, b, log_likelihood, time_unit`` + extras)."""
        check_is_fitted(self, "params_")
        return _json_safe({**self.params_, "log_likelihood": self.log_likelihood_,
                "time_unit": f"{self.time_unit_days:g} days" if self.time_unit_days != 7 else "weeks",
                "time_unit_days": float(self.time_unit_days), "n_customers": self.n_customers_,
                "n_repeat_buyers": self.n_repeat_buyers_, "standard_errors": self.standard_errors_,
                "dropout_mean": self.dropout_mean_, "optimizer_tol": self.tol_})


class GammaGammaModel(BaseEstimator):
    """Gamma-Gamma model of average order value (Fader, Hardie & Lee 2005b; Hardie's note 025).

    Fitted on repeat buyers only (``frequency > 0`` and ``monetary_value > 0``); it assumes order
    value is independent of purchase frequency (``frequency_monetary_corr_`` reports the check).

    Parameters
    ----------
    penalizer_coef : float
        L2 penalty on the parameters.
    min_repeat_buyers : int
        Fewer repeat buyers than this raises :class:`ModelFitError`.

    Attributes
    ----------
    params_ : dict
        ``p, q, v`` (``v`` is the paper's gamma).
    standard_errors_ : dict
        Asymptotic standard errors of the parameters.
    tol_ : float
        Gradient tolerance the optimiser converged with.
    n_customers_ : int
        Repeat buyers fitted.
    frequency_monetary_corr_ : float
        Pearson correlation of frequency and mean order value among them.

    Examples
    --------
    >>> summary = simulate_customers(2000, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4},
    ...                              {"p": 6.0, "q": 4.0, "v": 15.0}, seed=0)
    >>> model = GammaGammaModel().fit(summary)
    >>> model.n_customers_ == int((summary["frequency"] > 0).sum())
    True
    >>> one_timer = summary[summary["frequency"] == 0].head(1)
    >>> bool(model.predict(one_timer)[0] == model.population_mean_)
    True
    """

    def __init__(self, penalizer_coef: float = 0.0, min_repeat_buyers: int = 10):
        self.penalizer_coef = penalizer_coef
        self.min_repeat_buyers = min_repeat_buyers

    def fit(self, summary: pd.DataFrame) -> "GammaGammaModel":
        """Fit on the repeat buyers of a customer summary (``frequency, monetary_value``)."""
        _check_summary(summary, ("frequency", "monetary_value"), "Gamma-Gamma")
        rows = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        if len(rows) < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"Gamma-Gamma not fitted: only {len(rows):,} repeat buyers with a positive order value "
                f"(at least {self.min_repeat_buyers:,} needed). Expected order value and CLV stay empty."
            )
        x = rows["frequency"].to_numpy(dtype=float)
        m = rows["monetary_value"].to_numpy(dtype=float)
        fitter = _lifetimes().GammaGammaFitter(penalizer_coef=self.penalizer_coef)
        self.tol_ = _fit_with_retries(fitter, (x, m), f"Gamma-Gamma did not converge on {len(rows):,} repeat buyers")
        params = {k: float(v) for k, v in fitter.params_.items()}
        if not all(np.isfinite(v) and v > 0 for v in params.values()):
            raise ModelFitError(f"Gamma-Gamma fit returned invalid parameters {params}.")
        if params["q"] <= 1:
            raise ModelFitError(
                f"Gamma-Gamma fit gives q = {params['q']:.3f} <= 1: the population's mean order value "
                "is infinite (a few extreme order values dominate). Check the audit for outlier "
                "amounts or use a penalizer; expected order value and CLV stay empty."
            )
        self.params_ = params
        self.standard_errors_ = {k: float(v) for k, v in fitter.standard_errors_.items()}
        self.n_customers_ = len(rows)
        self.frequency_monetary_corr_ = float(np.corrcoef(x, m)[0, 1]) if len(rows) > 2 and x.std() > 0 and m.std() > 0 else float("nan")
        return self

    @property
    def population_mean_(self) -> float:
        """Mean order value of the population, ``p * v / (q - 1)``."""
        check_is_fitted(self, "params_")
        p, q, v = (self.params_[k] for k in ("p", "q", "v"))
        return p * v / (q - 1)

    def predict(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected average order value of each customer (eq. 5 of Hardie's note 025).

        A weighted mean of the customer's own mean value and the population mean; one-time
        buyers get the population mean.
        """
        check_is_fitted(self, "params_")
        _check_summary(summary, ("frequency", "monetary_value"), "Gamma-Gamma")
        p, q = self.params_["p"], self.params_["q"]
        x = summary["frequency"].to_numpy(dtype=float)
        m = summary["monetary_value"].to_numpy(dtype=float)
        weight = p * x / (p * x + q - 1)
        return (1 - weight) * self.population_mean_ + weight * np.where(x > 0, m, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Parameters for ``clv_model.json`` (``p, q, v`` + extras)."""
        check_is_fitted(self, "params_")
        return _json_safe({**self.params_, "n_customers": self.n_customers_, "standard_errors": self.standard_errors_,
                "optimizer_tol": self.tol_,
                "population_mean_order_value": self.population_mean_,
                "frequency_monetary_corr": self.frequency_monetary_corr_})


def monthly_discount_rate(annual_rate: float) -> float:
    """The monthly rate equivalent to an annual discount rate.

    Examples
    --------
    >>> round(monthly_discount_rate(0.12682503), 6)
    0.01
    """
    return float((1.0 + annual_rate) ** (1.0 / 12.0) - 1.0)


def customer_lifetime_value(
    bgnbd: BetaGeoModel,
    gamma_gamma: GammaGammaModel,
    summary: pd.DataFrame,
    horizon_months: int = 12,
    discount_rate: float = 0.10,
    margin: float = 1.0,
    days_per_month: float = DAYS_PER_MONTH,
) -> np.ndarray:
    """Discounted value of each customer's expected purchases over the next months.

    ``CLV = margin * E[order value] * sum_m (E[N(m)] - E[N(m-1)]) / (1 + d)^m`` over months
    ``m = 1..horizon_months``, with BG/NBD's conditional expected purchases ``E[N(m)]`` up to the
    end of month ``m`` and ``d`` the monthly rate equivalent to the annual ``discount_rate``
    (discounted at the end of each month, as lifetimes does).

    Parameters
    ----------
    bgnbd, gamma_gamma : fitted models
    summary : DataFrame
        ``frequency, recency, T, monetary_value`` per customer.
    horizon_months : int
        Months ahead.
    discount_rate : float
        Annual discount rate (0.10 = 10 % a year).
    margin : float
        Share of revenue that is profit (1.0 = revenue CLV).
    days_per_month : float
        Month length in days (default 365.25/12).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> s = simulate_customers(2000, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4},
    ...                        {"p": 6.0, "q": 4.0, "v": 15.0}, seed=0)
    >>> bg, gg = BetaGeoModel().fit(s), GammaGammaModel().fit(s)
    >>> clv = customer_lifetime_value(bg, gg, s, horizon_months=12, discount_rate=0.1)
    >>> bool((clv >= 0).all()), bool(clv[s["frequency"] >= 5].mean() > clv[s["frequency"] == 0].mean())
    (True, True)
    """
    if horizon_months < 1 or int(horizon_months) != horizon_months:
        raise ValueError(f"horizon_months must be a positive whole number of months, not {horizon_months!r}")
    if discount_rate <= -1:
        raise ValueError(f"discount_rate must be > -1 (annual rate, 0.1 = 10 %), not {discount_rate!r}")
    rate = monthly_discount_rate(discount_rate)
    value = gamma_gamma.predict(summary) * margin
    total = np.zeros(len(summary))
    previous = np.zeros(len(summary))
    for month in range(1, int(horizon_months) + 1):  # one vectorised step per month
        cumulative = bgnbd.predict(summary, month * days_per_month)
        total += value * (cumulative - previous) / (1.0 + rate) ** month
        previous = cumulative
    return total


def calibration_holdout_summary(
    purchases: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp,
    time_unit_days: float = TIME_UNIT_DAYS,
) -> pd.DataFrame:
    """Calibration summary plus the repeat purchases each customer made in the holdout period.

    Customers whose first purchase is after ``calibration_end`` are not part of the check.

    Returns
    -------
    DataFrame
        Index ``customer_id``: ``frequency, recency, T, monetary_value`` (calibration, as
        :func:`clv_summary`), ``frequency_holdout`` (purchase days in
        ``(calibration_end, observation_end]``) and ``duration_holdout_days``.

    Examples
    --------
    >>> orders = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-03-05", "2024-02-20"]),
    ...     "amount": [10.0, 20.0, 30.0, 5.0]})
    >>> calibration_holdout_summary(orders, "2024-01-31", "2024-03-31")[["frequency", "frequency_holdout"]]
    ... # doctest: +NORMALIZE_WHITESPACE
                 frequency  frequency_holdout
    customer_id
    a                  1.0                  1
    """
    cal_end = pd.Timestamp(calibration_end).normalize()
    obs_end = pd.Timestamp(observation_end).normalize()
    if obs_end <= cal_end:
        raise ValueError(f"observation_end {obs_end.date()} must be after calibration_end {cal_end.date()}")
    day = purchases["order_date"].dt.normalize()
    cal = clv_summary(purchases[day <= cal_end], cal_end, time_unit_days)
    hold = purchases.loc[(day > cal_end) & (day <= obs_end), ["customer_id"]].assign(day=day)
    counts = hold.drop_duplicates().groupby("customer_id").size()
    counts.index = counts.index.astype("string")
    cal["frequency_holdout"] = counts.reindex(cal.index, fill_value=0).astype("int64")
    cal["duration_holdout_days"] = float((obs_end - cal_end).days)
    return cal


def holdout_check(
    model: BetaGeoModel, cal_holdout: pd.DataFrame, max_frequency: int = 7
) -> pd.DataFrame:
    """Predicted vs actual holdout repeat purchases by calibration frequency (paper Fig. 4).

    Parameters
    ----------
    model : BetaGeoModel
        Fitted on the calibration columns of ``cal_holdout``.
    cal_holdout : DataFrame
        From :func:`calibration_holdout_summary`.
    max_frequency : int
        Calibration frequencies ``>= max_frequency`` are pooled into one ``"7+"`` bucket.

    Returns
    -------
    DataFrame
        One row per bucket plus ``"all"``: ``customers``, ``actual`` and ``predicted`` total
        holdout repeat purchases, their means per customer and ``error_pct`` (predicted vs actual).

    Examples
    --------
    >>> s = simulate_customers(800, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> s = s.assign(frequency_holdout=1, duration_holdout_days=91.0)
    >>> table = holdout_check(BetaGeoModel().fit(s), s)
    >>> table["frequency_bucket"].iloc[-1], int(table["customers"].iloc[-1]), int(table["actual"].iloc[-1])
    ('all', 800, 800)
    """
    days = cal_holdout["duration_holdout_days"].to_numpy(dtype=float)
    predicted = model.predict(cal_holdout, days)
    freq = cal_holdout["frequency"].to_numpy(dtype=int)
    labels = [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]
    bucket = pd.Categorical.from_codes(np.minimum(freq, max_frequency), categories=labels)
    frame = pd.DataFrame({"frequency_bucket": bucket, "actual": cal_holdout["frequency_holdout"].to_numpy(dtype=float),
                          "predicted": predicted})
    grouped = frame.groupby("frequency_bucket", observed=True).agg(
        customers=("actual", "size"), actual=("actual", "sum"), predicted=("predicted", "sum"))
    total = pd.DataFrame({"customers": [len(frame)], "actual": [frame["actual"].sum()],
                          "predicted": [frame["predicted"].sum()]}, index=pd.Index(["all"]))
    table = pd.concat([grouped.set_axis(grouped.index.astype(str)), total])
    table.index.name = "frequency_bucket"
    table["actual_per_customer"] = table["actual"] / table["customers"]
    table["predicted_per_customer"] = table["predicted"] / table["customers"]
    table["error_pct"] = np.where(table["actual"] > 0,
                                  100 * (table["predicted"] - table["actual"]) / table["actual"].where(table["actual"] > 0),
                                  np.nan)
    return table.reset_index()
