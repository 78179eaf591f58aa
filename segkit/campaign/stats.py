"""Pure statistics of the campaign evaluation, element-wise on arrays: intervals, tests, power,
multiple testing, random-effects pooling and the prose form of a p-value.

Nothing here knows campaigns, arms, segments or settings: :mod:`segkit.campaign.metrics` and
:mod:`segkit.campaign.decisions` apply these functions to their tables. Why each method was
chosen is described in :mod:`segkit.campaign`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import normal_power_het, normal_sample_size_one_tail
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_confint,
    samplesize_proportions_2indep_onetail,
)

__all__ = [
    "CORRECTIONS", "CORRECTION_LABELS", "wilson_interval", "diff_interval", "ratio_interval", "ztest_2prop",
    "fisher_exact_pvalue", "mean_interval", "welch_diff", "ratio_of_means_interval", "mde_proportions",
    "mde_means", "sample_size_proportions", "sample_size_means", "adjust_pvalues", "p_text",
    "random_effects",
]

CORRECTIONS: dict[str, str | None] = {"holm": "holm", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}
CORRECTION_LABELS = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg", "bonferroni": "Bonferroni", "none": "no"}


# ============================================================================ statistics (arrays)
def _arrays(*values: Any, dtype: type = float) -> list[np.ndarray]:
    return [np.asarray(v, dtype=dtype) for v in np.broadcast_arrays(*values)]


def wilson_interval(count: Any, nobs: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``count / nobs``, element-wise (NaN where ``nobs`` is 0).

    Same values as ``statsmodels.stats.proportion.proportion_confint(..., method="wilson")``.

    Examples
    --------
    >>> low, high = wilson_interval([3, 0], [10, 0])
    >>> np.round(low, 4), np.round(high, 4)
    (array([0.1078,    nan]), array([0.6032,    nan]))
    """
    count, nobs = _arrays(count, nobs)
    ok = nobs > 0
    low, high = proportion_confint(np.where(ok, count, 0.0), np.where(ok, nobs, 1.0), alpha=alpha, method="wilson")
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def diff_interval(count1: Any, nobs1: Any, count2: Any, nobs2: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe hybrid score interval for ``p1 - p2`` (NaN where an arm is empty).

    Same values as ``confint_proportions_2indep(..., method="newcomb")``.

    Examples
    --------
    >>> low, high = diff_interval([30], [100], [20], [100])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (-0.0202, 0.2167)
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    ok = (n1 > 0) & (n2 > 0)
    low, high = confint_proportions_2indep(np.where(ok, c1, 0.0), np.where(ok, n1, 1.0), np.where(ok, c2, 0.0),
                                           np.where(ok, n2, 1.0), method="newcomb", compare="diff", alpha=alpha)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def ratio_interval(count1: Any, nobs1: Any, count2: Any, nobs2: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Katz log interval for the rate ratio ``p1 / p2`` (NaN where either arm has no events).

    Same values as ``confint_proportions_2indep(..., compare="ratio", method="log")``.

    Examples
    --------
    >>> low, high = ratio_interval([30, 0], [100, 100], [20, 5], [100, 100])
    >>> np.round(low, 4), np.round(high, 4)
    (array([0.916,   nan]), array([2.4564,    nan]))
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    ok = (c1 > 0) & (c2 > 0) & (n1 > 0) & (n2 > 0)
    low, high = confint_proportions_2indep(np.where(ok, c1, 1.0), np.where(ok, n1, 2.0), np.where(ok, c2, 1.0),
                                           np.where(ok, n2, 2.0), method="log", compare="ratio", alpha=alpha)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def ztest_2prop(count1: Any, nobs1: Any, count2: Any, nobs2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of ``p1 = p2``: ``(z, two-sided p)``, element-wise.

    Same values as ``statsmodels.stats.proportion.proportions_ztest([c1, c2], [n1, n2])``.
    Where the pooled rate is 0 or 1 (no variance) the statistic is NaN and the p-value 1.

    Examples
    --------
    >>> z, p = ztest_2prop([30], [100], [20], [100])
    >>> round(float(z[0]), 4), round(float(p[0]), 4)
    (1.633, 0.1025)
    """
    c1, n1, c2, n2 = _arrays(count1, nobs1, count2, nobs2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (c1 + c2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.where(se > 0, (c1 / n1 - c2 / n2) / se, np.nan)
    p = np.where(np.isnan(z), 1.0, 2 * stats.norm.sf(np.abs(z)))
    empty = (n1 == 0) | (n2 == 0)
    return np.where(empty, np.nan, z), np.where(empty, np.nan, p)


def fisher_exact_pvalue(count1: Any, nobs1: Any, count2: Any, nobs2: Any, max_cells: int = 2_000_000) -> np.ndarray:
    """Two-sided Fisher exact p-value of the 2×2 table ``[[c1, n1-c1], [c2, n2-c2]]``, vectorised.

    Same values as ``scipy.stats.fisher_exact(table).pvalue``: the sum of the hypergeometric
    probabilities of all tables (same margins) no more likely than the observed one. Computed on
    a padded grid of each table's support, ``max_cells`` grid cells at a time.

    Examples
    --------
    >>> np.round(fisher_exact_pvalue([8, 3], [10, 10], [1, 3], [6, 10]), 6)
    array([0.034965, 1.      ])
    """
    c1, n1, c2, n2 = (a.ravel() for a in _arrays(count1, nobs1, count2, nobs2, dtype=np.int64))
    shape = np.broadcast_shapes(*(np.shape(v) for v in (count1, nobs1, count2, nobs2)))
    out = np.full(c1.shape, np.nan)
    empty = (n1 == 0) | (n2 == 0)
    k, total = c1 + c2, n1 + n2
    degenerate = ~empty & ((k == 0) | (k == total))
    out[degenerate] = 1.0
    todo = np.flatnonzero(~empty & ~degenerate)
    if todo.size:
        lo = np.maximum(0, k - n2)
        width = np.minimum(k, n1) - lo + 1
        gamma = 1 + 1e-14  # scipy's relative tolerance for "equally likely"
        order = todo[np.argsort(width[todo], kind="stable")]
        start = 0
        while start < order.size:  # chunks bounded by grid size (widths sorted ascending)
            stop = start + 1
            while stop < order.size and (stop + 1 - start) * width[order[stop]] <= max_cells:
                stop += 1
            idx = order[start:stop]
            start = stop
            w = int(width[idx].max())
            x = lo[idx, None] + np.arange(w)[None, :]
            valid = x <= (lo[idx] + width[idx] - 1)[:, None]
            M, n, N = total[idx, None], n1[idx, None], k[idx, None]
            pmf = np.where(valid, stats.hypergeom.pmf(x, M, n, N), 0.0)
            pexact = stats.hypergeom.pmf(c1[idx], total[idx], n1[idx], k[idx])
            mode = ((k[idx] + 1) * (n1[idx] + 1)) // (total[idx] + 2)
            pmode = stats.hypergeom.pmf(mode, total[idx], n1[idx], k[idx])
            tie = np.abs(pexact - pmode) / np.maximum(pexact, pmode) <= 1e-14
            same_side = np.where((c1[idx] < mode)[:, None], x <= c1[idx, None], x >= c1[idx, None])
            mask = valid & ((pmf <= (pexact * gamma)[:, None]) | same_side)
            out[idx] = np.where(tie, 1.0, np.minimum((pmf * mask).sum(axis=1), 1.0))
    return out.reshape(shape)


def mean_interval(nobs: Any, mean: Any, var: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """t interval for a mean from ``n``, mean and variance (ddof=1); NaN where ``n < 2``.

    Same values as ``statsmodels DescrStatsW(x).tconfint_mean(alpha)``.

    Examples
    --------
    >>> low, high = mean_interval([4], [2.5], [np.var([1, 2, 3, 4], ddof=1)])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.4457, 4.5543)
    """
    n, m, v = _arrays(nobs, mean, var)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.isf(alpha / 2, n - 1) * np.sqrt(v / n)
    ok = n >= 2
    return np.where(ok, m - half, np.nan), np.where(ok, m + half, np.nan)


def welch_diff(nobs1: Any, mean1: Any, var1: Any, nobs2: Any, mean2: Any, var2: Any,
               alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Welch comparison of two means from group statistics (variances with ddof=1).

    Returns arrays ``diff, low, high, se, df, t, p``: the difference ``mean1 - mean2``, its Welch
    t interval, standard error, Satterthwaite degrees of freedom, t statistic and two-sided
    p-value — the values of ``statsmodels CompareMeans(d1, d2).tconfint_diff(usevar="unequal")``
    and ``ttest_ind(x1, x2, usevar="unequal")``. NaN where an arm has fewer than 2 customers or
    both variances are 0.

    Examples
    --------
    >>> r = welch_diff([5], [2.0], [2.5], [4], [1.0], [1.0 / 3])
    >>> round(float(r["diff"][0]), 3), round(float(r["df"][0]), 3), round(float(r["p"][0]), 4)
    (1.0, 5.25, 0.2448)
    """
    n1, m1, v1, n2, m2, v2 = _arrays(nobs1, mean1, var1, nobs2, mean2, var2)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2 = v1 / n1, v2 / n2
        se2 = s1 + s2
        se = np.sqrt(se2)
        df = se2 ** 2 / (s1 ** 2 / (n1 - 1) + s2 ** 2 / (n2 - 1))
        diff = m1 - m2
        t = diff / se
        p = 2 * stats.t.sf(np.abs(t), df)
        half = stats.t.isf(alpha / 2, df) * se
    ok = (n1 >= 2) & (n2 >= 2) & (se2 > 0)
    nan = np.full(diff.shape, np.nan)
    return {"diff": np.where((n1 > 0) & (n2 > 0), diff, np.nan), "low": np.where(ok, diff - half, nan),
            "high": np.where(ok, diff + half, nan), "se": np.where(ok, se, nan), "df": np.where(ok, df, nan),
            "t": np.where(ok, t, nan), "p": np.where(ok, p, nan)}


def ratio_of_means_interval(nobs1: Any, mean1: Any, var1: Any, nobs2: Any, mean2: Any, var2: Any,
                            alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method interval for ``mean1 / mean2`` on the log scale (NaN unless both means > 0).

    ``exp(log(m1/m2) ± z·sqrt(v1/(n1·m1²) + v2/(n2·m2²)))``.

    Examples
    --------
    >>> low, high = ratio_of_means_interval([100], [2.0], [4.0], [100], [1.0], [1.0])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (1.5158, 2.6388)
    """
    n1, m1, v1, n2, m2, v2 = _arrays(nobs1, mean1, var1, nobs2, mean2, var2)
    ok = (m1 > 0) & (m2 > 0) & (n1 >= 2) & (n2 >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v1 / (n1 * m1 ** 2) + v2 / (n2 * m2 ** 2))
        center = np.log(m1 / m2)
    z = stats.norm.isf(alpha / 2)
    return np.where(ok, np.exp(center - z * se), np.nan), np.where(ok, np.exp(center + z * se), np.nan)


def _bisect_increasing(func, low: np.ndarray, high: np.ndarray, target: float, iterations: int = 200) -> np.ndarray:
    """Vectorised bisection for ``func(x) = target`` with ``func`` increasing on ``[low, high]``;
    NaN where ``func(high) < target``."""
    low, high = low.astype(float).copy(), high.astype(float).copy()
    reachable = func(high) >= target
    for _ in range(iterations):
        mid = (low + high) / 2
        below = func(mid) < target
        low = np.where(below, mid, low)
        high = np.where(below, high, mid)
        if np.all(high - low <= 1e-15 * np.maximum(1.0, np.abs(high))):
            break
    return np.where(reachable, (low + high) / 2, np.nan)


def mde_proportions(prop2: Any, nobs1: Any, nobs2: Any, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest increase ``p1 - p2`` that the two-sided pooled z-test detects with ``power``.

    Solves ``statsmodels power_proportions_2indep(diff, prop2, nobs1, ratio=nobs2/nobs1, alpha)
    == power`` for ``diff`` (vectorised bisection). NaN when no increase up to ``p1 = 1`` is
    detectable or an arm is empty.

    Examples
    --------
    >>> np.round(mde_proportions([0.05, 0.05], [1000, 10000], [1000, 10000]), 5)
    array([0.03098, 0.00899])
    """
    p2, n1, n2 = _arrays(prop2, nobs1, nobs2)
    ok = (n1 > 0) & (n2 > 0) & (p2 >= 0) & (p2 < 1)
    p2s, n1s, ratio = np.where(ok, p2, 0.5), np.where(ok, n1, 1.0), np.where(ok, n2 / np.where(ok, n1, 1.0), 1.0)

    def pw(diff: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(power_proportions_2indep(diff, p2s, n1s, ratio=ratio, alpha=alpha,
                                                          return_results=False), nan=0.0)

    # p1 = 1 exactly with p2 = 0 has no variance at all; stop just short of it
    out = _bisect_increasing(pw, np.zeros_like(p2s), (1.0 - p2s) * (1 - 1e-9), power)
    return np.where(ok, out, np.nan)


def mde_means(sd1: Any, nobs1: Any, sd2: Any, nobs2: Any, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest increase of a mean that a two-sided z-test detects with ``power`` (Welch-type SE).

    Solves ``statsmodels normal_power_het(diff, nobs=1, alpha, std_null=se, std_alternative=se)
    == power`` with ``se = sqrt(sd1²/n1 + sd2²/n2)``.

    Examples
    --------
    >>> round(float(mde_means([10.0], [1000], [10.0], [1000])[0]), 4)
    1.2529
    """
    s1, n1, s2, n2 = _arrays(sd1, nobs1, sd2, nobs2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(s1 ** 2 / n1 + s2 ** 2 / n2)
    ok = np.isfinite(se) & (se > 0)
    se_ = np.where(ok, se, 1.0)

    def pw(diff: np.ndarray) -> np.ndarray:
        return normal_power_het(diff, 1, alpha, std_null=se_, std_alternative=se_)

    out = _bisect_increasing(pw, np.zeros_like(se_), 20 * se_, power)
    return np.where(ok, out, np.nan)


def sample_size_proportions(diff: Any, prop2: Any, ratio: Any = 1.0, alpha: float = 0.05,
                            power: float = 0.8) -> np.ndarray:
    """Customers needed in arm 1 (arm 2 gets ``ratio`` times as many) to detect ``p1 = p2 + diff``.

    ``statsmodels samplesize_proportions_2indep_onetail`` (two-sided test), rounded up.
    NaN where ``diff <= 0`` or ``p2 + diff > 1``.

    Examples
    --------
    >>> sample_size_proportions([0.005, 0.01], [0.05, 0.05], ratio=0.25)
    array([78911., 20799.])
    """
    d, p2, r = _arrays(diff, prop2, ratio)
    ok = (d > 0) & (p2 >= 0) & (p2 + d <= 1) & (r > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = samplesize_proportions_2indep_onetail(np.where(ok, d, 0.1), np.where(ok, p2, 0.1), power,
                                                  ratio=np.where(ok, r, 1.0), alpha=alpha)
    return np.where(ok, np.ceil(n - 1e-9), np.nan)


def sample_size_means(diff: Any, sd1: Any, sd2: Any, ratio: Any = 1.0, alpha: float = 0.05,
                      power: float = 0.8) -> np.ndarray:
    """Customers needed in arm 1 (arm 2: ``ratio`` times as many) to detect a mean increase ``diff``.

    ``statsmodels normal_sample_size_one_tail(diff, power, alpha/2, std_null=sqrt(sd1² + sd2²/ratio))``
    rounded up.

    Examples
    --------
    >>> sample_size_means([1.0], [10.0], [10.0])
    array([1570.])
    """
    d, s1, s2, r = _arrays(diff, sd1, sd2, ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(s1 ** 2 + s2 ** 2 / r)
    ok = (d > 0) & np.isfinite(std) & (std > 0) & (r > 0)
    n = normal_sample_size_one_tail(np.where(ok, d, 1.0), power, alpha / 2, std_null=np.where(ok, std, 1.0))
    return np.where(ok, np.ceil(n - 1e-9), np.nan)


def adjust_pvalues(pvalues: Any, method: str = "holm", groups: Any = None) -> np.ndarray:
    """Multiple-testing adjusted p-values within each group (NaN entries left out), vectorised.

    Holm step-down, Benjamini–Hochberg step-up or Bonferroni: the values of ``statsmodels
    multipletests(p, method=...)[1]`` applied to each group separately (computed with one sort
    over all groups; ``multipletests`` itself runs a garbage collection per call for Holm, too
    slow for many families).

    Examples
    --------
    >>> adjust_pvalues([0.01, np.nan, 0.04, 0.03], "holm")
    array([0.03,  nan, 0.06, 0.06])
    >>> adjust_pvalues([0.01, 0.04, 0.03, 0.5], "fdr_bh", groups=["a", "a", "a", "b"])
    array([0.03, 0.04, 0.04, 0.5 ])
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    out = p.copy()
    ok = ~np.isnan(p)
    if CORRECTIONS[method] is None or not ok.any():
        return out
    g = np.zeros(len(p), np.int64) if groups is None else pd.factorize(np.asarray(groups, dtype=object).ravel())[0]
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((p[idx], g[idx]))]
    gs, ps = g[order], p[order]
    frame = pd.DataFrame({"g": gs})
    m = frame.groupby("g")["g"].transform("size").to_numpy(dtype=float)
    rank = frame.groupby("g").cumcount().to_numpy(dtype=float) + 1  # 1-based rank within the family
    if method == "bonferroni":
        adj = np.minimum(ps * m, 1.0)
    elif method == "holm":
        adj = pd.Series(ps * (m - rank + 1)).groupby(gs).cummax().to_numpy()
        adj = np.minimum(adj, 1.0)
    else:  # fdr_bh: running minimum from the largest p downwards
        raw = pd.Series(ps * m / rank)
        adj = raw[::-1].groupby(gs[::-1]).cummin()[::-1].to_numpy()
        adj = np.minimum(adj, 1.0)
    out[order] = adj
    return out


def p_text(p: float, name: str = "p") -> str:
    """A p-value for prose: ``p = 0.032``; one that underflowed to 0 reads ``p < 1e-300``, never ``p = 0``.

    Two significant digits, or three where two would round onto a usual threshold (0.05, 0.01,
    0.001) that the value is not: 0.0501 reads 0.0501, never "0.05" next to "not significant".

    Examples
    --------
    >>> p_text(0.0317), p_text(0.0, "adjusted p"), p_text(0.0501), p_text(0.05)
    ('p = 0.032', 'adjusted p < 1e-300', 'p = 0.0501', 'p = 0.05')
    """
    if p == 0:
        return f"{name} < 1e-300"
    text = f"{p:.2g}"
    if float(text) in (0.05, 0.01, 0.001) and float(text) != p:
        text = f"{p:.3g}"
    return f"{name} = {text}"


def random_effects(effect: Any, variance: Any, groups: Any, alpha: float = 0.05) -> pd.DataFrame:
    """DerSimonian–Laird random-effects pooling of ``effect`` (variance ``variance``) within groups.

    Per group: ``k`` estimates, fixed-effect mean, Cochran's ``q``, ``tau2`` = max(0, (q − (k−1)) /
    c) (truncated at 0 as in the method's definition), the random-effects ``mean``, its ``se``,
    normal ``ci_low``/``ci_high``, two-sided ``p_value`` and ``i2`` = max(0, (q − (k−1)) / q).
    Equal to ``statsmodels.stats.meta_analysis.combine_effects(..., method_re="dl")`` whenever
    q ≥ k − 1; statsmodels does not truncate a negative ``tau2``, which makes the random-effects
    interval narrower than the fixed-effect one (here it equals the fixed-effect interval).

    Examples
    --------
    >>> r = random_effects([0.10, 0.30, 0.20], [0.01, 0.01, 0.02], ["a", "a", "b"])
    >>> r[["group", "k", "mean", "tau2"]]
      group  k  mean  tau2
    0     a  2   0.2  0.01
    1     b  1   0.2  0.00
    """
    d = pd.DataFrame({"group": np.asarray(groups, dtype=object), "d": np.asarray(effect, dtype=float),
                      "v": np.asarray(variance, dtype=float)})
    d = d[np.isfinite(d["d"]) & np.isfinite(d["v"]) & (d["v"] > 0)].copy()
    columns = ["group", "k", "fixed_mean", "q", "tau2", "i2", "mean", "se", "ci_low", "ci_high", "p_value"]
    if d.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "group" else float) for c in columns})
    d["w"] = 1 / d["v"]
    d["wd"] = d["w"] * d["d"]
    d["wd2"] = d["wd"] * d["d"]
    d["w2"] = d["w"] ** 2
    g = d.groupby("group", sort=True)
    agg = g[["w", "wd", "wd2", "w2"]].sum()
    agg["k"] = g.size()
    q = (agg["wd2"] - agg["wd"] ** 2 / agg["w"]).clip(lower=0.0)
    df = agg["k"] - 1
    c = agg["w"] - agg["w2"] / agg["w"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = ((q - df) / c).where(c > 0, 0.0).clip(lower=0.0).fillna(0.0)
        i2 = ((q - df) / q).where(q > 0, 0.0).clip(lower=0.0)
    d["w_re"] = 1 / (d["v"] + d["group"].map(tau2))
    d["wd_re"] = d["w_re"] * d["d"]
    re = d.groupby("group", sort=True)[["w_re", "wd_re"]].sum()
    mean = re["wd_re"] / re["w_re"]
    se = 1 / np.sqrt(re["w_re"])
    z = stats.norm.isf(alpha / 2)
    out = pd.DataFrame({"k": agg["k"], "fixed_mean": agg["wd"] / agg["w"], "q": q, "tau2": tau2, "i2": i2,
                        "mean": mean, "se": se, "ci_low": mean - z * se, "ci_high": mean + z * se,
                        "p_value": 2 * stats.norm.sf(np.abs(mean / se))})
    return out.rename_axis("group").reset_index()
