"""The ``train`` stage table and a train unit's params."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from ..base import ModeParams, StageParams, TrainRecipe

MEMBER_OUTPUT = "member.{seed}"  # the tensor set of a group leader holding one other member's mode


class TrainStage(StageParams):
    seeds: list[int] | None = Field(default=None, description="seeds of this stage; default: study.seeds")
    vectorize: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="train K seeds as one batched model (torch.func.vmap); 1 or unset: each seed alone",
    )


class TrainParams(ModeParams):
    """A mode's training. With ``vectorize`` set, the unit is one seed of a group of up to K seeds trained together:
    the group's *leader* (its first seed; ``group`` lists the group's seeds) trains them all as one batched model,
    each other *member* takes its mode, rows and result from the leader (input ``group``)."""

    recipe: TrainRecipe
    vectorize: int | None = None
    group: list[int] | None = None  # the leader's only: the seeds trained together, itself first

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        for key in ("vectorize", "group"):
            if out.get(key) is None:
                out.pop(key, None)  # unset: the unit's content (and id) is that of a plain train unit
        return out
