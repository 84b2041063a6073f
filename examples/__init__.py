"""Example models (YAML) and scripts; installed as ``snnir.examples``, so that an installed snnir finds the
quickstart models (``python -m snnir.demo`` trains ``quickstart_cnn.yaml`` by default)."""
