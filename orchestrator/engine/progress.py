"""Progress of a running study, readable at thousands of units.

On a terminal: one progress bar per stage (done/planned, running, throughput, ETA) that rich redraws in place.
Elsewhere (a Slurm job's output, CI): one summary line per stage every ``summary_every_s`` seconds. Either way the
per-unit detail (started, done, retry, with ids) goes to the store's ``logs/coordinator.log``; failures and retries
are also shown on the console, since a person must see them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from ..store import Store
    from .graph import Unit

SUMMARY_EVERY_S = 30.0
LOUD = ("failed", "retry", "cancelled", "stopped")  # unit events that also go to the console


@dataclass
class StageCounts:
    planned: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    finished_now: int = 0  # units finished in this run (for the rate)

    def rate(self, elapsed: float) -> float:
        """Units finished per second over the ``elapsed`` seconds of this run."""
        return self.finished_now / elapsed if elapsed > 0 else 0.0

    def eta_s(self, elapsed: float) -> float | None:
        rate = self.rate(elapsed)
        left = self.planned - self.done - self.failed
        return left / rate if rate > 0 and left > 0 else None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Reporter:
    def __init__(
        self,
        store: "Store",
        console: Console | None = None,
        live: bool | None = None,
        summary_every_s: float = SUMMARY_EVERY_S,
    ):
        self.store = store
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.summary_every_s = summary_every_s
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}
        self._stages: dict[str, StageCounts] = {}
        self._units: dict[str, "Unit"] = {}
        self._last_summary = time.monotonic()
        self._log: IO[str] | None = None
        self.started_at = time.monotonic()

    # lifecycle
    def start(self, units: dict, reused: set[str]) -> None:
        self._log = self.store.open_log(self.store.coordinator_log(), buffering=1)
        self._count(units)
        for uid in reused:
            self._stages[units[uid].stage].done += 1
        if reused:
            self.message(f"{len(reused)} of {len(units)} units already committed in the store; reusing them")
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description:<16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=4,
            )
            self._progress.start()
            for stage, c in self._stages.items():
                self._bars[stage] = self._progress.add_task(stage, total=c.planned, completed=c.done, info="")

    def _count(self, units: dict) -> None:
        for uid, unit in units.items():
            if uid in self._units:
                continue
            self._units[uid] = unit
            self._stages.setdefault(unit.stage, StageCounts()).planned += 1

    def add_units(self, units: dict) -> None:
        before = len(self._units)
        self._count(units)
        added = len(self._units) - before
        if added:
            stages = sorted({u.stage for u in list(self._units.values())[before:]})
            self.message(f"planner added {added} units ({', '.join(stages)})")
            if self._progress is not None:
                for stage, c in self._stages.items():
                    if stage not in self._bars:
                        self._bars[stage] = self._progress.add_task(stage, total=c.planned, completed=c.done, info="")
                    else:
                        self._progress.update(self._bars[stage], total=c.planned)

    def stop(self) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None
        elif self._stages:
            self._summary()
        if self._log is not None:
            self._log.close()
            self._log = None

    # events
    def _write_log(self, text: str) -> None:
        if self._log is not None:
            try:
                self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            except OSError:  # a full disk must not stop the coordinator's bookkeeping
                pass

    def message(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)
        self._write_log(text)

    def note(self, unit: "Unit", text: str) -> None:
        self.message(f"{unit.stage} {unit.label} ({unit.id[:10]}) {text}")

    def started(self, unit: "Unit") -> None:
        self._stages.setdefault(unit.stage, StageCounts()).running += 1
        self._write_log(f"started {unit.stage} {unit.label} ({unit.id})")

    def finished(self, unit: "Unit", state: str, detail: str = "") -> None:
        c = self._stages.setdefault(unit.stage, StageCounts())
        c.running = max(0, c.running - 1)
        now = time.monotonic()
        if state == "done":
            c.done += 1
            c.finished_now += 1
        elif state == "failed":
            c.failed += 1
            c.finished_now += 1
        text = f"{state} {unit.stage} {unit.label} ({unit.id[:10]})" + (f": {detail}" if detail else "")
        if state in LOUD:
            colour = "red" if state == "failed" else "yellow"
            self.console.print(
                f"[dim]{time.strftime('%H:%M:%S')}[/dim] [{colour}]{state}[/{colour}] {unit.stage} "
                f"{unit.label} ({unit.id[:10]})" + (f": {detail}" if detail else ""),
                highlight=False,
            )
        self._write_log(text)
        if self._progress is not None:
            self._refresh()
        elif now - self._last_summary >= self.summary_every_s:
            self._summary()

    def tick(self, active: set[str]) -> None:
        """Refresh the bars (terminal) or print the periodic summary (elsewhere)."""
        if self._progress is not None:
            self._refresh()
        elif time.monotonic() - self._last_summary >= self.summary_every_s:
            self._summary()

    def _info(self, stage: str, c: StageCounts, now: float) -> str:
        parts = [f"{c.running} running"] if c.running else []
        if c.failed:
            parts.append(f"[red]{c.failed} failed[/red]")
        rate = c.rate(now - self.started_at)
        if rate > 0:
            parts.append(f"{rate:.2f} units/s" if rate >= 0.1 else f"{60 * rate:.2f} units/min")
        return ", ".join(parts)

    def _refresh(self) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        for stage, c in self._stages.items():
            if stage in self._bars:
                self._progress.update(
                    self._bars[stage], total=c.planned, completed=c.done + c.failed, info=self._info(stage, c, now)
                )

    def _summary(self) -> None:
        """One line per stage with work left (and a total), for logs."""
        now = time.monotonic()
        self._last_summary = now
        lines = []
        for stage, c in self._stages.items():
            eta = c.eta_s(now - self.started_at)
            info = self._info(stage, c, now).replace("[red]", "").replace("[/red]", "")
            lines.append(
                f"{stage} {c.done}/{c.planned}"
                + (f" ({info})" if info else "")
                + (f" ETA {_duration(eta)}" if eta is not None else "")
            )
        done = sum(c.done for c in self._stages.values())
        total = sum(c.planned for c in self._stages.values())
        self.message(f"{done}/{total} units done, elapsed {_duration(now - self.started_at)} — " + "; ".join(lines))
