"""Loss-landscape compute (Xu et al.): directions and their normalisations, the point evaluator, curves, grid shards,
curve shapes, and the paper's qualitative claims on digits (v-basins along Gaussian directions, ~90° between
Gaussian directions, a w-basin towards another mode whose barrier is the interpolation's, v-sides along −∇L)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowloss.workers.data import BatchStream, load_dataset
from lowloss.workers.interpolation import barrier, interpolate_state, reestimate_batchnorm
from lowloss.workers.landscape.directions import (
    angle_degrees,
    cosine,
    direction_between,
    direction_norm,
    flatten,
    gaussian_direction,
    negative_gradient_direction,
    normalise_direction,
    parameter_names,
    unflatten,
)
from lowloss.workers.landscape.mining import (
    fresh_initialisation,
    mine_vvv_basin,
    mine_w_peak,
    vvv_basin_direction,
    vvv_basin_lambda,
    w_peak_lambda,
)
from lowloss.workers.landscape.scans import (
    Grid,
    PointEvaluator,
    Shard,
    assemble_surface,
    classify_curve,
    count_stationary_points,
    curve_lambdas,
    grid_shards,
    line_lambdas,
    perturbed_state,
    scan_curve,
    scan_shard,
    shard_points,
    split_batches,
    stationary_points,
)
from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate_batches, make_optimizer, train_step


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def train(data, name: str, seed: int, steps: int, lr: float = 0.05):
    torch.manual_seed(seed)
    model = build_model(name, data.num_classes, data.in_channels, data.image_size)
    opt = make_optimizer(model.parameters(), "sgd", lr, momentum=0.9)
    stream = BatchStream(data, 64, seed=seed)
    for step in range(steps):
        train_step(model, opt, *stream.batch(step))
    model.eval()
    model.centre_state = state_of(model)  # the trained θ (evaluators overwrite the model's tensors)
    return model


@pytest.fixture(scope="module")
def mlp_modes(digits):
    """Two MLPs trained from different seeds for 20 epochs (460 steps each, train loss ≈ 0.002)."""
    return [train(digits, "mlp", seed, 20 * 23) for seed in (0, 1)]


@pytest.fixture(scope="module")
def mlp_early(digits):
    """An MLP after 10 SGD steps (an early checkpoint: gradient far from zero)."""
    return train(digits, "mlp", 2, 10)


@pytest.fixture(scope="module")
def cnn(digits):
    """A SmallCNN (BatchNorm) trained for 2 epochs."""
    return train(digits, "small_cnn", 0, 2 * 23)


def state_of(model):
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


# ---------------------------------------------------------------- directions


def test_norm_scales_the_whole_direction_to_the_model_norm(cnn):
    theta = cnn.centre_state
    names = parameter_names(cnn)
    eps = gaussian_direction(theta, names, seed=1, normalisation="norm", one_d="normalise")
    assert set(eps) == set(names)  # parameters only: no running statistics, no num_batches_tracked
    assert not any("running" in n or "num_batches" in n for n in eps)
    assert direction_norm(eps) == pytest.approx(direction_norm({n: theta[n] for n in names}), rel=1e-6)
    zeroed = gaussian_direction(theta, names, seed=1, normalisation="norm", one_d="zero")
    multi = [n for n in names if theta[n].dim() > 1]
    assert all(float(zeroed[n].abs().max()) == 0 for n in names if theta[n].dim() == 1)
    assert direction_norm({n: zeroed[n] for n in multi}) == pytest.approx(
        direction_norm({n: theta[n] for n in multi}), rel=1e-6
    )


def test_laynorm_and_filnorm_match_the_centre_per_layer_and_per_filter(cnn):
    theta = cnn.centre_state
    names = parameter_names(cnn)
    lay = gaussian_direction(theta, names, seed=2, normalisation="laynorm")
    for n in names:
        assert float(lay[n].norm()) == pytest.approx(float(theta[n].norm()), rel=1e-5)
    fil = gaussian_direction(theta, names, seed=2, normalisation="filnorm", one_d="zero")
    for n in names:
        if theta[n].dim() == 1:
            assert float(fil[n].abs().max()) == 0
            continue
        # every filter (output channel of a conv kernel, output row of a linear weight) has its filter's norm
        assert torch.allclose(fil[n].flatten(1).norm(dim=1), theta[n].flatten(1).norm(dim=1), rtol=1e-5)
        assert fil[n].shape == theta[n].shape
    raw = gaussian_direction(theta, names, seed=2, normalisation="none")
    kept = gaussian_direction(theta, names, seed=2, normalisation="filnorm", one_d="keep")
    for n in names:
        if theta[n].dim() == 1:
            assert torch.equal(kept[n], raw[n])  # "keep": the raw N(0, 1) draw
    # the normalised direction is the raw draw rescaled filter by filter (same orientation per filter)
    w = fil["conv2.weight"].flatten(1)
    r = raw["conv2.weight"].flatten(1)
    assert torch.allclose(F.cosine_similarity(w, r, dim=1), torch.ones(w.shape[0]), atol=1e-6)


def test_bad_settings_name_the_field_and_the_allowed_values(cnn):
    theta = cnn.centre_state
    with pytest.raises(ValueError, match="normalisation: 'filter' is not one of norm, laynorm, filnorm, none"):
        gaussian_direction(theta, parameter_names(cnn), 0, normalisation="filter")
    with pytest.raises(ValueError, match="one_d: 'copy' is not one of normalise, zero, keep"):
        normalise_direction({}, theta, "norm", one_d="copy")


def test_gaussian_direction_is_a_pure_function_of_its_seed(cnn):
    theta = cnn.centre_state
    names = parameter_names(cnn)
    a = gaussian_direction(theta, names, seed=7, normalisation="filnorm")
    b = gaussian_direction(theta, list(reversed(names)), seed=7, normalisation="filnorm")
    c = gaussian_direction(theta, names, seed=8, normalisation="filnorm")
    assert all(torch.equal(a[n], b[n]) for n in names)  # bit for bit, whatever the tensor order
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])
    double = {n: t.double() for n, t in theta.items()}
    d = gaussian_direction(double, names, seed=7, normalisation="none")
    assert torch.equal(d["fc1.weight"].float(), gaussian_direction(theta, names, 7, "none")["fc1.weight"])


def test_angle_between_gaussian_directions_of_a_realistic_model_is_ninety_degrees():
    model = build_model("mobilenetv2_cifar", 10, 3, 32)  # 2.2M parameters (the paper's MV2)
    theta = state_of(model)
    names = parameter_names(model)
    assert sum(theta[n].numel() for n in names) > 2_000_000
    angles = []
    for normalisation in ("norm", "filnorm"):
        dirs = [gaussian_direction(theta, names, seed=s, normalisation=normalisation) for s in range(3)]
        angles += [angle_degrees(dirs[i], dirs[j]) for i in range(3) for j in range(i + 1, 3)]
    assert all(abs(a - 90) < 1 for a in angles), angles
    # the helpers: a direction is at 0° to itself and 180° to its negation
    d = gaussian_direction(theta, names[:3], seed=0, normalisation="none")
    assert cosine(d, d) == pytest.approx(1, abs=1e-12)
    assert angle_degrees(d, {n: -t for n, t in d.items()}) == pytest.approx(180, abs=1e-5)


def test_flatten_round_trip_and_direction_between(digits, mlp_early):
    a, b = mlp_early.centre_state, train(digits, "mlp", 4, 2).centre_state
    names = parameter_names(mlp_early)
    d = direction_between(a, b, names)
    assert torch.equal(d["fc1.weight"], b["fc1.weight"] - a["fc1.weight"])
    back = unflatten(flatten(d, names), a, names)
    assert all(torch.equal(back[n], d[n]) for n in names)
    with pytest.raises(ValueError, match="vector: 3 entries"):
        unflatten(torch.zeros(3), a, names)


def test_negative_gradient_is_minus_the_full_batch_gradient(digits, mlp_early):
    model = mlp_early
    theta = model.centre_state
    batches = list(split_batches(digits, "train", 500))
    g = negative_gradient_direction(model, theta, batches)
    model.zero_grad()
    F.cross_entropy(model(digits.train_x), digits.train_y).backward()
    for n, p in model.named_parameters():
        assert torch.allclose(g[n], -p.grad, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------- the point evaluator


def test_evaluator_is_the_bare_procedure_and_never_perturbs_bn_statistics(digits, cnn):
    theta = cnn.centre_state
    names = parameter_names(cnn)
    d1 = gaussian_direction(theta, names, seed=0, normalisation="filnorm")
    d2 = gaussian_direction(theta, names, seed=1, normalisation="filnorm")
    point = perturbed_state(theta, [d1, d2], [0.1, -0.05])
    for n in theta:
        if n not in names:
            assert torch.equal(point[n], theta[n])  # running statistics and counters are θ's
    assert torch.allclose(
        point["conv1.weight"], theta["conv1.weight"] + 0.1 * d1["conv1.weight"] - 0.05 * d2["conv1.weight"]
    )
    model = build_model("small_cnn", 10, 1, 8)
    for policy in ("UpBN", "NoUpBN"):
        ev = PointEvaluator(cnn, theta, [d1, d2], digits, bn_policy=policy)
        got = ev.evaluate([0.1, -0.05])
        model.load_state_dict(point)
        if policy == "UpBN":
            reestimate_batchnorm(model, digits.eval_batches("train", 256))
        tl, ta = evaluate_batches(model, digits.eval_batches("train"))
        vl, va = evaluate_batches(model, digits.eval_batches("test"))
        assert got == pytest.approx({"train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va}, rel=1e-6)
        buffers = dict(cnn.named_buffers())
        assert torch.equal(buffers["bn1.num_batches_tracked"], theta["bn1.num_batches_tracked"])
        if policy == "NoUpBN":
            assert torch.equal(buffers["bn1.running_mean"], theta["bn1.running_mean"])
    up = PointEvaluator(cnn, theta, [d1, d2], digits, "UpBN").evaluate([0.1, -0.05])
    noup = PointEvaluator(cnn, theta, [d1, d2], digits, "NoUpBN").evaluate([0.1, -0.05])
    assert up["train_loss"] != noup["train_loss"]
    centre = PointEvaluator(cnn, theta, [d1], digits, "NoUpBN").evaluate([0.0])
    cnn.load_state_dict(theta)
    assert centre["test_loss"] == evaluate_batches(cnn, digits.eval_batches("test"))[0]
    with pytest.raises(ValueError, match="bn_policy: 'upbn' is not one of UpBN, NoUpBN"):
        PointEvaluator(cnn, theta, [d1], digits, "upbn")
    with pytest.raises(ValueError, match="direction: tensors"):
        PointEvaluator(cnn, theta, [{"bn1.running_mean": theta["bn1.running_mean"]}], digits)


def test_eval_examples_is_a_fixed_seeded_subset(digits, mlp_early):
    theta = mlp_early.centre_state
    d = gaussian_direction(theta, parameter_names(mlp_early), 0)
    ev = PointEvaluator(mlp_early, theta, [d], digits, eval_examples=200, eval_seed=5)
    assert len(ev.train_batches) == 200 and len(ev.test_batches) == 200
    again = PointEvaluator(mlp_early, theta, [d], digits, eval_examples=200, eval_seed=5)
    assert torch.equal(ev.train_batches.indices, again.train_batches.indices)
    assert ev.evaluate([0.3]) == again.evaluate([0.3])
    other = PointEvaluator(mlp_early, theta, [d], digits, eval_examples=200, eval_seed=6)
    assert not torch.equal(ev.train_batches.indices, other.train_batches.indices)
    whole = PointEvaluator(mlp_early, theta, [d], digits, eval_examples=10**6)
    assert len(whole.train_batches) == digits.n_train
    with pytest.raises(ValueError, match="eval_examples: 0 is not a positive number"):
        PointEvaluator(mlp_early, theta, [d], digits, eval_examples=0)


# ---------------------------------------------------------------- curve shapes


@pytest.mark.parametrize(
    "fn,lo,hi,expect,count",
    [
        (lambda x: x**2, -1, 1, "v-basin", 1),
        (lambda x: (x - 0.5) ** 2, -1, 1, "v-side", 1),
        (lambda x: x, -1, 1, "v-side", 0),
        (lambda x: (x**2 - 0.5) ** 2, -1, 1, "w-peak", 3),
        (lambda x: (x * (x - 1)) ** 2, -1, 2, "w-basin", 3),
        (lambda x: -(x**2), -1, 1, "other", 1),
        (lambda x: math.cos(5 * math.pi * x / 2), -1, 1, "other", 5),  # a vvv-basin: min, max, min, max, min
        (lambda x: x**4 - x**2, -1.2, 1.2, "w-peak", 3),
        (lambda x: ((x - 0.05) ** 2 - 0.5) ** 2, -1, 1, "w-peak", 3),  # the peak one grid step beside θ
        (lambda x: ((x + 0.2) * (x - 1.2)) ** 2, -1, 2, "w-basin", 3),  # θ near, not at, the first basin's bottom
    ],
)
def test_curve_classes_on_analytic_curves(fn, lo, hi, expect, count):
    lambdas = line_lambdas(lo, hi, 41) if (lo, hi) != (-1, 1) else curve_lambdas(1.0, 41)
    ys = [fn(x) for x in lambdas]
    assert count_stationary_points(ys) == count
    assert classify_curve(ys, lambdas) == expect


def test_stationary_points_exclude_endpoints_and_ties():
    assert stationary_points([0, 1, 0]) == [(1, "max")]
    assert stationary_points([5, 1, 2, 3]) == [(1, "min")]
    assert stationary_points([0, 1, 2, 3]) == []  # the extremes are endpoints: not counted
    assert stationary_points([1, 1, 1, 2]) == []  # equal neighbours: (y_t − y_{t+1})(y_t − y_{t−1}) = 0
    assert stationary_points([1, float("nan"), 0, 1]) == []


def test_curve_lambdas():
    lam = curve_lambdas()
    assert len(lam) == 41 and lam[0] == -1 and lam[-1] == 1 and lam[20] == 0.0
    assert curve_lambdas(4.0)[20] == 0.0 and curve_lambdas(0.1)[-1] == pytest.approx(0.1)
    w = line_lambdas(-1, 2, 31)
    assert w[10] == 0.0 and w[20] == 1.0
    with pytest.raises(ValueError, match="scale: 0"):
        curve_lambdas(0)


# ---------------------------------------------------------------- the paper's claims on digits


@pytest.mark.slow
def test_gaussian_curves_of_a_trained_model_are_v_basins(digits, mlp_modes):
    """Xu et al. §2.2 (GMI): curves along Gaussian directions at s = 1 are v-basins with θ at the basin."""
    model = mlp_modes[0]
    theta = model.centre_state
    classes = []
    for normalisation in ("norm", "filnorm"):
        for seed in range(5):
            d = gaussian_direction(theta, parameter_names(model), seed, normalisation)
            rows = scan_curve(PointEvaluator(model, theta, [d], digits), curve_lambdas(1.0))
            classes.append(classify_curve([r["train_loss"] for r in rows], [r["lambda"] for r in rows]))
    assert sum(c == "v-basin" for c in classes) >= 0.9 * len(classes), classes


@pytest.mark.slow
def test_direction_to_another_mode_is_a_w_basin_with_the_interpolation_barrier(digits, mlp_modes):
    """Xu et al. §2.4: θ_a + λ(θ_b − θ_a), λ ∈ [−1, 2], is a w-basin; its barrier on [0, 1] is the interpolation's."""
    a, b = mlp_modes[0].centre_state, mlp_modes[1].centre_state
    model = mlp_modes[0]
    lambdas = line_lambdas(-1, 2, 31)
    ev = PointEvaluator(model, a, [direction_between(a, b, parameter_names(model))], digits)
    rows = scan_curve(ev, lambdas)
    losses = [r["train_loss"] for r in rows]
    assert classify_curve(losses, lambdas) == "w-basin"
    inner = slice(10, 21)  # λ = 0, 0.1, …, 1
    alphas = lambdas[inner]
    # the interpolation kind's procedure at the same α
    bare = []
    probe = build_model("mlp", 10, 1, 8)
    for alpha in alphas:
        probe.load_state_dict(interpolate_state(a, b, alpha))
        bare.append(evaluate_batches(probe, digits.eval_batches("train"))[0])
    height, idx = barrier(losses[inner], alphas)
    expect, expect_idx = barrier(bare, alphas)
    assert idx == expect_idx and height == pytest.approx(expect, rel=1e-5) and height > 0


def test_negative_gradient_gives_a_v_side_curve(digits):
    """Xu et al. §2.3: along −∇L at an early checkpoint the loss decreases on one side: θ lies on a valley side."""
    model = train(digits, "mlp", 3, 5)
    theta = model.centre_state
    d = negative_gradient_direction(model, theta, digits.eval_batches("train"))
    lambdas = curve_lambdas(1.0, 21)
    rows = scan_curve(PointEvaluator(model, theta, [d], digits), lambdas)
    losses = [r["train_loss"] for r in rows]
    assert classify_curve(losses, lambdas) == "v-side"
    assert losses[11] < losses[10] < losses[9]


# ---------------------------------------------------------------- grids and shards


def test_shards_tile_the_grid_and_give_the_whole_surface(digits, cnn):
    grid = Grid(-1, 1, 5, -0.5, 0.5, 4)
    shards = grid_shards(grid, 2, 3)
    points = [p for s in shards for p in shard_points(grid, s)]
    assert len(points) == grid.size == len({(i, j) for i, j, _, _ in points})
    assert shard_points(grid, Shard(1, 3, 0, 2)) == [
        (1, 0, -0.5, -0.5),
        (1, 1, -0.5, -0.5 + 1 / 3),
        (2, 0, 0.0, -0.5),
        (2, 1, 0.0, -0.5 + 1 / 3),
    ]
    theta = cnn.centre_state
    names = parameter_names(cnn)
    dirs = [gaussian_direction(theta, names, s, "filnorm", "zero") for s in (0, 1)]
    ev = PointEvaluator(cnn, theta, dirs, digits, "UpBN", eval_examples=300)
    whole = scan_shard(ev, grid, Shard(0, grid.x_points, 0, grid.y_points))
    ev2 = PointEvaluator(cnn, theta, dirs, digits, "UpBN", eval_examples=300)
    parts = [row for s in reversed(shards) for row in scan_shard(ev2, grid, s)]
    for column in ("train_loss", "test_acc"):
        assert np.array_equal(assemble_surface(whole, grid, column), assemble_surface(parts, grid, column))
    surface = assemble_surface(whole, grid, "train_loss")
    assert surface[2, :].min() < surface[0, :].min()  # λ₁ = 0 lies lower than λ₁ = −1
    with pytest.raises(ValueError, match="grid points missing"):
        assemble_surface(parts[1:], grid, "train_loss")
    with pytest.raises(ValueError, match="appears twice"):
        assemble_surface(parts + parts[:1], grid, "train_loss")
    with pytest.raises(ValueError, match="does not lie inside"):
        shard_points(grid, Shard(4, 6, 0, 1))


# ---------------------------------------------------------------- mining


def test_w_peak_mining_follows_algorithm_1_and_resumes_bit_for_bit(digits, mlp_early):
    model = mlp_early
    theta = model.centre_state
    names = parameter_names(model)
    stream = BatchStream(digits, 128, seed=0, augment=False)
    epochs = 2
    spe = stream.steps_per_epoch
    assert all(abs(w_peak_lambda(t, spe, epochs, 0)) <= 0.5 for t in range(spe))  # α = 1/2 in epoch 1
    assert max(abs(w_peak_lambda(t, spe, epochs, 0)) for t in range(spe, 2 * spe)) > 0.5
    # the first step from ε = 0: ε = −η·λ₀·∇L(θ) on batch 0
    first = mine_w_peak(model, theta, stream, names, epochs=epochs, lr=0.1, seed=0, stop_step=1)
    x, y = stream.batch(0)
    model.load_state_dict(theta)
    model.train()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), [dict(model.named_parameters())[n] for n in names])
    lam0 = w_peak_lambda(0, spe, epochs, 0)
    for n, g in zip(names, grads):
        assert torch.allclose(first[n], -0.1 * lam0 * g, atol=1e-7)
    full = mine_w_peak(model, theta, stream, names, epochs=epochs, seed=0)
    half = mine_w_peak(model, theta, stream, names, epochs=epochs, seed=0, stop_step=spe)
    resumed = mine_w_peak(model, theta, stream, names, epochs=epochs, seed=0, epsilon=half, start_step=spe)
    assert all(torch.equal(full[n], resumed[n]) for n in names)
    assert direction_norm(full) > 0
    assert all(torch.equal(t, theta[n]) for n, t in model.state_dict().items())  # the model is given back at θ


@pytest.mark.slow
def test_algorithm_1_mines_a_w_peak_at_an_early_checkpoint(digits, mlp_early):
    """Xu et al. §2.4 / Fig. 9: on an early checkpoint the mined ε gives a w-peak (loss lower on both sides of θ)."""
    theta = mlp_early.centre_state
    stream = BatchStream(digits, 128, seed=0, augment=False)
    eps = mine_w_peak(mlp_early, theta, stream, parameter_names(mlp_early), epochs=100, lr=0.3, seed=0)
    lambdas = curve_lambdas(1.0)
    losses = [r["train_loss"] for r in scan_curve(PointEvaluator(mlp_early, theta, [eps], digits), lambdas)]
    assert classify_curve(losses, lambdas) == "w-peak", stationary_points(losses)
    assert min(losses[:20]) < 0.5 * losses[20] and min(losses[21:]) < 0.5 * losses[20]


def test_vvv_basin_mining_follows_algorithm_2(digits, mlp_early):
    model = mlp_early
    theta = model.centre_state
    names = parameter_names(model)
    stream = BatchStream(digits, 128, seed=1, augment=False)
    phi0 = fresh_initialisation(lambda: build_model("mlp", 10, 1, 8), seed=0)
    assert all(torch.equal(phi0[n], fresh_initialisation(lambda: build_model("mlp", 10, 1, 8), 0)[n]) for n in names)
    assert all(0.4 <= vvv_basin_lambda(t, 0.1, 0) <= 0.6 for t in range(50))
    assert vvv_basin_lambda(3, 0.0, 0) == 0.5
    # γ = 0 is plain SGD on φ
    phi = mine_vvv_basin(model, theta, phi0, stream, names, gamma=0.0, epochs=1, lr=0.1, stop_step=3)
    ref = build_model("mlp", 10, 1, 8)
    ref.load_state_dict(phi0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for step in range(3):
        train_step(ref, opt, *stream.batch(step))
    assert all(torch.allclose(phi[n], dict(ref.named_parameters())[n], atol=1e-6) for n in names)
    # γ > 0 adds γ·λ·∇L at the interpolated point; one step checked by hand
    one = mine_vvv_basin(model, theta, phi0, stream, names, gamma=0.9, alpha=0.1, epochs=1, lr=0.1, stop_step=1)
    x, y = stream.batch(0)
    lam = vvv_basin_lambda(0, 0.1, 0)
    ref.load_state_dict(phi0)
    ref.train()
    g_phi = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    ref.load_state_dict({**phi0, **{n: (1 - lam) * theta[n] + lam * phi0[n] for n in names}})
    g_mid = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    for n, a, b in zip(names, g_phi, g_mid):
        assert torch.allclose(one[n], phi0[n] - 0.1 * (a + 0.9 * lam * b), atol=1e-6)
    eps = vvv_basin_direction(phi, theta)
    assert torch.equal(eps["fc1.weight"], phi["fc1.weight"] - theta["fc1.weight"])
    with pytest.raises(ValueError, match="alpha: 0.7 is not in"):
        mine_vvv_basin(model, theta, phi0, stream, names, alpha=0.7)
