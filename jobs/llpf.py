"""LLPF unit kinds: ``m2m_phase`` (one phase of one model-to-model path, LLPF Alg. 1) and ``m2o`` (one
model-to-origin path, LLPF Alg. 2), driving ``workers/llpf.py`` through the unit context.

A stage of kind ``m2m`` (alias of ``m2m_phase``) expands, for every pair of modes, into one unit per phase; phase k
starts from phase k−1's end point, so a pair's phases chain in the unit graph while the pairs run in parallel. Every
iteration writes one row of the ``path`` table (batch and rolling loss, per-tensor distance to the destination and
variance, step length, learning rate); every ``eval_every`` iterations (and at the end) the full training set and the
test set are evaluated in eval mode — the validity verdict uses those honest losses, not the rolling mini-batch loss
that the stopping rule makes small by construction. Points (the model state) are stored every ``point_stride``
iterations.
"""
from __future__ import annotations

import time

from pydantic import Field, model_validator

from .base import Figure, Kind, Metric, Resources, StageParams, StudyContext, UnitDraft, Upstream, Verdict
from .pairs import STRATEGY_HELP, PairStrategy, check_pairs, mode_pairs


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


class PhaseSpec(TrainRule):
    layers: list[str] | None = Field(default=None, description="tensor name patterns this phase moves")
    add: list[str] | None = Field(default=None, description="the previous phase's patterns plus these")
    iterations: int = Field(ge=1, le=10_000_000)
    step_a: float = Field(default=0.0, ge=0)
    step_f: float = Field(default=0.0, ge=0)
    step_c: float = Field(default=0.0, ge=0)

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


class M2MStage(PathSettings):
    from_: str = Field(alias="from")
    pairs: PairStrategy = "consecutive"
    distance_threshold: float = Field(default=0.1, gt=0, description="verdict: final per-tensor distance to D")
    test_loss_tolerance: float = Field(default=0.05, gt=0, description="verdict: |final − start| test loss")
    freeze_stats_outside_phase: bool = False
    phases: list[PhaseSpec] = Field(min_length=1)


class M2OStage(PathSettings, TrainRule):
    from_: str = Field(alias="from")
    seeds: list[int] | None = None
    iterations: int = Field(ge=1, le=10_000_000)
    step_a: float = Field(default=0.0, ge=0)
    step_f: float = Field(default=0.0, ge=0)
    conformal_all_tensors: bool = False


def _phase_patterns(phases: list[PhaseSpec]) -> list[list[str]]:
    out: list[list[str]] = []
    for i, ph in enumerate(phases):
        if ph.layers is not None:
            out.append(list(ph.layers))
        else:
            out.append((out[-1] if out else []) + list(ph.add or []))
    return out


def _model_state_names(study: StudyContext, movable_only: bool = False) -> list[str]:
    from lowloss.workers.data import DATASET_SHAPES
    from lowloss.workers.models import build_model

    channels, size, classes = DATASET_SHAPES[study.data["dataset"]]
    size = study.data.get("image_size", size)
    state = build_model(study.model["name"], classes, channels, size).state_dict()
    return [n for n, t in state.items() if t.is_floating_point() or not movable_only]


def _seeds_of(stages, name, study) -> list[int]:
    params = stages[name].params
    return list(getattr(params, "seeds", None) or study.seeds)


class M2MPhaseKind(Kind):
    name = "m2m_phase"
    aliases = ("m2m",)
    version = 1
    Params = M2MStage
    resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    needs_input_stage = True
    produces_mode = False
    metrics = (
        Metric("path_max_train_loss", "max train loss on path", ".4g"),
        Metric("max_final_distance", "final distance to D", ".4g"),
        Metric("start_test_loss", "test loss at start", ".4f"),
        Metric("final_test_loss", "test loss at end", ".4f"),
        Metric("start_test_acc", "test acc at start", ".4f", lower_is_better=False),
        Metric("final_test_acc", "test acc at end", ".4f", lower_is_better=False),
    )
    verdicts = (Verdict("valid", "valid path"),
                Verdict("train_loss_below_threshold", "loss ≤ L_thres"),
                Verdict("distance_converged", "reached D"),
                Verdict("test_loss_converged", "test loss kept"))
    tables = ("path",)
    figures = (  # the style of LLPF Figs. 2–4, one path drawn across its chained phases
        Figure("loss", "LLPF M2M path: training loss", table="path", x="iteration",
               ys=("rolling_loss", "train_loss_full"), labels=("rolling mini-batch loss", "full training set"),
               xlabel="iteration", ylabel="cross-entropy loss", logy=True, smooth=10, chain="start",
               threshold_param="l_thres", threshold_label="L_thres (verdict: max full-set loss)"),
        Figure("distance", "LLPF M2M path: layer-wise L2 distance to D", table="path", x="iteration", ys=("dist.*",),
               labels=("tensor",), xlabel="iteration", ylabel="‖P − D‖ per tensor", logy=True,
               chain="start", exclude=("dist.*.running_mean", "dist.*.running_var"),
               threshold_param="distance_threshold", threshold_label="distance threshold (verdict)"),
        Figure("test", "LLPF M2M path: test loss and accuracy", table="path", x="iteration", ys=("test_loss",),
               y2s=("test_acc",), xlabel="iteration", chain="start"),
        Figure("pca", "LLPF M2M path points per layer (PCA)", style="pca", chain="start", destination="dest", origin="p0",
               exclude=("*.running_mean", "*.running_var")),
        Figure("headline", "LLPF M2M path vs. the straight line, pair by pair", style="pairs",
               ys=("path_max_train_loss",), labels=("path: max full-set train loss",), verdict="valid",
               compare_kind="interpolate", compare_ys=("max_train_loss", "barrier_train_loss"),
               compare_labels=("straight line: max train loss", "straight line: train-loss barrier"),
               threshold_param="l_thres", threshold_label="L_thres", ylabel="cross-entropy loss (train)", logy=True,
               chain="start"),
    )

    def validate(self, params: M2MStage, study, stages):
        problem = check_pairs(params.pairs, _seeds_of(stages, params.from_, study))
        if problem:
            return [("pairs", params.pairs, f"{STRATEGY_HELP}; {problem}")]
        from lowloss.workers.llpf import select_tensors

        names = _model_state_names(study)
        for i, patterns in enumerate(_phase_patterns(params.phases)):
            try:
                select_tensors(names, patterns)
            except ValueError as exc:
                return [(f"phases[{i}].{'layers' if params.phases[i].layers is not None else 'add'}", patterns,
                         f"{str(exc).split(' (names look like')[0]}; tensors of {study.model['name']}: {', '.join(names)}")]
        return []

    def describe(self, params: M2MStage, study):
        from lowloss.workers.llpf import select_tensors

        names = _model_state_names(study, movable_only=True)  # num_batches_tracked never moves
        lines = []
        for i, patterns in enumerate(_phase_patterns(params.phases)):
            chosen = select_tensors(names, patterns)
            shown = ", ".join(chosen[:8]) + (f", … ({len(chosen)} tensors)" if len(chosen) > 8 else "")
            lines.append(f"phase {i + 1}/{len(params.phases)} ({params.phases[i].iterations} iterations) moves "
                         f"{len(chosen)} of {len(names)} tensors: {shown}")
        return lines

    def expand(self, params: M2MStage, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        patterns = _phase_patterns(params.phases)
        common = {k: v for k, v in params.model_dump(mode="json", by_alias=True).items()
                  if k not in ("from", "pairs", "phases")}
        drafts = []
        for a, b in mode_pairs(params.pairs, upstream.units(params.from_), upstream):
            previous = a.id
            for k, phase in enumerate(params.phases):
                draft_params = {**common, "pair": [a.params["seed"], b.params["seed"]], "phase": k + 1,
                                "phases": len(params.phases), "patterns": patterns[k],
                                **phase.model_dump(mode="json", exclude={"layers", "add"})}
                # phase k+1 starts where phase k ends: an input may name a draft of this expansion
                draft = UnitDraft(self.name, draft_params, {"p0": a.id, "dest": b.id, "start": previous},
                                  f"pair={a.params['seed']}-{b.params['seed']} phase={k + 1}")
                drafts.append(draft)
                previous = draft
        return drafts

    def run(self, ctx) -> None:
        _run_path(ctx, toward_origin=False)


class M2OKind(Kind):
    name = "m2o"
    version = 1
    Params = M2OStage
    resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    needs_input_stage = True
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
    tables = ("path",)
    figures = (
        Figure("loss", "LLPF M2O path: training loss", table="path", x="iteration",
               ys=("rolling_loss", "train_loss_full"), labels=("rolling mini-batch loss", "full training set"),
               xlabel="iteration", ylabel="cross-entropy loss", logy=True, smooth=10,
               threshold_param="l_thres", threshold_label="L_thres (verdict: max full-set loss)"),
        Figure("norm", "LLPF M2O path: L2 norm per tensor (distance to the origin)", table="path", x="iteration",
               ys=("dist.*",), labels=("tensor",), xlabel="iteration", ylabel="‖P‖ per tensor", logy=True,
               exclude=("dist.*.running_mean", "dist.*.running_var")),
        Figure("test", "LLPF M2O path: test loss and accuracy", table="path", x="iteration", ys=("test_loss",),
               y2s=("test_acc",), xlabel="iteration"),
    )

    def validate(self, params: M2OStage, study, stages):
        if params.seeds is not None:
            known = set(_seeds_of(stages, params.from_, study))
            bad = [s for s in params.seeds if s not in known]
            if bad:
                return [("seeds", params.seeds, f"seeds of stage {params.from_!r}: {sorted(known)}; {bad} are not")]
        return []

    def expand(self, params: M2OStage, study: StudyContext, upstream: Upstream) -> list[UnitDraft]:
        p = params.model_dump(mode="json", by_alias=True)
        common = {k: v for k, v in p.items() if k not in ("from", "seeds")}
        drafts = []
        for mode in upstream.units(params.from_):
            if params.seeds is None or mode.params["seed"] in params.seeds:
                drafts.append(UnitDraft(self.name, {**common, "seed": mode.params["seed"]},
                                        {"p0": mode.id, "start": mode.id}, f"seed={mode.params['seed']}"))
        return drafts

    def run(self, ctx) -> None:
        _run_path(ctx, toward_origin=True)


# ---------------------------------------------------------------------------------------------- the path loop

def _run_path(ctx, toward_origin: bool) -> None:
    import torch
    import torch.nn.functional as F

    from lowloss.workers.data import BatchStream, derive_seed, load_dataset
    from lowloss.workers.llpf import (LLPFConfig, llpf_m2m_iteration, llpf_m2o_iteration, normalization_tensor_names,
                                      path_validity, phase_optimizer, phase_step_c_lengths, select_tensors,
                                      state_variances)
    from lowloss.workers.models import build_model
    from lowloss.workers.training import (evaluate_batches, optimizer_state_from_tensors, optimizer_state_to_tensors,
                                          restore_rng_state, rng_state_tensors)

    p = ctx.params
    mode = ctx.input_params("p0")
    data = load_dataset(mode["data"]["dataset"], ctx.data_root, mode["data"].get("image_size")).to(ctx.device)
    model = build_model(mode["model"]["name"], data.num_classes, data.in_channels, data.image_size).to(ctx.device)
    p0 = {k: v.to(ctx.device) for k, v in ctx.input_final_state("p0").items()}
    model.load_state_dict({k: v.to(ctx.device) for k, v in ctx.input_final_state("start").items()})
    names = list(model.state_dict())
    quirks = p["reference_quirks"]
    if toward_origin:
        norm = set(normalization_tensor_names(model))
        moved = [n for n in names if n not in norm and model.state_dict()[n].is_floating_point()]
        destination = None
        opt_names = [n for n, _ in model.named_parameters()]  # the reference trains every parameter (norms too)
        optimizer = phase_optimizer(model, opt_names, p["lr"], p["momentum"], per_tensor_groups=True)
        seed_parts = ("m2o", p["seed"])
    else:
        moved = select_tensors(names, p["patterns"])
        destination = {k: v.to(ctx.device) for k, v in ctx.input_final_state("dest").items()}
        opt_names = [n for n, _ in model.named_parameters()] if quirks else moved
        optimizer = phase_optimizer(model, opt_names, p["lr"], p["momentum"])
        seed_parts = ("m2m", tuple(p["pair"]), p["phase"])
    cfg = LLPFConfig(step_a=p["step_a"], step_f=p["step_f"], step_c=p.get("step_c", 0.0), clamp=True,
                     train_rounds=p["rounds"], train_threshold=p["threshold"], train_min_rounds=p["min_rounds"],
                     train_max_rounds=p["max_rounds"],
                     freeze_stats_outside_phase=p.get("freeze_stats_outside_phase", False),
                     conformal_all_tensors=p.get("conformal_all_tensors", False))
    if quirks:
        cfg = cfg.with_reference_quirks()
    start_variances = state_variances(p0)
    stream = BatchStream(data, p["batch_size"], seed=derive_seed(*seed_parts))
    total, seg_len = p["iterations"], p["segment_iterations"]

    def evaluate_row(row: dict) -> None:
        row["train_loss_full"], row["train_acc_full"] = evaluate_batches(model, data.eval_batches("train"))
        row["test_loss"], row["test_acc"] = evaluate_batches(model, data.eval_batches("test"))

    resumed = ctx.read_checkpoint()
    if resumed is not None:
        tensors, meta, last_segment = resumed
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_state_from_tensors(optimizer, tensors, meta["optimizer"])
        restore_rng_state(tensors, ctx.device)
        iteration, cursor, segment = meta["iteration"], meta["cursor"], last_segment + 1
        step_c_lengths = meta["step_c_lengths"]
        ctx.log(f"resumed at iteration {iteration} (segment {segment})")
    else:
        iteration, cursor, segment = 0, 0, 0
        step_c_lengths = (phase_step_c_lengths(model.state_dict(), destination or
                                               {n: torch.zeros_like(t) for n, t in model.state_dict().items()},
                                               moved, p["step_c"]) if p.get("step_c", 0.0) > 0 else None)
    counter = [cursor]

    def next_batch():
        batch = stream.batch(counter[0])
        counter[0] += 1
        return batch

    first_rows = []
    if iteration == 0:
        row0 = {"iteration": 0, "loss": None, "rolling_loss": None, "train_steps": 0, "step_length": 0.0,
                "lr": p["lr"]}
        state = model.state_dict()
        ref = destination if destination is not None else {n: torch.zeros_like(state[n]) for n in moved}
        for n in (ref.keys() if destination is None else names):
            if state[n].is_floating_point():
                row0[f"dist.{n}"] = float(torch.linalg.vector_norm((state[n] - ref[n]).double()))
        evaluate_row(row0)
        first_rows.append(row0)

    while iteration < total:
        end = min(iteration + seg_len, total)
        rows, points, t0 = first_rows, {}, time.time()
        first_rows = []
        for it in range(iteration, end):
            if toward_origin:
                m = llpf_m2o_iteration(model, start_variances, moved, optimizer, next_batch, F.cross_entropy, cfg,
                                       step_c_lengths)
            else:
                m = llpf_m2m_iteration(model, destination, start_variances, moved, optimizer, next_batch,
                                       F.cross_entropy, cfg, step_c_lengths)
            losses = m["losses"]
            row = {"iteration": it + 1, "loss": sum(losses) / len(losses) if losses else None,
                   "rolling_loss": m["rolling_loss"], "train_steps": m["steps"],
                   "step_length": max(m["step_lengths"].values()) if m["step_lengths"] else 0.0,
                   "lr": p["lr"] if not toward_origin else None}
            row.update({f"dist.{n}": v for n, v in m["distances"].items()})
            row.update({f"var.{n}": v for n, v in m["variances"].items() if n in start_variances})
            if toward_origin:
                row.update({f"lr.{n}": v for n, v in m["lrs"].items()})
            if (it + 1) % p["eval_every"] == 0 or it + 1 == total:
                evaluate_row(row)
            else:
                row.update(train_loss_full=None, train_acc_full=None, test_loss=None, test_acc=None)
            rows.append(row)
            if p["point_stride"] and ((it + 1) % p["point_stride"] == 0 or it + 1 == total):
                points.update({f"it{it + 1:08d}.{n}": t.detach().clone() for n, t in model.state_dict().items()})
        ctx.write_segment(segment, {"path": rows}, points or None)
        iteration = end
        if iteration < total and ctx.checkpoint_due():
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            opt_tensors, opt_meta = optimizer_state_to_tensors(optimizer)
            tensors.update(opt_tensors)
            tensors.update(rng_state_tensors(ctx.device))
            ctx.write_checkpoint(segment, tensors, {"iteration": iteration, "cursor": counter[0],
                                                    "optimizer": opt_meta, "step_c_lengths": step_c_lengths})
        last = rows[-1]
        ctx.progress(iteration, total, rolling_loss=last["rolling_loss"] or 0.0,
                     it_per_s=len(rows) / max(time.time() - t0, 1e-9))
        segment += 1

    _commit_path(ctx, toward_origin, model, moved, path_validity)


def _commit_path(ctx, toward_origin: bool, model, moved: list[str], path_validity) -> None:
    p = ctx.params
    table = ctx.rows("path")
    rows = table.to_pylist()
    evals = [r for r in rows if r.get("train_loss_full") is not None]
    first, last = evals[0], evals[-1]
    max_train = max(r["train_loss_full"] for r in evals)
    # the verdict's distances are the parameters' (weights, biases, BatchNorm affine): running statistics follow
    # the activations in train mode and are recorded in the rows, but are no coordinates of the path
    params = {n for n, _ in model.named_parameters()}
    final_dist = {n: rows[-1][f"dist.{n}"] for n in params if rows[-1].get(f"dist.{n}") is not None}
    result = {"iterations": p["iterations"], "max_train_loss": max_train,
              "max_rolling_loss": max((r["rolling_loss"] for r in rows if r["rolling_loss"] is not None), default=None),
              "final_train_loss": last["train_loss_full"], "final_test_loss": last["test_loss"],
              "final_test_acc": last["test_acc"], "train_steps": sum(r["train_steps"] for r in rows)}
    if toward_origin:
        start_norm = sum(rows[0][f"dist.{n}"] ** 2 for n in moved if rows[0].get(f"dist.{n}") is not None) ** 0.5
        final_norm = sum(rows[-1][f"dist.{n}"] ** 2 for n in moved if rows[-1].get(f"dist.{n}") is not None) ** 0.5
        result.update(seed=p["seed"], start_test_loss=first["test_loss"], start_test_acc=first["test_acc"],
                      best_test_acc=max(r["test_acc"] for r in evals), path_max_train_loss=max_train,
                      final_norm_ratio=final_norm / start_norm if start_norm else None,
                      train_loss_below_threshold=bool(max_train <= p["l_thres"]))
    else:
        if p["phase"] == 1:
            path_max, start_loss, start_acc = max_train, first["test_loss"], first["test_acc"]
        else:
            prev = ctx.input_result("start")["path_so_far"]
            path_max = max(prev["max_train_loss"], max_train)
            start_loss, start_acc = prev["start_test_loss"], prev["start_test_acc"]
        result.update(pair=p["pair"], phase=p["phase"], phases=p["phases"],
                      path_so_far={"max_train_loss": path_max, "start_test_loss": start_loss,
                                   "start_test_acc": start_acc})
        if p["phase"] == p["phases"]:  # the path's summary and verdict (LLPF §4's three criteria) on its last phase
            verdict = path_validity(path_max, p["l_thres"], final_dist, p["distance_threshold"],
                                    last["test_loss"], start_loss, p["test_loss_tolerance"])
            result.update({k: verdict[k] for k in ("valid", "train_loss_below_threshold", "distance_converged",
                                                   "test_loss_converged", "farthest_tensor", "test_loss_gap")})
            result.update(path_max_train_loss=path_max, start_test_loss=start_loss, start_test_acc=start_acc,
                          max_final_distance=max(final_dist.values()) if final_dist else 0.0)
        else:  # a phase's own end point is not the path's: keep the path metrics of the summary to last phases
            result["phase_final_test_loss"] = result.pop("final_test_loss")
            result["phase_final_test_acc"] = result.pop("final_test_acc")
    ctx.commit(result, final=model.state_dict())
