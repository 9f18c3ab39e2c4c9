"""LLPF stage and unit kinds: ``m2m`` (a stage) of ``m2m_phase`` units (one phase of one model-to-model path, LLPF
Alg. 1), and ``m2o`` (one model-to-origin path, LLPF Alg. 2), driving ``workers/llpf.py`` through the unit context.

A stage of kind ``m2m`` plans, for every pair of modes, one unit per phase; phase k starts from phase k−1's end
point, so a pair's phases chain in the unit graph while the pairs run in parallel. Every iteration writes one row of
the ``path`` table (batch and rolling loss, per-tensor distance to the destination and variance, step length, learning
rate); every ``eval_every`` iterations (and at the end) the full training set and the test set are evaluated in eval
mode — the validity verdict uses those honest losses, not the rolling mini-batch loss that the stopping rule makes
small by construction. Points (the model state) are stored every ``point_stride`` iterations.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from pydantic import Field, model_validator

from ..base import (
    Figure,
    Metric,
    Plan,
    Resources,
    StageKind,
    StageParams,
    UnitDraft,
    UnitKind,
    UnitParams,
    Verdict,
    point_key,
)
from ..common.loop import Segment, TrainingState, run_segments
from ..common.modes import seeds_of
from ..common.pairs import STRATEGY_HELP, PairStrategy, check_pair_count, check_pairs, mode_pairs
from ..common.params import build_for, load_data


class TrainRule(StageParams):
    """Train^r (LLPF Alg. 1 l.7): a fixed number of steps, or until the rolling loss ≤ threshold (or max_rounds)."""

    rounds: int | None = Field(default=None, ge=1, description="exactly r SGD steps per iteration")
    threshold: float | None = Field(default=None, gt=0, description="train until the rolling loss ≤ this")
    max_rounds: int | None = Field(default=None, ge=1, description="... or this many steps")
    min_rounds: int = Field(default=10, ge=1, description="rolling window and minimum steps (the papers' 10)")

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.rounds is None) == (self.threshold is None):
            raise ValueError("give either rounds, or threshold with max_rounds")
        if self.threshold is not None and self.max_rounds is None:
            raise ValueError("threshold needs max_rounds (the loop must be bounded)")
        return self


class PhaseMoves(StageParams):
    """How far a phase goes and how Move steps (LLPF Alg. 1 l.10–16)."""

    iterations: int = Field(ge=1, le=10_000_000)
    step_a: float = Field(default=0.0, ge=0)
    step_f: float = Field(default=0.0, ge=0)
    step_c: float = Field(default=0.0, ge=0)


class PhaseSpec(TrainRule, PhaseMoves):
    layers: list[str] | None = Field(default=None, description="tensor name patterns this phase moves")
    add: list[str] | None = Field(default=None, description="the previous phase's patterns plus these")
    group_weight_bias: bool | None = Field(
        default=None, description="Move each layer's weight and bias as one vector; unset: the stage's setting"
    )

    @model_validator(mode="after")
    def _moves(self):
        if (self.layers is None) == (self.add is None):
            raise ValueError("give either layers (the patterns) or add (the previous phase's plus these)")
        if self.step_a == 0 and self.step_f == 0 and self.step_c == 0:
            raise ValueError("step_a, step_f and step_c are all 0: Move would never move")
        return self


class PathSettings(StageParams):
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=0.001, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    eval_every: int = Field(default=100, ge=1, description="full train/test evaluation every K iterations")
    point_stride: int = Field(default=0, ge=0, description="store the model every N iterations (0: none)")
    segment_iterations: int = Field(default=50, ge=1, description="iterations per committed segment")
    l_thres: float = Field(default=0.1, gt=0, description="the low-loss threshold L_thres of the verdict")
    reference_quirks: bool = Field(default=False, description="reproduce the authors' code (see docs)")
    group_weight_bias: bool | None = Field(
        default=None,
        description="Move each layer's weight and bias as one vector (the authors' LeNet5 "
        "configurations); unset: on with reference_quirks, else off",
    )
    precision: Literal["fp32", "tf32", "bf16"] | None = Field(
        default=None, description="fp32 (unset), tf32 (CUDA matmuls/convs), bf16 (autocast forward passes)"
    )


class M2MSettings(PathSettings):
    distance_threshold: float = Field(default=0.1, gt=0, description="verdict: final distance per Move unit")
    distance_to: Literal["destination_on_start_sphere", "destination"] = Field(
        default="destination_on_start_sphere",
        description="what the distance verdict measures to: D projected on P0's variance sphere (VarianceCorrection "
        "of D, the point a converged path reaches) or D itself (the papers' absolute figure)",
    )
    test_loss_tolerance: float = Field(default=0.05, gt=0, description="verdict: test loss change allowed")
    test_loss_rule: Literal["converge", "no_worse"] = Field(
        default="converge",
        description="converge: |final − start| ≤ tolerance (LLPF §4); no_worse: final ≤ start + tolerance",
    )
    freeze_stats_outside_phase: bool = False


class M2MStage(M2MSettings):
    from_: str = Field(alias="from")
    pairs: PairStrategy = "consecutive"
    phases: list[PhaseSpec] = Field(min_length=1)


class M2OSettings(PathSettings, TrainRule):
    iterations: int = Field(ge=1, le=10_000_000)
    step_a: float = Field(default=0.0, ge=0)
    step_f: float = Field(default=0.0, ge=0)
    conformal_all_tensors: bool = False
    layernorm: Literal["keep", "compensate"] | None = Field(
        default=None,
        description="keep: normalization layers never move (LLPF §3.2); compensate: LayerNorm moves "
        "away from the origin by the same step (the authors' M2O code); unset: compensate with reference_quirks",
    )


class M2OStage(M2OSettings):
    from_: str = Field(alias="from")
    seeds: list[int] | None = None


def _without_unset_precision(canonical: dict) -> dict:
    if canonical.get("precision") is None:
        canonical.pop("precision", None)  # unset: the content (and id) of a path unit from before the setting
    return canonical


class M2MPhaseParams(UnitParams, M2MSettings, TrainRule, PhaseMoves):
    """One phase of one pair's path: the pair's seeds, which phase of how many, the tensor patterns it moves."""

    pair: tuple[int, int]
    phase: int = Field(ge=1)
    phases: int = Field(ge=1)
    patterns: list[str]

    def canonical(self) -> dict:
        return _without_unset_precision(super().canonical())


class M2OParams(UnitParams, M2OSettings):
    seed: int

    def canonical(self) -> dict:
        return _without_unset_precision(super().canonical())


def _phase_patterns(phases: list[PhaseSpec]) -> list[list[str]]:
    out: list[list[str]] = []
    for ph in phases:
        if ph.layers is not None:
            out.append(list(ph.layers))
        else:
            out.append((out[-1] if out else []) + list(ph.add or []))
    return out


def _model_state_names(study, movable_only: bool = False) -> list[str]:
    from ...workers.data import DATASET_SHAPES
    from ...workers.models import build_model

    channels, size, classes = DATASET_SHAPES[study.data["dataset"]]
    size = study.data.get("image_size", size)
    state = build_model(study.model["name"], classes, channels, size).state_dict()
    return [n for n, t in state.items() if t.is_floating_point() or not movable_only]


def _phase_grouping(stage: M2MStage, phase: PhaseSpec) -> bool | None:
    """A phase's own group_weight_bias, else its stage's (None: neither says)."""
    return stage.group_weight_bias if phase.group_weight_bias is None else phase.group_weight_bias


def _group_weight_bias(setting: bool | None, reference_quirks: bool) -> bool:
    """A phase's weight+bias grouping: its own setting when given, else what reference_quirks says."""
    return bool(reference_quirks) if setting is None else bool(setting)


_PATH_TABLE = ("path",)


class M2MPhaseUnit(UnitKind):
    name = "m2m_phase"
    version = 1
    Params = M2MPhaseParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("final",)  # the phase's end point: the next phase starts there
    metrics = (
        Metric("path_max_train_loss", "max train loss on path", ".4g"),
        Metric("max_final_distance", "final distance (verdict's measure)", ".4g"),
        Metric("max_final_distance_raw", "final distance to D itself", ".4g"),
        Metric("start_test_loss", "test loss at start", ".4f"),
        Metric("final_test_loss", "test loss at end", ".4f"),
        Metric("test_loss_change", "test loss change (end − start)", ".4f"),
        Metric("destination_test_loss", "test loss of D", ".4f"),
        Metric("start_test_acc", "test acc at start", ".4f", lower_is_better=False),
        Metric("final_test_acc", "test acc at end", ".4f", lower_is_better=False),
    )
    verdicts = (
        Verdict("valid", "valid path"),
        Verdict("train_loss_below_threshold", "loss ≤ L_thres"),
        Verdict("distance_converged", "reached D"),
        Verdict("test_loss_converged", "test loss kept"),
    )
    tables = _PATH_TABLE
    figures = (  # the style of LLPF Figs. 2–4, one path drawn across its chained phases
        Figure(
            "loss",
            "LLPF M2M path: training loss",
            table="path",
            x="iteration",
            ys=("rolling_loss", "train_loss_full"),
            labels=("rolling mini-batch loss", "full training set"),
            xlabel="iteration",
            ylabel="cross-entropy loss",
            logy=True,
            smooth=10,
            chain="start",
            threshold_param="l_thres",
            threshold_label="L_thres (verdict: max full-set loss)",
        ),
        Figure(
            "distance",
            "LLPF M2M path: layer-wise L2 distance to D",
            table="path",
            x="iteration",
            ys=("dist.*",),
            labels=("tensor",),
            xlabel="iteration",
            ylabel="‖P − D‖ per tensor",
            logy=True,
            chain="start",
            exclude=("dist.*.running_mean", "dist.*.running_var"),
            threshold_param="distance_threshold",
            threshold_label="distance threshold (verdict)",
        ),
        Figure(
            "test",
            "LLPF M2M path: test loss and accuracy",
            table="path",
            x="iteration",
            ys=("test_loss",),
            y2s=("test_acc",),
            xlabel="iteration",
            chain="start",
        ),
        Figure(
            "pca",
            "LLPF M2M path points per layer (PCA)",
            style="pca",
            chain="start",
            destination="dest",
            origin="p0",
            exclude=("*.running_mean", "*.running_var"),
        ),
        Figure(
            "headline",
            "LLPF M2M path vs. the straight line, pair by pair",
            style="pairs",
            ys=("path_max_train_loss",),
            labels=("path: max full-set train loss",),
            verdict="valid",
            compare_kind="interpolate",
            compare_ys=("max_train_loss", "barrier_train_loss"),
            compare_labels=("straight line: max train loss", "straight line: train-loss barrier"),
            threshold_param="l_thres",
            threshold_label="L_thres",
            ylabel="cross-entropy loss (train)",
            logy=True,
            chain="start",
        ),
    )

    def run(self, ctx, p: M2MPhaseParams) -> None:
        _run_path(ctx, p, toward_origin=False)


class M2OUnit(UnitKind):
    name = "m2o"
    version = 1
    Params = M2OParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("final",)
    metrics = (
        Metric("start_test_loss", "test loss at start", ".4f"),
        Metric("final_test_loss", "test loss at end", ".4f"),
        Metric("start_test_acc", "test acc at start", ".4f", lower_is_better=False),
        Metric("final_test_acc", "test acc at end", ".4f", lower_is_better=False),
        Metric("best_test_acc", "best test acc on path", ".4f", lower_is_better=False),
        Metric("path_max_train_loss", "max train loss on path", ".4g"),
        Metric("final_norm_ratio", "final/start norm", ".4f"),
    )
    verdicts = (Verdict("train_loss_below_threshold", "loss ≤ L_thres"),)
    tables = _PATH_TABLE
    figures = (
        Figure(
            "loss",
            "LLPF M2O path: training loss",
            table="path",
            x="iteration",
            ys=("rolling_loss", "train_loss_full"),
            labels=("rolling mini-batch loss", "full training set"),
            xlabel="iteration",
            ylabel="cross-entropy loss",
            logy=True,
            smooth=10,
            threshold_param="l_thres",
            threshold_label="L_thres (verdict: max full-set loss)",
        ),
        Figure(
            "norm",
            "LLPF M2O path: L2 norm per tensor (distance to the origin)",
            table="path",
            x="iteration",
            ys=("dist.*",),
            labels=("tensor",),
            xlabel="iteration",
            ylabel="‖P‖ per tensor",
            logy=True,
            exclude=("dist.*.running_mean", "dist.*.running_var"),
        ),
        Figure(
            "test",
            "LLPF M2O path: test loss and accuracy",
            table="path",
            x="iteration",
            ys=("test_loss",),
            y2s=("test_acc",),
            xlabel="iteration",
        ),
    )

    def run(self, ctx, p: M2OParams) -> None:
        _run_path(ctx, p, toward_origin=True)


class M2MStageKind(StageKind):
    name = "m2m"
    Table = M2MStage
    unit_kinds = ("m2m_phase",)
    input_output = "final"
    needs_input_stage = True

    def validate(self, table: M2MStage, study, stages):
        problem = check_pairs(table.pairs, seeds_of(stages, table.from_, study))
        if problem:
            return [("pairs", table.pairs, f"{STRATEGY_HELP}; {problem}")]
        from ...workers.llpf import select_tensors

        names = _model_state_names(study)
        for i, patterns in enumerate(_phase_patterns(table.phases)):
            try:
                select_tensors(names, patterns)
            except ValueError as exc:
                return [
                    (
                        f"phases[{i}].{'layers' if table.phases[i].layers is not None else 'add'}",
                        patterns,
                        f"{str(exc).split(' (names look like')[0]}; "
                        f"tensors of {study.model['name']}: {', '.join(names)}",
                    )
                ]
        return []

    def describe(self, table: M2MStage, study):
        from ...workers.llpf import select_tensors

        names = _model_state_names(study, movable_only=True)  # num_batches_tracked never moves
        lines = []
        for i, patterns in enumerate(_phase_patterns(table.phases)):
            chosen = select_tensors(names, patterns)
            shown = ", ".join(chosen[:8]) + (f", … ({len(chosen)} tensors)" if len(chosen) > 8 else "")
            grouped = _group_weight_bias(_phase_grouping(table, table.phases[i]), table.reference_quirks)
            lines.append(
                f"phase {i + 1}/{len(table.phases)} ({table.phases[i].iterations} iterations) moves "
                f"{len(chosen)} of {len(names)} tensors"
                + (" (each layer's weight and bias as one vector)" if grouped else "")
                + f": {shown}"
            )
        return lines

    def plan(self, table: M2MStage, study, view) -> Plan:
        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        modes = view.units(table.from_)
        check_pair_count(
            table.pairs,
            len(modes),
            len(table.phases),
            study.max_units,
            f"stage {view.stage}: pairs = {table.pairs!r} × {len(table.phases)} phases",
        )
        pairs = mode_pairs(table.pairs, table.from_, view)
        if pairs is None:
            return Plan([], open=True, note=f"to_best: waiting for the {len(modes)} modes")
        patterns = _phase_patterns(table.phases)
        common = {name: getattr(table, name) for name in M2MSettings.model_fields}
        drafts = []
        for a, b in pairs:
            previous: str | UnitDraft = a.id
            for k, phase in enumerate(table.phases):
                moves = {name: getattr(phase, name) for name in (*TrainRule.model_fields, *PhaseMoves.model_fields)}
                params = M2MPhaseParams(
                    **{**common, "group_weight_bias": _phase_grouping(table, phase)},
                    **moves,
                    pair=(a.params["seed"], b.params["seed"]),
                    phase=k + 1,
                    phases=len(table.phases),
                    patterns=patterns[k],
                )
                # phase k+1 starts where phase k ends: an input may name a draft of this plan call
                draft = UnitDraft(
                    "m2m_phase",
                    params,
                    {"p0": a.id, "dest": b.id, "start": previous},
                    f"pair={a.params['seed']}-{b.params['seed']} phase={k + 1}",
                )
                drafts.append(draft)
                previous = draft
        return Plan(drafts)


class M2OStageKind(StageKind):
    name = "m2o"
    Table = M2OStage
    unit_kinds = ("m2o",)
    input_output = "final"
    needs_input_stage = True

    def validate(self, table: M2OStage, study, stages):
        if table.seeds is not None:
            known = set(seeds_of(stages, table.from_, study))
            bad = [s for s in table.seeds if s not in known]
            if bad:
                return [("seeds", table.seeds, f"seeds of stage {table.from_!r}: {sorted(known)}; {bad} are not")]
        return []

    def plan(self, table: M2OStage, study, view) -> Plan:
        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        common = {name: getattr(table, name) for name in M2OSettings.model_fields}
        drafts = []
        for mode in view.units(table.from_):
            if table.seeds is None or mode.params["seed"] in table.seeds:
                drafts.append(
                    UnitDraft(
                        "m2o",
                        M2OParams(**common, seed=mode.params["seed"]),
                        {"p0": mode.id, "start": mode.id},
                        f"seed={mode.params['seed']}",
                    )
                )
        return Plan(drafts)


# ---------------------------------------------------------------------------------------------- the path loop


def _run_path(ctx, p, toward_origin: bool) -> None:
    import torch
    import torch.nn.functional as F

    from ...workers.data import BatchStream, derive_seed
    from ...workers.evaluation import Evaluator
    from ...workers.llpf import (
        LLPFConfig,
        layer_distances,
        llpf_m2m_iteration,
        llpf_m2o_iteration,
        normalization_tensor_names,
        phase_optimizer,
        phase_step_c_lengths,
        select_tensors,
        state_variances,
    )
    from ...workers.training import set_precision

    amp = set_precision(ctx.device, p.precision)
    mode = ctx.input_params("p0")
    data = load_data(ctx, mode.data)
    model = build_for(mode.model, data, ctx.device)
    p0 = {k: v.to(ctx.device) for k, v in ctx.input_final_state("p0").items()}
    model.load_state_dict({k: v.to(ctx.device) for k, v in ctx.input_final_state("start").items()})
    names = list(model.state_dict())
    quirks = p.reference_quirks
    step_c = 0.0 if toward_origin else p.step_c
    if toward_origin:
        norm = set(normalization_tensor_names(model))
        moved = [n for n in names if n not in norm and model.state_dict()[n].is_floating_point()]
        destination = None
        opt_names = [n for n, _ in model.named_parameters()]  # the reference trains every parameter (norms too)
        optimizer = phase_optimizer(model, opt_names, p.lr, p.momentum, per_tensor_groups=True)
        seed_parts: tuple = ("m2o", p.seed)
    else:
        moved = select_tensors(names, p.patterns)
        destination = {k: v.to(ctx.device) for k, v in ctx.input_final_state("dest").items()}
        opt_names = [n for n, _ in model.named_parameters()] if quirks else moved
        optimizer = phase_optimizer(model, opt_names, p.lr, p.momentum)
        seed_parts = ("m2m", tuple(p.pair), p.phase)
    # explicit settings win; an unset one follows reference_quirks (the authors' code does both)
    group_setting, layernorm_setting = p.group_weight_bias, getattr(p, "layernorm", None)
    cfg = LLPFConfig(
        step_a=p.step_a,
        step_f=p.step_f,
        step_c=step_c,
        clamp=True,
        train_rounds=p.rounds,
        train_threshold=p.threshold,
        train_min_rounds=p.min_rounds,
        train_max_rounds=p.max_rounds,
        freeze_stats_outside_phase=getattr(p, "freeze_stats_outside_phase", False),
        conformal_all_tensors=getattr(p, "conformal_all_tensors", False),
        group_weight_bias=bool(group_setting),
        compensate_layernorm=toward_origin and layernorm_setting == "compensate",
    )
    if quirks:
        cfg = cfg.with_reference_quirks(
            group_weight_bias=True if group_setting is None else None,
            compensate_layernorm=toward_origin if layernorm_setting is None else None,
        )
    start_variances = state_variances(p0)
    stream = BatchStream(data, p.batch_size, seed=derive_seed(*seed_parts))
    step_c_lengths = (
        phase_step_c_lengths(
            model.state_dict(),
            destination or {n: torch.zeros_like(t) for n, t in model.state_dict().items()},
            moved,
            step_c,
            cfg.group_weight_bias,
        )
        if step_c > 0
        else None
    )
    state = TrainingState(model, optimizer, ctx.device, {"cursor": 0, "step_c_lengths": step_c_lengths})
    total = p.iterations

    evaluator = Evaluator(model, data, "NoUpBN")  # the one protocol; the path's own (moved) BatchNorm statistics

    def evaluate_row(row: dict) -> None:
        with amp() if amp is not None else contextlib.nullcontext():
            measured = evaluator.measure()
        row["train_loss_full"], row["train_acc_full"] = measured["train"]
        row["test_loss"], row["test_acc"] = measured["test"]

    def next_batch():
        batch = stream.batch(state.extra["cursor"])
        state.extra["cursor"] += 1
        return batch

    def first_row() -> dict:
        row0 = {"iteration": 0, "loss": None, "rolling_loss": None, "train_steps": 0, "step_length": 0.0, "lr": p.lr}
        current = model.state_dict()
        ref = destination if destination is not None else {n: torch.zeros_like(current[n]) for n in moved}
        for n in ref.keys() if destination is None else names:
            if current[n].is_floating_point():
                row0[f"dist.{n}"] = float(torch.linalg.vector_norm((current[n] - ref[n]).double()))
        if destination is not None and cfg.group_weight_bias:  # the distance of each Move unit (joined layers)
            row0.update({f"dist_layer.{k}": v for k, v in layer_distances(current, destination, moved, True).items()})
        evaluate_row(row0)
        return row0

    def segment(start: int, end: int) -> Segment:
        rows = [first_row()] if start == 0 else []
        points: dict = {}
        lengths = state.extra["step_c_lengths"]
        for it in range(start, end):
            with amp() if amp is not None else contextlib.nullcontext():  # autocast: matmuls/convs only
                if toward_origin:
                    m = llpf_m2o_iteration(
                        model, start_variances, moved, optimizer, next_batch, F.cross_entropy, cfg, lengths
                    )
                else:
                    m = llpf_m2m_iteration(
                        model, destination, start_variances, moved, optimizer, next_batch, F.cross_entropy, cfg, lengths
                    )
            losses = m["losses"]
            row = {
                "iteration": it + 1,
                "loss": sum(losses) / len(losses) if losses else None,
                "rolling_loss": m["rolling_loss"],
                "train_steps": m["steps"],
                "step_length": max(m["step_lengths"].values()) if m["step_lengths"] else 0.0,
                "lr": p.lr if not toward_origin else None,
            }
            row.update({f"dist.{n}": v for n, v in m["distances"].items()})
            row.update({f"dist_layer.{k}": v for k, v in m.get("layer_distances", {}).items()})
            row.update({f"var.{n}": v for n, v in m["variances"].items() if n in start_variances})
            if toward_origin:
                row.update({f"lr.{n}": v for n, v in m["lrs"].items()})
            if (it + 1) % p.eval_every == 0 or it + 1 == total:
                evaluate_row(row)
            else:
                row.update(train_loss_full=None, train_acc_full=None, test_loss=None, test_acc=None)
            rows.append(row)
            if p.point_stride and ((it + 1) % p.point_stride == 0 or it + 1 == total):
                points.update({point_key(n, it + 1): t.detach().clone() for n, t in model.state_dict().items()})
        return Segment({"path": rows}, points, info={"rolling_loss": rows[-1]["rolling_loss"] or 0.0})

    run_segments(ctx, total, p.segment_iterations, state, segment, unit="iterations")
    destination_test_loss = None
    if destination is not None and p.phase == p.phases:  # D's own test loss: where the path converges to
        dest_model = build_for(mode.model, data, ctx.device)
        dest_model.load_state_dict(destination)
        destination_test_loss = Evaluator(dest_model, data, "NoUpBN", splits=("test",)).measure()["test"][0]
    _commit_path(
        ctx,
        p,
        toward_origin,
        model,
        moved,
        destination=destination,
        start_variances=start_variances,
        destination_test_loss=destination_test_loss,
        group_weight_bias=cfg.group_weight_bias,
    )


def _commit_path(
    ctx,
    p,
    toward_origin: bool,
    model,
    moved: list[str],
    destination=None,
    start_variances=None,
    destination_test_loss: float | None = None,
    group_weight_bias: bool = False,
) -> None:
    from ...workers.llpf import destination_on_start_sphere, layer_distances, path_validity

    table = ctx.rows("path")
    rows = table.to_pylist()
    evals = [r for r in rows if r.get("train_loss_full") is not None]
    first, last = evals[0], evals[-1]
    max_train = max(r["train_loss_full"] for r in evals)
    # the verdict's distances are the parameters' (weights, biases, BatchNorm affine): running statistics follow
    # the activations in train mode and are recorded in the rows, but are no coordinates of the path
    params = [n for n, _ in model.named_parameters()]
    result = {
        "iterations": p.iterations,
        "max_train_loss": max_train,
        "max_rolling_loss": max((r["rolling_loss"] for r in rows if r["rolling_loss"] is not None), default=None),
        "final_train_loss": last["train_loss_full"],
        "final_test_loss": last["test_loss"],
        "final_test_acc": last["test_acc"],
        "train_steps": sum(r["train_steps"] for r in rows),
    }
    if toward_origin:
        start_norm = sum(rows[0][f"dist.{n}"] ** 2 for n in moved if rows[0].get(f"dist.{n}") is not None) ** 0.5
        final_norm = sum(rows[-1][f"dist.{n}"] ** 2 for n in moved if rows[-1].get(f"dist.{n}") is not None) ** 0.5
        result.update(
            seed=p.seed,
            start_test_loss=first["test_loss"],
            start_test_acc=first["test_acc"],
            best_test_acc=max(r["test_acc"] for r in evals),
            path_max_train_loss=max_train,
            final_norm_ratio=final_norm / start_norm if start_norm else None,
            train_loss_below_threshold=bool(max_train <= p.l_thres),
        )
    else:
        if p.phase == 1:
            path_max, start_loss, start_acc = max_train, first["test_loss"], first["test_acc"]
        else:
            prev = ctx.input_result("start")["path_so_far"]
            path_max = max(prev["max_train_loss"], max_train)
            start_loss, start_acc = prev["start_test_loss"], prev["start_test_acc"]
        result.update(
            pair=list(p.pair),
            phase=p.phase,
            phases=p.phases,
            path_so_far={"max_train_loss": path_max, "start_test_loss": start_loss, "start_test_acc": start_acc},
        )
        if p.phase == p.phases:  # the path's summary and verdict (LLPF §4's three criteria) on its last phase
            # distances per Move unit (joined weight+bias with grouping) of the final point, to D itself and to D
            # projected on P0's variance sphere (the point a converged path reaches; Eq. 4's "minor deviations")
            state = model.state_dict()
            raw = layer_distances(state, destination, params, group_weight_bias)
            projected = layer_distances(
                state, destination_on_start_sphere(destination, start_variances), params, group_weight_bias
            )
            final_dist = projected if p.distance_to == "destination_on_start_sphere" else raw
            verdict = path_validity(
                path_max,
                p.l_thres,
                final_dist,
                p.distance_threshold,
                last["test_loss"],
                start_loss,
                p.test_loss_tolerance,
                p.test_loss_rule,
                destination_test_loss,
            )
            result.update(
                {
                    k: verdict[k]
                    for k in (
                        "valid",
                        "train_loss_below_threshold",
                        "distance_converged",
                        "test_loss_converged",
                        "farthest_tensor",
                        "test_loss_gap",
                        "test_loss_change",
                        "test_loss_rule",
                        "final_minus_destination_test_loss",
                    )
                }
            )
            result.update(
                path_max_train_loss=path_max,
                start_test_loss=start_loss,
                start_test_acc=start_acc,
                max_final_distance=verdict["max_final_distance"],
                distance_to=p.distance_to,
                max_final_distance_raw=max(raw.values(), default=0.0),
                max_final_distance_projected=max(projected.values(), default=0.0),
                destination_test_loss=destination_test_loss,
                verdict_failures=verdict["failures"],
            )
        else:  # a phase's own end point is not the path's: keep the path metrics of the summary to last phases
            result["phase_final_test_loss"] = result.pop("final_test_loss")
            result["phase_final_test_acc"] = result.pop("final_test_acc")
    ctx.commit(result, final=model.state_dict())
