"""Lifecycle states that mean what they say (issue 16): customers with order lines but no purchase,
customers first seen at the start of data that begin in the middle of a shop's life, and growth,
churn and cohort figures that start where their window is complete."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from segkit.core.config import load_config
from segkit.core.errors import ConfigError
from segkit.data.datasets import generate_shop, write_sample
from segkit.data.orders import first_non_purchase
from segkit.lifecycle import (
    BUYER_STAGES,
    LIVE_STAGES,
    STAGES,
    LifecycleSettings,
    LifecycleStager,
    cohort_matrix,
    cohort_table,
    complete_periods,
    customer_state,
    period_rates,
    purchase_history,
    snapshot_dates,
    stage_counts,
    stage_history,
)
from segkit.plots.lifecycle import plot_period_rates
from segkit.steps.lifecycle import build_lifecycle_artifacts, growth_note, history_start_statement, summarize
from segkit.steps.pipeline import open_run
from test_lifecycle import handmade_run  # a run folder with hand-made upstream artifacts


def orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": pd.array([r[0] for r in rows], dtype="string"),
                         "order_date": pd.to_datetime([r[1] for r in rows]),
                         "amount": [float(r[2]) for r in rows]})


# --------------------------------------------------------------------------- lines but no purchase
def lines(*rows: tuple[str, str, str, float, bool]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": pd.array([r[0] for r in rows], dtype="string"),
                         "order_id": pd.array([r[1] for r in rows], dtype="string"),
                         "order_date": pd.to_datetime([r[2] for r in rows]),
                         "amount": [float(r[3]) for r in rows],
                         "is_return": pd.array([r[4] for r in rows], dtype="boolean")})


#: b buys; r only cancelled (an order placed before the data); z's one order was worth 0; rb returned
#: first and bought later; p is in the customers table only.
RETURNS_SHOP = lines(
    ("b", "1", "2024-01-05", 40.0, False), ("b", "2", "2024-02-10", 25.0, False),
    ("r", "C9", "2024-02-01", -30.0, True),
    ("z", "3", "2024-01-20", 0.0, False),
    ("rb", "C8", "2024-01-10", -12.0, True), ("rb", "4", "2024-03-01", 18.0, False),
)


def test_first_non_purchase_lists_customers_whose_first_order_is_no_purchase():
    got = first_non_purchase(RETURNS_SHOP)
    assert got["customer_id"].tolist() == ["r", "rb", "z"]
    assert got["first_order_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-02-01", "2024-01-10", "2024-01-20"]
    assert got["first_purchase_date"].isna().tolist() == [True, False, True]


def test_customers_who_only_returned_or_bought_for_nothing_are_no_net_purchase_not_prospects(tmp_path):
    # the audit's customers table holds everyone with a line (r, z, rb) and the prospect p
    ctx = handmade_run(tmp_path, RETURNS_SHOP, "2024-04-01", ["b", "p", "r", "rb", "z"])
    result = build_lifecycle_artifacts(ctx)
    lifecycle = result.lifecycle.set_index("customer_id")
    assert lifecycle["lifecycle_stage"].to_dict() == {
        "b": "first_seen", "p": "prospect", "r": "no_net_purchase", "rb": "first_seen", "z": "no_net_purchase"}
    # no welcome series or first-order incentive for customers who ordered
    for action in lifecycle.loc[["r", "z"], "recommended_action"]:
        assert action.startswith("No welcome series or first-order incentive.")
    assert "Welcome series" in lifecycle.loc["p", "recommended_action"]
    assert "no_net_purchase" in STAGES and "no_net_purchase" not in LIVE_STAGES + BUYER_STAGES
    assert lifecycle.loc[["r", "z"], ["n_purchases", "clv_12m"]].fillna(0).to_numpy().sum() == 0
    # the snapshots count them from their first order until they buy (rb bought on 2024-03-01)
    snaps = result.snapshots[result.snapshots["lifecycle_stage"] == "no_net_purchase"]
    assert dict(zip(snaps["period"], snaps["customers"])) == {"2024-01": 2, "2024-02": 3, "2024-03": 2}
    summary = summarize(result)
    assert "(2 buyers, 1 prospects, 2 with order lines but no purchase)" in summary["analysed"]
    assert any(a.startswith("Stage no_net_purchase (2): No welcome series") for a in summary["actions"])
    plt.close("all")


def test_customer_state_adds_customers_with_lines_but_no_purchase_before_as_of_only():
    history = purchase_history(orders(("b", "2024-01-05", 40), ("rb", "2024-03-01", 18)))
    state = customer_state(history, "2024-02-15", non_purchase=first_non_purchase(RETURNS_SHOP))
    assert state.index.tolist() == ["b", "r", "rb", "z"]
    assert state["has_orders"].tolist() == [True, True, True, True]
    assert state["n_purchases"].tolist() == [1, 0, 0, 0]
    early = customer_state(history, "2024-01-15", non_purchase=first_non_purchase(RETURNS_SHOP))
    assert early.index.tolist() == ["b", "rb"]  # r and z had no line yet; rb's return is on 2024-01-10


# --------------------------------------------------------------------------- first seen
def test_first_purchases_within_one_churn_window_of_the_data_start_are_first_seen_not_new():
    history = purchase_history(orders(("a", "2024-01-05", 10), ("b", "2024-06-10", 10), ("c", "2024-01-02", 10),
                                      ("c", "2024-02-01", 10)))
    state = customer_state(history, "2024-06-20", data_start=pd.Timestamp("2024-01-01"))
    assert state["first_purchase_days_into_data"].tolist() == [4.0, 161.0, 1.0]
    assert customer_state(history, "2024-06-20")["first_purchase_days_into_data"].isna().all()

    stager = LifecycleStager(churn_window_days=100, new_window_days=30, base_interval_days=30, min_gaps=1,
                             p_alive_threshold=0.0).fit(history, "2024-06-20", data_start=pd.Timestamp("2024-01-01"))
    assert stager.data_start_ == pd.Timestamp("2024-01-01")
    assert stager.first_seen_until_ == pd.Timestamp("2024-04-10")
    # on 2024-01-20 a's first purchase is recent, but the data started 19 days earlier: a may be old
    assert stager.predict(history, "2024-01-20")["lifecycle_stage"].tolist() == ["first_seen", "first_seen"]
    # b's first purchase comes 161 days into the data, past the churn window: new
    assert stager.predict(history, "2024-06-20").loc["b", "lifecycle_stage"] == "new"
    assert "first_seen" in LIVE_STAGES and "first_seen" in BUYER_STAGES

    opened = LifecycleStager(churn_window_days=100, new_window_days=30, base_interval_days=30, min_gaps=1,
                             p_alive_threshold=0.0, data_starts_with_shop=True).fit(history, "2024-06-20")
    assert opened.data_start_ is None and opened.first_seen_until_ is None
    assert opened.predict(history, "2024-01-20")["lifecycle_stage"].tolist() == ["new", "new"]

    # the snapshots apply the same rule at every date
    dates = snapshot_dates(pd.Timestamp("2024-01-02"), "2024-07-01")
    codes = stage_history(stager, history, dates)
    assert STAGES[codes.loc["a", "2024-01"]] == "first_seen" and STAGES[codes.loc["b", "2024-06"]] == "new"
    assert stage_counts(codes, dates).query("lifecycle_stage == 'new'")["customers"].sum() == 1


def test_data_starts_with_shop_is_a_documented_boolean_setting():
    base = load_config()["lifecycle"]
    assert base["data_starts_with_shop"] is False
    assert LifecycleSettings.from_config({**base, "data_starts_with_shop": True}).stager().data_starts_with_shop
    with pytest.raises(ConfigError, match="data_starts_with_shop = 'no' must be true or false"):
        LifecycleSettings.from_config({**base, "data_starts_with_shop": "no"})
    assert "data_starts_with_shop" in (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- complete windows
@pytest.fixture()
def midlife():
    """Customers who bought before the data (2024-01-01) show up in its first weeks; a churn window of 60 days."""
    rows = []
    for i in range(30):  # regulars: every 20 days from a day in the first three weeks
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=i % 20)
        rows += [(f"r{i:02d}", str((start + pd.Timedelta(days=20 * k)).date()), 10) for k in range(12 - i % 6)]
    for i in range(10):  # newcomers from May on
        rows.append((f"n{i}", str((pd.Timestamp("2024-05-01") + pd.Timedelta(days=3 * i)).date()), 10))
    history = purchase_history(orders(*rows))
    stager = LifecycleStager(churn_window_days=60, new_window_days=20, base_interval_days=20,
                             p_alive_threshold=0.0).fit(history, "2024-09-01")
    return history, stager


def test_rates_and_cohorts_start_where_the_churn_window_is_complete(midlife):
    history, stager = midlife
    assert stager.first_seen_until_ == pd.Timestamp("2024-03-01")
    dates = snapshot_dates(history["purchase_date"].min(), "2024-09-01")
    rates = period_rates(stage_history(stager, history, dates), history, dates, stager.first_seen_until_)
    # February starts on 2024-02-01, when nobody could have been silent for 60 days yet: churn reads 0 %
    february = rates.set_index("period").loc["2024-02"]
    assert not february["window_complete"] and february["churn_rate"] == 0
    assert rates.set_index("period")["window_complete"].to_dict() == {
        "2024-02": False, "2024-03": True, "2024-04": True, "2024-05": True, "2024-06": True, "2024-07": True,
        "2024-08": True}
    assert complete_periods(rates)["period"].iloc[0] == "2024-03"
    ax = plot_period_rates(rates)
    first_plotted = pd.Timestamp(ax.get_lines()[0].get_xdata()[0])
    assert first_plotted == pd.Timestamp("2024-04-01")  # the end of March, the first complete period
    plt.close("all")
    # without the rule every period counts (the data start with the shop)
    assert period_rates(stage_history(stager, history, dates), history, dates)["window_complete"].all()

    cohorts = cohort_table(history, "2024-09-01", stager.first_seen_until_)
    flagged = cohorts.groupby("cohort")["first_seen"].first().to_dict()
    assert flagged == {"2024-01": True, "2024-05": False}
    assert cohort_matrix(cohorts).index.tolist() == ["2024-05"]
    assert cohort_matrix(cohorts, include_first_seen=True).index.tolist() == ["2024-01", "2024-05"]
    assert cohort_table(history, "2024-09-01", pd.Timestamp("2024-05-02"))["first_seen"].all()  # May starts before
    assert not cohort_table(history, "2024-09-01")["first_seen"].any()


@pytest.fixture(scope="module")
def shop_upstream(tmp_path_factory):
    """Audit and RFM artifacts of a generated shop (its data start on its first order day)."""
    from segkit.steps.audit import build_audit_artifacts
    from segkit.steps.rfm import build_rfm_artifacts

    root = tmp_path_factory.mktemp("midlife")
    paths = write_sample(root / "data", generate_shop(500, seed=7))
    config = root / "config.yml"
    config.write_text("data:\n" + "".join(f"  {k}: {v}\n" for k, v in paths.items()))
    build_audit_artifacts(open_run("01_data_audit", root / "upstream", config))
    build_rfm_artifacts(open_run("02_rfm", root / "upstream", config))
    return root, config


def lifecycle_of(shop_upstream, name: str, as_of: str | None = None, **overrides):
    root, config = shop_upstream
    shutil.copytree(root / "upstream", root / name)
    return build_lifecycle_artifacts(open_run("04_lifecycle", root / name, config, as_of,
                                              overrides={"lifecycle": overrides}))


def test_the_summary_measures_growth_only_from_complete_windows_and_says_why(shop_upstream):
    result = lifecycle_of(shop_upstream, "midlife")
    until = result.first_seen_until
    assert until == result.data_start + pd.Timedelta(days=result.stage_thresholds.churn_window_days)
    incomplete = result.rates[~result.rates["window_complete"]]
    period_start = result.rates["snapshot_date"] - pd.DateOffset(months=1)  # monthly, none partial among them
    assert len(incomplete) > 0 and (period_start[~result.rates["window_complete"]] < until).all()
    assert (period_start[result.rates["window_complete"] & ~result.rates["partial"]] >= until).all()
    summary = summarize(result)
    growth = next(f for f in summary["findings"] if "The live base went from" in f)
    start_period = re.search(r"The live base went from [\d,]+ buyers at the start of (\d{4}-\d{2})", growth).group(1)
    assert pd.Period(start_period, "M").start_time >= until  # never from the incomplete first window
    assert "Earlier months are left out" not in growth  # the last 12 months are all complete
    # nine months of data: the growth figure covers the complete months only, and says why
    short = lifecycle_of(shop_upstream, "short", as_of="2023-10-01")
    growth = next(f for f in summarize(short)["findings"] if "The live base went from" in f)
    start_period = re.search(r"The live base went from [\d,]+ buyers at the start of (\d{4}-\d{2})", growth).group(1)
    assert pd.Period(start_period, "M").start_time >= short.first_seen_until
    assert f"Earlier months are left out: history before the data's first day ({short.data_start.date()})" in growth
    statement = history_start_statement(result)
    assert statement.startswith(f"History before the data is unknown: the data start on {result.data_start.date()}")
    assert f"the {len(incomplete)} months before {until.date()} are left out" in statement
    assert "**History before the data is unknown**" in growth_note(result)
    cohorts = result.cohorts.groupby("cohort")["first_seen"].first()
    assert cohorts.any() and not cohorts.all()

    opened = lifecycle_of(shop_upstream, "opened", data_starts_with_shop=True)
    assert opened.first_seen_until is None and opened.rates["window_complete"].all()
    assert history_start_statement(opened) is None and not opened.cohorts["first_seen"].any()
    assert (opened.lifecycle["lifecycle_stage"] == "first_seen").sum() == 0
