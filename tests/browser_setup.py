"""Make sure Debian's ``chromium`` is installed for ``tests/test_browser.py`` (run by ``make test``).

Idempotent: does nothing when ``/usr/bin/chromium`` exists. Otherwise, as root, runs
``apt-get update`` then ``apt-get install -y chromium`` quietly (browser downloads such as
``playwright install`` cannot reach their servers from CI; Debian's package registry can).
Never fails the build by itself: when it cannot install, it says why and exits 0, and the
browser test then fails with a clear message (it never skips silently).

Usage: ``python tests/browser_setup.py``
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager

from apt_setup import apt_install, ensure

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    """Path of the chromium binary, or None."""
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


#: Chromium switches of every browser test: nothing can leave the machine (every host is
#: unresolvable and every request goes to a dead proxy, except those to 127.0.0.1: a local server).
OFFLINE_FLAGS: tuple[str, ...] = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--mute-audio", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def launch_chromium(playwright):
    """Debian's chromium driven by Playwright for Python (``executable_path``: never
    ``playwright install``), headless, offline (:data:`OFFLINE_FLAGS`). Raises when chromium is
    missing (the tests fail, never skip)."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (/usr/bin/chromium missing). Run `python tests/browser_setup.py` "
                           "as root (it runs apt-get install chromium) — `make test` does this first.")
    return playwright.chromium.launch(executable_path=binary, headless=True, args=list(OFFLINE_FLAGS))


@contextmanager
def offline_chromium():
    """:func:`launch_chromium` inside Playwright's sync API, closed afterwards (a fixture's body)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def install() -> str | None:
    """Install Debian's chromium with apt-get; return an error text, or None on success."""
    error = apt_install("chromium")
    if error:
        return error
    return None if chromium_path() else "apt-get finished but no chromium binary was found."


def main() -> int:
    """Install chromium when missing; always returns 0 (see the module docstring)."""
    return ensure("browser_setup", None if chromium_path() else "chromium not found", "chromium", install,
                  chromium_path, "tests/test_browser.py")


if __name__ == "__main__":
    sys.exit(main())


def redrawn(page, container, action) -> None:
    """Do ``action()`` (a click, a key press) on the interactive table in ``container`` (a
    Playwright locator of its ``.dt-container``) and wait for DataTables' ``draw`` event that
    follows (DataTables redraws after the click or key press has returned)."""
    page.evaluate("""async (box) => {
        const loader = Object.keys(window).find(key => key.startsWith('_itables_'));
        const { jQuery } = await window[loader];
        window.__segkitDrawn = false;
        jQuery(box.querySelector('table.dataTable')).one('draw.dt', () => { window.__segkitDrawn = true; });
    }""", container.element_handle())
    action()
    page.wait_for_function("() => window.__segkitDrawn === true")


def sort_twice_by_first_column(page, container) -> tuple[list[str], list[str]]:
    """Click the first column header of the interactive table in ``container`` twice; the first
    column's shown cells after each redraw (ascending, then descending)."""
    cells = container.locator("tbody tr td:first-child")
    header = container.locator("thead th").first
    shown = []
    for _ in range(2):
        redrawn(page, container, header.click)
        shown.append(cells.all_inner_texts())
    return shown[0], shown[1]
