"""Warm workers (issue 13): long-lived local workers and in-process Ray units write the bytes fresh processes write.

Every unit starts from a fresh process's global state; a worker keeps the datasets it loaded; a SIGKILLed worker takes
only its unit down, which resumes in a new worker; workers are replaced after a number of units."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EMIT_CONSUME_STAGES, cli_env, digests, run_cli, spec_text, start_cli, wait_for
from datafiles import write_mnist

ONE_MODE = """
    [[stages]]
    name = "modes"
    kind = "train"
"""


def _attempts(store: Path, kind: str = "train") -> list[dict]:
    out = []
    for rec in store.glob(f"units/kind={kind}/*/attempts/*.json"):
        if rec.name != "retries.json":
            out.append({**json.loads(rec.read_text()), "unit": rec.parent.parent.name})
    return sorted(out, key=lambda r: r["started"])


# ---------------------------------------------------------------------- fast: what a unit finds in a warm process


def test_process_state_puts_back_what_a_fresh_process_gives(tmp_path, monkeypatch):
    import torch

    from lowloss.orchestrator.runtime.process import ProcessState

    monkeypatch.chdir(tmp_path)
    state = ProcessState()
    saved = torch.get_default_dtype(), torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    try:
        os.environ["LOWLOSS_LEFT_BY_A_UNIT"] = "1"
        os.chdir("/")
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("medium")
        torch.use_deterministic_algorithms(True)
        threads = torch.get_num_threads()
        torch.set_num_threads(threads + 1)
        torch.manual_seed(0)
        first = torch.rand(4)
        state.restore()
        assert "LOWLOSS_LEFT_BY_A_UNIT" not in os.environ and os.getcwd() == str(tmp_path)
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
        assert not torch.backends.cuda.matmul.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
        assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == threads
        # the global generator is reseeded from the OS, as torch does at start-up: no seed a unit set survives
        assert torch.initial_seed() != 0 and not torch.equal(torch.rand(4), first)
    finally:
        torch.set_default_dtype(saved[0])
        torch.set_grad_enabled(True)
        torch.backends.cuda.matmul.allow_tf32 = saved[1]
        torch.set_float32_matmul_precision(saved[2])
        torch.use_deterministic_algorithms(False)


def test_dataset_cache_keeps_a_dataset_sees_a_replaced_file_and_stays_bounded(tmp_path):
    from lowloss.workers.data import DatasetCache

    root = write_mnist(tmp_path / "data")
    cache = DatasetCache(max_mb=64)
    first = cache.get("mnist", str(root), None, "cpu")
    assert cache.get("mnist", str(root), None, "cpu") is first and cache.last_hit
    digits = cache.get("digits", None, None, "cpu")
    assert not cache.last_hit and cache.get("digits", None, None, "cpu") is digits
    # a file replaced under the same name (new size and time) is read again
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8] = (data[8] + 1) % 10
    labels.write_bytes(bytes(data))
    os.utime(labels, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    again = cache.get("mnist", str(root), None, "cpu")
    assert again is not first and not cache.last_hit
    assert int(again.train_y[0]) == (int(first.train_y[0]) + 1) % 10
    # bounded: a dataset larger than the bound is not kept, and older ones make room for newer ones
    tiny = DatasetCache(max_mb=0.01)
    assert tiny.get("digits", None, None, "cpu") is not tiny.get("digits", None, None, "cpu")
    one = DatasetCache(max_mb=(digits.train_x.nbytes + digits.test_x.nbytes) / 2**20 + 0.1)
    one.get("digits", None, None, "cpu")
    one.get("mnist", str(root), None, "cpu")  # the older entry goes
    one.get("digits", None, None, "cpu")
    assert not one.last_hit and one.loads == 3


# ---------------------------------------------------------------------- slow: same digests as fresh processes


def _shortened(recipe: str) -> str:
    """A recipe with its training and paths cut short (same kinds and stages, a fraction of the steps)."""
    from lowloss.jobs import recipes

    text = recipes()[recipe].read_text()
    text = re.sub(r"^seeds = \[.*\]$", "seeds = [0, 1]", text, count=1, flags=re.M)
    text = re.sub(r"^epochs = \d+", "epochs = 1", text, flags=re.M)
    return re.sub(r"^iterations = \d+", "iterations = 6", text, flags=re.M)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["digits-default", "llpf-digits"])
def test_recipe_digests_are_the_same_with_warm_workers_and_fresh_processes(recipe, tmp_path):
    """Every kind of the two digits recipes (train, interpolate, m2m phases, m2o), cut short: warm workers (each runs
    many units of several kinds, the dataset kept between them) write the bytes fresh processes write."""
    spec = tmp_path / "spec.toml"
    spec.write_text(_shortened(recipe))
    run_cli("run", spec, "--store", tmp_path / "fresh", "--fresh-processes", check=True)
    run_cli("run", spec, "--store", tmp_path / "warm", check=True)
    expected = digests(tmp_path / "fresh")
    assert digests(tmp_path / "warm") == expected and len(expected) >= 3
    warm = _attempts(tmp_path / "warm", "*")
    assert len({r["pid"] for r in warm}) <= 2 < len(warm)  # --jobs 2: two workers ran every unit
    logs = "".join(p.read_text() for p in (tmp_path / "warm").glob("units/*/*/attempts/*.log"))
    assert "kept in memory from an earlier unit" in logs


def _planned_store(tmp_path: Path, name: str, text: str, data_root: str | None) -> tuple[Path, list[dict]]:
    """A store with its units written, as the coordinator writes them before it submits them; the units' tasks (what
    an executor hands a worker: id, kind, the inputs' kinds)."""
    from lowloss.orchestrator.engine.graph import plan_study
    from lowloss.orchestrator.runtime import UnitTask
    from lowloss.orchestrator.spec import parse_spec
    from lowloss.orchestrator.store import RunSettings, Store

    study = parse_spec(text, name)
    store = Store(tmp_path / name)
    store.init_study(study.name, study.text)
    store.write_run_settings(RunSettings(data_root, 0.0, "cpu", "local"))
    units = list(plan_study(study).units.values())
    for unit in units:
        store.write_unit(unit.record)
    return store.root, [UnitTask(u.id, u.kind).to_json() for u in units]


@pytest.mark.slow
def test_one_worker_running_units_of_two_datasets_writes_the_fresh_digests(tmp_path):
    """One warm worker runs a digits unit, an MNIST unit (real IDX files), then another digits unit (its dataset
    kept in memory): the stores' digests are those of fresh processes."""
    root = write_mnist(tmp_path / "data", n_train=64, n_test=16)
    digits_spec = spec_text(name="two-a", seeds="[0, 1]", epochs=1, stages=ONE_MODE)
    mnist_spec = spec_text(name="two-b", seeds="[0]", model="lenet5", epochs=1, stages=ONE_MODE).replace(
        'dataset = "digits"', 'dataset = "mnist"'
    )
    refs = {}
    for name, text, data_root in (("two-a", digits_spec, None), ("two-b", mnist_spec, str(root))):
        (tmp_path / f"{name}.toml").write_text(text)
        extra = ["--data-root", data_root] if data_root else []
        run_cli("run", tmp_path / f"{name}.toml", "--store", tmp_path / f"ref-{name}", "--fresh-processes", *extra)
        refs[name] = digests(tmp_path / f"ref-{name}")
    a, a_units = _planned_store(tmp_path, "two-a", digits_spec, None)
    b, b_units = _planned_store(tmp_path, "two-b", mnist_spec, str(root))
    read_fd, write_fd = os.pipe()
    worker = subprocess.Popen(
        [sys.executable, "-m", "lowloss.orchestrator.runtime.worker"],
        stdin=subprocess.PIPE,
        env=cli_env(LOWLOSS_WORKER_FD=str(write_fd)),
        pass_fds=(write_fd,),
        text=True,
    )
    os.close(write_fd)
    answers = os.fdopen(read_fd)
    try:
        for store, task in ((a, a_units[0]), (b, b_units[0]), (a, a_units[1])):
            assert worker.stdin is not None
            worker.stdin.write(json.dumps({"store": str(store), "task": task, "cpus": 1}) + "\n")
            worker.stdin.flush()
            answer = json.loads(answers.readline())
            assert answer["uid"] == task["uid"] and answer["state"] == "done", answer
        worker.stdin.close()
        assert worker.wait(60) == 0
    finally:
        worker.kill()
    assert digests(a) == refs["two-a"] and digests(b) == refs["two-b"]
    pids = {r["pid"] for r in _attempts(a) + _attempts(b)}
    assert pids == {worker.pid}
    last = next(r for r in _attempts(a) if r["unit"] == f"unit={a_units[1]['uid']}")
    assert "dataset digits: kept in memory from an earlier unit" in Path(last["log"]).read_text()


@pytest.mark.slow
def test_sigkilled_warm_worker_takes_only_its_unit_which_resumes_in_a_new_worker(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="warmkill", seeds="[0, 1]", model="small_cnn", epochs=3, segment_steps=2, stages=ONE_MODE
        ).replace("jobs = 2", "jobs = 1")
    )
    run_cli("run", spec, "--store", tmp_path / "fresh", "--fresh-processes", check=True)
    store = tmp_path / "warm"
    proc = start_cli("run", spec, "--store", store)
    try:

        def second_unit_running():
            recs = _attempts(store)
            if len(recs) == 2 and recs[0]["state"] == "done" and recs[1]["state"] == "running":
                unit = store / "units" / "kind=train" / recs[1]["unit"]
                if len(list((unit / "segments").glob("*.json"))) >= 3:
                    return recs
            return None

        first, second = wait_for(second_unit_running)
        assert first["pid"] == second["pid"]  # one warm worker ran the first unit and runs the second
        os.kill(second["pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    recs = _attempts(store)
    killed = [r for r in recs if r["unit"] == second["unit"]]
    assert [r["state"] for r in killed] == ["lost", "done"] and killed[1]["pid"] != second["pid"]
    assert "resumed at step" in Path(killed[1]["log"]).read_text()
    assert digests(store) == digests(tmp_path / "fresh")


@pytest.mark.slow
def test_warm_worker_is_replaced_after_its_units(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="recycle",
            stages="""
            [[stages]]
            name = "emit"
            kind = "emit"
            seeds = [0, 1, 2]
            """,
        ).replace("jobs = 2", "jobs = 1")
    )
    run_cli("run", spec, "--store", tmp_path / "store", "--worker-max-units", "2", check=True)
    pids = [r["pid"] for r in _attempts(tmp_path / "store", "emit")]
    assert len(pids) == 3 and pids[0] == pids[1] != pids[2]


def test_a_warm_process_hashes_each_units_inputs_again_and_catches_bit_rot(tmp_path):
    """A file corrupted in place between two units of one process (size, mtime and inode unchanged, as bit rot leaves
    them) is caught by the second unit, which the first unit's check would otherwise vouch for."""
    from lowloss.orchestrator.runtime import Node, UnitTask
    from lowloss.orchestrator.store import Store, split_ref

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="rot", stages=EMIT_CONSUME_STAGES))
    root = tmp_path / "store"
    run_cli("run", spec, "--store", root, check=True)
    store = Store(root)
    kinds = store.plan().kinds()
    (uid,) = [u for u, k in kinds.items() if k == "consume"]
    unit_dir = store.layout.unit_dir(uid, "consume")
    task = UnitTask(
        uid,
        "consume",
        tuple((split_ref(r)[0], kinds[split_ref(r)[0]]) for r in store.unit(uid, "consume").inputs.values()),
    )

    def run_again() -> str:
        for entry in unit_dir.iterdir():  # the unit as before it ran
            if entry.name != "unit.json":
                subprocess.run(["rm", "-rf", str(entry)], check=True)
        (outcome,) = node.run(root, [task], "local")
        return outcome.value

    node = Node()
    assert run_again() == "done"
    dirs_unit = split_ref(store.unit(uid, "consume").inputs["dirs"])[0]
    rotten = store.layout.unit_dir(dirs_unit, "emit") / "outputs" / "directions.safetensors"
    before = rotten.stat()
    with open(rotten, "r+b") as fh:  # in place: same inode, same size
        fh.seek(before.st_size - 3)
        byte = fh.read(1)
        fh.seek(before.st_size - 3)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.utime(rotten, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = rotten.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert run_again() == "failed"
    (record,) = store.attempts.records(uid, "consume")
    assert "outputs/directions.safetensors differs from the sha256" in (record.error or "")
