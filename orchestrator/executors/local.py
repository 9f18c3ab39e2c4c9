"""Local executor: each unit runs in its own worker subprocess (``--jobs N`` at once), so a crashing or killed unit
never takes the coordinator down. Workers die with the coordinator (PR_SET_PDEATHSIG), so a killed coordinator
leaves no second writer behind."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .base import Executor, Finished, Submission

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    os.setsid()  # own process group: a Ctrl-C in the terminal reaches the coordinator, which stops workers cleanly


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, store_root: Path | str, jobs: int):
        from ..store import Store

        self.store_root = Path(store_root)
        self.store = Store(store_root)
        self.capacity = jobs
        self._procs: dict[str, subprocess.Popen] = {}

    def submit(self, batch: list[Submission]) -> None:
        env = dict(os.environ, LOWLOSS_EXECUTOR="local")
        for sub in batch:
            env["LOWLOSS_THREADS"] = str(sub.resources.cpus)
            with open(self.store.launcher_log(), "a") as fh:
                self._procs[sub.uid] = subprocess.Popen(
                    [sys.executable, "-m", "lowloss.orchestrator.runtime", str(self.store_root), sub.uid],
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
                    rc = self._procs.pop(uid).returncode
                    how = "exited" if rc >= 0 else ("cancelled" if -rc in (signal.SIGTERM, signal.SIGINT) else "lost")
                    out.append(Finished(uid, how, f"exit code {rc}" if rc >= 0 else f"killed by signal {-rc}"))
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
