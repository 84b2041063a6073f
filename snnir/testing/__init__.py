"""Helpers for testing snnir and its backends (graph comparison, dyadic data, the conformance table)."""

from .conformance import CASES, Case, assert_matches_reference, declared_gap, state_probes
from .dyadic import dyadic, dyadic_positive, spike_train
from .graphs import assert_graph_equal, graph_differences

__all__ = [
    "CASES",
    "Case",
    "assert_matches_reference",
    "declared_gap",
    "state_probes",
    "assert_graph_equal",
    "graph_differences",
    "dyadic",
    "dyadic_positive",
    "spike_train",
]
