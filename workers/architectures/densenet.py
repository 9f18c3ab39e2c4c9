"""DenseNets: DenseNet121 of kuangliu/pytorch-cifar (``densenet121_cifar``) and DenseNet-40-12 of Huang et al.
(``densenet40_12``, AutoNEB §4.2 / Table B.1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------- DenseNet (kuangliu)


class _DenseBottleneck(nn.Module):
    def __init__(self, in_planes: int, growth_rate: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class _DenseTransition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetCifar(nn.Module):
    """kuangliu DenseNet: ``conv1``, ``dense1..4`` (``bn1,conv1,bn2,conv2``), ``trans1..3`` (``bn,conv``), ``bn``,
    ``linear``."""

    def __init__(
        self,
        nblocks=(6, 12, 24, 16),
        growth_rate: int = 32,
        reduction: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        self.growth_rate = growth_rate
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        for i in range(4):
            setattr(self, f"dense{i + 1}", self._dense(planes, nblocks[i]))
            planes += nblocks[i] * growth_rate
            if i < 3:
                out = int(math.floor(planes * reduction))
                setattr(self, f"trans{i + 1}", _DenseTransition(planes, out))
                planes = out
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def _dense(self, in_planes: int, n: int) -> nn.Sequential:
        layers = []
        for _ in range(n):
            layers.append(_DenseBottleneck(in_planes, self.growth_rate))
            in_planes += self.growth_rate
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


def densenet121_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """DenseNet121 for 32×32 (kuangliu ``DenseNet121``, growth 32; the authors' ``densenet121_cifar10``)."""
    return DenseNetCifar((6, 12, 24, 16), 32, 0.5, num_classes, in_channels)


# ------------------------------------------------------------------------------------- AutoNEB §4.2: DenseNet-40-12


class _DenseLayer(nn.Module):
    """DenseNet (Huang et al. 2017) layer without bottleneck: BN–ReLU–3×3 conv to ``growth`` channels, concatenated."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class _DenseTransitionPlain(nn.Module):
    """BN–ReLU–1×1 conv (no compression)–2×2 average pool."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetPlain(nn.Module):
    """DenseNet-L-k for CIFAR (Huang et al. 2017, Table 2 "DenseNet (k = 12), depth 40": 1.0M parameters;
    AutoNEB §4.2): 3×3 conv to 16 channels, three dense blocks of (L−4)/3 layers with growth k, transitions without
    compression, BN–ReLU–global average pool–``fc``. Names: ``conv1``, ``block1..3.{j}.{bn,conv}``,
    ``trans1..2.{bn,conv}``, ``bn``, ``fc``."""

    def __init__(self, depth: int = 40, growth: int = 12, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 3 != 0:
            raise ValueError(f"DenseNet depth {depth}; allowed: 3m+4 (40, 100, ...)")
        per_block = (depth - 4) // 3
        channels = 16
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        for b in range(1, 4):
            layers = []
            for _ in range(per_block):
                layers.append(_DenseLayer(channels, growth))
                channels += growth
            setattr(self, f"block{b}", nn.Sequential(*layers))
            if b < 3:
                setattr(self, f"trans{b}", _DenseTransitionPlain(channels))
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trans1(self.block1(self.conv1(x)))
        out = self.trans2(self.block2(out))
        out = F.relu(self.bn(self.block3(out)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def densenet40_12(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """DenseNet-40-12 (AutoNEB §4.2, Table B.1; Huang et al. 2017: 1.0M parameters)."""
    return DenseNetPlain(40, 12, num_classes, in_channels)
