"""Pair strategies: which pairs of modes a pair stage (interpolation, LLPF M2M, AutoNEB edge) connects.

Static strategies are functions of the mode list; ``to_best`` is a planner: it waits for the results of every
mode and pairs each one with the best (lowest final training loss).
"""
from __future__ import annotations

import itertools
import random
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .base import Upstream, UpstreamUnit


class RandomPairs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    random: int = Field(ge=1, description="number of distinct random pairs")
    seed: int = 0


PairStrategy = Union[Literal["consecutive", "all", "to_best"], RandomPairs, list[tuple[int, int]]]
STRATEGY_HELP = "'consecutive', 'all', 'to_best', {random = K, seed = S}, or a list of seed pairs like [[0, 1], [2, 3]]"


def is_dynamic(strategy: PairStrategy) -> bool:
    return strategy == "to_best"


def static_pairs(strategy: PairStrategy, seeds: list[int]) -> list[tuple[int, int]]:
    """Seed pairs of a static strategy, in a deterministic order."""
    if strategy == "consecutive":
        return list(zip(seeds, seeds[1:]))
    if strategy == "all":
        return list(itertools.combinations(seeds, 2))
    if isinstance(strategy, RandomPairs):
        every = list(itertools.combinations(seeds, 2))
        rng = random.Random(strategy.seed)
        return sorted(rng.sample(every, min(strategy.random, len(every))))
    if isinstance(strategy, list):
        return [tuple(p) for p in strategy]  # type: ignore[misc]
    raise ValueError(f"{strategy!r} is not a static pair strategy")


def check_pairs(strategy: PairStrategy, seeds: list[int]) -> str | None:
    """Why the strategy cannot apply to these seeds, or None."""
    if isinstance(strategy, RandomPairs):
        n = len(seeds) * (len(seeds) - 1) // 2
        if strategy.random > n:
            return f"asks for {strategy.random} random pairs but {len(seeds)} seeds make only {n}"
    if isinstance(strategy, list):
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


def mode_pairs(strategy: PairStrategy, modes: list[UpstreamUnit], upstream: Upstream) -> list[tuple[UpstreamUnit, UpstreamUnit]]:
    """Pairs of upstream mode units; a planner strategy returns only what the finished results allow so far."""
    by_seed = {u.params["seed"]: u for u in modes}
    if not is_dynamic(strategy):
        return [(by_seed[a], by_seed[b]) for a, b in static_pairs(strategy, [u.params["seed"] for u in modes])]
    results = {u.id: upstream.result(u.id) for u in modes}
    if any(r is None for r in results.values()):
        return []  # the planner decides once every mode has finished
    best = min(modes, key=lambda u: (results[u.id]["final_train_loss"], u.params["seed"]))
    return [(best, u) for u in modes if u.id != best.id]
