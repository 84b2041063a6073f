"""Frontends that bring models in and out of snnir, installed as ``snnir.frontends.<name>`` (snntorch, nir)."""
