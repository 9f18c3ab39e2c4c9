"""A unit's attempts: one record and one log each (``attempts/<n>.json``, ``<n>.log``), how they ended, and how many
count against the unit's retries."""

from __future__ import annotations

import time
from pathlib import Path

from .atomic import TEMP_PREFIX, atomic_write_json, read_json, remove_files_nofollow
from .errors import DamagedError
from .layout import StoreLayout
from .locks import Locks
from .reading import CommittedReader
from .records import (
    COMMITTED_CLOSED_LATER,
    COMMITTED_UNCLOSED,
    PROCESS_GONE_ERROR,
    AttemptRecord,
    AttemptState,
    ClosedBy,
    RecordError,
    RetryMark,
)


class AttemptLog:
    def __init__(self, layout: StoreLayout, reader: CommittedReader, locks: Locks):
        self.layout, self.reader, self.locks = layout, reader, locks

    def records(self, uid: str, kind: str) -> list[AttemptRecord]:
        """The unit's attempts, oldest first. A last attempt still recorded as running whose commit marker names it
        (killed between its commit and its closing record) reads as done, ``unclosed_commit`` set."""
        d = self.layout.attempts(uid, kind)
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("[0-9]*.json")):
            if p.name.startswith(TEMP_PREFIX):
                continue
            try:
                out.append(AttemptRecord.from_json(read_json(p)))
            except (OSError, ValueError, UnicodeDecodeError):
                continue  # written atomically: an unreadable record was damaged after the fact; it says nothing
        out.sort(key=lambda r: r.attempt)
        if out and out[-1].state is AttemptState.RUNNING:
            try:
                commit = self.reader.commit(uid, kind)
            except DamagedError:
                commit = None
            if commit is not None and commit.attempt == out[-1].attempt:
                out[-1] = out[-1].closed(AttemptState.DONE, note=COMMITTED_UNCLOSED, unclosed_commit=True)
        return out

    def files(self, uid: str, kind: str, attempt: int) -> tuple[Path, Path, Path]:
        """(record, log, space reserve) of one attempt."""
        return self.layout.attempt_files(uid, kind, attempt)

    def write(self, uid: str, kind: str, record: AttemptRecord) -> None:
        atomic_write_json(self.files(uid, kind, record.attempt)[0], record.to_json(), inside=self.layout.root)

    def close_lost(
        self, uid: str, kind: str, state: AttemptState = AttemptState.LOST, error: str | None = None
    ) -> list[int]:
        """Attempts recorded as running whose process is gone (no one holds the unit's lock) are closed as ``state``
        (with ``error`` when the record has none; without one, its process died without a word). Their space
        reserves are removed. Returns the attempt numbers closed."""
        if self.locks.unit_is_running(uid, kind):
            return []
        closed = []
        for rec in self.records(uid, kind):
            if rec.state is AttemptState.RUNNING:
                self.write(
                    uid,
                    kind,
                    rec.closed(
                        state,
                        finished=rec.finished or time.time(),
                        error=rec.error or error or PROCESS_GONE_ERROR,
                        closed_by=None if (rec.error or error) else ClosedBy.PROCESS_GONE,
                    ),
                )
                closed.append(rec.attempt)
        self.remove_leftovers(uid, kind)
        return closed

    def remove_leftovers(self, uid: str, kind: str) -> None:
        """Remove what killed writes leave in a unit's directory once no process runs it (the caller holds its lock,
        or saw it free): space reserves of attempts, and temporary files of writes cut short (readers never use
        them, but they would stay after the study completes)."""
        unit_dir = self.layout.unit_dir(uid, kind)
        folders: dict[Path, list[str]] = {}
        for path in unit_dir.rglob("*"):
            if path.name.startswith(TEMP_PREFIX) or (path.suffix == ".reserve" and path.parent.name == "attempts"):
                folders.setdefault(path.parent, []).append(path.name)
        for folder, names in sorted(folders.items()):
            remove_files_nofollow(self.layout.root, folder, names)

    def close_committed(self, uid: str, kind: str) -> int | None:
        """A committed unit whose attempt record still says running (its process was killed between the commit and
        its closing record) gets that record closed as ``done``, at the commit's time. Returns the attempt closed."""
        records = self.records(uid, kind)
        if not records or not records[-1].unclosed_commit or self.locks.unit_is_running(uid, kind):
            return None
        rec = records[-1]
        commit = self.reader.commit(uid, kind)
        finished = rec.finished or (commit.committed if commit else None) or time.time()
        self.write(
            uid,
            kind,
            rec.closed(AttemptState.DONE, finished=finished, note=COMMITTED_CLOSED_LATER, closed_by=ClosedBy.LATER_RUN),
        )
        self.remove_leftovers(uid, kind)
        return rec.attempt

    def failure_count(self, uid: str, kind: str) -> int:
        """Failed attempts that count against the unit's retries (those after the last ``--retry-failed``)."""
        attempts = self.records(uid, kind)
        if not attempts:
            return 0
        try:
            after = RetryMark.from_json(read_json(self.layout.retries(uid, kind))).after
        except (OSError, ValueError, UnicodeDecodeError, RecordError):
            after = 0
        return sum(1 for a in attempts if a.attempt > after and a.state.spends_retry)

    def forgive_failures(self, uid: str, kind: str) -> None:
        """``--retry-failed``: earlier failures no longer count against the unit's retries."""
        attempts = self.records(uid, kind)
        if attempts:
            mark = RetryMark(attempts[-1].attempt, time.time()).to_json()
            atomic_write_json(self.layout.retries(uid, kind), mark, inside=self.layout.root)

    def stale(self, uid: str, kind: str) -> AttemptRecord | None:
        """The last attempt when it is still recorded as running but no process runs the unit (its process died
        without closing the record), else None."""
        attempts = self.records(uid, kind)
        if attempts and attempts[-1].state is AttemptState.RUNNING and not self.locks.unit_is_running(uid, kind):
            return attempts[-1]
        return None
