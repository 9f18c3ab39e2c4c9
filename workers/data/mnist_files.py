"""MNIST's IDX files as torchvision reads them (MNIST/raw), checked: headers, sizes, counts, label range."""

from __future__ import annotations

import math
import os

from .errors import MissingDataError, _file_error

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
