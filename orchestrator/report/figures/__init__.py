"""Drawing the figures of a study (matplotlib), one module per style, from the data ``report/figure_data.py``
computes out of what unit kinds declare (``Kind.figures``, ``jobs.base.Figure``). Only committed segments are read,
so a running study can be drawn; the subtitle says how many units a curve covers and what the line and the band
are. ``canvas`` holds what every style shares; ``xy`` the band and line styles; ``pca``, ``pairs``, ``methods`` and
``custom`` one style each."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .... import jobs
from ..api import StudyView
from ..figure_data import paths_of
from .canvas import DPI, FORMATS, FigureFile
from .custom import draw_custom
from .methods import draw_methods
from .pairs import draw_pairs
from .pca import draw_pca
from .xy import draw_xy, xy_figures


def render(
    study: StudyView,
    out: Path,
    by: Sequence[str] = (),
    stages: Sequence[str] | None = None,
    smooth: float | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[FigureFile]:
    """Every figure the kinds of the study's stages declare, as ``out/<stage>-<figure>.<png|pdf>``."""
    files: list[FigureFile] = []
    kinds = jobs.unit_kinds()
    for view in study.stages(stages):
        kind = kinds.get(view.kind)
        for spec in kind.figures if kind is not None else ():
            if spec.style in ("band", "line"):
                files += draw_xy(study, view, spec, out, by, smooth, formats)
            elif spec.style == "pca":
                files += draw_pca(study, view, spec, out, by, formats)
            elif spec.style == "pairs":
                files += draw_pairs(study, view, spec, out, by, formats)
            elif spec.style == "custom":
                files += draw_custom(study, view, spec, out, formats)
            elif spec.style == "methods":
                files += draw_methods(study, view, spec, out, formats)
            else:
                raise ValueError(f"kind {view.kind}: figure {spec.name!r} has unknown style {spec.style!r}")
    return files


__all__ = ["DPI", "FigureFile", "draw_pairs", "draw_pca", "draw_xy", "paths_of", "render", "xy_figures"]
