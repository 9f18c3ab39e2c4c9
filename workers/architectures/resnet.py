"""ResNets: torchvision's ResNet18 with the CIFAR stem (``resnet18_cifar``, LLPF A.8) and the CIFAR ResNets of He
et al. that AutoNEB §4.2 / Table B.1 uses (``resnet8/20/32/44/56``, ``CifarResNet``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------------------- ResNet18


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet18 (names ``conv1``, ``bn1``, ``layer1..4.{0,1}.{conv1,bn1,conv2,bn2,downsample.0/1}``,
    ``fc``) with the CIFAR stem of LLPF A.8: ``conv1`` is a 3×3 conv, stride 1, padding 1, no bias, and the max-pool
    is an ``Identity``. As in the authors' code the new ``conv1`` keeps PyTorch's default Conv2d initialisation.
    11,173,962 parameters for 10 classes."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


# -------------------------------------------------------------------------------------- AutoNEB §4.2: CIFAR ResNets


class _CifarBasicBlock(nn.Module):
    """He et al. (2016) §4.2 basic block: 3×3 conv–BN–ReLU–3×3 conv–BN, + shortcut, ReLU. Shortcut where the shape
    changes: option ``A`` (stride-2 subsampling + zero-padded channels, no parameters) or ``B`` (1×1 conv + BN)."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.option_a = None
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.option_a = (stride, planes - in_planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.option_a is not None:
            stride, extra = self.option_a
            short = x[:, :, ::stride, ::stride]
            short = F.pad(short, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        else:
            short = self.shortcut(x)
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016 §4.2; AutoNEB §4.2 ResNet-20/32/44/56): 3×3 conv 16 – BN – ReLU,
    three stages of n basic blocks with 16/32/64 channels (stride 2 at the start of stages 2 and 3), global average
    pool, ``fc``. Names: ``conv1``, ``bn1``, ``layer1..3.{j}.{conv1,bn1,conv2,bn2,shortcut.0/1}``, ``fc``. Convs are
    Kaiming-normal initialised (He et al.), BN weight 1 / bias 0, ``fc`` PyTorch default."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "B"):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth {depth}; allowed: 6n+2 (8, 20, 32, 44, 56, 110, ...)")
        if shortcut not in ("A", "B"):
            raise ValueError(f"CIFAR ResNet shortcut {shortcut!r}; allowed: A, B")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        for stage, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for j in range(n):
                blocks.append(_CifarBasicBlock(planes_in, planes, stride if j == 0 else 1, shortcut))
                planes_in = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, in_channels: int = 3, shortcut: str = "B") -> nn.Module:
        return CifarResNet(depth, num_classes, in_channels, shortcut)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = (
        f"ResNet-{depth} for CIFAR (AutoNEB §4.2, He et al. §4.2); shortcut ``B`` (1×1 projection) as "
        "the AutoNEB authors' code builds it, ``A`` (zero padding) as He et al.'s CIFAR networks."
    )
    return build
