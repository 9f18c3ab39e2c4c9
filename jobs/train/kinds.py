"""Stage and unit kind ``train``: one seed of a model trained to a mode, with train/test loss and accuracy per epoch."""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import Field, model_serializer

from ..base import Figure, Metric, Ref, Resources, SimpleStage, StageParams, UnitDraft, UnitKind, point_key
from ..common.loop import Segment, TrainingState, run_segments
from ..common.params import DataParams, ModelParams, ModeParams, TrainRecipe, build_for, load_data, mode_data_problem

MEMBER_OUTPUT = "member.{seed}"  # the tensor set of a group leader holding one other member's mode


class TrainStage(StageParams):
    seeds: list[int] | None = Field(default=None, description="seeds of this stage; default: study.seeds")
    vectorize: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="train K seeds as one batched model (torch.func.vmap); 1 or unset: each seed alone",
    )


class TrainParams(ModeParams):
    """A mode's training. With ``vectorize`` set, the unit is one seed of a group of up to K seeds trained together:
    the group's *leader* (its first seed; ``group`` lists the group's seeds) trains them all as one batched model,
    each other *member* takes its mode, rows and result from the leader (input ``group``)."""

    recipe: TrainRecipe
    vectorize: int | None = None
    group: list[int] | None = None  # the leader's only: the seeds trained together, itself first

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler) -> dict[str, Any]:
        out = handler(self)
        for key in ("vectorize", "group"):
            if out.get(key) is None:
                out.pop(key, None)  # unset: the unit's content (and id) is that of a plain train unit
        return out


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

    def resources(self, params: TrainParams) -> Resources:
        if params.vectorize is not None and params.group is None:  # a member: copies its mode from the leader
            return Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
        if params.group is not None:  # a leader trains len(group) seeds
            r = self.default_resources
            k = len(params.group)
            return Resources(r.cpus, r.gpus, r.mem_gb + 0.25 * k, min(r.time_min * k, 2880), r.resource_class)
        return self.default_resources

    def run(self, ctx, p: TrainParams) -> None:
        if p.group is not None:
            return _run_group(ctx, p)
        if p.vectorize is not None:
            return _run_member(ctx, p)
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.training import evaluate_batches, set_lr, set_precision, train_step

        recipe = p.recipe
        amp = set_precision(ctx.device, recipe.precision)
        data = load_data(ctx, p.data)
        torch.manual_seed(derive_seed("init", p.seed))
        model = build_for(p.model, data, ctx.device)
        optimizer = _optimizer(model.parameters(), recipe)
        schedule = _schedule(recipe)
        stream = BatchStream(data, recipe.batch_size, p.seed, augment=recipe.augment)
        spe = stream.steps_per_epoch
        total = recipe.epochs * spe

        def eval_row(epoch: int, step: int) -> dict:
            with amp() if amp is not None else contextlib.nullcontext():
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
                if amp is None:
                    losses.append(train_step(model, optimizer, x, y))
                else:
                    with amp():
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


def _optimizer(params, recipe: TrainRecipe):
    """The recipe's optimizer over ``params`` (a plain model's or a vectorized group's stacked parameters)."""
    from ...workers.training import make_optimizer

    return make_optimizer(
        params,
        recipe.optimizer,
        recipe.lr,
        recipe.momentum,
        recipe.weight_decay,
        tuple(recipe.betas),
        nesterov=recipe.nesterov,
    )


def _schedule(recipe: TrainRecipe):
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


def _run_group(ctx, p: TrainParams) -> None:
    """The leader of a vectorized group: its seeds trained as one batched model. Each seed is initialised and fed
    exactly as a plain train unit of that seed (init from (init, seed), epoch order from (seed, e), augmentation
    from (seed, step)); only the kernels' rounding differs. Its own rows go to ``steps``/``evals``, the other
    members' to ``member_steps``/``member_evals`` (with their ``seed``); their modes are its tensor sets
    ``member.<seed>`` and their results its result's ``members``."""
    import torch

    from ...workers.data import BatchStream, derive_seed
    from ...workers.training import set_lr, set_precision
    from ...workers.vectorize import StackedModels, stacked_evaluate, stacked_train_step

    assert p.group is not None and p.group[0] == p.seed
    recipe, seeds = p.recipe, list(p.group)
    amp = set_precision(ctx.device, recipe.precision)
    data = load_data(ctx, p.data)
    models = []
    for s in seeds:
        torch.manual_seed(derive_seed("init", s))
        models.append(build_for(p.model, data, ctx.device))
    model = StackedModels(models)
    del models
    optimizer = _optimizer(model.parameters(), recipe)
    schedule = _schedule(recipe)
    streams = [BatchStream(data, recipe.batch_size, s, augment=recipe.augment) for s in seeds]
    spe = streams[0].steps_per_epoch
    total = recipe.epochs * spe

    def eval_rows(epoch: int, step: int) -> list[dict]:
        train = stacked_evaluate(model, data.eval_batches("train"), amp)
        test = stacked_evaluate(model, data.eval_batches("test"), amp)
        return [
            {"epoch": epoch, "step": step, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}
            for (tl, ta), (vl, va) in zip(train, test)
        ]

    def split(rows_per_seed: list[list[dict]]) -> tuple[list[dict], list[dict]]:
        members = [{"seed": s, **r} for s, rows in zip(seeds[1:], rows_per_seed[1:]) for r in rows]
        return rows_per_seed[0], members

    def segment(start: int, end: int) -> Segment:
        evals: list[list[dict]] = [[row] for row in eval_rows(0, 0)] if start == 0 else [[] for _ in seeds]
        losses, lrs = [], []
        for s in range(start, end):
            lr = schedule.lr_at(s, total, spe)
            set_lr(optimizer, lr)
            batches = [stream.batch(s) for stream in streams]
            x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
            losses.append(stacked_train_step(model, optimizer, x, y, amp))
            lrs.append(lr)
            if (s + 1) % spe == 0:
                epoch = (s + 1) // spe
                if epoch % recipe.eval_every == 0 or epoch == recipe.epochs:
                    for seed_evals, row in zip(evals, eval_rows(epoch, s + 1)):
                        seed_evals.append(row)
        batch_losses = torch.stack(losses).double().cpu().T.tolist()  # per seed: the segment's losses
        steps = [
            [{"step": s, "epoch": s // spe, "lr": lr, "loss": loss} for s, lr, loss in zip(range(start, end), lrs, ls)]
            for ls in batch_losses
        ]
        own_steps, member_steps = split(steps)
        own_evals, member_evals = split(evals)
        return Segment(
            {"steps": own_steps, "evals": own_evals, "member_steps": member_steps, "member_evals": member_evals},
            info={"epoch": end // spe, "loss": batch_losses[0][-1], "seeds": len(seeds)},
        )

    run_segments(ctx, total, recipe.segment_steps, TrainingState(model, optimizer, ctx.device), segment)
    finals = eval_rows(recipe.epochs, total)
    results = [
        {
            "seed": s,
            "steps": total,
            "final_train_loss": last["train_loss"],
            "final_train_acc": last["train_acc"],
            "final_test_loss": last["test_loss"],
            "final_test_acc": last["test_acc"],
            "vectorize": p.vectorize,
        }
        for s, last in zip(seeds, finals)
    ]
    ctx.commit(
        {**results[0], "group": seeds, "members": {str(r["seed"]): r for r in results[1:]}},
        final=model.member_state(0),
        outputs={MEMBER_OUTPUT.format(seed=s): model.member_state(i) for i, s in enumerate(seeds) if i > 0},
    )


def _run_member(ctx, p: TrainParams) -> None:
    """A member of a vectorized group: its mode, rows and result as the group's leader committed them."""
    import pyarrow.compute as pc

    leader = ctx.input_result("group")
    result = leader["members"][str(p.seed)]
    if ctx.committed_segments() == 0:
        tables = {}
        for table in ("steps", "evals"):
            rows = ctx.input_rows("group", f"member_{table}")
            if rows is None:
                raise RuntimeError(f"the group's leader has no member_{table} rows")
            mine = rows.filter(pc.equal(rows["seed"], p.seed)).drop_columns(["seed"])
            tables[table] = mine.to_pylist()
        ctx.write_segment(0, tables, stop=False)  # the commit follows
    ctx.commit(result, final=ctx.input_tensors("group"))


class TrainStageKind(SimpleStage):
    name = "train"
    Table = TrainStage
    unit_kinds = ("train",)

    def validate(self, table, study, stages):
        seeds = table.seeds
        if seeds is not None and any(s < 0 for s in seeds):
            return [("seeds", seeds, f"seeds are integers ≥ 0 ({min(seeds)} is not)")]
        if seeds is not None and len(set(seeds)) != len(seeds):
            dup = sorted({s for s in seeds if seeds.count(s) > 1})
            return [("seeds", seeds, f"distinct seeds; {dup} given twice")]
        if (table.vectorize or 1) > 1 and study.train.get("checkpoint_epochs"):
            return [
                (
                    "vectorize",
                    table.vectorize,
                    "not with train.checkpoint_epochs (a vectorized group stores no epoch checkpoints); "
                    "leave vectorize unset for a study whose landscape centres are training checkpoints",
                )
            ]
        return []

    def drafts(self, table: TrainStage, study, view) -> list[UnitDraft]:
        seeds = table.seeds if table.seeds is not None else list(study.seeds)
        model, data, recipe = (
            ModelParams.model_validate(study.model),
            DataParams.model_validate(study.data),
            TrainRecipe.model_validate(study.train),
        )
        k = table.vectorize or 1
        if k == 1:
            return [
                UnitDraft("train", TrainParams(seed=s, model=model, data=data, recipe=recipe), {}, f"seed={s}")
                for s in seeds
            ]
        drafts = []
        for first in range(0, len(seeds), k):
            group = seeds[first : first + k]
            leader = UnitDraft(
                "train",
                TrainParams(seed=group[0], model=model, data=data, recipe=recipe, vectorize=k, group=group),
                {},
                f"seed={group[0]}",
            )
            drafts.append(leader)
            for s in group[1:]:
                member = TrainParams(seed=s, model=model, data=data, recipe=recipe, vectorize=k)
                ref = Ref(leader, MEMBER_OUTPUT.format(seed=s))
                drafts.append(UnitDraft("train", member, {"group": ref}, f"seed={s}"))
        return drafts

    def check_data(self, study, data_root):
        return mode_data_problem(study.data, data_root)
