"""A unit's logs wherever it ran (``lowloss logs``): each attempt's own log and, for a Slurm job, the job's output —
only ever files inside the store (a record naming a path outside it, or a link out of it, is refused; the store's own
``attempts/<n>.log`` is read instead when it is there)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import AttemptRecord, Store


@dataclass
class AttemptLog:
    record: AttemptRecord
    path: Path | None  # the log to print (None: refused, nothing inside the store to print instead)
    substituted: Path | None = None  # the store's own log, printed instead of the one the record names
    job_output: Path | None = None  # a Slurm job's output file


def inside_store(store: Store, path: str | Path | None) -> Path | None:
    """``path`` with every link resolved, when it lies inside the store (a record may name a log, never /etc/shadow)."""
    if not path:
        return None
    root = store.root.resolve()
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        return None
    return resolved


def attempt_logs(store: Store, uid: str, kind: str, every: bool = False) -> list[AttemptLog]:
    """The logs of a unit's latest attempt (``every``: of every attempt)."""
    from ..executors.slurm import job_output

    attempts = store.attempts.records(uid, kind)
    out = []
    for record in attempts if every else attempts[-1:]:
        log = AttemptLog(record, inside_store(store, record.log))
        if log.path is None:  # a moved or copied store, or a forged record: only the store's own log is read
            own = store.attempts.files(uid, kind, record.attempt)[1]
            log.path = inside_store(store, own) if own.exists() else None
            log.substituted = log.path
        if record.executor == "slurm" and record.job_id:
            log.job_output = inside_store(store, job_output(store.root, record.job_id))
        out.append(log)
    return out
