"""Loss-landscape scans θ + Σ λᵢ·εᵢ: one point evaluator, 1-D curves, 2-D grid shards, and curve shapes (Xu et al.).

The point evaluator (``PointEvaluator``) is the one place a perturbed point is evaluated: parameters θ + Σ λᵢεᵢ,
BatchNorm running statistics either re-estimated by one forward pass over the training examples (``UpBN``, the
paper's default, App. A.1) or kept from θ (``NoUpBN``); ``num_batches_tracked`` is always θ's. Loss and accuracy are
the mean cross-entropy and accuracy over the training set without augmentation and over the test set, in eval mode
(``evaluation.Evaluator``, the one evaluation protocol that interpolation, LLPF, AutoNEB and the ``compare`` stage
share).

``eval_examples`` limits each split to a fixed subset of that many examples, drawn without replacement from a
generator seeded with (``eval_seed``, split) and kept in dataset order; the same subset serves BN re-estimation. Every
point of a scan sees the same examples.

A 2-D surface is a ``Grid`` of x_points × y_points coefficients; a ``Shard`` is a rectangular block of grid indices,
so the points of a shard are a pure function of (grid, shard) and shards tile the grid with no point twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# the data subsets (shared with hessian.py) live in ``evaluation``, the one evaluation protocol; re-exported here
from ..evaluation import BN_POLICIES as BN_POLICIES
from ..evaluation import SPLITS as SPLITS
from ..evaluation import Evaluator
from ..evaluation import SplitBatches as SplitBatches
from ..evaluation import split_batches as split_batches
from ..evaluation import subset_indices as subset_indices

CURVE_CLASSES = ("v-basin", "v-side", "w-basin", "w-peak", "other")

# ---------------------------------------------------------------- the point evaluator


def perturbed_state(
    centre: Mapping[str, torch.Tensor], directions: Sequence[Mapping[str, torch.Tensor]], coefficients: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Xu et al. §2.1: θ + Σ λᵢ·εᵢ on the directions' tensors; every other entry (BN statistics, counters) is θ's."""
    if len(directions) != len(coefficients):
        raise ValueError(f"coefficients: {len(coefficients)} given for {len(directions)} directions")
    out = {}
    for name, value in centre.items():
        value = value.clone()
        for d, lam in zip(directions, coefficients):
            if name in d and lam != 0:
                value.add_(d[name], alpha=float(lam))
        out[name] = value
    return out


class PointEvaluator:
    """Xu et al. §2.1 / App. A.1: loss and accuracy at θ + Σ λᵢεᵢ on the train and test sets, UpBN or NoUpBN.

    ``evaluate(coefficients)`` returns ``{"train_loss", "train_acc", "test_loss", "test_acc"}`` (floats). The model's
    parameters and buffers are overwritten at every point; nothing else is kept between points."""

    def __init__(
        self,
        model: nn.Module,
        centre: Mapping[str, torch.Tensor],
        directions: Sequence[Mapping[str, torch.Tensor]],
        data,
        bn_policy: str = "UpBN",
        eval_examples: int | None = None,
        eval_seed: int = 0,
        batch_size: int = 1024,
        bn_batch_size: int = 256,
    ):
        if bn_policy not in BN_POLICIES:
            raise ValueError(f"bn_policy: {bn_policy!r} is not one of {', '.join(BN_POLICIES)}")
        self.model = model
        self.centre = {n: t.detach() for n, t in centre.items()}
        self.directions = [dict(d) for d in directions]
        self.bn_policy = bn_policy
        self._params = dict(model.named_parameters())
        self._buffers = {n: b for n, b in model.named_buffers() if n in self.centre}
        for d in self.directions:
            unknown = [n for n in d if n not in self._params]
            if unknown:
                raise ValueError(
                    f"direction: tensors {unknown[:3]} are not parameters of the model "
                    f"(directions cover parameters only, never buffers)"
                )
        missing = [n for n in list(self._params) + list(self._buffers) if n not in self.centre]
        if missing:
            raise ValueError(f"centre: state lacks {missing[:3]}")
        self.evaluator = Evaluator(model, data, bn_policy, batch_size, bn_batch_size, eval_examples, eval_seed)
        self.train_batches = self.evaluator.batches["train"]
        self.test_batches = self.evaluator.batches["test"]
        self.bn_batches = self.evaluator.bn_batches

    @torch.no_grad()
    def load_point(self, coefficients: Sequence[float]) -> None:
        """Write θ + Σ λᵢεᵢ into the model (θ's buffers), then re-estimate BN statistics under UpBN."""
        if len(coefficients) != len(self.directions):
            raise ValueError(f"coefficients: {len(coefficients)} given for {len(self.directions)} directions")
        for name, p in self._params.items():
            p.copy_(self.centre[name])
            for d, lam in zip(self.directions, coefficients):
                if lam != 0 and name in d:
                    p.add_(d[name], alpha=float(lam))
        for name, b in self._buffers.items():
            b.copy_(self.centre[name])
        self.evaluator.refresh_batchnorm()

    @torch.no_grad()
    def point_state(self, coefficients: Sequence[float]) -> dict[str, torch.Tensor]:
        """θ + Σ λᵢεᵢ (θ's buffers) as a state, with the arithmetic of ``load_point`` (for a batched evaluator)."""
        if len(coefficients) != len(self.directions):
            raise ValueError(f"coefficients: {len(coefficients)} given for {len(self.directions)} directions")
        state = {}
        for name in self._params:
            t = self.centre[name].clone()
            for d, lam in zip(self.directions, coefficients):
                if lam != 0 and name in d:
                    t.add_(d[name], alpha=float(lam))
            state[name] = t
        state.update({name: self.centre[name] for name in self._buffers})
        return state

    def evaluate(self, coefficients: Sequence[float]) -> dict[str, float]:
        self.load_point(coefficients)  # BatchNorm already refreshed there: measure the point as it is
        measured = self.evaluator.measure()
        return {
            "train_loss": measured["train"][0],
            "train_acc": measured["train"][1],
            "test_loss": measured["test"][0],
            "test_acc": measured["test"][1],
        }


# ---------------------------------------------------------------- 1-D curves


def curve_lambdas(scale: float = 1.0, points: int = 41) -> list[float]:
    """Xu et al. §2.2: ``points`` equally spaced λ on [−s, s] (41 on [−1, 1] by default); λ = 0 exactly at the middle
    of an odd count."""
    if points < 2:
        raise ValueError(f"points: {points} is fewer than 2")
    if not scale > 0:
        raise ValueError(f"scale: {scale} is not a positive view scale s")
    return [scale * (2 * i - (points - 1)) / (points - 1) for i in range(points)]


def line_lambdas(start: float, stop: float, points: int) -> list[float]:
    """``points`` equally spaced λ on [start, stop], both ends included (w-basin curves: [−1, 2], §2.4)."""
    if points < 2:
        raise ValueError(f"points: {points} is fewer than 2")
    return [start + (stop - start) * i / (points - 1) for i in range(points)]


def scan_curve(
    evaluator: PointEvaluator, lambdas: Sequence[float], on_point: Callable[[int, dict], None] | None = None
) -> list[dict]:
    """Xu et al. §2.2: the curve θ + λε at each λ (an evaluator over one direction); rows with index and lambda."""
    if len(evaluator.directions) != 1:
        raise ValueError(f"directions: a curve needs 1 direction, the evaluator has {len(evaluator.directions)}")
    rows = []
    for i, lam in enumerate(lambdas):
        row = {"index": i, "lambda": float(lam), **evaluator.evaluate([lam])}
        rows.append(row)
        if on_point is not None:
            on_point(i, row)
    return rows


# ---------------------------------------------------------------- 2-D grids and shards


@dataclass(frozen=True)
class Grid:
    """λ₁ (x) and λ₂ (y) coefficients of a surface: x_points × y_points, ends included (Li et al.: 51 × 51 on
    [−1, 1]²)."""

    x_min: float = -1.0
    x_max: float = 1.0
    x_points: int = 51
    y_min: float = -1.0
    y_max: float = 1.0
    y_points: int = 51

    def __post_init__(self):
        for field in ("x_points", "y_points"):
            if getattr(self, field) < 2:
                raise ValueError(f"{field}: {getattr(self, field)} is fewer than 2")
        if not (self.x_max > self.x_min and self.y_max > self.y_min):
            raise ValueError(f"grid: [{self.x_min}, {self.x_max}] × [{self.y_min}, {self.y_max}] is empty")

    def x(self, i: int) -> float:
        return self.x_min + (self.x_max - self.x_min) * i / (self.x_points - 1)

    def y(self, j: int) -> float:
        return self.y_min + (self.y_max - self.y_min) * j / (self.y_points - 1)

    @property
    def size(self) -> int:
        return self.x_points * self.y_points


@dataclass(frozen=True)
class Shard:
    """The block of grid indices x_start ≤ i < x_stop, y_start ≤ j < y_stop."""

    x_start: int
    x_stop: int
    y_start: int
    y_stop: int

    @property
    def size(self) -> int:
        return (self.x_stop - self.x_start) * (self.y_stop - self.y_start)


def grid_shards(grid: Grid, shard_x: int, shard_y: int) -> list[Shard]:
    """Tile the grid with blocks of at most shard_x × shard_y indices, row-major; the last blocks may be smaller."""
    if shard_x < 1 or shard_y < 1:
        raise ValueError(f"shard shape: {shard_x} × {shard_y} is not at least 1 × 1")
    return [
        Shard(i, min(i + shard_x, grid.x_points), j, min(j + shard_y, grid.y_points))
        for i in range(0, grid.x_points, shard_x)
        for j in range(0, grid.y_points, shard_y)
    ]


def shard_points(grid: Grid, shard: Shard) -> list[tuple[int, int, float, float]]:
    """(i, j, λ₁, λ₂) of every point of a shard, row-major: a pure function of (grid, shard)."""
    if not (0 <= shard.x_start < shard.x_stop <= grid.x_points and 0 <= shard.y_start < shard.y_stop <= grid.y_points):
        raise ValueError(f"shard: {shard} does not lie inside the {grid.x_points} × {grid.y_points} grid")
    return [
        (i, j, grid.x(i), grid.y(j))
        for i in range(shard.x_start, shard.x_stop)
        for j in range(shard.y_start, shard.y_stop)
    ]


def scan_shard(
    evaluator: PointEvaluator, grid: Grid, shard: Shard, on_point: Callable[[int, dict], None] | None = None
) -> list[dict]:
    """Xu et al. §2.6: the surface θ + λ₁ε₁ + λ₂ε₂ on one shard (an evaluator over two directions)."""
    if len(evaluator.directions) != 2:
        raise ValueError(f"directions: a surface needs 2 directions, the evaluator has {len(evaluator.directions)}")
    rows = []
    for k, (i, j, x, y) in enumerate(shard_points(grid, shard)):
        row = {"i": i, "j": j, "lambda1": x, "lambda2": y, **evaluator.evaluate([x, y])}
        rows.append(row)
        if on_point is not None:
            on_point(k, row)
    return rows


def assemble_surface(rows: Iterable[Mapping], grid: Grid, column: str) -> np.ndarray:
    """The x_points × y_points array of ``column`` from the rows of all shards; each grid point exactly once."""
    out = np.full((grid.x_points, grid.y_points), np.nan)
    seen = np.zeros((grid.x_points, grid.y_points), dtype=bool)
    for row in rows:
        i, j = int(row["i"]), int(row["j"])
        if seen[i, j]:
            raise ValueError(f"rows: grid point ({i}, {j}) appears twice")
        seen[i, j] = True
        out[i, j] = row[column]
    if not seen.all():
        i, j = map(int, np.argwhere(~seen)[0])
        raise ValueError(f"rows: {int((~seen).sum())} grid points missing, e.g. ({i}, {j})")
    return out


# ---------------------------------------------------------------- curve shapes (App. A.2)


def stationary_points(ys: Sequence[float]) -> list[tuple[int, str]]:
    """Xu et al. App. A.3: inner points t with (y_t − y_{t+1})·(y_t − y_{t−1}) > 0, as (t, "min" | "max"); the two
    endpoints are never counted, ties (equal neighbours) and non-finite values are not stationary."""
    out = []
    for t in range(1, len(ys) - 1):
        y, left, right = float(ys[t]), float(ys[t - 1]), float(ys[t + 1])
        if not all(math.isfinite(v) for v in (y, left, right)):
            continue
        if (y - right) * (y - left) > 0:
            out.append((t, "min" if y < right else "max"))
    return out


def count_stationary_points(ys: Sequence[float]) -> int:
    """Xu et al. App. A.3: the number of stationary points of a curve (a perfect v-basin has 1, w-basin/w-peak 3)."""
    return len(stationary_points(ys))


def centre_index(lambdas: Sequence[float]) -> int:
    """The index of the point nearest λ = 0 (the perturbed model θ)."""
    return min(range(len(lambdas)), key=lambda i: (abs(lambdas[i]), i))


def classify_curve(ys: Sequence[float], lambdas: Sequence[float]) -> str:
    """Xu et al. §2 / Fig. 1: the class of a 1-D curve from its stationary points and where θ (λ = 0) lies.

    - ``v-basin``: one stationary point, a minimum, at θ (the perturbed model lies on the basin);
    - ``v-side``: no stationary point, or one minimum away from θ (θ lies on the valley side);
    - ``w-peak``: min, max, min with the maximum the stationary point nearest θ (θ on the peak: the loss decreases
      on both sides of it);
    - ``w-basin``: min, max, min with a minimum nearest θ (two basins and one barrier, θ in one of the basins; ties
      go to the minimum);
    - ``other``: anything else (a single maximum, two, four, or five and more stationary points).
    """
    if len(ys) != len(lambdas):
        raise ValueError(f"curve: {len(ys)} values for {len(lambdas)} λ")
    points = stationary_points(ys)
    centre = centre_index(lambdas)
    kinds = [k for _, k in points]
    if not points:
        return "v-side"
    if kinds == ["min"]:
        return "v-basin" if points[0][0] == centre else "v-side"
    if kinds == ["min", "max", "min"]:
        distance = [abs(t - centre) for t, _ in points]
        return "w-peak" if distance[1] < min(distance[0], distance[2]) else "w-basin"
    return "other"
