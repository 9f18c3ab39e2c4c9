"""``lowloss report``: the summary over repetitions as a table (terminal, Markdown, CSV, Parquet, LaTeX) and the figures
every stage's unit kind declares. Reads only committed segments and results, so it works on a running study and says
how many units are still missing.

The numbers come from ``summary.summary_rows`` (the same code `lowloss run` prints at its end); the figures from
``figures.render``. Nothing here knows a unit kind: metrics, verdicts and figures are what the kinds declare.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..spec import SpecError
from .api import StudyView, table_from_rows
from .summary import cells, group_text, summary_records, summary_rows

FORMATS = ("md", "csv", "parquet", "latex")
EXTENSIONS = {"md": "md", "csv": "csv", "parquet": "parquet", "latex": "tex"}


def check_format(fmt: str | None, out: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise SpecError("--format", fmt, f"unknown table format; allowed: {', '.join(FORMATS)}")
    if fmt == "parquet" and out is None:
        raise SpecError(
            "--format",
            fmt,
            "Parquet is binary: give --out DIR to write summary.parquet there (or use --format csv for the terminal)",
        )


def progress_lines(study: StudyView, stages: Sequence[str] | None = None) -> list[str]:
    """Per stage: how many units are committed and how many are still missing (the table covers committed ones)."""
    lines = []
    for view in study.stages(stages):
        done, total = study.progress(view.name)
        missing = total - done
        lines.append(
            f"stage {view.name} ({view.kind}): {done} of {total} unit(s) committed"
            + (f"; {missing} still missing (running, pending or failed) — not in the numbers yet" if missing else "")
        )
    return lines


# ---------------------------------------------------------------------- table formats


def _columns(by: Sequence[str]) -> list[str]:
    return ["stage", *by, "metric", "n", "mean ± std", "min", "max"]


def _display(row: dict, by: Sequence[str], pm: str = " ± ") -> list[str]:
    c = cells(row)
    return [
        row["stage"],
        *(group_text(row["group"].get(f)) for f in by),
        row["label"],
        c["n"],
        f"{c['mean']}{pm}{c['std']}" if c["std"] else c["mean"],
        c["min"],
        c["max"],
    ]


def to_markdown(rows: list[dict], by: Sequence[str], title: str, notes: Sequence[str] = ()) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    cols = _columns(by)
    right = {"n", "mean ± std", "min", "max"}
    lines = [
        f"## {title}",
        "",
        "| " + " | ".join(cols) + " |",
        "| " + " | ".join("---:" if c in right else "---" for c in cols) + " |",
    ]
    lines += ["| " + " | ".join(esc(v) for v in _display(r, by)) + " |" for r in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict], by: Sequence[str]) -> str:
    records = summary_records(rows, by)
    buf = io.StringIO()
    fields = (
        list(records[0])
        if records
        else [
            "stage",
            "kind",
            *by,
            "metric",
            "label",
            "type",
            "n",
            "units",
            "missing",
            "mean",
            "std",
            "min",
            "max",
            "successes",
            "rate",
        ]
    )
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in rec.items()})
    return buf.getvalue()


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "---",
    "α": r"$\alpha$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(rows: list[dict], by: Sequence[str], title: str, notes: Sequence[str] = ()) -> str:
    """A paper-ready ``tabular`` (booktabs rules) with mean $\\pm$ std; a rule between stages."""
    cols = _columns(by)
    spec = "l" * (1 + len(by) + 1) + "rrrr"
    out = [f"% {latex_escape(title)}", "% needs \\usepackage{booktabs}"] + [f"% {latex_escape(n)}" for n in notes]
    out += [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c) if c != "mean ± std" else r"mean $\pm$ std" for c in cols) + r" \\",
        "\\midrule",
    ]
    previous = None
    for row in rows:
        if previous is not None and row["stage"] != previous:
            out.append("\\midrule")
        previous = row["stage"]
        cells_ = _display(row, by, pm=" PLUSMINUS ")
        shown = []
        for cell in cells_:
            text = latex_escape(cell)
            if " PLUSMINUS " in cell:
                mean, std = cell.split(" PLUSMINUS ")
                text = f"${mean} \\pm {std}$"
            shown.append(text)
        out.append(" & ".join(shown) + r" \\")
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def render_table(rows: list[dict], by: Sequence[str], fmt: str, title: str, notes: Sequence[str] = ()) -> str:
    if fmt == "md":
        return to_markdown(rows, by, title, notes)
    if fmt == "csv":
        return to_csv(rows, by)
    if fmt == "latex":
        return to_latex(rows, by, title, notes)
    raise ValueError(fmt)


def write_tables(
    rows: list[dict], by: Sequence[str], out: Path, formats: Sequence[str], title: str, notes: Sequence[str] = ()
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"summary.{EXTENSIONS[fmt]}"
        if fmt == "parquet":
            pq.write_table(table_from_rows(summary_records(rows, by)), path)
        else:
            path.write_text(render_table(rows, by, fmt, title, notes))
        paths.append(path)
    return paths


def title_of(study: StudyView, by: Sequence[str]) -> str:
    return f"study {study.name} — summary over repetitions" + (f" by {', '.join(by)}" if by else "")


def summary(study: StudyView, by: Sequence[str] = (), stages: Sequence[str] | None = None) -> pa.Table:
    """The summary over repetitions as a pyarrow Table (n, mean, std, min, max per metric; successes and rate per
    verdict), one row per stage, group and metric: what `lowloss report --format parquet` writes."""
    return table_from_rows(summary_records(summary_rows(study, by, stages), by))


# ---------------------------------------------------------------------- `lowloss results`: one row per unit

RESULT_FORMATS = ("csv", "parquet", "md")


def _flat_result(result: dict) -> dict:
    """A result.json as columns: nested tables as dotted keys (``path_so_far.max_train_loss``), lists as values."""
    out: dict = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in _flat_result(value).items()})
        else:
            out[key] = value
    return out


def results_table(study: StudyView, stage: str) -> pa.Table:
    """Every planned unit of a stage, in plan order: stage, unit, label, state, ``param.<field>`` (the spec's names),
    then its result keys (empty while the unit is not committed)."""
    view = study.stage(stage)
    rows = []
    for uid, label in zip(view.units, view.labels):
        result = study.result(uid) if study.committed(uid, view.kind) else None
        rows.append(
            {
                "stage": stage,
                "unit": uid,
                "label": label,
                "state": study.state(uid),
                **{f"param.{k}": v for k, v in study.params(uid).items()},
                **_flat_result(result or {}),
            }
        )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return table_from_rows(rows, columns)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def write_results(table: pa.Table, fmt: str, out: Path | None, title: str) -> str | None:
    """The table as CSV or Markdown text (returned when ``out`` is None), or written to ``out`` (also Parquet)."""
    if fmt == "parquet":
        assert out is not None
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
        return None
    rows = table.to_pylist()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([[_cell(r[c]) for c in table.column_names] for r in rows])
        text = buf.getvalue()
    else:
        head = table.column_names
        text = (
            f"## {title}\n\n| "
            + " | ".join(head)
            + " |\n| "
            + " | ".join("---" for _ in head)
            + " |\n"
            + "".join("| " + " | ".join(_cell(r[c]).replace("|", "\\|") for c in head) + " |\n" for r in rows)
        )
    if out is None:
        return text
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return None
