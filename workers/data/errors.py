"""The errors of a data root: ``DataRootError`` (the root cannot serve the dataset), ``MissingDataError`` (files of
the layout missing) and ``DataFileError`` (a damaged file, named in one line)."""

from __future__ import annotations


class DataRootError(ValueError):
    """The data root is missing or does not hold the dataset in torchvision's on-disk format."""


class DataFileError(DataRootError):
    """A dataset file is damaged or not in its format; the message names the file."""


class MissingDataError(DataRootError):
    """Files or folders of the dataset's layout are missing from the data root."""


def _file_error(path: str, what: str) -> DataFileError:
    return DataFileError(f"data file {path}: {what}")
