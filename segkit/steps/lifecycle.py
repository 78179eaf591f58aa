"""Step 04 (`notebooks/04_lifecycle.ipynb`): the producer :func:`build_lifecycle_artifacts` and
its :class:`LifecycleResult`, the notebook's display tables and explorer views, and the texts of
its summary (:func:`summarize`).

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_lifecycle_artifacts(open_run("04_lifecycle"))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from segkit.clv import DAYS_PER_MONTH
from segkit.core.dates import day_after
from segkit.core.errors import DataError
from segkit.core.escaping import escape_markdown
from segkit.core.labels import and_list
from segkit.lifecycle import (
    BUYER_STAGES,
    EXPORT_COLUMNS,
    LIVE_STAGES,
    NO_PURCHASE_STAGES,
    PHASES,
    PROSPECT_STAGES,
    SNAPSHOT_FREQS,
    STAGES,
    SOURCE,
    VIEW_NEEDS,
    VIEW_VALUES,
    HistoryCounts,
    HistorySpan,
    HistoryTables,
    HoldoutCheck,
    LifecycleCounts,
    LifecycleSettings,
    LifecycleTails,
    LifecycleView,
    PurchaseDaySpan,
    ViewPlan,
    StageDistributions,
    StageThresholds,
    complete_periods,
    engagement_dates,
    chance_state,
    fit_clv_models,
    input_durations,
    input_summary,
    inputs_of_history,
    lifecycle_rows,
    lifecycle_view,
    one_time_curve,
    purchase_history,
    require_purchases_before,
    spend_scaled,
    snapshot_dates,
    stage_table,
    threshold_choices,
    threshold_stage_counts,
    view_values,
)
from segkit.data.distribution import ValueDistribution
from segkit.steps.lifecycle_holdout import holdout_check_for, sample_note, sample_record
from segkit.steps.sources import first_non_purchase_for, kept_value_for, purchase_days_for
from segkit.data.bounded import merged_parts
from segkit.steps.spark_lifecycle import lifecycle_on_spark, purchase_day_span_on_spark
from segkit.steps.spark_scoring import run_reader, scores_on_spark, write_run_segments

if TYPE_CHECKING:  # the `spark` extra
    from pyspark.sql import DataFrame as SparkFrame

    from segkit.lifecycle import CLVModels, LifecycleStager

__all__ = ["clv_parameters", "export_columns",
    "clv_by_stage", "mask_small_cells", "rate_table", "growth_note", "model_status", "calibration_note",
    "holdout_model_note", "season_note", "stage_holdout_note",
    "build_lifecycle_artifacts", "summarize"]


def stage_sizes_for_thresholds(
    state: pd.DataFrame, thresholds: StageThresholds, reference: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stage sizes if the thresholds were ``thresholds`` (the logic of the threshold widget:
    :func:`segkit.lifecycle.threshold_stage_counts` of one choice, :func:`threshold_sizes`).

    Parameters
    ----------
    state : DataFrame
        Current customer state with ``p_alive`` (as returned by :meth:`LifecycleStager.predict`); the
        chances' rules apply when it holds a P(alive).
    thresholds : StageThresholds
    reference : DataFrame, optional
        Current stage sizes (:func:`segkit.lifecycle.stage_sizes`); adds ``change`` (customers moved in or out).

    Returns
    -------
    DataFrame
        ``lifecycle_stage, customers, share`` [, ``change``].

    Examples
    --------
    >>> state = pd.DataFrame({"n_purchases": [2, 2], "recency_days": [100.0, 200.0],
    ...     "tenure_days": [300.0, 400.0], "gap_before_last_days": [30.0, 30.0],
    ...     "own_interval_days": [30.0, 30.0], "monetary_total": [50.0, 50.0], "engaged": False,
    ...     "p_alive": np.nan})
    >>> th = StageThresholds(churn_window_days=150, new_window_days=30, base_interval_days=30)
    >>> stage_sizes_for_thresholds(state, th).set_index("lifecycle_stage").loc[["at_risk", "lapsed"], "customers"].tolist()
    [1, 1]
    >>> th = replace(th, churn_window_days=250)
    >>> stage_sizes_for_thresholds(state, th).set_index("lifecycle_stage").loc[["at_risk", "lapsed"], "customers"].tolist()
    [2, 0]
    """
    chances = "p_alive" in state.columns and bool(state["p_alive"].notna().any())
    if "p_purchase_90d" in state.columns and not state["p_purchase_90d"].notna().any():
        state = state.drop(columns="p_purchase_90d")  # no chance known: the overdue rule
    counts = threshold_stage_counts(state, [thresholds], chances=chances)
    return threshold_sizes({"choice": thresholds}, counts, reference)["choice"]


def threshold_sizes(choices: dict[str, StageThresholds], counts: np.ndarray,
                    reference: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The threshold widget's tables: for each choice label, :func:`segkit.lifecycle.stage_table` of its row of
    ``counts`` (:func:`segkit.lifecycle.threshold_stage_counts`: the whole base's counts, or the parts' added),
    with ``change`` against ``reference`` (the current stage sizes) when given.

    Examples
    --------
    >>> th = StageThresholds(churn_window_days=150, new_window_days=30, base_interval_days=30)
    >>> current = stage_table(np.eye(len(STAGES), dtype="int64")[STAGES.index("lapsed")])
    >>> table = threshold_sizes({"wider": th}, np.eye(len(STAGES), dtype="int64")[[STAGES.index("at_risk")]], current)
    >>> table["wider"].set_index("lifecycle_stage").loc[["at_risk", "lapsed"], "change"].tolist()
    [1, -1]
    """
    tables = {}
    for label, row in zip(choices, counts):
        sizes = stage_table(row)
        if reference is not None:
            sizes["change"] = sizes["customers"] - reference.set_index("lifecycle_stage")["customers"].reindex(
                sizes["lifecycle_stage"]).fillna(0).to_numpy().astype("int64")
        tables[label] = sizes
    return tables


def clv_parameters(result: "LifecycleResult") -> pd.DataFrame:
    """Fitted BG/NBD and Gamma-Gamma parameters: estimate, standard error, relative standard error,
    whether the data pin it down (``weakly_identified``, see :func:`segkit.clv.weak_parameters`)
    and what it means."""
    model = result.clv_model or {}
    unit = (model.get("bgnbd") or {}).get("time_unit", "weeks")
    meaning = {
        "r": "shape of the purchase-rate distribution (heterogeneity: small = very uneven)",
        "alpha": f"scale of the purchase-rate distribution ({unit}); mean rate = r / alpha per {unit.rstrip('s')}",
        "a": "dropout distribution shape (with b: mean dropout chance per purchase = a / (a + b))",
        "b": "dropout distribution shape",
        "p": "shape of the order-value distribution of a customer",
        "q": "shape of the spread of mean order values across customers",
        "v": f"scale of the spread of mean order values ({result.money_unit}; the paper's gamma)",
    }
    rows = []
    for name, block in (("BG/NBD", model.get("bgnbd")), ("Gamma-Gamma", model.get("gamma_gamma"))):
        if not block:
            continue
        errors = block.get("standard_errors", {})
        weak = set(block.get("weak_parameters", []))
        for key in (("r", "alpha", "a", "b") if name == "BG/NBD" else ("p", "q", "v")):
            se = errors.get(key)
            se = float("nan") if se is None else float(se)
            rows.append((name, key, block[key], se, se / abs(block[key]) if block[key] else float("nan"),
                         key in weak, meaning[key]))
    return pd.DataFrame(rows, columns=["model", "parameter", "estimate", "standard_error", "relative_se",
                                       "weakly_identified", "meaning"])


def export_columns() -> pd.DataFrame:
    """What each column 04_lifecycle adds to ``customer_segments.csv`` holds (:data:`EXPORT_COLUMNS`).

    Examples
    --------
    >>> export_columns()["column"].tolist()
    ['lifecycle_stage', 'p_alive', 'p_purchase_90d', 'expected_purchases_90d', 'clv_12m']
    """
    return pd.DataFrame({"column": list(EXPORT_COLUMNS), "meaning": list(EXPORT_COLUMNS.values())})


def clv_by_stage(lifecycle: LifecycleView | pd.DataFrame, column: str = "clv_12m") -> pd.DataFrame:
    """Customers, mean P(alive), expected 90-day purchases and predicted CLV per buyer stage
    (:meth:`segkit.lifecycle.LifecycleView.clv_by_stage` of the view, or of the per-customer frame's view).

    Examples
    --------
    >>> lc = pd.DataFrame({"lifecycle_stage": ["new", "new", "lapsed"], "p_alive": [1.0, 0.8, 0.2],
    ...                    "expected_purchases_90d": [1.0, 0.5, 0.1], "clv_12m": [30.0, 10.0, 10.0]})
    >>> row = clv_by_stage(lc).set_index("lifecycle_stage").loc["new"]
    >>> int(row["customers"]), float(row["clv_total"]), float(row["clv_share"])
    (2, 40.0, 0.8)
    """
    view = lifecycle if isinstance(lifecycle, LifecycleView) else lifecycle_view(lifecycle, column)
    return view.clv_by_stage()


def mask_small_cells(table: pd.DataFrame, min_cell_size: int) -> pd.DataFrame:
    """A count table for display: cells under ``min_cell_size`` customers show ``"<min"``, zeros blank.

    Examples
    --------
    >>> mask_small_cells(pd.DataFrame({"x": [3, 1250, 0]}), 10)["x"].tolist()
    ['<10', '1,250', '']
    """
    def cell(v: float) -> str:
        if pd.isna(v) or v == 0:
            return ""
        return f"<{min_cell_size}" if v < min_cell_size else f"{v:,.0f}"

    return table.apply(lambda col: col.map(cell))


def rate_table(rates: pd.DataFrame, freq: str = "M", last: int = 12) -> pd.DataFrame:
    """The last ``last`` periods of :func:`period_rates` for a report, columns named with their unit.

    Raw numbers (rates as shares); the rates are per snapshot period, which the column names
    say (``churn_rate_per_month``).

    Examples
    --------
    >>> r = pd.DataFrame({"period": ["2024-01"], "live_start": [10], "churned": [1], "churn_rate": [0.1],
    ...     "lapsed_start": [4], "reactivated": [1], "reactivation_rate": [0.25], "buyers_start": [14],
    ...     "repeat_buyers": [3], "repeat_purchase_rate": [3 / 14], "new_customers": [2], "live_end": [11],
    ...     "partial": [False]})
    >>> list(rate_table(r).columns)[:3]
    ['live_at_start', 'lapsed_during', 'churn_rate_per_month']
    """
    unit = SNAPSHOT_FREQS[freq]
    names = {"live_start": "live_at_start", "churned": "lapsed_during", "churn_rate": f"churn_rate_per_{unit}",
             "lapsed_start": "lapsed_at_start", "reactivated": "came_back",
             "reactivation_rate": f"reactivation_rate_per_{unit}", "buyers_start": "buyers_at_start",
             "repeat_buyers": "bought_again", "repeat_purchase_rate": f"repeat_purchase_rate_per_{unit}",
             "new_customers": "new_customers", "live_end": "live_at_end", "partial": "partial",
             "window_complete": "churn_window_complete"}
    names = {k: v for k, v in names.items() if k in rates.columns}
    return rates.tail(last).set_index("period")[list(names)].rename(columns=names)


def recent_rates(rates: pd.DataFrame, periods: int = 3) -> dict[str, Any] | None:
    """Churn, reactivation and repeat-purchase rate per period, pooled over the last complete periods.

    Pooled = events over the customers at risk summed over the periods (so larger periods weigh
    more): the same definition as each period's rate, averaged. A complete period is not partial
    and, when ``rates`` says so (``window_complete``), its churn window lies inside the data.
    None without complete periods.

    Examples
    --------
    >>> r = pd.DataFrame({"period": ["a", "b", "c"], "partial": [False, False, True], "live_start": [100, 300, 50],
    ...     "churned": [10, 20, 40], "lapsed_start": [10, 10, 10], "reactivated": [1, 1, 1],
    ...     "buyers_start": [200, 400, 100], "repeat_buyers": [20, 40, 10]})
    >>> got = recent_rates(r)
    >>> got["churn_rate"], got["first"], got["last"], got["periods"]
    (0.075, 'a', 'b', 2)
    """
    full = complete_periods(rates).tail(periods)
    if full.empty:
        return None

    def pooled(num: str, den: str) -> float:
        total = float(full[den].sum())
        return float(full[num].sum()) / total if total > 0 else float("nan")

    return {"churn_rate": pooled("churned", "live_start"), "reactivation_rate": pooled("reactivated", "lapsed_start"),
            "repeat_purchase_rate": pooled("repeat_buyers", "buyers_start"), "first": str(full["period"].iloc[0]),
            "last": str(full["period"].iloc[-1]), "periods": int(len(full))}


def history_start_statement(result: "LifecycleResult") -> str | None:
    """Why the first churn window of the data is left out of the growth, churn and cohort figures.

    None when nothing is left out (``lifecycle.data_starts_with_shop: true``, or no data start).
    The data of most shops start in the middle of their life: customers who bought only before
    the first day are unseen until they buy again, so during the first churn window nobody can
    be seen to lapse (churn would read 0 %), the live base grows from nothing and every first
    purchase looks new. Plain text (no Markdown), shared by the summary and :func:`growth_note`.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> r = SimpleNamespace(data_start=pd.Timestamp("2010-12-01"), first_seen_until=pd.Timestamp("2011-03-01"),
    ...     stage_thresholds=StageThresholds(churn_window_days=90, new_window_days=30, base_interval_days=30),
    ...     settings=LifecycleSettings(), rates=pd.DataFrame({"window_complete": [False, False, True]}),
    ...     cohorts=pd.DataFrame({"cohort": ["2010-12", "2011-01"], "first_seen": [True, False]}),
    ...     stage_sizes=pd.DataFrame({"lifecycle_stage": ["first_seen"], "customers": [4]}))
    >>> print(history_start_statement(r))  # doctest: +NORMALIZE_WHITESPACE
    History before the data is unknown: the data start on 2010-12-01, and customers who bought only before
    that day are unseen until they buy again. For one churn window (90 days, until 2011-03-01) nobody can
    be seen to lapse and every first purchase looks new, so the 2 months before 2011-03-01 are left out of
    the churn, reactivation and growth figures (churn there would read 0 %), the 1 cohort starting before
    it is not an acquisition cohort and is left out of the cohort figures, and 4 customers whose first
    purchase in the data is recent but in that window are first_seen, not new. Set
    lifecycle.data_starts_with_shop: true if the shop opened when the data start.
    """
    until, start = result.first_seen_until, result.data_start
    if until is None or start is None:
        return None
    unit = SNAPSHOT_FREQS[result.settings.snapshot_freq]
    rates, cohorts = result.rates, result.cohorts
    periods = int((~rates["window_complete"].to_numpy(dtype=bool)).sum()) if "window_complete" in rates else 0
    cohort_count = (int(cohorts.loc[cohorts["first_seen"].to_numpy(dtype=bool), "cohort"].nunique())
                    if "first_seen" in cohorts else 0)
    sizes = result.stage_sizes.set_index("lifecycle_stage")["customers"]
    first_seen = int(sizes.get("first_seen", 0))
    parts = []
    if periods:
        parts.append(f"the {periods} {unit}{'s' if periods > 1 else ''} before {until.date()} are left out of the "
                     "churn, reactivation and growth figures (churn there would read 0 %)")
    if cohort_count:
        parts.append(f"the {cohort_count} cohort{'s' if cohort_count > 1 else ''} starting before it "
                     f"{'are' if cohort_count > 1 else 'is'} not {'' if cohort_count > 1 else 'an '}acquisition "
                     f"cohort{'s' if cohort_count > 1 else ''} and {'are' if cohort_count > 1 else 'is'} left out "
                     "of the cohort figures")
    if first_seen:
        parts.append(f"{first_seen:,} customer{'s' if first_seen > 1 else ''} whose first purchase in the data is "
                     "recent but in that window " + ("are" if first_seen > 1 else "is") + " first_seen, not new")
    if not parts:
        return None
    listed = and_list(parts, serial_comma=True)
    return (f"History before the data is unknown: the data start on {start.date()}, and customers who bought only "
            f"before that day are unseen until they buy again. For one churn window "
            f"({result.stage_thresholds.churn_window_days:,.0f} days, until {until.date()}) nobody can be seen to "
            f"lapse and every first purchase looks new, so {listed}. Set lifecycle.data_starts_with_shop: true if "
            "the shop opened when the data start.")


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first} to {last}"


def _money(value: float, currency: str = "", decimals: int = 0) -> str:
    """``"EUR 1,234"`` (or ``"1,234"`` without a currency).

    Examples
    --------
    >>> _money(1234.5, "EUR"), _money(12.345, "", 2)
    ('EUR 1,234', '12.35')
    """
    text = f"{value:,.{decimals}f}"
    return f"{currency} {text}" if currency else text


def growth_note(result: "LifecycleResult") -> str:
    """Markdown for the growth section: the rate definitions and how prospects are counted."""
    unit = SNAPSHOT_FREQS[result.settings.snapshot_freq]
    window = result.stage_thresholds.churn_window_days
    n, with_signup = result.prospects_with_signup
    if n == 0:
        prospects = "There are no prospects (customers without an order) in the data."
    elif with_signup == n:
        prospects = (f"The {n:,} prospects (customers without an order) are counted from their signup date on "
                     "(`snapshots.parquet` has them); the plot shows the buyer stages only.")
    elif with_signup == 0:
        prospects = (f"The customers table has no signup date for the {n:,} prospects, so they count as prospects "
                     "in every snapshot from the start; the plot leaves them out and shows the buyer stages "
                     "(`snapshots.parquet` has them).")
    else:
        prospects = (f"{with_signup:,} of the {n:,} prospects have a signup date and are counted from it; the "
                     f"other {n - with_signup:,} count as prospects in every snapshot from the start. The plot "
                     "shows the buyer stages only (`snapshots.parquet` has the prospects).")
    limit = measurability_statement(result)
    start = history_start_statement(result)
    return ((f"**{limit.split(': ', 1)[0]}**: {limit.split(': ', 1)[1]}\n\n" if limit else "") +
            (f"**{start.split(': ', 1)[0]}**: {escape_markdown(start.split(': ', 1)[1])}\n\n" if start else "") +
            f"Customers per buyer stage at every snapshot, then the rates **per {unit}**: the **churn rate per "
            f"{unit}** is the share of the live buyers at the start of a {unit} who became lapsed during it; a "
            f"buyer becomes lapsed once {window:,.0f} days (the churn window) pass without a purchase, so churn is "
            f"counted that long after the last purchase. The **reactivation rate per {unit}** is the share of the "
            f"lapsed customers at the start who bought during the {unit}, the **repeat-purchase rate per {unit}** "
            f"the share of all buyers at the start who did. {prospects} Thresholds are those fitted at `as_of`, "
            "held fixed over the history, so changes reflect behaviour and not moving definitions. A partial "
            f"last {unit} is left out of the rate plot.")


def measurability_statement(result: "LifecycleResult") -> str | None:
    """What the data is too short to measure, or None: all purchases on one day, or in one snapshot period.

    Transitions need two snapshots, rates a complete period, cohort retention a month after
    acquisition; on such data the tables and plots of those sections are empty and the summary
    says why instead of showing nothing (tested through :func:`build_lifecycle_artifacts`).
    """
    counts = result.view.counts
    if counts.first_purchase is None:
        return None
    first, last = pd.Timestamp(counts.first_purchase), pd.Timestamp(counts.last_purchase)
    unit = SNAPSHOT_FREQS[result.settings.snapshot_freq]
    if first.normalize() == last.normalize():
        return (f"All purchases fall on one day ({first.date()}): no gaps between purchases, no stage transitions "
                f"between snapshots, no churn or reactivation rate and no cohort month after acquisition can be "
                "measured, so those tables and plots are empty; every buyer is staged from that single day.")
    if result.snapshots["period"].nunique() < 2:
        return (f"All purchases fall in one {unit} ({first.date()} to {last.date()}): no stage transitions between "
                f"snapshots, no churn or reactivation rate per {unit} and no cohort month after acquisition can be "
                "measured yet, so those tables and plots are empty.")
    return None


def _curve_value(curve: pd.DataFrame, column: str, days: float) -> float:
    row = (curve["age_days"] - days).abs().idxmin()
    return float(curve.loc[row, column])


def gamma_gamma_record(models: "CLVModels") -> dict[str, Any] | None:
    """``clv_model.json``'s ``gamma_gamma`` block: the model's ``to_dict``, with ``repeat_buyers`` (those its
    ``n_customers`` were a seeded sample of, ``lifecycle.order_value_sample``) only when it was fitted on a
    sample, so that runs fitted on every repeat buyer keep their bytes; None when not fitted."""
    if models.gamma_gamma is None:
        return None
    block = models.gamma_gamma.to_dict()
    if models.order_value_sampled:
        block["repeat_buyers"] = int(models.order_value_buyers)
    return block


def order_value_note(gamma_gamma: dict[str, Any] | None) -> str:
    """Markdown sentence: Gamma-Gamma was fitted on a seeded sample of the repeat buyers (empty when on every one).

    Examples
    --------
    >>> order_value_note({"n_customers": 1_000_000, "repeat_buyers": 40_000_000})
    'Gamma-Gamma (expected order value) was fitted on a seeded sample of 1,000,000 of the 40,000,000 repeat buyers (`lifecycle.order_value_sample`); every buyer is scored with it.'
    >>> order_value_note({"n_customers": 946})
    ''
    """
    if not gamma_gamma or "repeat_buyers" not in gamma_gamma:
        return ""
    return (f"Gamma-Gamma (expected order value) was fitted on a seeded sample of {gamma_gamma['n_customers']:,} "
            f"of the {gamma_gamma['repeat_buyers']:,} repeat buyers (`lifecycle.order_value_sample`); every buyer is "
            "scored with it.")


def model_status(result: "LifecycleResult") -> str:
    """Markdown: what was fitted (or why not and what stays empty), one-time buyers, identification."""
    model = result.clv_model
    if model is None:
        reasons = " ".join(w for w in result.warnings if w.startswith("BG/NBD"))
        return ("**The BG/NBD model could not be fitted**, so P(alive), expected purchases and CLV are empty "
                f"(NaN) in every table and export, and the stage rules run without the P(alive) rule. {escape_markdown(reasons)}")
    bg = model["bgnbd"]
    text = (f"BG/NBD fitted by maximum likelihood on {bg['n_customers']:,} buyers ({bg['n_repeat_buyers']:,} repeat "
            f"buyers), time in {bg['time_unit']}: log-likelihood {bg['log_likelihood']:,.1f}; a customer drops out "
            f"after a repeat purchase with probability {bg['dropout_mean']:.1%} on average.")
    one_timers = result.view.counts.one_time_buyers
    curve = result.one_time_curve
    if curve is not None and model.get("one_time_buyers"):
        ot = model["one_time_buyers"]
        ages = [d for d in (30, 90, 180, 365) if d <= curve["age_days"].max()]
        at = ", ".join(f"{_curve_value(curve, 'p_alive', d):.0%} at {d} days" for d in ages)
        text += (f"\n\n**One-time buyers.** BG/NBD would give all {one_timers:,} of them P(alive) = 1: in the model a "
                 "customer can only drop out right after a repeat purchase. That is an artefact, not a prediction, so "
                 "their `p_alive` is read from the data instead: the share of one-time buyers of the same age (days "
                 f"since the first purchase) who went on to buy again — {at} (Kaplan–Meier of the days from the first "
                 f"to the second purchase over {ot['n_customers']:,} buyers; {ot['never_share']:.0%} never bought a "
                 f"second time within the longest gap seen, {ot['follow_up_days']:,.0f} days). Their expected "
                 "purchases and CLV use the data's chance of a second purchase within the horizon in the same way.")
    elif one_timers:
        text += (f"\n\n**One-time buyers.** The one-time buyer model could not be fitted, so the P(alive) of the "
                 f"{one_timers:,} one-time buyers is left empty (BG/NBD's 1 is an artefact of the model).")
    weak = [w for w in result.warnings if "weakly identified" in w]
    if weak:
        text += "\n\n**⚠ Weak identification.** " + " ".join(weak)
    gg = model.get("gamma_gamma")
    if gg is None:
        reasons = " ".join(w for w in result.warnings if w.startswith("Gamma-Gamma"))
        return text + f"\n\n**Gamma-Gamma could not be fitted**: expected order value and CLV are empty. {escape_markdown(reasons)}"
    corr = gg["frequency_monetary_corr"]
    check = ("small, as the model assumes" if abs(corr) < 0.3 else
             "not small: the model's independence assumption is doubtful, treat CLV as rough")
    fitted_on = (f"a seeded sample of {gg['n_customers']:,} of the {gg['repeat_buyers']:,} repeat buyers "
                 "(`lifecycle.order_value_sample`; every buyer is scored with it)" if "repeat_buyers" in gg
                 else f"{gg['n_customers']:,} repeat buyers")
    return text + (f"\n\nGamma-Gamma fitted on {fitted_on}: mean order value of the population "
                   f"{_money(gg['population_mean_order_value'], escape_markdown(result.currency), 2)}; correlation of purchase frequency "
                   f"and mean order value {corr:.2f} ({check}).")


def calibration_note(result: "LifecycleResult") -> str:
    """Markdown: how well P(alive) at the cut-off ranked and predicted who bought in the holdout."""
    check = result.holdout_check
    if check.calibration is None:
        return "The P(alive) calibration check is not available: see the warnings at the top."
    errors = check.errors
    source = f" As exported means {escape_markdown(check.reported_from)}." if check.reported_from else ""
    return (f"Customers ranked by their P(alive) on {check.cutoff.date()} (models fitted on the data before), in ten "
            f"groups of equal size: the predicted chance of at least one purchase in the {check.days:.0f} holdout days "
            "(as exported) against the share who really bought. P(alive) itself is an upper bound of that chance — a customer "
            "still alive but slow may not buy in a few months. Mean gap between predicted and actual share "
            f"(customers weighted): **{100 * errors['exported']:.1f} points** as exported; "
            f"{100 * errors['bgnbd']:.1f} points with BG/NBD alone (every one-time buyer at P(alive) = 1).{source} "
            "The figure below the table shows both predictions, each by its own deciles, against the share who bought."
            + (f" {sample_note(check)}" if check.sampled else ""))


PREDICTION_NAMES = {"p_alive": "P(alive)", "p_purchase_90d": "the 90-day purchase chance (p_purchase_90d)",
                    "expected_purchases_90d": "expected purchases (expected_purchases_90d)"}
VARIANT_NAMES = {"exported": "as exported", "bgnbd": "plain BG/NBD", "one_time": "BG/NBD + one-time buyer model",
                 "baseline: past rate": "baseline: past purchase rate", "recency": "baseline: recency",
                 "frequency": "baseline: frequency"}


def holdout_model_note(check: HoldoutCheck) -> str:
    """Markdown: does each prediction beat the plain baselines on the holdout, and which variant is exported.

    For P(alive), the purchase chance and expected purchases (as exported): the AUC of "bought in
    the holdout" against the best baseline (recency, frequency, past purchase rate), said plainly
    when the model does not beat it, and the calibration miss; then the variant chosen for the
    export and why.

    Examples
    --------
    >>> ev = pd.DataFrame({"prediction": ["p_purchase_90d", "baseline"], "variant": ["exported", "recency"],
    ...                    "auc": [0.70, 0.74], "calibration_error": [0.02, np.nan]})
    >>> print(holdout_model_note(HoldoutCheck(evaluation=ev, days=90.0)))  # doctest: +NORMALIZE_WHITESPACE
    - **the 90-day purchase chance (p_purchase_90d) does not beat baseline: recency** at ranking who bought in the 90-day holdout: AUC 0.700 against 0.740; calibration miss 2.0 points per decile.
    """
    table = check.evaluation
    if table is None or table.empty:
        return "The holdout comparison with baselines is not available: see the warnings at the top."
    baselines = table[table["variant"].isin(["recency", "frequency", "baseline: past rate"])].dropna(subset=["auc"])
    best = baselines.loc[baselines["auc"].idxmax()] if len(baselines) else None
    lines = []
    for prediction, name in PREDICTION_NAMES.items():
        row = table[(table["prediction"] == prediction) & (table["variant"] == "exported")]
        if row.empty or not np.isfinite(row["auc"].iloc[0]):
            continue
        auc, miss = float(row["auc"].iloc[0]), float(row["calibration_error"].iloc[0])
        unit = "purchases per customer" if prediction == "expected_purchases_90d" else "points"
        scale = 1.0 if prediction == "expected_purchases_90d" else 100.0
        miss_text = f"calibration miss {scale * miss:.{2 if scale == 1 else 1}f} {unit} per decile"
        deciles = check.deciles.get(prediction)
        if prediction == "p_alive" and deciles is not None and len(deciles):
            over = deciles[deciles["actual"] > deciles["predicted"] + 0.05]
            miss_text = ("in every decile the share who bought is at most the mean P(alive) + 5 points" if over.empty
                         else f"**in {len(over)} decile(s) more customers bought than the mean P(alive) + 5 points**")
        if best is None:
            lines.append(f"- {name}: AUC {auc:.3f}; {miss_text}.")
        elif auc > best["auc"]:
            lines.append(f"- {name} beats the best baseline ({VARIANT_NAMES[best['variant']]}, AUC "
                         f"{best['auc']:.3f}) at ranking who bought in the {check.days:.0f}-day holdout: AUC {auc:.3f}; "
                         f"{miss_text}.")
        else:
            lines.append(f"- **{name} does not beat {VARIANT_NAMES[best['variant']]}** at ranking who bought in the "
                         f"{check.days:.0f}-day holdout: AUC {auc:.3f} against {best['auc']:.3f}; {miss_text}.")
    if check.choice is not None:
        variant = {"calibrated": "calibrated on the holdout", "one_time": "BG/NBD with the one-time buyer model",
                   "bgnbd": "plain BG/NBD"}[check.choice.variant]
        lines.append(f"- **Exported: {variant}.** {escape_markdown(check.choice.reason)}")
    if check.sampled:
        lines.append(f"- {sample_note(check)}")
    return "\n".join(lines)


def season_note(check: HoldoutCheck, as_of: pd.Timestamp) -> str | None:
    """Markdown caveat when the holdout's season differs from the coming 90 days', or when the data
    never covered some months of the coming 90 days (None when alike).

    Examples
    --------
    >>> season = {"comparable": True, "differs": True, "holdout_level": 1.6, "prediction_level": 0.8,
    ...           "peak_month": "November", "peak_in_holdout": True, "peak_in_prediction": False, "coverage": 1.0}
    >>> print(season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-09-11"), days=90.0, season=season),
    ...                   pd.Timestamp("2011-12-10")))  # doctest: +NORMALIZE_WHITESPACE
    **⚠ Season.** The holdout (2011-09-11 to 2011-12-09) had 1.60 x the data's average daily purchases, the coming 90 days 0.80 x by the same months in the data (-50%); the peak month November falls in the holdout but not in the prediction period. The calibration learnt on the holdout carries its season: expect the exported chances and expected purchases to run high. The level mixes season and trend.
    >>> unknown = {"comparable": False, "coverage": 0.3, "months_not_in_data": ["October", "November"]}
    >>> print(season_note(HoldoutCheck(cutoff=pd.Timestamp("2011-06-13"), days=90.0, season=unknown),
    ...                   pd.Timestamp("2011-09-11")))  # doctest: +NORMALIZE_WHITESPACE
    **⚠ Season unknown.** The data hold no purchases in October and November, months of the coming 90 days, so segkit cannot tell whether the prediction period holds a seasonal peak or a trough. The chances and expected purchases carry the level of the holdout (2011-06-13 to 2011-09-10): with a peak ahead they run low.
    """
    season = check.season
    if season and not season.get("comparable") and season.get("months_not_in_data"):
        months = season["months_not_in_data"]
        return (f"**⚠ Season unknown.** The data hold no purchases in {and_list(months)}, "
                f"{'a month' if len(months) == 1 else 'months'} of the coming {check.days:.0f} days, so segkit cannot "
                "tell whether the prediction period holds a seasonal peak or a trough. The chances and expected "
                "purchases carry the level of the holdout "
                f"({check.cutoff.date()} to {(as_of - pd.Timedelta(days=1)).date()}): with a peak ahead they run low.")
    if not season or not season.get("comparable") or not season.get("differs"):
        return None
    hold, coming = season["holdout_level"], season["prediction_level"]
    end = as_of - pd.Timedelta(days=1)
    text = (f"**⚠ Season.** The holdout ({check.cutoff.date()} to {end.date()}) had {hold:.2f} x the data's average "
            f"daily purchases, the coming {check.days:.0f} days {coming:.2f} x by the same months in the data "
            f"({coming / hold - 1:+.0%})")
    if season["peak_month"] and season["peak_in_holdout"] != season["peak_in_prediction"]:
        where = ("in the holdout but not in the prediction period" if season["peak_in_holdout"]
                 else "in the prediction period but not in the holdout")
        text += f"; the peak month {season['peak_month']} falls {where}"
    direction = "high" if coming < hold else "low"
    return (text + f". The calibration learnt on the holdout carries its season: expect the exported chances and "
            f"expected purchases to run {direction}. The level mixes season and trend.")


def stage_holdout_note(check: HoldoutCheck, threshold_pct: float = 25.0) -> str | None:
    """Markdown: at-risk vs active holdout purchase rates, and stages whose revenue missed by more than ``threshold_pct``.

    Examples
    --------
    >>> by_stage = pd.DataFrame({"lifecycle_stage": ["active", "at_risk", "loyal"], "customers": [100, 50, 40],
    ...     "bought_share": [0.77, 0.30, 0.9], "bought_low": [0.68, 0.19, 0.77], "bought_high": [0.84, 0.44, 0.96],
    ...     "revenue_error_pct": [5.0, 10.0, -46.0]})
    >>> print(stage_holdout_note(HoldoutCheck(by_stage=by_stage, days=90.0)))  # doctest: +NORMALIZE_WHITESPACE
    Customers in the at_risk stage at the cut-off bought in the 90-day holdout at 30% (95% interval 19%–44%), active ones at 77% (68%–84%): 47 points less. Revenue under-predicted by more than 25%: loyal by 46%.
    """
    table = check.by_stage
    if table is None or table.empty:
        return None
    rows = table.set_index("lifecycle_stage")
    parts = []
    if {"at_risk", "active"} <= set(rows.index):
        risk, active = rows.loc["at_risk"], rows.loc["active"]
        gap = 100 * (active["bought_share"] - risk["bought_share"])
        verdict = (f"{gap:.0f} points less" if gap >= 10 else
                   f"only {gap:.0f} points apart: **the at-risk rule does not separate who buys on this data**")
        parts.append(f"Customers in the at_risk stage at the cut-off bought in the {check.days:.0f}-day holdout at "
                     f"{risk['bought_share']:.0%} (95% interval {risk['bought_low']:.0%}–{risk['bought_high']:.0%}), "
                     f"active ones at {active['bought_share']:.0%} ({active['bought_low']:.0%}–"
                     f"{active['bought_high']:.0%}): {verdict}.")
    error = rows["revenue_error_pct"]
    for label, mask in (("under", error < -threshold_pct), ("over", error > threshold_pct)):
        if mask.any():
            listed = ", ".join(f"{escape_markdown(str(stage))} by {abs(value):.0f}%"
                               for stage, value in error[mask].items())
            parts.append(f"Revenue {label}-predicted by more than {threshold_pct:.0f}%: {listed}.")
    return " ".join(parts) or None


@dataclass
class LifecycleResult:
    """What ``04_lifecycle`` shows (see :func:`build_lifecycle_artifacts`)."""

    as_of: pd.Timestamp
    lifecycle: pd.DataFrame | None   # one row per customer (lifecycle.parquet); None on Spark (not in the kernel)
    stage_sizes: pd.DataFrame        # stage, customers, share, phase, meaning, action
    phase_sizes: pd.DataFrame        # phase, customers, share
    thresholds: pd.DataFrame         # threshold, value, source, meaning
    stage_thresholds: StageThresholds
    gaps: ValueDistribution          # gaps between purchase days (days): every distinct value, with its count
    threshold_sizes: dict[str, pd.DataFrame]  # the threshold widget: choice label -> stage sizes and change
    snapshots: pd.DataFrame          # snapshots.parquet
    transitions: pd.DataFrame        # pooled counts, from x to
    transitions_latest: pd.DataFrame
    rates: pd.DataFrame              # per period
    cohorts: pd.DataFrame            # cohorts.parquet
    clv_model: dict | None           # clv_model.json
    clv: dict                        # horizon CLV overview per group: "all", "live", "lapsed" buyers
    view: LifecycleView              # what the notebook shows of `lifecycle`, bounded
    holdout_check: HoldoutCheck
    rfm_crosstab: pd.DataFrame | None
    settings: LifecycleSettings
    warnings: list[str] = field(default_factory=list)
    currency: str = ""               # report.currency of the config ("" = not set)
    one_time_curve: pd.DataFrame | None = None   # P(alive) of one-time buyers by age
    prospects_with_signup: tuple[int, int] = (0, 0)  # (prospects, of them with a signup date)
    data_start: pd.Timestamp | None = None       # the data's first day (first order line)
    first_seen_until: pd.Timestamp | None = None  # data_start + churn window (None: data starts with the shop)

    @property
    def clv_column(self) -> str:
        return f"clv_{self.settings.horizon_months}m"

    @property
    def holdout(self) -> pd.DataFrame | None:
        """Predicted vs actual holdout purchases by calibration frequency (None = skipped)."""
        return self.holdout_check.by_frequency

    @property
    def holdout_cutoff(self) -> pd.Timestamp | None:
        return self.holdout_check.cutoff

    @property
    def money_unit(self) -> str:
        """The currency for labels ("EUR"), or a neutral word when the config sets none."""
        return self.currency or "currency units"

    @property
    def buyers(self) -> pd.DataFrame:
        return self.lifecycle[self.lifecycle["n_purchases"] > 0]


def build_lifecycle_artifacts(ctx: Any) -> LifecycleResult:
    """Producer of ``04_lifecycle``: stages, snapshots, cohorts, CLV; writes the artifacts.

    Reads ``transactions_clean``, ``customers_clean``, ``campaign_clean`` (optional) and ``rfm``;
    writes ``lifecycle.parquet``, ``snapshots.parquet``, ``cohorts.parquet``, ``clv_model.json``
    (only when BG/NBD was fitted; a stale one is removed) and adds ``lifecycle_stage, p_alive,
    p_purchase_90d, expected_purchases_90d, clv_12m`` to ``customer_segments.csv``. With ``engine.kind: spark``
    the executors build the state and CLV input per customer, the thresholds and the models are fitted from
    bounded inputs, and Spark stages, scores and writes ``lifecycle.parquet`` and the scoring input under
    ``artifacts/scoring/`` (:func:`segkit.steps.spark_lifecycle.lifecycle_on_spark`; ``result.lifecycle`` is
    None), then writes ``customer_segments`` (:func:`segkit.steps.spark_scoring.write_run_segments`). The holdout
    check runs first: it chooses the variant of the models that feeds the export. A model that cannot be
    fitted is a warning in the result, not an error: its columns stay empty.

    What the notebook shows of the per-customer table comes from bounded aggregates: ``view``
    (:func:`segkit.lifecycle.lifecycle_view`, the same passes :func:`lifecycle_view_on_spark` runs per
    partition), the gaps' distribution and the stage sizes of every threshold choice (``threshold_sizes``).
    """
    settings = LifecycleSettings.from_config(ctx.section("lifecycle"))
    stage_info = settings.stage_info()

    on_spark = scores_on_spark(ctx)  # Spark stages, scores and counts every customer on its executors
    # Only the columns used: at ten million customers every column read is hundreds of MB. On Spark the
    # executors read the customers, the campaign and the RFM segments themselves.
    customers = None if on_spark else ctx.read_artifact("customers_clean", columns=["customer_id", "signup_date"])
    rfm = None if on_spark else ctx.read_artifact("rfm", columns=["customer_id", "rfm_segment"])
    engagement = None
    if not on_spark and ctx.has_artifact("campaign_clean"):
        campaign = ctx.read_artifact("campaign_clean", columns=["customer_id", "sent_at", *settings.engagement_columns])
        engagement = engagement_dates(campaign, settings.engagement_columns)
        del campaign
    warnings: list[str] = []

    # The purchase days of every line (one row per customer and purchase day): as_of defaults to the day
    # after the last; the days on or after it are left out. On Spark only their span reaches the kernel.
    all_orders = None
    try:
        if on_spark:
            days_span = purchase_day_span_on_spark(ctx, ctx.as_of)
        else:
            all_orders = purchase_days_for(ctx)
            days_span = PurchaseDaySpan.of(all_orders, ctx.as_of)
    except DataError as exc:
        raise DataError(f"{SOURCE}: {exc}") from None
    if days_span.days == 0:
        raise DataError(f"{SOURCE}: no purchase order (net amount > 0), so there is no lifecycle to analyse. "
                        "Check the audit's cleaning counts and the amount column.")
    as_of = ctx.as_of or day_after(days_span.last_day)
    if days_span.later_days:
        warnings.append(f"{days_span.later_orders:,} purchase orders dated on or after as_of = {as_of.date()} "
                        "are left out.")
    orders = history = kept_total = non_purchase = None
    if on_spark and ctx.as_of is not None and days_span.later_days == days_span.days:
        # No purchase before as_of among every line's: as seen at as_of (later cancellations unknown then) there
        # may be one (a purchase of every line's is one as seen earlier too: no read needed otherwise).
        require_purchases_before(purchase_day_span_on_spark(ctx, None, as_of).days, as_of)
    if not on_spark:
        orders = all_orders[(all_orders["order_date"] < as_of).to_numpy()]
        del all_orders  # one day table in memory, not two
        if ctx.as_of is not None:  # kept value as seen at as_of: later cancellations do not reach back
            orders = purchase_days_for(ctx, as_of)
        # Customers whose first order is not a purchase are no_net_purchase until they buy; with the
        # purchases they date the data's first day, from which first_seen and the complete windows count.
        non_purchase = first_non_purchase_for(ctx)
        span = HistorySpan.of(orders, non_purchase, customers, as_of).require_purchases(as_of)
        history = purchase_history(orders)
        # The history is one row per customer and day too: the models read its columns (shared
        # memory, no copy) and the day table is let go.
        orders = history[["customer_id", "purchase_date", "amount"]].rename(columns={"purchase_date": "order_date"})
        # One total per customer, RFM's: the kept value with unmatched adjustments (returns of orders before the
        # data, another price, amount-only refunds). The spend models read each purchase's value scaled to it
        # (kept_share), so an unmatched cancellation cannot leave a huge order value in CLV.
        kept_total = kept_value_for(ctx, as_of)
        orders = spend_scaled(orders, kept_total)
    # The holdout check chooses which variant of the models feeds the export (and calibrates it); its
    # calibration period is the purchase history as seen at the cut-off (later cancellations unknown then).
    check = holdout_check_for(ctx, as_of, settings, None if on_spark else orders)  # on a seeded sample
    if on_spark:  # the state, the fits from bounded inputs, lifecycle.parquet and its aggregates on the executors
        fitted = lifecycle_on_spark(ctx, settings, stage_info, as_of, as_of if ctx.as_of is not None else None,
                                    check.choice)
        models, stager, longest_wait, span = fitted.models, fitted.stager, fitted.longest_wait, fitted.span
        gaps, choices = fitted.gaps, fitted.choices
    else:
        distributions = StageDistributions.of(history, as_of)
        stager = settings.stager().fit_distributions(distributions, as_of, span.data_start)
        gaps = distributions.gap_days()
        del distributions
        choices = threshold_choices(stager.thresholds_, gaps)
        # Each customer's state and CLV input at as_of: the per-customer function Spark applies per partition
        # (customer_inputs), here to the whole base. Tables of one row per customer are let go as soon as they
        # are used (``del``): at ten million customers each is hundreds of MB.
        inputs = inputs_of_history(history, orders, kept_total, as_of, customers[["customer_id"]], engagement,
                                   non_purchase, stager.data_start_)
        durations = input_durations(inputs)
        models = replace(fit_clv_models(input_summary(inputs), settings, durations, ctx.seed), choice=check.choice)
        longest_wait = float(durations["days"].max())
        del durations
    warnings += models.warnings
    if check.warning:
        warnings.append(check.warning)
    warnings += stager.warnings_
    # Every customer gets a stage at as_of: one whose signup_date is on or after it (not signed
    # up yet) is a prospect all the same, counted in the warnings; the snapshots over time count
    # prospects from their signup date on (stage_history).
    if span.not_signed_up:
        warnings.append(f"{span.not_signed_up:,} customer(s) without a purchase have a signup_date on or after as_of = "
                        f"{as_of.date()}: not signed up yet at the analysis date, they are staged prospect. "
                        "Check the signup dates (and as_of) if they should have signed up earlier.")
    lifecycle = None  # on Spark: written by Spark (lifecycle_on_spark), never in the kernel
    if on_spark:
        choice_counts = fitted.choice_counts
    else:  # staged and scored as Spark does per partition (lifecycle_rows), the whole base in one part
        lifecycle = lifecycle_rows(inputs, models, stager.thresholds_, settings, stage_info)
        # The threshold widget: the customers per stage under each choice, the one count Spark adds up per batch.
        choice_counts = threshold_stage_counts(chance_state(inputs, models), list(choices.values()), None,
                                               models.bgnbd is not None)
        del inputs

    if on_spark:  # counted per bucket of customers by lifecycle_on_spark, from the rows it held
        history_tables_of = fitted.history
    else:
        dates = snapshot_dates(span.first_purchase, as_of, settings.snapshot_freq)
        history_tables_of = history_tables(stager, history, dates, as_of, customers, engagement, models, non_purchase)
    del non_purchase
    del engagement
    snapshots, cohorts = history_tables_of.snapshots, history_tables_of.cohorts
    del orders

    clv_model = None
    if models.bgnbd is not None:
        clv_model = {"bgnbd": models.bgnbd.to_dict(),
                     "gamma_gamma": gamma_gamma_record(models),
                     "one_time_buyers": models.one_time.to_dict() if models.one_time is not None else None,
                     "p_alive_of_one_time_buyers": ("share of one-time buyers of the same age who bought again "
                                                    "(one_time_buyers), not BG/NBD's 1" if models.one_time is not None
                                                    else "empty: the one-time buyer model was not fitted"),
                     "as_of": as_of.date().isoformat(), "horizon_months": settings.horizon_months,
                     "discount_rate_annual": settings.discount_rate, "margin": settings.margin,
                     "days_per_month": DAYS_PER_MONTH}
        if check.cutoff is not None and check.calibration is not None:
            finite = {k: (v if np.isfinite(v) else None) for k, v in check.errors.items()}
            choice = check.choice
            clv_model["holdout"] = {"cutoff": check.cutoff.date().isoformat(), "days": check.days,
                                    "p_alive_calibration_error": finite["exported"],
                                    "p_alive_calibration_error_bgnbd_alone": finite["bgnbd"],
                                    "export_variant": choice.variant, "export_base": choice.base,
                                    "export_reason": choice.reason,
                                    "p_purchase_90d_calibrated": choice.variant == "calibrated",
                                    "reported_as_exported": check.reported_from,
                                    "p_purchase_90d_calibration": (choice.purchase_map.to_dict()
                                                                   if choice.purchase_map is not None else None),
                                    "p_alive_floor_calibration": (choice.alive_map.to_dict()
                                                                  if choice.alive_map is not None else None),
                                    **sample_record(check)}
        if models.warnings:
            clv_model["warnings"] = list(models.warnings)

    if lifecycle is not None:
        ctx.write_artifact("lifecycle", lifecycle)
    ctx.write_artifact("snapshots", snapshots)
    ctx.write_artifact("cohorts", cohorts)
    if clv_model is not None:
        ctx.write_artifact("clv_model", clv_model)
    else:
        ctx.artifact_path("clv_model").unlink(missing_ok=True)
    if on_spark:
        write_run_segments(ctx)
    else:
        ctx.update_customer_segments(lifecycle[["customer_id", "lifecycle_stage", "p_alive", "p_purchase_90d",
                                                "expected_purchases_90d", "clv_12m"]])
    # What the notebook shows of the per-customer table: one view, the same passes on either engine.
    column = f"clv_{settings.horizon_months}m"
    if on_spark:
        view = lifecycle_view_on_spark(lifecycle_frame_on_spark(ctx), column)
    else:
        segments = (rfm[["customer_id", "rfm_segment"]].astype({"customer_id": "string"})
                    .drop_duplicates("customer_id").set_index("customer_id")["rfm_segment"]
                    if rfm is not None and "rfm_segment" in rfm.columns else None)
        view = lifecycle_view(lifecycle if segments is None else lifecycle.assign(
            rfm_segment=segments.reindex(lifecycle["customer_id"]).to_numpy()), column)
        del segments
    del rfm
    sizes = stage_table(view.counts.stages, stage_info)

    phases = sizes.groupby("phase", sort=False)["customers"].sum().reindex(list(PHASES), fill_value=0)
    phase_sizes = pd.DataFrame({"phase": pd.array(PHASES, dtype="string"), "customers": phases.to_numpy()})
    phase_sizes["share"] = phase_sizes["customers"] / max(int(phase_sizes["customers"].sum()), 1)
    crosstab = view.rfm_crosstab()
    rates, transitions = history_tables_of.rates, history_tables_of.transitions
    transitions_latest = history_tables_of.transitions_latest
    del history_tables_of
    del history
    widget = threshold_sizes(choices, choice_counts, sizes)
    clv = {group: view.clv_overview(group) for group in ("all", "live", "lapsed")}
    if lifecycle is None:  # counted by Spark
        prospects_with_signup = (fitted.prospects, fitted.prospects_with_signup)
    else:
        prospects = lifecycle.loc[lifecycle["lifecycle_stage"].isin(PROSPECT_STAGES).to_numpy(), "customer_id"]
        with_signup = 0
        if "signup_date" in customers.columns:
            signup = customers.assign(customer_id=customers["customer_id"].astype("string")).set_index("customer_id")["signup_date"]
            with_signup = int(signup[~signup.index.duplicated()].reindex(prospects.to_numpy()).notna().sum())
            del signup
        prospects_with_signup = (int(len(prospects)), with_signup)
    del customers
    curve = one_time_curve(models.one_time, longest_wait) if models.one_time is not None else None
    return LifecycleResult(
        as_of=as_of, lifecycle=lifecycle, stage_sizes=sizes, phase_sizes=phase_sizes,
        thresholds=stager.threshold_table_, stage_thresholds=stager.thresholds_,
        gaps=gaps, threshold_sizes=widget, snapshots=snapshots, transitions=transitions, transitions_latest=transitions_latest,
        rates=rates, cohorts=cohorts, clv_model=clv_model, clv=clv, view=view, holdout_check=check, rfm_crosstab=crosstab,
        settings=settings, warnings=warnings, currency=str((ctx.config.get("report") or {}).get("currency") or ""),
        one_time_curve=curve, prospects_with_signup=prospects_with_signup,
        data_start=pd.Timestamp(span.data_start).normalize(), first_seen_until=stager.first_seen_until_)


def lifecycle_frame_on_spark(ctx: Any) -> "SparkFrame":
    """The run's ``lifecycle.parquet`` as Spark reads it, with ``rfm.parquet``'s ``rfm_segment`` joined on the
    executors (when 02 has written it): the per-customer table :func:`lifecycle_view_on_spark` reads."""
    from segkit.data.spark import timestamps_from_nanoseconds

    read = run_reader(ctx)
    frame = timestamps_from_nanoseconds(read.parquet(str(ctx.artifact_path("lifecycle"))))
    rfm = ctx.artifact_path("rfm")
    if rfm.exists():
        segments = read.parquet(str(rfm))
        if "rfm_segment" in segments.columns:
            frame = frame.join(segments.select("customer_id", "rfm_segment"), "customer_id", "left")
    return frame


def lifecycle_view_on_spark(frame: "SparkFrame", column: str, partitions: int | None = None) -> LifecycleView:
    """The :class:`~segkit.lifecycle.LifecycleView` of a per-customer Spark table (``lifecycle.parquet``'s
    columns, with ``rfm_segment`` when known), computed on the executors: the one-machine passes
    (:class:`~segkit.lifecycle.LifecycleCounts`, :class:`~segkit.lifecycle.LifecycleTails`) on every
    partition, merged on the driver; the exact order statistics from
    :func:`segkit.data.spark_ranks.value_distributions` of :func:`~segkit.lifecycle.view_values`. Equal to
    :func:`~segkit.lifecycle.lifecycle_view` of the same rows, bit for bit (the sums are exact, whatever the
    partitions: :func:`segkit.data.distribution.exact_sums`).

    What reaches the driver is bounded by the partitions, the stages and segments, and the view's
    needs (:data:`~segkit.lifecycle.VIEW_NEEDS`), not by the customers.
    """
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import value_distributions

    counts = merged_parts(frame, lambda batch: LifecycleCounts.of(batch, column), LifecycleCounts.merge)

    def values(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield view_values(batch, column)

    with pandas_warnings_quiet():
        grouped = frame.mapInPandas(values, ", ".join(f"{name} double" for name in VIEW_VALUES))
        distributions = value_distributions(grouped, VIEW_NEEDS, partitions, missing="skip")
    plan = ViewPlan.of(counts, distributions)
    tails = merged_parts(frame, lambda batch: LifecycleTails.of(batch, column, plan), LifecycleTails.merge)
    return LifecycleView(column, counts, distributions, plan, tails)


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def summarize(result: LifecycleResult) -> dict[str, Any]:
    """The notebook's executive summary (``analysed, findings, actions, headlines, warnings``).

    Rates are per snapshot period (per month by default), pooled over the last three complete
    periods, and named so in findings and headlines. CLV is presented for live buyers as value
    to expect; lapsed customers' model CLV is stated separately as win-back potential, next to
    what the customers lapsed at the holdout cut-off really bought.
    """
    sizes = result.stage_sizes.set_index("lifecycle_stage")["customers"]
    buyers = int(sizes[list(BUYER_STAGES)].sum())
    prospects = int(sizes[list(PROSPECT_STAGES)].sum())
    no_purchase = int(sizes[list(NO_PURCHASE_STAGES)].sum())
    live = int(sizes[list(LIVE_STAGES)].sum())
    th = result.stage_thresholds
    unit = SNAPSHOT_FREQS[result.settings.snapshot_freq]
    churn_source = result.thresholds.set_index("threshold").loc["churn_window_days", "source"]
    first = (pd.Timestamp(result.view.counts.first_purchase) if result.view.counts.first_purchase is not None
             else pd.NaT)
    others = f", {no_purchase:,} with order lines but no purchase" if no_purchase else ""
    analysed = (f"{result.view.customers:,} customers ({buyers:,} buyers, {prospects:,} prospects{others}) as of "
                f"{result.as_of.date()}, purchases from {first.date() if pd.notna(first) else 'n/a'}; "
                f"{result.snapshots['period'].nunique()} {unit}ly snapshots.")
    limit = measurability_statement(result)
    findings = ([limit] if limit else []) + [
        (f"{live:,} of {buyers:,} buyers ({_pct(live / buyers if buyers else np.nan)}) are live, "
         f"{sizes['at_risk']:,} of them in the lifecycle stage at_risk (a low chance of buying in the next 90 days, "
         f"not RFM's At Risk segment); {sizes['lapsed']:,} lapsed (no purchase for more than "
         f"{th.churn_window_days:,.0f} days; {churn_source})."),
    ]
    start_note = history_start_statement(result)
    recent = recent_rates(result.rates)
    full = complete_periods(result.rates)
    if recent is None and start_note:
        findings.append(start_note)
    if recent is not None:
        span = _span(recent["first"], recent["last"])
        year = full.tail(12)
        start, end = int(year["live_start"].iloc[0]), int(year["live_end"].iloc[-1])
        change = f"{(end - start) / start:+.0%} in " if start > 0 else ""
        findings.append(
            f"Churn rate per {unit} ({span}): {_pct(recent['churn_rate'])} of the live buyers at the start of a {unit} "
            f"lapsed during it; per {unit}, {_pct(recent['reactivation_rate'])} of lapsed customers came back and "
            f"{_pct(recent['repeat_purchase_rate'])} of all buyers bought again. The live base went from {start:,} "
            f"buyers at the start of {year['period'].iloc[0]} to {end:,} at the end of {year['period'].iloc[-1]} "
            f"({change}{len(year)} {unit}{'s' if len(year) > 1 else ''})." + (
                f" Earlier {unit}s are left out: history before the data's first day ({result.data_start.date()}) "
                f"is unknown, so until {result.first_seen_until.date()} (one churn window) nobody could be seen to "
                "lapse and the live base grew from nothing (see the growth section)."
                if start_note and len(year) < 12 and len(full) < len(result.rates[~result.rates["partial"].to_numpy(dtype=bool)])
                else ""))
    cohorts = result.cohorts
    acquisition = ~cohorts["first_seen"].to_numpy(dtype=bool) if "first_seen" in cohorts else True
    month1 = cohorts[(cohorts["months_since_first"] == 1) & ~cohorts["partial"] & acquisition]
    if len(month1):
        weighted = month1["customers_purchasing"].sum() / month1["cohort_size"].sum()
        findings.append(f"{_pct(weighted)} of new customers buy again in the month after their first purchase "
                        f"(all {len(month1)} complete cohorts pooled).")
    h = result.settings.horizon_months
    clv_live, clv_lapsed = result.clv["live"], result.clv["lapsed"]
    if np.isfinite(result.clv["all"]["total"]):
        text = (f"Predicted {h}-month CLV of the {clv_live['customers']:,} live buyers: "
                f"{_money(clv_live['total'], result.currency)} (discounted at {result.settings.discount_rate:.0%} a year; "
                f"the top 10% of them hold {_pct(clv_live['top_decile_share'])}).")
        if clv_lapsed["customers"]:
            text += (f" The {clv_lapsed['customers']:,} lapsed customers carry another "
                     f"{_money(clv_lapsed['total'], result.currency)} in the model (mean P(alive) "
                     f"{_pct(result.view.lapsed_p_alive())}; the top 10% of them hold "
                     f"{_pct(clv_lapsed['top_decile_share'])} of it): win-back potential from those who come back, "
                     "not revenue to plan on.")
            stages = result.holdout_check.by_stage
            check_days = result.holdout_check.days
            row = (stages.set_index("lifecycle_stage").loc["lapsed"]
                   if stages is not None and (stages["lifecycle_stage"] == "lapsed").any() else None)
            if row is not None and np.isfinite(row["predicted_revenue"]) and np.isfinite(row["actual_revenue"]):
                text += (f" In the holdout check{' (its seeded sample)' if result.holdout_check.sampled else ''}, "
                         f"the customers lapsed on {result.holdout_cutoff.date()} bought "
                         f"{_money(row['actual_revenue'], result.currency)} in {check_days:.0f} days "
                         f"against {_money(row['predicted_revenue'], result.currency)} predicted.")
        sampled = order_value_note((result.clv_model or {}).get("gamma_gamma"))
        findings.append(text + (f" {sampled}" if sampled else ""))
    check = result.holdout_check
    warnings: list[str] = []
    if check.by_frequency is not None:
        total = check.by_frequency.set_index("frequency_bucket").loc["all"]
        findings.append(
            f"Model check: fitted on data up to {check.cutoff.date()}, the models predicted "
            f"{total['predicted']:,.0f} repeat purchases in the {check.days:.0f}-day holdout against "
            f"{total['actual']:,.0f} actual ({total['error_pct']:+.0f}%); P(alive) deciles missed the share who bought "
            f"by {100 * check.errors['exported']:.1f} points on average ({100 * check.errors['bgnbd']:.1f} with BG/NBD's "
            "P(alive) = 1 for one-time buyers). " + (f"{sample_note(check)} " if check.sampled else "")
            + (stage_holdout_note(check) or ""))
        season = season_note(check, result.as_of)
        if season:
            warnings.append(season.replace("**", "").removeprefix("⚠ "))
    info = result.stage_sizes.set_index("lifecycle_stage")
    actions = []
    for stage in ("at_risk", "new", "lapsed", "engaged_prospect", "no_net_purchase", "loyal"):
        if sizes[stage] > 0:
            actions.append(f"Stage {stage} ({sizes[stage]:,}): {info.loc[stage, 'recommended_action']}")
    if result.view.counts.p_alive_known:
        actions.append("Within the at_risk stage, start with the highest predicted CLV "
                       f"({result.clv_column} in customer_segments.csv).")
    headlines: dict[str, Any] = {
        "Buyers": buyers, "Live buyers": live, "Lifecycle stage at_risk": int(sizes["at_risk"]), "Lapsed": int(sizes["lapsed"]),
        "Churn window (days)": round(th.churn_window_days),
    }
    if recent is not None:
        headlines[f"Churn rate per {unit} ({_span(recent['first'], recent['last'])})"] = _pct(recent["churn_rate"])
    if np.isfinite(clv_live["total"]):
        money = f" ({result.currency})" if result.currency else ""
        headlines[f"{h}-month CLV of live buyers{money}"] = round(clv_live["total"])
        headlines["Top-decile share of live buyers' CLV"] = _pct(clv_live["top_decile_share"])
    return {"analysed": analysed, "findings": findings[:5], "actions": actions, "headlines": headlines,
            "warnings": list(result.warnings) + warnings}


# --------------------------------------------------------------------------- history tables
# Snapshots, transitions, period rates and cohorts: one definition (segkit.lifecycle.HistoryCounts, counts
# that add up over disjoint customers, and HistoryTables, the tables of them). One machine counts the whole
# base; Spark counts every bucket of customers on the executors (each customer's rows in one bucket) and the
# driver merges the counts (segkit.steps.spark_lifecycle.history_counts_on_spark), so what reaches it is
# bounded by the snapshots, stages and cohort months.

def history_tables(stager: "LifecycleStager", history: pd.DataFrame, dates: pd.DataFrame, as_of: pd.Timestamp,
                   customers: pd.DataFrame, engagement: pd.Series | None, models: "CLVModels",
                   non_purchase: pd.DataFrame | None) -> HistoryTables:
    """04's history tables on one machine: :class:`~segkit.lifecycle.HistoryTables` of the
    :class:`~segkit.lifecycle.HistoryCounts` of the whole base (``models``: :class:`~segkit.lifecycle.CLVModels`
    with the export choice; ``stager`` fitted)."""
    counts = HistoryCounts.of(stager, history, dates, as_of, customers, engagement, models.bgnbd, models.one_time,
                              models.choice, non_purchase)
    return HistoryTables.of(counts, dates, as_of, stager.first_seen_until_)
