"""The store's two locks (``flock``): the coordinator's (one coordinator drives a store) and each unit's (one process
runs a unit). A lock is held by an open file descriptor, so it goes with its process, however that process ends."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator

from .atomic import atomic_write_json, read_json
from .errors import StoreError
from .layout import StoreLayout
from .records import CoordinatorRecord, RecordError


class Locks:
    def __init__(self, layout: StoreLayout):
        self.layout = layout

    # ------------------------------------------------------------------ the coordinator's
    @contextmanager
    def coordinator(self, executor: str | None = None) -> Iterator[None]:
        """Hold the store's coordinator lock; a second coordinator gets a StoreError naming the holder. The holder
        (pid, host, start time, executor) is recorded in ``coordinator.json``."""
        root = self.layout.root
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.layout.coordinator_lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder_record() or CoordinatorRecord(None, None, None, None)
                raise StoreError(
                    f"store {root} is already driven by a coordinator (pid {holder.pid or '?'} on host "
                    f"{holder.host or '?'}, since {time.ctime(holder.started or 0)}); "
                    f"watch it with `lowloss status {root}` or stop that one first"
                ) from None
            record = CoordinatorRecord(os.getpid(), socket.gethostname(), time.time(), executor)
            atomic_write_json(self.layout.coordinator_record, record.to_json())
            yield
        finally:
            os.close(fd)

    def coordinator_holder(self) -> CoordinatorRecord | None:
        """The record of the coordinator driving the store right now (its lock is held), or None."""
        try:
            fd = os.open(self.layout.coordinator_lock, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._holder_record() or CoordinatorRecord(None, None, None, None)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _holder_record(self) -> CoordinatorRecord | None:
        try:
            return CoordinatorRecord.from_json(read_json(self.layout.coordinator_record))
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    # ------------------------------------------------------------------ a unit's
    def take_unit(self, uid: str, kind: str) -> int | None:
        """Take a unit's run lock: the open descriptor holding it (close it to let go), or None when another
        process holds it. The lock file is never opened through a link."""
        fd = os.open(self.layout.unit_lock(uid, kind), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unit_is_running(self, uid: str, kind: str) -> bool:
        """True when a process holds the unit's run lock right now."""
        try:
            fd = os.open(self.layout.unit_lock(uid, kind), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


__all__ = ["Locks", "RecordError"]
