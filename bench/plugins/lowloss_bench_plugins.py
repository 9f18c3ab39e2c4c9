"""Trivial kinds for the executor and planning benchmarks (no torch): ``noop`` units write one segment and commit;
a ``noop_chain`` stage plans, for each finished unit of its input stage, one unit that reads it (a planner that
adds units as results arrive, like the AutoNEB exploration)."""

from __future__ import annotations

from pydantic import Field

from lowloss.jobs import (
    Plan,
    Resources,
    SimpleStage,
    StageKind,
    StageParams,
    UnitDraft,
    UnitKind,
    UnitParams,
    register_kind,
)


class NoopStage(StageParams):
    count: int = 1000


class NoopParams(UnitParams):
    i: int


class NoopUnit(UnitKind):
    name = "noop"
    Params = NoopParams
    needs_torch = False
    default_resources = Resources(cpus=1, mem_gb=0.5, time_min=10, resource_class="noop")

    def run(self, ctx, p):
        ctx.write_segment(0, {"rows": [{"i": p.i}]})
        ctx.commit({"i": p.i})


class NoopStageKind(SimpleStage):
    name = "noop"
    Table = NoopStage
    unit_kinds = ("noop",)

    def drafts(self, table, study, view):
        return [UnitDraft("noop", NoopParams(i=i), {}, f"i={i}") for i in range(table.count)]


class ChainStage(StageParams):
    from_: str = Field(alias="from")
    every: int = Field(default=10, ge=1, description="one follower per this many finished input units")


class NoopChainStageKind(StageKind):
    """Dynamic: a follower unit for every ``every``-th input unit, planned as soon as that unit is committed. It plans
    incrementally (only the new followers; the planner keeps the earlier ones), so a call costs O(1) amortized."""

    name = "noop_chain"
    Table = ChainStage
    unit_kinds = ("noop",)
    needs_input_stage = True

    def plan(self, table, study, view):
        inputs, drafts = view.units(table.from_), []
        index = len(view.units()) * table.every  # the next input unit to follow
        while index < len(inputs) and view.result(inputs[index].id) is not None:
            u = inputs[index]
            drafts.append(
                UnitDraft("noop", NoopParams(i=-1 - u.params_as(NoopParams).i), {"after": u.id}, f"after={u.label}")
            )
            index += table.every
        return Plan(drafts, open=view.is_open(table.from_) or index < len(inputs))


register_kind(NoopUnit())
register_kind(NoopStageKind())
register_kind(NoopChainStageKind())
