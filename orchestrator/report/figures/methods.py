"""The ``methods`` style: the same rows (pairs) by several methods — grouped bars of the first result key per row,
one bar per method — and the table of every result key with the cost each path's producing units spent."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ....jobs.base import Figure
from ..api import StageView, StudyView
from ..figure_data import MethodRow, method_rows
from .canvas import DPI, FORMATS, LEGEND_SIZE, FigureFile, plt, save, size_px, write_table

COST_NOTE = (
    "CPU-s, GPU-s, wall-s: spent by the units that produced each path (every attempt in the store; the modes' "
    "training, common to all methods, not counted)."
)


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def methods_table(rows: list[MethodRow], spec: Figure) -> tuple[list[str], list[list[str]]]:
    """The table of a methods figure: one line per unit (row, method), its result keys, then the cost of its
    producing units."""
    labels = [spec.labels[i] if i < len(spec.labels) else k for i, k in enumerate(spec.ys)]
    head = [spec.row_param or "row", spec.column_param or "method", *labels, "CPU-s", "GPU-s", "wall-s", "attempts"]
    lines = []
    for r in rows:
        cells = [r.row, r.method]
        cells += [
            _num(v) if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) else str(v)
            for v in r.values.values()
        ]
        cells += ["—" if r.cpu_s is None else f"{r.cpu_s:.1f}", f"{r.gpu_s:.1f}", f"{r.wall_s:.1f}", str(r.attempts)]
        lines.append(cells)
    return head, lines


def draw_methods(
    study: StudyView, view: StageView, spec: Figure, out: Path, formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    """A methods figure: grouped bars of the first result key per row (one bar per method), and its table."""
    rows = method_rows(study, view, spec, view.units)
    if not rows or not spec.ys:
        return []
    groups = list(dict.fromkeys(r.row for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    fig = plt().figure(figsize=LEGEND_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(methods), 1)
    key = spec.ys[0]
    for j, method in enumerate(methods):
        xs, ys = [], []
        for r in rows:
            v = r.values.get(key)
            if r.method == method and isinstance(v, (int, float)) and (v > 0 or not spec.logy):
                xs.append(groups.index(r.row) + (j - (len(methods) - 1) / 2) * width)
                ys.append(float(v))
        ax.bar(xs, ys, width, label=method, color=f"C{j}")
    ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 8 else 0, fontsize=8)
    ax.set_xlabel(spec.row_param)
    ax.set_ylabel(spec.ylabel or key)
    if spec.logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})\n{len(groups)} {spec.row_param}(s)", fontsize=10)
    stem = f"{view.name}-{spec.name}"
    size = size_px(fig)
    paths = save(fig, out / stem, formats)
    head, lines = methods_table(rows, spec)
    tables = write_table(out / stem, f"{spec.title} — stage {view.name}", head, lines, left=2, note=COST_NOTE)
    return [FigureFile(view.name, spec.name, paths, size, len(rows), "units", tables)]
