"""The ``interpolate`` stage table and an interpolation unit's params."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from ..base import StageParams, UnitParams
from ..common.pairs import PairStrategy


class InterpolateStage(StageParams):
    from_: str = Field(alias="from", description="the stage whose modes are paired")
    pairs: PairStrategy = Field(
        default="consecutive",
        description="which pairs of modes are joined by a line: consecutive, all, to_best (each to the lowest-loss "
        "mode, planned once all are done), {random = K, seed = S}, or a list of seed pairs",
    )
    points: int = Field(default=11, ge=2, le=10001, description="points on the line, both ends included")
    reestimate_bn: bool = Field(
        default=True,
        description="BatchNorm statistics re-estimated on the training set at each point (UpBN); false keeps the "
        "interpolated ones (NoUpBN)",
    )
    vectorize: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="evaluate K points of a line at once, as one batched model (torch.func.vmap); unset: one by one",
    )


class InterpolateParams(UnitParams):
    pair: tuple[int, int]
    points: int = Field(ge=2)
    reestimate_bn: bool = True
    vectorize: int | None = None  # K points per batched evaluation (and per segment); part of the id when set

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if out.get("vectorize") is None:
            out.pop("vectorize", None)  # unset: the unit's content (and id) is that of before the setting existed
        return out
