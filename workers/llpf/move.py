"""Move (LLPF Alg. 1 l.12–16), on one tensor and on a phase of a state in place; ``step_c`` lengths (LW §4) and
the reference's LayerNorm compensation in M2O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from .distances import layer_distances, tensor_distances
from .units import _move_units


@torch.no_grad()
def _move(
    current: torch.Tensor, destination: torch.Tensor, step_a: float, step_f: float, step_c_length: float, clamp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move plus the length actually travelled (a 0-d tensor); no host synchronisation."""
    if not current.is_floating_point():
        raise TypeError(f"move needs a floating tensor, got {current.dtype}")
    if step_a < 0 or step_f < 0 or step_c_length < 0:
        raise ValueError("step_a, step_f and the step_c length must be ≥ 0")
    destination = destination.to(device=current.device)
    work = torch.promote_types(current.dtype, torch.float32)
    cur = current.to(work)
    d = destination.to(work) - cur
    dist = torch.linalg.vector_norm(d)
    length = torch.clamp_min(dist * step_a, step_f + step_c_length)
    safe = torch.where(dist > 0, dist, torch.ones_like(dist))
    frac = torch.where(dist > 0, length / safe, torch.zeros_like(dist))
    out = (cur + d * frac).to(current.dtype)
    if clamp:
        out = torch.where(length >= dist, destination.to(current.dtype), out)
        length = torch.minimum(length, dist)
    else:
        length = torch.where(dist > 0, length, torch.zeros_like(length))  # a tensor already at D does not move
    return out, length


def move(
    current: torch.Tensor,
    destination: torch.Tensor,
    step_a: float,
    step_f: float,
    step_c_length: float = 0.0,
    clamp: bool = True,
) -> torch.Tensor:
    """LLPF Alg. 1 l.12–16: Move.

    The papers write ``step = step_a·|P_iD| + step_f`` and ``M1 = P_i + step·P_iD``. This follows the authors' public
    code instead (DFL_torch ``move_tensor_toward``): each tensor moves along the UNIT direction ``d/‖d‖`` toward its
    destination, ``d = D − P``, by the length ``max(step_f + c, step_a·‖d‖)``, where ``c = step_c_length`` is
    ``step_c`` × the tensor's distance to D at the start of the phase (LW Table 4's FDF recipes; see
    ``phase_step_c_lengths``). So ``step_f`` (+c) is an absolute length floor and ``step_a`` a fraction of the
    remaining distance.

    Choice: ``clamp=True`` (default) never passes the destination: when the length reaches ``‖d‖`` the result is
    exactly ``destination`` (bit-for-bit, not ``P + d``). ``clamp=False`` reproduces the reference code, whose fixed
    absolute step overshoots D and oscillates around it. A tensor already at D stays put. The arithmetic runs in at
    least float32 without autograd, the result keeps ``current``'s dtype, nothing is synchronised with the host.
    """
    return _move(current, destination, step_a, step_f, step_c_length, clamp)[0]


@torch.no_grad()
def move_state(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor],
    names: Iterable[str],
    step_a: float,
    step_f: float,
    step_c_lengths: Mapping[str, float] | None = None,
    clamp: bool = True,
    group_weight_bias: bool = False,
) -> dict[str, float]:
    """LLPF Alg. 1 l.5 (Alg. 2 l.6): Move applied to the phase's tensors of a state, in place.

    Only ``names`` move; integer tensors (``num_batches_tracked``) never move. BatchNorm running statistics that are
    in ``names`` move toward D like parameters: they are part of the model state and must match D at the end of the
    path. ``group_weight_bias=True`` moves each layer's weight and bias as ONE joined vector (``weight_bias_groups``;
    the authors' LeNet5 configurations): the direction is the joined difference's unit vector and the length
    ``max(step_f + c, step_a·‖d_joined‖)`` is shared, so a bias travels the share of the step its coordinates have in
    ``d`` instead of a full ``step_f`` of its own. Returns the length each moved tensor travelled (the joined length
    for both members of a pair).
    """
    lengths: dict[str, torch.Tensor] = {}
    for unit in _move_units(state, names, group_weight_bias):
        c = 0.0 if step_c_lengths is None else float(step_c_lengths.get(unit[0], 0.0))
        if len(unit) == 1:
            t = state[unit[0]]
            new, length = _move(t, destination[unit[0]], step_a, step_f, c, clamp)
            t.copy_(new)
        else:
            tensors = [state[n] for n in unit]
            dtype = torch.promote_types(tensors[0].dtype, tensors[1].dtype)
            joined = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
            target = torch.cat([destination[n].to(device=joined.device, dtype=dtype).reshape(-1) for n in unit])
            new, length = _move(joined, target, step_a, step_f, c, clamp)
            for t, part in zip(tensors, torch.split(new, [t.numel() for t in tensors])):
                t.copy_(part.view_as(t))
        for n in unit:
            lengths[n] = length
    if not lengths:
        return {}
    values = torch.stack([v.to(torch.float64) for v in lengths.values()]).tolist()
    return dict(zip(lengths, values))


@torch.no_grad()
def phase_step_c_lengths(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor],
    names: Iterable[str],
    step_c: float,
    group_weight_bias: bool = False,
) -> dict[str, float]:
    """LW §4 / Table 4 (FDF recipes, ``step_c``): per-tensor extra step ``c = step_c × ‖P − D‖`` fixed at the start of
    a phase.

    The reference recomputes these lengths whenever a phase's move parameters are loaded, from the model as it is
    then; call this once at the phase's first iteration, from the phase's first point, and keep the result for the
    whole phase (persist it with the phase's checkpoint so a resumed phase uses the same lengths). With
    ``group_weight_bias`` a joined weight and bias share ``c = step_c × ‖(P − D)_joined‖``, stored under both names
    (choice: the reference takes the weight's own distance for the pair).
    """
    names = [n for n in names if state[n].is_floating_point()]
    if not group_weight_bias:
        dist = tensor_distances(state, destination, names)
        return {n: step_c * d for n, d in dist.items()}
    out: dict[str, float] = {}
    for label, d in layer_distances(state, destination, names, True, keyed_by_unit=True).items():
        for n in label:
            out[n] = step_c * d
    return out


@torch.no_grad()
def compensating_move(
    state: Mapping[str, torch.Tensor],
    names: Iterable[str],
    step_a: float,
    step_f: float,
    clamp: bool = True,
    group_weight_bias: bool = False,
) -> dict[str, float]:
    """LLPF Alg. 2 l.6 as the authors' code runs it for LayerNorm (DFL_torch ``compensate_move_layer``): while the
    other tensors move toward the origin O, LayerNorm tensors move AWAY from it by the same Move, toward ``2P − O``
    (length ``max(step_f, step_a·‖P‖)``), in place. The paper instead excludes normalization layers from Algorithm 2
    (§3.2); this is the reference's option. Returns the length each tensor travelled."""
    names = [n for n in names if state[n].is_floating_point()]
    away = {n: state[n].detach() * 2 for n in names}
    return move_state(state, away, names, step_a, step_f, None, clamp, group_weight_bias)
