"""The executor interface shared by local, Slurm and Ray."""

from __future__ import annotations

from dataclasses import dataclass

from ...jobs import Resources


class ExecutorError(Exception):
    """The scheduler refused or failed a submission (not bad input: the study stays resumable)."""


@dataclass(frozen=True)
class Submission:
    uid: str
    kind: str
    resources: Resources
    label: str = ""


@dataclass(frozen=True)
class Finished:
    """A unit whose execution ended; what it achieved is read from the store, never from ``how``."""

    uid: str
    how: str  # "exited" | "cancelled" | "lost" (node failure, OOM kill, vanished job)
    detail: str = ""


class Executor:
    """Submit units, poll which ones ended, cancel. Implementations keep no state the store does not have,
    except handles of what they launched in this process."""

    name = "base"
    capacity = 1  # units that may be active at once
    keeps_running = False  # its jobs outlive the coordinator (a scheduler's), so stopping does not stop them

    def detach_message(self, active: int, store: str) -> str:
        """What to tell the user about units left running when the coordinator stops (``keeps_running``)."""
        return f"{active} unit(s) keep running; `lowloss run` again re-attaches to them"

    def submit(self, batch: list[Submission]) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[Finished]:
        """Wait up to ``timeout`` seconds for units to end; return those that ended."""
        raise NotImplementedError

    def active(self) -> set[str]:
        raise NotImplementedError

    def attach(self, uids: set[str]) -> set[str]:
        """After a coordinator restart: take over scheduler jobs still running these units; returns those units."""
        return set()

    def cancel(self, uids: list[str] | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.cancel()
