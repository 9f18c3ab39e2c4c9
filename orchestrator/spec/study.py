"""The study spec: TOML, parsed and validated once at the edge into typed, frozen objects that everything after trusts.

Every problem becomes a ``SpecError`` that names the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ... import jobs
from ...jobs import ModelParams, StageInfo, StudyContext, TrainRecipe
from .errors import MISSING, SpecError, suggest
from .schema import check_keys, check_seeds, first_error, model_fields
from .sections import DataSection, RunSection, SeedRange, SpecModel
from .sweep import Assignment, assign_text, refuse_unread, sweep_assignments, value_text, with_assignment

STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class Variant:
    """One combination of a ``[sweep]``: the fields it sets, and the study's sections and stages with them set.
    A study without a sweep has one variant that sets nothing."""

    assign: Assignment
    context: StudyContext
    stages: tuple[StageInfo, ...]

    @property
    def text(self) -> str:
        return ", ".join(f"{field}={value_text(value)}" for field, value in self.assign)

    def stage(self, name: str) -> StageInfo:
        return next(s for s in self.stages if s.name == name)


@dataclass(frozen=True)
class Study:
    """A validated study: everything after the edge trusts it."""

    name: str
    seeds: tuple[int, ...]
    data: DataSection
    model: ModelParams
    train: TrainRecipe
    run: RunSection
    stages: tuple[StageInfo, ...]
    text: str
    source: str
    variants: tuple[Variant, ...] = ()  # the sweep's combinations (one that sets nothing when there is no sweep)

    @property
    def context(self) -> StudyContext:
        return StudyContext(self.seeds, self.data.unit_params(), self.model, self.train, self.run.max_units)

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


def load_spec(path: str | Path) -> Study:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        why = (
            f"not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} is not UTF-8); a spec is "
            "TOML text (see `lowloss recipes`)"
        )
        raise SpecError("SPEC", str(path), why) from None
    except FileNotFoundError:
        raise SpecError(
            "SPEC", str(path), "file not found; give the path of a .toml spec (see `lowloss recipes`)"
        ) from None
    except IsADirectoryError:
        raise SpecError("SPEC", str(path), "is a directory; give the path of a .toml spec") from None
    return parse_spec(text, str(path))


def parse_spec(text: str, source: str = "<spec>", check_unread: bool = True) -> Study:
    """The validated study of a spec's text. ``check_unread=False`` accepts ``[train]`` fields the recipe never reads
    (a store's own spec, written before they were refused: its units exist under those ids)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("TOML", MISSING, f"not valid TOML: {exc}", source) from None
    check_keys(SpecModel, raw, "", source, top=True)
    sweep = raw.pop("sweep", None)
    base = _parse_one(raw, text, source)
    if sweep is None:
        if check_unread:
            refuse_unread([base.train], [()], source)
        return base
    stages = {s.name: (s.kind, _sweepable(s.kind)) for s in base.stages}
    assignments = sweep_assignments(sweep, stages, source)
    variants, parsed = [], []
    for assign in assignments:
        try:
            one = _parse_one(with_assignment(raw, assign), text, source)
        except SpecError as exc:
            swept = dict(assign)
            field = f"sweep.{exc.field}" if exc.field in swept else f"{exc.field} (with sweep {assign_text(assign)})"
            raise SpecError(field, exc.value, exc.allowed, source) from None
        variants.append(Variant(assign, one.context, one.stages))
        parsed.append(one)
    if check_unread:
        refuse_unread([one.train for one in parsed], assignments, source)
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


def _sweepable(kind_name: str) -> list[str]:
    """The fields of a stage of this kind a sweep may vary."""
    return [k for k in model_fields(jobs.get_stage_kind(kind_name).Table) if k not in ("name", "kind", "from")]


def _parse_one(raw: dict, text: str, source: str) -> Study:
    study = raw.get("study")
    if isinstance(study, dict) and "seeds" in study:
        check_seeds(study["seeds"], source)
    try:
        spec = SpecModel.model_validate(raw)
    except ValidationError as exc:
        raise first_error(exc, raw, "", source) from None
    seeds = _seeds(spec, source)
    _check_model_and_data(spec, source)
    context = StudyContext(tuple(seeds), spec.data.unit_params(), spec.model, spec.train, spec.run.max_units)
    stages: dict[str, StageInfo] = {}
    for i, table in enumerate(spec.stages):
        info = _parse_stage(i, table, context, stages, source)
        stages[info.name] = info
    return Study(
        spec.study.name, tuple(seeds), spec.data, spec.model, spec.train, spec.run, tuple(stages.values()), text, source
    )


def _seeds(spec: SpecModel, source: str) -> list[int]:
    seeds = (
        list(range(spec.study.seeds.start, spec.study.seeds.start + spec.study.seeds.count))
        if isinstance(spec.study.seeds, SeedRange)
        else list(spec.study.seeds)
    )
    if not seeds:
        raise SpecError("study.seeds", [], "at least one seed", source)
    if len(set(seeds)) != len(seeds):
        dup = sorted(s for s, n in Counter(seeds).items() if n > 1)
        shown = spec.study.seeds if not isinstance(spec.study.seeds, SeedRange) else seeds
        raise SpecError("study.seeds", shown, f"each seed once; {dup} given twice", source)
    return seeds


def _check_model_and_data(spec: SpecModel, source: str) -> None:
    models = jobs.model_names()
    if spec.model.name not in models:
        why = f"one of {', '.join(models)}{suggest(spec.model.name, models)}"
        raise SpecError("model.name", spec.model.name, why, source)
    if spec.data.image_size is not None and spec.data.dataset != "imagefolder":
        why = "only for dataset = 'imagefolder' (the others have fixed sizes)"
        raise SpecError("data.image_size", spec.data.image_size, why, source)
    problem = jobs.model_input_problem(spec.model.name, spec.data.unit_params())
    if problem:
        raise SpecError("model.name", spec.model.name, problem, source)


def _parse_stage(i: int, table: dict, context: StudyContext, stages: dict[str, StageInfo], source: str) -> StageInfo:
    where = f"stages[{i}]"
    name, kind_name = table.get("name"), table.get("kind")
    if not isinstance(name, str) or not STAGE_NAME.match(name):
        shown = name if name is not None else MISSING
        raise SpecError(f"{where}.name", shown, "a stage name: a letter, then letters, digits, '_' or '-'", source)
    if name in stages:
        raise SpecError(f"{where}.name", name, "stage names must be unique", source)
    kinds = jobs.stage_kind_names()
    if kind_name not in kinds:
        shown = kind_name if kind_name is not None else MISSING
        raise SpecError(f"{where}.kind", shown, f"one of {', '.join(kinds)}{suggest(str(kind_name), kinds)}", source)
    kind = jobs.get_stage_kind(kind_name)
    body = {k: v for k, v in table.items() if k not in ("name", "kind")}
    check_keys(kind.Table, body, where, source)
    try:
        params = kind.Table.model_validate(body)
    except ValidationError as exc:
        raise first_error(exc, body, where, source) from None
    inputs = kind.inputs_of(params)
    _check_inputs(kind, inputs, where, stages, source)
    info = StageInfo(name, kind_name, params, inputs)
    for field, value, allowed in kind.validate(params, context, stages):
        raise SpecError(f"{where}.{field}", value, allowed, source)
    return info


def _check_inputs(
    kind: jobs.StageKind, inputs: tuple[str, ...], where: str, stages: dict[str, StageInfo], source: str
) -> None:
    """A stage's ``from``: earlier stages, whose units produce what this kind reads."""
    if kind.needs_input_stage and not inputs:
        raise SpecError(f"{where}.from", MISSING, "the name of an earlier stage", source)
    for src in inputs:
        if src not in stages:
            why = f"the name of an earlier stage ({', '.join(stages) or 'none yet'})"
            raise SpecError(f"{where}.from", src, why, source)
        needed = kind.input_output
        if needed and needed not in jobs.stage_produces(jobs.get_stage_kind(stages[src].kind)):
            makers = [n for n, k in jobs.stage_kinds().items() if needed in jobs.stage_produces(k)]
            why = (
                f"a stage whose units produce {needed!r} (kind {', '.join(repr(m) for m in makers)}); stage "
                f"{src!r} is of kind {stages[src].kind!r}"
            )
            raise SpecError(f"{where}.from", src, why, source)


def check_data(study: Study, data_root: str | None) -> None:
    """The edge check of the data root, before the store is touched: each stage kind's check of the dataset there,
    then that a root given is a folder (one that no dataset of the study reads, an embedded one's, too: a typo'd path
    is never ignored)."""
    field = "data.root" if study.data.root and data_root == _absolute(study.data.root) else "--data-root"
    checked: set[str] = set()
    for variant in study.all_variants():
        for stage in variant.stages:
            key = json.dumps([stage.kind, variant.context.data.canonical(), variant.context.model.canonical()])
            if key in checked:
                continue
            checked.add(key)
            problem = jobs.get_stage_kind(stage.kind).check_data(variant.context, data_root)
            if not problem:
                continue
            raise SpecError(
                field,
                data_root or MISSING,
                problem + (f" (with sweep {variant.text})" if variant.assign else ""),
                study.source,
            )
    if data_root is not None and not os.path.isdir(data_root):
        what = "is not a folder" if os.path.exists(data_root) else "does not exist"
        embedded = " and ".join(jobs.embedded_dataset_names())
        why = f"{what}; point it at the folder holding the dataset, or leave it out for the embedded {embedded}"
        raise SpecError(field, data_root, why, study.source if field == "data.root" else "")


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))
