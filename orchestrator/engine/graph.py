"""The unit graph: planning stages into units, content-hash unit ids, and which stages are still open.

A unit id is a content hash of (kind, kind version, canonical params, input references): the same work always has the
same id, so a re-run, a resume or an edited spec re-uses every unit whose id did not change.

Planning is one protocol for static and dynamic stages (``StageKind.plan``): a stage's plan returns every draft the
results known so far allow, and whether the stage is still open. The ``Planner`` keeps the union of what each stage
proposed (a unit, once planned, stays), plans a stage again only while it is open and only when something it can
see changed (one of its own units or of its input stages finished, or an input stage added units or closed), and
never re-plans a closed stage. A stage is closed when its plan says so and every stage it reads is closed. After a
coordinator restart the planner reaches the same units again by planning to a fixed point over the committed results.

Before it plans anything, a planner counts the study from the spec (``count_study``: each stage kind's ``count``,
arithmetic over the seeds, the pairs and the grids) and refuses a study past ``run.max_units`` at once; planning
100 000 units only to refuse them took tens of seconds and gigabytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from ... import jobs
from ...jobs import ExpansionTooLarge, PlannedUnit, Ref, StageCount, UnitDraft, UnitParams
from ..spec import MISSING, SpecError, Study
from ..store import PlannedStage, PlannedUnitEntry, PlanRecord, UnitRecord, split_ref, unit_id

MAX_ROUNDS = 100_000  # plan calls of one stage in one settling pass; more means a planner that never settles


@dataclass(frozen=True)
class Unit:
    """A planned unit: its content-hash id, kind, typed params, inputs, the stage that planned it and its label."""

    id: str
    kind: str
    version: int
    params: UnitParams
    inputs: dict[str, str]  # role -> reference ("<id>" or "<id>:<output>")
    stage: str
    label: str

    @property
    def record(self) -> UnitRecord:
        """What ``unit.json`` holds (its canonical params hash to the id)."""
        return UnitRecord(self.id, self.kind, self.version, self.params.canonical(), self.inputs)

    @property
    def input_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(split_ref(ref)[0] for ref in self.inputs.values()))


@dataclass
class StageState:
    name: str
    units: list[Unit] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    planned: bool = False
    open: bool = True  # what its last plan said
    note: str = ""
    dirty: bool = True  # something it can see changed since its last plan


class PlannerError(Exception):
    """A stage kind's plan broke the protocol (a bug in the kind, not bad input)."""


class Planner:
    """Incremental planning of a study's stages over the results the ``result`` callback knows."""

    def __init__(
        self,
        study: Study,
        result: Callable[[str], dict | None] = lambda uid: None,
        failed: Callable[[str], bool] = lambda uid: False,
    ):
        count_study(study)  # a study too large to expand is refused from the spec's counts, before a unit is made
        self.study = study
        self.context = study.context
        self.variants = study.all_variants()  # a [sweep]'s combinations: each stage is planned once per combination
        self._result, self._failed = result, failed
        self.stages: dict[str, StageState] = {s.name: StageState(s.name) for s in study.stages}
        self.infos = {s.name: s for s in study.stages}
        self.units: dict[str, Unit] = {}
        self.stage_of: dict[str, str] = {}
        self._planned: dict[str, PlannedUnit] = {}
        self.dependents: dict[str, list[str]] = {s.name: [] for s in study.stages}
        for s in study.stages:
            for src in s.inputs:
                self.dependents[src].append(s.name)
        self.plan_calls = 0
        self._undecided: dict[str, set[str]] = {s.name: set() for s in study.stages}
        # what a plan's view lists, per (stage, sweep combination): each combination sees only its own units
        self._seen: dict[tuple[str, int], list[PlannedUnit]] = {
            (s.name, v): [] for s in study.stages for v in range(len(self.variants))
        }
        self._seen_ids: dict[tuple[str, int], set[str]] = {key: set() for key in self._seen}

    # ------------------------------------------------------------------ state
    def is_open(self, stage: str) -> bool:
        """Whether a stage may still add units: its plan says so, or a stage it reads is open."""
        state = self.stages[stage]
        return (not state.planned) or state.open or any(self.is_open(src) for src in self.infos[stage].inputs)

    def decided(self, stage: str) -> bool:
        """Whether a stage is closed and each of its units is committed or given up. Each unit is looked up until it
        is decided, then never again: over a study this costs one look-up per unit, not one per call."""
        if self.is_open(stage):
            return False
        undecided = self._undecided[stage]
        for uid in list(undecided):
            if self._result(uid) is None and not self._failed(uid):
                return False
            undecided.discard(uid)
        return True

    def open_stages(self) -> list[str]:
        return [name for name in self.stages if self.is_open(name)]

    def stage_units(self, stage: str) -> list[Unit]:
        return self.stages[stage].units

    # ------------------------------------------------------------------ planning
    def settle(self, stages: Iterable[str] | None = None) -> list[Unit]:
        """Plan the given stages (default: every stage marked changed) to a fixed point; returns the new units."""
        if stages is not None:
            for name in stages:
                self.stages[name].dirty = True
        new: list[Unit] = []
        rounds = 0
        while True:
            dirty = [name for name in self.stages if self.stages[name].dirty]  # spec order: inputs before users
            if not dirty:
                return new
            for name in dirty:
                state = self.stages[name]
                state.dirty = False
                if state.planned and not self.is_open(name):
                    continue  # closed stages are never planned again
                was_open = self.is_open(name)
                added = self._plan_stage(name)
                new.extend(added)
                if added or was_open != self.is_open(name):
                    self._touch_dependents(name)
                if added and any(self._result(u.id) is not None or self._failed(u.id) for u in added):
                    state.dirty = True  # its new units are already decided (a restart): it can plan its next round
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise PlannerError(
                    f"stages {', '.join(dirty)} kept adding units for {MAX_ROUNDS} rounds: a planner that never settles"
                )

    def finished(self, uid: str) -> list[Unit]:
        """A unit ended (committed or given up): plan again the open stages that can see it."""
        stage = self.stage_of.get(uid)
        if stage is None:
            return []
        touched = [stage, *self.dependents[stage]]
        return self.settle([s for s in touched if self.is_open(s)])

    def _touch_dependents(self, stage: str) -> None:
        for dep in self.dependents[stage]:
            self.stages[dep].dirty = True

    def _plan_stage(self, name: str) -> list[Unit]:
        """Plan one stage in every sweep combination; the units it had not planned before."""
        state = self.stages[name]
        drafted, opens, notes = self._drafts(name)
        state.planned, state.open = True, any(opens)
        state.note = "; ".join(dict.fromkeys(notes)) if len(set(notes)) > 1 else (notes[0] if notes else "")
        added = []
        for uid, (unit, seen_by) in drafted.items():
            if uid not in state.ids:
                if uid in self.units:  # the same work planned by another stage: one unit, kept in its first stage
                    state.units.append(self.units[uid])
                    state.ids.add(uid)
                else:
                    unit = replace(unit, label=unit.label + self._sweep_suffix(seen_by))
                    state.units.append(unit)
                    state.ids.add(uid)
                    self._undecided[name].add(uid)
                    self.units[uid] = unit
                    self.stage_of[uid] = name
                    added.append(unit)
            for v in seen_by:
                if uid not in self._seen_ids[(name, v)]:
                    self._seen_ids[(name, v)].add(uid)
                    self._seen[(name, v)].append(self.planned_unit(uid))
        if len(self.units) > self.context.max_units:
            raise too_many(self.study, name, len(self.units))
        return added

    def _drafts(self, name: str) -> tuple[dict[str, tuple[Unit, list[int]]], list[bool], list[str]]:
        """The units each sweep combination's plan of a stage proposes (id -> (unit, the combinations that planned
        it), in order), whether each plan stays open, and their notes."""
        kind = jobs.get_stage_kind(self.infos[name].kind)
        drafted: dict[str, tuple[Unit, list[int]]] = {}
        opens, notes = [], []
        for v, variant in enumerate(self.variants):
            self.plan_calls += 1
            try:
                plan = kind.plan(variant.stage(name).params, variant.context, _View(self, name, v))
            except ExpansionTooLarge as exc:
                raise too_large(self.study, name, exc) from None
            opens.append(plan.open)
            if plan.note:
                notes.append(f"{variant.text}: {plan.note}" if len(self.variants) > 1 else plan.note)
            ids: dict[int, str] = {}  # drafts may name drafts of the same plan call as inputs (chained phases)
            for draft in plan.drafts:
                unit = self._resolve(draft, name, ids)
                ids[id(draft)] = unit.id
                drafted.setdefault(unit.id, (unit, []))[1].append(v)
        return drafted, opens, notes

    def _sweep_suffix(self, seen_by: list[int]) -> str:
        """A label's note of the sweep values a unit belongs to (none for a unit every combination shares)."""
        if len(self.variants) == 1 or len(seen_by) == len(self.variants):
            return ""
        chosen = [self.variants[v] for v in seen_by]
        common = [
            (f, value)
            for i, (f, value) in enumerate(chosen[0].assign)
            if all(_same(c.assign[i][1], value) for c in chosen)
            and not all(_same(w.assign[i][1], value) for w in self.variants)
        ]
        return f" ({', '.join(f'{f}={_text(value)}' for f, value in common)})" if common else ""

    def _resolve(self, draft: UnitDraft, stage: str, ids: dict[int, str]) -> Unit:
        try:
            kind = jobs.get_kind(draft.kind)
        except jobs.UnknownKind as exc:
            raise PlannerError(f"stage {stage} planned a unit of kind {draft.kind!r}: {exc}") from None
        params = draft.params
        if not isinstance(params, kind.Params):  # a plugin's draft may give its params as a table
            params = kind.Params.model_validate(params)
        inputs = {role: self._reference(ref, ids, stage) for role, ref in draft.inputs.items()}
        uid = unit_id(draft.kind, kind.version, params.canonical(), inputs)
        return Unit(uid, draft.kind, kind.version, params, inputs, stage, draft.label)

    @staticmethod
    def _reference(ref: str | UnitDraft | Ref, ids: dict[int, str], stage: str) -> str:
        output = "final"
        if isinstance(ref, Ref):
            output = ref.output
            ref = ref.unit
        if isinstance(ref, UnitDraft):
            if id(ref) not in ids:
                raise PlannerError(f"stage {stage}: a draft names as input a draft that comes later in its plan")
            ref = ids[id(ref)]
        return ref if output == "final" else f"{ref}:{output}"

    def planned_unit(self, uid: str) -> PlannedUnit:
        if uid not in self._planned:
            u = self.units[uid]
            self._planned[uid] = PlannedUnit(u.id, u.kind, u.params, u.label, u.inputs)
        return self._planned[uid]

    # ------------------------------------------------------------------ the plan document
    def document(self) -> PlanRecord:
        """The plan as stored in plan.json: stages in order with their units' ids, kinds and labels."""
        stages = []
        for s in self.study.stages:
            state = self.stages[s.name]
            kind = jobs.get_stage_kind(s.kind)
            stages.append(
                PlannedStage(
                    s.name,
                    s.kind,
                    kind.unit_kinds[0] if kind.unit_kinds else s.kind,  # the kind that summarises it
                    self.is_open(s.name),
                    state.note,
                    tuple(PlannedUnitEntry(u.id, u.kind, u.label) for u in state.units),
                )
            )
        return PlanRecord(self.study.name, tuple(stages))


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _View:
    """The ``PlanView`` a stage's plan sees (for one combination of a sweep: only that combination's units)."""

    def __init__(self, planner: Planner, stage: str, variant: int = 0):
        self._planner, self.stage, self._variant = planner, stage, variant

    def units(self, stage: str | None = None) -> list[PlannedUnit]:
        """The stage's units in the order they were planned (the planner's own list: read it, do not change it)."""
        name = stage or self.stage
        if name not in self._planner.stages:
            raise PlannerError(f"stage {self.stage} asked for the units of unknown stage {name!r}")
        return self._planner._seen[(name, self._variant)]

    def result(self, unit_id: str) -> dict | None:
        return self._planner._result(unit_id)

    def failed(self, unit_id: str) -> bool:
        return self._planner._failed(unit_id)

    def is_open(self, stage: str) -> bool:
        return self._planner.is_open(stage)

    def decided(self, stage: str) -> bool:
        return self._planner.decided(stage)


def count_study(study: Study) -> int:
    """The units the study plans before any result is known, counted from the spec alone: each stage kind's ``count``
    (arithmetic over the seeds, the pairs, the grids; nothing is planned) in spec order, in every sweep combination,
    the same work counted once. A stage that waits for results counts none, and so do the stages reading it. Refuses,
    as the planner would, a stage or a study past ``run.max_units``; the count never exceeds what the planner makes,
    so a study the planner takes is never refused here."""
    variants = study.all_variants()
    counts: dict[tuple[str, int], StageCount] = {}
    largest: dict[str, int] = {}  # part key -> the most units a stage or combination counts under it
    for info in study.stages:
        kind = jobs.get_stage_kind(info.kind)
        for v, variant in enumerate(variants):
            stage = variant.stage(info.name)
            inputs = {src: counts[(src, v)] for src in stage.inputs}
            count = None
            if not any(c.open for c in inputs.values()):  # a stage plans nothing while a stage it reads is open
                try:
                    count = kind.count(stage.params, variant.context, inputs)
                except ExpansionTooLarge as exc:
                    raise too_large(study, info.name, exc) from None
            counts[(info.name, v)] = count if count is not None else jobs.PLANS_LATER
            for key, n in counts[(info.name, v)].parts:
                largest[key] = max(largest.get(key, 0), n)
        total = sum(largest.values())
        if total > study.context.max_units:
            raise too_many(study, info.name, total)
    return sum(largest.values())


def too_large(study: Study, stage: str, exc: ExpansionTooLarge) -> SpecError:
    """A stage that alone would expand past ``run.max_units``."""
    what = exc.what.removeprefix(f"stage {stage}: ")
    return SpecError(
        f"stages.{stage}",
        MISSING,
        f"{what} would be {exc.count:,} units, more than run.max_units = {exc.limit:,}; lower the count, "
        "or raise run.max_units if the cluster can take it",
        study.source,
    )


def too_many(study: Study, stage: str, count: int) -> SpecError:
    """A study that with this stage would expand past ``run.max_units``."""
    return SpecError(
        f"stages.{stage}",
        MISSING,
        f"with this stage the study would be {count:,} units ({len(study.seeds):,} seeds in study.seeds"
        + (f", {len(study.variants)} sweep combinations" if len(study.variants) > 1 else "")
        + f"), more than run.max_units = {study.context.max_units:,}; lower the seed, pair or grid counts (or the "
        "sweep's), or raise run.max_units if the cluster can take it",
        study.source,
    )


def plan_study(
    study: Study,
    result: Callable[[str], dict | None] = lambda uid: None,
    failed: Callable[[str], bool] = lambda uid: False,
) -> Planner:
    """Every stage planned as far as the known results allow."""
    planner = Planner(study, result, failed)
    planner.settle()
    return planner
