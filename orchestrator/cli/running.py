"""Commands that run or plan a study: ``run``, ``resume``, ``submit``, ``validate``, ``plan``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from rich.table import Table

from ... import jobs
from ..engine.outcome import Outcome
from ..engine.preview import PlanPreview, preview
from ..engine.session import RunRequest, edge_checks, run_study, stop_on_sigterm
from ..executors.coordinator_job import coordinator_job, submit
from ..executors.profiles import coordinator_sbatch_options, load_profile
from ..report.api import StudyView
from ..report.summary import summary_table
from ..spec import Study, check_data, parse_spec
from ..store import LockMechanism, Store
from .common import DEFAULT_RECIPE, RUN_FLAGS, data_root, out, resolve_spec, with_overrides


def cmd_run(args: argparse.Namespace, study: Study | None = None) -> int:
    study = with_overrides(study or resolve_spec(args.spec), args)
    request = RunRequest(Store(args.store), data_root(study, args), args.retry_failed, args.repair)
    for note in edge_checks(study, request):
        print(f"lowloss: note: {note}", file=sys.stderr)
    stop_on_sigterm()
    outcome = run_study(study, request)
    return say_outcome(request.store, study, outcome)


def cmd_resume(args: argparse.Namespace) -> int:
    store = Store(args.store)
    store.check_format()
    study = parse_spec(store.spec_text(), str(store.layout.spec_file), check_unread=False)
    settings = store.run_settings()
    stored = settings.data_root
    if not getattr(args, "data_root", None) and stored and os.path.isdir(stored):
        args.data_root = stored  # the root the store last ran with (gone: a dataset that needs one asks for it)
    if getattr(args, "lock", None) is None and settings.lock is LockMechanism.LEASE:
        args.lock = settings.lock.value  # leases stay leases: where flock is node-local, auto would take it
        if getattr(args, "lease_seconds", None) is None:
            args.lease_seconds = settings.lease_seconds
    return cmd_run(args, study)


def say_outcome(store: Store, study: Study, outcome: Outcome) -> int:
    """The run's summary table and what is left to do; the exit code (0: every unit committed, every stage closed)."""
    if outcome.nospace:
        print(f"lowloss: error: {outcome.nospace}", file=sys.stderr)
        return 1
    console = out()
    by = list(study.sweep_by)
    console.print(
        summary_table(StudyView(store), f"study {study.name} — summary by {', '.join(by)}" if by else None, by)
    )
    root = store.root
    lines = [
        (
            outcome.failed,
            f"[red]{len(outcome.failed)} unit(s) failed[/red] after {study.run.retries} retries; "
            f"`lowloss status {root}` shows their errors and logs. Fix the cause, then "
            f"`lowloss resume {root} --retry-failed`.",
        ),
        (
            outcome.damaged,
            f"[red]{len(outcome.damaged)} unit(s) are damaged[/red] (their files disagree with their "
            f"commit markers) and were not used; `lowloss verify {root}` names the files, "
            f"`lowloss resume {root} --repair` runs them again.",
        ),
        (
            outcome.repaired,
            f"{len(outcome.repaired)} damaged or downstream unit(s) were moved to {root / 'damaged'} and run again.",
        ),
        (outcome.blocked, f"{len(outcome.blocked)} unit(s) wait on failed, cancelled or damaged inputs."),
        (
            outcome.cancelled,
            f"{len(outcome.cancelled)} unit(s) were cancelled; `lowloss resume {root}` continues them.",
        ),
        (
            outcome.pending,
            f"{len(outcome.pending)} unit(s) did not finish in this run; `lowloss resume {root}` continues them.",
        ),
    ]
    for present, line in lines:
        if present:
            console.print(line)
    for line in outcome.stalled:
        console.print(f"[yellow]stage {line}[/yellow]: still open, with nothing left to run")
    resumed = f", {len(outcome.resumed)} of them resumed from committed segments" if outcome.resumed else ""
    console.print(f"{len(outcome.done)} unit(s) run now{resumed}, {len(outcome.reused)} reused from the store.")
    console.print(f"Figures and tables: `lowloss report {root} --out {root / 'report'}`.")
    return 0 if outcome.ok else 1


def cmd_validate(args: argparse.Namespace) -> int:
    study = resolve_spec(args.spec)
    check_data(study, data_root(study, args))
    planned = len(preview(study).planner.units)  # a study too large to expand is refused here as `run` would
    sweep = (
        f", {len(study.variants)} sweep combinations of {', '.join(study.sweep_fields)}" if study.sweep_fields else ""
    )
    out().print(
        f"{study.source}: valid — study {study.name!r}, {len(study.seeds)} seeds{sweep}, "
        f"stages: {', '.join(f'{s.name} ({s.kind})' for s in study.stages)}; {planned} unit(s) planned so far "
        "(`lowloss plan` lists them)"
    )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    study = resolve_spec(args.spec)
    if args.data_root:
        check_data(study, data_root(study, args))
    store = Store(args.store) if args.store else None
    if store is not None:
        store.check_study(study.name)
    shown = preview(study, store)
    console = out()
    console.print(_plan_table(shown, store))
    for stage in study.stages:
        for line in jobs.get_stage_kind(stage.kind).describe(stage.params, study.context):
            console.print(f"  {stage.name}: {line}")
    if args.units:
        for stage in study.stages:
            for u in shown.planner.stage_units(stage.name):
                others = [s for s in shown.planned_by[u.id] if s != stage.name]
                also = f"  (shared with {', '.join(others)})" if others else ""
                console.print(f"  {u.id}  {stage.name:<12} {u.kind:<12} {u.label}{also}")
    twice = shown.shared_units
    console.print(
        f"{len(shown.to_run)} unit(s) would run"
        + (" so far (open stages plan more as results arrive)" if shown.open else "")
        + (f"; {twice} unit(s) planned by more than one stage are counted once." if twice else ".")
    )
    return 0


def _plan_table(shown: PlanPreview, store: Store | None) -> Table:
    study = shown.study
    title = f"plan of study {study.name!r}" + (f" against {store.root}" if store else "")
    table = Table(title=title, title_justify="left")
    twice = shown.shared_units
    columns = ("stage", "kind", "unit kinds (resource class)", "units", "shared with", "done", "would run", "planning")
    for col in columns:
        if col == "shared with" and not twice:
            continue
        left = col in ("stage", "kind", "unit kinds (resource class)", "shared with", "planning")
        table.add_column(col, justify="left" if left else "right")
    for row in shown.stages:
        sharing = [", ".join(f"{other} ({n})" for other, n in row.shared.items())] if twice else []
        classes = ", ".join(f"{k} ({c})" for k, c in row.unit_kinds)
        status = ("open: " + (row.note or "plans more units as results arrive")) if row.open else "closed"
        table.add_row(row.name, row.kind, classes, str(row.units), *sharing, str(row.done), str(row.would_run), status)
    return table


def cmd_submit(args: argparse.Namespace) -> int:
    """The coordinator as a Slurm job, its sbatch options and environment activation from the site profile."""
    study = with_overrides(resolve_spec(args.spec), args)
    check_data(study, data_root(study, args))
    store = Store(args.store)
    store.check_study(study.name)
    preview(study)  # a study too large to expand is an edge error
    profile = load_profile(study.run.profile)
    spec = args.spec if args.spec is None or not Path(args.spec).exists() else os.path.abspath(args.spec)
    job = coordinator_job(spec or DEFAULT_RECIPE, Path(args.store), _forwarded(args), profile, args.output)
    if args.dry_run:
        print(shlex.join(job.command))
        for line in job.setup:
            print(f"# setup: {line}")
        return 0
    job_id = submit(job)
    out().print(
        f"submitted the coordinator of study {study.name!r} as Slurm job {job_id} (profile {profile.name}: "
        f"{' '.join(coordinator_sbatch_options(profile))}); follow it with `lowloss status {args.store}`"
    )
    return 0


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The ``lowloss run`` options of ``submit`` that the coordinator's job passes on (its executor is Slurm)."""
    forwarded: list[str] = []
    for key, flag in RUN_FLAGS.items():
        value = getattr(args, key, None)
        if value is not None and key != "executor":
            forwarded += [flag, str(value)]
    if args.data_root:
        forwarded += ["--data-root", os.path.abspath(args.data_root)]
    forwarded += ["--retry-failed"] if args.retry_failed else []
    forwarded += ["--repair"] if args.repair else []
    return forwarded


def run_options(sp: argparse.ArgumentParser) -> None:
    """The options of ``run``, ``resume`` and ``submit`` (they override the spec's ``[run]``, never a unit's id)."""
    sp.add_argument(
        "--executor", choices=["local", "slurm", "ray"], help="where units run (default: spec's [run].executor, local)"
    )
    sp.add_argument("--jobs", type=int, help="units running at once")
    sp.add_argument("--retries", type=int, help="extra attempts of a failing unit")
    sp.add_argument("--checkpoint-seconds", type=float, help="resume-checkpoint cadence (work lost at most on a kill)")
    sp.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="where a unit computes (default: auto, a GPU when the unit's node has one)",
    )
    sp.add_argument("--profile", help="Slurm site profile: a name in slurm/profiles/ or a TOML path")
    sp.add_argument("--units-per-job", type=int, help="units packed into one Slurm array task / Ray task")
    sp.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    sp.add_argument(
        "--fresh-processes",
        action="store_true",
        default=None,
        help="a new Python process per unit (local) or per Ray task, instead of warm workers",
    )
    sp.add_argument(
        "--worker-max-units", type=int, help="replace a warm worker after this many units (0: never; default 200)"
    )
    sp.add_argument(
        "--worker-max-rss-mb",
        type=float,
        help="replace a warm local worker once its resident memory passes this many MiB (0: never; default 8192)",
    )
    sp.add_argument(
        "--lock",
        choices=["auto", "flock", "lease"],
        help="how the store's locks are held: flock, leases (for file systems whose flock is node-local or absent), "
        "or auto (flock where the store's file system has it; docs/store.md#locks-on-cluster-file-systems)",
    )
    sp.add_argument("--lease-seconds", type=float, help="a lease's length under --lock lease (default 60)")
    sp.add_argument("--data-root", help="folder holding the dataset (MNIST, CIFAR, ImageNet)")
    sp.add_argument(
        "--retry-failed",
        action="store_true",
        help="give units that used up their retries (in this or an earlier run) fresh retries",
    )
    sp.add_argument(
        "--repair",
        action="store_true",
        help="move damaged units (files that disagree with their commit markers) and everything downstream of them "
        "aside, and run them again",
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("run", help="run a study (the embedded default when no SPEC is given)")
    sp.add_argument("spec", nargs="?", help="spec file or recipe name (default: the embedded digits study)")
    sp.add_argument("--store", required=True, help="the study's store directory")
    run_options(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "submit",
        help="run the coordinator itself as a Slurm job (time limit, partition, account and environment "
        "activation from the site profile's [coordinator] table)",
    )
    sp.add_argument("spec", nargs="?", help="spec file or recipe name (default: the embedded digits study)")
    sp.add_argument("--store", required=True, help="the study's store directory (on a shared file system)")
    sp.add_argument("--output", help="the coordinator job's output file (default: lowloss-coordinator-<job>.out here)")
    sp.add_argument("--dry-run", action="store_true", help="print the sbatch command instead of running it")
    run_options(sp)
    sp.set_defaults(func=cmd_submit)

    sp = sub.add_parser("resume", help="finish a study from its store (after a crash, kill or failure)")
    sp.add_argument("store", help="the study's store directory (its spec.toml is the spec)")
    run_options(sp)
    sp.set_defaults(func=cmd_resume)

    sp = sub.add_parser("validate", help="check a spec (and its data root) without running anything")
    sp.add_argument("spec", help="spec file or recipe name")
    sp.add_argument("--data-root", help="folder holding the dataset: also check that the data is there")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("plan", help="units per stage and kind, what is done in the store, what would run")
    sp.add_argument("spec", help="spec file or recipe name")
    sp.add_argument("--store", help="a store to compare with: which units are done there")
    sp.add_argument("--data-root", help="also check the data root, as `validate` does")
    sp.add_argument("--units", action="store_true", help="list every unit")
    sp.set_defaults(func=cmd_plan)
