"""AutoNEB (Draxler et al., "Essentially No Barriers in Neural Network Energy Landscape", ICML 2018): edges between
pairs of minima (Alg. 1–2) and the minimum-spanning-tree exploration of many minima (Alg. 3); the authors' settings
are in ``shared/reference/autoneb-settings.md``."""

from .edge import AutoNEBEdgeUnit
from .params import AutoNEBEdgeParams, AutoNEBStage, CycleSpec
from .stage import AutoNEBStageKind

KINDS = (AutoNEBEdgeUnit, AutoNEBStageKind)

__all__ = ["KINDS", "AutoNEBEdgeParams", "AutoNEBEdgeUnit", "AutoNEBStage", "AutoNEBStageKind", "CycleSpec"]
