"""AutoNEB: stage kind ``autoneb`` (Alg. 3, the exploration of many minima, as a planner) and unit kind
``autoneb_edge`` (one pair of minima: Alg. 2's cycles of Alg. 1 over pivots holding parameters and buffers), driving
``workers/neb.py`` and ``workers/exploration.py`` (Draxler et al., "Essentially No Barriers in Neural Network Energy
Landscape", ICML 2018; the authors' settings are in ``shared/reference/autoneb-settings.md``).

The exploration runs in **rounds**, so that it is a pure function of the committed edge results (never of which edge
happened to finish first): round 0 is the star (``explore = "mst"`` or ``"star"``: the lowest-loss minimum to every
other one, all N−1 edges at once) or every pair of a static strategy; each later round asks ``plan_pairs`` for up to
``parallel_edges`` pairs across distinct cuts of the current minimum spanning tree (Alg. 3 l.3–5, speculative within
the round: the ultrametric bounds stay valid whatever the round's edges return) and waits until they are all
committed or given up. An edge's unit id hashes only the pair, the two modes and the edge settings (not ``budget``,
``parallel_edges`` nor ``similar``), so a restarted coordinator re-plans the same rounds and never computes an edge
twice. The stage closes on the budget, when every pair is known, or when the tree's saddles are similar
(``similar``: relative spread (max − min)/max of the tree's saddle train losses, see ``workers/exploration.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, Union

from pydantic import Field, model_validator

from ..base import Figure, Metric, Plan, Resources, StageKind, StageParams, UnitDraft, UnitKind, UnitParams, Verdict
from ..common.loop import Segment, run_segments
from ..common.modes import seeds_of
from ..common.pairs import RandomPairs, check_pairs, static_pairs
from ..common.params import DataParams, ModelParams, build_for, load_data

EXPLORE_HELP = (
    "'mst' (Alg. 3), 'star' (the best mode to all others), 'all', or a pair strategy: 'consecutive', "
    "{random = K, seed = S}, or a list of seed pairs like [[0, 1], [2, 3]]"
)


class CycleSpec(StageParams):
    """One AutoNEB cycle (Alg. 2 loop body, ``workers.neb.Cycle``): insertion, then ``steps`` NEB steps at ``lr``
    with fresh momentum, then the dense evaluation with ``points_between`` points between neighbouring pivots."""

    steps: int = Field(ge=0, le=10_000_000)
    lr: float = Field(gt=0, le=10)
    insert: Literal["equal", "highest", "none"] = "highest"
    insert_count: int = Field(default=2, ge=0, le=1000)
    points_between: int = Field(default=9, ge=0, le=1000)


class EdgeSettings(StageParams):
    """What one edge computes (part of every edge's unit id)."""

    batch_size: int = Field(default=512, ge=1, le=1 << 20, description="each pivot's own random batch (§4.1)")
    insert_threshold: float = Field(
        default=0.2, gt=0, lt=10, description="App. A residuum threshold: paper 0.2 (§4.1); authors' code 0.1"
    )
    l2: float = Field(default=1e-4, ge=0, le=1, description="λ added to the gradient by hand (§4.1)")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum, re-created per cycle (§4.1)")
    augment: bool = Field(default=True, description="training augmentation on the pivots' batches (authors' code)")
    bn: Literal["UpBN", "NoUpBN"] = Field(
        default="NoUpBN",
        description="BatchNorm statistics at dense points (workers.evaluation): NoUpBN keeps the point's own, "
        "interpolated between the pivots (authors' code); UpBN re-estimates them on the training set at each point",
    )
    eval_batch_size: int = Field(default=1024, ge=1, le=1 << 20)
    segment_steps: int = Field(
        default=0, ge=0, le=10_000_000, description="NEB steps per committed segment; 0: one cycle per segment"
    )


class AutoNEBStage(EdgeSettings):
    from_: str = Field(alias="from", description="the stage whose modes are connected")
    explore: Union[Literal["mst", "star", "all", "consecutive", "to_best"], RandomPairs, list[tuple[int, int]]] = "mst"
    budget: int | None = Field(default=None, ge=1, description="at most this many edges (default: every pair)")
    parallel_edges: int = Field(default=8, ge=1, le=100_000, description="edges per MST-refinement round")
    similar: float | None = Field(
        default=0.1, ge=0, description="stop when the tree's relative saddle spread ≤ this (none: never)"
    )
    schedule: Literal["standard", "fast"] = Field(default="standard", description="a published cycle schedule")
    cycles: list[CycleSpec] | None = Field(default=None, description="explicit cycles (instead of the schedule)")
    cycle_steps: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="every cycle of the schedule runs this many steps (a shortened run)",
    )

    @model_validator(mode="after")
    def _cycles_given(self):
        if self.cycles is not None and not self.cycles:
            raise ValueError("cycles is empty; give at least one cycle, or leave it out to use the schedule")
        return self

    def resolved_cycles(self) -> list[CycleSpec]:
        """The cycles every edge runs: explicit ``cycles`` or the named schedule, with ``cycle_steps`` applied."""
        from ...workers.autoneb.neb import schedule

        cycles = self.cycles if self.cycles is not None else [CycleSpec(**c.to_json()) for c in schedule(self.schedule)]
        if self.cycle_steps is not None:
            cycles = [c.model_copy(update={"steps": self.cycle_steps}) for c in cycles]
        return list(cycles)


class AutoNEBEdgeParams(UnitParams, EdgeSettings):
    """One edge: the two modes' seeds (in the minima order of the stage), the model and data, the cycles."""

    pair: tuple[int, int]
    model: ModelParams
    data: DataParams
    cycles: list[CycleSpec] = Field(min_length=1)


def max_pivots(cycles: list[CycleSpec]) -> int:
    """The most pivots (ends included) a path of these cycles can hold."""
    count = 2
    for c in cycles:
        if c.insert == "equal":
            count = (count - 1) * (c.insert_count + 1) + 1
        elif c.insert == "highest" and count > 2:  # one pivot per segment at most, in up to insert_count segments
            count += min(c.insert_count, count - 1)
    return count


# ---------------------------------------------------------------------------------------------- report figures


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


def _draw_paths(ax, data) -> None:
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


def _draw_versus_linear(ax, data) -> None:
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


def _draw_tree(ax, data) -> None:
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


def _draw_disconnectivity(ax, data) -> None:
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


def _draw_minimax(ax, data) -> None:
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


# ---------------------------------------------------------------------------------------------- the edge unit


class _EdgeState:
    """The resumable state of an edge (``jobs.loop.Resumable``): ``AutoNEBState.to_tensors()`` (pivots, target
    shares, the running cycle's momentum, counters, the previous cycle's dense train losses), the RNG states, and
    the running cycle's insertion count."""

    def __init__(self, state, device):
        self.state, self.device, self.inserted = state, device, 0

    def checkpoint(self):
        from ...workers.training import rng_state_tensors

        tensors = {f"neb.{k}": v for k, v in self.state.to_tensors().items()}
        tensors.update(rng_state_tensors(self.device))
        return tensors, {"inserted": self.inserted}

    def restore(self, tensors, meta):
        from ...workers.autoneb.neb import AutoNEBState
        from ...workers.training import restore_rng_state

        self.state = AutoNEBState.from_tensors(
            {k[4:]: v.to(self.device) for k, v in tensors.items() if k.startswith("neb.")}
        )
        self.state.weights = self.state.weights.cpu()
        self.state.previous_dense = self.state.previous_dense.cpu()
        restore_rng_state(tensors, self.device)
        self.inserted = int(meta.get("inserted", 0))


def _chunks(cycles: list[CycleSpec], segment_steps: int) -> list[tuple[int, int, int]]:
    """(cycle, first step, end step) of every segment: a cycle is cut into ``segment_steps`` pieces (0: whole)."""
    out = []
    for c, cycle in enumerate(cycles):
        size = segment_steps or max(cycle.steps, 1)
        start = 0
        while True:
            end = min(start + size, cycle.steps)
            out.append((c, start, end))
            start = end
            if start >= cycle.steps:
                break
    return out


@functools.lru_cache(maxsize=64)
def _state_size(model: str, dataset: str, image_size: int | None) -> int:
    """Floats in a model's state (parameters and buffers), for the edge's memory estimate."""
    from ...workers.data import DATASET_SHAPES
    from ...workers.models import build_model

    channels, size, classes = DATASET_SHAPES[dataset]
    return sum(t.numel() for t in build_model(model, classes, channels, image_size or size).state_dict().values())


class AutoNEBEdgeUnit(UnitKind):
    name = "autoneb_edge"
    version = 1
    Params = AutoNEBEdgeParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("pivots", "saddle")
    metrics = (
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
    verdicts = (Verdict("below_linear", "saddle below the straight line's maximum"),)
    tables = ("steps", "dense", "cycles", "line")
    figures = (
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

    def resources(self, p: AutoNEBEdgeParams) -> Resources:
        floats = _state_size(p.model.name, p.data.dataset, p.data.image_size)
        pivots = max_pivots(p.cycles)
        # pivots + momentum + gradients + a redistribution copy, in float32
        mem = 2.0 + 4 * floats * pivots * 4 / 1e9
        steps = sum(c.steps for c in p.cycles) * max(pivots - 2, 1)
        return Resources(
            cpus=1,
            gpus=0,
            mem_gb=round(mem, 1),
            time_min=max(30, min(7 * 24 * 60, steps // 200)),
            resource_class="train",
        )

    def run(self, ctx, p: AutoNEBEdgeParams) -> None:
        import torch

        from ...workers.autoneb import neb
        from ...workers.data import derive_seed
        from ...workers.evaluation import Evaluator

        ma, mb = ctx.input_params("a"), ctx.input_params("b")
        for mode in (ma, mb):
            if (mode.model, mode.data) != (p.model, p.data):
                raise ValueError(
                    f"edge {p.pair}: mode {mode.seed} is {mode.model.name} on {mode.data.dataset}; "
                    f"the edge needs {p.model.name} on {p.data.dataset}"
                )
        data = load_data(ctx, p.data)
        model = build_for(p.model, data, ctx.device)
        layout = neb.state_layout(model)
        geometry = layout.num_parameters
        start = neb.flatten_state(ctx.input_final_state("a"), layout, device=ctx.device)
        end = neb.flatten_state(ctx.input_final_state("b"), layout, device=ctx.device)
        template = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        cycles = [neb.Cycle(**c.model_dump()) for c in p.cycles]
        evaluator = neb.pivot_evaluator(Evaluator(model, data, p.bn, p.eval_batch_size), layout)
        ends = [evaluator(start), evaluator(end)]
        end_losses = (ends[0]["train_loss"], ends[1]["train_loss"])
        pivot_loss = neb.cross_entropy_pivot_loss(
            neb.pivot_batches(data, p.batch_size, derive_seed("autoneb-edge", *p.pair), p.augment)
        )
        chunks = _chunks(p.cycles, p.segment_steps)
        edge = _EdgeState(neb.AutoNEBState.initial(start, end, geometry), ctx.device)
        edge.state.weights = edge.state.weights.cpu()

        linear: list[float] = []  # the straight line's maximum train loss, once known

        def line_rows() -> list[dict]:  # the straight segment, evaluated like the path (for the verdict)
            dense = neb.evaluate_path(torch.stack([start, end]), evaluator, 9)
            alphas = [j / 10 for j in range(11)]
            return [{"alpha": a, **{k: float(v[j]) for k, v in dense.items()}} for j, a in enumerate(alphas)]

        def segment(index: int, _end: int) -> Segment:
            c, s0, s1 = chunks[index]
            cycle, st = cycles[c], edge.state
            tables: dict[str, list[dict]] = {"line": line_rows()} if index == 0 else {}
            if "line" in tables:
                linear[:] = [max(r["train_loss"] for r in tables["line"])]
            elif not linear:  # resumed: the straight line is committed
                linear[:] = [max(r["train_loss"] for r in ctx.rows("line").to_pylist())]
            if not st.started:
                previous_between = cycles[c - 1].points_between if c else None
                edge.inserted = len(neb.start_cycle(st, cycle, geometry, p.insert_threshold, previous_between))
            offset = neb.steps_before(cycles, c)
            first = st.step
            losses = []
            while st.step < s1:
                losses.append(
                    neb.run_steps(
                        model,
                        layout,
                        st,
                        cycle,
                        pivot_loss,
                        end_losses,
                        until=st.step + 1,
                        l2=p.l2,
                        momentum_coefficient=p.momentum,
                        step_offset=offset,
                    )
                )
            count = st.pivots.shape[0]
            if losses:
                stacked = torch.stack(losses).double()
                summary = torch.stack([stacked.mean(1), stacked.max(1).values], 1).cpu().tolist()
                tables["steps"] = [
                    {
                        "step": offset + first + k,
                        "cycle": c,
                        "lr": cycle.lr,
                        "pivots": count,
                        "loss_mean": mean,
                        "loss_max": high,
                    }
                    for k, (mean, high) in enumerate(summary)
                ]
            info = {"cycle": c + 1, "pivots": count}
            if s1 >= cycle.steps:
                dense = neb.finish_cycle(st, cycle, evaluator)
                positions = neb.dense_positions(st.pivots, cycle.points_between, geometry).tolist()
                marks = list(neb.dense_points(st.pivots[:, :0], cycle.points_between))
                tables["dense"] = [
                    {
                        "cycle": c,
                        "lr": cycle.lr,
                        "index": j,
                        "position": positions[j],
                        "segment": seg,
                        "alpha": a,
                        "pivot": a in (0.0, 1.0),
                        **{k: float(v[j]) for k, v in dense.items()},
                    }
                    for j, (seg, a, _) in enumerate(marks)
                ]
                tables["cycles"] = [
                    {
                        "cycle": c,
                        "cycles": len(cycles),
                        "lr": cycle.lr,
                        "steps": cycle.steps,
                        "pivots": count,
                        "inserted": edge.inserted,
                        "a": p.pair[0],
                        "b": p.pair[1],
                        "max_train_loss": float(dense["train_loss"].max()),
                        "max_test_loss": float(dense["test_loss"].max()),
                        "max_test_error": float(dense["test_error"].max()),
                        "end_train_loss_a": end_losses[0],
                        "end_train_loss_b": end_losses[1],
                        "length_ratio": neb.path_length_ratio(st.pivots, geometry),
                        "linear_max_train_loss": linear[0],
                    }
                ]
                info["max_train_loss"] = tables["cycles"][0]["max_train_loss"]
            return Segment(tables, info=info)

        run_segments(ctx, len(chunks), 1, edge, segment, unit="segments")
        st = edge.state
        dense_rows = ctx.rows("dense").to_pylist()
        metrics = [k for k in dense_rows[0] if k.endswith(("_loss", "_error"))]
        by_cycle = [
            {k: torch.tensor([r[k] for r in dense_rows if r["cycle"] == c], dtype=torch.float64) for k in metrics}
            for c in range(len(cycles))
        ]
        saddle = neb.edge_saddle(by_cycle)
        saddle_cycle = saddle.pop("cycle")
        line = ctx.rows("line").to_pylist()
        linear_max = max(r["train_loss"] for r in line)
        final_dense = by_cycle[-1]["train_loss"]
        top = int(final_dense.argmax())
        top_vector = list(neb.dense_points(st.pivots, cycles[-1].points_between))[top][2]
        saddle_state = {k: v.cpu() for k, v in neb.unflatten_state(top_vector, layout, template).items()}
        ctx.commit(
            {
                "pair": list(p.pair),
                **saddle,
                "saddle_cycle": saddle_cycle,
                "end_train_loss": [e["train_loss"] for e in ends],
                "end_test_loss": [e["test_loss"] for e in ends],
                "end_test_error": [e["test_error"] for e in ends],
                "end_train_loss_max": max(end_losses),
                "end_test_error_max": max(e["test_error"] for e in ends),
                "barrier_train_loss": saddle["saddle_train_loss"] - max(end_losses),
                "linear_max_train_loss": linear_max,
                "below_linear": saddle["saddle_train_loss"] < linear_max,
                "length_ratio": neb.path_length_ratio(st.pivots, geometry),
                "pivots": int(st.pivots.shape[0]),
                "steps": sum(c.steps for c in cycles),
                "bn": p.bn,
            },
            outputs={
                "pivots": {
                    "pivots": st.pivots.detach().cpu().contiguous(),
                    "weights": st.weights.detach().cpu().contiguous(),
                },
                "saddle": saddle_state,
            },
        )


# ---------------------------------------------------------------------------------------------- the stage


class AutoNEBStageKind(StageKind):
    name = "autoneb"
    Table = AutoNEBStage
    unit_kinds = ("autoneb_edge",)
    input_output = "final"
    needs_input_stage = True

    def validate(self, table: AutoNEBStage, study, stages):
        problems: list[tuple[str, Any, str]] = []
        if not isinstance(table.explore, str) or table.explore == "consecutive":
            problem = check_pairs(table.explore, seeds_of(stages, table.from_, study))
            if problem:
                problems.append(("explore", table.explore, f"{EXPLORE_HELP}; {problem}"))
        cycles = table.resolved_cycles()
        if cycles[0].insert != "equal" or cycles[0].insert_count < 1:
            problems.append(
                (
                    "cycles",
                    cycles[0].model_dump(),
                    "a first cycle with insert = 'equal' and insert_count ≥ 1 (the straight path has no movable pivot)",
                )
            )
        return problems

    def describe(self, table: AutoNEBStage, study):
        cycles = table.resolved_cycles()
        how = "explicit cycles" if table.cycles is not None else f"schedule {table.schedule!r}"
        return [
            f"edges between the modes of stage {table.from_!r}, explore = {table.explore!r}, budget "
            f"{table.budget or 'all pairs'}, {table.parallel_edges} edges per refinement round, similar ≤ "
            f"{table.similar}",
            f"{how}: {len(cycles)} cycles, {sum(c.steps for c in cycles)} NEB steps, up to "
            f"{max_pivots(cycles)} pivots; insert threshold {table.insert_threshold}, BatchNorm at dense points: "
            f"{table.bn}",
        ]

    def _edge(self, table: AutoNEBStage, study, pair, by_seed) -> UnitDraft:
        a, b = by_seed[pair[0]], by_seed[pair[1]]
        settings = {name: getattr(table, name) for name in EdgeSettings.model_fields}
        params = AutoNEBEdgeParams(
            **settings,
            pair=(a.params["seed"], b.params["seed"]),
            model=ModelParams.model_validate(a.params["model"]),
            data=DataParams.model_validate(a.params["data"]),
            cycles=table.resolved_cycles(),
        )
        return UnitDraft("autoneb_edge", params, {"a": a.id, "b": b.id}, f"pair={pair[0]}-{pair[1]}")

    def plan(self, table: AutoNEBStage, study, view) -> Plan:
        from ...workers.autoneb.exploration import plan_pairs

        if view.is_open(table.from_) or not view.decided(table.from_):
            return Plan([], open=True, note=f"waiting for the modes of stage {table.from_}")
        modes = view.units(table.from_)
        results = {u.id: view.result(u.id) for u in modes}
        done = [u for u in modes if results[u.id] is not None]  # a mode that failed is left out
        by_seed = {u.params["seed"]: u for u in done}
        minima = [u.params["seed"] for u in done]
        own = {tuple(u.params["pair"]): u for u in view.units()}
        strategy = table.explore

        def state_of(pair) -> str:
            unit = own.get(tuple(pair))
            if unit is None:
                return "new"
            if view.result(unit.id) is not None:
                return "done"
            return "failed" if view.failed(unit.id) else "running"

        def note(head: str) -> str:
            states = [state_of(p) for p in own]
            return (
                f"{head}: {states.count('done')} edges done, {states.count('running')} running, "
                f"{states.count('failed')} failed, budget {table.budget or 'all pairs'}"
            )

        if len(minima) < 2:
            return Plan([], note=f"{len(minima)} mode(s) committed: nothing to connect")
        if not (isinstance(strategy, str) and strategy in ("mst", "star", "all", "to_best")):
            fixed = [q for q in static_pairs(strategy, minima) if q[0] in by_seed and q[1] in by_seed]  # type: ignore[arg-type]
            fixed = fixed[: table.budget] if table.budget else fixed
            running = any(state_of(q) in ("new", "running") for q in fixed)
            return Plan(
                [self._edge(table, study, q, by_seed) for q in fixed],
                open=False,
                note=note(str(strategy)) if not running else note("pairs"),
            )
        strategy = "star" if strategy == "to_best" else strategy
        losses = {s: float(results[by_seed[s].id]["final_train_loss"]) for s in minima}
        total = len(minima) * (len(minima) - 1) // 2
        known: dict[tuple[int, int], float] = {}
        drafts: list[UnitDraft] = []
        rounds = 0
        while True:
            width = total if rounds == 0 or strategy != "mst" else table.parallel_edges
            proposal = plan_pairs(minima, losses, known, (), table.budget, width, strategy, table.similar)
            if not proposal.pairs:
                return Plan(drafts, open=False, note=note(f"{strategy}, {rounds} rounds, closed ({proposal.reason})"))
            drafts += [self._edge(table, study, q, by_seed) for q in proposal.pairs]
            states = [state_of(q) for q in proposal.pairs]
            if any(s in ("new", "running") for s in states):
                return Plan(drafts, open=True, note=note(f"{strategy} round {rounds + 1}"))
            for q, s in zip(proposal.pairs, states):
                result = view.result(own[q].id) if s == "done" else None
                known[q] = float(result["saddle_train_loss"]) if result else math.inf  # a failed edge: no path known
            rounds += 1
