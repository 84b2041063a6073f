"""Compilation backends, installed as ``snnir.backends.<name>`` (pytorch, numba_cpu, onnx_export).

Each backend imports its optional dependency itself; ``snnir.registry`` maps the public names
("torch", "numba", "onnx") to these modules and reports a missing extra clearly.
"""
