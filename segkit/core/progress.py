"""Progress for long work: tqdm bars for loops, one line per step; shown interactively, quiet in
batch runs and tests.

Batch runs (``segkit run``) and the test suite set ``SEGKIT_QUIET=1``.

Examples
--------
>>> sum(progress(range(3), desc="demo"))
3
>>> with step_line("02_rfm needs artifacts/transactions_clean.parquet: running the 01_data_audit step",
...                done="01_data_audit done", force=True):
...     pass  # doctest: +ELLIPSIS
02_rfm needs artifacts/transactions_clean.parquet: running the 01_data_audit step …
… 01_data_audit done in ... s
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

__all__ = ["progress_enabled", "progress", "step_line"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when a person is likely watching (a terminal or a Jupyter kernel) and not quieted."""
    if os.environ.get("SEGKIT_QUIET") == "1":
        return False
    try:
        from IPython import get_ipython

        if getattr(get_ipython(), "kernel", None) is not None:
            return True
    except ImportError:  # pragma: no cover
        pass
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when :func:`progress_enabled`."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(), leave=False)


@contextmanager
def step_line(text: str, done: str = "done", force: bool = False) -> Iterator[None]:
    """Print ``text …`` when a step starts and ``… {done} in N s`` when it ends (plain lines on
    stdout, which a notebook shows as they come and keeps when saved, unlike a widget bar).

    Printed only when :func:`progress_enabled` (or ``force``); a step that raises prints no
    end line (its error follows).
    """
    shown = force or progress_enabled()
    if shown:
        print(f"{text} …", flush=True)
    started = time.perf_counter()
    yield
    if shown:
        print(f"… {done} in {time.perf_counter() - started:.1f} s", flush=True)
