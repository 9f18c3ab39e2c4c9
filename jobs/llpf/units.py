"""LLPF unit kinds: ``m2m_phase`` (one phase of one model-to-model path, LLPF Alg. 1) and ``m2o`` (one model-to-origin
path, LLPF Alg. 2), both run by the path loop (``path.py``)."""

from __future__ import annotations

from ..base import Resources, UnitContext, UnitKind
from .figures import M2M_FIGURES, M2M_METRICS, M2M_VERDICTS, M2O_FIGURES, M2O_METRICS, M2O_VERDICTS
from .params import M2MPhaseParams, M2OParams
from .path import run_path


class M2MPhaseUnit(UnitKind):
    name = "m2m_phase"
    version = 1
    Params = M2MPhaseParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("final",)  # the phase's end point: the next phase starts there
    metrics = M2M_METRICS
    verdicts = M2M_VERDICTS
    tables = ("path",)
    figures = M2M_FIGURES

    def run(self, ctx: UnitContext, p: M2MPhaseParams) -> None:
        run_path(ctx, p)


class M2OUnit(UnitKind):
    name = "m2o"
    version = 1
    Params = M2OParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=240, resource_class="train")
    outputs = ("final",)
    metrics = M2O_METRICS
    verdicts = M2O_VERDICTS
    tables = ("path",)
    figures = M2O_FIGURES

    def run(self, ctx: UnitContext, p: M2OParams) -> None:
        run_path(ctx, p)
