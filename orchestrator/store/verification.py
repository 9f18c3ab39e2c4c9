"""Integrity: a unit's digest over its deterministic content, the check of every one of its files against the size
and sha256 its markers recorded, and of every committed unit's inputs being committed still (what ``lowloss verify``
prints and ``--repair`` acts on)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from .atomic import TEMP_PREFIX, canonical_json, read_json, sha256_file
from .errors import DamagedError
from .layout import COMMIT, FINAL, RESULT, UNIT_RECORD, split_ref
from .reading import CommittedReader
from .records import CommitRecord, SegmentMarker


def unit_digest(reader: CommittedReader, uid: str, kind: str) -> str:
    """Digest over a unit's deterministic content: unit.json, segment data files, tensor sets, result (not times)."""
    d = reader.layout.unit_dir(uid, kind)
    h = hashlib.sha256()
    try:
        h.update(canonical_json(read_json(d / UNIT_RECORD)).encode())
    except (ValueError, UnicodeDecodeError):
        raise DamagedError(reader.layout.root, uid, f"{UNIT_RECORD} is unreadable") from None
    for marker in reader.segments(uid, kind):
        for rel in sorted(marker.files):
            if not (d / rel).is_file():
                raise DamagedError(reader.layout.root, uid, f"{rel} is missing (named by segment {marker.name})")
            h.update(f"{rel}:{sha256_file(d / rel)}\n".encode())
    for name in (FINAL, RESULT):
        if (d / name).exists():
            h.update(f"{name}:{sha256_file(d / name)}\n".encode())
    outputs = d / "outputs"
    if outputs.is_dir():
        for p in sorted(outputs.glob("*.safetensors")):
            h.update(f"outputs/{p.name}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


@dataclass
class Verification:
    """One unit's check: its digest when it is committed and intact, the damage found, and uncommitted leftovers
    (notes) that readers ignore."""

    digest: str | None = None
    damage: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify_unit(reader: CommittedReader, uid: str, kind: str) -> Verification:
    """Every file of one unit against its markers; the unit record against the unit's id."""
    d = reader.layout.unit_dir(uid, kind)
    found = Verification()
    if d.is_symlink():
        found.damage.append(
            f"the unit's directory is a symbolic link (to {os.readlink(d)}); run and resume refuse it — move the "
            "directory back into the store in its place"
        )
    try:
        reader.unit(uid, kind)
    except DamagedError as exc:
        found.damage.append(exc.problem)
    markers = _segment_markers(reader, uid, kind, found)
    referenced = _check_segments(d, markers, found)
    try:
        commit = reader.commit(uid, kind)
    except DamagedError as exc:
        commit = None
        found.damage.append(exc.problem)
    _note_leftovers(d, referenced, found)
    if commit is not None:
        _check_commit(reader, uid, kind, commit, found)
    if found.damage:
        found.digest = None
        found.damage = list(dict.fromkeys(found.damage))  # one problem found by two checks is named once
    return found


def _segment_markers(reader: CommittedReader, uid: str, kind: str, found: Verification) -> list[SegmentMarker]:
    try:
        return reader.segments(uid, kind)
    except DamagedError as exc:
        found.damage.append(exc.problem)
    markers = []  # the markers that can still be read, to check their files too
    for p in sorted(reader.layout.segments(uid, kind).glob("*.json")):
        try:
            markers.append(SegmentMarker.from_json(read_json(p)))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    return markers


def _check_segments(d: Path, markers: list[SegmentMarker], found: Verification) -> set[str]:
    referenced: set[str] = set()
    for marker in markers:
        for rel, sha in marker.files.items():
            referenced.add(rel)
            path = d / rel
            if not path.exists():
                found.damage.append(f"{rel}: named by segment {marker.name} but missing")
            elif sha256_file(path) != sha:
                found.damage.append(f"{rel}: content differs from its segment marker (corrupt or truncated)")
    return referenced


def _note_leftovers(d: Path, referenced: set[str], found: Verification) -> None:
    for path in sorted(d.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(d).as_posix()
        if path.name.startswith(TEMP_PREFIX):
            found.notes.append(f"{rel}: temporary file of an interrupted write (ignored by readers)")
        elif rel.endswith(".reserve"):
            found.notes.append(f"{rel}: space reserve of an attempt that ended without removing it (ignored)")
        elif (rel.endswith(".parquet") or rel.startswith("points/")) and rel not in referenced:
            try:
                if rel.endswith(".parquet"):
                    pq.read_metadata(path)
                found.notes.append(f"{rel}: segment without its marker (uncommitted; ignored by readers)")
            except Exception:
                found.notes.append(f"{rel}: truncated or unreadable Parquet without a marker (ignored by readers)")


def _check_commit(reader: CommittedReader, uid: str, kind: str, commit: CommitRecord, found: Verification) -> None:
    d = reader.layout.unit_dir(uid, kind)
    for rel, info in commit.files.items():
        path = d / rel
        if not path.exists():
            found.damage.append(f"{rel}: named by {COMMIT} but missing")
        elif path.stat().st_size != info.bytes or sha256_file(path) != info.sha256:
            found.damage.append(f"{rel}: content differs from what {COMMIT} recorded (corrupt or truncated)")
    try:
        digest = unit_digest(reader, uid, kind)
    except DamagedError:
        return
    if digest != commit.digest:
        found.damage.append(f"{COMMIT}: recorded digest {commit.digest[:12]} ≠ recomputed {digest[:12]}")
    found.digest = digest


@dataclass(frozen=True)
class LostInput:
    """A committed unit one of whose inputs is no longer committed: it stands on work that runs again
    (``--repair`` runs the input and moves aside what stands on it)."""

    uid: str
    kind: str
    role: str  # the input's role in the unit's record
    ref: str  # the input reference (``<id>`` or ``<id>:<output>``)
    why: str  # what is gone: the input's commit marker, or its whole directory


@dataclass
class StoreVerification:
    """Every unit directory's check, the committed units whose inputs are no longer committed, and the pickles found
    where lowloss writes none."""

    units: list[tuple[str, str, Verification]]  # (unit id, kind, its check)
    stray_pickles: list[Path]
    lost_inputs: list[LostInput] = field(default_factory=list)

    @property
    def corrupt(self) -> int:
        return sum(len(v.damage) for _, _, v in self.units)

    @property
    def committed(self) -> int:
        return sum(1 for _, _, v in self.units if v.digest)


def verify_store(reader: CommittedReader) -> StoreVerification:
    """Check every unit on disk (``lowloss verify``), the inputs of the committed ones, and look for stray pickles."""
    units = [(uid, kind, verify_unit(reader, uid, kind)) for uid, kind in reader.layout.unit_dirs()]
    return StoreVerification(units, stray_pickles(reader.layout.root), lost_inputs(reader, units))


def lost_inputs(reader: CommittedReader, units: list[tuple[str, str, Verification]]) -> list[LostInput]:
    """The inputs of intact committed units that are no longer committed or no longer intact: their commit marker is
    gone, their whole unit directory, or they are damaged (``--repair`` moves aside what stands on them)."""
    kinds = {uid: kind for uid, kind, _ in units}
    damaged = {uid for uid, _, found in units if found.damage}
    lost = []
    for uid, kind, found in units:
        if found.digest is None:
            continue
        for role, ref in reader.unit(uid, kind).inputs.items():
            input_id = split_ref(ref)[0]
            input_kind = kinds.get(input_id)
            if input_kind is None:
                lost.append(LostInput(uid, kind, role, ref, "its unit directory is gone"))
            elif not reader.layout.commit_marker(input_id, input_kind).exists():
                lost.append(LostInput(uid, kind, role, ref, f"its {COMMIT} is gone"))
            elif input_id in damaged:
                lost.append(LostInput(uid, kind, role, ref, "it is damaged: see its CORRUPT lines"))
    return lost


def stray_pickles(root: Path) -> list[Path]:
    """Pickle files outside ``slurm/``: submitit's ``slurm/<job>/*_submitted.pkl`` (written by the coordinator, read
    only by submitit inside the job) and ``*_result.pkl`` (written by the job) are the only pickles a store holds, and
    nothing of lowloss opens any pickle there."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix in (".pkl", ".pickle") and path.parts[len(root.parts)] != "slurm" and not path.is_symlink():
            out.append(path)
    return out
