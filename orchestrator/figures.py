"""Figures of a study, drawn from what unit kinds declare (``Kind.figures``, ``jobs.base.Figure``).

The core knows styles, never kinds: ``band`` (mean ± std over repetitions, aligned on x, smoothed by a moving average;
LLPF Figs. 2–3; a glob pattern in ``ys`` such as ``dist.*`` gives one line per layer), ``line`` (one line per unit and
their mean; interpolation curves), ``pca`` (stored path points per tensor projected on two principal components; LLPF
Fig. 4) and ``custom`` (the kind's own ``draw``). Only committed segments are read, so a running study can be drawn;
the subtitle says how many units a curve covers.

Aggregation is numpy over per-unit columns read straight from Parquet (only the needed columns); plotting downsamples
long curves to at most ``MAX_PLOT_POINTS`` points.
"""
from __future__ import annotations

import fnmatch
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lowloss import jobs
from lowloss.jobs.base import Figure

from .api import Study, StageView
from .summary import group_order, group_text

DPI = 150
LINE_SIZE = (7.0, 4.2)  # inches: band and line figures (1050 × 630 px at DPI)
LEGEND_SIZE = (9.0, 4.2)  # with many lines: the legend sits to the right of the axes
PCA_PANEL = (3.4, 3.2)
PCA_MAX_PANELS = 16
PCA_MAX_COORDS = 20000  # PCA of a larger tensor runs on this many seeded random coordinates
MAX_PLOT_POINTS = 2000
MAX_LEGEND = 24
FORMATS = ("png", "pdf")


@dataclass
class Band:
    """Mean and standard deviation over units of one column, on the union of the units' x values."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray  # units with a value at each x


@dataclass
class Series:
    """One drawn quantity: a column of a group of units, its per-unit curves and their band."""

    column: str
    label: str
    group: tuple
    axis: int  # 0: left y axis, 1: right
    band: Band
    units: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (unit label, x, y)


@dataclass
class FigureFile:
    stage: str
    name: str
    paths: list[Path]
    size_px: tuple[int, int]
    units: int  # curves drawn: units, or chained paths
    what: str = "units"


# ---------------------------------------------------------------------- aggregation (numpy)

def moving_average(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` entries (fewer at the start); NaN entries are skipped."""
    if window <= 1 or a.size == 0:
        return a
    finite = np.isfinite(a)
    c = np.concatenate(([0.0], np.cumsum(np.where(finite, a, 0.0))))
    k = np.concatenate(([0], np.cumsum(finite)))
    hi = np.arange(1, a.size + 1)
    lo = np.maximum(hi - window, 0)
    count = k[hi] - k[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (c[hi] - c[lo]) / np.maximum(count, 1), np.nan)


def band(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], window: int = 1) -> Band:
    """Mean and sample std (ddof 1; 0 for one unit) over units at every x any unit has (a unit's NaN cells are
    skipped), then both smoothed by a trailing moving average of ``window`` points (LLPF Fig. 2's post-processing)."""
    pairs = []
    for x, y in zip(xs, ys):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        keep = np.isfinite(y) & np.isfinite(x)
        if not keep.all():
            x, y = x[keep], y[keep]
        if x.size:
            pairs.append((x, y))
    if not pairs:
        empty = np.zeros(0)
        return Band(empty, empty, empty, np.zeros(0, dtype=int))
    x0 = pairs[0][0]
    if all(p[0].shape == x0.shape and np.array_equal(p[0], x0) for p in pairs):
        grid = x0
        Y = np.vstack([p[1] for p in pairs])
        n = np.full(grid.shape, len(pairs))
        mean = Y.mean(axis=0)
        std = Y.std(axis=0, ddof=1) if len(pairs) > 1 else np.zeros_like(mean)
    else:
        grid = np.unique(np.concatenate([p[0] for p in pairs]))
        Y = np.full((len(pairs), grid.size), np.nan)
        for i, (x, y) in enumerate(pairs):
            Y[i, np.searchsorted(grid, x)] = y
        n = np.isfinite(Y).sum(axis=0)
        total = np.nansum(Y, axis=0)
        mean = total / n
        dev = np.where(np.isfinite(Y), Y - mean, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.where(n > 1, np.sqrt((dev ** 2).sum(axis=0) / np.maximum(n - 1, 1)), 0.0)
    return Band(grid, moving_average(mean, window), moving_average(std, window), n)


def downsample(n: int, limit: int = MAX_PLOT_POINTS) -> np.ndarray | slice:
    """Indices of at most ``limit`` evenly spaced points of ``n`` (first and last kept)."""
    if n <= limit:
        return slice(None)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


# ---------------------------------------------------------------------- columns and groups

def is_pattern(entry: str) -> bool:
    return any(ch in entry for ch in "*?[")


def expand_columns(entries: Sequence[str], labels: Sequence[str], names: Sequence[str]) -> list[tuple[str, str, str]]:
    """(column, legend label, pattern) for every ys entry: an exact name, or a glob pattern → one per matching column,
    labelled by the part the wildcard matched (``dist.*`` → ``conv1.weight``)."""
    out = []
    for i, entry in enumerate(entries):
        if is_pattern(entry):
            head = re.split(r"[*?\[]", entry, maxsplit=1)[0]  # literal text before the first wildcard
            tail = re.split(r"[*?\]]", entry)[-1]  # and after the last one
            for name in names:
                if fnmatch.fnmatchcase(name, entry):
                    out.append((name, name[len(head):len(name) - len(tail)] or name, entry))
        elif entry in names:
            out.append((entry, labels[i] if i < len(labels) and labels[i] else entry.replace("_", " "), ""))
    return out


def paths_of(study: Study, view: StageView, role: str | None, uids: Sequence[str]) -> list[list[str]]:
    """The drawn curves: each unit alone, or with ``role`` (``Figure.chain``) the chains of units where a unit continues
    its input ``role`` of the same stage; a chain ends at a unit no written unit continues (a chain still running is
    drawn as far as it got). Only chains ending in ``uids`` are returned."""
    if not role:
        return [[uid] for uid in uids]
    in_stage = set(view.units)
    previous = {}
    for uid in view.units:
        rec = study.record(uid)
        if rec is not None and rec.inputs.get(role) in in_stage:
            previous[uid] = rec.inputs[role]
    continued = set(previous.values())
    paths = []
    for uid in uids:
        if uid in continued:
            continue
        path = [uid]
        while path[0] in previous:
            path.insert(0, previous[path[0]])
        paths.append(path)
    return paths


def join_path(parts: list[dict[str, np.ndarray]], x: str) -> dict[str, np.ndarray]:
    """The columns of a chain of units as one path: each unit's x shifted to start where the previous one ended (its
    rows at or before that point, the repeated start state, are dropped)."""
    if len(parts) == 1:
        return parts[0]
    names = list(dict.fromkeys(c for d in parts for c in d))
    out: dict[str, list[np.ndarray]] = {c: [] for c in names}
    end = None
    for d in parts:
        xs = d[x] if end is None else d[x] + end
        keep = np.ones(xs.shape, bool) if end is None else xs > end
        for c in names:
            col = xs if c == x else d.get(c, np.full(xs.shape, np.nan))
            out[c].append(col[keep])
        if keep.any():
            end = float(np.nanmax(xs[keep]))
    return {c: np.concatenate(v) for c, v in out.items()}


def group_name(by: Sequence[str], key: tuple) -> str:
    return ", ".join(f"{f}={group_text(v)}" for f, v in zip(by, key))


def _read_units(study: Study, uids: Sequence[str], table: str, columns: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """uid → column → float64 array (nulls as NaN) of the committed rows; units without rows are left out."""
    def one(uid):
        t = study.unit_rows(uid, table, columns)
        if t is None or t.num_rows == 0:
            return uid, None
        return uid, {c: t.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
                     for c in t.column_names}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {uid: cols for uid, cols in pool.map(one, uids) if cols is not None}


def figure_data(study: Study, stage: str, fig: Figure, by: Sequence[str] = (), smooth: int | None = None) -> list[Series]:
    """The series a band or line figure draws for one stage: per group and column, the per-unit curves and their band.
    This is the aggregation ``lowloss report`` plots (and the benchmark times)."""
    view = study.stage(stage)
    names = study.column_names(stage, fig.table)
    wanted = [(c, lab, pat, 0) for c, lab, pat in expand_columns(fig.ys, fig.labels, names)]
    wanted += [(c, lab, pat, 1) for c, lab, pat in expand_columns(fig.y2s, fig.y2labels, names)]
    if not wanted or fig.x not in names:
        return []
    window = fig.smooth if smooth is None else smooth
    if fig.style != "band":
        window = 1
    columns = [fig.x] + [c for c, *_ in wanted if c != fig.x]
    out = []
    for key, uids in sorted(study.groups(view, by).items(), key=lambda kv: group_order(kv[0])):
        paths = paths_of(study, view, fig.chain, uids)
        data = _read_units(study, [u for path in paths for u in path], fig.table, columns)
        joined = [(view.label(path[-1]), join_path([data[u] for u in path if u in data], fig.x))
                  for path in paths if any(u in data for u in path)]
        if not joined:
            continue
        for column, label, _pattern, axis in wanted:
            curves = [(name, d[fig.x], d[column]) for name, d in joined if column in d]
            if not curves:
                continue
            b = band([c[1] for c in curves], [c[2] for c in curves], window)
            out.append(Series(column, label, key, axis, b, curves if fig.style == "line" else []))
    return out


# ---------------------------------------------------------------------- drawing

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _subtitle(n_units: Sequence[int], window: int, style: str, by: Sequence[str], key: tuple, noun: str) -> str:
    lo, hi = (min(n_units), max(n_units)) if n_units else (0, 0)
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    text = (f"mean (line) ± 1 std (shaded) over n = {n} {noun}" if style == "band"
            else f"each of n = {n} {noun} (thin) and their mean (thick)")
    if window > 1:
        text += f"; moving average over {window} points"
    if by and key:
        text += f"; {group_name(by, key)}"
    return text


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def _style_axis(ax, fig: Figure, axis: int, series: list[Series]) -> None:
    logy, lim, label = (fig.logy, fig.ylim, fig.ylabel) if axis == 0 else (fig.logy2, fig.y2lim, fig.y2label)
    if logy:
        ax.set_yscale("log")
    if lim is not None:
        bottom, top = lim
        cur = ax.get_ylim()
        ax.set_ylim(cur[0] if bottom is None else bottom, cur[1] if top is None else top)
    if logy:
        lo, hi = ax.get_ylim()
        if lo > 0 and hi / lo < 10:  # less than a decade: a few plainly labelled ticks, not 2.7 × 10⁻² or none
            from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

            ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    ax.set_ylabel(label or ", ".join(dict.fromkeys(s.label for s in series)))


def _draw_xy(ax, fig: Figure, series: list[Series], style: str, by: Sequence[str], multi_group: bool) -> list:
    """Draw band/line series on ax (and a twin axis for y2s); returns legend handles."""
    plt = _plt()
    axes = {0: ax}
    if any(s.axis == 1 for s in series):
        axes[1] = ax.twinx()
    ycols = list(dict.fromkeys((s.column, s.axis) for s in series))
    groups = list(dict.fromkeys(s.group for s in series))
    tab10, viridis = plt.get_cmap("tab10"), plt.get_cmap("viridis")
    dashes = ["-", "--", ":", "-."]

    def color(s: Series):
        # several groups: a colour per group (and a line style per column); one group: a colour per column
        if multi_group:
            return tab10(groups.index(s.group) % 10)
        i = ycols.index((s.column, s.axis))
        return viridis(i / (len(ycols) - 1)) if len(ycols) > 10 else tab10(i)

    handles = []
    for s in series:
        a = axes[s.axis]
        c = color(s)
        ls = dashes[ycols.index((s.column, s.axis)) % 4] if multi_group else ("--" if s.axis == 1 else "-")
        label = s.label + (f" ({group_name(by, s.group)})" if multi_group else "")
        b = s.band
        idx = downsample(b.x.size)
        x, mean, std = b.x[idx], b.mean[idx], b.std[idx]
        if style == "band":
            lower, upper = mean - std, mean + std
            if (fig.logy if s.axis == 0 else fig.logy2):
                positive = mean[mean > 0]
                floor = positive.min() * 0.5 if positive.size else 1e-12
                lower = np.maximum(lower, floor)
            a.fill_between(x, lower, upper, color=c, alpha=0.22, linewidth=0)
            (h,) = a.plot(x, mean, color=c, lw=1.6, ls=ls, label=label)
            handles.append(h)
        else:
            single = len(ycols) == 1 and not multi_group
            for j, (ulabel, ux, uy) in enumerate(s.units):
                order = np.argsort(ux, kind="stable")
                if single:
                    (h,) = a.plot(ux[order], uy[order], color=tab10(j % 10), lw=1.0, alpha=0.8, marker=".",
                                  ms=4, label=ulabel)
                    if len(s.units) <= MAX_LEGEND:
                        handles.append(h)
                else:
                    a.plot(ux[order], uy[order], color=c, lw=0.8, alpha=0.35, ls=ls)
            (h,) = a.plot(x, mean, color="black" if single else c, lw=2.4, ls=ls,
                          label=(f"mean of {len(s.units)} units" if single else f"{label}: mean of {len(s.units)}"))
            handles.append(h)
    for axis, a in axes.items():
        _style_axis(a, fig, axis, [s for s in series if s.axis == axis])
    if style == "line" and not (len(ycols) == 1 and not multi_group):
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="grey", lw=0.8, alpha=0.6, label="thin: each unit"))
    return handles


def _new_figure(size):
    plt = _plt()
    fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


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


def draw_xy(study: Study, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (), smooth: int | None = None,
            formats: Sequence[str] = FORMATS) -> list[FigureFile]:
    """A band or line figure of one stage (one file; one file per group when per-layer lines meet several groups)."""
    series = figure_data(study, view.name, spec, by, smooth)
    if not series:
        return []
    window = (spec.smooth if smooth is None else smooth) if spec.style == "band" else 1
    patterned = any(is_pattern(e) for e in (*spec.ys, *spec.y2s))
    groups = list(dict.fromkeys(s.group for s in series))
    batches = [(g, [s for s in series if s.group == g]) for g in groups] if (patterned and len(groups) > 1) \
        else [(None, series)]
    files = []
    for key, part in batches:
        lines = len(part)
        size = LEGEND_SIZE if lines > 4 else LINE_SIZE
        fig, ax = _new_figure(size)
        handles = _draw_xy(ax, spec, part, spec.style, by, multi_group=key is None and len(groups) > 1)
        if spec.logx:
            ax.set_xscale("log")
        ax.set_xlabel(spec.xlabel or spec.x)
        ax.grid(True, which="major", alpha=0.3)
        n_units = [len(s.units) if spec.style == "line" else int(s.band.n.max()) for s in part]
        fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})", fontsize=11, fontweight="bold")
        ax.set_title(_subtitle(n_units, window, spec.style, by, key or (), "paths" if spec.chain else "units"),
                     fontsize=8.5, color="0.3")
        if len(handles) > MAX_LEGEND:
            ax.text(0.99, 0.01, f"{len(handles)} lines (legend omitted)", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=7, color="0.3")
        elif handles:
            title = next((spec.labels[i] for i, e in enumerate(spec.ys) if is_pattern(e) and i < len(spec.labels)), None)
            if size == LEGEND_SIZE:
                fig.legend(handles=handles, loc="outside right upper", fontsize=7.5, title=title, title_fontsize=8,
                           frameon=False)
            elif spec.y2s:  # two y axes: a legend inside would hide one of them
                fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8,
                           title=title, title_fontsize=8, frameon=False)
            else:
                ax.legend(handles=handles, fontsize=8, title=title, title_fontsize=8, framealpha=0.85)
        stem = f"{view.name}-{spec.name}" + (f"-{_safe(group_name(by, key))}" if key else "")
        w, h = size
        paths = _save(fig, out / stem, formats)
        files.append(FigureFile(view.name, spec.name, paths, (round(w * DPI), round(h * DPI)), max(n_units),
                                "paths" if spec.chain else "units"))
    return files


def pca_data(study: Study, view: StageView, spec: Figure, uids: Sequence[str]) -> dict:
    """tensor → {"units": [(label, steps, 2-D projection)], "explained": (r1, r2), "note", "of": tensors in all} over
    every stored point of the units (or chained paths): the points of all paths of a tensor are centred together and
    projected on their first two principal components. At most ``PCA_MAX_PANELS`` tensors (matching ``ys``, default
    all) are read; of a tensor with more than ``PCA_MAX_COORDS`` entries, a seeded random subset of coordinates."""
    paths = paths_of(study, view, spec.chain, uids)
    names = next((n for path in paths for uid in path for n in [study.point_tensors(uid, list(spec.ys) or None)] if n),
                 [])
    shown = names[:PCA_MAX_PANELS]
    if not shown:
        return {}
    rng = np.random.default_rng(0)
    keep: dict[str, np.ndarray | None] = {}
    rows: dict[str, list[np.ndarray]] = {n: [] for n in shown}
    owners: dict[str, list[tuple[str, int]]] = {n: [] for n in shown}
    exact = [re.sub(r"([*?\[])", r"[\1]", n) for n in shown]  # glob patterns matching exactly these names
    for path in paths:
        end = None  # the (shifted) step of the path's last point so far: where a continuing unit's steps start
        for k, uid in enumerate(path):
            offset, last = end or 0, end
            for step, tensors in study.points(uid, exact):
                if k and step == 0:
                    continue  # a continuing unit's start point is its predecessor's end point
                last = step + offset
                for name, array in tensors.items():
                    flat = array.reshape(-1)
                    if name not in keep:
                        keep[name] = (np.sort(rng.choice(flat.size, PCA_MAX_COORDS, replace=False))
                                      if flat.size > PCA_MAX_COORDS else None)
                    rows[name].append(flat if keep[name] is None else flat[keep[name]])
                    owners[name].append((path[-1], last))
            end = last
    out = {}
    for name in shown:
        if len(rows[name]) < 3:
            continue
        X = np.vstack(rows[name]).astype(np.float64)
        X -= X.mean(axis=0)
        gram = X @ X.T
        vals, vecs = np.linalg.eigh(gram)
        order = np.argsort(vals)[::-1][:2]
        vals, vecs = np.clip(vals[order], 0, None), vecs[:, order]
        proj = vecs * np.sqrt(vals)
        total = max(float(np.trace(gram)), 1e-300)
        units = []
        for path in paths:
            idx = [i for i, (u, _) in enumerate(owners[name]) if u == path[-1]]
            if idx:
                units.append((view.label(path[-1]), np.array([owners[name][i][1] for i in idx]), proj[idx]))
        note = f"PCA on {PCA_MAX_COORDS} random coordinates" if keep.get(name) is not None else ""
        out[name] = {"units": units, "explained": tuple(float(v) / total for v in vals), "note": note,
                     "of": len(names)}
    return out


def draw_pca(study: Study, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (),
             formats: Sequence[str] = FORMATS) -> list[FigureFile]:
    """Per-tensor panels of the stage's points projected on two principal components, coloured by step (LLPF Fig. 4)."""
    plt = _plt()
    files = []
    groups = study.groups(view, by)
    for key, uids in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        key = key if len(groups) > 1 else None
        data = pca_data(study, view, spec, uids)
        if not data:
            continue
        shown = list(data)
        total_tensors = next(iter(data.values()))["of"]
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        size = (PCA_PANEL[0] * cols + 1.0, PCA_PANEL[1] * rows + 1.0)
        fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        steps = np.concatenate([s for d in data.values() for _, s, _ in d["units"]])
        norm = plt.Normalize(float(steps.min()), float(max(steps.max(), steps.min() + 1)))
        cmap = plt.get_cmap("viridis")
        n_units = 0
        for ax, name in zip(axes.flat, shown):
            d = data[name]
            n_units = max(n_units, len(d["units"]))
            for label, s, p in d["units"]:
                ax.plot(p[:, 0], p[:, 1], color="0.6", lw=0.6, zorder=1)
                ax.scatter(p[:, 0], p[:, 1], c=s, cmap=cmap, norm=norm, s=9, zorder=2, linewidths=0)
                ax.scatter(p[:1, 0], p[:1, 1], facecolors="none", edgecolors="black", s=36, lw=0.9, zorder=3)
                ax.scatter(p[-1:, 0], p[-1:, 1], marker="x", color="crimson", s=30, lw=1.1, zorder=3)
            r1, r2 = d["explained"]
            ax.set_title(name + (f"\n({d['note']})" if d["note"] else ""), fontsize=9)
            ax.set_xlabel(f"PC1 ({r1:.0%} of variance)", fontsize=8)
            ax.set_ylabel(f"PC2 ({r2:.0%})", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=axes, label="iteration at which the point was stored", shrink=0.8)
        from matplotlib.lines import Line2D

        fig.legend(handles=[Line2D([], [], marker="o", ls="", mfc="none", mec="black", label="start of a path"),
                            Line2D([], [], marker="x", ls="", color="crimson", label="end of a path"),
                            Line2D([], [], color="0.6", lw=0.6, label="path (stored points in order)")],
                   loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        extra = f"; first {len(shown)} of {total_tensors} tensors" if total_tensors > len(shown) else ""
        group = f"; {group_name(by, key)}" if key else ""
        fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})\n"
                     f"PCA per tensor over the stored points of {n_units} {'paths' if spec.chain else 'units'}{extra}{group}", fontsize=10)
        stem = f"{view.name}-{spec.name}" + (f"-{_safe(group_name(by, key))}" if key else "")
        paths = _save(fig, out / stem, formats)
        files.append(FigureFile(view.name, spec.name, paths, (round(size[0] * DPI), round(size[1] * DPI)), n_units,
                                "paths" if spec.chain else "units"))
    return files


def draw_custom(study: Study, view: StageView, spec: Figure, out: Path, formats: Sequence[str] = FORMATS) -> list[FigureFile]:
    data = {}
    for uid, label in zip(view.units, view.labels):
        t = study.unit_rows(uid, spec.table)
        if t is not None and t.num_rows:
            data[label] = t
    if not data or spec.draw is None:
        return []
    fig, ax = _new_figure(LINE_SIZE)
    spec.draw(ax, data)
    fig.suptitle(f"{spec.title} — stage {view.name} ({view.kind})", fontsize=11, fontweight="bold")
    if spec.xlabel:
        ax.set_xlabel(spec.xlabel)
    if spec.ylabel:
        ax.set_ylabel(spec.ylabel)
    paths = _save(fig, out / f"{view.name}-{spec.name}", formats)
    return [FigureFile(view.name, spec.name, paths, (round(LINE_SIZE[0] * DPI), round(LINE_SIZE[1] * DPI)), len(data))]


def render(study: Study, out: Path, by: Sequence[str] = (), stages: Sequence[str] | None = None,
           smooth: int | None = None, formats: Sequence[str] = FORMATS) -> list[FigureFile]:
    """Every figure the kinds of the study's stages declare, as ``out/<stage>-<figure>.<png|pdf>``."""
    files: list[FigureFile] = []
    for view in study.stages(stages):
        kind = jobs.KINDS.get(view.kind)
        for spec in getattr(kind, "figures", ()) if kind is not None else ():
            if spec.style in ("band", "line"):
                files += draw_xy(study, view, spec, out, by, smooth, formats)
            elif spec.style == "pca":
                files += draw_pca(study, view, spec, out, by, formats)
            elif spec.style == "custom":
                files += draw_custom(study, view, spec, out, formats)
            else:
                raise ValueError(f"kind {view.kind}: figure {spec.name!r} has unknown style {spec.style!r}")
    return files
