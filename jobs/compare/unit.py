"""Unit kind ``path_eval``: one method's path between one pair of modes, re-evaluated with the one evaluation protocol
(``workers.evaluation.Evaluator``: full training set without augmentation and test set, eval mode, a stated BatchNorm
policy ``UpBN``/``NoUpBN``), so that every method's numbers compare.

A path is the polyline through its **vertices**: the two modes (linear), the mode P0, every point the M2M phases
stored (``point_stride``) and each phase's end point (LLPF), or the final pivots (AutoNEB). Between neighbouring
vertices ``points_between`` interpolated points are evaluated too (the straight line: ``line_points`` in all; AutoNEB:
``points_between``, the paper's 9; LLPF: ``llpf_points_between``, default 0: only the points the path went through).
Each polyline segment is one committed segment, so a killed unit resumes at the next one. The path length is the
polyline's, over the parameters (for LLPF a lower bound of its iterates' path: only the stored points are known).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..base import Resources, UnitContext, UnitKind
from ..common.running import build_for, load_data
from .figures import FIGURES, METRICS
from .params import PathEvalParams


def param_length(u: dict, v: dict, names: list[str]) -> float:
    """The Euclidean distance between two states over the named parameters."""
    import torch

    total = torch.zeros((), dtype=torch.float64)
    for n in names:
        total += (v[n].double() - u[n].double()).pow(2).sum().cpu()
    return float(total.sqrt())


def phase_roles(ctx: UnitContext) -> list[str]:
    """The input roles of the running unit (phase1, phase2, … for an LLPF path)."""
    roles: list[str] = []
    k = 1
    while True:
        try:
            ctx.input_params(f"phase{k}")
        except KeyError:
            return roles
        roles.append(f"phase{k}")
        k += 1


class PathEvaluation:
    """One path's polyline evaluated segment by segment."""

    def __init__(self, ctx: UnitContext, p: PathEvalParams):
        from ...workers.evaluation import Evaluator

        self.ctx, self.p = ctx, p
        mode = ctx.input_params("a")
        data = load_data(ctx, mode.data)
        self.model = build_for(mode.model, data, ctx.device)
        self.evaluator = Evaluator(self.model, data, p.bn, p.eval_batch_size)
        self.params = [n for n, _ in self.model.named_parameters()]
        self.sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        self.sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
        self.straight = param_length(self.sa, self.sb, self.params)

    def vertices(self) -> Iterator[dict]:
        ctx = self.ctx
        if self.p.method == "linear":
            yield self.sa
            yield self.sb
        elif self.p.method == "autoneb":
            from ...workers.autoneb import neb

            layout = neb.state_layout(self.model)
            for row in ctx.input_tensors("edge")["pivots"]:
                yield neb.unflatten_state(row.to(ctx.device), layout, self.sa)
        else:
            yield self.sa
            for role in phase_roles(ctx):
                iterations = ctx.input_params(role).iterations
                for step, tensors in ctx.input_points(role):
                    if 0 < step < iterations:  # the stored end point is the phase's final state, next
                        yield {n: t.to(ctx.device) for n, t in tensors.items()}
                yield {n: t.to(ctx.device) for n, t in ctx.input_final_state(role).items()}

    def row(self, segment: int, alpha: float, vertex: bool, arc: float, state: dict) -> dict:
        p = self.p
        return {
            "method": p.method,
            "a": p.pair[0],
            "b": p.pair[1],
            "segment": segment,
            "alpha": alpha,
            "vertex": vertex,
            "arc": arc,
            **self.evaluator.evaluate(state),
        }

    def run(self) -> tuple[int, int, float]:
        """Evaluate the polyline, one committed segment per segment of it; (points, vertices, path length)."""
        from ...workers.interpolation import interpolate_state

        ctx, p = self.ctx, self.p
        done = ctx.committed_segments()  # one segment per polyline segment: a resume continues at the next one
        alphas = [j / (p.points_between + 1) for j in range(p.points_between + 1)]
        previous: dict[str, Any] | None = None
        index, arc, count = 0, 0.0, 0
        for vertex in self.vertices():
            if previous is not None:
                length = param_length(previous, vertex, self.params)
                if index >= done:
                    rows = [
                        self.row(
                            index,
                            a,
                            j == 0,
                            arc + a * length,
                            previous if j == 0 else interpolate_state(previous, vertex, a),
                        )
                        for j, a in enumerate(alphas)
                    ]
                    ctx.write_segment(index, {"path": rows})
                    ctx.progress(index + 1, index + 2, train_loss=max(r["train_loss"] for r in rows))
                arc += length
                count += len(alphas)
                index += 1
            previous = vertex
        if previous is None or index == 0:
            raise ValueError(f"path_eval {p.method} {p.pair}: the path has fewer than two points")
        if index >= done:  # the path's last vertex: a segment of its own; the commit follows
            ctx.write_segment(index, {"path": [self.row(index, 0.0, True, arc, previous)]}, stop=False)
        return count + 1, index + 1, arc


class PathEvalUnit(UnitKind):
    name = "path_eval"
    version = 1
    Params = PathEvalParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    metrics = METRICS
    tables = ("path",)
    figures = FIGURES

    def run(self, ctx: UnitContext, p: PathEvalParams) -> None:
        evaluation = PathEvaluation(ctx, p)
        count, vertices, arc = evaluation.run()
        rows = ctx.rows("path").to_pylist()
        train = [r["train_loss"] for r in rows]
        test_error = [r["test_error"] for r in rows]
        straight = evaluation.straight
        ctx.commit(
            {
                "method": p.method,
                "pair": list(p.pair),
                "bn": p.bn,
                "points": count,
                "vertices": vertices,
                "max_train_loss": max(train),
                "max_test_loss": max(r["test_loss"] for r in rows),
                "max_test_error": max(test_error),
                "start_train_loss": train[0],
                "end_train_loss": train[-1],
                "barrier_train_loss": max(train) - max(train[0], train[-1]),
                "barrier_test_error": max(test_error) - max(test_error[0], test_error[-1]),
                "path_length": arc,
                "straight_length": straight,
                "length_ratio": arc / straight if straight > 0 else None,
            }
        )
