"""The ``compare`` stage table and a path evaluation's params."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from ..base import StageParams, UnitParams

METHOD_OF_STAGE = {"interpolate": "linear", "m2m": "llpf", "autoneb": "autoneb"}
METHODS = ("linear", "llpf", "autoneb")


class CompareStage(StageParams):
    from_: Union[str, list[str]] = Field(alias="from", description="interpolate, m2m and/or autoneb stages")
    pairs: Literal["common", "all"] = Field(
        default="common", description="common: the pairs every method connected; all: every pair of each method"
    )
    bn: Literal["UpBN", "NoUpBN"] = Field(default="UpBN", description="BatchNorm policy at every point")
    line_points: int = Field(default=21, ge=2, le=10001, description="points on the straight line, ends included")
    points_between: int = Field(default=9, ge=0, le=1000, description="points between neighbouring AutoNEB pivots")
    llpf_points_between: int = Field(
        default=0, ge=0, le=1000, description="points between neighbouring stored LLPF points (0: the stored ones)"
    )
    eval_batch_size: int = Field(default=1024, ge=1, le=1 << 20, description="examples per evaluation batch")


class PathEvalParams(UnitParams):
    method: Literal["linear", "llpf", "autoneb"]
    pair: tuple[int, int]
    bn: Literal["UpBN", "NoUpBN"]
    points_between: int = Field(ge=0)
    eval_batch_size: int = Field(ge=1)
