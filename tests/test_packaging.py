"""Packaging: pyproject and environment.yml agree; the kernelspec and entry points exist."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def pyproject_packages() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(meta["dependencies"]) + list(meta["optional-dependencies"]["dev"])
    return {_name(d) for d in deps}


def environment_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = _name(dep)
            if name not in ("python", "pip"):
                names.add(CONDA_TO_PYPI.get(name, name))
    return names


def test_pyproject_and_environment_yml_list_the_same_packages():
    assert pyproject_packages() == environment_packages()


def test_constraints_pin_every_declared_dependency_within_its_range():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.strip().lower().replace("_", "-")] = pinned.strip()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in list(meta["dependencies"]) + list(meta["optional-dependencies"]["dev"]):
        req = Requirement(dep)
        key = req.name.lower().replace("_", "-")
        assert key in pins, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[key]), f"constraints.txt pins {req.name} {pins[key]}, outside {req.specifier}"
        assert version(req.name) == pins[key], f"installed {req.name} {version(req.name)} != pinned {pins[key]}"


def test_lifetimes_is_a_dev_extra_and_no_runtime_module_imports_it():
    import ast

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "lifetimes" not in {_name(d) for d in meta["dependencies"]}
    assert "lifetimes" in {_name(d) for d in meta["optional-dependencies"]["dev"]}
    runtime_env, _, dev_env = (ROOT / "environment.yml").read_text().partition("# dev extras")
    assert "lifetimes" not in runtime_env and "lifetimes" in dev_env
    importers = []
    for path in sorted((ROOT / "segkit").rglob("*.py")):
        if "bench" in path.relative_to(ROOT / "segkit").parts:  # make bench compares with lifetimes
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "lifetimes" for n in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []


def test_the_cdnow_sample_ships_as_package_data():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = meta["tool"]["setuptools"]["package-data"]["segkit"]
    shipped = [p for pattern in patterns for p in (ROOT / "segkit").glob(pattern)]
    assert ROOT / "segkit" / "resources" / "cdnow" / "CDNOW_sample.txt" in shipped


def test_the_core_dependencies_of_the_brief_are_declared():
    core = {"jupyterlab", "pandas", "seaborn", "scikit-learn", "kmodes", "papermill", "nbval", "ipywidgets"}
    assert core <= pyproject_packages()


def test_the_segkit_kernelspec_runs_this_environments_python():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("segkit")
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
    assert spec.language == "python"


def test_every_notebook_names_the_segkit_kernel_and_has_a_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [p.stem for p in notebooks][:1] == ["01_data_audit"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert nb["metadata"]["kernelspec"]["name"] == "segkit", path.name
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert sum("parameters" in t for t in tags) == 1, path.name
        assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"].startswith("# ")
        assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code"), (
            f"{path.name} is committed with outputs; clear them")


def test_the_segkit_command_is_installed():
    out = subprocess.run([str(Path(sys.executable).with_name("segkit")), "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "run" in out.stdout


def test_papermill_reads_every_notebooks_parameters_including_the_core_four(caplog):
    from papermill.inspection import inspect_notebook

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        with caplog.at_level("WARNING", logger="papermill"):
            params = inspect_notebook(str(path))
        assert {"run_dir", "config_path", "as_of", "seed"} <= set(params), path.name
        assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()], path.name
        caplog.clear()
