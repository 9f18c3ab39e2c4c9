"""The two kinds of kinds, the middle floor's interface to the orchestrator.

- a **stage kind** owns a ``[[stages]]`` table: its schema (``Table``), its cross-field validation, and its planning:
  ``plan(table, study, view)`` returns the unit drafts the results known so far allow, and whether the stage is still
  open (may add units later). A static stage returns everything at once and closes; a planner (``pairs = "to_best"``,
  the AutoNEB minimum-spanning-tree exploration) sees its own units' committed results and adds units round by round.
  A stage may emit units of several unit kinds.
- a **unit kind** owns a unit's params (``Params``, validated once when planned; ``run`` receives the typed object),
  ``resources(params)`` (per unit), the named tensor sets it commits (``outputs``), the metrics, verdicts, tables and
  figures it declares for reports, and ``run(ctx, params)``, which drives ``workers/`` functions through the
  ``UnitContext`` protocol. The store implements the protocol; kinds never see stores, executors or specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .context import UnitContext
from .declarations import Figure, Metric, Verdict
from .params import StageParams, UnitParams
from .planning import Plan, PlanView, StageCount, UnitDraft
from .study import StudyContext


@dataclass(frozen=True)
class Resources:
    """What one unit needs; executors map it to threads, sbatch settings or Ray resources."""

    cpus: int = 1
    gpus: int = 0
    mem_gb: float = 2.0
    time_min: int = 60
    resource_class: str = "cpu-small"


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

    def count(self, table: Any, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
        """What ``plan`` makes before any result is known, counted from the table without making it (arithmetic: the
        refusal of a study past ``run.max_units`` runs before anything is planned). ``inputs``: the counts of the
        stages it reads, each closed. Raises ``ExpansionTooLarge`` where ``plan`` would. None: the kind cannot say (it
        then counts as planning nothing up front, and so do the stages reading it)."""
        return None

    def describe(self, table: Any, study: StudyContext) -> list[str]:
        """Extra lines for `lowloss plan` (e.g. which tensors a phase moves)."""
        return []

    def check_data(self, study: StudyContext, data_root: str | None) -> str | None:
        """Why the data cannot be read (checked at the edge, before anything runs), or None."""
        return None


class SimpleStage(StageKind):
    """A static stage: ``drafts(table, study, view)`` once its input stages are closed, then closed."""

    def plan(self, table: Any, study: StudyContext, view: PlanView) -> Plan:
        if any(view.is_open(s) for s in self.inputs_of(table)):
            return Plan([], open=True, note="waiting for its input stages")
        return Plan(self.drafts(table, study, view))

    def drafts(self, table: Any, study: StudyContext, view: PlanView) -> list[UnitDraft]:
        raise NotImplementedError
