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


def _plain_type(annotation) -> type | None:
    """int, float or bool when a field is exactly that (possibly Optional), else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation in (int, float, bool):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1 and args[0] in (int, float, bool):
        return args[0]
    return None


class StrictScalars(BaseModel):
    """Refuses the silent conversions TOML users trip over: `true` for a number, a number or string for a flag."""

    @model_validator(mode="before")
    @classmethod
    def _no_silent_conversion(cls, data):
        if isinstance(data, dict):
            for name, info in cls.model_fields.items():
                key = info.alias or name
                if key not in data:
                    continue
                want, value = _plain_type(info.annotation), data[key]
                if want in (int, float) and isinstance(value, bool):
                    raise ValueError(f"{key} = {str(value).lower()}: a number is needed, not true/false")
                if want is bool and not isinstance(value, bool):
                    raise ValueError(f"{key} = {value!r}: true or false is needed")
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
    that give one line per matching column (minus those matching ``exclude``), labelled by the part the ``*`` matched
    (one line per tensor, coloured by layer). Styles, drawn by the report core for any kind:

    - ``band``: per column, each unit's curve when there are few (≤ 8), else a central line and band over the units
      aligned on ``x``: mean ± 1 std, or on a log axis the geometric mean ×/÷ the geometric std. A dense column (a value
      in ≥ 90 % of the rows) is smoothed by a trailing moving average over ``smooth`` x units; a sparse one (evaluated
      every K rows) is drawn as its points, joined, never smoothed (LLPF Figs. 2–3);
    - ``line``: each unit's curve, coloured and labelled by unit when few, else the median with 25–75 % and 5–95 %
      quantile bands, next to a histogram of the result keys ``result_hist`` (interpolation curves and barriers);
    - ``pca``: each unit's stored points (``points/``), per tensor matching ``ys`` (default: all), projected on the
      first two principal components of all points of the stage, one panel per tensor, one colour per path (LLPF
      Fig. 4); the start (the final state of the first unit's input ``origin``, else its first stored point), the
      end and the final state of the input ``destination`` (D) are marked; ``table`` and ``x`` are unused. Points are keyed ``point_key(tensor, step)`` or ``it<step>.<tensor>``.
    - ``pairs``: one row per committed unit whose result has ``verdict``: its result keys ``ys`` next to the result
      keys ``compare_ys`` of the unit of a ``compare_kind`` stage between the same input units (e.g. a path's peak
      loss next to the straight line's barrier between the same two modes), coloured by the verdict; also written as
      a table (``<stage>-<name>.md`` and ``.csv``);
    - ``custom``: ``draw(ax, data)`` is called with ``data`` = {unit label: pyarrow.Table of ``table``}.

    ``threshold_param`` names a unit param drawn as a horizontal line on the left axis (the verdict's threshold, e.g.
    ``l_thres``; one line per distinct value), labelled ``threshold_label``.

    ``chain`` names an input role through which a unit continues the path of another unit of the same stage (the
    phases of an LLPF M2M path: input ``start``): such units are drawn as one path, each unit's rows (and points)
    after its predecessor's, x shifted to continue where the predecessor ended, the boundaries marked; a path is
    labelled by its last unit.
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
    smooth: float = 1  # trailing moving-average window in x units of dense columns (band style; ≤ 1: none)
    labels: tuple[str, ...] = ()  # legend labels of the ys entries (default: the column name)
    ylim: tuple[float | None, float | None] | None = None
    y2s: tuple[str, ...] = ()  # columns on a right-hand y axis (e.g. accuracy next to loss)
    y2label: str = ""
    y2labels: tuple[str, ...] = ()
    logy2: bool = False
    y2lim: tuple[float | None, float | None] | None = None
    draw: Any = None  # custom style: callable(ax, data)
    chain: str | None = None  # input role that continues a path of the same stage (e.g. "start")
    exclude: tuple[str, ...] = ()  # glob patterns of columns a ys pattern leaves out (e.g. BatchNorm running stats)
    threshold_param: str = ""  # unit param drawn as a horizontal line (e.g. "l_thres")
    threshold_label: str = ""
    destination: str = ""  # pca: input role whose final state is marked as D
    origin: str = ""  # pca: input role (of a path's first unit) whose final state is the path's start, marked
    result_hist: tuple[str, ...] = ()  # line: result keys shown as histograms when there are many units
    verdict: str = ""  # pairs: the boolean result key that colours a row
    compare_kind: str = ""  # pairs: the kind of the stage compared with, unit by unit on the same inputs
    compare_ys: tuple[str, ...] = ()  # pairs: that stage's result keys
    compare_labels: tuple[str, ...] = ()


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
