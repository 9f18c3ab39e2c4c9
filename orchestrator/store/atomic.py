"""Atomic file writes: write to a temporary name in the same directory, fsync, rename, fsync the directory.

A full disk or exceeded quota (ENOSPC/EDQUOT) raises ``StoreFullError`` after removing the temporary file, so every
file that was in place before stays intact. Files get the mode ``open`` would give them (0666 less the umask), so a
store shared by a lab stays readable by the group. Inside the store nothing follows a symbolic link: writes, moves and
deletions through a link raise ``SymlinkRefused`` (``check_no_symlinks``, ``open_nofollow``, ``remove_files_nofollow``).
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


class SymlinkRefused(OSError):
    """A path inside the store is a symbolic link; lowloss neither writes, moves nor deletes through one."""


class StoreReadOnlyError(OSError):
    """The store's directory cannot be written (read-only mount or no write permission)."""


_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status; elsewhere a set-and-restore)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_mode_fd(fd: int) -> None:
    """Give a ``mkstemp`` file (always 0600) the mode ``open`` would have given it: 0666 less the umask."""
    os.fchmod(fd, 0o666 & ~current_umask())


def check_no_symlinks(base: Path, path: Path) -> None:
    """Refuse ``path`` when it or any directory between ``base`` (exclusive) and it is a symbolic link."""
    base, path = Path(base), Path(path)
    rel = path.relative_to(base)
    current = base
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise SymlinkRefused(
                errno.ELOOP,
                f"{current} is a symbolic link (to {os.readlink(current)}); lowloss never writes, moves or "
                f"deletes through links inside its store ({base}), so nothing lands outside it — remove the link "
                "(where it points at this store's own data, move that back in its place)",
            )


def remove_files_nofollow(
    base: Path, folder: Path, names: list[str] | None = None, remove_folder: bool = False
) -> None:
    """Delete the plain files ``names`` (default: every entry) of ``folder`` inside ``base`` (the store), and the
    folder itself when asked, never following a link: the folder is opened with O_NOFOLLOW and entries are removed
    relative to it; a link among the entries is removed as a link (its target untouched); a subdirectory is refused."""
    folder = Path(folder)
    check_no_symlinks(base, folder)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SymlinkRefused(
                errno.ELOOP, f"{folder} is not a plain directory (a link?); not deleting through it"
            ) from exc
        raise
    try:
        for name in os.listdir(fd) if names is None else names:
            try:
                os.unlink(name, dir_fd=fd)  # unlink never follows: a link is removed, its target is not
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise SymlinkRefused(
                    errno.EISDIR, f"{folder / name} is a directory where lowloss writes only files; not deleting it"
                ) from None
    finally:
        os.close(fd)
    if remove_folder:
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass


def open_nofollow(base: Path, path: Path, mode: str = "wb", buffering: int = -1):
    """``open(path, mode)`` for a file inside ``base`` (the store; modes "wb", "ab", "w", "a") that never follows
    a link: the directories on the way are checked and the file itself is opened with O_NOFOLLOW (a link there is
    refused, its target untouched). The mode bits are 0666 less the umask, as ``open`` gives."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    path = Path(path)
    check_no_symlinks(base, path.parent)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(
                errno.ELOOP,
                f"{path} is a symbolic link; lowloss never writes through links inside "
                f"its store ({base}) — remove the link",
            ) from None
        raise
    return os.fdopen(fd, mode, buffering=buffering)


def check_writable(root: Path) -> None:
    """Raise ``StoreReadOnlyError`` unless a file can really be created in ``root`` (or, when it does not exist yet,
    in its nearest existing parent). A real attempted write, because permission bits do not stop root and a read-only
    mount shows only in EROFS."""
    root = Path(root)
    target = next((p for p in (root, *root.parents) if p.exists()), None)
    if target is None or not target.is_dir():
        return  # the caller's own checks name a path through a file
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + "write-probe.", dir=target)
    except OSError as exc:
        if exc.errno in _READ_ONLY:
            what = (
                f"store {root} is read-only"
                if target == root
                else f"store {root} cannot be created: its parent {target} is read-only"
            )
            raise StoreReadOnlyError(
                exc.errno,
                f"{what} ({exc.strerror}); run and resume write the store — use a "
                "writable --store (status, report, verify, show only read)",
            ) from None
        raise
    os.close(fd)
    _silent_unlink(tmp)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | memoryview, inside: Path | None = None) -> str:
    """Atomically place ``data`` at ``path``; returns its sha256 hex digest. With ``inside`` (the store), no
    component of ``path`` below it may be a symbolic link."""
    path = Path(path)
    if inside is not None:
        check_no_symlinks(inside, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        try:
            _open_mode_fd(fd)
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
            raise StoreFullError(
                exc.errno, f"no space left (disk full or quota exceeded) while writing {path}"
            ) from exc
        raise
    except BaseException:
        _silent_unlink(tmp)
        raise
    fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def atomic_save_tensors(path: Path, tensors: dict, inside: Path | None = None) -> int:
    """Atomically write tensors as safetensors, streamed by the library straight to a temporary file (no in-memory
    copy of the serialized bytes, no hash: for large resume checkpoints). Returns the file size. ``inside``: as for
    ``atomic_write_bytes``."""
    from safetensors.torch import save_file

    path = Path(path)
    if inside is not None:
        check_no_symlinks(inside, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp)  # the library replaces the file (mode 0600 again): set the mode afterwards
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            _open_mode_fd(fd)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        _silent_unlink(tmp)
        if (
            isinstance(exc, OSError)
            and exc.errno in FULL_ERRNOS
            or "No space left" in str(exc)
            or "Disk quota" in str(exc)
        ):
            raise StoreFullError(
                errno.ENOSPC, f"no space left (disk full or quota exceeded) while writing {path}"
            ) from exc
        raise
    fsync_dir(path.parent)
    return size


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def atomic_write_json(path: Path, obj, inside: Path | None = None) -> str:
    return atomic_write_bytes(path, (json.dumps(obj, sort_keys=True, indent=1, allow_nan=True) + "\n").encode(), inside)


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
