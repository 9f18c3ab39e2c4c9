"""Slurm site profiles: how a cluster's partitions, accounts, QOS and GPU constraints map onto unit resource classes.

A profile is a TOML file (``slurm/profiles/NAME.toml`` ships a few; a path to your own works too)::

    [defaults]                 # applies to every unit
    partition = "gpu"
    account = "my-lab"
    qos = ""
    extra = ["--exclude=node13"]   # extra sbatch lines, verbatim
    signal_delay_s = 120       # the job gets SIGUSR2 this long before its time limit: checkpoint and requeue
    max_array_size = 1000      # the cluster's MaxArraySize: larger batches are split into several arrays
    array_parallelism = 64     # the %N throttle of each array
    units_per_job = 1          # units packed into one array task, run in sequence
    setup = ["module load cuda/12.4", "source ~/venvs/lowloss/bin/activate"]

    [coordinator]              # the coordinator's own job (`lowloss submit`); unset fields come from [defaults]
    partition = "cpu"
    time_min = 10080
    mem_gb = 2
    setup = ["source ~/venvs/lowloss/bin/activate"]

    [classes.train]            # per resource class (each unit kind declares one; `lowloss plan` shows them)
    gpus = 1
    constraint = "h100"        # sbatch --constraint
    cpus = 8
    mem_gb = 32
    time_min = 240
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...jobs import Resources


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassSettings(_Section):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus: int | None = Field(default=None, ge=0)
    cpus: int | None = Field(default=None, ge=1)
    mem_gb: float | None = Field(default=None, gt=0)
    time_min: int | None = Field(default=None, ge=1)
    extra: list[str] = []
    units_per_job: int | None = Field(default=None, ge=1)


class Defaults(ClassSettings):
    signal_delay_s: int = Field(default=120, ge=0)
    max_array_size: int = Field(default=1000, ge=1)
    array_parallelism: int = Field(default=64, ge=1)
    units_per_job: int = Field(default=1, ge=1)
    setup: list[str] = []


class CoordinatorSettings(_Section):
    """The coordinator's own job (``lowloss submit``): a small CPU job that submits and follows the units' jobs."""

    partition: str | None = None  # default: [defaults].partition
    account: str | None = None
    qos: str | None = None
    cpus: int = Field(default=1, ge=1)
    mem_gb: float = Field(default=2, gt=0)
    time_min: int = Field(default=7 * 24 * 60, ge=1)
    extra: list[str] = []
    setup: list[str] | None = None  # default: [defaults].setup (environment activation)


class ProfileModel(_Section):
    description: str = ""
    defaults: Defaults = Defaults()
    coordinator: CoordinatorSettings = CoordinatorSettings()
    classes: dict[str, ClassSettings] = {}


@dataclass(frozen=True)
class JobSettings:
    """Everything one array of one resource class is submitted with."""

    resources: Resources
    partition: str | None
    account: str | None
    qos: str | None
    constraint: str | None
    extra: tuple[str, ...]
    units_per_job: int


@dataclass(frozen=True)
class SiteProfile:
    name: str
    model: ProfileModel = field(default_factory=ProfileModel)

    def settings(self, resources: Resources, units_per_job: int | None = None) -> JobSettings:
        d = self.model.defaults
        c = self.model.classes.get(resources.resource_class, ClassSettings())

        def pick(key):
            value = getattr(c, key)
            return value if value is not None else getattr(d, key)

        res = replace(resources, **{k: pick(k) for k in ("gpus", "cpus", "mem_gb", "time_min") if pick(k) is not None})
        return JobSettings(
            res,
            pick("partition"),
            pick("account"),
            pick("qos"),
            pick("constraint"),
            tuple(d.extra) + tuple(c.extra),
            units_per_job or c.units_per_job or d.units_per_job,
        )


def coordinator_sbatch_options(profile: SiteProfile) -> list[str]:
    """The sbatch options of the coordinator's job from the profile's ``[coordinator]`` table (over ``[defaults]``);
    on the command line they override the ``#SBATCH`` lines of slurm/coordinator.sbatch."""
    d, c = profile.model.defaults, profile.model.coordinator
    options = [f"--time={c.time_min}", f"--cpus-per-task={c.cpus}", f"--mem={int(c.mem_gb * 1024)}M"]
    for flag, value in (
        ("partition", c.partition or d.partition),
        ("account", c.account or d.account),
        ("qos", c.qos or d.qos),
    ):
        if value:
            options.append(f"--{flag}={value}")
    return options + list(c.extra)


def coordinator_setup(profile: SiteProfile) -> list[str]:
    """The shell lines the coordinator's job runs before ``lowloss`` (environment activation)."""
    c = profile.model.coordinator
    return list(c.setup if c.setup is not None else profile.model.defaults.setup)


def profile_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("lowloss.slurm"))) / "profiles"


def load_profile(name_or_path: str | None) -> SiteProfile:
    """A shipped profile by name, or a TOML file by path; None gives the plain defaults (the cluster's own)."""
    from ..spec import SpecError

    if not name_or_path:
        return SiteProfile("default")
    path = Path(name_or_path)
    if not path.exists():
        path = profile_dir() / f"{name_or_path}.toml"
    if not path.exists():
        shipped = sorted(p.stem for p in profile_dir().glob("*.toml"))
        raise SpecError("run.profile", name_or_path, f"a profile file path or one of {', '.join(shipped)}")
    try:
        model = ProfileModel.model_validate(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("run.profile", str(path), f"not valid TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"{path.name}: {'.'.join(map(str, err['loc']))}", err.get("input"), err["msg"]) from None
    return SiteProfile(path.stem, model)
