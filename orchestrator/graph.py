"""The unit graph: stage expansion, content-hash unit ids, and readiness.

A unit id is a content hash of (kind, kind version, canonical params, input unit ids): the same work always has the
same id, so a re-run, a resume or an edited spec re-uses every unit whose id did not change. Static stages expand from
the spec alone; planner stages (e.g. ``pairs = "to_best"``) expand again whenever units finish, and may add units.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from lowloss import jobs
from lowloss.jobs import UpstreamUnit

from .atomic import canonical_json
from .spec import Study
from .store import UnitRecord

ID_LENGTH = 20


def unit_id(kind: str, version: int, params: dict, inputs: dict) -> str:
    payload = canonical_json({"kind": kind, "version": version, "params": params, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Unit:
    id: str
    kind: str
    version: int
    params: dict
    inputs: dict
    stage: str
    label: str

    @property
    def record(self) -> UnitRecord:
        return UnitRecord(self.id, self.kind, self.version, self.params, self.inputs)


class _Upstream:
    def __init__(self, expanded: dict[str, list[Unit]], result: Callable[[str], dict | None]):
        self._expanded = expanded
        self._result = result

    def units(self, stage: str) -> list[UpstreamUnit]:
        return [UpstreamUnit(u.id, u.params, u.label) for u in self._expanded.get(stage, [])]

    def result(self, unit_id: str) -> dict | None:
        return self._result(unit_id)


def expand(study: Study, result: Callable[[str], dict | None] = lambda uid: None) -> dict[str, list[Unit]]:
    """Every stage's units given the results known now (stages in spec order; each sees the earlier ones)."""
    expanded: dict[str, list[Unit]] = {}
    context = study.context
    upstream = _Upstream(expanded, result)
    for stage in study.stages:
        kind = jobs.get_kind(stage.kind)
        units = []
        ids: dict[int, str] = {}  # drafts may name earlier drafts of the same expansion as inputs (chained phases)
        for draft in kind.expand(stage.params, context, upstream):
            inputs = {role: ids[id(ref)] if not isinstance(ref, str) else ref for role, ref in draft.inputs.items()}
            uid = unit_id(draft.kind, kind.version, draft.params, inputs)
            ids[id(draft)] = uid
            units.append(Unit(uid, draft.kind, kind.version, draft.params, inputs, stage.name, draft.label))
        expanded[stage.name] = units
    return expanded


def plan_document(study: Study, expanded: dict[str, list[Unit]]) -> dict:
    """The plan as stored in plan.json: stages in order with their units' ids, kinds and labels."""
    return {"study": study.name,
            "stages": [{"name": s.name, "kind": jobs.get_kind(s.kind).name,  # the units' kind (stage kinds may be aliases)
                        "units": [{"id": u.id, "label": u.label} for u in expanded[s.name]]} for s in study.stages]}
