"""Datasets as the units see them: ``TensorDataset`` (in memory) and ``ImageFolderData`` (ImageNet-style folders,
streamed), each giving training batches as a pure function of (indices, seed parts), and ``eval_batches``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

from .catalog import _NORMALIZE
from .errors import DataFileError
from .seeds import derive_seed, generator


@dataclass
class TensorDataset:
    """A dataset held in memory as tensors (images N×C×H×W float, labels N int64)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    def to(self, device: torch.device) -> "TensorDataset":
        return TensorDataset(
            self.name,
            self.train_x.to(device),
            self.train_y.to(device),
            self.test_x.to(device),
            self.test_y.to(device),
            self.num_classes,
            self.augment,
        )

    def train_batch(self, idx: torch.Tensor, parts: tuple, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Training examples ``idx``, augmented from a generator seeded with ``parts`` (a pure function of both)."""
        idx = idx.to(self.train_x.device)
        x, y = self.train_x[idx], self.train_y[idx]
        if augment and self.augment is not None:
            x = self.augment(x, generator(*parts))
        return x, y

    def eval_batches(self, split: str, batch_size: int = 1024):
        """The training or test set in order, un-augmented (for evaluation and BatchNorm re-estimation)."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        return eval_batches(x, y, batch_size)


class ImageFolderData:
    """ImageNet-style folders (ROOT/train/<class>/*, ROOT/val/<class>/*) read by torchvision's ImageFolder and streamed:
    images are decoded per batch. Training batches get LLPF Table 4's ImageNet augmentation (RandomResizedCrop,
    horizontal flip, normalization) from torchvision's own transforms, run under a forked RNG seeded with the batch's
    (seed, step), so a batch is a pure function of them like the in-memory datasets'. Evaluation uses Resize(256/224·s)
    + CenterCrop(s)."""

    name = "imagefolder"
    in_channels = 3

    def __init__(self, root: str, image_size: int = 224):
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        self.train_set = ImageFolder(os.path.join(root, "train"))
        self.test_set = ImageFolder(os.path.join(root, "val"))
        self.image_size = image_size
        self.num_classes = len(self.train_set.classes)
        self.device = torch.device("cpu")
        mean, std = _NORMALIZE["imagefolder"]
        self.train_tf = T.Compose(
            [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
        )
        self.eval_tf = T.Compose(
            [
                T.Resize(int(round(image_size * 256 / 224))),
                T.CenterCrop(image_size),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )
        self.augment = True
        self.decode_threads = 1  # images decoded at once; the bytes of a batch do not depend on it

    @property
    def n_train(self) -> int:
        return len(self.train_set)

    def to(self, device: torch.device) -> "ImageFolderData":
        self.device = torch.device(device)
        return self

    def _decode(self, dataset, i: int):
        path, _ = dataset.samples[i]
        try:
            return dataset.loader(path)
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for a truncated or damaged image
            raise DataFileError(f"data file {path}: not a readable image ({type(exc).__name__}: {exc})") from None

    def _load(self, dataset, indices: list[int], transform) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``indices`` through ``transform``. Decoding runs on ``decode_threads`` threads (a decoded image does
        not depend on the thread); the transforms, which draw from torch's RNG, run in order on this thread, so a
        batch's bytes are the same with any thread count."""
        if self.decode_threads > 1 and len(indices) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.decode_threads, len(indices))) as pool:
                images = list(pool.map(lambda i: self._decode(dataset, i), indices))
        else:
            images = [self._decode(dataset, i) for i in indices]
        xs, ys = [], []
        for i, image in zip(indices, images):
            path, label = dataset.samples[i]
            try:
                xs.append(transform(image))
            except (OSError, SyntaxError, ValueError) as exc:
                raise DataFileError(f"data file {path}: not a readable image ({type(exc).__name__}: {exc})") from None
            ys.append(label)
        return torch.stack(xs).to(self.device), torch.tensor(ys, dtype=torch.int64, device=self.device)

    def train_batch(self, idx: torch.Tensor, parts: tuple, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not augment:
            return self._load(self.train_set, idx.tolist(), self.eval_tf)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*parts))
            return self._load(self.train_set, idx.tolist(), self.train_tf)

    def eval_batches(self, split: str, batch_size: int = 256):
        dataset = self.train_set if split == "train" else self.test_set
        for start in range(0, len(dataset), batch_size):
            yield self._load(dataset, list(range(start, min(start + batch_size, len(dataset)))), self.eval_tf)


def eval_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    for start in range(0, int(x.shape[0]), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]
