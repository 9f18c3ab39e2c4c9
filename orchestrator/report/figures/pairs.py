"""The ``pairs`` style: a pair stage's headline — per pair, its result keys (e.g. a path's peak loss) next to the
compared stage's (the straight line's peak and barrier between the same modes), coloured by the verdict, with the
threshold; and the same as a table beside the figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .... import jobs
from ....jobs.base import Figure
from ..api import StageView, StudyView
from ..figure_data import PairRow, group_name, pair_rows
from ..summary import group_order
from .canvas import (
    DPI,
    FORMATS,
    LEGEND_SIZE,
    MAX_PAIR_LABELS,
    VERDICT_COLOURS,
    FigureFile,
    plt,
    safe,
    save,
    size_px,
    write_table,
)

MARKERS = ["D", "s", "^", "v"]


def _verdicts(view: StageView) -> list:
    kind = jobs.unit_kinds().get(view.kind)
    return list(getattr(kind, "verdicts", ()) if kind is not None else ())


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def pairs_table(rows: list[PairRow], spec: Figure, verdicts: Sequence = ()) -> tuple[list[str], list[list[str]]]:
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


def pairs_figures(
    study: StudyView, view: StageView, spec: Figure, by: Sequence[str] = ()
) -> list[tuple[str, Any, int, tuple[list[str], list[list[str]]]]]:
    """The figures of one stage, one per group, unsaved: [(stem, figure, pairs, (table head, table lines))]."""
    out = []
    groups = study.groups(view, by)
    for group, uids in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        key = group if len(groups) > 1 else None
        verdicts = _verdicts(view)
        rows = pair_rows(study, view, spec, uids, [v.key for v in verdicts])
        if rows:
            stem, fig = _pairs_figure(view, spec, by, rows, verdicts, key)
            out.append((stem, fig, len(rows), pairs_table(rows, spec, verdicts)))
    return out


def _pairs_figure(
    view: StageView, spec: Figure, by: Sequence[str], rows: list[PairRow], verdicts: list, key: tuple | None
) -> tuple[str, Any]:
    fig = plt().figure(figsize=LEGEND_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    handles: list = []
    if len(rows) <= MAX_PAIR_LABELS:
        hidden = _labelled_rows(ax, spec, rows, verdicts, handles)
    else:  # many pairs: the path's value against the straight line's, one point per pair
        hidden = _scatter_rows(ax, spec, rows)
    _legend_marks(ax, spec, rows, handles)
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
    return f"{view.name}-{spec.name}" + (f"-{safe(group_name(by, key))}" if key else ""), fig


def _shown(ys: np.ndarray, logy: bool) -> tuple[np.ndarray, int]:
    """Values on the axis (a log axis shows no value ≤ 0) and how many were left out."""
    if not logy:
        return ys, 0
    return np.where(ys > 0, ys, np.nan), int(np.sum(ys <= 0))


def _labelled_rows(ax: Any, spec: Figure, rows: list[PairRow], verdicts: list, handles: list) -> int:
    """One labelled x position per pair: its values (coloured by the verdict), the compared values beside them, its
    threshold and the checks it failed. Returns how many values a log axis could not show."""
    from matplotlib.lines import Line2D

    xs = np.arange(len(rows), dtype=np.float64)
    offsets = np.linspace(-0.12, 0.12, len(spec.compare_ys)) if len(spec.compare_ys) > 1 else [0.0]
    hidden = 0
    for j, k in enumerate(spec.ys):
        ys, left = _shown(np.array([np.nan if r.values[k] is None else r.values[k] for r in rows]), spec.logy)
        hidden += left
        colours = [VERDICT_COLOURS[r.verdict] for r in rows]
        ax.scatter(xs, ys, c=colours, marker="o", s=60, zorder=3, edgecolors="black", lw=0.6, gid=f"pairs|{k}")
        label = spec.labels[j] if j < len(spec.labels) else k
        handles.append(Line2D([], [], marker="o", ls="", color="0.6", mec="black", label=label))
    for j, k in enumerate(spec.compare_ys):
        ys, left = _shown(np.array([np.nan if r.compare[k] is None else r.compare[k] for r in rows]), spec.logy)
        hidden += left
        ax.scatter(
            xs + 0.25 + offsets[j],
            ys,
            marker=MARKERS[j % 4],
            facecolors="none",
            edgecolors="0.2",
            s=46,
            lw=1.0,
            zorder=2,
            gid=f"pairs-compare|{k}",
        )
        label = spec.compare_labels[j] if j < len(spec.compare_labels) else k
        handles.append(Line2D([], [], marker=MARKERS[j % 4], ls="", mfc="none", mec="0.2", label=label))
    for x, r in zip(xs, rows):
        _row_marks(ax, spec, x, r, verdicts, len(rows))
    rotate = len(rows) > 6
    labels = [r.label for r in rows]
    ax.set_xticks(xs, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    return hidden


def _row_marks(ax: Any, spec: Figure, x: float, r: PairRow, verdicts: list, n_rows: int) -> None:
    """A pair's threshold, and (with few pairs) the checks of its verdict it failed."""
    if r.threshold is not None:
        ax.hlines(r.threshold, x - 0.4, x + 0.4, color="black", lw=1.0, ls=(0, (5, 2)))
    failed = [v.label for v in verdicts if v.key != spec.verdict and r.checks.get(v.key) is False]
    value = r.values[spec.ys[0]] if spec.ys else None
    if failed and value is not None and value > 0 and n_rows <= 12:
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


def _scatter_rows(ax: Any, spec: Figure, rows: list[PairRow]) -> int:
    k, c = spec.ys[0], spec.compare_ys[0] if spec.compare_ys else None
    xs = np.array([np.nan if c is None or r.compare[c] is None else r.compare[c] for r in rows])
    ys = np.array([np.nan if r.values[k] is None else r.values[k] for r in rows])
    ax.scatter(xs, ys, c=[VERDICT_COLOURS[r.verdict] for r in rows], s=14, lw=0, gid=f"pairs|{k}")
    ax.set_xlabel(spec.compare_labels[0] if spec.compare_labels else str(c))
    if spec.logy:
        ax.set_xscale("log")
    return 0


def _legend_marks(ax: Any, spec: Figure, rows: list[PairRow], handles: list) -> None:
    """The threshold (a line per value when there are many pairs) and the verdict's colours, in the legend."""
    from matplotlib.lines import Line2D

    if spec.threshold_param and any(r.threshold is not None for r in rows):
        values = sorted({r.threshold for r in rows if r.threshold is not None})
        if len(rows) > MAX_PAIR_LABELS:
            for v in values:
                ax.axhline(v, color="black", lw=1.0, ls=(0, (5, 2)))
        label = f"{spec.threshold_label or spec.threshold_param} = {', '.join(f'{v:g}' for v in values)}"
        handles.append(Line2D([], [], color="black", lw=1.0, ls=(0, (5, 2)), label=label))
    if spec.verdict:
        for v, text in ((True, "yes"), (False, "no")):
            if any(r.verdict is v for r in rows):
                colour = VERDICT_COLOURS[v]
                handles.append(
                    Line2D([], [], marker="o", ls="", color=colour, mec="black", label=f"{spec.verdict}: {text}")
                )


def draw_pairs(
    study: StudyView, view: StageView, spec: Figure, out: Path, by: Sequence[str] = (), formats: Sequence[str] = FORMATS
) -> list[FigureFile]:
    files = []
    for stem, fig, n, (head, lines) in pairs_figures(study, view, spec, by):
        size = size_px(fig)
        paths = save(fig, out / stem, formats)
        tables = write_table(out / stem, f"{spec.title} — stage {view.name}", head, lines)
        files.append(FigureFile(view.name, spec.name, paths, size, n, "pairs", tables))
    return files
