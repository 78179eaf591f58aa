"""Step 03 (`notebooks/03_clustering.ipynb`): the producer :func:`build_cluster_artifacts`, the
explorer's views and the texts of the summary (:func:`summarize`), built from a
:class:`segkit.cluster.ClusterResult`.

With ``engine.kind: spark`` the customer table stays a Spark DataFrame (:func:`spark_customer_table`) and
the driver holds only bounded things (:func:`build_cluster_artifacts_on_spark`): the model fitted from the
seeded samples and the table's summaries, the clusters' tally merged over the partitions
(:class:`segkit.cluster.ClusterTally`: profiles, lifts, categorical profiles, the heatmap's means, the RFM
crosstab), exact medians for the names, the samples' rows for the stability refits and the projection, and
the explorer's quick looks (fitted from the same samples, profiled over every customer: :func:`cluster_view`).
Spark labels every customer and writes ``clusters.parquet`` (:func:`write_spark_clusters`).
What the notebook shows is the DuckDB run's (``tests/test_spark_pipeline.py``).

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_cluster_artifacts(open_run("03_clustering"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from segkit.cluster import (
    ClusterFit,
    ClusterResult,
    ClusterSettings,
    ClusterTally,
    SegmentModel,
    cluster_customers,
    cluster_model_dict,
    clusters_frame,
    numeric_columns,
    segment_crosstab,
)
from segkit.core.errors import DataError, UpstreamMissingError
from segkit.core.labels import feature_label
from segkit.data.spark import frame_for_arrow
from segkit.features import CUSTOMER_COLUMN_ORDER, customer_table
from segkit.steps.sources import behaviour_for, spark_sample_error
from segkit.steps.spark_scoring import scores_on_spark, write_run_segments

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame

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
    if scores_on_spark(ctx):  # the customer table stays on the executors
        return build_cluster_artifacts_on_spark(ctx, settings)
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
    as typed in the data). Read from the clusters' tally over every customer (:attr:`ClusterResult.tally`),
    so the same on Spark, where the driver holds only a sample of the features."""
    z = result.tally.standardised.copy()
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
    return choices_of(result.selection, result.k, result.feature_set, result.settings)


def choices_of(selection: pd.DataFrame, k: int, feature_set: str, settings: ClusterSettings) -> dict[str, tuple[int, str]]:
    """:func:`view_choices` of a clustering's comparison of k (``selection``), chosen ``k`` and ``feature_set``
    (what a :class:`segkit.cluster.ClusterFit` knows before the customers are labelled)."""
    ks = list(selection["k"]) if len(selection) else [k]
    choices = {f"k = {kk}, {feature_set}" + (" (chosen)" if kk == k else ""): (int(kk), feature_set) for kk in ks}
    for fs in settings.feature_sets:
        if fs != feature_set:
            choices[f"k = {k}, {fs}"] = (int(k), fs)
    return choices


def cluster_view(result: ClusterResult, k: int, feature_set: str) -> pd.DataFrame:
    """What the explorer shows for one choice: the clusters with ``k`` clusters on ``feature_set``.

    The choice of the notebook (``result.k`` on ``result.feature_set``) shows the main result's
    own profiles, so the explorer never contradicts the tables above it. Any other choice is a
    quick look: no comparison of k, no stability refits, no projection; the model is fitted on
    the seeded sample of ``selection.sample_size`` customers that the comparison of k uses, with
    ``selection.n_init`` restarts, and assigns every customer (:func:`cluster_customers` with
    ``fit_sample``). Settings, method and seed are the result's. On ``engine.kind: spark`` the quick looks of
    every choice of :func:`view_choices` were fitted the same way and profiled over every customer by Spark
    with the result (:attr:`segkit.cluster.ClusterResult.views`, :func:`spark_cluster_result`).

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
    elif result.views is not None:  # engine.kind spark: computed over every customer with the result
        if (int(k), feature_set) not in result.views:
            raise ValueError(f"cluster_view: k = {k} with {feature_set!r} is not among the explorer's choices "
                             f"(view_choices), which are all that a Spark run computes.")
        profiles = result.views[(int(k), feature_set)]
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


# =============================================================================== engine.kind: spark
#: Range partitions of the Spark passes of notebook 03 (None: the session's spark.sql.shuffle.partitions).
SPARK_PARTITIONS: int | None = None


def _spark_type(dtype: Any) -> str:
    """The Spark SQL type of a pandas column dtype of the customer table (text, whole number, float, flag)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    return "string"


#: The pandas dtype of each Spark SQL type of :func:`_spark_type` (a column a partition lacks, made as the others have it).
_PANDAS_TYPES = {"boolean": "boolean", "bigint": "int64", "double": "float64", "string": "string"}


def _ddl(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in columns)


def _merged_columns(parts: Sequence[Sequence[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The union of the partitions' columns (name, Spark type) in the order :func:`segkit.features.customer_table`
    makes them on the whole table: the behaviour and channel columns (the same in every partition) in their
    order, then the campaign and attribute columns a partition may lack (no campaign row, no value of an
    attribute) in :data:`segkit.features.CUSTOMER_COLUMN_ORDER`. A column's type is the first partition's
    that has it.

    Examples
    --------
    >>> bucket_a = [("customer_id", "string"), ("frequency", "bigint"), ("country", "string")]
    >>> bucket_b = [("customer_id", "string"), ("frequency", "bigint"), ("region", "string")]
    >>> [name for name, _ in _merged_columns([bucket_b, bucket_a])]
    ['customer_id', 'frequency', 'country', 'region']
    """
    kinds: dict[str, str] = {}
    for columns in parts:
        for name, kind in columns:
            kinds.setdefault(name, kind)
    added = [name for name in CUSTOMER_COLUMN_ORDER if name in kinds]
    return [(name, kinds[name]) for name in [*(n for n in kinds if n not in added), *added]]


def spark_customer_table(ctx: Any, settings: ClusterSettings, *, day: pd.Timestamp | None = None,
                         buyers: "SparkFrame | None" = None,
                         campaign: "SparkFrame | None | bool" = True,
                         control_arm: "str | None | bool" = True) -> tuple["SparkFrame", dict]:
    """The customer table notebook 03 clusters, as a Spark DataFrame that stays on the executors.

    The same rows, columns and values as :func:`run_customer_table`. Spark joins ``rfm.parquet`` with the
    relational core's :data:`~segkit.data.relational.BEHAVIOUR` (:meth:`segkit.data.spark.SparkLines.frame`)
    and, by a full outer join, with every customer of ``customers_clean.parquet`` (buyers or not); the
    :data:`~segkit.data.relational.CHANNEL_ORDERS` rows and the campaign rows are brought to the same hash
    bucket of ``customer_id``. Every bucket then runs segkit's own pandas functions:
    :func:`segkit.data.relational.channel_counts` (the channels of :func:`~segkit.data.relational.channel_columns`
    over every customer, the rest as ``other``), :func:`segkit.data.relational.behaviour_rows` and
    :func:`segkit.features.customer_table`. Which columns exist is decided as pandas decides it on the whole
    inputs: a first pass gives each bucket's column names (a few bytes; a bucket of customers without a
    purchase counts, so an attribute or a campaign row held only by non-buyers makes its column as in the
    DuckDB run), and every bucket returns that fixed list (``emails_received`` 0 where a bucket had no
    e-mail, else empty).

    ``day``, ``buyers`` and ``campaign`` build the table as of another day (notebook 05's cluster names at each
    send, :func:`segkit.steps.spark_campaign.cluster_names_on_spark`): the analysis date, the buyers' RFM columns
    as of it (instead of ``rfm.parquet``) and the campaign rows to count (a Spark frame, or None for none;
    default ``True``: ``campaign_clean.parquet``, all of it); ``control_arm``: the arm whose rows are not e-mails
    (default ``True``: the ``campaign`` section's, None when ``control_is_holdout`` is false).

    Returns
    -------
    frame : pyspark.sql.DataFrame
        One row per buying customer, persisted on the executors (unpersist it when done).
    attrs : dict
        The table's ``attrs``: ``as_of`` and ``original_values`` (channel share column → channel as typed).

    Raises
    ------
    UpstreamMissingError
        ``customers_clean.parquet`` or ``rfm.parquet`` is missing (naming the notebook to run).
    DataError
        ``rfm.parquet`` lists no buying customer.
    """
    from pyspark.sql import functions as F

    from segkit.core.dates import day_after, parse_as_of
    from segkit.core.labels import value_columns
    from segkit.data.relational import (BEHAVIOUR, CHANNEL_ORDERS, LINE_DETAILS, behaviour_rows, channel_columns,
                                        channel_counts, last_order_date)
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.steps.sources import run_lines

    for name, notebook in (("customers_clean.parquet", "01_data_audit"), ("rfm.parquet", "02_rfm")):
        if not (ctx.artifacts_dir / name).exists() and (name != "rfm.parquet" or buyers is None):
            raise UpstreamMissingError(f"03_clustering on Spark reads artifacts/{name}, which is missing. Run "
                                       f"{notebook} with engine.kind: spark first (segkit run --only {notebook} "
                                       f"--out {ctx.run_dir}).")
    lines = run_lines(ctx).lines()
    as_of = (pd.Timestamp(day) if day is not None else parse_as_of(ctx.as_of) if ctx.as_of is not None
             else day_after(last_order_date(lines)))
    params = {"as_of": as_of.to_pydatetime()}
    has_category, has_channel = lines.first_row(LINE_DETAILS, params)
    read, art = lines.session.read, ctx.artifacts_dir
    max_channels = int(settings.max_channels)
    rfm_columns = ["recency_days", "frequency", "monetary_total", "tenure_days"]
    buyers = (read.parquet(str(art / "rfm.parquet")) if buyers is None else buyers).select("customer_id", *rfm_columns)
    whole_numbers = [f.name for f in buyers.schema.fields if f.dataType.typeName() in ("long", "integer", "short",
                                                                                        "byte")]
    buyers = buyers.join(lines.frame(BEHAVIOUR, params), "customer_id", "left").withColumn("__buyer", F.lit(True))
    customers = read.parquet(str(art / "customers_clean.parquet"))
    customer_columns = [c for c in customers.columns if c != "customer_id"]
    people = customers.select("customer_id", *[F.col(f"`{c}`").alias(f"__customer_{c}") for c in customer_columns],
                              F.lit(True).alias("__person"))
    rows = buyers.join(people, "customer_id", "full_outer").withColumn("__kind", F.lit("customer"))
    channels: list[str] | None = None
    if has_channel:
        long = lines.frame(CHANNEL_ORDERS, params)
        with pandas_warnings_quiet():
            totals = long.groupBy("channel").agg(F.sum("n").alias("n")).toPandas()
        channels = channel_columns(totals.set_index("channel")["n"], max_channels)
        rows = rows.unionByName(long.select("customer_id", F.col("channel").alias("__channel"),
                                            F.col("n").alias("__n"), F.lit("channel").alias("__kind")),
                                allowMissingColumns=True)
    campaign_path = art / "campaign_clean.parquet"
    if campaign is True:
        campaign = read.parquet(str(campaign_path)) if campaign_path.exists() else None
    camp = ctx.section("campaign")
    control = (camp.get("control_arm", "control") if camp.get("control_is_holdout", True) else None) \
        if control_arm is True else control_arm
    buckets = SPARK_PARTITIONS or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    bucket = F.pmod(F.hash("customer_id"), F.lit(buckets)).alias("__bucket")
    as_of_text = str(as_of)

    def table_of(rows: pd.DataFrame, campaign_rows: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
        """The bucket's customer table and its buyers."""
        kind = rows["__kind"].to_numpy()
        counts = None
        if channels is not None:
            long = rows.loc[kind == "channel", ["customer_id", "__channel", "__n"]]
            counts = channel_counts(long.set_axis(["customer_id", "channel", "n"], axis=1), channels)
        found = rows.loc[kind == "customer"]
        bought = found.loc[found["__buyer"].notna().to_numpy()]
        bought = bought.astype({c: "int64" for c in whole_numbers if bought[c].notna().all()})  # as rfm.parquet
        behaviour = behaviour_rows(bought, bought, counts, channels, bool(has_category))
        behaviour.attrs["as_of"] = as_of_text
        known = found.loc[found["__person"].notna().to_numpy()]
        people = known[["customer_id", *[f"__customer_{c}" for c in customer_columns]]].set_axis(
            ["customer_id", *customer_columns], axis=1)
        if campaign_rows is not None:
            campaign_rows = campaign_rows.drop(columns="__bucket")
        return customer_table(None, people, campaign_rows, as_of_text, control_arm=control,
                              max_channels=max_channels, behaviour=behaviour), len(bought)

    left = rows.select("*", bucket).groupBy("__bucket")
    grouped = (left.cogroup(campaign.select("*", bucket).groupBy("__bucket")) if campaign is not None else left)

    def per_bucket(make: Any) -> Any:
        """``make(rows, campaign_rows)`` with the arity Spark asks of a (co)grouped pandas function."""
        if campaign is not None:
            def both(rows: pd.DataFrame, campaign_rows: pd.DataFrame) -> pd.DataFrame:
                return frame_for_arrow(make(rows, campaign_rows))
            return both

        def alone(rows: pd.DataFrame) -> pd.DataFrame:
            return frame_for_arrow(make(rows, None))
        return alone

    row_columns = [*rows.columns, "__bucket"]

    def names(rows: pd.DataFrame, campaign_rows: pd.DataFrame | None) -> pd.DataFrame:
        if rows.empty:  # a bucket of campaign rows only (customers neither in customers_clean nor buyers)
            rows = pd.DataFrame({c: pd.Series([], dtype=object) for c in row_columns})
        table, bought = table_of(rows, campaign_rows)
        return pd.DataFrame({"columns": [json.dumps([[c, _spark_type(table[c].dtype)] for c in table.columns])],
                             "buyers": [bought]})

    with pandas_warnings_quiet():
        found = grouped.applyInPandas(per_bucket(names), "columns string, buyers bigint").collect()
    if not sum(int(row["buyers"]) for row in found):
        raise DataError("No buying customer to cluster: rfm.parquet lists none. Re-run 02_rfm on this run.")
    # the types of buckets with buyers first: a bucket of non-buyers only types the behaviour columns from no row
    found = sorted(found, key=lambda row: int(row["buyers"]) == 0)
    schema = _merged_columns([[tuple(c) for c in json.loads(row["columns"])] for row in found])
    order = [name for name, _ in schema]

    dtypes = {name: _PANDAS_TYPES[kind] for name, kind in schema}

    def rows_of(rows: pd.DataFrame, campaign_rows: pd.DataFrame | None) -> pd.DataFrame:
        if rows.empty:
            return pd.DataFrame({name: pd.Series([], dtype=dtypes[name]) for name in order})
        table = table_of(rows, campaign_rows)[0]
        if "emails_received" in order and "emails_received" not in table.columns:
            table["emails_received"] = np.zeros(len(table), dtype="int64")  # no e-mail delivered in this bucket
        absent = [name for name in order if name not in table.columns]  # as the other buckets type them
        return table.reindex(columns=order).astype({name: dtypes[name] for name in absent})

    with pandas_warnings_quiet():
        table = grouped.applyInPandas(per_bucket(rows_of), _ddl(schema)).persist()
    originals = value_columns("channel_share_", channels) if channels is not None else {}
    return table, {"as_of": str(as_of.date()), "original_values": dict(originals)}


def _tally_parts(frame: "SparkFrame", part: Any, merge: Any) -> list[str]:
    """``part(batch)`` (a JSON text) of every Arrow batch of ``frame``, merged per partition on the executor
    (``merge(texts)`` → one text) and collected: one text of a few kB per partition, whatever the customers."""
    from segkit.data.spark import pandas_warnings_quiet

    def run(batches: Any) -> Any:
        texts = [part(batch) for batch in batches if len(batch)]
        if texts:
            yield frame_for_arrow(pd.DataFrame({"part": [merge(texts)]}))

    with pandas_warnings_quiet():
        return [row["part"] for row in frame.mapInPandas(run, "part string").collect()]


def _raw_model(fit: ClusterFit) -> SegmentModel:
    """The fitted estimator as a :class:`SegmentModel` that numbers the clusters by raw label (1 + label)."""
    k = int(fit.k)
    return SegmentModel(fit.builder, fit.estimator, np.arange(1, k + 1), {c: str(c) for c in range(1, k + 1)})


def spark_cluster_aggregates(frame: "SparkFrame", fits: Sequence[ClusterFit],
                             ) -> list[tuple[np.ndarray, ClusterTally, pd.DataFrame]]:
    """For each fit, what the notebook shows about its clusters over every customer of a Spark table:
    the cluster numbers, the :class:`segkit.cluster.ClusterTally` and the naming scores.

    Three Spark passes whatever the number of fits (the main clustering and the explorer's quick looks), each
    labelling every customer per partition with every fit (:func:`segkit.steps.spark_scoring.cluster_labels`;
    the models travel as their JSON): the customers per raw label give the cluster numbers
    (:func:`segkit.cluster.order_by_counts`); each partition's :func:`segkit.cluster.cluster_tally` merged on
    the driver gives the profiles, lifts, categorical profiles and the heatmap's means; the medians the names
    read are exact order statistics (:func:`segkit.data.spark_ranks.value_distributions`) given to
    :func:`segkit.cluster.naming_scores_from`.

    Returns
    -------
    list of (numbers, tally, scores)
        Per fit: cluster number of each raw label, the tally, :func:`segkit.cluster.naming_scores_from`.
    """
    from segkit.cluster import ClusterTally, cluster_tally, model_features, naming_scores_from, order_by_counts
    from segkit.data.distribution import DistributionNeeds
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import value_distributions
    from segkit.steps.spark_scoring import cluster_labels

    ks = [int(fit.k) for fit in fits]
    raw_texts = json.dumps([_raw_model(fit).to_dict() for fit in fits])

    def raw_counts(batch: pd.DataFrame) -> str:
        models = [SegmentModel.from_dict(m) for m in json.loads(raw_texts)]
        return json.dumps([np.bincount(np.asarray(cluster_labels(model, batch)[0]) - 1, minlength=k).tolist()
                           for model, k in zip(models, ks)])

    def add_counts(texts: list[str]) -> str:
        parts = [json.loads(t) for t in texts]
        return json.dumps([np.sum([part[i] for part in parts], axis=0).tolist() for i in range(len(ks))])

    counts = json.loads(add_counts(_tally_parts(frame, raw_counts, add_counts)))
    numbers = [order_by_counts(np.asarray(c)) for c in counts]
    numbered_texts = json.dumps([SegmentModel(fit.builder, fit.estimator, number,
                                              {c: str(c) for c in range(1, k + 1)}).to_dict()
                                 for fit, number, k in zip(fits, numbers, ks)])
    methods = [fit.method for fit in fits]

    def labelled(batch: pd.DataFrame) -> list[tuple[SegmentModel, np.ndarray, pd.DataFrame, pd.DataFrame]]:
        out = []
        for data, method in zip(json.loads(numbered_texts), methods):
            model = SegmentModel.from_dict(data)
            clusters, _ = cluster_labels(model, batch)
            X = model_features(model.builder, batch, method)
            numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
            observed = batch[[c for c in numeric if c in batch.columns]].notna().set_axis(X.index)
            out.append((model, np.asarray(clusters), X[numeric], observed))
        return out

    def tally_part(batch: pd.DataFrame) -> str:
        revenue = batch["monetary_total"].to_numpy() if "monetary_total" in batch.columns else None
        return json.dumps([cluster_tally(model.builder.imputed(batch), clusters, model.builder.numeric_features_,
                                         model.builder.categorical_features_, revenue, features=X,
                                         observed=observed).to_json()
                           for model, clusters, X, observed in labelled(batch)])

    def merge_tallies(texts: list[str]) -> str:
        parts = [json.loads(t) for t in texts]
        return json.dumps([ClusterTally.merge([ClusterTally.from_json(part[i]) for part in parts]).to_json()
                           for i in range(len(ks))])

    tallies = [ClusterTally.from_json(t) for t in json.loads(merge_tallies(_tally_parts(frame, tally_part,
                                                                                        merge_tallies)))]
    # one column of values per (fit, feature, cluster or None = every customer): its median is a naming input
    masked_columns = [(i, f, c) for i, tally in enumerate(tallies)
                      for f in tally.standardised.columns for c in [None, *[int(k) for k in tally.counts.index]]]

    def masked(batches: Any) -> Any:
        for batch in batches:
            if not len(batch):
                continue
            seen = []
            for _, clusters, X, observed in labelled(batch):
                numeric = list(X.columns)
                seen.append((X.where(pd.DataFrame({f: observed[f] if f in observed.columns else True for f in numeric},
                                                  index=X.index)), clusters))
            yield frame_for_arrow(pd.DataFrame({
                f"m{j}": (seen[i][0][f] if c is None else seen[i][0][f].where(seen[i][1] == c)).to_numpy()
                for j, (i, f, c) in enumerate(masked_columns)}))

    with pandas_warnings_quiet():
        values = frame.mapInPandas(masked, _ddl([(f"m{j}", "double") for j in range(len(masked_columns))]))
        medians = value_distributions(values, {f"m{j}": DistributionNeeds(median=True)
                                               for j in range(len(masked_columns))}, SPARK_PARTITIONS, missing="skip")
    median = {col: (medians[f"m{j}"].median() if medians[f"m{j}"].n else np.nan)
              for j, col in enumerate(masked_columns)}
    out = []
    for i, (number, tally) in enumerate(zip(numbers, tallies)):
        numeric = list(tally.standardised.columns)
        keys = [int(c) for c in tally.counts.index]
        base = pd.Series({f: median[(i, f, None)] for f in numeric}, dtype="float64")
        cluster_medians = pd.DataFrame({f: [median[(i, f, c)] for c in keys] for f in numeric}, index=keys)
        out.append((number, tally, naming_scores_from(cluster_medians, base, tally.observed, tally.counts)))
    return out


def spark_cluster_result(ctx: Any, frame: "SparkFrame", attrs: dict, settings: ClusterSettings,
                         seed: int) -> ClusterResult:
    """Notebook 03's clustering of a Spark customer table, with only bounded things on the driver.

    The model is fitted from the seeded sample (:func:`segkit.data.spark_sample.customer_sample` at
    :func:`segkit.cluster.plan_positions`) and the whole table's summaries
    (:class:`segkit.data.spark_sample.SparkSummaries`) by :func:`segkit.cluster.fit_cluster_model`; so is
    each quick look of the explorer (:func:`view_choices`), from the same sample's rows at the positions the
    one-machine quick look uses (the ``selection`` sample). Spark then labels every customer with every model
    and tallies them (:func:`spark_cluster_aggregates`): the result's tables, and ``result.views`` (the quick
    looks' profiles, :func:`cluster_view`), are over every customer. Stability and projection use their seeded
    samples' rows (held by the driver). ``result.table``/``features``/``assignments`` are the sample's rows.

    Raises
    ------
    ConfigError
        ``clustering.fit_sample`` is null: the fit would collect every customer.
    """
    from segkit.cluster import cluster_result, fit_cluster_model, plan_positions, projection, sample_plan, stability
    from segkit.data.spark_sample import SparkSummaries, customer_sample

    s = settings
    if s.raw.get("fit_sample") is None:  # refused before the first notebook too (sources.check_engine)
        raise spark_sample_error("clustering", "fit_sample")
    n = int(frame.count())
    plan = sample_plan(n, s, seed)
    sample = customer_sample(frame, plan_positions(plan), n, attrs, SPARK_PARTITIONS)
    summaries = SparkSummaries(frame, attrs, SPARK_PARTITIONS)
    fit = fit_cluster_model(sample, summaries, s, seed)
    builders = {fit.feature_set: fit.builder}
    looks: dict[tuple[int, str], ClusterFit] = {}
    for k, feature_set in choices_of(fit.selection, fit.k, fit.feature_set, s).values():
        if (k, feature_set) == (int(fit.k), fit.feature_set):
            continue
        if feature_set not in builders:
            builders[feature_set] = s.builder(feature_set).fit_summaries(summaries)
        # as cluster_view on one machine: the selection sample's customers, the comparison's model when it has one
        looks[(k, feature_set)] = fit_cluster_model(
            sample, summaries, s, seed, feature_set=feature_set, k=k, run_selection=False,
            n_init=s.selection.get("n_init"), fit_sample=s.selection.get("sample_size"),
            estimator=fit.selection_models.get(k) if feature_set == fit.feature_set else None,
            builder=builders[feature_set])
    aggregates = spark_cluster_aggregates(frame, [fit, *looks.values()])
    numbers, tally, scores = aggregates[0]
    X = fit.features
    clusters = numbers[fit.estimator.predict(X)]  # the sample's customers, labelled as Spark labels them
    at = {name: sample.locate(plan[name]) for name in ("stability", "projection")}
    gamma = float(fit.estimator.gamma_) if fit.method == "kprototypes" else None
    stab = stability(X.iloc[at["stability"]], int(fit.k), fit.method, seed, clusters[at["stability"]], s, customers=n)
    proj = projection(X.iloc[at["projection"]], clusters[at["projection"]], gamma, seed, int(s.projection_sample),
                      customers=n)
    ids = sample.rows["customer_id"].astype("string").to_numpy()
    result = cluster_result(fit, s, seed, numbers, tally, scores, table=sample.rows, features=X, ids=ids,
                            clusters=clusters, stab=stab, proj=proj)
    result.views = {}
    for (choice, look), (look_numbers, look_tally, look_scores) in zip(looks.items(), aggregates[1:]):
        look_clusters = look_numbers[look.estimator.predict(look.features)]
        result.views[choice] = cluster_result(
            look, s, seed, look_numbers, look_tally, look_scores, table=sample.rows, features=look.features,
            ids=ids, clusters=look_clusters, stab=None, proj=pd.DataFrame()).profiles
    return result


def _labelled_rows(frame: "SparkFrame", model: SegmentModel, make: Any, ddl: str) -> "SparkFrame":
    """``make(batch, clusters, names)`` of every Arrow batch of ``frame``, each labelled on the executors by
    ``model`` (:func:`segkit.steps.spark_scoring.cluster_labels`; the model travels as its JSON)."""
    from segkit.steps.spark_scoring import cluster_labels

    text = json.dumps(model.to_dict())

    def run(batches: Any) -> Any:
        here = SegmentModel.from_dict(json.loads(text))
        for batch in batches:
            if len(batch):
                clusters, names = cluster_labels(here, batch)
                yield frame_for_arrow(make(batch, np.asarray(clusters, dtype="int64"), names))

    return frame.mapInPandas(run, ddl)


def spark_segment_crosstab(ctx: Any, frame: "SparkFrame", result: ClusterResult) -> pd.DataFrame:
    """:func:`segkit.cluster.segment_crosstab` of every customer on Spark: each partition's
    :func:`segkit.cluster.segment_counts` (the customers joined with ``rfm.parquet``'s segment by Spark)
    merged on the driver (:meth:`segkit.cluster.ClusterTally.merge`) and read by :func:`segment_shares`."""
    from pyspark.sql import functions as F

    from segkit.cluster import ClusterTally, cluster_tally, segment_shares
    from segkit.data.spark import pandas_warnings_quiet

    rfm = frame.sparkSession.read.parquet(str(ctx.artifacts_dir / "rfm.parquet"))
    if "rfm_segment" not in rfm.columns:
        raise DataError("The RFM table has no column 'rfm_segment'; re-run 02_rfm to rebuild artifacts/rfm.parquet.")
    joined = frame.join(rfm.select("customer_id", F.col("rfm_segment").alias("__rfm_segment")), "customer_id", "left")

    def part(batch: pd.DataFrame, clusters: np.ndarray, names: list[str]) -> pd.DataFrame:
        labelled = pd.DataFrame({"cluster": clusters, "cluster_name": pd.array(names, dtype="string"),
                                 "rfm_segment": batch["__rfm_segment"].to_numpy()})
        tally = cluster_tally(pd.DataFrame(index=batch.index), clusters, [], segments=labelled)
        return pd.DataFrame({"part": [tally.to_json()]})

    with pandas_warnings_quiet():
        texts = [row["part"] for row in _labelled_rows(joined, result.model, part, "part string").collect()]
    counts = ClusterTally.merge([ClusterTally.from_json(t) for t in texts]).segments
    return segment_shares(counts)


def write_spark_clusters(ctx: Any, frame: "SparkFrame", result: ClusterResult) -> Path:
    """``artifacts/clusters.parquet`` of every customer, labelled on the executors and written by Spark.

    Each partition's rows are :func:`segkit.cluster.cluster_rows` of the customers Spark labelled
    (:func:`segkit.steps.spark_scoring.cluster_labels`) and their filled features; Spark writes one Parquet
    part per range of ``customer_id`` (sorted within), and the driver appends the parts in order, batch by
    batch, into the single file the DuckDB run writes (same columns, dtypes and row order;
    :func:`segkit.core.files.copy_parquet_parts`): the driver holds one batch at a time, never the table.
    """
    from segkit.cluster import cluster_rows, clusters_frame
    from segkit.core.files import copy_parquet_parts, publish_parquet_parts
    from segkit.data.spark import pandas_warnings_quiet

    like = clusters_frame(result)  # the sample's rows: the columns and dtypes of every part
    dtypes = {c: ("int64" if c == "cluster" else "float64" if pd.api.types.is_numeric_dtype(like[c]) else "string")
              for c in like.columns}
    like = like.astype(dtypes)

    def rows(batch: pd.DataFrame, clusters: np.ndarray, names: list[str]) -> pd.DataFrame:
        assignments = pd.DataFrame({"customer_id": pd.array(batch["customer_id"].astype(str).to_numpy(), dtype="string"),
                                    "cluster": clusters, "cluster_name": pd.array(names, dtype="string")})
        model_values = result.builder.imputed(batch)
        return cluster_rows(assignments, model_values)[list(like.columns)].astype(dtypes)

    count = SPARK_PARTITIONS or int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    ranged = frame.repartitionByRange(count, "customer_id").sortWithinPartitions("customer_id")
    path = ctx.artifact_path("clusters")
    written, parts = path.with_name(f".{path.name}.spark"), path.with_name(f".{path.name}.parts")
    try:
        with pandas_warnings_quiet():
            labelled = _labelled_rows(ranged, result.model, rows,
                                      _ddl([(c, _spark_type(like[c].dtype)) for c in like.columns]))
            labelled.write.mode("overwrite").parquet(str(written))
        copy_parquet_parts(publish_parquet_parts(written, parts), path, dtypes)
    finally:
        for leftover in (written, parts):
            shutil.rmtree(leftover, ignore_errors=True)
    return path


def spark_not_clustered(ctx: Any, frame: "SparkFrame") -> int:
    """Customers of ``customers_clean`` that are not in the customer table (no purchase), counted by Spark."""
    customers = frame.sparkSession.read.parquet(str(ctx.artifacts_dir / "customers_clean.parquet"))
    return int(customers.select("customer_id").join(frame.select("customer_id"), "customer_id", "left_anti").count())


def spark_rfm_actions(ctx: Any, frame: "SparkFrame") -> dict[str, str]:
    """RFM segment → recommended action of ``rfm.parquet`` (one row per segment reaches the driver)."""
    from segkit.data.spark import pandas_warnings_quiet

    rfm = frame.sparkSession.read.parquet(str(ctx.artifacts_dir / "rfm.parquet"))
    if not {"rfm_segment", "recommended_action"} <= set(rfm.columns):
        return {}
    with pandas_warnings_quiet():
        pairs = rfm.select("rfm_segment", "recommended_action").dropna().dropDuplicates(["rfm_segment"]).toPandas()
    return dict(zip(pairs["rfm_segment"].astype(str), pairs["recommended_action"].astype(str)))


def build_cluster_artifacts_on_spark(ctx: Any, settings: ClusterSettings) -> ClusterResult:
    """:func:`build_cluster_artifacts` with ``engine.kind: spark``: the same artifacts and result, the
    per-customer work on the executors (:func:`spark_customer_table`, :func:`spark_cluster_result`,
    :func:`spark_segment_crosstab`, :func:`write_spark_clusters`), ``customer_segments`` written by Spark."""
    from segkit.data.spark import pandas_warnings_quiet

    with pandas_warnings_quiet():  # pyspark's note on pandas 3 as each pandas function is sent (the sample's too)
        frame, attrs = spark_customer_table(ctx, settings)
        try:
            result = spark_cluster_result(ctx, frame, attrs, settings, ctx.seed)
            result.rfm_crosstab = spark_segment_crosstab(ctx, frame, result)
            actions = spark_rfm_actions(ctx, frame)
            if actions:
                result.info["rfm_actions"] = actions
            write_spark_clusters(ctx, frame, result)
            ctx.write_artifact("cluster_model", cluster_model_dict(result))
            result.info["not_clustered"] = spark_not_clustered(ctx, frame)
        finally:
            frame.unpersist()
    write_run_segments(ctx)
    return result
