"""The coordinator against an in-process executor (no subprocess, no scheduler): retries that survive a restart,
blocked inputs, cancellation, the commit marker as the only truth, a planner over its own results across a restart,
named outputs, points and rows as inputs. The real store and the real worker runtime do the work."""

from __future__ import annotations

import io

import pytest
from conftest import spec_text
from rich.console import Console

from lowloss.orchestrator.engine.coordinator import Coordinator
from lowloss.orchestrator.engine.progress import Reporter
from lowloss.orchestrator.executors.base import Ending, ExecutorBase, Finished
from lowloss.orchestrator.runtime.attempt import run_unit
from lowloss.orchestrator.spec import parse_spec
from lowloss.orchestrator.store import Store


class InProcessExecutor(ExecutorBase):
    """Runs each submitted unit with the worker runtime, in this process, one per poll."""

    name = "inprocess"

    def __init__(self, store: Store, capacity: int = 2, stop_after: int | None = None, report_as: dict | None = None):
        self.store, self.capacity = store, capacity
        self.stop_after, self.report_as = stop_after, report_as or {}
        self.queue: list = []
        self.ran: list[str] = []

    def submit(self, batch):
        self.queue.extend(sub.task for sub in batch)

    def poll(self, timeout):
        if not self.queue:
            return []
        if self.stop_after is not None and len(self.ran) >= self.stop_after:
            raise KeyboardInterrupt  # the coordinator is stopped between two units
        task = self.queue.pop(0)
        run_unit(self.store, task, "inprocess")
        self.ran.append(task.uid)
        return [Finished(task.uid, Ending(self.report_as.get(task.uid, "exited")), "test")]

    def active(self):
        return {task.uid for task in self.queue}

    def cancel(self, uids=None):
        pass

    def close(self):
        self.queue.clear()


def _coordinate(tmp_path, stages: str, retries: int = 1, **kw):
    study = parse_spec(spec_text(stages=stages, run_extra=""))
    store = Store(tmp_path / "store")
    store.init_study(study.name, study.text)
    executor = InProcessExecutor(store, **{k: kw.pop(k) for k in ("stop_after", "report_as") if k in kw})
    reporter = Reporter(store, console=Console(file=io.StringIO()), live=False)
    return Coordinator(study, store, executor, retries, reporter, **kw), store, executor


CRASHY = """
    [[stages]]
    name = "c"
    kind = "crashy"
    seeds = [0]
    fail_attempts = 2
"""


def test_failures_are_counted_in_the_store_and_survive_a_coordinator_restart(tmp_path):
    coordinator, store, executor = _coordinate(tmp_path, CRASHY, retries=1)
    outcome = coordinator.run()
    ((uid, kind),) = store.layout.unit_dirs()
    assert list(outcome.failed) == [uid] and not outcome.ok and len(executor.ran) == 2
    assert [a.state.value for a in store.attempts.records(uid, kind)] == ["failed", "failed"]
    again, _, executor2 = _coordinate(tmp_path, CRASHY, retries=1)
    outcome2 = again.run()
    assert list(outcome2.failed) == [uid] and executor2.ran == []  # no fresh retries for a restarted coordinator
    third, _, executor3 = _coordinate(tmp_path, CRASHY, retries=1, retry_failed=True)
    outcome3 = third.run()
    assert outcome3.ok and executor3.ran == [uid] and store.read.result(uid, kind) == {"value": 0.0}


def test_a_unit_whose_input_failed_is_blocked_and_the_study_does_not_succeed(tmp_path):
    stages = """
        [[stages]]
        name = "a"
        kind = "emit"
        seeds = [0, 1]
        fail_seeds = [0]

        [[stages]]
        name = "b"
        kind = "emit"
        seeds = [2]

        [[stages]]
        name = "both"
        kind = "consume"
        from = ["a", "b"]
    """
    coordinator, store, executor = _coordinate(tmp_path, stages, retries=0)
    outcome = coordinator.run()
    combo = coordinator.planner.stage_units("both")[0].id
    assert outcome.blocked == [combo] and len(outcome.failed) == 1 and not outcome.ok
    assert combo not in executor.ran and store.state(combo, "consume").value == "pending"


def test_named_outputs_points_and_rows_reach_a_unit_of_a_later_stage(tmp_path):
    stages = """
        [[stages]]
        name = "a"
        kind = "emit"
        seeds = [0]

        [[stages]]
        name = "b"
        kind = "emit"
        seeds = [3]

        [[stages]]
        name = "both"
        kind = "consume"
        from = ["a", "b"]
    """
    coordinator, store, _ = _coordinate(tmp_path, stages)
    assert coordinator.run().ok
    (combo,) = coordinator.planner.stage_units("both")
    result = store.read.result(combo.id, "consume")
    # a: directions = −(0,1,2,3); final = (0,1,2,3); b's point at step 2 = 2·(3,4,5,6)
    assert result == {"d_sum": -6.0, "final_sum": 6.0, "point_sum": 36.0, "rows": 2, "point_steps": [1, 2]}


def test_the_commit_marker_wins_over_a_scheduler_that_says_cancelled(tmp_path):
    """scancel racing a commit: the unit is done, and what depends on it runs."""
    stages = """
        [[stages]]
        name = "a"
        kind = "emit"
        seeds = [0]

        [[stages]]
        name = "b"
        kind = "emit"
        seeds = [1]

        [[stages]]
        name = "both"
        kind = "consume"
        from = ["a", "b"]
    """
    probe, _, _ = _coordinate(tmp_path / "probe", stages)
    a0 = probe.planner.settle()[0].id
    coordinator, store, executor = _coordinate(tmp_path, stages, report_as={a0: "cancelled"})
    outcome = coordinator.run()
    assert outcome.ok and not outcome.cancelled and len(executor.ran) == 3


def test_a_cancelled_unit_is_not_retried_and_the_study_is_not_ok(tmp_path):
    stages = """
        [[stages]]
        name = "c"
        kind = "crashy"
        seeds = [0]
        fail_attempts = 5
    """
    probe, _, _ = _coordinate(tmp_path / "probe", stages)
    (unit,) = probe.planner.settle()
    coordinator, _, executor = _coordinate(tmp_path, stages, retries=3, report_as={unit.id: "cancelled"})
    outcome = coordinator.run()
    assert outcome.cancelled == [unit.id] and executor.ran == [unit.id] and not outcome.ok


@pytest.mark.parametrize("stop_after", [1, 2, 4])
def test_a_planner_over_its_own_results_survives_coordinator_restarts_and_never_runs_a_unit_twice(tmp_path, stop_after):
    stages = """
        [[stages]]
        name = "grow"
        kind = "grow"
        start = 1.0
        factor = 2.0
        target = 20.0
    """
    ran: list[str] = []
    for _ in range(20):
        coordinator, store, executor = _coordinate(tmp_path, stages, stop_after=stop_after)
        try:
            outcome = coordinator.run()
        except KeyboardInterrupt:
            ran += executor.ran
            continue
        ran += executor.ran
        break
    assert outcome.ok and not coordinator.planner.open_stages()
    values = sorted(store.read.result(uid, "grow")["value"] for uid, _ in store.layout.unit_dirs())
    assert values == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert len(ran) == len(set(ran)) == 6
    assert all(len(store.attempts.records(uid, kind)) == 1 for uid, kind in store.layout.unit_dirs())


@pytest.mark.parametrize("waits", [False, True])
def test_a_planner_sees_a_failed_unit_and_a_stage_left_open_with_nothing_to_run_is_reported(tmp_path, waits):
    stages = f"""
        [[stages]]
        name = "grow"
        kind = "grow"
        fail_round = 2
        wait_on_failures = {str(waits).lower()}
    """
    coordinator, _, executor = _coordinate(tmp_path, stages, retries=0)
    outcome = coordinator.run()
    assert len(executor.ran) == 3 and len(outcome.failed) == 1 and not outcome.ok
    assert outcome.stalled == (["grow: 3 rounds, waiting for round 2"] if waits else [])
