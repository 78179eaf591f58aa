"""Notebook steps: the only code that sees a ``RunContext``. ``pipeline`` (run folder, artifacts),
``sources`` (pandas or DuckDB, as the audit chose) and one module per notebook: ``audit``, ``rfm``,
``cluster``, ``lifecycle``, ``campaign`` (``build_*_artifacts``, summaries, views)."""

__all__ = ["pipeline", "sources", "audit", "rfm", "cluster", "lifecycle", "campaign"]
