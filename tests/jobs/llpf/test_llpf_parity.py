"""LLPF parity with the authors' code (issue 15) at the unit level: the stage settings reach the units and their
results, the recipes carry the authors' values, and LLPF Fig. 2's LeNet5 claim holds on real MNIST digits."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli, spec_text

REPO = Path(__file__).resolve().parents[3]
RECIPES = REPO / "jobs" / "llpf" / "recipes"


def _results(store: Path, kind: str) -> list[dict]:
    out = []
    for unit in sorted(store.glob(f"units/kind={kind}/unit=*")):
        if (unit / "COMMIT.json").exists():
            meta = json.loads((unit / "unit.json").read_text())
            out.append(
                {
                    "dir": unit,
                    "id": unit.name.split("=", 1)[1],
                    "params": meta["params"],
                    "inputs": meta["inputs"],
                    **json.loads((unit / "result.json").read_text()),
                }
            )
    return out


def _path_rows(unit_dir: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in sorted((unit_dir / "path").glob("*.parquet"))]
    return pa.concat_tables(tables, promote_options="default").to_pylist()


M2M_STAGES = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "m2m"
    kind = "m2m"
    from = "modes"
    lr = 0.01
    eval_every = 10
    segment_iterations = 10
    group_weight_bias = true
    {extra}

    [[stages.phases]]
    layers = ["fc1"]
    iterations = {first}
    step_a = 0.05
    step_f = 0.01
    rounds = 3

    [[stages.phases]]
    add = ["fc2", "fc3"]
    iterations = {second}
    step_a = 0.05
    step_f = 0.01
    rounds = 3
    {second_extra}
"""


def test_plan_says_which_phases_move_weight_and_bias_as_one_vector(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="grouping",
            stages=M2M_STAGES.format(extra="", first=5, second=5, second_extra="group_weight_bias = false"),
        )
    )
    proc = run_cli("plan", spec)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "phase " in ln and " moves " in ln]
    assert len(lines) == 2, proc.stdout
    assert "weight and bias as one vector" in lines[0] and "weight and bias as one vector" not in lines[1]


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("distance_to", '"D"', "destination_on_start_sphere"),
        ("test_loss_rule", '"better"', "no_worse"),
    ],
)
def test_verdict_settings_are_edge_checked(tmp_path, field, value, allowed):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(name="bad", stages=M2M_STAGES.format(extra=f"{field} = {value}", first=5, second=5, second_extra=""))
    )
    proc = run_cli("validate", spec)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert field in proc.stderr and value.strip('"') in proc.stderr and allowed in proc.stderr


def test_m2o_layernorm_setting_is_edge_checked(tmp_path):
    stages = """
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "m2o"
        kind = "m2o"
        from = "modes"
        iterations = 5
        step_a = 0.01
        rounds = 2
        layernorm = "move"
    """
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="badln", stages=stages))
    proc = run_cli("validate", spec)
    assert proc.returncode == 2 and "layernorm" in proc.stderr and "compensate" in proc.stderr


def _stage(recipe: str, name: str) -> dict:
    spec = tomllib.loads((RECIPES / f"{recipe}.toml").read_text())
    return next(s for s in spec["stages"] if s["name"] == name)


def test_recipes_carry_the_authors_configuration_values():
    # LeNet5 (DFL_torch lenet5_mnist_m2m/m2o): weight and bias merged; M2O rolling window train_for_min_rounds = 5
    assert _stage("llpf-lenet5-mnist", "m2m")["group_weight_bias"] is True
    m2o = _stage("llpf-lenet5-mnist", "m2o")
    assert m2o["group_weight_bias"] is True and m2o["min_rounds"] == 5
    # ResNet18 and CCT7: merge_bias_with_weights = False, M2O window 5; CCT7's M2O leaves LayerNorm where it is
    for recipe, stages in (
        ("llpf-resnet18-cifar10", ("m2m", "m2o")),
        ("llpf-resnet18-cifar100-m2o", ("m2o",)),
        ("llpf-cct7-cifar10", ("m2m", "m2o")),
    ):
        for name in stages:
            stage = _stage(recipe, name)
            assert stage["group_weight_bias"] is False, (recipe, name)
            if name == "m2o":
                assert stage["min_rounds"] == 5, recipe
    assert _stage("llpf-cct7-cifar10", "m2o")["layernorm"] == "keep"
    # the CPU-scale LeNet5 recipe: real digits, Table 3's training, Table 1's M2M shape (all layers, r = 5, B = 64,
    # plain SGD, step_a = 0), weight and bias joined
    spec = tomllib.loads((RECIPES / "llpf-lenet5-mnist5k.toml").read_text())
    assert spec["data"]["dataset"] == "mnist5k" and spec["model"]["name"] == "lenet5"
    assert (spec["train"]["lr"], spec["train"]["momentum"], spec["train"]["batch_size"], spec["train"]["epochs"]) == (
        0.01,
        0.9,
        64,
        20,
    )
    m2m = _stage("llpf-lenet5-mnist5k", "m2m")
    phase = m2m["phases"][0]
    assert m2m["group_weight_bias"] is True and m2m["batch_size"] == 64 and m2m.get("momentum", 0.0) == 0.0
    assert phase["layers"] == ["all"] and phase["rounds"] == 5 and phase["step_a"] == 0.0


@pytest.mark.slow
def test_m2m_results_report_what_each_verdict_measured(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="verdicts",
            seeds="[0, 1]",
            epochs=3,
            stages=M2M_STAGES.format(extra='test_loss_rule = "no_worse"', first=10, second=40, second_extra=""),
        )
    )
    store = tmp_path / "store"
    run_cli("run", spec, "--store", store, check=True, timeout=900)
    final = next(r for r in _results(store, "m2m_phase") if r["phase"] == r["phases"])
    modes = {r["id"]: r for r in _results(store, "train")}
    # D's own test loss is evaluated like the path's points: it equals the destination mode's final test loss
    assert final["destination_test_loss"] == pytest.approx(modes[final["inputs"]["dest"]]["final_test_loss"], rel=1e-5)
    assert final["final_minus_destination_test_loss"] == pytest.approx(
        final["final_test_loss"] - final["destination_test_loss"], abs=1e-9
    )
    assert final["test_loss_change"] == pytest.approx(final["final_test_loss"] - final["start_test_loss"], abs=1e-9)
    assert final["test_loss_rule"] == "no_worse"
    assert final["test_loss_converged"] == (final["test_loss_change"] <= 0.05)
    # the distance verdict is measured to D on P0's sphere, over the joined layers; the raw distance is beside it
    assert final["distance_to"] == "destination_on_start_sphere"
    assert final["max_final_distance"] == final["max_final_distance_projected"]
    assert final["farthest_tensor"] in ("fc1", "fc2", "fc3")
    assert final["max_final_distance_raw"] > 0
    assert final["distance_converged"] == (final["max_final_distance"] <= 0.1)
    failures = final["verdict_failures"]
    assert len(failures) == [
        final["train_loss_below_threshold"],
        final["distance_converged"],
        final["test_loss_converged"],
    ].count(False)
    rows = _path_rows(final["dir"])
    layer_cols = sorted(k for k in rows[-1] if k.startswith("dist_layer."))
    assert layer_cols == ["dist_layer.fc1", "dist_layer.fc2", "dist_layer.fc3"]
    last = rows[-1]  # the joined distance is the norm of the weight's and the bias's together
    for m in ("fc1", "fc2", "fc3"):
        assert last[f"dist_layer.{m}"] == pytest.approx(
            (last[f"dist.{m}.weight"] ** 2 + last[f"dist.{m}.bias"] ** 2) ** 0.5, rel=1e-6
        )
    shown = run_cli("show", store, final["id"][:10], check=True).stdout
    assert "verdict_failures" in shown and "test_loss_change" in shown
    report = run_cli("report", store, check=True).stdout
    for label in ("test loss change (end − start)", "test loss of D", "final distance to D itself", "reached D"):
        assert label in report, report


@pytest.mark.slow
def test_lenet5_mnist5k_paths_stay_low_where_the_straight_line_does_not(tmp_path):
    """LLPF Fig. 2 (LeNet5 column) at CPU scale: every M2M path's maximum full-training-set loss stays under L_thres
    while the straight line between the same two modes rises above it; `lowloss report` prints both."""
    store = tmp_path / "store"
    proc = run_cli("run", "llpf-lenet5-mnist5k", "--store", store, "--jobs", "2", timeout=1800)  # jobs: no result
    assert proc.returncode == 0, proc.stdout + proc.stderr
    l_thres = _stage("llpf-lenet5-mnist5k", "m2m")["l_thres"]
    paths = [r for r in _results(store, "m2m_phase") if r["phase"] == r["phases"]]
    lines = {tuple(r["pair"]): r for r in _results(store, "interpolate")}
    assert len(paths) >= 2 and {tuple(r["pair"]) for r in paths} == set(lines)
    for r in paths:
        line = lines[tuple(r["pair"])]
        print(
            f"pair {r['pair']}: path max train loss {r['path_max_train_loss']:.4f}, straight line "
            f"{line['max_train_loss']:.4f} (barrier {line['barrier_train_loss']:.4f}); final distance "
            f"{r['max_final_distance']:.4f} (to D itself {r['max_final_distance_raw']:.4f})"
        )
        assert r["path_max_train_loss"] <= l_thres and r["train_loss_below_threshold"], r
        assert line["max_train_loss"] > l_thres and line["barrier_train_loss"] > l_thres, line
        assert r["distance_converged"], r["verdict_failures"]
    report = run_cli("report", store, check=True).stdout
    rows = {}
    for ln in report.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", ln) if c.strip()]
        if len(cells) >= 4:
            rows[(cells[0], cells[1])] = cells
    assert ("lmc", "max train loss on line") in rows and ("m2m", "max train loss on path") in rows, report
    assert ("m2m", "loss ≤ L_thres") in rows and rows[("m2m", "loss ≤ L_thres")][3].startswith(f"{len(paths)}/")
