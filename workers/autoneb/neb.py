"""Nudged Elastic Band (NEB) and AutoNEB over network parameters: plain functions over tensors.

Source: "Essentially No Barriers in Neural Network Energy Landscape" (Draxler et al., ICML 2018), cited as *AutoNEB*:
§3.1 (NEB, the improved tangent of Henkelman & Jónsson 2000, string-method redistribution), Algorithm 1 (NEB),
Algorithm 2 (AutoNEB), §4.1 (schedule), Appendix A (insertion rule, eq. 4). Settings of the authors' published configs
are in ``shared/reference/autoneb-settings.md``.

Conventions:

- A *pivot* is one flat vector over a model's float parameters **and** float buffers (``StateLayout``: parameters
  first, then buffers such as BatchNorm ``running_mean``/``running_var``). Integer buffers (``num_batches_tracked``)
  are not coordinates: they count steps, not a place in parameter space; ``unflatten_state`` takes them from a
  template state (an end point). A *path* is a ``(P, D)`` tensor of pivots; rows 0 and P−1 are the minima and never
  move.
- The *geometry* (segment lengths, tangents, the projection of the force) is measured over the first
  ``layout.num_parameters`` coordinates only: the training loss is a function of the parameters, the buffers follow.
  A movable pivot's buffers are the running statistics of its own train-mode batches (as in the authors' code, where
  the train-mode forward pass writes them back into the pivot); redistribution moves them with the same interpolation
  weights as the parameters. (The authors' code measures distances over buffers too; running variances would then
  weigh in the arc length although the loss does not depend on them.)
- Target spacing: ``weights`` (P−1,) are the target shares of the arc length of each segment (equal at the start;
  an inserted pivot splits its segment's share at its α, so insertion does not move pivots that exist).
- The optimiser is SGD with momentum held as a plain tensor ``momentum`` (P−2, num_parameters) that the caller owns,
  zeroes at every cycle (``new_momentum``) and checkpoints; ``buf ← μ·buf + g; θ ← θ − lr·buf`` is
  ``torch.optim.SGD(momentum=μ, dampening=0)`` exactly.
- Nothing here draws random numbers; the batches come from the caller's ``pivot_loss`` (seed them from the pair,
  the cycle, the step and the pivot), so a step is a pure function of its inputs.

Only torch and the standard library are imported (and ``workers.evaluation``'s evaluator is used for evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "INSERT_THRESHOLD_CODE",
    "INSERT_THRESHOLD_PAPER",
    "L2_DEFAULT",
    "MOMENTUM_DEFAULT",
    "SCHEDULES",
    "AutoNEBState",
    "Cycle",
    "StateLayout",
    "auto_neb",
    "cross_entropy_pivot_loss",
    "dense_alphas",
    "dense_count",
    "dense_points",
    "dense_positions",
    "edge_saddle",
    "evaluate_path",
    "finish_cycle",
    "flatten_state",
    "improved_tangents",
    "insert_equally",
    "insert_pivots",
    "insertion_points",
    "linear_path",
    "load_pivot_",
    "neb_step",
    "new_momentum",
    "path_length_ratio",
    "pivot_batches",
    "pivot_evaluator",
    "project_perpendicular",
    "read_pivot",
    "redistribute",
    "run_steps",
    "schedule",
    "segment_lengths",
    "start_cycle",
    "state_layout",
    "steps_before",
    "unflatten_state",
]

L2_DEFAULT = 1e-4  # AutoNEB §4.1: l2-regularisation λ = 0.0001, added to the gradient
MOMENTUM_DEFAULT = 0.9  # AutoNEB §4.1: SGD with momentum 0.9
INSERT_THRESHOLD_PAPER = 0.2  # AutoNEB §4.1: "by at least 20 %"
INSERT_THRESHOLD_CODE = 0.1  # authors' FillHighest default (no config overrides it)


# ------------------------------------------------------------------------------------------ pivots over a state


@dataclass(frozen=True)
class StateLayout:
    """Where each float tensor of a ``state_dict`` lives in a flat pivot vector: parameters first, then float
    buffers. ``integer_buffers`` are left out of the vector (taken from a template by ``unflatten_state``)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    num_parameters: int  # leading coordinates that are parameters (the geometry of the path)
    size: int  # all coordinates
    integer_buffers: tuple[str, ...] = ()
    num_parameter_tensors: int = 0  # names[:num_parameter_tensors] are parameters

    def numel(self, index: int) -> int:
        return math.prod(self.shapes[index])


def state_layout(model: nn.Module) -> StateLayout:
    """The flat layout of ``model``'s parameters and float buffers (``state_dict`` names)."""
    names, shapes, offsets = [], [], []
    offset = 0
    for name, p in model.named_parameters():
        names.append(name)
        shapes.append(tuple(p.shape))
        offsets.append(offset)
        offset += p.numel()
    num_parameters, num_parameter_tensors = offset, len(names)
    integer_buffers = []
    for name, b in model.named_buffers():
        if not b.is_floating_point():
            integer_buffers.append(name)
            continue
        names.append(name)
        shapes.append(tuple(b.shape))
        offsets.append(offset)
        offset += b.numel()
    return StateLayout(
        tuple(names),
        tuple(shapes),
        tuple(offsets),
        num_parameters,
        offset,
        tuple(integer_buffers),
        num_parameter_tensors,
    )


def flatten_state(
    state: Mapping[str, torch.Tensor],
    layout: StateLayout,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A state's float tensors as one pivot vector in ``layout`` order."""
    missing = [n for n in layout.names if n not in state]
    if missing:
        raise ValueError(f"state lacks tensors of the layout: {', '.join(missing[:5])}")
    parts = [state[n].detach().reshape(-1).to(dtype=dtype, device=device) for n in layout.names]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype, device=device)


def unflatten_state(
    vector: torch.Tensor,
    layout: StateLayout,
    template: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """A ``state_dict`` from a pivot vector: float tensors in the template's dtypes, integer buffers
    (``num_batches_tracked``) copied from ``template``."""
    if vector.shape != (layout.size,):
        raise ValueError(f"pivot has shape {tuple(vector.shape)}; the layout needs ({layout.size},)")
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(layout.names):
        ref = template[name]
        chunk = vector[layout.offsets[i] : layout.offsets[i] + layout.numel(i)]
        out[name] = chunk.reshape(layout.shapes[i]).to(dtype=ref.dtype, device=ref.device).clone()
    for name in layout.integer_buffers:
        out[name] = template[name].clone()
    return out


def _model_tensors(model: nn.Module, layout: StateLayout) -> list[torch.Tensor]:
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    return [tensors[n] for n in layout.names]


@torch.no_grad()
def load_pivot_(
    model: nn.Module, vector: torch.Tensor, layout: StateLayout, tensors: Sequence[torch.Tensor] | None = None
) -> None:
    """Write a pivot into the model's parameters and buffers in place (no new ``Parameter`` objects)."""
    tensors = tensors if tensors is not None else _model_tensors(model, layout)
    sources = torch.split(vector[: layout.size], [layout.numel(i) for i in range(len(tensors))])
    _copy_all([t.view(-1) for t in tensors], list(sources))


@torch.no_grad()
def read_pivot(
    model: nn.Module,
    layout: StateLayout,
    out: torch.Tensor,
    tensors: Sequence[torch.Tensor] | None = None,
    start: int = 0,
) -> torch.Tensor:
    """Copy the model's tensors from index ``start`` of the layout on (``start = len(parameters)``: the buffers only)
    into the pivot vector ``out``."""
    tensors = tensors if tensors is not None else _model_tensors(model, layout)
    if start < len(tensors):
        begin = layout.offsets[start]
        targets = torch.split(out[begin : layout.size], [layout.numel(i) for i in range(start, len(tensors))])
        _copy_all(list(targets), [t.detach().reshape(-1) for t in tensors[start:]])
    return out


def _copy_all(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """targets[i].copy_(sources[i]) for all i, as one fused multi-tensor copy where torch has it."""
    if hasattr(torch, "_foreach_copy_") and targets:
        torch._foreach_copy_(targets, sources)
    else:
        for t, s in zip(targets, sources):
            t.copy_(s)


# --------------------------------------------------------------------------------------------- path geometry


def segment_lengths(pivots: torch.Tensor, geometry: int | None = None) -> torch.Tensor:
    """AutoNEB §3.1 eq. (3): ‖p_{i+1} − p_i‖ of every segment, over the first ``geometry`` coordinates."""
    g = pivots[:, :geometry] if geometry is not None else pivots
    return (g[1:] - g[:-1]).norm(dim=1)


def improved_tangents(pivots: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """AutoNEB §3.1 (Henkelman & Jónsson 2000, eqs. 8–11): the unit tangent at every inner pivot (P−2 rows).

    Towards the higher neighbour where the loss is monotone along the pivot's neighbours (τ⁺ = p_{i+1} − p_i when
    L_{i+1} > L_i > L_{i−1}, τ⁻ = p_i − p_{i−1} when L_{i+1} < L_i < L_{i−1}); at a local extremum the energy-weighted
    mix τ⁺ΔV_max + τ⁻ΔV_min when L_{i+1} > L_{i−1}, else τ⁺ΔV_min + τ⁻ΔV_max, with ΔV_max/min the larger/smaller of
    |L_{i±1} − L_i|. Where both differences vanish, the bisector of the normalised τ⁺ and τ⁻.
    """
    losses = losses.to(pivots.dtype)
    forward = pivots[2:] - pivots[1:-1]
    backward = pivots[1:-1] - pivots[:-2]
    l_prev, l_here, l_next = losses[:-2], losses[1:-1], losses[2:]
    d_next, d_prev = (l_next - l_here).abs(), (l_prev - l_here).abs()
    d_max, d_min = torch.maximum(d_next, d_prev), torch.minimum(d_next, d_prev)
    rising = (l_next > l_here) & (l_here > l_prev)
    falling = (l_next < l_here) & (l_here < l_prev)
    higher_next = l_next > l_prev
    a = torch.where(rising, 1.0, torch.where(falling, 0.0, torch.where(higher_next, d_max, d_min)))
    b = torch.where(rising, 0.0, torch.where(falling, 1.0, torch.where(higher_next, d_min, d_max)))
    flat = (a + b) == 0  # no energy difference to either side: τ⁺/|τ⁺| + τ⁻/|τ⁻| (no host synchronisation)
    a = torch.where(flat, 1.0 / forward.norm(dim=1).clamp_min(1e-30), a)
    b = torch.where(flat, 1.0 / backward.norm(dim=1).clamp_min(1e-30), b)
    tangent = a[:, None] * forward + b[:, None] * backward
    return tangent / tangent.norm(dim=1, keepdim=True).clamp_min(1e-30)


def project_perpendicular(gradients: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """AutoNEB §3.1 eq. (2): ∇L(p_i) − (∇L(p_i)·τ̂_i) τ̂_i, row by row (the negative of the nudged loss force)."""
    return gradients - (gradients * tangents).sum(dim=1, keepdim=True) * tangents


def redistribute(
    pivots: torch.Tensor,
    weights: torch.Tensor | None = None,
    geometry: int | None = None,
) -> torch.Tensor:
    """AutoNEB Alg. 1 l.2 (string method, ``spring_constant: inf``): pivots moved along the current polyline so that
    segment i holds the share ``weights[i] / Σ weights`` of its arc length (equal shares without weights).

    Arc length is measured over the first ``geometry`` coordinates; each new pivot is the linear interpolation of the
    two old pivots around its target position over **all** coordinates (buffers included). End pivots stay. Returns
    a new tensor; computed on the pivots' device without a host synchronisation."""
    out = pivots.clone()
    if pivots.shape[0] > 2:
        out[1:-1] = _redistributed_rows(pivots, weights, geometry)
    return out


def _redistributed_rows(pivots: torch.Tensor, weights: torch.Tensor | None, geometry: int | None) -> torch.Tensor:
    count = pivots.shape[0]
    if weights is None:
        weights = torch.ones(count - 1, dtype=torch.float64)
    if weights.shape != (count - 1,):
        raise ValueError(f"weights have shape {tuple(weights.shape)}; a path of {count} pivots needs ({count - 1},)")
    lengths = segment_lengths(pivots, geometry).to(torch.float64)
    cumulative = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    w = weights.to(device=pivots.device, dtype=torch.float64)
    targets = (w / w.sum()).cumsum(0)[:-1] * cumulative[-1]  # arc-length positions of pivots 1..P-2
    seg = (torch.searchsorted(cumulative, targets, right=True) - 1).clamp(0, count - 2)
    seg_len = cumulative[seg + 1] - cumulative[seg]
    t = ((targets - cumulative[seg]) / seg_len.clamp_min(1e-300)).clamp(0.0, 1.0)
    t = torch.where(seg_len > 0, t, torch.zeros_like(t)).to(pivots.dtype)[:, None]
    return torch.lerp(pivots[seg], pivots[seg + 1], t)


def insert_pivots(
    pivots: torch.Tensor,
    weights: torch.Tensor,
    insertions: Iterable[tuple[int, float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoNEB Alg. 2 l.5 / App. A: new pivots (1−α)·p_i + α·p_{i+1} for each (segment i, α); the segment's target
    share of arc length is split at α. Several α in one segment are allowed (sorted). Returns (pivots, weights)."""
    by_segment: dict[int, list[float]] = {}
    for seg, alpha in insertions:
        if not 0 <= seg < pivots.shape[0] - 1:
            raise ValueError(f"insertion segment {seg} is outside 0..{pivots.shape[0] - 2}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"insertion alpha {alpha} is outside (0, 1)")
        by_segment.setdefault(seg, []).append(float(alpha))
    rows, shares = [pivots[:1]], []
    for seg in range(pivots.shape[0] - 1):
        last = 0.0
        for alpha in sorted(by_segment.get(seg, [])) + [1.0]:
            if alpha < 1.0:
                rows.append(torch.lerp(pivots[seg], pivots[seg + 1], alpha)[None])
            else:
                rows.append(pivots[seg + 1 : seg + 2])
            shares.append(float(weights[seg]) * (alpha - last))
            last = alpha
    new_weights = torch.tensor(shares, dtype=torch.float64)
    return torch.cat(rows), new_weights / new_weights.sum()


def insert_equally(pivots: torch.Tensor, weights: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoNEB Alg. 2 l.2 (the authors' ``equal`` fill): ``count`` equally spaced pivots in every segment."""
    alphas = [(k + 1) / (count + 1) for k in range(count)]
    return insert_pivots(pivots, weights, [(s, a) for s in range(pivots.shape[0] - 1) for a in alphas])


def linear_path(start: torch.Tensor, end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoNEB Alg. 2 l.1: the straight segment (θ1, θ2) as a 2-pivot path with one target share."""
    return torch.stack([start, end]), torch.ones(1, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------- NEB step


def new_momentum(pivots: torch.Tensor, geometry: int) -> torch.Tensor:
    """Zero SGD momentum for the movable pivots (AutoNEB §4.1: the optimiser is created anew at every cycle)."""
    return torch.zeros(pivots.shape[0] - 2, geometry, dtype=pivots.dtype, device=pivots.device)


def cross_entropy_pivot_loss(
    batch: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
) -> Callable[[nn.Module, int, int], torch.Tensor]:
    """A ``pivot_loss`` for ``neb_step``: cross-entropy of the model on ``batch(step, pivot)``."""

    def loss(model: nn.Module, step: int, pivot: int) -> torch.Tensor:
        x, y = batch(step, pivot)
        return F.cross_entropy(model(x), y)

    return loss


def pivot_batches(
    data,
    batch_size: int,
    seed: int,
    augment: bool = True,
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """AutoNEB §4.1 ("the loss is evaluated for each pivot on a random batch"): ``batch(step, pivot)`` for
    ``cross_entropy_pivot_loss``. Pivot i walks its own epochs without replacement (a ``data.BatchStream`` seeded
    with (seed, i), the step as its cursor), with the training augmentation on by default as in the authors' code;
    a pure function of (seed, step, pivot). Fold the pair into ``seed`` (``data.derive_seed``)."""
    from ..data import BatchStream, derive_seed

    streams: dict[int, BatchStream] = {}

    def batch(step: int, pivot: int) -> tuple[torch.Tensor, torch.Tensor]:
        if pivot not in streams:
            streams[pivot] = BatchStream(data, batch_size, derive_seed("neb-pivot", seed, pivot), augment)
        return streams[pivot].batch(step)

    return batch


def neb_step(
    model: nn.Module,
    layout: StateLayout,
    pivots: torch.Tensor,
    weights: torch.Tensor,
    momentum: torch.Tensor,
    lr: float,
    pivot_loss: Callable[[nn.Module, int, int], torch.Tensor],
    step: int,
    end_losses: tuple[float, float],
    l2: float = L2_DEFAULT,
    momentum_coefficient: float = MOMENTUM_DEFAULT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoNEB Alg. 1 l.2–6: one NEB iteration over all movable pivots; updates ``pivots`` and ``momentum`` in place.

    1. redistribute the pivots to the target shares ``weights`` (string method, l.2);
    2. for each movable pivot i: load it into ``model`` (train mode), loss = ``pivot_loss(model, step, i)`` on the
       pivot's own batch, backward; the pivot's buffers take the running statistics that forward pass wrote;
    3. g_i = ∇L(p_i) + l2·p_i (the l2 term added to the gradient by hand), projected perpendicular to the improved
       tangent (l.4, eq. 2) computed from the step's losses (``end_losses``: the fixed minima's losses);
    4. SGD with momentum on the parameters: buf ← μ·buf + g⊥, p ← p − lr·buf (l.5).

    Returns (losses of the movable pivots as a (P−2,) tensor, the redistributed-then-updated pivots ≡ ``pivots``).
    No host synchronisation except what ``pivot_loss`` itself does.
    """
    count = pivots.shape[0]
    n = layout.num_parameters
    if momentum.shape != (count - 2, n):
        raise ValueError(
            f"momentum has shape {tuple(momentum.shape)}; {count} pivots need ({count - 2}, {n}): "
            "re-create it with new_momentum after inserting pivots"
        )
    if count <= 2:
        return pivots.new_zeros(0), pivots
    pivots[1:-1] = _redistributed_rows(pivots, weights, n)
    tensors = _model_tensors(model, layout)
    n_param_tensors = layout.num_parameter_tensors
    params = tensors[:n_param_tensors]
    grads = pivots.new_empty(count - 2, n)
    losses = pivots.new_empty(count)
    model.train()
    for i in range(1, count - 1):
        load_pivot_(model, pivots[i], layout, tensors)
        for p in params:
            p.grad = None
        loss = pivot_loss(model, step, i)
        loss.backward()
        losses[i] = loss.detach()
        if params:
            torch.cat(
                [p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in params],
                out=grads[i - 1],
            )
        read_pivot(model, layout, pivots[i], tensors, start=n_param_tensors)  # buffers of this pivot's batch
    losses[0], losses[-1] = float(end_losses[0]), float(end_losses[1])
    if l2:
        grads.add_(pivots[1:-1, :n], alpha=l2)
    tangents = improved_tangents(pivots[:, :n], losses)
    grads = project_perpendicular(grads, tangents)
    momentum.mul_(momentum_coefficient).add_(grads)
    pivots[1:-1, :n].sub_(momentum, alpha=lr)
    return losses[1:-1], pivots


# ------------------------------------------------------------------------------------------ dense evaluation


def dense_alphas(points_between: int = 9) -> list[float]:
    """AutoNEB §4.1 / authors' ``subsample_pivot_count``: α = 1/(k+1) … k/(k+1) between neighbouring pivots."""
    return [(j + 1) / (points_between + 1) for j in range(points_between)]


def dense_count(num_pivots: int, points_between: int = 9) -> int:
    """(P − 1)·(k + 1) + 1 points: every pivot plus ``points_between`` between each pair."""
    return (num_pivots - 1) * (points_between + 1) + 1


def dense_points(pivots: torch.Tensor, points_between: int = 9):
    """Yield (segment, α, vector) along the path: each pivot (α = 0) then the interpolated points of its segment;
    the last pivot as (P−2, 1.0). Buffers are interpolated linearly with the parameters."""
    alphas = dense_alphas(points_between)
    for seg in range(pivots.shape[0] - 1):
        yield seg, 0.0, pivots[seg]
        for a in alphas:
            yield seg, a, torch.lerp(pivots[seg], pivots[seg + 1], a)
    yield pivots.shape[0] - 2, 1.0, pivots[-1]


def evaluate_path(
    pivots: torch.Tensor, evaluator: Callable[[torch.Tensor], Mapping[str, float]], points_between: int = 9
) -> dict[str, torch.Tensor]:
    """AutoNEB Alg. 2 l.4: evaluate ``evaluator(vector)`` (eval mode, full sets: see ``pivot_evaluator``) at every
    dense point. Returns ``{metric: (dense_count,) float64 tensor}`` in path order."""
    values: dict[str, list[float]] = {}
    for _, _, vector in dense_points(pivots, points_between):
        for key, value in evaluator(vector).items():
            values.setdefault(key, []).append(float(value))
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}


def dense_positions(pivots: torch.Tensor, points_between: int = 9, geometry: int | None = None) -> torch.Tensor:
    """Normalised arc-length position in [0, 1] of every dense point (for loss-along-path plots)."""
    lengths = segment_lengths(pivots, geometry).to(torch.float64).cpu()
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), lengths.cumsum(0)])
    total = float(cumulative[-1]) or 1.0
    out = [float(cumulative[s]) + a * float(lengths[s]) for s, a, _ in dense_points(pivots[:, :0], points_between)]
    return torch.tensor(out, dtype=torch.float64) / total


def pivot_evaluator(evaluator, layout: StateLayout) -> Callable[[torch.Tensor], dict[str, float]]:
    """The path evaluator of ``evaluate_path``: load the pivot vector (parameters and float buffers) into
    ``evaluator.model`` and evaluate it with the one evaluation protocol (``evaluation.Evaluator``: full training set
    without augmentation and test set, eval mode): ``<split>_loss`` and ``<split>_error`` per split.

    BatchNorm: ``NoUpBN`` keeps the point's buffers, the linear interpolation of its pivots' (authors' code);
    ``UpBN`` re-estimates them over the training set at each point."""
    tensors = _model_tensors(evaluator.model, layout)

    def evaluate(vector: torch.Tensor) -> dict[str, float]:
        load_pivot_(evaluator.model, vector, layout, tensors)
        values = evaluator.evaluate()
        return {k: v for k, v in values.items() if k.endswith(("_loss", "_error"))}

    return evaluate


def insertion_points(
    dense_losses: torch.Tensor, num_pivots: int, threshold: float, count: int, points_between: int = 9
) -> list[tuple[int, float]]:
    """AutoNEB App. A eq. (4): where to insert pivots after a cycle.

    Residuum at α of segment i: ΔL = L(α) − [(1−α)L(p_i) + αL(p_{i+1})], divided by max_i L(p_i) − min_i L(p_i)
    (the range over the pivots). Per segment the α of the largest residuum; of the segments whose residuum exceeds
    ``threshold``, the ``count`` largest get one pivot each. Returns [(segment, α)] sorted by segment."""
    if dense_losses.shape != (dense_count(num_pivots, points_between),):
        raise ValueError(
            f"dense losses have {dense_losses.numel()} values; {num_pivots} pivots with "
            f"{points_between} points between need {dense_count(num_pivots, points_between)}"
        )
    if count <= 0 or num_pivots < 2:
        return []
    stride = points_between + 1
    values = dense_losses.to(torch.float64)
    at_pivots = values[::stride]
    scale = float(at_pivots.max() - at_pivots.min())
    scale = scale if scale > 0 else 1e-12
    alphas = torch.tensor(dense_alphas(points_between), dtype=torch.float64)
    best: list[tuple[float, int, float]] = []
    for seg in range(num_pivots - 1):
        inner = values[seg * stride + 1 : seg * stride + stride]
        guess = (1 - alphas) * at_pivots[seg] + alphas * at_pivots[seg + 1]
        residuum = (inner - guess) / scale
        j = int(residuum.argmax())
        if float(residuum[j]) > threshold:
            best.append((float(residuum[j]), seg, float(alphas[j])))
    best.sort(key=lambda r: (-r[0], r[1]))
    return sorted((seg, alpha) for _, seg, alpha in best[:count])


def path_length_ratio(pivots: torch.Tensor, geometry: int | None = None) -> float:
    """AutoNEB §4.4 ("between 50 % to 2.5 times longer than the direct connection"): the polyline's length over
    ‖θ2 − θ1‖, over the first ``geometry`` coordinates (the parameters)."""
    g = pivots[:, :geometry] if geometry is not None else pivots
    straight = float((g[-1] - g[0]).norm())
    return float(segment_lengths(pivots, geometry).sum()) / straight if straight > 0 else float("nan")


def edge_saddle(dense_by_cycle: Sequence[Mapping[str, torch.Tensor]], metric: str = "train_loss") -> dict[str, float]:
    """AutoNEB §4.3 / authors' ``weight_key: saddle_train_loss``: the edge's weight is the lowest over its cycles of
    the path maximum of ``metric``; of that cycle, the maximum of every dense metric along the path
    (``saddle_<metric>``) and the index of the cycle (``cycle``)."""
    if not dense_by_cycle:
        raise ValueError("edge_saddle needs the dense evaluation of at least one cycle")
    best = min(range(len(dense_by_cycle)), key=lambda c: (float(dense_by_cycle[c][metric].max()), c))
    out = {f"saddle_{k}": float(v.max()) for k, v in dense_by_cycle[best].items()}
    out["cycle"] = best
    return out


# ------------------------------------------------------------------------------------------ AutoNEB schedule


@dataclass(frozen=True)
class Cycle:
    """One AutoNEB cycle (Alg. 2 loop body): insert pivots first (``equal``: ``insert_count`` equally spaced per
    segment; ``highest``: up to ``insert_count`` by the previous cycle's dense train loss; ``none``), then ``steps``
    NEB steps at ``lr`` with fresh momentum, then the dense evaluation with ``points_between`` points per segment."""

    steps: int
    lr: float
    insert: str = "highest"
    insert_count: int = 2
    points_between: int = 9

    def __post_init__(self):
        if self.insert not in ("equal", "highest", "none"):
            raise ValueError(f"cycle insert {self.insert!r}; allowed: equal, highest, none")
        if self.steps < 0 or self.insert_count < 0 or self.points_between < 0:
            raise ValueError(
                f"cycle steps {self.steps}, insert_count {self.insert_count}, points_between "
                f"{self.points_between}: must be ≥ 0"
            )

    def to_json(self) -> dict:
        return {
            "steps": self.steps,
            "lr": self.lr,
            "insert": self.insert,
            "insert_count": self.insert_count,
            "points_between": self.points_between,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Cycle:
        """A cycle from its ``to_json`` form (a recipe's table); unknown or mistyped fields are refused."""
        fields = {"steps": int, "lr": float, "insert": str, "insert_count": int, "points_between": int}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"cycle field {unknown[0]!r}; allowed: {', '.join(fields)}")
        missing = [k for k in ("steps", "lr") if k not in data]
        if missing:
            raise ValueError(f"cycle lacks {missing[0]!r}; required: steps, lr")
        values = {}
        for key, value in data.items():
            kind = fields[key]
            ok = (
                isinstance(value, str)
                if kind is str
                else (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and (kind is float or float(value).is_integer())
                )
            )
            if not ok:
                raise ValueError(f"cycle {key} = {value!r}; allowed: {'a string' if kind is str else kind.__name__}")
            values[key] = kind(value)
        if values["lr"] <= 0:
            raise ValueError(f"cycle lr = {values['lr']!r}; allowed: a number > 0")
        return cls(**values)


def _standard() -> tuple[Cycle, ...]:
    # AutoNEB §4.1 / cifar10-resnet20.yaml: 4×1000 @0.1, 2×2000 @0.1, 4×1000 @0.01, 4×1000 @0.001;
    # cycle 1 inserts 3 equally spaced pivots, every later one up to 2 "highest".
    cycles = [Cycle(1000, 0.1, "equal", 3)] + [Cycle(1000, 0.1)] * 3 + [Cycle(2000, 0.1)] * 2
    return tuple(cycles + [Cycle(1000, 0.01)] * 4 + [Cycle(1000, 0.001)] * 4)


def _fast() -> tuple[Cycle, ...]:
    # cifar10-resnet20-fast.yaml: 15 pivots inserted equally (17 with the ends), 7 cycles of 2000 steps
    # (lr 0.1 ×3, 0.01 ×2, 0.001 ×2), 2 "highest" insertions at the start of the 0.01 and 0.001 parts,
    # subsample_pivot_count 1 (one dense point between neighbouring pivots).
    c = [
        Cycle(2000, 0.1, "equal", 15, 1),
        Cycle(2000, 0.1, "none", 0, 1),
        Cycle(2000, 0.1, "none", 0, 1),
        Cycle(2000, 0.01, "highest", 2, 1),
        Cycle(2000, 0.01, "none", 0, 1),
        Cycle(2000, 0.001, "highest", 2, 1),
        Cycle(2000, 0.001, "none", 0, 1),
    ]
    return tuple(c)


SCHEDULES: dict[str, tuple[Cycle, ...]] = {"standard": _standard(), "fast": _fast()}


def schedule(name: str) -> tuple[Cycle, ...]:
    """A published AutoNEB cycle schedule by name (``standard``: 14 cycles / 16 000 steps; ``fast``: 7 cycles)."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"autoneb schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}") from None


# ---------------------------------------------------------------------------------- AutoNEB state and cycles


@dataclass
class AutoNEBState:
    """Everything an edge needs to resume: the path, its target shares, the momentum of the running cycle, the index
    of the running cycle and the step within it, and the previous cycle's dense train losses (for insertion).
    ``to_tensors``/``from_tensors`` round-trip it through a safetensors-able ``{name: tensor}`` dict."""

    pivots: torch.Tensor  # (P, D)
    weights: torch.Tensor  # (P-1,) float64
    momentum: torch.Tensor  # (P-2, num_parameters)
    cycle: int = 0  # index into the schedule of the running (or next) cycle
    step: int = 0  # steps done in the running cycle
    started: bool = False  # the running cycle's insertion is done and its momentum created
    previous_dense: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "pivots": self.pivots.contiguous(),
            "weights": self.weights.contiguous(),
            "momentum": self.momentum.contiguous(),
            "counters": torch.tensor([self.cycle, self.step, int(self.started)], dtype=torch.int64),
            "previous_dense": self.previous_dense.contiguous(),
        }

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> AutoNEBState:
        cycle, step, started = (int(v) for v in tensors["counters"])
        return cls(
            tensors["pivots"].clone(),
            tensors["weights"].clone(),
            tensors["momentum"].clone(),
            cycle,
            step,
            bool(started),
            tensors["previous_dense"].clone(),
        )

    @classmethod
    def initial(cls, start: torch.Tensor, end: torch.Tensor, geometry: int) -> AutoNEBState:
        pivots, weights = linear_path(start, end)
        return cls(pivots, weights, new_momentum(pivots, geometry))


def steps_before(cycles: Sequence[Cycle], cycle: int) -> int:
    """NEB steps of the cycles before ``cycle`` (the global step at which it starts)."""
    return sum(c.steps for c in cycles[:cycle])


def start_cycle(
    state: AutoNEBState,
    cycle: Cycle,
    geometry: int,
    threshold: float = INSERT_THRESHOLD_PAPER,
    previous_points_between: int | None = None,
) -> list[tuple[int, float]]:
    """AutoNEB Alg. 2 l.5 (of the previous iteration) + §4.1: insert the cycle's pivots and zero the momentum.
    ``highest`` needs ``state.previous_dense`` (train losses of the previous cycle's dense evaluation, evaluated with
    ``previous_points_between`` points per segment). Returns the insertions made."""
    if cycle.insert == "equal" and cycle.insert_count:
        insertions = [
            (s, (k + 1) / (cycle.insert_count + 1))
            for s in range(state.pivots.shape[0] - 1)
            for k in range(cycle.insert_count)
        ]
    elif cycle.insert == "highest" and cycle.insert_count and state.previous_dense.numel():
        between = cycle.points_between if previous_points_between is None else previous_points_between
        insertions = insertion_points(
            state.previous_dense, state.pivots.shape[0], threshold, cycle.insert_count, between
        )
    else:
        insertions = []
    if insertions:
        state.pivots, state.weights = insert_pivots(state.pivots, state.weights, insertions)
    state.momentum = new_momentum(state.pivots, geometry)
    state.step, state.started = 0, True
    return insertions


def run_steps(
    model: nn.Module,
    layout: StateLayout,
    state: AutoNEBState,
    cycle: Cycle,
    pivot_loss: Callable[[nn.Module, int, int], torch.Tensor],
    end_losses: tuple[float, float],
    until: int | None = None,
    l2: float = L2_DEFAULT,
    momentum_coefficient: float = MOMENTUM_DEFAULT,
    step_offset: int = 0,
) -> torch.Tensor:
    """AutoNEB Alg. 1 l.1: NEB steps of the running cycle from ``state.step`` up to ``until`` (default: the cycle's
    end); ``pivot_loss`` gets ``step_offset + state.step`` (pass the steps of the earlier cycles, ``steps_before``, so
    that every step of the edge draws its own batches). Returns the last step's losses of the movable pivots (empty
    when no step ran)."""
    until = cycle.steps if until is None else min(until, cycle.steps)
    last = state.pivots.new_zeros(0)
    while state.step < until:
        last, _ = neb_step(
            model,
            layout,
            state.pivots,
            state.weights,
            state.momentum,
            cycle.lr,
            pivot_loss,
            step_offset + state.step,
            end_losses,
            l2,
            momentum_coefficient,
        )
        state.step += 1
    return last


def finish_cycle(
    state: AutoNEBState,
    cycle: Cycle,
    evaluator: Callable[[torch.Tensor], Mapping[str, float]],
    metric: str = "train_loss",
) -> dict[str, torch.Tensor]:
    """AutoNEB Alg. 2 l.4: the dense evaluation that closes a cycle; keeps ``metric`` for the next insertion and
    moves the state to the next cycle. Returns the dense values (``evaluate_path``)."""
    dense = evaluate_path(state.pivots, evaluator, cycle.points_between)
    state.previous_dense = dense[metric].clone()
    state.cycle, state.step, state.started = state.cycle + 1, 0, False
    return dense


def auto_neb(
    model: nn.Module,
    layout: StateLayout,
    start: torch.Tensor,
    end: torch.Tensor,
    cycles: Sequence[Cycle],
    pivot_loss: Callable[[nn.Module, int, int], torch.Tensor],
    evaluator: Callable[[torch.Tensor], Mapping[str, float]],
    end_losses: tuple[float, float],
    threshold: float = INSERT_THRESHOLD_PAPER,
    l2: float = L2_DEFAULT,
    state: AutoNEBState | None = None,
    metric: str = "train_loss",
) -> tuple[AutoNEBState, list[dict[str, torch.Tensor]]]:
    """AutoNEB Alg. 2: all cycles of one edge in one call (a unit runs ``start_cycle``/``run_steps``/
    ``finish_cycle`` itself, checkpointing ``state.to_tensors()`` between steps). ``pivot_loss`` gets the edge's
    global step (``steps_before`` + step in the cycle). Returns (final state, dense evaluation of every cycle)."""
    state = state or AutoNEBState.initial(start, end, layout.num_parameters)
    results = []
    while state.cycle < len(cycles):
        cycle = cycles[state.cycle]
        if not state.started:
            prev_between = cycles[state.cycle - 1].points_between if state.cycle else None
            start_cycle(state, cycle, layout.num_parameters, threshold, prev_between)
        run_steps(
            model, layout, state, cycle, pivot_loss, end_losses, l2=l2, step_offset=steps_before(cycles, state.cycle)
        )
        results.append(finish_cycle(state, cycle, evaluator, metric))
    return state, results
