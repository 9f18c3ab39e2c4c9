"""Every split of every dataset is opened and checked before a unit trusts it; a problem is one line naming the file
(``FILE_CHECKS``, ``check_data_files``)."""

from __future__ import annotations

from .cifar_files import check_cifar_files
from .imagefolder_files import check_imagefolder_files
from .mnist_files import check_mnist_files

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
