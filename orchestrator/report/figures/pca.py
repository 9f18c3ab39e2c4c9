"""The ``pca`` style: per tensor, every path's stored points on the first two principal components of all points of
the stage, a colour per path, with the start, the end and the destination D marked (LLPF Fig. 4)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ....jobs.base import Figure
from ..api import StageView, StudyView
from ..figure_data import group_name, pca_data
from ..summary import group_order
from .canvas import DPI, FORMATS, MAX_LEGEND, PCA_PANEL, FigureFile, plt, safe, save, size_px


def pca_figures(study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = ()) -> list[tuple[str, Any, int]]:
    """The figures of one stage, one per group, unsaved: [(stem, figure, paths)]."""
    out = []
    groups = study.groups(view, by)
    for group, uids in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        key = group if len(groups) > 1 else None
        data = pca_data(study, view, spec, uids)
        if data:
            out.append(_pca_figure(view, spec, by, data, key))
    return out


def _pca_figure(
    view: StageView, spec: Figure, by: Sequence[str], data: dict, key: tuple | None
) -> tuple[str, Any, int]:
    shown = list(data)
    total_tensors = next(iter(data.values()))["of"]
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    size = (PCA_PANEL[0] * cols + 1.0, PCA_PANEL[1] * rows + 1.2)
    fig = plt().figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = list(dict.fromkeys(label for d in data.values() for label, _, _ in d["units"]))
    n_units = 0
    for ax, name in zip(axes.flat, shown):
        n_units = max(n_units, len(data[name]["units"]))
        _pca_panel(ax, name, data[name], labels)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    handles = _pca_legend(spec, data, labels)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    extra = f"; first {len(shown)} of {total_tensors} tensors" if total_tensors > len(shown) else ""
    group_text = f"; {group_name(by, key)}" if key else ""
    fig.suptitle(
        f"{spec.title} — stage {view.name} ({view.kind})\n"
        f"PCA per tensor over the stored points of {n_units} {'paths' if spec.chain else 'units'}"
        f"{extra}{group_text}",
        fontsize=10,
    )
    stem = f"{view.name}-{spec.name}" + (f"-{safe(group_name(by, key))}" if key else "")
    return stem, fig, n_units


def _pca_panel(ax: Any, name: str, d: dict, labels: list[str]) -> None:
    """One tensor's panel: each path's points (a colour each), its start and end, its D."""
    tab10 = plt().get_cmap("tab10")
    for label, _steps, p in d["units"]:
        c = tab10(labels.index(label) % 10)
        ax.plot(p[:, 0], p[:, 1], color=c, lw=0.9, marker="o", ms=2.2, zorder=2, gid=f"pca|{name}|{label}")
        if not d["origins"]:
            ax.scatter(p[:1, 0], p[:1, 1], facecolors="white", edgecolors="black", s=42, lw=1.0, zorder=3)
        ax.scatter(p[-1:, 0], p[-1:, 1], marker="X", color=c, edgecolors="black", s=46, lw=0.6, zorder=4)
    for label, q in d["origins"]:
        ax.scatter(
            [q[0]],
            [q[1]],
            facecolors="white",
            edgecolors="black",
            s=42,
            lw=1.0,
            zorder=6,
            gid=f"pca-origin|{name}|{label}",
        )
        own = next((p for lab, _, p in d["units"] if lab == label), None)
        if own is not None:  # the path from its start to its first stored point
            c = tab10(labels.index(label) % 10)
            ax.plot([q[0], own[0, 0]], [q[1], own[0, 1]], color=c, lw=0.9, ls=":", zorder=2)
    for label, q in d["destinations"]:
        c = tab10(labels.index(label) % 10) if label in labels else "gold"
        ax.scatter(
            [q[0]],
            [q[1]],
            marker="*",
            color=c,
            edgecolors="black",
            s=150,
            lw=0.7,
            zorder=5,
            gid=f"pca-destination|{name}|{label}",
        )
    r1, r2 = d["explained"]
    ax.set_title(name + (f"\n({d['note']})" if d["note"] else ""), fontsize=9)
    ax.set_xlabel(f"PC1 ({r1:.0%} of variance)", fontsize=8)
    ax.set_ylabel(f"PC2 ({r2:.0%})", fontsize=8)
    ax.tick_params(labelsize=7)


def _pca_legend(spec: Figure, data: dict, labels: list[str]) -> list:
    from matplotlib.lines import Line2D

    tab10 = plt().get_cmap("tab10")
    handles = [
        Line2D([], [], color=tab10(i % 10), lw=0.9, marker="o", ms=2.2, label=label)
        for i, label in enumerate(labels[:MAX_LEGEND])
    ]
    start = (
        f"start (final state of input {spec.origin!r})"
        if any(d["origins"] for d in data.values())
        else "first stored point"
    )
    handles += [
        Line2D([], [], marker="o", ls="", mfc="white", mec="black", label=start),
        Line2D([], [], marker="X", ls="", color="0.5", mec="black", label="end of a path"),
    ]
    if any(d["destinations"] for d in data.values()):
        label = f"D of the path (final state of input {spec.destination!r})"
        handles.append(Line2D([], [], marker="*", ls="", color="0.5", mec="black", ms=11, label=label))
    return handles


def draw_pca(
    study: StudyView, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (), formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    files = []
    for stem, fig, n in pca_figures(study, view, spec, by):
        size = size_px(fig)
        what = "paths" if spec.chain else "units"
        files.append(FigureFile(view.name, spec.name, save(fig, out / stem, formats), size, n, what))
    return files
