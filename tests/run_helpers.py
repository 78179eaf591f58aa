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
import subprocess
import sys
from pathlib import Path
from typing import Mapping

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
            "from segkit.core.errors import ConfigError, DataError\n"
            "from segkit.steps.pipeline import open_run, show_summary, shareable\n"
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


#: Size of the generated shop of the end-to-end run: small, but enough customers per segment
#: and cluster for every notebook (the BG/NBD fit and k-means need a few hundred buyers).
E2E_CUSTOMERS = 600
E2E_SEED = 11


def generate_inputs(folder: Path, n_customers: int = E2E_CUSTOMERS, seed: int = E2E_SEED) -> dict[str, Path]:
    """A small generated shop (transactions, customers, campaign CSVs) in ``folder``."""
    from segkit.data.datasets import generate_shop, write_sample

    paths = write_sample(folder, generate_shop(n_customers, seed=seed))
    return {k: paths[k] for k in ("transactions", "customers", "campaign")}


def segkit_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``segkit`` console script (as a user would); output captured.

    ``env`` adds variables to this command's environment only (and so to the kernels it starts), not to
    this process's: another command may run side by side in a thread.
    """
    exe = Path(sys.executable).with_name("segkit")
    command_env = dict(os.environ, SEGKIT_QUIET="1", **(env or {}))
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=command_env)


def run_with_inputs(out: Path, inputs: dict[str, Path], *extra: str) -> subprocess.CompletedProcess:
    """``segkit run`` on ``inputs`` into ``out``; raises with the CLI's output when it fails."""
    flags = [x for table, path in inputs.items() for x in (f"--{table}", path)]
    done = segkit_cli("run", *flags, "--out", out, *extra)
    if done.returncode != 0:
        raise AssertionError(f"segkit run failed with exit code {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def shared_run(tmp_path_factory, key: str = "e2e-run") -> Path:
    """The run folder of one full ``segkit run`` on a generated shop, built once per session.

    ``key="e2e-rerun"`` gives a second run with the same inputs and flags (for byte-identity).
    """
    root = shared_root(tmp_path_factory)
    data = locked_once(root, "e2e-data", lambda folder: generate_inputs(folder))
    inputs = {t: data / f"{t}.csv" for t in ("transactions", "customers", "campaign")}

    def build(folder: Path) -> None:
        done = run_with_inputs(folder / "run", inputs)
        (folder / "cli.json").write_text(json.dumps({"stdout": done.stdout, "stderr": done.stderr}))

    return locked_once(root, key, build) / "run"


def run_sample_notebook(name: str, folder: Path) -> tuple[list, str]:
    """Execute ``notebooks/<name>.ipynb`` alone with its defaults (the bundled sample) into
    ``folder``; return its outputs and the text of their ``text/*`` data."""
    import nbformat
    import papermill as pm

    from segkit.core.config import project_root

    root = project_root()
    out = folder / f"{name}.ipynb"
    pm.execute_notebook(str(root / "notebooks" / f"{name}.ipynb"), str(out), kernel_name="segkit",
                        cwd=str(root / "notebooks"), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(str(v) for o in outputs for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return outputs, text


def shop_config(folder: Path, tmp_path: Path, kind: str) -> Path:
    """``tmp_path/<kind>.yml``: the shop in ``folder`` (transactions, customers, campaign CSVs) with
    ``engine.kind: kind``, 3 clusters (2 inits) and seed 7: the engine-comparison runs' config."""
    config = tmp_path / f"{kind}.yml"
    config.write_text(f"data:\n  transactions: {folder / 'transactions.csv'}\n  customers: {folder / 'customers.csv'}\n"
                      f"  campaign: {folder / 'campaign.csv'}\nengine:\n  kind: {kind}\n"
                      "clustering:\n  k: 3\n  n_init: 2\nrun:\n  seed: 7\n")
    return config
