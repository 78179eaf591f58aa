"""The ``segkit`` command: flags, messages and exit codes (throwaway notebooks; real ones in test_e2e)."""

from __future__ import annotations

import json

import pytest

from segkit.cli import EXIT_BUG, EXIT_INTERRUPTED, EXIT_NOTEBOOK, EXIT_OK, EXIT_USAGE, build_parser, main

from run_helpers import make_notebook, segkit_cli, tiny_inputs

OPEN_OK = "x = 1"
CONFIG_ERROR = ("bins = bins if bins is not None else ctx.section('rfm').get('bins', 5)\n"
                "if bins < 2:\n"
                "    raise ConfigError(f'rfm.bins = {bins} is too small: use 2 or more score levels.')")
BUG = "lookup = {'a': 1}\nlookup['missing key']"


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """Throwaway 01/02 notebooks that the CLI runs instead of notebooks/ (02's body is set per test)."""
    folder = tmp_path / "notebooks"
    make_notebook(folder, "01_data_audit", OPEN_OK)
    monkeypatch.setattr("segkit.report.runner.default_notebooks_dir", lambda: folder)

    def with_rfm(body: str):
        make_notebook(folder, "02_rfm", body)
        return folder

    return with_rfm


def test_flags_parse_into_the_documented_options():
    args = build_parser().parse_args(["run", "--config", "c.yml", "--transactions", "t.csv", "--customers", "c.csv",
                                      "--campaign", "k.csv", "--as-of", "2024-06-30", "--out", "reports/june",
                                      "--only", "rfm, clustering", "--include-code", "--quiet"])
    assert (str(args.config), str(args.transactions), str(args.customers), str(args.campaign)) == \
        ("c.yml", "t.csv", "c.csv", "k.csv")
    assert (args.as_of, str(args.out), args.only, args.include_code, args.quiet) == \
        ("2024-06-30", "reports/june", ["rfm", "clustering"], True, True)
    assert build_parser().parse_args(["run"]).include_code is None  # not given: the config decides


def test_the_console_script_help_documents_failures_and_exit_codes():
    done = segkit_cli("run", "--help")
    assert done.returncode == 0
    for text in ("--only NAME[,NAME]", "--include-code", "<out>-failed/", "exit codes: 0 success", "130 interrupted",
                 "01_data_audit, 02_rfm"):
        assert text in done.stdout


def test_an_unknown_notebook_name_is_a_usage_error(capsys):
    assert main(["run", "--only", "rmf", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown notebook(s) 'rmf'" in err and "02_rfm" in err and "Traceback" not in err


def test_a_missing_input_file_stops_before_anything_runs(tmp_path, capsys, notebooks):
    notebooks(OPEN_OK)
    code = main(["run", "--transactions", str(tmp_path / "exports" / "orders.csv"), "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert f"The transactions file {tmp_path / 'exports' / 'orders.csv'} (from --transactions) does not exist" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert list(tmp_path.iterdir()) == [tmp_path / "notebooks"]


def test_a_bad_as_of_is_a_usage_error(tmp_path, capsys, notebooks):
    notebooks(OPEN_OK)
    inputs = tiny_inputs(tmp_path / "data")
    assert main(["run", "--transactions", str(inputs["transactions"]), "--as-of", "2024-02-30"]) == EXIT_USAGE
    assert "as_of = '2024-02-30' (from --as-of) is not a date; use YYYY-MM-DD" in capsys.readouterr().err


def test_a_broken_parameter_names_notebook_cell_and_error_without_traceback(tmp_path, capsys, notebooks):
    notebooks(CONFIG_ERROR)
    inputs = tiny_inputs(tmp_path / "data")
    (tmp_path / "c.yml").write_text(f"data: {{transactions: {inputs['transactions']}}}\nrfm: {{bins: 1}}\n")
    code = main(["run", "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "run"), "--only", "data_audit,rfm"])
    captured = capsys.readouterr()
    assert code == EXIT_NOTEBOOK
    assert captured.err.startswith(
        "segkit: 02_rfm failed in cell In [4] (`bins = bins if bins is not None else ctx.section('rfm').get('bins', 5)`"
        "):\nConfigError: rfm.bins = 1 is too small: use 2 or more score levels.")
    assert "Traceback" not in captured.err
    assert f"kept in {tmp_path / 'run-failed'}/" in captured.err and "Nothing was written to" in captured.err
    assert [line.split()[1:3] for line in captured.out.splitlines()[1:3]] == [["01_data_audit", "ok"],
                                                                              ["02_rfm", "failed"]]
    failed = tmp_path / "run-failed"
    assert not (tmp_path / "run").exists()
    assert "rfm.bins = 1 is too small" in (failed / "02_rfm.html").read_text()
    nb = json.loads((failed / "02_rfm.ipynb").read_text())
    assert any(o.get("ename") == "ConfigError" for c in nb["cells"] for o in c.get("outputs", []))
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "failed"
    assert [n["status"] for n in record["notebooks"]] == ["ok", "failed", "not run", "not run", "not run"]
    assert record["notebooks"][1]["error"]["ename"] == "ConfigError"


def test_an_unexpected_error_in_a_notebook_is_called_a_bug_with_its_traceback(tmp_path, capsys, notebooks):
    notebooks(BUG)
    inputs = tiny_inputs(tmp_path / "data")
    code = main(["run", "--transactions", str(inputs["transactions"]), "--out", str(tmp_path / "run"),
                 "--only", "rfm", "--quiet"])
    captured = capsys.readouterr()
    assert code == EXIT_BUG
    assert "KeyError: 'missing key'" in captured.err and "This is a bug" in captured.err
    assert "lookup['missing key']" in captured.err  # the kernel's traceback
    assert captured.out == ""


def test_quiet_prints_nothing_on_success_and_include_code_keeps_the_code(tmp_path, capsys, notebooks):
    notebooks(OPEN_OK)
    inputs = tiny_inputs(tmp_path / "data")
    code = main(["run", "--transactions", str(inputs["transactions"]), "--out", str(tmp_path / "run"),
                 "--only", "data_audit", "--quiet", "--include-code"])
    assert code == EXIT_OK and capsys.readouterr() == ("", "")
    html = (tmp_path / "run" / "01_data_audit.html").read_text()
    assert "open_run" in html and "injected-parameters" not in html
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run"]["include_code"] is True


def test_an_error_in_segkit_itself_keeps_its_traceback(monkeypatch, capsys):
    def broken(options):
        raise RuntimeError("runner exploded")

    monkeypatch.setattr("segkit.report.runner.run_pipeline", broken)
    assert main(["run"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: runner exploded" in err and "this is a bug in segkit" in err


def test_ctrl_c_exits_with_130(monkeypatch, capsys):
    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr("segkit.report.runner.run_pipeline", interrupted)
    assert main(["run"]) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("with_config", [False, True])
def test_a_missing_column_says_where_to_map_it(tmp_path, capsys, with_config):
    """The real audit notebook on a file whose date column is called OrderDate: the message names
    the file, the column, the close match, and the config file to edit — the user's own, or (with
    flags only) how to give one; never the run's generated config.yml."""
    from segkit.core.config import project_root

    orders = tmp_path / "orders.csv"
    orders.write_text((project_root() / "data" / "sample" / "transactions.csv").read_text()
                      .replace("order_date", "OrderDate", 1))
    args = ["run", "--transactions", str(orders), "--out", str(tmp_path / "run"), "--only", "data_audit"]
    if with_config:
        (tmp_path / "shop.yml").write_text(f"data: {{transactions: {orders}, customers: null, campaign: null}}\n")
        args = ["run", "--config", str(tmp_path / "shop.yml"), "--out", str(tmp_path / "run"), "--only", "data_audit"]
    assert main(args) == EXIT_NOTEBOOK
    err = capsys.readouterr().err
    assert f"{orders}: required column 'order_date' is missing" in err
    assert "order_date → 'OrderDate'" in err
    where = f"(in {tmp_path / 'shop.yml'})" if with_config else "(in a config file passed with --config)"
    assert f"Map it in the config {where}: set columns.transactions.order_date" in err
    assert "(in config.yml)" not in err
