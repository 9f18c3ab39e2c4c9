"""A study's ``[sweep]``: the spec fields it varies and the combinations it asks for (every combination, or the lists
side by side), each checked as the spec's own fields are. And the ``[train]`` fields the recipe never reads, which a
spec may not set (nor sweep): every field is part of the unit ids."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from pydantic import BaseModel

from ...jobs import TrainRecipe
from .errors import MISSING, SpecError, suggest
from .schema import model_fields
from .sections import DataSection

Assignment = tuple[tuple[str, Any], ...]  # (field, value) of one combination, in the sweep table's order

MAX_SWEEP = 10_000  # combinations of one sweep
SWEEP_FORMS = (
    "[sweep] maps spec fields to lists of values, e.g. train.lr = [0.05, 0.1], model.name = [...], "
    'stages.NAME.FIELD = [...]; mode = "grid" (every combination, the default) or "zip" (the lists side by side)'
)


def sweep_sections() -> dict[str, type[BaseModel]]:
    from ...jobs import ModelParams

    return {"data": DataSection, "model": ModelParams, "train": TrainRecipe}


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def assign_text(assign: Assignment | list[tuple[str, Any]]) -> str:
    return ", ".join(f"{f}={value_text(v)}" for f, v in assign)


def with_assignment(raw: dict, assign: Assignment) -> dict:
    """The raw spec with one combination's values set."""
    varied = copy.deepcopy(raw)
    for field, value in assign:
        parts = field.split(".")
        if parts[0] == "stages":
            for table in varied.get("stages", []):
                if isinstance(table, dict) and table.get("name") == parts[1]:
                    table[parts[2]] = value
        else:
            varied.setdefault(parts[0], {})[parts[1]] = value
    return varied


def sweep_fields(table: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': [..]}} and {'train.lr': [..]} alike → {'train.lr': [..]} (a list ends a field)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(sweep_fields(value, name + "."))
        else:
            out[name] = value
    return out


def sweep_assignments(sweep: Any, stages: dict[str, tuple[str, list[str]]], source: str) -> list[Assignment]:
    """The combinations a ``[sweep]`` table asks for. ``stages`` gives each stage's kind and the fields a sweep may
    vary in it."""
    if not isinstance(sweep, dict):
        raise SpecError("sweep", sweep, SWEEP_FORMS, source)
    sweep = dict(sweep)
    mode = sweep.pop("mode", "grid")
    if mode not in ("grid", "zip"):
        raise SpecError("sweep.mode", mode, f"one of 'grid', 'zip'{suggest(str(mode), ['grid', 'zip'])}", source)
    fields = sweep_fields(sweep)
    if not fields:
        raise SpecError("sweep", MISSING, f"at least one field to vary; {SWEEP_FORMS}", source)
    for field, values in fields.items():
        _check_field(field, stages, source)
        if not isinstance(values, list) or not values:
            raise SpecError(f"sweep.{field}", values, f"a non-empty list of values; {SWEEP_FORMS}", source)
        shown = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(shown)) != len(shown):
            raise SpecError(f"sweep.{field}", values, "each value once", source)
    return [tuple(zip(fields, combo)) for combo in _combinations(mode, fields, source)]


def _check_field(field: str, stages: dict[str, tuple[str, list[str]]], source: str) -> None:
    parts = field.split(".")
    where = f"sweep.{field}"
    sections = sweep_sections()
    if parts[0] in sections and len(parts) == 2:
        allowed = [k for k in model_fields(sections[parts[0]]) if not (parts[0] == "data" and k == "root")]
        if parts[1] not in allowed:
            why = f"unknown field of [{parts[0]}]; one of {', '.join(allowed)}{suggest(parts[1], allowed)}"
            raise SpecError(where, MISSING, why, source)
    elif parts[0] == "stages" and len(parts) == 3:
        if parts[1] not in stages:
            names = list(stages)
            why = f"no stage named {parts[1]!r}; stages: {', '.join(names)}{suggest(parts[1], names)}"
            raise SpecError(where, MISSING, why, source)
        kind, allowed = stages[parts[1]]
        if parts[2] not in allowed:
            why = (
                f"not a field a sweep can vary in stage {parts[1]!r} (kind {kind!r}); one of "
                f"{', '.join(allowed)}{suggest(parts[2], allowed)}"
            )
            raise SpecError(where, MISSING, why, source)
    else:
        why = (
            "a sweep varies data.FIELD, model.FIELD, train.FIELD or stages.NAME.FIELD (seeds and [run] are not "
            f"swept: seeds are the repetitions, [run] never changes a result); {SWEEP_FORMS}"
        )
        raise SpecError(where, MISSING, why, source)


def _combinations(mode: str, fields: dict[str, list], source: str) -> list[tuple]:
    lists = list(fields.values())
    if mode == "zip":
        if len({len(v) for v in lists}) > 1:
            why = 'mode = "zip" needs lists of one length (or use mode = "grid" for every combination)'
            raise SpecError("sweep", {f: len(v) for f, v in fields.items()}, why, source)
        return list(zip(*lists))
    count = 1
    for values in lists:
        count *= len(values)
    if count > MAX_SWEEP:
        raise SpecError("sweep", count, f"at most {MAX_SWEEP:,} combinations; shorten the lists", source)
    return list(itertools.product(*lists))


def refuse_unread(trains: list[TrainRecipe], assignments: list[Assignment], source: str) -> None:
    """A ``[train]`` field set (in ``[train]`` or by the sweep) that the recipe's schedule or optimizer never reads:
    every field is part of the unit ids, so it would name the same work differently (a sweep over it would train
    identical units under different ids). Accepted: a field set in ``[train]`` while the sweep varies what reads it,
    when some combination reads it; a swept value equal to the field's default (a ``mode = "zip"`` placeholder,
    the ids of the field left unset)."""
    swept = {field for field, _ in assignments[0]} if assignments else set()
    unread = [train.unread(train.model_fields_set) for train in trains]
    for train, assign, fields in zip(trains, assignments, unread):
        for field, why, deciders in fields:
            name, value = f"train.{field}", getattr(train, field)
            value = list(value) if isinstance(value, tuple) else value  # betas, as the spec writes them
            varied = [(f, v) for f, v in assign if f in {f"train.{d}" for d in deciders}]
            if name in swept:
                default = TrainRecipe.model_fields[field].get_default(call_default_factory=True)
                if getattr(train, field) == default:
                    continue
                hint = (
                    f'; with {", ".join(f for f, _ in varied)} swept too, use mode = "zip" with the default '
                    f"{value_text(default)} where it is not read"
                    if varied
                    else ""
                )
                raise SpecError(f"sweep.{name}", value, _with_sweep(why, varied) + hint, source)
            if varied and any(field not in {f for f, _, _ in other} for other in unread):
                continue  # the sweep varies what reads it, and some combination does
            raise SpecError(name, value, _with_sweep(why, varied), source)


def _with_sweep(why: str, varied: list[tuple[str, Any]]) -> str:
    return f"{why} (with sweep {assign_text(varied)})" if varied else why
