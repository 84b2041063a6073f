"""Reproducible benchmarks: ``make bench`` (or ``python -m benchmarks [name ...]``) runs every ``bench_*.py``.

Each script compares snnir against its peers (snnTorch, onnxruntime, our other backends) in the same
process, prints medians, ratios and thread counts, and writes ``benchmarks/results/<name>.json``.
"""
