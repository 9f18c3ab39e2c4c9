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
