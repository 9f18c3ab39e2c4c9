"""Helpers for stages that read the modes of an earlier stage."""

from __future__ import annotations


def seeds_of(stages: dict, name: str, study) -> list[int]:
    """The seeds of mode stage ``name`` (its own `seeds`, or the study's)."""
    params = stages[name].params
    return list(getattr(params, "seeds", None) or study.seeds)
