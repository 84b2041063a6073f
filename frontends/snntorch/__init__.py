"""snnTorch interoperability: ``from_snntorch`` brings snnTorch models in, ``to_snntorch`` hands graphs back.

    from snnir.frontends.snntorch import from_snntorch, to_snntorch, simulate

    graph = from_snntorch(net, input_shape=(1, 28, 28), num_steps=25)   # nn.Sequential or a time-loop Net
    model = snnir.compile(graph, "numba")                                # same spikes as snnTorch
    back = to_snntorch(graph)                                            # an snnTorch module again
    records = simulate(back, images)                                     # {"spikes": [T, B, 10], ...}

See docs/frontend-snntorch.md for what converts, how, and the calling conventions.
"""

from snnir.optional import require

require("torch", "snntorch", "snnir.frontends.snntorch")  # fail early, with the extra to install
require("snntorch", "snntorch", "snnir.frontends.snntorch")

from .codegen import SnnTorchLoop
from .export import to_snntorch
from .importer import check_conversion, from_snntorch
from .modules import Scale, Threshold
from .running import simulate

__all__ = ["from_snntorch", "to_snntorch", "simulate", "check_conversion", "SnnTorchLoop", "Scale", "Threshold"]
