"""The worker runtime: executes units on a node against the store. The same code runs on a laptop, in a Slurm job
and in a Ray task: ``python -m lowloss.orchestrator.runtime STORE UNIT [UNIT...]`` (several units run in sequence).

A unit's success is its commit marker, never this process's exit code. Each attempt gets a record and a log under the
unit's ``attempts/``; a traceback goes into the record. On SIGTERM/SIGUSR2 (preemption, time limit) the unit writes its
resume checkpoint at the next segment boundary and the attempt ends as ``preempted``; a unit kind without checkpoints
stops once its next segment is committed (``StoreContext.write_segment`` raises ``Preempted``), so no kind runs on
after a stop request.

A process may run many units one after the other (a packed Slurm task, a warm local worker, a Ray worker): before each
unit ``fresh_process_state`` puts back what a fresh process would give it (torch's default RNG states, its numerics
flags, Python's and numpy's RNGs, the environment, the working directory), so a unit writes the same bytes whatever ran
before it in the process. Compute threads are the unit kind's (``Resources.cpus``: 1 for every built-in kind), never
the allocation's: the allocation (``LOWLOSS_CPUS``) only sizes work whose result does not depend on it (image decoding).
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from ... import jobs
from ..store.atomic import FULL_ERRNOS, StoreFullError, open_nofollow
from ..store.store import Store, UnitRecord, UnitWriter, split_ref

PROGRESS_INTERVAL_S = 1.0
RESERVE_BYTES = 256 * 1024


class Preempted(Exception):
    """The unit was asked to stop (signal) and stopped at a segment boundary: after its resume checkpoint, or after a
    committed segment that a resume continues after."""


class _Signals:
    received: int | None = None
    attempt: tuple[Store, str, dict] | None = None  # the attempt running now: its record says "preempted" at once

    @classmethod
    def install(cls, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR2)) -> dict:
        """Stop signals ask the running unit to checkpoint; returns the handlers they replaced (``restore``)."""

        def handler(signum, frame):
            cls.received = signum
            if cls.attempt is not None:  # if the scheduler kills us before the checkpoint, the record already says so
                store, kind, info = cls.attempt
                try:
                    store.write_attempt(
                        info["id"],
                        kind,
                        {
                            **{k: v for k, v in info.items() if k != "id"},
                            "state": "preempted",
                            "finished": time.time(),
                            "error": f"signal {signum} received; checkpointing",
                        },
                    )
                except OSError:
                    pass

        return {sig: signal.signal(sig, handler) for sig in signals}

    @classmethod
    def restore(cls, previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ProcessState:
    """What a fresh Python process gives a unit, put back before each unit of a process that runs many.

    Made once, before the first unit: the environment and working directory. Torch's state is put back to torch's
    own start-up values, not to a snapshot, so it is right even when the first unit imported torch: the numerics flags
    get their defaults (default dtype, grad mode, deterministic algorithms, TF32, cuDNN benchmark, matmul precision,
    anomaly detection). The global RNGs (torch's CPU and CUDA generators, Python's ``random``, numpy's) are seeded
    from the OS, as torch seeds its default generator at a fresh start: no unit may depend on them unseeded (every
    kind seeds what it draws from its params), and a warm process gives such a bug no more reproducibility than a
    fresh one would."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        torch = sys.modules.get("torch")
        self.threads = torch.get_num_threads() if torch is not None else None  # a kind without torch finds these

    def restore(self) -> None:
        import random

        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            _fresh_torch(torch)
            if self.threads is not None and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)


def _fresh_torch(torch) -> None:
    torch.seed()  # every device's default generator, from OS entropy: what a fresh process starts with
    if torch.get_default_dtype() != torch.float32:
        torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    if torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled():
        torch.use_deterministic_algorithms(False)
    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)
    if torch.get_float32_matmul_precision() != "highest":
        torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False


def release_unit_memory() -> None:
    """After a unit: drop what it left behind (cycles, CUDA's cached blocks); the dataset cache stays. What survives
    the collection (modules a unit imported, cached datasets) is frozen, so later collections do not scan it again."""
    gc.collect()
    gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class StoreContext:
    """The ``UnitContext`` protocol of ``jobs/`` implemented over the store."""

    def __init__(self, store: Store, record: UnitRecord, attempt: int, run_config: dict, device):
        self.store = store
        self.record = record
        self.writer = UnitWriter(store, record)
        self.unit_id = record.id
        self.attempt = attempt
        self.device = device
        self.data_root = run_config.get("data_root")
        self.cpus = allocated_cpus()  # for work whose bytes do not depend on it (image decoding)
        self.checkpoint_seconds = float(run_config.get("checkpoint_seconds", 60.0))
        self._last_checkpoint = time.monotonic()
        self._last_progress = 0.0
        self._segment_started = time.time()
        self._inputs: dict[str, UnitRecord] = {}
        self.notes: list[str] = []  # go into the attempt record

    # inputs
    def _input(self, role: str) -> tuple[UnitRecord, str]:
        if role not in self.record.inputs:
            raise KeyError(f"unit {self.unit_id} has no input {role!r} (its inputs: {', '.join(self.record.inputs)})")
        uid, output = split_ref(self.record.inputs[role])
        if uid not in self._inputs:
            self._inputs[uid] = self.store.unit(uid)
        return self._inputs[uid], output

    def input_params(self, role: str):
        rec, _ = self._input(role)
        return jobs.get_kind(rec.kind).Params.model_validate(rec.params)

    def input_result(self, role: str) -> dict:
        rec, _ = self._input(role)
        result = self.store.result(rec.id, rec.kind)
        if result is None:
            raise RuntimeError(f"input {role} ({rec.id}) is not committed")
        return result

    def input_tensors(self, role: str, output: str | None = None) -> dict:
        rec, named = self._input(role)
        output = output or named
        if output.startswith("point:"):
            return self.store.point(rec.id, int(output.split(":", 1)[1]), rec.kind)
        return self.store.tensors(rec.id, output, rec.kind)

    def input_final_state(self, role: str) -> dict:
        _, named = self._input(role)
        return self.input_tensors(role, named if named.startswith("point:") else "final")

    def input_points(self, role: str):
        from ...jobs.base import split_point_key

        rec, _ = self._input(role)
        for _, tensors in self.store.points(rec.id, rec.kind):
            by_step: dict[int, dict] = {}
            for key, value in tensors.items():
                name, step = split_point_key(key)
                by_step.setdefault(step if step is not None else -1, {})[name] = value
            yield from sorted(by_step.items())

    def input_rows(self, role: str, table: str):
        rec, _ = self._input(role)
        return self.store.rows(rec.id, table, kind=rec.kind)

    # progress of this unit
    def committed_segments(self) -> int:
        indices = {m["index"] for m in self.store.segments(self.unit_id, self.record.kind)}
        n = 0
        while n in indices:
            n += 1
        return n

    def rows(self, table: str):
        return self.store.rows(self.unit_id, table, kind=self.record.kind)

    def write_segment(self, index: int, tables: dict, points: dict | None = None, stop: bool = True) -> None:
        now = time.time()
        self.writer.write_segment(
            index, tables, points, {"started": self._segment_started, "finished": now, "attempt": self.attempt}
        )
        self._segment_started = now
        if stop and _Signals.received is not None:  # the segment is committed: a resume continues after it
            raise Preempted(f"signal {_Signals.received}: stopped after segment {index}")

    def checkpoint_due(self) -> bool:
        return _Signals.received is not None or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None:
        self.writer.write_checkpoint(segment_index, tensors, meta)
        self._last_checkpoint = time.monotonic()
        if _Signals.received is not None:
            raise Preempted(f"signal {_Signals.received}: checkpoint written after segment {segment_index}")

    def read_checkpoint(self):
        found = self.writer.read_checkpoint()
        if self.writer.discarded_checkpoint:
            note = f"resume checkpoint discarded: {self.writer.discarded_checkpoint}; the unit started over"
            self.notes.append(note)
            self.log(note + " (deterministically: it writes the same bytes)")
        return found

    def progress(self, done: int, total: int, **info) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S and done < total:
            return
        self._last_progress = now
        try:
            self.store.write_progress(
                self.unit_id, self.record.kind, {"done": done, "total": total, "time": time.time(), **info}
            )
        except StoreFullError:
            pass
        _say(f"{done}/{total} " + " ".join(f"{k}={_fmt(v)}" for k, v in info.items()))

    def log(self, message: str) -> None:
        _say(message)

    def commit(self, result: dict, final: dict | None = None, outputs: dict[str, dict] | None = None) -> None:
        sets = dict(outputs or {})
        if final is not None:
            sets["final"] = final
        digest = self.writer.commit(result, sets, {"attempt": self.attempt})
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
    problem = cuda_problem()
    if problem is not None:
        raise RuntimeError(f"device cuda: {problem}")
    return torch.device("cuda")


def cuda_problem() -> str | None:
    """Why ``cuda`` cannot be used in this process (None when a GPU is visible) — the test ``auto`` resolves by."""
    import torch

    if torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return f"torch sees no CUDA GPU on host {socket.gethostname()}{hidden}"


def run_unit(store: Store, uid: str, executor: str = "local", job_id: str | None = None) -> str:
    """Run one unit to its commit marker (or record why not). Returns the attempt's final state."""
    record = store.unit(uid)
    if store.is_committed(uid, record.kind):
        return "done"
    lock_fd = os.open(store.unit_lock_path(uid, record.kind), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        print(f"unit {uid} is being run by another process; leaving it", file=sys.stderr)
        return "busy"
    try:
        if store.is_committed(uid, record.kind):
            return "done"
        store.close_lost_attempts(uid, record.kind)  # we hold the lock: a "running" record is a dead process's
        attempts = store.attempts(uid, record.kind)
        attempt = (attempts[-1]["attempt"] if attempts else 0) + 1
        rec_path, log_path, reserve = store.attempt_paths(uid, record.kind, attempt)
        info = {
            "attempt": attempt,
            "state": "running",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "executor": executor,
            "job_id": job_id,
            "started": time.time(),
            "log": str(log_path),
        }
        try:
            store.write_attempt(uid, record.kind, info)
            # Space held back so that the attempt's final record can be written even when the disk fills up mid-run.
            with open_nofollow(store.unit_dir(uid, record.kind), reserve, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            if exc.errno not in FULL_ERRNOS and not isinstance(exc, StoreFullError):
                raise
            _record_nospace(store, record, info, rec_path)
            return "nospace"
        _Signals.attempt = (store, record.kind, {**info, "id": uid})
        cpu_start = time.process_time()
        used: dict[str, str] = {}
        try:
            state, error, notes = _run_logged(store, record, attempt, log_path, reserve, used)
        finally:
            _Signals.attempt = None
        reserve.unlink(missing_ok=True)
        # CPU seconds of this process while the unit ran (all its threads) and the device it used: the cost figures
        # of reports (e.g. the compare stage's table); never part of a unit's content or digest
        info.update(state=state, finished=time.time(), error=error, cpu_s=round(time.process_time() - cpu_start, 3))
        info.update(used)
        if notes:
            info["notes"] = notes
        try:
            store.write_attempt(uid, record.kind, info)
        except OSError:
            if state == "done":
                raise
            _record_nospace(store, record, info, rec_path)
            return "nospace"
        return state
    finally:
        os.close(lock_fd)


def _record_nospace(store: Store, record: UnitRecord, info: dict, rec_path: Path) -> None:
    """Best effort: say in the attempt record that the disk is full (that attempt burns no retry)."""
    info.update(
        state="nospace",
        finished=time.time(),
        log=None,
        error=f"no space left (disk full or quota exceeded) on the store's file system; every committed "
        f"segment is intact — free space or raise the quota, then `lowloss resume {store.root}`",
    )
    try:
        store.write_attempt(record.id, record.kind, info)
    except OSError:
        try:
            rec_path.unlink(missing_ok=True)  # better no record than one that says "running" forever
        except OSError:
            pass


def _run_logged(
    store: Store, record: UnitRecord, attempt: int, log_path: Path, reserve: Path, used: dict | None = None
) -> tuple[str, str | None, list[str]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open_nofollow(store.unit_dir(record.id, record.kind), log_path, "a", buffering=1) as log:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        ctx = None
        try:
            run_config = store.run_settings()
            kind = jobs.get_kind(record.kind)
            params = kind.Params.model_validate(record.params)
            threads = kind.resources(params).cpus  # the kind's, never the allocation's: results depend on it
            device = None
            if kind.needs_torch:
                import torch

                torch.set_num_threads(threads)
                device = _device(run_config.get("device", "auto"))
            if used is not None:
                used["device"] = str(device) if device is not None else "none"
            print(
                f"[{time.strftime('%H:%M:%S')}] unit {record.id} kind={record.kind} attempt={attempt} "
                f"host={socket.gethostname()} pid={os.getpid()} device={device} threads={threads} "
                f"cpus={allocated_cpus()}",
                flush=True,
            )
            ctx = StoreContext(store, record, attempt, run_config, device)
            kind.run(ctx, params)
            if not store.is_committed(record.id, record.kind):
                return "failed", f"unit kind {record.kind!r} returned without committing (a bug in the kind)", ctx.notes
            return "done", None, ctx.notes
        except Preempted as exc:
            print(f"preempted: {exc}", flush=True)
            return "preempted", str(exc), ctx.notes if ctx else []
        except OSError as exc:
            if not isinstance(exc, StoreFullError) and exc.errno not in FULL_ERRNOS:
                tb = traceback.format_exc()
                print(tb, flush=True)
                return "failed", tb, ctx.notes if ctx else []
            reserve.unlink(missing_ok=True)
            msg = (
                f"no space left (disk full or quota exceeded) on the store's file system; every committed "
                f"segment is intact — free space or raise the quota, then `lowloss resume {store.root}`"
            )
            try:
                print(msg, flush=True)
            except OSError:
                pass
            return "nospace", msg, ctx.notes if ctx else []
        except BaseException:
            tb = traceback.format_exc()
            print(tb, flush=True)
            if _Signals.received is not None:  # stopped by a signal on the way (e.g. a second SIGTERM)
                return (
                    "preempted",
                    f"signal {_Signals.received}: stopped before a checkpoint\n{tb}",
                    ctx.notes if ctx else [],
                )
            return "failed", tb, ctx.notes if ctx else []
        finally:
            try:
                sys.stdout.flush(), sys.stderr.flush()
            except OSError:
                pass
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def allocated_cpus() -> int:
    """CPUs the executor allocated to this process (``LOWLOSS_CPUS``; 1 when unset)."""
    try:
        return max(1, int(os.environ.get("LOWLOSS_CPUS", "1")))
    except ValueError:
        return 1


def run_units(
    store_root: str | Path,
    uids: list[str],
    executor: str,
    job_id: str | None,
    state: ProcessState | None = None,
    cpus: int | None = None,
) -> list[str]:
    """Run units in sequence (a packed job); stops early when a stop signal arrived. Returns their states.
    Every unit starts from a fresh process's global state (``state``: made now when not given); ``cpus`` is the
    allocation (``LOWLOSS_CPUS``)."""
    _Signals.install()
    store = Store(store_root)
    state = state or ProcessState()
    states = []
    for i, uid in enumerate(uids):
        if _Signals.received is not None:
            break
        if i:
            release_unit_memory()
        state.restore()
        if cpus is not None:
            os.environ["LOWLOSS_CPUS"] = str(cpus)
        states.append(run_unit(store, uid, executor, job_id))
    return states


_WARM: ProcessState | None = None


def run_units_warm(store_root: str | Path, uids: list[str], executor: str, job_id: str | None, cpus: int) -> list[str]:
    """``run_units`` inside a long-lived process that is not ours (a Ray worker): lowloss and torch are imported at
    the first call only; each call starts with no stop signal received and puts the process's own signal handlers back
    when it returns. SIGINT asks the unit to checkpoint too (Ray's ``cancel`` interrupts the task with it)."""
    global _WARM
    if _WARM is None:
        try:
            import torch  # noqa: F401  once per process
        except ImportError:
            pass
        _WARM = ProcessState()
        gc.freeze()  # what the imports made is never garbage: the collection after each unit skips it
    _Signals.received = None
    previous = _Signals.install((signal.SIGTERM, signal.SIGUSR2, signal.SIGINT))
    try:
        return run_units(store_root, uids, executor, job_id, state=_WARM, cpus=cpus)
    finally:
        _Signals.restore(previous)
        release_unit_memory()


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
