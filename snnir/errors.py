"""The snnir error hierarchy (docs/architecture.md, "Errors say where and what").

Every error snnir raises on purpose derives from :class:`SnnirError` and also from the builtin
that best describes it, so ``except ValueError`` keeps working for callers who do not know snnir.
Messages say where (node, edge, field, file and line), what, expected versus found, and a hint.
"""

from __future__ import annotations


class SnnirError(Exception):
    """Root of every error raised by snnir."""


class NodeParameterError(SnnirError, ValueError):
    """A node parameter is missing, malformed, non-finite or out of range."""


class GraphError(SnnirError, ValueError):
    """The graph's structure is invalid (dangling node, cycle without delay, bad time spec...)."""


class ShapeError(GraphError):
    """Shapes disagree on an edge, or a layer cannot produce a valid output shape."""


class FormatError(SnnirError, ValueError):
    """A model file (.snnir, YAML, ONNX, NIR) is malformed, truncated or of an unknown version."""


class WriteError(FormatError, OSError):
    """A file cannot be written (no such directory, a read-only file or directory, a full disk...).

    A FormatError like every other problem with a model file, and an OSError carrying the cause's
    ``errno`` for callers that catch the operating system's errors. The target is left as it was.
    """


class InputError(SnnirError, ValueError):
    """Data handed to a compiled model has the wrong shape, dtype or non-finite values."""


class UnsupportedNodeError(SnnirError, NotImplementedError):
    """A backend has no lowering rule for a node kind or one of its options."""


class BackendNotFoundError(SnnirError, LookupError):
    """No backend is registered under the requested name."""


class NodeNotFoundError(SnnirError, KeyError):
    """``graph.nodes[name]`` for a name the graph does not hold."""

    def __str__(self) -> str:  # KeyError would print the message as a quoted repr
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(SnnirError, ImportError):
    """A backend exists but its optional dependency is not installed."""


class SemanticsWarning(UserWarning):
    """A file written for other tools will read, in those tools, with dynamics that differ from snnir's
    (snnir itself reads it back exactly)."""


def add_note(error: BaseException, note: str) -> None:
    """Attach context to an exception without rewriting its message (PEP 678, with a 3.10 fallback)."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10: keep the note where tracebacks of 3.11+ would show it.
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            error.__notes__ = notes
        notes.append(note)


__all__ = [
    "SnnirError",
    "NodeParameterError",
    "GraphError",
    "ShapeError",
    "FormatError",
    "WriteError",
    "InputError",
    "UnsupportedNodeError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "NodeNotFoundError",
    "SemanticsWarning",
    "add_note",
]
