"""segkit.rfm: RFM table, tie-aware scores, segment map, tiers, lifetimes summary, producer."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sklearn.exceptions import NotFittedError

from segkit.core.errors import ConfigError, DataError
from segkit.data.cancellations import kept_value
from segkit.data.orders import RFMWarning, lifetimes_summary, order_table, purchase_orders, rfm_table
from segkit.rfm import (
    LoyaltyTiers,
    RFMScorer,
    RFMSettings,
    SegmentMap,
    analyse_rfm,
    balanced_edges,
    group_scores,
    rfm_overview,
    score_base,
    to_five_point,
)
from segkit.steps.rfm import (
    build_rfm_artifacts,
    frequency_note,
    segment_choices,
    segment_profile,
    separation_note,
    separation_statements,
    summarize,
    tiers_note,
)


def tx(rows: list[tuple]) -> pd.DataFrame:
    """Order lines from (customer_id, order_id, date, amount) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount"])
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["order_id"] = frame["order_id"].astype("string")
    frame["order_date"] = pd.to_datetime(frame["order_date"], format="mixed")
    return frame


def lifetimes_reference():
    """lifetimes' own summary function (its import sets a pandas option that pandas 3 deprecates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data
    return summary_data_from_transaction_data


def cdnow_log() -> pd.DataFrame:
    """The CDNOW sample transaction log (2,357 customers) shipped with lifetimes."""
    from segkit.data.datasets import load_cdnow

    return load_cdnow("sample")


# --------------------------------------------------------------------------- lifetimes summary
@pytest.mark.parametrize("freq, end, multiplier", [
    ("D", "1997-09-30", 1),
    ("W", "1997-09-30", 1),   # end mid-week: lifetimes keeps the rest of that week, so do we
    ("W", None, 1),
    ("h", "1998-01-01", 24),
])
def test_lifetimes_summary_equals_lifetimes_on_cdnow_customer_by_customer(freq, end, multiplier):
    log = cdnow_log()
    expected = lifetimes_reference()(
        log, "customer_id", "order_date", monetary_value_col="amount",
        observation_period_end=end, freq=freq, freq_multiplier=multiplier)
    got = lifetimes_summary(log, end, freq=freq, freq_multiplier=multiplier)
    assert len(got) == 2357
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def test_lifetimes_summary_without_monetary_column_equals_lifetimes():
    log = cdnow_log()
    expected = lifetimes_reference()(log, "customer_id", "order_date",
                                                  observation_period_end="1997-09-30", freq="W")
    got = lifetimes_summary(log, "1997-09-30", freq="W", monetary_value_col=None)
    assert_frame_equal(got, expected)


def test_lifetimes_summary_counts_same_period_orders_once_and_sums_their_value():
    frame = tx([("a", "1", "2024-01-01", 1.0), ("a", "2", "2024-01-03", 2.0),
                ("a", "3", "2024-01-10", 5.0), ("a", "4", "2024-01-11", 7.0)])
    got = lifetimes_summary(frame, "2024-01-14", freq="W")
    assert got.loc["a"].tolist() == [1.0, 1.0, 1.0, 12.0]  # weeks of Jan 1 and Jan 8


def test_lifetimes_summary_names_the_missing_column():
    with pytest.raises(DataError, match="'when'"):
        lifetimes_summary(tx([("a", "1", "2024-01-01", 1.0)]), "2024-02-01", datetime_col="when")


def test_lifetimes_summary_rejects_an_unsupported_time_unit():
    with pytest.raises(ConfigError, match="freq='M'"):
        lifetimes_summary(tx([("a", "1", "2024-01-01", 1.0)]), "2024-02-01", freq="M")


def test_lifetimes_summary_refuses_an_end_before_every_transaction():
    with pytest.raises(DataError, match="no transaction on or before"):
        lifetimes_summary(tx([("a", "1", "2024-03-01", 1.0)]), "2024-01-01", freq="D")


# --------------------------------------------------------------------------- orders and RFM table
def returns_example() -> pd.DataFrame:
    return tx([
        ("a", "1", "2024-01-01", 10.0), ("a", "1", "2024-01-01", 5.0),   # one order, two lines
        ("a", "2", "2024-01-20", 30.0),
        ("a", "3", "2024-01-25", -12.0),                                 # a return invoice
        ("b", "4", "2024-01-10", 20.0), ("b", "4", "2024-01-10", -20.0),  # fully returned order
        ("b", "5", "2024-01-31 23:59", 8.0),
        ("c", "6", "2024-01-05", -5.0),                                  # only a return: no purchase
        ("d", "7", "2024-01-02", 10.0), ("d", "8", "2024-01-03", -25.0),  # net negative
        ("e", "9", "2024-02-01", 100.0),                                 # on as_of: excluded
    ])


def test_rfm_table_counts_purchases_and_nets_returns_into_monetary_total():
    with pytest.warns(RFMWarning, match=r"1 order\(s\) dated on or after as_of = 2024-02-01 were excluded "
                                        r"\(1 customer\(s\) have only such orders\)"):
        got = rfm_table(returns_example(), as_of="2024-02-01")
    # d bought 10 and returned 25 (net -15): kept nothing, so no buyer and no row
    expected = pd.DataFrame({
        "customer_id": pd.array(["a", "b"], dtype="string"),
        "recency_days": np.array([12, 1], dtype="int64"),
        "frequency": np.array([2, 1], dtype="int64"),
        "monetary_total": [33.0, 8.0],
        "monetary_avg": [16.5, 8.0],
        "tenure_days": np.array([31, 1], dtype="int64"),
        "first_order_date": pd.to_datetime(["2024-01-01", "2024-01-31 23:59"], format="mixed"),
        "last_order_date": pd.to_datetime(["2024-01-20", "2024-01-31 23:59"], format="mixed"),
    })
    assert_frame_equal(got, expected, check_dtype=False)
    assert got["recency_days"].dtype == "int64" and got["frequency"].dtype == "int64"


def test_order_table_sums_lines_per_order_and_flags_non_positive_orders():
    orders = order_table(returns_example()).set_index("order_id")
    assert orders.loc["1", "amount"] == 15.0 and orders.loc["1", "is_purchase"]
    assert orders.loc["4", "amount"] == 0.0 and not orders.loc["4", "is_purchase"]
    assert not orders.loc["3", "is_purchase"]
    assert len(orders) == 9


def test_purchase_orders_keep_positive_orders_before_as_of():
    got = purchase_orders(returns_example(), as_of="2024-02-01")
    assert got["order_id"].tolist() == ["1", "2", "5"]      # not d's order 7: d kept nothing
    assert got["amount"].tolist() == [15.0, 30.0, 8.0]


def test_lines_without_order_id_are_each_an_order():
    frame = returns_example().drop(columns="order_id")
    got = rfm_table(frame.iloc[:4], as_of="2024-02-01")
    assert got["frequency"].tolist() == [3]  # 10, 5 and 30 are purchases; -12 is not
    assert got["monetary_total"].tolist() == [33.0]


def test_as_of_defaults_to_the_day_after_the_last_order():
    got = rfm_table(tx([("a", "1", "2024-03-01 10:00", 5.0), ("b", "2", "2024-03-05 18:00", 5.0)]))
    assert got["recency_days"].tolist() == [5, 1]


def test_rfm_table_names_a_missing_column():
    with pytest.raises(DataError, match="'amount'"):
        rfm_table(returns_example().drop(columns="amount"))


def test_rfm_table_names_rows_with_unparseable_dates():
    frame = returns_example().astype({"order_date": "string"})
    frame.loc[3, "order_date"] = "yesterday"
    with pytest.raises(DataError, match=r"'order_date' .* row 5 .*'yesterday'"):
        rfm_table(frame)


def test_rfm_table_rejects_an_as_of_that_is_not_a_date():
    with pytest.raises(ConfigError, match="'soon' is not a date"):
        rfm_table(returns_example(), as_of="soon")


def test_rfm_table_with_every_order_after_as_of_says_what_to_do():
    with pytest.raises(DataError, match="every order is dated on or after as_of = 2023-01-01"):
        rfm_table(returns_example(), as_of="2023-01-01")


# --------------------------------------------------------------------------- tie-aware scoring
def brute_force_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Reference: try every cut set; least sum of squared sizes, then closest to the quantiles."""
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= bins:
        return distinct[1:]
    cum, n = np.concatenate([[0], np.cumsum(counts)]), len(values)
    ideal = n * np.arange(1, bins) / bins
    best = min(itertools.combinations(range(1, len(distinct)), bins - 1),
               key=lambda cuts: (int((np.diff(np.concatenate([[0], cum[list(cuts)], [n]])) ** 2).sum()),
                                 float(np.abs(cum[list(cuts)] - ideal).sum())))
    return distinct[list(best)]


def scores_of(values, bins=5, column="frequency"):
    base = pd.DataFrame({"recency_days": 1, "frequency": 1, "monetary_total": 1.0}, index=range(len(values)))
    base[column] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFMWarning)
        return RFMScorer(bins=bins).fit_transform(base)


@pytest.mark.parametrize("seed", range(40))
def test_balanced_edges_match_an_exhaustive_search_on_small_tied_data(seed):
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 6))
    values = np.repeat(rng.integers(0, 9, 12), rng.integers(1, 9, 12))
    assert balanced_edges(values, bins).tolist() == brute_force_edges(values, bins).tolist()


def test_the_same_value_never_gets_two_scores():
    rng = np.random.default_rng(1)
    values = rng.geometric(0.45, 5000)  # heavily tied, like order counts
    scores = scores_of(values)["f_score"]
    assert (pd.Series(scores.to_numpy()).groupby(values).nunique() == 1).all()


def test_heavy_ties_keep_the_tied_group_whole_and_balance_the_rest():
    values = np.array([1] * 60 + [2] * 20 + [3] * 10 + [4] * 5 + [5] * 3 + [6] * 2)
    got = scores_of(values)["f_score"]
    assert got.groupby(values).first().tolist() == [1, 2, 3, 4, 5, 5]
    assert np.bincount(got)[1:].tolist() == [60, 20, 10, 5, 5]


def test_quantile_cuts_on_distinct_values_for_non_default_bins():
    values = np.arange(1, 101)
    assert balanced_edges(values, 3).tolist() == [34, 68]          # sizes 33, 34, 33
    assert balanced_edges(values, 4).tolist() == [26, 51, 76]
    assert balanced_edges(values, 10).tolist() == list(range(11, 100, 10))
    assert np.bincount(scores_of(values, bins=10)["f_score"])[1:].tolist() == [10] * 10


def test_many_distinct_values_use_the_candidate_search_and_stay_balanced():
    rng = np.random.default_rng(3)
    continuous = rng.permutation(20_000).astype(float)
    sizes = np.bincount(np.searchsorted(balanced_edges(continuous, 5), continuous, side="right"))
    assert sizes.tolist() == [4000] * 5
    mixed = np.concatenate([np.zeros(8000), 1 + rng.permutation(8000)])  # half tied at 0
    sizes = np.bincount(np.searchsorted(balanced_edges(mixed, 5), mixed, side="right"))
    assert sizes.tolist() == [8000, 2000, 2000, 2000, 2000]


def test_recency_is_reversed_so_the_most_recent_score_highest():
    got = scores_of([1, 3, 5, 7, 9, 11, 13, 15, 17, 19], column="recency_days")["r_score"]
    assert got.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_fewer_distinct_values_than_bins_warn_and_spread_over_the_scale():
    base = pd.DataFrame({"recency_days": [1, 2, 3, 4, 5, 6], "frequency": [1] * 6,
                         "monetary_total": [5.0, 5.0, 5.0, 9.0, 9.0, 9.0]})
    with pytest.warns(RFMWarning, match=r"frequency has 1 distinct value\(s\), so f_score uses 1 level\(s\) \(1\); "
                                        r"monetary_total has 2 distinct value\(s\), so m_score uses 2 level\(s\) \(2, 4\)"):
        scores = RFMScorer(bins=5).fit_transform(base)
    assert scores["f_score"].tolist() == [1] * 6  # one frequency: nobody buys more often (SINGLE_LEVEL_SCORE)
    assert scores["m_score"].tolist() == [2, 2, 2, 4, 4, 4]


def test_a_scorer_fitted_on_one_month_scores_the_next_with_the_same_bounds():
    january = pd.DataFrame({"recency_days": range(1, 11), "frequency": range(1, 11),
                            "monetary_total": np.arange(10, 110, 10.0)})
    scorer = RFMScorer().fit(january)
    assert [e.tolist() for e in scorer.edges_.values()] == [[3, 5, 7, 9], [3, 5, 7, 9], [30, 50, 70, 90]]
    february = pd.DataFrame({"recency_days": [0, 5, 100], "frequency": [0, 4, 50],
                             "monetary_total": [-5.0, 55.0, 1e6]})
    assert_frame_equal(scorer.transform(february), pd.DataFrame(
        {"r_score": [5, 3, 1], "f_score": [1, 2, 5], "m_score": [1, 3, 5]}, index=february.index))


def test_scorer_rejects_bad_bins_and_unfitted_use():
    base = pd.DataFrame({"recency_days": [1], "frequency": [1], "monetary_total": [1.0]})
    for bins in (1, 21, 2.5, True):
        with pytest.raises(ConfigError, match="from 2 to 20"):
            RFMScorer(bins=bins).fit(base)
    with pytest.raises(NotFittedError):
        RFMScorer().transform(base)


def test_scorer_is_a_scikit_learn_estimator_that_clones_with_its_parameters():
    from sklearn.base import clone

    scorer = clone(RFMScorer(bins=4, monetary_col="monetary_avg"))
    assert scorer.get_params() == {"bins": 4, "recency_col": "recency_days", "frequency_col": "frequency",
                                   "monetary_col": "monetary_avg"}
    assert not hasattr(scorer, "edges_")


def test_scorer_names_rows_with_missing_values():
    base = pd.DataFrame({"recency_days": [1, 2], "frequency": [1, None], "monetary_total": [1.0, 2.0]})
    with pytest.raises(DataError, match="'frequency' is empty at row 3"):
        RFMScorer().fit(base)


def test_five_point_mapping_of_other_bin_counts():
    assert to_five_point(np.arange(1, 4), 3).tolist() == [1, 3, 5]
    assert to_five_point(np.arange(1, 6), 5).tolist() == [1, 2, 3, 4, 5]
    assert group_scores(4, 5).tolist() == [1, 2, 4, 5]


# --------------------------------------------------------------------------- segment map
DEFAULT_GRID = {  # R (5 → 1) × FM (1 → 5), as documented in segkit/defaults/rfm.yml
    5: ["New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"],
    3: ["Promising", "About To Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "About To Sleep", "Need Attention", "At Risk", "At Risk"],
    1: ["Lost", "Lost", "At Risk", "Can't Lose Them", "Can't Lose Them"],
}


def default_segments() -> list[dict]:
    from segkit.core.config import load_config

    return load_config()["rfm"]["segments"]


def test_every_one_of_the_125_score_combinations_maps_to_exactly_one_documented_segment():
    combos = SegmentMap.from_config(default_segments()).combinations()
    assert len(combos) == 125 and combos[["r", "f", "m"]].drop_duplicates().shape[0] == 125
    expected = [DEFAULT_GRID[r][fm - 1] for r, fm in zip(combos["r"], combos["fm"])]
    assert combos["segment"].tolist() == expected
    assert set(combos["segment"]) == {
        "Champions", "Loyal Customers", "Potential Loyalist", "New Customers", "Promising", "Need Attention",
        "About To Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost"}
    assert (combos["fm"] == np.ceil((combos["f"] + combos["m"]) / 2)).all()


def test_every_default_segment_has_an_action_and_a_description():
    seg = SegmentMap.from_config(default_segments())
    assert all(seg.actions[n] and seg.descriptions[n] for n in seg.names)
    assert "deadline" in seg.actions["At Risk"] and "Welcome series" in seg.actions["New Customers"]


#: What a phrase in a segment description claims about the 1-5 scores (r, f, m and fm = the
#: rounded-up average of f and m). The first group is what the default descriptions say; the second
#: holds phrases that older descriptions used, so that they cannot come back untrue.
DESCRIPTION_CLAIMS = {
    "recency": {
        r"\bbought recently": lambda c: c.r >= 4,
        r"\bbought very recently": lambda c: c.r == 5,
        r"\bfairly recent": lambda c: c.r >= 3,
        r"\bmiddle recency": lambda c: c.r == 3,
        r"\bmiddle to low": lambda c: c.r.isin([2, 3]),
        r"\blong ago": lambda c: c.r <= 2,
        r"\blongest ago|\blowest recency": lambda c: c.r == 1,
        r"\bnot in the last weeks": lambda c: c.r <= 3,
    },
    "frequency and spend": {
        r"among the highest on frequency and spend taken together": lambda c: c.fm >= 4,
        r"taken together average or better": lambda c: c.fm >= 3,
        r"taken together average\b(?! or)": lambda c: c.fm == 3,
        r"taken together below average to average": lambda c: c.fm.isin([2, 3]),
        r"taken together below average\b(?! to)": lambda c: c.fm <= 2,
        r"the lowest frequency and spend": lambda c: (c.f == 1) & (c.m == 1),
        # phrases of earlier descriptions
        r"buy often|bought often|most frequent": lambda c: c.f >= 4,
        r"spend the most|spent big|biggest|spend well": lambda c: c.m >= 4,
        r"lowest recency, frequency and spend": lambda c: (c.f == 1) & (c.m == 1),
        r"below average on all three": lambda c: (c.r <= 2) & (c.f <= 2) & (c.m <= 2),
        r"with average frequency and spend": lambda c: (c.f == 3) & (c.m == 3),
        r"\bonce\b": lambda c: c.f == 1,
        r"low frequency and spend|low spend and few orders": lambda c: (c.f <= 2) & (c.m <= 2),
    },
}


def description_errors(segments: list[dict]) -> list[str]:
    """Each claim of a description that some score combination of its segment contradicts, and each
    description that claims nothing checkable about recency or about frequency and spend."""
    import re

    seg = SegmentMap.from_config(segments)
    combos = seg.combinations()
    errors = []
    for name in seg.names:
        text, members = seg.descriptions[name], combos[combos["segment"] == name]
        for topic, claims in DESCRIPTION_CLAIMS.items():
            said = [p for p in claims if re.search(p, text, flags=re.IGNORECASE)]
            if not said:
                errors.append(f"{name}: {text!r} says nothing checkable about {topic}")
            for phrase in said:
                wrong = members[~claims[phrase](members).to_numpy()]
                if len(wrong):
                    errors.append(f"{name}: {text!r} claims /{phrase}/ but admits "
                                  + ", ".join(f"RFM {r}{f}{m}" for r, f, m in wrong[["r", "f", "m"]].to_numpy()[:3]))
    return errors


def test_every_segment_description_is_true_for_every_score_combination_its_rule_admits():
    # "At Risk: Spent big and bought often, but long ago" admitted R=1 with F=1, M=5; "Lost: Lowest
    # recency, frequency and spend" admitted M=3; one-time buyers were "At Risk ... bought often"
    assert description_errors(default_segments()) == []
    earlier = {"At Risk": "Spent big and bought often, but long ago.", "Lost": "Lowest recency, frequency and spend."}
    old = [{**s, "description": earlier.get(s["name"], s["description"])} for s in default_segments()]
    assert description_errors(old) == [
        "At Risk: 'Spent big and bought often, but long ago.' claims /buy often|bought often|most frequent/ but "
        "admits RFM 114, RFM 115, RFM 123",
        "At Risk: 'Spent big and bought often, but long ago.' claims /spend the most|spent big|biggest|spend well/ "
        "but admits RFM 123, RFM 132, RFM 133",
        "Lost: 'Lowest recency, frequency and spend.' claims /lowest recency, frequency and spend/ but admits "
        "RFM 112, RFM 113, RFM 121"]


def test_overlapping_segments_are_a_config_error_naming_the_combinations():
    segments = default_segments()
    loyal = next(s for s in segments if s["name"] == "Loyal Customers")
    loyal["r"] = [3, 4]
    with pytest.raises(ConfigError, match=r"match more than one segment: R4 F2 M5 \(Champions, Loyal Customers\)"):
        SegmentMap.from_config(segments)


def test_a_gap_in_the_segment_map_is_a_config_error_naming_the_combinations():
    segments = [s for s in default_segments() if s["name"] != "Lost"]
    with pytest.raises(ConfigError, match=r"match no segment: R1 F1 M1; R1 F1 M2; R1 F1 M3"):
        SegmentMap.from_config(segments)


@pytest.mark.parametrize("change, message", [
    ({"name": "Ghost", "f": 1, "m": 1, "fm": 5}, "segment\\(s\\) matching no combination: Ghost"),
    ({"name": "Lost", "r": 1}, "'Lost' is defined twice"),
    ({"name": "Odd", "r": [5, 1]}, "'Odd': r = \\[5, 1\\]: use one score 1-5"),
    ({"name": "Odd", "r": 6}, "'Odd': r = 6"),
    ({"name": "Odd", "recency": 1}, "unknown key\\(s\\) recency"),
    ({"r": 1}, "needs a `name:`"),
])
def test_invalid_segment_entries_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        SegmentMap.from_config(default_segments() + [change])


def test_a_user_yaml_with_overlapping_segments_fails_when_the_settings_are_read(tmp_path):
    from segkit.core.config import load_config

    path = tmp_path / "config.yml"
    path.write_text("rfm:\n  segments:\n    - {name: Everyone, action: hello}\n"
                    "    - {name: Recent, r: 5, action: hi}\n")
    with pytest.raises(ConfigError, match=r"25 combination\(s\) match more than one segment: R5 F1 M1 "
                                          r"\(Everyone, Recent\)"):
        RFMSettings.from_config(load_config(path)["rfm"])


def test_a_user_segment_map_with_any_of_boxes_is_accepted(tmp_path):
    from segkit.core.config import load_config

    path = tmp_path / "config.yml"
    path.write_text("rfm:\n  segments:\n    - {name: Active, r: [3, 5], action: keep}\n"
                    "    - name: Lapsed\n      any_of: [{r: [1, 2], f: [1, 4]}, {r: [1, 2], f: 5}]\n")
    seg = RFMSettings.from_config(load_config(path)["rfm"]).segments
    assert seg.assign([5, 2], [1, 5], [1, 1]).tolist() == ["Active", "Lapsed"]
    assert seg.actions["Lapsed"] == ""


# --------------------------------------------------------------------------- tiers
def test_percentile_tiers_keep_tied_customers_together():
    base = pd.DataFrame({"monetary_total": [10.0, 20.0, 20.0, 20.0, 50.0]})
    tiers = LoyaltyTiers([{"name": "Gold", "min": 0.2}, {"name": "Basic"}]).fit(base)
    assert tiers.thresholds_ == {"Gold": 20.0}
    assert tiers.transform(base).tolist() == ["Basic", "Gold", "Gold", "Gold", "Gold"]


def test_default_tiers_split_a_uniform_base_at_50_80_95_percent_and_score_new_values():
    from segkit.core.config import load_config

    tiers = LoyaltyTiers.from_config(load_config()["rfm"]["tiers"])
    base = pd.DataFrame({"monetary_total": np.arange(1, 101, dtype=float)})
    got = tiers.fit(base).transform(base)
    assert got.value_counts().to_dict() == {"Bronze": 50, "Silver": 30, "Gold": 15, "Platinum": 5}
    assert tiers.thresholds_ == {"Platinum": 96.0, "Gold": 81.0, "Silver": 51.0}
    new = pd.DataFrame({"monetary_total": [-3.0, 60.0, 1e6]})
    assert tiers.transform(new).tolist() == ["Bronze", "Silver", "Platinum"]


def test_threshold_tiers_use_the_configured_values():
    tiers = LoyaltyTiers.from_config({"method": "threshold", "basis": "frequency",
                                      "levels": [{"name": "VIP", "min": 10}, {"name": "Repeat", "min": 2},
                                                 {"name": "One-off"}]})
    base = pd.DataFrame({"frequency": [1, 2, 9, 10, 40]})
    assert tiers.fit(base).transform(base).tolist() == ["One-off", "Repeat", "Repeat", "VIP", "VIP"]


@pytest.mark.parametrize("tiers, message", [
    ({"levels": [{"name": "Only"}]}, "at least two tiers"),
    ({"method": "rank", "levels": [{"name": "A", "min": 0.5}, {"name": "B"}]}, "use percentile or threshold"),
    ({"levels": [{"name": "A", "min": 1.5}, {"name": "B"}]}, "must be a share between 0 and 1"),
    ({"levels": [{"name": "A", "min": 0.5}, {"name": "B", "min": 0.8}, {"name": "C"}]}, "decreasing `min`"),
    ({"levels": [{"name": "A"}, {"name": "B"}]}, "tier 'A' needs a numeric `min:`"),
])
def test_invalid_tier_rules_are_config_errors(tiers, message):
    with pytest.raises(ConfigError, match=message):
        LoyaltyTiers.from_config(tiers)


# --------------------------------------------------------------------------- concentration
def scored_base(money: list[float], frequency: list[int] | None = None, tiers: LoyaltyTiers | None = None,
                **rfm: object) -> tuple[pd.DataFrame, RFMSettings, RFMScorer, LoyaltyTiers]:
    """A hand-built RFM base (one customer per amount) scored as analyse_rfm scores it."""
    n = len(money)
    frequency = frequency or [1] * n
    base = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "recency_days": 10 * np.arange(n) + 1,
                         "frequency": frequency, "monetary_total": money,
                         "monetary_avg": np.divide(money, frequency), "tenure_days": 10 * np.arange(n) + 30,
                         "last_order_date": pd.Timestamp("2024-06-01") - pd.to_timedelta(10 * np.arange(n) + 1, "D")})
    settings = RFMSettings.from_config(rfm or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RFMWarning)  # few levels on a few customers: not what is tested here
        scorer = RFMScorer(bins=settings.bins).fit(base)
    tier_model = (tiers or settings.tiers).fit(base)
    return score_base(base, scorer, settings.segments, tier_model), settings, scorer, tier_model


def test_the_top_share_of_revenue_takes_the_top_share_of_customers_rounded_up():
    money = [5.0, 100.0, 10.0, 10.0, 5.0]
    assert rfm_overview(*scored_base(money)).top_share_revenue == pytest.approx(100 / 130)
    assert rfm_overview(*scored_base(money[:3])).top_share_revenue == pytest.approx(100 / 115)  # ceil(0.6) = 1
    assert rfm_overview(*scored_base(money, top_share=1.0)).top_share_revenue == 1.0
    assert np.isnan(rfm_overview(*scored_base([-5.0, 2.0])).top_share_revenue)


def test_the_pareto_curve_is_cumulative_net_revenue_best_first_and_can_overshoot_with_negative_customers():
    curve = rfm_overview(*scored_base([-10.0, 60.0, 50.0])).pareto
    assert curve["customer_share"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert curve["revenue_share"].tolist() == pytest.approx([0, 0.6, 1.1, 1.0])
    sampled = rfm_overview(*scored_base([1.0] * 1000)).pareto  # PARETO_POINTS evenly spaced customer counts
    assert len(sampled) == 201
    assert sampled["customer_share"].tolist() == pytest.approx(np.linspace(0, 1, 201))
    assert sampled["revenue_share"].tolist() == pytest.approx(np.linspace(0, 1, 201))


# --------------------------------------------------------------------------- the analysis and edge cases
def shop(n_customers: int = 200, seed: int = 0) -> pd.DataFrame:
    """Orders of n customers over 2024: geometric order counts, lognormal amounts, some returns."""
    rng = np.random.default_rng(seed)
    counts = rng.geometric(0.4, n_customers)
    cust = np.repeat([f"C{i:04d}" for i in range(n_customers)], counts)
    days = rng.integers(0, 366, len(cust))
    amount = rng.lognormal(3, 1, len(cust)).round(2)
    amount[rng.random(len(cust)) < 0.05] *= -1  # return invoices
    return tx(list(zip(cust, [f"O{i}" for i in range(len(cust))],
                       pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D"), amount)))


def test_analysis_scores_segments_tiers_and_actions_for_every_buying_customer():
    frame = shop()
    result = analyse_rfm(frame, as_of="2025-01-01")
    rfm = result.rfm
    assert rfm.columns.tolist() == ["customer_id", "recency_days", "frequency", "monetary_total", "monetary_avg",
                                    "tenure_days", "first_order_date", "last_order_date", "r_score", "f_score",
                                    "m_score", "rfm_segment", "tier", "recommended_action"]
    assert rfm["rfm_segment"].notna().all() and rfm["tier"].notna().all()
    seg = SegmentMap.from_config(default_segments())
    five = seg.assign(rfm["r_score"], rfm["f_score"], rfm["m_score"])
    assert rfm["rfm_segment"].tolist() == five.tolist()
    assert (rfm["recommended_action"] == rfm["rfm_segment"].map(seg.actions)).all()
    # tables add up
    assert result.segments["customers"].sum() == len(rfm)
    assert result.segments["share_of_revenue"].sum() == pytest.approx(1.0)
    assert result.tiers["customers"].sum() == len(rfm)
    expected_top = np.sort(rfm["monetary_total"])[::-1][: int(np.ceil(0.2 * len(rfm)))].sum() / rfm["monetary_total"].sum()
    assert result.top_share_revenue == pytest.approx(expected_top)


def test_analysis_is_deterministic():
    a, b = analyse_rfm(shop(seed=5)), analyse_rfm(shop(seed=5))
    assert_frame_equal(a.rfm, b.rfm)
    assert summarize(a) == summarize(b)


def test_customers_who_kept_nothing_get_no_rfm_row_and_are_counted():
    frame = shop(seed=2)
    extra = tx([("NEG", "n1", "2024-06-01", 20.0), ("NEG", "n2", "2024-06-02", -80.0),
                ("ZERO", "z1", "2024-06-01", 30.0), ("ZERO", "z2", "2024-06-03", -30.0)])
    result = analyse_rfm(pd.concat([frame, extra], ignore_index=True))
    assert not {"NEG", "ZERO"} & set(result.rfm["customer_id"]) and (result.rfm["monetary_total"] > 0).all()
    # NEG bought 20 and returned 80 (net -60): kept nothing; ZERO's return of exactly 30 cancels z1
    assert result.info["customers_kept_nothing"] >= 1 and result.info["customers_without_purchase"] >= 1
    assert result.info["customers_non_positive_net"] == 0
    # 02's text counts them and says they get no segment (the old "zero or negative net" clause is gone: always 0)
    info, s = result.info, summarize(result)
    assert (info["cancellation_documents"], info["customers_kept_nothing"], info["customers_without_purchase"]) == (28, 8, 5)
    assert s["analysed"].endswith(
        " Not scored: 28 cancellation documents (not orders; each matched to the customer's latest earlier purchase of the same product at the same price: a best match, as the export does not say which order a cancellation takes back), 1 order without "
        "a kept value (zero or negative net), 8 customers who kept nothing (cancellations and returns took all they "
        "bought) and 5 customers without a purchase (only returns, cancellations or orders of zero value): such "
        "customers get no RFM segment.")
    assert "zero or negative net revenue" not in " ".join(s["findings"])


def test_one_customer_gets_middle_recency_and_spend_lowest_frequency_and_a_warning():
    result = analyse_rfm(tx([("a", "1", "2024-01-05", 10.0), ("a", "2", "2024-01-09", 5.0)]))
    assert result.rfm[["r_score", "f_score", "m_score"]].iloc[0].tolist() == [3, 1, 3]
    assert result.rfm["rfm_segment"].tolist() == ["About To Sleep"]
    assert "recency_days has 1 distinct value(s)" in result.warnings[0]
    assert result.top_share_revenue == 1.0
    assert 3 <= len(summarize(result)["findings"]) <= 5


def test_when_every_customer_ordered_once_frequency_carries_no_information():
    frame = tx([(f"c{i}", str(i), f"2024-01-{i + 1:02d}", float(10 * i + 1)) for i in range(20)])
    result = analyse_rfm(frame)
    assert (result.rfm["f_score"] == 1).all()
    assert sorted(result.rfm["r_score"].value_counts().tolist()) == [4] * 5
    assert any("frequency has 1 distinct value(s)" in w for w in result.warnings)
    assert "100% of customers bought only once." in summarize(result)["findings"]


def test_when_everyone_bought_once_no_segment_claims_frequent_buying_and_the_texts_say_why():
    # issue 14: 40 one-time buyers over a year, amounts from 5 to 200; the neutral F = 3 used to
    # lift the big spenders into Champions, Loyal Customers and Can't Lose Them
    rows = [(f"c{i:02d}", str(i), f"2024-{1 + i % 12:02d}-{1 + i % 27:02d}", float(5 * (i + 1))) for i in range(40)]
    result = analyse_rfm(tx(rows), as_of="2025-01-01")
    assert set(result.rfm["frequency"]) == {1} and (result.rfm["f_score"] == 1).all()
    assert result.rfm["m_score"].nunique() == 5 and result.rfm["r_score"].nunique() == 5
    frequent = {"Champions", "Loyal Customers", "Can't Lose Them"}
    assert not frequent & set(result.rfm["rfm_segment"]) and not frequent & set(result.segments["segment"])
    statement = ("Frequency cannot separate customers: everyone bought 1 time (purchase orders), so every customer "
                 "scores F = 1 and no segment claims frequent buying (Champions, Loyal Customers, Can't Lose Them "
                 "cannot occur): the segments rest on recency and monetary value.")
    assert separation_statements(result) == [statement]
    assert separation_note(result).startswith("**Frequency cannot separate customers**: everyone bought 1 time")
    summary = summarize(result)
    assert summary["findings"][0] == statement
    assert "100% of customers bought only once." in summary["findings"]
    assert not any(name in " ".join(summary["findings"][1:] + summary["actions"]) for name in frequent)
    assert any("f_score uses 1 level(s) (1)" in w for w in summary["warnings"])


def test_every_metric_without_spread_is_named_and_a_normal_base_says_all_three_separate():
    same = analyse_rfm(tx([(f"c{i}", str(i), "2024-03-03", 20.0) for i in range(12)]), as_of="2024-03-10")
    texts = separation_statements(same)
    assert [t.split(":")[0] for t in texts] == ["Recency cannot separate customers", "Frequency cannot separate "
                                                "customers", "Monetary value cannot separate customers"]
    assert "every last purchase was 7 days before 2024-03-10" in texts[0] and "neutral R = 3" in texts[0]
    assert "everyone's net revenue is 20" in texts[2] and "neutral M = 3" in texts[2]
    assert summarize(same)["findings"][0] == " ".join(texts)
    mixed = analyse_rfm(shop(300, seed=9), as_of="2025-01-01")
    assert separation_statements(mixed) == []
    assert separation_note(mixed) == ("Recency, frequency and monetary value each separate customers here (5, 5 and "
                                      "5 score levels), so every segment rests on all three.")
    assert not summarize(mixed)["findings"][0].startswith(("Recency", "Frequency", "Monetary"))


def test_all_orders_on_one_day_give_everyone_the_same_recency_score():
    frame = tx([(f"c{i % 7}", str(i), "2024-03-03 10:00", float(i + 1)) for i in range(30)])
    result = analyse_rfm(frame)
    assert (result.rfm["recency_days"] == 1).all() and (result.rfm["r_score"] == 3).all()
    assert result.rfm["m_score"].nunique() == 5


def test_orders_after_as_of_are_excluded_and_reported_in_the_warnings():
    frame = shop(seed=4)
    result = analyse_rfm(frame, as_of="2024-07-01")
    late = int((order_table(frame)["order_date"] >= "2024-07-01").sum())
    assert late > 0
    assert result.info["orders_after_as_of"] == late
    assert result.rfm["last_order_date"].max() < pd.Timestamp("2024-07-01")
    assert any(w.startswith(f"{late:,} order(s) dated on or after as_of = 2024-07-01") for w in result.warnings)
    assert summarize(result)["warnings"] == result.warnings


@pytest.mark.parametrize("bins", [3, 4, 10])
def test_non_default_bins_score_on_their_scale_and_segment_on_the_five_point_scale(bins):
    settings = RFMSettings.from_config({"bins": bins})
    result = analyse_rfm(shop(400, seed=bins), settings=settings)
    rfm = result.rfm
    assert set(rfm["m_score"]) == set(range(1, bins + 1))
    counts = rfm["m_score"].value_counts()
    tied = int(rfm["monetary_total"].duplicated(keep=False).sum())
    assert counts.max() - counts.min() <= 1 + tied, (counts, tied)  # equal bins up to ties in spend
    seg = settings.segments
    expected = seg.assign(*(to_five_point(rfm[c], bins) for c in ("r_score", "f_score", "m_score")))
    assert rfm["rfm_segment"].tolist() == expected.tolist()


def test_invalid_rfm_settings_are_config_errors():
    for section, message in [({"bins": 0}, "rfm.bins = 0"), ({"monetary_column": "spend"}, "monetary_column"),
                             ({"top_share": 2}, "rfm.top_share = 2"), ({"sample_size": -1}, "sample_size")]:
        with pytest.raises(ConfigError, match=message):
            RFMSettings.from_config(section)


def test_segment_and_tier_tables_on_a_hand_built_base():
    scored, settings, scorer, _ = scored_base([10.0, 500.0, 470.0, 20.0], [1, 9, 7, 1])
    tier_model = LoyaltyTiers([{"name": "Gold", "min": 0.5}, {"name": "Bronze"}]).fit(scored)
    scored = scored.assign(rfm_segment=pd.array(["Lost", "Champions", "Champions", "Lost"], dtype="string"),
                           tier=pd.array(["Bronze", "Gold", "Gold", "Bronze"], dtype="string"),
                           recency_days=[300, 2, 4, 200])
    overview = rfm_overview(scored, settings, scorer, tier_model)
    seg = overview.segments
    assert SegmentMap.from_config(default_segments()).names == settings.segments.names
    assert seg["segment"].tolist() == ["Champions", "Lost"]
    assert seg["customers"].tolist() == [2, 2]
    assert seg["share_of_revenue"].tolist() == pytest.approx([0.97, 0.03])
    assert seg["mean_recency_days"].tolist() == [3.0, 250.0]
    assert seg["mean_monetary_total"].tolist() == [485.0, 15.0]
    tiers = overview.tiers
    assert tiers[["tier", "customers", "min_monetary_total"]].values.tolist() == [["Gold", 2, 470.0],
                                                                                 ["Bronze", 2, 10.0]]


# --------------------------------------------------------------------------- explorer and summary
def test_score_table_gives_the_value_range_and_customers_of_every_level():
    base = pd.DataFrame({"recency_days": [1, 2, 40, 50], "frequency": [1, 1, 1, 4],
                         "monetary_total": [5.0, 6.0, 70.0, 80.0]})
    scorer = RFMScorer(bins=2).fit(base)
    settings = RFMSettings.from_config(None)
    tier_model = settings.tiers.fit(base)
    scored = score_base(base.assign(customer_id=list("abcd"), monetary_avg=base["monetary_total"],
                                    tenure_days=base["recency_days"] + 5,
                                    last_order_date=pd.Timestamp("2024-01-01")), scorer, settings.segments, tier_model)
    table = rfm_overview(scored, settings, scorer, tier_model).scores
    assert table.values.tolist() == [
        ["recency_days", 1, 40.0, 50.0, 2], ["recency_days", 2, 1.0, 2.0, 2],
        ["frequency", 1, 1.0, 1.0, 3], ["frequency", 2, 4.0, 4.0, 1],
        ["monetary_total", 1, 5.0, 6.0, 2], ["monetary_total", 2, 70.0, 80.0, 2]]


def test_explorer_offers_only_segments_at_or_above_the_privacy_threshold():
    table = pd.DataFrame({"segment": ["Champions", "Lost", "Promising"], "customers": [10, 9, 30]})
    assert segment_choices(table, 10) == {"Champions": "Champions", "Promising": "Promising"}
    assert list(segment_choices(table)) == ["Champions", "Lost", "Promising"]


def test_segment_profile_shows_mean_median_and_a_seeded_sample():
    result = analyse_rfm(shop(seed=7))
    name = result.segments.sort_values("customers").iloc[-1]["segment"]
    members = result.rfm[result.rfm["rfm_segment"] == name]
    prof = segment_profile(result.rfm, name, n_sample=4, seed=11)
    assert prof["row"].tolist() == [f"mean of {len(members):,} customers", "median"] + ["sample customer"] * 4
    assert prof.loc[0, "monetary_total"] == pytest.approx(members["monetary_total"].mean())
    assert prof.loc[1, "recency_days"] == members["recency_days"].median()
    sample = prof["customer_id"].iloc[2:]
    assert sample.isin(members["customer_id"]).all() and sample.is_unique
    assert prof["monetary_total"].iloc[2:].is_monotonic_decreasing
    assert_frame_equal(prof, segment_profile(result.rfm, name, n_sample=4, seed=11))
    assert not segment_profile(result.rfm, name, n_sample=4, seed=12)["customer_id"].equals(prof["customer_id"])


def test_segment_profile_of_an_absent_segment_lists_the_segments_present():
    rfm = analyse_rfm(tx([("a", "1", "2024-01-05", 10.0)])).rfm
    with pytest.raises(ConfigError, match="No customer is in segment 'Champions'. Segments present: About To Sleep"):
        segment_profile(rfm, "Champions")


def test_summary_texts_come_from_the_results():
    frame = shop(300, seed=9)
    result = analyse_rfm(frame, as_of="2025-01-01")
    s = summarize(result)
    rfm = result.rfm
    n = len(rfm)
    top = int(np.ceil(0.2 * n))
    share = np.sort(rfm["monetary_total"])[::-1][:top].sum() / rfm["monetary_total"].sum()
    assert s["findings"][0] == f"The top 20% of customers ({top} of {n}) bring {100 * share:.0f}% of net revenue."
    assert 3 <= len(s["findings"]) <= 5
    once = (rfm["frequency"] == 1).mean()
    assert any(f.startswith(f"{100 * once:.0f}% of customers bought only once") for f in s["findings"])
    assert s["headlines"]["Buying customers"] == n
    # net revenue, orders and customers left out: the run's headline numbers (segkit.steps.headline), not 02's
    assert "Net revenue" not in s["headlines"] and "monetary value is net of returns" in s["analysed"]
    assert s["headlines"]["One-time buyers (%)"] == round(100 * once, 1)
    top_segment = result.segments.sort_values("share_of_revenue").iloc[-1]
    assert s["actions"][0].startswith(f"{top_segment['segment']} ({top_segment['customers']:,} customers")
    assert s["analysed"].startswith(f"{n:,} buying customers with {int((order_table(frame)['amount'] > 0).sum()):,} "
                                    "purchase orders from 2024-01-01")
    assert "as of 2025-01-01 on 5 levels" in s["analysed"]


def test_a_customer_whose_returns_outweigh_purchases_is_left_out_of_the_summary():
    result = analyse_rfm(tx([("a", "1", "2024-01-05", 10.0), ("a", "2", "2024-01-06", -50.0),
                             ("b", "3", "2024-01-07", 5.0)]))
    assert result.rfm["customer_id"].tolist() == ["b"]          # a kept nothing (net -40): no buyer
    assert result.info["customers_kept_nothing"] == 1
    assert "revenue concentration is not defined" not in " ".join(summarize(result)["findings"])


def test_the_frequency_text_is_generated_from_the_data_not_assumed():
    result = analyse_rfm(shop(300, seed=9), as_of="2025-01-01")
    f = result.rfm["frequency"]
    note = frequency_note(result)
    assert f"{100 * (f == 1).mean():.0f}% of customers bought once and {100 * (f <= 2).mean():.0f}% at most twice" in note
    groups = result.rfm["f_score"].value_counts()
    assert f"the F levels hold between {groups.min():,} and {groups.max():,} customers" in note
    assert "Most customers" not in note
    # a shop of loyal customers: nobody orders once, and the text says so
    rows = [(f"c{i}", f"{i}-{k}", f"2024-0{1 + k}-0{1 + i % 9}", 20.0) for i in range(30) for k in range(3 + i % 4)]
    loyal = analyse_rfm(tx(rows), as_of="2025-01-01")
    assert "0% of customers bought once and 0% at most twice (median 4 purchase orders)" in frequency_note(loyal)
    # everybody once: one F level, and the text names the levels used
    once = analyse_rfm(tx([(f"c{i}", str(i), "2024-03-01", 10.0) for i in range(12)]), as_of="2025-01-01")
    text = frequency_note(once)
    assert "100% of customers bought once" in text and "F uses only 1 of the 5 levels here" in text


def test_the_tier_text_lists_this_runs_rules_and_thresholds():
    result = analyse_rfm(shop(300, seed=9), as_of="2025-01-01")
    lines = tiers_note(result).split("\n")
    th = result.tier_model.thresholds_
    assert lines[0] == f"- **Platinum**: net revenue of at least {th['Platinum']:,.0f} (spends more than at least 95% of customers)"
    assert lines[-1] == "- **Bronze**: everyone else" and len(lines) == 4
    result.currency = "EUR"
    assert f"net revenue of at least EUR {th['Gold']:,.0f}" in tiers_note(result)
    custom = RFMSettings.from_config({"tiers": {"basis": "frequency", "method": "threshold",
                                                "levels": [{"name": "Club", "min": 1000}, {"name": "Others"}]}})
    text = tiers_note(analyse_rfm(shop(50, seed=1), as_of="2025-01-01", settings=custom))
    assert text == "- **Club**: purchase orders of at least 1,000\n- **Others**: everyone else"


def test_the_producer_writes_money_with_the_configured_currency(tmp_path):
    frame = shop(60, seed=2)
    result = build_rfm_artifacts(run_folder(tmp_path, frame, sorted(frame["customer_id"].unique()))())
    assert result.currency == "EUR"  # report.currency of the default config
    s = summarize(result)
    # net revenue is one of the run's headline numbers (segkit.steps.headline), not 02's own
    assert not any(k.startswith("Net revenue") for k in s["headlines"]) and "Net revenue" not in s["analysed"]
    assert "EUR " in tiers_note(result)  # money thresholds in the configured currency


# --------------------------------------------------------------------------- producer
def run_folder(tmp_path, frame: pd.DataFrame, customers: list[str]):
    """A run folder holding the audit's artifacts for ``frame`` (as 01_data_audit writes them)."""
    from segkit.steps.pipeline import open_run

    art = tmp_path / "artifacts"
    art.mkdir(parents=True)
    frame.assign(is_return=frame["amount"] < 0).to_parquet(art / "transactions_clean.parquet", index=False)
    pd.DataFrame({"customer_id": pd.array(customers, dtype="string")}).to_parquet(
        art / "customers_clean.parquet", index=False)
    (art / "audit_summary.json").write_text('{"as_of": "2025-01-01"}')
    return lambda **kw: open_run("02_rfm", run_dir=tmp_path, **kw)


def test_producer_writes_rfm_parquet_and_exactly_its_customer_segments_columns(tmp_path):
    frame = shop(120, seed=3)
    ids = sorted(frame["customer_id"].unique()) + ["PROSPECT"]
    ctx = run_folder(tmp_path, frame, ids)()
    result = build_rfm_artifacts(ctx)
    assert result.as_of == pd.Timestamp("2025-01-01")
    written = pd.read_parquet(tmp_path / "artifacts" / "rfm.parquet")
    assert_frame_equal(written, result.rfm, check_dtype=False)
    buyers = set(kept_value(frame)[2].query("is_buyer")["customer_id"])
    assert len(buyers) == 117  # one customer has only a return invoice, two kept nothing
    assert written["customer_id"].is_unique and set(written["customer_id"]) == buyers
    assert result.info["customers_without_purchase"] == 1
    segments = pd.read_csv(tmp_path / "artifacts" / "customer_segments.csv", dtype={"customer_id": "string"})
    assert segments.columns.tolist() == ["customer_id", "recency_days", "frequency", "monetary_total", "monetary_avg",
                                         "r_score", "f_score", "m_score", "rfm_segment", "tier", "recommended_action"]
    assert segments["customer_id"].tolist() == sorted(ids)
    no_purchase = sorted(set(ids) - buyers)
    assert segments.set_index("customer_id").loc[no_purchase].isna().all().all()
    joined = segments.merge(result.rfm, on="customer_id", suffixes=("", "_rfm"))
    assert (joined["rfm_segment"] == joined["rfm_segment_rfm"]).all()
    assert (joined["r_score"] == joined["r_score_rfm"]).all()


def test_producer_is_byte_for_byte_repeatable_and_honours_the_bins_override(tmp_path):
    frame = shop(80, seed=6)
    open_ctx = run_folder(tmp_path, frame, sorted(frame["customer_id"].unique()))
    build_rfm_artifacts(open_ctx())
    first = (tmp_path / "artifacts" / "customer_segments.csv").read_bytes()
    build_rfm_artifacts(open_ctx())
    assert (tmp_path / "artifacts" / "customer_segments.csv").read_bytes() == first
    result = build_rfm_artifacts(open_ctx(overrides={"rfm": {"bins": 3}}))
    assert set(result.rfm["m_score"]) == {1, 2, 3}
    assert result.settings.bins == 3


def test_producer_reports_a_bad_rfm_config_naming_the_users_file(tmp_path):
    frame = shop(10, seed=1)
    config = tmp_path / "my_config.yml"
    config.write_text("rfm:\n  bins: 99\n")
    ctx = run_folder(tmp_path / "run", frame, [])(config_path=config)
    with pytest.raises(ConfigError, match=r"my_config\.yml: rfm\.bins = 99: use a whole number"):
        build_rfm_artifacts(ctx)
    assert not (tmp_path / "run" / "artifacts" / "rfm.parquet").exists()


# --------------------------------------------------------------------------- the notebook
@pytest.mark.slow
def test_the_notebook_runs_alone_on_the_sample_and_shows_the_analyst_real_customer_ids(tmp_path):
    import re

    from segkit.core.config import project_root

    from run_helpers import run_sample_notebook

    outputs, text = run_sample_notebook("02_rfm", tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    # the analyst's own notebook shows real ids (a customer can be looked up); a run's shared copies
    # are pseudonymised (tests/test_e2e.py, tests/test_privacy.py)
    assert "Segment profiles" in text and re.search(r"\bC\d{6}\b", text)
    assert not re.search(r"\bc-[0-9a-f]{6,}", text)
    assert "What was analysed" in text and "The top 20% of customers" in text
    artifacts = project_root() / "reports" / "interactive" / "02_rfm" / "artifacts"
    rfm = pd.read_parquet(artifacts / "rfm.parquet")
    assert rfm["rfm_segment"].notna().all() and rfm["customer_id"].is_unique


# --------------------------------------------------------------------------- plots
def test_rf_grid_labels_cells_with_counts_and_segments_and_follows_the_bin_count():
    from segkit.plots.rfm import plot_rf_grid

    result = analyse_rfm(shop(300, seed=8))
    ax = plot_rf_grid(result.rfm)
    texts = [t.get_text() for t in ax.texts if t.get_text()]
    assert sum(int(t.split("\n")[0].replace(",", "")) for t in texts) == len(result.rfm)
    assert all("\n" in t for t in texts) and ax.get_ylabel() == "R score (5 = most recent)"
    ten = analyse_rfm(shop(300, seed=8), settings=RFMSettings.from_config({"bins": 10})).rfm
    ax = plot_rf_grid(ten)
    assert ax.get_ylabel() == "R score (10 = most recent)"
    assert all("\n" not in t.get_text() for t in ax.texts)  # 10 × 10: counts only


def test_pareto_plot_marks_the_exact_top_share_figure():
    from segkit.plots.rfm import plot_pareto

    result = analyse_rfm(shop(seed=9))
    ax = plot_pareto(result.pareto, result.top_share, result.top_share_revenue)
    assert [t.get_text() for t in ax.texts] == [f"top 20% → {100 * result.top_share_revenue:.0f}% of revenue"]
