"""Unit kind ``train``: one seed of a model trained to a mode, with train/test loss and accuracy per epoch."""
from __future__ import annotations

import time

from pydantic import Field

from .base import Figure, Kind, Metric, Resources, StageParams, StudyContext, UnitDraft, Upstream


class TrainStage(StageParams):
    seeds: list[int] | None = Field(default=None, description="seeds of this stage; default: study.seeds")


class TrainKind(Kind):
    name = "train"
    version = 1
    Params = TrainStage
    resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=120, resource_class="train")
    produces_mode = True
    metrics = (
        Metric("final_train_loss", "train loss", ".4f"),
        Metric("final_test_loss", "test loss", ".4f"),
        Metric("final_train_acc", "train acc", ".4f", lower_is_better=False),
        Metric("final_test_acc", "test acc", ".4f", lower_is_better=False),
    )
    tables = ("steps", "evals")
    figures = (
        Figure("loss", "Training curves: loss", table="evals", x="epoch", ys=("train_loss", "test_loss"),
               labels=("train loss", "test loss"), xlabel="epoch", ylabel="cross-entropy loss", logy=True),
        Figure("accuracy", "Training curves: accuracy", table="evals", x="epoch", ys=("train_acc", "test_acc"),
               labels=("train accuracy", "test accuracy"), xlabel="epoch", ylabel="accuracy", ylim=(None, 1.01)),
        Figure("batch-loss", "Mini-batch training loss", table="steps", x="step", ys=("loss",), labels=("batch loss",),
               xlabel="optimizer step", ylabel="cross-entropy loss", logy=True, smooth=20),
    )

    def validate(self, params, study, stages):
        seeds = params.seeds
        if seeds is not None and len(set(seeds)) != len(seeds):
            dup = sorted({s for s in seeds if seeds.count(s) > 1})
            return [("seeds", seeds, f"distinct seeds; {dup} given twice")]
        return []

    def expand(self, params: TrainStage, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        seeds = params.seeds if params.seeds is not None else list(study.seeds)
        return [UnitDraft(self.name, {"seed": s, "model": study.model, "data": study.data,
                                      "recipe": study.train}, {}, f"seed={s}") for s in seeds]

    def check_data(self, study, data_root):
        from lowloss.workers.data import check_data_root

        return check_data_root(study.data["dataset"], data_root)

    def run(self, ctx) -> None:
        import torch

        from lowloss.workers.data import BatchStream, derive_seed, load_dataset
        from lowloss.workers.models import build_model
        from lowloss.workers.training import (Schedule, evaluate_batches, make_optimizer, optimizer_state_from_tensors,
                                              optimizer_state_to_tensors, restore_rng_state, rng_state_tensors,
                                              set_lr, train_step)

        p, recipe = ctx.params, ctx.params["recipe"]
        seed = p["seed"]
        data = load_dataset(p["data"]["dataset"], ctx.data_root, p["data"].get("image_size")).to(ctx.device)
        torch.manual_seed(derive_seed("init", seed))
        model = build_model(p["model"]["name"], data.num_classes, data.in_channels, data.image_size).to(ctx.device)
        optimizer = make_optimizer(model.parameters(), recipe["optimizer"], recipe["lr"], recipe["momentum"],
                                   recipe["weight_decay"], tuple(recipe["betas"]))
        schedule = Schedule(**{k: recipe[k] for k in ("lr", "max_lr", "pct_start", "warmup_epochs", "warmup_lr",
                                                       "min_lr", "cooldown_epochs")}, kind=recipe["schedule"])
        stream = BatchStream(data, recipe["batch_size"], seed, augment=recipe["augment"])
        spe = stream.steps_per_epoch
        total = recipe["epochs"] * spe
        seg_steps = recipe["segment_steps"]

        def eval_row(epoch: int, step: int) -> dict:
            tl, ta = evaluate_batches(model, data.eval_batches("train"))
            vl, va = evaluate_batches(model, data.eval_batches("test"))
            return {"epoch": epoch, "step": step, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}

        resumed = ctx.read_checkpoint()
        if resumed is not None:
            tensors, meta, last_segment = resumed
            model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
            optimizer_state_from_tensors(optimizer, tensors, meta["optimizer"])
            restore_rng_state(tensors, ctx.device)
            step, segment = meta["step"], last_segment + 1
            ctx.log(f"resumed at step {step} (segment {segment})")
        else:
            step, segment = 0, 0
        pending_evals = [eval_row(0, 0)] if step == 0 else []

        while step < total:
            end = min(step + seg_steps, total)
            losses, lrs, t0 = [], [], time.time()
            evals = pending_evals
            for s in range(step, end):
                lr = schedule.lr_at(s, total, spe)
                set_lr(optimizer, lr)
                x, y = stream.batch(s)
                losses.append(train_step(model, optimizer, x, y))
                lrs.append(lr)
                if (s + 1) % spe == 0:
                    epoch = (s + 1) // spe
                    if epoch % recipe["eval_every"] == 0 or epoch == recipe["epochs"]:
                        evals.append(eval_row(epoch, s + 1))
            batch_losses = torch.stack(losses).double().cpu().tolist()
            rows = [{"step": s, "epoch": s // spe, "lr": lr, "loss": loss}
                    for s, lr, loss in zip(range(step, end), lrs, batch_losses)]
            ctx.write_segment(segment, {"steps": rows, "evals": evals})
            pending_evals = []
            step = end
            if step < total and ctx.checkpoint_due():
                tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
                opt_tensors, opt_meta = optimizer_state_to_tensors(optimizer)
                tensors.update(opt_tensors)
                tensors.update(rng_state_tensors(ctx.device))
                ctx.write_checkpoint(segment, tensors, {"step": step, "optimizer": opt_meta})
            ctx.progress(step, total, epoch=step // spe, loss=batch_losses[-1],
                         steps_per_s=len(rows) / max(time.time() - t0, 1e-9))
            segment += 1

        last = eval_row(recipe["epochs"], total)
        result = {"seed": seed, "steps": total, "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"],
                  "final_test_loss": last["test_loss"], "final_test_acc": last["test_acc"]}
        ctx.commit(result, final=model.state_dict())
