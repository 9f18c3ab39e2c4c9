"""Mobile-sized CNNs: MobileNetV2 and ShuffleNet (g=1) of chenhang98 (``mobilenetv2_cifar``,
``shufflenet_cifar``) and ShuffleNetV2 of kuangliu/pytorch-cifar (``shufflenetv2_cifar``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------- MobileNetV2 (chenhang98)


class _MBv2Block(nn.Module):
    def __init__(self, input_channel: int, output_channel: int, t: int = 6, downsample: bool = False):
        super().__init__()
        self.stride = 2 if downsample else 1
        self.shortcut = (not downsample) and input_channel == output_channel
        c = t * input_channel
        self.conv1 = nn.Conv2d(input_channel, c, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=self.stride, padding=1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, output_channel, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(output_channel)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn1(self.conv1(inputs)))
        x = F.relu6(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return x + inputs if self.shortcut else x


def _chenhang_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()


class MobileNetV2Cifar(nn.Module):
    """chenhang98 MobileNetV2 for CIFAR: ``conv0``/``bn0`` stem (3×3, stride 1), ``bottlenecks.{0..16}``
    (``conv1,bn1,conv2,bn2,conv3,bn3``), ``conv1``/``bn1`` (1×1 to 1280), ``fc``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(32)
        spec = [
            (32, 16, 1, False),
            (16, 24, 6, False),
            (24, 24, 6, False),
            (24, 32, 6, False),
            (32, 32, 6, False),
            (32, 32, 6, False),
            (32, 64, 6, True),
            (64, 64, 6, False),
            (64, 64, 6, False),
            (64, 64, 6, False),
            (64, 96, 6, False),
            (96, 96, 6, False),
            (96, 96, 6, False),
            (96, 160, 6, True),
            (160, 160, 6, False),
            (160, 160, 6, False),
            (160, 320, 6, False),
        ]
        self.bottlenecks = nn.Sequential(*[_MBv2Block(i, o, t, d) for i, o, t, d in spec])
        self.conv1 = nn.Conv2d(320, 1280, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(1280)
        self.fc = nn.Linear(1280, num_classes)
        _chenhang_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn0(self.conv0(x)))
        x = self.bottlenecks(x)
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def mobilenetv2_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """MobileNetV2 for CIFAR as the papers use it (LLPF A.8 / LW Appendix N: chenhang98/mobileNet-v2_cifar10,
    width 1): stride-1 stem, stride-2 only in two bottlenecks (32→16→8 spatial), ReLU6, global average pool."""
    return MobileNetV2Cifar(num_classes, in_channels)


# ----------------------------------------------------------------------------- ShuffleNet (chenhang98, g=1)


def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class _ShuffleIdenUnit(nn.Module):
    def __init__(self, channels: int, g: int):
        super().__init__()
        neck = channels // 4
        self.g = g
        self.gconv1 = nn.Conv2d(channels, neck, groups=g, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(neck)
        self.dwconv = nn.Conv2d(neck, neck, groups=neck, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(neck)
        self.gconv2 = nn.Conv2d(neck, channels, groups=g, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = _channel_shuffle(F.relu(self.bn1(self.gconv1(inputs))), self.g)
        x = self.bn(self.dwconv(x))
        x = self.bn2(self.gconv2(x))
        return F.relu(x + inputs)


class _ShufflePoolUnit(nn.Module):
    def __init__(
        self, input_channel: int, output_channel: int, g: int, first_group: bool = True, downsample: bool = True
    ):
        super().__init__()
        self.downsample, self.g = downsample, g
        neck = output_channel // 4
        self.gconv1 = nn.Conv2d(input_channel, neck, groups=g if first_group else 1, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(neck)
        self.dwconv = nn.Conv2d(
            neck, neck, groups=neck, stride=2 if downsample else 1, kernel_size=3, padding=1, bias=False
        )
        self.bn = nn.BatchNorm2d(neck)
        self.gconv2 = nn.Conv2d(neck, output_channel - input_channel, groups=g, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(output_channel - input_channel)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = _channel_shuffle(F.relu(self.bn1(self.gconv1(inputs))), self.g)
        x = self.bn(self.dwconv(x))
        x = self.bn2(self.gconv2(x))
        shortcut = F.avg_pool2d(inputs, 2) if self.downsample else inputs
        return F.relu(torch.cat((x, shortcut), dim=1))


class ShuffleNetCifar(nn.Module):
    """chenhang98 ShuffleNet for CIFAR: ``conv1``/``bn1`` stem (3×3, stride 1, no max-pool), ``stage2..4``
    (``gconv1,bn1,dwconv,bn,gconv2,bn2``), ``fc``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, g: int = 1, scale_factor: float = 1.0):
        super().__init__()
        self.g = g
        c2 = int(scale_factor * {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}[g])
        c3, c4 = 2 * c2, 4 * c2
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=3, padding=1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.fc = nn.Linear(c4, num_classes)
        self.stage2 = self._stage(24, c2, 3, first_group=False, downsample=False)
        self.stage3 = self._stage(c2, c3, 7)
        self.stage4 = self._stage(c3, c4, 3)
        _chenhang_init(self)

    def _stage(self, cin: int, cout: int, repeat: int, first_group: bool = True, downsample: bool = True):
        return nn.Sequential(
            _ShufflePoolUnit(cin, cout, self.g, first_group, downsample),
            *[_ShuffleIdenUnit(cout, self.g) for _ in range(repeat)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def shufflenet_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The papers' ShuffleNet@CIFAR10 (LLPF A.8 / LW Appendix N: chenhang98/shuffleNet-cifar10, built by the authors
    with ``g=1, scale_factor=1``): grouped 1×1 convs with channel shuffle (ShuffleNet-v1 units), stride-1 stem."""
    return ShuffleNetCifar(num_classes, in_channels, g=1, scale_factor=1.0)


# ------------------------------------------------------------------------------ ShuffleNetV2 (kuangliu)


class _V2Basic(nn.Module):
    def __init__(self, in_channels: int, split_ratio: float = 0.5):
        super().__init__()
        self.split_ratio = split_ratio
        c = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = int(x.size(1) * self.split_ratio)
        x1, x2 = x[:, :c], x[:, c:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return _channel_shuffle(torch.cat([x1, out], 1), 2)


class _V2Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, stride=2, padding=1, groups=in_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.bn1(self.conv1(x))
        out1 = F.relu(self.bn2(self.conv2(out1)))
        out2 = F.relu(self.bn3(self.conv3(x)))
        out2 = self.bn4(self.conv4(out2))
        out2 = F.relu(self.bn5(self.conv5(out2)))
        return _channel_shuffle(torch.cat([out1, out2], 1), 2)


class ShuffleNetV2Cifar(nn.Module):
    """kuangliu ShuffleNetV2: ``conv1``/``bn1`` stem (3×3, stride 1), ``layer1..3`` (a down block then basic
    blocks), ``conv2``/``bn2`` (1×1), ``linear``."""

    CONFIGS = {
        0.5: ((48, 96, 192, 1024), (3, 7, 3)),
        1.0: ((116, 232, 464, 1024), (3, 7, 3)),
        1.5: ((176, 352, 704, 1024), (3, 7, 3)),
        2.0: ((224, 488, 976, 2048), (3, 7, 3)),
    }

    def __init__(self, num_classes: int = 10, in_channels: int = 3, net_size: float = 1.0):
        super().__init__()
        out_channels, num_blocks = self.CONFIGS[net_size]
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self._in = 24
        self.layer1 = self._make_layer(out_channels[0], num_blocks[0])
        self.layer2 = self._make_layer(out_channels[1], num_blocks[1])
        self.layer3 = self._make_layer(out_channels[2], num_blocks[2])
        self.conv2 = nn.Conv2d(out_channels[2], out_channels[3], kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)

    def _make_layer(self, out_channels: int, num_blocks: int) -> nn.Sequential:
        layers = [_V2Down(self._in, out_channels)] + [_V2Basic(out_channels) for _ in range(num_blocks)]
        self._in = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def shufflenetv2_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ShuffleNetV2 1.0× in the kuangliu/pytorch-cifar CIFAR form (stride-1 stem, no max-pool). Not the network of
    the papers' ShuffleNet runs — that is ``shufflenet_cifar``."""
    return ShuffleNetV2Cifar(num_classes, in_channels, net_size=1.0)
