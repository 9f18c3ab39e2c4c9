"""Stage kind ``interpolate``: one interpolation unit per pair of modes of its input stage."""

from __future__ import annotations

from typing import Any

from ..base import (
    Plan,
    PlanView,
    StageCount,
    StageInfo,
    StageKind,
    StudyContext,
    UnitDraft,
    canonical_without,
)
from ..common.modes import seed_of, seeds_of
from ..common.pairs import STRATEGY_HELP, check_pair_count, check_pairs, count_pairs, is_dynamic, mode_pairs
from .params import InterpolateParams, InterpolateStage


class InterpolateStageKind(StageKind):
    name = "interpolate"
    Table = InterpolateStage
    unit_kinds = ("interpolate",)
    input_output = "final"
    needs_input_stage = True

    def validate(
        self, table: InterpolateStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        problem = check_pairs(table.pairs, seeds_of(stages, table.from_, study))
        return [("pairs", table.pairs, f"{STRATEGY_HELP}; {problem}")] if problem else []

    def describe(self, table: InterpolateStage, study: StudyContext) -> list[str]:
        return [
            f"pairs from stage {table.from_!r}: "
            + ("planned when all modes are done (to_best)" if is_dynamic(table.pairs) else str(table.pairs))
        ]

    def count(self, table: InterpolateStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
        shared = canonical_without(_params(table, (0, 0)), "pair")
        what = f"pairs = {table.pairs!r}"
        return count_pairs(table.pairs, inputs[table.from_], 1, study.max_units, what, "interpolate", shared)

    def plan(self, table: InterpolateStage, study: StudyContext, view: PlanView) -> Plan:
        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        modes = view.units(table.from_)
        check_pair_count(table.pairs, len(modes), 1, study.max_units, f"stage {view.stage}: pairs = {table.pairs!r}")
        pairs = mode_pairs(table.pairs, table.from_, view)
        if pairs is None:
            return Plan([], open=True, note=f"to_best: waiting for the {len(modes)} modes")
        return Plan(
            [
                UnitDraft(
                    "interpolate",
                    _params(table, (seed_of(a), seed_of(b))),
                    {"a": a.id, "b": b.id},
                    f"pair={seed_of(a)}-{seed_of(b)}",
                )
                for a, b in pairs
            ]
        )


def _params(table: InterpolateStage, pair: tuple[int, int]) -> InterpolateParams:
    return InterpolateParams(
        pair=pair,
        points=table.points,
        reestimate_bn=table.reestimate_bn,
        vectorize=table.vectorize if (table.vectorize or 1) > 1 else None,
    )
