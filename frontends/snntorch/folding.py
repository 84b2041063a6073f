"""Folding a recorded forward (``T`` unrolled steps) into one verified time step.

A call *site* (the module or function, plus the user's call stack) that ran ``T = num_steps`` times is
part of the loop body; one that ran once is before or after the loop. The body must be the same
sequence of sites at every step; block ``b`` holds the calls of step ``b``. Within the last block every
tensor operand is then described relative to its step:

* ``("body", p, o, d)``: output ``o`` of body position ``p``, ``d`` steps ago (``d = 0``: this step;
  ``d >= 1``: a state or a delayed edge);
* ``("pre", j, o)``: output ``o`` of call ``j`` before the loop (time-invariant);
* ``("input",)``, ``("const", shape, bytes)``, ``("seq", ...)``, ``("map", ...)`` and ``("lit", value)``,
  where the index of ``x[step]`` is the literal :data:`STEP` at every step.

Every earlier block must have the same descriptions, except that an operand ``d`` steps back from a step
``b < d`` must be an initial value: ``None``, empty or all zeros (snnir states start at zero). This
check is what makes the conversion exact rather than a guess from one step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from snnir.errors import GraphError, UnsupportedNodeError

from .neurons import is_snntorch_neuron, neuron_spec, supported_neurons
from .tracer import Call, Ref, Trace


def site_key(call: Call) -> tuple:
    return (id(call.target) if call.is_module else call.target, call.site)


@dataclass(frozen=True)
class Location:
    """Where a tensor operand comes from (see the module docstring); ``key`` is ``("body", p, o)`` or
    ``("pre", j, o)`` for call outputs, ``("input",)`` or ``("const",)`` otherwise."""

    key: tuple
    delay: int = 0


class Program:
    """The recorded calls split into ``pre``, ``blocks`` (one per step) and ``post``, checked step by step."""

    def __init__(self, trace: Trace, num_steps: int):
        self.trace = trace
        self.calls = trace.calls
        self.num_steps = num_steps
        counts = Counter(site_key(call) for call in self.calls)
        loops = Counter(n for n in counts.values() if n > 1).most_common(1)
        hint = f" (the module's loop seems to run {loops[0][0]} steps)" if loops else ""
        body = [call for call in self.calls if counts[site_key(call)] == num_steps]
        if not body:
            _refuse_unsupported_neurons(self.calls)  # e.g. LeakyParallel, which runs the whole sequence in one call
            raise GraphError(f"no operation ran num_steps={num_steps} times{hint}; pass the length of the module's time loop")
        width = len(body) // num_steps
        self.blocks = [body[b * width : (b + 1) * width] for b in range(num_steps)]
        order = [site_key(call) for call in self.blocks[0]]
        for b, block in enumerate(self.blocks):
            if [site_key(call) for call in block] != order:
                raise GraphError(f"step {b} of the loop runs different operations than step 0; the loop body must not branch on the step")
        self.position = {call.index: (b, p) for b, block in enumerate(self.blocks) for p, call in enumerate(block)}
        first, last = body[0].index, body[-1].index
        # Calls that fit no step are harmless until a recorded value depends on them (see locate).
        self.misplaced: dict[int, str] = {}
        in_loop = {site_key(call) for call in self.calls if first < call.index < last}
        for call in self.calls:
            count = counts[site_key(call)]
            if count not in (1, num_steps):
                self.misplaced[call.index] = _miscounted(call, count, num_steps, inside=site_key(call) in in_loop)
            elif count == 1 and first < call.index < last:
                self.misplaced[call.index] = (
                    f"{call.describe()} runs only once, inside the loop (e.g. under `if step == 0`); snnir steps are all alike"
                )
        self.pre = [call for call in self.calls if call.index < first and call.index not in self.misplaced]
        self.post = [call for call in self.calls if call.index > last and call.index not in self.misplaced]
        self.pre_indices = {call.index for call in self.pre}
        self.template = self.blocks[-1]
        self._check_steps()

    # -- descriptions --------------------------------------------------------------------------
    def locate(self, ref: Ref, block: int) -> Location:
        """Where ``ref`` (an operand used in step ``block``) comes from."""
        if ref.source == "input":
            return Location(("input",))
        if ref.source == "const":
            return Location(("const",))
        if ref.call in self.position:
            b, p = self.position[ref.call]
            return Location(("body", p, ref.index), block - b)
        if ref.call in self.pre_indices:
            return Location(("pre", ref.call, ref.index))
        if ref.call in self.misplaced:
            raise GraphError(self.misplaced[ref.call])
        raise GraphError(f"{self.calls[ref.call].describe()} is used inside the loop but runs after it")

    def describe(self, value: Any, block: int) -> Any:
        if isinstance(value, Ref):
            if value.source == "const":
                return ("const", tuple(value.tensor.shape), value.tensor.detach().cpu().numpy().tobytes())
            location = self.locate(value, block)
            return (*location.key, location.delay) if location.key[0] == "body" else location.key
        if isinstance(value, (list, tuple)):
            return ("seq", tuple(self.describe(v, block) for v in value))
        if isinstance(value, dict):
            return ("map", tuple((k, self.describe(v, block)) for k, v in value.items()))
        return ("lit", value)

    def describe_call(self, call: Call, block: int) -> Any:
        """The description of all operands of ``call`` as it ran in step ``block``."""
        return self.describe(_operands(call, block), block)

    # -- the step-by-step check ------------------------------------------------------------------
    def _check_steps(self) -> None:
        last = self.num_steps - 1
        for p, call in enumerate(self.template):
            expected = self.describe_call(call, last)
            for b in range(last):
                found = self.blocks[b][p]
                if not self._matches(expected, _operands(found, b), b):
                    raise GraphError(
                        f"{found.describe()} gets different operands at step {b} than at step {last}; snnir needs every "
                        "step to compute the same function of the previous states, and states that start at zero"
                    )

    def _matches(self, expected: Any, raw: Any, block: int) -> bool:
        """Whether ``raw`` (operands of step ``block``) fits the last step's description ``expected``."""
        if expected[0] == "body" and expected[3] > block:
            return _is_initial(raw)  # reaches back before step 0: must be the zero initial state
        if isinstance(raw, (list, tuple)):
            items = expected[1] if expected[0] == "seq" else ()
            return len(items) == len(raw) and all(self._matches(e, r, block) for e, r in zip(items, raw))
        if isinstance(raw, dict):
            pairs = expected[1] if expected[0] == "map" else ()
            return [k for k, _ in pairs] == list(raw) and all(self._matches(e, raw[k], block) for k, e in pairs)
        return self.describe(raw, block) == expected


def _refuse_unsupported_neurons(calls: list[Call]) -> None:
    """Name an snnTorch neuron snnir lacks, rather than the loop structure it breaks."""
    for call in calls:
        if call.is_module and is_snntorch_neuron(call.target) and neuron_spec(call.target) is None:
            raise UnsupportedNodeError(
                f"{call.describe()}: snnTorch's {type(call.target).__name__} has no snnir equivalent; supported: "
                f"{', '.join(supported_neurons())}"
            )


def _miscounted(call: Call, count: int, num_steps: int, inside: bool) -> str:
    """Why a call that ran neither once nor once per step fits no step (``inside``: some run lies in the loop)."""
    if inside and count < num_steps:
        return (
            f"{call.describe()} ran in only {count} of the loop's {num_steps} steps; every step must run the same "
            "operations (no branching on the step inside the loop)"
        )
    where = "during the loop's" if inside else "outside the loop's"
    return (
        f"{call.describe()} ran {count} times {where} {num_steps} steps; every operation must run once per step or "
        "once outside the loop"
    )


class _StepIndex:
    """Stands for the loop index in ``x[step]``, so that every step describes that operand alike."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StepIndex)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "step"


STEP = _StepIndex()


def _operands(call: Call, block: int) -> tuple:
    """``(args, kwargs)`` of a call, with the step index of ``x[step]`` replaced by :data:`STEP`."""
    args = list(call.args)
    if call.target is torch.Tensor.__getitem__ and len(args) == 2 and isinstance(args[1], int) and args[1] == block:
        args[1] = STEP
    return (tuple(args), call.kwargs)


def _is_initial(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, Ref) and raw.tensor is not None:
        return raw.tensor.numel() == 0 or not bool(raw.tensor.any())
    return False


__all__ = ["Program", "Location", "site_key", "STEP"]
