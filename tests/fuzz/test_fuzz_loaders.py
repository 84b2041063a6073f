"""Fuzz every registered loader in a memory-limited subprocess (see snnir/testing/fuzz.py).

Each campaign mutates valid files at the byte, document and text level; every outcome must be a loaded
graph or an SnnirError, no case may take more than a few seconds, and the process runs under a 4 GiB
address-space limit so a memory blow-up fails instead of exhausting the machine. Larger campaigns:
``python -m snnir.testing.fuzz --cases 20000 --memory-gb 4``.
"""

import json
import subprocess
import sys

import pytest

import snnir
import snnir.errors

from snnir.testing.fuzz import FORMATS

CASES_PER_FORMAT = 400


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_loader_survives_mutations(format_name):
    done = subprocess.run(
        [sys.executable, "-m", "snnir.testing.fuzz", "--format", format_name, "--cases", str(CASES_PER_FORMAT),
         "--seed", "7", "--memory-gb", "4"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])[format_name]
    assert sum(outcomes.values()) == CASES_PER_FORMAT
    assert outcomes.get("FormatError", 0) > 0 and outcomes.get("loaded", 0) > 0
    failures = [name for name in outcomes if name != "loaded"]
    assert all(issubclass(getattr(snnir.errors, name), snnir.SnnirError) for name in failures), failures
