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
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    """Path of the chromium binary, or None."""
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


def install() -> str | None:
    """Install Debian's chromium with apt-get; return an error text, or None on success."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available (not a Debian/Ubuntu machine); install chromium yourself."
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "not root and no sudo; run `apt-get install -y chromium` as root."
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(prefix + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
    return None if chromium_path() else "apt-get finished but no chromium binary was found."


def main() -> int:
    """Install chromium when missing; always returns 0 (see the module docstring)."""
    if chromium_path():
        return 0
    print("browser_setup: chromium not found, installing Debian's chromium with apt-get …", file=sys.stderr)
    error = install()
    if error:
        print(f"browser_setup: could not install chromium: {error}\n"
              "tests/test_browser.py will fail until chromium is installed.", file=sys.stderr)
    else:
        print(f"browser_setup: installed {chromium_path()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
