"""The ``lowloss`` command line.

Bad input (spec, arguments, store, data root) gets one line naming the field, the bad value and what is allowed,
exit code 2, no traceback, and nothing in the store touched. A study whose units failed exits 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..executors.base import ExecutorError
from ..spec.study import _MISSING, SpecError, Study, check_data, load_spec, parse_spec
from ..store.atomic import StoreReadOnlyError, check_writable
from ..store.store import DamagedError, Store, StoreError, StoreFullError, split_ref, verify_unit

DEFAULT_RECIPE = "digits-default"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------- spec resolution


def recipes() -> dict[str, Path]:
    from ...jobs import recipes as shipped

    return shipped()


def resolve_spec(spec: str | None) -> Study:
    """A spec path, a recipe name (`lowloss recipes`), or None for the embedded default."""
    if spec is None:
        return load_spec(recipes()[DEFAULT_RECIPE])
    path = Path(spec)
    if not path.exists() and spec in recipes():
        return load_spec(recipes()[spec])
    if not path.exists() and not spec.endswith(".toml"):
        raise SpecError("SPEC", spec, f"no such file and no such recipe; recipes: {', '.join(recipes())}")
    return load_spec(path)


_FLAGS = {
    "executor": "--executor",
    "jobs": "--jobs",
    "retries": "--retries",
    "checkpoint_seconds": "--checkpoint-seconds",
    "device": "--device",
    "profile": "--profile",
    "units_per_job": "--units-per-job",
    "ray_address": "--ray-address",
    "fresh_processes": "--fresh-processes",
    "worker_max_units": "--worker-max-units",
    "worker_max_rss_mb": "--worker-max-rss-mb",
}


def _with_overrides(study: Study, args) -> Study:
    """Apply [run] overrides from the command line, validated like the spec's (they never change unit ids)."""
    from dataclasses import replace

    from pydantic import ValidationError

    from ..spec.study import RunSection

    updates = {k: getattr(args, k, None) for k in _FLAGS if getattr(args, k, None) is not None}
    try:
        run = RunSection.model_validate({**study.run.model_dump(), **updates})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        raise SpecError(_FLAGS.get(field, field), err.get("input"), err["msg"].lower()) from None
    return replace(study, run=run)


def _data_root(study: Study, args) -> str | None:
    root = getattr(args, "data_root", None) or study.data.root
    return os.path.abspath(os.path.expanduser(root)) if root else None


# ---------------------------------------------------------------------- commands


def _sigterm_as_interrupt() -> None:
    """SIGTERM (kill, a Slurm job's end, systemd) stops a run like Ctrl-C: units checkpoint, then the run ends."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_run(args, study: Study | None = None) -> int:
    from ..engine.coordinator import Coordinator
    from ..engine.progress import Reporter
    from ..executors import make_executor

    study = _with_overrides(study or resolve_spec(args.spec), args)
    store = Store(args.store)
    data_root = _data_root(study, args)
    check_data(study, data_root)
    store.check_study(study.name)
    _plan_or_edge_error(study)  # a study too large to expand is an edge error, before the store is touched
    check_writable(store.root)  # a read-only store is an edge error, before the coordinator lock is created
    _check_profile_and_device(study)
    if study.run.executor == "slurm":
        import shutil

        if shutil.which("sbatch") is None:
            raise SpecError(
                "--executor",
                "slurm",
                "needs Slurm's sbatch on PATH: run on a login node of the cluster "
                "(or as a job: `lowloss submit`), or use --executor local|ray",
            )
    _sigterm_as_interrupt()
    with store.coordinator_lock(study.run.executor):
        store.init_study(study.name, study.text)
        executor = make_executor(
            study.run.executor,
            store.root,
            study.run.jobs,
            profile=study.run.profile,
            units_per_job=study.run.units_per_job,
            ray_address=study.run.ray_address,
            fresh_processes=study.run.fresh_processes,
            worker_max_units=study.run.worker_max_units,
            worker_max_rss_mb=study.run.worker_max_rss_mb,
        )
        reporter = Reporter(store)
        where = (
            f"{study.run.jobs} at once, "
            + ("a fresh process per unit" if study.run.fresh_processes else "warm workers")
            if study.run.executor == "local"
            else f"profile {study.run.profile or 'default'}"
            if study.run.executor == "slurm"
            else study.run.ray_address or "a local Ray"
        )
        reporter.message(f"study {study.name!r} → store {store.root} (executor {study.run.executor}, {where})")
        coordinator = Coordinator(
            study,
            store,
            executor,
            study.run.retries,
            reporter,
            data_root,
            retry_failed=getattr(args, "retry_failed", False),
            repair=getattr(args, "repair", False),
        )
        try:
            outcome = coordinator.run()
        except KeyboardInterrupt:
            outcome = coordinator.outcome
            if not outcome.settled or outcome.pending or outcome.nospace:
                raise  # units are left to run: "interrupted", exit 130
            # the stop came when nothing was left to run (the running units reached their commits while stopping):
            # the run ended as an uninterrupted one would, and says so with its usual summary and exit code
            reporter.message(
                "stopped with nothing left to run (the running units reached their commits): the run is complete"
            )
    return _say_outcome(store, study, outcome)


def _check_profile_and_device(study: Study) -> None:
    """Edge checks of where units run, before the store is touched: a profile given (``--profile`` or ``[run]
    profile``) must load whatever the executor — a typo'd path is never ignored — and is noted as unused off Slurm;
    ``--device cuda`` on the local executor needs a GPU here (on Slurm and Ray the node decides)."""
    from ..executors.profiles import load_profile

    if study.run.executor == "slurm" or study.run.profile:
        load_profile(study.run.profile)
        if study.run.executor != "slurm":
            print(
                f"lowloss: note: profile {study.run.profile!r} is a Slurm site profile; the {study.run.executor} "
                "executor does not use it",
                file=sys.stderr,
            )
    if study.run.executor == "local" and study.run.device == "cuda":
        from ..runtime.attempt import cuda_problem

        problem = cuda_problem()
        if problem is not None:
            raise SpecError(
                "--device", "cuda", f"{problem}; use --device auto (a GPU where there is one) or --device cpu"
            )


def _plan_or_edge_error(study: Study) -> None:
    from ..engine.graph import plan_study

    plan_study(study)


def _say_outcome(store: Store, study: Study, outcome) -> int:
    from ..report.api import StudyView
    from ..report.summary import summary_table

    out = _out()
    if outcome.nospace:
        print(f"lowloss: error: {outcome.nospace}", file=sys.stderr)
        return 1
    view = StudyView(store)
    by = list(study.sweep_by)
    out.print(summary_table(view, f"study {study.name} — summary by {', '.join(by)}" if by else None, by))
    if outcome.failed:
        out.print(
            f"[red]{len(outcome.failed)} unit(s) failed[/red] after {study.run.retries} retries; "
            f"`lowloss status {store.root}` shows their errors and logs. Fix the cause, then "
            f"`lowloss resume {store.root} --retry-failed`."
        )
    if outcome.damaged:
        out.print(
            f"[red]{len(outcome.damaged)} unit(s) are damaged[/red] (their files disagree with their commit "
            f"markers) and were not used; `lowloss verify {store.root}` names the files, "
            f"`lowloss resume {store.root} --repair` runs them again."
        )
    if outcome.repaired:
        out.print(
            f"{len(outcome.repaired)} damaged or downstream unit(s) were moved to {store.root / 'damaged'} "
            f"and run again."
        )
    if outcome.blocked:
        out.print(f"{len(outcome.blocked)} unit(s) wait on failed, cancelled or damaged inputs.")
    if outcome.cancelled:
        out.print(f"{len(outcome.cancelled)} unit(s) were cancelled; `lowloss resume {store.root}` continues them.")
    if outcome.pending:
        out.print(
            f"{len(outcome.pending)} unit(s) did not finish in this run; `lowloss resume {store.root}` continues them."
        )
    for line in outcome.stalled:
        out.print(f"[yellow]stage {line}[/yellow]: still open, with nothing left to run")
    resumed = f", {len(outcome.resumed)} of them resumed from committed segments" if outcome.resumed else ""
    out.print(f"{len(outcome.done)} unit(s) run now{resumed}, {len(outcome.reused)} reused from the store.")
    out.print(f"Figures and tables: `lowloss report {store.root} --out {store.root / 'report'}`.")
    return 0 if outcome.ok else 1


def cmd_resume(args) -> int:
    store = Store(args.store)
    store.study()
    store.check_format()
    study = parse_spec(store.spec_text(), str(store.root / "spec.toml"), check_unread=False)
    run_cfg = store.run_settings()
    if not getattr(args, "data_root", None) and run_cfg.get("data_root"):
        args.data_root = run_cfg["data_root"]
    return cmd_run(args, study)


def cmd_validate(args) -> int:
    from ..engine.graph import plan_study

    study = resolve_spec(args.spec)
    check_data(study, _data_root(study, args))
    planned = len(plan_study(study).units)  # a study too large to expand is refused here as `run` would
    sweep = (
        f", {len(study.variants)} sweep combinations of {', '.join(study.sweep_fields)}" if study.sweep_fields else ""
    )
    _out().print(
        f"{study.source}: valid — study {study.name!r}, {len(study.seeds)} seeds{sweep}, "
        f"stages: {', '.join(f'{s.name} ({s.kind})' for s in study.stages)}; {planned} unit(s) planned so far "
        "(`lowloss plan` lists them)"
    )
    return 0


def cmd_plan(args) -> int:
    from ... import jobs
    from ..engine.graph import plan_study

    study = resolve_spec(args.spec)
    if args.data_root:
        check_data(study, _data_root(study, args))
    store = Store(args.store) if args.store else None
    if store is not None:
        store.check_study(study.name)
    known = store if store is not None and store.exists() else None
    planner = plan_study(study, (lambda uid: _committed_result(known, uid)) if known else (lambda uid: None))
    table = Table(
        title=f"plan of study {study.name!r}" + (f" against {store.root}" if store else ""), title_justify="left"
    )
    # a unit two stages plan (the same work, one id) runs once: it counts once in the total, and each stage's line
    # names the other stages that share it
    planned_by: dict[str, list[str]] = {}
    for stage in study.stages:
        for u in planner.stage_units(stage.name):
            planned_by.setdefault(u.id, []).append(stage.name)
    twice = sum(1 for stages in planned_by.values() if len(stages) > 1)
    columns = ("stage", "kind", "unit kinds (resource class)", "units", "shared with", "done", "would run", "planning")
    for col in columns:
        if col == "shared with" and not twice:
            continue
        table.add_column(
            col,
            justify="left"
            if col in ("stage", "kind", "unit kinds (resource class)", "shared with", "planning")
            else "right",
        )
    to_run: set[str] = set()
    for stage in study.stages:
        units = planner.stage_units(stage.name)
        done = sum(1 for u in units if known is not None and known.is_committed(u.id, u.kind))
        to_run.update(u.id for u in units if not (known is not None and known.is_committed(u.id, u.kind)))
        shared: dict[str, int] = {}
        for u in units:
            for other in planned_by[u.id]:
                if other != stage.name:
                    shared[other] = shared.get(other, 0) + 1
        sharing = [", ".join(f"{other} ({n})" for other, n in shared.items())] if twice else []
        kinds = sorted({u.kind for u in units} or set(jobs.get_stage_kind(stage.kind).unit_kinds))
        classes = ", ".join(
            f"{k} ({jobs.get_kind(k).default_resources.resource_class})" for k in kinds if k in jobs.KINDS
        )
        state = planner.stages[stage.name]
        status = (
            ("open: " + (state.note or "plans more units as results arrive"))
            if planner.is_open(stage.name)
            else "closed"
        )
        table.add_row(
            stage.name, stage.kind, classes, str(len(units)), *sharing, str(done), str(len(units) - done), status
        )
    out = _out()
    out.print(table)
    for stage in study.stages:
        for line in jobs.get_stage_kind(stage.kind).describe(stage.params, study.context):
            out.print(f"  {stage.name}: {line}")
    if args.units:
        for stage in study.stages:
            for u in planner.stage_units(stage.name):
                others = [s for s in planned_by[u.id] if s != stage.name]
                also = f"  (shared with {', '.join(others)})" if others else ""
                out.print(f"  {u.id}  {stage.name:<12} {u.kind:<12} {u.label}{also}")
    out.print(
        f"{len(to_run)} unit(s) would run"
        + (" so far (open stages plan more as results arrive)" if planner.open_stages() else "")
        + (f"; {twice} unit(s) planned by more than one stage are counted once." if twice else ".")
    )
    return 0


def cmd_submit(args) -> int:
    """The coordinator as a Slurm job, its sbatch options and environment activation from the site profile."""
    import base64
    import shlex
    import shutil
    import subprocess
    from importlib.resources import files

    from ..executors.profiles import coordinator_sbatch_options, coordinator_setup, load_profile

    study = _with_overrides(resolve_spec(args.spec), args)
    check_data(study, _data_root(study, args))
    store = Store(args.store)
    store.check_study(study.name)
    _plan_or_edge_error(study)
    profile = load_profile(study.run.profile)
    script = Path(str(files("lowloss.slurm"))) / "coordinator.sbatch"
    spec_arg = args.spec if args.spec is None or not Path(args.spec).exists() else os.path.abspath(args.spec)
    forwarded: list[str] = []
    for key, flag in _FLAGS.items():
        value = getattr(args, key, None)
        if value is not None and key != "executor":
            forwarded += [flag, str(value)]
    if args.data_root:
        forwarded += ["--data-root", os.path.abspath(args.data_root)]
    forwarded += ["--retry-failed"] if args.retry_failed else []
    forwarded += ["--repair"] if args.repair else []
    setup = coordinator_setup(profile)
    export = "ALL" + (f",LOWLOSS_SETUP_B64={base64.b64encode(chr(10).join(setup).encode()).decode()}" if setup else "")
    command = [
        "sbatch",
        "--parsable",
        *coordinator_sbatch_options(profile),
        f"--output={os.path.abspath(args.output)}" if args.output else "--output=lowloss-coordinator-%j.out",
        f"--export={export}",
        str(script),
        spec_arg or "digits-default",
        os.path.abspath(args.store),
        *forwarded,
    ]
    out = _out()
    if args.dry_run:
        print(shlex.join(command))
        for line in setup:
            print(f"# setup: {line}")
        return 0
    if shutil.which("sbatch") is None:
        raise SpecError("submit", "sbatch", "needs Slurm's sbatch on PATH: run it on a login node of the cluster")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SpecError("submit", "sbatch", f"sbatch refused the coordinator's job: {proc.stderr.strip()}")
    job = proc.stdout.strip().split(";")[0]
    out.print(
        f"submitted the coordinator of study {study.name!r} as Slurm job {job} (profile {profile.name}: "
        f"{' '.join(coordinator_sbatch_options(profile))}); follow it with `lowloss status {args.store}`"
    )
    return 0


def _committed_result(store: Store, uid: str) -> dict | None:
    """A committed result, for planning against an existing store (any kind directory)."""
    try:
        return store.result(uid) if store.is_committed(uid) else None
    except StoreError:
        return None


def _stage_units(store: Store) -> list[tuple[str, dict, dict]]:
    plan = store.plan()
    return [(info["name"], info, u) for info in plan.get("stages", []) for u in info["units"]]


def cmd_status(args) -> int:
    store = Store(args.store)
    study = store.study()
    store.check_format()
    out = _out()
    counts: dict[str, dict] = {}
    failed, damaged, stopped = [], [], []
    rows = []
    for stage, info, u in _stage_units(store):
        kind = u.get("kind") or info["kind"]
        state = store.state(u["id"], kind)
        c = counts.setdefault(
            stage,
            {
                "kind": info.get("stage_kind", info["kind"]),
                "done": 0,
                "running": 0,
                "pending": 0,
                "failed": 0,
                "damaged": 0,
                "resumable": 0,
                "open": info.get("open", False),
                "note": info.get("note", ""),
            },
        )
        c[state] += 1
        if state == "pending" and store.resumable_from(u["id"], kind):  # shown beside pending: counted once
            c["resumable"] += 1
        if state == "failed":
            failed.append((stage, u, kind))
        elif state == "pending":
            attempts = store.attempts(u["id"], kind)
            if attempts and attempts[-1].get("state") == "nospace":
                stopped.append((stage, u, attempts[-1].get("error") or "no space left"))
        if state == "damaged":
            damaged.append((stage, u))
        rows.append((stage, kind, u, state))
    table = Table(title=f"study {study['study']!r} in {store.root}", title_justify="left")
    for col in ("stage", "kind", "done", "running", "pending", "failed", "planning"):
        table.add_column(col, justify="left" if col in ("stage", "kind", "planning") else "right")
    for stage, c in counts.items():
        pending = str(c["pending"]) + (f" ({c['resumable']} resumable)" if c["resumable"] else "")
        bad = c["failed"] + c["damaged"]
        table.add_row(
            stage,
            c["kind"],
            str(c["done"]),
            str(c["running"]),
            pending,
            f"[red]{bad}[/red]" + (f" ({c['damaged']} damaged)" if c["damaged"] else "") if bad else "0",
            ("open: " + (c["note"] or "plans more units as results arrive")) if c["open"] else "closed",
        )
    out.print(table)
    if args.units:
        sched = _scheduler_view(store, [u["id"] for _, _, u, _ in rows])
        for stage, kind, u, state in rows:
            extra = ""
            if u["id"] in sched:
                st = sched[u["id"]]
                extra = f"  job {st.job_id} {st.state} node={st.node or '-'} elapsed={st.elapsed or '-'}"
                if state == "failed" and st.state == "CANCELLED":
                    state = "cancelled"
            if state in ("pending", "failed", "running"):
                done_segments = store.resumable_from(u["id"], kind)
                prog = store.progress(u["id"], kind) if state == "running" else None
                if prog:
                    extra += f"  {prog.get('done')}/{prog.get('total')}"
                elif done_segments:
                    extra += f"  {done_segments} segment(s) committed, resumable"
                if state == "pending" and store.stale_attempt(u["id"], kind):
                    extra += "  (its last attempt's process is gone without closing its record)"
            out.print(f"  {u['id']}  {stage:<12} {u['label']:<16} {state}{extra}")
    for stage, u, kind in failed:
        attempts = store.attempts(u["id"], kind)
        last = attempts[-1] if attempts else {}
        err = (last.get("error") or "ended without a result").strip().splitlines()
        out.print(
            f"[red]failed[/red] {stage} {u['label']} ({u['id']}): {err[-1] if err else ''}\n"
            f"    log: {last.get('log', '?')}  ({len(attempts)} attempt(s); `lowloss show {store.root} {u['id'][:10]}`)"
        )
    for stage, u, error in stopped:
        out.print(f"[yellow]stopped[/yellow] {stage} {u['label']} ({u['id']}): {error}")
    for stage, u in damaged:
        out.print(
            f"[red]damaged[/red] {stage} {u['label']} ({u['id']}): `lowloss verify {store.root}` names the "
            f"files; `lowloss resume {store.root} --repair` runs it again"
        )
    return 0


def _scheduler_view(store: Store, uids: list[str]) -> dict:
    """uid → Slurm state of the job that last ran it (batched, time-limited query; empty without Slurm jobs)."""
    from ..executors.scheduler import SchedulerQuery
    from ..executors.slurm import latest_tasks

    tasks = {uid: t for uid, t in latest_tasks(store.root).items() if uid in set(uids)}
    if not tasks:
        return {}
    states = SchedulerQuery(timeout_s=20).states(sorted(set(tasks.values()))) or {}
    return {uid: states[t] for uid, t in tasks.items() if t in states}


def cmd_logs(args) -> int:
    store = Store(args.store)
    store.study()
    store.check_format()
    uid = store.find_unit(args.unit)
    attempts = store.attempts(uid)
    if not attempts:
        raise StoreError(f"unit {uid} has not started yet: no log (`lowloss status {store.root} --units`)")
    chosen = attempts if args.all else attempts[-1:]
    refused = 0
    for a in chosen:
        print(
            f"==> attempt {a['attempt']} ({a['state']}) on {a.get('host')} via {a.get('executor')} "
            f"job {a.get('job_id') or '-'}: {a['log']}"
        )
        if a.get("error") and a["state"] != "failed":  # why it ended: a lost attempt's log stops before it can say
            print(f"    ended: {str(a['error']).strip().splitlines()[-1]}")  # (a failed one's traceback is in it)
        log = _inside_store(store, a.get("log"))
        if log is None:  # a moved or copied store, or a forged record: only the store's own attempts/<n>.log is read
            own = store.unit_dir(uid) / "attempts" / f"{int(a['attempt']):03d}.log"
            log = _inside_store(store, own) if own.exists() else None
            where = f"; printing the store's own {own}" if log is not None else "; not printed"
            print(
                f"lowloss: {'note' if log is not None else 'error'}: attempt {a['attempt']} of unit {uid} names log "
                f"{a.get('log')!r}, which is not a file inside the store {store.root}{where} (a log is only ever "
                "read from inside the store)",
                file=sys.stderr,
            )
            if log is None:
                refused += 1
                continue
        try:
            sys.stdout.write(log.read_text(errors="replace"))
        except FileNotFoundError:
            print("(log file missing)")
        job = a.get("job_id") or ""
        if a.get("executor") == "slurm" and job:
            from ..executors.slurm import job_output

            job_log = job_output(store.root, job)
            if job_log is not None and _inside_store(store, job_log) is None:
                job_log = None
            if job_log is not None:
                lines = job_log.read_text(errors="replace").splitlines()
                print(f"==> Slurm job {job} output (last {min(len(lines), 40)} of {len(lines)} lines): {job_log}")
                print("\n".join(lines[-40:]))
    return 2 if refused else 0


def _inside_store(store: Store, path: str | Path | None) -> Path | None:
    """``path`` with every link resolved, when it lies inside the store (a record may name a log, never /etc/shadow)."""
    if not path:
        return None
    root = store.root.resolve()
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        return None
    return resolved


def cmd_cancel(args) -> int:
    from ..executors.slurm import cancel_units

    store = Store(args.store)
    store.study()
    store.check_format()
    uids = [store.find_unit(u) for u in args.units] if args.units else None
    holder = store.coordinator_holder()
    if holder is not None and holder.get("executor") in ("local", "ray"):
        return _stop_coordinator(store, holder, uids)
    jobs = cancel_units(store.root, uids)
    if not jobs:
        _out().print(
            "nothing to cancel: no Slurm jobs are recorded for "
            + ("these units" if uids else "this store")
            + (", and no coordinator drives it" if holder is None else "")
        )
    else:
        _out().print(
            f"cancelled {len(jobs)} Slurm job(s): {' '.join(jobs)}; the units keep their checkpoints — "
            f"`lowloss run` (or `lowloss resume {store.root}`) continues them"
        )
    return 0


def _stop_coordinator(store: Store, holder: dict, uids: list[str] | None) -> int:
    """``cancel`` of a local or Ray run: SIGTERM to its coordinator (its units checkpoint, as on Ctrl-C), then wait
    for the coordinator to let go of the store."""
    import signal
    import socket

    executor, pid, host = holder.get("executor"), holder.get("pid"), holder.get("host")
    if uids:
        raise SpecError(
            "units",
            " ".join(u[:12] for u in uids),
            f"a {executor} run is cancelled as a whole: `lowloss cancel {store.root}` without unit ids stops its "
            f"coordinator, its running units checkpoint, and `lowloss resume {store.root}` continues them",
        )
    if host != socket.gethostname() or not isinstance(pid, int):
        print(
            f"lowloss: error: the coordinator of {store.root} runs on host {host} (pid {pid}): "
            f"stop it there (Ctrl-C, or `kill -TERM {pid}`)",
            file=sys.stderr,
        )
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended meanwhile
    out = _out()
    out.print(f"asked the coordinator (pid {pid}, executor {executor}) to stop; its running units checkpoint …")
    deadline = time.monotonic() + 600
    while store.coordinator_holder() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if store.coordinator_holder() is not None:
        print(f"lowloss: error: the coordinator (pid {pid}) still runs after 10 minutes", file=sys.stderr)
        return 1
    out.print(f"stopped: committed work is kept — `lowloss resume {store.root}` continues the study")
    return 0


def cmd_show(args) -> int:
    if args.last < 0:
        raise SpecError("--last", args.last, "a number of segments ≥ 0 (0: all)")
    store = Store(args.store)
    store.study()
    store.check_format()
    uid = store.find_unit(args.unit)
    rec = store.unit(uid)
    out = _out()
    out.print(f"unit {uid}\n  kind: {rec.kind} (version {rec.version})\n  state: {store.state(uid)}")
    out.print("  params: " + json.dumps(rec.params, sort_keys=True))
    for role, inp in rec.inputs.items():
        out.print(f"  input {role}: {inp} ({store.state(split_ref(inp)[0])})")
    try:
        segs = store.segments(uid)
    except DamagedError as exc:
        out.print(f"  [red]damaged[/red]: {exc.problem}; `lowloss resume {store.root} --repair` runs it again")
        segs = []
    shown = segs[-args.last :] if args.last else segs
    out.print(
        f"  segments: {len(segs)} committed"
        + (f" (the last {len(shown)}; --last 0 shows all)" if len(shown) < len(segs) else "")
    )
    for m in shown:
        rows = ", ".join(f"{t}={n}" for t, n in m.get("rows", {}).items())
        dur = m.get("finished", 0) - m.get("started", 0)
        out.print(
            f"    {m['name']}: rows {rows or '-'}; files {len(m['files'])}; {dur:.2f}s (attempt {m.get('attempt')})"
        )
    stale = store.stale_attempt(uid)
    for a in store.attempts(uid):
        out.print(
            f"  attempt {a['attempt']}: {a['state']} on {a.get('host')} pid {a.get('pid')} "
            f"job {a.get('job_id') or '-'}; log {a.get('log')}"
        )
        if stale is not None and a["attempt"] == stale["attempt"]:
            out.print("    its process is gone without closing this record; a resume continues the unit")
        if a.get("error"):
            out.print("    " + a["error"].strip().splitlines()[-1])
    try:
        result = store.result(uid)
    except DamagedError as exc:
        out.print(f"  [red]damaged[/red]: {exc.problem}; `lowloss resume {store.root} --repair` runs it again")
        return 0
    if result is not None:
        out.print("  result: " + json.dumps(result, sort_keys=True))
        out.print(f"  digest: {store.commit_record(uid)['digest']}")  # type: ignore[index]
    return 0


def cmd_verify(args) -> int:
    store = Store(args.store)
    study = store.study()
    store.check_format()
    out = _out()
    corrupt = 0
    notes = 0
    report = []
    for uid, kind in store.unit_dirs():
        digest, damage, leftovers = verify_unit(store, uid, kind)
        try:
            store.unit(uid, kind)
        except DamagedError as exc:
            damage.insert(0, exc.problem)
            digest = None
        report.append({"unit": uid, "kind": kind, "digest": digest, "damage": damage})
        if digest is not None:
            out.print(f"{uid}  {kind:<12} {digest}")
        for p in damage:
            corrupt += 1
            out.print(f"[red]CORRUPT[/red] {uid} {p}")
        for p in leftovers:
            notes += 1
            out.print(f"[yellow]note[/yellow] {uid} {p}")
    for path in _stray_pickles(store):
        notes += 1
        out.print(
            f"[yellow]note[/yellow] {path.relative_to(store.root).as_posix()}: a pickle where lowloss writes none "
            "(never read by lowloss; only submitit's slurm/<job>/*.pkl belong in a store)"
        )
    committed = sum(1 for r in report if r["digest"])
    out.print(
        f"study {study['study']!r}: {committed} committed unit(s) verified; {corrupt} corrupt file(s); "
        f"{notes} uncommitted leftover(s) (invisible to readers)"
    )
    if corrupt:
        out.print(
            f"`lowloss resume {store.root} --repair` moves the damaged units aside and runs them (and what "
            f"depends on them) again"
        )
    return 1 if corrupt else 0


def _stray_pickles(store: Store) -> list[Path]:
    """Pickle files outside ``slurm/``: submitit's ``slurm/<job>/*_submitted.pkl`` (written by the coordinator, read
    only by submitit inside the job) and ``*_result.pkl`` (written by the job) are the only pickles a store holds, and
    nothing of lowloss opens any pickle there."""
    out = []
    for path in sorted(store.root.rglob("*")):
        if (
            path.suffix in (".pkl", ".pickle")
            and path.parts[len(store.root.parts)] != "slurm"
            and not path.is_symlink()
        ):
            out.append(path)
    return out


def cmd_recipes(args) -> int:
    out = _out()
    table = Table(title="recipes (run one with `lowloss run NAME --store DIR`)", title_justify="left")
    table.add_column("name")
    table.add_column("source / description")
    for name, path in recipes().items():
        table.add_row(name + (" (default)" if name == DEFAULT_RECIPE else ""), recipe_description(path.read_text()))
    out.print(table)
    return 0


def recipe_description(text: str, limit: int = 220) -> str:
    """A recipe's ``# source:`` line, continued over the next comment lines while its sentence runs on, without paths
    into the papers' folder, cut at a word near ``limit`` characters."""
    import re

    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# source:")), None)
    if start is None:
        return ""
    parts = [lines[start][len("# source:") :].strip()]
    for line in lines[start + 1 :]:
        body = line[2:].strip() if line.startswith("# ") else ""
        runs_on = parts[-1].endswith((",", "(", "—", "-")) or body[:1].islower() or body[:1] == "("
        if not body or parts[-1].endswith(".") or not runs_on:
            break
        parts.append(body)
    desc = re.sub(r"\s*\([^)]*papers/[^)]*\)", "", " ".join(parts)).rstrip(".")
    return desc if len(desc) <= limit else desc[:limit].rsplit(" ", 1)[0] + " …"


def _open_views(stores: list[str]):
    """One store: its StudyView; several: a CombinedView (stages merged by name, fields ``study`` and ``store``)."""
    from ..report.api import CombinedView, open_study

    views = [open_study(path) for path in stores]
    return views[0] if len(views) == 1 else CombinedView(views)


def cmd_report(args) -> int:
    from ..report.summary import summary_rows, summary_table
    from ..report.tables import FORMATS, check_format, progress_lines, render_table, title_of, write_tables

    by = [f.strip() for item in args.by or [] for f in item.split(",") if f.strip()]
    check_format(args.format, args.out)
    if args.smooth is not None and args.smooth < 1:
        raise SpecError("--smooth", args.smooth, "a moving-average window of at least 1 (in x units)")
    for flag, given in (("--smooth", args.smooth is not None), ("--no-figures", args.no_figures)):
        if given and args.out is None:
            raise SpecError(flag, _MISSING, "shapes the figures, which only --out DIR writes: add --out DIR")
    study = _open_views(args.store)
    if len(args.store) > 1 and not by:
        by = ["study"] if len({v.name for v in study.views}) > 1 else ["store"]
    stages = args.stage or None
    if not by:  # a swept study: one group per combination (of the fields the reported stages' units have)
        present = set(study.fields(stages)) if stages else None
        by = [f for f in study.sweep_by() if present is None or f in present]
    rows = summary_rows(study, by, stages)
    notes = progress_lines(study, stages)
    title = title_of(study, by)
    out = _out()
    if args.format is not None and args.out is None:
        sys.stdout.write(render_table(rows, by, args.format, title, notes))
        if args.format == "csv":
            print("\n".join(notes), file=sys.stderr)
        return 0
    out.print(summary_table(study, title, by, stages, rows=rows))
    for line in notes:
        out.print(line)
    if args.out is not None:
        folder = Path(args.out)
        for path in write_tables(rows, by, folder, [args.format] if args.format else FORMATS, title, notes):
            out.print(f"wrote {path}")
        if not args.no_figures:
            from ..report.figures import render

            files = render(study, folder / "figures", by, stages, args.smooth)
            for f in files:
                out.print(
                    f"wrote {' '.join(str(p) for p in f.paths)}  ({f.units} {f.what[:-1] if f.units == 1 else f.what})"
                )
                for table in f.tables:
                    out.print(f"wrote {table}")
                    if table.suffix == ".md":
                        out.print(table.read_text().rstrip())
            if not files:
                out.print("no figures: no stage has committed rows of a declared figure yet")
    return 0


def cmd_results(args) -> int:
    from ..report.tables import RESULT_FORMATS, results_table, write_results

    if args.format not in RESULT_FORMATS:
        raise SpecError("--format", args.format, f"unknown format; allowed: {', '.join(RESULT_FORMATS)}")
    if args.format == "parquet" and args.out is None:
        raise SpecError("--format", "parquet", "Parquet is binary: give --out FILE (or use --format csv or md)")
    study = _open_views(args.store)
    table = results_table(study, args.stage)
    text = write_results(
        table,
        args.format,
        Path(args.out) if args.out else None,
        f"study {study.name} — stage {args.stage}: one row per unit",
    )
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.out} ({table.num_rows} units, {table.num_columns} columns)", file=sys.stderr)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lowloss")
    except PackageNotFoundError:
        return "unknown (not installed; run `pip install -e .`)"


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lowloss", description="Explore the low-loss space of neural networks at cluster scale.")
    p.add_argument("--version", action="version", version=f"lowloss {_version()}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def run_options(sp):
        sp.add_argument(
            "--executor",
            choices=["local", "slurm", "ray"],
            help="where units run (default: spec's [run].executor, local)",
        )
        sp.add_argument("--jobs", type=int, help="units running at once")
        sp.add_argument("--retries", type=int, help="extra attempts of a failing unit")
        sp.add_argument(
            "--checkpoint-seconds", type=float, help="resume-checkpoint cadence (work lost at most on a kill)"
        )
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
        sp.add_argument("--data-root", help="folder holding the dataset (MNIST, CIFAR, ImageNet)")
        sp.add_argument(
            "--retry-failed",
            action="store_true",
            help="give units that used up their retries (in this or an earlier run) fresh retries",
        )
        sp.add_argument(
            "--repair",
            action="store_true",
            help="move damaged units (files that disagree with their commit markers) and everything "
            "downstream of them aside, and run them again",
        )

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

    sp = sub.add_parser("status", help="per stage: done / running / pending / failed, with errors and logs")
    sp.add_argument("store", help="the study's store directory")
    sp.add_argument("--units", action="store_true", help="list every unit with its state")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("show", help="one unit's params, state, attempts and segments")
    sp.add_argument("store", help="the study's store directory")
    sp.add_argument("unit", help="unit id or a unique prefix")
    sp.add_argument("--last", type=int, default=10, help="show only the last N segments (0: all)")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("verify", help="check the store's integrity; print a content digest per committed unit")
    sp.add_argument("store", help="the study's store directory")
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("logs", help="print a unit's log wherever it ran (latest attempt; --all for every attempt)")
    sp.add_argument("store", help="the study's store directory")
    sp.add_argument("unit", help="unit id or a unique prefix")
    sp.add_argument("--all", action="store_true", help="every attempt's log, not only the latest")
    sp.set_defaults(func=cmd_logs)

    sp = sub.add_parser(
        "cancel",
        help="stop a study: the Slurm jobs of a store (or of some units), or the coordinator of a local/Ray run; "
        "units stay resumable",
    )
    sp.add_argument("store", help="the study's store directory")
    sp.add_argument("units", nargs="*", help="unit ids or prefixes (default: every job of the store)")
    sp.set_defaults(func=cmd_cancel)

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
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        for name in ("jobs", "retries"):
            value = getattr(args, name, None)
            if value is not None and value < (1 if name == "jobs" else 0):
                raise SpecError(f"--{name}", value, "must be ≥ 1" if name == "jobs" else "must be ≥ 0")
        return args.func(args)
    except (SpecError, StoreError, UsageError) as exc:
        print(f"lowloss: error: {exc}", file=sys.stderr)
        return 2
    except StoreReadOnlyError as exc:
        print(f"lowloss: error: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or exc.filename is None:
            raise
        print(
            f"lowloss: error: cannot write {exc.filename}: {exc.strerror} (a read-only store or data directory?)",
            file=sys.stderr,
        )
        return 2
    except ExecutorError as exc:
        print(f"lowloss: error: {exc}", file=sys.stderr)
        return 1
    except StoreFullError as exc:
        store = getattr(locals().get("args"), "store", None) or "STORE"
        print(
            f"lowloss: error: {exc.strerror or exc}; committed work is intact — free space or raise the quota, "
            f"then `lowloss resume {store}`",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        store = getattr(locals().get("args"), "store", None) or "STORE"
        print(f"lowloss: interrupted; committed work is kept — `lowloss resume {store}` continues", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
