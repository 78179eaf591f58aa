"""Kernels started ahead of the notebooks that run in them.

Every notebook of a run pays a fixed cost before its first result: starting a kernel (~0.6 s)
and importing pandas, scikit-learn, matplotlib and segkit (1.5–3 s). ``segkit run`` hides most
of it: while one notebook computes, the kernel of a notebook that comes next is started in a
:class:`NotebookJob` and **preloads the modules that notebook imports** (:func:`imported_modules`).
Preloading only fills ``sys.modules``: no name is bound in the notebook's namespace and the
execution count stays at 0, so the notebook runs exactly as in a fresh kernel, its own import
cell just finds the modules loaded. A module that fails to import is ignored here; the
notebook's own import then raises the error where the reader sees it.

Each job runs in its own thread with its own event loop: the kernel is started, preloaded,
used by papermill and shut down in that thread, so several notebooks can run at once
(see ``run.workers`` and :data:`segkit.steps.pipeline.UPSTREAM`).

Examples
--------
>>> preload_code(["pandas", "segkit.rfm"]).splitlines()[-2]
"__segkit_preload(['pandas', 'segkit.rfm'])"
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import nbformat

__all__ = ["module_names", "imported_modules", "preload_code", "peak_memory_mb", "kernel_peak_memory_mb",
    "NotebookJob"]


def module_names(nodes: Iterable[ast.AST]) -> list[str]:
    """Modules named by the ``import`` / ``from … import`` statements among ``nodes``, in order,
    without repeats; relative imports are ignored.

    Examples
    --------
    >>> module_names(ast.parse("import a.b, c\\nfrom .x import y\\nfrom d import e\\nimport a.b").body)
    ['a.b', 'c', 'd']
    """
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return list(dict.fromkeys(names))


def imported_modules(notebook: str | Path) -> list[str]:
    """Modules a notebook imports at the top level of its code cells, in order of appearance.

    The ``parameters`` cell and cells that are not plain Python (IPython magics) are skipped;
    relative imports are ignored.

    Examples
    --------
    >>> import tempfile
    >>> nb = nbformat.v4.new_notebook(cells=[
    ...     nbformat.v4.new_code_cell("run_dir = None", metadata={"tags": ["parameters"]}),
    ...     nbformat.v4.new_code_cell("import pandas as pd\\nfrom segkit.rfm import rfm_table\\n"
    ...                               "def f():\\n    import json"),
    ...     nbformat.v4.new_code_cell("%matplotlib inline")])
    >>> path = Path(tempfile.mkdtemp()) / "nb.ipynb"; nbformat.write(nb, path)
    >>> imported_modules(path)
    ['pandas', 'segkit.rfm']
    """
    nb = nbformat.read(str(notebook), as_version=4)
    statements: list[ast.stmt] = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            statements += ast.parse(cell.source).body
        except SyntaxError:
            continue
    return module_names(statements)


def preload_code(modules: Sequence[str]) -> str:
    """Code that imports ``modules`` into ``sys.modules`` and leaves the namespace as it was."""
    return ("def __segkit_preload(names):\n"
            "    import importlib\n"
            "    for name in names:\n"
            "        try:\n"
            "            importlib.import_module(name)\n"
            "        except Exception:\n"
            "            pass\n"
            f"__segkit_preload({list(modules)!r})\n"
            "del __segkit_preload\n")


def peak_memory_mb(pid: int | None) -> float | None:
    """Peak resident memory of process ``pid`` in MB (``VmHWM`` of ``/proc/<pid>/status``).

    None when the process is gone or the system has no ``/proc`` (macOS, Windows).

    Examples
    --------
    >>> import os, sys
    >>> peak = peak_memory_mb(os.getpid())
    >>> peak is None or peak > 1 or sys.platform != "linux"
    True
    """
    if not pid:
        return None
    try:
        with open(f"/proc/{int(pid)}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def kernel_peak_memory_mb(km: Any) -> float | None:
    """:func:`peak_memory_mb` of the kernel process of a kernel manager (None without one)."""
    return peak_memory_mb(getattr(getattr(km, "provisioner", None), "pid", None))


async def _wait_for_reply(kc: Any, msg_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        msg = await kc.get_shell_msg(timeout=remaining)
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            return


class NotebookJob:
    """One notebook: its kernel started (and preloaded) now, the notebook run when :meth:`start`
    is called, in a thread of its own.

    Parameters
    ----------
    name : str
        Notebook name (for the thread's name).
    work : callable
        ``work(km)`` runs the notebook in the started kernel manager (``None`` when the kernel
        could not be started ahead: papermill then starts one itself and reports why it fails).
        Its return value becomes :attr:`outcome` (and :attr:`executed` is set: the notebook's
        artifacts are written, notebooks downstream may start), an exception :attr:`error`.
    finish : callable, optional
        ``finish(outcome)`` runs next in the same thread (the HTML export); its return value
        becomes :attr:`result` (default: the outcome). :attr:`done` is set after it.
    kernel_name : str
        Kernelspec.
    cwd : Path
        Working directory of the kernel.
    modules : sequence of str
        Modules to preload (:func:`imported_modules`).
    extra_arguments : sequence of str
        Extra kernel command-line arguments.
    startup_timeout : float
        Seconds to wait for the kernel to answer (a safety net, not a performance bound).
    """

    def __init__(self, name: str, work: Callable[[Any], Any], kernel_name: str, cwd: Path,
                 modules: Sequence[str] = (), extra_arguments: Sequence[str] = (),
                 startup_timeout: float = 300, finish: Callable[[Any], Any] | None = None):
        self.name = name
        self.work = work
        self.finish = finish
        self.kernel_name = kernel_name
        self.cwd = Path(cwd)
        self.modules = list(modules)
        self.extra_arguments = list(extra_arguments)
        self.startup_timeout = startup_timeout
        self.km: Any = None
        self.outcome: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.ready = threading.Event()     # kernel started and preloaded (or failed to start)
        self.executed = threading.Event()  # the notebook ran (outcome or error is set)
        self.done = threading.Event()      # and finish() too
        self._go = threading.Event()
        self._cancelled = False
        self._thread = threading.Thread(target=self._main, name=f"segkit-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control (any thread)
    def start(self) -> None:
        """Run the notebook (in the kernel started ahead, once it is ready)."""
        self.started_at = time.perf_counter()
        self._go.set()

    def cancel(self) -> None:
        """Do not run the notebook; shut its kernel down."""
        self._cancelled = True
        self._go.set()

    def signal_kernel(self, signum: int = signal.SIGINT) -> bool:
        """Send ``signum`` to the kernel's process group (SIGINT interrupts the running cell)."""
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if not pid:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            try:
                os.killpg(os.getpgid(pid), signum)
            except (AttributeError, ProcessLookupError, PermissionError):
                os.kill(pid, signum)
            return True
        return False

    # ------------------------------------------------------------------ the thread
    def _main(self) -> None:
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        try:
            self.km = loop.run_until_complete(self._start_kernel())
        except Exception:  # noqa: BLE001 - papermill starts its own kernel and reports the problem
            self.km = None
        self.ready.set()
        self._go.wait()
        try:
            if not self._cancelled:
                self.outcome = self.result = self.work(self.km)
                self.executed.set()
                if self.finish is not None:
                    self.result = self.finish(self.outcome)
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduling thread
            self.error = exc
        finally:
            if self.km is not None:  # normally already shut down by nbclient
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._shutdown(self.km))
            self.executed.set()
            self.done.set()

    async def _start_kernel(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(kernel_name=self.kernel_name)
        await km.start_kernel(cwd=str(self.cwd), extra_arguments=self.extra_arguments)
        try:
            kc = km.client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=self.startup_timeout)
                if self.modules:
                    msg_id = kc.execute(preload_code(self.modules), silent=True, store_history=False,
                                        allow_stdin=False)
                    with contextlib.suppress(Exception):  # queue.Empty on timeout: run anyway
                        await _wait_for_reply(kc, msg_id, self.startup_timeout)
            finally:
                kc.stop_channels()
        except BaseException:
            await self._shutdown(km)
            raise
        return km

    @staticmethod
    async def _shutdown(km: Any) -> None:
        if km.has_kernel and await km.is_alive():
            await km.shutdown_kernel(now=True)
        with contextlib.suppress(Exception):
            await km.cleanup_resources()
