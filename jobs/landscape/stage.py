"""Stage kind ``landscape``: loss landscapes at modes and at other points (Xu et al.).

The stage plans, per centre (the modes of ``from`` with the chosen seeds, then the ``centres`` entries as centre
units), the direction and mining units (after the Hessian unit when they read its eigenvectors), then in the same plan
(naming the drafts) the curves per (direction, scale) and the surface shards, and the Hessian unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from ..autoneb.params import AutoNEBEdgeParams
from ..base import (
    ExpansionTooLarge,
    ModeParams,
    Plan,
    PlannedUnit,
    PlanView,
    Ref,
    StageCount,
    StageInfo,
    StageKind,
    StudyContext,
    UnitDraft,
)
from ..common.modes import by_seed, seed_of, seeds_of
from ..llpf.params import M2MPhaseParams
from .angles import AnglesParams
from .centres import CentreParams
from .counting import count_landscape, mining_params
from .directions import DirectionParams
from .hessian import HessianParams
from .scans import ScanParams
from .settings import (
    MINING_ALGORITHMS,
    W_BASIN_RANGE,
    WIDE_RANGE_KINDS,
    CentreSpec,
    DirectionSpec,
    GridParams,
    LandscapeStage,
    w_basin_points,
)
from .validation import centre_problems, direction_problems, target_seed, view_problems

Input = Union[str, UnitDraft, Ref]


def path_point(phases: list[PlannedUnit], at: float) -> tuple[PlannedUnit, int]:
    """(phase unit, step) of the stored point of an M2M path (its phases in order) nearest ``at`` × the path's
    iterations; points are stored every ``point_stride`` iterations and at each phase's end; ties go to the earlier."""
    total = sum(u.params_as(M2MPhaseParams).iterations for u in phases)
    best: tuple[float, int, PlannedUnit, int] | None = None
    offset = 0
    for u in phases:
        params = u.params_as(M2MPhaseParams)
        n, stride = params.iterations, params.point_stride
        for step in sorted({*range(stride, n + 1, stride), n}):
            key = (abs(offset + step - at * total), offset + step, u, step)
            if best is None or key[:2] < best[:2]:
                best = key
        offset += n
    assert best is not None
    return best[2], best[3]


@dataclass
class Centre:
    """A centre of the stage: its label prefix, the input naming it, the seed standing for it, and its spec (None:
    a mode)."""

    name: str
    input: Input
    seed: int
    spec: CentreSpec | None


@dataclass
class LandscapePlan:
    """One plan call: the drafts in the order they are proposed."""

    table: LandscapeStage
    study: StudyContext
    view: PlanView
    modes: list[PlannedUnit]
    drafts: list[UnitDraft] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_seed = by_seed(self.modes)
        self.seeds = [seed_of(u) for u in self.modes]
        scan: dict[str, Any] = dict(
            bn=self.table.bn, eval_examples=self.table.eval_examples, eval_seed=self.table.eval_seed
        )
        if (self.table.vectorize or 1) > 1:
            scan["vectorize"] = self.table.vectorize
        self.scan = scan

    def mode_of(self, seed: int) -> ModeParams:
        return self.by_seed[seed].params_as(ModeParams)

    # ------------------------------------------------------------------ centres
    def centres(self) -> tuple[list[Centre], list[str]]:
        """The modes to centre on, then the ``centres`` entries (each a centre unit); and the entries skipped."""
        table = self.table
        modes = [self.by_seed[s] for s in table.seeds] if table.seeds is not None else self.modes
        centres = [Centre(f"seed={seed_of(u)}", u.id, seed_of(u), None) for u in modes]
        skipped = []
        for c in table.centres:
            draft = self.centre_draft(c)
            if draft is None:
                skipped.append(c.label())
                continue
            self.drafts.append(draft)
            centres.append(Centre(c.label(), draft, c.centre_seed(), c))
        return centres, skipped

    def centre_draft(self, c: CentreSpec) -> UnitDraft | None:
        """The centre unit of a ``centres`` entry, or None when its AutoNEB stage computed no edge for the pair."""
        seed = c.centre_seed()
        mode = self.mode_of(seed)
        common: dict[str, Any] = dict(seed=seed, model=mode.model, data=mode.data)
        if c.kind == "checkpoint":
            params = CentreParams(source="checkpoint", epoch=c.epoch, **common)
            return UnitDraft("centre", params, {"a": self.by_seed[seed].id}, c.label())
        assert c.pair is not None
        a, b = (self.by_seed[s] for s in c.pair)
        if c.kind == "interpolation":
            params = CentreParams(source="interpolation", alpha=c.at, **common)
            return UnitDraft("centre", params, {"a": a.id, "b": b.id}, c.label())
        units = self.view.units(c.stage)
        if c.kind == "path":
            mine = [u for u in units if tuple(u.params_as(M2MPhaseParams).pair) == tuple(c.pair)]
            if not mine:
                return None
            unit, step = path_point(sorted(mine, key=lambda u: u.params_as(M2MPhaseParams).phase), c.at)
            return UnitDraft(
                "centre", CentreParams(source="point", **common), {"a": Ref(unit.id, f"point:{step}")}, c.label()
            )
        edges = [u for u in units if sorted(u.params_as(AutoNEBEdgeParams).pair) == sorted(c.pair)]
        if not edges:
            return None
        edge = edges[0]
        if c.kind == "saddle":
            return UnitDraft("centre", CentreParams(source="point", **common), {"a": Ref(edge.id, "saddle")}, c.label())
        template = self.by_seed[edge.params_as(AutoNEBEdgeParams).pair[0]].id
        params = CentreParams(source="pivot", pivot=c.pivot, **common)
        return UnitDraft("centre", params, {"a": Ref(edge.id, "pivots"), "template": template}, c.label())

    def angles(self, first: Centre) -> None:
        angles = self.table.angles
        if angles is not None:
            label = f"{first.name} angles({angles.count})"
            self.drafts.append(UnitDraft("angles", AnglesParams(**angles.model_dump()), {"centre": first.input}, label))

    # ------------------------------------------------------------------ one centre
    def at_centre(self, centre: Centre) -> None:
        """A centre's Hessian, directions, curves and surface shards."""
        table, spec = self.table, centre.spec
        chosen = list(range(len(table.directions))) if spec is None or spec.directions is None else spec.directions
        if spec is None or spec.kind != "checkpoint":  # a next checkpoint exists at checkpoint centres only
            chosen = [n for n in chosen if table.directions[n].kind != "next_checkpoint"]
        hess = None
        if table.hessian is not None and (spec is None or spec.hessian):
            params = HessianParams(**table.hessian.model_dump())
            hess = UnitDraft("hessian", params, {"centre": centre.input}, f"{centre.name} hessian")
        needs_hessian = any(table.directions[n].kind in ("eigenvector", *MINING_ALGORITHMS) for n in chosen)
        if hess is not None and needs_hessian:
            self.drafts.append(hess)  # before the units that read its eigenvectors
        sources = self.directions(centre, chosen, hess)
        for n in chosen:
            self.curves(centre, n, sources[n])
        if table.surface is not None and (spec is None or spec.surface):
            self.surface(centre, sources)
        if hess is not None and not needs_hessian:
            self.drafts.append(hess)

    def directions(
        self, centre: Centre, chosen: list[int], hess: UnitDraft | None
    ) -> dict[int, tuple[Ref, str | None]]:
        """The input of each chosen direction (and the eigenvector it selects): mining units go out at once, the
        direction units of the centre after them (each measures its angles to the earlier ones)."""
        sources: dict[int, tuple[Ref, str | None]] = {}
        units: list[UnitDraft] = []
        for n in chosen:
            spec = self.table.directions[n]
            if spec.kind == "eigenvector":
                if hess is None:  # validate refuses it; a planner bug must not pass silently
                    raise ValueError(f"directions[{n}]: an eigenvector at centre {centre.name}, which has no hessian")
                sources[n] = (Ref(hess, "directions"), f"{spec.which}{spec.rank}")
            elif spec.kind in MINING_ALGORITHMS:
                draft = self.mining(centre, n, spec, hess)
                self.drafts.append(draft)
                sources[n] = (Ref(draft, "directions"), None)
            else:
                draft = self.direction(centre, n, spec, units)
                units.append(draft)
                sources[n] = (Ref(draft, "directions"), None)
        self.drafts += units
        return sources

    def mining(self, centre: Centre, n: int, spec: DirectionSpec, hess: UnitDraft | None) -> UnitDraft:
        params = mining_params(spec, hess is not None)
        inputs: dict[str, Input] = {"centre": centre.input}
        if hess is not None:
            inputs["eigen"] = Ref(hess, "directions")
        return UnitDraft("mining", params, inputs, f"{centre.name} dir={n} {spec.kind}({spec.seed})")

    def direction(self, centre: Centre, n: int, spec: DirectionSpec, earlier: list[UnitDraft]) -> UnitDraft:
        inputs: dict[str, Input] = {"centre": centre.input}
        inputs.update({f"other.{m}": Ref(d, "directions") for m, d in enumerate(earlier)})
        others = len(earlier)
        if spec.kind == "next_checkpoint":
            label = self.next_checkpoint(centre, n, inputs)
            params = DirectionParams(direction="to_mode", others=others)
        elif spec.kind == "to_mode":
            target = target_seed(spec, centre.seed, self.seeds)
            inputs["target"] = self.by_seed[target].id
            params = DirectionParams(direction="to_mode", others=others)
            label = f"{centre.name} dir={n} to_mode={target}"
        elif spec.kind == "gradient":
            params = DirectionParams(
                direction="gradient",
                normalisation=spec.normalisation,
                one_d=spec.one_d,
                examples=spec.examples,
                others=others,
            )
            label = f"{centre.name} dir={n} gradient"
        else:
            params = DirectionParams(
                direction="gaussian", seed=spec.seed, normalisation=spec.normalisation, one_d=spec.one_d, others=others
            )
            label = f"{centre.name} dir={n} gaussian({spec.seed})"
        return UnitDraft("direction", params, inputs, label)

    def next_checkpoint(self, centre: Centre, n: int, inputs: dict[str, Input]) -> str:
        """The target of a checkpoint centre's ``next_checkpoint`` direction: the next stored checkpoint (a centre
        unit of its own: its model and losses), or after the last one the trained mode. Returns the label."""
        spec = centre.spec
        assert spec is not None and spec.kind == "checkpoint" and spec.epoch is not None
        later = sorted(e for e in self.study.train.checkpoint_epochs if e > spec.epoch)
        seed = spec.centre_seed()
        mode = self.by_seed[seed]
        if not later:
            inputs["target"] = mode.id
            return f"{centre.name} dir={n} next_checkpoint=final"
        params = self.mode_of(seed)
        target = UnitDraft(
            "centre",
            CentreParams(source="checkpoint", epoch=later[0], seed=seed, model=params.model, data=params.data),
            {"a": mode.id},
            f"seed={seed}@epoch{later[0]}",
        )
        self.drafts.append(target)
        inputs["target"] = target
        return f"{centre.name} dir={n} next_checkpoint=epoch{later[0]}"

    def curves(self, centre: Centre, n: int, source: tuple[Ref, str | None]) -> None:
        """The curves of one direction: on [−1, 2] towards another model, else one per view scale."""
        from ...workers.landscape.scans import curve_lambdas

        table = self.table
        ref, prefix = source
        if table.directions[n].kind in WIDE_RANGE_KINDS:
            ranges = [(*W_BASIN_RANGE, w_basin_points(table.points))]
        else:
            ranges = [(curve_lambdas(s, table.points)[0], s, table.points) for s in table.scales]
        for lo, hi, count in ranges:
            params = ScanParams(
                shape="curve",
                lambda_min=lo,
                lambda_max=hi,
                points=count,
                select={"direction": prefix} if prefix else None,
                **self.scan,
            )
            label = f"{centre.name} dir={n} λ∈[{lo:g},{hi:g}]"
            self.drafts.append(UnitDraft("scan", params, {"centre": centre.input, "direction": ref}, label))

    def surface(self, centre: Centre, sources: dict[int, tuple[Ref, str | None]]) -> None:
        """The surface's shards at one centre."""
        from ...workers.landscape.scans import Grid, grid_shards

        sf = self.table.surface
        assert sf is not None
        grid = GridParams(
            x_min=sf.x_range[0],
            x_max=sf.x_range[1],
            x_points=sf.x_points,
            y_min=sf.y_range[0],
            y_max=sf.y_range[1],
            y_points=sf.y_points,
        )
        (rx, px), (ry, py) = (sources[i] for i in sf.directions)
        select = {k: v for k, v in (("x", px), ("y", py)) if v} or None
        for sh in grid_shards(Grid(**grid.model_dump()), *sf.shard):
            box = (sh.x_start, sh.x_stop, sh.y_start, sh.y_stop)
            params = ScanParams(shape="surface", grid=grid, shard=box, select=select, **self.scan)
            inputs: dict[str, Input] = {"centre": centre.input, "x": rx, "y": ry}
            self.drafts.append(UnitDraft("scan", params, inputs, f"{centre.name} shard={list(box)}"))


class LandscapeStageKind(StageKind):
    name = "landscape"
    Table = LandscapeStage
    unit_kinds = ("scan", "direction", "mining", "hessian", "centre", "angles")  # scan first: it summarises the stage
    input_output = None  # checked in validate: `from` gives modes, `centres` may name path stages
    needs_input_stage = True

    def inputs_of(self, table: Any) -> tuple[str, ...]:
        extra = [c.stage for c in getattr(table, "centres", []) if c.stage is not None]
        return tuple(dict.fromkeys([table.from_, *extra]))

    def validate(
        self, table: LandscapeStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        from ... import jobs

        if "final" not in jobs.stage_produces(jobs.get_stage_kind(stages[table.from_].kind)):
            return [("from", table.from_, "a stage whose units produce modes ('final'), e.g. of kind train")]
        problems: list[tuple[str, Any, str]] = []
        all_seeds = seeds_of(stages, table.from_, study)
        if table.seeds is not None:
            bad = [s for s in table.seeds if s not in all_seeds]
            if bad or len(set(table.seeds)) != len(table.seeds):
                problems.append(("seeds", table.seeds, f"distinct seeds of stage {table.from_!r}: {all_seeds}"))
        problems += centre_problems(table, study, stages, all_seeds)
        centres = [*(table.seeds if table.seeds is not None else all_seeds), *(c.centre_seed() for c in table.centres)]
        problems += direction_problems(table, all_seeds, centres)
        return problems + view_problems(table)

    def describe(self, table: LandscapeStage, study: StudyContext) -> list[str]:
        kinds = ", ".join(d.kind for d in table.directions)
        lines = [
            f"centres: modes of stage {table.from_!r} (seeds {table.seeds if table.seeds is not None else 'all'})"
            + "".join(f", {c.label()}" for c in table.centres)
            + f"; directions: {kinds}; curves at s = {table.scales}, {table.points} points; bn = {table.bn}"
        ]
        if table.surface is not None:
            sf = table.surface
            shards = math.ceil(sf.x_points / sf.shard[0]) * math.ceil(sf.y_points / sf.shard[1])
            lines.append(
                f"surface {sf.x_points} × {sf.y_points} on {list(sf.x_range)} × {list(sf.y_range)} in {shards} shards "
                "per centre"
            )
        if table.hessian is not None:
            h = table.hessian
            lines.append(
                f"hessian: k = {h.k} per {h.which}, trace by {h.trace_samples} samples, SLQ {h.slq_runs} run(s)"
            )
        if table.angles is not None:
            lines.append(f"angles between {table.angles.count} Gaussian directions at the first centre (Fig. 5)")
        return lines

    def count(self, table: LandscapeStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
        return count_landscape(table, study, inputs)

    def plan(self, table: LandscapeStage, study: StudyContext, view: PlanView) -> Plan:
        waiting = [s for s in self.inputs_of(table) if view.is_open(s)]
        if waiting:
            return Plan([], open=True, note=f"waiting for stage {', '.join(waiting)}")
        plan = LandscapePlan(table, study, view, view.units(table.from_))
        centres, skipped = plan.centres()
        if centres:
            plan.angles(centres[0])
        for centre in centres:
            plan.at_centre(centre)
        if len(plan.drafts) > study.max_units:
            raise ExpansionTooLarge(f"stage {view.stage}", len(plan.drafts), study.max_units)
        note = f"{len(plan.drafts)} units" + (
            f"; no path for centre(s) {', '.join(skipped)} (not computed by their stage)" if skipped else ""
        )
        return Plan(plan.drafts, note=note)
