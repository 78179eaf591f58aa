"""Markdown table of benchmark results: ratios first, then medians and peak memory.

Examples
--------
>>> doc = {"smoke": True, "machine": {"cpus": 2, "memory_gb": 24}, "cases": [
...     {"case": "c", "description": "d", "baseline": "b", "target": "t", "contenders": {
...         "b": {"ok": True, "median_seconds": 2.0, "median_peak_mb": 100.0, "repeats": 3,
...               "time_ratio_vs_baseline": 1.0, "memory_ratio_vs_baseline": 1.0},
...         "s": {"ok": True, "median_seconds": 1.0, "median_peak_mb": 50.0, "repeats": 3,
...               "time_ratio_vs_baseline": 0.5, "memory_ratio_vs_baseline": 0.5}}}]}
>>> print(next(l for l in markdown_table(doc).splitlines() if l.startswith("| c | s")))
| c | s | 0.50× | 0.50× | 1.00 s | 50 MB | 3 |
"""

from __future__ import annotations

from typing import Any

__all__ = ["markdown_table"]


def _ratio(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}×"


def markdown_table(doc: dict) -> str:
    m = doc.get("machine", {})
    lines = [
        f"Machine: {m.get('cpus')} cores, {m.get('memory_gb')} GB RAM, {m.get('platform', '')}; "
        f"python {m.get('python', '')}, pandas {m.get('pandas', '')}, duckdb {m.get('duckdb', '')}"
        + (f", pyspark {m['pyspark']}." if m.get("pyspark") else ".")
        + (" SMOKE RUN: sizes are tiny, numbers mean nothing." if doc.get("smoke") else ""),
        "",
        "Ratios are contender ÷ baseline of the same case, measured in the same run (time: median "
        "of repeats; memory: whole-process peak RSS). Below 1 = faster / smaller than the baseline.",
        "",
        "| case | contender | time vs baseline | memory vs baseline | median time | peak memory | repeats |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in doc["cases"]:
        for name, c in case["contenders"].items():
            label = f"{name} (baseline)" if name == case["baseline"] else name
            if not c.get("ok"):
                lines.append(f"| {case['case']} | {label} | failed: {c.get('error', '')[:80]} | | | | |")
                continue
            lines.append(
                f"| {case['case']} | {label} | {_ratio(c.get('time_ratio_vs_baseline'))} | "
                f"{_ratio(c.get('memory_ratio_vs_baseline'))} | {c['median_seconds']:.2f} s | "
                f"{c['median_peak_mb']:.0f} MB | {c['repeats']} |")
    targets = [f"- **{c['case']}**: {c['target']}" for c in doc["cases"] if c.get("target")]
    if targets:
        lines += ["", "Targets:", ""] + targets
    return "\n".join(lines) + "\n"
