"""JupyterLab for segkit's notebooks: saved notebooks that reopen cleanly, outputs kept out of git.

``make lab`` runs ``python -m segkit.widgets.lab``, which

1. sets up the git filter ``segkit-notebook-outputs`` in this checkout (``.gitattributes`` assigns
   it to ``notebooks/*.ipynb``): what git stores of a notebook is its source without outputs,
   execution counts or widget state (:func:`strip_outputs`), so running and saving a notebook
   never shows up in ``git diff`` and never lands in a commit; the notebook file on disk keeps
   its outputs;
2. starts JupyterLab on ``notebooks/``, whose server saves notebooks through :func:`pre_save_hook`
   (:data:`LAB_SERVER_CONFIG`, written into the environment's Jupyter config by
   :func:`install_server_config` when ``make`` sets up ``.venv``): every saved notebook loses its
   live widget views and widget state and keeps their static copies, so after a save, shutdown
   and reopen an explorer shows its static view instead of "Error displaying widget: model not
   found".

A JupyterLab of another environment gets the same hook with
``--ContentsManager.pre_save_hook=segkit.widgets.lab.pre_save_hook`` (:func:`server_arguments`).

Examples
--------
>>> nb = {"metadata": {"widgets": {}}, "cells": [{"cell_type": "code", "outputs": [
...     {"output_type": "display_data", "data": {"text/html": "<b>static</b>", "text/plain": "Explorer",
...      "application/vnd.jupyter.widget-view+json": {"model_id": "ab"}}}]}]}
>>> strip_widget_views(nb)
1
>>> sorted(nb["cells"][0]["outputs"][0]["data"]), "widgets" in nb["metadata"]
(['text/html', 'text/plain'], False)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from segkit.core.config import project_root

__all__ = ["WIDGET_VIEW_MIME", "GIT_FILTER", "LAB_SERVER_CONFIG", "strip_widget_views", "pre_save_hook",
           "strip_outputs", "clean_filter", "configure_git_filter", "install_server_config", "server_arguments", "main"]

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

#: Name of the git filter driver (``.gitattributes``: ``notebooks/*.ipynb filter=segkit-notebook-outputs``).
GIT_FILTER = "segkit-notebook-outputs"

#: traitlets configuration of the Jupyter server that ``make lab`` starts.
LAB_SERVER_CONFIG: dict[str, dict[str, Any]] = {
    "ContentsManager": {"pre_save_hook": "segkit.widgets.lab.pre_save_hook"},
}


def strip_widget_views(notebook: Mapping[str, Any]) -> int:
    """Remove live widget views and the widget state from ``notebook`` (a notebook dict), in place.

    An output keeps its other representations (an explorer's static ``text/html``); an output
    that was nothing but a widget (its ``text/plain`` is only the widget's repr, e.g. a progress
    bar) is dropped.

    Returns
    -------
    int
        Number of outputs changed or dropped.
    """
    changed = 0
    metadata = notebook.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("widgets", None)
    for cell in notebook.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept = []
        for output in outputs:
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW_MIME in data:
                changed += 1
                del data[WIDGET_VIEW_MIME]
                if not set(data) - {"text/plain"}:
                    continue
            kept.append(output)
        cell["outputs"] = kept
    return changed


def pre_save_hook(model: Mapping[str, Any], path: str = "", contents_manager: Any = None, **kwargs: Any) -> None:
    """Jupyter server pre-save hook: :func:`strip_widget_views` on every notebook saved.

    Called by the server (all arguments by keyword) before it writes and signs the file; the
    notebook in the browser keeps its live widgets until it is closed.
    """
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_widget_views(model["content"])


def strip_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` as git stores it: no outputs, execution counts, execution timings or widget state,
    and of ``metadata.language_info`` only the language's name.

    JupyterLab fills ``language_info`` from the running kernel when it saves (``codemirror_mode``,
    ``pygments_lexer``, the Python ``version``, …); the tracked notebooks keep ``{"name": "python"}``,
    so a notebook saved after a run shows no ``git diff``.

    Examples
    --------
    >>> cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3,
    ...     outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "2"})])
    >>> clean = strip_outputs(nbformat.v4.new_notebook(cells=[cell]))
    >>> clean.cells[0].outputs, clean.cells[0].execution_count
    ([], None)
    >>> saved = nbformat.v4.new_notebook(metadata={"language_info": {"name": "python", "version": "3.11.9"}})
    >>> strip_outputs(saved).metadata.language_info
    {'name': 'python'}
    """
    notebook.metadata.pop("widgets", None)
    language = notebook.metadata.get("language_info")
    if isinstance(language, dict) and "name" in language:
        notebook.metadata["language_info"] = {"name": language["name"]}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def clean_filter(text: str) -> str:
    """The git clean filter: notebook JSON in, the same notebook without outputs out.

    Text that is not a notebook (a merge in progress, a broken file) passes unchanged, so git
    still stores exactly what is there.
    """
    try:
        notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    except Exception:  # noqa: BLE001 - any unreadable input is stored as it is
        return text
    return nbformat.writes(strip_outputs(notebook)) + "\n"


def configure_git_filter(repository: Path | None = None, python: str | None = None) -> bool:
    """Define the :data:`GIT_FILTER` driver in ``repository``'s git config (``.git/config``).

    Parameters
    ----------
    repository : Path, optional
        A git work tree; default: segkit's checkout.
    python : str, optional
        Interpreter that runs the filter; default: this one (the project's ``.venv``).

    Returns
    -------
    bool
        False when ``repository`` is not a git work tree (e.g. an unpacked release): nothing set.
    """
    repository = Path(repository or project_root())
    inside = subprocess.run(["git", "-C", str(repository), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return False
    command = f'"{python or sys.executable}" -m segkit.widgets.lab clean-filter'
    for key, value in ((f"filter.{GIT_FILTER}.clean", command), (f"filter.{GIT_FILTER}.smudge", "cat")):
        subprocess.run(["git", "-C", str(repository), "config", key, value], check=True)
    return True


def install_server_config(prefix: str | Path | None = None) -> Path:
    """Add :data:`LAB_SERVER_CONFIG` to the Jupyter server config of an environment.

    ``{prefix}/etc/jupyter/jupyter_server_config.json`` (``prefix``: this environment, the
    project's ``.venv``), which every Jupyter server of the environment reads: JupyterLab started
    by ``make lab``, by ``.venv/bin/jupyter lab`` or by the browser tests all save notebooks
    through :func:`pre_save_hook`. Other settings in the file are kept; idempotent.
    """
    path = Path(prefix or sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json"
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged = {**current, **{cls: {**current.get(cls, {}), **traits} for cls, traits in LAB_SERVER_CONFIG.items()}}
    if merged != current or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def server_arguments(config: Mapping[str, Mapping[str, Any]] = LAB_SERVER_CONFIG) -> list[str]:
    """Command-line form of ``config`` for ``jupyter lab`` (``--Class.trait=value``).

    Examples
    --------
    >>> server_arguments()
    ['--ContentsManager.pre_save_hook=segkit.widgets.lab.pre_save_hook']
    """
    return [f"--{cls}.{trait}={value}" for cls, traits in config.items() for trait, value in traits.items()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segkit.widgets.lab [lab ARGS… | server-config | git-filter | clean-filter]``.

    ``lab`` (the default) does ``server-config`` and ``git-filter``, then starts JupyterLab on
    ``notebooks/`` (extra ARGS go to it); ``server-config`` writes :func:`install_server_config`
    (``make`` runs it when it sets up ``.venv``); ``git-filter`` runs :func:`configure_git_filter`;
    ``clean-filter`` is the git filter itself (stdin → stdout).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["clean-filter"]:
        sys.stdout.buffer.write(clean_filter(sys.stdin.buffer.read().decode("utf-8")).encode("utf-8"))
        return 0
    if args[:1] == ["server-config"]:
        install_server_config()
        return 0
    configured = configure_git_filter()
    if configured:
        print(f"git: notebooks/*.ipynb are stored without outputs (filter {GIT_FILTER}).", flush=True)
    if args[:1] == ["git-filter"]:
        return 0 if configured else 1
    if args[:1] == ["lab"]:
        args = args[1:]
    install_server_config()
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={project_root() / 'notebooks'}", *args]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
