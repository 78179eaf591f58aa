"""One exception family for everything segkit reports to a user.

Every message names *where* (file, column, rows) and *what to do*. The CLI prints
``SegkitError`` messages without a traceback; any other exception is a bug.

Examples
--------
>>> raise DataError("transactions.csv: column 'order_date' is missing. Map it in the config.")
Traceback (most recent call last):
...
segkit.core.errors.DataError: transactions.csv: column 'order_date' is missing. Map it in the config.
"""

from __future__ import annotations

__all__ = ["SegkitError", "DataError", "ConfigError", "UpstreamMissingError", "AuditFailedError",
    "ModelFitError", "first_line", "format_rows"]


class SegkitError(Exception):
    """Base class: an error whose message is meant for the analyst, not a developer."""


class DataError(SegkitError, ValueError):
    """Input data does not meet the contract (missing column, bad dates, empty file...)."""


class ConfigError(SegkitError, ValueError):
    """The YAML configuration or a parameter is invalid."""


class UpstreamMissingError(SegkitError, FileNotFoundError):
    """A notebook needs an artifact that an earlier notebook has not written yet."""


class AuditFailedError(DataError):
    """The data audit found error-severity problems; the message carries the audit table."""


class ModelFitError(SegkitError, RuntimeError):
    """A model could not be fitted (too little data, no convergence); says what to try."""


def format_rows(rows, limit: int = 5, total: int | None = None) -> str:
    """Render up to ``limit`` offending row numbers (1-based as in a spreadsheet); ``total``: how many rows
    offend when ``rows`` holds only the first of them (default ``len(rows)``).

    Examples
    --------
    >>> format_rows([0, 4, 9, 10, 11, 12, 13])
    'rows 2, 6, 11, 12, 13 (and 2 more)'
    >>> format_rows([0, 4], total=40)
    'rows 2, 6 (and 38 more)'
    """
    rows = list(rows)
    count = len(rows) if total is None else max(int(total), len(rows))
    shown = ", ".join(str(int(r) + 2) for r in rows[:limit])  # +1 for 1-based, +1 for header line
    more = f" (and {count - min(limit, len(rows))} more)" if count > min(limit, len(rows)) else ""
    word = "row" if count == 1 else "rows"
    return f"{word} {shown}{more}"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (an engine's error text runs on with hints and a stack), or
    its class name when the message is empty: what a :class:`SegkitError` quotes of a library's error.

    Examples
    --------
    >>> first_line(ValueError("Parser Error: syntax error at or near 'x'\\nLINE 1: SELECT x"))
    "Parser Error: syntax error at or near 'x'"
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
