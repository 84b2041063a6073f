"""Every backend runs every conformance case against the reference interpreter.

The cases are snnir.testing's dyadic table (bit-identical) plus the NIR paper's real graphs (within the
float32 contract) when ``snnir[nir]`` and ``../shared/nir-paper`` are present. Backends are taken from the
registry; one that is not installed is skipped with its reason. A gap a backend declares in
``known_gaps`` (by case name or tag) is an expected failure, strictly: if the case starts passing, the
stale declaration fails the suite.
"""

from pathlib import Path

import pytest

from snnir.errors import BackendNotFoundError, BackendUnavailableError, UnsupportedNodeError
from snnir.registry import backend_names, get_backend
from snnir.testing import CASES, assert_matches_reference, declared_gap

PAPER = Path(__file__).resolve().parents[2].parent / "shared" / "nir-paper"
try:
    from snnir.testing.nir_paper import paper_cases
except ImportError:  # snnir[nir] not installed
    ALL_CASES = dict(CASES)
else:
    ALL_CASES = {**CASES, **paper_cases(PAPER)}


@pytest.mark.parametrize("case_name", list(ALL_CASES))
@pytest.mark.parametrize("backend_name", backend_names())
def test_backend_matches_reference(backend_name, case_name, request):
    try:
        backend = get_backend(backend_name)
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(str(error))
    case = ALL_CASES[case_name]
    gap = declared_gap(backend, case)
    if gap:
        request.applymarker(pytest.mark.xfail(reason=gap, strict=True, raises=(UnsupportedNodeError, AssertionError)))
    assert_matches_reference(case, backend_name, **getattr(backend, "conformance_options", {}))
