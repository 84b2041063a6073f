"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..ir.neurons import RESET_MODES, RESET_TIMINGS

#: ``from_nir`` options given on the command line (``--num-steps`` for ``num_steps``...), for .nir files
#: written by other tools.
NIR_OPTIONS = ("dt", "discretization", "num_steps", "reset", "reset_timing")


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """How to read a ``.nir`` file written by another tool (NIR stores no time step; see from_nir)."""
    group = parser.add_argument_group(".nir files written by other tools (they store no time step)")
    group.add_argument("--dt", type=positive_float, help="time step in seconds, e.g. 1e-4 (required for such files)")
    group.add_argument("--discretization", choices=("euler", "exact"),
                       help="leaky equations over one step: euler (beta = 1 - dt/tau, default) or exact (exp(-dt/tau))")
    group.add_argument("--num-steps", type=positive_int, help="the graph's default number of time steps (default 25)")
    group.add_argument("--reset", choices=RESET_MODES, help="reset of the spiking neurons")
    group.add_argument("--reset-timing", choices=RESET_TIMINGS, help="when a spike resets the membrane")


def load_model(args: argparse.Namespace, path: str | os.PathLike):
    """``snnir.load(path)`` with the ``.nir`` import options given on the command line."""
    from ..errors import InputError
    from ..formats import load

    options = {name: getattr(args, name) for name in NIR_OPTIONS if getattr(args, name, None) is not None}
    if options and Path(path).suffix.lower() != ".nir":
        flags = [f"--{name.replace('_', '-')}" for name in NIR_OPTIONS if name in options]
        verb = "is" if len(flags) == 1 else "are"
        raise InputError(f"{path}: {', '.join(flags)} {verb} for .nir files only; other formats record their own time spec")
    return load(path, **options)


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True, limit: int | None = None) -> None:
    """``--data``, ``--split`` and ``--limit`` (default ``limit``: every sample when None)."""
    parser.add_argument(
        "--data", required=required,
        help="'digits' (scikit-learn, offline), a directory of MNIST IDX files, or an .npz of x/y arrays",
    )
    parser.add_argument("--split", choices=("test", "train"), default="test", help="which split to use (default: test)")
    parser.add_argument("--limit", type=positive_int, default=limit,
                        help=f"use at most this many samples (default: {limit if limit else 'all'})")


def load_split(args: argparse.Namespace, graph) -> tuple[np.ndarray, np.ndarray]:
    """The requested split of ``--data``, fitted to the graph's (single) input."""
    from ..data import load_dataset
    from ..errors import InputError

    if len(graph.inputs) != 1:
        raise InputError(f"--data feeds single-input models; this graph has inputs {list(graph.inputs)}")
    dataset = load_dataset(args.data, graph.nodes[graph.inputs[0]].shape)
    x, y = (dataset.x_test, dataset.y_test) if args.split == "test" else (dataset.x_train, dataset.y_train)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    return x, y


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, found {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text}")
    return value
