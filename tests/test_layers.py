"""The package's layers (docs/DEVELOPING.md): imports point down, no private name crosses a module."""

from __future__ import annotations

import ast
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
