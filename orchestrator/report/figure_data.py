"""The data of a study's figures: pure functions from committed rows, points and results to what a figure draws.

No matplotlib here: ``figures.py`` draws exactly the arrays these functions return (a test extracts them back from the
drawn artists and compares them with an independent computation from the raw rows). What a figure shows is what the
kinds declare (``jobs.base.Figure``); the functions here know styles and declared fields, never kinds.

- A *curve* is one unit's column (or one chained path's: the units continuing each other through ``Figure.chain``, e.g.
  the phases of an LLPF M2M path), its finite values in row order. A *dense* series (a value at ≥ 90 % of its rows,
  e.g. the rolling loss) is smoothed by a trailing moving average over a window of ``Figure.smooth`` x units; a sparse
  one (evaluated every ``eval_every`` iterations, e.g. the full-training-set loss the path verdict uses) is never
  smoothed: it is drawn as its points, joined.
- A *band* summarises many curves at every x any of them has: mean ± 1 std on a linear axis, the geometric mean ×/÷
  the geometric std on a log axis (never a floor), median with 25–75 % and 5–95 % quantile bands for interpolation
  lines.
"""

from __future__ import annotations

import fnmatch
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...jobs.base import Figure
from .api import StageView, StudyView
from .summary import group_order, group_text

FEW_CURVES = 8  # up to this many curves of a series: each drawn and labelled; more: a central line and a band
FEW_PANELS = 4  # per-tensor figures of up to this many paths: one panel per path
MAX_COLOURED = 12  # per-tensor figures with more tensors: the HIGHLIGHT farthest in colour, the rest grey
HIGHLIGHT = 6
DENSE_FRACTION = 0.9  # a series with a value at this share of its rows is dense (smoothed)
MAX_PLOT_POINTS = 2000
PCA_MAX_PANELS = 16
PCA_MAX_COORDS = 20000  # PCA of a larger tensor runs on this many seeded random coordinates


@dataclass
class Curve:
    """One unit's (or chained path's) values of one column."""

    label: str  # the unit's label (a chained path: its last unit's)
    uid: str  # the (last) unit
    x: np.ndarray  # x of the rows with a finite value, in row order
    y: np.ndarray  # the stored values there
    shown: np.ndarray  # what is drawn: y smoothed over a trailing window of x (dense series), else y
    starts: tuple[float, ...] = ()  # x where each chained unit after the first begins (phase boundaries)
    params: dict = field(default_factory=dict)  # flattened params of the (last) unit
    threshold: float | None = None  # the value of the figure's ``threshold_param`` in those params


@dataclass
class Band:
    """A central line and a shaded band over curves, at every x any curve has; ``n`` curves with a value there."""

    x: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray
    how: str  # what center and band are, as the subtitle says it
    outer_lower: np.ndarray | None = None  # quantile bands: the 5–95 % band around the 25–75 % one
    outer_upper: np.ndarray | None = None


@dataclass
class Series:
    """One drawn quantity: a column of a group of units, its curves and their band."""

    column: str
    label: str
    group: tuple
    axis: int  # 0: left y axis, 1: right
    pattern: str  # the ys glob pattern the column matched ("" for an exact name)
    dense: bool
    window: float  # trailing smoothing window in x units (0: none)
    curves: list[Curve]
    band: Band

    @property
    def thresholds(self) -> list[float]:
        return sorted({c.threshold for c in self.curves if c.threshold is not None})


# ---------------------------------------------------------------------- numpy helpers


def window_average(x: np.ndarray, y: np.ndarray, width: float) -> np.ndarray:
    """Trailing moving average over a window of x: at x_i, the mean of the y_j with x_i − width < x_j ≤ x_i (x sorted
    ascending). ``width`` ≤ the x spacing leaves y as it is (LLPF Fig. 2's post-processing, in x units, not rows)."""
    if width <= 0 or y.size == 0:
        return y
    c = np.concatenate(([0.0], np.cumsum(y)))
    hi = np.searchsorted(x, x, side="right")
    lo = np.searchsorted(x, x - width, side="right")
    return (c[hi] - c[lo]) / (hi - lo)


def band_of(curves: Sequence[Curve], how: str) -> Band:
    """The band of the curves' shown values at every x any of them has. ``how``: ``mean`` (± 1 sample std, ddof 1; 0
    for one curve), ``geometric`` (exp of mean ± std of log y over the positive values) or ``quantiles`` (median,
    25–75 % and 5–95 %)."""
    pairs = [(c.x.astype(np.float64), c.shown.astype(np.float64)) for c in curves if c.x.size]
    if not pairs:
        e = np.zeros(0)
        return Band(e, e, e, e, np.zeros(0, dtype=int), how)
    x0 = pairs[0][0]
    if all(p[0].shape == x0.shape and np.array_equal(p[0], x0) for p in pairs):
        grid, Y = x0, np.vstack([p[1] for p in pairs])
    else:
        grid = np.unique(np.concatenate([p[0] for p in pairs]))
        Y = np.full((len(pairs), grid.size), np.nan)
        for i, (x, y) in enumerate(pairs):
            Y[i, np.searchsorted(grid, x)] = y
    if how == "geometric":
        Y = np.where(Y > 0, Y, np.nan)
        Y = np.log(Y)
    n = np.isfinite(Y).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if how == "quantiles":
                q = np.nanquantile(Y, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
                how = "median (line), 25–75 % (dark) and 5–95 % (light) of"
                return Band(grid, q[2], q[1], q[3], n, how, q[0], q[4])
            mean = np.nanmean(Y, axis=0)
            std = np.where(n > 1, np.nanstd(Y, axis=0, ddof=1), 0.0) if Y.shape[0] > 1 else np.zeros_like(mean)
    if how == "geometric":
        return Band(
            grid,
            np.exp(mean),
            np.exp(mean - std),
            np.exp(mean + std),
            n,
            "geometric mean (line) ×/÷ 1 geometric std (shaded) over",
        )
    return Band(grid, mean, mean - std, mean + std, n, "mean (line) ± 1 std (shaded) over")


def downsample(n: int, limit: int = MAX_PLOT_POINTS) -> np.ndarray | slice:
    """Indices of at most ``limit`` evenly spaced points of ``n`` (first and last kept)."""
    if n <= limit:
        return slice(None)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


# ---------------------------------------------------------------------- columns, groups, paths


def is_pattern(entry: str) -> bool:
    return any(ch in entry for ch in "*?[")


def expand_columns(
    entries: Sequence[str], labels: Sequence[str], names: Sequence[str], exclude: Sequence[str] = ()
) -> list[tuple[str, str, str]]:
    """(column, legend label, pattern) for every ys entry: an exact name, or a glob pattern → one per matching column
    not matching an ``exclude`` pattern, labelled by the part the wildcard matched (``dist.*`` → ``conv1.weight``)."""
    out = []
    for i, entry in enumerate(entries):
        if is_pattern(entry):
            head = re.split(r"[*?\[]", entry, maxsplit=1)[0]  # literal text before the first wildcard
            tail = re.split(r"[*?\]]", entry)[-1]  # and after the last one
            for name in names:
                if fnmatch.fnmatchcase(name, entry) and not any(fnmatch.fnmatchcase(name, p) for p in exclude):
                    out.append((name, name[len(head) : len(name) - len(tail)] or name, entry))
        elif entry in names:
            out.append((entry, labels[i] if i < len(labels) and labels[i] else entry.replace("_", " "), ""))
    return out


def layer_of(tensor: str) -> str:
    """The layer of a tensor: its name without the last dotted part (``layer1.0.bn1.weight`` → ``layer1.0.bn1``)."""
    return tensor.rsplit(".", 1)[0] if "." in tensor else tensor


def paths_of(study: StudyView, view: StageView, role: str | None, uids: Sequence[str]) -> list[list[str]]:
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


def path_label(labels: Sequence[str]) -> str:
    """The label of a chained path: the words its units' labels share (``pair=0-1 phase=1``, ``pair=0-1 phase=2`` →
    ``pair=0-1``); a lone unit keeps its label."""
    if len(labels) == 1:
        return labels[0]
    shared = [w for w in labels[0].split() if all(w in lab.split() for lab in labels[1:])]
    return " ".join(shared) or labels[-1]


def join_path(parts: list[dict[str, np.ndarray]], x: str) -> tuple[dict[str, np.ndarray], tuple[float, ...]]:
    """The columns of a chain of units as one path, and the x where each unit after the first begins: each unit's x
    is shifted to start where the previous one ended (its rows at or before that point, the repeated start state, are
    dropped)."""
    if len(parts) == 1:
        return parts[0], ()
    names = list(dict.fromkeys(c for d in parts for c in d))
    out: dict[str, list[np.ndarray]] = {c: [] for c in names}
    end, starts = None, []
    for d in parts:
        if end is not None:
            starts.append(end)
        xs = d[x] if end is None else d[x] + end
        keep = np.ones(xs.shape, bool) if end is None else xs > end
        for c in names:
            col = xs if c == x else d.get(c, np.full(xs.shape, np.nan))
            out[c].append(col[keep])
        if keep.any():
            end = float(np.nanmax(xs[keep]))
    return {c: np.concatenate(v) for c, v in out.items()}, tuple(starts)


def group_name(by: Sequence[str], key: tuple) -> str:
    """ "train.lr=0.1, points=11"; a field this stage's units do not have (None) is left out."""
    return ", ".join(f"{f}={group_text(v)}" for f, v in zip(by, key) if v is not None)


def with_group(label: str, by: Sequence[str], key: tuple) -> str:
    """A curve's label with its group, unless the label already says it (a swept unit's label names its values)."""
    name = group_name(by, key)
    parts = [p for p in name.split(", ") if p]
    return label if not parts or all(p in label for p in parts) else f"{label} ({name})"


def read_units(
    study: StudyView, uids: Sequence[str], table: str, columns: Sequence[str]
) -> dict[str, dict[str, np.ndarray]]:
    """uid → column → float64 array (nulls as NaN) of the committed rows; units without rows are left out."""

    def one(uid):
        t = study.unit_rows(uid, table, columns)
        if t is None or t.num_rows == 0:
            return uid, None
        return uid, {
            c: t.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in t.column_names
        }

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {uid: cols for uid, cols in pool.map(one, uids) if cols is not None}


def band_how(fig: Figure, axis: int) -> str:
    if fig.style == "line":
        return "quantiles"
    return "geometric" if (fig.logy if axis == 0 else fig.logy2) else "mean"


def figure_data(
    study: StudyView, stage: str, fig: Figure, by: Sequence[str] = (), smooth: float | None = None
) -> list[Series]:
    """The series a band or line figure draws for one stage: per group and column, the curves and their band.
    ``smooth`` overrides the figure's window (x units); sparse series are never smoothed."""
    view = study.stage(stage)
    names = study.column_names(stage, fig.table)
    wanted = [(c, lab, pat, 0) for c, lab, pat in expand_columns(fig.ys, fig.labels, names, fig.exclude)]
    wanted += [(c, lab, pat, 1) for c, lab, pat in expand_columns(fig.y2s, fig.y2labels, names, fig.exclude)]
    if not wanted or fig.x not in names:
        return []
    width = float(fig.smooth if smooth is None else smooth) if fig.style == "band" else 0.0
    columns = [fig.x] + [c for c, *_ in wanted if c != fig.x]
    out = []
    for key, uids in sorted(study.groups(view, by).items(), key=lambda kv: group_order(kv[0])):
        paths = paths_of(study, view, fig.chain, uids)
        data = read_units(study, [u for path in paths for u in path], fig.table, columns)
        joined = []
        for path in paths:
            parts = [data[u] for u in path if u in data]
            if parts:
                cols, starts = join_path(parts, fig.x)
                params = study.params(path[-1])
                joined.append((path_label([view.label(u) for u in path]), path[-1], cols, starts, params))
        for column, label, pattern, axis in wanted:
            raw = []
            rows = finite = 0
            for name, uid, d, starts, params in joined:
                if column not in d:
                    continue
                x, y = d[fig.x], d[column]
                keep = np.isfinite(x) & np.isfinite(y)
                rows += x.size
                finite += int(keep.sum())
                x, y = x[keep], y[keep]
                order = np.argsort(x, kind="stable")
                raw.append((name, uid, x[order], y[order], starts, params))
            if not raw or not finite:
                continue
            dense = finite >= DENSE_FRACTION * rows
            window = width if dense and width > 1 else 0.0
            curves = [
                Curve(
                    name,
                    uid,
                    x,
                    y,
                    window_average(x, y, window) if window else y,
                    starts,
                    params,
                    _number(params.get(fig.threshold_param)) if fig.threshold_param else None,
                )
                for name, uid, x, y, starts, params in raw
            ]
            out.append(
                Series(column, label, key, axis, pattern, dense, window, curves, band_of(curves, band_how(fig, axis)))
            )
    return out


def farthest(series: Sequence[Series], k: int = HIGHLIGHT) -> list[str]:
    """The columns of the ``k`` series whose central line ends highest (the tensors farthest from D at the end:
    those that decide the distance verdict)."""
    ends = [(float(s.band.center[-1]) if s.band.center.size else -math.inf, s.column) for s in series]
    return [c for _, c in sorted(ends, reverse=True)[:k]]


# ---------------------------------------------------------------------- results: histograms and pairs


def result_values(study: StudyView, view: StageView, uids: Sequence[str], key: str) -> np.ndarray:
    """The finite numeric values of ``key`` in the committed results of these units."""
    values = []
    for uid in uids:
        r = study.result(uid) if study.committed(uid, view.kind) else None
        v = None if r is None else r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            values.append(float(v))
    return np.array(values, dtype=np.float64)


@dataclass
class PairRow:
    """One pair of a pair stage: its path's values and verdict next to the straight line's between the same modes."""

    label: str
    unit: str
    values: dict[str, float | None]  # the figure's ys (this stage's result keys)
    compare: dict[str, float | None]  # its compare_ys (the compare stage's result keys), None without that unit
    verdict: bool | None
    threshold: float | None
    compare_stage: str | None
    checks: dict[str, bool | None] = field(default_factory=dict)  # every verdict key the kind declares


def compare_stages(study: StudyView, fig: Figure) -> list[StageView]:
    return [v for v in study.stages() if v.kind == fig.compare_kind] if fig.compare_kind else []


def pair_rows(
    study: StudyView, view: StageView, fig: Figure, uids: Sequence[str], verdicts: Sequence[str] = ()
) -> list[PairRow]:
    """Per committed unit of this stage whose result has the figure's verdict key (an M2M path's last phase): the
    result's ``ys``, the verdict, and the ``compare_ys`` of the unit of a ``compare_kind`` stage between the same input
    units (the straight line between the same two modes; matched on the set of input units outside either stage)."""
    own = set(view.units)
    by_inputs: dict[frozenset, tuple[str, dict]] = {}
    for other in compare_stages(study, fig):
        for uid in other.units:
            rec = study.record(uid)
            result = study.result(uid) if rec is not None and study.committed(uid, other.kind) else None
            if rec is not None and result is not None:
                by_inputs.setdefault(frozenset(rec.inputs.values()), (other.name, result))
    labels = {path[-1]: path_label([view.label(u) for u in path]) for path in paths_of(study, view, fig.chain, uids)}
    rows = []
    for uid in uids:
        rec = study.record(uid)
        result = study.result(uid) if rec is not None and study.committed(uid, view.kind) else None
        if rec is None or result is None or (fig.verdict and fig.verdict not in result):
            continue
        key = frozenset(v for v in rec.inputs.values() if v not in own)
        compare_stage, compared = by_inputs.get(key, (None, {}))
        params = study.params(uid)
        threshold = params.get(fig.threshold_param) if fig.threshold_param else None
        rows.append(
            PairRow(
                labels.get(uid, view.label(uid)),
                uid,
                {k: _number(result.get(k)) for k in fig.ys},
                {k: _number(compared.get(k)) for k in fig.compare_ys},
                result.get(fig.verdict) if fig.verdict else None,
                threshold if isinstance(threshold, (int, float)) else None,
                compare_stage,
                {k: result.get(k) if isinstance(result.get(k), bool) else None for k in verdicts},
            )
        )
    return rows


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# ---------------------------------------------------------------------- PCA of stored points


def pca_data(study: StudyView, view: StageView, spec: Figure, uids: Sequence[str]) -> dict:
    """tensor → {"units": [(label, steps, 2-D projection)], "destinations" and "origins": [(label, 2-D point)],
    "explained": (r1, r2), "note", "of": tensors in all} over every stored point of the units (or chained paths).

    LLPF Fig. 4: the points of all paths of a tensor are centred together and projected on their first two principal
    components; the final state of each path's ``Figure.destination`` input (D) is projected on the same components
    (labelled by the path), and so is the final state of its first unit's ``Figure.origin`` input (its start).
    Tensors matching ``Figure.exclude`` (e.g. BatchNorm running statistics) are left out. At most ``PCA_MAX_PANELS``
    tensors (matching ``ys``, default all) are read; of a tensor with more than ``PCA_MAX_COORDS`` entries, a seeded
    random subset of coordinates."""
    paths = paths_of(study, view, spec.chain, uids)
    names = next(
        (n for path in paths for uid in path for n in [study.point_tensors(uid, list(spec.ys) or None)] if n), []
    )
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in spec.exclude)]
    shown = names[:PCA_MAX_PANELS]
    if not shown:
        return {}
    points = _PathPoints(study, paths, shown)
    finals: dict[str, dict[str, np.ndarray]] = {}
    destinations = _marked_inputs(study, view, paths, spec.destination, False, shown, finals)
    origins = _marked_inputs(study, view, paths, spec.origin, True, shown, finals)
    out = {}
    for name in shown:
        if len(points.rows[name]) >= 3:
            panel = _pca_panel(points, name, view, paths, destinations, origins)
            out[name] = {**panel, "of": len(names)}
    return out


class _PathPoints:
    """Every stored point of the paths, per tensor: its (possibly subsampled) coordinates and whose point at which
    (shifted) step it is."""

    def __init__(self, study: StudyView, paths: list[list[str]], shown: list[str]):
        rng = np.random.default_rng(0)
        self.keep: dict[str, np.ndarray | None] = {}
        self.rows: dict[str, list[np.ndarray]] = {n: [] for n in shown}
        self.owners: dict[str, list[tuple[str, int]]] = {n: [] for n in shown}
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
                        self.add(name, array.reshape(-1), rng, (path[-1], last))
                end = last

    def add(self, name: str, flat: np.ndarray, rng: np.random.Generator, owner: tuple[str, int]) -> None:
        if name not in self.keep:
            self.keep[name] = (
                np.sort(rng.choice(flat.size, PCA_MAX_COORDS, replace=False)) if flat.size > PCA_MAX_COORDS else None
            )
        keep = self.keep[name]
        self.rows[name].append(flat if keep is None else flat[keep])
        self.owners[name].append(owner)


def _marked_inputs(
    study: StudyView,
    view: StageView,
    paths: list[list[str]],
    role: str,
    first: bool,
    shown: list[str],
    finals: dict[str, dict[str, np.ndarray]],
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(path label, final tensors of the input ``role`` of the path's first or last unit) per path."""
    out = []
    for path in paths:
        rec = study.record(path[0] if first else path[-1]) if role else None
        uid = rec.inputs.get(role) if rec is not None else None
        if uid and uid not in finals:
            finals[uid] = study.final_tensors(uid, shown)
        if uid and finals[uid]:
            out.append((path_label([view.label(u) for u in path]), finals[uid]))
    return out


def _pca_panel(
    points: _PathPoints,
    name: str,
    view: StageView,
    paths: list[list[str]],
    destinations: list[tuple[str, dict[str, np.ndarray]]],
    origins: list[tuple[str, dict[str, np.ndarray]]],
) -> dict:
    """One tensor's points on their first two principal components, with the marked inputs projected alike."""
    X = np.vstack(points.rows[name]).astype(np.float64)
    mean = X.mean(axis=0)
    X -= mean
    gram = X @ X.T
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(vals)[::-1][:2]
    vals, vecs = np.clip(vals[order], 0, None), vecs[:, order]
    proj = vecs * np.sqrt(vals)
    total = max(float(np.trace(gram)), 1e-300)
    owners = points.owners[name]
    units = []
    for path in paths:
        idx = [i for i, (u, _) in enumerate(owners) if u == path[-1]]
        if idx:
            units.append((path_label([view.label(u) for u in path]), np.array([owners[i][1] for i in idx]), proj[idx]))
    # the principal axes in coordinate space: X^T v / sqrt(λ); a point's coordinates are (p − mean) · axis
    with np.errstate(invalid="ignore", divide="ignore"):
        axes = (X.T @ vecs) / np.where(vals > 0, np.sqrt(vals), np.inf)
    keep = points.keep.get(name)

    def project(marks: list[tuple[str, dict[str, np.ndarray]]]) -> list[tuple[str, np.ndarray]]:
        out = []
        for label, tensors in marks:
            if name in tensors:
                flat = tensors[name].reshape(-1).astype(np.float64)
                flat = flat if keep is None else flat[keep]
                out.append((label, (flat - mean) @ axes))
        return out

    return {
        "units": units,
        "destinations": project(destinations),
        "origins": project(origins),
        "explained": tuple(float(v) / total for v in vals),
        "note": f"PCA on {PCA_MAX_COORDS} random coordinates" if keep is not None else "",
    }


__all__ = [
    "Band",
    "Curve",
    "PairRow",
    "Series",
    "band_of",
    "expand_columns",
    "figure_data",
    "pair_rows",
    "pca_data",
    "window_average",
]


# ---------------------------------------------------------------------- methods: the same rows by several methods


@dataclass
class MethodRow:
    """One unit of a ``methods`` figure: its row (e.g. the pair) and method, its result keys, and what its input
    units spent (summed over every attempt they recorded)."""

    row: str
    method: str
    unit: str
    values: dict
    cpu_s: float | None
    gpu_s: float
    wall_s: float
    attempts: int


def _row_text(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{min(value)}-{max(value)}"
    return group_text(value)


def unit_cost(study: StudyView, uids: Sequence[str]) -> tuple[float | None, float, float, int]:
    """(CPU-seconds, GPU-seconds, wall-seconds, attempts) the units spent, from every attempt recorded in the store.

    CPU-seconds are the worker process's CPU time while a unit ran (None when an attempt predates that record);
    GPU-seconds are the wall time of attempts that ran on a CUDA device (one GPU per unit)."""
    cpu: float | None = 0.0
    gpu = wall = 0.0
    count = 0
    for uid in uids:
        for a in study.attempts(uid):
            count += 1
            span = max(0.0, a.finished - a.started) if a.finished and a.started else 0.0
            wall += span
            if (a.device or "").startswith("cuda"):
                gpu += span
            if cpu is not None:
                cpu = cpu + a.cpu_s if a.cpu_s is not None else None
    return cpu, gpu, wall, count


def method_rows(study: StudyView, view: StageView, fig: Figure, uids: Sequence[str]) -> list[MethodRow]:
    """Per committed unit: ``fig.row_param`` (shown low-high for a pair), ``fig.column_param``, the result keys
    ``fig.ys`` and the cost of its input units outside the roles ``fig.cost_exclude``; sorted by row, then by the
    order in which the methods first appear among the stage's units."""
    order: dict[str, int] = {}
    rows = []
    for uid in uids:
        rec = study.record(uid)
        result = study.result(uid) if rec is not None and study.committed(uid, view.kind) else None
        if rec is None or result is None:
            continue
        params = rec.params
        method = str(params.get(fig.column_param, ""))
        order.setdefault(method, len(order))
        producers = [study.input_unit(ref) for role, ref in rec.inputs.items() if role not in fig.cost_exclude]
        cpu, gpu, wall, count = unit_cost(study, producers)
        rows.append(
            MethodRow(
                _row_text(params.get(fig.row_param)),
                method,
                uid,
                {k: result.get(k) for k in fig.ys},
                cpu,
                gpu,
                wall,
                count,
            )
        )

    def natural(text: str) -> tuple:
        return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"[-\s]", text))

    return sorted(rows, key=lambda r: (natural(r.row), order[r.method]))
