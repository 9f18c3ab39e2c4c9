"""Slurm executor, through submitit.

Units of one resource class go out as job arrays (split at the site's MaxArraySize, throttled with ``%N``); small units
can be packed, several per array task, run in sequence. Every array task's job id and units are recorded in
``STORE/jobs/<array id>.json`` before anything else, so a restarted coordinator re-attaches to them instead of
submitting twice. State comes from batched sacct/squeue queries (``scheduler.py``); what a unit achieved is read from
the store, never from submitit's result pickles.

Preemption and time limits: the job asks for SIGUSR2 ``signal_delay_s`` before its limit. The runtime then writes its
resume checkpoint at the next segment boundary and the job requeues itself. A requeue from outside
(``scontrol requeue``: SIGTERM, no hook called) needs nothing from submitit either: the requeued job runs the same
units again and each resumes from its last committed segment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..store import JobRecord, Store
from .base import Ending, ExecutorBase, Finished, Submission
from .profiles import SiteProfile
from .scheduler import JobState, SchedulerQuery

PING_TIMEOUT_S = 10.0  # how long `scontrol ping` may take before no controller counts as answering


def controller_problem(timeout_s: float | None = None) -> str | None:
    """Why no Slurm controller answers here (``scontrol ping``, given at most ``timeout_s``), or None when one does —
    or when there is no ``scontrol`` to ask (``sbatch`` then answers for itself)."""
    timeout_s = PING_TIMEOUT_S if timeout_s is None else timeout_s
    if shutil.which("scontrol") is None:
        return None
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"`scontrol ping` had no answer in {timeout_s:g} s"
    except OSError as exc:
        return f"`scontrol ping` did not start: {exc.strerror or exc}"
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode == 0 or any(line.endswith(" is UP") for line in lines):
        return None  # a primary or a backup controller answers
    said = [line for line in lines if "fatal" in line or line.endswith(" is DOWN")] or lines[-1:]
    return f"`scontrol ping`: {said[0] if said else f'exit code {proc.returncode}'}"


def slurm_entry(store_root: str, tasks: list[dict], threads: int) -> list[str]:
    """What one array task runs on its node (pickled by reference by submitit)."""
    from ..runtime import Node, UnitTask

    array_id, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_id}_{task}" if array_id and task else os.environ.get("SLURM_JOB_ID", "")
    node = Node()
    node.listen()
    # the allocation: image decoding may use it; compute threads are the kind's
    outcomes = node.run(store_root, [UnitTask.from_json(t) for t in tasks], "slurm", job_id, cpus=threads)
    if node.stop_requested() == signal.SIGUSR2 and job_id:
        # time limit ahead: the checkpoint is written; go back to the queue and resume from it
        print(f"requeueing {job_id} after its time-limit signal", flush=True)
        subprocess.run(["scontrol", "requeue", job_id], timeout=60, check=False)
    return [o.value for o in outcomes]


def latest_tasks(store_root: Path) -> dict[str, str]:
    """uid → the array task job id that most recently ran (or runs) it."""
    latest: dict[str, tuple[float, str]] = {}
    for rec in Store(store_root).job_records():
        for task, uids in rec.tasks.items():
            for uid in uids:
                if uid not in latest or rec.submitted >= latest[uid][0]:
                    latest[uid] = (rec.submitted, task)
    return {uid: task for uid, (_, task) in latest.items()}


def job_output(store_root: Path, job_id: str) -> Path | None:
    """The output file of a Slurm job (submitit names an array task's <array>_<task>_log.out, a lone job's
    <job>_0_log.out), or None."""
    folder = Store(store_root).layout.scheduler_folder / job_id.split("_")[0]
    for candidate in (folder / f"{job_id}_log.out", folder / f"{job_id}_0_log.out"):
        if candidate.exists():
            return candidate
    return None


def cancel_units(store_root: Path, uids: list[str] | None) -> list[str]:
    """scancel the jobs running the given units (all recorded jobs when None). Returns the job ids cancelled."""
    tasks = latest_tasks(store_root)
    targets = sorted({task for uid, task in tasks.items() if uids is None or uid in uids})
    if targets:
        subprocess.run(["scancel", *targets], capture_output=True, text=True, timeout=60, check=False)
    return targets


class SlurmExecutor(ExecutorBase):
    name = "slurm"
    keeps_running = True

    def detach_message(self, active: int, store: str) -> str:
        return (
            f"{active} unit(s) keep running as Slurm jobs; `lowloss run` again re-attaches to them, "
            f"`lowloss cancel {store}` stops them"
        )

    def __init__(
        self,
        store_root: Path | str,
        profile: SiteProfile,
        array_parallelism: int | None = None,
        units_per_job: int | None = None,
        poll_interval: float = 2.0,
    ):
        self.store_root = Path(store_root)
        self.store = Store(store_root)
        self.profile = profile
        self.array_parallelism = array_parallelism or profile.model.defaults.array_parallelism
        self.units_per_job = units_per_job
        self.poll_interval = poll_interval
        self.capacity = 10**9  # the scheduler throttles (%N), not the coordinator
        self.query = SchedulerQuery()
        self._tasks: dict[str, list[str]] = {}  # active array task job id -> units
        self._last_query = 0.0

    # ------------------------------------------------------------------ submit
    def _executor(self, settings, kind: str):
        import submitit

        ex = submitit.SlurmExecutor(folder=str(self.store.layout.scheduler_folder / "%j"), max_num_timeout=1000)
        extra = {"requeue": True}
        for line in settings.extra:
            key, _, value = line.lstrip("-").partition("=")
            extra[key.replace("-", "_")] = value if value else True
        params = dict(
            job_name=f"lowloss-{kind}",
            time=settings.resources.time_min,
            cpus_per_task=settings.resources.cpus,
            mem=f"{int(settings.resources.mem_gb * 1024)}M",
            array_parallelism=self.array_parallelism,
            signal_delay_s=self.profile.model.defaults.signal_delay_s,
            stderr_to_stdout=True,
            additional_parameters=extra,
            setup=list(self.profile.model.defaults.setup),
        )
        if settings.resources.gpus:
            params["gpus_per_node"] = settings.resources.gpus
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(settings, key):
                params[key] = getattr(settings, key)
        ex.update_parameters(**params)
        return ex

    def submit(self, batch: list[Submission]) -> None:
        groups: dict[tuple, list[Submission]] = {}
        for sub in batch:
            groups.setdefault((sub.kind, sub.resources), []).append(sub)
        max_array = self.profile.model.defaults.max_array_size
        for (kind, resources), subs in groups.items():
            settings = self.profile.settings(resources, self.units_per_job)
            k = settings.units_per_job
            packs = [subs[i : i + k] for i in range(0, len(subs), k)]
            ex = self._executor(settings, kind)
            for start in range(0, len(packs), max_array):
                chunk = packs[start : start + max_array]
                jobs = ex.map_array(
                    slurm_entry,
                    [str(self.store_root)] * len(chunk),
                    [[s.task.to_json() for s in pack] for pack in chunk],
                    [settings.resources.cpus] * len(chunk),
                )
                tasks = {job.job_id: [s.uid for s in pack] for job, pack in zip(jobs, chunk)}
                array_id = jobs[0].job_id.split("_")[0]
                self.store.write_job_record(array_id, JobRecord("slurm", kind, time.time(), tasks, k))
                self._tasks.update(tasks)

    # ------------------------------------------------------------------ follow
    def attach(self, uids: set[str]) -> set[str]:
        """Re-attach to recorded jobs still queued or running for these units (after a coordinator restart)."""
        tasks: dict[str, list[str]] = {}
        for uid, task in latest_tasks(self.store_root).items():
            if uid in uids:
                tasks.setdefault(task, []).append(uid)
        if not tasks:
            return set()
        states = None
        for _ in range(10):
            states = self.query.states(list(tasks))
            if states is not None:
                break
            time.sleep(2)
        attached = set()
        for task, state in (states or {}).items():
            if not state.terminal:
                self._tasks[task] = tasks[task]
                attached.update(tasks[task])
        return attached

    def poll(self, timeout: float) -> list[Finished]:
        deadline = time.monotonic() + timeout
        while True:
            if self._tasks and time.monotonic() - self._last_query >= self.poll_interval:
                self._last_query = time.monotonic()
                states = self.query.states(list(self._tasks))
                if states:
                    out = []
                    for task, st in states.items():
                        if st.terminal and task in self._tasks:
                            how = (
                                Ending.CANCELLED
                                if st.state == "CANCELLED"
                                else Ending.EXITED
                                if st.state in ("COMPLETED", "ENDED")
                                else Ending.LOST
                            )
                            for uid in self._tasks.pop(task):
                                out.append(Finished(uid, how, f"Slurm job {task}: {st.state} on {st.node or '?'}"))
                    if out:
                        return out
            if time.monotonic() >= deadline:
                return []
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def active(self) -> set[str]:
        return {uid for uids in self._tasks.values() for uid in uids}

    def cancel(self, uids: list[str] | None = None) -> None:
        targets = [t for t, us in self._tasks.items() if uids is None or set(us) & set(uids)]
        if targets:
            subprocess.run(["scancel", *targets], capture_output=True, timeout=60, check=False)

    def close(self) -> None:
        """Jobs outlive the coordinator: a restarted coordinator re-attaches to them."""
        self._tasks.clear()


def scheduler_states(store_root: Path, uids: list[str]) -> dict[str, JobState]:
    """uid → Slurm state of the job that last ran it (batched, time-limited query; empty without Slurm jobs)."""
    wanted = set(uids)
    tasks = {uid: t for uid, t in latest_tasks(store_root).items() if uid in wanted}
    if not tasks:
        return {}
    states = SchedulerQuery(timeout_s=20).states(sorted(set(tasks.values()))) or {}
    return {uid: states[t] for uid, t in tasks.items() if t in states}
