"""The ``segkit`` command: ``segkit run`` executes the notebooks and writes shareable reports.

Exit codes (also in ``segkit run --help``):

====  =====================================================================================
0     success (notebooks skipped for lack of input, e.g. no campaign file, still count)
1     a notebook stopped on a data/config problem (``SegkitError``: data error, failed audit,
      upstream artifact missing, model could not be fitted), or the machine refused a write
      during the run (disk full, no permission); the message says what to fix
2     invalid command line or config, an input file missing, or an ``--out`` that segkit may not
      use (not a folder it created, a link, the data folder, locked by another run, not
      writable) — nothing was run
3     unexpected error: a bug in segkit or a notebook (the traceback is printed)
130   interrupted (Ctrl-C)
====  =====================================================================================

Examples
--------
>>> main(["run", "--only", "nonsense", "--quiet"])  # message on stderr: unknown notebook 'nonsense'
2
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Sequence

from segkit.core.errors import SegkitError
from segkit.steps.pipeline import NOTEBOOKS

__all__ = ["RUN_EPILOG", "build_parser", "main"]

EXIT_OK, EXIT_NOTEBOOK, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

RUN_EPILOG = f"""\
notebooks, in pipeline order: {', '.join(NOTEBOOKS)}
  (--only takes these names or the part after the number, e.g. --only rfm,clustering)

data: with no data flag and no --config, the bundled sample is used. If any data flag is given
without --config, the tables not given are absent (05_campaign_evaluation is then skipped).
Flags override the config file.

output: the run is built in a hidden sibling folder and moved to --out (default
reports/<run.name or timestamp>/) only when every notebook succeeded. With --only and an
existing --out, that run's artifacts (and config.yml, unless --config or data flags are given)
are reused. A failed or interrupted run leaves --out unchanged and is kept in <out>-failed/:
the notebooks that ran, the failing notebook executed until the error and its HTML with the
error visible, run.json (status "failed") and an index.html headed FAILED.

segkit replaces or removes only folders it created (marked by a .segkit-run file); any other
existing --out, a symbolic link, or a folder holding the inputs or the config is refused. A
second run into the same --out while one is running is refused.

exit codes: 0 success; 1 a notebook stopped on a data/config problem, or the disk filled up or a
write was refused during the run (message says what to fix); 2 invalid command line or config,
a missing input file, or an --out segkit may not use (nothing was run); 3 unexpected error, a
bug (traceback printed); 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``segkit``.

    Examples
    --------
    >>> args = build_parser().parse_args(["run", "--only", "rfm,clustering", "--as-of", "2024-06-30"])
    >>> args.only, args.as_of
    (['rfm', 'clustering'], '2024-06-30')
    """
    parser = argparse.ArgumentParser(prog="segkit", description="Customer lifecycle segmentation kit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run the notebooks and write HTML reports",
        description="Run the analysis notebooks with papermill and write a run folder with HTML reports, "
                    "index.html, run.json and artifacts/customer_segments.csv.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", type=Path, metavar="FILE", help="YAML config (column maps, segment rules, data paths)")
    # text, not Path: a Path would make s3a://lake/o/ into s3a:/lake/o/ (URIs and table: are for engine.kind spark)
    run.add_argument("--transactions", metavar="FILE",
                     help="transactions file (CSV/Parquet/Excel), or a folder or a quoted glob of CSV/Parquet "
                          "files (e.g. 'exports/2024-*.parquet'; large logs are read out-of-core); with "
                          "engine.kind: spark also a URI Spark reads (s3a://, hdfs://, abfss://, file://, ...) "
                          "or table:NAME")
    run.add_argument("--customers", metavar="FILE", help="customers file (optional)")
    run.add_argument("--campaign", metavar="FILE", help="campaign results file (optional)")
    run.add_argument("--as-of", metavar="YYYY-MM-DD", help="analysis date (default: config, else the day after the last order)")
    run.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: reports/<run.name or timestamp>/)")
    run.add_argument("--only", metavar="NAME[,NAME]", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                     help="run only these notebooks (names or the part after the number)")
    run.add_argument("--include-code", action="store_true", default=None, help="keep code cells in the HTML reports")
    run.add_argument("--quiet", action="store_true", help="no progress output (errors are still printed)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from segkit.report.runfolder import OutputWriteError
    from segkit.report.runner import NotebookFailedError, RunInterrupted, RunOptions, run_pipeline

    options = RunOptions(config=args.config, transactions=args.transactions, customers=args.customers,
                         campaign=args.campaign, as_of=args.as_of, out=args.out, only=args.only,
                         include_code=args.include_code, quiet=args.quiet)
    try:
        run_pipeline(options)
    except NotebookFailedError as exc:
        print(f"segkit: {exc}", file=sys.stderr)
        if exc.is_bug:
            print(f"\nThis is a bug (unexpected {exc.failure.ename}), not a problem with your data. "
                  "Please report it with the failed run folder. Traceback from the notebook:\n"
                  f"{exc.traceback}", file=sys.stderr)
            return EXIT_BUG
        return EXIT_NOTEBOOK
    except OutputWriteError as exc:  # the machine's doing (disk full, permission), during the run
        print(f"segkit: {exc}", file=sys.stderr)
        return EXIT_NOTEBOOK
    except RunInterrupted as exc:
        print(f"segkit: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SegkitError as exc:  # detected before anything ran
        print(f"segkit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segkit`` console script; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
    except KeyboardInterrupt:
        print("segkit: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - anything else is a bug: keep the traceback
        traceback.print_exc()
        print("\nsegkit: unexpected error — this is a bug in segkit, not a problem with your data. "
              "Please report it with the traceback above.", file=sys.stderr)
        return EXIT_BUG
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
