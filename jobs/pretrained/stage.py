"""Stage and unit kind ``pretrained``: a mode that is a published pretrained model (torchvision's weights), e.g. the
ImageNet ResNet18 that LLPF Table 2 starts its model-to-origin path from. The weights come from torchvision's cache
($TORCH_HOME/hub/checkpoints), downloaded there where there is internet."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..base import (
    Metric,
    ModeParams,
    PlanView,
    Resources,
    SimpleStage,
    StageCount,
    StageInfo,
    StageParams,
    StudyContext,
    UnitContext,
    UnitDraft,
    UnitKind,
    count_key,
)
from ..common.running import build_for, load_data, mode_data_problem


class PretrainedStage(StageParams):
    weights: str = Field(default="IMAGENET1K_V1", description="torchvision weights name")
    evaluate: bool = Field(default=True, description="evaluate train/test loss and accuracy of the weights")


class PretrainedParams(ModeParams):
    weights: str
    evaluate: bool = True


class PretrainedUnit(UnitKind):
    name = "pretrained"
    version = 1
    Params = PretrainedParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=8.0, time_min=120, resource_class="eval")
    outputs = ("final",)
    metrics = (
        Metric("final_test_loss", "test loss", ".4f"),
        Metric("final_test_acc", "test acc", ".4f", lower_is_better=False),
    )

    def run(self, ctx: UnitContext, p: PretrainedParams) -> None:
        from ...workers.models import load_pretrained
        from ...workers.training import evaluate_batches

        state = load_pretrained(p.model.name, p.weights)
        result = {"seed": 0, "weights": p.weights}
        if p.evaluate:
            data = load_data(ctx, p.data)
            model = build_for(p.model, data, ctx.device)
            model.load_state_dict(state)
            result["final_train_loss"], result["final_train_acc"] = evaluate_batches(model, data.eval_batches("train"))
            result["final_test_loss"], result["final_test_acc"] = evaluate_batches(model, data.eval_batches("test"))
            ctx.write_segment(
                0,
                {
                    "evals": [
                        {
                            "epoch": 0,
                            "step": 0,
                            "train_loss": result["final_train_loss"],
                            "train_acc": result["final_train_acc"],
                            "test_loss": result["final_test_loss"],
                            "test_acc": result["final_test_acc"],
                        }
                    ]
                },
                stop=False,  # the commit follows
            )
        ctx.commit(result, final=state)


class PretrainedStageKind(SimpleStage):
    name = "pretrained"
    Table = PretrainedStage
    unit_kinds = ("pretrained",)

    def validate(
        self, table: PretrainedStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        from ...workers.models import PRETRAINED

        if study.model.name not in PRETRAINED:
            why = f"a model with published weights ({', '.join(PRETRAINED)}); model.name is {study.model.name!r}"
            return [("kind", "pretrained", why)]
        return []

    def count(self, table: PretrainedStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount:
        return StageCount(((count_key("pretrained", self._params(table, study).canonical()), 1),), seeds=(0,))

    def drafts(self, table: PretrainedStage, study: StudyContext, view: PlanView) -> list[UnitDraft]:
        # one mode, seed 0: the weights are fixed, there is nothing to repeat
        return [UnitDraft("pretrained", self._params(table, study), {}, f"weights={table.weights}")]

    @staticmethod
    def _params(table: PretrainedStage, study: StudyContext) -> PretrainedParams:
        return PretrainedParams(
            seed=0, model=study.model, data=study.data, weights=table.weights, evaluate=table.evaluate
        )

    def check_data(self, study: StudyContext, data_root: str | None) -> str | None:
        return mode_data_problem(study.data, data_root)
