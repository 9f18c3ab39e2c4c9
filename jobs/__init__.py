"""Stage kinds and unit kinds: the middle floor. The orchestrator reaches the science only through the registries
(``STAGE_KINDS``/``get_stage_kind`` for stage tables, ``KINDS``/``get_kind`` for units).

Extra kinds can be registered by modules named in the ``LOWLOSS_PLUGINS`` environment variable (comma-separated
import paths); each such module calls ``register_kind``. Workers inherit the environment, so they see them too.
"""

from __future__ import annotations

import importlib
import os

from .base import (
    ExpansionTooLarge,
    Figure,
    Metric,
    Plan,
    PlannedUnit,
    PlanView,
    Ref,
    Resources,
    SimpleStage,
    StageInfo,
    StageKind,
    StageParams,
    StudyContext,
    UnitContext,
    UnitDraft,
    UnitKind,
    UnitParams,
    Upstream,
    UpstreamUnit,
    Verdict,
)

KINDS: dict[str, UnitKind] = {}  # unit kinds by name
STAGE_KINDS: dict[str, StageKind] = {}  # stage kinds by name (what a [[stages]] table's `kind` names)


def register_kind(kind: UnitKind | StageKind):
    """Register a unit kind or a stage kind (plugins call this for their own kinds)."""
    if isinstance(kind, StageKind):
        STAGE_KINDS[kind.name] = kind
    elif isinstance(kind, UnitKind):
        KINDS[kind.name] = kind
    else:
        raise TypeError(f"{kind!r} is neither a UnitKind nor a StageKind")
    return kind


def _register_builtin() -> None:
    from .autoneb.kinds import AutoNEBEdgeUnit, AutoNEBStageKind
    from .compare.kinds import CompareStageKind, PathEvalUnit
    from .interpolate.kinds import InterpolateStageKind, InterpolateUnit
    from .landscape.kinds import (
        AnglesUnit,
        CentreUnit,
        DirectionUnit,
        HessianUnit,
        LandscapeStageKind,
        MiningUnit,
        ScanUnit,
    )
    from .llpf.kinds import M2MPhaseUnit, M2MStageKind, M2OStageKind, M2OUnit
    from .pretrained.kinds import PretrainedStageKind, PretrainedUnit
    from .train.kinds import TrainStageKind, TrainUnit

    for cls in (
        TrainUnit,
        PretrainedUnit,
        InterpolateUnit,
        M2MPhaseUnit,
        M2OUnit,
        AutoNEBEdgeUnit,
        PathEvalUnit,
        DirectionUnit,
        ScanUnit,
        HessianUnit,
        MiningUnit,
        CentreUnit,
        AnglesUnit,
        TrainStageKind,
        PretrainedStageKind,
        InterpolateStageKind,
        M2MStageKind,
        M2OStageKind,
        AutoNEBStageKind,
        CompareStageKind,
        LandscapeStageKind,
    ):
        register_kind(cls())


def _load_plugins() -> None:
    for name in filter(None, (s.strip() for s in os.environ.get("LOWLOSS_PLUGINS", "").split(","))):
        importlib.import_module(name)


_register_builtin()
_load_plugins()


def get_kind(name: str) -> UnitKind:
    """The unit kind ``name``."""
    return KINDS[name]


def get_stage_kind(name: str) -> StageKind:
    return STAGE_KINDS[name]


def stage_kind_names() -> list[str]:
    """The kind names a stage table may use."""
    return sorted(STAGE_KINDS)


def stage_produces(stage_kind: StageKind) -> set[str]:
    """The outputs every unit of a stage of this kind commits (what a later stage's `from` may rely on)."""
    outs = [set(KINDS[k].outputs) for k in stage_kind.unit_kinds if k in KINDS]
    return set.intersection(*outs) if outs else set()


__all__ = [
    "KINDS",
    "STAGE_KINDS",
    "ExpansionTooLarge",
    "Figure",
    "Metric",
    "Plan",
    "PlannedUnit",
    "PlanView",
    "Ref",
    "Resources",
    "SimpleStage",
    "StageInfo",
    "StageKind",
    "StageParams",
    "StudyContext",
    "UnitContext",
    "UnitDraft",
    "UnitKind",
    "UnitParams",
    "Upstream",
    "UpstreamUnit",
    "Verdict",
    "get_kind",
    "get_stage_kind",
    "register_kind",
    "stage_kind_names",
    "stage_produces",
]


def model_input_problem(model_name: str, data: dict) -> str | None:
    """Why this model cannot take this dataset's inputs (a forward pass of one example), or None."""
    import torch

    from ..workers.data import DATASET_SHAPES
    from ..workers.models import build_model

    channels, size, classes = DATASET_SHAPES[data["dataset"]]
    size = data.get("image_size", size)
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = build_model(model_name, classes, channels, size).eval()
            model(torch.zeros(1, channels, size, size))
    except Exception as exc:
        return (
            f"does not fit {data['dataset']} inputs ({channels}×{size}×{size}): {str(exc).splitlines()[0]}; "
            f"pick a model for that size (small_cnn/mlp: any; lenet5: 28×28; *_cifar: 32×32; resnet18: ImageNet)"
        )
    return None


def model_names() -> list[str]:
    from ..workers.models import model_names as names

    return names()


def dataset_names() -> tuple[str, ...]:
    from ..workers.data import DATASETS

    return DATASETS


RECIPE_PACKAGES = ("interpolate", "llpf", "autoneb", "compare", "landscape")  # methods shipping recipes/*.toml


def recipes() -> dict:
    """The ready-made spec files by name (the papers' appendix tables and the embedded default): the ``recipes/``
    folder beside each method's kinds, shipped in the wheel."""
    from importlib.resources import files
    from pathlib import Path

    found: dict[str, Path] = {}
    for package in RECIPE_PACKAGES:
        folder = Path(str(files(f"{__name__}.{package}"))) / "recipes"
        for path in sorted(folder.glob("*.toml")):
            if path.stem in found:
                raise RuntimeError(f"recipe {path.stem!r} is shipped twice: {found[path.stem]} and {path}")
            found[path.stem] = path
    return dict(sorted(found.items()))
