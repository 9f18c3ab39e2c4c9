"""Progress of a running study: a live view on a terminal, plain timestamped lines elsewhere (CI logs, Slurm)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from .graph import Unit
    from .store import Store


class Reporter:
    def __init__(self, store: "Store", console: Console | None = None, live: bool | None = None):
        self.store = store
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._overall = None
        self._tasks: dict[str, int] = {}
        self._units: dict[str, "Unit"] = {}
        self._done = 0
        self._last_heartbeat = time.monotonic()

    # lifecycle
    def start(self, units: dict, reused: set[str]) -> None:
        self._units = dict(units)
        self._done = len(reused)
        if reused:
            self.message(f"{len(reused)} of {len(units)} units already committed in the store; reusing them")
        if self.live:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console,
                                      transient=False, refresh_per_second=4)
            self._progress.start()
            self._overall = self._progress.add_task("[bold]units", total=len(units), completed=self._done, info="")

    def add_units(self, units: dict) -> None:
        new = [u for u in units if u not in self._units]
        if new:
            self._units.update(units)
            self.message(f"planner added {len(new)} units")
            if self._progress is not None:
                self._progress.update(self._overall, total=len(self._units))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # events
    def message(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)

    def note(self, unit: "Unit", text: str) -> None:
        self.message(f"{unit.stage} {unit.label} ({unit.id[:10]}) {text}")

    def started(self, unit: "Unit") -> None:
        if self._progress is not None:
            self._tasks[unit.id] = self._progress.add_task(f"  {unit.stage} {unit.label}", total=None, info="starting")
        else:
            self.note(unit, "started")

    def finished(self, unit: "Unit", state: str, detail: str = "") -> None:
        if state == "done":
            self._done += 1
        task = self._tasks.pop(unit.id, None)
        if self._progress is not None:
            if task is not None:
                self._progress.remove_task(task)
            self._progress.update(self._overall, completed=self._done)
        colour = {"done": "green", "failed": "red", "retry": "yellow", "preempted": "yellow", "cancelled": "yellow"}.get(state, "white")
        suffix = f": {detail}" if detail else ""
        self.message(f"[{colour}]{state}[/{colour}] {unit.stage} {unit.label} ({unit.id[:10]}) "
                     f"[{self._done}/{len(self._units)}]{suffix}")

    def tick(self, active: set[str]) -> None:
        """Refresh per-unit progress from each running unit's progress.json."""
        now = time.monotonic()
        if self._progress is None and now - self._last_heartbeat < 30:
            return
        lines = []
        for uid in active:
            unit = self._units.get(uid)
            if unit is None:
                continue
            prog = _read_progress(self.store, unit)
            if prog is None:
                continue
            info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in prog.items()
                            if k not in ("done", "total", "time"))
            if self._progress is not None and uid in self._tasks:
                self._progress.update(self._tasks[uid], total=prog["total"], completed=prog["done"], info=info)
            else:
                lines.append(f"  {unit.stage} {unit.label}: {prog['done']}/{prog['total']} {info}")
        if self._progress is None:
            self._last_heartbeat = now
            self.message(f"{self._done}/{len(self._units)} units done, {len(active)} running")
            for line in lines:
                self.console.print(line, highlight=False)


def _read_progress(store: "Store", unit: "Unit") -> dict | None:
    return store.progress(unit.id, unit.kind)
