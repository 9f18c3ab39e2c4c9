"""Drawing the figures of a study (matplotlib), from the data ``figure_data.py`` computes out of what unit kinds
declare (``Kind.figures``, ``jobs.base.Figure``). Only committed segments are read, so a running study can be drawn;
the subtitle says how many units a curve covers and what the line and the band are.

The styles (``band``, ``line``, ``pca``, ``pairs``, ``custom``) are described on ``jobs.base.Figure``. What is drawn
is exactly the arrays of ``figure_data``: each curve's line carries the gid ``<column>|<unit id>``, a band's central
line ``<column>|center|<group>``, so a test can read the plotted data back from the artists.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ... import jobs
from ...jobs.base import Figure
from .api import StageView, StudyView
from .figure_data import (
    FEW_CURVES,
    FEW_PANELS,
    HIGHLIGHT,
    MAX_COLOURED,
    Series,
    downsample,
    farthest,
    figure_data,
    group_name,
    is_pattern,
    layer_of,
    pair_rows,
    paths_of,
    pca_data,
    result_values,
    with_group,
)
from .summary import group_order

DPI = 150
LINE_SIZE = (7.0, 4.2)  # inches: band and line figures (1050 × 630 px at DPI)
LEGEND_SIZE = (9.0, 4.2)  # with many lines: the legend sits to the right of the axes
HIST_SIZE = (11.0, 4.2)  # curves and histograms of barriers side by side
PANEL = (4.2, 3.4)
PCA_PANEL = (3.4, 3.2)
MAX_LEGEND = 24
MAX_PAIR_LABELS = 40  # a pairs figure with more rows is a scatter (compare value vs. value)
FORMATS = ("png", "pdf")
DASHES = ["-", "--", ":", "-."]
VERDICT_COLOURS = {True: "#2a9d3f", False: "#d62728", None: "0.5"}


@dataclass
class FigureFile:
    stage: str
    name: str
    paths: list[Path]
    size_px: tuple[int, int]
    units: int  # curves drawn: units, or chained paths
    what: str = "units"
    tables: list[Path] = field(default_factory=list)  # a pairs figure's table (md, csv)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def _save(fig, base: Path, formats: Sequence[str]) -> list[Path]:
    plt = _plt()
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in formats:
        path = base.with_name(base.name + "." + ext)
        fig.savefig(path, dpi=DPI, format=ext)
        paths.append(path)
    plt.close(fig)
    return paths


def _size_px(fig) -> tuple[int, int]:
    w, h = fig.get_size_inches()
    return round(w * DPI), round(h * DPI)


def _log_ticks(ax) -> None:
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 10:  # less than a decade: a few plainly labelled ticks, not 2.7 × 10⁻² or none
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))


def _style_axis(ax, fig: Figure, axis: int, series: list[Series]) -> None:
    logy, lim, label = (fig.logy, fig.ylim, fig.ylabel) if axis == 0 else (fig.logy2, fig.y2lim, fig.y2label)
    if logy:
        ax.set_yscale("log")
    if lim is not None:
        bottom, top = lim
        cur = ax.get_ylim()
        ax.set_ylim(cur[0] if bottom is None else bottom, cur[1] if top is None else top)
    if logy:
        _log_ticks(ax)
    ax.set_ylabel(label or ", ".join(dict.fromkeys(s.label for s in series)))


def _marks(ax, spec: Figure, series: list[Series], handles: list) -> None:
    """What the verdicts use: the threshold line(s) and the phase boundaries of chained paths."""
    from matplotlib.lines import Line2D

    values = sorted({t for s in series if s.axis == 0 for t in s.thresholds})
    if values:  # the threshold inside the view, with room above it
        lo, hi = ax.get_ylim()
        top = max(values) * (1.6 if ax.get_yscale() == "log" else 1.1)
        if top > hi:
            ax.set_ylim(lo, top)
    for v in values:
        ax.axhline(v, color="black", lw=1.0, ls=(0, (5, 2)), zorder=1.5, gid=f"threshold|{v!r}")
    if values:
        label = spec.threshold_label or spec.threshold_param
        handles.append(
            Line2D(
                [], [], color="black", lw=1.0, ls=(0, (5, 2)), label=f"{label} = {', '.join(f'{v:g}' for v in values)}"
            )
        )
    starts = sorted({x for s in series for c in s.curves for x in c.starts})
    for x in starts:
        ax.axvline(x, color="0.45", lw=0.8, ls=":", zorder=1.2, gid=f"boundary|{x!r}")
    if starts:
        handles.append(Line2D([], [], color="0.45", lw=0.8, ls=":", label="phase boundary (chained units)"))


def _what(series: list[Series], noun: str, xname: str, width: int = 130) -> str:
    """The subtitle's account of what the lines are."""
    n = sorted({len(s.curves) for s in series})
    count = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    many = [s for s in series if len(s.curves) > FEW_CURVES]
    groups = len({s.group for s in series})
    if groups > 1:
        text = (
            f"{many[0].band.how} n = {count} {noun} per group" if many else f"n = {count} {noun} per group"
        ) + f", {groups} groups (a colour each)"
    else:
        text = f"{many[0].band.how} n = {count} {noun}" if many else f"each of n = {count} {noun}"
    smoothed = sorted({s.window for s in series if s.window})
    if smoothed:
        text += f"; dense series: trailing mean over {', '.join(f'{w:g}' for w in smoothed)} ({xname})"
    if any(not s.dense for s in series):
        text += "; sparse series: as evaluated, joined"
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _curve_lines(ax, s: Series, colours, ls: str, label_of, points: bool = False) -> list:
    """Each curve of a series as drawn: its shown values (dense: smoothed; sparse, or ``points``: markers joined)."""
    handles = []
    for j, c in enumerate(s.curves):
        idx = downsample(c.x.size)
        marked = points or not s.dense
        (h,) = ax.plot(
            c.x[idx],
            c.shown[idx],
            color=colours(j),
            lw=1.1 if marked else 1.4,
            ls=ls,
            marker="o" if marked else None,
            ms=3.2,
            label=label_of(c),
            gid=f"{s.column}|{c.uid}",
        )
        handles.append(h)
    return handles


def _band_lines(ax, s: Series, colour, ls: str, label: str) -> list:
    b = s.band
    idx = downsample(b.x.size)
    if b.outer_lower is not None and b.outer_upper is not None:
        ax.fill_between(b.x[idx], b.outer_lower[idx], b.outer_upper[idx], color=colour, alpha=0.12, linewidth=0)
    ax.fill_between(b.x[idx], b.lower[idx], b.upper[idx], color=colour, alpha=0.25, linewidth=0)
    (h,) = ax.plot(
        b.x[idx],
        b.center[idx],
        color=colour,
        lw=1.8,
        ls=ls,
        label=label,
        marker=None if s.dense else "o",
        ms=3,
        gid=f"{s.column}|center|{s.group!r}",
    )
    return [h]


def _column_styles(spec: Figure, series: list[Series], ycols: list) -> list:
    """Legend keys of the line style of each column (grey), beside the keys of the colours."""
    from matplotlib.lines import Line2D

    styles = {(s.column, s.axis): (s.label, s.dense) for s in series}
    return [
        Line2D(
            [],
            [],
            color="0.25",
            lw=1.2,
            ls=DASHES[i % 4],
            label=label,
            marker="o" if spec.style == "line" or not dense else None,
            ms=3,
        )
        for i, (label, dense) in enumerate(styles[k] for k in ycols)
    ]


def _xy_axes(ax, spec: Figure, series: list[Series], by: Sequence[str]) -> list:
    """Band/line series of one or more columns (and groups) on ax (and a twin axis for y2s); returns legend handles."""
    plt = _plt()
    tab10 = plt.get_cmap("tab10")
    axes = {0: ax}
    if any(s.axis == 1 for s in series):
        axes[1] = ax.twinx()
    ycols = list(dict.fromkeys((s.column, s.axis) for s in series))
    groups = list(dict.fromkeys(s.group for s in series))
    multi_group = len(groups) > 1
    few = all(len(s.curves) <= FEW_CURVES for s in series)
    curve_keys = list(dict.fromkeys((s.group, c.uid) for s in series for c in s.curves)) if few else []
    handles: list = []
    for s in series:
        a = axes[s.axis]
        ls = DASHES[ycols.index((s.column, s.axis)) % 4]
        group = f" ({group_name(by, s.group)})" if multi_group else ""
        if few:

            def colour(j, s=s):
                if multi_group:  # a colour per group (the swept values side by side), a line per unit
                    return tab10(groups.index(s.group) % 10)
                return tab10(curve_keys.index((s.group, s.curves[j].uid)) % 10)

            single = len(ycols) == 1
            handles += _curve_lines(
                a,
                s,
                colour,
                ls,
                lambda c, s=s, single=single: c.label if single else f"{s.label}: {c.label}",
                points=spec.style == "line",
            )
        else:
            c = tab10(groups.index(s.group) % 10) if multi_group else tab10(ycols.index((s.column, s.axis)) % 10)
            handles += _band_lines(a, s, c, ls, s.label + group)
    if few and multi_group:  # a colour per group and a line style per column
        from matplotlib.lines import Line2D

        counts = {g: max(len(s.curves) for s in series if s.group == g) for g in groups}
        handles = [
            Line2D(
                [],
                [],
                color=tab10(i % 10),
                lw=1.4,
                label=f"{group_name(by, g)} ({counts[g]} {'unit' if counts[g] == 1 else 'units'})",
            )
            for i, g in enumerate(groups)
        ]
        if len(ycols) > 1:
            handles += _column_styles(spec, series, ycols)
    elif few and len(ycols) > 1 and len(curve_keys) > 1:  # a colour per unit and a line style per column: two keys
        from matplotlib.lines import Line2D

        labels = {
            (s.group, c.uid): with_group(c.label, by, s.group) if multi_group else c.label
            for s in series
            for c in s.curves
        }
        handles = [Line2D([], [], color=tab10(i % 10), lw=1.4, label=labels[k]) for i, k in enumerate(curve_keys)]
        handles += _column_styles(spec, series, ycols)
    for axis, a in axes.items():
        _style_axis(a, spec, axis, [s for s in series if s.axis == axis])
    _marks(ax, spec, series, handles)
    return handles


def _tensor_colours(series: list[Series]):
    """Per-tensor styles: a qualitative colour per layer and a line style per tensor of the layer; with more than
    MAX_COLOURED tensors, the HIGHLIGHT farthest at the end in colour and the rest in grey."""
    plt = _plt()
    if len(series) <= MAX_COLOURED:
        layers = list(dict.fromkeys(layer_of(s.label) for s in series))
        cmap = plt.get_cmap("tab10" if len(layers) <= 10 else "tab20")
        within: dict[str, int] = {}
        styles = {}
        for s in series:
            layer = layer_of(s.label)
            k = within.get(layer, 0)
            within[layer] = k + 1
            styles[s.column] = (cmap(layers.index(layer) % cmap.N), DASHES[k % 4], 1.4, True)
        return styles, 0
    top = farthest(series, HIGHLIGHT)
    cmap = plt.get_cmap("tab10")
    styles = {
        s.column: ((cmap(top.index(s.column)), "-", 1.6, True) if s.column in top else ("0.7", "-", 0.6, False))
        for s in series
    }
    return styles, len(series) - len(top)


def _tensor_axes(ax, spec: Figure, series: list[Series], curve: int | None) -> list:
    """Per-tensor lines of one path (``curve``: its index) or, for many paths, each tensor's central line."""
    from matplotlib.lines import Line2D

    styles, grey = _tensor_colours(series)
    handles = []
    for s in sorted(series, key=lambda s: styles[s.column][3]):  # grey first, coloured on top
        colour, ls, lw, labelled = styles[s.column]
        if curve is not None:
            c = s.curves[curve]
            idx = downsample(c.x.size)
            (h,) = ax.plot(
                c.x[idx],
                c.shown[idx],
                color=colour,
                ls=ls,
                lw=lw,
                label=s.label,
                zorder=2 if labelled else 1,
                gid=f"{s.column}|{c.uid}",
            )
        else:
            b = s.band
            idx = downsample(b.x.size)
            (h,) = ax.plot(
                b.x[idx],
                b.center[idx],
                color=colour,
                ls=ls,
                lw=lw,
                label=s.label,
                zorder=2 if labelled else 1,
                gid=f"{s.column}|center|{s.group!r}",
            )
        if labelled:
            handles.append(h)
    order = {s.label: i for i, s in enumerate(series)}
    handles.sort(key=lambda h: order.get(h.get_label(), 0))
    if grey:
        handles.append(Line2D([], [], color="0.7", lw=0.6, label=f"{grey} other tensors (nearer at the end)"))
    _style_axis(ax, spec, 0, series)
    _marks(ax, spec, series, handles)
    return handles


def _excluded(study: StudyView, view: StageView, spec: Figure) -> int:
    """How many columns a ys pattern matches that ``exclude`` leaves out."""
    import fnmatch

    names = study.column_names(view.name, spec.table)
    return sum(
        1
        for n in names
        for e in (*spec.ys, *spec.y2s)
        if is_pattern(e) and fnmatch.fnmatchcase(n, e) and any(fnmatch.fnmatchcase(n, p) for p in spec.exclude)
    )


def xy_figures(study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = (), smooth: float | None = None):
    """The matplotlib figures of a band or line figure of one stage, unsaved: [(file stem, figure, curves drawn)].
    One figure; per-tensor figures split per group, and draw one panel per path when there are few paths."""
    plt = _plt()
    series = figure_data(study, view.name, spec, by, smooth)
    if not series:
        return []
    patterned = any(is_pattern(e) for e in (*spec.ys, *spec.y2s))
    groups = list(dict.fromkeys(s.group for s in series))
    noun = "paths" if spec.chain else "units"
    head = f"{spec.title} — stage {view.name} ({view.kind})"
    out = []
    if patterned:
        for key in groups:
            part = [s for s in series if s.group == key]
            n_paths = max(len(s.curves) for s in part)
            per_path = n_paths <= FEW_PANELS  # each path's own tensors; more paths: each tensor's central line
            panels = n_paths if per_path else 1
            cols = min(panels, 2)
            rows = math.ceil(panels / cols)
            size = (PANEL[0] * cols + 2.6, PANEL[1] * rows + 0.9)
            fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
            axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
            handles = []
            for i, ax in enumerate(axes.flat):
                if i >= panels:
                    ax.set_visible(False)
                    continue
                with_curve = [s for s in part if len(s.curves) > i] if per_path else part
                handles = _tensor_axes(ax, spec, with_curve, i if per_path else None)
                ax.set_xlabel(spec.xlabel or spec.x)
                ax.grid(True, which="major", alpha=0.3)
                if panels > 1:
                    ax.set_title(f"path {with_curve[0].curves[i].label}", fontsize=8.5)
            if len(handles) <= MAX_LEGEND + 1:
                fig.legend(
                    handles=handles,
                    loc="outside right center",
                    fontsize=7.5,
                    frameon=False,
                    title=next(
                        (spec.labels[i] for i, e in enumerate(spec.ys) if is_pattern(e) and i < len(spec.labels)), None
                    ),
                    title_fontsize=8,
                )
            what = [
                f"each of n = {n_paths} {noun}" + (", one panel per path" if panels > 1 else "")
                if per_path
                else f"per tensor the {part[0].band.how.split(' (line)')[0]} over n = {n_paths} {noun}"
            ]
            if any(s.window for s in part):
                what.append(f"trailing mean over {part[0].window:g} ({spec.xlabel or spec.x})")
            if len(part) > MAX_COLOURED:
                what.append(f"the {HIGHLIGHT} farthest of {len(part)} tensors at the end in colour")
            if by and key:
                what.append(group_name(by, key))
            left_out = _excluded(study, view, spec)
            if left_out:
                what.append(f"{left_out} columns not drawn ({', '.join(spec.exclude)})")
            import textwrap

            wrapped = "\n".join(textwrap.wrap("; ".join(what), int(size[0] * 14)))
            fig.suptitle(f"{head}\n{wrapped}", fontsize=9.5)
            stem = f"{view.name}-{spec.name}" + (f"-{_safe(group_name(by, key))}" if key and len(groups) > 1 else "")
            out.append((stem, fig, n_paths))
        return out
    many_hist = spec.style == "line" and spec.result_hist and max(len(s.curves) for s in series) > FEW_CURVES
    few = all(len(s.curves) <= FEW_CURVES for s in series)
    n_legend = sum(len(s.curves) for s in series) if few else len(series)
    size = HIST_SIZE if many_hist else LEGEND_SIZE if n_legend > 4 else LINE_SIZE
    fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
    if many_hist:
        grid = fig.add_gridspec(len(spec.result_hist), 2, width_ratios=(2.2, 1))
        ax = fig.add_subplot(grid[:, 0])
        tab10 = plt.get_cmap("tab10")
        uids_of = {g: [c.uid for c in next(s for s in series if s.group == g).curves] for g in groups}
        for k, key in enumerate(spec.result_hist):
            hax = fig.add_subplot(grid[k, 1])
            per_group = {g: result_values(study, view, uids, key) for g, uids in uids_of.items()}
            every = np.concatenate(list(per_group.values())) if per_group else np.array([])
            if every.size:
                bins = np.histogram_bin_edges(every, bins=min(40, max(5, int(math.sqrt(every.size)))))
                for i, (g, values) in enumerate(per_group.items()):
                    if not values.size:
                        continue
                    colour = tab10(i % 10) if len(groups) > 1 else "0.45"
                    hax.hist(values, bins=bins, color=colour, alpha=0.6 if len(groups) > 1 else 1.0, gid=f"hist|{key}")
                    hax.axvline(
                        float(np.median(values)),
                        color=colour if len(groups) > 1 else "crimson",
                        lw=1.2,
                        label=f"median {np.median(values):.4g}"
                        + (f" ({group_name(by, g)})" if len(groups) > 1 else ""),
                    )
                hax.legend(fontsize=7, frameon=False)
            kind = jobs.unit_kinds().get(view.kind)
            label = next((m.label for m in getattr(kind, "metrics", ()) if m.key == key), key.replace("_", " "))
            hax.set_title(f"{label} (n = {every.size})", fontsize=8.5)
            hax.tick_params(labelsize=7)
    else:
        ax = fig.add_subplot(1, 1, 1)
    handles = _xy_axes(ax, spec, series, by)
    if spec.logx:
        ax.set_xscale("log")
    ax.set_xlabel(spec.xlabel or spec.x)
    ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(head, fontsize=11, fontweight="bold")
    group = f"; {group_name(by, groups[0])}" if by and len(groups) == 1 and groups[0] else ""
    width = int((size[0] - (2.0 if size == LEGEND_SIZE else 0.0)) * 14)  # characters that fit above the axes
    ax.set_title(_what(series, noun, spec.xlabel or spec.x, width) + group, fontsize=8, color="0.3")
    if len(handles) > MAX_LEGEND:
        ax.text(
            0.99,
            0.01,
            f"{len(handles)} lines (legend omitted)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.3",
        )
    elif handles:
        if size == LEGEND_SIZE:
            fig.legend(handles=handles, loc="outside right center", fontsize=7.5, frameon=False)
        elif spec.y2s or many_hist:  # two y axes: a legend inside would hide one of them
            fig.legend(
                handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False
            )
        else:
            ax.legend(handles=handles, fontsize=8, framealpha=0.85)
    out.append((f"{view.name}-{spec.name}", fig, len({c.uid for s in series for c in s.curves})))
    return out


def draw_xy(
    study: StudyView,
    view: StageView,
    spec: Figure,
    out: Path,
    by: Sequence[str] = (),
    smooth: float | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[FigureFile]:
    """A band or line figure of one stage, saved (one file; one file per group for per-tensor figures)."""
    files = []
    for stem, fig, n in xy_figures(study, view, spec, by, smooth):
        size = _size_px(fig)
        files.append(
            FigureFile(
                view.name, spec.name, _save(fig, out / stem, formats), size, n, "paths" if spec.chain else "units"
            )
        )
    return files


def pca_figures(study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = ()):
    """Per-tensor panels of the stage's points on two principal components, a colour per path, with the start, the
    end and D marked (LLPF Fig. 4); unsaved: [(stem, figure, paths)]."""
    plt = _plt()
    from matplotlib.lines import Line2D

    out = []
    groups = study.groups(view, by)
    tab10 = plt.get_cmap("tab10")
    for group, uids in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        key = group if len(groups) > 1 else None
        data = pca_data(study, view, spec, uids)
        if not data:
            continue
        shown = list(data)
        total_tensors = next(iter(data.values()))["of"]
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        size = (PCA_PANEL[0] * cols + 1.0, PCA_PANEL[1] * rows + 1.2)
        fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        labels = list(dict.fromkeys(label for d in data.values() for label, _, _ in d["units"]))
        n_units = 0
        for ax, name in zip(axes.flat, shown):
            d = data[name]
            n_units = max(n_units, len(d["units"]))
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
        for ax in list(axes.flat)[len(shown) :]:
            ax.set_visible(False)
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
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="*",
                    ls="",
                    color="0.5",
                    mec="black",
                    ms=11,
                    label=f"D of the path (final state of input {spec.destination!r})",
                )
            )
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
        extra = f"; first {len(shown)} of {total_tensors} tensors" if total_tensors > len(shown) else ""
        group_text = f"; {group_name(by, key)}" if key else ""
        fig.suptitle(
            f"{spec.title} — stage {view.name} ({view.kind})\n"
            f"PCA per tensor over the stored points of {n_units} {'paths' if spec.chain else 'units'}"
            f"{extra}{group_text}",
            fontsize=10,
        )
        stem = f"{view.name}-{spec.name}" + (f"-{_safe(group_name(by, key))}" if key else "")
        out.append((stem, fig, n_units))
    return out


def draw_pca(
    study: StudyView, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (), formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    files = []
    for stem, fig, n in pca_figures(study, view, spec, by):
        size = _size_px(fig)
        files.append(
            FigureFile(
                view.name, spec.name, _save(fig, out / stem, formats), size, n, "paths" if spec.chain else "units"
            )
        )
    return files


def _verdicts(view: StageView) -> list:
    kind = jobs.unit_kinds().get(view.kind)
    return list(getattr(kind, "verdicts", ()) if kind is not None else ())


def pairs_table(rows, spec: Figure, verdicts: Sequence = ()) -> tuple[list[str], list[list[str]]]:
    """The headline table of a pairs figure: one line per pair, its values, the compared values, the verdict and
    every verdict the kind declares."""
    labels = [spec.labels[i] if i < len(spec.labels) else k for i, k in enumerate(spec.ys)]
    clabels = [spec.compare_labels[i] if i < len(spec.compare_labels) else k for i, k in enumerate(spec.compare_ys)]
    head = ["pair", *labels, *clabels]
    head += [spec.threshold_label or spec.threshold_param] if spec.threshold_param else []
    head += [spec.verdict] if spec.verdict else []
    checks = [v for v in verdicts if v.key != spec.verdict]
    head += [v.label for v in checks]
    lines = []
    for r in rows:
        cells = [r.label] + [_num(r.values[k]) for k in spec.ys] + [_num(r.compare[k]) for k in spec.compare_ys]
        cells += [_num(r.threshold)] if spec.threshold_param else []
        cells += ["—" if r.verdict is None else "yes" if r.verdict else "no"] if spec.verdict else []
        cells += ["—" if r.checks.get(v.key) is None else "yes" if r.checks[v.key] else "no" for v in checks]
        lines.append(cells)
    return head, lines


def _num(v) -> str:
    return "—" if v is None else f"{v:.4g}"


def pairs_figures(study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = ()):
    """A pair stage's headline: per pair, its result keys (e.g. the path's peak loss) next to the compared stage's (the
    straight line's peak and barrier between the same modes), coloured by the verdict, with the threshold; unsaved:
    [(stem, figure, pairs, (head, lines))]."""
    plt = _plt()
    from matplotlib.lines import Line2D

    out = []
    groups = study.groups(view, by)
    for group, uids in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        key = group if len(groups) > 1 else None
        verdicts = _verdicts(view)
        rows = pair_rows(study, view, spec, uids, [v.key for v in verdicts])
        if not rows:
            continue
        fig = plt.figure(figsize=LEGEND_SIZE, dpi=DPI, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        markers = ["D", "s", "^", "v"]
        hidden = 0
        handles = []
        if len(rows) <= MAX_PAIR_LABELS:
            xs = np.arange(len(rows), dtype=np.float64)
            offsets = np.linspace(-0.12, 0.12, len(spec.compare_ys)) if len(spec.compare_ys) > 1 else [0.0]
            for j, k in enumerate(spec.ys):
                ys = np.array([np.nan if r.values[k] is None else r.values[k] for r in rows])
                colours = [VERDICT_COLOURS[r.verdict] for r in rows]
                if spec.logy:
                    hidden += int(np.sum(ys <= 0))
                    ys = np.where(ys > 0, ys, np.nan)
                ax.scatter(xs, ys, c=colours, marker="o", s=60, zorder=3, edgecolors="black", lw=0.6, gid=f"pairs|{k}")
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker="o",
                        ls="",
                        color="0.6",
                        mec="black",
                        label=spec.labels[j] if j < len(spec.labels) else k,
                    )
                )
            for j, k in enumerate(spec.compare_ys):
                ys = np.array([np.nan if r.compare[k] is None else r.compare[k] for r in rows])
                if spec.logy:
                    hidden += int(np.sum(ys <= 0))
                    ys = np.where(ys > 0, ys, np.nan)
                ax.scatter(
                    xs + 0.25 + offsets[j],
                    ys,
                    marker=markers[j % 4],
                    facecolors="none",
                    edgecolors="0.2",
                    s=46,
                    lw=1.0,
                    zorder=2,
                    gid=f"pairs-compare|{k}",
                )
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker=markers[j % 4],
                        ls="",
                        mfc="none",
                        mec="0.2",
                        label=spec.compare_labels[j] if j < len(spec.compare_labels) else k,
                    )
                )
            for x, r in zip(xs, rows):
                if r.threshold is not None:
                    ax.hlines(r.threshold, x - 0.4, x + 0.4, color="black", lw=1.0, ls=(0, (5, 2)))
                failed = [v.label for v in verdicts if v.key != spec.verdict and r.checks.get(v.key) is False]
                value = r.values[spec.ys[0]] if spec.ys else None
                if failed and value is not None and value > 0 and len(rows) <= 12:
                    ax.annotate(
                        "failed: " + "; ".join(failed),
                        (x, value),
                        xytext=(0, 9),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        color=VERDICT_COLOURS[False],
                    )
            ax.set_xticks(
                xs,
                [r.label for r in rows],
                rotation=30 if len(rows) > 6 else 0,
                ha="right" if len(rows) > 6 else "center",
                fontsize=8,
            )
            ax.set_xlim(-0.6, len(rows) - 0.4)
        else:  # many pairs: the path's value against the straight line's, one point per pair
            k, c = spec.ys[0], spec.compare_ys[0] if spec.compare_ys else None
            xs = np.array([np.nan if c is None or r.compare[c] is None else r.compare[c] for r in rows])
            ys = np.array([np.nan if r.values[k] is None else r.values[k] for r in rows])
            ax.scatter(xs, ys, c=[VERDICT_COLOURS[r.verdict] for r in rows], s=14, lw=0, gid=f"pairs|{k}")
            ax.set_xlabel(spec.compare_labels[0] if spec.compare_labels else str(c))
            if spec.logy:
                ax.set_xscale("log")
        if spec.threshold_param and any(r.threshold is not None for r in rows):
            values = sorted({r.threshold for r in rows if r.threshold is not None})
            if len(rows) > MAX_PAIR_LABELS:
                for v in values:
                    ax.axhline(v, color="black", lw=1.0, ls=(0, (5, 2)))
            handles.append(
                Line2D(
                    [],
                    [],
                    color="black",
                    lw=1.0,
                    ls=(0, (5, 2)),
                    label=f"{spec.threshold_label or spec.threshold_param} = {', '.join(f'{v:g}' for v in values)}",
                )
            )
        if spec.verdict:
            for v, text in ((True, "yes"), (False, "no")):
                if any(r.verdict is v for r in rows):
                    handles.append(
                        Line2D(
                            [],
                            [],
                            marker="o",
                            ls="",
                            color=VERDICT_COLOURS[v],
                            mec="black",
                            label=f"{spec.verdict}: {text}",
                        )
                    )
        if spec.logy:
            ax.set_yscale("log")
        ax.set_ylabel(spec.ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        fig.legend(handles=handles, loc="outside right center", fontsize=7.5, frameon=False)
        compared = sorted({r.compare_stage for r in rows if r.compare_stage})
        sub = (
            f"{len(rows)} pairs; compared with stage {', '.join(compared)} ({spec.compare_kind}) on the same modes"
            if compared
            else f"{len(rows)} pairs; no {spec.compare_kind} stage on the same modes"
        )
        if hidden:
            sub += f"; {hidden} value(s) ≤ 0 not on the log axis (see the table)"
        if key:
            sub += f"; {group_name(by, key)}"
        fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})\n{sub}", fontsize=10)
        stem = f"{view.name}-{spec.name}" + (f"-{_safe(group_name(by, key))}" if key else "")
        out.append((stem, fig, len(rows), pairs_table(rows, spec, verdicts)))
    return out


def draw_pairs(
    study: StudyView, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (), formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    files = []
    for stem, fig, n, (head, lines) in pairs_figures(study, view, spec, by):
        size = _size_px(fig)
        paths = _save(fig, out / stem, formats)
        md = out / f"{stem}.md"
        md.write_text(
            f"## {spec.title} — stage {view.name}\n\n| "
            + " | ".join(head)
            + " |\n| "
            + " | ".join("---" if i == 0 else "---:" for i in range(len(head)))
            + " |\n"
            + "".join("| " + " | ".join(line) + " |\n" for line in lines)
        )
        path_csv = out / f"{stem}.csv"
        with open(path_csv, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(head)
            writer.writerows(lines)
        files.append(FigureFile(view.name, spec.name, paths, size, n, "pairs", [md, path_csv]))
    return files


def methods_table(rows, spec: Figure) -> tuple[list[str], list[list[str]]]:
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
    from .figure_data import method_rows

    rows = method_rows(study, view, spec, view.units)
    if not rows or not spec.ys:
        return []
    plt = _plt()
    groups = list(dict.fromkeys(r.row for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    fig = plt.figure(figsize=LEGEND_SIZE, dpi=DPI, layout="constrained")
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
    size = _size_px(fig)
    paths = _save(fig, out / stem, formats)
    head, lines = methods_table(rows, spec)
    md = out / f"{stem}.md"
    md.write_text(
        f"## {spec.title} — stage {view.name}\n\n| "
        + " | ".join(head)
        + " |\n| "
        + " | ".join("---" if i < 2 else "---:" for i in range(len(head)))
        + " |\n"
        + "".join("| " + " | ".join(line) + " |\n" for line in lines)
        + "\nCPU-s, GPU-s, wall-s: spent by the units that produced each path (every attempt in the store; the "
        "modes' training, common to all methods, not counted).\n"
    )
    path_csv = out / f"{stem}.csv"
    with open(path_csv, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(head)
        writer.writerows(lines)
    return [FigureFile(view.name, spec.name, paths, size, len(rows), "units", [md, path_csv])]


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
    plt = _plt()
    fig = plt.figure(figsize=LINE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    spec.draw(ax, data)
    fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})", fontsize=11, fontweight="bold")
    if spec.xlabel:
        ax.set_xlabel(spec.xlabel)
    if spec.ylabel:
        ax.set_ylabel(spec.ylabel)
    size = _size_px(fig)
    return [FigureFile(view.name, spec.name, _save(fig, out / f"{view.name}-{spec.name}", formats), size, len(data))]


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
    for view in study.stages(stages):
        kind = jobs.unit_kinds().get(view.kind)
        for spec in getattr(kind, "figures", ()) if kind is not None else ():
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
