"""Unit kind ``interpolate``: loss and accuracy at K points on the straight line between two modes.

The loss barrier of linear mode connectivity is max over α of L(α) − [(1−α)L(0) + αL(1)]. Every point goes through
the one evaluation protocol (``workers.evaluation.Evaluator``): ``reestimate_bn = true`` is its ``UpBN`` (BatchNorm
running statistics re-estimated on the training set at every point: the interpolated running statistics of two
networks do not describe the interpolated network), ``false`` its ``NoUpBN`` (the interpolated statistics).
"""

from __future__ import annotations

from ..base import Figure, Metric, Resources, UnitContext, UnitKind
from ..common.running import build_for, load_data, point_chunks
from .params import InterpolateParams


class InterpolateUnit(UnitKind):
    name = "interpolate"
    version = 1
    Params = InterpolateParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    metrics = (
        Metric("barrier_train_loss", "train-loss barrier", ".4f"),
        Metric("max_train_loss", "max train loss on line", ".4g"),  # beside an LLPF path's "max train loss on path"
        Metric("barrier_test_loss", "test-loss barrier", ".4f"),
        Metric("barrier_test_acc", "test-acc drop", ".4f"),
    )
    tables = ("line",)
    figures = (
        Figure(
            "loss",
            "Loss on the line between two modes",
            table="line",
            x="alpha",
            ys=("train_loss", "test_loss"),
            labels=("train loss", "test loss"),
            style="line",
            xlabel="α (0 = mode a, 1 = mode b)",
            ylabel="cross-entropy loss",
            result_hist=("barrier_train_loss", "barrier_test_loss"),
        ),
        Figure(
            "accuracy",
            "Accuracy on the line between two modes",
            table="line",
            x="alpha",
            ys=("train_acc", "test_acc"),
            labels=("train accuracy", "test accuracy"),
            style="line",
            xlabel="α (0 = mode a, 1 = mode b)",
            ylabel="accuracy",
            ylim=(None, 1.01),
            result_hist=("barrier_test_acc",),
        ),
    )

    def run(self, ctx: UnitContext, p: InterpolateParams) -> None:
        from ...workers.evaluation import Evaluator
        from ...workers.interpolation import barrier, interpolate_state

        ma, mb = ctx.input_params("a"), ctx.input_params("b")
        if (ma.model, ma.data) != (mb.model, mb.data):
            raise ValueError(
                f"cannot interpolate between different models/data: {ma.model} on {ma.data} and {mb.model} on {mb.data}"
            )
        data = load_data(ctx, ma.data)
        model = build_for(ma.model, data, ctx.device)
        sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
        sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
        k = p.points
        alphas = [i / (k - 1) for i in range(k)]
        bn = "UpBN" if p.reestimate_bn else "NoUpBN"
        if p.vectorize is not None and p.vectorize > 1:
            from ...workers.vectorize import StackedEvaluator

            stacked = StackedEvaluator(model, data, min(p.vectorize, k), bn)  # no slot beyond the line's points
            evaluate = stacked.evaluate
        else:
            evaluator = Evaluator(model, data, bn)

            def evaluate(states):
                return [evaluator.evaluate(state) for state in states]

        chunks = point_chunks(k, p.vectorize)
        # one segment per chunk (one point, or K with vectorize): a resume continues at the next chunk
        for c in range(ctx.committed_segments(), len(chunks)):
            points = chunks[c]
            values = evaluate([interpolate_state(sa, sb, alphas[i]) for i in points])
            ctx.write_segment(c, {"line": [_row(i, alphas[i], v) for i, v in zip(points, values)]})
            ctx.progress(points[-1] + 1, k, alpha=alphas[points[-1]], train_loss=values[-1]["train_loss"])
        line = ctx.rows("line").to_pylist()
        bt, it = barrier([r["train_loss"] for r in line], alphas)
        bv, _ = barrier([r["test_loss"] for r in line], alphas)
        acc_drop, _ = barrier([-r["test_acc"] for r in line], alphas)
        ctx.commit(
            {
                "pair": list(p.pair),
                "barrier_train_loss": bt,
                "barrier_alpha": alphas[it],
                "barrier_test_loss": bv,
                "barrier_test_acc": acc_drop,
                "max_train_loss": max(r["train_loss"] for r in line),
                "endpoint_train_loss": [line[0]["train_loss"], line[-1]["train_loss"]],
                "endpoint_test_acc": [line[0]["test_acc"], line[-1]["test_acc"]],
            }
        )


def _row(index: int, alpha: float, values: dict[str, float]) -> dict:
    return {
        "index": index,
        "alpha": alpha,
        **{key: values[key] for key in ("train_loss", "train_acc", "test_loss", "test_acc")},
    }
