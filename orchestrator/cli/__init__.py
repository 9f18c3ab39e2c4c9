"""The ``lowloss`` command line: one module per command group; commands parse arguments and call the library."""

from .commands import main

__all__ = ["main"]
