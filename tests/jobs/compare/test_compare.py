"""The compare stage: linear, LLPF M2M and AutoNEB paths between the same pairs, evaluated with the one evaluation
protocol, and the report's side-by-side table with the CPU-seconds of the producing units (recipe compare-digits,
which CI runs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli, spec_text


def _units(store: Path, kind: str) -> list[Path]:
    return sorted(p.parent for p in store.glob(f"units/kind={kind}/unit=*/COMMIT.json"))


def _rows(store: Path, unit: Path, table: str) -> list[dict]:
    from lowloss.orchestrator.store import Store

    rows = Store(store).read.rows(unit.name[5:], unit.parent.name[5:], table)  # units/kind=<kind>/unit=<id>
    assert rows is not None, f"{unit}: no rows of {table}"
    return rows.to_pylist()


def test_spec_errors_name_the_from_field(write_spec, capsys):
    from lowloss.orchestrator.cli import main

    base = """
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "modes"

        [[stages]]
        name = "lmc2"
        kind = "interpolate"
        from = "modes"

        [[stages]]
        name = "compare"
        kind = "compare"
    """
    cases = [
        ('from = ["lmc", "modes"]\n', "'modes' is of kind 'train'"),
        ('from = ["lmc", "lmc2"]\n', "one stage per method"),
        ('from = "lmc"\nbn = "upbn"\n', "UpBN"),
    ]
    for k, (extra, message) in enumerate(cases):
        assert main(["validate", str(write_spec(spec_text(stages=base + extra), f"{k}.toml"))]) == 2
        err = capsys.readouterr().err
        assert ("from" in err or "bn" in err) and message in err, err


@pytest.mark.slow
def test_compare_digits_puts_the_three_methods_side_by_side_with_one_evaluator(tmp_path):
    store = tmp_path / "store"
    run_cli("run", "compare-digits", "--store", store, check=True, timeout=900)
    evals = {}
    for unit in _units(store, "path_eval"):
        result = json.loads((unit / "result.json").read_text())
        evals[(tuple(sorted(result["pair"])), result["method"])] = (unit, result)
    assert {k[1] for k in evals} == {"linear", "llpf", "autoneb"}
    pairs = {k[0] for k in evals}
    assert pairs == {(0, 1), (1, 2)} and len(evals) == 6  # the same pairs by every method
    for unit, result in evals.values():
        rows = _rows(store, unit, "path")
        assert result["points"] == len(rows) and result["bn"] == "UpBN"
        assert result["max_train_loss"] == max(r["train_loss"] for r in rows)
        assert result["barrier_train_loss"] == pytest.approx(
            result["max_train_loss"] - max(rows[0]["train_loss"], rows[-1]["train_loss"])
        )
        assert result["path_length"] == pytest.approx(rows[-1]["arc"]) and result["length_ratio"] >= 1 - 1e-9

    # the straight line: the interpolate stage's points (UpBN, 11 points) are among the compare stage's 21, and the
    # one evaluator gives them bit for bit
    for unit in _units(store, "interpolate"):
        line = _rows(store, unit, "line")
        pair = tuple(sorted(json.loads((unit / "result.json").read_text())["pair"]))
        ours = {
            round(r["alpha"] if r["segment"] == 0 else 1.0, 9): r
            for r in _rows(store, evals[(pair, "linear")][0], "path")
        }
        assert len(ours) == 21
        for r in line:
            mine = ours[round(r["alpha"], 9)]
            assert (mine["train_loss"], mine["test_acc"]) == (r["train_loss"], r["test_acc"]), (pair, r["alpha"])

    # AutoNEB: at its pivots the compare stage reproduces the edge's own last dense evaluation (UpBN both)
    for unit in _units(store, "autoneb_edge"):
        result = json.loads((unit / "result.json").read_text())
        pair = tuple(sorted(result["pair"]))
        dense = [
            r for r in _rows(store, unit, "dense") if r["cycle"] == max(d["cycle"] for d in _rows(store, unit, "dense"))
        ]
        at_pivots = [r["train_loss"] for r in dense if r["pivot"]]
        mine = [r["train_loss"] for r in _rows(store, evals[(pair, "autoneb")][0], "path") if r["vertex"]]
        assert mine == at_pivots and len(mine) == result["pivots"]
        assert evals[(pair, "autoneb")][1]["max_train_loss"] < evals[(pair, "linear")][1]["max_train_loss"]

    # LLPF: the mode, every stored point and each phase's end are the vertices
    for (_, method), (_, result) in evals.items():
        if method == "llpf":
            assert result["vertices"] == 1 + (1 + 1) + (5 + 1)  # P0; phase 1: point 5, end 10; phase 2: 5..25, end

    report = run_cli("report", store, "--out", tmp_path / "R", check=True)
    table = tmp_path / "R" / "figures" / "compare-methods.csv"
    assert table.exists(), report.stdout[-2000:]
    lines = list(csv.DictReader(table.open()))
    assert [(r["pair"], r["method"]) for r in lines] == [
        (p, m) for p in ("0-1", "1-2") for m in ("linear", "llpf", "autoneb")
    ]
    for r in lines:
        cost = float(r["CPU-s"])
        assert cost > 0 and float(r["wall-s"]) > 0 and r["GPU-s"] == "0.0"
        assert float(r["max train loss"]) == pytest.approx(
            evals[(tuple(map(int, r["pair"].split("-"))), r["method"])][1]["max_train_loss"], rel=1e-3
        )
    assert "compare-methods.md" in report.stdout and (tmp_path / "R" / "figures" / "compare-paths.png").exists()
