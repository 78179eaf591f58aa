"""Data: readers (``io``), the order definition in pandas (``orders``), the audit's facts and
settings (``auditfacts``), the DuckDB engine (``engine``) and the datasets (``datasets``; the
Online-Retail-like export with planted truth: ``online_retail``), cancellations matched to the
orders they cancel and kept value (``cancellations``). Imports only ``segkit.core``."""

__all__ = ["io", "orders", "auditfacts", "relational", "engine", "datasets", "online_retail", "cancellations"]
