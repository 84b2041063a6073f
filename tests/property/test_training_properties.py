"""Property-based tests of training on random graphs (``snnir.testing.strategies.trainable_graphs``: LIF, IF,
CubaLIF and LI read-outs with learnable beta/alpha/threshold, scalar, per neuron or broadcast, every reset and
timing, graded spikes, the seven surrogates with random parameters, Threshold nodes, learnable Scale factors,
convolutions, pools, skip connections, feed-forward and recurrent delayed edges).

* **snnTorch parity.** The torch backend and the snnTorch model ``to_snntorch`` builds from the same graph
  (same weights) run forward on the same input, compute the same loss (a random linear read-out of every
  record, spikes, membranes and currents, plus in some examples one of snnir's losses against
  ``snntorch.functional``'s on the graph's output) and back-propagate; then Adam steps in lockstep (snnir takes
  snnTorch's parameters before each step, as ``tests/backends/test_torch_parity.py`` does). At every step the
  spike records must be identical, the losses within 1e-6 (relative, at least 1) and every gradient (weights,
  biases, beta, alpha, threshold, Scale factors, and the input's) within 1e-5 of snnTorch's (``_mismatches``
  says relative to what); where it is not, snnTorch's own float32 rounding must be the cause: snnir's
  gradient is then no further from a float64 evaluation than snnTorch's (``_assert_as_accurate_as_snntorch``).
* **The same in float64** (one step, both models in double): the gradients must agree to 1e-10, so that a
  formula that differs from snnTorch's by less than float32 rounding still shows. snnTorch's surrogates
  return float32 spikes whatever the input, which would round the gradient flowing back through them; here
  they keep the input's dtype (``_snntorch_in_float64``; 0/1 is exact in both).
* **The custom backward against autograd.** In float64 the model (one hand-written reverse-time backward per
  neuron layer, in random time chunks) and a naive step loop over the same layers (each neuron's
  differentiable ``step``, ordinary autograd) give the same records and the same gradients.

Documented exceptions, encoded here rather than by looser tolerances:

* what ``to_snntorch`` cannot express (docs/frontend-snntorch.md: a CubaLIF with a bias) raises its documented
  error and is skipped; at least ``MIN_COMPARED`` of the examples must be compared;
* neurons that become RLeaky/RSynaptic add the recurrent term after the leak (docs/semantics.md, "A recurrent
  delay edge"): their membranes may differ from snnTorch's by a few float32 ulps;
* the numerics contract (docs/semantics.md) makes the forward pass bit-identical on dyadic data only: after
  each Adam step the synapse weights and Scale factors are rounded back to a dyadic grid (``_keep_dyadic``);
* snnTorch's ``sigmoid`` backward is inf/inf = NaN where ``(e^(−slope·z) + 1)²`` overflows and snnir returns 0
  (docs/torch.md, "Surrogates"): snnTorch's backward runs with exactly those elements set to 0
  (``_sigmoid_backward_as_documented``), everything else untouched.

Runs derandomised (the same examples on every run); raise ``SNNIR_PROPERTY_EXAMPLES`` for a longer search.
"""

import collections
import contextlib
import dataclasses
import os
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snnir
from snnir import LI, CubaLIF, Output
from snnir.errors import UnsupportedNodeError
from snnir.testing.strategies import trainable_graphs

torch = pytest.importorskip("torch")
snntorch = pytest.importorskip("snntorch")
from snntorch import functional as SF  # noqa: E402
from snntorch import surrogate  # noqa: E402

from snnir.backends.pytorch import losses as ours_losses  # noqa: E402
from snnir.frontends.snntorch import to_snntorch  # noqa: E402
from snnir.frontends.snntorch.export import plan as recurrent_plan  # noqa: E402
from snnir.frontends.snntorch.running import stack_steps, step_sequential  # noqa: E402

SCALE = int(os.environ.get("SNNIR_PROPERTY_EXAMPLES", "1"))
#: examples per property: about 15, 6 and 6 s on one core
EXAMPLES = {"snntorch": 400, "snntorch float64": 300, "autograd": 400}
COMMON = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: the least share of examples compared with snnTorch, the rest being documented refusals (93% of the
#: default examples, 94.5% of 3000 random ones; a CubaLIF keeps its bias in a quarter of the cases)
MIN_COMPARED = 0.85
#: Adam steps per example; after each, synapse parameters are rounded back to multiples of 1/GRID, which is
#: also Adam's learning rate (see _keep_dyadic)
OPTIMIZER_STEPS, GRID = 3, 8
GRADIENT_RTOL, LOSS_RTOL = 1e-5, 1e-6
#: RLeaky/RSynaptic membranes: a few float32 ulps, relative (as in test_interop_properties.py)
RECURRENT_ULPS, EPSILON = 4, float(np.finfo(np.float32).eps)
#: gradients in float64 (against snnTorch, and the scans against the step loop): only summation orders
#: differ (observed below 2e-14 over 3000 random examples each)
FLOAT64_RTOL = 1e-10
#: snnTorch accumulates these losses in a float32 ``torch.zeros((1))`` whatever the recording's dtype
FLOAT32_ONLY_LOSSES = ("ce_rate_loss", "mse_membrane_loss")
#: snnTorch's surrogate functions, whose forward returns float32 spikes (``.float()``) whatever the input
SURROGATE_FUNCTIONS = (surrogate.ATan, surrogate.FastSigmoid, surrogate.Sigmoid, surrogate.Triangular,
                       surrogate.StraightThroughEstimator, surrogate.SpikeRateEscape, surrogate.Heaviside)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One torch thread: the machines are shared, and these networks are too small to gain from more."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclasses.dataclass(frozen=True)
class Example:
    """A drawn training setup: the graph, its input, class targets, a read-out weight per recorded output
    (``[T, B, ...]``), a functional loss on ``out`` (or ``"none"``) and compile options."""

    graph: Any
    x: torch.Tensor
    targets: torch.Tensor
    readout: dict
    loss_name: str
    options: dict

    def to(self, dtype: torch.dtype) -> "Example":
        return dataclasses.replace(self, x=self.x.to(dtype), readout={k: w.to(dtype) for k, w in self.readout.items()})


@dataclasses.dataclass(frozen=True)
class Precision:
    """How a parity run computes: the dtype of both models, the Adam steps, the gradients' tolerance."""

    dtype: torch.dtype
    optimizer_steps: int
    gradient_rtol: float


FLOAT32 = Precision(torch.float32, OPTIMIZER_STEPS, GRADIENT_RTOL)
FLOAT64 = Precision(torch.float64, 1, FLOAT64_RTOL)


# -- the examples and the loss -------------------------------------------------------------------------------
def _spiking_output(graph, output) -> bool:
    source = graph.nodes[graph.output_source(output)]
    return source.spiking and graph.nodes[output].record in ("value", "spikes")


def _loss_choices(graph) -> list[str]:
    """The functional losses that apply to the output ``out``: spike losses on spikes, membrane losses on an
    LI read-out, both with at least two classes on a flat output."""
    shape = graph.shapes[graph.output_source("out")]
    if len(shape) != 1 or shape[0] < 2:
        return ["none"]
    if _spiking_output(graph, "out"):
        return ["none", "mse_count_loss", "ce_rate_loss", "ce_count_loss"]
    if isinstance(graph.nodes[graph.output_source("out")], LI):
        return ["none", "ce_max_membrane_loss", "mse_membrane_loss"]
    return ["none"]


@st.composite
def _examples(draw) -> Example:
    """A trainable graph (every neuron's membrane and every CubaLIF's current recorded), random read-out weights,
    a functional loss, and compile options: a time-chunk length, and event-driven Linear layers (forward sums
    and weight gradients from the input's spike events) or the default."""
    graph, inputs = draw(trainable_graphs())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = torch.from_numpy(inputs)
    direct = graph.nodes["x"].encoding == "direct"
    steps, batch = (graph.time.num_steps, x.shape[0]) if direct else x.shape[:2]
    readout = {o: torch.from_numpy(rng.standard_normal((steps, batch, *graph.shapes[graph.output_source(o)]), dtype=np.float32))
               for o in graph.outputs}
    targets = torch.from_numpy(rng.integers(0, graph.shapes[graph.output_source("out")][0], batch))
    options = {"chunk_steps": draw(st.sampled_from([None, None, 1, 2, 3])), "event_driven": draw(st.sampled_from([None, True]))}
    return Example(graph, x, targets, readout, draw(st.sampled_from(_loss_choices(graph))), options)


def _losses(name):
    """``(snnir's loss, snnTorch's loss)``, or ``(None, None)``."""
    if name == "none":
        return None, None
    arguments = {"mse_count_loss": dict(correct_rate=0.8, incorrect_rate=0.2)}.get(name, {})
    return getattr(ours_losses, name)(**arguments), getattr(SF, name)(**arguments)


def _total_loss(records, example: Example, functional):
    """A linear read-out of every record, plus the functional loss of ``out``; a 0-d tensor."""
    total = sum((records[key] * weight).sum() for key, weight in example.readout.items())
    if functional is not None:
        total = total + functional(records["out"], example.targets).reshape(())
    return total


def _backward(loss) -> None:
    """``loss.backward()``, unless nothing trainable reaches the loss (a delay longer than the run): then
    every gradient stays missing, which counts as zero."""
    if loss.requires_grad:
        loss.backward()


# -- snnTorch's side -----------------------------------------------------------------------------------------
def _snntorch_forward(module, x):
    """The records ``{output: [T, B, ...]}`` of the snnTorch model with gradients, from fresh states."""
    spec = module.snnir_spec
    if spec["form"] == "loop":
        returned = module(x)
        return dict(zip(module.output_names, returned if isinstance(returned, tuple) else (returned,)))
    for neuron in module.modules():
        if isinstance(neuron, snntorch.SpikingNeuron):
            neuron.reset_mem()  # init_hidden states: zeros, detached from the previous step's graph
    steps = x.shape[0] if spec["encoding"] == "sequence" else spec["num_steps"]
    stacked = stack_steps(step_sequential(module, x, steps, spec["encoding"]))
    return {name: stacked[index] for name, index in spec["outputs"].items()}


def _snntorch_tensor(module, graph, parameter: str):
    """The tensor of ``module`` that holds snnir's parameter ``layers.<node>.<field>``."""
    _, node, field = parameter.split(".")
    owner = {synapse: neuron for neuron, synapse in recurrent_plan(graph).groups.items()}
    if node in owner:  # the recurrent synapse of an RLeaky/RSynaptic
        neuron = getattr(module, owner[node])
        return neuron.V if field == "factor" else getattr(neuron.recurrent, field)
    if field == "bias" and graph.nodes[node].stateful:  # a LIF/IF/LI bias: a buffer of the loop, added to the input
        return getattr(module, f"{node}_bias")
    return getattr(getattr(module, node), field)


def _pair_parameters(model, module, graph):
    """``{snnir name: (snnir Parameter, snnTorch tensor)}``; snnTorch's side of a parameter that snnTorch keeps
    as a buffer (LIF/LI biases, Scale factors) is made to require a gradient. Every trainable snnTorch tensor
    must have an snnir counterpart."""
    pairs = {}
    for name, parameter in model.named_parameters():
        theirs = _snntorch_tensor(module, graph, name)
        assert theirs.shape == parameter.shape, name
        pairs[name] = (parameter, theirs.requires_grad_(True))
    paired = {id(theirs) for _, theirs in pairs.values()}
    unpaired = [n for n, p in module.named_parameters() if p.requires_grad and id(p) not in paired]
    assert not unpaired, f"snnTorch trains {unpaired}, which snnir does not"
    return pairs


def _recurrent_neurons(module) -> bool:
    return any(isinstance(m, (snntorch.RLeaky, snntorch.RSynaptic)) for m in module.modules())


def _sigmoid_backward_as_documented(original):
    """snnTorch's ``Sigmoid.backward`` with docs/torch.md's one deliberate difference applied: where
    ``(e^(−slope·z) + 1)²`` overflows and snnTorch's quotient is therefore inf/inf = NaN, snnir returns ±0
    (for a finite incoming gradient). Everything else is snnTorch's result, untouched."""

    def backward(ctx, grad_output):
        grad, rest = original(ctx, grad_output)
        (z,) = ctx.saved_tensors
        overflow = ((torch.exp(-ctx.slope * z) + 1) ** 2).isinf() & grad_output.isfinite()
        return torch.where(overflow & grad.isnan(), grad_output * 0, grad), rest

    return staticmethod(backward)


def _spikes_in_input_dtype(original):
    """A surrogate's forward whose spikes keep the input's dtype (snnTorch's are always float32)."""

    def forward(ctx, x, *parameters):
        return original(ctx, x, *parameters).to(x.dtype)

    return staticmethod(forward)


@contextlib.contextmanager
def _snntorch_in_float64():
    """Inside: snnTorch's surrogates return spikes in their input's dtype, so that a model in float64 computes
    in float64 (its float32 spikes would round every gradient flowing back through them to float32)."""
    with contextlib.ExitStack() as patches:
        for function in SURROGATE_FUNCTIONS:
            patches.enter_context(mock.patch.object(function, "forward", _spikes_in_input_dtype(function.forward)))
        yield


# -- comparisons ---------------------------------------------------------------------------------------------
def _assert_records_match(graph, found, expected, recurrent: bool, where: str) -> None:
    """Spikes identical, other records too, except the membranes of RLeaky/RSynaptic (a few ulps)."""
    for key, theirs in expected.items():
        mine, theirs = found[key].detach(), theirs.detach()
        if _spiking_output(graph, key) or not recurrent:
            assert torch.equal(mine, theirs), f"{where}record {key!r} differs from snnTorch's"
        else:
            tolerance = RECURRENT_ULPS * EPSILON
            torch.testing.assert_close(mine, theirs, rtol=tolerance, atol=tolerance, msg=f"{where}record {key!r}")


def _gradients(pairs) -> dict:
    """``{name: (snnir's gradient, snnTorch's)}`` of paired leaves; a missing gradient (a parameter that did not
    take part, e.g. a recurrent synapse whose delayed output arrives after the last step) counts as zero."""
    return {name: tuple(torch.zeros_like(t) if t.grad is None else t.grad for t in pair) for name, pair in pairs.items()}


def _finite(gradients) -> bool:
    return all(bool(torch.isfinite(gradient).all()) for gradient in gradients)


def _mismatches(gradients, rtol: float) -> dict:
    """``{name: scale}`` of the ``(ours, reference)`` gradient pairs further apart than ``rtol·scale``, with the
    scale the largest entry of that reference gradient or, if larger, of any reference gradient of the step
    (every parameter's and the input's).

    Why that floor: a gradient entry is a float sum of many products, and each implementation rounds it to
    about eps times the magnitude of those products, not of the result. Where the products cancel (a bias or
    threshold summed over every neuron and step, β = 1 carrying the whole future), the result can be far
    smaller than its terms (seen: a CubaLIF threshold's gradient of 2.7 summed from terms of total magnitude
    2100, the two sides 3e-5 apart). The products are of the order of the upstream gradients, which the
    largest gradient of the step bounds. A wrong formula still shows: it is off by a sizeable part of its
    own gradient (and the float64 comparison checks the formulas to 1e-10)."""
    largest = max((float(reference.abs().max()) for _, reference in gradients.values()), default=0.0)
    found = {}
    for name, (ours, reference) in gradients.items():
        scale = max(float(reference.abs().max()), largest) or 1.0
        if float((ours - reference).abs().max()) > rtol * scale:
            found[name] = scale
    return found


def _assert_gradients_match(gradients, rtol: float, where: str = "") -> None:
    errors = [f"{name} by {float((gradients[name][0] - gradients[name][1]).abs().max()) / scale:.2e} (relative to {scale:.3g})"
              for name, scale in _mismatches(gradients, rtol).items()]
    assert not errors, f"{where}gradients differ: {'; '.join(errors)}"


def _float64_gradients(example: Example, pairs, spikes: dict) -> dict:
    """The gradients of snnTorch's model run in float64 at the current parameters, with snnir's loss (see
    ``FLOAT32_ONLY_LOSSES``): the value both float32 gradients round. It must fire the float32 runs' ``spikes``
    (``{output: record}``), or it computes another function."""
    module = to_snntorch(example.graph).double()
    leaves = {name: _snntorch_tensor(module, example.graph, name) for name in pairs if name != "input"}
    with torch.no_grad():
        for name, tensor in leaves.items():
            tensor.copy_(pairs[name][1]).requires_grad_(True)
    example = example.to(torch.float64)
    leaves["input"] = example.x.clone().requires_grad_()
    with _snntorch_in_float64():
        records = _snntorch_forward(module, leaves["input"])
        _backward(_total_loss(records, example, _losses(example.loss_name)[0]))
    for key, record in spikes.items():
        assert torch.equal(records[key].detach().float(), record), f"the float64 run fires otherwise ({key!r})"
    return {name: torch.zeros_like(t) if t.grad is None else t.grad for name, t in leaves.items()}


def _assert_as_accurate_as_snntorch(gradients, mismatched: dict, truth: dict, where: str) -> None:
    """Where snnir's float32 gradient is further than ``GRADIENT_RTOL`` from snnTorch's, snnTorch's own float32
    rounding must be the reason: snnir's gradient may then be no further from the float64 value ``truth``
    than snnTorch's is (both beyond the tolerance happen when all gradients are small against the products
    they sum: seen 1.4e-5 for snnTorch and 6.8e-6 for snnir, relative to the largest gradient)."""
    for name, scale in mismatched.items():
        ours, theirs = (g.double() for g in gradients[name])
        mine, snntorchs = float((ours - truth[name]).abs().max()), float((theirs - truth[name]).abs().max())
        assert mine <= max(GRADIENT_RTOL * scale, snntorchs), (
            f"{where}gradient of {name}: {mine / scale:.2e} from float64 (relative to {scale:.3g}), snnTorch's "
            f"{snntorchs / scale:.2e}, snnTorch's float32 one {float((ours - theirs).abs().max()) / scale:.2e}"
        )


def _assert_gradients_as_snntorchs(example: Example, pairs, expected, precision: Precision, where: str) -> None:
    """Every gradient within the precision's tolerance of snnTorch's; in float32, else no less accurate."""
    gradients = _gradients(pairs)
    mismatched = _mismatches(gradients, precision.gradient_rtol)
    if mismatched and precision.dtype == torch.float32:
        spikes = {key: value.detach() for key, value in expected.items() if _spiking_output(example.graph, key)}
        _assert_as_accurate_as_snntorch(gradients, mismatched, _float64_gradients(example, pairs, spikes), where)
    else:
        _assert_gradients_match(gradients, precision.gradient_rtol, where)


# -- lockstep training ---------------------------------------------------------------------------------------
def _keep_dyadic(pairs, graph) -> None:
    """Round the parameters of synapses (Linear, Conv) and Scale factors back to multiples of ``1/GRID``.

    Why: the forward pass is bit-identical to snnTorch's on dyadic data only (docs/semantics.md, numerics
    contract). With general float weights a product of the folded ``[T·B, in]`` batch can sum in another
    order than snnTorch's per-step ``[B, in]`` calls (MKL's GEMV for one sample or one output, some small
    convolutions), and a surrogate's slope turns such a last-bit membrane difference into a gradient
    difference beyond 1e-5 (seen: 1.8e-5 after one Adam step). On the grid the sums stay exact, so every step
    compares the backward pass alone. Adam's steps are about its learning rate, ``1/GRID``, so they survive
    the rounding; neuron parameters (beta, alpha, threshold, bias) act element-wise and stay as Adam makes
    them."""
    with torch.no_grad():
        for name, (_, theirs) in pairs.items():
            if name != "input" and not graph.nodes[name.split(".")[1]].stateful:
                theirs.copy_(torch.round(theirs * GRID) / GRID)


def _compare_step(example: Example, module, model, pairs, precision: Precision, step: int) -> str:
    """One lockstep step: snnir takes snnTorch's parameters, both run forward and backward, and are compared.
    Returns ``"compared"``, or why the step could not be."""
    where = f"step {step}: "
    with torch.no_grad():
        for mine, theirs in pairs.values():
            mine.copy_(theirs)
            mine.grad = theirs.grad = None
    ours_loss, their_loss = _losses(example.loss_name)
    expected = _snntorch_forward(module, pairs["input"][1])
    loss_theirs = _total_loss(expected, example, their_loss)
    _backward(loss_theirs)
    found = model(pairs["input"][0])
    loss_ours = _total_loss(found, example, ours_loss)
    _backward(loss_ours)
    recurrent = _recurrent_neurons(module)
    _assert_records_match(example.graph, found, expected, recurrent, where)
    if not _finite(theirs for _, theirs in _gradients(pairs).values()):
        # Exploding gradients: a same-step reset multiplies the gradient by 1 − θ·σ' at every step, which
        # overflows float32 on long runs with steep surrogates; where inf meets inf or 0 (in either's
        # summation order) is no contract, but snnir's must overflow too.
        assert not _finite(mine for mine, _ in _gradients(pairs).values()), f"{where}only snnTorch's gradients overflow"
        return "gradients overflow on both sides"
    if recurrent:
        # RLeaky/RSynaptic membranes may differ by a few ulps (see _assert_records_match): the loss functions
        # are then compared on snnTorch's records, which that check has related to snnir's.
        loss_ours = _total_loss({key: value.detach() for key, value in expected.items()}, example, ours_loss)
    difference = abs(float(loss_ours.detach()) - float(loss_theirs.detach()))
    assert difference <= LOSS_RTOL * max(1.0, abs(float(loss_theirs.detach()))), f"{where}losses differ by {difference}"
    _assert_gradients_as_snntorchs(example, pairs, expected, precision, where)
    return "compared"


def _train_in_lockstep(example: Example, precision: Precision = FLOAT32) -> str:
    """Lockstep Adam steps of both implementations (see the module docstring); returns the outcome's tally key."""
    example = example.to(precision.dtype)
    module = to_snntorch(example.graph).to(precision.dtype)
    model = snnir.compile(example.graph, "torch", dtype=precision.dtype, **example.options)
    pairs = _pair_parameters(model, module, example.graph)
    parameters = [theirs for _, theirs in pairs.values()]
    optimizer = torch.optim.Adam(parameters, lr=1 / GRID) if parameters else None
    pairs["input"] = (example.x.clone().requires_grad_(), example.x.clone().requires_grad_())
    for step in range(precision.optimizer_steps if parameters else 1):
        outcome = _compare_step(example, module, model, pairs, precision, step)
        if outcome != "compared":
            return outcome
        if optimizer is not None:
            optimizer.step()
            _keep_dyadic(pairs, example.graph)
    return "compared"


def _cubalif_bias(graph) -> bool:
    return any(isinstance(n, CubaLIF) and n.bias is not None for n in graph.nodes.values())


def _assert_matches_snntorch(precision: Precision, examples: int) -> None:
    """Run ``examples`` lockstep comparisons; a documented refusal is skipped, and most examples must compare."""
    tally = collections.Counter()

    @settings(max_examples=examples * SCALE, **COMMON)
    @given(_examples())
    def check(example):
        if precision.dtype == torch.float64 and example.loss_name in FLOAT32_ONLY_LOSSES:
            example = dataclasses.replace(example, loss_name="none")
        try:
            outcome = _train_in_lockstep(example, precision)
        except UnsupportedNodeError as error:
            assert _cubalif_bias(example.graph) and "(CubaLIF) has a bias" in str(error), f"undocumented refusal: {error}"
            outcome = "refused: CubaLIF bias"
        tally[outcome] += 1

    with mock.patch.object(surrogate.Sigmoid, "backward", _sigmoid_backward_as_documented(surrogate.Sigmoid.backward)):
        with _snntorch_in_float64() if precision.dtype == torch.float64 else contextlib.nullcontext():
            check()
    share = tally["compared"] / max(sum(tally.values()), 1)
    assert share >= MIN_COMPARED, f"only {share:.0%} of the examples were compared: {dict(tally)}"


def test_training_matches_snntorch_on_random_graphs():
    _assert_matches_snntorch(FLOAT32, EXAMPLES["snntorch"])


def test_float64_gradients_match_snntorch_on_random_graphs():
    _assert_matches_snntorch(FLOAT64, EXAMPLES["snntorch float64"])


# -- float64: the custom backward against autograd through a step loop -----------------------------------------
def _fan_in(graph, name, values, t: int, zeros):
    """The input of ``name`` at step ``t``: its edges summed in order, a delayed edge reading an earlier step."""
    terms = [values[e.src][t - e.delay] if t >= e.delay else zeros(e.src) for e in graph.incoming(name)]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _step_loop(model, graph, x):
    """Every output's record from a naive loop over steps: each layer once per step in topological order,
    neurons through their differentiable ``step``, fan-in summed in edge order, delayed edges from the
    values of earlier steps (zeros before the first)."""
    sequence = graph.nodes["x"].encoding == "sequence"
    steps, batch = x.shape[:2] if sequence else (graph.time.num_steps, x.shape[0])
    order = [n for n in graph.topological_order() if not isinstance(graph.nodes[n], Output) and n != "x"]
    values, states = {name: [] for name in ["x", *order]}, {}
    records = {o: [] for o in graph.outputs}
    for t in range(steps):
        values["x"].append(x[t] if sequence else x)
        for name in order:
            total = _fan_in(graph, name, values, t, lambda source: x.new_zeros((batch, *graph.shapes[source])))
            layer = model.layer(name)
            if layer.stateful:
                value, states[name] = layer.step(total, states.get(name) or layer.init_state(batch, total))
            else:
                value = layer(total)
            values[name].append(value)
        for output in graph.outputs:
            source, record = graph.output_source(output), graph.nodes[output].record
            records[output].append(values[source][t] if record in ("value", "spikes") else states[source][record])
    return {o: torch.stack(r) for o, r in records.items()}


@settings(max_examples=EXAMPLES["autograd"] * SCALE, **COMMON)
@given(_examples())
def test_custom_backward_matches_autograd_in_float64(example):
    example = example.to(torch.float64)
    model = snnir.compile(example.graph, "torch", dtype=torch.float64, **example.options)
    parameters = dict(model.named_parameters())
    results = []
    for scan in (True, False):
        inputs = example.x.clone().requires_grad_()
        records = model(inputs) if scan else _step_loop(model, example.graph, inputs)
        loss = _total_loss(records, example, None)
        leaves = [inputs, *parameters.values()]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True) if loss.requires_grad else (None,) * len(leaves)
        results.append(({k: v.detach() for k, v in records.items()}, grads))
    (records_scan, grads_scan), (records_loop, grads_loop) = results
    for key in records_scan:
        assert torch.equal(records_scan[key], records_loop[key]), f"record {key!r} differs between the scan and the step loop"
    # A missing gradient is a zero one: the model also computes what only its final state holds (the history
    # of a delayed edge), the step loop does not.
    gradients = {name: tuple(torch.zeros_like(leaf) if g is None else g for g in (a, b))
                 for name, a, b, leaf in zip(["input", *parameters], grads_scan, grads_loop, leaves)}
    _assert_gradients_match(gradients, FLOAT64_RTOL)
