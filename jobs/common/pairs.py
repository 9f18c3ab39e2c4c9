"""Pair strategies: which pairs of modes a pair stage (interpolation, LLPF M2M, AutoNEB edge) connects.

Static strategies are functions of the mode list; ``to_best`` is a planner: it waits for the results of every
mode and pairs each one with the best (lowest final training loss).
"""

from __future__ import annotations

import itertools
import random
from functools import partial
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..base import PLANS_LATER, ExpansionTooLarge, PlannedUnit, PlanView, StageCount, count_key
from .modes import by_seed, seed_of


class RandomPairs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    random: int = Field(ge=1, description="number of distinct random pairs")
    seed: int = Field(default=0, description="the seed of the draw")


PairStrategy = Union[Literal["consecutive", "all", "to_best"], RandomPairs, list[tuple[int, int]]]
STRATEGY_HELP = "'consecutive', 'all', 'to_best', {random = K, seed = S}, or a list of seed pairs like [[0, 1], [2, 3]]"


def is_dynamic(strategy: PairStrategy) -> bool:
    return strategy == "to_best"


def pair_count(strategy: PairStrategy, n: int) -> int:
    """How many pairs the strategy makes of n modes (without making them)."""
    if strategy == "consecutive":
        return max(n - 1, 0)
    if strategy == "all":
        return n * (n - 1) // 2
    if strategy == "to_best":
        return max(n - 1, 0)
    if isinstance(strategy, RandomPairs):
        return min(strategy.random, n * (n - 1) // 2)
    return len(strategy)


def static_pairs(strategy: PairStrategy, seeds: list[int]) -> list[tuple[int, int]]:
    """Seed pairs of a static strategy, in a deterministic order."""
    if strategy == "consecutive":
        return list(zip(seeds, seeds[1:]))
    if strategy == "all":
        return list(itertools.combinations(seeds, 2))
    if isinstance(strategy, RandomPairs):
        n = len(seeds) * (len(seeds) - 1) // 2
        rng = random.Random(strategy.seed)
        # indices into the lexicographic list of all pairs (as sampling that list would pick them), unranked directly
        return [_pair_at(seeds, i) for i in sorted(rng.sample(range(n), min(strategy.random, n)))]
    if isinstance(strategy, list):
        return list(strategy)
    raise ValueError(f"{strategy!r} is not a static pair strategy")


def _pair_at(seeds: list[int], index: int) -> tuple[int, int]:
    """The pair at ``index`` of ``itertools.combinations(seeds, 2)``, without making the others."""
    n = len(seeds)

    def first(a: int) -> int:  # index of the first pair (seeds[a], ·)
        return a * (2 * n - a - 1) // 2

    lo, hi = 0, n - 2
    while lo < hi:  # the last a with first(a) <= index
        mid = (lo + hi + 1) // 2
        if first(mid) <= index:
            lo = mid
        else:
            hi = mid - 1
    return seeds[lo], seeds[lo + 1 + index - first(lo)]


def check_pairs(strategy: PairStrategy, seeds: list[int]) -> str | None:
    """Why the strategy cannot apply to these seeds, or None."""
    if isinstance(strategy, RandomPairs):
        n = len(seeds) * (len(seeds) - 1) // 2
        if strategy.random > n:
            return f"asks for {strategy.random} random pairs but {len(seeds)} seeds make only {n}"
    if isinstance(strategy, list):
        if not strategy:
            return "an empty list makes no pairs"
        known = set(seeds)
        for a, b in strategy:
            if a == b:
                return f"pair [{a}, {b}] joins a mode with itself"
            for s in (a, b):
                if s not in known:
                    return f"seed {s} in pair [{a}, {b}] is not one of the input stage's seeds {sorted(known)}"
    if len(seeds) < 2:
        return "needs at least two seeds"
    return None


def check_pair_count(strategy: PairStrategy, n_modes: int, per_pair: int, limit: int, what: str) -> None:
    """Refuse, before anything is made, a strategy that would expand to more than ``limit`` units."""
    count = pair_count(strategy, n_modes) * per_pair
    if count > limit:
        raise ExpansionTooLarge(what, count, limit)


def count_pairs(
    strategy: PairStrategy, modes: StageCount, per_pair: int, limit: int, what: str, *shared: Any
) -> StageCount | None:
    """A pair stage's count (``StageKind.count``): ``per_pair`` units per pair of the modes ``modes`` counts, refused as
    ``check_pair_count`` refuses; a planner strategy (``to_best``) plans nothing up front. ``shared``: what every unit
    of the stage holds (its kind, its params without the pair), keyed with the modes' key."""
    if modes.seeds is None:
        return None  # not a stage of modes by seed: nothing known up front
    check_pair_count(strategy, len(modes.seeds), per_pair, limit, what)
    if is_dynamic(strategy):
        return PLANS_LATER
    pairs = len(set(map(tuple, strategy))) if isinstance(strategy, list) else pair_count(strategy, len(modes.seeds))
    key = count_key(*shared, modes.key)
    return StageCount(((key, pairs * per_pair),), has_pair=partial(makes_pair, strategy, modes.seeds))


def makes_pair(strategy: PairStrategy, seeds: tuple[int, ...], pair: tuple[int, int]) -> bool:
    """Whether a static strategy pairs these two seeds, in this order (without making the other pairs)."""
    a, b = pair
    if isinstance(strategy, list):
        return (a, b) in {tuple(p) for p in strategy}
    if isinstance(strategy, RandomPairs):
        return (a, b) in static_pairs(strategy, list(seeds))
    if strategy not in ("consecutive", "all") or a not in seeds or b not in seeds:
        return False
    i, j = seeds.index(a), seeds.index(b)
    return j == i + 1 if strategy == "consecutive" else i < j


def mode_pairs(strategy: PairStrategy, source: str, view: PlanView) -> list[tuple[PlannedUnit, PlannedUnit]] | None:
    """Pairs of the mode units of stage ``source``; None while a planner strategy still waits for results
    (``to_best``: every mode committed or given up; a failed mode is left out of the pairs)."""
    modes = view.units(source)
    if not is_dynamic(strategy):
        seeds = by_seed(modes)
        return [(seeds[a], seeds[b]) for a, b in static_pairs(strategy, [seed_of(u) for u in modes])]
    if not view.decided(source):
        return None  # the planner decides once every mode has finished
    results = {u.id: view.result(u.id) for u in modes}
    done = [u for u in modes if results[u.id] is not None]  # a mode that failed is left out
    if not done:
        return []
    best = min(done, key=lambda u: (results[u.id]["final_train_loss"], seed_of(u)))  # type: ignore[index]
    return [(best, u) for u in done if u.id != best.id]
