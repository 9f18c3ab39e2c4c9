"""Hessian compute (Xu et al. App. B): HVPs, eigsh eigenpairs, Hutchinson's trace and SLQ against a dense Hessian.

The model is a 472-parameter MLP with BatchNorm on the digits data, trained for a few hundred SGD steps in float64,
small enough for ``torch.autograd.functional.hessian`` over its flattened parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lowloss.workers.data import BatchStream, load_dataset
from lowloss.workers.landscape.directions import flatten, parameter_names
from lowloss.workers.landscape.hessian import (
    HessianOperator,
    eigenvector_directions,
    hessian_batches,
    hessian_eigenpairs,
    hutchinson_trace,
    second_order_terms,
    slq_density,
)


class TinyBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 6)
        self.bn1 = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 10)

    def forward(self, x):
        return self.fc2(torch.tanh(self.bn1(self.fc1(x.flatten(1)))))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Thousands of HVPs of a 472-parameter model: intra-op threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(one_thread):
    torch.manual_seed(0)
    data = load_dataset("digits")
    data = type(data)(
        data.name, data.train_x.double(), data.train_y, data.test_x.double(), data.test_y, data.num_classes
    )
    model = TinyBNNet().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    stream = BatchStream(data, 64, seed=0, augment=False)
    for step in range(150):
        x, y = stream.batch(step)
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    batches = hessian_batches(data, examples=500, seed=3, batch_size=250)
    names = parameter_names(model)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    flat0 = flatten({n: p.detach() for n, p in params.items()}, names)

    def loss_of(flat):
        tensors, offset = {}, 0
        for n in names:
            tensors[n] = flat[offset : offset + params[n].numel()].view_as(params[n])
            offset += params[n].numel()
        total = sum(
            F.cross_entropy(functional_call(model, {**tensors, **buffers}, (xb,)), yb, reduction="sum")
            for xb, yb in batches
        )
        return total / sum(int(yb.shape[0]) for _, yb in batches)

    dense = torch.autograd.functional.hessian(loss_of, flat0, vectorize=True)
    dense = (dense + dense.T) / 2
    model.dense_gradient = torch.autograd.functional.jacobian(loss_of, flat0)
    return model, batches, names, dense, torch.linalg.eigvalsh(dense)


def test_subset_is_seeded_and_stated(setup):
    _, batches, *_ = setup
    assert sum(int(y.shape[0]) for _, y in batches) == 500
    data = load_dataset("digits")
    again = hessian_batches(data, examples=500, seed=3, batch_size=250)
    other = hessian_batches(data, examples=500, seed=4, batch_size=250)
    assert torch.equal(torch.cat([y for _, y in again]), torch.cat([y for _, y in batches]))
    assert not torch.equal(torch.cat([y for _, y in other]), torch.cat([y for _, y in batches]))


def test_hvp_is_the_dense_hessian_times_v_in_eval_mode(setup):
    model, batches, names, dense, _ = setup
    op = HessianOperator(model, batches, names)
    assert op.dim == dense.shape[0] == 472
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model.train()  # the operator evaluates in eval mode whatever mode it is handed
    assert torch.allclose(op.hvp(v), dense @ v, rtol=1e-9, atol=1e-11)
    assert not model.training


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_eigsh_matches_the_dense_spectrum(setup, which):
    model, batches, names, dense, spectrum = setup
    op = HessianOperator(model, batches, names)
    values, vectors = hessian_eigenpairs(op, k=5, which=which, seed=0)
    expect = spectrum.flip(0)[:5].numpy() if which == "LA" else spectrum[:5].numpy()
    assert np.allclose(values, expect, rtol=1e-4, atol=0)
    assert vectors.shape == (5, op.dim) and vectors.dtype == torch.float64
    for lam, vec in zip(values, vectors):
        assert float((dense @ vec - lam * vec).norm()) < 1e-5 * float(spectrum.abs().max())
        assert abs(float(vec.norm()) - 1) < 1e-9
    if which == "SA":
        assert values[0] < 0  # a negative curvature direction exists at this point (w-peak material)
    if which == "LA":  # reproducible from the seed (LA converges in a few dozen products)
        again, vectors_again = hessian_eigenpairs(op, k=5, which=which, seed=0)
        assert np.array_equal(values, again) and torch.equal(vectors, vectors_again)
    directions = eigenvector_directions(vectors, dict(model.named_parameters()), names)
    assert directions[0]["fc1.weight"].shape == (6, 64)
    assert torch.equal(flatten(directions[0], names), vectors[0])


def test_eigsh_rejects_bad_settings(setup):
    model, batches, names, *_ = setup
    op = HessianOperator(model, batches, names)
    with pytest.raises(ValueError, match="which: 'LM' is not one of LA, SA"):
        hessian_eigenpairs(op, which="LM")
    with pytest.raises(ValueError, match="k: 11 is not in 1..10"):
        hessian_eigenpairs(op, k=11)


def test_hutchinson_trace_within_five_percent(setup):
    model, batches, names, dense, _ = setup
    op = HessianOperator(model, batches, names)
    samples = 400
    trace = float(dense.trace())
    off = dense - torch.diag(torch.diag(dense))
    sigma_rel = float((2 * off.pow(2).sum() / samples).sqrt()) / trace  # Rademacher: Var zᵀHz = 2 Σ_{i≠j} H_ij²
    assert sigma_rel < 0.017  # the chosen sample count makes 5 % a 3σ bound
    estimate, stderr = hutchinson_trace(op, samples=samples, seed=0)
    assert abs(estimate - trace) < 0.05 * trace
    assert 0.5 < stderr / (sigma_rel * trace) < 2
    assert hutchinson_trace(op, samples=samples, seed=0) == (estimate, stderr)


def test_slq_density_integrates_to_one_and_its_mean_is_trace_over_dimension(setup):
    model, batches, names, dense, spectrum = setup
    op = HessianOperator(model, batches, names)
    runs = 100
    result = slq_density(op, runs=runs, steps=6, seed=0)
    assert len(result.nodes) == runs
    for w in result.weights:
        assert abs(w.sum() - 1) < 1e-10
    assert abs(np.trapezoid(result.density, result.grid) - 1) < 1e-3
    # the quadrature's mean is exactly the mean of vᵀHv/vᵀv over the runs' start vectors ...
    from lowloss.workers.landscape.hessian import _rademacher

    exact = np.mean([float(z @ dense @ z) / op.dim for z in (_rademacher(op.dim, "slq", 0, r) for r in range(runs))])
    assert abs(result.mean - exact) < 1e-9 * abs(exact)
    # ... an unbiased estimate of tr(H)/d: within 3 standard deviations (Var vᵀHv = 2 Σ_{i≠j} H_ij², Rademacher v)
    trace_over_dim = float(dense.trace()) / op.dim
    off = dense - torch.diag(torch.diag(dense))
    sigma = float((2 * off.pow(2).sum() / runs).sqrt()) / op.dim
    assert abs(result.mean - trace_over_dim) < 3 * sigma
    assert float(spectrum[0]) - 1e-6 <= min(t.min() for t in result.nodes)
    assert max(t.max() for t in result.nodes) <= float(spectrum[-1]) + 1e-6


def test_full_lanczos_finds_the_dense_spectrum(setup):
    model, batches, names, _, spectrum = setup
    op = HessianOperator(model, batches, names)
    result = slq_density(op, runs=1, steps=op.dim, seed=1, grid_points=2000)
    nodes = np.sort(result.nodes[0])
    # with full re-orthogonalisation the extreme Ritz values are the extreme eigenvalues
    assert np.allclose(nodes[-3:], spectrum[-3:].numpy(), rtol=1e-6)
    assert np.allclose(nodes[:3], spectrum[:3].numpy(), rtol=1e-6, atol=1e-9)


def test_float32_model_gives_the_top_eigenvalues_to_float32_accuracy(setup):
    model, batches, _, _, spectrum = setup
    single = TinyBNNet()
    single.load_state_dict({n: t.float() for n, t in model.state_dict().items()})
    op = HessianOperator(single, [(x.float(), y) for x, y in batches])
    assert op.dtype == torch.float32
    values, _ = hessian_eigenpairs(op, k=3, which="LA", seed=0)
    assert np.allclose(values, spectrum.flip(0)[:3].numpy(), rtol=1e-3)


def test_second_order_terms_are_the_gradient_and_curvature_along_a_direction(setup):
    model, batches, names, dense, _ = setup
    op = HessianOperator(model, batches, names)
    eps = torch.randn(op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    b, a = second_order_terms(op, eps)
    assert b == pytest.approx(float(model.dense_gradient @ eps), rel=1e-9)
    assert a == pytest.approx(float(eps @ dense @ eps), rel=1e-9)
    # δL(λ) = L(θ + λε) − L(θ) ≈ bλ + ½aλ² for small λ
    params = dict(model.named_parameters())
    theta = {n: p.detach().clone() for n, p in params.items()}
    loss0, lam = op.loss(), 1e-3
    offset = 0
    with torch.no_grad():
        for n in names:
            k = params[n].numel()
            params[n].add_(lam * eps[offset : offset + k].view_as(params[n]))
            offset += k
    delta = op.loss() - loss0
    with torch.no_grad():
        for n in names:
            params[n].copy_(theta[n])
    assert delta == pytest.approx(b * lam + 0.5 * a * lam**2, rel=1e-3)
