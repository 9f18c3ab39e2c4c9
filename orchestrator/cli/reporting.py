"""Commands that read results: ``report``, ``results``, ``recipes``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.table import Table

from ... import jobs
from ..report.api import CombinedView, StudyView, open_study
from ..report.figures import FigureFile, render
from ..report.summary import summary_rows, summary_table
from ..report.tables import (
    FORMATS,
    RESULT_FORMATS,
    check_format,
    progress_lines,
    render_table,
    results_table,
    title_of,
    write_results,
    write_tables,
)
from ..spec import MISSING, SpecError
from .common import DEFAULT_RECIPE, out, recipes


def open_views(stores: list[str]) -> StudyView:
    """One store: its StudyView; several: a CombinedView (stages merged by name, fields ``study`` and ``store``)."""
    views = [open_study(path) for path in stores]
    return views[0] if len(views) == 1 else CombinedView(views)


def _grouping(args: argparse.Namespace, study: StudyView) -> list[str]:
    """The ``--by`` fields; by default a study's sweep (or, for several stores, the study or store)."""
    by = [f.strip() for item in args.by or [] for f in item.split(",") if f.strip()]
    if len(args.store) > 1 and not by and isinstance(study, CombinedView):
        by = ["study"] if len({v.name for v in study.views}) > 1 else ["store"]
    if not by:  # a swept study: one group per combination (of the fields the reported stages' units have)
        present = set(study.fields(args.stage)) if args.stage else None
        by = [f for f in study.sweep_by() if present is None or f in present]
    return by


def cmd_report(args: argparse.Namespace) -> int:
    """Everything is computed (and with --out, written into a hidden folder beside DIR) before anything is printed or
    put in DIR: a damaged file met on the way stops the report with its one line, and DIR stays as it was."""
    check_format(args.format, args.out)
    if args.smooth is not None and args.smooth < 1:
        raise SpecError("--smooth", args.smooth, "a moving-average window of at least 1 (in x units)")
    for flag, given in (("--smooth", args.smooth is not None), ("--no-figures", args.no_figures)):
        if given and args.out is None:
            raise SpecError(flag, MISSING, "shapes the figures, which only --out DIR writes: add --out DIR")
    study = open_views(args.store)
    by = _grouping(args, study)
    stages = args.stage or None
    rows = summary_rows(study, by, stages)
    notes = progress_lines(study, stages)
    title = title_of(study, by)
    console = out()
    if args.format is not None and args.out is None:
        sys.stdout.write(render_table(rows, by, args.format, title, notes))
        if args.format == "csv":
            print("\n".join(notes), file=sys.stderr)
        return 0
    said = [] if args.out is None else _write_out(args, study, rows, by, title, notes)
    console.print(summary_table(study, title, by, stages, rows=rows))
    for line in [*notes, *said]:
        console.print(line)
    return 0


def _write_out(
    args: argparse.Namespace, study: StudyView, rows: list[dict], by: list[str], title: str, notes: list[str]
) -> list[str]:
    """The tables and figures of ``--out DIR``, drawn into a hidden folder and moved into DIR once all of them are
    done; the lines that name them."""
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise SpecError("--out", args.out, "is a file: give a directory for summary.<ext> and figures/")
    with _staged(folder) as staging:
        tables = write_tables(rows, by, staging, [args.format] if args.format else FORMATS, title, notes)
        figures = None if args.no_figures else render(study, staging / "figures", by, args.stage, args.smooth)
        said = _wrote(staging, folder, tables, figures)
        _move_into(staging, folder)
    return said


@contextmanager
def _staged(folder: Path) -> Iterator[Path]:
    """A hidden folder on the file system of ``folder`` (inside its nearest existing ancestor), removed at the end:
    what is written there reaches ``folder`` only through ``_move_into``."""
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    staging = Path(tempfile.mkdtemp(prefix=".lowloss-report-", dir=existing))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(staging: Path, folder: Path) -> None:
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = folder / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


def _wrote(staging: Path, folder: Path, tables: list[Path], figures: list[FigureFile] | None) -> list[str]:
    """The lines that name what the report wrote, by the paths the files get in ``folder``."""

    def final(path: Path) -> Path:
        return folder / path.relative_to(staging)

    lines = [f"wrote {final(path)}" for path in tables]
    for f in figures or []:
        lines.append(
            f"wrote {' '.join(str(final(p)) for p in f.paths)}  ({f.units} {f.what[:-1] if f.units == 1 else f.what})"
        )
        for table in f.tables:
            lines.append(f"wrote {final(table)}")
            if table.suffix == ".md":
                lines.append(table.read_text().rstrip())
    if figures == []:
        lines.append("no figures: no stage has committed rows of a declared figure yet")
    return lines


def cmd_results(args: argparse.Namespace) -> int:
    if args.format not in RESULT_FORMATS:
        raise SpecError("--format", args.format, f"unknown format; allowed: {', '.join(RESULT_FORMATS)}")
    if args.format == "parquet" and args.out is None:
        raise SpecError("--format", "parquet", "Parquet is binary: give --out FILE (or use --format csv or md)")
    study = open_views(args.store)
    table = results_table(study, args.stage)
    title = f"study {study.name} — stage {args.stage}: one row per unit"
    text = write_results(table, args.format, Path(args.out) if args.out else None, title)
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.out} ({table.num_rows} units, {table.num_columns} columns)", file=sys.stderr)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    table = Table(title="recipes (run one with `lowloss run NAME --store DIR`)", title_justify="left")
    table.add_column("name")
    table.add_column("source / description")
    for name, path in recipes().items():
        shown = name + (" (default)" if name == DEFAULT_RECIPE else "")
        table.add_row(shown, jobs.recipe_description(path.read_text()))
    out().print(table)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("report", help="summary over repetitions per stage (and group), tables and figures")
    sp.add_argument(
        "store",
        nargs="+",
        help="one or more store directories (several: reported together, grouped by study unless --by says otherwise)",
    )
    sp.add_argument(
        "--by",
        action="append",
        metavar="FIELD",
        help="group by a field, named as in the spec (train.lr, model.name, a stage field such as points; "
        "study or store with several stores); repeat or comma-separate",
    )
    sp.add_argument("--format", metavar="FMT", help="table format: md, csv, parquet, latex (default: a terminal table)")
    sp.add_argument("--out", metavar="DIR", help="write summary.<ext> and figures/ (PNG and PDF) into DIR")
    sp.add_argument("--stage", action="append", metavar="NAME", help="only this stage (repeatable)")
    sp.add_argument(
        "--smooth",
        type=float,
        metavar="N",
        help="trailing moving-average window of band figures' dense series, in x units (default: the kind's; 1: none)",
    )
    sp.add_argument("--no-figures", action="store_true", help="with --out: write the tables only")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("results", help="export one row per unit of a stage: its state, params and results")
    sp.add_argument("store", nargs="+", help="one or more store directories")
    sp.add_argument("--stage", required=True, metavar="NAME", help="the stage whose units are exported")
    sp.add_argument("--format", default="csv", metavar="FMT", help="csv (default), parquet or md")
    sp.add_argument("--out", metavar="FILE", help="write to FILE (needed for parquet; default: standard output)")
    sp.set_defaults(func=cmd_results)

    sp = sub.add_parser("recipes", help="list the ready-made spec files")
    sp.set_defaults(func=cmd_recipes)
