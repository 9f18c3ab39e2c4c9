"""The AutoNEB exploration on the Slurm test cluster and on a real local Ray: an edge's worker SIGKILLed mid-cycle,
the coordinator SIGKILLed between edges (the star committed, the refinement round not yet), and the resumed study
gives the digests of an uninterrupted local run, with no edge computed twice (checked in the store); on Slurm the
star's edges go out as one array."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import digests, run_cli, spec_text, start_cli, wait_for

REPO = Path(__file__).resolve().parents[2]
STAGES = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "mst"
    kind = "autoneb"
    from = "modes"
    explore = "mst"
    parallel_edges = 1
    similar = 0.0           # never stops early: the star (2 edges), then the last pair
    batch_size = 64
    segment_steps = 2       # segments end mid-cycle: a kill then resumes from the running cycle's checkpoint

    [[stages.cycles]]
    steps = 8
    lr = 0.1
    insert = "equal"
    insert_count = 2
    points_between = 1

    [[stages.cycles]]
    steps = 6
    lr = 0.01
    insert = "highest"
    insert_count = 1
    points_between = 1
"""


def _edges(store: Path) -> dict[str, Path]:
    return {p.name[5:]: p for p in store.glob("units/kind=autoneb_edge/unit=*")}


def _committed(store: Path) -> list[str]:
    return [u for u, p in _edges(store).items() if (p / "COMMIT.json").exists()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("anbref")
    spec = tmp / "spec.toml"
    spec.write_text(
        spec_text(name="anbx", seeds="[0, 1, 2]", model="small_cnn", epochs=2, segment_steps=20, stages=STAGES).replace(
            "retries = 1", "retries = 3"
        )
    )
    run_cli("run", spec, "--store", tmp / "store", check=True)
    assert len(_committed(tmp / "store")) == 3  # every pair of three minima
    return spec, tmp / "store"


def _kill_mid_cycle_then_between_edges(store: Path, spec: Path, reference: Path, *extra: str, kill_parent=False):
    proc = start_cli("run", spec, "--store", store, *extra)
    try:

        def running_edge():
            for edge in _edges(store).values():
                if (edge / "COMMIT.json").exists() or not (edge / "checkpoint" / "latest.json").exists():
                    continue  # mid-cycle: a segment and its checkpoint are committed, the edge is not
                for rec in sorted((edge / "attempts").glob("[0-9]*.json")):
                    data = json.loads(rec.read_text())
                    if data["state"] == "running" and data.get("pid"):
                        return edge, data["pid"]
            return None

        edge, pid = wait_for(running_edge, timeout=300, interval=0.02)
        victim = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) if kill_parent else pid
        os.kill(victim, signal.SIGKILL)  # mid-cycle: segments of the edge are committed, the edge is not
        wait_for(lambda: len(_committed(store)) >= 2, timeout=300)  # the star is done …
        proc.send_signal(signal.SIGKILL)  # … and the coordinator dies between edges
        proc.wait()
    finally:
        proc.kill()
    time.sleep(1)
    done = run_cli("resume", store, *extra, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert digests(store) == digests(reference)
    assert set(_edges(store)) == set(_edges(reference))  # no edge planned that the uninterrupted run did not plan
    for uid, path in _edges(store).items():  # committed once, by its last attempt: nothing ran after the commit
        records = [json.loads(p.read_text()) for p in sorted((path / "attempts").glob("[0-9]*.json"))]
        states = [r["state"] for r in records]
        assert json.loads((path / "COMMIT.json").read_text())["attempt"] == records[-1]["attempt"], (uid, states)
        assert "done" not in states[:-1], (uid, states)
    logs = "".join(p.read_text() for p in sorted((edge / "attempts").glob("*.log")))
    states = [json.loads(p.read_text())["state"] for p in sorted((edge / "attempts").glob("[0-9]*.json"))]
    assert len(states) >= 2 and "resumed at segment" in logs, states  # the killed edge resumed its checkpoint
    return store


@pytest.mark.slow
@pytest.mark.slurm
def test_exploration_on_slurm_survives_kills_and_sends_the_star_as_one_array(tmp_path, reference, monkeypatch):
    proc = subprocess.run(["bash", str(REPO / "slurm" / "testcluster.sh"), "start"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    monkeypatch.setenv(
        "SLURM_CONF",
        os.path.join(os.environ.get("LOWLOSS_TESTCLUSTER_DIR", "/tmp/lowloss-testcluster"), "etc", "slurm.conf"),
    )
    profile = tmp_path / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 1\ntime_min = 30\nsignal_delay_s = 30\n')
    spec, ref = reference
    store = _kill_mid_cycle_then_between_edges(
        tmp_path / "store", spec, ref, "--executor", "slurm", "--profile", str(profile)
    )
    losses = {}
    for unit in store.glob("units/kind=train/unit=*"):
        seed = json.loads((unit / "unit.json").read_text())["params"]["seed"]
        losses[seed] = json.loads((unit / "result.json").read_text())["final_train_loss"]
    best = min(losses, key=lambda s: (losses[s], s))
    pairs = {uid: json.loads((p / "unit.json").read_text())["params"]["pair"] for uid, p in _edges(store).items()}
    star = {uid for uid, pair in pairs.items() if best in pair}
    records = [json.loads(p.read_text()) for p in sorted((store / "jobs").glob("*.json"))]
    arrays = [{u for us in r["tasks"].values() for u in us} for r in records]
    assert len(star) == 2 and star in arrays, (star, arrays)  # the star's two edges were one array


@pytest.mark.slow
@pytest.mark.ray
def test_exploration_on_ray_survives_kills(tmp_path, reference, monkeypatch):
    tmp = f"/tmp/ray-anb-{os.getpid()}"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("LOWLOSS_RAY_TMPDIR", tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    spec, ref = reference
    try:
        _kill_mid_cycle_then_between_edges(tmp_path / "store", spec, ref, "--executor", "ray", kill_parent=True)
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)
