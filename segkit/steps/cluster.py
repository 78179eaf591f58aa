"""Step 03 (`notebooks/03_clustering.ipynb`): the producer :func:`build_cluster_artifacts`, the
explorer's views and the texts of the summary (:func:`summarize`), built from a
:class:`segkit.cluster.ClusterResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_cluster_artifacts(open_run("03_clustering"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np  # noqa: F401  (the doctests' namespace)
import pandas as pd

from segkit.cluster import (
    ClusterResult,
    ClusterSettings,
    cluster_customers,
    cluster_model_dict,
    clusters_frame,
    numeric_columns,
    segment_crosstab,
)
from segkit.core.labels import feature_label
from segkit.features import customer_table
from segkit.steps.sources import behaviour_for
from segkit.steps.spark_scoring import scores_on_spark, write_run_segments

__all__ = ["build_cluster_artifacts", "lift_caption", "standardised_means", "summarize", "view_choices",
           "cluster_view"]


def run_customer_table(ctx: Any, settings: ClusterSettings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The customer table notebook 03 clusters, and the ``customers_clean`` and ``rfm`` artifacts
    it is built from.

    :func:`segkit.features.customer_table` as of the run's ``as_of`` (the behaviour columns from the
    run's clean lines by the relational core, :func:`segkit.steps.sources.behaviour_for`), with
    the campaign's control arm when it is a hold-out. Notebook 05's refit
    (:func:`segkit.campaign.refit_cluster_model`) calls it too, so both cluster the same table.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> table, customers, rfm = run_customer_table(open_run("03_clustering"), ClusterSettings())  # doctest: +SKIP
    """

    behaviour = behaviour_for(ctx, ctx.as_of, int(settings.max_channels))
    customers = ctx.read_artifact("customers_clean")
    campaign = ctx.read_artifact("campaign_clean") if ctx.has_artifact("campaign_clean") else None
    rfm = ctx.read_artifact("rfm")
    camp = ctx.section("campaign")
    control = camp.get("control_arm", "control") if camp.get("control_is_holdout", True) else None
    table = customer_table(None, customers, campaign, ctx.as_of, control_arm=control,
                           max_channels=int(settings.max_channels), behaviour=behaviour)
    return table, customers, rfm


def build_cluster_artifacts(ctx) -> ClusterResult:
    """Producer of notebook 03: ``artifacts/clusters.parquet``, the fitted model
    ``artifacts/cluster_model.json`` (:func:`cluster_model_dict`; notebook 05 scores customers
    with it) and ``cluster, cluster_name`` in ``customer_segments.csv``.

    Reads ``transactions_clean``, ``customers_clean``, ``campaign_clean`` (when present) and
    ``rfm``; builds the customer table (:func:`segkit.features.customer_table`) as of the run's
    ``as_of``; clusters it with the ``clustering`` config section and the run's seed
    (:func:`cluster_customers`); cross-tabulates the clusters against the RFM segments.
    Customers without a purchase are not clustered: their ``cluster`` and ``cluster_name``
    stay empty in ``customer_segments.csv``. With ``engine.kind: spark`` Spark writes
    ``customer_segments`` instead (:func:`segkit.steps.spark_scoring.write_run_segments`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> result = build_cluster_artifacts(open_run("03_clustering"))  # doctest: +SKIP
    """
    settings = ClusterSettings.from_config(ctx.section("clustering"))
    table, customers, rfm = run_customer_table(ctx, settings)
    result = cluster_customers(table, settings, ctx.seed)
    result.rfm_crosstab = segment_crosstab(result.assignments, rfm)
    if {"rfm_segment", "recommended_action"} <= set(rfm.columns):
        pairs = rfm[["rfm_segment", "recommended_action"]].dropna().drop_duplicates("rfm_segment")
        result.info["rfm_actions"] = dict(zip(pairs["rfm_segment"].astype(str), pairs["recommended_action"].astype(str)))
    ctx.write_artifact("clusters", clusters_frame(result))
    ctx.write_artifact("cluster_model", cluster_model_dict(result))
    ids = customers["customer_id"].astype("string") if "customer_id" in customers.columns else pd.Series([], dtype="string")
    others = pd.DataFrame({"customer_id": ids[~ids.isin(result.assignments["customer_id"])]})
    result.info["not_clustered"] = int(len(others))
    if scores_on_spark(ctx):  # customer_segments scored on the executors with cluster_model.json
        write_run_segments(ctx)
        return result
    segments = pd.concat([result.assignments, others], ignore_index=True)
    segments["cluster"] = segments["cluster"].astype("Int64")
    ctx.update_customer_segments(segments[["customer_id", "cluster", "cluster_name"]])
    return result


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.0f}%"


def standardised_means(result: ClusterResult, labels: bool = False) -> pd.DataFrame:
    """Mean of every numeric model feature per cluster, in standard deviations from the base
    (the features are standardised), rows = cluster numbers and columns = feature columns; with
    ``labels``, rows "n: name" and columns as a person reads them (:func:`feature_label`: channels
    as typed in the data)."""
    X = result.features[numeric_columns(result.features)]
    z = X.groupby(result.assignments["cluster"].to_numpy()).mean()
    if labels:
        z.index = [f"{c}: {result.names[int(c)]}" for c in z.index]
        z.columns = [feature_label(c, result.builder.original_values_) for c in z.columns]
    return z


def lift_caption(result: ClusterResult) -> str:
    """Caption of the lift table (``result.lifts``): what a lift is and over which baseline.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> profiles = pd.DataFrame({"cluster": ["1", "2", "All customers"], "customers": [30, 10, 40]})
    >>> lifts = pd.DataFrame({"cluster": ["1", "2"], "customers": [30, 10], "recency_days": [0.5, 2.5]})
    >>> print(lift_caption(SimpleNamespace(profiles=profiles, lifts=lifts)))  # doctest: +NORMALIZE_WHITESPACE
    Lift of each cluster on each numeric feature = the cluster's mean divided by the mean of all 40
    clustered customers (the baseline: the "All customers" row of the profile table above), on the
    features' own scale after filling missing values: 1.00 = as the average customer, 2.00 = twice the
    average, 0.50 = half. A lift says more or less, not better or worse: on recency days (days since the
    last order) above 1 means longer since the last order. "–" where the baseline mean is 0.
    """
    base = result.profiles.set_index("cluster").loc["All customers", "customers"]
    recency = (": on recency days (days since the last order) above 1 means longer since the last order"
               if "recency_days" in result.lifts.columns else "")
    return (f"Lift of each cluster on each numeric feature = the cluster's mean divided by the mean of all "
            f"{int(base):,} clustered customers (the baseline: the \"All customers\" row of the profile table "
            "above), on the features' own scale after filling missing values: 1.00 = as the average customer, "
            "2.00 = twice the average, 0.50 = half. A lift says more or less, not better or worse"
            f"{recency}. \"–\" where the baseline mean is 0.")


def _strongest_lift(result: ClusterResult, cluster: int) -> str:
    """'<feature> <cluster mean> vs <overall mean> (lift×)' for the feature that most sets a cluster apart."""
    row = standardised_means(result).loc[cluster]
    feat = row.abs().sort_values(ascending=False, kind="stable").index[0]
    lift = result.lifts.set_index("cluster").loc[str(cluster), feat]
    mean = result.profiles.set_index("cluster").loc[str(cluster), feat]
    base = result.profiles.set_index("cluster").loc["All customers", feat]
    return (f"{feature_label(feat, result.builder.original_values_)} {mean:,.2f} vs {base:,.2f} overall"
            + (f" ({lift:.1f}×)" if pd.notna(lift) else ""))


def summarize(result: ClusterResult) -> dict:
    """The executive summary of notebook 03, generated from the results.

    Returns the keyword arguments of :func:`segkit.steps.pipeline.show_summary`: ``title``,
    ``analysed``, ``findings`` (3–5), ``actions``, ``headlines`` and ``warnings``.
    """
    prof = result.profiles[result.profiles["cluster"] != "All customers"].copy()
    prof["cluster_no"] = prof["cluster"].astype(int)
    n = int(result.info["customers"])
    method = "k-prototypes (numeric + categorical)" if result.method == "kprototypes" else "k-means (numeric)"
    num, cat = result.info["numeric_features"], result.info["categorical_features"]
    analysed = (f"{n:,} buying customers" + (f" as of {result.as_of}" if result.as_of else "")
                + f", clustered with {method} on {len(num)} numeric"
                + (f" and {len(cat)} categorical" if cat else "") + f" features (feature set "
                f"'{result.feature_set}'). Number of clusters: {result.reason}")
    fitted_on = int(result.info.get("fitted_on", n))
    if fitted_on < n:
        analysed += (f" The model was fitted on a seeded sample of {fitted_on:,} of the {n:,} customers "
                     "(clustering.fit_sample) and assigns every customer.")
    if result.info.get("not_clustered"):
        analysed += f" {result.info['not_clustered']:,} customers without a purchase are not clustered."
    findings = []
    big = prof.sort_values(["customers", "cluster_no"], ascending=[False, True]).iloc[0]
    small = prof.sort_values(["customers", "cluster_no"], ascending=[True, True]).iloc[0]
    findings.append(f"{result.k} clusters; the largest is '{big['cluster_name']}' ({_pct(big['share'])} of "
                    f"customers), the smallest '{small['cluster_name']}' ({_pct(small['share'])}).")
    if "revenue_share" in prof.columns and prof["revenue_share"].notna().any():
        top = prof.sort_values(["revenue_share", "cluster_no"], ascending=[False, True]).iloc[0]
        findings.append(f"'{top['cluster_name']}' are {_pct(top['share'])} of customers but bring "
                        f"{_pct(top['revenue_share'])} of net revenue; its strongest difference: "
                        f"{_strongest_lift(result, int(top['cluster_no']))}.")
    sil = result.silhouette
    if pd.notna(sil):
        strength = "strong" if sil >= 0.5 else "reasonable" if sil >= 0.25 else "weak"
        findings.append(f"Separation is {strength}: silhouette {sil:.2f} at k = {result.k} (1 = perfectly "
                        "separated, 0 = overlapping).")
    st = result.stability
    if st.runs:
        findings.append(f"The clusters are {'stable' if st.stable else 'NOT stable'}: {st.runs} refits on "
                        f"{_pct(float(result.settings.stability['sample_fraction']))} subsamples agree with a mean "
                        f"adjusted Rand index of {st.mean_ari:.3f} (± {st.std_ari:.3f}; threshold {st.threshold:.2f}).")
    actions = []
    ct = result.rfm_crosstab
    if ct is not None and len(ct):
        seg_cols = [c for c in ct.columns if c not in ("cluster", "cluster_name", "customers")]
        dom = ct.set_index("cluster_name")[seg_cols]
        best = dom.max(axis=1).sort_values(ascending=False, kind="stable")
        name = best.index[0]
        findings.append(f"'{name}' is the cluster most tied to one RFM segment: {_pct(best.iloc[0])} of it "
                        f"is '{dom.loc[name].idxmax()}'.")
        plans = result.info.get("rfm_actions", {})
        by_name = prof.set_index("cluster_name")
        order = prof.sort_values(["revenue_share" if "revenue_share" in prof else "customers", "cluster_no"],
                                 ascending=[False, True])
        min_share = float(result.settings.raw.get("segment_action_min_share", 0.75))
        for cname, number in zip(order["cluster_name"], order["cluster_no"]):
            seg = dom.loc[cname].idxmax()
            share = float(dom.loc[cname, seg])
            size = f"'{cname}' ({int(by_name.loc[cname, 'customers']):,} customers"
            trait = f"Shape the offer around what sets them apart: {_strongest_lift(result, int(number))}."
            own = "use each customer's own RFM action within the cluster"
            if share >= min_share:
                plan = plans.get(seg, f"the '{seg}' plan of the RFM notebook")
                actions.append(f"{size}; {_pct(share)} of them RFM '{seg}'): {plan.rstrip('.')}. {trait}")
            elif share > 0.5:  # a majority, but one segment's plan would still mis-target many of them
                actions.append(f"{size}; mostly RFM '{seg}' ({_pct(share)}), under the {_pct(min_share)} needed for "
                               f"one plan): {own}. {trait}")
            else:
                actions.append(f"{size}; mixed RFM segments, largest '{seg}' at {_pct(share)}): {own}. {trait}")
    if not st.stable and st.runs:
        actions.insert(0, "Treat these clusters as exploratory until they are stable: try another k or "
                          "feature set in the explorer below before building campaigns on them.")
    actions.append("Score new customers each month with the fitted clustering model so segments "
                   "stay comparable over time.")
    headlines = {"Customers clustered": n, "Clusters": int(result.k),
                 "Silhouette": None if pd.isna(sil) else round(float(sil), 2),
                 "Stability (mean ARI)": None if not st.runs else round(float(st.mean_ari), 2)}
    return {"title": "Customer clusters", "analysed": analysed, "findings": findings[:5],
            "actions": actions, "headlines": headlines, "warnings": list(result.warnings)}


# =============================================================================== explorer
def view_choices(result: ClusterResult) -> dict[str, tuple[int, str]]:
    """Choices of the explorer widget: every k tried with the chosen feature set, and the
    chosen k with every other feature set (label → ``(k, feature_set)``)."""
    ks = list(result.selection["k"]) if len(result.selection) else [result.k]
    choices = {f"k = {k}, {result.feature_set}" + (" (chosen)" if k == result.k else ""): (int(k), result.feature_set)
               for k in ks}
    for fs in result.settings.feature_sets:
        if fs != result.feature_set:
            choices[f"k = {result.k}, {fs}"] = (int(result.k), fs)
    return choices


def cluster_view(result: ClusterResult, k: int, feature_set: str) -> pd.DataFrame:
    """What the explorer shows for one choice: the clusters with ``k`` clusters on ``feature_set``.

    The choice of the notebook (``result.k`` on ``result.feature_set``) shows the main result's
    own profiles, so the explorer never contradicts the tables above it. Any other choice is a
    quick look: no comparison of k, no stability refits, no projection; the model is fitted on
    the seeded sample of ``selection.sample_size`` customers that the comparison of k uses, with
    ``selection.n_init`` restarts, and assigns every customer (:func:`cluster_customers` with
    ``fit_sample``). Settings, method and seed are the result's.

    Returns
    -------
    DataFrame
        One row per cluster: ``cluster, cluster_name, customers, share`` and the mean of
        recency, frequency, net revenue and average order value (those present).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"customer_id": [f"c{i}" for i in range(60)],
    ...                   "recency_days": np.r_[rng.integers(1, 30, 30), rng.integers(200, 400, 30)],
    ...                   "frequency": np.r_[rng.integers(5, 9, 30), np.ones(30, int)],
    ...                   "monetary_total": np.r_[rng.uniform(500, 900, 30), rng.uniform(10, 40, 30)]})
    >>> result = cluster_customers(t, seed=0, feature_set="rfm", k=2, run_selection=False, run_stability=False)
    >>> cluster_view(result, 3, "rfm")["customers"].tolist()
    [30, 25, 5]
    >>> cluster_view(result, 2, "rfm").equals(cluster_view(result, result.k, result.feature_set))
    True
    """
    if (int(k), feature_set) == (int(result.k), result.feature_set):
        profiles = result.profiles
    else:
        s = result.settings
        # the comparison of k fitted this very model (same sample, seed and restarts): reuse it
        fitted = result.selection_models.get(int(k)) if feature_set == result.feature_set else None
        profiles = cluster_customers(result.table, s, result.seed, feature_set=feature_set, k=int(k),
                                     run_selection=False, run_stability=False, run_projection=False,
                                     fit_sample=s.selection.get("sample_size"),
                                     n_init=s.selection.get("n_init"), estimator=fitted).profiles
    cols = [c for c in ("recency_days", "frequency", "monetary_total", "aov") if c in profiles.columns]
    out = profiles[profiles["cluster"] != "All customers"]
    return out[["cluster", "cluster_name", "customers", "share", *cols]].reset_index(drop=True)
