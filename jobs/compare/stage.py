"""Stage kind ``compare``: the paths of several methods between the **same pairs** of modes — the straight line (an
``interpolate`` stage), the LLPF M2M path (an ``m2m`` stage) and the AutoNEB path (an ``autoneb`` stage) — one
``path_eval`` unit per pair and method. The papers' own metrics (LLPF's window loss, the AutoNEB edge's dense
evaluation) stay as their kinds compute them; this stage re-evaluates the stored points of each path alike.

The report (``lowloss report --out``) writes ``<stage>-methods.md``/``.csv``: per pair and method the maximum train
loss on the path, the barrier relative to the path's two ends, the maximum test error, the path length and its ratio
to the straight line, the points evaluated, and the CPU-, GPU- and wall-seconds the producing units spent (their
attempt records in the store; the modes' training, common to all methods, is not counted).
"""

from __future__ import annotations

from typing import Any, Union

from ..autoneb.params import AutoNEBEdgeParams
from ..base import (
    PLANS_LATER,
    Plan,
    PlannedUnit,
    PlanView,
    Ref,
    StageCount,
    StageInfo,
    StageKind,
    StudyContext,
    UnitDraft,
)
from ..interpolate.params import InterpolateParams
from ..llpf.params import M2MPhaseParams
from .params import METHOD_OF_STAGE, METHODS, CompareStage, PathEvalParams

Pair = tuple[int, int]
Inputs = dict[str, Union[str, Ref]]


def linear_paths(units: list[PlannedUnit]) -> dict[Pair, Inputs]:
    return {u.params_as(InterpolateParams).pair: {"a": u.inputs["a"], "b": u.inputs["b"], "line": u.id} for u in units}


def autoneb_paths(units: list[PlannedUnit]) -> dict[Pair, Inputs]:
    return {
        u.params_as(AutoNEBEdgeParams).pair: {"a": u.inputs["a"], "b": u.inputs["b"], "edge": Ref(u.id, "pivots")}
        for u in units
    }


def llpf_paths(units: list[PlannedUnit]) -> dict[Pair, Inputs]:
    """The M2M paths whose every phase is committed (a phase failed: no whole path)."""
    phases: dict[Pair, dict[int, PlannedUnit]] = {}
    for u in units:
        params = u.params_as(M2MPhaseParams)
        phases.setdefault(params.pair, {})[params.phase] = u
    found: dict[Pair, Inputs] = {}
    for pair, by_phase in phases.items():
        first = by_phase.get(1)
        if first is None or len(by_phase) != first.params_as(M2MPhaseParams).phases:
            continue
        found[pair] = {
            "a": first.inputs["p0"],
            "b": first.inputs["dest"],
            **{f"phase{k}": by_phase[k].id for k in sorted(by_phase)},
        }
    return found


PATHS_OF_KIND = {
    "interpolate": ("linear", linear_paths),
    "autoneb_edge": ("autoneb", autoneb_paths),
    "m2m_phase": ("llpf", llpf_paths),
}


class CompareStageKind(StageKind):
    name = "compare"
    Table = CompareStage
    unit_kinds = ("path_eval",)
    needs_input_stage = True
    many_inputs = True

    def validate(
        self, table: CompareStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        seen: dict[str, str] = {}
        for src in self.inputs_of(table):
            kind = stages[src].kind if src in stages else None
            if kind not in METHOD_OF_STAGE:
                why = f"stages of kind interpolate (linear), m2m (LLPF) or autoneb; stage {src!r} is of kind {kind!r}"
                return [("from", src, why)]
            method = METHOD_OF_STAGE[kind]
            if method in seen:
                return [("from", src, f"one stage per method; {seen[method]!r} is already the {method} stage")]
            seen[method] = src
        return []

    def describe(self, table: CompareStage, study: StudyContext) -> list[str]:
        return [
            f"pairs ({table.pairs}) of stages {', '.join(self.inputs_of(table))}, evaluated alike: full train and test "
            f"sets, eval mode, BatchNorm {table.bn}; {table.line_points} points on a straight line, "
            f"{table.points_between} between AutoNEB pivots, {table.llpf_points_between} between stored LLPF points"
        ]

    def count(self, table: CompareStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount:
        """The paths are compared once their stages are decided: nothing up front."""
        return PLANS_LATER

    def plan(self, table: CompareStage, study: StudyContext, view: PlanView) -> Plan:
        sources = self.inputs_of(table)
        for src in sources:
            if view.is_open(src) or not view.decided(src):
                return Plan([], open=True, note=f"waiting for stage {src}")
        paths: dict[str, dict[Pair, Inputs]] = {}
        for src in sources:
            units = [u for u in view.units(src) if view.result(u.id) is not None]
            if units and units[0].kind in PATHS_OF_KIND:
                method, paths_of = PATHS_OF_KIND[units[0].kind]
                paths[method] = paths_of(units)
        drafts = self._drafts(table, paths)
        pairs = len({d.label.split()[0] for d in drafts})
        return Plan(drafts, note=f"{pairs} pair(s) × {len(paths)} method(s), BatchNorm {table.bn}")

    @staticmethod
    def _drafts(table: CompareStage, paths: dict[str, dict[Pair, Inputs]]) -> list[UnitDraft]:
        keys = {m: {tuple(sorted(q)): q for q in found} for m, found in paths.items()}
        common = set.intersection(*(set(k) for k in keys.values())) if keys else set()
        drafts = []
        for method in METHODS:
            if method not in paths:
                continue
            between = {"linear": table.line_points - 2, "autoneb": table.points_between}.get(
                method, table.llpf_points_between
            )
            for key in sorted(keys[method]):
                if table.pairs == "common" and key not in common:
                    continue
                pair = keys[method][key]
                params = PathEvalParams(
                    method=method,  # type: ignore[arg-type]
                    pair=pair,
                    bn=table.bn,
                    points_between=between,
                    eval_batch_size=table.eval_batch_size,
                )
                label = f"pair={key[0]}-{key[1]} {method}"
                drafts.append(UnitDraft("path_eval", params, dict(paths[method][pair]), label))
        return drafts
