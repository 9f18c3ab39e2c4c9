"""The store's locks where ``flock`` fails (ENOSYS) or is node-local: leases (``store/leases.py``, ``store/locks.py``),
and ``lowloss cancel``, which signals only the process that holds the coordinator lock.

"Nodes" are processes of this machine made to look like cluster nodes by ``tests/fakefs/sitecustomize.py``: a host
name of their own, and a ``flock`` that fails with ENOSYS or that always succeeds (a node-local lock seen from another
node)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import cli_env, digests, spec_text, wait_for

from lowloss.orchestrator.store import LockMechanism, Store, StoreError
from lowloss.orchestrator.store.leases import Lease, LeaseLost, LeaseRecord, read_lease

FAKEFS = Path(__file__).resolve().parents[2] / "fakefs"

TOY = """
    [[stages]]
    name = "paths"
    kind = "toy_path"
    seeds = [0, 1]
    iterations = 120
    segment_iterations = 20
    pause_s = {pause}
"""


def _env(flock: str | None = None, host: str | None = None) -> dict:
    env = cli_env()
    env["PYTHONPATH"] = str(FAKEFS) + os.pathsep + env["PYTHONPATH"]
    if flock:
        env["LOWLOSS_TEST_FLOCK"] = flock
    if host:
        env["LOWLOSS_TEST_HOST"] = host
    return env


def _cli(*args, flock: str | None = None, host: str | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(flock, host),
        timeout=timeout,
    )


def _start(*args, flock: str | None = None, host: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lowloss.orchestrator.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(flock, host),
    )


def _running_attempts(store: Path) -> list[dict]:
    out = []
    for path in store.glob("units/kind=toy_path/*/attempts/[0-9]*.json"):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if record.get("state") == "running":
            out.append({**record, "unit": path.parent.parent.name[len("unit=") :]})
    return out


@pytest.fixture(scope="module")
def toy_clean(tmp_path_factory):
    """The toy study run uninterrupted with flock: the digests every lock mechanism must reach."""
    tmp = tmp_path_factory.mktemp("locks")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="locks", stages=TOY.format(pause=1.0)))
    store = tmp / "clean"
    ran = _cli("run", spec, "--store", store)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return spec, digests(store)


# ---------------------------------------------------------------------- leases, in one process


def test_a_lease_is_held_by_one_and_taken_again_once_released(tmp_path):
    path = tmp_path / "unit.lease"
    first = Lease.take(tmp_path, path, seconds=30)
    assert first is not None
    assert Lease.take(tmp_path, path, seconds=30, wait=False) is None  # a live holder on this host: busy at once
    first.check()
    first.release()
    assert not path.exists()
    second = Lease.take(tmp_path, path, seconds=30, wait=False)
    assert second is not None
    second.release()


def test_a_lease_of_a_dead_process_of_this_host_is_taken_at_once(tmp_path):
    path = tmp_path / "unit.lease"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    record = LeaseRecord("deadbeef", socket.gethostname(), pid, 12345, 3600.0, time.time(), 7)
    path.write_bytes(record.encode())
    started = time.monotonic()
    lease = Lease.take(tmp_path, path, seconds=3600)
    assert lease is not None and time.monotonic() - started < 5  # no waiting out the hour
    assert LeaseRecord.decode(read_lease(path)).token == lease.record.token
    lease.release()


def test_a_lease_of_another_node_is_taken_only_after_it_stopped_changing(tmp_path):
    """Another node's holder renews: never broken. Once it stops (its node died), taken after the lease's length."""
    path = tmp_path / "unit.lease"
    stop = threading.Event()

    def other_node() -> None:  # a holder on node-b, renewing in place as a live one does
        count = 0
        while not stop.is_set():
            record = LeaseRecord("feed", "node-b", 1, None, 1.0, time.time(), count)
            with open(path, "r+b" if path.exists() else "wb") as fh:
                fh.write(record.encode())
            count += 1
            time.sleep(0.1)

    thread = threading.Thread(target=other_node, daemon=True)
    thread.start()
    wait_for(path.exists)
    assert Lease.take(tmp_path, path, seconds=1.0) is None  # watched a full second: it kept changing
    stop.set()
    thread.join()
    started = time.monotonic()
    lease = Lease.take(tmp_path, path, seconds=1.0)
    assert lease is not None and time.monotonic() - started >= 1.0
    lease.release()


def test_a_holder_whose_lease_was_broken_stops_writing(tmp_path):
    path = tmp_path / "unit.lease"
    lease = Lease.take(tmp_path, path, seconds=30)
    assert lease is not None
    os.rename(path, tmp_path / "moved")  # what a breaker does to a lease it judged stale
    assert not lease.renew()
    with pytest.raises(LeaseLost, match="broke the lease"):
        lease.check()
    lease.release()
    assert (tmp_path / "moved").exists()  # never removes a file that is not its own


def test_a_stalled_holder_stops_writing_before_anyone_may_break_its_lease(tmp_path, monkeypatch):
    path = tmp_path / "unit.lease"
    lease = Lease.take(tmp_path, path, seconds=1.0)
    assert lease is not None
    lease._stop.set()  # the renewer stalls (a stopped process, a hung file server)
    time.sleep(0.6)  # past half the lease, before an observer could judge it stale (a full lease of no change)
    with pytest.raises(LeaseLost, match="not renewed"):
        lease.check()
    lease.release()


def test_a_dead_processs_lease_is_cleared_by_a_flock_run(tmp_path):
    """A lease run killed on this host leaves leases nobody will renew; a flock run that takes the lock clears them."""
    store = Store(tmp_path / "store")
    store.init_study("locks", "")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = LeaseRecord("deadbeef", socket.gethostname(), int(dead.stdout), 1, 60.0, time.time(), 3)
    from lowloss.orchestrator.store import UnitRecord, unit_id

    unit = UnitRecord(unit_id("emit", 1, {"seed": 0}, {}), "emit", 1, {"seed": 0}, {})
    store.write_unit(unit)
    store.layout.unit_lease(unit.id, unit.kind).write_bytes(record.encode())
    store.layout.coordinator_lease.write_bytes(record.encode())
    with store.locks.coordinator("local", LockMechanism.FLOCK):
        assert not store.layout.coordinator_lease.exists()
        hold = store.locks.take_unit(unit.id, unit.kind)
        assert hold is not None and not store.layout.unit_lease(unit.id, unit.kind).exists()
        hold.release()


def test_resume_keeps_the_lease_mechanism_a_run_chose(toy_clean, tmp_path):
    """Where flock is node-local, `auto` would take it: a store that ran under leases resumes under leases."""
    spec, clean = toy_clean
    store = tmp_path / "store"
    assert _cli("run", spec, "--store", store, "--lock", "lease", "--lease-seconds", "30").returncode == 0
    resumed = _cli("resume", store)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    settings = json.loads((store / "run.json").read_text())
    assert (settings["lock"], settings["lease_seconds"]) == ("lease", 30.0)
    assert _cli("resume", store, "--lock", "flock").returncode == 0  # unless the command line says otherwise
    assert json.loads((store / "run.json").read_text())["lock"] == "flock"
    assert digests(store) == clean


# ---------------------------------------------------------------------- locks without working flock


def test_without_flock_auto_falls_back_to_leases_and_a_second_coordinator_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: (_ for _ in ()).throw(OSError(errno.ENOSYS, "no flock")))
    store = Store(tmp_path / "store")
    with store.locks.coordinator("local") as mechanism:
        assert mechanism is LockMechanism.LEASE and (tmp_path / "store" / "coordinator.lease").exists()
        with pytest.raises(StoreError, match="already driven by a coordinator"):
            with Store(tmp_path / "store").locks.coordinator("local"):
                pass
    assert not (tmp_path / "store" / "coordinator.lease").exists()
    with pytest.raises(StoreError, match="has no flock.*--lock lease"):
        with Store(tmp_path / "other").locks.coordinator("local", LockMechanism.FLOCK):
            pass


def test_a_study_without_flock_runs_under_leases_to_the_same_bytes(toy_clean, tmp_path):
    spec, clean = toy_clean
    store = tmp_path / "store"
    ran = _cli("run", spec, "--store", store, flock="enosys")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads((store / "run.json").read_text())["lock"] == "lease"
    assert digests(store) == clean
    assert not list(store.rglob("*.lease"))  # every lease let go of


@pytest.mark.slow
def test_node_local_flock_leases_keep_a_live_unit_from_running_twice(toy_clean, tmp_path):
    """Node b runs the study under leases; node a, whose flock cannot see node b's, is refused as a second
    coordinator and, handed a unit node b's worker is running, leaves it. Nothing runs twice."""
    spec, clean = toy_clean
    store = tmp_path / "store"
    node_b = _start("run", spec, "--store", store, "--lock", "lease", "--lease-seconds", "2", flock="nodelocal",
                    host="node-b")  # fmt: skip
    try:
        running = wait_for(lambda: _running_attempts(store), timeout=120)[0]
        second = _cli("run", spec, "--store", store, "--lock", "lease", flock="nodelocal", host="node-a")
        assert second.returncode == 2 and "already driven by a coordinator" in second.stderr, second.stderr
        task = json.dumps({"uid": running["unit"], "kind": "toy_path", "inputs": []})
        worker = subprocess.run(
            [sys.executable, "-m", "lowloss.orchestrator.runtime", str(store), task],
            capture_output=True, text=True, env=_env("nodelocal", "node-a"), timeout=120,
        )  # fmt: skip
        assert json.loads(worker.stdout.splitlines()[-1])["states"] == ["busy"], worker.stdout + worker.stderr
    finally:
        output = node_b.communicate(timeout=300)[0]
    assert node_b.returncode == 0, output
    assert digests(store) == clean
    hosts = [json.loads(p.read_text())["host"] for p in store.glob("units/kind=toy_path/*/attempts/[0-9]*.json")]
    assert hosts == ["node-b", "node-b"]  # one attempt per unit, both node b's


@pytest.mark.slow
def test_a_unit_of_a_dead_node_is_taken_over_after_its_lease_and_reaches_the_same_bytes(toy_clean, tmp_path):
    spec, clean = toy_clean
    store = tmp_path / "store"
    node_b = _start("run", spec, "--store", store, "--lock", "lease", "--lease-seconds", "2", "--jobs", "1",
                    flock="nodelocal", host="node-b")  # fmt: skip
    running = wait_for(
        lambda: [a for a in _running_attempts(store) if list((store / "units" / "kind=toy_path").glob(
            f"unit={a['unit']}/segments/*.json"))],
        timeout=120,
    )[0]  # fmt: skip
    os.kill(running["pid"], signal.SIGKILL)  # node b is lost: its worker and its coordinator with it
    node_b.kill()
    node_b.communicate()
    assert list(store.rglob("*.lease"))  # left behind, as a dead node leaves them
    started = time.monotonic()
    resumed = _cli("resume", store, "--lease-seconds", "2", flock="nodelocal", host="node-a")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert time.monotonic() - started >= 2.0  # the leases were watched for their length before being taken over
    assert digests(store) == clean


# ---------------------------------------------------------------------- cancel signals only the lock's holder


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.mark.parametrize("forged", ["pid only", "pid and token"])
def test_cancel_refuses_a_process_that_does_not_hold_the_coordinator_lock(tmp_path, forged):
    """coordinator.json edited to name another process, while a coordinator holds the lock: cancel signals
    nothing — the token differs, or (token copied) the process's start time does."""
    root = tmp_path / "store"
    store = Store(root)
    store.init_study("locks", "")
    sleeper = _sleeper()
    try:
        with store.locks.coordinator("local"):
            record = json.loads((root / "coordinator.json").read_text())
            record["pid"] = sleeper.pid
            if forged == "pid only":
                record["token"] = "0" * 32
            (root / "coordinator.json").write_text(json.dumps(record))
            cancel = _cli("cancel", root)
            assert cancel.returncode == 2, cancel.stdout + cancel.stderr
            assert f"not signalling pid {sleeper.pid}" in cancel.stderr and "Traceback" not in cancel.stderr
            assert ("token" if forged == "pid only" else "not the process that took the lock") in cancel.stderr
            assert sleeper.poll() is None  # still alive: nothing was signalled
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cancel_stops_the_coordinator_that_holds_the_lock(toy_clean, tmp_path):
    spec, _ = toy_clean
    store = tmp_path / "store"
    run = _start("run", spec, "--store", store, flock="enosys")
    wait_for(lambda: _running_attempts(store), timeout=120)
    cancel = _cli("cancel", store, flock="enosys")
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    run.communicate(timeout=120)
    assert run.returncode == 130
