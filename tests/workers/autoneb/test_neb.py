"""NEB / AutoNEB compute layer: pivots over states, the improved tangent, the string method, insertion, the step's
optimiser, the saddle of an analytic energy, resume, and the paper's claim on real digits modes."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from lowloss.workers.autoneb import neb
from lowloss.workers.models import build_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ------------------------------------------------------------------------------------------------ Müller–Brown

_A = torch.tensor([-200.0, -100.0, -170.0, 15.0], dtype=torch.float64)
_a = torch.tensor([-1.0, -1.0, -6.5, 0.7], dtype=torch.float64)
_b = torch.tensor([0.0, 0.0, 11.0, 0.6], dtype=torch.float64)
_c = torch.tensor([-10.0, -10.0, -6.5, 0.7], dtype=torch.float64)
_x0 = torch.tensor([1.0, 0.0, -0.5, -1.0], dtype=torch.float64)
_y0 = torch.tensor([0.0, 0.5, 1.5, 1.0], dtype=torch.float64)
# Müller & Brown (1979): the minimum-energy path from minimum A (−0.558, 1.442) to B (0.623, 0.028) passes the
# intermediate minimum (−0.050, 0.467); its highest saddle is S1 = (−0.822, 0.624) with E = −40.665.
SADDLE_XY, SADDLE_E = (-0.822, 0.624), -40.665


def mueller_brown(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0:1], p[..., 1:2]
    return (_A * torch.exp(_a * (x - _x0) ** 2 + _b * (x - _x0) * (y - _y0) + _c * (y - _y0) ** 2)).sum(-1)


class Point(torch.nn.Module):
    """A 'model' whose only parameter is a point of the plane: NEB over it is NEB on the 2-D energy."""

    def __init__(self):
        super().__init__()
        self.xy = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))


# the two deepest minima (Müller & Brown 1979), to six digits
MINIMUM_A, MINIMUM_B = (-0.558224, 1.441726), (0.623499, 0.028038)


def test_neb_finds_the_mueller_brown_saddle_through_the_unit_functions():
    a, b = torch.tensor(MINIMUM_A, dtype=torch.float64), torch.tensor(MINIMUM_B, dtype=torch.float64)
    assert mueller_brown(a) == pytest.approx(-146.70, abs=0.01) and mueller_brown(b) == pytest.approx(-108.17, abs=0.01)
    model = Point()
    layout = neb.state_layout(model)
    cycles = [neb.Cycle(100, 3e-4, "equal", 3)] + [neb.Cycle(100, 3e-4)] * 2 + [neb.Cycle(100, 7.5e-5)] * 2
    state, dense = neb.auto_neb(
        model,
        layout,
        a,
        b,
        cycles,
        lambda m, step, i: mueller_brown(m.xy),
        lambda v: {"train_loss": float(mueller_brown(v))},
        (float(mueller_brown(a)), float(mueller_brown(b))),
        l2=0.0,
    )
    assert len(dense) == len(cycles) and state.cycle == len(cycles)
    straight = float(mueller_brown(torch.lerp(a, b, torch.linspace(0, 1, 101, dtype=torch.float64)[:, None])).max())
    found = float(dense[-1]["train_loss"].max())
    # any path from A to B crosses an energy ≥ the MEP's saddle; the NEB path's maximum is within 0.5 of it
    assert SADDLE_E - 1e-3 <= found <= SADDLE_E + 0.5 < straight
    # ...and it sits at the saddle point: the highest dense point is near S1
    k = int(dense[-1]["train_loss"].argmax())
    point = list(neb.dense_points(state.pivots, cycles[-1].points_between))[k][2]
    assert math.dist(point.tolist(), SADDLE_XY) < 0.08
    assert state.pivots.shape[0] > 5  # a cycle inserted a pivot where a straight segment cut a corner
    assert float(dense[0]["train_loss"].max()) > found + 5  # the first cycle's 5 pivots cut the corner at S1


def test_fast_schedule_shape_on_mueller_brown():
    """The fast recipe's shape (many equal pivots, one dense point between pivots, cycles without insertion, a
    "highest" insertion from a 1-point dense evaluation) runs through the same functions."""
    a, b = torch.tensor(MINIMUM_A, dtype=torch.float64), torch.tensor(MINIMUM_B, dtype=torch.float64)
    model = Point()
    layout = neb.state_layout(model)
    cycles = [
        neb.Cycle(60, 3e-4, "equal", 7, 1),
        neb.Cycle(60, 3e-4, "none", 0, 1),
        neb.Cycle(60, 7.5e-5, "highest", 2, 1),
    ]
    state, dense = neb.auto_neb(
        model,
        layout,
        a,
        b,
        cycles,
        lambda m, step, i: mueller_brown(m.xy),
        lambda v: {"train_loss": float(mueller_brown(v))},
        (float(mueller_brown(a)), float(mueller_brown(b))),
        l2=0.0,
        threshold=neb.INSERT_THRESHOLD_CODE,
    )
    assert [d["train_loss"].numel() for d in dense[:2]] == [neb.dense_count(9, 1)] * 2
    assert state.pivots.shape[0] in (9, 10, 11)
    assert SADDLE_E - 1e-3 <= float(dense[-1]["train_loss"].max()) <= SADDLE_E + 1.0


# ---------------------------------------------------------------------------------------- pivots over a state


def test_flatten_unflatten_round_trip_with_buffers_and_num_batches_tracked():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8)
    model.train()(torch.randn(16, 1, 8, 8))  # non-trivial running statistics, num_batches_tracked = 1
    layout = neb.state_layout(model)
    state = model.state_dict()
    n_params = sum(p.numel() for p in model.parameters())
    n_float_buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    assert layout.num_parameters == n_params and layout.size == n_params + n_float_buffers
    assert layout.integer_buffers == ("bn1.num_batches_tracked", "bn2.num_batches_tracked")
    assert layout.names[: layout.num_parameter_tensors] == tuple(n for n, _ in model.named_parameters())
    vector = neb.flatten_state(state, layout, torch.float64)
    assert vector.dtype == torch.float64 and vector.shape == (layout.size,)
    template = {k: v.clone() for k, v in state.items()}
    template["bn1.num_batches_tracked"].fill_(7)
    back = neb.unflatten_state(vector, layout, template)
    assert set(back) == set(state)
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            assert int(back[name]) == (7 if name.startswith("bn1") else 1)  # from the template, not the vector
        else:
            assert back[name].dtype == t.dtype and torch.equal(back[name], t)
    other = build_model("small_cnn", 10, 1, 8)
    neb.load_pivot_(other, vector, layout)
    assert torch.equal(neb.read_pivot(other, layout, torch.empty_like(vector)), vector)
    with pytest.raises(ValueError, match="shape"):
        neb.unflatten_state(vector[:-1], layout, state)


def test_pivot_evaluator_batchnorm_policies_and_eval_mode():
    from lowloss.workers.data import load_dataset
    from lowloss.workers.evaluation import Evaluator
    from lowloss.workers.interpolation import reestimate_batchnorm
    from lowloss.workers.training import evaluate

    data = load_dataset("digits", None)
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8)
    model.train()(data.train_x[:256])  # running statistics of one batch
    layout = neb.state_layout(model)
    vector = neb.flatten_state(model.state_dict(), layout)
    reference = build_model("small_cnn", 10, 1, 8)
    reference.load_state_dict(model.state_dict())
    loss, acc = evaluate(reference, data.test_x, data.test_y)
    scratch = build_model("small_cnn", 10, 1, 8)
    kept = neb.pivot_evaluator(Evaluator(scratch, data, "NoUpBN", 512, splits=("test",)), layout)(vector)
    assert kept == {"test_loss": pytest.approx(loss, rel=1e-6), "test_error": pytest.approx(1 - acc)}
    assert not scratch.training
    reestimate_batchnorm(reference, data.train_x, 256)
    loss_r, acc_r = evaluate(reference, data.test_x, data.test_y)
    reestimated = neb.pivot_evaluator(Evaluator(scratch, data, "UpBN", 512, splits=("test",)), layout)(vector)
    assert reestimated == {"test_loss": pytest.approx(loss_r, rel=1e-6), "test_error": pytest.approx(1 - acc_r)}
    assert loss_r != pytest.approx(loss, rel=1e-3)  # the two policies differ on these statistics


# ------------------------------------------------------------------------------------------------ geometry


def test_improved_tangent_points_uphill_and_mixes_at_extrema():
    pivots = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [3.0, 2.0]], dtype=torch.float64)
    # rising: towards the next pivot; falling: towards the previous one
    t = neb.improved_tangents(pivots, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(t[0], torch.tensor([0.0, 1.0], dtype=torch.float64))  # p2 − p1, normalised
    assert torch.allclose(t[1], torch.tensor([1.0, 0.0], dtype=torch.float64))
    t = neb.improved_tangents(pivots, torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert torch.allclose(t[0], torch.tensor([1.0, 0.0], dtype=torch.float64))  # p1 − p0
    assert torch.allclose(t[1], torch.tensor([0.0, 1.0], dtype=torch.float64))
    # maximum at pivot 1 with L2 > L0: τ = τ⁺·ΔVmax + τ⁻·ΔVmin (Henkelman & Jónsson eq. 10)
    losses = torch.tensor([0.0, 5.0, 4.0, 0.0])
    t = neb.improved_tangents(pivots, losses)[0]
    expected = torch.tensor([0.0, 2.0]) * 5.0 + torch.tensor([1.0, 0.0]) * 1.0
    assert torch.allclose(t, (expected / expected.norm()).double())
    assert torch.allclose(neb.improved_tangents(pivots, losses).norm(dim=1), torch.ones(2, dtype=torch.float64))
    # all equal losses: the bisector of the two normalised directions
    t = neb.improved_tangents(pivots, torch.zeros(4))[0]
    assert torch.allclose(t, torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2))


def test_projection_removes_exactly_the_tangential_part():
    g = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = t / t.norm(dim=1, keepdim=True)
    perp = neb.project_perpendicular(g, t)
    assert torch.allclose((perp * t).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(neb.project_perpendicular(perp, t), perp)


def test_redistribute_equal_and_target_arc_length_on_the_polyline():
    gen = torch.Generator().manual_seed(3)
    pivots = torch.cumsum(torch.rand(6, 3, generator=gen, dtype=torch.float64), 0)
    out = neb.redistribute(pivots)
    assert torch.equal(out[0], pivots[0]) and torch.equal(out[-1], pivots[-1])
    # equal arc-length shares of the ORIGINAL polyline: cumulative positions at k/(P−1) of its length
    total = float(neb.segment_lengths(pivots).sum())
    for k in range(1, 5):
        point = out[k]
        # the point lies on the old polyline at arc length k/5·total
        cum, found = 0.0, False
        for s in range(5):
            seg = pivots[s + 1] - pivots[s]
            rel = point - pivots[s]
            alpha = float((rel @ seg) / (seg @ seg))
            if -1e-9 <= alpha <= 1 + 1e-9 and torch.allclose(rel, alpha * seg, atol=1e-9):
                assert cum + alpha * float(seg.norm()) == pytest.approx(k / 5 * total, rel=1e-9)
                found = True
                break
            cum += float(seg.norm())
        assert found
    # a straight line stays straight and ends up equally spaced; redistribution is idempotent there
    line = torch.stack([torch.zeros(3), torch.ones(3) * 0.1, torch.ones(3) * 0.9, torch.ones(3)]).double()
    even = neb.redistribute(line)
    assert torch.allclose(neb.segment_lengths(even), neb.segment_lengths(even)[0].expand(3))
    assert torch.allclose(neb.redistribute(even), even)
    # target shares 1:2:1
    spaced = neb.redistribute(line, torch.tensor([1.0, 2.0, 1.0]))
    assert torch.allclose(
        neb.segment_lengths(spaced) / neb.segment_lengths(spaced).sum(),
        torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64),
    )
    # geometry over the leading coordinates only: a trailing "buffer" is interpolated with the same weights
    with_buffer = torch.cat([line, torch.tensor([[0.0], [50.0], [60.0], [100.0]], dtype=torch.float64)], 1)
    moved = neb.redistribute(with_buffer, geometry=3)
    assert torch.allclose(moved[:, :3], even)
    # new pivots at s = 1/3, 2/3 of the line fall in the old segment s ∈ [0.1, 0.9] (buffers 50 → 60)
    t = torch.tensor([(1 / 3 - 0.1) / 0.8, (2 / 3 - 0.1) / 0.8], dtype=torch.float64)
    assert torch.allclose(moved[1:3, 3], 50 + 10 * t)
    with pytest.raises(ValueError, match="weights"):
        neb.redistribute(line, torch.ones(2))


def test_insertion_splits_target_shares_and_keeps_pivots_in_place():
    line = torch.linspace(0, 1, 3, dtype=torch.float64)[:, None] * torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    pivots, weights = neb.insert_pivots(line, torch.tensor([0.5, 0.5], dtype=torch.float64), [(1, 0.3)])
    assert pivots.shape == (4, 2) and torch.allclose(pivots[2], torch.lerp(line[1], line[2], 0.3))
    assert torch.allclose(weights, torch.tensor([0.5, 0.15, 0.35], dtype=torch.float64))
    assert torch.allclose(neb.redistribute(pivots, weights), pivots)  # the new shares describe the path as it is
    p5, w5 = neb.insert_equally(*neb.linear_path(line[0], line[-1]), 3)
    assert p5.shape == (5, 2) and torch.allclose(w5, torch.full((4,), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha"):
        neb.insert_pivots(line, torch.ones(2), [(0, 1.0)])


def test_insertion_rule_residuum_relative_to_the_pivots_energy_range():
    k = 9
    # 3 pivots with losses 0, 1, 0; segment 0 linear; segment 1 has a bump of +0.15 at α=0.3 and +0.3 at α=0.7
    dense = []
    for seg, (l0, l1) in enumerate([(0.0, 1.0), (1.0, 0.0)]):
        dense.append(l0)
        for j, a in enumerate(neb.dense_alphas(k)):
            bump = {2: 0.15, 6: 0.3}.get(j, 0.0) if seg == 1 else 0.0
            dense.append((1 - a) * l0 + a * l1 + bump)
    dense.append(0.0)
    dense = torch.tensor(dense, dtype=torch.float64)
    assert dense.numel() == neb.dense_count(3, k)
    assert neb.insertion_points(dense, 3, neb.INSERT_THRESHOLD_PAPER, 2) == [(1, pytest.approx(0.7))]
    assert neb.insertion_points(dense, 3, 0.35, 2) == []
    assert neb.insertion_points(dense, 3, 0.2, 0) == []
    # scale invariance: the residuum is relative to the range of the pivots' losses
    assert neb.insertion_points(10 * dense + 3, 3, 0.2, 2) == [(1, pytest.approx(0.7))]
    # at most `count` segments, the highest residua first, returned in path order
    two = dense.clone()
    two[3] += 0.5  # segment 0, α = 0.3
    assert neb.insertion_points(two, 3, 0.1, 2) == [(0, pytest.approx(0.3)), (1, pytest.approx(0.7))]
    assert neb.insertion_points(two, 3, 0.1, 1) == [(0, pytest.approx(0.3))]
    with pytest.raises(ValueError, match="dense losses"):
        neb.insertion_points(dense[:-1], 3, 0.2, 2)


def test_edge_saddle_and_path_length_ratio():
    dense = [
        {"train_loss": torch.tensor([0.1, 0.9, 0.2]), "test_error": torch.tensor([0.1, 0.3, 0.1])},
        {"train_loss": torch.tensor([0.1, 0.5, 0.2]), "test_error": torch.tensor([0.1, 0.4, 0.1])},
        {"train_loss": torch.tensor([0.1, 0.6, 0.2]), "test_error": torch.tensor([0.1, 0.2, 0.1])},
    ]
    assert neb.edge_saddle(dense) == {
        "saddle_train_loss": pytest.approx(0.5),
        "saddle_test_error": pytest.approx(0.4),
        "cycle": 1,
    }
    bent = torch.tensor([[0.0, 0.0, 9.0], [1.0, 1.0, -9.0], [2.0, 0.0, 9.0]])  # third coordinate: a "buffer"
    assert neb.path_length_ratio(bent, geometry=2) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="at least one cycle"):
        neb.edge_saddle([])


def test_dense_points_and_positions():
    pivots = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    points = list(neb.dense_points(pivots, 1))
    assert [float(v) for _, _, v in points] == [0.0, 0.5, 1.0, 2.0, 3.0]
    assert neb.dense_positions(pivots, 1).tolist() == pytest.approx([0.0, 1 / 6, 1 / 3, 2 / 3, 1.0])


# ------------------------------------------------------------------------------------------------ the step


def test_neb_step_is_sgd_momentum_on_the_projected_regularised_gradient():
    """Two steps of ``neb_step`` against torch.optim.SGD(momentum=0.9) fed the same projected gradients."""
    model = Point()
    layout = neb.state_layout(model)
    pivots = torch.tensor([[-0.558, 1.442], [-0.7, 1.0], [-0.3, 0.6], [0.2, 0.3], [0.623, 0.028]], dtype=torch.float64)
    weights = torch.ones(4, dtype=torch.float64)
    ends = (float(mueller_brown(pivots[0])), float(mueller_brown(pivots[-1])))
    ours = pivots.clone()
    momentum = neb.new_momentum(ours, layout.num_parameters)
    ref = pivots.clone()
    movable = torch.nn.Parameter(ref[1:-1].clone())
    opt = torch.optim.SGD([movable], lr=1e-4, momentum=0.9)
    for step in range(2):
        losses, _ = neb.neb_step(
            model, layout, ours, weights, momentum, 1e-4, lambda m, s, i: mueller_brown(m.xy), step, ends, l2=1e-2
        )
        ref[1:-1] = movable.detach()
        ref = neb.redistribute(ref, weights)
        p = ref[1:-1].clone().requires_grad_()
        energy = mueller_brown(p)
        (grad,) = torch.autograd.grad(energy.sum(), p)
        all_losses = torch.cat([torch.tensor([ends[0]]).double(), energy.detach(), torch.tensor([ends[1]]).double()])
        tangents = neb.improved_tangents(ref, all_losses)
        with torch.no_grad():
            movable.copy_(ref[1:-1])
        movable.grad = neb.project_perpendicular(grad + 1e-2 * ref[1:-1], tangents)
        opt.step()
        assert torch.allclose(losses, energy.detach())
        assert torch.allclose(ours[1:-1], movable.detach(), atol=1e-12)
    assert torch.equal(ours[0], pivots[0]) and torch.equal(ours[-1], pivots[-1])
    with pytest.raises(ValueError, match="new_momentum"):
        neb.neb_step(
            model,
            layout,
            ours,
            weights,
            torch.zeros(2, 2, dtype=torch.float64),
            1e-4,
            lambda m, s, i: mueller_brown(m.xy),
            0,
            ends,
        )


def test_schedules_as_published():
    standard, fast = neb.schedule("standard"), neb.schedule("fast")
    assert len(standard) == 14 and sum(c.steps for c in standard) == 16_000
    assert [c.lr for c in standard] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    assert [c.steps for c in standard[:6]] == [1000] * 4 + [2000] * 2
    assert standard[0].insert == "equal" and standard[0].insert_count == 3
    assert all(c.insert == "highest" and c.insert_count == 2 and c.points_between == 9 for c in standard[1:])
    assert 2 + 3 + 2 * 13 == 31  # at most 31 pivots
    assert len(fast) == 7 and sum(c.steps for c in fast) == 14_000
    assert [c.lr for c in fast] == [0.1] * 3 + [0.01] * 2 + [0.001] * 2
    assert fast[0].insert == "equal" and fast[0].insert_count == 15
    assert [c.insert_count for c in fast[1:]] == [0, 0, 2, 0, 2, 0]
    with pytest.raises(ValueError, match="allowed: fast, standard"):
        neb.schedule("slow")
    with pytest.raises(ValueError, match="allowed: equal, highest, none"):
        neb.Cycle(10, 0.1, "lowest")
    assert tuple(neb.Cycle.from_json(c.to_json()) for c in standard) == standard
    assert neb.Cycle.from_json({"steps": 10, "lr": 1}) == neb.Cycle(10, 1.0)
    with pytest.raises(ValueError, match="cycle field 'step'; allowed: steps, lr"):
        neb.Cycle.from_json({"step": 10, "lr": 0.1})
    with pytest.raises(ValueError, match="cycle steps = 1.5; allowed: int"):
        neb.Cycle.from_json({"steps": 1.5, "lr": 0.1})
    with pytest.raises(ValueError, match="cycle lr = 0.0"):
        neb.Cycle.from_json({"steps": 1, "lr": 0})


# ----------------------------------------------------------------------------------------------- resume


def test_checkpoint_round_trip_and_resume_mid_cycle_gives_identical_pivots(tmp_path):
    model = Point()
    layout = neb.state_layout(model)
    a, b = torch.tensor(MINIMUM_A, dtype=torch.float64), torch.tensor(MINIMUM_B, dtype=torch.float64)
    ends = (float(mueller_brown(a)), float(mueller_brown(b)))
    cycles = [neb.Cycle(30, 2e-4, "equal", 3), neb.Cycle(30, 2e-4)]

    def loss(m, step, i):  # a step- and pivot-dependent energy, as a real unit's batches are
        return mueller_brown(m.xy) * (1 + 0.01 * math.sin(step + 3 * i))

    def evaluate(v):
        return {"train_loss": float(mueller_brown(v))}

    straight, dense_straight = neb.auto_neb(model, layout, a, b, cycles, loss, evaluate, ends, l2=1e-4)

    state = neb.AutoNEBState.initial(a, b, layout.num_parameters)
    neb.start_cycle(state, cycles[0], layout.num_parameters)
    neb.run_steps(model, layout, state, cycles[0], loss, ends, until=17)
    save_file(state.to_tensors(), tmp_path / "edge.safetensors")
    resumed = neb.AutoNEBState.from_tensors(load_file(tmp_path / "edge.safetensors"))
    assert resumed.step == 17 and resumed.started and resumed.cycle == 0
    final, dense = neb.auto_neb(model, layout, a, b, cycles, loss, evaluate, ends, l2=1e-4, state=resumed)
    assert torch.equal(final.pivots, straight.pivots) and torch.equal(final.weights, straight.weights)
    assert torch.equal(dense[-1]["train_loss"], dense_straight[-1]["train_loss"])


# ------------------------------------------------------------------------------------------ real digits modes


@pytest.mark.slow
def test_autoneb_saddle_on_digits_is_below_the_linear_barrier():
    """AutoNEB's claim on real modes: the edge's saddle train loss lies below the linear-interpolation barrier."""
    from lowloss.workers.data import BatchStream, derive_seed, load_dataset
    from lowloss.workers.training import evaluate, make_optimizer, train_step

    data = load_dataset("digits", None)
    modes = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size)
        opt = make_optimizer(model.parameters(), "sgd", 0.05, momentum=0.9)
        stream = BatchStream(data, 64, seed)
        for step in range(150):
            train_step(model, opt, *stream.batch(step))
        modes.append(model.state_dict())
    model = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size)
    layout = neb.state_layout(model)
    a, b = (neb.flatten_state(s, layout) for s in modes)
    from lowloss.workers.evaluation import Evaluator

    evaluator = neb.pivot_evaluator(Evaluator(model, data, "NoUpBN", splits=("train",)), layout)
    ends = (evaluator(a)["train_loss"], evaluator(b)["train_loss"])

    batch = neb.pivot_batches(data, 128, seed=derive_seed("pair", 0, 1))
    x0, y0 = batch(3, 2)
    again = neb.pivot_batches(data, 128, seed=derive_seed("pair", 0, 1))
    assert torch.equal(again(3, 2)[0], x0) and not torch.equal(batch(3, 1)[1], y0)  # pure, and its own per pivot

    cycles = [neb.Cycle(50, 0.05, "equal", 3, points_between=4), neb.Cycle(50, 0.01, points_between=4)]
    state, dense = neb.auto_neb(model, layout, a, b, cycles, neb.cross_entropy_pivot_loss(batch), evaluator, ends)
    linear = neb.evaluate_path(torch.stack([a, b]), evaluator, 9)["train_loss"]
    saddle = min(float(d["train_loss"].max()) for d in dense)
    assert float(linear.max()) > max(ends) + 0.1  # the two modes are not linearly connected
    assert saddle < float(linear.max())
    assert torch.equal(state.pivots[0], a) and torch.equal(state.pivots[-1], b)
    loss, acc = evaluate(model.eval(), data.test_x, data.test_y)  # the evaluator left a valid model loaded
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0
