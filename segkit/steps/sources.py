"""Where a step reads its order-level tables from: the engine the run's audit used.

The audit records its engine in ``audit_summary.json``; each function here reads the same table
either from ``transactions_clean`` in memory (pandas, :mod:`segkit.data.orders`) or out-of-core
from the clean lines on disk (DuckDB, :mod:`segkit.data.engine`). With DuckDB no step ever loads
``transactions_clean`` (it can be 100M lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from segkit.campaign import LinesInMemory, LinesOnDisk
from segkit.data.engine import (
    EngineSettings,
    behaviour_table_from_files,
    order_table_from_files,
    purchase_days_from_files,
    retention_flags_from_files,
    rfm_with_info_from_files,
)
from segkit.data.orders import order_table, purchase_days, purchase_orders, rfm_with_info
from segkit.steps.pipeline import RunContext

__all__ = ["transactions_engine", "rfm_for", "orders_for", "purchase_days_for", "send_history_for",
    "behaviour_for", "retention_for"]


def transactions_engine(ctx: "RunContext") -> str:
    """The engine the run's audit used (``audit_summary.json``: ``engine``; ``"pandas"`` when absent).

    In interactive mode a missing audit is built first (by its producer); a run folder without
    ``audit_summary.json`` (clean tables put there by hand) counts as pandas.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> transactions_engine(open_run("02_rfm"))  # doctest: +SKIP
    'pandas'
    """
    if not ctx.artifact_path("audit_summary").exists() and not ctx.interactive:
        return "pandas"
    return str(ctx.read_artifact("audit_summary").get("engine", "pandas"))


def _clean_lines(ctx: "RunContext") -> Path:
    """Path of ``transactions_clean.parquet``, built in interactive mode, never loaded here."""
    path = ctx.artifact_path("transactions_clean")
    if not path.exists() and ctx.interactive:
        ctx.build_upstream("transactions_clean")
    if not path.exists():
        ctx.read_artifact("transactions_clean")  # raises UpstreamMissingError naming the notebook to run
    return path


def _limits(ctx: "RunContext") -> dict[str, Any]:
    settings = EngineSettings.from_config(ctx.config)
    return {"memory_limit": settings.memory_limit, "temp_directory": settings.temp_directory}


def rfm_for(ctx: "RunContext") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The RFM base of the run (``rfm_table`` + counts) from the engine its audit used.

    pandas: ``segkit.data.orders.rfm_with_info`` of ``transactions_clean``; duckdb:
    :func:`rfm_with_info_from_files` over the file (customer-level result only in memory).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> rfm, info = rfm_for(open_run("02_rfm"))  # doctest: +SKIP
    """
    if transactions_engine(ctx) == "duckdb":
        return rfm_with_info_from_files(_clean_lines(ctx), ctx.as_of, **_limits(ctx))

    return rfm_with_info(ctx.read_artifact("transactions_clean"), ctx.as_of)


def orders_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.order_table` of the run's clean lines, from the engine its audit used.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> orders = orders_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    if transactions_engine(ctx) == "duckdb":
        return order_table_from_files(_clean_lines(ctx), **_limits(ctx))

    return order_table(ctx.read_artifact("transactions_clean"))


def purchase_days_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.purchase_days` of the run's clean lines, from the engine its audit used.

    Only the customer-by-day table is ever in memory with the DuckDB engine.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> days = purchase_days_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    if transactions_engine(ctx) == "duckdb":
        return purchase_days_from_files(_clean_lines(ctx), **_limits(ctx))

    return purchase_days(purchase_orders(ctx.read_artifact("transactions_clean")))


def send_history_for(ctx: "RunContext") -> Any:
    """The run's clean order lines as :func:`segkit.campaign.segments_at_send` reads them, by engine:
    :class:`LinesOnDisk` (DuckDB) or :class:`segkit.campaign.LinesInMemory` (pandas).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = send_history_for(open_run("05_campaign_evaluation"))  # doctest: +SKIP
    """
    if transactions_engine(ctx) == "duckdb":
        return LinesOnDisk(_clean_lines(ctx), **_limits(ctx))

    return LinesInMemory(ctx.read_artifact("transactions_clean"))


def behaviour_for(ctx: "RunContext", as_of: str | pd.Timestamp | None, max_channels: int = 6) -> pd.DataFrame | None:
    """The behaviour table of :func:`segkit.features.customer_table` computed out-of-core when the
    run's audit used DuckDB; None for the pandas engine (the caller uses ``transactions_clean``).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> ctx = open_run("03_clustering")                  # doctest: +SKIP
    >>> behaviour = behaviour_for(ctx, ctx.as_of)        # doctest: +SKIP
    """
    if transactions_engine(ctx) != "duckdb":
        return None
    return behaviour_table_from_files(_clean_lines(ctx), as_of, max_channels=max_channels, **_limits(ctx))


def retention_for(ctx: "RunContext"):
    """The campaign notebook's retention function when the run's audit used DuckDB, else None
    (the caller then computes it from ``transactions_clean`` in memory).

    Returns a callable ``(campaign, days, as_of) -> Series`` (see :func:`retention_flags_from_files`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> retention = retention_for(open_run("05_campaign_evaluation"))  # doctest: +SKIP
    """
    if transactions_engine(ctx) != "duckdb":
        return None
    path, limits = _clean_lines(ctx), _limits(ctx)

    def retention(campaign: pd.DataFrame, days: int, as_of: str | pd.Timestamp | None) -> pd.Series:
        return retention_flags_from_files(campaign, path, days, as_of, **limits)

    return retention
