"""snnTorch 1.0's losses and accuracy (``snntorch.functional``), on ``[T, B, C]`` recordings.

Same names, arguments and formulas as snnTorch, with ``C`` output neurons, ``T`` steps and class
targets ``y`` of shape ``[B]``; ``nll`` is ``NLLLoss`` on ``log_softmax`` over classes:

=========================  ============================================================================
mse_count_loss(r1, r0)     MSE(Σ_t S[t], y_count) / T with y_count = int(T·r1) on the target class,
                           int(T·r0) elsewhere (snnTorch's ``targets_convert``)
ce_count_loss              nll(log_softmax(Σ_t S[t]), y)
ce_rate_loss               Σ_t nll(log_softmax(S[t]), y) / T
ce_max_membrane_loss       nll(log_softmax(max_t U[t]), y)
mse_membrane_loss(on, off) Σ_t MSE(U[t], y_on_off) / T
accuracy_rate              mean(argmax_c Σ_t S[t] == y)
=========================  ============================================================================

``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``; ``weight`` gives one weight per class: NLL losses
pass it to ``NLLLoss``, MSE losses multiply each sample's loss by the weight of its target class.
Differences from snnTorch, all where snnTorch errs: losses return 0-d tensors (snnTorch returns
shape ``[1]`` for ``ce_rate_loss``/``mse_membrane_loss``); MSE class weights broadcast per sample (snnTorch
broadcasts ``weight[targets]`` against the class axis, which fails unless ``B == C``) and ``"sum"`` with
weights sums (snnTorch leaves the loss unreduced); population codes are supported by the count losses
and the accuracy only. ``time_var_targets`` takes targets ``[T, B]``. Each loss says what it ``expects``
("spikes" or "membrane"), which :func:`snnir.backends.pytorch.fit` uses to choose the output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from snnir.errors import InputError

REDUCTIONS = ("mean", "sum", "none")


def _check(recording: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if not isinstance(recording, torch.Tensor) or recording.dim() != 3:
        shape = list(recording.shape) if isinstance(recording, torch.Tensor) else type(recording).__name__
        raise InputError(f"{name}: expected a [T, B, classes] tensor, found {shape}")
    if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point:
        raise InputError(f"{name}: targets must be an integer tensor of class indices, found {getattr(targets, 'dtype', type(targets))}")
    if targets.shape[-1:] != recording.shape[1:2]:
        raise InputError(f"{name}: targets {list(targets.shape)} do not match the batch of the recording {list(recording.shape)}")
    classes = recording.shape[-1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= classes):
        raise InputError(f"{name}: target classes must lie in [0, {classes - 1}], found [{int(targets.min())}, {int(targets.max())}]")


def one_hot_targets(targets: torch.Tensor, classes: int, on: float, off: float, dtype: torch.dtype) -> torch.Tensor:
    """snnTorch's ``targets_convert`` (rate code, static): ``on`` at the target class, ``off`` elsewhere.

    As in snnTorch, with ``on > off`` the result is ``clamp(one_hot·on, min=off)``, so a negative ``off``
    leaves zeros off target.
    """
    one_hot = F.one_hot(targets.long(), classes).to(dtype)
    if on > off:
        return torch.clamp(one_hot * on, min=off)
    return one_hot * on + (one_hot == 0).to(dtype) * off


def population_counts(spikes: torch.Tensor, num_classes: int, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Spike counts ``[B, num_classes]`` of consecutive groups of ``C / num_classes`` output neurons
    (``targets``, if given, must name classes below ``num_classes``)."""
    steps, batch, outputs = spikes.shape
    if not num_classes or outputs % num_classes:
        raise InputError(f"a population code needs num_classes dividing the {outputs} outputs, found {num_classes!r}")
    if targets is not None and targets.numel() and int(targets.max()) >= num_classes:
        raise InputError(f"target class {int(targets.max())} does not exist in a population code of num_classes={num_classes}")
    return spikes.reshape(steps, batch, num_classes, outputs // num_classes).sum(-1).sum(0)


class LossFunction:
    """Base: ``loss(recording [T, B, C], targets [B]) -> tensor``; ``expects`` names the recording."""

    expects = "spikes"

    def __init__(self, reduction: str = "mean", weight: torch.Tensor | None = None):
        if reduction not in REDUCTIONS:
            raise InputError(f"{type(self).__name__}: reduction must be one of {list(REDUCTIONS)}, found {reduction!r}")
        self.reduction = reduction
        self.weight = None if weight is None else torch.as_tensor(weight)
        self.__name__ = type(self).__name__

    def _nll(self, log_p: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NLLLoss as snnTorch applies it: weighted 'mean' becomes the plain mean of weighted losses."""
        weight = None if self.weight is None else self.weight.to(log_p)
        if weight is None or self.reduction != "mean":
            return F.nll_loss(log_p, targets, weight=weight, reduction=self.reduction)
        return F.nll_loss(log_p, targets, weight=weight, reduction="none").mean()

    def _weighted_mse(self, loss: torch.Tensor, targets: torch.Tensor, steps: int) -> torch.Tensor:
        """Per-element MSE ``[B, C]`` times the weight of each sample's target class, over ``T``, reduced."""
        return _reduce(loss * self.weight.to(loss)[targets].unsqueeze(-1) / steps, self.reduction)

    def __call__(self, recording: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check(recording, targets, self.__name__)
        return self.compute(recording, targets.to(recording.device).long())

    def compute(self, recording: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.__name__}(reduction={self.reduction!r})"


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


class mse_count_loss(LossFunction):  # noqa: N801 - snnTorch's name
    """Spike counts against ``int(T·correct_rate)`` (target class) and ``int(T·incorrect_rate)``, over ``T``."""

    def __init__(self, correct_rate: float = 1, incorrect_rate: float = 0, population_code: bool = False,
                 num_classes: int | bool = False, reduction: str = "mean", weight=None):
        super().__init__(reduction, weight)
        self.correct_rate, self.incorrect_rate = correct_rate, incorrect_rate
        self.population_code, self.num_classes = population_code, num_classes

    def compute(self, spikes, targets):
        steps, _, outputs = spikes.shape
        if self.population_code:
            per_class = outputs / self.num_classes if self.num_classes else 0
            on, off = int(steps * self.correct_rate * per_class), int(steps * self.incorrect_rate * per_class)
            counts, classes = population_counts(spikes, self.num_classes, targets), self.num_classes
        else:
            on, off = int(steps * self.correct_rate), int(steps * self.incorrect_rate)
            counts, classes = spikes.sum(0), outputs
        target = one_hot_targets(targets, classes, on, off, spikes.dtype)
        if self.weight is None:
            return F.mse_loss(counts, target, reduction=self.reduction) / steps
        return self._weighted_mse(F.mse_loss(counts, target, reduction="none"), targets, steps)


class ce_count_loss(LossFunction):  # noqa: N801
    """Cross entropy of the spike counts (``log_softmax`` over classes)."""

    def __init__(self, population_code: bool = False, num_classes: int | bool = False, reduction: str = "mean", weight=None):
        super().__init__(reduction, weight)
        self.population_code, self.num_classes = population_code, num_classes

    def compute(self, spikes, targets):
        counts = population_counts(spikes, self.num_classes, targets) if self.population_code else spikes.sum(0)
        return self._nll(F.log_softmax(counts, dim=-1), targets)


class ce_rate_loss(LossFunction):  # noqa: N801
    """Cross entropy of the spikes at every step, averaged over steps."""

    def compute(self, spikes, targets):
        log_p = F.log_softmax(spikes, dim=-1)
        loss = None
        for t in range(spikes.shape[0]):  # snnTorch's accumulation order, from zero
            term = self._nll(log_p[t], targets)
            loss = term + 0 if loss is None else loss + term
        return loss / spikes.shape[0]


class ce_max_membrane_loss(LossFunction):  # noqa: N801
    """Cross entropy of each output's maximum membrane over time."""

    expects = "membrane"

    def compute(self, membranes, targets):
        return self._nll(F.log_softmax(membranes.max(0).values, dim=-1), targets)


class mse_membrane_loss(LossFunction):  # noqa: N801
    """MSE of the membrane against ``on_target`` (target class) / ``off_target``, summed over steps, over ``T``."""

    expects = "membrane"

    def __init__(self, time_var_targets: bool = False, on_target: float = 1, off_target: float = 0,
                 reduction: str = "mean", weight=None):
        super().__init__(reduction, weight)
        self.time_var_targets, self.on_target, self.off_target = time_var_targets, on_target, off_target

    def __call__(self, recording, targets):
        if self.time_var_targets:
            if not isinstance(targets, torch.Tensor) or targets.shape[:1] != recording.shape[:1]:
                raise InputError(f"mse_membrane_loss(time_var_targets=True): targets must be [T, B], found {list(getattr(targets, 'shape', []))}")
            for t in range(targets.shape[0]):
                _check(recording, targets[t], self.__name__)
            return self.compute(recording, targets.to(recording.device).long())
        return super().__call__(recording, targets)

    def compute(self, membranes, targets):
        target = one_hot_targets(targets, membranes.shape[-1], self.on_target, self.off_target, membranes.dtype)
        reduction = "none" if self.weight is not None else self.reduction
        loss = None
        for t in range(membranes.shape[0]):
            term = F.mse_loss(membranes[t], target[t] if self.time_var_targets else target, reduction=reduction)
            loss = term + 0 if loss is None else loss + term
        if self.weight is not None:
            return self._weighted_mse(loss, targets[-1] if self.time_var_targets else targets, membranes.shape[0])
        return loss / membranes.shape[0]


def accuracy_rate(spikes: torch.Tensor, targets: torch.Tensor, population_code: bool = False, num_classes: int | bool = False) -> float:
    """Fraction of samples whose most active output (first on ties) is the target class."""
    _check(spikes, targets, "accuracy_rate")
    counts = population_counts(spikes, num_classes, targets) if population_code else spikes.sum(0)
    if counts.shape[0] == 0:
        return float("nan")
    return float((counts.max(1).indices.cpu() == targets.cpu().long()).double().mean())


LOSSES: dict[str, type[LossFunction]] = {
    cls.__name__: cls for cls in (mse_count_loss, ce_count_loss, ce_rate_loss, ce_max_membrane_loss, mse_membrane_loss)
}


def make_loss(spec: Any) -> Any:
    """A loss from an object (used as is), a name (``"mse_count_loss"``) or ``{"name": ..., **arguments}``."""
    if callable(spec) and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and spec.get("name") in LOSSES:
        arguments = {k: v for k, v in spec.items() if k != "name"}
        try:
            return LOSSES[spec["name"]](**arguments)
        except TypeError as error:
            raise InputError(f"loss {spec['name']!r}: {error}") from None
    raise InputError(f"unknown loss {spec!r}; give a callable or one of {sorted(LOSSES)}")


__all__ = [
    "mse_count_loss",
    "ce_count_loss",
    "ce_rate_loss",
    "ce_max_membrane_loss",
    "mse_membrane_loss",
    "accuracy_rate",
    "LOSSES",
    "make_loss",
    "one_hot_targets",
    "population_counts",
    "LossFunction",
]
