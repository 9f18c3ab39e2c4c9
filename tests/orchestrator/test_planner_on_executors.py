"""A planner that reads its own stage's results (the `grow` test stage: one more unit per round until a value reaches
a target) runs to completion locally, on the Slurm test cluster and on a real local Ray, survives SIGKILLs of the
coordinator between and during rounds, and never commits a unit twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli, spec_text, start_cli, wait_for

REPO = Path(__file__).resolve().parents[2]
GROW = """
    [[stages]]
    name = "grow"
    kind = "grow"
    start = 1.0
    factor = 2.0
    target = 20.0
    pause_s = 1.5
"""
VALUES = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def _committed(store: Path) -> list[Path]:
    return sorted(p.parent for p in store.glob("units/kind=grow/unit=*/COMMIT.json"))


def _explore_with_kills(tmp_path: Path, *extra: str) -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="grow", stages=GROW).replace("retries = 1", "retries = 3"))
    store = tmp_path / "store"
    for kill_after in (2, 4):  # SIGKILL the coordinator once 2, then 4 rounds are committed
        proc = start_cli("run", spec, "--store", store, *extra)
        wait_for(lambda k=kill_after: len(_committed(store)) >= k, timeout=600)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = run_cli("resume", store, *extra, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    values = sorted(json.loads((u / "result.json").read_text())["value"] for u in _committed(store))
    assert values == VALUES
    for unit in _committed(store):  # each unit committed once, by one attempt; none ran again after its commit
        attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("[0-9]*.json"))]
        assert [a["state"] for a in attempts].count("done") == 1, attempts
        assert attempts[-1]["state"] == "done"
        assert json.loads((unit / "COMMIT.json").read_text())["attempt"] == attempts[-1]["attempt"]
    plan = json.loads((store / "plan.json").read_text())
    assert plan["stages"][0]["open"] is False and plan["stages"][0]["note"].startswith("reached 32.0")
    return store


@pytest.mark.slow
def test_own_results_planner_locally_with_coordinator_kills(tmp_path):
    _explore_with_kills(tmp_path)


@pytest.mark.slow
@pytest.mark.ray
def test_own_results_planner_on_ray_with_coordinator_kills(tmp_path, monkeypatch):
    tmp = f"/tmp/ray-grow-{os.getpid()}"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("LOWLOSS_RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    try:
        _explore_with_kills(tmp_path, "--executor", "ray")
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)


@pytest.mark.slow
@pytest.mark.slurm
def test_own_results_planner_on_slurm_with_coordinator_kills(tmp_path, monkeypatch):
    proc = subprocess.run(["bash", str(REPO / "slurm" / "testcluster.sh"), "start"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    monkeypatch.setenv(
        "SLURM_CONF",
        os.path.join(os.environ.get("LOWLOSS_TESTCLUSTER_DIR", "/tmp/lowloss-testcluster"), "etc", "slurm.conf"),
    )
    profile = tmp_path / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 1\ntime_min = 30\nsignal_delay_s = 30\n')
    store = _explore_with_kills(tmp_path, "--executor", "slurm", "--profile", str(profile))
    assert list((store / "jobs").glob("*.json"))  # the rounds went out as Slurm jobs
