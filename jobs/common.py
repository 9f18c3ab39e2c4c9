"""Param pieces shared by unit kinds: the data and model a unit works on, and the mode-training recipe.

The spec's ``[data]``, ``[model]`` and ``[train]`` sections are validated at the edge (``orchestrator/spec.py``) and
reach units as these typed objects; their canonical JSON is part of the unit ids.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer

from .base import UnitParams


class DataParams(UnitParams):
    """What of the data section is part of a unit's content (the root is not: data may move)."""

    dataset: str
    image_size: int | None = None  # imagefolder only

    @model_serializer(mode="wrap")
    def _drop_unset_size(self, handler) -> dict[str, Any]:
        out = handler(self)
        if out.get("image_size") is None:
            out.pop("image_size", None)
        return out


class ModelParams(UnitParams):
    name: str = "small_cnn"


class TrainRecipe(UnitParams):
    """The mode-training recipe (the shape of LLPF Table 3); the spec's ``[train]`` section."""

    optimizer: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = Field(default=0.01, gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = Field(default=64, ge=1, le=1 << 20)
    epochs: int = Field(default=10, ge=1, le=100000)
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"
    max_lr: float = Field(default=0.1, gt=0, le=10)
    pct_start: float = Field(default=0.3, gt=0, lt=1)
    warmup_epochs: float = Field(default=0.0, ge=0)
    warmup_lr: float = Field(default=1e-5, ge=0)
    min_lr: float = Field(default=1e-5, ge=0)
    cooldown_epochs: float = Field(default=0.0, ge=0)
    augment: bool = True
    eval_every: int = Field(default=1, ge=1, description="evaluate train/test loss every N epochs")
    segment_steps: int = Field(default=500, ge=1, description="training steps per committed segment")
    precision: Literal["fp32", "tf32", "bf16"] | None = Field(
        default=None, description="fp32 (unset), tf32 (CUDA matmuls/convs), bf16 (autocast forward passes)"
    )

    @model_serializer(mode="wrap")
    def _drop_unset_precision(self, handler) -> dict[str, Any]:
        out = handler(self)
        if out.get("precision") is None:
            out.pop("precision", None)  # unset: the recipe's content (and the ids) of before the setting existed
        return out


class ModeParams(UnitParams):
    """The params every mode-producing unit has: which seed, model and data (later stages pair modes by seed)."""

    seed: int
    model: ModelParams
    data: DataParams


def load_data(ctx, data: DataParams):
    """The unit's dataset, on its device."""
    from lowloss.workers.data import load_dataset

    return load_dataset(data.dataset, ctx.data_root, data.image_size).to(ctx.device)


def build_for(model: ModelParams, dataset, device):
    """The unit's model for this dataset, on its device."""
    from lowloss.workers.models import build_model

    return build_model(model.name, dataset.num_classes, dataset.in_channels, dataset.image_size).to(device)


def mode_data_problem(study_data: dict, data_root: str | None) -> str | None:
    from lowloss.workers.data import check_data_root

    return check_data_root(study_data["dataset"], data_root)
