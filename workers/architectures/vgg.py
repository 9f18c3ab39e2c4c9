"""VGG-11 with BatchNorm for CIFAR (kuangliu/pytorch-cifar; ``vgg11_cifar``)."""

from __future__ import annotations

import torch
from torch import nn


class VGGCifar(nn.Module):
    """kuangliu VGG with BatchNorm: ``features.{i}`` (Conv2d 3×3 pad 1, BatchNorm2d, ReLU; MaxPool2d), ``classifier``
    (Linear(512, classes))."""

    CFG: dict[str, list[int | str]] = {"VGG11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]}

    def __init__(self, name: str = "VGG11", num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in self.CFG[name]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def vgg11_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """VGG-11 with BatchNorm for 32×32 (kuangliu ``VGG('VGG11')``, LW Appendix N)."""
    return VGGCifar("VGG11", num_classes, in_channels)
