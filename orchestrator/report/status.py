"""Where a study stands (``lowloss status``): per stage how many units are done, running, pending (and resumable),
failed or damaged, and per unit its state and what it is doing — read from the store alone, so it works on a running
study, after a crash, and with no coordinator at all."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store import (
    AttemptRecord,
    AttemptState,
    DamagedError,
    PlannedStage,
    PlannedUnitEntry,
    ProgressRecord,
    Store,
    StoredState,
)
from ..store.layout import UNIT_RECORD


@dataclass
class StageStatus:
    name: str
    kind: str  # the stage kind
    open: bool
    note: str
    counts: dict[StoredState, int] = field(default_factory=lambda: {s: 0 for s in StoredState})
    resumable: int = 0  # pending units with committed segments (counted among pending)

    @property
    def bad(self) -> int:
        return self.counts[StoredState.FAILED] + self.counts[StoredState.DAMAGED]


@dataclass
class UnitStatus:
    stage: str
    unit: PlannedUnitEntry
    state: StoredState
    last: AttemptRecord | None = None  # its last attempt
    attempts: int = 0
    segments: int = 0  # committed segments (a pending or failed unit resumes after them)
    progress: ProgressRecord | None = None  # a running unit's last progress
    stale: bool = False  # its last attempt's process is gone without closing its record
    damage: str | None = None  # a damaged unit's first damaged file and what is wrong with it


@dataclass
class StudyStatus:
    study: str
    stages: list[StageStatus]
    units: list[UnitStatus]

    def failed(self) -> list[UnitStatus]:
        return [u for u in self.units if u.state is StoredState.FAILED]

    def damaged(self) -> list[UnitStatus]:
        return [u for u in self.units if u.state is StoredState.DAMAGED]

    def stopped(self) -> list[UnitStatus]:
        """Pending units whose last attempt stopped on a full disk."""
        return [
            u
            for u in self.units
            if u.state is StoredState.PENDING and u.last is not None and u.last.state is AttemptState.NOSPACE
        ]


def study_status(store: Store, details: bool = False) -> StudyStatus:
    """The status of every unit of the store's latest plan (``details``: progress and staleness too)."""
    identity = store.check_format()
    plan = store.plan()
    stages, units = [], []
    for planned in plan.stages:
        stage = StageStatus(planned.name, planned.stage_kind, planned.open, planned.note)
        stages.append(stage)
        for entry in planned.units:
            unit = _unit_status(store, planned, entry, details)
            stage.counts[unit.state] += 1
            if unit.state is StoredState.PENDING and unit.segments:  # shown beside pending: counted once
                stage.resumable += 1
            units.append(unit)
    return StudyStatus(identity.study, stages, units)


def _unit_status(store: Store, stage: PlannedStage, entry: PlannedUnitEntry, details: bool) -> UnitStatus:
    state = store.state(entry.id, entry.kind)
    unit = UnitStatus(stage.name, entry, state)
    if state in (StoredState.DONE, StoredState.DAMAGED):
        unit.damage = _damage(store, entry)
        if unit.damage is None:
            return unit
        unit.state = StoredState.DAMAGED
    attempts = store.attempts.records(entry.id, entry.kind)
    unit.last, unit.attempts = (attempts[-1] if attempts else None), len(attempts)
    if state in (StoredState.PENDING, StoredState.FAILED, StoredState.RUNNING):
        unit.segments = store.resumable_from(entry.id, entry.kind)
    if details and state is StoredState.RUNNING:
        unit.progress = store.progress(entry.id, entry.kind)
    if details and state is StoredState.PENDING:
        unit.stale = store.attempts.stale(entry.id, entry.kind) is not None
    return unit


def _damage(store: Store, entry: PlannedUnitEntry) -> str | None:
    """What is damaged of a unit that has a commit marker: the marker itself, or its unit record (the record must hash
    to the id). Only these small files are read; `lowloss verify` checks every data file."""
    try:
        store.read.commit(entry.id, entry.kind)
        store.unit(entry.id, entry.kind)
    except DamagedError as exc:
        return exc.problem
    except (FileNotFoundError, NotADirectoryError):
        return f"{UNIT_RECORD} is missing"
    return None
