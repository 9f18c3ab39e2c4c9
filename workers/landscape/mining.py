"""Mined perturbation directions (Xu et al. §2.4–2.5): Algo. 1 (w-peak curves) and Algo. 2 (vvv-basin curves).

Both run plain SGD steps as the algorithms write them (no momentum, no weight decay) over training batches drawn
by step from a ``data.BatchStream`` (a pure function of (seed, step)), with λ of step ``t`` drawn from a generator
seeded with (seed, t): a run stopped after any step and continued from ``start_step`` with the returned tensors
reproduces the uninterrupted run bit for bit. Gradients are taken in train mode, as in training (BatchNorm uses
batch statistics); the model's buffers are put back to the centre's at the end, and directions never cover buffers.

Settings the paper leaves out, with the defaults chosen here: the step size η (``lr``, default 0.1: the paper's
training learning rate for its MLP and ResNets, App. A.1), the number of epochs E (``epochs``, default 10), the
batch size (the stream's; the paper trains with 128), and, for Algo. 2, φ's initialisation (``phi_init``: by
default a fresh seeded initialisation of the architecture, ``fresh_initialisation``; ``perturbed_initialisation``
gives θ plus a filter-normalised Gaussian instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import derive_seed, generator
from .directions import gaussian_direction

DEFAULT_LR = 0.1
DEFAULT_EPOCHS = 10


def _uniform(low: float, high: float, *parts: object) -> float:
    u = float(torch.rand((), generator=generator(*parts), dtype=torch.float64))
    return low + (high - low) * u


def _grad_at(
    model: nn.Module,
    params: dict[str, torch.nn.Parameter],
    names: Sequence[str],
    point: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[float, list[torch.Tensor]]:
    """(L(point), ∇L(point)) on one batch, train mode."""
    with torch.no_grad():
        for n in names:
            params[n].copy_(point[n])
    model.train()
    loss = F.cross_entropy(model(x), y)
    return float(loss.detach()), list(torch.autograd.grad(loss, [params[n] for n in names]))


def _restore(model: nn.Module, centre: Mapping[str, torch.Tensor]) -> None:
    model.load_state_dict({n: t for n, t in centre.items()}, strict=False)


def w_peak_lambda(step: int, steps_per_epoch: int, epochs: int, seed: int) -> float:
    """Xu et al. Algo. 1 l.2–4: α = e/E in epoch e (1-based); λ ~ U[−α, α] for this step."""
    alpha = (step // steps_per_epoch + 1) / epochs
    return _uniform(-alpha, alpha, "w-peak-lambda", int(seed), int(step))


def mine_w_peak(
    model: nn.Module,
    centre: Mapping[str, torch.Tensor],
    stream,
    names: Sequence[str],
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    epsilon: Mapping[str, torch.Tensor] | None = None,
    start_step: int = 0,
    stop_step: int | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Xu et al. Algo. 1 l.1–8: ε from 0; per batch λ ~ U[−α, α], θ̂ = θ + λε, ε ← ε − η·λ·∇L(θ̂); returns ε.

    ``stream`` is a ``data.BatchStream``; steps ``start_step`` ≤ t < ``stop_step`` (default: to the end,
    epochs × steps_per_epoch) run, from ``epsilon`` (default zeros). ``on_step(t, λ, L(θ̂) on the batch)`` sees each
    step."""
    if epochs < 1:
        raise ValueError(f"epochs: {epochs} is not at least 1")
    total = epochs * stream.steps_per_epoch
    stop = total if stop_step is None else min(stop_step, total)
    params = dict(model.named_parameters())
    theta = {n: centre[n].detach().to(params[n]) for n in names}
    eps = {
        n: (epsilon[n].detach().clone().to(params[n]) if epsilon is not None else torch.zeros_like(theta[n]))
        for n in names
    }
    for step in range(start_step, stop):
        lam = w_peak_lambda(step, stream.steps_per_epoch, epochs, seed)
        x, y = stream.batch(step)
        point = {n: theta[n] + lam * eps[n] for n in names}
        loss, grads = _grad_at(model, params, names, point, x, y)
        with torch.no_grad():
            for n, g in zip(names, grads):
                eps[n].sub_(g, alpha=lr * lam)  # ∂L(θ + λε)/∂ε = λ·∇L(θ̂)
        if on_step is not None:
            on_step(step, lam, loss)
    _restore(model, centre)
    return eps


def vvv_basin_lambda(step: int, alpha: float, seed: int) -> float:
    """Xu et al. Algo. 2 l.3: λ ~ U[0.5 − α, 0.5 + α] for this step."""
    return _uniform(0.5 - alpha, 0.5 + alpha, "vvv-basin-lambda", int(seed), int(step))


def mine_vvv_basin(
    model: nn.Module,
    centre: Mapping[str, torch.Tensor],
    phi_init: Mapping[str, torch.Tensor],
    stream,
    names: Sequence[str],
    gamma: float = 0.5,
    alpha: float = 0.0,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    start_step: int = 0,
    stop_step: int | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Xu et al. Algo. 2 l.1–7: per batch λ ~ U[0.5−α, 0.5+α], φ̂ = (1−λ)θ + λφ, φ ← φ − η(∇L(φ) + γλ∇L(φ̂)).

    Returns φ after the steps ``start_step`` ≤ t < ``stop_step`` (default: to the end), starting from ``phi_init``
    (θ's own parameters are never changed); the direction is ``vvv_basin_direction(φ, θ)`` = φ − θ (l.8). The
    paper's grid is γ ∈ {0.1, 0.5, 0.9} × α ∈ {0, 0.1}. ``on_step(t, λ, L(φ) on the batch)`` sees each step."""
    if epochs < 1:
        raise ValueError(f"epochs: {epochs} is not at least 1")
    if not 0 <= alpha <= 0.5:
        raise ValueError(f"alpha: {alpha} is not in [0, 0.5] (λ ∈ [0.5 − α, 0.5 + α] must stay in [0, 1])")
    total = epochs * stream.steps_per_epoch
    stop = total if stop_step is None else min(stop_step, total)
    params = dict(model.named_parameters())
    theta = {n: centre[n].detach().to(params[n]) for n in names}
    phi = {n: phi_init[n].detach().clone().to(params[n]) for n in names}
    for step in range(start_step, stop):
        lam = vvv_basin_lambda(step, alpha, seed)
        x, y = stream.batch(step)
        loss, g_phi = _grad_at(model, params, names, phi, x, y)
        _, g_mid = _grad_at(model, params, names, {n: (1 - lam) * theta[n] + lam * phi[n] for n in names}, x, y)
        with torch.no_grad():
            for n, a, b in zip(names, g_phi, g_mid):
                phi[n].sub_(a + (gamma * lam) * b, alpha=lr)
        if on_step is not None:
            on_step(step, lam, loss)
    _restore(model, centre)
    return phi


def vvv_basin_direction(phi: Mapping[str, torch.Tensor], centre: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Xu et al. Algo. 2 l.8: ε = φ − θ."""
    return {n: phi[n] - centre[n].to(phi[n]) for n in phi}


def fresh_initialisation(build: Callable[[], nn.Module], seed: int) -> dict[str, torch.Tensor]:
    """φ₀ for Algo. 2 (default): the state of ``build()`` under torch's global RNG seeded from (seed), the RNG
    restored afterwards — a fresh initialisation of the architecture that depends on the seed only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("vvv-basin-phi", int(seed)))
        return {n: t.detach().clone() for n, t in build().state_dict().items()}


def perturbed_initialisation(
    centre: Mapping[str, torch.Tensor], names: Sequence[str], seed: int, scale: float = 0.1
) -> dict[str, torch.Tensor]:
    """φ₀ for Algo. 2 (alternative): θ + scale·ε with ε a filter-normalised Gaussian direction seeded from (seed)."""
    eps = gaussian_direction(centre, names, derive_seed("vvv-basin-phi", int(seed)), "filnorm", "zero")
    return {n: centre[n] + scale * eps[n] for n in names}
