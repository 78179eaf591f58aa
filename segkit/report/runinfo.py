"""What ``run.json`` records so a run can be trusted and repeated: inputs, versions, timings.

Examples
--------
>>> versions = library_versions()
>>> versions["segkit"] == __import__("segkit").__version__
True
"""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import nbformat

import segkit
from segkit.core.config import file_uri_path, redacted_master, source_scheme
from segkit.core.errors import DataError
from segkit.data.engine import EngineSettings, choose_engine, is_file_set
from segkit.data.engine import input_files as log_files

__all__ = ["KEY_LIBRARIES", "file_info", "library_versions", "engine_info", "notebook_timings", "input_info",
           "input_files"]

#: Distributions whose versions decide the results or the reports.
KEY_LIBRARIES: tuple[str, ...] = (
    "pandas", "numpy", "scipy", "scikit-learn", "kmodes", "statsmodels",
    "matplotlib", "seaborn", "pyarrow", "duckdb", "papermill", "nbconvert", "nbclient",
    "nbformat", "ipykernel", "ipywidgets",
)


def file_info(path: Path, chunk_size: int = 1 << 20) -> dict[str, Any]:
    """Absolute path, size in bytes and SHA-256 of a file.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as fh:
    ...     _ = fh.write(b"abc")
    >>> info = file_info(Path(fh.name)); os.unlink(fh.name)
    >>> info["size"], info["sha256"][:12]
    (3, 'ba7816bf8f01')
    """
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def library_versions() -> dict[str, str | None]:
    """Versions of Python, segkit and :data:`KEY_LIBRARIES` (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "segkit": segkit.__version__}
    for name in KEY_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def engine_info(config: Mapping[str, Any], audit_engine: str | None = None) -> dict[str, str | None]:
    """``run.json``'s ``engine``: how the steps after the audit read the order lines (``kind``: the
    audit's recorded choice ``audit_engine``, else :func:`segkit.data.engine.choose_engine` of
    ``config``); on Spark also ``spark_master`` (``engine.spark.master``, a token in it redacted:
    :func:`segkit.core.config.redacted_master`) and ``spark_version``, the
    version of the installed pyspark that drove the run (None when pyspark is not installed). For a Spark
    Connect ``sc://`` master, ``spark_version`` is the server's Spark (asked of the server: None when it no
    longer answers) and ``spark_client_version`` the installed pyspark's.

    Examples
    --------
    >>> engine_info({"engine": {"kind": "duckdb"}})
    {'kind': 'duckdb'}
    >>> info = engine_info({"engine": {"kind": "spark", "spark": {"master": "local[2]"}}})
    >>> info["kind"], info["spark_master"], info["spark_version"] == metadata.version("pyspark")
    ('spark', 'local[2]', True)
    >>> connect = engine_info({"engine": {"kind": "spark", "spark": {"master": "sc://localhost:1/;token=dapi1"}}})
    >>> connect["spark_master"], connect["spark_version"]  # nothing listens on port 1: no server version
    ('sc://localhost:1/;token=<redacted>', None)
    """
    kind = audit_engine or choose_engine(config)
    if kind != "spark":
        return {"kind": kind}
    try:
        version: str | None = metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        version = None
    from segkit.data.spark import connect_server_version, is_connect_master  # pyspark only on Spark

    master = EngineSettings.from_config(config).spark.master
    if version is not None and is_connect_master(master):  # a token in the address is not recorded
        return {"kind": kind, "spark_master": redacted_master(master), "spark_version": connect_server_version(master),
                "spark_client_version": version}
    return {"kind": kind, "spark_master": redacted_master(master), "spark_version": version}


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def notebook_timings(nb: nbformat.NotebookNode, html_export: float | None = None) -> dict[str, float | None]:
    """Seconds spent per phase, from papermill's timestamps in the executed notebook.

    ``kernel_start``: from papermill's start to the first cell starting (kernel launch and
    connection); ``compute``: the sum of the cells' durations; ``html_export``: as measured by
    the exporter; ``total``: papermill's duration plus the export.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook(metadata={"papermill": {
    ...     "start_time": "2024-01-01T00:00:00+00:00", "duration": 5.0}})
    >>> nb.cells = [nbformat.v4.new_code_cell("x", metadata={"papermill": {
    ...     "start_time": "2024-01-01T00:00:02+00:00", "duration": 2.5}})]
    >>> notebook_timings(nb, html_export=0.5)
    {'kernel_start': 2.0, 'compute': 2.5, 'html_export': 0.5, 'total': 5.5}
    """
    pm = nb.metadata.get("papermill", {})
    started = _parse(pm.get("start_time"))
    cell_meta = [c.metadata.get("papermill", {}) for c in nb.cells]
    first = next((_parse(m.get("start_time")) for m in cell_meta if m.get("start_time")), None)
    kernel_start = round((first - started).total_seconds(), 3) if started and first else None
    durations = [m.get("duration") for m in cell_meta if m.get("duration") is not None]
    compute = round(float(sum(durations)), 3) if durations else None
    total = pm.get("duration")
    if total is not None and html_export is not None:
        total = total + html_export
    return {
        "kernel_start": kernel_start,
        "compute": compute,
        "html_export": round(html_export, 3) if html_export is not None else None,
        "total": round(total, 3) if total is not None else None,
    }


def input_info(source: str | Path, file_set: bool = False) -> dict[str, Any]:
    """:func:`file_info` of one input; with ``file_set`` (the transactions: the only input that may
    be a folder or a glob of files, see :func:`segkit.data.engine.is_file_set`) and such a source,
    the given ``path``, the total ``size``, one entry per file under ``files``, and a ``sha256``
    over the files' names and hashes (it changes when any file is added, removed, renamed or edited).

    An existing file is always that one file, whatever characters its name holds. Never raises
    for the data: run.json is written after the notebooks ran, and an input that cannot be read
    then (moved or deleted during the run) is recorded with ``size`` and ``sha256`` None and the
    reason under ``error``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.csv").write_text("x\\n1\\n"); _ = (d / "b.csv").write_text("x\\n2\\n")
    >>> info = input_info(d, file_set=True)
    >>> info["size"], [Path(f["path"]).name for f in info["files"]], len(info["sha256"])
    (8, ['a.csv', 'b.csv'], 64)
    >>> _ = (d / "c[1].csv").write_text("x\\n3\\n"); Path(input_info(d / "c[1].csv", file_set=True)["path"]).name
    'c[1].csv'
    >>> input_info(d / "gone.csv")["error"]
    'file not found'

    A table or URI that Spark reads where it lives (``engine.kind: spark``) is recorded as given, with
    ``size`` and ``sha256`` None and why under ``not_hashed``: reading it to hash it would be a second pass
    over data that may be terabytes, on the machine running segkit. A ``file:`` URI is a local file,
    hashed as one and recorded under the URI as given:

    >>> input_info("table:main.sales.orders")["not_hashed"]
    'a table read by Spark where it lives: segkit run does not read it on this machine'
    >>> info = input_info((d / "a.csv").as_uri()); info["path"].startswith("file:///"), info["size"]
    (True, 4)
    """
    scheme = source_scheme(source)
    if scheme == "file":
        return {**input_info(file_uri_path(str(source)), file_set), "path": str(source)}
    if scheme is not None:
        what = "a table" if scheme == "table" else f"a URI ({scheme}:)"
        return {"path": str(source), "size": None, "sha256": None,
                "not_hashed": f"{what} read by Spark where it lives: segkit run does not read it on this machine"}
    path = Path(source)
    try:
        if not (file_set and is_file_set(path)):
            return file_info(path)
        files = [file_info(Path(f)) for f in log_files(path)[0]]
    except FileNotFoundError:
        return {"path": str(path), "size": None, "sha256": None, "error": "file not found"}
    except (OSError, DataError) as exc:
        return {"path": str(path), "size": None, "sha256": None, "error": str(exc)}
    manifest = "".join(f"{Path(f['path']).name}  {f['sha256']}\n" for f in files)
    return {"path": str(path), "size": sum(f["size"] for f in files),
            "sha256": hashlib.sha256(manifest.encode()).hexdigest(), "files": files}


def input_files(data: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """:func:`input_info` of each input table of the effective config (None when absent). The transactions may
    be a folder or a glob of files; on Spark every input may be a table or a URI, and a ``file:`` URI's folder
    or glob (hashed as the transactions' files are).

    Examples
    --------
    >>> input_files({"transactions": None})
    {'transactions': None}
    """
    return {table: (input_info(p, file_set=table == "transactions" or source_scheme(p) == "file") if p else None)
            for table, p in data.items()}
