"""Step 02 (`notebooks/02_rfm.ipynb`): the producer :func:`build_rfm_artifacts`, the notebook's
views and the texts of its summary (:func:`summarize`), built from an :class:`segkit.rfm.RFMResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_rfm_artifacts(open_run("02_rfm"))  # doctest: +SKIP
>>> summarize(result)["headlines"]  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError
from segkit.core.escaping import escape_markdown
from segkit.core.labels import and_list
from segkit.data.orders import require_columns
from segkit.rfm import SEGMENT_CSV_COLUMNS, RFMResult, RFMSettings, analyse_rfm, to_five_point
from segkit.steps.sources import rfm_for
from segkit.steps.spark_scoring import save_rfm_model, scores_on_spark, write_run_segments

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


PROFILE_COLUMNS: tuple[str, ...] = (
    "recency_days", "frequency", "monetary_total", "monetary_avg", "tenure_days",
    "r_score", "f_score", "m_score",
)


def segment_profile(rfm: pd.DataFrame, segment: str, n_sample: int = 5, seed: int = 0) -> pd.DataFrame:
    """Profile of one segment (mean and median row) followed by a random sample of its customers.

    The explorer of notebook 02 shows this per segment; display it through
    :func:`segkit.steps.pipeline.shareable` so the sampled ``customer_id`` are pseudonymised.

    Parameters
    ----------
    rfm : DataFrame
        ``RFMResult.rfm``.
    segment : str
        A segment present in ``rfm["rfm_segment"]``.
    n_sample : int
        Customers sampled (fewer if the segment is smaller); sorted by net revenue.
    seed : int
        Random seed of the sample.

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
    require_columns(rfm, ["customer_id", "rfm_segment", "tier", *PROFILE_COLUMNS], "RFM table",
                     "Pass RFMResult.rfm.")
    members = rfm[rfm["rfm_segment"] == segment]
    if members.empty:
        present = ", ".join(pd.unique(rfm["rfm_segment"].dropna().astype(str)))
        raise ConfigError(f"No customer is in segment {segment!r}. Segments present: {present or 'none'}.")
    stats = members[list(PROFILE_COLUMNS)].astype("float64")
    summary = pd.DataFrame([stats.mean(), stats.median()])
    summary.insert(0, "row", [f"mean of {len(members):,} customers", "median"])
    sample = members.sample(n=min(n_sample, len(members)), random_state=seed)
    sample = sample.sort_values(["monetary_total", "customer_id"], ascending=[False, True], kind="mergesort")
    sample = sample[["customer_id", *PROFILE_COLUMNS, "tier"]].assign(row="sample customer")
    out = pd.concat([summary, sample], ignore_index=True)
    out["row"] = out["row"].astype("string")
    out["customer_id"] = out["customer_id"].astype("string")
    out["tier"] = out["tier"].astype("string")
    return out[["row", "customer_id", *PROFILE_COLUMNS, "tier"]]


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

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": list("aabcd"), "order_id": list("12345"),
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01",
    ...                                                  "2024-02-02", "2024-03-02"]),
    ...                    "amount": [50.0, 60.0, 20.0, 25.0, 5.0]})
    >>> frequency_note(analyse_rfm(tx)).split(". ")[1]
    '75% of customers bought once and 100% at most twice (median 1 purchase order)'
    """
    f = result.rfm["frequency"].to_numpy()
    n = len(f)
    if n == 0:
        return "No buying customers to describe."
    values, counts = np.unique(f, return_counts=True)
    top = int(np.argmax(counts))
    groups = result.rfm["f_score"].value_counts()
    levels = len(groups)
    median = float(np.median(f))
    text = (f"The dashed lines are the bounds between score levels. {_pct(float((f == 1).mean()))} of customers bought "
            f"once and {_pct(float((f <= 2).mean()))} at most twice (median {median:g} purchase "
            f"order{'' if median == 1 else 's'}). Frequency takes {len(values):,} distinct "
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
    rfm, scorer = result.rfm, result.scorer
    out = []
    for metric in scorer.unseparated():
        column = scorer._columns()[metric]
        value = float(rfm[column].iloc[0]) if len(rfm) else float("nan")
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
    rfm, seg, info = result.rfm, result.segments, result.info
    n = len(rfm)
    top_k = int(np.ceil(result.top_share * n - 1e-9))
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
        members = rfm[rfm["rfm_segment"].isin(risk)]
        findings.append(f"{_count(len(members), 'valuable past customer')} (RFM segment{'s' if len(risk) > 1 else ''} "
                        f"{' and '.join(risk)}) not buying for "
                        f"{members['recency_days'].median():.0f} days (median) brought "
                        f"{_pct(by_name.loc[risk, 'share_of_revenue'].sum())} of net revenue.")
    once = float((rfm["frequency"] == 1).mean())
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
        "Median recency (days)": int(np.ceil(rfm["recency_days"].median())),
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
    ``customers_clean`` (empty for customers without a purchase). With ``engine.kind: spark`` it saves
    the fitted scorer, segment map and tiers (``artifacts/scoring/rfm_model.json``) and Spark writes
    ``customer_segments`` instead (:func:`segkit.steps.spark_scoring.write_run_segments`).

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

    base = rfm_for(ctx)
    customers = ctx.read_artifact("customers_clean")
    require_columns(customers, ["customer_id"], "artifacts/customers_clean.parquet",
                     "Re-run 01_data_audit to rebuild it.")
    result = analyse_rfm(None, ctx.as_of, settings, seed=ctx.seed, base=base)
    result.currency = str((ctx.config.get("report") or {}).get("currency") or "")
    ctx.write_artifact("rfm", result.rfm)
    if scores_on_spark(ctx):  # customer_segments scored on the executors from rfm.parquet and the saved model
        save_rfm_model(ctx, result)
        write_run_segments(ctx)
        return result
    columns = result.rfm[["customer_id", *SEGMENT_CSV_COLUMNS]]
    others = customers.loc[~customers["customer_id"].isin(columns["customer_id"]), ["customer_id"]]
    ctx.update_customer_segments(pd.concat([columns, others.astype({"customer_id": "string"})],
                                           ignore_index=True))
    return result
