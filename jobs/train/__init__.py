"""Training modes: one seed of a model trained to a mode by the study's ``[train]`` recipe (the shape of LLPF
Table 3), and many seeds at once as one batched model (``vectorize``)."""

from .params import TrainParams, TrainStage
from .stage import TrainStageKind
from .unit import TrainUnit

KINDS = (TrainUnit, TrainStageKind)

__all__ = ["KINDS", "TrainParams", "TrainStage", "TrainStageKind", "TrainUnit"]
