"""Step 05 (`notebooks/05_campaign_evaluation.ipynb`): the producer :func:`build_campaign_artifacts`
(segment labels at each send from the run's artifacts and models), the notebook's tables and
explorer views, and the texts of its summary (:func:`summarize`), built from a
:class:`segkit.campaign.CampaignResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_campaign_artifacts(open_run("05_campaign_evaluation"))  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from segkit.campaign import (
    ALL_SEGMENTS,
    CORRECTION_LABELS,
    DIMENSION_ARTIFACT,
    DIMENSION_LABELS,
    METRIC_BY_NAME,
    METRICS,
    SEGMENT_DIMENSIONS,
    SRM_BORDERLINE_P,
    UNLABELLED,
    CampaignResult,
    CampaignSettings,
    SampleRatioMismatchWarning,
    evaluate_campaigns,
    p_text,
    segment_labels,
    segments_at_send,
)
from segkit.campaign.evaluate import chosen_dimension, evaluate_parts, label_dimensions
from segkit.campaign.prepare import send_table_of
from segkit.cluster import ClusterSettings, SegmentModel, cluster_customers
from segkit.core.config import load_config
from segkit.core.errors import ConfigError, SegkitError, UpstreamMissingError
from segkit.core.files import parquet_parts
from segkit.data.relational import register_sends
from segkit.lifecycle import LifecycleSettings
from segkit.rfm import RFMSettings
from segkit.steps.cluster import run_customer_table
from segkit.steps.parameters import blame_parameters_cell
from segkit.steps.pipeline import CUSTOMER_SEGMENTS_DATASET
from segkit.steps.sources import send_history_for
from segkit.steps.spark_campaign import (
    campaign_parts_on_spark,
    campaign_rows_on_spark,
    cluster_agreement,
    cluster_agreement_on_spark,
    cluster_names_on_spark,
    release_send_frames,
    send_labels_frame,
    send_labels_on_spark,
)
from segkit.steps.spark_scoring import scores_on_spark

__all__ = ["arm_overview", "arm_table", "build_campaign_artifacts", "campaign_totals", "explorer_choices",
           "lift_view", "srm_reference", "summarize"]


def fitted_cluster_model(ctx: Any) -> tuple[Any, str]:
    """The run's fitted feature + cluster model (notebook 03), and a note on how it was obtained.

    Notebook 03 saves its model as ``artifacts/cluster_model.json`` (plain JSON, no pickle):
    it is loaded with :meth:`segkit.cluster.SegmentModel.from_dict` and checked against
    ``clusters.parquet`` — it labels that file's customers from the feature values stored there
    (:func:`segkit.steps.spark_campaign.cluster_agreement`; on Spark per partition on the executors,
    :func:`~segkit.steps.spark_campaign.cluster_agreement_on_spark`). A run folder without the file (03 run by
    an older segkit), or with a file that cannot be read or used, gets a refit instead
    (:func:`refit_cluster_model`, checked against ``clusters.parquet`` too). The note says which
    path was taken and how many of 03's cluster labels the model reproduces; it is empty when
    the saved model reproduces every label (nothing for the reader to act on), so the report
    only warns about a refit or a disagreement.
    """

    # on Spark the executors check the model against clusters.parquet (a count per partition); read here only when
    # missing (it raises) or for a refit
    clusters = None if scores_on_spark(ctx) and ctx.has_artifact("clusters") else ctx.read_artifact("clusters")
    problem = ""
    if ctx.has_artifact("cluster_model"):
        try:  # a corrupt file: json raises ValueError, from_dict/predict a DataError (also a ValueError)
            model = SegmentModel.from_dict(ctx.read_artifact("cluster_model"))
            agreeing, total = (cluster_agreement(model, clusters) if clusters is not None else
                               cluster_agreement_on_spark(send_history_for(ctx).lines().session,
                                                          str(ctx.artifact_path("clusters")), model))
        except ValueError as exc:
            problem = f"artifacts/cluster_model.json could not be used ({exc})"
        else:
            agree = agreeing / total if total else np.nan
            if agree == 1:
                return model, ""
            note = (f"Cluster model: notebook 03's fitted model (artifacts/cluster_model.json); on the customers of "
                    f"clusters.parquet it reproduces {agree:.1%} of 03's cluster labels. Rerun 03_clustering "
                    "if the run's artifacts come from different runs.")
            return model, note
    model, agree, k = refit_cluster_model(ctx, clusters if clusters is not None else ctx.read_artifact("clusters"))
    why = problem or "this run folder has no artifacts/cluster_model.json (written by 03_clustering)"
    note = (f"Cluster model: {why}, so it was refitted with the same settings, seed and k = {k}; it reproduces "
            f"{agree:.1%} of 03's cluster labels.")
    return model, note


def _share_equal(a: np.ndarray, b: np.ndarray) -> float:
    """Share of positions where two label arrays agree (as text); NaN when empty."""
    return float((pd.Series(a).astype(str).to_numpy() == pd.Series(b).astype(str).to_numpy()).mean()) if len(a) else np.nan


def refit_cluster_model(ctx: Any, clusters: pd.DataFrame) -> tuple[Any, float, int]:
    """Notebook 03's model fitted again exactly as 03 fits it, for run folders without
    ``cluster_model.json``: the same customer table (as of the run's ``as_of``), the
    ``clustering`` settings, the run's seed and the number of clusters in ``clusters``
    (selection and stability refits skipped).

    Returns
    -------
    model, agreement, k
        The :class:`segkit.cluster.SegmentModel`, the share of ``clusters``' customers it gives
        03's cluster name, and k.
    """

    settings = ClusterSettings.from_config(ctx.section("clustering"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = run_customer_table(ctx, settings)[0]
        k = int(pd.Series(clusters["cluster"]).nunique())
        res = cluster_customers(table, settings, ctx.seed, k=k, run_selection=False, run_stability=False,
                                run_projection=False)
    check = res.assignments.merge(clusters[["customer_id", "cluster_name"]].astype({"customer_id": "string"}),
                                  on="customer_id", how="inner")
    agree = _share_equal(check["cluster_name_x"].to_numpy(), check["cluster_name_y"].to_numpy())
    return res.model, agree, k


# ============================================================================ views for the notebook
LIFT_VIEW_COLUMNS: tuple[str, ...] = ("campaign_id", "arm", "segment", "customers", "customers_c", "value",
                                      "value_c", "lift_abs", "lift_ci_low", "lift_ci_high", "p_value", "p_adjusted",
                                      "verdict")


def lift_view(result: CampaignResult, dimension: str, metric: str, brief: bool = False) -> pd.DataFrame:
    """Lift per segment of ``dimension`` for ``metric`` (sent arms), as shown by the explorer.

    ``customers`` / ``customers_c``: customers in the sent and the control arm; ``value`` /
    ``value_c`` their rates (or revenue per recipient); ``smallest_arm`` is the count to pass to
    ``shareable(..., count_column="smallest_arm")`` so that no shown row describes fewer than
    ``min_cell_size`` customers. ``brief`` keeps only campaign, segment, ``smallest_arm``, the
    lift with its interval, the adjusted p-value and the verdict (narrow enough for a report page).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(40)],
    ...                      "arm": ["email", "control"] * 20, "converted": [1, 0, 0, 0] * 10})
    >>> lift_view(evaluate_campaigns(camp), "none", "conversion_rate")[["segment", "lift_abs"]]
             segment  lift_abs
    0  All customers       0.5
    """
    if dimension not in result.by_dimension:
        raise ConfigError(f"No results for segment dimension {dimension!r}; available: "
                          f"{', '.join(result.by_dimension)}.")
    t = result.by_dimension[dimension]
    out = t.loc[t["metric"] == metric, list(LIFT_VIEW_COLUMNS)].reset_index(drop=True)
    out["customers_c"] = out["customers_c"].fillna(0).astype(np.int64)
    out.insert(5, "smallest_arm", np.minimum(out["customers"], out["customers_c"]))
    if brief:
        out = out[["campaign_id", "segment", "smallest_arm", "lift_abs", "lift_ci_low", "lift_ci_high", "p_adjusted",
                   "verdict"]]
    return out


def explorer_choices(result: CampaignResult) -> dict[str, tuple[str, str]]:
    """Explorer menu: ``"<dimension> · <metric label>" -> (dimension, metric)`` for compared metrics.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": ["1", "2"], "arm": ["email", "control"],
    ...                      "converted": [1, 0]})
    >>> list(explorer_choices(evaluate_campaigns(camp)))
    ['none · Conversion rate']
    """
    out = {}
    for dim, t in result.by_dimension.items():
        compared = set(t.loc[t["lift_abs"].notna(), "metric"])
        for m in METRICS:
            if m.name in compared:
                out[f"{dim} · {m.label}"] = (dim, m.name)
    return out


def arm_overview(result: CampaignResult) -> pd.DataFrame:
    """Per campaign × arm × metric (all customers): customers, n, count, value and 95% interval."""
    t = result.table[result.table["segment"] == ALL_SEGMENTS]
    cols = ["campaign_id", "arm", "metric", "customers", "n", "count", "value", "ci_low", "ci_high"]
    return t[cols].reset_index(drop=True)


def arm_table(result: CampaignResult) -> pd.DataFrame:
    """One row per campaign × arm: customers and each metric as ``"value (low–high)"`` text.

    Rates in percent, revenue per recipient in money; empty where the arm has no data for a
    metric (a holdout has no opens).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(40)],
    ...                      "arm": ["email", "control"] * 20, "converted": [1, 0, 0, 0] * 10})
    >>> arm_table(evaluate_campaigns(camp))[["arm", "customers", "Conversion rate"]]
           arm  customers    Conversion rate
    0  control         20    0.0% (0.0–16.1)
    1    email         20  50.0% (29.9–70.1)
    """
    t = arm_overview(result)
    is_rate = t["metric"].map(lambda m: METRIC_BY_NAME[m].kind == "proportion").to_numpy(bool)
    scale = np.where(is_rate, 100.0, 1.0)
    unit = np.where(is_rate, "%", "")
    value = pd.Series(t["value"].to_numpy() * scale).map("{:.1f}".format) + unit
    ci = (pd.Series(t["ci_low"].to_numpy() * scale).map("{:.1f}".format) + "–"
          + pd.Series(t["ci_high"].to_numpy() * scale).map("{:.1f}".format))
    text = (value + " (" + ci + ")").where(t["value"].notna().to_numpy(), "")
    text = text.where(t["ci_low"].notna().to_numpy() | t["value"].isna().to_numpy(), value)
    wide = t.assign(text=text.to_numpy(), label=t["metric"].map(lambda m: METRIC_BY_NAME[m].label))
    out = wide.pivot_table(index=["campaign_id", "arm", "customers"], columns="label", values="text",
                           aggfunc="first", sort=False)
    order = [m.label for m in METRICS if m.label in out.columns]
    out = out[order].reset_index()
    out.columns.name = None
    return out


# ============================================================================ producer and summary
def _load_labels(ctx: Any, segment_by: str, header_only: bool = False) -> tuple[pd.DataFrame | None, list[str]]:
    """``customer_segments.csv`` and warnings about dimensions that could not be built.

    Opened alone (interactive), the notebook first builds every missing segment dimension (RFM,
    clusters, lifecycle), so that the dimensions it offers do not depend on which notebooks
    happened to run before. In a run, the labels are what 02–04 wrote. ``header_only``: no row, only the
    columns (what 05 on Spark reads of it: which dimensions the run has).
    """
    notes: list[str] = []
    if ctx.interactive:
        present = ctx.read_artifact("customer_segments") if ctx.has_artifact("customer_segments") else None
        have = set() if present is None else set(present.columns)
        for dim in SEGMENT_DIMENSIONS:
            if dim in have:
                continue
            try:
                ctx.read_artifact(DIMENSION_ARTIFACT[dim])
            except SegkitError as exc:
                if dim == segment_by:
                    raise
                notes.append(f"Segment dimension {dim} is not available: {exc}")
    if ctx.has_artifact("customer_segments") and header_only:
        wanted = ("customer_id", *SEGMENT_DIMENSIONS)
        return pd.DataFrame(columns=[c for c in segments_header(ctx) if c in wanted]), notes
    if ctx.has_artifact("customer_segments"):  # the id and the dimensions: what labels_at_send reads
        return ctx.read_artifact("customer_segments", columns=["customer_id", *SEGMENT_DIMENSIONS]), notes
    if segment_by not in ("auto", "none"):
        ctx.read_artifact("customer_segments")  # raises UpstreamMissingError naming what to run
    return None, notes


def segments_header(ctx: Any) -> list[str]:
    """The columns of the run's ``customer_segments`` (the CSV's header, else the Parquet dataset's schema)."""
    path = ctx.artifact_path("customer_segments")
    if path.exists():
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.parquet as pq

    return list(pq.read_schema(parquet_parts(ctx.artifacts_dir / CUSTOMER_SEGMENTS_DATASET)[0]).names)


def labels_at_send(ctx: Any, campaign: pd.DataFrame,
                   labels: pd.DataFrame | None) -> tuple[pd.DataFrame | None, list[str]]:
    """Replace the run's segment labels (as of ``as_of``: after the sends) by labels as of each send.

    For every dimension the run has (columns of ``customer_segments.csv``), recipients are
    segmented with data strictly before their campaign's send day (:func:`segments_at_send`):
    RFM refitted at the send with the ``rfm`` settings, the lifecycle stager refitted at the send
    with the ``lifecycle`` settings, and the run's cluster model (:func:`fitted_cluster_model`)
    applied to features as of the send (on Spark: :func:`evaluate_on_spark`).
    """

    if labels is None:
        return None, []
    dims = [d for d in SEGMENT_DIMENSIONS if d in labels.columns]
    model, notes = _cluster_model_of(ctx, dims)
    per_send = _segments_at_send(ctx, campaign, dims, model)
    undated = sorted(set(per_send.loc[(per_send[dims] == UNLABELLED).any(axis=1), "campaign_id"])) if dims else []
    return per_send, notes + _undated_note(undated)


def _cluster_model_of(ctx: Any, dims: list[str]) -> tuple[Any, list[str]]:
    """The run's cluster model when the labels have cluster names (:func:`fitted_cluster_model`), and its note."""
    if "cluster_name" not in dims:
        return None, []
    model, note = fitted_cluster_model(ctx)
    return model, [note] if note else []


def _segments_at_send(ctx: Any, campaign: pd.DataFrame, dims: list[str], model: Any) -> pd.DataFrame:
    """:func:`segments_at_send` of ``campaign``'s recipients with the run's settings, lines and customers."""
    camp = ctx.section("campaign")
    control = camp.get("control_arm", "control") if camp.get("control_is_holdout", True) else None
    return segments_at_send(
        campaign, send_history_for(ctx), dims, rfm_settings=RFMSettings.from_config(ctx.section("rfm")),
        lifecycle_settings=LifecycleSettings.from_config(ctx.section("lifecycle")), cluster_model=model,
        customers=ctx.read_artifact("customers_clean") if ctx.has_artifact("customers_clean") else None,
        control_arm=control, max_channels=int(ClusterSettings.from_config(ctx.section("clustering")).max_channels))


def _undated_note(undated: list[str]) -> list[str]:
    if not undated:
        return []
    return [f"Campaign(s) {', '.join(undated)} have no send time: their customers cannot be segmented "
            "without hindsight and are 'unlabelled'."]


#: How 05 names its campaign rows in messages.
CAMPAIGN_SOURCE = "artifacts/campaign_clean.parquet"


def evaluate_on_spark(ctx: Any, settings: CampaignSettings, labels: pd.DataFrame | None) -> tuple[CampaignResult,
                                                                                                     list[str]]:
    """:func:`evaluate_campaigns` of the run's campaign rows with labels at each send, on the executors
    (``engine.kind: spark``), and the notes :func:`labels_at_send` adds.

    The campaign rows stay on the executors (:func:`segkit.steps.spark_campaign.campaign_rows_on_spark`: checked
    as in pandas, with row numbers of the whole file); the RFM and lifecycle labels at each send are refitted
    there (:func:`segkit.steps.spark_campaign.send_labels_on_spark`), retention is the relational core's on Spark,
    and each partition of customers is prepared and summed by segkit's pandas functions
    (:func:`segkit.steps.spark_campaign.campaign_parts_on_spark`); the driver merges the cell sums and evaluates
    them (:func:`segkit.campaign.evaluate.evaluate_parts`). The cluster names at each send are the run's cluster
    model applied per partition to the customer table as of each send, built on the executors
    (:func:`segkit.steps.spark_campaign.cluster_names_on_spark`).

    Parameters
    ----------
    labels : DataFrame or None
        ``customer_segments``' columns (no rows needed): which dimensions the run has.
    """
    s = settings.validated()
    on_spark = send_history_for(ctx).lines()  # the run's SparkLines
    rows, columns, facts = campaign_rows_on_spark(on_spark, str(ctx.artifact_path("campaign_clean")),
                                                  CAMPAIGN_SOURCE)
    found: dict[str, Any] = {}
    try:  # what the executors hold for 05 is released once the cell sums are collected, or when a step fails
        available = [d for d in SEGMENT_DIMENSIONS if labels is not None and d in labels.columns]
        dimension = chosen_dimension(s, available)
        dims = label_dimensions(dimension, available)
        if dimension != "none" and dimension not in available:  # the one-machine evaluation's error
            segment_labels(pd.Series([], dtype="string"), labels, dimension)
        model, notes = _cluster_model_of(ctx, available)
        sends = send_table_of(facts.first_sends())
        if len(sends):  # once: every dimension reads the same send histories, held by the lines
            register_sends(on_spark, sends)
        found.update(send_labels_on_spark(on_spark, sends, available, register=False,
                                          rfm_settings=RFMSettings.from_config(ctx.section("rfm")),
                                          lifecycle_settings=LifecycleSettings.from_config(ctx.section("lifecycle"))))
        if "cluster_name" in available and len(sends):
            found["cluster_name"] = cluster_names_on_spark(ctx, on_spark, model, sends, facts.first_sent,
                                                           register=False)
        for dim in available:
            if dim not in found:  # no dated send: every recipient is unlabelled
                found[dim] = send_labels_frame(on_spark.session, pd.DataFrame(columns=["campaign_id", "customer_id",
                                                                                       "label"]))
        notes += _undated_note(sorted(c for c, sent in facts.first_sent.items() if sent is None) if available else [])
        end = None if ctx.as_of is None else pd.Timestamp(ctx.as_of)
        parts = campaign_parts_on_spark(on_spark, rows, columns, facts, dims, found,
                                        retention=(s.retention_days, end), source=CAMPAIGN_SOURCE)
    finally:
        release_send_frames([rows, *found.values()])
    return evaluate_parts(parts, s, dimension, available, CAMPAIGN_SOURCE), notes


def build_campaign_artifacts(ctx: Any) -> CampaignResult:
    """Producer of notebook 05: evaluate the run's campaigns and write ``campaign_results.csv``.

    Reads ``campaign_clean`` (required), ``customer_segments.csv`` (segment labels) and
    ``transactions_clean`` (retention) through ``ctx``; settings from the ``campaign`` section.

    Raises
    ------
    UpstreamMissingError
        The run has no campaign data (no campaign file configured).
    """
    settings = CampaignSettings.from_config(ctx.config)
    on_spark = scores_on_spark(ctx)
    missing_msg = (f"{ctx.notebook} needs campaign data, but this run has no artifacts/campaign_clean.parquet: "
                   "no campaign file was given. Set data.campaign in the config to your campaign export (one row "
                   "per customer per campaign: campaign_id, customer_id, arm, ...), map its columns under "
                   "columns.campaign and rerun from 01_data_audit. `segkit run` skips this notebook when there is "
                   "no campaign file.")
    try:  # on Spark the rows stay on the executors: only a missing file is read here (it raises)
        campaign = ctx.read_artifact("campaign_clean") if not on_spark or not ctx.has_artifact("campaign_clean") \
            else None
    except UpstreamMissingError:
        raise UpstreamMissingError(missing_msg) from None
    if (campaign is None and not on_spark) or not ctx.has_artifact("campaign_clean"):
        raise UpstreamMissingError(missing_msg)
    labels, notes = _load_labels(ctx, settings.segment_by, header_only=on_spark)
    if not on_spark:
        labels, more = labels_at_send(ctx, campaign, labels)
        notes += more

    with warnings.catch_warnings():  # the mismatches are in result.warnings, shown once at the top of the report
        warnings.simplefilter("ignore", SampleRatioMismatchWarning)
        try:
            if on_spark:
                result, more = evaluate_on_spark(ctx, settings, labels)
                notes, labels = notes + more, None
            else:
                result = evaluate_campaigns(campaign, labels, send_history_for(ctx), settings, as_of=ctx.as_of,
                                            source=CAMPAIGN_SOURCE)
        except ConfigError as error:  # a knob of the parameters cell (control_arm) that the data do not have
            set_in_cell = [key for key in ctx.parameters.get("campaign", {})
                           if str(error).startswith(f"campaign.{key} = ")]
            if not set_in_cell:
                raise
            base = load_config(ctx.config_path)["campaign"]
            raise blame_parameters_cell(error, ctx.notebook, "campaign", set_in_cell, base) from None
    result.warnings = notes + result.warnings
    result.segment_labels = labels
    ctx.write_artifact("campaign_results", result.results)
    return result


def _pp(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x * 100:+.1f} pp"


def _money(x: float, currency: str = "") -> str:
    return "n/a" if pd.isna(x) else f"{x:,.0f}" + (f" {currency}" if currency else "")


def campaign_totals(result: CampaignResult) -> pd.DataFrame:
    """All campaigns (and sent arms) together: sizes, incremental conversions and revenue, cost, ROI.

    Increments are sums over the campaign × arm comparisons (all customers); their 95% intervals
    combine the comparisons' standard errors as independent (normal approximation).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": ["a"] * 4 + ["b"] * 4, "customer_id": list("abcdabcd"),
    ...     "arm": ["email", "email", "control", "control"] * 2, "converted": [1, 1, 0, 0, 1, 0, 0, 0]})
    >>> campaign_totals(evaluate_campaigns(camp))[["comparisons", "customers_sent", "incremental_conversions"]]
       comparisons  customers_sent  incremental_conversions
    0            2               4                      3.0
    """
    c = result.campaigns
    z = stats.norm.isf(result.settings.alpha / 2)
    if c.empty:
        return pd.DataFrame()
    out: dict[str, Any] = {"comparisons": len(c), "customers_sent": int(c["customers_sent"].sum()),
                           "customers_control": int(c["customers_control"].sum())}
    for col in ("incremental_conversions", "incremental_revenue"):
        total = c[col].sum(min_count=1)
        se = np.sqrt((c[f"{col}_se"] ** 2).sum(min_count=1))
        out.update({col: total, f"{col}_ci_low": total - z * se, f"{col}_ci_high": total + z * se})
    for suffix in ("", "_ci_low", "_ci_high"):
        out[f"incremental_revenue_per_1000{suffix}"] = out[f"incremental_revenue{suffix}"] / out["customers_sent"] * 1000
    cost = c["cost"].sum(min_count=1)
    cost = cost if cost > 0 else np.nan
    out["cost"] = cost
    margin = 1.0 if result.settings.gross_margin is None else result.settings.gross_margin
    for suffix in ("", "_ci_low", "_ci_high"):
        out[f"roi{suffix}"] = (margin * out[f"incremental_revenue{suffix}"] - cost) / cost
    out["roi_basis"] = ("revenue-based, not profit" if result.settings.gross_margin is None
                        else f"gross margin {result.settings.gross_margin:.0%}")
    return pd.DataFrame([out])


def campaigns_phrase(comparisons: pd.DataFrame, control_arm: str) -> str:
    """Subject of the money sentence: the campaigns counted once each, with their arms when several.

    ``comparisons`` has one row per campaign and treatment arm (each compared with the control),
    so a campaign with three e-mail variants is one campaign and three arms, not three campaigns.

    Examples
    --------
    >>> rows = pd.DataFrame({"campaign_id": ["A", "A", "A", "B"], "arm": ["v1", "v2", "v3", "email"]})
    >>> campaigns_phrase(rows, "control")
    'Together the 2 campaigns (4 treatment arms, each compared with control)'
    >>> campaigns_phrase(rows.head(3), "control")
    'Campaign A (3 treatment arms, each compared with control)'
    >>> campaigns_phrase(rows.tail(1), "control")
    'Campaign B'
    """
    ids = comparisons["campaign_id"].astype(str)
    n_campaigns = ids.nunique()
    what = f"Campaign {ids.iloc[0]}" if n_campaigns == 1 else f"Together the {n_campaigns:,} campaigns"
    if len(comparisons) > n_campaigns:
        what += f" ({len(comparisons):,} treatment arms, each compared with {control_arm})"
    return what


def arms_phrase(result: CampaignResult) -> str:
    """``"control and email"``: the control arm and the sent arms by their names in the data.

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": list("abcd"), "arm": ["sms", "holdout"] * 2,
    ...                      "converted": [1, 0, 0, 0]})
    >>> arms_phrase(evaluate_campaigns(camp, settings=CampaignSettings(control_arm="holdout")))
    'holdout and sms'
    """
    control = result.settings.control_arm
    sent = sorted(set(result.table["arm"].astype(str)) - {control})
    return f"{control} and {', '.join(sent) or 'no sent arm'}"


def srm_reference(settings: CampaignSettings) -> str:
    """What the sample-ratio check of this run compares each split with (for the notebook's text).

    Examples
    --------
    >>> srm_reference(CampaignSettings(expected_split={"control": 0.2, "email": 0.8}))[:95]
    'Here every row — each campaign overall and each of its segments — is compared with the designed'
    """
    alarm = (f"A p-value below {settings.srm_alpha:g} flags a mismatch; a campaign's overall split with p between "
             f"{settings.srm_alpha:g} and {SRM_BORDERLINE_P:g} is called borderline: no alarm, but check how customers "
             "were assigned.")
    if settings.expected_split:
        design = " · ".join(f"{arm} {share:.1%}" for arm, share in settings.expected_split.items())
        return ("Here every row — each campaign overall and each of its segments — is compared with the designed "
                f"split of campaign.expected_split ({design}); a segment therefore also shows its campaign's overall "
                f"deviation. {alarm}")
    return ("Here no designed split is configured (campaign.expected_split): each segment is compared with its "
            "campaign's overall split, and the overall split itself is not tested; set campaign.expected_split to "
            f"check it against the design. {alarm}")


def _split_finding(result: CampaignResult) -> tuple[str, str]:
    """The summary's sentence on the sample-ratio check, and an action when the split needs checking."""
    s = result.settings
    srm = result.srm
    arms = arms_phrase(result)
    srm_bad = srm[srm["srm"]]
    tested = srm["p_value"].notna()
    overall = srm[(srm["segment"] == ALL_SEGMENTS) & tested]
    thresholds = (f"a mismatch is flagged below p = {s.srm_alpha:g}"
                  + (f", borderline below {SRM_BORDERLINE_P:g}" if s.expected_split else ""))
    overall_text = ("; overall split vs the design: " + ", ".join(f"{r.campaign_id} {p_text(r.p_value)}"
                                                                 for r in overall.itertuples())
                    if len(overall) else "; the overall split was not checked (no designed split configured)")
    if len(srm_bad) and s.expected_split:
        return (f"The {arms} split is not as designed in {len(srm_bad)} place(s){overall_text}: these lifts may be "
                f"biased.", f"Before acting, find out why the split between {arms} deviates from the design.")
    if len(srm_bad):
        return (f"The {arms} split of {len(srm_bad)} segment(s) differs from their campaign's overall split more than "
                f"chance allows{overall_text}: these lifts may be biased.",
                "Before acting, find out how the control group was drawn in the segments whose split differs "
                "(listed in the warnings); set campaign.expected_split to check the overall split too.")
    borderline = overall[overall["note"].str.startswith("borderline")] if s.expected_split else overall.iloc[:0]
    if len(borderline):
        cases = "; ".join(f"{r.campaign_id}: {r.control_share:.1%} {s.control_arm} vs {r.expected_control_share:.1%} "
                          f"planned (chi-square {p_text(r.p_value)})" for r in borderline.itertuples())
        rest = overall[~overall.index.isin(borderline.index)]
        others = ("; the others look as designed (" + ", ".join(f"{r.campaign_id} {p_text(r.p_value)}"
                                                                  for r in rest.itertuples()) + ")") if len(rest) else ""
        ids = ", ".join(borderline["campaign_id"].astype(str))
        return (f"The random split into {arms} is borderline in {cases} — {thresholds}{others}.",
                f"Check how customers were assigned to {arms} in {ids} before relying on its lifts: the "
                "control share is off the plan by more than chance usually allows, though not past the alarm line.")
    if tested.any():
        looks = "looks as designed" if s.expected_split else "looks random"
        return f"The random split into {arms} {looks} ({thresholds}){overall_text}.", ""
    return "The random split could not be checked (no designed split configured, segments too small).", ""


def _planning_campaign(campaigns: pd.DataFrame, overall_power: pd.DataFrame) -> tuple[str, str]:
    """The campaign whose base rate plans the next test: the latest sent, else the largest; and its description."""
    ids = overall_power["campaign_id"].astype(str)
    if ids.nunique() == 1:
        return ids.iloc[0], f"campaign {ids.iloc[0]}"
    days = pd.Series(dtype="datetime64[ns]")
    if "send_date" in campaigns:
        days = campaigns.groupby(campaigns["campaign_id"].astype(str))["send_date"].min().reindex(ids.unique()).dropna()
    if len(days):
        latest = str(days.idxmax())
        return latest, f"the latest campaign, {latest}, sent {days.max():%Y-%m-%d}"
    size = (overall_power["n_sent"] + overall_power["n_control"]).groupby(ids.to_numpy()).sum()
    largest = str(size.idxmax())
    return largest, f"the largest campaign, {largest}; no send dates tell the latest"


def summarize(result: CampaignResult) -> dict:
    """The notebook's executive summary: ``title``, ``analysed``, 3–5 ``findings``, ``actions``,
    ``headlines``, ``warnings`` — generated from the results (keyword arguments of ``show_summary``).

    Examples
    --------
    >>> camp = pd.DataFrame({"campaign_id": "c", "customer_id": [str(i) for i in range(200)],
    ...                      "arm": ["email", "control"] * 100, "converted": [True, False, False, False] * 50})
    >>> out = summarize(evaluate_campaigns(camp))
    >>> out["headlines"]["Campaigns"], len(out["findings"]) >= 3
    (1, True)
    """
    s = result.settings
    m = METRIC_BY_NAME[s.primary_metric]
    t = result.table
    camps = result.campaigns
    n_camp = t["campaign_id"].nunique()
    customers = int(t[(t["segment"] == ALL_SEGMENTS) & (t["metric"] == t["metric"].iloc[0])]["customers"].sum())
    distinct = int(result.distinct_customers)
    segs = sorted(set(t["segment"]) - {ALL_SEGMENTS})
    dim_text = (f"per {result.segment_by} ({len(segs)} segments)" if result.segment_by != "none"
                else "overall (no segment dimension)")
    analysed = (f"{n_camp} campaign(s) with {customers:,} customer assignments ({distinct:,} distinct customers), "
                f"compared with the '{s.control_arm}' arm {dim_text}, segments as of each send; decisions use "
                f"{m.label.lower()} (the primary metric); "
                f"{CORRECTION_LABELS[s.correction]} correction across segments; retention = a purchase within "
                f"{s.retention_days} days of the send.")
    findings: list[str] = []
    actions: list[str] = []
    cur = f" {s.currency}" if s.currency else ""
    fmt = _pp if m.kind == "proportion" else (lambda v: "n/a" if pd.isna(v) else f"{v:+,.2f}{cur}")

    def money(x: float) -> str:
        return _money(x, s.currency)

    level = (lambda v: f"{v:.1%}") if m.kind == "proportion" else (lambda v: f"{v:,.2f}{cur} per customer")
    significant = camps["p_value"] < s.alpha if len(camps) else pd.Series(dtype=bool)

    # 1. the campaigns overall
    if camps.empty:
        findings.append(f"No campaign has both a sent arm and a '{s.control_arm}' arm: no lift can be measured.")
    elif len(camps) == 1:
        r = camps.iloc[0]
        findings.append(f"Campaign {r['campaign_id']} ({r['arm']} vs {s.control_arm}), all customers: "
                        f"{m.label.lower()} {level(r['rate_sent'])} vs {level(r['rate_control'])}. {r['verdict']}")
    else:
        parts = [f"{r['campaign_id']}{'' if r['arm'] == camps['arm'].iloc[0] else ' ' + str(r['arm'])} "
                 f"{fmt(r['lift_abs'])} (95% CI {fmt(r['lift_ci_low'])} to {fmt(r['lift_ci_high'])}"
                 f"{', significant' if ok else ', not significant'})"
                 for (_, r), ok in zip(camps.head(6).iterrows(), significant.head(6))]
        more = f" and {len(camps) - 6} more" if len(camps) > 6 else ""
        findings.append(f"{int(significant.sum())} of {len(camps)} campaign comparisons lifted {m.label.lower()} "
                        f"significantly (all customers, vs {s.control_arm}): {'; '.join(parts)}{more}.")
    # 2. segments: every dimension, heterogeneity test, strongest differences
    het = result.heterogeneity
    pooled_all = result.pooled_by_dimension
    if len(het) and het["p_value"].notna().any():
        h = het[het["p_value"].notna()].sort_values("p_value", kind="mergesort")
        parts = []
        for r in h.itertuples():
            seg = pooled_all[(pooled_all["segment_by"] == r.segment_by)]
            top = seg.sort_values("lift_abs", ascending=False).head(1)
            low = seg.sort_values("lift_abs", ascending=True).head(1)
            txt = (f"{DIMENSION_LABELS.get(r.segment_by, r.segment_by)}: "
                   f"{'lifts differ' if r.different else 'no clear difference'} ({p_text(r.p_adjusted)}"
                   f"{'' if r.different else f', {r.p_value:.2g} before correction'})")
            if (r.different or r.segment_by == h["segment_by"].iloc[0]) and len(top):
                t0, l0 = top.iloc[0], low.iloc[0]
                txt += (f" — highest {t0['segment']} {fmt(t0['lift_abs'])} (95% CI {fmt(t0['lift_ci_low'])} to "
                        f"{fmt(t0['lift_ci_high'])}, significant in {int(t0['significant_in'])} of "
                        f"{int(t0['campaigns'])} campaigns), lowest {l0['segment']} {fmt(l0['lift_abs'])}")
            parts.append(txt)
        findings.append(f"Does the {m.label.lower()} lift differ between segments? Tested for every segment type "
                        f"(segments as they were before each send); p-values {CORRECTION_LABELS[s.correction]}-"
                        f"corrected across the {len(h)} types: " + "; ".join(parts) + ".")
    # 3. money: per 1,000 sends, ROI only on margin
    totals = campaign_totals(result)
    if len(totals) and pd.notna(totals["incremental_revenue"].iloc[0]):
        r = totals.iloc[0]
        what = campaigns_phrase(camps, s.control_arm)
        text = (f"{what} added about {money(r['incremental_revenue_per_1000'])} revenue per 1,000 e-mails sent, as "
                "measured (each campaign's sent arm against its control; 95% CI "
                f"{_money(r['incremental_revenue_per_1000_ci_low'])} to {_money(r['incremental_revenue_per_1000_ci_high'])}; "
                f"{money(r['incremental_revenue'])} in total on {int(r['customers_sent']):,} sends)")
        if pd.notna(r["cost"]):
            text += f", for a cost of {money(r['cost'] / r['customers_sent'] * 1000)} per 1,000 sends"
        if s.gross_margin is not None and pd.notna(r["roi"]):
            text += f"; return on cost {r['roi']:,.1f} on a {s.gross_margin:.0%} gross margin"
        findings.append(text + ".")
    # 4. sample-ratio mismatch
    srm_text, srm_action = _split_finding(result)
    findings.append(srm_text)
    actions += [srm_action] if srm_action else []
    # 5. power, for an absolute target effect
    pw = result.power[result.power["segment"] != ALL_SEGMENTS]
    pw = pw if len(pw) else result.power
    target = fmt(s.target_lift).lstrip("+")
    if len(pw) and pw["mde_abs"].notna().any():
        med = float(np.nanmedian(pw["mde_abs"]))
        under = int((~pw["powered"]).sum())
        what = "the median segment" if result.segment_by != "none" else "the test"
        findings.append(f"At the observed sizes {what} could reliably detect only a lift of {fmt(med)} or more; "
                        f"{under} of {len(pw)} segment comparisons are too small to detect {target} "
                        f"with {s.power:.0%} power.")
    findings = findings[:5]

    # actions: ONE recommendation for the next send, from the campaigns pooled
    n_rec = None
    n_pooled = int(result.pooled["campaigns"].max()) if len(result.pooled) else 0
    measured = (totals["incremental_revenue_per_1000"].iloc[0]
                if len(totals) and pd.notna(totals["incremental_revenue"].iloc[0]) else np.nan)
    for _, p in result.pooled_policy.iterrows():
        cost_text = (f"{p['expected_cost'] / p['sends_targeted']:,.2f}{cur} per send" if pd.notna(p["expected_cost"])
                     and p["sends_targeted"] else None)
        per1000 = p.get("expected_incremental_revenue_per_1000", np.nan)
        # not the measured figure of the findings: segment lifts, pooled with precision (not send) weights
        source = (f"the segment lifts pooled over the {n_pooled} campaigns (each weighted by the precision of its "
                  "estimate, not by its sends)" if n_pooled > 1 else "the segments' own lifts, added up")
        versus = (f", so not the {money(measured)} per 1,000 sends the campaigns measured"
                  if pd.notna(measured) and pd.notna(per1000) and round(measured) != round(per1000) else "")
        value = (f"; expected incremental revenue of the next send about {money(per1000)} per 1,000 sends (95% CI "
                 f"{_money(p['expected_incremental_revenue_ci_low_per_1000'])} to "
                 f"{_money(p['expected_incremental_revenue_ci_high_per_1000'])}), a forecast from {source}{versus}; "
                 "optimistic: chosen and valued on the same data") if pd.notna(per1000) else ""
        dim = DIMENSION_LABELS.get(result.segment_by, result.segment_by)
        basis = f"pooled over {n_pooled} campaigns" if len(result.pooled) else ""
        n_rec = int(p["segments_recommended"])
        if p["segments_left_out"]:
            actions.append(f"Next {p['arm']} send ({basis}, by {dim}): send to every eligible customer except "
                           f"{p['segments_left_out']} — there the upper 95% bound of the incremental revenue per "
                           f"send is below the cost per send{f' ({cost_text})' if cost_text else ''}{value}.")
        else:
            why = ("a send costs almost nothing" + (f" ({cost_text})" if cost_text else "") +
                   " compared with the revenue it adds, and no segment shows evidence of being worth less than that"
                   if cost_text is None or (pd.notna(per1000) and p["expected_cost"] / max(p["sends_targeted"], 1) * 1000
                                             < 0.1 * abs(per1000))
                   else "no segment shows evidence that a send there is worth less than it costs")
            actions.append(f"Next {p['arm']} send ({basis}): send to all eligible customers — {why}{value}.")
    overall_pw = result.power[(result.power["segment"] == ALL_SEGMENTS) & result.power["n_sent_needed"].notna()]
    if len(overall_pw):
        campaign_id, which = _planning_campaign(camps, overall_pw)
        r = overall_pw[overall_pw["campaign_id"].astype(str) == campaign_id].iloc[0]
        actions.append(f"Plan the next test: on a base of {level(r['base_rate'])} ({m.label.lower()} in "
                       f"{s.control_arm} of {which}), detecting a lift of {target} with {s.power:.0%} power needs "
                       f"about {int(r['n_sent_needed']):,} customers in the {r['arm']} arm and "
                       f"{int(r['n_control_needed']):,} in {s.control_arm} for each segment you want to judge "
                       "(the same split; power table: per segment).")
    if camps.empty:
        actions.append(f"Add a random '{s.control_arm}' holdout to the next campaign so that its effect can be "
                       "measured.")
    headlines: dict[str, Any] = {"Campaigns": int(n_camp), "Assignments (customer × campaign)": customers,
                                 "Distinct customers": distinct}
    if len(camps):
        headlines["Significant overall lifts"] = f"{int(significant.sum())} of {len(camps)}"
    if len(totals) and pd.notna(totals["incremental_revenue"].iloc[0]):
        headlines[f"Incremental revenue per 1,000 sends{cur}"] = round(float(totals["incremental_revenue_per_1000"].iloc[0]), 2)
    if n_rec is not None:
        p = result.pooled_policy.iloc[0]
        headlines["Segments in the next send"] = f"{n_rec} of {int(p['segments'])}"
    headlines["Decisions based on"] = m.label.lower()
    return {"title": "Campaign evaluation", "analysed": analysed, "findings": findings, "actions": actions,
            "headlines": headlines, "warnings": list(result.warnings)}
