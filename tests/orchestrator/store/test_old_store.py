"""A store written by lowloss 0.1.0 (tests/fixtures/store-0.1.0, from tests/fixtures/store-0.1.0.toml: train,
interpolate, an LLPF M2M phase, a landscape direction and scans) is read by today's code: verify names no damage and
prints the digests it recorded, status and report show it, and resume finds nothing to run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store-0.1.0"


@pytest.fixture
def old_store(tmp_path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE, store)
    return store


def _committed(store: Path) -> dict[str, str]:
    out = {}
    for commit in store.glob("units/kind=*/unit=*/COMMIT.json"):
        out[commit.parent.name[len("unit=") :]] = json.loads(commit.read_text())["digest"]
    return out


def test_verify_reads_every_unit_of_the_old_store_as_intact(old_store):
    proc = run_cli("verify", old_store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = dict(re.findall(r"^([0-9a-f]{20})\s+\S+\s+([0-9a-f]{64})$", proc.stdout, flags=re.M))
    assert printed == _committed(old_store) and len(printed) == 9


def test_status_and_report_show_the_old_store(old_store, tmp_path):
    status = run_cli("status", old_store, "--units")
    assert status.returncode == 0, status.stderr
    rows = re.findall(r"^│ (\w+)\s+│ (\w+)\s+│\s+(\d+) │\s+(\d+) │\s+(\d+) │\s+(\d+) │ (\w+)", status.stdout, re.M)
    assert rows == [
        ("modes", "train", "2", "0", "0", "0", "closed"),
        ("lmc", "interpolate", "1", "0", "0", "0", "closed"),
        ("m2m", "m2m", "1", "0", "0", "0", "closed"),
        ("scan", "landscape", "5", "0", "0", "0", "closed"),
    ], status.stdout
    report = run_cli("report", old_store, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    assert "train-loss barrier" in report.stdout and (tmp_path / "report" / "summary.md").exists()
    assert list((tmp_path / "report" / "figures").glob("*.png"))


def test_resume_of_the_old_store_has_nothing_to_run(old_store):
    before = _committed(old_store)
    proc = run_cli("resume", old_store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 unit(s) run now" in proc.stdout and "9 reused from the store" in proc.stdout
    assert _committed(old_store) == before
