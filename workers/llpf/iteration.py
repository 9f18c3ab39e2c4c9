"""One LLPF iteration: model to model (Alg. 1, ``llpf_m2m_iteration``) and model to origin (Alg. 2,
``llpf_m2o_iteration``, with AngleConformal)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .config import LLPFConfig
from .distances import layer_distances, tensor_distances
from .move import compensating_move, move_state
from .selection import layernorm_tensor_names
from .train_rule import TrainResult, train_r
from .variance import apply_variance_correction, correctable, state_variances


def _train(model, optimizer, next_batch, loss_fn, cfg: LLPFConfig, phase: set[str]) -> TrainResult:
    until = cfg.train_until()
    saved: dict[str, torch.Tensor] = {}
    if cfg.freeze_stats_outside_phase:
        saved = {n: b.detach().clone() for n, b in model.named_buffers() if n not in phase}
    result = train_r(
        model, optimizer, next_batch, loss_fn, until.rounds, until.threshold, until.min_rounds, until.max_rounds
    )
    if saved:
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in saved:
                    b.copy_(saved[n])
    return result


def _checked_phase(
    model: nn.Module, phase_names: Sequence[str], cfg: "LLPFConfig", step_c_lengths: Mapping[str, float] | None
) -> tuple[set[str], dict[str, torch.Tensor]]:
    """The phase as a set and the model's state, after checking both iteration kinds' preconditions."""
    phase = set(phase_names)
    state = model.state_dict()
    missing = sorted(phase - state.keys())
    if missing:
        raise KeyError(f"phase names not in the model: {missing[:5]}")
    if cfg.step_c > 0 and step_c_lengths is None:
        raise ValueError("cfg.step_c > 0 needs the phase's step_c_lengths (phase_step_c_lengths at the phase start)")
    return phase, state


def llpf_m2m_iteration(
    model: nn.Module,
    destination_state: Mapping[str, torch.Tensor],
    start_variances: Mapping[str, float],
    phase_names: Sequence[str],
    optimizer: torch.optim.Optimizer,
    next_batch,
    loss_fn: Callable,
    cfg: LLPFConfig,
    step_c_lengths: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """LLPF Alg. 1 l.5–8: one iteration P_i → P_{i+1}: Move → VarianceCorrection → Train^r → VarianceCorrection.

    - Move: only ``phase_names`` move toward ``destination_state`` (see ``move_state``); with ``cfg.step_c > 0`` pass
      the phase's ``step_c_lengths`` (``phase_step_c_lengths`` at the phase's start).
    - VarianceCorrection (both times): the phase's correctable tensors (every correctable tensor with
      ``cfg.correct_all_tensors``) are projected onto the variance sphere of ``start_variances``. The targets are the
      variances of the path's start model P0 (``state_variances(P0)``), not of the phase's first point.
    - Train^r: ``train_r`` with ``optimizer``, which must hold only phase parameters unless
      ``cfg.train_outside_phase``; ``phase_optimizer`` builds it. Use SGD without weight decay or momentum
      (LLPF §3.2): the variance constraint replaces weight decay, and the steps are small and local.

    BatchNorm state, step by step:

    - ``running_mean``/``running_var`` of BatchNorm layers in the phase ARE moved toward D like parameters (they are
      part of the model state and must match D at the end); they are never variance-corrected.
    - ``num_batches_tracked`` is never moved (an integer counter).
    - Training runs in train mode, so every BatchNorm layer — in the phase or not — updates its running statistics
      from the batches and increments ``num_batches_tracked``; with ``cfg.freeze_stats_outside_phase`` the buffers
      outside the phase are restored afterwards. All parameters outside the phase stay bit-for-bit unchanged either
      way (unless ``cfg.train_outside_phase`` or ``cfg.correct_all_tensors``).

    Returns metrics: ``losses`` (per training step), ``rolling_loss``, ``steps``, ``stopped_by``, ``step_lengths``
    (per moved tensor, the length travelled), ``distances`` (per floating tensor, ‖P_{i+1} − D‖),
    ``layer_distances`` (with ``cfg.group_weight_bias``: per Move unit of the phase, ``layer_distances``; else
    empty), ``variances`` (per correctable tensor, after the second correction), ``corrected`` (names corrected).
    """
    phase, state = _checked_phase(model, phase_names, cfg, step_c_lengths)
    if not cfg.train_outside_phase:
        name_of = {id(p): n for n, p in model.named_parameters()}
        outside = [
            name_of.get(id(p), "<not a model parameter>")
            for g in optimizer.param_groups
            for p in g["params"]
            if name_of.get(id(p)) not in phase
        ]
        if outside:
            raise ValueError(
                f"the optimizer holds parameters outside the phase ({outside[:5]}); build it with "
                "phase_optimizer or set train_outside_phase"
            )
    vc_names = list(state.keys()) if cfg.correct_all_tensors else list(phase_names)

    lengths = move_state(
        state,
        destination_state,
        phase_names,
        cfg.step_a,
        cfg.step_f,
        step_c_lengths if cfg.step_c > 0 else None,
        cfg.clamp,
        cfg.group_weight_bias,
    )
    apply_variance_correction(state, start_variances, vc_names, cfg.variance_eps)
    result = _train(model, optimizer, next_batch, loss_fn, cfg, phase)
    state = model.state_dict()
    corrected = apply_variance_correction(state, start_variances, vc_names, cfg.variance_eps)
    return {
        "losses": result.losses,
        "rolling_loss": result.rolling_loss,
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "step_lengths": lengths,
        "distances": tensor_distances(state, destination_state, [n for n in state if n in destination_state]),
        "layer_distances": (
            layer_distances(state, destination_state, phase_names, True) if cfg.group_weight_bias else {}
        ),
        "variances": state_variances(state),
        "corrected": corrected,
    }


def angle_conformal(base_lr: float, variance_now: float, variance_start: float) -> float:
    """LLPF Alg. 2 l.12–16: AngleConformal, η = η_base · Var(N) / Var(P0) for one tensor.

    Notes: the ratio of variances (not of standard deviations) is the papers' and the reference's default
    (``across_vs_lr_policy = 'var'``). ``variance_start`` must be > 0.
    """
    if not variance_start > 0:
        raise ValueError(f"AngleConformal needs a positive start variance, got {variance_start}")
    if variance_now < 0:
        raise ValueError(f"variance must be ≥ 0, got {variance_now}")
    return base_lr * variance_now / variance_start


def llpf_m2o_iteration(
    model: nn.Module,
    start_variances: Mapping[str, float],
    phase_names: Sequence[str],
    optimizer: torch.optim.Optimizer,
    next_batch,
    loss_fn: Callable,
    cfg: LLPFConfig,
    step_c_lengths: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """LLPF Alg. 2 l.6–8: one iteration toward the origin: Move(P_i, O) → AngleConformal → Train^r; no
    VarianceCorrection.

    - ``phase_names`` are the tensors moved toward zero; the caller excludes the normalization layers (LLPF §3.2,
      Table 2 "all except norm layers"): ``select_tensors(names, "all")`` minus ``normalization_tensor_names(model)``.
    - AngleConformal: ``optimizer`` must have one param group per moved tensor (``phase_optimizer(...,
      per_tensor_groups=True)``), so a per-tensor rate is real. The first call records each group's ``lr`` as its
      base rate in the group (key ``llpf_base_lr``, saved with the optimizer's state); every call then sets
      ``lr = angle_conformal(base, Var(N), start_variances[name])`` with Var(N) measured after Move. Only ``*.weight``
      tensors are rescaled unless ``cfg.conformal_all_tensors``; tensors with zero start variance keep the base rate.
    - Training: the optimizer decides what is trained. The reference trains every parameter, normalization layers
      included at their base rate (they are trained, just never moved); include them in the optimizer for that.
      BatchNorm running statistics follow the batches in train mode (not moved: they belong to norm layers).

    - ``cfg.compensate_layernorm`` (the authors' code): the model's LayerNorm tensors that are not in the phase move
      away from the origin by the same Move (``compensating_move``); their rate stays the base rate. BatchNorm stays.
    - ``cfg.group_weight_bias``: Move treats each layer's weight and bias as one vector (``move_state``).

    Returns metrics as ``llpf_m2m_iteration`` (``distances`` are to the origin, i.e. tensor norms, including the
    compensated LayerNorm tensors) plus ``lrs`` (the rate set per rescaled tensor).
    """
    phase, state = _checked_phase(model, phase_names, cfg, step_c_lengths)
    origin = {n: torch.zeros_like(state[n]) for n in phase_names if state[n].is_floating_point()}
    compensated: list[str] = []
    if cfg.compensate_layernorm:
        compensated = [n for n in layernorm_tensor_names(model) if n not in phase]
        # the reference computes the point 2P − O before moving anything; LayerNorm is not in the phase, so the
        # order does not matter
        compensating_move(state, compensated, cfg.step_a, cfg.step_f, cfg.clamp, cfg.group_weight_bias)
    lengths = move_state(
        state,
        origin,
        list(origin),
        cfg.step_a,
        cfg.step_f,
        step_c_lengths if cfg.step_c > 0 else None,
        cfg.clamp,
        cfg.group_weight_bias,
    )

    name_of = {id(p): n for n, p in model.named_parameters()}
    param_names = set(name_of.values())
    targets = [
        n
        for n in phase_names
        if n in param_names
        and correctable(n, state[n])
        and (cfg.conformal_all_tensors or n.rsplit(".", 1)[-1] == "weight")
    ]
    target_set = set(targets)
    now = state_variances(state, targets)
    lrs: dict[str, float] = {}
    for group in optimizer.param_groups:
        group_names = [name_of.get(id(p)) for p in group["params"]]
        hit = [n for n in group_names if n in target_set]
        if not hit:
            continue
        if len(group["params"]) != 1:
            raise ValueError(f"AngleConformal needs one param group per moved tensor; a group holds {group_names[:5]}")
        name = hit[0]
        base = group.setdefault("llpf_base_lr", group["lr"])
        v0 = start_variances[name]
        group["lr"] = angle_conformal(base, now[name], v0) if v0 > 0 else base
        lrs[name] = group["lr"]
    result = _train(model, optimizer, next_batch, loss_fn, cfg, phase)
    state = model.state_dict()
    return {
        "losses": result.losses,
        "rolling_loss": result.rolling_loss,
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "step_lengths": lengths,
        "distances": tensor_distances(state, None, list(origin) + compensated),
        "variances": state_variances(state),
        "lrs": lrs,
    }
