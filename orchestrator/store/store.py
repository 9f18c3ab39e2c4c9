"""The study store: one directory per study (``layout.py`` names every path), written atomically, read only through
checks. ``Store`` holds the study's own files (identity, spec, run settings, plan, job records, unit records) and
gives the rest to its parts: ``read`` (what units committed), ``attempts`` (their attempt records) and ``locks``.
"""

from __future__ import annotations

import os
import time
from enum import Enum
from pathlib import Path

from .atomic import atomic_write_bytes, atomic_write_json, check_no_symlinks, open_nofollow, read_json
from .attempts import AttemptLog
from .errors import DamagedError, StoreError
from .layout import FORMAT, UNIT_PREFIX, StoreLayout
from .locks import Locks
from .reading import CommittedReader
from .records import (
    AttemptState,
    JobRecord,
    PlanRecord,
    ProgressRecord,
    RecordError,
    RunSettings,
    StudyIdentity,
    UnitRecord,
)

LOCK_FILES = ("coordinator.lock", "coordinator.json", "coordinator.lease")  # what a refused coordinator leaves


class StoredState(str, Enum):
    """A unit's state as the store alone tells it."""

    DONE = "done"
    DAMAGED = "damaged"
    RUNNING = "running"
    FAILED = "failed"
    PENDING = "pending"


class Store:
    """A study store rooted at a directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.layout = StoreLayout(self.root)
        self.read = CommittedReader(self.layout)
        self.locks = Locks(self.layout)
        self.attempts = AttemptLog(self.layout, self.read, self.locks)

    # ------------------------------------------------------------------ logs
    def launcher_log(self) -> Path:
        """What worker processes print before their unit's own log is open (the folder is made when needed)."""
        self._make_dir(self.layout.logs)
        return self.layout.launcher_log

    def coordinator_log(self) -> Path:
        """Every unit event of every run (started, done, retry, with ids), appended by the coordinator."""
        self._make_dir(self.layout.logs)
        return self.layout.coordinator_log

    def open_log(self, path: Path, buffering: int = -1):
        """A store log (``launcher_log()``, ``coordinator_log()``) opened for appending, never through a link."""
        return open_nofollow(self.root, path, "a", buffering=buffering)

    def _write_json(self, path: Path, obj) -> None:
        atomic_write_json(path, obj, inside=self.root)

    def _make_dir(self, path: Path) -> None:
        """Make a folder of the store (and those on the way), refusing a link anywhere below the store's root."""
        check_no_symlinks(self.root, path)
        path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ links
    def refuse_links(self) -> None:
        """``SymlinkRefused`` naming the first symbolic link found where lowloss writes at the store's level (its
        files and folders, ``units/``, its kind folders and the unit directories in them): checked once before a run
        writes anything."""
        for name in self.layout.store_entries():
            check_no_symlinks(self.root, self.root / name)
        if self.layout.units.is_dir():
            for kind_dir in sorted(self.layout.units.iterdir()):
                check_no_symlinks(self.root, kind_dir)
                for unit_dir in sorted(os.scandir(kind_dir), key=lambda e: e.name):
                    if unit_dir.is_symlink():
                        check_no_symlinks(self.root, Path(unit_dir.path))

    def refuse_unit_links(self, uid: str, kind: str) -> None:
        """``SymlinkRefused`` naming a symbolic link in a unit's directory or its ``attempts/`` (checked before the
        unit is handed to a worker, so that a link costs no attempt and no retry)."""
        unit_dir = self.layout.unit_dir(uid, kind)
        check_no_symlinks(self.root, unit_dir)
        for folder in (unit_dir, self.layout.attempts(uid, kind)):
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_symlink():
                    check_no_symlinks(self.root, Path(entry.path))

    # ------------------------------------------------------------------ study identity
    def exists(self) -> bool:
        return self.layout.study_file.exists()

    def study(self) -> StudyIdentity:
        """The store's identity (study.json); a StoreError when ``root`` is no store (missing, a file, damaged)."""
        self.check_is_directory()
        try:
            return StudyIdentity.from_json(read_json(self.layout.study_file))
        except FileNotFoundError:
            raise StoreError(
                f"{self.root} is not a lowloss store (no study.json); run `lowloss run SPEC --store {self.root}` first"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise StoreError(
                f"{self.layout.study_file} is damaged (not JSON); it names the study and format of the store"
            ) from None

    def check_format(self) -> StudyIdentity:
        """The store's identity; refuses a store written in another format (nothing is written)."""
        identity = self.study()
        if identity.format != FORMAT:
            raise StoreError(
                f"store {self.root} has format {identity.format} and this lowloss reads format {FORMAT}; run the "
                f"study into a new store (`lowloss run SPEC --store NEW_DIR`), or read this one with the lowloss "
                f"release that wrote it"
            )
        return identity

    def check_is_directory(self) -> None:
        """Refuse a store path that is (or lies under) a file, e.g. the spec given where the store belongs."""
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = f"store {self.root}" + ("" if existing == self.root else f": {existing}") + " is a file"
            raise StoreError(
                f"{where}, not a directory; give the study's store directory (the --store of `lowloss run`)"
            )

    def check_study(self, name: str) -> None:
        """Refuse a store that belongs to another study or format (nothing is written)."""
        self.check_is_directory()
        if self.exists():
            other = self.study().study
            if other != name:
                raise StoreError(
                    f"store {self.root} belongs to study {other!r}, not {name!r}; "
                    f"use another --store, or set study.name = {other!r} to continue that study"
                )
            self.check_format()
        elif self.root.exists() and any(
            p
            for p in self.root.iterdir()
            if not p.name.startswith(".")
            and p.name not in ("coordinator.lock", "coordinator.json", "coordinator.lease")
        ):
            raise StoreError(
                f"store directory {self.root} is not empty and is not a lowloss store; choose a new or empty directory"
            )

    def init_study(self, name: str, spec_text: str) -> None:
        self.check_study(name)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            self._write_json(self.layout.study_file, StudyIdentity(name, FORMAT, time.time()).to_json())
        atomic_write_bytes(self.layout.spec_file, spec_text.encode(), inside=self.root)

    def spec_text(self) -> str:
        return self.layout.spec_file.read_text()

    # ------------------------------------------------------------------ run settings, plan, scheduler jobs
    def write_run_settings(self, settings: RunSettings) -> None:
        self._write_json(self.layout.run_file, settings.to_json())

    def run_settings(self) -> RunSettings:
        try:
            return RunSettings.from_json(read_json(self.layout.run_file))
        except (OSError, ValueError, UnicodeDecodeError):
            return RunSettings()

    def write_plan(self, plan: PlanRecord) -> None:
        self._write_json(self.layout.plan_file, plan.to_json())

    def plan(self) -> PlanRecord:
        """The latest plan (no stages before the first run has planned); a StoreError when plan.json is damaged."""
        path = self.layout.plan_file
        try:
            return PlanRecord.from_json(read_json(path))
        except (FileNotFoundError, NotADirectoryError):
            return PlanRecord("")
        except (ValueError, UnicodeDecodeError):
            raise StoreError(
                f"{path} is damaged (not a plan: truncated or garbage); it only lists the stages' units, and "
                f"`lowloss resume {self.root}` plans the study again from its spec.toml and rewrites it "
                f"(committed units are reused)"
            ) from None

    def write_job_record(self, name: str, record: JobRecord) -> None:
        self._write_json(self.layout.job_record(name), record.to_json())

    def job_records(self) -> list[JobRecord]:
        out = []
        for path in sorted(self.layout.jobs.glob("*.json")):
            try:
                out.append(JobRecord.from_json(read_json(path)))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
        return out

    # ------------------------------------------------------------------ units
    def write_unit(self, record: UnitRecord) -> None:
        path = self.layout.unit_record(record.id, record.kind)
        if not path.exists():
            self._write_json(path, record.to_json())

    def unit(self, uid: str, kind: str) -> UnitRecord:
        """The unit's record; its content must hash to its id (a damaged unit.json is never run or read)."""
        return self.read.unit(uid, kind)

    def has_unit(self, uid: str, kind: str) -> bool:
        """Whether the unit's directory holds its record (it was handed to an executor at least once)."""
        return self.layout.unit_record(uid, kind).exists()

    def find_unit(self, prefix: str) -> tuple[str, str]:
        """(unit id, kind) of a unit id or unique prefix of one (hex digits only: never a glob pattern) — the plan's
        units first, then those on disk that the latest plan no longer names (an edited spec's)."""
        if not UNIT_PREFIX.fullmatch(prefix):
            raise StoreError(
                f"unit {prefix!r}: a unit id or a prefix of one is needed — 1 to 64 hex digits 0-9a-f "
                f"(`lowloss status {self.root} --units` lists them)"
            )
        try:
            planned = self.plan().kinds()
        except StoreError:
            planned = {}
        found = {uid: kind for uid, kind in planned.items() if uid.startswith(prefix) and self.has_unit(uid, kind)}
        if not found:
            found = {uid: kind for uid, kind in self.layout.unit_dirs() if uid.startswith(prefix)}
        if len(found) == 1:
            return next(iter(found.items()))
        if not found:
            raise StoreError(
                f"no unit matching {prefix!r} in store {self.root}; `lowloss status {self.root} --units` lists them"
            )
        matches = sorted(found)
        raise StoreError(
            f"unit prefix {prefix!r} is ambiguous ({len(matches)} units: {', '.join(m[:16] for m in matches[:4])}"
            f"{', …' if len(matches) > 4 else ''}); give more characters"
        )

    def state(self, uid: str, kind: str) -> StoredState:
        """done | damaged | running | failed | pending — derived from the store alone. An attempt still recorded as
        running whose process is gone (its lock is free: e.g. its coordinator was killed, and the worker with it) is
        no failure: until a coordinator closes its record the unit is pending, resumable from what it committed."""
        if not self.layout.unit_dir(uid, kind).exists():
            return StoredState.PENDING
        try:
            if self.read.commit(uid, kind) is not None:
                return StoredState.DONE
        except DamagedError:
            return StoredState.DAMAGED
        if self.locks.unit_is_running(uid, kind):
            return StoredState.RUNNING
        attempts = self.attempts.records(uid, kind)
        if attempts and attempts[-1].state in (AttemptState.FAILED, AttemptState.LOST):
            return StoredState.FAILED
        return StoredState.PENDING

    def resumable_from(self, uid: str, kind: str) -> int:
        """How many segments of an uncommitted unit are committed (what a resume continues after)."""
        return len(self.read.segments(uid, kind))

    def quarantine(self, uid: str, kind: str) -> Path:
        """Move a unit's directory aside (``damaged/``) so that it runs again from scratch. Returns the new place."""
        target = self.layout.damaged / f"{uid}-{time.strftime('%Y%m%dT%H%M%S')}"
        source = self.layout.unit_dir(uid, kind)
        check_no_symlinks(self.root, source)  # the unit's own directory is moved, never a link's target
        self._make_dir(target.parent)  # and it stays inside the store
        os.rename(source, target)
        return target

    def write_progress(self, uid: str, kind: str, progress: ProgressRecord) -> None:
        self._write_json(self.layout.progress(uid, kind), progress.to_json())

    def progress(self, uid: str, kind: str) -> ProgressRecord | None:
        try:
            return ProgressRecord.from_json(read_json(self.layout.progress(uid, kind)))
        except (OSError, ValueError, UnicodeDecodeError, RecordError):
            return None
