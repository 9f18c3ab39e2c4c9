"""The bases of every stage table and unit kind's params: strict, frozen, validated once."""

from __future__ import annotations

from pydantic import ConfigDict

from .strict import StrictScalars


class StageParams(StrictScalars):
    """Base of every stage table: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class UnitParams(StageParams):
    """Base of every unit kind's params: validated when the unit is planned, handed typed to ``run``.

    ``canonical()`` is the JSON content that the unit id hashes and ``unit.json`` records. (A subclass of
    ``StageParams`` so that a stage table and its units' params can share field mixins.)"""

    def canonical(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)
