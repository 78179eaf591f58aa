"""RFM analysis: scores, named segments, tiers and actions on the per-customer RFM base.

The RFM base (recency, frequency, monetary value per customer) is built from order lines in
:mod:`segkit.data.orders` (:func:`~segkit.data.orders.rfm_table`; its DuckDB twin in
:mod:`segkit.data.engine`). Here, what notebook 02 shows of it is summarised bounded
(:class:`RFMOverview`, below) and anything learned from a customer base is an estimator
(:class:`RFMScorer`, :class:`LoyaltyTiers`) so an analyst can fit on one month and score the next.
:func:`segkit.steps.rfm.build_rfm_artifacts` is the producer behind ``notebooks/02_rfm.ipynb``.
Both estimators fit from a column's sorted distinct values with customers below each
(:class:`~segkit.data.distribution.ValueDistribution`): :meth:`RFMScorer.fit` and :meth:`LoyaltyTiers.fit`
count them from the table; :meth:`RFMScorer.fit_distributions` and :meth:`LoyaltyTiers.fit_distribution` take
them bounded, as :mod:`segkit.data.spark_ranks` builds them on Spark for the needs of :func:`fit_needs`, and
give the same bounds and thresholds.

What notebook 02 shows is one bounded object, :class:`RFMOverview` (segment, tier and score tables,
histograms, the R×F grid, the Pareto curve, medians, segment profiles with seeded samples, a capped customer
list), built the same way on both engines: an :class:`OverviewPlan` from value distributions
(:func:`overview_needs`), :class:`RFMPartial` aggregates of parts of the scored base merged by addition
(the pandas path takes the whole base as one part, Spark each partition), :func:`group_medians` and
:class:`PickedRows` read part by part in ``customer_id`` order (:func:`rfm_overview`;
:func:`segkit.steps.rfm.rfm_on_spark` on Spark).

Returns and cancellations follow the audit's cleaned table (see ``docs/DEVELOPING.md``):
cancellation documents are matched to the earlier purchases they take back
(:mod:`segkit.data.cancellations`); an order whose kept net amount is ≤ 0 (fully returned or
cancelled) is **not a purchase**: it does not count in ``frequency`` nor move ``recency``.
``monetary_total`` is the customer's **kept value**, the one per-customer total of segkit (equal to
``lifecycle.parquet``'s): every order and cancellation document before ``as_of``, including what
matched no order (returns of orders placed before the data starts: an unmatched adjustment). A
customer whose kept value is ≤ 0 kept nothing: no buyer, no row, no segment.

Examples
--------
>>> rfm = pd.DataFrame({"customer_id": list("abcd"), "recency_days": [3, 40, 200, 9],
...                     "frequency": [6, 2, 1, 3], "monetary_total": [600.0, 80.0, 15.0, 140.0]})
>>> RFMScorer(bins=2).fit_transform(rfm)[["r_score", "f_score", "m_score"]].values.tolist()
[[2, 2, 2], [1, 1, 1], [1, 1, 1], [2, 2, 2]]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from segkit.core.config import load_config
from segkit.core.errors import ConfigError, DataError
from segkit.core.modelio import float_array, from_pairs, model_dict, model_parts, pairs
from segkit.data.distribution import (GRID, MAX_EXACT_CANDIDATES, SHARE_TOLERANCE, DistributionNeeds,
                                      ValueDistribution, above_sums, edge_positions, exact_mean, exact_ratio,
                                      exact_sum, exact_sums, linear_positions)
from segkit.data.orders import RFMWarning, no_missing, require_columns, rfm_with_info

__all__ = ["MAX_EXACT_CANDIDATES", "GRID", "balanced_edges", "balanced_edges_of", "fit_needs", "group_scores",
    "to_five_point",
    "SCORE_COLUMNS", "SINGLE_LEVEL_SCORE", "METRIC_NAMES", "RFMScorer", "SCALE", "BOX_KEYS", "SEGMENT_KEYS",
    "SegmentMap", "LoyaltyTiers", "MONETARY_COLUMNS",
    "SEGMENT_CSV_COLUMNS", "RFMSettings", "RFMResult", "rfm_labels", "analyse_rfm",
    "score_base", "warn_orders_after_as_of", "require_buyers", "rfm_warning_messages", "group_rows", "exact_means", "exact_ratios", "CLIP_QUANTILE", "HISTOGRAM_BINS", "MAX_BARS", "PARETO_POINTS",
    "RISK_SEGMENTS", "PROFILE_COLUMNS", "customer_list_columns",
    "pareto_ranks", "top_customers", "plotted_columns", "overview_needs", "OverviewPlan", "HistogramCounts",
    "Histogram", "rf_cells", "RFMPartial", "median_groups", "group_medians", "profile_positions", "PickedRows",
    "profile_frame", "RFMOverview", "rfm_overview", "segment_sums", "group_sums", "add_group_sums", "profile_means"]

# --------------------------------------------------------------------------- validation helpers
# --------------------------------------------------------------------------- lifetimes summary
# --------------------------------------------------------------------------- orders and RFM table
# --------------------------------------------------------------------------- tie-aware scoring
def balanced_edges(values: np.ndarray | pd.Series, bins: int, max_exact: int = MAX_EXACT_CANDIDATES) -> np.ndarray:
    """Lower bounds of score groups 2..g: contiguous groups of tied-together values, as equal
    in size as the ties allow.

    A value is never split between two groups. With ``m`` distinct values and ``m >= bins``
    there are exactly ``bins`` non-empty groups, chosen to minimise the sum of squared group
    sizes (the variance of the group sizes); among equally balanced choices, the cuts closest
    to the plain quantile positions ``j·n/bins`` win. With ``m < bins`` every distinct value
    is its own group (``m`` groups). The search is exact (dynamic programming over all cut
    points) up to ``max_exact`` (1,024) distinct values; above that the candidate cuts are those next to every
    1/512-th of the customers (and next to the ideal quantiles), so each cut is within n/512
    customers of the best one. The search itself is :func:`balanced_edges_of` (on the values'
    :class:`~segkit.data.distribution.ValueDistribution`, which a Spark column also gives).

    Parameters
    ----------
    values : array-like of float
        The reference values (one per customer), no NaN.
    bins : int
        Requested number of groups.
    max_exact : int, default MAX_EXACT_CANDIDATES
        Distinct values up to which the search is exact.

    Returns
    -------
    ndarray
        ``g - 1`` increasing values; a value ``x`` is in group ``1 + #(edges <= x)``.

    Examples
    --------
    Six customers bought once, two twice, one three times, one four times: a plain quintile
    cut would split the one-order customers; here they stay together.

    >>> balanced_edges(np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 4]), 3).tolist()
    [2.0, 3.0]
    >>> balanced_edges(np.array([1.0, 2.0, 3.0, 4.0]), 3).tolist()   # sizes 1, 2, 1
    [2.0, 4.0]
    """
    return balanced_edges_of(ValueDistribution.of_values(values), bins, max_exact)


def balanced_edges_of(distribution: ValueDistribution, bins: int, max_exact: int = MAX_EXACT_CANDIDATES) -> np.ndarray:
    """:func:`balanced_edges` of the values a :class:`~segkit.data.distribution.ValueDistribution` describes.

    Above ``max_exact`` distinct values the distribution may hold only the rows that
    ``DistributionNeeds(bins=bins, max_exact=max_exact)`` keeps (e.g. built on Spark executors by
    :mod:`segkit.data.spark_ranks`); the edges are the same floats as on the full array.

    Examples
    --------
    >>> values = np.repeat(np.arange(2000.0), np.arange(2000) % 3 + 1)
    >>> sparse = ValueDistribution.of_values(values, DistributionNeeds(bins=5))
    >>> sparse.complete, balanced_edges_of(sparse, 5).tolist() == balanced_edges(values, 5).tolist()
    (False, True)
    """
    m, n = distribution.m, distribution.n
    if m <= bins:
        return distribution.require_complete(f"{bins} score levels of {m} distinct values").values[1:].copy()
    if m - 1 > max_exact:
        first = distribution.first_reaching(distribution.below.astype("float64"), edge_positions(n, bins))
        gaps = np.unique(np.clip(np.concatenate([first, first - 1]), 1, m - 1))  # cut before value `gap`
    else:
        gaps = np.arange(1, m)
        distribution.require_complete(f"the exact cut search (up to {max_exact:,} distinct values)")
    rows = distribution.rows(gaps)
    size_below = distribution.below[rows].astype("float64")  # customers before each candidate cut
    c = len(size_below)
    tie_weight = 1.0 / ((bins - 1) * n + 1.0)  # secondary criterion, always < 1 in total
    ideal = n * np.arange(1, bins) / bins
    cost = size_below ** 2 + tie_weight * np.abs(size_below - ideal[0])
    back = []
    later = np.triu(np.ones((c, c), dtype=bool), k=1)  # previous cut index < this cut index
    for j in range(1, bins - 1):
        step = np.where(later, cost[:, None] + (size_below[None, :] - size_below[:, None]) ** 2, np.inf)
        arg = np.argmin(step, axis=0)
        cost = step[arg, np.arange(c)] + tie_weight * np.abs(size_below - ideal[j])
        back.append(arg)
    total = cost + (n - size_below) ** 2
    cut = [int(np.argmin(total))]
    for arg in reversed(back):
        cut.append(int(arg[cut[-1]]))
    return distribution.values[rows[np.array(cut[::-1])]].copy()


def group_scores(n_groups: int, bins: int, reverse: bool = False) -> np.ndarray:
    """Score (1..bins) of each of ``n_groups`` ordered groups: group ``j`` of ``g`` scores
    ``ceil(bins·(j − ½)/g)``, the score whose band holds the middle of the group's band.

    With ``g == bins`` group ``j`` scores ``j``. With fewer groups (ties) the scores spread
    over the scale instead of bunching at the bottom: one group scores the middle, two groups
    score 2 and 4 on a 1–5 scale. ``reverse`` gives the highest score to the first group.

    Examples
    --------
    >>> group_scores(5, 5).tolist(), group_scores(2, 5).tolist(), group_scores(1, 5).tolist()
    ([1, 2, 3, 4, 5], [2, 4], [3])
    >>> group_scores(3, 5, reverse=True).tolist()
    [5, 3, 1]
    """
    j = np.arange(1, n_groups + 1)
    if reverse:
        j = j[::-1]
    return (bins * (2 * j - 1) + 2 * n_groups - 1) // (2 * n_groups)


def to_five_point(scores: np.ndarray | pd.Series, bins: int) -> np.ndarray:
    """Map scores on a 1..bins scale to the 1–5 scale of the segment map (band midpoints).

    Score ``s`` of ``bins`` covers the quantile band ``[(s−1)/bins, s/bins]``; it maps to the
    1–5 score whose band holds that band's midpoint. ``bins=5`` is unchanged; ``bins=10`` maps
    1,2→1, 3,4→2 …; ``bins=3`` maps to 1, 3, 5; ``bins=4`` to 1, 2, 4, 5.

    Examples
    --------
    >>> to_five_point(np.arange(1, 11), 10).tolist()
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    >>> to_five_point(np.array([1, 2, 3, 4]), 4).tolist()
    [1, 2, 4, 5]
    """
    s = np.asarray(scores, dtype="int64")
    return (5 * (2 * s - 1) + 2 * bins - 1) // (2 * bins)


SCORE_COLUMNS = {"r": "r_score", "f": "f_score", "m": "m_score"}
#: Score of a metric with one distinct value (it cannot separate customers): ``"middle"`` =
#: :func:`group_scores` of one group, ``"lowest"`` = 1. Frequency scores the lowest level: the
#: segment map reads a high F as "buys often" (Champions, Loyal Customers, Can't Lose Them are
#: defined by a high FM), and when every customer bought the same number of times nobody buys
#: more often than anyone else; in the usual case, everyone bought once, F = 1 ("fewest
#: orders") is literally true. Recency and spend have no such reading: they stay neutral.
SINGLE_LEVEL_SCORE: dict[str, str] = {"r": "middle", "f": "lowest", "m": "middle"}
METRIC_NAMES: dict[str, str] = {"r": "recency", "f": "frequency", "m": "monetary value"}


class RFMScorer(TransformerMixin, BaseEstimator):
    """Scores 1..``bins`` for recency, frequency and monetary value, learned from a base.

    ``fit`` learns, per metric, the value bounds of the score groups from a reference base
    (see :func:`balanced_edges`); ``transform`` scores any table with the same columns using
    those bounds, so an analyst can fit on one month and score the next.

    Ties: a value is never split between two scores (customers with the same recency,
    frequency or spend always get the same score), and groups are as balanced as ties allow.
    When a metric has fewer distinct values than ``bins`` (e.g. every customer ordered once),
    it gets fewer effective groups, spread over the scale by :func:`group_scores`, and ``fit``
    warns (:class:`RFMWarning`) — as pymc-marketing's ``rfm_segments`` falls back to fewer
    quartiles with a warning. A metric with a single value cannot separate customers: recency
    and monetary value then score the neutral middle for everyone, frequency scores 1 (see
    :data:`SINGLE_LEVEL_SCORE`). Recency is reversed: the
    most recent customers score ``bins``. New values beyond the reference range take the
    first/last score; values between two reference groups take the lower group.

    Parameters
    ----------
    bins : int, default 5
        Number of score levels (2–20).
    recency_col, frequency_col, monetary_col : str
        Columns of the RFM table to score.

    Attributes
    ----------
    edges_ : dict[str, ndarray]
        Per metric (``"r"``, ``"f"``, ``"m"``), the lower bound of groups 2..g (ascending values).
    n_groups_ : dict[str, int]
        Effective number of groups per metric (``< bins`` when ties leave too few values).
    n_customers_ : int
        Size of the reference base.

    Examples
    --------
    >>> base = pd.DataFrame({"recency_days": [1, 5, 9, 30, 60], "frequency": [5, 4, 3, 2, 1],
    ...                      "monetary_total": [50.0, 40.0, 30.0, 20.0, 10.0]})
    >>> scorer = RFMScorer(bins=5).fit(base)
    >>> scorer.transform(base)["r_score"].tolist()
    [5, 4, 3, 2, 1]
    >>> scorer.transform(pd.DataFrame({"recency_days": [2], "frequency": [9],
    ...                                "monetary_total": [45.0]})).iloc[0].tolist()
    [5, 5, 4]
    """

    def __init__(self, bins: int = 5, recency_col: str = "recency_days", frequency_col: str = "frequency",
                 monetary_col: str = "monetary_total"):
        self.bins = bins
        self.recency_col = recency_col
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col

    def _columns(self) -> dict[str, str]:
        return {"r": self.recency_col, "f": self.frequency_col, "m": self.monetary_col}

    def _values(self, rfm: pd.DataFrame, metric: str, what: str) -> np.ndarray:
        column = self._columns()[metric]
        require_columns(rfm, [column], what, "Score the output of segkit.data.orders.rfm_table or pass the "
                         "column names (recency_col, frequency_col, monetary_col).")
        values = pd.to_numeric(rfm[column], errors="coerce")
        no_missing(values, column, what)
        return values.to_numpy(dtype="float64")

    def _check_bins(self) -> None:
        if isinstance(self.bins, bool) or not isinstance(self.bins, (int, np.integer)) or not 2 <= self.bins <= 20:
            raise ConfigError(f"rfm.bins = {self.bins!r}: use a whole number of score levels from 2 to 20 "
                              "(5 is the usual RFM scale).")

    def fit(self, rfm: pd.DataFrame, y: object = None) -> "RFMScorer":
        """Learn the score bounds from the reference base ``rfm`` (one row per customer)."""
        self._check_bins()
        if len(rfm) == 0:
            raise DataError("RFMScorer.fit: the reference table has no customers; there is nothing to "
                            "learn score bounds from. Check as_of and the transactions.")
        return self._learn({metric: ValueDistribution.of_values(self._values(rfm, metric, "RFMScorer.fit"))
                            for metric in "rfm"}, stacklevel=3)

    def fit_distributions(self, distributions: dict[str, ValueDistribution]) -> "RFMScorer":
        """Learn the score bounds from the value distributions of the reference base's three columns.

        The same fitted attributes and warnings as :meth:`fit` on the table the distributions describe,
        for the bounded inputs a Spark column gives (:func:`segkit.data.spark_ranks.value_distribution`
        built with :func:`fit_needs`).

        Parameters
        ----------
        distributions : dict
            ``{"r": ..., "f": ..., "m": ...}``: the :class:`~segkit.data.distribution.ValueDistribution`
            of ``recency_col``, ``frequency_col``, ``monetary_col`` (a distribution that names another
            column is refused), all of the same customers.

        Examples
        --------
        >>> base = pd.DataFrame({"recency_days": [1, 5, 9, 30], "frequency": [1, 1, 1, 2],
        ...                      "monetary_total": [5.0, 10.0, 20.0, 40.0]})
        >>> columns = {"r": "recency_days", "f": "frequency", "m": "monetary_total"}
        >>> fitted = RFMScorer(bins=2).fit_distributions(
        ...     {k: ValueDistribution.of_values(base[c], column=c) for k, c in columns.items()})
        >>> {k: v.tolist() for k, v in fitted.edges_.items()}
        {'r': [9.0], 'f': [2.0], 'm': [20.0]}
        """
        self._check_bins()
        if not isinstance(distributions, dict) or sorted(distributions) != ["f", "m", "r"]:
            raise DataError("RFMScorer.fit_distributions: pass {'r': ..., 'f': ..., 'm': ...}, the value "
                            f"distributions of {', '.join(self._columns().values())}; got "
                            f"{sorted(distributions) if isinstance(distributions, dict) else type(distributions).__name__}.")
        for metric, column in self._columns().items():
            named = distributions[metric].column
            if named is not None and named != column:
                raise DataError(f"RFMScorer.fit_distributions: '{metric}' is the distribution of {named!r}, but "
                                f"this scorer scores {column!r}. Pass the distribution of {column!r}.")
        sizes = {metric: distributions[metric].n for metric in "rfm"}
        if len(set(sizes.values())) > 1:
            raise DataError(f"RFMScorer.fit_distributions: the distributions describe different numbers of "
                            f"customers ({', '.join(f'{self._columns()[k]}: {v:,}' for k, v in sizes.items())}); "
                            "build all three from the same RFM table.")
        if sizes["r"] == 0:
            raise DataError("RFMScorer.fit_distributions: the reference table has no customers; there is nothing "
                            "to learn score bounds from. Check as_of and the transactions.")
        return self._learn(distributions, stacklevel=3)

    def _learn(self, distributions: dict[str, ValueDistribution], stacklevel: int) -> "RFMScorer":
        self.edges_, self.n_groups_ = {}, {}
        fewer = []
        for metric in "rfm":
            edges = balanced_edges_of(distributions[metric], int(self.bins))
            self.edges_[metric] = edges
            self.n_groups_[metric] = len(edges) + 1
            if len(edges) + 1 < self.bins:
                fewer.append(f"{self._columns()[metric]} has {len(edges) + 1} distinct value(s), "
                             f"so {SCORE_COLUMNS[metric]} uses {len(edges) + 1} level(s) "
                             f"({', '.join(map(str, sorted(set(self.level_scores(metric).tolist()))))})")
        self.n_customers_ = distributions["r"].n
        if fewer:
            warnings.warn(f"Fewer effective score levels than bins={self.bins}: " + "; ".join(fewer) + ".",
                          RFMWarning, stacklevel=stacklevel)
        return self

    def level_scores(self, metric: str) -> np.ndarray:
        """Score of each fitted group of ``metric`` (``"r"``, ``"f"``, ``"m"``), lowest values first.

        :func:`group_scores` of the fitted groups; a metric with a single group scores as
        :data:`SINGLE_LEVEL_SCORE` says.
        """
        n_groups = self.n_groups_[metric]
        if n_groups == 1 and SINGLE_LEVEL_SCORE[metric] == "lowest":
            return np.array([1], dtype="int64")
        return group_scores(n_groups, int(self.bins), reverse=metric == "r")

    def unseparated(self) -> list[str]:
        """Metrics (``"r"``, ``"f"``, ``"m"``) with one distinct value in the reference base: they
        cannot separate customers."""
        check_is_fitted(self, ["edges_", "n_groups_"])
        return [metric for metric in "rfm" if self.n_groups_[metric] == 1]

    def transform(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Scores ``r_score, f_score, m_score`` (int64, 1..bins) for the rows of ``rfm``."""
        check_is_fitted(self, ["edges_", "n_groups_"])
        out = {}
        for metric in "rfm":
            group = np.searchsorted(self.edges_[metric], self._values(rfm, metric, "RFMScorer.transform"),
                                    side="right")
            out[SCORE_COLUMNS[metric]] = self.level_scores(metric)[group].astype("int64")
        return pd.DataFrame(out, index=rfm.index)

    def to_dict(self) -> dict:
        """The fitted score bounds as plain JSON-able values (see :mod:`segkit.core.modelio`).

        Examples
        --------
        >>> import json
        >>> base = pd.DataFrame({"recency_days": [1, 5, 9], "frequency": [3, 2, 1], "monetary_total": [30.0, 20.0, 10.0]})
        >>> scorer = RFMScorer(bins=3).fit(base)
        >>> RFMScorer.from_dict(json.loads(json.dumps(scorer.to_dict()))).transform(base).equals(scorer.transform(base))
        True
        """
        check_is_fitted(self, ["edges_", "n_groups_"])
        params = {"bins": int(self.bins), "recency_col": self.recency_col, "frequency_col": self.frequency_col,
                  "monetary_col": self.monetary_col}
        fitted = {"edges_": {m: [float(v) for v in self.edges_[m]] for m in "rfm"},
                  "n_groups_": {m: int(self.n_groups_[m]) for m in "rfm"}, "n_customers_": int(self.n_customers_)}
        return model_dict("RFMScorer", params, fitted)

    @classmethod
    def from_dict(cls, data: object) -> "RFMScorer":
        """A fitted scorer from :meth:`to_dict`'s output (:class:`DataError` says what is wrong)."""
        params, fitted = model_parts(data, "RFMScorer", params=("bins", "recency_col", "frequency_col", "monetary_col"),
                                     fitted=("edges_", "n_groups_", "n_customers_"))
        scorer = cls(**{k: params[k] for k in ("bins", "recency_col", "frequency_col", "monetary_col")})
        try:
            scorer.edges_ = {m: float_array(fitted["edges_"][m], f"edges_.{m}", shape=(None,)) for m in "rfm"}
            scorer.n_groups_ = {m: int(fitted["n_groups_"][m]) for m in "rfm"}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Saved RFMScorer: edges_ or n_groups_ has the wrong form ({exc}). Fit the scorer again.") from None
        scorer.n_customers_ = int(fitted["n_customers_"])
        return scorer



# --------------------------------------------------------------------------- named segments
SCALE = 5  # the segment map is defined on 1-5 scores
BOX_KEYS = ("r", "f", "m", "fm")
SEGMENT_KEYS = ("name", "action", "description", "any_of") + BOX_KEYS


def _combo(r: int, f: int, m: int) -> str:
    return f"R{r} F{f} M{m}"


def _list_combos(combos: list[str], limit: int = 8) -> str:
    more = f" and {len(combos) - limit} more" if len(combos) > limit else ""
    return "; ".join(combos[:limit]) + more


def _score_range(value: object, where: str) -> tuple[int, int]:
    bounds = value if isinstance(value, (list, tuple)) else [value]
    ok = (len(bounds) in (1, 2) and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= SCALE
                                        for b in bounds))
    if not ok or bounds[0] > bounds[-1]:
        raise ConfigError(f"{where} = {value!r}: use one score 1-5 or a range [low, high] with "
                          "1 <= low <= high <= 5.")
    return int(bounds[0]), int(bounds[-1])


class SegmentMap:
    """Named segments over (R, F, M) scores on the 1–5 scale, validated exhaustive and disjoint.

    Built from the ``rfm.segments`` list of the config (see ``segkit/defaults/rfm.yml``): each
    segment has a ``name``, an ``action``, optional ``description`` and one box of inclusive
    score ranges over ``r, f, m`` and ``fm = ceil((f + m) / 2)`` (absent key = any score), or
    ``any_of:`` a list of such boxes. Every one of the 125 (R, F, M) combinations must fall in
    exactly one segment and every segment must be reachable; otherwise :class:`ConfigError`
    names the overlapping or uncovered combinations.

    Attributes
    ----------
    names : list of str
        Segment names in config order.
    actions, descriptions : dict
        Recommended action and description per segment.
    lookup : ndarray, shape (5, 5, 5)
        Index into ``names`` of combination ``(r-1, f-1, m-1)``.

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> segments = SegmentMap.from_config(load_config()["rfm"]["segments"])
    >>> segments.assign([5, 1, 3], [5, 1, 1], [5, 1, 1]).tolist()
    ['Champions', 'Lost', 'Promising']
    """

    def __init__(self, names: list[str], actions: dict[str, str], descriptions: dict[str, str],
                 lookup: np.ndarray):
        self.names = names
        self.actions = actions
        self.descriptions = descriptions
        self.lookup = lookup

    @classmethod
    def from_config(cls, segments: object, where: str = "rfm.segments") -> "SegmentMap":
        """Validate a ``segments`` list from the config and build the lookup table."""
        if not isinstance(segments, list) or not segments:
            raise ConfigError(f"{where} must be a non-empty list of segments (name, action, score ranges); "
                              f"got {type(segments).__name__}. See segkit/defaults/rfm.yml.")
        r, f, m = np.meshgrid(np.arange(1, 6), np.arange(1, 6), np.arange(1, 6), indexing="ij")
        grid = {"r": r, "f": f, "m": m, "fm": (f + m + 1) // 2}
        matches, names, actions, descriptions = [], [], {}, {}
        for i, seg in enumerate(segments):
            here = f"{where}[{i}]"
            if not isinstance(seg, dict) or not isinstance(seg.get("name"), str) or not seg["name"].strip():
                raise ConfigError(f"{here} needs a `name:` (text), e.g. `- name: Champions`.")
            name = seg["name"]
            here = f"{where} '{name}'"
            unknown = sorted(set(seg) - set(SEGMENT_KEYS))
            if unknown:
                raise ConfigError(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(SEGMENT_KEYS)}.")
            if name in actions:
                raise ConfigError(f"{here} is defined twice; give one entry with `any_of:` listing its boxes.")
            boxes = seg.get("any_of", [{k: seg[k] for k in BOX_KEYS if k in seg}])
            if "any_of" in seg and (any(k in seg for k in BOX_KEYS) or not isinstance(boxes, list) or not boxes):
                raise ConfigError(f"{here}: `any_of:` must be a non-empty list of boxes and replaces r/f/m/fm.")
            hit = np.zeros(r.shape, dtype=bool)
            for j, box in enumerate(boxes):
                if not isinstance(box, dict) or set(box) - set(BOX_KEYS):
                    raise ConfigError(f"{here}: box {j + 1} must be a mapping over {', '.join(BOX_KEYS)}; got {box!r}.")
                inside = np.ones(r.shape, dtype=bool)
                for key, value in box.items():
                    lo, hi = _score_range(value, f"{here}: {key}")
                    inside &= (grid[key] >= lo) & (grid[key] <= hi)
                hit |= inside
            action = seg.get("action", "")
            if not isinstance(action, str):
                raise ConfigError(f"{here}: `action:` must be text; got {action!r}.")
            names.append(name)
            actions[name] = action
            descriptions[name] = str(seg.get("description", ""))
            matches.append(hit)
        stack = np.stack(matches)
        count = stack.sum(axis=0)
        problems = []
        overlap = [(_combo(*(np.array(ix) + 1)), [names[s] for s in np.flatnonzero(stack[(slice(None),) + ix])])
                   for ix in zip(*np.nonzero(count > 1))]
        if overlap:
            problems.append(f"{len(overlap)} combination(s) match more than one segment: "
                            + _list_combos([f"{c} ({', '.join(s)})" for c, s in overlap]))
        gaps = [_combo(*(np.array(ix) + 1)) for ix in zip(*np.nonzero(count == 0))]
        if gaps:
            problems.append(f"{len(gaps)} combination(s) match no segment: {_list_combos(gaps)}")
        unreachable = [n for n, hit in zip(names, matches) if not hit.any()]
        if unreachable:
            problems.append(f"segment(s) matching no combination: {', '.join(unreachable)}")
        if problems:
            raise ConfigError(f"{where}: every (R, F, M) score combination must fall in exactly one segment. "
                              + ". ".join(problems) + ". Adjust the score ranges in your config.")
        return cls(names, actions, descriptions, stack.argmax(axis=0))

    def assign(self, r: object, f: object, m: object) -> pd.Series:
        """Segment name of each (r, f, m) triple of 1–5 scores."""
        r, f, m = (np.asarray(v, dtype="int64") for v in (r, f, m))
        idx = self.lookup[r - 1, f - 1, m - 1]
        return pd.Series(np.array(self.names, dtype=object)[idx], dtype="string")

    def combinations(self) -> pd.DataFrame:
        """All 125 combinations with their segment (``r, f, m, fm, segment``)."""
        r, f, m = (a.ravel() for a in np.meshgrid(*[np.arange(1, 6)] * 3, indexing="ij"))
        return pd.DataFrame({"r": r, "f": f, "m": m, "fm": (f + m + 1) // 2,
                             "segment": self.assign(r, f, m).to_numpy()})

    def to_dict(self) -> dict:
        """The validated map as plain JSON-able values: names, actions, descriptions and the 5x5x5 lookup.

        Examples
        --------
        >>> segments = SegmentMap.from_config(load_config()["rfm"]["segments"])
        >>> SegmentMap.from_dict(segments.to_dict()).combinations().equals(segments.combinations())
        True
        """
        return model_dict("SegmentMap", {"names": list(self.names), "actions": pairs(self.actions),
                                         "descriptions": pairs(self.descriptions)},
                          {"lookup": np.asarray(self.lookup, dtype="int64").tolist()})

    @classmethod
    def from_dict(cls, data: object) -> "SegmentMap":
        """A segment map from :meth:`to_dict`'s output (:class:`DataError` says what is wrong)."""
        params, fitted = model_parts(data, "SegmentMap", params=("names", "actions", "descriptions"), fitted=("lookup",))
        names = [str(n) for n in params["names"]]
        lookup = float_array(fitted["lookup"], "lookup", shape=(SCALE, SCALE, SCALE)).astype("int64")
        if lookup.min() < 0 or lookup.max() >= len(names):
            raise DataError(f"Saved SegmentMap: the lookup names segment numbers outside 0..{len(names) - 1}. "
                            "Build the map from the config again.")
        return cls(names, from_pairs(params["actions"], "actions"), from_pairs(params["descriptions"], "descriptions"),
                   lookup)


# --------------------------------------------------------------------------- loyalty tiers
class LoyaltyTiers(BaseEstimator):
    """Loyalty tiers (e.g. Bronze/Silver/Gold/Platinum) by rules on one column.

    Parameters
    ----------
    levels : list of dict
        ``{"name": ..., "min": ...}`` from the highest tier to the lowest; the last tier takes
        everyone else (its ``min`` is ignored).
    basis : str
        Column ranked (default ``monetary_total``).
    method : {"percentile", "threshold"}
        ``percentile``: ``min`` is the share (0–1) of the reference customers with a strictly
        lower value, so tied customers always share a tier; ``fit`` turns it into a value
        threshold. ``threshold``: ``min`` is a value of ``basis``.

    Attributes
    ----------
    thresholds_ : dict[str, float]
        Lowest value of ``basis`` for each tier but the last (``inf`` = tier empty).

    Examples
    --------
    >>> base = pd.DataFrame({"monetary_total": [10.0, 20.0, 20.0, 40.0, 80.0]})
    >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 0.6}, {"name": "Basic"}]).fit(base)
    >>> tiers.thresholds_
    {'Gold': 40.0}
    >>> tiers.transform(base).tolist()
    ['Basic', 'Basic', 'Basic', 'Gold', 'Gold']
    """

    def __init__(self, levels: list[dict], basis: str = "monetary_total", method: str = "percentile"):
        self.levels = levels
        self.basis = basis
        self.method = method

    @classmethod
    def from_config(cls, tiers: object, where: str = "rfm.tiers") -> "LoyaltyTiers":
        """Build from the ``rfm.tiers`` config section, validating it."""
        if not isinstance(tiers, dict) or not isinstance(tiers.get("levels"), list) or len(tiers["levels"]) < 2:
            raise ConfigError(f"{where} needs `levels:` with at least two tiers, highest first, e.g. "
                              "[{name: Gold, min: 0.8}, {name: Bronze}].")
        method = tiers.get("method", "percentile")
        if method not in ("percentile", "threshold"):
            raise ConfigError(f"{where}.method = {method!r}: use percentile or threshold.")
        levels = tiers["levels"]
        mins = []
        for i, level in enumerate(levels):
            if not isinstance(level, dict) or not isinstance(level.get("name"), str):
                raise ConfigError(f"{where}.levels[{i}] needs a `name:`; got {level!r}.")
            if i < len(levels) - 1:
                value = level.get("min")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{where} tier '{level['name']}' needs a numeric `min:`.")
                if method == "percentile" and not 0 <= value <= 1:
                    raise ConfigError(f"{where} tier '{level['name']}': min = {value} must be a share "
                                      "between 0 and 1 with method percentile (0.95 = top 5 %).")
                mins.append(value)
        if any(a <= b for a, b in zip(mins, mins[1:])):
            raise ConfigError(f"{where}: list tiers from highest to lowest with decreasing `min` "
                              f"(got {mins}).")
        names = [lv["name"] for lv in levels]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: tier names must be unique (got {names}).")
        return cls(levels=levels, basis=tiers.get("basis", "monetary_total"), method=method)

    def _values(self, rfm: pd.DataFrame, what: str) -> np.ndarray:
        require_columns(rfm, [self.basis], what, "Set rfm.tiers.basis to a column of the RFM table.")
        values = pd.to_numeric(rfm[self.basis], errors="coerce")
        no_missing(values, self.basis, what)
        return values.to_numpy(dtype="float64")

    @property
    def names(self) -> list[str]:
        """Tier names from highest to lowest."""
        return [lv["name"] for lv in self.levels]

    @property
    def shares(self) -> tuple[float, ...]:
        """The ``min`` shares of the percentile tiers, highest tier first (empty with method threshold): what
        a fit needs of the basis' distribution (:class:`~segkit.data.distribution.DistributionNeeds`)."""
        return tuple(float(lv["min"]) for lv in self.levels[:-1]) if self.method == "percentile" else ()

    def fit(self, rfm: pd.DataFrame, y: object = None) -> "LoyaltyTiers":
        """Turn the rules into value thresholds on the reference base ``rfm``."""
        x = self._values(rfm, "LoyaltyTiers.fit")
        if self.method == "threshold":  # the rules are the thresholds: no values to count
            x = x[:0]
        return self.fit_distribution(ValueDistribution.of_values(x))

    def fit_distribution(self, distribution: ValueDistribution) -> "LoyaltyTiers":
        """Turn the rules into value thresholds from the value distribution of the basis on the reference base.

        The same ``thresholds_`` as :meth:`fit` on the table it describes; a distribution that holds only
        some values must hold the rows ``DistributionNeeds(shares=self.shares)`` keeps (what
        :func:`segkit.data.spark_ranks.value_distribution` builds from :func:`fit_needs`). With method
        threshold the distribution is not read.

        Examples
        --------
        >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 0.6}, {"name": "Basic"}])
        >>> tiers.fit_distribution(ValueDistribution.of_values([10.0, 20.0, 20.0, 40.0, 80.0])).thresholds_
        {'Gold': 40.0}
        """
        self.thresholds_ = {}
        if self.method == "threshold":
            self.thresholds_ = {lv["name"]: float(lv["min"]) for lv in self.levels[:-1]}
            return self
        if distribution.column is not None and distribution.column != self.basis:
            raise DataError(f"LoyaltyTiers.fit_distribution: the distribution is of {distribution.column!r}, but the "
                            f"tiers rank {self.basis!r}. Pass the distribution of {self.basis!r}.")
        if distribution.n == 0:
            raise DataError("LoyaltyTiers.fit: the reference table has no customers.")
        first = distribution.first_reaching(distribution.below / distribution.n,
                                            np.array(self.shares) - SHARE_TOLERANCE)
        for lv, rank in zip(self.levels[:-1], first.tolist()):
            self.thresholds_[lv["name"]] = (float(distribution.values[distribution.rows([rank])[0]])
                                            if rank < distribution.m else float("inf"))
        return self

    def transform(self, rfm: pd.DataFrame) -> pd.Series:
        """Tier name of each row (string Series, same index)."""
        check_is_fitted(self, "thresholds_")
        x = self._values(rfm, "LoyaltyTiers.transform")
        tier = np.full(len(x), self.levels[-1]["name"], dtype=object)
        for lv in reversed(self.levels[:-1]):  # highest tier written last wins
            tier[x >= self.thresholds_[lv["name"]]] = lv["name"]
        return pd.Series(tier, index=rfm.index, dtype="string")

    def to_dict(self) -> dict:
        """The rules and fitted thresholds as plain JSON-able values (``inf`` = an empty tier, as ``null``).

        Examples
        --------
        >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 0.5}, {"name": "Basic"}])
        >>> tiers = tiers.fit(pd.DataFrame({"monetary_total": [1.0, 5.0]}))
        >>> LoyaltyTiers.from_dict(tiers.to_dict()).thresholds_
        {'Gold': 5.0}
        """
        check_is_fitted(self, "thresholds_")
        return model_dict("LoyaltyTiers", {"levels": [dict(lv) for lv in self.levels], "basis": self.basis,
                                           "method": self.method},
                          {"thresholds_": pairs({k: (float(v) if np.isfinite(v) else None)
                                                 for k, v in self.thresholds_.items()})})

    @classmethod
    def from_dict(cls, data: object) -> "LoyaltyTiers":
        """Fitted tiers from :meth:`to_dict`'s output (:class:`DataError` says what is wrong)."""
        params, fitted = model_parts(data, "LoyaltyTiers", params=("levels", "basis", "method"), fitted=("thresholds_",))
        tiers = cls(levels=params["levels"], basis=params["basis"], method=params["method"])
        tiers.thresholds_ = {str(k): (float("inf") if v is None else float(v))
                             for k, v in from_pairs(fitted["thresholds_"], "thresholds_").items()}
        return tiers


def fit_needs(scorer: RFMScorer, tiers: LoyaltyTiers | None = None) -> dict[str, DistributionNeeds]:
    """Per column, what :meth:`RFMScorer.fit_distributions` and :meth:`LoyaltyTiers.fit_distribution` need of
    its value distribution (a column both scored and tiered, e.g. ``monetary_total``, needs both).

    Examples
    --------
    >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 0.8}, {"name": "Basic"}])
    >>> needs = fit_needs(RFMScorer(bins=4), tiers)
    >>> sorted(needs), needs["monetary_total"] == DistributionNeeds(bins=4, shares=(0.8,))
    (['frequency', 'monetary_total', 'recency_days'], True)
    """
    needs: dict[str, DistributionNeeds] = {}
    roles = [(column, DistributionNeeds(bins=int(scorer.bins))) for column in scorer._columns().values()]
    if tiers is not None and tiers.shares:
        roles.append((tiers.basis, DistributionNeeds(shares=tiers.shares)))
    for column, need in roles:
        needs[column] = needs[column].merge(need) if column in needs else need
    return needs


# --------------------------------------------------------------------------- settings
MONETARY_COLUMNS = ("monetary_total", "monetary_avg")
SEGMENT_CSV_COLUMNS: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "monetary_avg",
    "r_score", "f_score", "m_score", "rfm_segment", "tier", "recommended_action",
)


@dataclass(frozen=True)
class RFMSettings:
    """The validated ``rfm`` config section."""

    bins: int
    monetary_column: str
    top_share: float
    sample_size: int
    segments: SegmentMap
    tiers: LoyaltyTiers

    @classmethod
    def from_config(cls, section: dict | None) -> "RFMSettings":
        """Validate the ``rfm`` section (defaults from ``segkit/defaults/rfm.yml`` if absent).

        Examples
        --------
        >>> RFMSettings.from_config(None).bins
        5
        """
        cfg = {**load_config()["rfm"], **(section or {})}
        bins = cfg.get("bins")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 20:
            raise ConfigError(f"rfm.bins = {bins!r}: use a whole number of score levels from 2 to 20 "
                              "(5 is the usual RFM scale).")
        if cfg.get("monetary_column") not in MONETARY_COLUMNS:
            raise ConfigError(f"rfm.monetary_column = {cfg.get('monetary_column')!r}: use one of "
                              f"{', '.join(MONETARY_COLUMNS)}.")
        top = cfg.get("top_share")
        if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 1:
            raise ConfigError(f"rfm.top_share = {top!r}: use a share between 0 and 1 (0.2 = top 20 %).")
        size = cfg.get("sample_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"rfm.sample_size = {size!r}: use a whole number ≥ 0.")
        return cls(bins=bins, monetary_column=cfg["monetary_column"], top_share=float(top), sample_size=size,
                   segments=SegmentMap.from_config(cfg.get("segments")),
                   tiers=LoyaltyTiers.from_config(cfg.get("tiers")))


# --------------------------------------------------------------------------- the analysis
@dataclass
class RFMResult:
    """Everything notebook 02 shows (see :func:`analyse_rfm`)."""

    rfm: pd.DataFrame | None    # one row per buying customer: RFM values, scores, segment, tier, action (None:
                                # the base stayed on Spark's executors; the notebook reads ``overview``)
    segments: pd.DataFrame      # segment table (non-empty segments, config order)
    tiers: pd.DataFrame         # tier table (non-empty tiers, highest first)
    pareto: pd.DataFrame        # customer_share, revenue_share
    top_share: float            # e.g. 0.2
    top_share_revenue: float    # share of net revenue from the top_share customers (NaN if net ≤ 0)
    as_of: pd.Timestamp
    info: dict                  # counts: orders, exclusions, period, net revenue
    warnings: list[str]
    settings: RFMSettings
    scorer: RFMScorer
    tier_model: LoyaltyTiers
    seed: int = 0
    currency: str = ""          # report.currency of the config, for money in texts ("" = not set)
    overview: "RFMOverview | None" = None  # what notebook 02 shows, bounded (:func:`rfm_overview`)


def group_rows(sums: pd.DataFrame, customers: int, revenue: int, label: str, order: list[str],
               first: dict[str, pd.Series]) -> pd.DataFrame:
    """A segment or tier table from its groups' exact sums (index: group; ``customers`` and the exact sums,
    :func:`~segkit.data.distribution.exact_sums`, of ``frequency`` and ``monetary_total``): customers, shares
    of customers and of net revenue (``revenue``, exact, in all), the ``first`` columns, mean F and M
    (correctly rounded: the same for any split of the customers); non-empty groups in ``order``, the group in
    column ``label``.

    Examples
    --------
    >>> sums = pd.DataFrame({"customers": [2, 1], "frequency": [exact_sum([1.0, 2.0]), exact_sum([4.0])],
    ...                      "monetary_total": [exact_sum([1.0, 2.0]), exact_sum([5.0])]}, index=["B", "A"])
    >>> group_rows(sums, 3, exact_sum([1.0, 2.0, 5.0]), "segment", ["A", "B"], {})[
    ...     ["segment", "customers", "share_of_revenue", "mean_monetary_total"]].values.tolist()
    [['A', 1, 0.625, 5.0], ['B', 2, 0.375, 1.5]]
    """
    counts = sums["customers"].astype("int64")
    table = pd.DataFrame({
        "customers": counts,
        "share_of_customers": counts / max(customers, 1),
        "share_of_revenue": exact_ratios(sums["monetary_total"], revenue) if revenue > 0 else np.nan,
        **first,
        "mean_frequency": exact_means(sums["frequency"], counts),
        "mean_monetary_total": exact_means(sums["monetary_total"], counts),
    }, index=sums.index)
    table = table.loc[[n for n in order if n in table.index]].rename_axis(label).reset_index()
    table[label] = table[label].astype("string")
    return table


def exact_means(sums: pd.Series, counts: pd.Series) -> pd.Series:
    """Per group, the exact sum (:func:`~segkit.data.distribution.exact_sums`) over the customers, correctly
    rounded (float64, the index of ``sums``)."""
    return pd.Series([exact_mean(t, c) for t, c in zip(sums.tolist(), counts.tolist())], index=sums.index,
                     dtype="float64")


def exact_ratios(sums: pd.Series, total: int) -> pd.Series:
    """Per group, its exact sum's share of the exact ``total``, correctly rounded (float64)."""
    return pd.Series([exact_ratio(t, total) for t in sums.tolist()], index=sums.index, dtype="float64")


def rfm_labels(scored: pd.DataFrame, bins: int, segments: SegmentMap, tiers: LoyaltyTiers) -> pd.DataFrame:
    """``rfm_segment, tier, recommended_action`` of scored customers (string columns, same index).

    ``scored`` has ``r_score, f_score, m_score`` (1..``bins``, mapped to the 1-5 scale of the segment
    map by :func:`to_five_point`) and the fitted ``tiers``' basis column. :func:`analyse_rfm` labels its
    base with it, and :mod:`segkit.steps.spark_scoring` every partition of a customer table.

    Examples
    --------
    >>> segments = SegmentMap.from_config(load_config()["rfm"]["segments"])
    >>> tiers = LoyaltyTiers([{"name": "Gold", "min": 100}, {"name": "Basic"}], method="threshold").fit(pd.DataFrame({"monetary_total": [1.0]}))
    >>> scored = pd.DataFrame({"r_score": [5, 1], "f_score": [5, 1], "m_score": [5, 1], "monetary_total": [500.0, 9.0]})
    >>> rfm_labels(scored, 5, segments, tiers)[["rfm_segment", "tier"]].values.tolist()
    [['Champions', 'Gold'], ['Lost', 'Basic']]
    """
    five = {k: to_five_point(scored[k], bins) for k in ("r_score", "f_score", "m_score")}
    segment = pd.Series(segments.assign(five["r_score"], five["f_score"], five["m_score"]).to_numpy(),
                        index=scored.index, dtype="string")
    return pd.DataFrame({"rfm_segment": segment, "tier": tiers.transform(scored),
                         "recommended_action": segment.map(segments.actions).astype("string")}, index=scored.index)


def warn_orders_after_as_of(info: dict) -> None:
    """Warn (:class:`RFMWarning`) that orders on or after ``as_of`` were left out, when ``info`` counts some."""
    if info["orders_after_as_of"]:
        warnings.warn(f"{info['orders_after_as_of']:,} order(s) dated on or after as_of = "
                      f"{info['as_of'].date()} were excluded ({info['customers_after_as_of_only']:,} "
                      "customer(s) have only such orders).", RFMWarning, stacklevel=2)


def require_buyers(customers: int, as_of: pd.Timestamp) -> None:
    """Stop, saying why, when the RFM base has no buying customer: what both engines say (before any fit).

    Raises
    ------
    DataError
        ``customers`` is 0.

    Examples
    --------
    >>> require_buyers(0, pd.Timestamp("2024-06-01"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    segkit.core.errors.DataError: No buying customer before as_of = 2024-06-01: ...
    """
    if customers == 0:
        raise DataError(f"No buying customer before as_of = {pd.Timestamp(as_of):%Y-%m-%d}: no customer kept a "
                        "purchase order (every order before as_of was cancelled, returned in full or has no "
                        "positive net amount), so there is nothing to score. Check as_of and the transactions "
                        "(notebook 01's audit counts the cancellations and returns).")


def rfm_warning_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """The texts of the :class:`RFMWarning` among ``caught`` (the summary shows them); any other warning is
    issued again (not ours to swallow)."""
    for w in caught:
        if not issubclass(w.category, RFMWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [str(w.message) for w in caught if issubclass(w.category, RFMWarning)]


def score_base(rfm: pd.DataFrame, scorer: RFMScorer, segments: SegmentMap, tiers: LoyaltyTiers) -> pd.DataFrame:
    """The RFM base with its scores (``r_score, f_score, m_score``) and labels (:func:`rfm_labels`) appended:
    :func:`analyse_rfm`'s ``rfm``, and on Spark every partition of it (:mod:`segkit.steps.rfm`).

    Examples
    --------
    >>> base = pd.DataFrame({"recency_days": [3, 90], "frequency": [4, 1], "monetary_total": [80.0, 5.0]})
    >>> settings = RFMSettings.from_config(None)
    >>> scorer = RFMScorer(bins=2).fit(base)
    >>> score_base(base, scorer, settings.segments, settings.tiers.fit(base))["rfm_segment"].tolist()
    ['Champions', 'About To Sleep']
    """
    scored = pd.concat([rfm, scorer.transform(rfm)], axis=1)
    return pd.concat([scored, rfm_labels(scored, int(scorer.bins), segments, tiers)], axis=1)


def analyse_rfm(
    transactions: pd.DataFrame | None,
    as_of: str | pd.Timestamp | None = None,
    settings: RFMSettings | None = None,
    seed: int = 0,
    *,
    base: tuple[pd.DataFrame, dict] | None = None,
    list_rows: int | None = None,
) -> RFMResult:
    """The whole RFM analysis of notebook 02 on a transactions table (no files written).

    ``base`` = an RFM table and its counts computed elsewhere (out-of-core,
    :func:`segkit.steps.sources.rfm_for`); then ``transactions`` is not used. ``list_rows`` caps the
    overview's customer list (None: every customer; notebook 02 passes the rows its table shows).

    Builds :func:`rfm_table`, fits :class:`RFMScorer` and :class:`LoyaltyTiers` on this base,
    assigns segments (scores mapped to the 1–5 scale first when ``bins != 5``, see
    :func:`to_five_point`), tiers and actions, and what notebook 02 shows (:func:`rfm_overview`: the segment,
    tier and Pareto tables among it).
    :class:`RFMWarning` messages are collected into ``result.warnings`` (shown in the summary)
    instead of being printed.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> result = analyse_rfm(tx)
    >>> result.rfm[["customer_id", "r_score", "f_score", "m_score", "rfm_segment"]]
      customer_id  r_score  f_score  m_score         rfm_segment
    0           a        3        4        5     Loyal Customers
    1           b        1        4        3     Can't Lose Them
    2           c        5        2        1  Potential Loyalist
    >>> result.warnings[0]  # doctest: +ELLIPSIS
    'Fewer effective score levels than bins=5: recency_days has 3 distinct value(s), so r_score uses 3 level(s) (1, 3, 5); ...'
    """
    settings = settings or RFMSettings.from_config(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RFMWarning)
        rfm, info = base if base is not None else rfm_with_info(transactions, as_of)
        warn_orders_after_as_of(info)
        require_buyers(len(rfm), info["as_of"])
        scorer = RFMScorer(bins=settings.bins, monetary_col=settings.monetary_column).fit(rfm)
        tier_model = settings.tiers.fit(rfm)
    messages = rfm_warning_messages(caught)
    rfm = score_base(rfm, scorer, settings.segments, tier_model)
    overview = rfm_overview(rfm, settings, scorer, tier_model, seed, list_rows)
    return RFMResult(
        overview=overview,
        rfm=rfm,
        segments=overview.segments,
        tiers=overview.tiers,
        pareto=overview.pareto,
        top_share=settings.top_share,
        top_share_revenue=overview.top_share_revenue,
        as_of=info["as_of"],
        info=info,
        warnings=messages,
        settings=settings,
        scorer=scorer,
        tier_model=tier_model,
        seed=seed,
    )


# --------------------------------------------------------------------------- explorer and summary
# --------------------------------------------------------------------------- producer


# --------------------------------------------------------------------------- what notebook 02 shows (bounded)
#: Values above this quantile (pandas' linear one) are shown in the last bar of a distribution plot.
CLIP_QUANTILE = 0.99
#: Bars of a distribution plot of a continuous metric (or of a whole-number metric with many values).
HISTOGRAM_BINS = 40
#: A whole-number metric with at most this many values (after clipping) gets one bar per value.
MAX_BARS = 60
#: Points of the Pareto curve (evenly spaced customer counts; every customer when there are fewer).
PARETO_POINTS = 201
#: Segments of valuable past customers who stopped buying (the summary's at-risk finding).
RISK_SEGMENTS: tuple[str, ...] = ("At Risk", "Can't Lose Them")
#: Columns of a segment profile (notebook 02's explorer): mean, median and the sampled customers' values.
PROFILE_COLUMNS: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "monetary_avg", "tenure_days",
    "r_score", "f_score", "m_score",
)


def customer_list_columns(monetary_column: str) -> list[str]:
    """Columns of notebook 02's customer list.

    Examples
    --------
    >>> customer_list_columns("monetary_total")[-2:]
    ['monetary_total', 'last_order_date']
    """
    return ["customer_id", "rfm_segment", "tier", "r_score", "f_score", "m_score", "recency_days", "frequency",
            monetary_column, "last_order_date"]


def pareto_ranks(customers: int, points: int | None = PARETO_POINTS) -> np.ndarray:
    """Customers (best first) at which the Pareto curve (:attr:`RFMOverview.pareto`) is read: every count ``0 … n``, or ``points``
    evenly spaced ones.

    Examples
    --------
    >>> pareto_ranks(4).tolist(), pareto_ranks(1000, 3).tolist()
    ([0, 1, 2, 3, 4], [0, 500, 1000])
    """
    ranks = np.arange(customers + 1)
    if points is not None and customers + 1 > points:
        ranks = np.unique(np.round(np.linspace(0, customers, points)).astype("int64"))
    return ranks


def top_customers(customers: int, top_share: float) -> int:
    """The customers of the top ``top_share``: ``ceil(top_share · n)`` (ties at the boundary do not matter:
    tied customers bring the same amount)."""
    return int(np.ceil(top_share * customers - 1e-9))


def plotted_columns(settings: RFMSettings) -> tuple[str, ...]:
    """The columns whose distributions notebook 02 plots (recency, frequency, the scored monetary column)."""
    return ("recency_days", "frequency", settings.monetary_column)


def overview_needs(customers: int, settings: RFMSettings) -> dict[str, DistributionNeeds]:
    """What :class:`OverviewPlan` needs of the base's value distributions (besides the fits' needs,
    :func:`fit_needs`): each plotted column's lowest value and clip quantile, the median recency, and the
    ``k``-th largest net revenue for every point of the Pareto curve and the top share.

    Examples
    --------
    >>> needs = overview_needs(1000, RFMSettings.from_config(None))
    >>> needs["recency_days"].median, needs["frequency"].at
    (True, (0, 989, 990))
    """
    needs: dict[str, DistributionNeeds] = {}

    def add(column: str, need: DistributionNeeds) -> None:
        needs[column] = needs[column].merge(need) if column in needs else need

    for column in plotted_columns(settings):
        add(column, DistributionNeeds(at=(0, *linear_positions(customers, CLIP_QUANTILE))))
    add("recency_days", DistributionNeeds(median=True))
    ranks = np.union1d(pareto_ranks(customers), [top_customers(customers, settings.top_share)])
    add("monetary_total", DistributionNeeds(at=tuple(int(customers - k) for k in ranks if k >= 1)))
    return needs


@dataclass(frozen=True)
class OverviewPlan:
    """What the partial aggregates of notebook 02 need that only the whole base knows (from its value
    distributions, :func:`overview_needs`): the customers, each plotted column's (lowest value, clip
    value), the Pareto curve's customer counts with the ``k``-th largest net revenue of each, and the median
    recency.

    Examples
    --------
    >>> base = pd.DataFrame({"recency_days": [3, 9, 40], "frequency": [1, 2, 5],
    ...                      "monetary_total": [10.0, 30.0, 60.0], "monetary_avg": [10.0, 15.0, 12.0]})
    >>> settings = RFMSettings.from_config(None)
    >>> plan = OverviewPlan.of_frame(base, settings)
    >>> plan.ranks.tolist(), plan.kth_largest.tolist()
    ([1, 2, 3], [60.0, 30.0, 10.0])
    """

    customers: int
    ranges: dict[str, tuple[float, float]]
    ranks: np.ndarray
    kth_largest: np.ndarray
    median_recency: float
    top_share: float

    @classmethod
    def of_distributions(cls, distributions: dict[str, ValueDistribution], settings: RFMSettings) -> "OverviewPlan":
        """The plan from distributions that hold :func:`overview_needs` (built by numpy or on Spark)."""
        n = distributions["recency_days"].n
        ranges = {c: (distributions[c].value_at(0), distributions[c].linear_quantile(CLIP_QUANTILE))
                  for c in plotted_columns(settings)}
        ranks = np.union1d(pareto_ranks(n), [top_customers(n, settings.top_share)])
        ranks = ranks[ranks >= 1].astype("int64")
        money = distributions["monetary_total"]
        kth = np.array([money.value_at(n - k) for k in ranks], dtype="float64")
        return cls(customers=n, ranges=ranges, ranks=ranks, kth_largest=kth,
                   median_recency=distributions["recency_days"].median(), top_share=settings.top_share)

    @classmethod
    def of_frame(cls, rfm: pd.DataFrame, settings: RFMSettings) -> "OverviewPlan":
        """The plan of a base held in pandas (the distributions counted by numpy)."""
        needs = overview_needs(len(rfm), settings)
        return cls.of_distributions({c: ValueDistribution.of_values(rfm[c].to_numpy(dtype="float64"), need, column=c)
                                     for c, need in needs.items()}, settings)


@dataclass
class HistogramCounts:
    """One plotted column's counts in a part of the base (additive; :meth:`merge`)."""

    clipped: int            # customers above the clip value
    integral: bool          # every value a whole number
    bars: pd.Series | None  # customers per (clipped) value; None: more than MAX_BARS values
    bins: np.ndarray        # customers per bar of HISTOGRAM_BINS equal bars from the lowest to the clip value

    @classmethod
    def of(cls, values: pd.Series, low: float, top: float) -> "HistogramCounts":
        """The counts of ``values`` with the whole base's lowest value and clip value."""
        values = values.astype("float64")
        clipped = values.clip(upper=top)
        bars = clipped.value_counts() if clipped.nunique() <= MAX_BARS else None
        return cls(clipped=int((values > top).sum()), integral=bool(np.all(np.mod(values, 1) == 0)), bars=bars,
                   bins=np.histogram(clipped, bins=HISTOGRAM_BINS, range=(low, top))[0].astype("int64"))

    @classmethod
    def merge(cls, parts: list["HistogramCounts"]) -> "HistogramCounts":
        bars = None
        if all(p.bars is not None for p in parts):
            bars = pd.concat([p.bars for p in parts]).groupby(level=0).sum()
            bars = bars if len(bars) <= MAX_BARS else None
        return cls(clipped=sum(p.clipped for p in parts), integral=all(p.integral for p in parts), bars=bars,
                   bins=np.sum([p.bins for p in parts], axis=0).astype("int64"))


@dataclass(frozen=True)
class Histogram:
    """A distribution plot of one column (:func:`segkit.plots.rfm.plot_distribution`), from counts.

    ``integer``: one bar per value (``bar_values``, ``bar_counts``); else :data:`HISTOGRAM_BINS` bars
    (``bin_edges``, ``bin_counts``). Values above ``top`` (the clip quantile) are counted at ``top``.
    """

    column: str
    top: float
    clipped: int
    integer: bool
    bar_values: np.ndarray
    bar_counts: np.ndarray
    bin_edges: np.ndarray
    bin_counts: np.ndarray

    @classmethod
    def of_counts(cls, column: str, low: float, top: float, counts: HistogramCounts) -> "Histogram":
        integer = counts.integral and counts.bars is not None
        bars = counts.bars.sort_index() if integer else pd.Series([], dtype="int64")
        return cls(column=column, top=top, clipped=counts.clipped, integer=integer,
                   bar_values=bars.index.to_numpy(dtype="float64"), bar_counts=bars.to_numpy(dtype="int64"),
                   bin_edges=np.histogram(np.array([low, top]), bins=HISTOGRAM_BINS, range=(low, top))[1],
                   bin_counts=counts.bins)

    @classmethod
    def of_values(cls, values: pd.Series | np.ndarray, column: str = "", clip_quantile: float = CLIP_QUANTILE) -> "Histogram":
        """The plot of a column held in pandas (as the partial counts of one part).

        Examples
        --------
        >>> h = Histogram.of_values(pd.Series([1, 1, 2, 3, 12]), "frequency")
        >>> h.integer, h.bar_values.tolist(), h.bar_counts.tolist(), h.clipped
        (True, [1.0, 2.0, 3.0, 11.64], [2, 1, 1, 1], 1)
        """
        x = np.asarray(values, dtype="float64")
        if len(x) == 0:
            return cls(column, 0.0, 0, True, np.array([]), np.array([], dtype="int64"), np.array([]),
                       np.array([], dtype="int64"))
        distribution = ValueDistribution.of_values(x, DistributionNeeds(at=(0, *linear_positions(len(x), clip_quantile))))
        low, top = distribution.value_at(0), distribution.linear_quantile(clip_quantile)
        return cls.of_counts(column, low, top, HistogramCounts.of(pd.Series(x), low, top))


def rf_cells(rfm: pd.DataFrame, x: str = "f_score") -> pd.DataFrame:
    """Customers per (``r_score``, ``x``, ``rfm_segment``): what the R×F grid shows (additive over parts).

    Examples
    --------
    >>> rf_cells(pd.DataFrame({"r_score": [5, 5, 1], "f_score": [5, 5, 1], "rfm_segment": ["A", "A", "B"]}))
       r_score  f_score rfm_segment  customers
    0        1        1           B          1
    1        5        5           A          2
    """
    return (rfm.groupby(["r_score", x, "rfm_segment"], observed=True).size().rename("customers").reset_index()
            .astype({"customers": "int64", "rfm_segment": "string"}))


def group_sums(scored: pd.DataFrame, by: str, columns: Iterable[str]) -> pd.DataFrame:
    """Per group of ``by`` present (index, first-seen order): ``customers`` (int64) and the exact sums
    (:func:`~segkit.data.distribution.exact_sums`, Python ints) of ``columns``: additive over parts, bit for
    bit, whatever the split (:func:`add_group_sums`).

    Examples
    --------
    >>> scored = pd.DataFrame({"rfm_segment": ["A", "A"], **{c: [1, 2] for c in PROFILE_COLUMNS}})
    >>> sums = group_sums(scored, "rfm_segment", ["frequency"])
    >>> int(sums.loc["A", "customers"]), exact_mean(sums.loc["A", "frequency"], 2)
    (2, 1.5)
    """
    columns = list(columns)
    keys = pd.unique(scored[by].astype("object").to_numpy())
    sums = exact_sums(scored[columns].astype("float64"), scored[by].astype("object").to_numpy(), keys)
    sums.insert(0, "customers", scored.groupby(by, sort=False).size().reindex(keys).to_numpy(dtype="int64"))
    return sums.rename_axis(by)


def add_group_sums(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`group_sums` of disjoint parts added up (groups in first-seen order; exact, so any split of
    the customers gives the whole table's sums).

    Examples
    --------
    >>> scored = pd.DataFrame({"tier": ["G", "B", "G"], "m": [1e16, 1.0, -1e16]})
    >>> merged = add_group_sums([group_sums(scored[:1], "tier", ["m"]), group_sums(scored[1:], "tier", ["m"])])
    >>> merged["customers"].tolist(), [exact_mean(t, 1) for t in merged["m"]]
    ([2, 1], [0.0, 1.0])
    """
    keys = list(dict.fromkeys(k for part in parts for k in part.index))
    columns = list(parts[0].columns)
    totals = {c: dict.fromkeys(keys, 0) for c in columns}
    for part in parts:
        for c in columns:
            for k, v in zip(part.index, part[c].tolist()):
                totals[c][k] += v
    out = pd.DataFrame({c: pd.Series([totals[c][k] for k in keys], index=keys, dtype=object) for c in columns})
    out["customers"] = out["customers"].astype("int64")
    return out.rename_axis(parts[0].index.name)


def segment_sums(scored: pd.DataFrame) -> pd.DataFrame:
    """Per segment (index ``rfm_segment``): ``customers`` and the exact sums of :data:`PROFILE_COLUMNS`
    (:func:`group_sums`; divided by ``customers``, the profile's mean row).

    Examples
    --------
    >>> scored = pd.DataFrame({"rfm_segment": ["A", "A"], **{c: [1, 2] for c in PROFILE_COLUMNS}})
    >>> int(segment_sums(scored).loc["A", "customers"]), exact_mean(segment_sums(scored).loc["A", "frequency"], 2)
    (2, 1.5)
    """
    return group_sums(scored, "rfm_segment", PROFILE_COLUMNS)


def profile_means(sums: pd.DataFrame, segment: str) -> pd.Series:
    """The mean row of ``segment``'s profile from :func:`segment_sums` (correctly rounded means).

    Examples
    --------
    >>> scored = pd.DataFrame({"rfm_segment": ["A", "A"], **{c: [1, 2] for c in PROFILE_COLUMNS}})
    >>> profile_means(segment_sums(scored), "A")["frequency"]
    np.float64(1.5)
    """
    size = int(sums.at[segment, "customers"])
    return pd.Series([exact_mean(sums.at[segment, c], size) for c in PROFILE_COLUMNS], index=list(PROFILE_COLUMNS),
                     dtype="float64")


@dataclass
class RFMPartial:
    """Notebook 02's additive aggregates of a part of the scored base (:meth:`of`), merged by :meth:`merge`:
    the pandas path takes the whole base as one part, Spark each partition (and merges on the driver).

    Every sum is exact (whole 2**-1126, :func:`~segkit.data.distribution.exact_sums`) and every count whole,
    so the merged partial of any split of the customers is the whole base's, bit for bit, and so is the
    overview built from it (:meth:`RFMOverview.build`).
    """

    customers: int
    revenue: int                    # exact sum of monetary_total
    segments: pd.DataFrame          # index rfm_segment: customers and the exact sums of PROFILE_COLUMNS
    tiers: pd.DataFrame             # index tier: customers, exact sums of frequency and monetary_total
    tier_lowest: pd.Series          # index tier: lowest value of the tiers' basis
    scores: pd.DataFrame            # metric, score, lowest, highest, customers
    cells: pd.DataFrame             # rf_cells
    histograms: dict[str, HistogramCounts]
    above: np.ndarray               # customers with monetary_total above each of the plan's kth_largest values
    above_sum: np.ndarray           # the exact sum of their net revenue (Python ints)
    frequencies: pd.Series          # customers per frequency value

    @classmethod
    def of(cls, scored: pd.DataFrame, plan: OverviewPlan, scorer: RFMScorer, tier_basis: str) -> "RFMPartial":
        """The aggregates of ``scored`` (rows of the scored base: values, scores, segment, tier)."""
        money = scored["monetary_total"].to_numpy(dtype="float64")
        scores = []
        for metric, column in scorer._columns().items():
            part = scored.groupby(SCORE_COLUMNS[metric])[column].agg(lowest="min", highest="max", customers="size")
            part = part.rename_axis("score").reset_index()
            part.insert(0, "metric", column)
            scores.append(part)
        above, above_sum = above_sums(money, plan.kth_largest)
        return cls(customers=len(scored), revenue=exact_sum(money), segments=segment_sums(scored),
                   tiers=group_sums(scored, "tier", ["frequency", "monetary_total"]),
                   tier_lowest=scored.groupby("tier", sort=False)[tier_basis].min().astype("float64"),
                   scores=pd.concat(scores, ignore_index=True), cells=rf_cells(scored),
                   histograms={c: HistogramCounts.of(scored[c], *plan.ranges[c]) for c in plan.ranges},
                   above=above, above_sum=above_sum, frequencies=scored["frequency"].astype("float64").value_counts())

    @classmethod
    def merge(cls, parts: list["RFMPartial"]) -> "RFMPartial":
        """One partial of all parts (counts and exact sums added, lowest/highest kept)."""
        if len(parts) == 1:
            return parts[0]
        scores = pd.concat([p.scores for p in parts]).groupby(["metric", "score"], sort=False).agg(
            lowest=("lowest", "min"), highest=("highest", "max"), customers=("customers", "sum")).reset_index()
        cells = pd.concat([p.cells for p in parts]).groupby(["r_score", "f_score", "rfm_segment"], observed=True,
                                                            sort=True)["customers"].sum().reset_index()
        above_sum = np.empty(len(parts[0].above_sum), dtype=object)
        above_sum[:] = [sum(p.above_sum[i] for p in parts) for i in range(len(above_sum))]
        return cls(customers=sum(p.customers for p in parts), revenue=sum(p.revenue for p in parts),
                   segments=add_group_sums([p.segments for p in parts]),
                   tiers=add_group_sums([p.tiers for p in parts]),
                   tier_lowest=pd.concat([p.tier_lowest for p in parts]).groupby(level=0, sort=False).min(),
                   scores=scores, cells=cells,
                   histograms={c: HistogramCounts.merge([p.histograms[c] for p in parts]) for c in parts[0].histograms},
                   above=np.sum([p.above for p in parts], axis=0).astype("int64"), above_sum=above_sum,
                   frequencies=pd.concat([p.frequencies for p in parts]).groupby(level=0).sum())


def median_groups(segments: SegmentMap) -> list[tuple[str, ...]]:
    """The groups of segments whose medians notebook 02 shows: each segment (its profile) and the at-risk
    segments together (the summary's median recency of valuable past customers)."""
    return [(name,) for name in segments.names] + [RISK_SEGMENTS]


def group_medians(scored: pd.DataFrame, groups: list[tuple[str, ...]]) -> dict[tuple[str, ...], dict[str, float]]:
    """Per group of segments, the exact median of every :data:`PROFILE_COLUMNS` (NaN for an empty group):
    :meth:`~segkit.data.distribution.ValueDistribution.median`, as Spark's value distributions give it.

    Examples
    --------
    >>> scored = pd.DataFrame({"rfm_segment": ["A", "A", "B"], **{c: [1.0, 2.0, 7.0] for c in PROFILE_COLUMNS}})
    >>> group_medians(scored, [("A",), ("A", "B")])[("A", "B")]["frequency"]
    2.0
    """
    out: dict[tuple[str, ...], dict[str, float]] = {}
    for group in groups:
        members = scored[scored["rfm_segment"].isin(group).to_numpy()]
        out[group] = {c: (ValueDistribution.of_values(members[c].to_numpy(dtype="float64"),
                                                      DistributionNeeds(median=True)).median()
                          if len(members) else float("nan")) for c in PROFILE_COLUMNS}
    return out


def profile_positions(sizes: dict[str, int], n_sample: int, seed: int) -> dict[str, np.ndarray]:
    """Per segment, the positions (among its customers in ``customer_id`` order) of its sampled customers:
    ``RandomState(seed).choice(size, min(n_sample, size), replace=False)``, the draw of ``DataFrame.sample``.

    Examples
    --------
    >>> profile_positions({"Lost": 10, "Champions": 1}, 2, seed=0)["Champions"].tolist()
    [0]
    """
    return {name: np.random.RandomState(seed).choice(size, size=min(n_sample, size), replace=False)
            for name, size in sizes.items()}


@dataclass
class PickedRows:
    """The rows of the base notebook 02 shows customer by customer: each segment's sampled customers and the
    first customers up to a cap (read part by part in ``customer_id`` order: :meth:`of_batches`)."""

    samples: dict[str, pd.DataFrame]
    customer_list: pd.DataFrame

    @classmethod
    def of_batches(cls, batches: Iterable[pd.DataFrame], positions: dict[str, np.ndarray], list_columns: list[str],
                   list_rows: int | None = None) -> "PickedRows":
        """Walk the scored base in ``customer_id`` order, batch by batch (each at most a row group on Spark),
        keeping only the sampled rows and the first ``list_rows`` rows (None: every row, for a base already
        held in pandas): memory bounded by a batch and the cap."""
        seen: dict[str, int] = {}
        picked: dict[str, list[pd.DataFrame]] = {name: [] for name in positions}
        listed: list[pd.DataFrame] = []
        kept = 0
        for batch in batches:
            if list_rows is None or kept < list_rows:
                head = batch[list_columns] if list_rows is None else batch[list_columns].head(list_rows - kept)
                listed.append(head)
                kept += len(head)
            for name, rows in batch.groupby("rfm_segment", sort=False).indices.items():
                start = seen.get(name, 0)
                seen[name] = start + len(rows)
                wanted = positions.get(name)
                if wanted is None or not len(wanted):
                    continue
                local = wanted[(wanted >= start) & (wanted < start + len(rows))] - start
                if len(local):
                    picked[name].append(batch.iloc[rows[np.sort(local)]])
        empty = pd.DataFrame(columns=list_columns)
        return cls(samples={name: pd.concat(parts, ignore_index=True) if parts else None
                            for name, parts in picked.items()},
                   customer_list=pd.concat(listed, ignore_index=True) if listed else empty)


def profile_frame(customers: int, means: pd.Series, medians: pd.Series, sample: pd.DataFrame | None) -> pd.DataFrame:
    """A segment's profile (:func:`segkit.steps.rfm.segment_profile`): the mean and median rows, then its
    sampled customers by net revenue (highest first)."""
    summary = pd.DataFrame([means.astype("float64"), medians.astype("float64")])
    summary.insert(0, "row", [f"mean of {customers:,} customers", "median"])
    parts = [summary]
    if sample is not None and len(sample):
        sample = sample.sort_values(["monetary_total", "customer_id"], ascending=[False, True], kind="mergesort")
        parts.append(sample[["customer_id", *PROFILE_COLUMNS, "tier"]].assign(row="sample customer"))
    out = pd.concat(parts, ignore_index=True)
    for column in ("row", "customer_id", "tier"):
        out[column] = (out[column] if column in out.columns else pd.NA)
        out[column] = out[column].astype("string")
    return out[["row", "customer_id", *PROFILE_COLUMNS, "tier"]]


@dataclass
class RFMOverview:
    """Everything notebook 02 shows of the scored base, bounded (no per-customer table but the capped list
    and the profiles' samples): built by :meth:`build` from an :class:`OverviewPlan`, the merged
    :class:`RFMPartial`, the group medians and the picked rows, on either engine.

    Attributes
    ----------
    customers : int
        Buying customers scored.
    segments, tiers, scores : DataFrame
        Per non-empty segment (config order): customers, shares of customers and net revenue, mean
        recency, frequency and spend, the recommended action (:func:`group_rows`); the same per non-empty
        tier (highest first) with its lowest basis value; per metric and score level the lowest and highest
        value and the customers (how ties were resolved).
    histograms : dict
        :class:`Histogram` per plotted column.
    cells : DataFrame
        :func:`rf_cells` (the R×F grid).
    pareto : DataFrame
        ``customer_share``, ``revenue_share``: the cumulative share of net revenue of the best customers
        (0 at 0; 1 at 1 when the total net revenue is positive, else NaN; customers with negative net make
        it overshoot 1 before it ends) at :func:`pareto_ranks`.
    top_share_revenue : float
        Share of net revenue of the top ``top_share`` customers (:func:`top_customers`; NaN when the total
        is not positive).
    frequencies : Series
        Customers per frequency value (sorted).
    median_recency, risk_median_recency : float
        Median recency of all customers, and of those in :data:`RISK_SEGMENTS` (NaN without any).
    profiles : dict
        Segment → :func:`profile_frame`.
    customer_list : DataFrame
        The first customers up to the cap the notebook's table shows (:func:`customer_list_columns`).
    """

    customers: int
    segments: pd.DataFrame
    tiers: pd.DataFrame
    scores: pd.DataFrame
    histograms: dict[str, Histogram]
    cells: pd.DataFrame
    pareto: pd.DataFrame
    top_share_revenue: float
    frequencies: pd.Series
    median_recency: float
    risk_median_recency: float
    profiles: dict[str, pd.DataFrame]
    customer_list: pd.DataFrame

    @property
    def list_capped(self) -> bool:
        """Whether the customer list holds fewer customers than were scored."""
        return len(self.customer_list) < self.customers

    @classmethod
    def build(cls, plan: OverviewPlan, partial: RFMPartial, medians: dict[tuple[str, ...], dict[str, float]],
              rows: PickedRows, settings: RFMSettings, tier_model: LoyaltyTiers) -> "RFMOverview":
        """The overview from the bounded pieces either engine computes."""
        n, total = partial.customers, partial.revenue
        seg = partial.segments

        segments = group_rows(seg, n, total, "segment", settings.segments.names,
                              {"mean_recency_days": exact_means(seg["recency_days"], seg["customers"])})
        segments["recommended_action"] = segments["segment"].map(settings.segments.actions).astype("string")
        tiers = group_rows(partial.tiers, n, total, "tier", tier_model.names,
                           {f"min_{tier_model.basis}": partial.tier_lowest})
        order = {c: i for i, c in enumerate(dict.fromkeys(partial.scores["metric"]))}
        scores = partial.scores.assign(_order=partial.scores["metric"].map(order)).sort_values(
            ["_order", "score"], kind="mergesort").drop(columns="_order").reset_index(drop=True)
        scores["metric"] = scores["metric"].astype("string")
        scores[["lowest", "highest"]] = scores[["lowest", "highest"]].astype("float64")
        scores["customers"] = scores["customers"].astype("int64")
        # the best k customers' revenue, exactly: those above the k-th largest value, the rest of k at it
        cum = {0: 0, **{int(k): partial.above_sum[i] + (int(k) - int(partial.above[i])) * exact_sum([kth])
                        for i, (k, kth) in enumerate(zip(plan.ranks, plan.kth_largest))}}
        ranks = pareto_ranks(n)
        share = np.array([exact_ratio(cum[int(k)], total) if total > 0 else np.nan for k in ranks], dtype="float64")
        pareto = pd.DataFrame({"customer_share": ranks / max(n, 1), "revenue_share": share})
        k = top_customers(n, plan.top_share)
        top = exact_ratio(cum[k], total) if (n and total > 0) else float("nan")
        sizes = {name: int(seg.loc[name, "customers"]) for name in settings.segments.names if name in seg.index}
        profiles = {name: profile_frame(size, profile_means(seg, name),
                                        pd.Series(medians[(name,)], dtype="float64")[list(PROFILE_COLUMNS)],
                                        rows.samples.get(name))
                    for name, size in sizes.items()}
        return cls(customers=n, segments=segments, tiers=tiers, scores=scores,
                   histograms={c: Histogram.of_counts(c, *plan.ranges[c], partial.histograms[c]) for c in plan.ranges},
                   cells=partial.cells, pareto=pareto, top_share_revenue=top,
                   frequencies=partial.frequencies.sort_index(), median_recency=plan.median_recency,
                   risk_median_recency=medians[RISK_SEGMENTS]["recency_days"], profiles=profiles,
                   customer_list=rows.customer_list)


def rfm_overview(scored: pd.DataFrame, settings: RFMSettings, scorer: RFMScorer, tier_model: LoyaltyTiers,
                 seed: int = 0, list_rows: int | None = None) -> RFMOverview:
    """The :class:`RFMOverview` of a scored base held in pandas (:func:`analyse_rfm`'s ``rfm``): the same
    partial aggregates, medians and picked rows as on Spark, with the whole base as the one part.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> overview = analyse_rfm(tx).overview
    >>> overview.customers, round(overview.top_share_revenue, 3), overview.segments["customers"].tolist()
    (3, 0.688, [1, 1, 1])
    """
    plan = OverviewPlan.of_frame(scored, settings)
    partial = RFMPartial.of(scored, plan, scorer, tier_model.basis)
    medians = group_medians(scored, median_groups(settings.segments))
    sizes = partial.segments["customers"].astype("int64").to_dict()
    rows = PickedRows.of_batches([scored], profile_positions(sizes, settings.sample_size, seed),
                                 customer_list_columns(settings.monetary_column), list_rows)
    return RFMOverview.build(plan, partial, medians, rows, settings, tier_model)
