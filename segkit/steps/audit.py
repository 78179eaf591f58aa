"""Step 01 (`notebooks/01_data_audit.ipynb`): the producer :func:`build_audit_artifacts`, the
notebook's views of the findings and the texts of its summary (:func:`summarize`), built from an
:class:`segkit.audit.AuditResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_audit_artifacts(open_run("01_data_audit"), raise_on_error=False)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from segkit.audit import AuditResult, audit_inputs, format_value, percent_text, run_audit
from segkit.core.errors import AuditFailedError
from segkit.data.auditfacts import CHECKS, SEVERITIES
from segkit.steps.headline import format_money, headline_items
from segkit.steps.pipeline import RunContext

__all__ = ["build_audit_artifacts", "finding_rows", "overview_table", "raise_if_failed", "summarize"]


def raise_if_failed(result: AuditResult, ctx: "RunContext | None" = None) -> None:
    """Raise :class:`~segkit.core.errors.AuditFailedError` when the audit has error findings.

    The message is the findings table as plain text plus what to do; the error carries the
    result as ``.result``. Given ``ctx``, the notebook summary (status "errors") is recorded
    first, so the run's index shows why the pipeline stopped.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": [None, None, "a"], "order_date": pd.to_datetime(["2024-01-01"] * 3),
    ...                    "amount": [1.0, 2.0, 3.0]})
    >>> raise_if_failed(run_audit({"transactions": tx}))
    Traceback (most recent call last):
    ...
    segkit.core.errors.AuditFailedError: The data audit found 1 error-severity problem(s); ...
    """
    if result.status != "errors":
        return
    if ctx is not None:
        ctx.record_summary(**summarize(result))
    error = AuditFailedError(result.failure_message())
    error.result = result  # type: ignore[attr-defined]
    raise error


def build_audit_artifacts(ctx: "RunContext", raise_on_error: bool = True) -> AuditResult:
    """Producer of ``01_data_audit``: load the inputs, audit them, write the artifacts.

    Writes ``audit_summary.json`` always; when the audit has no error finding also
    ``transactions_clean.parquet``, ``customers_clean.parquet``, ``campaign_clean.parquet`` (only
    with a campaign file) and the base ``customer_segments.csv`` (``customer_id`` of every
    customer). With errors, clean tables and ``customer_segments.csv`` of an earlier run in the
    same folder are removed, so no later notebook reads stale data.

    Parameters
    ----------
    ctx : RunContext
        From :func:`segkit.steps.pipeline.open_run`; ``as_of`` = the notebook parameter, else
        ``run.as_of`` of the config, else the day after the last order. The order lines are
        audited by DuckDB at every size (:func:`segkit.audit.audit_inputs`), which writes
        ``transactions_clean.parquet`` with ``COPY``; ``audit_summary.json`` records under
        ``engine`` how the later steps read them (:func:`segkit.data.engine.choose_engine`).
    raise_on_error : bool
        Raise :class:`~segkit.core.errors.AuditFailedError` on error findings (what upstream builds
        need). The notebook passes False, shows the table, then calls :func:`raise_if_failed`.

    Returns
    -------
    AuditResult

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> result = build_audit_artifacts(open_run("01_data_audit"))  # doctest: +SKIP
    """

    as_of = ctx.as_of_param or (ctx.config.get("run") or {}).get("as_of")
    # writes transactions_clean itself (DuckDB COPY) when the audit has no error finding
    result = audit_inputs(ctx.config, as_of=as_of, clean_path=ctx.artifact_path("transactions_clean"))
    ctx.write_artifact("audit_summary", result.summary())
    segments = ctx.artifact_path("customer_segments")
    if result.status == "errors":
        for name in ("transactions_clean", "customers_clean", "campaign_clean"):
            ctx.artifact_path(name).unlink(missing_ok=True)
        segments.unlink(missing_ok=True)
        if raise_on_error:
            raise_if_failed(result)
        return result
    ctx.write_artifact("customers_clean", result.customers)
    if result.campaign is not None:
        ctx.write_artifact("campaign_clean", result.campaign)
    else:
        ctx.artifact_path("campaign_clean").unlink(missing_ok=True)
    ids = result.customers[["customer_id"]]
    if segments.exists():
        # Columns of later notebooks stay only if they describe exactly these customers.
        old = pd.read_csv(segments, dtype={"customer_id": "string"}, usecols=["customer_id"])["customer_id"]
        if set(old) != set(ids["customer_id"]):
            segments.unlink()
    ctx.update_customer_segments(ids)
    return result


def overview_table(result: AuditResult) -> pd.DataFrame:
    """Rows in, removed and kept per table, with customers, orders and the date range.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a"], "order_date": pd.to_datetime(["2024-01-01", "2024-01-03"]),
    ...                    "amount": [1.0, 1.0]})
    >>> overview_table(run_audit({"transactions": tx}))[["table", "rows_in", "rows_clean"]].values.tolist()
    [['transactions', 2, 2], ['customers', 0, 1]]
    """
    c = result.counts
    rows = [{"table": "transactions", "rows_in": c["transactions_rows_in"], "rows_clean": c["transactions_rows_clean"],
             "customers": c["buyers"], "orders": c["orders"],
             "first_date": result.period["start"], "last_date": result.period["end"]},
            {"table": "customers", "rows_in": c["customers_rows_in"], "rows_clean": c["customers"],
             "customers": c["customers"], "orders": None, "first_date": None, "last_date": None}]
    if result.campaign is not None:
        camp = result.campaign
        dates = camp["sent_at"] if "sent_at" in camp else pd.Series(dtype="datetime64[ns]")
        rows.append({"table": "campaign", "rows_in": c["campaign_rows_in"], "rows_clean": c["campaign_rows_clean"],
                     "customers": int(camp["customer_id"].nunique()), "orders": None,
                     "first_date": dates.min(), "last_date": dates.max()})
    out = pd.DataFrame(rows)
    out.insert(3, "rows_removed", out["rows_in"] - out["rows_clean"])
    out["rows_removed"] = out["rows_removed"].clip(lower=0)
    return out.astype({"table": "string", "rows_in": "int64", "rows_clean": "int64", "rows_removed": "int64",
                       "customers": "int64", "orders": "Int64", "first_date": "datetime64[ns]",
                       "last_date": "datetime64[ns]"})


def finding_rows(result: AuditResult, key: str) -> pd.DataFrame:
    """Up to 10 offending rows behind a finding (``row`` = line in the input file).

    ``key`` is a check name, or ``"missing_values (<table>.<column>)"``; see
    ``result.offending`` for the keys. Ids are real: display through ``shareable``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", None], "order_date": pd.to_datetime(["2024-01-01"] * 2),
    ...                    "amount": [1.0, 2.0]})
    >>> finding_rows(run_audit({"transactions": tx}), "guest_checkouts")[["row", "amount"]].to_dict("list")
    {'row': [3], 'amount': [2.0]}
    """
    if key not in result.offending:
        raise KeyError(f"No rows for {key!r}; known: {', '.join(result.offending) or 'none'}.")
    return result.offending[key]


def summarize(result: AuditResult) -> dict[str, Any]:
    """Texts for the notebook's "What this means" (arguments of ``show_summary``).

    Returns
    -------
    dict
        ``title, analysed, findings (3–5), actions, headlines, warnings``.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "b", None], "order_date": pd.to_datetime(["2024-01-01"] * 3),
    ...                    "amount": [10.0, -2.0, 1.0]})
    >>> s = summarize(run_audit({"transactions": tx}))
    >>> s["headlines"]["Rows removed"], s["headlines"]["Returns, share of gross revenue"]
    (1, '20.0%')
    """
    c, f, rules = result.counts, result.findings, result.cleaning_rules
    period = (f"from {format_value(result.period['start'])} to {format_value(result.period['end'])}"
              if result.period["start"] is not None else "with no transactions left after cleaning")
    campaign = f", {c['campaign_rows_in']:,} campaign rows" if result.campaign is not None else ""
    analysed = (f"{c['transactions_rows_in']:,} order lines read, {c['transactions_rows_clean']:,} analysed after "
                f"cleaning, {period} (analysis date as_of "
                f"{format_value(result.as_of)}), {c['customers']:,} customers{campaign}.")
    currency = str((result.headline or {}).get("currency") or "")
    levels = f["severity"].value_counts()
    n_err, n_warn, n_info = (int(levels.get(s, 0)) for s in SEVERITIES)
    removed_by = rules[(rules["action"] == "dropped") & (rules["rows_affected"] > 0)]
    removed = int(removed_by.loc[removed_by["table"] == "transactions", "rows_affected"].sum())
    findings = [f"Audit status: {result.status} ({n_err} errors, {n_warn} warnings, {n_info} notes)."]
    if len(removed_by):
        top = "; ".join(f"{r['rule']} {r['rows_affected']:,}" for r in removed_by.head(4).to_dict("records"))
        findings.append(f"Cleaning removed {removed:,} of {c['transactions_rows_in']:,} transaction rows "
                        f"({percent_text(removed / c['transactions_rows_in'] if c['transactions_rows_in'] else np.nan)}): {top}.")
    else:
        findings.append("Cleaning removed no rows.")
    r = result.returns
    if r["return_lines"]:
        findings.append(f"Returns and cancellations are {percent_text(r['returned_share'])} of gross revenue "
                        f"(return lines: {r['return_lines']:,}); net revenue {format_money(r['net_revenue'], currency)} "
                        "includes them.")
    serious = f[(f["severity"] != "info") & ~f["check"].isin(["exact_duplicates", "guest_checkouts"])]
    findings += [str(m) for m in serious["message"].head(5 - len(findings))]
    actions = [CHECKS[check][1] for check in dict.fromkeys(f.loc[f["severity"] != "info", "check"])][:4]
    if result.status == "errors":
        actions.insert(0, "Fix the error findings in the input files (or relax the rule in the config); "
                          "the pipeline stops until then.")
    else:
        actions.append("Data are fit for analysis: continue with 02_rfm; the cleaned tables are in artifacts/.")
    headlines = {
        "Status": result.status,
        "Order lines (clean)": c["transactions_rows_clean"],
        # the run's headline numbers (purchase orders and cancellation documents apart), else the counts
        **(headline_items(result.headline) if result.headline else {"Customers": c["customers"]}),
        "Rows removed": removed,
        "Returns, share of gross revenue": percent_text(r["returned_share"]),
    }
    # One line per level: the findings themselves reach index.html through audit_summary.json.
    warnings = [f"Data-quality {level}s ({n}): {', '.join(dict.fromkeys(f.loc[f['severity'] == level, 'check']))}; "
                "see the data-quality table of 01_data_audit."
                for level, n in (("error", n_err), ("warning", n_warn)) if n]
    return {"title": "Data audit", "analysed": analysed, "findings": findings, "actions": actions,
            "headlines": headlines, "warnings": warnings}
