"""Unit kinds used only by the tests, loaded through the LOWLOSS_PLUGINS mechanism users have for their own kinds."""
from __future__ import annotations

from pydantic import Field

from lowloss.jobs import Kind, Metric, StageParams, UnitDraft, register_kind


class CrashyStage(StageParams):
    seeds: list[int] = [0]
    fail_attempts: int = Field(default=1, ge=0, description="attempts that raise before one succeeds")


class CrashyKind(Kind):
    """Raises inside the unit on its first ``fail_attempts`` attempts, then commits a tiny result."""

    name = "crashy"
    Params = CrashyStage
    metrics = (Metric("value", "value"),)

    def expand(self, params, study, upstream):
        return [UnitDraft(self.name, {"seed": s, "fail_attempts": params.fail_attempts}, {}, f"seed={s}")
                for s in params.seeds]

    def run(self, ctx):
        ctx.write_segment(0, {"rows": [{"attempt_seen": 0, "seed": ctx.params["seed"]}]})
        if ctx.attempt <= ctx.params["fail_attempts"]:
            raise RuntimeError(f"boom on attempt {ctx.attempt}")
        ctx.commit({"value": float(ctx.params["seed"])})


register_kind(CrashyKind())
