"""The Ray executor on a real local Ray: same digests as local, a killed Ray worker resumes, failures are recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from autoneb_runs import kill_mid_cycle_then_between_edges, reference_run
from conftest import digests, run_cli, spec_text, start_cli
from landscape_runs import surface_shards_match_local
from planner_runs import explore_with_kills

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture
def ray_env(tmp_path_factory, monkeypatch):
    tmp = f"/tmp/ray-{os.getpid()}-{time.monotonic_ns() % 100000}"  # unix socket paths must stay short
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("LOWLOSS_RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield
    subprocess.run(["rm", "-rf", tmp], check=False)


def test_ray_run_gives_the_local_digests(tmp_path, ray_env):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="ray", seeds="[0, 1, 2]", epochs=2))
    run_cli("run", spec, "--store", tmp_path / "local", check=True)
    proc = run_cli("run", spec, "--store", tmp_path / "ray", "--executor", "ray", "--units-per-job", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(tmp_path / "ray") == digests(tmp_path / "local")
    attempt = json.loads(next((tmp_path / "ray" / "units").glob("kind=train/*/attempts/001.json")).read_text())
    assert attempt["executor"] == "ray" and attempt["job_id"]


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def test_killed_ray_worker_is_retried_and_the_unit_resumes(tmp_path, ray_env):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="raykill",
            seeds="[3]",
            model="small_cnn",
            epochs=8,
            segment_steps=4,
            stages='[[stages]]\nname = "modes"\nkind = "train"\n',
        )
    )
    run_cli("run", spec, "--store", tmp_path / "local", check=True)
    store = tmp_path / "ray"
    proc = start_cli("run", spec, "--store", store, "--executor", "ray")
    try:
        deadline = time.monotonic() + 180
        killed = False
        while time.monotonic() < deadline and not killed:
            for rec in store.glob("units/kind=train/*/attempts/*.json"):
                data = json.loads(rec.read_text())
                segs = len(list(rec.parent.parent.glob("segments/*.json")))
                if data["state"] == "running" and segs >= 5:
                    worker = data["pid"]  # the unit runs inside the Ray worker process (no subprocess per task)
                    assert "ray" in Path(f"/proc/{worker}/cmdline").read_text().lower()
                    os.kill(worker, signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.05)
        assert killed, "never saw the unit running"
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    logs = "".join(p.read_text() for p in store.glob("units/kind=train/*/attempts/*.log"))
    assert "resumed at step" in logs
    assert digests(store) == digests(tmp_path / "local")


def test_raising_unit_on_ray_is_failed_with_traceback_retried_others_fine(tmp_path, ray_env):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="rayfail",
            seeds="[0]",
            epochs=1,
            stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "broken"
        kind = "crashy"
        seeds = [7]
        fail_attempts = 99
    """,
        )
    )
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store, "--executor", "ray")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (unit,) = store.glob("units/kind=crashy/unit=*")
    logs = run_cli("logs", store, unit.name[5:], "--all", check=True).stdout
    assert logs.count("RuntimeError: boom on attempt") == 2  # the first attempt and its retry
    assert "via ray" in logs
    assert len(list(store.glob("units/kind=train/*/COMMIT.json"))) == 1


def test_own_results_planner_on_ray_with_coordinator_kills(tmp_path, monkeypatch):
    """A planner that reads its own results (the `grow` stage) through Ray, the coordinator SIGKILLed twice."""
    tmp = f"/tmp/ray-grow-{os.getpid()}"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("LOWLOSS_RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    try:
        explore_with_kills(tmp_path, "--executor", "ray")
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)


def test_stopped_ray_run_checkpoints_inside_the_worker_and_resumes(tmp_path, ray_env):
    """Ctrl-C of the coordinator cancels the Ray task; the unit running in the Ray worker checkpoints (its attempt
    ends as preempted, no retry spent), and the next run resumes it to the local digests."""
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="raystop",
            seeds="[3]",
            model="small_cnn",
            epochs=8,
            segment_steps=4,
            stages='[[stages]]\nname = "modes"\nkind = "train"\n',
        )
    )
    run_cli("run", spec, "--store", tmp_path / "local", check=True)
    store = tmp_path / "ray"
    proc = start_cli("run", spec, "--store", store, "--executor", "ray")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            recs = [json.loads(p.read_text()) for p in store.glob("units/kind=train/*/attempts/0*.json")]
            if any(r["state"] == "running" for r in recs) and len(list(store.glob("units/*/*/segments/*.json"))) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out  # interrupted
    (record,) = [json.loads(p.read_text()) for p in store.glob("units/kind=train/*/attempts/0*.json")]
    assert record["state"] == "preempted", record
    again = run_cli("run", spec, "--store", store, "--executor", "ray")
    assert again.returncode == 0, again.stdout + again.stderr
    logs = "".join(p.read_text() for p in store.glob("units/kind=train/*/attempts/*.log"))
    assert "resumed at step" in logs
    assert digests(store) == digests(tmp_path / "local")


def test_landscape_surface_shards_through_ray_give_the_local_surface(tmp_path, ray_env):
    """Issue 12: a 2-D surface in 4 shards run as Ray tasks assembles to the locally computed surface."""
    surface_shards_match_local(tmp_path, "ray")


@pytest.fixture(scope="module")
def autoneb_reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("anbref"))


def test_exploration_on_ray_survives_kills(tmp_path, autoneb_reference, monkeypatch):
    """AutoNEB (issue 11): the exploration through Ray, the Ray worker running an edge SIGKILLed mid-cycle (the unit
    runs in it), the coordinator between edges; local digests, no edge twice."""
    tmp = f"/tmp/ray-anb-{os.getpid()}"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("LOWLOSS_RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    spec, ref = autoneb_reference
    try:
        kill_mid_cycle_then_between_edges(tmp_path / "store", spec, ref, "--executor", "ray")
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)
