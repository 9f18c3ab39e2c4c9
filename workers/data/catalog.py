"""The datasets by name: ``DATASETS``, the shape each has as the models see it, which are embedded (need no data
root), and LLPF Table 4's normalization constants with the normalization applied at load time."""

from __future__ import annotations

import torch

DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "cifar100", "imagefolder")
# (in_channels, image_size, num_classes) of each dataset as the models see it
DATASET_SHAPES = {
    "digits": (1, 8, 10),
    "mnist5k": (1, 28, 10),
    "mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "imagefolder": (3, 224, 1000),
}
EMBEDDED_DATASETS = ("digits", "mnist5k")  # need no data root


# Table 4 of LLPF: normalization constants.
_NORMALIZE = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.491, 0.482, 0.446), (0.247, 0.243, 0.262)),
    "cifar100": ((0.507, 0.487, 0.441), (0.268, 0.257, 0.276)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    mean, std = _NORMALIZE[name]
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
