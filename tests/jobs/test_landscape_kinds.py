"""The landscape stage and its unit kinds (direction, scan, hessian) on the core-v2 planning protocol (issue 12)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, spec_text

from lowloss.jobs import PlannedUnit, Ref, StudyContext
from lowloss.jobs.landscape import LandscapeStage, LandscapeStageKind, w_basin_points


class _View:
    """The plan view of a study whose mode stage ``modes`` is closed with one unit per seed."""

    stage = "land"

    def __init__(self, seeds):
        self.modes = [PlannedUnit(f"mode{s}", "train", {"seed": s}, f"seed={s}", {}) for s in seeds]

    def units(self, stage=None):
        return self.modes if stage == "modes" else []

    def result(self, uid):
        return None

    def failed(self, uid):
        return False

    def is_open(self, stage):
        return False

    def decided(self, stage):
        return True


STUDY = StudyContext(seeds=(0, 1, 2), data={"dataset": "digits"}, model={"name": "small_cnn"}, train={})


def test_plan_chains_directions_curves_shards_and_hessian_per_centre():
    table = LandscapeStage.model_validate(
        {
            "from": "modes",
            "seeds": [0, 2],
            "scales": [0.1, 1.0],
            "points": 41,
            "directions": [
                {"kind": "gaussian", "seed": 0},
                {"kind": "gaussian", "seed": 1, "normalisation": "filnorm"},
                {"kind": "to_mode"},
            ],
            "surface": {"x_points": 11, "y_points": 11, "shard": [6, 6]},
            "hessian": {"k": 5},
        }
    )
    plan = LandscapeStageKind().plan(table, STUDY, _View([0, 1, 2]))
    assert not plan.open
    kinds = [d.kind for d in plan.drafts]
    # per centre: 3 directions, 2 gaussian × 2 scales + 1 to_mode curve, 4 shards, 1 hessian
    assert kinds.count("direction") == 6 and kinds.count("scan") == 2 * (5 + 4) and kinds.count("hessian") == 2
    by_label = {d.label: d for d in plan.drafts}
    to_mode = by_label["seed=2 dir=2 to_mode=0"]  # the next seed, cyclically
    assert to_mode.inputs["target"] == "mode0" and to_mode.params.others == 2
    assert [r.unit for r in (to_mode.inputs["other.0"], to_mode.inputs["other.1"])] == [
        by_label["seed=2 dir=0 gaussian(0)"],
        by_label["seed=2 dir=1 gaussian(1)"],
    ]
    curve = by_label["seed=0 dir=1 λ∈[-0.1,0.1]"]
    assert curve.inputs["direction"] == Ref(by_label["seed=0 dir=1 gaussian(1)"], "directions")
    assert (curve.params.lambda_min, curve.params.lambda_max, curve.params.points) == (-0.1, 0.1, 41)
    w = by_label["seed=0 dir=2 λ∈[-1,2]"].params
    assert w.points == w_basin_points(41) == 43
    grid = [w.lambda_min + (w.lambda_max - w.lambda_min) * i / (w.points - 1) for i in range(w.points)]
    assert min(abs(x) for x in grid) < 1e-12 and min(abs(x - 1) for x in grid) < 1e-12  # both modes on the grid
    shards = sorted(
        d.params.shard
        for d in plan.drafts
        if d.kind == "scan" and d.params.shape == "surface" and d.inputs["centre"] == "mode0"
    )
    assert shards == [(0, 6, 0, 6), (0, 6, 6, 11), (6, 11, 0, 6), (6, 11, 6, 11)]
    assert plan.drafts[-1].kind == "hessian" and plan.drafts[-1].inputs == {"centre": "mode2"}


def test_plan_waits_for_its_mode_stage():
    class Open(_View):
        def is_open(self, stage):
            return True

    table = LandscapeStage.model_validate({"from": "modes"})
    plan = LandscapeStageKind().plan(table, STUDY, Open([0]))
    assert plan.open and plan.drafts == []


LANDSCAPE = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "land"
    kind = "landscape"
    from = "modes"
"""


@pytest.mark.parametrize(
    "extra, field",
    [
        ('directions = [{kind = "to_mode"}]', "directions[0].target_seed"),  # one mode: no other mode to go to
        ("points = 20", "points"),
        ("seeds = [5]", "seeds"),
        ("surface = {directions = [0, 0]}", "surface.directions"),
        ('bn = "upbn"', "bn"),
        ('directions = [{kind = "gaussian", normalisation = "layer"}]', "normalisation"),
    ],
)
def test_validate_names_the_field(write_spec, extra, field):
    proc = run_cli("validate", write_spec(spec_text(seeds="[0]", stages=LANDSCAPE + "    " + extra + "\n")))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stdout + proc.stderr


def test_recipe_validates_and_plans():
    proc = run_cli("validate", "landscape-digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("plan", "landscape-digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 3 modes; per centre 3 directions, 2 curves at s = 1 + 1 w-basin curve, 4 shards, 1 hessian: 3 + 3 · 11
    assert "36 unit(s) would run" in proc.stdout
    assert "surface 11 × 11" in proc.stdout and "in 4 shards" in proc.stdout


def _tensors(store: Path, unit: dict, output: str) -> dict:
    """A committed tensor set of a unit (``final``, ``directions``), read through the store (digest checked)."""
    from lowloss.orchestrator.store import Store

    return Store(store).tensors(unit["unit"]["id"], output)


def _units(store: Path, kind: str) -> list[dict]:
    out = []
    for d in sorted((store / "units" / f"kind={kind}").glob("unit=*")):
        out.append(
            {
                "dir": d,
                "unit": json.loads((d / "unit.json").read_text()),
                "result": json.loads((d / "result.json").read_text()),
            }
        )
    return out


@pytest.mark.slow
def test_small_landscape_end_to_end_whole_and_sharded_surfaces_agree(tmp_path, write_spec):
    """Modes, directions (bit for bit the workers' draw), curves with classes, a 5 × 5 surface once as one shard and
    once as four (identical values), and the Hessian with its eigenvectors stored as directions."""
    import torch

    from lowloss.orchestrator.api import open_study
    from lowloss.workers.directions import gaussian_direction
    from lowloss.workers.landscape import Grid, assemble_surface

    dirs = (
        '[{kind = "gaussian", seed = 0, normalisation = "filnorm", one_d = "zero"}, '
        '{kind = "gaussian", seed = 1, normalisation = "filnorm", one_d = "zero"}]'
    )
    stages = (
        LANDSCAPE
        + f"""    seeds = [0]
    directions = {dirs[:-1]}, {{kind = "to_mode"}}]
    scales = [1.0]
    points = 9
    eval_examples = 400
    surface = {{x_points = 5, y_points = 5, shard = [3, 3]}}
    hessian = {{k = 3, which = ["LA", "SA"], examples = 200, trace_samples = 10, slq_steps = 20}}

    [[stages]]
    name = "whole"
    kind = "landscape"
    from = "modes"
    seeds = [0]
    directions = {dirs}
    scales = []
    eval_examples = 400
    surface = {{x_points = 5, y_points = 5, shard = [5, 5]}}
"""
    )
    spec = write_spec(spec_text(seeds="[0, 1]", model="mlp", epochs=2, segment_steps=50, stages=stages))
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    study = open_study(store)
    grid = Grid(x_points=5, y_points=5)
    surfaces = {}
    for stage in ("land", "whole"):
        view = study.stage(stage)
        rows = [
            r
            for uid in view.units
            if view.kind_of(uid) == "scan"
            for r in (study.unit_rows(uid, "surface") or _empty()).to_pylist()
        ]
        surfaces[stage] = {c: assemble_surface(rows, grid, c) for c in ("train_loss", "test_acc")}
    for column in ("train_loss", "test_acc"):
        assert np.array_equal(surfaces["land"][column], surfaces["whole"][column])  # bit for bit
    assert np.isfinite(surfaces["land"]["train_loss"]).all()

    directions = _units(store, "direction")
    assert len(directions) == 3  # the "whole" stage reuses the two Gaussian directions of "land"
    (mode0,) = [u for u in _units(store, "train") if u["unit"]["params"]["seed"] == 0]
    centre = _tensors(store, mode0, "final")
    for d in directions:
        params, result = d["unit"]["params"], d["result"]
        stored = _tensors(store, d, "directions")
        if params["direction"] == "gaussian":
            names = [n for n in stored]
            again = gaussian_direction(centre, names, params["seed"], "filnorm", "zero")
            assert all(torch.equal(stored[n], again[n]) for n in names)
            assert all(float(stored[n].abs().sum()) == 0 for n in names if stored[n].dim() == 1)  # one_d = zero
        else:
            assert set(result["angles_deg"]) == {"other.0", "other.1"}
        for angle in result["angles_deg"].values():
            assert 80 < angle < 100

    curves = [u["result"] for u in _units(store, "scan") if u["result"]["shape"] == "curve"]
    assert len(curves) == 3
    for c in curves:
        assert c["class"] in ("v-basin", "v-side", "w-basin", "w-peak", "other")
        assert sum(c[f"is_{k}"] for k in ("v_basin", "v_side", "w_basin", "w_peak", "other")) == 1
        assert c["centre_train_loss"] <= c["max_train_loss"]

    (hessian,) = _units(store, "hessian")
    h = hessian["result"]
    assert h["eigenvalues_LA"] == sorted(h["eigenvalues_LA"], reverse=True) and h["eigenvalues_LA"][0] > 0
    assert h["eigenvalues_SA"][0] <= h["eigenvalues_SA"][-1] <= h["eigenvalues_LA"][-1]
    assert math.isfinite(h["trace"]) and abs(h["density_mean"] - h["trace"] / h["dim"]) < 1.0
    vectors = _tensors(store, hessian, "directions")
    tensors = {k.split(".", 1)[1] for k in vectors}
    for which in ("LA", "SA"):
        for rank in range(3):
            v = torch.cat([vectors[f"{which}{rank}.{t}"].flatten() for t in sorted(tensors)])
            assert abs(float(v.norm()) - 1) < 1e-4  # unit eigenvectors

    proc = run_cli("report", store, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "land (scan): 11 of 11 unit(s) committed" in proc.stdout
    assert "curve class v-basin" in proc.stdout
    for name in ("land-curves", "land-contour", "land-spectrum", "land-density", "whole-contour"):
        assert (tmp_path / "report" / "figures" / f"{name}.png").exists(), name


def _empty():
    import pyarrow as pa

    return pa.table({})


@pytest.mark.slow
def test_gaussian_curves_at_s1_around_a_trained_mode_are_v_basins(tmp_path, write_spec):
    """Xu et al. §2.2 (GMI) through the kinds: ≥ 90 % of 10 Gaussian curves at s = 1 (41 points) are v-basins; the
    gradient direction under ``norm`` has the model's norm, is ~90° from every Gaussian one, and gives a v-side."""
    dirs = ", ".join(
        f'{{kind = "gaussian", seed = {s}, normalisation = "{n}"}}' for n in ("norm", "filnorm") for s in range(5)
    )
    dirs += ', {kind = "gradient", normalisation = "norm"}'
    stages = LANDSCAPE + f"    directions = [{dirs}]\n    scales = [1.0]\n    points = 41\n"
    # the recipe's training (OneCycle, annealed to a low rate): a constant-rate SGD endpoint of this MLP sits just
    # beside the basin's bottom along some directions (8 of 10 v-basins, the other two v-sides at 41 points)
    train = 'schedule = "onecycle"\nmax_lr = 0.1\nweight_decay = 5e-4'
    spec = write_spec(
        spec_text(seeds="[0]", model="mlp", epochs=20, segment_steps=500, stages=stages, train_extra=train)
    )
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gaussian = {u["dir"].name for u in _units(store, "direction") if u["unit"]["params"]["direction"] == "gaussian"}
    classes = [
        u["result"]["class"]
        for u in _units(store, "scan")
        if any(ref.split(":")[0] in {g[len("unit=") :] for g in gaussian} for ref in u["unit"]["inputs"].values())
    ]
    assert len(classes) == 10
    assert sum(c == "v-basin" for c in classes) >= 9, classes
    # the gradient direction, normalised with "norm", has the norm of the model's parameters
    (grad,) = [u for u in _units(store, "direction") if u["unit"]["params"]["direction"] == "gradient"]
    (mode,) = _units(store, "train")
    centre = _tensors(store, mode, "final")
    theta_norm = math.sqrt(sum(float(centre[n].double().pow(2).sum()) for n in _tensors(store, grad, "directions")))
    assert abs(grad["result"]["norm"] - theta_norm) < 1e-4 * theta_norm
    (grad_curve,) = [
        u["result"]
        for u in _units(store, "scan")
        if u["unit"]["inputs"]["direction"].split(":")[0] == grad["unit"]["id"]
    ]
    assert grad_curve["class"] == "v-side"  # Xu et al. §2.3: the negative gradient leaves θ on the valley side
    angles = grad["result"]["angles_deg"]
    assert len(angles) == 10 and all(85 < a < 95 for a in angles.values())  # a fixed vector against Gaussian ones


@pytest.mark.slow
def test_curve_killed_mid_scan_resumes_to_identical_digests(tmp_path, write_spec):
    """A scan unit killed (SIGKILL) after some of its points resumes at the next point; the store's digests equal
    those of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env, digests

    stages = LANDSCAPE + '    directions = [{kind = "gaussian", seed = 3}]\n    scales = [1.0]\n    points = 41\n'
    spec = write_spec(
        spec_text(seeds="[0]", model="small_cnn", epochs=1, segment_steps=50, stages=stages).replace(
            "retries = 1", "retries = 3"
        )
    )
    run_cli("run", spec, "--store", tmp_path / "ref", check=True)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "run", str(spec), "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )
    killed_at = None
    try:
        deadline = time.monotonic() + 300
        while killed_at is None and time.monotonic() < deadline:
            units = list(store.glob("units/kind=scan/unit=*"))
            done = len(list((units[0] / "segments").glob("*.json"))) if units else 0
            if 3 <= done < 41:
                running = [json.loads(p.read_text()) for p in (units[0] / "attempts").glob("*.json")]
                running = [a for a in running if a["state"] == "running"]
                if running:
                    os.kill(running[0]["pid"], signal.SIGKILL)
                    killed_at = done
            time.sleep(0.01)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert killed_at is not None, "the curve finished before it could be killed"
    assert proc.returncode == 0, out
    (unit,) = store.glob("units/kind=scan/unit=*")
    attempts = [json.loads(p.read_text()) for p in (unit / "attempts").glob("*.json")]
    assert len(attempts) >= 2
    assert digests(store) == digests(tmp_path / "ref")
