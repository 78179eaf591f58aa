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

import numpy as np
import pandas as pd
import pytest

from segkit.clv import clv_summary, first_repeat_durations
from segkit.core.config import load_config
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
    from segkit.steps.spark_lifecycle import fit_clv_on_spark, fit_stager_on_spark, inputs_on_spark

    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(rows.astype({"customer_id": "object", "kind": "object"}))
    held = frame.repartitionByRange(3, "customer_id").localCheckpoint(eager=True)
    try:
        want_stager = pandas_run["stager"]
        stager = fit_stager_on_spark(held, SETTINGS.stager(), AS_OF, want_stager.data_start_, partitions=2)
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
        release_checkpoint(inputs)
    finally:
        release_checkpoint(held)
