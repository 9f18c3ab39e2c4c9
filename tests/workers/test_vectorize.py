"""StackedModels: K models as one batched model step like K plain models (up to rounding), BatchNorm included."""

from __future__ import annotations

import copy

import pytest
import torch

from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate, make_optimizer, train_step
from lowloss.workers.vectorize import StackedModels, stacked_evaluate, stacked_train_step


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("name, optimizer", [("small_cnn", "sgd"), ("mlp", "adamw")])
def test_stacked_steps_equal_plain_steps_of_each_model(name, optimizer):
    k = 3
    models = []
    for s in range(k):
        torch.manual_seed(s)
        models.append(build_model(name, 10, 1, 8))
    plain = [copy.deepcopy(m) for m in models]
    stacked = StackedModels(models)
    opt = make_optimizer(stacked.parameters(), optimizer, 0.05, 0.9, 5e-4)
    opts = [make_optimizer(m.parameters(), optimizer, 0.05, 0.9, 5e-4) for m in plain]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):  # each model its own batch
        x, y = torch.randn(k, 32, 1, 8, 8, generator=g), torch.randint(0, 10, (k, 32), generator=g)
        losses = stacked_train_step(stacked, opt, x, y)
        expected = torch.stack([train_step(plain[i], opts[i], x[i], y[i]) for i in range(k)])
        torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-6)
    for i in range(k):
        own, ref = stacked.member_state(i), plain[i].state_dict()
        assert list(own) == list(ref)  # keyed and ordered like the plain model's state dict
        for n in ref:
            torch.testing.assert_close(own[n], ref[n], rtol=1e-4, atol=1e-5)  # BatchNorm statistics too
    xe, ye = torch.randn(50, 1, 8, 8, generator=g), torch.randint(0, 10, (50,), generator=g)
    for (loss, acc), m in zip(stacked_evaluate(stacked, [(xe[:20], ye[:20]), (xe[20:], ye[20:])]), plain):
        ref_loss, ref_acc = evaluate(m, xe, ye)
        assert loss == pytest.approx(ref_loss, rel=1e-5) and acc == ref_acc


def test_state_dict_round_trip_restores_the_stack():
    models = [build_model("small_cnn", 10, 1, 8) for _ in range(2)]
    stacked = StackedModels(models)
    saved = {n: t.clone() for n, t in stacked.state_dict().items()}
    assert saved["conv1.weight"].shape[0] == 2 and "bn1.running_mean" in saved
    opt = make_optimizer(stacked.parameters(), "sgd", 0.1)
    stacked_train_step(stacked, opt, torch.randn(2, 8, 1, 8, 8), torch.randint(0, 10, (2, 8)))
    assert not torch.equal(stacked.state_dict()["conv1.weight"], saved["conv1.weight"])
    stacked.load_state_dict(saved)
    assert all(torch.equal(stacked.state_dict()[n], saved[n]) for n in saved)


@pytest.mark.parametrize("bn", ["UpBN", "NoUpBN"])
def test_stacked_evaluator_gives_the_plain_evaluators_numbers_for_each_state(bn):
    from lowloss.workers.data import load_dataset
    from lowloss.workers.evaluation import Evaluator
    from lowloss.workers.interpolation import interpolate_state
    from lowloss.workers.vectorize import StackedEvaluator

    data = load_dataset("digits")
    ends = []
    for s in range(2):
        torch.manual_seed(s)
        m = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size)
        opt = make_optimizer(m.parameters(), "sgd", 0.1, 0.9)
        for step in range(5):  # running statistics of their own, away from the initial ones
            train_step(m, opt, data.train_x[step * 64 : (step + 1) * 64], data.train_y[step * 64 : (step + 1) * 64])
        ends.append(m.state_dict())
    states = [interpolate_state(ends[0], ends[1], a) for a in (0.0, 0.4, 1.0)]  # three states, four slots
    model = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size)
    plain = Evaluator(model, data, bn)
    expected = [plain.evaluate(s) for s in states]
    counter = model.bn1.num_batches_tracked.clone()
    got = StackedEvaluator(model, data, 4, bn).evaluate(states)
    assert len(got) == 3
    for g, e in zip(got, expected):
        assert g.keys() == e.keys()
        for key in e:
            assert g[key] == pytest.approx(e[key], rel=1e-4, abs=1e-6), key
    assert torch.equal(model.bn1.num_batches_tracked, counter)
    if bn == "UpBN":  # the re-estimated statistics are the states' own, not the stored ones
        stored = Evaluator(model, data, "NoUpBN").evaluate(states[1])["train_loss"]
        assert expected[1]["train_loss"] != pytest.approx(stored)


def test_stacked_evaluator_on_scan_points_gives_the_point_evaluators_numbers():
    """Landscape points θ + λ₁ε₁ + λ₂ε₂ (``PointEvaluator.point_state``) on a seeded subset of examples, UpBN."""
    from lowloss.workers.data import load_dataset
    from lowloss.workers.landscape.scans import PointEvaluator
    from lowloss.workers.vectorize import StackedEvaluator

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size)
    centre = {n: t.clone() for n, t in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    directions = [{n: torch.randn(p.shape, generator=g) * 0.1 for n, p in model.named_parameters()} for _ in range(2)]
    plain = PointEvaluator(model, centre, directions, data, "UpBN", eval_examples=300, eval_seed=4)
    points = [[0.0, 0.0], [1.0, -0.5], [-2.0, 3.0]]
    expected = [plain.evaluate(c) for c in points]
    got = StackedEvaluator(model, data, 3, "UpBN", eval_examples=300, eval_seed=4).evaluate(
        [plain.point_state(c) for c in points]
    )
    for g_, e in zip(got, expected):
        for key in e:
            assert g_[key] == pytest.approx(e[key], rel=1e-4, abs=1e-6), key
    assert expected[2]["train_loss"] > expected[0]["train_loss"] + 0.1  # the points differ
