"""ImageNet's folder layout (train/ and val/ with the same class folders), checked before use."""

from __future__ import annotations

import os

from .errors import MissingDataError, _file_error


def _first_image(folder: str) -> str | None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.lower().endswith(IMG_EXTENSIONS):
            return entry.path
    return None


def check_imagefolder_files(root: str) -> None:
    """ImageNet's layout: train/ and val/ with the *same* class folders (a label is a class's index in the sorted
    list, so a class missing in val would silently shift every later label), each holding images; the first image of
    each class in each split must decode (every other file is decoded by the units, which name a bad one)."""
    from PIL import Image
    from torchvision.datasets.folder import find_classes

    classes = {}
    for split in ("train", "val"):
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise MissingDataError(f"no {split}/ folder in {root}")
        try:
            classes[split] = find_classes(folder)[0]
        except FileNotFoundError:
            raise MissingDataError(f"no class folders under {folder}") from None
    train, val = classes["train"], classes["val"]
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        parts = (
            [f"{len(only_train)} class(es) of train/ missing in val/: {', '.join(only_train[:5])}"]
            if only_train
            else []
        ) + ([f"{len(only_val)} class(es) of val/ not in train/: {', '.join(only_val[:5])}"] if only_val else [])
        raise _file_error(
            os.path.join(root, "val"),
            f"class folders differ from train/ ({'; '.join(parts)}); labels "
            "are indices into the sorted class list, so both splits need the same classes",
        )
    for split in ("train", "val"):
        for c in classes[split]:
            folder = os.path.join(root, split, c)
            path = _first_image(folder)
            if path is None:
                raise _file_error(folder, "class folder without image files (.jpg, .jpeg, .png, …)")
            try:
                with Image.open(path) as image:
                    image.verify()
            except Exception as exc:  # noqa: BLE001 — PIL raises OSError, SyntaxError, ValueError, struct.error…
                raise _file_error(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
