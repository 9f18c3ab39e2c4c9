"""Linear mode connectivity: loss and accuracy on the straight line between two modes, and its barrier."""

from .params import InterpolateParams, InterpolateStage
from .stage import InterpolateStageKind
from .unit import InterpolateUnit

KINDS = (InterpolateUnit, InterpolateStageKind)

__all__ = ["KINDS", "InterpolateParams", "InterpolateStage", "InterpolateStageKind", "InterpolateUnit"]
