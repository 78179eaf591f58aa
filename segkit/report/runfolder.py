"""Which folders ``segkit run`` may replace or remove, and the lock that keeps two runs apart.

A run is built in a hidden sibling of ``--out`` (``.<name>.building-XXXX``) and then replaces
``<out>`` (or ``<out>-failed``). Replacing means deleting what was there, so segkit does it only
for a folder it can prove it wrote:

- **what a run writes** (:func:`run_outputs`, :func:`is_run_output`): the pipeline's notebooks and
  their HTML, ``index.html``, ``run.json``, ``config.yml``, the marker, ``summaries/<notebook>.json``
  and the known artifacts, all under their fixed names; a Spark run's Parquet datasets
  (``artifacts/transactions_clean.parquet/``, ``customers_clean.parquet/``, ``campaign_clean.parquet/``,
  ``customer_segments.parquet/``) with their
  ``part-*.parquet`` files and Spark's ``_SUCCESS`` and ``.*.crc`` files, and its
  ``artifacts/scoring/`` files; plus Jupyter's ``.ipynb_checkpoints`` folders holding only
  ``*-checkpoint.*`` copies. A folder holding anything else is never replaced, whatever
  its marker or ``run.json`` says: both are plain files anyone can write, so they can narrow this
  list but never widen it;
- **marker**: every folder segkit builds holds :data:`MARKER` (``.segkit-run``), a small JSON
  with the segkit version, the run id, the building process (pid, host, start time) and, once
  the run is finished, the list of entries the run wrote. Such a folder is replaced only if
  every entry is both in that list and one a run writes: a note or a model the user put into
  a run folder is never deleted, nor is a notebook of the user's saved under a pipeline name
  the run did not write;
- **older run folders** (segkit before the marker): accepted when their ``run.json`` is
  segkit's and every entry is one a run writes;
- an empty folder (nothing to lose) or one that does not exist.

Anything else is refused with :class:`RunFolderError` (``segkit run`` exit code 2) before
anything is written. So are symbolic links, and — even when empty or marked — a folder that is
or contains the input files, the config file, the current folder, the home folder, the segkit
project or the filesystem root (:func:`check_location`).

A second ``segkit run`` into the same ``--out`` fails fast on :func:`out_lock`. Build folders
left by a killed run are removed by the next run into the same ``--out``
(:func:`remove_stale_builds`) when their marker shows that the process that built them is gone.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp()) / "run"
>>> folder.mkdir(); _ = (folder / "run.json").write_text("{}")
>>> write_marker(folder, "r1", files=entries(folder)); check_replaceable(folder, "--out")
>>> _ = (folder / "NOTES.md").write_text("mine")
>>> check_replaceable(folder, "--out")
Traceback (most recent call last):
...
segkit.report.runfolder.RunFolderError: --out .../run holds 1 entry that segkit did not write: NOTES.md. segkit replaces a run folder as a whole, so it leaves this one alone. Move those entries elsewhere, or choose another --out.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import segkit
from segkit.core.errors import ConfigError, SegkitError
from segkit.core.files import SPARK_PART_FILE
from segkit.steps.pipeline import (ARTIFACTS, CUSTOMER_SEGMENTS, CUSTOMER_SEGMENTS_DATASET, NOTEBOOKS,
                                   SPARK_SCORING_FILES, SPARK_SCORING_FOLDER)

__all__ = [
    "MARKER", "RunFolderError", "OutputWriteError", "ENVIRONMENT_ERRNOS", "write_marker", "read_marker",
    "entries", "run_outputs", "is_run_output", "run_folder_path", "check_replaceable", "is_replaceable",
    "protected_paths",
    "check_location", "out_lock",
    "run_id_of", "create_build_folder", "environment_message",
    "remove_stale_builds", "process_alive", "free_space", "environment_error",
]

#: File in every folder segkit builds: the proof that segkit wrote it.
MARKER = ".segkit-run"
#: Entries a run folder may gain without the run writing them (Jupyter's autosave copies).
TOLERATED = frozenset({".ipynb_checkpoints"})
#: OS errors that are the machine's doing (disk full, no permission, read-only), not a bug.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
SHOWN_ENTRIES = 5
#: Folders a Spark run writes as Parquet datasets (a variable number of files named by the Spark job).
SPARK_DATASETS = frozenset({f"artifacts/{ARTIFACTS['transactions_clean'].filename}/",
                            f"artifacts/{ARTIFACTS['customers_clean'].filename}/",
                            f"artifacts/{ARTIFACTS['campaign_clean'].filename}/",
                            f"artifacts/{CUSTOMER_SEGMENTS_DATASET}/"})
#: The files of such a folder: Spark's data files and ``_SUCCESS``, and Hadoop's ``.<name>.crc`` checksums.
SPARK_DATASET_FILE = re.compile(rf"(?P<dot>\.)?({SPARK_PART_FILE.pattern}|_SUCCESS)(?(dot)\.crc)")


class RunFolderError(ConfigError):
    """``--out`` (or ``<out>-failed``) cannot be used; nothing was written or removed."""


class OutputWriteError(SegkitError):
    """Writing the run failed because of the machine (disk full, no permission).

    Attributes
    ----------
    path : Path
        What could not be written.
    """

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


# --------------------------------------------------------------------------- processes
def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name in (…) may contain spaces


def process_identity() -> dict[str, Any]:
    """``pid``, ``host`` and ``started`` (see :func:`_process_start`) of this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid())}


def process_alive(pid: int, host: str | None, started: str | None = None) -> bool | None:
    """Whether the process that wrote a marker still runs; None when it cannot be told (another host).

    Examples
    --------
    >>> process_alive(os.getpid(), socket.gethostname())
    True
    >>> process_alive(os.getpid(), "another-host") is None
    True
    """
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    now = _process_start(int(pid))
    return not (started and now and started != now)


# --------------------------------------------------------------------------- marker
def write_marker(folder: Path, run_id: str, files: list[str] | None = None) -> None:
    """Write :data:`MARKER` into ``folder``: segkit version, run id, this process, the entries written.

    ``files`` is given when the run is finished (``None`` while it is being built).
    """
    record = {"segkit": segkit.__version__, "run_id": run_id, **process_identity(),
              "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if files is not None:
        record["files"] = sorted(set(files) | {MARKER})
    (Path(folder) / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` (None when absent, a link, or not segkit's)."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "segkit" in record and "run_id" in record else None


def entries(folder: Path) -> list[str]:
    """Every entry under ``folder`` (files, folders, links; links not followed), as relative POSIX
    paths, folders with a trailing ``/``; :data:`TOLERATED` folders are not looked into.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "artifacts").mkdir(); _ = (d / "artifacts" / "rfm.parquet").write_bytes(b"")
    >>> entries(d)
    ['artifacts/', 'artifacts/rfm.parquet']
    """
    folder = Path(folder)
    out: list[str] = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for d in list(dirs):
            path = Path(root) / d
            if path.is_symlink():  # os.walk does not descend into links; list them as entries
                out.append((rel / d).as_posix())
                dirs.remove(d)
            else:
                out.append((rel / d).as_posix() + "/")
                if d in TOLERATED:
                    dirs.remove(d)
        out += [(rel / f).as_posix() for f in files]
    return sorted(out)


def run_outputs(pipeline: Iterable[str] = NOTEBOOKS) -> frozenset[str]:
    """Every entry a run of ``pipeline`` can write, as :func:`entries` names them: the notebooks,
    their HTML and summaries, ``index.html``, ``run.json``, ``config.yml``, the marker and the
    known artifacts. Nothing else in a run folder is segkit's.

    Examples
    --------
    >>> outputs = run_outputs(["01_data_audit"])
    >>> "01_data_audit.html" in outputs, "summaries/01_data_audit.json" in outputs, "NOTES.md" in outputs
    (True, True, False)
    """
    names = set(pipeline)
    allowed = {"run.json", "index.html", "config.yml", "artifacts/", "summaries/", MARKER}
    allowed |= {f"{n}.{ext}" for n in names for ext in ("ipynb", "html")}
    allowed |= {f"summaries/{n}.json" for n in names}
    allowed |= {f"artifacts/{a.filename}" for a in ARTIFACTS.values()} | {f"artifacts/{CUSTOMER_SEGMENTS}"}
    allowed |= SPARK_DATASETS | {f"artifacts/{SPARK_SCORING_FOLDER}/"}
    allowed |= {f"artifacts/{SPARK_SCORING_FOLDER}/{name}" for name in SPARK_SCORING_FILES}
    return frozenset(allowed)


def is_run_output(entry: str, outputs: frozenset[str]) -> bool:
    """Whether ``entry`` (as :func:`entries` names it) is one a run writes: in ``outputs``
    (:func:`run_outputs`), or a file of a Spark run's Parquet dataset (:data:`SPARK_DATASETS`).

    Examples
    --------
    >>> outputs = run_outputs()
    >>> [is_run_output(f"artifacts/customer_segments.parquet/{name}", outputs) for name in
    ...  ("part-00000.parquet", "._SUCCESS.crc", ".part-00001-0c1d-c000.snappy.parquet.crc", "notes.txt", "sub/")]
    [True, True, True, False, False]
    """
    if entry in outputs:
        return True
    parent, _, name = entry.rpartition("/")
    return f"{parent}/" in SPARK_DATASETS and SPARK_DATASET_FILE.fullmatch(name) is not None


def _is_run_record(folder: Path) -> bool:
    """Whether ``folder``'s ``run.json`` looks like the record of a segkit run (segkit before the marker)."""
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and isinstance(record.get("versions"), dict) and "segkit" in record["versions"]
            and isinstance(record.get("notebooks"), list))


def _foreign_checkpoints(folder: Path, tolerated: str) -> list[str]:
    """Entries of the Jupyter checkpoint folder ``tolerated`` (relative to ``folder``) that are not
    Jupyter's ``<name>-checkpoint.<ext>`` copies (sub-folders, links, other files)."""
    out = []
    for path in sorted((folder / tolerated).iterdir()):
        if path.is_symlink() or not path.is_file() or "-checkpoint" not in path.name:
            out.append(f"{tolerated}{path.name}{'/' if path.is_dir() and not path.is_symlink() else ''}")
    return out


def _foreign(folder: Path, allowed: Callable[[str], bool]) -> list[str]:
    """Entries of ``folder`` that are not ``allowed`` (or are links), checkpoint folders aside
    when they hold only checkpoints and sit in a folder a run writes."""
    out = []
    for e in entries(folder):
        path = folder / e.rstrip("/")
        name = Path(e).name
        if name in TOLERATED and e.endswith("/") and (str(Path(e).parent) in (".", "") or
                                                      allowed(f"{Path(e).parent.as_posix()}/")):
            out += _foreign_checkpoints(folder, e)
        elif path.is_symlink() or not allowed(e):
            out.append(e)
    return out


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_ENTRIES])
    return shown + (f" (and {len(names) - SHOWN_ENTRIES} more)" if len(names) > SHOWN_ENTRIES else "")


def check_replaceable(folder: Path, what: str, pipeline: Iterable[str] = NOTEBOOKS) -> None:
    """Raise :class:`RunFolderError` unless segkit may replace ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : Path
        ``--out`` or ``<out>-failed`` as given (not resolved: a link must be seen as a link).
    what : str
        How the message names it (``"--out"``, ``"<out>-failed"``).
    pipeline : iterable of str
        The notebook names a run writes (default :data:`segkit.steps.pipeline.NOTEBOOKS`).
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise RunFolderError(f"{what} {folder} is a symbolic link (to {os.readlink(folder)}). segkit replaces its "
                             "run folder as a whole and does not follow or replace links: give a real folder.")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise RunFolderError(f"{what} {folder} is a file, not a folder. Choose a new folder for the run.")
    if not any(folder.iterdir()):
        return
    marker = read_marker(folder)
    outputs = run_outputs(pipeline)
    written: set[str] | None = None  # what the run wrote (its marker), among what a run can write
    if marker and isinstance(marker.get("files"), list):
        written = {f for f in marker["files"] if isinstance(f, str)} | {MARKER}
    elif not _is_run_record(folder):  # segkit before the marker: a segkit run.json and nothing a run does not write
        raise RunFolderError(
            f"{what} {folder} exists and is not a segkit run folder (it has no {MARKER} marker and no run.json "
            "of a segkit run). segkit replaces its run folder as a whole, so it only replaces folders it created. "
            "Choose a new or empty folder.")
    foreign = _foreign(folder, lambda e: is_run_output(e, outputs) and (written is None or e in written))
    if foreign:
        word = "entry" if len(foreign) == 1 else "entries"
        raise RunFolderError(
            f"{what} {folder} holds {len(foreign)} {word} that segkit did not write: {_listing(foreign)}. segkit "
            f"replaces a run folder as a whole, so it leaves this one alone. Move those entries elsewhere, or "
            "choose another --out.")


def is_replaceable(folder: Path, pipeline: Iterable[str] = NOTEBOOKS) -> bool:
    """:func:`check_replaceable` as a yes/no."""
    try:
        check_replaceable(folder, "folder", pipeline)
    except RunFolderError:
        return False
    return True


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def protected_paths(inputs: Mapping[str, Any], config_file: str | Path | None) -> dict[str, Path]:
    """Folders a run folder must never be or contain, with how a message names them.

    ``inputs`` are the effective config's data paths (absolute; a folder or a glob for a
    transaction log split into files; a ``file:`` URI, or a table or URI that is not on this machine).
    """
    from segkit.core.config import local_path, project_root

    out: dict[str, Path] = {}
    for table, value in inputs.items():
        local = local_path(value)  # a file: URI's path; a table or another URI is not on this machine
        if local is None:
            continue
        text = str(local)
        cut = min((i for i, ch in enumerate(text) if ch in "*?["), default=None)
        path = Path(text[:cut]) if cut is not None else Path(text)
        if cut is not None and not text[:cut].endswith(os.sep):
            path = path.parent
        out[f"the {table} input {value}"] = path.resolve()
    if config_file:
        out[f"the config file {config_file}"] = Path(config_file).resolve()
    out["the current folder"] = Path.cwd().resolve()
    out["your home folder"] = Path.home().resolve()
    out["the segkit project folder"] = project_root().resolve()
    out["the filesystem root"] = Path(Path.cwd().anchor).resolve()
    return out


def _location_error(what: str, folder: Path, verb: str, label: str) -> RunFolderError:
    return RunFolderError(f"{what} {folder} {verb} {label}. A run folder is replaced as a whole, so segkit never "
                          "writes it over inputs or other work: choose a folder of its own, e.g. reports/<name>.")


def run_folder_path(given: str | Path, what: str = "--out") -> Path:
    """``given`` as the absolute path of the folder a run replaces: ``~`` expanded, ``.``, ``..`` and
    links above the last component resolved; the last component itself is not followed, so a
    link given as the run folder is seen (and refused) as a link.

    Raises
    ------
    RunFolderError
        ``given`` is the filesystem root (a run folder needs a name).

    Examples
    --------
    >>> run_folder_path("/tmp/june/artifacts/..") == Path("/tmp/june").resolve()
    True
    >>> run_folder_path("/")
    Traceback (most recent call last):
    ...
    segkit.report.runfolder.RunFolderError: --out / is the filesystem root. A run folder is replaced as a whole, so segkit never writes it over inputs or other work: choose a folder of its own, e.g. reports/<name>.
    """
    path = Path(given).expanduser().absolute()
    if path.name in ("", ".", ".."):  # the folder is named by its parents: resolve it
        path = path.resolve()
    path = path.parent.resolve() / path.name
    if not path.name:
        raise _location_error(what, path, "is", "the filesystem root")
    return path


def check_location(folder: Path, what: str, protected: Mapping[str, Path], input_folders: Iterable[Path] = ()) -> None:
    """Raise :class:`RunFolderError` when ``folder`` is or contains a protected path (see
    :func:`protected_paths`), or lies inside one of ``input_folders`` (a transaction log split
    into files, whose folder is read as a whole).

    Examples
    --------
    >>> inputs = {"the transactions input /data/shop/t.csv": Path("/data/shop/t.csv")}
    >>> check_location(Path("/data/shop"), "--out", inputs)
    Traceback (most recent call last):
    ...
    segkit.report.runfolder.RunFolderError: --out /data/shop contains the transactions input /data/shop/t.csv. A run folder is replaced as a whole, so segkit never writes it over inputs or other work: choose a folder of its own, e.g. reports/<name>.
    """
    folder = Path(folder).resolve()
    for label, path in protected.items():
        if _is_within(path, folder):
            raise _location_error(what, folder, "is" if path == folder else "contains", label)
    for path in input_folders:
        if Path(path).resolve() in folder.parents:
            raise RunFolderError(f"{what} {folder} lies inside the input folder {path}: its files would be read "
                                 "as part of the input. Choose a folder outside it, e.g. reports/<name>.")


# --------------------------------------------------------------------------- lock and build folder
@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[Path]:
    """Hold an exclusive lock for runs into ``out``: ``flock`` on ``.<name>.lock`` beside it,
    removed again when the run is over. Where ``fcntl`` does not exist (Windows) this is a no-op.

    Raises
    ------
    RunFolderError
        Another process holds the lock (a run into the same folder is in progress).
    OSError
        The lock file cannot be created.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "june"
    >>> with out_lock(out) as lock:
    ...     with out_lock(out):
    ...         pass
    Traceback (most recent call last):
    ...
    segkit.report.runfolder.RunFolderError: Another segkit run is writing to .../june right now (pid ... on ...; lock .../.june.lock). Wait until it has finished, or choose another --out.
    """
    lock_path = Path(out).parent / f".{Path(out).name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield lock_path
        return
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunFolderError(
                f"Another segkit run is writing to {out} right now ({holder}; lock {lock_path}). Wait until it "
                "has finished, or choose another --out.") from None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break  # the file we locked is still the lock file (its holder may have just removed it)
        os.close(fd)
    try:
        identity = process_identity()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {identity['pid']} on {identity['host']}".encode(), 0)
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()  # still holding the lock: a run waiting on this file sees it gone
        os.close(fd)  # closing releases the lock


def _describe_os_error(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOTDIR or (exc.errno == errno.EEXIST and not path.is_dir()):
        return "a file is where a folder is expected"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{exc.strerror} ({free_space(path)})"
    return exc.strerror or str(exc)


def run_id_of(build: Path) -> str:
    """The id of the run built in ``build``: the random part of its name.

    Examples
    --------
    >>> run_id_of(Path("reports/.june.building-k3_x9a"))
    'k3_x9a'
    """
    return Path(build).name.rsplit("-", 1)[-1]


def create_build_folder(out: Path) -> Path:
    """Create ``out``'s parent if needed and the hidden build folder beside ``out``, with its marker.

    This is the writability check before anything runs.

    Raises
    ------
    RunFolderError
        The parent cannot be created or written (read-only, no permission, a file in the way,
        disk full): the message names the path.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else out.parent
        raise RunFolderError(f"Cannot write the run folder {out}: {where}: {_describe_os_error(exc, where)}. "
                             "Choose an --out in a folder you can write to.") from None
    try:
        write_marker(build, run_id_of(build))
    except OSError as exc:
        shutil.rmtree(build, ignore_errors=True)
        raise RunFolderError(f"Cannot write the run folder {out}: {build}: {_describe_os_error(exc, build)}. "
                             "Choose an --out in a folder you can write to.") from None
    return build


def remove_stale_builds(out: Path) -> list[Path]:
    """Remove the build folders of ``out`` (``.<name>.building-*``) whose process is gone.

    Call it holding :func:`out_lock`. A folder whose marker names a live process, another host
    or nothing readable (segkit before the marker) is kept.

    Returns
    -------
    list of Path
        The folders removed.
    """
    out = Path(out)
    prefix = f".{out.name}.building-"
    removed = []
    if not out.parent.is_dir():
        return removed
    for path in sorted(out.parent.iterdir()):
        if not path.name.startswith(prefix) or path.is_symlink() or not path.is_dir():
            continue
        marker = read_marker(path)
        if not marker or not isinstance(marker.get("pid"), int):
            continue
        if process_alive(marker["pid"], marker.get("host"), marker.get("started")) is False:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- environment errors
def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def free_space(path: Path) -> str:
    """``"<free> free of <total> on the disk of <folder>"`` for the nearest existing folder of ``path``.

    Examples
    --------
    >>> free_space(Path("/")).startswith(tuple("0123456789"))
    True
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return f"free space on the disk of {folder} unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)} on the disk of {folder}"


def environment_error(exc: BaseException, fallback: Path) -> OutputWriteError | None:
    """An :class:`OutputWriteError` for an OS error that is the machine's doing, else None.

    Examples
    --------
    >>> err = environment_error(OSError(errno.ENOSPC, "No space left on device", "/tmp/x.parquet"), Path("/tmp"))
    >>> str(err).startswith("Could not write /tmp/x.parquet: No space left on device (")
    True
    >>> environment_error(ValueError("x"), Path("/tmp")) is None
    True
    """
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    path = Path(exc.filename) if exc.filename else Path(fallback)
    return OutputWriteError(environment_message(exc.errno, exc.strerror or str(exc), path), path)


def environment_message(code: int, strerror: str, path: Path) -> str:
    """What to tell the user about an OS error ``code`` on ``path`` (no traceback: not a bug)."""
    if code in (errno.ENOSPC, errno.EDQUOT):
        advice = "Free some space (a run needs a few times the size of its inputs) or choose an --out on another disk."
    else:
        advice = "Check the permissions of that folder (and that its disk is not read-only), or choose another --out."
    return (f"Could not write {path}: {strerror} ({free_space(path)}). This is a problem of the machine, not of "
            f"segkit or your data. {advice}")
