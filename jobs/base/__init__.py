"""The interface of the middle floor: what a kind is (``kinds``), what it declares for reports (``declarations``),
what its plan works with (``planning``), what a running unit may do (``context``), the study-wide sections it reads
(``study``), and the strict params every table and unit is validated into (``params``, ``strict``)."""

from .context import UnitContext, point_key, split_point_key
from .declarations import Figure, Metric, Verdict
from .kinds import Resources, SimpleStage, StageInfo, StageKind, UnitKind
from .params import StageParams, UnitParams
from .planning import (
    PLANS_LATER,
    ExpansionTooLarge,
    Plan,
    PlannedUnit,
    PlanView,
    Ref,
    StageCount,
    UnitDraft,
    canonical_without,
    count_key,
)
from .strict import SILENT_CONVERSION, StrictScalars
from .study import DataParams, ModelParams, ModeParams, StudyContext, TrainRecipe

__all__ = [
    "SILENT_CONVERSION",
    "PLANS_LATER",
    "DataParams",
    "ExpansionTooLarge",
    "Figure",
    "Metric",
    "ModeParams",
    "ModelParams",
    "Plan",
    "PlanView",
    "PlannedUnit",
    "Ref",
    "Resources",
    "SimpleStage",
    "StageCount",
    "StageInfo",
    "StageKind",
    "StageParams",
    "StrictScalars",
    "StudyContext",
    "TrainRecipe",
    "UnitContext",
    "UnitDraft",
    "UnitKind",
    "UnitParams",
    "Verdict",
    "canonical_without",
    "count_key",
    "point_key",
    "split_point_key",
]
