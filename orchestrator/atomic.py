"""Atomic file writes: write to a temporary name in the same directory, fsync, rename, fsync the directory.

A full disk or exceeded quota (ENOSPC/EDQUOT) raises ``StoreFullError`` after removing the temporary file, so every
file that was in place before stays intact.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class StoreFullError(OSError):
    """The store's file system is full or over quota; nothing committed was touched."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> str:
    """Atomically place ``data`` at ``path``; returns its sha256 hex digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _silent_unlink(tmp)
        if exc.errno in FULL_ERRNOS:
            raise StoreFullError(exc.errno, f"no space left (disk full or quota exceeded) while writing {path}") from exc
        raise
    except BaseException:
        _silent_unlink(tmp)
        raise
    fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def atomic_save_tensors(path: Path, tensors: dict) -> int:
    """Atomically write tensors as safetensors, streamed by the library straight to a temporary file (no in-memory
    copy of the serialized bytes, no hash: for large resume checkpoints). Returns the file size."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        _silent_unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS or "No space left" in str(exc) or "Disk quota" in str(exc):
            raise StoreFullError(errno.ENOSPC, f"no space left (disk full or quota exceeded) while writing {path}") from exc
        raise
    fsync_dir(path.parent)
    return size


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def atomic_write_json(path: Path, obj) -> str:
    return atomic_write_bytes(path, (json.dumps(obj, sort_keys=True, indent=1, allow_nan=True) + "\n").encode())


def read_json(path: Path):
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
