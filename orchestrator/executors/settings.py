"""Typed settings of each executor. The spec's ``[run]`` table stays one table for users (and the command line's
``--jobs``, ``--profile``, ``--ray-address``, …); ``settings_of`` gives each executor only the fields it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from ..spec import RunSection


@dataclass(frozen=True)
class LocalSettings:
    """Worker subprocesses on this machine."""

    jobs: int = 2  # units at once
    fresh_processes: bool = False  # a new Python process per unit instead of warm workers
    worker_max_units: int = 200  # a warm worker is replaced after this many units (0: never)
    worker_max_rss_mb: float = 8192.0  # ... or once its resident memory passes this (0: never)

    def describe(self) -> str:
        return f"{self.jobs} at once, " + ("a fresh process per unit" if self.fresh_processes else "warm workers")


@dataclass(frozen=True)
class SlurmSettings:
    """Job arrays through submitit, shaped by a site profile."""

    profile: str | None = None  # a name in slurm/profiles/ or a TOML path; None: the cluster's own defaults
    units_per_job: int | None = None  # units packed into one array task (None: the profile's)

    def describe(self) -> str:
        return f"profile {self.profile or 'default'}"


@dataclass(frozen=True)
class RaySettings:
    """Ray tasks on a local Ray or a cluster."""

    address: str | None = None  # None: start a local Ray
    units_per_job: int = 1  # units packed into one Ray task
    fresh_processes: bool = False  # a subprocess per task instead of running in Ray's reused worker
    worker_max_units: int = 200  # Ray replaces a worker process after this many tasks (0: never)

    def describe(self) -> str:
        return self.address or "a local Ray"


ExecutorSettings = Union[LocalSettings, SlurmSettings, RaySettings]


def settings_of(run: "RunSection") -> ExecutorSettings:
    """The settings of the executor ``run.executor`` names, from the ``[run]`` table."""
    if run.executor == "slurm":
        return SlurmSettings(run.profile, run.units_per_job)
    if run.executor == "ray":
        return RaySettings(run.ray_address, run.units_per_job or 1, run.fresh_processes, run.worker_max_units)
    return LocalSettings(run.jobs, run.fresh_processes, run.worker_max_units, run.worker_max_rss_mb)
