"""The Hessian of the training loss at a point: Hessian–vector products, extreme eigenpairs, trace and spectral density.

H is the Hessian of the mean cross-entropy over a stated data subset (``hessian_batches``), with respect to the
model's trainable parameters, in eval mode (BatchNorm uses the point's running statistics, dropout is off), so that
the loss is one fixed function of the parameters. Products H·v are computed by double backpropagation (Xu et al.
App. B: g = ∇L, then ∇(gᵀv) = Hv), batch by batch, in the model's dtype; eigsh and the Lanczos recurrences run in
float64. Every random vector (eigsh's v0, Hutchinson's probes, SLQ's start vectors) comes from a generator seeded
with the ``seed`` argument, so a re-run reproduces the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import generator
from .directions import parameter_names, unflatten
from .scans import split_batches

EIGSH_WHICH = ("LA", "SA")
MAX_EIGENPAIRS = 10


def hessian_batches(data, examples: int | None = None, seed: int = 0, batch_size: int = 1024) -> list:
    """The Hessian's data: the training set without augmentation, or a seeded subset of ``examples`` of it."""
    return list(split_batches(data, "train", batch_size, examples, seed))


class HessianOperator:
    """Xu et al. App. B: H·v by two backward passes over the mean loss on ``batches`` (eval mode), flat vectors.

    ``hvp(v)`` takes and returns a flat tensor of ``dim`` entries (parameters in ``names`` order) on the model's
    device, in the model's dtype; ``linear_operator()`` wraps it for scipy in float64."""

    def __init__(self, model: nn.Module, batches: Iterable, names: Iterable[str] | None = None):
        self.model = model
        params = dict(model.named_parameters())
        self.names = list(names) if names is not None else parameter_names(model)
        unknown = [n for n in self.names if n not in params]
        if unknown:
            raise ValueError(f"names: {unknown[:3]} are not parameters of the model")
        self.params = [params[n] for n in self.names]
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("batches: no data for the Hessian")
        self.examples = sum(int(yb.shape[0]) for _, yb in self.batches)
        self.dim = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.products = 0  # H·v products computed so far

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        out, offset = [], 0
        for p in self.params:
            out.append(v[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        return out

    def loss(self) -> float:
        """The mean cross-entropy over the Hessian's data, eval mode."""
        self.model.eval()
        with torch.no_grad():
            total = sum(float(F.cross_entropy(self.model(xb), yb, reduction="sum")) for xb, yb in self.batches)
        return total / self.examples

    def gradient(self) -> torch.Tensor:
        """∇L as one flat vector."""
        self.model.eval()
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, yb in self.batches:
            loss = F.cross_entropy(self.model(xb), yb, reduction="sum") / self.examples
            out.add_(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, self.params)]))
        return out

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Xu et al. App. B: H·v = ∇_θ(∇_θL(θ)ᵀv), summed over the batches (each batch's loss weighted by its size)."""
        self.model.eval()
        v = v.to(device=self.device, dtype=self.dtype)
        parts = self._split(v)
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, yb in self.batches:
            loss = F.cross_entropy(self.model(xb), yb, reduction="sum") / self.examples
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = torch.stack([(g * p).sum() for g, p in zip(grads, parts)]).sum()
            hv = torch.autograd.grad(dot, self.params)
            out.add_(torch.cat([h.reshape(-1) for h in hv]))
        self.products += 1
        return out

    def linear_operator(self):
        """The operator as a ``scipy.sparse.linalg.LinearOperator`` of shape (dim, dim), float64."""
        from scipy.sparse.linalg import LinearOperator

        def matvec(x: np.ndarray) -> np.ndarray:
            v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
            return self.hvp(v).detach().to("cpu", torch.float64).numpy()

        return LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)


def second_order_terms(operator: HessianOperator, direction: torch.Tensor) -> tuple[float, float]:
    """Xu et al. Eq. 1 / App. B.3: (b, a) = (εᵀg, εᵀHε) of δL(λ) ≈ bλ + ½aλ² at the operator's point, ε flat."""
    eps = direction.to(device=operator.device, dtype=operator.dtype)
    b = float(torch.dot(operator.gradient().double(), eps.double()))
    a = float(torch.dot(operator.hvp(eps).double(), eps.double()))
    return b, a


def _rademacher(dim: int, *parts: object) -> torch.Tensor:
    return torch.randint(0, 2, (dim,), generator=generator(*parts), dtype=torch.int64).to(torch.float64) * 2 - 1


def hessian_eigenpairs(
    operator: HessianOperator,
    k: int = 5,
    which: str = "LA",
    seed: int = 0,
    tol: float = 0.0,
    maxiter: int | None = None,
    ncv: int | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Xu et al. App. B.1: the k largest ("LA") or smallest ("SA") algebraic eigenpairs by scipy's eigsh.

    Returns (eigenvalues, eigenvectors): float64 eigenvalues ordered by decreasing |λ| within their side (P.E.1 the
    largest, N.E.1 the most negative), and a k × dim float64 tensor of unit eigenvectors (rows), each signed so that
    its entry of largest magnitude is positive. eigsh starts from v0 ~ N(0, I) seeded with ``seed``."""
    from scipy.sparse.linalg import eigsh

    if which not in EIGSH_WHICH:
        raise ValueError(f"which: {which!r} is not one of {', '.join(EIGSH_WHICH)}")
    if not 1 <= k <= MAX_EIGENPAIRS or k >= operator.dim:
        raise ValueError(f"k: {k} is not in 1..{min(MAX_EIGENPAIRS, operator.dim - 1)}")
    v0 = torch.randn(operator.dim, generator=generator("eigsh-v0", int(seed)), dtype=torch.float64).numpy()
    values, vectors = eigsh(operator.linear_operator(), k=k, which=which, v0=v0, tol=tol, maxiter=maxiter, ncv=ncv)
    order = np.argsort(-values) if which == "LA" else np.argsort(values)
    values, vectors = values[order], torch.from_numpy(np.ascontiguousarray(vectors[:, order].T))
    signs = torch.sign(vectors.gather(1, vectors.abs().argmax(1, keepdim=True)))
    return values, vectors * signs


def eigenvector_directions(
    vectors: torch.Tensor, like: Mapping[str, torch.Tensor], names: Iterable[str]
) -> list[dict[str, torch.Tensor]]:
    """Eigenvectors (rows of a k × dim tensor) as directions shaped like ``like`` (Xu et al. §2.4: P.E.x / N.E.x)."""
    names = list(names)
    return [unflatten(v, like, names) for v in vectors]


def hutchinson_trace(operator: HessianOperator, samples: int = 100, seed: int = 0) -> tuple[float, float]:
    """Xu et al. App. B.2 (PyHessian's estimator): tr(H) ≈ mean of zᵀHz over ``samples`` Rademacher z, each z
    seeded with (seed, sample index). Returns (estimate, its standard error)."""
    if samples < 2:
        raise ValueError(f"samples: {samples} is fewer than 2 (the standard error needs two)")
    values = []
    for s in range(samples):
        z = _rademacher(operator.dim, "hutchinson", int(seed), s).to(operator.device)
        values.append(float(torch.dot(operator.hvp(z).double(), z)))
    mean = sum(values) / samples
    var = sum((x - mean) ** 2 for x in values) / (samples - 1)
    return mean, math.sqrt(var / samples)


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature of the eigenvalue density: per run, Ritz values (nodes) and quadrature weights
    (squared first components, summing to 1 per run); and the Gaussian-broadened density on a grid."""

    nodes: list[np.ndarray]  # one array per run (a run stops early when the Krylov space is exhausted)
    weights: list[np.ndarray]
    grid: np.ndarray
    density: np.ndarray
    sigma_squared: float

    @property
    def mean(self) -> float:
        """∫λ·ρ(λ) of the quadrature: the mean over runs of Σ wⱼθⱼ (= vᵀHv/vᵀv for the run's start vector v)."""
        return float(np.mean([np.dot(w, t) for w, t in zip(self.weights, self.nodes)]))


def lanczos(operator: HessianOperator, start: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Lin, Saad & Yang 2016 §3 (SLQ's Lanczos): ``steps`` Lanczos steps from ``start`` with full
    re-orthogonalisation (float64 basis on the operator's device); returns the tridiagonal's (alphas, betas)."""
    v = start.to(device=operator.device, dtype=torch.float64)
    v = v / v.norm()
    basis = [v]
    alphas, betas = [], []
    w = operator.hvp(v).double()
    alpha = float(torch.dot(w, v))
    w = w - alpha * v
    alphas.append(alpha)
    scale = abs(alpha) + float(w.norm())
    for _ in range(1, steps):
        for _ in range(2):  # full re-orthogonalisation, twice is enough (Parlett's "twice is enough")
            for b in basis:
                w = w - torch.dot(w, b) * b
        beta = float(w.norm())
        if beta <= 1e-10 * max(scale, 1e-30):
            break  # invariant subspace: the quadrature is exact with the nodes found so far
        v_prev, v = v, w / beta
        basis.append(v)
        w = operator.hvp(v).double()
        alpha = float(torch.dot(w, v))
        w = w - alpha * v - beta * v_prev
        alphas.append(alpha)
        betas.append(beta)
        scale = max(scale, abs(alpha) + beta)
    return np.array(alphas), np.array(betas)


def slq_density(
    operator: HessianOperator,
    runs: int = 1,
    steps: int = 100,
    seed: int = 0,
    grid_points: int = 10000,
    sigma_squared: float = 1e-5,
    overhead: float = 0.01,
) -> SpectralDensity:
    """Xu et al. §3 / Fig. 13 (PyHessian's ``density`` and ``density_generate``): SLQ over ``runs`` Rademacher start
    vectors (seeded with (seed, run)), ``steps`` Lanczos steps each; the broadened density is
    ρ(x) = (1/runs) Σ_runs Σⱼ wⱼ·N(x; θⱼ, σ²) with σ² = sigma_squared·max(1, θ_max − θ_min) (PyHessian's scaling),
    on ``grid_points`` points from θ_min − pad to θ_max + pad, pad = max(overhead, 6σ), so ρ integrates to 1 up to
    the grid's resolution (no renormalisation)."""
    if runs < 1 or steps < 1:
        raise ValueError(f"runs, steps: {runs}, {steps} are not both at least 1")
    steps = min(steps, operator.dim)
    nodes, weights = [], []
    for r in range(runs):
        alphas, betas = lanczos(operator, _rademacher(operator.dim, "slq", int(seed), r), steps)
        tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, vecs = np.linalg.eigh(tri)
        nodes.append(theta)
        weights.append(vecs[0, :] ** 2)
    lo, hi = min(float(t.min()) for t in nodes), max(float(t.max()) for t in nodes)
    variance = sigma_squared * max(1.0, hi - lo)
    pad = max(overhead, 6 * math.sqrt(variance))
    grid = np.linspace(lo - pad, hi + pad, grid_points)
    density = np.zeros(grid_points)
    for theta, w in zip(nodes, weights):
        density += (w[:, None] * np.exp(-((grid[None, :] - theta[:, None]) ** 2) / (2 * variance))).sum(0)
    density /= runs * math.sqrt(2 * math.pi * variance)
    return SpectralDensity(nodes, weights, grid, density, variance)
