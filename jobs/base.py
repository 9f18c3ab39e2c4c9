"""The unit-kind interface and the context protocol a kind's ``run`` uses.

A kind declares its params schema (a pydantic model for its stage table), its resources class, how a stage of it
expands into units (statically, or as a planner that sees finished units), the summary metrics and figures it declares
for reports, and ``run(ctx)``, which drives ``workers/`` functions through the ``UnitContext`` protocol below. The
store implements the protocol; kinds never see stores, executors or specs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import types
import typing

from pydantic import BaseModel, ConfigDict, model_validator


_FITS, _MISFIT, _OTHER_SHAPE = "fits", "misfit", "other shape"


def _scalar_problem(annotation, value) -> tuple[str, str]:
    """(verdict, message) of a raw TOML value against a field annotation: ``misfit`` when a number is given as a string
    or true/false, or a flag as anything but true/false (pydantic's lax mode would convert them silently)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return (_FITS, "") if isinstance(value, bool) else (_MISFIT, f"{value!r}: true or false is needed")
    if annotation in (int, float):
        needed = "an integer" if annotation is int else "a number"
        if isinstance(value, bool):
            return _MISFIT, f"{str(value).lower()}: {needed} is needed, not true/false"
        if isinstance(value, str):
            return _MISFIT, f"{value!r}: {needed} is needed, not a string"
        return (_FITS, "") if isinstance(value, (int, float)) else (_OTHER_SHAPE, "")
    if origin is typing.Annotated:
        return _scalar_problem(args[0], value)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_scalar_problem(a, value) for a in args if a is not type(None)]
        if value is None or any(v == _FITS for v, _ in verdicts):
            return _FITS, ""
        return next(((v, m) for v, m in verdicts if v == _MISFIT), (_OTHER_SHAPE, ""))
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            return _OTHER_SHAPE, ""
        items = args if origin is tuple and args and args[-1] is not Ellipsis else (args[:1] * len(value))
        for item_type, item in zip(items, value):
            verdict, message = _scalar_problem(item_type, item)
            if verdict != _FITS:
                return verdict, message
        return _FITS, ""
    if origin is dict:
        if not isinstance(value, dict):
            return _OTHER_SHAPE, ""
        for item in value.values():
            verdict, message = _scalar_problem(args[1] if len(args) == 2 else typing.Any, item)
            if verdict != _FITS:
                return verdict, message
        return _FITS, ""
    if origin is typing.Literal:
        return (_FITS, "") if value in args else (_OTHER_SHAPE, "")
    if annotation is str:
        return (_FITS, "") if isinstance(value, str) else (_OTHER_SHAPE, "")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return _OTHER_SHAPE, ""
        if issubclass(annotation, StrictScalars):
            return _FITS, ""  # it checks itself, and its errors then name the nested field
        problem = _model_problem(annotation, value)
        return (_MISFIT, problem) if problem else (_FITS, "")
    return _FITS, ""  # Any and the rest: pydantic checks them itself


def _model_problem(model: type[BaseModel], data: dict) -> str | None:
    """The first field of ``data`` whose raw value pydantic's lax mode would convert silently, or None."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in data:
            verdict, message = _scalar_problem(info.annotation, data[key])
            if verdict == _MISFIT:
                if isinstance(data[key], dict):
                    return f"{key}.{message}"
                if isinstance(data[key], (list, tuple)):
                    return f"{key} = {data[key]!r}: item {message}"
                return f"{key} = {message}"
    return None


class StrictScalars(BaseModel):
    """Refuses the silent conversions TOML users trip over, at any depth (lists, tables, unions): `true` or a string
    for a number (`segment_steps = "100"`, `seeds = [0, "1"]`, `seeds = [false]`), a number or string for a flag."""

    @model_validator(mode="before")
    @classmethod
    def _no_silent_conversion(cls, data):
        if isinstance(data, dict):
            problem = _model_problem(cls, data)
            if problem:
                raise ValueError(problem)
        return data


class StageParams(StrictScalars):
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


@dataclass(frozen=True)
class Verdict:
    """A yes/no outcome a kind declares: a boolean key of its result.json, reported as a success rate k/n."""

    key: str
    label: str


@dataclass(frozen=True)
class Figure:
    """A figure a kind declares for reports; ``lowloss report --out`` draws it once per stage of the kind.

    ``ys`` (and ``y2s``, drawn on a right-hand axis) name columns of ``table``, or glob patterns such as ``"dist.*"``
    that give one line per matching column, labelled by the part the ``*`` matched (one line per layer).
    Styles, drawn by the report core for any kind:

    - ``band``: per column, the mean over the stage's units aligned on ``x`` (a unit's null cells are skipped) and a
      ±1 std band, both smoothed by a trailing moving average of ``smooth`` rows (LLPF Figs. 2–3);
    - ``line``: one line per unit (labelled with the unit's label) and their mean (interpolation curves);
    - ``pca``: each unit's stored points (``points/``), per tensor matching ``ys`` (default: all), projected on the
      first two principal components of all points of the stage, one panel per tensor, coloured by step (LLPF Fig. 4);
      ``table`` and ``x`` are unused. Points are keyed ``point_key(tensor, step)`` or ``it<step>.<tensor>``.
    - ``custom``: ``draw(ax, data)`` is called with ``data`` = {unit label: pyarrow.Table of ``table``}.

    ``chain`` names an input role through which a unit continues the path of another unit of the same stage (the
    phases of an LLPF M2M path: input ``start``): such units are drawn as one path, each unit's rows (and points)
    after its predecessor's, x shifted to continue where the predecessor ended; a path is labelled by its last unit.
    """

    name: str  # file stem: <stage>-<name>.png / .pdf
    title: str
    table: str = ""
    x: str = "step"
    ys: tuple[str, ...] = ()
    style: str = "band"  # band | line | pca | custom
    xlabel: str = ""
    ylabel: str = ""
    logy: bool = False
    logx: bool = False
    smooth: int = 1  # moving-average window in rows (band style)
    labels: tuple[str, ...] = ()  # legend labels of the ys entries (default: the column name)
    ylim: tuple[float | None, float | None] | None = None
    y2s: tuple[str, ...] = ()  # columns on a right-hand y axis (e.g. accuracy next to loss)
    y2label: str = ""
    y2labels: tuple[str, ...] = ()
    logy2: bool = False
    y2lim: tuple[float | None, float | None] | None = None
    draw: Any = None  # custom style: callable(ax, data)
    chain: str | None = None  # input role that continues a path of the same stage (e.g. "start")


POINT_STEP_SEP = "@"


def point_key(tensor: str, step: int) -> str:
    """The safetensors key of one tensor of the point stored at ``step`` (a points file may hold several points)."""
    return f"{tensor}{POINT_STEP_SEP}{step}"


_IT_PREFIX = re.compile(r"it(\d+)\.(.+)")


def split_point_key(key: str) -> tuple[str, int | None]:
    """(tensor, step) of a points key: ``<tensor>@<step>`` (``point_key``) or ``it<step>.<tensor>``; step is None for
    a plain tensor name (one point per file)."""
    name, sep, step = key.rpartition(POINT_STEP_SEP)
    if sep and step.isdigit():
        return name, int(step)
    m = _IT_PREFIX.fullmatch(key)
    if m:
        return m.group(2), int(m.group(1))
    return key, None


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
    needs_torch: ClassVar[bool] = True  # the runtime sets torch threads and device for it
    metrics: ClassVar[tuple[Metric, ...]] = ()
    verdicts: ClassVar[tuple[Verdict, ...]] = ()  # boolean result keys, reported as success rates
    figures: ClassVar[tuple[Figure, ...]] = ()  # what `lowloss report --out` draws for a stage of this kind
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
