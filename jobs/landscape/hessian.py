"""Unit kind ``hessian``: extreme eigenpairs (eigsh over Hessian–vector products), Hutchinson's trace and the SLQ
density at a centre (Xu et al. App. B.1, Fig. 13); the eigenvectors are committed as ``directions`` under keys
``<which><rank>.<tensor>`` (``LA0.fc.weight``)."""

from __future__ import annotations

from typing import Any

from ..base import Metric, Resources, UnitContext, UnitKind, UnitParams
from .inputs import canonical_without_none, centre_state, model_and_data, on_cpu
from .settings import HessianSettings


class HessianParams(UnitParams, HessianSettings):
    def canonical(self) -> dict:
        return canonical_without_none(self)


class HessianUnit(UnitKind):
    name = "hessian"
    version = 1
    Params = HessianParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=60, resource_class="eval")
    outputs = ("directions",)
    metrics = (Metric("top_eigenvalue", "largest eigenvalue", ".4g"), Metric("trace", "Hutchinson trace", ".4g"))
    tables = ("spectrum", "density")

    def run(self, ctx: UnitContext, p: HessianParams) -> None:
        from ...workers.landscape.hessian import (
            HessianOperator,
            eigenvector_directions,
            hessian_batches,
            hessian_eigenpairs,
            hutchinson_trace,
            slq_density,
        )

        model, data = model_and_data(ctx, "centre")
        centre = centre_state(ctx, "centre")
        model.load_state_dict(centre)
        model.eval()
        operator = HessianOperator(model, hessian_batches(data, p.examples, p.seed))
        params = dict(model.named_parameters())
        rows: list[dict] = []
        vectors: dict = {}
        result: dict[str, Any] = {}
        for which in p.which:
            values, vecs = hessian_eigenpairs(operator, min(p.k, operator.dim - 1), which, seed=p.seed)
            order = sorted(range(len(values)), key=lambda n: -abs(float(values[n])))  # rank 0: the largest |λ|
            dirs = eigenvector_directions(vecs, params, operator.names)
            for rank, n in enumerate(order):
                rows.append({"which": which, "rank": rank, "eigenvalue": float(values[n])})
                vectors.update({f"{which}{rank}.{t}": v for t, v in dirs[n].items()})
            result[f"eigenvalues_{which}"] = [float(values[n]) for n in order]
        trace, trace_stderr = hutchinson_trace(operator, p.trace_samples, p.seed)
        result.update(
            {
                "trace": trace,
                "trace_stderr": trace_stderr,
                "dim": operator.dim,
                "examples": operator.examples,
                "top_eigenvalue": result["eigenvalues_LA"][0] if "eigenvalues_LA" in result else None,
            }
        )
        tables = {"spectrum": rows}
        if p.slq_runs:
            density = slq_density(operator, p.slq_runs, p.slq_steps, p.seed, grid_points=200)
            result.update(
                {
                    "density_mean": density.mean,
                    "density_mean_vs_trace_per_dim": trace / operator.dim,
                    "density_min_node": float(min(t.min() for t in density.nodes)),
                    "density_max_node": float(max(t.max() for t in density.nodes)),
                }
            )
            tables["density"] = [
                {"eigenvalue": float(g), "density": float(d)} for g, d in zip(density.grid, density.density)
            ]
        result["hvp_products"] = operator.products
        ctx.write_segment(0, tables, stop=False)  # the commit follows: a stop here would throw the spectrum away
        ctx.commit(result, outputs={"directions": on_cpu(vectors)})
