"""Batch runs and shareable reports: papermill runner, offline HTML export, index, run.json.

``segkit run`` (:mod:`segkit.cli`) calls :func:`run_pipeline`. Modules:

- :mod:`segkit.report.runner` — effective config, atomic run folder, notebook execution,
  failures (where a failed run is kept: see that module's docstring);
- :mod:`segkit.report.runfolder` — which folders a run may replace (the ``.segkit-run``
  marker), the lock per ``--out``, stale build folders, disk-full / permission messages;
- :mod:`segkit.report.export` — offline HTML (one nbconvert exporter per run), the offline
  validator and the raw-id privacy check;
- :mod:`segkit.report.index` — ``index.html``;
- :mod:`segkit.report.runinfo` — input hashes, library versions, timings for ``run.json``;
- :mod:`segkit.report.nbval` — ``python -m segkit.report refresh-nbval`` (regression copies).

Examples
--------
>>> from segkit.report import find_external_resources
>>> find_external_resources("<p>all inline</p>")
[]
"""

from __future__ import annotations

from segkit.report.export import (
    Failure,
    OfflineHTMLError,
    ReportExporter,
    find_external_resources,
    redact_raw_ids,
    validate_offline_html,
)
from segkit.report.runner import (
    NotebookFailedError,
    RunInterrupted,
    RunOptions,
    RunResult,
    effective_config,
    resolve_only,
    run_pipeline,
)

__all__ = [
    "run_pipeline",
    "RunOptions",
    "RunResult",
    "NotebookFailedError",
    "RunInterrupted",
    "effective_config",
    "resolve_only",
    "ReportExporter",
    "Failure",
    "OfflineHTMLError",
    "find_external_resources",
    "validate_offline_html",
    "redact_raw_ids",
]
