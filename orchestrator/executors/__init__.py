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
) -> Executor:
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor(store_root, jobs)
    if name == "slurm":
        from .profiles import load_profile
        from .slurm import SlurmExecutor

        return SlurmExecutor(store_root, load_profile(profile), units_per_job=units_per_job)
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(store_root, address=ray_address, units_per_job=units_per_job or 1)
    raise ValueError(f"unknown executor {name!r}")


__all__ = ["Executor", "Finished", "Submission", "make_executor"]
