"""Benchmark data: canonical order-line Parquet files of any size, generated out-of-core.

DuckDB writes the rows straight to Parquet (never all in Python memory), so 100M lines fit on
the 24 GB machine. Values are pseudo-random but deterministic (hash of the row number).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> path = order_lines_parquet(d / "lines.parquet", n_lines=1000)
>>> import pandas as pd; len(pd.read_parquet(path))
1000
"""

from __future__ import annotations

from pathlib import Path

import duckdb

__all__ = ["LINES_PER_CUSTOMER", "LINES_PER_ORDER", "order_lines_sql", "order_lines_parquet", "customer_lines_parquet",
           "tiled_shop"]

LINES_PER_CUSTOMER = 10
LINES_PER_ORDER = 2


def order_lines_sql(n_lines: int, offset: int = 0, n_customers: int | None = None, *,
                    round_robin: bool = False) -> str:
    """SQL producing ``n_lines`` canonical order lines (rows ``offset`` … ``offset+n_lines-1``)
    from ``n_customers`` customers (default: one per ``LINES_PER_CUSTOMER`` lines).

    Orders go to customers by a hash of the order number (customers get different numbers of
    orders, some none), or with ``round_robin`` in turn, so that every one of the ``n_customers``
    has orders once there are as many orders as customers."""
    n_customers = n_customers or max(1, (offset + n_lines) // LINES_PER_CUSTOMER)
    order = f"i // {LINES_PER_ORDER}"
    customer = f"({order}) % {n_customers}" if round_robin else f"hash({order}) % {n_customers}"
    return f"""
        WITH r AS (SELECT range AS i FROM range({offset}, {offset + n_lines}))
        SELECT
            'C' || lpad(CAST({customer} AS VARCHAR), 9, '0') AS customer_id,
            'O' || lpad(CAST(i // {LINES_PER_ORDER} AS VARCHAR), 11, '0') AS order_id,
            TIMESTAMP '2022-01-01' + to_seconds(CAST(hash(i // {LINES_PER_ORDER} + 7) % (730 * 86400) AS BIGINT)) AS order_date,
            'P' || CAST(hash(i + 3) % 5000 AS VARCHAR) AS product_id,
            ['books', 'home', 'fashion', 'garden', 'toys', 'beauty'][1 + CAST(hash(i + 5) % 6 AS INTEGER)] AS category,
            ['web', 'app', 'store'][1 + CAST(hash(i // {LINES_PER_ORDER} + 11) % 3 AS INTEGER)] AS channel,
            CASE WHEN hash(i + 13) % 100 < 3 THEN -1.0 ELSE 1.0 + CAST(hash(i + 17) % 3 AS DOUBLE) END AS quantity,
            round(2.0 + CAST(hash(i + 19) % 9800 AS DOUBLE) / 100.0, 2) AS unit_price,
            round(quantity * unit_price, 2) AS amount
        FROM r
    """


def order_lines_parquet(path: str | Path, n_lines: int, files: int = 1) -> Path:
    """Write ``n_lines`` order lines to ``path`` (one file, or a folder of ``files`` parts)."""
    path = Path(path)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    if files <= 1:
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY ({order_lines_sql(n_lines)}) TO '{path}' (FORMAT parquet)")
        return path
    path.mkdir(parents=True, exist_ok=True)
    per = -(-n_lines // files)
    for k in range(files):
        n = min(per, n_lines - k * per)
        if n <= 0:
            break
        # Customers are drawn over the whole id range so parts overlap like real monthly extracts.
        sql = order_lines_sql(n, offset=k * per, n_customers=max(1, n_lines // LINES_PER_CUSTOMER))
        con.execute(f"COPY ({sql}) TO '{path / f'part-{k:04d}.parquet'}' (FORMAT parquet)")
    return path


def customer_lines_parquet(path: str | Path, n_customers: int, orders_per_customer: int) -> Path:
    """Order lines in which each of ``n_customers`` customers has exactly ``orders_per_customer`` orders
    (``LINES_PER_ORDER`` lines each), written to one Parquet file at ``path``: data whose number of
    customers, not of lines per customer, is what grows.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = customer_lines_parquet(pathlib.Path(tempfile.mkdtemp()) / "c.parquet", 50, 3)
    >>> import pandas as pd; lines = pd.read_parquet(p)
    >>> len(lines), lines["customer_id"].nunique(), int(lines.groupby("customer_id")["order_id"].nunique().max())
    (300, 50, 3)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    sql = order_lines_sql(n_customers * orders_per_customer * LINES_PER_ORDER, n_customers=n_customers,
                          round_robin=True)
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    return path


def tiled_shop(folder: str | Path, base: str | Path, copies: int, parts: int | None = None) -> Path:
    """A large shop made of ``copies`` copies of a generated shop, written out-of-core.

    The base shop (``transactions.csv``, ``customers.csv``, ``campaign.csv`` of
    :func:`segkit.data.datasets.write_sample`) keeps its customers' behaviour, campaigns, returns and
    planted dirt; copy ``k`` suffixes every customer and order id with ``-k`` so the copies are
    distinct customers. Transactions go to a folder of Parquet parts (``parts`` files, default one
    per 10 copies), customers and campaign rows to one Parquet file each; every column is kept as
    the text of the CSV, so the engine types them as it would an export. Returns the config path.

    The copies are identical twins, not independent customers: use the result to measure speed
    and memory, not statistics (a small arm imbalance of the base shop becomes a significant
    sample-ratio mismatch in ten copies, and intervals are too narrow).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from segkit.data.datasets import generate_shop, write_sample
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_sample(d / "base", generate_shop(n_customers=50, seed=1))
    >>> config = tiled_shop(d / "big", d / "base", copies=3)
    >>> import pandas as pd
    >>> lines = pd.read_parquet(d / "big" / "transactions")
    >>> len(lines) == 3 * len(pd.read_csv(d / "base" / "transactions.csv"))
    True
    """
    folder, base = Path(folder), Path(base)
    lines_dir = folder / "transactions"
    lines_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")

    def read(name: str) -> str:
        return f"read_csv('{base / name}', all_varchar = true, header = true)"

    def tiled(name: str, suffixed: tuple[str, ...], first: int, last: int) -> str:
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {read(name)}").fetchall()]
        exprs = ", ".join(f"CASE WHEN \"{c}\" IS NULL THEN NULL ELSE \"{c}\" || '-' || CAST(k AS VARCHAR) END AS \"{c}\""
                          if c in suffixed else f"\"{c}\"" for c in cols)
        return f"SELECT {exprs} FROM {read(name)}, range({first}, {last}) AS r(k)"

    parts = parts or max(1, -(-copies // 10))
    per = -(-copies // parts)
    for p in range(parts):
        first, last = p * per, min(copies, (p + 1) * per)
        if first >= last:
            break
        con.execute(f"COPY ({tiled('transactions.csv', ('customer_id', 'order_id'), first, last)}) "
                    f"TO '{lines_dir / f'part-{p:04d}.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY ({tiled('customers.csv', ('customer_id',), 0, copies)}) "
                f"TO '{folder / 'customers.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY ({tiled('campaign.csv', ('customer_id',), 0, copies)}) "
                f"TO '{folder / 'campaign.parquet'}' (FORMAT parquet)")
    config = folder / "config.yml"
    config.write_text("data:\n  transactions: transactions\n  customers: customers.parquet\n"
                      "  campaign: campaign.parquet\nrun:\n  seed: 42\n")
    return config
