"""Reading what a unit committed: readers see only segments whose marker exists and units whose commit marker is
intact, and never use a file whose size or sha256 disagrees with what its marker recorded — they raise
``DamagedError`` naming the unit, the file and the repair (units' inputs, reports, figures, the read API alike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import TEMP_PREFIX, read_json, sha256_file
from .digests import BOUND_LEGACY, digest_matches
from .errors import DamagedError, StoreError
from .layout import COMMIT, RESULT, UNIT_RECORD, StoreLayout, output_file, points_file, segment_file, unit_id
from .records import CommitRecord, RecordError, SegmentMarker, UnitRecord


class CommittedReader:
    """The committed content of a store's units, each file checked against its marker."""

    def __init__(self, layout: StoreLayout):
        self.layout = layout
        self._binding: set[tuple] = set()  # legacy commit markers being checked right now

    def _damaged(self, uid: str, problem: str) -> DamagedError:
        return DamagedError(self.layout.root, uid, problem)

    # ------------------------------------------------------------------ what a unit is
    def unit(self, uid: str, kind: str) -> UnitRecord:
        """The unit's record; its content must hash to its id (a damaged unit.json is never run or read)."""
        path = self.layout.unit_record(uid, kind)
        try:
            record = UnitRecord.from_json(read_json(path))
        except (ValueError, UnicodeDecodeError):
            raise self._damaged(uid, f"{UNIT_RECORD} is unreadable") from None
        if record.id != uid or unit_id(record.kind, record.version, record.params, record.inputs) != uid:
            raise self._damaged(uid, f"{UNIT_RECORD} does not hash to the unit's id (its params were changed)")
        return record

    # ------------------------------------------------------------------ the commit marker
    def commit(self, uid: str, kind: str) -> CommitRecord | None:
        """The unit's commit marker, None when it has none; DamagedError when it is unreadable, incomplete, or does not
        belong to the unit beside it (another unit's id, or another ``unit.json`` than the one it was written with)."""
        record = self._marker(uid, kind)
        if record is not None:
            self._check_binding(uid, kind, record)
        return record

    def _marker(self, uid: str, kind: str) -> CommitRecord | None:
        try:
            with open(self.layout.commit_marker(uid, kind), "rb") as fh:
                obj = json.loads(fh.read())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (ValueError, UnicodeDecodeError):
            raise self._damaged(uid, f"{COMMIT} is not JSON (truncated or garbage)") from None
        try:
            return CommitRecord.from_json(obj)
        except RecordError as exc:
            raise self._damaged(uid, f"{COMMIT} is damaged ({exc})") from None

    def _check_binding(self, uid: str, kind: str, record: CommitRecord) -> None:
        """A commit marker is used only beside the unit it was written for: its unit id, and the sha256 of the
        ``unit.json`` it was written with (a 0.1 marker names neither: its digest is recomputed, once per process)."""
        if record.unit is None:
            self._check_legacy_binding(uid, kind, record)
            return
        if record.unit != uid:
            raise self._damaged(uid, f"{COMMIT} belongs to unit {record.unit} (the units' files were moved or swapped)")
        try:
            found = sha256_file(self.layout.unit_record(uid, kind))
        except FileNotFoundError:
            raise self._damaged(uid, f"{UNIT_RECORD} is missing") from None
        if found != record.unit_record:
            raise self._damaged(
                uid, f"{UNIT_RECORD} is not the one {COMMIT} was written with (edited, or the units' files swapped)"
            )

    def _check_legacy_binding(self, uid: str, kind: str, record: CommitRecord) -> None:
        from .verification import unit_digest

        key = (str(self.layout.root), uid, kind, record.digest)
        if key in BOUND_LEGACY or key in self._binding:
            return
        self._binding.add(key)  # unit_digest reads the unit's segments, which read this marker again
        try:
            if unit_digest(self, uid, kind) != record.digest:
                raise self._damaged(
                    uid, f"{COMMIT} does not match this unit's files (moved, swapped or changed since the commit)"
                )
        finally:
            self._binding.discard(key)
        BOUND_LEGACY.add(key)

    def is_committed(self, uid: str, kind: str) -> bool:
        """True when the unit's commit marker exists and is intact (a damaged one is no commit)."""
        try:
            return self.commit(uid, kind) is not None
        except DamagedError:
            return False

    def is_damaged(self, uid: str, kind: str) -> bool:
        try:
            self.commit(uid, kind)
        except DamagedError:
            return True
        return False

    def checked_file(self, uid: str, kind: str, rel: str, digest: bool = True) -> Path:
        """The path of a committed file after checking its recorded size (and sha256 when ``digest``)."""
        record = self.commit(uid, kind)
        if record is None:
            raise StoreError(f"unit {uid} is not committed; its {rel} cannot be read")
        info = record.files.get(rel)
        path = self.layout.unit_dir(uid, kind) / rel
        if info is None:
            raise StoreError(f"unit {uid} committed no {rel}")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise self._damaged(uid, f"{rel} is missing") from None
        if size != info.bytes:
            raise self._damaged(uid, f"{rel} has {size} bytes, its commit marker recorded {info.bytes}")
        if digest and not digest_matches(path, info.sha256):
            raise self._damaged(uid, f"{rel} differs from the sha256 its commit marker recorded")
        return path

    def result(self, uid: str, kind: str) -> dict | None:
        """The unit's result if it is committed (its size and sha256 checked against the marker), else None."""
        if self.commit(uid, kind) is None:
            return None
        path = self.checked_file(uid, kind, RESULT)
        try:
            return read_json(path)
        except (ValueError, UnicodeDecodeError):
            raise self._damaged(uid, f"{RESULT} is not JSON") from None

    def tensors(self, uid: str, kind: str, output: str = "final", verify: bool = True) -> dict:
        """A committed named tensor set, its sha256 checked (what feeds a later unit is never taken on trust)."""
        from safetensors.torch import load_file

        return load_file(str(self.checked_file(uid, kind, output_file(output), digest=verify)))

    # ------------------------------------------------------------------ segments
    def segments(self, uid: str, kind: str) -> list[SegmentMarker]:
        """Markers of the committed segments, in order (an unreadable marker is no segment)."""
        d = self.layout.segments(uid, kind)
        commit = self.commit(uid, kind)
        recorded = commit.segments if commit else None  # a committed unit's markers are checked against it
        if not d.is_dir():
            if recorded:
                raise self._damaged(uid, f"segments/ is missing ({len(recorded)} markers recorded at commit)")
            return []
        paths = [p for p in sorted(d.glob("*.json")) if not p.name.startswith(TEMP_PREFIX)]
        if recorded is not None and sorted(p.name for p in paths) != sorted(recorded):
            raise self._damaged(uid, f"segments/ holds {len(paths)} markers, {len(recorded)} were committed")
        out = []
        for p in paths:
            if recorded is not None and sha256_file(p) != recorded[p.name]:
                raise self._damaged(uid, f"segments/{p.name} differs from the sha256 its commit marker recorded")
            try:
                marker = SegmentMarker.from_json(read_json(p))
            except (OSError, ValueError, UnicodeDecodeError, RecordError):
                # markers are written atomically: an unreadable one was damaged after the fact, never half-written
                raise self._damaged(uid, f"segments/{p.name} is not a segment marker (damaged)") from None
            if marker.unit is not None and marker.unit != uid:
                raise self._damaged(uid, f"segments/{p.name} belongs to unit {marker.unit} (moved or swapped)")
            out.append(marker)
        return out

    def segment_path(self, uid: str, kind: str, marker: SegmentMarker, rel: str, digest: bool = True) -> Path:
        """A committed segment file, its size (and sha256 when ``digest``) checked against its marker."""
        path = self.layout.unit_dir(uid, kind) / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise self._damaged(uid, f"{rel} is missing (named by segment {marker.name})") from None
        recorded = marker.bytes.get(rel)
        if recorded is not None and size != recorded:
            raise self._damaged(uid, f"{rel} has {size} bytes, its segment marker recorded {recorded}")
        if digest and not digest_matches(path, marker.files[rel]):
            raise self._damaged(uid, f"{rel} differs from the sha256 its segment marker recorded")
        return path

    def rows(
        self, uid: str, kind: str, table: str, columns: list[str] | None = None, verify: bool = True
    ) -> pa.Table | None:
        """The committed rows of one table of a unit (concatenated over committed segments), or None.

        Each file's size is checked against its marker, and its sha256 when ``verify`` (the default: rows feed
        reports and later units)."""
        parts = []
        for marker in self.segments(uid, kind):
            rel = segment_file(table, marker.name)
            if rel not in marker.files:
                continue
            path = self.segment_path(uid, kind, marker, rel, verify)
            try:
                parts.append(pq.read_table(path, columns=columns))
            except (pa.ArrowException, OSError) as exc:
                raise self._damaged(uid, f"{rel} is unreadable Parquet ({exc})") from None
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="default")

    def points(self, uid: str, kind: str, verify: bool = True) -> Iterator[tuple[int, dict]]:
        """(segment index, tensors) of every committed points file of a unit."""
        from safetensors.torch import load_file

        for marker in self.segments(uid, kind):
            rel = points_file(marker.name)
            if rel in marker.files:
                yield marker.index, load_file(str(self.segment_path(uid, kind, marker, rel, verify)))

    def point(self, uid: str, kind: str, step: int) -> dict:
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
