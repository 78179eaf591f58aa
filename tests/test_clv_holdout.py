"""Issue 16, churn and CLV that hold on a holdout: p_purchase_90d, decile calibration with
intervals and AUC against baselines, the calibrated export and its P(alive) floor, an at-risk
rule that separates who buys, the season caveat and the by-stage revenue note. Data: the real
CDNOW master log (lifetimes' copy) and small hand-built fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segkit.clv import (
    ChanceCalibrator,
    cross_fitted_calibration,
    decile_calibration,
    ranking_auc,
    wilson_interval,
)
from segkit.core.config import load_config
from segkit.data.datasets import load_cdnow
from segkit.data.online_retail import generate_online_retail
from segkit.data.orders import purchase_orders
from segkit.lifecycle import (
    EXPORT_COLUMNS,
    CLVModels,
    HoldoutCheck,
    LifecycleSettings,
    StageThresholds,
    assign_lifecycle_stage,
    fit_clv_models,
    purchase_history,
    run_holdout_check,
    score_customers,
    season_comparison,
)
from segkit.steps.lifecycle import holdout_model_note, season_note, stage_holdout_note

SETTINGS = LifecycleSettings.from_config(load_config()["lifecycle"])


@pytest.fixture(scope="module")
def cdnow_check():
    """The holdout check on the real CDNOW master log: fitted up to 1998-04-01, the last 90 days held out."""
    history = purchase_history(purchase_orders(load_cdnow("master")))
    orders = history[["customer_id", "purchase_date", "amount"]].rename(columns={"purchase_date": "order_date"})
    as_of = orders["order_date"].max() + pd.Timedelta(days=1)
    return run_holdout_check(orders, as_of, SETTINGS, history=history), orders, as_of


# --------------------------------------------------------------------------- statistics
def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval([0, 3, 10], [10, 10, 10])
    assert low.round(4).tolist() == [0.0, 0.1078, 0.7225]
    assert high.round(4).tolist() == [0.2775, 0.6032, 1.0]


def test_ranking_auc_is_the_mann_whitney_share_with_ties_counted_half():
    assert ranking_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert ranking_auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert ranking_auc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    assert np.isnan(ranking_auc([1, 2], [True, True]))


def test_decile_calibration_gives_equal_groups_means_and_intervals_of_shares_and_counts():
    p = np.linspace(0, 1, 100)
    bought = np.arange(100) >= 50
    share = decile_calibration(p, bought, "share")
    assert share["customers"].tolist() == [10] * 10
    assert share["actual"].tolist() == [0.0] * 5 + [1.0] * 5
    assert (share["actual_low"] <= share["actual"]).all() and (share["actual"] <= share["actual_high"]).all()
    counts = decile_calibration(p * 2, np.where(bought, 2.0, 0.0), "count", bins=2)
    assert counts["actual"].tolist() == [0.0, 2.0] and counts["actual_high"].tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="share' or 'count"):
        decile_calibration(p, bought, "rate")


def test_isotonic_calibrator_corrects_the_level_keeps_the_order_and_round_trips_through_json():
    rng = np.random.default_rng(0)
    raw = rng.random(4000) * 0.2  # the model says at most 20 %
    bought = rng.random(4000) < 2 * raw  # twice that happens
    calibrator = ChanceCalibrator().fit(raw, bought)
    fitted = calibrator.predict([0.05, 0.15])
    assert fitted[0] < fitted[1] and fitted[1] == pytest.approx(0.3, abs=0.06)
    again = ChanceCalibrator.from_dict(calibrator.to_dict())
    assert np.array_equal(again.predict(raw), calibrator.predict(raw))
    crossed = cross_fitted_calibration(raw, bought)
    assert abs(crossed.mean() - bought.mean()) < 0.02


# --------------------------------------------------------------------------- CDNOW holdout
def test_cdnow_holdout_reports_every_prediction_against_the_baselines(cdnow_check):
    check, *_ = cdnow_check
    assert check.days == 90.0 and str(check.cutoff.date()) == "1998-04-02"
    ev = check.evaluation.set_index(["prediction", "variant"])
    for key in [("p_alive", "exported"), ("p_purchase_90d", "exported"), ("expected_purchases_90d", "exported"),
                ("baseline", "recency"), ("baseline", "frequency"), ("expected_purchases_90d", "baseline: past rate")]:
        assert 0.5 < ev.loc[key, "auc"] < 1.0, key
    # BG/NBD's P(alive) (one-time buyers at 1) ranks worse than a coin: the export does not use it alone
    assert ev.loc[("p_alive", "bgnbd"), "auc"] < 0.5 < ev.loc[("p_alive", "exported"), "auc"]
    for name in ("p_alive", "p_purchase_90d", "expected_purchases_90d"):
        table = check.deciles[name]
        assert len(table) == 10 and table["customers"].sum() == 23_502
        assert {"actual_low", "actual_high", "gap"} <= set(table.columns)


def test_cdnow_export_is_chosen_on_the_holdout_and_reported_as_chosen_on_the_quarter_before(cdnow_check):
    """What the check reports "as exported" is the export made on the cut-off day: variant and calibration
    chosen on the 90 days before it (plain BG/NBD then), never on the holdout that judges it. Out of sample
    the calibration still misses less than the same model uncalibrated (2.15 against 2.19 points), though not
    less than the one-time buyer model (1.88): CDNOW's cohort buys less every quarter. Before, the reported
    values were cross-fitted on the holdout itself (0.5 points)."""
    check, *_ = cdnow_check
    ev = check.evaluation.set_index(["prediction", "variant"])["calibration_error"]
    assert check.choice.variant == "calibrated" and check.choice.base == "one_time"
    assert "calibrated on the holdout" in check.choice.reason
    assert check.reported_choice.variant == "calibrated" and check.reported_choice.base == "bgnbd"
    assert check.reported_from.startswith("the variant and calibration chosen on the 90 days before the cut-off "
                                          "(1998-01-02 to 1998-04-01)")
    assert ev[("p_purchase_90d", "exported")] == pytest.approx(0.0215, abs=5e-4)
    assert ev[("p_purchase_90d", "exported")] < ev[("p_purchase_90d", "bgnbd")]
    assert ev[("p_purchase_90d", "one_time")] == pytest.approx(0.0188, abs=5e-4)


def test_cdnow_p_alive_is_never_below_the_share_who_bought_in_any_decile(cdnow_check):
    """Issue 16 "Done when": share who bought <= mean P(alive) + 5 points in every decile. Before,
    the lowest deciles of one-time buyers had P(alive) 0.3 % while 2.8 % bought."""
    check, *_ = cdnow_check
    table = check.deciles["p_alive"]
    assert (table["actual"] <= table["predicted"] + 0.05).all()
    assert (table["actual"].head(3) <= table["predicted"].head(3) + 0.01).all()


def test_cdnow_at_risk_customers_buy_at_least_ten_points_less_often_than_active_ones(cdnow_check):
    check, *_ = cdnow_check
    stages = check.by_stage.set_index("lifecycle_stage")
    assert stages.loc["active", "bought_share"] - stages.loc["at_risk", "bought_share"] >= 0.10
    text = stage_holdout_note(check)
    assert "Customers in the at_risk stage at the cut-off bought in the 90-day holdout at 19%" in text and "active ones at 38%" in text


def test_score_customers_exports_p_purchase_90d_calibrated_and_p_alive_floored_by_it(cdnow_check):
    check, orders, as_of = cdnow_check
    from segkit.clv import clv_summary, first_repeat_durations
    end = as_of - pd.Timedelta(days=1)
    summary = clv_summary(orders, end)
    models = fit_clv_models(summary, SETTINGS, first_repeat_durations(orders, end).reindex(summary.index))
    plain = score_customers(models, summary, SETTINGS)
    chosen = score_customers(CLVModels(**{**models.__dict__, "choice": check.choice}), summary, SETTINGS)
    assert "p_purchase_90d" in EXPORT_COLUMNS and chosen["p_purchase_90d"].between(0, 1).all()
    assert (chosen["p_alive"] >= chosen["p_purchase_90d"] - 1e-12).all()
    one = summary["frequency"] == 0
    assert (chosen.loc[one, "p_alive"] >= plain.loc[one, "p_alive"]).all()
    assert chosen.loc[one, "p_alive"].min() > plain.loc[one, "p_alive"].min()
    assert (plain["p_purchase_90d"] <= plain["p_alive"].fillna(1.0) + 1e-12).all()


# --------------------------------------------------------------------------- rules and texts
def test_a_repeat_buyer_with_a_low_purchase_chance_is_at_risk_and_an_overdue_likely_one_is_not():
    th = StageThresholds(churn_window_days=100, new_window_days=30, base_interval_days=40, loyal_min_purchases=9)
    state = pd.DataFrame({"n_purchases": [3, 3, 3], "recency_days": [60.0, 60.0, 10.0],
                          "tenure_days": [300.0] * 3, "gap_before_last_days": [20.0] * 3,
                          "own_interval_days": [20.0] * 3, "monetary_total": [100.0] * 3, "engaged": False})
    # customer 0 and 1: overdue (60 > 2 x 20 and > 40); 0 likely to buy, 1 not
    assert assign_lifecycle_stage(state, th, [0.9, 0.9, 0.9]).tolist() == ["at_risk", "at_risk", "active"]
    got = assign_lifecycle_stage(state, th, [0.9, 0.9, 0.9], p_purchase=[0.7, 0.1, 0.6])
    assert got.tolist() == ["active", "at_risk", "active"]


def test_season_comparison_flags_a_peak_in_the_holdout_that_the_prediction_period_lacks():
    days = pd.Series(pd.date_range("2010-12-01", "2011-12-09"))
    busy = days[(days.dt.month >= 9) & (days.dt.month <= 11)].repeat(2)  # autumn: 3 purchases a day
    out = season_comparison(pd.concat([days, busy]), pd.Timestamp("2011-09-11"), pd.Timestamp("2011-12-10"))
    assert out["differs"] and out["peak_in_holdout"] and not out["peak_in_prediction"]
    text = season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-09-11"), days=90.0, season=out), pd.Timestamp("2011-12-10"))
    assert text.startswith("**⚠ Season.** The holdout (2011-09-11 to 2011-12-09)")
    assert "falls in the holdout but not in the prediction period" in text and "run high" in text
    flat = season_comparison(days, pd.Timestamp("2011-09-11"), pd.Timestamp("2011-12-10"))
    assert not flat["differs"]
    assert season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-09-11"), days=90.0, season=flat),
                       pd.Timestamp("2011-12-10")) is None


def test_holdout_note_says_plainly_when_a_model_does_not_beat_a_baseline():
    ev = pd.DataFrame({"prediction": ["p_purchase_90d", "expected_purchases_90d", "baseline", "baseline"],
                       "variant": ["exported", "exported", "recency", "frequency"],
                       "auc": [0.70, 0.80, 0.74, 0.60], "calibration_error": [0.02, 0.1, np.nan, np.nan]})
    text = holdout_model_note(HoldoutCheck(evaluation=ev, days=90.0))
    assert "**the 90-day purchase chance (p_purchase_90d) does not beat baseline: recency**" in text
    assert "AUC 0.700 against 0.740" in text
    assert "expected purchases (expected_purchases_90d) beats the best baseline (baseline: recency, AUC 0.740)" in text


def test_stage_note_names_stages_whose_revenue_missed_by_more_than_a_quarter_and_a_weak_at_risk_rule():
    by_stage = pd.DataFrame({"lifecycle_stage": ["active", "loyal", "at_risk", "lapsed"], "customers": [100, 40, 57, 80],
                             "bought_share": [0.77, 0.9, 0.75, 0.1], "bought_low": [0.68, 0.77, 0.62, 0.05],
                             "bought_high": [0.84, 0.96, 0.85, 0.19], "revenue_error_pct": [5.0, -46.0, 10.0, -45.0]})
    text = stage_holdout_note(HoldoutCheck(by_stage=by_stage, days=90.0))
    assert "only 2 points apart: **the at-risk rule does not separate who buys on this data**" in text
    assert "Revenue under-predicted by more than 25%: loyal by 46%, lapsed by 45%." in text
    assert "over-predicted" not in text


def test_season_note_names_the_months_of_the_prediction_period_the_data_never_covered():
    # purchases every day from 2010-12-01 to 2011-09-10 only: October and November never seen
    days = pd.Series(pd.date_range("2010-12-01", "2011-09-10"))
    out = season_comparison(days, pd.Timestamp("2011-06-13"), pd.Timestamp("2011-09-11"))
    assert not out["comparable"]
    assert out["months_not_in_data"] == ["October", "November"]
    note = season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-06-13"), days=90.0, season=out),
                       pd.Timestamp("2011-09-11"))
    assert note.startswith("**⚠ Season unknown.**")
    assert "October and November" in note and "run low" in note
    # covered months: no unknown-season note
    full = pd.Series(pd.date_range("2010-01-01", "2011-09-10"))
    covered = season_comparison(full, pd.Timestamp("2011-06-13"), pd.Timestamp("2011-09-11"))
    assert covered["months_not_in_data"] == []
    assert "unknown" not in (season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-06-13"), days=90.0,
                                                      season=covered), pd.Timestamp("2011-09-11")) or "")


# --------------------------------------------------------------------------- the Online-Retail-like generator, several seeds
def generated_purchase_days(n_customers: int, seed: int) -> pd.DataFrame:
    """The planted kept purchases of :func:`generate_online_retail` as purchase days (no cancellation left)."""
    export = generate_online_retail(n_customers, seed=seed)
    kept = export.orders[export.orders["kept_value"] > 0]
    days = pd.DataFrame({"customer_id": kept["customer_id"].astype(str), "order_date": kept["invoice_date"].dt.normalize(),
                         "amount": kept["kept_value"].to_numpy(dtype=float)})
    return days.groupby(["customer_id", "order_date"], as_index=False)["amount"].sum()


@pytest.mark.parametrize("seed", [11, 5, 21])
def test_generated_exports_p_alive_deciles_hold_out_of_sample_and_at_risk_separates(seed):
    """Issue 16 "Done when" on Online-Retail-like exports of 3,000 accounts (the size the command line writes).
    Seed 11 failed before: the reported P(alive) came from isotonic maps cross-fitted on the holdout itself,
    whose end steps held a handful of customers, and its lowest decile had a mean P(alive) of 8.1 % while
    19.1 % bought. Now the check reports the export as made on the cut-off day (calibration learnt on the 90
    days before), with maps pooled in bins of at least 50 customers."""
    orders = generated_purchase_days(3000, seed)
    as_of = orders["order_date"].max() + pd.Timedelta(days=1)
    check = run_holdout_check(orders, as_of, SETTINGS)
    assert check.reported_from.startswith("the variant and calibration chosen on the 90 days before the cut-off")
    assert check.reported_choice is not check.choice
    # the calibration was learnt in summer and is judged in the autumn peak: the report says which way it errs
    assert check.reported_from.endswith("(season and trend), so the chances learnt there run low on it")
    deciles = check.deciles["p_alive"]
    assert len(deciles) == 10 and deciles["customers"].min() > 100
    assert (deciles["actual"] <= deciles["predicted"] + 0.05).all(), deciles
    stages = check.by_stage.set_index("lifecycle_stage")
    assert stages.loc["active", "bought_share"] - stages.loc["at_risk", "bought_share"] >= 0.10, stages


def test_calibration_pools_customers_so_that_a_small_end_step_cannot_map_the_oldest_to_zero():
    """Everyone buys at 15 % whatever the prediction, but the five lowest predictions did not buy: plain
    isotonic regression maps every prediction below theirs to 0 (an export's oldest one-time buyers lie
    there); pooled in bins of at least 50, the lowest step is the share of 50 customers."""
    rng = np.random.default_rng(3)
    predicted = np.sort(rng.random(2000)) * 0.3
    bought = rng.random(2000) < 0.15
    bought[:5] = False
    plain = ChanceCalibrator(max_bins=10**9, min_bin=1).fit(predicted, bought)
    pooled = ChanceCalibrator().fit(predicted, bought)
    assert plain.predict([0.0])[0] == 0.0
    assert pooled.predict([0.0])[0] == pytest.approx(bought[:100].mean(), abs=0.05) and pooled.predict([0.0])[0] > 0.05
    assert len(pooled.x_) <= 20 and pooled.to_dict()["min_bin"] == 50
    assert ChanceCalibrator.from_dict(pooled.to_dict()).get_params() == {"max_bins": 20, "min_bin": 50}
