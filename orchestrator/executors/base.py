"""The interface every executor implements (local, Slurm, Ray): submit units, poll which ones ended, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ...jobs import Resources
from ..runtime import UnitTask


class ExecutorError(Exception):
    """The scheduler refused or failed a submission (not bad input: the study stays resumable)."""


@dataclass(frozen=True)
class Submission:
    """One unit handed to an executor: what the node runs, what it needs, and its label for people."""

    task: UnitTask
    resources: Resources
    label: str = ""

    @property
    def uid(self) -> str:
        return self.task.uid

    @property
    def kind(self) -> str:
        return self.task.kind


class Ending(str, Enum):
    """How a unit's execution ended, as the executor saw it (what it achieved is read from the store)."""

    EXITED = "exited"
    CANCELLED = "cancelled"  # by the user (scancel, `lowloss cancel`) or a stop
    LOST = "lost"  # node failure, OOM kill, a vanished job


@dataclass(frozen=True)
class Finished:
    """A unit whose execution ended; what it achieved is read from the store, never from ``how``."""

    uid: str
    how: Ending
    detail: str = ""


class Executor(Protocol):
    """Where units run. Implementations keep no state the store does not have, except handles of what they launched
    in this process."""

    name: str
    capacity: int  # units that may be active at once
    keeps_running: bool  # its jobs outlive the coordinator (a scheduler's), so stopping does not stop them

    def detach_message(self, active: int, store: str) -> str:
        """What to tell the user about units left running when the coordinator stops (``keeps_running``)."""
        ...

    def submit(self, batch: list[Submission]) -> None: ...

    def poll(self, timeout: float) -> list[Finished]:
        """Wait up to ``timeout`` seconds for units to end; return those that ended."""
        ...

    def active(self) -> set[str]: ...

    def attach(self, uids: set[str]) -> set[str]:
        """After a coordinator restart: take over scheduler jobs still running these units; returns those units."""
        ...

    def cancel(self, uids: list[str] | None = None) -> None: ...

    def close(self) -> None: ...


class ExecutorBase:
    """The defaults of the ``Executor`` protocol: nothing to re-attach to, stopping cancels, units end with it."""

    name = "base"
    capacity = 1
    keeps_running = False

    def detach_message(self, active: int, store: str) -> str:
        return f"{active} unit(s) keep running; `lowloss run` again re-attaches to them"

    def attach(self, uids: set[str]) -> set[str]:
        return set()

    def cancel(self, uids: list[str] | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.cancel()
