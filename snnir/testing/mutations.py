"""Mutations for fuzzing file readers: byte-level corruption and JSON-like document edits.

Used by :mod:`snnir.testing.fuzz` and by the fuzz registrations of optional formats
(``snnir.backends.onnx_export.fuzzing``), so that neither imports the other's registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: Values that break naive readers: wrong types, huge numbers and sizes, deep nesting, path tricks.
NASTY_VALUES: list[Any] = [
    None, True, -1, 0, 2**63, 1e308, float("nan"), "", "x" * 1000, [], {}, [[[[[[[[[[[]]]]]]]]]]],
    [10**9, 10**9, 10**9], [1.5], {"init": "default"}, {"init": "uniform", "low": 2, "high": 1},
    {"npy": "arrays/000000.npy"}, {"npy": "../../etc/passwd"}, "LIF", {"kind": "Output"},
]


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# -- mutators -------------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random byte-level corruption: flips, truncation, insertion, deletion or zeroing."""
    buffer = bytearray(data)
    kind = rng.integers(5)
    if kind == 0 or not buffer:
        count = int(rng.integers(1, 16))
        for _ in range(count):
            if buffer:
                i = int(rng.integers(len(buffer)))
                buffer[i] ^= 1 << int(rng.integers(8))
        return bytes(buffer), f"flip {count} bits"
    i = int(rng.integers(len(buffer)))
    if kind == 1:
        return bytes(buffer[:i]), f"truncate at {i}"
    if kind == 2:
        junk = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        return bytes(buffer[:i] + junk + buffer[i:]), f"insert {len(junk)} bytes at {i}"
    j = min(len(buffer), i + int(rng.integers(1, 256)))
    if kind == 3:
        return bytes(buffer[:i] + buffer[j:]), f"delete {i}:{j}"
    buffer[i:j] = bytes(j - i)
    return bytes(buffer), f"zero {i}:{j}"


def _paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            paths += _paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths += _paths(value, prefix + (index,))
    return paths


def mutate_document(document: Any, rng: np.random.Generator) -> tuple[Any, str]:
    """Replace, delete or add one value somewhere in a JSON-like document (a deep copy is mutated)."""
    document = json.loads(json.dumps(document, allow_nan=True))
    paths = [p for p in _paths(document) if p]
    if not paths:
        return NASTY_VALUES[int(rng.integers(len(NASTY_VALUES)))], "replace the document"
    path = paths[int(rng.integers(len(paths)))]
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    choice = rng.integers(4)
    if choice == 0:
        value: Any = _deep(int(rng.integers(100, 800)))  # deeper values could not even be written
    else:
        value = NASTY_VALUES[int(rng.integers(len(NASTY_VALUES)))]
    if choice == 1 and isinstance(parent, dict):
        del parent[path[-1]]
        return document, f"delete {path}"
    if choice == 2 and isinstance(parent, dict):
        parent[f"extra_{int(rng.integers(100))}"] = value
        return document, f"add a key beside {path}"
    parent[path[-1]] = value
    shown = "a deeply nested list" if choice == 0 else repr(value)[:40]
    return document, f"set {path} = {shown}"


@dataclass
class FuzzFormat:
    """How to write a valid file, load one, and mutate one (``mutators`` map a name to bytes -> bytes)."""

    suffix: str
    write: Callable[[Any, Path], Any]
    load: Callable[[Path], Any]
    mutators: dict[str, Callable[[bytes, np.random.Generator], tuple[bytes, str]]] = field(default_factory=dict)


__all__ = ["NASTY_VALUES", "mutate_bytes", "mutate_document", "FuzzFormat"]
