"""LLPF stage kinds: ``m2m`` plans, for every pair of modes, one ``m2m_phase`` unit per phase — phase k starts from
phase k−1's end point, so a pair's phases chain in the unit graph while the pairs run in parallel; ``m2o`` plans one
model-to-origin path per mode."""

from __future__ import annotations

from typing import Any

from ..base import (
    Plan,
    PlanView,
    StageCount,
    StageInfo,
    StageKind,
    StudyContext,
    UnitDraft,
    canonical_without,
    count_key,
)
from ..catalog import input_shape
from ..common.modes import seed_of, seeds_of
from ..common.pairs import STRATEGY_HELP, check_pair_count, check_pairs, count_pairs, mode_pairs
from .params import (
    M2MPhaseParams,
    M2MSettings,
    M2MStage,
    M2OParams,
    M2OSettings,
    M2OStage,
    PhaseMoves,
    PhaseSpec,
    TrainRule,
)


def phase_patterns(phases: list[PhaseSpec]) -> list[list[str]]:
    """The tensor patterns each phase moves (``add``: the previous phase's plus these)."""
    out: list[list[str]] = []
    for ph in phases:
        if ph.layers is not None:
            out.append(list(ph.layers))
        else:
            out.append((out[-1] if out else []) + list(ph.add or []))
    return out


def model_state_names(study: StudyContext, movable_only: bool = False) -> list[str]:
    """The state tensor names of the study's model (``movable_only``: its floating-point ones)."""
    from ...workers.models import build_model

    channels, size, classes = input_shape(study.data)
    state = build_model(study.model.name, classes, channels, size).state_dict()
    return [n for n, t in state.items() if t.is_floating_point() or not movable_only]


def phase_grouping(stage: M2MStage, phase: PhaseSpec) -> bool | None:
    """A phase's own group_weight_bias, else its stage's (None: neither says)."""
    return stage.group_weight_bias if phase.group_weight_bias is None else phase.group_weight_bias


def group_weight_bias(setting: bool | None, reference_quirks: bool) -> bool:
    """A phase's weight+bias grouping: its own setting when given, else what reference_quirks says."""
    return bool(reference_quirks) if setting is None else bool(setting)


class M2MStageKind(StageKind):
    name = "m2m"
    Table = M2MStage
    unit_kinds = ("m2m_phase",)
    input_output = "final"
    needs_input_stage = True

    def validate(
        self, table: M2MStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        problem = check_pairs(table.pairs, seeds_of(stages, table.from_, study))
        if problem:
            return [("pairs", table.pairs, f"{STRATEGY_HELP}; {problem}")]
        from ...workers.llpf import select_tensors

        names = model_state_names(study)
        for i, patterns in enumerate(phase_patterns(table.phases)):
            try:
                select_tensors(names, patterns)
            except ValueError as exc:
                field = f"phases[{i}].{'layers' if table.phases[i].layers is not None else 'add'}"
                why = f"{str(exc).split(' (names look like')[0]}; tensors of {study.model.name}: {', '.join(names)}"
                return [(field, patterns, why)]
        return []

    def describe(self, table: M2MStage, study: StudyContext) -> list[str]:
        from ...workers.llpf import select_tensors

        names = model_state_names(study, movable_only=True)  # num_batches_tracked never moves
        lines = []
        for i, patterns in enumerate(phase_patterns(table.phases)):
            chosen = select_tensors(names, patterns)
            shown = ", ".join(chosen[:8]) + (f", … ({len(chosen)} tensors)" if len(chosen) > 8 else "")
            grouped = group_weight_bias(phase_grouping(table, table.phases[i]), table.reference_quirks)
            lines.append(
                f"phase {i + 1}/{len(table.phases)} ({table.phases[i].iterations} iterations) moves "
                f"{len(chosen)} of {len(names)} tensors"
                + (" (each layer's weight and bias as one vector)" if grouped else "")
                + f": {shown}"
            )
        return lines

    def count(self, table: M2MStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
        """A chain of phases per pair; chains whose first phases differ share no unit."""
        (first, *_) = _phase_params(table, phase_patterns(table.phases), (0, 0))
        what = f"pairs = {table.pairs!r} × {len(table.phases)} phases"
        shared = canonical_without(first, "pair")
        return count_pairs(table.pairs, inputs[table.from_], len(table.phases), study.max_units, what, "m2m", shared)

    def plan(self, table: M2MStage, study: StudyContext, view: PlanView) -> Plan:
        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        modes = view.units(table.from_)
        what = f"stage {view.stage}: pairs = {table.pairs!r} × {len(table.phases)} phases"
        check_pair_count(table.pairs, len(modes), len(table.phases), study.max_units, what)
        pairs = mode_pairs(table.pairs, table.from_, view)
        if pairs is None:
            return Plan([], open=True, note=f"to_best: waiting for the {len(modes)} modes")
        patterns = phase_patterns(table.phases)
        drafts = []
        for a, b in pairs:
            previous: str | UnitDraft = a.id
            for k, params in enumerate(_phase_params(table, patterns, (seed_of(a), seed_of(b)))):
                # phase k+1 starts where phase k ends: an input may name a draft of this plan call
                label = f"pair={seed_of(a)}-{seed_of(b)} phase={k + 1}"
                draft = UnitDraft("m2m_phase", params, {"p0": a.id, "dest": b.id, "start": previous}, label)
                drafts.append(draft)
                previous = draft
        return Plan(drafts)


class M2OStageKind(StageKind):
    name = "m2o"
    Table = M2OStage
    unit_kinds = ("m2o",)
    input_output = "final"
    needs_input_stage = True

    def validate(
        self, table: M2OStage, study: StudyContext, stages: dict[str, StageInfo]
    ) -> list[tuple[str, Any, str]]:
        if table.seeds is not None:
            known = set(seeds_of(stages, table.from_, study))
            bad = [s for s in table.seeds if s not in known]
            if bad:
                return [("seeds", table.seeds, f"seeds of stage {table.from_!r}: {sorted(known)}; {bad} are not")]
        return []

    def count(self, table: M2OStage, study: StudyContext, inputs: dict[str, StageCount]) -> StageCount | None:
        """One path per chosen mode."""
        modes = inputs[table.from_]
        if modes.seeds is None:
            return None
        chosen = len(modes.seeds) if table.seeds is None else len(set(table.seeds) & set(modes.seeds))
        common = {name: getattr(table, name) for name in M2OSettings.model_fields}
        shared = canonical_without(M2OParams(**common, seed=0), "seed")
        return StageCount(((count_key("m2o", shared, modes.key), chosen),))

    def plan(self, table: M2OStage, study: StudyContext, view: PlanView) -> Plan:
        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        common = {name: getattr(table, name) for name in M2OSettings.model_fields}
        drafts = []
        for mode in view.units(table.from_):
            seed = seed_of(mode)
            if table.seeds is None or seed in table.seeds:
                inputs = {"p0": mode.id, "start": mode.id}
                drafts.append(UnitDraft("m2o", M2OParams(**common, seed=seed), dict(inputs), f"seed={seed}"))
        return Plan(drafts)


def _phase_params(table: M2MStage, patterns: list[list[str]], pair: tuple[int, int]) -> list[M2MPhaseParams]:
    """The params of a pair's phases, in order."""
    common = {name: getattr(table, name) for name in M2MSettings.model_fields}
    chain = []
    for k, phase in enumerate(table.phases):
        moves = {name: getattr(phase, name) for name in (*TrainRule.model_fields, *PhaseMoves.model_fields)}
        params = M2MPhaseParams(
            **{**common, "group_weight_bias": phase_grouping(table, phase)},
            **moves,
            pair=pair,
            phase=k + 1,
            phases=len(table.phases),
            patterns=patterns[k],
        )
        chain.append(params)
    return chain
