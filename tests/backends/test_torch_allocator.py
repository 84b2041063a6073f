"""The opt-in glibc malloc tuning (``keep_freed_memory``): applied only where glibc is, checked arguments.

It changes the allocator of the whole process, so the real call runs in a child process.
"""

import subprocess
import sys

import pytest

pytest.importorskip("torch")
from snnir.backends.pytorch import allocator, keep_freed_memory  # noqa: E402
from snnir.errors import InputError  # noqa: E402


def test_it_applies_on_glibc_and_freed_tensors_are_recycled():
    code = (
        "import resource, torch\n"
        "from snnir.backends.pytorch import keep_freed_memory\n"
        "applied = keep_freed_memory()\n"
        "torch.empty(8 << 20, dtype=torch.uint8).fill_(1)\n"  # 8 MiB: mapped afresh without the tuning
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "torch.empty(8 << 20, dtype=torch.uint8).fill_(1)\n"
        "print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    if allocator._glibc() is None:
        assert out[0] == "False"
        return
    assert out[0] == "True"
    assert int(out[1]) < 256  # the second 8 MiB tensor reuses the first one's pages (2048 faults otherwise)


def test_it_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert keep_freed_memory() is False


@pytest.mark.parametrize("arguments", [dict(mmap_threshold=0), dict(mmap_threshold=64 << 20), dict(trim_threshold=-1),
                                       dict(trim_threshold=2.5), dict(mmap_threshold=True)])
def test_bad_thresholds_are_refused(arguments, monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("mallopt must not be reached"))
    with pytest.raises(InputError, match="keep_freed_memory"):
        keep_freed_memory(**arguments)
