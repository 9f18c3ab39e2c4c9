"""Unit kind ``interpolate``: loss and accuracy at K points on the straight line between two modes.

The loss barrier of linear mode connectivity is max over α of L(α) − [(1−α)L(0) + αL(1)]. When the model has
BatchNorm, its running statistics are re-estimated on the training set at every point (the interpolated running
statistics of two networks do not describe the interpolated network).
"""
from __future__ import annotations

from pydantic import Field

from .base import Figure, Kind, Metric, Resources, StageParams, StudyContext, UnitDraft, Upstream
from .pairs import STRATEGY_HELP, PairStrategy, check_pairs, is_dynamic, mode_pairs


class InterpolateStage(StageParams):
    from_: str = Field(alias="from", description="the stage whose modes are paired")
    pairs: PairStrategy = "consecutive"
    points: int = Field(default=11, ge=2, le=10001, description="points on the line, both ends included")
    reestimate_bn: bool = True


class InterpolateKind(Kind):
    name = "interpolate"
    version = 1
    Params = InterpolateStage
    resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    needs_input_stage = True
    metrics = (
        Metric("barrier_train_loss", "train-loss barrier", ".4f"),
        Metric("barrier_test_loss", "test-loss barrier", ".4f"),
        Metric("barrier_test_acc", "test-acc drop", ".4f"),
    )
    tables = ("line",)
    figures = (
        Figure("loss", "Loss on the line between two modes", table="line", x="alpha", ys=("train_loss", "test_loss"),
               labels=("train loss", "test loss"), style="line", xlabel="α (0 = mode a, 1 = mode b)",
               ylabel="cross-entropy loss", result_hist=("barrier_train_loss", "barrier_test_loss")),
        Figure("accuracy", "Accuracy on the line between two modes", table="line", x="alpha",
               ys=("train_acc", "test_acc"), labels=("train accuracy", "test accuracy"), style="line",
               xlabel="α (0 = mode a, 1 = mode b)", ylabel="accuracy", ylim=(None, 1.01),
               result_hist=("barrier_test_acc",)),
    )

    def validate(self, params: InterpolateStage, study, stages):
        seeds = stages[params.from_].params.seeds if getattr(stages[params.from_].params, "seeds", None) else list(study.seeds)
        problem = check_pairs(params.pairs, list(seeds))
        return [("pairs", params.pairs, f"{STRATEGY_HELP}; {problem}")] if problem else []

    def describe(self, params: InterpolateStage, study):
        return [f"pairs from stage {params.from_!r}: "
                + ("planned when all modes are done (to_best)" if is_dynamic(params.pairs) else str(params.pairs))]

    def expand(self, params: InterpolateStage, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        drafts = []
        for a, b in mode_pairs(params.pairs, upstream.units(params.from_), upstream):
            drafts.append(UnitDraft(self.name, {"pair": [a.params["seed"], b.params["seed"]], "points": params.points,
                                                "reestimate_bn": params.reestimate_bn},
                                    {"a": a.id, "b": b.id}, f"pair={a.params['seed']}-{b.params['seed']}"))
        return drafts

    def run(self, ctx) -> None:
        from lowloss.workers.data import load_dataset
        from lowloss.workers.interpolation import barrier, interpolate_state, reestimate_batchnorm
        from lowloss.workers.models import build_model, has_batchnorm
        from lowloss.workers.training import evaluate_batches

        pa_, pb_ = ctx.input_params("a"), ctx.input_params("b")
        if (pa_["model"], pa_["data"]) != (pb_["model"], pb_["data"]):
            raise ValueError(f"cannot interpolate between different models/data: {pa_['model']} on {pa_['data']} "
                             f"and {pb_['model']} on {pb_['data']}")
        data = load_dataset(pa_["data"]["dataset"], ctx.data_root, pa_["data"].get("image_size")).to(ctx.device)
        model = build_model(pa_["model"]["name"], data.num_classes, data.in_channels, data.image_size).to(ctx.device)
        sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
        k = ctx.params["points"]
        alphas = [i / (k - 1) for i in range(k)]
        rebn = ctx.params["reestimate_bn"] and has_batchnorm(model)
        for i in range(ctx.committed_segments(), k):  # one segment per point: a resume continues at the next point
            model.load_state_dict(interpolate_state(sa, sb, alphas[i]))
            if rebn:
                reestimate_batchnorm(model, data.eval_batches("train", 256))
            tl, ta = evaluate_batches(model, data.eval_batches("train"))
            vl, va = evaluate_batches(model, data.eval_batches("test"))
            ctx.write_segment(i, {"line": [{"index": i, "alpha": alphas[i], "train_loss": tl, "train_acc": ta,
                                            "test_loss": vl, "test_acc": va}]})
            ctx.progress(i + 1, k, alpha=alphas[i], train_loss=tl)
        line = ctx.rows("line").to_pylist()
        bt, it = barrier([r["train_loss"] for r in line], alphas)
        bv, _ = barrier([r["test_loss"] for r in line], alphas)
        acc_drop, _ = barrier([-r["test_acc"] for r in line], alphas)
        ctx.commit({"pair": ctx.params["pair"], "barrier_train_loss": bt, "barrier_alpha": alphas[it],
                    "barrier_test_loss": bv, "barrier_test_acc": acc_drop,
                    "max_train_loss": max(r["train_loss"] for r in line),
                    "endpoint_train_loss": [line[0]["train_loss"], line[-1]["train_loss"]],
                    "endpoint_test_acc": [line[0]["test_acc"], line[-1]["test_acc"]]})
