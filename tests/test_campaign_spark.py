"""Notebook 05's evaluation from partial sums (segkit.campaign.partials, segkit.steps.spark_campaign).

The evaluation reads its per-recipient rows only through :func:`segkit.campaign.partials.evaluation_parts`:
(1) in pandas, the parts of any split of the rows (empty and one-row parts included) merge into the parts
of the whole, bit for bit, and the evaluation from them (every table of the result) equals the one of the
whole; the revenue variance is the exact one, correctly rounded, whatever the order of the rows; (2) on
Spark (the shared session, one tiny frame), the parts merged from the partitions equal the pandas parts.
(3) The campaign rows' checks (:func:`segkit.campaign.prepare.campaign_facts`) of parts holding whole customers
merge into the whole file's error, rows numbered in the whole file; on Spark the rows of a Parquet file give the
pandas error (the rows held for the checks released), and prepared per partition with labels at each send and retention flags joined, the pandas parts;
the saved cluster model's agreement counted per partition is the pandas count.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from segkit.campaign import CampaignSettings, arm_metrics, prepare_campaign
from segkit.campaign.evaluate import evaluate_parts
from segkit.campaign.partials import EvaluationParts, evaluation_parts

DIMS = ["rfm_segment", "lifecycle_stage"]
TABLES = ("results", "table", "srm", "roi", "targeting", "policy", "qini", "power", "campaigns", "pooled",
          "pooled_policy", "heterogeneity", "pooled_by_dimension")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Prepared rows of three campaigns (one without send time, one without revenue), two arms, flags with
    gaps, revenue of very different sizes (sums that floats would round differently by order), costs,
    retention flags with unknowns and two label columns ("unlabelled" included)."""
    rng = np.random.default_rng(5)
    n = 600
    campaign = rng.choice(["A", "B", "C"], n)
    raw = pd.DataFrame({
        "campaign_id": campaign, "customer_id": [f"K{i % 430:04d}" for i in range(n)],
        "arm": rng.choice(["email", "control"], n, p=[0.7, 0.3]),
        "sent_at": (pd.Timestamp("2024-03-01 09:00") + pd.to_timedelta(rng.integers(0, 3000, n), unit="min"))
        .where(campaign != "C"),
        "delivered": rng.choice([1.0, 0.0, np.nan], n, p=[0.85, 0.1, 0.05]),
        "opened": rng.choice([1.0, 0.0], n), "converted": rng.choice([1.0, 0.0, np.nan], n, p=[0.2, 0.75, 0.05]),
        "revenue": np.where(campaign == "B", 0.0, rng.choice([0.0, 0.1, 19.99, 1e9 + 0.3, 7.0], n,
                                                             p=[0.6, 0.1, 0.15, 0.05, 0.1])),
        "cost": rng.choice([0.01, 0.0, np.nan], n, p=[0.6, 0.3, 0.1])})
    raw = raw.drop_duplicates(["campaign_id", "customer_id"]).reset_index(drop=True)
    prep = prepare_campaign(raw)
    prep["retained"] = rng.choice([1.0, 0.0, np.nan], len(prep), p=[0.3, 0.6, 0.1])
    prep["rfm_segment"] = rng.choice(["Champions", "At Risk", "unlabelled"], len(prep))
    prep["lifecycle_stage"] = rng.choice(["new", "active", "lapsed"], len(prep))
    return prep


def random_lines(seed: int, n: int, *, customers: int, prefix: str, start: str, days: int,
                 amounts: list[float]) -> pd.DataFrame:
    """``n`` order lines (one per order) of ``customers`` customers ``<prefix>00``..., dated up to ``days`` days
    after ``start``, amounts drawn from ``amounts`` (a negative one: a refund), seeded."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": [f"{prefix}{i:02d}" for i in rng.integers(0, customers, n)],
                         "order_id": [f"o{i}" for i in range(n)],
                         "order_date": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, n), unit="D"),
                         "amount": rng.choice(amounts, n)})


def _splits(rows: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """Customer-disjoint parts of ``rows`` in a shuffled order: an empty part, a one-row part, the rest."""
    rng = np.random.default_rng(seed)
    customers = rng.permutation(np.asarray(rows["customer_id"].unique(), dtype=object))
    lone = rows.index[rows.groupby("customer_id")["customer_id"].transform("size") == 1][0]
    cuts = np.sort(rng.choice(np.arange(1, len(customers)), 3, replace=False))
    parts = [rows.iloc[:0], rows.loc[[lone]]]
    rest = rows.drop(index=lone)
    for chunk in np.split(customers, cuts):
        part = rest[rest["customer_id"].isin(chunk)]
        parts.append(part.sample(frac=1.0, random_state=seed))
    return parts


def _assert_same_result(a, b) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    for dim, table in a.by_dimension.items():
        pd.testing.assert_frame_equal(table, b.by_dimension[dim], check_exact=True, obj=dim)
    assert (a.distinct_customers, a.warnings, a.retention_note) == (b.distinct_customers, b.warnings,
                                                                    b.retention_note)


@pytest.mark.parametrize("seed", [1, 2])
def test_parts_of_any_split_merge_into_the_whole_and_evaluate_the_same(rows, seed):
    whole = evaluation_parts(rows, DIMS)
    parts = [evaluation_parts(part, DIMS) for part in _splits(rows, seed)]
    merged = EvaluationParts.merge(parts)
    assert merged == whole
    assert merged.customers == rows["customer_id"].nunique() == whole.customers
    assert (merged.rows, merged.retention_unknown) == (len(rows), int(rows["retained"].isna().sum()))
    assert EvaluationParts.from_json(merged.to_json()) == whole
    settings = CampaignSettings(expected_split={"control": 0.3, "email": 0.7}, cost_per_send=0.01).validated()
    _assert_same_result(evaluate_parts(merged, settings, "rfm_segment", DIMS),
                        evaluate_parts(whole, settings, "rfm_segment", DIMS))


def test_merging_nothing_or_empty_parts_gives_no_cells(rows):
    empty = EvaluationParts.merge([evaluation_parts(rows.iloc[:0], DIMS)])
    assert EvaluationParts.merge([]) == empty
    assert (len(empty.cells), empty.rows, empty.customers, len(empty.first_sent)) == (0, 0, 0, 0)


def test_revenue_mean_and_variance_are_exact_and_do_not_depend_on_row_order(rows):
    metric = "revenue_per_recipient"
    first = arm_metrics(rows).query("metric == @metric")
    shuffled = arm_metrics(rows.sample(frac=1.0, random_state=9).reset_index(drop=True)).query("metric == @metric")
    pd.testing.assert_frame_equal(first.reset_index(drop=True), shuffled.reset_index(drop=True), check_exact=True)
    cell = rows[(rows["campaign_id"] == "A") & (rows["arm"] == "email")]["revenue"].dropna()
    exact = [Fraction(float(v)) for v in cell]
    mean = sum(exact) / len(exact)
    var = sum((v - mean) ** 2 for v in exact) / (len(exact) - 1)
    got = first[(first["campaign_id"] == "A") & (first["segment"] == "All customers") & (first["arm"] == "email")]
    assert (float(got["value"].iloc[0]), float(got["var"].iloc[0])) == (float(mean), float(var))


def test_spark_partitions_merge_into_the_pandas_parts(rows):
    from segkit.data.spark import pandas_warnings_quiet, spark_session
    from segkit.steps.spark_campaign import evaluation_parts_on_spark

    text = {c: "object" for c in ("campaign_id", "customer_id", "arm", "segment", *DIMS)}
    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(rows.astype(text))
    got = evaluation_parts_on_spark(frame, DIMS, partitions=3)
    assert got == evaluation_parts(rows, DIMS)
    assert got.customers == rows["customer_id"].nunique()


def assert_same_send_labels(got: pd.DataFrame, expected: pd.DataFrame, kinds: int) -> None:
    """Spark's labels at each send (``campaign_id, customer_id, label``) are the pandas refits' (any order), of
    at least ``kinds`` different labels, for the sends MID and LATE only (EARLY precedes every purchase)."""
    order = ["campaign_id", "customer_id"]
    got = got.astype(str).sort_values(order).reset_index(drop=True)
    expected = expected[["campaign_id", "customer_id", "label"]].astype(str).sort_values(order).reset_index(drop=True)
    assert expected["label"].nunique() >= kinds and set(got["campaign_id"]) == {"MID", "LATE"}
    pd.testing.assert_frame_equal(got, expected)


def test_retention_on_spark_equals_the_pandas_flags():
    """Rows of two campaigns: one row without a send time (its campaign's first is used), a campaign without
    any (unknown), a window that ends after as_of (unknown), purchases before, inside and after the window, a
    returned order (no purchase) and a customer id with spaces."""
    from segkit.campaign import retention_flags
    from segkit.data.spark import SparkLines, pandas_warnings_quiet, spark_session
    from segkit.steps.spark_campaign import ROW_ID, retention_on_spark

    lines = pd.DataFrame({
        "customer_id": ["a", "a", "b", "c", "d", "e"], "order_id": ["1", "2", "3", "4", "5", "6"],
        "order_date": pd.to_datetime(["2024-02-20", "2024-03-05", "2024-03-20", "2024-03-03", "2024-03-04",
                                      "2024-04-25"]),
        "amount": [10.0, 12.0, 8.0, -5.0, 30.0, 9.0]})
    campaign = pd.DataFrame({
        "campaign_id": ["A", "A", "A", "A", "B", "B", "A"], "customer_id": ["a", "b", "c", " d", "a", "e", "e"],
        "sent_at": pd.to_datetime(["2024-03-01 09:00", None, "2024-03-01 09:00", "2024-03-01 10:00", None, None,
                                   "2024-04-20 08:00"])})
    expected = retention_flags(campaign, lines, days=14, as_of="2024-05-01")
    rows = campaign.assign(**{ROW_ID: np.arange(len(campaign), dtype=np.int64) * 7, "retained": np.nan})
    first = campaign.groupby("campaign_id")["sent_at"].min()
    on_spark = SparkLines(lines, session=spark_session())
    with pandas_warnings_quiet():
        frame = on_spark.session.createDataFrame(rows)
        got = retention_on_spark(on_spark, frame, first.to_dict(), 14,
                                 pd.Timestamp("2024-05-01")).toPandas().sort_values(ROW_ID)
    np.testing.assert_array_equal(expected.to_numpy(dtype=float), [1.0, 0.0, 0.0, 1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(got["retained"].to_numpy(dtype=float), expected.to_numpy(dtype=float))
    assert got[ROW_ID].tolist() == rows[ROW_ID].tolist()


def test_rfm_segments_at_each_send_on_spark_equal_the_pandas_refits():
    """Two sends over the order lines of 60 customers (ties in frequency and spend, a refund): each send's
    scorer is fitted on the driver from value distributions and the labels come from the executors; they
    equal rfm_segments of each send's base refitted in pandas. A send before every purchase has no labels."""
    from segkit.campaign import rfm_segments
    from segkit.data.engine import OrderLines
    from segkit.data.spark import SparkLines, pandas_warnings_quiet, spark_session
    from segkit.rfm import RFMSettings
    from segkit.steps.spark_campaign import rfm_segments_on_spark

    lines = random_lines(8, 400, customers=60, prefix="c", start="2023-01-01", days=500,
                         amounts=[10.0, 25.5, 40.0, 99.99, -10.0])
    sends = pd.DataFrame({"campaign_id": ["EARLY", "MID", "LATE"],
                          "send_date": pd.to_datetime(["2022-06-01", "2023-09-01", "2024-04-01"])})
    settings = RFMSettings.from_config(None)
    bases = OrderLines(lines).rfm_at_send(sends)
    expected = pd.concat([rfm_segments(bases[bases["campaign_id"] == cid].drop(columns="campaign_id"), settings)
                          .rename("label").reset_index().assign(campaign_id=cid) for cid in ("MID", "LATE")])
    with pandas_warnings_quiet():
        got = rfm_segments_on_spark(SparkLines(lines, session=spark_session()), sends, settings, partitions=3).toPandas()
    assert_same_send_labels(got, expected, kinds=4)


def test_a_sends_refit_on_spark_is_as_quiet_as_the_pandas_refit():
    """30 one-order customers before the send: frequency has one level for five bins. The pandas refit
    (rfm_segments) keeps its RFMWarning to itself; the Spark refit must too, else 05 on Spark shows a warning
    the DuckDB run does not (found by review)."""
    import warnings

    from segkit.campaign import rfm_segments
    from segkit.data.engine import OrderLines
    from segkit.data.spark import SparkLines, pandas_warnings_quiet, spark_session
    from segkit.rfm import RFMSettings
    from segkit.steps.spark_campaign import rfm_segments_on_spark

    lines = pd.DataFrame({"customer_id": [f"c{i:02d}" for i in range(30)], "order_id": [f"o{i}" for i in range(30)],
                          "order_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(30) * 3, unit="D"),
                          "amount": np.arange(30) * 5.0 + 10})
    sends = pd.DataFrame({"campaign_id": ["S"], "send_date": [pd.Timestamp("2024-06-01")]})
    settings = RFMSettings.from_config(None)
    with warnings.catch_warnings(record=True) as on_duckdb:
        warnings.simplefilter("always")
        want = rfm_segments(OrderLines(lines).rfm_at_send(sends).drop(columns="campaign_id"), settings)
    with warnings.catch_warnings(record=True) as on_spark:
        warnings.simplefilter("always")
        with pandas_warnings_quiet():
            got = rfm_segments_on_spark(SparkLines(lines, session=spark_session()), sends, settings,
                                        partitions=2).toPandas()
    assert got.sort_values("customer_id")["label"].tolist() == want.sort_index().tolist() and len(want) == 30
    assert [str(w.message) for w in on_duckdb] == []
    assert [str(w.message) for w in on_spark if "score levels" in str(w.message)] == []


def test_lifecycle_stages_at_each_send_on_spark_equal_the_pandas_refits():
    """The stager refitted per send from the stage distributions of its buyers (partitions' values) and the
    first purchase day before it: the stages equal lifecycle_stages of each send's purchase days in pandas, also
    when a partition's rows come in Arrow batches that split a customer's days."""
    from segkit.campaign import lifecycle_stages
    from segkit.core.config import load_config
    from segkit.data.engine import OrderLines
    from segkit.data.spark import SparkLines, pandas_warnings_quiet, spark_session
    from segkit.lifecycle import LifecycleSettings
    from segkit.steps.spark_campaign import lifecycle_stages_on_spark

    lines = random_lines(21, 500, customers=80, prefix="c", start="2023-01-01", days=540,
                         amounts=[12.0, 30.0, 55.0, -12.0])
    sends = pd.DataFrame({"campaign_id": ["EARLY", "MID", "LATE"],
                          "send_date": pd.to_datetime(["2022-06-01", "2023-08-01", "2024-05-01"])})
    settings = LifecycleSettings.from_config(load_config()["lifecycle"])
    days = OrderLines(lines).purchase_days_at_send(sends)
    expected = pd.concat([
        lifecycle_stages(days[days["campaign_id"] == cid].drop(columns="campaign_id").reset_index(drop=True), day,
                         settings).rename("label").reset_index().assign(campaign_id=cid)
        for cid, day in zip(sends["campaign_id"][1:], sends["send_date"][1:])])
    on_spark = SparkLines(lines, session=spark_session())
    on_spark.session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")  # a customer's days in 2 batches
    with pandas_warnings_quiet():
        got = lifecycle_stages_on_spark(on_spark, sends, settings, partitions=3).toPandas()
    assert_same_send_labels(got, expected, kinds=3)


def test_segments_at_send_with_labels_given_per_send_equal_its_own_refits():
    """segments_at_send with the RFM and lifecycle labels of each send given (as Spark computes them: buyers
    before each send, here those of the pandas refits, reduced to the recipients) labels every recipient as its
    own refits do: "no purchase before send" for recipients without a label, "unlabelled" without a send time."""
    from segkit.campaign import NO_PURCHASE, UNLABELLED, lifecycle_stages, rfm_segments, segments_at_send
    from segkit.campaign.prepare import send_table
    from segkit.core.config import load_config
    from segkit.data.engine import OrderLines
    from segkit.lifecycle import LifecycleSettings
    from segkit.rfm import RFMSettings

    lines = random_lines(3, 300, customers=50, prefix="c", start="2023-01-01", days=500,
                         amounts=[10.0, 30.0, 75.0])
    campaign = pd.DataFrame({"campaign_id": ["A"] * 30 + ["B"] * 20 + ["C"] * 5,
                             "customer_id": [f"c{i:02d}" for i in range(30)] + [f"c{i:02d}" for i in range(35, 55)]
                             + ["c01", "c02", "c03", "c04", "c05"],
                             "sent_at": [pd.Timestamp("2023-10-02 09:00")] * 30 + [pd.Timestamp("2024-03-05 08:00")] * 20
                             + [pd.NaT] * 5})
    rfm_s, life_s = RFMSettings.from_config(None), LifecycleSettings.from_config(load_config()["lifecycle"])
    dims = ["rfm_segment", "lifecycle_stage"]
    sends = send_table(campaign)
    tables = OrderLines(lines)
    bases, days = tables.rfm_at_send(sends), tables.purchase_days_at_send(sends)
    given = {
        "rfm_segment": pd.concat([rfm_segments(bases[bases["campaign_id"] == c].drop(columns="campaign_id"), rfm_s)
                                  .rename("label").reset_index().assign(campaign_id=c) for c in sends["campaign_id"]]),
        "lifecycle_stage": pd.concat([lifecycle_stages(days[days["campaign_id"] == c].drop(columns="campaign_id")
                                                       .reset_index(drop=True), d, life_s)
                                      .rename("label").reset_index().assign(campaign_id=c)
                                      for c, d in zip(sends["campaign_id"], sends["send_date"])])}
    recipients = set(zip(campaign["campaign_id"], campaign["customer_id"]))
    given = {dim: g[[k in recipients for k in zip(g["campaign_id"], g["customer_id"])]] for dim, g in given.items()}
    expected = segments_at_send(campaign, lines, dims, rfm_settings=rfm_s, lifecycle_settings=life_s)
    got = segments_at_send(campaign, lines, dims, rfm_settings=rfm_s, lifecycle_settings=life_s, given=given)
    pd.testing.assert_frame_equal(got, expected)
    assert (expected["rfm_segment"] == NO_PURCHASE).any() and (expected["lifecycle_stage"] == UNLABELLED).sum() == 5


# --------------------------------------------------------------------------- K2: the campaign rows on the executors
def _campaign_file_rows() -> pd.DataFrame:
    """Raw campaign rows of three campaigns: ids with spaces, a campaign whose only non-zero amount is in one
    customer's row (it records revenue everywhere), one without any (revenue not recorded), one without send
    times, text flags, costs."""
    n = 40
    return pd.DataFrame({
        "campaign_id": (["A", " A"] * 8 + ["B"] * 14 + ["C"] * 10),
        "customer_id": ([f"k{i:02d}" for i in range(16)] + [f" k{i:02d}" for i in range(14)]
                        + [f"k{i:02d}" for i in range(10)]),
        "arm": (["email", "control"] * 20),
        "sent_at": [pd.Timestamp("2024-03-01 09:00") + pd.Timedelta(minutes=i) for i in range(30)] + [pd.NaT] * 10,
        "opened": (["yes", "no", "", None] * 10),
        "revenue": [0.0] * 5 + [19.5] + [0.0] * 24 + [None, 3.0, 0.0, -2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        "cost": [0.01] * n})


def _customer_parts(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Parts of ``rows`` that hold every row of their customers (stripped ids), each shuffled."""
    key = rows["customer_id"].astype("string").str.strip()
    return [rows[key.isin(chunk).to_numpy()].sample(frac=1.0, random_state=3)
            for chunk in (["k00", "k03", "k05"], ["k01", "k02"], [f"k{i:02d}" for i in range(4, 16) if i != 5])]


def _broken(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``rows`` with one kind of problem at rows far apart (so that parts hold different first rows)."""
    out = rows.copy()
    if kind == "empty":
        out.loc[[33, 7, 21], "arm"] = [" ", None, ""]
    elif kind == "repeated":
        out.loc[[20, 38], "customer_id"] = ["k05", " k02"]  # B's k05 twice; C's k02 twice
    elif kind == "flag":
        out.loc[[35, 4, 12, 13, 17, 26, 29], "opened"] = ["maybe", "2", "x", "q", "z", "w", "v"]
    else:
        out["revenue"] = out["revenue"].astype(object)
        out.loc[[31, 9], "revenue"] = ["12 EUR", "n/a"]
    return out


@pytest.mark.parametrize("kind", ["empty", "repeated", "flag", "number"])
def test_checks_of_customer_parts_merge_into_the_whole_files_error(kind):
    from segkit.campaign.prepare import CampaignFacts, campaign_facts
    from segkit.core.errors import DataError

    rows = _broken(_campaign_file_rows(), kind)
    with pytest.raises(DataError) as whole:
        prepare_campaign(rows, source="campaign.csv")
    parts = [campaign_facts(part, numbers=part.index.to_numpy()) for part in _customer_parts(rows)]
    merged = CampaignFacts.merge([CampaignFacts.from_json(p.to_json()) for p in parts])
    assert str(merged.error("campaign.csv")) == str(whole.value)
    assert merged.rows == len(rows) and (kind != "flag" or "(and 2 more)" in str(whole.value))


def test_parts_prepared_with_the_whole_files_revenue_flags_are_the_wholes_rows():
    """Campaign A records revenue through one row (19.5 in k05's): a part without it prepares A's revenue as 0, not
    as "not recorded", once given the merged flags; B records none; C has no send time (first_sent None)."""
    from segkit.campaign.prepare import CampaignFacts, campaign_facts

    rows = _campaign_file_rows()
    whole = prepare_campaign(rows)
    merged = CampaignFacts.merge([campaign_facts(p, numbers=p.index.to_numpy()) for p in _customer_parts(rows)])
    assert merged == campaign_facts(rows)
    assert merged.revenue_recorded == {"A": True, "B": False, "C": True}
    assert merged.first_sent == {"A": pd.Timestamp("2024-03-01 09:00"), "B": pd.Timestamp("2024-03-01 09:16"),
                                 "C": None}
    for part in _customer_parts(rows):
        alone = prepare_campaign(part)
        given = prepare_campaign(part, revenue_recorded=merged.revenue_recorded)
        expected = whole.loc[part.index].reset_index(drop=True)
        for column in ("customer_id", "opened", "revenue", "cost", "sent_at"):
            pd.testing.assert_series_equal(given[column], expected[column], obj=column)
        in_a = (part["campaign_id"].str.strip() == "A").to_numpy()
        if in_a.any() and not (part.loc[in_a, "revenue"] > 0).any():  # this part alone would say A records none
            assert np.isnan(alone["revenue"].to_numpy(dtype=float)[in_a]).all()
            assert (given["revenue"].to_numpy()[in_a] == 0).all()


@pytest.fixture(scope="module")
def spark_lines():
    """Order lines of the k* customers on the shared session: purchases before, inside and after the sends'
    retention window, a refund."""
    from segkit.data.spark import SparkLines, spark_session

    lines = random_lines(12, 120, customers=16, prefix="k", start="2023-06-01", days=330,
                         amounts=[10.0, 35.0, 80.0, -10.0])
    return lines, SparkLines(lines, session=spark_session())


def test_campaign_rows_on_spark_raise_the_pandas_error_naming_rows_of_the_whole_file(tmp_path, spark_lines):
    from segkit.core.errors import DataError
    from segkit.steps.spark_campaign import campaign_rows_on_spark

    rows = _broken(_campaign_file_rows(), "repeated")
    rows.loc[[3, 27], "opened"] = ["perhaps", "2"]  # a later check fails too: the repeated customer is named
    path = tmp_path / "campaign.parquet"
    rows.to_parquet(path, row_group_size=7)  # times in nanoseconds (as segkit writes them), row groups
    with pytest.raises(DataError) as whole:
        prepare_campaign(pd.read_parquet(path), source="campaign.parquet")
    context = spark_lines[1].session.sparkContext._jsc
    held = set(context.getPersistentRDDs().keySet())
    with pytest.raises(DataError) as on_spark:
        campaign_rows_on_spark(spark_lines[1], str(path), "campaign.parquet", partitions=3)
    assert str(on_spark.value) == str(whole.value)
    assert set(context.getPersistentRDDs().keySet()) - held == set()  # the rows held for the checks: released
    assert str(whole.value).startswith("campaign.parquet: customer 'k05' appears more than once in campaign 'B' "
                                       "(rows 22, 23, 34, 40).")


def test_campaign_parts_on_spark_equal_the_pandas_evaluation_of_the_file(tmp_path, spark_lines):
    """The rows prepared per partition with labels at each send joined (a recipient without one: "no purchase
    before send"; campaign C without send time: "unlabelled") and retention flags from the relational core on
    Spark give the parts of evaluate_campaigns' rows, bit for bit."""
    from segkit.campaign import retention_flags
    from segkit.campaign.evaluate import labelled_rows
    from segkit.campaign.prepare import segments_at_send
    from segkit.steps.spark_campaign import campaign_parts_on_spark, campaign_rows_on_spark, send_labels_frame

    lines, on_spark = spark_lines
    path = tmp_path / "campaign.parquet"
    _campaign_file_rows().to_parquet(path, row_group_size=9)  # times in nanoseconds (as segkit writes them)
    campaign = pd.read_parquet(path)
    given = pd.DataFrame({"campaign_id": ["A", "A", "A", "B", "B"], "customer_id": ["k00", "k01", "k07", "k02", "k13"],
                          "label": ["Champions", "At Risk", "Champions", "Lost", "At Risk"]})
    labels = segments_at_send(campaign, lines, ["rfm_segment"], given={"rfm_segment": given})
    prepared = prepare_campaign(campaign)
    prepared["retained"] = retention_flags(prepared, lines, 30, "2024-04-20").to_numpy()
    expected = evaluation_parts(labelled_rows(prepared, labels, ["rfm_segment"]), ["rfm_segment"])
    rows, columns, facts = campaign_rows_on_spark(on_spark, str(path), "campaign.parquet", partitions=3)
    got = campaign_parts_on_spark(on_spark, rows, columns, facts, ["rfm_segment"],
                                  {"rfm_segment": send_labels_frame(on_spark.session, given)},
                                  retention=(30, pd.Timestamp("2024-04-20")), source="campaign.parquet", partitions=3)
    assert got == expected
    cells = expected.cells_of("rfm_segment")
    assert {"Champions", "no purchase before send", "unlabelled"} <= set(cells["segment"])
    assert expected.retention_unknown == 10 and 0 < (prepared["retained"] == 1).sum()


def test_the_saved_cluster_models_agreement_counted_per_partition_is_the_pandas_count(tmp_path):
    from segkit.cluster import clusters_frame, cluster_customers
    from segkit.data.spark import spark_session
    from segkit.steps.spark_campaign import cluster_agreement, cluster_agreement_on_spark

    rng = np.random.default_rng(4)
    table = pd.DataFrame({"customer_id": [f"c{i}" for i in range(30)],
                          "frequency": np.r_[rng.integers(1, 3, 20), rng.integers(9, 14, 10)].astype(float)})
    fit = cluster_customers(table, seed=0, feature_set="rfm", k=2, run_selection=False, run_stability=False)
    clusters = clusters_frame(fit)
    other = clusters["cluster_name"].iloc[-1]
    clusters.loc[[0, 1, 2], "cluster_name"] = other  # three customers 03 named otherwise
    clusters.to_parquet(tmp_path / "clusters.parquet", row_group_size=8)
    expected = cluster_agreement(fit.model, clusters)
    assert expected == (27, 30)
    spark_session().conf.set("spark.sql.files.maxPartitionBytes", "2000")  # several partitions of the file
    try:
        assert cluster_agreement_on_spark(spark_session(), str(tmp_path / "clusters.parquet"), fit.model) == expected
    finally:
        spark_session().conf.unset("spark.sql.files.maxPartitionBytes")
