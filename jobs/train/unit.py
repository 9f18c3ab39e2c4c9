"""Unit kind ``train``: one seed of a model trained to a mode (the recipe's optimizer and schedule over the seed's data
order), with train/test loss and accuracy per epoch, resumable segment by segment."""

from __future__ import annotations

import contextlib
from typing import Any

from ..base import Resources, TrainRecipe, UnitContext, UnitKind, point_key
from ..common.loop import Segment, TrainingState, run_segments
from ..common.running import build_for, load_data
from .figures import FIGURES, METRICS
from .params import TrainParams


def make_optimizer_for(params: Any, recipe: TrainRecipe) -> Any:
    """The recipe's optimizer over ``params`` (a plain model's or a vectorized group's stacked parameters)."""
    from ...workers.training import make_optimizer

    return make_optimizer(
        params,
        recipe.optimizer,
        recipe.lr,
        recipe.momentum,
        recipe.weight_decay,
        (recipe.betas[0], recipe.betas[1]),
        nesterov=recipe.nesterov,
    )


def schedule_for(recipe: TrainRecipe) -> Any:
    from ...workers.training import Schedule

    return Schedule(
        lr=recipe.lr,
        max_lr=recipe.max_lr,
        pct_start=recipe.pct_start,
        warmup_epochs=recipe.warmup_epochs,
        warmup_lr=recipe.warmup_lr,
        min_lr=recipe.min_lr,
        cooldown_epochs=recipe.cooldown_epochs,
        decay_steps=tuple(recipe.decay_steps),
        decay_factor=recipe.decay_factor,
        kind=recipe.schedule,
    )


def final_result(seed: int, steps: int, last: dict) -> dict:
    """A mode's result from its last evaluation."""
    return {
        "seed": seed,
        "steps": steps,
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_test_loss": last["test_loss"],
        "final_test_acc": last["test_acc"],
    }


class Training:
    """One seed trained by its recipe: its model, optimizer, schedule and batch stream, and what a segment does."""

    def __init__(self, ctx: UnitContext, p: TrainParams):
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.training import set_precision

        self.recipe = recipe = p.recipe
        self.amp = set_precision(ctx.device, recipe.precision)
        self.data = load_data(ctx, p.data)
        torch.manual_seed(derive_seed("init", p.seed))
        self.model = build_for(p.model, self.data, ctx.device)
        self.optimizer = make_optimizer_for(self.model.parameters(), recipe)
        self.schedule = schedule_for(recipe)
        self.stream = BatchStream(self.data, recipe.batch_size, p.seed, augment=recipe.augment)
        self.spe = self.stream.steps_per_epoch
        self.total = recipe.epochs * self.spe

    def eval_row(self, epoch: int, step: int) -> dict:
        from ...workers.training import evaluate_batches

        with self.amp() if self.amp is not None else contextlib.nullcontext():
            tl, ta = evaluate_batches(self.model, self.data.eval_batches("train"))
            vl, va = evaluate_batches(self.model, self.data.eval_batches("test"))
        return {"epoch": epoch, "step": step, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}

    def step(self, s: int) -> tuple[float, Any]:
        """Optimizer step ``s``: (its learning rate, its batch loss as a tensor)."""
        from ...workers.training import set_lr, train_step

        lr = self.schedule.lr_at(s, self.total, self.spe)
        set_lr(self.optimizer, lr)
        x, y = self.stream.batch(s)
        if self.amp is None:
            return lr, train_step(self.model, self.optimizer, x, y)
        with self.amp():
            return lr, train_step(self.model, self.optimizer, x, y)

    def segment(self, start: int, end: int) -> Segment:
        import torch

        evals = [self.eval_row(0, 0)] if start == 0 else []
        losses, lrs = [], []
        points: dict = {}
        for s in range(start, end):
            lr, loss = self.step(s)
            losses.append(loss)
            lrs.append(lr)
            if (s + 1) % self.spe == 0:
                epoch = (s + 1) // self.spe
                if epoch in self.recipe.checkpoint_epochs:  # a training checkpoint, stored as the point at step s + 1
                    points.update({point_key(n, s + 1): t.detach().clone() for n, t in self.model.state_dict().items()})
                if epoch % self.recipe.eval_every == 0 or epoch == self.recipe.epochs:
                    evals.append(self.eval_row(epoch, s + 1))
        batch_losses = torch.stack(losses).double().cpu().tolist()
        rows = [
            {"step": s, "epoch": s // self.spe, "lr": lr, "loss": loss}
            for s, lr, loss in zip(range(start, end), lrs, batch_losses)
        ]
        info = {"epoch": end // self.spe, "loss": batch_losses[-1]}
        return Segment({"steps": rows, "evals": evals}, points or None, info=info)


class TrainUnit(UnitKind):
    name = "train"
    version = 1
    Params = TrainParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=120, resource_class="train")
    outputs = ("final",)
    metrics = METRICS
    tables = ("steps", "evals")
    figures = FIGURES

    def resources(self, params: TrainParams) -> Resources:
        if params.vectorize is not None and params.group is None:  # a member: copies its mode from the leader
            return Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
        if params.group is not None:  # a leader trains len(group) seeds
            r = self.default_resources
            k = len(params.group)
            return Resources(r.cpus, r.gpus, r.mem_gb + 0.25 * k, min(r.time_min * k, 2880), r.resource_class)
        return self.default_resources

    def run(self, ctx: UnitContext, p: TrainParams) -> None:
        from .group import run_group, run_member

        if p.group is not None:
            return run_group(ctx, p)
        if p.vectorize is not None:
            return run_member(ctx, p)
        training = Training(ctx, p)
        state = TrainingState(training.model, training.optimizer, ctx.device)
        run_segments(ctx, training.total, p.recipe.segment_steps, state, training.segment)
        last = training.eval_row(p.recipe.epochs, training.total)
        ctx.commit(final_result(p.seed, training.total, last), final=training.model.state_dict())
