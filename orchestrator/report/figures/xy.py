"""The ``band`` and ``line`` styles: one column (or a glob pattern of columns, one line per tensor) of a table
against ``x``, every unit's curve when there are few, else a central line and a band; a line figure beside the
histograms of result keys; per-tensor figures one panel per path. What is drawn is exactly the arrays of
``figure_data``: each curve's line carries the gid ``<column>|<unit id>``, a band's central line
``<column>|center|<group>``, so a test can read the plotted data back from the artists."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .... import jobs
from ....jobs.base import Figure
from ..api import StageView, StudyView
from ..figure_data import (
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
    result_values,
    with_group,
)
from .canvas import (
    DASHES,
    DPI,
    FORMATS,
    HIST_SIZE,
    LEGEND_SIZE,
    LINE_SIZE,
    MAX_LEGEND,
    PANEL,
    FigureFile,
    fitted_title,
    log_ticks,
    plt,
    safe,
    save,
    size_px,
)


def _style_axis(ax, fig: Figure, axis: int, series: list[Series]) -> None:
    logy, lim, label = (fig.logy, fig.ylim, fig.ylabel) if axis == 0 else (fig.logy2, fig.y2lim, fig.y2label)
    if logy:
        ax.set_yscale("log")
    if lim is not None:
        bottom, top = lim
        cur = ax.get_ylim()
        ax.set_ylim(cur[0] if bottom is None else bottom, cur[1] if top is None else top)
    if logy:
        log_ticks(ax)
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


def _xy_axes(ax: Any, spec: Figure, series: list[Series], by: Sequence[str]) -> list:
    """Band/line series of one or more columns (and groups) on ax (and a twin axis for y2s); returns legend handles."""
    axes = {0: ax}
    if any(s.axis == 1 for s in series):
        axes[1] = ax.twinx()
    ycols = list(dict.fromkeys((s.column, s.axis) for s in series))
    groups = list(dict.fromkeys(s.group for s in series))
    few = all(len(s.curves) <= FEW_CURVES for s in series)
    curve_keys = list(dict.fromkeys((s.group, c.uid) for s in series for c in s.curves)) if few else []
    handles: list = []
    for s in series:
        handles += _series_lines(axes[s.axis], spec, s, by, ycols, groups, curve_keys if few else None)
    if few and len(groups) > 1:  # a colour per group and a line style per column
        handles = _group_keys(series, groups, by)
        if len(ycols) > 1:
            handles += _column_styles(spec, series, ycols)
    elif few and len(ycols) > 1 and len(curve_keys) > 1:  # a colour per unit and a line style per column: two keys
        handles = _unit_keys(series, groups, curve_keys, by) + _column_styles(spec, series, ycols)
    for axis, a in axes.items():
        _style_axis(a, spec, axis, [s for s in series if s.axis == axis])
    _marks(ax, spec, series, handles)
    return handles


def _series_lines(
    a: Any, spec: Figure, s: Series, by: Sequence[str], ycols: list, groups: list, curve_keys: list | None
) -> list:
    """One series on its axis: each curve (few), or its band; a colour per group (several groups), else per unit
    (few curves) or per column (bands); a line style per column."""
    tab10 = plt().get_cmap("tab10")
    ls = DASHES[ycols.index((s.column, s.axis)) % 4]
    multi_group = len(groups) > 1
    if curve_keys is None:  # many curves: the series' band
        colour = tab10(groups.index(s.group) % 10) if multi_group else tab10(ycols.index((s.column, s.axis)) % 10)
        return _band_lines(a, s, colour, ls, s.label + (f" ({group_name(by, s.group)})" if multi_group else ""))

    def colour_of(j: int) -> Any:
        if multi_group:  # a colour per group (the swept values side by side), a line per unit
            return tab10(groups.index(s.group) % 10)
        return tab10(curve_keys.index((s.group, s.curves[j].uid)) % 10)

    single = len(ycols) == 1
    return _curve_lines(
        a, s, colour_of, ls, lambda c: c.label if single else f"{s.label}: {c.label}", points=spec.style == "line"
    )


def _group_keys(series: list[Series], groups: list, by: Sequence[str]) -> list:
    from matplotlib.lines import Line2D

    tab10 = plt().get_cmap("tab10")
    counts = {g: max(len(s.curves) for s in series if s.group == g) for g in groups}
    return [
        Line2D(
            [],
            [],
            color=tab10(i % 10),
            lw=1.4,
            label=f"{group_name(by, g)} ({counts[g]} {'unit' if counts[g] == 1 else 'units'})",
        )
        for i, g in enumerate(groups)
    ]


def _unit_keys(series: list[Series], groups: list, curve_keys: list, by: Sequence[str]) -> list:
    from matplotlib.lines import Line2D

    tab10 = plt().get_cmap("tab10")
    labels = {
        (s.group, c.uid): with_group(c.label, by, s.group) if len(groups) > 1 else c.label
        for s in series
        for c in s.curves
    }
    return [Line2D([], [], color=tab10(i % 10), lw=1.4, label=labels[k]) for i, k in enumerate(curve_keys)]


def _tensor_colours(series: list[Series]) -> tuple[dict[str, tuple], int]:
    """Per-tensor styles: a qualitative colour per layer and a line style per tensor of the layer; with more than
    MAX_COLOURED tensors, the HIGHLIGHT farthest at the end in colour and the rest in grey."""
    pyplot = plt()
    if len(series) <= MAX_COLOURED:
        layers = list(dict.fromkeys(layer_of(s.label) for s in series))
        cmap = pyplot.get_cmap("tab10" if len(layers) <= 10 else "tab20")
        within: dict[str, int] = {}
        styles = {}
        for s in series:
            layer = layer_of(s.label)
            k = within.get(layer, 0)
            within[layer] = k + 1
            styles[s.column] = (cmap(layers.index(layer) % cmap.N), DASHES[k % 4], 1.4, True)
        return styles, 0
    top = farthest(series, HIGHLIGHT)
    cmap = pyplot.get_cmap("tab10")
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
            x, y, gid = c.x, c.shown, f"{s.column}|{c.uid}"
        else:
            x, y, gid = s.band.x, s.band.center, f"{s.column}|center|{s.group!r}"
        idx = downsample(x.size)
        zorder = 2 if labelled else 1
        (h,) = ax.plot(x[idx], y[idx], color=colour, ls=ls, lw=lw, label=s.label, zorder=zorder, gid=gid)
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


def xy_figures(
    study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = (), smooth: float | None = None
) -> list[tuple[str, Any, int]]:
    """The matplotlib figures of a band or line figure of one stage, unsaved: [(file stem, figure, curves drawn)].
    One figure; per-tensor figures split per group, and draw one panel per path when there are few paths."""
    series = figure_data(study, view.name, spec, by, smooth)
    if not series:
        return []
    if any(is_pattern(e) for e in (*spec.ys, *spec.y2s)):
        groups = list(dict.fromkeys(s.group for s in series))
        return [
            _tensor_figure(study, view, spec, by, [s for s in series if s.group == key], key, len(groups))
            for key in groups
        ]
    return [_curves_figure(study, view, spec, by, series)]


def _tensor_figure(
    study: StudyView, view: StageView, spec: Figure, by: Sequence[str], part: list[Series], key: tuple, groups: int
) -> tuple[str, Any, int]:
    """One group's per-tensor figure: a panel per path when there are few paths, else each tensor's central line."""
    n_paths = max(len(s.curves) for s in part)
    per_path = n_paths <= FEW_PANELS  # each path's own tensors; more paths: each tensor's central line
    panels = n_paths if per_path else 1
    cols = min(panels, 2)
    rows = math.ceil(panels / cols)
    size = (PANEL[0] * cols + 2.6, PANEL[1] * rows + 0.9)
    fig = plt().figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    handles: list = []
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
        title = next((spec.labels[i] for i, e in enumerate(spec.ys) if is_pattern(e) and i < len(spec.labels)), None)
        fig.legend(
            handles=handles, loc="outside right center", fontsize=7.5, frameon=False, title=title, title_fontsize=8
        )
    what = _tensor_subtitle(study, view, spec, by, part, key, n_paths, per_path, panels)
    wrapped = "\n".join(textwrap.wrap("; ".join(what), int(size[0] * 14)))
    fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})\n{wrapped}", fontsize=9.5)
    stem = f"{view.name}-{spec.name}" + (f"-{safe(group_name(by, key))}" if key and groups > 1 else "")
    return stem, fig, n_paths


def _tensor_subtitle(
    study: StudyView,
    view: StageView,
    spec: Figure,
    by: Sequence[str],
    part: list[Series],
    key: tuple,
    n_paths: int,
    per_path: bool,
    panels: int,
) -> list[str]:
    noun = "paths" if spec.chain else "units"
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
    return what


def _curves_figure(
    study: StudyView, view: StageView, spec: Figure, by: Sequence[str], series: list[Series]
) -> tuple[str, Any, int]:
    """The curves (or bands) of every series on one axis pair, beside the histograms of result keys when a line
    figure has many units."""
    groups = list(dict.fromkeys(s.group for s in series))
    many_hist = spec.style == "line" and bool(spec.result_hist) and max(len(s.curves) for s in series) > FEW_CURVES
    few = all(len(s.curves) <= FEW_CURVES for s in series)
    n_legend = sum(len(s.curves) for s in series) if few else len(series)
    size = HIST_SIZE if many_hist else LEGEND_SIZE if n_legend > 4 else LINE_SIZE
    fig = plt().figure(figsize=size, dpi=DPI, layout="constrained")
    if many_hist:
        grid = fig.add_gridspec(len(spec.result_hist), 2, width_ratios=(2.2, 1))
        ax = fig.add_subplot(grid[:, 0])
        _result_histograms(fig, grid, study, view, spec, by, series, groups)
    else:
        ax = fig.add_subplot(1, 1, 1)
    handles = _xy_axes(ax, spec, series, by)
    if spec.logx:
        ax.set_xscale("log")
    ax.set_xlabel(spec.xlabel or spec.x)
    ax.grid(True, which="major", alpha=0.3)
    title = fitted_title(fig, f"{spec.title} — stage {view.name} ({view.kind})", 11, bold=True)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    group = f"; {group_name(by, groups[0])}" if by and len(groups) == 1 and groups[0] else ""
    width = int((size[0] - (2.0 if size == LEGEND_SIZE else 0.0)) * 14)  # characters that fit above the axes
    noun = "paths" if spec.chain else "units"
    ax.set_title(_what(series, noun, spec.xlabel or spec.x, width) + group, fontsize=8, color="0.3")
    _place_legend(fig, ax, spec, handles, size, many_hist)
    return f"{view.name}-{spec.name}", fig, len({c.uid for s in series for c in s.curves})


def _result_histograms(
    fig: Any,
    grid: Any,
    study: StudyView,
    view: StageView,
    spec: Figure,
    by: Sequence[str],
    series: list[Series],
    groups: list,
) -> None:
    """One histogram per result key of ``result_hist`` (per group, with its median), to the right of the curves."""
    tab10 = plt().get_cmap("tab10")
    uids_of = {g: [c.uid for c in next(s for s in series if s.group == g).curves] for g in groups}
    kind = jobs.unit_kinds().get(view.kind)
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
                    label=f"median {np.median(values):.4g}" + (f" ({group_name(by, g)})" if len(groups) > 1 else ""),
                )
            hax.legend(fontsize=7, frameon=False)
        label = next((m.label for m in getattr(kind, "metrics", ()) if m.key == key), key.replace("_", " "))
        hax.set_title(f"{label} (n = {every.size})", fontsize=8.5)
        hax.tick_params(labelsize=7)


def _place_legend(fig: Any, ax: Any, spec: Figure, handles: list, size: tuple, many_hist: bool) -> None:
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
        size = size_px(fig)
        files.append(
            FigureFile(
                view.name, spec.name, save(fig, out / stem, formats), size, n, "paths" if spec.chain else "units"
            )
        )
    return files
