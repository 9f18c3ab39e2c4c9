"""Scheduler state from batched, time-limited queries: sacct when the site has accounting, squeue otherwise.

Never hangs: each query has a timeout; a failing query backs off (doubling up to a minute) instead of blocking the
coordinator, and a job that left the queue without a trace is reported as ended, never waited on forever.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
    "ENDED",
}
LOST = {"NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "TIMEOUT", "FAILED", "PREEMPTED"}


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # PENDING, RUNNING, REQUEUED, COMPLETED, CANCELLED, ... or ENDED (left squeue, no accounting)
    node: str = ""
    elapsed: str = ""
    exit_code: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


_RANGE = re.compile(r"^(\d+)_\[(.+)\]$")


def expand_job_ids(job_id: str) -> list[str]:
    """'12_[3-5,8%2]' → ['12_3', '12_4', '12_5', '12_8']; other ids unchanged."""
    m = _RANGE.match(job_id)
    if not m:
        return [job_id]
    base, spec = m.group(1), m.group(2).split("%")[0]
    out: list[str] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(f"{base}_{i}" for i in range(int(lo), int(hi) + 1))
        elif part:
            out.append(f"{base}_{part}")
    return out


def _base(job_id: str) -> str:
    return job_id.split("_")[0]


class SchedulerQuery:
    def __init__(self, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self.accounting: bool | None = None  # learned on first use
        self._backoff = 0.0
        self._next_try = 0.0
        self.last_error = ""

    def states(self, job_ids: list[str]) -> dict[str, JobState] | None:
        """States of the given (array task) job ids, or None when the scheduler could not be asked right now."""
        if not job_ids:
            return {}
        now = time.monotonic()
        if now < self._next_try:
            return None
        try:
            result = self._sacct(job_ids) if self.accounting is not False else None
            if result is None:
                result = self._squeue(job_ids)
            self._backoff = 0.0
            return result
        except (OSError, subprocess.SubprocessError) as exc:
            self.last_error = str(exc)
            self._backoff = min(max(2 * self._backoff, 2.0), 60.0)
            self._next_try = now + self._backoff
            return None

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)

    def _sacct(self, job_ids: list[str]) -> dict[str, JobState] | None:
        bases = sorted({_base(j) for j in job_ids})
        proc = self._run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,State,NodeList,Elapsed,ExitCode", "-j", ",".join(bases)]
        )
        if proc.returncode != 0:
            if "accounting storage is disabled" in proc.stderr.lower() or "slurmdbd" in proc.stderr.lower():
                self.accounting = False
                return None
            raise subprocess.SubprocessError(f"sacct failed: {proc.stderr.strip()}")
        self.accounting = True
        return parse_sacct(proc.stdout, job_ids)

    def _squeue(self, job_ids: list[str]) -> dict[str, JobState]:
        bases = sorted({_base(j) for j in job_ids})
        proc = self._run(["squeue", "-h", "-r", "-o", "%i|%T|%N|%M", "-j", ",".join(bases)])
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise subprocess.SubprocessError(f"squeue failed: {proc.stderr.strip()}")
        return parse_squeue(proc.stdout, job_ids)


def parse_sacct(stdout: str, job_ids: list[str]) -> dict[str, JobState]:
    """States of ``job_ids`` from ``sacct -X -n -P -o JobID,State,NodeList,Elapsed,ExitCode`` output."""
    seen: dict[str, JobState] = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        jid, state, node, elapsed, exit_code = parts[:5]
        state = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0" → CANCELLED
        for one in expand_job_ids(jid):
            seen[one] = JobState(one, state, node, elapsed, exit_code)
    out = {}
    for j in job_ids:
        if j in seen:
            out[j] = seen[j]
        elif _base(j) in seen and "_" not in j:
            out[j] = seen[_base(j)]
        else:  # not yet in accounting (just submitted)
            out[j] = JobState(j, "PENDING")
    return out


def parse_squeue(stdout: str, job_ids: list[str]) -> dict[str, JobState]:
    """States of ``job_ids`` from ``squeue -h -r -o %i|%T|%N|%M`` output; a job not listed has ENDED."""
    seen = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 4:
            for one in expand_job_ids(parts[0]):
                seen[one] = JobState(one, parts[1], parts[2], parts[3])
    return {j: seen.get(j, JobState(j, "ENDED")) for j in job_ids}
