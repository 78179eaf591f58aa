"""Step 01 (`notebooks/01_data_audit.ipynb`): the producer :func:`build_audit_artifacts`, the
notebook's views of the findings and the texts of its summary (:func:`summarize`), built from an
:class:`segkit.audit.AuditResult`.

Examples
--------
>>> from segkit.steps.pipeline import open_run
>>> result = build_audit_artifacts(open_run("01_data_audit"), raise_on_error=False)  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import pandas as pd

from segkit.audit import AuditResult, audit_inputs, format_value, percent_text, run_audit
from segkit.core.errors import AuditFailedError
from segkit.data.auditfacts import CHECKS, SEVERITIES
from segkit.data.cancellations import cancellations_of_orders
from segkit.data.engine import OrderLines
from segkit.steps.headline import format_money, headline_items
from segkit.steps.pipeline import CUSTOMER_SEGMENTS_DATASET, RunContext
from segkit.steps.sources import run_lines

__all__ = ["build_audit_artifacts", "finding_rows", "overview_table", "raise_if_failed", "summarize"]

#: The finding whose listed orders are looked up in the cancellation matches.
ORDER_OUTLIERS = "order_value_outliers"


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
    same folder are removed, so no later notebook reads stale data; so are its columns when that run
    had other customers (checked on the CSV, or on a Spark run's ``customer_segments.parquet/`` where
    there is no CSV; with the dataset goes ``artifacts/scoring/``).

    Parameters
    ----------
    ctx : RunContext
        From :func:`segkit.steps.pipeline.open_run`; ``as_of`` = the notebook parameter, else
        ``run.as_of`` of the config, else the day after the last order. The order lines are
        audited by DuckDB at every size, or by Spark for ``engine.kind: spark``
        (:func:`segkit.audit.audit_inputs`), which writes ``transactions_clean.parquet`` (DuckDB: one
        file with ``COPY``; Spark: a folder of parts); ``audit_summary.json`` records under ``engine``
        how the later steps read them (:func:`segkit.data.engine.choose_engine`). The headline numbers
        and the cancellations of the largest orders (:func:`mark_cancelled_outliers`) come from the
        clean lines read as the later steps read them (:func:`segkit.steps.sources.run_lines`): on
        Spark the cancellation matching runs on the executors, held once for both, and only the listed
        outlier orders' matches reach this process.
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
    # writes transactions_clean itself (DuckDB COPY, or Spark's parts) when the audit has no error finding
    # the headline and the outlier lookup read the clean lines on the run's engine, through one reader
    result = audit_inputs(ctx.config, as_of=as_of, clean_path=ctx.artifact_path("transactions_clean"),
                          clean_lines=lambda _: run_lines(ctx), customers_path=ctx.artifact_path("customers_clean"),
                          campaign_path=ctx.artifact_path("campaign_clean"))
    if result.status != "errors":
        mark_cancelled_outliers(result, run_lines(ctx))
    ctx.write_artifact("audit_summary", result.summary())
    segments = ctx.artifact_path("customer_segments")
    if result.status == "errors":
        for name in ("transactions_clean", "customers_clean", "campaign_clean"):
            path = ctx.artifact_path(name)
            if path.is_dir():  # a Spark run's dataset
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
        ctx.remove_customer_segments()  # the CSV and a Spark run's Parquet dataset
        if raise_on_error:
            raise_if_failed(result)
        return result
    if result.campaign is not None:
        ctx.write_artifact("campaign_clean", result.campaign)
    elif result.campaign_rows is None:  # (else written by Spark: audit_inputs)
        ctx.artifact_path("campaign_clean").unlink(missing_ok=True)
    if result.customer_rows is not None:  # written by Spark (audit_inputs): the ids stay on the executors
        _spark_customer_segments(ctx, result.customer_rows.rows.select("customer_id"))
        return result
    ctx.write_artifact("customers_clean", result.customers)
    ids = result.customers[["customer_id"]]
    if ctx.has_artifact("customer_segments"):  # the CSV, else a Spark run's dataset (above CSV_MAX_ROWS)
        # Columns of later notebooks stay only if they describe exactly these customers.
        old = ctx.read_artifact("customer_segments", columns=["customer_id"])["customer_id"]
        if set(old) != set(ids["customer_id"]):
            ctx.remove_customer_segments()
    if segments.exists() or not ctx.has_artifact("customer_segments"):
        ctx.update_customer_segments(ids)  # a dataset of these very customers stays as Spark wrote it, without a CSV
    return result


def _spark_customer_segments(ctx: "RunContext", ids: Any) -> None:
    """``customer_segments`` with the ids of the clean customers of a Spark audit (``ids``: a Spark frame of
    ``customer_id``), as the one-machine step keeps it: an earlier file of other customers is removed (the
    sets compared on the executors), and without one the ids are written by Spark
    (:func:`segkit.steps.spark_scoring.write_customer_segments`: the dataset, and the CSV up to
    ``CSV_MAX_ROWS``); a file of these very customers stays as it is."""
    from pyspark.sql import functions as F

    from segkit.data.spark import pandas_warnings_quiet
    from segkit.steps.spark_scoring import write_customer_segments

    if ctx.has_artifact("customer_segments"):
        dataset = ctx.artifacts_dir / CUSTOMER_SEGMENTS_DATASET
        if dataset.is_dir():
            old = ids.sparkSession.read.parquet(str(dataset)).select(F.col("customer_id").cast("string"))
        else:  # a CSV only (written on another engine): its ids
            with pandas_warnings_quiet():
                old = ids.sparkSession.createDataFrame(
                    ctx.read_artifact("customer_segments", columns=["customer_id"]).astype(object), "customer_id string")
        if old.join(ids, "customer_id", "left_anti").limit(1).count() or \
                ids.join(old, "customer_id", "left_anti").limit(1).count():
            ctx.remove_customer_segments()
    if not ctx.has_artifact("customer_segments"):
        partitions = int(ids.sparkSession.conf.get("spark.sql.shuffle.partitions"))
        write_customer_segments(ids.repartitionByRange(partitions, "customer_id"), ctx.artifacts_dir,
                                columns=("customer_id",))


def overview_table(result: AuditResult) -> pd.DataFrame:
    """Rows in, removed and kept per table, with distinct ids, orders and the date range.

    ``customer_ids`` and ``order_ids`` count distinct ids in the clean rows (``audit_summary.json``
    ``counts.buyers`` and ``counts.orders`` for the transactions): every document with an order id,
    cancellation and return documents included, and every customer with an order line. Beside them,
    the headline's ``purchase_orders`` (orders that kept a positive value after matched cancellations)
    and ``cancellation_documents``, so that the two "orders" numbers of the report read together.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_id": ["1", "2", "C2"],
    ...                    "order_date": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-03"]),
    ...                    "amount": [1.0, 1.0, -1.0]})
    >>> row = overview_table(run_audit({"transactions": tx})).iloc[0]
    >>> [int(row[c]) for c in ("rows_clean", "order_ids", "purchase_orders", "cancellation_documents")]
    [3, 3, 1, 1]
    """
    c, headline = result.counts, result.headline or {}
    rows = [{"table": "transactions", "rows_in": c["transactions_rows_in"], "rows_clean": c["transactions_rows_clean"],
             "customer_ids": c["buyers"], "order_ids": c["orders"],
             "purchase_orders": headline.get("purchase_orders"),
             "cancellation_documents": headline.get("cancellation_documents"),
             "first_date": result.period["start"], "last_date": result.period["end"]},
            {"table": "customers", "rows_in": c["customers_rows_in"], "rows_clean": c["customers"],
             "customer_ids": c["customers"]}]
    campaign = result.campaign_overview
    if campaign is not None:
        rows.append({"table": "campaign", "rows_in": c["campaign_rows_in"], "rows_clean": c["campaign_rows_clean"],
                     **campaign})
    out = pd.DataFrame(rows, columns=["table", "rows_in", "rows_clean", "customer_ids", "order_ids", "purchase_orders",
                                      "cancellation_documents", "first_date", "last_date"])
    out.insert(3, "rows_removed", out["rows_in"] - out["rows_clean"])
    out["rows_removed"] = out["rows_removed"].clip(lower=0)
    return out.astype({"table": "string", "rows_in": "int64", "rows_clean": "int64", "rows_removed": "int64",
                       "customer_ids": "int64", "order_ids": "Int64", "purchase_orders": "Int64",
                       "cancellation_documents": "Int64", "first_date": "datetime64[ns]",
                       "last_date": "datetime64[ns]"})


def outlier_cancellations(rows: pd.DataFrame, matches: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """The listed outlier orders with what later cancelled them: ``rows`` plus ``kept_value`` (the
    order's value after the cancellations matched to it) and ``cancelled_by`` (each cancellation
    document with its date and the money it took from the order; "" when none).

    ``matches`` and ``kept`` are the relational core's for these orders
    (:func:`segkit.data.cancellations.cancellations_of_orders`).

    Examples
    --------
    >>> rows = pd.DataFrame({"order_id": ["482454", "7"], "customer_id": ["12827", "9"], "value": [168469.6, 50.0]})
    >>> matches = pd.DataFrame({"customer_id": ["12827"], "purchase_order_id": ["482454"],
    ...     "cancellation_order_id": ["C482455"], "cancellation_date": pd.to_datetime(["2011-12-09 09:27"]),
    ...     "amount": [168466.7]})
    >>> kept = pd.DataFrame({"customer_id": ["12827", "9"], "order_id": ["482454", "7"], "kept": [2.9, 50.0]})
    >>> outlier_cancellations(rows, matches, kept)[["order_id", "kept_value", "cancelled_by"]].values.tolist()
    [['482454', 2.9, 'C482455 on 2011-12-09 09:27 (168,466.70)'], ['7', 50.0, '']]
    """
    key = ["customer_id", "order_id"]
    by_document = (matches.groupby(["customer_id", "purchase_order_id", "cancellation_order_id"], sort=False)
                   .agg(date=("cancellation_date", "min"), amount=("amount", "sum")).reset_index()
                   .sort_values(["date", "cancellation_order_id"], kind="stable"))
    by_document["text"] = [f"{doc} on {format_value(pd.Timestamp(date))} ({format_value(float(amount))})"
                           for doc, date, amount in by_document[["cancellation_order_id", "date", "amount"]]
                           .itertuples(index=False)]
    cancelled_by = (by_document.rename(columns={"purchase_order_id": "order_id"})
                    .groupby(key, sort=False)["text"].agg("; ".join))
    ids = pd.MultiIndex.from_frame(rows[key].astype("string"))
    kept_value = kept.astype({"customer_id": "string", "order_id": "string"}).set_index(key)["kept"]
    out = rows.copy()
    out["kept_value"] = kept_value.reindex(ids).to_numpy(dtype="float64")
    out["cancelled_by"] = pd.Series(cancelled_by.reindex(ids).fillna("").to_numpy(), index=out.index, dtype="string")
    return out


def mark_cancelled_outliers(result: AuditResult, lines: OrderLines) -> None:
    """Say in the order-value outlier list which orders were cancelled later (in place).

    The listed outlier orders (``result.offending["order_value_outliers"]``) are looked up in the
    relational core's cancellation matches of the clean ``lines``; the list gains ``kept_value`` and
    ``cancelled_by`` (:func:`outlier_cancellations`), and the finding's message names the cancelled
    ones: an order of £168,469.60 cancelled 12 minutes later is an outlier of the export, not of what
    the customer bought.

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a"] * 12 + ["b"] * 2, "order_id": [str(i) for i in range(12)] + ["99", "C99"],
    ...                    "order_date": pd.date_range("2024-01-01", periods=14, freq="D"),
    ...                    "amount": [20.0] * 12 + [9000.0, -9000.0]})
    >>> result = run_audit({"transactions": tx})
    >>> mark_cancelled_outliers(result, OrderLines(result.transactions))
    >>> result.offending["order_value_outliers"][["order_id", "kept_value", "cancelled_by"]].values.tolist()
    [['99', 0.0, 'C99 on 2024-01-14 (9,000)']]
    >>> result.findings.set_index("check").loc["order_value_outliers", "message"].split(" kept. ")[1]
    'Cancelled later: order 99 (value 9,000; kept 0) by C99 on 2024-01-14 (9,000).'
    """
    rows = result.offending.get(ORDER_OUTLIERS)
    if rows is None or rows.empty:
        return
    matches, kept = lines.run(lambda con: cancellations_of_orders(con, rows))
    listed = outlier_cancellations(rows, matches, kept)
    result.offending[ORDER_OUTLIERS] = listed
    cancelled = listed[listed["cancelled_by"] != ""]
    if cancelled.empty:
        return
    named = "; ".join(f"order {r['order_id']} (value {format_value(float(r['value']))}; kept "
                      f"{format_value(float(r['kept_value']))}) by {r['cancelled_by']}"
                      for r in cancelled.head(3).to_dict("records"))
    more = f" and {len(cancelled) - 3} more of the {len(listed)} listed" if len(cancelled) > 3 else ""
    at = result.findings.index[result.findings["check"] == ORDER_OUTLIERS]
    result.findings.loc[at, "message"] = result.findings.loc[at, "message"] + f" Cancelled later: {named}{more}."


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
    campaign = f", {c['campaign_rows_in']:,} campaign rows" if result.campaign_overview is not None else ""
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
