"""Stage kind ``autoneb``: the exploration of many minima (AutoNEB Alg. 3) as a planner of ``autoneb_edge`` units.

The exploration runs in **rounds**, so that it is a pure function of the committed edge results (never of which edge
happened to finish first): round 0 is the star (``explore = "mst"`` or ``"star"``: the lowest-loss minimum to every
other one, all N−1 edges at once) or every pair of a static strategy; each later round asks ``plan_pairs`` for up to
``parallel_edges`` pairs across distinct cuts of the current minimum spanning tree (Alg. 3 l.3–5, speculative within
the round: the ultrametric bounds stay valid whatever the round's edges return) and waits until they are all
committed or given up. An edge's unit id hashes only the pair, the two modes and the edge settings (not ``budget``,
``parallel_edges`` nor ``similar``), so a restarted coordinator re-plans the same rounds and never computes an edge
twice. The stage closes on the budget, when every pair is known, or when the tree's saddles are similar
(``similar``: relative spread (max − min)/max of the tree's saddle train losses, see ``workers.autoneb.exploration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..base import (
    PLANS_LATER,
    ModeParams,
    Plan,
    PlannedUnit,
    PlanView,
    StageCount,
    StageInfo,
    StageKind,
    StudyContext,
    UnitDraft,
)
from ..common.modes import seed_of, seeds_of
from ..common.pairs import check_pairs, static_pairs
from .params import EXPLORE_HELP, AutoNEBEdgeParams, AutoNEBStage, EdgeSettings, max_pivots

EXPLORATIONS = ("mst", "star", "all", "to_best")


class EdgeState(Enum):
    """Where one edge of the exploration stands."""

    NEW = "new"  # not planned yet
    RUNNING = "running"  # planned, neither committed nor given up
    DONE = "done"
    FAILED = "failed"  # given up: its retries are spent


WAITING = (EdgeState.NEW, EdgeState.RUNNING)


@dataclass
class Exploration:
    """What one plan call of an exploration knows: the committed minima by seed, and the edges planned so far."""

    table: AutoNEBStage
    view: PlanView
    by_seed: dict[int, PlannedUnit]
    own: dict[tuple[int, int], PlannedUnit]

    def state_of(self, pair: tuple[int, int]) -> EdgeState:
        unit = self.own.get(pair)
        if unit is None:
            return EdgeState.NEW
        if self.view.result(unit.id) is not None:
            return EdgeState.DONE
        return EdgeState.FAILED if self.view.failed(unit.id) else EdgeState.RUNNING

    def note(self, head: str) -> str:
        states = [self.state_of(p) for p in self.own]
        return (
            f"{head}: {states.count(EdgeState.DONE)} edges done, {states.count(EdgeState.RUNNING)} running, "
            f"{states.count(EdgeState.FAILED)} failed, budget {self.table.budget or 'all pairs'}"
        )

    def edge(self, pair: tuple[int, int]) -> UnitDraft:
        a, b = self.by_seed[pair[0]], self.by_seed[pair[1]]
        mode = a.params_as(ModeParams)
        settings = {name: getattr(self.table, name) for name in EdgeSettings.model_fields}
        params = AutoNEBEdgeParams(
            **settings,
            pair=(seed_of(a), seed_of(b)),
            model=mode.model,
            data=mode.data,
            cycles=self.table.resolved_cycles(),
        )
        return UnitDraft("autoneb_edge", params, {"a": a.id, "b": b.id}, f"pair={pair[0]}-{pair[1]}")


class AutoNEBStageKind(StageKind):
    name = "autoneb"
    Table = AutoNEBStage
    unit_kinds = ("autoneb_edge",)
    input_output = "final"
    needs_input_stage = True

    def validate(
        self, table: AutoNEBStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        problems: list[tuple[str, Any, str]] = []
        if not isinstance(table.explore, str) or table.explore == "consecutive":
            problem = check_pairs(table.explore, seeds_of(stages, table.from_, study))
            if problem:
                problems.append(("explore", table.explore, f"{EXPLORE_HELP}; {problem}"))
        cycles = table.resolved_cycles()
        if cycles[0].insert != "equal" or cycles[0].insert_count < 1:
            why = "a first cycle with insert = 'equal' and insert_count ≥ 1 (the straight path has no movable pivot)"
            problems.append(("cycles", cycles[0].model_dump(), why))
        return problems

    def describe(self, table: AutoNEBStage, study: StudyContext) -> list[str]:
        cycles = table.resolved_cycles()
        how = "explicit cycles" if table.cycles is not None else f"schedule {table.schedule!r}"
        return [
            f"edges between the modes of stage {table.from_!r}, explore = {table.explore!r}, budget "
            f"{table.budget or 'all pairs'}, {table.parallel_edges} edges per refinement round, similar ≤ "
            f"{table.similar}",
            f"{how}: {len(cycles)} cycles, {sum(c.steps for c in cycles)} NEB steps, up to "
            f"{max_pivots(cycles)} pivots; insert threshold {table.insert_threshold}, BatchNorm at dense points: "
            f"{table.bn}",
        ]

    def count(self, table: AutoNEBStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount:
        """The exploration plans its first round once the modes are committed: nothing up front."""
        return PLANS_LATER

    def plan(self, table: AutoNEBStage, study: StudyContext, view: PlanView) -> Plan:
        if view.is_open(table.from_) or not view.decided(table.from_):
            return Plan([], open=True, note=f"waiting for the modes of stage {table.from_}")
        modes = view.units(table.from_)
        done = [u for u in modes if view.result(u.id) is not None]  # a mode that failed is left out
        own = {u.params_as(AutoNEBEdgeParams).pair: u for u in view.units()}
        exploration = Exploration(table, view, {seed_of(u): u for u in done}, own)
        if len(done) < 2:
            return Plan([], note=f"{len(done)} mode(s) committed: nothing to connect")
        if not (isinstance(table.explore, str) and table.explore in EXPLORATIONS):
            return self._static(exploration)
        return self._rounds(exploration)

    @staticmethod
    def _static(exploration: Exploration) -> Plan:
        """Every pair of a static strategy, at once."""
        table, by_seed = exploration.table, exploration.by_seed
        minima = list(by_seed)
        fixed = [q for q in static_pairs(table.explore, minima) if q[0] in by_seed and q[1] in by_seed]  # type: ignore[arg-type]
        fixed = fixed[: table.budget] if table.budget else fixed
        running = any(exploration.state_of(q) in WAITING for q in fixed)
        note = exploration.note(str(table.explore)) if not running else exploration.note("pairs")
        return Plan([exploration.edge(q) for q in fixed], open=False, note=note)

    @staticmethod
    def _rounds(exploration: Exploration) -> Plan:
        """The star, then rounds of MST refinement (see the module docstring), replayed from the committed edges."""
        from ...workers.autoneb.exploration import plan_pairs

        table, view, by_seed = exploration.table, exploration.view, exploration.by_seed
        strategy = "star" if table.explore == "to_best" else str(table.explore)
        minima = list(by_seed)
        losses = {s: float(view.result(by_seed[s].id)["final_train_loss"]) for s in minima}  # type: ignore[index]
        total = len(minima) * (len(minima) - 1) // 2
        known: dict[tuple[int, int], float] = {}
        drafts: list[UnitDraft] = []
        rounds = 0
        while True:
            width = total if rounds == 0 or strategy != "mst" else table.parallel_edges
            proposal = plan_pairs(minima, losses, known, (), table.budget, width, strategy, table.similar)
            if not proposal.pairs:
                note = exploration.note(f"{strategy}, {rounds} rounds, closed ({proposal.reason})")
                return Plan(drafts, open=False, note=note)
            drafts += [exploration.edge(q) for q in proposal.pairs]
            states = [exploration.state_of(q) for q in proposal.pairs]
            if any(s in WAITING for s in states):
                return Plan(drafts, open=True, note=exploration.note(f"{strategy} round {rounds + 1}"))
            for q, s in zip(proposal.pairs, states):
                result = view.result(exploration.own[q].id) if s is EdgeState.DONE else None
                known[q] = float(result["saddle_train_loss"]) if result else math.inf  # a failed edge: no path known
            rounds += 1
