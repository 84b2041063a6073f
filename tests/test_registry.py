"""Backend lookup: built-ins, entry-point plug-ins, and the errors for unknown or unavailable backends."""

import importlib.metadata
import sys
import textwrap

import numpy as np
import pytest

import snnir
import snnir.lowering
from snnir import registry
from snnir.errors import BackendNotFoundError, BackendUnavailableError, UnsupportedNodeError


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(registry, "_cache", {})


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(BackendNotFoundError, match="unknown backend 'tpu'; known backends: reference, torch, numba, onnx"):
        snnir.compile(snnir.Sequential(snnir.Linear(2), input_shape=(2,)), "tpu")


def test_missing_dependency_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "needs_missing.py").write_text("import definitely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", ("needs_missing:Backend", "fakeextra"))
    with pytest.raises(BackendUnavailableError, match=r"needs definitely_not_installed_pkg.*pip install 'snnir\[fakeextra\]'"):
        registry.get_backend("fake")
    assert isinstance(BackendUnavailableError("x"), ImportError)


def test_a_dependency_that_is_installed_but_fails_to_import_is_not_called_missing(tmp_path, monkeypatch):
    (tmp_path / "broken_dep.py").write_text("raise ImportError('Numba needs NumPy 2.3 or less')\n")
    (tmp_path / "needs_broken.py").write_text("import broken_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", ("needs_broken:Backend", "fakeextra"))
    with pytest.raises(BackendUnavailableError, match=r"installed but fails to import \(Numba needs NumPy 2.3 or less\)") as error:
        registry.get_backend("fake")
    assert "pip install" not in str(error.value)


def test_a_source_checkout_without_its_backends_is_named(tmp_path, monkeypatch):
    """``python`` run in a checkout imports its snnir/ folder, which lacks the backends an install maps in."""
    checkout = tmp_path / "checkout"
    (checkout / "snnir").mkdir(parents=True)
    (checkout / "backends").mkdir()
    monkeypatch.setattr(registry, "__file__", str(checkout / "snnir" / "registry.py"))
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", ("snnir.no_such_backend_module:Backend", "fakeextra"))
    with pytest.raises(BackendNotFoundError, match=r"snnir was imported from the source checkout .*checkout/snnir, whose backends "
                                                   r"live in .*checkout/backends: install it editable \(pip install -e \.\)"):
        registry.get_backend("fake")


def test_entry_point_plugins_are_found(tmp_path, monkeypatch):
    (tmp_path / "my_backend.py").write_text(
        textwrap.dedent(
            """
            from snnir.reference import ReferenceBackend

            class Backend(ReferenceBackend):
                name = "mine"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint("mine", "my_backend:Backend", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"mine": entry})
    assert "mine" in registry.backend_names()
    graph = snnir.Sequential(snnir.Linear(2), snnir.LIF(0.5), input_shape=(3,))
    result = snnir.compile(graph, "mine").run(np.ones((1, 3)))
    assert result["spikes"].shape == (25, 1, 2)
    sys.modules.pop("my_backend", None)


def test_lowering_tables_report_support_and_overrides():
    from snnir.reference import RULES

    assert RULES.missing() == ()
    assert "LIF" in RULES.supported() and "Input" not in RULES.supported()
    with pytest.raises(UnsupportedNodeError, match="override key 'Nope' is not a node kind"):
        RULES.with_overrides({"Nope": lambda *a: None})
    partial = snnir.lowering.LoweringTable("partial")
    with pytest.raises(UnsupportedNodeError, match=r"backend 'partial' cannot lower node 'lif' \(LIF\); it supports: "):
        partial.rule_for(snnir.LIF(0.5), "lif")


def test_support_matrix_is_generated_from_the_tables():
    from snnir.support import support_matrix, support_table

    table = support_table()
    assert table["reference"]["CubaLIF"] == "yes"
    text = support_matrix(markdown=True)
    assert text.startswith("| node | reference |") and "| LIF | yes |" in text


def test_register_backend_in_process_imports_a_target_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_registered", {})
    (tmp_path / "lazy_backend.py").write_text("from snnir.reference import ReferenceBackend as Backend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register_backend("lazy", "lazy_backend:Backend")
    assert "lazy_backend" not in sys.modules and "lazy" in registry.backend_names()
    result = snnir.compile(snnir.Sequential(snnir.Linear(2), snnir.LIF(0.5), input_shape=(3,)), "lazy").run(np.ones((1, 3)))
    assert result["spikes"].shape == (25, 1, 2)
    registry.register_backend("lazy", "lazy_backend_gone:Backend", extra="lazyextra")  # replaces, and forgets the cached one
    with pytest.raises(BackendNotFoundError, match="backend 'lazy' is registered but its module lazy_backend_gone"):
        registry.get_backend("lazy")
    registry.unregister_backend("lazy")
    with pytest.raises(BackendNotFoundError, match="no backend 'lazy' was registered with register_backend"):
        registry.unregister_backend("lazy")
    sys.modules.pop("lazy_backend", None)


def test_a_backend_without_rules_or_known_gaps_is_unavailable_not_a_crash(monkeypatch):
    class CompileOnly:
        def compile(self, graph, **options):
            return snnir.compile(graph, "reference")

    monkeypatch.setattr(registry, "_registered", {})
    registry.register_backend("bare", CompileOnly)
    with pytest.raises(BackendUnavailableError, match=r"backend 'bare' \(CompileOnly\) lacks rules, known_gaps: a backend has rules"):
        snnir.compile(snnir.Sequential(snnir.Linear(2), input_shape=(2,)), "bare")
    assert registry.backend_status()["bare"].startswith("backend 'bare' (CompileOnly) lacks rules")
    from snnir.support import support_matrix

    assert "bare: unavailable: backend 'bare' (CompileOnly) lacks rules" in support_matrix()


def test_an_entry_point_naming_nothing_is_unavailable(tmp_path, monkeypatch):
    (tmp_path / "plugin_without_backend.py").write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint("hollow", "plugin_without_backend:Backend", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"hollow": entry})
    with pytest.raises(BackendUnavailableError, match=r"backend 'hollow': its entry point plugin_without_backend:Backend fails to load \("):
        registry.get_backend("hollow")
    assert registry.backend_status()["hollow"].startswith("backend 'hollow': its entry point")
    sys.modules.pop("plugin_without_backend", None)
