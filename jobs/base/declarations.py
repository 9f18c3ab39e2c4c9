"""What a kind declares for reports: the metrics and verdicts of its results, and its figures (drawn by the report's
styles for any kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A summary metric a kind declares: a key of its result.json, how to show it, and whether lower is better."""

    key: str
    label: str
    fmt: str = ".4f"
    lower_is_better: bool = True


@dataclass(frozen=True)
class Verdict:
    """A yes/no outcome a kind declares: a boolean key of its result.json, reported as a success rate k/n."""

    key: str
    label: str


@dataclass(frozen=True)
class Figure:
    """A figure a kind declares for reports; ``lowloss report --out`` draws it once per stage of the kind.

    ``ys`` (and ``y2s``, drawn on a right-hand axis) name columns of ``table``, or glob patterns such as ``"dist.*"``
    that give one line per matching column (minus those matching ``exclude``), labelled by the part the ``*`` matched
    (one line per tensor, coloured by layer). Styles, drawn by the report core for any kind:

    - ``band``: per column, each unit's curve when there are few (≤ 8), else a central line and band over the units
      aligned on ``x``: mean ± 1 std, or on a log axis the geometric mean ×/÷ the geometric std. A dense column (a value
      in ≥ 90 % of the rows) is smoothed by a trailing moving average over ``smooth`` x units; a sparse one (evaluated
      every K rows) is drawn as its points, joined, never smoothed (LLPF Figs. 2–3);
    - ``line``: each unit's curve, coloured and labelled by unit when few, else the median with 25–75 % and 5–95 %
      quantile bands, next to a histogram of the result keys ``result_hist`` (interpolation curves and barriers);
    - ``pca``: each unit's stored points (``points/``), per tensor matching ``ys`` (default: all), projected on the
      first two principal components of all points of the stage, one panel per tensor, one colour per path (LLPF
      Fig. 4); the start (the final state of the first unit's input ``origin``, else its first stored point), the
      end and the final state of the input ``destination`` (D) are marked; ``table`` and ``x`` are unused. Points
      are keyed ``point_key(tensor, step)``.
    - ``pairs``: one row per committed unit whose result has ``verdict``: its result keys ``ys`` next to the result
      keys ``compare_ys`` of the unit of a ``compare_kind`` stage between the same input units (e.g. a path's peak
      loss next to the straight line's barrier between the same two modes), coloured by the verdict; also written as
      a table (``<stage>-<name>.md`` and ``.csv``);
    - ``methods``: one row per committed unit, grouped by ``row_param`` (e.g. the pair) and ordered by
      ``column_param`` (e.g. the path method): its result keys ``ys`` and the CPU-, GPU- and wall-seconds its input
      units spent (every attempt recorded in the store; roles in ``cost_exclude`` are not counted); a grouped bar
      chart of the first key; also written as a table (``<stage>-<name>.md`` and ``.csv``);
    - ``custom``: ``draw(ax, data)`` is called with ``data`` = {unit label: pyarrow.Table of ``table``}.

    ``threshold_param`` names a unit param drawn as a horizontal line on the left axis (the verdict's threshold, e.g.
    ``l_thres``; one line per distinct value), labelled ``threshold_label``.

    ``chain`` names an input role through which a unit continues the path of another unit of the same stage (the
    phases of an LLPF M2M path: input ``start``): such units are drawn as one path, each unit's rows (and points)
    after its predecessor's, x shifted to continue where the predecessor ended, the boundaries marked; a path is
    labelled by its last unit.
    """

    name: str  # file stem: <stage>-<name>.png / .pdf
    title: str
    table: str = ""
    x: str = "step"
    ys: tuple[str, ...] = ()
    style: str = "band"  # band | line | pca | custom
    xlabel: str = ""
    ylabel: str = ""
    logy: bool = False
    logx: bool = False
    smooth: float = 1  # trailing moving-average window in x units of dense columns (band style; ≤ 1: none)
    labels: tuple[str, ...] = ()  # legend labels of the ys entries (default: the column name)
    ylim: tuple[float | None, float | None] | None = None
    y2s: tuple[str, ...] = ()  # columns on a right-hand y axis (e.g. accuracy next to loss)
    y2label: str = ""
    y2labels: tuple[str, ...] = ()
    logy2: bool = False
    y2lim: tuple[float | None, float | None] | None = None
    draw: Any = None  # custom style: callable(ax, data)
    chain: str | None = None  # input role that continues a path of the same stage (e.g. "start")
    exclude: tuple[str, ...] = ()  # glob patterns of columns a ys pattern leaves out (e.g. BatchNorm running stats)
    threshold_param: str = ""  # unit param drawn as a horizontal line (e.g. "l_thres")
    threshold_label: str = ""
    destination: str = ""  # pca: input role whose final state is marked as D
    origin: str = ""  # pca: input role (of a path's first unit) whose final state is the path's start, marked
    result_hist: tuple[str, ...] = ()  # line: result keys shown as histograms when there are many units
    verdict: str = ""  # pairs: the boolean result key that colours a row
    compare_kind: str = ""  # pairs: the kind of the stage compared with, unit by unit on the same inputs
    compare_ys: tuple[str, ...] = ()  # pairs: that stage's result keys
    compare_labels: tuple[str, ...] = ()
    row_param: str = ""  # methods: the unit param naming a row (e.g. "pair"; a pair is shown low-high)
    column_param: str = ""  # methods: the unit param naming a method within a row (e.g. "method")
    cost_exclude: tuple[str, ...] = ()  # methods: input roles whose units' attempts are not counted (the modes)
