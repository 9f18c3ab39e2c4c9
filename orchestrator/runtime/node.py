"""The one bootstrap of a process that runs units — a fresh process (``python -m lowloss.orchestrator.runtime``), a
warm local worker, a Slurm array task and a Ray task all run their units through ``Node``.

A process may run many units one after the other (a packed Slurm task, a warm local worker, a Ray worker): before each
unit ``ProcessState.restore`` puts back what a fresh process would give it (torch's default RNG states, its numerics
flags, Python's and numpy's RNGs, the environment, the working directory), so a unit writes the same bytes whatever ran
before it in the process. A warm node imports the kinds and torch once, before the state it puts back is taken, and
freezes what the imports made (the collection after each unit skips it). Nothing verified for one unit is trusted for
the next: each unit checks the sha256 of what it reads again (a file rotting in place between two units of a warm
worker keeps its size, time and inode).
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path
from typing import ClassVar

from ..store import Store
from ..store.digests import forget_verified
from .attempt import run_unit
from .process import ProcessState, release_unit_memory
from .signals import StopSignals
from .task import UnitOutcome, UnitTask

STOPS = (signal.SIGTERM, signal.SIGUSR2)


class Node:
    """This process as a runner of units."""

    _warm: ClassVar["Node | None"] = None

    def __init__(self, warm: bool = False):
        from ... import jobs  # noqa: F401  the kinds (and plugins) once, for every unit

        if warm:
            try:
                import torch  # noqa: F401  once per process, not once per unit
            except ImportError:
                pass
        self.state = ProcessState()  # after the imports: what each unit gets back
        if warm:
            gc.freeze()  # what the imports made is never garbage: the collection after each unit skips it
        self._stores: dict[str, Store] = {}

    @classmethod
    def warm(cls) -> "Node":
        """The process's one warm node (a Ray worker's, reused by every task the worker runs)."""
        if cls._warm is None:
            cls._warm = cls(warm=True)
        return cls._warm

    @staticmethod
    def listen(signals: tuple[int, ...] = STOPS) -> dict:
        """Stop signals ask the running unit to checkpoint from now on; returns the handlers they replaced."""
        return StopSignals.install(signals)

    @staticmethod
    def stop_requested() -> int | None:
        return StopSignals.received

    def run(
        self,
        store_root: str | Path,
        tasks: list[UnitTask],
        executor: str,
        job_id: str | None = None,
        cpus: int | None = None,
    ) -> list[UnitOutcome]:
        """Run units in sequence, each from a fresh process's global state; stops early once a stop signal arrived.
        ``cpus`` is the allocation (``LOWLOSS_CPUS``)."""
        store = self._stores.get(str(store_root)) or self._stores.setdefault(str(store_root), Store(store_root))
        outcomes = []
        for task in tasks:
            if StopSignals.received is not None:
                break
            self.state.restore()
            forget_verified()  # each unit hashes its inputs again: bit rot changes no size, time or inode
            if cpus is not None:
                os.environ["LOWLOSS_CPUS"] = str(cpus)
            try:
                outcomes.append(run_unit(store, task, executor, job_id))
            finally:
                release_unit_memory()
        return outcomes

    def run_borrowed(self, store_root: str | Path, tasks: list[UnitTask], executor: str, job_id: str, cpus: int):
        """``run`` inside a long-lived process that is not ours (a Ray worker): each call starts with no stop signal
        received and puts the process's own signal handlers back when it returns. SIGINT asks the unit to checkpoint
        too (Ray's ``cancel`` interrupts the task with it)."""
        StopSignals.received = None
        previous = StopSignals.install((*STOPS, signal.SIGINT))
        try:
            return self.run(store_root, tasks, executor, job_id, cpus=cpus)
        finally:
            StopSignals.restore(previous)
