"""Notebook 03's aggregates (segkit.cluster.ClusterTally): one definition, applied to the whole table
(the pandas path) or to every partition and merged (Spark): the same tables either way."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from segkit.cluster import (
    ClusterTally,
    cluster_customers,
    cluster_tally,
    naming_scores,
    naming_scores_from,
    profiles_of,
    segment_counts,
    segment_crosstab,
    segment_shares,
)
from segkit.data.distribution import DistributionNeeds, ValueDistribution, exact_mean, exact_sums


def _table(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"c{i:04}" for i in range(n)],
        "recency_days": rng.integers(1, 400, n).astype(float),
        "frequency": rng.integers(1, 12, n).astype(float),
        "monetary_total": rng.gamma(2.0, 150.0, n),
        "median_days_between_orders": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(5, 90, n)),
        "tenure_days": rng.integers(30, 900, n).astype(float),
        "region": rng.choice(["North", "South", "East", None], n, p=[0.5, 0.3, 0.15, 0.05]),
        "acquisition_channel": rng.choice(["ads", "seo", "friend"], n),
    })


@pytest.fixture(scope="module")
def clustered():
    table = _table()
    result = cluster_customers(table, seed=3, feature_set="behaviour_and_profile", k=3, run_selection=False,
                               run_stability=False, run_projection=False)
    return table, result


def _inputs(table: pd.DataFrame, result) -> dict:
    X = result.features
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    rfm = pd.DataFrame({"customer_id": table["customer_id"].astype("string"),
                        "rfm_segment": np.where(table["frequency"] > 6, "Champions",
                                                np.where(table["recency_days"] > 200, "Lost", "Loyal"))})
    rfm.loc[::17, "rfm_segment"] = None  # some customers not scored
    labelled = result.assignments.merge(rfm, on="customer_id", how="left")
    return {"values": result.builder.imputed(table).reset_index(drop=True),
            "clusters": result.assignments["cluster"].to_numpy(),
            "numeric": result.builder.numeric_features_, "categorical": result.builder.categorical_features_,
            "revenue": table["monetary_total"].to_numpy(), "features": X[numeric].reset_index(drop=True),
            "observed": table[[c for c in numeric if c in table.columns]].notna().reset_index(drop=True),
            "segments": labelled, "rfm": rfm}


def _tally(inputs: dict, rows: np.ndarray) -> ClusterTally:
    return cluster_tally(inputs["values"].iloc[rows], inputs["clusters"][rows], inputs["numeric"],
                         inputs["categorical"], inputs["revenue"][rows], features=inputs["features"].iloc[rows],
                         observed=inputs["observed"].iloc[rows], segments=inputs["segments"].iloc[rows])


def _random_parts(n: int, parts: int, seed: int) -> list[np.ndarray]:
    """Random disjoint partitions of 0..n-1 (uneven, some small), each ascending like a Spark partition."""
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, parts, n)
    return [np.flatnonzero(owner == p) for p in range(parts)]


def test_the_whole_table_gives_the_tables_the_notebook_showed_before(clustered):
    table, result = clustered
    inputs = _inputs(table, result)
    whole = _tally(inputs, np.arange(len(table)))
    means, lifts, modes = profiles_of(whole)
    # the result's tables are the tally's, names added (bit for bit: the pandas path is this very code)
    pd.testing.assert_frame_equal(means, result.profiles.drop(columns="cluster_name"))
    pd.testing.assert_frame_equal(lifts, result.lifts.drop(columns="cluster_name"))
    pd.testing.assert_frame_equal(modes, result.categorical_profiles.drop(columns="cluster_name"))
    # and they are the exact means, correctly rounded (a float sum would depend on the order of the rows)
    v, cl = inputs["values"], inputs["clusters"]
    for column in ("monetary_total", "median_days_between_orders"):
        exact = [float(sum(map(Fraction, v.loc[cl == c, column])) / int((cl == c).sum())) for c in (1, 2, 3)]
        assert means[column].iloc[:-1].tolist() == exact
        assert means[column].iloc[-1] == float(sum(map(Fraction, v[column])) / len(v))
    np.testing.assert_allclose(means.iloc[:-1][inputs["numeric"]].to_numpy(),
                               v[inputs["numeric"]].groupby(cl).mean().to_numpy(), rtol=1e-14)
    assert means["customers"].tolist() == [*np.bincount(cl)[1:].tolist(), len(table)]
    region = modes[modes["feature"] == "region"].set_index("cluster")
    for c in (1, 2, 3):
        levels = v.loc[cl == c, "region"].astype(str).value_counts()
        top = sorted(levels.index[levels == levels.max()])[0]
        assert region.loc[c, "mode"] == top
        assert region.loc[c, "share_in_cluster"] == levels[top] / levels.sum()
    np.testing.assert_allclose(whole.standardised.to_numpy(), inputs["features"].groupby(cl).mean().to_numpy(),
                               rtol=1e-13, atol=1e-15)
    pd.testing.assert_frame_equal(segment_shares(whole.segments), segment_crosstab(result.assignments, inputs["rfm"]))


@pytest.mark.parametrize("parts,seed", [(2, 0), (5, 1), (17, 2)])
def test_partitions_merged_equal_the_whole_table(clustered, parts, seed):
    table, result = clustered
    inputs = _inputs(table, result)
    whole = _tally(inputs, np.arange(len(table)))
    pieces = [_tally(inputs, rows) for rows in _random_parts(len(table), parts, seed) if len(rows)]
    # a partition's tally travels as JSON text from the executor
    merged = ClusterTally.merge([ClusterTally.from_json(p.to_json()) for p in pieces])
    for got, want in zip(profiles_of(merged), profiles_of(whole)):  # bit for bit: the sums are exact
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    pd.testing.assert_frame_equal(merged.standardised, whole.standardised, check_exact=True)
    pd.testing.assert_frame_equal(merged.observed, whole.observed)
    pd.testing.assert_series_equal(merged.counts, whole.counts, check_names=False)
    got, want = segment_shares(merged.segments), segment_shares(whole.segments)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert merged.revenue_shares().tolist() == whole.revenue_shares().tolist()


def test_a_partition_without_a_cluster_or_a_level_adds_zeros():
    v = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, 20.0], "c": ["a", "a", "b", "z", "z"]})
    cl = np.array([1, 1, 1, 2, 2])
    first = cluster_tally(v.iloc[:3], cl[:3], ["x"], ["c"])   # cluster 1 only, levels a, b
    second = cluster_tally(v.iloc[3:], cl[3:], ["x"], ["c"])  # cluster 2 only, level z
    merged = ClusterTally.merge([first, second])
    assert merged.levels["c"].to_dict("index") == {1: {"a": 2, "b": 1, "z": 0}, 2: {"a": 0, "b": 0, "z": 2}}
    means, lifts, modes = profiles_of(merged)
    assert means["x"].tolist() == [2.0, 15.0, 7.2]
    assert modes[["cluster", "mode", "share_in_cluster", "share_in_base"]].values.tolist() == [
        [1, "a", 2 / 3, 0.4], [2, "z", 1.0, 0.4]]


def test_merge_refuses_no_customers_and_a_tie_takes_the_first_level_by_name():
    v = pd.DataFrame({"x": [1.0, 1.0], "c": ["b", "a"]})
    tally = cluster_tally(v, np.array([1, 1]), ["x"], ["c"])
    assert profiles_of(tally)[2]["mode"].tolist() == ["a"]
    assert profiles_of(tally)[1]["x"].tolist() == [1.0]
    empty = cluster_tally(v.iloc[:0], np.array([], dtype=int), ["x"], ["c"])
    assert ClusterTally.merge([empty, tally]) is tally
    with pytest.raises(ValueError, match="at least one part with customers"):
        ClusterTally.merge([empty])


def test_lift_is_empty_where_the_base_mean_is_zero():
    v = pd.DataFrame({"x": [0.0, 0.0, 0.0], "y": [1.0, 2.0, 3.0]})
    lifts = profiles_of(cluster_tally(v, np.array([1, 1, 2]), ["x", "y"]))[1]
    assert lifts["x"].isna().all()
    assert lifts["y"].tolist() == [0.75, 1.5]


def test_naming_scores_from_exact_medians_equal_the_pandas_medians(clustered):
    """The names read medians; on Spark they are exact order statistics (ValueDistribution)."""
    table, result = clustered
    inputs = _inputs(table, result)
    X, cl, seen = inputs["features"], inputs["clusters"], inputs["observed"]
    want = naming_scores(X, cl, seen)
    masked = X.where(pd.DataFrame({c: seen[c] if c in seen else True for c in X.columns}))

    def median(values: pd.Series) -> float:
        kept = values.dropna().to_numpy()
        return ValueDistribution.of_values(kept, DistributionNeeds(median=True)).median() if len(kept) else np.nan

    cluster_medians = pd.DataFrame({c: [median(masked.loc[cl == k, c]) for k in (1, 2, 3)] for c in X.columns},
                                   index=[1, 2, 3])
    base = pd.Series({c: median(masked[c]) for c in X.columns})
    tally = _tally(inputs, np.arange(len(table)))
    got = naming_scores_from(cluster_medians, base, tally.observed, tally.counts)
    pd.testing.assert_frame_equal(got, want, check_names=False)
    assert got["median_days_between_orders"].notna().any()


def test_segment_counts_count_unscored_customers():
    labelled = pd.DataFrame({"cluster": [1, 1, 2], "cluster_name": ["A", "A", "B"],
                             "rfm_segment": ["Lost", None, "Lost"]})
    counts = segment_counts(labelled)
    assert counts.to_dict("index") == {(1, "A"): {"Lost": 1, "Not scored": 1}, (2, "B"): {"Lost": 1, "Not scored": 0}}
    assert segment_shares(counts)[["cluster", "customers", "Lost", "Not scored"]].values.tolist() == [
        [1, 2, 0.5, 0.5], [2, 1, 1.0, 0.0]]


def test_on_spark_a_fit_on_every_customer_is_refused_before_any_spark_work():
    """``clustering.fit_sample: null`` would collect the whole customer table into the driver on Spark."""
    from segkit.cluster import ClusterSettings
    from segkit.core.errors import ConfigError
    from segkit.steps.cluster import spark_cluster_result

    settings = ClusterSettings({**ClusterSettings.from_config().raw, "fit_sample": None})
    with pytest.raises(ConfigError, match=r"clustering.fit_sample is null.*set clustering.fit_sample"):
        spark_cluster_result(None, None, {}, settings, 0)  # no frame: nothing on Spark is touched


def test_exact_sums_do_not_depend_on_the_order_or_the_split():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 1e-3, 500), rng.normal(0, 1e12, 20), [-0.0, 5e-324, np.nan]])
    values = pd.DataFrame({"x": x})
    groups = np.zeros(len(x), dtype=int)
    whole = exact_sums(values, groups, [0]).at[0, "x"]
    order = rng.permutation(len(x))
    shuffled = exact_sums(values.iloc[order], groups, [0]).at[0, "x"]
    halves = sum(exact_sums(values.iloc[part], groups[part], [0]).at[0, "x"] for part in np.array_split(order, 3))
    assert whole == shuffled == halves
    kept = x[~np.isnan(x)]
    assert exact_mean(whole, len(kept)) == float(sum(map(Fraction, kept)) / len(kept))
    assert np.isnan(exact_mean(0, 0))


def test_on_spark_03_without_rfm_parquet_names_the_notebook_to_run(tmp_path):
    from types import SimpleNamespace

    from segkit.cluster import ClusterSettings
    from segkit.core.errors import UpstreamMissingError
    from segkit.steps.cluster import spark_customer_table

    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "customers_clean.parquet").write_bytes(b"")
    ctx = SimpleNamespace(artifacts_dir=tmp_path / "artifacts", run_dir=tmp_path)
    with pytest.raises(UpstreamMissingError) as caught:
        spark_customer_table(ctx, ClusterSettings.from_config())  # stops before Spark starts
    assert str(caught.value) == ("03_clustering on Spark reads artifacts/rfm.parquet, which is missing. Run 02_rfm "
                                 f"with engine.kind: spark first (segkit run --only 02_rfm --out {tmp_path}).")


def test_a_pandas_function_may_return_pandas_3_strings_in_several_arrow_chunks_to_spark():
    """pd.concat of pandas 3 string frames gives columns of several Arrow chunks, and a filter keeping no row one
    of none, which Spark's Python worker refused ("Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array":
    03 on 30k customers stopped in its customer table): :func:`segkit.data.spark.frame_for_arrow` makes them one
    chunk, dtypes and values kept."""
    from segkit.data.spark import frame_for_arrow, pandas_warnings_quiet, spark_session

    def part(ids: list, flags: list) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": pd.array(ids, dtype="string"), "name": pd.Series(ids, dtype="str"),
                             "flag": pd.array(flags, dtype="bool[pyarrow]"), "x": np.arange(len(ids), dtype=float)})

    joined = pd.concat([part(["a", None], [True, None]), part(["c"], [False])], ignore_index=True)
    assert [joined[c].array.__arrow_array__().num_chunks for c in ("customer_id", "name", "flag")] == [2, 2, 2]
    ready = frame_for_arrow(joined)
    assert [ready[c].array.__arrow_array__().num_chunks for c in ("customer_id", "name", "flag")] == [1, 1, 1]
    assert ready.dtypes.equals(joined.dtypes) and ready.equals(joined)
    assert joined["customer_id"].array.__arrow_array__().num_chunks == 2  # the caller's frame is left as it was

    def no_rows(frame: pd.DataFrame) -> pd.DataFrame:  # each column filtered alone: Arrow arrays of no chunk
        return pd.DataFrame({c: frame[c][np.zeros(len(frame), dtype=bool)] for c in frame.columns})

    none = no_rows(joined)
    assert [none[c].array.__arrow_array__().num_chunks for c in ("customer_id", "name", "flag")] == [0, 0, 0]
    assert [frame_for_arrow(none)[c].array.__arrow_array__().num_chunks for c in ("customer_id", "name")] == [1, 1]

    def returned(batches):
        for _ in batches:
            both = pd.concat([part(["a", None], [True, None]), part(["c"], [False])], ignore_index=True)
            yield frame_for_arrow(both)
            yield frame_for_arrow(no_rows(both))

    session = spark_session()
    with pandas_warnings_quiet():
        rows = session.range(1).mapInPandas(returned, "customer_id string, name string, flag boolean, x double")
        got = [tuple(r) for r in rows.collect()]
    assert got == [("a", "a", True, 0.0), (None, None, None, 1.0), ("c", "c", False, 0.0)]


def _shop(tmp_path):
    """A tiny run folder on Spark: six buyers over four channels (two share columns + other), and one customer
    (``z``) who bought nothing but is the only one with a country and the only one with a campaign row."""
    from types import SimpleNamespace

    from segkit.data.relational import behaviour_of, frame_lines, rfm_of

    lines = pd.DataFrame({
        "customer_id": list("aabbccddeeff"),
        "order_id": [f"o{i}" for i in range(12)],
        "order_date": pd.to_datetime(["2024-01-05", "2024-03-01"] * 6),
        "amount": [10.0, 25.5, 8.0, 40.0, 120.0, 5.0, 60.0, 60.0, 9.5, 14.0, 300.0, 2.0],
        "channel": ["web", "web", "shop", "web", "app", "tel", "web", "shop", "shop", "shop", "app", "web"],
        "category": ["x", "y", "x", "x", "z", "y", "x", "x", "y", "z", "z", "x"],
    })
    customers = pd.DataFrame({"customer_id": pd.array([*"abcdef", "z"], dtype="string"),
                              "country": pd.array([None] * 6 + ["DE"], dtype="string")})
    campaign = pd.DataFrame({"customer_id": pd.array(["z"], dtype="string"), "arm": pd.array(["email"], dtype="string"),
                             "opened": [True], "clicked": [False]})
    as_of = pd.Timestamp("2024-06-01")
    with frame_lines(lines) as duck:
        rfm = rfm_of(duck, as_of)
        behaviour = behaviour_of(duck, as_of, 2, rfm)
    art = tmp_path / "artifacts"
    art.mkdir()
    rfm.to_parquet(art / "rfm.parquet")
    customers.to_parquet(art / "customers_clean.parquet")
    campaign.to_parquet(art / "campaign_clean.parquet")
    ctx = SimpleNamespace(artifacts_dir=art, run_dir=tmp_path, as_of=str(as_of.date()), section=lambda name: {})
    return ctx, lines, behaviour, customers, campaign


def test_on_spark_03s_columns_come_from_every_customer_and_campaign_row_as_in_pandas(tmp_path, monkeypatch):
    """Review finding 2: only a customer without a purchase has a country and a campaign row. pandas decides the
    columns from all of customers and campaign (``emails_received, open_rate, click_rate, country`` exist, empty
    or 0 for the buyers); so must every Spark bucket, whatever its buyers hold. Finding 7: the channel pivot is
    :func:`segkit.data.relational.channel_counts` in both (two share columns and ``other``)."""
    import segkit.steps.cluster as step
    import segkit.steps.sources as sources
    from segkit.cluster import ClusterSettings
    from segkit.data.bounded import FrameSummaries
    from segkit.data.spark import SparkOrderLines, pandas_warnings_quiet, spark_session
    from segkit.data.spark_sample import SparkSummaries
    from segkit.features import customer_table

    ctx, lines, behaviour, customers, campaign = _shop(tmp_path)
    settings = ClusterSettings.from_config({"max_channels": 2})
    monkeypatch.setattr(sources, "run_lines", lambda _ctx: SparkOrderLines(lines, session=spark_session()))
    monkeypatch.setattr(step, "SPARK_PARTITIONS", 5)  # buckets holding z alone, or buyers alone
    expected = customer_table(None, customers, campaign, ctx.as_of, max_channels=2,
                              behaviour=behaviour)
    assert {"emails_received", "open_rate", "click_rate", "country", "channel_share_web",
            "channel_share_shop", "channel_share_other"} <= set(expected.columns)
    frame, attrs = step.spark_customer_table(ctx, settings)
    try:
        with pandas_warnings_quiet():
            got = frame.toPandas().sort_values("customer_id").reset_index(drop=True)
        assert list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert attrs["original_values"] == expected.attrs["original_values"]
        fs = settings.feature_set
        on_spark = settings.builder(fs).fit_summaries(SparkSummaries(frame, attrs))
        in_pandas = settings.builder(fs).fit_summaries(FrameSummaries(expected))
        assert on_spark.skipped_features_ == in_pandas.skipped_features_
        assert "country" in on_spark.skipped_features_  # the buyers' country is empty: a note, as in pandas
    finally:
        frame.unpersist()


def test_on_spark_the_explorers_quick_looks_are_fitted_on_the_same_customers_and_count_every_customer():
    """Review finding 3: with more buyers than clustering.fit_sample the Spark result holds only the samples'
    rows; the explorer's quick looks must still be the one-machine ones: fitted on the selection sample of the
    whole table (not a sample of the sample) and profiling every customer (not the sample's)."""
    from segkit.cluster import ClusterSettings
    from segkit.data.spark import pandas_warnings_quiet, spark_session
    from segkit.steps.cluster import cluster_view, spark_cluster_result, view_choices

    table = _table(300, seed=5)
    base = ClusterSettings.from_config({
        "k_min": 2, "k_max": 3, "n_init": 2, "projection_sample": 50,
        "selection": {"sample_size": 90, "n_init": 2, "silhouette_sample": 60},
        "stability": {"runs": 2, "n_init": 1, "max_customers": 100}})
    kept = {name: base.raw["feature_sets"][name] for name in (base.feature_set, "rfm")}  # few quick looks: few jobs
    settings = ClusterSettings({**base.raw, "feature_sets": kept,
                                "fit_sample": 120})  # below the config's floor of 1,000: a tiny table
    expected = cluster_customers(table, settings, seed=4)
    with pandas_warnings_quiet():
        frame = spark_session().createDataFrame(table).persist()
    try:
        got = spark_cluster_result(None, frame, {"as_of": None, "original_values": {}}, settings, 4)
    finally:
        frame.unpersist()
    assert len(got.table) < len(table) == got.info["customers"]  # the driver held the samples' rows only
    choices = view_choices(expected)
    assert view_choices(got) == choices and len(choices) == 3
    assert sorted(got.views) == sorted(c for c in choices.values() if c != (expected.k, expected.feature_set))
    for k, feature_set in choices.values():
        view = cluster_view(got, k, feature_set)
        assert view["customers"].sum() == len(table)
        pd.testing.assert_frame_equal(view, cluster_view(expected, k, feature_set))


@pytest.mark.parametrize("first", [0, 1])
def test_the_buckets_columns_merge_in_the_order_of_the_whole_customer_table(first):
    """Review 2, merged columns: two attributes each held only in one bucket (a region in one, a country in the
    other) and the campaign columns only in the region's bucket. The union of the buckets' columns is in the
    whole table's order (campaign columns, then country before region), whichever bucket comes first; before,
    a column went after the nearest earlier column of the first bucket holding it (country before the campaign
    columns, region after it)."""
    import segkit.steps.cluster as step
    from segkit.features import customer_table

    behaviour = pd.DataFrame({"customer_id": pd.array(list("abcd"), dtype="string"),
                              "recency_days": [3, 40, 7, 90], "frequency": [2, 1, 5, 1],
                              "monetary_total": [20.0, 8.5, 300.0, 12.0], "tenure_days": [90, 40, 200, 90]})
    behaviour.attrs["as_of"] = "2024-06-01"
    customers = pd.DataFrame({"customer_id": pd.array(list("abcd"), dtype="string"),
                              "region": pd.array(["North", None, None, None], dtype="string"),
                              "country": pd.array([None, None, "DE", None], dtype="string")})
    campaign = pd.DataFrame({"customer_id": pd.array(["b"], dtype="string"), "arm": pd.array(["email"], dtype="string"),
                             "opened": [True], "clicked": [False]})

    def columns(ids: list[str]) -> list[tuple[str, str]]:
        def of(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.loc[frame["customer_id"].isin(ids).to_numpy()].reset_index(drop=True)
        part = of(behaviour)
        part.attrs["as_of"] = behaviour.attrs["as_of"]
        table = customer_table(None, of(customers), of(campaign), behaviour=part)
        return [(c, step._spark_type(table[c].dtype)) for c in table.columns]

    whole = customer_table(None, customers, campaign, behaviour=behaviour)
    buckets = [columns(["a", "b"]), columns(["c", "d"])]
    assert [n for n, _ in buckets[0]][-4:] == ["emails_received", "open_rate", "click_rate", "region"]
    assert [n for n, _ in buckets[1]][-1] == "country"
    merged = step._merged_columns(buckets[first:] + buckets[:first])
    assert [name for name, _ in merged] == list(whole.columns)
    assert list(whole.columns)[-5:] == ["emails_received", "open_rate", "click_rate", "country", "region"]
    assert dict(merged) == {c: step._spark_type(whole[c].dtype) for c in whole.columns}
