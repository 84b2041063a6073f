"""Fuzzing of the model loaders: mutated, truncated and ill-typed files must fail with an SnnirError.

A campaign takes valid files (one per conformance case, plus the examples), mutates each at the byte,
document or text level, and loads the result. Every outcome must be a loaded graph or an SnnirError;
any other exception, a case slower than ``SLOW_CASE_SECONDS`` or a memory blow-up (run the campaign
under an address-space limit: ``python -m snnir.testing.fuzz --memory-gb 3``) is a failure.

Formats register a writer, a loader and their mutators in :data:`FORMATS`; the ONNX and NIR loaders
add themselves when their packages import (see :func:`register_format`).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import SnnirError

SLOW_CASE_SECONDS = 5.0

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


# -- formats --------------------------------------------------------------------------------------
@dataclass
class FuzzFormat:
    """How to write a valid file, load one, and mutate one (``mutators`` map a name to bytes -> bytes)."""

    suffix: str
    write: Callable[[Any, Path], Any]
    load: Callable[[Path], Any]
    mutators: dict[str, Callable[[bytes, np.random.Generator], tuple[bytes, str]]] = field(default_factory=dict)


def _snnir_document_mutator(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    from ..formats.archive import GRAPH_MEMBER

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    description = ""
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == GRAPH_MEMBER:
                document, description = mutate_document(json.loads(content), rng)
                content = json.dumps(document, allow_nan=True).encode()
            elif info.filename.endswith(".npy") and rng.random() < 0.3:
                content, what = mutate_bytes(content, rng)
                description += f"; {info.filename}: {what}"
            target.writestr(info, content)
    return out.getvalue(), f"graph.json: {description}"


def _yaml_text_mutator(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    tokens = ["!!python/object/apply:os.system ['echo pwned']", "&a [*a]", "{", ":", "\t- x", "1e400", ".nan",
              "-.inf", "~", "? complex", "*undefined", "kind: Output", "<<: *a", "'unterminated", "- [" * 50]
    i = int(rng.integers(len(lines))) if lines else 0
    kind = rng.integers(4)
    if kind == 0 and lines:
        del lines[i]
        what = f"delete line {i + 1}"
    elif kind == 1 and len(lines) > 1:
        j = int(rng.integers(len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
        what = f"swap lines {i + 1} and {j + 1}"
    elif kind == 2:
        token = tokens[int(rng.integers(len(tokens)))]
        lines.insert(i, (" " * int(rng.integers(0, 6))) + token)
        what = f"insert {token!r} at line {i + 1}"
    else:
        text = "\n".join(lines)
        pos = int(rng.integers(max(len(text), 1)))
        text = text[:pos] + chr(int(rng.integers(32, 127))) + text[pos + 1 :]
        return text.encode(), f"replace the character at {pos}"
    return "\n".join(lines).encode(), what


def _yaml_document_mutator(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    import yaml

    document, what = mutate_document(yaml.safe_load(data), rng)
    # JSON is valid YAML flow style, and unlike PyYAML's dumper it can write the deeply nested values.
    return json.dumps(document, allow_nan=True).encode(), what


FORMATS: dict[str, FuzzFormat] = {}


def register_format(name: str, fuzz_format: FuzzFormat) -> None:
    FORMATS[name] = fuzz_format


def _register_core_formats() -> None:
    from ..formats.archive import load_snnir, save_snnir
    from ..formats.yaml_format import load_yaml, save_yaml

    register_format("snnir", FuzzFormat(".snnir", save_snnir, load_snnir, {"bytes": mutate_bytes, "document": _snnir_document_mutator}))
    register_format("yaml", FuzzFormat(".yaml", save_yaml, load_yaml, {"text": _yaml_text_mutator, "document": _yaml_document_mutator}))


_register_core_formats()


# -- campaigns ------------------------------------------------------------------------------------
def seed_graphs() -> list[Any]:
    """Valid graphs to mutate: every conformance case."""
    from .conformance import CASES

    return [case.build()[0] for case in CASES.values()]


def run_campaign(format_name: str, cases: int, seed: int = 0) -> Counter:
    """Mutate and load ``cases`` files; returns outcome counts. Raises AssertionError on a bad outcome."""
    spec = FORMATS[format_name]
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    with tempfile.TemporaryDirectory() as folder:
        originals = []
        for index, graph in enumerate(seed_graphs()):
            path = Path(folder) / f"seed{index}{spec.suffix}"
            try:
                spec.write(graph, path)
            except SnnirError:  # a format that cannot express this graph (e.g. NIR) just skips it
                continue
            originals.append(path.read_bytes())
        mutators = list(spec.mutators.items())
        target = Path(folder) / f"mutated{spec.suffix}"
        for case in range(cases):
            original = originals[int(rng.integers(len(originals)))]
            mutator_name, mutator = mutators[int(rng.integers(len(mutators)))]
            data, description = mutator(original, rng)
            target.write_bytes(data)
            start = time.perf_counter()
            try:
                spec.load(target)
                outcome = "loaded"
            except SnnirError as error:
                outcome = type(error).__name__
            except Exception as error:  # noqa: BLE001 - the point is to catch anything else
                raise AssertionError(
                    f"{format_name} case {case} ({mutator_name}: {description}) raised "
                    f"{type(error).__name__}: {error}"
                ) from error
            elapsed = time.perf_counter() - start
            if elapsed > SLOW_CASE_SECONDS:
                raise AssertionError(f"{format_name} case {case} ({mutator_name}: {description}) took {elapsed:.1f} s")
            outcomes[outcome] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz snnir's loaders; prints outcome counts as JSON.")
    parser.add_argument("--format", action="append", help="format(s) to fuzz (default: all registered)")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=None, help="address-space limit for this process")
    args = parser.parse_args(argv)
    if args.memory_gb:
        import resource

        limit = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for module in ("snnir.backends.onnx_export", "snnir.frontends.nir"):
        try:  # importing registers their loaders here, when their dependencies are installed
            __import__(module)
        except ImportError:
            pass
    names = args.format or list(FORMATS)
    report = {name: dict(run_campaign(name, args.cases, args.seed)) for name in names}
    json.dump(report, sys.stdout)
    print()
    return 0


if __name__ == "__main__":  # run the importable module's main: plug-in formats register in its FORMATS
    from snnir.testing.fuzz import main as _main

    raise SystemExit(_main())


__all__ = ["FuzzFormat", "FORMATS", "register_format", "run_campaign", "mutate_bytes", "mutate_document"]
