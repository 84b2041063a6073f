"""Every ```python block of docs/*.md runs as written, on small fixtures where it needs setup.

A block runs in a fresh namespace, in a temporary working directory, compiled under the doc's own file
name and line numbers (a traceback points into the doc). A block that needs names it does not define
(``graph``, ``net``, ``images``...) gets them from the fixture registered for it below, which also checks
what the block's comments promise. A block that cannot run anywhere (user data, a GPU) is marked in the
doc by the line before its fence: ``<!-- snippet: skip (reason) -->``. Blocks that show output (a
generated module) are compared with that output instead of being run.
"""

import importlib
import re
import shutil
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import snnir
from snnir.testing import assert_graph_equal

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NIR_PAPER = ROOT.parent / "shared" / "nir-paper"
FENCE = re.compile(r"^(?P<indent> *)```python\n(?P<code>.*?)^(?P=indent)```", re.S | re.M)
MARKER = re.compile(r"<!-- snippet: (?P<what>\w+)(?: \((?P<reason>.+)\))? -->")


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int  # of the first line of code, 1-based
    code: str
    skip: str | None  # the reason given by a skip marker

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"

    def compiled(self, code: str | None = None):
        """The block (or an edited copy) compiled so that tracebacks name the doc's lines."""
        return compile("\n" * (self.line - 1) + (self.code if code is None else code), str(DOCS / self.doc), "exec")


def _snippets() -> list[Snippet]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            marker = MARKER.fullmatch(before)
            skip = None
            if marker:
                assert marker["what"] == "skip" and marker["reason"], f"{path.name}: {before!r}: write skip (reason)"
                skip = marker["reason"]
            line = text.count("\n", 0, match.start("code")) + 1
            found.append(Snippet(path.name, line, textwrap.dedent(match["code"]), skip))
    return found


SNIPPETS = _snippets()
FIXTURES = {}  # (doc, text only its block contains) -> fixture(snippet, tmp_path, monkeypatch)


def fixture(doc: str, text: str):
    def register(function):
        FIXTURES[doc, text] = function
        return function

    return register


def _fixture_of(snippet: Snippet):
    matches = [f for (doc, text), f in FIXTURES.items() if doc == snippet.doc and text in snippet.code]
    assert len(matches) <= 1, f"{snippet}: several fixtures match"
    return matches[0] if matches else None


def _run(snippet: Snippet, namespace: dict | None = None, code: str | None = None) -> dict:
    namespace = {"__name__": "__docs__", **(namespace or {})}
    exec(snippet.compiled(code), namespace)
    return namespace


def _graph_source(encoding: str = "direct") -> str:
    """x -> fc1 -> scale1 -> lif1, recording spikes and membrane: the ``graph`` of every block that needs no more.

    As source, so that a module written from a block can build it too; it binds ``graph`` and nothing the
    block should import itself.
    """
    return ("import snnir as _snnir\n"
            "graph = _snnir.Sequential(_snnir.Linear(6), _snnir.Scale(3.0), _snnir.LIF(0.5), input_shape=4,\n"
            f"                          num_steps=5, encoding={encoding!r}, name='small')\n")


def _small_graph(encoding: str = "direct"):
    namespace = {}
    exec(_graph_source(encoding), namespace)
    return namespace["graph"]


def _input(batch: int = 2, steps: int | None = None, shape=(4,)) -> np.ndarray:
    size = (batch, *shape) if steps is None else (steps, batch, *shape)
    return np.random.default_rng(0).random(size, dtype=np.float32)


# --- formats.md -------------------------------------------------------------------------------------


@fixture("formats.md", "snnir.export_onnx(graph")
def _onnx_api(snippet, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    graph = _small_graph()
    ns = _run(snippet, {"graph": graph})
    assert_graph_equal(ns["graph2"], graph)
    x = _input()
    expected = snnir.compile(graph, "reference").run(x)["spikes"]
    for model in (ns["model"], ns["runtime"]):
        np.testing.assert_array_equal(model.run(x)["spikes"], expected)
    assert snnir.backends.onnx_export.Runtime("model.onnx").metadata["mode"] == "step"


@fixture("formats.md", "def run_exported(")
def _onnx_loop(snippet, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    run_exported = _run(snippet)["run_exported"]
    for encoding, x in (("direct", _input()), ("sequence", _input(steps=7))):
        graph = _small_graph(encoding)
        expected = snnir.compile(graph, "reference").run(x)
        for mode in ("step", "sequence"):
            snnir.export_onnx(graph, tmp_path / f"{mode}.onnx", mode=mode)
            found = run_exported(str(tmp_path / f"{mode}.onnx"), {"x": x})
            assert sorted(found) == sorted(expected.outputs)
            for name, value in found.items():
                np.testing.assert_array_equal(value, expected[name], err_msg=f"{encoding}, {mode}: {name}")


def test_the_layer_stack_yaml_loads(tmp_path):
    """The layer stack of formats.md loads as the graph its comments describe."""
    text = (DOCS / "formats.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "layers:" in b)
    (tmp_path / "stack.yaml").write_text(block)
    graph = snnir.load(tmp_path / "stack.yaml")
    assert graph.time.num_steps == 25 and graph.nodes["fc1"].weight.shape == (300, 784)
    assert [e for e in graph.edges if e.delay] and list(graph.outputs) == ["spikes", "membrane"]
    assert graph.nodes["lif3"].learn_beta and graph.nodes["lif3"].beta.shape == (10,)


def test_the_onnx_command_lines_run(tmp_path):
    """formats.md's two command lines, on a model with a node 'lif1'."""
    pytest.importorskip("onnxruntime")
    from snnir.cli import main

    text = (DOCS / "formats.md").read_text(encoding="utf-8")
    lines = re.search(r"```\n(snnir export .*?)```", text, re.S)[1].splitlines()
    snnir.save(_small_graph(), tmp_path / "model.snnir")
    for line in lines:
        args = line.split()
        assert args[0] == "snnir"
        args = [str(tmp_path / a) if "." in a and "," not in a else a for a in args[1:]]
        assert main([*args, "--quiet"]) in (0, None), line
    assert_graph_equal(snnir.load(tmp_path / "model.snnir"), _small_graph())


# --- frontend-nir.md --------------------------------------------------------------------------------


def _braille_files(folder: Path) -> None:
    """braille.nir and braille_subtract.nir: the NIR paper's files, or foreign files like them."""
    nir = pytest.importorskip("nir")
    names = {"braille.nir": "braille_noDelay_bias_zero.nir",
             "braille_subtract.nir": "braille_noDelay_noBias_subtract.nir"}
    for name, paper in names.items():
        if (NIR_PAPER / paper).exists():
            shutil.copy(NIR_PAPER / paper, folder / name)
        else:  # a file without snnir's metadata (no time step), as another tool writes one
            from snnir.frontends.nir import to_nir

            exported = to_nir(_small_graph("sequence"))
            exported.metadata = {}
            nir.write(folder / name, exported)


@fixture("frontend-nir.md", "from_nir(\"braille.nir\"")
def _nir_api(snippet, tmp_path, monkeypatch):
    _braille_files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", snnir.errors.SemanticsWarning)  # the doc explains it; a zero reset is expected
        ns = _run(snippet)
    assert type(ns["nir_graph"]).__name__ == "NIRGraph"
    assert snnir.load("out.nir").time.dt == pytest.approx(1e-4)
    with pytest.raises(snnir.FormatError, match="dt=1e-4"):
        snnir.load("braille.nir")


@fixture("frontend-nir.md", "moved = {")
def _nir_moved_delay(snippet, tmp_path, monkeypatch):
    if (NIR_PAPER / "braille_noDelay_bias_zero.nir").exists():
        pytest.importorskip("nir")
        graph = snnir.load(NIR_PAPER / "braille_noDelay_bias_zero.nir", dt=1e-4)
    else:  # the Braille graph's recurrent core under the same names
        b = snnir.GraphBuilder(num_steps=5)
        lif = b.add("lif1.lif", snnir.CubaLIF(0.5, 0.9), b.add("fc1", snnir.Linear(4), b.input("input", shape=(3,))))
        b.connect(b.add("lif1.w_rec", snnir.Linear(4), lif), lif, delay=1)
        b.output("output", lif)
        graph = b.build(seed=0)
    delayed = {(e.src, e.dst) for e in graph.edges if e.delay}
    assert delayed == {("lif1.w_rec", "lif1.lif")}
    moved = _run(snippet, {"graph": graph, "snnir": snnir})["graph"]  # continues the page's first block
    assert {(e.src, e.dst): e.delay for e in moved.edges if e.delay} == {("lif1.lif", "lif1.w_rec"): 1}
    snnir.compile(moved, "reference")  # still a valid graph


# --- frontend-snntorch.md ---------------------------------------------------------------------------


def _snntorch():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    return torch, snn


def _leaky_stack():
    """A one-layer quickstart-style nn.Sequential: 28x28 images to 10 Leaky neurons."""
    torch, snn = _snntorch()
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10),
                               snn.Leaky(beta=0.9, init_hidden=True, output=True))


@fixture("frontend-snntorch.md", "graph = from_snntorch(net")
def _snntorch_api(snippet, tmp_path, monkeypatch):
    images = _input(4, shape=(1, 28, 28)) * 4
    ns = _run(snippet, {"net": _leaky_stack(), "images": images})
    assert ns["result"]["spikes"].shape == (25, 4, 10)
    assert sorted(ns["records"]) == ["membrane", "spikes"] and tuple(ns["records"]["spikes"].shape) == (25, 4, 10)
    np.testing.assert_array_equal(ns["records"]["spikes"].numpy(), ns["result"]["spikes"])


@fixture("frontend-snntorch.md", "mem1 = self.lif1.reset_mem()")
def _snntorch_time_loop(snippet, tmp_path, monkeypatch):
    torch, snn = _snntorch()
    from snnir.frontends.snntorch import from_snntorch

    doc_forward = _run(snippet, {"num_steps": 25, "torch": torch})["forward"]

    class Net(torch.nn.Module):  # the quickstart's FC net, around the doc's forward
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = torch.nn.Linear(784, 300), snn.Leaky(beta=0.9)
            self.fc2, self.lif2 = torch.nn.Linear(300, 10), snn.Leaky(beta=0.8)

        forward = doc_forward

    graph = from_snntorch(Net(), input_shape=(1, 28, 28), num_steps=25)
    assert graph.metadata["snntorch"]["form"] == "loop"
    assert list(graph.nodes) == ["x", "flatten1", "fc1", "lif1", "fc2", "lif2", "spikes", "membrane"]


@fixture("frontend-snntorch.md", "utils.reset(net)")
def _snntorch_sequential_steps(snippet, tmp_path, monkeypatch):
    torch, _ = _snntorch()
    from snntorch import utils

    from snnir.frontends.snntorch import from_snntorch, to_snntorch

    net = to_snntorch(from_snntorch(_leaky_stack(), (1, 28, 28), 25))
    assert isinstance(net, torch.nn.Sequential)
    ns = _run(snippet, {"net": net, "utils": utils, "x": torch.rand(3, 1, 28, 28)})
    assert tuple(ns["spk"].shape) == tuple(ns["mem"].shape) == (3, 10)


@fixture("frontend-snntorch.md", "mem_lif1 = torch.zeros(")
def _snntorch_generated_loop(snippet, tmp_path, monkeypatch):
    """Shown, not run: the loop to_snntorch generates for the quickstart FC graph."""
    _snntorch()
    from snnir.frontends.snntorch import to_snntorch

    graph = snnir.Sequential(snnir.Flatten(), snnir.Linear(300), snnir.LIF(0.9), snnir.Linear(10), snnir.LIF(0.5),
                             input_shape=(1, 28, 28))
    assert to_snntorch(graph, form="loop").code.strip() == snippet.code.strip()


# --- numba.md ---------------------------------------------------------------------------------------


@fixture("numba.md", "model.reset(batch_size=1)")
def _numba_tour(snippet, tmp_path, monkeypatch):
    pytest.importorskip("numba")
    graph, x = _small_graph(), _input(1)
    ns = _run(snippet, {"graph": graph, "x": x, "sensor": [x, x]})
    expected = snnir.compile(graph, "reference").run(x)
    np.testing.assert_array_equal(ns["result"]["spikes"], expected["spikes"])
    assert ns["rates"].shape == (1, 6) and ns["classes"].shape == (1,) and ns["out"].shape == (1, 6)


@fixture("numba.md", "event_driven=None,")
def _numba_options(snippet, tmp_path, monkeypatch):
    pytest.importorskip("numba")
    _run(snippet, {"graph": _small_graph(), "snnir": snnir})  # continues the page's first block


@fixture("numba.md", "for t in range(steps):")
def _numba_generated_source(snippet, tmp_path, monkeypatch):
    """Shown, not run: lines of the seed CNN's generated kernel (compiling generates it; nothing is run)."""
    pytest.importorskip("numba")
    model = snnir.compile(snnir.load(ROOT / "examples" / "quickstart_cnn.yaml"), "numba", cache_dir=tmp_path)
    source = [line.strip() for line in model.source.splitlines()]
    shown = [line.strip() for line in snippet.code.splitlines()]
    start = source.index(shown[0])
    assert source[start:start + len(shown)] == shown


@fixture("numba.md", "def clipped_scale_rule(ctx):")
def _numba_extending(snippet, tmp_path, monkeypatch):
    """The kernel must live in an importable module: the block becomes one, after a line giving it a graph."""
    pytest.importorskip("numba")
    (tmp_path / "docs_clipped_scale.py").write_text(_graph_source() + snippet.code)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("docs_clipped_scale")
    try:
        x = -10 * np.ones((1, 4), np.float32)  # drives fc1 far from zero, so that 3·fc1 crosses 1
        clipped = module.model.run(x, probes=["fc1", "scale1"]).probes
        np.testing.assert_array_equal(clipped["scale1"], np.minimum(clipped["fc1"] * np.float32(3), np.float32(1)))
        assert (clipped["fc1"] * 3 > 1).any() and (clipped["fc1"] * 3 < 1).any()
    finally:
        sys.modules.pop("docs_clipped_scale", None)


# --- torch.md ---------------------------------------------------------------------------------------


@fixture("torch.md", "history = fit(model")
def _torch_training(snippet, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)  # random images of the CNN's input: the snippet's calls, not its accuracy
    data = {"train_images": rng.random((64, 1, 28, 28), dtype=np.float32), "train_labels": rng.integers(0, 10, 64),
            "test_images": rng.random((32, 1, 28, 28), dtype=np.float32), "test_labels": rng.integers(0, 10, 32)}
    ns = _run(snippet, data, snippet.code.replace('"examples/', f'"{ROOT}/examples/'))
    assert len(ns["history"].epochs) == 1
    trained = snnir.load("trained.snnir")
    assert list(trained.nodes) == list(ns["graph"].nodes)


# --- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_snippet_runs(snippet, tmp_path, monkeypatch):
    if snippet.skip:
        pytest.skip(snippet.skip)
    monkeypatch.chdir(tmp_path)
    run = _fixture_of(snippet)
    if run is None:
        _run(snippet)
    else:
        run(snippet, tmp_path, monkeypatch)


def test_every_fixture_has_its_block():
    """A fixture whose block was edited away would silently test nothing."""
    for (doc, text), function in FIXTURES.items():
        blocks = [s for s in SNIPPETS if s.doc == doc and text in s.code]
        assert len(blocks) == 1, f"{function.__name__}: {len(blocks)} blocks of docs/{doc} contain {text!r}"


def test_skips_are_rare():
    skipped = [f"{s}: {s.skip}" for s in SNIPPETS if s.skip]
    assert len(skipped) <= 2, skipped
