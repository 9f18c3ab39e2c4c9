"""A trivial unit kind for executor benchmarks: writes one segment and commits (no torch)."""
from __future__ import annotations

from lowloss.jobs import Kind, Resources, StageParams, UnitDraft, register_kind


class NoopStage(StageParams):
    count: int = 1000


class NoopKind(Kind):
    name = "noop"
    Params = NoopStage
    needs_torch = False
    resources = Resources(cpus=1, mem_gb=0.5, time_min=10, resource_class="noop")

    def expand(self, params, study, upstream):
        return [UnitDraft(self.name, {"i": i}, {}, f"i={i}") for i in range(params.count)]

    def run(self, ctx):
        ctx.write_segment(0, {"rows": [{"i": ctx.params["i"]}]})
        ctx.commit({"i": ctx.params["i"]})


register_kind(NoopKind())
