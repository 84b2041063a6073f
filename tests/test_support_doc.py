"""docs/support.md is generated from the registry; it must match what the code says today."""

from pathlib import Path

import pytest

from snnir.errors import BackendNotFoundError, BackendUnavailableError
from snnir.registry import backend_names, get_backend
from snnir.support import support_document

DOC = Path(__file__).resolve().parents[1] / "docs" / "support.md"


def test_support_doc_is_current():
    for name in backend_names():
        try:
            get_backend(name)
        except (BackendNotFoundError, BackendUnavailableError) as error:
            pytest.skip(f"the document describes a full installation: {error}")
    assert DOC.read_text() == support_document(), "regenerate: snnir info --backends --markdown > docs/support.md"
