"""Reading ``.nir`` files (HDF5) without trusting the file: a corrupt file never hangs or crashes us.

The HDF5 library can loop forever or crash on some corrupt files (the loader fuzzer found such cases),
and neither can be interrupted from Python. Where ``fork`` exists, the file is therefore parsed in a
short-lived forked child (cheap: the child shares the loaded modules) that hands back the parsed
``nir.NIRGraph``; the parent waits at most ``timeout`` seconds and turns a hang, a crash or any reader
exception into a :class:`FormatError`. Without ``fork`` (Windows) the file is read in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import nir

from snnir.errors import FormatError

#: Seconds a single .nir file may take to parse (real files take milliseconds).
READ_TIMEOUT = 60.0


def _parse(path: Path) -> nir.NIRGraph:
    """``nir.read`` with NIR's type check when it passes, without it otherwise (old or untyped files)."""
    try:
        return nir.read(path)
    except Exception:  # noqa: BLE001 - NIR's type inference rejects some valid graphs; our validation follows
        pass
    try:
        return nir.read(path, type_check=False)
    except Exception as error:  # noqa: BLE001 - h5py and nir raise anything from OSError to AssertionError
        raise FormatError(f"{path}: not a readable NIR file ({type(error).__name__}: {error})") from None


def _child(path: Path, connection) -> None:
    try:
        connection.send_bytes(pickle.dumps(("ok", _parse(path))))
    except FormatError as error:
        connection.send_bytes(pickle.dumps(("error", str(error))))
    except BaseException as error:  # noqa: BLE001 - report anything to the parent, then exit
        connection.send_bytes(pickle.dumps(("error", f"{path}: not a readable NIR file ({type(error).__name__}: {error})")))
    finally:
        connection.close()


def read_nir(path: str | os.PathLike, *, timeout: float | None = None) -> nir.NIRGraph:
    """Parse a ``.nir`` file into a ``nir.NIRGraph``; every failure is a FormatError naming the file.

    ``timeout`` defaults to :data:`READ_TIMEOUT` (read at call time, so harnesses can lower it).
    """
    timeout = READ_TIMEOUT if timeout is None else timeout
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: " + ("is a directory, not a .nir file" if path.is_dir() else "no such file"))
    if "fork" not in multiprocessing.get_all_start_methods():
        return _parse(path)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(path, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise FormatError(f"{path}: reading the NIR (HDF5) file did not finish within {timeout:g} s; the file is corrupt")
        status, payload = pickle.loads(receiver.recv_bytes())  # our own child's reply, not the file's bytes
    except EOFError:
        child.join(5)
        raise FormatError(f"{path}: the HDF5 reader crashed on this file (exit code {child.exitcode}); the file is corrupt") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if status == "error":
        raise FormatError(payload)
    return payload


__all__ = ["read_nir", "READ_TIMEOUT"]
