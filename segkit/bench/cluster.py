"""Clustering benchmarks: segkit's k-prototypes vs ``kmodes``, segkit's k-means path vs scikit-learn.

Both sides get the same generated data: ``n_rows`` customers from 5 latent groups with
3 numeric columns (group centre + standard normal noise) and 3 categorical columns (the group's
own level with probability 0.6, else one of 5 levels at random). k-prototypes runs with k = 5,
``init="Huang"``, ``n_init=1`` and the same ``random_state`` on both sides, so both start from the
same initial centroids (segkit reproduces kmodes' draws); gamma is kmodes' default heuristic on
both sides. The harness of ``make bench`` calls the contender functions in fresh processes
(:mod:`segkit.bench.cases`); :func:`bench_kprototypes` and :func:`bench_kmeans` run a whole
comparison in this process.

Examples
--------
>>> res = bench_kprototypes(300, seed=0)
>>> sorted(res)
['cost_ratio', 'kmodes_cost', 'kmodes_seconds', 'n_rows', 'segkit_cost', 'segkit_seconds', 'speedup']
>>> res["segkit_cost"] <= res["kmodes_cost"] * (1 + 1e-9)
True
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

__all__ = ["N_CLUSTERS", "LEVELS", "mixed_data", "kmodes_kprototypes", "segkit_kprototypes",
    "sklearn_kmeans", "segkit_kmeans", "bench_kprototypes", "bench_kmeans"]

N_CLUSTERS = 5
LEVELS = np.array(list("abcde"), dtype=object)  # single letters: kmodes and segkit encode them alike


def mixed_data(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark table: columns ``x0..x2`` (float) and ``c0..c2`` (one-letter strings).

    Examples
    --------
    >>> mixed_data(4, seed=1).dtypes.astype(str).tolist()
    ['float64', 'float64', 'float64', 'str', 'str', 'str']
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, N_CLUSTERS, n_rows)
    centres = rng.normal(0.0, 2.0, (N_CLUSTERS, 3))
    data = {f"x{j}": centres[group, j] + rng.normal(0.0, 1.0, n_rows) for j in range(3)}
    for j in range(3):
        own = rng.random(n_rows) < 0.6
        data[f"c{j}"] = LEVELS[np.where(own, group, rng.integers(0, len(LEVELS), n_rows))]
    return pd.DataFrame(data)


def _object_array(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy(dtype=object)


def kmodes_kprototypes(n_rows: int, seed: int = 0) -> dict[str, Any]:
    """Baseline: ``kmodes.kprototypes.KPrototypes`` (k = 5, Huang, n_init = 1)."""
    from kmodes.kprototypes import KPrototypes as KModesKPrototypes

    X = _object_array(mixed_data(n_rows, seed))
    km = KModesKPrototypes(n_clusters=N_CLUSTERS, init="Huang", n_init=1, random_state=seed)
    km.fit(X, categorical=[3, 4, 5])
    return {"cost": float(km.cost_), "n_iter": int(km.n_iter_), "gamma": float(km.gamma)}


def segkit_kprototypes(n_rows: int, seed: int = 0) -> dict[str, Any]:
    """segkit: :class:`segkit.kprototypes.KPrototypes` with the same k, init, n_init and seed."""
    from segkit.kprototypes import KPrototypes

    X = mixed_data(n_rows, seed)
    km = KPrototypes(n_clusters=N_CLUSTERS, init="Huang", n_init=1, random_state=seed).fit(X)
    return {"cost": float(km.cost_), "n_iter": int(km.n_iter_), "gamma": float(km.gamma_)}


def sklearn_kmeans(n_rows: int, seed: int = 0) -> dict[str, Any]:
    """Baseline: scikit-learn's ``KMeans`` alone on the numeric columns (default threading)."""
    from sklearn.cluster import KMeans

    X = mixed_data(n_rows, seed)[["x0", "x1", "x2"]].to_numpy()
    km = KMeans(n_clusters=N_CLUSTERS, n_init=1, random_state=seed).fit(X)
    return {"cost": float(km.inertia_), "n_iter": int(km.n_iter_)}


def segkit_kmeans(n_rows: int, seed: int = 0) -> dict[str, Any]:
    """segkit's k-means path: :class:`segkit.cluster.KMeansNumeric` on the feature table."""
    from segkit.cluster import KMeansNumeric

    X = mixed_data(n_rows, seed)
    km = KMeansNumeric(n_clusters=N_CLUSTERS, n_init=1, random_state=seed).fit(X)
    return {"cost": float(km.cost_), "n_iter": int(km.n_iter_)}


def _timed(func: Callable[..., dict], repeats: int, **kwargs: Any) -> tuple[float, dict]:
    times, result = [], {}
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        result = func(**kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _compare(base: Callable, ours: Callable, names: tuple[str, str], n_rows: int, seed: int,
             repeats: int) -> dict[str, Any]:
    t_base, r_base = _timed(base, repeats, n_rows=n_rows, seed=seed)
    t_ours, r_ours = _timed(ours, repeats, n_rows=n_rows, seed=seed)
    b, o = names
    return {"n_rows": int(n_rows), f"{b}_seconds": t_base, f"{o}_seconds": t_ours,
            "speedup": t_base / t_ours if t_ours > 0 else float("inf"),
            f"{b}_cost": r_base["cost"], f"{o}_cost": r_ours["cost"],
            "cost_ratio": r_ours["cost"] / r_base["cost"] if r_base["cost"] else float("nan")}


def bench_kprototypes(n_rows: int, seed: int = 0, repeats: int = 1) -> dict[str, Any]:
    """Time kmodes' and segkit's k-prototypes on the same data, k, init and seed (this process).

    Returns
    -------
    dict
        ``n_rows, kmodes_seconds, segkit_seconds, speedup`` (kmodes / segkit, median of
        ``repeats``), ``kmodes_cost, segkit_cost, cost_ratio`` (segkit / kmodes; ≤ 1 is as good
        or better). Data generation is inside the timing on both sides.
    """
    return _compare(kmodes_kprototypes, segkit_kprototypes, ("kmodes", "segkit"), n_rows, seed, repeats)


def bench_kmeans(n_rows: int, seed: int = 0, repeats: int = 1) -> dict[str, Any]:
    """Time scikit-learn's KMeans alone and segkit's k-means path on the same data (this process).

    Returns ``n_rows, sklearn_seconds, segkit_seconds, speedup`` (sklearn / segkit) and both
    costs (inertia). segkit's path limits OpenMP to one thread (see
    :func:`segkit.kprototypes.single_thread`); scikit-learn alone uses its default threading.

    Examples
    --------
    >>> bench_kmeans(500)["n_rows"]
    500
    """
    return _compare(sklearn_kmeans, segkit_kmeans, ("sklearn", "segkit"), n_rows, seed, repeats)
