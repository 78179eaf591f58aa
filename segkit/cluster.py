"""Customer clustering: fast k-prototypes, k-means, model selection, stability, profiles, names.

The analysis behind ``notebooks/03_clustering.ipynb``. Customers are described by the feature
matrix of :mod:`segkit.features` (scaled numeric behaviour + categorical attributes) and grouped
with

* :class:`segkit.kprototypes.KPrototypes` — our vectorised k-prototypes for mixed data, with
  the objective, initialisations and gamma rule of the ``kmodes`` package, much faster;
* scikit-learn's ``KMeans`` on the numeric features (``method="kmeans"``).

Around the estimators: :func:`select_k` (cost elbow, silhouette on a seeded sample with a
Gower-style distance for mixed data, Calinski–Harabasz and Davies–Bouldin for k-means, and a
documented rule for the chosen k), :func:`stability` (subsample ARI between refits, per-cluster
Jaccard), :func:`profile_clusters` and :func:`name_clusters`, and the producer
:func:`segkit.steps.cluster.build_cluster_artifacts` used by the notebook.

Examples
--------
>>> import numpy as np
>>> sel = pd.DataFrame({"k": [2, 3, 4], "cost": [90.0, 40.0, 35.0], "silhouette": [0.30, 0.50, 0.40],
...                     "smallest_share": [0.5, 0.3, 0.2]})
>>> choose_k(sel)
(3, 'k = 3: silhouette 0.500, the best of the k tried and at the elbow of the cost curve.')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from segkit.core.config import deep_merge, default_config
from segkit.core.errors import ConfigError, DataError, ModelFitError
from segkit.core.modelio import float_array, from_pairs, model_dict, model_parts, pairs
from segkit.core.progress import progress
from segkit.data.bounded import CustomerSample, FrameSummaries, TableSummaries, sample_positions
from segkit.data.distribution import exact_mean, exact_ratio, exact_sums
from segkit.features import FeatureBuilder
from segkit.kprototypes import KPrototypes, check_numeric, single_thread, split_mixed

__all__ = ["KMeansNumeric", "METHODS", "ClusterSettings", "resolve_method", "make_model", "gower_distances",
    "elbow_k", "choose_k", "select_k", "Stability", "jaccard_best_match", "stability", "order_by_size",
    "order_by_counts",
    "profile_clusters", "ClusterTally", "cluster_tally", "profiles_of", "naming_scores", "naming_scores_from",
    "segment_counts", "segment_shares", "NAMING_KEYS", "name_clusters", "segment_crosstab", "projection",
    "SegmentModel", "ClusterResult", "numeric_columns", "SAMPLES", "sample_plan", "plan_positions", "model_features",
    "ClusterFit", "fit_cluster_model", "compare_k", "cluster_customers", "cluster_result", "clusters_frame", "cluster_rows", "cluster_model_dict",
    "predict_clusters_frame"]


# =============================================================================== k-means adapter
class KMeansNumeric(ClusterMixin, TransformerMixin, BaseEstimator):
    """scikit-learn ``KMeans`` on the numeric columns of a feature table (others are ignored).

    Gives k-means the same interface as :class:`KPrototypes` (``labels_``, ``cost_`` = inertia,
    ``n_iter_``, ``predict`` on a feature table).

    Parameters
    ----------
    n_clusters, n_init, max_iter, random_state
        Passed to :class:`sklearn.cluster.KMeans` (``init="k-means++"``).

    Attributes
    ----------
    kmeans_ : sklearn.cluster.KMeans
    labels_ : ndarray
    cost_ : float
    cluster_centers_ : ndarray (k, p)
    n_iter_ : int
    numeric_features_ : list

    Examples
    --------
    >>> df = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1], "c": list("abab")})
    >>> km = KMeansNumeric(n_clusters=2, n_init=1, random_state=0).fit(df)
    >>> km.numeric_features_, round(km.cost_, 3)
    (['x'], 0.01)
    """

    def __init__(self, n_clusters: int = 8, n_init: int = 10, max_iter: int = 300,
                 random_state: int | None = None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: Any, y: None = None) -> "KMeansNumeric":
        from sklearn.cluster import KMeans

        Xnum, _, names, _ = split_mixed(X) if isinstance(X, pd.DataFrame) else split_mixed(X, [])
        if Xnum.shape[1] == 0:
            raise DataError(f"k-means needs numeric features: got 0 feature(s) (shape=({len(Xnum)}, 0)) "
                            "while a minimum of 1 is required. Use method: kprototypes or a feature "
                            "set with numeric features.")
        check_numeric(Xnum, names)
        if len(Xnum) == 0:
            raise DataError("There are no customers (rows) to cluster; check the input table.")
        if self.n_clusters > len(Xnum):
            raise ModelFitError(f"Cannot form {self.n_clusters} clusters from {len(Xnum)} customers; lower k.")
        with single_thread():
            self.kmeans_ = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                                  random_state=self.random_state).fit(Xnum)
        self.labels_ = self.kmeans_.labels_.astype(np.int64)
        self.cost_ = float(self.kmeans_.inertia_)
        self.cluster_centers_ = self.kmeans_.cluster_centers_
        self.n_iter_ = int(self.kmeans_.n_iter_)
        self.numeric_features_ = names
        self.n_features_in_ = Xnum.shape[1] if not isinstance(X, pd.DataFrame) else X.shape[1]
        return self

    def _numeric(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "kmeans_")
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.numeric_features_ if c not in X.columns]
            if missing:
                raise DataError(f"The table to predict lacks feature column(s) {missing}.")
            Xnum = X[self.numeric_features_].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            Xnum = np.asarray(X, dtype=np.float64)
        check_numeric(Xnum, self.numeric_features_)
        return Xnum

    def predict(self, X: Any) -> np.ndarray:
        """Nearest centre of each row."""
        Xnum = self._numeric(X)
        with single_thread():
            return self.kmeans_.predict(Xnum).astype(np.int64)

    def transform(self, X: Any) -> np.ndarray:
        """Squared Euclidean distance of each row to each centre, shape (n, k)."""
        return self.kmeans_.transform(self._numeric(X)) ** 2

    # ------------------------------------------------------------------ saving (no pickle)
    def to_dict(self) -> dict:
        """Parameters and fitted centres as plain JSON-able values (see :mod:`segkit.core.modelio`).

        The training labels are not kept.

        Examples
        --------
        >>> import json
        >>> df = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1]})
        >>> km = KMeansNumeric(n_clusters=2, n_init=1, random_state=0).fit(df)
        >>> again = KMeansNumeric.from_dict(json.loads(json.dumps(km.to_dict())))
        >>> again.predict(df).tolist() == km.predict(df).tolist()
        True
        """

        check_is_fitted(self, "kmeans_")
        seed = self.random_state if isinstance(self.random_state, (int, np.integer)) else None
        params = {"n_clusters": int(self.n_clusters), "n_init": int(self.n_init), "max_iter": int(self.max_iter),
                  "random_state": None if seed is None else int(seed)}
        fitted = {"cluster_centers_": np.asarray(self.cluster_centers_, np.float64).tolist(),
                  "cost_": float(self.cost_), "n_iter_": int(self.n_iter_),
                  "numeric_features_": [c if isinstance(c, str) else int(c) for c in self.numeric_features_],
                  "n_features_in_": int(self.n_features_in_)}
        return model_dict("KMeansNumeric", params, fitted)

    @classmethod
    def from_dict(cls, data: Any) -> "KMeansNumeric":
        """A fitted model from :meth:`to_dict`'s output: scikit-learn's ``KMeans`` with the saved
        centres, so ``predict`` is scikit-learn's own (the same labels as the fitted model).

        Raises
        ------
        DataError
            Not a saved KMeansNumeric, or centres that do not match the features.
        """
        from sklearn.cluster import KMeans


        keys = ("cluster_centers_", "cost_", "n_iter_", "numeric_features_", "n_features_in_")
        params, fitted = model_parts(data, "KMeansNumeric", params=("n_clusters",), fitted=keys)
        km = cls(**params)
        names = list(fitted["numeric_features_"])
        centers = float_array(fitted["cluster_centers_"], "cluster_centers_", shape=(int(km.n_clusters), len(names)))
        est = KMeans(n_clusters=km.n_clusters, n_init=km.n_init, max_iter=km.max_iter, random_state=km.random_state)
        # the fitted state KMeans.predict reads (scikit-learn 1.x): centres, input width, OpenMP threads
        est.cluster_centers_, est.n_features_in_ = centers, len(names)
        est.inertia_, est.n_iter_ = float(fitted["cost_"]), int(fitted["n_iter_"])
        est._n_threads = 1  # predict runs single-threaded anyway (single_thread)
        km.kmeans_, km.cluster_centers_ = est, centers
        km.cost_, km.n_iter_ = est.inertia_, est.n_iter_
        km.numeric_features_, km.n_features_in_ = names, int(fitted["n_features_in_"])
        return km


# =============================================================================== settings
METHODS = ("auto", "kmeans", "kprototypes")


@dataclass
class ClusterSettings:
    """The ``clustering`` config section, validated (defaults: ``segkit/defaults/clustering.yml``).

    Examples
    --------
    >>> s = ClusterSettings.from_config({"k_min": 3, "k_max": 5})
    >>> s.k_values, s.method, s.feature_set
    ([3, 4, 5], 'auto', 'behaviour_and_profile')
    """

    raw: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict | None = None) -> "ClusterSettings":
        """Defaults of ``clustering.yml`` overridden by ``section`` (None values ignored)."""

        given = {k: v for k, v in (section or {}).items() if v is not None}
        merged = deep_merge(default_config().get("clustering", {}), given)
        settings = cls(merged)
        settings.validate()
        return settings

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["raw"][name]
        except KeyError:
            raise AttributeError(name) from None

    def validate(self) -> None:
        r = self.raw
        where = "clustering"
        if r.get("method") not in METHODS:
            raise ConfigError(f"{where}.method = {r.get('method')!r}; use one of {', '.join(METHODS)}.")
        sets = r.get("feature_sets") or {}
        if r.get("feature_set") not in sets:
            raise ConfigError(f"{where}.feature_set = {r.get('feature_set')!r} is not defined; "
                              f"defined feature sets: {', '.join(sets) or 'none'}.")
        for name, spec in sets.items():
            if not isinstance(spec, dict) or not (spec.get("numeric") or spec.get("categorical")):
                raise ConfigError(f"{where}.feature_sets.{name} needs a `numeric` and/or `categorical` list.")
        for key in ("k_min", "k_max", "n_init", "max_iter"):
            if not isinstance(r.get(key), int) or r[key] < 1:
                raise ConfigError(f"{where}.{key} = {r.get(key)!r}; use a whole number ≥ 1.")
        if r["k_min"] < 2 or r["k_max"] < r["k_min"]:
            raise ConfigError(f"{where}: k_min = {r['k_min']}, k_max = {r['k_max']}; use 2 ≤ k_min ≤ k_max.")
        if r.get("k") is not None and (not isinstance(r["k"], int) or r["k"] < 2):
            raise ConfigError(f"{where}.k = {r['k']!r}; use a whole number ≥ 2, or null to choose k.")
        fit_sample = r.get("fit_sample")
        if fit_sample is not None and (not isinstance(fit_sample, int) or isinstance(fit_sample, bool)
                                       or fit_sample < 1000):
            raise ConfigError(f"{where}.fit_sample = {fit_sample!r}; use a whole number ≥ 1000 (customers the final "
                              "model is fitted on), or null to fit on all customers.")
        if str(r.get("init", "")).lower() not in ("huang", "cao"):
            raise ConfigError(f"{where}.init = {r.get('init')!r}; use Huang or Cao.")
        st = r.get("stability") or {}
        if not (0 < float(st.get("sample_fraction", 0)) < 1) or int(st.get("runs", 0)) < 2:
            raise ConfigError(f"{where}.stability needs runs ≥ 2 and 0 < sample_fraction < 1.")
        share = r.get("segment_action_min_share")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.5 <= share <= 1:
            raise ConfigError(f"{where}.segment_action_min_share = {share!r}; use a share from 0.5 to 1 (0.75 = "
                              "a cluster gets one RFM segment's action when at least 75% of it is in that segment).")

    @property
    def k_values(self) -> list[int]:
        return list(range(int(self.raw["k_min"]), int(self.raw["k_max"]) + 1))

    def features(self, feature_set: str | None = None) -> dict:
        name = feature_set or self.raw["feature_set"]
        sets = self.raw["feature_sets"]
        if name not in sets:
            raise ConfigError(f"Feature set {name!r} is not defined; defined: {', '.join(sets)}.")
        return sets[name]

    def builder(self, feature_set: str | None = None):
        """A :class:`segkit.features.FeatureBuilder` for a feature set of these settings."""

        spec = self.features(feature_set)
        return FeatureBuilder(numeric=list(spec.get("numeric") or []),
                              categorical=list(spec.get("categorical") or []),
                              log=list(self.raw.get("log_features") or []),
                              impute=dict(self.raw.get("impute") or {}),
                              max_categories=int(self.raw["max_categories"]),
                              min_category_share=float(self.raw["min_category_share"]),
                              clip=self.raw.get("clip"))


def resolve_method(method: str, X: pd.DataFrame) -> str:
    """``auto`` → ``kprototypes`` when ``X`` has categorical (non-numeric) columns, else ``kmeans``.

    Examples
    --------
    >>> resolve_method("auto", pd.DataFrame({"x": [1.0], "c": ["a"]}))
    'kprototypes'
    >>> resolve_method("auto", pd.DataFrame({"x": [1.0]}))
    'kmeans'
    """
    if method not in METHODS:
        raise ConfigError(f"method = {method!r}; use one of {', '.join(METHODS)}.")
    if method != "auto":
        return method
    has_cat = any(not pd.api.types.is_numeric_dtype(X[c]) for c in X.columns)
    return "kprototypes" if has_cat else "kmeans"


def make_model(method: str, k: int, seed: int, settings: ClusterSettings | None = None,
               n_init: int | None = None) -> KPrototypes | KMeansNumeric:
    """An unfitted estimator for ``method`` (``kmeans`` or ``kprototypes``) with ``k`` clusters.

    Examples
    --------
    >>> make_model("kprototypes", 3, seed=1).get_params()["init"]
    'Huang'
    """
    s = settings or ClusterSettings.from_config()
    n_init = int(n_init or s.n_init)
    if method == "kmeans":
        return KMeansNumeric(n_clusters=k, n_init=n_init, max_iter=int(s.max_iter), random_state=seed)
    if method == "kprototypes":
        return KPrototypes(n_clusters=k, init=str(s.init).capitalize(), n_init=n_init, gamma=s.gamma,
                           max_iter=int(s.max_iter), random_state=seed)
    raise ConfigError(f"method = {method!r}; use kmeans or kprototypes (or auto).")


# =============================================================================== model selection
def gower_distances(X: pd.DataFrame) -> np.ndarray:
    """Gower-style dissimilarity between all rows of a mixed feature table.

    Numeric columns contribute ``|x − y| / range`` (range over these rows), categorical columns
    a mismatch (0/1); the result is the mean over columns, between 0 and 1 (Gower 1971).
    Memory is ``n² × 8`` bytes: use it on a sample.

    Examples
    --------
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0], "c": ["a", "a", "b"]})
    >>> gower_distances(X).round(2).tolist()
    [[0.0, 0.25, 1.0], [0.25, 0.0, 0.75], [1.0, 0.75, 0.0]]
    """
    from scipy.spatial.distance import cdist

    Xnum, Xcat, _, _ = split_mixed(X)
    n = len(X)
    span = Xnum.max(axis=0) - Xnum.min(axis=0) if len(Xnum) else np.zeros(Xnum.shape[1])
    keep = span > 0
    scaled = Xnum[:, keep] / span[keep]
    D = cdist(scaled, scaled, "cityblock") if keep.any() else np.zeros((n, n))
    if Xcat.shape[1]:
        onehot = pd.get_dummies(pd.DataFrame(Xcat).astype(str), dtype=float).to_numpy()
        D += Xcat.shape[1] - onehot @ onehot.T  # mismatches = columns − matches
    return D / max(Xnum.shape[1] + Xcat.shape[1], 1)


def elbow_k(ks: Sequence[int], costs: Sequence[float]) -> int:
    """The k where the cost curve bends most: the point farthest below the straight line from
    the first to the last point, both axes scaled to 0–1 ("kneedle", Satopää et al. 2011).

    Examples
    --------
    >>> elbow_k([2, 3, 4, 5, 6], [100, 60, 20, 17, 15])
    4
    """
    ks = np.asarray(ks, dtype=float)
    c = np.asarray(costs, dtype=float)
    if len(ks) < 3 or c.max() == c.min():
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (c - c.min()) / (c.max() - c.min())
    line = y[0] + (y[-1] - y[0]) * x
    return int(ks[int(np.argmax(line - y))])


def choose_k(selection: pd.DataFrame, tolerance: float = 0.02, min_cluster_share: float = 0.02) -> tuple[int, str]:
    """Chosen k and the reason, by the documented rule.

    Among k whose smallest cluster holds at least ``min_cluster_share`` of customers (all k if
    none does), keep those whose silhouette is within ``tolerance`` of the best; of these take
    the one closest to the elbow of the cost curve (:func:`elbow_k`), the smaller k on a tie.

    Parameters
    ----------
    selection : DataFrame
        Columns ``k, cost, silhouette, smallest_share`` (see :func:`select_k`).

    Examples
    --------
    >>> sel = pd.DataFrame({"k": [2, 3, 4, 5], "cost": [100.0, 50.0, 20.0, 18.0],
    ...                     "silhouette": [0.40, 0.45, 0.44, 0.30],
    ...                     "smallest_share": [0.4, 0.2, 0.1, 0.01]})
    >>> choose_k(sel)[0]
    4
    """
    sel = selection.sort_values("k").reset_index(drop=True)
    elbow = elbow_k(sel["k"], sel["cost"])
    ok = sel[sel["smallest_share"] >= min_cluster_share]
    excluded = sorted(set(sel["k"]) - set(ok["k"]))
    if ok.empty:
        ok, excluded = sel, []
    sil = ok["silhouette"].fillna(-1.0)
    best = float(sil.max())
    best_k = int(ok.loc[sil.idxmax(), "k"])
    near = ok[sil >= best - tolerance]
    dist = (near["k"] - elbow).abs()
    pick = near.loc[dist == dist.min(), "k"].min()
    row = sel.set_index("k").loc[pick]
    parts = [f"k = {pick}: silhouette {row['silhouette']:.3f}"]
    if pick == best_k:
        parts.append("the best of the k tried")
    else:
        parts.append(f"within {tolerance:g} of the best ({best:.3f} at k = {best_k})")
    if len(near) > 1:
        parts.append(f"and, of the near-best k ({', '.join(map(str, near['k']))}), the closest to the "
                     f"elbow of the cost curve (k = {elbow})")
    elif pick == elbow:
        parts.append(f"and at the elbow of the cost curve")
    else:
        parts.append(f"(the cost curve bends at k = {elbow})")
    reason = ", ".join(parts[:2]) + " " + " ".join(parts[2:]) + "."
    if excluded:
        reason += (f" Not considered: k = {', '.join(map(str, excluded))} (a cluster under "
                   f"{min_cluster_share:.0%} of customers).")
    return int(pick), reason


def _selection_rows(Xs, Xsil, sil_rows, D, ks, method, seed, s, numeric, models: dict | None = None) -> list[dict]:
    """Fit each k on ``Xs`` and score it (see :func:`select_k`); ``models`` gets each fit."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


    out = []
    for k in progress([k for k in ks if 2 <= k < len(Xs)], desc="Choosing k"):
        model = make_model(method, k, seed, s, n_init=s.selection.get("n_init")).fit(Xs)
        if models is not None:
            models[k] = model
        labels = model.labels_
        counts = np.bincount(labels, minlength=k)
        lab_sil = labels[sil_rows]
        n_sil = len(np.unique(lab_sil))
        if 2 <= n_sil < len(lab_sil):
            if D is not None:
                sil = float(silhouette_score(D, lab_sil, metric="precomputed"))
            else:
                sil = float(silhouette_score(Xsil[numeric].to_numpy(), lab_sil))
        else:
            sil = np.nan
        ch = db = np.nan
        if method == "kmeans":
            num = Xs[numeric].to_numpy()
            ch = float(calinski_harabasz_score(num, labels))
            db = float(davies_bouldin_score(num, labels))
        out.append({"k": k, "cost": float(model.cost_), "silhouette": sil, "calinski_harabasz": ch,
                    "davies_bouldin": db, "smallest_share": float(counts.min() / len(labels))})
    return out


def select_k(X: pd.DataFrame, ks: Sequence[int], method: str, seed: int,
             settings: ClusterSettings | None = None, models: dict | None = None) -> pd.DataFrame:
    """Fit every k in ``ks`` and compare: cost, silhouette, Calinski–Harabasz, Davies–Bouldin.

    Fits run on a seeded sample of ``selection.sample_size`` customers. The silhouette uses a
    seeded sub-sample of ``selection.silhouette_sample`` of them: Gower-style distances
    (:func:`gower_distances`) for k-prototypes, Euclidean on the numeric features for k-means.
    Calinski–Harabasz (higher is better) and Davies–Bouldin (lower is better) are computed for
    k-means only (they assume Euclidean geometry).

    Parameters
    ----------
    models : dict, optional
        Filled with the model fitted for each k (the explorer shows them instead of refitting).

    Returns
    -------
    DataFrame
        ``k, cost, silhouette, calinski_harabasz, davies_bouldin, smallest_share`` (share of the
        fitted customers in the smallest cluster), one row per k; attrs ``elbow_k``,
        ``fitted_customers``, ``silhouette_customers``.
    """
    s = settings or ClusterSettings.from_config()
    rows = sample_positions(len(X), s.selection.get("sample_size"), seed)
    return compare_k(X.iloc[rows], ks, method, seed, s, models, customers=len(X))


def compare_k(Xs: pd.DataFrame, ks: Sequence[int], method: str, seed: int,
              settings: ClusterSettings | None = None, models: dict | None = None,
              customers: int | None = None) -> pd.DataFrame:
    """:func:`select_k` on its sample: ``Xs`` holds the features of the customers at
    ``sample_positions(customers, selection.sample_size, seed)`` (every customer when they are
    fewer), in that order.

    Parameters
    ----------
    customers : int, optional
        Customers of the whole table (for the message when k cannot be compared; default ``len(Xs)``).

    Returns
    -------
    DataFrame
        As :func:`select_k`.
    """
    s = settings or ClusterSettings.from_config()
    sel = s.selection
    sil_rows = sample_positions(len(Xs), sel.get("silhouette_sample"), seed + 1)
    Xsil = Xs.iloc[sil_rows]
    numeric = numeric_columns(Xs)
    D = gower_distances(Xsil) if method == "kprototypes" else None
    with single_thread():
        out = _selection_rows(Xs, Xsil, sil_rows, D, ks, method, seed, s, numeric, models)
    if not out:
        raise ModelFitError(f"Too few customers ({customers or len(Xs)}) to compare k in {list(ks)}; clustering needs "
                            "more customers than clusters.")
    table = pd.DataFrame(out)
    table.attrs.update(elbow_k=elbow_k(table["k"], table["cost"]), fitted_customers=len(Xs),
                       silhouette_customers=len(Xsil))
    return table


# =============================================================================== stability
@dataclass
class Stability:
    """Agreement between refits on random subsamples (see :func:`stability`)."""

    mean_ari: float
    std_ari: float
    min_ari: float
    runs: int
    customers: int
    threshold: float
    cluster_jaccard: pd.Series  # per cluster label of the reference fit
    cluster_threshold: float

    @property
    def stable(self) -> bool:
        return bool(self.mean_ari >= self.threshold)

    @property
    def unstable_clusters(self) -> list:
        return [c for c, v in self.cluster_jaccard.items() if v < self.cluster_threshold]

    def as_table(self) -> pd.DataFrame:
        """One-row summary for display."""
        return pd.DataFrame([{"runs": self.runs, "customers": self.customers,
                              "mean_ari": self.mean_ari, "std_ari": self.std_ari,
                              "min_ari": self.min_ari, "threshold": self.threshold,
                              "verdict": "stable" if self.stable else "unstable"}])


def jaccard_best_match(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each reference cluster, the best Jaccard overlap with a cluster of ``other``
    (Hennig 2007, the per-cluster stability of ``clusterboot``).

    Examples
    --------
    >>> jaccard_best_match(np.array([0, 0, 1, 1]), np.array([1, 1, 1, 0])).round(2).tolist()
    [0.67, 0.5]
    """
    ref = pd.factorize(reference, sort=True)[0]
    oth = pd.factorize(other, sort=True)[0]
    table = np.zeros((ref.max() + 1, oth.max() + 1))
    np.add.at(table, (ref, oth), 1)
    size_r, size_o = table.sum(axis=1), table.sum(axis=0)
    jac = table / (size_r[:, None] + size_o[None, :] - table)
    return jac.max(axis=1)


def stability(X: pd.DataFrame, k: int, method: str, seed: int, reference: np.ndarray,
              settings: ClusterSettings | None = None, customers: int | None = None) -> Stability:
    """How reproducible the clustering is: refit on random subsamples, compare the partitions.

    On a seeded sample of at most ``stability.max_customers`` customers, ``stability.runs`` models
    are fitted, each on a different random ``sample_fraction`` of them, and each labels the whole
    sample (``predict``). The adjusted Rand index (ARI) between every pair of runs measures
    agreement (1 = identical partitions, 0 = chance); its mean below ``stability.threshold``
    flags the solution unstable. Per cluster of ``reference`` (the final model's labels of all
    of ``X``), the mean best-match Jaccard overlap over runs shows which clusters dissolve.

    With ``customers`` (the customers of the whole table), ``X`` and ``reference`` are already its
    stability sample (the rows at ``sample_plan(...)["stability"]``, e.g. :meth:`ClusterFit.features_at`):
    the result is the same as from the whole table.

    Returns
    -------
    Stability
    """
    from itertools import combinations

    from sklearn.metrics import adjusted_rand_score


    s = settings or ClusterSettings.from_config()
    st = s.stability
    rows = (sample_positions(len(X), st.get("max_customers"), seed + 2) if customers is None
            else np.arange(len(X)))
    Xs = X.iloc[rows]
    ref = np.asarray(reference)[rows]
    rng = np.random.default_rng(seed + 3)
    m = max(k + 1, int(round(float(st["sample_fraction"]) * len(Xs))))
    runs = []
    for r in progress(range(int(st["runs"])), desc="Stability"):
        sub = np.sort(rng.choice(len(Xs), size=min(m, len(Xs)), replace=False))
        model = make_model(method, k, seed + 100 + r, s, n_init=st.get("n_init")).fit(Xs.iloc[sub])
        runs.append(model.predict(Xs))
    aris = np.array([adjusted_rand_score(a, b) for a, b in combinations(runs, 2)])
    jac = np.mean([jaccard_best_match(ref, lab) for lab in runs], axis=0)
    return Stability(mean_ari=float(aris.mean()), std_ari=float(aris.std()), min_ari=float(aris.min()),
                     runs=len(runs), customers=len(Xs), threshold=float(st["threshold"]),
                     cluster_jaccard=pd.Series(jac, index=np.unique(ref)),
                     cluster_threshold=float(st.get("cluster_threshold", 0.6)))


# =============================================================================== profiles and names
def order_by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Map raw labels to cluster numbers 1..k, 1 = the largest cluster (ties: lower raw label).

    Returns the lookup array ``number[raw_label]``.

    Examples
    --------
    >>> order_by_size(np.array([0, 1, 1, 2, 2, 2]), 3).tolist()
    [3, 2, 1]
    """
    return order_by_counts(np.bincount(labels, minlength=k))


def order_by_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """:func:`order_by_size` from the customers per raw label (``counts[label]``), e.g. summed over the
    partitions of a scoring pass on Spark: the lookup array ``number[raw_label]``.

    Examples
    --------
    >>> order_by_counts([1, 2, 3]).tolist()
    [3, 2, 1]
    """
    counts = np.asarray(counts, dtype=np.int64)
    k = len(counts)
    rank = np.lexsort((np.arange(k), -counts))
    number = np.empty(k, dtype=np.int64)
    number[rank] = np.arange(1, k + 1)
    return number


def profile_clusters(values: pd.DataFrame, clusters: np.ndarray, numeric: Sequence[str],
                     categorical: Sequence[str] = (),
                     revenue: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Size, share, numeric means and categorical modes per cluster, each against the whole base.

    Parameters
    ----------
    values : DataFrame
        Features on their original scale (``FeatureBuilder.imputed``), one row per customer.
    clusters : array
        Cluster number of each row.
    numeric, categorical : sequence of str
        Columns of ``values`` to profile.
    revenue : array, optional
        Net revenue per customer; adds ``revenue_share``.

    Returns
    -------
    means : DataFrame
        One row per cluster (``cluster, customers, share[, revenue_share]`` + the mean of every
        numeric feature) and a last row ``All customers``.
    lifts : DataFrame
        Cluster mean / overall mean of every numeric feature (NaN where the overall mean is 0).
    modes : DataFrame
        ``cluster, customers, feature, mode, share_in_cluster, share_in_base, lift`` — the most
        common level of each categorical feature per cluster.

    Examples
    --------
    >>> v = pd.DataFrame({"frequency": [1.0, 1.0, 5.0, 7.0], "region": ["N", "N", "S", "N"]})
    >>> means, lifts, modes = profile_clusters(v, np.array([1, 1, 2, 2]), ["frequency"], ["region"])
    >>> means[["cluster", "customers", "frequency"]].to_dict("list")
    {'cluster': ['1', '2', 'All customers'], 'customers': [2, 2, 4], 'frequency': [1.0, 6.0, 3.5]}
    >>> lifts["frequency"].round(2).tolist()
    [0.29, 1.71]
    >>> modes[["cluster", "mode", "share_in_cluster", "lift"]].values.tolist()
    [[1, 'N', 1.0, 1.3333333333333333], [2, 'N', 0.5, 0.6666666666666666]]
    """
    return profiles_of(cluster_tally(values, clusters, numeric, categorical, revenue))


@dataclass
class ClusterTally:
    """What notebook 03 shows about the clusters, as mergeable per-cluster counts and exact sums.

    One definition, two uses: :func:`cluster_tally` of the whole table (the pandas path,
    :func:`cluster_customers`) or of every partition of it (Spark, ``mapInPandas``) merged on the
    driver (:meth:`merge`); :func:`profiles_of` turns it into the profile, lift and categorical
    tables, :func:`segment_shares` the RFM crosstab, :attr:`standardised` the heatmap's means.
    Sums are exact (:func:`segkit.data.distribution.exact_sums`) and counts whole, so merging adds them and every table is the same,
    bit for bit, however the customers were split; means are correctly rounded.

    Attributes
    ----------
    counts : Series
        Customers per cluster number (int64, index ascending).
    sums : DataFrame
        Exact sum of each profiled numeric feature per cluster (original scale, filled).
    revenue : Series or None
        Exact net revenue per cluster (None: not profiled).
    levels : dict
        Categorical feature → customers per cluster (rows) and level (columns).
    standardised_sums : DataFrame
        Exact sum of each numeric model feature (standardised) per cluster.
    observed : DataFrame
        Customers per cluster whose value of each numeric model feature was in the data (not filled).
    segments : DataFrame or None
        Customers per (cluster, cluster_name) and RFM segment (:func:`segment_counts`).
    """

    counts: pd.Series
    sums: pd.DataFrame
    revenue: pd.Series | None = None
    levels: dict = field(default_factory=dict)
    standardised_sums: pd.DataFrame = field(default_factory=pd.DataFrame)
    observed: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments: pd.DataFrame | None = None

    @property
    def customers(self) -> int:
        """Customers of the part (all clusters)."""
        return int(self.counts.sum())

    def _means(self, sums: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: [exact_mean(sums.at[k, c], self.counts[k]) for k in sums.index] for c in sums.columns},
                            index=sums.index, columns=sums.columns, dtype="float64")

    @property
    def means(self) -> pd.DataFrame:
        """Mean of each profiled numeric feature per cluster."""
        return self._means(self.sums)

    @property
    def overall(self) -> pd.Series:
        """Mean of each profiled numeric feature over every customer."""
        return pd.Series({c: exact_mean(sum(self.sums[c]), self.customers) for c in self.sums.columns}, dtype="float64")

    @property
    def standardised(self) -> pd.DataFrame:
        """Mean of each numeric model feature per cluster (standard deviations from the base)."""
        return self._means(self.standardised_sums)

    def revenue_shares(self) -> pd.Series | None:
        """Each cluster's share of the net revenue (NaN when the total is 0; None without revenue)."""
        if self.revenue is None:
            return None
        total = sum(self.revenue)
        return pd.Series([exact_ratio(r, total) for r in self.revenue], index=self.revenue.index, dtype="float64")

    @classmethod
    def merge(cls, parts: Sequence["ClusterTally"]) -> "ClusterTally":
        """The tally of the union of disjoint parts (a part without customers adds nothing).

        Examples
        --------
        >>> v = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "c": list("abab")})
        >>> cl = np.array([1, 1, 2, 2])
        >>> whole = cluster_tally(v, cl, ["x"], ["c"])
        >>> halves = ClusterTally.merge([cluster_tally(v[:3], cl[:3], ["x"], ["c"]),
        ...                              cluster_tally(v[3:], cl[3:], ["x"], ["c"])])
        >>> halves.means.equals(whole.means), halves.levels["c"].equals(whole.levels["c"])
        (True, True)
        """
        parts = [p for p in parts if p.customers]
        if not parts:
            raise ValueError("ClusterTally.merge needs at least one part with customers")
        if len(parts) == 1:
            return parts[0]
        keys = sorted(set().union(*[p.counts.index for p in parts]))

        def added(frames: list, by_name: bool = False, whole: bool = True) -> Any:
            labels = None if isinstance(frames[0], pd.Series) else list(dict.fromkeys(c for f in frames for c in f.columns))
            out = frames[0]
            for f in frames[1:]:
                out = out.add(f, fill_value=0)
            out = out.fillna(0).sort_index()
            out = out.astype("int64") if whole else out.astype(object)
            if labels is None:
                return out
            labels = sorted(labels, key=str) if by_name else labels  # levels by name, as pandas' crosstab has them
            return out.reindex(pd.Index(labels, dtype=frames[0].columns.dtype), axis=1)

        def exact(frames: list) -> Any:
            return added(frames, whole=False).reindex(keys, fill_value=0)

        return cls(counts=added([p.counts for p in parts]).reindex(keys, fill_value=0),
                   sums=exact([p.sums for p in parts]),
                   revenue=None if parts[0].revenue is None else exact([p.revenue for p in parts]),
                   levels={c: added([p.levels[c] for p in parts], by_name=True).reindex(keys, fill_value=0)
                           for c in parts[0].levels},
                   standardised_sums=exact([p.standardised_sums for p in parts]),
                   observed=added([p.observed for p in parts]).reindex(keys, fill_value=0),
                   segments=None if parts[0].segments is None else added([p.segments for p in parts], by_name=True))

    def to_json(self) -> str:
        """The tally as JSON text (exact sums as decimal text; what a Spark partition sends to the driver)."""
        def frame(f: pd.DataFrame | None, exact: bool = False) -> dict | None:
            return None if f is None else {"index": [_json_key(i) for i in f.index],
                                           "columns": [str(c) for c in f.columns],
                                           "data": [[str(int(x)) if exact else x for x in row]
                                                    for row in f.to_numpy().tolist()]}
        return json.dumps({"counts": frame(self.counts.to_frame("n")), "sums": frame(self.sums, True),
                           "revenue": None if self.revenue is None else frame(self.revenue.to_frame("r"), True),
                           "levels": {c: frame(f) for c, f in self.levels.items()},
                           "standardised_sums": frame(self.standardised_sums, True), "observed": frame(self.observed),
                           "segments": frame(self.segments)})

    @classmethod
    def from_json(cls, text: str) -> "ClusterTally":
        """The tally :meth:`to_json` wrote."""
        data = json.loads(text)

        def frame(d: dict | None, exact: bool = False, labels: str | None = None) -> pd.DataFrame | None:
            if d is None:
                return None
            index = [tuple(i) if isinstance(i, list) else i for i in d["index"]]
            index = pd.MultiIndex.from_tuples(index) if index and isinstance(index[0], tuple) else pd.Index(index)
            columns = pd.Index(d["columns"], dtype=labels)
            if exact:
                return pd.DataFrame([[int(x) for x in row] for row in d["data"]], index=index, columns=columns,
                                    dtype=object)
            return pd.DataFrame(np.asarray(d["data"], dtype="int64").reshape(len(d["index"]), len(d["columns"])),
                                index=index, columns=columns)

        revenue = frame(data["revenue"], True)
        return cls(counts=frame(data["counts"])["n"], sums=frame(data["sums"], True),
                   revenue=None if revenue is None else revenue["r"],
                   levels={c: frame(f) for c, f in data["levels"].items()},
                   standardised_sums=frame(data["standardised_sums"], True), observed=frame(data["observed"]),
                   segments=frame(data["segments"], labels="string"))  # segment_counts' labels: "string"


def _json_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return [_json_key(k) for k in key]
    return int(key) if isinstance(key, (int, np.integer)) else str(key)


def cluster_tally(values: pd.DataFrame, clusters: np.ndarray, numeric: Sequence[str], categorical: Sequence[str] = (),
                  revenue: np.ndarray | None = None, features: pd.DataFrame | None = None,
                  observed: pd.DataFrame | None = None, segments: pd.DataFrame | None = None) -> ClusterTally:
    """The :class:`ClusterTally` of some customers (the whole table, or one partition of it).

    Parameters
    ----------
    values : DataFrame
        Features on their original scale, filled (``FeatureBuilder.imputed``), one row per customer.
    clusters : array
        Cluster number of each row.
    numeric, categorical : sequence of str
        Columns of ``values`` to profile.
    revenue : array, optional
        Net revenue per customer (adds the revenue shares).
    features : DataFrame, optional
        Numeric model features (standardised), same rows: their means per cluster (the heatmap).
    observed : DataFrame, optional
        Same rows, True where a model feature's value was in the data (columns by name; absent = observed).
    segments : DataFrame, optional
        ``cluster, cluster_name`` and the RFM segment column of the same customers (:func:`segment_counts`).
    """
    clusters = np.asarray(clusters)
    keys = np.unique(clusters)
    counts = pd.Series(clusters).value_counts().reindex(keys).astype("int64")
    rev = None
    if revenue is not None:
        rev = exact_sums(pd.DataFrame({"r": np.asarray(revenue, dtype=float)}), clusters, keys)["r"]
    levels = {}
    for col in categorical:
        levels[col] = pd.crosstab(clusters, values[col].astype("string").to_numpy()).reindex(keys, fill_value=0)
        levels[col].index.name, levels[col].columns.name = None, None
    model = features.astype("float64") if features is not None else pd.DataFrame(index=values.index)
    seen = (pd.DataFrame(np.ones(model.shape, dtype=bool), columns=model.columns) if observed is None else
            pd.DataFrame({c: observed[c].to_numpy(dtype=bool) if c in observed.columns
                          else np.ones(len(model), dtype=bool) for c in model.columns}, columns=model.columns))
    return ClusterTally(counts=counts, sums=exact_sums(values[list(numeric)].astype("float64"), clusters, keys),
                        revenue=rev, levels=levels, standardised_sums=exact_sums(model, clusters, keys),
                        observed=seen.groupby(clusters).sum().reindex(keys).astype("int64"),
                        segments=None if segments is None else segment_counts(segments))


def profiles_of(tally: ClusterTally) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tables of :func:`profile_clusters` (means, lifts, categorical modes) from a :class:`ClusterTally`."""
    keys = np.asarray(tally.counts.index)
    n = tally.customers
    means, overall = tally.means, tally.overall
    sizes = tally.counts.to_numpy()
    head = pd.DataFrame({"cluster": [str(k) for k in keys], "customers": sizes.astype("int64"), "share": sizes / n})
    if tally.revenue is not None:
        head["revenue_share"] = tally.revenue_shares().to_numpy()
    table = pd.concat([head, means.reset_index(drop=True)], axis=1)
    base = {"cluster": "All customers", "customers": n, "share": 1.0, **overall.to_dict()}
    if tally.revenue is not None:
        base["revenue_share"] = 1.0
    means_out = pd.concat([table, pd.DataFrame([base])], ignore_index=True)
    means_out["customers"] = means_out["customers"].astype("int64")
    means_out["cluster"] = means_out["cluster"].astype("string")
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = means.to_numpy() / overall.replace(0, np.nan).to_numpy()[None, :]
    lifts = pd.concat([head[["cluster", "customers"]], pd.DataFrame(lift, columns=list(means.columns))], axis=1)
    lifts["cluster"] = lifts["cluster"].astype("string")
    rows = []
    for col, counts in tally.levels.items():
        base_share = counts.sum(axis=0) / counts.to_numpy().sum()
        for key in keys:
            row = counts.loc[key]
            top = sorted(row.index[row == row.max()], key=str)[0]
            share = float(row[top] / row.sum())
            rows.append({"cluster": int(key), "customers": int(row.sum()), "feature": col, "mode": str(top),
                         "share_in_cluster": share, "share_in_base": float(base_share[top]),
                         "lift": share / float(base_share[top])})
    modes = pd.DataFrame(rows, columns=["cluster", "customers", "feature", "mode", "share_in_cluster",
                                        "share_in_base", "lift"])
    return means_out, lifts, modes


def _trait_word(feature: str, direction: str, vocabulary: dict,
                original_values: dict[str, str] | None = None) -> str:
    """The vocabulary word for a feature being high/low (patterns fill ``{value}``).

    ``{value}`` is the category value as typed (``original_values``, e.g. ``"App <iOS>"``) when
    known, else the part of the column name that ``*`` matched, with spaces for underscores.
    """
    import fnmatch

    entry = vocabulary.get(feature)
    value, typed = "", feature in (original_values or {})
    if entry is None:
        for pattern, words in vocabulary.items():
            if any(ch in pattern for ch in "*?[") and fnmatch.fnmatch(feature, pattern):
                entry = words
                prefix = pattern.split("*", 1)[0]
                value = original_values[feature] if typed else feature[len(prefix):].replace("_", " ")
                break
    if entry is None:
        return f"{direction} {feature.replace('_', ' ')}"
    return str(entry.get(direction) or "").replace("{value}", value)


def naming_scores(features: pd.DataFrame, clusters: np.ndarray, observed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each cluster's median customer against the base's median customer, per numeric feature.

    What :func:`name_clusters` reads. Medians, not means: a few extreme customers, or values
    filled in where the data had none, move a mean but not the customer in the middle. A filled
    value (``observed`` False, e.g. the gap between orders of a one-time buyer, filled with their
    tenure) is left out of both medians, and a cluster in which at most half the customers have
    the feature observed gets NaN: its median customer has no such value, so the feature gives no
    word (a cluster whose median customer bought once is never "fast-repeating" or
    "slow-repeating", whatever its filled gaps say).

    Parameters
    ----------
    features : DataFrame
        Numeric model features, standardised (:meth:`segkit.features.FeatureBuilder.transform`):
        the differences are in standard deviations of the base.
    clusters : array
        Cluster number of each row.
    observed : DataFrame, optional
        Same shape (columns by name; missing columns count as observed): True where the value
        was in the data, False where it was filled.

    Returns
    -------
    DataFrame
        Index = cluster number, columns = features: cluster median - base median.

    Examples
    --------
    >>> X = pd.DataFrame({"gap": [-1.0, -1.0, -1.0, 0.5, 1.5, 1.0], "frequency": [-1.0, -1.0, 0.0, 1.0, 1.0, 0.0]})
    >>> seen = pd.DataFrame({"gap": [False, False, True, True, True, True]})
    >>> naming_scores(X, np.array([1, 1, 1, 2, 2, 2]), seen)
        gap  frequency
    1   NaN       -1.0
    2  0.25        1.0
    """
    numbers = features.astype("float64")
    seen = (np.ones(numbers.shape, dtype=bool) if observed is None else
            np.column_stack([observed[c].to_numpy(dtype=bool) if c in observed.columns
                             else np.ones(len(numbers), dtype=bool) for c in numbers.columns]).reshape(numbers.shape))
    masked = numbers.where(seen)
    groups = np.asarray(clusters)
    observed_counts = pd.DataFrame(seen, columns=numbers.columns, index=numbers.index).groupby(groups).sum()
    return naming_scores_from(masked.groupby(groups).median(), masked.median(), observed_counts,
                              pd.Series(groups).value_counts().sort_index())


def naming_scores_from(cluster_medians: pd.DataFrame, base_medians: pd.Series, observed: pd.DataFrame,
                       counts: pd.Series) -> pd.DataFrame:
    """:func:`naming_scores` from its bounded inputs: medians and counts, wherever they were computed.

    Parameters
    ----------
    cluster_medians : DataFrame
        Index = cluster number, columns = features: the median of the observed values of the cluster's
        customers (NaN: none observed). On Spark exact order statistics
        (:func:`segkit.data.spark_ranks.value_distributions`, read by ``ValueDistribution.median``).
    base_medians : Series
        The median of the observed values of every customer, per feature.
    observed : DataFrame
        Customers per cluster with the feature observed (:attr:`ClusterTally.observed`).
    counts : Series
        Customers per cluster (:attr:`ClusterTally.counts`).

    Examples
    --------
    >>> naming_scores_from(pd.DataFrame({"f": [1.0, 3.0]}, index=[1, 2]), pd.Series({"f": 2.0}),
    ...                    pd.DataFrame({"f": [2, 1]}, index=[1, 2]), pd.Series([2, 2], index=[1, 2]))
         f
    1 -1.0
    2  NaN
    """
    scores = cluster_medians - base_medians
    share_seen = observed.div(counts.reindex(observed.index), axis=0)
    return scores.where(share_seen > 0.5)


#: The keys of the ``naming`` config that :func:`name_clusters` reads.
NAMING_KEYS = frozenset({"min_effect", "traits", "default", "vocabulary", "categorical_min_share",
                         "categorical_min_lift", "categorical_phrase"})


def name_clusters(z_means: pd.DataFrame, modes: pd.DataFrame | None = None,
                  naming: dict | None = None, original_values: dict[str, str] | None = None) -> dict[int, str]:
    """A short, unique, deterministic name per cluster from its strongest differences.

    A trait is a numeric feature whose cluster score lies at least ``min_effect`` standard
    deviations from the base (``z_means``: cluster × feature, standardised; the producer passes
    :func:`naming_scores`, each cluster's median customer against the base's, NaN where the median
    customer has no value of the feature); the ``traits``
    strongest (ties: feature name) give the words of ``vocabulary`` (``high``/``low``).
    When fewer stand out, a categorical level held by at least ``categorical_min_share`` of the
    cluster and ``categorical_min_lift`` times more common than in the base adds
    "(mostly <level>)". Clusters with the same name get their next trait, then a number.
    Names from the data (channels, levels) read as typed: "App <iOS>-first", "mostly web_shop";
    only a name that starts with a vocabulary word is capitalised.

    Parameters
    ----------
    z_means : DataFrame
        Index = cluster number; columns = numeric features; values = standardised differences
        from the base (:func:`naming_scores`); NaN = no word from that feature.
    modes : DataFrame, optional
        The categorical profile of :func:`profile_clusters`.
    naming : dict, optional
        The ``naming`` config (defaults: ``clustering.yml``).
    original_values : dict, optional
        Feature column → the category value it was made for, as typed
        (:attr:`segkit.features.FeatureBuilder.original_values_`); fills ``{value}``.

    Examples
    --------
    >>> z = pd.DataFrame({"frequency": [1.2, -0.8, 0.1], "aov": [0.9, 0.1, 0.2]}, index=[1, 2, 3])
    >>> name_clusters(z)
    {1: 'Frequent, big-basket customers', 2: 'Infrequent customers', 3: 'Typical customers'}
    >>> z = pd.DataFrame({"channel_share_app_ios": [2.0, -0.5], "aov": [1.0, 0.0]}, index=[1, 2])
    >>> name_clusters(z, original_values={"channel_share_app_ios": "App <iOS>"})[1]
    'App <iOS>-first, big-basket customers'
    """
    given = dict(naming or {})
    # the shipped defaults (a YAML read) only when the given naming config lacks a key
    cfg = given if NAMING_KEYS <= set(given) else {**ClusterSettings.from_config().naming, **given}
    vocab = cfg.get("vocabulary") or {}
    min_effect = float(cfg["min_effect"])
    n_traits = int(cfg["traits"])
    ranked: dict[int, list[str]] = {}
    for cluster, row in z_means.iterrows():
        items = sorted(((-abs(float(v)), str(f), float(v)) for f, v in row.items() if pd.notna(v)))
        words = []
        for neg, feat, v in items:
            if -neg < min_effect:
                break
            word = _trait_word(feat, "high" if v > 0 else "low", vocab, original_values)
            if word and word not in words:
                words.append(word)
        ranked[int(cluster)] = words
    cats: dict[int, list[str]] = {int(c): [] for c in z_means.index}
    if modes is not None and len(modes):
        strong = modes[(modes["share_in_cluster"] >= float(cfg["categorical_min_share"]))
                       & (modes["lift"] >= float(cfg["categorical_min_lift"]))]
        strong = strong.sort_values(["cluster", "lift", "feature"], ascending=[True, False, True], kind="stable")
        for c, level in zip(strong["cluster"], strong["mode"]):
            text = str(level)
            phrase = str(cfg["categorical_phrase"]).replace("{value}", text)
            said = " ".join(ranked.get(int(c), [])[:n_traits]).lower()
            if phrase not in cats.setdefault(int(c), []) and text.lower() not in said:
                cats[int(c)].append(phrase)

    def compose(words: list[str], cat: list[str]) -> str:
        if not words and not cat:
            return str(cfg["default"])
        head = ", ".join(words) if words else str(cfg["default"]).rsplit(" ", 1)[0].lower()
        name = head[:1].upper() + head[1:] + " customers"
        return name + (f" ({'; '.join(cat)})" if cat else "")

    depth = {c: min(n_traits, len(w)) for c, w in ranked.items()}
    n_cat = {c: (1 if depth[c] < n_traits and cats[c] else 0) for c in ranked}
    names = {c: compose(ranked[c][:depth[c]], cats[c][:n_cat[c]]) for c in ranked}
    for _ in range(8):  # lengthen duplicate names with the next trait, then the next level
        dupes = pd.Series(names).duplicated(keep=False)
        if not dupes.any():
            break
        for c in dupes[dupes].index:
            if depth[c] < len(ranked[c]):
                depth[c] += 1
            elif n_cat[c] < len(cats[c]):
                n_cat[c] += 1
            names[c] = compose(ranked[c][:depth[c]], cats[c][:n_cat[c]])
    counts = pd.Series(names).value_counts()
    seen: dict[str, int] = {}
    for c in sorted(names):
        if counts[names[c]] > 1:
            base = names[c]
            seen[base] = seen.get(base, 0) + 1
            names[c] = f"{base} #{seen[base]}"
    return names


def segment_crosstab(assignments: pd.DataFrame, rfm: pd.DataFrame, column: str = "rfm_segment") -> pd.DataFrame:
    """Share of each cluster's customers in each RFM segment (rows add up to 1).

    Columns: ``cluster, cluster_name, customers`` then one column per segment, the most common
    segments first.

    Examples
    --------
    >>> a = pd.DataFrame({"customer_id": ["a", "b", "c"], "cluster": [1, 1, 2],
    ...                   "cluster_name": ["X", "X", "Y"]})
    >>> r = pd.DataFrame({"customer_id": ["a", "b", "c"], "rfm_segment": ["Lost", "Champions", "Lost"]})
    >>> segment_crosstab(a, r)[["cluster_name", "customers", "Lost", "Champions"]].values.tolist()
    [['X', 2, 0.5, 0.5], ['Y', 1, 1.0, 0.0]]
    """
    if column not in rfm.columns:
        raise DataError(f"The RFM table has no column {column!r}; re-run 02_rfm to rebuild artifacts/rfm.parquet.")
    merged = assignments[["customer_id", "cluster", "cluster_name"]].merge(
        rfm[["customer_id", column]].astype({"customer_id": "string"}), on="customer_id", how="left")
    return segment_shares(segment_counts(merged, column))


def segment_counts(labelled: pd.DataFrame, column: str = "rfm_segment") -> pd.DataFrame:
    """Customers per (cluster, cluster_name) and RFM segment of some labelled customers (additive over
    parts): ``labelled`` has ``cluster, cluster_name`` and ``column`` (missing = "Not scored")."""
    segment = labelled[column].astype("string").fillna("Not scored")
    counts = pd.crosstab([labelled["cluster"], labelled["cluster_name"]], segment)
    counts.columns.name = None
    return counts


def segment_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`segment_crosstab`'s table from :func:`segment_counts` (of the whole table, or merged over parts)."""
    counts = counts.rename_axis(["cluster", "cluster_name"])
    order = sorted(counts.columns, key=lambda c: (-counts[c].sum(), str(c)))
    shares = counts[order].div(counts.sum(axis=1), axis=0)
    out = shares.reset_index()
    out.insert(2, "customers", counts.sum(axis=1).to_numpy().astype("int64"))
    out.columns.name = None
    return out


def projection(X: pd.DataFrame, clusters: np.ndarray, gamma: float | None, seed: int,
               sample: int = 3000, customers: int | None = None) -> pd.DataFrame:
    """2-D principal-component projection of a seeded sample of customers, for plotting.

    Numeric features enter as they are (standardised); with ``gamma`` each categorical level
    becomes a 0/1 column scaled by √(γ/2), so that squared Euclidean distances in the embedding
    equal the k-prototypes dissimilarity (a mismatch costs γ).

    Parameters
    ----------
    customers : int, optional
        Customers of the whole table when ``X`` (and ``clusters``) are already its projection sample
        (the rows at ``sample_plan(...)["projection"]``, e.g. :meth:`ClusterFit.features_at`); the
        result is then the same as from the whole table.

    Returns
    -------
    DataFrame
        ``pc1, pc2, cluster`` for the sampled rows (index = their labels); attrs
        ``explained_variance`` (share of variance of each component) and ``customers`` (all
        customers of ``X``, of which the rows are a sample when fewer).
    """
    from sklearn.decomposition import PCA

    rows = sample_positions(len(X), sample, seed + 4)
    Xs = X.iloc[rows]
    Xnum, Xcat, _, cat_names = split_mixed(Xs)
    parts = [Xnum]
    if gamma is not None and Xcat.shape[1]:
        dummies = pd.get_dummies(pd.DataFrame(Xcat, columns=cat_names).astype(str), dtype=float)
        parts.append(dummies.to_numpy() * np.sqrt(gamma / 2.0))
    emb = np.hstack(parts)
    n_comp = min(2, emb.shape[1], len(emb))
    pca = PCA(n_components=n_comp, random_state=seed)
    coords = pca.fit_transform(emb)
    if n_comp < 2:
        coords = np.column_stack([coords, np.zeros((len(coords), 2 - n_comp))])
    out = pd.DataFrame({"pc1": coords[:, 0], "pc2": coords[:, 1],
                        "cluster": np.asarray(clusters)[rows]}, index=Xs.index)
    ev = list(pca.explained_variance_ratio_) + [0.0] * (2 - n_comp)
    out.attrs["explained_variance"] = [float(v) for v in ev]
    out.attrs["customers"] = int(len(X) if customers is None else customers)
    return out


# =============================================================================== the fitted segmentation
class SegmentModel(BaseEstimator):
    """Feature builder + fitted clusterer + cluster numbers and names: scores new customers.

    Parameters
    ----------
    builder : segkit.features.FeatureBuilder
        Fitted on the clustered customers.
    estimator : KPrototypes or KMeansNumeric
        Fitted on ``builder.transform`` of them.
    numbers : array
        Cluster number (1 = largest) of each raw estimator label.
    names : dict
        Cluster number → name.

    Examples
    --------
    >>> from segkit.features import FeatureBuilder
    >>> t = pd.DataFrame({"customer_id": list("abcdef"), "frequency": [1, 1, 2, 2, 10, 11.0]})
    >>> fb = FeatureBuilder(numeric=["frequency"], categorical=[], log=[]).fit(t)
    >>> est = KMeansNumeric(n_clusters=2, n_init=1, random_state=0).fit(fb.transform(t))
    >>> model = SegmentModel(fb, est, order_by_size(est.labels_, 2), {1: "Low", 2: "High"})  # 1 = larger
    >>> new = pd.DataFrame({"customer_id": ["x"], "frequency": [12.0]})
    >>> model.predict_names(new).tolist()
    ['High']
    """

    def __init__(self, builder: Any, estimator: Any, numbers: np.ndarray, names: dict):
        self.builder = builder
        self.estimator = estimator
        self.numbers = numbers
        self.names = names

    def _predict_features(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self.estimator)
        return np.asarray(self.numbers)[self.estimator.predict(X)]

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Cluster number of each customer of a customer table (:func:`segkit.features.customer_table`)."""
        return self._predict_features(self.builder.transform(table))

    def predict_names(self, table: pd.DataFrame) -> pd.Series:
        """Cluster name of each customer, indexed like the builder's output (customer_id)."""
        X = self.builder.transform(table)
        return pd.Series(_name_array(self.names, self._predict_features(X)), index=X.index, dtype="string",
                         name="cluster_name")

    # ------------------------------------------------------------------ saving (no pickle)
    def to_dict(self) -> dict:
        """Everything :meth:`predict` needs as plain JSON-able values (see :mod:`segkit.core.modelio`):
        the fitted builder's and estimator's ``to_dict``, cluster numbers and names.

        Examples
        --------
        >>> import json
        >>> from segkit.features import FeatureBuilder
        >>> t = pd.DataFrame({"customer_id": list("abcdef"), "frequency": [1, 1, 2, 2, 10, 11.0]})
        >>> fb = FeatureBuilder(numeric=["frequency"], categorical=[], log=[]).fit(t)
        >>> est = KMeansNumeric(n_clusters=2, n_init=1, random_state=0).fit(fb.transform(t))
        >>> model = SegmentModel(fb, est, order_by_size(est.labels_, 2), {1: "Low", 2: "High"})
        >>> again = SegmentModel.from_dict(json.loads(json.dumps(model.to_dict())))
        >>> again.predict_names(t).tolist() == model.predict_names(t).tolist()
        True
        """

        params = {"builder": self.builder.to_dict(), "estimator": self.estimator.to_dict(),
                  "numbers": [int(v) for v in np.asarray(self.numbers)],
                  "names": pairs({int(c): str(n) for c, n in self.names.items()})}
        return model_dict("SegmentModel", params, {})

    @classmethod
    def from_dict(cls, data: Any) -> "SegmentModel":
        """A fitted segmentation from :meth:`to_dict`'s output (e.g. ``cluster_model.json``).

        Raises
        ------
        DataError
            Not a saved SegmentModel, or parts missing or inconsistent; the message says what.
        """

        params, _ = model_parts(data, "SegmentModel", params=("builder", "estimator", "numbers", "names"))
        estimators = {"KPrototypes": KPrototypes, "KMeansNumeric": KMeansNumeric}
        kind = params["estimator"].get("kind") if isinstance(params["estimator"], dict) else None
        if kind not in estimators:
            raise DataError(f"Saved SegmentModel: unknown estimator {kind!r}; expected "
                            f"{' or '.join(estimators)}. Fit the model again.")
        try:
            builder = FeatureBuilder.from_dict(params["builder"])
            estimator = estimators[kind].from_dict(params["estimator"])
            numbers = np.asarray(params["numbers"], dtype=np.int64)
            names = {int(c): str(n) for c, n in from_pairs(params["names"], "names").items()}
        except DataError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise DataError(f"Saved SegmentModel: a part has the wrong form ({type(exc).__name__}: {exc}). "
                            "Fit the model again.") from None
        used = set(builder.numeric_features_) | set(builder.categorical_features_)
        unknown = [c for c in (*getattr(estimator, "numeric_features_", []),
                               *getattr(estimator, "categorical_features_", [])) if c not in used]
        if numbers.shape != (int(estimator.n_clusters),) or not set(numbers.tolist()) <= set(names) or unknown:
            raise DataError("Saved SegmentModel: the cluster numbers, names and estimator features do not "
                            "match the builder (one number per cluster, a name per number). Fit the model again.")
        return cls(builder, estimator, numbers, names)


@dataclass
class ClusterResult:
    """Everything notebook 03 shows (built by :func:`cluster_customers`)."""

    # On engine.kind spark, table, features and assignments hold the seeded samples' customers only (the
    # rows at plan_positions); what is shown about every customer comes from tally (info["customers"]).
    table: pd.DataFrame             # customer table (interpretable values), one row per clustered customer
    features: pd.DataFrame          # model features (standardised numeric + categorical)
    builder: Any                    # fitted FeatureBuilder
    model: SegmentModel
    method: str                     # kmeans | kprototypes
    feature_set: str
    k: int
    reason: str
    selection: pd.DataFrame
    stability: Stability
    assignments: pd.DataFrame       # customer_id, cluster, cluster_name
    profiles: pd.DataFrame          # means per cluster (+ All customers)
    lifts: pd.DataFrame
    categorical_profiles: pd.DataFrame
    names: dict
    projection: pd.DataFrame
    settings: ClusterSettings
    seed: int
    as_of: str | None = None
    gamma: float | None = None
    rfm_crosstab: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    selection_models: dict = field(default_factory=dict)  # k -> model fitted when comparing k
    tally: ClusterTally | None = None  # the clusters over every customer (profiles, heatmap means, RFM counts)
    # engine.kind spark: (k, feature_set) -> profiles of the explorer's quick look over every customer, computed
    # while the customer table was on the executors (None on one machine: the explorer clusters result.table)
    views: dict | None = None

    @property
    def missing_report(self) -> pd.DataFrame:
        return self.builder.missing_report_

    @property
    def silhouette(self) -> float:
        row = self.selection.loc[self.selection["k"] == self.k, "silhouette"]
        return float(row.iloc[0]) if len(row) else float("nan")


def _name_array(names: dict, clusters: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Cluster name of each cluster number, as a string array (one lookup per cluster, not per row).

    Examples
    --------
    >>> _name_array({1: "Big", 2: "Small"}, np.array([2, 1, 2])).tolist()
    ['Small', 'Big', 'Small']
    """
    keys, inverse = np.unique(np.asarray(clusters, dtype=np.int64), return_inverse=True)
    labels = np.array([names[int(c)] for c in keys], dtype=object)
    return pd.array(labels[inverse.reshape(-1)] if len(keys) else labels, dtype="string")


def numeric_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]


#: The seeded samples of notebook 03's clustering, by name: (settings key of the size, seed offset).
SAMPLES: dict[str, tuple[str, int]] = {"selection": ("selection.sample_size", 0), "fit": ("fit_sample", 0),
                                       "stability": ("stability.max_customers", 2),
                                       "projection": ("projection_sample", 4)}


def sample_plan(customers: int, settings: ClusterSettings | None = None, seed: int = 0, *,
                fit_sample: int | None = None, run_selection: bool = True) -> dict[str, np.ndarray]:
    """Positions of every seeded sample of the clustering, in the customer table's ``customer_id`` order.

    Each is :func:`segkit.data.bounded.sample_positions` of (``customers``, its size, ``seed`` + its
    offset) — :data:`SAMPLES`: ``selection`` (the comparison of k, :func:`select_k`), ``fit`` (the final
    model, ``fit_sample`` or ``clustering.fit_sample``; every customer when they are no more, and when
    the size is None: then the plan is as large as the table, and on Spark its rows are the whole table),
    ``stability`` (:func:`stability`) and ``projection`` (:func:`projection`). A driver that knows only
    the number of customers computes them; :func:`fit_cluster_model` needs the rows of
    :func:`plan_positions` (at most the sum of the sizes), e.g. picked on Spark by
    :func:`segkit.data.spark_sample.rows_at_positions`.

    Examples
    --------
    >>> s = ClusterSettings.from_config({"fit_sample": 1000, "selection": {"sample_size": 5}})
    >>> plan = sample_plan(2000, s, seed=0)
    >>> {name: len(rows) for name, rows in plan.items()}
    {'selection': 5, 'fit': 1000, 'stability': 2000, 'projection': 2000}
    >>> sample_plan(2000, s, 0, run_selection=False)["selection"].tolist()
    []
    """
    s = settings or ClusterSettings.from_config()
    size = {"selection": s.selection.get("sample_size"),
            "fit": fit_sample if fit_sample is not None else s.raw.get("fit_sample"),
            "stability": s.stability.get("max_customers"), "projection": int(s.projection_sample)}
    plan = {name: sample_positions(customers, size[name], seed + offset) for name, (_, offset) in SAMPLES.items()}
    if not run_selection:
        plan["selection"] = np.arange(0)
    return plan


def plan_positions(plan: dict[str, np.ndarray]) -> np.ndarray:
    """Every position of a :func:`sample_plan`, ascending and once (the rows to pick)."""
    parts = [np.asarray(p, dtype=np.int64) for p in plan.values()]
    return np.unique(np.concatenate(parts)) if parts else np.arange(0)


def model_features(builder: FeatureBuilder, table: pd.DataFrame, method: str) -> pd.DataFrame:
    """The features ``method`` clusters: ``builder.transform(table)``, numeric columns only for k-means."""
    X = builder.transform(table)
    return X[numeric_columns(X)] if method == "kmeans" else X


@dataclass
class ClusterFit:
    """The fitted part of a clustering (:func:`fit_cluster_model`): what the model saw, chose and learnt."""

    builder: FeatureBuilder         # fitted on the whole table's summaries
    estimator: Any                  # KPrototypes | KMeansNumeric, fitted on the rows at fit_positions
    method: str                     # kmeans | kprototypes
    feature_set: str
    k: int
    reason: str
    selection: pd.DataFrame         # the comparison of k (empty when skipped)
    selection_models: dict          # k -> model fitted when comparing k
    fit_positions: np.ndarray       # positions of the customers the final model was fitted on
    customers: int                  # customers of the whole table
    sample: CustomerSample          # the rows it was given
    features: pd.DataFrame          # model features of the sample's rows (model_features)

    def features_at(self, positions: Sequence[int] | np.ndarray) -> pd.DataFrame:
        """Model features of the customers at ``positions`` (they must be in the sample)."""
        return self.features.iloc[self.sample.locate(positions)]


def fit_cluster_model(sample: CustomerSample, summaries: TableSummaries, settings: ClusterSettings | None = None,
                      seed: int = 0, *, feature_set: str | None = None, method: str | None = None,
                      k: int | None = None, run_selection: bool = True, n_init: int | None = None,
                      fit_sample: int | None = None, estimator: Any = None,
                      builder: FeatureBuilder | None = None) -> ClusterFit:
    """Fit notebook 03's clustering from bounded inputs: a seeded sample and whole-table summaries.

    The same fit as :func:`cluster_customers` (which calls it with the pandas table's sample and
    :class:`segkit.data.bounded.FrameSummaries`): the :class:`segkit.features.FeatureBuilder` is fitted
    from ``summaries`` (:meth:`~segkit.features.FeatureBuilder.fit_summaries`: counts, medians, means and
    standard deviations, category counts — all customers), the method is resolved, k is compared on the
    ``selection`` sample (:func:`compare_k`) and chosen (:func:`choose_k`), and the final model is fitted
    on the ``fit`` sample of :func:`sample_plan` — every customer when they are no more than
    ``fit_sample``: then ``sample`` must hold the whole table (at most ``fit_sample`` rows). With
    ``fit_sample`` None (``clustering.fit_sample: null``) the ``fit`` sample is the whole table, however
    large: on Spark that collects every customer, so a Spark run sets ``fit_sample``.

    What this does not do, because it needs the fitted model applied to every customer: the cluster
    numbers (1 = the largest cluster, :func:`order_by_size` of every customer's label), the profiles and
    names, and the assignments. The stability refits and the projection read only their samples' rows
    (:meth:`ClusterFit.features_at` of ``plan["stability"]``/``plan["projection"]``) with the cluster
    numbers of those customers.

    Parameters
    ----------
    sample : segkit.data.bounded.CustomerSample
        The customer table's rows at (at least) :func:`plan_positions` of ``sample_plan(sample.customers,
        settings, seed, fit_sample=fit_sample, run_selection=run_selection)``.
    summaries : segkit.data.bounded.TableSummaries
        Summaries of the whole table (:class:`~segkit.data.bounded.FrameSummaries`, or
        :class:`segkit.data.spark_sample.SparkSummaries` on Spark).
    settings, seed, feature_set, method, k, run_selection, n_init, fit_sample, estimator
        As in :func:`cluster_customers`.
    builder : FeatureBuilder, optional
        The builder of ``feature_set`` already fitted from these ``summaries`` (e.g. another fit's
        :attr:`ClusterFit.builder`): used as it is, without asking ``summaries`` again (on Spark, each ask is a job).

    Returns
    -------
    ClusterFit

    Raises
    ------
    ModelFitError
        Too few customers for the clusters asked for.
    DataError
        ``sample`` lacks a row the fit needs.

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": [f"c{i:02}" for i in range(40)],
    ...                   "recency_days": np.r_[np.arange(1, 21), np.arange(300, 320)],
    ...                   "frequency": np.repeat([8, 1], 20), "monetary_total": np.repeat([800.0, 20.0], 20)})
    >>> s = ClusterSettings.from_config({"k": 2, "feature_set": "rfm"})
    >>> plan = sample_plan(len(t), s, seed=0, run_selection=False)
    >>> fit = fit_cluster_model(CustomerSample.of(t, plan_positions(plan)), FrameSummaries(t), s, 0,
    ...                         run_selection=False)
    >>> fit.method, fit.k, len(fit.estimator.labels_)
    ('kmeans', 2, 40)
    """
    s = settings or ClusterSettings.from_config()
    fs = feature_set or s.feature_set
    fixed = k if k is not None else s.k
    n = sample.customers  # checked before the features: one customer has only "constant" features
    if run_selection and fixed is None and not [kk for kk in s.k_values if kk < n]:
        fix = (f"Lower clustering.k_min (now {s.k_min}) to at most {n - 1}, or add data." if n > 2 else
               "Two clusters are the fewest, so clustering needs at least 3 buying customers: add data (a longer "
               "period or more customers), or leave 03_clustering out (segkit run --only with the other "
               "notebooks: none of them needs its clusters).")
        raise ModelFitError(f"Only {n} customer{'' if n == 1 else 's'} to cluster; comparing k = {s.k_min}–{s.k_max} "
                            f"needs more customers than clusters (at least {s.k_min + 1}). {fix}")
    builder = builder if builder is not None else s.builder(fs).fit_summaries(summaries)
    X = builder.transform(sample.rows)
    method_used = resolve_method(method or s.method, X)
    if method_used == "kmeans" and not numeric_columns(X):
        raise ConfigError(f"Feature set {fs!r} has no numeric feature in this data, so k-means cannot run; "
                          "use method: kprototypes (or auto).")
    if method_used == "kmeans":
        X = X[numeric_columns(X)]
    plan = sample_plan(n, s, seed, fit_sample=fit_sample, run_selection=run_selection)
    ks = [kk for kk in s.k_values if kk < n] if run_selection else []
    selection_models: dict = {}
    selection = compare_k(X.iloc[sample.locate(plan["selection"])], ks, method_used, seed, s,
                          models=selection_models, customers=n) if ks else pd.DataFrame(
        columns=["k", "cost", "silhouette", "calinski_harabasz", "davies_bouldin", "smallest_share"])
    if fixed is not None:
        k_final, reason = int(fixed), f"k = {fixed} fixed by the configuration (clustering.k or the k parameter)."
    elif ks:
        sel = s.selection
        k_final, reason = choose_k(selection, float(sel["silhouette_tolerance"]), float(sel["min_cluster_share"]))
    else:
        k_final, reason = int(s.k_min), f"k = {s.k_min} (k_min; the comparison of k was skipped)."
    if k_final >= n:
        raise ModelFitError(f"Cannot form {k_final} clusters from {n} customers; lower k.")
    rows = plan["fit"]
    if estimator is None:
        estimator = make_model(method_used, k_final, seed, s, n_init=n_init).fit(X.iloc[sample.locate(rows)])
    return ClusterFit(builder=builder, estimator=estimator, method=method_used, feature_set=fs, k=k_final,
                      reason=reason, selection=selection, selection_models=selection_models, fit_positions=rows,
                      customers=n, sample=sample, features=X)


def cluster_customers(table: pd.DataFrame, settings: ClusterSettings | None = None, seed: int = 0,
                      *, feature_set: str | None = None, method: str | None = None,
                      k: int | None = None, run_selection: bool = True,
                      run_stability: bool = True, n_init: int | None = None,
                      run_projection: bool = True, fit_sample: int | None = None,
                      estimator: Any = None) -> ClusterResult:
    """Cluster a customer table: features, choice of k, final fit, stability, profiles, names.

    The fit is :func:`fit_cluster_model` on the table's rows at :func:`plan_positions` of
    :func:`sample_plan` and the table's :class:`~segkit.data.bounded.FrameSummaries` (the same code
    fits from Spark's bounded inputs); then every customer is assigned and profiled here.

    Parameters
    ----------
    table : DataFrame
        :func:`segkit.features.customer_table` output (one row per buying customer).
    settings : ClusterSettings, optional
        The ``clustering`` config (defaults when None).
    seed : int
        Seed of every random choice (samples, initialisations).
    feature_set, method, k : optional
        Override the settings (``k`` fixes the number of clusters).
    run_selection, run_stability : bool
        Skip the comparison of k (then ``k`` or ``k_min`` is used) or the stability refits
        (faster; used by the explorer widget).
    n_init : int, optional
        Restarts of the final fit (default ``clustering.n_init``).
    run_projection : bool
        Compute the 2-D projection for the map plot (False: ``projection`` is an empty
        ``pc1, pc2, cluster`` frame; used by the explorer, which does not show it).
    fit_sample : int, optional
        Fit the final model on a seeded sample of this many customers — the sample rule of the
        comparison of k (:func:`segkit.data.bounded.sample_positions` with ``seed``) — and assign every
        customer with the fitted model's ``predict``. None = ``clustering.fit_sample`` of the
        settings (null there: all customers). A table no larger than it is fitted on all
        customers (the labels are the fit's own). Features, profiles and names always use every
        customer; ``info["fitted_on"]`` says how many customers the fit saw.
    estimator : fitted model, optional
        Use this model instead of fitting one: it must have been fitted on the customers
        ``fit_sample`` picks, with ``k`` clusters (the explorer passes the model the comparison
        of k fitted, :attr:`ClusterResult.selection_models`).

    Returns
    -------
    ClusterResult

    Raises
    ------
    ModelFitError
        Too few customers for the requested number of clusters.

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": [f"c{i}" for i in range(40)],
    ...                   "recency_days": np.r_[np.arange(1, 21), np.arange(300, 320)],
    ...                   "frequency": np.repeat([8, 1], 20), "monetary_total": np.repeat([800.0, 20.0], 20)})
    >>> quick = cluster_customers(t, seed=0, feature_set="rfm", k=2, run_selection=False,
    ...                           run_stability=False, run_projection=False, fit_sample=25)
    >>> len(quick.model.estimator.labels_), quick.assignments["cluster"].value_counts().tolist()
    (25, [20, 20])
    >>> quick.projection.empty
    True
    """
    s = settings or ClusterSettings.from_config()
    n = len(table)
    plan = sample_plan(n, s, seed, fit_sample=fit_sample, run_selection=run_selection)
    fit = fit_cluster_model(CustomerSample.of(table, plan_positions(plan)), FrameSummaries(table), s, seed,
                            feature_set=feature_set, method=method, k=k, run_selection=run_selection,
                            n_init=n_init, fit_sample=fit_sample, estimator=estimator)
    builder, estimator, method_used, k_final = fit.builder, fit.estimator, fit.method, fit.k
    fs, reason, selection, selection_models = fit.feature_set, fit.reason, fit.selection, fit.selection_models
    X = model_features(builder, table, method_used)
    rows = fit.fit_positions
    # a quick look fits on the sample of the comparison of k and assigns everyone
    raw = estimator.predict(X) if len(rows) < n else estimator.labels_
    numbers = order_by_size(raw, k_final)
    clusters = numbers[raw]
    values = builder.imputed(table)
    revenue = table["monetary_total"].to_numpy() if "monetary_total" in table.columns else None
    numeric = numeric_columns(X)
    observed = table[[c for c in numeric if c in table.columns]].notna().set_axis(X.index)
    tally = cluster_tally(values, clusters, builder.numeric_features_, builder.categorical_features_, revenue,
                          features=X[numeric], observed=observed)
    scores = naming_scores(X[numeric], clusters, observed)
    ids = (table["customer_id"].astype("string").to_numpy() if "customer_id" in table.columns
           else np.asarray(X.index))
    stab = (stability(X, k_final, method_used, seed, clusters, s) if run_stability
            else Stability(np.nan, np.nan, np.nan, 0, 0, float(s.stability["threshold"]),
                           pd.Series(dtype=float), float(s.stability.get("cluster_threshold", 0.6))))
    gamma = float(estimator.gamma_) if method_used == "kprototypes" else None
    proj = (projection(X, clusters, gamma, seed, int(s.projection_sample)) if run_projection
            else pd.DataFrame({"pc1": pd.Series(dtype=float), "pc2": pd.Series(dtype=float),
                               "cluster": pd.Series(dtype="int64")}))
    return cluster_result(fit, s, seed, numbers, tally, scores, table=table, features=X, ids=ids, clusters=clusters,
                          stab=stab if run_stability else None, proj=proj)


def cluster_result(fit: ClusterFit, settings: ClusterSettings, seed: int, numbers: np.ndarray, tally: ClusterTally,
                   scores: pd.DataFrame, *, table: pd.DataFrame, features: pd.DataFrame, ids: np.ndarray,
                   clusters: np.ndarray, stab: Stability | None, proj: pd.DataFrame) -> ClusterResult:
    """The :class:`ClusterResult` of a fit and the aggregates of its clusters over every customer.

    What :func:`cluster_customers` ends with, and what a Spark run builds from bounded inputs: ``tally``
    merged over the partitions, ``scores`` from exact medians, and ``table``/``features``/``ids``/
    ``clusters`` of the customers the driver holds (all of them on one machine; the seeded sample on
    Spark, ``info["customers"]`` saying how many there are).

    Parameters
    ----------
    fit : ClusterFit
    settings, seed
        The clustering's settings and seed.
    numbers : array
        Cluster number (1 = largest) of each raw label (:func:`order_by_counts`).
    tally : ClusterTally
        The clusters over every customer.
    scores : DataFrame
        :func:`naming_scores` (or :func:`naming_scores_from`) over every customer.
    table, features, ids, clusters
        Rows held (interpretable values, model features, ids, cluster numbers).
    stab : Stability or None
        The stability refits (None: skipped).
    proj : DataFrame
        :func:`projection`'s table (empty when skipped).
    """
    s = settings
    builder, estimator, k_final = fit.builder, fit.estimator, fit.k
    profiles, lifts, modes = profiles_of(tally)
    names = name_clusters(scores, modes, s.naming, builder.original_values_)
    for frame in (profiles, lifts):
        frame.insert(1, "cluster_name", pd.array([names.get(int(c), c) if c.isdigit() else c
                                                  for c in frame["cluster"]], dtype="string"))
    if len(modes):
        modes.insert(1, "cluster_name", pd.array([names[c] for c in modes["cluster"]], dtype="string"))
    assignments = pd.DataFrame({"customer_id": pd.array(ids, dtype="string"),
                                "cluster": np.asarray(clusters).astype("int64"),
                                "cluster_name": _name_array(names, clusters)})
    run_stability = stab is not None
    if stab is None:
        stab = Stability(np.nan, np.nan, np.nan, 0, 0, float(s.stability["threshold"]),
                         pd.Series(dtype=float), float(s.stability.get("cluster_threshold", 0.6)))
    warnings_: list[str] = []
    if run_stability and not stab.stable:
        warnings_.append(f"The clusters are unstable: refits on subsamples agree with a mean adjusted Rand "
                         f"index of {stab.mean_ari:.2f} (threshold {stab.threshold:.2f}). Treat the "
                         "segments as exploratory, try another k or feature set.")
    weak = [c for c in stab.unstable_clusters] if run_stability else []
    if weak:
        warnings_.append("Cluster(s) " + ", ".join(f"{c} ({names[int(c)]})" for c in weak)
                         + f" do not reproduce well across subsamples (Jaccard < {stab.cluster_threshold:g}).")
    small = profiles.loc[profiles["cluster"] != "All customers"]
    small = small[small["share"] < float(s.selection["min_cluster_share"])]
    if len(small):
        warnings_.append(f"{len(small)} cluster(s) hold under {float(s.selection['min_cluster_share']):.0%} "
                         "of customers: " + ", ".join(small["cluster_name"].astype(str)) + ".")
    if builder.skipped_features_:
        warnings_.append("Features not used: " + "; ".join(f"{f} ({why})" for f, why in builder.skipped_features_.items())
                         + ".")
    model = SegmentModel(builder, estimator, numbers, names)
    gamma = float(estimator.gamma_) if fit.method == "kprototypes" else None
    n = tally.customers
    return ClusterResult(table=table, features=features, builder=builder, model=model, method=fit.method,
                         feature_set=fit.feature_set, k=k_final, reason=fit.reason, selection=fit.selection,
                         stability=stab, assignments=assignments, profiles=profiles, lifts=lifts,
                         categorical_profiles=modes, names=names, projection=proj, settings=s, seed=seed,
                         as_of=table.attrs.get("as_of"), gamma=gamma,
                         info={"customers": n, "fitted_on": int(min(len(fit.fit_positions), n)),
                               "numeric_features": list(builder.numeric_features_),
                               "categorical_features": list(builder.categorical_features_)},
                         warnings=warnings_, selection_models=fit.selection_models, tally=tally)


# =============================================================================== notebook 03
def clusters_frame(result: ClusterResult) -> pd.DataFrame:
    """The ``clusters.parquet`` artifact: ``customer_id, cluster, cluster_name`` and the features
    used, on their original scale with missing values filled as the model saw them."""
    return cluster_rows(result.assignments, result.builder.imputed(result.table))


def cluster_rows(assignments: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``clusters.parquet``: ``customer_id, cluster, cluster_name`` and the filled feature values of
    the same customers (all of them, or one Spark partition labelled by
    :func:`segkit.steps.spark_scoring.cluster_labels`)."""
    return pd.concat([assignments.reset_index(drop=True), values.reset_index(drop=True)], axis=1)


def cluster_model_dict(result: ClusterResult) -> dict:
    """The ``cluster_model.json`` artifact: the fitted segmentation (:meth:`SegmentModel.to_dict`,
    no pickle) and, under ``run``, what it was fitted on (as_of, feature set, method, k, seed,
    customers). Read it back with :meth:`SegmentModel.from_dict`."""
    run = {"as_of": result.as_of, "feature_set": result.feature_set, "method": result.method,
           "k": int(result.k), "seed": int(result.seed), "customers": int(result.info["customers"])}
    return {**result.model.to_dict(), "run": run}


def predict_clusters_frame(model: SegmentModel, clusters: pd.DataFrame) -> pd.Series:
    """Cluster names ``model`` gives the customers of a ``clusters.parquet`` frame, from the
    feature values stored there (filled as the model saw them, so the features are the fit's own).

    Used to check that a saved model belongs to a run's clusters: for the model notebook 03
    fitted, every name matches the frame's ``cluster_name``.

    Raises
    ------
    DataError
        The frame lacks a feature column the model uses.

    Examples
    --------
    >>> t = pd.DataFrame({"customer_id": list("abcdef"), "frequency": [1, 1, 2, 2, 10, 11.0]})
    >>> result = cluster_customers(t, seed=0, feature_set="rfm", k=2, run_selection=False, run_stability=False)
    >>> predict_clusters_frame(result.model, clusters_frame(result)).tolist() == result.assignments["cluster_name"].tolist()
    True
    """
    frame = clusters.copy(deep=False)
    fills = [v.split(":", 1)[1] for v in model.builder.impute_values_.values() if isinstance(v, str)]
    for col in fills:  # a column only used to fill gaps: the stored values have none left
        if col not in frame.columns:
            frame[col] = np.nan
    return model.predict_names(frame)


