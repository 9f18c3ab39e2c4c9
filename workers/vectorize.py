"""K models of one architecture trained as one batched model (``torch.func.functional_call`` + ``vmap``).

``StackedModels`` holds the K models' parameters and buffers stacked along a new leading dimension and runs the
architecture once, vectorized over that dimension: each model sees its own batch (``x`` of shape K×B×…), its own
parameters and its own BatchNorm statistics (stacked buffers, updated in place through ``vmap``). A plain optimizer
over the stacked tensors is K independent optimizers (SGD, Adam and AdamW act element by element), so one step of the
stacked model is one step of each of the K models — the same arithmetic, rounded by batched kernels.

It has the small part of the ``nn.Module`` interface the training loop and its checkpoints use: ``parameters()``,
``state_dict()``/``load_state_dict()`` (the stacked tensors under the module's own names), ``train()``/``eval()``;
``member_state(i)`` is model i's own state dict, as the plain model would have it.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class StackedModels:
    """K models of one architecture, stacked (see the module docstring)."""

    def __init__(self, models: list[nn.Module]):
        if not models:
            raise ValueError("StackedModels needs at least one model")
        self.k = len(models)
        self.names = list(models[0].state_dict().keys())  # the plain model's state order
        params, buffers = stack_module_state(models)
        self.params: dict[str, torch.Tensor] = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        self.buffers: dict[str, torch.Tensor] = {n: b.detach().clone() for n, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")  # the architecture only; its tensors come from the stacks
        self.training = True

        def one(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self._batched = vmap(one, in_dims=(0, 0, 0), randomness="different")  # each model its own input
        self._shared = vmap(one, in_dims=(0, 0, None), randomness="different")  # every model the same input

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def train(self, mode: bool = True) -> "StackedModels":
        self.base.train(mode)
        self.training = mode
        return self

    def eval(self) -> "StackedModels":
        return self.train(False)

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Outputs K×B×… of the K models on ``x``: K×B×… (one batch per model), or B×… given to all (``shared``)."""
        return (self._shared if shared else self._batched)(self.params, self.buffers, x)

    def _tensor(self, name: str) -> torch.Tensor:
        return self.params[name] if name in self.params else self.buffers[name]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stacked tensors (K×… each) under the plain model's names."""
        return {n: self._tensor(n).detach() for n in self.names}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"stacked state lacks {', '.join(missing[:5])}")
        with torch.no_grad():
            for n in self.names:
                self._tensor(n).copy_(state[n])

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Model i's own state dict (copies, contiguous), keyed and ordered like the plain model's."""
        return {n: self._tensor(n)[i].detach().clone().contiguous() for n in self.names}

    def to(self, device) -> "StackedModels":
        with torch.no_grad():
            self.params = {n: p.detach().to(device).requires_grad_(True) for n, p in self.params.items()}
            self.buffers = {n: b.to(device) for n, b in self.buffers.items()}
        return self


def stacked_train_step(
    model: StackedModels, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, autocast=None
) -> torch.Tensor:
    """One optimizer step of each of the K models on its own batch (x: K×B×…, y: K×B) in train mode; returns the K
    batch losses (no host sync). The summed loss has each model's mean batch loss as its part, so each model's
    gradient is the plain model's gradient."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast() if autocast is not None else contextlib.nullcontext():
        out = model(x)
        k, b = y.shape
        losses = F.cross_entropy(out.flatten(0, 1).float(), y.flatten(), reduction="none").view(k, b).mean(1)
    losses.sum().backward()
    optimizer.step()
    return losses.detach()


@torch.no_grad()
def stacked_evaluate(model: StackedModels, batches, autocast=None) -> list[tuple[float, float]]:
    """Mean cross-entropy loss and accuracy of each of the K models over the same batches, in eval mode."""
    model.eval()
    total, correct, n = None, None, 0
    for xb, yb in batches:
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = model(xb, shared=True).float()  # K×B×C
        k = out.shape[0]
        loss = F.cross_entropy(out.flatten(0, 1), yb.repeat(k), reduction="none").view(k, -1).double().sum(1)
        hits = (out.argmax(-1) == yb).sum(1)
        total = loss if total is None else total + loss
        correct = hits if correct is None else correct + hits
        n += int(yb.shape[0])
    assert total is not None and correct is not None, "evaluation over no batches"
    losses, accs = total.cpu().tolist(), correct.cpu().tolist()
    return [(float(lo) / n, float(c) / n) for lo, c in zip(losses, accs)]
