"""segkit run's scheduling: notebooks side by side (run.workers, segkit.steps.pipeline.UPSTREAM), kernels
started ahead with the notebook's modules preloaded (segkit.report.kernels), Ctrl-C during a
parallel run, and the lock that keeps concurrent customer_segments.csv updates whole.

The runner is exercised on throwaway notebooks named like the pipeline's. Notebooks write the
times they started and ended; the tests compare those instants (which ran before which, which
overlapped), never durations.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from segkit.core.errors import ConfigError
from segkit.report import NotebookFailedError, RunOptions, run_pipeline
from segkit.report.kernels import imported_modules, preload_code
from segkit.steps.pipeline import NOTEBOOKS, UPSTREAM, RunContext, open_run

from run_helpers import make_notebook, tiny_inputs

STAMP = """import json, os, time
from pathlib import Path
started = time.time()
Path(ctx.run_dir, "pids").mkdir(exist_ok=True)
Path(ctx.run_dir, "pids", {name!r}).write_text(str(os.getpid()))
{work}
Path(ctx.run_dir, "stamps").mkdir(exist_ok=True)
Path(ctx.run_dir, "stamps", {name!r} + ".json").write_text(json.dumps([started, time.time()]))"""


def _pipeline(folder: Path, work: dict[str, str] | None = None) -> Path:
    """Five throwaway notebooks with the pipeline's names; each stamps its start and end."""
    work = work or {}
    for name in NOTEBOOKS:
        make_notebook(folder, name, STAMP.format(name=name, work=work.get(name, "time.sleep(0.5)")))
    return folder


def _config(tmp_path: Path, workers) -> Path:
    inputs = tiny_inputs(tmp_path / "data")
    path = tmp_path / "config.yml"
    path.write_text(f"run: {{workers: {workers}}}\n"
                    f"data: {{transactions: {inputs['transactions']}, customers: null, campaign: {inputs['transactions']}}}\n")
    return path


def _stamps(run: Path) -> dict[str, tuple[float, float]]:
    return {p.stem: tuple(json.loads(p.read_text())) for p in (run / "stamps").glob("*.json")}


def _kernel_children() -> list[int]:
    """Kernel processes that are children of this (test) process, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"ipykernel_launcher" in cmd:
            pids.append(int(stat.parent.name))
    return pids


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# ------------------------------------------------------------------ dependencies
def test_every_notebook_waits_for_the_notebooks_whose_artifacts_it_reads():
    from segkit.steps.pipeline import ARTIFACTS

    assert list(UPSTREAM) == list(NOTEBOOKS)
    for name, upstream in UPSTREAM.items():
        assert all(NOTEBOOKS.index(u) < NOTEBOOKS.index(name) for u in upstream)
    # 03 and 04 only read artifacts of 01 and 02, so they may overlap; 05 reads everything before it
    assert set(UPSTREAM["03_clustering"]) == set(UPSTREAM["04_lifecycle"]) == {"01_data_audit", "02_rfm"}
    assert set(UPSTREAM["05_campaign_evaluation"]) == set(NOTEBOOKS[:4])
    producers = {a.notebook for a in ARTIFACTS.values()}
    assert producers <= set(NOTEBOOKS)


@pytest.mark.parametrize("workers", [2, 1])
def test_clustering_and_lifecycle_run_side_by_side_only_with_two_workers(tmp_path, workers):
    # each waits (up to 15 s) for the other to have started: side by side they overlap for sure
    wait = ("deadline = time.time() + 15\n"
            "while not Path(ctx.run_dir, 'pids', {other!r}).exists() and time.time() < deadline:\n"
            "    time.sleep(0.1)\ntime.sleep(0.5)")
    notebooks = _pipeline(tmp_path / "nb", {"03_clustering": wait.format(other="04_lifecycle"),
                                            "04_lifecycle": wait.format(other="03_clustering")})
    result = run_pipeline(RunOptions(config=_config(tmp_path, workers), out=tmp_path / "run"),
                          notebooks_dir=notebooks, echo=lambda _: None)
    s = _stamps(result.out)
    assert sorted(s) == list(NOTEBOOKS)
    # the dependencies hold either way
    assert s["01_data_audit"][1] <= s["02_rfm"][0]
    assert s["02_rfm"][1] <= min(s["03_clustering"][0], s["04_lifecycle"][0])
    assert max(s["03_clustering"][1], s["04_lifecycle"][1]) <= s["05_campaign_evaluation"][0]
    assert _overlap(s["03_clustering"], s["04_lifecycle"]) is (workers == 2)
    record = json.loads((result.out / "run.json").read_text())
    assert [n["name"] for n in record["notebooks"]] == list(NOTEBOOKS)  # pipeline order in run.json
    assert {n["status"] for n in record["notebooks"]} == {"ok"}


def test_a_failure_beside_a_running_notebook_lets_it_finish_and_stops_the_rest(tmp_path):
    notebooks = _pipeline(tmp_path / "nb", {"03_clustering": "raise ConfigError('clustering.k = 0 is not valid')",
                                            "04_lifecycle": "time.sleep(2)"})
    with pytest.raises(NotebookFailedError, match="03_clustering failed") as info:
        run_pipeline(RunOptions(config=_config(tmp_path, 2), out=tmp_path / "run"), notebooks_dir=notebooks,
                     echo=lambda _: None)
    assert not info.value.is_bug
    record = json.loads((tmp_path / "run-failed" / "run.json").read_text())
    statuses = {n["name"]: n["status"] for n in record["notebooks"]}
    assert statuses == {"01_data_audit": "ok", "02_rfm": "ok", "03_clustering": "failed",
                        "04_lifecycle": "ok", "05_campaign_evaluation": "not run"}
    assert "05_campaign_evaluation" not in _stamps(tmp_path / "run-failed")
    assert _kernel_children() == []  # the kernel started ahead for 05 was shut down, not left behind


def test_a_run_that_stops_early_shuts_down_the_kernels_it_started_ahead(tmp_path, monkeypatch):
    # 01 fails at once, while the kernel for 02 is still preloading a module that takes 5 s to import
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "slow_to_import.py").write_text("import time\ntime.sleep(5)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "lib"), os.environ.get("PYTHONPATH")])))
    notebooks = _pipeline(tmp_path / "nb", {"01_data_audit": "raise ConfigError('audit.outlier_k = -1 is not valid')",
                                            "02_rfm": "import slow_to_import"})
    with pytest.raises(NotebookFailedError, match="01_data_audit failed"):
        run_pipeline(RunOptions(config=_config(tmp_path, 2), out=tmp_path / "run"), notebooks_dir=notebooks,
                     echo=lambda _: None)
    assert _kernel_children() == []


@pytest.mark.parametrize("value", [0, -1, "two", 1.5, True])
def test_an_invalid_workers_value_is_a_config_error(tmp_path, value):
    notebooks = _pipeline(tmp_path / "nb")
    with pytest.raises(ConfigError, match="run.workers"):
        run_pipeline(RunOptions(config=_config(tmp_path, json.dumps(value)), out=tmp_path / "run"),
                     notebooks_dir=notebooks, echo=lambda _: None)


# ------------------------------------------------------------------ kernels started ahead
def test_imported_modules_are_the_top_level_imports_of_the_code_cells():
    from segkit.core.config import project_root

    modules = imported_modules(project_root() / "notebooks" / "02_rfm.ipynb")
    assert "segkit.steps.pipeline" in modules and "segkit.steps.rfm" in modules
    assert len(modules) == len(set(modules))


def test_preloading_leaves_no_name_behind_and_ignores_a_module_that_fails():
    namespace: dict = {}
    exec(preload_code(["json", "segkit_no_such_module"]), namespace)
    assert set(namespace) == {"__builtins__"}


def test_a_notebook_finds_its_modules_preloaded_and_its_namespace_and_counter_untouched(tmp_path):
    probe = ("import sys\n"
             "loaded = 'segkit.rfm' in sys.modules\n"
             "leftovers = [k for k in dir() if 'segkit_preload' in k or k == 'importlib']\n"
             "print((loaded, leftovers))")
    folder = tmp_path / "nb"
    make_notebook(folder, "01_data_audit", 'ctx.write_artifact("audit_summary", {"as_of": "2024-02-01"})', summary=False)
    path = make_notebook(folder, "02_rfm", "from segkit.rfm import RFMScorer", summary=False)
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(probe))  # before any import of the notebook itself
    nbformat.write(nb, path)
    result = run_pipeline(RunOptions(config=_config(tmp_path, 1), out=tmp_path / "run",
                                     only=["data_audit", "rfm"]), notebooks_dir=folder, echo=lambda _: None)
    executed = nbformat.read(result.out / "02_rfm.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    probe_cell = next(c for c in code if c.source.startswith("import sys"))
    assert probe_cell.outputs[0]["text"].strip() == "(True, [])"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1))  # the preload did not take an execution count


# ------------------------------------------------------------------ Ctrl-C during a parallel run
def test_ctrl_c_interrupts_both_running_notebooks_and_keeps_what_ran(tmp_path):
    # The cells sleep far longer than any wait below, so only an interrupt ends them; the waits are hang guards,
    # generous enough for a loaded machine (a test holds no wall-clock limit on the work itself).
    notebooks = _pipeline(tmp_path / "nb", {"03_clustering": "time.sleep(3600)", "04_lifecycle": "time.sleep(3600)"})
    config = _config(tmp_path, 2)
    script = ("import sys\nfrom pathlib import Path\nfrom segkit.report import RunOptions, run_pipeline, RunInterrupted\n"
              "try:\n"
              f"    run_pipeline(RunOptions(config=Path({str(config)!r}), out=Path({str(tmp_path / 'run')!r})),\n"
              f"                 notebooks_dir=Path({str(notebooks)!r}), echo=lambda m: print(m, flush=True))\n"
              "except RunInterrupted:\n    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # both long notebooks are running once 02 has finished and they have started
            if "02_rfm" in line:
                break
        deadline = time.monotonic() + 900
        while True:  # until both kernels are inside their sleeping cells
            building = [p for p in tmp_path.iterdir() if ".building-" in p.name]
            if building and all((building[0] / "pids" / n).exists() for n in ("03_clustering", "04_lifecycle")):
                break
            assert time.monotonic() < deadline, "the two long notebooks never started"
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=900) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    record = json.loads((tmp_path / "run-failed" / "run.json").read_text())
    assert record["status"] == "interrupted"
    statuses = {n["name"]: n["status"] for n in record["notebooks"]}
    assert statuses == {"01_data_audit": "ok", "02_rfm": "ok", "03_clustering": "interrupted",
                        "04_lifecycle": "interrupted", "05_campaign_evaluation": "not run"}
    assert (tmp_path / "run-failed" / "03_clustering.html").exists()
    assert not (tmp_path / "run").exists()
    for name in ("03_clustering", "04_lifecycle"):  # no kernel left running
        pid = int((tmp_path / "run-failed" / "pids" / name).read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# ------------------------------------------------------------------ customer_segments.csv under concurrency
def _add_column(run_dir: str, column: str) -> None:
    ctx = RunContext(notebook="03_clustering", run_dir=Path(run_dir), config={}, seed=0, interactive=False)
    ids = [f"C{i:06d}" for i in range(2000)]
    ctx.update_customer_segments(pd.DataFrame({"customer_id": ids, column: range(2000)}))


def test_concurrent_updates_of_customer_segments_lose_no_column(tmp_path):
    columns = [f"label_{i}" for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_column, args=(str(tmp_path), c)) for c in columns]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(columns)
    table = pd.read_csv(tmp_path / "artifacts" / "customer_segments.csv")
    assert set(columns) <= set(table.columns) and len(table) == 2000
    assert not [p for p in (tmp_path / "artifacts").iterdir() if p.name != "customer_segments.csv"]


def test_customer_segments_bytes_do_not_depend_on_which_notebook_writes_first(tmp_path):
    base = pd.DataFrame({"customer_id": ["C3", "C1", "C2"], "rfm_segment": ["Champions", "Lost", "Loyal"]})
    clusters = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "cluster": pd.array([1, None, 2], dtype="Int64"),
                             "cluster_name": ["Frequent", None, "Lapsed"]})
    stages = pd.DataFrame({"customer_id": ["C2", "C3", "C4"], "lifecycle_stage": ["active", "lapsed", "new"],
                           "clv_12m": [12.5, 0.1234567891234, 3.0]})
    out = {}
    for order in ("clusters_first", "stages_first"):
        ctx = open_run("02_rfm", run_dir=tmp_path / order, config_path=None)
        ctx.update_customer_segments(base)
        first, second = (clusters, stages) if order == "clusters_first" else (stages, clusters)
        ctx.update_customer_segments(first)
        ctx.update_customer_segments(second)
        out[order] = (tmp_path / order / "artifacts" / "customer_segments.csv").read_bytes()
    assert out["clusters_first"] == out["stages_first"]


def test_read_artifact_reads_only_the_columns_asked_for_and_skips_absent_ones(tmp_path):
    ctx = open_run("04_lifecycle", run_dir=tmp_path / "run")
    frame = pd.DataFrame({"customer_id": pd.array(["b", "a"], dtype="string"), "signup_date": pd.to_datetime(
        ["2024-01-01", None]), "email": ["x@example.com", "y@example.com"]})
    ctx.write_artifact("customers_clean", frame)
    got = ctx.read_artifact("customers_clean", columns=["signup_date", "customer_id", "no_such_column"])
    assert list(got.columns) == ["customer_id", "signup_date"]  # the artifact's order
    pd.testing.assert_frame_equal(got, frame[["customer_id", "signup_date"]])
    ctx.update_customer_segments(pd.DataFrame({"customer_id": ["a", "b"], "rfm_segment": ["Lost", "Champions"],
                                               "rfm_score": [111, 555]}))
    labels = ctx.read_artifact("customer_segments", columns=["customer_id", "rfm_segment", "cluster_name"])
    assert list(labels.columns) == ["customer_id", "rfm_segment"]
    assert labels["rfm_segment"].tolist() == ["Lost", "Champions"] and str(labels["customer_id"].dtype) == "string"
    assert list(ctx.read_artifact("customers_clean").columns) == ["customer_id", "signup_date", "email"]
