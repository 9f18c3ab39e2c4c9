"""Turning what pydantic and TOML say into the edge's one-line errors: unknown keys (typos) with a suggestion, the
first validation error with its field's full path, and the two forms of ``study.seeds``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from ...jobs.base import SILENT_CONVERSION
from .errors import MISSING, Shown, SpecError, suggest
from .sections import SeedRange


def model_fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the name a spec writes (its alias where it has one)."""
    out = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = info
    return out


def check_keys(model: type[BaseModel], data: Any, prefix: str, source: str, top: bool = False) -> None:
    """Unknown keys (typos) anywhere in nested sections, with a suggestion."""
    if not isinstance(data, dict):
        return
    fields = model_fields(model)
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            if top:
                allowed = "top-level tables are " + ", ".join(f"[{k}]" for k in fields)
            else:
                allowed = "allowed keys: " + ", ".join(k for k in fields if k not in ("name", "kind"))
            raise SpecError(path, MISSING, f"unknown key; {allowed}{suggest(key, fields)}", source)
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            check_keys(annotation, value, path, source)


SEED_FORMS = "a list of seeds such as [0, 1, 2], or a table { start = S, count = N } with S ≥ 0, N ≥ 1"


def check_seeds(seeds: Any, source: str) -> None:
    """``study.seeds`` in one of its two forms; otherwise the field, the bad value and both allowed forms."""

    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(seeds, list):
        bad = [v for v in seeds if not integer(v)]
        if bad:
            raise SpecError("study.seeds", seeds, f"seeds are integers ({bad[0]!r} is not); {SEED_FORMS}", source)
        negative = [v for v in seeds if v < 0]
        if negative:
            why = f"seeds are integers ≥ 0 ({negative[0]} is not); {SEED_FORMS}"
            raise SpecError("study.seeds", seeds, why, source)
        return
    if not isinstance(seeds, dict):
        raise SpecError("study.seeds", seeds, SEED_FORMS, source)
    for key in seeds:
        if key not in ("start", "count"):
            raise SpecError(
                f"study.seeds.{key}", MISSING, f"unknown key; {SEED_FORMS}{suggest(key, ['start', 'count'])}", source
            )
    if "count" not in seeds:
        raise SpecError("study.seeds.count", MISSING, f"required; {SEED_FORMS}", source)
    for key in ("start", "count"):
        if key in seeds and not integer(seeds[key]):
            raise SpecError(f"study.seeds.{key}", seeds[key], f"an integer; {SEED_FORMS}", source)
    if seeds["count"] < 1:
        raise SpecError("study.seeds.count", seeds["count"], f"at least 1 seed; {SEED_FORMS}", source)
    most = _most_seeds()
    if seeds["count"] > most:
        why = f"at most {most:,} seeds in one range (a list may name more); {SEED_FORMS}"
        raise SpecError("study.seeds.count", seeds["count"], why, source)
    if seeds.get("start", 0) < 0:
        raise SpecError("study.seeds.start", seeds["start"], f"seeds are integers ≥ 0; {SEED_FORMS}", source)


def _most_seeds() -> int:
    """The most seeds one ``{ start, count }`` range may name (``SeedRange.count``'s bound)."""
    return next(m.le for m in SeedRange.model_fields["count"].metadata if getattr(m, "le", None) is not None)


def first_error(exc: ValidationError, raw: Any, prefix: str, source: str) -> SpecError:
    errors = exc.errors()
    # a union reports every member's error; a silent-conversion refusal (StrictScalars) says most
    err = next((e for e in errors if e["type"] == SILENT_CONVERSION), errors[0])
    # drop pydantic's union-member tags such as 'list[int]', 'SeedRange' or 'function-after[...]'
    parts = [
        p
        for p in err["loc"]
        if isinstance(p, int)
        or not (str(p)[:1].isupper() or "[" in str(p) or "-" in str(p) or p in ("int", "str", "float", "bool"))
    ]
    field = ""
    for p in parts:
        field += f"[{p}]" if isinstance(p, int) else (f".{p}" if field else str(p))
    field = (
        f"{prefix}.{field}" if prefix and field and not field.startswith("[") else (prefix + field if prefix else field)
    )
    value = err.get("input", MISSING)
    if err["type"] == "missing":
        value = MISSING
        msg = "required"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err["type"] in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
            msg = f"out of range: {msg.lower()}"
        elif err["type"].startswith("literal"):
            expected = ctx.get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            msg = f"one of {expected}{suggest(str(value), choices)}"
        elif err["type"] == "string_pattern_mismatch":
            msg = f"must match {ctx.get('pattern')}"
    if err["type"] == SILENT_CONVERSION:  # raised for the enclosing table: name the key's full path
        ctx = err.get("ctx") or {}
        key = str(ctx.get("key", ""))
        return SpecError(f"{field}.{key}" if field else key, Shown(str(ctx.get("shown"))), str(ctx.get("why")), source)
    if isinstance(value, dict):
        value = MISSING  # a whole table: the message says what is wrong with it
    return SpecError(field or "spec", value, msg, source)
