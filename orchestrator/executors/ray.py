"""Ray executor: each unit (or pack) is a Ray task asking for the unit kind's resources (num_cpus, num_gpus).

The task runs the units inside the Ray worker process (``runtime.Node``): Ray reuses its worker processes,
so lowloss and torch are imported once per worker, not once per unit; each unit starts from a fresh process's global
state, and a worker is replaced after ``worker_max_units`` tasks (Ray's ``max_calls``). ``ray.cancel`` interrupts the
task with SIGINT, which asks the unit to checkpoint (its attempt ends as ``preempted``). With ``fresh_processes`` the
task runs the worker runtime in a subprocess that dies with the task's worker, as before. Either way a killed Ray
worker is retried by Ray (``max_retries``) and the unit resumes from its last committed segment in the store. A local
Ray is started by default; ``--ray-address`` joins a cluster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .base import Ending, ExecutorBase, Finished, Submission

_FORWARDED_ENV = ("LOWLOSS_PLUGINS", "PYTHONPATH")


def ray_entry_warm(store_root: str, tasks: list[dict], cpus: int) -> int:
    """What one Ray task runs on its worker: the units, in the worker process itself (its one warm ``Node``)."""
    import ray

    from ..runtime import Node, UnitOutcome, UnitTask

    job_id = ray.get_runtime_context().get_task_id() or ""
    outcomes = Node.warm().run_borrowed(store_root, [UnitTask.from_json(t) for t in tasks], "ray", job_id, cpus)
    return 0 if len(outcomes) == len(tasks) and all(o is UnitOutcome.DONE for o in outcomes) else 1


def ray_entry(store_root: str, tasks: list[dict], cpus: int) -> int:
    """What one Ray task runs on its worker with ``fresh_processes``: the units in a subprocess."""
    import subprocess

    import ray

    from .local import _die_with_parent

    env = dict(
        os.environ,
        LOWLOSS_EXECUTOR="ray",
        LOWLOSS_CPUS=str(cpus),
        LOWLOSS_JOB_ID=ray.get_runtime_context().get_task_id() or "",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.runtime", store_root, *(json.dumps(t) for t in tasks)],
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    return proc.returncode


class RayExecutor(ExecutorBase):
    name = "ray"

    def __init__(
        self,
        store_root: Path | str,
        address: str | None = None,
        max_retries: int = 3,
        units_per_job: int = 1,
        fresh_processes: bool = False,
        worker_max_units: int = 0,
    ):
        import ray

        self.store_root = Path(store_root)
        self.capacity = 10**9  # Ray schedules by resources
        self.units_per_job = max(1, units_per_job)
        self._started_here = False
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
            ray.init(
                address=address or "local",
                include_dashboard=False,
                log_to_driver=False,
                namespace="lowloss",
                runtime_env={"env_vars": env} if env else None,
                configure_logging=False,
                _temp_dir=os.environ.get("LOWLOSS_RAY_TMPDIR") or None,
            )
            self._started_here = True
        if fresh_processes:
            self._remote: Any = ray.remote(ray_entry)
        else:  # max_calls: Ray replaces the worker process after that many tasks (0: never)
            self._remote = ray.remote(max_calls=max(0, worker_max_units))(ray_entry_warm)
        self.max_retries = max_retries
        self._refs: dict = {}  # ObjectRef -> uids

    def submit(self, batch: list[Submission]) -> None:
        groups: dict[tuple, list[Submission]] = {}
        for sub in batch:
            groups.setdefault((sub.kind, sub.resources), []).append(sub)
        for (kind, res), subs in groups.items():
            k = self.units_per_job
            for i in range(0, len(subs), k):
                pack = subs[i : i + k]
                ref = self._remote.options(
                    num_cpus=res.cpus,
                    num_gpus=res.gpus,
                    name=f"lowloss-{kind}",
                    max_retries=self.max_retries,
                    retry_exceptions=False,
                ).remote(str(self.store_root), [s.task.to_json() for s in pack], res.cpus)
                self._refs[ref] = [s.uid for s in pack]

    def poll(self, timeout: float) -> list[Finished]:
        import ray

        if not self._refs:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout, fetch_local=True)
        out: list[Finished] = []
        for ref in ready:
            uids = self._refs.pop(ref)
            try:
                rc = ray.get(ref)
                how, detail = Ending.EXITED, f"exit code {rc}"
            except ray.exceptions.TaskCancelledError:
                how, detail = Ending.CANCELLED, "Ray task cancelled"
            except Exception as exc:  # worker died more often than max_retries
                how, detail = Ending.LOST, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            out.extend(Finished(uid, how, detail) for uid in uids)
        return out

    def active(self) -> set[str]:
        return {u for uids in self._refs.values() for u in uids}

    def cancel(self, uids: list[str] | None = None) -> None:
        import ray

        for ref, us in list(self._refs.items()):
            if uids is None or set(us) & set(uids):
                ray.cancel(ref, force=False)

    def close(self) -> None:
        import ray

        self.cancel()
        deadline = time.monotonic() + 30
        while self._refs and time.monotonic() < deadline:
            self.poll(1.0)
        if self._started_here:
            ray.shutdown()
