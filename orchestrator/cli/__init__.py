"""The ``lowloss`` command line: one module per command group (``running``: run, resume, submit, validate, plan;
``inspecting``: status, show, logs, verify, cancel; ``reporting``: report, results, recipes); commands parse
arguments, call the library and print what it returns. ``main`` is the entry point."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
