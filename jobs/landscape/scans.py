"""Unit kind ``scan``: a 1-D curve θ + λε (one segment per λ, or per K points with ``vectorize``, so a killed unit
resumes at the next point) or one shard of a 2-D grid θ + λ₁ε₁ + λ₂ε₂, every point through
``workers.landscape.scans.PointEvaluator`` (Xu et al. §2, Li et al.)."""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

from pydantic import Field

from ..base import Resources, UnitContext, UnitKind, UnitParams
from ..common.running import point_chunks
from .figures import SCAN_FIGURES, SCAN_METRICS, SCAN_VERDICTS
from .inputs import canonical_without_none, centre_state, direction_input, model_and_data
from .settings import CURVE_CLASSES, GridParams


class ScanParams(UnitParams):
    """A curve (``lambda_min``, ``lambda_max``, ``points``; input ``direction``) or a surface shard (``grid`` and
    ``shard`` = [x_start, x_stop, y_start, y_stop] of grid indices; inputs ``x`` and ``y``); input ``centre``."""

    shape: Literal["curve", "surface"]
    lambda_min: float | None = None
    lambda_max: float | None = None
    points: int | None = Field(default=None, ge=2, le=10001)
    grid: GridParams | None = None
    shard: tuple[int, int, int, int] | None = None
    bn: Literal["UpBN", "NoUpBN"] = "UpBN"
    eval_examples: int | None = Field(default=None, ge=1)
    eval_seed: int = 0
    select: dict[str, str] | None = Field(
        default=None,
        description="input role -> the direction to take from a tensor set holding several (a Hessian unit's "
        "eigenvectors: LA0, SA1, ...); unset: the input is one direction",
    )
    vectorize: int | None = Field(default=None, ge=2, description="K points per batched evaluation and segment")

    def canonical(self) -> dict:
        return canonical_without_none(self)


def point_evaluation(evaluator: Any, model: Any, data: Any, p: ScanParams, n: int) -> Callable[[list], list[dict]]:
    """A function from a chunk's coefficient lists to their values: the point evaluator one point at a time, or (with
    ``vectorize``) the stacked evaluator on the chunk's states (the same protocol, batched kernels)."""
    if p.vectorize is None or p.vectorize < 2:
        return lambda coefficients: [evaluator.evaluate(c) for c in coefficients]
    from ...workers.vectorize import StackedEvaluator

    k = min(p.vectorize, n)  # no slot beyond the scan's n points
    stacked = StackedEvaluator(model, data, k, p.bn, eval_examples=p.eval_examples, eval_seed=p.eval_seed)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")

    def evaluate(coefficients: list) -> list[dict]:
        values = stacked.evaluate([evaluator.point_state(c) for c in coefficients])
        return [{key: v[key] for key in keys} for v in values]

    return evaluate


class Scan:
    """One scan's centre, directions and point evaluator."""

    def __init__(self, ctx: UnitContext, p: ScanParams):
        from ...workers.landscape.scans import PointEvaluator

        self.ctx, self.p = ctx, p
        self.model, self.data = model_and_data(ctx, "centre")
        centre = centre_state(ctx, "centre")
        roles = ("direction",) if p.shape == "curve" else ("x", "y")
        directions = [direction_input(ctx, r, (p.select or {}).get(r)) for r in roles]
        self.evaluator = PointEvaluator(self.model, centre, directions, self.data, p.bn, p.eval_examples, p.eval_seed)
        self.random_loss = math.log(self.data.num_classes)

    def evaluation(self, n: int) -> Callable[[list], list[dict]]:
        return point_evaluation(self.evaluator, self.model, self.data, self.p, n)

    def curve(self) -> None:
        from ...workers.landscape.scans import classify_curve, count_stationary_points, line_lambdas

        ctx, p = self.ctx, self.p
        if p.lambda_min is None or p.lambda_max is None or p.points is None:
            raise ValueError("curve: lambda_min, lambda_max and points are needed")
        chunks = point_chunks(p.points, p.vectorize)
        evaluate = self.evaluation(p.points)
        lambdas = line_lambdas(p.lambda_min, p.lambda_max, p.points)
        # one segment per chunk of points (one point, or K with vectorize): a resume continues at the next one
        for c, chunk in enumerate(chunks[ctx.committed_segments() :], start=ctx.committed_segments()):
            rows = [
                {"index": i, "lambda": lambdas[i], **values, "random_loss": self.random_loss}
                for i, values in zip(chunk, evaluate([[lambdas[i]] for i in chunk]))
            ]
            ctx.write_segment(c, {"curve": rows})
            ctx.progress(chunk[-1] + 1, len(lambdas), train_loss=rows[-1]["train_loss"])
        rows = ctx.rows("curve").to_pylist()
        train = [r["train_loss"] for r in rows]
        shape = classify_curve(train, lambdas)
        centre_row = rows[min(range(len(lambdas)), key=lambda i: (abs(lambdas[i]), i))]
        ctx.commit(
            {
                "shape": "curve",
                "class": shape,
                "stationary_points": count_stationary_points(train),
                "test_class": classify_curve([r["test_loss"] for r in rows], lambdas),
                "test_stationary_points": count_stationary_points([r["test_loss"] for r in rows]),
                "centre_train_loss": centre_row["train_loss"],
                "max_train_loss": max(train),
                "min_train_loss": min(train),
                **{f"is_{c.replace('-', '_')}": shape == c for c in CURVE_CLASSES},
            }
        )

    def surface(self) -> None:
        from ...workers.landscape.scans import Grid, Shard, shard_points

        ctx, p = self.ctx, self.p
        if p.grid is None or p.shard is None:
            raise ValueError("surface: grid and shard are needed")
        points = shard_points(Grid(**p.grid.model_dump()), Shard(*p.shard))
        chunks = point_chunks(len(points), p.vectorize)
        evaluate = self.evaluation(len(points))
        for c, chunk in enumerate(chunks[ctx.committed_segments() :], start=ctx.committed_segments()):
            coords = [points[k] for k in chunk]
            rows = [
                {"i": i, "j": j, "lambda1": x, "lambda2": y, **values, "random_loss": self.random_loss}
                for (i, j, x, y), values in zip(coords, evaluate([list(pt[2:]) for pt in coords]))
            ]
            ctx.write_segment(c, {"surface": rows})
            ctx.progress(chunk[-1] + 1, len(points), train_loss=rows[-1]["train_loss"])
        rows = ctx.rows("surface").to_pylist()
        ctx.commit(
            {
                "shape": "surface",
                "points": len(rows),
                "max_train_loss": max(r["train_loss"] for r in rows),
                "min_train_loss": min(r["train_loss"] for r in rows),
            }
        )


class ScanUnit(UnitKind):
    name = "scan"
    version = 1
    Params = ScanParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    metrics = SCAN_METRICS
    verdicts = SCAN_VERDICTS
    tables = ("curve", "surface")
    figures = SCAN_FIGURES

    def run(self, ctx: UnitContext, p: ScanParams) -> None:
        scan = Scan(ctx, p)
        if p.shape == "curve":
            scan.curve()
        else:
            scan.surface()
