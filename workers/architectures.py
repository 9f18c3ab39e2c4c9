"""CIFAR-sized architectures of the LLPF papers, with the parameter names their recipes' phase patterns use.

Sources, as the papers state them (LLPF A.8, LW Appendix N) and as the authors' code (DFL_torch) builds them:

- ``resnet18_cifar``: torchvision ResNet18 with the CIFAR stem (3×3 conv, stride 1, padding 1; max-pool removed).
- ``cct7_3x1_32``: Compact Convolutional Transformer CCT-7/3x1 for 32×32 (SHI-Labs Compact-Transformers naming).
- ``mobilenetv2_cifar``: chenhang98/mobileNet-v2_cifar10 (LW ref. "Chenhang a").
- ``shufflenet_cifar``: chenhang98/shuffleNet-cifar10 with g=1, scale 1 — what the papers' "ShuffleNet" runs are
  (the authors' ``shufflenet_v2_cifar10`` setup builds exactly this network, which is a ShuffleNet-v1-style design:
  grouped 1×1 convs + channel shuffle).
- ``shufflenetv2_cifar``: ShuffleNetV2 (net size 1.0) in the common kuangliu/pytorch-cifar CIFAR form (stride-1 stem,
  no max-pool), for a true V2.
- AutoNEB §4.2 / Table B.1: ``resnet8/20/32/44/56`` (CIFAR ResNets of He et al.; shortcut option B, the 1×1
  projection the AutoNEB authors' code uses, or ``shortcut="A"``), ``densenet40_12`` (Huang et al.), and the
  CNN-W×D family ``cnn12x1`` … ``cnn48x3`` (these take ``image_size``).
- ``vgg11_cifar``, ``densenet121_cifar``, ``efficientnetb0_cifar``, ``regnetx_200mf_cifar``, ``dla_cifar``:
  kuangliu/pytorch-cifar, as LW Appendix N names them (VGG-11 with BatchNorm, DenseNet121, EfficientNet-B0,
  RegNetX_200MF, DLA).

Every constructor takes ``num_classes`` and ``in_channels``; initialisation follows each source (PyTorch defaults
unless the source re-initialises). Only torch and torchvision are imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "AUTONEB_CNNS",
    "TAKES_IMAGE_SIZE",
    "CNNWxD",
    "CifarResNet",
    "DenseNetPlain",
    "architecture_names",
    "build_architecture",
    "cct7_3x1_32",
    "densenet40_12",
    "densenet121_cifar",
    "dla_cifar",
    "efficientnetb0_cifar",
    "mobilenetv2_cifar",
    "regnetx_200mf_cifar",
    "resnet18_cifar",
    "shufflenet_cifar",
    "shufflenetv2_cifar",
    "vgg11_cifar",
]


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


# ------------------------------------------------------------------------------------------------------ CCT


def _drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``drop_path``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _drop_path(x, self.drop_prob, self.training)


class Tokenizer(nn.Module):
    """CCT convolutional tokenizer: ``conv_layers.{i}.0`` Conv2d (no bias, Kaiming-normal) → ReLU → MaxPool2d."""

    def __init__(
        self,
        kernel_size: int,
        stride: int,
        padding: int,
        pooling_kernel_size: int = 3,
        pooling_stride: int = 2,
        pooling_padding: int = 1,
        n_conv_layers: int = 1,
        n_input_channels: int = 3,
        n_output_channels: int = 64,
        in_planes: int = 64,
    ):
        super().__init__()
        chans = [n_input_channels] + [in_planes] * (n_conv_layers - 1) + [n_output_channels]
        self.conv_layers = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(
                        chans[i], chans[i + 1], kernel_size=kernel_size, stride=stride, padding=padding, bias=False
                    ),
                    nn.ReLU(),
                    nn.MaxPool2d(kernel_size=pooling_kernel_size, stride=pooling_stride, padding=pooling_padding),
                )
                for i in range(n_conv_layers)
            ]
        )
        self.flattener = nn.Flatten(2, 3)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def sequence_length(self, n_channels: int, height: int, width: int) -> int:
        with torch.no_grad():
            return self.forward(torch.zeros(1, n_channels, height, width)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flattener(self.conv_layers(x)).transpose(-2, -1)


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` (Linear, no bias) and ``proj``."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float, projection_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(projection_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class TransformerEncoderLayer(nn.Module):
    """CCT encoder block: ``pre_norm`` → ``self_attn`` (+residual) → ``norm1`` → ``linear1``/GELU/``linear2``
    (+residual)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        attention_dropout: float,
        drop_path_rate: float,
    ):
        super().__init__()
        self.pre_norm = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, nhead, attention_dropout, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        src = src + self.drop_path(self.self_attn(self.pre_norm(src)))
        src = self.norm1(src)
        src2 = self.linear2(self.dropout1(F.gelu(self.linear1(src))))
        return src + self.drop_path(self.dropout2(src2))


class TransformerClassifier(nn.Module):
    """CCT classifier: learnable ``positional_emb``, ``blocks``, ``norm``, sequence pooling ``attention_pool``
    (Linear(d, 1)), ``fc``. Linear weights truncated-normal(0.02), biases 0; LayerNorm 1/0; ``positional_emb``
    truncated-normal(0.2)."""

    def __init__(
        self,
        sequence_length: int,
        embedding_dim: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float,
        num_classes: int,
        dropout: float,
        attention_dropout: float,
        stochastic_depth: float,
    ):
        super().__init__()
        self.attention_pool = nn.Linear(embedding_dim, 1)
        self.positional_emb = nn.Parameter(torch.zeros(1, sequence_length, embedding_dim))
        nn.init.trunc_normal_(self.positional_emb, std=0.2)
        self.dropout = nn.Dropout(p=dropout)
        dpr = [float(x) for x in torch.linspace(0, stochastic_depth, num_layers)]
        self.blocks = nn.ModuleList(
            [
                TransformerEncoderLayer(
                    embedding_dim, num_heads, int(embedding_dim * mlp_ratio), dropout, attention_dropout, dpr[i]
                )
                for i in range(num_layers)
            ]
        )
        self.norm = nn.LayerNorm(embedding_dim)
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.apply(self._init_weight)

    @staticmethod
    def _init_weight(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x + self.positional_emb)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = torch.matmul(F.softmax(self.attention_pool(x), dim=1).transpose(-1, -2), x).squeeze(-2)
        return self.fc(x)


class CCT(nn.Module):
    """Compact Convolutional Transformer: ``tokenizer`` + ``classifier``."""

    def __init__(
        self,
        img_size: int = 32,
        embedding_dim: int = 256,
        n_input_channels: int = 3,
        n_conv_layers: int = 1,
        kernel_size: int = 3,
        stride: int | None = None,
        padding: int | None = None,
        num_layers: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        dropout: float = 0.0,
        attention_dropout: float = 0.1,
        stochastic_depth: float = 0.1,
    ):
        super().__init__()
        stride = stride if stride is not None else max(1, (kernel_size // 2) - 1)
        padding = padding if padding is not None else max(1, kernel_size // 2)
        self.tokenizer = Tokenizer(
            kernel_size,
            stride,
            padding,
            n_conv_layers=n_conv_layers,
            n_input_channels=n_input_channels,
            n_output_channels=embedding_dim,
        )
        seq = self.tokenizer.sequence_length(n_input_channels, img_size, img_size)
        self.classifier = TransformerClassifier(
            seq,
            embedding_dim,
            num_layers,
            num_heads,
            mlp_ratio,
            num_classes,
            dropout,
            attention_dropout,
            stochastic_depth,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.tokenizer(x))


def cct7_3x1_32(
    num_classes: int = 10,
    in_channels: int = 3,
    dropout: float = 0.0,
    attention_dropout: float = 0.1,
    stochastic_depth: float = 0.1,
) -> nn.Module:
    """CCT-7/3x1 for 32×32 inputs (SHI-Labs ``cct_7_3x1_32``): one 3×3 conv tokenizer (stride 1, padding 1, 256
    channels, no bias) + ReLU + max-pool(3, stride 2, padding 1) → 256 tokens; 7 encoder layers, 4 heads, MLP ratio 2,
    embedding 256, learnable positional embedding, sequence pooling. 3,760,139 parameters for 10 classes.

    Dropout defaults are the reference's (``CCT`` defaults, used unchanged by the authors' ``cct7_3x1_cifar10``):
    dropout 0, attention dropout 0.1, stochastic depth 0.1 (linearly 0 → 0.1 over the blocks). They draw from torch's
    global RNG in train mode, so a run is reproducible given that RNG's state; pass zeros for a dropout-free model.
    """
    return CCT(
        img_size=32,
        embedding_dim=256,
        n_input_channels=in_channels,
        n_conv_layers=1,
        kernel_size=3,
        num_layers=7,
        num_heads=4,
        mlp_ratio=2.0,
        num_classes=num_classes,
        dropout=dropout,
        attention_dropout=attention_dropout,
        stochastic_depth=stochastic_depth,
    )


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


# ------------------------------------------------------------------------------------------ VGG11 (kuangliu)


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


# ------------------------------------------------------------------------------- EfficientNet-B0 (kuangliu)


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


# ---------------------------------------------------------------------------------- RegNetX_200MF (kuangliu)


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


# --------------------------------------------------------------------------------------------- DLA (kuangliu)


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


# ------------------------------------------------------------- AutoNEB §4.2: CIFAR ResNets, DenseNet-40-12, CNN-W×D


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


# AutoNEB §4.2 / Table B.1: the CNNs it names
AUTONEB_CNNS = ((12, 1), (24, 1), (36, 1), (48, 1), (96, 1), (48, 2), (48, 3))
# constructors that take the data's image size (their first FC layer depends on it)
TAKES_IMAGE_SIZE = {f"cnn{w}x{d}" for w, d in AUTONEB_CNNS}


# ------------------------------------------------------------------------------------------------- registry

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18_cifar": resnet18_cifar,
    "cct7_3x1_32": cct7_3x1_32,
    "mobilenetv2_cifar": mobilenetv2_cifar,
    "shufflenet_cifar": shufflenet_cifar,
    "shufflenetv2_cifar": shufflenetv2_cifar,
    "vgg11_cifar": vgg11_cifar,
    "densenet121_cifar": densenet121_cifar,
    "efficientnetb0_cifar": efficientnetb0_cifar,
    "regnetx_200mf_cifar": regnetx_200mf_cifar,
    "dla_cifar": dla_cifar,
    **{f"resnet{d}": _cifar_resnet(d) for d in (8, 20, 32, 44, 56)},
    "densenet40_12": densenet40_12,
    **{f"cnn{w}x{d}": _cnn(w, d) for w, d in AUTONEB_CNNS},
}


def architecture_names() -> list[str]:
    return sorted(ARCHITECTURES)


def build_architecture(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs) -> nn.Module:
    """Build a CIFAR-sized architecture by name (``ARCHITECTURES``); extra keyword arguments go to the constructor
    (e.g. ``stochastic_depth=0`` for CCT). Inputs are 32×32 (CCT's positional embedding is sized for 32×32)."""
    try:
        ctor = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(architecture_names())}") from None
    return ctor(num_classes=num_classes, in_channels=in_channels, **kwargs)
