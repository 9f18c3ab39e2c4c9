"""What a run of a study achieved, unit by unit: what it ran, reused, resumed, gave up on, and what is left."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)  # committed in this run
    reused: list[str] = field(default_factory=list)  # already committed before this run
    resumed: list[str] = field(default_factory=list)  # continued from committed segments of an earlier attempt
    failed: dict[str, str] = field(default_factory=dict)  # uid -> last error (given up)
    blocked: list[str] = field(default_factory=list)  # waiting on a failed, cancelled or damaged input
    cancelled: list[str] = field(default_factory=list)  # cancelled by the user (scancel, `lowloss cancel`)
    damaged: list[str] = field(default_factory=list)  # commit marker or files disagree (`--repair` runs them again)
    repaired: list[str] = field(default_factory=list)  # moved aside by --repair, run again
    pending: list[str] = field(default_factory=list)  # not run (the run was stopped, or a scheduler lost them)
    stalled: list[str] = field(default_factory=list)  # stages still open with nothing left to run
    nospace: str | None = None  # the store's disk filled up
    settled: bool = False  # the run's end was accounted for (pending and stalled are known), also after a stop

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.blocked
            or self.cancelled
            or self.damaged
            or self.pending
            or self.stalled
            or self.nospace
        )
