"""The Slurm executor on the real two-node test cluster (slurm/testcluster.sh): arrays and packing, requeue from
outside, time limits, scancel, failures, and a coordinator killed and restarted while jobs run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from autoneb_runs import edges, kill_mid_cycle_then_between_edges, reference_run
from conftest import digests, run_cli, segments_of, sigkill_mid_unit, spec_text, start_cli, wait_for
from landscape_runs import surface_shards_match_local
from planner_runs import explore_with_kills

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
REPO = Path(__file__).resolve().parents[3]
ONE_MODE = '[[stages]]\nname = "modes"\nkind = "train"\n'


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    """Start (idempotently) the test cluster; tests/run.sh has usually started it already and stops it at the end."""
    proc = subprocess.run(["bash", str(REPO / "slurm" / "testcluster.sh"), "start"], capture_output=True, text=True)
    assert proc.returncode == 0, f"the Slurm test cluster did not start:\n{proc.stdout}\n{proc.stderr}"
    conf = os.path.join(os.environ.get("LOWLOSS_TESTCLUSTER_DIR", "/tmp/lowloss-testcluster"), "etc", "slurm.conf")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def _profile(tmp_path, **defaults) -> Path:
    settings = {"partition": "debug", "mem_gb": 1, "time_min": 30, "signal_delay_s": 30, "array_parallelism": 8}
    settings.update(defaults)
    lines = ["[defaults]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = tmp_path / "profile.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _segments(store: Path, kind="train") -> int:
    return max((len(list(u.glob("segments/*.json"))) for u in store.glob(f"units/kind={kind}/unit=*")), default=0)


def _job_records(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "jobs").glob("*.json"))]


def _long_spec(tmp_path, name, epochs=25) -> Path:
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        spec_text(name=name, seeds="[11]", model="small_cnn", epochs=epochs, segment_steps=5, stages=ONE_MODE)
        .replace("checkpoint_seconds = 0", "checkpoint_seconds = 0")
        .replace("retries = 1", "retries = 2")
    )
    return spec


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("longref")
    spec = _long_spec(tmp, "long")
    run_cli("run", spec, "--store", tmp / "store", check=True)
    return spec, digests(tmp / "store")


def test_study_through_slurm_arrays_and_packing_gives_local_digests(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="arrays",
            seeds="[0, 1, 2, 3]",
            epochs=2,
            stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "modes"
        pairs = "all"
        points = 3
    """,
        )
    )
    run_cli("run", spec, "--store", tmp_path / "local", check=True)
    profile = _profile(tmp_path)
    proc = run_cli("run", spec, "--store", tmp_path / "arrays", "--executor", "slurm", "--profile", profile)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(tmp_path / "arrays") == digests(tmp_path / "local")
    records = _job_records(tmp_path / "arrays")
    assert any(len(r["tasks"]) == 4 for r in records), "the 4 modes should go out as one array of 4 tasks"
    proc = run_cli(
        "run", spec, "--store", tmp_path / "packed", "--executor", "slurm", "--profile", profile, "--units-per-job", "3"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(tmp_path / "packed") == digests(tmp_path / "local")
    packs = [uids for r in _job_records(tmp_path / "packed") for uids in r["tasks"].values()]
    assert max(len(p) for p in packs) == 3 and sum(len(p) for p in packs) == 10
    status = run_cli("status", tmp_path / "packed", "--units", check=True).stdout
    assert "COMPLETED" in status and "node=n" in status


def test_scontrol_requeue_mid_path_resumes_from_last_segment(tmp_path, long_reference):
    spec, expected = long_reference
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", _profile(tmp_path))
    try:
        wait_for(lambda: _segments(store) >= 8)
        (task,) = [t for r in _job_records(store) for t in r["tasks"]]
        subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
        out, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    logs = run_cli("logs", store, next(store.glob("units/kind=train/unit=*")).name[5:], "--all", check=True).stdout
    assert "resumed at step" in logs and "preempted" in logs
    assert len(_job_records(store)) == 1, "a requeue is the same job, not a new submission"
    assert digests(store) == expected


def test_time_limit_signal_checkpoints_and_requeues(tmp_path):
    # ~45 s of training: longer than the moment the time-limit signal arrives (due 5 s after the start with a 1-minute
    # limit and a 55 s signal delay; slurmctld delivers it within its ~30 s timer, though on a loaded machine it was
    # seen to miss it and end the job at its limit with SIGTERM instead), so the first attempt is cut short
    spec = tmp_path / "tlimit.toml"
    spec.write_text(
        spec_text(
            name="tlimit", seeds="[12]", model="small_cnn", epochs=200, segment_steps=25, stages=ONE_MODE
        ).replace("retries = 1", "retries = 2")
    )
    reference = start_cli("run", spec, "--store", tmp_path / "reference")  # uninterrupted, locally, meanwhile
    store = tmp_path / "store"
    proc = start_cli(
        "run",
        spec,
        "--store",
        store,
        "--executor",
        "slurm",
        "--profile",
        _profile(tmp_path, time_min=1, signal_delay_s=55),
    )
    try:
        out, _ = proc.communicate(timeout=500)
        ref_out, _ = reference.communicate(timeout=300)
    finally:
        proc.kill()
        reference.kill()
    assert proc.returncode == 0, out
    assert reference.returncode == 0, ref_out
    unit = next(store.glob("units/kind=train/unit=*"))
    states = [json.loads(p.read_text())["state"] for p in sorted((unit / "attempts").glob("*.json"))]
    assert "preempted" in states and states[-1] == "done", states
    logs = run_cli("logs", store, unit.name[5:], "--all", check=True).stdout
    assert "resumed at step" in logs
    if "signal 12" in logs:  # the warning signal came before the limit: checkpoint, and the job requeued itself
        assert "requeueing" in logs
        assert len(_job_records(store)) == 1, "the job requeued itself; nothing was submitted again"
    else:  # slurmctld's timer (~30 s) let the limit come first: its SIGTERM checkpointed, lowloss submitted again
        assert "signal 15: checkpoint written" in logs, logs
        assert len(_job_records(store)) == 2, "one job cut at its limit, one that resumed it"
    assert digests(store) == digests(tmp_path / "reference")


def test_scancel_shows_cancelled_and_run_again_resumes(tmp_path, long_reference):
    spec, expected = long_reference
    store = tmp_path / "store"
    profile = _profile(tmp_path)
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile)
    try:
        wait_for(lambda: _segments(store) >= 6)
        (task,) = [t for r in _job_records(store) for t in r["tasks"]]
        subprocess.run(["scancel", task], check=True)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=120)
        seen_after = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 1 and "cancelled" in out, out
    assert seen_after < 30, f"the coordinator noticed the cancel only after {seen_after:.0f} s"
    status = run_cli("status", store, "--units", check=True).stdout
    assert "CANCELLED" in status and "cancelled" in status
    again = run_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile)
    assert again.returncode == 0, again.stdout + again.stderr
    logs = "".join(p.read_text() for p in store.glob("units/kind=train/*/attempts/*.log"))
    assert "resumed at step" in logs
    assert digests(store) == expected


def test_raising_unit_on_slurm_is_failed_with_traceback_retried_others_fine(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="slurmfail",
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
    proc = run_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", _profile(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (unit,) = store.glob("units/kind=crashy/unit=*")
    logs = run_cli("logs", store, unit.name[5:], "--all", check=True).stdout
    assert logs.count("RuntimeError: boom on attempt") == 2 and "via slurm" in logs
    assert len(list(store.glob("units/kind=train/*/COMMIT.json"))) == 1
    status = run_cli("status", store, check=True).stdout
    assert "failed broken seed=7" in status


@pytest.mark.parametrize("lock", ["flock", "lease"])
def test_killed_coordinator_reattaches_and_submits_nothing_twice(tmp_path, long_reference, lock):
    """Under leases too: the killed coordinator's lease (a dead process of this host) is taken over at once, and the
    job it left running keeps its unit's lease, renewed, so the unit is waited for, not run twice."""
    spec, expected = long_reference
    store = tmp_path / "store"
    profile = _profile(tmp_path)
    locks = ["--lock", lock, "--lease-seconds", "5"]
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile, *locks)
    wait_for(lambda: _segments(store) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _segments(store) < 100  # the job keeps running without its coordinator
    if lock == "lease":
        assert (store / "coordinator.lease").exists() and list(store.glob("units/*/*/unit.lease"))
    again = run_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile, *locks)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "re-attached to scheduler jobs of 1 running unit" in again.stderr
    assert len(_job_records(store)) == 1 and sum(len(r["tasks"]) for r in _job_records(store)) == 1
    assert digests(store) == expected


def test_a_worker_killed_mid_unit_under_leases_is_taken_over_and_reaches_the_same_bytes(tmp_path, long_reference):
    spec, expected = long_reference
    store = tmp_path / "store"
    locks = ["--lock", "lease", "--lease-seconds", "5"]
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", _profile(tmp_path), *locks)
    try:
        assert sigkill_mid_unit(store, "kind=train/unit=*", lambda unit: segments_of(unit) >= 3)
        out, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert json.loads((store / "run.json").read_text())["lock"] == "lease"
    states = [json.loads(p.read_text())["state"] for p in sorted(store.glob("units/kind=train/*/attempts/0*.json"))]
    assert states == ["lost", "done"], states  # the second attempt took the dead worker's lease over
    assert not list(store.rglob("*.lease"))
    assert digests(store) == expected


def test_lowloss_cancel_stops_the_jobs_and_the_units_stay_resumable(tmp_path, long_reference):
    spec, expected = long_reference
    store = tmp_path / "store"
    profile = _profile(tmp_path)
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile)
    try:
        wait_for(lambda: _segments(store) >= 4)
        cancel = run_cli("cancel", store, check=True)
        assert "cancelled 1 Slurm job(s)" in cancel.stdout
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "cancelled" in out, out
    again = run_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", profile)
    assert again.returncode == 0, again.stdout + again.stderr
    assert digests(store) == expected


def test_a_killed_slurmd_leaves_the_unit_to_finish_or_be_retried(tmp_path, long_reference):
    """slurmd of the node running a unit is SIGKILLed mid-unit. The job's step outlives its slurmd and reports to
    slurmctld itself, so the unit finishes; the user sees the study end normally (a node whose slurmd stays down goes
    DOWN only after SlurmdTimeout, and a job lost with it is requeued and resumes from its checkpoint). The daemon is
    brought back afterwards, as an administrator would."""
    spec, expected = long_reference
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store, "--executor", "slurm", "--profile", _profile(tmp_path))
    try:
        unit = wait_for(lambda: next(iter(store.glob("units/kind=train/unit=*")), None), timeout=300)
        wait_for(lambda: len(list(unit.glob("segments/*.json"))) >= 2, timeout=300)
        job = json.loads(sorted((unit / "attempts").glob("[0-9]*.json"))[-1].read_text())["job_id"]
        node = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True).stdout.strip()
        assert node in ("n1", "n2"), (job, node)
        pids = subprocess.run(["pgrep", "-f", f"slurmd -N {node} "], capture_output=True, text=True).stdout.split()
        assert pids, f"no slurmd for {node}"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        out, _ = proc.communicate(timeout=900)
    finally:
        proc.kill()
        subprocess.run(["bash", str(REPO / "slurm" / "testcluster.sh"), "start"], capture_output=True, text=True)
    assert proc.returncode == 0, out
    assert digests(store) == expected


def test_submit_runs_the_coordinator_as_a_job_with_the_profiles_time_limit_and_setup(tmp_path):
    """Issue 14 item 13: `lowloss submit` takes the coordinator job's time limit and environment activation from the
    site profile; the job runs the study to the end through Slurm."""
    marker = tmp_path / "setup-ran"
    profile = _profile(tmp_path)
    profile.write_text(
        profile.read_text()
        + f'\n[coordinator]\ntime_min = 45\nmem_gb = 0.5\nsetup = ["echo activated > {marker}", "export X=1"]\n'
    )
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="submitted",
            seeds="[0]",
            stages='[[stages]]\nname = "m2m"\nkind = "toy_path"\nseeds = [0]\n'
            "iterations = 20\nsegment_iterations = 10\n",
        )
    )
    store = tmp_path / "store"
    output = tmp_path / "coordinator.out"
    proc = run_cli("submit", spec, "--store", store, "--profile", profile, "--output", output, check=True)
    job = proc.stdout.split("Slurm job ")[1].split()[0]
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "TimeLimit=00:45:00" in shown, shown
    wait_for(
        lambda: subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip() == "",
        timeout=300,
        interval=1,
    )
    assert marker.read_text().strip() == "activated"
    assert "1 unit(s) run now" in output.read_text(), output.read_text()
    assert len(list(store.glob("units/kind=toy_path/unit=*/COMMIT.json"))) == 1


def test_own_results_planner_on_slurm_with_coordinator_kills(tmp_path):
    """A planner that reads its own results (the `grow` stage) through Slurm jobs, the coordinator SIGKILLed twice."""
    profile = tmp_path / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 1\ntime_min = 30\nsignal_delay_s = 30\n')
    store = explore_with_kills(tmp_path, "--executor", "slurm", "--profile", str(profile))
    assert list((store / "jobs").glob("*.json"))  # the rounds went out as Slurm jobs


def test_landscape_surface_shards_through_slurm_give_the_local_surface(tmp_path):
    """Issue 12: a 2-D surface in 4 shards run as Slurm array tasks assembles to the locally computed surface."""
    store = surface_shards_match_local(tmp_path, "slurm", "--profile", str(_profile(tmp_path)))
    assert any(len(r["tasks"]) == 4 for r in _job_records(store)), "the 4 shards as one array"


@pytest.fixture(scope="module")
def autoneb_reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("anbref"))


def test_exploration_on_slurm_survives_kills_and_sends_the_star_as_one_array(tmp_path, autoneb_reference):
    """AutoNEB (issue 11): the exploration through Slurm, an edge's job SIGKILLed mid-cycle, the coordinator between
    edges; local digests, no edge twice, and the star's edges submitted as one array."""
    profile = tmp_path / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 1\ntime_min = 30\nsignal_delay_s = 30\n')
    spec, ref = autoneb_reference
    store = kill_mid_cycle_then_between_edges(
        tmp_path / "store", spec, ref, "--executor", "slurm", "--profile", str(profile)
    )
    losses = {}
    for unit in store.glob("units/kind=train/unit=*"):
        seed = json.loads((unit / "unit.json").read_text())["params"]["seed"]
        losses[seed] = json.loads((unit / "result.json").read_text())["final_train_loss"]
    best = min(losses, key=lambda s: (losses[s], s))
    pairs = {uid: json.loads((p / "unit.json").read_text())["params"]["pair"] for uid, p in edges(store).items()}
    star = {uid for uid, pair in pairs.items() if best in pair}
    records = [json.loads(p.read_text()) for p in sorted((store / "jobs").glob("*.json"))]
    arrays = [{u for us in r["tasks"].values() for u in us} for r in records]
    assert len(star) == 2 and star in arrays, (star, arrays)  # the star's two edges were one array
