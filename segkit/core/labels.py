"""Labels shared by every layer: the placeholder for a missing category, the bucket for rare
ones, and the column-name form of a category value.

Examples
--------
>>> slug(" Mobile App ")
'mobile_app'
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

__all__ = ["UNKNOWN", "OTHER", "slug", "value_columns", "feature_label", "and_list"]

UNKNOWN = "Unknown"


OTHER = "Other"


def slug(value: object) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(value).strip().lower()).strip("_") or "unknown"


def value_columns(prefix: str, values: Iterable[object]) -> dict[str, str]:
    """One column per category value, named ``prefix`` + :func:`slug` of the value: column name →
    the value as typed (so that what a person reads can name the value, not its slug).

    Examples
    --------
    >>> value_columns("channel_share_", ["App <iOS>", "store #1 | Berlin", "web_shop"])
    {'channel_share_app_ios': 'App <iOS>', 'channel_share_store_1_berlin': 'store #1 | Berlin', 'channel_share_web_shop': 'web_shop'}
    """
    return {f"{prefix}{slug(v)}": str(v) for v in values}


def feature_label(column: str, original_values: Mapping[str, str] | None = None) -> str:
    """A feature column as a person reads it: its name in words, and for a column made per
    category value (:func:`value_columns`) that value as typed, in quotes.

    Examples
    --------
    >>> feature_label("median_days_between_orders")
    'median days between orders'
    >>> feature_label("channel_share_store_1_berlin", {"channel_share_store_1_berlin": "store #1 | Berlin"})
    "channel share 'store #1 | Berlin'"
    """
    value = (original_values or {}).get(column)
    stem = column[: len(column) - len(slug(value))] if value is not None and column.endswith(slug(value)) else ""
    if not stem:
        return column.replace("_", " ")
    return f"{stem.replace('_', ' ').strip()} '{value}'"


def and_list(items: Sequence[str], serial_comma: bool = False) -> str:
    """``items`` as an English list: "a", "a and b", "a, b and c" (``serial_comma``: "a, b, and c",
    and "a, and b" for two).

    Examples
    --------
    >>> and_list(["October"]), and_list(["October", "November"]), and_list(["a", "b", "c"], serial_comma=True)
    ('October', 'October and November', 'a, b, and c')
    """
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + (", and " if serial_comma else " and ") + items[-1]
