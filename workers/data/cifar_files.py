"""CIFAR10/100's pickled Python batches, read and checked (dict layout, N×3072 uint8 data, one label per image, labels
in range). CIFAR batches are Python pickles: they are read only through ``CifarUnpickler``, which admits nothing but
what the CIFAR format needs (numpy arrays and dtypes, dicts, lists, str/bytes, numbers), never torchvision's
unrestricted ``pickle.load``; each file's MD5 is compared to torchvision's official one, and an error about a file
whose MD5 differs says that it is a re-packed copy."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass

from .errors import DataFileError, MissingDataError, _file_error

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
