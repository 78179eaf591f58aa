"""segkit.clv: BG/NBD and Gamma-Gamma reproduce Fader, Hardie & Lee (2005) on CDNOW and equal lifetimes
(the reference, a dev dependency) customer by customer; the fit is robust, scale-invariant in money and
never silently empty; CLV, P(alive) and the holdout check equal the closed forms and lifetimes."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import segkit.clv
from segkit.clv import (
    OPTIMIZER_METHODS,
    BetaGeoModel,
    GammaGammaModel,
    OneTimeBuyerModel,
    bgnbd_log_likelihood,
    calibration_error,
    calibration_holdout_summary,
    clv_summary,
    customer_lifetime_value,
    expected_purchases,
    first_repeat_durations,
    gamma_gamma_log_likelihood,
    holdout_check,
    monthly_discount_rate,
    p_alive_calibration,
    simulate_customers,
    weak_parameters,
)
from segkit.core.errors import DataError, ModelFitError
from segkit.data.datasets import load_cdnow
from segkit.data.orders import lifetimes_summary, purchase_orders

PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PAPER_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module", autouse=True)
def lifetimes_imported_quietly() -> None:
    """The reference package, imported once without its import-time pandas option warning (the
    tests' own ``import lifetimes`` then finds it loaded). segkit itself never imports it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes  # noqa: F401


@pytest.fixture(scope="module")
def cdnow_orders() -> pd.DataFrame:
    """The raw CDNOW log, every transaction a purchase as in the paper.

    (CDNOW has $0.00 transactions; 8 customers have only such ones. segkit's pipeline does not
    count a non-positive order as a purchase, the paper does: its data are used as published.)
    """
    return load_cdnow("sample")


@pytest.fixture(scope="module")
def cdnow_calibration(cdnow_orders) -> pd.DataFrame:
    return clv_summary(cdnow_orders, "1997-09-30")


def test_segkit_purchase_rule_drops_the_cdnow_customers_with_only_zero_dollar_orders(cdnow_orders):
    assert purchase_orders(cdnow_orders)["customer_id"].nunique() == 2357 - 8


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_calibration) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow_calibration)


# --------------------------------------------------------------------------- the paper
def test_cdnow_calibration_summary_has_the_papers_customers_and_repeat_buyers(cdnow_calibration):
    assert len(cdnow_calibration) == 2357
    assert int((cdnow_calibration["frequency"] > 0).sum()) == 946
    assert int(cdnow_calibration["frequency"].sum()) == 2457
    assert cdnow_calibration["T"].max() == pytest.approx(272 / 7)  # 1997-01-01 .. 1997-09-30


def test_bgnbd_reproduces_fader_hardie_lee_2005_from_the_raw_cdnow_log(cdnow_bgnbd):
    assert {k: round(v, 3) for k, v in cdnow_bgnbd.params_.items()} == PAPER_BGNBD
    assert cdnow_bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert cdnow_bgnbd.n_customers_ == 2357 and cdnow_bgnbd.n_repeat_buyers_ == 946


def test_bgnbd_on_condensed_patterns_equals_lifetimes_fitted_customer_by_customer(cdnow_calibration, cdnow_bgnbd):
    """The fit runs on distinct (frequency, recency, T) patterns weighted by their customers."""
    import lifetimes

    from segkit.clv import purchase_patterns

    x, tx, t_age = (cdnow_calibration[c].to_numpy() for c in ("frequency", "recency", "T"))
    patterns = purchase_patterns(x, tx, t_age)
    assert len(patterns[0]) == 1016 and patterns[3].sum() == len(x)
    reference = lifetimes.BetaGeoFitter().fit(x, tx, t_age)  # no weights: one term per customer
    for name, value in reference.params_.items():
        assert cdnow_bgnbd.params_[name] == pytest.approx(value, rel=1e-6)
        assert cdnow_bgnbd.standard_errors_[name] == pytest.approx(reference.standard_errors_[name], rel=1e-4)
    assert cdnow_bgnbd.n_patterns_ == len(patterns[0]) and cdnow_bgnbd.n_customers_ == len(x)


def test_gamma_gamma_reproduces_the_paper_on_the_946_repeat_buyers(cdnow_calibration):
    gg = GammaGammaModel().fit(cdnow_calibration)
    assert gg.n_customers_ == 946
    for key, value in PAPER_GG.items():  # published to 2 decimals: within half a unit of the last one
        assert gg.params_[key] == pytest.approx(value, abs=0.005), key


def test_gamma_gamma_log_likelihood_is_hardies_and_the_fit_equals_lifetimes(cdnow_calibration):
    import lifetimes

    gg = GammaGammaModel().fit(cdnow_calibration)
    assert gg.log_likelihood_ == pytest.approx(-4055.9177, abs=5e-5)  # Hardie's note 025 spreadsheet
    rows = cdnow_calibration[cdnow_calibration["frequency"] > 0]
    assert gg.log_likelihood_ == pytest.approx(gamma_gamma_log_likelihood(gg.params_, rows["frequency"],
                                                                          rows["monetary_value"]), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lifetimes.GammaGammaFitter().fit(rows["frequency"].to_numpy(), rows["monetary_value"].to_numpy())
    for name, value in reference.params_.items():
        assert gg.params_[name] == pytest.approx(value, rel=1e-6)
        assert gg.standard_errors_[name] == pytest.approx(reference.standard_errors_[name], rel=1e-4)
    np.testing.assert_allclose(gg.predict(cdnow_calibration), reference.conditional_expected_average_profit(
        cdnow_calibration["frequency"].to_numpy(), cdnow_calibration["monetary_value"].to_numpy()), rtol=1e-6)


def test_p_alive_and_expected_purchases_equal_lifetimes_customer_by_customer(cdnow_calibration, cdnow_bgnbd):
    import lifetimes

    reference = lifetimes.BetaGeoFitter()
    reference.params_ = pd.Series(cdnow_bgnbd.params_)
    x, tx, t_age = (cdnow_calibration[c].to_numpy() for c in ("frequency", "recency", "T"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alive = reference.conditional_probability_alive(x, tx, t_age)
        expected = reference.conditional_expected_number_of_purchases_up_to_time(39.0, x, tx, t_age)
        new_customer = reference.expected_number_of_purchases_up_to_time(39.0)
    np.testing.assert_allclose(cdnow_bgnbd.p_alive(cdnow_calibration), alive, rtol=1e-12)
    np.testing.assert_allclose(cdnow_bgnbd.predict(cdnow_calibration, 273.0), expected, rtol=1e-12)
    assert cdnow_bgnbd.expected_purchases_new_customer(273.0) == pytest.approx(new_customer, rel=1e-12)


def test_calendar_weeks_do_not_reproduce_the_paper_which_uses_days_over_seven(cdnow_orders):
    weekly = lifetimes_summary(cdnow_orders, "1997-09-30", freq="W")
    assert int((weekly["frequency"] > 0).sum()) == 935  # same-week purchases merge
    params = BetaGeoModel().fit(weekly).params_
    assert round(params["r"], 3) != PAPER_BGNBD["r"] and round(params["b"], 3) != PAPER_BGNBD["b"]


def test_clv_summary_equals_lifetimes_summary_in_days_over_seven(cdnow_orders, cdnow_calibration):
    from lifetimes.utils import summary_data_from_transaction_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = summary_data_from_transaction_data(cdnow_orders, "customer_id", "order_date", "amount",
                                                 observation_period_end="1997-09-30", freq="D", freq_multiplier=7)
    np.testing.assert_allclose(cdnow_calibration.to_numpy(), ref.sort_index().to_numpy(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- likelihood and closed forms
def test_log_likelihood_of_a_customer_without_repeats_is_the_nbd_zero_term():
    p = {"r": 0.5, "alpha": 3.0, "a": 0.9, "b": 2.0}
    # x = 0: L = (alpha / (alpha + T))^r (Fader, Hardie & Lee 2005, eq. 6 with x = 0)
    assert bgnbd_log_likelihood(p, [0], [0.0], [20.0]) == pytest.approx(0.5 * np.log(3.0 / 23.0))


def test_log_likelihood_of_a_repeat_buyer_equals_equation_six_written_out():
    r, alpha, a, b, x, tx, T = 0.5, 3.0, 0.9, 2.0, 3, 12.0, 20.0
    beta = lambda u, v: np.exp(gammaln(u) + gammaln(v) - gammaln(u + v))  # noqa: E731
    g = np.exp(gammaln(r + x) - gammaln(r))
    expected = (beta(a, b + x) / beta(a, b) * g * alpha**r / (alpha + T) ** (r + x)
                + beta(a + 1, b + x - 1) / beta(a, b) * g * alpha**r / (alpha + tx) ** (r + x))
    got = bgnbd_log_likelihood({"r": r, "alpha": alpha, "a": a, "b": b}, [x], [tx], [T])
    assert got == pytest.approx(np.log(expected), rel=1e-12)


def test_p_alive_is_one_for_one_time_buyers_and_the_closed_form_otherwise(cdnow_bgnbd):
    s = pd.DataFrame({"frequency": [0.0, 2.0], "recency": [0.0, 10.0], "T": [30.0, 38.0]})
    r, alpha, a, b = (cdnow_bgnbd.params_[k] for k in ("r", "alpha", "a", "b"))
    closed = 1 / (1 + a / (b + 2 - 1) * ((alpha + 38.0) / (alpha + 10.0)) ** (r + 2))
    np.testing.assert_allclose(cdnow_bgnbd.p_alive(s), [1.0, closed], rtol=1e-12)


def test_expected_purchases_take_days_and_convert_them_to_weeks(cdnow_bgnbd, cdnow_calibration):
    in_days = cdnow_bgnbd.predict(cdnow_calibration, 273.0)
    as_matrix = cdnow_bgnbd.predict(cdnow_calibration, np.array([[91.0], [273.0]]))
    np.testing.assert_allclose(as_matrix[1], in_days)
    assert (as_matrix[1] > as_matrix[0]).all()
    # unconditional expectation for a new customer (eq. 9) over 39 weeks
    r, alpha, a, b = (cdnow_bgnbd.params_[k] for k in ("r", "alpha", "a", "b"))
    from scipy.special import hyp2f1

    eq9 = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + 39)) ** r * hyp2f1(r, b, a + b - 1, 39 / (alpha + 39)))
    assert cdnow_bgnbd.expected_purchases_new_customer(273.0) == pytest.approx(eq9)


def test_parameters_are_recovered_from_customers_simulated_with_the_paper_values():
    ages = np.random.default_rng(7).uniform(27, 39, 20000)
    s = simulate_customers(20000, PAPER_BGNBD, PAPER_GG, T=ages, seed=11)
    bg, gg = BetaGeoModel().fit(s), GammaGammaModel().fit(s)
    for key, truth in PAPER_BGNBD.items():
        assert abs(bg.params_[key] - truth) < 3 * bg.standard_errors_[key], key
    for key, truth in PAPER_GG.items():
        assert abs(gg.params_[key] - truth) < 3 * gg.standard_errors_[key], key


def test_simulation_is_deterministic_for_a_seed_and_respects_recency_below_age():
    a = simulate_customers(500, PAPER_BGNBD, PAPER_GG, seed=3)
    pd.testing.assert_frame_equal(a, simulate_customers(500, PAPER_BGNBD, PAPER_GG, seed=3))
    assert (a["recency"] <= a["T"]).all() and (a.loc[a["frequency"] == 0, "recency"] == 0).all()
    assert not a.equals(simulate_customers(500, PAPER_BGNBD, PAPER_GG, seed=4))


# --------------------------------------------------------------------------- CLV
def test_clv_equals_lifetimes_with_the_same_month_length_and_monthly_rate(cdnow_calibration, cdnow_bgnbd):
    import lifetimes

    gg = GammaGammaModel().fit(cdnow_calibration)
    ref_gg, ref_bg = lifetimes.GammaGammaFitter(), lifetimes.BetaGeoFitter()
    ref_gg.params_, ref_bg.params_ = pd.Series(gg.params_), pd.Series(cdnow_bgnbd.params_)
    ref_bg.predict = ref_bg.conditional_expected_number_of_purchases_up_to_time
    s = cdnow_calibration
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ref_gg.customer_lifetime_value(ref_bg, s["frequency"], s["recency"], s["T"], s["monetary_value"],
                                             time=12, discount_rate=0.01, freq="W")
    ours = customer_lifetime_value(cdnow_bgnbd, gg, s, horizon_months=12, discount_rate=1.01**12 - 1,
                                   days_per_month=4.345 * 7)
    np.testing.assert_allclose(ours, ref.to_numpy(), rtol=1e-9)


def test_clv_grows_with_the_horizon_and_margin_and_shrinks_with_the_discount_rate(cdnow_calibration, cdnow_bgnbd):
    gg = GammaGammaModel().fit(cdnow_calibration)
    base = customer_lifetime_value(cdnow_bgnbd, gg, cdnow_calibration, 12, 0.10)
    assert (customer_lifetime_value(cdnow_bgnbd, gg, cdnow_calibration, 24, 0.10) > base).all()
    assert (customer_lifetime_value(cdnow_bgnbd, gg, cdnow_calibration, 12, 0.30) < base).all()
    np.testing.assert_allclose(customer_lifetime_value(cdnow_bgnbd, gg, cdnow_calibration, 12, 0.10, margin=0.3),
                               0.3 * base)
    undiscounted = customer_lifetime_value(cdnow_bgnbd, gg, cdnow_calibration, 12, 0.0)
    np.testing.assert_allclose(undiscounted, gg.predict(cdnow_calibration)
                               * cdnow_bgnbd.predict(cdnow_calibration, 12 * 365.25 / 12), rtol=1e-10)


def test_monthly_discount_rate_compounds_to_the_annual_rate():
    assert (1 + monthly_discount_rate(0.1)) ** 12 == pytest.approx(1.1)


def test_gamma_gamma_gives_one_time_buyers_the_population_mean_and_shrinks_repeat_buyers(cdnow_calibration):
    gg = GammaGammaModel().fit(cdnow_calibration)
    s = pd.DataFrame({"frequency": [0.0, 1.0, 20.0], "monetary_value": [0.0, 100.0, 100.0]})
    pred = gg.predict(s)
    p, q, v = gg.params_["p"], gg.params_["q"], gg.params_["v"]
    assert pred[0] == pytest.approx(p * v / (q - 1))
    assert pred[0] < pred[1] < pred[2] < 100.0  # more orders: closer to the customer's own mean


# --------------------------------------------------------------------------- holdout
def test_calibration_holdout_equals_lifetimes_customer_by_customer(cdnow_orders):
    from lifetimes.utils import calibration_and_holdout_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (without monetary_value_col lifetimes' holdout group-by has no column left and fails on pandas 3)
        ref = calibration_and_holdout_data(cdnow_orders, "customer_id", "order_date", "1997-09-30", "1998-06-30",
                                           freq="D", freq_multiplier=7, monetary_value_col="amount")
    ours = calibration_holdout_summary(cdnow_orders, "1997-09-30", "1998-06-30")
    np.testing.assert_array_equal(ours["frequency_holdout"].to_numpy(), ref.sort_index()["frequency_holdout"].to_numpy())
    assert ours["duration_holdout_days"].iloc[0] == 273.0 == ref["duration_holdout"].iloc[0] * 7


def test_holdout_check_buckets_add_up_to_the_overall_row(cdnow_orders, cdnow_bgnbd):
    cal = calibration_holdout_summary(cdnow_orders, "1997-09-30", "1998-06-30")
    table = holdout_check(cdnow_bgnbd, cal).set_index("frequency_bucket")
    assert list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+", "all"]
    assert table.loc["all", "customers"] == 2357 and table.loc["all", "actual"] == 1882
    buckets = table.drop(index="all")
    assert buckets["customers"].sum() == 2357
    assert buckets["predicted"].sum() == pytest.approx(table.loc["all", "predicted"])
    assert table.loc["all", "predicted"] == pytest.approx(cdnow_bgnbd.predict(cal, 273.0).sum())
    assert table.loc["1", "customers"] == int((cal["frequency"] == 1).sum())
    expected_error = 100 * (table.loc["all", "predicted"] - 1882) / 1882
    assert table.loc["all", "error_pct"] == pytest.approx(expected_error)


# --------------------------------------------------------------------------- failures
def test_too_few_repeat_buyers_raise_a_model_fit_error_that_says_what_to_do():
    s = pd.DataFrame({"frequency": [0.0] * 50 + [1.0] * 3, "recency": [0.0] * 50 + [2.0] * 3, "T": 10.0})
    with pytest.raises(ModelFitError, match=r"only 3 of 53 customers made a repeat purchase.*longer data period"):
        BetaGeoModel(min_repeat_buyers=10).fit(s)
    with pytest.raises(ModelFitError, match="only 3 repeat buyers"):
        GammaGammaModel(min_repeat_buyers=10).fit(s.assign(monetary_value=[0.0] * 50 + [5.0] * 3))


def _minimize_failing(methods: tuple[str, ...]):
    """scipy.optimize.minimize, except that the given methods stop where they start (unconverged)."""
    from scipy import optimize

    def minimize(fun, x0, *args, method=None, **kwargs):
        if method in methods:
            return optimize.OptimizeResult(x=np.asarray(x0, dtype=float), success=False, nit=0,
                                           message="simulated failure")
        return optimize.minimize(fun, x0, *args, method=method, **kwargs)
    return minimize


def test_when_no_optimiser_converges_the_fit_is_a_model_fit_error_that_lists_the_attempts(monkeypatch, capsys):
    import types

    monkeypatch.setattr(segkit.clv, "optimize", types.SimpleNamespace(minimize=_minimize_failing(OPTIMIZER_METHODS)))
    s = simulate_customers(300, PAPER_BGNBD, PAPER_GG, seed=1)
    with pytest.raises(ModelFitError, match=r"BG/NBD on 300 customers .* did not converge: 3 starting point\(s\) x "
                                            r"BFGS, L-BFGS-B, Nelder-Mead tried.*simulated failure.*penalizer"):
        BetaGeoModel().fit(s)
    with pytest.raises(ModelFitError, match=r"Gamma-Gamma on \d+ repeat buyers did not converge.*Check the audit"):
        GammaGammaModel().fit(s)
    assert capsys.readouterr().out == ""


def test_a_fit_where_bfgs_fails_is_taken_from_the_fallback_method_with_the_same_optimum(monkeypatch):
    import types

    s = simulate_customers(3000, PAPER_BGNBD, PAPER_GG, seed=2)
    plain_bg, plain_gg = BetaGeoModel().fit(s), GammaGammaModel().fit(s)
    assert plain_bg.optimizer_["method"] == plain_gg.optimizer_["method"] == "BFGS"
    monkeypatch.setattr(segkit.clv, "optimize", types.SimpleNamespace(minimize=_minimize_failing(("BFGS",))))
    bg, gg = BetaGeoModel().fit(s), GammaGammaModel().fit(s)
    assert bg.optimizer_["method"] == gg.optimizer_["method"] == "L-BFGS-B"
    assert bg.to_dict()["optimizer"]["method"] == "L-BFGS-B"
    for fallback, plain in ((bg, plain_bg), (gg, plain_gg)):
        for name, value in plain.params_.items():
            assert fallback.params_[name] == pytest.approx(value, rel=1e-6), name
        assert fallback.optimizer_["max_abs_gradient"] <= segkit.clv.GRADIENT_TOLERANCE


def test_a_fit_is_taken_from_the_next_starting_point_when_the_first_goes_nowhere(monkeypatch):
    s = simulate_customers(3000, PAPER_BGNBD, seed=2)
    plain = BetaGeoModel().fit(s)
    # the first start far out on a flat plateau (r, alpha ~ e^30): every method stalls there
    original = segkit.clv.fit_maximum_likelihood
    monkeypatch.setattr(segkit.clv, "fit_maximum_likelihood",
                        lambda objective, starts, *a: original(objective, [np.array([30.0, 30.0, 30.0, 30.0]), *starts], *a))
    model = BetaGeoModel().fit(s)
    assert model.optimizer_["start"] >= 1
    for name, value in plain.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-6), name


def test_an_infinite_mean_order_value_is_refused():
    s = simulate_customers(3000, PAPER_BGNBD, {"p": 2.0, "q": 0.7, "v": 5.0}, seed=1)
    with pytest.raises(ModelFitError, match=r"q = 0\.\d+ <= 1"):
        GammaGammaModel().fit(s)


def test_an_invalid_summary_is_a_data_error_naming_the_customers():
    s = pd.DataFrame({"frequency": [1.0, 2.0], "recency": [5.0, 40.0], "T": [10.0, 30.0]},
                     index=pd.Index(["ok", "bad"], name="customer_id"))
    with pytest.raises(DataError, match=r"1 customer\(s\).*recency > T.*customer_id bad"):
        BetaGeoModel().fit(s)
    with pytest.raises(DataError, match="'T' missing"):
        BetaGeoModel().fit(s.drop(columns="T"))


def test_predicting_before_fitting_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        BetaGeoModel().p_alive(pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [1.0]}))


def test_model_json_has_the_contract_keys_and_no_nan(cdnow_bgnbd, cdnow_calibration):
    import json

    bg = cdnow_bgnbd.to_dict()
    assert {"r", "alpha", "a", "b", "log_likelihood", "time_unit"} <= set(bg) and bg["time_unit"] == "weeks"
    gg = GammaGammaModel().fit(cdnow_calibration).to_dict()
    assert {"p", "q", "v"} <= set(gg)
    json.dumps({"bgnbd": bg, "gamma_gamma": gg}, allow_nan=False)


def test_segkit_clv_neither_imports_lifetimes_nor_changes_warning_filters_nor_prints():
    code = (
        "import sys, warnings\n"
        "import numpy, pandas, scipy.optimize, scipy.special, sklearn.base, segkit.rfm  # their own filters\n"
        "before = list(warnings.filters)\n"
        "from segkit.clv import BetaGeoModel, GammaGammaModel, simulate_customers\n"
        "s = simulate_customers(2000, {'r': 0.24, 'alpha': 4.4, 'a': 0.79, 'b': 2.4}, {'p': 6, 'q': 4, 'v': 15})\n"
        "BetaGeoModel().fit(s).p_alive(s); GammaGammaModel().fit(s)\n"
        "assert list(warnings.filters) == before, 'warning filters changed'\n"
        "assert 'lifetimes' not in sys.modules and 'autograd' not in sys.modules, 'lifetimes imported'\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "clean\n"


# --------------------------------------------------------------------------- money scale (issue 14)
@pytest.mark.parametrize("factor", [1e10, 1e-4, 100.0])
def test_the_money_unit_does_not_change_the_fit_or_clv_beyond_the_factor(cdnow_orders, cdnow_bgnbd, factor):
    """Amounts x 1e10 (about 1e12 per order) once left Gamma-Gamma unconverged and clv_12m empty."""
    base = clv_summary(cdnow_orders, "1997-09-30")
    scaled = clv_summary(cdnow_orders.assign(amount=cdnow_orders["amount"] * factor), "1997-09-30")
    gg, gg_scaled = GammaGammaModel().fit(base), GammaGammaModel().fit(scaled)
    assert gg_scaled.params_["p"] == pytest.approx(gg.params_["p"], rel=1e-6)
    assert gg_scaled.params_["q"] == pytest.approx(gg.params_["q"], rel=1e-6)
    assert gg_scaled.params_["v"] == pytest.approx(gg.params_["v"] * factor, rel=1e-6)
    assert gg_scaled.standard_errors_["v"] == pytest.approx(gg.standard_errors_["v"] * factor, rel=1e-5)
    assert gg_scaled.log_likelihood_ == pytest.approx(gg.log_likelihood_ - gg.n_customers_ * np.log(factor), rel=1e-9)
    order_value = gg_scaled.predict(scaled)
    assert np.isfinite(order_value).all()
    np.testing.assert_allclose(order_value, gg.predict(base) * factor, rtol=1e-6)
    clv = customer_lifetime_value(cdnow_bgnbd, gg_scaled, scaled, 12, 0.1)
    assert np.isfinite(clv).all() and (clv > 0).all()
    np.testing.assert_allclose(clv, customer_lifetime_value(cdnow_bgnbd, gg, base, 12, 0.1) * factor, rtol=1e-6)


# --------------------------------------------------------------------------- persistence
def test_models_restored_from_json_predict_exactly_as_the_fitted_ones(cdnow_orders, cdnow_bgnbd, cdnow_calibration):
    import json

    s = cdnow_calibration
    durations = first_repeat_durations(cdnow_orders, "1997-09-30").reindex(s.index)
    gg = GammaGammaModel().fit(s)
    one_time = OneTimeBuyerModel().fit(durations["days"], durations["repeated"])
    stored = json.loads(json.dumps({"bgnbd": cdnow_bgnbd.to_dict(), "gamma_gamma": gg.to_dict(),
                                    "one_time_buyers": one_time.to_dict()}, allow_nan=False))
    bg2 = BetaGeoModel.from_dict(stored["bgnbd"])
    gg2 = GammaGammaModel.from_dict(stored["gamma_gamma"])
    one2 = OneTimeBuyerModel.from_dict(stored["one_time_buyers"])
    np.testing.assert_array_equal(bg2.p_alive(s), cdnow_bgnbd.p_alive(s))
    np.testing.assert_array_equal(bg2.predict(s, 90.0), cdnow_bgnbd.predict(s, 90.0))
    np.testing.assert_array_equal(gg2.predict(s), gg.predict(s))
    np.testing.assert_array_equal(one2.p_alive(s["T"] * 7), one_time.p_alive(s["T"] * 7))
    np.testing.assert_array_equal(customer_lifetime_value(bg2, gg2, s, 12, 0.1, one_time=one2),
                                  customer_lifetime_value(cdnow_bgnbd, gg, s, 12, 0.1, one_time=one_time))
    assert bg2.expected_purchases_new_customer(273.0) == cdnow_bgnbd.expected_purchases_new_customer(273.0)
    assert bg2.to_dict() == stored["bgnbd"] and gg2.to_dict() == stored["gamma_gamma"]
    assert one2.to_dict() == stored["one_time_buyers"]
    assert bg2.weak_parameters_ == cdnow_bgnbd.weak_parameters_
    assert bg2.dropout_mean_se_ == cdnow_bgnbd.dropout_mean_se_


def test_from_dict_names_what_is_missing_or_invalid():
    with pytest.raises(DataError, match=r"BetaGeoModel.from_dict: key\(s\) 'b' missing.*clv_model.json: bgnbd"):
        BetaGeoModel.from_dict({"r": 0.2, "alpha": 4.0, "a": 0.8})
    with pytest.raises(DataError, match=r"GammaGammaModel.from_dict: 'q' not a positive number"):
        GammaGammaModel.from_dict({"p": 6.0, "q": -1.0, "v": 15.0})
    with pytest.raises(DataError, match=r"OneTimeBuyerModel.from_dict: 'days' and 'survival'"):
        OneTimeBuyerModel.from_dict({"days": [1.0, 2.0], "survival": [0.5]})


# --------------------------------------------------------------------------- one-time buyers
def test_first_repeat_durations_count_days_to_the_second_purchase_day_or_to_the_end():
    purchases = pd.DataFrame({"customer_id": ["b", "a", "a", "a", "c"],
                              "order_date": pd.to_datetime(["2024-01-20 12:00", "2024-01-01 09:00", "2024-01-01 18:00",
                                                            "2024-01-11 10:00", "2024-02-05 10:00"])})
    got = first_repeat_durations(purchases, "2024-01-31")  # c buys after the end: not a customer yet
    expected = pd.DataFrame({"days": [10.0, 11.0], "repeated": [True, False]},
                            index=pd.Index(["a", "b"], dtype="string", name="customer_id"))
    pd.testing.assert_frame_equal(got, expected)


def test_one_time_buyer_model_is_kaplan_meier_on_the_time_to_the_second_purchase():
    # gaps 10, 20, 40 observed; 30 and 50 censored (no second purchase yet at that age)
    m = OneTimeBuyerModel(min_repeat_buyers=1).fit([10, 20, 30, 40, 50], [True, True, False, True, False])
    np.testing.assert_allclose(m.days_, [10, 20, 40])
    np.testing.assert_allclose(m.survival_, [4 / 5, 4 / 5 * 3 / 4, 4 / 5 * 3 / 4 * 1 / 2])
    np.testing.assert_allclose(m.survival([0, 10, 39, 1000]), [1.0, 0.8, 0.6, 0.3])
    # aged 25 days without a second purchase: S(25) = 0.6 of whom 0.3 never buy again
    np.testing.assert_allclose(m.p_alive([0.0, 25.0, 45.0]), [0.7, 0.5, 0.0])
    np.testing.assert_allclose(m.p_purchase_within([25.0, 25.0], [10.0, 20.0]), [0.0, 0.5])
    assert (m.n_customers_, m.n_repeat_buyers_, m.follow_up_days_) == (5, 3, 40.0)


def test_one_time_buyer_model_refuses_too_few_second_purchases_and_bad_durations():
    with pytest.raises(ModelFitError, match=r"only 2 of 4 buyers made a second purchase"):
        OneTimeBuyerModel(min_repeat_buyers=3).fit([1, 2, 3, 4], [True, True, False, False])
    with pytest.raises(DataError, match="missing or negative"):
        OneTimeBuyerModel(min_repeat_buyers=1).fit([1, -2], [True, False])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        OneTimeBuyerModel().p_alive([1.0])


def test_the_chance_of_a_purchase_in_a_window_is_the_closed_form_and_matches_simulation(cdnow_bgnbd):
    s = pd.DataFrame({"frequency": [0.0, 3.0], "recency": [0.0, 20.0], "T": [30.0, 38.0]})
    r, alpha = cdnow_bgnbd.params_["r"], cdnow_bgnbd.params_["alpha"]
    got = cdnow_bgnbd.p_purchase_within(s, 26 * 7.0)
    p_alive = cdnow_bgnbd.p_alive(s)
    expected = p_alive * (1 - ((alpha + s["T"]) / (alpha + s["T"] + 26)) ** (r + s["frequency"]))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # a one-time buyer cannot drop out before the next purchase: P = E[e^-lT (1 - e^-lt)] / E[e^-lT]
    lam = np.random.default_rng(0).gamma(r, 1 / alpha, 2_000_000)
    weight = np.exp(-lam * 30.0)
    simulated = np.sum(weight * (1 - np.exp(-lam * 26.0))) / weight.sum()
    assert got[0] == pytest.approx(simulated, rel=0.01)


def test_expected_purchases_keep_repeat_buyers_and_rescale_one_time_buyers_by_the_data(cdnow_bgnbd, cdnow_calibration):
    s = cdnow_calibration
    durations = first_repeat_durations(load_cdnow("sample"), "1997-09-30").reindex(s.index)
    one_time = OneTimeBuyerModel().fit(durations["days"], durations["repeated"])
    got = expected_purchases(cdnow_bgnbd, s, 90.0, one_time)
    plain = cdnow_bgnbd.predict(s, 90.0)
    one = (s["frequency"] == 0).to_numpy()
    np.testing.assert_allclose(got[~one], plain[~one], rtol=1e-12)
    age = s["T"].to_numpy()[one] * 7
    per_buyer = plain[one] / cdnow_bgnbd.p_purchase_within(s[one], 90.0)
    np.testing.assert_allclose(got[one], one_time.p_purchase_within(age, 90.0) * per_buyer, rtol=1e-12)
    np.testing.assert_allclose(expected_purchases(cdnow_bgnbd, s, 90.0), plain)
    gg = GammaGammaModel().fit(s)
    clv = customer_lifetime_value(cdnow_bgnbd, gg, s, 12, 0.0, one_time=one_time)
    base = customer_lifetime_value(cdnow_bgnbd, gg, s, 12, 0.0)
    np.testing.assert_allclose(clv[~one], base[~one], rtol=1e-12)
    np.testing.assert_allclose(clv[one], gg.predict(s)[one] * expected_purchases(cdnow_bgnbd, s, 365.25, one_time)[one],
                               rtol=1e-10)


# --------------------------------------------------------------------------- identification
def test_weak_parameters_flag_large_standard_errors_and_shapes_run_off():
    assert weak_parameters({"r": 0.7, "alpha": 6.0, "a": 1.84, "b": 70.6},
                           {"r": 0.027, "alpha": 0.29, "a": 2.23, "b": 91.9}) == ["a", "b"]
    assert weak_parameters({"a": 1.0, "b": 2.0}, {"a": float("nan"), "b": 0.1}) == ["a"]
    assert weak_parameters({"a": 2e4, "v": 2e4}, {"a": 1.0, "v": 1.0}, shapes=("a",)) == ["a"]  # v: a money scale
    assert weak_parameters({"a": 1.0}, {"a": 1.5}, max_relative_se=2.0) == []


def test_the_papers_fit_is_identified_and_a_homogeneous_dropout_is_not(cdnow_bgnbd):
    assert cdnow_bgnbd.weak_parameters_ == []
    assert cdnow_bgnbd.to_dict()["weak_parameters"] == []
    # everyone with the same dropout chance: a, b -> infinity along a / (a + b) = 0.2
    same = simulate_customers(4000, {"r": 0.5, "alpha": 4.0, "a": 2000.0, "b": 8000.0}, seed=3)
    model = BetaGeoModel().fit(same)
    assert {"a", "b"} <= set(model.weak_parameters_)
    assert model.dropout_mean_ == pytest.approx(0.2, abs=0.05) and model.dropout_mean_se_ < 0.05


def test_the_dropout_mean_standard_error_is_the_delta_method_on_the_hessian(cdnow_bgnbd, cdnow_calibration):
    s = cdnow_calibration
    names = ("r", "alpha", "a", "b")
    theta = np.log([cdnow_bgnbd.params_[k] for k in names])

    def loglik(logs):
        return bgnbd_log_likelihood(dict(zip(names, np.exp(logs))), s["frequency"], s["recency"], s["T"])

    h, hess = 1e-4, np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * h, np.eye(4)[j] * h
            hess[i, j] = (loglik(theta + e_i + e_j) - loglik(theta + e_i - e_j) - loglik(theta - e_i + e_j)
                          + loglik(theta - e_i - e_j)) / (4 * h * h)
    cov = np.linalg.inv(-hess)
    a, b = cdnow_bgnbd.params_["a"], cdnow_bgnbd.params_["b"]
    slope = a * b / (a + b) ** 2
    expected = slope * np.sqrt(cov[2, 2] + cov[3, 3] - 2 * cov[2, 3])
    assert cdnow_bgnbd.dropout_mean_se_ == pytest.approx(expected, rel=0.02)
    for k, i in (("a", 2), ("b", 3)):
        assert cdnow_bgnbd.standard_errors_[k] == pytest.approx(cdnow_bgnbd.params_[k] * np.sqrt(cov[i, i]), rel=0.02)


# --------------------------------------------------------------------------- P(alive) calibration
def test_p_alive_calibration_groups_customers_by_p_alive_and_compares_with_who_bought():
    p_alive = [0.9, 0.1, 0.5, 1.0, 1.0, 0.3]
    p_buy = [0.8, 0.05, 0.4, 0.6, 0.2, 0.2]
    bought = [True, False, True, True, False, False]
    table = p_alive_calibration(p_alive, p_buy, bought, bins=3)
    expected = pd.DataFrame({"decile": [1, 2, 3], "customers": [2, 2, 2], "p_alive": [0.2, 0.7, 1.0],
                             "predicted_share": [0.125, 0.6, 0.4], "actual_share": [0.0, 1.0, 0.5]})
    expected["gap"] = expected["predicted_share"] - expected["actual_share"]
    pd.testing.assert_frame_equal(table, expected)  # ties at P(alive) 1 broken by the purchase chance
    assert calibration_error(table) == pytest.approx((0.125 + 0.4 + 0.1) / 3)


def test_calibration_holdout_summary_adds_each_customers_holdout_revenue(cdnow_orders):
    cal = calibration_holdout_summary(cdnow_orders, "1997-09-30", "1998-06-30")
    day = cdnow_orders["order_date"].dt.normalize()
    hold = cdnow_orders[(day > "1997-09-30") & (day <= "1998-06-30")]
    expected = hold.groupby("customer_id")["amount"].sum()
    got = cal["revenue_holdout"]
    np.testing.assert_allclose(got.reindex(expected.index.astype("string")).to_numpy(), expected.to_numpy())
    assert got.sum() == pytest.approx(hold["amount"].sum())
    assert (got[cal["frequency_holdout"] == 0] == 0).all()
