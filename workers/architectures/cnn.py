"""The CNN-W×D family of AutoNEB §4.2 / Table B.1 (``CNNWxD``; ``cnn12x1`` … ``cnn48x3`` take ``image_size``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class CNNWxD(nn.Module):
    """CNN-W×D of AutoNEB §4.2: D blocks of 5×5 conv (W channels, padding 2) – 2×2 max-pool – BatchNorm – ReLU (the
    order of the authors' code), then one hidden FC layer of 256 – BatchNorm1d – ReLU, and ``fc2``. Names:
    ``features.{i}.{conv,bn}``, ``fc1``, ``bn_fc1``, ``fc2``. ``image_size`` sizes ``fc1`` (32 for CIFAR)."""

    def __init__(self, width: int, depth: int, num_classes: int = 10, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        if width < 1 or depth < 1 or image_size >> depth < 1:
            raise ValueError(
                f"CNN width {width}, depth {depth}, image_size {image_size}: need width, depth ≥ 1 and "
                f"image_size ≥ 2**depth"
            )
        blocks = []
        channels = in_channels
        for _ in range(depth):
            block = nn.Module()
            block.conv = nn.Conv2d(channels, width, 5, padding=2)
            block.bn = nn.BatchNorm2d(width)
            blocks.append(block)
            channels = width
        self.features = nn.ModuleList(blocks)
        side = image_size >> depth
        self.fc1 = nn.Linear(width * side * side, 256)
        self.bn_fc1 = nn.BatchNorm1d(256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.features:
            x = F.relu(block.bn(F.max_pool2d(block.conv(x), 2)))
        x = F.relu(self.bn_fc1(self.fc1(x.flatten(1))))
        return self.fc2(x)


def _cnn(width: int, depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Module:
        return CNNWxD(width, depth, num_classes, in_channels, image_size)

    build.__name__ = f"cnn{width}x{depth}"
    build.__doc__ = f"CNN-{width}×{depth} of AutoNEB §4.2 / Table B.1."
    return build
