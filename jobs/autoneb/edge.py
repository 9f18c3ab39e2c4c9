"""Unit kind ``autoneb_edge``: one pair of minima connected by AutoNEB (Alg. 2's cycles of Alg. 1 over pivots holding
parameters and buffers), driving ``workers.autoneb.neb``; committed a segment per cycle (or per ``segment_steps``)."""

from __future__ import annotations

import functools
from typing import Any

from ..base import Resources, UnitContext, UnitKind
from ..common.loop import Segment, run_segments
from ..common.running import build_for, load_data
from .figures import FIGURES, METRICS, VERDICTS
from .params import AutoNEBEdgeParams, CycleSpec, max_pivots


class EdgeState:
    """The resumable state of an edge (``jobs.common.loop.Resumable``): ``AutoNEBState.to_tensors()`` (pivots,
    target shares, the running cycle's momentum, counters, the previous cycle's dense train losses), the RNG states,
    and the running cycle's insertion count."""

    def __init__(self, state: Any, device: Any):
        self.state, self.device, self.inserted = state, device, 0

    def checkpoint(self) -> tuple[dict, dict]:
        from ...workers.training import rng_state_tensors

        tensors = {f"neb.{k}": v for k, v in self.state.to_tensors().items()}
        tensors.update(rng_state_tensors(self.device))
        return tensors, {"inserted": self.inserted}

    def restore(self, tensors: dict, meta: dict) -> None:
        from ...workers.autoneb.neb import AutoNEBState
        from ...workers.training import restore_rng_state

        self.state = AutoNEBState.from_tensors(
            {k[4:]: v.to(self.device) for k, v in tensors.items() if k.startswith("neb.")}
        )
        self.state.weights = self.state.weights.cpu()
        self.state.previous_dense = self.state.previous_dense.cpu()
        restore_rng_state(tensors, self.device)
        self.inserted = int(meta.get("inserted", 0))


def segment_chunks(cycles: list[CycleSpec], segment_steps: int) -> list[tuple[int, int, int]]:
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
def state_size(model: str, dataset: str, image_size: int | None) -> int:
    """Floats in a model's state (parameters and buffers), for the edge's memory estimate."""
    from ...workers.data import DATASET_SHAPES
    from ...workers.models import build_model

    channels, size, classes = DATASET_SHAPES[dataset]
    return sum(t.numel() for t in build_model(model, classes, channels, image_size or size).state_dict().values())


class EdgeRun:
    """One edge: its two ends flattened, the evaluator of pivots, the schedule's cycles, and what a segment does."""

    def __init__(self, ctx: UnitContext, p: AutoNEBEdgeParams):
        from ...workers.autoneb import neb
        from ...workers.data import derive_seed
        from ...workers.evaluation import Evaluator

        self.ctx, self.p = ctx, p
        for mode in (ctx.input_params("a"), ctx.input_params("b")):
            if (mode.model, mode.data) != (p.model, p.data):
                raise ValueError(
                    f"edge {p.pair}: mode {mode.seed} is {mode.model.name} on {mode.data.dataset}; "
                    f"the edge needs {p.model.name} on {p.data.dataset}"
                )
        data = load_data(ctx, p.data)
        self.model = build_for(p.model, data, ctx.device)
        self.layout = neb.state_layout(self.model)
        self.geometry = self.layout.num_parameters
        self.start = neb.flatten_state(ctx.input_final_state("a"), self.layout, device=ctx.device)
        self.end = neb.flatten_state(ctx.input_final_state("b"), self.layout, device=ctx.device)
        self.template = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        self.cycles = [neb.Cycle(**c.model_dump()) for c in p.cycles]
        self.evaluator = neb.pivot_evaluator(Evaluator(self.model, data, p.bn, p.eval_batch_size), self.layout)
        self.ends = [self.evaluator(self.start), self.evaluator(self.end)]
        self.end_losses = (self.ends[0]["train_loss"], self.ends[1]["train_loss"])
        self.pivot_loss = neb.cross_entropy_pivot_loss(
            neb.pivot_batches(data, p.batch_size, derive_seed("autoneb-edge", *p.pair), p.augment)
        )
        self.chunks = segment_chunks(p.cycles, p.segment_steps)
        self.edge = EdgeState(neb.AutoNEBState.initial(self.start, self.end, self.geometry), ctx.device)
        self.edge.state.weights = self.edge.state.weights.cpu()
        self.linear: float | None = None  # the straight line's maximum train loss, once known

    def line_rows(self) -> list[dict]:
        """The straight segment, evaluated like the path (for the verdict)."""
        import torch

        from ...workers.autoneb import neb

        dense = neb.evaluate_path(torch.stack([self.start, self.end]), self.evaluator, 9)
        alphas = [j / 10 for j in range(11)]
        return [{"alpha": a, **{k: float(v[j]) for k, v in dense.items()}} for j, a in enumerate(alphas)]

    def segment(self, index: int, _end: int) -> Segment:
        from ...workers.autoneb import neb

        c, _, s1 = self.chunks[index]
        cycle, st = self.cycles[c], self.edge.state
        tables: dict[str, list[dict]] = {"line": self.line_rows()} if index == 0 else {}
        if "line" in tables:
            self.linear = max(r["train_loss"] for r in tables["line"])
        elif self.linear is None:  # resumed: the straight line is committed
            self.linear = max(r["train_loss"] for r in self.ctx.rows("line").to_pylist())
        if not st.started:
            previous_between = self.cycles[c - 1].points_between if c else None
            self.edge.inserted = len(
                neb.start_cycle(st, cycle, self.geometry, self.p.insert_threshold, previous_between)
            )
        steps = self._steps(c, s1)
        if steps:
            tables["steps"] = steps
        info: dict[str, Any] = {"cycle": c + 1, "pivots": st.pivots.shape[0]}
        if s1 >= cycle.steps:
            tables.update(self._finish_cycle(c))
            info["max_train_loss"] = tables["cycles"][0]["max_train_loss"]
        return Segment(tables, info=info)

    def _steps(self, c: int, s1: int) -> list[dict]:
        """NEB steps up to ``s1`` of cycle ``c``: one ``steps`` row each (the pivots' mean and highest batch loss)."""
        import torch

        from ...workers.autoneb import neb

        cycle, st, p = self.cycles[c], self.edge.state, self.p
        offset = neb.steps_before(self.cycles, c)
        first = st.step
        losses = []
        while st.step < s1:
            losses.append(
                neb.run_steps(
                    self.model, self.layout, st, cycle, self.pivot_loss, self.end_losses, until=st.step + 1, l2=p.l2,
                    momentum_coefficient=p.momentum, step_offset=offset,
                )
            )  # fmt: skip
        if not losses:
            return []
        stacked = torch.stack(losses).double()
        summary = torch.stack([stacked.mean(1), stacked.max(1).values], 1).cpu().tolist()
        count = st.pivots.shape[0]
        return [
            {"step": offset + first + k, "cycle": c, "lr": cycle.lr, "pivots": count, "loss_mean": m, "loss_max": h}
            for k, (m, h) in enumerate(summary)
        ]

    def _finish_cycle(self, c: int) -> dict[str, list[dict]]:
        """The cycle's dense evaluation (``dense`` rows) and its summary (one ``cycles`` row)."""
        from ...workers.autoneb import neb

        cycle, st = self.cycles[c], self.edge.state
        dense = neb.finish_cycle(st, cycle, self.evaluator)
        positions = neb.dense_positions(st.pivots, cycle.points_between, self.geometry).tolist()
        marks = list(neb.dense_points(st.pivots[:, :0], cycle.points_between))
        dense_rows = [
            {"cycle": c, "lr": cycle.lr, "index": j, "position": positions[j], "segment": seg, "alpha": a,
             "pivot": a in (0.0, 1.0), **{k: float(v[j]) for k, v in dense.items()}}
            for j, (seg, a, _) in enumerate(marks)
        ]  # fmt: skip
        summary = {
            "cycle": c,
            "cycles": len(self.cycles),
            "lr": cycle.lr,
            "steps": cycle.steps,
            "pivots": st.pivots.shape[0],
            "inserted": self.edge.inserted,
            "a": self.p.pair[0],
            "b": self.p.pair[1],
            "max_train_loss": float(dense["train_loss"].max()),
            "max_test_loss": float(dense["test_loss"].max()),
            "max_test_error": float(dense["test_error"].max()),
            "end_train_loss_a": self.end_losses[0],
            "end_train_loss_b": self.end_losses[1],
            "length_ratio": neb.path_length_ratio(st.pivots, self.geometry),
            "linear_max_train_loss": self.linear,
        }
        return {"dense": dense_rows, "cycles": [summary]}

    def commit(self) -> None:
        """The edge's saddle (AutoNEB's highest dense point of its best cycle), its verdict against the straight
        line, its pivots and the saddle's state."""
        import torch

        from ...workers.autoneb import neb

        st, p, ends = self.edge.state, self.p, self.ends
        dense_rows = self.ctx.rows("dense").to_pylist()
        metrics = [k for k in dense_rows[0] if k.endswith(("_loss", "_error"))]
        by_cycle = [
            {k: torch.tensor([r[k] for r in dense_rows if r["cycle"] == c], dtype=torch.float64) for k in metrics}
            for c in range(len(self.cycles))
        ]
        saddle = neb.edge_saddle(by_cycle)
        saddle_cycle = saddle.pop("cycle")
        linear_max = max(r["train_loss"] for r in self.ctx.rows("line").to_pylist())
        top = int(by_cycle[-1]["train_loss"].argmax())
        top_vector = list(neb.dense_points(st.pivots, self.cycles[-1].points_between))[top][2]
        saddle_state = {k: v.cpu() for k, v in neb.unflatten_state(top_vector, self.layout, self.template).items()}
        result = {
            "pair": list(p.pair),
            **saddle,
            "saddle_cycle": saddle_cycle,
            "end_train_loss": [e["train_loss"] for e in ends],
            "end_test_loss": [e["test_loss"] for e in ends],
            "end_test_error": [e["test_error"] for e in ends],
            "end_train_loss_max": max(self.end_losses),
            "end_test_error_max": max(e["test_error"] for e in ends),
            "barrier_train_loss": saddle["saddle_train_loss"] - max(self.end_losses),
            "linear_max_train_loss": linear_max,
            "below_linear": saddle["saddle_train_loss"] < linear_max,
            "length_ratio": neb.path_length_ratio(st.pivots, self.geometry),
            "pivots": int(st.pivots.shape[0]),
            "steps": sum(c.steps for c in self.cycles),
            "bn": p.bn,
        }
        pivots = {"pivots": st.pivots.detach().cpu().contiguous(), "weights": st.weights.detach().cpu().contiguous()}
        self.ctx.commit(result, outputs={"pivots": pivots, "saddle": saddle_state})


class AutoNEBEdgeUnit(UnitKind):
    name = "autoneb_edge"
    version = 1
    Params = AutoNEBEdgeParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("pivots", "saddle")
    metrics = METRICS
    verdicts = VERDICTS
    tables = ("steps", "dense", "cycles", "line")
    figures = FIGURES

    def resources(self, p: AutoNEBEdgeParams) -> Resources:
        floats = state_size(p.model.name, p.data.dataset, p.data.image_size)
        pivots = max_pivots(p.cycles)
        # pivots + momentum + gradients + a redistribution copy, in float32
        mem = 2.0 + 4 * floats * pivots * 4 / 1e9
        steps = sum(c.steps for c in p.cycles) * max(pivots - 2, 1)
        minutes = max(30, min(7 * 24 * 60, steps // 200))
        return Resources(cpus=1, gpus=0, mem_gb=round(mem, 1), time_min=minutes, resource_class="train")

    def run(self, ctx: UnitContext, p: AutoNEBEdgeParams) -> None:
        edge = EdgeRun(ctx, p)
        run_segments(ctx, len(edge.chunks), 1, edge.edge, edge.segment, unit="segments")
        edge.commit()
