"""One module per ``snnir`` subcommand (see :mod:`snnir.cli`)."""
