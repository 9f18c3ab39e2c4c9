"""What a ``landscape`` stage plans, counted from its table without planning it (``StageKind.count``): per centre its
Hessian, direction and mining units, curves and surface shards, as ``LandscapePlan`` makes them; every mode centre
plans alike. Units that two entries of the table would make alike (the same mining spec twice, a scale given twice)
count once; a centre's ``next_checkpoint`` target, a centre unit of its own that another entry may also make, counts
none: the count may fall short of the plan, never exceed it."""

from __future__ import annotations

import math

from ..base import StageCount, StudyContext, count_key
from .mining import MiningParams
from .settings import MINING_ALGORITHMS, WIDE_RANGE_KINDS, CentreSpec, DirectionSpec, LandscapeStage


def mining_params(spec: DirectionSpec, eigenvectors: bool) -> MiningParams:
    """The params of the mining unit of a ``w_peak``/``vvv_basin`` direction (``eigenvectors``: the centre has a
    Hessian unit, whose eigenvectors it reads)."""
    vvv = spec.kind == "vvv_basin"
    return MiningParams(
        algorithm=spec.kind,  # type: ignore[arg-type]
        seed=spec.seed,
        epochs=spec.epochs,
        lr=spec.lr,
        batch_size=spec.batch_size,
        gamma=spec.gamma if vvv else None,
        alpha=spec.alpha if vvv else None,
        phi_init=spec.phi_init if vvv else None,
        eigenvectors=eigenvectors,
    )


def count_landscape(table: LandscapeStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
    """The units at the mode centres, and at each other centre, in parts by unit kind and by what every unit of the
    part holds (its centre, the scans' settings): two stages or sweep combinations that plan the same units at the same
    centres count them once."""
    modes = inputs[table.from_]
    if modes.seeds is None:
        return None  # not a stage of modes by seed
    parts: dict[str, int] = {}

    def add(centre: list, count: int, units: dict[tuple, int]) -> None:
        for what, n in units.items():
            key = count_key("landscape", centre, list(what), modes.key)
            parts[key] = max(parts.get(key, 0), count * n)  # a centre given twice: its units once

    centres = len(table.seeds) if table.seeds is not None else len(modes.seeds)
    if centres:
        add(["modes"], centres, at_centre(table, None))
    for c in table.centres:
        identity = _identity(c, inputs)
        if identity is not None:  # a path centre whose stage makes no path for the pair is skipped, as the plan does
            add(identity, 1, {("centre",): 1, **at_centre(table, c)})
    if table.angles is not None and parts:
        add(["first"], 1, {("angles", str(table.angles.model_dump(mode="json"))): 1})
    return StageCount(tuple(parts.items()))


def _identity(c: CentreSpec, inputs: dict[str, StageCount]) -> list | None:
    """What makes a ``centres`` entry's centre unit (two entries alike make one unit), or None when it makes none."""
    if c.kind == "checkpoint":
        return [c.kind, c.seed, c.epoch]
    if c.kind == "interpolation":
        return [c.kind, list(c.pair or ()), c.at]
    source = inputs.get(c.stage or "")
    if c.kind != "path" or source is None or source.has_pair is None or c.pair is None:
        return None  # saddle, pivot: an AutoNEB stage's edges come with results (the stage waits for them)
    if not source.has_pair((c.pair[0], c.pair[1])):
        return None
    return [c.kind, list(c.pair), source.key]  # `at` may land on the same stored point: counted once


def at_centre(table: LandscapeStage, spec: CentreSpec | None) -> dict[tuple, int]:
    """The units planned at one centre (``spec`` None: a mode) besides the centre unit itself, by what sets them apart
    from the units of another stage at the same centre: the unit kind, the Hessian's settings, the scans' settings and
    which kind of unit their direction comes from."""
    chosen = list(range(len(table.directions))) if spec is None or spec.directions is None else spec.directions
    if spec is None or spec.kind != "checkpoint":
        chosen = [n for n in chosen if table.directions[n].kind != "next_checkpoint"]
    hessian = table.hessian is not None and (spec is None or spec.hessian)
    curves: dict[tuple, int] = {}  # the unit each direction reads (its curves come once per unit) -> its curves
    for n in chosen:
        d = table.directions[n]
        if d.kind == "eigenvector":
            source: tuple = ("eigenvector", d.which, d.rank)  # the Hessian unit's output: no unit of its own
        elif d.kind in MINING_ALGORITHMS:
            source = ("mining", str(mining_params(d, hessian).canonical()))
        else:
            source = ("direction", n)  # one unit per direction entry (each measures its angles to the earlier ones)
        curves[source] = 1 if d.kind in WIDE_RANGE_KINDS else len(set(table.scales))
    scans = str([table.bn, table.eval_examples, table.eval_seed, table.vectorize or 1])
    units: dict[tuple, int] = {}
    if hessian:
        units[("hessian", str(table.hessian))] = 1
    for source, n in curves.items():
        if source[0] != "eigenvector":
            units[(source[0],)] = units.get((source[0],), 0) + 1
        units[("scan", source[0], scans)] = units.get(("scan", source[0], scans), 0) + n
    sf = table.surface
    if sf is not None and (spec is None or spec.surface):
        shards = math.ceil(sf.x_points / sf.shard[0]) * math.ceil(sf.y_points / sf.shard[1])
        grid = [sf.x_points, sf.y_points, list(sf.x_range), list(sf.y_range), list(sf.shard)]  # not the directions:
        units[("surface", scans, str(grid))] = shards  # a mining direction is the same unit at any index
    return units
