"""The train kind on a streamed ImageFolder dataset (ImageNet's layout), end to end through the CLI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import digests, run_cli, spec_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workers"))
from test_data import write_imagefolder  # noqa: E402


@pytest.mark.slow
def test_train_on_imagefolder_runs_and_is_deterministic(tmp_path):
    root = write_imagefolder(tmp_path / "imagenet")
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="inet", seeds="[0]", model="small_cnn", epochs=2, segment_steps=2,
                              data_extra="image_size = 16",
                              stages='[[stages]]\nname = "modes"\nkind = "train"\n').replace('dataset = "digits"', 'dataset = "imagefolder"'))
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
