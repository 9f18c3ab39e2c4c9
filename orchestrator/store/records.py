"""The store's records as typed, frozen classes: one reader (``from_json``, which checks the shape and raises
``RecordError``) and one writer (``to_json``) each. The JSON they write is the store's format 2, unchanged: a store
written before these classes existed reads the same.

States are enums; a decision is taken on a field, never on the text of a message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Mapping


class RecordError(ValueError):
    """A record whose JSON does not have the shape its class reads (damaged, truncated or hand-edited)."""


def _need(obj: Any, key: str, *types: type) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise RecordError(f"no {key!r}")
    value = obj[key]
    if types and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
        raise RecordError(f"{key!r} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}")
    return value


def _optional(obj: dict, key: str, *types: type) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise RecordError(f"{key!r} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}")
    return value


def _str_map(obj: Any, key: str, value_type: type) -> dict:
    value = _need(obj, key, dict)
    if not all(isinstance(k, str) and isinstance(v, value_type) for k, v in value.items()):
        raise RecordError(f"{key!r} is not a table of {value_type.__name__}")
    return dict(value)


# ---------------------------------------------------------------------------------------------- store level


@dataclass(frozen=True)
class StudyIdentity:
    """``study.json``: which study a store holds, in which format."""

    study: str
    format: int | None
    created: float | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "StudyIdentity":
        if not isinstance(obj, dict):
            raise RecordError("not a table")
        return cls(str(obj.get("study")), obj.get("format"), obj.get("created"))

    def to_json(self) -> dict:
        return {"format": self.format, "study": self.study, "created": self.created}


class LockMechanism(str, Enum):
    """How the store's locks are held (``[run] lock``; ``auto`` is resolved by the coordinator and recorded)."""

    AUTO = "auto"  # flock where the store's file system has it, else leases
    FLOCK = "flock"  # fcntl.flock: held by an open descriptor, gone with its process
    LEASE = "lease"  # a lease file its holder renews (for file systems whose flock is node-local or absent)


@dataclass(frozen=True)
class RunSettings:
    """``run.json``: how the latest run ran (read by its units: data root, device, checkpoint cadence, and the lock
    mechanism its coordinator chose, with the lease's length)."""

    data_root: str | None = None
    checkpoint_seconds: float = 60.0
    device: str = "auto"
    executor: str = "local"
    lock: LockMechanism = LockMechanism.FLOCK
    lease_seconds: float = 60.0

    @classmethod
    def from_json(cls, obj: Any) -> "RunSettings":
        if not isinstance(obj, dict):
            return cls()
        try:
            lock = LockMechanism(obj.get("lock", "flock"))
        except ValueError:
            lock = LockMechanism.LEASE  # an unknown mechanism: the one every process can see
        return cls(
            obj.get("data_root"),
            float(obj.get("checkpoint_seconds", 60.0)),
            str(obj.get("device", "auto")),
            str(obj.get("executor", "local")),
            lock,
            float(obj.get("lease_seconds", 60.0)),
        )

    def to_json(self) -> dict:
        return {**asdict(self), "lock": self.lock.value}


@dataclass(frozen=True)
class PlannedUnitEntry:
    id: str
    kind: str
    label: str


@dataclass(frozen=True)
class PlannedStage:
    name: str
    stage_kind: str
    kind: str  # the unit kind that summarises the stage
    open: bool
    note: str
    units: tuple[PlannedUnitEntry, ...]


@dataclass(frozen=True)
class PlanRecord:
    """``plan.json``: the stages of the latest plan with their units (id, kind, label): the index of which kind each
    planned unit id is of."""

    study: str
    stages: tuple[PlannedStage, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> "PlanRecord":
        stages = []
        for stage in _need(obj, "stages", list):
            name, kind = _need(stage, "name", str), _need(stage, "kind", str)
            units = []
            for unit in _need(stage, "units", list):
                # plans of 0.1.0 named a unit's kind only on its stage (every unit of a stage was of one kind)
                units.append(
                    PlannedUnitEntry(_need(unit, "id", str), str(unit.get("kind") or kind), _need(unit, "label", str))
                )
            stages.append(
                PlannedStage(
                    name,
                    str(stage.get("stage_kind", kind)),
                    kind,
                    bool(stage.get("open", False)),
                    str(stage.get("note", "")),
                    tuple(units),
                )
            )
        return cls(str(obj.get("study", "")), tuple(stages))

    def to_json(self) -> dict:
        return {
            "study": self.study,
            "stages": [
                {
                    "name": s.name,
                    "stage_kind": s.stage_kind,
                    "kind": s.kind,
                    "open": s.open,
                    "note": s.note,
                    "units": [{"id": u.id, "kind": u.kind, "label": u.label} for u in s.units],
                }
                for s in self.stages
            ],
        }

    def kinds(self) -> dict[str, str]:
        """unit id → unit kind of every planned unit."""
        return {u.id: u.kind for s in self.stages for u in s.units}


@dataclass(frozen=True)
class CoordinatorRecord:
    """``coordinator.json``: the coordinator holding the store's lock — its process (pid, host, the process's start
    time in clock ticks since boot, which a reused pid does not share), the executor, and the token its lock file
    (``coordinator.lock``, or its lease) holds too: ``lowloss cancel`` signals only a process all of these name."""

    pid: int | None
    host: str | None
    started: float | None
    executor: str | None
    process_start: int | None = None
    token: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "CoordinatorRecord":
        if not isinstance(obj, dict):
            raise RecordError("not a table")
        pid, start, token = obj.get("pid"), obj.get("process_start"), obj.get("token")
        return cls(
            pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            obj.get("host"),
            obj.get("started"),
            obj.get("executor"),
            start if isinstance(start, int) and not isinstance(start, bool) else None,
            token if isinstance(token, str) else None,
        )

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobRecord:
    """``jobs/<array id>.json``: the scheduler tasks of one submission and the units each runs."""

    executor: str
    kind: str
    submitted: float
    tasks: dict[str, list[str]]
    units_per_job: int = 1

    @classmethod
    def from_json(cls, obj: Any) -> "JobRecord":
        tasks = _need(obj, "tasks", dict)
        if not all(isinstance(t, str) and isinstance(u, list) for t, u in tasks.items()):
            raise RecordError("'tasks' is not a table of unit lists")
        return cls(
            str(obj.get("executor", "slurm")),
            str(obj.get("kind", "")),
            float(_need(obj, "submitted", int, float)),
            {t: [str(u) for u in us] for t, us in tasks.items()},
            int(obj.get("units_per_job", 1)),
        )

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- one unit


@dataclass(frozen=True)
class UnitRecord:
    """``unit.json``: what a unit is (its id hashes exactly these fields)."""

    id: str
    kind: str
    version: int
    params: dict
    inputs: dict  # role -> input reference: unit id, or "<unit id>:<output>"

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "version": self.version, "params": self.params, "inputs": self.inputs}

    @classmethod
    def from_json(cls, obj: Any) -> "UnitRecord":
        return cls(
            _need(obj, "id", str),
            _need(obj, "kind", str),
            _need(obj, "version", int),
            _need(obj, "params", dict),
            _str_map(obj, "inputs", str),
        )


@dataclass(frozen=True)
class SegmentMarker:
    """``segments/<n>.json``, written last of a segment: its files with their sha256 and sizes, row counts, times."""

    index: int
    name: str
    files: dict[str, str]  # relative path -> sha256
    bytes: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    attempt: int | None = None
    unit: str | None = None  # the unit it belongs to (None: a marker of before markers named their unit)

    @classmethod
    def from_json(cls, obj: Any) -> "SegmentMarker":
        return cls(
            _need(obj, "index", int),
            _need(obj, "name", str),
            _str_map(obj, "files", str),
            _str_map(obj, "bytes", int) if isinstance(obj.get("bytes"), dict) else {},
            _str_map(obj, "rows", int) if isinstance(obj.get("rows"), dict) else {},
            _optional(obj, "started", int, float),
            _optional(obj, "finished", int, float),
            _optional(obj, "attempt", int),
            _optional(obj, "unit", str),
        )

    def to_json(self) -> dict:
        out: dict[str, Any] = {"index": self.index, "name": self.name, "files": self.files, "bytes": self.bytes}
        out["rows"] = self.rows
        for key in ("started", "finished", "attempt", "unit"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def seconds(self) -> float:
        return (self.finished or 0.0) - (self.started or 0.0)


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class CommitRecord:
    """``COMMIT.json``, written last of a unit: the digest over its deterministic content, the size and sha256 of its
    result and tensor sets (``files``) and of each segment marker (``segments``), and what binds it to its unit: the
    unit's id and the sha256 of its ``unit.json`` (``unit``, ``unit_record``; None in a commit of lowloss 0.1, which
    readers bind by recomputing the digest)."""

    digest: str
    files: dict[str, FileEntry]
    segments: dict[str, str] | None = None  # marker file name -> sha256 (None: a commit of before they were recorded)
    committed: float | None = None
    attempt: int | None = None
    unit: str | None = None
    unit_record: str | None = None

    @staticmethod
    def checksum(obj: dict) -> str:
        """The sha256 of a marker's other fields (canonical JSON): a changed byte anywhere in the marker shows."""
        rest = {k: v for k, v in obj.items() if k != "checksum"}
        return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @classmethod
    def from_json(cls, obj: Any) -> "CommitRecord":
        if isinstance(obj, dict) and "checksum" in obj and obj["checksum"] != cls.checksum(obj):
            raise RecordError("its checksum does not match its content")
        if isinstance(obj, dict) and "unit" in obj and "checksum" not in obj:
            raise RecordError("its checksum is missing")
        digest = _need(obj, "digest", str)
        if len(digest) != 64:
            raise RecordError("'digest' is not a sha256")
        files = {}
        for rel, info in _need(obj, "files", dict).items():
            files[rel] = FileEntry(str(_need(info, "sha256", str)), int(_need(info, "bytes", int)))
        segments = _str_map(obj, "segments", str) if obj.get("segments") is not None else None
        unit, unit_record = _optional(obj, "unit", str), _optional(obj, "unit_record", str)
        if (unit is None) != (unit_record is None):
            raise RecordError("'unit' and 'unit_record' go together")
        committed, attempt = _optional(obj, "committed", int, float), _optional(obj, "attempt", int)
        return cls(digest, files, segments, committed, attempt, unit, unit_record)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "digest": self.digest,
            "files": {rel: {"sha256": f.sha256, "bytes": f.bytes} for rel, f in self.files.items()},
            "segments": self.segments,
            "committed": self.committed,
        }
        for key in ("attempt", "unit", "unit_record"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.unit is not None:  # a marker bound to its unit carries its own checksum
            out["checksum"] = self.checksum(out)
        return out


@dataclass(frozen=True)
class CheckpointPointer:
    """``checkpoint/latest.json``: the resume checkpoint in place, its size and sha256, and the unit's meta."""

    segment: int
    file: str
    bytes: int
    sha256: str
    meta: dict
    written: float | None = None
    unit: str | None = None  # the unit it belongs to (None: a pointer of before pointers named their unit)

    @classmethod
    def from_json(cls, obj: Any) -> "CheckpointPointer":
        return cls(
            _need(obj, "segment", int),
            _need(obj, "file", str),
            _need(obj, "bytes", int),
            _need(obj, "sha256", str),
            _need(obj, "meta", dict),
            _optional(obj, "written", int, float),
            _optional(obj, "unit", str),
        )

    def to_json(self) -> dict:
        return asdict(self)


class AttemptState(str, Enum):
    """How an attempt stands or ended."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the unit raised
    LOST = "lost"  # its process ended without closing the record (killed, node lost, out of memory)
    PREEMPTED = "preempted"  # asked to stop (signal): checkpointed, resumes
    INTERRUPTED = "interrupted"  # stopped by its coordinator's end (local, Ray): resumes
    NOSPACE = "nospace"  # the store's disk filled up

    @property
    def spends_retry(self) -> bool:
        """Whether this ending counts against the unit's retries (a stop or a full disk does not)."""
        return self in (AttemptState.FAILED, AttemptState.LOST)


class ClosedBy(str, Enum):
    """Who closed an attempt record its own process left open."""

    PROCESS_GONE = "process_gone"  # a later process found it running with no one holding the unit: it died silently
    LATER_RUN = "later_run"  # it had committed; killed before its closing record, which a later run wrote


PROCESS_GONE_ERROR = "the worker process ended without a word (killed, node lost, or out of memory)"
COMMITTED_UNCLOSED = "committed; killed before its closing record was written"
COMMITTED_CLOSED_LATER = "committed; killed before its closing record, which a later run wrote"


@dataclass(frozen=True)
class AttemptRecord:
    """``attempts/<n>.json``: one attempt of a unit (where, when, how it ended, and why)."""

    attempt: int
    state: AttemptState
    host: str | None = None
    pid: int | None = None
    executor: str | None = None
    job_id: str | None = None
    started: float | None = None
    finished: float | None = None
    log: str | None = None
    error: str | None = None
    cpu_s: float | None = None
    device: str | None = None
    notes: tuple[str, ...] = ()
    note: str | None = None
    closed_by: ClosedBy | None = None
    # not stored: the record still says running, but the commit marker names this attempt (read as done)
    unclosed_commit: bool = field(default=False, compare=False)

    @classmethod
    def from_json(cls, obj: Any) -> "AttemptRecord":
        try:
            state = AttemptState(_need(obj, "state", str))
        except ValueError as exc:
            raise RecordError(str(exc)) from None
        closed = obj.get("closed_by")
        return cls(
            attempt=_need(obj, "attempt", int),
            state=state,
            host=_optional(obj, "host", str),
            pid=_optional(obj, "pid", int),
            executor=_optional(obj, "executor", str),
            job_id=_optional(obj, "job_id", str),
            started=_optional(obj, "started", int, float),
            finished=_optional(obj, "finished", int, float),
            log=_optional(obj, "log", str),
            error=_optional(obj, "error", str),
            cpu_s=_optional(obj, "cpu_s", int, float),
            device=_optional(obj, "device", str),
            notes=tuple(str(n) for n in obj.get("notes") or ()),
            note=_optional(obj, "note", str),
            closed_by=ClosedBy(closed) if closed in ClosedBy._value2member_map_ else None,
        )

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "attempt": self.attempt,
            "state": self.state.value,
            "host": self.host,
            "pid": self.pid,
            "executor": self.executor,
            "job_id": self.job_id,
            "started": self.started,
            "log": self.log,
        }
        for key in ("finished", "error", "cpu_s", "device", "note"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.notes:
            out["notes"] = list(self.notes)
        if self.closed_by is not None:
            out["closed_by"] = self.closed_by.value
        return out

    def closed(self, state: AttemptState, **changes: Any) -> "AttemptRecord":
        return replace(self, state=state, **changes)

    @property
    def died_silently(self) -> bool:
        """Lost without a word: its process ended before it could record why."""
        return self.state is AttemptState.LOST and self.closed_by is ClosedBy.PROCESS_GONE


@dataclass(frozen=True)
class RetryMark:
    """``attempts/retries.json``: failures up to ``after`` are forgiven (``--retry-failed``)."""

    after: int
    when: float | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "RetryMark":
        return cls(int(_need(obj, "after", int)), _optional(obj, "when", int, float))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProgressRecord:
    """``progress.json``: the running attempt's last progress (done of total, and what the kind reports)."""

    done: int
    total: int
    time: float
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> "ProgressRecord":
        info = {k: v for k, v in obj.items() if k not in ("done", "total", "time")} if isinstance(obj, dict) else {}
        return cls(_need(obj, "done", int), _need(obj, "total", int), float(_need(obj, "time", int, float)), info)

    def to_json(self) -> dict:
        return {"done": self.done, "total": self.total, "time": self.time, **self.info}
