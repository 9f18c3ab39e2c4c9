"""Issue 23, item 4: damage stops every reader the same way. A damaged commit marker, unit record or data file stops
`report`, `results` and `show` with one line naming the unit, the file and `--repair` (exit 2), before anything is
printed or written; `status` shows the unit as damaged, naming the file. A committed unit whose input is no longer
committed is named by `verify` (exit 1), and `resume --repair` runs the input and what stands on it again, back to the
same bytes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import digests, run_cli, spec_text

from lowloss.orchestrator.store import Store

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def _study(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Four digits modes and the three straight lines between consecutive ones, run once, with their digests."""
    folder = tmp_path_factory.mktemp("damage")
    spec = folder / "spec.toml"
    spec.write_text(spec_text(name="damage", seeds="[0, 1, 2, 3]", epochs=1))  # modes, and lmc between consecutive ones
    run_cli("run", spec, "--store", folder / "store", check=True)
    return folder / "store", digests(folder / "store")


@pytest.fixture
def store(_study, tmp_path) -> Path:
    """A fresh copy of the committed study per test."""
    shutil.copytree(_study[0], tmp_path / "store", symlinks=True)
    return tmp_path / "store"


def _mode(store: Path, seed: int = 1) -> tuple[str, Path]:
    s = Store(store)
    (uid,) = [u for u, k in s.layout.unit_dirs() if k == "train" and s.unit(u, k).params["seed"] == seed]
    return uid, s.layout.unit_dir(uid, "train")


def _dependents(store: Path, uid: str) -> list[str]:
    s = Store(store)
    return sorted(u for u, k in s.layout.unit_dirs() if k == "interpolate" and uid in s.unit(u, k).inputs.values())


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage\xff")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _altered_commit(path: Path) -> None:
    """Still JSON, but its digest was cut short (an edit by hand, a tool that rewrote it)."""
    marker = json.loads(path.read_text())
    marker["digest"] = marker["digest"][:12]
    path.write_text(json.dumps(marker))


def _edited_unit(path: Path) -> None:
    """A valid unit record whose params were changed (another seed)."""
    record = json.loads(path.read_text())
    record["params"]["seed"] = 7
    path.write_text(json.dumps(record))


DAMAGE = {
    "garbage COMMIT.json": ("COMMIT.json", _garbage),
    "truncated COMMIT.json": ("COMMIT.json", _truncated),
    "altered COMMIT.json": ("COMMIT.json", _altered_commit),
    "garbage unit.json": ("unit.json", _garbage),
    "edited unit.json": ("unit.json", _edited_unit),
}


def _stopped(proc, uid: str, named: tuple[str, ...], store: Path) -> None:
    """One line on stderr naming the unit, the file and the repair; exit 2; nothing on stdout."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert uid in err and any(name in err for name in named) and f"lowloss resume {store} --repair" in err, err
    assert proc.stdout == "", proc.stdout


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_report_stops_on_a_damaged_commit_marker_or_unit_record_and_writes_nothing(store, tmp_path, damage):
    rel, hurt = DAMAGE[damage]
    uid, unit_dir = _mode(store)
    hurt(unit_dir / rel)
    out = tmp_path / "report"
    _stopped(run_cli("report", store, "--out", out), uid, (rel,), store)  # no table printed, nothing written
    assert not out.exists()


@pytest.mark.parametrize("damage", ["garbage COMMIT.json", "edited unit.json"])
def test_results_and_show_stop_and_status_names_the_damaged_file(store, damage):
    rel, hurt = DAMAGE[damage]
    uid, unit_dir = _mode(store)
    hurt(unit_dir / rel)
    _stopped(run_cli("results", store, "--stage", "modes"), uid, (rel,), store)
    _stopped(run_cli("show", store, uid[:10]), uid, (rel,), store)
    status = run_cli("status", store)  # watching a run: the table goes on, the damaged unit named with its file
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"modes\s.*\b3\b.*1 \(1 damaged\)", status.stdout), status.stdout
    said = " ".join(status.stdout.split())  # as one line, however the terminal wrapped it
    assert f"damaged modes seed=1 ({uid}): {rel}" in said and f"lowloss resume {store} --repair" in said, said


def test_report_out_writes_nothing_when_a_figure_meets_a_damaged_data_file(store, tmp_path):
    """The summary reads only results; the figures read the rows, where the damage is: the tables already computed
    must not be left in --out (an existing --out keeps what it held)."""
    uid, unit_dir = _mode(store)
    (rows,) = sorted(unit_dir.glob("steps/000000.parquet"))
    data = bytearray(rows.read_bytes())
    data[len(data) // 2] ^= 0x01
    rows.write_bytes(bytes(data))
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.md").write_text("an earlier report\n")
    _stopped(run_cli("report", store, "--out", out), uid, ("steps/000000.parquet",), store)
    assert sorted(p.name for p in out.iterdir()) == ["summary.md"]
    assert (out / "summary.md").read_text() == "an earlier report\n"
    assert not list(tmp_path.glob(".lowloss-report-*")) and not list(out.glob(".lowloss-report-*"))


def test_report_out_moves_its_files_in_once_all_are_drawn(store, tmp_path):
    out = tmp_path / "deep" / "report"
    proc = run_cli("report", store, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {"summary.md", "summary.csv", "summary.parquet", "summary.tex", "figures"} <= {p.name for p in out.iterdir()}
    assert list((out / "figures").glob("*.png"))
    assert f"wrote {out / 'summary.md'}" in proc.stdout and ".lowloss-report-" not in proc.stdout
    assert not list(tmp_path.rglob(".lowloss-report-*"))


@pytest.mark.parametrize("gone", ["COMMIT.json", "unit directory"])
def test_verify_names_units_whose_input_is_gone_and_repair_runs_them_again(_study, store, gone):
    clean_digests = _study[1]
    uid, unit_dir = _mode(store)
    dependents = _dependents(store, uid)
    assert len(dependents) == 2  # the lines to seed 0 and to seed 2
    if gone == "COMMIT.json":
        (unit_dir / "COMMIT.json").unlink()
    else:
        shutil.rmtree(unit_dir)

    verify = run_cli("verify", store)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    lost = [ln for ln in verify.stdout.splitlines() if ln.startswith("INPUT GONE")]
    assert len(lost) == 2, verify.stdout
    for dependent, line in zip(dependents, sorted(lost)):
        assert dependent in line and uid in line and f"its {gone} is gone" in line, line
    said = " ".join(verify.stdout.split())
    assert "2 committed unit(s) on an input no longer committed" in said and f"lowloss resume {store} --repair" in said

    repaired = run_cli("resume", store, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert sorted(p.name.split("-")[0] for p in (store / "damaged").iterdir()) == dependents
    assert digests(store) == clean_digests  # the mode and the lines on it ran again, to the same bytes
