"""``segkit run`` never deletes what it did not write; locks, stale builds, environment errors,
config values that would escape ``reports/`` or explode, raw ids in a failed run (issue 14).

Every test that points ``--out`` somewhere hashes the inputs and the user's own files before and
after. The notebooks are throwaway ones (tests/run_helpers.py), so a run takes seconds.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from segkit.cli import EXIT_NOTEBOOK, EXIT_OK, EXIT_USAGE, main
from segkit.report.runfolder import (
    MARKER,
    RunFolderError,
    check_location,
    check_replaceable,
    entries,
    out_lock,
    process_alive,
    protected_paths,
    remove_stale_builds,
    write_marker,
)
from segkit.steps.pipeline import NOTEBOOKS

from run_helpers import make_notebook, tiny_inputs

OPEN_OK = "x = 1"
#: 01 that writes customer_segments.csv, so the run knows the raw ids C000001/C000002.
AUDIT_WITH_IDS = ('seg = pd.DataFrame({"customer_id": ["C000001", "C000002"], "tier": ["gold", "silver"]})\n'
                  "ctx.update_customer_segments(seg)")
#: 02 that stops naming a raw id; the id is built at run time so the cell's source does not hold it.
RFM_NAMING_AN_ID = "raw = 'C00000' + '1'\nraise DataError(f'customer {raw} has an order dated 1800-01-01')"
RFM_DISK_FULL = ("raise OSError(errno.ENOSPC, 'No space left on device', str(ctx.artifacts_dir / 'rfm.parquet'))")


def tree_digest(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (links by target text), and every folder, by path."""
    out = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[str(path)] = "dir"
            else:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """Throwaway notebooks for the whole pipeline (01 and 02 as given per test, 03–05 trivial),
    which the CLI runs instead of notebooks/; cwd is a scratch folder."""
    folder = tmp_path / "notebooks"
    for name in NOTEBOOKS:
        make_notebook(folder, name, OPEN_OK)
    monkeypatch.setattr("segkit.report.runner.default_notebooks_dir", lambda: folder)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    def with_bodies(audit: str = OPEN_OK, rfm: str = OPEN_OK) -> Path:
        make_notebook(folder, "01_data_audit", audit)
        make_notebook(folder, "02_rfm", "import errno\n" + rfm)
        return folder

    return with_bodies


@pytest.fixture
def data(tmp_path):
    """Two small input files in ``tmp_path/data``."""
    return tiny_inputs(tmp_path / "data")


def run_cli(data: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["run", "--transactions", str(data["transactions"]), "--out", str(out), "--quiet", *extra])


def leftovers(folder: Path) -> list[str]:
    """Hidden build, trash and lock files segkit may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if re.search(r"\.(building-|old-|lock$)", p.name))


# --------------------------------------------------------------------------- folders segkit did not write
def test_the_issue_reproduction_a_folder_with_artifacts_is_not_taken_for_a_run(tmp_path, notebooks, capsys):
    """mkdir -p p/artifacts p/src; echo n > p/NOTES.md; segkit run --out p → exit 2, all still there."""
    notebooks()
    p = tmp_path / "p"
    (p / "artifacts").mkdir(parents=True)
    (p / "src").mkdir()
    (p / "NOTES.md").write_text("n\n")
    (p / "artifacts" / "model.bin").write_bytes(b"\x00weights")
    before = tree_digest(p, tmp_path / "notebooks")
    assert main(["run", "--out", str(p)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {p} exists and is not a segkit run folder (it has no {MARKER} marker" in err
    assert "Traceback" not in err
    assert tree_digest(p, tmp_path / "notebooks") == before
    assert (p / "NOTES.md").read_text() == "n\n" and (p / "artifacts" / "model.bin").exists() and (p / "src").is_dir()
    assert leftovers(tmp_path) == []


def test_the_data_folder_with_an_empty_artifacts_folder_is_refused(tmp_path, notebooks, data, capsys):
    notebooks()
    (tmp_path / "data" / "artifacts").mkdir()
    before = tree_digest(tmp_path / "data")
    assert run_cli(data, tmp_path / "data") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'data'} contains the transactions input {data['transactions']}" in err
    assert tree_digest(tmp_path / "data") == before
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "data") == []


@pytest.mark.parametrize("where", ["config folder", "parent of the data", "current folder"])
def test_a_folder_holding_the_inputs_the_config_or_the_current_folder_is_refused(tmp_path, notebooks, data, capsys,
                                                                                 where):
    notebooks()
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "shop.yml"
    config.write_text(f"data: {{transactions: {data['transactions']}}}\n")
    out = {"config folder": tmp_path / "conf", "parent of the data": tmp_path, "current folder": Path.cwd()}[where]
    before = tree_digest(tmp_path / "data", tmp_path / "conf")
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    label = {"config folder": f"contains the config file {config}",
             "parent of the data": f"contains the transactions input {data['transactions']}",
             "current folder": "is the current folder"}[where]
    assert f"--out {out}" in err and label in err and "A run folder is replaced as a whole" in err
    assert tree_digest(tmp_path / "data", tmp_path / "conf") == before


def test_a_symbolic_link_as_out_is_refused_and_its_target_kept(tmp_path, notebooks, data, capsys):
    notebooks()
    assert run_cli(data, tmp_path / "real", "--only", "data_audit") == EXIT_OK
    (tmp_path / "link").symlink_to(tmp_path / "real")
    before = tree_digest(tmp_path / "real", tmp_path / "data")
    assert run_cli(data, tmp_path / "link", "--only", "data_audit") == EXIT_USAGE
    assert f"--out {tmp_path / 'link'} is a symbolic link (to {tmp_path / 'real'})" in capsys.readouterr().err
    assert tree_digest(tmp_path / "real", tmp_path / "data") == before and (tmp_path / "link").is_symlink()


def test_a_run_folder_with_a_file_the_user_added_is_not_replaced(tmp_path, notebooks, data, capsys):
    notebooks()
    out = tmp_path / "run"
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK
    assert json.loads((out / MARKER).read_text())["files"] == sorted(entries(out))
    (out / "NOTES.md").write_text("my conclusions")
    (out / "artifacts" / "model.bin").write_bytes(b"mine")
    before = tree_digest(out, tmp_path / "data")
    assert run_cli(data, out, "--only", "data_audit") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {out} holds 2 entries that segkit did not write: NOTES.md, artifacts/model.bin." in err
    assert tree_digest(out, tmp_path / "data") == before
    (out / "NOTES.md").unlink()
    (out / "artifacts" / "model.bin").unlink()
    inputs = tree_digest(tmp_path / "data")
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK  # segkit's own run folder is replaced
    assert tree_digest(tmp_path / "data") == inputs


def test_a_user_folder_where_the_failed_run_would_go_is_refused_before_running(tmp_path, notebooks, data, capsys):
    notebooks()
    (tmp_path / "run-failed").mkdir()
    (tmp_path / "run-failed" / "draft.docx").write_bytes(b"draft")
    before = tree_digest(tmp_path / "run-failed", tmp_path / "data")
    assert run_cli(data, tmp_path / "run", "--only", "data_audit") == EXIT_USAGE
    assert (f"The folder for a failed run, {tmp_path / 'run-failed'} exists and is not a segkit run folder"
            in capsys.readouterr().err)
    assert tree_digest(tmp_path / "run-failed", tmp_path / "data") == before and not (tmp_path / "run").exists()


def older_run_folder(folder: Path, extra: str | None = None) -> Path:
    """A run folder as segkit wrote it before the marker (run.json, index, notebooks, artifacts)."""
    (folder / "artifacts").mkdir(parents=True)
    (folder / "summaries").mkdir()
    (folder / "run.json").write_text(json.dumps({"status": "ok", "versions": {"segkit": "0.9.0"},
                                                 "notebooks": [{"name": "01_data_audit", "status": "ok"}]}))
    for name in ("index.html", "config.yml", "01_data_audit.html", "01_data_audit.ipynb", "summaries/01_data_audit.json"):
        (folder / name).write_text("old")
    (folder / "artifacts" / "customer_segments.csv").write_text("customer_id,tier\nC000009,gold\n")
    if extra:
        (folder / extra).write_text("the user's")
    return folder


def test_a_run_folder_of_an_older_segkit_is_replaced_only_when_it_holds_nothing_else(tmp_path):
    check_replaceable(older_run_folder(tmp_path / "old"), "--out")
    with pytest.raises(RunFolderError, match=r"holds 1 entry that segkit did not write: artifacts/model\.bin\."):
        check_replaceable(older_run_folder(tmp_path / "old2", "artifacts/model.bin"), "--out")
    foreign = older_run_folder(tmp_path / "old3")
    (foreign / "run.json").write_text(json.dumps({"status": "ok"}))  # not segkit's run.json
    with pytest.raises(RunFolderError, match="is not a segkit run folder"):
        check_replaceable(foreign, "--out")
    link = older_run_folder(tmp_path / "old4")
    (link / "artifacts" / "rfm.parquet").symlink_to(tmp_path / "old2" / "artifacts" / "model.bin")
    with pytest.raises(RunFolderError, match=r"did not write: artifacts/rfm\.parquet\."):
        check_replaceable(link, "--out")


def spark_run_folder(folder: Path, extra: str | None = None) -> Path:
    """A Spark run's folder as the run marks it: its Parquet datasets as Spark writes them (parts named by
    the job, ``_SUCCESS``, Hadoop's ``.crc`` checksums) and ``artifacts/scoring/``; ``extra`` the user's."""
    older_run_folder(folder)
    art = folder / "artifacts"
    for dataset in ("transactions_clean.parquet", "customer_segments.parquet"):
        (art / dataset).mkdir()
        for name in ("part-00000-2f1c9e04-6b1e-4a4c-9d6e-3f4d1b2a7c10-c000.snappy.parquet", "part-00001.parquet",
                     "_SUCCESS"):
            (art / dataset / name).write_text("x")
            (art / dataset / f".{name}.crc").write_text("c")
    (art / "scoring").mkdir()
    for name in ("rfm_model.json", "stage_thresholds.json", "lifecycle_inputs.parquet"):
        (art / "scoring" / name).write_text("x")
    if extra:
        (folder / extra).write_text("the user's")
    write_marker(folder, "r1", files=entries(folder))  # a marker listing even the user's file
    return folder


@pytest.mark.parametrize("extra", ["artifacts/customer_segments.parquet/notes.txt", "artifacts/scoring/model.bin",
                                   "artifacts/transactions_clean.parquet/part-00002-mine.csv"])
def test_a_spark_run_folder_can_be_run_into_again_but_not_with_a_file_of_the_users_in_it(tmp_path, extra):
    """Before this, the parts of a Spark run's datasets and artifacts/scoring/ were taken for the user's:
    a second segkit run (or --only) into the same --out was refused."""
    check_replaceable(spark_run_folder(tmp_path / "run"), "--out")
    with pytest.raises(RunFolderError, match=rf"holds 1 entry that segkit did not write: {re.escape(extra)}\. "):
        check_replaceable(spark_run_folder(tmp_path / "mine", extra), "--out")


def test_an_older_run_folder_is_replaced_by_a_run(tmp_path, notebooks, data):
    notebooks()
    out = older_run_folder(tmp_path / "run")
    before = tree_digest(tmp_path / "data")
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK
    assert (out / MARKER).exists() and (out / "01_data_audit.html").read_text() != "old"
    assert tree_digest(tmp_path / "data") == before and leftovers(tmp_path) == []


def test_protected_paths_cover_the_folder_of_a_glob_and_home(tmp_path):
    protected = protected_paths({"transactions": str(tmp_path / "exports" / "2024-*.parquet"), "customers": None},
                                config_file=None)
    assert protected[f"the transactions input {tmp_path / 'exports' / '2024-*.parquet'}"] == tmp_path / "exports"
    assert protected["your home folder"] == Path.home().resolve()
    with pytest.raises(RunFolderError, match="is your home folder"):
        check_location(Path.home(), "--out", protected)
    with pytest.raises(RunFolderError, match="^--out / is the filesystem root"):
        check_location(Path("/"), "--out", {"the filesystem root": protected["the filesystem root"]})
    with pytest.raises(RunFolderError, match="lies inside the input folder"):
        check_location(tmp_path / "exports" / "run", "--out", {}, [tmp_path / "exports"])
    check_location(tmp_path / "reports" / "june", "--out", protected, [tmp_path / "exports"])


# --------------------------------------------------------------------------- lock and stale builds
def test_a_second_run_into_the_same_out_fails_fast_while_one_is_running(tmp_path, notebooks, data, capsys):
    notebooks()
    out = tmp_path / "run"
    with out_lock(out) as lock:  # what a running `segkit run` into out holds
        assert lock == tmp_path / ".run.lock"
        assert run_cli(data, out, "--only", "data_audit") == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"Another segkit run is writing to {out} right now (pid {os.getpid()} on " in err
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".building-" in p.name] == []
    assert not lock.exists()  # released and removed
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK
    assert leftovers(tmp_path) == []


def test_the_lock_of_another_process_is_seen(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from pathlib import Path; from segkit.report.runfolder import out_lock\n"
            f"with out_lock(Path({str(out)!r})):\n    print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"pid {holder.pid} on {re.escape(socket.gethostname())}"):
            with out_lock(out):
                pass
    finally:
        holder.communicate("")
    with out_lock(out):
        pass


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_build_folders_of_dead_runs_are_removed_and_of_live_ones_kept(tmp_path, notebooks, data, capsys):
    notebooks()
    dead, live, unknown, elsewhere = (tmp_path / f".run.building-{k}" for k in ("dead01", "live01", "old01", "far01"))
    for folder in (dead, live, unknown, elsewhere):
        (folder / "artifacts").mkdir(parents=True)
        (folder / "artifacts" / "rfm.parquet").write_bytes(b"partial")
    write_marker(live, "live01")  # this process: alive
    pid = dead_pid()
    (dead / MARKER).write_text(json.dumps({"segkit": "1", "run_id": "dead01", "pid": pid,
                                           "host": socket.gethostname(), "started": None}))
    (elsewhere / MARKER).write_text(json.dumps({"segkit": "1", "run_id": "far01", "pid": pid,
                                                "host": "another-host", "started": None}))
    assert process_alive(pid, socket.gethostname()) is False
    before = tree_digest(tmp_path / "data")
    assert main(["run", "--transactions", str(data["transactions"]), "--out", str(tmp_path / "run"),
                 "--only", "data_audit"]) == EXIT_OK
    assert f"Removed {dead}: the build folder of a segkit run that is no longer running." in capsys.readouterr().out
    assert not dead.exists() and live.exists() and unknown.exists() and elsewhere.exists()
    assert tree_digest(tmp_path / "data") == before


def test_remove_stale_builds_ignores_other_names_and_reused_pids(tmp_path):
    other = tmp_path / ".runs.building-x1"  # another --out whose name starts the same
    reused = tmp_path / ".run.building-x2"  # this pid, but a different process start time
    for folder in (other, reused):
        folder.mkdir()
    (other / MARKER).write_text(json.dumps({"segkit": "1", "run_id": "x1", "pid": dead_pid(),
                                            "host": socket.gethostname()}))
    (reused / MARKER).write_text(json.dumps({"segkit": "1", "run_id": "x2", "pid": os.getpid(),
                                             "host": socket.gethostname(), "started": "1"}))
    assert remove_stale_builds(tmp_path / "run") == [reused]
    assert other.exists() and not reused.exists()


# --------------------------------------------------------------------------- the machine, not a bug
def test_a_file_where_the_out_parent_should_be_is_exit_2_with_the_path(tmp_path, notebooks, data, capsys):
    notebooks()
    (tmp_path / "blocker").write_text("a file")
    assert run_cli(data, tmp_path / "blocker" / "run") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"Cannot write the run folder {tmp_path / 'blocker' / 'run'}: " in err
    assert "a file is where a folder is expected" in err and "Traceback" not in err
    assert (tmp_path / "blocker").read_text() == "a file"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_out_parent_is_exit_2_before_anything_runs(tmp_path, notebooks, data, capsys, monkeypatch, code):
    """Tests run as root, whom permissions do not stop: the read-only folder is simulated by
    making every folder creation under it fail as the kernel would."""
    notebooks()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(readonly)):
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    assert run_cli(data, readonly / "run") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"segkit: Cannot write the run folder {readonly / 'run'}: {readonly}/.run.building-" in err
    assert os.strerror(code) in err and "Traceback" not in err and "bug" not in err
    assert list(readonly.iterdir()) == []


def test_a_full_disk_in_a_notebook_is_exit_1_with_the_path_and_free_space(tmp_path, notebooks, data, capsys):
    notebooks(rfm=RFM_DISK_FULL)
    out = tmp_path / "run"
    assert run_cli(data, out, "--only", "data_audit,rfm") == EXIT_NOTEBOOK
    err = capsys.readouterr().err
    assert f"Could not write {out / 'artifacts' / 'rfm.parquet'}: No space left on device (" in err
    assert re.search(r"\d+(\.\d)? [KMGT]?B free of \d+(\.\d)? [KMGT]?B on the disk of ", err)
    assert "not of segkit or your data" in err and "This is a bug" not in err and "Traceback" not in err


def test_a_full_disk_while_segkit_writes_is_exit_1_and_leaves_out_unchanged(tmp_path, notebooks, data, capsys,
                                                                           monkeypatch):
    notebooks()
    out = tmp_path / "run"
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK
    before = tree_digest(out, tmp_path / "data")
    from segkit.report import runner

    real_write = runner.atomic_write_text

    def write(path, text):
        if Path(path).name == "run.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, text)

    monkeypatch.setattr(runner, "atomic_write_text", write)
    assert run_cli(data, out, "--only", "data_audit") == EXIT_NOTEBOOK
    err = capsys.readouterr().err
    assert f"Could not write {out / 'run.json'}: No space left on device (" in err and " free of " in err
    assert f"{out} was left unchanged; the partial run was removed." in err and "Traceback" not in err
    assert tree_digest(out, tmp_path / "data") == before and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- config values
@pytest.mark.parametrize("name", ["../../../x", "a/b", "a\\\\b", ".hidden", "..", "x\\ty", " padded"])
def test_run_name_must_be_one_folder_name(tmp_path, notebooks, data, capsys, name):
    notebooks()
    config = tmp_path / "shop.yml"
    config.write_text(f'data: {{transactions: {data["transactions"]}}}\nrun: {{name: "{name}"}}\n')
    assert main(["run", "--config", str(config), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"segkit: run.name = {json.loads(chr(34) + name + chr(34))!r} in {config} is not a folder "
                          "name: ")
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "data", "notebooks", "shop.yml"]
    assert list((tmp_path / "cwd").iterdir()) == []


def test_a_yaml_alias_bomb_in_run_only_is_refused_with_a_short_message(tmp_path, notebooks, data, capsys):
    notebooks()
    levels = ["    - &l0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"    - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 8)]  # 9**8 values
    config = tmp_path / "bomb.yml"
    config.write_text(f"data: {{transactions: {data['transactions']}}}\nrun:\n  only:\n" + "\n".join(levels) + "\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"segkit: Config file {config} holds more than 100,000 values once its YAML aliases")
    assert len(err) < 400 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("only, shown", [(7, "run.only in {config} = 7 is not a list of notebook names"),
                                         (["x" * 5000], "run.only in {config}: unknown notebook(s) 'xxxx")])
def test_a_wrong_run_only_is_named_with_a_short_value(tmp_path, notebooks, data, capsys, only, shown):
    notebooks()
    config = tmp_path / "shop.yml"
    config.write_text(json.dumps({"data": {"transactions": str(data["transactions"])}, "run": {"only": only}}))
    assert main(["run", "--config", str(config), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert shown.format(config=config) in err and len(err) < 600


# --------------------------------------------------------------------------- privacy of a failed run
def test_a_failed_run_keeps_no_raw_id_in_run_json_or_the_failed_notebook(tmp_path, notebooks, data, capsys):
    notebooks(audit=AUDIT_WITH_IDS, rfm=RFM_NAMING_AN_ID)
    out = tmp_path / "run"
    assert run_cli(data, out, "--only", "data_audit,rfm") == EXIT_NOTEBOOK
    failed = tmp_path / "run-failed"
    html = (failed / "02_rfm.html").read_text()
    pseudonym = re.search(r"customer (c-[0-9a-f]{10}) has an order dated 1800-01-01", html).group(1)
    record = json.loads((failed / "run.json").read_text())
    assert f"customer {pseudonym} has an order" in record["error"]
    assert record["notebooks"][1]["error"]["evalue"] == f"customer {pseudonym} has an order dated 1800-01-01"
    notebook = (failed / "02_rfm.ipynb").read_text()
    assert f"customer {pseudonym} has an order" in notebook
    for text in ((failed / "run.json").read_text(), notebook):
        assert "C000001" not in text


# --------------------------------------------------------------------------- forged markers (issue 14, review)
def forged_run_folder(folder: Path, files: list[str]) -> Path:
    """The tester's reproduction: the user's files plus a hand-written marker that lists them."""
    (folder / "src").mkdir(parents=True)
    (folder / "NOTES.md").write_text("notes\n")
    (folder / "src" / "a.py").write_text("c\n")
    (folder / "thesis.docx").write_text("t\n")
    (folder / MARKER).write_text(json.dumps({"segkit": "0.0.1", "run_id": "whatever", "files": files}))
    return folder


def test_a_hand_written_marker_listing_the_users_files_does_not_make_them_replaceable(tmp_path, notebooks, data,
                                                                                    capsys):
    notebooks()
    forged = forged_run_folder(tmp_path / "forged", ["NOTES.md", "src/", "src/a.py", "thesis.docx"])
    before = tree_digest(forged, tmp_path / "data")
    assert run_cli(data, forged, "--only", "data_audit") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--out {forged} holds 4 entries that segkit did not write: NOTES.md, src/, src/a.py, thesis.docx." in err
    assert tree_digest(forged, tmp_path / "data") == before and leftovers(tmp_path) == []


def test_a_marker_can_only_narrow_what_a_run_writes(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("run.json", "01_data_audit.html", "02_rfm.ipynb"):
        (folder / name).write_text("x")
    write_marker(folder, "r1", files=["run.json", "01_data_audit.html"])
    # 02_rfm.ipynb is a run output, but this run did not write it: a notebook the user saved there
    with pytest.raises(RunFolderError, match=r"holds 1 entry that segkit did not write: 02_rfm\.ipynb\."):
        check_replaceable(folder, "--out")
    write_marker(folder, "r1", files=["run.json", "01_data_audit.html", "02_rfm.ipynb"])
    check_replaceable(folder, "--out")


def test_a_copied_run_json_cannot_name_the_users_files_as_notebooks(tmp_path):
    folder = older_run_folder(tmp_path / "old")
    record = json.loads((folder / "run.json").read_text())
    record["notebooks"] += [{"name": "thesis"}, {"name": "../x"}]
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "thesis.html").write_text("my thesis")
    (folder / "summaries" / "thesis.json").write_text("{}")
    with pytest.raises(RunFolderError, match=r"holds 2 entries that segkit did not write: summaries/thesis\.json, "
                                             r"thesis\.html\."):
        check_replaceable(folder, "--out")
    check_replaceable(folder, "--out", pipeline=[*NOTEBOOKS, "thesis"])  # a custom pipeline's own notebook


def test_jupyter_checkpoint_folders_may_hold_only_checkpoints(tmp_path):
    folder = older_run_folder(tmp_path / "old")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "01_data_audit-checkpoint.ipynb").write_text("{}")
    (folder / "artifacts" / ".ipynb_checkpoints").mkdir()
    (folder / "artifacts" / ".ipynb_checkpoints" / "customer_segments-checkpoint.csv").write_text("x")
    check_replaceable(folder, "--out")
    (folder / ".ipynb_checkpoints" / "thesis.docx").write_text("hidden")
    (folder / ".ipynb_checkpoints" / "drafts").mkdir()
    with pytest.raises(RunFolderError, match=r"holds 2 entries that segkit did not write: "
                                             r"\.ipynb_checkpoints/drafts/, \.ipynb_checkpoints/thesis\.docx\."):
        check_replaceable(folder, "--out")


# --------------------------------------------------------------------------- --out spelled oddly
def test_out_as_the_filesystem_root_is_exit_2_before_anything(tmp_path, notebooks, data, capsys):
    notebooks()
    assert run_cli(data, Path("/")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("segkit: --out / is the filesystem root. A run folder is replaced as a whole")
    assert "Traceback" not in err and not list(Path("/").glob(".*.building-*")) and not Path("/-failed").exists()


def test_out_with_dot_dot_is_the_folder_it_names(tmp_path, notebooks, data, capsys):
    """``--out R/artifacts/..`` is R: segkit's own build folder and lock are never taken for the user's."""
    notebooks()
    out = tmp_path / "run"
    assert run_cli(data, out, "--only", "data_audit") == EXIT_OK
    first = json.loads((out / "run.json").read_text())["finished_at"]
    assert run_cli(data, out / "artifacts" / "..", "--only", "data_audit", "--as-of", "2024-02-01") == EXIT_OK, \
        capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["run"]["out"] == str(out) and record["parameters"]["flags"]["as_of"] == "2024-02-01"
    assert record["finished_at"] >= first and sorted(entries(out)) == json.loads((out / MARKER).read_text())["files"]
    assert leftovers(tmp_path) == [] and leftovers(out / "artifacts") == []


# --------------------------------------------------------------------------- run.name as the message says
@pytest.mark.parametrize("name, shown", [
    ('<img src=x onerror=alert("runname")>', "'<', '=', '(', '\"', ')' and others"),
    ("2024+promo", "'+'"), ("q4;rm", "';'")])
def test_run_name_holds_only_what_the_message_allows(tmp_path, notebooks, data, capsys, name, shown):
    notebooks()
    config = tmp_path / "shop.yml"
    config.write_text(json.dumps({"data": {"transactions": str(data["transactions"])}, "run": {"name": name}}))
    assert main(["run", "--config", str(config), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"segkit: run.name = {name!r} in {config} is not a folder name: it contains {shown}. Use "
                          "one folder name such as 2024-q4 (letters, digits, spaces, '-', '_', '.')")
    assert list((tmp_path / "cwd").iterdir()) == []


def test_a_run_name_with_letters_of_any_script_spaces_and_dots_is_a_folder(tmp_path, notebooks, data):
    notebooks()
    config = tmp_path / "shop.yml"
    config.write_text(json.dumps({"data": {"transactions": str(data["transactions"])},
                                  "run": {"name": "Q4 Müller_v1.2", "only": ["data_audit"]}}))
    assert main(["run", "--config", str(config), "--quiet"]) == EXIT_OK
    assert (tmp_path / "cwd" / "reports" / "Q4 Müller_v1.2" / "01_data_audit.html").exists()


# --------------------------------------------------------------------------- free space when the disk is full
def test_the_free_space_of_a_full_disk_is_measured_before_the_partial_run_is_removed(tmp_path, notebooks, data,
                                                                                    capsys, monkeypatch):
    """The report of 01 cannot be written; the disk is full while the partial run exists and has
    3 MB free once it is removed: the message must say 0 bytes (what the run met)."""
    import collections
    import shutil

    from segkit.report import export

    notebooks()
    out = tmp_path / "run"
    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(path):
        building = any(".run.building-" in p.name for p in tmp_path.iterdir())
        return usage(3 * 2**20, 3 * 2**20 if building else 0, 0 if building else 3 * 2**20)

    def write(path, text):
        if Path(path).suffix == ".html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, text)

    real_write = export.atomic_write_text
    monkeypatch.setattr(export, "atomic_write_text", write)
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    assert run_cli(data, out, "--only", "data_audit") == EXIT_NOTEBOOK
    err = capsys.readouterr().err
    assert f"Could not write {out / '01_data_audit.html'}: No space left on device (0 bytes free of 3.0 MB" in err
    assert "the partial run was removed" in err and "Traceback" not in err
    assert not out.exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- ids of a failed audit
def test_a_failed_audit_pseudonymises_the_ids_its_error_names_from_the_inputs(tmp_path, notebooks, capsys):
    """01 fails on duplicate ids before writing any artifact: the ids come from the inputs."""
    notebooks(audit="from segkit.data.io import load_inputs\nload_inputs(ctx.config)")
    data = tmp_path / "data"
    data.mkdir()
    (data / "t.csv").write_text("customer_id,order_date,amount\nC000004,2024-01-02,10\nC000005,2024-01-03,20\n")
    (data / "c.csv").write_text("Kunde,country\nC000004,DE\nC000004,FR\nC000005,NL\n")
    config = tmp_path / "shop.yml"
    config.write_text(json.dumps({"data": {"transactions": str(data / "t.csv"), "customers": str(data / "c.csv")},
                                  "columns": {"customers": {"customer_id": "Kunde"}}}))
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--only", "data_audit", "--quiet"]) == EXIT_NOTEBOOK
    failed = tmp_path / "run-failed"
    html = (failed / "01_data_audit.html").read_text()
    pseudonym = re.search(r"duplicate ids: (?:&#x27;|')(c-[0-9a-f]{10})", html).group(1)
    record = json.loads((failed / "run.json").read_text())
    assert f"duplicate ids: '{pseudonym}'" in record["notebooks"][0]["error"]["evalue"]
    for name in ("run.json", "01_data_audit.ipynb", "01_data_audit.html", "index.html"):
        assert "C000004" not in (failed / name).read_text(), name
    assert pseudonym in (failed / "01_data_audit.ipynb").read_text()
    assert "C000004" in capsys.readouterr().err  # the terminal is the user's own: the real id helps them
