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
from dataclasses import dataclass, field

from ... import jobs
from ..executors import Executor, Submission
from ..executors.base import ExecutorError
from ..spec.study import Study
from ..store.store import DamagedError, Store, StoreFullError, verify_unit
from .graph import Planner, Unit
from .progress import Reporter

PLAN_WRITE_INTERVAL_S = 1.0


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)  # committed in this run
    reused: list[str] = field(default_factory=list)  # already committed before this run
    resumed: list[str] = field(default_factory=list)  # continued from committed segments of an earlier attempt
    failed: dict[str, str] = field(default_factory=dict)  # uid -> last error (given up)
    blocked: list[str] = field(default_factory=list)  # waiting on a failed, cancelled or damaged input
    cancelled: list[str] = field(default_factory=list)  # cancelled by the user (scancel, `lowloss cancel`)
    damaged: list[str] = field(default_factory=list)  # commit marker or files disagree (`--repair` runs them again)
    repaired: list[str] = field(default_factory=list)  # moved aside by --repair, run again
    pending: list[str] = field(default_factory=list)  # not run (the run was stopped, or a scheduler lost them)
    stalled: list[str] = field(default_factory=list)  # stages still open with nothing left to run
    nospace: str | None = None  # the store's disk filled up
    settled: bool = False  # the run's end was accounted for (pending and stalled are known), also after a stop

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.blocked
            or self.cancelled
            or self.damaged
            or self.pending
            or self.stalled
            or self.nospace
        )


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
        self._state: dict[
            str, str
        ] = {}  # uid -> waiting | ready | active | external | done | failed | cancelled | damaged | blocked
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
        if unit is None or self._state.get(uid) not in (None, "done"):
            return None
        try:
            result = self.store.result(uid, unit.kind)
        except DamagedError:
            return None
        if result is not None:
            self._results[uid] = result
        return result

    def _close_stale(self, unit: Unit) -> None:
        """Close the attempt record an earlier run left "running" (its process is gone). Local and Ray workers die
        with their coordinator, so such a record is the mark of a killed coordinator: ``interrupted``, no retry spent.
        A Slurm job outlives its coordinator: its record ends as ``lost``, as when a live coordinator sees it die."""
        stale = self.store.stale_attempt(unit.id, unit.kind)
        if stale is None or stale.get("executor") == "slurm":
            self.store.close_lost_attempts(unit.id, unit.kind)
        else:
            self.store.close_lost_attempts(
                unit.id,
                unit.kind,
                state="interrupted",
                error="its coordinator ended (killed?) and the worker with it; resumed by a later run",
            )

    def _given_up(self, uid: str) -> bool:
        return self._state.get(uid) in ("failed", "cancelled", "damaged", "blocked")

    # ------------------------------------------------------------------ tracking units
    def _track(self, units: list[Unit]) -> None:
        """Give new units their state from the store: done, damaged, given up, or waiting on their inputs."""
        if self.repair:
            self._repair(units)
        for unit in units:
            uid = unit.id
            if uid in self._state:
                continue
            state = self.store.state(uid, unit.kind)
            if state == "done":
                self.store.close_committed_attempt(uid, unit.kind)
                self._state[uid] = "done"
                self.outcome.reused.append(uid)
                continue
            if state == "damaged":
                self._state[uid] = "damaged"
                self.outcome.damaged.append(uid)
                continue
            if state in ("failed", "running", "pending"):
                if state != "running":
                    self._close_stale(unit)
                if self.retry_failed:
                    self.store.forgive_failures(uid, unit.kind)
                if self.store.failure_count(uid, unit.kind) > self.retries:
                    self._give_up(unit, self._last_error(unit, "earlier attempts failed"), announce=False)
                    continue
            unmet = {inp for inp in unit.input_ids if self._state.get(inp) != "done"}
            if any(self._given_up(inp) for inp in unmet):
                self._block(unit)
                continue
            self._unmet[uid] = unmet
            for inp in unmet:
                self._waiters.setdefault(inp, []).append(uid)
            self._state[uid] = "waiting"
            if not unmet:
                self._make_ready(uid)

    def _repair(self, units: list[Unit]) -> None:
        """--repair: damaged units (every committed file checked against its marker, as `verify` does), and every
        committed unit planned downstream of them, are moved aside."""
        damaged = [u for u in units if u.id not in self._state and self._damaged(u)]
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
            if self.store.unit_dir(u.id, u.kind).exists() and self._state.get(u.id) in (None, "done"):
                where = self.store.quarantine(u.id, u.kind)
                self._state.pop(u.id, None)
                self._results.pop(u.id, None)
                if u.id in self.outcome.reused:
                    self.outcome.reused.remove(u.id)
                self.outcome.repaired.append(u.id)
                self.reporter.note(
                    u, f"moved aside to {where} (damaged, or downstream of a damaged unit); it runs again"
                )
            todo.extend(users.get(u.id, []))

    def _damaged(self, unit: Unit) -> bool:
        if not self.store.unit_dir(unit.id, unit.kind).exists():
            return False
        if self.store.is_damaged(unit.id, unit.kind):
            return True
        if not self.store.is_committed(unit.id, unit.kind):
            return False
        _, damage, _ = verify_unit(self.store, unit.id, unit.kind)
        try:
            self.store.unit(unit.id, unit.kind)
        except DamagedError:
            return True
        return bool(damage)

    def _make_ready(self, uid: str) -> None:
        self._state[uid] = "ready"
        self._ready.append(uid)

    def _block(self, unit: Unit) -> None:
        self._state[unit.id] = "blocked"
        self.outcome.blocked.append(unit.id)
        self._cascade(unit.id)

    def _give_up(self, unit: Unit, error: str, announce: bool = True) -> None:
        self._state[unit.id] = "failed"
        self.outcome.failed[unit.id] = error
        if announce:
            last = self.store.attempts(unit.id, unit.kind)
            log = last[-1].get("log", "?") if last else "?"
            self.reporter.finished(unit, "failed", _last_line(error) + f" (log: {log})")
        self._cascade(unit.id)

    def _cascade(self, uid: str) -> None:
        """Units waiting on a unit that will never be done are blocked (and so on down)."""
        for waiter in self._waiters.pop(uid, []):
            if self._state.get(waiter) == "waiting":
                self._block(self.planner.units[waiter])
        new = self.planner.finished(uid)  # a planner may route around a given-up unit
        if new:
            self._add(new)
        self._plan_dirty = True

    def _done(self, uid: str) -> None:
        self._state[uid] = "done"
        for waiter in self._waiters.pop(uid, []):
            unmet = self._unmet.get(waiter)
            if unmet is None:
                continue
            unmet.discard(uid)
            if not unmet and self._state.get(waiter) == "waiting":
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
        attempts = self.store.attempts(unit.id, unit.kind)
        last = attempts[-1] if attempts else {}
        return last.get("error") or fallback

    # ------------------------------------------------------------------ the loop
    def run(self) -> Outcome:
        self.store.write_run_settings(
            {
                "data_root": self.data_root,
                "checkpoint_seconds": self.study.run.checkpoint_seconds,
                "device": self.study.run.device,
                "executor": self.executor.name,
            }
        )
        units = self.planner.settle()
        self._track(units)
        self._write_plan(force=True)
        self.reporter.start({u.id: u for u in self.planner.units.values()}, set(self.outcome.reused))
        for uid in self.outcome.damaged:
            unit = self.planner.units[uid]
            self.reporter.note(
                unit,
                "is damaged (its commit marker or files disagree): not used; "
                f"`lowloss resume {self.store.root} --repair` runs it again",
            )
        attached = self.executor.attach({uid for uid, st in self._state.items() if st in ("ready", "waiting")})
        for uid in attached:
            self._state[uid] = "active"
        if attached:
            self.reporter.message(
                f"re-attached to scheduler jobs of {len(attached)} running unit(s); nothing is submitted twice"
            )
        try:
            while True:
                self._submit_ready()
                if not self.executor.active() and not self._ready:
                    if self._external:
                        time.sleep(1.0)
                        self._refresh_external()
                        continue
                    break
                for fin in self.executor.poll(timeout=0.5):
                    self._finished(self.planner.units[fin.uid], fin.how, fin.detail)
                    if self.outcome.nospace:
                        break
                if self.outcome.nospace:
                    break
                self._write_plan()
                self.reporter.tick(self.executor.active())
        finally:
            active = self.executor.active()
            if active:
                if self.executor.keeps_running:
                    self.reporter.message(self.executor.detach_message(len(active), str(self.store.root)))
                else:
                    self.reporter.message("stopping running units (they checkpoint and resume next time)")
            self.executor.close()
            if not self.executor.keeps_running:
                for uid in sorted(active):
                    unit = self.planner.units[uid]
                    if self.store.is_committed(uid, unit.kind):  # it reached its commit while it was being stopped
                        self.outcome.done.append(uid)
                        self.reporter.finished(unit, "done")
                        self._done(uid)
                        continue
                    # a unit this coordinator stopped is interrupted, not failed: no retry is spent
                    self.store.close_lost_attempts(uid, unit.kind, state="interrupted")
                    self.reporter.finished(unit, "interrupted", "stopped; a resume continues it")
            try:
                self._write_plan(force=True)
            except StoreFullError:
                pass
            self.reporter.stop()
            self._settle_outcome()
        return self.outcome

    def _submit_ready(self) -> None:
        free = self.executor.capacity - len(self.executor.active())
        batch: list[Submission] = []
        while self._ready and len(batch) < free:
            uid = self._ready.popleft()
            if self._state.get(uid) != "ready":
                continue
            unit = self.planner.units[uid]
            self.store.write_unit(unit.record)
            if self.store.unit_is_running(uid, unit.kind):
                self._state[uid] = "external"
                self._external.add(uid)
                self.reporter.note(unit, "is running in another process; waiting for it")
                continue
            kind = jobs.get_kind(unit.kind)
            params = kind.Params.model_validate(unit.params)
            batch.append(Submission(uid, unit.kind, kind.resources(params), unit.label))
        if not batch:
            return
        try:
            self.executor.submit(batch)
        except Exception as exc:  # sbatch refused, Ray unreachable: say so, keep the store as it is
            for sub in batch:
                self._make_ready(sub.uid)
            raise ExecutorError(
                f"{self.executor.name} could not take {len(batch)} unit(s): "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}; "
                f"committed work is kept, `lowloss resume {self.store.root}` continues"
            ) from exc
        for sub in batch:
            self._state[sub.uid] = "active"
            unit = self.planner.units[sub.uid]
            if self.store.resumable_from(sub.uid, unit.kind) and sub.uid not in self.outcome.resumed:
                self.outcome.resumed.append(sub.uid)
            self.reporter.started(unit)

    def _refresh_external(self) -> None:
        for uid in list(self._external):
            unit = self.planner.units[uid]
            if not self.store.unit_is_running(uid, unit.kind):
                self._external.discard(uid)
                if self.store.is_committed(uid, unit.kind):
                    self.outcome.done.append(uid)
                    self.reporter.finished(unit, "done")
                    self._done(uid)
                else:
                    self._make_ready(uid)

    def _finished(self, unit: Unit, how: str, detail: str) -> None:
        uid = unit.id
        if self.store.is_committed(uid, unit.kind):  # the commit marker is the only truth
            self.outcome.done.append(uid)
            self.reporter.finished(unit, "done")
            self._done(uid)
            return
        self.store.close_lost_attempts(uid, unit.kind)
        attempts = self.store.attempts(uid, unit.kind)
        last = attempts[-1] if attempts else {}
        state = last.get("state")
        if state == "nospace":
            self._state[uid] = "waiting"
            self.outcome.nospace = last.get("error") or "no space left on the store's file system"
            self.reporter.finished(unit, "stopped", self.outcome.nospace)
            return
        if how == "cancelled":
            self._state[uid] = "cancelled"
            self.outcome.cancelled.append(uid)
            self.reporter.finished(unit, "cancelled", f"{detail}; it stays resumable: `lowloss run` again continues it")
            self._cascade(uid)
            return
        if state in ("preempted", "interrupted"):
            self.reporter.finished(unit, "preempted", "resubmitting; it resumes from its checkpoint")
            self._make_ready(uid)
            return
        if not attempts or (state == "lost" and "ended without a word" in (last.get("error") or "")):
            error = (
                f"the worker ended without a result ({how}: {detail}); "
                f"see {last.get('log') or self.store.launcher_log()}"
            )
        else:
            error = last.get("error") or f"the worker ended without a result ({how}: {detail})"
        if not attempts:  # the worker died before it could record an attempt (it could not even start)
            self._unrecorded[uid] = self._unrecorded.get(uid, 0) + 1
        failures = self.store.failure_count(uid, unit.kind) + self._unrecorded.get(uid, 0)
        if failures > self.retries:
            self._give_up(unit, error)
        else:
            self.reporter.finished(unit, "retry", f"attempt {failures} failed: {_last_line(error)}")
            self._make_ready(uid)

    def _settle_outcome(self) -> None:
        """Units that never ran this time, and open stages with nothing left to run."""
        self.outcome.pending = [
            uid for uid, st in self._state.items() if st in ("waiting", "ready", "active", "external")
        ]
        self.outcome.stalled = (
            []
            if self.outcome.pending
            else [f"{name}: {self.planner.stages[name].note or 'open'}" for name in self.planner.open_stages()]
        )
        self.outcome.settled = True


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else text
