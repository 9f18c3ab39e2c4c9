"""The tables of the LLPF stages (``m2m``, ``m2o``) and the params of their units: Train^r, Move, the path's
settings and the verdict's thresholds (LLPF Tables 1–3, 6)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..base import StageParams, UnitParams
from ..common.pairs import PairStrategy


class TrainRule(StageParams):
    """Train^r (LLPF Alg. 1 l.7): a fixed number of steps, or until the rolling loss ≤ threshold (or max_rounds)."""

    rounds: int | None = Field(default=None, ge=1, description="exactly r SGD steps per iteration")
    threshold: float | None = Field(default=None, gt=0, description="train until the rolling loss ≤ this")
    max_rounds: int | None = Field(default=None, ge=1, description="... or this many steps")
    min_rounds: int = Field(default=10, ge=1, description="rolling window and minimum steps (the papers' 10)")

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.rounds is None) == (self.threshold is None):
            raise ValueError("give either rounds, or threshold with max_rounds")
        if self.threshold is not None and self.max_rounds is None:
            raise ValueError("threshold needs max_rounds (the loop must be bounded)")
        return self


class PhaseMoves(StageParams):
    """How far a phase goes and how Move steps (LLPF Alg. 1 l.10–16)."""

    iterations: int = Field(ge=1, le=10_000_000, description="LLPF iterations of the phase")
    step_a: float = Field(
        default=0.0,
        ge=0,
        description="Move: the step as a fraction of the distance to D left (length max(step_f + c, step_a·‖D − P‖))",
    )
    step_f: float = Field(
        default=0.0, ge=0, description="Move: the absolute floor of a step's length (step_c's length adds to it)"
    )
    step_c: float = Field(
        default=0.0, ge=0, description="Move: a constant number of steps to D (per-tensor lengths fixed at the start)"
    )


class PhaseSpec(TrainRule, PhaseMoves):
    layers: list[str] | None = Field(default=None, description="tensor name patterns this phase moves")
    add: list[str] | None = Field(default=None, description="the previous phase's patterns plus these")
    group_weight_bias: bool | None = Field(
        default=None, description="Move each layer's weight and bias as one vector; unset: the stage's setting"
    )

    @model_validator(mode="after")
    def _moves(self):
        if (self.layers is None) == (self.add is None):
            raise ValueError("give either layers (the patterns) or add (the previous phase's plus these)")
        if self.step_a == 0 and self.step_f == 0 and self.step_c == 0:
            raise ValueError("step_a, step_f and step_c are all 0: Move would never move")
        return self


class PathSettings(StageParams):
    batch_size: int = Field(default=64, ge=1, description="examples per training step")
    lr: float = Field(default=0.001, gt=0, description="the learning rate of Train^r")
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD momentum of Train^r (LLPF §3.2: none)")
    eval_every: int = Field(default=100, ge=1, description="full train/test evaluation every K iterations")
    point_stride: int = Field(default=0, ge=0, description="store the model every N iterations (0: none)")
    segment_iterations: int = Field(default=50, ge=1, description="iterations per committed segment")
    l_thres: float = Field(default=0.1, gt=0, description="the low-loss threshold L_thres of the verdict")
    reference_quirks: bool = Field(default=False, description="reproduce the authors' code (see docs)")
    group_weight_bias: bool | None = Field(
        default=None,
        description="Move each layer's weight and bias as one vector (the authors' LeNet5 "
        "configurations); unset: on with reference_quirks, else off",
    )
    precision: Literal["fp32", "tf32", "bf16"] | None = Field(
        default=None, description="fp32 (unset), tf32 (CUDA matmuls/convs), bf16 (autocast forward passes)"
    )


class M2MSettings(PathSettings):
    distance_threshold: float = Field(default=0.1, gt=0, description="verdict: final distance per Move unit")
    distance_to: Literal["destination_on_start_sphere", "destination"] = Field(
        default="destination_on_start_sphere",
        description="what the distance verdict measures to: D projected on P0's variance sphere (VarianceCorrection "
        "of D, the point a converged path reaches) or D itself (the papers' absolute figure)",
    )
    test_loss_tolerance: float = Field(default=0.05, gt=0, description="verdict: test loss change allowed")
    test_loss_rule: Literal["converge", "no_worse"] = Field(
        default="converge",
        description="converge: |final − start| ≤ tolerance (LLPF §4); no_worse: final ≤ start + tolerance",
    )
    freeze_stats_outside_phase: bool = Field(
        default=False,
        description="restore BatchNorm running statistics outside the phase after training (every tensor outside the "
        "phase then stays bit-for-bit)",
    )


class M2MStage(M2MSettings):
    from_: str = Field(alias="from", description="the stage whose modes are joined")
    pairs: PairStrategy = Field(
        default="consecutive", description="which pairs of modes get a path (as interpolate's pairs)"
    )
    phases: list[PhaseSpec] = Field(
        min_length=1, description="the layer phases of every path, in order (Table 1's shape)"
    )


class M2OSettings(PathSettings, TrainRule):
    iterations: int = Field(ge=1, le=10_000_000, description="LLPF iterations of the path")
    step_a: float = Field(
        default=0.0,
        ge=0,
        description="Move: the step as a fraction of the norm left (length max(step_f, step_a·‖P‖))",
    )
    step_f: float = Field(default=0.0, ge=0, description="Move: the absolute floor of a step's length")
    conformal_all_tensors: bool = Field(
        default=False,
        description="scale the learning rate of every moved tensor with its norm (Alg. 2), not only of the weights "
        "(the authors' code)",
    )
    layernorm: Literal["keep", "compensate"] | None = Field(
        default=None,
        description="keep: normalization layers never move (LLPF §3.2); compensate: LayerNorm moves "
        "away from the origin by the same step (the authors' M2O code); unset: compensate with reference_quirks",
    )


class M2OStage(M2OSettings):
    from_: str = Field(alias="from", description="the stage whose modes start a path")
    seeds: list[int] | None = Field(default=None, description="the modes' seeds to start from (default: all)")


def _without_unset_precision(canonical: dict) -> dict:
    if canonical.get("precision") is None:
        canonical.pop("precision", None)  # unset: the content (and id) of a path unit from before the setting
    return canonical


class M2MPhaseParams(UnitParams, M2MSettings, TrainRule, PhaseMoves):
    """One phase of one pair's path: the pair's seeds, which phase of how many, the tensor patterns it moves."""

    pair: tuple[int, int]
    phase: int = Field(ge=1)
    phases: int = Field(ge=1)
    patterns: list[str]

    def canonical(self) -> dict:
        return _without_unset_precision(super().canonical())


class M2OParams(UnitParams, M2OSettings):
    seed: int

    def canonical(self) -> dict:
        return _without_unset_precision(super().canonical())
