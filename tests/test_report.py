"""segkit.report: offline HTML export, privacy redaction, index, run.json, the runner, nbval copies.

The runner is exercised on throwaway notebooks (real pipeline names, contract shape) written to
tmp folders, so these tests take seconds; tests/test_e2e.py runs the real notebooks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from segkit.core.config import project_root
from segkit.core.errors import ConfigError, DataError
from segkit.core.privacy import SALT_ENV, pseudonymize_ids, salt_for, shareable_table
from segkit.report import (
    NotebookFailedError,
    ReportExporter,
    RunInterrupted,
    RunOptions,
    effective_config,
    find_external_resources,
    redact_raw_ids,
    resolve_only,
    run_pipeline,
    validate_offline_html,
)
from segkit.report.export import Failure, OfflineHTMLError, format_headline, strip_live_widgets
from segkit.report.index import render_index
from segkit.report.nbval import NBVAL_SALT, parse_sanitize_patterns, regression_copy, sanitize_text
from segkit.report.runinfo import file_info, notebook_timings

from run_helpers import make_notebook, tiny_inputs

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NBVAL_DIR = project_root() / "tests" / "nbval"


# --------------------------------------------------------------------------- offline validator
@pytest.mark.parametrize("snippet", [
    '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>',
    '<link rel="stylesheet" href="https://unpkg.com/x.css">',
    '<img src="https://example.org/plot.png">',
    '<img src="plot.png">',  # relative: outside the file too
    '<img srcset="data:image/png;base64,AA== 1x, https://x.org/a.png 2x">',
    '<iframe src="//example.org/embed"></iframe>',
    '<style>body { background: url("https://x.org/bg.png") }</style>',
    "<style>@import 'https://fonts.example/font.css';</style>",
    '<div style="background-image: url(http://x.org/a.png)"></div>',
    '<meta http-equiv="refresh" content="0; url=https://x.org">',
    "<script>fetch('/api')</script>",
    "<script>var s = document.createElement('script'); s.src = 'https://unpkg.com/@jupyter-widgets/html-manager';</script>",
    '<svg><image href="https://x.org/a.png"/></svg>',
])
def test_the_validator_flags_anything_loaded_from_outside_the_file(snippet):
    assert len(find_external_resources(f"<html><body>{snippet}</body></html>")) == 1
    with pytest.raises(OfflineHTMLError, match="is not self-contained"):
        validate_offline_html(snippet, "x.html")


def test_the_validator_accepts_embedded_data_anchors_and_links_the_reader_clicks():
    page = ('<html><head><style>.a{background:url(data:image/png;base64,AA==)}</style></head><body>'
            '<img src="data:image/png;base64,iVBORw0KGgo="><a href="https://segkit.example/docs">docs</a>'
            '<a href="02_rfm.html">next</a><a href="#top">top</a>'
            '<script type="application/json">{"url": "https://x.org"}</script>'
            '<svg xmlns="http://www.w3.org/2000/svg"><use href="#shape"/></svg></body></html>')
    assert find_external_resources(page) == []


# --------------------------------------------------------------------------- HTML export
def _demo_notebook() -> nbformat.NotebookNode:
    widget_out = nbformat.v4.new_output("display_data", data={
        "text/html": "<div class='segkit-static-explorer'>STATIC VIEW</div>",
        "text/plain": "Explorer (static view below)",
        WIDGET_MIME: {"model_id": "0123456789abcdef0123456789abcdef", "version_major": 2, "version_minor": 0},
    })
    js_only = nbformat.v4.new_output("display_data", data={"application/javascript": "fetch('https://x.org')"})
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Demo report\nMath $x^2$ stays text."),
            nbformat.v4.new_code_cell("secret_code_line = 1", outputs=[widget_out, js_only]),
        ],
        metadata={"kernelspec": {"name": "segkit", "display_name": "Python (segkit)", "language": "python"},
                  "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}},
    )
    return nb


SUMMARY = {"notebook": "02_rfm", "title": "RFM segments", "analysed": "1,200 customers",
           "findings": ["Champions bring 40% of revenue"], "actions": ["Reward Champions"],
           "headlines": {"Customers": 1200, "Revenue share": 0.4}, "warnings": ["few returns"]}


def test_exported_html_is_offline_and_shows_the_static_widget_view():
    html = ReportExporter().to_html(_demo_notebook())
    assert find_external_resources(html) == []
    for loader in ("cdnjs", "unpkg", "require.min.js", "<script"):
        assert loader not in html
    assert "STATIC VIEW" in html
    assert WIDGET_MIME not in html and "widget-state" not in html


def test_code_is_hidden_by_default_and_kept_with_include_code():
    assert "secret_code_line" not in ReportExporter().to_html(_demo_notebook())
    assert "secret_code_line" in ReportExporter(include_code=True).to_html(_demo_notebook())


def test_the_executive_summary_comes_before_the_detail():
    html = ReportExporter().to_html(_demo_notebook(), summary=SUMMARY)
    top = html.index("Executive summary: RFM segments")
    assert top < html.index("Demo report")
    for text in ("1,200", "0.40", "Champions bring 40% of revenue", "Reward Champions", "few returns"):
        assert top < html.index(text)


def test_a_failed_notebook_gets_a_banner_naming_cell_and_error():
    failure = Failure("02_rfm", 3, 2, "result = build_rfm_artifacts(ctx)", "DataError", "column 'amount' is empty")
    html = ReportExporter().to_html(_demo_notebook(), failure=failure)
    banner = html[html.index("This notebook stopped with an error"):]
    assert "result = build_rfm_artifacts(ctx)" in banner and "DataError" in banner
    assert "column &#x27;amount&#x27; is empty" in banner or "column 'amount' is empty" in banner


def test_strip_live_widgets_keeps_static_representations_and_drops_js_only_outputs():
    clean = strip_live_widgets(_demo_notebook())
    outputs = clean.cells[1].outputs
    assert [sorted(o.data) for o in outputs] == [["text/html", "text/plain"]]
    assert "widgets" not in clean.metadata
    assert WIDGET_MIME in _demo_notebook().cells[1].outputs[0].data  # the input is not modified


def test_export_writes_the_file_and_counts_redacted_ids(tmp_path):
    nb = _demo_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("Best customer: C000042"))
    privacy = {"pseudonymize_ids": True, "salt": "pepper"}
    result = ReportExporter().export(nb, tmp_path / "02_rfm.html", raw_ids=["C000042"], privacy=privacy)
    html = (tmp_path / "02_rfm.html").read_text()
    assert result.redacted_ids == 1 and "C000042" not in html
    assert str(pseudonymize_ids(pd.Series(["C000042"]), salt_for({"privacy": privacy})).iloc[0]) in html


def test_export_keeps_ids_when_pseudonymisation_is_off(tmp_path):
    nb = _demo_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("Best customer: C000042"))
    result = ReportExporter().export(nb, tmp_path / "r.html", raw_ids=["C000042"], privacy={"pseudonymize_ids": False})
    assert result.redacted_ids == 0 and "C000042" in (tmp_path / "r.html").read_text()


def test_export_refuses_a_notebook_that_links_a_web_image(tmp_path):
    nb = _demo_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("![logo](https://example.org/logo.png)"))
    with pytest.raises(OfflineHTMLError, match="logo.png"):
        ReportExporter().export(nb, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- privacy redaction
def test_redaction_uses_the_same_pseudonym_as_shareable_tables():
    config = {"privacy": {"pseudonymize_ids": True, "salt": "s3cret"}}
    shown = shareable_table(pd.DataFrame({"customer_id": ["C000123"]}), config)["customer_id"].iloc[0]
    html, n = redact_raw_ids("<td>C000123</td>", ["C000123"], salt=salt_for(config))
    assert (html, n) == (f"<td>{shown}</td>", 1)


def test_redaction_matches_whole_ids_only_and_leaves_images_and_numbers_alone():
    page = ('<td>C0001234</td><td>xC000123</td><p>C000123.</p><p>(C000123)</p>'
            '<img src="data:image/png;base64,AAC000123AA=="><td>12346</td>')
    html, n = redact_raw_ids(page, ["C000123", "12346"], salt="s")
    assert n == 2
    assert "<td>C0001234</td><td>xC000123</td>" in html
    assert "base64,AAC000123AA==" in html and "<td>12346</td>" in html
    assert "<p>C000123.</p>" not in html and "(C000123)" not in html


def _pseudonym(raw: str, salt: str) -> str:
    return str(pseudonymize_ids(pd.Series([raw]), salt).iloc[0])


WORD_IDS = ["none", "test", "web", "Lost"]


def test_ids_that_are_ordinary_words_leave_css_scripts_markup_and_prose_alone():
    """The tester's ids none/test/web/Lost turned ``display: none`` into ``display: c-…`` in every report."""
    page = ("<style>.jp-x {display: none}</style><script>var test = 'web';</script>"
            "<p>Fisher exact test: none of the web shop's Lost customers</p>"
            "<div class='none' align='left' title='web' data-x='test'>x</div>")
    assert redact_raw_ids(page, WORD_IDS, salt="s") == (page, 0)


def test_ids_that_are_ordinary_words_are_replaced_as_table_cells_and_quoted_values():
    page = ("<table><tr><th>none</th><td> Lost </td><td>test case</td></tr></table>"
            "<pre>DataError: duplicate ids: &#x27;none&#x27;, \u201ctest\u201d</pre>")
    html, n = redact_raw_ids(page, WORD_IDS, salt="s")
    none, lost, test = (_pseudonym(i, "s") for i in ("none", "Lost", "test"))
    assert html == (f"<table><tr><th>{none}</th><td> {lost} </td><td>test case</td></tr></table>"
                    f"<pre>DataError: duplicate ids: '{none}', \u201c{test}\u201d</pre>")
    assert n == 4


def test_a_report_of_ids_that_are_words_differs_from_one_without_redaction_only_in_the_id_cells(tmp_path):
    nb = _demo_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("A Fisher exact test found none of the web shop's Lost buyers."))
    nb.cells.append(nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/html": pd.DataFrame({"customer_id": ["web"]}).to_html()}, execution_count=1)]))
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = ReportExporter().export(nb, tmp_path / "on" / "r.html", raw_ids=WORD_IDS, privacy={"salt": "s"})
    off = ReportExporter().export(nb, tmp_path / "off" / "r.html", raw_ids=WORD_IDS,
                                  privacy={"pseudonymize_ids": False})
    redacted, plain = (tmp_path / "on" / "r.html").read_text(), (tmp_path / "off" / "r.html").read_text()
    assert on.redacted_ids == 1 and off.redacted_ids == 0
    assert plain.count("display: none") > 0 and redacted.count("display: none") == plain.count("display: none")
    salt = salt_for({"privacy": {"salt": "s"}})  # the test suite's SEGKIT_SALT wins
    assert redacted == plain.replace("<td>web</td>", f"<td>{_pseudonym('web', salt)}</td>")


def test_ids_with_spaces_quotes_umlauts_or_angle_brackets_are_found_in_text_and_attributes():
    ids = ["Müller GmbH", "O'Brien-12", "<ACME> 7"]
    page = ("<td>M&uuml;ller GmbH</td><td>O&#x27;Brien-12</td><p>Top: O'Brien-12, &lt;ACME&gt; 7 &amp; more.</p>"
            '<span title="M&#252;ller GmbH">x</span><p>Müller GmbHs and XO\'Brien-12 stay</p>')
    html, n = redact_raw_ids(page, ids, salt="s")
    mueller, obrien, acme = (_pseudonym(i, "s") for i in ids)
    assert html == (f"<td>{mueller}</td><td>{obrien}</td><p>Top: {obrien}, {acme} &amp; more.</p>"
                    f'<span title="{mueller}">x</span><p>Müller GmbHs and XO\'Brien-12 stay</p>')
    assert n == 5


# --------------------------------------------------------------------------- small helpers
def test_headline_numbers_are_formatted_for_readers():
    assert [format_headline(v) for v in (4210, 1234.0, 0.12345, "12%", True, None)] == \
        ["4,210", "1,234", "0.12", "12%", "True", "None"]


def test_resolve_only_accepts_full_and_short_names_in_pipeline_order():
    assert resolve_only(["lifecycle", "01_data_audit", "rfm"]) == ["01_data_audit", "02_rfm", "04_lifecycle"]
    with pytest.raises(ConfigError, match="'rmf'.*02_rfm"):
        resolve_only(["rmf"])


def test_notebook_timings_split_kernel_start_compute_and_export():
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"start_time": "2024-01-01T00:00:00+00:00", "duration": 10.0}})
    nb.cells = [nbformat.v4.new_markdown_cell("x", metadata={"papermill": {}}),
                nbformat.v4.new_code_cell("a", metadata={"papermill": {"start_time": "2024-01-01T00:00:03+00:00", "duration": 4.0}}),
                nbformat.v4.new_code_cell("b", metadata={"papermill": {"start_time": "2024-01-01T00:00:07+00:00", "duration": 2.5}})]
    assert notebook_timings(nb, html_export=1.25) == {"kernel_start": 3.0, "compute": 6.5, "html_export": 1.25,
                                                      "total": 11.25}


def test_file_info_hashes_the_bytes(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(b"customer_id\nC1\n")
    assert file_info(f) == {"path": str(f.resolve()), "size": 15, "sha256": hashlib.sha256(b"customer_id\nC1\n").hexdigest()}


# --------------------------------------------------------------------------- index
def test_the_index_shows_status_period_headlines_skips_and_warnings():
    record = {
        "status": "failed", "error": "03_clustering stopped in cell In [4] with ModelFitError: too few customers",
        "run": {"name": "june", "only": None, "include_code": False}, "as_of": "2024-07-01", "seed": 7,
        "inputs": {"transactions": {"path": "/data/tx.csv", "size": 2048, "sha256": "ab" * 32}, "campaign": None},
        "notebooks": [{"name": "02_rfm", "status": "ok", "html": "02_rfm.html", "seconds": {"total": 3.0}},
                      {"name": "05_campaign_evaluation", "status": "skipped", "reason": "Skipped: no campaign data."}],
        "warnings": ["02_rfm.html showed 1 raw customer id(s)"],
    }
    audit = {"period": {"start": "2023-01-01", "end": "2024-06-30"},
             "findings": [{"check": "exact_duplicates", "severity": "warning", "count": 12, "message": "12 duplicate lines removed"},
                          {"check": "returns", "severity": "info", "count": 40, "message": "returns kept"}]}
    page = render_index(record, {"02_rfm": SUMMARY}, audit)
    validate_offline_html(page)
    assert "FAILED" in page and "too few customers" in page
    assert "2023-01-01 to 2024-06-30" in page and "2024-07-01" in page
    assert "<a href='02_rfm.html'>02_rfm</a>" in page and "1,200" in page and "Champions bring 40% of revenue" in page
    assert "Skipped: no campaign data." in page
    assert "12 duplicate lines removed" in page and "returns kept" not in page
    assert "few returns" in page and "raw customer id" in page
    assert "tx.csv (2.0 KB, sha256 abababababab" in page


# --------------------------------------------------------------------------- effective config
def test_a_data_flag_without_config_leaves_the_other_tables_absent(tmp_path):
    inputs = tiny_inputs(tmp_path)
    cfg = effective_config(RunOptions(transactions=inputs["transactions"]))
    assert cfg["data"] == {"transactions": str(inputs["transactions"].resolve()), "customers": None, "campaign": None}


def test_flags_override_the_config_file(tmp_path):
    inputs = tiny_inputs(tmp_path)
    (tmp_path / "c.yml").write_text("run: {as_of: 2024-01-01, seed: 9}\ndata: {transactions: transactions.csv, "
                                    "customers: customers.csv}\n")
    cfg = effective_config(RunOptions(config=tmp_path / "c.yml", as_of="2024-02-29", customers=inputs["transactions"]))
    assert cfg["run"]["as_of"] == "2024-02-29" and cfg["run"]["seed"] == 9
    assert cfg["data"]["transactions"] == str(inputs["transactions"].resolve())
    assert cfg["data"]["customers"] == str(inputs["transactions"].resolve())
    assert effective_config(RunOptions(config=tmp_path / "c.yml"))["run"]["as_of"] == "2024-01-01"


def test_a_missing_input_file_is_named_with_the_flag_it_came_from(tmp_path):
    with pytest.raises(DataError, match=r"transactions file .*nope\.csv \(from --transactions\) does not exist"):
        effective_config(RunOptions(transactions=tmp_path / "nope.csv"))


@pytest.mark.parametrize("as_of", ["2024-13-01", "yesterday", "01/02/2024"])
def test_a_bad_as_of_is_a_config_error(tmp_path, as_of):
    inputs = tiny_inputs(tmp_path)
    with pytest.raises(ConfigError, match="from --as-of.*YYYY-MM-DD"):
        effective_config(RunOptions(transactions=inputs["transactions"], as_of=as_of))


def test_a_non_integer_seed_is_a_config_error(tmp_path):
    tiny_inputs(tmp_path)
    (tmp_path / "c.yml").write_text("run: {seed: abc}\ndata: {transactions: transactions.csv}\n")
    with pytest.raises(ConfigError, match="run.seed = 'abc'"):
        effective_config(RunOptions(config=tmp_path / "c.yml"))


# --------------------------------------------------------------------------- runner (throwaway notebooks)
AUDIT_BODY = """ctx.write_artifact("audit_summary", {"as_of": "2024-02-01", "status": "warnings",
    "period": {"start": "2024-01-02", "end": "2024-01-31"},
    "findings": [{"check": "exact_duplicates", "severity": "warning", "count": 3,
                  "message": "3 duplicate rows removed", "examples": []}],
    "cleaning_rules": [], "counts": {}})"""
RFM_BODY = """audit = ctx.read_artifact("audit_summary")
seg = pd.DataFrame({"customer_id": ["C000001", "C000002"], "tier": ["gold", "silver"]})
ctx.update_customer_segments(seg)
display(shareable(ctx, seg))
print("raw id leaking:", "C000002")
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 3, 2])"""
EXPLORER_BODY = """from segkit.widgets import explorer
explorer({"gold": "gold", "silver": "silver"}, lambda tier: pd.DataFrame({"tier": [tier], "shown": ["TIER-" + tier]}),
         description="Tier", title="Tiers")"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Throwaway notebooks 01/02 (+ 05), inputs, and one successful run of 01+02."""
    root = tmp_path_factory.mktemp("tiny")
    notebooks = root / "notebooks"
    make_notebook(notebooks, "01_data_audit", AUDIT_BODY)
    make_notebook(notebooks, "02_rfm", RFM_BODY)
    nb = nbformat.read(notebooks / "02_rfm.ipynb", as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell(EXPLORER_BODY))
    nbformat.write(nb, notebooks / "02_rfm.ipynb")
    make_notebook(notebooks, "05_campaign_evaluation", "x = 1")
    inputs = tiny_inputs(root / "data")
    lines: list[str] = []
    result = run_pipeline(RunOptions(transactions=inputs["transactions"], out=root / "run", only=["data_audit", "rfm"]),
                          notebooks_dir=notebooks, echo=lines.append)
    return {"root": root, "notebooks": notebooks, "inputs": inputs, "result": result, "lines": lines}


def test_a_run_writes_notebooks_html_index_config_and_run_json(tiny):
    run = tiny["root"] / "run"
    assert tiny["result"].out == run
    names = sorted(p.name for p in run.iterdir())
    assert names == [".segkit-run", "01_data_audit.html", "01_data_audit.ipynb", "02_rfm.html", "02_rfm.ipynb",
                     "artifacts", "config.yml", "index.html", "run.json", "summaries"]
    assert not [p for p in run.parent.iterdir() if ".building-" in p.name]
    for page in run.glob("*.html"):
        validate_offline_html(page.read_text(), page.name)
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv")
    assert segments["customer_id"].tolist() == ["C000001", "C000002"]


def test_progress_is_one_line_per_notebook_with_elapsed_time(tiny):
    lines = tiny["lines"]
    assert lines[0].startswith("segkit run: 2 notebook(s)")
    assert [line.split()[1:3] for line in lines[1:3]] == [["01_data_audit", "ok"], ["02_rfm", "ok"]]
    assert all(line.rstrip().endswith(" s") for line in lines[1:3])
    assert lines[-1] == f"Reports: {tiny['root'] / 'run' / 'index.html'}"


def test_run_json_records_inputs_versions_seed_timings_and_status(tiny):
    record = json.loads((tiny["root"] / "run" / "run.json").read_text())
    tx = tiny["inputs"]["transactions"]
    assert record["status"] == "ok" and record["seed"] == 42 and record["as_of"] == "2024-02-01"
    assert record["inputs"]["transactions"]["sha256"] == hashlib.sha256(tx.read_bytes()).hexdigest()
    assert record["inputs"]["transactions"]["size"] == tx.stat().st_size
    assert record["inputs"]["customers"] is None and record["inputs"]["campaign"] is None
    assert record["versions"]["segkit"] == "0.1.0" and record["versions"]["papermill"]
    by_name = {n["name"]: n for n in record["notebooks"]}
    assert [by_name[n]["status"] for n in ("01_data_audit", "02_rfm", "03_clustering")] == ["ok", "ok", "not run"]
    timings = by_name["02_rfm"]["seconds"]
    assert set(timings) == {"kernel_start", "compute", "html_export", "total"}
    assert all(v > 0 for v in timings.values())
    assert by_name["02_rfm"]["parameters"] == {"seed": 42}
    assert record["outputs"]["customer_segments.csv"]["sha256"] == hashlib.sha256(
        (tiny["root"] / "run" / "artifacts" / "customer_segments.csv").read_bytes()).hexdigest()


def test_the_effective_config_is_written_with_absolute_paths_and_passed_to_notebooks(tiny):
    run = tiny["root"] / "run"
    cfg = __import__("yaml").safe_load((run / "config.yml").read_text())
    assert cfg["data"] == {"transactions": str(tiny["inputs"]["transactions"].resolve()), "customers": None, "campaign": None}
    assert cfg["run"]["only"] == ["01_data_audit", "02_rfm"]
    nb = nbformat.read(run / "02_rfm.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f'run_dir = "{run}"' in injected.source and f'config_path = "{run / "config.yml"}"' in injected.source
    assert "as_of" not in injected.source and "seed = 42" in injected.source and ".building-" not in injected.source


def test_raw_ids_shown_outside_shareable_tables_are_redacted_and_reported(tiny):
    run = tiny["root"] / "run"
    html = (run / "02_rfm.html").read_text()
    assert "C000001" not in html and "C000002" not in html
    assert str(pseudonymize_ids(pd.Series(["C000002"]), salt_for({})).iloc[0]) in html
    record = json.loads((run / "run.json").read_text())
    assert [n.get("redacted_ids") for n in record["notebooks"][:2]] == [0, 1]
    assert any("02_rfm.html showed 1 raw customer id" in w for w in record["warnings"])
    assert "02_rfm.html showed 1 raw customer id" in (run / "index.html").read_text()


def test_plots_are_embedded_even_when_the_caller_set_a_non_inline_backend(tiny):
    # tests/conftest.py sets MPLBACKEND=Agg; the runner must still give kernels the inline backend.
    assert __import__("os").environ.get("MPLBACKEND") == "Agg"
    html = (tiny["root"] / "run" / "02_rfm.html").read_text()
    assert html.count("src=\"data:image/png;base64,") == 1


def test_an_explorer_shows_its_static_view_once_and_its_live_output_stays_in_the_widget(tiny):
    run = tiny["root"] / "run"
    nb = nbformat.read(run / "02_rfm.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("from segkit.widgets import"))
    assert len(cell.outputs) == 1 and "segkit-static-explorer" in cell.outputs[0].data["text/html"]
    html = (run / "02_rfm.html").read_text()
    assert html.count("TIER-gold") == 1 and html.count("TIER-silver") == 1
    assert "widget-view+json" not in html and "widget-state" not in html


def test_the_engine_never_writes_widget_state_back_to_the_kernel():
    from types import SimpleNamespace

    from papermill.engines import papermill_engines

    from segkit.report.runner import register_engine

    class NoKernel:
        def __getattr__(self, name):
            raise AssertionError(f"the Output widget mimic used the kernel client ({name})")

    widget_class = papermill_engines.get_engine(register_engine()).client_class.output_widget_class
    widget = widget_class("c1", {"outputs": []}, NoKernel(), SimpleNamespace(widget_state={"c1": {}}))
    msg = {"msg_type": "display_data", "header": {"msg_type": "display_data"}, "parent_header": {},
           "content": {"data": {"text/plain": "hello"}, "metadata": {}}}
    widget.output([], msg, None, 0)
    assert [o["data"]["text/plain"] for o in widget.outputs] == ["hello"]


def test_the_html_starts_with_the_executive_summary_and_the_index_has_headlines(tiny):
    run = tiny["root"] / "run"
    html = (run / "02_rfm.html").read_text()
    assert html.index("Executive summary: Tiny 02_rfm") < html.index("A throwaway notebook")
    index = (run / "index.html").read_text()
    for text in ("2024-01-02 to 2024-01-31", "3 duplicate rows removed", "02_rfm found 2 rows",
                 "<a href='01_data_audit.html'>", "Status: Complete"):
        assert text in index


def test_only_into_an_existing_run_reuses_its_artifacts_and_config(tiny, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny["root"] / "run", out)
    result = run_pipeline(RunOptions(out=out, only=["rfm"], quiet=True), notebooks_dir=tiny["notebooks"])
    by_name = {n["name"]: n for n in result.record["notebooks"]}
    assert by_name["01_data_audit"]["status"] == "reused" and by_name["02_rfm"]["status"] == "ok"
    assert by_name["01_data_audit"]["seconds"]["total"] > 0  # carried over from the earlier run.json
    assert result.record["inputs"]["transactions"]["path"] == str(tiny["inputs"]["transactions"].resolve())
    assert "Reused from the previous run" in (out / "index.html").read_text()


def test_only_with_a_missing_upstream_artifact_says_which_notebook_to_run_first(tiny, tmp_path):
    out = tmp_path / "fresh"
    with pytest.raises(NotebookFailedError) as info:
        run_pipeline(RunOptions(transactions=tiny["inputs"]["transactions"], out=out, only=["rfm"], quiet=True),
                     notebooks_dir=tiny["notebooks"])
    err = info.value
    assert err.failure.ename == "UpstreamMissingError" and not err.is_bug
    assert "Run 01_data_audit first" in str(err) and f"--out {out}" in str(err)
    assert ".building-" not in str(err)
    assert str(err).startswith("02_rfm failed in cell In [4] (`audit = ctx.read_artifact(\"audit_summary\")`):\n")
    assert not out.exists()
    failed = tmp_path / "fresh-failed"
    assert "UpstreamMissingError" in (failed / "02_rfm.html").read_text()
    assert json.loads((failed / "run.json").read_text())["status"] == "failed"
    assert "FAILED" in (failed / "index.html").read_text()
    assert f'run_dir = "{failed}"' in (failed / "02_rfm.ipynb").read_text().replace('\\"', '"')


def test_a_notebook_without_its_input_is_skipped_with_a_reason(tiny, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny["root"] / "run", out)
    (out / "05_campaign_evaluation.html").write_text("<html>stale</html>")  # as an earlier run with campaign data
    marker = json.loads((out / ".segkit-run").read_text())  # left it, listed in its marker
    (out / ".segkit-run").write_text(json.dumps({**marker, "files": marker["files"] + ["05_campaign_evaluation.html"]}))
    lines: list[str] = []
    result = run_pipeline(RunOptions(transactions=tiny["inputs"]["transactions"], out=out,
                                     only=["campaign_evaluation"]), notebooks_dir=tiny["notebooks"], echo=lines.append)
    entry = result.record["notebooks"][-1]
    assert entry["status"] == "skipped" and "no campaign data" in entry["reason"] and "--campaign" in entry["reason"]
    assert any("05_campaign_evaluation" in line and "skipped" in line for line in lines)
    assert not (out / "05_campaign_evaluation.html").exists()
    assert "Skipped: no campaign data" in (out / "index.html").read_text()


def test_the_configured_salt_reaches_the_notebooks_but_never_the_run_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    out = tmp_path / "run"
    shutil.copytree(tiny["root"] / "run", out)
    (tmp_path / "c.yml").write_text(f"data: {{transactions: {tiny['inputs']['transactions']}}}\n"
                                    "privacy: {salt: pepper-0xC0FFEE}\n")
    run_pipeline(RunOptions(config=tmp_path / "c.yml", out=out, only=["rfm"], quiet=True), notebooks_dir=tiny["notebooks"])
    html = (out / "02_rfm.html").read_text()
    assert str(pseudonymize_ids(pd.Series(["C000001"]), "pepper-0xC0FFEE").iloc[0]) in html
    leaked = [p.name for p in out.rglob("*") if p.is_file() and b"pepper-0xC0FFEE" in p.read_bytes()]
    assert leaked == []


def test_refresh_nbval_uses_the_salt_the_test_suite_gives_nbval_kernels():
    assert __import__("os").environ[SALT_ENV] == NBVAL_SALT  # set by tests/conftest.py


def test_an_interrupted_run_keeps_the_previous_run_and_the_partial_one_aside(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(tiny["root"] / "run", out)
    before = (out / "index.html").read_bytes()

    def interrupted(source, target, **kwargs):
        nbformat.write(nbformat.read(source, as_version=4), target)
        raise KeyboardInterrupt

    monkeypatch.setattr("papermill.execute_notebook", interrupted)
    with pytest.raises(RunInterrupted, match="partial run was kept"):
        run_pipeline(RunOptions(out=out, only=["rfm"], quiet=True), notebooks_dir=tiny["notebooks"])
    assert (out / "index.html").read_bytes() == before
    record = json.loads((tmp_path / "run-failed" / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert [n["status"] for n in record["notebooks"]] == ["reused", "interrupted", "not run", "not run", "not run"]
    assert "Interrupted by the user." in (tmp_path / "run-failed" / "02_rfm.html").read_text()
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name or ".old-" in p.name]


def test_out_must_not_be_an_unrelated_folder(tiny, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not a segkit run folder"):
        run_pipeline(RunOptions(transactions=tiny["inputs"]["transactions"], out=tmp_path / "docs", only=["rfm"], quiet=True),
                     notebooks_dir=tiny["notebooks"])
    assert (tmp_path / "docs" / "thesis.txt").read_text() == "precious"


# --------------------------------------------------------------------------- nbval copies
PATTERNS = parse_sanitize_patterns((NBVAL_DIR / "sanitize.cfg").read_text())


@pytest.mark.parametrize("text, expected", [
    ("<Figure size 800x450 with 1 Axes>", "<Figure>"),
    ("<segkit.Foo object at 0x7f3a2b1c9d80>", "<segkit.Foo object at 0xADDRESS>"),
    ("built 2024-06-30 14:03:07.123+02:00", "built TIMESTAMP"),
    ("as of 2024-06-30", "as of 2024-06-30"),
    ("saved to /tmp/pytest-of-root/pytest-3/run0/x.csv now", "saved to TMPPATH now"),
    ("/work/.venv/lib/python3.11/site-packages/sklearn/cluster/_kmeans.py:1419: FutureWarning: n_init",
     "SOURCE: FutureWarning: n_init"),
    ('"model_id": "3f2a9c0d4b5e6f708192a3b4c5d6e7f8"', '"model_id": "MODELID"'),
    ('<img src="data:image/png;base64,iVBORw0KGgoAAAANSU/+hE=="/>', '<img src="data:image/png;base64,IMAGE"/>'),
    ("0.123456789 and 2.5 and 1234.56789", "0.1234 and 2.5 and 1234.5678"),
    ("CPU times: user 1.2 s, sys: 3 ms", "CPU times: DURATION"),
    ('<table id="T_8a9f0_">', '<table id="T_STYLER_">'),
])
def test_sanitize_patterns_mask_volatile_output_and_are_idempotent(text, expected):
    assert sanitize_text(text, PATTERNS) == expected
    assert sanitize_text(expected, PATTERNS) == expected


def test_a_regression_copy_drops_uncompared_images_and_widget_state():
    nb = _demo_notebook()
    nb.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        "image/png": "iVBOR", "text/plain": "<Figure size 640x480 with 1 Axes>"}))
    stored = regression_copy(nb, PATTERNS)
    assert [sorted(o.get("data", {})) for o in stored.cells[1].outputs] == [
        ["text/html", "text/plain"], ["application/javascript"], ["text/plain"]]
    assert stored.cells[1].outputs[2].data["text/plain"] == "<Figure>"
    assert "widgets" not in stored.metadata


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


NOTEBOOK_FILES = sorted((project_root() / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_each_notebook_has_a_regression_copy_with_the_same_code(notebook):
    copy_ = NBVAL_DIR / notebook.name
    assert copy_.exists(), f"tests/nbval/{notebook.name} is missing: run `make nbval-refresh`"
    assert _code_cells(copy_) == _code_cells(notebook), (
        f"tests/nbval/{notebook.name} has drifted from notebooks/{notebook.name}: run `make nbval-refresh`")


@pytest.mark.parametrize("copy_", sorted(NBVAL_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_regression_copy_belongs_to_a_notebook_and_is_stored_sanitised(copy_):
    assert (project_root() / "notebooks" / copy_.name).exists(), f"{copy_.name} has no notebook any more"
    nb = nbformat.read(copy_, as_version=4)
    assert regression_copy(nb, PATTERNS) == nb
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_index_warnings_list_each_audit_finding_once_without_a_restated_count():
    from segkit.report.index import _warnings

    audit = {"findings": [{"severity": "warning", "check": "guest_checkouts", "count": 123,
                           "message": "Rows without customer id (guest checkouts): 123 (0.4%)"},
                          {"severity": "info", "check": "prospects", "count": 4, "message": "4 prospects"}]}
    summaries = {"01_data_audit": {"warnings": ["Data-quality warnings (1): guest_checkouts"]},
                 "05_campaign_evaluation": {"warnings": ["8 small cells"]}}
    html = _warnings({"warnings": []}, summaries, audit)
    assert html.count("guest checkouts") == 1 and "— 123 rows" not in html
    assert "4 prospects" not in html and "05_campaign_evaluation: 8 small cells" in html


def test_every_chart_in_a_report_has_alt_text_from_its_titles(tmp_path):
    # images used to be <img src=...> without alt; a figure shown in the kernel now carries its alt text
    from nbclient import NotebookClient

    from segkit.report.export import ReportExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nfrom segkit.plots import label, new_axes, set_theme\n"
                                          "set_theme()\n"
                                          "ax = label(new_axes(), 'Orders <per> day', 'date', 'orders (currency)')"),
                nbformat.v4.new_code_cell("ax = new_axes()")]
    NotebookClient(nb, kernel_name="segkit", timeout=300).execute()
    [chart] = [o for o in nb.cells[0].outputs if "image/png" in o.get("data", {})]
    assert chart["metadata"]["image/png"]["alt"] == "Chart: Orders <per> day (x: date; y: orders (currency units))."
    ReportExporter().export(nb, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == 2 and all(' alt="' in img for img in images)
    assert 'alt="Chart: Orders &lt;per&gt; day (x: date; y: orders (currency units))."' in images[0]
    assert 'alt="Chart without a title."' in images[1]


def test_report_tables_show_counts_whole_shares_in_percent_and_missing_as_a_dash():
    from segkit.steps.pipeline import dash_missing, report_table, set_display

    set_display()
    power = pd.DataFrame({"segment": ["All", "Lost", "Tiny"], "base_rate": [0.0633, 0.0, float("nan")],
                          "mde_abs": [0.0778, 0.324, float("nan")], "n_control_needed": [1713.0, 266.0, float("nan")],
                          "p_adjusted": [0.0176, 1.0, 0.5]})
    assert dash_missing(power)["n_control_needed"].tolist() == ["1,713", "266.00", "–"]  # what 05 showed
    shown = report_table(power)
    assert shown["n_control_needed"].tolist() == ["1,713", "266", "–"]
    assert shown["base_rate"].tolist() == ["6.3%", "0%", "–"] and shown["mde_abs"].tolist() == ["0.0778", "0.324", "–"]
    assert shown["p_adjusted"].tolist() == [0.0176, 1.0, 0.5]  # no missing value: left to the float format
    assert report_table(pd.DataFrame({"share": [0.4312, 1.2]}))["share"].tolist() == [0.4312, 1.2]  # not a fraction
    assert power["n_control_needed"].iloc[1] == 266.0  # the data are unchanged


@pytest.mark.parametrize("name", ["01_data_audit", "03_clustering", "05_campaign_evaluation"])
def test_notebook_tables_of_01_03_05_are_shown_through_report_table(name):
    cells = ["".join(c["source"]) for c in nbformat.read(project_root() / "notebooks" / f"{name}.ipynb", as_version=4)
             .cells if c["cell_type"] == "code"]
    raw = [c for c in cells if c.startswith(("shareable(", "dash_missing(", "result.outlier_rules", "result.cleaning_rules",
                                             "pd.DataFrame([result.returns])", "result.builder.describe()",
                                             "result.selection"))]
    assert raw == []
    assert sum("report_table(" in c for c in cells) >= 5
