"""The spec reference (``docs/spec.md``), generated from the fields' own types, defaults, bounds and descriptions: the
study-wide tables and every registered stage kind's table. ``python -m lowloss.orchestrator.spec.reference`` prints
it; a test fails when ``docs/spec.md`` is stale."""

from __future__ import annotations

import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ... import jobs
from .sections import DataSection, RunSection, StudySection

INTRO = """# The spec reference

A study is one TOML file. This page is generated from the code (`python -m lowloss.orchestrator.spec.reference >
docs/spec.md`; a test fails when it is stale): every table, every field, its type, default, bounds and description.
Unknown keys, wrong types (a string or `true` where a number is needed, at any depth), out-of-range values and fields
the recipe never reads are refused with one line naming the field, the bad value and what is allowed (exit code 2).

Everything under `[data]`, `[model]`, `[train]` and the stage tables is part of the units' ids (except `data.root`):
change a value and the units it reaches are new work; the rest is reused. `[run]` never changes an id or a result.
"""

SWEEP = """## `[sweep]`

Varies spec fields over lists of values; each combination plans the stages with those values (units they share run
once). Keys are `data.FIELD`, `model.FIELD`, `train.FIELD` or `stages.NAME.FIELD` (written dotted or as nested
tables); `mode = "grid"` (every combination, the default, at most 10 000) or `"zip"` (the lists side by side, of one
length). Seeds are the repetitions and `[run]` never changes a result, so neither is swept. A swept `[train]` field
that the chosen schedule or optimizer never reads is refused (it would name identical work differently); a swept
value equal to the field's default is a `zip` placeholder. `lowloss report` groups a swept study by the swept fields.

```toml
[sweep]
train.lr = [0.05, 0.1]
stages.lmc.points = [11, 21]
mode = "grid"
```
"""


def type_text(annotation: Any) -> str:
    """A field's type as a spec author reads it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "none"
    if origin is typing.Literal:
        return " | ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in args if a is not type(None))
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "[" + ", ".join(type_text(a) for a in args) + "]"
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {type_text(args[1])}" if len(args) == 2 else "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"table ({annotation.__name__})"
    names = {int: "integer", float: "number", str: "string", bool: "true/false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds_text(info: FieldInfo) -> str:
    out = []
    for m in info.metadata:
        for attr, op in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "length ≥")):
            value = getattr(m, attr, None)
            if value is not None:
                out.append(f"{op} {value:,}" if isinstance(value, int) and value >= 10000 else f"{op} {value}")
    return ", ".join(out)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, BaseModel):
        return "—"
    if isinstance(default, str):
        return f'`"{default}"`'
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, (list, tuple)) and any(isinstance(v, BaseModel) for v in default):
        return f"{len(default)} entry of the defaults" if len(default) == 1 else f"{len(default)} entries"
    if isinstance(default, (list, tuple)):
        return "`[" + ", ".join(repr(v) if not isinstance(v, str) else f'"{v}"' for v in default) + "]`"
    return f"`{default!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def model_table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    """A markdown table of a model's fields; nested tables follow, each once."""
    lines = ["| field | type | default | bounds | description |", "| --- | --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in skip:
            continue
        lines.append(
            f"| `{key}` | {_cell(type_text(info.annotation))} | {default_text(info)} | {bounds_text(info)} | "
            f"{_cell(info.description or '')} |"
        )
    return lines


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The models a model's fields hold (tables inside tables), in field order."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    for info in model.model_fields.values():
        visit(info.annotation)
    return found


def section(title: str, model: type[BaseModel], text: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    lines = [f"## `{title}`", ""]
    if text:
        lines += [text, ""]
    lines += model_table(model, skip)
    for inner in nested_models(model):
        lines += ["", f"### {inner.__name__} (a table inside `{title}`)", ""]
        if inner.__doc__:
            lines += [" ".join(inner.__doc__.split()), ""]
        lines += model_table(inner)
    return lines + [""]


def stage_sections() -> list[str]:
    lines = [
        "## `[[stages]]`",
        "",
        "Every stage table has `name` (a letter, then letters, digits, `_` or `-`) and `kind`,",
    ]
    lines += [
        "one of the built-in stage kinds below or a plugin's ([plugins](plugins.md)); the rest of its fields are",
        "its kind's.",
        "",
    ]
    for name, kind in jobs.stage_kinds(builtin_only=True).items():
        lines += [f"### kind `{name}`", ""]
        doc = sys.modules[type(kind).__module__].__doc__ or type(kind).__doc__ or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())
        if first:
            lines += [first, ""]
        units = ", ".join(f"`{k}`" for k in kind.unit_kinds)
        lines += [f"Its units are of kind {units}; defined in `{type(kind).__module__}`.", ""]
        lines += model_table(kind.Table)
        seen: set[str] = set()
        for inner in nested_models(kind.Table):
            if inner.__name__ in seen:
                continue
            seen.add(inner.__name__)
            lines += ["", f"#### {inner.__name__} (a table inside kind `{name}`)", ""]
            if inner.__doc__:
                lines += [" ".join(inner.__doc__.split()), ""]
            lines += model_table(inner)
        lines.append("")
    return lines


def reference() -> str:
    lines = [INTRO]
    lines += section("[study]", StudySection, "`seeds`: a list such as `[0, 1, 2]`, or `{ start = S, count = N }`.")
    lines += section(
        "[data]", DataSection, "The dataset every unit reads; `root` is where it lies (not part of an id)."
    )
    lines += section("[model]", jobs.ModelParams, "The architecture every mode is (`lowloss validate` lists them).")
    lines += section("[train]", jobs.TrainRecipe, "The mode-training recipe (the shape of LLPF Table 3).")
    lines += section("[run]", RunSection, "How the study runs; the command line's flags override these.")
    lines += [SWEEP]
    lines += stage_sections()
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
