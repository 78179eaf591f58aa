"""``index.html`` of a run: status, parameters, data period, headline numbers, links, warnings.

Rendered from the run record (the content of ``run.json``), the notebooks' summaries
(``summaries/NN_name.json``) and ``artifacts/audit_summary.json``. Self-contained: inline CSS,
no scripts, links only to the run's own files.

Examples
--------
>>> record = {"status": "ok", "run": {"name": "demo"}, "as_of": "2024-01-01", "seed": 42,
...           "inputs": {}, "notebooks": [{"name": "02_rfm", "status": "ok", "html": "02_rfm.html"}]}
>>> page = render_index(record, {"02_rfm": {"title": "RFM", "headlines": {"Customers": 1200}}}, None)
>>> "02_rfm.html" in page and "1,200" in page
True
"""

from __future__ import annotations

import html
from typing import Any, Mapping

from segkit.report.export import format_headline, headline_table
from segkit.steps.headline import headline_items, headline_sentence

__all__ = ["STATUS_TEXT", "CSS", "render_index"]

STATUS_TEXT = {
    "ok": "Complete",
    "failed": "FAILED — results are incomplete",
    "interrupted": "INTERRUPTED — results are incomplete",
}

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1000px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { text-align: left; padding: 3px 14px 3px 0; vertical-align: top; }
.status { padding: 0.6em 1em; border-radius: 6px; font-weight: bold; margin: 1em 0; }
.status-ok { background: #e8f5e9; border-left: 6px solid #2e7d32; }
.status-failed, .status-interrupted { background: #fdecea; border-left: 6px solid #c62828; }
.status pre { white-space: pre-wrap; font-weight: normal; }
.notebook { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; margin: 0.8em 0; }
.notebook h3 { margin: 0.2em 0; }
.tag { font-size: 0.85em; padding: 1px 8px; border-radius: 10px; background: #eee; margin-left: 0.5em; }
.tag-ok { background: #e8f5e9; } .tag-failed { background: #fdecea; } .tag-skipped { background: #fff8e1; }
.warn { background: #fff8e1; border-left: 6px solid #f9a825; padding: 0.4em 1em; }
.muted { color: #666; font-size: 0.9em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _size(n: int) -> str:
    """Human file size.

    Examples
    --------
    >>> _size(512), _size(2_500_000)
    ('512 B', '2.4 MB')
    """
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def _parameters(record: Mapping[str, Any], audit: Mapping[str, Any] | None) -> str:
    run = record.get("run", {})
    period = (audit or {}).get("period") or {}
    rows = [
        ("Analysis date (as of)", record.get("as_of") or "—"),
        ("Data period", f"{period.get('start', '?')} to {period.get('end', '?')}" if period else "—"),
        ("Seed", record.get("seed")),
        ("Config", run.get("config") or "defaults (bundled sample data)"),
        ("Notebooks selected", ", ".join(run.get("only") or []) or "all"),
        ("Code in reports", "shown" if run.get("include_code") else "hidden"),
        ("segkit", (record.get("versions") or {}).get("segkit")),
        ("Finished", record.get("finished_at")),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    inputs = []
    for table, info in (record.get("inputs") or {}).items():
        if info is None:
            inputs.append(f"<tr><th>{_e(table)}</th><td class='muted'>not provided</td></tr>")
        elif info.get("sha256") is None:  # a table or URI read by Spark, or a file gone by the end of the run
            why = info.get("not_hashed") or info.get("error") or "not hashed"
            inputs.append(f"<tr><th>{_e(table)}</th><td>{_e(info['path'])} <span class='muted'>({_e(why)})</span>"
                          "</td></tr>")
        else:
            name = info["path"].rsplit("/", 1)[-1]
            inputs.append(f"<tr><th>{_e(table)}</th><td>{_e(name)} ({_size(info['size'])}, "
                          f"sha256 {_e(info['sha256'][:12])}…)</td></tr>")
    return (f"<h2>Run parameters</h2><table>{body}</table>"
            + (f"<h3>Input files</h3><table>{''.join(inputs)}</table>" if inputs else ""))


def _notebook(entry: Mapping[str, Any], summary: Mapping[str, Any] | None) -> str:
    status = entry.get("status", "")
    title = (summary or {}).get("title") or entry["name"]
    link = entry.get("html")
    head = (f"<a href='{_e(link)}'>{_e(entry['name'])}</a>" if link else _e(entry["name"]))
    if title != entry["name"]:
        head += f" — {_e(title)}"
    parts = [f"<div class='notebook'><h3>{head}<span class='tag tag-{_e(status)}'>{_e(status)}</span></h3>"]
    if entry.get("reason"):
        parts.append(f"<p>{_e(entry['reason'])}</p>")
    if summary and status in ("ok", "reused", "failed"):
        parts.append(headline_table(summary.get("headlines") or {}))
        findings = summary.get("findings") or []
        if findings:
            parts.append("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ul>")
    seconds = (entry.get("seconds") or {}).get("total")
    if seconds is not None and status == "ok":
        parts.append(f"<p class='muted'>{seconds:.1f} s</p>")
    parts.append("</div>")
    return "".join(parts)


def _headline(audit: Mapping[str, Any] | None) -> str:
    """The run's headline numbers (``audit_summary.json`` ``headline``): the sentence every notebook's
    summary shows, and the same numbers as a table."""
    headline = (audit or {}).get("headline")
    if not headline:
        return ""
    return (f"<h2>Headline numbers</h2><p>{_e(headline_sentence(headline))}</p>"
            f"{headline_table(headline_items(headline))}")


def _warnings(record: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]],
              audit: Mapping[str, Any] | None) -> str:
    items = []
    for finding in (audit or {}).get("findings") or []:
        if str(finding.get("severity", "")).lower() in ("warning", "error"):
            # The audit's messages already state the count and its unit (rows, days, customers).
            items.append(f"Data audit ({_e(finding.get('severity'))}): {_e(finding.get('message') or finding.get('check'))}")
    listed_audit = bool(items)
    for name, summary in summaries.items():
        if name == "01_data_audit" and listed_audit:
            continue  # its summary warnings restate the findings listed above
        items += [f"{_e(name)}: {_e(w)}" for w in summary.get("warnings") or []]
    items += [_e(w) for w in record.get("warnings") or []]
    if not items:
        return ""
    return "<h2>Warnings</h2><div class='warn'><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul></div>"


def render_index(
    record: Mapping[str, Any],
    summaries: Mapping[str, Mapping[str, Any]],
    audit: Mapping[str, Any] | None,
) -> str:
    """The ``index.html`` document of a run.

    Parameters
    ----------
    record : mapping
        The run record written to ``run.json`` (status, run, as_of, seed, inputs, notebooks…).
    summaries : mapping
        Notebook name → its summary JSON (notebooks without one are listed without numbers).
    audit : mapping, optional
        ``artifacts/audit_summary.json`` (data period and audit findings).

    Returns
    -------
    str
        A complete, self-contained HTML document.
    """
    status = record.get("status", "ok")
    name = (record.get("run") or {}).get("name") or "run"
    banner = f"<div class='status status-{_e(status)}'>Status: {_e(STATUS_TEXT.get(status, status))}"
    if record.get("error"):
        banner += f"<pre>{_e(record['error'])}</pre>"
    banner += "</div>"
    notebooks = "".join(_notebook(e, summaries.get(e["name"])) for e in record.get("notebooks") or [])
    csv_note = ("<p class='muted'>Segment labels per customer (real customer ids — do not share outside the team): "
                "<a href='artifacts/customer_segments.csv'>artifacts/customer_segments.csv</a></p>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>segkit run {_e(name)}</title><style>{CSS}</style></head><body>"
        f"<h1>segkit run: {_e(name)}</h1>{banner}"
        f"{_parameters(record, audit)}{_headline(audit)}{_warnings(record, summaries, audit)}"
        f"<h2>Reports</h2>{notebooks}{csv_note}</body></html>\n"
    )
