"""Notebook steps: the only code that sees a ``RunContext``. ``pipeline`` (run folder, artifacts),
``sources`` (the run's clean lines through the relational core), ``parameters`` (a notebook's parameters cell,
checked like the CLI's flags) and one module per notebook: ``audit``, ``rfm``, ``cluster``, ``lifecycle``,
``campaign`` (``build_*_artifacts``, summaries, views)."""

__all__ = ["pipeline", "sources", "parameters", "audit", "rfm", "cluster", "lifecycle", "campaign"]
