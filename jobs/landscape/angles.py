"""Unit kind ``angles``: the angles between pairs of Gaussian directions at a centre (Xu et al. Fig. 5)."""

from __future__ import annotations

import math

from ..base import Metric, Resources, UnitContext, UnitKind, UnitParams
from .inputs import centre_state, model_and_data
from .settings import AnglesSettings


class AnglesParams(UnitParams, AnglesSettings):
    pass


class AnglesUnit(UnitKind):
    """Xu et al. Fig. 5: the angles between every pair of ``count`` Gaussian directions at a centre (table
    ``angles``: i, j, angle_deg); the directions are drawn as the direction kind draws them and not stored. Memory:
    count × the model's parameter count in float32."""

    name = "angles"
    version = 1
    Params = AnglesParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=20, resource_class="eval")
    metrics = (Metric("max_deviation_deg", "max |angle − 90°|", ".3g"),)
    tables = ("angles",)

    def run(self, ctx: UnitContext, p: AnglesParams) -> None:
        import torch

        from ...workers.landscape.directions import flatten, gaussian_direction, parameter_names

        model, _ = model_and_data(ctx, "centre")
        centre = centre_state(ctx, "centre")
        names = parameter_names(model)
        rows = []
        vectors = torch.stack(
            [
                flatten(gaussian_direction(centre, names, p.seed + i, p.normalisation, p.one_d), names).float()
                for i in range(p.count)
            ]
        ).double()
        norms = vectors.norm(dim=1)
        gram = (vectors @ vectors.T) / (norms[:, None] * norms[None, :])
        for i in range(p.count):
            for j in range(i + 1, p.count):
                cos = max(-1.0, min(1.0, float(gram[i, j])))
                rows.append({"i": i, "j": j, "angle_deg": math.degrees(math.acos(cos))})
        ctx.write_segment(0, {"angles": rows}, stop=False)  # the commit follows
        angles = [r["angle_deg"] for r in rows]
        ctx.commit(
            {
                "pairs": len(rows),
                "min_deg": min(angles),
                "max_deg": max(angles),
                "mean_deg": sum(angles) / len(angles),
                "max_deviation_deg": max(abs(a - 90.0) for a in angles),
                "within_1_deg": sum(abs(a - 90.0) <= 1.0 for a in angles) / len(angles),
                "dim": int(vectors.shape[1]),
            }
        )
