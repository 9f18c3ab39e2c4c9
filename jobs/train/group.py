"""Many seeds at once (``vectorize = K``): a group's leader trains its seeds as one batched model, each other member
takes its mode, rows and result from the leader.

Each seed is initialised and fed exactly as a plain train unit of that seed (init from (init, seed), epoch order from
(seed, e), augmentation from (seed, step)); only the kernels' rounding differs. The leader's own rows go to
``steps``/``evals``, the other members' to ``member_steps``/``member_evals`` (with their ``seed``); their modes are
its tensor sets ``member.<seed>`` and their results its result's ``members``."""

from __future__ import annotations

from typing import Any

from ..base import UnitContext
from ..common.loop import Segment, TrainingState, run_segments
from ..common.running import build_for, load_data
from .params import MEMBER_OUTPUT, TrainParams
from .unit import final_result, make_optimizer_for, schedule_for


class GroupTraining:
    """A group's seeds as one batched model: their stacked parameters, one optimizer, one stream per seed."""

    def __init__(self, ctx: UnitContext, p: TrainParams):
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.training import set_precision
        from ...workers.vectorize import StackedModels

        assert p.group is not None and p.group[0] == p.seed
        self.recipe, self.seeds = recipe, seeds = p.recipe, list(p.group)
        self.amp = set_precision(ctx.device, recipe.precision)
        self.data = load_data(ctx, p.data)
        models = []
        for s in seeds:
            torch.manual_seed(derive_seed("init", s))
            models.append(build_for(p.model, self.data, ctx.device))
        self.model = StackedModels(models)
        del models
        self.optimizer = make_optimizer_for(self.model.parameters(), recipe)
        self.schedule = schedule_for(recipe)
        self.streams = [BatchStream(self.data, recipe.batch_size, s, augment=recipe.augment) for s in seeds]
        self.spe = self.streams[0].steps_per_epoch
        self.total = recipe.epochs * self.spe

    def eval_rows(self, epoch: int, step: int) -> list[dict]:
        from ...workers.vectorize import stacked_evaluate

        train = stacked_evaluate(self.model, self.data.eval_batches("train"), self.amp)
        test = stacked_evaluate(self.model, self.data.eval_batches("test"), self.amp)
        return [
            {"epoch": epoch, "step": step, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}
            for (tl, ta), (vl, va) in zip(train, test)
        ]

    def split(self, rows_per_seed: list[list[dict]]) -> tuple[list[dict], list[dict]]:
        """(the leader's rows, the other members' rows with their seed)."""
        members = [{"seed": s, **r} for s, rows in zip(self.seeds[1:], rows_per_seed[1:]) for r in rows]
        return rows_per_seed[0], members

    def step(self, s: int) -> tuple[float, Any]:
        import torch

        from ...workers.training import set_lr
        from ...workers.vectorize import stacked_train_step

        lr = self.schedule.lr_at(s, self.total, self.spe)
        set_lr(self.optimizer, lr)
        batches = [stream.batch(s) for stream in self.streams]
        x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        return lr, stacked_train_step(self.model, self.optimizer, x, y, self.amp)

    def segment(self, start: int, end: int) -> Segment:
        import torch

        evals: list[list[dict]] = [[row] for row in self.eval_rows(0, 0)] if start == 0 else [[] for _ in self.seeds]
        losses, lrs = [], []
        for s in range(start, end):
            lr, loss = self.step(s)
            losses.append(loss)
            lrs.append(lr)
            epoch = (s + 1) // self.spe
            if (s + 1) % self.spe == 0 and (epoch % self.recipe.eval_every == 0 or epoch == self.recipe.epochs):
                for seed_evals, row in zip(evals, self.eval_rows(epoch, s + 1)):
                    seed_evals.append(row)
        batch_losses = torch.stack(losses).double().cpu().T.tolist()  # per seed: the segment's losses
        steps = [
            [
                {"step": s, "epoch": s // self.spe, "lr": lr, "loss": loss}
                for s, lr, loss in zip(range(start, end), lrs, ls)
            ]
            for ls in batch_losses
        ]
        own_steps, member_steps = self.split(steps)
        own_evals, member_evals = self.split(evals)
        return Segment(
            {"steps": own_steps, "evals": own_evals, "member_steps": member_steps, "member_evals": member_evals},
            info={"epoch": end // self.spe, "loss": batch_losses[0][-1], "seeds": len(self.seeds)},
        )


def run_group(ctx: UnitContext, p: TrainParams) -> None:
    """The leader of a vectorized group: its seeds trained as one batched model (see the module docstring)."""
    group = GroupTraining(ctx, p)
    state = TrainingState(group.model, group.optimizer, ctx.device)
    run_segments(ctx, group.total, p.recipe.segment_steps, state, group.segment)
    finals = group.eval_rows(p.recipe.epochs, group.total)
    results = [{**final_result(s, group.total, last), "vectorize": p.vectorize} for s, last in zip(group.seeds, finals)]
    ctx.commit(
        {**results[0], "group": group.seeds, "members": {str(r["seed"]): r for r in results[1:]}},
        final=group.model.member_state(0),
        outputs={MEMBER_OUTPUT.format(seed=s): group.model.member_state(i) for i, s in enumerate(group.seeds) if i > 0},
    )


def run_member(ctx: UnitContext, p: TrainParams) -> None:
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
