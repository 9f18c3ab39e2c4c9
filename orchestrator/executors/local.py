"""Local executor: units run in worker subprocesses (``--jobs N`` at once), so a crashing or killed unit never takes
the coordinator down. Workers die with the coordinator (PR_SET_PDEATHSIG), so a killed coordinator leaves no second
writer behind.

Warm workers (the default): N long-lived processes (``orchestrator/runtime/worker.py``) that import lowloss and torch
once and run unit after unit, one at a time, each from a fresh process's global state. A unit that crashes its worker
or is killed takes only that worker down; the next unit gets a new one. A worker is replaced after ``worker_max_units``
units or once its memory passed ``worker_max_rss_mb``. With ``fresh_processes`` every unit gets its own
``python -m lowloss.orchestrator.runtime`` process, as before.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..store import Store
from .base import Ending, ExecutorBase, Finished, Submission

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    os.setsid()  # own process group: a Ctrl-C in the terminal reaches the coordinator, which stops workers cleanly


def _how(rc: int) -> tuple[Ending, str]:
    how = Ending.EXITED if rc >= 0 else (Ending.CANCELLED if -rc in (signal.SIGTERM, signal.SIGINT) else Ending.LOST)
    return how, (f"exit code {rc}" if rc >= 0 else f"killed by signal {-rc}")


class LocalExecutor(ExecutorBase):
    """``fresh_processes``: one ``python -m lowloss.orchestrator.runtime`` process per unit."""

    name = "local"

    def __init__(self, store_root: Path | str, jobs: int):
        self.store_root = Path(store_root)
        self.store = Store(store_root)
        self.capacity = jobs
        self._procs: dict[str, subprocess.Popen] = {}

    def submit(self, batch: list[Submission]) -> None:
        env = dict(os.environ, LOWLOSS_EXECUTOR="local")
        for sub in batch:
            env["LOWLOSS_CPUS"] = str(sub.resources.cpus)
            with self.store.open_log(self.store.launcher_log()) as fh:
                self._procs[sub.uid] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "lowloss.orchestrator.runtime",
                        str(self.store_root),
                        json.dumps(sub.task.to_json()),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=fh,
                    env=env,
                    preexec_fn=_die_with_parent,
                )

    def poll(self, timeout: float) -> list[Finished]:
        deadline = time.monotonic() + timeout
        while True:
            done = [uid for uid, p in self._procs.items() if p.poll() is not None]
            if done or time.monotonic() >= deadline or not self._procs:
                out = []
                for uid in done:
                    out.append(Finished(uid, *_how(self._procs.pop(uid).returncode)))
                return out
            time.sleep(0.05)

    def active(self) -> set[str]:
        return set(self._procs)

    def cancel(self, uids: list[str] | None = None) -> None:
        """Ask workers to stop (SIGTERM: checkpoint and exit), then kill what is left after a grace period."""
        targets = [u for u in (uids if uids is not None else list(self._procs)) if u in self._procs]
        for uid in targets:
            try:
                self._procs[uid].send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for uid in targets:
            p = self._procs.pop(uid)
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen
    answers: int  # read end of the answer pipe (non-blocking)
    buffer: bytes = b""
    uid: str | None = None  # the unit it runs now (one at a time)
    retiring: bool = False
    lines: list[dict] = field(default_factory=list)

    def read(self) -> None:
        """Collect the complete answer lines that arrived."""
        while True:
            try:
                chunk = os.read(self.answers, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        self.lines.extend(json.loads(line) for line in complete if line.strip())


class WarmLocalExecutor(LocalExecutor):
    """``--jobs N`` long-lived workers running unit after unit (see the module docstring)."""

    def __init__(
        self,
        store_root: Path | str,
        jobs: int,
        worker_max_units: int = 0,
        worker_max_rss_mb: float = 0.0,
    ):
        super().__init__(store_root, jobs)
        self.worker_max_units = worker_max_units
        self.worker_max_rss_mb = worker_max_rss_mb
        self._workers: list[_Worker] = []
        self._leaving: list[subprocess.Popen] = []  # retired workers not yet reaped

    def _spawn(self) -> _Worker:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, LOWLOSS_EXECUTOR="local", LOWLOSS_WORKER_FD=str(write_fd))
        cmd = [sys.executable, "-m", "lowloss.orchestrator.runtime.worker"]
        cmd += ["--max-units", str(self.worker_max_units), "--max-rss-mb", str(self.worker_max_rss_mb)]
        try:
            with self.store.open_log(self.store.launcher_log()) as fh:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=fh,
                    stderr=fh,
                    env=env,
                    pass_fds=(write_fd,),
                    preexec_fn=_die_with_parent,
                )
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        worker = _Worker(proc, read_fd)
        self._workers.append(worker)
        return worker

    def _drop(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        os.close(worker.answers)
        if worker.proc.stdin:
            try:
                worker.proc.stdin.close()
            except OSError:
                pass

    def submit(self, batch: list[Submission]) -> None:
        for sub in batch:
            worker = next((w for w in self._workers if w.uid is None and not w.retiring), None) or self._spawn()
            worker.uid = sub.uid
            assert worker.proc.stdin is not None
            try:
                msg = {"store": str(self.store_root), "task": sub.task.to_json(), "cpus": sub.resources.cpus}
                worker.proc.stdin.write(json.dumps(msg).encode() + b"\n")
                worker.proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died meanwhile: poll reports the unit as ended with the worker

    def _collect(self) -> list[Finished]:
        self._reap()
        out: list[Finished] = []
        for worker in list(self._workers):
            rc = worker.proc.poll()  # before reading: an answer written just before it ended is read below
            out.extend(self._answers(worker))
            if rc is not None:
                if worker.uid is not None:  # it died running a unit: that unit ended with it
                    out.append(Finished(worker.uid, *_how(rc)))
                self._drop(worker)
            elif worker.retiring and worker.uid is None:
                self._retire(worker)
        return out

    def _answers(self, worker: _Worker) -> list[Finished]:
        out = []
        worker.read()
        for answer in worker.lines:
            if worker.uid is not None and answer["uid"] == worker.uid:
                out.append(Finished(worker.uid, Ending.EXITED, f"worker {worker.proc.pid}: {answer['state']}"))
                worker.uid = None
            worker.retiring = worker.retiring or bool(answer.get("retire"))
        worker.lines.clear()
        return out

    def _retire(self, worker: _Worker) -> None:
        """An idle worker that said it retires leaves the pool (it exits on its own; reaped without waiting)."""
        self._drop(worker)
        self._leaving.append(worker.proc)

    def _reap(self) -> None:
        self._leaving = [p for p in self._leaving if p.poll() is None]

    def poll(self, timeout: float) -> list[Finished]:
        deadline = time.monotonic() + timeout
        while True:
            out = self._collect()
            busy = [w for w in self._workers if w.uid is not None]
            left = deadline - time.monotonic()
            if out or not busy or left <= 0:
                return out
            select.select([w.answers for w in busy], [], [], min(left, 0.05))

    def active(self) -> set[str]:
        return {w.uid for w in self._workers if w.uid is not None}

    def cancel(self, uids: list[str] | None = None) -> None:
        """Ask the workers running these units to stop (SIGTERM: checkpoint, answer, exit); kill what is left after a
        grace period. Idle workers are left alone (``close`` ends them)."""
        targets = [w for w in self._workers if w.uid is not None and (uids is None or w.uid in uids)]
        for worker in targets:
            try:
                worker.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for worker in targets:
            try:
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            self._drop(worker)

    def close(self) -> None:
        self.cancel()
        for worker in list(self._workers):  # idle: end of stdin ends them
            if worker.proc.stdin:
                try:
                    worker.proc.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self._leaving:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._leaving = []
        for worker in list(self._workers):
            try:
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            self._drop(worker)
