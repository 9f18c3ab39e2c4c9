"""Writing one unit: its segments (rows, points, then the marker), its resume checkpoint, and its commit (tensor sets,
result, then the commit marker). Every file is written atomically and never through a link inside the unit's
directory; a segment exists once its marker does, a unit once its commit marker does."""

from __future__ import annotations

import io
import threading
import time
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import (
    TEMP_PREFIX,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    canonical_json,
    check_no_symlinks,
    read_json,
    remove_files_nofollow,
    sha256_file,
)
from .layout import RESULT, StoreLayout, output_file, points_file, segment_file, segment_name
from .reading import CommittedReader
from .records import CheckpointPointer, CommitRecord, FileEntry, RecordError, SegmentMarker, UnitRecord
from .verification import unit_digest


def _no_guard() -> None:
    pass


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


class UnitWriter:
    """The single writer of one unit directory (held under ``unit.lock`` by the runtime)."""

    def __init__(self, layout: StoreLayout, record: UnitRecord):
        self.layout = layout
        self.record = record
        self.dir = layout.unit_dir(record.id, record.kind)
        self.root = layout.root  # nothing below it is written or deleted through a link
        self._reaper: threading.Thread | None = None
        self.guard: Callable[[], None] = _no_guard  # raises when this process may no longer write (a lost lease)
        self.discarded_checkpoint: str | None = None  # why a checkpoint found on resume was not used

    def write_segment(
        self,
        index: int,
        tables: dict[str, list[dict]],
        points: dict | None = None,
        started: float | None = None,
        finished: float | None = None,
        attempt: int | None = None,
    ) -> None:
        """Write one segment's rows and points, then its marker. Rewriting a segment gives identical bytes."""
        self.guard()
        name = segment_name(index)
        files: dict[str, str] = {}
        sizes: dict[str, int] = {}
        rows: dict[str, int] = {}
        for table, table_rows in sorted(tables.items()):
            if not table_rows:
                continue
            data = parquet_bytes(pa.Table.from_pylist(table_rows))
            rel = segment_file(table, name)
            files[rel] = atomic_write_bytes(self.dir / rel, data, inside=self.root)
            sizes[rel] = len(data)
            rows[table] = len(table_rows)
        if points:
            from safetensors.torch import save

            rel = points_file(name)
            data = save(_contiguous(points))
            files[rel] = atomic_write_bytes(self.dir / rel, data, inside=self.root)
            sizes[rel] = len(data)
        marker = SegmentMarker(index, name, files, sizes, rows, started, finished, attempt, self.record.id)
        atomic_write_json(self.dir / "segments" / f"{name}.json", marker.to_json(), inside=self.root)

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        """Resume checkpoint: tensors as safetensors, then ``latest.json`` naming it with its size and sha256;
        older ones removed."""
        self.guard()
        d = self.dir / "checkpoint"
        fname = f"ckpt-{segment_name(segment_index)}.safetensors"
        size = atomic_save_tensors(d / fname, _contiguous(tensors), inside=self.root)
        pointer = CheckpointPointer(
            segment_index, fname, size, sha256_file(d / fname), meta, time.time(), self.record.id
        )
        atomic_write_json(d / "latest.json", pointer.to_json(), inside=self.root)
        stale = [old for old in d.glob("ckpt-*.safetensors") if old.name != fname]
        if stale:  # freeing a large file's blocks takes time the unit need not wait for; latest.json already moved on
            self._reaper = threading.Thread(
                target=remove_files_nofollow, args=(self.root, d, [p.name for p in stale]), daemon=True
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
        try:
            latest = CheckpointPointer.from_json(read_json(d / "latest.json"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, UnicodeDecodeError, RecordError):
            self.discarded_checkpoint = "checkpoint/latest.json is unreadable"
            return None
        problem = self._checkpoint_problem(latest)
        if problem is None:
            try:
                return load_file(str(d / latest.file)), latest.meta, latest.segment
            except Exception as exc:  # an unreadable checkpoint is no checkpoint
                problem = f"checkpoint/{latest.file} is unreadable ({type(exc).__name__})"
        self.discarded_checkpoint = problem
        return None

    def _checkpoint_problem(self, latest: CheckpointPointer) -> str | None:
        path = self.dir / "checkpoint" / latest.file
        if not path.is_file():
            return f"checkpoint/{latest.file} is missing"
        if path.stat().st_size != latest.bytes:
            return f"checkpoint/{path.name} has {path.stat().st_size} bytes, latest.json recorded {latest.bytes}"
        if sha256_file(path) != latest.sha256:
            return f"checkpoint/{path.name} differs from the sha256 latest.json recorded"
        if latest.unit is not None and latest.unit != self.record.id:
            return f"checkpoint/latest.json belongs to unit {latest.unit}, not to this one"
        if not self.layout.segment_marker(self.record.id, self.record.kind, latest.segment).exists():
            return f"checkpoint/{path.name} is after segment {latest.segment}, which is not committed"
        return None

    def commit(self, result: dict, outputs: dict[str, dict] | None = None, attempt: int | None = None) -> str:
        """Write the named tensor sets and the result, then the commit marker with the unit's digest and the size and
        sha256 of each file. Returns the digest."""
        from safetensors.torch import save

        self.guard()
        check_no_symlinks(self.root, self.dir / "checkpoint")  # removed below: never through a link

        files: dict[str, FileEntry] = {}
        for name, tensors in sorted((outputs or {}).items()):
            rel = output_file(name)
            data = save(_contiguous(tensors))
            files[rel] = FileEntry(atomic_write_bytes(self.dir / rel, data, inside=self.root), len(data))
        data = (canonical_json(result) + "\n").encode()
        files[RESULT] = FileEntry(atomic_write_bytes(self.dir / RESULT, data, inside=self.root), len(data))
        self.settle()
        reader = CommittedReader(self.layout)
        digest = unit_digest(reader, self.record.id, self.record.kind)
        seg_dir = self.dir / "segments"
        markers = (
            {p.name: sha256_file(p) for p in sorted(seg_dir.glob("*.json")) if not p.name.startswith(TEMP_PREFIX)}
            if seg_dir.is_dir()
            else {}
        )
        unit_record = sha256_file(self.layout.unit_record(self.record.id, self.record.kind))
        self.guard()
        record = CommitRecord(digest, files, markers, time.time(), attempt, self.record.id, unit_record)
        atomic_write_json(
            self.layout.commit_marker(self.record.id, self.record.kind), record.to_json(), inside=self.root
        )
        remove_files_nofollow(self.root, self.dir / "checkpoint", remove_folder=True)
        return digest
