"""Linear interpolation between two modes and the loss barrier of linear mode connectivity."""

from __future__ import annotations

import torch
from torch import nn

from .data import eval_batches


def interpolate_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1-α)·a + α·b for every floating tensor; integer buffers (``num_batches_tracked``) are taken from a."""
    out = {}
    for name, ta in a.items():
        tb = b[name]
        out[name] = torch.lerp(ta, tb, alpha) if ta.is_floating_point() else ta.clone()
    return out


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, x, batch_size: int = 256) -> None:
    """Recompute BatchNorm running statistics over one pass of ``x`` (train mode, no grad): the running mean becomes
    the exact mean over ``x`` and the running variance the batch-size-weighted mean of the batch variances. ``x`` is
    a tensor of inputs or an iterable of (inputs, labels) batches."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
    model.train()
    seen = 0
    batches = eval_batches(x, x, batch_size) if isinstance(x, torch.Tensor) else x
    for xb, _ in batches:
        n = int(xb.shape[0])
        for m in bns:
            m.momentum = n / (seen + n)  # running average weighted by batch size
        model(xb)
        seen += n
    for m, momentum in zip(bns, saved):
        m.momentum = momentum


def barrier(losses: list[float], alphas: list[float]) -> tuple[float, int]:
    """Loss barrier: max over α of L(α) − [(1−α)·L(0) + α·L(1)]; returns (height, index of the maximum)."""
    l0, l1 = losses[0], losses[-1]
    gaps = [loss - ((1 - a) * l0 + a * l1) for loss, a in zip(losses, alphas)]
    idx = max(range(len(gaps)), key=lambda i: gaps[i])
    return gaps[idx], idx
