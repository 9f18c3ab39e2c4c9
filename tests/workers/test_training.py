"""Training primitives: schedules match PyTorch's, optimizer state survives the no-pickle round trip, models fit."""

from __future__ import annotations

import pytest
import torch

from lowloss.workers.data import load_dataset
from lowloss.workers.interpolation import barrier, interpolate_state, reestimate_batchnorm
from lowloss.workers.models import build_model, has_batchnorm
from lowloss.workers.training import (
    Schedule,
    make_optimizer,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    train_step,
)


def test_onecycle_matches_pytorch_onecycle_lr():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    total = 97
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, cycle_momentum=False)
    ours = Schedule(kind="onecycle", max_lr=0.1)
    for step in range(total):
        assert ours.lr_at(step, total, 10) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        ref.step()


def test_cosine_warmup_and_cooldown_shape():
    s = Schedule(kind="cosine", lr=55e-5, warmup_lr=1e-5, min_lr=1e-5, warmup_epochs=10, cooldown_epochs=10)
    spe, total = 10, 300 * 10
    assert s.lr_at(0, total, spe) == pytest.approx(1e-5)
    assert s.lr_at(10 * spe, total, spe) == pytest.approx(55e-5)
    assert s.lr_at(295 * spe, total, spe) == pytest.approx(1e-5)
    lrs = [s.lr_at(k, total, spe) for k in range(10 * spe, 290 * spe, 100)]
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_state_round_trip_without_pickle(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = make_optimizer(model.parameters(), name, 0.01, momentum=0.9, weight_decay=1e-3)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(3):
        train_step(model, opt, x, y)
    tensors, meta = optimizer_state_to_tensors(opt)
    import json

    meta = json.loads(json.dumps(meta))  # must be plain JSON
    clone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    clone.load_state_dict(model.state_dict())
    opt2 = make_optimizer(clone.parameters(), name, 0.01, momentum=0.9, weight_decay=1e-3)
    optimizer_state_from_tensors(opt2, tensors, meta)
    for _ in range(2):
        a, b = train_step(model, opt, x, y), train_step(clone, opt2, x, y)
        assert torch.equal(a, b)


@pytest.mark.parametrize("name,size", [("small_cnn", 8), ("mlp", 8), ("lenet5", 28)])
def test_models_shapes_and_names(name, size):
    model = build_model(name, 10, 1, size)
    assert model(torch.randn(3, 1, size, size)).shape == (3, 10)
    names = dict(model.named_parameters())
    assert ("conv1.weight" in names) == (name != "mlp")
    if name == "lenet5":
        assert names["conv1.weight"].shape == (6, 1, 5, 5) and names["fc1.weight"].shape == (120, 400)


def test_small_cnn_reaches_low_loss_on_digits():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8)
    opt = make_optimizer(model.parameters(), "sgd", 0.05, momentum=0.9)
    from lowloss.workers.data import BatchStream
    from lowloss.workers.training import evaluate

    stream = BatchStream(data, 64, seed=0)
    for step in range(stream.steps_per_epoch * 6):
        train_step(model, opt, *stream.batch(step))
    loss, acc = evaluate(model, data.test_x, data.test_y)
    assert acc > 0.95 and loss < 0.2


def test_interpolation_endpoints_and_bn_reestimation():
    torch.manual_seed(0)
    a, b = build_model("small_cnn", 10, 1, 8), build_model("small_cnn", 10, 1, 8)
    sa, sb = a.state_dict(), b.state_dict()
    mid = interpolate_state(sa, sb, 0.5)
    assert torch.allclose(mid["fc2.weight"], (sa["fc2.weight"] + sb["fc2.weight"]) / 2)
    assert torch.equal(interpolate_state(sa, sb, 0.0)["conv1.weight"], sa["conv1.weight"])
    assert has_batchnorm(a)
    x = torch.randn(100, 1, 8, 8) * 3 + 1
    reestimate_batchnorm(a, x, batch_size=30)
    with torch.no_grad():
        h = a.conv1(x)
    assert torch.allclose(a.bn1.running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert barrier([1.0, 3.0, 2.0], [0.0, 0.5, 1.0]) == (1.5, 1)


def test_precision_is_fp32_unless_bf16_autocast_is_asked_for():
    from lowloss.workers.training import set_precision

    cpu = torch.device("cpu")
    assert set_precision(cpu, None) is None and set_precision(cpu, "fp32") is None
    assert set_precision(cpu, "tf32") is None  # TensorFloat-32 exists on CUDA only: nothing changes on a CPU
    amp = set_precision(cpu, "bf16")
    layer = torch.nn.Linear(4, 3)
    with amp():
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown precision .fp16.; allowed: fp32, tf32, bf16"):
        set_precision(cpu, "fp16")


def test_step_schedule_decays_at_the_given_steps():
    from lowloss.workers.training import Schedule

    s = Schedule(kind="step", lr=0.1, decay_steps=(32000, 48000), decay_factor=0.1)
    values = [s.lr_at(step, 64000, 391) for step in (0, 31999, 32000, 47999, 48000, 63999)]
    assert values == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
