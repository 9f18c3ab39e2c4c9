"""What an executor hands a node to run a unit, and how the run ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class UnitTask:
    """One unit to run: its id and kind, and the kind of each of its input units (a unit's input references name
    ids only; the coordinator, which planned them, knows their kinds)."""

    uid: str
    kind: str
    inputs: tuple[tuple[str, str], ...] = ()  # (input unit id, its kind)

    def input_kind(self, uid: str) -> str:
        for input_id, kind in self.inputs:
            if input_id == uid:
                return kind
        raise KeyError(f"unit {self.uid} was handed no kind for its input unit {uid}")

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "kind": self.kind, "inputs": [list(pair) for pair in self.inputs]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "UnitTask":
        return cls(str(obj["uid"]), str(obj["kind"]), tuple((str(i), str(k)) for i, k in obj.get("inputs", ())))


class UnitOutcome(str, Enum):
    """How one run of a unit ended, as the node saw it (what a unit achieved is read from the store)."""

    DONE = "done"
    BUSY = "busy"  # another process holds the unit
    FAILED = "failed"
    PREEMPTED = "preempted"
    NOSPACE = "nospace"
