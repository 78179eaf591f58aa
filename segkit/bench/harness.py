"""Measurement harness: contenders run in fresh processes, interleaved, repeated; medians.

A :class:`Case` compares contenders on the same data; the first contender is the baseline and
every figure is reported as a ratio against it (these machines are shared and noisy, absolute
seconds alone mean little). Peak memory is the whole process's maximum resident set size,
read from the child's ``rusage`` (``os.wait4``), or the larger peak a contender reports as
``peak_mb`` in its result for work done in processes of its own (``segkit run``'s kernels).

Examples
--------
>>> c = Case("demo", [Contender("baseline", "statistics:mean", {"data": [1, 2]}),
...                    Contender("other", "statistics:median", {"data": [1, 2, 9]})], repeats=1)
>>> res = run_case(c)
>>> [(name, r["ok"], r["result"]) for name, r in sorted(res["contenders"].items())]
[('baseline', True, 1.5), ('other', True, 2)]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Contender", "Case", "measure", "run_case"]


@dataclass
class Contender:
    """One way of doing the case's work: a ``module:function`` called with ``kwargs``."""

    name: str
    func: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass
class Case:
    """Contenders doing the same work on the same data; the first one is the baseline."""

    name: str
    contenders: list[Contender]
    repeats: int = 3
    description: str = ""
    # How to read the ratio: "time" → contender / baseline (lower is better for segkit when
    # segkit is not the baseline); targets are documented per case.
    target: str = ""


def measure(contender: Contender) -> dict[str, Any]:
    """Run ``contender`` once in a fresh Python process: in-process seconds and the child's own
    peak RSS (reaped with ``os.wait4``, so one measurement never inherits another's peak)."""
    spec = json.dumps({"func": contender.func, "kwargs": contender.kwargs})
    env = dict(os.environ, SEGKIT_QUIET="1", PYTHONHASHSEED="0")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    wall0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        os.execve(sys.executable, [sys.executable, "-m", "segkit.bench.worker", spec], env)
    os.close(out_w)
    os.close(err_w)
    out_chunks, err_chunks = [], []
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, out_chunks)
    sel.register(err_r, selectors.EVENT_READ, err_chunks)
    deadline = None if contender.timeout is None else wall0 + contender.timeout
    timed_out = False
    while sel.get_map():
        remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
        events = sel.select(timeout=remaining)
        if not events and deadline is not None and time.perf_counter() >= deadline:
            os.kill(pid, 9)
            timed_out = True
            break
        for key, _ in events:
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
                os.close(key.fd)
            else:
                key.data.append(data)
    for fd in list(sel.get_map()):
        sel.unregister(fd)
        os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - wall0
    out = b"".join(out_chunks).decode(errors="replace")
    err = b"".join(err_chunks).decode(errors="replace")
    if timed_out:
        return {"ok": False, "error": f"timed out after {contender.timeout} s"}
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        return {"ok": False, "error": f"exit {code}: {tail}"}
    line = next((l for l in out.splitlines() if l.startswith("SEGKIT-BENCH ")), None)
    if line is None:
        return {"ok": False, "error": "worker printed no result"}
    payload = json.loads(line[len("SEGKIT-BENCH "):])
    peak = usage.ru_maxrss / 1024
    reported = payload["result"].get("peak_mb") if isinstance(payload["result"], dict) else None
    if reported is not None:  # work done in other processes (notebook kernels): the largest peak counts
        peak = max(peak, float(reported))
    return {"ok": True, "seconds": payload["seconds"], "wall_seconds": wall,
            "peak_mb": peak, "result": payload["result"]}


def run_case(case: Case, log=None) -> dict[str, Any]:
    """Run every contender ``case.repeats`` times, interleaved; medians and ratios to baseline."""
    runs: dict[str, list[dict]] = {c.name: [] for c in case.contenders}
    for rep in range(case.repeats):
        for contender in case.contenders:
            if runs[contender.name] and not runs[contender.name][-1]["ok"]:
                continue  # failed once (e.g. timeout): do not retry
            r = measure(contender)
            runs[contender.name].append(r)
            if log:
                what = f"{r['seconds']:.3f} s, {r['peak_mb']:.0f} MB" if r["ok"] else r["error"]
                log(f"  {case.name} / {contender.name} [{rep + 1}/{case.repeats}]: {what}")
    base = case.contenders[0].name
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r["ok"]]
        if not ok:
            summary[name] = {"ok": False, "error": rs[-1]["error"] if rs else "not run"}
            continue
        summary[name] = {
            "ok": True,
            "repeats": len(ok),
            "median_seconds": statistics.median(r["seconds"] for r in ok),
            "median_peak_mb": statistics.median(r["peak_mb"] for r in ok),
            "all_seconds": [r["seconds"] for r in ok],
            "result": ok[-1]["result"],
        }
    b = summary.get(base, {})
    for name, s in summary.items():
        if s.get("ok") and b.get("ok"):
            s["time_ratio_vs_baseline"] = s["median_seconds"] / b["median_seconds"] if b["median_seconds"] else None
            s["memory_ratio_vs_baseline"] = s["median_peak_mb"] / b["median_peak_mb"]
    return {"case": case.name, "description": case.description, "baseline": base,
            "target": case.target, "contenders": summary}
