"""Recording what a module's forward does on a probe input: every leaf-module call and torch operation.

``torch.fx`` cannot trace the usual snnTorch time loop (states created by ``reset_mem()``, tensors
compared with ``None`` inside the neurons, Python lists of records), so the forward runs for real on a
probe input while two recorders watch it:

* forward hooks on every *leaf* module (snnTorch neurons and childless torch layers) record the call,
  its operands and its outputs; what happens inside a leaf is not recorded;
* a ``TorchFunctionMode`` records every torch function or tensor method called outside the leaves
  (``x.flatten(1)``, ``a + b``, ``torch.stack(records)``), except inside snnTorch's class-wide state
  resets (``utils.reset``), which touch every neuron alive in the process.

Each operand is resolved, at the moment of the call, to where the tensor came from (a :class:`Ref`):
the model input, an output of an earlier call, or a constant. Each call also gets a *site*: the
module and the Python call stack (code objects and bytecode offsets), which is the same for the same
line of the loop body at every step. :mod:`.folding` turns the recording into a graph.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import snntorch
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from snnir.errors import GraphError, SemanticsWarning

from .neurons import is_snntorch_neuron

#: frames in these directories are library internals, not the user's loop (error messages skip them)
_OWN_DIR = os.path.dirname(__file__) + os.sep
_SNNTORCH_DIR = os.path.dirname(snntorch.__file__) + os.sep
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_LIBRARY_DIRS = (_TORCH_DIR, _SNNTORCH_DIR, _OWN_DIR)
#: snnTorch's class-wide state resets (``utils.reset(net)`` calls them): they zero the hidden states of
#: every neuron instance alive in the process, this model's or not, so what they do is not recorded
#: (snnir's states start at zero). Recorded, their calls repeat once per instance at one site, which
#: reads as a loop body when that count happens to equal the number of steps.
_STATE_RESETS = frozenset({"reset_hidden", "detach_hidden"})
#: deterministic factories: a tensor they make from Python values inside forward (``torch.tensor(0.3)``) is a
#: constant, like a buffer. Random ones (``torch.rand``) are not: snnir would freeze one draw.
#: operations whose result is the same constant when their operand is one (a device move, a copy)
CONSTANT_PRESERVING = frozenset({torch.Tensor.to, torch.Tensor.float, torch.Tensor.clone, torch.Tensor.contiguous,
                                 torch.Tensor.detach, torch.Tensor.cpu, torch.Tensor.cuda})
#: operations that read tensor values into Python, where a trace cannot follow them
DATA_READS = frozenset({torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__float__, torch.Tensor.__int__})
CONSTANT_FACTORIES = frozenset(
    {torch.tensor, torch.as_tensor, torch.scalar_tensor, torch.full, torch.zeros, torch.ones, torch.arange,
     torch.linspace, torch.logspace, torch.eye}
)


@dataclass(frozen=True, eq=False)
class Ref:
    """Where a tensor operand came from: ``"input"``, output ``index`` of call ``call``, or a ``"const"``."""

    source: str
    call: int = -1
    index: int = 0
    tensor: torch.Tensor | None = field(default=None, repr=False)


@dataclass(eq=False)
class Call:
    """One recorded call: a leaf module or a torch function, with operands as :class:`Ref` structures."""

    index: int
    target: Any
    is_module: bool
    site: tuple
    args: tuple
    kwargs: dict
    outputs: tuple[torch.Tensor, ...]
    returns_tuple: bool
    where: str
    path: str | None = None

    def describe(self) -> str:
        if self.is_module:
            return f"{self.path} ({type(self.target).__name__}) at {self.where}"
        return f"{function_name(self.target)} at {self.where}"


def _functional_names() -> dict[Any, str]:
    """``torch.nn.functional``'s public callables by object: their own ``__qualname__`` is often useless
    (``F.max_pool2d`` is ``boolean_dispatch.<locals>.fn``, ``F.avg_pool2d`` a builtin of ``torch._C._nn``)."""
    names: dict[Any, str] = {}
    for name in dir(F):
        value = getattr(F, name)
        if not name.startswith("_") and callable(value) and not isinstance(value, type):
            try:
                names.setdefault(value, f"torch.nn.functional.{name}")
            except TypeError:  # unhashable: not a function anyway
                pass
    return names


_FUNCTIONAL = _functional_names()


def function_name(target: Any) -> str:
    """The name a user writes for a recorded torch function: ``torch.nn.functional.max_pool2d``,
    ``Tensor.unsqueeze``, ``torch.sigmoid``."""
    try:
        if target in _FUNCTIONAL:
            return _FUNCTIONAL[target]
    except TypeError:
        pass
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", repr(target))
    return name.replace("TensorBase", "Tensor").replace("_VariableFunctionsClass", "torch")


@dataclass
class Trace:
    """Everything one forward did: the calls in order, and the returned structure of Refs."""

    calls: list[Call]
    returned: Any
    probe: torch.Tensor


def _is_leaf(module: nn.Module) -> bool:
    return is_snntorch_neuron(module) or not any(True for _ in module.children())


def leaves(root: nn.Module) -> dict[int, tuple[str, nn.Module]]:
    """Leaf modules by id, with their dotted path (a neuron's own children stay inside it)."""
    found: dict[int, tuple[str, nn.Module]] = {}

    def visit(module: nn.Module, path: str) -> None:
        if module is not root and _is_leaf(module):
            found.setdefault(id(module), (path, module))
            return
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name)

    visit(root, "")
    return found


class _Recorder:
    def __init__(self, probe: torch.Tensor, paths: dict[int, str], stop_frame: Any):
        self.calls: list[Call] = []
        self.warned: set[str] = set()  # sites already warned about (a loop body runs once per step)
        self.producers: dict[int, tuple[int, int]] = {}
        self.keep: list[torch.Tensor] = [probe]  # keeps ids unique while the trace lives
        self.probe = probe
        self.paths = paths
        self.stop_frame = stop_frame
        self.depth = 0
        self.pending: list[tuple] = []

    def ref(self, tensor: torch.Tensor) -> Ref:
        if tensor is self.probe:
            return Ref("input", tensor=tensor)
        self.keep.append(tensor)
        produced = self.producers.get(id(tensor))
        if produced is None:
            return Ref("const", tensor=tensor)
        return Ref("call", produced[0], produced[1], tensor)

    def refs(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self.ref(value)
        if isinstance(value, list):
            return [self.refs(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.refs(v) for v in value)
        if isinstance(value, dict):
            return {k: self.refs(v) for k, v in value.items()}
        return value

    def in_state_reset(self) -> bool:
        """Whether the current torch call comes from inside snnTorch's class-wide state resets."""
        frame = sys._getframe(2)
        while frame is not None and frame is not self.stop_frame:
            code = frame.f_code
            if code.co_name in _STATE_RESETS and code.co_filename.startswith(_SNNTORCH_DIR):
                return True
            frame = frame.f_back
        return False

    def site(self) -> tuple[tuple, str]:
        """The call stack (code, bytecode offset) up to the tracing frame, and the innermost user line.

        Library frames count too: ``reset_mem()`` of a Synaptic calls ``zeros_like`` twice from one user line.
        """
        frames, where = [], None
        frame = sys._getframe(2)
        while frame is not None and frame is not self.stop_frame:
            filename = frame.f_code.co_filename
            if not filename.startswith(_OWN_DIR):
                frames.append((frame.f_code, frame.f_lasti))
                if where is None and not filename.startswith(_LIBRARY_DIRS):
                    where = f"{os.path.basename(filename)}:{frame.f_lineno}"
            frame = frame.f_back
        return tuple(frames), where or "?"

    def add(self, target: Any, is_module: bool, args: Any, kwargs: Any, result: Any, site: tuple) -> None:
        if not is_module and target in CONSTANT_FACTORIES and not _refs((args, kwargs)):
            return  # not recorded: readers resolve the new tensor to a constant
        if not is_module and target in CONSTANT_PRESERVING and all(r.source == "const" for r in _refs((args, kwargs))):
            return  # a constant moved or copied (torch.tensor(0.3).to(x.device)) stays a constant
        if (not is_module and target in DATA_READS and site[1] not in self.warned
                and any(r.source != "const" for r in _refs((args, kwargs)))):
            self.warned.add(site[1])
            warnings.warn(
                f"{function_name(target)} at {site[1]} reads a value of the data into Python: whatever forward computes "
                "from it is frozen into the graph as the value this trace saw (a constant), and snnir's model differs "
                "from snnTorch's on other inputs if it reaches a recorded output",
                SemanticsWarning,
                stacklevel=2,
            )
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        if not is_module and result is None and getattr(target, "__name__", "") == "__setitem__":
            outputs = (args[0].tensor,)  # an in-place write: later readers see a new version
        if not all(isinstance(t, torch.Tensor) for t in outputs) or not outputs:
            if not is_module:
                return  # sizes, shapes, comparisons: plain Python values
            raise GraphError(f"{self.paths.get(id(target))} returned {type(result).__name__}, expected tensors")
        index = len(self.calls)
        stack, where = site
        call = Call(index, target, is_module, stack, args, kwargs, tuple(outputs), isinstance(result, (tuple, list)), where)
        call.path = self.paths.get(id(target)) if is_module else None
        self.calls.append(call)
        for position, tensor in enumerate(outputs):
            self.keep.append(tensor)
            self.producers[id(tensor)] = (index, position)


def _refs(value: Any) -> list[Ref]:
    """The tensors (:class:`Ref`) in a structure of operands."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


class _FunctionMode(TorchFunctionMode):
    def __init__(self, recorder: _Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        recorder = self.recorder
        if recorder.depth or recorder.in_state_reset():
            return func(*args, **kwargs)
        operands, keywords, site = recorder.refs(args), recorder.refs(kwargs), recorder.site()
        result = func(*args, **kwargs)
        recorder.add(func, False, operands, keywords, result, site)
        return result


def trace(root: nn.Module, probe: torch.Tensor) -> Trace:
    """Run ``root(probe)`` once and record it (the caller provides fresh neuron states and no_grad)."""
    found = leaves(root)
    if not found:
        raise GraphError(f"{type(root).__name__} has no submodules to trace")
    recorder = _Recorder(probe, {key: path for key, (path, _) in found.items()}, sys._getframe())
    handles = []

    def before(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if recorder.depth == 0:
            recorder.pending.append((recorder.refs(args), recorder.refs(kwargs), recorder.site()))
        recorder.depth += 1

    def after(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        recorder.depth -= 1
        if recorder.depth == 0:
            operands, keywords, site = recorder.pending.pop()
            recorder.add(module, True, operands, keywords, output, site)

    try:
        for _, module in found.values():
            handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(module.register_forward_hook(after, with_kwargs=True))
        with _FunctionMode(recorder):
            result = root(probe)
    except GraphError:
        raise
    except Exception as error:  # the user's forward failed on the probe: say on what and where, keep the cause
        frames = traceback.extract_tb(error.__traceback__)
        # the innermost frame of the user's code or snnTorch's (not this tracer's, not torch's)
        frame = next((f for f in reversed(frames) if not f.filename.startswith((_OWN_DIR, _TORCH_DIR))), frames[-1])
        place = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        inside = frame.filename.startswith(_SNNTORCH_DIR)
        hint = (f"it failed inside snnTorch ({place}): check the module's own arguments and states as snnTorch "
                "expects them" if inside else f"at {place}: check input_shape, encoding and batch_size")
        raise GraphError(
            f"{type(root).__name__}.forward failed on a probe input of shape {tuple(probe.shape)} "
            f"({type(error).__name__}: {error}); {hint}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
    return Trace(recorder.calls, recorder.refs(result), probe)


__all__ = ["Ref", "Call", "Trace", "trace", "leaves", "function_name", "CONSTANT_FACTORIES", "CONSTANT_PRESERVING", "DATA_READS"]
