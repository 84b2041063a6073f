"""The NIR paper's reference graphs as conformance cases (needs ``snnir[nir]`` and the files).

The graphs (``shared/nir-paper/`` beside the repository, from the NIR project's paper folder) were
written by Norse, Rockpool, Sinabs and snnTorch. Their weights are not dyadic, so the cases compare
within docs/semantics.md's contract for general float32 graphs rather than bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .conformance import Case
from .dyadic import spike_train


def _csv_input(directory: Path) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        data = np.loadtxt(directory / "lif_exact.csv", delimiter=",")  # columns: input, membrane, output
        return data[:, :1, None].astype(np.float32)

    return make


def paper_graphs(directory: Path) -> dict[str, tuple[dict[str, Any], Callable[[np.random.Generator], np.ndarray]]]:
    """``{file: (from_nir keyword arguments, input maker)}`` for the files of the NIR paper."""
    return {
        "lif_norse.nir": ({"dt": 1e-4}, _csv_input(directory)),
        "lif_rockpool.nir": ({"dt": 1e-4}, _csv_input(directory)),
        "two_lif_neurons.nir": ({"dt": 1e-3}, lambda rng: np.zeros((150, 2, 1), np.float32)),
        # Sinabs counts time in steps (its IF integrates the input once per step: r = 1 with dt = 1).
        "cnn_sinabs.nir": ({"dt": 1.0}, lambda rng: spike_train(rng, (10, 2, 2, 34, 34), 0.3)),
        "braille_noDelay_bias_zero.nir": ({"dt": 1e-4}, lambda rng: spike_train(rng, (60, 3, 12), 0.3)),
        # The "subtract" in the file name is the only record of this file's reset rule.
        "braille_noDelay_noBias_subtract.nir": (
            {"dt": 1e-4, "reset": "subtract", "reset_timing": "next_step"},
            lambda rng: spike_train(rng, (60, 3, 12), 0.3),
        ),
    }


def paper_cases(directory: Path) -> dict[str, Case]:
    """Conformance cases named ``nir_paper:<file>`` (tag ``nir_paper``); empty without the folder."""
    from ..frontends.nir import from_nir

    directory = Path(directory)
    if not directory.is_dir():
        return {}
    cases = {}
    for file, (arguments, make_input) in paper_graphs(directory).items():

        def make(rng, file=file, arguments=arguments, make_input=make_input):
            return from_nir(directory / file, **arguments), make_input(rng)

        cases[f"nir_paper:{file}"] = Case(f"nir_paper:{file}", make, frozenset({"nir_paper"}), exact=False)
    return cases


__all__ = ["paper_graphs", "paper_cases"]
