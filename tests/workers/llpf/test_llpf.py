"""LLPF primitives: the defining property of each step of Algorithms 1 and 2, on tensors and on a tiny real model."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from torch import nn

from lowloss.workers.llpf import (
    LLPFConfig,
    TrainUntil,
    angle_conformal,
    apply_variance_correction,
    compensating_move,
    correctable,
    destination_on_start_sphere,
    group_label,
    layer_distances,
    layernorm_tensor_names,
    llpf_m2m_iteration,
    llpf_m2o_iteration,
    move,
    move_state,
    normalization_tensor_names,
    path_validity,
    phase_optimizer,
    phase_step_c_lengths,
    select_tensors,
    state_variances,
    tensor_distances,
    tensor_variance,
    train_r,
    variance_correction,
    weight_bias_groups,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a loaded machine they cost a lot."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ------------------------------------------------------------------------------------------------- fixtures


class TinyBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn1(self.fc1(x))))


def tiny(seed: int) -> TinyBN:
    torch.manual_seed(seed)
    return TinyBN()


def batches(seed: int = 0, n: int = 64, bs: int = 16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return itertools.cycle([(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)])


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, after, names) -> set[str]:
    return {n for n in names if not torch.equal(before[n], after[n])}


LOSS = nn.functional.cross_entropy


# ------------------------------------------------------------------------------------------- phase selection

NAMES = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "layer1.0.conv1.weight",
    "layer1.0.bn1.weight",
    "blocks.1.attn.weight",
    "blocks.10.attn.weight",
    "fc.weight",
    "fc.bias",
]


def test_select_matches_whole_components_anchored_at_the_start():
    assert select_tensors(NAMES, ["blocks.1.*"]) == ["blocks.1.attn.weight"]
    assert select_tensors(NAMES, ["conv1.weight"]) == ["conv1.weight"]
    assert select_tensors(NAMES, ["conv1"]) == ["conv1.weight"]  # a module prefix, never layer1.0.conv1
    assert select_tensors(NAMES, ["bn1.*"]) == [
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    ]
    assert select_tensors(NAMES, ["layer1.*"]) == ["layer1.0.conv1.weight", "layer1.0.bn1.weight"]
    assert select_tensors(NAMES, ["fc.{weight,bias}", "bn1.{weight+bias}"]) == [
        "bn1.weight",
        "bn1.bias",
        "fc.weight",
        "fc.bias",
    ]
    assert select_tensors(NAMES, "all") == NAMES and select_tensors(NAMES, ["*"]) == NAMES
    assert select_tensors(NAMES, ["**.bias"]) == ["bn1.bias", "fc.bias"]
    assert select_tensors(NAMES, ["all", "!bn1", "!layer1"]) == [
        "conv1.weight",
        "blocks.1.attn.weight",
        "blocks.10.attn.weight",
        "fc.weight",
        "fc.bias",
    ]


@pytest.mark.parametrize("bad", ["blocks.2.*", "conv", "fc.{weight,gamma}x", "!nothing", "layer1.0.conv1.weight.x"])
def test_select_raises_naming_the_pattern_that_matches_nothing(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        select_tensors(NAMES, ["fc.weight", bad])


def test_normalization_names_found_by_module_type():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.downsample = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
            self.pre_norm = nn.LayerNorm(4)

    names = normalization_tensor_names(M())
    assert set(names) == {
        "downsample.1.weight",
        "downsample.1.bias",
        "downsample.1.running_mean",
        "downsample.1.running_var",
        "downsample.1.num_batches_tracked",
        "pre_norm.weight",
        "pre_norm.bias",
    }


# ------------------------------------------------------------------------------------------------------ Move


def test_move_with_step_f_at_least_the_distance_lands_exactly_on_d():
    g = torch.Generator().manual_seed(0)
    p, d = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g) * 3 + 1
    dist = float((d - p).norm())
    for step_f in (dist, dist * 1.0001, 1e9):
        out = move(p, d, step_a=0.0, step_f=step_f)
        assert torch.equal(out, d)  # bit-for-bit, not p + (d - p)
    assert torch.equal(move(d, d, 0.5, 1.0), d)  # already there: stays


def test_move_length_is_max_of_floor_and_fraction_along_the_unit_direction():
    g = torch.Generator().manual_seed(1)
    p, d = torch.randn(100, generator=g), torch.randn(100, generator=g)
    dist = float((d - p).norm())
    out = move(p, d, step_a=0.1, step_f=1e-3)  # fraction dominates
    assert float((out - p).norm()) == pytest.approx(0.1 * dist, rel=1e-5)
    assert float((d - out).norm()) == pytest.approx(0.9 * dist, rel=1e-5)
    cos = torch.nn.functional.cosine_similarity(out - p, d - p, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-5)
    out = move(p, d, step_a=1e-6, step_f=0.05, step_c_length=0.02)  # floor + c dominates
    assert float((out - p).norm()) == pytest.approx(0.07, rel=1e-4)


def test_clamped_move_never_passes_d_and_unclamped_overshoots():
    g = torch.Generator().manual_seed(2)
    p, d = torch.randn(50, generator=g), torch.randn(50, generator=g)
    dist = float((d - p).norm())
    step = dist / 3.5  # does not divide the distance: the 4th step would pass D
    cur, dists = p.clone(), []
    for _ in range(6):
        cur = move(cur, d, 0.0, step)
        dists.append(float((d - cur).norm()))
    assert all(a >= b for a, b in zip(dists, dists[1:]))
    assert torch.equal(cur, d) and dists[3] == 0.0
    cur = p.clone()
    for _ in range(4):
        prev = cur
        cur = move(cur, d, 0.0, step, clamp=False)
    assert float((d - cur).norm()) == pytest.approx(0.5 * step, rel=1e-4)  # passed D by half a step
    assert float(torch.dot(d - cur, d - prev)) < 0  # now on the other side: it oscillates


def test_move_state_moves_only_the_named_floating_tensors_in_place():
    model = tiny(0)
    dest = snapshot(tiny(1))
    dest["bn1.running_mean"] += 1.0
    before = snapshot(model)
    state = model.state_dict()
    names = ["fc1.weight", "bn1.running_mean", "bn1.num_batches_tracked"]
    lengths = move_state(state, dest, names, step_a=0.5, step_f=0.0)
    assert set(lengths) == {"fc1.weight", "bn1.running_mean"}  # the integer counter is never moved
    assert changed(before, snapshot(model), state.keys()) == {"fc1.weight", "bn1.running_mean"}
    d0 = float((before["bn1.running_mean"] - dest["bn1.running_mean"]).norm())
    assert lengths["bn1.running_mean"] == pytest.approx(0.5 * d0, rel=1e-6)


def test_step_c_lengths_are_step_c_times_the_initial_distance():
    a, b = snapshot(tiny(0)), snapshot(tiny(1))
    c = phase_step_c_lengths(a, b, ["fc1.weight", "fc2.bias", "bn1.num_batches_tracked"], 2e-3)
    dist = tensor_distances(a, b, ["fc1.weight", "fc2.bias"])
    assert set(c) == {"fc1.weight", "fc2.bias"}
    assert c["fc1.weight"] == pytest.approx(2e-3 * dist["fc1.weight"])


# --------------------------------------------------------------------------------------- VarianceCorrection


@pytest.mark.parametrize(
    "shape,scale,target", [((64, 3, 3, 3), 0.05, 1e-3), ((10,), 2.0, 0.3), ((512, 256), 1e-3, 4e-5)]
)
def test_variance_correction_hits_the_target_exactly_and_keeps_the_mean(shape, scale, target):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(shape, generator=g) * scale + 0.01
    out = variance_correction(w, target)
    assert out.dtype == w.dtype and out.shape == w.shape
    assert tensor_variance(out) == pytest.approx(target, rel=1e-6)
    assert float(out.double().mean()) == pytest.approx(float(w.double().mean()), abs=1e-7 * max(1.0, scale))


def test_eps_quirk_deviates_for_small_variance_tensors_only():
    g = torch.Generator().manual_seed(4)
    small = torch.randn(4096, generator=g) * 1e-3  # var 1e-6 ≪ eps
    exact = variance_correction(small, 4e-6)
    quirk = variance_correction(small, 4e-6, eps=1e-4)
    assert tensor_variance(exact) == pytest.approx(4e-6, rel=1e-6)
    assert tensor_variance(quirk) < 1.1e-6  # barely corrected: the reference's damping dominates
    large = torch.randn(4096, generator=g)  # var ≈ 1 ≫ eps
    assert tensor_variance(variance_correction(large, 4.0, eps=1e-4)) == pytest.approx(4.0, rel=1e-3)


def test_variance_correction_leaves_constant_tensors_and_skips_statistics():
    c = torch.full((8,), 0.7)
    assert torch.equal(variance_correction(c, 2.0), c)
    assert not correctable("bn1.running_mean", torch.randn(4))
    assert not correctable("layer1.0.bn2.running_var", torch.rand(4))
    assert not correctable("bn1.num_batches_tracked", torch.tensor(3))
    assert not correctable("classifier.scale", torch.randn(1))
    assert correctable("bn1.weight", torch.randn(4)) and correctable("fc.bias", torch.randn(3))


def test_apply_variance_correction_only_touches_named_correctable_tensors():
    model = tiny(0)
    targets = state_variances(snapshot(tiny(1)))
    assert "bn1.running_mean" not in targets and "fc1.weight" in targets
    model.state_dict()["bn1.running_mean"].add_(0.3)
    before = snapshot(model)
    done = apply_variance_correction(model.state_dict(), targets, ["fc1.weight", "bn1.running_mean", "bn1.weight"])
    assert done == ["fc1.weight", "bn1.weight"]
    after = snapshot(model)
    assert changed(before, after, after.keys()) <= {"fc1.weight", "bn1.weight"}
    assert tensor_variance(after["fc1.weight"]) == pytest.approx(targets["fc1.weight"], rel=1e-6)
    with pytest.raises(KeyError, match="fc2.weight"):
        apply_variance_correction(model.state_dict(), {}, ["fc2.weight"])


# -------------------------------------------------------------------------------------------------- Train^r


def scripted_loss(values):
    it = iter(values)

    def loss_fn(out, y):
        return out.sum() * 0.0 + next(it)

    return loss_fn


def test_train_r_stops_on_the_rolling_threshold_after_min_rounds():
    model = nn.Linear(6, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    # 12 losses of 1.0 then zeros: the rolling mean of the last 10 first drops to ≤ 0.25 at step 20 (2 ones left)
    res = train_r(
        model, opt, batches(), scripted_loss([1.0] * 12 + [0.0] * 100), threshold=0.25, min_rounds=10, max_rounds=200
    )
    assert (res.stopped_by, res.steps) == ("threshold", 20)
    assert res.rolling_loss == pytest.approx(0.2)
    assert res.losses == [1.0] * 12 + [0.0] * 8
    # low losses from the start still take min_rounds steps
    res = train_r(model, opt, batches(), scripted_loss([0.0] * 100), threshold=0.1, min_rounds=10, max_rounds=200)
    assert (res.stopped_by, res.steps) == ("threshold", 10)


def test_train_r_stops_at_max_rounds_fixed_rounds_and_nonfinite():
    model = nn.Linear(6, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    res = train_r(model, opt, batches(), scripted_loss([1.0] * 100), threshold=0.5, min_rounds=10, max_rounds=37)
    assert (res.stopped_by, res.steps, len(res.losses)) == ("max_rounds", 37, 37)
    res = train_r(model, opt, batches(), scripted_loss([3.0, 1.0, 2.0, 4.0, 5.0]), rounds=5, min_rounds=2)
    assert (res.stopped_by, res.steps, res.losses, res.rolling_loss) == ("rounds", 5, [3.0, 1.0, 2.0, 4.0, 5.0], 4.5)
    res = train_r(model, opt, batches(), scripted_loss([1.0, math.nan] + [0.0] * 50), threshold=0.5, max_rounds=50)
    assert (res.stopped_by, res.steps) == ("nonfinite", 2)
    with pytest.raises(ValueError):
        TrainUntil(threshold=0.1)  # unbounded
    with pytest.raises(ValueError):
        TrainUntil(rounds=5, threshold=0.1)


def test_train_r_updates_only_the_optimizers_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    before = snapshot(model)
    train_r(model, opt, batches(), LOSS, rounds=5)
    after = snapshot(model)
    assert changed(before, after, after.keys()) == {"2.weight", "2.bias"}
    assert all(p.requires_grad for p in model.parameters()) and model[0].weight.grad is None


# ---------------------------------------------------------------------------------------------- Algorithm 1

CFG = LLPFConfig(step_a=0.05, step_f=1e-3, train_rounds=3)


def m2m_setup(phase_patterns, **cfg_overrides):
    start, dest = tiny(0), snapshot(tiny(1))
    g = torch.Generator().manual_seed(5)  # a trained destination has its own BatchNorm statistics
    dest["bn1.running_mean"] = torch.randn(16, generator=g) * 0.3
    dest["bn1.running_var"] = torch.rand(16, generator=g) + 0.5
    dest["bn1.num_batches_tracked"] = torch.tensor(1000)
    targets = state_variances(snapshot(start))
    names = select_tensors(start.state_dict().keys(), phase_patterns)
    opt = phase_optimizer(start, names, lr=1e-2)
    cfg = LLPFConfig(**{**CFG.__dict__, **cfg_overrides})
    return start, dest, targets, names, opt, cfg


def test_m2m_iteration_leaves_tensors_outside_the_phase_bit_for_bit_untouched():
    model, dest, targets, names, opt, cfg = m2m_setup(["fc1.*", "bn1.{weight,bias,running_mean,running_var}"])
    before = snapshot(model)
    metrics = llpf_m2m_iteration(model, dest, targets, names, opt, batches(), LOSS, cfg)
    after = snapshot(model)
    assert changed(before, after, ["fc2.weight", "fc2.bias"]) == set()
    assert changed(before, after, names) == set(names)
    for n in ["fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias"]:  # P_{i+1} is on P0's variance sphere
        assert tensor_variance(after[n]) == pytest.approx(targets[n], rel=1e-6)
        assert metrics["variances"][n] == pytest.approx(targets[n], rel=1e-6)
    assert metrics["corrected"] == ["fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias"]
    assert metrics["steps"] == 3 and len(metrics["losses"]) == 3 and metrics["stopped_by"] == "rounds"
    assert set(metrics["step_lengths"]) == set(names)
    assert metrics["distances"]["fc1.weight"] < float((before["fc1.weight"] - dest["fc1.weight"]).norm())


def test_m2m_batchnorm_statistics_follow_the_documented_rules():
    # phase outside BN: its running stats follow the batches (train mode), its counter counts the steps
    model, dest, targets, names, opt, cfg = m2m_setup(["fc2.*"])
    before = snapshot(model)
    llpf_m2m_iteration(model, dest, targets, names, opt, batches(), LOSS, cfg)
    after = snapshot(model)
    assert changed(before, after, after.keys()) == {
        "fc2.weight",
        "fc2.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    }
    assert int(after["bn1.num_batches_tracked"]) == int(before["bn1.num_batches_tracked"]) + 3
    # freeze_stats_outside_phase: every tensor outside the phase, buffers included, is bit-for-bit unchanged
    model, dest, targets, names, opt, cfg = m2m_setup(["fc2.*"], freeze_stats_outside_phase=True)
    before = snapshot(model)
    llpf_m2m_iteration(model, dest, targets, names, opt, batches(), LOSS, cfg)
    assert changed(before, snapshot(model), before.keys()) == {"fc2.weight", "fc2.bias"}
    # phase BN statistics are moved toward D like parameters (never variance-corrected); the counter never moves.
    # BN momentum 0 keeps training from touching the statistics, so the Move is what we see.
    model, dest, targets, names, opt, cfg = m2m_setup(["bn1.*"], step_f=1e9)
    model.bn1.momentum = 0.0
    before = snapshot(model)
    metrics = llpf_m2m_iteration(model, dest, targets, names, opt, batches(), LOSS, cfg)
    after = snapshot(model)
    assert torch.equal(after["bn1.running_mean"], dest["bn1.running_mean"])
    assert torch.equal(after["bn1.running_var"], dest["bn1.running_var"])
    assert int(after["bn1.num_batches_tracked"]) == int(before["bn1.num_batches_tracked"]) + 3
    assert "bn1.running_mean" not in metrics["corrected"]


def test_m2m_refuses_an_optimizer_reaching_outside_the_phase_and_reference_quirks():
    model, dest, targets, names, _, cfg = m2m_setup(["fc1.*"])
    full = torch.optim.SGD(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="outside the phase"):
        llpf_m2m_iteration(model, dest, targets, names, full, batches(), LOSS, cfg)
    quirky = cfg.with_reference_quirks()
    assert (quirky.clamp, quirky.variance_eps, quirky.correct_all_tensors, quirky.train_outside_phase) == (
        False,
        1e-4,
        True,
        True,
    )
    metrics = llpf_m2m_iteration(model, dest, targets, names, full, batches(), LOSS, quirky)
    assert "fc2.weight" in metrics["corrected"]  # every tensor corrected, not only the phase's
    with pytest.raises(ValueError, match="step_c_lengths"):
        llpf_m2m_iteration(
            model,
            dest,
            targets,
            names,
            phase_optimizer(model, names, 1e-2),
            batches(),
            LOSS,
            LLPFConfig(step_c=2e-3, train_rounds=1),
        )


def test_m2m_path_reaches_d_when_p0_and_d_share_the_variance_sphere():
    model, dest, targets, names, opt, cfg = m2m_setup("all", step_a=0.0, step_f=1.0, train_rounds=1)
    dest_targets = state_variances(dest)
    opt = phase_optimizer(model, names, lr=0.0)
    dists = []
    for _ in range(6):
        m = llpf_m2m_iteration(model, dest, dest_targets, names, opt, batches(), LOSS, cfg)
        dists.append(max(v for k, v in m["distances"].items() if correctable(k, dest[k])))
    assert dists == sorted(dists, reverse=True) and dists[0] > 1.0
    assert dists[-1] < 1e-6  # clamped steps land on D and stay there


def test_config_validation():
    with pytest.raises(ValueError):
        LLPFConfig(train_rounds=5)  # no step at all
    with pytest.raises(ValueError):
        LLPFConfig(step_f=1e-3)  # no stop rule
    with pytest.raises(ValueError):
        LLPFConfig(step_f=-1.0, train_rounds=1)


# ---------------------------------------------------------------------------------------------- Algorithm 2


def test_angle_conformal_is_the_variance_ratio():
    assert angle_conformal(1e-3, 0.5, 2.0) == pytest.approx(2.5e-4)
    assert angle_conformal(0.1, 3.0, 3.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        angle_conformal(0.1, 1.0, 0.0)


def m2o_setup(train_norms: bool, **cfg_overrides):
    model = tiny(0)
    names = list(model.state_dict().keys())
    phase = select_tensors(names, ["all", *("!" + n for n in normalization_tensor_names(model))])
    trained = [n for n, _ in model.named_parameters()] if train_norms else phase
    opt = phase_optimizer(model, trained, lr=1e-2, per_tensor_groups=True)
    cfg = LLPFConfig(**{**LLPFConfig(step_a=0.1, train_rounds=2).__dict__, **cfg_overrides})
    return model, state_variances(snapshot(model)), phase, opt, cfg


def test_m2o_moves_toward_the_origin_excluding_norm_layers():
    model, v0, phase, opt, cfg = m2o_setup(train_norms=False)
    assert phase == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    before = snapshot(model)
    metrics = llpf_m2o_iteration(model, v0, phase, opt, batches(), LOSS, cfg)
    after = snapshot(model)
    assert set(metrics["step_lengths"]) == set(phase)
    for n in phase:
        assert metrics["distances"][n] < float(before[n].norm())  # closer to the origin
    assert changed(before, after, ["bn1.weight", "bn1.bias"]) == set()  # norm layers neither moved nor trained here
    # AngleConformal: weights at base·Var(N)/Var(P0), biases (reference) at the base rate
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert set(metrics["lrs"]) == {"fc1.weight", "fc2.weight"}
    assert lrs["fc1.weight"] == pytest.approx(1e-2 * 0.9**2, rel=1e-4)  # a 10% step toward O scales Var by 0.81
    assert lrs["fc1.bias"] == 1e-2


def test_m2o_rates_stay_relative_to_the_base_across_iterations():
    model, v0, phase, opt, cfg = m2o_setup(train_norms=True, conformal_all_tensors=True, train_rounds=1)
    for _ in range(3):
        m = llpf_m2o_iteration(model, v0, phase, opt, batches(), LOSS, cfg)
    state = model.state_dict()
    for g in opt.param_groups:
        if g["name"] in phase:
            assert g["llpf_base_lr"] == 1e-2
            assert m["lrs"][g["name"]] == pytest.approx(1e-2 * m["variances"][g["name"]] / v0[g["name"]], rel=0.05)
        else:
            assert g["lr"] == 1e-2 and g["name"].startswith("bn1")
    assert float(state["fc2.weight"].norm()) < 0.8 * math.sqrt(v0["fc2.weight"] * 48)
    shared = torch.optim.SGD(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="one param group per"):
        llpf_m2o_iteration(model, v0, phase, shared, batches(), LOSS, cfg)


# -------------------------------------------------------------------------------------------- path validity


def test_path_validity_three_criteria():
    ok = path_validity(0.08, 0.1, {"a": 0.05, "b": 0.01}, 0.1, 0.52, 0.50, 0.05)
    assert ok["valid"] and ok["farthest_tensor"] == "a" and ok["max_final_distance"] == 0.05
    bad_loss = path_validity(0.12, 0.1, {"a": 0.05}, 0.1, 0.50, 0.50, 0.05)
    assert not bad_loss["valid"] and not bad_loss["train_loss_below_threshold"] and bad_loss["distance_converged"]
    bad_dist = path_validity(0.05, 0.1, {"a": 0.05, "b": 0.3}, 0.1, 0.50, 0.50, 0.05)
    assert not bad_dist["distance_converged"] and bad_dist["farthest_tensor"] == "b"
    bad_test = path_validity(0.05, 0.1, {"a": 0.05}, 0.1, 0.40, 0.50, 0.05)
    assert not bad_test["test_loss_converged"] and bad_test["test_loss_gap"] == pytest.approx(-0.1)
    assert not path_validity(math.nan, 0.1, {"a": 0.0}, 0.1, 0.5, 0.5, 0.05)["valid"]
    assert not path_validity(0.05, 0.1, {"a": math.inf}, 0.1, 0.5, 0.5, 0.05)["distance_converged"]


# ------------------------------------------------------------------------ weight and bias moved as one vector


def test_weight_bias_groups_pair_a_modules_weight_with_its_bias():
    names = [
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "fc.weight",
        "head.bias",
        "bias",
        "weight",
        "rnn.weight_ih",
        "rnn.bias_ih",
    ]
    units = weight_bias_groups(names)
    assert units == [
        ("conv1.weight", "conv1.bias"),
        ("bn1.weight", "bn1.bias"),
        ("bn1.running_mean",),
        ("fc.weight",),
        ("head.bias",),
        ("weight", "bias"),
        ("rnn.weight_ih",),
        ("rnn.bias_ih",),
    ]
    assert [group_label(u) for u in units[:4]] == ["conv1", "bn1", "bn1.running_mean", "fc.weight"]
    assert weight_bias_groups(["fc.bias"]) == [("fc.bias",)]  # a bias whose weight is not moved moves alone


def _two_tensors():
    p = {"fc.weight": torch.tensor([[1.0, 1.0], [1.0, 1.0]]), "fc.bias": torch.tensor([0.0, 0.0])}
    d = {"fc.weight": torch.tensor([[1.0, 1.0], [1.0, 4.0]]), "fc.bias": torch.tensor([4.0, 0.0])}
    return p, d


def test_grouped_move_matches_a_hand_computation_on_two_small_tensors():
    # d_w = [0, 0, 0, 3], d_b = [4, 0]: the joined difference has length 5 and unit direction (0,0,0,.6 | .8,0)
    p, d = _two_tensors()
    lengths = move_state(p, d, ["fc.weight", "fc.bias"], step_a=0.0, step_f=1.0, group_weight_bias=True)
    assert torch.allclose(p["fc.weight"], torch.tensor([[1.0, 1.0], [1.0, 1.6]]))
    assert torch.allclose(p["fc.bias"], torch.tensor([0.8, 0.0]))
    assert lengths == {"fc.weight": pytest.approx(1.0), "fc.bias": pytest.approx(1.0)}
    assert layer_distances(p, d, ["fc.weight", "fc.bias"], True) == {"fc": pytest.approx(4.0)}
    # per tensor (the default), each moves a full step of its own: the bias 1.0 instead of 0.8
    p, d = _two_tensors()
    move_state(p, d, ["fc.weight", "fc.bias"], step_a=0.0, step_f=1.0)
    assert torch.allclose(p["fc.weight"], torch.tensor([[1.0, 1.0], [1.0, 2.0]]))
    assert torch.allclose(p["fc.bias"], torch.tensor([1.0, 0.0]))
    # step_a is a fraction of the joined distance: 0.5 · 5 = 2.5 along the same direction
    p, d = _two_tensors()
    move_state(p, d, ["fc.weight", "fc.bias"], step_a=0.5, step_f=0.0, group_weight_bias=True)
    assert torch.allclose(p["fc.weight"], torch.tensor([[1.0, 1.0], [1.0, 2.5]]))
    assert torch.allclose(p["fc.bias"], torch.tensor([2.0, 0.0]))
    # clamped at D: a step past the joined distance lands exactly on D
    p, d = _two_tensors()
    move_state(p, d, ["fc.weight", "fc.bias"], step_a=0.0, step_f=10.0, group_weight_bias=True)
    assert torch.equal(p["fc.weight"], d["fc.weight"]) and torch.equal(p["fc.bias"], d["fc.bias"])


def test_grouped_step_c_length_is_step_c_times_the_joined_distance():
    p, d = _two_tensors()
    assert phase_step_c_lengths(p, d, ["fc.weight", "fc.bias"], 0.1, group_weight_bias=True) == {
        "fc.weight": pytest.approx(0.5),
        "fc.bias": pytest.approx(0.5),
    }
    assert phase_step_c_lengths(p, d, ["fc.weight", "fc.bias"], 0.1) == {
        "fc.weight": pytest.approx(0.3),
        "fc.bias": pytest.approx(0.4),
    }


def test_m2m_iteration_with_grouping_moves_layers_and_reports_their_distances():
    model, dest, targets, names, _, cfg = m2m_setup(["fc1.*", "fc2.*"], group_weight_bias=True)
    before = snapshot(model)
    metrics = llpf_m2m_iteration(
        model, dest, targets, names, phase_optimizer(model, names, lr=0.0), batches(), LOSS, cfg
    )
    assert set(metrics["layer_distances"]) == {"fc1", "fc2"}
    joined = {
        k: float(
            torch.cat([(snapshot(model)[f"{k}.{t}"] - dest[f"{k}.{t}"]).flatten() for t in ("weight", "bias")])
            .double()
            .norm()
        )
        for k in ("fc1", "fc2")
    }
    assert metrics["layer_distances"] == {k: pytest.approx(v) for k, v in joined.items()}
    assert metrics["step_lengths"]["fc1.weight"] == metrics["step_lengths"]["fc1.bias"]
    assert changed(before, snapshot(model), ["bn1.weight", "bn1.bias"]) == set()
    assert LLPFConfig(step_f=1e-3, train_rounds=5).with_reference_quirks().group_weight_bias
    assert not LLPFConfig(step_f=1e-3, train_rounds=5).with_reference_quirks(group_weight_bias=False).group_weight_bias


# ------------------------------------------------------------- the distance verdict: D on P0's variance sphere


def test_a_converged_path_reaches_d_projected_on_p0s_sphere_not_d():
    model, dest, targets, names, opt, cfg = m2m_setup("all", step_a=0.0, step_f=1.0, train_rounds=1)
    opt = phase_optimizer(model, names, lr=0.0)  # Move and VarianceCorrection only
    for _ in range(8):
        llpf_m2m_iteration(model, dest, targets, names, opt, batches(), LOSS, cfg)
    state = snapshot(model)
    projected = destination_on_start_sphere(dest, targets)
    params = [n for n, _ in model.named_parameters()]
    raw = tensor_distances(state, dest, params)
    residual = tensor_distances(state, projected, params)
    assert max(residual.values()) < 1e-5  # the fixed point of Move → VarianceCorrection
    assert max(raw.values()) > 0.05  # D itself is off P0's sphere: the raw distance never closes
    for n in params:
        assert tensor_variance(projected[n]) == pytest.approx(targets[n], rel=1e-6)  # float32 tensors
        assert float(projected[n].double().mean()) == pytest.approx(float(dest[n].double().mean()), abs=1e-6)
    assert torch.equal(projected["bn1.running_mean"], dest["bn1.running_mean"])  # statistics are D's own


# --------------------------------------------------------------------------- LayerNorm in M2O (authors' code)


class TinyLN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.ln = nn.LayerNorm(8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.bn(torch.relu(self.ln(self.fc1(x)))))


def test_compensating_move_pushes_layernorm_away_from_the_origin_by_the_same_step():
    torch.manual_seed(0)
    model = TinyLN()
    with torch.no_grad():
        model.ln.bias.normal_()
    assert layernorm_tensor_names(model) == ["ln.weight", "ln.bias"]
    before = snapshot(model)
    state = model.state_dict()
    lengths = compensating_move(state, ["ln.weight", "ln.bias"], step_a=0.1, step_f=0.0)
    for n in ("ln.weight", "ln.bias"):  # toward 2P: P + 0.1·‖P‖·P/‖P‖ = 1.1·P
        assert torch.allclose(state[n], 1.1 * before[n])
        assert lengths[n] == pytest.approx(0.1 * float(before[n].norm()), rel=1e-6)
    state["ln.weight"].copy_(before["ln.weight"])
    compensating_move(state, ["ln.weight"], step_a=0.0, step_f=0.5)  # a fixed length along P/‖P‖
    assert float((state["ln.weight"] - before["ln.weight"]).norm()) == pytest.approx(0.5, rel=1e-6)


def test_m2o_keeps_norm_layers_by_default_and_compensates_layernorm_on_request():
    for compensate in (False, True):
        torch.manual_seed(0)
        model = TinyLN()
        names = list(model.state_dict().keys())
        phase = select_tensors(names, ["all", *("!" + n for n in normalization_tensor_names(model))])
        assert phase == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        opt = phase_optimizer(model, phase, lr=0.0, per_tensor_groups=True)
        cfg = LLPFConfig(step_a=0.1, train_rounds=1, compensate_layernorm=compensate)
        before = snapshot(model)
        metrics = llpf_m2o_iteration(model, state_variances(before), phase, opt, batches(), LOSS, cfg)
        after = snapshot(model)
        assert torch.allclose(after["fc1.weight"], 0.9 * before["fc1.weight"])  # toward O
        assert torch.equal(after["bn.weight"], before["bn.weight"])  # BatchNorm stays where it is either way
        if compensate:
            assert torch.allclose(after["ln.weight"], 1.1 * before["ln.weight"])  # away from O, same step
            assert "ln.weight" in metrics["distances"] and "ln.weight" not in metrics["lrs"]
        else:
            assert torch.equal(after["ln.weight"], before["ln.weight"])  # the paper's rule (§3.2)
    assert LLPFConfig(step_a=0.1, train_rounds=1).with_reference_quirks().compensate_layernorm


# ------------------------------------------------------------------------------- test-loss criterion, reported


def test_test_loss_rules_and_the_failures_they_name():
    improved = path_validity(0.05, 0.1, {"a": 0.05}, 0.1, 0.40, 0.50, 0.05, destination_test_loss=0.42)
    assert not improved["valid"] and not improved["test_loss_converged"]
    assert improved["test_loss_change"] == pytest.approx(-0.1)
    assert improved["final_minus_destination_test_loss"] == pytest.approx(-0.02)
    assert len(improved["failures"]) == 1 and "test loss (converge)" in improved["failures"][0]
    assert "-0.1000" in improved["failures"][0] and "by 0.05" in improved["failures"][0]
    assert "improved" in improved["failures"][0]
    no_worse = path_validity(0.05, 0.1, {"a": 0.05}, 0.1, 0.40, 0.50, 0.05, test_loss_rule="no_worse")
    assert no_worse["valid"] and no_worse["failures"] == [] and no_worse["final_minus_destination_test_loss"] is None
    worse = path_validity(0.05, 0.1, {"a": 0.05}, 0.1, 0.60, 0.50, 0.05, test_loss_rule="no_worse")
    assert not worse["test_loss_converged"] and "+0.1000" in worse["failures"][0]
    all_bad = path_validity(0.15, 0.1, {"a": 0.05, "b": 0.3}, 0.1, 0.60, 0.50, 0.05)
    assert [f.split(":")[0] for f in all_bad["failures"]] == ["train loss", "distance", "test loss (converge)"]
    assert "b at 0.3 > distance_threshold 0.1 (by 0.2; 1 of 2 above)" in all_bad["failures"][1]
    assert "max 0.15 > L_thres 0.1 (by 0.05)" in all_bad["failures"][0]
    with pytest.raises(ValueError, match="test_loss_rule 'better'"):
        path_validity(0.05, 0.1, {"a": 0.05}, 0.1, 0.5, 0.5, 0.05, test_loss_rule="better")
