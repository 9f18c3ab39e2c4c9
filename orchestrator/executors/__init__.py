"""Executors: where units run. One protocol (``base.Executor``: submit, poll, cancel) for local, Slurm and Ray, each
with its own typed settings (``settings``)."""

from __future__ import annotations

from pathlib import Path

from .base import Ending, Executor, ExecutorError, Finished, Submission
from .settings import ExecutorSettings, LocalSettings, RaySettings, SlurmSettings, settings_of


def make_executor(settings: ExecutorSettings, store_root: Path | str) -> Executor:
    """The executor these settings are of, for the store at ``store_root``."""
    if isinstance(settings, LocalSettings):
        from .local import LocalExecutor, WarmLocalExecutor

        if settings.fresh_processes:
            return LocalExecutor(store_root, settings.jobs)
        return WarmLocalExecutor(store_root, settings.jobs, settings.worker_max_units, settings.worker_max_rss_mb)
    if isinstance(settings, SlurmSettings):
        from .profiles import load_profile
        from .slurm import SlurmExecutor

        return SlurmExecutor(store_root, load_profile(settings.profile), units_per_job=settings.units_per_job)
    from .ray import RayExecutor

    return RayExecutor(
        store_root,
        address=settings.address,
        units_per_job=settings.units_per_job,
        fresh_processes=settings.fresh_processes,
        worker_max_units=settings.worker_max_units,
    )


__all__ = [
    "Ending",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "Finished",
    "LocalSettings",
    "RaySettings",
    "SlurmSettings",
    "Submission",
    "make_executor",
    "settings_of",
]
