"""Out-of-core contender: the engine with a bounded DuckDB memory limit (spills to disk)."""

from __future__ import annotations

import tempfile

from segkit.bench.rfm import _digest
from segkit.engine import rfm_table_from_files

DUCKDB_MEMORY_LIMIT = "2GB"


def segkit_engine_bounded(path: str) -> dict:
    """:func:`segkit.engine.rfm_table_from_files` with ``memory_limit=2GB`` over ``path``."""
    with tempfile.TemporaryDirectory(prefix="segkit-spill-") as spill:
        rfm = rfm_table_from_files(path, memory_limit=DUCKDB_MEMORY_LIMIT, temp_directory=spill)
    return _digest(len(rfm), rfm["monetary_total"].sum())
