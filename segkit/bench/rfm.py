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

__all__ = ["digest", "duckdb_sql", "pandas_groupby", "segkit_engine", "segkit_in_memory"]


def digest(customers: int, revenue: float) -> dict:
    return {"customers": int(customers), "net_revenue": round(float(revenue), 2)}


def duckdb_sql(path: str) -> dict:
    """Baseline: a plain DuckDB GROUP BY over the Parquet file (what an analyst would write)."""
    con = duckdb.connect()
    df = con.sql(f"""
        SELECT customer_id, count(DISTINCT order_id) AS orders, sum(amount) AS revenue,
               min(order_date) AS first_order, max(order_date) AS last_order
        FROM read_parquet('{path}') GROUP BY customer_id
    """).df()
    return digest(len(df), df["revenue"].sum())


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
