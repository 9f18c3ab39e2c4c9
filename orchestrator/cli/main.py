"""The ``lowloss`` command line: the parser of every command group, and the one place bad input becomes one line.

Bad input (spec, arguments, store, data root) gets one line naming the field, the bad value and what is allowed,
exit code 2, no traceback, and nothing in the store touched. A study whose units failed exits 1; a stopped one 130.
"""

from __future__ import annotations

import argparse
import errno
import sys

from ..executors import ExecutorError
from ..spec import SpecError
from ..store import StoreError, StoreFullError, StoreReadOnlyError, SymlinkRefused
from . import inspecting, reporting, running
from .common import Parser, UsageError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lowloss")
    except PackageNotFoundError:
        return "unknown (not installed; run `pip install -e .`)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lowloss", description="Explore the low-loss space of neural networks at cluster scale.")
    p.add_argument("--version", action="version", version=f"lowloss {_version()}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    running.add_parsers(sub)
    inspecting.add_parsers(sub)
    reporting.add_parsers(sub)
    return p


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("jobs", "retries"):
        value = getattr(args, name, None)
        if value is not None and value < (1 if name == "jobs" else 0):
            raise SpecError(f"--{name}", value, "must be ≥ 1" if name == "jobs" else "must be ≥ 0")


def main(argv: list[str] | None = None) -> int:
    from ...jobs import KindError

    argv = sys.argv[1:] if argv is None else argv
    store = "STORE"
    try:
        args = build_parser().parse_args(argv)
        store = getattr(args, "store", None) or store
        _check_counts(args)
        return int(args.func(args))
    except (SpecError, StoreError, UsageError, KindError) as exc:
        print(f"lowloss: error: {exc}", file=sys.stderr)
        return 2
    except (StoreReadOnlyError, SymlinkRefused) as exc:
        print(f"lowloss: error: {exc.strerror}", file=sys.stderr)
        return 2
    except StoreFullError as exc:
        print(
            f"lowloss: error: {exc.strerror or exc}; committed work is intact — free space or raise the quota, "
            f"then `lowloss resume {store}`",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or exc.filename is None:
            raise
        print(
            f"lowloss: error: cannot write {exc.filename}: {exc.strerror} (a read-only store or data directory?)",
            file=sys.stderr,
        )
        return 2
    except ExecutorError as exc:
        print(f"lowloss: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lowloss: interrupted; committed work is kept — `lowloss resume {store}` continues", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
