"""A phase's trainable parameters and its SGD optimizer (LLPF Alg. 1 l.7), holding only the phase's parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def phase_parameters(model: nn.Module, names: Iterable[str]) -> list[tuple[str, nn.Parameter]]:
    """LLPF Alg. 1 l.7 (what Train^r may update): the ``(name, Parameter)`` pairs of ``names`` that are parameters.

    Buffers such as BatchNorm running statistics are skipped: ``move_state`` moves them, no optimizer trains them."""
    wanted = set(names)
    return [(n, p) for n, p in model.named_parameters() if n in wanted]


def phase_optimizer(
    model: nn.Module,
    names: Iterable[str],
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    per_tensor_groups: bool = False,
) -> torch.optim.SGD:
    """LLPF Alg. 1 l.7 / Table 1 "SGD(η=0.001, β=0)": the SGD optimizer of a phase, holding ONLY the phase's
    parameters.

    Holding only the phase's parameters is what keeps every other parameter bit-for-bit unchanged by ``train_r``:
    weight decay and momentum of an optimizer that held them would move them even with a zero gradient.
    ``per_tensor_groups=True`` gives one param group per tensor (with a ``name`` key), which Algorithm 2's per-tensor
    learning rate (``llpf_m2o_iteration``) requires.
    """
    pairs = phase_parameters(model, names)
    if not pairs:
        raise ValueError("the phase holds no trainable parameter (only buffers?)")
    if per_tensor_groups:
        groups: list[dict[str, Any]] = [{"params": [p], "lr": lr, "name": n} for n, p in pairs]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.SGD([p for _, p in pairs], lr=lr, momentum=momentum, weight_decay=weight_decay)
