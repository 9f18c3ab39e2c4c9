"""The squeeze-and-excitation block (with its swish activation) that EfficientNet and RegNet share."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * x.sigmoid()


class _SE(nn.Module):
    def __init__(self, in_channels: int, se_channels: int, act: Callable = _swish):
        super().__init__()
        self.act = act
        self.se1 = nn.Conv2d(in_channels, se_channels, kernel_size=1, bias=True)
        self.se2 = nn.Conv2d(se_channels, in_channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(x, (1, 1))
        out = self.se2(self.act(self.se1(out))).sigmoid()
        return x * out
