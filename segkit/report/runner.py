"""Run the notebooks of a pipeline with papermill into one run folder, atomically.

What :func:`run_pipeline` does, in order:

1. **Effective config.** Defaults ← ``--config`` file ← flags (``--transactions``,
   ``--customers``, ``--campaign``, ``--as-of``, ``--only``, ``--include-code``). If any data
   flag is given without ``--config``, the data tables not given are *absent* (never taken from
   the bundled sample). With ``--only`` into an existing run folder and neither ``--config``
   nor a data flag, that folder's ``config.yml`` is the base, so re-run notebooks see the same
   data as the ones reused. Input files are checked before anything runs.
2. **Build folder.** The run is built in a hidden sibling of ``--out``
   (``.<name>.building-XXXX``); with ``--only`` and an existing ``--out`` it starts as a copy of
   that folder (its artifacts are reused). ``config.yml`` there is the effective config with
   absolute data paths.
3. **Notebooks**, each with papermill (kernel ``segkit``, or a kernelspec for the current
   Python when that one is not installed; cwd = the build folder; ``SEGKIT_QUIET=1``),
   parameters ``run_dir``, ``config_path``, ``as_of``, ``seed`` — only those the notebook
   declares. A notebook starts as soon as the notebooks it reads from
   (:data:`segkit.steps.pipeline.UPSTREAM`) have executed, at most ``run.workers`` at once (03 and 04
   side by side); the next kernels are started ahead and preload their notebook's imports
   (:mod:`segkit.report.kernels`). ``run.json`` and the index list the notebooks in pipeline
   order. A notebook whose required input is absent (``05_campaign_evaluation`` without
   campaign data) is skipped with the reason in the index. Each executed notebook is exported
   to HTML while the next ones run (:class:`segkit.report.export.ReportExporter`).
4. **index.html and run.json**, then the build folder is **moved into place**.

Where results end up (the rule also printed by ``segkit run --help``):

- success: the build folder replaces ``<out>`` (a previous run there is removed). Only a
  folder segkit wrote is ever replaced — see :mod:`segkit.report.runfolder` for the proof (a
  ``.segkit-run`` marker), the folders refused up front (links, folders holding the inputs or
  the config, home, …), the lock that stops a second run into the same ``<out>``, and the
  removal of build folders left by killed runs;
- failure (a notebook raised) or interruption (Ctrl-C): ``<out>`` is left untouched and the
  build folder becomes ``<out>-failed/`` (replacing an older one). It holds the notebooks that
  ran, the failing notebook executed until the error (``NN_name.ipynb``) and its HTML with the
  error visible and a banner on top, ``run.json`` with ``"status": "failed"`` and an
  ``index.html`` headed "FAILED"; raw customer ids in its error texts (``run.json``, the
  failing notebook) are replaced by pseudonyms as in the HTML — when the audit failed before
  writing the cleaned tables, the ids are read from the inputs' ``customer_id`` columns. A killed process (no chance to
  clean up) leaves only the hidden build folder (removed by the next run into ``<out>``);
  ``<out>`` is still the previous complete run.
- the disk fills up or a write is refused during the run: :class:`OutputWriteError` naming
  the path and the free space (``segkit run`` exit code 1, no traceback); ``<out>`` untouched.

So a complete-looking ``<out>/index.html`` always belongs to one successful run.

Examples
--------
>>> resolve_only(["rfm", "01_data_audit"])
['01_data_audit', '02_rfm']
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import nbformat
import yaml

from segkit.core.config import (
    bundled_sample_config,
    data_source,
    load_config,
    local_path,
    project_root,
    short_repr,
    source_scheme,
)
from segkit.core.errors import ConfigError, DataError, SegkitError
from segkit.core.files import atomic_write_text, dumps_json, read_frame
from segkit.core.privacy import SALT_ENV, salt_for
from segkit.report.export import (
    Failure,
    IdRedactor,
    ReportExporter,
    is_word_like,
    scannable_ids,
    validate_offline_html,
)
from segkit.report.index import render_index
from segkit.report.kernels import NotebookJob, imported_modules, kernel_peak_memory_mb
from segkit.report.runfolder import (
    ENVIRONMENT_ERRNOS,
    OutputWriteError,
    RunFolderError,
    check_location,
    check_replaceable,
    create_build_folder,
    entries,
    environment_error,
    environment_message,
    is_replaceable,
    out_lock,
    protected_paths,
    remove_stale_builds,
    run_folder_path,
    run_id_of,
    write_marker,
)
from segkit.report.runinfo import engine_info, file_info, input_files, library_versions, notebook_timings
from segkit.steps.pipeline import ARTIFACTS, CUSTOMER_SEGMENTS, NOTEBOOKS, UPSTREAM
from segkit.steps.sources import check_engine

__all__ = ["TABLES", "REQUIRED_INPUTS", "KERNEL_NAME", "CORE_PARAMETERS", "KERNEL_START_TIMEOUT",
    "KERNEL_ARGUMENTS", "INTERRUPT_GRACE", "KERNEL_SHUTDOWN_WAIT", "interrupted_failure",
    "NotebookFailedError", "RunInterrupted", "RunOptions", "NotebookRecord", "RunResult", "short_name",
    "resolve_only", "MAX_RUN_NAME", "RUN_NAME_PUNCTUATION", "checked_run_name", "effective_config",
    "write_config", "kernel_environment", "declared_parameters", "check_parameters", "ENGINE_NAME",
    "register_engine", "quiet_papermill", "redact_terminal_text", "redact_texts", "redact_text",
    "TEXT_MIMETYPES", "redact_notebook_outputs", "run_pipeline", "default_notebooks_dir", "SPARK_GONE_SIGNS",
    "spark_engine_gone"]

TABLES: tuple[str, ...] = ("transactions", "customers", "campaign")
#: Input tables a notebook cannot run without; absent → the notebook is skipped (not failed).
REQUIRED_INPUTS: dict[str, str] = {"05_campaign_evaluation": "campaign"}
KERNEL_NAME = "segkit"
CORE_PARAMETERS: tuple[str, ...] = ("run_dir", "config_path", "as_of", "seed")
#: Kernel start-up can be slow on a loaded machine; this is a safety net, not a performance bound.
KERNEL_START_TIMEOUT = 300
KERNEL_ARGUMENTS: tuple[str, ...] = ("--IPKernelApp.log_level=CRITICAL",)
#: Seconds a running notebook gets to stop after Ctrl-C before its kernel is killed.
INTERRUPT_GRACE = 20
#: Seconds to wait for a kernel started ahead, and not needed, to shut down.
KERNEL_SHUTDOWN_WAIT = 60


def interrupted_failure(name: str) -> Failure:
    """The failure recorded for a notebook stopped by Ctrl-C."""
    return Failure(name, -1, None, "interrupted", "KeyboardInterrupt", "Interrupted by the user.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: How Python words an OS error: "[Errno 28] No space left on device: '/path'".
_ERRNO = re.compile(r"^\[Errno (\d+)\] ([^:]+)(?:: '(.+)')?")


class NotebookFailedError(SegkitError):
    """A notebook of the run stopped with an error; the message says where and why.

    Attributes
    ----------
    failure : Failure
        Notebook, cell, ename and evalue.
    failed_dir : Path
        Where the partial run was kept (``<out>-failed``).
    is_bug : bool
        True when the error is not a :class:`~segkit.core.errors.SegkitError` (unexpected: a bug).
    traceback : str
        The kernel's traceback (without colour codes), shown for bugs.
    """

    def __init__(self, message: str, failure: Failure, failed_dir: Path, is_bug: bool, traceback: str = ""):
        super().__init__(message)
        self.failure = failure
        self.failed_dir = failed_dir
        self.is_bug = is_bug
        self.traceback = traceback


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); the partial run was kept in ``failed_dir``."""

    def __init__(self, out: Path, failed_dir: Path):
        super().__init__(f"Interrupted. The partial run was kept in {failed_dir}; {out} was left unchanged.")
        self.failed_dir = failed_dir


@dataclass
class RunOptions:
    """The ``segkit run`` flags. ``None`` means "not given" (the config decides)."""

    config: Path | None = None
    #: a local path; as text also a table (``table:…``) or a URI (``s3a://…``) for ``engine.kind: spark``
    transactions: str | Path | None = None
    customers: str | Path | None = None
    campaign: str | Path | None = None
    as_of: str | None = None
    out: Path | None = None
    only: Sequence[str] | None = None
    include_code: bool | None = None
    quiet: bool = False


@dataclass
class NotebookRecord:
    """One notebook's line in ``run.json`` and the index."""

    name: str
    status: str  # ok | failed | interrupted | skipped | reused | not run
    reason: str | None = None
    html: str | None = None
    ipynb: str | None = None
    parameters: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    redacted_ids: int = 0
    error: dict | None = None
    peak_memory_mb: float | None = None  # the kernel's peak resident memory (Linux), None elsewhere

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, {}) or k == "status"}
        if self.status not in ("ok", "failed", "interrupted"):
            out.pop("redacted_ids", None)
        return out


@dataclass
class RunResult:
    """What a successful :func:`run_pipeline` produced."""

    out: Path
    record: dict

    @property
    def index(self) -> Path:
        return self.out / "index.html"


# --------------------------------------------------------------------------- names and config
def short_name(notebook: str) -> str:
    """The part of a notebook name after its number (``"02_rfm"`` → ``"rfm"``).

    Examples
    --------
    >>> short_name("05_campaign_evaluation")
    'campaign_evaluation'
    """
    return notebook.split("_", 1)[1] if re.match(r"^\d+_", notebook) else notebook


def resolve_only(names: Sequence[str] | None, pipeline: Sequence[str] = NOTEBOOKS, source: str = "--only") -> list[str]:
    """Notebooks selected by ``--only`` (full names or the part after the number), in pipeline order.

    Raises
    ------
    ConfigError
        For a name that is not a notebook of the pipeline.

    Examples
    --------
    >>> resolve_only(None, ["01_a", "02_b"])
    ['01_a', '02_b']
    >>> resolve_only(["b"], ["01_a", "02_b"])
    ['02_b']
    """
    if not names:
        return list(pipeline)
    if isinstance(names, str):
        names = names.split(",")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{source} = {short_repr(names)} is not a list of notebook names; give e.g. "
                          f"[rfm, clustering] (names from: {', '.join(pipeline)}).")
    lookup = {n: n for n in pipeline} | {short_name(n): n for n in pipeline}
    wanted = [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in lookup]
    if unknown:
        shown = ", ".join(short_repr(n) for n in unknown[:5]) + (f" (and {len(unknown) - 5} more)"
                                                                 if len(unknown) > 5 else "")
        raise ConfigError(
            f"{source}: unknown notebook(s) {shown}. Use these names (or the part after "
            f"the number): {', '.join(pipeline)}."
        )
    chosen = {lookup[n] for n in wanted}
    return [n for n in pipeline if n in chosen]


def _as_of_text(value: Any, source: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ConfigError(f"as_of = {short_repr(value)} (from {source}) is not a date; use YYYY-MM-DD, "
                          "e.g. 2024-06-30.") from None


#: Longest run.name accepted (a folder name; file systems allow 255 bytes).
MAX_RUN_NAME = 100
#: Characters a run.name may hold besides letters and digits (spaces not at either end).
RUN_NAME_PUNCTUATION = frozenset(" -_.")


def checked_run_name(value: Any, origin: str) -> str | None:
    """``run.name`` as a folder name under ``reports/``: one path component, no way out of it.

    A name is made of letters and digits (any script: ``Müller-2024`` is fine), spaces inside,
    ``-``, ``_`` and ``.`` (:data:`RUN_NAME_PUNCTUATION`) — exactly what the error message
    promises, so a name never holds shell or HTML syntax (``<img src=x>``) and reads the same in
    every file system.

    Raises
    ------
    ConfigError
        A name with ``/`` or ``\\``, ``.``/``..`` or a leading dot, control characters, spaces
        around it, any other character than those above, or longer than :data:`MAX_RUN_NAME`;
        or a value that is not text.

    Examples
    --------
    >>> checked_run_name("2024-q4", "in shop.yml"), checked_run_name("Q4 Müller_v1.2", "in shop.yml")
    ('2024-q4', 'Q4 Müller_v1.2')
    >>> checked_run_name("../../../x", "in shop.yml")
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: run.name = '../../../x' in shop.yml is not a folder name: it contains '/'. Use one folder name such as 2024-q4 (letters, digits, spaces, '-', '_', '.'); the run goes to reports/<run.name>/ (or give --out).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problem = f"it is a {type(value).__name__}, not text"
    else:
        text = str(value)
        bad = [c for c in ("/", "\\") if c in text]
        if bad:
            problem = f"it contains {bad[0]!r}"
        elif text.startswith("."):
            problem = "it starts with a dot (hidden, or a way up out of reports/)"
        elif any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
            problem = "it contains control characters"
        elif text != text.strip():
            problem = "it starts or ends with spaces"
        elif len(text) > MAX_RUN_NAME:
            problem = f"it is longer than {MAX_RUN_NAME} characters"
        elif other := list(dict.fromkeys(c for c in text if not (c.isalnum() or c in RUN_NAME_PUNCTUATION))):
            problem = "it contains " + ", ".join(map(repr, other[:5])) + (" and others" if len(other) > 5 else "")
        else:
            return text
    raise ConfigError(f"run.name = {short_repr(value)} {origin} is not a folder name: {problem}. Use one folder "
                      "name such as 2024-q4 (letters, digits, spaces, '-', '_', '.'); the run goes to "
                      "reports/<run.name>/ (or give --out).")


def effective_config(options: RunOptions, reuse_dir: Path | None = None,
                     pipeline: Sequence[str] = NOTEBOOKS) -> dict:
    """Merge defaults, the config file and the flags; data paths absolute; inputs checked.

    Parameters
    ----------
    options : RunOptions
        The flags.
    reuse_dir : Path, optional
        An existing run folder being extended with ``--only``: its ``config.yml`` is the base
        when neither ``--config`` nor a data flag is given.
    pipeline : sequence of str
        Notebook names (to normalise ``--only``).

    Raises
    ------
    ConfigError
        Invalid config or flag value, no transactions file at all, or a table or URI where it cannot be
        read (any engine but Spark: :func:`segkit.core.config.data_source`).
    DataError
        A local input file (or a ``file:`` URI's file, folder or glob) that does not exist. A table or another
        URI is passed through as given and checked by the audit (01) on Spark.

    Examples
    --------
    >>> tx = Path(tempfile.mkdtemp()) / "orders.csv"
    >>> _ = tx.write_text("customer_id,order_date,amount\\n")
    >>> cfg = effective_config(RunOptions(transactions=tx, as_of="2024-03-31"))
    >>> cfg["run"]["as_of"], cfg["data"]["transactions"] == str(tx.resolve()), cfg["data"]["customers"]
    ('2024-03-31', True, None)
    """
    data_flags = {t: getattr(options, t) for t in TABLES if getattr(options, t) is not None}
    base = options.config
    if base is None and not data_flags and reuse_dir is not None and (reuse_dir / "config.yml").exists():
        base = reuse_dir / "config.yml"
    if base is None and not data_flags:
        base = bundled_sample_config()  # the bundled sample with its documented design
    overrides: dict[str, dict[str, Any]] = {"run": {}}
    if options.as_of is not None:
        overrides["run"]["as_of"] = options.as_of
    if options.include_code is not None:
        overrides["run"]["include_code"] = bool(options.include_code)
    if options.only:
        overrides["run"]["only"] = resolve_only(options.only, pipeline)
    if data_flags:
        data: dict[str, Any] = {} if options.config is not None else {t: None for t in TABLES}
        data.update({t: p if source_scheme(p) else str(Path(p).expanduser().resolve()) for t, p in data_flags.items()})
        overrides["data"] = data
    cfg = load_config(base, overrides)
    source = "--as-of" if options.as_of is not None else f"run.as_of in {base or 'the defaults'}"
    cfg["run"]["as_of"] = _as_of_text(cfg["run"].get("as_of"), source)
    seed = cfg["run"].get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"run.seed = {short_repr(seed)} in {base or 'the defaults'} is not a whole number; "
                          "use e.g. seed: 42.")
    origin = f"in {base}" if base else "in the defaults"
    cfg["run"]["name"] = checked_run_name(cfg["run"].get("name"), origin)
    if options.only is None and cfg["run"].get("only"):
        cfg["run"]["only"] = resolve_only(cfg["run"]["only"], pipeline, source=f"run.only {origin}")
    try:  # before any notebook: an invalid engine section, or engine.kind spark where Spark cannot start
        engine_kind = check_engine(cfg).kind
    except ConfigError as exc:
        raise ConfigError(f"{base}: {exc}" if base else str(exc)) from None
    cfg["data"] = {t: _checked_input(cfg, t, data_flags, base, engine_kind) for t in TABLES}
    if cfg["data"]["transactions"] is None:
        raise ConfigError("No transactions file: give --transactions FILE, or data.transactions in the file "
                          "given to --config.")
    return cfg


def _checked_input(cfg: Mapping, table: str, flags: Mapping[str, Any], base: Path | None,
                   engine_kind: str) -> str | None:
    """``data.<table>`` as the run's config.yml holds it: a local path made absolute and checked (it exists;
    a folder or glob only for the transactions), a ``file:`` URI checked as its path and kept as written (on
    Spark a folder or glob for every table: Spark reads it), a table or another URI (``engine.kind: spark``:
    :func:`segkit.core.config.data_source`) kept as written."""
    origin = f"--{table}" if table in flags else f"data.{table} in {base or 'the defaults'}"
    source = data_source(cfg, table, engine_kind, origin)
    if source is None:
        return None
    if isinstance(source, str):
        # A table or URI, read by Spark where it lives. Whether it exists is found by the audit (01), whose
        # error names data.<table> and what Spark said. Asking here would start a Spark application in
        # this process (~20 s; on a cluster a second application asking for executors) for the answer that
        # 01's first statement gives anyway.
        return source
    value = cfg["data"][table]
    from_uri = source_scheme(value) == "file"
    # a file: URI is read by Spark (segkit.audit.audit_inputs): for every table a file, a folder or a glob
    checked = _checked_local(cfg, table, source, origin, file_set=table == "transactions" or from_uri)
    return value if from_uri else checked


def _checked_local(cfg: Mapping, table: str, path: Path, origin: str, file_set: bool = False) -> str:
    """The absolute local path of ``data.<table>`` once it is found (:class:`DataError` naming ``origin`` if not);
    with ``file_set`` it may be a folder or a glob of files (:func:`segkit.data.engine.is_file_set`)."""
    from segkit.data.engine import choose_engine, is_file_set
    from segkit.data.engine import input_files as log_files

    if file_set and is_file_set(path):
        # A transaction log split into files (a folder or a glob): read out-of-core by
        # segkit.data.engine; checked here with the same rule, so a wrong path stops before any notebook.
        if choose_engine(cfg) == "pandas":  # (a file: URI is refused before, by data_source, on any other engine)
            raise ConfigError(f"The transactions input {path} (from {origin}) is a folder or glob of files, which "
                              "only the out-of-core engine reads, but engine.kind is pandas. Set engine.kind: auto "
                              "(or duckdb), or give a single file.")
        try:
            log_files(path, what="the transaction log" if table == "transactions" else f"the {table} table")
        except DataError as exc:
            raise DataError(f"The {table} input (from {origin}): {exc}") from None
        return str(path.resolve()) if path.is_dir() else str(path)
    if not path.exists():
        raise DataError(f"The {table} file {path} (from {origin}) does not exist. Check the path and spelling, "
                        f"or leave {table} out if you do not have it.")
    if not path.is_file():
        raise DataError(f"The {table} input {path} (from {origin}) is a folder, not a file. Give the file itself "
                        "(only the transactions may be a folder or a glob of files; on engine.kind: spark, every "
                        "input given as a file: URI).")
    return str(path.resolve())


def write_config(cfg: Mapping, path: Path) -> None:
    """Write the effective config as YAML: no internal ``_`` keys and never the pseudonym salt.

    Examples
    --------
    >>> path = Path(tempfile.mkdtemp()) / "config.yml"
    >>> write_config({"_base_dir": "/x", "privacy": {"salt": "s3cret", "min_cell_size": 10}}, path)
    >>> "s3cret" in path.read_text(), yaml.safe_load(path.read_text())
    (False, {'privacy': {'salt': None, 'min_cell_size': 10}})
    """
    clean = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
    if isinstance(clean.get("privacy"), Mapping):
        clean["privacy"] = {**clean["privacy"], "salt": None}
    header = ("# Effective configuration of this segkit run: defaults + config file + command-line flags.\n"
              "# Repeat the run with: segkit run --config <this file>\n"
              "# privacy.salt is never written here: the run passes it to the notebooks as SEGKIT_SALT.\n")
    atomic_write_text(path, header + yaml.safe_dump(clean, sort_keys=False, allow_unicode=True))


# --------------------------------------------------------------------------- kernel
@contextlib.contextmanager
def kernel_environment(name: str = KERNEL_NAME, mpl_backend: str | None = None,
                       salt: str | None = None) -> Iterator[str]:
    """Environment for executing notebooks: ``SEGKIT_QUIET=1`` and a kernel named ``name``.

    When no kernelspec ``name`` is installed, a temporary one that runs the current Python
    (``sys.executable -m ipykernel_launcher``) is put on ``JUPYTER_PATH`` for the duration.
    ``MPLBACKEND`` is set to ``mpl_backend``, or removed when None so that ipykernel uses its
    inline backend and figures appear in the notebook (a caller's ``MPLBACKEND=Agg``, as set
    by the test suite, would otherwise hide every plot). ``salt`` (the pseudonym salt) is passed
    as ``SEGKIT_SALT`` so the kernels pseudonymise exactly as the export's privacy check does,
    without the salt ever being written into the run folder.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    saved = {k: os.environ.get(k) for k in ("SEGKIT_QUIET", "JUPYTER_PATH", "MPLBACKEND", SALT_ENV)}
    os.environ["SEGKIT_QUIET"] = "1"
    if salt is not None:
        os.environ[SALT_ENV] = salt
    if mpl_backend is None:
        os.environ.pop("MPLBACKEND", None)
    else:
        os.environ["MPLBACKEND"] = mpl_backend
    tmp = None
    try:
        try:
            KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            tmp = tempfile.TemporaryDirectory(prefix="segkit-kernel-")
            spec_dir = Path(tmp.name) / "kernels" / name
            spec_dir.mkdir(parents=True)
            (spec_dir / "kernel.json").write_text(json.dumps({
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python (segkit, {sys.executable})", "language": "python"}))
            os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp.name, saved["JUPYTER_PATH"]) if p)
        yield name
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if tmp is not None:
            tmp.cleanup()


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in a notebook's cell tagged ``parameters``.

    Read with :mod:`ast` rather than papermill's inspection, which gives up on lines with more
    than one ``=`` (comments like ``# None = value from the config``).

    Raises
    ------
    ConfigError
        No ``parameters`` cell, or it is not valid Python.

    Examples
    --------
    >>> import tempfile
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
    ...     "run_dir = None  # None = interactive\\nbins: int | None = None", metadata={"tags": ["parameters"]})])
    >>> path = Path(tempfile.mkdtemp()) / "02_rfm.ipynb"; nbformat.write(nb, path)
    >>> sorted(declared_parameters(path))
    ['bins', 'run_dir']
    """
    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ConfigError(f"{notebook}: no cell is tagged 'parameters', so segkit cannot pass run_dir/config_path. "
                          "Tag the notebook's parameters cell (see docs/DEVELOPING.md).")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise ConfigError(f"{notebook}: the parameters cell is not valid Python (line {exc.lineno}: {exc.msg}).") from None
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def check_parameters(notebook: Path) -> set[str]:
    """:func:`declared_parameters`, requiring the core ``run_dir`` and ``config_path``."""
    names = declared_parameters(notebook)
    missing = [p for p in ("run_dir", "config_path") if p not in names]
    if missing:
        raise ConfigError(f"{notebook}: the parameters cell does not declare {', '.join(missing)}; without them the "
                          "notebook would not write into the run folder. Add `run_dir = None` and `config_path = None`.")
    return names


ENGINE_NAME = "segkit"


def register_engine() -> str:
    """Register (once) and return the papermill engine segkit runs notebooks with.

    It is papermill's nbclient engine with one change: nbclient mimics a front end for
    ``ipywidgets.Output`` and, after every output it captures, sends the widget's state back to
    the kernel on the shell channel while another coroutine is waiting on that channel for the
    cell's reply. Under load that reply can be missed and the run hangs forever with an idle
    kernel (jupyter/nbclient#312; seen here on the explorer cells). segkit's mimic keeps the
    captured outputs (so the HTML shows the widget's static view, not a stray copy of its first
    rendering) but never writes to the kernel — nothing in a batch run reads them back.
    """
    from nbclient.output_widget import OutputWidget
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    if ENGINE_NAME in papermill_engines._engines:
        return ENGINE_NAME

    class LocalOutputWidget(OutputWidget):
        def send(self, data=None, metadata=None, buffers=None) -> None:  # noqa: D102 - see docstring
            return None

    class SegkitNotebookClient(PapermillNotebookClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.widget_registry = {"@jupyter-widgets/output": {"OutputModel": LocalOutputWidget}}
            if self.km is not None:  # a kernel started ahead: note its peak memory after every cell
                km = self.km

                def note_peak_memory(**_: Any) -> None:
                    km.segkit_peak_memory_mb = kernel_peak_memory_mb(km) or getattr(km, "segkit_peak_memory_mb", None)

                self.on_cell_executed = note_peak_memory

    class SegkitEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            # As papermill's NBClientEngine, with SegkitNotebookClient.
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logging.getLogger("papermill"),
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
            )
            client = SegkitNotebookClient(nb_man, **final_kwargs)
            # A kernel started ahead (segkit.report.kernels) is not owned by nbclient, which
            # would leave it running; shut it down when the notebook is done, as for its own.
            return client.execute(cleanup_kc=True) if final_kwargs.get("km") is not None else client.execute()

    SegkitNotebookClient.output_widget_class = LocalOutputWidget  # for tests
    SegkitEngine.client_class = SegkitNotebookClient
    papermill_engines.register(ENGINE_NAME, SegkitEngine)
    return ENGINE_NAME


@contextlib.contextmanager
def quiet_papermill() -> Iterator[None]:
    """Silence papermill's own warnings (its parameter inspection; we check parameters with ast)."""
    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- failures
def _segkit_error_names() -> set[str]:
    names, todo = set(), [SegkitError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


#: What Spark says when its engine went away during a notebook (a Spark Connect server stopped, a cluster's
#: driver context shut down, the connection to the server lost): the machine's doing, not a bug of segkit.
SPARK_GONE_SIGNS: tuple[str, ...] = ("Cannot call methods on a stopped SparkContext", "SparkContext was shut down",
                                     "StatusCode.UNAVAILABLE", "failed to connect to all addresses")


def spark_engine_gone(evalue: str) -> str | None:
    """What to say when a notebook stopped because its Spark engine went away (:data:`SPARK_GONE_SIGNS`);
    None for any other failure.

    Examples
    --------
    >>> spark_engine_gone("(java.lang.IllegalStateException) Cannot call methods on a stopped SparkContext.")[:52]
    'The Spark engine stopped while this notebook ran (Ca'
    >>> spark_engine_gone("'x'") is None
    True
    """
    sign = next((s for s in SPARK_GONE_SIGNS if s in (evalue or "")), None)
    if sign is None:
        return None
    return (f"The Spark engine stopped while this notebook ran ({sign}): the Spark Connect server or the "
            "cluster went away, not a problem with your data. Start it again, then run segkit run again.")


def _first_line(source: str) -> str:
    return next((line.strip() for line in (source or "").splitlines() if line.strip()), "")


def _failure_from(exc: BaseException, notebook: str) -> tuple[Failure, str]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        tb = _ANSI.sub("", "\n".join(exc.traceback or []))
        # IPython names the notebook cell's frame "Cell In[N], line L" (the outermost frame first).
        m = re.search(r"Cell In\[\d+\], line (\d+)", tb)
        lines = (exc.source or "").splitlines()
        raising = lines[int(m.group(1)) - 1].strip() if m and 0 < int(m.group(1)) <= len(lines) else None
        return Failure(notebook, exc.cell_index, exc.exec_count, _first_line(exc.source), exc.ename,
                       str(exc.evalue), raising), tb
    import traceback

    tb = "".join(traceback.format_exception(exc))
    return Failure(notebook, -1, None, "(kernel / execution machinery)", type(exc).__name__, str(exc)), tb


def redact_terminal_text(redactor: IdRedactor, text: str) -> str:
    """``text`` (plain, possibly with ANSI colour codes, as in tracebacks) with raw ids replaced by
    ``redactor``; the colour codes are kept apart, so an id right after one is still found."""
    pieces, codes = _ANSI.split(text), _ANSI.findall(text)
    return "".join(redactor.text(piece) + code for piece, code in zip(pieces, codes + [""]))


def redact_texts(texts: Sequence[str], ids: Sequence[Any], salt: str) -> list[str]:
    """Plain texts (error messages, tracebacks) with raw ids replaced by their pseudonyms, as
    :class:`~segkit.report.export.IdRedactor` finds them; ANSI colour codes are kept apart.

    Examples
    --------
    >>> redact_texts(["DataError: \\x1b[1mC000007\\x1b[0m has no orders", "C000008"], ["C000007"], "segkit")
    ['DataError: \\x1b[1mc-e2967c7a92\\x1b[0m has no orders', 'C000008']
    """
    redactor = IdRedactor(ids, salt)
    return [redact_terminal_text(redactor, t) for t in texts]


def redact_text(text: str, ids: Sequence[Any], salt: str) -> str:
    """:func:`redact_texts` of one text."""
    return redact_texts([text], ids, salt)[0]


#: Output data kept as text in a notebook, where a raw id can show (text/html is HTML).
TEXT_MIMETYPES: tuple[str, ...] = ("text/plain", "text/html", "text/markdown")


def redact_notebook_outputs(nb: nbformat.NotebookNode, ids: Sequence[Any] | IdRedactor, salt: str = "") -> bool:
    """Replace raw ids in ``nb``'s outputs (errors, tracebacks, printed text, text/HTML data) in
    place — ``text/html`` as HTML (:meth:`IdRedactor.html`), the rest as plain text; True when
    anything changed. ``ids`` is the raw ids (with ``salt``) or a ready :class:`IdRedactor`.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
    ...     "error", ename="DataError", evalue="C000007 is a duplicate", traceback=["DataError: C000007"])])])
    >>> redact_notebook_outputs(nb, ["C000007"], "segkit"), nb.cells[0].outputs[0].evalue
    (True, 'c-e2967c7a92 is a duplicate')
    """
    redactor = ids if isinstance(ids, IdRedactor) else IdRedactor(ids, salt)
    changed = False

    def redact(container: Any, key: Any, as_html: bool = False) -> None:
        nonlocal changed
        value = container[key]
        old = "".join(value) if isinstance(value, list) else str(value)
        new = redactor.html(old) if as_html else redact_terminal_text(redactor, old)
        if new != old:
            container[key] = new
            changed = True

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                redact(output, "evalue")
                for i in range(len(output.get("traceback", []))):
                    redact(output["traceback"], i)
            elif output.get("output_type") == "stream":
                redact(output, "text")
            for mime in TEXT_MIMETYPES:
                if mime in output.get("data", {}):
                    redact(output["data"], mime, as_html=mime == "text/html")
    return changed


def _apply_umask(folder: Path) -> None:
    """Give the run folder the usual permissions (temp files/folders are created private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


# --------------------------------------------------------------------------- the run
class _Run:
    """State of one run being built (see the module docstring for the sequence)."""

    def __init__(self, options: RunOptions, notebooks_dir: Path, pipeline: Sequence[str],
                 echo: Callable[[str], None]):
        self.options = options
        self.notebooks_dir = Path(notebooks_dir)
        self.pipeline = list(pipeline)
        self.echo = (lambda _msg: None) if options.quiet else echo
        self.selected = resolve_only(options.only, self.pipeline)
        self.started_at = datetime.now(timezone.utc)
        self.records: list[NotebookRecord] = []
        self.warnings: list[str] = []
        self._ids_cache: tuple[tuple, list] | None = None
        self._warned_word_ids = False
        self._export_lock = threading.RLock()
        self._workers: int | None = None  # run.workers, fixed once the audit has chosen its engine

    # ---------------------------------------------------------------- setup
    def prepare(self, held: contextlib.ExitStack) -> None:
        """Effective config, notebooks and the run folder checked; lock taken (kept by ``held``);
        stale build folders removed; the build folder created. Nothing is written before every
        check has passed."""
        opts = self.options
        out_given = run_folder_path(opts.out) if opts.out else None
        reuse = out_given if (opts.only and out_given and out_given.is_dir()
                              and is_replaceable(out_given, self.pipeline)) else None
        self.cfg = effective_config(opts, reuse_dir=reuse, pipeline=self.pipeline)
        if self.options.only is None and self.cfg["run"].get("only"):
            self.selected = resolve_only(self.cfg["run"]["only"], self.pipeline)
        self.declared: dict[str, set[str]] = {}
        for name in self.selected:
            if not (self.notebooks_dir / f"{name}.ipynb").exists():
                raise ConfigError(f"Notebook {self.notebooks_dir / (name + '.ipynb')} does not exist. "
                                  f"Run segkit from a checkout that has notebooks/ (or restore the file).")
            self.declared[name] = check_parameters(self.notebooks_dir / f"{name}.ipynb")
        name = self.cfg["run"].get("name") or self.started_at.astimezone().strftime("%Y%m%d-%H%M%S")
        self.out = out_given or run_folder_path(Path("reports") / str(name))  # a link stays a link (refused)
        self.failed_dir = self.out.with_name(self.out.name + "-failed")
        self._check_out_folders()
        self.reuse = bool(opts.only or self.cfg["run"].get("only")) and self.out.exists()
        self.exporter = ReportExporter(include_code=bool(self.cfg["run"].get("include_code")))
        self.build = create_build_folder(self.out)  # also the check that the folder can be written
        try:
            held.enter_context(out_lock(self.out))
            self._check_out_folders()  # again, now that no other run can change them
            for stale in remove_stale_builds(self.out):
                self.echo(f"Removed {stale}: the build folder of a segkit run that is no longer running.")
            if self.reuse:
                shutil.copytree(self.out, self.build, dirs_exist_ok=True, symlinks=True)
                for stale in ("index.html", "run.json"):
                    (self.build / stale).unlink(missing_ok=True)
            write_marker(self.build, self.run_id)
            (self.build / "artifacts").mkdir(exist_ok=True)
            write_config(self.cfg, self.build / "config.yml")
        except OSError as exc:
            shutil.rmtree(self.build, ignore_errors=True)
            problem = environment_error(exc, self.out.parent)
            if problem is None:
                raise
            raise RunFolderError(f"Nothing was run. {problem}") from None
        except BaseException:
            shutil.rmtree(self.build, ignore_errors=True)
            raise

    @property
    def run_id(self) -> str:
        """This run's id in the folder marker (the random part of the build folder's name)."""
        return run_id_of(self.build)

    def _check_out_folders(self) -> None:
        """Refuse (:class:`RunFolderError`) an ``--out`` or ``<out>-failed`` that segkit may not replace."""
        data = self.cfg["data"]
        source = self.cfg.get("_source")
        if source and Path(source) == self.out / "config.yml":  # --only reusing the run's own config
            source = None
        protected = protected_paths(data, source)
        log_folders = [path for value in data.values() if (path := local_path(value)) is not None and path.is_dir()]
        for folder, what in ((self.out, "--out"), (self.failed_dir, "The folder for a failed run,")):
            if not folder.is_symlink():  # a link is refused as a link, wherever it points
                check_location(folder, what, protected, log_folders)
            check_replaceable(folder, what, self.pipeline)

    def previous_records(self) -> dict[str, dict]:
        path = self.out / "run.json"
        if not self.reuse or not path.exists():
            return {}
        try:
            return {n["name"]: n for n in json.loads(path.read_text()).get("notebooks", [])}
        except (ValueError, KeyError, TypeError):
            return {}

    # ---------------------------------------------------------------- per notebook
    def parameters_for(self, name: str) -> dict[str, Any]:
        values = {"run_dir": str(self.build), "config_path": str(self.build / "config.yml"),
                  "as_of": self.cfg["run"].get("as_of"), "seed": int(self.cfg["run"].get("seed", 42))}
        return {k: v for k, v in values.items() if k in self.declared[name] and v is not None}

    def skip_reason(self, name: str) -> str | None:
        table = REQUIRED_INPUTS.get(name)
        if table and not self.cfg["data"].get(table):
            return (f"Skipped: no {table} data. Give --{table} FILE (or data.{table} in the config) to "
                    f"run {name}.")
        return None

    def raw_ids(self) -> list:
        """Real customer ids known so far (customer_segments.csv and customers_clean), cached by mtime.

        Before the audit has written them — it failed, e.g. on duplicate ids, and its error names
        them — they are read from the input files (:meth:`input_ids`).
        """
        import pandas as pd

        files = [self.build / "artifacts" / CUSTOMER_SEGMENTS, self.build / "artifacts" / ARTIFACTS["customers_clean"].filename]
        key = tuple((str(f), f.stat().st_mtime_ns) for f in files if f.exists())
        if self._ids_cache is None or self._ids_cache[0] != key:
            ids: set = set()
            for f in files:
                if f.suffix == ".csv" and f.exists():
                    ids |= set(read_frame(f, usecols=["customer_id"], dtype={"customer_id": "string"})["customer_id"].dropna())
                elif f.exists():
                    ids |= set(pd.read_parquet(f, columns=["customer_id"])["customer_id"].dropna().astype(str))
            self._ids_cache = (key, sorted(ids) if key else self.input_ids())
        return self._ids_cache[1]

    def input_ids(self) -> list[str]:
        """The customer ids of the customers and transactions inputs (their ``customer_id`` column
        as the config maps it, read without the table checks: :func:`segkit.data.io.read_ids`).
        A file that cannot be read gives none: then the audit's error cannot name its ids either. A table
        or URI read by Spark (``engine.kind: spark``) is not read here: its ids are known only once the
        audit has written the clean tables."""
        from segkit.data.engine import input_files as log_files  # pandas/DuckDB: only when needed
        from segkit.data.engine import is_file_set
        from segkit.data.io import read_ids

        ids: set[str] = set()
        for table in ("customers", "transactions"):
            path = local_path(self.cfg["data"].get(table))  # a table or URI (Spark) is not read here
            if path is None:
                continue
            try:
                files = log_files(path)[0] if is_file_set(path) else [path]
                for file in files:
                    ids |= set(read_ids(file, table, self.cfg))
            except (SegkitError, OSError, ValueError, KeyError):
                continue
        return sorted(ids)

    def redactor(self) -> IdRedactor | None:
        """An :class:`IdRedactor` of the ids known so far, or None when ``privacy.pseudonymize_ids`` is off."""
        privacy = self.cfg.get("privacy") or {}
        if not privacy.get("pseudonymize_ids", True):
            return None
        return IdRedactor(self.raw_ids(), salt_for({"privacy": privacy}))

    def export(self, name: str, nb: nbformat.NotebookNode, record: NotebookRecord, failure: Failure | None) -> None:
        with self._export_lock:  # notebooks running side by side export from their own threads
            self._export(name, nb, record, failure)

    def _export(self, name: str, nb: nbformat.NotebookNode, record: NotebookRecord, failure: Failure | None) -> None:
        summary = None
        summary_path = self.build / "summaries" / f"{name}.json"  # stale copies were removed before running
        if summary_path.exists():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        shown = nbformat.from_dict(nb)
        shown.cells = [c for c in shown.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
        result = self.exporter.export(shown, self.build / f"{name}.html", summary=summary, failure=failure,
                                      raw_ids=self.raw_ids(), privacy=self.cfg.get("privacy"))
        record.html = f"{name}.html"
        record.redacted_ids = result.redacted_ids
        record.seconds = notebook_timings(nb, html_export=result.seconds)
        if result.redacted_ids:
            self.warnings.append(
                f"{name}.html showed {result.redacted_ids} raw customer id(s) outside shareable tables; they were "
                "replaced by pseudonyms in the HTML. Display tables through shareable() in the notebook.")
        self._warn_word_ids()

    def _warn_word_ids(self) -> None:
        """Warn once when customer ids are ordinary words: the HTML check replaces a table cell or a
        quoted value equal to one even where it means the word (see IdRedactor)."""
        privacy = self.cfg.get("privacy") or {}
        if self._warned_word_ids or not privacy.get("pseudonymize_ids", True):
            return
        words = sorted(i for i in scannable_ids(self.raw_ids()) if is_word_like(i))
        if words:
            self._warned_word_ids = True
            shown = ", ".join(map(repr, words[:5])) + (f" and {len(words) - 5} more" if len(words) > 5 else "")
            self.warnings.append(
                f"{len(words)} customer id(s) are ordinary words ({shown}). In the reports, a table cell or quoted "
                "value equal to one of them is shown as its pseudonym even where it means the word (e.g. a segment "
                "of that name); in prose the word is left alone. Ids with a digit or prefix (C000123) avoid this.")

    def run_notebook(self, name: str, kernel: str, km: Any = None) -> tuple[NotebookRecord, Failure | None, str]:
        """Run one notebook with papermill, in ``km`` (a kernel started ahead) when given.

        Returns its record, its failure (None when it succeeded) and the kernel's traceback. A
        KeyboardInterrupt is returned as a record with status ``interrupted``.
        """
        import papermill

        source = self.notebooks_dir / f"{name}.ipynb"
        target = self.build / f"{name}.ipynb"
        for stale in (target, self.build / f"{name}.html", self.build / "summaries" / f"{name}.json"):
            stale.unlink(missing_ok=True)
        params = self.parameters_for(name)
        record = NotebookRecord(name, "ok", ipynb=target.name,
                                parameters={k: v for k, v in params.items() if k not in ("run_dir", "config_path")})
        where = {"km": km} if km is not None else {"cwd": str(self.build)}
        try:
            papermill.execute_notebook(
                str(source), str(target), parameters=params, kernel_name=kernel, engine_name=register_engine(),
                progress_bar=False, start_timeout=KERNEL_START_TIMEOUT,
                # A safety net against a hung cell (a hang would otherwise block the run forever);
                # not a performance bound. run.cell_timeout seconds, null = no limit.
                execution_timeout=self.cfg["run"].get("cell_timeout"),
                extra_arguments=list(KERNEL_ARGUMENTS), **where,
            )
        except KeyboardInterrupt:
            record.status = "interrupted"
            return record, interrupted_failure(name), ""
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its notebook
            record.peak_memory_mb = getattr(km, "segkit_peak_memory_mb", None)
            failure, tb = _failure_from(exc, name)
            failure = Failure(**{**failure.__dict__, "evalue": self._user_paths(failure.evalue)})
            record.status = "failed"
            record.error = {"cell_index": failure.cell_index, "exec_count": failure.exec_count,
                            "cell": failure.first_line, "line": failure.raising_line,
                            "ename": failure.ename, "evalue": failure.evalue}
            return record, failure, tb
        record.peak_memory_mb = getattr(km, "segkit_peak_memory_mb", None)
        return record, None, ""

    def finish_notebook(self, name: str, outcome: tuple[NotebookRecord, Failure | None, str]
                        ) -> tuple[NotebookRecord, Failure | None, str]:
        """Export the executed notebook's HTML (with a banner when it failed or was interrupted).

        An export that refuses the notebook's content (e.g. a web image) fails the notebook.
        """
        record, failure, tb = outcome
        target = self.build / f"{name}.ipynb"
        if not target.exists():
            return record, failure, tb
        try:
            self.export(name, nbformat.read(target, as_version=4), record, failure)
        except SegkitError as exc:  # e.g. OfflineHTMLError: the notebook's content is at fault
            if failure is None:
                failure = Failure(name, -1, None, "(HTML export of the executed notebook)",
                                  type(exc).__name__, str(exc))
                record.status = "failed"
                record.error = {"cell": failure.first_line, "ename": failure.ename, "evalue": failure.evalue}
        except Exception:  # noqa: BLE001 - an interrupted notebook's partial HTML is a courtesy
            if record.status != "interrupted":
                raise
        return record, failure, tb

    def _user_paths(self, text: str) -> str:
        """Paths of the hidden build folder in a message, as the user should read them.

        The effective config becomes the user's ``--config`` file (that is what to edit); any
        other build path becomes ``--out`` (e.g. in "run 01_data_audit first … --out DIR").
        """
        source = self.cfg.get("_source")
        config = source or str(self.failed_dir / "config.yml")
        # segkit.data.io names the config file it read ("in config.yml"): that is the run's generated
        # one, which the user does not edit; name theirs, or say how to give one.
        text = text.replace("(in config.yml)", f"(in {source})" if source else "(in a config file passed with --config)")
        return text.replace(str(self.build / "config.yml"), config).replace(str(self.build), str(self.out))

    # ---------------------------------------------------------------- whole run
    def run(self) -> RunResult:
        with contextlib.ExitStack() as held:  # the lock on --out, released when the run is over
            self.prepare(held)
            try:
                return self._run_prepared()
            except OSError as exc:  # disk full, permission taken away during the run: not a bug
                problem = environment_error(exc, self.build)
                if problem is None:
                    raise
                shutil.rmtree(self.build, ignore_errors=True)
                raise OutputWriteError(f"{self._user_paths(str(problem))} {self.out} was left unchanged; the "
                                       "partial run was removed.", problem.path) from None

    def _run_prepared(self) -> RunResult:
        self.echo(f"segkit run: {len(self.selected)} notebook(s) → {self.out}")
        try:
            with kernel_environment(salt=salt_for(self.cfg)) as kernel, quiet_papermill():
                failure, tb, interrupted = self._run_notebooks(kernel, self.previous_records())
        except BaseException as exc:
            if environment_error(exc, self.build) is None:  # the machine's errors: run() removes the
                shutil.rmtree(self.build, ignore_errors=True)  # build after measuring the free space
            raise
        if interrupted:
            self._finish("interrupted", "Interrupted by the user (Ctrl-C).")
            raise RunInterrupted(self.out, self.failed_dir)
        for warning in self.warnings:
            self.echo(f"  ⚠ {warning}")
        if failure is not None:
            self._finish("failed", failure.describe())
            message = self._failure_message(failure)
            machine = self._machine_problem(failure) or spark_engine_gone(failure.evalue)
            if machine is not None:
                message += f"\n\n{machine}"
            raise NotebookFailedError(message, failure, self.failed_dir, traceback=tb,
                                      is_bug=failure.ename not in _segkit_error_names() and machine is None)
        record = self._finish("ok", None)
        self.echo(f"Reports: {self.out / 'index.html'}")
        return RunResult(self.out, record)

    def _machine_problem(self, failure: Failure) -> str | None:
        """What to say when a notebook stopped on an OS error of the machine (disk full, no
        permission) rather than a bug; None for any other failure."""
        m = _ERRNO.match(failure.evalue or "")
        if failure.ename not in ("OSError", "PermissionError", "IOError") or not m:
            return None
        code = int(m.group(1))
        if code not in ENVIRONMENT_ERRNOS:
            return None
        return environment_message(code, m.group(2), Path(m.group(3)) if m.group(3) else self.out)

    # ---------------------------------------------------------------- scheduling
    def _upstream(self, name: str, planned: Sequence[str]) -> list[str]:
        """Planned notebooks ``name`` must wait for: its :data:`UPSTREAM` entry, or every earlier
        notebook for a notebook segkit does not know (a custom pipeline runs in order)."""
        earlier = planned[:planned.index(name)]
        known = UPSTREAM.get(name)
        return list(earlier) if known is None else [n for n in earlier if n in known]

    def workers(self) -> int:
        """Notebooks run at once (``run.workers``): ``auto`` = 2 on a machine with 2+ cores,
        else 1. With the out-of-core engine (large inputs), one at a time: memory is the limit; on
        Spark too (each notebook's kernel is a Spark driver).

        Raises
        ------
        ConfigError
            A value that is not ``auto`` or a whole number ≥ 1.
        """
        if self._workers is not None:
            return self._workers
        value = self.cfg["run"].get("workers", "auto")
        if value in (None, "auto"):
            n = 2 if (os.cpu_count() or 1) >= 2 else 1
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            n = value
        else:
            raise ConfigError(f"run.workers = {short_repr(value)} is not valid; use auto or a whole number ≥ 1 "
                              "(notebooks run at once).")
        try:
            import fcntl  # noqa: F401 - customer_segments.csv updates need its lock to run side by side
        except ImportError:  # pragma: no cover - Windows
            return 1
        audit_path = self.build / "artifacts" / ARTIFACTS["audit_summary"].filename
        if audit_path.exists():  # the audit has chosen its engine: the answer no longer changes
            with contextlib.suppress(ValueError, OSError):
                if json.loads(audit_path.read_text()).get("engine") in ("duckdb", "spark"):
                    n = 1  # spark: each notebook's kernel is a Spark driver, which would share the cores
            self._workers = n
        return n

    def _job(self, name: str, kernel: str) -> NotebookJob:
        source = self.notebooks_dir / f"{name}.ipynb"
        return NotebookJob(name, lambda km: self.run_notebook(name, kernel, km), kernel, self.build,
                           modules=imported_modules(source), extra_arguments=KERNEL_ARGUMENTS,
                           startup_timeout=KERNEL_START_TIMEOUT,
                           finish=lambda outcome: self.finish_notebook(name, outcome))

    def _run_notebooks(self, kernel: str, previous: Mapping[str, dict]) -> tuple[Failure | None, str, bool]:
        """Run the selected notebooks, each as soon as its upstream notebooks have finished, at
        most :meth:`workers` at once, with the next notebooks' kernels started ahead
        (:class:`~segkit.report.kernels.NotebookJob`). Fills ``self.records`` in pipeline order.

        Returns the first failure in pipeline order (None if none), its traceback, and whether
        the run was interrupted.
        """
        records: dict[str, NotebookRecord] = {}
        planned: list[str] = []
        skipped: list[str] = []  # echoed once the notebooks before them have finished
        for name in self.pipeline:
            if name not in self.selected:
                records[name] = self._not_selected(name, previous.get(name), stale=bool(planned))
            elif reason := self.skip_reason(name):
                self._drop_outputs(name)
                records[name] = NotebookRecord(name, "skipped", reason)
                skipped.append(name)
            else:
                planned.append(name)

        def echo_skips(final: bool = False) -> None:
            for name in list(skipped):
                before = [n for n in planned if self.pipeline.index(n) < self.pipeline.index(name)]
                if final or all(n in results for n in before):
                    skipped.remove(name)
                    self.echo(f"  [{self.pipeline.index(name) + 1}/{len(self.pipeline)}] {name:<24} skipped  "
                              f"{records[name].reason}")

        jobs: dict[str, NotebookJob] = {}
        pending = list(planned)
        executed: set[str] = set()  # ran without error: the notebooks downstream may start
        results: dict[str, tuple[NotebookRecord, Failure | None, str]] = {}
        stop = interrupted = False
        try:
            echo_skips()
            while True:
                for name, job in jobs.items():
                    if job.started_at is None or name in results:
                        continue
                    if job.executed.is_set() and name not in executed:
                        outcome = job.outcome if job.error is None else None
                        if outcome is not None and outcome[1] is None:
                            executed.add(name)
                        else:  # failed or interrupted: start nothing more
                            stop = True
                    if job.done.is_set():
                        record, failure, tb = results[name] = self._job_result(job)
                        if record.status == "interrupted":
                            interrupted = stop = True
                        elif failure is not None:
                            stop = True
                        self.echo(f"  [{self.pipeline.index(name) + 1}/{len(self.pipeline)}] {name:<24} "
                                  f"{record.status:<8} {time.perf_counter() - job.started_at:6.1f} s")
                echo_skips()
                computing = [n for n, j in jobs.items() if j.started_at is not None and not j.executed.is_set()]
                if not stop:
                    workers = self.workers()
                    for name in list(pending):
                        if len(computing) >= workers:
                            break
                        if all(u in executed for u in self._upstream(name, planned)):
                            if name not in jobs:
                                jobs[name] = self._job(name, kernel)
                            pending.remove(name)
                            jobs[name].start()
                            computing.append(name)
                    # Start the next kernels ahead — one more than run at once — and one at a
                    # time, so that a kernel being prepared never slows the start of another.
                    warm = [n for n in pending if n in jobs]
                    starting = any(not j.ready.is_set() for j in jobs.values() if not j.done.is_set())
                    nxt = next((n for n in pending if n not in jobs), None)
                    if nxt is not None and not starting and len(computing) + len(warm) <= workers:
                        jobs[nxt] = self._job(nxt, kernel)
                # not yet recorded (a job finishing just now is recorded in the next round)
                unfinished = [j for n, j in jobs.items() if j.started_at is not None and n not in results]
                if not unfinished and (stop or not pending):
                    break
                if unfinished:
                    unfinished[0].done.wait(0.05)
                elif not computing:  # nothing runs and nothing could start: upstream never ran
                    break
            if not stop:
                echo_skips(final=True)
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt(jobs, results)
        finally:
            cancelled = [job for job in jobs.values() if job.started_at is None]
            for job in cancelled:
                job.cancel()
            for job in cancelled:  # their kernels are shut down before the run returns
                job.done.wait(KERNEL_SHUTDOWN_WAIT)
        if interrupted:  # a notebook stopped by Ctrl-C shows as interrupted, not failed
            for record, _, _ in results.values():
                if record.status == "failed" and (record.error or {}).get("ename") == "KeyboardInterrupt":
                    record.status = "interrupted"
        ran = {name: res[0] for name, res in results.items()}
        failed_at = next((n for n in planned if n in ran and ran[n].status == "failed"), None)
        stopped_at = next((n for n in planned if n in ran and ran[n].status in ("failed", "interrupted")), None)
        why = "Not run: the run was interrupted." if interrupted else "Not run: an earlier notebook failed."
        cut = self.pipeline.index(stopped_at) if stopped_at else len(self.pipeline)
        for i, name in enumerate(self.pipeline):
            if name in ran:
                records[name] = ran[name]
            elif name in planned or i > cut:
                records[name] = NotebookRecord(name, "not run", why)
        self.records = [records[n] for n in self.pipeline]
        if failed_at is None:
            return None, "", interrupted
        _, failure, tb = results[failed_at]
        return failure, tb, interrupted

    def _job_result(self, job: NotebookJob) -> tuple[NotebookRecord, Failure | None, str]:
        if job.error is not None:
            if isinstance(job.error, KeyboardInterrupt):
                return NotebookRecord(job.name, "interrupted"), interrupted_failure(job.name), ""
            raise job.error
        return job.result

    def _interrupt(self, jobs: Mapping[str, NotebookJob], results: dict) -> None:
        """Ctrl-C: interrupt the running notebooks' kernels, let them save what ran, and collect
        their records (a second Ctrl-C, or no reaction within :data:`INTERRUPT_GRACE` seconds,
        kills the kernels)."""
        running = [j for n, j in jobs.items() if n not in results and j.started_at is not None]
        for job in running:
            job.signal_kernel(signal.SIGINT)
        deadline = time.monotonic() + INTERRUPT_GRACE
        try:
            while any(not j.done.is_set() for j in running) and time.monotonic() < deadline:
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        for job in running:
            if not job.done.is_set():
                job.signal_kernel(signal.SIGKILL)
                job.done.wait(10)
            if job.done.is_set() and job.name not in results:
                with contextlib.suppress(BaseException):
                    results[job.name] = self._job_result(job)
            if job.name not in results:
                results[job.name] = (NotebookRecord(job.name, "interrupted"), interrupted_failure(job.name), "")

    def _not_selected(self, name: str, previous: dict | None, *, stale: bool) -> NotebookRecord:
        if (self.build / f"{name}.html").exists():
            note = "Reused from the previous run in this folder (not re-run)."
            if stale:
                note += " It ran before the notebooks re-run now; re-run it too to bring it up to date."
            rec = NotebookRecord(name, "reused", note, html=f"{name}.html",
                                 ipynb=f"{name}.ipynb" if (self.build / f"{name}.ipynb").exists() else None)
            rec.seconds = (previous or {}).get("seconds") or {}
            return rec
        return NotebookRecord(name, "not run", "Not selected with --only and not present from an earlier run.")

    def _drop_outputs(self, name: str) -> None:
        """Remove a skipped notebook's files left from an earlier run (so nothing stale is shown)."""
        for f in (self.build / f"{name}.ipynb", self.build / f"{name}.html", self.build / "summaries" / f"{name}.json"):
            f.unlink(missing_ok=True)
        for art in ARTIFACTS.values():
            if art.notebook == name:
                (self.build / "artifacts" / art.filename).unlink(missing_ok=True)

    def _failure_message(self, failure: Failure) -> str:
        where = f"in {failure.where}" if failure.exec_count is not None else failure.where
        kept = self.failed_dir / failure.notebook
        html = " and its HTML (error shown at the top)" if kept.with_suffix(".html").exists() else ""
        previous = (f"{self.out} (the previous run) was left unchanged." if self.out.exists()
                    else f"Nothing was written to {self.out}.")
        return (
            f"{failure.notebook} failed {where}:\n{failure.ename}: {failure.evalue}\n\n"
            f"The notebook executed until the error{html} is kept in {self.failed_dir}/ "
            f"({kept.name}.ipynb{', ' + kept.name + '.html' if html else ''}). {previous}"
        )

    def _finish(self, status: str, error: str | None) -> dict:
        """Write run.json and index.html into the build folder and move it into place."""
        audit_path = self.build / "artifacts" / ARTIFACTS["audit_summary"].filename
        audit = json.loads(audit_path.read_text()) if audit_path.exists() else None
        summaries = {}
        for rec in self.records:
            path = self.build / "summaries" / f"{rec.name}.json"
            if rec.status in ("ok", "reused", "failed") and path.exists():
                summaries[rec.name] = json.loads(path.read_text(encoding="utf-8"))
        record = {
            "status": status,
            "error": error,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": {"name": self.out.name, "out": str(self.out), "config": self.cfg.get("_source"),
                    "only": self.selected if self.options.only or self.cfg["run"].get("only") else None,
                    "include_code": bool(self.cfg["run"].get("include_code"))},
            "parameters": {"flags": {k: (str(v) if isinstance(v, Path) else v)
                                     for k, v in self.options.__dict__.items() if v is not None and k != "quiet"},
                           "config_file": self.cfg.get("_source"), "effective_config": "config.yml"},
            "as_of": (audit or {}).get("as_of") or self.cfg["run"].get("as_of"),
            "seed": int(self.cfg["run"].get("seed", 42)),
            "engine": engine_info(self.cfg, (audit or {}).get("engine")),
            "inputs": input_files(self.cfg["data"]),
            "versions": library_versions(),
            "notebooks": [r.as_dict() for r in self.records],
            "warnings": self.warnings,
        }
        segments = self.build / "artifacts" / CUSTOMER_SEGMENTS
        if segments.exists():
            record["outputs"] = {"customer_segments.csv": {k: v for k, v in file_info(segments).items() if k != "path"}}
        if status != "ok":
            self._redact_errors(record)
        atomic_write_text(self.build / "run.json", dumps_json(record))
        page = render_index(record, summaries, audit)
        self._write_index(page)
        self._relocate_notebooks(self.out if status == "ok" else self.failed_dir)
        write_marker(self.build, self.run_id, files=entries(self.build))
        _apply_umask(self.build)
        self._move_into_place(status)
        return record

    def _redact_errors(self, record: dict) -> None:
        """Raw customer ids in the error texts of ``record`` (run.json) and of the notebooks that
        failed or were interrupted (their ``.ipynb``), replaced by pseudonyms as in the HTML."""
        redactor = self.redactor()
        if redactor is None:
            return

        def redact(text: Any) -> Any:
            return redact_terminal_text(redactor, text) if isinstance(text, str) else text

        record["error"] = redact(record.get("error"))
        for entry in record["notebooks"]:
            if entry.get("error"):
                entry["error"] = {k: redact(v) for k, v in entry["error"].items()}
        for rec in self.records:
            path = self.build / f"{rec.name}.ipynb"
            if rec.status in ("failed", "interrupted") and path.exists():
                nb = nbformat.read(path, as_version=4)
                if redact_notebook_outputs(nb, redactor):
                    atomic_write_text(path, nbformat.writes(nb))

    def _write_index(self, page: str) -> None:
        """Write index.html after the same privacy and offline checks as the reports."""
        redactor = self.redactor()
        if redactor is not None:
            page = redactor.html(page)
        validate_offline_html(page, "index.html")
        atomic_write_text(self.build / "index.html", page)

    def _relocate_notebooks(self, final: Path) -> None:
        """Point the executed notebooks' run_dir/config_path at the folder they end up in."""
        for rec in self.records:
            path = self.build / f"{rec.name}.ipynb"
            if rec.status not in ("ok", "failed", "interrupted") or not path.exists():
                continue
            text = path.read_text(encoding="utf-8")
            if str(self.build) in text:
                atomic_write_text(path, text.replace(json.dumps(str(self.build))[1:-1], json.dumps(str(final))[1:-1]))

    def _move_into_place(self, status: str) -> None:
        target = self.out if status == "ok" else self.failed_dir
        trash = None
        try:  # checked before the run; again in case the folder was changed meanwhile
            check_replaceable(target, "--out" if status == "ok" else "The folder for a failed run,", self.pipeline)
        except RunFolderError as exc:
            raise RunFolderError(f"{exc} The new run was kept in {self.build}.") from None
        if target.exists():
            trash = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(target, trash)
        os.replace(self.build, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def run_pipeline(
    options: RunOptions,
    *,
    notebooks_dir: Path | None = None,
    pipeline: Sequence[str] = NOTEBOOKS,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Run the pipeline's notebooks into one run folder (see the module docstring).

    Parameters
    ----------
    options : RunOptions
        The ``segkit run`` flags.
    notebooks_dir : Path, optional
        Folder with ``<name>.ipynb`` for every notebook of ``pipeline`` (default: the
        project's ``notebooks/``).
    pipeline : sequence of str
        Notebook names in order (default :data:`segkit.steps.pipeline.NOTEBOOKS`).
    echo : callable
        Receives the progress lines (silenced by ``options.quiet``).

    Returns
    -------
    RunResult
        The run folder and the run record (``run.json``).

    Raises
    ------
    ConfigError, DataError
        Before anything runs: invalid flags/config, missing input files.
    NotebookFailedError
        A notebook stopped with an error; the partial run is in ``<out>-failed``.
    RunInterrupted
        Ctrl-C; the partial run is in ``<out>-failed``.
    """
    return _Run(options, notebooks_dir or default_notebooks_dir(), pipeline, echo).run()


def default_notebooks_dir() -> Path:
    """The project's ``notebooks/`` folder (the notebooks ``segkit run`` executes)."""
    return project_root() / "notebooks"
