"""Published pretrained models as modes (torchvision's weights), e.g. the ImageNet ResNet18 that LLPF Table 2 starts
its model-to-origin path from."""

from .stage import PretrainedParams, PretrainedStage, PretrainedStageKind, PretrainedUnit

KINDS = (PretrainedUnit, PretrainedStageKind)

__all__ = ["KINDS", "PretrainedParams", "PretrainedStage", "PretrainedStageKind", "PretrainedUnit"]
