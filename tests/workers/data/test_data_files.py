"""Datasets read from a data root in the real formats (MNIST IDX files, CIFAR pickles, ImageFolder), and damaged or
hostile data files named in one line."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from datafiles import write_cifar10, write_imagefolder, write_mnist

from lowloss.workers.data import (
    BatchStream,
    DataFileError,
    DataRootError,
    check_data_root,
    cifar_md5_official,
    load_dataset,
)


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


# ---------------------------------------------------------------- issue 10 items 10, 11: damaged and hostile data files


def _rewrite_idx(path, magic=None, dims=None, payload=None, cut=0):
    raw = path.read_bytes()
    ndim = raw[3]
    header, body = raw[: 4 + 4 * ndim], raw[4 + 4 * ndim :]
    if magic is not None:
        header = struct.pack(">I", magic) + header[4:]
    if dims is not None:
        header = header[:4] + struct.pack(f">{len(dims)}I", *dims)
    body = payload if payload is not None else body
    data = header + body
    path.write_bytes(data[: len(data) - cut] if cut else data)


def _raw(root, name):
    return root / "MNIST" / "raw" / name


MNIST_DAMAGE = [
    # (id, damage(root), substrings of the one-line error)
    (
        "train-images-truncated",
        lambda r: _rewrite_idx(_raw(r, "train-images-idx3-ubyte"), cut=100),
        ["train-images-idx3-ubyte", "truncated", "32 items"],
    ),
    (
        "train-labels-bad-magic",
        lambda r: _rewrite_idx(_raw(r, "train-labels-idx1-ubyte"), magic=0x803),
        ["train-labels-idx1-ubyte", "not an IDX file of uint8 labels", "0x00000803"],
    ),
    (
        "train-images-wrong-size",
        lambda r: _rewrite_idx(_raw(r, "train-images-idx3-ubyte"), dims=(32, 28, 27)),
        ["train-images-idx3-ubyte", "28×27", "MNIST's are 28×28"],
    ),
    (
        "train-label-out-of-range",
        lambda r: _rewrite_idx(_raw(r, "train-labels-idx1-ubyte"), payload=bytes([0, 1, 200] + [0] * 29)),
        ["train-labels-idx1-ubyte", "label 200 at index 2", "outside 0..9"],
    ),
    (
        "train-count-mismatch",
        lambda r: _rewrite_idx(_raw(r, "train-labels-idx1-ubyte"), dims=(31,), payload=bytes(31)),
        ["train-labels-idx1-ubyte", "31 labels for the 32 images"],
    ),
    (
        "train-images-trailing",
        lambda r: _raw(r, "train-images-idx3-ubyte").write_bytes(
            _raw(r, "train-images-idx3-ubyte").read_bytes() + b"\0" * 7
        ),
        ["train-images-idx3-ubyte", "trailing bytes"],
    ),
    (
        "test-images-truncated",
        lambda r: _rewrite_idx(_raw(r, "t10k-images-idx3-ubyte"), cut=1),
        ["t10k-images-idx3-ubyte", "truncated"],
    ),
    (
        "train-images-missing",
        lambda r: _raw(r, "train-images-idx3-ubyte").unlink(),
        ["does not hold mnist", "missing MNIST/raw/train-images-idx3-ubyte", "download=True"],
    ),
]


def _assert_one_line_naming(problem: str, needles: list[str]):
    assert problem is not None and len(problem.splitlines()) == 1, problem
    for needle in needles:
        assert needle in problem, f"{needle!r} not in {problem!r}"


@pytest.mark.parametrize("case", MNIST_DAMAGE, ids=[c[0] for c in MNIST_DAMAGE])
def test_damaged_mnist_is_named_at_the_edge_and_in_the_unit(tmp_path, case):
    _, damage, needles = case
    root = write_mnist(tmp_path / "data")
    assert check_data_root("mnist", str(root)) is None
    damage(root)
    _assert_one_line_naming(check_data_root("mnist", str(root)), needles)
    with pytest.raises(DataRootError) as err:  # what a unit meets: the same one line, never a raw torchvision error
        load_dataset("mnist", str(root))
    _assert_one_line_naming(str(err.value), needles)


class _Trap:
    """Unpickling this runs code (creates a file)."""

    def __init__(self, marker, how="exec"):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _cifar_path(root, name="data_batch_1"):
    return root / "cifar-10-batches-py" / name


def _dump(path, obj, protocol=2):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


def _batch(n=8, data=None, labels=None):
    rng = np.random.default_rng(5)
    return {
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8) if data is None else data,
        "labels": [int(v) for v in rng.integers(0, 10, size=n)] if labels is None else labels,
    }


CIFAR_DAMAGE = [
    (
        "train-batch-truncated",
        lambda r, m: _cifar_path(r, "data_batch_3").write_bytes(_cifar_path(r, "data_batch_3").read_bytes()[:5000]),
        ["data_batch_3", "truncated or damaged"],
    ),
    (
        "train-label-out-of-range",
        lambda r, m: _dump(_cifar_path(r, "data_batch_2"), _batch(labels=[0] * 7 + [10])),
        ["data_batch_2", "label 10 at index 7", "outside 0..9"],
    ),
    (
        "train-data-wrong-shape",
        lambda r, m: _dump(_cifar_path(r, "data_batch_4"), _batch(data=np.zeros((8, 3000), np.uint8))),
        ["data_batch_4", "N×3072 uint8", "(8, 3000)"],
    ),
    (
        "train-data-wrong-dtype",
        lambda r, m: _dump(_cifar_path(r, "data_batch_4"), _batch(data=np.zeros((8, 3072), np.float32))),
        ["data_batch_4", "N×3072 uint8", "float32"],
    ),
    (
        "train-count-mismatch",
        lambda r, m: _dump(_cifar_path(r, "data_batch_5"), _batch(labels=[1] * 7)),
        ["data_batch_5", "7 labels for 8 images"],
    ),
    ("train-not-a-dict", lambda r, m: _dump(_cifar_path(r), [1, 2, 3]), ["data_batch_1", "holds a list"]),
    (
        "meta-without-names",
        lambda r, m: _dump(_cifar_path(r, "batches.meta"), {"names": []}),
        ["batches.meta", "'label_names' must be a list of 10 class names"],
    ),
    (
        "test-batch-truncated",
        lambda r, m: _cifar_path(r, "test_batch").write_bytes(b"\x80\x02}q"),
        ["test_batch", "truncated or damaged"],
    ),
    (
        "train-batch-missing",
        lambda r, m: _cifar_path(r, "data_batch_5").unlink(),
        ["does not hold cifar10", "missing cifar-10-batches-py/data_batch_5"],
    ),
    # item 11: a crafted batch that would run code is refused, with one line, and runs nothing
    (
        "exec-in-train-batch",
        lambda r, m: _dump(_cifar_path(r), {"data": _Trap(m), "labels": []}),
        ["data_batch_1", "refused to load the global __builtin__.exec", "would run or import other code"],
    ),
    (
        "system-in-test-batch",
        lambda r, m: _dump(_cifar_path(r, "test_batch"), _Trap(m, "system"), protocol=4),
        ["test_batch", "refused to load the global posix.system"],
    ),
    (
        "exec-in-meta",
        lambda r, m: _dump(_cifar_path(r, "batches.meta"), {"label_names": _Trap(m)}, protocol=5),
        ["batches.meta", "refused to load the global builtins.exec"],
    ),
    (
        "object-array",
        lambda r, m: _dump(_cifar_path(r), _batch(data=np.array([[1, 2]], dtype=object))),
        ["data_batch_1", "object arrays are not part of the CIFAR format"],
    ),
]


@pytest.mark.parametrize("case", CIFAR_DAMAGE, ids=[c[0] for c in CIFAR_DAMAGE])
def test_damaged_or_hostile_cifar_is_named_and_never_runs_code(tmp_path, case):
    _, damage, needles = case
    root = write_cifar10(tmp_path / "data")
    marker = tmp_path / "PWNED"
    assert check_data_root("cifar10", str(root)) is None
    damage(root, marker)
    _assert_one_line_naming(check_data_root("cifar10", str(root)), needles)
    with pytest.raises(DataRootError) as err:
        load_dataset("cifar10", str(root))
    _assert_one_line_naming(str(err.value), needles)
    if "missing" not in needles[-1]:
        assert "re-packed copy" in str(err.value)  # the test files are not torchvision's official ones
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_repacked_cifar_in_any_pickle_protocol_is_read_through_the_restricted_unpickler(tmp_path, protocol):
    root = write_cifar10(tmp_path / "data")
    labels = np.arange(8, dtype=np.int64) % 10  # labels as a numpy array, as some re-packers write them
    _dump(_cifar_path(root), _batch(labels=labels), protocol=protocol)
    data = load_dataset("cifar10", str(root))
    assert data.train_x.shape == (40, 3, 32, 32) and data.train_y[:8].tolist() == labels.tolist()


def test_cifar_md5_is_compared_with_torchvisions_official_list(tmp_path, monkeypatch):
    import torchvision

    root = write_cifar10(tmp_path / "data")
    path = str(_cifar_path(root))
    assert cifar_md5_official("cifar10", path) is False
    with open(path, "rb") as fh:
        md5 = hashlib.md5(fh.read()).hexdigest()
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [["data_batch_1", md5]] + cls.train_list[1:])
    assert cifar_md5_official("cifar10", path) is True
    assert cifar_md5_official("cifar10", str(tmp_path / "not_a_cifar_file")) is None


def _truncate(path, keep=200):
    path.write_bytes(path.read_bytes()[:keep])


IMAGEFOLDER_DAMAGE = [
    (
        "class-missing-in-val",
        lambda r: __import__("shutil").rmtree(r / "val" / "n00001"),
        ["val", "1 class(es) of train/ missing in val/: n00001", "same classes"],
    ),
    (
        "extra-class-in-val",
        lambda r: __import__("shutil").copytree(r / "val" / "n00000", r / "val" / "n00009"),
        ["val", "of val/ not in train/: n00009"],
    ),
    (
        "not-an-image",
        lambda r: (r / "train" / "n00002" / "img_0.JPEG").write_bytes(b"GIF? no, garbage" * 10),
        ["train/n00002/img_0.JPEG", "not a readable image"],
    ),
    (
        "val-image-not-an-image",
        lambda r: (r / "val" / "n00000" / "img_0.JPEG").write_bytes(b"\xff\xd8\xff" + bytes(5)),
        ["val/n00000/img_0.JPEG", "not a readable image"],
    ),
    (
        "empty-class",
        lambda r: [p.unlink() for p in (r / "val" / "n00001").iterdir()],
        ["val/n00001", "without image files"],
    ),
    ("no-val", lambda r: __import__("shutil").rmtree(r / "val"), ["does not hold imagefolder", "no val/ folder"]),
]


@pytest.mark.parametrize("case", IMAGEFOLDER_DAMAGE, ids=[c[0] for c in IMAGEFOLDER_DAMAGE])
def test_damaged_imagefolder_is_named(tmp_path, case):
    _, damage, needles = case
    root = write_imagefolder(tmp_path / "imagenet")
    assert check_data_root("imagefolder", str(root)) is None
    damage(root)
    _assert_one_line_naming(check_data_root("imagefolder", str(root)), needles)
    with pytest.raises(DataRootError) as err:
        load_dataset("imagefolder", str(root), image_size=16)
    _assert_one_line_naming(str(err.value), needles)


def test_a_unit_meeting_a_truncated_image_fails_with_one_line_naming_it(tmp_path):
    root = write_imagefolder(tmp_path / "imagenet")
    bad = root / "train" / "n00001" / "img_3.JPEG"  # not the first of its class: only a full decode finds it
    _truncate(bad)
    data = load_dataset("imagefolder", str(root), image_size=16)
    with pytest.raises(DataFileError) as err:
        for _ in data.eval_batches("train", 4):
            pass
    _assert_one_line_naming(str(err.value), [str(bad), "not a readable image"])


def test_validate_opens_the_training_split(tmp_path, capsys):
    """`lowloss validate` used to open only the test split: a damaged training batch is an edge error (exit 2)."""
    from lowloss.orchestrator.cli import main

    root = write_cifar10(tmp_path / "data")
    _dump(_cifar_path(root, "data_batch_2"), _batch(labels=[200] * 8))
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[study]\nname = "c"\nseeds = [0]\n[data]\ndataset = "cifar10"\n[model]\nname = "resnet18_cifar"\n'
        '[[stages]]\nname = "modes"\nkind = "train"\n'
    )
    assert main(["validate", str(spec), "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "data_batch_2" in err and "label 200 at index 0" in err


def test_a_train_unit_meeting_damaged_data_fails_with_one_line_naming_the_file(tmp_path):
    """The data pass the edge, then a file is damaged before the unit runs (a shared file system): the real runtime
    records the attempt as failed and the error's last line — what `lowloss status` shows — names the file."""
    import subprocess
    import sys

    from lowloss.orchestrator.engine.graph import plan_study
    from lowloss.orchestrator.spec import check_data, parse_spec
    from lowloss.orchestrator.store import RunSettings, Store

    root = write_mnist(tmp_path / "mnist")
    study = parse_spec(
        '[study]\nname = "m"\nseeds = [0]\n[data]\ndataset = "mnist"\n[model]\nname = "lenet5"\n'
        '[train]\nepochs = 1\nbatch_size = 16\n[[stages]]\nname = "modes"\nkind = "train"\n'
    )
    check_data(study, str(root))  # the edge check passes
    store = Store(tmp_path / "store")
    store.init_study(study.name, study.text)
    store.write_run_settings(RunSettings(str(root), 60.0, "cpu"))
    (unit,) = plan_study(study).stage_units("modes")
    store.write_unit(unit.record)
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8] + bytes([3, 200]) + labels.read_bytes()[10:])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowloss.orchestrator.runtime",
            str(store.root),
            json.dumps({"uid": unit.id, "kind": unit.kind}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (attempt,) = store.attempts.records(unit.id, unit.kind)
    last = attempt.state.value, (attempt.error or "").strip().splitlines()[-1]
    assert last[0] == "failed" and str(labels) in last[1] and "label 200 at index 1 is outside 0..9" in last[1], last
    assert not store.read.is_committed(unit.id, unit.kind)
