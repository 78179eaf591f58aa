"""Text from data or config never becomes live markup, a link or a spreadsheet formula.

Unit tests of :mod:`segkit.core.escaping` and the safe Markdown renderer, then one ``segkit run`` on a
hostile copy of the sample (markup, ``javascript:`` links and formulas in every text field of every
input table and in the config's names; ``tests/hostile_inputs.py``) whose HTML, Markdown and CSV
outputs are inspected.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from segkit.core.escaping import escape_markdown, formula_cells, neutralise_formula, restore_formula
from segkit.core.files import read_frame, write_frame
from segkit.report.export import ReportExporter, render_markdown
from segkit.steps.pipeline import summary_markdown
from segkit.widgets import static_html
from segkit.widgets.tables import interactive_table, is_segkit_script, library_html

from hostile_inputs import EVENT_ATTRIBUTES, FORMULAS, MARKUP, build_hostile_run

PAYLOADS = MARKUP + FORMULAS + ("a\nb", "# heading", "1. item", "> quote", "<javascript:alert(1)>", "---",
                                "&lt;b&gt; &amp;", "\\<b\\>", "x  \ny")


class Elements(HTMLParser):
    """Every element and attribute of an HTML document, and the text of each ``<script>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


def live_markup(html: str) -> list[str]:
    """What in ``html`` a browser would run or follow from a payload: scripts (other than the
    fixed ones of segkit's interactive tables), SVG, event-handler attributes, ``javascript:``
    URLs, images that are not embedded."""
    doc = parse(html)
    found = [f"<{t}>" for t in doc.tags if t in ("svg", "iframe", "object", "embed")]
    found += [f"<script>{s[:80]}" for s in doc.scripts if not is_segkit_script(s)]
    for tag, name, value in doc.attributes:
        if name.startswith("on"):
            found.append(f"<{tag} {name}>")
        if name in ("href", "src", "action", "formaction", "xlink:href") and value.strip().lower().startswith(
                ("javascript:", "vbscript:")):
            found.append(f"<{tag} {name}={value}>")
        if tag == "img" and name == "src" and not value.startswith(("data:", "#")):
            found.append(f"<img src={value}>")
    return found


# --------------------------------------------------------------------------- the escaping rule
@pytest.mark.parametrize("value", PAYLOADS)
def test_an_escaped_value_renders_as_exactly_its_own_text(value):
    html = render_markdown(f"Campaign {escape_markdown(value)} lifted sales")
    doc = parse(html)
    assert doc.tags == ["p"]
    assert "".join(doc.text).split() == f"Campaign {value} lifted sales".split()


@pytest.mark.parametrize("value", PAYLOADS)
def test_an_escaped_value_stays_text_even_with_a_renderer_that_passes_raw_html(value):
    # JupyterLab shows a notebook's Markdown outputs with raw HTML allowed (then sanitised);
    # escaping alone must already give no markup.
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    doc = parse(markdown2html_mistune(f"- {escape_markdown(value)}"))
    assert doc.tags == ["ul", "li"]


def test_an_escaped_value_cannot_break_a_markdown_table():
    html = render_markdown(f"| segment | n |\n|---|---|\n| {escape_markdown('a | b')} | 3 |")
    cells = [t for t in parse(html).tags if t == "td"]
    assert len(cells) == 2 and "<td>a | b</td>" in html


def test_normal_names_are_escaped_only_where_markdown_would_read_them():
    assert escape_markdown("Can't Lose Them (as_of 2024-01-01, customer_segments.csv)") == \
        "Can't Lose Them (as_of 2024-01-01, customer_segments.csv)"
    assert escape_markdown("EUR 1,234") == "EUR 1,234"


def test_the_renderer_shows_raw_html_as_text_and_drops_script_links():
    html = render_markdown("<img src=x onerror=alert(1)> <details open ontoggle=alert(1)> [x](javascript:alert(1)) "
                           "<javascript:alert(1)> ![p](javascript:alert(1))\n\n<script>alert(1)</script>")
    assert live_markup(html) == []
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('href="#harmful-link"') == 2


def test_the_executive_summary_shows_hostile_findings_as_text():
    finding = MARKUP[1] + " lifted *sales* [x](javascript:alert(1))"
    summary = {"title": "<b>t</b>", "analysed": MARKUP[0], "findings": [finding], "actions": [MARKUP[3]],
               "warnings": [MARKUP[2]], "headlines": {MARKUP[7]: 1}}
    html = ReportExporter().top_html(summary, None)
    assert live_markup(html) == []
    assert "<em>" not in html and "<a " not in html
    text = "".join(parse(html).text)
    assert finding in text and MARKUP[0] in text and MARKUP[2] in text
    assert summary_markdown(summary).count("**") == 8  # only the four section headings are bold


def test_a_text_choice_of_an_explorer_is_escaped():
    html = static_html({MARKUP[1]: MARKUP[0]}, lambda v: v, title=MARKUP[3])
    assert live_markup(html) == []
    assert MARKUP[0] in "".join(parse(html).text)


def test_the_harness_still_finds_a_script_next_to_the_interactive_tables_own():
    html = interactive_table(pd.DataFrame({"a": [1]}), include_library=True)._repr_mimebundle_()["text/html"]
    assert live_markup(html) == []
    assert live_markup(html + "<script>window.__pwned=1</script>") == ["<script>window.__pwned=1"]
    altered = html.replace("new ITable(table, {", "alert(1); new ITable(table, {")
    assert len(live_markup(altered)) == 1


@pytest.mark.parametrize("value", PAYLOADS)
def test_a_value_in_an_interactive_table_is_text_in_a_cell_and_never_in_a_script(value):
    frame = pd.DataFrame({value: [value], "customer_id": [value], "n": [3]})
    html = interactive_table(frame, csv_name=value, include_library=False)._repr_mimebundle_()["text/html"]
    doc = parse(html)
    assert live_markup(html) == []
    # header, footer filter row, cell: each as its own text
    # pandas shows a line break in a cell as \n, and keeps runs of spaces with &nbsp;
    as_text = {value.strip(), value.replace("\n", "\\n").strip()}
    assert sum(t.replace("\xa0", " ").strip() in as_text for t in doc.text) == 4  # the column name twice, the cell, the id
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value):  # the download's file name keeps only these
        assert all(value not in script for script in doc.scripts)


def test_the_library_of_the_interactive_tables_is_embedded_and_loads_nothing_from_outside():
    from segkit.report.export import find_external_resources

    html = library_html()
    assert find_external_resources(html) == []
    assert "http://" not in html and "https://" not in html
    assert len(html) > 500_000  # the DataTables bundle itself, base64 (not a link to it)
    # the loader is let through as exactly itself: changed, its import() counts again
    assert find_external_resources(html.replace("if (!window", "fetch('x'); if (!window")) != []


# --------------------------------------------------------------------------- CSV cells
def test_formula_cells_get_a_quote_and_read_back_unchanged(tmp_path):
    ids = list(FORMULAS) + ["\t=1", "a;=1+1", "'quoted", "-1234", "+49", "C000001", "O'Brien"]
    frame = pd.DataFrame({"customer_id": ids, "monetary_total": [-12.5] * len(ids), "segment": "Lost"})
    path = tmp_path / "segments.csv"
    write_frame(path, frame)
    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert written["customer_id"].tolist() == [
        "'" + FORMULAS[0], "'" + FORMULAS[1], "'" + FORMULAS[2], "'" + FORMULAS[3], "'\t'=1", "a;'=1+1",
        "''quoted", "-1234", "+49", "C000001", "O'Brien"]
    assert (written["monetary_total"] == "-12.5").all()  # numbers stay numbers, negative ones too
    assert read_frame(path, dtype={"customer_id": "string"})["customer_id"].tolist() == ids


def test_a_frame_without_formula_cells_is_written_byte_for_byte_as_before(tmp_path):
    frame = pd.DataFrame({"customer_id": ["C1", "C2", "-7"], "x": [-1.5, 2.0, None], "s": ["a", None, "b-c"]})
    path = tmp_path / "plain.csv"
    write_frame(path, frame)
    assert path.read_bytes() == frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()


def test_neutralise_and_restore_are_inverse_and_flag_what_they_change():
    for value in PAYLOADS + ("'", "''=", ";;=", "\t", "\r=1", "a\n-b+1"):
        assert restore_formula(neutralise_formula(value)) == value
    assert neutralise_formula("\r=1") == "'\r'=1" and neutralise_formula("a\n-b+1") == "a\n'-b+1"
    assert formula_cells(pd.Series(list(FORMULAS) + ["C1", "-3", None])).tolist() == [True] * 4 + [False] * 3


def test_the_audit_counts_customer_ids_that_a_spreadsheet_would_run():
    from segkit.audit import run_audit

    tx = pd.DataFrame({"customer_id": [FORMULAS[0], FORMULAS[1], "C1", "-5"],
                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
                       "amount": [10.0, 20.0, 30.0, 40.0]})
    findings = run_audit({"transactions": tx}, as_of="2024-02-01").findings.set_index("check")
    assert findings.loc["formula_like_ids", "count"] == 2
    assert findings.loc["formula_like_ids", "severity"] == "warning"
    assert findings.loc["formula_like_ids", "message"].startswith("Customer ids a spreadsheet would run as a formula")


# --------------------------------------------------------------------------- the hostile run
@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, dict]:
    return build_hostile_run(tmp_path_factory)


def test_the_hostile_run_succeeds(hostile):
    run, cli = hostile
    assert cli["returncode"] == 0, cli["stdout"] + cli["stderr"]
    assert sorted(p.name for p in run.glob("*.html")) == [
        "01_data_audit.html", "02_rfm.html", "03_clustering.html", "04_lifecycle.html",
        "05_campaign_evaluation.html", "index.html"]


def test_no_html_of_the_hostile_run_has_live_markup_from_the_data(hostile):
    run, _ = hostile
    found = {page.name: live_markup(page.read_text(encoding="utf-8")) for page in sorted(run.glob("*.html"))}
    assert found == {name: [] for name in found}
    # The payloads are there, as text: the summary of 05 names the hostile control arm.
    text = "".join(parse((run / "05_campaign_evaluation.html").read_text(encoding="utf-8")).text)
    assert f"<script>{'window.__pwned=1;alert(1)'}</script>control" in text


def test_no_markdown_of_the_hostile_run_has_live_markup_even_rendered_with_raw_html(hostile):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    run, _ = hostile
    found = {}
    for path in sorted(run.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        sources = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
        sources += [out["data"]["text/markdown"] for cell in nb.cells if cell.cell_type == "code"
                    for out in cell.get("outputs", []) if "text/markdown" in out.get("data", {})]
        problems = [p for source in sources for p in live_markup(markdown2html_mistune(source))]
        links = [a for source in sources for a in parse(markdown2html_mistune(source)).attributes
                 if a[1] == "href" and not a[2].startswith("#")]  # headings' own anchors are fine
        found[path.name] = problems + [f"link {a[2]}" for a in links]
    assert found == {name: [] for name in found}


def test_every_text_cell_of_the_hostile_run_csvs_is_spreadsheet_safe(hostile):
    run, _ = hostile
    trigger = re.compile(r"^[=+\-@\t\r]")
    for name in ("customer_segments.csv", "campaign_results.csv"):
        cells = pd.read_csv(run / "artifacts" / name, dtype=str, keep_default_na=False)
        numeric = pd.read_csv(run / "artifacts" / name).select_dtypes("number").columns
        text = cells.drop(columns=numeric)
        bad = [v for column in text for v in text[column] if trigger.match(v) and not re.fullmatch(r"[+-]?\d+(\.\d+)?", v)]
        assert bad == [], name
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype=str, keep_default_na=False)
    formula_ids = segments["customer_id"][segments["customer_id"].str.startswith("'")]
    assert len(formula_ids) > 0
    assert set(formula_ids.str[1:].str[:len(FORMULAS[0])]) >= {FORMULAS[0]}
    # segkit reads its own file back with the real ids
    restored = read_frame(run / "artifacts" / "customer_segments.csv", dtype={"customer_id": "string"})
    customers = pd.read_parquet(run / "artifacts" / "customers_clean.parquet", columns=["customer_id"])
    assert set(restored["customer_id"]) == set(customers["customer_id"].astype(str))


def test_the_audit_of_the_hostile_run_counts_the_formula_like_ids(hostile):
    run, _ = hostile
    audit = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    finding = next(f for f in audit["findings"] if f["check"] == "formula_like_ids")
    customers = pd.read_parquet(run / "artifacts" / "customers_clean.parquet", columns=["customer_id"])
    expected = int(customers["customer_id"].astype(str).str.match(r"[=+\-@]").sum())
    assert finding["count"] == expected > 0


def test_event_attributes_are_among_the_payloads():  # keeps the hostile data honest
    assert all(any(attr in p for p in MARKUP) for attr in EVENT_ATTRIBUTES)


# --------------------------------------------------------------------------- plot text
def _pixels(fig) -> "np.ndarray":
    import numpy as np

    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def test_a_dollar_sign_in_plot_text_is_drawn_as_typed_not_as_a_formula():
    # "$5 off $10" used to be drawn as the italic formula "5off10" (matplotlib's mathtext)
    import matplotlib
    import matplotlib.pyplot as plt

    from segkit.plots import label, new_axes, set_theme
    from segkit.plots.cluster import plot_stability

    with matplotlib.rc_context():
        set_theme()
        drawn = label(new_axes(), "Campaign $5 off $10", "x", "y")
        with matplotlib.rc_context({"text.parse_math": True}):  # the same text, escaped for mathtext
            literal = new_axes()
            literal.set_title(r"Campaign \$5 off \$10")
            literal.set_xlabel("x")
            literal.set_ylabel("y")
            as_typed = _pixels(literal.figure)
        assert drawn.get_title() == "Campaign $5 off $10"
        assert (_pixels(drawn.figure) == as_typed).all()
        ax = plot_stability(pd.Series([0.9, 0.5], index=[1, 2]), {1: "$5 off $10", 2: "web_shop $x$"}, 0.6)
        ax.figure.canvas.draw()
        ticks = ax.get_yticklabels()
        assert [t.get_text() for t in ticks] == ["1: $5 off $10", "2: web_shop $x$"]
        assert not any(t.get_parse_math() for t in [*ticks, ax.title, ax.xaxis.label])
    plt.close("all")


def test_the_hostile_run_names_clusters_after_channels_as_typed_and_shows_them_as_text(hostile):
    # cluster names used to be built from the channel's column slug ("script window pwned 1 ...-first")
    run, _ = hostile
    channels = json.loads((run.parent / "data" / "maps.json").read_text())["transactions.channel"].values()
    text = "".join(parse((run / "03_clustering.html").read_text(encoding="utf-8")).text)
    named = [ch for ch in channels if f"'{ch[:1].upper()}{ch[1:]}-first" in text]  # a name starts with a capital
    assert named, "no cluster of 03's summary is named after a channel as typed"


def test_log_axes_are_labelled_with_plain_numbers_not_formula_code():
    # with maths off, matplotlib's log tick labels showed as "$\mathdefault{10^{2}}$"
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from segkit.plots import set_theme
    from segkit.plots.audit import plot_outlier_rule
    from segkit.plots.lifecycle import plot_clv_distribution

    with matplotlib.rc_context():
        set_theme()
        clv = plot_clv_distribution(pd.DataFrame({"lifecycle_stage": "active", "clv_12m": np.geomspace(2, 5000, 60)}))
        rule = {"measure": "quantity", "unit": "units per line", "median": 1.0, "k": 5.0, "min_fold": 10.0,
                "low": 0.1, "high": 10.0, "flagged": 1}
        outliers = plot_outlier_rule(pd.Series([1, 1, 2, 3, 300] * 20), rule)
        shown = {}
        for name, axis in (("clv x", clv.xaxis), ("outlier x", outliers.xaxis), ("outlier y", outliers.yaxis)):
            axis.figure.canvas.draw()
            lo, hi = sorted(axis.get_view_interval())
            shown[name] = [t.get_text() for t, v in zip(axis.get_ticklabels(), axis.get_ticklocs())
                           if t.get_text() and lo <= v <= hi]
    assert shown == {"clv x": ["10", "100", "1,000"], "outlier x": ["0.1", "1", "10", "100"], "outlier y": ["0", "1", "10"]}
    plt.close("all")
