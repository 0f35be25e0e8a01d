"""Entry point for ``python -m bitscli``."""

import sys

from bitscli.cli import main

sys.exit(main())
