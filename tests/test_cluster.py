"""Tests of segkit.kprototypes (against kmodes) and segkit.cluster: k-means, model selection, stability,
profiles and names, the producer, the summary and the explorer; and segkit.bench.cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from kmodes.kprototypes import KPrototypes as KModesKPrototypes
from kmodes.util.dissim import matching_dissim
from kmodes.util.init_methods import init_cao, init_huang
from pandas.testing import assert_frame_equal
from sklearn.metrics import adjusted_rand_score
from sklearn.utils import check_random_state

from segkit.cluster import (
    ClusterSettings,
    KMeansNumeric,
    choose_k,
    cluster_customers,
    elbow_k,
    gower_distances,
    jaccard_best_match,
    name_clusters,
    naming_scores,
    numeric_columns,
    order_by_size,
    profile_clusters,
    segment_crosstab,
    select_k,
    stability,
)
from segkit.core.config import project_root
from segkit.core.errors import ConfigError, DataError, ModelFitError
from segkit.kprototypes import (
    KPrototypes,
    _encode,
    _MixedData,
    _single_moves,
    init_centroids,
    kprototypes_cost,
    split_mixed,
)
from segkit.steps.cluster import build_cluster_artifacts, cluster_view, lift_caption, summarize, view_choices


def planted(n: int, seed: int, k: int = 5) -> np.ndarray:
    """Object array: 3 numeric (group centre + noise) and 3 categorical (own level 60%) columns."""
    rs = np.random.RandomState(seed)
    g = rs.randint(0, k, n)
    X = np.empty((n, 6), dtype=object)
    X[:, :3] = (rs.randn(k, 3) * 2)[g] + rs.randn(n, 3)
    for j in range(3):
        X[:, 3 + j] = np.where(rs.rand(n) < 0.6, g, rs.randint(0, k, n)).astype(str)
    return X


def encoded(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Xnum, Xcat_raw, _, _ = split_mixed(X, [3, 4, 5])
    return Xnum, _encode(Xcat_raw)[0]


# ------------------------------------------------------------------ kmodes is the reference
@pytest.mark.parametrize("init", ["Huang", "Cao"])
def test_initial_centroids_are_the_ones_kmodes_draws(init):
    X = planted(400, seed=3)
    Xnum, Xcat = encoded(X)
    rs = check_random_state(11)
    if init == "Huang":
        cat = init_huang(Xcat, 5, matching_dissim, rs)
    else:
        cat = init_cao(Xcat, 5, matching_dissim)
    num = Xnum.mean(axis=0) + rs.randn(5, 3) * Xnum.std(axis=0)
    ours_num, ours_cat, _ = init_centroids(Xnum, Xcat, 5, init, 0.5, 11)
    np.testing.assert_array_equal(ours_cat, cat.astype(np.int64))
    np.testing.assert_allclose(ours_num, num, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_function_equals_kmodes_cost_for_its_own_solution(seed):
    X = planted(500, seed)
    km = KModesKPrototypes(n_clusters=4, init="Cao", n_init=1, random_state=seed).fit(X, categorical=[3, 4, 5])
    Xnum, Xcat = encoded(X)
    cnum, ccat = km._enc_cluster_centroids
    ours = kprototypes_cost(Xnum, Xcat, cnum, np.asarray(ccat, dtype=np.int64), km.gamma)
    assert ours == pytest.approx(km.cost_, rel=1e-12)
    with_labels = kprototypes_cost(Xnum, Xcat, cnum, np.asarray(ccat, dtype=np.int64), km.gamma,
                                   labels=km.labels_.astype(np.int64))
    assert with_labels == pytest.approx(km.cost_, rel=1e-12)


@pytest.mark.parametrize("init", ["Huang", "Cao"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_converged_cost_is_no_worse_than_kmodes_from_the_same_init(init, seed):
    X = planted(600, seed)
    ref = KModesKPrototypes(n_clusters=5, init=init, n_init=1, random_state=seed).fit(X, categorical=[3, 4, 5])
    ours = KPrototypes(n_clusters=5, init=init, n_init=1, random_state=seed).fit(X, categorical=[3, 4, 5])
    assert ours.gamma_ == pytest.approx(ref.gamma, rel=1e-12)
    assert ours.cost_ <= ref.cost_ * (1 + 1e-12)


def test_reported_cost_is_the_objective_of_the_reported_solution():
    X = planted(300, seed=5)
    km = KPrototypes(n_clusters=3, n_init=2, random_state=0).fit(X, categorical=[3, 4, 5])
    Xnum, Xcat = encoded(X)
    assert km.cost_ == pytest.approx(kprototypes_cost(Xnum, Xcat, km.centroids_num_, km.centroids_cat_,
                                                      km.gamma_, labels=km.labels_), rel=1e-12)
    # every point sits with its nearest centroid
    assert km.cost_ == pytest.approx(kprototypes_cost(Xnum, Xcat, km.centroids_num_, km.centroids_cat_,
                                                      km.gamma_), rel=1e-12)


def test_single_point_move_changes_are_exact():
    rs = np.random.RandomState(1)
    n, k, gamma = 60, 4, 0.7
    Xnum, Xcat = rs.rand(n, 2), rs.randint(0, 3, (n, 2)).astype(np.int32)
    data = _MixedData(Xnum, Xcat, [3, 3], gamma)
    labels = rs.randint(0, k, n)

    def partition_cost(lab):
        cn, cc = data.update(lab, k, np.zeros(n))
        return kprototypes_cost(Xnum, Xcat, cn, cc, gamma, labels=lab)

    cnum, _ = data.update(labels, k, np.zeros(n))
    target, change = _single_moves(data, cnum, labels)
    base = partition_cost(labels)
    checked = 0
    for i in range(n):
        moved = labels.copy()
        moved[i] = target[i]
        if np.bincount(moved, minlength=k).min():
            assert partition_cost(moved) - base == pytest.approx(change[i], abs=1e-9)
            checked += 1
    assert checked > 50


def test_results_do_not_depend_on_the_chunk_size():
    X = planted(700, seed=2)
    a = KPrototypes(n_clusters=4, n_init=2, random_state=3).fit(X, categorical=[3, 4, 5])
    b = KPrototypes(n_clusters=4, n_init=2, random_state=3, chunk_size=97).fit(X, categorical=[3, 4, 5])
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.cost_ == pytest.approx(b.cost_, rel=1e-12)


def test_same_seed_gives_the_same_clustering_and_another_seed_may_not():
    X = planted(400, seed=4)
    runs = [KPrototypes(n_clusters=5, init="Huang", n_init=1, random_state=s).fit(X, categorical=[3, 4, 5])
            for s in (7, 7)]
    np.testing.assert_array_equal(runs[0].labels_, runs[1].labels_)
    assert runs[0].cost_ == runs[1].cost_


def test_predict_reproduces_the_fit_labels_and_handles_unseen_levels():
    df = pd.DataFrame(planted(300, seed=6), columns=["x0", "x1", "x2", "c0", "c1", "c2"])
    df[["x0", "x1", "x2"]] = df[["x0", "x1", "x2"]].astype(float)
    km = KPrototypes(n_clusters=4, n_init=1, random_state=0).fit(df)
    assert km.categorical_features_ == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(km.predict(df), km.labels_)
    new = df.iloc[:3].copy()
    new["c0"] = "never-seen"
    labels = km.predict(new)
    dissim = km.transform(new)
    np.testing.assert_array_equal(labels, dissim.argmin(axis=1))
    centroids = km.cluster_centroids_
    assert centroids.shape == (4, 6) and set(centroids[:, 3]) <= set(df["c0"])


def test_predict_names_missing_values_and_missing_columns():
    df = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1], "c": list("aabb")})
    km = KPrototypes(n_clusters=2, n_init=1, random_state=0).fit(df)
    with pytest.raises(DataError, match=r"'x'.*row 3"):
        km.predict(pd.DataFrame({"x": [0.0, np.nan], "c": ["a", "b"]}))
    with pytest.raises(DataError, match=r"\['c'\]"):
        km.predict(pd.DataFrame({"x": [0.0]}))


def test_too_many_clusters_for_the_data_is_a_clear_error():
    df = pd.DataFrame({"x": [1.0, 1.0, 1.0, 2.0], "c": ["a", "a", "a", "b"]})
    with pytest.raises(ModelFitError, match="2 distinct"):
        KPrototypes(n_clusters=3, n_init=1, random_state=0).fit(df)
    with pytest.raises(ModelFitError, match="5 clusters from 4"):
        KPrototypes(n_clusters=5, n_init=1, random_state=0).fit(df)
    with pytest.raises(ConfigError, match="init"):
        KPrototypes(n_clusters=2, init="kmeans++").fit(df)


def test_an_emptied_cluster_takes_the_worst_fitting_point():
    Xnum = np.array([[0.0], [0.1], [0.2], [9.0]])
    data = _MixedData(Xnum, np.zeros((4, 0), dtype=np.int32), [], 0.5)
    cnum, _ = data.update(np.array([0, 0, 0, 0]), 2, dist=np.array([0.0, 0.1, 0.2, 9.0]))
    np.testing.assert_allclose(cnum, [[0.1], [9.0]])


def test_kmeans_adapter_equals_scikit_learn():
    from sklearn.cluster import KMeans

    df = pd.DataFrame(planted(300, seed=8)[:, :3].astype(float), columns=["a", "b", "c"]).assign(cat="x")
    ours = KMeansNumeric(n_clusters=4, n_init=3, random_state=2).fit(df)
    ref = KMeans(n_clusters=4, n_init=3, random_state=2).fit(df[["a", "b", "c"]].to_numpy())
    assert ours.numeric_features_ == ["a", "b", "c"]
    assert ours.cost_ == pytest.approx(ref.inertia_, rel=1e-12)
    np.testing.assert_array_equal(ours.predict(df), ref.labels_)


# ------------------------------------------------------------------ choosing k, stability
def test_gower_distance_matches_the_definition():
    X = pd.DataFrame({"x": [0.0, 2.0, 4.0], "y": [1.0, 1.0, 3.0], "c": ["a", "b", "a"]})
    D = gower_distances(X)
    # rows 0 and 2: |0-4|/4 + |1-3|/2 + 0 over 3 columns
    assert D[0, 2] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert D[0, 1] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    np.testing.assert_allclose(D, D.T)
    assert np.all(np.diag(D) == 0)


def test_elbow_is_where_the_cost_curve_bends():
    assert elbow_k([2, 3, 4, 5, 6, 7], [1000, 500, 200, 180, 170, 165]) == 4
    assert elbow_k([2, 3], [10, 5]) == 2


def test_choose_k_prefers_the_elbow_among_near_best_silhouettes():
    sel = pd.DataFrame({"k": [2, 3, 4, 5, 6], "cost": [1000.0, 500.0, 200.0, 180.0, 170.0],
                        "silhouette": [0.30, 0.50, 0.49, 0.51, 0.35], "smallest_share": [0.4, 0.3, 0.2, 0.1, 0.1]})
    k, reason = choose_k(sel, tolerance=0.02)
    assert k == 4
    assert "within 0.02 of the best (0.510 at k = 5)" in reason and "elbow" in reason
    k, reason = choose_k(sel, tolerance=0.0)
    assert k == 5 and "the best of the k tried" in reason


def test_choose_k_leaves_out_solutions_with_a_tiny_cluster():
    sel = pd.DataFrame({"k": [2, 3, 4], "cost": [100.0, 40.0, 30.0], "silhouette": [0.3, 0.5, 0.6],
                        "smallest_share": [0.4, 0.2, 0.005]})
    k, reason = choose_k(sel, tolerance=0.01, min_cluster_share=0.02)
    assert k == 3 and "Not considered: k = 4" in reason


def blobs(n_per: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [6, 0], [0, 6]])
    num = np.vstack([c + rng.normal(0, 0.7, (n_per, 2)) for c in centres])
    cat = np.repeat(["north", "east", "south"], n_per)
    return pd.DataFrame({"x": num[:, 0], "y": num[:, 1], "region": cat})


@pytest.mark.parametrize("method", ["kmeans", "kprototypes"])
def test_select_k_finds_three_planted_groups(method):
    X = blobs()
    if method == "kmeans":
        X = X[["x", "y"]]
    table = select_k(X, [2, 3, 4, 5], method, seed=0)
    assert table["k"].tolist() == [2, 3, 4, 5]
    assert table.loc[table["silhouette"].idxmax(), "k"] == 3
    assert choose_k(table)[0] == 3
    if method == "kmeans":
        assert table.loc[table["calinski_harabasz"].idxmax(), "k"] == 3
        assert table.loc[table["davies_bouldin"].idxmin(), "k"] == 3
    else:
        assert table["calinski_harabasz"].isna().all()


def test_jaccard_best_match_per_reference_cluster():
    np.testing.assert_allclose(jaccard_best_match(np.array([1, 1, 2, 2, 2]), np.array([0, 0, 0, 1, 1])),
                               [2 / 3, 2 / 3])


def test_stability_is_high_for_clear_groups_and_flags_noise():
    X = blobs()
    ref = KPrototypes(n_clusters=3, n_init=3, random_state=0).fit(X).labels_ + 1
    st = stability(X, 3, "kprototypes", seed=0, reference=ref)
    assert st.stable and st.mean_ari > 0.99 and st.cluster_jaccard.min() > 0.95
    assert list(st.cluster_jaccard.index) == [1, 2, 3]
    noise = pd.DataFrame(np.random.default_rng(1).uniform(size=(240, 2)), columns=["x", "y"])
    ref = KMeansNumeric(n_clusters=7, n_init=2, random_state=0).fit(noise).labels_
    loose = stability(noise, 7, "kmeans", seed=0, reference=ref,
                      settings=ClusterSettings.from_config({"stability": {"threshold": 0.95}}))
    assert loose.mean_ari < st.mean_ari and not loose.stable


# ------------------------------------------------------------------ profiles, names, crosstab
def test_order_by_size_numbers_the_largest_cluster_first():
    assert order_by_size(np.array([2, 2, 0, 1, 1, 1]), 3).tolist() == [3, 1, 2]


def test_profiles_give_means_lifts_and_modes_against_the_base():
    values = pd.DataFrame({"frequency": [1.0, 3.0, 10.0, 6.0], "channel": ["web", "web", "app", "app"]})
    means, lifts, modes = profile_clusters(values, np.array([1, 1, 2, 2]), ["frequency"], ["channel"],
                                           revenue=np.array([10.0, 10.0, 50.0, 30.0]))
    expected = pd.DataFrame({"cluster": pd.array(["1", "2", "All customers"], dtype="string"),
                             "customers": [2, 2, 4], "share": [0.5, 0.5, 1.0],
                             "revenue_share": [0.2, 0.8, 1.0], "frequency": [2.0, 8.0, 5.0]})
    assert_frame_equal(means, expected)
    assert lifts["frequency"].tolist() == [0.4, 1.6]
    assert modes[["cluster", "mode", "share_in_cluster", "share_in_base", "lift"]].values.tolist() == [
        [1, "web", 1.0, 0.5, 2.0], [2, "app", 1.0, 0.5, 2.0]]


def test_names_come_from_the_strongest_differences_and_are_unique():
    z = pd.DataFrame({"recency_days": [-1.5, 1.5, 0.1, 0.0], "frequency": [1.2, -1.0, 0.2, 0.0],
                      "channel_share_app": [0.2, 0.0, 1.0, 0.1]}, index=[1, 2, 3, 4])
    names = name_clusters(z)
    assert names == {1: "Recently active, frequent customers", 2: "Lapsed, infrequent customers",
                     3: "App-first customers", 4: "Typical customers"}
    twins = pd.DataFrame({"frequency": [1.0, 1.0, 1.0], "aov": [0.6, -0.6, 0.7],
                          "tenure_days": [0.55, 0.0, 0.0]}, index=[1, 2, 3])
    # With one trait all three are "Frequent customers": duplicates get their next trait(s).
    assert name_clusters(twins, naming={"traits": 1}) == {
        1: "Frequent, big-basket, long-standing customers", 2: "Frequent, small-basket customers",
        3: "Frequent, big-basket customers"}
    same = pd.DataFrame({"frequency": [1.0, 1.0]}, index=[1, 2])
    assert name_clusters(same) == {1: "Frequent customers #1", 2: "Frequent customers #2"}


def issue_like_table(seed: int = 0) -> pd.DataFrame:
    """Three groups as in issue 16: recent customers of whom 62 % bought once (their gap between orders
    missing, filled with their short tenure), regulars, and lapsed customers of whom 48 % bought once."""
    rng = np.random.default_rng(seed)

    def group(n, one_share, tenure, recent, gap, freq):
        one = rng.random(n) < one_share
        t = rng.uniform(*tenure, n)
        f = np.where(one, 1, rng.integers(*freq, n))
        return pd.DataFrame({"recency_days": np.where(one, t, np.minimum(t, rng.uniform(*recent, n))),
                             "frequency": f, "monetary_total": f * rng.uniform(20, 40, n), "tenure_days": t,
                             "median_days_between_orders": np.where(one, np.nan, rng.uniform(*gap, n))})

    table = pd.concat([group(400, 0.62, (5, 60), (1, 30), (20, 40), (2, 4)),
                       group(300, 0.0, (500, 900), (1, 40), (25, 45), (6, 15)),
                       group(300, 0.48, (400, 900), (250, 500), (120, 200), (2, 4))], ignore_index=True)
    table.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(table))])
    return table


def test_a_cluster_whose_median_customer_bought_once_is_never_called_repeating():
    table = issue_like_table()
    settings = ClusterSettings.from_config({"naming": {"traits": 3}})
    result = cluster_customers(table, settings, seed=0, feature_set="behaviour", k=3, run_selection=False,
                               run_stability=False, run_projection=False)
    clusters = result.assignments["cluster"].to_numpy()
    profile = table.groupby(clusters)["frequency"].agg(median="median", one_time=lambda f: float((f == 1).mean()))
    assert profile["median"].tolist() == [1.0, 10.0, 2.0] and 0.55 < profile.loc[1, "one_time"] < 0.62
    # the means of the standardised features (gaps filled with the tenure) called the first cluster fast-repeating
    X = result.features[numeric_columns(result.features)]
    assert "fast-repeating" in name_clusters(X.groupby(clusters).mean(), naming={"traits": 3})[1]
    # from the medians: no repeat-gap word where the median customer has no gap; the sample's words stay elsewhere
    assert result.names == {1: "New, low-value, infrequent customers", 2: "Frequent, high-value customers",
                            3: "Lapsed, slow-repeating customers"}
    for cluster, median in profile["median"].items():
        assert median > 1 or "repeating" not in result.names[cluster]
    scores = naming_scores(X, clusters, table[X.columns].notna())
    assert np.isnan(scores.loc[1, "median_days_between_orders"]) and scores.loc[3, "median_days_between_orders"] > 0.5


def test_a_strong_categorical_level_completes_a_short_name():
    z = pd.DataFrame({"frequency": [0.1, -0.1]}, index=[1, 2])
    modes = pd.DataFrame({"cluster": [1, 2], "feature": ["region", "region"], "mode": ["North", "South"],
                          "share_in_cluster": [0.9, 0.5], "share_in_base": [0.5, 0.5], "lift": [1.8, 1.0]})
    assert name_clusters(z, modes) == {1: "Typical customers (mostly North)", 2: "Typical customers"}
    typed = modes.assign(mode=["web_shop", "store #1 | Berlin"], share_in_cluster=0.9, lift=1.8)
    assert name_clusters(z, typed) == {1: "Typical customers (mostly web_shop)",  # was "mostly web shop"
                                       2: "Typical customers (mostly store #1 | Berlin)"}


def test_crosstab_gives_each_clusters_shares_of_rfm_segments():
    a = pd.DataFrame({"customer_id": pd.array(["a", "b", "c", "d"], dtype="string"), "cluster": [1, 1, 1, 2],
                      "cluster_name": ["X", "X", "X", "Y"]})
    r = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "rfm_segment": ["Lost", "Lost", "Champions", "Lost"]})
    out = segment_crosstab(a, r)
    assert out.columns.tolist() == ["cluster", "cluster_name", "customers", "Lost", "Champions"]
    assert out[["customers", "Lost", "Champions"]].values.tolist() == [[3, 2 / 3, 1 / 3], [1, 1.0, 0.0]]
    with pytest.raises(DataError, match="rfm_segment"):
        segment_crosstab(a, r.drop(columns="rfm_segment"))


# ------------------------------------------------------------------ settings
def test_settings_reject_bad_values_with_the_key_named():
    with pytest.raises(ConfigError, match="clustering.method"):
        ClusterSettings.from_config({"method": "dbscan"})
    with pytest.raises(ConfigError, match="k_min"):
        ClusterSettings.from_config({"k_min": 1})
    with pytest.raises(ConfigError, match="feature_set"):
        ClusterSettings.from_config({"feature_set": "nope"})
    assert ClusterSettings.from_config({"k": None}).k is None


# ------------------------------------------------------------------ on the generated shop
@pytest.fixture(scope="module")
def shop_table():
    from segkit.data.datasets import DIRT_KINDS, generate_shop
    from segkit.features import customer_table

    shop = generate_shop(n_customers=1500, seed=3, dirt={k: 0 for k in DIRT_KINDS})
    table = customer_table(shop.transactions, shop.customers, shop.campaign)
    truth = shop.truth.set_index("customer_id").loc[table["customer_id"], "latent_segment"].to_numpy()
    return table, truth


@pytest.fixture(scope="module")
def shop_result(shop_table):
    return cluster_customers(shop_table[0], seed=5)


def test_planted_segments_are_recovered(shop_table, shop_result):
    table, truth = shop_table
    assert shop_result.method == "kprototypes" and shop_result.k == 4
    assert adjusted_rand_score(truth, shop_result.assignments["cluster"]) >= 0.8
    assert shop_result.stability.stable
    behaviour = cluster_customers(table, seed=5, feature_set="behaviour", k=4, run_stability=False)
    assert behaviour.method == "kmeans"
    assert adjusted_rand_score(truth, behaviour.assignments["cluster"]) >= 0.8


def test_result_tables_are_consistent(shop_result):
    r = shop_result
    assert sorted(r.names) == list(range(1, r.k + 1)) and len(set(r.names.values())) == r.k
    sizes = r.assignments["cluster"].value_counts().sort_index()
    assert sizes.is_monotonic_decreasing  # cluster 1 is the largest
    body = r.profiles[r.profiles["cluster"] != "All customers"]
    assert body["customers"].tolist() == sizes.tolist()
    assert body["share"].sum() == pytest.approx(1.0) and body["revenue_share"].sum() == pytest.approx(1.0)
    assert r.selection["k"].tolist() == list(range(2, 9))
    assert set(r.projection["cluster"]) == set(range(1, r.k + 1))
    assert r.missing_report.set_index("feature").loc["median_days_between_orders", "missing"] > 0


def test_the_lift_table_has_a_caption_saying_what_lift_is_and_over_which_baseline(shop_result):
    caption = lift_caption(shop_result)
    n = int(shop_result.profiles.set_index("cluster").loc["All customers", "customers"])
    assert caption.startswith("Lift of each cluster on each numeric feature = the cluster's mean divided by the "
                              f"mean of all {n:,} clustered customers (the baseline: the \"All customers\" row")
    assert "2.00 = twice the average" in caption and "on recency days" in caption
    # notebook 03 shows it with the lift table
    cells = ["".join(c["source"]) for c in json.loads((project_root() / "notebooks" / "03_clustering.ipynb")
                                                          .read_text())["cells"]]
    lift_cell = next(c for c in cells if "result.lifts" in c)
    assert lift_cell.startswith("display(Markdown(escape_markdown(lift_caption(result))))")


def test_the_projection_title_says_all_customers_when_nothing_was_sampled(shop_result):
    # "2,542 sampled" was shown when the plot held the whole base
    from segkit.cluster import projection
    from segkit.plots.cluster import plot_projection

    n = len(shop_result.assignments)
    assert len(shop_result.projection) == n < shop_result.settings.projection_sample
    assert plot_projection(shop_result.projection, shop_result.names).get_title() == (
        f"Customers projected on two dimensions (all {n:,}; X = cluster centre)")
    part = projection(shop_result.features, shop_result.assignments["cluster"].to_numpy(), shop_result.gamma,
                      seed=5, sample=200)
    assert plot_projection(part, shop_result.names).get_title() == (
        f"Customers projected on two dimensions (200 of {n:,} sampled; X = cluster centre)")


def test_the_fitted_model_scores_new_customers_like_the_fit(shop_table, shop_result):
    table = shop_table[0]
    np.testing.assert_array_equal(shop_result.model.predict(table.iloc[:200]),
                                  shop_result.assignments["cluster"].to_numpy()[:200])
    names = shop_result.model.predict_names(table.iloc[:5])
    assert names.tolist() == shop_result.assignments["cluster_name"].tolist()[:5]


def test_clustering_is_deterministic_for_a_seed(shop_table, shop_result):
    again = cluster_customers(shop_table[0], seed=5, run_stability=False)
    assert_frame_equal(again.assignments, shop_result.assignments)
    assert_frame_equal(again.selection, shop_result.selection)


def test_summary_is_generated_from_the_results(shop_result):
    s = summarize(shop_result)
    assert 3 <= len(s["findings"]) <= 5
    assert s["headlines"]["Clusters"] == shop_result.k
    assert s["headlines"]["Customers clustered"] == len(shop_result.assignments)
    assert f"{shop_result.k} clusters" in s["findings"][0]
    assert "k-prototypes" in s["analysed"] and s["actions"]


def test_an_rfm_plan_is_suggested_for_a_cluster_only_when_that_segment_dominates_it(shop_result):
    import dataclasses

    # a cluster 52% 'Lost' used to get "Let go: exclude from paid campaigns" for all of it
    prof = shop_result.profiles[shop_result.profiles["cluster"] != "All customers"]
    names = prof.sort_values("cluster")["cluster_name"].tolist()
    rest = len(names) - 3
    ct = pd.DataFrame({"cluster": [str(i + 1) for i in range(len(names))], "cluster_name": names,
                       "customers": [100] * len(names), "Champions": [0.8, 0.3, 0.48] + [1.0] * rest,
                       "Lost": [0.2, 0.25, 0.52] + [0.0] * rest, "Hibernating": [0.0, 0.45, 0.0] + [0.0] * rest})
    info = dict(shop_result.info, rfm_actions={"Champions": "Reward them", "Hibernating": "Let go",
                                               "Lost": "Let go"})
    s = summarize(dataclasses.replace(shop_result, rfm_crosstab=ct, info=info))
    first, second, third = (next(a for a in s["actions"] if a.startswith(f"'{n}'")) for n in names[:3])
    assert "80% of them RFM 'Champions'): Reward them." in first
    assert "mixed RFM segments, largest 'Hibernating' at 45%): use each customer's own RFM action" in second
    assert ("mostly RFM 'Lost' (52%), under the 75% needed for one plan): use each customer's own RFM action "
            "within the cluster.") in third
    assert not any("Let go" in a for a in (second, third)) and "Reward them" not in second
    stricter = dataclasses.replace(shop_result, rfm_crosstab=ct, info=info,
                                   settings=ClusterSettings.from_config({"segment_action_min_share": 0.85}))
    def action_of(summary: dict, name: str) -> str:
        return next(a for a in summary["actions"] if a.startswith(f"'{name}'"))

    assert "mostly RFM 'Champions' (80%), under the 85% needed for one plan): use each customer's own" in action_of(
        summarize(stricter), names[0])
    looser = dataclasses.replace(stricter, settings=ClusterSettings.from_config({"segment_action_min_share": 0.5}))
    assert "52% of them RFM 'Lost'): Let go." in action_of(summarize(looser), names[2])


@pytest.mark.parametrize("share", [0.4, 1.2, "most", True])
def test_a_segment_action_share_outside_a_majority_is_a_config_error(share):
    with pytest.raises(ConfigError, match="segment_action_min_share"):
        ClusterSettings.from_config({"segment_action_min_share": share})


def test_explorer_shows_the_main_result_for_the_chosen_choice(shop_result):
    choices = view_choices(shop_result)
    assert choices["k = 4, behaviour_and_profile (chosen)"] == (4, "behaviour_and_profile")
    assert ("k = 4, rfm") in choices
    view = cluster_view(shop_result, 4, "behaviour_and_profile")
    main = shop_result.profiles[shop_result.profiles["cluster"] != "All customers"]
    expected = main[["cluster", "cluster_name", "customers", "share", "recency_days", "frequency",
                     "monetary_total", "aov"]].reset_index(drop=True)
    assert_frame_equal(view, expected)


def test_explorer_view_of_another_choice_refits_all_customers_when_they_fit_in_the_sample(shop_table, shop_result):
    table = shop_table[0]
    assert len(table) < shop_result.settings.selection["sample_size"]
    view = cluster_view(shop_result, 3, "rfm")
    full = cluster_customers(table, seed=5, feature_set="rfm", k=3, run_selection=False, run_stability=False,
                             n_init=shop_result.settings.selection["n_init"])  # what the explorer showed before
    body = full.profiles[full.profiles["cluster"] != "All customers"]
    assert_frame_equal(view, body[["cluster", "cluster_name", "customers", "share", "recency_days", "frequency",
                                   "monetary_total"]].reset_index(drop=True))
    assert view["cluster"].tolist() == ["1", "2", "3"] and view["customers"].sum() == len(table)


def test_explorer_view_of_large_data_fits_on_the_sample_of_the_k_comparison(shop_table):
    table = shop_table[0]
    s = ClusterSettings.from_config({"selection": {"sample_size": 400, "n_init": 2}})
    quick = cluster_customers(table, s, seed=5, feature_set="behaviour", k=3, run_selection=False,
                              run_stability=False, run_projection=False, fit_sample=400, n_init=2)
    assert len(quick.model.estimator.labels_) == 400  # fitted on the sample only
    compared = select_k(quick.features, [3], quick.method, 5, s)  # the comparison of k fits the same sample
    assert quick.model.estimator.cost_ == compared["cost"].iloc[0]
    np.testing.assert_array_equal(quick.assignments["cluster"].to_numpy(),
                                  quick.model.numbers[quick.model.estimator.predict(quick.features)])
    assert len(quick.assignments) == len(table) and quick.projection.empty
    assert list(quick.projection.columns) == ["pc1", "pc2", "cluster"]
    result = cluster_customers(table, s, seed=5, feature_set="behaviour", k=4, run_selection=False,
                               run_stability=False)
    view = cluster_view(result, 3, "behaviour")
    assert view["customers"].tolist() == quick.profiles["customers"].iloc[:-1].tolist()


def test_large_data_final_model_is_fitted_on_the_seeded_fit_sample_and_assigns_everyone(shop_table):
    from segkit.steps.cluster import summarize

    table = shop_table[0]
    assert len(table) > 1000
    s = ClusterSettings.from_config({"fit_sample": 1000})
    result = cluster_customers(table, s, seed=5, feature_set="behaviour", k=3, run_selection=False,
                               run_stability=False, run_projection=False)
    assert len(result.model.estimator.labels_) == 1000 and result.info["fitted_on"] == 1000
    assert result.info["customers"] == len(table) == len(result.assignments)
    np.testing.assert_array_equal(result.assignments["cluster"].to_numpy(),
                                  result.model.numbers[result.model.estimator.predict(result.features)])
    again = cluster_customers(table, s, seed=5, feature_set="behaviour", k=3, run_selection=False,
                              run_stability=False, run_projection=False)
    assert again.assignments.equals(result.assignments)  # the sample is seeded
    assert f"seeded sample of 1,000 of the {len(table):,} customers" in summarize(result)["analysed"]
    full = cluster_customers(table, ClusterSettings.from_config({"fit_sample": None}), seed=5, feature_set="behaviour",
                             k=3, run_selection=False, run_stability=False, run_projection=False)
    assert full.info["fitted_on"] == len(table) == len(full.model.estimator.labels_)
    assert "seeded sample" not in summarize(full)["analysed"]
    with pytest.raises(ConfigError, match="fit_sample"):
        ClusterSettings.from_config({"fit_sample": 50})


def test_explorer_views_of_other_k_are_the_models_fitted_when_comparing_k(shop_table, shop_result, monkeypatch):
    from segkit import cluster as cluster_module

    assert sorted(shop_result.selection_models) == shop_result.selection["k"].tolist()
    for k, model in shop_result.selection_models.items():  # the very fits the comparison scored
        assert model.cost_ == shop_result.selection.set_index("k").loc[k, "cost"]
    reused = cluster_view(shop_result, 3, shop_result.feature_set)
    fits = []
    real = cluster_module.make_model
    monkeypatch.setattr(cluster_module, "make_model", lambda *a, **kw: fits.append(a) or real(*a, **kw))
    assert_frame_equal(cluster_view(shop_result, 3, shop_result.feature_set), reused)
    assert fits == []  # no refit for a k of the comparison
    monkeypatch.setattr(shop_result, "selection_models", {})
    assert_frame_equal(cluster_view(shop_result, 3, shop_result.feature_set), reused)  # a refit agrees
    assert len(fits) == 1


def test_a_segment_model_rebuilt_from_json_predicts_like_the_fitted_one(shop_table, shop_result):
    import json

    from segkit.cluster import SegmentModel

    table = shop_table[0]
    kmeans = cluster_customers(table, seed=5, feature_set="behaviour", k=4, run_stability=False)
    for result in (shop_result, kmeans):
        model = result.model
        again = SegmentModel.from_dict(json.loads(json.dumps(model.to_dict())))
        assert type(again.estimator) is type(model.estimator)
        assert_frame_equal(again.builder.transform(table), model.builder.transform(table), check_exact=True)
        assert_frame_equal(again.builder.describe(), model.builder.describe())
        np.testing.assert_array_equal(again.predict(table), model.predict(table))
        np.testing.assert_array_equal(again.predict(table), result.assignments["cluster"].to_numpy())
        assert again.predict_names(table).tolist() == result.assignments["cluster_name"].tolist()
        assert again.names == model.names
    est = SegmentModel.from_dict(json.loads(json.dumps(shop_result.model.to_dict()))).estimator
    np.testing.assert_array_equal(est.centroids_num_, shop_result.model.estimator.centroids_num_)
    np.testing.assert_array_equal(est.transform(shop_result.features), shop_result.model.estimator.transform(
        shop_result.features))
    assert est.gamma_ == shop_result.gamma


def test_a_corrupt_or_foreign_model_dict_is_a_clear_error(shop_result):
    import copy

    from segkit.cluster import SegmentModel

    good = shop_result.model.to_dict()
    with pytest.raises(DataError, match="Not a saved SegmentModel: the dict describes 'FeatureBuilder'"):
        SegmentModel.from_dict(good["params"]["builder"])
    with pytest.raises(DataError, match="format version 99"):
        SegmentModel.from_dict({**good, "version": 99})
    broken = copy.deepcopy(good)
    del broken["params"]["builder"]["fitted"]["center_"]
    with pytest.raises(DataError, match="lacks fitted.center_"):
        SegmentModel.from_dict(broken)
    broken = copy.deepcopy(good)
    broken["params"]["estimator"]["fitted"]["centroids_num_"] = [[1.0, 2.0]]
    with pytest.raises(DataError, match=r"'centroids_num_' must be a list of numbers of shape \(4, 14\), got shape \(1, 2\)"):
        SegmentModel.from_dict(broken)
    broken = copy.deepcopy(good)
    broken["params"]["estimator"]["fitted"]["centroids_cat_"][0][0] = 99
    with pytest.raises(DataError, match="codes of the saved categories"):
        SegmentModel.from_dict(broken)
    broken = copy.deepcopy(good)
    broken["params"]["numbers"] = [1, 2]
    with pytest.raises(DataError, match="do not match the builder"):
        SegmentModel.from_dict(broken)
    with pytest.raises(DataError, match="expected a dict"):
        SegmentModel.from_dict(["not", "a", "model"])


def test_too_few_customers_is_a_clear_error():
    t = pd.DataFrame({"customer_id": ["a", "b"], "frequency": [1.0, 2.0], "recency_days": [3.0, 4.0]})
    with pytest.raises(ModelFitError, match="Only 2 customers"):
        cluster_customers(t, feature_set="rfm")
    # issue 14: with 1 or 2 customers lowering k_min (already the minimum 2) cannot help: say what can
    for rows, name in ((1, "1 customer to"), (2, "2 customers to")):
        with pytest.raises(ModelFitError) as err:
            cluster_customers(t.head(rows), feature_set="rfm")
        assert str(err.value).startswith(f"Only {name} cluster; comparing k = 2–8 needs more customers than clusters "
                                         "(at least 3). Two clusters are the fewest, so clustering needs at least 3 "
                                         "buying customers: add data")
        assert "Lower clustering.k_min" not in str(err.value) and "segkit run --only" in str(err.value)
    four = pd.DataFrame({"customer_id": list("abcd"), "frequency": [1.0, 2.0, 3.0, 4.0],
                         "recency_days": [3.0, 4.0, 9.0, 1.0]})
    with pytest.raises(ModelFitError, match=r"\(at least 6\)\. Lower clustering.k_min \(now 5\) to at most 3, or add"):
        cluster_customers(four, ClusterSettings.from_config({"k_min": 5, "k_max": 6}), feature_set="rfm")


# ------------------------------------------------------------------ producer
def test_producer_writes_clusters_and_customer_segment_columns(tmp_path):
    import json

    from segkit.cluster import SegmentModel, predict_clusters_frame
    from segkit.core.config import load_config
    from segkit.core.files import dumps_json
    from segkit.data.datasets import DIRT_KINDS, generate_shop
    from segkit.steps.pipeline import RunContext
    from segkit.steps.rfm import build_rfm_artifacts

    shop = generate_shop(n_customers=600, seed=2, dirt={k: 0 for k in DIRT_KINDS})
    cfg = load_config(overrides={"clustering": {"k_max": 4, "stability": {"runs": 3}}})
    ctx = RunContext(notebook="03_clustering", run_dir=tmp_path, config=cfg, seed=1, interactive=False)
    tx = shop.transactions.assign(is_return=shop.transactions["amount"] < 0)
    ctx.write_artifact("transactions_clean", tx)
    ctx.write_artifact("customers_clean", shop.customers)
    ctx.write_artifact("campaign_clean", shop.campaign)
    as_of = (tx["order_date"].max().normalize() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    (tmp_path / "artifacts" / "audit_summary.json").write_text(dumps_json({"as_of": as_of}))
    build_rfm_artifacts(ctx)
    result = build_cluster_artifacts(ctx)
    clusters = pd.read_parquet(tmp_path / "artifacts" / "clusters.parquet")
    assert clusters.columns[:3].tolist() == ["customer_id", "cluster", "cluster_name"]
    assert set(result.builder.numeric_features_) <= set(clusters.columns)
    assert len(clusters) == len(result.assignments) and clusters["cluster"].between(1, result.k).all()
    seg = pd.read_csv(tmp_path / "artifacts" / "customer_segments.csv", dtype={"customer_id": "string"})
    assert {"cluster", "cluster_name", "rfm_segment"} <= set(seg.columns)
    assert len(seg) == len(shop.customers)
    unclustered = seg[~seg["customer_id"].isin(clusters["customer_id"])]
    assert len(unclustered) == result.info["not_clustered"] > 0
    assert unclustered["cluster"].isna().all() and unclustered["cluster_name"].isna().all()
    merged = seg.merge(clusters[["customer_id", "cluster_name"]], on="customer_id", suffixes=("", "_art"))
    assert (merged["cluster_name"] == merged["cluster_name_art"]).all()
    assert result.rfm_crosstab["customers"].sum() == len(clusters)
    saved = json.loads((tmp_path / "artifacts" / "cluster_model.json").read_text())
    assert saved["run"] == {"as_of": as_of, "feature_set": result.feature_set, "method": result.method,
                            "k": result.k, "seed": 1, "customers": len(clusters)}
    model = SegmentModel.from_dict(saved)
    assert predict_clusters_frame(model, clusters).tolist() == clusters["cluster_name"].tolist()
    first = (tmp_path / "artifacts" / "customer_segments.csv").read_bytes()
    build_cluster_artifacts(ctx)
    assert (tmp_path / "artifacts" / "customer_segments.csv").read_bytes() == first


# ------------------------------------------------------------------ bench functions
def test_bench_functions_compare_both_sides_at_a_tiny_size():
    from segkit.bench.cluster import bench_kmeans, bench_kprototypes, mixed_data

    res = bench_kprototypes(300, seed=1)
    assert res["n_rows"] == 300 and res["kmodes_seconds"] > 0 and res["segkit_seconds"] > 0
    assert res["speedup"] == pytest.approx(res["kmodes_seconds"] / res["segkit_seconds"])
    assert res["cost_ratio"] == pytest.approx(res["segkit_cost"] / res["kmodes_cost"])
    assert res["segkit_cost"] > 0 and res["kmodes_cost"] > 0
    km = bench_kmeans(300, seed=1)
    assert km["segkit_cost"] == pytest.approx(km["sklearn_cost"], rel=1e-9)
    data = mixed_data(50, seed=2)
    assert data.shape == (50, 6) and set(data["c0"]) <= set("abcde")


def test_minimal_transactions_cluster_with_what_exists():
    from segkit.features import customer_table

    rng = np.random.default_rng(4)
    n = 120
    ids = np.repeat([f"c{i:03d}" for i in range(n)], 3)
    heavy = np.repeat(np.arange(n) < n // 2, 3)
    tx = pd.DataFrame({"customer_id": ids,
                       "order_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(
                           np.where(heavy, rng.integers(300, 360, 3 * n), rng.integers(0, 60, 3 * n)), unit="D"),
                       "amount": np.where(heavy, rng.uniform(200, 300, 3 * n), rng.uniform(5, 15, 3 * n))})
    table = customer_table(tx)
    result = cluster_customers(table, seed=0, k=2)
    assert result.method == "kmeans"  # no categorical attribute exists, so auto → k-means
    assert "channel_share_*" in result.builder.skipped_features_
    assert any("Features not used" in w for w in result.warnings)
    big = result.assignments.set_index("customer_id")["cluster"]
    assert big.loc[[f"c{i:03d}" for i in range(n // 2)]].nunique() == 1
    assert adjusted_rand_score(np.arange(n) < n // 2, big.to_numpy()) == 1.0


def test_unknown_feature_set_and_method_are_config_errors(shop_table):
    with pytest.raises(ConfigError, match="nope"):
        cluster_customers(shop_table[0], feature_set="nope")
    with pytest.raises(ConfigError, match="method"):
        cluster_customers(shop_table[0], method="dbscan")


@pytest.mark.parametrize("estimator", [KPrototypes(n_clusters=3, n_init=1, max_iter=20),
                                       KMeansNumeric(n_clusters=3, n_init=1)], ids=lambda e: type(e).__name__)
def test_estimators_pass_scikit_learns_checks(estimator):
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, expected_failed_checks={
            "check_dtype_object": "object columns are categories here, not numbers to coerce"})
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []


# ------------------------------------------------------------------ issue 14: odd input to k-prototypes
def test_explicit_initial_centroids_with_missing_values_are_refused_as_kmodes_does():
    X = np.array([[0.0, "a"], [0.1, "a"], [5.0, "b"], [5.1, "b"]], dtype=object)
    with pytest.raises(ValueError, match="Missing values"):  # the reference refuses them
        KModesKPrototypes(n_clusters=2, init=[np.array([[np.nan], [5.0]]), np.array([[0], [1]])],
                          n_init=1).fit(X, categorical=[1])
    with pytest.raises(ConfigError, match=r"numeric centroid\(s\) 1 have missing or infinite values"):
        KPrototypes(n_clusters=2, init=[[[np.nan], [5.0]], [[0], [1]]], n_init=1).fit(X, categorical=[1])
    with pytest.raises(ConfigError, match=r"categorical centroid\(s\) 2 have missing or invalid codes"):
        KPrototypes(n_clusters=2, init=[[[0.0], [5.0]], [[0], [np.nan]]], n_init=1).fit(X, categorical=[1])
    with pytest.raises(ConfigError, match=r"categorical centroid\(s\) 1 .* from 0 to .* \(1\)"):
        KPrototypes(n_clusters=2, init=[[[0.0], [5.0]], [[7], [1]]], n_init=1).fit(X, categorical=[1])
    km = KPrototypes(n_clusters=2, init=[[[0.0], [5.0]], [[0], [1]]], n_init=1).fit(X, categorical=[1])
    assert km.labels_.tolist() == [0, 0, 1, 1]


def test_one_categorical_column_may_be_given_as_an_int_as_in_kmodes():
    X = planted(120, seed=3)[:, :4]
    ref = KModesKPrototypes(n_clusters=3, init="Cao", n_init=1, random_state=0).fit(X, categorical=3)
    ours = KPrototypes(n_clusters=3, init="Cao", n_init=1, random_state=0).fit(X, categorical=3)
    assert ours.categorical_features_ == [3] and ours.numeric_features_ == [0, 1, 2]
    assert adjusted_rand_score(ref.labels_, ours.labels_) == pytest.approx(1.0)
    np.testing.assert_array_equal(ours.predict(X, categorical=3), ours.labels_)
    with pytest.raises(ConfigError, match=r"categorical = 1\.5: give the position"):
        KPrototypes(n_clusters=3, n_init=1).fit(X, categorical=1.5)


@pytest.mark.parametrize("init", ["Cao", "Huang", "random"])
def test_k_up_to_the_number_of_distinct_customers_works(init):
    # six distinct customers, two of them twice, far apart on one axis: kmodes' random numeric
    # draws (mean + N(0, 1) * std) never give every one its own nearest centroid
    X = np.array([[0.0, "a"], [0.0, "a"], [1.0, "a"], [2.0, "a"], [3.0, "a"], [100.0, "a"], [101.0, "a"],
                  [101.0, "a"]], dtype=object)
    for k in (5, 6):
        km = KPrototypes(n_clusters=k, init=init, n_init=2, random_state=0).fit(X, categorical=[1])
        assert len(set(km.labels_.tolist())) == k
    six = KPrototypes(n_clusters=6, init=init, n_init=2, random_state=0).fit(X, categorical=[1])
    assert six.cost_ == pytest.approx(0.0)  # each distinct customer is its own cluster
    assert six.labels_[0] == six.labels_[1] and six.labels_[6] == six.labels_[7]
    with pytest.raises(ModelFitError, match=r"Only 6 distinct customer profiles for 7 clusters; lower k to at most 6"):
        KPrototypes(n_clusters=7, init=init, n_init=1, random_state=0).fit(X, categorical=[1])


def test_an_impossible_initialisation_says_why_instead_of_blaming_too_few_customers():
    # two customers that differ only in their category: with gamma = 0 they are equally near
    X = np.array([[0.0, "a"], [0.0, "b"], [0.0, "b"]], dtype=object)
    with pytest.raises(ModelFitError, match="gamma = 0 customers that differ only in their categorical features"):
        KPrototypes(n_clusters=2, init="random", n_init=1, gamma=0.0, random_state=0).fit(X, categorical=[1])


# ------------------------------------------------------------------ names from the data, as typed
MESSY_CHANNELS = {"app": "App <iOS>", "web": "web_shop", "store": "store #1 | Berlin",
                  "marketplace": "Marketplace (Amazon*)"}
# from the clusters' median customers (the means did not show these): the web_shop one opens none of its
# e-mails where the base's median e-mailed customer opens some; the marketplace one buys on 5 days, the base's 3
MESSY_NAMES = ["Web_shop-first, e-mail-inactive customers", "Marketplace (Amazon*)-first, frequent customers",
               "Store #1 | Berlin-first, narrow-range customers", "App <iOS>-first, big-basket customers"]


@pytest.fixture(scope="module")
def messy_result():
    """The generated shop of ``shop_table`` with channel names as a real shop types them."""
    from segkit.data.datasets import DIRT_KINDS, generate_shop
    from segkit.features import customer_table

    shop = generate_shop(n_customers=1500, seed=3, dirt={k: 0 for k in DIRT_KINDS})
    tx = shop.transactions.assign(channel=shop.transactions["channel"].map(MESSY_CHANNELS))
    customers = shop.customers.assign(preferred_channel=shop.customers["preferred_channel"].map(MESSY_CHANNELS))
    table = customer_table(tx, customers, shop.campaign)
    return cluster_customers(table, seed=5, run_stability=False)


def test_the_customer_table_keeps_each_channel_as_typed_beside_its_column(tmp_path):
    from segkit.data.engine import behaviour_table_from_files
    from segkit.features import customer_table

    tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_id": ["1", "2", "3"],
                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-11", "2024-01-05"]),
                       "amount": [20.0, 40.0, 10.0], "channel": ["App <iOS>", "store #1 | Berlin", "App <iOS>"]})
    expected = {"channel_share_app_ios": "App <iOS>", "channel_share_store_1_berlin": "store #1 | Berlin"}
    table = customer_table(tx, as_of="2024-02-01")
    assert table.attrs["original_values"] == expected
    assert [c for c in table.columns if c.startswith("channel_share_")] == list(expected)  # columns stay slugs
    path = tmp_path / "lines.csv"
    tx.to_csv(path, index=False)
    assert behaviour_table_from_files(path, as_of="2024-02-01").attrs["original_values"] == expected  # DuckDB


def test_cluster_names_and_texts_name_channels_as_typed(messy_result):
    # "App <iOS>" became "App ios-first", "store #1 | Berlin" "Store 1 berlin-first", "web_shop" "Web shop-first"
    import html

    from segkit.report.export import render_markdown
    from segkit.steps.cluster import standardised_means
    from segkit.steps.pipeline import summary_markdown

    r = messy_result
    assert r.builder.original_values_ == {
        "channel_share_web_shop": "web_shop", "channel_share_marketplace_amazon": "Marketplace (Amazon*)",
        "channel_share_app_ios": "App <iOS>", "channel_share_store_1_berlin": "store #1 | Berlin"}
    assert list(r.names.values()) == MESSY_NAMES
    s = summarize(r)
    texts = " ".join(s["findings"] + s["actions"])
    # 0.8605 / 0.1336 = 6.44: since issue 16 a CO order that returns all of an order cancels it, so 7 customers
    # who kept nothing left the table and 40 lost a purchase order (17 of them an app share); it was 0.8608 / 0.1327
    assert "its strongest difference: channel share 'App <iOS>' 0.86 vs 0.13 overall (6.4×)" in texts
    assert "'Web_shop-first, e-mail-inactive customers'" in texts
    heat = standardised_means(r, labels=True)
    assert "channel share 'store #1 | Berlin'" in heat.columns and "channel share 'web_shop'" in heat.columns
    described = r.builder.describe().set_index("feature")["transformation"]
    assert described["channel_share_app_ios"] == "channel share 'App <iOS>': standardised, clipped at ±5 sd"
    assert "channel_share_app_ios" in r.profiles.columns  # artifact columns keep their slugs
    shown = render_markdown(summary_markdown(s))  # escaped where the text becomes Markdown
    assert "'App &lt;iOS&gt;-first, big-basket customers'" in shown and "'Web_shop-first, e-mail-inactive customers'" in shown
    every = render_markdown(summary_markdown(dict(s, findings=MESSY_NAMES)))
    assert all(html.escape(name, quote=False) in every for name in MESSY_NAMES) and "<em>" not in every


def test_the_values_as_typed_are_saved_with_the_model_and_old_models_still_load(messy_result):
    import json

    from segkit.cluster import SegmentModel

    saved = json.loads(json.dumps(messy_result.model.to_dict()))
    again = SegmentModel.from_dict(saved)
    assert again.builder.original_values_ == messy_result.builder.original_values_
    del saved["params"]["builder"]["fitted"]["original_values_"]  # a cluster_model.json of earlier versions
    old = SegmentModel.from_dict(saved)
    assert old.builder.original_values_ == {}
    table = messy_result.table.iloc[:50]
    assert old.predict_names(table).tolist() == messy_result.model.predict_names(table).tolist()
    assert old.builder.describe().set_index("feature").loc["channel_share_app_ios", "transformation"] == (
        "standardised, clipped at ±5 sd")
