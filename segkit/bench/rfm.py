"""RFM / customer aggregation contenders over the same Parquet file of order lines.

Imports happen at module level, before the worker starts the clock. Each returns a small digest (customers, total net revenue) so the harness can check that the
contenders computed the same thing.
"""

from __future__ import annotations

import warnings

import duckdb
import pandas as pd

from segkit.data.engine import rfm_table_from_files
from segkit.data.orders import rfm_table
from segkit.data.relational import RFM_BASE, lines_view_sql

__all__ = ["digest", "duckdb_sql", "duckdb_sql_same_definition", "pandas_groupby", "segkit_engine", "segkit_in_memory"]


def digest(customers: int, revenue: float) -> dict:
    return {"customers": int(customers), "net_revenue": round(float(revenue), 2)}


def duckdb_sql(path: str) -> dict:
    """A plain DuckDB GROUP BY over the Parquet file (what an analyst would write first): it matches no
    cancellation to the order it cancels, so the RFM cases show it beside their baseline as the price of
    that matching; the baseline of the out-of-core case (``large_100m``)."""
    con = duckdb.connect()
    df = con.sql(f"""
        SELECT customer_id, count(DISTINCT order_id) AS orders, sum(amount) AS revenue,
               min(order_date) AS first_order, max(order_date) AS last_order
        FROM read_parquet('{path}') GROUP BY customer_id
    """).df()
    return digest(len(df), df["revenue"].sum())


def duckdb_sql_same_definition(path: str) -> dict:
    """Baseline of the RFM cases: segkit's RFM definition (orders, cancellation documents matched to the
    purchases they cancel, buyers, the analysis date = the day after the last line) as one DuckDB statement
    on a bare connection over the Parquet file: the SQL an engineer would run without segkit. What
    :func:`segkit_engine` adds on top is segkit's own work: input checks, typing, dispatch, result dtypes."""
    con = duckdb.connect()
    columns = con.sql(f"SELECT * FROM read_parquet('{path}') LIMIT 0").columns
    con.execute("CREATE VIEW lines AS " + lines_view_sql(f"read_parquet('{path}')", columns, all_order_ids=True,
                                                         positions=None))
    as_of = ("(SELECT CAST(date_trunc('day', max(order_date)) AS TIMESTAMP) + INTERVAL 1 DAY FROM lines)")
    df = con.execute(RFM_BASE.text().replace("$as_of", as_of)).df()
    return digest(len(df), df["monetary_total"].sum())


def pandas_groupby(path: str) -> dict:
    """Baseline: pandas read_parquet + groupby/agg (the in-memory textbook way)."""
    tx = pd.read_parquet(path, columns=["customer_id", "order_id", "order_date", "amount"])
    df = tx.groupby("customer_id").agg(orders=("order_id", "nunique"), revenue=("amount", "sum"),
                                       first_order=("order_date", "min"), last_order=("order_date", "max"))
    return digest(len(df), df["revenue"].sum())


def segkit_engine(path: str) -> dict:
    """segkit's out-of-core path (:func:`segkit.data.engine.rfm_table_from_files`): full RFM table."""
    rfm = rfm_table_from_files(path)
    return digest(len(rfm), rfm["monetary_total"].sum())


def segkit_in_memory(path: str) -> dict:
    """segkit's in-memory path (:func:`segkit.data.orders.rfm_table` on the loaded lines)."""
    tx = pd.read_parquet(path, columns=["customer_id", "order_id", "order_date", "amount"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rfm = rfm_table(tx)
    return digest(len(rfm), rfm["monetary_total"].sum())
