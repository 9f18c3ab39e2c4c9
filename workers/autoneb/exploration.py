"""Energy-landscape exploration of many minima (AutoNEB paper, §3.2 and Algorithm 3): pure graph math.

Source: "Essentially No Barriers in Neural Network Energy Landscape" (Draxler et al., ICML 2018), cited as *AutoNEB*.

A *minimum* is any hashable id with a loss; a *pair* is a tuple of two ids in the order of the ``minima`` sequence the
caller passes (``pair_key``); a *known* pair maps to its saddle energy (the edge weight: the lowest saddle train loss
over the edge's cycles). Nothing here draws random numbers or imports torch: ties are broken by the caller's order of
``minima``, so every result is a pure function of the inputs.

Stopping on "similar" saddles (§3.2: "we stop the iteration when the lightened spanning tree found so far contains
only similar saddle point energies"): the *relative spread* of a spanning tree is

    spread = (max_e w_e − min_e w_e) / max(|max_e w_e|, 1e-12)

over its edge weights w_e (saddle losses, ≥ 0 for cross-entropy): 0 when every tree saddle is equal, → 1 when one
saddle towers over the others. The exploration stops once the tree spans every minimum and spread ≤ ``similar``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "STRATEGIES",
    "Merge",
    "Plan",
    "all_pairs",
    "linkage_matrix",
    "minimax_bounds",
    "minimum_spanning_tree",
    "pair_key",
    "plan_pairs",
    "relative_spread",
    "single_linkage",
]

STRATEGIES = ("mst", "star", "all")

M = TypeVar("M", bound=Hashable)  # the id of a minimum (a seed, a unit id)
Pair = tuple[M, M]


def pair_key(a: M, b: M, order: Mapping[M, int]) -> Pair[M]:
    """The canonical pair: the two ids in the order of ``minima`` (``order`` maps id → position)."""
    if a == b:
        raise ValueError(f"pair of one minimum {a!r} with itself")
    return (a, b) if order[a] < order[b] else (b, a)


def _order(minima: Sequence[M]) -> dict[M, int]:
    order = {m: i for i, m in enumerate(minima)}
    if len(order) != len(minima):
        raise ValueError("minima ids must be unique")
    return order


def _canonical(edges: Mapping[Pair[M], float], order: Mapping[M, int]) -> dict[Pair[M], float]:
    out: dict[Pair[M], float] = {}
    for (a, b), w in edges.items():
        oa, ob = order.get(a), order.get(b)
        if oa is None or ob is None or oa == ob:
            raise ValueError(f"pair ({a!r}, {b!r}) names a minimum outside the minima or one minimum twice")
        key = (a, b) if oa < ob else (b, a)
        w = float(w)
        if key not in out or w < out[key]:
            out[key] = w
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> bool:
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        self.parent[max(ri, rj)] = min(ri, rj)
        return True


def minimum_spanning_tree(minima: Sequence[M], edges: Mapping[Pair[M], float]) -> list[tuple[M, M, float]]:
    """AutoNEB §3.2 consequence 3 (Kruskal): the minimum spanning tree (a forest where the known edges do not connect
    every minimum) as [(a, b, weight)] in the order the edges were taken (lightest first; ties by ``minima`` order)."""
    order = _order(minima)
    return _kruskal(order, _canonical(edges, order))


def _kruskal(order: Mapping[M, int], known: Mapping[Pair[M], float]) -> list[tuple[M, M, float]]:
    uf = _UnionFind(len(order))
    tree = []
    for (a, b), w in sorted(known.items(), key=lambda kv: (kv[1], order[kv[0][0]], order[kv[0][1]])):
        if uf.union(order[a], order[b]):
            tree.append((a, b, w))
            if len(tree) == len(order) - 1:
                break
    return tree


def _adjacency(minima: Sequence[M], tree: Iterable[tuple[M, M, float]]):
    adj: dict[M, list[tuple[M, float]]] = {m: [] for m in minima}
    for a, b, w in tree:
        adj[a].append((b, w))
        adj[b].append((a, w))
    return adj


def minimax_bounds(minima: Sequence[M], edges: Mapping[Pair[M], float]) -> dict[Pair[M], float]:
    """AutoNEB §3.2 (ultrametric triangle inequality L*_AC ≤ max(L_AB, L_BC)): for every pair, the largest saddle
    on the tree path between them, the lowest upper bound on its barrier that the known paths give (``inf`` where the
    known edges do not connect the pair). Equals the known saddle on tree edges, is ≤ it on every known pair."""
    order = _order(minima)
    adj = _adjacency(minima, minimum_spanning_tree(minima, edges))
    bounds: dict[Pair[M], float] = {}
    for source in minima:
        best = {source: float("-inf")}
        stack = [source]
        while stack:
            node = stack.pop()
            for nxt, w in adj[node]:
                if nxt not in best:
                    best[nxt] = max(best[node], w)
                    stack.append(nxt)
        for target in minima:
            if order[target] > order[source]:
                bounds[(source, target)] = best.get(target, float("inf"))
    return bounds


def relative_spread(weights: Iterable[float]) -> float:
    """(max − min) / max(|max|, 1e-12) of the tree's saddle energies (module docstring); 0 for no or one edge."""
    w = list(weights)
    if len(w) < 2:
        return 0.0
    hi, lo = max(w), min(w)
    return (hi - lo) / max(abs(hi), 1e-12)


def all_pairs(minima: Sequence[M], losses: Mapping[M, float]) -> list[Pair[M]]:
    """Every pair, minima ranked by loss: (best, 2nd), (best, 3rd), …, (2nd, 3rd), … (strategy ``all``)."""
    order = _order(minima)
    ranked = sorted(minima, key=lambda m: (float(losses[m]), order[m]))
    return [pair_key(ranked[i], ranked[j], order) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]


@dataclass
class Plan(Generic[M]):
    """What to compute next: ``pairs`` to submit now (at most the free ``parallel_edges`` slots and the budget left);
    ``finished`` once nothing more will be proposed and nothing is in flight; ``reason`` says why proposals stopped
    (``budget``, ``all pairs known``, ``similar saddles``, ``star complete``, ``waiting`` for edges in flight, or
    empty while exploring); ``tree`` is the minimum spanning tree of the known edges, ``spread`` its
    relative spread."""

    pairs: list[Pair[M]]
    finished: bool
    reason: str
    tree: list[tuple[M, M, float]] = field(default_factory=list)
    spread: float = 0.0


def _components(minima: Sequence[M], pairs: Iterable[Pair[M]], order: Mapping[M, int]) -> list[int]:
    uf = _UnionFind(len(minima))
    for a, b in pairs:
        uf.union(order[a], order[b])
    return [uf.find(i) for i in range(len(minima))]


def plan_pairs(
    minima: Sequence[M],
    losses: Mapping[M, float],
    known: Mapping[Pair[M], float],
    in_flight: Iterable[Pair[M]] = (),
    budget: int | None = None,
    parallel_edges: int = 1,
    strategy: str = "mst",
    similar: float | None = 0.1,
) -> Plan[M]:
    """AutoNEB Alg. 3 as a planner: the next pairs to compute given the known saddles and the pairs in flight.

    - ``all``: every pair, best-ranked first (``all_pairs``).
    - ``star``: the lowest-loss minimum to every other one (Alg. 3 l.1), then finished.
    - ``mst``: (1) while the known and in-flight edges do not connect every minimum, connect the lowest-loss
      minimum to the best minimum of every other component (the star, all submitted at once up to
      ``parallel_edges``); (2) then refinement (Alg. 3 l.3–5): the tree edges of the known edges' minimum spanning
      tree, heaviest first; removing one cuts its tree into two sides; the first pair across the cut that is neither
      known nor in flight (each side sorted by loss, the side of the lower-loss minimum first) is proposed. A cut
      that an in-flight pair already crosses is left to that pair (speculation: the bounds stay valid whatever it
      returns); a cut with every crossing pair known holds a true minimum-spanning-tree edge (cut property) and is
      skipped (Alg. 3 l.6–7 "ignore it in the future"). Stops when the tree spans all minima and its relative spread
      ≤ ``similar`` (``None``: never), when every pair is known (Alg. 3 l.14), or on the budget.

    ``budget`` bounds known + in-flight + proposed pairs (``None``: all pairs). Never proposes a known or in-flight
    pair, nor more than ``parallel_edges`` − in flight."""
    _check_settings(budget, parallel_edges, strategy)
    order = _order(minima)
    missing = [m for m in minima if m not in losses]
    if missing:
        raise ValueError(f"minima without a loss: {', '.join(map(repr, missing[:5]))}")
    known_c = _canonical(known, order)
    flight = {pair_key(a, b, order) for a, b in in_flight}
    taken = set(known_c) | flight
    total = len(minima) * (len(minima) - 1) // 2
    tree = _kruskal(order, known_c)
    left = (total if budget is None else min(budget, total)) - len(taken)
    ranked = sorted(minima, key=lambda m: (float(losses[m]), order[m]))
    spread = relative_spread(w for _, _, w in tree)
    ex = _Round(minima, order, ranked, taken, flight, tree, spread, min(parallel_edges - len(flight), left))
    if len(known_c) >= total:
        return ex.done("all pairs known")
    if left <= 0:
        return ex.done("budget")
    if ex.slots <= 0:
        return ex.plan([])
    if strategy == "all":
        pairs = [p for p in all_pairs(minima, losses) if p not in taken][: ex.slots]
        return ex.plan(pairs) if pairs else ex.done("all pairs known")
    star = _star(ex, strategy)
    return star if star is not None else _refine(ex, similar)


def _check_settings(budget: int | None, parallel_edges: int, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"explore strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if parallel_edges < 1:
        raise ValueError(f"parallel_edges {parallel_edges}; allowed: an integer ≥ 1")
    if budget is not None and budget < 0:
        raise ValueError(f"budget {budget}; allowed: an integer ≥ 0")


@dataclass(frozen=True)
class _Round(Generic[M]):
    """What one ``plan_pairs`` call knows: the minima (``ranked`` by loss, then position), the pairs known or in
    flight (``taken``), the known edges' minimum spanning tree and its spread, and the free ``slots``."""

    minima: Sequence[M]
    order: Mapping[M, int]
    ranked: list[M]
    taken: set[Pair[M]]
    flight: set[Pair[M]]
    tree: list[tuple[M, M, float]]
    spread: float
    slots: int

    def plan(self, pairs: list[Pair[M]], reason: str = "") -> Plan[M]:
        return Plan(pairs, False, reason, self.tree, self.spread)

    def done(self, reason: str) -> Plan[M]:
        """No more proposals; finished once nothing is in flight."""
        return Plan([], not self.flight, reason, self.tree, self.spread)


def _star(ex: _Round[M], strategy: str) -> Plan[M] | None:
    """AutoNEB Alg. 3 l.1: the lowest-loss minimum to every other one (``star``), or (``mst``) to the best minimum
    of every component of the known and in-flight edges that it is not joined to; None when there is nothing to join."""
    comp = _components(ex.minima, ex.taken, ex.order)
    if len(set(comp)) <= 1 and strategy != "star":
        return None
    root = ex.ranked[0]
    pairs = []
    seen = {comp[ex.order[root]]}
    for m in ex.ranked[1:]:
        c = comp[ex.order[m]]
        key = pair_key(root, m, ex.order)
        if strategy == "star":
            if key not in ex.taken:
                pairs.append(key)
        elif c not in seen:
            seen.add(c)
            pairs.append(key)
        if len(pairs) >= ex.slots:
            break
    if strategy == "star" and not pairs:
        return ex.done("star complete")
    return ex.plan(pairs) if pairs else None


def _refine(ex: _Round[M], similar: float | None) -> Plan[M]:
    """AutoNEB Alg. 3 l.3–7: across each cut of the tree, heaviest edge first, the first pair neither known nor in
    flight; a cut a pair in flight crosses is left to it, a cut with every crossing pair known is skipped."""
    n = len(ex.minima)
    if len(ex.tree) == n - 1 and similar is not None and ex.spread <= similar:
        return ex.done("similar saddles")
    adj = _adjacency(ex.minima, ex.tree)
    rank = {m: i for i, m in enumerate(ex.ranked)}
    proposals: list[Pair[M]] = []
    busy = set(ex.taken)  # known, in flight, or proposed in this call
    moving = set(ex.flight)  # in flight or proposed in this call
    open_cut = False
    for a, b, _w in sorted(ex.tree, key=lambda e: (-e[2], ex.order[e[0]], ex.order[e[1]])):
        side_a = _side(adj, a, b)
        side_b = _side(adj, b, a)
        if any((x in side_a) != (y in side_a) and (x in side_b or y in side_b) for x, y in moving):
            open_cut = True  # left to the pair in flight across this cut
            continue
        first = _first_unknown_across(side_a, side_b, rank, busy, ex.order)
        if first is None:
            continue  # every pair across this cut is known: a true MST edge
        open_cut = True
        proposals.append(first)
        busy.add(first)
        moving.add(first)
        if len(proposals) >= ex.slots:
            break
    if proposals:
        return ex.plan(proposals)
    if open_cut or len(ex.tree) < n - 1:
        # only cuts that pairs in flight already cross, or the tree is still joined by edges in flight
        return ex.plan([], "waiting")
    return ex.done("all pairs known")  # no cut has an unknown crossing pair: every pair is known


def _side(adj, start: M, blocked: M) -> set[M]:
    """The minima reachable from ``start`` in the tree without crossing the edge (start, blocked)."""
    seen = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        for nxt, _ in adj[node]:
            if nxt in seen or (node == start and nxt == blocked):
                continue
            seen.add(nxt)
            stack.append(nxt)
    return seen


def _first_unknown_across(
    side_a: set, side_b: set, rank: Mapping[M, int], taken: set[Pair[M]], order: Mapping[M, int]
) -> Pair[M] | None:
    first, second = sorted(side_a, key=lambda m: rank[m]), sorted(side_b, key=lambda m: rank[m])
    if rank[second[0]] < rank[first[0]]:
        first, second = second, first
    for x in first:
        ox = order[x]
        for y in second:
            key = (x, y) if ox < order[y] else (y, x)
            if key not in taken:
                return key
    return None


@dataclass(frozen=True)
class Merge(Generic[M]):
    """One join of the single-linkage (disconnectivity) tree: clusters ``left`` and ``right`` meet at ``height``."""

    height: float
    left: tuple[M, ...]
    right: tuple[M, ...]


def single_linkage(minima: Sequence[M], edges: Mapping[Pair[M], float]) -> list[Merge[M]]:
    """AutoNEB §6 (single-linkage clustering, disconnectivity graphs of Wales et al.): the merges of the minima at
    the minimax saddle heights, lowest first; the clusters are sorted by ``minima`` order. Single linkage on the
    minimax bounds is exactly Kruskal's order over the spanning tree."""
    order = _order(minima)
    members: dict[int, tuple[M, ...]] = {i: (m,) for i, m in enumerate(minima)}
    uf = _UnionFind(len(minima))
    merges = []
    for a, b, w in minimum_spanning_tree(minima, edges):
        ra, rb = uf.find(order[a]), uf.find(order[b])
        left, right = sorted((members[ra], members[rb]), key=lambda c: order[c[0]])
        uf.union(ra, rb)
        root = uf.find(ra)
        members[root] = tuple(sorted(left + right, key=lambda m: order[m]))
        merges.append(Merge(w, left, right))
    return merges


def linkage_matrix(minima: Sequence[M], edges: Mapping[Pair[M], float]) -> list[list[float]]:
    """``single_linkage`` as a SciPy linkage matrix (rows [cluster_i, cluster_j, height, size]; leaves 0..n−1 in
    ``minima`` order, merge k makes cluster n+k), for ``scipy.cluster.hierarchy.dendrogram``. Needs a connected
    graph."""
    order = _order(minima)
    n = len(minima)
    cluster_of: dict[tuple[M, ...], int] = {(m,): i for i, m in enumerate(minima)}
    rows = []
    for k, merge in enumerate(single_linkage(minima, edges)):
        i, j = cluster_of[merge.left], cluster_of[merge.right]
        joined = tuple(sorted(merge.left + merge.right, key=lambda m: order[m]))
        cluster_of[joined] = n + k
        rows.append([float(min(i, j)), float(max(i, j)), float(merge.height), float(len(joined))])
    if len(rows) != n - 1:
        raise ValueError(f"the known edges leave the minima in {n - len(rows)} components; linkage needs one")
    return rows
