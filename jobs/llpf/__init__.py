"""LLPF (Layer-wise Linear Path Finding): model-to-model paths in layer phases (LLPF Alg. 1) and model-to-origin
paths (Alg. 2) between the modes of a study, with their verdicts (LLPF §4)."""

from .params import M2MPhaseParams, M2MStage, M2OParams, M2OStage, PhaseSpec
from .stages import M2MStageKind, M2OStageKind
from .units import M2MPhaseUnit, M2OUnit

KINDS = (M2MPhaseUnit, M2OUnit, M2MStageKind, M2OStageKind)

__all__ = [
    "KINDS",
    "M2MPhaseParams",
    "M2MPhaseUnit",
    "M2MStage",
    "M2MStageKind",
    "M2OParams",
    "M2OStage",
    "M2OStageKind",
    "M2OUnit",
    "PhaseSpec",
]
