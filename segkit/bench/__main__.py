"""``python -m segkit.bench`` (``make bench``): the benchmark suite.

Writes ``reports/bench/results.json`` and ``reports/bench/results.md``. Every figure is a ratio
against a baseline measured in the same run on the same data, median of repeats, with each
contender's whole-process peak memory. ``--smoke`` runs every case at a tiny size once (used by
the test suite so the benchmarks cannot rot; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from segkit.bench.cases import build_cases
from segkit.bench.harness import run_case
from segkit.bench.report import markdown_table
from segkit.core.config import project_root
from segkit.core.files import atomic_write_text, dumps_json


def machine() -> dict:
    import os

    import duckdb
    import numpy
    import pandas
    import sklearn

    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):  # pragma: no cover
        pass
    from importlib import metadata

    try:  # the `spark` extra (the spark_* cases); its version without starting a JVM
        pyspark: str | None = metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        pyspark = None
    return {"cpus": os.cpu_count(), "memory_gb": mem_gb, "platform": platform.platform(),
            "python": platform.python_version(), "pandas": pandas.__version__,
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
            "duckdb": duckdb.__version__, "pyspark": pyspark}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segkit.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (checks the suite runs)")
    parser.add_argument("--out", default=None, help="output folder (default reports/bench, or reports/bench-smoke)")
    parser.add_argument("--only", default=None, help="comma-separated case name prefixes (e.g. rfm,kproto)")
    parser.add_argument("--repeats", type=int, default=None, help="override repeats of every case")
    parser.add_argument("--data", default=None, help="folder for generated data (default .bench/)")
    args = parser.parse_args(argv)

    root = project_root()
    out = Path(args.out) if args.out else root / "reports" / ("bench-smoke" if args.smoke else "bench")
    data_dir = Path(args.data) if args.data else root / ".bench" / ("smoke" if args.smoke else "full")
    only = [s.strip() for s in args.only.split(",")] if args.only else None

    started = time.time()
    results = []
    for case in build_cases(data_dir, smoke=args.smoke, only=only, log=print):
        if args.repeats:
            case.repeats = args.repeats
        print(f"{case.name}: {case.description}", flush=True)
        results.append(run_case(case, log=lambda line: print(line, flush=True)))
    doc = {"smoke": args.smoke, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
           "total_seconds": round(time.time() - started, 1), "cases": results}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", dumps_json(doc))
    atomic_write_text(out / "results.md", markdown_table(doc))
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    failed = [f"{r['case']}/{n}" for r in results for n, c in r["contenders"].items() if not c.get("ok")]
    if failed:
        print("failed contenders: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
