"""Every HTML file of a run renders in a real headless browser with the network blocked.

Debian's ``chromium`` (installed by ``tests/browser_setup.py``) is driven through the DevTools
protocol: every request that is not ``file:``/``data:``/``about:`` is recorded (and cannot leave:
dead proxy, unresolvable hosts), as are console errors and uncaught exceptions; a screenshot of
each page must not be blank. Chromium missing is a failure, never a skip.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from browser_setup import chromium_path, offline_chromium, redrawn, sort_twice_by_first_column
from hostile_inputs import build_hostile_run
from run_helpers import shared_run

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    # Nothing can leave: every host is unresolvable and every proxied request goes to a dead port.
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1280,1600", "--remote-debugging-port=0",
]
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")
#: Safety nets for a hung browser; the test asserts no durations.
STARTUP_WAIT = 120
MESSAGE_WAIT = 120


@dataclass
class PageReport:
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    dialogs: list[str] = field(default_factory=list)
    pwned: bool = False


class Browser:
    """Minimal DevTools-protocol client for one headless chromium process."""

    def __init__(self, binary: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="segkit-chromium-")
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_WAIT
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", suppress_origin=True,
                                              timeout=MESSAGE_WAIT)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.record(reply)

    def record(self, event: dict) -> None:
        """Keep an event; an ``alert()`` is answered at once so that the page is not blocked."""
        self.events.append(event)
        if event.get("method") == "Page.javascriptDialogOpening":
            self.send("Page.handleJavaScriptDialog", {"accept": True}, session=event.get("sessionId"))

    def wait_for(self, method: str, session: str) -> None:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return
        while True:
            event = json.loads(self.ws.recv())
            self.record(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return

    def open(self, url: str) -> PageReport:
        """Load ``url`` in a fresh tab; record requests, console errors, exceptions, a screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.events = []
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        # Let late work (timers, fonts, lazy images) happen before looking.
        self.send("Runtime.evaluate", {"expression": "new Promise(r => requestAnimationFrame(() => "
                                                     "requestAnimationFrame(() => setTimeout(r, 300))))",
                                       "awaitPromise": True}, session=session)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=session)
        pwned = self.send("Runtime.evaluate", {"expression": "window.__pwned === 1", "returnByValue": True},
                          session=session)["result"].get("value")
        report = PageReport(url, screenshot=base64.b64decode(shot["data"]), pwned=bool(pwned))
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                req_url = params["request"]["url"]
                if not req_url.startswith(LOCAL_SCHEMES):
                    report.requests.append(req_url)
            elif method == "Runtime.exceptionThrown":
                report.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                report.console_errors.append(json.dumps(params.get("args", []))[:500])
            elif method == "Page.javascriptDialogOpening":
                report.dialogs.append(params.get("message", ""))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                report.console_errors.append(params["entry"].get("text", "")[:500])
        self.send("Target.closeTarget", {"targetId": target})
        return report

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def blank_share(png: bytes) -> float:
    """Share of the screenshot's pixels that have its most common colour (1.0 = blank)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    return max(count for count, _ in colours) / (image.width * image.height)


@pytest.fixture(scope="module")
def browser():
    binary = chromium_path()
    if binary is None:
        pytest.fail("chromium is not installed (/usr/bin/chromium missing). Run `python tests/browser_setup.py` "
                    "as root (it runs apt-get install chromium) — `make test` does this first.")
    b = Browser(binary)
    yield b
    b.close()


def test_the_harness_notices_a_page_that_tries_to_reach_the_network(browser, tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text("<html><body><h1>leaky</h1><img src='https://cdn.example.org/x.png'>"
                    "<script>console.error('boom')</script></body></html>")
    report = browser.open(page.as_uri())
    assert report.requests == ["https://cdn.example.org/x.png"]
    assert any("boom" in e for e in report.console_errors)
    assert blank_share(report.screenshot) < 1.0


def test_a_blank_page_counts_as_blank(browser, tmp_path):
    page = tmp_path / "blank.html"
    page.write_text("<html><body></body></html>")
    assert blank_share(browser.open(page.as_uri()).screenshot) == 1.0


def test_every_html_of_a_run_renders_offline_without_errors(browser, tmp_path_factory):
    run = shared_run(tmp_path_factory)
    pages = sorted(run.glob("*.html"))
    assert [p.name for p in pages] == ["01_data_audit.html", "02_rfm.html", "03_clustering.html",
                                       "04_lifecycle.html", "05_campaign_evaluation.html", "index.html"]
    problems = {}
    for page in pages:
        report = browser.open(page.as_uri())
        issues = {"requests": report.requests, "console errors": report.console_errors,
                  "exceptions": report.exceptions}
        if blank_share(report.screenshot) > 0.995:
            issues["screenshot"] = ["blank"]
        issues = {k: v for k, v in issues.items() if v}
        if issues:
            problems[page.name] = issues
    assert problems == {}


def test_the_harness_notices_a_script_that_runs(browser, tmp_path):
    page = tmp_path / "pwned.html"
    page.write_text("<html><body><h1>x</h1><svg onload='window.__pwned=1;alert(\"hi\")'></svg></body></html>")
    report = browser.open(page.as_uri())
    assert report.pwned and report.dialogs == ["hi"]


def test_no_script_from_the_data_runs_in_any_html_of_the_hostile_run(browser, tmp_path_factory):
    run, cli = build_hostile_run(tmp_path_factory)
    assert cli["returncode"] == 0, cli["stdout"] + cli["stderr"]
    pages = sorted(run.glob("*.html"))
    assert len(pages) == 6
    problems = {}
    for page in pages:
        report = browser.open(page.as_uri())
        issues = {"window.__pwned set": [str(report.pwned)] if report.pwned else [], "dialogs": report.dialogs,
                  "requests": report.requests, "console errors": report.console_errors,
                  "exceptions": report.exceptions}
        issues = {k: v for k, v in issues.items() if v}
        if issues:
            problems[page.name] = issues
    assert problems == {}


# --------------------------------------------------------------------------- interactive tables
def _open_offline(playwright_browser, url: str):
    """A new page at ``url`` in which every request that is not ``file:``/``data:``/``blob:`` is
    recorded (the browser's flags already keep it from leaving); returns (page, requests, errors).
    Requests are watched, not intercepted: Playwright's interception stops a ``file:`` page from
    importing a ``blob:`` module (ITables' loader does)."""
    context = playwright_browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    requests: list[str] = []
    errors: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else requests.append(r.url))
    page.set_default_timeout(MESSAGE_WAIT * 1000)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return page, requests, errors


@pytest.fixture(scope="module")
def playwright_browser():
    with offline_chromium() as b:
        yield b


def test_the_reports_interactive_tables_sort_filter_and_download_offline(playwright_browser, tmp_path_factory):
    import csv

    run = shared_run(tmp_path_factory)
    page, requests, errors = _open_offline(playwright_browser, (run / "02_rfm.html").as_uri())
    expected = len(re.findall(r'<table[^>]* id="segkit-table-', (run / "02_rfm.html").read_text(encoding="utf-8")))
    page.wait_for_function(f"() => document.querySelectorAll('table.dataTable').length === {expected}")
    assert expected >= 2  # the segments and the customer list
    customers = page.locator(".dt-container").filter(has=page.locator("th", has_text="rfm_segment")).first
    info = customers.locator(".dt-info")
    ids = customers.locator("tbody tr td:first-child")
    shown = ids.all_inner_texts()
    assert len(shown) == 10 and all(re.fullmatch(r"c-[0-9a-f]{10}", i) for i in shown)  # pseudonyms, in a report
    ascending, descending = sort_twice_by_first_column(page, customers)
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert descending[0] > ascending[-1]  # the other end of the list
    segment = customers.locator("tbody tr td:nth-child(2)").first.inner_text()
    customers.locator("tfoot input").nth(1).fill(segment)
    # the filter runs on key presses, as when typing
    redrawn(page, customers, lambda: customers.locator("tfoot input").nth(1).press("End"))
    assert "filtered from" in info.inner_text()
    assert set(customers.locator("tbody tr td:nth-child(2)").all_inner_texts()) == {segment}
    with page.expect_download() as download:
        customers.get_by_text("CSV of the filtered rows").click()
    rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
    assert download.value.suggested_filename == "rfm_customers.csv"
    segments = pd.read_csv(run / "artifacts" / "customer_segments.csv", dtype=str)
    assert len(rows) == int((segments["rfm_segment"] == segment).sum()) > 0
    assert {r["rfm_segment"] for r in rows} == {segment}
    assert all(re.fullmatch(r"c-[0-9a-f]{10}", r["customer_id"]) for r in rows)
    assert requests == [] and errors == []
    page.context.close()


def test_the_csv_of_an_interactive_table_neutralises_formulas_and_holds_the_values_not_their_display(
        playwright_browser, tmp_path):
    import csv

    from segkit.core.escaping import neutralise_formula
    from segkit.widgets.tables import interactive_table

    ids = ['=HYPERLINK("http://evil.example/","x")', "+1+cmd|' /C calc'!A0", "@SUM(1+1)", "-1234", "C000001",
           "<b>bold</b>"]
    frame = pd.DataFrame({"customer_id": ids, "monetary_total": [-12.5, 3.0, 44155.25, 5.0, 1234.0, 0.0333],
                          "orders": [1, 2, 2525, 4, 5, 6]})
    page_file = tmp_path / "table.html"
    page_file.write_text("<html><head><meta charset='utf-8'></head><body>"
                         + interactive_table(frame, csv_name="ids", include_library=True)._repr_mimebundle_()["text/html"]
                         + "</body></html>", encoding="utf-8")
    page, requests, errors = _open_offline(playwright_browser, page_file.as_uri())
    page.wait_for_selector("table.dataTable")
    with page.expect_download() as download:
        page.get_by_text("CSV of the filtered rows").click()
    rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
    page.context.close()
    assert [r["customer_id"] for r in rows] == [neutralise_formula(i) for i in ids]
    # the values, not the notebook's display of them ("44,155.25", "0.03", "2,525")
    assert [r["monetary_total"] for r in rows] == ["-12.5", "3", "44155.25", "5", "1234", "0.0333"]
    assert [r["orders"] for r in rows] == ["1", "2", "2525", "4", "5", "6"]
    assert requests == [] and errors == []
