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
    # Faults are counted over several alloc/free cycles and the fewest kept: the kernel may reclaim
    # idle pages of any process now and then (e.g. DAMON), which faults them back in once.
    code = (
        "import resource, torch\n"
        "from snnir.backends.pytorch import keep_freed_memory\n"
        "applied = keep_freed_memory()\n"
        "torch.empty(8 << 20, dtype=torch.uint8).fill_(1)\n"  # 8 MiB: mapped afresh without the tuning
        "faults = []\n"
        "for _ in range(5):\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    torch.empty(8 << 20, dtype=torch.uint8).fill_(1)\n"
        "    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
        "print(applied, min(faults))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    if allocator._glibc() is None:
        assert out[0] == "False"
        return
    assert out[0] == "True"
    assert int(out[1]) < 256  # a later 8 MiB tensor reuses the first one's pages (2048 faults otherwise)


def test_it_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert keep_freed_memory() is False


@pytest.mark.parametrize("arguments", [dict(mmap_threshold=0), dict(mmap_threshold=64 << 20), dict(trim_threshold=-1),
                                       dict(trim_threshold=2.5), dict(mmap_threshold=True)])
def test_bad_thresholds_are_refused(arguments, monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("mallopt must not be reached"))
    with pytest.raises(InputError, match="keep_freed_memory"):
        keep_freed_memory(**arguments)
