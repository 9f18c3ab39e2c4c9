"""Whether a file's content is what its marker recorded: sha256, hashed once per process per unchanged file — and
once per unit in a process that runs many (``forget_verified`` before each: a file corrupted in place keeps its size,
mtime and inode, so no metadata key can notice bit rot; only hashing again does)."""

from __future__ import annotations

from pathlib import Path

from .atomic import sha256_file

# files whose sha256 was found equal to what their marker recorded, in this process: (path, size, mtime_ns, inode,
# device, sha256). A file rewritten or modified in place changes its mtime (or inode) and is hashed again.
_VERIFIED: set[tuple] = set()
# commit markers of lowloss 0.1 (they name no unit) found to match their unit's files: (store, unit id, kind, digest)
BOUND_LEGACY: set[tuple] = set()


def digest_matches(path: Path, expected: str | None) -> bool:
    """True when the file's sha256 is ``expected`` (hashed once per process per unchanged file)."""
    if not isinstance(expected, str):
        return False
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, expected)
    if key in _VERIFIED:
        return True
    if sha256_file(path) != expected:
        return False
    _VERIFIED.add(key)
    return True


def forget_verified() -> None:
    """Hash every file again at its next read (what a fresh process does; the benchmarks' cold reads)."""
    _VERIFIED.clear()
    BOUND_LEGACY.clear()
