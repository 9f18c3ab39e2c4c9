"""Issue 10, store hygiene and security at the edges: read-only stores (item 6), symlinks inside unit directories
(12), unit-id arguments (13), `lowloss logs` (14), file modes and the umask (15), submitit's pickles (16)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cli_env, spec_text

from lowloss.orchestrator.cli import main
from lowloss.orchestrator.store import Store, UnitRecord, UnitWriter, atomic
from lowloss.orchestrator.store.atomic import (
    StoreReadOnlyError,
    SymlinkRefused,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    check_writable,
    open_nofollow,
)

CRASHY = '[[stages]]\nname = "c"\nkind = "crashy"\nseeds = [0, 1]\nfail_attempts = 0\n'


@pytest.fixture(scope="module")
def _committed_study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("committed")
    (folder / "c.toml").write_text(spec_text(stages=CRASHY))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lowloss.orchestrator.cli",
            "run",
            str(folder / "c.toml"),
            "--store",
            str(folder / "store"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder


@pytest.fixture
def done_store(_committed_study, tmp_path) -> Path:
    """A committed two-unit study (the fast `crashy` test kind), a fresh copy per test."""
    shutil.copy(_committed_study / "c.toml", tmp_path / "c.toml")
    shutil.copytree(_committed_study / "store", tmp_path / "store", symlinks=True)
    return tmp_path / "store"


def _writer(tmp_path) -> tuple[Store, UnitWriter]:
    store = Store(tmp_path / "store")
    store.init_study("s", "")
    record = UnitRecord("ab" * 10, "train", 1, {"seed": 0}, {})
    store.write_unit(record)
    return store, UnitWriter(store.layout, record)


def _precious(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("ckpt-000000.safetensors", "latest.json", "keep.txt"):
        (folder / name).write_text("precious")
    return folder


def _intact(folder: Path) -> bool:
    return sorted(p.name for p in folder.iterdir()) == ["ckpt-000000.safetensors", "keep.txt", "latest.json"] and all(
        p.read_text() == "precious" for p in folder.iterdir()
    )


# ---------------------------------------------------------------------- item 12: symlinks inside a unit directory


def test_commit_refuses_to_delete_through_a_symlinked_checkpoint_dir(tmp_path):
    _, w = _writer(tmp_path)
    w.write_checkpoint(0, {"w": torch.ones(2)}, {"step": 1})
    outside = _precious(tmp_path / "outside")
    shutil.rmtree(w.dir / "checkpoint")
    (w.dir / "checkpoint").symlink_to(outside)
    with pytest.raises(SymlinkRefused, match="checkpoint is a symbolic link.*remove the link"):
        w.commit({"value": 1.0})
    assert _intact(outside) and not (w.dir / "COMMIT.json").exists()


def test_checkpoint_write_refuses_a_symlinked_checkpoint_dir(tmp_path):
    _, w = _writer(tmp_path)
    outside = _precious(tmp_path / "outside")
    (w.dir / "checkpoint").symlink_to(outside)
    with pytest.raises(SymlinkRefused, match="symbolic link"):
        w.write_checkpoint(1, {"w": torch.ones(2)}, {"step": 2})
    w.settle()
    assert _intact(outside)


def test_superseded_checkpoint_that_is_a_link_is_removed_as_a_link(tmp_path):
    _, w = _writer(tmp_path)
    target = tmp_path / "outside.safetensors"
    target.write_text("precious")
    (w.dir / "checkpoint").mkdir()
    (w.dir / "checkpoint" / "ckpt-000000.safetensors").symlink_to(target)
    w.write_checkpoint(1, {"w": torch.ones(2)}, {"step": 2})
    w.settle()
    assert sorted(p.name for p in (w.dir / "checkpoint").iterdir()) == ["ckpt-000001.safetensors", "latest.json"]
    assert target.read_text() == "precious"
    w.commit({"value": 1.0})
    assert not (w.dir / "checkpoint").exists() and target.read_text() == "precious"


@pytest.mark.parametrize("linked", ["checkpoint", "checkpoint/sub"])
def test_atomic_writes_inside_a_unit_refuse_links_on_the_way(tmp_path, linked):
    unit = tmp_path / "unit"
    unit.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    link = unit / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    for write in (
        lambda p: atomic_write_bytes(p, b"x", inside=unit),
        lambda p: atomic_write_json(p, {}, inside=unit),
        lambda p: atomic_save_tensors(p, {"w": torch.ones(1)}, inside=unit),
    ):
        with pytest.raises(SymlinkRefused):
            write(link / "f")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("mode", ["wb", "ab", "a"])
def test_open_nofollow_refuses_a_link_at_the_file_or_on_the_way(tmp_path, mode):
    """The helper for the runtime's plain writes (attempt log, space reserve): never through a link."""
    unit = tmp_path / "unit"
    (unit / "attempts").mkdir(parents=True)
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0")
    (unit / "attempts" / "001.reserve").symlink_to(target)
    (unit / "linked").symlink_to(tmp_path)
    for path in (unit / "attempts" / "001.reserve", unit / "linked" / "f.log"):
        with pytest.raises(SymlinkRefused, match="symbolic link"):
            open_nofollow(unit, path, mode)
    assert target.read_text() == "root:x:0:0" and not (tmp_path / "f.log").exists()
    with open_nofollow(unit, unit / "attempts" / "001.log", mode) as fh:
        fh.write(b"ok" if "b" in mode else "ok")
    with open_nofollow(unit, unit / "attempts" / "001.log", "ab") as fh:
        fh.write(b"!")
    assert (unit / "attempts" / "001.log").read_text() == "ok!"


# ---------------------------------------------------------------------- item 13: unit ids are hex prefixes


@pytest.mark.parametrize("arg", ["*", "?1b7", "[0-9]*", "**/unit=*", "../x", "", "AB", "0x1", " 1"])
@pytest.mark.parametrize("command", ["show", "logs", "cancel"])
def test_unit_arguments_are_hex_prefixes_only(done_store, capsys, command, arg):
    rc = main([command, str(done_store), arg])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert repr(arg) in err and "hex digits 0-9a-f" in err


def test_a_hex_prefix_still_resolves(done_store, capsys):
    uid, kind = Store(done_store).layout.unit_dirs()[0]
    assert main(["show", str(done_store), uid[:6]]) == 0
    assert f"unit {uid}" in capsys.readouterr().out


# ---------------------------------------------------------------------- item 14: logs only from inside the store


def _point_log_at(store: Path, target: str) -> str:
    s = Store(store)
    uid, kind = s.layout.unit_dirs()[0]
    rec_path = s.layout.unit_dir(uid, kind) / "attempts" / "001.json"
    rec = atomic.read_json(rec_path)
    rec["log"] = target
    atomic_write_json(rec_path, rec)
    return uid


@pytest.mark.parametrize("own_log", [True, False], ids=["own-log-kept", "own-log-gone"])
@pytest.mark.parametrize("target", ["/etc/passwd", "{store}/../secret.txt", "{outside_link}"])
def test_logs_prints_only_files_inside_the_store(done_store, capsys, target, own_log):
    secret = done_store.parent / "secret.txt"
    secret.write_text("TOP SECRET")
    link = done_store / "units" / "evil.log"
    link.symlink_to(secret)  # a link inside the store pointing out of it
    uid = _point_log_at(done_store, target.format(store=done_store, outside_link=link))
    ((_, kind),) = [(u, k) for u, k in Store(done_store).layout.unit_dirs() if u == uid]
    own = Store(done_store).layout.unit_dir(uid, kind) / "attempts" / "001.log"
    if not own_log:
        own.unlink()
    rc = main(["logs", str(done_store), uid[:8]])
    out, err = capsys.readouterr()
    assert "not a file inside the store" in err and "Traceback" not in err
    assert "TOP SECRET" not in out and "root:" not in out
    if own_log:  # the store's own attempts/001.log is printed instead
        assert rc == 0 and "committed, digest" in out and "printing the store's own" in err
    else:
        assert rc == 2 and "not printed" in err
    if not own_log:
        own.symlink_to(secret)  # the store's own log name, made a link out of the store: refused too
        assert main(["logs", str(done_store), uid[:8]]) == 2
        assert "TOP SECRET" not in capsys.readouterr().out


def test_logs_prints_the_real_log(done_store, capsys):
    uid, kind = Store(done_store).layout.unit_dirs()[0]
    assert main(["logs", str(done_store), uid[:8]]) == 0
    assert "committed, digest" in capsys.readouterr().out


# ---------------------------------------------------------------------- item 15: the umask is respected


@pytest.fixture
def umask():
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_atomic_files_get_the_mode_open_would_give(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "b.json", {"k": 1})
    atomic_save_tensors(tmp_path / "c.safetensors", {"w": torch.ones(2)})
    with open(tmp_path / "reference", "w"):
        pass
    for name in ("a.bin", "b.json", "c.safetensors", "reference"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_a_whole_store_is_readable_by_the_group_under_the_umask(tmp_path, umask, capsys, mask):
    umask(mask)
    (tmp_path / "c.toml").write_text(spec_text(stages=CRASHY))
    assert main(["run", str(tmp_path / "c.toml"), "--store", str(tmp_path / "store")]) == 0
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:
        assert p.stat().st_mode & 0o777 & mask == 0, p  # nothing the umask removes
        assert p.stat().st_mode & 0o044 == 0o044, p  # group and others can read, as with open()


# ---------------------------------------------------------------------- item 16: submitit's pickles are never read


class _Trap:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_verify_and_readers_never_unpickle_store_pickles(done_store, capsys):
    marker = done_store.parent / "PWNED"
    job = done_store / "slurm" / "123"
    job.mkdir(parents=True)
    (job / "123_submitted.pkl").write_bytes(pickle.dumps(_Trap(marker)))
    (job / "123_0_result.pkl").write_bytes(pickle.dumps(_Trap(marker)))
    uid, kind = Store(done_store).layout.unit_dirs()[0]
    stray = Store(done_store).layout.unit_dir(uid, kind) / "stray.pkl"
    stray.write_bytes(pickle.dumps(_Trap(marker)))
    assert main(["verify", str(done_store)]) == 0
    out = capsys.readouterr().out
    assert "stray.pkl" in out and "pickle" in out and "submitted.pkl" not in out
    for args in (
        ["status", str(done_store), "--units"],
        ["show", str(done_store), uid[:8]],
        ["logs", str(done_store), uid[:8], "--all"],
        ["report", str(done_store)],
    ):
        assert main(args) == 0, args
    assert not marker.exists()


# ---------------------------------------------------------------------- item 6: a read-only store


def test_write_probe_reports_a_store_that_refuses_writes(tmp_path, monkeypatch):
    """Unit test of the probe: permission bits do not stop root, so the refusal (EACCES, as a non-root user gets under
    `chmod -R a-w`) is injected into the probe's real attempted write; the read-only mount is tested below."""
    import errno
    import tempfile

    (tmp_path / "store").mkdir()
    check_writable(tmp_path / "store")  # writable: no error, no leftover
    assert list((tmp_path / "store").iterdir()) == []

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(StoreReadOnlyError, match="is read-only"):
        check_writable(tmp_path / "store")
    with pytest.raises(StoreReadOnlyError, match="its parent .* is read-only"):
        check_writable(tmp_path / "store" / "new")


def _can_bind_read_only(folder: Path) -> bool:
    script = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && ! touch {folder}/.probe"
    probe = (
        subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=30, check=False)
        if shutil.which("unshare")
        else None
    )
    return probe is not None and probe.returncode == 0


@pytest.mark.parametrize("command", ["run", "resume"])
def test_read_only_store_is_one_line_exit_2(done_store, tmp_path, command):
    """`run`/`resume` against a store on a read-only bind mount (a private mount namespace: `unshare -m`)."""
    if not _can_bind_read_only(done_store):
        pytest.skip("needs `unshare -m` and bind mounts (root in a mount namespace) for a real read-only mount")
    before = sorted((p.relative_to(done_store).as_posix(), p.stat().st_mtime_ns) for p in done_store.rglob("*"))
    cli = [sys.executable, "-m", "lowloss.orchestrator.cli"]
    args = (
        ["run", str(tmp_path / "c.toml"), "--store", str(done_store)]
        if command == "run"
        else ["resume", str(done_store)]
    )
    script = f"mount --bind {done_store} {done_store} && mount -o remount,bind,ro {done_store} && " + " ".join(
        f"'{a}'" for a in cli + args
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=300, check=False
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"store {done_store} is read-only" in proc.stderr and "Read-only file system" in proc.stderr
    after = sorted((p.relative_to(done_store).as_posix(), p.stat().st_mtime_ns) for p in done_store.rglob("*"))
    assert before == after
