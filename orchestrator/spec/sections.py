"""The spec's sections as typed, frozen models: what each table of a spec may hold. ``[train]`` and ``[model]`` are
the kinds' own types (``jobs.TrainRecipe``, ``jobs.ModelParams``), handed to them as validated here; ``[data]`` adds
the data root, which is not part of a unit's content."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import ConfigDict, Field

from ...jobs import DataParams, ModelParams, TrainRecipe
from ...jobs.base import StrictScalars


class Section(StrictScalars):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SeedRange(Section):
    start: int = Field(default=0, description="the first seed")
    count: int = Field(ge=1, le=100000, description="how many consecutive seeds")


class StudySection(Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        description="letters, digits, '_', '.', '-' (starting with a letter or digit)",
    )
    seeds: Union[list[int], SeedRange] = Field(description="a list of seeds, or { start = S, count = N }")
    description: str = Field(default="", description="free text about the study, kept with it")


class DataSection(Section):
    dataset: Literal["digits", "mnist5k", "mnist", "cifar10", "cifar100", "imagefolder"] = Field(
        default="digits",
        description="digits and mnist5k are embedded (no data root); the others are read from `root` in "
        "torchvision's layout",
    )
    root: str | None = Field(default=None, description="folder holding the dataset (overridden by --data-root)")
    image_size: int | None = Field(
        default=None, ge=8, le=1024, description="imagefolder only: crop size (default 224, LLPF Table 4)"
    )

    def unit_params(self) -> DataParams:
        """What of the data section is part of a unit's content (the root is not: data may move)."""
        if self.dataset == "imagefolder":
            return DataParams(dataset=self.dataset, image_size=self.image_size or 224)
        return DataParams(dataset=self.dataset)


class RunSection(Section):
    """How the study runs; nothing here changes a unit's id or its results."""

    executor: Literal["local", "slurm", "ray"] = Field(
        default="local",
        description="where units run: worker processes here, Slurm job arrays (through submitit), or Ray tasks",
    )
    jobs: int = Field(default=2, ge=1, le=100000, description="units running at once")
    retries: int = Field(default=2, ge=0, le=100, description="extra attempts of a failing unit")
    checkpoint_seconds: float = Field(default=60.0, ge=0, description="at most this much work lost on a kill")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="where a unit computes: auto takes a GPU when the unit's node has one"
    )
    profile: str | None = Field(default=None, description="Slurm site profile: a name in slurm/profiles/ or a path")
    units_per_job: int | None = Field(
        default=None, ge=1, description="units packed into one Slurm array task / Ray task"
    )
    ray_address: str | None = Field(default=None, description="Ray cluster address (default: a local Ray)")
    max_units: int = Field(default=200_000, ge=1, description="refuse a study that would expand to more units")
    fresh_processes: bool = Field(
        default=False, description="a new Python process per unit (local) / per Ray task instead of warm workers"
    )
    worker_max_units: int = Field(
        default=200, ge=0, le=10**9, description="a warm worker is replaced after this many units (0: never)"
    )
    worker_max_rss_mb: float = Field(
        default=8192.0, ge=0, description="a warm local worker is replaced once its resident MiB pass this (0: never)"
    )
    lock: Literal["auto", "flock", "lease"] = Field(
        default="auto",
        description="how the store's locks are held: flock, or leases for file systems whose flock is node-local "
        "(Lustre localflock, NFS local_lock) or absent; auto takes flock where the store's file system has it",
    )
    lease_seconds: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="a lease's length: a unit whose worker died on another node is taken over after it",
    )


class SpecModel(Section):
    study: StudySection
    data: DataSection = DataSection()
    model: ModelParams = ModelParams()
    train: TrainRecipe = TrainRecipe()
    run: RunSection = RunSection()
    sweep: dict = {}
    stages: list[dict] = Field(min_length=1)
