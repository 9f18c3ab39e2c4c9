"""What a path evaluation reports: per pair and method the path's maximum train loss, barrier, test error and length,
the table of every method on the same pairs, and the loss along each method's path."""

from __future__ import annotations

from typing import Any

from ..base import Figure, Metric
from .params import METHODS


def _draw_paths(ax: Any, data: dict) -> None:
    """Train loss along each method's path (normalised arc length), one panel per pair (the first six)."""
    import numpy as np

    by_pair: dict[str, dict[str, Any]] = {}
    for table in data.values():
        rows = table.to_pylist()
        if rows:
            by_pair.setdefault(f"{min(rows[0]['a'], rows[0]['b'])}-{max(rows[0]['a'], rows[0]['b'])}", {})[
                rows[0]["method"]
            ] = rows
    pairs = sorted(by_pair)[:6]
    ax.set_axis_off()
    width = 1.0 / max(len(pairs), 1)
    colours = {"linear": "C0", "llpf": "C1", "autoneb": "C2"}
    for g, pair in enumerate(pairs):
        panel = ax.inset_axes([g * width + 0.08 * width, 0.12, 0.84 * width, 0.8])
        for method in METHODS:
            rows = by_pair[pair].get(method)
            if not rows:
                continue
            arc = np.array([r["arc"] for r in rows])
            x = arc / arc[-1] if arc[-1] > 0 else arc
            y = np.array([r["train_loss"] for r in rows])
            vertex = np.array([r["vertex"] for r in rows], dtype=bool)
            only_vertices = bool(vertex.all())  # nothing evaluated between the points: dashed, not a measured line
            label = f"{method} (stored points)" if only_vertices else method
            panel.plot(x, y, lw=1.2, color=colours[method], ls="--" if only_vertices else "-", label=label)
            panel.plot(x[vertex], y[vertex], "o", ms=2.5, color=colours[method])
        panel.set_yscale("log")
        panel.set_title(f"pair {pair}", fontsize=8)
        panel.set_xlabel("position on path (normalised arc length)", fontsize=7)
        if g == 0:
            panel.set_ylabel("train loss (full set, eval mode)", fontsize=7)
            panel.legend(fontsize=6)
        panel.tick_params(labelsize=6)


METRICS = (
    Metric("max_train_loss", "max train loss on path", ".4g"),
    Metric("barrier_train_loss", "max train loss − higher end", ".4g"),
    Metric("max_test_error", "max test error on path", ".4f"),
    Metric("length_ratio", "path length / straight line", ".3f"),
)

FIGURES = (
    Figure(
        "methods",
        "The same pairs by every method, one evaluation protocol",
        style="methods",
        ys=(
            "max_train_loss",
            "barrier_train_loss",
            "max_test_error",
            "path_length",
            "length_ratio",
            "points",
            "bn",
        ),
        labels=(
            "max train loss",
            "barrier (max − higher end)",
            "max test error",
            "path length",
            "length / straight",
            "points",
            "BN",
        ),
        row_param="pair",
        column_param="method",
        cost_exclude=("a", "b"),
        ylabel="max train loss on path (full set, eval mode)",
        logy=True,
    ),
    Figure(
        "paths",
        "Train loss along each method's path",
        table="path",
        style="custom",
        draw=_draw_paths,
    ),
)
