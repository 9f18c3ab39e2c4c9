"""The study store: one directory per study, one directory per unit, Parquet rows, safetensors points, JSON metadata.

Layout (hive-style names so DuckDB/Polars/pyarrow can query it read-only)::

    STORE/
      study.json                      identity: study name, store format
      spec.toml                       the spec of the latest run (``lowloss resume`` reads it)
      plan.json                       stage → unit ids of the latest plan
      coordinator.lock / .json        held (flock) by the one coordinator driving the store
      units/kind=<kind>/unit=<id>/
        unit.json                     kind, version, params, inputs (immutable)
        <table>/<segment>.parquet     metric rows of one segment (e.g. steps/000003.parquet)
        points/<segment>.safetensors  parameter points of one segment (at a stride)
        segments/<segment>.json       segment marker, written last: files + sha256, row counts, wall times
        checkpoint/                   resume checkpoint (latest.json → ckpt-<segment>.safetensors)
        final.safetensors             final parameters (a mode), when the kind has them
        result.json                   the unit's summary (deterministic)
        COMMIT.json                   commit marker, written last: digest over the deterministic content
        attempts/<n>.json, <n>.log    one record and log per attempt (host, pid, job id, state, traceback)
        unit.lock                     held (flock) by the one process running the unit

Readers only see segments whose marker exists and units whose COMMIT.json exists. Every write is atomic.
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

from .atomic import (TEMP_PREFIX, StoreFullError, atomic_save_tensors, atomic_write_bytes, atomic_write_json,
                     canonical_json, check_no_symlinks, read_json, remove_files_nofollow, sha256_file)

FORMAT = 1
SEGMENT_DIGITS = 6
UNIT_PREFIX = re.compile(r"[0-9a-f]{1,64}")


class StoreError(Exception):
    """A problem with the store that the user must fix (wrong study, locked, not a store)."""


def segment_name(index: int) -> str:
    return f"{index:0{SEGMENT_DIGITS}d}"


@dataclass(frozen=True)
class UnitRecord:
    id: str
    kind: str
    version: int
    params: dict
    inputs: dict  # role -> unit id

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "version": self.version, "params": self.params, "inputs": self.inputs}

    @classmethod
    def from_json(cls, obj: dict) -> "UnitRecord":
        return cls(obj["id"], obj["kind"], obj["version"], obj["params"], obj["inputs"])


class Store:
    """A study store rooted at a directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ------------------------------------------------------------------ study identity
    @property
    def study_file(self) -> Path:
        return self.root / "study.json"

    def exists(self) -> bool:
        return self.study_file.exists()

    def study(self) -> dict:
        try:
            return read_json(self.study_file)
        except FileNotFoundError:
            raise StoreError(f"{self.root} is not a lowloss store (no study.json); run `lowloss run SPEC --store {self.root}` first") from None

    def check_study(self, name: str) -> None:
        """Refuse a store that belongs to another study (nothing is written)."""
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreError(f"store {self.root}: {existing} is a file, not a directory; give a directory path for --store")
        if self.exists():
            other = self.study().get("study")
            if other != name:
                raise StoreError(f"store {self.root} belongs to study {other!r}, not {name!r}; "
                                 f"use another --store, or set study.name = {other!r} to continue that study")
        elif self.root.exists() and any(p for p in self.root.iterdir()
                                        if not p.name.startswith(".") and p.name not in ("coordinator.lock", "coordinator.json")):
            raise StoreError(f"store directory {self.root} is not empty and is not a lowloss store; choose a new or empty directory")

    def init_study(self, name: str, spec_text: str) -> None:
        self.check_study(name)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.exists():
            atomic_write_json(self.study_file, {"format": FORMAT, "study": name, "created": time.time()})
        atomic_write_bytes(self.root / "spec.toml", spec_text.encode())

    def spec_text(self) -> str:
        return (self.root / "spec.toml").read_text()

    # ------------------------------------------------------------------ coordinator lock
    @contextmanager
    def coordinator_lock(self) -> Iterator[None]:
        """Hold the store's coordinator lock; a second coordinator gets a StoreError naming the holder."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "coordinator.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read_optional(self.root / "coordinator.json") or {}
                raise StoreError(
                    f"store {self.root} is already driven by a coordinator (pid {holder.get('pid', '?')} on host "
                    f"{holder.get('host', '?')}, since {time.ctime(holder.get('started', 0))}); "
                    f"watch it with `lowloss status {self.root}` or stop that one first") from None
            atomic_write_json(self.root / "coordinator.json",
                              {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ plan
    def write_plan(self, plan: dict) -> None:
        atomic_write_json(self.root / "plan.json", plan)

    def plan(self) -> dict:
        return self._read_optional(self.root / "plan.json") or {"stages": []}

    # ------------------------------------------------------------------ units
    def unit_dir(self, uid: str, kind: str | None = None) -> Path:
        if kind is not None:
            return self.root / "units" / f"kind={kind}" / f"unit={uid}"
        matches = list((self.root / "units").glob(f"kind=*/unit={uid}"))
        if not matches:
            raise StoreError(f"no unit {uid!r} in store {self.root}; `lowloss status {self.root}` lists them")
        return matches[0]

    def find_unit(self, prefix: str) -> str:
        """Resolve a unit id or unique prefix (hex digits only: never a glob pattern)."""
        if not UNIT_PREFIX.fullmatch(prefix):
            raise StoreError(f"unit {prefix!r}: a unit id or a prefix of one is needed — 1 to 64 hex digits 0-9a-f "
                             f"(`lowloss status {self.root} --units` lists them)")
        matches = sorted({p.name[len("unit="):] for p in (self.root / "units").glob(f"kind=*/unit={prefix}*")})
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StoreError(f"no unit matching {prefix!r} in store {self.root}; `lowloss status {self.root} --units` lists them")
        raise StoreError(f"unit prefix {prefix!r} is ambiguous ({len(matches)} units: {', '.join(matches[:4])}…); give more characters")

    def write_unit(self, record: UnitRecord) -> None:
        path = self.unit_dir(record.id, record.kind) / "unit.json"
        if not path.exists():
            atomic_write_json(path, record.to_json())

    def unit(self, uid: str) -> UnitRecord:
        return UnitRecord.from_json(read_json(self.unit_dir(uid) / "unit.json"))

    def unit_ids(self) -> list[str]:
        return sorted(p.name[len("unit="):] for p in (self.root / "units").glob("kind=*/unit=*") if (p / "unit.json").exists())

    def is_committed(self, uid: str, kind: str | None = None) -> bool:
        try:
            return (self.unit_dir(uid, kind) / "COMMIT.json").exists()
        except StoreError:
            return False

    def commit_record(self, uid: str) -> dict | None:
        return self._read_optional(self.unit_dir(uid) / "COMMIT.json")

    def result(self, uid: str) -> dict | None:
        """The unit's result if it is committed, else None."""
        d = self.unit_dir(uid)
        if not (d / "COMMIT.json").exists():
            return None
        return read_json(d / "result.json")

    def segments(self, uid: str) -> list[dict]:
        """Markers of the committed segments, in order."""
        d = self.unit_dir(uid) / "segments"
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("*.json")):
            if p.name.startswith(TEMP_PREFIX):
                continue
            out.append(read_json(p))
        return out

    def rows(self, uid: str, table: str, columns: list[str] | None = None) -> pa.Table | None:
        """The committed rows of one table of a unit (concatenated over committed segments), or None."""
        d = self.unit_dir(uid)
        parts = []
        for marker in self.segments(uid):
            rel = marker["files"].get(f"{table}/{marker['name']}.parquet")
            if rel is None:
                continue
            parts.append(pq.read_table(d / table / f"{marker['name']}.parquet", columns=columns))
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="default")

    def points(self, uid: str) -> Iterator[tuple[int, dict]]:
        """(segment index, tensors) of every committed points file of a unit."""
        from safetensors.torch import load_file

        d = self.unit_dir(uid)
        for marker in self.segments(uid):
            name = f"points/{marker['name']}.safetensors"
            if name in marker["files"]:
                yield marker["index"], load_file(str(d / name))

    def final_state(self, uid: str) -> dict:
        from safetensors.torch import load_file

        d = self.unit_dir(uid)
        if not (d / "COMMIT.json").exists():
            raise StoreError(f"unit {uid} is not committed; its final state cannot be read")
        return load_file(str(d / "final.safetensors"))

    # ------------------------------------------------------------------ attempts and state
    def attempts(self, uid: str) -> list[dict]:
        d = self.unit_dir(uid) / "attempts"
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("*.json")):
            if not p.name.startswith(TEMP_PREFIX):
                rec = self._read_optional(p)
                if rec is not None:
                    out.append(rec)
        return sorted(out, key=lambda r: r["attempt"])

    def unit_is_running(self, uid: str) -> bool:
        """True when a process holds the unit's run lock right now."""
        path = self.unit_dir(uid) / "unit.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def state(self, uid: str) -> str:
        """done | running | failed | pending — derived from the store alone."""
        d = self.unit_dir(uid)
        if (d / "COMMIT.json").exists():
            return "done"
        if self.unit_is_running(uid):
            return "running"
        attempts = self.attempts(uid)
        if attempts and attempts[-1].get("state") in ("failed", "running"):
            # a "running" record whose lock is free belongs to a process that died without a word
            return "failed"
        return "pending"

    @staticmethod
    def _read_optional(path: Path):
        try:
            return read_json(path)
        except (FileNotFoundError, json.JSONDecodeError):
            return None


# ---------------------------------------------------------------------- writing one unit

class UnitWriter:
    """The single writer of one unit directory (held under ``unit.lock`` by the runtime)."""

    def __init__(self, store: Store, record: UnitRecord):
        self.store = store
        self.record = record
        self.dir = store.unit_dir(record.id, record.kind)

    def write_segment(self, index: int, tables: dict[str, list[dict]], points: dict | None = None,
                      info: dict | None = None) -> None:
        """Write one segment's rows and points, then its marker. Rewriting a segment gives identical bytes."""
        name = segment_name(index)
        files: dict[str, str] = {}
        rows: dict[str, int] = {}
        for table, table_rows in sorted(tables.items()):
            if not table_rows:
                continue
            data = parquet_bytes(pa.Table.from_pylist(table_rows))
            rel = f"{table}/{name}.parquet"
            files[rel] = atomic_write_bytes(self.dir / rel, data)
            rows[table] = len(table_rows)
        if points:
            from safetensors.torch import save

            rel = f"points/{name}.safetensors"
            files[rel] = atomic_write_bytes(self.dir / rel, save(_contiguous(points)))
        marker = {"index": index, "name": name, "files": files, "rows": rows, **(info or {})}
        atomic_write_json(self.dir / "segments" / f"{name}.json", marker)

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        """Resume checkpoint: tensors as safetensors, then ``latest.json`` naming it; older ones removed."""
        d = self.dir / "checkpoint"
        fname = f"ckpt-{segment_name(segment_index)}.safetensors"
        size = atomic_save_tensors(d / fname, _contiguous(tensors), inside=self.dir)
        atomic_write_json(d / "latest.json", {"segment": segment_index, "file": fname, "bytes": size, "meta": meta,
                                              "written": time.time()}, inside=self.dir)
        stale = [old for old in d.glob("ckpt-*.safetensors") if old.name != fname]
        if stale:  # freeing a large file's blocks takes time the unit need not wait for; latest.json already moved on
            self._reaper = threading.Thread(target=remove_files_nofollow, args=(self.dir, d, [p.name for p in stale]),
                                            daemon=True)
            self._reaper.start()

    def settle(self) -> None:
        """Wait for background removal of superseded checkpoints."""
        if getattr(self, "_reaper", None) is not None:
            self._reaper.join()
            self._reaper = None

    def read_checkpoint(self) -> tuple[dict, dict, int] | None:
        """(tensors, meta, segment index) of the latest intact checkpoint, or None."""
        from safetensors.torch import load_file

        d = self.dir / "checkpoint"
        latest = Store._read_optional(d / "latest.json")
        path = d / latest["file"] if latest else None
        if path is None or not path.exists() or path.stat().st_size != latest["bytes"]:
            return None
        try:
            return load_file(str(path)), latest["meta"], latest["segment"]
        except Exception:  # an unreadable checkpoint is no checkpoint: the unit starts over, deterministically
            return None

    def commit(self, result: dict, final: dict | None = None, info: dict | None = None) -> str:
        """Write the final state and result, then the commit marker with the unit's digest. Returns the digest."""
        check_no_symlinks(self.dir, self.dir / "checkpoint")  # removed below: never through a link
        if final is not None:
            from safetensors.torch import save

            atomic_write_bytes(self.dir / "final.safetensors", save(_contiguous(final)))
        atomic_write_bytes(self.dir / "result.json", (canonical_json(result) + "\n").encode())
        self.settle()
        digest = unit_digest(self.store, self.record.id)
        atomic_write_json(self.dir / "COMMIT.json", {"digest": digest, "committed": time.time(), **(info or {})})
        remove_files_nofollow(self.dir, self.dir / "checkpoint", remove_folder=True)
        return digest


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def unit_digest(store: Store, uid: str) -> str:
    """Digest over a unit's deterministic content: unit.json, segment data files, final state, result (not times)."""
    d = store.unit_dir(uid)
    h = hashlib.sha256()
    h.update(canonical_json(read_json(d / "unit.json")).encode())
    for marker in store.segments(uid):
        for rel in sorted(marker["files"]):
            h.update(f"{rel}:{sha256_file(d / rel)}\n".encode())
    for name in ("final.safetensors", "result.json"):
        if (d / name).exists():
            h.update(f"{name}:{sha256_file(d / name)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------- integrity

def verify_unit(store: Store, uid: str) -> tuple[str | None, list[str]]:
    """(digest if committed and intact, problems) for one unit; problems name half-written or stray files."""
    d = store.unit_dir(uid)
    problems: list[str] = []
    referenced: set[str] = set()
    for marker in store.segments(uid):
        for rel, sha in marker["files"].items():
            referenced.add(rel)
            path = d / rel
            if not path.exists():
                problems.append(f"{rel}: named by segment {marker['name']} but missing")
            elif sha256_file(path) != sha:
                problems.append(f"{rel}: content differs from its segment marker (corrupt or truncated)")
    for path in sorted(d.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(d).as_posix()
        if path.name.startswith(TEMP_PREFIX):
            problems.append(f"{rel}: temporary file of an interrupted write (ignored by readers)")
        elif rel.endswith(".parquet") or rel.startswith("points/"):
            if rel not in referenced:
                try:
                    if rel.endswith(".parquet"):
                        pq.read_metadata(path)
                    problems.append(f"{rel}: segment without its marker (uncommitted; ignored by readers)")
                except Exception:
                    problems.append(f"{rel}: truncated or unreadable Parquet without a marker (ignored by readers)")
    commit = store.commit_record(uid)
    if commit is None:
        return None, problems
    digest = unit_digest(store, uid)
    if digest != commit["digest"]:
        problems.append(f"COMMIT.json: recorded digest {commit['digest'][:12]} ≠ recomputed {digest[:12]}")
    return digest, problems


__all__ = ["Store", "StoreError", "StoreFullError", "UnitRecord", "UnitWriter", "segment_name", "unit_digest",
           "verify_unit", "parquet_bytes"]
