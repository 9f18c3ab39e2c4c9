"""The ``custom`` style: a kind's own drawing function, called with the rows of every unit of the stage."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ....jobs.base import Figure
from ..api import StageView, StudyView
from .canvas import DPI, FORMATS, LINE_SIZE, FigureFile, fitted_title, plt, save, size_px


def draw_custom(
    study: StudyView, view: StageView, spec: Figure, out: Path, formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    data = {}
    for uid, label in zip(view.units, view.labels):
        t = study.unit_rows(uid, spec.table)
        if t is not None and t.num_rows:
            data[label] = t
    if not data or spec.draw is None:
        return []
    fig = plt().figure(figsize=LINE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    spec.draw(ax, data)
    title = fitted_title(fig, f"{spec.title} — stage {view.name} ({view.kind})", 11, bold=True)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    if spec.xlabel:
        ax.set_xlabel(spec.xlabel)
    if spec.ylabel:
        ax.set_ylabel(spec.ylabel)
    size = size_px(fig)
    return [FigureFile(view.name, spec.name, save(fig, out / f"{view.name}-{spec.name}", formats), size, len(data))]
