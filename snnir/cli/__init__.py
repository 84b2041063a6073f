"""The ``snnir`` command line.

Each subcommand lives in its own module under :mod:`snnir.cli.commands` and is discovered at start-up:
a module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Errors that
snnir raises on purpose print as one line (``snnir: error: ...``) with exit status 2; ``--traceback``
shows the full trace instead.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from functools import partial
from types import ModuleType

from .. import __version__
from ..errors import SemanticsWarning, SnnirError
from . import commands

EXIT_ERROR = 2


def discover_commands() -> list[ModuleType]:
    """The subcommand modules, in alphabetical order."""
    found = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snnir",
        description="snnir: declare a spiking neural network once, train it, compile it, deploy it.",
    )
    parser.add_argument("--version", action="version", version=f"snnir {__version__}")
    # The global flags are accepted before or after the subcommand (SUPPRESS keeps one from erasing the other).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks for errors")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only results and errors")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only results and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in discover_commands():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.__doc__, parents=[common])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _show_warning(command: str, message, category, filename, lineno, file=None, line=None) -> None:
    """snnir's own warnings in the style of its errors (no source line of the library)."""
    if issubclass(category, SemanticsWarning):
        print(f"snnir {command}: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        with warnings.catch_warnings():
            warnings.showwarning = partial(_show_warning, args.command)
            return int(args.handler(args) or 0)
    except (SnnirError, OSError) as error:
        if args.traceback:
            raise
        message = str(error).splitlines()[0] if not isinstance(error, SnnirError) else str(error)
        notes = "".join(f"\n  ({note})" for note in getattr(error, "__notes__", ()))  # where it happened
        print(f"snnir {args.command}: error: {message}{notes}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "discover_commands"]
