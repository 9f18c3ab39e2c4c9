"""AutoNEB compute-layer benchmark (issue 11). Prints figures; asserts nothing.

    python bench/autoneb.py [--model small_cnn] [--pivots 7] [--steps 50] [--batch-size 128] [--device cpu]

1. NEB steps per second of ``workers.autoneb.neb.neb_step`` (redistribution, load each pivot, forward/backward on its
   own batch, buffers read back, l2, improved tangent, projection, momentum update) against a bare loop of the same
   pivot updates: P−2 resident model copies, each doing forward/backward on the same batch and a
   ``torch.optim.SGD(momentum=0.9)`` step (no geometry, no copies). Goal: NEB/bare ≤ 1.05. Also the bookkeeping
   alone (the step with a loss that costs nothing), the figure to trust on a loaded machine.
2. Share of an edge's time spent in dense evaluation: one dense evaluation (9 points between pivots, full training
   and test sets, eval mode) timed per point, NEB steps timed per movable pivot, extrapolated to the standard
   schedule (14 cycles, 16 000 steps, 5 → 31 pivots with 2 insertions per cycle).
3. The Alg. 3 planner's time to choose the next ``parallel_edges`` = 8 pairs among 100 minima (4 950 pairs): the star
   known plus 1 000 random pairs (median of repeats), and right after the star.

Data: digits (embedded) for ``small_cnn``/``mlp``; CIFAR-shaped random tensors (``--train-examples``, default
50 000, and a fifth as test set) for the CIFAR models (``resnet20`` …), since speed does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import random
import statistics
import time

import torch
import torch.nn.functional as F

from lowloss.workers.autoneb import exploration, neb
from lowloss.workers.data import TensorDataset, generator, load_dataset
from lowloss.workers.evaluation import Evaluator
from lowloss.workers.models import build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(model_name: str, device: torch.device, train: int) -> TensorDataset:
    if model_name in ("small_cnn", "mlp"):
        digits = load_dataset("digits", None)
        assert isinstance(digits, TensorDataset)
        return digits.to(device)
    g = torch.Generator().manual_seed(0)
    test = max(train // 5, 1)
    return TensorDataset(
        "cifar-shaped",
        torch.randn(train, 3, 32, 32, generator=g),
        torch.randint(10, (train,), generator=g),
        torch.randn(test, 3, 32, 32, generator=g),
        torch.randint(10, (test,), generator=g),
        10,
    ).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--pivots", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--train-examples",
        type=int,
        default=50_000,
        help="size of the CIFAR-shaped training set (test: a fifth); the dense share scales with it",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = _data(args.model, device, args.train_examples)

    torch.manual_seed(0)
    ends = [build_model(args.model, data.num_classes, data.in_channels, data.image_size).to(device) for _ in range(2)]
    model = build_model(args.model, data.num_classes, data.in_channels, data.image_size).to(device)
    layout = neb.state_layout(model)
    a, b = (neb.flatten_state(m.state_dict(), layout, torch.float32, device) for m in ends)
    pivots, weights = neb.insert_equally(*neb.linear_path(a, b), args.pivots - 2)
    movable = args.pivots - 2
    batches = {}

    def batch(step: int, pivot: int):
        key = (step % 4, pivot)  # a few fixed batches: the benchmark times compute, not indexing
        if key not in batches:
            idx = torch.randint(data.n_train, (args.batch_size,), generator=generator("bench", *key))
            batches[key] = data.train_batch(idx, ("bench", *key), augment=False)
        return batches[key]

    pivot_loss = neb.cross_entropy_pivot_loss(batch)

    # ---------------------------------------------------------------------------------- 1. NEB step vs bare loop
    def run_neb(steps: int) -> float:
        path = pivots.clone()
        momentum = neb.new_momentum(path, layout.num_parameters)
        _sync(device)
        start = time.perf_counter()
        for step in range(steps):
            neb.neb_step(model, layout, path, weights, momentum, 0.01, pivot_loss, step, (0.0, 0.0))
        _sync(device)
        return time.perf_counter() - start

    copies = []
    for i in range(1, args.pivots - 1):
        m = copy.deepcopy(model)
        neb.load_pivot_(m, pivots[i], layout)
        copies.append((m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)))

    def run_bare(steps: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for step in range(steps):
            for i, (m, opt) in enumerate(copies, start=1):
                m.train()
                opt.zero_grad(set_to_none=True)
                x, y = batch(step, i)
                F.cross_entropy(m(x), y).backward()
                opt.step()
        _sync(device)
        return time.perf_counter() - start

    run_neb(3), run_bare(3)  # warm up (and fill the batch cache)
    neb_times, bare_times = [], []
    for _ in range(args.repeats):  # interleaved, so that a change of the machine's load hits both alike
        neb_times.append(run_neb(args.steps))
        bare_times.append(run_bare(args.steps))
    t_neb, t_bare = min(neb_times), min(bare_times)
    print(
        f"model {args.model}: {layout.num_parameters} parameters, {layout.size - layout.num_parameters} buffer "
        f"coordinates; {args.pivots} pivots ({movable} movable), batch {args.batch_size}, device {device}"
    )
    print(f"NEB step:  {args.steps / t_neb:8.2f} steps/s  ({t_neb / args.steps * 1e3:.2f} ms/step)")
    print(f"bare loop: {args.steps / t_bare:8.2f} steps/s  ({t_bare / args.steps * 1e3:.2f} ms/step)")
    print(f"NEB / bare time per step: {t_neb / t_bare:.3f}  (goal ≤ 1.05)")
    # the NEB bookkeeping alone (loads, buffer reads, redistribution, tangents, projection, momentum): the same step
    # with a loss that costs nothing, which a loaded machine's noise in the two loops above cannot hide
    params = list(model.parameters())

    def free_loss(m, step, pivot):
        return sum((p.sum() * 0 for p in params), torch.zeros((), device=device))

    def run_bookkeeping(steps: int) -> float:
        path = pivots.clone()
        momentum = neb.new_momentum(path, layout.num_parameters)
        _sync(device)
        start = time.perf_counter()
        for step in range(steps):
            neb.neb_step(model, layout, path, weights, momentum, 0.0, free_loss, step, (0.0, 0.0))
        _sync(device)
        return time.perf_counter() - start

    t_book = min(run_bookkeeping(args.steps) for _ in range(args.repeats))
    print(
        f"NEB bookkeeping alone: {t_book / args.steps * 1e3:.2f} ms/step = {t_book / t_bare:.1%} of the bare loop "
        "(an upper bound: it includes a backward pass through the free loss)"
    )

    # ----------------------------------------------------------------------------- 2. share of dense evaluation
    evaluator = neb.pivot_evaluator(Evaluator(model, data, "NoUpBN", 1024), layout)
    points = 5
    _sync(device)
    start = time.perf_counter()
    for k in range(points):
        evaluator(torch.lerp(a, b, k / (points - 1)))
    _sync(device)
    per_point = (time.perf_counter() - start) / points
    per_pivot_step = t_neb / args.steps / movable
    cycles = neb.schedule("standard")
    total_steps = total_dense = 0.0
    count = 2
    for c, cycle in enumerate(cycles):
        count += 3 if c == 0 else 2  # 5 pivots after cycle 1's equal insertion, then at most 2 per cycle
        total_steps += cycle.steps * (count - 2) * per_pivot_step
        total_dense += neb.dense_count(count, cycle.points_between) * per_point
    print(
        f"dense evaluation: {per_point * 1e3:.1f} ms per point (train {data.n_train} + test "
        f"{int(data.test_x.shape[0])} examples); NEB {per_pivot_step * 1e3:.2f} ms per pivot-step"
    )
    print(
        f"standard schedule (16 000 steps, up to 31 pivots): steps {total_steps:.0f} s, dense evaluation "
        f"{total_dense:.0f} s → dense share {total_dense / (total_steps + total_dense):.1%}"
    )

    # --------------------------------------------------------------------------------------------- 3. planner
    rng = random.Random(0)
    minima = [f"m{i:03d}" for i in range(100)]
    losses = {m: rng.uniform(0.0, 0.1) for m in minima}
    saddles = {p: max(losses[p[0]], losses[p[1]]) + rng.uniform(0.0, 1.0) for p in itertools.combinations(minima, 2)}
    root = min(minima, key=losses.__getitem__)
    order = {m: i for i, m in enumerate(minima)}
    star = {exploration.pair_key(root, m, order): 0.0 for m in minima if m != root}
    star = {p: saddles[p] for p in star}
    for label, known in [
        ("after the star (99 known)", star),
        ("star + 1 000 random pairs", star | dict(rng.sample(sorted(saddles.items()), 1000))),
    ]:
        times = []
        for _ in range(max(args.repeats, 5)):
            start = time.perf_counter()
            plan = exploration.plan_pairs(minima, losses, known, [], None, 8, "mst", similar=None)
            times.append(time.perf_counter() - start)
        print(
            f"planner, 100 minima / 4 950 pairs, {label}: {statistics.median(times) * 1e3:.1f} ms for "
            f"{len(plan.pairs)} pairs (goal < 100 ms)"
        )
    start = time.perf_counter()
    exploration.minimax_bounds(minima, saddles)
    print(f"minimax bounds of all 4 950 pairs: {(time.perf_counter() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
