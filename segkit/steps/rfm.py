"""Step 02 (`notebooks/02_rfm.ipynb`): the producer :func:`build_rfm_artifacts`, the notebook's
views and the texts of its summary (:func:`summarize`), built from an :class:`segkit.rfm.RFMResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_rfm_artifacts(open_run("02_rfm"))  # doctest: +SKIP
>>> summarize(result)["headlines"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError
from segkit.core.escaping import escape_markdown
from segkit.core.labels import and_list
from segkit.data.orders import require_columns
from segkit.data.distribution import DistributionNeeds, ValueDistribution
from segkit.rfm import (PROFILE_COLUMNS, SEGMENT_CSV_COLUMNS, PickedRows, RFMOverview, RFMResult, RFMSettings,
                        analyse_rfm, group_medians, profile_frame, profile_means, profile_positions, segment_sums,
                        to_five_point, top_customers)
from segkit.steps.sources import rfm_for
from segkit.steps.spark_scoring import save_rfm_model, scores_on_spark, write_run_segments
from segkit.widgets.tables import MAX_ROWS

__all__ = ["segment_choices", "segment_profile", "frequency_note", "separation_note", "tiers_note",
    "summarize", "build_rfm_artifacts"]


def segment_choices(segments: pd.DataFrame, min_cell_size: int = 0) -> dict[str, str]:
    """Explorer choices: segments with at least ``min_cell_size`` customers (smaller ones are
    suppressed in shared reports, so their customers are not listed either).

    Examples
    --------
    >>> segment_choices(pd.DataFrame({"segment": ["Champions", "Lost"], "customers": [40, 3]}), 10)
    {'Champions': 'Champions'}
    """
    keep = segments.loc[segments["customers"] >= min_cell_size, "segment"]
    return {str(s): str(s) for s in keep}


def segment_profile(rfm: pd.DataFrame | RFMOverview, segment: str, n_sample: int = 5, seed: int = 0) -> pd.DataFrame:
    """Profile of one segment (mean and median row) followed by a random sample of its customers.

    The explorer of notebook 02 shows this per segment; display it through
    :func:`segkit.steps.pipeline.shareable` so the sampled ``customer_id`` are pseudonymised.

    Parameters
    ----------
    rfm : DataFrame or RFMOverview
        ``RFMResult.rfm``, or ``RFMResult.overview`` (its profiles were made with the run's sample size and
        seed: ``n_sample`` and ``seed`` are then not read).
    segment : str
        A segment present in ``rfm["rfm_segment"]``.
    n_sample : int
        Customers sampled (fewer if the segment is smaller); sorted by net revenue.
    seed : int
        Random seed of the sample (the positions of ``DataFrame.sample``: :func:`segkit.rfm.profile_positions`).

    Examples
    --------
    >>> rfm = pd.DataFrame({"customer_id": ["a", "b", "c"], "rfm_segment": ["Lost", "Lost", "Champions"],
    ...                     "recency_days": [300, 200, 2], "frequency": [1, 1, 8],
    ...                     "monetary_total": [10.0, 30.0, 900.0], "monetary_avg": [10.0, 30.0, 112.5],
    ...                     "tenure_days": [300, 200, 400], "r_score": [1, 1, 5], "f_score": [1, 1, 5],
    ...                     "m_score": [1, 2, 5], "tier": ["Bronze", "Bronze", "Gold"]})
    >>> segment_profile(rfm, "Lost", n_sample=1, seed=0)[["row", "customer_id", "monetary_total"]]
                       row customer_id  monetary_total
    0  mean of 2 customers        <NA>            20.0
    1               median        <NA>            20.0
    2      sample customer           b            30.0
    """
    if isinstance(rfm, RFMOverview):
        profiles, present = rfm.profiles, list(rfm.profiles)
    else:
        require_columns(rfm, ["customer_id", "rfm_segment", "tier", *PROFILE_COLUMNS], "RFM table",
                        "Pass RFMResult.rfm.")
        present = list(pd.unique(rfm["rfm_segment"].dropna().astype(str)))
        members = rfm[(rfm["rfm_segment"] == segment).fillna(False).to_numpy()]
        profiles = {}
        if len(members):
            sums = segment_sums(members)
            rows = PickedRows.of_batches([members], profile_positions({segment: len(members)}, n_sample, seed),
                                         ["customer_id"])
            profiles[segment] = profile_frame(len(members), profile_means(sums, segment),
                                              pd.Series(group_medians(members, [(segment,)])[(segment,)]),
                                              rows.samples[segment])
    if segment not in profiles:
        raise ConfigError(f"No customer is in segment {segment!r}. Segments present: {', '.join(present) or 'none'}.")
    return profiles[segment]


def _count(n: int, word: str) -> str:
    """``"1 customer"``, ``"2,540 customers"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.0f}%"


def _money(value: float, currency: str = "") -> str:
    """``"EUR 1,934,530"`` (whole units; no prefix without a currency).

    Examples
    --------
    >>> _money(1934530.01, "EUR"), _money(-12.6)
    ('EUR 1,934,530', '-13')
    """
    return f"{currency} {value:,.0f}" if currency else f"{value:,.0f}"


def frequency_note(result: RFMResult) -> str:
    """Markdown for the distributions: how purchase counts spread and what ties do to the F score.

    Generated from the data, so it holds on any shop (no "most customers order once" unless they do).
    Reads ``result.overview`` (customers per frequency value and per F score).

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabcd"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> frequency_note(analyse_rfm(tx)).split(". ")[1]
    '75% of customers bought once and 100% at most twice (median 1 purchase order)'
    """
    overview = result.overview
    n = overview.customers
    if n == 0:
        return "No buying customers to describe."
    values, counts = overview.frequencies.index.to_numpy(dtype="float64"), overview.frequencies.to_numpy(dtype="int64")
    top = int(np.argmax(counts))
    scores = overview.scores
    groups = scores.loc[scores["metric"] == result.scorer.frequency_col, "customers"]
    levels = len(groups)
    median = ValueDistribution.of_counts(values, counts).median()
    text = (f"The dashed lines are the bounds between score levels. {_pct(counts[values == 1].sum() / n)} of "
            f"customers bought once and {_pct(counts[values <= 2].sum() / n)} at most twice (median {median:g} "
            f"purchase order{'' if median == 1 else 's'}). Frequency takes {len(values):,} distinct "
            f"value{'' if len(values) == 1 else 's'}, the most common ({values[top]:g}) shared by "
            f"{_pct(counts[top] / n)} of customers. Customers with the same value always get the same score, so ")
    if levels < result.settings.bins:
        text += f"F uses only {levels} of the {result.settings.bins} levels here and "
    text += (f"the F levels hold between {int(groups.min()):,} and {int(groups.max()):,} customers (an even split "
             f"would be about {n / max(levels, 1):,.0f} each); the table below gives every level.")
    return text


def separation_statements(result: RFMResult) -> list[str]:
    """One sentence per metric that cannot separate customers (a single value in the base).

    Says what every customer shares and what the score and the segments do with it (see
    :data:`SINGLE_LEVEL_SCORE`); empty when every metric separates customers.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("abc"), "order_id": list("123"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    ...                    "amount": [50.0, 60.0, 20.0]})
    >>> print(separation_statements(analyse_rfm(tx))[0])
    Frequency cannot separate customers: everyone bought 1 time (purchase orders), so every customer scores F = 1 and no segment claims frequent buying (Champions, Loyal Customers, Can't Lose Them cannot occur): the segments rest on recency and monetary value.
    """
    scores, scorer = result.overview.scores, result.scorer
    out = []
    for metric in scorer.unseparated():
        column = scorer._columns()[metric]
        lowest = scores.loc[scores["metric"] == column, "lowest"]  # one level: every customer's value
        value = float(lowest.iloc[0]) if len(lowest) else float("nan")
        score = int(scorer.level_scores(metric)[0])
        if metric == "f":
            combos = result.settings.segments.combinations()
            five = int(to_five_point(np.array([score]), scorer.bins)[0])
            reachable = set(combos.loc[combos["f"] == five, "segment"])
            excluded = [name for name in result.settings.segments.names if name not in reachable]
            out.append(f"Frequency cannot separate customers: everyone bought {value:,.0f} "
                       f"time{'' if value == 1 else 's'} (purchase orders), so every customer scores F = {score} "
                       "and no segment claims frequent buying"
                       + (f" ({', '.join(excluded)} cannot occur)" if excluded else "")
                       + ": the segments rest on recency and monetary value.")
        elif metric == "r":
            out.append(f"Recency cannot separate customers: every last purchase was {value:,.0f} "
                       f"day{'' if value == 1 else 's'} before {result.as_of:%Y-%m-%d}, so every customer scores "
                       f"the neutral R = {score}: read the segment names for frequency and spend only, not for "
                       "recency (no customer bought more recently than another).")
        else:
            what = "net revenue per purchase order" if column == "monetary_avg" else "net revenue"
            out.append(f"Monetary value cannot separate customers: everyone's {what} is "
                       f"{_money(value, result.currency) if abs(value) >= 1 else f'{value:g}'}, so every customer "
                       f"scores the neutral M = {score}: read the segment names for recency and frequency only, "
                       "not for spend (no customer spent more than another).")
    return out


def separation_note(result: RFMResult) -> str:
    """Markdown above the segment table: which metrics separate customers, and what the segments rest on.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aab"), "order_id": list("123"), "amount": [5.0, 9.0, 20.0],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])})
    >>> separation_note(analyse_rfm(tx))
    'Recency, frequency and monetary value each separate customers here (2, 2 and 2 score levels), so every segment rests on all three.'
    """
    statements = separation_statements(result)
    if statements:  # segment names and the currency come from the config: escaped
        return " ".join(f"**{escape_markdown(head)}**: {escape_markdown(body)}"
                        for head, body in (s.split(": ", 1) for s in statements))
    levels = [result.scorer.n_groups_[m] for m in "rfm"]
    return (f"Recency, frequency and monetary value each separate customers here ({levels[0]}, {levels[1]} and "
            f"{levels[2]} score levels), so every segment rests on all three.")


def tiers_note(result: RFMResult) -> str:
    """Markdown list of the loyalty-tier rules of this run, with the value thresholds they gave.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": [f"c{i:02d}" for i in range(20)], "order_id": [str(i) for i in range(20)],
    ...                    "order_date": pd.to_datetime(["2024-01-01"] * 20), "amount": np.arange(1.0, 21.0)})
    >>> print(tiers_note(analyse_rfm(tx)))
    - **Platinum**: net revenue of at least 20 (spends more than at least 95% of customers)
    - **Gold**: net revenue of at least 17 (spends more than at least 80% of customers)
    - **Silver**: net revenue of at least 11 (spends more than at least 50% of customers)
    - **Bronze**: everyone else
    """
    model = result.tier_model
    what = {"monetary_total": "net revenue", "monetary_avg": "net revenue per purchase order",
            "frequency": "purchase orders"}.get(model.basis, f"`{model.basis}`")
    money = model.basis in ("monetary_total", "monetary_avg")
    lines = []
    for level in model.levels[:-1]:
        value = model.thresholds_[level["name"]]
        rule = (f"{'spends' if money else 'has'} more than at least {float(level['min']):.0%} of customers"
                if model.method == "percentile" else "")
        if not np.isfinite(value):
            lines.append(f"- **{escape_markdown(level['name'])}**: empty (no customer {rule or 'reaches the threshold'})")
            continue
        amount = _money(value, escape_markdown(result.currency)) if money else f"{value:,.0f}"
        lines.append(f"- **{escape_markdown(level['name'])}**: {what} of at least {amount}" + (f" ({rule})" if rule else ""))
    lines.append(f"- **{escape_markdown(model.levels[-1]['name'])}**: everyone else")
    return "\n".join(lines)


def not_scored_note(info: dict) -> str:
    """What the RFM scoring leaves out, counted from ``info`` (:func:`segkit.data.orders.rfm_with_info`):
    cancellation documents, orders without a kept value, customers who kept nothing and customers
    without a purchase; "" when nothing is left out.

    Examples
    --------
    >>> not_scored_note({"cancellation_documents": 3, "non_purchase_orders": 1, "customers_kept_nothing": 2,
    ...                  "customers_without_purchase": 0})
    "Not scored: 3 cancellation documents (not orders; each matched to the customer's latest earlier purchase of the same product at the same price: a best match, as the export does not say which order a cancellation takes back), 1 order without a kept value (zero or negative net) and 2 customers who kept nothing (cancellations and returns took all they bought): such customers get no RFM segment."
    """
    parts = []
    if info["cancellation_documents"]:
        parts.append(f"{_count(info['cancellation_documents'], 'cancellation document')} (not orders; each "
                     "matched to the customer's latest earlier purchase of the same product at the same price: a "
                     "best match, as the export does not say which order a cancellation takes back)")
    if info["non_purchase_orders"]:
        parts.append(f"{_count(info['non_purchase_orders'], 'order')} without a kept value (zero or negative net)")
    if info["customers_kept_nothing"]:
        parts.append(f"{_count(info['customers_kept_nothing'], 'customer')} who kept nothing (cancellations and "
                     "returns took all they bought)")
    if info["customers_without_purchase"]:
        parts.append(f"{_count(info['customers_without_purchase'], 'customer')} without a purchase (only returns, "
                     "cancellations or orders of zero value)")
    if not parts:
        return ""
    listed = and_list(parts)
    nobody = info["customers_kept_nothing"] or info["customers_without_purchase"]
    return f"Not scored: {listed}" + (": such customers get no RFM segment." if nobody else ".")


def summarize(result: RFMResult) -> dict:
    """The executive summary of notebook 02, generated from the results.

    Returns the keyword arguments of :func:`segkit.steps.pipeline.show_summary`: ``title``,
    ``analysed``, ``findings`` (3–5), ``actions``, ``headlines`` and ``warnings``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabbc"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> s = summarize(analyse_rfm(tx))
    >>> s["findings"][0]
    'The top 20% of customers (1 of 3) bring 69% of net revenue.'
    """
    overview, seg, info = result.overview, result.segments, result.info
    n = overview.customers
    top_k = top_customers(n, result.top_share)
    left_out = not_scored_note(info)
    analysed = (f"{_count(n, 'buying customer')} with {_count(info['purchase_orders'], 'purchase order')} from "
                f"{info['period_start']:%Y-%m-%d} to {info['period_end']:%Y-%m-%d}, scored as of "
                f"{result.as_of:%Y-%m-%d} on {result.settings.bins} levels per R, F and M; monetary value is net "
                "of returns and cancellations." + (f" {left_out}" if left_out else ""))

    findings = []
    separation = separation_statements(result)
    if separation:  # first: it changes how every segment below reads
        findings.append(" ".join(separation))
    if pd.isna(result.top_share_revenue):
        findings.append("Net revenue is not positive overall, so revenue concentration is not defined.")
    else:
        findings.append(f"The top {_pct(result.top_share)} of customers ({top_k:,} of {n:,}) bring "
                        f"{_pct(result.top_share_revenue)} of net revenue.")
    largest = seg.sort_values(["customers", "share_of_revenue"], ascending=False, kind="mergesort").iloc[0]
    findings.append(f"The largest segment is {largest['segment']}: {_count(largest['customers'], 'customer')} "
                    f"({_pct(largest['share_of_customers'])}) bringing {_pct(largest['share_of_revenue'])} "
                    "of net revenue.")
    by_name = seg.set_index("segment")
    best = [s for s in ("Champions", "Loyal Customers") if s in by_name.index]
    if best:
        findings.append(f"{' and '.join(best)} are {_pct(by_name.loc[best, 'share_of_customers'].sum())} of "
                        f"customers and bring {_pct(by_name.loc[best, 'share_of_revenue'].sum())} of net revenue.")
    risk = [s for s in ("At Risk", "Can't Lose Them") if s in by_name.index]
    if risk:
        members = int(by_name.loc[risk, "customers"].sum())
        findings.append(f"{_count(members, 'valuable past customer')} (RFM segment{'s' if len(risk) > 1 else ''} "
                        f"{' and '.join(risk)}) not buying for "
                        f"{overview.risk_median_recency:.0f} days (median) brought "
                        f"{_pct(by_name.loc[risk, 'share_of_revenue'].sum())} of net revenue.")
    once = float(overview.frequencies.get(1.0, 0) / n)
    findings.append(f"{_pct(once)} of customers bought only once.")  # who kept nothing is no buyer: analysed
    findings = findings[:5]

    ranked = seg.sort_values(["share_of_revenue", "customers"], ascending=False, kind="mergesort")
    chosen = list(ranked["segment"].head(3))
    for name in risk + [largest["segment"]]:
        if name not in chosen:
            chosen.append(name)
    actions = [f"{name} ({_count(by_name.loc[name, 'customers'], 'customer')}, "
               f"{_pct(by_name.loc[name, 'share_of_revenue'])} of revenue): {by_name.loc[name, 'recommended_action']}"
               for name in chosen if by_name.loc[name, "recommended_action"]]

    headlines = {
        "Buying customers": n,
        f"Revenue share of top {_pct(result.top_share)}": (None if pd.isna(result.top_share_revenue)
                                                          else round(100 * result.top_share_revenue, 1)),
        "Median recency (days)": int(np.ceil(overview.median_recency)),
        "One-time buyers (%)": round(100 * once, 1),
    }
    return {"title": "RFM segmentation", "analysed": analysed, "findings": findings, "actions": actions,
            "headlines": headlines, "warnings": list(result.warnings)}


def build_rfm_artifacts(ctx) -> RFMResult:
    """Producer of notebook 02: ``artifacts/rfm.parquet`` and its ``customer_segments.csv`` columns.

    Reads ``transactions_clean`` and ``customers_clean`` (built by the audit in interactive
    mode), runs :func:`analyse_rfm` with the ``rfm`` config section and the run's ``as_of``
    and seed, writes ``rfm.parquet`` (one row per buying customer: ``customer_id``, the RFM
    values, scores, ``rfm_segment``, ``tier``, ``recommended_action``) and adds
    ``recency_days … recommended_action`` to ``customer_segments.csv`` for every customer of
    ``customers_clean`` (empty for customers without a purchase). With ``engine.kind: spark`` the base stays
    on the executors (:func:`rfm_on_spark`: fitted from bounded inputs, scored per partition, ``rfm.parquet``
    written by Spark), it saves the fitted scorer, segment map and tiers (``artifacts/scoring/rfm_model.json``)
    and Spark writes ``customer_segments`` instead (:func:`segkit.steps.spark_scoring.write_run_segments`).
    The notebook shows ``result.overview`` (:class:`segkit.rfm.RFMOverview`), the same on both engines.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> result = build_rfm_artifacts(open_run("02_rfm"))  # doctest: +SKIP
    """
    try:
        settings = RFMSettings.from_config(ctx.section("rfm"))
    except ConfigError as exc:
        if ctx.config.get("_source"):  # name the user's file
            raise ConfigError(f"{ctx.config['_source']}: {exc}") from None
        raise

    currency = str((ctx.config.get("report") or {}).get("currency") or "")
    if scores_on_spark(ctx):  # the base stays on the executors; customer_segments scored there from rfm.parquet
        result = rfm_on_spark(ctx, settings)
        result.currency = currency
        save_rfm_model(ctx, result)
        write_run_segments(ctx)
        return result
    base = rfm_for(ctx)
    customers = ctx.read_artifact("customers_clean")
    require_columns(customers, ["customer_id"], "artifacts/customers_clean.parquet",
                     "Re-run 01_data_audit to rebuild it.")
    result = analyse_rfm(None, ctx.as_of, settings, seed=ctx.seed, base=base, list_rows=MAX_ROWS)
    result.currency = currency
    ctx.write_artifact("rfm", result.rfm)
    columns = result.rfm[["customer_id", *SEGMENT_CSV_COLUMNS]]
    others = customers.loc[~customers["customer_id"].isin(columns["customer_id"]), ["customer_id"]]
    ctx.update_customer_segments(pd.concat([columns, others.astype({"customer_id": "string"})],
                                           ignore_index=True))
    return result


# ----------------------------------------------------------------------------- 02 on Spark
#: The Spark schema (DDL) of ``rfm.parquet``'s columns, as :func:`segkit.rfm.score_base` gives them.
RFM_SCHEMA = ("customer_id string, recency_days bigint, frequency bigint, monetary_total double, monetary_avg double, "
              "tenure_days bigint, first_order_date timestamp_ntz, last_order_date timestamp_ntz, r_score bigint, "
              "f_score bigint, m_score bigint, rfm_segment string, tier string, recommended_action string")


def rfm_on_spark(ctx, settings: RFMSettings, partitions: int | None = None) -> RFMResult:
    """Notebook 02 on Spark: the :class:`~segkit.rfm.RFMResult` of :func:`segkit.rfm.analyse_rfm` without the
    per-customer table on the driver (``result.rfm`` is None; the notebook reads ``result.overview``).

    1. The RFM base is the relational core's :data:`~segkit.data.relational.RFM_BASE` as a Spark frame
       (:meth:`segkit.data.spark.SparkLines.frame`), range-partitioned by ``customer_id`` and checkpointed on
       the executors; its counts (:func:`~segkit.data.relational.rfm_info_of`) are one row.
    2. The scorer and the tiers are fitted from the columns' value distributions
       (:func:`segkit.data.spark_ranks.value_distributions` with :func:`segkit.rfm.fit_needs` and
       :func:`segkit.rfm.overview_needs`; :meth:`~segkit.rfm.RFMScorer.fit_distributions`,
       :meth:`~segkit.rfm.LoyaltyTiers.fit_distribution`): the pandas fit's bounds and thresholds.
    3. Every partition is scored by :func:`segkit.rfm.score_base` (the models travel as their JSON) and
       written by Spark as Parquet parts (one per partition, ``customer_id`` order); the driver copies them
       into ``artifacts/rfm.parquet`` batch by batch (pyarrow: the DuckDB run's columns, dtypes and row
       order; never the whole table in memory).
    4. The partitions' :class:`~segkit.rfm.RFMPartial` are merged on the driver (:func:`segkit.data.bounded.merged_parts`: one per partition),
       the group medians come from value distributions of the scored parts, and the sampled customers and
       the capped customer list are read from ``rfm.parquet`` batch by batch (:class:`~segkit.rfm.PickedRows`).

    Raises
    ------
    DataError
        As :func:`~segkit.rfm.analyse_rfm` (no rows, nothing before ``as_of``, no customers).
    """
    import shutil
    import warnings

    from segkit.core.files import copy_parquet_parts, parquet_parts
    from segkit.data import relational
    from segkit.data.bounded import merged_parts
    from segkit.data.orders import RFMWarning
    from segkit.data.spark import pandas_warnings_quiet
    from segkit.data.spark_ranks import executor_errors, release_checkpoint, value_distributions
    from segkit.rfm import (RFMPartial, RFMScorer, OverviewPlan, customer_list_columns, fit_needs, median_groups,
                            overview_needs, require_buyers, rfm_warning_messages, score_base, warn_orders_after_as_of)
    from segkit.steps.sources import run_lines

    lines = run_lines(ctx).lines()
    info = relational.rfm_info_of(lines, ctx.as_of)
    base = lines.frame(relational.RFM_BASE, {"as_of": info["as_of"].to_pydatetime()},
                       provided=(relational.ORDERS_BEFORE.name,))
    count = partitions or int(lines.session.conf.get("spark.sql.shuffle.partitions"))
    held = base.repartitionByRange(count, "customer_id").sortWithinPartitions("customer_id").localCheckpoint(eager=True)
    parts = ctx.artifacts_dir / f".rfm.parquet.{os.getpid()}.parts"
    try:
        sizes = held.selectExpr("count(*) AS n", "count_if(monetary_total <= 0) AS non_positive").first()
        n = int(sizes["n"])
        require_buyers(n, info["as_of"])  # before any fit: the DuckDB run's message
        scorer = RFMScorer(bins=settings.bins, monetary_col=settings.monetary_column)
        needs = fit_needs(scorer, settings.tiers)
        for column, need in overview_needs(n, settings).items():
            needs[column] = needs[column].merge(need) if column in needs else need
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RFMWarning)
            warn_orders_after_as_of(info)
            with executor_errors():
                distributions = value_distributions(held, needs)
            scorer.fit_distributions({"r": distributions[scorer.recency_col], "f": distributions[scorer.frequency_col],
                                     "m": distributions[scorer.monetary_col]})
            basis_values = distributions.get(settings.tiers.basis)  # absent: threshold tiers read no values
            tier_model = settings.tiers.fit_distribution(ValueDistribution.of_values([]) if basis_values is None
                                                         else basis_values)
        messages = rfm_warning_messages(caught)
        plan = OverviewPlan.of_distributions(distributions, settings)
        models = json.dumps({"scorer": scorer.to_dict(), "segments": settings.segments.to_dict(),
                             "tiers": tier_model.to_dict()})

        def score(batches):
            from segkit.rfm import LoyaltyTiers, SegmentMap

            models_here = json.loads(models)
            fitted = RFMScorer.from_dict(models_here["scorer"])
            segments, tiers = SegmentMap.from_dict(models_here["segments"]), LoyaltyTiers.from_dict(models_here["tiers"])
            for batch in batches:
                yield score_base(relational.typed_result(batch, relational.RFM_COLUMNS), fitted, segments, tiers)

        with pandas_warnings_quiet(), executor_errors():
            held.mapInPandas(score, RFM_SCHEMA).write.mode("overwrite").parquet(str(parts))
        files = parquet_parts(parts)
        path = ctx.artifact_path("rfm")
        copy_parquet_parts(files, path, rfm_frame_dtypes())

        basis = tier_model.basis

        scored = lines.session.read.parquet(str(parts))
        merged = merged_parts(scored, lambda batch: RFMPartial.of(batch, plan, scorer, basis), RFMPartial.merge)
        medians = group_medians_on_spark(scored, median_groups(settings.segments))
    finally:
        release_checkpoint(held)
        shutil.rmtree(parts, ignore_errors=True)
    sizes_by_segment = merged.segments["customers"].astype("int64").to_dict()
    rows = PickedRows.of_batches(parquet_batches(path), profile_positions(sizes_by_segment, settings.sample_size, ctx.seed),
                                 customer_list_columns(settings.monetary_column), MAX_ROWS)
    overview = RFMOverview.build(plan, merged, medians, rows, settings, tier_model)
    info = relational.with_non_positive_net(info, int(sizes["non_positive"]))
    return RFMResult(rfm=None, segments=overview.segments, tiers=overview.tiers, pareto=overview.pareto,
                     top_share=settings.top_share, top_share_revenue=overview.top_share_revenue, as_of=info["as_of"],
                     info=info, warnings=messages, settings=settings, scorer=scorer, tier_model=tier_model,
                     seed=ctx.seed, overview=overview)


#: What the explorer's medians need of a group's column: the middle rows only (never every distinct value).
MEDIAN_NEEDS = DistributionNeeds(median=True, max_exact=0)


def group_medians_on_spark(scored, groups: list[tuple[str, ...]]) -> dict[tuple[str, ...], dict[str, float]]:
    """:func:`segkit.rfm.group_medians` of a scored base held by Spark (a DataFrame with ``rfm_segment`` and
    :data:`~segkit.rfm.PROFILE_COLUMNS`): per group and column, the exact median from the value distribution
    the executors count (:func:`segkit.data.spark_ranks.value_distributions`; only the rows next to the
    middle reach the driver: :data:`MEDIAN_NEEDS`). NaN for a group without customers, as in pandas.

    Examples
    --------
    >>> from segkit.data.spark import spark_session
    >>> scored = spark_session().createDataFrame(rfm_result.rfm)  # doctest: +SKIP
    >>> group_medians_on_spark(scored, [("Champions",)])  # doctest: +SKIP
    """
    from pyspark.sql import functions

    from segkit.data.spark_ranks import executor_errors, value_distributions

    names: dict[str, tuple[tuple[str, ...], str]] = {}
    columns = []
    for i, group in enumerate(groups):
        member = functions.col("rfm_segment").isin(list(group))
        for j, column in enumerate(PROFILE_COLUMNS):
            names[f"g{i}c{j}"] = (group, column)
            columns.append(functions.when(member, functions.col(column).cast("double")).alias(f"g{i}c{j}"))
    with executor_errors():
        found = value_distributions(scored.select(*columns), {k: MEDIAN_NEEDS for k in names}, missing="skip")
    medians: dict[tuple[str, ...], dict[str, float]] = {group: {} for group in groups}
    for key, (group, column) in names.items():
        medians[group][column] = found[key].median() if found[key].n else float("nan")
    return medians


def rfm_frame_dtypes() -> dict[str, str]:
    """The pandas dtypes of ``rfm.parquet``'s columns (those :func:`segkit.rfm.analyse_rfm` gives them)."""
    from segkit.data.relational import RESULT_DTYPES, RFM_COLUMNS

    return {**{c: RESULT_DTYPES[c] for c in RFM_COLUMNS}, "r_score": "int64", "f_score": "int64", "m_score": "int64",
            "rfm_segment": "string", "tier": "string", "recommended_action": "string"}


def parquet_batches(path, columns: list[str] | None = None):
    """The rows of a Parquet file as pandas frames, one per stored batch, in file order (dtypes as stored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(columns=columns):
        yield pa.Table.from_batches([batch]).to_pandas()
