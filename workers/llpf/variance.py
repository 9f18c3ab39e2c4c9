"""VarianceCorrection (LLPF Alg. 1 l.18–26): population variances of a state's tensors and their projection onto
the start model's variance spheres."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

_BN_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


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
