"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

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


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True, limit: int | None = None, split: bool = True) -> None:
    """``--data``, ``--split`` (unless ``split`` is False), ``--limit`` (default ``limit``: every sample
    when None) and ``--encode``."""
    parser.add_argument(
        "--data", required=required,
        help="'digits' (scikit-learn, offline; split 80/20 into train/test), a directory of MNIST IDX files, "
             "or an .npz of x/y arrays (split 80/20) or of x_train/y_train/x_test/y_test; "
             "x [N, T, *shape] for a model with a sequence input",
    )
    if split:
        parser.add_argument("--split", choices=("test", "train"), default="test", help="which split to use (default: test)")
    parser.add_argument("--limit", type=positive_int, default=limit,
                        help=f"use at most this many samples (default: {limit if limit else 'all'})")
    parser.add_argument("--encode", choices=("rate", "latency"), default=None,
                        help="for a model with a sequence input: turn images into spike trains of the model's "
                             "num_steps (snnir.encoders). Without it, such a model takes an .npz of x [N, T, *shape]")


def load_split(args: argparse.Namespace, graph) -> tuple[np.ndarray, np.ndarray]:
    """The requested split of ``--data`` (samples first: feed batches through :func:`model_input`)."""
    dataset = load_data(args, graph)
    x, y = (dataset.x_test, dataset.y_test) if args.split == "test" else (dataset.x_train, dataset.y_train)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    return x, y


def load_data(args: argparse.Namespace, graph):
    """``--data`` as a :class:`snnir.data.Dataset` of samples for the graph's single input: images, or
    series ``[T, *shape]`` for a sequence input unless ``--encode`` turns images into spike trains."""
    from ..data import load_dataset
    from ..errors import InputError

    if len(graph.inputs) != 1:
        raise InputError(f"--data feeds single-input models; this graph has inputs {list(graph.inputs)}")
    node = graph.nodes[graph.inputs[0]]
    if args.encode and node.encoding != "sequence":
        raise InputError(f"--encode is for models with a sequence input; input {graph.inputs[0]!r} is direct "
                         f"(the model takes the image itself at every step)")
    return load_dataset(args.data, node.shape, sequence=node.encoding == "sequence" and not args.encode)


def model_input(args: argparse.Namespace, graph) -> Callable[[np.ndarray], np.ndarray]:
    """Turns a batch of samples as datasets hold them (``[B, ...]``) into the model's input: as it is for
    a direct input; ``[T, B, *shape]`` for a sequence input, from series ``[B, T, *shape]`` or, with
    ``--encode``, from images: spike trains of the graph's num_steps (rate: reproducible from seed 0;
    latency: snnTorch's linear, normalised code, pixels below its threshold silent)."""
    from .. import encoders

    if graph.nodes[graph.inputs[0]].encoding != "sequence":
        return lambda batch: batch
    steps = graph.time.num_steps
    if args.encode == "rate":
        rng = np.random.default_rng(0)
        return lambda batch: encoders.rate(batch, steps, rng=rng)
    if args.encode == "latency":
        return lambda batch: encoders.latency(batch, steps, normalize=True, linear=True, clip=True)
    return lambda batch: np.ascontiguousarray(np.moveaxis(np.asarray(batch), 1, 0))


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
