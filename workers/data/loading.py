"""Loading a dataset by name: whether a data root can serve it (``check_data_root``, with the fix when it cannot) and
``load_dataset`` (embedded, in memory from torchvision's formats, or ImageFolder streamed)."""

from __future__ import annotations

import os

import torch

from .augment import _cifar_augment, _mnist_augment
from .catalog import EMBEDDED_DATASETS, _normalize
from .cifar_files import read_cifar_split
from .datasets import ImageFolderData, TensorDataset
from .embedded import load_digits, load_mnist5k
from .errors import DataFileError, DataRootError
from .file_checks import FILE_CHECKS, check_data_files

_DOWNLOAD_HINT = {
    "mnist": "python -c \"import torchvision; torchvision.datasets.MNIST('{root}', download=True)\"",
    "cifar10": "python -c \"import torchvision; torchvision.datasets.CIFAR10('{root}', download=True)\"",
    "cifar100": "python -c \"import torchvision; torchvision.datasets.CIFAR100('{root}', download=True)\"",
    "imagefolder": "place ImageNet as {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG",
}


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
