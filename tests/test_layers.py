"""The package's layers (docs/DEVELOPING.md): imports point down, no private name crosses a module."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segkit"


def _private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``from segkit… import _name`` statements of a file (module-level or inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "segkit":
            found += [f"{path.relative_to(root)}:{node.lineno}: from {node.module} import {a.name}"
                      for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_private_name_is_imported_from_another_segkit_module():
    """Inside the package (a test may reach into the private helpers of the module it tests)."""
    files = sorted(PACKAGE.rglob("*.py"))
    offenders = [line for f in files for line in _private_imports(f)]
    assert offenders == [], "make these names public in the lowest module that needs them:\n" + "\n".join(offenders)


def test_the_private_import_check_finds_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from segkit.data.io import _kind\n")
    assert _private_imports(probe, tmp_path) == ["probe.py:2: from segkit.data.io import _kind"]


def test_import_linter_contracts_are_kept():
    """``lint-imports`` (config: ``[tool.importlinter]`` in pyproject.toml) passes: layers, no cycle."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]' (import-linter is a dev extra)")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module", ["segkit.core.config", "segkit.data.engine", "segkit.rfm", "segkit.audit",
                                    "segkit.campaign", "segkit.lifecycle", "segkit.steps.pipeline"])
def test_each_layer_imports_on_its_own_in_a_fresh_interpreter(module):
    """No import order is needed (what the function-level imports used to hide)."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------- public names (__all__)
NOTEBOOKS_DIR = ROOT / "notebooks"
#: Subpackages whose modules the notebooks import from: there ``__all__`` is exactly what the notebooks
#: import, plus what the top-level ``segkit`` re-exports and the layers above (report, cli, bench) import.
NOTEBOOK_FACING = ("segkit.steps", "segkit.plots", "segkit.widgets")
SUBPACKAGES = ["segkit.core", "segkit.data", "segkit.steps", "segkit.plots", "segkit.widgets", "segkit.report"]


def _segkit_imports(source: str) -> dict[str, set[str]]:
    """``{module: names}`` of the ``from segkit… import …`` statements in ``source``."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "segkit":
            found.setdefault(node.module, set()).update(a.name for a in node.names)
    return found


def notebook_imports(notebooks_dir: Path = NOTEBOOKS_DIR) -> dict[str, set[str]]:
    """``{module: names}`` the notebooks' code cells import from segkit (IPython magics left out)."""
    import nbformat

    found: dict[str, set[str]] = {}
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
                for module, names in _segkit_imports(code).items():
                    found.setdefault(module, set()).update(names)
    return found


def upper_layer_imports(module: str) -> set[str]:
    """Names of ``module`` that the top-level ``segkit`` re-exports or that report/cli/bench import."""
    import segkit

    names = {name for name, source in segkit._EXPORTS.items() if source == module}
    names |= {attr for source, attr in segkit._RENAMED.values() if source == module}
    for path in [PACKAGE / "cli.py", *(PACKAGE / "report").rglob("*.py"), *(PACKAGE / "bench").rglob("*.py")]:
        names |= _segkit_imports(path.read_text(encoding="utf-8")).get(module, set())
    return names


def test_the_notebook_import_parser_reads_multiline_imports_and_skips_magics(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "%matplotlib inline\nfrom segkit.plots.rfm import (plot_pareto,\n    plot_rf_grid)\nimport pandas as pd")])
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert notebook_imports(tmp_path) == {"segkit.plots.rfm": {"plot_pareto", "plot_rf_grid"}}


def test_every_name_a_notebook_imports_is_in_its_modules___all__():
    imports = notebook_imports()
    assert "segkit.steps.pipeline" in imports and "segkit.widgets" in imports
    missing = {module: sorted(names - set(getattr(importlib.import_module(module), "__all__", ())))
               for module, names in imports.items()}
    assert {m: n for m, n in missing.items() if n} == {}


def test_the_notebook_facing_modules_export_exactly_what_the_notebooks_and_upper_layers_use():
    """A name in their ``__all__`` that nothing above uses is not public; one the notebooks use must be."""
    checked = {}
    for module, names in notebook_imports().items():
        if module.startswith(NOTEBOOK_FACING):
            exported = set(getattr(importlib.import_module(module), "__all__", ()))
            expected = names | upper_layer_imports(module)
            checked[module] = (sorted(exported - expected), sorted(expected - exported))
    assert len(checked) >= 11
    assert {m: diff for m, diff in checked.items() if diff != ([], [])} == {}, "(not used above, missing)"


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_lists_its_public_api_and_every_name_resolves(package):
    done = subprocess.run(
        [sys.executable, "-c",
         "import importlib, sys\n"
         f"pkg = importlib.import_module({package!r})\n"
         "names = pkg.__all__\n"
         "assert names and len(set(names)) == len(names), names\n"
         "for name in names:\n"
         "    if not hasattr(pkg, name):\n"
         "        importlib.import_module(f'{pkg.__name__}.{name}')\n"
         "print(len(names))\n"],
        cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 0


def test_every_name_in_a_modules___all___is_defined_there_or_a_submodule():
    unresolved, without = [], []
    for info in pkgutil.walk_packages([str(PACKAGE)], "segkit."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            without.append(info.name)
            continue
        for name in names:
            if not hasattr(module, name) and importlib.util.find_spec(f"{info.name}.{name}") is None:
                unresolved.append(f"{info.name}.{name}")
    assert unresolved == [], f"names in __all__ that the module does not define: {unresolved}"
    # bench's package module and the YAML-defaults package are not an API
    assert sorted(without) == ["segkit.bench", "segkit.defaults"], f"modules without __all__: {sorted(without)}"


def test_importing_segkit_loads_no_heavy_library():
    """The top-level re-exports stay lazy (PEP 562): ``import segkit`` is not ``import pandas``."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, segkit\n"
         "heavy = ('pandas', 'numpy', 'duckdb', 'sklearn', 'scipy', 'matplotlib')\n"
         "print(sorted(m for m in heavy if m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_doctests_start_from_pandas_default_display_options_whatever_ran_before(tmp_path):
    """The repository-root conftest.py resets pandas' display options before each doctest: a test that
    calls open_run() (notebook float format, width) earlier in the same worker does not change what
    the doctests print (``make test`` collects tests/ and segkit/ in one session)."""
    leak = tmp_path / "test_leak.py"
    leak.write_text("import pandas as pd\n\n"
                    "def test_leaves_display_options_set():\n"
                    "    from segkit.steps.pipeline import set_display\n"
                    "    set_display()\n"
                    "    pd.set_option('display.float_format', lambda v: f'<{v}>')\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", f"--rootdir={ROOT}",
         "--doctest-modules", str(leak), str(PACKAGE / "data" / "orders.py")],
        cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "failed" not in done.stdout and " passed" in done.stdout
