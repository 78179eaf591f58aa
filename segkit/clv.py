"""Customer lifetime value: BG/NBD (repeat purchases, P(alive)) and Gamma-Gamma (order value).

Both models are fitted by maximum likelihood with :func:`scipy.optimize.minimize` on the
log-likelihoods of Fader, Hardie & Lee (2005; Hardie's notes 004 and 025), written here with
:mod:`scipy.special` (``gammaln``, ``digamma``, ``hyp2f1``) and their analytic gradients:

* the parameters are optimised on the log scale (always positive) with the mean negative
  log-likelihood per customer as the objective; :func:`fit_maximum_likelihood` tries the
  methods of :data:`OPTIMIZER_METHODS` from several starting points until the largest gradient
  is below :data:`GRADIENT_TOLERANCE`, finishes with Newton steps on a finite-difference Hessian,
  and otherwise raises a :class:`segkit.core.errors.ModelFitError` that lists what was tried and what
  to do: a model never comes back silently empty;
* standard errors come from the inverse Hessian of the log-likelihood (on the log parameters,
  transformed by the delta method), as in ``lifetimes``, which the tests use as the reference;
* BG/NBD is fitted on the distinct ``(frequency, recency, T)`` patterns weighted by their number
  of customers (:func:`purchase_patterns`, Fader & Hardie's condensed table): the same estimates
  and standard errors as one term per customer, in less time (100k customers of a generated shop
  condense to 64k patterns; CDNOW's 2,357 to 1,016); time is divided by the oldest customer's
  age during the fit, so that ``alpha`` is of order one whatever the time unit;
* Gamma-Gamma is fitted on order values divided by the median mean order value of the repeat
  buyers (:attr:`GammaGammaModel.money_scale_`), and ``v`` is reported in the data's money unit
  (``p`` and ``q`` carry no unit): a currency or a unit (cents, thousands) does not change the
  fit, and amounts of 1e12 or 1e-4 per order fit as well as amounts of 10.

The models persist as JSON (``to_dict``) and are restored with ``from_dict`` without refitting.

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
A parameter whose standard error exceeds its estimate (``max_relative_se``), or a shape parameter
run off to 0 or infinity, is reported in ``weak_parameters_``: the data do not pin it down, and
predictions that depend on it (P(alive) after long silences for BG/NBD's ``a, b``) deserve the
holdout check before use.

Time discretisation (reproducing Fader, Hardie & Lee 2005)
----------------------------------------------------------
The BG/NBD inputs are ``frequency`` (repeat purchase *days*), ``recency`` and ``T``, measured in
**weeks as days / 7** (``time_unit_days=7``: lifetimes' ``freq="D", freq_multiplier=7``). On the
CDNOW sample (2,357 customers, calibration ending 1997-09-30) this reproduces the paper exactly:
946 repeat buyers, r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, log-likelihood -9582.4, and
Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44 (log-likelihood -4055.92). Calendar weeks
(``freq="W"``) do not: purchases in the same Monday-Sunday week merge (935 repeat buyers) and
ages round to whole weeks, giving r = 0.291, alpha = 6.852, a = 0.665, b = 2.320.

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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from segkit.core.errors import DataError, ModelFitError
from segkit.data.bounded import sample_positions
from segkit.data.distribution import ValueDistribution, condense, whole_counts
from segkit.data.orders import customer_codes, day_pairs_sorted, lifetimes_summary

__all__ = ["TIME_UNIT_DAYS", "DAYS_PER_MONTH", "SUMMARY_COLUMNS", "OPTIMIZER_METHODS", "GRADIENT_TOLERANCE",
    "POLISH_FROM", "SHAPE_BOUNDS", "HESSIAN_STEP", "BGNBD_PARAMETERS", "GAMMA_GAMMA_PARAMETERS",
    "clv_summary", "simulate_customers", "MaximumLikelihoodFit", "Objective", "numeric_hessian",
    "fit_maximum_likelihood", "log_covariance", "standard_errors", "purchase_patterns", "FrequencyLevels",
    "PATTERN_COLUMNS", "ORDER_VALUE_COLUMNS", "FIRST_REPEAT_COLUMNS", "purchase_pattern_table",
    "order_value_table", "order_value_sample", "first_repeat_table", "weighted_correlation",
    "bgnbd_log_likelihood", "gamma_gamma_log_likelihood", "weak_parameters", "BetaGeoModel",
    "GammaGammaModel", "first_repeat_durations", "OneTimeBuyerModel", "expected_purchases",
    "monthly_discount_rate", "customer_lifetime_value", "calibration_holdout_summary", "holdout_check",
    "p_alive_calibration", "calibration_error", "Z_95", "wilson_interval", "ranking_auc", "decile_calibration",
    "MIN_BIN_CUSTOMERS", "MAX_CALIBRATION_BINS", "ChanceCalibrator", "cross_fitted_calibration"]

#: Time unit of the model inputs, in days (weeks, as in Fader, Hardie & Lee 2005).
TIME_UNIT_DAYS = 7
#: Average month length used for CLV horizons and the 90-day window conversions.
DAYS_PER_MONTH = 365.25 / 12
SUMMARY_COLUMNS = ("frequency", "recency", "T")
#: Optimisers tried in turn from each starting point (each from where the previous one got to):
#: BFGS with the analytic gradient (lifetimes' choice), L-BFGS-B, then the gradient-free
#: Nelder-Mead, which still moves where a line search gives up (flat ridges, overflow).
OPTIMIZER_METHODS = ("BFGS", "L-BFGS-B", "Nelder-Mead")
#: Largest absolute gradient of the objective (mean negative log-likelihood per customer, on the
#: log parameters) accepted as an optimum; the loosest tolerance segkit accepted from lifetimes.
GRADIENT_TOLERANCE = 1e-5
#: Newton steps finish an optimiser's estimate when its largest gradient is at most this.
POLISH_FROM = 100 * GRADIENT_TOLERANCE
#: A fitted shape parameter outside these bounds has run off to 0 or infinity (weakly identified).
SHAPE_BOUNDS = (1e-3, 1e3)
#: Step (on the log parameters) of the central differences of the gradient that give the Hessian.
HESSIAN_STEP = 1e-5
BGNBD_PARAMETERS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")


def clv_summary(
    purchases: pd.DataFrame,
    observation_period_end: str | pd.Timestamp,
    time_unit_days: float = TIME_UNIT_DAYS,
) -> pd.DataFrame:
    """Per-customer BG/NBD / Gamma-Gamma inputs from purchases (lifetimes' summary format).

    :func:`segkit.data.orders.lifetimes_summary` (equal to lifetimes' ``summary_data_from_transaction_data``)
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


@dataclass(frozen=True)
class MaximumLikelihoodFit:
    """Where :func:`fit_maximum_likelihood` ended and how it got there.

    Attributes
    ----------
    log_params : ndarray
        Estimates on the log scale.
    objective : float
        Objective at the estimates (mean negative log-likelihood per customer, plus penalty).
    hessian : ndarray
        Hessian of the objective on the log parameters (central differences of the gradient),
        taken where the Newton steps started: within the optimiser's tolerance of the estimates.
    max_abs_gradient : float
        Largest absolute gradient left at the estimates.
    method : str
        Optimiser of :data:`OPTIMIZER_METHODS` that reached the optimum.
    start : int
        Index of the starting point it was reached from (0 = the first).
    iterations : int
        Optimiser iterations, all attempts together (Newton steps included).
    """

    log_params: np.ndarray
    objective: float
    hessian: np.ndarray
    max_abs_gradient: float
    method: str
    start: int
    iterations: int

    def report(self) -> dict[str, Any]:
        """JSON-ready summary of the optimisation (for ``clv_model.json``)."""
        return {"method": self.method, "start": self.start, "iterations": self.iterations,
                "max_abs_gradient": self.max_abs_gradient}


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _guarded(objective: Objective) -> Objective:
    """The objective with overflow and invalid values turned into +inf (the optimisers back off)."""
    def value_and_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            value, gradient = objective(np.asarray(log_params, dtype=float))
        if not (math.isfinite(value) and np.isfinite(gradient).all()):
            return math.inf, np.zeros_like(gradient)
        return value, gradient
    return value_and_gradient


def numeric_hessian(objective: Objective, log_params: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """Symmetrised central differences of the analytic gradient.

    Examples
    --------
    >>> quadratic = lambda x: (float(x @ x + x[0] * x[1]), 2 * x + x[::-1])
    >>> numeric_hessian(quadratic, np.array([0.3, -1.0])).round(6).tolist()
    [[2.0, 1.0], [1.0, 2.0]]
    """
    k = len(log_params)
    hessian = np.empty((k, k))
    for i in range(k):
        shift = np.zeros(k)
        shift[i] = step
        hessian[i] = (objective(log_params + shift)[1] - objective(log_params - shift)[1]) / (2 * step)
    return (hessian + hessian.T) / 2


def _newton_polish(objective: Objective, x: np.ndarray, steps: int = 8) -> tuple[np.ndarray, int, np.ndarray]:
    """Newton steps from ``x`` with the Hessian at ``x`` while the gradient shrinks; returns the
    end point, the steps taken and that Hessian (no steps when it is not positive definite).

    Near the optimum one Hessian is enough: each step then costs one evaluation, and the Hessian
    (at a point within the optimiser's tolerance of the optimum) serves for the standard errors.
    """
    value, gradient = objective(x)
    hessian = numeric_hessian(objective, x)
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return x, 0, hessian
    done = 0
    for _ in range(steps):
        if not math.isfinite(value) or np.max(np.abs(gradient)) < 1e-13:
            break
        candidate = x - np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
        new_value, new_gradient = objective(candidate)
        if not (new_value <= value + 1e-12 * (1 + abs(value))
                and np.max(np.abs(new_gradient)) < np.max(np.abs(gradient))):
            break
        x, value, gradient = candidate, new_value, new_gradient
        done += 1
    return x, done, hessian


def _minimize(objective: Objective, start: np.ndarray, method: str) -> optimize.OptimizeResult:
    """One run of :func:`scipy.optimize.minimize` with the method's tolerances and iteration caps.

    BFGS stops at lifetimes' gradient tolerance (1e-7), L-BFGS-B at a tighter one; Newton steps
    finish the job. The caps bound a failing fit (normally BFGS needs 20-40 iterations).
    """
    if method == "Nelder-Mead":
        return optimize.minimize(lambda x: objective(x)[0], start, method=method,
                                 options={"xatol": 1e-10, "fatol": 1e-15, "maxfev": 1000 * len(start)})
    options = {"gtol": 1e-7, "maxiter": 400} if method == "BFGS" else {"gtol": 1e-9, "ftol": 1e-15, "maxiter": 1000}
    return optimize.minimize(objective, start, jac=True, method=method, options=options)


def fit_maximum_likelihood(objective: Objective, starts: Sequence[np.ndarray], failure: str, advice: str) -> MaximumLikelihoodFit:
    """Minimise a mean negative log-likelihood over log parameters, robustly.

    From each starting point in turn, the methods of :data:`OPTIMIZER_METHODS` run one after the
    other (each from the best point found so far) until the largest absolute gradient is at most
    :data:`GRADIENT_TOLERANCE`. Newton steps on :func:`numeric_hessian` finish an estimate that is
    nearly there (gradient at most :data:`POLISH_FROM`), to the optimum's numerical precision.
    The first starting point that converges gives the fit.

    Parameters
    ----------
    objective : callable
        ``log_params -> (value, gradient)``.
    starts : sequence of ndarray
        Starting points on the log scale, tried in order.
    failure : str
        Beginning of the error message (which model, on which data).
    advice : str
        End of the error message: what the user can do.

    Returns
    -------
    MaximumLikelihoodFit

    Raises
    ------
    ModelFitError
        No starting point and method converged; the message lists the attempts.

    Examples
    --------
    >>> bowl = lambda x: (float(np.sum((x - 1.0) ** 2)), 2 * (x - 1.0))
    >>> fit = fit_maximum_likelihood(bowl, [np.zeros(2)], "bowl", "")
    >>> fit.log_params.round(8).tolist(), fit.method, fit.start
    ([1.0, 1.0], 'BFGS', 0)
    """
    guarded = _guarded(objective)
    attempts: list[str] = []
    iterations = 0
    for index, start in enumerate(starts):
        best = np.asarray(start, dtype=float)
        best_value, best_gradient = guarded(best)
        for method in OPTIMIZER_METHODS:
            result = _minimize(guarded, best, method)
            iterations += int(getattr(result, "nit", 0) or 0)
            if np.isfinite(result.x).all():
                value, gradient = guarded(result.x)
                if value <= best_value or not math.isfinite(best_value):
                    best, best_value, best_gradient = np.asarray(result.x, dtype=float), value, gradient
            if not math.isfinite(best_value):
                attempts.append(f"start {index + 1} {method}: objective not finite")
                continue
            largest = float(np.max(np.abs(best_gradient)))
            if largest <= POLISH_FROM:
                best, steps, hessian = _newton_polish(guarded, best)  # takes only improving steps
                iterations += steps
                best_value, best_gradient = guarded(best)
                largest = float(np.max(np.abs(best_gradient)))
                if largest <= GRADIENT_TOLERANCE:
                    return MaximumLikelihoodFit(best, best_value, hessian, largest, method, index, iterations)
            message = " ".join(str(getattr(result, "message", "")).split())
            attempts.append(f"start {index + 1} {method}: largest gradient {largest:.1e} ({message})")
    raise ModelFitError(f"{failure} did not converge: {len(starts)} starting point(s) x "
                        f"{', '.join(OPTIMIZER_METHODS)} tried, none reached a gradient below "
                        f"{GRADIENT_TOLERANCE:g} ({'; '.join(attempts[-3:])}). {advice}")


def log_covariance(hessian: np.ndarray, n_customers: float, names: Sequence[str]) -> pd.DataFrame | None:
    """Covariance of the log parameters, ``inv(hessian) / n`` (None when not invertible).

    ``hessian`` is that of the *mean* negative log-likelihood per customer, hence the ``/ n``.

    Examples
    --------
    >>> log_covariance(np.array([[2.0, 0.0], [0.0, 4.0]]), 10, ["a", "b"]).to_numpy().tolist()
    [[0.05, 0.0], [0.0, 0.025]]
    """
    try:
        cov = np.linalg.inv(hessian) / float(n_customers)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(cov).all():
        return None
    cov = (cov + cov.T) / 2
    return pd.DataFrame(cov, index=list(names), columns=list(names))


def standard_errors(params: Mapping[str, float], cov: pd.DataFrame | None) -> dict[str, float]:
    """Delta-method standard errors ``theta * sqrt(var(log theta))`` (NaN where undefined).

    Examples
    --------
    >>> cov = pd.DataFrame([[0.04, 0.0], [0.0, -1.0]], index=["a", "b"], columns=["a", "b"])
    >>> standard_errors({"a": 3.0, "b": 1.0}, cov)
    {'a': 0.6000000000000001, 'b': nan}
    """
    out = {}
    for name, value in params.items():
        var = float(cov.loc[name, name]) if cov is not None else float("nan")
        out[name] = float(value * math.sqrt(var)) if math.isfinite(var) and var >= 0 else float("nan")
    return out


#: Columns of the bounded inputs of the models: one row per distinct value of the per-customer input,
#: ``customers`` = how many customers have it (:func:`purchase_pattern_table`, :func:`order_value_table`,
#: :func:`first_repeat_table`; on Spark: :mod:`segkit.data.spark_patterns`).
PATTERN_COLUMNS = ("frequency", "recency", "T", "customers")
ORDER_VALUE_COLUMNS = ("frequency", "monetary_value", "customers")
FIRST_REPEAT_COLUMNS = ("days", "repeated", "customers")


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
    (f, r, t), counts = condense([frequency, recency, T])
    return f, r, t, counts


def _count_table(columns: Sequence[str], values: Sequence[np.ndarray], counts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({**dict(zip(columns, values)), "customers": counts})


def purchase_pattern_table(summary: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD's bounded input: the distinct ``(frequency, recency, T)`` patterns of a customer summary.

    What :meth:`BetaGeoModel.fit_patterns` reads (:data:`PATTERN_COLUMNS`); at most one row per
    customer, usually far fewer (CDNOW's 2,357 customers have 1,016 patterns): ``frequency`` takes
    as many values as the most purchase days, ``T`` and ``recency`` as many as there are days in
    the data, so the table is bounded by the data's length, not by its customers.

    Examples
    --------
    >>> s = pd.DataFrame({"frequency": [0.0, 0.0, 2.0], "recency": [0.0, 0.0, 5.0], "T": [9.0, 9.0, 9.0]})
    >>> purchase_pattern_table(s).values.tolist()
    [[0.0, 0.0, 9.0, 2.0], [2.0, 5.0, 9.0, 1.0]]
    """
    _check_summary(summary, SUMMARY_COLUMNS, "BG/NBD")
    values, counts = condense([summary[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS])
    return _count_table(SUMMARY_COLUMNS, values, counts)


def order_value_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Gamma-Gamma's input as counts: the distinct ``(frequency, monetary_value)`` pairs of a customer summary.

    What :meth:`GammaGammaModel.fit_patterns` reads (:data:`ORDER_VALUE_COLUMNS`; it keeps the
    repeat buyers, ``frequency > 0`` and ``monetary_value > 0``). Bounded by the distinct pairs, not
    by the customers as BG/NBD's patterns are by the data's days: a mean order value is a sum of
    money over a count of purchase days, so with cents and many repeat buyers most of them hold a
    pair of their own; the table is at most as long as the repeat buyers (one-time buyers are the
    one pair ``(0, 0)``).

    Examples
    --------
    >>> s = pd.DataFrame({"frequency": [0.0, 1.0, 1.0], "monetary_value": [0.0, 20.0, 20.0]})
    >>> order_value_table(s).values.tolist()
    [[0.0, 0.0, 1.0], [1.0, 20.0, 2.0]]
    """
    _check_summary(summary, ("frequency", "monetary_value"), "Gamma-Gamma")
    values, counts = condense([summary[c].to_numpy(dtype=float) for c in ("frequency", "monetary_value")])
    return _count_table(("frequency", "monetary_value"), values, counts)


def order_value_sample(summary: pd.DataFrame, size: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """The customers of a summary the Gamma-Gamma model is fitted on: a seeded sample of at most ``size`` repeat buyers.

    The repeat buyers are the customers :meth:`GammaGammaModel.fit_patterns` keeps (``frequency > 0`` and
    ``monetary_value > 0``). With at most ``size`` of them (or ``size`` None) the summary is returned as it
    is; with more, the rows of those at :func:`segkit.data.bounded.sample_positions` of their number,
    ``size`` and ``seed``, in ascending ``customer_id`` order (the index as text, by code point: the
    order Spark sorts text in), so that :func:`segkit.data.spark_patterns.order_value_sample_counts`
    picks the same customers. The sample's parameters carry the sampling error of ``size`` repeat buyers
    (standard errors grow as 1/sqrt(size)).

    Parameters
    ----------
    summary : DataFrame
        ``frequency, monetary_value`` per customer (index ``customer_id``): :func:`clv_summary`.
    size : int or None
        Repeat buyers to fit on at most (``lifecycle.order_value_sample``); None = every one.
    seed : int
        The run's seed.

    Returns
    -------
    tuple
        The rows to fit on (``summary`` itself, or the sampled repeat buyers' rows) and the number of
        repeat buyers in ``summary`` (the sample was drawn from them).

    Raises
    ------
    DataError
        A missing, negative or non-numeric ``frequency`` or ``monetary_value``, checked on every row.

    Examples
    --------
    >>> s = pd.DataFrame({"frequency": [0.0, 2.0, 1.0, 3.0], "monetary_value": [0.0, 8.0, 5.0, 9.0]},
    ...                  index=pd.Index(["d", "c", "b", "a"], name="customer_id"))
    >>> rows, repeat_buyers = order_value_sample(s, 2, seed=0)
    >>> rows.index.tolist(), repeat_buyers
    (['b', 'c'], 3)
    >>> order_value_sample(s, 3, seed=0)[0] is s
    True
    """
    _check_summary(summary, ("frequency", "monetary_value"), "Gamma-Gamma")
    repeat = ((summary["frequency"].to_numpy(dtype=float) > 0)
              & (summary["monetary_value"].to_numpy(dtype=float) > 0))
    buyers = int(repeat.sum())
    positions = sample_positions(buyers, size, seed)
    if len(positions) == buyers:
        return summary, buyers
    rows = summary.iloc[np.flatnonzero(repeat)]
    ids = np.asarray(rows.index.astype("string"), dtype=object)
    return rows.iloc[np.argsort(ids, kind="stable")[positions]], buyers


def first_repeat_table(durations: pd.DataFrame) -> pd.DataFrame:
    """The one-time buyer model's bounded input: customers per ``(days, repeated)`` of :func:`first_repeat_durations`.

    What :meth:`OneTimeBuyerModel.fit_counts` reads (:data:`FIRST_REPEAT_COLUMNS`): ``days`` is a
    whole number of days within the data, so the table has at most twice as many rows as the data
    has days, whatever the customers.

    Examples
    --------
    >>> d = pd.DataFrame({"days": [10.0, 10.0, 30.0], "repeated": [True, True, False]})
    >>> first_repeat_table(d).values.tolist()
    [[10.0, True, 2], [30.0, False, 1]]
    """
    missing = [c for c in ("days", "repeated") if c not in durations.columns]
    if missing:
        raise DataError(f"first_repeat_table: column(s) {', '.join(map(repr, missing))} missing; build the "
                        "durations with segkit.clv.first_repeat_durations(purchases, observation_period_end).")
    (days, repeated), counts = condense([durations["days"].to_numpy(dtype=float),
                                         durations["repeated"].to_numpy(dtype=bool)])
    return pd.DataFrame({"days": days, "repeated": repeated.astype(bool), "customers": counts})


def _count_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> np.ndarray:
    """The ``customers`` column of a count table as int64, or a DataError naming the table's problem."""
    missing = [c for c in (*columns, "customers") if c not in table.columns]
    if missing:
        raise DataError(f"{what}: column(s) {', '.join(map(repr, missing))} missing from the count table; it needs "
                        f"{', '.join(map(repr, (*columns, 'customers')))} (one row per distinct value, 'customers' = "
                        "how many customers have it). Build it with segkit.clv or segkit.data.spark_patterns.")
    return whole_counts(table["customers"], what, "customers", table.index)


def _check_summary(summary: pd.DataFrame, columns: tuple[str, ...], what: str, counted: bool = False) -> None:
    """A DataError naming the rows whose model input is missing, negative, a non-integer frequency or
    recency > T; ``counted`` = a count table (rows are distinct values, not customers)."""
    table, rows_are = ("count table", "row") if counted else ("customer summary", "customer")
    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise DataError(
            f"{what}: column(s) {', '.join(map(repr, missing))} missing from the {table}. "
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
            f"{what}: {int(bad.sum())} {rows_are}(s) have invalid {'/'.join(columns)} (missing, negative, "
            f"non-integer frequency or recency > T), e.g. {'row' if counted else 'customer_id'} {rows}. "
            "Rebuild the summary with segkit.clv.clv_summary from the cleaned purchases."
        )


@dataclass(frozen=True)
class FrequencyLevels:
    """Distinct frequencies, each customer's position among them and the weight at each.

    The special functions (``gammaln``, ``digamma``) of both likelihoods depend on a customer only
    through the whole number ``x``, so they are evaluated once per distinct value and summed
    with the weight of the customers at that value.

    Examples
    --------
    >>> levels = FrequencyLevels.of(np.array([2.0, 0.0, 2.0]), np.array([1.0, 5.0, 3.0]))
    >>> levels.values.tolist(), levels.index.tolist(), levels.weights.tolist()
    ([0.0, 2.0], [1, 0, 1], [5.0, 4.0])
    """

    values: np.ndarray
    index: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, frequency: np.ndarray, weights: np.ndarray) -> "FrequencyLevels":
        values, index = np.unique(frequency, return_inverse=True)
        return cls(values, index, np.bincount(index, weights=weights, minlength=len(values)))


def _bgnbd_log_likelihood(
    params: Sequence[float], x: np.ndarray, tx: np.ndarray, t_age: np.ndarray, weights: np.ndarray,
    levels: FrequencyLevels, gradient: bool = False,
) -> tuple[float, np.ndarray | None]:
    """Weighted sum of the customers' BG/NBD log-likelihoods (eq. 6) and, optionally, its gradient
    on the log parameters.

    ``L = A1 A2 (A3 + [x > 0] A4)``; ``share`` below is the part of the second term (the customer
    dropped out right after their last purchase) in that sum. The gradient is summed directly
    (no per-customer gradient arrays: fewer large temporaries).
    """
    r, alpha, a, b = params
    ux = levels.values
    b_x = b + np.maximum(ux, 1) - 1
    level_ll = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
                + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux))
    ln_dropout = np.where(ux > 0, np.log(a) - np.log(b_x), -np.inf)
    rx = r + x
    log_age, log_last = np.log(alpha + t_age), np.log(alpha + tx)
    ln_a3 = -rx * log_age
    ln_a4 = ln_dropout[levels.index] - rx * log_last
    mix = np.logaddexp(ln_a3, ln_a4)
    total = float(levels.weights @ level_ll + weights @ mix)
    if not gradient:
        return total, None
    share = weights * np.exp(ln_a4 - mix)  # weighted share of A4
    inv_age = 1.0 / (alpha + t_age)
    d_r = (levels.weights @ (digamma(r + ux) - digamma(r) + np.log(alpha)) - weights @ log_age
           + share @ (log_age - log_last))
    d_alpha = r / alpha * weights.sum() - (weights * rx) @ inv_age - (share * rx) @ (1.0 / (alpha + tx) - inv_age)
    d_a = levels.weights @ (digamma(a + b) - digamma(a + b + ux)) + share.sum() / a
    d_b = (levels.weights @ (digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux))
           - np.bincount(levels.index, weights=share, minlength=len(ux)) @ (1.0 / b_x))
    return total, np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])


def _gamma_gamma_log_likelihood(
    params: Sequence[float], x: np.ndarray, m: np.ndarray, weights: np.ndarray, levels: FrequencyLevels,
    gradient: bool = False,
) -> tuple[float, np.ndarray | None]:
    """Weighted sum of the Gamma-Gamma log-densities of the customers' mean order values ``m`` of
    ``x`` orders (Hardie's note 025, eq. 3) and, optionally, its gradient on the log parameters."""
    p, q, v = params
    ux = levels.values
    pux = p * ux
    level_ll = gammaln(pux + q) - gammaln(pux) - gammaln(q) + q * np.log(v) + pux * np.log(ux)
    px = p * x
    log_m, log_total = np.log(m), np.log(x * m + v)
    total = float(levels.weights @ level_ll + weights @ ((px - 1) * log_m - (px + q) * log_total))
    if not gradient:
        return total, None
    d_p = (levels.weights @ (ux * (digamma(pux + q) - digamma(pux)))
           + (weights * x) @ (np.log(x) + log_m - log_total))
    d_q = levels.weights @ (digamma(pux + q) - digamma(q) + np.log(v)) - weights @ log_total
    d_v = q / v * weights.sum() - (weights * (px + q)) @ (1.0 / (x * m + v))
    return total, np.array([d_p * p, d_q * q, d_v * v])


def _mean_negative_log_likelihood(
    log_likelihood: Callable[..., tuple[float, np.ndarray | None]], data: tuple[np.ndarray, ...],
    weights: np.ndarray, penalizer_coef: float,
) -> Objective:
    """``log_params -> (objective, gradient)``: the weighted mean negative log-likelihood per
    customer plus ``penalizer_coef * sum(params ** 2)`` (lifetimes' objective)."""
    total = float(weights.sum())
    levels = FrequencyLevels.of(data[0], weights)

    def value_and_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = log_likelihood(params, *data, weights, levels, gradient=True)
        value = -ll / total + penalizer_coef * float(np.sum(params ** 2))
        return value, -grad / total + 2 * penalizer_coef * params ** 2
    return value_and_gradient


def bgnbd_log_likelihood(
    params: Mapping[str, float], frequency: Any, recency: Any, T: Any, customers: Any = None
) -> float:
    """Total BG/NBD log-likelihood in the data's time unit (Fader, Hardie & Lee 2005, eq. 6).

    Parameters
    ----------
    params : dict
        ``r, alpha, a, b``.
    frequency, recency, T : array_like
        Repeat purchases ``x``, time of last purchase ``t_x`` and age ``T`` of each customer (or
        of each pattern, with ``customers``).
    customers : array_like, optional
        Customers with each pattern (default 1 each).

    Returns
    -------
    float

    Examples
    --------
    >>> p = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    >>> round(bgnbd_log_likelihood(p, [0, 2], [0.0, 30.43], [38.86, 38.86]), 4)
    -10.0133
    """
    values = [float(params[k]) for k in BGNBD_PARAMETERS]
    x, tx, t_age = (np.asarray(c, dtype=float).ravel() for c in (frequency, recency, T))
    weights = np.ones(len(x)) if customers is None else np.asarray(customers, dtype=float).ravel()
    return _bgnbd_log_likelihood(values, x, tx, t_age, weights, FrequencyLevels.of(x, weights))[0]


def gamma_gamma_log_likelihood(params: Mapping[str, float], frequency: Any, monetary_value: Any,
                               customers: Any = None) -> float:
    """Total Gamma-Gamma log-likelihood of the repeat buyers' mean order values, in their money unit.

    Parameters
    ----------
    params : dict
        ``p, q, v``.
    frequency, monetary_value : array_like
        Repeat purchases (> 0) and mean order value (> 0) of each repeat buyer (or of each
        distinct pair, with ``customers``).
    customers : array_like, optional
        Repeat buyers with each pair (default 1 each).

    Returns
    -------
    float

    Examples
    --------
    >>> round(gamma_gamma_log_likelihood({"p": 6.25, "q": 3.74, "v": 15.44}, [1, 4], [20.0, 35.5]), 4)
    -7.6685
    """
    values = [float(params[k]) for k in GAMMA_GAMMA_PARAMETERS]
    x, m = (np.asarray(c, dtype=float).ravel() for c in (frequency, monetary_value))
    weights = np.ones(len(x)) if customers is None else np.asarray(customers, dtype=float).ravel()
    return _gamma_gamma_log_likelihood(values, x, m, weights, FrequencyLevels.of(x, weights))[0]


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


def _restored_floats(data: Mapping[str, Any], names: Sequence[str], what: str) -> dict[str, float]:
    """The named positive parameters of a ``to_dict`` block, or a DataError naming what is wrong."""
    missing = [k for k in names if k not in data]
    bad = [k for k in names if k in data and not (isinstance(data[k], (int, float)) and math.isfinite(data[k])
                                                  and data[k] > 0)]
    if missing or bad:
        problem = (f"key(s) {', '.join(map(repr, missing))} missing" if missing
                   else f"{', '.join(map(repr, bad))} not a positive number")
        raise DataError(f"{what}.from_dict: {problem}. Pass the block that {what}.to_dict() wrote "
                        f"(in clv_model.json: {'bgnbd' if what == 'BetaGeoModel' else 'gamma_gamma'}).")
    return {k: float(data[k]) for k in names}


def _float_or_nan(value: Any) -> float:
    """A number from ``to_dict`` output (where None stands for NaN) as a float."""
    return float("nan") if value is None else float(value)


def _restore(cls: type, data: Mapping[str, Any], names: Sequence[str], what: str) -> Any:
    """A fitted ``cls`` from ``to_dict`` output: the constructor parameters (defaults where
    absent, as in clv_model.json files written before they were stored), the estimates, their
    standard errors, the weak parameters, the log-likelihood, the optimiser report and ``n_customers``."""
    params = _restored_floats(data, names, what)
    settings = {k: (int if k == "min_repeat_buyers" else float)(data.get(k, default))
                for k, default in cls().get_params().items()}
    model = cls(**settings)
    model.params_ = params
    errors = data.get("standard_errors") or {}
    model.standard_errors_ = {k: _float_or_nan(errors.get(k)) for k in names}
    model.weak_parameters_ = list(data.get("weak_parameters", []))
    model.log_likelihood_ = _float_or_nan(data.get("log_likelihood"))
    model.optimizer_ = dict(data.get("optimizer") or {})
    model.n_customers_ = int(data.get("n_customers", 0))
    return model


def _optimizer_report(fit: MaximumLikelihoodFit, starts: int, **extra: Any) -> dict[str, Any]:
    return {**fit.report(), "starts": starts, **extra}


def weighted_correlation(x: Any, y: Any, customers: Any) -> float:
    """Pearson correlation of ``x`` and ``y`` over the customers (each row counted ``customers`` times).

    Equal to ``np.corrcoef`` of the customer-level arrays up to rounding (sums in another order).

    Examples
    --------
    >>> round(weighted_correlation([1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [2, 1, 1]), 12)
    0.986440050416
    """
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    w = np.asarray(customers, dtype=float).ravel()
    da, db = a - (w @ a) / w.sum(), b - (w @ b) / w.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (w @ (da * db)) / math.sqrt(float(w @ (da * da)) * float(w @ (db * db)))
    return float(np.clip(value, -1.0, 1.0))


class BetaGeoModel(BaseEstimator):
    """BG/NBD model of repeat purchases and dropout (Fader, Hardie & Lee 2005), fitted by ML.

    The likelihood, conditional expectations and P(alive) follow the paper and Hardie's notes
    004 and 021 (as ``lifetimes.BetaGeoFitter``, against which the tests compare customer by
    customer); see the module notes for the optimisation.

    Parameters
    ----------
    penalizer_coef : float
        L2 penalty on the parameters (0 = plain maximum likelihood, as in the paper), with
        ``alpha`` on the fit's time axis (the oldest customer's age = 1), as in lifetimes.
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
    optimizer_ : dict
        How the optimum was reached (:meth:`MaximumLikelihoodFit.report`, plus ``starts``).
    n_customers_, n_repeat_buyers_, n_patterns_ : int
        Customers fitted, those among them with ``frequency > 0``, and their distinct
        ``(frequency, recency, T)`` patterns (the terms of the likelihood).

    Examples
    --------
    >>> summary = simulate_customers(2000, {"r": 0.25, "alpha": 4.4, "a": 0.8, "b": 2.4}, seed=0)
    >>> model = BetaGeoModel().fit(summary)
    >>> {k: round(v, 1) for k, v in model.params_.items()}
    {'r': 0.3, 'alpha': 5.1, 'a': 0.8, 'b': 2.8}
    >>> bool((model.p_alive(summary) <= 1).all())
    True
    >>> same = BetaGeoModel.from_dict(model.to_dict())
    >>> bool((same.predict(summary, 90.0) == model.predict(summary, 90.0)).all())
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

        The summary is condensed to its patterns (:func:`purchase_pattern_table`) and fitted by
        :meth:`fit_patterns`: the one fit, whichever engine counted the patterns.

        Raises
        ------
        ModelFitError
            Too few repeat buyers, or no optimiser converged (the message lists the attempts).
        """
        return self.fit_patterns(purchase_pattern_table(summary))

    def fit_patterns(self, patterns: pd.DataFrame) -> "BetaGeoModel":
        """Fit on the customers' distinct ``(frequency, recency, T)`` patterns, each weighted by its customers.

        The bounded input of a fit on any number of customers (:data:`PATTERN_COLUMNS`:
        :func:`purchase_pattern_table`, or :func:`segkit.data.spark_patterns.purchase_pattern_counts`
        on Spark): the likelihood depends on a customer only through the pattern, so the estimates,
        standard errors and log-likelihood are those of the customer-level fit. Rows may come in any
        order and a pattern may appear in several rows (partial counts): they are condensed first.

        Raises
        ------
        DataError
            A column is missing, a pattern is invalid (negative, non-integer frequency, recency > T)
            or a count is not a whole number of at least 1.
        ModelFitError
            Too few repeat buyers, or no optimiser converged (the message lists the attempts).
        """
        counts = _count_columns(patterns, SUMMARY_COLUMNS, "BG/NBD")
        _check_summary(patterns, SUMMARY_COLUMNS, "BG/NBD", counted=True)
        (px, ptx, pT), counts = condense([patterns[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS], counts)
        n_customers = int(counts.sum())
        repeat = int(counts[px > 0].sum())
        if repeat < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"BG/NBD not fitted: only {repeat:,} of {n_customers:,} customers made a repeat purchase "
                f"(at least {self.min_repeat_buyers:,} needed to estimate dropout). Use a longer "
                "data period or a later as_of; P(alive), expected purchases and CLV stay empty."
            )
        time_scale = float(pT.max()) if pT.max() > 0 else 1.0  # the oldest customer is 1 time unit old
        weights = counts.astype(float)
        objective = _mean_negative_log_likelihood(_bgnbd_log_likelihood, (px, ptx / time_scale, pT / time_scale),
                                                  weights, float(self.penalizer_coef))
        rate = max(float(weights @ px) / float(weights @ (pT / time_scale)), 1e-6)  # repeat purchases per time unit
        starts = [np.full(4, 0.1),  # lifetimes' start
                  np.log([0.5, 0.5 / rate, 1.0, 3.0]),  # mean purchase rate from the data, dropout 25 %
                  np.log([2.0, 2.0 / rate, 0.5, 10.0])]
        fit = fit_maximum_likelihood(
            objective, starts, f"BG/NBD on {n_customers:,} customers ({repeat:,} repeat buyers)",
            "Try a small penalizer (lifecycle.penalizer_coef: 0.001) or more data; P(alive), expected "
            "purchases and CLV stay empty.")
        values = np.exp(fit.log_params)
        values[1] *= time_scale
        params = dict(zip(BGNBD_PARAMETERS, map(float, values)))
        if not all(math.isfinite(v) and v > 0 for v in params.values()):
            raise ModelFitError(f"BG/NBD fit returned invalid parameters {params}. Try a small penalizer "
                                "(lifecycle.penalizer_coef: 0.001).")
        cov = log_covariance(fit.hessian, weights.sum(), BGNBD_PARAMETERS)
        self.params_ = params
        self.standard_errors_ = standard_errors(params, cov)
        self.weak_parameters_ = weak_parameters(params, self.standard_errors_, self.max_relative_se,
                                                shapes=("r", "a", "b"))
        self.dropout_mean_se_ = float("nan")
        if cov is not None:
            a, b = params["a"], params["b"]
            slope = a * b / (a + b) ** 2  # d(a/(a+b)) / d(log a) = -d(a/(a+b)) / d(log b)
            var = slope ** 2 * (cov.loc["a", "a"] + cov.loc["b", "b"] - 2 * cov.loc["a", "b"])
            self.dropout_mean_se_ = float(np.sqrt(var)) if var >= 0 else float("nan")
        self.log_likelihood_ = bgnbd_log_likelihood(params, px, ptx, pT, weights)
        self.optimizer_ = _optimizer_report(fit, len(starts), time_scale=time_scale)
        self.n_customers_ = n_customers
        self.n_repeat_buyers_ = repeat
        self.n_patterns_ = len(px)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BetaGeoModel":
        """A fitted model from :meth:`to_dict`'s output (e.g. the ``bgnbd`` block of ``clv_model.json``).

        Raises
        ------
        DataError
            A parameter is missing or not a positive number.
        """
        model = _restore(cls, data, BGNBD_PARAMETERS, "BetaGeoModel")
        model.dropout_mean_se_ = _float_or_nan(data.get("dropout_mean_se"))
        model.n_repeat_buyers_ = int(data.get("n_repeat_buyers", 0))
        model.n_patterns_ = int(data.get("n_patterns", 0))
        return model

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
        Where the Gauss hypergeometric function overflows, its Euler transformation
        ``2F1(a, b; c; z) = (1 - z)^(c - a - b) 2F1(c - a, c - b; c; z)`` is used instead.
        """
        x, tx, t_age = self._arrays(summary)
        r, alpha, a, b = (self.params_[k] for k in BGNBD_PARAMETERS)
        t = np.asarray(days, dtype=float) / self.time_unit_days
        h_a, h_b, h_c, z = r + x, b + x, a + b + x - 1, t / (alpha + t_age + t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ln_hyp = np.log(hyp2f1(h_a, h_b, h_c, z))
            euler = np.log(hyp2f1(h_c - h_a, h_c - h_b, h_c, z)) + (h_c - h_a - h_b) * np.log1p(-z)
            ln_hyp = np.where(np.isinf(ln_hyp), euler, ln_hyp)
            numerator = (a + b + x - 1) / (a - 1) * (1 - np.exp(ln_hyp + (r + x) * np.log((alpha + t_age) / (alpha + t + t_age))))
            denominator = 1 + (x > 0) * (a / (b + np.maximum(x, 1) - 1)) * ((alpha + t_age) / (alpha + tx)) ** (r + x)
        return np.asarray(numerator / denominator, dtype=float)

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """P(alive) of each customer given its history (Hardie's note 021).

        By construction of the BG/NBD model a customer can only drop out right after a repeat
        purchase, so one-time buyers (``frequency == 0``) always get P(alive) = 1: an artefact,
        see :class:`OneTimeBuyerModel` for an estimate from the data.
        """
        x, tx, t_age = self._arrays(summary)
        r, alpha, a, b = (self.params_[k] for k in BGNBD_PARAMETERS)
        log_odds_dead = (r + x) * np.log((alpha + t_age) / (alpha + tx)) + np.log(a / (b + np.maximum(x, 1) - 1))
        return np.where(x == 0, 1.0, expit(-log_odds_dead))

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
        r, alpha, a, b = (self.params_[k] for k in BGNBD_PARAMETERS)
        t = days / self.time_unit_days
        return float((a + b - 1) / (a - 1) * (1 - hyp2f1(r, b, a + b - 1, t / (alpha + t)) * (alpha / (alpha + t)) ** r))

    def to_dict(self) -> dict[str, Any]:
        """Parameters for ``clv_model.json`` (``r, alpha, a, b, log_likelihood, time_unit`` + extras);
        :meth:`from_dict` restores the model from it."""
        check_is_fitted(self, "params_")
        return _json_safe({**self.params_, "log_likelihood": self.log_likelihood_,
                "time_unit": f"{self.time_unit_days:g} days" if self.time_unit_days != 7 else "weeks",
                "time_unit_days": float(self.time_unit_days), "n_customers": self.n_customers_,
                "n_repeat_buyers": self.n_repeat_buyers_, "n_patterns": self.n_patterns_,
                "standard_errors": self.standard_errors_,
                "weak_parameters": list(self.weak_parameters_), "max_relative_se": float(self.max_relative_se),
                "dropout_mean": self.dropout_mean_, "dropout_mean_se": self.dropout_mean_se_,
                "penalizer_coef": float(self.penalizer_coef), "min_repeat_buyers": int(self.min_repeat_buyers),
                "optimizer": self.optimizer_})


class GammaGammaModel(BaseEstimator):
    """Gamma-Gamma model of average order value (Fader, Hardie & Lee 2005b; Hardie's note 025).

    Fitted on repeat buyers only (``frequency > 0`` and ``monetary_value > 0``); it assumes order
    value is independent of purchase frequency (``frequency_monetary_corr_`` reports the check).
    The fit runs on order values divided by :attr:`money_scale_`, so the money unit does not
    change it; ``v`` and every prediction are in the data's money unit.

    Parameters
    ----------
    penalizer_coef : float
        L2 penalty on the parameters, with ``v`` on the fit's money scale (order values divided
        by ``money_scale_``), so that the penalty too does not depend on the money unit.
    min_repeat_buyers : int
        Fewer repeat buyers than this raises :class:`ModelFitError`.
    max_relative_se : float
        A parameter whose standard error exceeds this multiple of its estimate is listed in
        ``weak_parameters_``.

    Attributes
    ----------
    params_ : dict
        ``p, q, v`` (``v`` is the paper's gamma, in the data's money unit).
    log_likelihood_ : float
        Total log-likelihood of the mean order values in the data's money unit.
    standard_errors_ : dict
        Asymptotic standard errors of the parameters.
    weak_parameters_ : list of str
        Parameters the data do not pin down (:func:`weak_parameters`; ``p, q`` are shapes).
    money_scale_ : float
        Median mean order value of the repeat buyers: the fit's money unit.
    optimizer_ : dict
        How the optimum was reached (:meth:`MaximumLikelihoodFit.report`, plus ``starts``).
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
    >>> in_cents = GammaGammaModel().fit(summary.assign(monetary_value=100 * summary["monetary_value"]))
    >>> round(in_cents.params_["v"] / model.params_["v"], 6), round(in_cents.params_["q"] / model.params_["q"], 6)
    (100.0, 1.0)
    """

    def __init__(self, penalizer_coef: float = 0.0, min_repeat_buyers: int = 10, max_relative_se: float = 1.0):
        self.penalizer_coef = penalizer_coef
        self.min_repeat_buyers = min_repeat_buyers
        self.max_relative_se = max_relative_se

    def fit(self, summary: pd.DataFrame) -> "GammaGammaModel":
        """Fit on the repeat buyers of a customer summary (``frequency, monetary_value``).

        The summary is condensed to its distinct pairs (:func:`order_value_table`) and fitted by
        :meth:`fit_patterns`: the one fit, whichever engine counted the pairs.

        Raises
        ------
        ModelFitError
            Too few repeat buyers, no optimiser converged, or ``q <= 1`` (infinite mean).
        """
        return self.fit_patterns(order_value_table(summary))

    def fit_patterns(self, pairs: pd.DataFrame) -> "GammaGammaModel":
        """Fit on the distinct ``(frequency, monetary_value)`` pairs, each weighted by its customers.

        The input of a fit on any number of customers (:data:`ORDER_VALUE_COLUMNS`:
        :func:`order_value_table`, or :func:`segkit.data.spark_patterns.order_value_counts` on Spark);
        rows with ``frequency > 0`` and ``monetary_value > 0`` (the repeat buyers) are fitted. The
        likelihood depends on a buyer only through the pair, so the fit is the customer-level one;
        ``money_scale_`` (the median) is read from the counts exactly. The table is bounded by the
        distinct pairs, not by the customers (see :func:`order_value_table`). Rows may come in any
        order and a pair in several rows: they are condensed first.

        Raises
        ------
        DataError
            A column is missing, a value is invalid or infinite, or a count is not a whole number of at least 1.
        ModelFitError
            Too few repeat buyers, no optimiser converged, or ``q <= 1`` (infinite mean).
        """
        counts = _count_columns(pairs, ("frequency", "monetary_value"), "Gamma-Gamma")
        _check_summary(pairs, ("frequency", "monetary_value"), "Gamma-Gamma", counted=True)
        keep = ((pairs["frequency"] > 0) & (pairs["monetary_value"] > 0)).to_numpy()
        (x, m), counts = condense([pairs.loc[keep, c].to_numpy(dtype=float) for c in ("frequency", "monetary_value")],
                                  counts[keep])
        n_buyers = int(counts.sum())
        if n_buyers < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"Gamma-Gamma not fitted: only {n_buyers:,} repeat buyers with a positive order value "
                f"(at least {self.min_repeat_buyers:,} needed). Expected order value and CLV stay empty."
            )
        if not np.isfinite(m).all():
            raise DataError(f"Gamma-Gamma: {int(counts[~np.isfinite(m)].sum())} repeat buyer(s) have an infinite mean "
                            "order value; check the audit for overflowing amounts.")
        weights = counts.astype(float)
        money_scale = ValueDistribution.of_counts(m, counts).median()
        objective = _mean_negative_log_likelihood(_gamma_gamma_log_likelihood, (x, m / money_scale),
                                                  weights, float(self.penalizer_coef))
        starts = [np.full(3, 0.1),  # lifetimes' start, on the rescaled money
                  np.log([1.0, 3.0, 2.0]),
                  np.log([5.0, 5.0, 4.0])]
        fit = fit_maximum_likelihood(
            objective, starts, f"Gamma-Gamma on {n_buyers:,} repeat buyers",
            "Check the audit for extreme amounts, or try a small penalizer (lifecycle.penalizer_coef: 0.001); "
            "expected order value and CLV stay empty.")
        values = np.exp(fit.log_params)
        values[2] *= money_scale
        params = dict(zip(GAMMA_GAMMA_PARAMETERS, map(float, values)))
        if not all(math.isfinite(v) and v > 0 for v in params.values()):
            raise ModelFitError(f"Gamma-Gamma fit returned invalid parameters {params}.")
        if params["q"] <= 1:
            raise ModelFitError(
                f"Gamma-Gamma fit gives q = {params['q']:.3f} <= 1: the population's mean order value "
                "is infinite (a few extreme order values dominate). Check the audit for outlier "
                "amounts or use a penalizer; expected order value and CLV stay empty."
            )
        self.params_ = params
        self.standard_errors_ = standard_errors(params, log_covariance(fit.hessian, n_buyers, GAMMA_GAMMA_PARAMETERS))
        self.weak_parameters_ = weak_parameters(params, self.standard_errors_, self.max_relative_se,
                                                shapes=("p", "q"))
        self.log_likelihood_ = gamma_gamma_log_likelihood(params, x, m, weights)
        self.money_scale_ = money_scale
        self.optimizer_ = _optimizer_report(fit, len(starts))
        self.n_customers_ = n_buyers
        self.frequency_monetary_corr_ = (weighted_correlation(x, m, counts) if n_buyers > 2 and len(np.unique(x)) > 1
                                         and len(np.unique(m)) > 1 else float("nan"))
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GammaGammaModel":
        """A fitted model from :meth:`to_dict`'s output (e.g. the ``gamma_gamma`` block of ``clv_model.json``).

        Raises
        ------
        DataError
            A parameter is missing or not a positive number.
        """
        model = _restore(cls, data, GAMMA_GAMMA_PARAMETERS, "GammaGammaModel")
        model.money_scale_ = _float_or_nan(data.get("money_scale"))
        model.frequency_monetary_corr_ = _float_or_nan(data.get("frequency_monetary_corr"))
        return model

    @property
    def population_mean_(self) -> float:
        """Mean order value of the population, ``p * v / (q - 1)``."""
        check_is_fitted(self, "params_")
        p, q, v = (self.params_[k] for k in GAMMA_GAMMA_PARAMETERS)
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
        """Parameters for ``clv_model.json`` (``p, q, v`` + extras); :meth:`from_dict` restores the model."""
        check_is_fitted(self, "params_")
        return _json_safe({**self.params_, "log_likelihood": self.log_likelihood_, "n_customers": self.n_customers_,
                "standard_errors": self.standard_errors_, "weak_parameters": list(self.weak_parameters_),
                "max_relative_se": float(self.max_relative_se), "money_scale": self.money_scale_,
                "population_mean_order_value": self.population_mean_,
                "frequency_monetary_corr": self.frequency_monetary_corr_,
                "penalizer_coef": float(self.penalizer_coef), "min_repeat_buyers": int(self.min_repeat_buyers),
                "optimizer": self.optimizer_})


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
        return self.fit_counts(first_repeat_table(pd.DataFrame({"days": d, "repeated": event})))

    def fit_counts(self, table: pd.DataFrame) -> "OneTimeBuyerModel":
        """Fit on the buyers counted per ``(days, repeated)`` (:data:`FIRST_REPEAT_COLUMNS`).

        The bounded input of a fit on any number of buyers (:func:`first_repeat_table`, or
        :func:`segkit.data.spark_patterns.first_repeat_counts` on Spark): the Kaplan-Meier curve
        reads only how many second purchases happen on each day and how many buyers are still
        followed then, whole numbers that the counts give exactly. Rows may come in any order and a
        value in several rows: they are condensed first.

        Raises
        ------
        DataError
            A column is missing, days are missing or negative, or a count is not a whole number of at least 1.
        ModelFitError
            Fewer than ``min_repeat_buyers`` second purchases.
        """
        counts = _count_columns(table, ("days", "repeated"), "OneTimeBuyerModel.fit")
        d = pd.to_numeric(table["days"], errors="coerce").to_numpy(dtype="float64")
        if not np.isfinite(d).all() or (d < 0).any():
            raise DataError(f"OneTimeBuyerModel.fit: {int(counts[~np.isfinite(d) | (d < 0)].sum())} durations are "
                            "missing or negative; rebuild them with segkit.clv.first_repeat_durations.")
        (d, event), counts = condense([d, table["repeated"].to_numpy(dtype=bool)], counts)
        event = event.astype(bool)
        n_customers = int(counts.sum())
        n_events = int(counts[event].sum())
        if n_events < max(int(self.min_repeat_buyers), 1):
            raise ModelFitError(
                f"One-time buyer model not fitted: only {n_events:,} of {n_customers:,} buyers made a second "
                f"purchase (at least {self.min_repeat_buyers:,} needed). P(alive) of one-time buyers stays empty.")
        (times,), events = condense([d[event]], counts[event])
        # buyers still followed on each of those days: all but those whose duration ended before it
        ended_before = np.concatenate([[0], np.cumsum(counts)])[np.searchsorted(d, times, side="left")]
        at_risk = n_customers - ended_before
        self.days_ = times
        self.survival_ = np.cumprod(1.0 - events / at_risk)
        self.n_customers_ = n_customers
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
        """Summary and curve for ``clv_model.json``; :meth:`from_dict` restores the model from it."""
        check_is_fitted(self, "survival_")
        return _json_safe({"method": "Kaplan-Meier of the days from the first to the second purchase day",
                           "n_customers": self.n_customers_, "n_repeat_buyers": self.n_repeat_buyers_,
                           "follow_up_days": self.follow_up_days_, "never_share": self.never_share_,
                           "min_repeat_buyers": int(self.min_repeat_buyers),
                           "days": self.days_.tolist(), "survival": self.survival_.tolist()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OneTimeBuyerModel":
        """A fitted model from :meth:`to_dict`'s output (the ``one_time_buyers`` block of ``clv_model.json``).

        Raises
        ------
        DataError
            The curve (``days``, ``survival``) is missing, of different lengths or not a survival curve.
        """
        days = np.asarray(data.get("days", []), dtype=float)
        survival = np.asarray(data.get("survival", []), dtype=float)
        if (len(days) == 0 or days.shape != survival.shape or not np.isfinite(days).all()
                or np.any(np.diff(days) <= 0) or np.any(np.diff(survival) > 0) or not ((survival >= 0) & (survival <= 1)).all()):
            raise DataError("OneTimeBuyerModel.from_dict: 'days' and 'survival' must be lists of the same length, "
                            "days increasing and survival a non-increasing share; pass the block that "
                            "OneTimeBuyerModel.to_dict() wrote (in clv_model.json: one_time_buyers).")
        model = cls(min_repeat_buyers=int(data.get("min_repeat_buyers", 10)))
        model.days_, model.survival_ = days, survival
        model.n_customers_ = int(data.get("n_customers", 0))
        model.n_repeat_buyers_ = int(data.get("n_repeat_buyers", 0))
        model.follow_up_days_ = float(days[-1])
        model.never_share_ = float(survival[-1])
        return model


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


# --------------------------------------------------------------------------- holdout evaluation
#: Two-sided 95 % normal quantile used for the calibration intervals.
Z_95 = 1.959963984540054


def wilson_interval(successes: Any, n: Any, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a share (Wilson 1927; Agresti & Coull 1998), elementwise.

    Unlike the normal interval it stays within [0, 1] and does not collapse at 0 or n successes.

    Examples
    --------
    >>> low, high = wilson_interval([0, 5], [10, 10])
    >>> low.round(3).tolist(), high.round(3).tolist()
    ([0.0, 0.237], [0.278, 0.763])
    """
    k, m = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / m
        denominator = 1 + z ** 2 / m
        centre = (p + z ** 2 / (2 * m)) / denominator
        half = z * np.sqrt(p * (1 - p) / m + z ** 2 / (4 * m ** 2)) / denominator
    low = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))  # exactly 0 and 1 at the ends (rounding)
    return low, np.where(k == m, 1.0, np.clip(centre + half, 0.0, 1.0))


def ranking_auc(score: Any, outcome: Any) -> float:
    """Area under the ROC curve of ``score`` for a binary ``outcome`` (ties count one half).

    The chance that a customer who bought ranks above one who did not (Mann-Whitney); 0.5 is a
    coin toss. NaN when only one outcome occurs or a score is missing.

    Examples
    --------
    >>> ranking_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    s, y = np.asarray(score, dtype=float), np.asarray(outcome, dtype=bool)
    if len(s) == 0 or not np.isfinite(s).all() or y.all() or not y.any():
        return float("nan")
    ranks = pd.Series(s).rank(method="average").to_numpy()
    positives = int(y.sum())
    negatives = len(y) - positives
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def decile_calibration(predicted: Any, actual: Any, kind: str = "share", bins: int = 10) -> pd.DataFrame:
    """Mean prediction against the observed outcome in groups of equal size ranked by the prediction.

    Parameters
    ----------
    predicted : array_like
        The prediction of each customer (a chance for ``kind="share"``, a count for ``"count"``).
    actual : array_like
        What happened: bought or not (``"share"``), or purchases counted (``"count"``).
    kind : {"share", "count"}
        Interval of the observed value: Wilson for a share, mean +- 1.96 standard errors for a count.
    bins : int
        Groups (10 = deciles); ties are broken by position, so groups are of equal size.

    Returns
    -------
    DataFrame
        ``decile`` (1 = lowest prediction), ``customers``, ``predicted`` (mean), ``actual`` (mean),
        ``actual_low``, ``actual_high`` (95 % interval of the observed mean), ``gap`` (predicted -
        actual).

    Examples
    --------
    >>> t = decile_calibration([0.1, 0.2, 0.7, 0.9], [False, False, True, False], bins=2)
    >>> t[["customers", "predicted", "actual"]].values.tolist()
    [[2.0, 0.15000000000000002, 0.0], [2.0, 0.8, 0.5]]
    """
    if kind not in ("share", "count"):
        raise ValueError(f"decile_calibration: kind must be 'share' or 'count', not {kind!r}")
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(actual, dtype=float)
    columns = ["decile", "customers", "predicted", "actual", "actual_low", "actual_high", "gap"]
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    if len(p) == 0:
        return pd.DataFrame(columns=columns)
    order = np.lexsort((np.arange(len(p)), p))
    group = np.empty(len(p), dtype=np.int64)
    group[order] = (np.arange(len(p)) * min(bins, len(p))) // len(p) + 1
    frame = pd.DataFrame({"decile": group, "predicted": p, "actual": y})
    table = frame.groupby("decile").agg(customers=("actual", "size"), predicted=("predicted", "mean"),
                                        actual=("actual", "mean"), sd=("actual", "std")).reset_index()
    n = table["customers"].to_numpy(dtype=float)
    if kind == "share":
        low, high = wilson_interval(table["actual"].to_numpy() * n, n)
    else:
        half = Z_95 * table["sd"].to_numpy(dtype=float) / np.sqrt(n)
        low, high = np.maximum(table["actual"].to_numpy() - half, 0.0), table["actual"].to_numpy() + half
    table["actual_low"], table["actual_high"] = low, high
    table["gap"] = table["predicted"] - table["actual"]
    return table[columns].astype({"decile": "int64", "customers": "int64"})


#: Fewest customers in one bin of a :class:`ChanceCalibrator` (customers are pooled into bins, by rank of
#: their prediction, before the isotonic fit) and the most bins (20: steps of 5 % of the customers).
MIN_BIN_CUSTOMERS = 50
MAX_CALIBRATION_BINS = 20


class ChanceCalibrator(BaseEstimator):
    """Isotonic map from a predicted chance to the share observed to happen (fitted on a holdout).

    Isotonic regression (pool-adjacent-violators, as :class:`sklearn.isotonic.IsotonicRegression`)
    is the non-decreasing step function of the prediction closest to the observed outcomes: it
    keeps the model's ranking (so the AUC is unchanged up to ties) and corrects its level, with
    no assumption about the shape of the miss (Zadrozny & Elkan 2002). Plain isotonic regression
    overfits at the ends, where a step may hold a handful of customers (Niculescu-Mizil & Caruana
    2005), and the end steps matter most: an export applies the map to predictions beyond the
    fitted range (customers a holdout older), and they all get the end value. A lowest step of
    five customers who did not buy gave the oldest one-time buyers of an export a 0 % chance
    while one in six bought. The customers are therefore first pooled, by rank of their
    prediction, into ``max_bins`` bins of equal size, fewer when a bin would hold less than
    ``min_bin`` (each bin's mean prediction and observed share, weighted by its size), and the
    isotonic fit runs on the bins. Between fitted points it interpolates linearly; outside them
    it keeps the end values. Persisted as its breakpoints.

    Parameters
    ----------
    max_bins : int
        Most bins (:data:`MAX_CALIBRATION_BINS`).
    min_bin : int
        Fewest customers per bin (:data:`MIN_BIN_CUSTOMERS`); ``min_bin=1`` with ``max_bins`` at
        least the number of customers is plain isotonic regression.

    Attributes
    ----------
    x_, y_ : ndarray
        Breakpoints: prediction and calibrated share.
    n_customers_, n_events_ : int
        Customers fitted and how many of them the event happened to.

    Examples
    --------
    >>> c = ChanceCalibrator(min_bin=1).fit([0.1, 0.2, 0.3, 0.4], [False, True, False, True])
    >>> c.predict([0.1, 0.25, 0.4]).round(2).tolist()
    [0.0, 0.5, 1.0]
    >>> ChanceCalibrator.from_dict(c.to_dict()).predict([0.25]).round(2).tolist()
    [0.5]
    >>> ChanceCalibrator(min_bin=2).fit([0.1, 0.2, 0.3, 0.4], [False, True, False, True]).predict([0.1]).tolist()
    [0.5]
    """

    def __init__(self, max_bins: int = MAX_CALIBRATION_BINS, min_bin: int = MIN_BIN_CUSTOMERS) -> None:
        self.max_bins = max_bins
        self.min_bin = min_bin

    def fit(self, predicted: Any, happened: Any) -> "ChanceCalibrator":
        """Fit the map on each customer's predicted chance and whether the event happened.

        Raises
        ------
        DataError
            Lengths differ or a prediction is missing.
        """
        p = np.asarray(predicted, dtype=float)
        y = np.asarray(happened, dtype=bool)
        if p.shape != y.shape or p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all():
            raise DataError("ChanceCalibrator.fit: predicted and happened must be 1-d, of the same length, not "
                            "empty, and every prediction a number (drop customers without a prediction first).")
        bins = self.bins_for(len(p))
        order = np.argsort(p, kind="stable")
        group = np.empty(len(p), dtype=np.int64)
        group[order] = np.arange(len(p)) * bins // len(p)
        return self.fit_bins(np.bincount(group, minlength=bins), np.bincount(group, weights=p, minlength=bins),
                             np.bincount(group, weights=y.astype(float), minlength=bins))

    def bins_for(self, n_customers: int) -> int:
        """How many bins ``n_customers`` are pooled into: ``max_bins``, fewer when a bin would hold less than ``min_bin``.

        Bin ``k`` (0-based) holds the customers at ranks ``r`` (0-based, by prediction, ties in their
        order) with ``r * bins // n_customers == k``.

        Examples
        --------
        >>> ChanceCalibrator().bins_for(10_000), ChanceCalibrator().bins_for(120)
        (20, 2)
        """
        return max(min(int(self.max_bins), int(n_customers) // max(int(self.min_bin), 1)), 1)

    def fit_bins(self, customers: Any, predicted_sum: Any, events: Any) -> "ChanceCalibrator":
        """Fit the map on the bins: customers, sum of their predictions and how many the event happened to.

        The bounded input of :meth:`fit` (at most ``max_bins`` rows, :meth:`bins_for`), computed
        wherever the customers are. Assigning customers to bins needs their exact ranks by
        prediction (ties in the customers' order).

        Raises
        ------
        DataError
            Lengths differ, a bin is empty or a sum is not a number.
        """
        size = np.asarray(customers, dtype=float).ravel()
        total = np.asarray(predicted_sum, dtype=float).ravel()
        happened = np.asarray(events, dtype=float).ravel()
        if (not size.shape == total.shape == happened.shape or len(size) == 0 or (size < 1).any()
                or not np.isfinite(total).all() or (happened < 0).any() or (happened > size).any()):
            raise DataError("ChanceCalibrator.fit_bins: customers, predicted_sum and events must be of the same "
                            "length, every bin hold at least one customer, every sum be a number and events "
                            "between 0 and the bin's customers.")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(
            total / size, happened / size, sample_weight=size)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        self.n_customers_ = int(size.sum())
        self.n_events_ = int(happened.sum())
        return self

    def predict(self, predicted: Any) -> np.ndarray:
        """The calibrated chance of each prediction (NaN stays NaN)."""
        check_is_fitted(self, "x_")
        p = np.asarray(predicted, dtype=float)
        return np.where(np.isfinite(p), np.interp(p, self.x_, self.y_), np.nan)

    def to_dict(self) -> dict[str, Any]:
        """Breakpoints for ``clv_model.json``; :meth:`from_dict` restores the map."""
        check_is_fitted(self, "x_")
        return _json_safe({"method": f"isotonic regression on the holdout, customers pooled by rank of the prediction "
                                     f"in at most {int(self.max_bins)} bins of at least {int(self.min_bin)}",
                           "max_bins": int(self.max_bins), "min_bin": int(self.min_bin),
                           "x": self.x_.tolist(), "y": self.y_.tolist(), "n_customers": self.n_customers_,
                           "n_events": self.n_events_})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChanceCalibrator":
        """A fitted map from :meth:`to_dict`'s output.

        Raises
        ------
        DataError
            The breakpoints are missing, of different lengths, or not non-decreasing shares.
        """
        x = np.asarray(data.get("x", []), dtype=float)
        y = np.asarray(data.get("y", []), dtype=float)
        if (len(x) == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0)
                or not ((y >= 0) & (y <= 1)).all()):
            raise DataError("ChanceCalibrator.from_dict: 'x' and 'y' must be lists of the same length, both "
                            "non-decreasing, y between 0 and 1; pass the block ChanceCalibrator.to_dict() wrote.")
        model = cls(max_bins=int(data.get("max_bins", MAX_CALIBRATION_BINS)), min_bin=int(data.get("min_bin", 1)))
        model.x_, model.y_ = x, y
        model.n_customers_ = int(data.get("n_customers", 0))
        model.n_events_ = int(data.get("n_events", 0))
        return model


def cross_fitted_calibration(predicted: Any, happened: Any, folds: int = 2,
                             min_bin: int = MIN_BIN_CUSTOMERS) -> np.ndarray:
    """Calibrated chances of each customer from a :class:`ChanceCalibrator` (``min_bin``) fitted on the other folds.

    Customers are dealt to ``folds`` folds by position (customer 0 to fold 0, 1 to fold 1, ...):
    deterministic, and a customer's own outcome never enters their calibrated value, so the
    calibrated variant is judged on the holdout as fairly as the models fitted before it.

    Examples
    --------
    >>> cross_fitted_calibration([0.1, 0.1, 0.9, 0.9], [False, False, True, True], min_bin=1).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(happened, dtype=bool)
    fold = np.arange(len(p)) % max(int(folds), 2)
    out = np.full(len(p), np.nan)
    for k in np.unique(fold):
        train = fold != k
        out[~train] = ChanceCalibrator(min_bin=min_bin).fit(p[train], y[train]).predict(p[~train])
    return out
