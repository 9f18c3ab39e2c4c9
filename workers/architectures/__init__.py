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

One module per family: ``resnet``, ``cct``, ``mobile`` (MobileNetV2, ShuffleNet, ShuffleNetV2), ``vgg``, ``densenet``,
``efficientnet``, ``regnet`` (both with ``squeeze_excite``), ``dla``, ``cnn`` (CNN-W×D); this package holds the
registry (``ARCHITECTURES``, ``build_architecture``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cct import cct7_3x1_32
from .cnn import CNNWxD, _cnn
from .densenet import DenseNetPlain, densenet40_12, densenet121_cifar
from .dla import dla_cifar
from .efficientnet import efficientnetb0_cifar
from .mobile import mobilenetv2_cifar, shufflenet_cifar, shufflenetv2_cifar
from .regnet import regnetx_200mf_cifar
from .resnet import CifarResNet, _cifar_resnet, resnet18_cifar
from .vgg import vgg11_cifar

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
