"""04's holdout check on a seeded sample of customers (segkit.steps.lifecycle_holdout; issue 17).

The check reads the purchase days of at most ``lifecycle.holdout_sample`` customers, picked by seeded
position in ``customer_id`` order among every customer with a purchase day before ``as_of`` as known at
``as_of``, at the cut-off or at the earlier cut-off. On lines of 3,000 customers (orders and cancellation
documents that take some of them back, later cancellations among them): (a) with a cap of 1,000 the DuckDB
path (the kernel's tables) and the Spark path (picked and semi-joined on the executors; one Spark pass, the
shared session) read the same customers' rows and give the same check, and on Spark no collected result
holds more than the sample's customers; (b) with the cap above the customers the check is
run_holdout_check of every customer, bit for bit; (c) the sample's size is recorded and said in the notes,
never when every customer was read; a bad cap is a ConfigError.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from segkit.core.config import load_config
from segkit.core.errors import ConfigError
from segkit.data.bounded import sample_positions
from segkit.data.engine import OrderLines
from segkit.lifecycle import HoldoutCheck, LifecycleSettings, run_holdout_check
from segkit.steps import lifecycle_holdout, sources
from segkit.steps.lifecycle import calibration_note, holdout_model_note
from segkit.steps.lifecycle_holdout import (
    customers_of,
    holdout_check_for,
    holdout_days,
    holdout_inputs,
    holdout_orders,
    sample_note,
    sample_record,
)
from segkit.steps.sources import kept_value_for, purchase_days_for

AS_OF = pd.Timestamp("2025-01-01")
SEED = 7
CAP = 1000
CONFIG = load_config()["lifecycle"]
SETTINGS = LifecycleSettings.from_config(CONFIG)  # holdout_sample 200,000: every customer here
SAMPLED = LifecycleSettings.from_config({**CONFIG, "holdout_sample": CAP})


def order_lines(customers: int = 3000, seed: int = 5) -> pd.DataFrame:
    """Canonical lines of ``customers`` buyers over two years: orders at customer-specific rates until they drop
    out, and cancellation documents (``C…``, the same amount) taking back 8 % of the orders 1-60 days later."""
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31")
    span = (end - start).days
    rows = []
    for i in range(customers):
        customer, day = f"c{i:05d}", int(rng.integers(0, span))
        rate, alive = rng.gamma(1.5, 1 / 60), rng.uniform(0.5, 0.98)
        n = 0
        while day <= span:
            n += 1
            order_id, amount = f"{i:05d}-{n}", float(np.round(rng.lognormal(3.5, 0.7), 2))
            when = start + pd.Timedelta(days=day, hours=int(rng.integers(8, 20)))
            rows.append((customer, order_id, when, amount))
            if rng.random() < 0.08:
                rows.append((customer, f"C{order_id}", when + pd.Timedelta(days=int(rng.integers(1, 60))), -amount))
            if rng.random() > alive:
                break
            day += 1 + int(rng.exponential(1 / rate))
    lines = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount"])
    return lines[lines["order_date"] <= end].reset_index(drop=True)


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return order_lines()


@pytest.fixture(scope="module")
def duck(lines) -> SimpleNamespace:
    """A run context whose clean lines are ``lines`` on DuckDB (sources.run_lines patched per test)."""
    return SimpleNamespace(as_of=AS_OF, seed=SEED, engine=OrderLines(lines))


@pytest.fixture
def on_duckdb(duck, monkeypatch):
    monkeypatch.setattr(sources, "run_lines", lambda ctx: ctx.engine)
    return duck


def orders_of(ctx) -> pd.DataFrame:
    """The kernel's purchase days before as_of, spend-scaled, as build_lifecycle_artifacts hands them over."""
    return holdout_orders(purchase_days_for(ctx, AS_OF), kept_value_for(ctx, AS_OF))


def everyone(ctx) -> pd.Index:
    """Every customer with a purchase day before as_of as known at as_of, at the cut-off or the earlier one."""
    ids = set(purchase_days_for(ctx, AS_OF)["customer_id"].astype(str))
    for day in holdout_days(AS_OF, SETTINGS):
        ids |= set(purchase_days_for(ctx, day)["customer_id"].astype(str))
    return pd.Index(sorted(ids), dtype="string")


def read_customers(inputs) -> set[str]:
    return set().union(*(set(frame["customer_id"].astype(str)) for frame in (inputs.orders, *inputs.seen.values())))


def assert_same_check(got: HoldoutCheck, expected: HoldoutCheck, exact: bool = True) -> None:
    """Every table, number, choice and text of two checks equal (``exact``: bit for bit, else 1e-9 relative)."""
    for name in ("by_frequency", "calibration", "calibration_bgnbd", "by_stage", "evaluation"):
        assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=exact, rtol=1e-9, obj=name)
    assert list(got.deciles) == list(expected.deciles)
    for name, table in expected.deciles.items():
        assert_frame_equal(got.deciles[name], table, check_exact=exact, rtol=1e-9, obj=f"deciles {name}")
    np.testing.assert_allclose(list(got.errors.values()), list(expected.errors.values()), rtol=0 if exact else 1e-9)
    assert (got.cutoff, got.days, got.warning, got.season) == (expected.cutoff, expected.days, expected.warning,
                                                               expected.season)
    for name in ("choice", "reported_choice"):
        mine, theirs = getattr(got, name), getattr(expected, name)
        assert (mine.variant, mine.base, mine.calibrate_chance) == (theirs.variant, theirs.base, theirs.calibrate_chance)
        for maps in ("purchase_map", "alive_map"):
            a, b = getattr(mine, maps), getattr(theirs, maps)
            assert (a is None) == (b is None), f"{name}.{maps}"
            if a is not None:
                a, b = a.to_dict(), b.to_dict()
                assert list(a) == list(b), f"{name}.{maps}"
                for key in b:
                    if isinstance(b[key], (list, float)):
                        np.testing.assert_allclose(a[key], b[key], rtol=0 if exact else 1e-9, err_msg=f"{name}.{maps}")
                    else:
                        assert a[key] == b[key], f"{name}.{maps}.{key}"
    assert got.reported_from == expected.reported_from


def test_with_the_cap_above_the_customers_the_check_is_the_check_of_every_customer_bit_for_bit(on_duckdb):
    ctx = on_duckdb
    orders = orders_of(ctx)
    expected = run_holdout_check(orders, AS_OF, SETTINGS, seen_at=lambda day: purchase_days_for(ctx, day))
    got = holdout_check_for(ctx, AS_OF, SETTINGS, orders)
    assert expected.calibration is not None and expected.choice is not None and expected.reported_choice is not None
    assert_same_check(got, expected, exact=True)
    customers = len(everyone(ctx))
    # every customer read, those whose purchases before a cut-off were cancelled later among them
    assert got.customers == got.sample_customers == customers > len(customers_of(orders)) > 2500
    assert not got.sampled
    assert sample_note(got) == "" and sample_record(got) == {}
    assert "sample" not in holdout_model_note(got) and "sample" not in calibration_note(SimpleNamespace(holdout_check=got))


def test_a_capped_check_reads_the_seeded_sample_and_says_so(on_duckdb):
    ctx = on_duckdb
    orders = orders_of(ctx)
    ids = everyone(ctx)
    expected_sample = set(ids[sample_positions(len(ids), CAP, SEED)])
    inputs = holdout_inputs(orders, {day: purchase_days_for(ctx, day) for day in holdout_days(AS_OF, SAMPLED)},
                            CAP, SEED)
    assert (inputs.customers, inputs.sample_customers) == (len(ids), CAP)
    assert read_customers(inputs) == expected_sample  # every sampled customer is read, nobody else
    # each sampled customer's rows whole, as the kernel holds them
    kept = orders["customer_id"].astype(str).isin(expected_sample).to_numpy()
    assert_frame_equal(inputs.orders, orders[kept])
    check = holdout_check_for(ctx, AS_OF, SAMPLED, orders)
    assert (check.customers, check.sample_customers) == (len(ids), CAP) and check.sampled
    judged = int(check.by_frequency.set_index("frequency_bucket").loc["all", "customers"])
    assert 0 < judged <= CAP and int(check.calibration["customers"].sum()) == judged
    assert_same_check(check, run_holdout_check(inputs.orders, AS_OF, SAMPLED, seen_at=inputs.seen_at))
    said = f"Judged on a seeded sample of 1,000 of {len(ids):,} customers (`lifecycle.holdout_sample`)"
    assert sample_note(check).startswith(said)
    assert holdout_model_note(check).endswith(f"- {sample_note(check)}")
    assert calibration_note(SimpleNamespace(holdout_check=check)).endswith(f" {sample_note(check)}")
    assert sample_record(check) == {"sample_customers": CAP, "customers": len(ids)}


def test_the_cap_is_a_whole_number_of_at_least_1000_and_null_is_refused_on_spark():
    for bad in (10, 2500.5, True, "all"):
        with pytest.raises(ConfigError, match=r"lifecycle.holdout_sample = .*whole number >= 1000"):
            LifecycleSettings.from_config({**CONFIG, "holdout_sample": bad})
    whole = LifecycleSettings.from_config({**CONFIG, "holdout_sample": 2.5e5}).holdout_sample  # as holdout_months: 3.0
    assert whole == 250_000 and isinstance(whole, int)
    every = LifecycleSettings.from_config({**CONFIG, "holdout_sample": None})
    assert every.holdout_sample is None and SETTINGS.holdout_sample == 200_000
    with pytest.raises(ConfigError, match="lifecycle.holdout_sample is null.*set lifecycle.holdout_sample"):
        lifecycle_holdout.holdout_inputs_on_spark(SimpleNamespace(as_of=AS_OF, seed=SEED), AS_OF, every)


def test_on_spark_the_check_reads_the_same_sample_and_collects_no_other_customer(lines, on_duckdb, monkeypatch):
    """One Spark pass: the inputs Spark collects are the DuckDB path's (same customers, same rows, the kept
    value's scaling included), the check is the same, and every collected result holds at most the sample's
    1,000 customers (a collect of the purchase days of everyone would hold 2,900)."""
    from pyspark.sql.classic.dataframe import DataFrame  # the frames of a local session

    from segkit.data.spark import SparkOrderLines, spark_session

    ctx = on_duckdb
    orders = orders_of(ctx)
    duck_inputs = holdout_inputs(orders, {day: purchase_days_for(ctx, day) for day in holdout_days(AS_OF, SAMPLED)},
                                 CAP, SEED)
    duck_check = run_holdout_check(duck_inputs.orders, AS_OF, SAMPLED, seen_at=duck_inputs.seen_at)
    everyone_count = duck_inputs.customers

    spark_ctx = SimpleNamespace(as_of=AS_OF, seed=SEED, engine=SparkOrderLines(lines, session=spark_session()))
    read = []
    inputs_on_spark = lifecycle_holdout.holdout_inputs_on_spark

    def recorded(*args):
        read.append(inputs_on_spark(*args))
        return read[-1]
    monkeypatch.setattr(lifecycle_holdout, "holdout_inputs_on_spark", recorded)
    collected: list[tuple[str, tuple[str, ...], int, int]] = []  # action, columns, rows, customers
    for name in ("collect", "toPandas", "toArrow", "take", "head", "tail"):
        action = getattr(DataFrame, name)

        def spied(frame, *args, __action=action, __name=name, **kwargs):
            result = __action(frame, *args, **kwargs)
            rows = result.to_pandas() if hasattr(result, "to_pandas") else (
                result if isinstance(result, pd.DataFrame) else pd.DataFrame(
                    [r.asDict() for r in (result if isinstance(result, list) else [result]) if r is not None]))
            ids = rows["customer_id"].nunique() if "customer_id" in rows.columns else 0
            collected.append((__name, tuple(frame.columns), len(rows), ids))
            return result
        monkeypatch.setattr(DataFrame, name, spied)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # pyspark's about pandas 3 reaches no notebook
        spark_check = holdout_check_for(spark_ctx, AS_OF, SAMPLED, None)

    (spark_inputs,) = read
    assert (spark_inputs.customers, spark_inputs.sample_customers) == (everyone_count, CAP)
    assert read_customers(spark_inputs) == read_customers(duck_inputs)
    assert_frame_equal(spark_inputs.orders.reset_index(drop=True), duck_inputs.orders.reset_index(drop=True),
                       check_categorical=False)
    for day, days in duck_inputs.seen.items():
        assert_frame_equal(spark_inputs.seen[day].reset_index(drop=True), days.reset_index(drop=True),
                           check_categorical=False, obj=str(day.date()))
    assert_same_check(spark_check, duck_check)
    assert (spark_check.customers, spark_check.sample_customers) == (everyone_count, CAP)

    per_customer = [(name, columns) for name, columns, rows, ids in collected if ids]
    assert per_customer == [("toPandas", ("customer_id", "position")),
                            *[("toPandas", ("customer_id", "day", "amount", "orders"))] * 3,
                            ("toPandas", ("customer_id", "monetary_total"))], collected
    assert max(ids for *_, ids in collected) == CAP < everyone_count
    assert sum(rows for _, columns, rows, _ in collected if "day" in columns) == (
        len(duck_inputs.orders) + sum(len(days) for days in duck_inputs.seen.values()))
