"""Self-contained, offline HTML of an executed notebook, and the checks that keep it so.

One :class:`ReportExporter` (nbconvert's ``HTMLExporter`` with segkit's template, created once
and reused for every notebook of a run) turns an executed notebook into HTML that needs nothing
but the file itself:

- the template ``segkit/templates/segkit_report.html.j2`` extends nbconvert's ``lab`` template
  and removes every block that loads code from a CDN (require.js and MathJax from cdnjs,
  Mermaid, the widget manager from unpkg); plots are embedded as ``data:`` URIs by nbconvert;
- live widget views (``application/vnd.jupyter.widget-view+json``), JavaScript outputs and the
  notebook's widget state are stripped, so the static ``text/html`` rendering that
  :func:`segkit.widgets.explorer` puts in the same output is what the reader sees;
- code cells are hidden unless ``include_code`` is set;
- the notebook's executive summary (``summaries/NN_name.json``) is placed at the top, or, for a
  notebook that stopped with an error, a banner naming the cell and the error;
- :func:`validate_offline_html` runs on every export and raises :class:`OfflineHTMLError` if
  anything would be fetched from outside the file;
- with ``privacy.pseudonymize_ids`` on, :func:`redact_raw_ids` replaces any raw customer id
  that still appears in the HTML's text (e.g. a table displayed without ``shareable()``) by its
  salted pseudonym — the same one :func:`segkit.core.privacy.shareable_table` gives — and the run
  reports how many it replaced. CSS and JavaScript are never touched; ids that are ordinary
  words (``none``, ``Lost``) are replaced only as whole table cells or quoted values, not in
  prose (:class:`IdRedactor` states the rule). Ids made only of digits are not scanned: they
  cannot be told apart from the numbers in a table (their pseudonymisation relies on ``shareable()``).

Examples
--------
>>> find_external_resources('<img src="https://example.org/a.png"><img src="data:image/png;base64,AA==">')
['<img src="https://example.org/a.png">']
>>> redact_raw_ids("<td>C000123</td><td>42</td>", {"C000123", "42"}, salt="s")
('<td>c-21aaf5c94b</td><td>42</td>', 1)
"""

from __future__ import annotations

import copy
import html as html_lib
import numbers
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat

from segkit.core.errors import SegkitError
from segkit.core.files import atomic_write_text
from segkit.core.privacy import pseudonymize_ids, salt_for
from segkit.steps.pipeline import summary_markdown
from segkit.widgets.tables import is_segkit_script

__all__ = ["TEMPLATE_FILE", "STRIPPED_MIMETYPES", "REPORT_CSS", "OfflineHTMLError",
    "find_external_resources", "validate_offline_html", "scannable_ids", "is_word_like", "IdRedactor",
    "redact_raw_ids", "render_markdown", "strip_live_widgets", "format_headline", "headline_table",
    "Failure", "ExportResult", "ReportExporter"]

TEMPLATE_FILE = "segkit_report.html.j2"
#: Output MIME types removed before export: they need a JavaScript runtime loaded from a CDN.
STRIPPED_MIMETYPES: tuple[str, ...] = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "application/javascript",
)
REPORT_CSS = """
.segkit-banner { margin: 1em 0; padding: 1em 1.5em; border-radius: 6px;
                 font-family: var(--jp-content-font-family); font-size: var(--jp-content-font-size1);
                 color: var(--jp-content-font-color1); }
.segkit-summary { background: #f3f7fb; border-left: 6px solid #1f77b4; }
.segkit-failure { background: #fdecea; border-left: 6px solid #c62828; }
.segkit-failure pre { white-space: pre-wrap; }
.segkit-banner table { border-collapse: collapse; margin: 0.5em 0; }
.segkit-banner td, .segkit-banner th { padding: 2px 12px 2px 0; text-align: left; }
.segkit-banner h2 { margin-top: 0; }
"""


class OfflineHTMLError(SegkitError):
    """Exported HTML would load something from outside the file (not shareable offline)."""


# --------------------------------------------------------------------------- offline check
# Attributes that make a browser fetch something when the page opens. ``href`` counts on every
# tag except links the reader clicks (<a>, <area>); SVG's ``xlink:href`` likewise.
_FETCH_ATTRS = frozenset({"src", "srcset", "poster", "data", "background", "href", "xlink:href",
                          "action", "formaction", "manifest", "codebase", "archive", "longdesc"})
_CLICK_TAGS = frozenset({"a", "area"})
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<url>[^'")\s]+)\1\s*\)|@import\s+(['"])(?P<imp>[^'"]+)\3""",
                      re.IGNORECASE)
_SCRIPT_FETCH = re.compile(r"""https?://(?!www\.w3\.org/)[^\s'"<>]+|\bimport\s*\(|\bimportScripts\s*\(|"""
                           r"""\bfetch\s*\(|XMLHttpRequest|new\s+WebSocket|navigator\.sendBeacon""")
_NON_JS_SCRIPT_TYPES = ("application/json", "application/ld+json", "text/x-mathjax-config",
                        "application/vnd.jupyter.widget-state+json")


def _is_local(url: str) -> bool:
    url = url.strip()
    return url == "" or url.startswith("#") or url.lower().startswith(("data:", "about:blank"))


def _css_problems(css: str, where: str) -> list[str]:
    found = []
    for m in _CSS_URL.finditer(css):
        url = m.group("url") or m.group("imp")
        if not _is_local(url):
            found.append(f"{where}: {m.group(0)}")
    return found


class _ResourceScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in: str | None = None  # "style" or "script" while inside one
        self._script_is_js = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        text = self.get_starttag_text() or f"<{tag}>"
        for name, value in attrs:
            name = name.lower()
            value = value or ""
            if name == "style":
                self.problems += _css_problems(value, text)
            elif name == "http-equiv" and value.lower() == "refresh":
                self.problems.append(text)
            elif name in _FETCH_ATTRS and not (name in ("href", "xlink:href") and tag in _CLICK_TAGS):
                urls = [u.strip().split(" ")[0] for u in value.split(",")] if name == "srcset" else [value]
                if any(not _is_local(u) for u in urls):
                    self.problems.append(text)
        if tag in ("style", "script"):
            self._in = tag
            kind = (dict(attrs).get("type") or "").lower()
            self._script_is_js = tag == "script" and kind not in _NON_JS_SCRIPT_TYPES

    def handle_endtag(self, tag: str) -> None:
        if tag.lower() == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.problems += _css_problems(data, "<style>")
        elif self._in == "script" and self._script_is_js and not is_segkit_script(data):
            self.problems += [f"<script> … {m.group(0)} …" for m in _SCRIPT_FETCH.finditer(data)]


def find_external_resources(html: str) -> list[str]:
    """Every place in ``html`` that would make a browser fetch something outside the file.

    Checks tag attributes that load resources (``src``, ``srcset``, ``href`` except on links
    the reader clicks, ``poster``, ``data``, …), CSS ``url(...)``/``@import`` in ``<style>`` and
    ``style=""``, meta refresh, and JavaScript that names an http(s) URL or calls
    ``fetch``/``import()``/``XMLHttpRequest``. ``data:`` URIs and ``#fragment`` links are fine.
    The scripts of segkit's interactive tables (:func:`segkit.widgets.tables.is_segkit_script`:
    ITables' loader, whose ``import()`` reads the bundle embedded in the page as a ``blob:``
    URL, and the tables' fixed start-up scripts) are not scanned.

    Parameters
    ----------
    html : str
        A complete HTML document.

    Returns
    -------
    list of str
        The offending tags or snippets, in document order (empty when the file is offline-safe).

    Examples
    --------
    >>> find_external_resources('<link rel="stylesheet" href="style.css"><a href="x.html">x</a>')
    ['<link rel="stylesheet" href="style.css">']
    >>> find_external_resources('<style>body{background:url(data:image/png;base64,AA==)}</style>')
    []
    """
    scanner = _ResourceScanner()
    scanner.feed(html)
    scanner.close()
    return scanner.problems


def validate_offline_html(html: str, source: str = "report") -> None:
    """Raise :class:`OfflineHTMLError` when ``html`` would load anything from outside the file.

    Parameters
    ----------
    html : str
        The HTML document.
    source : str
        Name of the file or notebook, for the message.

    Examples
    --------
    >>> validate_offline_html("<html><body><p>ok</p></body></html>")
    >>> validate_offline_html('<script src="https://cdn.example/x.js"></script>', "02_rfm.html")
    Traceback (most recent call last):
    ...
    segkit.report.export.OfflineHTMLError: 02_rfm.html is not self-contained: it would load 1 resource(s) from outside the file: <script src="https://cdn.example/x.js">. Embed the content (plots as images in outputs, no links to web images/scripts in markdown) or remove it.
    """
    problems = find_external_resources(html)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise OfflineHTMLError(
            f"{source} is not self-contained: it would load {len(problems)} resource(s) from outside "
            f"the file: {shown}. Embed the content (plots as images in outputs, no links to web "
            "images/scripts in markdown) or remove it."
        )


# --------------------------------------------------------------------------- privacy
_NUMERIC = re.compile(r"^[\d\s.,+-]*$")
#: A run of letters/digits/underscores: how an id is anchored in a text (its first such run).
_WORD = re.compile(r"\w+")
#: Ids made of letters only (one word, any script): they can be ordinary words ("none", "Lost").
_LETTERS_ONLY = re.compile(r"[^\W\d_]+")
#: Quote pairs around a value: ``'none'`` in an error message is a value, ``none`` in prose is a word.
_QUOTES = {"'": "'", '"': '"', "`": "`", "\u2018": "\u2019", "\u201c": "\u201d", "\u00ab": "\u00bb"}
#: The parts of an HTML page that are not text: CSS/JavaScript (kept as they are), comments,
#: declarations, and tags (whose attribute values are text).
_HTML_PART = re.compile(r"""
    <(?P<raw>script|style)\b(?:[^>"']++|"[^"]*+"|'[^']*+')*+>.*?</(?P=raw)\s*>
  | (?P<comment><!--.*?-->)
  | <[!?][^>]*+>
  | <(?P<end>/?)(?P<tag>[A-Za-z][^\s/>]*+)(?P<attrs>(?:[^>"']++|"[^"]*+"|'[^']*+')*+)>
""", re.IGNORECASE | re.DOTALL | re.VERBOSE)
_ATTRIBUTE = re.compile(r"""(?P<name>[^\s"'>/=]+)(?P<eq>\s*=\s*)(?P<value>"[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
#: Attributes whose values are CSS, JavaScript or geometry, never text shown to a reader.
_CODE_ATTRIBUTES = frozenset({"style", "class", "d", "points", "transform", "viewbox", "path"})
_CELL_TAGS = frozenset({"td", "th"})


def scannable_ids(ids: Iterable[Any]) -> set[str]:
    """The ids the HTML scan looks for: non-empty, at least 3 characters, not only digits.

    Examples
    --------
    >>> sorted(scannable_ids(["C000123", "12346", "ab", None, "x-77"]))
    ['C000123', 'x-77']
    """
    out = set()
    for value in ids:
        if value is None or value != value:  # None / NaN
            continue
        text = str(value).strip()
        if len(text) >= 3 and not _NUMERIC.match(text):
            out.add(text)
    return out


def is_word_like(customer_id: str) -> bool:
    """Whether ``customer_id`` is one word of letters only (``none``, ``Lost``, ``Müller``), which
    prose can hold as an ordinary word; see :class:`IdRedactor` for how such ids are found.

    Examples
    --------
    >>> is_word_like("none"), is_word_like("C000123"), is_word_like("Müller GmbH")
    (True, False, False)
    """
    return bool(_LETTERS_ONLY.fullmatch(customer_id))


class IdRedactor:
    """Finds raw customer ids in plain text or HTML and replaces them by their salted pseudonyms.

    The rule:

    - an id is found as a whole value: not preceded or followed by a letter, digit, ``_`` or
      ``@`` (``C000123`` is found in ``(C000123).`` but not in ``C0001234``); it may hold any
      characters — spaces, quotes, ``<>``, non-ASCII (``Müller GmbH``, ``O'Brien-12``);
    - in HTML only what a reader sees is searched: text between tags and attribute values, after
      decoding entities (``O&#x27;Brien-12`` is ``O'Brien-12``), re-escaped when replaced. CSS and
      JavaScript (``<style>``, ``<script>``, ``style=""``, ``on…=""``), tag and attribute names
      and ``data:`` URIs (embedded images) are never changed;
    - an id that is a single word of letters only (:func:`is_word_like`: ``none``, ``test``,
      ``Lost``) is replaced only where it stands as a value: a whole table cell (``<td>none</td>``),
      or in quotes (``duplicate ids: 'none', 'test'``) — not in prose, where "Fisher exact test"
      uses the word, nor in attribute values, where ``align="left"`` is markup. Ids with a digit or
      any other character are distinctive and replaced wherever they stand as a whole value;
    - ids of fewer than 3 characters or only digits are not searched (:func:`scannable_ids`):
      they cannot be told apart from numbers and short words.

    ``count`` is the number of replacements made so far. The pseudonym is
    :func:`segkit.core.privacy.pseudonymize_ids` with the same ``salt``, so a redacted id reads
    the same as one displayed through ``shareable()``.

    Examples
    --------
    >>> r = IdRedactor(["C000007", "none"], salt="segkit")
    >>> r.text("duplicate ids: 'C000007', 'none'; none of them has orders")
    "duplicate ids: 'c-e2967c7a92', 'c-8e67185cf0'; none of them has orders"
    >>> r.html("<style>p {display: none}</style><td>none</td><p title='C000007'>none</p>")
    '<style>p {display: none}</style><td>c-8e67185cf0</td><p title="c-e2967c7a92">none</p>'
    >>> r.count
    4
    """

    def __init__(self, ids: Iterable[Any], salt: str) -> None:
        self.salt = salt
        self.count = 0
        self._pseudonyms: dict[str, str] = {}
        self._words: set[str] = set()
        #: first \w run of an id → [(its offset in the id, the id)], longest id first
        self._anchors: dict[str, list[tuple[int, str]]] = {}
        for raw in scannable_ids(ids):
            anchor = _WORD.search(raw)
            if anchor is None:  # no letter or digit at all: nothing to anchor on
                continue
            self._anchors.setdefault(anchor.group(0), []).append((anchor.start(), raw))
            if is_word_like(raw):
                self._words.add(raw)
        for candidates in self._anchors.values():
            candidates.sort(key=lambda c: -len(c[1]))

    def __bool__(self) -> bool:
        return bool(self._anchors)

    def pseudonym(self, raw: str) -> str:
        """The pseudonym of ``raw`` (one of the ids) under this redactor's salt; all ids' pseudonyms
        are computed in one pass the first time one is needed."""
        if not self._pseudonyms:
            import pandas as pd

            wanted = [i for candidates in self._anchors.values() for _, i in candidates]
            self._pseudonyms = dict(zip(wanted, pseudonymize_ids(pd.Series(wanted, dtype="string"), self.salt)))
        return self._pseudonyms[raw]

    def _stands_alone(self, text: str, start: int, end: int) -> bool:
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        return not any(c and (c.isalnum() or c in "_@") for c in (before, after))

    def _as_value(self, text: str, start: int, end: int, cell: bool) -> bool:
        """A word-like id at ``text[start:end]`` is an id when it fills a table cell or is quoted."""
        if cell and not text[:start].strip() and not text[end:].strip():
            return True
        before = text[start - 1] if start > 0 else ""
        return bool(before) and end < len(text) and _QUOTES.get(before) == text[end]

    def text(self, text: str, *, cell: bool = False, words: bool = True) -> str:
        """``text`` (plain, not HTML) with raw ids replaced.

        Parameters
        ----------
        text : str
            Plain text (an error message, a decoded HTML text node or attribute value).
        cell : bool
            ``text`` is the whole content of a table cell (word-like ids in it are ids).
        words : bool
            Whether word-like ids are looked for at all (not in attribute values).
        """
        if not self._anchors or not text:
            return text
        parts: list[str] = []
        done = 0  # end of the last replacement
        for m in _WORD.finditer(text):
            if m.start() < done:
                continue
            for offset, raw in self._anchors.get(m.group(0), ()):
                start = m.start() - offset
                end = start + len(raw)
                if start < done or text[start:end] != raw or not self._stands_alone(text, start, end):
                    continue
                if raw in self._words and not (words and self._as_value(text, start, end, cell)):
                    continue
                parts += [text[done:start], self.pseudonym(raw)]
                done = end
                self.count += 1
                break
        if not parts:
            return text
        return "".join(parts) + text[done:]

    def _attributes(self, attrs: str) -> str:
        def one(m: re.Match) -> str:
            name, value = m.group("name").lower(), m.group("value")
            inner = value[1:-1] if value[:1] in "\"'" else value
            if name in _CODE_ATTRIBUTES or name.startswith("on") or inner.lstrip().lower().startswith("data:"):
                return m.group(0)
            decoded = html_lib.unescape(inner)
            new = self.text(decoded, words=False)
            if new == decoded:
                return m.group(0)
            return f'{m.group("name")}{m.group("eq")}"{html_lib.escape(new, quote=True)}"'

        return _ATTRIBUTE.sub(one, attrs)

    def html(self, page: str) -> str:
        """``page`` (HTML) with raw ids replaced in its text and attribute values (see the class)."""
        if not self._anchors:
            return page
        # (kind, source, tag) with kind "text", "start", "end" or "keep"
        parts: list[tuple[str, str, str]] = []
        last = 0
        for m in _HTML_PART.finditer(page):
            if m.start() > last:
                parts.append(("text", page[last:m.start()], ""))
            if m.group("tag") and not m.group("raw"):
                parts.append(("end" if m.group("end") else "start", m.group(0), m.group("tag").lower()))
            elif m.group("comment"):
                parts.append(("comment", m.group(0), ""))
            else:
                parts.append(("keep", m.group(0), ""))
            last = m.end()
        if last < len(page):
            parts.append(("text", page[last:], ""))
        out = []
        for i, (kind, source, tag) in enumerate(parts):
            if kind == "text":
                cell = (i > 0 and parts[i - 1][0] == "start" and parts[i - 1][2] in _CELL_TAGS
                        and i + 1 < len(parts) and parts[i + 1][0] == "end" and parts[i + 1][2] in _CELL_TAGS)
                decoded = html_lib.unescape(source)
                new = self.text(decoded, cell=cell)
                out.append(source if new == decoded else html_lib.escape(new, quote=False))
            elif kind == "start":
                name_end = 1 + len(tag)
                out.append(source[:name_end] + self._attributes(source[name_end:]))
            elif kind == "comment":  # not shown, but in the file: distinctive ids only
                out.append("<!--" + self.text(source[4:-3], words=False) + "-->")
            else:
                out.append(source)
        return "".join(out)


def redact_raw_ids(html: str, ids: Iterable[Any], salt: str) -> tuple[str, int]:
    """Replace raw customer ids in ``html`` by their salted pseudonyms (:class:`IdRedactor`).

    Parameters
    ----------
    html : str
        HTML text.
    ids : iterable
        Raw customer ids (only :func:`scannable_ids` are looked for).
    salt : str
        The run's ``privacy.salt``.

    Returns
    -------
    (str, int)
        The redacted HTML and the number of replacements.

    Examples
    --------
    >>> redact_raw_ids("Top buyer: C000007.", ["C000007"], salt="segkit")
    ('Top buyer: c-e2967c7a92.', 1)
    """
    redactor = IdRedactor(ids, salt)
    return redactor.html(html), redactor.count


# --------------------------------------------------------------------------- markdown
def _safe_renderer(attachments: Mapping[str, Any] | None = None, path: str = "") -> Any:
    """nbconvert's Markdown renderer with raw HTML escaped and harmful URL schemes removed."""
    from html import escape

    from mistune import HTMLRenderer
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class SafeRenderer(IPythonRenderer):
        # Raw HTML is shown as the text it is (nbconvert's renderer would first re-serialise it).
        block_html = HTMLRenderer.block_html
        inline_html = HTMLRenderer.inline_html

        def block_mermaidjs(self, code: str) -> str:  # nbconvert passes Mermaid source through raw
            return f"<pre>{escape(code.strip())}</pre>"

    return SafeRenderer(escape=True, allow_harmful_protocols=False, attachments=dict(attachments or {}),
                        embed_images=True, path=path)


def render_markdown(text: str, attachments: Mapping[str, Any] | None = None, path: str = "") -> str:
    """HTML of Markdown ``text`` in which nothing can become live markup.

    Every Markdown segkit shows (notebook cells, ``text/markdown`` outputs such as the closing
    "What this means" cell, the executive summary) is rendered with this: raw HTML is shown as
    text, not passed through, and links or images with a ``javascript:``/``vbscript:``/
    ``file:``/non-image ``data:`` URL lead nowhere (``#harmful-link``). This is the second line
    of defence; values from data are first escaped with :func:`segkit.core.escaping.escape_markdown`.

    Parameters
    ----------
    text : str
        Markdown source.
    attachments : mapping, optional
        A notebook cell's attachments (``![x](attachment:name)`` images are embedded).
    path : str
        Folder local images are resolved against.

    Returns
    -------
    str
        HTML fragment.

    Examples
    --------
    >>> render_markdown("**Hi** <script>alert(1)</script> [x](javascript:alert(1))")
    '<p><strong>Hi</strong> &lt;script&gt;alert(1)&lt;/script&gt; <a href="#harmful-link">x</a></p>\\n'
    """
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=_safe_renderer(attachments, path)).render(text)


def _markdown_filter() -> Any:
    """The template's ``markdown2html`` filter, rendering with :func:`render_markdown`."""
    from jinja2 import pass_context

    @pass_context
    def markdown2html(context: Any, source: str) -> str:
        cell = context.get("cell", {})
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        return render_markdown(source, cell.get("attachments", {}), path)

    return markdown2html


# --------------------------------------------------------------------------- notebook prep
def strip_live_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy of ``nb`` without widget views, JavaScript outputs and the widget state metadata.

    An output that had only such representations is dropped; others keep their static ones
    (``text/html``, ``image/png``, ``text/plain``).

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    >>> out = nbformat.v4.new_output("display_data", data={"text/html": "<b>x</b>",
    ...     "application/vnd.jupyter.widget-view+json": {"model_id": "ab"}})
    >>> nb.cells = [nbformat.v4.new_code_cell("w", outputs=[out])]
    >>> clean = strip_live_widgets(nb)
    >>> sorted(clean.cells[0].outputs[0].data), "widgets" in clean.metadata
    (['text/html'], False)
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is not None:
                for mime in STRIPPED_MIMETYPES:
                    data.pop(mime, None)
                if not data:
                    continue
            kept.append(output)
        cell.outputs = kept
    return nb


def format_headline(value: Any) -> str:
    """Human formatting of a headline number (thousands separators, 2 decimals for floats).

    Examples
    --------
    >>> format_headline(4210), format_headline(0.12345), format_headline("12%")
    ('4,210', '0.12', '12%')
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 1000 else f"{value:,.2f}"
    return str(value)


def headline_table(headlines: Mapping[str, Any]) -> str:
    """HTML table of the headline numbers of a summary (escaped)."""
    if not headlines:
        return ""
    rows = "".join(f"<tr><th>{html_lib.escape(str(k))}</th><td>{html_lib.escape(format_headline(v))}</td></tr>"
                   for k, v in headlines.items())
    return f"<table class='segkit-headlines'>{rows}</table>"


@dataclass(frozen=True)
class Failure:
    """Where and why a notebook stopped (from papermill's ``PapermillExecutionError``).

    ``first_line`` is the cell's first line (how the cell is recognised); ``raising_line`` the
    line of the cell that raised, when the traceback names it.
    """

    notebook: str
    cell_index: int
    exec_count: int | None
    first_line: str
    ename: str
    evalue: str
    raising_line: str | None = None

    @property
    def where(self) -> str:
        """The cell, e.g. ``cell In [3] (`import pandas as pd` …, line 5: `x = f()`)``.

        Examples
        --------
        >>> Failure("02_rfm", 4, 3, "import pandas as pd", "DataError", "bad", "result = build(ctx)").where
        'cell In [3] (`import pandas as pd` …, raised at `result = build(ctx)`)'
        >>> Failure("02_rfm", 4, 3, "result = build(ctx)", "DataError", "bad", "result = build(ctx)").where
        'cell In [3] (`result = build(ctx)`)'
        """
        if self.exec_count is None:
            return f"({self.first_line})"
        at = (f" …, raised at `{self.raising_line}`" if self.raising_line and self.raising_line != self.first_line
              else "")
        return f"cell In [{self.exec_count}] (`{self.first_line}`{at})"

    def describe(self) -> str:
        """One-paragraph description: notebook, cell and error.

        Examples
        --------
        >>> Failure("02_rfm", 4, 3, "result = build_rfm_artifacts(ctx)", "DataError", "bad").describe()
        '02_rfm stopped in cell In [3] (`result = build_rfm_artifacts(ctx)`) with DataError: bad'
        """
        return f"{self.notebook} stopped in {self.where} with {self.ename}: {self.evalue}"


# --------------------------------------------------------------------------- exporter
@dataclass(frozen=True)
class ExportResult:
    """What :meth:`ReportExporter.export` wrote."""

    path: Path
    seconds: float
    redacted_ids: int


class ReportExporter:
    """nbconvert ``HTMLExporter`` configured for offline, shareable segkit reports.

    Create one per run and call :meth:`export` for every notebook (the template environment is
    built once).

    Parameters
    ----------
    include_code : bool
        Keep code cells (and their prompts) in the HTML.

    Examples
    --------
    >>> exporter = ReportExporter()
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
    >>> html = exporter.to_html(nb, summary={"analysed": "x", "findings": ["f"], "actions": ["a"]})
    >>> "Executive summary" in html and "cdnjs" not in html
    True
    """

    def __init__(self, include_code: bool = False) -> None:
        from nbconvert import HTMLExporter

        self.include_code = include_code
        template_dir = str(resources.files("segkit") / "templates")
        self._exporter = HTMLExporter(
            template_name="lab",
            template_file=TEMPLATE_FILE,
            extra_template_paths=[template_dir],
            exclude_input=not include_code,
            exclude_input_prompt=not include_code,
            exclude_output_prompt=not include_code,
            # Nothing below is used by the template any more; empty so no URL can slip back in.
            require_js_url="", mathjax_url="", jquery_url="", widget_renderer_url="",
            jupyter_widgets_base_url="",
            embed_images=True,
            # Markdown cells and outputs: raw HTML escaped, no javascript: links (render_markdown).
            filters={"markdown2html": _markdown_filter()},
        )

    def top_html(self, summary: Mapping[str, Any] | None, failure: Failure | None) -> str:
        """HTML placed at the top of the report: failure banner and/or executive summary."""
        parts = []
        if failure is not None:
            parts.append(
                "<section class='jp-RenderedHTMLCommon segkit-banner segkit-failure'><h2>This notebook stopped with an error</h2>"
                f"<p>{html_lib.escape(failure.where)} raised "
                f"<b>{html_lib.escape(failure.ename)}</b>:</p><pre>{html_lib.escape(failure.evalue)}</pre>"
                "<p>The results below end where the error happened (see the cell marked in red).</p></section>"
            )
        if summary:
            title = html_lib.escape(str(summary.get("title") or summary.get("notebook") or ""))
            body = self._markdown(summary_markdown(summary))
            parts.append(
                f"<section class='jp-RenderedHTMLCommon segkit-banner segkit-summary'><h2>Executive summary{': ' + title if title else ''}</h2>"
                f"{headline_table(summary.get('headlines') or {})}{body}</section>"
            )
        return "".join(parts)

    @staticmethod
    def _markdown(text: str) -> str:
        return render_markdown(text)

    def to_html(
        self,
        nb: nbformat.NotebookNode,
        summary: Mapping[str, Any] | None = None,
        failure: Failure | None = None,
        title: str | None = None,
    ) -> str:
        """Render ``nb`` (widgets stripped, summary/failure on top) to one HTML string."""
        nb = strip_live_widgets(nb)
        if title:
            nb.metadata["title"] = title
        res = {"segkit": {"css": REPORT_CSS, "top_html": self.top_html(summary, failure)},
               "metadata": {"name": title or "report"}}
        body, _ = self._exporter.from_notebook_node(nb, resources=res)
        return body

    def export(
        self,
        nb: nbformat.NotebookNode,
        path: Path,
        *,
        summary: Mapping[str, Any] | None = None,
        failure: Failure | None = None,
        raw_ids: Iterable[Any] = (),
        privacy: Mapping[str, Any] | None = None,
    ) -> ExportResult:
        """Write the report of ``nb`` to ``path`` (atomically) after the offline and privacy checks.

        Parameters
        ----------
        nb : NotebookNode
            Executed notebook.
        path : Path
            Target ``.html`` file.
        summary : mapping, optional
            The notebook's summary JSON (placed on top as the executive summary).
        failure : Failure, optional
            Where the notebook stopped, for the banner on top.
        raw_ids : iterable
            Real customer ids of the run, redacted if found while ``privacy.pseudonymize_ids``.
        privacy : mapping, optional
            The config's ``privacy`` section.

        Raises
        ------
        OfflineHTMLError
            If the HTML would load anything from outside the file.
        """
        start = time.perf_counter()
        path = Path(path)
        html = self.to_html(nb, summary=summary, failure=failure, title=path.stem)
        redacted = 0
        privacy = privacy or {}
        if privacy.get("pseudonymize_ids", True):
            html, redacted = redact_raw_ids(html, raw_ids, salt_for({"privacy": privacy}))
        validate_offline_html(html, path.name)
        atomic_write_text(path, html)
        return ExportResult(path=path, seconds=time.perf_counter() - start, redacted_ids=redacted)
