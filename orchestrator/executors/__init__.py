"""Executors: where units run. One small interface (submit, poll, cancel) for local, Slurm and Ray."""

from __future__ import annotations

from .base import Executor, Finished, Submission


def make_executor(
    name: str,
    store_root,
    jobs: int,
    profile: str | None = None,
    units_per_job: int | None = None,
    ray_address: str | None = None,
    fresh_processes: bool = False,
    worker_max_units: int = 0,
    worker_max_rss_mb: float = 0.0,
) -> Executor:
    """``fresh_processes``: a new process per unit (local) or per Ray task, instead of warm workers; the worker limits
    say when a warm worker is replaced (local: units and resident memory; Ray: units)."""
    if name == "local":
        from .local import LocalExecutor, WarmLocalExecutor

        if fresh_processes:
            return LocalExecutor(store_root, jobs)
        return WarmLocalExecutor(store_root, jobs, worker_max_units, worker_max_rss_mb)
    if name == "slurm":
        from .profiles import load_profile
        from .slurm import SlurmExecutor

        return SlurmExecutor(store_root, load_profile(profile), units_per_job=units_per_job)
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(
            store_root,
            address=ray_address,
            units_per_job=units_per_job or 1,
            fresh_processes=fresh_processes,
            worker_max_units=worker_max_units,
        )
    raise ValueError(f"unknown executor {name!r}")


__all__ = ["Executor", "Finished", "Submission", "make_executor"]
