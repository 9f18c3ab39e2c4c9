"""The store's contracts: atomic writes, commit markers, readers that skip anything uncommitted, verify."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest
import torch
from conftest import run_cli, spec_text

from lowloss.orchestrator.store import (
    AttemptRecord,
    AttemptState,
    Store,
    StoredState,
    UnitRecord,
    UnitWriter,
    Verification,
    atomic,
    unit_id,
    verify_unit,
)
from lowloss.orchestrator.store.atomic import StoreFullError, atomic_write_bytes


def _writer(tmp_path) -> tuple[Store, UnitWriter]:
    store = Store(tmp_path / "store")
    store.init_study("s", "")
    record = UnitRecord(unit_id("train", 1, {"seed": 0}, {}), "train", 1, {"seed": 0}, {})
    store.write_unit(record)
    return store, UnitWriter(store.layout, record)


def test_segments_become_visible_only_with_their_marker(tmp_path):
    store, w = _writer(tmp_path)
    w.write_segment(0, {"steps": [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}]}, {"w": torch.ones(3)})
    w.write_segment(1, {"steps": [{"step": 2, "loss": 0.25}]})
    assert store.read.rows(w.record.id, "train", "steps").column("loss").to_pylist() == [1.0, 0.5, 0.25]
    # a segment whose marker was never written (crash between data and marker) is invisible
    (w.dir / "segments" / "000001.json").unlink()
    assert store.read.rows(w.record.id, "train", "steps").column("loss").to_pylist() == [1.0, 0.5]
    assert [i for i, _ in store.read.points(w.record.id, "train")] == [0]


def test_rewriting_a_segment_gives_identical_bytes(tmp_path):
    store, w = _writer(tmp_path)
    rows = {"steps": [{"step": i, "loss": 1.0 / (i + 1)} for i in range(50)]}
    w.write_segment(0, rows, {"w": torch.arange(6.0)})
    first = {p.name: p.read_bytes() for p in w.dir.rglob("*.parquet")} | {
        "pts": (w.dir / "points/000000.safetensors").read_bytes()
    }
    w.write_segment(0, rows, {"w": torch.arange(6.0)})
    second = {p.name: p.read_bytes() for p in w.dir.rglob("*.parquet")} | {
        "pts": (w.dir / "points/000000.safetensors").read_bytes()
    }
    assert first == second


def test_uncommitted_unit_has_no_result_and_commit_is_last(tmp_path):
    store, w = _writer(tmp_path)
    w.write_segment(0, {"steps": [{"step": 0, "loss": 1.0}]})
    uid = w.record.id
    assert store.read.result(uid, "train") is None and store.state(uid, "train") is StoredState.PENDING
    digest = w.commit({"final": 1.0}, {"final": {"w": torch.zeros(2)}})
    assert store.read.result(uid, "train") == {"final": 1.0} and store.state(uid, "train") is StoredState.DONE
    assert verify_unit(store.read, uid, "train") == Verification(digest, [], [])


def test_checkpoint_roundtrip_and_corrupt_checkpoint_is_ignored(tmp_path):
    _, w = _writer(tmp_path)
    for i in range(5):
        w.write_segment(i, {"steps": [{"step": i}]})
    w.write_checkpoint(3, {"a": torch.tensor([1.0, 2.0])}, {"step": 40})
    w.write_checkpoint(4, {"a": torch.tensor([3.0])}, {"step": 50})
    tensors, meta, segment = w.read_checkpoint()
    w.settle()
    assert segment == 4 and meta == {"step": 50} and tensors["a"].tolist() == [3.0]
    assert len(list((w.dir / "checkpoint").glob("ckpt-*"))) == 1
    path = w.dir / "checkpoint" / "ckpt-000004.safetensors"
    path.write_bytes(b"g" * path.stat().st_size)  # same size, unreadable content
    assert w.read_checkpoint() is None and "sha256" in w.discarded_checkpoint


def test_checkpoint_with_one_flipped_tensor_byte_is_discarded(tmp_path):
    """A flipped byte inside a tensor still loads as safetensors; only the recorded sha256 catches it."""
    _, w = _writer(tmp_path)
    w.write_segment(0, {"steps": [{"step": 0}]})
    w.write_checkpoint(0, {"a": torch.arange(64, dtype=torch.float32)}, {"step": 1})
    path = w.dir / "checkpoint" / "ckpt-000000.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    from safetensors.torch import load_file

    assert load_file(str(path))["a"].shape == (64,)  # the damage is invisible to the loader
    assert w.read_checkpoint() is None
    assert "differs from the sha256" in w.discarded_checkpoint


def test_checkpoint_ahead_of_the_committed_segments_is_discarded(tmp_path):
    _, w = _writer(tmp_path)
    w.write_checkpoint(2, {"a": torch.zeros(1)}, {"step": 1})
    assert w.read_checkpoint() is None and "not committed" in w.discarded_checkpoint


def test_disk_full_mid_write_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"committed")
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(StoreFullError, match="disk full or quota exceeded"):
        atomic_write_bytes(target, b"new content")
    monkeypatch.setattr(atomic.os, "write", real_write)
    assert target.read_bytes() == b"committed"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


@pytest.mark.slow
def test_half_written_files_are_invisible_to_readers_and_status_and_verify_reports_them(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(name="half", seeds="[0]", epochs=2, stages='[[stages]]\nname = "modes"\nkind = "train"\n')
    )
    store_dir = tmp_path / "store"
    run_cli("run", spec, "--store", store_dir, check=True)
    store = Store(store_dir)
    ((uid, kind),) = store.layout.unit_dirs()
    unit = store.layout.unit_dir(uid, kind)
    rows_before = store.read.rows(uid, kind, "steps").to_pylist()
    status_before = run_cli("status", store_dir, check=True).stdout
    good = unit / "steps" / "000000.parquet"
    # 1: a truncated Parquet of a segment that never got its marker
    (unit / "steps" / "000050.parquet").write_bytes(good.read_bytes()[:40])
    # 2: the temp file of an interrupted atomic write
    (unit / "evals" / ".tmp-000051.parquet.x1y2").write_bytes(b"partial")
    # 3: a complete segment file without its marker
    shutil.copy(good, unit / "steps" / "000052.parquet")
    assert store.read.rows(uid, kind, "steps").to_pylist() == rows_before
    assert run_cli("status", store_dir, check=True).stdout == status_before
    proc = run_cli("verify", store_dir)
    assert proc.returncode == 0, proc.stdout
    assert "steps/000050.parquet: truncated or unreadable Parquet without a marker" in proc.stdout
    assert "evals/.tmp-000051.parquet.x1y2: temporary file of an interrupted write" in proc.stdout
    assert "steps/000052.parquet: segment without its marker" in proc.stdout
    # corrupting a committed file is reported as corruption (exit 1)
    good.write_bytes(good.read_bytes()[:-10])
    proc = run_cli("verify", store_dir)
    assert proc.returncode == 1 and "CORRUPT" in proc.stdout and "steps/000000.parquet" in proc.stdout
    # a unit without its commit marker is not done: status shows it not done and it has no result
    (unit / "COMMIT.json").unlink()
    assert store.read.result(uid, kind) is None
    assert "done" not in run_cli("status", store_dir, "--units", check=True).stdout.split(uid)[1].splitlines()[0]


def _mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


@pytest.mark.slow
def test_real_full_disk_mid_run_fails_clearly_keeps_segments_and_resumes(tmp_path):
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("needs permission to mount a tmpfs (root), to fill a real file system")
    try:
        spec = tmp_path / "spec.toml"
        spec.write_text(
            spec_text(
                name="full",
                seeds="[0]",
                model="small_cnn",
                epochs=20,
                segment_steps=2,
                stages='[[stages]]\nname = "modes"\nkind = "train"\n',
            ).replace("retries = 1", "retries = 0")
        )
        store_dir = mnt / "store"
        proc = run_cli("run", spec, "--store", store_dir)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        status = run_cli("status", store_dir, check=True).stdout
        assert "no space left (disk full or quota exceeded)" in status and "committed segment is intact" in status
        store = Store(store_dir)
        ((uid, kind),) = store.layout.unit_dirs()
        assert len(store.read.segments(uid, kind)) > 0
        verify = run_cli("verify", store_dir)
        assert "CORRUPT" not in verify.stdout
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        assert run_cli("resume", store_dir).returncode == 0
        assert store.read.is_committed(uid, kind)
        logs = store.layout.attempts(uid, kind).glob("*.log")
        assert "resumed at step" in "".join(p.read_text() for p in logs)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_store_of_another_format_is_refused_by_every_command_with_what_to_do(tmp_path):
    store = tmp_path / "old"
    store.mkdir()
    (store / "study.json").write_text('{"format": 1, "study": "t"}')
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="t"))
    for args in (
        ["run", spec, "--store", store],
        ["resume", store],
        ["status", store],
        ["verify", store],
        ["report", store],
        ["show", store, "ab"],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "has format 1 and this lowloss reads format 2" in proc.stderr and "new store" in proc.stderr, args
        assert "Traceback" not in proc.stderr


def test_a_unit_killed_between_its_commit_and_its_closing_record_reads_as_done(tmp_path):
    """The commit marker names the attempt that made it; a "running" record of that attempt is shown as done."""
    store, w = _writer(tmp_path)
    uid = w.record.id
    store.attempts.write(uid, "train", AttemptRecord(1, AttemptState.FAILED))
    store.attempts.write(uid, "train", AttemptRecord(2, AttemptState.RUNNING))
    assert store.attempts.records(uid, "train")[-1].state is AttemptState.RUNNING  # not committed: running (or lost)
    w.commit({"final": 1.0}, {"final": {"w": torch.zeros(2)}}, attempt=2)
    assert [a.state for a in store.attempts.records(uid, "train")] == [AttemptState.FAILED, AttemptState.DONE]
    record_file = store.attempts.files(uid, "train", 2)[0]
    assert json.loads(record_file.read_text())["state"] == "running"
    assert store.attempts.close_committed(uid, "train") == 2  # the next run writes the closing record
    closed = json.loads(record_file.read_text())
    commit = store.read.commit(uid, "train")
    assert commit is not None and closed["state"] == "done" and closed["finished"] == commit.committed
    assert store.attempts.close_committed(uid, "train") is None  # once
    store.attempts.write(uid, "train", AttemptRecord(3, AttemptState.RUNNING))  # a later attempt is not the commit's
    assert store.attempts.records(uid, "train")[-1].state is AttemptState.RUNNING
    assert store.attempts.close_committed(uid, "train") is None
