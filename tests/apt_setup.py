"""Installing a Debian package for the test setup scripts (``browser_setup.py``, ``spark_setup.py``).

System packages the tests need (chromium, a Java runtime) come from Debian's package registry with
``apt-get``, never from a tool's own downloads, which CI cannot reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable


def apt_install(package: str) -> str | None:
    """``apt-get update`` then ``apt-get install -y package`` (as root, or with ``sudo -n``), quietly;
    an error text saying what failed and what to run, or None on success."""
    if shutil.which("apt-get") is None:
        return f"apt-get is not available (not a Debian/Ubuntu machine); install {package} yourself."
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return f"not root and no sudo; run `apt-get install -y {package}` as root."
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(prefix + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
    return None


def ensure(script: str, problem: str | None, package: str, install: Callable[[], str | None],
           installed: Callable[[], str | None], tests: str) -> int:
    """A setup script's whole run: nothing when ``problem`` is None (the tool is there), else say it and
    ``install()`` (an error text or None), then say what was installed (``installed()``) or which
    ``tests`` will fail. Always 0: a setup script never fails the build; the tests fail, never skip."""
    if problem is None:
        return 0
    print(f"{script}: {problem}; installing Debian's {package} with apt-get …", file=sys.stderr)
    error = install()
    if error:
        print(f"{script}: could not install {package}: {error}\n{tests} will fail until it is installed.",
              file=sys.stderr)
    else:
        print(f"{script}: installed {installed()}", file=sys.stderr)
    return 0
