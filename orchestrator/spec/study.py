"""The study spec: TOML, parsed and validated once at the edge into typed, frozen objects.

Every problem becomes a ``SpecError`` that names the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ... import jobs
from ...jobs import StageInfo, StudyContext
from ...jobs.base import StrictScalars
from ...jobs.common.params import TrainRecipe


class SpecError(Exception):
    """A bad spec or argument: one line naming the field, the bad value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str, source: str = ""):
        self.field, self.value, self.allowed, self.source = field, value, allowed, source
        where = f"{source}: " if source else ""
        shown = "" if value is _MISSING else f" = {_show(value)}"
        super().__init__(f"{where}{field}{shown}: {allowed}")


_MISSING = object()


def _show(value: Any) -> str:
    text = repr(value)
    limit = 400 if isinstance(value, str) else 80  # a path is shown whole
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Section(StrictScalars):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SeedRange(Section):
    start: int = 0
    count: int = Field(ge=1, le=100000)


class StudySection(Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        description="letters, digits, '_', '.', '-' (starting with a letter or digit)",
    )
    seeds: Union[list[int], SeedRange] = Field(description="a list of seeds, or { start = S, count = N }")
    description: str = ""


class DataSection(Section):
    dataset: Literal["digits", "mnist5k", "mnist", "cifar10", "cifar100", "imagefolder"] = "digits"
    root: str | None = Field(default=None, description="folder holding the dataset (overridden by --data-root)")
    image_size: int | None = Field(
        default=None, ge=8, le=1024, description="imagefolder only: crop size (default 224, LLPF Table 4)"
    )

    def unit_params(self) -> dict:
        """What of the data section is part of a unit's content (the root is not: data may move)."""
        if self.dataset == "imagefolder":
            return {"dataset": self.dataset, "image_size": self.image_size or 224}
        return {"dataset": self.dataset}


class ModelSection(Section):
    name: str = "small_cnn"


class TrainSection(TrainRecipe):
    """The mode-training recipe (the shape of LLPF Table 3): the ``[train]`` section, handed to train units as is."""


class RunSection(Section):
    """How the study runs; nothing here changes a unit's id or its results."""

    executor: Literal["local", "slurm", "ray"] = "local"
    jobs: int = Field(default=2, ge=1, le=100000, description="units running at once")
    retries: int = Field(default=2, ge=0, le=100, description="extra attempts of a failing unit")
    checkpoint_seconds: float = Field(default=60.0, ge=0, description="at most this much work lost on a kill")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    profile: str | None = Field(default=None, description="Slurm site profile: a name in slurm/profiles/ or a path")
    units_per_job: int | None = Field(
        default=None, ge=1, description="units packed into one Slurm array task / Ray task"
    )
    ray_address: str | None = Field(default=None, description="Ray cluster address (default: a local Ray)")
    max_units: int = Field(default=200_000, ge=1, description="refuse a study that would expand to more units")
    fresh_processes: bool = Field(
        default=False, description="a new Python process per unit (local) / per Ray task instead of warm workers"
    )
    worker_max_units: int = Field(
        default=200, ge=0, le=10**9, description="a warm worker is replaced after this many units (0: never)"
    )
    worker_max_rss_mb: float = Field(
        default=8192.0, ge=0, description="a warm local worker is replaced once its resident MiB pass this (0: never)"
    )


class SpecModel(Section):
    study: StudySection
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    run: RunSection = RunSection()
    sweep: dict = {}
    stages: list[dict] = Field(min_length=1)


@dataclass(frozen=True)
class Variant:
    """One combination of a ``[sweep]``: the fields it sets, and the study's sections and stages with them set.
    A study without a sweep has one variant that sets nothing."""

    assign: tuple[tuple[str, Any], ...]
    context: StudyContext
    stages: tuple[StageInfo, ...]

    @property
    def text(self) -> str:
        return ", ".join(f"{field}={_value_text(value)}" for field, value in self.assign)

    def stage(self, name: str) -> StageInfo:
        return next(s for s in self.stages if s.name == name)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Study:
    """A validated study: everything after the edge trusts it."""

    name: str
    seeds: tuple[int, ...]
    data: DataSection
    model: ModelSection
    train: TrainSection
    run: RunSection
    stages: tuple[StageInfo, ...]
    text: str
    source: str
    variants: tuple[Variant, ...] = ()  # the sweep's combinations (one that sets nothing when there is no sweep)

    @property
    def context(self) -> StudyContext:
        return _context(self.seeds, self.data, self.model, self.train, self.run)

    @property
    def sweep_fields(self) -> tuple[str, ...]:
        """The spec fields the ``[sweep]`` varies (empty without a sweep)."""
        return tuple(field for field, _ in self.variants[0].assign) if self.variants else ()

    @property
    def sweep_by(self) -> tuple[str, ...]:
        """The swept fields named as unit params are (``lowloss report --by``): a stage field by its own name."""
        return tuple(f.split(".", 2)[2] if f.startswith("stages.") else f for f in self.sweep_fields)

    def all_variants(self) -> tuple[Variant, ...]:
        return self.variants or (Variant((), self.context, self.stages),)

    def stage(self, name: str) -> StageInfo:
        return next(s for s in self.stages if s.name == name)


STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


def load_spec(path: str | Path) -> Study:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            "SPEC",
            str(path),
            f"not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} "
            "is not UTF-8); a spec is TOML text (see `lowloss recipes`)",
        ) from None
    except FileNotFoundError:
        raise SpecError(
            "SPEC", str(path), "file not found; give the path of a .toml spec (see `lowloss recipes`)"
        ) from None
    except IsADirectoryError:
        raise SpecError("SPEC", str(path), "is a directory; give the path of a .toml spec") from None
    return parse_spec(text, str(path))


MAX_SWEEP = 10_000  # combinations of one sweep


def parse_spec(text: str, source: str = "<spec>", check_unread: bool = True) -> Study:
    """The validated study of a spec's text. ``check_unread=False`` accepts ``[train]`` fields the recipe never reads
    (a store's own spec, written before they were refused: its units exist under those ids)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("TOML", _MISSING, f"not valid TOML: {exc}", source) from None
    _check_keys(SpecModel, raw, "", source)
    sweep = raw.pop("sweep", None)
    base = _parse_one(raw, text, source)
    if sweep is None:
        if check_unread:
            _refuse_unread([base.train], [()], source)
        return base
    assignments = _sweep_assignments(sweep, raw, base, source)
    variants, parsed = [], []
    for assign in assignments:
        try:
            one = _parse_one(_with(raw, assign), text, source)
        except SpecError as exc:
            swept = dict(assign)
            field = f"sweep.{exc.field}" if exc.field in swept else f"{exc.field} (with sweep {_assign_text(assign)})"
            raise SpecError(field, exc.value, exc.allowed, source) from None
        variants.append(Variant(assign, one.context, one.stages))
        parsed.append(one)
    if check_unread:
        _refuse_unread([one.train for one in parsed], assignments, source)
    first = parsed[0]
    return Study(
        first.name,
        first.seeds,
        first.data,
        first.model,
        first.train,
        first.run,
        first.stages,
        text,
        source,
        tuple(variants),
    )


def _refuse_unread(trains: list[TrainSection], assignments: list[tuple[tuple[str, Any], ...]], source: str) -> None:
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
                default = TrainSection.model_fields[field].get_default(call_default_factory=True)
                if getattr(train, field) == default:
                    continue
                hint = (
                    f'; with {", ".join(f for f, _ in varied)} swept too, use mode = "zip" with the default '
                    f"{_value_text(default)} where it is not read"
                    if varied
                    else ""
                )
                raise SpecError(f"sweep.{name}", value, _with_sweep(why, varied) + hint, source)
            if varied and any(field not in {f for f, _, _ in other} for other in unread):
                continue  # the sweep varies what reads it, and some combination does
            raise SpecError(name, value, _with_sweep(why, varied), source)


def _with_sweep(why: str, varied: list[tuple[str, Any]]) -> str:
    return f"{why} (with sweep {_assign_text(varied)})" if varied else why


def _with(raw: dict, assign) -> dict:
    varied = copy.deepcopy(raw)
    for field, value in assign:
        _set_field(varied, field, value)
    return varied


def _assign_text(assign) -> str:
    return ", ".join(f"{f}={_value_text(v)}" for f, v in assign)


SWEEP_FORMS = (
    "[sweep] maps spec fields to lists of values, e.g. train.lr = [0.05, 0.1], model.name = [...], "
    'stages.NAME.FIELD = [...]; mode = "grid" (every combination, the default) or "zip" (the lists side by side)'
)
SWEEP_SECTIONS: dict[str, type[BaseModel]] = {"data": DataSection, "model": ModelSection, "train": TrainSection}


def _sweep_fields(table: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': [..]}} and {'train.lr': [..]} alike → {'train.lr': [..]} (a list ends a field)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_sweep_fields(value, name + "."))
        else:
            out[name] = value
    return out


def _sweep_assignments(sweep: Any, raw: dict, base: Study, source: str) -> list[tuple[tuple[str, Any], ...]]:
    """The combinations a ``[sweep]`` table asks for, each a tuple of (field, value) in the table's order."""
    if not isinstance(sweep, dict):
        raise SpecError("sweep", sweep, SWEEP_FORMS, source)
    sweep = dict(sweep)
    mode = sweep.pop("mode", "grid")
    if mode not in ("grid", "zip"):
        raise SpecError("sweep.mode", mode, f"one of 'grid', 'zip'{_suggest(str(mode), ['grid', 'zip'])}", source)
    fields = _sweep_fields(sweep)
    if not fields:
        raise SpecError("sweep", _MISSING, f"at least one field to vary; {SWEEP_FORMS}", source)
    stage_names = [s.name for s in base.stages]
    for field, values in fields.items():
        parts = field.split(".")
        where = f"sweep.{field}"
        if parts[0] in SWEEP_SECTIONS and len(parts) == 2:
            allowed = [k for k in _fields(SWEEP_SECTIONS[parts[0]]) if not (parts[0] == "data" and k == "root")]
            if parts[1] not in allowed:
                raise SpecError(
                    where,
                    _MISSING,
                    f"unknown field of [{parts[0]}]; one of {', '.join(allowed)}{_suggest(parts[1], allowed)}",
                    source,
                )
        elif parts[0] == "stages" and len(parts) == 3:
            if parts[1] not in stage_names:
                raise SpecError(
                    where,
                    _MISSING,
                    f"no stage named {parts[1]!r}; stages: {', '.join(stage_names)}{_suggest(parts[1], stage_names)}",
                    source,
                )
            kind = jobs.get_stage_kind(base.stage(parts[1]).kind)
            allowed = [k for k in _fields(kind.Table) if k not in ("name", "kind", "from")]
            if parts[2] not in allowed:
                raise SpecError(
                    where,
                    _MISSING,
                    f"not a field a sweep can vary in stage {parts[1]!r} (kind {kind.name!r}); one of "
                    f"{', '.join(allowed)}{_suggest(parts[2], allowed)}",
                    source,
                )
        else:
            raise SpecError(
                where,
                _MISSING,
                "a sweep varies data.FIELD, model.FIELD, train.FIELD or stages.NAME.FIELD (seeds and [run] are not "
                f"swept: seeds are the repetitions, [run] never changes a result); {SWEEP_FORMS}",
                source,
            )
        if not isinstance(values, list) or not values:
            raise SpecError(where, values, f"a non-empty list of values; {SWEEP_FORMS}", source)
        shown = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(shown)) != len(shown):
            raise SpecError(where, values, "each value once", source)
    lists = list(fields.values())
    if mode == "zip":
        lengths = {len(v) for v in lists}
        if len(lengths) > 1:
            raise SpecError(
                "sweep",
                {f: len(v) for f, v in fields.items()},
                'mode = "zip" needs lists of one length (or use mode = "grid" for every combination)',
                source,
            )
        combos = list(zip(*lists))
    else:
        count = 1
        for values in lists:
            count *= len(values)
        if count > MAX_SWEEP:
            raise SpecError("sweep", count, f"at most {MAX_SWEEP:,} combinations; shorten the lists", source)
        combos = list(itertools.product(*lists))
    names = list(fields)
    return [tuple(zip(names, combo)) for combo in combos]


def _set_field(raw: dict, field: str, value: Any) -> None:
    parts = field.split(".")
    if parts[0] == "stages":
        for table in raw.get("stages", []):
            if isinstance(table, dict) and table.get("name") == parts[1]:
                table[parts[2]] = value
        return
    section = raw.setdefault(parts[0], {})
    section[parts[1]] = value


def _parse_one(raw: dict, text: str, source: str) -> Study:
    study = raw.get("study")
    if isinstance(study, dict) and "seeds" in study:
        _check_seeds(study["seeds"], source)
    try:
        spec = SpecModel.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc, raw, "", source) from None

    seeds = (
        list(range(spec.study.seeds.start, spec.study.seeds.start + spec.study.seeds.count))
        if isinstance(spec.study.seeds, SeedRange)
        else list(spec.study.seeds)
    )
    if not seeds:
        raise SpecError("study.seeds", [], "at least one seed", source)
    dup = sorted({s for s in seeds if seeds.count(s) > 1}) if len(set(seeds)) != len(seeds) else []
    if dup:
        raise SpecError(
            "study.seeds",
            spec.study.seeds if not isinstance(spec.study.seeds, SeedRange) else seeds,
            f"each seed once; {dup} given twice",
            source,
        )
    models = jobs.model_names()
    if spec.model.name not in models:
        raise SpecError(
            "model.name", spec.model.name, f"one of {', '.join(models)}{_suggest(spec.model.name, models)}", source
        )

    if spec.data.image_size is not None and spec.data.dataset != "imagefolder":
        raise SpecError(
            "data.image_size",
            spec.data.image_size,
            "only for dataset = 'imagefolder' (the others have fixed sizes)",
            source,
        )
    problem = jobs.model_input_problem(spec.model.name, spec.data.unit_params())
    if problem:
        raise SpecError("model.name", spec.model.name, problem, source)
    context = _context(tuple(seeds), spec.data, spec.model, spec.train, spec.run)
    stages: dict[str, StageInfo] = {}
    for i, table in enumerate(spec.stages):
        where = f"stages[{i}]"
        name, kind_name = table.get("name"), table.get("kind")
        if not isinstance(name, str) or not STAGE_NAME.match(name):
            raise SpecError(
                f"{where}.name",
                name if name is not None else _MISSING,
                "a stage name: a letter, then letters, digits, '_' or '-'",
                source,
            )
        if name in stages:
            raise SpecError(f"{where}.name", name, "stage names must be unique", source)
        kinds = jobs.stage_kind_names()
        if kind_name not in kinds:
            raise SpecError(
                f"{where}.kind",
                kind_name if kind_name is not None else _MISSING,
                f"one of {', '.join(kinds)}{_suggest(str(kind_name), kinds)}",
                source,
            )
        kind = jobs.get_stage_kind(kind_name)
        body = {k: v for k, v in table.items() if k not in ("name", "kind")}
        _check_keys(kind.Table, body, where, source)
        try:
            params = kind.Table.model_validate(body)
        except ValidationError as exc:
            raise _first_error(exc, body, where, source) from None
        inputs = kind.inputs_of(params)
        if kind.needs_input_stage and not inputs:
            raise SpecError(f"{where}.from", _MISSING, "the name of an earlier stage", source)
        for src in inputs:
            if src not in stages:
                raise SpecError(
                    f"{where}.from", src, f"the name of an earlier stage ({', '.join(stages) or 'none yet'})", source
                )
            if kind.input_output and kind.input_output not in jobs.stage_produces(
                jobs.get_stage_kind(stages[src].kind)
            ):
                makers = [n for n, k in jobs.STAGE_KINDS.items() if kind.input_output in jobs.stage_produces(k)]
                raise SpecError(
                    f"{where}.from",
                    src,
                    f"a stage whose units produce {kind.input_output!r} "
                    f"(kind {', '.join(repr(m) for m in makers)}); stage {src!r} is of kind "
                    f"{stages[src].kind!r}",
                    source,
                )
        info = StageInfo(name, kind_name, params, inputs)
        for field, value, allowed in kind.validate(params, context, stages):
            raise SpecError(f"{where}.{field}", value, allowed, source)
        stages[name] = info
    return Study(
        spec.study.name, tuple(seeds), spec.data, spec.model, spec.train, spec.run, tuple(stages.values()), text, source
    )


def _context(
    seeds: tuple[int, ...], data: "DataSection", model: ModelSection, train: TrainSection, run: RunSection
) -> StudyContext:
    return StudyContext(
        seeds=seeds,
        data=data.unit_params(),
        model=model.model_dump(mode="json"),
        train=train.model_dump(mode="json"),
        max_units=run.max_units,
    )


def check_data(study: Study, data_root: str | None) -> None:
    """The edge check of the data root, before the store is touched."""
    checked: set[str] = set()
    for variant in study.all_variants():
        for stage in variant.stages:
            key = json.dumps([stage.kind, variant.context.data, variant.context.model], sort_keys=True)
            if key in checked:
                continue
            checked.add(key)
            problem = jobs.get_stage_kind(stage.kind).check_data(variant.context, data_root)
            if not problem:
                continue
            raise SpecError(
                "data.root" if data_root == study.data.root else "--data-root",
                data_root or _MISSING,
                problem + (f" (with sweep {variant.text})" if variant.assign else ""),
                study.source,
            )


# ---------------------------------------------------------------------- helpers


def _suggest(value: str, allowed) -> str:
    close = difflib.get_close_matches(value, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    out = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = info
    return out


def _check_keys(model: type[BaseModel], data: Any, prefix: str, source: str) -> None:
    """Unknown keys (typos) anywhere in nested sections, with a suggestion."""
    if not isinstance(data, dict):
        return
    fields = _fields(model)
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            if model is SpecModel:
                allowed = "top-level tables are " + ", ".join(f"[{k}]" for k in fields)
            else:
                allowed = "allowed keys: " + ", ".join(k for k in fields if k not in ("name", "kind"))
            raise SpecError(path, _MISSING, f"unknown key; {allowed}{_suggest(key, fields)}", source)
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _check_keys(annotation, value, path, source)


SEED_FORMS = "a list of seeds such as [0, 1, 2], or a table { start = S, count = N } with S ≥ 0, N ≥ 1"


def _check_seeds(seeds: Any, source: str) -> None:
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
                f"study.seeds.{key}", _MISSING, f"unknown key; {SEED_FORMS}{_suggest(key, ['start', 'count'])}", source
            )
    if "count" not in seeds:
        raise SpecError("study.seeds.count", _MISSING, f"required; {SEED_FORMS}", source)
    for key in ("start", "count"):
        if key in seeds and not integer(seeds[key]):
            raise SpecError(f"study.seeds.{key}", seeds[key], f"an integer; {SEED_FORMS}", source)
    if seeds["count"] < 1:
        raise SpecError("study.seeds.count", seeds["count"], f"at least 1 seed; {SEED_FORMS}", source)
    if seeds.get("start", 0) < 0:
        raise SpecError("study.seeds.start", seeds["start"], f"seeds are integers ≥ 0; {SEED_FORMS}", source)


def _first_error(exc: ValidationError, raw: Any, prefix: str, source: str) -> SpecError:
    errors = exc.errors()
    # a union reports every member's error; a silent-conversion refusal (StrictScalars) says most
    err = next((e for e in errors if e["type"] == "value_error" and "is needed" in e["msg"]), errors[0])
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
    value = err.get("input", _MISSING)
    if err["type"] == "missing":
        value = _MISSING
        msg = "required"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        if err["type"] in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
            msg = f"out of range: {msg.lower()}"
        elif err["type"].startswith("literal"):
            expected = ctx.get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            msg = f"one of {expected}{_suggest(str(value), choices)}"
        elif err["type"] == "string_pattern_mismatch":
            msg = f"must match {ctx.get('pattern')}"
    if err["type"] == "value_error" and " = " in msg and ": " in msg:
        # a StrictScalars refusal, "KEY = VALUE: why", raised for the enclosing table: name the key's full path
        key_value, why = msg.split(": ", 1)
        key, shown = key_value.split(" = ", 1)
        if re.fullmatch(r"[A-Za-z_][\w.]*", key):
            return SpecError(f"{field}.{key}" if field else key, _Shown(shown), why, source)
    if isinstance(value, dict):
        value = _MISSING  # a whole table: the message says what is wrong with it
    return SpecError(field or "spec", value, msg, source)


class _Shown(str):
    """A value already written as the spec shows it (``true``, ``'100'``)."""

    def __repr__(self) -> str:
        return str(self)
