"""A training loop for compiled models: :func:`fit`, :func:`evaluate`, :class:`History`, checkpoints.

``fit(model, (x, y), epochs=1, loss="mse_count_loss", optimizer="adam", lr=2e-3, ...)`` trains a
:class:`~snnir.backends.pytorch.TorchModel` (or a ``DistributedDataParallel`` wrapping one) with BPTT:

* data: numpy arrays or tensors ``(x, y)`` batched here (``x`` in the model's convention: a ``direct``
  input ``[N, *shape]``, a ``sequence`` input ``[T, N, *shape]``, or a dict of those), or any iterable of
  ``(x, y)`` batches such as a ``DataLoader``; ``encode`` turns each ``x`` batch into the model's input
  (``encode=lambda x: encoders.rate(x, 25)``), in which case arrays are cut along their first axis;
* ``loss`` and ``optimizer`` by object or by name (``"mse_count_loss"``, ``{"name": "mse_count_loss",
  "correct_rate": 0.8, "incorrect_rate": 0.2}``; ``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``);
  the loss reads the output it ``expects`` (spikes or membrane) unless ``output`` names one;
* ``tbptt=K``: truncated BPTT, one optimizer step per ``K`` steps, the state carried (detached) between
  chunks, as snnTorch's ``backprop.TBPTT``;
* ``checkpoint=path``: after every epoch the model, optimizer, history and RNG states are written
  atomically; ``resume=True`` continues from that file;
* a tqdm progress bar per epoch (``progress=False`` hides it), with its length when the data are
  arrays; the returned :class:`History` holds the per-epoch training loss, accuracy, time and
  validation results, and ``on_epoch(row)`` receives each epoch's row as soon as it is done.

Under ``torch.distributed`` with numpy data, every rank draws the same permutation and trains on its
own share of each batch; DDP averages the gradients, and the reported figures are reduced over the ranks.
Only rank 0 shows progress and writes checkpoints; ``on_epoch`` runs on every rank (a scheduler stepped
there steps every replica). A loss that is not finite (on any rank) stops fit with
:class:`TrainingDiverged` before the optimizer step.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from snnir.errors import InputError, SnnirError
from snnir.formats.atomic import check_writable

from .checkpoints import History, load_checkpoint, save_checkpoint, unwrap
from .losses import accuracy_rate, make_loss


class TrainingDiverged(SnnirError, FloatingPointError):
    """The loss of a batch is NaN or infinite: :func:`fit` stops before that batch's optimizer step, so the
    weights stay those of the last finite step (and the last checkpoint stands)."""


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


# -- pieces ---------------------------------------------------------------------------------------
def _torch_model(model: Any) -> torch.nn.Module:
    """The compiled torch model inside ``model`` (itself or a DDP wrapper); other objects are an error."""
    from .model import TorchModel

    compiled = unwrap(model)
    if hasattr(compiled, "_orig_mod"):  # torch.compile's wrapper
        raise InputError("fit and evaluate take the snnir model itself, not a torch.compile wrapper: they call it chunk by "
                         "chunk with states (pass model._orig_mod)")
    if not isinstance(compiled, TorchModel):
        raise InputError(f"fit and evaluate take a model of the torch backend, snnir.compile(graph, \"torch\"); "
                         f"found {type(compiled).__name__}")
    return compiled


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _shards(model: torch.nn.Module) -> tuple[int, int]:
    """``(rank, world size)`` to cut array data by: a DistributedDataParallel model trains (or is scored) on
    its rank's share of every batch; any other model sees all of it, even inside a process group."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return _distributed()
    return 0, 1


def make_optimizer(spec: Any, parameters: Iterable[torch.nn.Parameter], lr: float | None, options: Mapping | None) -> torch.optim.Optimizer:
    """An optimizer from an instance (used as is), a class, or a name in :data:`OPTIMIZERS`."""
    if isinstance(spec, torch.optim.LBFGS) or (isinstance(spec, type) and issubclass(spec, torch.optim.LBFGS)):
        raise InputError("optimizers that re-evaluate the loss through a closure (LBFGS) are not supported by fit")
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if isinstance(spec, str):
        if spec.lower() not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {spec!r}; known: {sorted(OPTIMIZERS)}, or pass an optimizer object")
        spec = OPTIMIZERS[spec.lower()]
    if not (isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer)):
        raise InputError(f"optimizer must be a name, an Optimizer class or instance, found {spec!r}")
    arguments = dict(options or {})
    if lr is not None:
        arguments.setdefault("lr", lr)  # an lr in optimizer_options wins over the lr argument
    try:
        return spec(parameters, **arguments)
    except (ValueError, TypeError) as error:  # torch's own checks: a negative lr, an unknown option...
        raise InputError(f"optimizer {spec.__name__}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}): {error}") from None


#: what snnTorch's own loss objects (snntorch.functional) read, for fit given one of them
SNNTORCH_LOSS_READS = {"ce_max_membrane_loss": "membrane", "mse_membrane_loss": "membrane", "mse_count_loss": "spikes",
                       "ce_count_loss": "spikes", "ce_rate_loss": "spikes", "mse_temporal_loss": "spikes",
                       "ce_temporal_loss": "spikes"}


def pick_output(graph, loss: Any, output: str | None) -> str:
    """The output the loss reads: ``output`` if given, else the first recording what the loss expects
    (``loss.expects``: "spikes" or "membrane"; a loss without it takes the first spike output, or the
    first output). A loss of snnir's given an output of the other kind is an error, not a silent fit."""
    expects = getattr(loss, "expects", None) or SNNTORCH_LOSS_READS.get(type(loss).__name__)
    kinds = {name: "spikes" if _spiking(graph, name) else "membrane" for name in graph.outputs}
    if output is not None:
        if output not in graph.outputs:
            raise InputError(f"unknown output {output!r}; the graph's outputs are {list(graph.outputs)}")
        if expects is not None and kinds[output] != expects:
            raise InputError(f"the loss reads {expects}, but output {output!r} records {kinds[output]}; "
                             f"outputs: {kinds}")
        return output
    wanted = expects or "spikes"
    for name in graph.outputs:
        if kinds[name] == wanted:
            return name
    if expects is None:
        return graph.outputs[0]
    other = "a membrane loss (mse_membrane_loss, ce_max_membrane_loss)" if expects == "spikes" else "a spike-count loss"
    raise InputError(f"the loss reads {expects}, and no output of the graph records {expects} (outputs: {kinds}); "
                     f"add such an output or use {other}")


def _scorer(loss: Any, spiking: bool) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """The accuracy of a recording: spike counts for spikes (per population when the loss uses a
    population code, as snnTorch's ``accuracy_rate(population_code=True, num_classes=...)``), the
    maximum over time for membranes and other values."""
    if not spiking:
        return lambda recording, targets: float((recording.max(0).values.argmax(-1).cpu() == targets.cpu()).double().mean())
    population, classes = getattr(loss, "population_code", False), getattr(loss, "num_classes", False)
    return lambda recording, targets: accuracy_rate(recording, targets, population, classes)


def _batch_axis(graph, name: str) -> int:
    return 1 if graph.nodes[name].encoding == "sequence" else 0


def _take(graph, x: Any, index: np.ndarray, raw: bool) -> Any:
    def one(name, array):
        tensor = torch.as_tensor(array)
        axis = 0 if raw else _batch_axis(graph, name)
        return tensor.index_select(axis, torch.as_tensor(index, dtype=torch.long))

    if isinstance(x, Mapping):
        return {name: one(name, array) for name, array in x.items()}
    return one(graph.inputs[0], x)


def _batches(graph, data: Any, batch_size: int, shuffle: bool, rng: np.random.Generator | None, raw: bool,
             shards: tuple[int, int] = (0, 1)):
    """Yield ``(x, y)`` batches; numpy/tensor pairs are cut here (along axis 0 for ``raw`` data that an
    encoder turns into the model's input, else along each input's batch axis), anything else is iterated."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, found {batch_size!r}")
    if not (isinstance(data, tuple) and len(data) == 2):
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
            raise InputError(f"data: expected a pair (x, y) of arrays or an iterable of (x, y) batches, found {type(data).__name__}")
        for number, batch in enumerate(data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                hint = ("; a list is read as a sequence of batches: pass arrays as a tuple (x, y)"
                        if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], (tuple, list)) else "")
                raise InputError(f"data: batch {number} is not a pair (x, y), found {type(batch).__name__}{hint}")
            yield batch[0], _labels(batch[1], None, f"batch {number}")
        return
    x, y = data
    count = _sample_count(graph, x, raw)
    if np.ndim(y) == 1 and np.shape(y)[0] != count:
        raise InputError(f"data: {np.shape(y)[0]} labels, but x holds {count} samples: {_sample_layout(graph, x, raw)}")
    y = _labels(y, count, "data")
    count = len(y)
    order = rng.permutation(count) if shuffle and rng is not None else np.arange(count)
    rank, world = shards
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        if len(index) < world:  # every rank needs a sample (DDP's collectives); repeat some, as DistributedSampler pads
            index = np.resize(index, world)
        index = index[rank::world]
        yield _take(graph, x, index, raw), torch.as_tensor(np.asarray(y)[index] if not isinstance(y, torch.Tensor) else y[index])


def _batch_count(data: Any, batch_size: Any) -> int | None:
    """How many batches :func:`_batches` yields for a pair ``(x, labels)`` (None for other data: the
    progress bar then counts without a total)."""
    if isinstance(data, tuple) and len(data) == 2 and np.ndim(data[1]) == 1 and isinstance(batch_size, int) and batch_size > 0:
        return -(-np.shape(data[1])[0] // batch_size)
    return None


def _sample_layout(graph, x: Any, raw: bool) -> str:
    """How ``x`` is read, for errors: its shape and the axis that counts the samples."""
    if raw:
        return f"x of shape {list(np.shape(x))} is cut along axis 0 (encode= turns each cut into the model's input)"
    name = graph.inputs[0]
    shape = graph.nodes[name].shape
    expected = f"[T, N, {', '.join(map(str, shape))}]" if _batch_axis(graph, name) else f"[N, {', '.join(map(str, shape))}]"
    found = list(np.shape(x)) if not isinstance(x, Mapping) else {k: list(np.shape(v)) for k, v in x.items()}
    return f"input {name!r} ({graph.nodes[name].encoding}) takes x {expected}, found {found}"


def _sample_count(graph, x: Any, raw: bool) -> int:
    """The number of samples in ``x`` (along axis 0 for ``raw`` data, else each input's batch axis)."""
    arrays = x if isinstance(x, Mapping) else {graph.inputs[0]: x}
    counts = {}
    for name, array in arrays.items():
        shape, axis = np.shape(array), 0 if raw else _batch_axis(graph, name)
        if len(shape) <= axis:
            raise InputError(f"data: input {name!r} of shape {list(shape)} has no batch axis {axis}")
        counts[name] = int(shape[axis])
    if len(set(counts.values())) > 1:
        raise InputError(f"data: the inputs hold different numbers of samples: {counts}")
    return next(iter(counts.values()))


def _labels(y: Any, count: int | None, where: str) -> Any:
    """Class labels as given (array or tensor), checked: one integer per sample (``count``, if known)."""
    values = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if values.ndim != 1 or (count is not None and len(values) != count):
        expected = f"[{count}]" if count is not None else "[N]"
        raise InputError(f"{where}: labels must be a vector of one class per sample, shape {expected}, found {list(values.shape)}")
    if values.dtype.kind not in "iub" and not (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        raise InputError(f"{where}: labels must be integer class indices, found dtype {values.dtype}"
                         + (f" with the value {float(values[np.mod(values, 1) != 0][0])!r}" if values.dtype.kind == "f" else ""))
    return y


def _steps_of(graph, x: Any) -> int:
    tensors = x if isinstance(x, Mapping) else {graph.inputs[0]: x}
    for name, tensor in tensors.items():
        if graph.nodes[name].encoding == "sequence":
            return int(tensor.shape[0])
    return graph.time.num_steps


def _chunk(graph, x: Any, start: int, stop: int) -> Any:
    def one(name, tensor):
        return tensor[start:stop] if graph.nodes[name].encoding == "sequence" else tensor

    if isinstance(x, Mapping):
        return {name: one(name, tensor) for name, tensor in x.items()}
    return one(graph.inputs[0], x)


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    return {key: _detach(value) for key, value in state.items()}


def _to(x: Any, device: torch.device, batch: int) -> Any:
    """A batch's input(s) as tensors on ``device``, refused if any value is NaN or infinite: training
    would go on with NaN weights behind finite-looking losses (a NaN membrane never spikes). The test
    runs where the data are, before the copy: host data cost a GPU no synchronisation."""
    tensors = {name: torch.as_tensor(t) for name, t in x.items()} if isinstance(x, Mapping) else {"": torch.as_tensor(x)}
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            index = tuple(int(i) for i in torch.nonzero(~torch.isfinite(tensor))[0])
            where = f"input {name!r} " if name else ""
            raise InputError(f"data: batch {batch}: {where}value {tensor[index].item()} at index {index} is not finite (NaN or inf)")
    moved = {name: tensor.to(device) for name, tensor in tensors.items()}
    return moved if isinstance(x, Mapping) else moved[""]


# -- loops ------------------------------------------------------------------------------------------
def _train_batch(model, graph, x, y, loss_fn, optimizer, output, score, tbptt, where: str):
    """One batch: full BPTT, or truncated BPTT with an optimizer step per chunk; returns (loss, accuracy).
    A loss that is not finite raises :class:`TrainingDiverged` before its optimizer step."""
    steps = _steps_of(graph, x)
    chunk = tbptt or steps
    state, losses, pieces = None, [], []
    for start in range(0, steps, chunk):
        stop = min(start + chunk, steps)
        outputs, state = model(_chunk(graph, x, start, stop), stop - start, state=state, return_state=True)
        loss = loss_fn(outputs[output], y)
        value = float(loss.detach())  # the one synchronisation per chunk, which the history needs anyway
        if not _all_finite(model, value, loss.device):
            chunk_note = f" (steps {start}..{stop - 1})" if chunk < steps else ""
            raise TrainingDiverged(f"{where}{chunk_note}: the loss is {value} on this rank (or another's is not "
                                   "finite); training diverged (a lower lr may help). The weights are those before this step")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state = _detach(state)
        losses.append(value)
        pieces.append(outputs[output].detach())
    return float(np.mean(losses)), score(torch.cat(pieces), y)


def _all_finite(model: torch.nn.Module, value: float, device: torch.device) -> bool:
    """Whether the loss is finite, on every rank of a DDP model: all ranks must stop together, or the others
    would wait in backward's all-reduce for the one that stopped."""
    finite = math.isfinite(value)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        flag = torch.tensor([0.0 if finite else 1.0], device=device)
        torch.distributed.all_reduce(flag)
        finite = float(flag) == 0.0
    return finite


def _is_count(value: Any) -> bool:
    """An integer (numpy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_training_setup(model: torch.nn.Module, loss_fn: Any, data: Any, epochs_left: int) -> None:
    """Mistakes that would otherwise surface as torch errors mid-epoch, or as epochs that train on nothing."""
    if not any(p.requires_grad for p in model.parameters()):
        raise InputError("no parameter of the model requires a gradient: nothing to train")
    if getattr(loss_fn, "reduction", "mean") == "none":
        raise InputError("fit needs a loss that reduces to one number per batch: reduction='mean' or 'sum', not 'none'")
    if epochs_left > 1 and isinstance(data, Iterator):  # iter(data) would start a DataLoader's workers
        raise InputError(f"data is a one-shot iterator ({type(data).__name__}), which would be empty after the first of "
                         f"{epochs_left} epochs; pass arrays, a list of batches or a DataLoader")


def fit(
    model: torch.nn.Module,
    data: Any,
    *,
    epochs: int = 1,
    loss: Any = "mse_count_loss",
    optimizer: Any = "adam",
    lr: float | None = 2e-3,
    optimizer_options: Mapping | None = None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    output: str | None = None,
    validation: Any = None,
    tbptt: int | None = None,
    encode: Callable[[Any], Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` epochs; returns the :class:`History` (see the module docstring)."""
    compiled = _torch_model(model)
    graph = compiled.graph
    if not _is_count(epochs) or epochs < 0:
        raise InputError(f"epochs must be a non-negative integer, found {epochs!r}")
    if tbptt is not None and (not _is_count(tbptt) or tbptt < 1):
        raise InputError(f"tbptt must be a positive number of steps, found {tbptt!r}")
    epochs, tbptt = int(epochs), None if tbptt is None else int(tbptt)
    if isinstance(validation, tuple) and len(validation) == 2:  # its labels, now rather than after an epoch
        _labels(validation[1], None, "validation")
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model.parameters(), lr, optimizer_options)
    output = pick_output(graph, loss_fn, output)
    score = _scorer(loss_fn, _spiking(graph, output))
    rng = np.random.default_rng(seed)
    history, first_epoch = History(), 0
    rank, _ = _distributed()
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        first_epoch, history = load_checkpoint(checkpoint, model, opt, rng)
        first_epoch += 1
    _check_training_setup(model, loss_fn, data, epochs - first_epoch)
    if checkpoint is not None and rank == 0:
        check_writable(checkpoint)  # a WriteError now, not after the first epoch's work
    for epoch in range(first_epoch, epochs):
        model.train()
        started = time.perf_counter()
        losses, accuracies, sizes = [], [], []
        batches = tqdm(_batches(graph, data, batch_size, shuffle, rng, encode is not None, _shards(model)),
                       desc=f"epoch {epoch + 1}/{epochs}", total=_batch_count(data, batch_size),
                       disable=not progress or rank != 0, leave=False)
        for number, (x, y) in enumerate(batches):
            if len(y) == 0:  # an empty batch from an iterable: nothing to learn from, and its mean loss is NaN
                continue
            x = _to(encode(x) if encode is not None else x, compiled.device, number)
            y = torch.as_tensor(y).to(compiled.device).long()
            where = f"epoch {epoch + 1}, batch {number}"
            batch_loss, batch_accuracy = _train_batch(model, graph, x, y, loss_fn, opt, output, score, tbptt, where)
            losses.append(batch_loss)
            accuracies.append(batch_accuracy)
            sizes.append(len(y))
            batches.set_postfix(loss=f"{batch_loss:.4f}", acc=f"{batch_accuracy:.3f}")
        (mean_loss, mean_accuracy), _ = _means(model, compiled.device, sizes, losses, accuracies)
        row = {"epoch": epoch, "loss": mean_loss, "accuracy": mean_accuracy,
               "time": time.perf_counter() - started}
        if validation is not None:
            scores = evaluate(model, validation, loss=loss_fn, output=output, batch_size=batch_size, encode=encode)
            row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        history.epochs.append(row)
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, model, opt, epoch, history, rng)
        if on_epoch is not None:  # on every rank: a scheduler stepped here must step on all replicas
            on_epoch(row)
    return history


def evaluate(model: torch.nn.Module, data: Any, *, loss: Any = None, output: str | None = None, batch_size: int = 256,
             encode: Callable[[Any], Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Loss (if a loss is given), accuracy and sample count over ``data``, without gradients (eval mode)."""
    compiled = _torch_model(model)
    graph = compiled.graph
    loss_fn = None if loss is None else make_loss(loss)
    output = pick_output(graph, loss_fn, output)
    score = _scorer(loss_fn, _spiking(graph, output))
    was_training = model.training
    model.eval()
    losses, accuracies, sizes = [], [], []
    batches = _batches(graph, data, batch_size, False, None, encode is not None, _shards(model))
    try:
        with torch.no_grad():
            for number, (x, y) in enumerate(tqdm(batches, desc="evaluate", disable=not progress, leave=False)):
                if len(y) == 0:
                    continue
                x = _to(encode(x) if encode is not None else x, compiled.device, number)
                y = torch.as_tensor(y).to(compiled.device).long()
                recording = model(x)[output]
                if loss_fn is not None:
                    losses.append(float(loss_fn(recording, y)))
                accuracies.append(score(recording, y))
                sizes.append(len(y))
    finally:
        model.train(was_training)
    (mean_loss, mean_accuracy), samples = _means(model, compiled.device, sizes, losses, accuracies)
    return {"loss": mean_loss, "accuracy": mean_accuracy, "samples": samples}


def _spiking(graph, output: str) -> bool:
    record = graph.nodes[output].record
    return record == "spikes" or (record == "value" and graph.nodes[graph.output_source(output)].spiking)


def _means(model: torch.nn.Module, device: torch.device, sizes: list[int],
           *columns: list[float]) -> tuple[list[float | None], int]:
    """Sample-weighted means of per-batch values (batches may differ in size) and the sample count; for a
    DDP model over every rank's batches, so that all ranks report (and schedulers stepped on them see) the
    same figures. An empty column, or no sample, has no mean (None)."""
    totals = [sum(v * s for v, s in zip(column, sizes)) for column in columns] + [sum(sizes)]
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        summed = torch.tensor(totals, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(summed)
        totals = summed.tolist()
    count = int(totals[-1])
    means = [total / count if column and count and not math.isnan(total) else None for column, total in zip(columns, totals)]
    return means, count


__all__ = ["fit", "evaluate", "TrainingDiverged", "make_optimizer", "pick_output", "OPTIMIZERS"]
