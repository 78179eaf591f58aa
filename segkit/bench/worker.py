"""Run one benchmark contender in this (fresh) process and print its timing as JSON.

Usage: ``python -m segkit.bench.worker '{"func": "module:function", "kwargs": {...}}'``.
Imports happen before the clock starts; the parent process reads peak memory from the
child's resource usage, so each measurement has a process of its own.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    module_name, func_name = spec["func"].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    for name in spec.get("preload", []):
        importlib.import_module(name)
    start = time.perf_counter()
    result = func(**spec.get("kwargs", {}))
    seconds = time.perf_counter() - start
    print("SEGKIT-BENCH " + json.dumps({"seconds": seconds, "result": result}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
