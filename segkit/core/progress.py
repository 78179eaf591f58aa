"""Progress bars (tqdm) for long loops: shown interactively, quiet in batch runs and tests.

Batch runs (``segkit run``) and the test suite set ``SEGKIT_QUIET=1``.

Examples
--------
>>> sum(progress(range(3), desc="demo"))
3
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

__all__ = ["progress_enabled", "progress"]

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
