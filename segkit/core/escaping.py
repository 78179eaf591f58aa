"""Text from data or config made inert where segkit writes Markdown, HTML or spreadsheets.

Every string that comes from the user's data or config (customer, order, product and campaign
ids, arms, categories, channels, countries, segment and cluster names, currency, file names)
goes through one rule wherever it becomes text of a report:

- :func:`escape_markdown` — the value reads as itself in Markdown (and in the HTML rendered
  from it): no markup, no emphasis, no link, no code span, no table break, no math;
- :func:`neutralise_formula` / :func:`restore_formula` — a text cell of a CSV that a
  spreadsheet would evaluate as a formula gets a leading ``'`` (OWASP's advice on CSV
  injection), reversibly, so segkit reads its own files back unchanged.

No segkit imports: every layer (analyses, pipeline, report) may use it.

Examples
--------
>>> escape_markdown("<script>alert(1)</script>")
'\\\\<script\\\\>alert(1)\\\\</script\\\\>'
>>> neutralise_formula('=HYPERLINK("http://evil.example/","x")')
'\\'=HYPERLINK("http://evil.example/","x")'
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["escape_markdown", "starts_like_formula", "formula_cells", "neutralise_formula", "restore_formula",
           "neutralise_formula_cells", "restore_formula_cells", "FORMULA_PATTERN", "RESTORE_PATTERN",
           "PLAIN_NUMBER"]

# Characters with a meaning anywhere in a line of (GitHub-flavoured, math-enabled) Markdown:
# backslash escapes, code spans, emphasis, links/images, raw HTML and autolinks, entities,
# table cells, strikethrough, math. CommonMark lets any ASCII punctuation be backslash-escaped.
_INLINE_SPECIAL = re.compile(r"[\\`*\[\]<>&|~$]")
# ``_`` opens or closes emphasis only at a word boundary; between two letters/digits it is text
# (``as_of``, ``customer_segments.csv`` stay as they are).
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What starts a block when it opens a line (or a list item): heading, quote, list, rule/setext.
_BLOCK_START = re.compile(r"^(\s*)([#+=-]|\d+[.)])")
# Bare URLs that GitHub-flavoured Markdown turns into links by themselves (``http://…``, ``www.…``).
_BARE_URL = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<![0-9A-Za-z])(?i:www)(\.)")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")


def escape_markdown(value: Any) -> str:
    """``value`` as literal text in Markdown: what is rendered is exactly the value's text.

    Markdown/HTML metacharacters are backslash-escaped (``\\ ` * _ [ ] < > & | ~ $``; ``_``
    only at a word boundary) and a leading ``#``, ``+``, ``-``, ``=`` or ``1.`` that would start
    a heading, list or rule; line breaks become spaces (a value never starts a new block).
    Raw HTML, ``[x](javascript:…)`` links, ``<javascript:…>`` autolinks, emphasis, code spans,
    ``|`` table breaks and ``$…$`` math therefore cannot come from a value, nor a bare
    ``http://…``/``www.…`` URL turned into a link (``:``/``.`` escaped there).

    Parameters
    ----------
    value : Any
        Text from data or config (anything else is converted with ``str``).

    Returns
    -------
    str
        Markdown source that renders as the value's text.

    Examples
    --------
    >>> escape_markdown("[x](javascript:alert(1))")
    '\\\\[x\\\\](javascript:alert(1))'
    >>> escape_markdown("as_of *bold* _em_ a|b")
    'as_of \\\\*bold\\\\* \\\\_em\\\\_ a\\\\|b'
    >>> escape_markdown("# 1 of\\nmany"), escape_markdown("1. first"), escape_markdown("Can't Lose Them")
    ('\\\\# 1 of many', '1\\\\. first', "Can't Lose Them")
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    text = _INLINE_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _BARE_URL.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], text)
    return _BLOCK_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text, count=1)


# --------------------------------------------------------------------------- spreadsheets
#: Where a spreadsheet starts evaluating: a cell, or a part of it after ``;``, tab or a line
#: break (where a spreadsheet may split it), that begins with ``= + - @``, tab or carriage return (OWASP), or
#: with ``'`` (escaped too, so that :func:`restore_formula` is exact).
FORMULA_PATTERN = re.compile(r"(?:^|(?<=[;\t\r\n]))(?=[=+\-@\t\r'])")
#: The quote :func:`neutralise_formula` added, wherever it can have added one.
RESTORE_PATTERN = re.compile(r"(?:^|(?<=[;\t\r\n]))'")
# A plain number is data, not a formula (-1234 or +49 cannot run anything): left as it is.
PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def starts_like_formula(text: Any) -> bool:
    """True when ``text`` is a string a spreadsheet could evaluate: :func:`neutralise_formula`
    changes it.

    Examples
    --------
    >>> [starts_like_formula(v) for v in ("=1+1", "+1+cmd|' /C calc'!A0", "@SUM(A1)", "-1234", "C00001", None)]
    [True, True, True, False, False, False]
    """
    return isinstance(text, str) and neutralise_formula(text) != text


def neutralise_formula(text: str) -> str:
    """``text`` with a ``'`` before every place a spreadsheet would start a formula.

    OWASP's CSV-injection advice: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return gets a leading single quote, so a spreadsheet shows it as text. The same
    holds after a ``;``, tab or line break inside the cell (a spreadsheet that splits on those
    sees a new cell there). A leading ``'`` is doubled so that :func:`restore_formula` gives back the exact
    value. Plain numbers (``-1234``, ``+49``) are left alone: they cannot run anything, and
    real ids of that shape must keep matching in the tools the file is imported into.

    Examples
    --------
    >>> neutralise_formula("+1+cmd|' /C calc'!A0"), neutralise_formula("-1234"), neutralise_formula("a;=1")
    ("'+1+cmd|' /C calc'!A0", '-1234', "a;'=1")
    >>> restore_formula(neutralise_formula("'quoted")) == "'quoted"
    True
    """
    if PLAIN_NUMBER.fullmatch(text):
        return text
    return FORMULA_PATTERN.sub("'", text)


def restore_formula(text: str) -> str:
    """The value :func:`neutralise_formula` was given (inverse; plain text is unchanged).

    Examples
    --------
    >>> restore_formula("'=SUM(A1)"), restore_formula("a;'=1"), restore_formula("O'Brien")
    ('=SUM(A1)', 'a;=1', "O'Brien")
    """
    return RESTORE_PATTERN.sub("", text)


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns
            if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])]


def formula_cells(values: pd.Series) -> pd.Series:
    """Boolean mask of the cells of ``values`` that :func:`neutralise_formula` changes
    (text only; empty cells and non-text values are False).

    Examples
    --------
    >>> formula_cells(pd.Series(["=1+1", "C1", None, "-7", "@x"])).tolist()
    [True, False, False, False, True]
    """
    text = values.astype("string")
    hit = text.str.contains(FORMULA_PATTERN, regex=True) & ~text.str.fullmatch(PLAIN_NUMBER)
    return hit.fillna(False).astype(bool)


def neutralise_formula_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`neutralise_formula` applied to every text cell (for writing CSV).

    Only text columns are touched: numbers (negative ones too) stay numbers. A frame without
    such cells is returned as it is (same object), so normal data is written byte for byte as
    before.

    Examples
    --------
    >>> f = pd.DataFrame({"customer_id": ["=1+1", "C1", "-7"], "monetary_total": [-5.0, 2.0, 1.0]})
    >>> neutralise_formula_cells(f).values.tolist()
    [["'=1+1", -5.0], ['C1', 2.0], ['-7', 1.0]]
    """
    changed = {}
    for column in _text_columns(frame):
        values = frame[column]
        hit = formula_cells(values)
        if hit.any():
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(object)
            fixed = values[hit].astype("string").str.replace(FORMULA_PATTERN, "'", regex=True)
            changed[column] = values.where(~hit, fixed)
    return frame.assign(**changed) if changed else frame


def restore_formula_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`neutralise_formula_cells` (for reading segkit's CSV back).

    Examples
    --------
    >>> f = pd.DataFrame({"customer_id": ["=1+1", "C1", "'x", "-7"], "n": [1, 2, 3, 4]})
    >>> restore_formula_cells(neutralise_formula_cells(f)).equals(f)
    True
    """
    changed = {}
    for column in _text_columns(frame):
        values = frame[column]
        text = values.astype("string")
        hit = text.str.contains(RESTORE_PATTERN, regex=True).fillna(False).astype(bool)
        if hit.any():
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(object)
            changed[column] = values.where(~hit, text[hit].str.replace(RESTORE_PATTERN, "", regex=True))
    return frame.assign(**changed) if changed else frame
