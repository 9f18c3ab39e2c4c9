"""What a stage's plan works with: the drafts it proposes, the plan it returns, and the view of the study it sees."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar, Union

from .params import UnitParams

P = TypeVar("P", bound=UnitParams)


@dataclass(frozen=True)
class Ref:
    """An input of a draft: a unit (its id, or a draft of the same ``plan`` call) and one of its outputs.

    Outputs: ``final`` (a mode's parameters), another tensor set the unit kind declares in ``outputs`` (e.g.
    ``directions``), or ``point:<step>`` (the point the unit stored at that step)."""

    unit: Union[str, "UnitDraft"]
    output: str = "final"


@dataclass(frozen=True, eq=False)
class UnitDraft:
    """A unit as a stage's plan proposes it; the orchestrator gives it its content-hash id.

    ``params`` is the unit kind's ``Params`` object. ``inputs`` maps a role to a unit id, a draft of the same plan call
    (chained phases), or a ``Ref`` naming one output of a unit."""

    kind: str
    params: UnitParams
    inputs: dict[str, Union[str, "UnitDraft", Ref]] = field(default_factory=dict)
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
    """A unit of the plan as a stage's planner sees it: its id, kind, typed params, label and inputs."""

    id: str
    kind: str
    params: UnitParams
    label: str
    inputs: dict[str, str]  # role -> input reference (unit id, or "<id>:<output>")

    def params_as(self, cls: type[P]) -> P:
        """The params, as the kind ``cls`` they must be of (a planner reading another stage's units says which)."""
        if not isinstance(self.params, cls):
            raise TypeError(
                f"unit {self.id} of kind {self.kind!r} has {type(self.params).__name__}, not {cls.__name__}"
            )
        return self.params


class PlanView(Protocol):
    """What a stage's plan sees: its own units planned so far, those of earlier stages, and committed results."""

    stage: str

    def units(self, stage: str | None = None) -> list[PlannedUnit]: ...  # None: the stage being planned

    def result(self, unit_id: str) -> dict | None: ...  # the committed result, or None

    def failed(self, unit_id: str) -> bool: ...  # given up (its retries are spent)

    def is_open(self, stage: str) -> bool: ...  # an earlier stage may still add units

    def decided(self, stage: str) -> bool: ...  # every unit of a closed stage is committed or given up (cheap)


class ExpansionTooLarge(ValueError):
    """A stage would expand to more units than the study allows (``run.max_units``)."""

    def __init__(self, what: str, count: int, limit: int):
        self.what, self.count, self.limit = what, count, limit
        super().__init__(f"{what} would be {count:,} units, more than the limit of {limit:,}")


@dataclass(frozen=True)
class StageCount:
    """What a stage plans before any result is known, counted from the spec without planning it (``StageKind.count``):
    how a study too large to expand is refused in a fraction of a second, before a unit is made.

    ``parts``: the units, as (key, count) parts whose units share a key (``count_key``): the unit kind and what every
    unit of the part holds in its params and inputs, so that parts with different keys never hold the same unit. The
    same work planned twice (by two stages, or by two combinations of a sweep) is one unit: parts of one key count once,
    the largest. A count may fall short of what the plan makes, never exceed it: a study within ``run.max_units`` is
    never refused on it.
    ``open``: the stage waits for results (the stages reading it plan nothing up front either).
    ``seeds``: for a stage of modes (one unit per seed), their seeds, which the stages pairing them count from.
    ``has_pair``: for a stage of pair units, whether it makes the (ordered) pair of seeds."""

    parts: tuple[tuple[str, int], ...] = ()
    open: bool = False
    seeds: tuple[int, ...] | None = None
    has_pair: Callable[[tuple[int, int]], bool] | None = None

    @property
    def units(self) -> int:
        return sum(n for _, n in self.parts)

    @property
    def key(self) -> str:
        """The key of its units, for a stage of one part (a stage of modes): what the stages reading it key on."""
        (key,) = {key for key, _ in self.parts}
        return key


PLANS_LATER = StageCount(open=True)  # a stage that plans nothing before results arrive


def count_key(*shared: Any) -> str:
    """The key of a ``StageCount`` part, from what every unit of it shares (JSON values: the unit kind, params as
    ``canonical()`` gives them without the fields that vary from unit to unit, the keys of the units it reads)."""
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:32]


def canonical_without(params: UnitParams, *fields: str) -> dict:
    """A unit's canonical params without the fields that vary from unit to unit of a part (its seed, its pair)."""
    return {k: v for k, v in params.canonical().items() if k not in fields}
