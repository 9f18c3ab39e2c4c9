"""The ``UnitContext`` protocol of ``jobs/`` implemented over the store: a running unit's inputs, its segments,
checkpoints and progress, and its commit."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pyarrow as pa

from ... import jobs
from ...jobs.base import split_point_key
from ..store import ProgressRecord, RunSettings, Store, StoreFullError, UnitRecord, UnitWriter, split_ref
from .process import allocated_cpus
from .signals import Preempted, StopSignals
from .task import UnitTask

PROGRESS_INTERVAL_S = 1.0


class StoreContext:
    """What one attempt of one unit may do (``jobs.UnitContext``)."""

    def __init__(self, store: Store, task: UnitTask, record: UnitRecord, attempt: int, run: RunSettings, device: Any):
        self.store = store
        self.task = task
        self.record = record
        self.writer = UnitWriter(store.layout, record)
        self.unit_id = record.id
        self.attempt = attempt
        self.device = device
        self.data_root = run.data_root
        self.cpus = allocated_cpus()  # for work whose bytes do not depend on it (image decoding)
        self.checkpoint_seconds = run.checkpoint_seconds
        self._last_checkpoint = time.monotonic()
        self._last_progress = 0.0
        self._segment_started = time.time()
        self._inputs: dict[str, UnitRecord] = {}
        self.notes: list[str] = []  # go into the attempt record

    # ------------------------------------------------------------------ inputs
    def _input(self, role: str) -> tuple[UnitRecord, str]:
        if role not in self.record.inputs:
            raise KeyError(f"unit {self.unit_id} has no input {role!r} (its inputs: {', '.join(self.record.inputs)})")
        uid, output = split_ref(self.record.inputs[role])
        if uid not in self._inputs:
            self._inputs[uid] = self.store.unit(uid, self.task.input_kind(uid))
        return self._inputs[uid], output

    def input_params(self, role: str) -> Any:
        rec, _ = self._input(role)
        return jobs.get_kind(rec.kind).Params.model_validate(rec.params)

    def input_result(self, role: str) -> dict:
        rec, _ = self._input(role)
        result = self.store.read.result(rec.id, rec.kind)
        if result is None:
            raise RuntimeError(f"input {role} ({rec.id}) is not committed")
        return result

    def input_tensors(self, role: str, output: str | None = None) -> dict:
        rec, named = self._input(role)
        output = output or named
        if output.startswith("point:"):
            return self.store.read.point(rec.id, rec.kind, int(output.split(":", 1)[1]))
        return self.store.read.tensors(rec.id, rec.kind, output)

    def input_final_state(self, role: str) -> dict:
        _, named = self._input(role)
        return self.input_tensors(role, named if named.startswith("point:") else "final")

    def input_points(self, role: str) -> Iterator[tuple[int, dict]]:
        rec, _ = self._input(role)
        for _, tensors in self.store.read.points(rec.id, rec.kind):
            by_step: dict[int, dict] = {}
            for key, value in tensors.items():
                name, step = split_point_key(key)
                by_step.setdefault(step if step is not None else -1, {})[name] = value
            yield from sorted(by_step.items())

    def input_rows(self, role: str, table: str) -> pa.Table | None:
        rec, _ = self._input(role)
        return self.store.read.rows(rec.id, rec.kind, table)

    # ------------------------------------------------------------------ this unit's progress
    def committed_segments(self) -> int:
        indices = {m.index for m in self.store.read.segments(self.unit_id, self.record.kind)}
        n = 0
        while n in indices:
            n += 1
        return n

    def rows(self, table: str) -> pa.Table | None:
        return self.store.read.rows(self.unit_id, self.record.kind, table)

    def write_segment(
        self, index: int, tables: dict[str, list[dict]], points: dict | None = None, stop: bool = True
    ) -> None:
        now = time.time()
        self.writer.write_segment(index, tables, points, self._segment_started, now, self.attempt)
        self._segment_started = now
        if stop and StopSignals.received is not None:  # the segment is committed: a resume continues after it
            raise Preempted(f"signal {StopSignals.received}: stopped after segment {index}")

    def checkpoint_due(self) -> bool:
        return StopSignals.received is not None or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        self.writer.write_checkpoint(segment_index, tensors, meta)
        self._last_checkpoint = time.monotonic()
        if StopSignals.received is not None:
            raise Preempted(f"signal {StopSignals.received}: checkpoint written after segment {segment_index}")

    def read_checkpoint(self) -> tuple[dict, dict, int] | None:
        found = self.writer.read_checkpoint()
        if self.writer.discarded_checkpoint:
            note = f"resume checkpoint discarded: {self.writer.discarded_checkpoint}; the unit started over"
            self.notes.append(note)
            self.log(note + " (deterministically: it writes the same bytes)")
        return found

    def progress(self, done: int, total: int, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S and done < total:
            return
        self._last_progress = now
        try:
            self.store.write_progress(self.unit_id, self.record.kind, ProgressRecord(done, total, time.time(), info))
        except StoreFullError:
            pass
        say(f"{done}/{total} " + " ".join(f"{k}={_fmt(v)}" for k, v in info.items()))

    def log(self, message: str) -> None:
        say(message)

    def commit(self, result: dict, final: dict | None = None, outputs: dict[str, dict] | None = None) -> None:
        sets = dict(outputs or {})
        if final is not None:
            sets["final"] = final
        digest = self.writer.commit(result, sets, self.attempt)
        self.log(f"committed, digest {digest[:16]}")


def say(message: str) -> None:
    """A timestamped log line; a full disk must not turn logging into the unit's failure."""
    try:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
    except OSError:
        pass


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
