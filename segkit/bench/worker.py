"""Run one benchmark contender in this (fresh) process and print its timing as JSON.

Usage: ``python -m segkit.bench.worker '{"func": "module:function", "kwargs": {...}}'``.
Imports happen before the clock starts — the module, and the modules the function imports in
its body (:func:`imports_of`; ``segkit`` resolves its names lazily, so they are not loaded with
the package) — so a contender is timed on its work, not on loading libraries. The parent
process reads peak memory from the child's resource usage, so each measurement has a process of
its own.

Examples
--------
>>> def f():
...     from segkit.kprototypes import KPrototypes
...     import json
>>> imports_of(f)
['segkit.kprototypes', 'json']
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import sys
import textwrap
import time
from typing import Any, Callable

__all__ = ["imports_of", "main"]


def imports_of(func: Callable[..., Any]) -> list[str]:
    """Modules imported by ``import`` / ``from … import`` statements anywhere in ``func``'s body."""
    from segkit.report.kernels import module_names

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return []
    return module_names(ast.walk(tree))


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    module_name, func_name = spec["func"].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    for name in [*imports_of(func), *spec.get("preload", [])]:
        importlib.import_module(name)
    start = time.perf_counter()
    result = func(**spec.get("kwargs", {}))
    seconds = time.perf_counter() - start
    print("SEGKIT-BENCH " + json.dumps({"seconds": seconds, "result": result}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
