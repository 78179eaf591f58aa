"""Where a step reads its order-level tables from: the run's clean lines, through the relational core.

Whatever engine the audit used, it writes ``artifacts/transactions_clean.parquet`` (pandas with
pyarrow, DuckDB with ``COPY``). Every function here runs the relational core's queries
(:mod:`segkit.data.relational`) over that file with DuckDB, through one
:class:`segkit.data.engine.OrderLines` (:func:`run_lines`): no step loads the clean lines into
pandas (they can be 100M), and there is one way of reading them. The only choice left is the
relation itself, which API users and tests make by passing a frame to the same class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from segkit.data.engine import EngineSettings, OrderLines
from segkit.steps.pipeline import RunContext

__all__ = ["run_lines", "rfm_for", "orders_for", "purchase_days_for", "first_non_purchase_for",
    "send_history_for", "behaviour_for", "kept_value_for"]


def _clean_lines(ctx: "RunContext") -> Path:
    """Path of ``transactions_clean.parquet``, built in interactive mode, never loaded here."""
    path = ctx.artifact_path("transactions_clean")
    if not path.exists() and ctx.interactive:
        ctx.build_upstream("transactions_clean")
    if not path.exists():
        ctx.read_artifact("transactions_clean")  # raises UpstreamMissingError naming the notebook to run
    return path


def run_lines(ctx: "RunContext") -> OrderLines:
    """The run's clean order lines (``artifacts/transactions_clean.parquet``) as :class:`OrderLines`,
    with the ``engine`` section's memory limit and spill folder.

    Raises
    ------
    UpstreamMissingError
        The file is missing and the context is not interactive (naming the notebook to run).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = run_lines(open_run("02_rfm"))  # doctest: +SKIP
    """
    settings = EngineSettings.from_config(ctx.config)
    return OrderLines(_clean_lines(ctx), memory_limit=settings.memory_limit, temp_directory=settings.temp_directory)


def rfm_for(ctx: "RunContext") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The RFM base of the run as of its ``as_of``, and the counts behind its notes
    (:meth:`OrderLines.rfm_with_info`; only the customer-level result is in memory).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> rfm, info = rfm_for(open_run("02_rfm"))  # doctest: +SKIP
    """
    return run_lines(ctx).rfm_with_info(ctx.as_of)


def orders_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.order_table` of the run's clean lines (:meth:`OrderLines.orders`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> orders = orders_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).orders()


def purchase_days_for(ctx: "RunContext", as_of: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`segkit.data.orders.purchase_days` of the run's clean lines as seen at ``as_of`` (None = every
    line; :meth:`OrderLines.purchase_days`): only the customer-by-day table is ever in memory.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> days = purchase_days_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).purchase_days(as_of)


def kept_value_for(ctx: "RunContext", as_of: str | pd.Timestamp) -> pd.Series:
    """Each buyer's kept value as seen at ``as_of``: the RFM base's ``monetary_total`` (every order and
    cancellation document before ``as_of``, cancellations matched; unmatched adjustments included), the
    one per-customer total of segkit. Index ``customer_id`` (string), sorted.

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> ctx = open_run("04_lifecycle")                    # doctest: +SKIP
    >>> kept = kept_value_for(ctx, ctx.as_of)             # doctest: +SKIP
    """
    rfm = run_lines(ctx).rfm(as_of)
    return pd.Series(rfm["monetary_total"].to_numpy(dtype="float64"), name="monetary_total",
                     index=pd.Index(rfm["customer_id"], dtype="string", name="customer_id"))


def first_non_purchase_for(ctx: "RunContext") -> pd.DataFrame:
    """:func:`segkit.data.orders.first_non_purchase` of the run's clean lines
    (:meth:`OrderLines.first_non_purchase`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> first = first_non_purchase_for(open_run("04_lifecycle"))  # doctest: +SKIP
    """
    return run_lines(ctx).first_non_purchase()


def send_history_for(ctx: "RunContext") -> OrderLines:
    """The run's clean order lines as :func:`segkit.campaign.segments_at_send` and
    :func:`segkit.campaign.retention_flags` read them (:func:`run_lines`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> lines = send_history_for(open_run("05_campaign_evaluation"))  # doctest: +SKIP
    """
    return run_lines(ctx)


def behaviour_for(ctx: "RunContext", as_of: str | pd.Timestamp | None, max_channels: int = 6) -> pd.DataFrame:
    """The behaviour columns of :func:`segkit.features.customer_table` as of ``as_of``, from the run's
    clean lines (:meth:`OrderLines.behaviour`).

    Examples
    --------
    >>> from segkit.steps.pipeline import open_run
    >>> ctx = open_run("03_clustering")                  # doctest: +SKIP
    >>> behaviour = behaviour_for(ctx, ctx.as_of)        # doctest: +SKIP
    """
    return run_lines(ctx).behaviour(as_of, max_channels)
