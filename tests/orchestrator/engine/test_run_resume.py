"""End-to-end behaviour of `lowloss run` on real training: resume after kills, retries, edits, locking."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import digests, run_cli, spec_text, start_cli, wait_for

pytestmark = pytest.mark.slow

ONE_MODE = """
    [[stages]]
    name = "modes"
    kind = "train"
"""


def _unit_dirs(store: Path, kind: str = "train") -> list[Path]:
    return sorted((store / "units").glob(f"kind={kind}/unit=*"))


def _committed_segments(unit: Path) -> int:
    return len(list((unit / "segments").glob("0*.json")))


def _running_attempt(unit: Path) -> dict | None:
    for rec in sorted((unit / "attempts").glob("*.json"), reverse=True):
        try:
            data = json.loads(rec.read_text())
        except ValueError:
            continue
        if data["state"] == "running":
            return data
    return None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the kill-test study."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="kill", seeds="[5]", model="small_cnn", epochs=6, segment_steps=4, stages=ONE_MODE))
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return spec, digests(store)


def test_train_unit_killed_at_random_moments_resumes_to_identical_digests(reference, tmp_path):
    spec, expected = reference
    store = tmp_path / "store"
    (tmp_path / "spec.toml").write_text(spec.read_text().replace("retries = 1", "retries = 5"))
    rng = random.Random(20261124)
    proc = start_cli("run", tmp_path / "spec.toml", "--store", store)
    kills = 0
    try:
        for target_segments in (2, 9, 20):
            unit = wait_for(lambda: (_unit_dirs(store) or [None])[0])
            wait_for(lambda u=unit, n=target_segments: _committed_segments(u) >= n and _running_attempt(u))
            time.sleep(rng.uniform(0.0, 0.15))  # a random moment inside the next segments
            attempt = _running_attempt(unit)
            if attempt is None or (unit / "COMMIT.json").exists():
                break
            os.kill(attempt["pid"], signal.SIGKILL)
            kills += 1
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert kills >= 2, "the unit finished before it could be killed; make it longer"
    logs = "".join(p.read_text() for p in (_unit_dirs(store)[0] / "attempts").glob("*.log"))
    assert "resumed at step" in logs, "a killed attempt must resume from its checkpoint, not start over"
    assert digests(store) == expected


def test_coordinator_killed_mid_study_then_run_again_gives_identical_digests(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="coord", seeds="[0, 1, 2]", epochs=5, segment_steps=5))
    ref = tmp_path / "ref"
    run_cli("run", spec, "--store", ref, check=True)
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    wait_for(lambda: any(_committed_segments(u) >= 3 for u in _unit_dirs(store)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the workers die with the coordinator: nothing keeps writing to the store
    time.sleep(0.5)
    for unit in _unit_dirs(store):
        attempt = _running_attempt(unit)
        if attempt:
            wait_for(lambda pid=attempt["pid"]: not Path(f"/proc/{pid}").exists(), timeout=10)
    # the killed units are pending (resumable from their segments), never "failed", and every unit is counted once
    status = run_cli("status", store, "--units", check=True).stdout
    assert "failed" not in status.replace("┃ failed ┃", ""), status
    rows = re.findall(r"│ (\w+)\s*│ \w+\s*│\s*(\d+) │\s*(\d+) │\s*(\d+)(?: \((\d+) resumable\))? │\s*(\d+) │", status)
    listed = re.findall(r"^  [0-9a-f]{20}  (\w+) .* (pending|running|done|failed)\b(.*)$", status, flags=re.M)
    assert {r[0] for r in rows} == {"modes", "lmc"} and len(listed) == 5, status
    for stage, done, running, pending, resumable, failed in rows:
        assert int(done) + int(running) + int(pending) + int(failed) == sum(1 for u in listed if u[0] == stage)
        assert int(resumable or 0) == sum(1 for u in listed if u[0] == stage and "resumable" in u[2]) <= int(pending)
    assert any("resumable" in u[2] for u in listed)
    killed = next(u for u in _unit_dirs(store) if _running_attempt(u))
    shown = run_cli("show", store, killed.name[5:15], check=True).stdout
    assert "state: pending" in shown and "its process is gone" in shown, shown
    assert run_cli("run", spec, "--store", store).returncode == 0
    assert digests(store) == digests(ref)
    assert len(digests(store)) == 5  # 3 modes + 2 consecutive pairs
    # the killed coordinator's attempts spent no retry: the next run closed them as interrupted
    states = [json.loads(a.read_text())["state"] for a in sorted((killed / "attempts").glob("[0-9]*.json"))]
    assert states == ["interrupted", "done"], states


def test_crashing_unit_is_recorded_retried_and_others_finish(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="crash",
            seeds="[0]",
            epochs=2,
            stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "flaky"
        kind = "crashy"
        seeds = [1]
        fail_attempts = 1

        [[stages]]
        name = "broken"
        kind = "crashy"
        seeds = [2]
        fail_attempts = 99
    """,
        )
    )
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 unit(s) failed" in proc.stdout
    status = run_cli("status", store, check=True).stdout
    assert "failed broken seed=2" in status and "RuntimeError: boom on attempt 2" in status and "log:" in status
    flaky = _unit_dirs(store, "crashy")
    states = {}
    for unit in flaky:
        attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("*.json"))]
        states[json.loads((unit / "unit.json").read_text())["params"]["seed"]] = [a["state"] for a in attempts]
        for a in attempts:
            if a["state"] == "failed":
                assert "Traceback" in a["error"] and "RuntimeError: boom" in a["error"]
                assert "RuntimeError: boom" in Path(a["log"]).read_text()
    assert states == {1: ["failed", "done"], 2: ["failed", "failed"]}
    assert all((u / "COMMIT.json").exists() for u in _unit_dirs(store, "train"))
    # the failed unit never committed, so it has no result, and `show` says it failed
    for unit in _unit_dirs(store, "crashy"):
        seed = json.loads((unit / "unit.json").read_text())["params"]["seed"]
        shown = run_cli("show", store, unit.name[5:15], check=True).stdout
        assert (
            ("state: failed" in shown and "result:" not in shown)
            if seed == 2
            else ("state: done" in shown and '"value": 1.0' in shown)
        )


def test_edited_spec_reruns_only_changed_units_and_unchanged_reruns_nothing(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="edit", seeds="[0, 1]", epochs=2))
    store = tmp_path / "store"
    first = run_cli("run", spec, "--store", store, check=True)
    assert "3 unit(s) run now, 0 reused" in first.stdout
    before = digests(store)
    again = run_cli("run", spec, "--store", store, check=True)
    assert "0 unit(s) run now, 3 reused" in again.stdout
    assert digests(store) == before
    # editing the interpolation's points changes only the interpolation unit
    spec.write_text(spec.read_text().replace("points = 5", "points = 7"))
    plan = run_cli("plan", spec, "--store", store, check=True).stdout
    assert "1 unit(s) would run" in plan
    edited = run_cli("run", spec, "--store", store, check=True)
    assert "1 unit(s) run now, 2 reused" in edited.stdout
    after = digests(store)
    assert {k: v for k, v in after.items() if k in before} == before
    # a seed added re-uses the existing modes and trains only the new one (+ its new pair)
    spec.write_text(spec.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    grown = run_cli("run", spec, "--store", store, check=True)
    assert "2 unit(s) run now, 3 reused" in grown.stdout


def test_second_coordinator_on_the_same_store_is_refused(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="lock", seeds="[0]", epochs=30, stages=ONE_MODE))
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    try:
        wait_for(lambda: (store / "coordinator.json").exists() and _unit_dirs(store))
        second = run_cli("run", spec, "--store", store)
        assert second.returncode == 2
        assert "already driven by a coordinator" in second.stderr and "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_to_best_planner_adds_pairs_once_modes_finish(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="planner",
            seeds="[0, 1, 2]",
            epochs=2,
            stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "star"
        kind = "interpolate"
        from = "modes"
        pairs = "to_best"
        points = 3
    """,
        )
    )
    plan = run_cli("plan", spec, check=True).stdout
    assert "planned when all modes are done" in plan and "3 unit(s) would run" in plan
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store, check=True)
    assert "planner added 2 units" in proc.stderr
    results = [json.loads((u / "result.json").read_text()) for u in _unit_dirs(store)]
    best = min(results, key=lambda r: (r["final_train_loss"], r["seed"]))["seed"]
    pairs = sorted(
        json.loads((u / "unit.json").read_text())["params"]["pair"] for u in _unit_dirs(store, "interpolate")
    )
    assert pairs == sorted([best, s] for s in (0, 1, 2) if s != best)


@pytest.mark.parametrize("how", ["sigterm", "lowloss cancel"])
def test_sigterm_to_the_coordinator_checkpoints_the_units_and_the_next_run_finishes_them(reference, tmp_path, how):
    """SIGTERM (kill, systemd, a Slurm job's end, or `lowloss cancel STORE` from another shell) is handled like
    Ctrl-C: the running unit checkpoints at its next segment boundary, its attempt ends as preempted (not left running,
    no retry spent), the run exits 130, and a resume continues from the checkpoint to the digests of an uninterrupted
    run."""
    spec, expected = reference
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    unit = wait_for(lambda: (_unit_dirs(store) or [None])[0])
    if how != "sigterm":  # asked before the unit is well under way: the stop below must come before its last segment
        one = run_cli("cancel", store, unit.name[len("unit=") :][:8])  # a local run stops as a whole
        assert one.returncode == 2 and "without unit ids" in one.stderr and "Traceback" not in one.stderr, one
    wait_for(lambda: _committed_segments(unit) >= 3 and _running_attempt(unit))
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        cancel = run_cli("cancel", store, check=True)
        assert "asked the coordinator" in cancel.stdout and "stopped" in cancel.stdout, cancel.stdout
        assert proc.wait(timeout=5) is not None  # cancel returned once the coordinator let go of the store
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted; committed work is kept" in out and "Traceback" not in out
    attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("[0-9]*.json"))]
    assert [a["state"] for a in attempts] == ["preempted"], attempts
    assert not list((unit / "attempts").glob("*.reserve"))
    assert (unit / "checkpoint" / "latest.json").exists() and not (unit / "COMMIT.json").exists()
    assert run_cli("resume", store).returncode == 0
    logs = "".join(p.read_text() for p in (unit / "attempts").glob("*.log"))
    assert "resumed at step" in logs
    assert digests(store) == expected


LINE = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    points = 301
"""


def test_stop_mid_line_stops_an_interpolate_unit_at_its_next_segment_and_a_resume_gives_identical_digests(tmp_path):
    """A kind whose loop only commits segments (no checkpoint) stops too: Ctrl-C of the run stops the interpolation at
    its next committed point, its attempt ends as preempted (no retry spent), the run's last line shows it stopped,
    and a resume continues after the committed points to the digests of an uninterrupted run."""
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="line", seeds="[0, 1]", epochs=1, segment_steps=100, stages=LINE))
    ref = tmp_path / "ref"
    run_cli("run", spec, "--store", ref, check=True)
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    unit = wait_for(lambda: (_unit_dirs(store, "interpolate") or [None])[0])
    wait_for(lambda: _committed_segments(unit) >= 5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted; committed work is kept" in out, out
    assert not (unit / "COMMIT.json").exists() and 5 <= _committed_segments(unit) < 301, "it ran on to its end"
    attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("[0-9]*.json"))]
    assert [a["state"] for a in attempts] == ["preempted"] and "stopped after segment" in attempts[0]["error"]
    last = [ln for ln in out.splitlines() if "units done" in ln][-1]
    assert "2/3 units done" in last and "lmc 0/1" in last and "running" not in last, last
    assert run_cli("resume", store).returncode == 0
    attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("[0-9]*.json"))]
    assert [a["state"] for a in attempts] == ["preempted", "done"]
    assert digests(store) == digests(ref)


def test_a_stop_while_the_last_unit_reaches_its_commit_ends_as_a_complete_run(tmp_path):
    """A unit in its last segment does not stop (its commit follows at once): when the stop leaves nothing to run,
    the run says so and ends as an uninterrupted run would (exit 0, every unit counted done), not "interrupted"."""
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="late", seeds="[0]", epochs=40, segment_steps=100000, stages=ONE_MODE))
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    unit = wait_for(lambda: (_unit_dirs(store) or [None])[0])
    wait_for(lambda: _running_attempt(unit))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert "stopping running units" in out, "the unit ended before the stop; make it longer\n" + out
    assert proc.returncode == 0 and "the run is complete" in out and "interrupted" not in out, out
    assert "1/1 units done" in [ln for ln in out.splitlines() if "units done" in ln][-1]
    assert (unit / "COMMIT.json").exists() and run_cli("status", store, check=True).stdout.count("│ closed") == 1
