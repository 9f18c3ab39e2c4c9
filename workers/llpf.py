"""Low-Loss Path Finding (LLPF) primitives: plain functions over parameter tensors.

Two papers describe the method:

- "Low-Loss Space in Neural Networks is Continuous and Fully Connected" (Tian et al.), cited as *LLPF*:
  Algorithm 1 (LLPF_M2M, model to model), Algorithm 2 (LLPF_M2O, model to origin), §4 path validity, A.6-A.8.
- "Connecting Independently Trained Modes via Layer-Wise Connectivity", cited as *LW*: §4 (phases following the data
  flow, the FDF strategy with ``step_c``), Appendix F (recipes), Appendix N (architectures).

Conventions used throughout:

- A *state* is a ``{name: tensor}`` mapping in PyTorch ``state_dict`` naming. Per-tensor functions (``move``,
  ``variance_correction``) return new tensors; the dict-level helpers (``move_state``, ``apply_variance_correction``)
  write **in place** into the tensors of the mapping they are given, so passing ``model.state_dict()`` (whose tensors
  share storage with the parameters and buffers) updates the model without replacing any ``Parameter`` object the
  optimizer holds.
- Variance is the **population** variance ``mean((w - mean(w))**2)`` (``unbiased=False``), computed in float64, as
  written in LLPF Alg. 1 l.21. The reference code uses ``torch.var`` (unbiased); the ratio target/current that the
  correction applies is the same under both definitions as long as one definition is used for both, which this module
  guarantees by computing targets with ``tensor_variance``/``state_variances``.
- A *phase* is the list of state names one LLPF stage moves (LLPF Table 1 "Applied layers"); build it with
  ``select_tensors`` from the recipes' patterns.

This module imports only torch and the standard library.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

__all__ = [
    "select_tensors",
    "normalization_tensor_names",
    "phase_parameters",
    "phase_optimizer",
    "weight_bias_groups",
    "group_label",
    "move",
    "move_state",
    "phase_step_c_lengths",
    "compensating_move",
    "layer_distances",
    "destination_on_start_sphere",
    "layernorm_tensor_names",
    "tensor_variance",
    "state_variances",
    "correctable",
    "variance_correction",
    "apply_variance_correction",
    "TrainUntil",
    "TrainResult",
    "train_r",
    "LLPFConfig",
    "llpf_m2m_iteration",
    "angle_conformal",
    "llpf_m2o_iteration",
    "tensor_distances",
    "path_validity",
]

_BN_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# ------------------------------------------------------------------------------------------------ phase selection


def _expand_braces(pattern: str) -> list[str]:
    """``fc.{weight,bias}`` → ``fc.weight``, ``fc.bias``; ``+`` separates alternatives too (the papers write
    ``bn1.{weight+bias}``). Nested and repeated groups expand recursively."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    out: list[str] = []
    for alt in re.split(r"[,+]", m.group(1)):
        out.extend(_expand_braces(head + alt.strip() + tail))
    return out


def _match_components(pat: Sequence[str], name: Sequence[str]) -> bool:
    """True when ``pat`` matches a leading run of whole components of ``name`` (a module prefix or the full name).

    A component is matched with ``fnmatch`` (``*``, ``?``, ``[..]`` never cross a dot); a ``**`` component matches
    zero or more whole components.
    """
    if not pat:
        return True  # the pattern named a module prefix; everything below it matches
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_match_components(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    return fnmatch.fnmatchcase(name[0], head) and _match_components(rest, name[1:])


def select_tensors(names: Iterable[str], patterns: str | Iterable[str]) -> list[str]:
    """LLPF Table 1 / LW Table 4 "Applied layers": the tensor names a phase moves, from name patterns.

    Patterns use PyTorch naming and match WHOLE dot-separated components, anchored at the start of the name:

    - ``conv1.weight`` matches exactly that tensor; a module path matches every tensor under it
      (``classifier.norm`` → ``classifier.norm.weight``, ``classifier.norm.bias``; ``conv1`` never matches
      ``layer1.0.conv1.weight``);
    - ``*``/``?``/``[..]`` glob inside one component: ``layer1.*``, ``bn*.weight``; ``blocks.1.*`` never matches
      ``blocks.10.x``; ``**`` spans any number of components (``**.bias`` = every bias);
    - braces expand, with ``,`` or ``+`` between alternatives: ``fc.{weight,bias}``, ``bn1.{weight+bias}``,
      ``classifier.{positional_emb+attention_pool+norm+fc}``;
    - ``all``, ``*`` or ``**`` alone select every name;
    - a leading ``!`` removes the names it matches from what the earlier patterns selected (``["all", "!bn1"]``).

    Returns the selected names in the order of ``names``. Raises ``ValueError`` naming the pattern when a pattern
    (or a negated one) matches no name at all — a typo must never silently shrink a phase.
    """
    names = list(names)
    if isinstance(patterns, str):
        patterns = [patterns]
    split_names = [n.split(".") for n in names]
    selected: set[str] = set()
    for raw in patterns:
        text = raw.strip()
        negate = text.startswith("!")
        if negate:
            text = text[1:].strip()
        if not text:
            raise ValueError(f"empty tensor pattern {raw!r}")
        if text in ("all", "*", "**"):
            hits = set(names)
        else:
            hits = set()
            for alt in _expand_braces(text):
                comps = alt.split(".")
                if any(c == "" for c in comps):
                    raise ValueError(f"tensor pattern {raw!r} has an empty component")
                hits.update(n for n, parts in zip(names, split_names) if _match_components(comps, parts))
        if not hits:
            sample = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValueError(f"tensor pattern {raw!r} matches no tensor (names look like: {sample})")
        selected = selected - hits if negate else selected | hits
    return [n for n in names if n in selected]


def normalization_tensor_names(model: nn.Module) -> list[str]:
    """LLPF §3.2 "normalization layers should be excluded from Algorithm 2": every parameter and buffer name of the
    model's normalization modules (BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, LocalResponseNorm, RMSNorm).

    Found by module type, not by name, so ``norm1``/``pre_norm``/``bn``/``downsample.1`` are all caught.
    """
    norm_types: tuple[type, ...] = (
        nn.modules.batchnorm._BatchNorm,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.modules.instancenorm._InstanceNorm,
        nn.LocalResponseNorm,
    )
    if hasattr(nn, "RMSNorm"):
        norm_types = norm_types + (nn.RMSNorm,)
    out: list[str] = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, norm_types) and isinstance(mod, nn.Module):
            prefix = f"{mod_name}." if mod_name else ""
            out.extend(prefix + n for n, _ in mod.named_parameters(recurse=False))
            out.extend(prefix + n for n, _ in mod.named_buffers(recurse=False))
    return out


def phase_parameters(model: nn.Module, names: Iterable[str]) -> list[tuple[str, nn.Parameter]]:
    """LLPF Alg. 1 l.7 (what Train^r may update): the ``(name, Parameter)`` pairs of ``names`` that are parameters.

    Buffers such as BatchNorm running statistics are skipped: ``move_state`` moves them, no optimizer trains them."""
    wanted = set(names)
    return [(n, p) for n, p in model.named_parameters() if n in wanted]


def phase_optimizer(
    model: nn.Module,
    names: Iterable[str],
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    per_tensor_groups: bool = False,
) -> torch.optim.SGD:
    """LLPF Alg. 1 l.7 / Table 1 "SGD(η=0.001, β=0)": the SGD optimizer of a phase, holding ONLY the phase's
    parameters.

    Holding only the phase's parameters is what keeps every other parameter bit-for-bit unchanged by ``train_r``:
    weight decay and momentum of an optimizer that held them would move them even with a zero gradient.
    ``per_tensor_groups=True`` gives one param group per tensor (with a ``name`` key), which Algorithm 2's per-tensor
    learning rate (``llpf_m2o_iteration``) requires.
    """
    pairs = phase_parameters(model, names)
    if not pairs:
        raise ValueError("the phase holds no trainable parameter (only buffers?)")
    if per_tensor_groups:
        groups: list[dict[str, Any]] = [{"params": [p], "lr": lr, "name": n} for n, p in pairs]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.SGD([p for _, p in pairs], lr=lr, momentum=momentum, weight_decay=weight_decay)


# ------------------------------------------------------------------------------------------------------- Move


def weight_bias_groups(names: Iterable[str]) -> list[tuple[str, ...]]:
    """LLPF Alg. 1 l.12–16 (Move) on whole layers, as the authors' LeNet5 configurations run it (DFL_torch
    ``merge_bias_with_weights = True``): the units Move works on.

    ``X.weight`` and ``X.bias``, when both are in ``names``, form one unit ``("X.weight", "X.bias")``; every other
    name is a unit of its own. Units come in the order of ``names`` (a pair at its weight's place). Choice: the pair is
    found by the last name component (``weight``/``bias`` of the same module), not by the reference's substring replace
    (``'weight' in name``), which would also pair e.g. ``weight_ih``/``bias_ih`` — equal on every model here.
    """
    names = list(names)
    present = set(names)
    taken: set[str] = set()
    units: list[tuple[str, ...]] = []
    for n in names:
        if n in taken:
            continue
        head, _, last = n.rpartition(".")
        partner = f"{head}.bias" if head else "bias"
        if last == "weight" and partner in present and partner not in taken:
            units.append((n, partner))
            taken.update((n, partner))
        elif last == "bias" and (f"{head}.weight" if head else "weight") in present:
            continue  # joined to its weight when the weight's turn comes
        else:
            units.append((n,))
            taken.add(n)
    return units


def group_label(unit: Sequence[str]) -> str:
    """The name of a Move unit: the module (``conv1``) for a joined weight and bias, else the tensor's name."""
    if len(unit) == 2:
        return unit[0].rpartition(".")[0] or "<root>"
    return unit[0]


def _move_units(
    state: Mapping[str, torch.Tensor], names: Iterable[str], group_weight_bias: bool
) -> list[tuple[str, ...]]:
    floating = [n for n in names if state[n].is_floating_point()]
    return weight_bias_groups(floating) if group_weight_bias else [(n,) for n in floating]


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
def layer_distances(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor] | None,
    names: Iterable[str],
    group_weight_bias: bool,
    keyed_by_unit: bool = False,
) -> dict:
    """LLPF §4 criterion 2 (Fig. 2 second row) per Move unit: ``‖P − D‖`` of each joined weight and bias (keyed by
    the module name, ``group_label``) or single tensor (keyed by its name); ``destination=None`` is the origin.
    ``keyed_by_unit=True`` keys by the unit's tuple of names instead. One host synchronisation."""
    units = _move_units(state, names, group_weight_bias)
    if not units:
        return {}
    norms = []
    for unit in units:
        sq = torch.zeros((), dtype=torch.float64, device=state[unit[0]].device)
        for n in unit:
            t = state[n]
            diff = t if destination is None else t - destination[n].to(t.device)
            sq = sq + diff.to(torch.float64).square().sum()
        norms.append(sq.sqrt())
    keys = units if keyed_by_unit else [group_label(u) for u in units]
    return dict(zip(keys, torch.stack(norms).tolist()))


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


def layernorm_tensor_names(model: nn.Module) -> list[str]:
    """LLPF Alg. 2 / DFL_torch's LayerNorm detector: the parameter names of the model's ``nn.LayerNorm`` modules (the
    tensors ``compensating_move`` moves away from the origin). BatchNorm is not among them: the reference leaves it
    where it is."""
    out: list[str] = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            prefix = f"{mod_name}." if mod_name else ""
            out.extend(prefix + n for n, _ in mod.named_parameters(recurse=False))
    return out


@torch.no_grad()
def tensor_distances(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor] | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """LLPF §4 criterion 2 (Fig. 2 second row): per-tensor L2 distance ``‖P − D‖``.

    ``destination=None`` means the origin (Fig. 3, Algorithm 2). Integer tensors are skipped. One host
    synchronisation for all tensors."""
    names = [n for n in (state.keys() if names is None else names) if state[n].is_floating_point()]
    if not names:
        return {}
    norms = []
    for n in names:
        t = state[n]
        diff = t if destination is None else t - destination[n].to(t.device)
        norms.append(torch.linalg.vector_norm(diff.to(torch.float64)))
    return dict(zip(names, torch.stack(norms).tolist()))


# ------------------------------------------------------------------------------------------ VarianceCorrection


def _population_variance(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = t.detach().to(torch.float64)
    mean = w.mean()
    return mean, (w - mean).square().mean()


def tensor_variance(t: torch.Tensor) -> float:
    """LLPF Alg. 1 l.20–21: the population variance (``unbiased=False``) of a tensor, computed in float64."""
    return float(_population_variance(t)[1])


def correctable(name: str, tensor: torch.Tensor) -> bool:
    """Whether VarianceCorrection (LLPF Alg. 1 l.18–26) applies to a state tensor.

    Skipped: BatchNorm ``running_mean``/``running_var`` and ``num_batches_tracked`` (statistics of activations, not
    coordinates on a variance sphere; the reference skips them too), non-floating tensors, and tensors with at most
    one element (their variance is 0 by definition; a scalar cannot be rescaled about its own mean). The name test
    is on the last component, not a substring as in the reference.
    """
    if name.rsplit(".", 1)[-1] in _BN_STAT_SUFFIXES:
        return False
    return tensor.is_floating_point() and tensor.numel() > 1


@torch.no_grad()
def state_variances(state: Mapping[str, torch.Tensor], names: Iterable[str] | None = None) -> dict[str, float]:
    """LLPF Alg. 1 l.6 ``S_var`` / Alg. 2 l.4 ``v``: per-tensor population variance of a state's correctable tensors.

    Taken at the start model P0 these are the VarianceCorrection targets and AngleConformal's Var(P0); elsewhere the
    per-tensor variance metric. One host synchronisation."""
    names = [n for n in (state.keys() if names is None else names) if correctable(n, state[n])]
    if not names:
        return {}
    values = torch.stack([_population_variance(state[n])[1] for n in names]).tolist()
    return dict(zip(names, values))


def variance_correction(tensor: torch.Tensor, target_variance: float, eps: float = 0.0) -> torch.Tensor:
    """LLPF Alg. 1 l.18–26: VarianceCorrection.

    Rescales the tensor about its own mean, ``W' = mean + s·(W − mean)``, so that its population variance becomes
    ``target_variance`` (the start model's, per tensor) and its mean is unchanged. Exact with the default ``eps=0``:
    ``s = sqrt(target / var)``, computed in float64, result in the tensor's dtype.

    ``eps > 0`` reproduces the reference code's damping ``s = sqrt((target + eps) / (var + eps))`` (DFL_torch
    ``scale_tensor_to_variance``, eps = 1e-4; note the eps in the numerator too). It dominates tensors whose variance
    is ≲ eps (most weight tensors of wide layers), which are then barely corrected; use it only to reproduce the
    reference. A constant tensor (variance 0) is returned unchanged: there is no direction to scale along.
    A target of 0 collapses the tensor onto its mean.
    """
    if target_variance < 0 or not math.isfinite(target_variance):
        raise ValueError(f"target variance must be finite and ≥ 0, got {target_variance}")
    if eps < 0:
        raise ValueError(f"eps must be ≥ 0, got {eps}")
    mean, var = _population_variance(tensor)
    scale = torch.sqrt((target_variance + eps) / torch.where(var + eps > 0, var + eps, torch.ones_like(var)))
    scale = torch.where(var > 0, scale, torch.ones_like(scale))
    w = tensor.detach().to(torch.float64)
    return ((w - mean) * scale + mean).to(tensor.dtype)


@torch.no_grad()
def apply_variance_correction(
    state: Mapping[str, torch.Tensor], targets: Mapping[str, float], names: Iterable[str], eps: float = 0.0
) -> list[str]:
    """LLPF Alg. 1 l.6 and l.8: VarianceCorrection of a state, in place, restricted to ``names`` that are
    ``correctable``. Every such name must have a target (``KeyError`` otherwise: a missing target would silently
    skip the projection). Returns the corrected names."""
    done = []
    for name in names:
        t = state[name]
        if not correctable(name, t):
            continue
        if name not in targets:
            raise KeyError(f"no target variance for {name!r}")
        t.copy_(variance_correction(t, targets[name], eps))
        done.append(name)
    return done


@torch.no_grad()
def destination_on_start_sphere(
    destination: Mapping[str, torch.Tensor], start_variances: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """LLPF Eq. 4 with Alg. 1 l.6/l.8: D projected onto P0's variance spheres — every correctable tensor of D that has
    a start variance rescaled about its own mean to that variance (``variance_correction``, exact); other tensors
    are D's own. This is the fixed point of Move → VarianceCorrection toward D (D and its projection lie on one ray
    from D's mean, which VarianceCorrection maps back onto the projection), so it is the point a converged path
    reaches; the papers' "minor deviations" from D are the distance between the two."""
    out: dict[str, torch.Tensor] = {}
    for name, t in destination.items():
        if correctable(name, t) and name in start_variances:
            out[name] = variance_correction(t, start_variances[name])
        else:
            out[name] = t.detach().clone()
    return out


# ----------------------------------------------------------------------------------------------------- Train^r


@dataclass(frozen=True)
class TrainUntil:
    """LLPF Alg. 1 l.7 ``Train^r`` stop rule (Table 1 "Train round r").

    Either exactly ``rounds`` SGD steps (LeNet5: r = 5), or "train until loss < threshold or r > max_rounds" where the
    loss is the rolling mean of the last ``min_rounds`` batch losses (Table 1 footnote b: "rolling average with a
    window size of 10") and at least ``min_rounds`` steps are taken — the reference's
    ``MovingAverage(train_for_min_rounds)`` with its ``train_until_loss``/``train_for_max_rounds``. The threshold
    test is ``≤`` (reference); ``max_rounds`` is the largest number of steps taken.
    """

    rounds: int | None = None
    threshold: float | None = None
    min_rounds: int = 10
    max_rounds: int | None = None

    def __post_init__(self):
        if self.min_rounds < 1:
            raise ValueError("min_rounds (the rolling window) must be ≥ 1")
        if self.rounds is not None:
            if self.threshold is not None:
                raise ValueError("give either rounds or threshold (with max_rounds), not both")
            if self.rounds < 1:
                raise ValueError("rounds must be ≥ 1")
        else:
            if self.threshold is None:
                raise ValueError("give rounds, or threshold with max_rounds")
            if self.max_rounds is None or self.max_rounds < 1:
                raise ValueError("a loss threshold needs max_rounds ≥ 1 (the loop must be bounded)")
            if self.min_rounds > self.max_rounds:
                raise ValueError("min_rounds > max_rounds: the threshold could never end training")


@dataclass
class TrainResult:
    """What ``train_r`` did: per-step batch losses, the rolling loss at exit (mean of the last ``min_rounds``
    losses), the number of steps, and why it stopped (``rounds``, ``threshold``, ``max_rounds``, ``nonfinite``)."""

    losses: list[float]
    rolling_loss: float
    steps: int
    stopped_by: str


def _batch_source(next_batch) -> Callable[[], Any]:
    if callable(next_batch) and not hasattr(next_batch, "__next__"):
        return next_batch
    it = next_batch if hasattr(next_batch, "__next__") else iter(next_batch)
    return lambda: next(it)


def train_r(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch,
    loss_fn: Callable,
    rounds: int | None = None,
    threshold: float | None = None,
    min_rounds: int = 10,
    max_rounds: int | None = None,
) -> TrainResult:
    """LLPF Alg. 1 l.7 (Alg. 2 l.8): Train^r(M2, x, B).

    ``next_batch`` is a zero-argument callable or an iterator yielding ``(inputs, targets)`` already on the model's
    device; the caller owns the data order (determinism) — nothing here reads files. ``loss_fn(outputs, targets)``
    returns the scalar loss. See ``TrainUntil`` for the stop rule.

    Only the optimizer's parameters are updated: for the duration of the call every other parameter of the model has
    ``requires_grad`` switched off (and restored after), so it receives no gradient and the backward pass skips its
    weight gradient. Build the optimizer over the phase's parameters only (``phase_optimizer``) and the tensors
    outside the phase stay bit-for-bit unchanged — except BatchNorm running statistics, which every forward pass in
    train mode updates (see ``llpf_m2m_iteration``). The model runs in train mode and gets its previous mode back.
    A fixed ``rounds`` run synchronises with the host once at the end; a threshold run once per step (the stop test
    needs the value) and stops at the first non-finite loss.
    """
    until = TrainUntil(rounds, threshold, min_rounds, max_rounds)
    fetch = _batch_source(next_batch)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    frozen = [p for p in model.parameters() if id(p) not in held and p.requires_grad]
    was_training = model.training
    for p in frozen:
        p.requires_grad_(False)
    model.train()
    losses: list[float] = []
    pending: list[torch.Tensor] = []
    window: deque[float] = deque(maxlen=until.min_rounds)
    steps, stopped_by = 0, ""
    try:
        while True:
            try:
                x, y = fetch()
            except StopIteration:
                raise RuntimeError(f"the batch source ran out after {steps} steps") from None
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            if until.rounds is not None:
                pending.append(loss.detach())
                if steps >= until.rounds:
                    stopped_by = "rounds"
                    break
                continue
            value = float(loss.detach())
            losses.append(value)
            window.append(value)
            if not math.isfinite(value):
                stopped_by = "nonfinite"
                break
            if (
                until.threshold is not None
                and steps >= until.min_rounds
                and sum(window) / len(window) <= until.threshold
            ):
                stopped_by = "threshold"
                break
            if until.max_rounds is not None and steps >= until.max_rounds:
                stopped_by = "max_rounds"
                break
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    if pending:
        losses = torch.stack(pending).to(torch.float64).tolist()
    tail = losses[-until.min_rounds :]
    return TrainResult(losses=losses, rolling_loss=sum(tail) / len(tail), steps=steps, stopped_by=stopped_by)


# ------------------------------------------------------------------------------------------------ iterations


@dataclass(frozen=True)
class LLPFConfig:
    """Hyper-parameters of one LLPF phase (LLPF Tables 1, 2, 6; LW Appendix F).

    - ``step_a``, ``step_f``, ``step_c``: Move lengths (see ``move``; ``step_c`` needs the per-tensor lengths from
      ``phase_step_c_lengths``). ``clamp``: never pass D (default) vs the reference's overshoot.
    - ``train_rounds`` or ``train_threshold`` + ``train_max_rounds`` (+ ``train_min_rounds``, the rolling window):
      ``TrainUntil``.
    - ``variance_eps``: VarianceCorrection damping (0 exact; 1e-4 reproduces the reference).
    - ``correct_all_tensors``: reference quirk — the reference corrects every correctable tensor of the model, not
      only the phase's (its ignore list never matches: ``layer_name in [ignore_layer_list]``).
    - ``train_outside_phase``: reference quirk — the reference's optimizer holds every parameter, so training also
      moves tensors outside the phase. When False, ``llpf_m2m_iteration`` refuses an optimizer that holds a parameter
      outside the phase.
    - ``freeze_stats_outside_phase``: restore the buffers outside the phase (BatchNorm running statistics,
      ``num_batches_tracked``) after training, making the iteration leave EVERY tensor outside the phase bit-for-bit
      unchanged. Default False: running statistics keep following the activations, which change as upstream layers
      move (the reference behaviour; frozen statistics go stale and only matter in eval mode).
    - ``conformal_all_tensors`` (Algorithm 2): False scales the learning rate of moved ``*.weight`` tensors only, as the
      reference does ("only adjust weights, not biases"); True scales every moved tensor's.
    - ``group_weight_bias``: Move (and the distance it measures) treats each layer's weight and bias as one joined
      vector (``weight_bias_groups``), as the authors' LeNet5 configurations do; False moves every tensor on its own.
      VarianceCorrection stays per tensor either way (as in the reference).
    - ``compensate_layernorm`` (Algorithm 2): move LayerNorm tensors away from the origin by the same Move
      (``compensating_move``), as the authors' M2O code does; False leaves every normalization layer where it is
      (the paper's §3.2 rule).
    """

    step_a: float = 0.0
    step_f: float = 0.0
    step_c: float = 0.0
    clamp: bool = True
    train_rounds: int | None = None
    train_threshold: float | None = None
    train_min_rounds: int = 10
    train_max_rounds: int | None = None
    variance_eps: float = 0.0
    correct_all_tensors: bool = False
    train_outside_phase: bool = False
    freeze_stats_outside_phase: bool = False
    conformal_all_tensors: bool = False
    group_weight_bias: bool = False
    compensate_layernorm: bool = False

    def __post_init__(self):
        if min(self.step_a, self.step_f, self.step_c) < 0:
            raise ValueError("step_a, step_f and step_c must be ≥ 0")
        if self.step_a == 0 and self.step_f == 0 and self.step_c == 0:
            raise ValueError("step_a, step_f and step_c are all 0: Move would never move")
        if self.variance_eps < 0:
            raise ValueError("variance_eps must be ≥ 0")
        self.train_until()  # validates the stop rule

    def train_until(self) -> TrainUntil:
        return TrainUntil(self.train_rounds, self.train_threshold, self.train_min_rounds, self.train_max_rounds)

    def with_reference_quirks(
        self, group_weight_bias: bool | None = True, compensate_layernorm: bool | None = True
    ) -> LLPFConfig:
        """The same phase as the authors' code runs it: unclamped Move, eps-damped correction of every tensor,
        training of every parameter, and — unless given as False (a configuration of the authors that turns them
        off) or None (keep this config's value) — weight and bias moved as one vector and LayerNorm compensated in
        M2O."""
        extra = {}
        if group_weight_bias is not None:
            extra["group_weight_bias"] = group_weight_bias
        if compensate_layernorm is not None:
            extra["compensate_layernorm"] = compensate_layernorm
        return replace(
            self, clamp=False, variance_eps=1e-4, correct_all_tensors=True, train_outside_phase=True, **extra
        )


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


# -------------------------------------------------------------------------------------------------- validity

TEST_LOSS_RULES = ("converge", "no_worse")


def path_validity(
    max_train_loss: float,
    l_thres: float,
    final_distances: Mapping[str, float] | float,
    distance_threshold: float,
    final_test_loss: float,
    start_test_loss: float,
    test_loss_tolerance: float,
    test_loss_rule: str = "converge",
    destination_test_loss: float | None = None,
) -> dict[str, Any]:
    """LLPF §4 (Fig. 2), LW §5: the three criteria of a valid low-loss path.

    1. the training loss stays in the low-loss space along the whole path: ``max_train_loss ≤ l_thres`` (Eq. 1 uses
       ≤; the papers report "all training losses remain below 0.1");
    2. the distance to D converges to (near) zero: every final distance in ``final_distances`` ≤
       ``distance_threshold`` (the papers: "final layer-wise distances gradually converge below 10^-1"; minor
       deviations are allowed because P0 and D lie only approximately on the same variance sphere, Eq. 4 — the caller
       chooses what the distances are measured to, e.g. ``destination_on_start_sphere``);
    3. the test loss: ``test_loss_rule="converge"`` (default, the paper's "the final testing loss should converge to
       the testing loss at iteration 0"): ``|final − start| ≤ test_loss_tolerance``; ``"no_worse"`` (generalisation
       must not get worse): ``final ≤ start + test_loss_tolerance``.

    Choices: every threshold is the caller's (the papers quantify 1 and 2 only by their figures: 0.1 and 1e-1; they
    give no number for 3, so the tolerance is absolute). A non-finite value fails its criterion. ``max_train_loss``
    should be the maximum over the path of the full-training-set loss the run records.

    Beside the verdicts it reports ``test_loss_change`` (signed, final − start; ``test_loss_gap`` is the same number
    under its older name), ``final_minus_destination_test_loss`` (final − D's own test loss, when given: the point the
    path converges to) and ``failures``: one line per failed criterion naming the value, the bound and by how much.
    """
    if test_loss_rule not in TEST_LOSS_RULES:
        raise ValueError(f"test_loss_rule {test_loss_rule!r} is not one of {', '.join(TEST_LOSS_RULES)}")
    if isinstance(final_distances, Mapping):
        items = list(final_distances.items())
    else:
        items = [("<all>", float(final_distances))]
    if items:
        farthest, max_dist = max(items, key=lambda kv: (not math.isfinite(kv[1]), kv[1]))
    else:
        farthest, max_dist = None, 0.0
    change = final_test_loss - start_test_loss
    train_ok = math.isfinite(max_train_loss) and max_train_loss <= l_thres
    dist_ok = all(math.isfinite(v) for _, v in items) and max_dist <= distance_threshold
    if test_loss_rule == "converge":
        test_ok = math.isfinite(change) and abs(change) <= test_loss_tolerance
    else:
        test_ok = math.isfinite(change) and change <= test_loss_tolerance
    failures = []
    if not train_ok:
        failures.append(
            f"train loss: max {max_train_loss:.4g} > L_thres {l_thres:.4g} (by {max_train_loss - l_thres:.4g})"
        )
    if not dist_ok:
        far = sum(1 for _, v in items if not (math.isfinite(v) and v <= distance_threshold))
        failures.append(
            f"distance: {farthest} at {max_dist:.4g} > distance_threshold {distance_threshold:.4g} "
            f"(by {max_dist - distance_threshold:.4g}; {far} of {len(items)} above)"
        )
    if not test_ok:
        bound = "|final − start|" if test_loss_rule == "converge" else "final − start"
        excess = (abs(change) if test_loss_rule == "converge" else change) - test_loss_tolerance
        failures.append(
            f"test loss ({test_loss_rule}): final {final_test_loss:.4f} − start {start_test_loss:.4f} = "
            f"{change:+.4f}; {bound} > tolerance {test_loss_tolerance:.4g} (by {excess:.4g})"
            + (
                "; the test loss improved: rule 'no_worse' accepts that"
                if test_loss_rule == "converge" and change < 0
                else ""
            )
        )
    vs_dest = None if destination_test_loss is None else float(final_test_loss - destination_test_loss)
    return {
        "valid": bool(train_ok and dist_ok and test_ok),
        "train_loss_below_threshold": bool(train_ok),
        "distance_converged": bool(dist_ok),
        "test_loss_converged": bool(test_ok),
        "max_train_loss": float(max_train_loss),
        "max_final_distance": float(max_dist),
        "farthest_tensor": farthest,
        "test_loss_gap": float(change),
        "test_loss_change": float(change),
        "test_loss_rule": test_loss_rule,
        "final_minus_destination_test_loss": vs_dest,
        "failures": failures,
    }
