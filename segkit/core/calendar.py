"""Public holidays of the shop's countries (the ``holidays`` package): days a shop may rightly be quiet.

The audit reads them to tell a gap in the order volume that the calendar explains (Christmas,
Easter, bank holidays: a note) from one that may be a hole in the export (a warning). Which
countries: ``audit.holiday_countries`` in the config (ISO codes or names), else the most common
country of the customers (or of the order lines, where the export carries one), else none
(:func:`shop_countries`). A country's holidays are its national ones and those of each of its
subdivisions (England's Easter Monday is not a holiday of Scotland), named with where they apply.

Examples
--------
>>> country_code("United Kingdom"), country_code("EIRE"), country_code("de"), country_code("Unspecified")
('GB', 'IE', 'DE', None)
>>> days = public_holidays(("GB",), pd.Timestamp("2011-04-20"), pd.Timestamp("2011-04-30"))
>>> days.index.strftime("%m-%d").tolist()
['04-22', '04-25', '04-29']
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import holidays
import numpy as np
import pandas as pd

from segkit.core.errors import ConfigError

__all__ = ["country_code", "shop_countries", "public_holidays", "holiday_explanations", "BRIDGE_DAYS"]

#: Days a gap may reach beyond a public holiday and still be explained by it (the days between
#: Christmas and New Year, the Saturday between Good Friday and Easter Monday).
BRIDGE_DAYS = 3

#: Country names found in real exports that are neither a code nor the ``holidays`` package's name.
ALIASES = {"eire": "IE", "uk": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
           "northern ireland": "GB", "usa": "US", "united states of america": "US", "rsa": "ZA",
           "czech republic": "CZ", "holland": "NL"}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """Normalised country name, class name and codes of every country ``holidays`` knows -> ISO code."""
    out: dict[str, str] = {}
    for module, (cls, alpha2, *rest) in holidays.registry.COUNTRIES.items():
        for name in (module, re.sub(r"(?<!^)(?=[A-Z])", " ", cls), alpha2, *[r for r in rest if isinstance(r, str)
                                                                             and not r.startswith("Holidays")]):
            out.setdefault(_key(name), alpha2)
    out.update(ALIASES)
    return out


def country_code(value: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code of a country given as a code (``GB``, ``GBR``) or a name
    (``United Kingdom``, ``EIRE``); None when ``holidays`` does not know it (or no value).

    Examples
    --------
    >>> country_code("GBR"), country_code("united_kingdom"), country_code(None)
    ('GB', 'GB', None)
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
        return None
    return _names().get(_key(value))


def shop_countries(configured: Sequence[str] | None, countries: pd.Series | None = None, *,
                   counts: pd.Series | None = None) -> tuple[str, ...]:
    """The countries whose public holidays apply to the shop, as ISO codes.

    Parameters
    ----------
    configured : sequence of str, optional
        ``audit.holiday_countries``: codes or names; ``[]`` = no holidays. None = from the data.
    countries : Series, optional
        A country per customer (or per order line): the most common one that ``holidays`` knows
        is the shop's. None or no known country = none.
    counts : Series, optional
        Instead of ``countries``: how many customers (or lines) have each country value (index: the value),
        as merged from the partitions of a table that stays on Spark's executors.

    Raises
    ------
    ConfigError
        A configured country that ``holidays`` does not know.

    Examples
    --------
    >>> shop_countries(None, pd.Series(["United Kingdom", "France", "United Kingdom", None]))
    ('GB',)
    >>> shop_countries(["DE", "Austria"]), shop_countries([], pd.Series(["France"]))
    (('DE', 'AT'), ())
    >>> shop_countries(None, counts=pd.Series({"France": 1, "United Kingdom": 2}))
    ('GB',)
    """
    if configured is not None:
        codes = []
        for value in configured:
            code = country_code(value)
            if code is None:
                raise ConfigError(f"audit.holiday_countries: {value!r} is not a country the holidays package knows. "
                                  "Use ISO codes such as GB, DE, US (or [] for no public holidays).")
            codes.append(code)
        return tuple(dict.fromkeys(codes))
    if counts is None:
        if countries is None or not len(countries):
            return ()
        counts = pd.Series(countries).dropna().astype("string").value_counts(sort=False)
    elif not len(counts):
        return ()
    known = pd.Series([country_code(v) for v in counts.index], index=counts.index, dtype="object")
    totals = counts[known.notna().to_numpy()].groupby(known.dropna().to_numpy()).sum()
    if totals.empty:
        return ()
    return (str(totals.sort_index().idxmax()),)


def public_holidays(countries: Sequence[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Public holidays of ``countries`` from ``start`` to ``end`` (days, both included).

    Returns
    -------
    Series
        Index: the days (sorted, ``datetime64[ns]``); values: the holidays' names with the country,
        and the subdivisions when not national (``"Easter Monday (GB: ENG, NIR, WLS)"``), joined by
        ``"; "`` when several fall on one day.

    Examples
    --------
    >>> public_holidays(("GB",), pd.Timestamp("2011-04-25"), pd.Timestamp("2011-04-25")).tolist()
    ['Easter Monday (GB: ENG, NIR, WLS)']
    """
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if not countries or end < start:
        return pd.Series([], index=pd.DatetimeIndex([], dtype="datetime64[ns]"), dtype="object")
    years = list(range(start.year, end.year + 1))
    where: dict[tuple[pd.Timestamp, str, str], list[str]] = {}
    for code in countries:
        subdivisions = holidays.list_supported_countries().get(code, [])
        national = holidays.country_holidays(code, years=years)
        for day, name in national.items():
            where.setdefault((pd.Timestamp(day), code, name), [])
        for sub in subdivisions:
            for day, name in holidays.country_holidays(code, subdiv=sub, years=years).items():
                if national.get(day) != name:
                    where.setdefault((pd.Timestamp(day), code, name), []).append(sub)
    rows: dict[pd.Timestamp, list[str]] = {}
    for (day, code, name), subs in sorted(where.items()):
        if start <= day <= end:
            rows.setdefault(day, []).append(f"{name} ({code}{': ' + ', '.join(sorted(subs)) if subs else ''})")
    index = pd.DatetimeIndex(sorted(rows), dtype="datetime64[ns]")
    return pd.Series(["; ".join(rows[d]) for d in index], index=index, dtype="object")


def holiday_explanations(gaps: pd.DataFrame, gap_days: pd.Series, countries: Sequence[str],
                         bridge_days: int = BRIDGE_DAYS) -> pd.Series:
    """For each gap period, the public holidays that explain it, or ``""`` when they do not.

    A period is explained when each of its gap days is a public holiday of ``countries`` or lies
    at most ``bridge_days`` days from one (24 and 27-31 December around Christmas and New Year,
    the Saturday of Easter). The text names, in date order, each gap day's own holiday: the day's
    holiday, or for a bridge day the nearest one (both when two are equally near). So a gap on Good
    Friday and another on Easter Monday each name their own holiday, not both.

    Parameters
    ----------
    gaps : DataFrame
        ``start, end`` per gap period (:func:`segkit.audit.gap_periods`).
    gap_days : Series
        Every gap day (dates).
    countries : sequence of str
        ISO codes (:func:`shop_countries`).

    Examples
    --------
    >>> gaps = pd.DataFrame({"start": pd.to_datetime(["2010-12-24", "2011-03-09"]),
    ...                      "end": pd.to_datetime(["2011-01-03", "2011-03-09"])})
    >>> days = pd.Series(pd.to_datetime(["2010-12-24", "2010-12-27", "2010-12-30", "2011-01-03", "2011-03-09"]))
    >>> explained = holiday_explanations(gaps, days, ("GB",))
    >>> (explained != "").tolist(), explained[0].split("; ")[:2]
    ([True, False], ['Christmas Day (GB)', 'Christmas Day (observed) (GB)'])
    """
    out = pd.Series("", index=gaps.index, dtype="object")
    if gaps.empty or not countries:
        return out
    reach = pd.Timedelta(days=bridge_days)
    calendar = public_holidays(countries, gaps["start"].min() - reach, gaps["end"].max() + reach)
    if calendar.empty:
        return out
    marks = calendar.index.to_numpy(dtype="datetime64[ns]")
    days = pd.to_datetime(pd.Series(gap_days)).dt.normalize().to_numpy(dtype="datetime64[ns]")
    nearest = np.searchsorted(marks, days)
    before = np.abs(days - marks[np.clip(nearest - 1, 0, len(marks) - 1)])
    after = np.abs(marks[np.clip(nearest, 0, len(marks) - 1)] - days)
    distance = np.minimum(before, after)  # from each gap day to its nearest holiday
    near = distance <= reach.to_timedelta64()
    for i, (start, end) in enumerate(zip(gaps["start"], gaps["end"])):
        inside = (days >= np.datetime64(start, "ns")) & (days <= np.datetime64(end, "ns"))
        if inside.any() and near[inside].all():
            own = np.unique(np.concatenate([marks[np.abs(marks - day) == gap] for day, gap
                                            in zip(days[inside], distance[inside])]))
            out.iloc[i] = "; ".join(calendar[pd.DatetimeIndex(own)])
    return out
