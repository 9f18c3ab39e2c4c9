"""Small dataset files in the real on-disk formats (MNIST IDX, CIFAR python batches, ImageNet's folder layout), for
the tests of every floor. Imported like conftest (`from datafiles import write_mnist`)."""

from __future__ import annotations

import pickle
import struct

import numpy as np


def write_mnist(root, n_train=32, n_test=16):
    """IDX files exactly as MNIST ships them (uncompressed), under ROOT/MNIST/raw."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return root


def write_cifar10(root, per_batch=8):
    """The CIFAR-10 python batches: pickled dicts with 'data' (N×3072 uint8) and 'labels'. The real files are Python 2
    pickles whose str keys load as str under torchvision's encoding='latin1', so str keys reproduce them."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
            "batch_label": name,
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh, protocol=2)
    return root


def write_imagefolder(root, classes=3, per_class=4, size=20):
    """ImageNet's on-disk layout: ROOT/{train,val}/<class>/*.JPEG (real JPEG files)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"n0000{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(size, size + 4, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img_{i}.JPEG", format="JPEG")
    return root
