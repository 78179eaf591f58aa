"""End to end: ``segkit run`` on a small generated shop with the real notebooks.

One full run is shared by this module and tests/test_browser.py (built once per session, across
xdist workers); a second identical run checks byte-identical ``customer_segments.csv``. The
failure-path tests run at most one notebook each.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from segkit.report import validate_offline_html
from segkit.report.export import format_headline
from segkit.steps.pipeline import ARTIFACTS, CUSTOMER_SEGMENTS, NOTEBOOKS

from run_helpers import segkit_cli, shared_run

pytestmark = pytest.mark.slow

SEGMENT_COLUMNS = {
    "02_rfm": ["recency_days", "frequency", "monetary_total", "monetary_avg", "r_score", "f_score", "m_score",
               "rfm_segment", "tier", "recommended_action"],
    "03_clustering": ["cluster", "cluster_name"],
    "04_lifecycle": ["lifecycle_stage", "p_alive", "expected_purchases_90d", "clv_12m"],
}
RAW_ID = re.compile(r"(?<![A-Za-z0-9])C\d{6,7}(?![A-Za-z0-9])")
DATA_URI = re.compile(r"data:[^\"')\s]+")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(run) -> dict[str, Path]:
    return {t: Path(info["path"]) for t, info in json.loads((run / "run.json").read_text())["inputs"].items()}


@pytest.fixture(scope="module")
def record(run) -> dict:
    return json.loads((run / "run.json").read_text())


def test_a_full_run_executes_every_notebook_and_writes_every_artifact(run, record):
    assert record["status"] == "ok"
    assert [(n["name"], n["status"]) for n in record["notebooks"]] == [(n, "ok") for n in NOTEBOOKS]
    for name in NOTEBOOKS:
        assert (run / f"{name}.ipynb").exists() and (run / f"{name}.html").exists()
        assert (run / "summaries" / f"{name}.json").exists()
    missing = [a.filename for a in ARTIFACTS.values() if not (run / "artifacts" / a.filename).exists()]
    assert missing == []
    assert not [p for p in run.parent.iterdir() if ".building-" in p.name or p.name.endswith("-failed")]


def test_customer_segments_has_one_row_per_customer_with_every_label(run):
    segments = pd.read_csv(run / "artifacts" / CUSTOMER_SEGMENTS, dtype={"customer_id": "string"})
    assert segments.columns[0] == "customer_id"
    for notebook, columns in SEGMENT_COLUMNS.items():
        assert set(columns) <= set(segments.columns), f"{notebook} columns missing"
    assert segments["customer_id"].is_unique
    assert segments["customer_id"].str.fullmatch(r"C\d{6}").all()  # real ids in the CSV
    buyers = pd.read_parquet(run / "artifacts" / "rfm.parquet")
    assert len(segments) >= len(buyers) > 100
    assert segments["rfm_segment"].notna().sum() == len(buyers)


def test_every_html_is_self_contained_and_opens_with_its_executive_summary(run):
    for page in sorted(run.glob("*.html")):
        html = page.read_text()
        validate_offline_html(html, page.name)
        if page.name != "index.html":
            body = html[html.index("<main>"):]
            assert body.index("Executive summary") < body.index("jp-Cell "), page.name


def test_no_raw_customer_id_appears_in_any_html(run):
    leaks = {}
    for page in run.glob("*.html"):
        text = DATA_URI.sub("", page.read_text())
        found = sorted(set(RAW_ID.findall(text)))
        if found:
            leaks[page.name] = found[:5]
    assert leaks == {}


def test_the_notebooks_show_ids_only_through_shareable_tables(record):
    # The export redacts any raw id it still finds; a count > 0 means a notebook bypassed shareable().
    assert {n["name"]: n.get("redacted_ids", 0) for n in record["notebooks"]} == {n: 0 for n in NOTEBOOKS}
    assert record["warnings"] == []


def test_run_json_records_inputs_versions_seed_as_of_and_timings(run, record, inputs):
    audit = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    assert record["as_of"] == audit["as_of"] and record["seed"] == 42
    for table, path in inputs.items():
        assert record["inputs"][table]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["versions"]["pandas"] == pd.__version__
    for entry in record["notebooks"]:
        assert entry["seconds"]["compute"] > 0 and entry["seconds"]["html_export"] > 0, entry["name"]
        if sys.platform == "linux":  # the kernel's peak resident memory: pandas alone is > 50 MB
            assert 50 < entry["peak_memory_mb"] < 20_000, entry


def test_the_index_links_every_report_with_its_headlines_and_the_data_period(run):
    index = (run / "index.html").read_text()
    audit = json.loads((run / "artifacts" / "audit_summary.json").read_text())
    assert f"{audit['period']['start']} to {audit['period']['end']}" in index
    for name in NOTEBOOKS:
        assert f"<a href='{name}.html'>{name}</a>" in index
        summary = json.loads((run / "summaries" / f"{name}.json").read_text())
        for value in summary["headlines"].values():
            assert format_headline(value).replace("&", "&amp;") in index, (name, value)


def test_customer_segments_csv_is_byte_identical_on_a_rerun(run, tmp_path_factory):
    rerun = shared_run(tmp_path_factory, key="e2e-rerun")
    first = (run / "artifacts" / CUSTOMER_SEGMENTS).read_bytes()
    assert (rerun / "artifacts" / CUSTOMER_SEGMENTS).read_bytes() == first
    assert json.loads((rerun / "run.json").read_text())["outputs"]["customer_segments.csv"]["sha256"] == \
        hashlib.sha256(first).hexdigest()


def test_only_rfm_without_the_audit_says_to_run_the_audit_first(tmp_path, inputs):
    done = segkit_cli("run", "--transactions", inputs["transactions"], "--out", tmp_path / "june", "--only", "rfm")
    assert done.returncode == 1
    assert "02_rfm failed in cell" in done.stderr and "UpstreamMissingError" in done.stderr
    assert "Run 01_data_audit first" in done.stderr and f"--out {tmp_path / 'june'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "june").exists() and (tmp_path / "june-failed" / "02_rfm.html").exists()


def test_campaign_evaluation_is_skipped_without_campaign_data(run, tmp_path, inputs):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    done = segkit_cli("run", "--transactions", inputs["transactions"], "--customers", inputs["customers"],
                      "--out", out, "--only", "campaign_evaluation")
    assert done.returncode == 0, done.stderr
    assert "05_campaign_evaluation" in done.stdout and "skipped" in done.stdout
    record = json.loads((out / "run.json").read_text())
    assert record["notebooks"][-1]["status"] == "skipped"
    assert [n["status"] for n in record["notebooks"][:-1]] == ["reused"] * 4
    assert "Skipped: no campaign data" in (out / "index.html").read_text()
    assert not (out / "05_campaign_evaluation.html").exists()
    assert not (out / "artifacts" / "campaign_results.csv").exists()


def test_a_data_error_arrives_as_the_audit_table(tmp_path, inputs):
    transactions = pd.read_csv(inputs["transactions"], dtype=str)
    transactions.loc[transactions.index % 5 < 3, "customer_id"] = None  # 60% guest checkouts: an audit error
    transactions.to_csv(tmp_path / "transactions.csv", index=False)
    done = segkit_cli("run", "--transactions", tmp_path / "transactions.csv", "--out", tmp_path / "run", "--quiet")
    assert done.returncode == 1
    assert done.stderr.startswith("segkit: 01_data_audit failed in cell")
    assert "AuditFailedError: The data audit found 1 error-severity problem(s)" in done.stderr
    table = re.search(r"^\s*check\s+table\s+severity\s+count\s+example\s*$", done.stderr, flags=re.MULTILINE)
    assert table and re.search(r"guest_checkouts\s+transactions\s+error", done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    failed = tmp_path / "run-failed"
    assert "guest_checkouts" in (failed / "01_data_audit.html").read_text()
    assert "Data audit (error)" in (failed / "index.html").read_text()
    assert [n["status"] for n in json.loads((failed / "run.json").read_text())["notebooks"]] == \
        ["failed", "not run", "not run", "not run", "not run"]


def test_a_broken_parameter_in_the_config_stops_that_notebook_with_its_message(run, tmp_path, inputs):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    before = (out / "index.html").read_bytes()
    (tmp_path / "bad.yml").write_text(
        "data:\n" + "".join(f"  {t}: {p}\n" for t, p in inputs.items()) + "rfm:\n  bins: 1\n")
    done = segkit_cli("run", "--config", tmp_path / "bad.yml", "--out", out, "--only", "rfm", "--quiet")
    assert done.returncode == 1
    assert "02_rfm failed in cell" in done.stderr
    assert f"ConfigError: {tmp_path / 'bad.yml'}: rfm.bins = 1: use a whole number" in done.stderr
    assert "Traceback" not in done.stderr
    assert (out / "index.html").read_bytes() == before  # the previous run is untouched
    assert "rfm.bins = 1" in (tmp_path / "run-failed" / "02_rfm.html").read_text()


def test_a_missing_input_file_is_reported_before_anything_runs(tmp_path, inputs):
    done = segkit_cli("run", "--transactions", inputs["transactions"], "--customers", tmp_path / "nope.csv",
                      "--out", tmp_path / "run")
    assert done.returncode == 2
    assert f"The customers file {tmp_path / 'nope.csv'} (from --customers) does not exist" in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "run-failed").exists()
