"""Stage kinds and unit kinds: the middle floor, one package per method (``train``, ``pretrained``, ``interpolate``,
``llpf``, ``autoneb``, ``compare``, ``landscape``), each holding its kinds, its figures and its recipes. The
orchestrator reaches the science only through the kind interface (``base``) and the registry (``registry``).

Third-party kinds come through the ``lowloss.kinds`` entry-point group of an installed package, or for development
through modules named in the ``LOWLOSS_PLUGINS`` environment variable (workers inherit it, so they see them too).
"""

from __future__ import annotations

import importlib

if __name__ != "lowloss.jobs":  # a checkout's folder imported bare: its relative imports would not resolve
    raise ImportError(f"import lowloss.jobs, not {__name__} (install lowloss: pip install .)")

from .base import (  # noqa: E402
    PLANS_LATER,
    DataParams,
    ExpansionTooLarge,
    Figure,
    Metric,
    ModelParams,
    ModeParams,
    Plan,
    PlannedUnit,
    PlanView,
    Ref,
    Resources,
    SimpleStage,
    StageCount,
    StageInfo,
    StageKind,
    StageParams,
    StudyContext,
    TrainRecipe,
    UnitContext,
    UnitDraft,
    UnitKind,
    UnitParams,
    Verdict,
)
from .catalog import (  # noqa: E402
    dataset_names,
    embedded_dataset_names,
    input_shape,
    model_input_problem,
    model_names,
    recipe_description,
    recipes,
)
from .registry import BUILT_IN, REGISTRY, DuplicateKind, KindError, UnknownKind, plugin_modules, register_kind  # noqa: E402

BUILTIN = ("train", "pretrained", "interpolate", "llpf", "autoneb", "compare", "landscape")


def _register_builtin() -> None:
    for package in BUILTIN:
        for kind in importlib.import_module(f"{__name__}.{package}").KINDS:
            REGISTRY.register(kind, BUILT_IN)


_register_builtin()
REGISTRY.load_entry_points()
REGISTRY.load_modules(plugin_modules())


def get_kind(name: str) -> UnitKind:
    """The unit kind ``name`` (``UnknownKind`` lists the known ones)."""
    return REGISTRY.unit(name)


def get_stage_kind(name: str) -> StageKind:
    """The stage kind ``name`` (``UnknownKind`` lists the known ones)."""
    return REGISTRY.stage(name)


def unit_kinds() -> dict[str, UnitKind]:
    return REGISTRY.units()


def stage_kinds(builtin_only: bool = False) -> dict[str, StageKind]:
    return REGISTRY.stages(builtin_only)


def stage_kind_names() -> list[str]:
    """The kind names a stage table may use."""
    return sorted(REGISTRY.stages())


def stage_produces(stage_kind: StageKind) -> set[str]:
    """The outputs every unit of a stage of this kind commits (what a later stage's `from` may rely on)."""
    units = REGISTRY.units()
    outs = [set(units[k].outputs) for k in stage_kind.unit_kinds if k in units]
    return set.intersection(*outs) if outs else set()


__all__ = [
    "PLANS_LATER",
    "DataParams",
    "DuplicateKind",
    "ExpansionTooLarge",
    "Figure",
    "KindError",
    "Metric",
    "ModeParams",
    "ModelParams",
    "Plan",
    "PlanView",
    "PlannedUnit",
    "Ref",
    "Resources",
    "SimpleStage",
    "StageCount",
    "StageInfo",
    "StageKind",
    "StageParams",
    "StudyContext",
    "TrainRecipe",
    "UnitContext",
    "UnitDraft",
    "UnitKind",
    "UnitParams",
    "UnknownKind",
    "Verdict",
    "dataset_names",
    "embedded_dataset_names",
    "get_kind",
    "get_stage_kind",
    "input_shape",
    "model_input_problem",
    "model_names",
    "recipe_description",
    "recipes",
    "register_kind",
    "stage_kind_names",
    "stage_kinds",
    "stage_produces",
    "unit_kinds",
]
