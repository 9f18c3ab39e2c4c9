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
