"""Unit kind ``centre``: a centre that is not a mode, materialised as a model (``final``): a stored path point, an
AutoNEB saddle or pivot, a point of the straight line between two modes, or a training checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import Metric, ModeParams, Resources, UnitContext, UnitKind
from ..common.running import build_for, load_data
from .inputs import canonical_without_none, on_cpu

CENTRE_SOURCES = ("point", "interpolation", "pivot", "checkpoint")


class CentreParams(ModeParams):
    """A centre that is not a mode, as a model of its own (``final``): a stored point of a path (``point``: input
    ``a`` is ``Ref(uid, "point:<step>")`` or an AutoNEB edge's ``saddle``), a point on the straight line between two
    modes (``interpolation``: inputs ``a``, ``b``, ``alpha``), a pivot of an AutoNEB path (``pivot``: input ``a`` the
    edge's ``pivots``, ``template`` a mode), or a training checkpoint (``checkpoint``: input ``a`` a train unit that
    stored epoch ``epoch``). ``seed``, ``model`` and ``data`` are those of the mode(s) it comes from."""

    source: Literal["point", "interpolation", "pivot", "checkpoint"]
    alpha: float | None = None
    pivot: int | None = Field(default=None, ge=0)
    epoch: int | None = Field(default=None, ge=1)
    reestimate_bn: bool = Field(default=True, description="interpolation: BN statistics re-estimated at the point")

    def canonical(self) -> dict:
        return canonical_without_none(self)


class CentreUnit(UnitKind):
    name = "centre"
    version = 1
    Params = CentreParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
    outputs = ("final",)
    metrics = (Metric("train_loss", "train loss at the centre", ".4f"), Metric("test_loss", "test loss", ".4f"))

    def run(self, ctx: UnitContext, p: CentreParams) -> None:
        import math as _math

        from ...workers.interpolation import interpolate_state, reestimate_batchnorm
        from ...workers.models import has_batchnorm
        from ...workers.training import evaluate_batches

        data = load_data(ctx, p.data)
        model = build_for(p.model, data, ctx.device)
        if p.source == "point":
            state = ctx.input_tensors("a")
        elif p.source == "checkpoint":
            recipe = ctx.input_params("a").recipe
            steps = p.epoch * _math.ceil(data.n_train / recipe.batch_size)  # the train kind's BatchStream epochs
            state = ctx.input_tensors("a", f"point:{steps}")
        elif p.source == "pivot":
            from ...workers.autoneb import neb

            pivots = ctx.input_tensors("a")["pivots"]
            if p.pivot is None or p.pivot >= pivots.shape[0]:
                raise ValueError(f"pivot: {p.pivot} is not an index of the path's {pivots.shape[0]} pivots")
            template = {k: v.to(ctx.device) for k, v in ctx.input_final_state("template").items()}
            state = neb.unflatten_state(pivots[p.pivot].to(ctx.device), neb.state_layout(model), template)
        else:
            sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
            sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
            state = interpolate_state(sa, sb, float(p.alpha if p.alpha is not None else 0.5))
        model.load_state_dict({k: v.to(ctx.device) for k, v in state.items()})
        if p.source == "interpolation" and p.reestimate_bn and has_batchnorm(model):
            reestimate_batchnorm(model, data.eval_batches("train", 256))
        tl, ta = evaluate_batches(model, data.eval_batches("train"))
        vl, va = evaluate_batches(model, data.eval_batches("test"))
        ctx.commit(
            {"source": p.source, "seed": p.seed, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va},
            final=on_cpu(model.state_dict()),
        )
