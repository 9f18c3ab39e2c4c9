"""Stage and unit kind ``train``: one seed of a model trained to a mode, with train/test loss and accuracy per epoch."""

from __future__ import annotations

from pydantic import Field

from .base import Figure, Metric, Resources, SimpleStage, StageParams, UnitDraft, UnitKind, point_key
from .common import DataParams, ModelParams, ModeParams, TrainRecipe, build_for, load_data, mode_data_problem
from .loop import Segment, TrainingState, run_segments


class TrainStage(StageParams):
    seeds: list[int] | None = Field(default=None, description="seeds of this stage; default: study.seeds")


class TrainParams(ModeParams):
    recipe: TrainRecipe


class TrainUnit(UnitKind):
    name = "train"
    version = 1
    Params = TrainParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=120, resource_class="train")
    outputs = ("final",)
    metrics = (
        Metric("final_train_loss", "train loss", ".4f"),
        Metric("final_test_loss", "test loss", ".4f"),
        Metric("final_train_acc", "train acc", ".4f", lower_is_better=False),
        Metric("final_test_acc", "test acc", ".4f", lower_is_better=False),
    )
    tables = ("steps", "evals")
    figures = (
        Figure(
            "loss",
            "Training curves: loss",
            table="evals",
            x="epoch",
            ys=("train_loss", "test_loss"),
            labels=("train loss", "test loss"),
            xlabel="epoch",
            ylabel="cross-entropy loss",
            logy=True,
        ),
        Figure(
            "accuracy",
            "Training curves: accuracy",
            table="evals",
            x="epoch",
            ys=("train_acc", "test_acc"),
            labels=("train accuracy", "test accuracy"),
            xlabel="epoch",
            ylabel="accuracy",
            ylim=(None, 1.01),
        ),
        Figure(
            "batch-loss",
            "Mini-batch training loss",
            table="steps",
            x="step",
            ys=("loss",),
            labels=("batch loss",),
            xlabel="optimizer step",
            ylabel="cross-entropy loss",
            logy=True,
            smooth=20,
        ),
    )

    def run(self, ctx, p: TrainParams) -> None:
        import torch

        from lowloss.workers.data import BatchStream, derive_seed
        from lowloss.workers.training import Schedule, evaluate_batches, make_optimizer, set_lr, train_step

        recipe = p.recipe
        data = load_data(ctx, p.data)
        torch.manual_seed(derive_seed("init", p.seed))
        model = build_for(p.model, data, ctx.device)
        optimizer = make_optimizer(
            model.parameters(),
            recipe.optimizer,
            recipe.lr,
            recipe.momentum,
            recipe.weight_decay,
            tuple(recipe.betas),
            nesterov=recipe.nesterov,
        )
        schedule = Schedule(
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
        stream = BatchStream(data, recipe.batch_size, p.seed, augment=recipe.augment)
        spe = stream.steps_per_epoch
        total = recipe.epochs * spe

        def eval_row(epoch: int, step: int) -> dict:
            tl, ta = evaluate_batches(model, data.eval_batches("train"))
            vl, va = evaluate_batches(model, data.eval_batches("test"))
            return {"epoch": epoch, "step": step, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}

        def segment(start: int, end: int) -> Segment:
            evals = [eval_row(0, 0)] if start == 0 else []
            losses, lrs = [], []
            points: dict = {}
            for s in range(start, end):
                lr = schedule.lr_at(s, total, spe)
                set_lr(optimizer, lr)
                x, y = stream.batch(s)
                losses.append(train_step(model, optimizer, x, y))
                lrs.append(lr)
                if (s + 1) % spe == 0:
                    epoch = (s + 1) // spe
                    if epoch in recipe.checkpoint_epochs:  # a training checkpoint, stored as the point at step s + 1
                        points.update({point_key(n, s + 1): t.detach().clone() for n, t in model.state_dict().items()})
                    if epoch % recipe.eval_every == 0 or epoch == recipe.epochs:
                        evals.append(eval_row(epoch, s + 1))
            batch_losses = torch.stack(losses).double().cpu().tolist()
            rows = [
                {"step": s, "epoch": s // spe, "lr": lr, "loss": loss}
                for s, lr, loss in zip(range(start, end), lrs, batch_losses)
            ]
            info = {"epoch": end // spe, "loss": batch_losses[-1]}
            return Segment({"steps": rows, "evals": evals}, points or None, info=info)

        run_segments(ctx, total, recipe.segment_steps, TrainingState(model, optimizer, ctx.device), segment)
        last = eval_row(recipe.epochs, total)
        ctx.commit(
            {
                "seed": p.seed,
                "steps": total,
                "final_train_loss": last["train_loss"],
                "final_train_acc": last["train_acc"],
                "final_test_loss": last["test_loss"],
                "final_test_acc": last["test_acc"],
            },
            final=model.state_dict(),
        )


class TrainStageKind(SimpleStage):
    name = "train"
    Table = TrainStage
    unit_kinds = ("train",)

    def validate(self, table, study, stages):
        seeds = table.seeds
        if seeds is not None and len(set(seeds)) != len(seeds):
            dup = sorted({s for s in seeds if seeds.count(s) > 1})
            return [("seeds", seeds, f"distinct seeds; {dup} given twice")]
        return []

    def drafts(self, table: TrainStage, study, view) -> list[UnitDraft]:
        seeds = table.seeds if table.seeds is not None else list(study.seeds)
        model, data, recipe = (
            ModelParams.model_validate(study.model),
            DataParams.model_validate(study.data),
            TrainRecipe.model_validate(study.train),
        )
        return [
            UnitDraft("train", TrainParams(seed=s, model=model, data=data, recipe=recipe), {}, f"seed={s}")
            for s in seeds
        ]

    def check_data(self, study, data_root):
        return mode_data_problem(study.data, data_root)
