"""The cross-field checks of a ``landscape`` stage table: its centres, directions, curves and surface against the
study and the stages it reads. Each check returns (field, bad value, what is allowed) for every problem it finds."""

from __future__ import annotations

from typing import Any

from ..base import StageInfo, StudyContext
from .settings import CentreSpec, DirectionSpec, LandscapeStage

Problem = tuple[str, Any, str]
NEEDS_STAGE = {"path": "m2m", "saddle": "autoneb", "pivot": "autoneb"}


def target_seed(spec: DirectionSpec, seed: int, seeds: list[int]) -> int:
    """The other mode of a ``to_mode`` direction at the centre of ``seed`` (default: the next seed, cyclic)."""
    if spec.target_seed is not None:
        return spec.target_seed
    return seeds[(seeds.index(seed) + 1) % len(seeds)]


def centre_problems(
    table: LandscapeStage, study: StudyContext, stages: dict[str, StageInfo], all_seeds: list[int]
) -> list[Problem]:
    problems: list[Problem] = []
    for n, c in enumerate(table.centres):
        where = f"centres[{n}]"
        if c.kind in NEEDS_STAGE:
            found, usable = _stage_problems(c, where, stages)
            problems += found
            if not usable:
                continue
        if c.kind != "checkpoint":
            if c.pair is None or c.pair[0] == c.pair[1] or any(s not in all_seeds for s in c.pair):
                problems.append((f"{where}.pair", c.pair, f"two different seeds of stage {table.from_!r}: {all_seeds}"))
        else:
            problems += _checkpoint_problems(c, where, table, study, stages, all_seeds)
        if c.kind == "pivot" and c.pivot is None:
            problems.append((f"{where}.pivot", None, "the index of a pivot of the path"))
        if c.directions is not None:
            bad = [i for i in c.directions if not 0 <= i < len(table.directions)]
            if bad:
                problems.append((f"{where}.directions", c.directions, f"indices in 0..{len(table.directions) - 1}"))
    return problems


def _stage_problems(c: CentreSpec, where: str, stages: dict[str, StageInfo]) -> tuple[list[Problem], bool]:
    """The problems of a centre's path stage, and whether it names a stage of the right kind at all."""
    info = stages.get(c.stage) if c.stage is not None else None
    needed = NEEDS_STAGE[c.kind]
    if info is None or info.kind != needed:
        kinds = [k for k, i in stages.items() if i.kind == needed]
        return [(f"{where}.stage", c.stage, f"the name of an earlier {needed} stage {kinds}")], False
    problems: list[Problem] = []
    if c.kind == "path" and any(ph.iterations < 1 for ph in getattr(info.params, "phases", [])):
        problems.append((f"{where}.stage", c.stage, "an m2m stage with phases"))
    if c.kind == "path" and getattr(info.params, "point_stride", 0) < 1:
        problems.append((f"{where}.stage", c.stage, "an m2m stage that stores points (point_stride ≥ 1)"))
    return problems, True


def _checkpoint_problems(
    c: CentreSpec,
    where: str,
    table: LandscapeStage,
    study: StudyContext,
    stages: dict[str, StageInfo],
    all_seeds: list[int],
) -> list[Problem]:
    problems: list[Problem] = []
    if c.seed not in all_seeds:
        problems.append((f"{where}.seed", c.seed, f"a seed of stage {table.from_!r}: {all_seeds}"))
    epochs = list(study.train.checkpoint_epochs)
    if stages[table.from_].kind != "train" or c.epoch not in epochs:
        why = f"an epoch of [train] checkpoint_epochs {epochs} (the train stage {table.from_!r} stores those)"
        problems.append((f"{where}.epoch", c.epoch, why))
    return problems


def direction_problems(table: LandscapeStage, all_seeds: list[int], centres: list[int]) -> list[Problem]:
    problems: list[Problem] = []
    for n, spec in enumerate(table.directions):
        if spec.kind == "eigenvector":
            problems += _eigenvector_problems(table, n, spec)
        if spec.kind == "vvv_basin" and spec.alpha > 0.5:
            problems.append((f"directions[{n}].alpha", spec.alpha, "α in [0, 0.5]"))
        if spec.kind == "next_checkpoint":
            takers = [c for c in table.centres if c.directions is None or n in c.directions]
            if not any(c.kind == "checkpoint" for c in takers):
                why = (
                    "the direction from a training checkpoint to the next one (Xu et al. §3.2, v-side curves): it "
                    "needs a centre of kind 'checkpoint' that takes it (it is planned at checkpoint centres only)"
                )
                problems.append((f"directions[{n}].kind", spec.kind, why))
        if spec.kind != "to_mode":
            continue
        if spec.target_seed is not None and spec.target_seed not in all_seeds:
            why = f"a seed of stage {table.from_!r}: {all_seeds}"
            problems.append((f"directions[{n}].target_seed", spec.target_seed, why))
        elif any(target_seed(spec, s, all_seeds) == s for s in centres if s in all_seeds):
            why = "a seed other than every centre's (to_mode needs a second mode)"
            problems.append((f"directions[{n}].target_seed", spec.target_seed, why))
    return problems


def _eigenvector_problems(table: LandscapeStage, n: int, spec: DirectionSpec) -> list[Problem]:
    h = table.hessian
    if h is None or spec.which not in h.which or spec.rank >= h.k:
        why = f"an eigenvector the stage's hessian computes (hessian = {{k > rank, which = [{spec.which!r}]}})"
        return [(f"directions[{n}].rank", spec.rank, why)]
    if any(not c.hessian and (c.directions is None or n in c.directions) for c in table.centres):
        return [(f"directions[{n}].kind", spec.kind, "centres with hessian = true (it needs one)")]
    return []


def view_problems(table: LandscapeStage) -> list[Problem]:
    """The curves' points and scales, and the surface's ranges, shards and directions."""
    problems: list[Problem] = []
    if table.points % 2 == 0:
        problems.append(("points", table.points, "an odd number of points (λ = 0, the centre, in the middle)"))
    if [s for s in table.scales if not s > 0]:
        problems.append(("scales", table.scales, "positive view scales s"))
    sf = table.surface
    if sf is None:
        return problems
    for axis, rng in (("x_range", sf.x_range), ("y_range", sf.y_range)):
        if not rng[1] > rng[0]:
            problems.append((f"surface.{axis}", list(rng), "[min, max] with max > min"))
    if min(sf.shard) < 1:
        problems.append(("surface.shard", list(sf.shard), "at least 1 grid point per shard along each axis"))
    if any(not 0 <= i < len(table.directions) for i in sf.directions) or sf.directions[0] == sf.directions[1]:
        why = f"two different indices in 0..{len(table.directions) - 1}"
        problems.append(("surface.directions", list(sf.directions), why))
    for n, c in enumerate(table.centres):
        if c.surface and c.directions is not None and not set(sf.directions) <= set(c.directions):
            problems.append(
                (f"centres[{n}].directions", c.directions, f"the surface's directions {list(sf.directions)} too")
            )
    return problems
