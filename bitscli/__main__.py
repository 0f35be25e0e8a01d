"""Entry point for ``python -m bitscli``."""

from bitscli.cli import run

run()
