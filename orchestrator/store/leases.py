"""Leases: the store's locks where ``flock`` is absent (Lustre without ``-o flock``: ENOSYS) or node-local (Lustre's
``localflock``, NFS's ``local_lock``), where a lock taken on one node is not seen on another.

A lease is a file (``unit.lease``, ``coordinator.lease``) created with ``O_CREAT | O_EXCL`` — one creator wins, on
every POSIX file system and NFS v3/v4 — holding its holder's token, host, pid and process start, and a renewal count.
Its holder rewrites it in place every ``seconds / 6`` (through its name, after checking the name still leads to the
file it created: a lease moved away is lost) and gives up — ``check`` raises ``LeaseLost`` before any further store
write — once it has not managed to renew for ``seconds / 2`` of its own clock.

A lease is stale when its bytes have not changed for ``seconds`` of the *observer's* monotonic clock (no comparison of
two machines' clocks), or at once when its holder ran on this host and that process is gone (pid and start time).
Breaking a stale lease renames it to a name of the breaker's own, checks that what it moved is the very lease it
watched (else it links it back: a live lease keeps its inode, so its holder keeps renewing), removes it, and creates
its own with ``O_EXCL``. A live holder renews three times in the window an observer needs, so it is never broken;
two breakers racing for one stale lease cannot both win the ``O_EXCL`` create.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .atomic import check_no_symlinks, fsync_dir
from .errors import StoreError

LEASE_BYTES = 512  # a lease is rewritten in place at a fixed size: a reader never sees it shrink to nothing
RENEWALS_PER_LEASE = 6


class LeaseLost(StoreError):
    """This process's lease was not renewed in time or was taken over: it must not write for the unit any more."""


@dataclass(frozen=True)
class LeaseRecord:
    """What a lease file holds."""

    token: str
    host: str
    pid: int
    process_start: int | None
    seconds: float
    renewed: float  # the holder's wall clock (a hint for readers; staleness is judged on the observer's clock)
    count: int

    def encode(self) -> bytes:
        data = json.dumps(asdict(self), sort_keys=True).encode()
        if len(data) >= LEASE_BYTES:
            raise ValueError("a lease record outgrew its size")
        return data + b" " * (LEASE_BYTES - len(data) - 1) + b"\n"

    @classmethod
    def decode(cls, data: bytes | None) -> "LeaseRecord | None":
        try:
            obj = json.loads(data or b"")
            return cls(
                str(obj["token"]),
                str(obj["host"]),
                int(obj["pid"]),
                obj.get("process_start"),
                float(obj["seconds"]),
                float(obj["renewed"]),
                int(obj["count"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # mid-rewrite or damaged: it says nothing about its holder

    def live_on_this_host(self) -> bool | None:
        """Whether its holder is a live process of this host (None: it ran on another host, this host cannot tell)."""
        if self.host != socket.gethostname():
            return None
        return process_start(self.pid) is not None and process_start(self.pid) == self.process_start

    def looks_live(self) -> bool:
        """A quick judgement without waiting: its holder is alive on this host, or (elsewhere) it was renewed within
        its length by the holder's clock. Decisions that break a lease wait and watch instead (``Lease.take``)."""
        here = self.live_on_this_host()
        if here is not None:
            return here
        return time.time() - self.renewed < self.seconds


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` on this host (clock ticks since boot; /proc), None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def read_lease(path: Path) -> bytes | None:
    """The bytes of a lease file, None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.read(fd, LEASE_BYTES * 2)
    finally:
        os.close(fd)


class Lease:
    """A lease this process holds (``take``), renewed by a daemon thread until ``release``."""

    def __init__(self, path: Path, record: LeaseRecord, ident: tuple[int, int], on_lost: Callable[[str], None] | None):
        self.path, self.record, self.ident = path, record, ident
        self.on_lost = on_lost
        self.lost: str | None = None
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease {path.name}", daemon=True)

    # ------------------------------------------------------------------ taking
    @classmethod
    def take(
        cls,
        root: Path,
        path: Path,
        seconds: float,
        wait: bool = True,
        on_lost: Callable[[str], None] | None = None,
    ) -> "Lease | None":
        """Create the lease, or break it when it is stale (watching it for ``seconds``, unless ``wait`` is False
        and its holder is not known dead); None when a live holder has it."""
        check_no_symlinks(root, path)
        token = secrets.token_hex(16)
        for _ in range(3):
            lease = cls._create(path, token, seconds, on_lost)
            if lease is not None:
                return lease
            seen = read_lease(path)
            if seen is None:
                continue  # let go of meanwhile: create again
            if not _stale(path, seen, seconds, wait):
                return None
            if not _break(path, seen, token):
                return None
        return None

    @classmethod
    def _create(cls, path: Path, token: str, seconds: float, on_lost: Callable[[str], None] | None) -> "Lease | None":
        pid = os.getpid()
        record = LeaseRecord(token, socket.gethostname(), pid, process_start(pid), seconds, time.time(), 0)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        except FileExistsError:
            return None
        try:
            os.write(fd, record.encode())
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)
        lease = cls(path, record, (st.st_dev, st.st_ino), on_lost)
        lease._thread.start()
        return lease

    # ------------------------------------------------------------------ holding
    @property
    def interval(self) -> float:
        return self.record.seconds / RENEWALS_PER_LEASE

    def renew(self) -> bool:
        """Rewrite the lease in place (one renewal); False, and ``lost`` set, when it is no longer this process's."""
        if self.lost is not None:
            return False
        record = LeaseRecord(**{**asdict(self.record), "renewed": time.time(), "count": self.record.count + 1})
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError as exc:
            return self._lose(f"{self.path} is gone ({exc.strerror}): another process broke the lease")
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.ident:
                return self._lose(f"{self.path} is another process's lease now")
            os.pwrite(fd, record.encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.ESTALE, errno.ENOSPC):
                return True  # a passing file-system error: try again next time; ``check`` bounds the wait
            raise
        finally:
            os.close(fd)
        self.record, self._renewed = record, time.monotonic()
        return True

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this process still holds the lease (renewed within half its length)."""
        if self.lost is None and time.monotonic() - self._renewed > self.record.seconds / 2:
            self._lose(f"{self.path} was not renewed for {self.record.seconds / 2:.0f} s (a stalled process?)")
        if self.lost is not None:
            raise LeaseLost(f"lease lost: {self.lost}; this process stops writing for it")

    def release(self) -> None:
        """Stop renewing and remove the lease (only the file this process created)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        if self.lost is not None:
            return
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self.ident:
            os.unlink(self.path)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.renew():
                    return
            except OSError as exc:
                self._lose(f"{self.path} could not be renewed ({exc.strerror})")
                return

    def _lose(self, why: str) -> bool:
        if self.lost is None:
            self.lost = why
            if self.on_lost is not None:
                self.on_lost(why)
        return False


def _stale(path: Path, seen: bytes, seconds: float, wait: bool) -> bool:
    """Whether the lease holding ``seen`` is stale: its holder is a dead process of this host, or (when ``wait``) its
    bytes stay the same for ``seconds`` of this process's clock (False as soon as they change or the file goes)."""
    record = LeaseRecord.decode(seen)
    here = record.live_on_this_host() if record is not None else None
    if here is not None:
        return not here
    if not wait:
        return False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(seconds / 20, 0.01)))
        if read_lease(path) != seen:
            return False
    return True


def _break(path: Path, seen: bytes, token: str) -> bool:
    """Move the stale lease ``seen`` away and remove it; True when the way is free to create one."""
    broken = path.with_name(f"{path.name}.broken-{token}")
    try:
        os.rename(path, broken)
    except FileNotFoundError:
        return True
    if read_lease(broken) == seen:
        os.unlink(broken)
        return True
    try:  # another breaker's fresh lease was moved: put it back (same inode: its holder keeps renewing it)
        os.link(broken, path)
    except FileExistsError:
        pass
    os.unlink(broken)
    return False


__all__ = ["Lease", "LeaseLost", "LeaseRecord", "StoreError", "process_start", "read_lease"]
