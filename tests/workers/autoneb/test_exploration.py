"""Alg. 3 planner and the graph math of §3.2: the tree against SciPy, the minimax bound, the planner's invariants
over simulated explorations, single linkage, and a small exploration run through the real NEB functions."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import linkage
from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst
from scipy.spatial.distance import squareform

from lowloss.workers.autoneb import exploration as ex


def _random_instance(n: int, seed: int):
    rng = random.Random(seed)
    minima = [f"m{i}" for i in range(n)]
    losses = {m: rng.uniform(0.0, 1.0) for m in minima}
    saddles = {}
    for a, b in itertools.combinations(minima, 2):
        saddles[(a, b)] = max(losses[a], losses[b]) + rng.uniform(0.0, 2.0)  # distinct with probability 1
    return minima, losses, saddles


def _scipy_tree(minima, edges):
    index = {m: i for i, m in enumerate(minima)}
    dense = np.zeros((len(minima), len(minima)))
    for (a, b), w in edges.items():
        dense[index[a], index[b]] = w
    tree = scipy_mst(dense).tocoo()
    return {frozenset((minima[i], minima[j])) for i, j in zip(tree.row, tree.col)}, float(tree.data.sum())


@pytest.mark.parametrize("seed", range(5))
def test_tree_of_all_pairs_is_scipys_minimum_spanning_tree(seed):
    minima, _, saddles = _random_instance(9, seed)
    tree = ex.minimum_spanning_tree(minima, saddles)
    edges, total = _scipy_tree(minima, saddles)
    assert {frozenset((a, b)) for a, b, _ in tree} == edges
    assert sum(w for _, _, w in tree) == pytest.approx(total)
    assert [w for _, _, w in tree] == sorted(w for _, _, w in tree)  # Kruskal's order


def test_minimax_bound_is_the_ultrametric_bound_of_every_pair():
    minima, _, saddles = _random_instance(8, 11)
    known = dict(itertools.islice(saddles.items(), 0, None, 2)) | {
        (minima[0], m): saddles[(minima[0], m)] for m in minima[1:]
    }
    bounds = ex.minimax_bounds(minima, known)
    tree = {frozenset((a, b)): w for a, b, w in ex.minimum_spanning_tree(minima, known)}
    assert len(bounds) == 8 * 7 // 2
    for pair, w in known.items():
        assert bounds[pair] <= w + 1e-12  # ≤ the pair's own saddle
        if frozenset(pair) in tree:
            assert bounds[pair] == w  # equality on tree edges
    # brute force: the minimax over all paths of known edges (Floyd–Warshall with max for +, min for min)
    index = {m: i for i, m in enumerate(minima)}
    d = np.full((8, 8), np.inf)
    for (a, b), w in known.items():
        d[index[a], index[b]] = d[index[b], index[a]] = w
    for k in range(8):
        d = np.minimum(d, np.maximum(d[:, k : k + 1], d[k : k + 1, :]))
    for (a, b), bound in bounds.items():
        assert bound == pytest.approx(d[index[a], index[b]])
    # unconnected pairs have no bound
    assert ex.minimax_bounds(["a", "b", "c"], {("a", "b"): 1.0})[("a", "c")] == float("inf")


def test_single_linkage_matches_scipy_on_the_minimax_distances():
    minima, _, saddles = _random_instance(7, 5)
    merges = ex.single_linkage(minima, saddles)
    bounds = ex.minimax_bounds(minima, saddles)
    index = {m: i for i, m in enumerate(minima)}
    dist = np.zeros((7, 7))
    for (a, b), w in bounds.items():
        dist[index[a], index[b]] = dist[index[b], index[a]] = w
    reference = linkage(squareform(dist), method="single")
    assert [m.height for m in merges] == pytest.approx(sorted(reference[:, 2]))
    assert len(merges[-1].left) + len(merges[-1].right) == 7
    ours = np.array(ex.linkage_matrix(minima, saddles))
    assert ours.shape == (6, 4) and ours[:, 2] == pytest.approx(reference[:, 2])
    assert ours[:, 3] == pytest.approx(reference[:, 3])
    with pytest.raises(ValueError, match="components"):
        ex.linkage_matrix(["a", "b", "c"], {("a", "b"): 1.0})


def test_star_first_from_the_lowest_loss_minimum_then_refinement_of_the_heaviest_edge():
    minima = ["a", "b", "c", "d"]
    losses = {"a": 0.3, "b": 0.1, "c": 0.4, "d": 0.2}
    plan = ex.plan_pairs(minima, losses, {}, parallel_edges=8, budget=10)
    assert plan.pairs == [("b", "d"), ("a", "b"), ("b", "c")] and not plan.finished  # N−1 edges at once, by loss
    assert ex.plan_pairs(minima, losses, {}, parallel_edges=2).pairs == [("b", "d"), ("a", "b")]
    # the star is in flight: nothing else to do yet
    waiting = ex.plan_pairs(minima, losses, {}, in_flight=[("b", "d"), ("a", "b"), ("b", "c")], parallel_edges=8)
    assert waiting.pairs == [] and not waiting.finished and waiting.reason == "waiting"
    # the star is known; its heaviest edge b–c (3.0) is cut: sides {c} and {a, b, d}; first unknown pair across,
    # lower-loss side first: d (0.2) – c
    known = {("b", "d"): 1.0, ("a", "b"): 2.0, ("b", "c"): 3.0}
    plan = ex.plan_pairs(minima, losses, known, parallel_edges=1, similar=None)
    assert plan.pairs == [("c", "d")]
    assert {frozenset(e[:2]) for e in plan.tree} == {frozenset(p) for p in known}
    assert plan.spread == pytest.approx((3.0 - 1.0) / 3.0)
    # with two slots: the next heaviest edge a–b gets a pair too (its cut {a} | {b, c, d} is not crossed by c–d)
    assert ex.plan_pairs(minima, losses, known, parallel_edges=2, similar=None).pairs == [("c", "d"), ("a", "d")]
    # a cheaper c–d replaces b–c in the tree; then the cut of a–b is refined
    known2 = known | {("c", "d"): 1.5}
    plan = ex.plan_pairs(minima, losses, known2, parallel_edges=1, similar=None)
    assert ("b", "c") not in {e[:2] for e in plan.tree} and plan.pairs == [("a", "d")]


def test_stopping_rules():
    minima = ["a", "b", "c"]
    losses = {"a": 0.1, "b": 0.2, "c": 0.3}
    similar = {("a", "b"): 1.0, ("a", "c"): 1.05}
    plan = ex.plan_pairs(minima, losses, similar, parallel_edges=4, similar=0.1)
    assert plan.finished and plan.reason == "similar saddles" and plan.pairs == []
    assert ex.plan_pairs(minima, losses, similar, parallel_edges=4, similar=0.01).pairs == [("b", "c")]
    assert ex.plan_pairs(minima, losses, similar, parallel_edges=4, similar=None, budget=2).reason == "budget"
    everything = similar | {("b", "c"): 3.0}
    done = ex.plan_pairs(minima, losses, everything, parallel_edges=4, similar=None)
    assert done.finished and done.reason == "all pairs known"
    # budget reached while an edge is in flight: not finished until it returns
    plan = ex.plan_pairs(minima, losses, {("a", "b"): 1.0}, in_flight=[("a", "c")], budget=2, parallel_edges=4)
    assert plan.pairs == [] and not plan.finished and plan.reason == "budget"
    # a tree edge whose cut has every crossing pair known is a true MST edge: skipped, the next cut is refined
    minima4 = ["a", "b", "c", "d"]
    losses4 = {m: 0.0 for m in minima4}
    chain = {("a", "b"): 1.0, ("b", "c"): 2.0, ("c", "d"): 3.0, ("a", "d"): 5.0, ("b", "d"): 4.0}
    # heaviest tree edge c–d: cut {a, b, c} | {d} fully known (a–d, b–d, c–d) → refine b–c: {a, b} | {c, d}
    assert ex.plan_pairs(minima4, losses4, chain, similar=None).pairs == [("a", "c")]
    with pytest.raises(ValueError, match="allowed: mst, star, all"):
        ex.plan_pairs(minima, losses, {}, strategy="random")
    with pytest.raises(ValueError, match="parallel_edges 0"):
        ex.plan_pairs(minima, losses, {}, parallel_edges=0)


def test_star_and_all_strategies():
    minima, losses, saddles = _random_instance(5, 2)
    best = min(minima, key=losses.get)
    star = ex.plan_pairs(minima, losses, {}, strategy="star", parallel_edges=10)
    assert len(star.pairs) == 4 and all(best in p for p in star.pairs)
    done = ex.plan_pairs(minima, losses, {p: saddles[p] for p in star.pairs}, strategy="star", parallel_edges=10)
    assert done.finished and done.reason == "star complete"
    everything = ex.plan_pairs(minima, losses, {}, strategy="all", parallel_edges=100)
    assert len(everything.pairs) == 10 and everything.pairs == ex.all_pairs(minima, losses)
    assert everything.pairs[0] == tuple(sorted(sorted(minima, key=losses.get)[:2], key=minima.index))


@pytest.mark.parametrize("strategy,seed", [("mst", s) for s in range(6)] + [("star", 0), ("all", 1)])
def test_simulated_exploration_invariants(strategy, seed):
    """Edges finish in random order; at every call the planner proposes no known or in-flight pair, respects the
    budget and parallel_edges, and the exploration ends; run to the end, ``mst`` finds the true tree."""
    minima, losses, saddles = _random_instance(10, 100 + seed)
    rng = random.Random(seed)
    parallel, budget = rng.choice([1, 3, 8]), (None if seed % 2 == 0 else 20)
    known: dict = {}
    flight: list = []
    for _ in range(200):
        plan = ex.plan_pairs(minima, losses, known, flight, budget, parallel, strategy, similar=None)
        assert len(set(plan.pairs)) == len(plan.pairs)
        assert not set(plan.pairs) & set(known) and not set(plan.pairs) & set(flight)
        assert len(flight) + len(plan.pairs) <= parallel
        assert budget is None or len(known) + len(flight) + len(plan.pairs) <= budget
        if plan.finished:
            break
        flight.extend(plan.pairs)
        assert flight, "neither finished nor anything in flight"
        done = flight.pop(rng.randrange(len(flight)))
        known[done] = saddles[done]
        # bounds stay valid at every moment
        for pair, bound in ex.minimax_bounds(minima, known).items():
            assert bound >= ex.minimax_bounds(minima, saddles)[pair] - 1e-12
    assert plan.finished and not flight
    if strategy == "mst" and budget is None:
        assert plan.reason == "all pairs known" and len(known) == 45
        assert {frozenset(e[:2]) for e in plan.tree} == _scipy_tree(minima, saddles)[0]


def test_planner_time_on_100_minima_is_small():
    import time

    minima, losses, saddles = _random_instance(100, 7)
    star_root = min(minima, key=losses.get)
    known = {ex.pair_key(star_root, m, {x: i for i, x in enumerate(minima)}): 0.0 for m in minima if m != star_root}
    known = {p: saddles[p] for p in known} | dict(itertools.islice(saddles.items(), 0, 2000))
    start = time.perf_counter()
    plan = ex.plan_pairs(minima, losses, known, [], None, 8, "mst", similar=None)
    elapsed = time.perf_counter() - start
    assert len(plan.pairs) == 8 and elapsed < 1.0  # the benchmark records the figure; a loaded CI box gets slack


def test_exploration_of_three_mueller_brown_minima_through_the_real_neb():
    """Alg. 3 driving Alg. 2 on the Müller–Brown energy: all three pairs computed, the tree is the true one and the
    minimax bound of the long pair A–B is the saddle of the tree path (A–C–B)."""
    from test_neb import Point, mueller_brown

    from lowloss.workers.autoneb import neb

    points = {"A": (-0.558224, 1.441726), "B": (0.623499, 0.028038), "C": (-0.050011, 0.466694)}
    vectors = {k: torch.tensor(v, dtype=torch.float64) for k, v in points.items()}
    losses = {k: float(mueller_brown(v)) for k, v in vectors.items()}
    minima = ["A", "B", "C"]
    model = Point()
    layout = neb.state_layout(model)
    cycles = [neb.Cycle(60, 3e-4, "equal", 3), neb.Cycle(60, 3e-4), neb.Cycle(60, 7.5e-5)]
    known: dict = {}
    while True:
        plan = ex.plan_pairs(minima, losses, known, [], None, 1, "mst", similar=None)
        if plan.finished:
            break
        (pair,) = plan.pairs
        a, b = pair
        _, dense = neb.auto_neb(
            model,
            layout,
            vectors[a],
            vectors[b],
            cycles,
            lambda m, s, i: mueller_brown(m.xy),
            lambda v: {"train_loss": float(mueller_brown(v))},
            (losses[a], losses[b]),
            l2=0.0,
        )
        known[pair] = min(float(d["train_loss"].max()) for d in dense)  # the edge weight: best saddle over cycles
    assert plan.reason == "all pairs known" and len(known) == 3
    # B–C crosses only the low saddle (−72.25); both paths leaving A cross S1 (−40.665): the tree holds B–C and the
    # lower of A's two edges, and the third pair is bounded by the tree path through the other two
    tree = {frozenset(e[:2]) for e in plan.tree}
    assert frozenset(("B", "C")) in tree and known[("B", "C")] == pytest.approx(-72.25, abs=0.5)
    assert -40.665 - 1e-3 <= min(known[("A", "B")], known[("A", "C")]) <= -40.665 + 0.5
    (outside,) = {frozenset(p) for p in known} - tree
    pair = tuple(sorted(outside, key=minima.index))
    bounds = ex.minimax_bounds(minima, known)
    assert bounds[pair] == max(w for _, _, w in plan.tree) <= known[pair]


def test_plan_does_not_depend_on_the_order_of_known_or_in_flight_pairs():
    """A resumed coordinator reads the known pairs from the store in any order: the plan must be the same."""
    minima, losses, saddles = _random_instance(12, 3)
    rng = random.Random(4)
    items = rng.sample(sorted(saddles.items()), 30)
    flight = [p for p, _ in rng.sample(sorted(saddles.items()), 40) if p not in dict(items)][:3]
    reference = ex.plan_pairs(minima, losses, dict(items), flight, None, 6, "mst", similar=None)
    assert reference.pairs
    for _ in range(5):
        rng.shuffle(items)
        rng.shuffle(flight)
        swapped = {(b, a) if rng.random() < 0.5 else (a, b): w for (a, b), w in items}  # either orientation
        again = ex.plan_pairs(minima, losses, swapped, [(b, a) for a, b in flight], None, 6, "mst", similar=None)
        assert again.pairs == reference.pairs and again.tree == reference.tree
