"""Fault injection (-m faults): a byte flipped in each kind of store file is caught by `verify` (exit 1, naming the
file), no reader returns a value from it, and `resume --repair` restores digests equal to a clean run; a resume
checkpoint with one flipped tensor byte is discarded and the unit still writes the bytes of an uninterrupted run."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from conftest import EMIT_CONSUME_STAGES, digests, run_cli, spec_text

from lowloss.orchestrator.store import DamagedError, Store, StoredState

pytestmark = pytest.mark.faults

STAGES = EMIT_CONSUME_STAGES


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="faults", stages=STAGES))
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return spec, store, digests(store)


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x20 if 32 <= data[i] < 127 and chr(data[i]).isalnum() else 0x01
    path.write_bytes(bytes(data))


def _emit_unit(store: Path) -> tuple[str, Path]:
    s = Store(store)
    (uid,) = [u for u, k in s.layout.unit_dirs() if k == "emit" and s.unit(u, k).params["seed"] == 0]
    return uid, s.layout.unit_dir(uid, "emit")


READERS = {
    "result.json": lambda s, uid: s.read.result(uid, "emit"),
    "COMMIT.json": lambda s, uid: s.read.result(uid, "emit"),
    "unit.json": lambda s, uid: s.unit(uid, "emit"),
    "final.safetensors": lambda s, uid: s.read.tensors(uid, "emit", "final"),
    "outputs/directions.safetensors": lambda s, uid: s.read.tensors(uid, "emit", "directions"),
    "rows/000000.parquet": lambda s, uid: s.read.rows(uid, "emit", "rows"),
    "points/000000.safetensors": lambda s, uid: list(s.read.points(uid, "emit")),
    "segments/000000.json": lambda s, uid: s.read.rows(uid, "emit", "rows"),
}


@pytest.mark.parametrize("rel", sorted(READERS))
def test_a_flipped_byte_in_any_store_file_is_caught_never_read_and_repaired(clean, tmp_path, rel):
    spec, clean_store, clean_digests = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    uid, unit_dir = _emit_unit(store)
    _flip(unit_dir / rel)

    verify = run_cli("verify", store)
    assert verify.returncode == 1, verify.stdout
    named = rel if rel not in ("unit.json", "COMMIT.json") else rel.split("/")[-1]
    assert any(uid in line and named in line for line in verify.stdout.splitlines() if "CORRUPT" in line), verify.stdout
    with pytest.raises(DamagedError):
        READERS[rel](Store(store), uid)

    if rel == "COMMIT.json":  # a broken commit marker is no commit: status says so, a plain resume does not go on
        assert "damaged" in run_cli("status", store, check=True).stdout
        blocked = run_cli("resume", store)
        assert blocked.returncode == 1 and "--repair" in blocked.stdout + blocked.stderr

    repaired = run_cli("resume", store, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert digests(store) == clean_digests
    assert (store / "damaged").is_dir()


@pytest.mark.parametrize("content", [b"", b"{trunc", b"\x00garbage\xff", b'{"digest": "abc"}'])
def test_a_garbage_or_truncated_commit_marker_is_no_commit(clean, tmp_path, content):
    _, clean_store, clean_digests = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    uid, unit_dir = _emit_unit(store)
    (unit_dir / "COMMIT.json").write_bytes(content)
    s = Store(store)
    assert not s.read.is_committed(uid, "emit") and s.state(uid, "emit") is StoredState.DAMAGED
    assert run_cli("verify", store).returncode == 1
    show = run_cli("show", store, uid[:8])  # damage stops every reader the same way: one line, exit 2
    assert show.returncode == 2 and "COMMIT.json" in show.stderr and "--repair" in show.stderr
    assert "Traceback" not in show.stderr and not show.stdout
    assert run_cli("resume", store, "--repair").returncode == 0 and digests(store) == clean_digests


def test_leftover_space_reserves_are_reported_by_verify(clean, tmp_path):
    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    _, unit_dir = _emit_unit(store)
    (unit_dir / "attempts" / "007.reserve").write_bytes(b"\0" * 16)
    verify = run_cli("verify", store)
    assert verify.returncode == 0 and "007.reserve" in verify.stdout


def test_a_checkpoint_with_a_flipped_tensor_byte_is_discarded_and_the_unit_writes_the_same_bytes(tmp_path, monkeypatch):
    """In-process: a training unit is stopped by a signal after its second segment (checkpoint written), one byte of a
    tensor in the checkpoint is flipped, and the resumed unit must neither load it nor differ from a clean run."""
    from lowloss.orchestrator.engine.graph import plan_study
    from lowloss.orchestrator.runtime import StopSignals, UnitOutcome, UnitTask
    from lowloss.orchestrator.runtime.attempt import run_unit
    from lowloss.orchestrator.spec import parse_spec
    from lowloss.orchestrator.store import RunSettings, UnitWriter, verify_unit

    text = spec_text(
        name="ckpt", seeds="[0]", epochs=2, segment_steps=5, stages='[[stages]]\nname = "modes"\nkind = "train"\n'
    )
    study = parse_spec(text)
    (unit,) = plan_study(study).stage_units("modes")

    def fresh(name: str) -> Store:
        s = Store(tmp_path / name)
        s.init_study(study.name, study.text)
        s.write_run_settings(RunSettings(checkpoint_seconds=3600.0, device="cpu"))
        s.write_unit(unit.record)
        return s

    task = UnitTask(unit.id, unit.kind)
    clean = fresh("clean")
    assert run_unit(clean, task) is UnitOutcome.DONE

    hurt = fresh("hurt")
    real_write = UnitWriter.write_segment

    def stop_after_second(self, index, *a, **kw):
        real_write(self, index, *a, **kw)
        if index == 1:
            StopSignals.received = signal.SIGTERM  # as the handler would: checkpoint at this boundary, stop

    monkeypatch.setattr(UnitWriter, "write_segment", stop_after_second)
    try:
        assert run_unit(hurt, task) is UnitOutcome.PREEMPTED
    finally:
        StopSignals.received = None
    monkeypatch.setattr(UnitWriter, "write_segment", real_write)
    ckpt_dir = hurt.layout.unit_dir(unit.id, unit.kind) / "checkpoint"
    latest = json.loads((ckpt_dir / "latest.json").read_text())
    _flip(ckpt_dir / latest["file"], offset=-3)  # inside the last tensor's data: still loads as safetensors

    assert run_unit(hurt, task) is UnitOutcome.DONE
    last = hurt.attempts.records(unit.id, unit.kind)[-1]
    assert any("discarded" in note and "sha256" in note for note in last.notes), last
    assert verify_unit(hurt.read, unit.id, unit.kind).digest == verify_unit(clean.read, unit.id, unit.kind).digest


TOY = """
    [[stages]]
    name = "m2m"
    kind = "toy_path"
    seeds = [0]
    iterations = 40
    segment_iterations = 20
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A finished toy_path store: rows, points and a final state that `report` draws figures from."""
    tmp = tmp_path_factory.mktemp("toy")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="toy", seeds="[0]", stages=TOY))
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return store


def _toy_copy(toy: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    store = tmp_path / "store"
    shutil.copytree(toy, store, symlinks=True)
    s = Store(store)
    ((uid, kind),) = s.layout.unit_dirs()
    return store, uid, s.layout.unit_dir(uid, kind)


def test_report_and_the_api_refuse_a_segment_file_with_a_flipped_byte_of_the_same_size(toy, tmp_path):
    """The size agrees with the marker, only the sha256 does not: `report` (figures) exits 2 naming the unit, the file
    and the repair, and the api raises DamagedError."""
    from lowloss.orchestrator.report.api import open_study

    store, uid, unit_dir = _toy_copy(toy, tmp_path)
    intact = (unit_dir / "path/000000.parquet").read_bytes()
    _flip(unit_dir / "path/000000.parquet")
    assert (unit_dir / "path/000000.parquet").stat().st_size == len(intact)

    report = run_cli("report", store, "--out", tmp_path / "report")
    err = report.stderr.strip()
    assert report.returncode == 2, report.stdout + report.stderr
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert uid in err and "path/000000.parquet" in err and f"lowloss resume {store} --repair" in err
    assert not (tmp_path / "report" / "figures").exists() or not any((tmp_path / "report" / "figures").glob("*.png"))

    study = open_study(store)
    for read in (
        lambda: study.rows("m2m", "path"),
        lambda: study.unit_rows(uid, "path", ["iteration"]),
        lambda: study.column_names("m2m", "path"),
    ):
        with pytest.raises(DamagedError, match="path/000000.parquet"):
            read()
    (unit_dir / "path/000000.parquet").write_bytes(intact)  # put back: read again
    assert study.rows("m2m", "path").num_rows > 0


@pytest.mark.parametrize("rel", ["points/000001.safetensors", "final.safetensors"])
def test_the_api_refuses_tensors_with_a_flipped_byte_of_the_same_size(toy, tmp_path, rel):
    from lowloss.orchestrator.report.api import open_study

    store, uid, unit_dir = _toy_copy(toy, tmp_path)
    study = open_study(store)
    assert study.final_tensors(uid) and list(study.points(uid))  # intact: read (and hashed once)
    _flip(unit_dir / rel, offset=-3)  # inside the last tensor's data: still a readable safetensors file
    reader = (lambda: list(study.points(uid))) if rel.startswith("points/") else (lambda: study.final_tensors(uid))
    with pytest.raises(DamagedError, match=rel):
        reader()


def test_a_downstream_unit_never_uses_a_damaged_input(clean, tmp_path):
    """A committed input whose rows file has a flipped byte (its unit still shows done): the unit reading it fails
    naming the file and the repair, instead of computing from it; `--repair` runs both again."""
    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    s = Store(store)
    ((consumer, _),) = [(u, k) for u, k in s.layout.unit_dirs() if k == "consume"]
    point_input = s.unit(consumer, "consume").inputs["point"].partition(":")[0]
    _flip(s.layout.unit_dir(point_input, "emit") / "rows/000000.parquet")
    shutil.rmtree(s.layout.unit_dir(consumer, "consume"))  # the consumer must run again, reading the damaged input

    resumed = run_cli("resume", store, "--retries", "0")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert not s.read.is_committed(consumer, "consume")
    errors = [a.error or "" for a in s.attempts.records(consumer, "consume")]
    assert errors and all("rows/000000.parquet" in e and "--repair" in e for e in errors), errors
    # until verify/repair
    assert s.state(consumer, "consume") is StoredState.FAILED and s.state(point_input, "emit") is StoredState.DONE
    assert run_cli("resume", store, "--repair").returncode == 0
    assert s.read.is_committed(consumer, "consume") and s.read.result(consumer, "consume")["rows"] == 2


def test_a_garbage_plan_is_an_error_until_resume_plans_again(clean, tmp_path):
    from lowloss.orchestrator.store import StoreError

    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    for garbage in (b"", b"\x00garbage\xff", b'{"stages": [1]}', b"[]", b'{"stages": [{"name": "a"}]}'):
        (store / "plan.json").write_bytes(garbage)
        with pytest.raises(StoreError, match="plan.json is damaged"):
            Store(store).plan()
    (store / "plan.json").write_bytes(b"{trunc")
    for command in ("status", "report"):
        proc = run_cli(command, store)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert f"{store / 'plan.json'} is damaged" in err and f"lowloss resume {store}" in err
    resumed = run_cli("resume", store)  # the coordinator plans again and rewrites plan.json, reusing every unit
    assert resumed.returncode == 0 and "0 unit(s) run now" in resumed.stdout, resumed.stdout
    assert [stage.name for stage in Store(store).plan().stages] == ["a", "b", "both"]


def test_two_units_with_their_files_swapped_are_damage_never_each_others_data(clean, tmp_path):
    """Every file of two units swapped except unit.json: each COMMIT.json still matches the files beside it, but it
    names the other unit (and another unit.json), so no reader takes seed 3's data for seed 0's."""
    _, clean_store, clean_digests = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    s = Store(store)
    a, b = sorted((s.unit(u, k).params["seed"], u) for u, k in s.layout.unit_dirs() if k == "emit")
    dir_a, dir_b = s.layout.unit_dir(a[1], "emit"), s.layout.unit_dir(b[1], "emit")
    for entry in sorted(dir_a.iterdir()):
        if entry.name not in ("unit.json", "attempts", "unit.lock"):
            swap = tmp_path / "swap"
            entry.rename(swap)
            (dir_b / entry.name).rename(entry)
            swap.rename(dir_b / entry.name)

    for uid in (a[1], b[1]):
        with pytest.raises(DamagedError, match="belongs to unit"):
            s.read.result(uid, "emit")
        assert s.state(uid, "emit") is StoredState.DAMAGED
        show = run_cli("show", store, uid[:10])
        assert "damaged" in show.stdout + show.stderr and "Traceback" not in show.stderr
    results = run_cli("results", store, "--stage", "a")
    assert results.returncode == 2 and "COMMIT.json" in results.stderr and "--repair" in results.stderr
    assert "Traceback" not in results.stderr
    verify = run_cli("verify", store)
    assert verify.returncode == 1
    corrupt = [line for line in verify.stdout.splitlines() if "CORRUPT" in line]
    assert all(any(u in line for line in corrupt) for u in (a[1], b[1])) and len(corrupt) == len(set(corrupt))
    consume, _ = _consume_unit(store)  # it stands on both: named, with the repair
    assert any(consume in line and "--repair" in line for line in verify.stdout.splitlines() if "INPUT GONE" in line)
    assert run_cli("resume", store, "--repair").returncode == 0 and digests(store) == clean_digests


def test_a_marker_without_its_checksum_or_with_a_changed_time_is_damage(clean, tmp_path):
    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    uid, unit_dir = _emit_unit(store)
    marker = json.loads((unit_dir / "COMMIT.json").read_text())
    marker["committed"] += 1.0  # a field no file is checked against
    (unit_dir / "COMMIT.json").write_text(json.dumps(marker))
    with pytest.raises(DamagedError, match="checksum"):
        Store(store).read.commit(uid, "emit")
    del marker["checksum"]
    (unit_dir / "COMMIT.json").write_text(json.dumps(marker))
    with pytest.raises(DamagedError, match="checksum"):
        Store(store).read.commit(uid, "emit")


# ---------------------------------------------------------------------- links: nothing leaves the store


def _elsewhere(tmp_path: Path) -> Path:
    target = tmp_path / "elsewhere"
    target.mkdir()
    return target


def _consume_unit(store: Path) -> tuple[str, Path]:
    s = Store(store)
    (uid,) = [u for u, k in s.layout.unit_dirs() if k == "consume"]
    return uid, s.layout.unit_dir(uid, "consume")


@pytest.mark.parametrize("name", ["logs", "damaged", "jobs"])
def test_a_store_level_folder_that_is_a_link_is_refused_before_anything_is_written(clean, tmp_path, name):
    _, clean_store, clean_digests = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    elsewhere = _elsewhere(tmp_path)
    shutil.rmtree(store / name, ignore_errors=True)
    (store / name).symlink_to(elsewhere)
    _flip(_emit_unit(store)[1] / "result.json")  # --repair would move this unit into damaged/
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir() if not p.is_symlink()}
    repaired = run_cli("resume", store, "--repair")
    assert repaired.returncode == 2, repaired.stdout + repaired.stderr
    assert f"{store / name} is a symbolic link" in repaired.stderr and "remove the link" in repaired.stderr
    assert "Traceback" not in repaired.stderr and list(elsewhere.iterdir()) == []
    after = {p.name: p.stat().st_mtime_ns for p in store.iterdir() if not p.is_symlink()}
    assert after == before and _emit_unit(store)[1].is_dir()  # nothing written, not even the coordinator's files
    (store / name).unlink()
    assert run_cli("resume", store, "--repair").returncode == 0 and digests(store) == clean_digests


@pytest.mark.parametrize("name", ["attempts", "unit.lock", "checkpoint"])
def test_a_link_in_a_unit_directory_is_refused_once_and_costs_no_attempt(clean, tmp_path, name):
    _, clean_store, clean_digests = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    elsewhere = _elsewhere(tmp_path)
    uid, unit_dir = _consume_unit(store)
    for entry in unit_dir.iterdir():  # the unit as it was before it ran: only its record
        if entry.name != "unit.json":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (unit_dir / name).symlink_to(elsewhere / name if name == "unit.lock" else elsewhere)
    resumed = run_cli("resume", store)
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    assert f"{unit_dir / name} is a symbolic link" in resumed.stderr and "Traceback" not in resumed.stderr
    assert list(elsewhere.iterdir()) == []
    assert "without a word" not in resumed.stdout + resumed.stderr
    (unit_dir / name).unlink()
    assert run_cli("resume", store).returncode == 0 and digests(store) == clean_digests
    (record,) = Store(store).attempts.records(uid, "consume")  # the refusal spent no attempt
    assert record.state.value == "done"


def test_a_study_leaves_no_temporary_file_of_a_killed_write_behind(clean, tmp_path):
    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store, symlinks=True)
    uid, unit_dir = _consume_unit(store)
    shutil.rmtree(unit_dir / "attempts")
    (unit_dir / "COMMIT.json").unlink()
    (unit_dir / "attempts").mkdir()
    (unit_dir / "attempts" / ".tmp-001.json.abc123").write_text('{"attempt": 1')  # a kill mid-write of a record
    (unit_dir / ".tmp-result.json.def456").write_text("{")
    assert run_cli("resume", store).returncode == 0
    left = [p.relative_to(store).as_posix() for p in store.rglob(".tmp-*")]
    assert left == []
