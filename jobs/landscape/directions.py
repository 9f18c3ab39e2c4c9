"""Unit kind ``direction``: one perturbation direction ε at a centre (input ``centre``: a mode, or a stored point via
``Ref(uid, "point:<step>")``), committed as the tensor set ``directions``: a seeded Gaussian (normalised ``norm``,
``laynorm``, ``filnorm`` or ``none``, with a 1-D tensor policy), the negative gradient (normalised the same way), or
the direction to another mode (input ``target``, never normalised: λ = 1 reaches it). Inputs ``other.<n>``: earlier
directions of the same centre, whose angles to this one the result records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Metric, Resources, UnitContext, UnitKind, UnitParams
from .inputs import canonical_without_none, centre_state, model_and_data, on_cpu


class DirectionParams(UnitParams):
    direction: Literal["gaussian", "to_mode", "gradient"]
    seed: int | None = Field(default=None, description="gaussian: the seed of the draw")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = "norm"
    one_d: Literal["normalise", "zero", "keep"] = "normalise"
    examples: int | None = Field(default=None, ge=1, description="gradient: the seeded subset of training examples")
    others: int = Field(default=0, ge=0, description="inputs other.0 … other.<n-1>: directions to measure angles to")

    def canonical(self) -> dict:
        return canonical_without_none(self)


class DirectionUnit(UnitKind):
    name = "direction"
    version = 1
    Params = DirectionParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
    outputs = ("directions",)
    metrics = (Metric("norm", "‖ε‖", ".4g"),)

    def run(self, ctx: UnitContext, p: DirectionParams) -> None:
        from ...workers.landscape.directions import (
            angle_degrees,
            direction_between,
            direction_norm,
            gaussian_direction,
            negative_gradient_direction,
            normalise_direction,
            parameter_names,
        )
        from ...workers.landscape.scans import split_batches

        model, data = model_and_data(ctx, "centre")
        centre = centre_state(ctx, "centre")
        names = parameter_names(model)
        if p.direction == "gaussian":
            if p.seed is None:
                raise ValueError("seed: none given; a gaussian direction needs the seed of its draw")
            eps = gaussian_direction(centre, names, p.seed, p.normalisation, p.one_d)
        elif p.direction == "gradient":
            batches = split_batches(data, "train", 1024, p.examples, 0)
            eps = normalise_direction(
                negative_gradient_direction(model, centre, batches, names), centre, p.normalisation, p.one_d
            )
        else:
            eps = direction_between(centre, centre_state(ctx, "target"), names)
        eps = on_cpu(eps)
        angles = {}
        for n in range(p.others):
            angles[f"other.{n}"] = angle_degrees(eps, ctx.input_tensors(f"other.{n}"))
        ctx.commit(
            {"direction": p.direction, "norm": direction_norm(eps), "tensors": len(eps), "angles_deg": angles},
            outputs={"directions": eps},
        )
