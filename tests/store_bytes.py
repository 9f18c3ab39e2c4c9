"""The bytes of a store's deterministic data files, unit by unit: what a change of code layout must leave as it was.

``data_files(store)`` maps each unit (``<kind>/<id>``) to the sha256 of every data file of it: ``unit.json``,
``result.json``, ``final.safetensors``, ``outputs/*.safetensors`` and the segments' Parquet rows and safetensors
points. Markers (``segments/*.json``, ``COMMIT.json``) and attempt records hold wall-clock times and are left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DATA = ("unit.json", "result.json", "final.safetensors")


def _is_data(rel: str) -> bool:
    top = rel.split("/", 1)[0]
    if rel in DATA:
        return True
    if top in ("attempts", "segments", "checkpoint"):
        return False
    return rel.endswith(".parquet") or rel.endswith(".safetensors")


def data_files(store: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for unit in sorted((Path(store) / "units").glob("kind=*/unit=*")):
        key = f"{unit.parent.name[len('kind=') :]}/{unit.name[len('unit=') :]}"
        files = {}
        for path in sorted(unit.rglob("*")):
            rel = path.relative_to(unit).as_posix()
            if path.is_file() and not path.name.startswith(".tmp-") and _is_data(rel):
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        out[key] = files
    return out


FIXTURE_PATH = Path(__file__).parent / "fixtures" / "recipe-bytes.json"


def recorded_recipes() -> dict:
    import json

    return json.loads(FIXTURE_PATH.read_text())


def same_numerics() -> bool:
    """Whether this torch and processor are the ones the fixture was recorded with (else only ids compare)."""
    import platform

    import torch

    recorded = recorded_recipes()["recorded_with"]
    return (recorded["torch"], recorded["machine"]) == (torch.__version__, platform.machine())


def assert_recorded_bytes(recipe: str, store: Path) -> None:
    """The store of an uninterrupted run of ``recipe`` holds the recorded units (kinds and ids) and, under the
    recorded torch and processor, the recorded sha256 of every data file; elsewhere the test is skipped after the
    ids, saying why."""
    import platform

    import pytest
    import torch

    fixture = recorded_recipes()
    found, expected = data_files(store), fixture["recipes"][recipe]
    assert sorted(found) == sorted(expected), f"{recipe}: other units than recorded"
    if not same_numerics():
        recorded = fixture["recorded_with"]
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
    assert not differ, f"{recipe}: {len(differ)} data file(s) differ from the recorded bytes: {sorted(differ)[:10]}"
