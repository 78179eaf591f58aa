"""Data: readers (``io``), the order definition in pandas (``orders``), the audit's facts and
settings (``auditfacts``), the DuckDB engine (``engine``) and the datasets. Imports only ``segkit.core``."""

__all__ = ["io", "orders", "auditfacts", "relational", "engine", "datasets"]
