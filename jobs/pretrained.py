"""Unit kind ``pretrained``: a mode that is a published pretrained model (torchvision's weights), e.g. the ImageNet
ResNet18 that LLPF Table 2 starts its model-to-origin path from. The weights come from torchvision's cache
($TORCH_HOME/hub/checkpoints), downloaded there where there is internet."""
from __future__ import annotations

from pydantic import Field

from .base import Kind, Metric, Resources, StageParams, StudyContext, UnitDraft, Upstream


class PretrainedStage(StageParams):
    weights: str = Field(default="IMAGENET1K_V1", description="torchvision weights name")
    evaluate: bool = Field(default=True, description="evaluate train/test loss and accuracy of the weights")


class PretrainedKind(Kind):
    name = "pretrained"
    version = 1
    Params = PretrainedStage
    resources = Resources(cpus=1, gpus=0, mem_gb=8.0, time_min=120, resource_class="eval")
    produces_mode = True
    metrics = (Metric("final_test_loss", "test loss", ".4f"),
               Metric("final_test_acc", "test acc", ".4f", lower_is_better=False))

    def validate(self, params, study, stages):
        from lowloss.workers.models import PRETRAINED

        if study.model["name"] not in PRETRAINED:
            return [("kind", "pretrained", f"a model with published weights ({', '.join(PRETRAINED)}); "
                                           f"model.name is {study.model['name']!r}")]
        return []

    def expand(self, params: PretrainedStage, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        # one mode, seed 0: the weights are fixed, there is nothing to repeat
        return [UnitDraft(self.name, {"seed": 0, "model": study.model, "data": study.data, "weights": params.weights,
                                      "evaluate": params.evaluate}, {}, f"weights={params.weights}")]

    def check_data(self, study, data_root):
        from lowloss.workers.data import check_data_root

        return check_data_root(study.data["dataset"], data_root)

    def run(self, ctx) -> None:
        from lowloss.workers.data import load_dataset
        from lowloss.workers.models import build_model, load_pretrained
        from lowloss.workers.training import evaluate_batches

        p = ctx.params
        state = load_pretrained(p["model"]["name"], p["weights"])
        result = {"seed": 0, "weights": p["weights"]}
        if p["evaluate"]:
            data = load_dataset(p["data"]["dataset"], ctx.data_root, p["data"].get("image_size")).to(ctx.device)
            model = build_model(p["model"]["name"], data.num_classes, data.in_channels, data.image_size).to(ctx.device)
            model.load_state_dict(state)
            result["final_train_loss"], result["final_train_acc"] = evaluate_batches(model, data.eval_batches("train"))
            result["final_test_loss"], result["final_test_acc"] = evaluate_batches(model, data.eval_batches("test"))
            ctx.write_segment(0, {"evals": [{"epoch": 0, "step": 0, "train_loss": result["final_train_loss"],
                                             "train_acc": result["final_train_acc"],
                                             "test_loss": result["final_test_loss"],
                                             "test_acc": result["final_test_acc"]}]})
        ctx.commit(result, final=state)
