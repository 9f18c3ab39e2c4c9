"""The AutoNEB exploration with kills (shared by the Slurm and Ray tests, in test_executor_slurm.py and
test_executor_ray.py): an edge's worker SIGKILLed mid-cycle, the coordinator SIGKILLed between edges (the star
committed, the refinement round not yet), and the resumed study gives the digests of an uninterrupted local run, with
no edge computed twice (checked in the store)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import digests, run_cli, spec_text, start_cli, wait_for

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


def edges(store: Path) -> dict[str, Path]:
    return {p.name[5:]: p for p in store.glob("units/kind=autoneb_edge/unit=*")}


def committed(store: Path) -> list[str]:
    return [u for u, p in edges(store).items() if (p / "COMMIT.json").exists()]


def reference_run(tmp: Path) -> tuple[Path, Path]:
    """The uninterrupted local run the killed ones must equal."""
    spec = tmp / "spec.toml"
    spec.write_text(
        spec_text(name="anbx", seeds="[0, 1, 2]", model="small_cnn", epochs=2, segment_steps=20, stages=STAGES).replace(
            "retries = 1", "retries = 3"
        )
    )
    run_cli("run", spec, "--store", tmp / "store", check=True)
    assert len(committed(tmp / "store")) == 3  # every pair of three minima
    return spec, tmp / "store"


def kill_mid_cycle_then_between_edges(store: Path, spec: Path, reference: Path, *extra: str):
    proc = start_cli("run", spec, "--store", store, *extra)
    try:

        def running_edge():
            for edge in edges(store).values():
                if (edge / "COMMIT.json").exists() or not (edge / "checkpoint" / "latest.json").exists():
                    continue  # mid-cycle: a segment and its checkpoint are committed, the edge is not
                for rec in sorted((edge / "attempts").glob("[0-9]*.json")):
                    data = json.loads(rec.read_text())
                    if data["state"] == "running" and data.get("pid"):
                        return edge, data["pid"]
            return None

        edge, pid = wait_for(running_edge, timeout=300, interval=0.02)
        # mid-cycle (segments of the edge committed, the edge not): the process running the unit, a Slurm task or
        # the Ray worker it runs in
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(committed(store)) >= 2, timeout=300)  # the star is done …
        proc.send_signal(signal.SIGKILL)  # … and the coordinator dies between edges
        proc.wait()
    finally:
        proc.kill()
    time.sleep(1)
    done = run_cli("resume", store, *extra, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert digests(store) == digests(reference)
    assert set(edges(store)) == set(edges(reference))  # no edge planned that the uninterrupted run did not plan
    for uid, path in edges(store).items():  # committed once, by its last attempt: nothing ran after the commit
        records = [json.loads(p.read_text()) for p in sorted((path / "attempts").glob("[0-9]*.json"))]
        states = [r["state"] for r in records]
        assert json.loads((path / "COMMIT.json").read_text())["attempt"] == records[-1]["attempt"], (uid, states)
        assert "done" not in states[:-1], (uid, states)
    logs = "".join(p.read_text() for p in sorted((edge / "attempts").glob("*.log")))
    states = [json.loads(p.read_text())["state"] for p in sorted((edge / "attempts").glob("[0-9]*.json"))]
    assert len(states) >= 2 and "resumed at segment" in logs, states  # the killed edge resumed its checkpoint
    return store
