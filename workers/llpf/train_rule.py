"""Train^r (LLPF Alg. 1 l.7): the stop rule ``TrainUntil`` and ``train_r``, which trains only a phase's parameters."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class TrainUntil:
    """LLPF Alg. 1 l.7 ``Train^r`` stop rule (Table 1 "Train round r").

    Either exactly ``rounds`` SGD steps (LeNet5: r = 5), or "train until loss < threshold or r > max_rounds" where the
    loss is the rolling mean of the last ``min_rounds`` batch losses (Table 1 footnote b: "rolling average with a
    window size of 10") and at least ``min_rounds`` steps are taken — the reference's
    ``MovingAverage(train_for_min_rounds)`` with its ``train_until_loss``/``train_for_max_rounds``. The threshold
    test is ``≤`` (reference); ``max_rounds`` is the largest number of steps taken.
    """

    rounds: int | None = None
    threshold: float | None = None
    min_rounds: int = 10
    max_rounds: int | None = None

    def __post_init__(self):
        if self.min_rounds < 1:
            raise ValueError("min_rounds (the rolling window) must be ≥ 1")
        if self.rounds is not None:
            if self.threshold is not None:
                raise ValueError("give either rounds or threshold (with max_rounds), not both")
            if self.rounds < 1:
                raise ValueError("rounds must be ≥ 1")
        else:
            if self.threshold is None:
                raise ValueError("give rounds, or threshold with max_rounds")
            if self.max_rounds is None or self.max_rounds < 1:
                raise ValueError("a loss threshold needs max_rounds ≥ 1 (the loop must be bounded)")
            if self.min_rounds > self.max_rounds:
                raise ValueError("min_rounds > max_rounds: the threshold could never end training")


@dataclass
class TrainResult:
    """What ``train_r`` did: per-step batch losses, the rolling loss at exit (mean of the last ``min_rounds``
    losses), the number of steps, and why it stopped (``rounds``, ``threshold``, ``max_rounds``, ``nonfinite``)."""

    losses: list[float]
    rolling_loss: float
    steps: int
    stopped_by: str


def _batch_source(next_batch) -> Callable[[], Any]:
    if callable(next_batch) and not hasattr(next_batch, "__next__"):
        return next_batch
    it = next_batch if hasattr(next_batch, "__next__") else iter(next_batch)
    return lambda: next(it)


def train_r(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch,
    loss_fn: Callable,
    rounds: int | None = None,
    threshold: float | None = None,
    min_rounds: int = 10,
    max_rounds: int | None = None,
) -> TrainResult:
    """LLPF Alg. 1 l.7 (Alg. 2 l.8): Train^r(M2, x, B).

    ``next_batch`` is a zero-argument callable or an iterator yielding ``(inputs, targets)`` already on the model's
    device; the caller owns the data order (determinism) — nothing here reads files. ``loss_fn(outputs, targets)``
    returns the scalar loss. See ``TrainUntil`` for the stop rule.

    Only the optimizer's parameters are updated: for the duration of the call every other parameter of the model has
    ``requires_grad`` switched off (and restored after), so it receives no gradient and the backward pass skips its
    weight gradient. Build the optimizer over the phase's parameters only (``phase_optimizer``) and the tensors
    outside the phase stay bit-for-bit unchanged — except BatchNorm running statistics, which every forward pass in
    train mode updates (see ``llpf_m2m_iteration``). The model runs in train mode and gets its previous mode back.
    A fixed ``rounds`` run synchronises with the host once at the end; a threshold run once per step (the stop test
    needs the value) and stops at the first non-finite loss.
    """
    until = TrainUntil(rounds, threshold, min_rounds, max_rounds)
    fetch = _batch_source(next_batch)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    frozen = [p for p in model.parameters() if id(p) not in held and p.requires_grad]
    was_training = model.training
    for p in frozen:
        p.requires_grad_(False)
    model.train()
    losses: list[float] = []
    pending: list[torch.Tensor] = []
    window: deque[float] = deque(maxlen=until.min_rounds)
    steps, stopped_by = 0, ""
    try:
        while True:
            try:
                x, y = fetch()
            except StopIteration:
                raise RuntimeError(f"the batch source ran out after {steps} steps") from None
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            if until.rounds is not None:
                pending.append(loss.detach())
                if steps >= until.rounds:
                    stopped_by = "rounds"
                    break
                continue
            value = float(loss.detach())
            losses.append(value)
            window.append(value)
            if not math.isfinite(value):
                stopped_by = "nonfinite"
                break
            if (
                until.threshold is not None
                and steps >= until.min_rounds
                and sum(window) / len(window) <= until.threshold
            ):
                stopped_by = "threshold"
                break
            if until.max_rounds is not None and steps >= until.max_rounds:
                stopped_by = "max_rounds"
                break
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    if pending:
        losses = torch.stack(pending).to(torch.float64).tolist()
    tail = losses[-until.min_rounds :]
    return TrainResult(losses=losses, rolling_loss=sum(tail) / len(tail), steps=steps, stopped_by=stopped_by)
