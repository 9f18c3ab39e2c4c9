"""The one resumable loop of iterative units (train, LLPF phases, M2O, and the coming NEB edges and scans).

A unit's work is ``total`` steps cut into segments of ``segment_length``; each segment's rows (and points) are
committed as one store segment. At a segment's end, when the context says a checkpoint is due (its time cadence, or a
stop signal), the unit's resumable state is written; a resumed unit restores it and continues with the next segment,
so it writes exactly the bytes an uninterrupted run writes. Everything a segment computes is a function of the
restored state and the step numbers, never of wall-clock time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..base import UnitContext


@dataclass
class Segment:
    """What one segment produced: rows per table, points (or none), and progress fields for the live view."""

    tables: dict[str, list[dict]]
    points: dict | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Resumable(Protocol):
    """A unit's resumable state: what a checkpoint holds, and how to take it back."""

    def checkpoint(self) -> tuple[dict, dict]: ...  # (tensors, JSON meta)

    def restore(self, tensors: dict, meta: dict) -> None: ...


def run_segments(
    ctx: UnitContext,
    total: int,
    segment_length: int,
    state: Resumable,
    segment: Callable[[int, int], Segment],
    unit: str = "steps",
) -> int:
    """Run steps [0, total) in segments, resuming from the unit's checkpoint. Returns the number of the first step this
    attempt ran (0 unless resumed)."""
    resumed = ctx.read_checkpoint()
    if resumed is not None:
        tensors, meta, last_segment = resumed
        state.restore(tensors, meta)
        position, index = int(meta["position"]), last_segment + 1
        ctx.log(f"resumed at {unit[:-1] if unit.endswith('s') else unit} {position} (segment {index})")
    else:
        position, index = 0, 0
    first = position
    while position < total:
        start, end = position, min(position + segment_length, total)
        started = time.monotonic()
        out = segment(start, end)
        ctx.write_segment(index, out.tables, out.points or None, stop=False)  # a stop checkpoints first, below
        position = end
        if position < total and ctx.checkpoint_due():
            tensors, meta = state.checkpoint()
            ctx.write_checkpoint(index, tensors, {**meta, "position": position})
        ctx.progress(
            position, total, **out.info, **{f"{unit}_per_s": (end - start) / max(time.monotonic() - started, 1e-9)}
        )
        index += 1
    return first


class TrainingState:
    """The resumable state of a model trained by an optimizer: parameters and buffers, optimizer state, RNG states,
    plus a few JSON counters (a data cursor, precomputed step lengths) the kind keeps in ``extra``."""

    def __init__(self, model, optimizer, device, extra: dict | None = None):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.extra: dict = dict(extra or {})

    def checkpoint(self) -> tuple[dict, dict]:
        from ...workers.training import optimizer_state_to_tensors, rng_state_tensors

        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = optimizer_state_to_tensors(self.optimizer)
        tensors.update(opt_tensors)
        tensors.update(rng_state_tensors(self.device))
        return tensors, {"optimizer": opt_meta, "extra": self.extra}

    def restore(self, tensors: dict, meta: dict) -> None:
        from ...workers.training import optimizer_state_from_tensors, restore_rng_state

        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_state_from_tensors(self.optimizer, tensors, meta["optimizer"])
        restore_rng_state(tensors, self.device)
        self.extra = dict(meta.get("extra") or {})
