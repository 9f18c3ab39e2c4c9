"""Executors: where units run. One small interface (submit, poll, cancel) for local, Slurm and Ray."""
from __future__ import annotations

from .base import Executor, Finished, Submission


def make_executor(name: str, store_root, jobs: int, **options) -> Executor:
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor(store_root, jobs)
    raise ValueError(f"executor {name!r} is not available in this build")


__all__ = ["Executor", "Finished", "Submission", "make_executor"]
