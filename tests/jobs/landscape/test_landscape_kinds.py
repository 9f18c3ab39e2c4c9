"""The landscape stage and its unit kinds (direction, scan, hessian) on the core-v2 planning protocol (issue 12)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, spec_text

from lowloss.jobs import DataParams, ModelParams, PlannedUnit, Ref, StudyContext, TrainRecipe
from lowloss.jobs.landscape import LandscapeStage, LandscapeStageKind
from lowloss.jobs.landscape.settings import w_basin_points


def _mode(seed: int, model: str):
    from lowloss.jobs import DataParams, ModelParams, TrainRecipe
    from lowloss.jobs.train import TrainParams

    return TrainParams(
        seed=seed, model=ModelParams(name=model), data=DataParams(dataset="digits"), recipe=TrainRecipe()
    )


class _View:
    """The plan view of a study whose mode stage ``modes`` is closed with one unit per seed."""

    stage = "land"

    def __init__(self, seeds, model: str = "small_cnn"):
        self.modes = [PlannedUnit(f"mode{s}", "train", _mode(s, model), f"seed={s}", {}) for s in seeds]

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


STUDY = StudyContext(
    seeds=(0, 1, 2), data=DataParams(dataset="digits"), model=ModelParams(name="small_cnn"), train=TrainRecipe()
)


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
        ('directions = [{kind = "next_checkpoint"}]', "directions[0].kind"),  # no checkpoint centre takes it
    ],
)
def test_validate_names_the_field(write_spec, extra, field):
    proc = run_cli("validate", write_spec(spec_text(seeds="[0]", stages=LANDSCAPE + "    " + extra + "\n")))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stdout + proc.stderr


def test_recipe_validates_and_plans(tmp_path, capsys):
    from datafiles import write_cifar10

    from lowloss.jobs import recipes
    from lowloss.orchestrator.cli import main

    proc = run_cli("validate", "landscape-digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("plan", "landscape-digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 3 modes; landscape: per centre 3 directions, 3 curves at s = 1 (one along P.E.1) + 1 w-basin curve, 4 shards,
    # 1 hessian, and the angles unit (3 + 3 · 12 + 1); m2m: 1 phase; mined: the epoch-1 checkpoint, its hessian, a
    # mining unit and its curve; midpoints: 2 centres × (1 centre + 2 directions + 2 curves)
    assert "55 unit(s) would run" in proc.stdout
    assert "surface 11 × 11" in proc.stdout and "in 4 shards" in proc.stdout
    names = [n for n in recipes() if n.startswith("landscape-")]
    assert {"landscape-digits", "landscape-resnet32-cifar100", "landscape-mlp-cifar10"} <= set(names)
    root = write_cifar10(tmp_path / "cifar10")
    for name in names:
        if "cifar100" not in name:  # validate checks the data root (CIFAR-100 files: not written here)
            extra = ["--data-root", str(root)] if "cifar10" in name else []
            assert main(["validate", name, *extra]) == 0, f"{name}: {capsys.readouterr().err}"
        assert main(["plan", name]) == 0, f"{name}: {capsys.readouterr().err}"
        assert "would run" in capsys.readouterr().out


def _tensors(store: Path, unit: dict, output: str) -> dict:
    """A committed tensor set of a unit (``final``, ``directions``), read through the store (digest checked)."""
    from lowloss.orchestrator.store import Store

    return Store(store).read.tensors(unit["unit"]["id"], unit["unit"]["kind"], output)


def _committed_rows(store, uid: str, kind: str, table: str):
    """A unit's committed rows of one table (a pyarrow Table), read through the store (digests checked)."""
    rows = store.read.rows(uid, kind, table)
    assert rows is not None, f"unit {uid} has no rows of {table}"
    return rows


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

    from lowloss.orchestrator.report.api import open_study
    from lowloss.workers.landscape.directions import gaussian_direction
    from lowloss.workers.landscape.scans import Grid, assemble_surface

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
    for name in ("land-curves", "land-contour", "land-surface", "land-spectrum", "land-density", "whole-contour"):
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
    text = spec_text(seeds="[0]", model="mlp", epochs=20, segment_steps=500, stages=stages, train_extra=train)
    spec = write_spec(text.replace("lr = 0.05\n", ""))  # onecycle never reads lr: the spec may not set it
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
@pytest.mark.parametrize(
    "scan, total",
    [
        ('directions = [{kind = "gaussian", seed = 3}]\n    scales = [1.0]\n    points = 41\n', 41),
        (  # a shard's one loop commits chunks of 1 point, or of K with vectorize: this covers both
            'directions = [{kind = "gaussian", seed = 3}, {kind = "gaussian", seed = 4}]\n    scales = []\n'
            "    surface = {x_points = 6, y_points = 6, shard = [6, 6]}\n    vectorize = 5\n",
            8,  # 36 points in chunks of 5: 8 segments
        ),
    ],
    ids=["curve", "surface-shard-vectorized"],
)
def test_scan_killed_mid_scan_resumes_to_identical_digests(tmp_path, write_spec, scan, total):
    """A scan unit (a curve, a surface shard) killed (SIGKILL) after some of its points resumes at the next point; the
    store's digests equal those of an uninterrupted run."""
    from conftest import digests, segments_of, sigkill_mid_unit, start_cli

    stages = LANDSCAPE + "    " + scan
    spec = write_spec(
        spec_text(seeds="[0]", model="small_cnn", epochs=1, segment_steps=50, stages=stages).replace(
            "retries = 1", "retries = 3"
        )
    )
    run_cli("run", spec, "--store", tmp_path / "ref", check=True)
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)
    try:
        killed = sigkill_mid_unit(store, "kind=scan/unit=*", lambda unit: 3 <= segments_of(unit) < total, interval=0.01)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert killed, "the curve finished before it could be killed"
    assert proc.returncode == 0, out
    (unit,) = store.glob("units/kind=scan/unit=*")
    attempts = [json.loads(p.read_text()) for p in (unit / "attempts").glob("*.json")]
    assert len(attempts) >= 2
    assert digests(store) == digests(tmp_path / "ref")


# ---------------------------------------------------------------- centres, eigenvector and mined directions


class _PathView(_View):
    """Modes 0–2, an m2m stage with one two-phase path 0 → 1 (points every 10 iterations), an AutoNEB edge 1–0."""

    def __init__(self):
        from lowloss.jobs import DataParams, ModelParams
        from lowloss.jobs.autoneb import AutoNEBEdgeParams, CycleSpec
        from lowloss.jobs.llpf import M2MPhaseParams

        super().__init__([0, 1, 2], model="mlp")
        self.phases = [
            PlannedUnit(
                f"ph{k}",
                "m2m_phase",
                M2MPhaseParams(
                    pair=(0, 1), phase=k, phases=2, patterns=["*"], iterations=n, point_stride=10, step_a=0.1, rounds=1
                ),
                "",
                {},
            )
            for k, n in ((1, 40), (2, 60))
        ]
        cycles = [CycleSpec(steps=1, lr=0.1, insert="equal")]
        edge = AutoNEBEdgeParams(
            pair=(1, 0), model=ModelParams(name="mlp"), data=DataParams(dataset="digits"), cycles=cycles
        )
        self.edges = [PlannedUnit("edge", "autoneb_edge", edge, "", {})]

    def units(self, stage=None):
        return {"modes": self.modes, "m2m": self.phases, "neb": self.edges}.get(stage, [])


def test_plan_centres_mined_and_eigenvector_directions():
    table = LandscapeStage.model_validate(
        {
            "from": "modes",
            "seeds": [0],
            "scales": [1.0],
            "directions": [
                {"kind": "gaussian", "seed": 0},
                {"kind": "eigenvector", "which": "SA", "rank": 1},
                {"kind": "w_peak", "seed": 3, "epochs": 4},
                {"kind": "vvv_basin", "gamma": 0.9, "alpha": 0.1},
            ],
            "surface": {"x_points": 3, "y_points": 3, "shard": [3, 3], "directions": [0, 1]},
            "hessian": {"k": 2, "which": ["LA", "SA"]},
            "angles": {"count": 10},
            "centres": [
                {"kind": "path", "stage": "m2m", "pair": [0, 1], "at": 0.5, "directions": [0], "surface": False},
                {"kind": "interpolation", "pair": [0, 1], "at": 0.25, "directions": [0], "surface": False},
                {"kind": "saddle", "stage": "neb", "pair": [0, 1], "directions": [0], "surface": False},
                {"kind": "pivot", "stage": "neb", "pair": [0, 1], "pivot": 2, "directions": [0], "surface": False},
                {"kind": "checkpoint", "seed": 2, "epoch": 3, "directions": [0], "hessian": False, "surface": False},
            ],
        }
    )
    kind = LandscapeStageKind()
    assert kind.inputs_of(table) == ("modes", "m2m", "neb")
    plan = kind.plan(table, STUDY, _PathView())
    by_label = {d.label: d for d in plan.drafts}
    order = [d.label for d in plan.drafts]
    # the middle of a 100-iteration path: iteration 50 is step 10 of phase 2
    path = by_label["path=m2m:0-1@0.5"]
    assert path.inputs == {"a": Ref("ph2", "point:10")} and path.params.source == "point"
    assert path.params.model.name == "mlp" and path.params.seed == 0
    interp = by_label["interp=0-1@0.25"]
    assert interp.inputs == {"a": "mode0", "b": "mode1"} and interp.params.alpha == 0.25
    assert by_label["saddle=neb:0-1"].inputs == {"a": Ref("edge", "saddle")}
    pivot = by_label["pivot=neb:0-1#2"]
    assert pivot.inputs == {"a": Ref("edge", "pivots"), "template": "mode1"} and pivot.params.pivot == 2
    ckpt = by_label["seed=2@epoch3"]
    assert ckpt.inputs == {"a": "mode2"} and ckpt.params.epoch == 3
    assert "seed=2@epoch3 hessian" not in by_label and "path=m2m:0-1@0.5 hessian" in by_label
    # a centre's units take the centre draft as input
    curve = by_label["interp=0-1@0.25 dir=0 λ∈[-1,1]"]
    assert curve.inputs["centre"] is interp
    # at the mode: the hessian comes before the units that read its eigenvectors
    hess = by_label["seed=0 hessian"]
    assert order.index("seed=0 hessian") < order.index("seed=0 dir=2 w_peak(3)")
    eig = by_label["seed=0 dir=1 λ∈[-1,1]"]
    assert eig.inputs["direction"] == Ref(hess, "directions") and eig.params.select == {"direction": "SA1"}
    w = by_label["seed=0 dir=2 w_peak(3)"]
    assert w.kind == "mining" and w.inputs == {"centre": "mode0", "eigen": Ref(hess, "directions")}
    assert (w.params.algorithm, w.params.epochs, w.params.gamma, w.params.eigenvectors) == ("w_peak", 4, None, True)
    v = by_label["seed=0 dir=3 vvv_basin(0)"]
    assert (v.params.gamma, v.params.alpha, v.params.phi_init) == (0.9, 0.1, "fresh")
    assert by_label["seed=0 dir=3 λ∈[-1,2]"].params.points == w_basin_points(41)  # vvv: two models on the line
    shard = by_label["seed=0 shard=[0, 3, 0, 3]"]
    assert shard.params.select == {"y": "SA1"} and shard.inputs["y"] == Ref(hess, "directions")
    assert by_label["seed=0 angles(10)"].inputs == {"centre": "mode0"}
    # unchanged params leave mined-free ids alone: no select key in a plain curve's canonical params
    assert "select" not in by_label["seed=0 dir=0 λ∈[-1,1]"].params.canonical()


@pytest.mark.parametrize(
    "extra, field",
    [
        ('centres = [{kind = "path", stage = "modes", pair = [0, 1]}]', "centres[0].stage"),
        ('centres = [{kind = "interpolation", pair = [0, 0]}]', "centres[0].pair"),
        ('centres = [{kind = "checkpoint", seed = 0, epoch = 2}]', "centres[0].epoch"),
        ('directions = [{kind = "eigenvector", rank = 0}]', "directions[0].rank"),
        ('directions = [{kind = "w_peak", lr = 0}]', "lr"),
    ],
)
def test_validate_centres_and_new_directions_name_the_field(write_spec, extra, field):
    proc = run_cli("validate", write_spec(spec_text(seeds="[0, 1]", stages=LANDSCAPE + "    " + extra + "\n")))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_checkpoint_epochs_default_leaves_train_ids_alone():
    from lowloss.jobs import DataParams, ModelParams, TrainRecipe
    from lowloss.jobs.train import TrainParams

    def params(**recipe):
        return TrainParams(seed=0, model=ModelParams(), data=DataParams(dataset="digits"), recipe=TrainRecipe(**recipe))

    assert "checkpoint_epochs" not in params().canonical()["recipe"]
    assert params().canonical() == params(checkpoint_epochs=[]).canonical()
    assert params(epochs=4, checkpoint_epochs=[2]).canonical()["recipe"]["checkpoint_epochs"] == [2]
    with pytest.raises(ValueError, match="checkpoint_epochs"):
        TrainRecipe(epochs=3, checkpoint_epochs=[4])


@pytest.mark.slow
def test_centres_mined_and_eigenvector_directions_end_to_end(tmp_path, write_spec):
    """Through the kinds on digits: a training checkpoint and an interpolation midpoint as centres (their states are
    the stored point and (θ₀ + θ₁)/2), the w-basin towards the other mode with the interpolation stage's barrier, a
    curve along the Hessian's top eigenvector, a w-peak direction mined by Algo. 1 with its |cos| against the
    eigenvectors (Fig. 9), the angles between Gaussian directions (Fig. 5), and the figures."""
    import torch

    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.store import Store
    from lowloss.workers.data import BatchStream, load_dataset
    from lowloss.workers.interpolation import barrier, interpolate_state
    from lowloss.workers.landscape.directions import angle_degrees, gaussian_direction
    from lowloss.workers.landscape.scans import PointEvaluator
    from lowloss.workers.models import build_model

    stages = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    pairs = [[0, 1]]
    points = 11

    [[stages]]
    name = "land"
    kind = "landscape"
    from = "modes"
    seeds = [0]
    directions = [{kind = "to_mode"}, {kind = "eigenvector", rank = 0}, {kind = "w_peak", seed = 0, epochs = 2}]
    scales = [1.0]
    points = 31
    hessian = {k = 2, which = ["LA"], examples = 200, trace_samples = 4, slq_runs = 0}
    angles = {count = 20}
    centres = [{kind = "interpolation", pair = [0, 1], directions = [], hessian = false},
               {kind = "checkpoint", seed = 0, epoch = 2, directions = [], hessian = false}]
"""
    train = "checkpoint_epochs = [2]"
    spec = write_spec(
        spec_text(seeds="[0, 1]", model="mlp", epochs=20, segment_steps=500, stages=stages, train_extra=train)
    )
    store = tmp_path / "store"
    proc = run_cli("run", spec, "--store", store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = Store(store)
    modes = {u["unit"]["params"]["seed"]: u for u in _units(store, "train")}
    theta = {s: _tensors(store, u, "final") for s, u in modes.items()}
    centres = {u["unit"]["params"]["source"]: u for u in _units(store, "centre")}
    mid = _tensors(store, centres["interpolation"], "final")
    expect = interpolate_state(theta[0], theta[1], 0.5)
    assert all(torch.equal(mid[n], expect[n]) for n in expect)
    spe = BatchStream(load_dataset("digits"), 64, 0).steps_per_epoch
    ckpt = _tensors(store, centres["checkpoint"], "final")
    stored = st.read.point(modes[0]["unit"]["id"], "train", 2 * spe)
    assert all(torch.equal(ckpt[n], stored[n]) for n in stored) and not torch.equal(
        ckpt["fc1.weight"], theta[0]["fc1.weight"]
    )
    assert centres["checkpoint"]["result"]["train_loss"] > modes[0]["result"]["final_train_loss"]

    view = open_study(store).stage("land")
    scans = {view.label(u["unit"]["id"]): u for u in _units(store, "scan")}
    assert len(scans) == 3  # the centres have no directions here: only their own states are checked
    # the w-basin towards mode 1: its barrier on λ ∈ [0, 1] is the interpolate stage's for the pair
    w = scans["seed=0 dir=0 λ∈[-1,2]"]
    rows = _committed_rows(st, w["unit"]["id"], "scan", "curve").to_pylist()
    inner = rows[10:21]  # λ = 0, 0.1, …, 1
    height, _ = barrier([r["train_loss"] for r in inner], [r["lambda"] for r in inner])
    (lmc,) = _units(store, "interpolate")
    assert w["result"]["class"] == "w-basin"
    assert height == pytest.approx(lmc["result"]["barrier_train_loss"], rel=1e-5, abs=1e-7)
    # the curve along the top eigenvector is the evaluator's along the stored LA0
    (hess,) = _units(store, "hessian")
    vectors = _tensors(store, hess, "directions")
    la0 = {k[len("LA0.") :]: v for k, v in vectors.items() if k.startswith("LA0.")}
    e = scans["seed=0 dir=1 λ∈[-1,1]"]
    model = build_model("mlp", 10, 1, 8)
    last = _committed_rows(st, e["unit"]["id"], "scan", "curve").to_pylist()[-1]
    again = PointEvaluator(model, theta[0], [la0], load_dataset("digits")).evaluate([last["lambda"]])
    assert again["train_loss"] == pytest.approx(last["train_loss"], rel=1e-6)
    # the mined direction: committed as a direction, compared with the eigenvectors (Fig. 9), scanned
    (mined,) = _units(store, "mining")
    assert mined["result"]["algorithm"] == "w_peak" and set(mined["result"]["abs_cos"]) == {"LA0", "LA1"}
    assert all(0 <= c <= 1 for c in mined["result"]["abs_cos"].values())
    assert (
        len(_committed_rows(st, mined["unit"]["id"], "mining", "mining"))
        == 2 * BatchStream(load_dataset("digits"), 128, 0).steps_per_epoch
    )
    assert "seed=0 dir=2 λ∈[-1,1]" in scans
    # Fig. 5's angles are the angles between the direction kind's Gaussian draws
    (angles,) = _units(store, "angles")
    table = _committed_rows(st, angles["unit"]["id"], "angles", "angles").to_pylist()
    assert len(table) == 190
    names = [n for n, p in model.named_parameters()]
    d0, d1 = (gaussian_direction(theta[0], names, 1000 + i) for i in (0, 1))
    assert table[0]["angle_deg"] == pytest.approx(angle_degrees(d0, d1), abs=1e-6)
    assert angles["result"]["max_deviation_deg"] < 5

    proc = run_cli("report", store, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("land-curves", "land-angles", "land-cosines", "land-spectrum"):
        assert (tmp_path / "report" / "figures" / f"{name}.png").exists(), name


def test_next_checkpoint_direction_goes_to_the_next_stored_epoch_then_to_the_mode():
    """Xu et al. §3.2 (v-side curves): at a training checkpoint, the direction to the next checkpoint (the last one's
    goes to the trained mode); planned at checkpoint centres only, on λ ∈ [−1, 2] (both checkpoints on the curve)."""
    study = StudyContext(
        seeds=(0, 1, 2),
        data=DataParams(dataset="digits"),
        model=ModelParams(name="small_cnn"),
        train=TrainRecipe(epochs=3, checkpoint_epochs=[1, 3]),
    )
    table = LandscapeStage.model_validate(
        {
            "from": "modes",
            "seeds": [0],
            "scales": [1.0],
            "directions": [{"kind": "gaussian", "seed": 0}, {"kind": "next_checkpoint"}],
            "centres": [
                {"kind": "checkpoint", "seed": 2, "epoch": 1, "hessian": False, "surface": False},
                {"kind": "checkpoint", "seed": 2, "epoch": 3, "hessian": False, "surface": False},
            ],
        }
    )
    plan = LandscapeStageKind().plan(table, study, _PathView())
    by_label = {d.label: d for d in plan.drafts}
    assert not any("seed=0 dir=1" in label for label in by_label)  # a mode has no next checkpoint
    first = by_label["seed=2@epoch1 dir=1 next_checkpoint=epoch3"]
    assert first.params.direction == "to_mode" and first.inputs["centre"] is by_label["seed=2@epoch1"]
    target = first.inputs["target"]
    assert (target.params.source, target.params.epoch, target.inputs) == ("checkpoint", 3, {"a": "mode2"})
    last = by_label["seed=2@epoch3 dir=1 next_checkpoint=final"]
    assert last.inputs["target"] == "mode2"
    curve = by_label["seed=2@epoch1 dir=1 λ∈[-1,2]"]
    assert curve.inputs["direction"] == Ref(first, "directions")
