"""LLPF Table 4's augmentation, batched and seeded: ``Augment`` (random parameters drawn on the CPU, applied on the
device), crops, flips, rotations, and the MNIST and CIFAR recipes."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .catalog import _NORMALIZE


class Augment:
    """A seeded batch augmentation in two halves: ``draw(n, g)`` takes the random parameters of n images from the
    batch's CPU generator (in the order the augmentation uses them), ``apply(x, *params)`` transforms the batch on its
    device. ``augment(x, g)`` is both at once."""

    def __init__(self, draw: Callable[..., tuple[torch.Tensor, ...]], apply: Callable[..., torch.Tensor]):
        self.draw, self.apply = draw, apply

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.apply(x, *self.draw(int(x.shape[0]), g))


def crop_offsets(n: int, padding: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2 * padding + 1, (n, 2), generator=g)


def crop_at(x: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop back to the input size after zero padding, at one offset per sample: one gather for the whole batch (a
    copy of the same elements as slicing sample by sample: the same bytes)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = offsets.to(x.device, non_blocking=True)
    rows = (offsets[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]
    samples = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[samples, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Random crop back to the input size after zero padding, one offset per sample."""
    return crop_at(x, padding, crop_offsets(int(x.shape[0]), padding, g))


def flip_mask(n: int, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def flip_where(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip.to(x.device, non_blocking=True)[:, None, None, None], x.flip(-1), x)


def random_hflip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return flip_where(x, flip_mask(int(x.shape[0]), g, p))


def rotation_theta(n: int, degrees: float, g: torch.Generator) -> torch.Tensor:
    """The affine matrices (n×2×3) of a rotation by a uniform angle in [-degrees, degrees] per sample."""
    angles = (torch.rand(n, generator=g) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    zeros = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)


def rotate_by(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    theta = theta.to(x.device, x.dtype, non_blocking=True)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def random_rotate(x: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    return rotate_by(x, rotation_theta(int(x.shape[0]), degrees, g))


# Normalization is applied at load time and is affine, so rotating/cropping the normalized image with zero fill would
# fill with the mean; MNIST's augmentation fills with the normalized black level instead.
_MNIST_BLACK = (0.0 - _NORMALIZE["mnist"][0][0]) / _NORMALIZE["mnist"][1][0]


def _mnist_draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return rotation_theta(n, 5.0, g), crop_offsets(n, 2, g)


def _mnist_apply(x: torch.Tensor, theta: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    black = _MNIST_BLACK
    x = rotate_by(x - black, theta) + black
    return crop_at(x - black, 2, offsets) + black


_mnist_augment = Augment(_mnist_draw, _mnist_apply)


def _cifar_augment(name: str) -> Augment:
    mean, std = _NORMALIZE[name]
    black = ((-torch.tensor(mean)) / torch.tensor(std)).view(1, -1, 1, 1)
    on_device: dict = {}  # the black level per (device, dtype): moved once, not per batch

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return crop_offsets(n, 4, g), flip_mask(n, g)

    def apply(x: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in on_device:
            on_device[key] = black.to(x)
        b = on_device[key]
        return flip_where(crop_at(x - b, 4, offsets) + b, flip)

    return Augment(draw, apply)
