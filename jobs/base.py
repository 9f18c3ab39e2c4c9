"""The unit-kind interface and the context protocol a kind's ``run`` uses.

A kind declares its params schema (a pydantic model for its stage table), its resources class, how a stage of it
expands into units (statically, or as a planner that sees finished units), the summary metrics and figures it declares
for reports, and ``run(ctx)``, which drives ``workers/`` functions through the ``UnitContext`` protocol below. The
store implements the protocol; kinds never see stores, executors or specs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict


class StageParams(BaseModel):
    """Base of every kind's stage table: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Resources:
    """What one unit of a kind needs; executors map it to threads, sbatch settings or Ray resources."""

    cpus: int = 1
    gpus: int = 0
    mem_gb: float = 2.0
    time_min: int = 60
    resource_class: str = "cpu-small"


@dataclass(frozen=True)
class UnitDraft:
    """A unit as a stage expansion proposes it; the orchestrator gives it its content-hash id."""

    kind: str
    params: dict
    inputs: dict = field(default_factory=dict)  # role -> unit id
    label: str = ""


@dataclass(frozen=True)
class UpstreamUnit:
    id: str
    params: dict
    label: str


class Upstream(Protocol):
    """What a stage expansion may see: the units of earlier stages and the results of committed ones."""

    def units(self, stage: str) -> list[UpstreamUnit]: ...

    def result(self, unit_id: str) -> dict | None: ...


@dataclass(frozen=True)
class StudyContext:
    """The study-wide spec sections a stage expansion may read (plain JSON-able dicts)."""

    seeds: tuple[int, ...]
    data: dict
    model: dict
    train: dict


@dataclass(frozen=True)
class Metric:
    """A summary metric a kind declares: a key of its result.json, how to show it, and whether lower is better."""

    key: str
    label: str
    fmt: str = ".4f"
    lower_is_better: bool = True


class UnitContext(Protocol):
    """What a running unit may do. Implemented by the orchestrator's runtime over the store."""

    unit_id: str
    params: dict
    attempt: int
    device: Any  # torch.device
    data_root: str | None

    def input_params(self, role: str) -> dict: ...

    def input_result(self, role: str) -> dict: ...

    def input_final_state(self, role: str) -> dict: ...

    def write_segment(self, index: int, tables: dict[str, list[dict]], points: dict | None = None) -> None: ...

    def checkpoint_due(self) -> bool: ...

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None: ...

    def read_checkpoint(self) -> tuple[dict, dict, int] | None: ...

    def committed_segments(self) -> int: ...

    def rows(self, table: str): ...  # pyarrow.Table of this unit's committed rows of ``table``

    def progress(self, done: int, total: int, **info: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def commit(self, result: dict, final: dict | None = None) -> None: ...


class Kind:
    """Base class of unit kinds. Subclasses set the class attributes and implement ``expand`` and ``run``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    Params: ClassVar[type[StageParams]] = StageParams
    resources: ClassVar[Resources] = Resources()
    produces_mode: ClassVar[bool] = False  # units hold a final model (final.safetensors)
    needs_input_stage: ClassVar[bool] = False  # the stage table must name `from`
    metrics: ClassVar[tuple[Metric, ...]] = ()
    tables: ClassVar[tuple[str, ...]] = ()

    def validate(self, params: StageParams, study: StudyContext, stages: dict[str, "StageInfo"]) -> list[tuple[str, Any, str]]:
        """Cross-field checks beyond the schema: (field, bad value, what is allowed) for each problem."""
        return []

    def expand(self, params: StageParams, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        raise NotImplementedError

    def describe(self, params: StageParams, study: StudyContext) -> list[str]:
        """Extra lines for `lowloss plan` (e.g. which tensors a phase moves)."""
        return []

    def check_data(self, study: StudyContext, data_root: str | None) -> str | None:
        """Why the data cannot be read (checked at the edge, before anything runs), or None."""
        return None

    def run(self, ctx: UnitContext) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class StageInfo:
    name: str
    kind: str
    params: StageParams
