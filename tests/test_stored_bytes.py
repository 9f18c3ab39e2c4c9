"""The embedded recipes write the same bytes as the release they were recorded with (tests/fixtures/recipe-bytes.json):
every unit id, and the sha256 of every data file of every unit (unit.json, result.json, final and output tensor sets,
each segment's Parquet rows and safetensors points). A change of code layout must not change what a study stores.

The fixture was recorded with torch 2.14.1 on x86-64 (what tests/run.sh installs); on another torch or processor the
floating-point kernels may round differently, so there only the unit ids are compared and the test says so."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from store_bytes import data_files

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "recipe-bytes.json").read_text())
RECIPES = sorted(FIXTURE["recipes"])


def _same_numerics() -> bool:
    recorded = FIXTURE["recorded_with"]
    return (recorded["torch"], recorded["machine"]) == (torch.__version__, platform.machine())


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_an_embedded_recipe_stores_the_recorded_bytes(recipe, tmp_path):
    store = tmp_path / recipe
    run_cli("run", recipe, "--store", store, timeout=1200, check=True)
    found, expected = data_files(store), FIXTURE["recipes"][recipe]
    assert sorted(found) == sorted(expected)  # the same units: kinds and ids
    if not _same_numerics():
        recorded = FIXTURE["recorded_with"]
        pytest.skip(
            f"unit ids equal; bytes recorded with torch {recorded['torch']} on {recorded['machine']}, "
            f"not comparable on torch {torch.__version__} on {platform.machine()}"
        )
    differ = {
        f"{unit}/{name}"
        for unit in expected
        for name in set(expected[unit]) | set(found[unit])
        if expected[unit].get(name) != found[unit].get(name)
    }
    assert not differ, f"{len(differ)} data file(s) differ from the recorded bytes: {sorted(differ)[:10]}"
