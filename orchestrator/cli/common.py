"""What every command shares: the console, the spec a command names (a file, a recipe, or the embedded default),
and the ``[run]`` overrides of the command line."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from ... import jobs
from ..spec import RunSection, SpecError, Study, load_spec, suggest

DEFAULT_RECIPE = "digits-default"

# [run] fields a command line may override, and their flags (they never change a unit's id)
RUN_FLAGS = {
    "executor": "--executor",
    "jobs": "--jobs",
    "retries": "--retries",
    "checkpoint_seconds": "--checkpoint-seconds",
    "device": "--device",
    "profile": "--profile",
    "units_per_job": "--units-per-job",
    "ray_address": "--ray-address",
    "fresh_processes": "--fresh-processes",
    "worker_max_units": "--worker-max-units",
    "worker_max_rss_mb": "--worker-max-rss-mb",
    "lock": "--lock",
    "lease_seconds": "--lease-seconds",
}


class UsageError(Exception):
    """Bad command-line words (argparse's own errors)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors: one line, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def recipes() -> dict[str, Path]:
    return jobs.recipes()


def resolve_spec(spec: str | None) -> Study:
    """A spec path, a recipe name (`lowloss recipes`), or None for the embedded default."""
    shipped = recipes()
    if spec is None:
        return load_spec(shipped[DEFAULT_RECIPE])
    path = Path(spec)
    if not path.exists() and spec in shipped:
        return load_spec(shipped[spec])
    if not path.exists() and not spec.endswith(".toml"):
        why = f"no such file and no such recipe{suggest(spec, shipped)}; recipes: {', '.join(shipped)}"
        raise SpecError("SPEC", spec, why)
    if not path.exists() and suggest(path.stem, shipped):
        why = f"file not found; give the path of a .toml spec, or a recipe's name{suggest(path.stem, shipped)}"
        raise SpecError("SPEC", spec, why)
    return load_spec(path)


def with_overrides(study: Study, args: argparse.Namespace) -> Study:
    """Apply [run] overrides from the command line, validated like the spec's (they never change unit ids)."""
    updates = {k: getattr(args, k, None) for k in RUN_FLAGS if getattr(args, k, None) is not None}
    try:
        run = RunSection.model_validate({**study.run.model_dump(), **updates})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        raise SpecError(RUN_FLAGS.get(field, field), err.get("input"), err["msg"].lower()) from None
    return replace(study, run=run)


def data_root(study: Study, args: argparse.Namespace) -> str | None:
    root = getattr(args, "data_root", None) or study.data.root
    return os.path.abspath(os.path.expanduser(root)) if root else None
