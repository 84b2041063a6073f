"""Every writer of snnir is atomic and fails clearly (snnir.formats.atomic).

Each writer meets each way a write goes wrong: a missing directory, a file where the directory should
be, a directory where the file should be, a read-only file, a directory it may not write in, a disk that
fills up in the middle, an fsync that fails, Ctrl-C in the middle. Expected: a WriteError (a SnnirError
and an OSError) naming the target and the cause, or the KeyboardInterrupt itself; the previous file
intact; no temporary file left behind. Writers of several files (``snnir plot``, the demo) write each
file atomically into a directory they create first, and the CLI checks its outputs before training.
"""

import errno
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import snnir
from snnir.cli import main
from snnir.errors import SnnirError
from snnir.formats import atomic
from snnir import WriteError
from snnir.formats.atomic import atomic_write, make_directory
from snnir.testing import CASES

ROOT = Path(__file__).resolve().parents[2]
OLD = b"previous content"


def _graph():
    return CASES["seed_fc"].build()[0]


def _save(path):
    return snnir.save(_graph(), path)


def _onnx(path):
    pytest.importorskip("onnx")
    return snnir.export_onnx(_graph(), path, mode="sequence")


def _nir(path):
    pytest.importorskip("nir")
    return snnir.save(_graph(), path)


def _checkpoint(path):
    torch = pytest.importorskip("torch")
    from snnir.backends.pytorch import History, save_checkpoint

    model = torch.nn.Linear(3, 2)
    return save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, History([{"epoch": 0, "loss": 1.0}]))


def _plot(path):
    pytest.importorskip("matplotlib")
    from snnir.plots import plot_activity

    return plot_activity({"lif1": np.linspace(0, 1, 5)}, path)


def _benchmark_results(path):
    sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of the checkout, not an installed package
    try:
        from benchmarks.common import write_results
    finally:
        sys.path.remove(str(ROOT))
    return write_results(path, {"rows": [{"median_s": 0.5}]})


WRITERS = {"snnir": (_save, ".snnir"), "yaml": (_save, ".yaml"), "onnx": (_onnx, ".onnx"), "nir": (_nir, ".nir"),
           "checkpoint": (_checkpoint, ".pt"), "plot": (_plot, ".png"), "benchmark": (_benchmark_results, ".json")}


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _make_unwritable(directory: Path, monkeypatch) -> None:
    """What a directory of another user, or on a read-only file system, answers. Root may write
    anywhere, so under root os.access answers for it (as it does on a read-only mount)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (Path(path) != directory or not mode & os.W_OK)
                        and real(path, mode, **kw))


def _setup(case: str, tmp_path: Path, suffix: str, monkeypatch) -> tuple[Path, str]:
    """The target of ``case`` (the previous content, if any, is OLD) and the cause its error names."""
    if case == "missing directory":
        return tmp_path / "absent" / f"m{suffix}", "the directory .*absent does not exist"
    if case == "file as directory":
        (tmp_path / "plain").write_bytes(OLD)
        return tmp_path / "plain" / f"m{suffix}", ".*plain is not a directory"
    if case == "directory as target":
        (tmp_path / f"m{suffix}").mkdir()
        return tmp_path / f"m{suffix}", "it is a directory"
    if case == "read-only target":
        target = tmp_path / f"m{suffix}"
        target.write_bytes(OLD)
        target.chmod(0o444)
        return target, "the file is read-only"
    target = tmp_path / "locked" / f"m{suffix}"
    target.parent.mkdir()
    target.write_bytes(OLD)
    _make_unwritable(target.parent, monkeypatch)
    return target, "the directory .*locked is not writable"


REFUSALS = ["missing directory", "file as directory", "directory as target", "read-only target", "unwritable directory"]
#: Writers that create their directory: a missing one is made, and one that cannot be is what the error names.
MAKE_THEIR_DIRECTORY = {"benchmark"}


@pytest.mark.parametrize("writer, case", [(writer, case) for writer in WRITERS for case in REFUSALS
                                          if not (writer in MAKE_THEIR_DIRECTORY and case == "missing directory")])
def test_a_refused_write_names_the_file_and_the_cause_and_changes_nothing(writer, case, tmp_path, monkeypatch):
    write, suffix = WRITERS[writer]
    target, cause = _setup(case, tmp_path, suffix, monkeypatch)
    expected = f"{re.escape(str(target))}: cannot save, {cause}"
    if writer in MAKE_THEIR_DIRECTORY and case in ("file as directory", "unwritable directory"):
        expected = f"{re.escape(str(target.parent))}: cannot write into"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(WriteError, match=expected) as caught:
        write(target)
    assert isinstance(caught.value, SnnirError) and isinstance(caught.value, OSError) and caught.value.errno
    assert ".tmp" not in str(caught.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing new, nothing changed


class _FailingFile:
    """The temporary file, whose writes stop with ``error`` once ``budget`` bytes went through: a disk
    that fills up, or Ctrl-C, in the middle of a write."""

    def __init__(self, handle, error: BaseException, budget: int):
        self._handle, self._error, self._budget = handle, error, budget

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) <= self._budget:
            self._budget -= len(data)
            return self._handle.write(data)
        self._handle.write(data[: self._budget])  # a partial temporary file: it must not survive
        raise self._error


def _fail_in_the_middle(monkeypatch, error: BaseException) -> None:
    real = tempfile.NamedTemporaryFile
    monkeypatch.setattr(atomic.tempfile, "NamedTemporaryFile", lambda *a, **k: _FailingFile(real(*a, **k), error, 16))


def _fail_at_fsync(monkeypatch, error: BaseException) -> None:
    def fsync(fd):
        raise error

    monkeypatch.setattr(atomic.os, "fsync", fsync)


FAILURES = {
    "disk full mid-write": lambda m: _fail_in_the_middle(m, OSError(errno.ENOSPC, "No space left on device")),
    "I/O error at fsync": lambda m: _fail_at_fsync(m, OSError(errno.EIO, "Input/output error")),
    "Ctrl-C mid-write": lambda m: _fail_in_the_middle(m, KeyboardInterrupt()),
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_fails_midway_keeps_the_previous_file_and_leaves_no_temporary_file(writer, failure, tmp_path,
                                                                                          monkeypatch):
    write, suffix = WRITERS[writer]
    target = tmp_path / f"m{suffix}"
    target.write_bytes(OLD)
    write(target.with_name(f"warm{suffix}"))  # imports done, so that only the write meets the failure
    FAILURES[failure](monkeypatch)
    if failure.startswith("Ctrl-C"):
        with pytest.raises(KeyboardInterrupt):
            write(target)
    else:
        with pytest.raises(WriteError, match=f"{re.escape(str(target))}: cannot save .*; the previous file is unchanged"):
            write(target)
    assert target.read_bytes() == OLD
    assert _listing(tmp_path) == sorted([target.name, f"warm{suffix}"])


@pytest.mark.parametrize("writer", WRITERS)
def test_a_link_stays_a_link_and_long_names_are_written(writer, tmp_path):
    write, suffix = WRITERS[writer]
    real = tmp_path / f"real{suffix}"
    real.write_bytes(OLD)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(real)
    write(link)
    assert link.is_symlink() and real.read_bytes() != OLD
    # names of 250 bytes: the temporary file's name must fit in 255 bytes as well, in bytes, not characters
    long = [tmp_path / ("n" * (250 - len(suffix)) + suffix), tmp_path / ("é" * ((250 - len(suffix)) // 2) + suffix)]
    for path in long:
        write(path)
        assert path.stat().st_size > 0
    assert _listing(tmp_path) == sorted([real.name, link.name, *(path.name for path in long)])


def test_the_new_file_gets_the_old_ones_mode_or_the_umask_one(tmp_path):
    kept = tmp_path / "kept.yaml"
    kept.write_bytes(OLD)
    kept.chmod(0o640)
    atomic_write(kept, lambda handle: handle.write(b"new"))
    assert kept.stat().st_mode & 0o777 == 0o640
    fresh = atomic_write(tmp_path / "fresh.yaml", lambda handle: handle.write(b"new"))
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_error_of_the_serializer_passes_through_unchanged(tmp_path):
    target = tmp_path / "m.yaml"
    target.write_bytes(OLD)

    def broken(handle):
        handle.write(b"half")
        raise ValueError("not serialisable")

    with pytest.raises(ValueError, match="not serialisable"):
        atomic_write(target, broken)
    assert target.read_bytes() == OLD and _listing(tmp_path) == ["m.yaml"]


def test_make_directory_creates_parents_and_refuses_what_is_no_directory(tmp_path, monkeypatch):
    assert make_directory(tmp_path / "a" / "b").is_dir()
    (tmp_path / "plain").write_bytes(OLD)
    with pytest.raises(WriteError, match="plain: cannot write into it, it is a file, not a directory"):
        make_directory(tmp_path / "plain")
    with pytest.raises(WriteError, match=r"plain/sub: cannot create the directory \(Not a directory\)"):
        make_directory(tmp_path / "plain" / "sub")
    _make_unwritable(tmp_path / "a", monkeypatch)
    with pytest.raises(WriteError, match="a: cannot write into the directory, it is not writable"):
        make_directory(tmp_path / "a")
    assert (tmp_path / "plain").read_bytes() == OLD


def test_the_numba_kernel_cache_names_an_unusable_cache_directory(tmp_path):
    from snnir.backends.numba_cpu.cache import load_module

    (tmp_path / "plain").write_bytes(OLD)
    with pytest.raises(SnnirError, match="cannot write the kernel cache in .*plain.*cache_dir="):
        load_module("VALUE = 1\n", cache_dir=tmp_path / "plain" / "cache")
    assert load_module("VALUE = 2\n", cache_dir=tmp_path / "cache").VALUE == 2


# The command line: one line naming the file and the cause (exit status 2), checked before a long run.

@pytest.fixture
def no_training(monkeypatch):
    """snnir train must refuse its outputs before training starts."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import snnir.backends.pytorch as pytorch_backend

    def fit(*args, **kwargs):
        raise AssertionError("training started before the outputs were checked")

    monkeypatch.setattr(pytorch_backend, "fit", fit)


def test_train_checks_out_and_checkpoint_before_training(tmp_path, capsys, no_training):
    model = "examples/quickstart_fc.yaml"
    common = ["train", model, "--data", "digits", "--limit", "16", "-q"]
    read_only = tmp_path / "ro.snnir"
    read_only.write_bytes(OLD)
    read_only.chmod(0o444)
    for extra, message in [
        (["--out", str(tmp_path / "absent" / "t.snnir")], "absent/t.snnir: cannot save, the directory"),
        (["--out", str(tmp_path / "t.txt")], "t.txt: writing files with extension '.txt' is not supported"),
        (["--out", str(read_only)], "ro.snnir: cannot save, the file is read-only"),
        (["--out", str(tmp_path / "t.snnir"), "--checkpoint", str(tmp_path / "absent" / "c.pt")],
         "absent/c.pt: cannot save, the directory"),
        (["--out", str(tmp_path / "t.snnir"), "--checkpoint", model], "would be overwritten after every epoch"),
        (["--out", str(tmp_path / "t.snnir"), "--checkpoint", str(tmp_path / "t.snnir")], "is --out"),
    ]:
        assert main([*common, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert read_only.read_bytes() == OLD and _listing(tmp_path) == ["ro.snnir"]


def test_convert_and_export_name_the_target_not_a_temporary_file(tmp_path, capsys):
    pytest.importorskip("onnx")
    (tmp_path / "m.snnir").mkdir()
    assert main(["convert", "examples/quickstart_fc.yaml", str(tmp_path / "m.snnir")]) == 2
    err = capsys.readouterr().err
    assert "m.snnir: cannot save, it is a directory" in err and ".tmp" not in err
    locked = tmp_path / "m.onnx"
    locked.write_bytes(OLD)
    locked.chmod(0o444)
    assert main(["export", "examples/quickstart_fc.yaml", str(locked)]) == 2
    assert "m.onnx: cannot save, the file is read-only" in capsys.readouterr().err
    assert locked.read_bytes() == OLD and _listing(tmp_path) == ["m.onnx", "m.snnir"]


def test_plot_refuses_an_out_that_is_a_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    (tmp_path / "plots").write_bytes(OLD)
    assert main(["plot", "examples/quickstart_fc.yaml", "--data", "digits", "--limit", "4",
                 "--out", str(tmp_path / "plots")]) == 2
    assert "plots: cannot write into it, it is a file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "plots").read_bytes() == OLD


def test_the_demo_refuses_its_folder_before_training(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from snnir import demo

    monkeypatch.setattr(snnir, "load", lambda *a, **k: pytest.fail("the demo started before checking --out"))
    (tmp_path / "out").write_bytes(OLD)
    with pytest.raises(WriteError, match="out: cannot write into it, it is a file"):
        demo.main(["--out", str(tmp_path / "out"), "--quick", "--quiet"])


def test_the_benchmark_runner_goes_on_after_a_result_that_cannot_be_written(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import __main__ as runner
    from benchmarks.common import check_output, write_results

    ran = []

    class Script:
        def __init__(self, name):
            self.name = name

        def main(self, argv):
            ran.append(self.name)
            return write_results(tmp_path / "absent" / "deeper" / f"{self.name}.json", {"ok": True}) and 0

    monkeypatch.setattr(runner.importlib, "import_module", lambda name: Script(name.split(".")[-1]))
    (tmp_path / "absent").write_bytes(OLD)  # the results' folder is a file: every write is refused
    assert runner.main(["numba_infer", "onnx"]) == 1
    assert ran == ["bench_numba_infer", "bench_onnx"]
    assert "bench_numba_infer: error: " in capsys.readouterr().err
    with pytest.raises(WriteError, match="absent: cannot write into it, it is a file"):
        check_output(tmp_path / "absent" / "r.json")
    (tmp_path / "absent").unlink()
    assert json.loads(write_results(tmp_path / "absent" / "deeper" / "r.json", {"ok": True}).read_text()) == {"ok": True}
