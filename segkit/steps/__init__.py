"""Notebook steps: the only code that sees a ``RunContext``. ``pipeline`` (run folder, artifacts),
``sources`` (the run's clean lines through the relational core) and one module per notebook: ``audit``, ``rfm``,
``cluster``, ``lifecycle``, ``campaign`` (``build_*_artifacts``, summaries, views)."""

__all__ = ["pipeline", "sources", "audit", "rfm", "cluster", "lifecycle", "campaign"]
