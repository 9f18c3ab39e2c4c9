"""The shape of the house (docs/architecture.md), read from the source: every package folder is shipped, imports point
down the floors and inside ``orchestrator/`` down its layers, every import inside lowloss is relative, and functions
stay short."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"lowloss_root": "lowloss", "orchestrator": "orchestrator", "jobs": "jobs", "workers": "workers"}
SHIPPED = {**FLOORS, "slurm": "slurm"}
# What each floor may import (besides itself): every import points down.
MAY_IMPORT = {"orchestrator": {"jobs", "workers", "lowloss"}, "jobs": {"workers", "lowloss"}, "workers": {"lowloss"}}
# orchestrator/'s subpackages in layers: each imports only from the layers below it.
ORCHESTRATOR_LAYERS = (("spec", "store"), ("runtime",), ("executors",), ("engine", "report"), ("cli",))
LONGEST_LINES = 60
LONG_MARK = "# long:"  # a function that reads better whole says why on its def line or the line above


def _sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _resolved_imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, the imported module's dotted parts under the installed name lowloss) of every relative import."""
    folder = path.parent.relative_to(ROOT).parts
    package = ["lowloss", *([] if folder[0] == "lowloss_root" else folder)]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:  # `from .. import jobs`: the names are modules
                found.extend((node.lineno, [*module, alias.name]) for alias in node.names)
            else:
                found.append((node.lineno, module))
    return found


def test_every_package_folder_is_shipped_and_every_shipped_package_exists():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    on_disk = set()
    for folder, name in SHIPPED.items():
        for path in _sources(folder):
            parts = path.parent.relative_to(ROOT / folder).parts
            assert (path.parent / "__init__.py").exists(), f"{path.parent} holds Python files but no __init__.py"
            on_disk.add(".".join(["lowloss", *([] if name == "lowloss" else [name]), *parts]))
    assert declared == on_disk, f"pyproject.toml packages: missing {on_disk - declared}, stale {declared - on_disk}"


@pytest.mark.parametrize("floor", ["orchestrator", "jobs", "workers"])
def test_imports_point_down_the_floors(floor):
    wrong = []
    for path in _sources(floor):
        for line, module in _resolved_imports(path):
            target = module[1] if len(module) > 1 else "lowloss"
            if target != floor and target not in MAY_IMPORT[floor]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {'.'.join(module)}")
    assert not wrong, "\n".join(wrong)


def test_orchestrator_subpackages_import_only_the_layers_below():
    layer_of = {name: i for i, layer in enumerate(ORCHESTRATOR_LAYERS) for name in layer}
    wrong = []
    for path in _sources("orchestrator"):
        parts = path.relative_to(ROOT / "orchestrator").parts
        if len(parts) < 2:
            continue
        own = parts[0]
        assert own in layer_of, f"orchestrator/{own}/ is in no layer of ORCHESTRATOR_LAYERS"
        for line, module in _resolved_imports(path):
            if module[:2] == ["lowloss", "orchestrator"] and len(module) > 2 and module[2] != own:
                if layer_of[module[2]] >= layer_of[own]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {'.'.join(module)}")
    assert not wrong, "\n".join(wrong)


def test_imports_inside_lowloss_are_relative():
    """The tree on disk is what Python resolves: no absolute `lowloss.` import and no bare `jobs`/`workers` one."""
    wrong = []
    for folder in SHIPPED:
        for path in _sources(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in {"lowloss", *FLOORS, "slurm"}:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_function_of_the_orchestrator_or_the_jobs_is_longer_than_sixty_lines():
    long = []
    for folder in ("orchestrator", "jobs"):
        for path in _sources(folder):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    said_why = any(LONG_MARK in lines[i] for i in (node.lineno - 2, node.lineno - 1) if i >= 0)
                    if length > LONGEST_LINES and not said_why:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not long, "\n".join(long)


def test_report_seams_the_store_view_and_the_statistics_import_neither_each_other_nor_the_drawing():
    """The store view (api), the statistics (summary) and the figures' data import no drawing code, and api and summary
    do not import each other."""
    report = ROOT / "orchestrator" / "report"

    def imports(module: str) -> set[str]:
        """Modules of the report package by their name in it (``figures.canvas``), other modules by full name."""
        path = report / f"{module}.py"
        inside = ["lowloss", "orchestrator", "report"]
        found = {".".join(m[3:] if m[:3] == inside else m) for _, m in _resolved_imports(path)}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
        return found

    assert "summary" not in imports("api")
    assert "api" not in imports("summary")
    for module in ("api", "summary", "figure_data"):
        assert not any(name.startswith(("matplotlib", "figures")) for name in imports(module)), module


def test_a_checkout_folder_imported_bare_is_refused_with_the_fix(tmp_path):
    import subprocess
    import sys

    for floor in ("orchestrator", "jobs", "workers"):
        proc = subprocess.run([sys.executable, "-c", f"import {floor}"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 1
        assert f"import lowloss.{floor}, not {floor}" in proc.stderr
