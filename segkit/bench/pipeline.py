"""Whole-pipeline benchmark: ``segkit run`` end to end vs the runner's fixed overhead.

The baseline runs the same runner over five trivial notebooks (parameters cell + one line):
kernel start, papermill and HTML export without analysis. The ratio shows how much of a run
is analysis and how much is fixed cost; ``seconds_by_notebook`` splits each notebook into
kernel start, compute and HTML export (from ``run.json``), with each notebook's kernel peak memory;
the case's peak memory is the largest process of the run (a kernel, or the runner itself).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import nbformat

from segkit.report.runner import RunOptions, run_pipeline
from segkit.steps.pipeline import NOTEBOOKS

__all__ = ["trivial_notebooks", "segkit_run", "runner_overhead"]


def trivial_notebooks(folder: str | Path) -> Path:
    """Five notebooks named like the pipeline's that only take the parameters."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "segkit", "display_name": "Python (segkit)", "language": "python"}
        params = nbformat.v4.new_code_cell("run_dir = None\nconfig_path = None\nas_of = None\nseed = None")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name} (benchmark baseline)"), params,
                    nbformat.v4.new_code_cell("x = 1")]
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def _run(config: str, notebooks_dir: str | None) -> dict:
    out = Path(tempfile.mkdtemp(prefix="segkit-bench-run-")) / "run"
    try:
        result = run_pipeline(RunOptions(config=Path(config), out=out, quiet=True),
                              notebooks_dir=Path(notebooks_dir) if notebooks_dir else None,
                              echo=lambda _: None)
        record = json.loads((result.out / "run.json").read_text())
        notebooks = record.get("notebooks", [])
        memory = {n["name"]: n["peak_memory_mb"] for n in notebooks if n.get("peak_memory_mb") is not None}
        measured = {"status": record.get("status"),
                    "seconds_by_notebook": {n["name"]: n.get("seconds", {}) for n in notebooks},
                    "peak_memory_mb_by_notebook": memory}
        if memory:  # the kernels are other processes: the harness reports the larger of the two peaks
            measured["peak_mb"] = max(memory.values())
        return measured
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def segkit_run(config: str) -> dict:
    """The whole pipeline (all five notebooks, HTML, index) on the data of ``config``."""
    return _run(config, None)


def runner_overhead(config: str, notebooks_dir: str) -> dict:
    """Baseline: the runner over trivial notebooks (fixed cost of five kernels + exports)."""
    return _run(config, notebooks_dir)
