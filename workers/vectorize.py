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


@torch.no_grad()
def stacked_reestimate_batchnorm(model: StackedModels, batches) -> None:
    """``interpolation.reestimate_batchnorm`` for each of the K models at once: every model's running statistics
    become the exact mean (and batch-size-weighted mean variance) over one train-mode pass of the same batches."""
    bns = [m for m in model.base.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for name, buf in model.buffers.items():  # reset_running_stats of every member, on the stacks
        if name.endswith("running_mean"):
            buf.zero_()
        elif name.endswith("running_var"):
            buf.fill_(1.0)
        elif name.endswith("num_batches_tracked"):
            buf.zero_()
    model.train()
    seen = 0
    for xb, _ in batches:
        n = int(xb.shape[0])
        for m in bns:
            m.momentum = n / (seen + n)  # running average weighted by batch size
        model(xb, shared=True)
        seen += n
    for m, momentum in zip(bns, saved):
        m.momentum = momentum


class StackedEvaluator:
    """``evaluation.Evaluator``'s protocol for K states at once (the points of a path evaluated as one batched
    model): full training set without augmentation and test set, eval mode, BatchNorm ``UpBN`` (re-estimated for
    every state over the training examples) or ``NoUpBN``; integer buffers are never changed. The numbers equal the
    plain evaluator's up to the batched kernels' rounding."""

    def __init__(
        self,
        model: nn.Module,
        data,
        k: int,
        bn: str = "UpBN",
        batch_size: int = 1024,
        eval_examples: int | None = None,
        eval_seed: int = 0,
    ):
        from .evaluation import SPLITS, SplitBatches, check_bn_policy, split_batches

        self.k = int(k)
        self.bn = check_bn_policy(bn)
        self.stacked = StackedModels([model] * self.k)  # the stacks are copies; the states come with evaluate()
        self.model_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        self.batches = {s: split_batches(data, s, batch_size, eval_examples, eval_seed) for s in SPLITS}
        self.bn_batches = SplitBatches(data, "train", 256, self.batches["train"].indices)
        self.has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    @torch.no_grad()
    def evaluate(self, states: list[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
        """The values ``Evaluator.evaluate`` gives, for each of (at most K) states (names a state lacks keep the
        model's); fewer than K states fill the stack's remaining slots with the last state (their numbers are
        dropped)."""
        if not 1 <= len(states) <= self.k:
            raise ValueError(f"states: {len(states)} given, 1..{self.k} expected")
        padded = list(states) + [states[-1]] * (self.k - len(states))
        stacks = {}
        for name in self.stacked.names:
            if name.endswith("num_batches_tracked"):
                stacks[name] = self.stacked.state_dict()[name]  # counters: the model's, untouched
            else:
                stacks[name] = torch.stack([s.get(name, self.model_state[name]) for s in padded])
        self.stacked.load_state_dict(stacks)
        counters = {n: b.clone() for n, b in self.stacked.buffers.items() if not b.is_floating_point()}
        if self.bn == "UpBN" and self.has_bn:
            with torch.inference_mode():
                stacked_reestimate_batchnorm(self.stacked, self.bn_batches)
            for n, c in counters.items():
                self.stacked.buffers[n].copy_(c)
        with torch.inference_mode():
            measured = {split: stacked_evaluate(self.stacked, batches) for split, batches in self.batches.items()}
        out = []
        for i in range(len(states)):
            values: dict[str, float] = {}
            for split, per_state in measured.items():
                loss, acc = per_state[i]
                values[f"{split}_loss"], values[f"{split}_acc"], values[f"{split}_error"] = loss, acc, 1.0 - acc
            out.append(values)
        return out
