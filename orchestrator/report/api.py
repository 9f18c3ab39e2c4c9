"""Read a study from Python (notebooks, scripts): committed rows, results and summaries as pyarrow Tables.

    from lowloss.orchestrator.report import open_study, summary

    study = open_study("runs/digits-default")  # a StudyView (the validated spec is spec.Study)
    study.stages()                       # [StageView(name='modes', kind='train', units=(...)), ...]
    evals = study.rows("modes", "evals")  # committed rows of every unit, with unit, label, param.* columns
    evals.to_pandas()                    # (with pandas installed) or duckdb.sql("select ... from evals")
    study.results("lmc")                 # one row per committed unit: its params and result.json
    summary(study, by=["model.name"])    # the table `lowloss report` prints, one row per stage/group/metric

Everything here is read-only and respects the store's contracts: a segment exists only when its marker does, a unit's
result only when its commit marker does, so it is safe to use on a study that is still running. Every file read is
checked against the size and sha256 its marker recorded (each unchanged file hashed once per process); a damaged file
(the store's ``DamagedError``, naming the unit, the file and the repair) is raised, never shown as missing data.

Unit params are flattened into dotted fields named as the spec names them (``model.name``, ``train.lr``, ``seed``, a
stage field such as ``points``; a train unit stores its [train] table as ``recipe``, shown here as ``train``). A unit
that lacks a field its inputs have (an interpolation has no ``model``, its two modes do) inherits it when all its
inputs agree on the value; otherwise the field stays empty for that unit. ``--by`` of ``lowloss report`` resolves
fields the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..spec import SpecError
from ..store import FINAL, AttemptRecord, DamagedError, SegmentMarker, Store, StoreError, UnitRecord, split_ref
from ..store.layout import COMMIT, UNIT_RECORD, points_file, segment_file


@dataclass(frozen=True)
class StageView:
    """A stage of the latest plan: its name, unit kind (the one that summarises it), and unit ids (plan order) with
    their labels and their own unit kinds (a stage may emit several: landscape's direction, scan, hessian)."""

    name: str
    kind: str
    units: tuple[str, ...]
    labels: tuple[str, ...]
    unit_kinds: tuple[str, ...] = ()

    def label(self, uid: str) -> str:
        return self.labels[self.units.index(uid)]

    def kind_of(self, uid: str) -> str:
        """The unit kind of one unit of the stage (where its directory lies)."""
        return self.unit_kinds[self.units.index(uid)] if self.unit_kinds else self.kind


def open_study(path: str | Path) -> "StudyView":
    """Open the study stored in ``path`` (a store directory written by ``lowloss run``)."""
    study = StudyView(path)
    study.store.study()  # raises StoreError for a directory that is not a store
    study.store.check_format()  # and for a store of another format, naming what to do
    return study


def flatten(params: dict, prefix: str = "") -> dict:
    """{'model': {'name': 'mlp'}, 'seed': 0} → {'model.name': 'mlp', 'seed': 0} (lists stay values)."""
    out: dict = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


SPEC_NAMES = {"recipe": "train"}  # unit param key → the spec's own name of that table


def spec_named(params: dict) -> dict:
    """Unit params with top-level keys renamed to the spec's names (a train unit's ``recipe`` is the spec's [train])."""
    return {SPEC_NAMES.get(k, k): v for k, v in params.items()}


def hashable(value: Any) -> Any:
    """A group key for a param value (lists become tuples)."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, hashable(v)) for k, v in value.items()))
    return value


def table_from_rows(rows: list[dict], columns: Sequence[str] | None = None) -> pa.Table:
    """A table from dicts whose values may differ in type between rows (such a column is stored as JSON text)."""
    names: list[str] = list(columns) if columns is not None else []
    if columns is None:
        seen = set()
        for row in rows:
            for key in row:
                if key not in seen:
                    seen.add(key)
                    names.append(key)
    arrays = []
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.append(pa.array([None if v is None else json.dumps(v) for v in values], pa.string()))
    return pa.table(arrays, names=names) if names else pa.table({})


class StudyView:
    """A read-only view of a study store. Cheap to create; unit records are cached, commit states are not."""

    def __init__(self, store: Store | str | Path):
        self.store = store if isinstance(store, Store) else Store(store)
        self._records: dict[str, UnitRecord | None] = {}
        self._params: dict[str, dict] = {}
        self._kinds: dict[str, str] = {}

    # ------------------------------------------------------------------ plan and units
    @property
    def name(self) -> str:
        return self.store.study().study

    def stages(self, names: Iterable[str] | None = None) -> list[StageView]:
        """The stages of the latest plan (all, or those named, in plan order)."""
        plan = self.store.plan()
        self._kinds = plan.kinds()
        views = [
            StageView(
                s.name,
                s.kind,
                tuple(u.id for u in s.units),
                tuple(u.label for u in s.units),
                tuple(u.kind for u in s.units),
            )
            for s in plan.stages
        ]
        if names is None:
            return views
        wanted = list(names)
        known = {v.name for v in views}
        for name in wanted:
            if name not in known:
                raise SpecError(
                    "--stage", name, f"no such stage in this study; stages: {', '.join(sorted(known)) or '(none yet)'}"
                )
        return [v for v in views if v.name in wanted]

    def stage(self, name: str) -> StageView:
        return self.stages([name])[0]

    def kind_of(self, uid: str) -> str | None:
        """The unit kind of a unit of the latest plan (None: the plan does not list it)."""
        if uid not in self._kinds:
            self._kinds = self.store.plan().kinds()
        return self._kinds.get(uid)

    def record(self, uid: str) -> UnitRecord | None:
        """The unit's record (unit.json), or None when the unit has not been written yet (pending)."""
        if uid not in self._records:
            kind = self.kind_of(uid)
            if kind is None:
                return None
            try:
                self._records[uid] = self.store.unit(uid, kind)
            except DamagedError:
                raise  # damaged data is never shown as missing: the message names the repair
            except (StoreError, FileNotFoundError, NotADirectoryError):
                return None
        return self._records[uid]

    def params(self, uid: str) -> dict:
        """The unit's flattened params, with the fields its inputs agree on (see the module docstring)."""
        if uid in self._params:
            return self._params[uid]
        rec = self.record(uid)
        if rec is None:
            return {}
        own = flatten(spec_named(rec.params))
        inherited: dict = {}
        upstream = [self.params(inp) for inp in rec.inputs.values()]
        if upstream:
            for key in upstream[0]:
                if key in own or any(key.startswith(k + ".") for k in own):
                    continue
                values = [p.get(key, _ABSENT) for p in upstream]
                if all(v is not _ABSENT and hashable(v) == hashable(values[0]) for v in values):
                    inherited[key] = values[0]
        out = {**own, **inherited}
        self._params[uid] = out
        return out

    def sweep_by(self) -> list[str]:
        """The fields of the stored spec's ``[sweep]``, named as ``--by`` takes them (a stage field by its own name):
        the report's default grouping of a swept study. Empty without a sweep."""
        from ..spec.study import parse_spec

        try:
            study = parse_spec(self.store.spec_text(), str(self.store.root / "spec.toml"), check_unread=False)
        except (SpecError, OSError):
            return []
        return list(study.sweep_by)

    def fields(self, stages: Iterable[str] | None = None) -> list[str]:
        """Every param field (dotted) of the written units of these stages."""
        seen: set[str] = set()
        for view in self.stages(stages):
            for uid in view.units:
                seen.update(self.params(uid))
        return sorted(seen)

    def check_fields(self, by: Sequence[str], stages: Iterable[str] | None = None) -> None:
        """A SpecError naming a ``--by`` field that no unit of these stages has, with the allowed fields."""
        if not by:
            return
        allowed = self.fields(stages)
        for field in by:
            if field not in allowed:
                head, _, rest = field.partition(".")
                renamed = f"{SPEC_NAMES[head]}.{rest}" if head in SPEC_NAMES and rest else ""
                tail = [a for a in allowed if a.rsplit(".", 1)[-1] == field]  # `lr` for `train.lr`
                guess = (
                    renamed
                    if renamed in allowed
                    else tail[0]
                    if len(tail) == 1
                    else next(iter(difflib.get_close_matches(field, allowed, 1, 0.6)), "")
                )
                raise SpecError(
                    "--by",
                    field,
                    "no unit param of this study has that name"
                    + (f" (did you mean {guess!r}?)" if guess else "")
                    + "; allowed: "
                    + (", ".join(allowed) if allowed else "(no unit has started yet)"),
                )

    def groups(self, view: StageView, by: Sequence[str] = ()) -> dict[tuple, list[str]]:
        """A stage's unit ids per tuple of ``by`` field values. Without ``by``: one group () of every planned unit;
        with ``by``, units not written yet are left out (their params, hence their group, are unknown)."""
        if not by:
            return {(): list(view.units)}
        groups: dict[tuple, list[str]] = {}
        for uid in view.units:
            if self.record(uid) is not None:
                params = self.params(uid)
                groups.setdefault(tuple(hashable(params.get(f)) for f in by), []).append(uid)
        return groups

    def label_of(self, uid: str) -> str:
        """The label of a unit of any stage of the plan (its id when the plan does not list it)."""
        for view in self.stages():
            if uid in view.units:
                return view.label(uid)
        return uid

    def committed(self, uid: str, kind: str | None = None) -> bool:
        """Whether the unit is committed: its commit marker exists and is intact, and its ``unit.json`` hashes to its
        id. A damaged marker or unit record raises the store's ``DamagedError`` (naming the unit, the file and the
        repair): damage is never read as "not committed yet"."""
        kind = kind or self.kind_of(uid)
        if kind is None or self.store.read.commit(uid, kind) is None:
            return False
        if self._records.get(uid) is None:  # the record is checked against the id once per view
            try:
                self._records[uid] = self.store.unit(uid, kind)
            except (FileNotFoundError, NotADirectoryError):
                raise DamagedError(self.store.root, uid, f"{UNIT_RECORD} is missing beside its {COMMIT}") from None
        return True

    def state(self, uid: str) -> str:
        """done, running, failed, damaged or pending (not written yet)."""
        rec = self.record(uid)
        return self.store.state(uid, rec.kind).value if rec is not None else "pending"

    def result(self, uid: str) -> dict | None:
        """The unit's result.json when it is committed, else None (damage raises, as in ``committed``)."""
        kind = self.kind_of(uid)
        if kind is None or not self.committed(uid, kind):
            return None
        try:
            return self.store.read.result(uid, kind)
        except DamagedError:
            raise  # damaged data is never shown as missing: the message names the repair
        except StoreError:
            return None

    def attempts(self, uid: str) -> list[AttemptRecord]:
        """The unit's attempt records (``attempts/<n>.json``: state, started, finished, cpu_s, device, …), oldest
        first; empty for a unit not written yet."""
        rec = self.record(uid)
        return self.store.attempts.records(uid, rec.kind) if rec is not None else []

    def input_unit(self, ref: str) -> str:
        """The unit id of an input reference (``<id>`` or ``<id>:<output>``)."""
        return split_ref(ref)[0]

    def progress(self, stage: str) -> tuple[int, int]:
        """(committed units, planned units) of a stage."""
        view = self.stage(stage)
        return sum(self.committed(uid, view.kind_of(uid)) for uid in view.units), len(view.units)

    def units(self, stage: str | None = None) -> pa.Table:
        """One row per planned unit: stage, kind, unit, label, state, then its params as ``param.<field>`` columns."""
        rows = []
        for view in self.stages(None if stage is None else [stage]):
            for uid, label in zip(view.units, view.labels):
                state = self.state(uid)
                rows.append(
                    {
                        "stage": view.name,
                        "kind": view.kind_of(uid),
                        "unit": uid,
                        "label": label,
                        "state": state,
                        **{f"param.{k}": v for k, v in self.params(uid).items()},
                    }
                )
        return table_from_rows(rows)

    # ------------------------------------------------------------------ rows
    def _checked(self, uid: str, marker: SegmentMarker, rel: str) -> Path:
        """A committed segment file, its size and sha256 checked against its marker (the store raises DamagedError
        otherwise, naming the file and the repair). Each unchanged file is hashed once per process."""
        kind = self.kind_of(uid)
        assert kind is not None
        return self.store.read.segment_path(uid, kind, marker, rel)

    def _markers(self, uid: str) -> list[SegmentMarker]:
        """The committed segments of a unit (none for a unit the plan does not list or not written yet)."""
        kind = self.kind_of(uid)
        if kind is None:
            return []
        try:
            return self.store.read.segments(uid, kind)
        except DamagedError:
            raise  # damaged data is never shown as missing: the message names the repair
        except (StoreError, OSError):
            return []

    def unit_rows(self, uid: str, table: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """A unit's committed rows of one table (only ``columns`` when given; missing ones are left out), or None."""
        markers = self._markers(uid)
        parts = []
        for marker in markers:
            rel = segment_file(table, marker.name)
            if rel not in marker.files:
                continue
            pf = pq.ParquetFile(self._checked(uid, marker, rel))
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            parts.append(pf.read(columns=cols))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")

    def column_names(self, stage: str, table: str) -> list[str]:
        """The columns of a stage's table, in the order of the first committed file of each unit (union)."""
        names: list[str] = []
        seen: set[str] = set()
        for uid in self.stage(stage).units:
            for marker in self._markers(uid):
                rel = segment_file(table, marker.name)
                if rel in marker.files:
                    for n in pq.read_schema(self._checked(uid, marker, rel)).names:
                        if n not in seen:
                            seen.add(n)
                            names.append(n)
                    break
        return names

    def rows(self, stage: str, table: str, columns: Sequence[str] | None = None, done_only: bool = False) -> pa.Table:
        """The committed rows of ``table`` of every unit of ``stage`` (committed segments; with ``done_only``, only
        of committed units), with ``stage``, ``unit``, ``label`` and ``param.<field>`` columns in front."""
        view = self.stage(stage)
        parts, infos, counts = [], [], []
        for uid, label in zip(view.units, view.labels):
            if done_only and not self.committed(uid, view.kind_of(uid)):
                continue
            t = self.unit_rows(uid, table, columns)
            if t is None or t.num_rows == 0:
                continue
            parts.append(t)
            counts.append(t.num_rows)
            infos.append(
                {"stage": stage, "unit": uid, "label": label, **{f"param.{k}": v for k, v in self.params(uid).items()}}
            )
        if not parts:
            return pa.table(
                {
                    "stage": pa.array([], pa.string()),
                    "unit": pa.array([], pa.string()),
                    "label": pa.array([], pa.string()),
                }
            )
        data = pa.concat_tables(parts, promote_options="permissive")
        front = table_from_rows(infos).take(pa.array(np.repeat(np.arange(len(parts)), counts)))
        for i, name in enumerate(front.column_names):
            if name not in data.column_names:
                data = data.add_column(i, name, front.column(name))
        return data

    def results(self, stage: str) -> pa.Table:
        """One row per committed unit of ``stage``: stage, unit, label, ``param.<field>`` columns, then result.json."""
        view = self.stage(stage)
        rows = []
        for uid, label in zip(view.units, view.labels):
            result = self.result(uid) if self.committed(uid, view.kind_of(uid)) else None
            if result is None:
                continue
            rows.append(
                {
                    "stage": stage,
                    "unit": uid,
                    "label": label,
                    **{f"param.{k}": v for k, v in self.params(uid).items()},
                    **result,
                }
            )
        return table_from_rows(rows)

    # ------------------------------------------------------------------ points
    def point_tensors(self, uid: str, tensors: Sequence[str] | None = None) -> list[str]:
        """The floating-point tensor names (matching the glob patterns ``tensors``) of a unit's first committed points
        file, read from its header only."""
        from ...jobs.base import split_point_key

        for marker in self._markers(uid):
            rel = points_file(marker.name)
            if rel in marker.files:
                header = safetensors_header(self._checked(uid, marker, rel))
                names = [split_point_key(k)[0] for k, info in header.items() if info["dtype"] in _FLOATS]
                return [
                    n
                    for n in dict.fromkeys(names)
                    if tensors is None or any(fnmatch.fnmatchcase(n, p) for p in tensors)
                ]
        return []

    def points(self, uid: str, tensors: Sequence[str] | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(step, {tensor: float32 array}) of every committed point of a unit, in order: its floating-point tensors
        (the coordinates; counters such as BatchNorm's num_batches_tracked are left out). ``tensors`` are glob
        patterns of tensor names (default: all). A points file without step keys is one point at its segment index.
        Reads only the wanted tensors, without importing torch."""
        from ...jobs.base import split_point_key

        for marker in self._markers(uid):
            rel = points_file(marker.name)
            if rel not in marker.files:
                continue
            by_step: dict[int, dict[str, np.ndarray]] = {}
            for key, array in read_safetensors(
                self._checked(uid, marker, rel),
                lambda key: tensors is None or any(fnmatch.fnmatchcase(split_point_key(key)[0], p) for p in tensors),
            ).items():
                name, step = split_point_key(key)
                by_step.setdefault(marker.index if step is None else step, {})[name] = array
            for step in sorted(by_step):
                yield step, by_step[step]

    def final_tensors(self, uid: str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The floating-point tensors (all, or those named) of a committed unit's final state, as float32 arrays;
        empty when the unit is not committed or has no final state. Reads without importing torch."""
        kind = self.kind_of(uid)
        if kind is None or not self.committed(uid, kind):
            return {}
        record = self.store.read.commit(uid, kind)
        if record is None or FINAL not in record.files:
            return {}
        path = self.store.read.checked_file(uid, kind, FINAL)  # size and sha256, as every reader
        wanted = None if names is None else set(names)
        return read_safetensors(path, lambda key: wanted is None or key in wanted)


class CombinedView(StudyView):
    """Several study stores read as one (``lowloss report DIR1 DIR2 …``): stages of the same name are merged (they must
    be of the same kind), unit ids are qualified ``<store index>:<id>`` (two stores of one spec share ids), and every
    unit has the fields ``study`` (its study's name) and ``store`` (its store directory) to group by."""

    def __init__(self, views: Sequence[StudyView]):
        self.views = list(views)
        self._records = {}
        self._params = {}
        self._kinds = {}
        kinds: dict[str, tuple[str, str]] = {}
        for view in self.views:
            for stage in view.stages():
                seen = kinds.setdefault(stage.name, (stage.kind, str(view.store.root)))
                if seen[0] != stage.kind:
                    raise SpecError(
                        "STORE",
                        str(view.store.root),
                        f"stage {stage.name!r} is of kind {stage.kind} "
                        f"there but {seen[0]} in {seen[1]}; stores reported together need the same kinds",
                    )

    @property
    def name(self) -> str:
        return " + ".join(dict.fromkeys(v.name for v in self.views))

    def sweep_by(self) -> list[str]:
        return []  # several stores group by study or store

    def _split(self, uid: str) -> tuple[int, StudyView, str]:
        k, _, raw = uid.partition(":")
        return int(k), self.views[int(k)], raw

    def stages(self, names: Iterable[str] | None = None) -> list[StageView]:
        merged: dict[str, tuple[str, list[str], list[str]]] = {}
        for k, view in enumerate(self.views):
            for s in view.stages():
                kind, units, labels = merged.setdefault(s.name, (s.kind, [], []))
                units += [f"{k}:{u}" for u in s.units]
                labels += list(s.labels)
        views = [StageView(n, kind, tuple(u), tuple(lab)) for n, (kind, u, lab) in merged.items()]
        if names is None:
            return views
        wanted = list(names)
        for name in wanted:
            if name not in merged:
                raise SpecError("--stage", name, f"no such stage in these studies; stages: {', '.join(sorted(merged))}")
        return [v for v in views if v.name in wanted]

    def kind_of(self, uid: str) -> str | None:
        _, view, raw = self._split(uid)
        return view.kind_of(raw)

    def record(self, uid: str) -> UnitRecord | None:
        k, view, raw = self._split(uid)
        rec = view.record(raw)
        if rec is None:
            return None
        from dataclasses import replace

        return replace(rec, id=uid, inputs={role: f"{k}:{i}" for role, i in rec.inputs.items()})

    def params(self, uid: str) -> dict:
        _, view, raw = self._split(uid)
        own = view.params(raw)
        return {**own, "study": view.name, "store": str(view.store.root)} if own else {}

    def committed(self, uid: str, kind: str | None = None) -> bool:
        _, view, raw = self._split(uid)
        return view.committed(raw, kind)

    def state(self, uid: str) -> str:
        _, view, raw = self._split(uid)
        return view.state(raw)

    def result(self, uid: str) -> dict | None:
        _, view, raw = self._split(uid)
        return view.result(raw)

    def attempts(self, uid: str) -> list[AttemptRecord]:
        _, view, raw = self._split(uid)
        return view.attempts(raw)

    def input_unit(self, ref: str) -> str:
        k, _, raw = ref.partition(":")
        return f"{k}:{split_ref(raw)[0]}"

    def unit_rows(self, uid: str, table: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        _, view, raw = self._split(uid)
        return view.unit_rows(raw, table, columns)

    def column_names(self, stage: str, table: str) -> list[str]:
        names: dict[str, None] = {}
        for view in self.views:
            if any(s.name == stage for s in view.stages()):
                names.update(dict.fromkeys(view.column_names(stage, table)))
        return list(names)

    def point_tensors(self, uid: str, tensors: Sequence[str] | None = None) -> list[str]:
        _, view, raw = self._split(uid)
        return view.point_tensors(raw, tensors)

    def points(self, uid: str, tensors: Sequence[str] | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        _, view, raw = self._split(uid)
        return view.points(raw, tensors)

    def final_tensors(self, uid: str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        _, view, raw = self._split(uid)
        return view.final_tensors(raw, names)


_FLOATS = ("F64", "F32", "F16", "BF16")
_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}


def _header(fh) -> dict:
    """The JSON header of a safetensors file ({key: {dtype, shape, data_offsets}}); leaves fh at the data."""
    (size,) = struct.unpack("<Q", fh.read(8))
    header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def safetensors_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        return _header(fh)


def read_safetensors(path: Path, want) -> dict[str, np.ndarray]:
    """The floating-point tensors of a safetensors file whose key ``want(key)`` accepts, as float32 numpy arrays.
    The format: 8-byte little-endian header length, the JSON header, then the data at the header's offsets."""
    out = {}
    with open(path, "rb") as fh:
        header = _header(fh)
        base = fh.tell()
        for key, info in header.items():
            if info["dtype"] not in _FLOATS or not want(key):
                continue
            begin, end = info["data_offsets"]
            fh.seek(base + begin)
            buf = fh.read(end - begin)
            if info["dtype"] == "BF16":
                array = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(buf, _NUMPY_DTYPES[info["dtype"]]).astype(np.float32)
            out[key] = array.reshape(info["shape"])
    return out


class _Absent:
    pass


_ABSENT = _Absent()


__all__ = [
    "SPEC_NAMES",
    "CombinedView",
    "StageView",
    "StudyView",
    "flatten",
    "hashable",
    "open_study",
    "table_from_rows",
]
