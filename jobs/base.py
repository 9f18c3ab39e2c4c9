"""The kind interfaces of the middle floor, and the context protocols the orchestrator implements for them.

Two kinds of kinds:

- a **stage kind** owns a ``[[stages]]`` table: its schema (``Table``), its cross-field validation, and its planning:
  ``plan(table, study, view)`` returns the unit drafts the results known so far allow, and whether the stage is still
  open (may add units later). A static stage returns everything at once and closes; a planner (``pairs = "to_best"``,
  the AutoNEB minimum-spanning-tree exploration) sees its own units' committed results and adds units round by round.
  A stage may emit units of several unit kinds.
- a **unit kind** owns a unit's params (``Params``, validated once when planned; ``run`` receives the typed object),
  ``resources(params)`` (per unit), the named tensor sets it commits (``outputs``), the metrics, verdicts, tables and
  figures it declares for reports, and ``run(ctx, params)``, which drives ``workers/`` functions through the
  ``UnitContext`` protocol below. The store implements the protocol; kinds never see stores, executors or specs.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Protocol, Union

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
        if annotation is int and isinstance(value, float):
            hint = f" (write {int(value)})" if value.is_integer() else ""
            return _MISFIT, f"{value!r}: an integer is needed, not a decimal number{hint}"
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
    """Base of every stage table: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class UnitParams(StageParams):
    """Base of every unit kind's params: validated when the unit is planned, handed typed to ``run``.

    ``canonical()`` is the JSON content that the unit id hashes and ``unit.json`` records. (A subclass of
    ``StageParams`` so that a stage table and its units' params can share field mixins.)"""

    def canonical(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class Resources:
    """What one unit needs; executors map it to threads, sbatch settings or Ray resources."""

    cpus: int = 1
    gpus: int = 0
    mem_gb: float = 2.0
    time_min: int = 60
    resource_class: str = "cpu-small"


# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Ref:
    """An input of a draft: a unit (its id, or a draft of the same ``plan`` call) and one of its outputs.

    Outputs: ``final`` (a mode's parameters), another tensor set the unit kind declares in ``outputs`` (e.g.
    ``directions``), or ``point:<step>`` (the point the unit stored at that step)."""

    unit: Union[str, "UnitDraft"]
    output: str = "final"


@dataclass(frozen=True, eq=False)
class UnitDraft:
    """A unit as a stage's plan proposes it; the orchestrator validates its params and gives it its content-hash id.

    ``params`` is the unit kind's ``Params`` object (or a dict it validates). ``inputs`` maps a role to a unit id, a
    draft of the same plan call (chained phases), or a ``Ref`` naming one output of a unit."""

    kind: str
    params: Any
    inputs: dict = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Plan:
    """What a stage's plan returns: the drafts the known results allow, whether the stage may still add units
    (``open``), and a one-line status for `lowloss plan`/`status` (e.g. "14 edges done, budget 40").

    A unit once planned stays planned: a plan may return its earlier drafts again (a static stage returns everything
    each time) or only the new ones (an incremental planner, whose cost per call then need not grow with the stage)."""

    drafts: list[UnitDraft]
    open: bool = False
    note: str = ""


@dataclass(frozen=True)
class PlannedUnit:
    """A unit of the plan as a stage's planner sees it."""

    id: str
    kind: str
    params: dict
    label: str
    inputs: dict  # role -> input reference (unit id, or "<id>:<output>")


UpstreamUnit = PlannedUnit  # the name earlier kinds used


class PlanView(Protocol):
    """What a stage's plan sees: its own units planned so far, those of earlier stages, and committed results."""

    stage: str

    def units(self, stage: str | None = None) -> list[PlannedUnit]: ...  # None: the stage being planned

    def result(self, unit_id: str) -> dict | None: ...  # the committed result, or None

    def failed(self, unit_id: str) -> bool: ...  # given up (its retries are spent)

    def is_open(self, stage: str) -> bool: ...  # an earlier stage may still add units

    def decided(self, stage: str) -> bool: ...  # every unit of a closed stage is committed or given up (cheap)


Upstream = PlanView  # the name earlier kinds used


@dataclass(frozen=True)
class StudyContext:
    """The study-wide spec sections a stage may read (plain JSON-able dicts), and the expansion bound."""

    seeds: tuple[int, ...]
    data: dict
    model: dict
    train: dict
    max_units: int = 200_000


class ExpansionTooLarge(ValueError):
    """A stage would expand to more units than the study allows (``run.max_units``)."""

    def __init__(self, what: str, count: int, limit: int):
        self.what, self.count, self.limit = what, count, limit
        super().__init__(f"{what} would be {count:,} units, more than the limit of {limit:,}")


# ---------------------------------------------------------------------------------------------- reports


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
      end and the final state of the input ``destination`` (D) are marked; ``table`` and ``x`` are unused. Points
      are keyed ``point_key(tensor, step)``.
    - ``pairs``: one row per committed unit whose result has ``verdict``: its result keys ``ys`` next to the result
      keys ``compare_ys`` of the unit of a ``compare_kind`` stage between the same input units (e.g. a path's peak
      loss next to the straight line's barrier between the same two modes), coloured by the verdict; also written as
      a table (``<stage>-<name>.md`` and ``.csv``);
    - ``methods``: one row per committed unit, grouped by ``row_param`` (e.g. the pair) and ordered by
      ``column_param`` (e.g. the path method): its result keys ``ys`` and the CPU-, GPU- and wall-seconds its input
      units spent (every attempt recorded in the store; roles in ``cost_exclude`` are not counted); a grouped bar
      chart of the first key; also written as a table (``<stage>-<name>.md`` and ``.csv``);
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
    row_param: str = ""  # methods: the unit param naming a row (e.g. "pair"; a pair is shown low-high)
    column_param: str = ""  # methods: the unit param naming a method within a row (e.g. "method")
    cost_exclude: tuple[str, ...] = ()  # methods: input roles whose units' attempts are not counted (the modes)


# ---------------------------------------------------------------------------------------------- points

_POINT_KEY = re.compile(r"it(\d+)\.(.+)")


def point_key(tensor: str, step: int) -> str:
    """The safetensors key of one tensor of the point stored at ``step`` (a points file may hold several points)."""
    return f"it{step:08d}.{tensor}"


def split_point_key(key: str) -> tuple[str, int | None]:
    """(tensor, step) of a points key (``point_key``); step is None for a plain tensor name (one point per file)."""
    m = _POINT_KEY.fullmatch(key)
    if m:
        return m.group(2), int(m.group(1))
    return key, None


# ---------------------------------------------------------------------------------------------- running a unit


class UnitContext(Protocol):
    """What a running unit may do. Implemented by the orchestrator's runtime over the store."""

    unit_id: str
    attempt: int
    device: Any  # torch.device
    data_root: str | None

    # inputs (by role)
    def input_params(self, role: str) -> Any: ...  # the input unit's typed params

    def input_result(self, role: str) -> dict: ...

    def input_tensors(self, role: str, output: str | None = None) -> dict: ...  # default: the output the role names

    def input_final_state(self, role: str) -> dict: ...  # input_tensors(role, "final")

    def input_points(self, role: str) -> Iterator[tuple[int, dict]]: ...  # (step, tensors) of every stored point

    def input_rows(self, role: str, table: str) -> Any: ...  # pyarrow.Table of the input's committed rows, or None

    # this unit's progress
    def committed_segments(self) -> int: ...

    def rows(self, table: str) -> Any: ...  # pyarrow.Table of this unit's committed rows of ``table``

    def write_segment(
        self, index: int, tables: dict[str, list[dict]], points: dict | None = None, stop: bool = True
    ) -> None:
        """Commit one segment. When the unit was asked to stop (SIGTERM/SIGUSR2, Ctrl-C of the run), raises the
        runtime's ``Preempted`` once the segment is durably committed, so every kind stops at its next segment and a
        resume continues after it. ``stop=False``: a caller that stops by itself (``loop.run_segments``, through its
        checkpoint) or that commits right after this segment (stopping there would throw away work a resume does not
        get back)."""
        ...

    def checkpoint_due(self) -> bool: ...

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None: ...

    def read_checkpoint(self) -> tuple[dict, dict, int] | None: ...

    def progress(self, done: int, total: int, **info: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def commit(self, result: dict, final: dict | None = None, outputs: dict[str, dict] | None = None) -> None: ...


class UnitKind:
    """Base class of unit kinds. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    Params: ClassVar[type[UnitParams]] = UnitParams
    default_resources: ClassVar[Resources] = Resources()
    outputs: ClassVar[tuple[str, ...]] = ()  # named tensor sets it commits; "final" for a mode
    needs_torch: ClassVar[bool] = True  # the runtime sets torch threads and device for it
    metrics: ClassVar[tuple[Metric, ...]] = ()
    verdicts: ClassVar[tuple[Verdict, ...]] = ()  # boolean result keys, reported as success rates
    figures: ClassVar[tuple[Figure, ...]] = ()  # what `lowloss report --out` draws for a stage of this kind
    tables: ClassVar[tuple[str, ...]] = ()

    @property
    def produces_mode(self) -> bool:
        return "final" in self.outputs

    def resources(self, params: Any) -> Resources:
        """What this unit needs (a kind may scale time or memory with its params)."""
        return self.default_resources

    def run(self, ctx: UnitContext, params: Any) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class StageInfo:
    """A validated stage of a study: its name, stage kind, validated table, and the stages it reads."""

    name: str
    kind: str
    params: StageParams
    inputs: tuple[str, ...] = ()


class StageKind:
    """Base class of stage kinds. Subclasses set the class attributes and implement ``plan``; ``table`` is the
    validated instance of the subclass's own ``Table`` (typed as such in each subclass)."""

    name: ClassVar[str]
    Table: ClassVar[type[StageParams]] = StageParams
    unit_kinds: ClassVar[tuple[str, ...]] = ()  # the unit kinds it emits; the first one's metrics summarise the stage
    input_output: ClassVar[str | None] = None  # what the stages named in `from` must produce (e.g. "final": modes)
    needs_input_stage: ClassVar[bool] = False  # the table must name `from`
    many_inputs: ClassVar[bool] = False  # `from` may be a list of stages

    def inputs_of(self, table: Any) -> tuple[str, ...]:
        """The stages this stage reads (its `from`)."""
        src = getattr(table, "from_", None)
        if src is None:
            return ()
        return tuple(src) if isinstance(src, (list, tuple)) else (src,)

    def validate(self, table: Any, study: StudyContext, stages: dict[str, StageInfo]) -> list[tuple[str, Any, str]]:
        """Cross-field checks beyond the schema: (field, bad value, what is allowed) for each problem."""
        return []

    def plan(self, table: Any, study: StudyContext, view: PlanView) -> Plan:
        raise NotImplementedError

    def describe(self, table: Any, study: StudyContext) -> list[str]:
        """Extra lines for `lowloss plan` (e.g. which tensors a phase moves)."""
        return []

    def check_data(self, study: StudyContext, data_root: str | None) -> str | None:
        """Why the data cannot be read (checked at the edge, before anything runs), or None."""
        return None


class SimpleStage(StageKind):
    """A static stage: ``drafts(table, study, view)`` once its input stages are closed, then closed."""

    def plan(self, table, study, view) -> Plan:
        if any(view.is_open(s) for s in self.inputs_of(table)):
            return Plan([], open=True, note="waiting for its input stages")
        return Plan(self.drafts(table, study, view))

    def drafts(self, table, study, view) -> list[UnitDraft]:
        raise NotImplementedError
