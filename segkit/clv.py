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
  gives the total log-likelihood in the data's own time unit, comparable with the literature;
* BG/NBD is fitted on the distinct ``(frequency, recency, T)`` patterns weighted by their number
  of customers (:func:`purchase_patterns`, Fader & Hardie's condensed table, lifetimes'
  ``weights``): the same estimates and standard errors as one term per customer, in less time
  (100k customers of a generated shop condense to 64k patterns; CDNOW's 2,357 to 1,016).

One-time buyers
---------------
BG/NBD lets a customer drop out only right after a *repeat* purchase, so every one-time buyer
gets P(alive) = 1 whatever their age: an artefact of the model, not a prediction (on the bundled
sample 21 % of the one-time buyers are really still customers). :class:`OneTimeBuyerModel`
replaces it by an estimate read from the data: the Kaplan-Meier curve of the time from the first
to the second purchase day over all buyers gives, for a one-time buyer of age ``T`` days, the share
of customers still without a second purchase at ``T`` who went on to buy again (within the
longest gap the data can show). Their expected purchases over a horizon ``t`` become that
curve's chance of a second purchase within ``t`` times BG/NBD's expected purchases of a customer
who buys at least once in ``t`` (:func:`expected_purchases`); repeat buyers keep BG/NBD's numbers.

Identification
--------------
Standard errors come from lifetimes' Hessian (on the log parameters). A parameter whose standard
error exceeds its estimate (``max_relative_se``), or a shape parameter run off to 0 or infinity,
is reported in ``weak_parameters_``: the data do not pin it down, and predictions that depend on
it (P(alive) after long silences for BG/NBD's ``a, b``) deserve the holdout check before use.

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
from segkit.rfm import customer_codes, day_pairs_sorted, lifetimes_summary

#: Time unit of the model inputs, in days (weeks, as in Fader, Hardie & Lee 2005).
TIME_UNIT_DAYS = 7
#: Average month length used for CLV horizons and the 90-day window conversions.
DAYS_PER_MONTH = 365.25 / 12
SUMMARY_COLUMNS = ("frequency", "recency", "T")
#: Gradient tolerances tried in turn. The objective is lifetimes' mean negative log-likelihood
#: per customer, so 1e-6 is still a very tight optimum; BFGS at 1e-7 often stops with "precision
#: loss" on flat ridges (e.g. a, b -> infinity when every customer has the same dropout chance).
TOLERANCES = (1e-7, 1e-6, 1e-5)
#: A fitted shape parameter outside these bounds has run off to 0 or infinity (weakly identified).
SHAPE_BOUNDS = (1e-3, 1e3)


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


def purchase_patterns(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct ``(frequency, recency, T)`` patterns and how many customers have each.

    The BG/NBD likelihood depends on a customer only through these three numbers, so customers
    with the same pattern contribute the same term: Fader & Hardie fit on the condensed table
    with the counts as weights (lifetimes' ``weights``). The estimates and standard errors are
    those of the customer-level fit; ten million customers condense to far fewer patterns.

    Examples
    --------
    >>> x, tx, T = np.array([0.0, 0, 2]), np.array([0.0, 0, 5]), np.array([9.0, 9, 9])
    >>> [a.tolist() for a in purchase_patterns(x, tx, T)]
    [[0.0, 2.0], [0.0, 5.0], [9.0, 9.0], [2, 1]]
    """
    patterns, counts = np.unique(np.column_stack([frequency, recency, T]), axis=0, return_counts=True)
    return patterns[:, 0], patterns[:, 1], patterns[:, 2], counts


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


def weak_parameters(
    params: dict[str, float],
    standard_errors: dict[str, float],
    max_relative_se: float = 1.0,
    shapes: tuple[str, ...] = (),
) -> list[str]:
    """Names of the parameters the data do not pin down.

    A parameter is weakly identified when its standard error is not finite (flat likelihood,
    singular Hessian) or larger than ``max_relative_se`` times its estimate, or, for the
    scale-free ``shapes``, when it lies outside :data:`SHAPE_BOUNDS` (run off to 0 or infinity).

    Parameters
    ----------
    params, standard_errors : dict
        Estimates and their standard errors by name.
    max_relative_se : float
        Largest acceptable standard error as a multiple of the estimate.
    shapes : tuple of str
        Scale-free parameters checked against :data:`SHAPE_BOUNDS` (not money or time scales).

    Returns
    -------
    list of str
        In the order of ``params``.

    Examples
    --------
    >>> weak_parameters({"r": 0.7, "a": 1.84, "b": 70.6}, {"r": 0.03, "a": 2.23, "b": 91.9})
    ['a', 'b']
    >>> weak_parameters({"r": 0.7, "b": 5e3}, {"r": 0.03, "b": 10.0}, shapes=("r", "b"))
    ['b']
    """
    weak = []
    for name, value in params.items():
        se = float(standard_errors.get(name, float("nan")))
        bad_se = not math.isfinite(se) or se > max_relative_se * abs(value)
        off = name in shapes and not SHAPE_BOUNDS[0] <= value <= SHAPE_BOUNDS[1]
        if bad_se or off:
            weak.append(name)
    return weak


def _log_covariance(fitter: Any) -> pd.DataFrame | None:
    """Covariance of the log parameters from lifetimes' ``variance_matrix_``.

    lifetimes stores ``params_**2 * inv(hessian) / n`` with the squared estimates broadcast over
    the columns (only its diagonal is the delta-method variance); dividing each column by the
    square of its estimate recovers ``inv(hessian) / n``, the covariance of the log parameters.
    """
    try:
        theta = fitter.params_.to_numpy(dtype=float)
        with _quiet_lifetimes():
            variance = fitter.variance_matrix_.to_numpy(dtype=float)
        cov = variance / theta[None, :] ** 2
    except (AttributeError, ValueError, np.linalg.LinAlgError):
        return None
    cov = (cov + cov.T) / 2
    return pd.DataFrame(cov, index=fitter.params_.index, columns=fitter.params_.index)


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
    max_relative_se : float
        A parameter whose standard error exceeds this multiple of its estimate is listed in
        ``weak_parameters_``.

    Attributes
    ----------
    params_ : dict
        ``r, alpha, a, b`` (``alpha`` in time units).
    log_likelihood_ : float
        Total log-likelihood in the data's time unit.
    standard_errors_ : dict
        Asymptotic standard errors of the parameters (NaN where the Hessian is not invertible).
    weak_parameters_ : list of str
        Parameters the data do not pin down (:func:`weak_parameters`; ``r, a, b`` are shapes).
    dropout_mean_se_ : float
        Standard error of the mean dropout chance ``a / (a + b)`` (delta method on the log
        parameters): often small when ``a`` and ``b`` themselves are weakly identified.
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
                 time_unit_days: float = TIME_UNIT_DAYS, max_relative_se: float = 1.0):
        self.penalizer_coef = penalizer_coef
        self.min_repeat_buyers = min_repeat_buyers
        self.time_unit_days = time_unit_days
        self.max_relative_se = max_relative_se

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
            fitter, purchase_patterns(x, summary["recency"].to_numpy(dtype=float), summary["T"].to_numpy(dtype=float)),
            f"BG/NBD did not converge on {len(x):,} customers ({repeat:,} repeat buyers)")
        params = {k: float(v) for k, v in fitter.params_.items()}
        if not all(np.isfinite(v) and v > 0 for v in params.values()):
            raise ModelFitError(f"BG/NBD fit returned invalid parameters {params}. Try a small penalizer.")
        self.params_ = params
        self.standard_errors_ = {k: float(v) for k, v in fitter.standard_errors_.items()}
        self.weak_parameters_ = weak_parameters(params, self.standard_errors_, self.max_relative_se,
                                                shapes=("r", "a", "b"))
        self.dropout_mean_se_ = float("nan")
        cov = _log_covariance(fitter)
        if cov is not None:
            a, b = params["a"], params["b"]
            slope = a * b / (a + b) ** 2  # d(a/(a+b)) / d(log a) = -d(a/(a+b)) / d(log b)
            var = slope ** 2 * (cov.loc["a", "a"] + cov.loc["b", "b"] - 2 * cov.loc["a", "b"])
            self.dropout_mean_se_ = float(np.sqrt(var)) if var >= 0 else float("nan")
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
        purchase, so one-time buyers (``frequency == 0``) always get P(alive) = 1: an artefact,
        see :class:`OneTimeBuyerModel` for an estimate from the data.
        """
        x, tx, t_age = self._arrays(summary)
        with _quiet_lifetimes():
            out = self._fitter.conditional_probability_alive(x, tx, t_age)
        return np.asarray(out, dtype=float).reshape(len(x))

    def p_purchase_within(self, summary: pd.DataFrame, days: float | np.ndarray) -> np.ndarray:
        """Probability of at least one purchase in the next ``days`` days.

        A customer alive at ``T`` cannot drop out before their next purchase, and given alive
        their purchase rate is ``Gamma(r + x, alpha + T)``, so
        ``P(X(T, T + t) > 0) = P(alive) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x))``.

        Examples
        --------
        >>> s = simulate_customers(500, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
        >>> m = BetaGeoModel().fit(s)
        >>> near, far = m.p_purchase_within(s, 7.0), m.p_purchase_within(s, 1e9)
        >>> bool((near < far).all()), bool((far <= m.p_alive(s)).all())
        (True, True)
        """
        x, tx, t_age = self._arrays(summary)
        r, alpha = self.params_["r"], self.params_["alpha"]
        t = np.asarray(days, dtype=float) / self.time_unit_days
        silent = ((alpha + t_age) / (alpha + t_age + t)) ** (r + x)
        return self.p_alive(summary) * (1.0 - silent)

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
                "weak_parameters": list(self.weak_parameters_), "max_relative_se": float(self.max_relative_se),
                "dropout_mean": self.dropout_mean_, "dropout_mean_se": self.dropout_mean_se_,
                "optimizer_tol": self.tol_})


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
    max_relative_se : float
        A parameter whose standard error exceeds this multiple of its estimate is listed in
        ``weak_parameters_``.

    Attributes
    ----------
    params_ : dict
        ``p, q, v`` (``v`` is the paper's gamma).
    standard_errors_ : dict
        Asymptotic standard errors of the parameters.
    weak_parameters_ : list of str
        Parameters the data do not pin down (:func:`weak_parameters`; ``p, q`` are shapes).
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

    def __init__(self, penalizer_coef: float = 0.0, min_repeat_buyers: int = 10, max_relative_se: float = 1.0):
        self.penalizer_coef = penalizer_coef
        self.min_repeat_buyers = min_repeat_buyers
        self.max_relative_se = max_relative_se

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
        self.weak_parameters_ = weak_parameters(params, self.standard_errors_, self.max_relative_se,
                                                shapes=("p", "q"))
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
                "weak_parameters": list(self.weak_parameters_), "optimizer_tol": self.tol_,
                "population_mean_order_value": self.population_mean_,
                "frequency_monetary_corr": self.frequency_monetary_corr_})


def first_repeat_durations(
    purchases: pd.DataFrame, observation_period_end: str | pd.Timestamp
) -> pd.DataFrame:
    """Days from each customer's first purchase day to their second, censored at the end.

    Parameters
    ----------
    purchases : DataFrame
        ``customer_id, order_date``: one row per purchase (several on one day are one purchase day).
    observation_period_end : str or Timestamp
        Last day observed, inclusive (as for :func:`clv_summary`); later purchases are ignored.

    Returns
    -------
    DataFrame
        Index ``customer_id`` (sorted): ``days`` (to the second purchase day, or to the end for
        customers without one) and ``repeated`` (a second purchase day was seen).

    Examples
    --------
    >>> p = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...     "order_date": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-11 10:00",
    ...                                   "2024-01-20 12:00"])})
    >>> first_repeat_durations(p, "2024-01-31")  # doctest: +NORMALIZE_WHITESPACE
                 days  repeated
    customer_id
    a            10.0      True
    b            11.0     False
    """
    end = pd.Timestamp(observation_period_end).normalize()
    codes, ids = customer_codes(purchases["customer_id"])  # integer codes: fast on tens of millions of rows
    day = purchases["order_date"].dt.normalize().to_numpy()
    keep = day <= end.to_datetime64()
    codes, day = codes[keep], day[keep]
    if not day_pairs_sorted(codes, day):
        pairs = pd.DataFrame({"c": codes, "day": day}).drop_duplicates().sort_values(["c", "day"])
        codes, day = pairs["c"].to_numpy(), pairs["day"].to_numpy()
    first_row = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    second_row = first_row + 1
    repeated = np.zeros(len(first_row), dtype=bool)
    inside = second_row < len(codes)
    repeated[inside] = codes[second_row[inside]] == codes[first_row[inside]]
    second = np.full(len(first_row), end.to_datetime64()).astype(day.dtype)
    second[repeated] = day[second_row[repeated]]
    gap = (second - day[first_row]).astype("timedelta64[D]").astype("float64")
    return pd.DataFrame({"days": gap, "repeated": repeated},
                        index=pd.Index(ids.take(codes[first_row]), dtype="string", name="customer_id"))


class OneTimeBuyerModel(BaseEstimator):
    """P(alive) and purchase chances of one-time buyers, read from the data (Kaplan-Meier).

    BG/NBD gives every one-time buyer P(alive) = 1 (dropout can only follow a repeat purchase).
    This estimator instead fits the Kaplan-Meier survival curve ``S(d)`` of the time from the
    first to the second purchase day over all buyers (customers without a second purchase are
    censored at their age) and answers, for a one-time buyer aged ``T`` days:

    - :meth:`p_alive`: the share of customers still without a second purchase at ``T`` who went
      on to make one, ``(S(T) - S(end)) / S(T)``, with ``end`` the longest gap seen in the data
      (a customer who would only come back after longer than that is counted as gone);
    - :meth:`p_purchase_within`: the share who made it within ``t`` more days,
      ``(S(T) - S(T + t)) / S(T)``.

    Parameters
    ----------
    min_repeat_buyers : int
        Fewer second purchases than this raises :class:`ModelFitError`.

    Attributes
    ----------
    days_ : ndarray
        Distinct gaps (days) at which second purchases happened, ascending.
    survival_ : ndarray
        ``S`` just after each of ``days_``: the share still without a second purchase.
    n_customers_, n_repeat_buyers_ : int
        Buyers fitted and those with a second purchase.
    follow_up_days_ : float
        Longest first-to-second gap seen (``days_[-1]``): the horizon of :meth:`p_alive`.
    never_share_ : float
        ``S(end)``: estimated share of buyers who never buy a second time (within the follow-up).

    Examples
    --------
    >>> m = OneTimeBuyerModel(min_repeat_buyers=1).fit([10, 20, 30, 40, 50], [True, True, False, True, False])
    >>> m.survival_.round(2).tolist(), round(m.never_share_, 2)
    ([0.8, 0.6, 0.3], 0.3)
    >>> m.p_alive([25.0]).round(2).tolist(), m.p_purchase_within([25.0], 20.0).round(2).tolist()
    ([0.5], [0.5])
    """

    def __init__(self, min_repeat_buyers: int = 10):
        self.min_repeat_buyers = min_repeat_buyers

    def fit(self, days: Any, repeated: Any) -> "OneTimeBuyerModel":
        """Fit on each buyer's days to the second purchase (or to the end) and whether it happened.

        Parameters
        ----------
        days : array_like
            Days from the first purchase day to the second, or to the last observed day.
        repeated : array_like of bool
            True where the second purchase was seen (False = censored).

        Raises
        ------
        DataError
            Missing or negative days, or lengths that differ.
        ModelFitError
            Fewer than ``min_repeat_buyers`` second purchases.
        """
        d = np.asarray(days, dtype=float)
        event = np.asarray(repeated, dtype=bool)
        if d.shape != event.shape or d.ndim != 1:
            raise DataError("OneTimeBuyerModel.fit: days and repeated must be 1-d and of the same length "
                            "(build them with segkit.clv.first_repeat_durations).")
        if not np.isfinite(d).all() or (d < 0).any():
            raise DataError(f"OneTimeBuyerModel.fit: {int((~np.isfinite(d) | (d < 0)).sum())} durations are "
                            "missing or negative; rebuild them with segkit.clv.first_repeat_durations.")
        n_events = int(event.sum())
        if n_events < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"One-time buyer model not fitted: only {n_events:,} of {len(d):,} buyers made a second "
                f"purchase (at least {self.min_repeat_buyers:,} needed). P(alive) of one-time buyers stays empty.")
        times, events = np.unique(d[event], return_counts=True)
        at_risk = len(d) - np.searchsorted(np.sort(d), times, side="left")
        self.days_ = times
        self.survival_ = np.cumprod(1.0 - events / at_risk)
        self.n_customers_ = int(len(d))
        self.n_repeat_buyers_ = n_events
        self.follow_up_days_ = float(times[-1])
        self.never_share_ = float(self.survival_[-1])
        return self

    def survival(self, days: Any) -> np.ndarray:
        """``S(d)``: the share of buyers still without a second purchase ``d`` days after the first."""
        check_is_fitted(self, "survival_")
        d = np.asarray(days, dtype=float)
        i = np.searchsorted(self.days_, d, side="right") - 1
        return np.where(i >= 0, self.survival_[np.maximum(i, 0)], 1.0)

    def _conditional(self, age_days: Any, later: np.ndarray) -> np.ndarray:
        now = self.survival(age_days)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(now > 0, (now - later) / now, 0.0)

    def p_alive(self, age_days: Any) -> np.ndarray:
        """Share of one-time buyers of this age (days since the first purchase) who bought again."""
        check_is_fitted(self, "survival_")
        return self._conditional(age_days, np.full(np.shape(age_days), self.never_share_))

    def p_purchase_within(self, age_days: Any, days: Any) -> np.ndarray:
        """Share of one-time buyers of this age who made a second purchase within ``days`` more days."""
        return self._conditional(age_days, self.survival(np.asarray(age_days, dtype=float) + np.asarray(days, dtype=float)))

    def to_dict(self) -> dict[str, Any]:
        """Summary for ``clv_model.json``."""
        check_is_fitted(self, "survival_")
        return _json_safe({"method": "Kaplan-Meier of the days from the first to the second purchase day",
                           "n_customers": self.n_customers_, "n_repeat_buyers": self.n_repeat_buyers_,
                           "follow_up_days": self.follow_up_days_, "never_share": self.never_share_})


def expected_purchases(
    bgnbd: BetaGeoModel, summary: pd.DataFrame, days: float, one_time: OneTimeBuyerModel | None = None
) -> np.ndarray:
    """Expected purchases in the next ``days`` days; one-time buyers from the data when possible.

    Repeat buyers: BG/NBD's conditional expectation. One-time buyers, given ``one_time``: the
    chance of a second purchase within ``days`` read from the data
    (:meth:`OneTimeBuyerModel.p_purchase_within`) times BG/NBD's expected purchases of a
    customer who buys at least once in that time, ``E[X] / P(X > 0)``. Without ``one_time``
    this is :meth:`BetaGeoModel.predict`.

    Examples
    --------
    >>> s = simulate_customers(800, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> bg = BetaGeoModel().fit(s)
    >>> flat = OneTimeBuyerModel(min_repeat_buyers=1).fit([7.0, 700.0], [True, False])  # half never return
    >>> one = (s["frequency"] == 0).to_numpy()
    >>> got, plain = expected_purchases(bg, s, 90.0, flat), bg.predict(s, 90.0)
    >>> bool(np.allclose(got[~one], plain[~one])), bool((got[one] < plain[one]).all())
    (True, True)
    """
    base = np.asarray(bgnbd.predict(summary, days), dtype=float)
    if one_time is None:
        return base
    one = summary["frequency"].to_numpy(dtype=float) == 0
    if not one.any():
        return base
    rows = summary[one]
    age = rows["T"].to_numpy(dtype=float) * bgnbd.time_unit_days
    per_buyer = base[one] / bgnbd.p_purchase_within(rows, days)
    out = base.copy()
    out[one] = one_time.p_purchase_within(age, days) * per_buyer
    return out


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
    one_time: OneTimeBuyerModel | None = None,
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
    one_time : OneTimeBuyerModel, optional
        Given, one-time buyers' expected purchases come from :func:`expected_purchases` (the
        data's chance of a second purchase instead of BG/NBD's P(alive) = 1).

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
        cumulative = expected_purchases(bgnbd, summary, month * days_per_month, one_time)
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
        ``(calibration_end, observation_end]``), ``revenue_holdout`` (their amounts; present when
        ``purchases`` has ``amount``) and ``duration_holdout_days``.

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
    in_holdout = ((day > cal_end) & (day <= obs_end)).to_numpy()
    codes, ids = customer_codes(purchases["customer_id"])  # integer codes: fast on tens of millions of rows
    hold = pd.DataFrame({"c": codes[in_holdout], "day": day.to_numpy()[in_holdout]})
    counts = hold.drop_duplicates().groupby("c").size()
    counts.index = ids.take(counts.index.to_numpy())
    cal["frequency_holdout"] = counts.reindex(cal.index, fill_value=0).astype("int64")
    if "amount" in purchases.columns:
        revenue = pd.Series(purchases["amount"].to_numpy(dtype="float64")[in_holdout]).groupby(hold["c"].to_numpy()).sum()
        revenue.index = ids.take(revenue.index.to_numpy())
        cal["revenue_holdout"] = revenue.reindex(cal.index, fill_value=0.0).astype("float64")
    cal["duration_holdout_days"] = float((obs_end - cal_end).days)
    return cal


def holdout_check(
    model: BetaGeoModel, cal_holdout: pd.DataFrame, max_frequency: int = 7,
    one_time: OneTimeBuyerModel | None = None,
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
    one_time : OneTimeBuyerModel, optional
        Fitted on the calibration period: one-time buyers' predictions from
        :func:`expected_purchases` (as exported) instead of plain BG/NBD.

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
    if one_time is not None:
        predicted = expected_purchases(model, cal_holdout, days[0] if len(days) else 0.0, one_time)
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


def p_alive_calibration(
    p_alive: Any, p_purchase: Any, purchased: Any, bins: int = 10
) -> pd.DataFrame:
    """Predicted P(alive) and purchase chance against who bought in the holdout, by decile.

    Customers are ranked by predicted P(alive) at the cut-off (ties broken by the predicted
    chance of a purchase, then by position) and cut into ``bins`` groups of equal size. Per
    group: the mean P(alive), the mean predicted chance of at least one purchase in the
    holdout (the like-for-like prediction: a customer alive but slow may not buy in a short
    holdout, so P(alive) is an upper bound) and the share that actually bought.

    Parameters
    ----------
    p_alive, p_purchase : array_like
        Predicted at the cut-off for each customer.
    purchased : array_like of bool
        Whether each customer bought in the holdout.
    bins : int
        Groups (10 = deciles).

    Returns
    -------
    DataFrame
        ``decile`` (1 = lowest P(alive)), ``customers``, ``p_alive``, ``predicted_share``
        (purchase chance), ``actual_share``, ``gap`` (predicted - actual).

    Examples
    --------
    >>> t = p_alive_calibration([0.1, 0.2, 0.9, 1.0], [0.1, 0.1, 0.8, 0.9], [False, False, True, True], bins=2)
    >>> t["customers"].tolist(), t["predicted_share"].round(2).tolist(), t["actual_share"].tolist()
    ([2, 2], [0.1, 0.85], [0.0, 1.0])
    """
    frame = pd.DataFrame({"p_alive": np.asarray(p_alive, dtype=float), "predicted_share": np.asarray(p_purchase, dtype=float),
                          "actual_share": np.asarray(purchased, dtype=bool).astype(float)})
    frame = frame.dropna(subset=["p_alive", "predicted_share"])
    if frame.empty:
        return pd.DataFrame(columns=["decile", "customers", "p_alive", "predicted_share", "actual_share", "gap"])
    order = np.lexsort((np.arange(len(frame)), frame["predicted_share"].to_numpy(), frame["p_alive"].to_numpy()))
    group = np.empty(len(frame), dtype=int)
    group[order] = (np.arange(len(frame)) * min(bins, len(frame))) // len(frame) + 1
    table = frame.groupby(group).agg(customers=("p_alive", "size"), p_alive=("p_alive", "mean"),
                                     predicted_share=("predicted_share", "mean"), actual_share=("actual_share", "mean"))
    table = table.rename_axis("decile").reset_index()
    table["gap"] = table["predicted_share"] - table["actual_share"]
    return table.astype({"decile": "int64", "customers": "int64"})


def calibration_error(table: pd.DataFrame) -> float:
    """Customer-weighted mean absolute gap between predicted and actual purchase shares.

    Examples
    --------
    >>> calibration_error(pd.DataFrame({"customers": [1, 3], "gap": [0.2, -0.1]}))
    0.125
    """
    if table.empty:
        return float("nan")
    weights = table["customers"].to_numpy(dtype=float)
    return float(np.sum(weights * np.abs(table["gap"].to_numpy(dtype=float))) / weights.sum())
