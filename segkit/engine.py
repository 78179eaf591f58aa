"""Out-of-core engine: customer-level aggregation of order-line files larger than memory.

pandas is the in-memory path (:func:`segkit.rfm.rfm_table`); this module runs the *same*
definitions as SQL in DuckDB over CSV/Parquet files, a folder of them or a glob, streaming the
rows, so 100M order lines aggregate on one machine. Sums are exact (DECIMAL) so results do not
depend on DuckDB's parallel summation order.

Definitions (identical to :func:`segkit.rfm.rfm_table`): lines are grouped into orders by
``(customer_id, order_id)`` (order date = earliest line, amount = net sum including returns);
an order is a purchase when its net amount is > 0; orders dated on or after ``as_of`` are
excluded; ``monetary_total`` is the net of all remaining orders; customers without any purchase
are left out.

Examples
--------
>>> import tempfile, pathlib
>>> from segkit.bench.data import order_lines_parquet
>>> path = order_lines_parquet(pathlib.Path(tempfile.mkdtemp()) / "l.parquet", n_lines=2000)
>>> rfm = rfm_table_from_files(path)
>>> list(rfm.columns)[:4]
['customer_id', 'recency_days', 'frequency', 'monetary_total']
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from segkit.errors import DataError

RFM_COLUMNS = ("customer_id", "recency_days", "frequency", "monetary_total", "monetary_avg",
               "tenure_days", "first_order_date", "last_order_date")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_relation(source: str | Path | list[str | Path]) -> str:
    """SQL table expression reading ``source``: a file, a folder of files, a glob, or a list.

    Parquet and CSV (``.csv``, ``.csv.gz``, ``.tsv``) are supported; a folder is read as all its
    ``*.parquet`` files, else all its ``*.csv`` files.
    """
    paths = [source] if not isinstance(source, list) else source
    files: list[str] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("*.parquet")) or sorted(p.glob("*.csv")) or sorted(p.glob("*.csv.gz"))
            if not found:
                raise DataError(f"{p}: the folder holds no .parquet or .csv files. Point at the files "
                                "of the transaction log (a file, a folder of them, or a glob).")
            files += [str(f) for f in found]
        elif any(ch in str(p) for ch in "*?["):
            files.append(str(p))
        elif not p.exists():
            raise DataError(f"{p}: file not found. Check the path of the transaction log.")
        else:
            files.append(str(p))
    kinds = {"parquet" if f.endswith(".parquet") else "csv" for f in files}
    if len(kinds) > 1:
        raise DataError(f"{source}: mixes Parquet and CSV files; convert them to one format.")
    listing = "[" + ", ".join(_quote(f) for f in files) + "]"
    if kinds == {"parquet"}:
        return f"read_parquet({listing}, union_by_name = true)"
    return f"read_csv({listing}, union_by_name = true, header = true)"


def connect(memory_limit: str | None = None, threads: int | None = None,
            temp_directory: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for bounded-memory aggregation (spills to ``temp_directory``)."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    if memory_limit:
        con.execute(f"SET memory_limit = {_quote(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory:
        con.execute(f"SET temp_directory = {_quote(str(temp_directory))}")
    return con


def rfm_sql(relation: str, as_of: pd.Timestamp | None) -> str:
    """The SQL of :func:`rfm_table_from_files` over a table expression ``relation``."""
    as_of_sql = (f"DATE {_quote(as_of.strftime('%Y-%m-%d'))}" if as_of is not None
                 else "(SELECT CAST(max(order_date) AS DATE) + 1 FROM orders)")
    return f"""
        WITH orders AS (
            SELECT CAST(customer_id AS VARCHAR) AS customer_id,
                   CAST(order_id AS VARCHAR) AS order_id,
                   min(CAST(order_date AS TIMESTAMP)) AS order_date,
                   sum(CAST(amount AS DECIMAL(38, 6))) AS amount
            FROM {relation}
            GROUP BY ALL
        ),
        params AS (SELECT {as_of_sql} AS as_of),
        kept AS (SELECT o.* FROM orders o, params p WHERE o.order_date < p.as_of),
        per AS (
            SELECT customer_id,
                   sum(amount) AS net,
                   count(*) FILTER (WHERE amount > 0) AS frequency,
                   min(order_date) FILTER (WHERE amount > 0) AS first_order_date,
                   max(order_date) FILTER (WHERE amount > 0) AS last_order_date
            FROM kept
            GROUP BY customer_id
        )
        SELECT customer_id,
               date_diff('day', CAST(last_order_date AS DATE), p.as_of) AS recency_days,
               frequency,
               CAST(net AS DOUBLE) AS monetary_total,
               CAST(net AS DOUBLE) / frequency AS monetary_avg,
               date_diff('day', CAST(first_order_date AS DATE), p.as_of) AS tenure_days,
               first_order_date, last_order_date
        FROM per, params p
        WHERE frequency > 0
        ORDER BY customer_id
    """


def rfm_table_from_files(
    source: str | Path | list[str | Path],
    as_of: str | pd.Timestamp | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """:func:`segkit.rfm.rfm_table` computed out-of-core from order-line files.

    Parameters
    ----------
    source : path, glob or list of paths
        Canonical order lines (``customer_id, order_id, order_date, amount``) in Parquet or CSV.
    as_of : str or Timestamp, optional
        Exclusive analysis date; None = the day after the last order.
    memory_limit : str, optional
        DuckDB memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk.
    temp_directory : str or Path, optional
        Where DuckDB spills (default: its own temporary folder).

    Returns
    -------
    DataFrame
        The columns of :func:`segkit.rfm.rfm_table` with the same dtypes, sorted by customer.
    """
    as_of_ts = None if as_of is None else pd.Timestamp(as_of).normalize()
    con = connect(memory_limit=memory_limit, temp_directory=temp_directory)
    try:
        frame = con.sql(rfm_sql(source_relation(source), as_of_ts)).df()
    except duckdb.Error as exc:
        raise DataError(f"{source}: could not aggregate the transaction log ({exc}). It needs the "
                        "canonical columns customer_id, order_id, order_date and amount.") from None
    frame["customer_id"] = frame["customer_id"].astype("string")
    for col in ("recency_days", "frequency", "tenure_days"):
        frame[col] = frame[col].astype("int64")
    return frame[list(RFM_COLUMNS)].reset_index(drop=True)
