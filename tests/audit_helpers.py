"""Helpers shared by the tests that compare two audits of the same order lines (not a test module).

Two readers or engines of the same lines (a CSV and its Parquet, DuckDB and Spark) must give the same
:class:`segkit.audit.AuditResult`: :func:`assert_same_audit` compares every field the audit computes.
"""

from __future__ import annotations

import pytest
from pandas.testing import assert_frame_equal

from segkit.audit import AuditResult
from segkit.core.schema import CUSTOMERS

__all__ = ["assert_same_audit"]


def assert_same_audit(a: AuditResult, b: AuditResult) -> None:
    """Every field of two audits equal: findings, rules, counts, dates, guests, every table and the offending rows."""
    assert_frame_equal(a.findings, b.findings)
    assert_frame_equal(a.cleaning_rules, b.cleaning_rules)
    assert a.counts == b.counts
    assert (a.as_of, a.period) == (b.as_of, b.period)
    assert a.guests == b.guests
    for name in ("missing", "checks", "daily", "gaps", "outlier_rules", "order_values", "quantities"):
        assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert_frame_equal(_customers(a), _customers(b), obj="customers")
    assert a.returns == pytest.approx(b.returns, rel=0, abs=0, nan_ok=True)
    assert list(a.offending) == list(b.offending)
    for key in a.offending:
        assert_frame_equal(a.offending[key], b.offending[key], obj=key)


def _customers(result: AuditResult):
    """customers_clean of an audit: in memory, or (a Spark audit) held on the executors, collected here."""
    if result.customer_rows is None:
        return result.customers
    rows = result.customer_rows.rows.toPandas().astype(CUSTOMERS.dtypes)
    return rows.sort_values("customer_id", kind="mergesort", ignore_index=True)
