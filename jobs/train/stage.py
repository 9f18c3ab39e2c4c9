"""Stage kind ``train``: one train unit per seed (or, with ``vectorize = K``, groups of K seeds trained together)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..base import (
    PlanView,
    Ref,
    SimpleStage,
    StageCount,
    StageInfo,
    StudyContext,
    UnitDraft,
    canonical_without,
    count_key,
)
from ..common.running import mode_data_problem
from .params import MEMBER_OUTPUT, TrainParams, TrainStage


class TrainStageKind(SimpleStage):
    name = "train"
    Table = TrainStage
    unit_kinds = ("train",)

    def validate(
        self, table: TrainStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        seeds = table.seeds
        if seeds is not None and any(s < 0 for s in seeds):
            return [("seeds", seeds, f"seeds are integers ≥ 0 ({min(seeds)} is not)")]
        if seeds is not None and len(set(seeds)) != len(seeds):
            dup = sorted(s for s, n in Counter(seeds).items() if n > 1)
            return [("seeds", seeds, f"distinct seeds; {dup} given twice")]
        if (table.vectorize or 1) > 1 and study.train.checkpoint_epochs:
            why = (
                "not with train.checkpoint_epochs (a vectorized group stores no epoch checkpoints); "
                "leave vectorize unset for a study whose landscape centres are training checkpoints"
            )
            return [("vectorize", table.vectorize, why)]
        return []

    def count(self, table: TrainStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount:
        """One unit per seed, vectorized or not; the units of one recipe share a key."""
        seeds = tuple(table.seeds) if table.seeds is not None else study.seeds
        k = table.vectorize or 1
        vectorize = k if k > 1 else None
        params = TrainParams(seed=0, model=study.model, data=study.data, recipe=study.train, vectorize=vectorize)
        return StageCount(((count_key("train", canonical_without(params, "seed")), len(seeds)),), seeds=seeds)

    def drafts(self, table: TrainStage, study: StudyContext, view: PlanView) -> list[UnitDraft]:
        seeds = table.seeds if table.seeds is not None else list(study.seeds)

        def params(seed: int, vectorize: int | None = None, group: list[int] | None = None) -> TrainParams:
            return TrainParams(
                seed=seed, model=study.model, data=study.data, recipe=study.train, vectorize=vectorize, group=group
            )

        k = table.vectorize or 1
        if k == 1:
            return [UnitDraft("train", params(s), {}, f"seed={s}") for s in seeds]
        drafts = []
        for first in range(0, len(seeds), k):
            group = seeds[first : first + k]
            leader = UnitDraft("train", params(group[0], k, group), {}, f"seed={group[0]}")
            drafts.append(leader)
            for s in group[1:]:
                member = Ref(leader, MEMBER_OUTPUT.format(seed=s))
                drafts.append(UnitDraft("train", params(s, k), {"group": member}, f"seed={s}"))
        return drafts

    def check_data(self, study: StudyContext, data_root: str | None) -> str | None:
        return mode_data_problem(study.data, data_root)
