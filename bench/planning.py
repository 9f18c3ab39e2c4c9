"""Planning and coordinator overhead (issue: core v2). Prints figures; asserts nothing.

    .venv/bin/python bench/planning.py [--sizes 100,1000,20000]

1. Time to plan a synthetic study of 20 000 units (a static stage of N units and a dynamic stage that follows every
   10th unit as it finishes): ids, validation, the plan document.
2. Coordinator CPU per finished unit at several study sizes: the real coordinator and store drive an in-process
   executor whose units "finish" by writing their commit the way a worker does; the executor's own CPU (the work
   of the units) is measured and subtracted, so what remains is the coordinator's: readiness, re-planning of open
   stages, store reads of commit markers, progress lines, plan.json writes.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "plugins"))
os.environ["LOWLOSS_PLUGINS"] = "lowloss_bench_plugins"

from rich.console import Console  # noqa: E402

from lowloss.orchestrator.engine.coordinator import Coordinator  # noqa: E402
from lowloss.orchestrator.engine.graph import plan_study  # noqa: E402
from lowloss.orchestrator.engine.progress import Reporter  # noqa: E402
from lowloss.orchestrator.executors.base import Ending, ExecutorBase, Finished, Submission  # noqa: E402
from lowloss.orchestrator.runtime import UnitTask  # noqa: E402
from lowloss.orchestrator.spec import parse_spec  # noqa: E402
from lowloss.orchestrator.store import Store, UnitWriter  # noqa: E402


def spec(n: int) -> str:
    return f"""
[study]
name = "bench-plan"
seeds = [0]
[run]
max_units = 1000000
[[stages]]
name = "many"
kind = "noop"
count = {n}
[[stages]]
name = "followers"
kind = "noop_chain"
from = "many"
every = 10
"""


class CommitOnPoll(ExecutorBase):
    """Each poll 'finishes' up to ``per_poll`` submitted units by committing them as a worker would."""

    name = "bench"

    def __init__(self, store: Store, capacity: int = 64, per_poll: int = 64):
        self.store, self.capacity, self.per_poll = store, capacity, per_poll
        self.queue: list[UnitTask] = []
        self.cpu = 0.0

    def submit(self, batch: list[Submission]) -> None:
        self.queue.extend(s.task for s in batch)

    def poll(self, timeout: float) -> list[Finished]:
        t = time.process_time()
        out = []
        for task in self.queue[: self.per_poll]:
            record = self.store.unit(task.uid, task.kind)
            writer = UnitWriter(self.store.layout, record)
            writer.write_segment(0, {"rows": [{"i": record.params["i"]}]})
            writer.commit({"i": record.params["i"]})
            out.append(Finished(task.uid, Ending.EXITED))
        del self.queue[: self.per_poll]
        self.cpu += time.process_time() - t
        return out

    def active(self) -> set[str]:
        return {task.uid for task in self.queue}

    def cancel(self, uids: list[str] | None = None) -> None:
        pass

    def close(self) -> None:
        self.queue.clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,20000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    n = max(sizes)
    study = parse_spec(spec(n))
    t = time.perf_counter()
    planner = plan_study(study)
    doc = planner.document()
    plan_s = time.perf_counter() - t
    print(
        f"plan of a {len(planner.units):,}-unit study (static stage; the dynamic one waits): {plan_s:.3f} s "
        f"({len(doc.stages[0].units):,} units in plan.json)"
    )

    print(
        f"{'units':>8} {'finished':>9} {'wall s':>8} {'coordinator CPU s':>18} {'per unit ms':>12} {'plan calls':>11}"
    )
    for size in sizes:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # the units' fsyncs are not what is measured
        with tempfile.TemporaryDirectory(prefix="lowloss-bench-plan-", dir=shm) as tmp:
            study = parse_spec(spec(size))
            store = Store(Path(tmp) / "store")
            store.init_study(study.name, study.text)
            executor = CommitOnPoll(store)
            reporter = Reporter(store, console=Console(file=io.StringIO()), live=False)
            coordinator = Coordinator(study, store, executor, 0, reporter)
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = coordinator.run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu - executor.cpu
            finished = len(outcome.done)
            assert outcome.ok, outcome
            print(
                f"{size:>8,} {finished:>9,} {wall:>8.2f} {cpu:>18.2f} {1000 * cpu / finished:>12.3f} "
                f"{coordinator.planner.plan_calls:>11,}"
            )


if __name__ == "__main__":
    main()
