"""glibc malloc and CPU training: the opt-in tuning (``keep_freed_memory``: applied only where glibc
is, checked arguments) and the default settling of glibc's adaptive thresholds (``settle_heap``).

Both change the allocator of the whole process, so the real calls run in child processes.
"""

import subprocess
import sys

import pytest

pytest.importorskip("torch")
from snnir.backends.pytorch import allocator, keep_freed_memory  # noqa: E402
from snnir.errors import InputError  # noqa: E402


# A training step in miniature: three 7 MiB tensors live at once, then all are freed. With glibc's
# starting thresholds (raised to 8 MiB by the first tensor freed) the 21 MiB freed at the top of the
# heap exceed the trim threshold and go back to the kernel, so the next cycles fault them in again
# (3,584-5,376 faults each until glibc adapts by itself, after three cycles or more). The child prints
# the most faults of cycles 2 and 3 (the first grows the heap whatever the thresholds) and the fewest
# of cycles 2 to 6: the kernel may reclaim idle pages of any process now and then (e.g. DAMON), which
# faults them back in once.
CYCLES = (
    "torch.empty(8 << 20, dtype=torch.uint8).fill_(1)\n"
    "faults = []\n"
    "for _ in range(6):\n"
    "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "    blocks = [torch.empty(7 << 20, dtype=torch.uint8).fill_(1) for _ in range(3)]\n"
    "    del blocks\n"
    "    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
)


def _child(setup: str) -> tuple[str, int, int]:
    """``(result, most faults of cycles 2-3, fewest of cycles 2-6)`` in a fresh process after ``setup``."""
    code = "import resource, torch\n" + setup + CYCLES + "print(result, max(faults[1:3]), min(faults[1:]))\n"
    result, early, late = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                         check=True).stdout.split()
    return result, int(early), int(late)


def test_it_applies_on_glibc_and_freed_tensors_are_recycled():
    result, _, late = _child("from snnir.backends.pytorch import keep_freed_memory\nresult = keep_freed_memory()\n")
    if allocator._glibc() is None:
        assert result == "False"
        return
    assert result == "True"
    assert late < 256  # freed tensors are reused


def test_the_first_cpu_training_step_lets_glibc_recycle_freed_tensors():
    """A model's first forward pass with gradients on the CPU settles the heap (once); inference does
    not. Afterwards freed tensors are reused (see CYCLES) where glibc's starting thresholds give their
    pages back to the kernel every cycle."""
    setup = (
        "import snnir\n"
        "from snnir import LIF, Linear\n"
        "from snnir.backends.pytorch import allocator\n"
        "model = snnir.compile(snnir.Sequential(Linear(4), LIF(0.9), input_shape=(3,), num_steps=2, seed=0), 'torch')\n"
        "with torch.no_grad():\n"
        "    model(torch.ones(2, 3))\n"
        "before_training = allocator._settled\n"
        "model(torch.ones(2, 3))\n"
        "result = f'{before_training}/{allocator._settled}'\n"
    )
    result, _, late = _child(setup)
    assert result == "False/True"
    if allocator._glibc() is not None:
        assert late < 256
        assert _child("result = 'baseline'\n")[1] > 1024  # what the settling spares


def test_it_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert keep_freed_memory() is False


@pytest.mark.parametrize("arguments", [dict(mmap_threshold=0), dict(mmap_threshold=64 << 20), dict(trim_threshold=-1),
                                       dict(trim_threshold=2.5), dict(mmap_threshold=True)])
def test_bad_thresholds_are_refused(arguments, monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("mallopt must not be reached"))
    with pytest.raises(InputError, match="keep_freed_memory"):
        keep_freed_memory(**arguments)
