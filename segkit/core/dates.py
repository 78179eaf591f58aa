"""The analysis date, defined once.

``as_of`` is the first day *not* analysed: orders dated before it count, orders on or after it do
not. Given by the user (notebook parameter, ``run.as_of``), it is read with :func:`parse_as_of`;
absent, it is :func:`day_after` the last order (the audit records the one it used, and every later
notebook reads it from ``audit_summary.json``).

Examples
--------
>>> parse_as_of("2024-03-05 10:00")
Timestamp('2024-03-05 00:00:00')
>>> day_after(pd.Timestamp("2024-03-05 18:30"))
Timestamp('2024-03-06 00:00:00')
>>> resolve_as_of(None, pd.Series(pd.to_datetime(["2024-01-02 09:00", "2024-03-05 18:30"])))
Timestamp('2024-03-06 00:00:00')
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from segkit.core.errors import ConfigError

__all__ = ["ONE_DAY", "parse_as_of", "day_after", "resolve_as_of"]

ONE_DAY = pd.Timedelta(days=1)


def parse_as_of(value: Any) -> pd.Timestamp:
    """``value`` as a midnight, timezone-free Timestamp, or a :class:`~segkit.core.errors.ConfigError`.

    Examples
    --------
    >>> parse_as_of("2024-03-05T23:00:00+05:00")
    Timestamp('2024-03-05 00:00:00')
    >>> parse_as_of("soon")
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: as_of = 'soon' is not a date; use YYYY-MM-DD.
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"as_of = {value!r} is not a date; use YYYY-MM-DD.") from None
    if pd.isna(ts):
        raise ConfigError(f"as_of = {value!r} is not a date; use YYYY-MM-DD.")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


def day_after(last: Any) -> pd.Timestamp:
    """Midnight of the day after ``last`` (the last order's date); NaT when ``last`` is missing.

    Examples
    --------
    >>> day_after("2024-12-31 23:59")
    Timestamp('2025-01-01 00:00:00')
    >>> day_after(None) is pd.NaT
    True
    """
    last = pd.Timestamp(last)
    return pd.NaT if pd.isna(last) else last.normalize() + ONE_DAY


def resolve_as_of(as_of: Any, dates: pd.Series) -> pd.Timestamp:
    """``as_of`` parsed, or, when None, the day after the latest of ``dates`` (NaT without dates).

    Examples
    --------
    >>> resolve_as_of("2024-02-01", pd.Series(pd.to_datetime(["2024-03-05"])))
    Timestamp('2024-02-01 00:00:00')
    """
    return day_after(dates.max()) if as_of is None else parse_as_of(as_of)
