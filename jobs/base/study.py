"""The study-wide sections every kind reads — the data and model a unit works on and the mode-training recipe — and the
``StudyContext`` a stage is planned in.

The spec's ``[data]``, ``[model]`` and ``[train]`` sections are validated once at the edge (``orchestrator/spec``) and
reach the kinds as these typed objects; their canonical JSON is part of the unit ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, model_serializer, model_validator

from .params import UnitParams


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
    name: str = Field(
        default="small_cnn", description="the architecture (`lowloss validate` and the error of a wrong name list them)"
    )


class TrainRecipe(UnitParams):
    """The mode-training recipe (the shape of LLPF Table 3); the spec's ``[train]`` section."""

    optimizer: Literal["sgd", "adamw", "adam"] = Field(
        default="sgd", description="sgd, adam or adamw (torch.optim, element by element)"
    )
    lr: float = Field(
        default=0.01,
        gt=0,
        le=10,
        description="the base learning rate of the constant, cosine and step schedules (onecycle reads max_lr)",
    )
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd: momentum")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="L2 weight decay (decoupled for adamw)")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="adam/adamw: the moment decay rates")
    batch_size: int = Field(default=64, ge=1, le=1 << 20, description="examples per optimizer step")
    epochs: int = Field(default=10, ge=1, le=100000, description="passes over the training set")
    schedule: Literal["constant", "onecycle", "cosine", "step"] = Field(
        default="constant",
        description="the learning-rate schedule: constant, onecycle (PyTorch OneCycleLR from max_lr), cosine "
        "(timm-style, with warm-up and cool-down) or step (decay_factor at each of decay_steps)",
    )
    max_lr: float = Field(default=0.1, gt=0, le=10, description="onecycle: the peak rate (it starts at max_lr/25)")
    pct_start: float = Field(default=0.3, gt=0, lt=1, description="onecycle: the share of steps rising to max_lr")
    warmup_epochs: float = Field(default=0.0, ge=0, description="cosine: epochs of linear warm-up from warmup_lr")
    warmup_lr: float = Field(default=1e-5, ge=0, description="cosine: the rate the warm-up starts at")
    min_lr: float = Field(default=1e-5, ge=0, description="cosine: the rate the decay ends at")
    cooldown_epochs: float = Field(default=0.0, ge=0, description="cosine: epochs at min_lr after the decay")
    augment: bool = Field(
        default=True,
        description="the dataset's training augmentation (LLPF Table 4: MNIST rotations and crops, CIFAR crops and "
        "flips; digits has none)",
    )
    eval_every: int = Field(default=1, ge=1, description="evaluate train/test loss every N epochs")
    segment_steps: int = Field(default=500, ge=1, description="training steps per committed segment")
    # Fields added after the first release: left out of the canonical JSON while at their defaults (LATER_DEFAULTS),
    # so the ids of units written before them do not change.
    decay_steps: list[int] = Field(
        default_factory=list, description="step schedule: lr × decay_factor at each of these optimizer steps"
    )
    decay_factor: float = Field(default=0.1, gt=0, le=1, description="step schedule: the factor of each decay")
    nesterov: bool = Field(default=False, description="sgd: Nesterov momentum")
    checkpoint_epochs: list[int] = Field(
        default_factory=list,
        description="store the model after these epochs as points (point:<epoch × steps per epoch>): centres of "
        "landscape scans at a training checkpoint (Xu et al. §3.2); [] (the default) stores none",
    )
    precision: Literal["fp32", "tf32", "bf16"] | None = Field(
        default=None, description="fp32 (unset), tf32 (CUDA matmuls/convs), bf16 (autocast forward passes)"
    )
    LATER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "decay_steps": [],
        "decay_factor": 0.1,
        "nesterov": False,
        "checkpoint_epochs": [],
        "precision": None,
    }

    # The fields only some choices read (jobs/train.py's _optimizer and _schedule, workers/training.py's Schedule):
    # field -> (the field choosing, the values of it that read the field). onecycle sets every step's rate from
    # max_lr (starting at max_lr/25), so it never reads lr.
    READ_ONLY_BY: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "lr": ("schedule", ("constant", "cosine", "step")),
        "max_lr": ("schedule", ("onecycle",)),
        "pct_start": ("schedule", ("onecycle",)),
        "warmup_epochs": ("schedule", ("cosine",)),
        "warmup_lr": ("schedule", ("cosine",)),
        "min_lr": ("schedule", ("cosine",)),
        "cooldown_epochs": ("schedule", ("cosine",)),
        "decay_steps": ("schedule", ("step",)),
        "decay_factor": ("schedule", ("step",)),
        "momentum": ("optimizer", ("sgd",)),
        "nesterov": ("optimizer", ("sgd",)),
        "betas": ("optimizer", ("adam", "adamw")),
    }

    def unread(self, fields) -> list[tuple[str, str, tuple[str, ...]]]:
        """Those of ``fields`` whose value this recipe never reads, in field order: (field, why, the fields whose
        values make it unread). Every field is part of the unit ids, so an unread one set to another value names
        the same work differently."""
        out: list[tuple[str, str, tuple[str, ...]]] = []
        for field in type(self).model_fields:
            if field not in fields or field not in self.READ_ONLY_BY:
                continue
            chooser, readers = self.READ_ONLY_BY[field]
            chosen = getattr(self, chooser)
            if chosen not in readers:
                those = "that" if len(readers) == 1 else "one of those"
                named = ", ".join(repr(r) for r in readers[:-1]) + (" or " if len(readers) > 1 else "")
                named += repr(readers[-1])
                note = " sets every step's rate from max_lr" if field == "lr" else ""
                out.append(
                    (
                        field,
                        f"only {chooser} = {named} uses it ({chooser} = {chosen!r}{note}); remove it or choose {those} "
                        f"{chooser}{'' if len(readers) == 1 else 's'}",
                        (chooser,),
                    )
                )
            elif field == "warmup_lr" and self.warmup_epochs == 0:
                out.append(
                    (
                        field,
                        f"read only during the warm-up (warmup_epochs = {self.warmup_epochs}); remove it or set "
                        "warmup_epochs > 0",
                        ("schedule", "warmup_epochs"),
                    )
                )
        return out

    @model_validator(mode="after")
    def _later_fields(self):
        if self.decay_steps != sorted(set(self.decay_steps)) or any(s < 1 for s in self.decay_steps):
            raise ValueError(f"decay_steps = {self.decay_steps}: increasing step counts ≥ 1 are needed")
        if self.schedule == "step" and not self.decay_steps:
            raise ValueError("schedule = 'step' needs decay_steps (the optimizer steps at which lr is decayed)")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov = true needs optimizer = 'sgd' with momentum > 0")
        bad = [e for e in self.checkpoint_epochs if not 1 <= e <= self.epochs]
        if bad or len(set(self.checkpoint_epochs)) != len(self.checkpoint_epochs):
            raise ValueError(
                f"checkpoint_epochs = {self.checkpoint_epochs}: distinct epochs in 1..{self.epochs} (epochs) are needed"
            )
        return self

    @model_serializer(mode="wrap")
    def _drop_later_fields_at_their_defaults(self, handler) -> dict[str, Any]:
        out = handler(self)
        for key, default in self.LATER_DEFAULTS.items():
            if key in out and out[key] == default:
                out.pop(key)
        return out


class ModeParams(UnitParams):
    """The params every mode-producing unit has: which seed, model and data (later stages pair modes by seed)."""

    seed: int
    model: ModelParams
    data: DataParams


@dataclass(frozen=True)
class StudyContext:
    """The study-wide sections a stage is planned in (typed, as the spec validated them), and the expansion bound."""

    seeds: tuple[int, ...]
    data: DataParams
    model: ModelParams
    train: TrainRecipe
    max_units: int = 200_000
