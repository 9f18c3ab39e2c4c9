"""A process's datasets, kept between units: ``DatasetCache`` (bounded, keyed by the files' size and mtime) and the
process-wide one behind ``cached_dataset``."""

from __future__ import annotations

import os

import torch

from .catalog import EMBEDDED_DATASETS
from .cifar_files import _CIFAR_LAYOUT, _cifar_class
from .datasets import ImageFolderData, TensorDataset
from .loading import load_dataset

DATA_CACHE_MB_DEFAULT = 2048.0


class DatasetCache:
    """Datasets a process loaded, kept for the next unit that needs the same one (a warm worker runs many units).

    Keyed by (dataset, data root, image size, device) and by the size and modification time of the dataset's files, so
    a replaced file is read again; bounded by ``max_mb`` of tensor memory (least recently used first out; a dataset
    larger than the bound is not kept). A hit returns the very object the first load built — its tensors, the
    un-augmented evaluation sets included, are built once per process and device. Units must not modify a dataset's
    tensors in place (none does: batches are indexed copies, augmentation returns new tensors)."""

    def __init__(self, max_mb: float | None = None):
        if max_mb is None:
            try:
                max_mb = float(os.environ.get("LOWLOSS_DATA_CACHE_MB", DATA_CACHE_MB_DEFAULT))
            except ValueError:
                max_mb = DATA_CACHE_MB_DEFAULT
        self.max_bytes = max(0.0, max_mb) * 2**20
        self._entries: dict[tuple, tuple[object, int]] = {}  # insertion order = recency
        self.hits = 0
        self.loads = 0
        self.last_hit = False  # whether the latest ``get`` was served from memory

    def get(self, name: str, root: str | None, image_size: int | None, device) -> "TensorDataset | ImageFolderData":
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (name, os.path.abspath(root) if root else None, image_size, str(device), _files_fingerprint(name, root))
        found = self._entries.pop(key, None)
        if found is not None:
            self._entries[key] = found  # most recent
            self.hits += 1
            self.last_hit = True
            return found[0]  # type: ignore[return-value]
        self.last_hit = False
        data = load_dataset(name, root, image_size).to(device)
        self.loads += 1
        size = _nbytes(data)
        if size <= self.max_bytes:
            self._entries[key] = (data, size)
            while sum(n for _, n in self._entries.values()) > self.max_bytes:
                self._entries.pop(next(iter(self._entries)))
        return data

    def clear(self) -> None:
        self._entries.clear()


def _nbytes(data) -> int:
    if isinstance(data, TensorDataset):
        return sum(t.element_size() * t.nelement() for t in (data.train_x, data.train_y, data.test_x, data.test_y))
    return 0  # streamed (ImageFolder): only its file lists are kept


def _files_fingerprint(name: str, root: str | None) -> tuple:
    """(path, size, mtime) of the files a dataset is read from (the embedded ones: their installed package's)."""
    if name in EMBEDDED_DATASETS or not root:
        return ()
    if name == "mnist":
        folder = os.path.join(root, "MNIST", "raw")
    elif name in _CIFAR_LAYOUT:
        folder = os.path.join(root, _cifar_class(name).base_folder)
    else:  # imagefolder: the split folders (a class or image added or removed changes their listing)
        return tuple(_stat(os.path.join(root, split)) for split in ("train", "val"))
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return (folder, None)
    return tuple(_stat(os.path.join(folder, f)) for f in names)


def _stat(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (path, st.st_size, st.st_mtime_ns)


_PROCESS_CACHE: DatasetCache | None = None


def cached_dataset(
    name: str, root: str | None = None, image_size: int | None = None, device=None
) -> "TensorDataset | ImageFolderData":
    """``load_dataset(...).to(device)``, through this process's ``DatasetCache`` (``LOWLOSS_DATA_CACHE_MB``, default
    2048; 0 keeps nothing)."""
    return process_cache().get(name, root, image_size, device)


def process_cache() -> DatasetCache:
    """This process's dataset cache (made at the first use)."""
    global _PROCESS_CACHE
    if _PROCESS_CACHE is None:
        _PROCESS_CACHE = DatasetCache()
    return _PROCESS_CACHE
