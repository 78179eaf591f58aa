"""Out-of-core contenders: the engine with a bounded DuckDB memory limit (spills to disk).

- :func:`segkit_engine_bounded`: customer-level RFM (:func:`segkit.data.engine.rfm_table_from_files`).
- :func:`segkit_audit_bounded`: the whole data audit of the transactions plus the clean table
  (:class:`segkit.data.engine.TransactionLog`), what ``01_data_audit`` does with ``engine.kind: duckdb``.
- :func:`pandas_audit`: the in-memory path on the same file (:func:`segkit.data.io.load_table`,
  :func:`segkit.audit.run_audit`, the clean table to Parquet), the baseline at sizes that fit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from segkit.audit import audit_log, run_audit
from segkit.bench.rfm import digest
from segkit.data.engine import TransactionLog, rfm_table_from_files
from segkit.data.io import load_table

__all__ = ["DUCKDB_MEMORY_LIMIT", "AUDIT_MEMORY_LIMIT", "segkit_engine_bounded", "segkit_audit_bounded",
    "pandas_audit"]

DUCKDB_MEMORY_LIMIT = "2GB"
AUDIT_MEMORY_LIMIT = "1500MB"  # the engine.yml default


def segkit_engine_bounded(path: str) -> dict:
    """:func:`segkit.data.engine.rfm_table_from_files` with ``memory_limit=2GB`` over ``path``."""
    with tempfile.TemporaryDirectory(prefix="segkit-spill-") as spill:
        rfm = rfm_table_from_files(path, memory_limit=DUCKDB_MEMORY_LIMIT, temp_directory=spill)
    return digest(len(rfm), rfm["monetary_total"].sum())


def _audit_digest(result) -> dict:
    c = result.counts
    return {"rows_in": int(c["transactions_rows_in"]), "rows_clean": int(c["transactions_rows_clean"]),
            "findings": int(len(result.findings)), "status": result.status}


def segkit_audit_bounded(path: str) -> dict:
    """The out-of-core audit of ``path`` (file or folder) and its clean table, DuckDB limit 1500MB."""
    with tempfile.TemporaryDirectory(prefix="segkit-audit-") as tmp:
        with TransactionLog(path, memory_limit=AUDIT_MEMORY_LIMIT, temp_directory=tmp) as log:
            result = audit_log(log)
            log.write_clean(Path(tmp) / "transactions_clean.parquet")
    return _audit_digest(result)


def pandas_audit(path: str) -> dict:
    """The in-memory audit of ``path`` (one file) and its clean table written to Parquet."""
    result = run_audit({"transactions": load_table(path, "transactions")})
    with tempfile.TemporaryDirectory(prefix="segkit-audit-") as tmp:
        result.transactions.to_parquet(Path(tmp) / "transactions_clean.parquet", index=False)
    return _audit_digest(result)
