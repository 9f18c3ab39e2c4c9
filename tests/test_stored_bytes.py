"""The embedded recipes write the same bytes as the release they were recorded with (tests/fixtures/recipe-bytes.json):
every unit id, and the sha256 of every data file of every unit (unit.json, result.json, final and output tensor sets,
each segment's Parquet rows and safetensors points). A change of code layout must not change what a study stores.

The fixture was recorded with torch 2.14.1 on x86-64 (what tests/run.sh installs); on another torch or processor the
floating-point kernels may round differently, so there only the unit ids are compared and the test says so.

Two recipes are run here; the other two are already run whole by other tests, whose stores are checked where they are
made (``CHECKED_WHERE_RUN``), so the suite runs each recipe once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from store_bytes import assert_recorded_bytes, recorded_recipes

TESTS = Path(__file__).parent
CHECKED_WHERE_RUN = {
    "digits-default": TESTS / "orchestrator" / "report" / "test_report.py",  # its default_store fixture
    "llpf-digits": TESTS / "jobs" / "llpf" / "test_llpf_jobs.py",  # its digits_llpf fixture
}
RUN_HERE = sorted(set(recorded_recipes()["recipes"]) - set(CHECKED_WHERE_RUN))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RUN_HERE)
def test_an_embedded_recipe_stores_the_recorded_bytes(recipe, tmp_path):
    store = tmp_path / recipe
    run_cli("run", recipe, "--store", store, timeout=1200, check=True)
    assert_recorded_bytes(recipe, store)


def test_every_recorded_recipe_is_checked_once():
    assert RUN_HERE == ["autoneb-digits", "landscape-digits"]
    for recipe, test_file in CHECKED_WHERE_RUN.items():
        assert f'assert_recorded_bytes("{recipe}"' in test_file.read_text(), f"{test_file} does not check {recipe}"
