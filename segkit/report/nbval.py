"""nbval regression copies: ``python -m segkit.report refresh-nbval``.

``make test`` runs ``pytest --nbval --nbval-sanitize-with tests/nbval/sanitize.cfg tests``:
nbval re-executes every ``tests/nbval/NN_name.ipynb`` and compares each cell's new outputs
with the stored ones. :func:`refresh_nbval` produces those copies: it executes every notebook
of ``notebooks/`` as a user opening it alone on a fresh checkout would (``reports/interactive/``,
the interactive cache, is emptied before each notebook; parameters at their defaults →
interactive mode on the bundled sample; ``SEGKIT_QUIET=1``, ``MPLBACKEND=Agg`` and the test
suite's pseudonym salt, as under pytest — figures are then not outputs, and nbval does not
compare images anyway) and stores it with its outputs, after

- recording outputs as nbval sees them (no widget front end: what an ``Output`` widget shows
  lands in the cell, ``clear_output`` is ignored);
- removing the widget state metadata and the outputs nbval never compares (``image/png``,
  ``image/jpeg``, widget views), so the copies stay small and diff-friendly;
- applying ``sanitize.cfg`` to the outputs (nbval applies the same patterns to both sides,
  so storing them sanitised changes nothing but keeps volatile values out of git).

The copies' code cells must equal the notebooks' (a test checks it): after changing a
notebook, run ``make nbval-refresh`` and review the output diff.

Opened alone, every notebook works in its own ``reports/interactive/<notebook>/`` folder
(:func:`segkit.steps.pipeline.open_run`), so a copy does not depend on which other notebooks ran
before or beside it (``pytest -n 2``). ``make test`` clears ``reports/interactive/`` first so
that cached artifacts of older code cannot leak into the comparison.

Examples
--------
>>> patterns = parse_sanitize_patterns("regex: 0x[0-9a-f]+\\nreplace: 0xADDR\\n")
>>> sanitize_text("<object at 0x7f3a2b>", patterns)
'<object at 0xADDR>'
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

import nbformat

from segkit.core.config import project_root
from segkit.core.errors import SegkitError
from segkit.core.files import atomic_write_text
from segkit.steps.pipeline import INTERACTIVE_RUN

__all__ = ["NOT_COMPARED", "NBVAL_MPL_BACKEND", "NBVAL_SALT", "NbvalRefreshError", "parse_sanitize_patterns",
    "sanitize_text", "regression_copy", "refresh_nbval", "main"]

#: Output MIME types nbval does not compare by default (without --nbdime): dropped from copies.
NOT_COMPARED: tuple[str, ...] = ("image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json")


#: What the kernels get under pytest: tests/conftest.py sets ``MPLBACKEND=Agg`` and the fixed
#: pseudonym salt ``SEGKIT_SALT=segkit-tests`` (a test checks they agree).
NBVAL_MPL_BACKEND = "Agg"
NBVAL_SALT = "segkit-tests"


class NbvalRefreshError(SegkitError):
    """A notebook failed while producing its regression copy."""


def parse_sanitize_patterns(text: str) -> list[tuple[str, str]]:
    """``(regex, replace)`` pairs of an nbval sanitize file, in order (nbval's own parsing).

    Examples
    --------
    >>> parse_sanitize_patterns("[section]\\nregex: a+\\nreplace: A\\n")
    [('a+', 'A')]
    """
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)


def sanitize_text(text: str, patterns: Sequence[tuple[str, str]]) -> str:
    """Apply the patterns in order, as nbval does."""
    for regex, replace in patterns:
        text = re.sub(regex, replace, text)
    return text


def _sanitize_value(value, patterns):
    if isinstance(value, str):
        return sanitize_text(value, patterns)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sanitize_text("".join(value), patterns)
    return value


def regression_copy(nb: nbformat.NotebookNode, patterns: Sequence[tuple[str, str]]) -> nbformat.NotebookNode:
    """The executed ``nb`` as stored in ``tests/nbval/``: volatile and uncompared parts removed.

    Examples
    --------
    >>> out = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure at 0x7f01>",
    ...                                                   "image/png": "iVBOR"})
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig", outputs=[out])])
    >>> copy_ = regression_copy(nb, [("0x[0-9a-f]+", "0xADDR")])
    >>> dict(copy_.cells[0].outputs[0].data)
    {'text/plain': '<Figure at 0xADDR>'}
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if "data" in output:
                for mime in NOT_COMPARED:
                    output.data.pop(mime, None)
                for mime in list(output.data):
                    output.data[mime] = _sanitize_value(output.data[mime], patterns)
            if "text" in output:
                output.text = _sanitize_value(output.text, patterns)
    return nb


def _nbval_like_client(nb: nbformat.NotebookNode, **kwargs):
    """An nbclient that records outputs the way nbval sees them.

    nbval has no widget front end: it ignores comm and ``clear_output`` messages, so what an
    ``ipywidgets.Output`` displays lands in the cell's outputs. nbclient instead mimics a front
    end (Output widget contents go to the widget state). The copies must hold what nbval will
    compute, so this client ignores those messages too.
    """
    from nbclient import NotebookClient

    class NbvalLikeClient(NotebookClient):
        def handle_comm_msg(self, outs, msg, cell_index):  # noqa: D102 - see class docstring
            return None

        def clear_output(self, outs, msg, cell_index):  # noqa: D102
            return None

    return NbvalLikeClient(nb, **kwargs)


def refresh_nbval(
    notebooks_dir: Path | None = None,
    dest: Path | None = None,
    names: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Execute the notebooks in interactive mode and store their regression copies.

    Parameters
    ----------
    notebooks_dir : Path, optional
        Default: the project's ``notebooks/``.
    dest : Path, optional
        Default: the project's ``tests/nbval/`` (holds ``sanitize.cfg``).
    names : sequence of str, optional
        Only these notebooks (file stems); default all.
    echo : callable
        Progress lines.

    Returns
    -------
    list of Path
        The copies written.

    Raises
    ------
    NbvalRefreshError
        When a notebook fails (nothing is written for it).
    """
    from nbclient.exceptions import CellExecutionError

    from segkit.report.runner import KERNEL_START_TIMEOUT, kernel_environment

    notebooks_dir = Path(notebooks_dir or project_root() / "notebooks")
    dest = Path(dest or project_root() / "tests" / "nbval")
    cfg = dest / "sanitize.cfg"
    patterns = parse_sanitize_patterns(cfg.read_text(encoding="utf-8")) if cfg.exists() else []
    sources = sorted(p for p in notebooks_dir.glob("*.ipynb") if names is None or p.stem in names)
    if not sources:
        raise NbvalRefreshError(f"No notebooks to refresh in {notebooks_dir}.")
    written = []
    interactive_dir = project_root() / "reports" / INTERACTIVE_RUN
    # Same conditions as nbval under pytest: tests/conftest.py sets MPLBACKEND=Agg, which the
    # kernels nbval starts inherit (figures are then not displayed as outputs).
    with kernel_environment(mpl_backend=NBVAL_MPL_BACKEND, salt=NBVAL_SALT) as kernel:
        for source in sources:
            # Each notebook as opened alone on a fresh checkout: no artifacts cached by another one.
            shutil.rmtree(interactive_dir, ignore_errors=True)
            nb = nbformat.read(source, as_version=4)
            client = _nbval_like_client(nb, kernel_name=kernel, resources={"metadata": {"path": str(dest)}},
                                    record_timing=False, startup_timeout=KERNEL_START_TIMEOUT,
                                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
            try:
                client.execute()
            except CellExecutionError as exc:
                raise NbvalRefreshError(
                    f"{source.name} failed while refreshing its nbval copy: {exc.ename}: {exc.evalue}. "
                    "Fix the notebook (it must run alone on the bundled sample) and refresh again."
                ) from None
            target = dest / source.name
            atomic_write_text(target, nbformat.writes(regression_copy(nb, patterns)) + "\n")
            written.append(target)
            echo(f"  {source.name} → {target}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segkit.report refresh-nbval [--only NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m segkit.report")
    sub = parser.add_subparsers(dest="command", required=True)
    refresh = sub.add_parser("refresh-nbval", help="re-execute notebooks/ and store tests/nbval/ regression copies")
    refresh.add_argument("--only", nargs="+", metavar="NAME", help="notebook file stems (default: all)")
    args = parser.parse_args(argv)
    try:
        refresh_nbval(names=args.only)
    except SegkitError as exc:
        print(f"refresh-nbval: {exc}", file=sys.stderr)
        return 1
    return 0
