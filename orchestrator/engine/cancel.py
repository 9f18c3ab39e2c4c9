"""Stopping a study from another shell (``lowloss cancel``): the Slurm jobs of a store (or of some of its units), or —
for a local or Ray run — its coordinator (SIGTERM, as Ctrl-C: running units checkpoint). Units keep their checkpoints;
``lowloss resume`` continues them."""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from ..executors.slurm import cancel_units
from ..spec import SpecError
from ..store import CoordinatorRecord, Store, StoreError
from ..store.leases import process_start

STOP_WAIT_S = 600


class Cancelled(str, Enum):
    NOTHING = "nothing"  # no Slurm jobs recorded, no coordinator to stop
    SLURM_JOBS = "slurm_jobs"
    COORDINATOR = "coordinator"  # a local/Ray coordinator was asked to stop and let go of the store
    ELSEWHERE = "elsewhere"  # the coordinator runs on another host: stop it there
    STILL_RUNNING = "still_running"  # it did not let go of the store in time


@dataclass
class CancelResult:
    how: Cancelled
    jobs: list[str] = field(default_factory=list)
    holder: CoordinatorRecord | None = None


def cancel(
    store: Store, uids: list[str] | None, asked: Callable[[CoordinatorRecord], None] | None = None
) -> CancelResult:
    """Stop the study in ``store`` (or the Slurm jobs of ``uids``). ``asked(holder)`` is called once a coordinator
    has been signalled, before waiting for it."""
    holder = store.locks.coordinator_holder()
    if holder is not None and holder.executor in ("local", "ray"):
        return _stop_coordinator(store, holder, uids, asked)
    jobs = cancel_units(store.root, uids)
    return CancelResult(Cancelled.SLURM_JOBS if jobs else Cancelled.NOTHING, jobs, holder)


def not_the_holder(store: Store, holder: CoordinatorRecord) -> str | None:
    """Why the process ``coordinator.json`` names is not provably the coordinator holding the store's lock (None when
    it is): the record's token must be the one the lock's holder wrote, and the pid must be the very process that
    wrote it (its start time: a reused pid has another)."""
    assert holder.pid is not None
    if holder.token is None or holder.token not in store.locks.holder_tokens():
        return "coordinator.json does not carry the token the lock's holder wrote"
    if holder.process_start is None or process_start(holder.pid) != holder.process_start:
        return "that pid is not the process that took the lock (it ended, and the pid may belong to another one now)"
    return None


def _stop_coordinator(
    store: Store, holder: CoordinatorRecord, uids: list[str] | None, asked: Callable[[CoordinatorRecord], None] | None
) -> CancelResult:
    """SIGTERM to a local or Ray coordinator (its units checkpoint, as on Ctrl-C), then wait for it to let go of the
    store."""
    if uids:
        raise SpecError(
            "units",
            " ".join(u[:12] for u in uids),
            f"a {holder.executor} run is cancelled as a whole: `lowloss cancel {store.root}` without unit ids stops "
            f"its coordinator, its running units checkpoint, and `lowloss resume {store.root}` continues them",
        )
    if holder.host != socket.gethostname() or holder.pid is None:
        return CancelResult(Cancelled.ELSEWHERE, holder=holder)
    refused = not_the_holder(store, holder)
    if refused is not None:
        raise StoreError(
            f"not signalling pid {holder.pid}: {refused}; coordinator.json may be stale or edited — "
            f"`lowloss status {store.root}` shows whether a study is running"
        )
    try:
        os.kill(holder.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended meanwhile
    if asked is not None:
        asked(holder)
    deadline = time.monotonic() + STOP_WAIT_S
    while store.locks.coordinator_holder() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if store.locks.coordinator_holder() is not None:
        return CancelResult(Cancelled.STILL_RUNNING, holder=holder)
    return CancelResult(Cancelled.COORDINATOR, holder=holder)
