"""DLA (Deep Layer Aggregation) for CIFAR (kuangliu/pytorch-cifar; ``dla_cifar``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _DLABasic(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _DLARoot(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=1, padding=(kernel_size - 1) // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return F.relu(self.bn(self.conv(torch.cat(xs, 1))))


class _DLATree(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, level: int = 1, stride: int = 1):
        super().__init__()
        self.level = level
        if level == 1:
            self.root = _DLARoot(2 * out_channels, out_channels)
            self.left_node = _DLABasic(in_channels, out_channels, stride=stride)
            self.right_node = _DLABasic(out_channels, out_channels, stride=1)
        else:
            self.root = _DLARoot((level + 2) * out_channels, out_channels)
            for i in reversed(range(1, level)):
                setattr(self, f"level_{i}", _DLATree(in_channels, out_channels, level=i, stride=stride))
            self.prev_root = _DLABasic(in_channels, out_channels, stride=stride)
            self.left_node = _DLABasic(out_channels, out_channels, stride=1)
            self.right_node = _DLABasic(out_channels, out_channels, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [self.prev_root(x)] if self.level > 1 else []
        for i in reversed(range(1, self.level)):
            x = getattr(self, f"level_{i}")(x)
            xs.append(x)
        x = self.left_node(x)
        xs.append(x)
        x = self.right_node(x)
        xs.append(x)
        return self.root(xs)


class DLACifar(nn.Module):
    """kuangliu DLA: ``base``, ``layer1``, ``layer2`` (conv-bn-relu), ``layer3..6`` (trees with ``root``,
    ``left_node``, ``right_node``, ``prev_root``, ``level_i``), ``linear``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()

        def cbr(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            )

        self.base = cbr(in_channels, 16)
        self.layer1 = cbr(16, 16)
        self.layer2 = cbr(16, 32)
        self.layer3 = _DLATree(32, 64, level=1, stride=1)
        self.layer4 = _DLATree(64, 128, level=2, stride=2)
        self.layer5 = _DLATree(128, 256, level=2, stride=2)
        self.layer6 = _DLATree(256, 512, level=1, stride=2)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer2(self.layer1(self.base(x)))
        out = self.layer6(self.layer5(self.layer4(self.layer3(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def dla_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """DLA for 32×32 (kuangliu ``DLA``; the authors' ``dla_cifar``, LW Table 4 FDF recipe)."""
    return DLACifar(num_classes, in_channels)
