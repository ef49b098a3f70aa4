"""``python -m ff_numpy``: the same program as ``ff-numpy``."""

import sys

from ff_numpy.cli import main

sys.exit(main())
