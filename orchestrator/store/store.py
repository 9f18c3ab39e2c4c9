"""The study store: one directory per study, one directory per unit, Parquet rows, safetensors points, JSON metadata.

Every path under a store directory is named in this module alone. Layout (format 2; hive-style names so
DuckDB/Polars/pyarrow can query it read-only)::

    STORE/
      study.json                      identity: study name, store format
      spec.toml                       the spec of the latest run (``lowloss resume`` reads it)
      run.json                        run settings of the latest run (data root, device, checkpoint cadence, executor)
      plan.json                       stage → units (id, kind, label) of the latest plan, and whether a stage is open
      coordinator.lock / .json        held (flock) by the one coordinator driving the store
      logs/launcher.log               what worker processes printed before their unit's own log was open
      logs/coordinator.log            every unit event of every run (started, done, retry, with ids)
      jobs/<array id>.json            scheduler job records (Slurm array tasks → units), for re-attaching
      slurm/<job id>/                 submitit's folder: job scripts, logs, and its *_submitted.pkl (the one pickle:
                                      written by the coordinator, read only by submitit inside the job; no reader
                                      of lowloss opens it)
      damaged/<unit>-<time>/          units moved aside by ``lowloss run --repair``
      units/kind=<kind>/unit=<id>/
        unit.json                     kind, version, params, inputs (immutable)
        <table>/<segment>.parquet     metric rows of one segment (e.g. steps/000003.parquet)
        points/<segment>.safetensors  parameter points of one segment (at a stride)
        segments/<segment>.json       segment marker, written last: files + sha256, row counts, wall times
        checkpoint/                   resume checkpoint (latest.json → ckpt-<segment>.safetensors, with its sha256)
        final.safetensors             final parameters (a mode), when the kind has them
        outputs/<name>.safetensors    other named tensor sets (directions, eigenvectors, …)
        result.json                   the unit's summary (deterministic)
        COMMIT.json                   commit marker, written last: digest over the deterministic content, and the
                                      size and sha256 of result.json and every tensor set
        progress.json                 the running attempt's last progress (for the live view)
        attempts/<n>.json, <n>.log    one record and log per attempt (host, pid, job id, state, traceback)
        attempts/retries.json         failures before this point are forgiven (``--retry-failed``)
        unit.lock                     held (flock) by the one process running the unit

Readers only see segments whose marker exists and units whose COMMIT.json is intact; a file whose size or sha256
disagrees with its marker is never used (units' inputs, reports, figures, the api alike): the reader raises
``DamagedError`` naming the file and the repair. Each unchanged file is hashed once per process (``digest_matches``).
Every write is atomic.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import (
    TEMP_PREFIX,
    StoreFullError,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    canonical_json,
    check_no_symlinks,
    read_json,
    remove_files_nofollow,
    sha256_file,
)

FORMAT = 2
ID_LENGTH = 20
SEGMENT_DIGITS = 6
COMMIT = "COMMIT.json"
COMMITTED_UNCLOSED = "committed; killed before its closing record was written"
COMMITTED_CLOSED_LATER = "committed; killed before its closing record, which a later run wrote"
FINAL = "final.safetensors"
RESULT = "result.json"
FAILED_STATES = ("failed", "lost")  # attempt states that use up a retry (preempted, cancelled, nospace do not)
UNIT_PREFIX = re.compile(r"[0-9a-f]{1,64}")


class StoreError(Exception):
    """A problem with the store that the user must fix (wrong study, locked, not a store)."""


class DamagedError(StoreError):
    """A committed file does not match what its marker recorded: it is never used."""

    def __init__(self, store: "Store", uid: str, problem: str):
        self.uid, self.problem = uid, problem
        super().__init__(
            f"unit {uid}: {problem}; `lowloss verify {store.root}` lists every damaged file, "
            f"`lowloss resume {store.root} --repair` moves damaged units aside and runs them again"
        )


def segment_name(index: int) -> str:
    return f"{index:0{SEGMENT_DIGITS}d}"


@dataclass(frozen=True)
class UnitRecord:
    id: str
    kind: str
    version: int
    params: dict
    inputs: dict  # role -> input reference: unit id, or "<unit id>:<output>"

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "version": self.version, "params": self.params, "inputs": self.inputs}

    @classmethod
    def from_json(cls, obj: dict) -> "UnitRecord":
        return cls(obj["id"], obj["kind"], obj["version"], obj["params"], obj["inputs"])


def unit_id(kind: str, version: int, params: dict, inputs: dict) -> str:
    """A unit's id: the content hash of (kind, kind version, canonical params, input references)."""
    payload = canonical_json({"kind": kind, "version": version, "params": params, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:ID_LENGTH]


def split_ref(ref: str) -> tuple[str, str]:
    """(unit id, output) of an input reference; a plain id names the unit's ``final`` output."""
    uid, sep, output = ref.partition(":")
    return uid, (output if sep else "final")


def output_file(output: str) -> str:
    """The file (relative to the unit directory) holding a named tensor set."""
    return FINAL if output == "final" else f"outputs/{output}.safetensors"


def _valid_commit(obj) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("digest"), str)
        and len(obj["digest"]) == 64
        and isinstance(obj.get("files"), dict)
    )


def _valid_plan(obj) -> bool:
    """plan.json's shape: {"stages": [{"name", "kind", "units": [{"id", "label", ...}, ...]}, ...]}."""
    if not (isinstance(obj, dict) and isinstance(obj.get("stages"), list)):
        return False
    for stage in obj["stages"]:
        if not (
            isinstance(stage, dict)
            and isinstance(stage.get("name"), str)
            and isinstance(stage.get("kind"), str)
            and isinstance(stage.get("units"), list)
        ):
            return False
        for unit in stage["units"]:
            if not (isinstance(unit, dict) and isinstance(unit.get("id"), str) and isinstance(unit.get("label"), str)):
                return False
    return True


# files whose sha256 was found equal to what their marker recorded, in this process: (path, size, mtime_ns, inode,
# device, sha256). A file rewritten or modified in place changes its mtime (or inode) and is hashed again.
_VERIFIED: set[tuple] = set()


def digest_matches(path: Path, expected: str | None) -> bool:
    """True when the file's sha256 is ``expected`` (hashed once per process per unchanged file)."""
    if not isinstance(expected, str):
        return False
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, expected)
    if key in _VERIFIED:
        return True
    if sha256_file(path) != expected:
        return False
    _VERIFIED.add(key)
    return True


class Store:
    """A study store rooted at a directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ------------------------------------------------------------------ paths (the layout, in one place)
    @property
    def study_file(self) -> Path:
        return self.root / "study.json"

    def units_dir(self) -> Path:
        return self.root / "units"

    def launcher_log(self) -> Path:
        path = self.root / "logs" / "launcher.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def coordinator_log(self) -> Path:
        """Every unit event of every run (started, done, retry, with ids), appended by the coordinator."""
        path = self.root / "logs" / "coordinator.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def scheduler_folder(self) -> Path:
        """submitit's folder (job scripts, job logs and its pickles)."""
        return self.root / "slurm"

    def unit_dir(self, uid: str, kind: str | None = None) -> Path:
        if kind is not None:
            return self.root / "units" / f"kind={kind}" / f"unit={uid}"
        matches = list((self.root / "units").glob(f"kind=*/unit={uid}"))
        if not matches:
            raise StoreError(f"no unit {uid!r} in store {self.root}; `lowloss status {self.root}` lists them")
        return matches[0]

    # ------------------------------------------------------------------ study identity
    def exists(self) -> bool:
        return self.study_file.exists()

    def study(self) -> dict:
        """The store's identity (study.json); a StoreError when ``root`` is no store (missing, a file, damaged)."""
        self.check_is_directory()
        try:
            return read_json(self.study_file)
        except FileNotFoundError:
            raise StoreError(
                f"{self.root} is not a lowloss store (no study.json); run `lowloss run SPEC --store {self.root}` first"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise StoreError(
                f"{self.study_file} is damaged (not JSON); it names the study and format of the store"
            ) from None

    def check_format(self) -> None:
        """Refuse a store written in another format (nothing is written)."""
        found = self.study().get("format")
        if found != FORMAT:
            raise StoreError(
                f"store {self.root} has format {found} and this lowloss reads format {FORMAT}; run the study "
                f"into a new store (`lowloss run SPEC --store NEW_DIR`), or read this one with the lowloss "
                f"release that wrote it"
            )

    def check_is_directory(self) -> None:
        """Refuse a store path that is (or lies under) a file, e.g. the spec given where the store belongs."""
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = f"store {self.root}" + ("" if existing == self.root else f": {existing}") + " is a file"
            raise StoreError(
                f"{where}, not a directory; give the study's store directory (the --store of `lowloss run`)"
            )

    def check_study(self, name: str) -> None:
        """Refuse a store that belongs to another study or format (nothing is written)."""
        self.check_is_directory()
        if self.exists():
            other = self.study().get("study")
            if other != name:
                raise StoreError(
                    f"store {self.root} belongs to study {other!r}, not {name!r}; "
                    f"use another --store, or set study.name = {other!r} to continue that study"
                )
            self.check_format()
        elif self.root.exists() and any(
            p
            for p in self.root.iterdir()
            if not p.name.startswith(".") and p.name not in ("coordinator.lock", "coordinator.json")
        ):
            raise StoreError(
                f"store directory {self.root} is not empty and is not a lowloss store; choose a new or empty directory"
            )

    def init_study(self, name: str, spec_text: str) -> None:
        self.check_study(name)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            atomic_write_json(self.study_file, {"format": FORMAT, "study": name, "created": time.time()})
        atomic_write_bytes(self.root / "spec.toml", spec_text.encode())

    def spec_text(self) -> str:
        return (self.root / "spec.toml").read_text()

    # ------------------------------------------------------------------ run settings, plan
    def write_run_settings(self, settings: dict) -> None:
        atomic_write_json(self.root / "run.json", settings)

    def run_settings(self) -> dict:
        return self._read_optional(self.root / "run.json") or {}

    def write_plan(self, plan: dict) -> None:
        atomic_write_json(self.root / "plan.json", plan)

    def plan(self) -> dict:
        """The latest plan (no stages before the first run has planned); a StoreError when plan.json is damaged."""
        path = self.root / "plan.json"
        try:
            plan = read_json(path)
        except (FileNotFoundError, NotADirectoryError):
            return {"stages": []}
        except (ValueError, UnicodeDecodeError):
            plan = None
        if not _valid_plan(plan):
            raise StoreError(
                f"{path} is damaged (not a plan: truncated or garbage); it only lists the stages' units, and "
                f"`lowloss resume {self.root}` plans the study again from its spec.toml and rewrites it "
                f"(committed units are reused)"
            )
        return plan

    # ------------------------------------------------------------------ coordinator lock
    @contextmanager
    def coordinator_lock(self, executor: str | None = None) -> Iterator[None]:
        """Hold the store's coordinator lock; a second coordinator gets a StoreError naming the holder. The holder
        (pid, host, start time, executor) is recorded in ``coordinator.json``."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "coordinator.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_optional(self.root / "coordinator.json") or {}
                raise StoreError(
                    f"store {self.root} is already driven by a coordinator (pid {holder.get('pid', '?')} on host "
                    f"{holder.get('host', '?')}, since {time.ctime(holder.get('started', 0))}); "
                    f"watch it with `lowloss status {self.root}` or stop that one first"
                ) from None
            atomic_write_json(
                self.root / "coordinator.json",
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "executor": executor},
            )
            yield
        finally:
            os.close(fd)

    def coordinator_holder(self) -> dict | None:
        """The record of the coordinator driving the store right now (its lock is held), or None."""
        path = self.root / "coordinator.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_optional(self.root / "coordinator.json")
            return holder if isinstance(holder, dict) else {}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ scheduler job records
    def write_job_record(self, name: str, record: dict) -> None:
        atomic_write_json(self.root / "jobs" / f"{name}.json", record)

    def job_records(self) -> list[dict]:
        out = []
        for path in sorted((self.root / "jobs").glob("*.json")):
            rec = self._read_optional(path)
            if isinstance(rec, dict):
                out.append(rec)
        return out

    # ------------------------------------------------------------------ units
    def find_unit(self, prefix: str) -> str:
        """Resolve a unit id or unique prefix (hex digits only: never a glob pattern)."""
        if not UNIT_PREFIX.fullmatch(prefix):
            raise StoreError(
                f"unit {prefix!r}: a unit id or a prefix of one is needed — 1 to 64 hex digits 0-9a-f "
                f"(`lowloss status {self.root} --units` lists them)"
            )
        matches = sorted({p.name[len("unit=") :] for p in (self.root / "units").glob(f"kind=*/unit={prefix}*")})
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StoreError(
                f"no unit matching {prefix!r} in store {self.root}; `lowloss status {self.root} --units` lists them"
            )
        raise StoreError(
            f"unit prefix {prefix!r} is ambiguous ({len(matches)} units: {', '.join(m[:16] for m in matches[:4])}"
            f"{', …' if len(matches) > 4 else ''}); "
            f"give more characters"
        )

    def write_unit(self, record: UnitRecord) -> None:
        path = self.unit_dir(record.id, record.kind) / "unit.json"
        if not path.exists():
            atomic_write_json(path, record.to_json())

    def unit(self, uid: str, kind: str | None = None) -> UnitRecord:
        """The unit's record; its content must hash to its id (a damaged unit.json is never run or read)."""
        path = self.unit_dir(uid, kind) / "unit.json"
        try:
            record = UnitRecord.from_json(read_json(path))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise DamagedError(self, uid, "unit.json is unreadable") from None
        if record.id != uid or unit_id(record.kind, record.version, record.params, record.inputs) != uid:
            raise DamagedError(self, uid, "unit.json does not hash to the unit's id (its params were changed)")
        return record

    def unit_dirs(self) -> list[tuple[str, str]]:
        """(unit id, kind) of every unit directory that has a unit.json, by id."""
        out = []
        for p in (self.root / "units").glob("kind=*/unit=*"):
            if (p / "unit.json").exists():
                out.append((p.name[len("unit=") :], p.parent.name[len("kind=") :]))
        return sorted(out)

    def unit_ids(self) -> list[str]:
        return sorted(
            p.name[len("unit=") :] for p in (self.root / "units").glob("kind=*/unit=*") if (p / "unit.json").exists()
        )

    def commit_record(self, uid: str, kind: str | None = None) -> dict | None:
        """The unit's commit marker, None when it has none; DamagedError when it is unreadable or incomplete."""
        try:
            path = self.unit_dir(uid, kind) / COMMIT
        except StoreError:
            return None
        try:
            with open(path, "rb") as fh:
                obj = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            raise DamagedError(self, uid, f"{COMMIT} is not JSON (truncated or garbage)") from None
        if not _valid_commit(obj):
            raise DamagedError(self, uid, f"{COMMIT} lacks its digest or file list")
        return obj

    def is_committed(self, uid: str, kind: str | None = None) -> bool:
        """True when the unit's commit marker exists and is intact (a damaged one is no commit)."""
        try:
            return self.commit_record(uid, kind) is not None
        except DamagedError:
            return False

    def is_damaged(self, uid: str, kind: str | None = None) -> bool:
        try:
            self.commit_record(uid, kind)
        except DamagedError:
            return True
        return False

    def _checked_file(self, uid: str, kind: str | None, rel: str, digest: bool) -> Path:
        """The path of a committed file after checking its recorded size (and sha256 when ``digest``)."""
        record = self.commit_record(uid, kind)
        if record is None:
            raise StoreError(f"unit {uid} is not committed; its {rel} cannot be read")
        info = record["files"].get(rel)
        path = self.unit_dir(uid, kind) / rel
        if info is None:
            raise StoreError(f"unit {uid} committed no {rel}")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DamagedError(self, uid, f"{rel} is missing") from None
        if size != info["bytes"]:
            raise DamagedError(self, uid, f"{rel} has {size} bytes, its commit marker recorded {info['bytes']}")
        if digest and not digest_matches(path, info.get("sha256")):
            raise DamagedError(self, uid, f"{rel} differs from the sha256 its commit marker recorded")
        return path

    def result(self, uid: str, kind: str | None = None) -> dict | None:
        """The unit's result if it is committed (its size and sha256 checked against the marker), else None."""
        if self.commit_record(uid, kind) is None:
            return None
        path = self._checked_file(uid, kind, RESULT, digest=True)
        try:
            return read_json(path)
        except (ValueError, UnicodeDecodeError):
            raise DamagedError(self, uid, f"{RESULT} is not JSON") from None

    def tensors(self, uid: str, output: str = "final", kind: str | None = None, verify: bool = True) -> dict:
        """A committed named tensor set, its sha256 checked (what feeds a later unit is never taken on trust)."""
        from safetensors.torch import load_file

        return load_file(str(self._checked_file(uid, kind, output_file(output), digest=verify)))

    def final_state(self, uid: str, kind: str | None = None) -> dict:
        return self.tensors(uid, "final", kind)

    def segments(self, uid: str, kind: str | None = None) -> list[dict]:
        """Markers of the committed segments, in order (an unreadable marker is no segment)."""
        d = self.unit_dir(uid, kind) / "segments"
        commit = self.commit_record(uid, kind)
        recorded = commit.get("segments") if commit else None  # a committed unit's markers are checked against it
        if not d.is_dir():
            if recorded:
                raise DamagedError(self, uid, f"segments/ is missing ({len(recorded)} markers recorded at commit)")
            return []
        out = []
        paths = [p for p in sorted(d.glob("*.json")) if not p.name.startswith(TEMP_PREFIX)]
        if recorded is not None and sorted(p.name for p in paths) != sorted(recorded):
            raise DamagedError(self, uid, f"segments/ holds {len(paths)} markers, {len(recorded)} were committed")
        for p in paths:
            if recorded is not None and sha256_file(p) != recorded[p.name]:
                raise DamagedError(self, uid, f"segments/{p.name} differs from the sha256 its commit marker recorded")
            marker = self._read_optional(p)
            if not (isinstance(marker, dict) and isinstance(marker.get("files"), dict) and "name" in marker):
                # markers are written atomically: an unreadable one was damaged after the fact, never half-written
                raise DamagedError(self, uid, f"segments/{p.name} is not a segment marker (damaged)")
            out.append(marker)
        return out

    def _segment_file(self, uid: str, kind: str | None, marker: dict, rel: str, digest: bool) -> Path:
        path = self.unit_dir(uid, kind) / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DamagedError(self, uid, f"{rel} is missing (named by segment {marker['name']})") from None
        recorded = (marker.get("bytes") or {}).get(rel)
        if recorded is not None and size != recorded:
            raise DamagedError(self, uid, f"{rel} has {size} bytes, its segment marker recorded {recorded}")
        if digest and not digest_matches(path, marker["files"][rel]):
            raise DamagedError(self, uid, f"{rel} differs from the sha256 its segment marker recorded")
        return path

    def rows(
        self, uid: str, table: str, columns: list[str] | None = None, kind: str | None = None, verify: bool = True
    ) -> pa.Table | None:
        """The committed rows of one table of a unit (concatenated over committed segments), or None.

        Each file's size is checked against its marker, and its sha256 when ``verify`` (the default: rows feed
        reports and later units)."""
        parts = []
        for marker in self.segments(uid, kind):
            rel = f"{table}/{marker['name']}.parquet"
            if rel not in marker["files"]:
                continue
            path = self._segment_file(uid, kind, marker, rel, verify)
            try:
                parts.append(pq.read_table(path, columns=columns))
            except (pa.ArrowException, OSError) as exc:
                raise DamagedError(self, uid, f"{rel} is unreadable Parquet ({exc})") from None
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="default")

    def points(self, uid: str, kind: str | None = None, verify: bool = True) -> Iterator[tuple[int, dict]]:
        """(segment index, tensors) of every committed points file of a unit."""
        from safetensors.torch import load_file

        for marker in self.segments(uid, kind):
            rel = f"points/{marker['name']}.safetensors"
            if rel in marker["files"]:
                yield marker["index"], load_file(str(self._segment_file(uid, kind, marker, rel, verify)))

    def point(self, uid: str, step: int, kind: str | None = None) -> dict:
        """The tensors of the point a unit stored at ``step``."""
        from ...jobs.base import split_point_key

        for _, tensors in self.points(uid, kind):
            found = {}
            for key, value in tensors.items():
                name, at = split_point_key(key)
                if at == step:
                    found[name] = value
            if found:
                return found
        raise StoreError(f"unit {uid} stored no point at step {step}")

    def quarantine(self, uid: str, kind: str | None = None) -> Path:
        """Move a unit's directory aside (``damaged/``) so that it runs again from scratch. Returns the new place."""
        d = self.unit_dir(uid, kind)
        target = self.root / "damaged" / f"{uid}-{time.strftime('%Y%m%dT%H%M%S')}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(d, target)
        return target

    # ------------------------------------------------------------------ progress
    def write_progress(self, uid: str, kind: str, info: dict) -> None:
        atomic_write_json(self.unit_dir(uid, kind) / "progress.json", info)

    def progress(self, uid: str, kind: str) -> dict | None:
        obj = self._read_optional(self.unit_dir(uid, kind) / "progress.json")
        return obj if isinstance(obj, dict) else None

    # ------------------------------------------------------------------ attempts and state
    def attempts(self, uid: str, kind: str | None = None) -> list[dict]:
        try:
            d = self.unit_dir(uid, kind) / "attempts"
        except StoreError:
            return []
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("[0-9]*.json")):
            if not p.name.startswith(TEMP_PREFIX):
                rec = self._read_optional(p)
                if isinstance(rec, dict) and "attempt" in rec:
                    out.append(rec)
        out.sort(key=lambda r: r["attempt"])
        if out and out[-1].get("state") == "running":
            # killed between its commit and its closing record: the commit marker names the attempt that made it
            try:
                commit = self.commit_record(uid, kind)
            except DamagedError:
                commit = None
            if commit is not None and commit.get("attempt") == out[-1]["attempt"]:
                out[-1] = {**out[-1], "state": "done", "note": COMMITTED_UNCLOSED}
        return out

    def attempt_paths(self, uid: str, kind: str, attempt: int) -> tuple[Path, Path, Path]:
        """(record, log, space reserve) of one attempt."""
        d = self.unit_dir(uid, kind) / "attempts"
        return d / f"{attempt:03d}.json", d / f"{attempt:03d}.log", d / f"{attempt:03d}.reserve"

    def write_attempt(self, uid: str, kind: str, record: dict) -> None:
        atomic_write_json(self.attempt_paths(uid, kind, record["attempt"])[0], record)

    def close_lost_attempts(self, uid: str, kind: str, state: str = "lost", error: str | None = None) -> list[int]:
        """Attempts recorded as running whose process is gone (no one holds the unit's lock) are closed as ``state``
        (with ``error`` when the record has none). Their space reserves are removed. Returns the attempt numbers
        closed."""
        if self.unit_is_running(uid, kind):
            return []
        closed = []
        for rec in self.attempts(uid, kind):
            if rec.get("state") == "running":
                rec.update(
                    state=state,
                    finished=rec.get("finished") or time.time(),
                    error=rec.get("error")
                    or error
                    or "the worker process ended without a word (killed, node lost, or out of memory)",
                )
                self.write_attempt(uid, kind, rec)
                closed.append(rec["attempt"])
        for reserve in (self.unit_dir(uid, kind) / "attempts").glob("*.reserve"):
            reserve.unlink(missing_ok=True)
        return closed

    def close_committed_attempt(self, uid: str, kind: str) -> int | None:
        """A committed unit whose attempt record still says running (its process was killed between the commit and
        its closing record) gets that record closed as ``done``, at the commit's time. Returns the attempt closed."""
        records = self.attempts(uid, kind)
        rec = records[-1] if records else {}
        if rec.get("note") != COMMITTED_UNCLOSED or self.unit_is_running(uid, kind):
            return None  # the note is ``attempts``' reading of a record still "running" on disk
        commit = self.commit_record(uid, kind) or {}
        finished = rec.get("finished") or commit.get("committed") or time.time()
        self.write_attempt(uid, kind, {**rec, "finished": finished, "note": COMMITTED_CLOSED_LATER})
        return int(rec["attempt"])

    def failure_count(self, uid: str, kind: str | None = None) -> int:
        """Failed attempts that count against the unit's retries (those after the last ``--retry-failed``)."""
        attempts = self.attempts(uid, kind)
        if not attempts:
            return 0
        forgiven = self._read_optional(self.unit_dir(uid, kind) / "attempts" / "retries.json") or {}
        after = forgiven.get("after", 0) if isinstance(forgiven, dict) else 0
        return sum(1 for a in attempts if a["attempt"] > after and a.get("state") in FAILED_STATES)

    def forgive_failures(self, uid: str, kind: str) -> None:
        """``--retry-failed``: earlier failures no longer count against the unit's retries."""
        attempts = self.attempts(uid, kind)
        if attempts:
            atomic_write_json(
                self.unit_dir(uid, kind) / "attempts" / "retries.json",
                {"after": attempts[-1]["attempt"], "when": time.time()},
            )

    def unit_lock_path(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "unit.lock"

    def unit_is_running(self, uid: str, kind: str | None = None) -> bool:
        """True when a process holds the unit's run lock right now."""
        try:
            path = self.unit_dir(uid, kind) / "unit.lock"
        except StoreError:
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def state(self, uid: str, kind: str | None = None) -> str:
        """done | damaged | running | failed | pending — derived from the store alone. An attempt still recorded as
        running whose process is gone (its lock is free: e.g. its coordinator was killed, and the worker with it) is
        no failure: until a coordinator closes its record the unit is pending, resumable from what it committed."""
        try:
            d = self.unit_dir(uid, kind)
        except StoreError:
            return "pending"
        if not d.exists():
            return "pending"
        try:
            if self.commit_record(uid, kind) is not None:
                return "done"
        except DamagedError:
            return "damaged"
        if self.unit_is_running(uid, kind):
            return "running"
        attempts = self.attempts(uid, kind)
        if attempts and attempts[-1].get("state") in ("failed", "lost"):
            return "failed"
        return "pending"

    def stale_attempt(self, uid: str, kind: str | None = None) -> dict | None:
        """The last attempt when it is still recorded as running but no process runs the unit (its process died
        without closing the record), else None."""
        attempts = self.attempts(uid, kind)
        if attempts and attempts[-1].get("state") == "running" and not self.unit_is_running(uid, kind):
            return attempts[-1]
        return None

    def resumable_from(self, uid: str, kind: str) -> int:
        """How many segments of an uncommitted unit are committed (what a resume continues after)."""
        return len(self.segments(uid, kind))

    @staticmethod
    def _read_optional(path: Path):
        try:
            return read_json(path)
        except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
            return None


# ---------------------------------------------------------------------- writing one unit


class UnitWriter:
    """The single writer of one unit directory (held under ``unit.lock`` by the runtime)."""

    def __init__(self, store: Store, record: UnitRecord):
        self.store = store
        self.record = record
        self.dir = store.unit_dir(record.id, record.kind)
        self._reaper: threading.Thread | None = None
        self.discarded_checkpoint: str | None = None  # why a checkpoint found on resume was not used

    def write_segment(
        self, index: int, tables: dict[str, list[dict]], points: dict | None = None, info: dict | None = None
    ) -> None:
        """Write one segment's rows and points, then its marker. Rewriting a segment gives identical bytes."""
        name = segment_name(index)
        files: dict[str, str] = {}
        sizes: dict[str, int] = {}
        rows: dict[str, int] = {}
        for table, table_rows in sorted(tables.items()):
            if not table_rows:
                continue
            data = parquet_bytes(pa.Table.from_pylist(table_rows))
            rel = f"{table}/{name}.parquet"
            files[rel] = atomic_write_bytes(self.dir / rel, data, inside=self.dir)
            sizes[rel] = len(data)
            rows[table] = len(table_rows)
        if points:
            from safetensors.torch import save

            rel = f"points/{name}.safetensors"
            data = save(_contiguous(points))
            files[rel] = atomic_write_bytes(self.dir / rel, data, inside=self.dir)
            sizes[rel] = len(data)
        marker = {"index": index, "name": name, "files": files, "bytes": sizes, "rows": rows, **(info or {})}
        atomic_write_json(self.dir / "segments" / f"{name}.json", marker, inside=self.dir)

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        """Resume checkpoint: tensors as safetensors, then ``latest.json`` naming it with its size and sha256;
        older ones removed."""
        d = self.dir / "checkpoint"
        fname = f"ckpt-{segment_name(segment_index)}.safetensors"
        size = atomic_save_tensors(d / fname, _contiguous(tensors), inside=self.dir)
        digest = sha256_file(d / fname)
        atomic_write_json(
            d / "latest.json",
            {
                "segment": segment_index,
                "file": fname,
                "bytes": size,
                "sha256": digest,
                "meta": meta,
                "written": time.time(),
            },
            inside=self.dir,
        )
        stale = [old for old in d.glob("ckpt-*.safetensors") if old.name != fname]
        if stale:  # freeing a large file's blocks takes time the unit need not wait for; latest.json already moved on
            self._reaper = threading.Thread(
                target=remove_files_nofollow, args=(self.dir, d, [p.name for p in stale]), daemon=True
            )
            self._reaper.start()

    def settle(self) -> None:
        """Wait for background removal of superseded checkpoints."""
        if self._reaper is not None:
            self._reaper.join()
            self._reaper = None

    def read_checkpoint(self) -> tuple[dict, dict, int] | None:
        """(tensors, meta, segment index) of the latest intact checkpoint, or None. A checkpoint whose size or sha256
        differs from what ``latest.json`` recorded, or that names a segment not committed, is discarded (the unit
        then starts over, deterministically) and ``discarded_checkpoint`` says why."""
        from safetensors.torch import load_file

        d = self.dir / "checkpoint"
        latest = Store._read_optional(d / "latest.json")
        if latest is None:
            if (d / "latest.json").exists():
                self.discarded_checkpoint = "checkpoint/latest.json is unreadable"
            return None
        path = d / str(latest.get("file", ""))
        problem = None
        if not path.is_file():
            problem = f"checkpoint/{latest.get('file')} is missing"
        elif path.stat().st_size != latest.get("bytes"):
            problem = (
                f"checkpoint/{path.name} has {path.stat().st_size} bytes, latest.json recorded {latest.get('bytes')}"
            )
        elif latest.get("sha256") is None or sha256_file(path) != latest["sha256"]:
            problem = f"checkpoint/{path.name} differs from the sha256 latest.json recorded"
        elif not (self.dir / "segments" / f"{segment_name(latest['segment'])}.json").exists():
            problem = f"checkpoint/{path.name} is after segment {latest['segment']}, which is not committed"
        if problem is None:
            try:
                return load_file(str(path)), latest["meta"], latest["segment"]
            except Exception as exc:  # an unreadable checkpoint is no checkpoint
                problem = f"checkpoint/{path.name} is unreadable ({type(exc).__name__})"
        self.discarded_checkpoint = problem
        return None

    def commit(self, result: dict, outputs: dict[str, dict] | None = None, info: dict | None = None) -> str:
        """Write the named tensor sets and the result, then the commit marker with the unit's digest and the size and
        sha256 of each file. Returns the digest."""
        from safetensors.torch import save

        check_no_symlinks(self.dir, self.dir / "checkpoint")  # removed below: never through a link

        files: dict[str, dict] = {}
        for name, tensors in sorted((outputs or {}).items()):
            rel = output_file(name)
            data = save(_contiguous(tensors))
            files[rel] = {"sha256": atomic_write_bytes(self.dir / rel, data, inside=self.dir), "bytes": len(data)}
        data = (canonical_json(result) + "\n").encode()
        files[RESULT] = {"sha256": atomic_write_bytes(self.dir / RESULT, data, inside=self.dir), "bytes": len(data)}
        self.settle()
        digest = unit_digest(self.store, self.record.id, self.record.kind)
        seg_dir = self.dir / "segments"
        markers = (
            {p.name: sha256_file(p) for p in sorted(seg_dir.glob("*.json")) if not p.name.startswith(TEMP_PREFIX)}
            if seg_dir.is_dir()
            else {}
        )
        atomic_write_json(
            self.dir / COMMIT,
            {"digest": digest, "files": files, "segments": markers, "committed": time.time(), **(info or {})},
            inside=self.dir,
        )
        remove_files_nofollow(self.dir, self.dir / "checkpoint", remove_folder=True)
        return digest


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def unit_digest(store: Store, uid: str, kind: str | None = None) -> str:
    """Digest over a unit's deterministic content: unit.json, segment data files, tensor sets, result (not times)."""
    d = store.unit_dir(uid, kind)
    h = hashlib.sha256()
    try:
        h.update(canonical_json(read_json(d / "unit.json")).encode())
    except (ValueError, UnicodeDecodeError):
        raise DamagedError(store, uid, "unit.json is unreadable") from None
    for marker in store.segments(uid, kind):
        for rel in sorted(marker["files"]):
            if not (d / rel).is_file():
                raise DamagedError(store, uid, f"{rel} is missing (named by segment {marker['name']})")
            h.update(f"{rel}:{sha256_file(d / rel)}\n".encode())
    for name in (FINAL, RESULT):
        if (d / name).exists():
            h.update(f"{name}:{sha256_file(d / name)}\n".encode())
    outputs = d / "outputs"
    if outputs.is_dir():
        for p in sorted(outputs.glob("*.safetensors")):
            h.update(f"outputs/{p.name}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------- integrity


def verify_unit(store: Store, uid: str, kind: str | None = None) -> tuple[str | None, list[str], list[str]]:
    """(digest if committed and intact, damage, notes) for one unit. Damage: files that disagree with their markers,
    a broken commit marker. Notes: uncommitted leftovers that readers ignore."""
    d = store.unit_dir(uid, kind)
    damage: list[str] = []
    notes: list[str] = []
    referenced: set[str] = set()
    try:
        markers = store.segments(uid, kind)
    except DamagedError as exc:
        damage.append(exc.problem)
        markers = []
        for p in sorted((d / "segments").glob("*.json")):
            marker = Store._read_optional(p)
            if isinstance(marker, dict) and isinstance(marker.get("files"), dict) and "name" in marker:
                markers.append(marker)
    for marker in markers:
        for rel, sha in marker["files"].items():
            referenced.add(rel)
            path = d / rel
            if not path.exists():
                damage.append(f"{rel}: named by segment {marker['name']} but missing")
            elif sha256_file(path) != sha:
                damage.append(f"{rel}: content differs from its segment marker (corrupt or truncated)")
    try:
        commit = store.commit_record(uid, kind)
    except DamagedError as exc:
        commit = None
        damage.append(exc.problem)
    for path in sorted(d.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(d).as_posix()
        if path.name.startswith(TEMP_PREFIX):
            notes.append(f"{rel}: temporary file of an interrupted write (ignored by readers)")
        elif rel.endswith(".reserve"):
            notes.append(f"{rel}: space reserve of an attempt that ended without removing it (ignored)")
        elif rel.endswith(".parquet") or rel.startswith("points/"):
            if rel not in referenced:
                try:
                    if rel.endswith(".parquet"):
                        pq.read_metadata(path)
                    notes.append(f"{rel}: segment without its marker (uncommitted; ignored by readers)")
                except Exception:
                    notes.append(f"{rel}: truncated or unreadable Parquet without a marker (ignored by readers)")
    if commit is None:
        return None, damage, notes
    for rel, info in commit["files"].items():
        path = d / rel
        if not path.exists():
            damage.append(f"{rel}: named by {COMMIT} but missing")
        elif path.stat().st_size != info.get("bytes") or sha256_file(path) != info.get("sha256"):
            damage.append(f"{rel}: content differs from what {COMMIT} recorded (corrupt or truncated)")
    try:
        digest = unit_digest(store, uid, kind)
    except DamagedError:
        return None, damage, notes
    if digest != commit["digest"]:
        damage.append(f"{COMMIT}: recorded digest {commit['digest'][:12]} ≠ recomputed {digest[:12]}")
    return (digest if not damage else None), damage, notes


__all__ = [
    "DamagedError",
    "Store",
    "StoreError",
    "StoreFullError",
    "UnitRecord",
    "UnitWriter",
    "output_file",
    "segment_name",
    "split_ref",
    "unit_digest",
    "unit_id",
    "verify_unit",
    "parquet_bytes",
]
