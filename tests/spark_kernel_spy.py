"""An IPython startup script: what each notebook kernel of a Spark ``segkit run`` brings to its driver.

Not a test module, and not imported by the kernels: ``tests/test_spark_pipeline.py::runs`` copies it into
``<IPYTHONDIR>/profile_default/startup/`` of a temporary IPython folder and gives the Spark run (only)
``IPYTHONDIR`` and ``SEGKIT_TEST_KERNEL_SPY`` (a folder) in its environment, so that every kernel papermill
starts for that run executes it before its first cell. It patches, once each module is imported (so
that nothing is imported earlier than the notebook would import it):

* pyspark's ``DataFrame`` (``pyspark.sql.classic.dataframe``, the class whose actions run in a local
  session) ``collect``, ``toPandas``, ``toArrow``, ``take``, ``head``, ``tail`` and ``toLocalIterator``:
  one record per call, after it returns (nested calls, such as ``take``'s ``collect``, first), with the
  frame's columns and the result's size;
* ``segkit.steps.pipeline.RunContext.read_artifact``: one record per artifact read into pandas; and
  ``open_run``, which names the notebook of the records that follow;
* ``build_*_artifacts`` of ``segkit.steps.{audit,rfm,cluster,lifecycle,campaign}``: the records made while
  one runs carry its name (``step``), and its result is pickled to ``<notebook>.pickle`` (not the audit's,
  which holds Spark frames);
* ``warnings.showwarning`` (the documented hook): a FutureWarning shown while a step runs is recorded. No
  warning filter is touched: changing one resets Python's memory of the warnings already shown, which
  would show again, in the notebook, a warning the kernel's preloading issued unseen;
* ``write_run_segments`` as ``segkit.steps.{rfm,cluster,lifecycle}`` call it: recorded, and nothing is
  recorded while it runs (the spy tests leave out the CSV, collected up to ``CSV_MAX_ROWS`` by design).

Records are JSON lines appended to ``records.jsonl`` of that folder (under a lock: notebooks run side by
side), each with the kernel's pid. The file defines one function and deletes it again, so the
notebook's namespace is unchanged.
"""


def _segkit_kernel_spy() -> None:
    """Install the patches described above in this kernel (a no-op without ``SEGKIT_TEST_KERNEL_SPY``)."""
    import fcntl
    import functools
    import importlib.abc
    import json
    import os
    import pickle
    import sys
    import warnings
    from pathlib import Path

    folder = os.environ.get("SEGKIT_TEST_KERNEL_SPY")
    if not folder:
        return
    records = Path(folder) / "records.jsonl"
    state: dict = {"notebook": None, "step": None, "step_ctx": None, "paused": False}

    def record(kind: str, **fields) -> None:
        if state["paused"] and kind in ("action", "artifact"):
            return
        line = json.dumps({"kind": kind, "pid": os.getpid(), "notebook": state["notebook"], "step": state["step"],
                           **fields}, default=str)
        with open(records, "a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(line + "\n")

    def spy_dataframe(module) -> None:
        frame_class = module.DataFrame
        for name in ("collect", "toPandas", "toArrow", "take", "head", "tail"):
            original = getattr(frame_class, name)

            def spied(frame, *args, __original=original, __name=name, **kwargs):
                result = __original(frame, *args, **kwargs)
                import pandas as pd

                length = len(result) if isinstance(result, (list, pd.DataFrame)) else 1  # CollectSpy's measure
                rows = (result.num_rows if hasattr(result, "num_rows")
                        else len(result) if hasattr(result, "__len__") else 1)
                record("action", method=__name, columns=list(frame.columns), length=length, rows=rows)
                return result
            setattr(frame_class, name, functools.wraps(original)(spied))
        iterate = frame_class.toLocalIterator

        def iterated(frame, *args, **kwargs):
            count, completed = 0, False
            try:
                for row in iterate(frame, *args, **kwargs):
                    count += 1
                    yield row
                completed = True
            finally:
                record("action", method="toLocalIterator", columns=list(frame.columns), length=count, rows=count,
                       completed=completed)
        frame_class.toLocalIterator = functools.wraps(iterate)(iterated)

    def spy_pipeline(module) -> None:
        read, open_run = module.RunContext.read_artifact, module.open_run

        def read_artifact(ctx, name, *args, **kwargs):
            record("artifact", name=name)
            return read(ctx, name, *args, **kwargs)

        def opened(notebook, *args, **kwargs):
            state["notebook"] = notebook
            return open_run(notebook, *args, **kwargs)
        module.RunContext.read_artifact = functools.wraps(read)(read_artifact)
        module.open_run = functools.wraps(open_run)(opened)

    def spy_step(build_name: str, writes_segments: bool, pickles: bool = True):
        def patch(module) -> None:
            build = getattr(module, build_name)

            def built(ctx, *args, **kwargs):
                state.update(notebook=ctx.notebook, step=build_name, step_ctx=ctx)
                record("step", phase="start")
                try:
                    result = build(ctx, *args, **kwargs)
                except BaseException as exc:
                    record("step", phase="error", error=repr(exc))
                    raise
                finally:
                    state.update(step=None, step_ctx=None)
                partitions = None
                if "pyspark.sql" in sys.modules:  # the shuffle partitions of the session the step ran on, if any
                    session = sys.modules["pyspark.sql"].SparkSession.getActiveSession()
                    partitions = int(session.conf.get("spark.sql.shuffle.partitions")) if session else None
                pickled = Path(folder) / f"{ctx.notebook}.pickle" if pickles else None
                try:
                    if pickled is not None:
                        pickled.write_bytes(pickle.dumps(result))
                    record("step", phase="end", step=build_name, pickled=pickled and str(pickled),
                           shuffle_partitions=partitions)
                except Exception as exc:  # noqa: BLE001 - the test says why it has no result
                    record("step", phase="end", step=build_name, pickled=None, error=repr(exc),
                           shuffle_partitions=partitions)
                return result
            setattr(module, build_name, functools.wraps(build)(built))
            if writes_segments:
                write = module.write_run_segments

                def written(ctx, *args, **kwargs):
                    record("write_run_segments", of_the_step=ctx is state["step_ctx"], ctx_notebook=ctx.notebook)
                    state["paused"] = True
                    try:
                        return write(ctx, *args, **kwargs)
                    finally:
                        state["paused"] = False
                module.write_run_segments = functools.wraps(write)(written)
        return patch

    patches = {
        "pyspark.sql.classic.dataframe": spy_dataframe,
        "segkit.steps.pipeline": spy_pipeline,
        "segkit.steps.audit": spy_step("build_audit_artifacts", False, pickles=False),  # holds Spark frames
        "segkit.steps.rfm": spy_step("build_rfm_artifacts", True),
        "segkit.steps.cluster": spy_step("build_cluster_artifacts", True),
        "segkit.steps.lifecycle": spy_step("build_lifecycle_artifacts", True),
        "segkit.steps.campaign": spy_step("build_campaign_artifacts", False),
    }

    class PatchedLoader(importlib.abc.Loader):
        """The module's own loader; the module is patched once it has run."""

        def __init__(self, loader, patch):
            self.loader, self.patch = loader, patch

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def create_module(self, spec):
            return self.loader.create_module(spec)

        def exec_module(self, module):
            self.loader.exec_module(module)
            self.patch(module)

    class AfterImport(importlib.abc.MetaPathFinder):
        """Finds the patched modules with the other finders and patches them after their first import."""

        def find_spec(self, name, path, target=None):
            if name not in patches:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    spec.loader = PatchedLoader(spec.loader, patches.pop(name))
                    return spec
            return None

    show = warnings.showwarning

    def shown(message, category, filename, lineno, file=None, line=None):
        """Record a FutureWarning a step lets out as it is shown (filters and their memory untouched)."""
        if state["step"] and issubclass(category, FutureWarning):
            record("warning", category=category.__name__, message=str(message), filename=filename, lineno=lineno)
        return show(message, category, filename, lineno, file, line)
    warnings.showwarning = shown
    for name in list(patches):  # already imported (none normally): patched now
        if name in sys.modules:
            patches.pop(name)(sys.modules[name])
    sys.meta_path.insert(0, AfterImport())
    record("kernel", argv=sys.argv)


_segkit_kernel_spy()
del _segkit_kernel_spy
