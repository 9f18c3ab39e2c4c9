"""What an AutoNEB edge reports, and the figures of an exploration: each edge's path (AutoNEB Fig. 4), the saddles
against the straight line (§4.3), the minimum spanning tree and the minimax bounds (§3.2), the disconnectivity graph
(§6)."""

from __future__ import annotations

import math
from typing import Any

from ..base import Figure, Metric, Verdict


def _finished_edges(data: dict) -> dict[tuple[int, int], dict]:
    """Per pair, the edge's values from its ``cycles`` rows (edges whose every cycle is committed)."""
    edges = {}
    for table in data.values():
        rows = table.to_pylist()
        if not rows or len(rows) != rows[0]["cycles"]:
            continue
        first = rows[0]
        edges[(first["a"], first["b"])] = {
            "saddle": min(r["max_train_loss"] for r in rows),
            "end": (first["end_train_loss_a"], first["end_train_loss_b"]),
        }
    return edges


def _minima(edges: dict) -> tuple[list[int], dict[int, float]]:
    losses: dict[int, float] = {}
    for (a, b), e in edges.items():
        losses[a], losses[b] = e["end"]
    return sorted(losses), losses


def _draw_paths(ax: Any, data: dict) -> None:
    """AutoNEB Fig. 4 style: train loss along each edge's path (normalised position), pivots marked; one panel per
    cycle group (consecutive cycles of one learning rate), each panel showing the group's last cycle."""
    import numpy as np

    tables = {label: t.to_pylist() for label, t in data.items()}
    groups: list[tuple[float, int]] = []  # (lr, last cycle index) of each group, from the longest edge
    longest = max(tables.values(), key=len)
    for row in longest:
        lr = row["lr"]
        if groups and groups[-1][0] == lr:
            groups[-1] = (lr, row["cycle"])
        else:
            groups.append((lr, row["cycle"]))
    ax.set_axis_off()
    width = 1.0 / max(len(groups), 1)
    for g, (lr, cycle) in enumerate(groups):
        panel = ax.inset_axes([g * width + 0.06 * width, 0.1, 0.86 * width, 0.82])
        for label, rows in tables.items():
            pts = [r for r in rows if r["cycle"] == cycle]
            if not pts:
                continue
            x = np.array([r["position"] for r in pts])
            y = np.array([r["train_loss"] for r in pts])
            piv = np.array([r["pivot"] for r in pts], dtype=bool)
            (line,) = panel.plot(x, y, lw=1, label=label)
            panel.plot(x[piv], y[piv], "o", ms=3, color=line.get_color())
        panel.set_title(f"cycle {cycle + 1} (lr {lr:g})", fontsize=8)
        panel.set_xlabel("position on path (normalised)", fontsize=7)
        if g == 0:
            panel.set_ylabel("train loss (full set, eval mode)", fontsize=7)
        panel.tick_params(labelsize=6)
        if g == len(groups) - 1 and len(tables) <= 12:
            panel.legend(fontsize=6)


def _draw_versus_linear(ax: Any, data: dict) -> None:
    """AutoNEB's claim per edge (§4.3, Table B.1 next to linear interpolation): the maximum train loss on the straight
    line against the saddle of the AutoNEB path, both evaluated alike (the edge's own ``line`` rows)."""
    import numpy as np

    edges = []
    for table in data.values():
        rows = table.to_pylist()
        if rows and len(rows) == rows[0]["cycles"]:
            edges.append(
                (
                    f"{rows[0]['a']}-{rows[0]['b']}",
                    rows[0]["linear_max_train_loss"],
                    min(r["max_train_loss"] for r in rows),
                    max(rows[0]["end_train_loss_a"], rows[0]["end_train_loss_b"]),
                )
            )
    if not edges:
        return
    edges.sort(key=lambda e: e[0])
    x = np.arange(len(edges))
    ax.bar(x - 0.27, [e[1] for e in edges], 0.27, label="straight line: max train loss")
    ax.bar(x, [e[2] for e in edges], 0.27, label="AutoNEB path: saddle train loss")
    ax.bar(x + 0.27, [e[3] for e in edges], 0.27, label="higher end: train loss")
    ax.set_xticks(x, [e[0] for e in edges], rotation=45 if len(edges) > 12 else 0, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(top=max(max(e[1], e[2]) for e in edges) * 8)  # room for the legend above the bars
    ax.legend(fontsize=7, loc="upper right", ncol=3)


def _draw_tree(ax: Any, data: dict) -> None:
    """AutoNEB §3.2: the minimum spanning tree of the computed edges (thick, labelled with the saddle train loss) and
    the other computed edges (thin), minima on a circle labelled seed: loss."""
    from ...workers.autoneb.exploration import minimum_spanning_tree

    edges = _finished_edges(data)
    if not edges:
        return
    minima, losses = _minima(edges)
    tree = {(a, b) for a, b, _ in minimum_spanning_tree(minima, {p: e["saddle"] for p, e in edges.items()})}
    pos = {
        m: (math.cos(2 * math.pi * i / len(minima)), math.sin(2 * math.pi * i / len(minima)))
        for i, m in enumerate(minima)
    }
    for (a, b), e in edges.items():
        (xa, ya), (xb, yb) = pos[a], pos[b]
        on_tree = (a, b) in tree
        ax.plot([xa, xb], [ya, yb], color="C3" if on_tree else "0.75", lw=2.5 if on_tree else 0.8, zorder=1)
        if on_tree:
            ax.text(
                (xa + xb) / 2,
                (ya + yb) / 2,
                f"{e['saddle']:.3g}",
                fontsize=7,
                ha="center",
                va="center",
                bbox={"fc": "white", "ec": "none", "pad": 0.5},
            )
    for m, (x, y) in pos.items():
        ax.scatter([x], [y], s=60, color="C0", zorder=2)
        ax.text(x * 1.15, y * 1.15, f"{m}: {losses[m]:.3g}", fontsize=8, ha="center", va="center")
    ax.set_aspect("equal")
    ax.set_xlim(-1.45, 1.45)
    ax.set_ylim(-1.3, 1.3)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title("red: tree edges (saddle train loss); grey: other computed edges; minima as seed: loss", fontsize=8)


def _draw_disconnectivity(ax: Any, data: dict) -> None:
    """AutoNEB §6 (disconnectivity graph, Wales et al.): single linkage of the minima at their minimax saddle
    heights; each leaf is drawn down to its minimum's own train loss."""
    from scipy.cluster.hierarchy import dendrogram

    from ...workers.autoneb.exploration import linkage_matrix, minimum_spanning_tree

    edges = _finished_edges(data)
    if not edges:
        return
    minima, losses = _minima(edges)
    weights = {p: e["saddle"] for p, e in edges.items()}
    if len(minimum_spanning_tree(minima, weights)) != len(minima) - 1:
        ax.text(0.5, 0.5, "the computed edges do not connect every minimum yet", ha="center", transform=ax.transAxes)
        return
    info = dendrogram(
        linkage_matrix(minima, weights),
        labels=[str(m) for m in minima],
        ax=ax,
        no_plot=False,
        color_threshold=0,
        above_threshold_color="C0",
    )
    for x, label in zip(ax.get_xticks(), info["ivl"]):
        ax.plot([x], [losses[int(label)]], "v", color="C1", ms=6)  # the leaf ends at its minimum's train loss
    ax.set_ylim(bottom=min(losses.values()) * 0.8)
    ax.set_xlabel("minimum (seed); triangles: the minimum's train loss")


def _draw_minimax(ax: Any, data: dict) -> None:
    """AutoNEB §3.2: the minimax (ultrametric) upper bound on the barrier of every pair, from the computed edges;
    pairs computed directly are outlined."""
    import numpy as np

    from ...workers.autoneb.exploration import minimax_bounds

    edges = _finished_edges(data)
    if not edges:
        return
    minima, _ = _minima(edges)
    bounds = minimax_bounds(minima, {p: e["saddle"] for p, e in edges.items()})
    n = len(minima)
    grid = np.full((n, n), np.nan)
    for (a, b), v in bounds.items():
        i, j = minima.index(a), minima.index(b)
        grid[i, j] = grid[j, i] = v if math.isfinite(v) else np.nan
    image = ax.imshow(grid, cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label="upper bound on the saddle train loss")
    middle = float(np.nanmean([np.nanmin(grid), np.nanmax(grid)])) if np.isfinite(grid).any() else 0.0
    for (a, b), v in bounds.items():
        i, j = minima.index(a), minima.index(b)
        for r, c in ((i, j), (j, i)):  # dark text on the bright (high) cells of viridis
            ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=6, color="black" if v > middle else "white")
            if (a, b) in edges:
                ax.add_patch(
                    __import__("matplotlib").patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="C3", lw=1.5)
                )
    ax.set_xticks(range(n), [str(m) for m in minima])
    ax.set_yticks(range(n), [str(m) for m in minima])
    ax.set_title("outlined: computed edges (bound = own saddle on tree edges)", fontsize=8)


METRICS = (
    Metric("saddle_train_loss", "saddle train loss", ".4g"),
    Metric("saddle_test_loss", "saddle test loss", ".4g"),
    Metric("saddle_test_error", "saddle test error", ".4f"),
    Metric("barrier_train_loss", "saddle − higher end (train)", ".4g"),
    Metric("end_train_loss_max", "higher end train loss", ".4g"),
    Metric("end_test_error_max", "higher end test error", ".4f"),
    Metric("linear_max_train_loss", "straight line max train loss", ".4g"),
    Metric("length_ratio", "path length / straight line", ".3f"),
    Metric("pivots", "pivots", ".0f"),
)

VERDICTS = (Verdict("below_linear", "saddle below the straight line's maximum"),)

FIGURES = (
    Figure(
        "path",
        "AutoNEB: train loss along each edge's path (pivots marked)",
        table="dense",
        style="custom",
        draw=_draw_paths,
    ),
    Figure(
        "batch-loss",
        "AutoNEB: pivots' mini-batch loss per NEB step",
        table="steps",
        x="step",
        ys=("loss_mean", "loss_max"),
        labels=("mean over pivots", "max over pivots"),
        style="band",
        xlabel="NEB step",
        ylabel="cross-entropy loss (train mode, own batch)",
        logy=True,
        smooth=20,
    ),
    Figure(
        "cycles",
        "AutoNEB: path maximum of the train loss after each cycle",
        table="cycles",
        x="cycle",
        ys=("max_train_loss",),
        labels=("max train loss on path",),
        style="line",
        xlabel="cycle",
        ylabel="cross-entropy loss",
        logy=True,
    ),
    Figure(
        "versus-linear",
        "AutoNEB: saddle of each edge against the straight line",
        table="cycles",
        style="custom",
        xlabel="edge (pair of seeds)",
        ylabel="cross-entropy loss (train, full set)",
        draw=_draw_versus_linear,
    ),
    Figure(
        "tree",
        "AutoNEB: minimum spanning tree of the computed edges",
        table="cycles",
        style="custom",
        draw=_draw_tree,
    ),
    Figure(
        "disconnectivity",
        "AutoNEB: disconnectivity graph (single linkage on the minimax saddles)",
        table="cycles",
        style="custom",
        ylabel="saddle train loss",
        draw=_draw_disconnectivity,
    ),
    Figure(
        "minimax",
        "AutoNEB: minimax bound on the barrier of every pair",
        table="cycles",
        style="custom",
        xlabel="minimum (seed)",
        ylabel="minimum (seed)",
        draw=_draw_minimax,
    ),
)
