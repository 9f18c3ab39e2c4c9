"""Summary over repetitions of the metrics each unit kind declares: n, mean ± std, min, max per stage."""
from __future__ import annotations

import math

from rich.table import Table

from lowloss import jobs

from .store import Store


def stats(values: list[float]) -> dict:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": std, "min": min(vals), "max": max(vals)}


def summary_rows(store: Store) -> list[dict]:
    """One row per (stage, metric): the stats over the stage's committed units, and how many are missing."""
    rows = []
    for info in store.plan().get("stages", []):
        stage = info["name"]
        kind = jobs.KINDS.get(info["kind"])
        if kind is None:
            continue
        ids = [u["id"] for u in info["units"]]
        results = [r for r in (store.result(uid) if store.is_committed(uid, info["kind"]) else None for uid in ids)
                   if r is not None]
        for metric in kind.metrics:
            s = stats([r.get(metric.key) for r in results])
            rows.append({"stage": stage, "kind": info["kind"], "metric": metric.key, "label": metric.label,
                         "fmt": metric.fmt, "units": len(ids), "missing": len(ids) - len(results), **s})
    return rows


def summary_table(store: Store, title: str | None = None) -> Table:
    table = Table(title=title or f"study {store.study().get('study')} — summary over repetitions", title_justify="left")
    for col, justify in (("stage", "left"), ("metric", "left"), ("n", "right"), ("mean ± std", "right"),
                         ("min", "right"), ("max", "right")):
        table.add_column(col, justify=justify)
    for row in summary_rows(store):
        f = row["fmt"]
        n = f"{row['n']}" + (f" ({row['missing']} missing)" if row["missing"] else "")
        if row["n"]:
            table.add_row(row["stage"], row["label"], n, f"{row['mean']:{f}} ± {row['std']:{f}}",
                          f"{row['min']:{f}}", f"{row['max']:{f}}")
        else:
            table.add_row(row["stage"], row["label"], n, "—", "—", "—")
    return table
