"""The ``autoneb`` stage table (the exploration and the cycle schedule) and an edge unit's params (AutoNEB §4.1)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, model_validator

from ..base import DataParams, ModelParams, StageParams, UnitParams
from ..common.pairs import RandomPairs

EXPLORE_HELP = (
    "'mst' (Alg. 3), 'star' (the best mode to all others), 'all', or a pair strategy: 'consecutive', "
    "{random = K, seed = S}, or a list of seed pairs like [[0, 1], [2, 3]]"
)


class CycleSpec(StageParams):
    """One AutoNEB cycle (Alg. 2 loop body, ``workers.neb.Cycle``): insertion, then ``steps`` NEB steps at ``lr``
    with fresh momentum, then the dense evaluation with ``points_between`` points between neighbouring pivots."""

    steps: int = Field(ge=0, le=10_000_000, description="NEB steps of the cycle")
    lr: float = Field(gt=0, le=10, description="the cycle's learning rate (fresh momentum each cycle)")
    insert: Literal["equal", "highest", "none"] = Field(
        default="highest",
        description="how pivots are inserted before the cycle: equally spaced in every segment, in the segments with "
        "the highest dense loss, or none",
    )
    insert_count: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="pivots inserted (equal: per segment; highest: at most, in distinct segments)",
    )
    points_between: int = Field(
        default=9, ge=0, le=1000, description="dense evaluation points between neighbouring pivots (the paper's 9)"
    )


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
    eval_batch_size: int = Field(
        default=1024, ge=1, le=1 << 20, description="examples per batch of the dense evaluation"
    )
    segment_steps: int = Field(
        default=0, ge=0, le=10_000_000, description="NEB steps per committed segment; 0: one cycle per segment"
    )


class AutoNEBStage(EdgeSettings):
    from_: str = Field(alias="from", description="the stage whose modes are connected")
    explore: Union[Literal["mst", "star", "all", "consecutive", "to_best"], RandomPairs, list[tuple[int, int]]] = Field(
        default="mst",
        description="which pairs get an edge: the minimum-spanning-tree exploration (mst, Alg. 3), the best mode to "
        "all others (star), every pair (all), or a pair strategy",
    )
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
    def _cycles_given(self) -> "AutoNEBStage":
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
