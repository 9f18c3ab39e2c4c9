"""The `grow` planner study (a planner that reads its own stage's results: one more unit per round until a value reaches
a target), run with SIGKILLs of the coordinator between and during rounds; shared by the local, Slurm and Ray tests."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import run_cli, spec_text, start_cli, wait_for

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


def committed(store: Path) -> list[Path]:
    return sorted(p.parent for p in store.glob("units/kind=grow/unit=*/COMMIT.json"))


def explore_with_kills(tmp_path: Path, *extra: str) -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="grow", stages=GROW).replace("retries = 1", "retries = 3"))
    store = tmp_path / "store"
    for kill_after in (2, 4):  # SIGKILL the coordinator once 2, then 4 rounds are committed
        proc = start_cli("run", spec, "--store", store, *extra)
        wait_for(lambda k=kill_after: len(committed(store)) >= k, timeout=600)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = run_cli("resume", store, *extra, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    values = sorted(json.loads((u / "result.json").read_text())["value"] for u in committed(store))
    assert values == VALUES
    for unit in committed(store):  # each unit committed once, by one attempt; none ran again after its commit
        attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("[0-9]*.json"))]
        assert [a["state"] for a in attempts].count("done") == 1, attempts
        assert attempts[-1]["state"] == "done"
        assert json.loads((unit / "COMMIT.json").read_text())["attempt"] == attempts[-1]["attempt"]
    plan = json.loads((store / "plan.json").read_text())
    assert plan["stages"][0]["open"] is False and plan["stages"][0]["note"].startswith("reached 32.0")
    return store
