"""What a running unit may do (``UnitContext``, implemented by the orchestrator's runtime over the store), and how
its stored points are keyed."""

from __future__ import annotations

import re
from typing import Any, Iterator, Protocol

_POINT_KEY = re.compile(r"it(\d+)\.(.+)")


def point_key(tensor: str, step: int) -> str:
    """The safetensors key of one tensor of the point stored at ``step`` (a points file may hold several points)."""
    return f"it{step:08d}.{tensor}"


def split_point_key(key: str) -> tuple[str, int | None]:
    """(tensor, step) of a points key (``point_key``); step is None for a plain tensor name (one point per file)."""
    m = _POINT_KEY.fullmatch(key)
    if m:
        return m.group(2), int(m.group(1))
    return key, None


# ---------------------------------------------------------------------------------------------- running a unit


class UnitContext(Protocol):
    """What a running unit may do. Implemented by the orchestrator's runtime over the store."""

    unit_id: str
    attempt: int
    device: Any  # torch.device
    data_root: str | None
    cpus: int  # the allocation: sizes only work whose bytes do not depend on it (image decoding)

    # inputs (by role)
    def input_params(self, role: str) -> Any: ...  # the input unit's typed params

    def input_result(self, role: str) -> dict: ...

    def input_tensors(self, role: str, output: str | None = None) -> dict: ...  # default: the output the role names

    def input_final_state(self, role: str) -> dict: ...  # input_tensors(role, "final")

    def input_points(self, role: str) -> Iterator[tuple[int, dict]]: ...  # (step, tensors) of every stored point

    def input_rows(self, role: str, table: str) -> Any: ...  # pyarrow.Table of the input's committed rows, or None

    # this unit's progress
    def committed_segments(self) -> int: ...

    def rows(self, table: str) -> Any: ...  # pyarrow.Table of this unit's committed rows of ``table``

    def write_segment(
        self, index: int, tables: dict[str, list[dict]], points: dict | None = None, stop: bool = True
    ) -> None:
        """Commit one segment. When the unit was asked to stop (SIGTERM/SIGUSR2, Ctrl-C of the run), raises the
        runtime's ``Preempted`` once the segment is durably committed, so every kind stops at its next segment and a
        resume continues after it. ``stop=False``: a caller that stops by itself (``loop.run_segments``, through its
        checkpoint) or that commits right after this segment (stopping there would throw away work a resume does not
        get back)."""
        ...

    def checkpoint_due(self) -> bool: ...

    def write_checkpoint(self, segment_index: int, tensors: dict, meta: dict) -> None: ...

    def read_checkpoint(self) -> tuple[dict, dict, int] | None: ...

    def progress(self, done: int, total: int, **info: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def commit(self, result: dict, final: dict | None = None, outputs: dict[str, dict] | None = None) -> None: ...
