"""Summary over repetitions of the metrics and verdicts each unit kind declares: n, mean ± std, min, max (metrics)
and success rate k/n (verdicts) per stage, optionally per group of a param field. `lowloss run` prints it at its end;
`lowloss report` prints and writes it (orchestrator/report.py).

It reads a study through the ``ResultSource`` protocol (``api.StudyView`` is one) and imports nothing of the API: the
API reads a store, this module computes over what it reads."""

from __future__ import annotations

import json
import math
import re
from typing import Iterable, Literal, Protocol, Sequence

from rich.table import Table

from ... import jobs
from ...jobs.base import Metric, Verdict
from ..store import DamagedError


class ResultSource(Protocol):
    """What the summary reads of a study (``api.StudyView`` provides it)."""

    @property
    def name(self) -> str: ...

    def stages(self, names: Iterable[str] | None = None) -> list: ...

    def check_fields(self, by: Sequence[str], stages: Iterable[str] | None = None) -> None: ...

    def groups(self, view, by: Sequence[str] = ()) -> dict[tuple, list[str]]: ...

    def committed(self, uid: str, kind: str | None = None) -> bool: ...

    def result(self, uid: str) -> dict | None: ...


def stats(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": std, "min": min(vals), "max": max(vals)}


def summary_rows(
    study: ResultSource,
    by: Sequence[str] = (),
    stages: Iterable[str] | None = None,
    damaged_as_missing: bool = False,
) -> list[dict]:
    """One row per (stage, group, metric or verdict): the stats over the group's committed units' result.json.

    Metric rows: n, mean, std, min, max. Verdict rows (boolean result keys): n, successes, rate. Every row also has
    ``units`` (planned units of the group whose params are known) and ``missing`` (those not committed yet).
    ``by`` names param fields (``model.name``, ``train.lr``); with none, a stage is one group of all its units.
    Every row of one (stage, metric) has the same ``decimals``: the precision its cells are shown with.
    A damaged unit (commit marker, unit record or result) raises the store's ``DamagedError``; with
    ``damaged_as_missing`` it counts as missing instead (the summary `lowloss run` prints beside the damaged units
    its outcome names).
    """
    by = tuple(by)
    study.check_fields(by, stages)
    rows = []
    kinds = jobs.unit_kinds()
    for view in study.stages(stages):
        kind = kinds.get(view.kind)
        if kind is None:
            continue
        groups = study.groups(view, by)  # with by, unwritten units are in no group (the stage's progress counts them)
        for key in sorted(groups, key=group_order):
            uids = groups[key]
            results: list[dict] = [
                r
                for r in (_committed_result(study, uid, view.kind_of(uid), damaged_as_missing) for uid in uids)
                if r is not None
            ]
            base = {
                "stage": view.name,
                "kind": view.kind,
                "group": dict(zip(by, key)),
                "units": len(uids),
                "missing": len(uids) - len(results),
            }
            rows += [metric_row(base, metric, results) for metric in kind.metrics]
            rows += [verdict_row(base, verdict, results) for verdict in kind.verdicts]
    set_decimals(rows)
    return rows


def _committed_result(study: ResultSource, uid: str, kind: str, damaged_as_missing: bool) -> dict | None:
    try:
        return study.result(uid) if study.committed(uid, kind) else None
    except DamagedError:
        if damaged_as_missing:
            return None
        raise


def metric_row(base: dict, metric: Metric, results: list[dict]) -> dict:
    """A metric's statistics over a group's results."""
    return {
        **base,
        "type": "metric",
        "metric": metric.key,
        "label": metric.label,
        "fmt": metric.fmt,
        **stats([r.get(metric.key) for r in results]),
    }


def verdict_row(base: dict, verdict: Verdict, results: list[dict]) -> dict:
    """A verdict's success rate over a group's results (a result without the boolean key is not counted)."""
    values: list[bool] = [r[verdict.key] for r in results if isinstance(r.get(verdict.key), bool)]
    k = sum(values)
    return {
        **base,
        "type": "verdict",
        "metric": verdict.key,
        "label": verdict.label,
        "fmt": ".0%",
        "n": len(values),
        "successes": k,
        "rate": k / len(values) if values else math.nan,
        "mean": math.nan,
        "std": math.nan,
        "min": math.nan,
        "max": math.nan,
    }


def set_decimals(rows: list[dict]) -> None:
    """One precision per (stage, metric), over all its groups: a fixed-point format (``.4f``) keeps its decimals; a
    significant-digit one (``.4g``) gets the decimals that show the largest |value| with that many digits, for mean,
    std, min and max alike (never ``0.0108 ± 0.0000`` next to ``0.04837 ± 0``)."""
    largest: dict[tuple, float] = {}
    for row in rows:
        if row["type"] != "metric":
            continue
        values = [abs(row[k]) for k in ("mean", "min", "max") if isinstance(row[k], float) and math.isfinite(row[k])]
        key = (row["stage"], row["metric"])
        largest[key] = max([largest.get(key, 0.0), *values])
    for row in rows:
        row["decimals"] = decimals(row["fmt"], largest.get((row["stage"], row["metric"]), 0.0))


def decimals(fmt: str, largest: float) -> int | None:
    """Decimals of a metric format: ``.Nf`` → N; ``.Ng`` → enough for N significant digits of ``largest`` (≤ 10)."""
    m = re.fullmatch(r"\.(\d+)([fg])", fmt)
    if not m:
        return None
    digits = int(m.group(1))
    if m.group(2) == "f":
        return digits
    if largest <= 0:
        return digits
    return int(min(10, max(0, digits - 1 - math.floor(math.log10(largest)))))


def group_order(key: tuple) -> tuple:
    """Sort key of group values: numbers in order, then text, then units without the field."""
    return tuple((2, "") if v is None else (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in key)


def group_text(value) -> str:
    """A group value as shown in tables ("—" for a unit without that field)."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return "[" + ", ".join(group_text(v) for v in value) + "]"
    return str(value)


def cells(row: dict) -> dict:
    """The shown cells of a summary row: n (with missing), mean ± std (or k/n (rate) for a verdict), min, max."""
    f = row["fmt"]
    n = f"{row['n']}" + (f" ({row['missing']} missing)" if row["missing"] else "")
    if row["type"] == "verdict":
        rate = f"{row['successes']}/{row['n']} ({row['rate']:.0%})" if row["n"] else "—"
        return {"n": n, "mean": rate, "std": "", "min": "—", "max": "—"}
    if not row["n"]:
        return {"n": n, "mean": "—", "std": "", "min": "—", "max": "—"}
    d = row.get("decimals")
    f = f".{d}f" if d is not None else f
    return {
        "n": n,
        "mean": f"{row['mean']:{f}}",
        "std": f"{row['std']:{f}}" if row["n"] > 1 else "",  # one repetition has no spread to show
        "min": f"{row['min']:{f}}",
        "max": f"{row['max']:{f}}",
    }


def summary_records(rows: list[dict], by: Sequence[str] = ()) -> list[dict]:
    """Flat, machine-readable summary rows (CSV, Parquet, the Python API): group fields become columns."""
    out = []
    for row in rows:
        rec = {"stage": row["stage"], "kind": row["kind"]}
        for field in by:
            value = row["group"].get(field)
            rec[field] = json.dumps(list(value)) if isinstance(value, tuple) else value
        rec.update(
            {
                "metric": row["metric"],
                "label": row["label"],
                "type": row["type"],
                "n": row["n"],
                "units": row["units"],
                "missing": row["missing"],
                "mean": row["mean"],
                "std": row["std"],
                "min": row["min"],
                "max": row["max"],
                "successes": row.get("successes"),
                "rate": row.get("rate"),
            }
        )
        out.append(rec)
    return out


def summary_table(
    study: ResultSource,
    title: str | None = None,
    by: Sequence[str] = (),
    stages: Iterable[str] | None = None,
    rows: list[dict] | None = None,
) -> Table:
    """The summary as a rich table (what `lowloss run` prints at its end and `lowloss report` prints by default).
    Without ``rows`` — the end of `lowloss run`, whose outcome names its damaged units — a damaged unit counts as
    missing; `lowloss report` passes the rows of ``summary_rows``, which stop on damage."""
    rows = summary_rows(study, by, stages, damaged_as_missing=True) if rows is None else rows
    table = Table(title=title or f"study {study.name} — summary over repetitions", title_justify="left")
    columns: list[tuple[str, Literal["left", "right"]]] = [
        ("stage", "left"),
        *((f, "left") for f in by),
        ("metric", "left"),
        ("n", "right"),
        ("mean ± std", "right"),
        ("min", "right"),
        ("max", "right"),
    ]
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for row in rows:
        c = cells(row)
        shown = f"{c['mean']} ± {c['std']}" if c["std"] else c["mean"]
        table.add_row(
            row["stage"],
            *(group_text(row["group"].get(f)) for f in by),
            row["label"],
            c["n"],
            shown,
            c["min"],
            c["max"],
        )
    return table
