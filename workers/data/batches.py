"""``BatchStream``: training batches as a pure function of (seed, step), prepared per epoch on the device when the data
lives there."""

from __future__ import annotations

import math

import torch

from .augment import Augment
from .datasets import ImageFolderData, TensorDataset
from .seeds import generator


class BatchStream:
    """Training batches as a pure function of (seed, step); ``batch(step)`` may be called in any order.

    For data that lives on a GPU (or with ``prefetch``), each epoch's order and the random parameters of every batch
    of the epoch (drawn on the CPU from the batch's own generator, exactly as ``train_batch`` draws them) are moved to
    the device once per epoch; a batch is then gathered and augmented on the device without a copy from the host.
    The batches are the same as ``train_batch``'s."""

    def __init__(
        self,
        data: "TensorDataset | ImageFolderData",
        batch_size: int,
        seed: int,
        augment: bool = True,
        prefetch: bool | None = None,
    ):
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.use_augment = augment and data.augment is not None
        self.n = data.n_train
        self.steps_per_epoch = math.ceil(self.n / batch_size)
        self._epoch = -1
        self._order: torch.Tensor | None = None
        self._draws: tuple[torch.Tensor, ...] = ()
        train_x = getattr(data, "train_x", None)
        if prefetch is None:
            prefetch = train_x is not None and train_x.device.type != "cpu"
        self.prefetch = bool(prefetch) and train_x is not None
        self._split = (
            self.prefetch and self.use_augment and isinstance(data.augment, Augment)
        )  # augmentation parameters drawn per epoch

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation, drawn on the CPU and moved once per epoch to where the data lives."""
        if epoch != self._epoch:
            order = torch.randperm(self.n, generator=generator("order", self.seed, epoch))
            device = self.data.train_x.device if self.prefetch else order.device  # type: ignore[union-attr]
            self._order = order.to(device)
            if self._split:
                augment = self.data.augment
                assert isinstance(augment, Augment)
                draws = []
                for pos in range(self.steps_per_epoch):
                    count = min(self.batch_size, self.n - pos * self.batch_size)
                    step = epoch * self.steps_per_epoch + pos
                    draws.append(augment.draw(count, generator("augment", self.seed, step)))
                self._draws = tuple(torch.cat(parts).to(device) for parts in zip(*draws))
            self._epoch = epoch
        assert self._order is not None
        return self._order

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        lo, hi = pos * self.batch_size, (pos + 1) * self.batch_size
        idx = self.order(epoch)[lo:hi]
        if not self._split:
            return self.data.train_batch(idx, ("augment", self.seed, step), self.use_augment)
        data = self.data
        assert isinstance(data, TensorDataset) and isinstance(data.augment, Augment)
        x, y = data.train_x[idx], data.train_y[idx]
        return data.augment.apply(x, *(d[lo:hi] for d in self._draws)), y
