"""RFM score bounds and loyalty tiers fitted from a bounded value distribution equal the fit on the full array.

A :class:`~segkit.data.distribution.ValueDistribution` that holds only the rows the fits need (what a Spark
column gives, :mod:`segkit.data.spark_ranks`) must give the same floats as the fit on every customer's value:
edges, thresholds (also ``inf``), effective levels and warnings — with heavy ties, ``m <= bins``, one value,
around the exact-search limit, and with lowered limits so that small arrays are sparse. Pure numpy, fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from segkit.core.errors import DataError
from segkit.data.distribution import (GRID, MAX_EXACT_CANDIDATES, DistributionNeeds, ValueDistribution,
                                      edge_positions, rows_near, share_positions)
from segkit.data.orders import RFMWarning
from segkit.rfm import LoyaltyTiers, RFMScorer, balanced_edges, balanced_edges_of, fit_needs

COLUMNS = {"r": "recency_days", "f": "frequency", "m": "monetary_total"}


def random_values(rng: np.random.Generator, case: int) -> np.ndarray:
    """Per-customer values of four shapes: integer days, order counts (heavy ties), money, repeated floats."""
    n = int(rng.integers(1, 5000))
    kind = case % 4
    if kind == 0:
        return rng.integers(0, rng.integers(1, 3000), n).astype("float64")
    if kind == 1:
        return rng.geometric(0.35, n).astype("float64")
    if kind == 2:
        return np.round(rng.lognormal(3.0, 1.2, n), 2)
    distinct = rng.normal(size=max(1, n // 3))
    return rng.permutation(np.repeat(distinct, rng.integers(1, 6, len(distinct))))


@pytest.mark.parametrize("seed", range(8))
def test_edges_from_the_needed_rows_equal_the_edges_of_the_full_array(seed):
    rng = np.random.default_rng(seed)
    held_partly = 0
    for case in range(8):
        values = random_values(rng, case)
        bins = int(rng.integers(2, 21))
        max_exact = int(rng.choice([3, 40, 200]))  # the default limit: the next test
        needs = DistributionNeeds(bins=bins, max_exact=max_exact)
        sparse = ValueDistribution.of_values(values, needs)
        assert sparse.complete or not needs.every_value(sparse.m)
        held_partly += not sparse.complete
        got = balanced_edges_of(sparse, bins, max_exact)
        assert got.dtype == np.float64
        assert got.tolist() == balanced_edges(values, bins, max_exact).tolist(), (seed, case, bins, max_exact)
    assert held_partly >= 2   # the cases test the search from some of the values, not only from all


@pytest.mark.parametrize("m", [1, 4, 5, 6, MAX_EXACT_CANDIDATES, MAX_EXACT_CANDIDATES + 1,
                               MAX_EXACT_CANDIDATES + 2, MAX_EXACT_CANDIDATES + 3])
def test_edges_at_the_limits_of_the_exact_search_equal_the_full_array(m):
    rng = np.random.default_rng(m)
    values = rng.permutation(np.repeat(np.sort(rng.normal(size=m)), rng.geometric(0.2, m)))
    needs = DistributionNeeds(bins=5)
    sparse = ValueDistribution.of_values(values, needs)
    assert sparse.m == m and sparse.complete == (m - 1 <= MAX_EXACT_CANDIDATES)
    assert balanced_edges_of(sparse, 5).tolist() == balanced_edges(values, 5).tolist()


def test_the_distribution_of_many_values_holds_few_rows():
    rng = np.random.default_rng(7)
    values = np.round(rng.lognormal(4.0, 1.0, 300_000), 2)
    needs = DistributionNeeds(bins=5, shares=(0.95, 0.8, 0.5))
    sparse = ValueDistribution.of_values(values, needs)
    positions = needs.positions(len(values))
    assert len(positions) <= (GRID - 1) + 4 + 3
    assert sparse.m > 30_000 and not sparse.complete
    assert len(sparse.index) <= 5 * len(positions)     # the bound the Spark module promises
    assert len(sparse.index) < sparse.m / 10
    assert balanced_edges_of(sparse, 5).tolist() == balanced_edges(values, 5).tolist()


def scorer_fit_and_warnings(fit) -> tuple[RFMScorer, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scorer = fit()
    return scorer, [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.mark.parametrize("seed", range(6))
def test_the_scorer_fitted_from_distributions_equals_the_scorer_fitted_on_the_table(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 4000))
    base = pd.DataFrame({"recency_days": rng.integers(0, 2000, n),
                         "frequency": rng.choice([1, 1, 1, 2, 3], n) if seed % 2 else np.ones(n, dtype="int64"),
                         "monetary_total": np.round(rng.lognormal(3.0, 1.0, n), 2)})
    bins = int(rng.integers(2, 11))
    scorer = RFMScorer(bins=bins)
    needs = fit_needs(scorer)
    distributions = {k: ValueDistribution.of_values(base[c], needs[c], column=c) for k, c in COLUMNS.items()}
    on_table, table_warnings = scorer_fit_and_warnings(lambda: RFMScorer(bins=bins).fit(base))
    from_parts, part_warnings = scorer_fit_and_warnings(lambda: scorer.fit_distributions(distributions))
    assert {k: v.tolist() for k, v in from_parts.edges_.items()} == {k: v.tolist() for k, v in on_table.edges_.items()}
    assert from_parts.n_groups_ == on_table.n_groups_
    assert from_parts.n_customers_ == on_table.n_customers_ == n
    assert part_warnings == table_warnings
    if seed % 2 == 0:  # everyone bought once: the warning of one frequency level
        assert len(part_warnings) == 1 and "frequency has 1 distinct value(s), so f_score uses 1 level(s) (1)" \
            in part_warnings[0] and part_warnings[0].startswith("RFMWarning: ")
    assert from_parts.transform(base).equals(on_table.transform(base))


TIER_RULES = [(1.0,), (0.999, 0.5), (0.95, 0.8, 0.5), (0.6, 0.0), (0.8, 0.3333333333333333)]


@pytest.mark.parametrize("shares", TIER_RULES)
@pytest.mark.parametrize("max_exact", [0, 25, MAX_EXACT_CANDIDATES])
def test_tier_thresholds_from_the_needed_rows_equal_the_fit_on_the_table(shares, max_exact):
    rng = np.random.default_rng(len(shares) * 1000 + max_exact)
    levels = [{"name": f"tier {i}", "min": s} for i, s in enumerate(shares)] + [{"name": "base"}]
    for case in range(16):
        values = random_values(rng, case)
        if case % 5 == 0:  # the top value held by many: the top tiers empty (inf) or at the top value
            values = np.concatenate([values, np.full(len(values), values.max())])
        table = pd.DataFrame({"monetary_total": values})
        sparse = ValueDistribution.of_values(values, DistributionNeeds(shares=shares, max_exact=max_exact),
                                             column="monetary_total")
        got = LoyaltyTiers(levels).fit_distribution(sparse).thresholds_
        assert got == LoyaltyTiers(levels).fit(table).thresholds_, (case, shares, max_exact)


def test_an_unreachable_tier_is_empty_from_the_distribution_too():
    values = np.arange(3000.0)
    tiers = LoyaltyTiers([{"name": "Top", "min": 1.0}, {"name": "Half", "min": 0.5}, {"name": "Rest"}])
    sparse = ValueDistribution.of_values(values, DistributionNeeds(shares=tiers.shares, max_exact=10))
    assert not sparse.complete and len(sparse.index) <= 10
    assert tiers.fit_distribution(sparse).thresholds_ == {"Top": float("inf"), "Half": 1500.0}
    assert tiers.fit(pd.DataFrame({"monetary_total": values})).thresholds_ == {"Top": float("inf"), "Half": 1500.0}


def test_threshold_tiers_read_no_distribution():
    tiers = LoyaltyTiers([{"name": "Gold", "min": 100}, {"name": "Basic"}], method="threshold")
    assert tiers.shares == ()
    empty = ValueDistribution.of_values(np.array([]))
    assert tiers.fit_distribution(empty).thresholds_ == {"Gold": 100.0}


def test_rows_near_keeps_the_pair_around_each_position_also_from_a_later_start():
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 8, 400)
    counts[149] = 6
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # one position inside value 149's customers: value 150 is the first to reach it, known only from count 149
    positions = np.sort(np.concatenate([rng.uniform(0, counts.sum(), 30), [below[150] - 3.5]]))
    whole = rows_near(below, counts, 0, positions)
    assert whole[149] and whole[150]
    # a partition starting at value 150 sees only its rows and the count of value 149: the same choice
    assert rows_near(below[150:], counts[150:], int(counts[149]), positions).tolist() == whole[150:].tolist()
    for p in positions:
        last_below = int(np.flatnonzero(below < p)[-1])
        assert whole[last_below] and (last_below + 1 == len(counts) or whole[last_below + 1])
    assert whole.sum() <= 5 * len(positions)


def test_a_distribution_built_for_other_needs_is_refused_with_what_to_do():
    values = np.arange(5000.0)
    for_tiers = ValueDistribution.of_values(values, DistributionNeeds(shares=(0.5,)), column="monetary_total")
    with pytest.raises(DataError, match=r"'monetary_total' holds no rows next to customer position\(s\) 9.76562.*"
                                        r"DistributionNeeds of this fit"):
        balanced_edges_of(for_tiers, 5)
    few = ValueDistribution.of_values(values[:1000], DistributionNeeds(shares=(0.5,), max_exact=10))
    with pytest.raises(DataError, match=r"holds 4 of its 1,000 distinct values, but the exact cut search"):
        balanced_edges_of(few, 5)


def test_the_scorer_refuses_distributions_of_other_columns_or_other_customers():
    a = ValueDistribution.of_values([1.0, 2.0, 3.0], column="recency_days")
    b = ValueDistribution.of_values([1.0, 2.0, 3.0], column="frequency")
    c = ValueDistribution.of_values([1.0, 2.0], column="monetary_avg")
    with pytest.raises(DataError, match=r"'m' is the distribution of 'monetary_avg', but this scorer scores "
                                        r"'monetary_total'"):
        RFMScorer(bins=2).fit_distributions({"r": a, "f": b, "m": c})
    with pytest.raises(DataError, match=r"different numbers of customers \(recency_days: 3, frequency: 3, "
                                        r"monetary_avg: 2\)"):
        RFMScorer(bins=2, monetary_col="monetary_avg").fit_distributions({"r": a, "f": b, "m": c})
    with pytest.raises(DataError, match=r"pass \{'r': ..., 'f': ..., 'm': ...\}.*got \['f', 'r'\]"):
        RFMScorer(bins=2).fit_distributions({"r": a, "f": b})
    with pytest.raises(DataError, match="the tiers rank 'monetary_total'"):
        LoyaltyTiers([{"name": "Gold", "min": 0.5}, {"name": "Basic"}]).fit_distribution(b)


def test_contradictory_rows_are_refused():
    with pytest.raises(DataError, match="customers below not adding up between neighbours"):
        ValueDistribution(n=5, m=3, index=[0, 1, 2], values=[1.0, 2.0, 3.0], below=[0, 2, 4], counts=[2, 1, 1])
    with pytest.raises(DataError, match="values not strictly ascending"):
        ValueDistribution(n=2, m=2, index=[0, 1], values=[2.0, 1.0], below=[0, 1], counts=[1, 1])


def test_the_distribution_cannot_be_changed_after_it_is_built():
    d = ValueDistribution.of_values([1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="read-only"):
        d.values[0] = 5.0
    assert balanced_edges(np.array([1.0, 1.0, 2.0]), 2).flags.writeable   # results are the caller's


def test_fit_needs_merges_a_column_that_is_scored_and_tiered():
    tiers = LoyaltyTiers([{"name": "Gold", "min": 0.9}, {"name": "Silver", "min": 0.6}, {"name": "Basic"}])
    needs = fit_needs(RFMScorer(bins=4), tiers)
    assert needs == {"recency_days": DistributionNeeds(bins=4), "frequency": DistributionNeeds(bins=4),
                     "monetary_total": DistributionNeeds(bins=4, shares=(0.6, 0.9))}
    assert needs["monetary_total"].positions(10_000).tolist() == sorted(
        set(edge_positions(10_000, 4).tolist()) | set(share_positions(10_000, [0.6, 0.9]).tolist()))
    assert fit_needs(RFMScorer(), LoyaltyTiers(tiers.levels, method="threshold"))["monetary_total"].shares == ()


@pytest.mark.parametrize("seed", range(6))
def test_quantiles_and_the_median_of_a_partial_distribution_are_numpys_exactly(seed):
    rng = np.random.default_rng(seed)
    values = random_values(rng, seed)
    needs = DistributionNeeds(quantiles=(0.01, 0.5, 0.9, 0.999), median=True, max_exact=int(rng.integers(0, 40)))
    sparse = ValueDistribution.of_values(values, needs)
    assert sparse.complete or len(sparse.index) <= 5 * len(needs.positions(len(values)))
    for q in needs.quantiles:
        assert sparse.higher_quantile(q) == float(np.quantile(values, q, method="higher")), q
    assert sparse.median() == float(np.median(values))
    if not sparse.complete:  # a position nobody asked for is refused, never guessed
        unheld = next(p for p in range(len(values)) if not np.any(
            (sparse.below <= p) & (p < sparse.below + sparse.counts)))
        with pytest.raises(DataError, match=f"holds no row at position {unheld}: it was built for other needs"):
            sparse.value_at(unheld)


def test_a_distribution_from_partial_counts_in_any_order_is_the_distribution_of_the_values():
    values = np.array([7.0, 30.0, 7.0, 14.0, 7.0])
    parts = pd.DataFrame({"value": [30.0, 7.0, 14.0, 7.0], "n": [1, 2, 1, 1]})   # 7.0 counted by two partitions
    counted = ValueDistribution.of_counts(parts["value"], parts["n"], column="gap_days")
    assert counted == ValueDistribution.of_values(values, column="gap_days")
    assert counted != ValueDistribution.of_values(values, column="other")
    assert (counted.median(), counted.higher_quantile(0.75), counted.value_at(4)) == (7.0, 14.0, 30.0)
    with pytest.raises(DataError, match=r"'gap_days': 1 row\(s\) .* 'count' value that is not a whole number "
                                        r"of at least 1, e\.g\. row\(s\) 1"):
        ValueDistribution.of_counts([1.0, 2.0], [3, 0], column="gap_days")
    with pytest.raises(DataError, match=r"1 value\(s\) are missing \(NaN\), e\.g\. row\(s\) 2"):
        ValueDistribution.of_counts([1.0, 2.0, np.nan], [1, 1, 1])
    with pytest.raises(DataError, match="is empty; there is no median"):
        ValueDistribution.of_values([]).median()


def test_exact_sums_refuse_infinite_values_and_rows_of_groups_not_among_the_keys():
    from segkit.core.errors import DataError
    from segkit.data.distribution import exact_float, exact_sums

    with pytest.raises(DataError, match=r"^clv_12m: 1 infinite value\(s\) where a sum is shown"):
        exact_sums(pd.DataFrame({"clv_12m": [np.inf, 1.0]}), np.array(["a", "a"]), ["a"])
    with pytest.raises(ValueError, match=r"rows of groups not among keys \(\['zz'\]\)"):
        exact_sums(pd.DataFrame({"x": [1.0, 2.0, 100.0]}), np.array(["a", "b", "zz"]), ["a", "b"])
    sums = exact_sums(pd.DataFrame({"x": [1.0, np.nan, 100.0]}), np.array(["a", "b", "b"]), ["a", "b"])
    assert [exact_float(v) for v in sums["x"]] == [1.0, 100.0]  # NaN left out, as a float sum with skipna
