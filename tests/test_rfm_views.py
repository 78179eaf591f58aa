"""What notebook 02 shows is one bounded object (:class:`segkit.rfm.RFMOverview`) that both engines build.

The pandas path takes the whole scored base as one part; Spark takes every partition as a part and merges
on the driver. Here the parts are random slices of the base (in ``customer_id`` order, some empty, some of one
row): the overview merged from them (sums exact, medians from the parts' value counts) must equal the whole
frame's bit for bit, table by table, on several random shops, on values whose float sum depends on the order
(1e16, 1, -1e16) and on the edge cases (one customer; every customer with the same values). The figures drawn
from the aggregates must be the figures drawn from the table; the customer list is capped and says so. No
Spark here (``tests/test_spark_pipeline.py`` compares the Spark run's notebook 02 with the DuckDB run's and
runs 02's Spark medians and no-buyer error on a tiny frame).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
from pandas.testing import assert_frame_equal, assert_series_equal  # noqa: E402

from segkit.core.errors import ConfigError  # noqa: E402
from segkit.data.distribution import DistributionNeeds, ValueDistribution  # noqa: E402
from segkit.plots.rfm import plot_distribution, plot_rf_grid  # noqa: E402
from segkit.rfm import (  # noqa: E402
    PROFILE_COLUMNS,
    OverviewPlan,
    PickedRows,
    RFMOverview,
    RFMPartial,
    RFMScorer,
    RFMSettings,
    analyse_rfm,
    customer_list_columns,
    fit_needs,
    median_groups,
    overview_needs,
    profile_positions,
    rfm_overview,
    score_base,
)
from segkit.steps.rfm import frequency_note, segment_profile, separation_note, summarize  # noqa: E402
from segkit.widgets.tables import interactive_table  # noqa: E402


def shop(seed: int, customers: int, orders: int) -> pd.DataFrame:
    """A random shop's order lines: skewed spend, repeat buyers, a few refunds."""
    rng = np.random.default_rng(seed)
    who = rng.choice([f"c{i:05d}" for i in range(customers)], orders)
    return pd.DataFrame({"customer_id": who, "order_id": [f"o{i}" for i in range(orders)],
                         "order_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, orders), "D"),
                         "amount": np.round(rng.lognormal(3.5, 1.2, orders), 2)})


def medians_of_parts(slices: list[pd.DataFrame], groups: list[tuple[str, ...]]) -> dict:
    """The group medians as Spark counts them: each part's value counts per group and column (a partition's
    ``groupBy(value).count()``), merged into one distribution that holds only the middle rows."""
    out: dict = {}
    for group in groups:
        out[group] = {}
        for column in PROFILE_COLUMNS:
            values, counts = [], []
            for part in slices:
                members = part.loc[part["rfm_segment"].isin(group).to_numpy(), column].to_numpy("float64")
                d = ValueDistribution.of_values(members)  # complete: this part's distinct values and counts
                values.append(d.values)
                counts.append(d.counts)
            merged = ValueDistribution.of_counts(np.concatenate(values), np.concatenate(counts),
                                                 DistributionNeeds(median=True, max_exact=2))
            out[group][column] = merged.median() if merged.n else float("nan")
    return out


def merged_overview(result, pieces: int, seed: int, empty: bool = True) -> RFMOverview:
    """The overview of ``result.rfm`` built as on Spark: the plan from value distributions that hold only the
    fits' and the overview's needs, partials of random slices (some empty: ``empty``) merged, medians from
    the slices' value counts, rows read slice by slice."""
    rfm, settings = result.rfm, result.settings
    needs = fit_needs(result.scorer, settings.tiers)
    for column, need in overview_needs(len(rfm), settings).items():
        needs[column] = needs[column].merge(need) if column in needs else need
    plan = OverviewPlan.of_distributions({c: ValueDistribution.of_values(rfm[c].to_numpy("float64"), need, column=c)
                                          for c, need in needs.items()}, settings)
    slices = random_slices(rfm, pieces, seed, empty)
    partial = RFMPartial.merge([RFMPartial.of(s, plan, result.scorer, result.tier_model.basis) for s in slices])
    sizes = partial.segments["customers"].astype("int64").to_dict()
    rows = PickedRows.of_batches(slices, profile_positions(sizes, settings.sample_size, result.seed),
                                 customer_list_columns(settings.monetary_column))
    return RFMOverview.build(plan, partial, medians_of_parts(slices, median_groups(settings.segments)), rows,
                             settings, result.tier_model)


def random_slices(frame: pd.DataFrame, pieces: int, seed: int, empty: bool = True) -> list[pd.DataFrame]:
    """``frame`` cut at random rows into ``pieces`` slices in order, with an empty slice and a one-row slice
    among them when ``empty`` (and the frame has rows)."""
    n = len(frame)
    cuts = np.random.default_rng(seed).integers(0, n + 1, pieces - 1).tolist()
    if empty and n and pieces > 1:
        cuts += [0, 1, n]  # slices [0:0], [0:1] and [n:n] among the others
    bounds = sorted([0, *cuts, n])
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def assert_same_overview(got: RFMOverview, expected: RFMOverview) -> None:
    """Equal bit for bit (every float exactly, NaN where NaN)."""
    assert got.customers == expected.customers
    for name in ("segments", "tiers", "scores", "pareto", "customer_list"):
        assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=True, obj=name)
    assert_frame_equal(got.cells.reset_index(drop=True), expected.cells.reset_index(drop=True))
    assert_series_equal(got.frequencies, expected.frequencies, check_names=False)
    np.testing.assert_array_equal([got.top_share_revenue, got.median_recency, got.risk_median_recency],
                                  [expected.top_share_revenue, expected.median_recency, expected.risk_median_recency])
    assert list(got.profiles) == list(expected.profiles)
    for segment, profile in expected.profiles.items():
        assert_frame_equal(got.profiles[segment], profile, check_exact=True, obj=segment)
    assert list(got.histograms) == list(expected.histograms)
    for column, histogram in expected.histograms.items():
        mine = got.histograms[column]
        assert (mine.top, mine.clipped, mine.integer) == (histogram.top, histogram.clipped, histogram.integer)
        for part in ("bar_values", "bar_counts", "bin_edges", "bin_counts"):
            np.testing.assert_array_equal(getattr(mine, part), getattr(histogram, part), err_msg=f"{column} {part}")


@pytest.mark.parametrize("seed, customers, orders", [(1, 40, 90), (2, 700, 2500), (3, 2600, 6000)])
def test_the_overview_merged_from_random_partitions_equals_the_one_of_the_whole_frame(seed, customers, orders):
    result = analyse_rfm(shop(seed, customers, orders))
    assert result.overview.customers == len(result.rfm) > 30
    for pieces in (1, 3, 17):
        assert_same_overview(merged_overview(result, pieces, seed), result.overview)


def test_the_overview_is_what_the_tables_and_texts_of_the_whole_frame_give():
    result = analyse_rfm(shop(4, 900, 3000))
    rfm, overview = result.rfm, result.overview
    seg = rfm.groupby("rfm_segment")
    by_segment = overview.segments.set_index("segment")
    assert by_segment["customers"].to_dict() == seg.size().to_dict()
    np.testing.assert_allclose(by_segment["mean_recency_days"], seg["recency_days"].mean()[by_segment.index], rtol=1e-12)
    assert overview.median_recency == rfm["recency_days"].median()
    risk = rfm[rfm["rfm_segment"].isin(["At Risk", "Can't Lose Them"])]
    assert len(risk) and overview.risk_median_recency == risk["recency_days"].median()
    assert overview.frequencies.to_dict() == rfm["frequency"].astype("float64").value_counts().to_dict()
    top = np.sort(rfm["monetary_total"].to_numpy())[::-1]
    k = int(np.ceil(0.2 * len(top) - 1e-9))
    assert overview.top_share_revenue == pytest.approx(top[:k].sum() / top.sum(), rel=1e-12)
    champions = overview.profiles["Champions"]
    members = rfm[rfm["rfm_segment"] == "Champions"]
    sample = members.sample(n=result.settings.sample_size, random_state=result.seed)  # DataFrame.sample's draw
    assert sorted(champions["customer_id"].dropna()) == sorted(sample["customer_id"])
    assert champions.loc[1, "monetary_total"] == members["monetary_total"].median()
    texts = (frequency_note(result), separation_note(result), summarize(result))
    assert "bought once" in texts[0] and "separate customers here" in texts[1]
    assert texts[2]["headlines"]["Median recency (days)"] == int(np.ceil(rfm["recency_days"].median()))


def test_the_figures_drawn_from_the_aggregates_are_the_figures_drawn_from_the_table():
    result = analyse_rfm(shop(5, 600, 2400))
    rfm, overview = result.rfm, result.overview
    for column in ("recency_days", "frequency", "monetary_total"):
        edges = result.scorer.edges_[{"recency_days": "r", "frequency": "f", "monetary_total": "m"}[column]]
        drawn = plot_distribution(overview.histograms[column], column, edges=edges)
        values = rfm[column].astype("float64")  # what the plot showed before: matplotlib on the clipped column
        top = float(values.quantile(0.99))
        clipped = values.clip(upper=top)
        expected = plt.figure().gca()
        if clipped.nunique() <= 60 and np.all(np.mod(values, 1) == 0):
            counts = clipped.value_counts().sort_index()
            expected.bar(counts.index, counts.to_numpy(), width=0.8, color=sns.color_palette()[0])
        else:
            expected.hist(clipped, bins=40, color=sns.color_palette()[0])
        assert [(p.get_x(), p.get_width(), p.get_height()) for p in drawn.patches] == \
            [(p.get_x(), p.get_width(), p.get_height()) for p in expected.patches], column
        assert drawn.get_title() == plot_distribution(rfm, column, edges=edges).get_title()
        plt.close("all")
    grid = plot_rf_grid(None, scorer=result.scorer, cells=overview.cells)
    table = plot_rf_grid(rfm, scorer=result.scorer)
    assert [t.get_text() for t in grid.texts] == [t.get_text() for t in table.texts]
    assert any("\n" in t.get_text() for t in grid.texts)
    plt.close("all")


def test_the_customer_list_is_capped_and_the_table_says_how_many_customers_there_are():
    result = analyse_rfm(shop(6, 300, 900))
    rfm = result.rfm
    columns = customer_list_columns("monetary_total")
    slices = [rfm.iloc[:5], rfm.iloc[5:6], rfm.iloc[6:]]
    capped = PickedRows.of_batches(slices, {}, columns, list_rows=7).customer_list
    assert_frame_equal(capped, rfm[columns].head(7).reset_index(drop=True))
    overview = RFMOverview(**{**result.overview.__dict__, "customer_list": capped})
    assert overview.list_capped and not result.overview.list_capped
    html = interactive_table(capped, total_rows=overview.customers, include_library=False)._repr_mimebundle_()
    assert f"Showing the first 7 of {len(rfm):,} rows" in html["text/html"]
    assert "Showing the first" not in interactive_table(capped, include_library=False)._repr_mimebundle_()["text/html"]


def test_one_customer_and_customers_all_alike_give_the_same_overview_from_any_partitions():
    one = analyse_rfm(pd.DataFrame({"customer_id": ["a"], "order_id": ["1"], "amount": [12.5],
                                    "order_date": pd.to_datetime(["2024-01-01"])}))
    assert one.overview.customers == 1 and one.overview.segments["customers"].tolist() == [1]
    assert one.overview.top_share_revenue == 1.0
    assert_same_overview(merged_overview(one, 3, 0), one.overview)
    alike = analyse_rfm(pd.DataFrame({"customer_id": [f"c{i}" for i in range(12)], "order_id": [str(i) for i in range(12)],
                                      "amount": [20.0] * 12, "order_date": pd.to_datetime(["2024-01-01"] * 12)}))
    overview = alike.overview
    assert overview.histograms["monetary_total"].bar_values.tolist() == [20.0]
    assert overview.scores["customers"].tolist() == [12, 12, 12]
    assert overview.pareto["revenue_share"].iloc[[0, -1]].tolist() == [0.0, 1.0]
    assert "everyone bought 1 time" in separation_note(alike)
    for pieces in (2, 5):
        assert_same_overview(merged_overview(alike, pieces, pieces), overview)


def test_segment_profile_reads_the_overview_and_names_the_segments_present_when_asked_for_another():
    result = analyse_rfm(shop(7, 200, 600))
    name = result.overview.segments["segment"].iloc[0]
    assert_frame_equal(segment_profile(result.overview, name),
                       segment_profile(result.rfm, name, result.settings.sample_size, result.seed))
    with pytest.raises(ConfigError, match="No customer is in segment 'Nobody'. Segments present: "):
        segment_profile(result.overview, "Nobody")
    assert RFMSettings.from_config(None).sample_size == result.settings.sample_size


def test_exact_sums_make_the_overview_of_any_split_equal_the_whole_frames_bit_for_bit():
    """Net revenues of 1e16, 1 and -1e16 (and 0.1, 0.2, 0.3) add up to different floats in different orders:
    the partials' exact sums do not, so segment and tier means and shares, the Pareto curve and the top share
    of every random split (with empty and one-row parts) are the whole frame's, bit for bit."""
    rng = np.random.default_rng(8)
    money = rng.permutation(np.array([1e16, 1.0, -1e16, 0.1, 0.2, 0.3, 3.0, 1e16, -1e16, 7.5] * 12))
    n = len(money)
    frequency = rng.integers(1, 4, n)
    base = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(n)], "recency_days": rng.integers(1, 400, n),
                         "frequency": frequency, "monetary_total": money, "monetary_avg": money / frequency,
                         "tenure_days": rng.integers(400, 800, n), "last_order_date": pd.Timestamp("2024-01-01")})
    scorer = RFMScorer(bins=3).fit(base)  # frequency has three values: three levels, no warning
    settings = RFMSettings.from_config({"bins": 3})
    tier_model = settings.tiers.fit(base)
    scored = score_base(base, scorer, settings.segments, tier_model)
    whole = rfm_overview(scored, settings, scorer, tier_model)
    result = analyse_rfm(None, "2024-01-01", settings, base=(base, {"as_of": pd.Timestamp("2024-01-01"),
                                                                      "orders_after_as_of": 0}))
    assert_same_overview(result.overview, whole)
    orders_matter = False
    for seed in range(6):
        slices = random_slices(scored, 7, seed)
        floats = sum(float(part["monetary_total"].sum()) for part in slices)
        orders_matter |= floats != float(scored["monetary_total"].sum())
        assert_same_overview(merged_overview(result, 7, seed), whole)
    assert orders_matter  # the values do expose the order of float addition
    assert whole.segments["share_of_revenue"].notna().all() and whole.pareto["revenue_share"].notna().all()
