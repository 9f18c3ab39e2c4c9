"""Training primitives: optimizers, learning-rate schedules as pure functions of the step, steps and evaluation.

Schedules are computed from the step counter alone (no scheduler object), so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import eval_batches


@dataclass(frozen=True)
class Schedule:
    """Learning-rate schedule (shapes of LLPF Table 3).

    - ``constant``: ``lr`` throughout.
    - ``onecycle``: PyTorch's OneCycleLR (cosine annealing, two phases): from max_lr/div_factor up to ``max_lr`` over
      ``pct_start`` of the steps, then down to max_lr/(div_factor·final_div_factor). Momentum is not cycled.
    - ``cosine``: timm-style cosine annealing: linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_epochs``,
      cosine decay to ``min_lr`` until ``epochs - cooldown_epochs``, then ``min_lr`` for the cooldown epochs.
    - ``step``: ``lr`` multiplied by ``decay_factor`` at each step of ``decay_steps`` (AutoNEB §4.2: 0.1 ÷10 at
      32 000 and 48 000 of 64 000 steps; PyTorch's MultiStepLR counted in optimizer steps).
    """

    kind: str = "constant"
    lr: float = 0.01
    max_lr: float = 0.1
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    cooldown_epochs: float = 0.0
    decay_steps: tuple[int, ...] = ()
    decay_factor: float = 0.1

    def lr_at(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        if self.kind == "constant":
            return self.lr
        if self.kind == "onecycle":
            initial = self.max_lr / self.div_factor
            final = initial / self.final_div_factor
            up_end = float(self.pct_start * total_steps) - 1
            down_end = float(total_steps) - 1
            if step <= up_end:
                pct = step / up_end if up_end > 0 else 1.0
                return _cos_anneal(initial, self.max_lr, pct)
            pct = (step - up_end) / (down_end - up_end) if down_end > up_end else 1.0
            return _cos_anneal(self.max_lr, final, min(pct, 1.0))
        if self.kind == "cosine":
            epoch = step / steps_per_epoch
            total_epochs = total_steps / steps_per_epoch
            if epoch < self.warmup_epochs:
                return self.warmup_lr + (self.lr - self.warmup_lr) * epoch / self.warmup_epochs
            decay_epochs = max(total_epochs - self.cooldown_epochs - self.warmup_epochs, 1e-12)
            t = min((epoch - self.warmup_epochs) / decay_epochs, 1.0)
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * t))
        if self.kind == "step":
            return self.lr * self.decay_factor ** sum(1 for m in self.decay_steps if step >= m)
        raise ValueError(f"unknown schedule {self.kind!r}")


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def make_optimizer(
    params,
    name: str,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One SGD step in train mode; returns the batch loss as a 0-d tensor (no host sync)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over (x, y) in eval mode."""
    return evaluate_batches(model, eval_batches(x, y, batch_size))


@torch.no_grad()
def evaluate_batches(model: nn.Module, batches) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over an iterable of (x, y) batches, in eval mode."""
    model.eval()
    total_loss, correct, n = None, None, 0
    for xb, yb in batches:
        out = model(xb)
        loss = F.cross_entropy(out, yb, reduction="sum").double()
        hits = (out.argmax(1) == yb).sum()
        total_loss = loss if total_loss is None else total_loss + loss
        correct = hits if correct is None else correct + hits
        n += int(yb.shape[0])
    assert total_loss is not None and correct is not None, "evaluation over no batches"
    return float(total_loss) / n, float(correct) / n


# ---------------------------------------------------------------- state to tensors (checkpoints without pickle)


def optimizer_state_to_tensors(
    optimizer: torch.optim.Optimizer, prefix: str = "optim"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into named tensors and JSON-able metadata (no pickle)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars, "prefix": prefix}


def optimizer_state_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    prefix = meta["prefix"]
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        idx, key = name[len(prefix) + 1 :].split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["rng.cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng_state(tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)


# ---------------------------------------------------------------- numeric precision (opt-in, part of a unit's params)

PRECISIONS = ("fp32", "tf32", "bf16")


def set_precision(device: torch.device, precision: str | None):
    """Configure this process for ``precision`` on ``device``; returns a factory of the autocast context, or None.

    - ``None``/``"fp32"``: IEEE fp32 everywhere; on CUDA also for cuDNN convolutions (whose PyTorch default is TF32),
      with deterministic cuDNN algorithms and no benchmark autotuning (identical digests run after run).
    - ``"tf32"``: TensorFloat-32 matmuls and convolutions on CUDA (Ampere and later); on a CPU nothing changes.
    - ``"bf16"``: as fp32, with the forward passes under ``torch.autocast(dtype=torch.bfloat16)`` (CUDA or CPU);
      losses are computed in fp32 from the bf16 logits, parameters and optimizer state stay fp32."""
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS reductions
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    if precision == "bf16":
        device_type = device.type

        def autocast():
            return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

        return autocast
    return None
