"""What the store raises: problems the user must fix, and damage (a file that disagrees with what its marker recorded).

``StoreFullError``, ``SymlinkRefused`` and ``StoreReadOnlyError`` come from the atomic writes (``atomic.py``)."""

from __future__ import annotations

from pathlib import Path

from .atomic import StoreFullError, StoreReadOnlyError, SymlinkRefused


class StoreError(Exception):
    """A problem with the store that the user must fix (wrong study, locked, not a store)."""


class DamagedError(StoreError):
    """A committed file does not match what its marker recorded: it is never used."""

    def __init__(self, root: Path, uid: str, problem: str):
        self.uid, self.problem = uid, problem
        super().__init__(
            f"unit {uid}: {problem}; `lowloss verify {root}` lists every damaged file, "
            f"`lowloss resume {root} --repair` moves damaged units aside and runs them again"
        )


__all__ = ["DamagedError", "StoreError", "StoreFullError", "StoreReadOnlyError", "SymlinkRefused"]
