"""One attempt of one unit on this node: take the unit's lock, record the attempt, run the kind with its output in the
attempt's log, and record how it ended.

A unit's success is its commit marker, never this process's exit code. Each attempt gets a record and a log under the
unit's ``attempts/``; a traceback goes into the record. On SIGTERM/SIGUSR2 (preemption, time limit) the unit writes its
resume checkpoint at the next segment boundary and the attempt ends as ``preempted``; a unit kind without checkpoints
stops once its next segment is committed (``StoreContext.write_segment`` raises ``Preempted``), so no kind runs on
after a stop request.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Iterator

from ... import jobs
from ..store import AttemptRecord, AttemptState, LeaseLost, Store, StoreFullError, UnitHold, UnitRecord
from ..store.atomic import FULL_ERRNOS, open_nofollow
from .context import StoreContext
from .process import allocated_cpus, device_for
from .signals import Preempted, RunningAttempt, StopSignals
from .task import UnitOutcome, UnitTask

RESERVE_BYTES = 256 * 1024


def nospace_error(store: Store) -> str:
    return (
        "no space left (disk full or quota exceeded) on the store's file system; every committed segment is intact — "
        f"free space or raise the quota, then `lowloss resume {store.root}`"
    )


def run_unit(store: Store, task: UnitTask, executor: str = "local", job_id: str | None = None) -> UnitOutcome:
    """Run one unit to its commit marker (or record why not)."""
    record = store.unit(task.uid, task.kind)
    if store.read.is_committed(task.uid, task.kind):
        return UnitOutcome.DONE
    hold = store.locks.take_unit(task.uid, task.kind)
    if hold is None:
        print(f"unit {task.uid} is being run by another process; leaving it", file=sys.stderr)
        return UnitOutcome.BUSY
    try:
        if store.read.is_committed(task.uid, task.kind):
            return UnitOutcome.DONE
        return Attempt(store, task, record, executor, job_id, hold).run()
    finally:
        hold.release()


class Attempt:
    """The next attempt of a unit whose lock this process holds."""

    def __init__(
        self, store: Store, task: UnitTask, record: UnitRecord, executor: str, job_id: str | None, hold: UnitHold
    ):
        self.store, self.task, self.unit, self.hold = store, task, record, hold
        previous = store.attempts.records(task.uid, task.kind)
        number = (previous[-1].attempt if previous else 0) + 1
        self.path, self.log_path, self.reserve = store.attempts.files(task.uid, task.kind, number)
        self.record = AttemptRecord(
            attempt=number,
            state=AttemptState.RUNNING,
            host=socket.gethostname(),
            pid=os.getpid(),
            executor=executor,
            job_id=job_id,
            started=time.time(),
            log=str(self.log_path),
        )
        self.notes: list[str] = []
        self.device = "none"

    def run(self) -> UnitOutcome:
        try:
            self._open()
        except OSError as exc:
            self.reserve.unlink(missing_ok=True)
            if exc.errno not in FULL_ERRNOS and not isinstance(exc, StoreFullError):
                raise
            return self._record_nospace()
        StopSignals.running = RunningAttempt(self.store, self.task.uid, self.task.kind, self.record)
        cpu_start = time.process_time()
        try:
            state, error = self._run_logged()
        finally:
            StopSignals.running = None
        self.reserve.unlink(missing_ok=True)
        # CPU seconds of this process while the unit ran (all its threads) and the device it used: the cost figures
        # of reports (e.g. the compare stage's table); never part of a unit's content or digest
        self.record = self.record.closed(
            state,
            finished=time.time(),
            error=error,
            cpu_s=round(time.process_time() - cpu_start, 3),
            device=self.device,
            notes=tuple(self.notes),
        )
        try:
            self.store.attempts.write(self.task.uid, self.task.kind, self.record)
            self.store.attempts.remove_leftovers(self.task.uid, self.task.kind)  # this process holds the unit's lock
        except OSError:
            if state is AttemptState.DONE:
                raise
            return self._record_nospace()
        return UnitOutcome(state.value)

    def _open(self) -> None:
        """Record the attempt as running, and hold back space so that its final record can be written even when
        the disk fills up mid-run."""
        self.store.attempts.write(self.task.uid, self.task.kind, self.record)
        with open_nofollow(self.store.root, self.reserve, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())

    def _record_nospace(self) -> UnitOutcome:
        """Best effort: say in the attempt record that the disk is full (that attempt burns no retry)."""
        self.record = self.record.closed(
            AttemptState.NOSPACE, finished=time.time(), log=None, error=nospace_error(self.store)
        )
        try:
            self.store.attempts.write(self.task.uid, self.task.kind, self.record)
        except OSError:
            try:
                self.path.unlink(missing_ok=True)  # better no record than one that says "running" forever
            except OSError:
                pass
        return UnitOutcome.NOSPACE

    def _run_logged(self) -> tuple[AttemptState, str | None]:
        """Run the kind with this process's output in the attempt's log; (how it ended, why)."""
        with self._output_to_log():
            try:
                self._run_kind()
                if not self.store.read.is_committed(self.task.uid, self.task.kind):
                    why = f"unit kind {self.unit.kind!r} returned without committing (a bug in the kind)"
                    return AttemptState.FAILED, why
                return AttemptState.DONE, None
            except Preempted as exc:
                print(f"preempted: {exc}", flush=True)
                return AttemptState.PREEMPTED, str(exc)
            except LeaseLost as exc:  # another process runs the unit now: stop writing for it, spend no retry
                print(str(exc), flush=True)
                return AttemptState.INTERRUPTED, str(exc)
            except OSError as exc:
                if not isinstance(exc, StoreFullError) and exc.errno not in FULL_ERRNOS:
                    return self._failed()
                self.reserve.unlink(missing_ok=True)
                try:
                    print(nospace_error(self.store), flush=True)
                except OSError:
                    pass
                return AttemptState.NOSPACE, nospace_error(self.store)
            except BaseException:
                return self._failed()

    def _failed(self) -> tuple[AttemptState, str]:
        tb = traceback.format_exc()
        print(tb, flush=True)
        if StopSignals.received is not None:  # stopped by a signal on the way (e.g. a second SIGTERM)
            return AttemptState.PREEMPTED, f"signal {StopSignals.received}: stopped before a checkpoint\n{tb}"
        return AttemptState.FAILED, tb

    def _run_kind(self) -> None:
        run = self.store.run_settings()
        kind = jobs.get_kind(self.unit.kind)
        params = kind.Params.model_validate(self.unit.params)
        threads = kind.resources(params).cpus  # the kind's, never the allocation's: results depend on it
        device = None
        if kind.needs_torch:
            import torch

            torch.set_num_threads(threads)
            device = device_for(run.device)
        self.device = str(device) if device is not None else "none"
        print(
            f"[{time.strftime('%H:%M:%S')}] unit {self.unit.id} kind={self.unit.kind} attempt={self.record.attempt} "
            f"host={socket.gethostname()} pid={os.getpid()} device={device} threads={threads} "
            f"cpus={allocated_cpus()}",
            flush=True,
        )
        ctx = StoreContext(self.store, self.task, self.unit, self.record.attempt, run, device)
        ctx.writer.guard = self.hold.check  # under leases: no write once the lease is lost
        try:
            kind.run(ctx, params)
        finally:
            self.notes = ctx.notes

    @contextmanager
    def _output_to_log(self) -> Iterator[None]:
        """This process's stdout and stderr (its file descriptors: native code's output too) into the attempt's log."""
        saved = os.dup(1), os.dup(2)
        with open_nofollow(self.store.root, self.log_path, "a", buffering=1) as log:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stdout.flush(), sys.stderr.flush()
                except OSError:
                    pass
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
