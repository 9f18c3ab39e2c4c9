"""What a study would run (``lowloss plan``): units per stage with their kinds and resource classes, what a store
already holds, and whether a stage is still open. A unit two stages plan (one id) runs once: it counts once in the
total, and each stage names the other stages that share it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import jobs
from ..spec import Study
from ..store import DamagedError, Store, StoreError
from .graph import Planner


@dataclass
class StagePreview:
    name: str
    kind: str
    unit_kinds: list[tuple[str, str]]  # (unit kind, its resource class)
    units: int
    done: int
    open: bool
    note: str
    shared: dict[str, int] = field(default_factory=dict)  # other stage -> units planned by both

    @property
    def would_run(self) -> int:
        return self.units - self.done


@dataclass
class PlanPreview:
    study: Study
    planner: Planner
    stages: list[StagePreview]
    to_run: set[str]
    planned_by: dict[str, list[str]]  # unit id -> the stages that plan it

    @property
    def shared_units(self) -> int:
        return sum(1 for stages in self.planned_by.values() if len(stages) > 1)

    @property
    def open(self) -> bool:
        return bool(self.planner.open_stages())


class _Committed:
    """The planner's view of a store's committed results (a unit's kind from the planner, which planned it)."""

    def __init__(self, store: Store | None):
        self.store = store
        self.planner: Planner | None = None

    def result(self, uid: str) -> dict | None:
        unit = self.planner.units.get(uid) if self.planner is not None else None
        if self.store is None or unit is None:
            return None
        try:
            return self.store.read.result(uid, unit.kind)
        except (DamagedError, StoreError):
            return None

    def done(self, uid: str) -> bool:
        unit = self.planner.units.get(uid) if self.planner is not None else None
        return self.store is not None and unit is not None and self.store.read.is_committed(uid, unit.kind)


def preview(study: Study, store: Store | None = None) -> PlanPreview:
    """The study planned as far as the store's committed results allow (without a store: none)."""
    known = store if store is not None and store.exists() else None
    committed = _Committed(known)
    planner = Planner(study, committed.result)
    committed.planner = planner
    planner.settle()
    planned_by: dict[str, list[str]] = {}
    for stage in study.stages:
        for u in planner.stage_units(stage.name):
            planned_by.setdefault(u.id, []).append(stage.name)
    rows: list = []
    to_run: set[str] = set()
    units = jobs.unit_kinds()
    for stage in study.stages:
        mine = planner.stage_units(stage.name)
        done = sum(1 for u in mine if committed.done(u.id))
        to_run.update(u.id for u in mine if not committed.done(u.id))
        shared: dict[str, int] = {}
        for u in mine:
            for other in planned_by[u.id]:
                if other != stage.name:
                    shared[other] = shared.get(other, 0) + 1
        kinds = sorted({u.kind for u in mine} or set(jobs.get_stage_kind(stage.kind).unit_kinds))
        classes = [(k, units[k].default_resources.resource_class) for k in kinds if k in units]
        state = planner.stages[stage.name]
        rows.append(
            StagePreview(
                stage.name, stage.kind, classes, len(mine), done, planner.is_open(stage.name), state.note, shared
            )
        )
    return PlanPreview(study, planner, rows, to_run, planned_by)
