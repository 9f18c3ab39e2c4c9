"""Unit kinds used only by the tests, loaded through the LOWLOSS_PLUGINS mechanism users have for their own kinds."""

from __future__ import annotations

import time

from pydantic import Field

from lowloss.jobs import (
    Metric,
    Plan,
    SimpleStage,
    StageKind,
    StageParams,
    UnitDraft,
    UnitKind,
    UnitParams,
    register_kind,
)
from lowloss.jobs.base import Figure, Verdict, point_key


class CrashyStage(StageParams):
    seeds: list[int] = [0]
    fail_attempts: int = Field(default=1, ge=0, description="attempts that raise before one succeeds")


class CrashyParams(UnitParams):
    seed: int
    fail_attempts: int


class CrashyUnit(UnitKind):
    """Raises inside the unit on its first ``fail_attempts`` attempts, then commits a tiny result."""

    name = "crashy"
    Params = CrashyParams
    needs_torch = False
    metrics = (Metric("value", "value"),)

    def run(self, ctx, p):
        ctx.write_segment(0, {"rows": [{"attempt_seen": 0, "seed": p.seed}]})
        if ctx.attempt <= p.fail_attempts:
            raise RuntimeError(f"boom on attempt {ctx.attempt}")
        ctx.commit({"value": float(p.seed)})


class CrashyStageKind(SimpleStage):
    name = "crashy"
    Table = CrashyStage
    unit_kinds = ("crashy",)

    def drafts(self, table, study, view):
        return [
            UnitDraft("crashy", CrashyParams(seed=s, fail_attempts=table.fail_attempts), {}, f"seed={s}")
            for s in table.seeds
        ]


register_kind(CrashyUnit())
register_kind(CrashyStageKind())


# ---------------------------------------------------------------------- grow: a planner that reads its own results


class GrowStage(StageParams):
    """Adds one unit at a time, each from the previous one's result, until a result reaches ``target``."""

    start: float = 1.0
    factor: float = Field(default=2.0, gt=1)
    target: float = 20.0
    pause_s: float = Field(default=0.0, ge=0, description="sleep inside each unit")
    fail_round: int = Field(default=-1, description="the round whose unit raises")
    wait_on_failures: bool = Field(default=False, description="a buggy planner: waits for a failed unit's result")


class GrowParams(UnitParams):
    round: int
    value: float
    pause_s: float = 0.0
    fail: bool = False


class GrowUnit(UnitKind):
    name = "grow"
    Params = GrowParams
    needs_torch = False
    metrics = (Metric("value", "value"),)

    def run(self, ctx, p):
        time.sleep(p.pause_s)
        if p.fail:
            raise RuntimeError(f"round {p.round} fails by request")
        previous = ctx.input_result("previous")["value"] if p.round > 0 else None
        ctx.write_segment(0, {"rows": [{"round": p.round, "value": p.value, "previous": previous}]})
        ctx.commit({"round": p.round, "value": p.value})


class GrowStageKind(StageKind):
    name = "grow"
    Table = GrowStage
    unit_kinds = ("grow",)

    def plan(self, table, study, view):
        own = view.units()
        drafts = [UnitDraft("grow", u.params, dict(u.inputs), u.label) for u in own]
        if not own:
            drafts.append(
                UnitDraft(
                    "grow",
                    GrowParams(round=0, value=table.start, pause_s=table.pause_s, fail=table.fail_round == 0),
                    {},
                    "round=0",
                )
            )
            return Plan(drafts, open=True, note="round 0 planned")
        last = own[-1]
        result = view.result(last.id)
        if result is None:
            gave_up = view.failed(last.id) and not table.wait_on_failures
            return Plan(drafts, open=not gave_up, note=f"{len(own)} rounds, waiting for round {len(own) - 1}")
        if result["value"] >= table.target:
            return Plan(drafts, open=False, note=f"reached {result['value']} in {len(own)} rounds")
        nxt = GrowParams(
            round=result["round"] + 1,
            value=result["value"] * table.factor,
            pause_s=table.pause_s,
            fail=table.fail_round == result["round"] + 1,
        )
        drafts.append(UnitDraft("grow", nxt, {"previous": last.id}, f"round={nxt.round}"))
        return Plan(drafts, open=True, note=f"{len(own) + 1} rounds planned")


register_kind(GrowUnit())
register_kind(GrowStageKind())


# ---------------------------------------------------------------------- toy_path: path-style rows and points

TOY_TENSORS = {"layer1.weight": (8, 4), "layer1.bias": (8,), "layer2.weight": (3, 8), "layer2.bias": (3,)}


class ToyPathStage(StageParams):
    seeds: list[int] = [0, 1, 2]
    lrs: list[float] = [0.05]
    iterations: int = Field(default=120, ge=1)
    segment_iterations: int = Field(default=40, ge=1)
    point_stride: int = Field(default=5, ge=1)
    eval_every: int = Field(default=10, ge=1)
    step_fraction: float = 0.04
    threshold: float = 0.3
    pause_s: float = Field(default=0.0, ge=0, description="sleep after each segment (to observe a running study)")
    phases: int = Field(default=1, ge=1, description="units per path, each continuing the previous one (input start)")


def _toy_data():
    import torch

    g = torch.Generator().manual_seed(12345)
    x_train, x_test = torch.randn(128, 4, generator=g), torch.randn(128, 4, generator=g)
    teacher = {k: torch.randn(*s, generator=g) for k, s in TOY_TENSORS.items()}
    return (x_train, _toy_forward(teacher, x_train).argmax(1)), (x_test, _toy_forward(teacher, x_test).argmax(1))


def _toy_forward(p, x):
    import torch

    return torch.tanh(x @ p["layer1.weight"].T + p["layer1.bias"]) @ p["layer2.weight"].T + p["layer2.bias"]


def _toy_loss(p, data):
    import torch.nn.functional as F

    x, y = data
    logits = _toy_forward(p, x)
    return F.cross_entropy(logits, y), (logits.argmax(1) == y).double().mean().item()


def _toy_mode(seed: int, train):
    """A low-loss point of the toy network: full-batch gradient descent from an init drawn from ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    p = {k: (torch.randn(*s, generator=g) * 0.5).requires_grad_() for k, s in TOY_TENSORS.items()}
    for _ in range(300):
        loss, _ = _toy_loss(p, train)
        grads = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            for t, gr in zip(p.values(), grads):
                t -= 0.5 * gr
    return {k: v.detach() for k, v in p.items()}


def _draw_variance(ax, data):
    """A kind's own figure (style "custom"): data is {unit label: pyarrow.Table of the figure's table}."""
    for label, table in data.items():
        ax.plot(table.column("iteration").to_numpy(), table.column("var.layer1.weight").to_numpy(), label=label, lw=1)
    ax.legend(fontsize=7, ncol=2)


class ToyPathParams(UnitParams):
    seed: int
    lr: float
    iterations: int
    segment_iterations: int
    point_stride: int
    eval_every: int
    step_fraction: float
    threshold: float
    pause_s: float
    phase: int | None = None
    phases: int | None = None

    def canonical(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


class ToyPathKind(UnitKind):
    """A small LLPF-shaped path between two low-loss points of a tiny real network: each iteration moves every layer a
    fraction of the way to the destination D, then takes SGD steps on the training loss. Rows like an LLPF M2M unit's
    (iteration, loss, rolling_loss, dist.<tensor>, var.<tensor>, step, lr, test_loss/test_acc every eval_every
    iterations, null otherwise) and points every point_stride iterations."""

    name = "toy_path"
    Params = ToyPathParams
    outputs = ("final",)
    tables = ("path",)
    metrics = (
        Metric("max_train_loss", "max train loss"),
        Metric("final_dist", "final layer distance to D"),
        Metric("test_loss_start", "test loss at start"),
        Metric("test_loss_end", "test loss at end"),
        Metric("test_acc_end", "test acc at end", lower_is_better=False),
    )
    verdicts = (
        Verdict("below_threshold", "train loss below threshold all along"),
        Verdict("reached", "reached D (distance < 0.1)"),
        Verdict("test_recovered", "test loss back to its start (±0.05)"),
    )
    figures = (
        Figure(
            "loss",
            "Path: training loss",
            table="path",
            x="iteration",
            ys=("loss",),
            labels=("training loss",),
            xlabel="iteration",
            ylabel="cross-entropy loss (train)",
            logy=True,
            smooth=10,
            chain="start",
            threshold_param="threshold",
            threshold_label="threshold of the verdict",
        ),
        Figure(
            "distance",
            "Path: layer-wise L2 distance to the destination D",
            table="path",
            x="iteration",
            ys=("dist.*",),
            labels=("layer",),
            xlabel="iteration",
            ylabel="‖P − D‖₂ of the layer",
            logy=True,
            smooth=10,
            chain="start",
        ),
        Figure(
            "test",
            "Path: test loss and accuracy",
            table="path",
            x="iteration",
            ys=("test_loss",),
            labels=("test loss",),
            y2s=("test_acc",),
            y2labels=("test accuracy",),
            xlabel="iteration",
            ylabel="cross-entropy loss (test)",
            y2label="accuracy (test)",
            chain="start",
        ),
        Figure("pca", "Path points per layer", style="pca", chain="start"),
        Figure(
            "variance",
            "Path: variance of layer1.weight (one line per unit)",
            table="path",
            style="custom",
            xlabel="iteration",
            ylabel="variance of the layer's weights",
            draw=_draw_variance,
        ),
    )

    def run(self, ctx, p):
        _run_toy_path(ctx, p.canonical())


class ToyPathStageKind(SimpleStage):
    name = "toy_path"
    Table = ToyPathStage
    unit_kinds = ("toy_path",)

    def drafts(self, params, study, view):
        keys = (
            "iterations",
            "segment_iterations",
            "point_stride",
            "eval_every",
            "step_fraction",
            "threshold",
            "pause_s",
        )
        drafts = []
        for lr in params.lrs:
            for s in params.seeds:
                previous = None
                for k in range(1, params.phases + 1):  # phase k continues phase k-1 (like LLPF's chained phases)
                    extra = {"phase": k, "phases": params.phases} if params.phases > 1 else {}
                    previous = UnitDraft(
                        "toy_path",
                        {"seed": s, "lr": lr, **{n: getattr(params, n) for n in keys}, **extra},
                        {"start": previous} if previous else {},
                        f"seed={s} lr={lr}" + (f" phase={k}" if extra else ""),
                    )
                    drafts.append(previous)
        return drafts


def _run_toy_path(ctx, p: dict) -> None:
    if True:
        import torch

        train, test = _toy_data()
        dest = _toy_mode(p["seed"] + 1000, train)
        point = ctx.input_final_state("start") if p.get("phase", 1) > 1 else _toy_mode(p["seed"], train)
        g = torch.Generator().manual_seed(p["seed"] * 7919 + 1)
        losses, rows, points = [], [], {}
        done = ctx.committed_segments()
        for i in range(p["iterations"] + 1):
            if i > 0:  # LLPF Alg. 1 shape: Move toward D, then r = 2 training steps
                point = {k: v + p["step_fraction"] * (dest[k] - v) for k, v in point.items()}
                for _ in range(2):
                    idx = torch.randint(0, 128, (32,), generator=g)
                    q = {k: v.clone().requires_grad_() for k, v in point.items()}
                    loss, _ = _toy_loss(q, (train[0][idx], train[1][idx]))
                    grads = torch.autograd.grad(loss, list(q.values()))
                    point = {k: (v - p["lr"] * gr).detach() for (k, v), gr in zip(q.items(), grads)}
            with torch.no_grad():
                loss, _ = _toy_loss(point, train)
                losses.append(loss.item())
                row = {"iteration": i, "loss": losses[-1], "rolling_loss": sum(losses[-10:]) / len(losses[-10:])}
                row.update({f"dist.{k}": (point[k] - dest[k]).norm().item() for k in TOY_TENSORS})
                row.update({f"var.{k}": point[k].var().item() for k in TOY_TENSORS})
                row.update({"step": 2 * i, "lr": p["lr"], "test_loss": None, "test_acc": None})
                if i % p["eval_every"] == 0 or i == p["iterations"]:
                    tl, ta = _toy_loss(point, test)
                    row.update(test_loss=tl.item(), test_acc=ta)
            rows.append(row)
            if i % p["point_stride"] == 0 or i == p["iterations"]:
                points.update({point_key(k, i): v.clone() for k, v in point.items()})
            segment = i // p["segment_iterations"]
            if (i + 1) % p["segment_iterations"] == 0 or i == p["iterations"]:
                if segment >= done:
                    ctx.write_segment(segment, {"path": rows}, points)
                    time.sleep(p["pause_s"])
                rows, points = [], {}
        path = ctx.rows("path").to_pylist()
        tests = [r for r in path if r["test_loss"] is not None]
        final_dist = max(path[-1][f"dist.{k}"] for k in TOY_TENSORS)
        max_loss = max(r["loss"] for r in path)
        ctx.commit(
            {
                "seed": p["seed"],
                "lr": p["lr"],
                "max_train_loss": max_loss,
                "final_dist": final_dist,
                "test_loss_start": tests[0]["test_loss"],
                "test_loss_end": tests[-1]["test_loss"],
                "test_acc_end": tests[-1]["test_acc"],
                "below_threshold": max_loss < p["threshold"],
                "reached": final_dist < 0.1,
                "test_recovered": abs(tests[-1]["test_loss"] - tests[0]["test_loss"]) < 0.05,
            },
            final=point,
        )


register_kind(ToyPathKind())
register_kind(ToyPathStageKind())


# ---------------------------------------------------------------------- emit / consume: named outputs, points, rows


class EmitStage(StageParams):
    seeds: list[int] = [0, 1]
    fail_seeds: list[int] = []


class EmitParams(UnitParams):
    seed: int
    fail: bool = False


class EmitUnit(UnitKind):
    """Commits a tensor set ``directions``, its ``final`` state and two stored points (steps 1 and 2)."""

    name = "emit"
    Params = EmitParams
    outputs = ("final", "directions")
    needs_torch = False

    def run(self, ctx, p):
        import torch

        if p.fail:
            raise RuntimeError(f"emit seed {p.seed} fails by request")
        base = torch.arange(4, dtype=torch.float32) + p.seed
        ctx.write_segment(
            0, {"rows": [{"seed": p.seed, "step": s} for s in (1, 2)]}, {point_key("w", s): base * s for s in (1, 2)}
        )
        ctx.commit({"seed": p.seed}, final={"w": base}, outputs={"directions": {"d": -base}})


class ConsumeStage(StageParams):
    from_: list[str] = Field(alias="from")


class ConsumeParams(UnitParams):
    seeds: tuple[int, int]


class ConsumeUnit(UnitKind):
    """Reads, from two inputs of two stages, a named output, a stored point and committed rows."""

    name = "consume"
    Params = ConsumeParams
    needs_torch = False

    def run(self, ctx, p):
        d = ctx.input_tensors("dirs")["d"]
        point = ctx.input_tensors("point")["w"]
        final = ctx.input_final_state("dirs")["w"]
        rows = ctx.input_rows("point", "rows").to_pylist()
        steps = [s for s, _ in ctx.input_points("point")]
        ctx.commit(
            {
                "d_sum": float(d.sum()),
                "point_sum": float(point.sum()),
                "final_sum": float(final.sum()),
                "rows": len(rows),
                "point_steps": steps,
            }
        )


class ConsumeStageKind(StageKind):
    name = "consume"
    Table = ConsumeStage
    unit_kinds = ("consume",)
    needs_input_stage = True
    many_inputs = True

    def plan(self, table, study, view):
        first, second = table.from_
        if view.is_open(first) or view.is_open(second):
            return Plan([], open=True, note="waiting for its inputs")
        a, b = view.units(first)[0], view.units(second)[-1]
        from lowloss.jobs import Ref

        return Plan(
            [
                UnitDraft(
                    "consume",
                    ConsumeParams(seeds=(a.params.seed, b.params.seed)),
                    {"dirs": Ref(a.id, "directions"), "point": Ref(b.id, "point:2")},
                    "combo",
                )
            ]
        )


register_kind(EmitUnit())
register_kind(ConsumeUnit())
register_kind(
    type(
        "EmitStageKind",
        (SimpleStage,),
        {
            "name": "emit",
            "Table": EmitStage,
            "unit_kinds": ("emit",),
            "drafts": lambda self, table, study, view: [
                UnitDraft("emit", EmitParams(seed=s, fail=s in table.fail_seeds), {}, f"seed={s}") for s in table.seeds
            ],
        },
    )()
)
register_kind(ConsumeStageKind())
