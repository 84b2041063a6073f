"""``python -m snnir``: the command-line interface (the same as the ``snnir`` command)."""

import sys

from .cli import main

sys.exit(main())
