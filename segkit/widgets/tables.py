"""Interactive tables — sort, filter, search, page, CSV — for segment and customer lists, offline.

:func:`interactive_table` shows a DataFrame as a DataTables table through ITables' JavaScript
bundle (the ``itables`` package, offline mode: the bundle is embedded into the output, never
loaded from the internet). It works the same in JupyterLab and in the HTML reports of
``segkit run`` (nbconvert keeps the ``text/html`` output and its scripts).

How the output is built, and why:

- the rows are an ordinary HTML ``<table>`` written by pandas with every value escaped
  (``to_html(escape=True)``); DataTables reads them from the page. No value from the data is
  ever inside a ``<script>``, so the report's redaction of raw customer ids
  (:class:`segkit.report.export.IdRedactor`, which reads table cells) and its offline check
  (:func:`segkit.report.export.validate_offline_html`) see the data as they see any table;
- the scripts are segkit's own: :func:`library_html` (ITables' offline loader with the bundle,
  in every table output: it loads the bundle only when the page does not have it yet, so a
  saved notebook works whatever order its cells ran in, how often, or which outputs were
  cleared) and one fixed start-up script per table in which
  only the table's id and the CSV file name vary. :func:`is_segkit_script` recognises them, so
  the report checks can tell them from anything that came from the data;
- a filter box under every column, the search box, sorting by any column header, pages of
  ``page_length`` rows; the "CSV" button downloads the rows that pass the current filters, in
  the current order, with the values themselves, not their display (``1234.5``, not ``1,234.50``:
  a cell whose shown text is a formatted number or date carries its value in ``data-csv``), and
  with text cells neutralised as segkit's own CSV files are
  (:func:`segkit.core.escaping.neutralise_formula`: a cell a spreadsheet would run as a
  formula gets a leading ``'``);
- more than ``max_rows`` rows: the first ``max_rows`` are shown and a note says so (the full
  list is in the run's artifacts).

Examples
--------
>>> frame = pd.DataFrame({"customer_id": ["C1", "<b>x</b>"], "monetary_total": [1234.5, 2.0]})
>>> view = interactive_table(frame, csv_name="customers", include_library=False)
>>> html = view._repr_mimebundle_()["text/html"]
>>> "<td>&lt;b&gt;x&lt;/b&gt;</td>" in html, '<td data-csv="1234.5">1,234.50</td>' in html
(True, True)
>>> all(is_segkit_script(s) for s in scripts_of(html))
True
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
from functools import lru_cache
from typing import Any

import pandas as pd

__all__ = ["interactive_table", "is_segkit_script"]

#: Rows shown at most; above, the first ones and a note (a report stays a few MB at most).
MAX_ROWS = 5_000
#: Rows per page before the reader changes it.
PAGE_LENGTH = 10
_TABLE_ID = re.compile(r"segkit-table-[0-9a-f]{12}")
_CSV_NAME = re.compile(r"[^A-Za-z0-9_-]+")

#: The start-up script of one table: the id and the CSV file name are its only variable parts
#: (both restricted to ``[A-Za-z0-9_-]``), the text columns' indexes the only data (integers).
_START_SCRIPT = """
(() => {
  const tableId = "__TABLE_ID__", csvName = "__CSV_NAME__", textColumns = __TEXT_COLUMNS__;
  const plainNumber = /^[+-]?\\d+(?:\\.\\d+)?$/, formulaStart = /(^|[;\\t\\r\\n])(?=[=+\\-@\\t\\r'])/g;
  const neutralise = (text, column) =>
    textColumns.includes(column) && !plainNumber.test(text) ? text.replace(formulaStart, "$1'") : text;
  const start = async () => {
    const { ITable } = await window.__ITABLES_GLOBAL__;
    const table = document.getElementById(tableId);
    if (!table || table.classList.contains("dataTable")) return;
    new ITable(table, {
      column_filters: "footer",
      pageLength: __PAGE_LENGTH__,
      lengthMenu: [10, 25, 100, 1000],
      order: [],
      autoWidth: false,
      layout: {
        topStart: "pageLength", topEnd: "search", bottomStart: "info", bottomEnd: "paging",
        top2Start: { buttons: [{
          extend: "csvHtml5", text: "CSV of the filtered rows", filename: csvName, title: null, footer: false,
          exportOptions: { modifier: { search: "applied", order: "applied", page: "all" },
                           format: { body: (data, row, column, node) =>
                             neutralise(node.dataset.csv ?? node.textContent, column) } }
        }] }
      }
    });
  };
  if (window.__ITABLES_GLOBAL__) start();
  else window.addEventListener("__ITABLES_EVENT__", start, { once: true });
})();
"""


@lru_cache(maxsize=1)
def _itables_names() -> tuple[str, str]:
    """ITables' window global (a promise of the bundle's module) and its ready event, as the
    loader of the installed ITables names them."""
    loader = library_html()
    return (re.search(r"window\.(_itables_\w+)", loader).group(1),
            re.search(r'new Event\("([^"]+)"\)', loader).group(1))


@lru_cache(maxsize=1)
def library_html() -> str:
    """ITables' offline loader: its DataTables bundle (JavaScript and CSS) embedded, base64.

    The loader script that ``itables.init_notebook_mode(connected=False)`` displays, without its
    ``set_or_remove_dark_class`` part (that one imports the bundle from the internet) and without
    the ``<noscript>`` logo that links to ITables' site. Loading it twice in a page does nothing
    the second time.
    """
    import itables.options
    from itables.javascript import generate_init_offline_itables_html

    loader = scripts_of(generate_init_offline_itables_html(itables.options.dt_bundle))[0]
    return f"<script>{loader}</script>"


def _start_script(table_id: str, csv_name: str, text_columns: list[int], page_length: int) -> str:
    global_name, event = _itables_names()
    return (_START_SCRIPT.replace("__TABLE_ID__", table_id).replace("__CSV_NAME__", csv_name)
            .replace("__TEXT_COLUMNS__", json.dumps(text_columns)).replace("__PAGE_LENGTH__", str(int(page_length)))
            .replace("__ITABLES_GLOBAL__", global_name).replace("__ITABLES_EVENT__", event))


@lru_cache(maxsize=1)
def _start_script_pattern() -> re.Pattern[str]:
    template = _start_script("@ID@", "@CSV@", [987654321], 123456789)
    pattern = re.escape(template)
    for marker, part in (("@ID@", _TABLE_ID.pattern), ("@CSV@", r"[A-Za-z0-9_-]+"),
                         ("987654321", r"\d+(?:, \d+)*"), ("123456789", r"\d+")):
        pattern = pattern.replace(re.escape(marker), part)
    return re.compile(pattern.replace(r"\[\d+(?:, \d+)*\]", r"\[(?:\d+(?:, \d+)*)?\]"))


_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def scripts_of(html: str) -> list[str]:
    """The text of every ``<script>`` element of ``html``, in order.

    Examples
    --------
    >>> scripts_of("<p>x</p><script type='module'>a()</script><script>b()</script>")
    ['a()', 'b()']
    """
    return [m.group(1) for m in _SCRIPT.finditer(html)]


def is_segkit_script(script: str) -> bool:
    """Whether ``script`` (a ``<script>`` element's text) is one segkit's interactive tables put
    into an output: ITables' offline loader of the installed version, or a table's start-up
    script (fixed text; the id, the CSV file name, the page length and column indexes vary).

    Examples
    --------
    >>> is_segkit_script("window.__pwned=1;alert(1)")
    False
    """
    loader = scripts_of(library_html())
    if script in loader:
        return True
    return _start_script_pattern().fullmatch(script) is not None


def _column_name(name: Any) -> str:
    if isinstance(name, tuple):
        return " · ".join(str(part) for part in name if str(part) != "")
    return str(name)


def table_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The frame as the interactive table shows it: a meaningful index becomes leading column(s)
    (so it can be sorted and filtered like the others), column names are flat text.

    Examples
    --------
    >>> t = pd.DataFrame({"customers": [5, 7]}, index=pd.Index(["a", "b"], name="segment"))
    >>> table_frame(t).columns.tolist()
    ['segment', 'customers']
    """
    out = table
    if not (isinstance(out.index, pd.RangeIndex) and out.index.name is None):
        out = out.reset_index()
    out = out.copy()
    out.columns = [_column_name(c) for c in out.columns]
    return out


def _cell_text(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    if isinstance(value, float):  # the notebook's float format (pandas' display.float_format), as in its other tables
        number_format = pd.get_option("display.float_format")
        return number_format(value) if number_format is not None else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _cell_value(value: Any) -> str:
    """The value of a cell as the CSV download holds it: numbers in full precision without
    thousands separators, times to the second; text as it is."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return format(value, ".15g")
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat(sep=" ")
    return str(value)


def _cell_html(value: Any) -> str:
    """One escaped ``<td>``; ``data-csv`` holds the value when the shown text differs from it."""
    shown, exported = _cell_text(value), _cell_value(value)
    attribute = f' data-csv="{html_lib.escape(exported)}"' if exported != shown else ""
    return f"<td{attribute}>{html_lib.escape(shown)}</td>"


class InteractiveTable:
    """One interactive table as a notebook output (``text/html`` plus a ``text/plain`` line).

    Parameters
    ----------
    frame : DataFrame
        Rows as shown (after :func:`table_frame`), at most ``max_rows`` of them.
    total_rows : int
        Rows of the table given (the note says when fewer are shown).
    csv_name : str
        File name of the CSV download (without ``.csv``).
    page_length : int
        Rows per page.
    include_library : bool
        Put ITables' loader (:func:`library_html`) in front of the table.
    """

    def __init__(self, frame: pd.DataFrame, total_rows: int, csv_name: str, page_length: int,
                 include_library: bool) -> None:
        self.frame = frame
        self.total_rows = total_rows
        self.csv_name = csv_name
        self.page_length = page_length
        self.include_library = include_library

    @property
    def table_html(self) -> str:
        """The escaped ``<table>`` (with a footer row that becomes the column filters); a cell
        shows the notebook's format of its value and carries the value itself in ``data-csv``
        when the two differ (:func:`_cell_html`)."""
        header = "".join(f"<th>{html_lib.escape(str(c))}</th>" for c in self.frame.columns)
        rows = "".join("<tr>" + "".join(map(_cell_html, row)) + "</tr>\n"
                       for row in self.frame.astype(object).itertuples(index=False, name=None))
        inner = f"<thead><tr>{header}</tr></thead><tbody>\n{rows}</tbody><tfoot><tr>{header}</tr></tfoot>"
        table_id = f"segkit-table-{hashlib.sha256(inner.encode()).hexdigest()[:12]}"
        return f'<table id="{table_id}" class="display compact segkit-table">{inner}</table>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        table = self.table_html
        table_id = _TABLE_ID.search(table).group(0)
        text_columns = [i for i, c in enumerate(self.frame.columns)
                        if not pd.api.types.is_numeric_dtype(self.frame[c])
                        and not pd.api.types.is_datetime64_any_dtype(self.frame[c])]
        note = ""
        if self.total_rows > len(self.frame):
            note = (f"<p class='segkit-table-note'>Showing the first {len(self.frame):,} of {self.total_rows:,} "
                    "rows; the full list is in the run's artifacts.</p>")
        parts = [library_html()] if self.include_library else []
        parts += [f"<div class='segkit-table-wrap' style='max-width:100%;overflow-x:auto'>{table}</div>", note,
                  f'<script type="module">{_start_script(table_id, self.csv_name, text_columns, self.page_length)}'
                  "</script>"]
        plain = f"Interactive table: {self.total_rows:,} rows × {len(self.frame.columns)} columns"
        return {"text/html": "".join(parts), "text/plain": plain}


def interactive_table(
    table: pd.DataFrame,
    csv_name: str = "table",
    page_length: int = PAGE_LENGTH,
    max_rows: int = MAX_ROWS,
    include_library: bool = True,
    total_rows: int | None = None,
) -> InteractiveTable:
    """Show ``table`` as an interactive table: sort, filter per column, search, pages, CSV download.

    Parameters
    ----------
    table : DataFrame
        A segment or customer list, already what may be shown (``shareable(ctx, …)``: ids real
        in the analyst's own notebooks, pseudonymised in a ``segkit run``; small groups merged).
    csv_name : str
        Name of the downloaded file (``.csv`` is added; characters other than letters, digits,
        ``_`` and ``-`` become ``_``).
    page_length : int
        Rows per page at first.
    max_rows : int
        Rows shown at most (the first ones; a note says how many there were).
    include_library : bool, default True
        Embed ITables' JavaScript bundle (about 1 MB) in this output. Every table carries it, so
        each output works alone: after a reopen, a re-run or a cleared output, whichever table
        the page shows first loads the bundle and the others find it loaded. False only for a
        page that loads :func:`library_html` itself.
    total_rows : int, optional
        Rows of the whole list when ``table`` holds only its first rows (a capped list); the note then
        says how many there are. None: ``len(table)``.

    Returns
    -------
    InteractiveTable
        Displayed by Jupyter as ``text/html``.
    """
    frame = table_frame(table)
    name = _CSV_NAME.sub("_", csv_name).strip("_") or "table"
    total = len(frame) if total_rows is None else max(int(total_rows), len(frame))
    return InteractiveTable(frame.head(max_rows), total, name, page_length, include_library)
