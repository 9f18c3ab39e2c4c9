"""Stop signals: SIGTERM (cancel, requeue, a job's end) and SIGUSR2 (a time limit ahead) ask the running unit to stop
at its next segment boundary, after its resume checkpoint; its attempt ends as ``preempted`` (no retry spent)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from ..store import AttemptRecord, AttemptState, Store


class Preempted(Exception):
    """The unit was asked to stop (signal) and stopped at a segment boundary: after its resume checkpoint, or after a
    committed segment that a resume continues after."""


@dataclass(frozen=True)
class RunningAttempt:
    """The attempt running now, whose record a stop signal marks ``preempted`` at once."""

    store: Store
    uid: str
    kind: str
    record: AttemptRecord


class StopSignals:
    """The stop signal this process received (None: none yet)."""

    received: ClassVar[int | None] = None
    running: ClassVar[RunningAttempt | None] = None

    @classmethod
    def install(cls, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR2)) -> dict:
        """Stop signals ask the running unit to checkpoint; returns the handlers they replaced (``restore``)."""
        return {sig: signal.signal(sig, cls._handler) for sig in signals}

    @classmethod
    def restore(cls, previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    @classmethod
    def _handler(cls, signum: int, frame: Any) -> None:
        cls.received = signum
        running = cls.running
        if running is not None:  # if the scheduler kills us before the checkpoint, the record already says so
            stopped = running.record.closed(
                AttemptState.PREEMPTED, finished=time.time(), error=f"signal {signum} received; checkpointing"
            )
            try:
                running.store.attempts.write(running.uid, running.kind, stopped)
            except OSError:
                pass


def stop_signal() -> int | None:
    """The stop signal this process received (SIGTERM: cancel/requeue by the scheduler; SIGUSR2: time limit)."""
    return StopSignals.received
