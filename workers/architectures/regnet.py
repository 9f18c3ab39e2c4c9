"""RegNetX_200MF for CIFAR (kuangliu/pytorch-cifar; ``regnetx_200mf_cifar``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .squeeze_excite import _SE


class _RegBlock(nn.Module):
    def __init__(self, w_in: int, w_out: int, stride: int, group_width: int, bottleneck_ratio: float, se_ratio: float):
        super().__init__()
        w_b = int(round(w_out * bottleneck_ratio))
        self.conv1 = nn.Conv2d(w_in, w_b, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w_b)
        self.conv2 = nn.Conv2d(w_b, w_b, kernel_size=3, stride=stride, padding=1, groups=w_b // group_width, bias=False)
        self.bn2 = nn.BatchNorm2d(w_b)
        self.with_se = se_ratio > 0
        if self.with_se:
            self.se = _SE(w_b, int(round(w_in * se_ratio)), act=F.relu)
        self.conv3 = nn.Conv2d(w_b, w_out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(w_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or w_in != w_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(w_in, w_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(w_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        if self.with_se:
            out = self.se(out)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class RegNetCifar(nn.Module):
    """kuangliu RegNet: ``conv1``/``bn1`` stem (3×3, stride 1, 64 channels), ``layer1..4``
    (``conv1,bn1,conv2,bn2,conv3,bn3,shortcut.0/1``), ``linear``."""

    X_200MF = {
        "depths": [1, 1, 4, 7],
        "widths": [24, 56, 152, 368],
        "strides": [1, 1, 2, 2],
        "group_width": 8,
        "bottleneck_ratio": 1,
        "se_ratio": 0,
    }

    def __init__(self, cfg: dict, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        w_in = 64
        for idx in range(4):
            blocks = []
            for i in range(cfg["depths"][idx]):
                blocks.append(
                    _RegBlock(
                        w_in,
                        cfg["widths"][idx],
                        cfg["strides"][idx] if i == 0 else 1,
                        cfg["group_width"],
                        cfg["bottleneck_ratio"],
                        cfg["se_ratio"],
                    )
                )
                w_in = cfg["widths"][idx]
            setattr(self, f"layer{idx + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(cfg["widths"][-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def regnetx_200mf_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """RegNetX_200MF for 32×32 (kuangliu ``RegNetX_200MF``, LW Appendix N)."""
    return RegNetCifar(RegNetCifar.X_200MF, num_classes, in_channels)
