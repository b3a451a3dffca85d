"""`python -m alerts.cli`: the `alerts` console script."""

import sys

from alerts.cli import main

sys.exit(main())
