"""Fuzzing of the model loaders: mutated, truncated and ill-typed files must fail with an SnnirError.

A campaign takes valid files (one per conformance case, plus the examples), mutates each at the byte,
document or text level, and loads the result. Every outcome must be a loaded graph or an SnnirError;
any other exception, a case slower than ``SLOW_CASE_SECONDS`` or a memory blow-up (run the campaign
under an address-space limit: ``python -m snnir.testing.fuzz --memory-gb 3``) is a failure.

Formats register a writer, a loader and their mutators in :data:`FORMATS`; the ONNX formats come from
``snnir.backends.onnx_export.fuzzing`` and the NIR format is added when ``snnir[nir]`` is installed.
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
from pathlib import Path

import numpy as np

from ..errors import SnnirError
from .mutations import FuzzFormat, mutate_bytes, mutate_document

SLOW_CASE_SECONDS = 5.0


# -- formats --------------------------------------------------------------------------------------
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

#: Modules defining a ``FORMATS`` dict of extra formats to fuzz, used when their dependencies import.
PLUGIN_FORMAT_MODULES = ("snnir.backends.onnx_export.fuzzing",)


def _register_optional_formats() -> None:
    import importlib

    for module_name in PLUGIN_FORMAT_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, fuzz_format in module.FORMATS.items():
            register_format(name, fuzz_format)
    try:
        from ..frontends.nir import load_nir, save_nir, reading
    except ImportError:
        return

    def load_quickly(path: Path):
        """Corrupt HDF5 can hang its reader: give up well inside SLOW_CASE_SECONDS."""
        default, reading.READ_TIMEOUT = reading.READ_TIMEOUT, 2.0
        try:
            return load_nir(path)
        finally:
            reading.READ_TIMEOUT = default

    register_format("nir", FuzzFormat(".nir", save_nir, load_quickly, {"bytes": mutate_bytes}))


_register_optional_formats()


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
    names = args.format or list(FORMATS)
    report = {name: dict(run_campaign(name, args.cases, args.seed)) for name in names}
    json.dump(report, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["FORMATS", "register_format", "run_campaign", "PLUGIN_FORMAT_MODULES"]
