"""Notebooks in JupyterLab (issue 18): explorers that survive a save and reopen, outputs kept out of
git, labels and tables that fit, parameter mistakes told like the CLI's, the R×F grid that follows
``bins``, a progress line per upstream step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from segkit.core.config import load_config, project_root
from segkit.core.errors import ConfigError
from segkit.widgets import explorer, initial_label, live_widget, static_html
from segkit.widgets.lab import (GIT_FILTER, LAB_SERVER_CONFIG, WIDGET_VIEW_MIME, clean_filter, configure_git_filter,
                                install_server_config, server_arguments)

ROOT = project_root()
EXPLORER_CHOICES = {"k = 2, rfm": (2, "rfm"), "k = 4, rfm (chosen)": (4, "rfm"), "k = 4, behaviour": (4, "behaviour")}


def render_choice(choice: tuple[int, str]) -> pd.DataFrame:
    k, feature_set = choice
    return pd.DataFrame({"cluster": range(k), "feature_set": feature_set, "shown": [f"K{k}-{feature_set}"] * k})


def explorer_output() -> dict:
    """The display_data output of a live explorer as JupyterLab holds it before saving."""
    bundle = explorer(EXPLORER_CHOICES, render_choice, title="Clusters")._repr_mimebundle_()
    bundle[WIDGET_VIEW_MIME] = {"model_id": "0123456789abcdef0123456789abcdef", "version_major": 2, "version_minor": 0}
    return nbformat.v4.new_output("display_data", data=bundle)


def notebook_with_live_widgets() -> nbformat.NotebookNode:
    progress_bar = nbformat.v4.new_output("display_data", data={
        "text/plain": "  0%|          | 0/3 [00:00<?, ?it/s]",
        WIDGET_VIEW_MIME: {"model_id": "fedcba9876543210fedcba9876543210", "version_major": 2, "version_minor": 0}})
    table = nbformat.v4.new_output("execute_result", data={"text/html": "<table></table>", "text/plain": "t"},
                                   execution_count=2)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("explorer(...)", execution_count=1, outputs=[explorer_output()]),
               nbformat.v4.new_code_cell("build()", execution_count=2, outputs=[progress_bar, table])],
        metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"x": {}}, "version_major": 2}}})
    return nb


# ================================================================ 1. explorers after save, shutdown, reopen
def test_the_lab_server_saves_an_explorer_as_its_static_view_so_a_reopened_notebook_shows_it(tmp_path):
    """JupyterLab renders the widget view whenever an output has one, and after a reopen its model is
    gone ("Error displaying widget: model not found"): the file saved by `make lab`'s server must
    hold the static view only, and stay trusted (its HTML shown as written)."""
    import asyncio

    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config

    manager_class = ServerApp.contents_manager_class.default_value  # what `jupyter lab` saves with
    manager = manager_class(config=Config(LAB_SERVER_CONFIG), root_dir=str(tmp_path))
    content = json.loads(nbformat.writes(notebook_with_live_widgets()))
    for cell in content["cells"]:  # what JupyterLab sends for outputs made in this session
        cell["metadata"]["trusted"] = True
    saving = manager.save({"type": "notebook", "format": "json", "content": content}, "02_rfm.ipynb")
    if asyncio.iscoroutine(saving):
        asyncio.run(saving)
    saved = nbformat.read(tmp_path / "02_rfm.ipynb", as_version=4)

    explorer_cell, build_cell = [cell.outputs for cell in saved.cells]
    assert len(explorer_cell) == 1 and sorted(explorer_cell[0].data) == ["text/html", "text/plain"]
    assert all(f"K{k}-{fs}" in explorer_cell[0].data["text/html"] for k, fs in EXPLORER_CHOICES.values())
    assert [o.output_type for o in build_cell] == ["execute_result"]  # the widget-only progress bar is gone
    assert "widgets" not in saved.metadata
    assert manager.notary.check_signature(saved)


def test_every_jupyter_server_of_the_environment_gets_the_save_hook(tmp_path):
    """`make` writes the hook into the environment's Jupyter server config, which `make lab`,
    `.venv/bin/jupyter lab` and the browser tests all read; other settings there are kept."""
    from traitlets.config.loader import JSONFileConfigLoader, KVArgParseConfigLoader

    folder = tmp_path / "etc" / "jupyter"
    folder.mkdir(parents=True)
    (folder / "jupyter_server_config.json").write_text('{"ServerApp": {"port": 9999}}')
    install_server_config(tmp_path)
    install_server_config(tmp_path)  # idempotent
    loaded = JSONFileConfigLoader("jupyter_server_config.json", path=str(folder)).load_config()
    assert loaded.ContentsManager.pre_save_hook == "segkit.widgets.lab.pre_save_hook"
    assert loaded.ServerApp.port == 9999

    recipe = (ROOT / "Makefile").read_text().split("$(VENV)/.installed: ")[1].split("\n\n")[0]
    assert "$(PY) -m segkit.widgets.lab server-config" in recipe
    assert "$(PY) -m segkit.widgets.lab" in (ROOT / "Makefile").read_text().split("\nlab:")[1].split("\n\n")[0]
    parsed = KVArgParseConfigLoader(server_arguments()).load_config()  # the same, for another environment
    assert parsed.ContentsManager.pre_save_hook == "segkit.widgets.lab.pre_save_hook"


# ================================================================ 2. outputs out of git
def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def repository_with_the_filter(tmp_path: Path) -> Path:
    """A scratch git repository with segkit's .gitattributes, the filter set up as `make lab` does,
    and notebooks/02_rfm.ipynb committed as it is tracked."""
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    shutil.copy(ROOT / "notebooks" / "02_rfm.ipynb", repo / "notebooks" / "02_rfm.ipynb")
    assert configure_git_filter(repo, python=sys.executable)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "notebooks")
    return repo


def test_make_labs_git_filter_keeps_notebook_outputs_out_of_git(tmp_path):
    repo = repository_with_the_filter(tmp_path)
    source = ROOT / "notebooks" / "02_rfm.ipynb"
    ran = nbformat.read(source, as_version=4)  # the notebook after a run and a save: outputs everywhere
    for i, cell in enumerate(c for c in ran.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"output {i}\n")]
    nbformat.write(ran, repo / "notebooks" / "02_rfm.ipynb")

    assert git(repo, "diff") == ""  # only outputs changed: nothing to see (git status may still list the file)
    git(repo, "add", "-A")
    assert git(repo, "diff", "--cached") == "" and git(repo, "status", "--porcelain") == ""  # nothing to commit
    stored = nbformat.reads(git(repo, "show", "HEAD:notebooks/02_rfm.ipynb"), as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in stored.cells if c.cell_type == "code")
    assert "output 1" in (repo / "notebooks" / "02_rfm.ipynb").read_text()  # the file keeps its outputs
    assert git(repo, "check-attr", "filter", "notebooks/02_rfm.ipynb").strip().endswith(f"filter: {GIT_FILTER}")


def test_a_notebook_saved_by_jupyterlab_after_a_run_shows_no_git_diff(tmp_path):
    """What JupyterLab 4 writes on save after Run All: outputs, counts, execution timings, widget
    state, and metadata.language_info filled in from the kernel (the tracked copy has only its name)."""
    repo = repository_with_the_filter(tmp_path)
    saved = json.loads((ROOT / "notebooks" / "02_rfm.ipynb").read_text(encoding="utf-8"))
    saved["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
        "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.9"}
    saved["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                   "version_minor": 0}}
    for i, cell in enumerate(c for c in saved["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["metadata"]["execution"] = {"iopub.execute_input": "2026-12-06T17:00:00.000Z",
                                         "shell.execute_reply": "2026-12-06T17:00:01.000Z"}
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"output {i}\n"]}]
    (repo / "notebooks" / "02_rfm.ipynb").write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n",
                                                      encoding="utf-8")

    assert git(repo, "diff") == ""
    assert '"pygments_lexer": "ipython3"' in (repo / "notebooks" / "02_rfm.ipynb").read_text()  # the file keeps it
    git(repo, "add", "-A")
    assert git(repo, "status", "--porcelain") == ""


def test_the_filter_leaves_the_tracked_notebooks_byte_for_byte_unchanged():
    """Turning the filter on must not make a clean checkout look modified."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert clean_filter(path.read_text(encoding="utf-8")) == path.read_text(encoding="utf-8"), path.name


def test_the_filter_passes_text_that_is_not_a_notebook_unchanged():
    assert clean_filter("<<<<<<< HEAD\n{}\n") == "<<<<<<< HEAD\n{}\n"


# ================================================================ 3. labels, tables, the chosen k
def test_a_dropdown_shows_its_labels_in_full_and_opens_on_the_initial_choice():
    rendered = []
    box = live_widget(EXPLORER_CHOICES, lambda choice: rendered.append(choice) or render_choice(choice),
                      description="Clustering", initial=(4, "rfm"))
    dropdown, _ = box.children
    assert dropdown.layout.width == "max-content" and dropdown.layout.max_width == "100%"
    assert dropdown.style.description_width == "initial"
    assert dropdown.value == (4, "rfm") and dropdown.label == "k = 4, rfm (chosen)"
    dropdown.value = (2, "rfm")
    assert rendered == [(4, "rfm"), (2, "rfm")]  # shown first, then on every change


def test_the_static_view_opens_the_initial_choice_and_its_tables_scroll_sideways():
    html = static_html(EXPLORER_CHOICES, render_choice, initial=(4, "rfm"))
    assert html.count("<details open>") == 1
    assert "<details open><summary>k = 4, rfm (chosen)</summary>" in html
    assert html.count('style="overflow-x: auto; max-width: 100%;"') == len(EXPLORER_CHOICES)
    assert initial_label(EXPLORER_CHOICES) == "k = 2, rfm"
    with pytest.raises(ValueError, match="not one of"):
        initial_label(EXPLORER_CHOICES, (9, "rfm"))


def test_notebook_03s_explorer_opens_on_the_chosen_k():
    from types import SimpleNamespace

    from segkit.steps.cluster import view_choices

    nb = nbformat.read(ROOT / "notebooks" / "03_clustering.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "explorer(view_choices(result)" in c.source)
    assert "initial=(result.k, result.feature_set)" in cell
    result = SimpleNamespace(selection=pd.DataFrame({"k": [2, 3, 4]}), k=3, feature_set="rfm",
                             settings=SimpleNamespace(feature_sets={"rfm": [], "behaviour": []}))
    html = static_html(view_choices(result), render_choice, initial=(result.k, result.feature_set))
    assert "<details open><summary>k = 3, rfm (chosen)</summary>" in html and html.count(" open>") == 1


def test_every_table_output_carries_the_library_whatever_ran_before_in_the_kernel():
    """A notebook re-run in one kernel, or whose first table's output was cleared, saves table
    outputs that each still load the bundle (once per page: the loader checks for it)."""
    from segkit.widgets.tables import interactive_table, library_html

    frame = pd.DataFrame({"segment": ["a", "b"], "customers": [2525, 3]})
    first_run = [interactive_table(frame)._repr_mimebundle_()["text/html"] for _ in range(3)]
    second_run = [interactive_table(frame)._repr_mimebundle_()["text/html"] for _ in range(3)]
    assert all(html.startswith(library_html()) for html in first_run + second_run)
    assert "if (!window._itables_" in library_html()  # a page loads it once, however many tables carry it


def test_a_table_cell_keeps_the_value_behind_its_display_for_the_csv():
    from segkit.widgets.tables import interactive_table

    frame = pd.DataFrame({"customer_id": ["C1", "=1+1"], "monetary_total": [44155.25, 0.0333],
                          "orders": [2525, 3], "last_order": pd.to_datetime(["2024-01-02 00:00:00", "2024-01-02 10:11:12"])})
    html = interactive_table(frame, include_library=False).table_html
    assert ('<tr><td>C1</td><td data-csv="44155.25">44,155.25</td><td data-csv="2525">2,525</td>'
            "<td>2024-01-02</td></tr>") in html
    assert ('<tr><td>=1+1</td><td data-csv="0.0333">0.03</td><td>3</td>'
            '<td data-csv="2024-01-02 10:11:12">2024-01-02 10:11</td></tr>') in html


# ================================================================ 4. parameter mistakes in a notebook
def test_a_bad_parameter_names_itself_and_the_parameters_cell_and_lists_the_allowed_values():
    from segkit.steps.pipeline import open_run

    with pytest.raises(ConfigError) as caught:
        open_run("02_rfm", overrides={"rfm": {"bins": 25}})
    message = str(caught.value)
    assert message.startswith("bins = 25: use a whole number of score levels from 2 to 20")
    assert "bins was set in the parameters cell of notebook 02_rfm" in message
    assert "set it to None to use rfm.bins (5)" in message
    assert "sample.yml" not in message and "--config" not in message


@pytest.mark.parametrize("notebook, overrides, expected", [
    ("03_clustering", {"clustering": {"method": "kmodes", "k_min": 3}},
     "method = 'kmodes': use one of auto, kmeans, kprototypes. method was set in the parameters cell of notebook 03_clustering"),
    ("03_clustering", {"clustering": {"k": 1}},  # the config's "or null to choose k" is not the cell's None
     "k = 1: use a whole number ≥ 2. k was set in the parameters cell of notebook 03_clustering: change it there, "
     "or set it to None to use clustering.k (data-driven) of the configuration."),
    ("04_lifecycle", {"lifecycle": {"discount_rate": 10}},  # 1000 %: meant 10 %
     "discount_rate = 10: an annual rate written as a share, 0.10 means 10 % a year (10 would be 1,000 %); use a "
     "value above -1 and at most 1 (100 %). discount_rate was set in the parameters cell of notebook 04_lifecycle: "
     "change it there, or set it to None to use lifecycle.discount_rate (0.1) of the configuration."),
    ("04_lifecycle", {"lifecycle": {"margin": 30}},
     "margin = 30: the share of revenue that is profit, 0.30 means 30 % (1.0: the CLV is revenue); use a value from "
     "0 to 1. margin was set"),
    ("05_campaign_evaluation", {"campaign": {"correction": "fdr"}},
     "correction = 'fdr' is not supported. Use one of: holm, fdr_bh, bonferroni, none. correction was set"),
    ("01_data_audit", {"audit": {"outlier_k": -1}},
     "outlier_k = -1 must be a number between 0.5 and inf. outlier_k was set in the parameters cell"),
    ("04_lifecycle", {"lifecycle": {"snapshot_freq": "D"}},
     "snapshot_freq = 'D' is not supported; use one of M, W, Q. snapshot_freq was set"),
    ("04_lifecycle", {"lifecycle": {"churn_window_days": -5, "margin": 1.0}},  # a stage threshold, checked up front
     "churn_window_days = -5 must be > 0. churn_window_days was set in the parameters cell of notebook 04_lifecycle: "
     "change it there, or set it to None to use lifecycle.churn_window_days (data-driven)"),
])
def test_every_notebooks_knobs_are_checked_before_any_work(notebook, overrides, expected):
    from segkit.steps.parameters import check_notebook_parameters

    with pytest.raises(ConfigError, match="^" + __import__("re").escape(expected)):
        check_notebook_parameters(notebook, overrides, None)


def test_a_rate_of_at_most_100_percent_and_a_margin_share_are_accepted():
    from segkit.steps.parameters import check_notebook_parameters

    check_notebook_parameters("04_lifecycle", {"lifecycle": {"discount_rate": 1.0, "margin": 0.3}}, None)


def test_a_control_arm_the_campaigns_do_not_have_is_blamed_on_the_parameters_cell_of_05(tmp_path):
    """control_arm can only be checked against the campaign data, in the step: told like every other knob."""
    from segkit.steps.campaign import build_campaign_artifacts
    from segkit.steps.pipeline import open_run

    campaign = pd.DataFrame({"campaign_id": "c1", "customer_id": [f"x{i}" for i in range(40)],
                             "arm": ["email"] * 20 + ["control"] * 20, "converted": [True, False] * 20,
                             "revenue": 0.0})
    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path, overrides={"campaign": {"control_arm": "ctrl"}})
    ctx.write_artifact("campaign_clean", campaign)
    ctx.write_artifact("transactions_clean", pd.DataFrame({"customer_id": ["x0"], "order_id": ["1"],
                                                           "order_date": pd.Timestamp("2024-01-01"), "amount": 1.0}))
    with pytest.raises(ConfigError) as caught:
        build_campaign_artifacts(ctx)
    assert str(caught.value) == (
        "control_arm = 'ctrl': no campaign has an arm named 'ctrl' (arms found — c1: control, email) in "
        "artifacts/campaign_clean.parquet; use the name of the control/holdout arm. control_arm was set in the "
        "parameters cell of notebook 05_campaign_evaluation: change it there, or set it to None to use "
        "campaign.control_arm ('control') of the configuration.")

    ctx = open_run("05_campaign_evaluation", run_dir=tmp_path)  # set in the config: the config's wording stays
    ctx.config["campaign"]["control_arm"] = "ctrl"
    with pytest.raises(ConfigError, match=r"^campaign\.control_arm = 'ctrl': no campaign has an arm named 'ctrl'") as caught:
        build_campaign_artifacts(ctx)
    assert "parameters cell" not in str(caught.value)


def test_core_parameters_of_the_cell_are_named_too():
    from segkit.steps.parameters import check_notebook_parameters

    with pytest.raises(ConfigError, match=r"as_of = '2024-13-01' is not a date; use YYYY-MM-DD\. as_of was set in the "
                                          r"parameters cell of notebook 02_rfm"):
        check_notebook_parameters("02_rfm", {}, as_of="2024-13-01")
    with pytest.raises(ConfigError, match=r"^seed = 'x': use a whole number ≥ 0"):
        check_notebook_parameters("02_rfm", {}, seed="x")


def test_a_bad_value_in_the_config_file_is_left_to_the_step_that_names_the_file(tmp_path):
    """Only the notebook's own values are blamed on the parameters cell."""
    from segkit.steps.parameters import check_notebook_parameters

    config = tmp_path / "mine.yml"
    config.write_text("rfm:\n  bins: 30\n")
    check_notebook_parameters("02_rfm", {"rfm": {"top_share": 0.2}}, config)  # bins=30 is the file's problem


def test_config_path_is_found_from_the_repository_root_or_from_notebooks(tmp_path, monkeypatch):
    from segkit.steps.parameters import resolve_config_path

    monkeypatch.chdir(tmp_path)  # neither the root nor notebooks/
    sample = (ROOT / "data" / "configs" / "sample.yml").resolve()
    assert resolve_config_path("data/configs/sample.yml", "02_rfm") == sample
    assert resolve_config_path("../data/configs/sample.yml", "02_rfm") == sample
    with pytest.raises(ConfigError) as caught:
        resolve_config_path("configs/mine.yml", "02_rfm")
    message = str(caught.value)
    for tried in (tmp_path / "configs/mine.yml", ROOT / "configs/mine.yml", ROOT / "notebooks/configs/mine.yml"):
        assert str(tried.resolve()) in message
    assert "config_path was set in the parameters cell of notebook 02_rfm" in message
    assert "--config" not in message


def test_a_segkit_error_in_a_notebook_shows_its_message_without_a_traceback_and_a_bug_keeps_it():
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from segkit.steps.pipeline import open_run\nimport pandas as pd"),
        nbformat.v4.new_code_cell('ctx = open_run("02_rfm", overrides={"rfm": {"bins": 25}})'),
        nbformat.v4.new_code_cell('pd.DataFrame({"a": [1]})'),
        nbformat.v4.new_code_cell("1 / 0"),
    ])
    NotebookClient(nb, kernel_name="segkit", allow_errors=True, timeout=300).execute()
    error = nb.cells[1].outputs[-1]
    assert (error.output_type, error.ename) == ("error", "ConfigError")
    shown = "\n".join(error.traceback)
    assert "bins was set in the parameters cell of notebook 02_rfm" in shown
    assert "Traceback" not in shown and "File " not in shown and "segkit/" not in shown
    assert nb.cells[2].outputs[0].data["text/html"].startswith('<div class="segkit-scroll" style="overflow-x: auto;')
    assert "Traceback" in "\n".join(nb.cells[3].outputs[-1].traceback) or "----> 1" in "\n".join(
        nb.cells[3].outputs[-1].traceback)


# ================================================================ 5. the R×F grid follows bins
def test_the_rf_grid_has_the_levels_of_the_scorer_and_no_impossible_ones():
    from segkit.plots.rfm import plot_rf_grid
    from segkit.rfm import RFMScorer

    rng = np.random.default_rng(3)
    base = pd.DataFrame({"recency_days": rng.integers(1, 400, 300), "frequency": rng.choice([1, 2, 3], 300),
                         "monetary_total": rng.uniform(5, 500, 300)})
    with pytest.warns(Warning, match="fewer effective score levels|Fewer effective"):
        scorer = RFMScorer(bins=4).fit(base)
    rfm = base.join(scorer.transform(base)).assign(rfm_segment="S")
    ax = plot_rf_grid(rfm, scorer=scorer)
    rows = [t.get_text() for t in ax.get_yticklabels()]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert rows == ["4", "3", "2", "1"]
    assert columns == [str(s) for s in sorted(set(scorer.level_scores("f").tolist()))] and len(columns) == 3
    assert ax.get_ylabel() == "R score (4 = most recent)"


# ================================================================ 6. a progress line per upstream step
def test_building_upstream_says_what_it_runs_one_line_per_step(tmp_path, monkeypatch, capsys):
    from segkit.core import progress
    from segkit.steps.pipeline import RunContext

    transactions = tmp_path / "transactions.csv"
    transactions.write_text("customer_id,order_date,order_id,amount\n"
                            + "".join(f"C{i % 7},2024-0{1 + i % 6}-1{i % 9},O{i},{10 + i}\n" for i in range(60)))
    config = load_config(overrides={"data": {"transactions": str(transactions), "customers": None, "campaign": None}})
    ctx = RunContext(notebook="02_rfm", run_dir=tmp_path / "run", config=config, seed=1, interactive=True)

    monkeypatch.setattr(progress, "progress_enabled", lambda: True)
    ctx.read_artifact("transactions_clean")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "02_rfm needs artifacts/transactions_clean.parquet: running the 01_data_audit step …"
    assert lines[-1].startswith("… 01_data_audit done in ") and lines[-1].endswith(" s")

    (tmp_path / "run" / "artifacts" / "transactions_clean.parquet").unlink()
    monkeypatch.undo()  # the test suite runs with SEGKIT_QUIET=1: quiet
    ctx.read_artifact("transactions_clean")
    assert "01_data_audit" not in capsys.readouterr().out
