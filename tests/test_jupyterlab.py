"""The analyst's use, in a real browser: JupyterLab in Debian's chromium, driven by Playwright.

One JupyterLab server for the module, on a free port, on a temporary copy of ``notebooks/``
with the ``segkit`` kernel (installed by ``make test``'s setup). Every notebook is opened and
run whole; then, per notebook:

- no cell stopped with an error, every explorer's dropdown changes what it shows, its option
  labels are shown in full, the interactive tables sort and filter and show real customer ids;
- no output is wider than its area at 1366×768 (wide tables scroll inside their output);
- saved, the kernel shut down and the page reloaded, the reopened notebook shows each
  explorer's static view and no "Error displaying widget" text.

The browser cannot reach the network (``browser_setup.OFFLINE_FLAGS``) and every request that
is not to the local JupyterLab server is recorded: there must be none. Chromium missing is a
failure, never a skip. The timeouts below are safety nets for a hung browser or kernel; the
test asserts no durations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from browser_setup import offline_chromium, redrawn, sort_twice_by_first_column
from segkit.core.config import project_root

pytestmark = pytest.mark.slow

NOTEBOOKS = ("01_data_audit", "02_rfm", "03_clustering", "04_lifecycle", "05_campaign_evaluation")
#: The notebook run twice in one kernel before it is saved (its tables must still work after reopen).
RERUN = "02_rfm"
VIEWPORT = {"width": 1366, "height": 768}
#: Safety nets (milliseconds): a server that never starts, a notebook that never finishes.
SERVER_WAIT_S = 120
RUN_WAIT_MS = 900_000
UI_WAIT_MS = 60_000

#: The visible notebook panel (JupyterLab keeps hidden panels in the DOM).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# ---------------------------------------------------------------- page-side measurements
#: Every output of the visible notebook that is wider than its cell, or whose content is wider
#: than the output without the output (or a box inside it) scrolling.
TOO_WIDE_JS = """() => {
  const found = [];
  const panel = document.querySelector('%s');
  for (const [i, out] of panel.querySelectorAll('.jp-OutputArea-output').entries()) {
    const cell = out.closest('.jp-Cell');
    const area = out.closest('.jp-OutputArea').getBoundingClientRect();
    const box = out.getBoundingClientRect();
    const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    let wide = box.width > area.width + 1 ? `output ${Math.round(box.width)} px in an area of ${Math.round(area.width)} px` : '';
    if (!wide && out.scrollWidth > out.clientWidth + 1 && !scrolls(out)) {
      wide = `content ${out.scrollWidth} px in an output of ${out.clientWidth} px, not scrolling`;
    }
    if (!wide) {
      for (const el of out.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.right <= box.right + 1) continue;
        let inner = el.parentElement, clipped = false;
        while (inner && inner !== out.parentElement) { if (scrolls(inner) && inner !== el) { clipped = true; break; } inner = inner.parentElement; }
        if (!clipped) { wide = `<${el.tagName.toLowerCase()} class="${el.className}"> ends ${Math.round(r.right - box.right)} px right of its output`; break; }
      }
    }
    if (wide) {
      const prompt = cell.querySelector('.jp-InputPrompt')?.textContent.trim() || '';
      const source = (cell.querySelector('.jp-InputArea-editor')?.textContent || '').trim().slice(0, 60);
      found.push(`${prompt} ${source}: ${wide}`);
    }
  }
  return found;
}""" % PANEL

#: Option labels of every dropdown that do not fit in it (measured with the select's font).
CUT_LABELS_JS = """() => {
  const canvas = document.createElement('canvas').getContext('2d');
  const found = [];
  for (const select of document.querySelector('%s').querySelectorAll('.widget-dropdown select')) {
    const style = getComputedStyle(select);
    canvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    // the right padding holds the arrow
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) + 1;
    for (const option of select.options) {
      if (canvas.measureText(option.text).width > room) found.push(option.text);
    }
  }
  return found;
}""" % PANEL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a temporary copy of ``notebooks/``; yields (base URL, folder)."""
    root = tmp_path_factory.mktemp("lab")
    folder = root / "notebooks"
    shutil.copytree(project_root() / "notebooks", folder)
    port = _free_port()
    # every cell in the page (JupyterLab 4 leaves cells outside the view out of it by default)
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               # its own run folders: nbval runs the same notebooks in reports/interactive meanwhile
               SEGKIT_INTERACTIVE_DIR=str(root / "runs"))
    env.pop("SEGKIT_QUIET", None)  # a live kernel: explorers are widgets
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--ServerApp.root_dir={folder}", "--IdentityProvider.token=", "--ServerApp.password=",
               "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_WAIT_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status", timeout=5) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"JupyterLab did not start: {(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, folder
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    with offline_chromium() as b:
        yield b


class LabPage:
    """One browser tab on the JupyterLab server; records requests that leave the server."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport=VIEWPORT)
        self.external: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(UI_WAIT_MS)
        self.page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" after a widget changed

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith((self.base, "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def command(self, name: str, args: dict | None = None) -> None:
        self.page.evaluate("([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}])

    def open(self, name: str) -> None:
        # ?reset: a fresh workspace, so that only this notebook is open (and is the current widget)
        self.page.goto(f"{self.base}/lab/tree/{name}.ipynb?reset")
        self.page.wait_for_function(
            """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                           return w && w.context && w.context.path === path; }""", arg=f"{name}.ipynb",
            timeout=UI_WAIT_MS)
        self.page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=UI_WAIT_MS)
        # the kernel is up (the toolbar's status reads idle)
        self.page.wait_for_function(
            """() => { const w = window.jupyterapp.shell.currentWidget;
                       return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
                              && w.sessionContext.session.kernel.status === 'idle'; }""", timeout=RUN_WAIT_MS)

    def run_all(self) -> None:
        self.command("notebook:run-all-cells")
        # done: the kernel is idle, no cell runs or waits, and every code cell ran or one failed
        self.page.wait_for_function(
            """() => { const w = window.jupyterapp.shell.currentWidget;
                       const cells = [...w.content.widgets].filter(c => c.model.type === 'code');
                       const prompts = cells.map(c => c.promptNode ? c.promptNode.textContent : '');
                       const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
                       return w.sessionContext.session.kernel.status === 'idle'
                              && prompts.every(p => !p.includes('*'))
                              && (failed || cells.every(c => c.model.executionCount !== null
                                                              || c.model.sharedModel.getSource().trim() === '')); }""",
            timeout=RUN_WAIT_MS)

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(f"{PANEL} {selector}").all_inner_texts()

    def close(self) -> None:
        self.context.close()


def _explorers_change(lab_page: LabPage) -> list[str]:
    """Pick the second option of every explorer's dropdown; the names of those whose shown
    content did not change."""
    page = lab_page.page
    selects = page.locator(f"{PANEL} .widget-dropdown select")
    unchanged = []
    for i in range(selects.count()):
        select = selects.nth(i)
        view = select.locator("xpath=ancestor::div[contains(@class,'widget-vbox') or contains(@class,'widget-box')][1]")
        output = view.locator(".widget-output, .jp-OutputArea").first
        before = output.inner_html()
        options = select.locator("option").all_inner_texts()
        if len(options) < 2:
            unchanged.append(f"explorer {i + 1}: only {len(options)} option(s)")
            continue
        select.select_option(index=1)
        try:
            page.wait_for_function("([el, before]) => el.innerHTML !== before && el.innerText.trim() !== ''",
                                   arg=[output.element_handle(), before], timeout=UI_WAIT_MS)
        except Exception:
            unchanged.append(f"explorer {i + 1} ({options[1]!r})")
    return unchanged


def _table_sorts_and_filters(lab_page: LabPage, column: str | None = None) -> dict:
    """Sort an interactive table (the first one, or the first with a ``column`` header) by its
    first column and filter it by the first value of its first column; what the table showed at
    each step."""
    page = lab_page.page
    wrapper = page.locator(f"{PANEL} .dt-container")
    if column is not None:
        wrapper = wrapper.filter(has=page.locator("thead th", has_text=column))
    wrapper = wrapper.first
    info = wrapper.locator(".dt-info")
    first_cells = lambda: wrapper.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
    shown = first_cells()
    ascending, descending = sort_twice_by_first_column(page, wrapper)
    needle = descending[0]
    wrapper.locator("tfoot input").first.fill(needle)
    # the filter runs on key presses, as when typing
    redrawn(page, wrapper, lambda: wrapper.locator("tfoot input").first.press("End"))
    return {"shown": shown, "ascending": ascending, "descending": descending, "needle": needle,
            "filtered": first_cells(), "info": info.inner_text()}


@pytest.fixture(scope="module")
def sessions(lab, browser):
    """Run every notebook in JupyterLab, check it live, save it; then reopen each one after the
    kernel is gone. Returns what was seen, per notebook."""
    base, folder = lab
    seen: dict[str, dict] = {}
    live = LabPage(browser, base)
    for name in NOTEBOOKS:
        live.open(name)
        live.run_all()
        record = {
            "errors": live.texts(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                                 ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"),
            "widget_errors": [t for t in live.texts(".jp-OutputArea-output") if "Error displaying widget" in t],
            "explorers": live.page.locator(f"{PANEL} .widget-dropdown select").count(),
            "unchanged_explorers": _explorers_change(live),
            "cut_labels": live.page.evaluate(CUT_LABELS_JS),
            "too_wide": live.page.evaluate(TOO_WIDE_JS),
            "tables": live.page.locator(f"{PANEL} table.dataTable").count(),
            "text": live.page.locator(PANEL).inner_text(),
        }
        if record["tables"]:
            record["table"] = _table_sorts_and_filters(live)
        if name == RERUN:  # Run All again in the same kernel: the saved outputs are the second run's
            live.run_all()
            record["tables_after_rerun"] = live.page.locator(f"{PANEL} table.dataTable").count()
        live.command("docmanager:save")
        live.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=UI_WAIT_MS)
        seen[name] = record
    live.command("application:close-all")
    external = list(live.external)
    live.close()
    # every kernel is gone; reopen each saved notebook in a fresh page, without running it
    for kernel in json.loads(urllib.request.urlopen(f"{base}/api/kernels").read()):
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", method="DELETE"))
    reopened = LabPage(browser, base)
    for name in NOTEBOOKS:
        reopened.open(name)
        # saved outputs rendered: as many interactive tables and visible static views as live
        # (when they never come, the assertions below say what is missing)
        try:
            reopened.page.wait_for_function(
                """([tables, views]) => document.querySelectorAll('%s table.dataTable').length >= tables
                     && [...document.querySelectorAll('%s .segkit-static-explorer')]
                          .filter(v => v.offsetParent !== null).length >= views""" % (PANEL, PANEL),
                arg=[seen[name]["tables"], seen[name]["explorers"]], timeout=UI_WAIT_MS)
        except Exception:  # noqa: BLE001 - reported by the assertions
            pass
        outputs = reopened.texts(".jp-OutputArea-output")
        seen[name]["reopened"] = {
            "widget_errors": [t[:120] for t in outputs if "Error displaying widget" in t or "model not found" in t],
            "static_views": reopened.page.locator(f"{PANEL} .segkit-static-explorer").count(),
            "visible_static_views": sum(reopened.page.locator(f"{PANEL} .segkit-static-explorer").nth(i).is_visible()
                                        for i in range(reopened.page.locator(f"{PANEL} .segkit-static-explorer").count())),
            "tables": reopened.page.locator(f"{PANEL} table.dataTable").count(),
        }
        if name == RERUN and seen[name]["reopened"]["tables"]:  # the customer list, not only the first table
            seen[name]["reopened"]["customer_list"] = _table_sorts_and_filters(reopened, column="customer_id")
        reopened.command("application:close-all")
    external += reopened.external
    reopened.close()
    seen["_external"] = {"requests": external}
    seen["_saved"] = {name: json.loads((folder / f"{name}.ipynb").read_text()) for name in NOTEBOOKS}
    return seen


def test_nothing_is_requested_from_outside_the_jupyterlab_server(sessions):
    assert sessions["_external"]["requests"] == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebook_runs_whole_in_jupyterlab_without_an_error(sessions, name):
    record = sessions[name]
    assert record["errors"] == [] and record["widget_errors"] == []
    saved = sessions["_saved"][name]
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert [o.get("ename") for o in outputs if o["output_type"] == "error"] == []
    assert all(c.get("execution_count") for c in saved["cells"] if c["cell_type"] == "code" and c["source"])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_explorer_changes_what_it_shows_and_its_labels_fit(sessions, name):
    record = sessions[name]
    assert record["explorers"] >= 1
    assert record["unchanged_explorers"] == []
    assert record["cut_labels"] == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_output_is_wider_than_its_area_at_1366x768(sessions, name):
    assert sessions[name]["too_wide"] == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_after_save_and_reopen_the_static_view_shows_and_no_widget_error(sessions, name):
    reopened = sessions[name]["reopened"]
    assert reopened["widget_errors"] == []
    assert reopened["visible_static_views"] == sessions[name]["explorers"] >= 1
    assert reopened["tables"] == sessions[name]["tables"]  # interactive tables work again, offline


@pytest.mark.parametrize("name", ["02_rfm", "03_clustering", "04_lifecycle", "05_campaign_evaluation"])
def test_segment_tables_are_interactive_in_jupyterlab(sessions, name):
    record = sessions[name]
    assert record["tables"] >= 1
    table = record["table"]
    assert table["ascending"] != table["descending"] or len(set(table["ascending"])) == 1
    assert table["filtered"] and all(table["needle"] in cell for cell in table["filtered"])
    assert "filtered from" in table["info"]


def test_a_notebook_run_twice_in_one_kernel_keeps_every_table_interactive_after_save_and_reopen(sessions):
    """Whatever order cells ran in and how often, each saved table output works alone (it carries
    the library, loaded once per page): the second Run All's outputs are what was saved."""
    record = sessions[RERUN]
    assert record["tables_after_rerun"] == record["tables"] >= 2
    assert record["reopened"]["tables"] == record["tables"]
    customers = record["reopened"]["customer_list"]
    assert all(re.fullmatch(r"C\d{6}", cell) for cell in customers["shown"])  # 02's customer list, real ids
    assert customers["ascending"] != customers["descending"]
    assert customers["filtered"] == [customers["needle"]] and "filtered from" in customers["info"]
    saved_tables = [o for c in sessions["_saved"][RERUN]["cells"] if c["cell_type"] == "code"
                    for o in c.get("outputs", []) if "segkit-table-" in "".join(o.get("data", {}).get("text/html", ""))]
    assert len(saved_tables) == record["tables"]
    assert all("injectModule(" in "".join(o["data"]["text/html"]) for o in saved_tables)


def test_the_analysts_own_notebook_shows_real_customer_ids(sessions):
    text = sessions["02_rfm"]["text"]
    real = set(re.findall(r"\bC\d{6}\b", text))  # the bundled sample's ids
    assert len(real) >= 10
    assert re.findall(r"\bc-[0-9a-f]{10}\b", text) == []


# ---------------------------------------------------------------- the measurements can fail
FAKE_CELL = """<div class="jp-NotebookPanel"><div class="jp-Cell" style="width: 900px">
  <div class="jp-InputPrompt">[3]:</div><div class="jp-InputArea-editor">wide_table</div>
  <div class="jp-OutputArea" style="width: 800px"><div class="jp-OutputArea-output" style="overflow-x: visible">
  %s</div></div></div></div>"""


@pytest.mark.parametrize("content, problems", [
    ("<table style='width: 3000px'><tr><td>x</td></tr></table>", 1),
    ("<div style='overflow-x: auto; max-width: 100%'><table style='width: 3000px'><tr><td>x</td></tr></table></div>", 0),
    ("<table style='width: 700px'><tr><td>x</td></tr></table>", 0),
])
def test_the_width_check_finds_an_output_wider_than_its_area_unless_it_scrolls_inside(browser, content, problems):
    page = browser.new_page(viewport=VIEWPORT)
    page.set_content(FAKE_CELL % content)
    found = page.evaluate(TOO_WIDE_JS)
    page.close()
    assert len(found) == problems, found
    assert all(f.startswith("[3]: wide_table: ") for f in found)


def test_the_label_check_finds_an_option_cut_off_by_its_dropdown(browser):
    options = "<option>churn window 51 days (75% of gaps between purchases)</option><option>short</option>"
    page = browser.new_page(viewport=VIEWPORT)
    page.set_content(FAKE_CELL % f"<div class='widget-dropdown'><select style='width: 148px'>{options}</select></div>")
    narrow = page.evaluate(CUT_LABELS_JS)
    page.set_content(FAKE_CELL % f"<div class='widget-dropdown'><select style='width: max-content'>{options}</select></div>")
    wide = page.evaluate(CUT_LABELS_JS)
    page.close()
    assert narrow == ["churn window 51 days (75% of gaps between purchases)"] and wide == []
