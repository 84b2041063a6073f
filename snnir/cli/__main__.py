"""``python -m snnir.cli``."""

import sys

from . import main

sys.exit(main())
