"""Benchmarks: ``python -m segkit.bench`` (``make bench``) — ratios against baselines measured
in the same run, medians over repeats, whole-process peak memory. See :mod:`segkit.bench.harness`.
"""
