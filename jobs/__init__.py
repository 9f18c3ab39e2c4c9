"""Unit kinds: the middle floor. The orchestrator reaches the science only through ``get_kind``/``KINDS``.

Extra kinds can be registered by modules named in the ``LOWLOSS_PLUGINS`` environment variable (comma-separated
import paths); each such module calls ``register_kind``. Workers inherit the environment, so they see them too.
"""
from __future__ import annotations

import importlib
import os

from .base import (Figure, Kind, Metric, Resources, StageInfo, StageParams, StudyContext, UnitContext, UnitDraft, Upstream,
                   UpstreamUnit, Verdict)

KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    for alias in getattr(kind, "aliases", ()):
        KINDS[alias] = kind
    return kind


def _register_builtin() -> None:
    from .interpolate import InterpolateKind
    from .llpf import M2MPhaseKind, M2OKind
    from .pretrained import PretrainedKind
    from .train import TrainKind

    for cls in (TrainKind, PretrainedKind, InterpolateKind, M2MPhaseKind, M2OKind):
        register_kind(cls())


def _load_plugins() -> None:
    for name in filter(None, (s.strip() for s in os.environ.get("LOWLOSS_PLUGINS", "").split(","))):
        importlib.import_module(name)


_register_builtin()
_load_plugins()


def get_kind(name: str) -> Kind:
    return KINDS[name]


__all__ = ["KINDS", "Figure", "Verdict", "Kind", "Metric", "Resources", "StageInfo", "StageParams", "StudyContext", "UnitContext",
           "UnitDraft", "Upstream", "UpstreamUnit", "get_kind", "register_kind"]


def stage_kind_names() -> list[str]:
    """The kind names a stage table may use (a kind with aliases is named by them: `m2m` for `m2m_phase` units)."""
    return sorted({alias for k in KINDS.values() for alias in (getattr(k, "aliases", ()) or (k.name,))})


def model_input_problem(model_name: str, data: dict) -> str | None:
    """Why this model cannot take this dataset's inputs (a forward pass of one example), or None."""
    import torch

    from lowloss.workers.data import DATASET_SHAPES
    from lowloss.workers.models import build_model

    channels, size, classes = DATASET_SHAPES[data["dataset"]]
    size = data.get("image_size", size)
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = build_model(model_name, classes, channels, size).eval()
            model(torch.zeros(1, channels, size, size))
    except Exception as exc:
        return (f"does not fit {data['dataset']} inputs ({channels}×{size}×{size}): {str(exc).splitlines()[0]}; "
                f"pick a model for that size (small_cnn/mlp: any; lenet5: 28×28; *_cifar: 32×32; resnet18: ImageNet)")
    return None


def model_names() -> list[str]:
    from lowloss.workers.models import model_names as names

    return names()


def dataset_names() -> tuple[str, ...]:
    from lowloss.workers.data import DATASETS

    return DATASETS


def recipe_dir():
    """Folder of the ready-made spec files (the papers' appendix tables and the embedded default)."""
    from importlib.resources import files

    return files("lowloss.jobs.recipes")
