"""Strict TOML values: the silent conversions users trip over are refused, at any depth (lists, tables, unions) —
``true`` or a string for a number (``segment_steps = "100"``, ``seeds = [0, "1"]``, ``seeds = [false]``), a number or
a string for a flag. A refusal is pydantic's ``silent_conversion`` error, its context naming the key, the value as the
spec shows it and why (``orchestrator/spec`` turns it into the one-line error)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

SILENT_CONVERSION = "silent_conversion"


@dataclass(frozen=True)
class Misfit:
    """A raw value pydantic's lax mode would convert silently: where (a dotted key; empty for the value itself), the
    value as the spec shows it, and why."""

    key: str
    shown: str
    why: str

    @property
    def text(self) -> str:
        return f"{self.key} = {self.shown}: {self.why}" if self.key else f"{self.shown}: {self.why}"


_FITS, _OTHER = "fits", "other shape"
Verdict = Union[str, Misfit]  # _FITS, _OTHER (pydantic's own checks say what is wrong), or a misfit


def _scalar_misfit(annotation: Any, value: Any) -> Misfit | None:
    """A number given as a string or true/false, a decimal for an integer, or a flag given as anything else."""
    if annotation is bool:
        return None if isinstance(value, bool) else Misfit("", repr(value), "true or false is needed")
    needed = "an integer" if annotation is int else "a number"
    if isinstance(value, bool):
        return Misfit("", str(value).lower(), f"{needed} is needed, not true/false")
    if isinstance(value, str):
        return Misfit("", repr(value), f"{needed} is needed, not a string")
    if annotation is int and isinstance(value, float):
        hint = f" (write {int(value)})" if value.is_integer() else ""
        return Misfit("", repr(value), f"an integer is needed, not a decimal number{hint}")
    return None


def check_value(annotation: Any, value: Any) -> Verdict:
    """Whether a raw value fits a field's annotation without a silent conversion."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (bool, int, float):
        if annotation is not bool and not isinstance(value, (int, float, str)):
            return _OTHER
        return _scalar_misfit(annotation, value) or _FITS
    if origin is typing.Annotated:
        return check_value(args[0], value)
    if origin in (typing.Union, types.UnionType):
        verdicts = [check_value(a, value) for a in args if a is not type(None)]
        if value is None or _FITS in verdicts:
            return _FITS
        return next((v for v in verdicts if isinstance(v, Misfit)), _OTHER)
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            return _OTHER
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        return _first_misfit(list(zip(args if fixed else args[:1] * len(value), value)))
    if origin is dict:
        if not isinstance(value, dict):
            return _OTHER
        return _first_misfit([(args[1] if len(args) == 2 else Any, item) for item in value.values()])
    if origin is typing.Literal:
        return _FITS if value in args else _OTHER
    if annotation is str:
        return _FITS if isinstance(value, str) else _OTHER
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return _OTHER
        if issubclass(annotation, StrictScalars):
            return _FITS  # it checks itself, and its errors then name the nested field
        return model_misfit(annotation, value) or _FITS
    return _FITS  # Any and the rest: pydantic checks them itself


def _first_misfit(pairs: list[tuple[Any, Any]]) -> Verdict:
    for item_type, item in pairs:
        verdict = check_value(item_type, item)
        if verdict != _FITS:
            return verdict
    return _FITS


def model_misfit(model: type[BaseModel], data: dict) -> Misfit | None:
    """The first field of ``data`` whose raw value pydantic's lax mode would convert silently, or None."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        found = check_value(info.annotation, data[key])
        if not isinstance(found, Misfit):
            continue
        if isinstance(data[key], dict):  # a nested table: its own field is named
            return Misfit(f"{key}.{found.key}" if found.key else key, found.shown, found.why)
        if isinstance(data[key], (list, tuple)):
            return Misfit(key, repr(data[key]), f"item {found.text}")
        return Misfit(key, found.shown, found.why)
    return None


class StrictScalars(BaseModel):
    """Refuses the silent conversions TOML users trip over, at any depth (see the module docstring)."""

    @model_validator(mode="before")
    @classmethod
    def _no_silent_conversion(cls, data: Any) -> Any:
        if isinstance(data, dict):
            misfit = model_misfit(cls, data)
            if misfit:
                raise PydanticCustomError(
                    SILENT_CONVERSION,
                    "{key} = {shown}: {why}",
                    {"key": misfit.key, "shown": misfit.shown, "why": misfit.why},
                )
        return data
