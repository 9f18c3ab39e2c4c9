"""The store's two locks: the coordinator's (one coordinator drives a store) and each unit's (one process runs a
unit), held by one of two mechanisms (``[run] lock``, recorded in ``run.json`` for the units):

- ``flock`` (the default where it works): held by an open descriptor, so it goes with its process however that
  process ends. Only as good as the file system's ``flock``: on a local disk, NFS v4, Lustre mounted with ``-o
  flock``, GPFS and BeeGFS (with its global locks) every node sees it; under Lustre's ``localflock`` or NFS's
  ``local_lock=flock`` only the node that took it does.
- ``lease`` (``leases.py``): a lease file its holder renews; a dead holder's lease is taken over after its length.
  For file systems without ``flock`` (ENOSYS, EOPNOTSUPP, ENOLCK: ``auto`` falls back to leases by itself) and for
  those whose ``flock`` is node-local (there only the setting can say so: ``lock = "lease"``).

Whatever the mechanism, a process that looks for a holder looks at both (the flock where the file system has one, and
a lease that looks live), so processes of two runs that chose differently never both run a unit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import signal
import socket
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from .atomic import atomic_write_json, check_no_symlinks, read_json
from .errors import StoreError
from .layout import StoreLayout
from .leases import Lease, LeaseLost, LeaseRecord, process_start, read_lease
from .records import CoordinatorRecord, LockMechanism, RecordError, RunSettings

NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


def try_flock(fd: int, shared: bool = False) -> bool | None:
    """Take ``flock`` on ``fd`` without blocking: True taken, False held by another, None when the file system has
    no ``flock`` (ENOSYS on Lustre without ``-o flock``; EOPNOTSUPP, ENOLCK on NFS without its lock service)."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in NO_FLOCK:
            return None
        raise
    return True


class UnitHold:
    """A unit's run lock held by this process: its ``flock`` descriptor, and its lease under leases."""

    def __init__(self, fd: int, lease: Lease | None):
        self.fd, self.lease = fd, lease

    def check(self) -> None:
        """``LeaseLost`` when this process may no longer write for the unit (its lease lapsed or was taken)."""
        if self.lease is not None:
            self.lease.check()

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()
        os.close(self.fd)


class Locks:
    def __init__(self, layout: StoreLayout):
        self.layout = layout
        self._mechanism: LockMechanism | None = None  # None: the one the run's coordinator recorded in run.json
        self._lease_seconds = 60.0

    @property
    def mechanism(self) -> LockMechanism:
        if self._mechanism is None:
            try:
                settings = RunSettings.from_json(read_json(self.layout.run_file))
            except (OSError, ValueError, UnicodeDecodeError):
                settings = RunSettings()
            self._mechanism, self._lease_seconds = settings.lock, settings.lease_seconds
        return self._mechanism

    @property
    def lease_seconds(self) -> float:
        self.mechanism  # noqa: B018  reads run.json once
        return self._lease_seconds

    # ------------------------------------------------------------------ the coordinator's
    @contextmanager
    def coordinator(
        self, executor: str | None = None, mechanism: LockMechanism = LockMechanism.AUTO, lease_seconds: float = 60.0
    ) -> Iterator[LockMechanism]:
        """Hold the store's coordinator lock (yields the mechanism used, ``auto`` resolved); a second coordinator gets
        a StoreError naming the holder. The holder is recorded in ``coordinator.json`` with a token its lock file
        holds too (what ``lowloss cancel`` checks)."""
        root = self.layout.root
        root.mkdir(parents=True, exist_ok=True)
        check_no_symlinks(root, self.layout.coordinator_lock)
        fd = os.open(self.layout.coordinator_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        lease = None
        try:
            taken = try_flock(fd)
            if taken is False:
                raise self._busy()
            resolved = self._resolve(mechanism, taken)
            if resolved is LockMechanism.LEASE:
                lease = Lease.take(root, self.layout.coordinator_lease, lease_seconds, on_lost=_coordinator_lost)
                if lease is None:
                    raise self._busy()
            elif self._live_lease(None) is not None:
                raise self._busy()
            else:
                _clear_dead_lease(self.layout.coordinator_lease)
            token = lease.record.token if lease is not None else secrets.token_hex(16)
            os.ftruncate(fd, 0)
            os.pwrite(fd, token.encode(), 0)
            pid = os.getpid()
            record = CoordinatorRecord(pid, socket.gethostname(), time.time(), executor, process_start(pid), token)
            atomic_write_json(self.layout.coordinator_record, record.to_json(), inside=root)
            self._mechanism, self._lease_seconds = resolved, lease_seconds
            yield resolved
        finally:
            if lease is not None:
                lease.release()
            os.close(fd)

    def _resolve(self, mechanism: LockMechanism, taken: bool | None) -> LockMechanism:
        if mechanism is LockMechanism.AUTO:
            return LockMechanism.FLOCK if taken is not None else LockMechanism.LEASE
        if mechanism is LockMechanism.FLOCK and taken is None:
            raise StoreError(
                f"lock = 'flock', but the file system of store {self.layout.root} has no flock (Lustre mounted "
                "without -o flock, or NFS without its lock service); use lock = 'lease' (or 'auto', which falls back "
                "to leases by itself): `--lock lease`"
            )
        return mechanism

    def _busy(self) -> StoreError:
        holder = self._holder_record() or CoordinatorRecord(None, None, None, None)
        return StoreError(
            f"store {self.layout.root} is already driven by a coordinator (pid {holder.pid or '?'} on host "
            f"{holder.host or '?'}, since {time.ctime(holder.started or 0)}); "
            f"watch it with `lowloss status {self.layout.root}` or stop that one first"
        )

    def coordinator_holder(self) -> CoordinatorRecord | None:
        """The record of the coordinator driving the store right now (its flock is held or its lease looks live), or
        None."""
        held = self._live_lease(None) is not None
        if not held:
            try:
                fd = os.open(self.layout.coordinator_lock, os.O_RDONLY | os.O_NOFOLLOW)
            except (FileNotFoundError, NotADirectoryError):
                return None
            try:
                held = try_flock(fd, shared=True) is False
            finally:
                os.close(fd)
        if not held:
            return None
        return self._holder_record() or CoordinatorRecord(None, None, None, None)

    def holder_tokens(self) -> set[str]:
        """The tokens the coordinator lock's holder wrote: in ``coordinator.lock`` and in a live lease."""
        tokens = set()
        try:
            tokens.add(self.layout.coordinator_lock.read_bytes().decode(errors="replace").strip())
        except OSError:
            pass
        lease = self._live_lease(None)
        if lease is not None:
            tokens.add(lease.token)
        return {t for t in tokens if t}

    def _live_lease(self, unit: tuple[str, str] | None) -> LeaseRecord | None:
        path = self.layout.coordinator_lease if unit is None else self.layout.unit_lease(*unit)
        record = LeaseRecord.decode(read_lease(path))
        return record if record is not None and record.looks_live() else None

    def _holder_record(self) -> CoordinatorRecord | None:
        try:
            return CoordinatorRecord.from_json(read_json(self.layout.coordinator_record))
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    # ------------------------------------------------------------------ a unit's
    def take_unit(self, uid: str, kind: str) -> UnitHold | None:
        """Take a unit's run lock (release the hold to let go), or None when another process holds it. Under leases
        a lease left by a dead process is taken over: at once when it ran on this host, after the lease's length of
        watching it unchanged otherwise. Nothing is opened through a link."""
        root = self.layout.root
        path = self.layout.unit_lock(uid, kind)
        check_no_symlinks(root, path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        taken = try_flock(fd)
        lease = None
        if taken is not False and (taken is None or self.mechanism is LockMechanism.LEASE):
            lease = Lease.take(root, self.layout.unit_lease(uid, kind), self.lease_seconds)
            if lease is None:
                taken = False
        elif taken and self._live_lease((uid, kind)) is not None:
            taken = False
        elif taken:
            _clear_dead_lease(self.layout.unit_lease(uid, kind))
        if taken is False:
            os.close(fd)
            return None
        return UnitHold(fd, lease)

    def unit_is_running(self, uid: str, kind: str) -> bool:
        """True when a process holds the unit's run lock right now (its flock, or a lease that looks live)."""
        if self._live_lease((uid, kind)) is not None:
            return True
        path = self.layout.unit_lock(uid, kind)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                check_no_symlinks(self.layout.root, path)  # names the link
            raise
        try:
            return try_flock(fd, shared=True) is False
        finally:
            os.close(fd)


def _clear_dead_lease(path) -> None:
    """Remove a lease whose holder is a dead process of this host (a flock run after a killed lease run): it can never
    be renewed again. A lease of another host is left alone: this host cannot tell whether its holder lives."""
    data = read_lease(path)
    record = LeaseRecord.decode(data)
    if record is not None and record.live_on_this_host() is False and read_lease(path) == data:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _coordinator_lost(why: str) -> None:
    """The coordinator's lease was lost (it stalled past the lease, and another coordinator may have taken the store):
    stop as on SIGTERM (its units checkpoint), saying why."""
    print(f"lowloss: {why}; stopping this coordinator", file=sys.stderr)
    os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["LeaseLost", "Locks", "RecordError", "UnitHold", "try_flock"]
