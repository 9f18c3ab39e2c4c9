"""The coordinator: drives a study's unit graph through an executor until every unit is committed or given up.

It owns no state the store does not have: killed and started again, it re-derives everything from the store (committed
units are skipped; a unit holding its run lock is waited for, not started twice). Planner stages are expanded again
whenever units finish, and may add units.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from lowloss import jobs

from .atomic import atomic_write_json
from .executors import Executor, Submission
from .executors.base import ExecutorError
from .graph import Unit, expand, plan_document
from .progress import Reporter
from .spec import Study
from .store import Store


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)  # committed in this run
    reused: list[str] = field(default_factory=list)  # already committed before this run
    failed: dict[str, str] = field(default_factory=dict)  # uid -> last error (given up)
    blocked: list[str] = field(default_factory=list)  # waiting on a failed input
    cancelled: list[str] = field(default_factory=list)  # cancelled by the user (scancel, `lowloss cancel`)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.cancelled


class Coordinator:
    def __init__(self, study: Study, store: Store, executor: Executor, retries: int, reporter: Reporter,
                 data_root: str | None = None):
        self.study = study
        self.store = store
        self.executor = executor
        self.retries = retries
        self.reporter = reporter
        self.data_root = data_root
        self._results: dict[str, dict] = {}
        self._failures: dict[str, int] = {}
        self._written: set[str] = set()

    # ------------------------------------------------------------------ store views
    def _result(self, uid: str) -> dict | None:
        if uid not in self._results:
            kind_dirs = list((self.store.root / "units").glob(f"kind=*/unit={uid}/COMMIT.json"))
            if not kind_dirs:
                return None
            self._results[uid] = self.store.result(uid)  # type: ignore[assignment]
        return self._results[uid]

    def _committed(self, unit: Unit) -> bool:
        return unit.id in self._results or self.store.is_committed(unit.id, unit.kind)

    def _expand(self) -> dict[str, Unit]:
        expanded = expand(self.study, self._result)
        plan = plan_document(self.study, expanded)
        if plan != getattr(self, "_plan", None):
            self.store.write_plan(plan)
            self._plan = plan
        return {u.id: u for units in expanded.values() for u in units}

    # ------------------------------------------------------------------ the loop
    def run(self) -> Outcome:
        atomic_write_json(self.store.root / "run.json", {"data_root": self.data_root,
                                                          "checkpoint_seconds": self.study.run.checkpoint_seconds,
                                                          "device": self.study.run.device,
                                                          "executor": self.executor.name})
        outcome = Outcome()
        units = self._expand()
        for uid, unit in units.items():
            if self._committed(unit):
                outcome.reused.append(uid)
        self.reporter.start(units, set(outcome.reused))
        attached = self.executor.attach({uid for uid in units if uid not in outcome.reused})
        if attached:
            self.reporter.message(f"re-attached to scheduler jobs of {len(attached)} running unit(s); nothing is submitted twice")
        external: set[str] = set()  # units another process is running (a previous coordinator's job)
        try:
            while True:
                active = self.executor.active()
                ready = []
                for uid, unit in units.items():
                    if uid in active or uid in self._results or uid in outcome.failed or uid in outcome.cancelled:
                        continue
                    if self._committed(unit):
                        continue
                    if any(inp in outcome.failed or inp in outcome.blocked or inp in outcome.cancelled
                           for inp in unit.inputs.values()):
                        if uid not in outcome.blocked:
                            outcome.blocked.append(uid)
                        continue
                    if all(self._committed_id(inp, units) for inp in unit.inputs.values()):
                        ready.append(unit)
                free = self.executor.capacity - len(active)
                batch = []
                for unit in ready:
                    if len(batch) >= free:
                        break
                    self._write_record(unit)
                    if self.store.unit_is_running(unit.id):
                        if unit.id not in external:
                            external.add(unit.id)
                            self.reporter.note(unit, "is running in another process; waiting for it")
                        continue
                    external.discard(unit.id)
                    batch.append(Submission(unit.id, unit.kind, jobs.get_kind(unit.kind).resources, unit.label))
                if batch:
                    try:
                        self.executor.submit(batch)
                    except Exception as exc:  # sbatch refused, Ray unreachable: say so, keep the store as it is
                        raise ExecutorError(f"{self.executor.name} could not take {len(batch)} unit(s): "
                                            f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}; "
                                            f"committed work is kept, `lowloss resume {self.store.root}` continues") from exc
                    for sub in batch:
                        self.reporter.started(units[sub.uid])
                if not self.executor.active() and not batch:
                    if external:
                        time.sleep(1.0)
                        self._refresh_external(external, units, outcome)
                        continue
                    break
                for fin in self.executor.poll(timeout=0.5):
                    self._finished(units[fin.uid], fin.how, fin.detail, outcome)
                    units = self._expand() | units
                    self.reporter.add_units(units)
                self.reporter.tick(self.executor.active())
        finally:
            if self.executor.active():
                if self.executor.name == "slurm":
                    self.reporter.message(f"{len(self.executor.active())} unit(s) keep running as Slurm jobs; `lowloss run` "
                                          f"again re-attaches to them, `lowloss cancel {self.store.root}` stops them")
                else:
                    self.reporter.message("stopping running units (they keep their checkpoints and resume next time)")
            self.executor.close()
            self.reporter.stop()
        return outcome

    def _committed_id(self, uid: str, units: dict[str, Unit]) -> bool:
        unit = units.get(uid)
        return uid in self._results or (self.store.is_committed(uid, unit.kind if unit else None))

    def _write_record(self, unit: Unit) -> None:
        if unit.id not in self._written:
            self.store.write_unit(unit.record)
            self._written.add(unit.id)

    def _refresh_external(self, external: set[str], units: dict[str, Unit], outcome: Outcome) -> None:
        for uid in list(external):
            if not self.store.unit_is_running(uid):
                external.discard(uid)
                if self.store.is_committed(uid):
                    self._results[uid] = self.store.result(uid)  # type: ignore[assignment]
                    outcome.done.append(uid)
                    self.reporter.finished(units[uid], "done")

    def _finished(self, unit: Unit, how: str, detail: str, outcome: Outcome) -> None:
        if self.store.is_committed(unit.id, unit.kind):
            self._results[unit.id] = self.store.result(unit.id)  # type: ignore[assignment]
            outcome.done.append(unit.id)
            self.reporter.finished(unit, "done")
            return
        attempts = self.store.attempts(unit.id)
        last = attempts[-1] if attempts else {}
        if how == "cancelled":
            outcome.cancelled.append(unit.id)
            self.reporter.finished(unit, "cancelled", f"{detail}; it stays resumable: `lowloss run` again continues it")
            return
        if last.get("state") == "preempted":
            self.reporter.finished(unit, "preempted", "resubmitting; it resumes from its checkpoint")
            return
        self._failures[unit.id] = self._failures.get(unit.id, 0) + 1
        if last.get("state") == "running" or not attempts or last.get("finished") is None:
            error = (f"the worker ended without a result ({how}: {detail}); "
                     f"see {last.get('log') or self.store.root / 'logs' / 'launcher.log'}")
        else:
            error = last.get("error") or f"the worker ended without a result ({how}: {detail})"
        if self._failures[unit.id] > self.retries:
            outcome.failed[unit.id] = error
            self.reporter.finished(unit, "failed", _last_line(error) + f" (log: {last.get('log', '?')})")
        else:
            self.reporter.finished(unit, "retry", f"attempt {self._failures[unit.id]} failed: {_last_line(error)}")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else text
