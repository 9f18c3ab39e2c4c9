"""The coordinator: drives a study's unit graph through an executor until every unit is committed or given up.

It owns no state the store does not have: killed and started again, it re-derives everything from the store —
committed units are skipped (the commit marker is the only truth, whatever a scheduler said), failed attempts recorded
there count against a unit's retries, a unit holding its run lock is waited for, not started twice, and planner
stages reach the units they had planned again by planning over the committed results.

Work per finished unit does not grow with the study: readiness is tracked per input (a unit waits on the inputs it
still lacks), and only the open stages that can see the finished unit are planned again.
"""

from __future__ import annotations

import time
from collections import deque
from enum import Enum

from ... import jobs
from ..executors import Ending, Executor, ExecutorError, Submission
from ..runtime import UnitTask
from ..spec import Study
from ..store import (
    AttemptRecord,
    AttemptState,
    DamagedError,
    RunSettings,
    Store,
    StoredState,
    StoreFullError,
    verify_unit,
)
from .graph import Planner, Unit
from .outcome import Outcome
from .progress import Reporter

PLAN_WRITE_INTERVAL_S = 1.0


class UnitState(str, Enum):
    """Where a unit stands in this coordinator's run."""

    WAITING = "waiting"  # for inputs it still lacks
    READY = "ready"  # to be submitted
    ACTIVE = "active"  # handed to the executor
    EXTERNAL = "external"  # run by another process (it holds the unit's lock): waited for
    DONE = "done"
    FAILED = "failed"  # its retries are spent
    CANCELLED = "cancelled"
    DAMAGED = "damaged"
    BLOCKED = "blocked"  # an input will never be done

    @property
    def given_up(self) -> bool:
        return self in (UnitState.FAILED, UnitState.CANCELLED, UnitState.DAMAGED, UnitState.BLOCKED)

    @property
    def unfinished(self) -> bool:
        return self in (UnitState.WAITING, UnitState.READY, UnitState.ACTIVE, UnitState.EXTERNAL)


class Coordinator:
    def __init__(
        self,
        study: Study,
        store: Store,
        executor: Executor,
        retries: int,
        reporter: Reporter,
        data_root: str | None = None,
        retry_failed: bool = False,
        repair: bool = False,
    ):
        self.study = study
        self.store = store
        self.executor = executor
        self.retries = retries
        self.reporter = reporter
        self.data_root = data_root
        self.retry_failed = retry_failed
        self.repair = repair
        self.outcome = Outcome()
        self.planner = Planner(study, self._result, self._given_up)
        self._results: dict[str, dict] = {}
        self._state: dict[str, UnitState] = {}
        self._unmet: dict[str, set[str]] = {}
        self._waiters: dict[str, list[str]] = {}
        self._ready: deque[str] = deque()
        self._external: set[str] = set()
        self._unrecorded: dict[str, int] = {}  # failures of workers that died before recording an attempt
        self._plan_written = 0.0
        self._plan_dirty = True

    # ------------------------------------------------------------------ what the planner sees
    def _result(self, uid: str) -> dict | None:
        if uid in self._results:
            return self._results[uid]
        unit = self.planner.units.get(uid)
        if unit is None or self._state.get(uid, UnitState.DONE) is not UnitState.DONE:
            return None
        try:
            result = self.store.read.result(uid, unit.kind)
        except DamagedError:
            return None
        if result is not None:
            self._results[uid] = result
        return result

    def _given_up(self, uid: str) -> bool:
        state = self._state.get(uid)
        return state is not None and state.given_up

    # ------------------------------------------------------------------ tracking units
    def _track(self, units: list[Unit]) -> None:
        """Give new units their state from the store: done, damaged, given up, or waiting on their inputs."""
        if self.repair:
            self._repair(units)
        for unit in units:
            if unit.id not in self._state:
                self._track_one(unit)

    def _track_one(self, unit: Unit) -> None:
        uid = unit.id
        self.store.refuse_unit_links(uid, unit.kind)  # a link stops the run once, before it costs an attempt
        stored = self.store.state(uid, unit.kind)
        if stored is StoredState.DONE:
            self.store.attempts.close_committed(uid, unit.kind)
            self._state[uid] = UnitState.DONE
            self.outcome.reused.append(uid)
            return
        if stored is StoredState.DAMAGED:
            self._state[uid] = UnitState.DAMAGED
            self.outcome.damaged.append(uid)
            return
        if stored is not StoredState.RUNNING:
            self._close_stale(unit)
        if self.retry_failed:
            self.store.attempts.forgive_failures(uid, unit.kind)
        if self.store.attempts.failure_count(uid, unit.kind) > self.retries:
            self._give_up(unit, self._last_error(unit, "earlier attempts failed"), announce=False)
            return
        unmet = {inp for inp in unit.input_ids if self._state.get(inp) is not UnitState.DONE}
        if any(self._given_up(inp) for inp in unmet):
            self._block(unit)
            return
        self._unmet[uid] = unmet
        for inp in unmet:
            self._waiters.setdefault(inp, []).append(uid)
        self._state[uid] = UnitState.WAITING
        if not unmet:
            self._make_ready(uid)

    def _close_stale(self, unit: Unit) -> None:
        """Close the attempt record an earlier run left "running" (its process is gone). Local and Ray workers die
        with their coordinator, so such a record is the mark of a killed coordinator: ``interrupted``, no retry spent.
        A Slurm job outlives its coordinator: its record ends as ``lost``, as when a live coordinator sees it die."""
        stale = self.store.attempts.stale(unit.id, unit.kind)
        if stale is None or stale.executor == "slurm":
            self.store.attempts.close_lost(unit.id, unit.kind)
        else:
            why = "its coordinator ended (killed?) and the worker with it; resumed by a later run"
            self.store.attempts.close_lost(unit.id, unit.kind, AttemptState.INTERRUPTED, why)

    def _repair(self, units: list[Unit]) -> None:
        """--repair: damaged units (every committed file checked against its marker, as `verify` does), committed
        units that stand on an input that runs again (it is no longer committed, or ran in this run), and every
        committed unit planned downstream of them, are moved aside."""
        reused = set(self.outcome.reused)
        damaged = [
            u for u in units if u.id not in self._state and (self._damaged(u) or self._input_runs_again(u, reused))
        ]
        if not damaged:
            return
        users: dict[str, list[Unit]] = {}
        for u in self.planner.units.values():
            for inp in u.input_ids:
                users.setdefault(inp, []).append(u)
        todo, seen = list(damaged), set()
        while todo:
            u = todo.pop()
            if u.id in seen:
                continue
            seen.add(u.id)
            if (
                self.store.layout.unit_dir(u.id, u.kind).exists()
                and self._state.get(u.id, UnitState.DONE) is UnitState.DONE
            ):
                self._move_aside(u)
            todo.extend(users.get(u.id, []))

    def _move_aside(self, unit: Unit) -> None:
        where = self.store.quarantine(unit.id, unit.kind)
        self._state.pop(unit.id, None)
        self._results.pop(unit.id, None)
        if unit.id in self.outcome.reused:
            self.outcome.reused.remove(unit.id)
        self.outcome.repaired.append(unit.id)
        self.reporter.note(
            unit, f"moved aside to {where} (damaged, or downstream of a damaged or re-run unit); it runs again"
        )

    def _input_runs_again(self, unit: Unit, reused: set[str]) -> bool:
        """A committed unit with an input that is not committed (its commit marker or its directory is gone), or that
        this run tracked without reusing it (it runs, or ran, again): the unit must not stay on top of it."""
        if not unit.input_ids or not self.store.read.is_committed(unit.id, unit.kind):
            return False
        for inp in unit.input_ids:
            if inp in self._state:
                if inp not in reused:
                    return True
            elif not self.store.read.is_committed(inp, self.planner.units[inp].kind):
                return True
        return False

    def _damaged(self, unit: Unit) -> bool:
        if not self.store.layout.unit_dir(unit.id, unit.kind).exists():
            return False
        if self.store.read.is_damaged(unit.id, unit.kind):
            return True
        if not self.store.read.is_committed(unit.id, unit.kind):
            return False
        return bool(verify_unit(self.store.read, unit.id, unit.kind).damage)

    def _make_ready(self, uid: str) -> None:
        self._state[uid] = UnitState.READY
        self._ready.append(uid)

    def _block(self, unit: Unit) -> None:
        self._state[unit.id] = UnitState.BLOCKED
        self.outcome.blocked.append(unit.id)
        self._cascade(unit.id)

    def _give_up(self, unit: Unit, error: str, announce: bool = True) -> None:
        self._state[unit.id] = UnitState.FAILED
        self.outcome.failed[unit.id] = error
        if announce:
            last = self.store.attempts.records(unit.id, unit.kind)
            log = (last[-1].log or "?") if last else "?"
            self.reporter.finished(unit, "failed", _last_line(error) + f" (log: {log})")
        self._cascade(unit.id)

    def _cascade(self, uid: str) -> None:
        """Units waiting on a unit that will never be done are blocked (and so on down)."""
        for waiter in self._waiters.pop(uid, []):
            if self._state.get(waiter) is UnitState.WAITING:
                self._block(self.planner.units[waiter])
        new = self.planner.finished(uid)  # a planner may route around a given-up unit
        if new:
            self._add(new)
        self._plan_dirty = True

    def _done(self, uid: str) -> None:
        self._state[uid] = UnitState.DONE
        for waiter in self._waiters.pop(uid, []):
            unmet = self._unmet.get(waiter)
            if unmet is None:
                continue
            unmet.discard(uid)
            if not unmet and self._state.get(waiter) is UnitState.WAITING:
                self._make_ready(waiter)
        new = self.planner.finished(uid)
        if new:
            self._add(new)

    def _add(self, units: list[Unit]) -> None:
        self._track(units)
        self.reporter.add_units({u.id: u for u in units})
        self._plan_dirty = True

    def _write_plan(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or (self._plan_dirty and now - self._plan_written >= PLAN_WRITE_INTERVAL_S):
            self.store.write_plan(self.planner.document())
            self._plan_written, self._plan_dirty = now, False

    def _last_error(self, unit: Unit, fallback: str) -> str:
        attempts = self.store.attempts.records(unit.id, unit.kind)
        return (attempts[-1].error if attempts else None) or fallback

    # ------------------------------------------------------------------ the loop
    def run(self) -> Outcome:
        self._start()
        try:
            self._loop()
        finally:
            self._stop()
        return self.outcome

    def _start(self) -> None:
        """Plan what the store allows, take each unit's state from the store, and re-attach to live scheduler jobs."""
        run = self.study.run
        self.store.refuse_links()  # before anything is written: nothing may land outside the store
        locks = self.store.locks  # the mechanism its coordinator lock resolved: the units take theirs the same way
        self.store.write_run_settings(
            RunSettings(
                self.data_root, run.checkpoint_seconds, run.device, run.executor, locks.mechanism, locks.lease_seconds
            )
        )
        self._track(self.planner.settle())
        self._write_plan(force=True)
        self.reporter.start({u.id: u for u in self.planner.units.values()}, set(self.outcome.reused))
        for uid in self.outcome.damaged:
            self.reporter.note(
                self.planner.units[uid],
                "is damaged (its commit marker or files disagree): not used; "
                f"`lowloss resume {self.store.root} --repair` runs it again",
            )
        waiting = {uid for uid, st in self._state.items() if st in (UnitState.READY, UnitState.WAITING)}
        attached = self.executor.attach(waiting)
        for uid in attached:
            self._state[uid] = UnitState.ACTIVE
        if attached:
            self.reporter.message(
                f"re-attached to scheduler jobs of {len(attached)} running unit(s); nothing is submitted twice"
            )

    def _loop(self) -> None:
        while True:
            self._submit_ready()
            if not self.executor.active() and not self._ready:
                if not self._external:
                    return
                time.sleep(1.0)
                self._refresh_external()
                continue
            for fin in self.executor.poll(timeout=0.5):
                self._finished(self.planner.units[fin.uid], fin.how, fin.detail)
                if self.outcome.nospace:
                    return
            self._write_plan()
            self.reporter.tick(self.executor.active())

    def _stop(self) -> None:
        """The run's end (also on a stop or an error): stop what runs, account for every unit, write the plan."""
        active = self.executor.active()
        if active:
            if self.executor.keeps_running:
                self.reporter.message(self.executor.detach_message(len(active), str(self.store.root)))
            else:
                self.reporter.message("stopping running units (they checkpoint and resume next time)")
        self.executor.close()
        if not self.executor.keeps_running:
            for uid in sorted(active):
                self._settle_stopped(self.planner.units[uid])
        try:
            self._write_plan(force=True)
        except StoreFullError:
            pass
        self.reporter.stop()
        self._settle_outcome()

    def _settle_stopped(self, unit: Unit) -> None:
        if self.store.read.is_committed(unit.id, unit.kind):  # it reached its commit while it was being stopped
            self.outcome.done.append(unit.id)
            self.reporter.finished(unit, "done")
            self._done(unit.id)
            return
        # a unit this coordinator stopped is interrupted, not failed: no retry is spent
        self.store.attempts.close_lost(unit.id, unit.kind, AttemptState.INTERRUPTED)
        self.reporter.finished(unit, "interrupted", "stopped; a resume continues it")

    def _submission(self, unit: Unit) -> Submission:
        inputs = tuple((inp, self.planner.units[inp].kind) for inp in unit.input_ids)
        resources = jobs.get_kind(unit.kind).resources(unit.params)
        return Submission(UnitTask(unit.id, unit.kind, inputs), resources, unit.label)

    def _submit_ready(self) -> None:
        free = self.executor.capacity - len(self.executor.active())
        batch: list[Submission] = []
        while self._ready and len(batch) < free:
            uid = self._ready.popleft()
            if self._state.get(uid) is not UnitState.READY:
                continue
            unit = self.planner.units[uid]
            self.store.write_unit(unit.record)
            if self.store.locks.unit_is_running(uid, unit.kind):
                self._state[uid] = UnitState.EXTERNAL
                self._external.add(uid)
                self.reporter.note(unit, "is running in another process; waiting for it")
                continue
            batch.append(self._submission(unit))
        if not batch:
            return
        try:
            self.executor.submit(batch)
        except Exception as exc:  # sbatch refused, Ray unreachable: say so, keep the store as it is
            for sub in batch:
                self._make_ready(sub.uid)
            said = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ExecutorError(
                f"{self.executor.name} could not take {len(batch)} unit(s): {said}; "
                f"committed work is kept, `lowloss resume {self.store.root}` continues"
            ) from exc
        for sub in batch:
            self._state[sub.uid] = UnitState.ACTIVE
            unit = self.planner.units[sub.uid]
            if self.store.resumable_from(sub.uid, unit.kind) and sub.uid not in self.outcome.resumed:
                self.outcome.resumed.append(sub.uid)
            self.reporter.started(unit)

    def _refresh_external(self) -> None:
        for uid in list(self._external):
            unit = self.planner.units[uid]
            if not self.store.locks.unit_is_running(uid, unit.kind):
                self._external.discard(uid)
                if self.store.read.is_committed(uid, unit.kind):
                    self.outcome.done.append(uid)
                    self.reporter.finished(unit, "done")
                    self._done(uid)
                else:
                    self._make_ready(uid)

    def _finished(self, unit: Unit, how: Ending, detail: str) -> None:
        uid = unit.id
        if self.store.read.is_committed(uid, unit.kind):  # the commit marker is the only truth
            self.outcome.done.append(uid)
            self.reporter.finished(unit, "done")
            self._done(uid)
            return
        self.store.attempts.close_lost(uid, unit.kind)
        attempts = self.store.attempts.records(uid, unit.kind)
        last = attempts[-1] if attempts else None
        state = last.state if last else None
        if state is AttemptState.NOSPACE:
            self._state[uid] = UnitState.WAITING
            self.outcome.nospace = (last.error if last else None) or "no space left on the store's file system"
            self.reporter.finished(unit, "stopped", self.outcome.nospace)
            return
        if how is Ending.CANCELLED:
            self._state[uid] = UnitState.CANCELLED
            self.outcome.cancelled.append(uid)
            self.reporter.finished(unit, "cancelled", f"{detail}; it stays resumable: `lowloss run` again continues it")
            self._cascade(uid)
            return
        if state in (AttemptState.PREEMPTED, AttemptState.INTERRUPTED):
            self.reporter.finished(unit, "preempted", "resubmitting; it resumes from its checkpoint")
            self._make_ready(uid)
            return
        self._failed(unit, how, detail, last)

    def _failed(self, unit: Unit, how: Ending, detail: str, record: AttemptRecord | None) -> None:
        """An attempt that ended without a commit: retry the unit, or give up once its retries are spent."""
        if record is None or record.died_silently:
            where = (record.log if record else None) or self.store.launcher_log()
            error = f"the worker ended without a result ({how.value}: {detail}); see {where}"
        else:
            error = record.error or f"the worker ended without a result ({how.value}: {detail})"
        if record is None:  # the worker died before it could record an attempt (it could not even start)
            self._unrecorded[unit.id] = self._unrecorded.get(unit.id, 0) + 1
        failures = self.store.attempts.failure_count(unit.id, unit.kind) + self._unrecorded.get(unit.id, 0)
        if failures > self.retries:
            self._give_up(unit, error)
        else:
            self.reporter.finished(unit, "retry", f"attempt {failures} failed: {_last_line(error)}")
            self._make_ready(unit.id)

    def _settle_outcome(self) -> None:
        """Units that never ran this time, and open stages with nothing left to run."""
        self.outcome.pending = [uid for uid, st in self._state.items() if st.unfinished]
        self.outcome.stalled = (
            []
            if self.outcome.pending
            else [f"{name}: {self.planner.stages[name].note or 'open'}" for name in self.planner.open_stages()]
        )
        self.outcome.settled = True


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else text
