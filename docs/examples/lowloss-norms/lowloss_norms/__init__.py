"""The weight norms of every mode, tensor by tensor: a stage kind ``norms`` that plans one ``weight_norms`` unit per
mode of an earlier stage, and the unit kind that measures them. An example of a lowloss plugin (docs/plugins.md)."""

from __future__ import annotations

from pydantic import Field

from lowloss.jobs import (
    Figure,
    Metric,
    ModeParams,
    PlanView,
    Resources,
    SimpleStage,
    StageParams,
    StudyContext,
    UnitContext,
    UnitDraft,
    UnitKind,
    UnitParams,
)


class NormsStage(StageParams):
    """The ``[[stages]]`` table of kind ``norms``."""

    from_: str = Field(alias="from", description="the stage whose modes are measured")
    biases: bool = Field(default=False, description="also measure 1-D tensors (biases, BatchNorm)")


class NormsParams(UnitParams):
    """One unit: which mode (by seed) and whether 1-D tensors count. Its canonical JSON is part of its id."""

    seed: int
    biases: bool = False


class WeightNormsUnit(UnitKind):
    name = "weight_norms"
    version = 1
    Params = NormsParams
    default_resources = Resources(cpus=1, mem_gb=1.0, time_min=5, resource_class="eval")
    metrics = (Metric("total_norm", "‖θ‖ (measured)", ".4g"), Metric("largest", "largest ‖W‖", ".4g"))
    tables = ("norms",)
    figures = (
        Figure(
            "norms",
            "Weight norm of each tensor",
            table="norms",
            x="index",
            ys=("norm",),
            labels=("‖W‖",),
            style="line",
            xlabel="tensor (in the model's order)",
            ylabel="L2 norm",
            logy=True,
        ),
    )

    def run(self, ctx: UnitContext, p: NormsParams) -> None:
        import torch

        state = ctx.input_final_state("mode")
        rows = []
        for name, tensor in state.items():
            if not tensor.is_floating_point() or (tensor.dim() < 2 and not p.biases):
                continue
            norm = float(torch.linalg.vector_norm(tensor.double()))
            rows.append({"index": len(rows), "tensor": name, "norm": norm})
        ctx.write_segment(0, {"norms": rows}, stop=False)  # one segment; the commit follows
        total = sum(r["norm"] ** 2 for r in rows) ** 0.5
        largest = max(rows, key=lambda r: r["norm"])
        ctx.commit(
            {"seed": p.seed, "total_norm": total, "largest": largest["norm"], "largest_tensor": largest["tensor"]}
        )


class NormsStageKind(SimpleStage):
    name = "norms"
    Table = NormsStage
    unit_kinds = ("weight_norms",)
    input_output = "final"  # `from` must name a stage whose units commit modes
    needs_input_stage = True

    def drafts(self, table: NormsStage, study: StudyContext, view: PlanView) -> list[UnitDraft]:
        drafts = []
        for mode in view.units(table.from_):
            seed = mode.params_as(ModeParams).seed
            params = NormsParams(seed=seed, biases=table.biases)
            drafts.append(UnitDraft("weight_norms", params, {"mode": mode.id}, f"seed={seed}"))
        return drafts


KINDS = (WeightNormsUnit, NormsStageKind)
