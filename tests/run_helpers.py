"""Helpers shared by the runner tests: throwaway notebooks, tiny inputs, one shared real run.

Not a test module. ``make_notebook`` writes small notebooks with the real pipeline names and
the contract's shape (parameters cell, ``open_run``, summary) so the runner can be tested in
seconds; :func:`shared_run` builds one real ``segkit run`` per test session (shared across
pytest-xdist workers through a file lock) for the end-to-end and browser tests.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "segkit", "display_name": "Python (segkit)", "language": "python"}
PARAMETERS = "run_dir = None\nconfig_path = None\nas_of = None\nseed = None\nbins = None\n"


def make_notebook(folder: Path, name: str, body: str, summary: bool = True) -> Path:
    """Write ``folder/<name>.ipynb``: title, parameters, ``open_run``, ``body``, summary cell."""
    cells = [
        nbformat.v4.new_markdown_cell(f"# Tiny {name}\nA throwaway notebook for runner tests."),
        nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pandas as pd\n"
            "from segkit.errors import ConfigError, DataError\n"
            "from segkit.pipeline import open_run, show_summary, shareable\n"
            f"ctx = open_run({name!r}, run_dir, config_path, as_of, seed)"
        ),
        nbformat.v4.new_code_cell(body),
    ]
    if summary:
        cells.append(nbformat.v4.new_code_cell(
            f"show_summary(ctx, title='Tiny {name}', analysed='two customers', findings=['{name} found 2 rows'], "
            "actions=['nothing to do'], headlines={'Rows': 2, 'Seed': ctx.seed}, warnings=[])"))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def tiny_inputs(folder: Path) -> dict[str, Path]:
    """Two small input files (throwaway notebooks do not read them; the runner checks they exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    tx = folder / "transactions.csv"
    tx.write_text("customer_id,order_date,amount\nC000001,2024-01-02,10.5\nC000002,2024-01-03,20\n")
    cu = folder / "customers.csv"
    cu.write_text("customer_id,country\nC000001,DE\nC000002,FR\n")
    return {"transactions": tx, "customers": cu}


def locked_once(root: Path, key: str, build) -> Path:
    """Run ``build(folder)`` once per test session across xdist workers; return the folder.

    ``root`` is shared by all workers (``tmp_path_factory.getbasetemp().parent``). The folder
    gets a ``done.json`` marker; a failure is recorded so other workers fail with it too.
    """
    folder = root / key
    folder.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            marker = folder / "done.json"
            if not marker.exists():
                try:
                    build(folder)
                    marker.write_text(json.dumps({"ok": True}))
                except BaseException as exc:
                    marker.write_text(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
                    raise
            state = json.loads(marker.read_text())
            if not state["ok"]:
                raise RuntimeError(f"the shared run {key} failed in another worker: {state['error']}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def shared_root(tmp_path_factory) -> Path:
    """A folder shared by every xdist worker of this session (or the session's own tmp root)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
