"""Where everything lives in a study store: every path under a store directory is named here and nowhere else.

Format 2; hive-style names so DuckDB/Polars/pyarrow can query a store read-only::

    STORE/
      study.json                      identity: study name, store format
      spec.toml                       the spec of the latest run (``lowloss resume`` reads it)
      run.json                        run settings of the latest run (data root, device, checkpoint cadence, executor)
      plan.json                       stage → units (id, kind, label) of the latest plan, and whether a stage is open
      coordinator.lock / .json        held (flock) by the one coordinator driving the store, with its token
      coordinator.lease               the coordinator's lease, under ``lock = "lease"`` (``locks.py``)
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
                                      size and sha256 of result.json, every tensor set and every segment marker
        progress.json                 the running attempt's last progress (for the live view)
        attempts/<n>.json, <n>.log    one record and log per attempt (host, pid, job id, state, traceback)
        attempts/retries.json         failures before this point are forgiven (``--retry-failed``)
        unit.lock                     held (flock) by the one process running the unit
        unit.lease                    its lease, renewed by that process, under ``lock = "lease"``

A unit's directory is found from its id *and* its kind: whoever holds a unit id holds its kind too (the plan lists
both; executors and the runtime pass both along), so nothing searches the kind folders for an id.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .atomic import canonical_json

FORMAT = 2
ID_LENGTH = 20
SEGMENT_DIGITS = 6
COMMIT = "COMMIT.json"
FINAL = "final.safetensors"
RESULT = "result.json"
UNIT_RECORD = "unit.json"
UNIT_PREFIX = re.compile(r"[0-9a-f]{1,64}")


def unit_id(kind: str, version: int, params: dict, inputs: dict) -> str:
    """A unit's id: the content hash of (kind, kind version, canonical params, input references)."""
    payload = canonical_json({"kind": kind, "version": version, "params": params, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:ID_LENGTH]


def split_ref(ref: str) -> tuple[str, str]:
    """(unit id, output) of an input reference; a plain id names the unit's ``final`` output."""
    uid, sep, output = ref.partition(":")
    return uid, (output if sep else "final")


def segment_name(index: int) -> str:
    return f"{index:0{SEGMENT_DIGITS}d}"


def output_file(output: str) -> str:
    """The file (relative to the unit directory) holding a named tensor set."""
    return FINAL if output == "final" else f"outputs/{output}.safetensors"


def segment_file(table: str, name: str) -> str:
    """The file (relative to the unit directory) of one table's rows in one segment."""
    return f"{table}/{name}.parquet"


def points_file(name: str) -> str:
    """The file (relative to the unit directory) of one segment's points."""
    return f"points/{name}.safetensors"


class StoreLayout:
    """The paths of one store."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # store-level files
    @property
    def study_file(self) -> Path:
        return self.root / "study.json"

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.toml"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    @property
    def plan_file(self) -> Path:
        return self.root / "plan.json"

    @property
    def coordinator_lock(self) -> Path:
        return self.root / "coordinator.lock"

    @property
    def coordinator_lease(self) -> Path:
        return self.root / "coordinator.lease"

    @property
    def coordinator_record(self) -> Path:
        return self.root / "coordinator.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def launcher_log(self) -> Path:
        return self.logs / "launcher.log"

    @property
    def coordinator_log(self) -> Path:
        return self.logs / "coordinator.log"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def job_record(self, name: str) -> Path:
        return self.jobs / f"{name}.json"

    @property
    def scheduler_folder(self) -> Path:
        """submitit's folder (job scripts, job logs and its pickles)."""
        return self.root / "slurm"

    @property
    def damaged(self) -> Path:
        return self.root / "damaged"

    @property
    def units(self) -> Path:
        return self.root / "units"

    def store_entries(self) -> tuple[str, ...]:
        """The names lowloss writes at the store's top level."""
        return tuple(
            p.name
            for p in (
                self.study_file,
                self.spec_file,
                self.run_file,
                self.plan_file,
                self.coordinator_lock,
                self.coordinator_lease,
                self.coordinator_record,
                self.logs,
                self.jobs,
                self.scheduler_folder,
                self.damaged,
                self.units,
            )
        )

    # one unit
    def unit_dir(self, uid: str, kind: str) -> Path:
        return self.units / f"kind={kind}" / f"unit={uid}"

    def unit_record(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / UNIT_RECORD

    def commit_marker(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / COMMIT

    def segments(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "segments"

    def segment_marker(self, uid: str, kind: str, index: int) -> Path:
        return self.segments(uid, kind) / f"{segment_name(index)}.json"

    def checkpoint(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "checkpoint"

    def progress(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "progress.json"

    def attempts(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "attempts"

    def attempt_files(self, uid: str, kind: str, attempt: int) -> tuple[Path, Path, Path]:
        """(record, log, space reserve) of one attempt."""
        d = self.attempts(uid, kind)
        return d / f"{attempt:03d}.json", d / f"{attempt:03d}.log", d / f"{attempt:03d}.reserve"

    def retries(self, uid: str, kind: str) -> Path:
        return self.attempts(uid, kind) / "retries.json"

    def unit_lock(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "unit.lock"

    def unit_lease(self, uid: str, kind: str) -> Path:
        return self.unit_dir(uid, kind) / "unit.lease"

    def unit_dirs(self) -> list[tuple[str, str]]:
        """(unit id, kind) of every unit directory that has a unit.json, by id (a listing of what is on disk: the
        integrity check and a user's id prefix read it; everything else knows its units' kinds)."""
        out = []
        for p in self.units.glob("kind=*/unit=*"):
            if (p / UNIT_RECORD).exists():
                out.append((p.name[len("unit=") :], p.parent.name[len("kind=") :]))
        return sorted(out)
