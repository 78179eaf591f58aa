"""Notebook 04's state, fits and ``lifecycle.parquet`` rows per partition of customers (segkit.steps.spark_lifecycle).

Every per-customer function of :mod:`segkit.lifecycle` is applied to parts of the customers (all of a
customer's rows in one part) and must give the one-machine result: (1) in pandas, the lifecycle rows of
four parts (the last without a purchase; staged with the at-risk reference of all parts) equal the
producer's table of the whole base; (2) on Spark (one shared session, one small frame), the stage
thresholds, the per-customer input and the BG/NBD, Gamma-Gamma and one-time buyer fits from bounded inputs
equal the pandas fits. ``lifecycle.parquet`` written by Spark is compared with the DuckDB run's by
tests/test_spark_pipeline.py (TABLES).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from segkit.clv import clv_summary, first_repeat_durations
from segkit.core.config import load_config
from segkit.core.errors import DataError
from segkit.lifecycle import (
    LifecycleSettings,
    chance_reference,
    chance_reference_part,
    engagement_dates,
    fit_clv_models,
    input_state,
    lifecycle_rows,
    lifecycle_table,
    purchase_history,
    score_customers,
    spend_scaled,
)
from segkit.steps.spark_lifecycle import customer_inputs_of_rows

AS_OF = pd.Timestamp("2024-07-01")
SETTINGS = LifecycleSettings.from_config(load_config()["lifecycle"])


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Tagged rows as :func:`customer_rows_on_spark` reads them: 400 buyers with 1-9 purchase days over two
    years (kept values below what some paid: returns), 40 prospects, 6 customers whose first order was no
    purchase, campaign opens of some customers."""
    rng = np.random.default_rng(17)
    days = []
    for i in range(400):
        n = int(rng.choice([1, 1, 1, 2, 3, 4, 6, 9]))
        start = int(rng.integers(0, 700))
        offsets = np.unique(start + np.cumsum(np.r_[0, rng.integers(3, 90, n - 1)]))
        offsets = offsets[offsets < 730]
        days += [(f"c{i:04d}", pd.Timestamp("2022-07-01") + pd.Timedelta(days=int(d)), float(rng.lognormal(3.5, 0.6)))
                 for d in offsets]
    day_rows = pd.DataFrame(days, columns=["customer_id", "order_date", "amount"]).assign(kind="day")
    paid = day_rows.groupby("customer_id")["amount"].sum()
    kept = pd.DataFrame({"customer_id": paid.index, "kind": "kept",
                         "kept": paid.to_numpy() * np.where(rng.random(len(paid)) < 0.1, 0.5, 1.0)})
    ids = [f"c{i:04d}" for i in range(400)] + [f"p{i:03d}" for i in range(40)]
    customers = pd.DataFrame({"customer_id": ids, "kind": "customer"})
    non_purchase = pd.DataFrame({"customer_id": [f"n{i}" for i in range(6)], "kind": "non_purchase",
                                 "first_order_date": pd.Timestamp("2023-03-01"), "first_purchase_date": pd.NaT})
    opened = rng.choice(ids, 60, replace=False)
    campaign = pd.DataFrame({"customer_id": opened, "kind": "campaign", "sent_at": pd.Timestamp("2024-05-01"),
                             "opened": rng.random(60) < 0.7, "clicked": False})
    frame = pd.concat([day_rows, kept, customers, non_purchase, campaign], ignore_index=True)
    return frame.astype({"order_date": "datetime64[ns]", "first_order_date": "datetime64[ns]",
                         "first_purchase_date": "datetime64[ns]", "sent_at": "datetime64[ns]"})


@pytest.fixture(scope="module")
def pandas_run(rows):
    """The producer's steps on the whole base (segkit.steps.lifecycle.build_lifecycle_artifacts)."""
    day_rows = rows[rows["kind"] == "day"][["customer_id", "order_date", "amount"]].astype({"customer_id": "string"})
    history = purchase_history(day_rows)
    kept = rows[rows["kind"] == "kept"]
    kept_total = pd.Series(kept["kept"].to_numpy(), index=pd.Index(kept["customer_id"], dtype="string"))
    orders = spend_scaled(history[["customer_id", "purchase_date", "amount"]].rename(
        columns={"purchase_date": "order_date"}), kept_total)
    end = AS_OF - pd.Timedelta(days=1)
    summary = clv_summary(orders, end)
    durations = first_repeat_durations(orders, end).reindex(summary.index)
    models = fit_clv_models(summary, SETTINGS, durations)
    non_purchase = rows[rows["kind"] == "non_purchase"][["customer_id", "first_order_date", "first_purchase_date"]]
    data_start = min(history["purchase_date"].min(), non_purchase["first_order_date"].min())
    stager = SETTINGS.stager().fit(history, AS_OF, data_start=data_start)
    customers = rows[rows["kind"] == "customer"][["customer_id"]].astype("string")
    engagement = engagement_dates(rows[rows["kind"] == "campaign"][["customer_id", "sent_at", "opened", "clicked"]],
                                  SETTINGS.engagement_columns)
    state = stager.predict(history, AS_OF, customers, engagement, models.bgnbd, one_time=models.one_time,
                           non_purchase=non_purchase.astype({"customer_id": "string"}))
    scores = score_customers(models, summary, SETTINGS).reindex(state.index)
    table = lifecycle_table(state, scores, kept_total, SETTINGS.stage_info())
    return {"models": models, "stager": stager, "table": table, "summary": summary, "durations": durations}


def parts_of(rows: pd.DataFrame, edges: tuple[str, ...] = ("c0150", "c0300", "n")) -> list[pd.DataFrame]:
    """Rows split into ranges of customer ids (as repartitionByRange splits them); the last part has no purchase."""
    bounds = (None, *edges, None)
    return [rows[(rows["customer_id"] >= lo if lo else True) & (rows["customer_id"] < hi if hi else True)]
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def test_lifecycle_rows_of_parts_equal_the_producers_table(rows, pandas_run):
    fitted = pandas_run["stager"]
    models, thresholds = pandas_run["models"], fitted.thresholds_
    assert models.bgnbd is not None and models.gamma_gamma is not None and models.one_time is not None
    inputs = [customer_inputs_of_rows(part, AS_OF, fitted.data_start_, SETTINGS.engagement_columns)
              for part in parts_of(rows)]
    reference = chance_reference([chance_reference_part(input_state(part), models, thresholds) for part in inputs])
    got = pd.concat([lifecycle_rows(part, models, thresholds, SETTINGS, SETTINGS.stage_info(), reference)
                     for part in inputs], ignore_index=True)
    want = pandas_run["table"]
    assert len(want) == 400 + 40 + 6
    assert got["lifecycle_stage"].value_counts().to_dict() == want["lifecycle_stage"].value_counts().to_dict()
    assert {"at_risk", "lapsed", "prospect", "no_net_purchase"} <= set(want["lifecycle_stage"])
    assert want["engaged"].any()
    pd.testing.assert_frame_equal(got, want, check_exact=True)  # exact: the reference is summed exactly
    # the kept value, not the purchase days' running total, is the exported monetary_total
    halved = rows[(rows["kind"] == "kept")].set_index("customer_id")["kept"]
    assert np.allclose(got.set_index("customer_id")["monetary_total"].reindex(halved.index), halved)


@pytest.mark.slow
@pytest.mark.filterwarnings("error::FutureWarning")
def test_spark_fits_and_inputs_equal_pandas(rows, pandas_run):
    """The fits and the per-customer input on Spark equal pandas', and no Spark call of them lets pyspark's
    FutureWarning about pandas 3 out (finding 6: a notebook shows it on stderr): warnings are errors here."""
    from segkit.data.spark import pandas_warnings_quiet, spark_session
    from segkit.data.spark_ranks import release_checkpoint
    from segkit.steps.spark_lifecycle import fit_clv_on_spark, inputs_on_spark, stage_distributions_on_spark

    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(rows.astype({"customer_id": "object", "kind": "object"}))
    held = frame.repartitionByRange(3, "customer_id").localCheckpoint(eager=True)
    try:
        want_stager = pandas_run["stager"]
        stager = SETTINGS.stager()  # fitted as lifecycle_on_spark fits it
        stager.fit_distributions(stage_distributions_on_spark(held, stager, AS_OF, partitions=2), AS_OF,
                                 want_stager.data_start_)
        assert stager.thresholds_ == want_stager.thresholds_
        pd.testing.assert_frame_equal(stager.threshold_table_, want_stager.threshold_table_)
        assert stager.warnings_ == want_stager.warnings_ and stager.first_seen_until_ == want_stager.first_seen_until_

        inputs = inputs_on_spark(held, AS_OF, stager.data_start_, SETTINGS.engagement_columns)
        with pandas_warnings_quiet():
            got = inputs.toPandas().sort_values("customer_id", ignore_index=True)
        whole = customer_inputs_of_rows(rows, AS_OF, want_stager.data_start_, SETTINGS.engagement_columns)
        assert list(got.columns) == list(whole.columns) and len(got) == 446
        summary = pandas_run["summary"]
        buyers = got.set_index("customer_id").loc[summary.index.to_numpy()]
        for column in ("frequency", "recency", "T", "monetary_value"):
            assert np.array_equal(buyers[f"clv_{column}"].to_numpy(), summary[column].to_numpy())
        assert np.array_equal(buyers["first_repeat_days"].to_numpy(), pandas_run["durations"]["days"].to_numpy())
        assert np.array_equal(input_state(got).to_numpy(dtype=str), input_state(whole).to_numpy(dtype=str))

        models, longest = fit_clv_on_spark(inputs, SETTINGS)
        want = pandas_run["models"]
        assert longest == float(pandas_run["durations"]["days"].max())
        for name in ("bgnbd", "gamma_gamma", "one_time"):
            got_dict, want_dict = getattr(models, name).to_dict(), getattr(want, name).to_dict()
            assert got_dict.keys() == want_dict.keys()
        for name, keys in (("bgnbd", ("r", "alpha", "a", "b")), ("gamma_gamma", ("p", "q", "v"))):
            for key in keys:
                assert getattr(models, name).params_[key] == pytest.approx(getattr(want, name).params_[key], rel=1e-9)
        assert models.one_time.to_dict() == want.one_time.to_dict()
        assert models.warnings == want.warnings
        assert models.order_value_buyers is None is want.order_value_buyers  # the cap is above the repeat buyers

        # Gamma-Gamma on a seeded sample of 50 repeat buyers: the DuckDB run's model (fit_clv_models of the same
        # summary and seed), bit for bit; BG/NBD and the one-time buyer model still read every customer
        capped = replace(SETTINGS, order_value_sample=50)
        sampled, _ = fit_clv_on_spark(inputs, capped, seed=3)
        duck = fit_clv_models(summary, capped, pandas_run["durations"], seed=3)
        assert sampled.gamma_gamma.to_dict() == duck.gamma_gamma.to_dict()
        assert sampled.gamma_gamma.n_customers_ == 50 and sampled.order_value_sampled
        assert sampled.order_value_buyers == duck.order_value_buyers == want.gamma_gamma.n_customers_ > 100
        assert sampled.gamma_gamma.params_ != want.gamma_gamma.params_
        assert sampled.bgnbd.to_dict() == models.bgnbd.to_dict()
        assert sampled.one_time.to_dict() == models.one_time.to_dict()
        release_checkpoint(inputs)
    finally:
        release_checkpoint(held)


# --------------------------------------------------------------------------- E: 04's kernel aggregates in parts
# What 04 showed from per-customer tables in its kernel (as_of, the data's start, the snapshots' start, the
# later purchases, the gaps, the threshold widget's stage sizes, the not-signed-up count) is now a partial per
# part of the customers, merged; one-machine runs apply the same partial to the whole base.

def random_splits(n: int, seed: int, parts: int = 7) -> list[tuple[int, int]]:
    """Bounds of ``parts`` consecutive slices of ``n`` rows at random cuts, with an empty slice, a one-row
    slice and the rest (as Spark's partitions and Arrow batches may split them)."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(2, n - 1), parts - 3, replace=False))
    bounds = np.r_[0, 0, 1, cuts, n]  # [0, 0): empty, [0, 1): one row
    return list(zip(bounds[:-1], bounds[1:]))


def customer_slices(rows: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """The tagged rows split into random ranges of customer ids (all of a customer's rows in one slice), one of
    them empty and one of a single customer."""
    ids = np.sort(rows["customer_id"].unique())
    return [rows[rows["customer_id"].isin(ids[lo:hi])] for lo, hi in random_splits(len(ids), seed)]


@pytest.fixture(scope="module")
def whole_inputs(rows, pandas_run) -> pd.DataFrame:
    """:func:`segkit.lifecycle.customer_inputs` of the whole base (one row per customer, sorted)."""
    return customer_inputs_of_rows(rows, AS_OF, pandas_run["stager"].data_start_, SETTINGS.engagement_columns)


def test_threshold_widget_counts_of_random_parts_equal_the_whole_bases(rows, pandas_run, whole_inputs):
    """The widget's stage sizes under every choice: per part with the whole base's at-risk references
    (exact sums), added, equal the one-machine counts of the whole state bit for bit, which equal the per-choice
    stage sizes the widget showed before (stage_sizes_for_thresholds of LifecycleStager.predict's state). A
    part's own reference would stage other customers at risk."""
    from segkit.lifecycle import (STAGES, StageDistributions, chance_state, merge_reference_parts, threshold_choices,
                                  threshold_reference_parts, threshold_references, threshold_stage_counts)
    from segkit.steps.lifecycle import stage_sizes_for_thresholds, threshold_sizes

    models, stager = pandas_run["models"], pandas_run["stager"]
    history = purchase_history(rows[rows["kind"] == "day"][["customer_id", "order_date", "amount"]]
                               .astype({"customer_id": "string"}))
    choices = threshold_choices(stager.thresholds_, StageDistributions.of(history, AS_OF).gap_days())
    assert len(choices) == 15 and len({th.churn_window_days for th in choices.values()}) > 1
    # and each with a sharper at-risk rule (below 0.8 x the live repeat buyers' mean chance): the references matter
    listed = [*choices.values(), *(replace(th, at_risk_chance_ratio=0.8) for th in choices.values())]
    state = chance_state(whole_inputs, models)
    whole = threshold_stage_counts(state, listed, None, chances=True)
    assert whole.shape == (30, len(STAGES)) and (whole.sum(axis=1) == len(whole_inputs)).all()
    assert len({tuple(row) for row in whole}) > 3 and whole[:, STAGES.index("at_risk")].max() > 0
    predicted = pandas_run["stager"].predict(
        purchase_history(rows[rows["kind"] == "day"][["customer_id", "order_date", "amount"]].astype(
            {"customer_id": "string"})), AS_OF, rows[rows["kind"] == "customer"][["customer_id"]].astype("string"),
        engagement_dates(rows[rows["kind"] == "campaign"][["customer_id", "sent_at", "opened", "clicked"]],
                         SETTINGS.engagement_columns), models.bgnbd, one_time=models.one_time,
        non_purchase=rows[rows["kind"] == "non_purchase"][["customer_id", "first_order_date"]].astype(
            {"customer_id": "string"}))
    before = {label: stage_sizes_for_thresholds(predicted, th) for label, th in choices.items()}
    now = threshold_sizes(choices, whole[:15])
    for label in choices:
        pd.testing.assert_frame_equal(now[label], before[label], check_exact=True)
    for seed in (1, 2):
        parts = [chance_state(whole_inputs.iloc[lo:hi], models) for lo, hi in random_splits(len(whole_inputs), seed)]
        assert min(len(p) for p in parts) == 0 and sorted(len(p) for p in parts)[1] == 1
        references = threshold_references([threshold_reference_parts(part, listed) for part in parts])
        assert references == threshold_references([merge_reference_parts(
            [threshold_reference_parts(part, listed) for part in parts])])
        added = sum(threshold_stage_counts(part, listed, references, chances=True) for part in parts)
        np.testing.assert_array_equal(added, whole)
    live = (state["n_purchases"] > 1) & (state["recency_days"] <= stager.thresholds_.churn_window_days)
    low = (state["p_purchase_90d"] < state.loc[live, "p_purchase_90d"].median()).to_numpy()
    halves = [state[low], state[~low]]  # live repeat buyers of low and of high chances
    own = sum(threshold_stage_counts(half, listed, None, chances=True) for half in halves)
    assert not np.array_equal(own, whole)  # each part's own reference stages other customers at risk
    references = threshold_references([threshold_reference_parts(half, listed) for half in halves])
    np.testing.assert_array_equal(sum(threshold_stage_counts(half, listed, references) for half in halves), whole)


def test_history_span_of_random_parts_equals_the_whole_and_the_kernels_numbers(rows):
    """The data's first day, the snapshots' start, the purchase days and the customers not signed up yet at
    as_of (buyers excluded) of random parts of the customers, merged, equal the whole's and what the kernel
    computed from its per-customer tables before."""
    from segkit.lifecycle import HistorySpan, signups_on_or_after
    from segkit.steps.spark_lifecycle import history_span_of_rows

    customers = rows["kind"] == "customer"
    signed = rows.assign(signup_date=pd.NaT).astype({"signup_date": "datetime64[ns]"})
    late = customers & rows["customer_id"].isin(["c0003", "c0100", "p001", "p002", "p039"])  # 2 buyers, 3 not
    signed.loc[late, "signup_date"] = AS_OF + pd.Timedelta(days=3)
    signed.loc[customers & (rows["customer_id"] == "p005"), "signup_date"] = AS_OF - pd.Timedelta(days=3)
    whole = history_span_of_rows(signed, AS_OF)
    days = signed[signed["kind"] == "day"]
    non_purchase = signed[signed["kind"] == "non_purchase"]
    data_start = min(days["order_date"].min(), non_purchase["first_order_date"].min())  # the kernel's formula
    table = signed[customers][["customer_id", "signup_date"]].astype({"customer_id": "string"})
    assert whole == HistorySpan(len(days), days["order_date"].min(), non_purchase["first_order_date"].min(), 3)
    assert whole.data_start == data_start == pd.Timestamp("2022-07-01")
    assert whole.not_signed_up == signups_on_or_after(table, AS_OF, pd.Index(days["customer_id"].unique()))
    for seed in (4, 5):
        assert HistorySpan.merge([history_span_of_rows(part, AS_OF) for part in customer_slices(signed, seed)]) == whole
    assert HistorySpan.merge([]) == HistorySpan(0, None, None, 0) and HistorySpan.merge([]).data_start is None
    with pytest.raises(DataError, match="every purchase is dated on or after as_of = 2024-07-01"):
        HistorySpan.merge([]).require_purchases(AS_OF)


def test_purchase_day_span_of_random_batches_gives_the_kernels_as_of_and_later_orders(rows):
    """as_of (the day after the last purchase day) and the purchase orders on or after a given as_of, from
    random batches of the purchase days merged: what the kernel read of every customer's purchase days."""
    from segkit.lifecycle import PurchaseDaySpan

    rng = np.random.default_rng(6)
    days = rows[rows["kind"] == "day"][["customer_id", "order_date"]].reset_index(drop=True)
    days["orders"] = rng.integers(1, 4, len(days))
    cut = pd.Timestamp("2024-03-01")
    whole = PurchaseDaySpan.of(days, cut)
    later = days[days["order_date"] >= cut]
    assert whole == PurchaseDaySpan(len(days), days["order_date"].max(), len(later),
                                    int(days["orders"].sum() - days.loc[days["order_date"] < cut, "orders"].sum()))
    assert 0 < whole.later_days < len(days) and whole.later_orders > whole.later_days
    for seed in (7, 8):
        parts = [PurchaseDaySpan.of(days.iloc[lo:hi], cut) for lo, hi in random_splits(len(days), seed)]
        assert PurchaseDaySpan.merge(parts) == whole
    assert PurchaseDaySpan.of(days, None) == PurchaseDaySpan(len(days), whole.last_day, 0, 0)
    assert PurchaseDaySpan.merge([]) == PurchaseDaySpan(0, None, 0, 0)


@pytest.mark.slow
@pytest.mark.filterwarnings("error::FutureWarning")
def test_spark_counts_every_gap_and_the_widgets_stages_as_pandas(rows, pandas_run, whole_inputs):
    """On Spark (the shared session, small frames): the gaps' distribution is complete even with more distinct
    gaps than a quantile fit keeps (1,100 here), equal to pandas' of every gap; the history span and the
    widget's stage counts under every choice equal the one-machine ones."""
    from segkit.data.distribution import ValueDistribution
    from segkit.data.spark import pandas_warnings_quiet, spark_session
    from segkit.lifecycle import chance_state, inter_purchase_gaps, threshold_choices, threshold_stage_counts
    from segkit.steps.spark_lifecycle import (INPUTS_SCHEMA, chance_references_on_spark, history_span_of_rows,
                                              history_span_on_spark,
                                              stage_distributions_on_spark, threshold_counts_on_spark)

    gap = np.arange(1, 1101)  # customer g bought twice, g days apart: 1,100 distinct gaps
    start = pd.Timestamp("2022-01-01") + pd.to_timedelta(gap % 97, unit="D")
    wide = pd.DataFrame({"customer_id": np.repeat([f"g{g:04d}" for g in gap], 2), "kind": "day", "amount": 10.0,
                         "order_date": np.ravel(np.column_stack([start, start + pd.to_timedelta(gap, unit="D")]))})
    wide = wide.astype({"order_date": "datetime64[ns]"})
    with pandas_warnings_quiet():
        session = spark_session()
        wide_frame = session.createDataFrame(wide.astype({"customer_id": "object", "kind": "object"}))
        frame = session.createDataFrame(rows.astype({"customer_id": "object", "kind": "object"}))
        inputs = session.createDataFrame(whole_inputs.astype({"customer_id": "object"}), INPUTS_SCHEMA).repartition(3)
    as_of = pd.Timestamp("2026-01-01")
    got = stage_distributions_on_spark(wide_frame.repartitionByRange(2, "customer_id"), SETTINGS.stager(), as_of,
                                       partitions=2).gap_days()
    history = purchase_history(wide[["customer_id", "order_date", "amount"]].astype({"customer_id": "string"}))
    want = ValueDistribution.of_values(inter_purchase_gaps(history, as_of)["gap_days"].to_numpy(), column="gap_days")
    assert got.complete and got.m == 1100 and got == want

    assert history_span_on_spark(frame.repartitionByRange(3, "customer_id"), AS_OF) == history_span_of_rows(rows, AS_OF)
    models, stager = pandas_run["models"], pandas_run["stager"]
    listed = list(threshold_choices(stager.thresholds_, np.arange(1.0, 400.0)).values())
    references = chance_references_on_spark(inputs, models, listed)
    counts = threshold_counts_on_spark(inputs, models, listed, references)
    np.testing.assert_array_equal(counts, threshold_stage_counts(chance_state(whole_inputs, models), listed))
