"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse

import numpy as np


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--data", required=required,
        help="'digits' (scikit-learn, offline), a directory of MNIST IDX files, or an .npz of x/y arrays",
    )
    parser.add_argument("--split", choices=("test", "train"), default="test", help="which split to use (default: test)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many samples")


def load_split(args: argparse.Namespace, graph) -> tuple[np.ndarray, np.ndarray]:
    """The requested split of ``--data``, fitted to the graph's (single) input."""
    from ..data import load_dataset
    from ..errors import InputError

    if len(graph.inputs) != 1:
        raise InputError(f"--data feeds single-input models; this graph has inputs {list(graph.inputs)}")
    dataset = load_dataset(args.data, graph.nodes[graph.inputs[0]].shape)
    x, y = (dataset.x_test, dataset.y_test) if args.split == "test" else (dataset.x_train, dataset.y_train)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit must be positive, found {args.limit}")
        x, y = x[: args.limit], y[: args.limit]
    return x, y


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text}")
    return value
