"""The ``.snnir`` file: a zip holding ``graph.json`` and one ``.npy`` per array.

Properties: no pickle anywhere (arrays are read with ``allow_pickle=False`` after their header is
checked against the member's size); deterministic bytes for equal graphs (fixed member order and
timestamps); atomic saves; every malformed, truncated or foreign file raises FormatError.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import FormatError, SnnirError
from ..ir.graph import Graph
from ..validate import validate
from .atomic import atomic_write
from .schema import check_json_value, graph_from_dict, graph_to_dict

GRAPH_MEMBER = "graph.json"
ARRAY_DIR = "arrays/"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: Refuse graph.json members larger than this (a graph description is a few MB at most).
MAX_GRAPH_JSON_BYTES = 64 * 2**20


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    return buffer.getvalue()


def save_snnir(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` (validated first; nothing is written if anything fails)."""
    validate(graph)
    check_json_value(dict(graph.metadata), "metadata")
    arrays: list[np.ndarray] = []

    def encode_array(array: np.ndarray) -> dict[str, str]:
        arrays.append(array)
        return {"npy": f"{ARRAY_DIR}{len(arrays) - 1:06d}.npy"}

    document = graph_to_dict(graph, encode_array)
    text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)

    def write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(_member(GRAPH_MEMBER), text.encode("utf-8"))
            for index, array in enumerate(arrays):
                archive.writestr(_member(f"{ARRAY_DIR}{index:06d}.npy"), _npy_bytes(array))

    return atomic_write(path, write)


class _ArrayReader:
    """Reads the .npy members referenced by graph.json, checking each header before the data."""

    def __init__(self, archive: zipfile.ZipFile, label: str):
        self.archive = archive
        self.label = label
        self.members = {info.filename: info for info in archive.infolist()}

    def __call__(self, raw: Any, where: str) -> np.ndarray:
        if not isinstance(raw, dict) or set(raw) != {"npy"} or not isinstance(raw["npy"], str):
            raise FormatError(f"{self.label}: {where}: expected an array reference {{'npy': 'arrays/...'}}, found {raw!r}")
        name = raw["npy"]
        info = self.members.get(name)
        if info is None or not name.startswith(ARRAY_DIR):
            raise FormatError(f"{self.label}: {where}: the archive has no array member {name!r}")
        try:
            with self.archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
                if dtype != np.dtype("<f4") or fortran:
                    raise FormatError(f"{self.label}: {where}: {name} holds {dtype} (fortran={fortran}); expected C-order float32")
                header_size = stream.tell()
                count = math.prod(shape)
                if header_size + 4 * count != info.file_size:
                    raise FormatError(
                        f"{self.label}: {where}: {name} declares shape {shape} ({4 * count} bytes) but holds "
                        f"{info.file_size - header_size} bytes of data"
                    )
                data = stream.read(4 * count)
        except FormatError:
            raise
        except Exception as error:  # noqa: BLE001 - numpy's header parser raises tokenize/syntax errors too
            raise FormatError(f"{self.label}: {where}: cannot read {name}: {type(error).__name__}: {error}") from None
        if len(data) != 4 * count:
            raise FormatError(f"{self.label}: {where}: {name} is truncated")
        return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)


def load_snnir(path: str | os.PathLike) -> Graph:
    """Read and validate a .snnir file.

    Raises FormatError for anything but a well-formed archive of a known version, and the validation
    error (GraphError, ShapeError), prefixed with the file name, for a well-formed but invalid graph.
    """
    label = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FormatError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{label}: is a directory, not a .snnir file") from None
    except Exception as error:  # noqa: BLE001 - a corrupt central directory raises many exception types
        raise FormatError(f"{label}: not a .snnir archive (zip): {type(error).__name__}: {error}") from None
    with archive:
        info = next((i for i in archive.infolist() if i.filename == GRAPH_MEMBER), None)
        if info is None:
            raise FormatError(f"{label}: the archive has no {GRAPH_MEMBER}; is this a .snnir file?")
        if info.file_size > MAX_GRAPH_JSON_BYTES:
            raise FormatError(f"{label}: {GRAPH_MEMBER} is {info.file_size} bytes, larger than the {MAX_GRAPH_JSON_BYTES} allowed")
        try:
            text = archive.read(info).decode("utf-8")
        except Exception as error:  # noqa: BLE001 - zipfile raises zlib.error, RuntimeError (encrypted), ...
            raise FormatError(f"{label}: cannot read {GRAPH_MEMBER}: {type(error).__name__}: {error}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise FormatError(f"{label}: {GRAPH_MEMBER} line {error.lineno} column {error.colno}: {error.msg}") from None
        except RecursionError:
            raise FormatError(f"{label}: {GRAPH_MEMBER} is nested too deeply") from None

        def locate(path_in_document: tuple) -> str:
            inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path_in_document)
            return f"{label}: {GRAPH_MEMBER}{inner}" if inner else f"{label}: {GRAPH_MEMBER}"

        graph = graph_from_dict(document, _ArrayReader(archive, label), locate)
    try:
        validate(graph)
    except SnnirError as error:
        raise type(error)(f"{label}: {error}") from None
    return graph


__all__ = ["save_snnir", "load_snnir", "GRAPH_MEMBER"]
