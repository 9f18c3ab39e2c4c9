"""Perturbation directions for loss-landscape curves and surfaces θ + Σ λᵢ·εᵢ (Xu et al., §2, App. A.3).

A direction is a dict ``name -> tensor`` over a model's trainable parameters (``parameter_names``), never over
buffers: BatchNorm running statistics and ``num_batches_tracked`` are not part of any direction, so a perturbed
point keeps them from the centre state (NoUpBN) or re-estimates them (UpBN, see ``landscape.PointEvaluator``).

Gaussian directions are drawn tensor by tensor on the CPU in float32, each tensor from a generator seeded with
(seed, tensor name): a direction is a pure function of (seed, names, shapes, normalisation, one-d policy, centre),
bit for bit on any device and in any tensor order.

Normalisations (App. A.3):
- ``norm``: ε ← ‖θ‖·ε/‖ε‖ over all normalised tensors together (the paper's default).
- ``laynorm``: per layer, a layer being one parameter tensor: εₗ ← ‖θₗ‖·εₗ/‖εₗ‖.
- ``filnorm``: per filter (Li et al. 2018): a filter is one slice along dim 0 of a tensor with two or more dimensions
  (an output channel of a conv kernel, an output row of a linear weight): dᵢ ← dᵢ·‖wᵢ‖/(‖dᵢ‖ + 1e-10).
- ``none``: the raw draw (N(0, 1) entries).

Policy for 1-D tensors (biases, BatchNorm/LayerNorm affine), ``one_d``:
- ``normalise`` (default): 1-D tensors are drawn and normalised like the others — with ``norm`` they take part in
  the global norms (the paper's "every trainable parameter"); with ``laynorm`` and ``filnorm`` each 1-D tensor is
  scaled as one unit to its own tensor's norm (a per-element "filter" would make every entry ±|wᵢ|).
- ``zero``: the direction is 0 on 1-D tensors, and they are left out of the norms (Li et al.'s ``ignore='biasbn'``).
- ``keep``: 1-D tensors keep their raw N(0, 1) draw, unscaled, and are left out of the norms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..data import generator

NORMALISATIONS = ("norm", "laynorm", "filnorm", "none")
ONE_D_POLICIES = ("normalise", "zero", "keep")
FILNORM_EPS = 1e-10  # Li et al.'s guard against a zero filter in the direction

Direction = dict[str, torch.Tensor]


def parameter_names(model: nn.Module) -> list[str]:
    """Names of the model's trainable parameters in module order (the tensors a direction covers)."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _check(value: str, field: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(allowed)}")


def gaussian_direction(
    centre: Mapping[str, torch.Tensor],
    names: Iterable[str],
    seed: int,
    normalisation: str = "norm",
    one_d: str = "normalise",
) -> Direction:
    """Xu et al. §2.2 / App. A.3: a Gaussian direction ε ~ N(0, I) over ``names``, normalised against the centre θ."""
    _check(normalisation, "normalisation", NORMALISATIONS)
    _check(one_d, "one_d", ONE_D_POLICIES)
    raw = {}
    for name in names:
        ref = centre[name]
        draw = torch.randn(
            tuple(ref.shape), generator=generator("gaussian-direction", int(seed), name), dtype=torch.float32
        )
        raw[name] = draw.to(device=ref.device, dtype=ref.dtype)
    return normalise_direction(raw, centre, normalisation, one_d)


def normalise_direction(
    direction: Mapping[str, torch.Tensor],
    centre: Mapping[str, torch.Tensor],
    normalisation: str = "norm",
    one_d: str = "normalise",
) -> Direction:
    """Xu et al. App. A.3 (Norm / LayNorm / FilNorm of Li et al.): scale ``direction`` against the centre θ."""
    _check(normalisation, "normalisation", NORMALISATIONS)
    _check(one_d, "one_d", ONE_D_POLICIES)
    out = {name: d.clone() for name, d in direction.items()}
    scaled = []  # the tensors the normalisation acts on
    for name, d in out.items():
        if d.dim() <= 1 and one_d == "zero":
            d.zero_()
        elif d.dim() <= 1 and one_d == "keep":
            pass
        else:
            scaled.append(name)
    if normalisation == "none":
        return out
    if normalisation == "norm":
        theta_sq = sum(float(centre[n].double().pow(2).sum()) for n in scaled)
        eps_sq = sum(float(out[n].double().pow(2).sum()) for n in scaled)
        factor = math.sqrt(theta_sq) / math.sqrt(eps_sq) if eps_sq > 0 else 0.0
        for n in scaled:
            out[n].mul_(factor)
        return out
    for n in scaled:
        d, w = out[n], centre[n]
        if normalisation == "filnorm" and d.dim() >= 2:
            d_norm = d.flatten(1).norm(dim=1)
            w_norm = w.flatten(1).norm(dim=1).to(d)
            d.mul_((w_norm / (d_norm + FILNORM_EPS)).view(-1, *([1] * (d.dim() - 1))))
        else:  # laynorm, and filnorm on a 1-D tensor under "normalise": the whole tensor is one unit
            d_norm = float(d.norm())
            d.mul_(float(w.norm()) / (d_norm + FILNORM_EPS))
    return out


def direction_between(
    origin: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], names: Iterable[str]
) -> Direction:
    """Xu et al. §2.3–2.4: ε = θ_target − θ_origin (the next checkpoint: v-side; another mode: w-basin, λ ∈ [−1, 2])."""
    return {n: (target[n].to(origin[n]) - origin[n]) for n in names}


def negative_gradient_direction(
    model: nn.Module, centre: Mapping[str, torch.Tensor], batches, names: Iterable[str] | None = None
) -> Direction:
    """Xu et al. §2.3: ε = −∇_θ L(θ), the mean cross-entropy over ``batches`` (eval mode, the centre's BN
    statistics)."""
    import torch.nn.functional as F

    model.load_state_dict(dict(centre))
    model.eval()
    params = dict(model.named_parameters())
    names = list(names) if names is not None else parameter_names(model)
    batches = list(batches)
    total = sum(int(yb.shape[0]) for _, yb in batches)
    grads = {n: torch.zeros_like(params[n]) for n in names}
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / total
        for n, g in zip(names, torch.autograd.grad(loss, [params[n] for n in names])):
            grads[n].add_(g)
    return {n: -g.detach() for n, g in grads.items()}


def scale_direction(direction: Mapping[str, torch.Tensor], factor: float) -> Direction:
    return {n: d * factor for n, d in direction.items()}


def direction_norm(direction: Mapping[str, torch.Tensor]) -> float:
    """‖ε‖₂ over all tensors, accumulated in float64."""
    return math.sqrt(sum(float(d.double().pow(2).sum()) for d in direction.values()))


def flatten(direction: Mapping[str, torch.Tensor], names: Iterable[str]) -> torch.Tensor:
    """The tensors ``names`` of a direction or state concatenated into one vector (in ``names`` order)."""
    return torch.cat([direction[n].reshape(-1) for n in names])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor], names: Iterable[str]) -> Direction:
    """Inverse of ``flatten``: split a vector into tensors shaped like ``like[name]`` (dtype and device of ``like``)."""
    names = list(names)
    total = sum(like[n].numel() for n in names)
    if total != vector.numel():
        raise ValueError(f"vector: {vector.numel()} entries, the tensors named hold {total}")
    out, offset = {}, 0
    for n in names:
        ref = like[n]
        size = ref.numel()
        out[n] = vector[offset : offset + size].reshape(ref.shape).to(device=ref.device, dtype=ref.dtype)
        offset += size
    return out


def cosine(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """cos∠(a, b) over the tensors the two directions share, in float64 (Xu et al. Fig. 5 and Fig. 9)."""
    names = [n for n in a if n in b]
    dot = sum(float((a[n].double() * b[n].double().to(a[n].device)).sum()) for n in names)
    na = math.sqrt(sum(float(a[n].double().pow(2).sum()) for n in names))
    nb = math.sqrt(sum(float(b[n].double().pow(2).sum()) for n in names))
    if na == 0 or nb == 0:
        raise ValueError("cosine: a direction is zero on the tensors the two share")
    return dot / (na * nb)


def angle_degrees(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """The angle between two directions in degrees, in [0, 180] (Xu et al. Fig. 5)."""
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine(a, b)))))
