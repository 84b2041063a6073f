"""Field specifications: how each parameter of a node is checked, normalised and serialised.

Every dataclass field of a node carries one :class:`FieldSpec` in its metadata (see :func:`spec`).
The node base class normalises each value through its spec on construction; the file formats
encode and decode through the same specs; the summary table prints through them. Adding a node
kind therefore never touches the serialiser or the YAML loader.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import NodeParameterError
from .init import DEFAULT, Initializer
from .surrogate import Surrogate

#: Encodes an array for a file (an inline list for YAML, a reference to an .npy member for .snnir).
ArrayEncoder = Callable[[np.ndarray], Any]
#: Decodes what an :data:`ArrayEncoder` wrote; the second argument names the field for errors.
ArrayDecoder = Callable[[Any, str], np.ndarray]


class FieldSpec(ABC):
    """Checks and converts one node field; ``where`` in messages reads like ``LIF.beta``."""

    @abstractmethod
    def normalize(self, value: Any, where: str) -> Any:
        """Return the canonical value or raise :class:`NodeParameterError`."""

    def encode(self, value: Any, encode_array: ArrayEncoder) -> Any:
        """JSON/YAML-ready form of a normalised value."""
        return value

    def decode(self, raw: Any, decode_array: ArrayDecoder, where: str) -> Any:
        """Inverse of :meth:`encode`; the result is normalised again by the node constructor."""
        return raw

    def describe(self, value: Any) -> str:
        """Short text for the summary table."""
        return str(value)

    def equal(self, a: Any, b: Any) -> bool:
        """Structural equality of two normalised values."""
        return bool(a == b)


def spec(field_spec: FieldSpec, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field carrying ``field_spec``; ``default`` may be a value or omitted (required)."""
    return dataclasses.field(default=default, metadata={"spec": field_spec}, **kwargs)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Tensor(FieldSpec):
    """A float32 array parameter (0-d for a scalar), frozen read-only.

    Args:
        optional: ``None`` means "absent" (e.g. a layer without bias).
        missing: what ``None`` stands for when not optional (a lazy weight: the default initialiser).
        boolean: ``True`` means "draw with the default initialiser", ``False`` means absent.
        lazy: an :class:`Initializer` is accepted and drawn at materialisation.
        per_neuron: the array must broadcast to the neuron (or element) shape of the node.
    """

    def __init__(
        self,
        *,
        optional: bool = False,
        lazy: bool = False,
        per_neuron: bool = False,
        missing: Initializer | None = None,
        boolean: bool = False,
    ):
        self.optional = optional
        self.lazy = lazy
        self.per_neuron = per_neuron
        self.missing = missing
        self.boolean = boolean

    def normalize(self, value: Any, where: str) -> Any:
        if self.boolean and isinstance(value, bool):  # bias=True: draw one; bias=False: none
            value = DEFAULT if value else None
        if value is None:
            if self.missing is not None:
                return self.missing
            if self.optional:
                return None
            raise NodeParameterError(f"{where}: a value is required, found None")
        if isinstance(value, Initializer):
            if self.lazy:
                return value
            raise NodeParameterError(f"{where}: initialisers are not allowed here; give a number or an array")
        return to_float32_array(value, where)

    def encode(self, value: Any, encode_array: ArrayEncoder) -> Any:
        if value is None:
            return None
        if isinstance(value, Initializer):
            return value.to_dict()
        if value.ndim == 0:  # the shortest decimal that reads back as the same float32 (0.9, not 0.8999999761581421)
            return float(value.astype(str))
        return encode_array(value)

    def decode(self, raw: Any, decode_array: ArrayDecoder, where: str) -> Any:
        if raw is None:
            return None
        if isinstance(raw, dict) and "init" in raw:
            return Initializer.from_dict(raw, where)
        if isinstance(raw, bool):
            if self.boolean:  # bias: true / false, as in Python
                return raw
            raise NodeParameterError(f"{where}: expected a number or an array, found {raw!r}")
        if isinstance(raw, numbers.Real):
            return raw
        return decode_array(raw, where)

    def describe(self, value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, Initializer):
            return f"<{value.name}>"
        if value.ndim == 0:
            return f"{float(value):.6g}"
        flat = value.reshape(-1)
        if flat.size and np.all(flat == flat[0]):
            return f"full({list(value.shape)}, {float(flat[0]):.6g})"
        return f"{list(value.shape)}"

    def equal(self, a: Any, b: Any) -> bool:
        arrays = isinstance(a, np.ndarray), isinstance(b, np.ndarray)
        if all(arrays):
            return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
        return not any(arrays) and a == b  # None or initialisers


def _check_numbers(items: list | tuple, index: tuple, where: str) -> None:
    """Refuse anything but real numbers in nested lists: numpy would read ``[1, "x"]`` as text and
    ``[1, true]`` as ``[1, 1]``."""
    for position, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            _check_numbers(item, index + (position,), where)
        elif isinstance(item, np.ndarray):  # rows given as arrays: numpy reads them, the dtype check follows
            continue
        elif isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise NodeParameterError(f"{where}: value {item!r} at index {index + (position,)} is not a number")


def to_float32_array(value: Any, where: str) -> np.ndarray:
    """Convert numbers, nested lists or arrays to a read-only float32 array, rejecting non-finite values."""
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise NodeParameterError(f"{where}: expected a number or an array, found {value!r}")
    try:
        raw = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise NodeParameterError(f"{where}: cannot read as an array: its nested lists differ in length") from None
    except TypeError as error:
        raise NodeParameterError(f"{where}: cannot read as an array ({error})") from None
    if isinstance(value, (list, tuple)):
        _check_numbers(value, (), where)
    if raw.dtype.kind not in "biuf":
        raise NodeParameterError(f"{where}: expected real numbers, found dtype {raw.dtype}")
    if raw.dtype.kind == "f" and raw.size:
        bad = ~np.isfinite(raw)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise NodeParameterError(f"{where}: value {raw[index]} at index {index} is not finite (NaN or inf)")
        if raw.dtype.itemsize > 4:
            with np.errstate(over="ignore"):  # what rounds to float32's largest value (its shortest decimal does) fits
                fits = np.isfinite(raw.astype(np.float32)).all()
            if not fits:
                raise NodeParameterError(f"{where}: values exceed the float32 range")
    array = np.array(raw, dtype=np.float32)  # always a private copy
    array.setflags(write=False)
    return array


class Integer(FieldSpec):
    """An int with a lower bound; ``optional`` allows None (a size still to be inferred)."""

    def __init__(self, *, minimum: int | None = 0, optional: bool = False):
        self.minimum = minimum
        self.optional = optional

    def normalize(self, value: Any, where: str) -> Any:
        if value is None and self.optional:
            return None
        if not _is_integer(value):
            raise NodeParameterError(f"{where}: expected an integer, found {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise NodeParameterError(f"{where}: must be >= {self.minimum}, found {value}")
        return int(value)


class Ints(FieldSpec):
    """A tuple of ``n`` ints (kernel size, stride, padding...); a single int is repeated ``n`` times.

    With ``n=None`` any length is accepted and a single int becomes a 1-tuple, which the node
    broadcasts to its number of spatial dimensions (see ``_ConvNd``).
    """

    def __init__(self, n: int | None = None, *, minimum: int = 0, optional: bool = False):
        self.n = n
        self.minimum = minimum
        self.optional = optional

    def normalize(self, value: Any, where: str) -> Any:
        if value is None and self.optional:
            return None
        if _is_integer(value):
            value = (value,) * (self.n or 1)
        expected = f"{self.n} ints" if self.n else "a list of ints"
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise NodeParameterError(f"{where}: expected an int or {expected}, found {value!r}")
        if self.n is not None and len(value) != self.n:
            raise NodeParameterError(f"{where}: expected an int or {expected}, found {value!r}")
        if not all(_is_integer(v) for v in value):
            raise NodeParameterError(f"{where}: expected integers, found {value!r}")
        if any(v < self.minimum for v in value):
            raise NodeParameterError(f"{where}: every entry must be >= {self.minimum}, found {tuple(value)}")
        return tuple(int(v) for v in value)

    def encode(self, value: Any, encode_array: ArrayEncoder) -> Any:
        return None if value is None else list(value)

    def describe(self, value: Any) -> str:
        if value is None:
            return "-"
        return str(value[0]) if len(set(value)) == 1 else "x".join(map(str, value))


class Shape(FieldSpec):
    """A tensor shape without batch and time: a tuple of positive ints (may be empty for a scalar)."""

    def normalize(self, value: Any, where: str) -> Any:
        if _is_integer(value):
            value = (value,)
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise NodeParameterError(f"{where}: expected a shape (list of positive ints), found {value!r}")
        if not all(_is_integer(v) and v >= 1 for v in value):
            raise NodeParameterError(f"{where}: every dimension must be a positive int, found {list(value)}")
        return tuple(int(v) for v in value)

    def encode(self, value: Any, encode_array: ArrayEncoder) -> Any:
        return list(value)

    def describe(self, value: Any) -> str:
        return str(tuple(value))


class Real(FieldSpec):
    """A finite float within ``[minimum, maximum)`` (either bound optional)."""

    def __init__(self, *, minimum: float | None = None, maximum: float | None = None, exclusive_max: bool = False):
        self.minimum = minimum
        self.maximum = maximum
        self.exclusive_max = exclusive_max

    def normalize(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise NodeParameterError(f"{where}: expected a number, found {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise NodeParameterError(f"{where}: must be finite, found {value}")
        if self.minimum is not None and value < self.minimum:
            raise NodeParameterError(f"{where}: must be >= {self.minimum}, found {value}")
        if self.maximum is not None:
            too_big = value >= self.maximum if self.exclusive_max else value > self.maximum
            if too_big:
                relation = "<" if self.exclusive_max else "<="
                raise NodeParameterError(f"{where}: must be {relation} {self.maximum}, found {value}")
        return value

    def describe(self, value: Any) -> str:
        return f"{value:g}"


class Flag(FieldSpec):
    """A boolean."""

    def normalize(self, value: Any, where: str) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise NodeParameterError(f"{where}: expected true or false, found {value!r}")


class Choice(FieldSpec):
    """One string out of a fixed set."""

    def __init__(self, *options: str):
        self.options = options

    def normalize(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise NodeParameterError(f"{where}: expected one of {list(self.options)}, found {value!r}")
        return value


class SurrogateField(FieldSpec):
    """A :class:`Surrogate`, given as an instance, a name or a mapping."""

    def normalize(self, value: Any, where: str) -> Any:
        try:
            return Surrogate.of(value)
        except NodeParameterError as error:
            raise NodeParameterError(f"{where}: {error}") from None

    def encode(self, value: Any, encode_array: ArrayEncoder) -> Any:
        return value.to_dict()


__all__ = [
    "FieldSpec",
    "Tensor",
    "Integer",
    "Ints",
    "Shape",
    "Real",
    "Flag",
    "Choice",
    "SurrogateField",
    "spec",
    "to_float32_array",
]
