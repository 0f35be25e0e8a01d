"""bitscli: a persistent, per-user background transfer queue modelled on Windows BITS."""

__version__ = "0.1.0"
