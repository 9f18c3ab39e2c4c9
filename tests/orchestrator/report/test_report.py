"""`lowloss report` and the Python API on stores produced by real runs: the embedded default study (4 modes, 6
interpolation pairs) and a `toy_path` study (tests/plugins: LLPF-shaped rows with dist.* columns, nulls, points).

Every number is checked against an independent computation from the raw files the units wrote (segment markers,
Parquet rows, safetensors points, result.json), never against the report code's own helpers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import statistics
import struct
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, spec_text, start_cli
from store_bytes import assert_recorded_bytes

# ---------------------------------------------------------------------- raw readers (independent of the report code)


def raw_units(store: Path, kind: str) -> list[Path]:
    return sorted((store / "units").glob(f"kind={kind}/unit=*"))


def raw_stage_units(store: Path, stage: str) -> list[Path]:
    """The unit directories of a stage, in plan order (plan.json read as plain JSON)."""
    plan = json.loads((store / "plan.json").read_text())
    (info,) = [s for s in plan["stages"] if s["name"] == stage]
    return [store / "units" / f"kind={info['kind']}" / f"unit={u['id']}" for u in info["units"]]


def raw_rows(unit: Path, table: str) -> list[dict]:
    """The rows of the segments whose marker exists, in segment order, read with plain pyarrow."""
    rows = []
    for marker in sorted((unit / "segments").glob("[0-9]*.json")):
        m = json.loads(marker.read_text())
        rel = f"{table}/{m['name']}.parquet"
        if rel in m["files"]:
            rows += pq.read_table(unit / rel).to_pylist()
    return rows


def raw_result(unit: Path) -> dict | None:
    return json.loads((unit / "result.json").read_text()) if (unit / "COMMIT.json").exists() else None


def barrier(values: list[float], alphas: list[float]) -> float:
    return max(v - ((1 - a) * values[0] + a * values[-1]) for v, a in zip(values, alphas))


def sample_stats(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def report_csv(*args) -> list[dict]:
    proc = run_cli("report", *args, "--format", "csv", check=True)
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def close(a, b, rel=1e-9) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)


TOY_STAGES = """
    [[stages]]
    name = "m2m"
    kind = "toy_path"
    seeds = [0, 1, 2]
    lrs = [0.05, 0.2]
"""
CHAINED_STAGE = """
    [[stages]]
    name = "chained"
    kind = "toy_path"
    seeds = [0, 1]
    phases = 2
    iterations = 40
    segment_iterations = 20
"""


# ---------------------------------------------------------------------- real stores, one per module


@pytest.fixture(scope="module")
def default_store(tmp_path_factory):
    """The embedded default study, run by `lowloss run --store DIR` (no spec)."""
    store = tmp_path_factory.mktemp("default") / "store"
    proc = run_cli("run", "--store", store, check=True)
    return store, proc.stdout


@pytest.mark.slow
def test_the_default_recipe_stores_the_recorded_bytes(default_store):
    """tests/test_stored_bytes.py: the store of the embedded default study, run above, holds the recorded bytes."""
    assert_recorded_bytes("digits-default", default_store[0])


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="toy", seeds="[0]", stages=TOY_STAGES + CHAINED_STAGE))
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return store


# ---------------------------------------------------------------------- summary table


@pytest.mark.slow
def test_summary_equals_independent_computation_from_raw_rows(default_store):
    store, _ = default_store
    rows = {(r["stage"], r["metric"]): r for r in report_csv(store)}
    # modes: the final losses/accuracies are the last evaluation row each unit wrote
    finals = [max(raw_rows(u, "evals"), key=lambda r: r["epoch"]) for u in raw_units(store, "train")]
    assert len(finals) == 4
    for key, col in (
        ("final_train_loss", "train_loss"),
        ("final_test_loss", "test_loss"),
        ("final_train_acc", "train_acc"),
        ("final_test_acc", "test_acc"),
    ):
        expect = sample_stats([f[col] for f in finals])
        got = rows[("modes", key)]
        assert int(got["n"]) == 4 and got["missing"] == "0"
        for stat in ("mean", "std", "min", "max"):
            assert close(got[stat], expect[stat]), (key, stat, got[stat], expect[stat])
    # lmc: the barrier max_α L(α) − [(1−α)L(0) + αL(1)] recomputed from each unit's line rows
    lines = [sorted(raw_rows(u, "line"), key=lambda r: r["alpha"]) for u in raw_units(store, "interpolate")]
    assert len(lines) == 6 and all(len(line) == 11 for line in lines)
    for key, values in (
        ("barrier_train_loss", lambda r: r["train_loss"]),
        ("barrier_test_loss", lambda r: r["test_loss"]),
        ("barrier_test_acc", lambda r: -r["test_acc"]),
    ):
        expect = sample_stats([barrier([values(r) for r in line], [r["alpha"] for r in line]) for line in lines])
        got = rows[("lmc", key)]
        assert int(got["n"]) == 6
        for stat in ("mean", "std", "min", "max"):
            assert close(got[stat], expect[stat], rel=1e-7), (key, stat)


@pytest.mark.slow
def test_run_prints_the_same_table_as_report(default_store):
    store, run_out = default_store
    report_out = run_cli("report", store, check=True).stdout
    table = report_out[: report_out.index("stage modes (train):")].strip()
    assert table and table in run_out
    assert "stage modes (train): 4 of 4 unit(s) committed" in report_out
    assert "stage lmc (interpolate): 6 of 6 unit(s) committed" in report_out


@pytest.mark.slow
def test_uncommitted_segments_and_units_never_enter_a_table(default_store, tmp_path):
    src, _ = default_store
    store = tmp_path / "store"
    shutil.copytree(src, store)
    before = {(r["stage"], r["metric"]): r for r in report_csv(store)}
    # a stray segment file without its marker (an interrupted write) with absurd values
    mode = raw_units(store, "train")[0]
    stray = pa.table(
        {"epoch": [99], "step": [9999], "train_loss": [1e6], "train_acc": [0.0], "test_loss": [1e6], "test_acc": [0.0]}
    )
    pq.write_table(stray, mode / "evals" / "000999.parquet")
    # an interpolation "still running": no commit marker, and its last segment's marker not written yet
    pair = raw_units(store, "interpolate")[2]
    (pair / "COMMIT.json").unlink()
    last = sorted((pair / "segments").glob("[0-9]*.json"))[-1]
    last.unlink()

    after = {(r["stage"], r["metric"]): r for r in report_csv(store)}
    for key in before:
        if key[0] == "modes":
            assert after[key] == before[key], key
    remaining = [u for u in raw_units(store, "interpolate") if u != pair]
    lines = [sorted(raw_rows(u, "line"), key=lambda r: r["alpha"]) for u in remaining]
    expect = sample_stats([barrier([r["train_loss"] for r in line], [r["alpha"] for r in line]) for line in lines])
    got = after[("lmc", "barrier_train_loss")]
    assert (got["n"], got["units"], got["missing"]) == ("5", "6", "1")
    assert close(got["mean"], expect["mean"], rel=1e-7) and close(got["std"], expect["std"], rel=1e-7)

    text = run_cli("report", store, check=True).stdout
    assert "stage lmc (interpolate): 5 of 6 unit(s) committed; 1 still missing" in text

    from lowloss.orchestrator.report.api import open_study

    study = open_study(store)
    evals = study.rows("modes", "evals")
    assert 1e6 not in evals.column("train_loss").to_pylist()
    assert evals.num_rows == sum(len(raw_rows(u, "evals")) for u in raw_units(store, "train")) == 4 * 13
    line = study.rows("lmc", "line")
    partial = line.filter(pc.equal(line.column("unit"), pair.name[len("unit=") :]))
    assert partial.num_rows == 10  # its committed segments only
    assert study.results("lmc").num_rows == 5
    from lowloss.orchestrator.report.tables import summary

    assert summary(study).num_rows == len(before)


@pytest.mark.slow
def test_report_on_a_running_study_counts_missing_units_and_draws_committed_segments(tmp_path):
    spec = tmp_path / "spec.toml"
    stages = TOY_STAGES.replace("seeds = [0, 1, 2]", "seeds = [0, 1]").replace(
        "lrs = [0.05, 0.2]", "lrs = [0.05]\n    pause_s = 1.5"
    )
    spec.write_text(spec_text(name="live", seeds="[0]", stages=stages).replace("jobs = 2", "jobs = 1"))
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            units = raw_units(store, "toy_path") if store.exists() else []
            if any(list((u / "segments").glob("[0-9]*.json")) for u in units) and not all(
                (u / "COMMIT.json").exists() for u in units
            ):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no segment committed in time")
        report = run_cli("report", store, "--out", tmp_path / "out", check=True).stdout
    finally:
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    m = re.search(r"stage m2m \(toy_path\): (\d) of 2 unit\(s\) committed; (\d) still missing", report)
    assert m and int(m.group(1)) + int(m.group(2)) == 2 and int(m.group(2)) >= 1, report
    assert (tmp_path / "out" / "figures" / "m2m-loss.png").exists()  # drawn from the committed segments so far
    final = run_cli("report", store, check=True).stdout
    assert "stage m2m (toy_path): 2 of 2 unit(s) committed" in final


# ---------------------------------------------------------------------- grouping, formats, errors


@pytest.mark.slow
def test_by_groups_metrics_and_verdicts_of_real_path_units(toy_store):
    rows = report_csv(toy_store, "--by", "lr", "--stage", "m2m")
    results = [raw_result(u) for u in raw_stage_units(toy_store, "m2m")]
    params = [json.loads((u / "unit.json").read_text())["params"] for u in raw_stage_units(toy_store, "m2m")]
    assert len(results) == 6
    for lr in (0.05, 0.2):
        group = [r for r, p in zip(results, params) if p["lr"] == lr]
        assert len(group) == 3
        mine = {r["metric"]: r for r in rows if float(r["lr"]) == lr}
        expect = sample_stats([r["max_train_loss"] for r in group])
        assert mine["max_train_loss"]["n"] == "3"
        assert close(mine["max_train_loss"]["mean"], expect["mean"])
        assert close(mine["max_train_loss"]["std"], expect["std"])
        for verdict in ("below_threshold", "reached", "test_recovered"):
            k = sum(1 for r in group if r[verdict])
            assert mine[verdict]["type"] == "verdict"
            assert (int(mine[verdict]["successes"]), int(mine[verdict]["n"])) == (k, 3)
            assert close(mine[verdict]["rate"], k / 3)
    md = run_cli("report", toy_store, "--by", "lr", "--format", "md", check=True).stdout
    assert re.search(r"\| m2m \| 0\.05 \| reached D \(distance < 0\.1\) \| 3 \| \d/3 \(\d+%\) \|", md)


@pytest.mark.slow
def test_by_field_of_a_pair_kind_resolves_through_its_inputs(default_store):
    store, _ = default_store
    rows = report_csv(store, "--by", "model.name,points")
    assert {r["model.name"] for r in rows} == {"small_cnn"}  # lmc units inherit it from their two modes
    assert {(r["stage"], r["points"]) for r in rows} == {("modes", ""), ("lmc", "11")}
    seeds = report_csv(store, "--by", "seed")
    assert {r["seed"] for r in seeds if r["stage"] == "lmc"} == {""}  # the modes of a pair disagree on seed
    assert {r["seed"] for r in seeds if r["stage"] == "modes"} == {"0", "1", "2", "3"}


@pytest.mark.slow
def test_bad_by_or_format_is_one_line_exit_2(default_store, tmp_path):
    store, _ = default_store
    proc = run_cli("report", store, "--by", "modle.name")
    assert proc.returncode == 2 and proc.stdout == ""
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("lowloss: error: --by = 'modle.name'")
    assert "allowed:" in line and "model.name" in line and "train.lr" in line and "recipe.lr" not in line
    assert "did you mean 'model.name'?" in line
    proc = run_cli("report", store, "--by", "recipe.lr")  # the unit's own key: the spec calls the table [train]
    assert proc.returncode == 2 and "did you mean 'train.lr'?" in proc.stderr
    proc = run_cli("report", store, "--stage", "nope")
    assert proc.returncode == 2 and "--stage = 'nope'" in proc.stderr and "lmc" in proc.stderr
    proc = run_cli("report", store, "--format", "parquet")
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_bad_format_or_not_a_store_is_one_line_exit_2(tmp_path):
    proc = run_cli("report", tmp_path, "--format", "xls")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "lowloss: error: --format = 'xls': unknown table format; allowed: md, csv, parquet, latex"
    )
    proc = run_cli("report", tmp_path / "nothing")
    assert proc.returncode == 2 and "not a lowloss store" in proc.stderr and "\n" not in proc.stderr.strip()


@pytest.mark.slow
def test_every_format_written_to_out(default_store, tmp_path):
    store, _ = default_store
    out = tmp_path / "out"
    run_cli("report", store, "--out", out, "--no-figures", check=True)
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "summary.md", "summary.parquet", "summary.tex"]
    table = pq.read_table(out / "summary.parquet")
    csv_rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    # train: 4 metrics; interpolate: 4 (3 barriers and the max train loss on the line)
    assert table.num_rows == len(csv_rows) == 8
    assert [close(a, b["mean"]) for a, b in zip(table.column("mean").to_pylist(), csv_rows)] == [True] * 8
    tex = (out / "summary.tex").read_text()
    assert "\\begin{tabular}{llrrrr}" in tex and "\\end{tabular}" in tex and "\\toprule" in tex
    mean = float(csv_rows[4]["mean"])
    assert re.search(rf"lmc & train-loss barrier & 6 & \${mean:.4f} \\pm \d\.\d{{4}}\$ & ", tex)
    assert "modes & train loss & 4 &" in tex and tex.count("\\midrule") == 2


# ---------------------------------------------------------------------- Python API


@pytest.mark.slow
def test_api_rows_results_and_params(default_store):
    store, _ = default_store
    from lowloss.orchestrator.report.api import open_study

    study = open_study(store)
    assert [(s.name, s.kind, len(s.units)) for s in study.stages()] == [
        ("modes", "train", 4),
        ("lmc", "interpolate", 6),
    ]
    evals = study.rows("modes", "evals")
    for col in ("stage", "unit", "label", "param.seed", "param.model.name", "param.train.lr", "epoch", "test_loss"):
        assert col in evals.column_names
    units = raw_units(store, "train")
    assert evals.num_rows == sum(len(raw_rows(u, "evals")) for u in units)
    seeds = {json.loads((u / "unit.json").read_text())["params"]["seed"]: u.name[len("unit=") :] for u in units}
    by_unit = {}
    for row in evals.select(["unit", "param.seed"]).to_pylist():
        by_unit[row["unit"]] = row["param.seed"]
    assert by_unit == {uid: seed for seed, uid in seeds.items()}
    steps = study.rows("modes", "steps", columns=["step", "loss"])
    assert set(steps.column_names) >= {"unit", "param.seed", "step", "loss"} and "lr" not in steps.column_names
    results = study.results("lmc")
    assert results.num_rows == 6 and set(results.column("param.model.name").to_pylist()) == {"small_cnn"}
    raw = {u.name[len("unit=") :]: raw_result(u)["barrier_train_loss"] for u in raw_units(store, "interpolate")}
    assert dict(zip(results.column("unit").to_pylist(), results.column("barrier_train_loss").to_pylist())) == raw
    from lowloss.orchestrator.report.tables import summary

    summary = summary(study, by=["model.name"])
    assert summary.num_rows == 8 and set(summary.column("model.name").to_pylist()) == {"small_cnn"}


# ---------------------------------------------------------------------- figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def pdf_size(path: Path) -> tuple[float, float]:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert re.search(rb"/Type\s*/Page\b", data)
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    return float(box.group(1)), float(box.group(2))


def check_figures(files, out: Path) -> None:
    from PIL import Image

    from lowloss.orchestrator.report.figures import DPI

    for f in files:
        png, pdf = f.paths
        assert png.suffix == ".png" and pdf.suffix == ".pdf" and png.parent == out
        assert png_size(png) == f.size_px
        assert f.size_px[0] >= 900 and f.size_px[1] >= 600
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:  # not blank: a drawing has many colours
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
        w, h = pdf_size(pdf)
        assert abs(w - f.size_px[0] / DPI * 72) < 1 and abs(h - f.size_px[1] / DPI * 72) < 1


@pytest.mark.slow
def test_a_figure_per_declared_kind_train_and_interpolate(default_store, tmp_path):
    store, _ = default_store
    from lowloss import jobs
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figures import render

    out = tmp_path / "figs"
    files = render(open_study(store), out)
    declared = {
        (stage, f.name)
        for stage, kind in (("modes", "train"), ("lmc", "interpolate"))
        for f in jobs.get_kind(kind).figures
    }
    assert len(declared) >= 5
    assert {(f.stage, f.name) for f in files} == declared
    check_figures(files, out)
    # the command writes the same files under --out/figures
    cli_out = tmp_path / "cli"
    run_cli("report", store, "--out", cli_out, "--format", "md", check=True)
    assert sorted(p.name for p in (cli_out / "figures").iterdir()) == sorted(p.name for f in files for p in f.paths)


@pytest.mark.slow
def test_band_pca_and_per_layer_figures_of_path_units(toy_store, tmp_path):
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figures import render

    out = tmp_path / "figs"
    files = render(open_study(toy_store), out)
    assert {(f.stage, f.name) for f in files} == {
        (stage, name) for stage in ("m2m", "chained") for name in ("loss", "distance", "test", "pca", "variance")
    }
    check_figures(files, out)
    assert {f.units for f in files if f.stage == "chained" and f.name != "variance"} == {2}  # 2 paths of 2 units
    by = render(open_study(toy_store), tmp_path / "by", by=["lr"], stages=["m2m"])
    # per-layer lines and PCA panels split per group; single-line bands overlay the groups
    assert sorted(p.name for f in by for p in f.paths if p.suffix == ".png") == [
        "m2m-distance-lr=0.05.png",
        "m2m-distance-lr=0.2.png",
        "m2m-loss.png",
        "m2m-pca-lr=0.05.png",
        "m2m-pca-lr=0.2.png",
        "m2m-test.png",
        "m2m-variance.png",
    ]
    check_figures(by, tmp_path / "by")


def trailing_mean(xs: list[float], ys: list[float], width: float) -> list[float]:
    """Independent trailing window over x: the mean of the y whose x lies in (x − width, x]."""
    return [statistics.fmean(y for x2, y in zip(xs, ys) if x - width < x2 <= x) for x in xs]


def raw_path(units: list[Path], table: str, x: str) -> list[dict]:
    """A chain of units as one path from their raw rows: each unit's x shifted by the previous one's last x, its rows
    at or before that point dropped."""
    rows, end = [], None
    for unit in units:
        for r in raw_rows(unit, table):
            if end is None or r[x] + end > end:
                rows.append({**r, x: r[x] + (end or 0)})
        end = rows[-1][x]
    return rows


@pytest.mark.slow
def test_band_data_equals_raw_rows_smoothed_over_x_only_where_dense(default_store, toy_store):
    from lowloss import jobs
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figure_data import figure_data

    store, _ = default_store
    loss_fig = next(f for f in jobs.get_kind("train").figures if f.name == "loss")
    series = {s.column: s for s in figure_data(open_study(store), "modes", loss_fig)}
    per_epoch: dict[int, list[float]] = {}
    for u in raw_units(store, "train"):
        for r in raw_rows(u, "evals"):
            per_epoch.setdefault(r["epoch"], []).append(r["test_loss"])
    s = series["test_loss"]
    assert s.band.x.tolist() == sorted(per_epoch) and len(s.curves) == 4
    for i, epoch in enumerate(sorted(per_epoch)):  # a log axis: the geometric mean ×/÷ the geometric std
        logs = [math.log(v) for v in per_epoch[epoch]]
        assert close(s.band.center[i], math.exp(statistics.fmean(logs)))
        assert close(s.band.upper[i], math.exp(statistics.fmean(logs) + statistics.stdev(logs)), rel=1e-7)
        assert s.band.lower[i] > 0

    # toy paths: the dense training loss smoothed over a trailing window of 10 iterations, per path; the test columns
    # are null except every 10th iteration: sparse, drawn as stored
    kind = jobs.get_kind("toy_path")
    study = open_study(toy_store)
    units = raw_stage_units(toy_store, "m2m")
    (loss,) = figure_data(study, "m2m", next(f for f in kind.figures if f.name == "loss"))
    assert loss.dense and loss.window == 10 and len(loss.curves) == 6
    for unit, curve in zip(units, loss.curves):
        rows = raw_rows(unit, "path")
        xs, ys = [r["iteration"] for r in rows], [r["loss"] for r in rows]
        assert curve.x.tolist() == xs and curve.y.tolist() == ys
        assert [close(a, b) for a, b in zip(curve.shown, trailing_mean(xs, ys, 10))] == [True] * len(xs)
    (raw,) = figure_data(study, "m2m", next(f for f in kind.figures if f.name == "loss"), smooth=1)  # --smooth 1
    assert raw.window == 0 and all(np.array_equal(c.shown, c.y) for c in raw.curves)
    test, acc = figure_data(study, "m2m", next(f for f in kind.figures if f.name == "test"))
    assert not test.dense and test.window == 0 and acc.axis == 1 and test.axis == 0
    for unit, curve in zip(units, test.curves):
        evaluated = [(r["iteration"], r["test_loss"]) for r in raw_rows(unit, "path") if r["test_loss"] is not None]
        assert list(zip(curve.x.tolist(), curve.shown.tolist())) == evaluated
    dist = figure_data(study, "m2m", next(f for f in kind.figures if f.name == "distance"))
    assert [s.label for s in dist] == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"]

    # chained units (phase 2 continues phase 1 through input "start") are one path: phase 2's rows follow phase 1's,
    # x shifted by phase 1's last iteration, its repeated start row dropped; the boundary is where phase 2 begins
    units = raw_stage_units(toy_store, "chained")
    (chained,) = figure_data(study, "chained", next(f for f in kind.figures if f.name == "loss"), smooth=1)
    for k, (first, second) in enumerate(zip(units[0::2], units[1::2])):
        assert json.loads((second / "unit.json").read_text())["inputs"] == {"start": first.name[len("unit=") :]}
        path = raw_path([first, second], "path", "iteration")
        curve = chained.curves[k]
        assert curve.x.tolist() == [r["iteration"] for r in path] == list(range(81))
        assert curve.y.tolist() == [r["loss"] for r in path] and curve.starts == (40.0,)
        params = json.loads((first / "unit.json").read_text())["params"]
        assert curve.label == f"seed={params['seed']} lr={params['lr']}"  # what its units' labels share


@pytest.mark.slow
def test_pca_projection_equals_numpy_svd_of_raw_points(toy_store):
    from safetensors.numpy import load_file

    from lowloss import jobs
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figure_data import pca_data

    study = open_study(toy_store)
    view = study.stage("m2m")
    spec = next(f for f in jobs.get_kind("toy_path").figures if f.style == "pca")
    data = pca_data(study, view, spec, list(view.units))
    assert set(data) == {"layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"}
    rows, owners = [], []
    for uid in view.units:
        unit = toy_store / "units" / "kind=toy_path" / f"unit={uid}"
        for marker in sorted((unit / "segments").glob("[0-9]*.json")):
            m = json.loads(marker.read_text())
            tensors = load_file(str(unit / f"points/{m['name']}.safetensors"))
            for step in sorted({int(k[2:10]) for k in tensors}):  # keys it<8-digit step>.<tensor>
                rows.append(tensors[f"it{step:08d}.layer1.weight"].reshape(-1))
                owners.append((uid, step))
    X = np.vstack(rows).astype(np.float64)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    expect = u[:, :2] * s[:2]
    got = np.vstack([p for _, _, p in data["layer1.weight"]["units"]])
    steps = [int(x) for _, st, _ in data["layer1.weight"]["units"] for x in st]
    assert steps == [st for _, st in owners] and steps[:2] == [0, 5] and 120 in steps
    chained = pca_data(study, study.stage("chained"), spec, list(study.stage("chained").units))
    steps_chained = [[int(x) for x in st] for _, st, _ in chained["layer2.bias"]["units"]]
    assert steps_chained == [list(range(0, 81, 5))] * 2  # phase 2's points continue after phase 1's
    for k in range(2):  # principal components are defined up to sign
        sign = np.sign(expect[:, k] @ got[:, k])
        np.testing.assert_allclose(got[:, k], sign * expect[:, k], rtol=1e-6, atol=1e-9)
    explained = float((s[:2] ** 2).sum() / (s**2).sum())
    assert math.isclose(sum(data["layer1.weight"]["explained"]), explained, rel_tol=1e-9)


# ---------------------------------------------------------------------- aggregation helpers (fast)


def test_band_aligns_curves_with_different_x_and_the_window_is_in_x():
    from lowloss.orchestrator.report.figure_data import Curve, band_of, window_average

    xs = [np.array([0.0, 1, 2, 3]), np.array([1.0, 2, 3, 4]), np.array([0.0, 2, 4])]
    ys = [np.array([1.0, 3.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0]), np.array([5.0, 6.0, 7.0])]
    curves = [Curve(f"u{i}", f"u{i}", x, y, y) for i, (x, y) in enumerate(zip(xs, ys))]
    b = band_of(curves, "mean")
    cells = {0: [1.0, 5.0], 1: [3.0, 2.0], 2: [3.0, 2.0, 6.0], 3: [4.0, 2.0], 4: [2.0, 7.0]}
    assert b.x.tolist() == [0, 1, 2, 3, 4]
    assert b.n.tolist() == [len(cells[x]) for x in range(5)]
    for x in range(5):
        assert close(b.center[x], statistics.fmean(cells[x]))
        sd = statistics.stdev(cells[x]) if len(cells[x]) > 1 else 0.0
        assert close(b.upper[x] - b.center[x], sd) and close(b.center[x] - b.lower[x], sd)
    g = band_of(curves, "geometric")  # never below 0, whatever the spread
    assert (g.lower > 0).all() and close(g.center[2], math.exp(statistics.fmean(math.log(v) for v in cells[2])))
    q = band_of(curves, "quantiles")
    assert close(q.center[2], 3.0) and close(q.lower[2], float(np.quantile(cells[2], 0.25)))
    # the window is in x units: sparse x (every 10) with width 10 keeps every point; width 25 averages 3
    x = np.array([0.0, 10, 20, 30, 40])
    y = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert window_average(x, y, 10).tolist() == y.tolist()
    assert window_average(x, y, 25).tolist() == [1.0, 1.5, 7 / 3, 14 / 3, 28 / 3]
    assert window_average(x, y, 0) is y


def test_glob_columns_give_one_line_per_layer():
    from lowloss.orchestrator.report.figure_data import expand_columns

    names = ["iteration", "loss", "dist.conv1.weight", "dist.fc.bias", "var.conv1.weight"]
    assert expand_columns(("dist.*",), ("layer",), names) == [
        ("dist.conv1.weight", "conv1.weight", "dist.*"),
        ("dist.fc.bias", "fc.bias", "dist.*"),
    ]
    assert expand_columns(("loss", "missing"), ("training loss", "x"), names) == [("loss", "training loss", "")]
    assert expand_columns(("*.weight",), (), names) == [
        ("dist.conv1.weight", "dist.conv1", "*.weight"),
        ("var.conv1.weight", "var.conv1", "*.weight"),
    ]


# ---------------------------------------------------------------------- what is drawn is what the rows say


def raw_chains(store: Path, stage: str, role: str | None) -> list[list[Path]]:
    """The stage's paths from raw unit.json files: a unit continuing another of the stage through input ``role``
    follows it; a path ends at a unit nothing continues."""
    units = raw_stage_units(store, stage)
    by_id = {u.name[len("unit=") :]: u for u in units}
    previous = {}
    for u in units:
        inputs = json.loads((u / "unit.json").read_text())["inputs"]
        if role and inputs.get(role) in by_id:
            previous[u] = by_id[inputs[role]]
    continued = set(previous.values())
    chains = []
    for u in units:
        if u in continued:
            continue
        chain = [u]
        while chain[0] in previous:
            chain.insert(0, previous[chain[0]])
        chains.append(chain)
    return chains


def expected_curves(store: Path, stage: str, spec, names: list[str]) -> dict[tuple[str, str], tuple[list, list]]:
    """(column, last unit id) → (x, drawn y) computed from the raw rows: finite values in row order, smoothed over a
    trailing window of ``spec.smooth`` x units when the column has a value in ≥ 90 % of the path's rows."""
    import fnmatch

    columns = [
        n
        for n in names
        for e in (*spec.ys, *spec.y2s)
        if fnmatch.fnmatchcase(n, e) and not any(fnmatch.fnmatchcase(n, p) for p in spec.exclude)
    ]
    out = {}
    for chain in raw_chains(store, stage, spec.chain):
        rows = raw_path(chain, spec.table, spec.x) if len(chain) > 1 else raw_rows(chain[0], spec.table)
        for col in dict.fromkeys(columns):
            pts = sorted(
                ((r[spec.x], r[col]) for r in rows if r.get(col) is not None and math.isfinite(r[col])),
                key=lambda p: p[0],
            )
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            dense = len(pts) >= 0.9 * len(rows)
            if spec.style == "band" and dense and spec.smooth > 1:
                ys = trailing_mean(xs, ys, spec.smooth)
            out[(col, chain[-1].name[len("unit=") :])] = (xs, ys)
    return out


def drawn_lines(fig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        line.get_gid(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_gid()
    }


@pytest.mark.slow
def test_plotted_data_of_every_series_equals_the_raw_rows(toy_store, default_store, monkeypatch):
    """Extract every drawn curve from the figures' artists and compare it with an independent computation from the
    raw Parquet rows; then the same with bands (many curves): their central line is the geometric mean (log axis) or
    the median (interpolation lines) of the raw curves, and no band touches 0 on a log axis."""
    from lowloss import jobs
    from lowloss.orchestrator.report import figures
    from lowloss.orchestrator.report.api import open_study

    plt = figures.canvas.plt()
    checked = 0
    for store, stages in ((toy_store, ("m2m", "chained")), (default_store[0], ("modes", "lmc"))):
        study = open_study(store)
        for stage in stages:
            view = study.stage(stage)
            for spec in jobs.get_kind(view.kind).figures:
                if spec.style not in ("band", "line"):
                    continue
                names = study.column_names(stage, spec.table)
                expect = expected_curves(store, stage, spec, names)
                made = figures.xy_figures(study, view, spec)
                drawn: dict = {}
                for _, fig, _ in made:
                    drawn.update(drawn_lines(fig))
                    plt.close(fig)
                curves = {
                    tuple(g.split("|")): v
                    for g, v in drawn.items()
                    if g.count("|") == 1 and not g.startswith(("threshold", "boundary"))
                }
                centers = {g.split("|")[0]: v for g, v in drawn.items() if "|center|" in g}
                for (col, uid), (xs, ys) in expect.items():
                    if (col, uid) in curves:
                        x, y = curves[(col, uid)]
                        np.testing.assert_allclose(x, xs, err_msg=f"{stage} {spec.name} {col}")
                        np.testing.assert_allclose(y, ys, rtol=1e-9, err_msg=f"{stage} {spec.name} {col}")
                        checked += 1
                    else:  # a per-tensor figure of many paths draws each tensor's geometric-mean line
                        assert col in centers, (stage, spec.name, col)
                per_col: dict = {}
                for (col, _), (xs, ys) in expect.items():
                    per_col.setdefault(col, []).append(dict(zip(xs, ys)))
                for col, (x, y) in centers.items():
                    for xi, yi in zip(x, y):
                        vals = [c[xi] for c in per_col[col] if xi in c]
                        assert close(yi, math.exp(statistics.fmean(math.log(v) for v in vals)), rel=1e-9)
                        checked += 1
                assert set(curves) <= set(expect)
                if spec.threshold_param:  # the verdict's threshold is drawn where the units' param says
                    values = {
                        json.loads((u / "unit.json").read_text())["params"][spec.threshold_param]
                        for u in raw_stage_units(store, stage)
                    }
                    assert {float(g.split("|")[1]) for g in drawn if g.startswith("threshold|")} == values
                if spec.chain and stage == "chained":  # the phase boundary where phase 2 begins
                    assert {float(g.split("|")[1]) for g in drawn if g.startswith("boundary|")} == {40.0}
    assert checked > 500

    # many curves: bands. Interpolation lines: median and quantile bands of the raw curves, and the barrier histogram
    monkeypatch.setattr(figures.xy, "FEW_CURVES", 2)
    store, _ = default_store
    study = open_study(store)
    spec = next(f for f in jobs.get_kind("interpolate").figures if f.name == "loss")
    ((_, fig, _),) = figures.xy_figures(study, study.stage("lmc"), spec)
    drawn = drawn_lines(fig)
    lines = [sorted(raw_rows(u, "line"), key=lambda r: r["alpha"]) for u in raw_units(store, "interpolate")]
    key = next(g for g in drawn if g.startswith("train_loss|center|"))
    np.testing.assert_allclose(drawn[key][1], [np.median([line[i]["train_loss"] for line in lines]) for i in range(11)])
    bars = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "hist|barrier_train_loss"]
    barriers = sorted(raw_result(u)["barrier_train_loss"] for u in raw_units(store, "interpolate"))
    assert sum(p.get_height() for p in bars) == 6
    assert min(p.get_x() for p in bars) == pytest.approx(barriers[0])
    assert max(p.get_x() + p.get_width() for p in bars) == pytest.approx(barriers[-1])
    plt.close(fig)
    # band figures of paths on a log axis: geometric mean, the shaded band strictly positive
    study = open_study(toy_store)
    spec = next(f for f in jobs.get_kind("toy_path").figures if f.name == "loss")
    ((_, fig, _),) = figures.xy_figures(study, study.stage("m2m"), spec)
    ax = fig.axes[0]
    verts = np.concatenate([p.get_paths()[0].vertices for p in ax.collections])
    assert (verts[:, 1] > 0).all()
    expect = expected_curves(toy_store, "m2m", spec, study.column_names("m2m", "path"))
    (center,) = [v for g, v in drawn_lines(fig).items() if g.startswith("loss|center|")]
    for xi, yi in zip(*center):
        vals = [dict(zip(*c))[xi] for c in expect.values()]
        assert close(yi, math.exp(statistics.fmean(math.log(v) for v in vals)), rel=1e-9)
    plt.close(fig)


def test_per_tensor_styles_group_layers_and_highlight_the_farthest():
    from lowloss.orchestrator.report.figure_data import Band, Series
    from lowloss.orchestrator.report.figures.xy import _tensor_colours

    def series(name: str, end: float) -> Series:
        x = np.arange(3.0)
        y = np.array([10.0, 5.0, end])
        return Series(f"dist.{name}", name, (), 0, "dist.*", True, 0.0, [], Band(x, y, y, y, np.ones(3), "mean"))

    few = [series(n, 1.0) for n in ("conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc.weight")]
    styles, grey = _tensor_colours(few)
    assert grey == 0
    assert styles["dist.conv1.weight"][0] == styles["dist.conv1.bias"][0] != styles["dist.bn1.weight"][0]
    assert styles["dist.conv1.weight"][1] != styles["dist.conv1.bias"][1]  # one layer: a line style per tensor
    many = [series(f"layer{i}.weight", float(i)) for i in range(62)]  # ResNet18's count of tensors
    styles, grey = _tensor_colours(many)
    coloured = sorted(c for c, st in styles.items() if st[3])
    assert grey == 56 and coloured == sorted(f"dist.layer{i}.weight" for i in range(56, 62))
    assert {st[0] for c, st in styles.items() if not st[3]} == {"0.7"}


PAIR_STAGES = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    pairs = "consecutive"
    points = 5

    [[stages]]
    name = "m2m"
    kind = "m2m"
    from = "modes"
    pairs = "consecutive"
    lr = 0.01
    eval_every = 5
    point_stride = 5
    segment_iterations = 10
    l_thres = 0.5
    distance_threshold = 0.5

    [[stages.phases]]
    layers = ["fc1"]
    iterations = 10
    step_a = 0.05
    rounds = 2

    [[stages.phases]]
    add = ["fc2"]
    iterations = 10
    step_a = 0.1
    rounds = 2
"""


@pytest.fixture(scope="module")
def pair_store(tmp_path_factory):
    """A small real LLPF study: 3 MLP modes, the straight line and a 2-phase M2M path between consecutive ones."""
    tmp = tmp_path_factory.mktemp("pairs")
    spec = tmp / "spec.toml"
    spec.write_text(spec_text(name="pairs", seeds="[0, 1, 2]", stages=PAIR_STAGES))
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return store


@pytest.mark.slow
def test_headline_table_and_pca_destination_equal_the_raw_files(pair_store, tmp_path):
    from safetensors.numpy import load_file

    from lowloss import jobs
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figure_data import pca_data

    out = tmp_path / "out"
    text = run_cli("report", pair_store, "--out", out, check=True).stdout
    headline = list(csv.DictReader(io.StringIO((out / "figures" / "m2m-headline.csv").read_text())))
    assert "| pair=0-1 |" in text and (out / "figures" / "m2m-headline.png").exists()
    lines = {
        frozenset(json.loads((u / "unit.json").read_text())["inputs"].values()): raw_result(u)
        for u in raw_units(pair_store, "interpolate")
    }
    last = [u for u in raw_stage_units(pair_store, "m2m") if "valid" in raw_result(u)]
    assert len(last) == len(headline) == 2
    for unit, row in zip(last, headline):
        result, inputs = raw_result(unit), json.loads((unit / "unit.json").read_text())["inputs"]
        line = lines[frozenset((inputs["p0"], inputs["dest"]))]
        a, b = result["pair"]
        assert row["pair"] == f"pair={a}-{b}"
        assert row["path: max full-set train loss"] == f"{result['path_max_train_loss']:.4g}"
        assert row["straight line: max train loss"] == f"{line['max_train_loss']:.4g}"
        assert row["straight line: train-loss barrier"] == f"{line['barrier_train_loss']:.4g}"
        assert row["valid"] == ("yes" if result["valid"] else "no") and row["L_thres"] == "0.5"
        assert row["reached D"] == ("yes" if result["distance_converged"] else "no")

    # D in the PCA figure: the destination mode's final state, projected on the principal axes of the path points
    study = open_study(pair_store)
    view = study.stage("m2m")
    spec = next(f for f in jobs.get_kind("m2m_phase").figures if f.style == "pca")
    data = pca_data(study, view, spec, list(view.units))
    assert "fc1.weight" in data and not any("running" in n for n in data)
    rows = []
    for chain in raw_chains(pair_store, "m2m", "start"):
        for k, unit in enumerate(chain):
            for marker in sorted((unit / "segments").glob("[0-9]*.json")):
                m = json.loads(marker.read_text())
                if f"points/{m['name']}.safetensors" not in m["files"]:
                    continue
                tensors = load_file(str(unit / f"points/{m['name']}.safetensors"))
                for key in sorted(t for t in tensors if t.endswith(".fc1.weight")):
                    if k and int(key[2:10]) == 0:
                        continue
                    rows.append(tensors[key].reshape(-1).astype(np.float64))
    X = np.vstack(rows)
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    got = data["fc1.weight"]["destinations"]
    assert [label for label, _ in got] == ["pair=0-1", "pair=1-2"]
    for (_label, q), chain in zip(got, raw_chains(pair_store, "m2m", "start")):
        dest = json.loads((chain[-1] / "unit.json").read_text())["inputs"]["dest"]
        d = load_file(str(pair_store / "units" / "kind=train" / f"unit={dest}" / "final.safetensors"))["fc1.weight"]
        expect = (d.reshape(-1).astype(np.float64) - mean) @ vt[:2].T
        for k in range(2):  # principal axes are defined up to sign
            assert abs(abs(q[k]) - abs(expect[k])) < 1e-6 * max(1.0, abs(expect[k]))


@pytest.mark.slow
def test_results_export_and_several_stores_reported_together(pair_store, default_store, tmp_path):
    store, _ = default_store
    proc = run_cli("results", pair_store, "--stage", "m2m", check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    units = raw_stage_units(pair_store, "m2m")
    assert [r["unit"] for r in rows] == [u.name[len("unit=") :] for u in units]
    for r, u in zip(rows, units):
        params, result = json.loads((u / "unit.json").read_text())["params"], raw_result(u)
        assert r["state"] == "done" and r["param.phase"] == str(params["phase"])
        assert float(r["max_train_loss"]) == result["max_train_loss"]
        assert float(r["path_so_far.max_train_loss"]) == result["path_so_far"]["max_train_loss"]
        assert r["param.train.lr"] == "0.05"  # inherited from its two modes, named as in the spec
    run_cli("results", store, "--stage", "lmc", "--format", "parquet", "--out", tmp_path / "lmc.parquet", check=True)
    table = pq.read_table(tmp_path / "lmc.parquet")
    assert table.num_rows == 6 and "barrier_train_loss" in table.column_names
    md = run_cli("results", store, "--stage", "lmc", "--format", "md", check=True).stdout
    assert md.count("\n| lmc |") == 6
    bad = run_cli("results", store, "--stage", "lmc", "--format", "xlsx")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "lowloss: error: --format = 'xlsx': unknown format; allowed: csv, parquet, md"
    )

    # two stores of different studies: one summary grouped by study, stages of the same name merged
    both = list(csv.DictReader(io.StringIO(run_cli("report", store, pair_store, "--format", "csv", check=True).stdout)))
    modes = {r["study"]: r for r in both if r["stage"] == "modes" and r["metric"] == "final_test_loss"}
    assert set(modes) == {"digits-default", "pairs"}
    assert modes["pairs"]["n"] == "3" and modes["digits-default"]["n"] == "4"
    finals = [max(raw_rows(u, "evals"), key=lambda r: r["epoch"])["test_loss"] for u in raw_units(pair_store, "train")]
    assert close(modes["pairs"]["mean"], statistics.fmean(finals))
    assert {r["stage"] for r in both} == {"modes", "lmc", "m2m"}


def test_one_precision_per_metric_across_cells_and_groups():
    from lowloss.orchestrator.report.summary import cells, set_decimals

    def row(group, fmt, mean, std, lo, hi, metric="m"):
        return {
            "stage": "s",
            "metric": metric,
            "type": "metric",
            "fmt": fmt,
            "group": group,
            "n": 3,
            "missing": 0,
            "mean": mean,
            "std": std,
            "min": lo,
            "max": hi,
        }

    rows = [
        row({"lr": 0.1}, ".4g", 0.04837, 0.0, 0.04837, 0.04837),
        row({"lr": 0.2}, ".4g", 0.0108, 1e-5, 0.0107, 0.0109),
        row({}, ".4f", 0.5, 0.25, 0.1, 0.9, metric="f"),
    ]
    set_decimals(rows)
    shown = [cells(r) for r in rows]
    assert shown[0] == {"n": "3", "mean": "0.04837", "std": "0.00000", "min": "0.04837", "max": "0.04837"}
    assert shown[1]["mean"] == "0.01080" and shown[1]["std"] == "0.00001"  # the same decimals as the other group
    assert shown[2]["mean"] == "0.5000" and shown[2]["std"] == "0.2500"  # a fixed-point format keeps its decimals


@pytest.mark.slow
def test_a_damaged_segment_stops_the_report_with_the_repair_not_a_silent_gap(toy_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(toy_store, store)
    unit = raw_stage_units(store, "m2m")[0]
    part = sorted((unit / "path").glob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-7])  # a truncated file under an intact marker
    proc = run_cli("report", store, "--out", tmp_path / "out")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("lowloss: error: ") and f"path/{part.name}" in line and "--repair" in line
    assert not (tmp_path / "out" / "figures" / "m2m-loss.png").exists()


@pytest.mark.slow
def test_a_swept_study_runs_every_combination_and_reports_by_the_sweep(tmp_path):
    """Issue 14 item 6: `[sweep]` over a stage field; run and report group by the swept field without --by."""
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(name="swept", seeds="[0]", stages=TOY_STAGES.replace("seeds = [0, 1, 2]", "seeds = [0, 1]"))
        + "    iterations = 40\n    segment_iterations = 20\n"
        + "[sweep]\nstages.m2m.threshold = [0.05, 0.3]\n"
    )
    store = tmp_path / "store"
    out = run_cli("run", spec, "--store", store, check=True).stdout
    assert "summary by threshold" in out
    units = raw_stage_units(store, "m2m")
    assert len(units) == 2 * 2 * 2  # seeds x lrs x thresholds
    rows = report_csv(store, "--stage", "m2m")  # no --by: grouped by the sweep
    params = [json.loads((u / "unit.json").read_text())["params"] for u in units]
    results = [raw_result(u) for u in units]
    for threshold in (0.05, 0.3):
        mine = {r["metric"]: r for r in rows if float(r["threshold"]) == threshold}
        group = [r for r, p in zip(results, params) if p["threshold"] == threshold]
        assert mine["max_train_loss"]["n"] == "4"
        assert close(mine["max_train_loss"]["mean"], sample_stats([r["max_train_loss"] for r in group])["mean"])
    labels = {r["label"] for r in csv.DictReader(io.StringIO(run_cli("results", store, "--stage", "m2m").stdout))}
    assert {label.rsplit(" ", 1)[-1] for label in labels} == {
        "(stages.m2m.threshold=0.05)",
        "(stages.m2m.threshold=0.3)",
    }


@pytest.mark.slow
def test_grouped_figures_colour_by_group_and_count_every_unit(default_store):
    """With groups (a sweep's combinations, or --by): one colour per group — a unit's train and test lines share
    their group's — a legend key per group with its unit count, the subtitle says how many groups, and the figure
    counts every unit drawn (not one group's)."""
    from matplotlib.colors import to_hex

    from lowloss import jobs
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figures import xy_figures

    store, _ = default_store
    study = open_study(store)
    (view,) = study.stages(["modes"])
    spec = next(f for f in jobs.get_kind("train").figures if f.name == "loss")
    ((_, fig, count),) = xy_figures(study, view, spec, by=["seed"])
    assert count == 4
    colours: dict[str, set[str]] = {}
    for gid, line in ((ln.get_gid(), ln) for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()):
        column, uid = gid.split("|", 1)
        colours.setdefault(uid, set()).add(to_hex(line.get_color()))
    assert len(colours) == 4 and all(len(c) == 1 for c in colours.values())  # train + test of a unit: one colour
    assert len({next(iter(c)) for c in colours.values()}) == 4  # a colour per group
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert [lb for lb in labels if lb.startswith("seed=")] == [f"seed={s} (1 unit)" for s in range(4)]
    assert "4 groups" in fig.axes[0].get_title()


@pytest.mark.slow
def test_report_of_a_stage_without_the_swept_stage_field_is_one_group(tmp_path):
    """A sweep over a field of the lmc stage: `report --stage modes` (whose units lack it) is one group, no error."""
    stages = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    points = 3
"""
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(name="swept2", seeds="[0, 1]", model="mlp", epochs=1, stages=stages)
        + "[sweep]\nstages.lmc.points = [3, 5]\n"
    )
    store = tmp_path / "store"
    run_cli("run", spec, "--store", store, check=True)
    modes = report_csv(store, "--stage", "modes")
    assert {r["stage"] for r in modes} == {"modes"} and "points" not in modes[0]
    assert {r["n"] for r in modes} == {"2"}  # the two modes, trained once for both combinations
    lines = report_csv(store, "--stage", "lmc")
    assert {r["points"] for r in lines} == {"3", "5"}
