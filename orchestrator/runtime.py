"""The worker runtime: executes units on a node against the store. The same code runs on a laptop, in a Slurm job
and in a Ray task: ``python -m lowloss.orchestrator.runtime STORE UNIT [UNIT...]`` (several units run in sequence).

A unit's success is its commit marker, never this process's exit code. Each attempt gets a record and a log under the
unit's ``attempts/``; a traceback goes into the record. On SIGTERM/SIGUSR2 (preemption, time limit) the unit writes its
resume checkpoint at the next segment boundary and the attempt ends as ``preempted``.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from lowloss import jobs

from .atomic import StoreFullError, atomic_write_json, read_json
from .store import Store, UnitRecord, UnitWriter

PROGRESS_INTERVAL_S = 1.0
RESERVE_BYTES = 256 * 1024


class Preempted(Exception):
    """The unit was asked to stop (signal) and wrote its resume checkpoint."""


class _Signals:
    received: int | None = None

    @classmethod
    def install(cls) -> None:
        def handler(signum, frame):
            cls.received = signum
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            signal.signal(sig, handler)


class StoreContext:
    """The ``UnitContext`` protocol of ``jobs/`` implemented over the store."""

    def __init__(self, store: Store, record: UnitRecord, attempt: int, run_config: dict, device):
        self.store = store
        self.record = record
        self.writer = UnitWriter(store, record)
        self.unit_id = record.id
        self.params = record.params
        self.attempt = attempt
        self.device = device
        self.data_root = run_config.get("data_root")
        self.checkpoint_seconds = float(run_config.get("checkpoint_seconds", 60.0))
        self._last_checkpoint = time.monotonic()
        self._last_progress = 0.0
        self._segment_started = time.time()

    # inputs
    def input_params(self, role: str) -> dict:
        return self.store.unit(self.record.inputs[role]).params

    def input_result(self, role: str) -> dict:
        result = self.store.result(self.record.inputs[role])
        if result is None:
            raise RuntimeError(f"input {role} ({self.record.inputs[role]}) is not committed")
        return result

    def input_final_state(self, role: str) -> dict:
        return self.store.final_state(self.record.inputs[role])

    # progress of this unit
    def committed_segments(self) -> int:
        segments = self.store.segments(self.unit_id)
        indices = {m["index"] for m in segments}
        n = 0
        while n in indices:
            n += 1
        return n

    def rows(self, table: str):
        return self.store.rows(self.unit_id, table)

    def write_segment(self, index: int, tables: dict, points: dict | None = None) -> None:
        now = time.time()
        self.writer.write_segment(index, tables, points, {"started": self._segment_started, "finished": now,
                                                          "attempt": self.attempt})
        self._segment_started = now

    def checkpoint_due(self) -> bool:
        return _Signals.received is not None or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        self.writer.write_checkpoint(segment_index, tensors, meta)
        self._last_checkpoint = time.monotonic()
        if _Signals.received is not None:
            raise Preempted(f"signal {_Signals.received}: checkpoint written after segment {segment_index}")

    def read_checkpoint(self):
        return self.writer.read_checkpoint()

    def progress(self, done: int, total: int, **info) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S and done < total:
            return
        self._last_progress = now
        try:
            atomic_write_json(self.writer.dir / "progress.json", {"done": done, "total": total, "time": time.time(), **info})
        except StoreFullError:
            pass
        _say(f"{done}/{total} " + " ".join(f"{k}={_fmt(v)}" for k, v in info.items()))

    def log(self, message: str) -> None:
        _say(message)

    def commit(self, result: dict, final: dict | None = None) -> None:
        digest = self.writer.commit(result, final, {"attempt": self.attempt})
        self.log(f"committed, digest {digest[:16]}")


def _say(message: str) -> None:
    """A timestamped log line; a full disk must not turn logging into the unit's failure."""
    try:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
    except OSError:
        pass


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _device(name: str):
    import torch

    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def run_unit(store: Store, uid: str, executor: str = "local", job_id: str | None = None) -> str:
    """Run one unit to its commit marker (or record why not). Returns the attempt's final state."""
    record = store.unit(uid)
    unit_dir = store.unit_dir(uid, record.kind)
    if (unit_dir / "COMMIT.json").exists():
        return "done"
    lock_fd = os.open(unit_dir / "unit.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        print(f"unit {uid} is being run by another process; leaving it", file=sys.stderr)
        return "busy"
    try:
        if (unit_dir / "COMMIT.json").exists():
            return "done"
        attempt = len(store.attempts(uid)) + 1
        rec_path = unit_dir / "attempts" / f"{attempt:03d}.json"
        log_path = unit_dir / "attempts" / f"{attempt:03d}.log"
        info = {"attempt": attempt, "state": "running", "host": socket.gethostname(), "pid": os.getpid(),
                "executor": executor, "job_id": job_id, "started": time.time(), "log": str(log_path)}
        atomic_write_json(rec_path, info)
        # Space held back so that the attempt's final record can be written even when the disk fills up mid-run.
        reserve = unit_dir / "attempts" / f"{attempt:03d}.reserve"
        with open(reserve, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
        state, error = _run_logged(store, record, attempt, log_path, reserve)
        reserve.unlink(missing_ok=True)
        info.update(state=state, finished=time.time(), error=error)
        atomic_write_json(rec_path, info)
        return state
    finally:
        os.close(lock_fd)


def _run_logged(store: Store, record: UnitRecord, attempt: int, log_path: Path, reserve: Path) -> tuple[str, str | None]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1) as log:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            run_config = _run_config(store)
            kind = jobs.get_kind(record.kind)
            threads = int(os.environ.get("LOWLOSS_THREADS", kind.resources.cpus))
            device = None
            if kind.needs_torch:
                import torch

                torch.set_num_threads(threads)
                device = _device(run_config.get("device", "auto"))
            print(f"[{time.strftime('%H:%M:%S')}] unit {record.id} kind={record.kind} attempt={attempt} "
                  f"host={socket.gethostname()} device={device} threads={threads}", flush=True)
            ctx = StoreContext(store, record, attempt, run_config, device)
            kind.run(ctx)
            return "done", None
        except Preempted as exc:
            print(f"preempted: {exc}", flush=True)
            return "preempted", str(exc)
        except StoreFullError as exc:
            reserve.unlink(missing_ok=True)
            msg = (f"{exc.strerror}; every committed segment is intact — free space or raise the quota, then "
                   f"`lowloss resume {store.root}`")
            try:
                print(msg, flush=True)
            except OSError:
                pass
            return "failed", msg
        except BaseException:
            tb = traceback.format_exc()
            print(tb, flush=True)
            return "failed", tb
        finally:
            try:
                sys.stdout.flush(), sys.stderr.flush()
            except OSError:
                pass
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _run_config(store: Store) -> dict:
    try:
        return read_json(store.root / "run.json")
    except FileNotFoundError:
        return {}


def run_units(store_root: str | Path, uids: list[str], executor: str, job_id: str | None) -> list[str]:
    """Run units in sequence (a packed job); stops early when a stop signal arrived. Returns their states."""
    _Signals.install()
    store = Store(store_root)
    states = []
    for uid in uids:
        if _Signals.received is not None:
            break
        states.append(run_unit(store, uid, executor, job_id))
    return states


def stop_signal() -> int | None:
    """The stop signal this process received (SIGTERM: cancel/requeue by the scheduler; SIGUSR2: time limit)."""
    return _Signals.received


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m lowloss.orchestrator.runtime STORE UNIT [UNIT...]", file=sys.stderr)
        return 2
    states = run_units(argv[0], argv[1:], os.environ.get("LOWLOSS_EXECUTOR", "local"), os.environ.get("LOWLOSS_JOB_ID"))
    print(json.dumps({"states": states}))
    return 0 if all(s == "done" for s in states) and len(states) == len(argv) - 1 else 1


if __name__ == "__main__":
    sys.exit(main())
