"""The ``landscape`` stage table (centres, directions, curves, surface, Hessian, angles) and the settings its units
share (Xu et al.'s Algo. 1/2, the Hessian's, Fig. 5's)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import ConfigDict, Field

from ..base import StageParams, StrictScalars

DIRECTION_KINDS = ("gaussian", "to_mode", "gradient")
NORMALISATIONS = ("norm", "laynorm", "filnorm", "none")
ONE_D_POLICIES = ("normalise", "zero", "keep")
CURVE_CLASSES = ("v-basin", "v-side", "w-basin", "w-peak", "other")
W_BASIN_RANGE = (-1.0, 2.0)  # Xu et al. §2.4: the curve towards another mode


def w_basin_points(points: int) -> int:
    """Points of a curve on [−1, 2] that has λ = 0 (this mode) and λ = 1 (the other mode) on its grid: the smallest
    count ≥ ``points`` with (count − 1) divisible by 3 (41 → 43)."""
    return 3 * math.ceil((points - 1) / 3) + 1


class Settings(StrictScalars):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class GridParams(Settings):
    x_min: float = -1.0
    x_max: float = 1.0
    x_points: int = Field(default=51, ge=2, le=10001)
    y_min: float = -1.0
    y_max: float = 1.0
    y_points: int = Field(default=51, ge=2, le=10001)


class HessianSettings(Settings):
    k: int = Field(default=5, ge=1, le=10, description="eigenpairs per end of the spectrum (App. B.1: up to 10)")
    which: list[Literal["LA", "SA"]] = Field(
        default=["LA", "SA"],
        min_length=1,
        description="the ends of the spectrum: largest (LA) and/or smallest (SA) eigenvalues",
    )
    examples: int | None = Field(default=None, ge=1, description="the seeded subset of training examples")
    trace_samples: int = Field(
        default=100, ge=1, le=100000, description="Rademacher vectors of Hutchinson's trace estimate"
    )
    slq_runs: int = Field(default=1, ge=0, le=1000, description="SLQ runs (0: no density)")
    slq_steps: int = Field(default=50, ge=2, le=10000, description="Lanczos steps per SLQ run")
    seed: int = Field(default=0, description="the seed of the subset, the starts and the probe vectors")


MINING_ALGORITHMS = ("w_peak", "vvv_basin")


class MiningSettings(Settings):
    """The settings of Xu et al.'s Algo. 1/2 the paper leaves out, with the defaults of ``workers.mining``."""

    epochs: int = Field(default=10, ge=1, le=100000, description="E: epochs over the training set")
    lr: float = Field(default=0.1, gt=0, le=100, description="η: the step size of the plain SGD updates")
    batch_size: int = Field(default=128, ge=1, le=1 << 20, description="the paper's training batch size")
    gamma: float = Field(default=0.5, ge=0, description="vvv_basin: γ, the weight of the interpolation term")
    alpha: float = Field(default=0.0, ge=0, le=0.5, description="vvv_basin: λ ∈ [0.5 − α, 0.5 + α]")
    phi_init: Literal["fresh", "perturbed"] = Field(
        default="fresh",
        description="vvv_basin: φ₀, a fresh seeded initialisation of the architecture, or θ + 0.1·(filter-"
        "normalised Gaussian)",
    )


class AnglesSettings(Settings):
    count: int = Field(default=100, ge=2, le=1000, description="Gaussian directions drawn (Fig. 5: 100)")
    seed: int = Field(default=1000, description="the first draw's seed; draws seed, seed + 1, …")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = Field(
        default="norm", description="as a gaussian direction's"
    )
    one_d: Literal["normalise", "zero", "keep"] = Field(default="normalise", description="as a gaussian direction's")


class DirectionSpec(MiningSettings):
    """One entry of the stage's ``directions``: planned once per centre. ``gaussian``, ``gradient``, ``to_mode``:
    a direction unit; ``eigenvector``: the ``rank``-th eigenvector of side ``which`` of the centre's Hessian unit
    (the stage's ``hessian`` table); ``w_peak``, ``vvv_basin``: a mining unit (Algo. 1 / 2, settings of
    ``MiningSettings``; ``seed`` seeds its batches, λ draws and φ₀)."""

    kind: Literal["gaussian", "to_mode", "gradient", "eigenvector", "w_peak", "vvv_basin", "next_checkpoint"] = Field(
        default="gaussian",
        description="gaussian, to_mode (to another mode, never normalised), gradient, eigenvector (of the stage's "
        "Hessian), w_peak or vvv_basin (mined, Xu et al. Algo. 1/2), next_checkpoint (at checkpoint centres)",
    )
    seed: int = Field(default=0, description="gaussian: the seed of the draw; w_peak/vvv_basin: the mining seed")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = Field(
        default="norm",
        description="gaussian/gradient: per tensor (norm), per layer (laynorm), per filter (filnorm, Li et al.) or "
        "none",
    )
    one_d: Literal["normalise", "zero", "keep"] = Field(
        default="normalise", description="1-D tensors (biases, BatchNorm): normalised like the rest, zeroed, or kept"
    )
    target_seed: int | None = Field(default=None, description="to_mode: the other mode (default: the next seed)")
    examples: int | None = Field(default=None, ge=1, description="gradient: the seeded subset of training examples")
    which: Literal["LA", "SA"] = Field(default="LA", description="eigenvector: largest (LA) or smallest (SA) side")
    rank: int = Field(default=0, ge=0, le=9, description="eigenvector: 0 = the largest |eigenvalue| of its side")


WIDE_RANGE_KINDS = (
    "to_mode",
    "vvv_basin",
    "next_checkpoint",
)  # curves on λ ∈ [−1, 2] (two models on the grid: λ = 0 and λ = 1)


class CentreSpec(Settings):
    """A centre that is not a mode of ``from`` (an entry of the stage's ``centres``)."""

    kind: Literal["path", "interpolation", "saddle", "pivot", "checkpoint"] = Field(
        description="path: a stored point of an M2M path; interpolation: a point of the straight line; saddle or "
        "pivot: of an AutoNEB path; checkpoint: a training checkpoint of a mode"
    )
    stage: str | None = Field(default=None, description="path: an m2m stage; saddle, pivot: an autoneb stage")
    pair: tuple[int, int] | None = Field(default=None, description="path, interpolation, saddle, pivot: the seeds")
    at: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="path: where on the path (fraction of its iterations; the stored point nearest it); "
        "interpolation: α of (1 − α)·θ_a + α·θ_b",
    )
    pivot: int | None = Field(default=None, ge=0, description="pivot: the pivot's index on the path (0: mode a)")
    seed: int | None = Field(default=None, description="checkpoint: the mode's seed")
    epoch: int | None = Field(default=None, ge=1, description="checkpoint: an epoch of [train] checkpoint_epochs")
    directions: list[int] | None = Field(
        default=None, description="indices into `directions` (default: all; []: none, only the centre itself)"
    )
    surface: bool = Field(default=True, description="the stage's surface at this centre too")
    hessian: bool = Field(default=True, description="the stage's Hessian at this centre too")

    def centre_seed(self) -> int:
        """The seed standing for the centre (labels, to_mode targets): a pair's first mode, a checkpoint's mode."""
        if self.kind == "checkpoint":
            return int(self.seed if self.seed is not None else 0)
        return int(self.pair[0]) if self.pair is not None else 0

    def label(self) -> str:
        a, b = self.pair if self.pair is not None else (None, None)
        if self.kind == "checkpoint":
            return f"seed={self.seed}@epoch{self.epoch}"
        if self.kind == "path":
            return f"path={self.stage}:{a}-{b}@{self.at:g}"
        if self.kind == "interpolation":
            return f"interp={a}-{b}@{self.at:g}"
        if self.kind == "saddle":
            return f"saddle={self.stage}:{a}-{b}"
        return f"pivot={self.stage}:{a}-{b}#{self.pivot}"


class SurfaceSpec(Settings):
    x_points: int = Field(default=51, ge=2, le=10001, description="grid points along the first direction")
    y_points: int = Field(default=51, ge=2, le=10001, description="grid points along the second direction")
    x_range: tuple[float, float] = Field(default=(-1.0, 1.0), description="[min, max] of λ₁")
    y_range: tuple[float, float] = Field(default=(-1.0, 1.0), description="[min, max] of λ₂")
    shard: tuple[int, int] = Field(default=(10, 10), description="grid points per shard along x and y")
    directions: tuple[int, int] = Field(default=(0, 1), description="indices into `directions` of ε₁ and ε₂")


class LandscapeStage(StageParams):
    from_: str = Field(alias="from", description="the stage whose modes are the centres")
    seeds: list[int] | None = Field(default=None, description="seeds of the modes to centre on (default: all)")
    centres: list[CentreSpec] = Field(default_factory=list, description="centres besides the modes")
    directions: list[DirectionSpec] = Field(
        default_factory=lambda: [DirectionSpec()],
        min_length=1,
        description="the directions planned at every centre (each entry a table below)",
    )
    scales: list[float] = Field(default=[0.1, 1.0, 4.0, 10.0], description="curve scales s: λ on [−s, s] ([]: none)")
    points: int = Field(default=41, ge=3, le=10001, description="points per curve, both ends included")
    surface: SurfaceSpec | None = Field(
        default=None, description="a 2-D surface over two of the directions, in shards (unset: none)"
    )
    hessian: HessianSettings | None = Field(
        default=None, description="Hessian eigenpairs, trace and density at every centre (unset: none)"
    )
    angles: AnglesSettings | None = Field(default=None, description="Fig. 5 at the first centre (none: not drawn)")
    bn: Literal["UpBN", "NoUpBN"] = Field(
        default="UpBN",
        description="BatchNorm at every scanned point: re-estimated on the training set (UpBN) or the centre's own "
        "(NoUpBN)",
    )
    eval_examples: int | None = Field(
        default=None,
        ge=1,
        description="evaluate each point on a seeded subset of this many examples per split (unset: all)",
    )
    eval_seed: int = Field(default=0, description="the seed of that subset")
    vectorize: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="scans evaluate K points at a time as one batched model (torch.func.vmap); unset: one by one",
    )
