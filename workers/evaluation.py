"""One evaluation protocol for every point of every path method: interpolation, LLPF, AutoNEB, landscape scans.

The papers evaluate their paths differently (LLPF's window loss, AutoNEB's augmented train loss and interpolated
BatchNorm statistics, Xu et al.'s UpBN), which makes their numbers incomparable. ``Evaluator`` is the one place a
point is evaluated, the same way for all of them:

- the **full training set without augmentation** and the **test set** (or one fixed seeded subset of each,
  ``eval_examples``), the model in **eval mode**, mean cross-entropy and accuracy (error = 1 − accuracy);
- a stated **BatchNorm policy** (``BN_POLICIES``, the names of Xu et al. App. A.1): ``UpBN`` re-estimates the running
  statistics by one train-mode forward pass over the training examples at every point (the exact mean over the set,
  ``interpolation.reestimate_batchnorm``); ``NoUpBN`` keeps the statistics the point carries (those of its state:
  interpolated between two states on a line or between AutoNEB pivots, moved along by LLPF, θ's in a landscape scan).
  Integer buffers (``num_batches_tracked``) are never changed by the evaluation;
- large batches (``batch_size``, 1024 by default) under ``torch.inference_mode``; the split tensors (or a subset of
  them) are sliced once when the evaluator is built, never a DataLoader per evaluation.

Only torch and the modules of this floor are imported.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .data import eval_batches, generator
from .interpolation import reestimate_batchnorm
from .training import evaluate_batches

BN_POLICIES = ("UpBN", "NoUpBN")
SPLITS = ("train", "test")


# ---------------------------------------------------------------- the examples of a split


def subset_indices(n: int, examples: int | None, seed: int, split: str) -> torch.Tensor | None:
    """Sorted indices of a seeded subset of ``examples`` of ``n`` examples, or None for the whole split."""
    if examples is None or examples >= n:
        return None
    if examples < 1:
        raise ValueError(f"eval_examples: {examples} is not a positive number of examples (or none for all)")
    order = torch.randperm(n, generator=generator("eval-subset", int(seed), split))
    return order[:examples].sort().values


def _split_size(data, split: str) -> int:
    if hasattr(data, "train_x"):
        return int((data.train_x if split == "train" else data.test_x).shape[0])
    return len(data.train_set if split == "train" else data.test_set)


class SplitBatches:
    """The un-augmented examples of one split (optionally a fixed subset) as re-iterable (x, y) batches.

    In-memory datasets (``data.TensorDataset``) are sliced once; streamed folders (``data.ImageFolderData``) are
    decoded per pass with their evaluation transform."""

    def __init__(self, data, split: str, batch_size: int, indices: torch.Tensor | None = None):
        if split not in SPLITS:
            raise ValueError(f"split: {split!r} is not one of {', '.join(SPLITS)}")
        self.data, self.split, self.batch_size = data, split, int(batch_size)
        self.indices = indices
        self.tensors = None
        if hasattr(data, "train_x"):
            x, y = (data.train_x, data.train_y) if split == "train" else (data.test_x, data.test_y)
            if indices is not None:
                idx = indices.to(x.device)
                x, y = x[idx], y[idx]
            self.tensors = (x, y)

    def __len__(self) -> int:
        if self.tensors is not None:
            return int(self.tensors[1].shape[0])
        return len(self.indices) if self.indices is not None else _split_size(self.data, self.split)

    def __iter__(self):
        if self.tensors is not None:
            return eval_batches(self.tensors[0], self.tensors[1], self.batch_size)
        if self.indices is None:
            return iter(self.data.eval_batches(self.split, self.batch_size))
        dataset = self.data.train_set if self.split == "train" else self.data.test_set
        chunks = [self.indices[i : i + self.batch_size].tolist() for i in range(0, len(self.indices), self.batch_size)]
        return (self.data._load(dataset, chunk, self.data.eval_tf) for chunk in chunks)


def split_batches(data, split: str, batch_size: int = 1024, examples: int | None = None, seed: int = 0) -> SplitBatches:
    """The split's examples (all, or the seeded subset of ``examples``) as re-iterable un-augmented batches."""
    return SplitBatches(data, split, batch_size, subset_indices(_split_size(data, split), examples, seed, split))


# ---------------------------------------------------------------- the evaluator


def check_bn_policy(bn: str) -> str:
    if bn not in BN_POLICIES:
        raise ValueError(f"bn: {bn!r} is not one of {', '.join(BN_POLICIES)}")
    return bn


class Evaluator:
    """The one evaluation protocol (module docstring): a model's loss and accuracy on the train and test sets, eval
    mode, BatchNorm ``UpBN`` or ``NoUpBN``.

    ``evaluate(state)`` writes a state (parameters and buffers, by ``state_dict`` name; missing names keep the
    model's) into the model in place and returns ``{"<split>_loss", "<split>_acc", "<split>_error"}`` for each split;
    ``evaluate()`` evaluates the model as it is loaded (e.g. by ``neb.load_pivot_``). The model's parameters and
    buffers are overwritten; nothing else is kept between points."""

    def __init__(
        self,
        model: nn.Module,
        data,
        bn: str = "UpBN",
        batch_size: int = 1024,
        bn_batch_size: int = 256,
        eval_examples: int | None = None,
        eval_seed: int = 0,
        splits: tuple[str, ...] = SPLITS,
    ):
        self.model = model
        self.bn = check_bn_policy(bn)
        self.splits = tuple(splits)
        self.batches = {s: split_batches(data, s, batch_size, eval_examples, eval_seed) for s in self.splits}
        train = self.batches.get("train") or split_batches(data, "train", batch_size, eval_examples, eval_seed)
        self.bn_batches = SplitBatches(data, "train", bn_batch_size, train.indices)
        self.has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
        self.tensors.update(model.named_buffers())
        self._counters = [b for b in model.buffers() if not b.is_floating_point()]

    @torch.no_grad()
    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy the state's tensors into the model's parameters and buffers (no new ``Parameter`` objects)."""
        unknown = [n for n in state if n not in self.tensors]
        if unknown:
            raise ValueError(f"state: tensors {unknown[:3]} are not in the model")
        for name, value in state.items():
            self.tensors[name].copy_(value)

    def refresh_batchnorm(self) -> None:
        """The policy's BatchNorm step for the loaded point: ``UpBN`` re-estimates the running statistics over the
        training examples (counters kept), ``NoUpBN`` does nothing."""
        if self.bn == "UpBN" and self.has_bn:
            saved = [c.clone() for c in self._counters]
            with torch.inference_mode():
                reestimate_batchnorm(self.model, self.bn_batches)
            with torch.no_grad():
                for c, v in zip(self._counters, saved):
                    c.copy_(v)

    def measure(self) -> dict[str, tuple[float, float]]:
        """(mean cross-entropy, accuracy) per split of the model as it is, in eval mode."""
        with torch.inference_mode():
            return {s: evaluate_batches(self.model, self.batches[s]) for s in self.splits}

    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        if state is not None:
            self.load_state(state)
        self.refresh_batchnorm()
        out: dict[str, float] = {}
        for split, (loss, acc) in self.measure().items():
            out[f"{split}_loss"], out[f"{split}_acc"], out[f"{split}_error"] = loss, acc, 1.0 - acc
        return out
