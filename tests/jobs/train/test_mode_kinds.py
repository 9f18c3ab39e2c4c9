"""The train kind on a streamed ImageFolder dataset (ImageNet's layout), end to end through the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import digests, run_cli, spec_text
from datafiles import write_imagefolder


@pytest.mark.slow
def test_train_on_imagefolder_runs_and_is_deterministic(tmp_path):
    root = write_imagefolder(tmp_path / "imagenet")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="inet",
            seeds="[0]",
            model="small_cnn",
            epochs=2,
            segment_steps=2,
            data_extra="image_size = 16",
            stages='[[stages]]\nname = "modes"\nkind = "train"\n',
        ).replace('dataset = "digits"', 'dataset = "imagefolder"')
    )
    assert run_cli("validate", spec).returncode == 2  # no data root given: an edge error
    for store in ("a", "b"):
        proc = run_cli("run", spec, "--store", tmp_path / store, "--data-root", root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    (unit,) = (tmp_path / "a").glob("units/kind=train/unit=*")
    params = json.loads((unit / "unit.json").read_text())["params"]
    assert params["data"] == {"dataset": "imagefolder", "image_size": 16}
    result = json.loads((unit / "result.json").read_text())
    assert 0.0 <= result["final_test_acc"] <= 1.0


@pytest.mark.slow
def test_pretrained_mode_from_torchvision_cache_then_m2o_on_imagefolder(tmp_path):
    """LLPF Table 2's ImageNet row starts from torchvision's pretrained ResNet18: the weights file is looked up in
    $TORCH_HOME/hub/checkpoints under torchvision's own file name (here: a ResNet18 state written there by the test,
    with a 3-class head to match the tiny ImageFolder)."""
    import os

    import torch
    import torchvision
    from safetensors.torch import load_file

    root = write_imagefolder(tmp_path / "imagenet")
    torch_home = tmp_path / "torch_home"
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    weights = torchvision.models.resnet18(num_classes=3).state_dict()
    torch.save(weights, torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        spec_text(
            name="pre",
            seeds="[0]",
            model="resnet18",
            data_extra="image_size = 32",
            stages="""
        [[stages]]
        name = "modes"
        kind = "pretrained"

        [[stages]]
        name = "m2o"
        kind = "m2o"
        from = "modes"
        iterations = 3
        rounds = 1
        batch_size = 4
        step_a = 0.1
        eval_every = 3
        segment_iterations = 1
    """,
        ).replace('dataset = "digits"', 'dataset = "imagefolder"')
    )
    env_home = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        proc = run_cli("run", spec, "--store", tmp_path / "store", "--data-root", root)
    finally:
        if env_home is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = env_home
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (mode,) = (tmp_path / "store").glob("units/kind=pretrained/unit=*")
    final = load_file(str(mode / "final.safetensors"))
    assert all(torch.equal(final[k], v) for k, v in weights.items())
    (m2o,) = (tmp_path / "store").glob("units/kind=m2o/unit=*")
    result = json.loads((m2o / "result.json").read_text())
    assert result["final_norm_ratio"] < 1.0


def test_later_train_fields_leave_the_canonical_json_of_earlier_recipes_alone():
    import pytest

    from lowloss.jobs import TrainRecipe

    plain = TrainRecipe().canonical()
    assert not {"decay_steps", "decay_factor", "nesterov"} & set(plain)  # unit ids of earlier specs do not change
    paper = TrainRecipe(schedule="step", lr=0.1, decay_steps=[32000, 48000], nesterov=True).canonical()
    assert paper["decay_steps"] == [32000, 48000] and paper["nesterov"] is True
    assert TrainRecipe.model_validate(paper) == TrainRecipe.model_validate(paper | {"decay_factor": 0.1})
    for bad, message in (
        ({"schedule": "step"}, "needs decay_steps"),
        ({"decay_steps": [48000, 32000]}, "increasing"),
        ({"nesterov": True, "optimizer": "adam"}, "nesterov"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainRecipe.model_validate(bad)
