"""Every path method on the same pairs, under one evaluation protocol: the straight line, LLPF M2M paths and AutoNEB
paths re-evaluated alike."""

from .params import CompareStage, PathEvalParams
from .stage import CompareStageKind
from .unit import PathEvalUnit

KINDS = (PathEvalUnit, CompareStageKind)

__all__ = ["KINDS", "CompareStage", "CompareStageKind", "PathEvalParams", "PathEvalUnit"]
