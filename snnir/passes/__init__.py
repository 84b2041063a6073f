"""Graph passes: each takes a graph and returns a new one (or an analysis of it)."""

from .analysis import live_nodes, remove_dead_nodes, sparse_values, spike_carriers, time_invariant_nodes
from .fold import fold_scales
from .materialize import materialize, node_rng

__all__ = ["materialize", "node_rng", "time_invariant_nodes", "spike_carriers", "sparse_values", "live_nodes", "remove_dead_nodes", "fold_scales"]
