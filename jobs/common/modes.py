"""Reading the modes of an earlier stage: their seeds, and a mode unit's seed."""

from __future__ import annotations

from ..base import ModeParams, PlannedUnit, StageInfo, StudyContext


def seeds_of(stages: dict[str, StageInfo], name: str, study: StudyContext) -> list[int]:
    """The seeds of mode stage ``name`` (its own `seeds`, or the study's)."""
    params = stages[name].params
    return list(getattr(params, "seeds", None) or study.seeds)


def seed_of(mode: PlannedUnit) -> int:
    """The seed of a mode unit (its params are a ``ModeParams``: train, pretrained, …)."""
    return mode.params_as(ModeParams).seed


def by_seed(modes: list[PlannedUnit]) -> dict[int, PlannedUnit]:
    """Mode units by their seed."""
    return {seed_of(u): u for u in modes}
