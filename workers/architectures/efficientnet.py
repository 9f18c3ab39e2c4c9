"""EfficientNet-B0 for CIFAR (kuangliu/pytorch-cifar; ``efficientnetb0_cifar``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .squeeze_excite import _SE, _swish


class _EffBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        se_ratio: float,
        drop_rate: float,
    ):
        super().__init__()
        self.drop_rate, self.expand_ratio = drop_rate, expand_ratio
        channels = expand_ratio * in_channels
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(
            channels,
            channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=1 if kernel_size == 3 else 2,
            groups=channels,
            bias=False,
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = _SE(channels, int(in_channels * se_ratio))
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand_ratio == 1 else _swish(self.bn1(self.conv1(x)))
        out = _swish(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.se(out)))
        if self.has_skip:
            if self.training and self.drop_rate > 0:
                keep = 1.0 - self.drop_rate
                mask = torch.empty(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device).bernoulli_(keep)
                out = out / keep * mask
            out = out + x
        return out


class EfficientNetCifar(nn.Module):
    """kuangliu EfficientNet: ``conv1``/``bn1`` stem (3×3, stride 1), ``layers.{i}``
    (``conv1,bn1,conv2,bn2,se.se1,se.se2,conv3,bn3``), ``linear``."""

    B0 = {
        "num_blocks": [1, 2, 2, 3, 3, 4, 1],
        "expansion": [1, 6, 6, 6, 6, 6, 6],
        "out_channels": [16, 24, 40, 80, 112, 192, 320],
        "kernel_size": [3, 3, 5, 3, 5, 5, 3],
        "stride": [1, 2, 2, 2, 1, 2, 1],
        "dropout_rate": 0.2,
        "drop_connect_rate": 0.2,
    }

    def __init__(self, cfg: dict, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        layers = []
        c, b, total = 32, 0, sum(cfg["num_blocks"])
        for exp, out, n, k, s in zip(
            cfg["expansion"], cfg["out_channels"], cfg["num_blocks"], cfg["kernel_size"], cfg["stride"]
        ):
            for stride in [s] + [1] * (n - 1):
                # kuangliu never increments the block counter, so every block's drop-connect rate is 0
                layers.append(_EffBlock(c, out, k, stride, exp, 0.25, cfg["drop_connect_rate"] * b / total))
                c = out
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cfg["out_channels"][-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _swish(self.bn1(self.conv1(x)))
        out = F.adaptive_avg_pool2d(self.layers(out), 1).flatten(1)
        if self.training and self.cfg["dropout_rate"] > 0:
            out = F.dropout(out, p=self.cfg["dropout_rate"])
        return self.linear(out)


def efficientnetb0_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """EfficientNet-B0 for 32×32 (kuangliu ``EfficientNetB0``): stride-1 stem, classifier dropout 0.2 in train mode
    (torch's global RNG), drop-connect effectively 0 as in the source."""
    return EfficientNetCifar(EfficientNetCifar.B0, num_classes, in_channels)
