"""Commands that look at a store or stop its study: ``status``, ``show``, ``logs``, ``verify``, ``cancel``."""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from ..engine.cancel import Cancelled, cancel
from ..executors.scheduler import JobState
from ..executors.slurm import scheduler_states
from ..report.logs import attempt_logs
from ..report.status import StudyStatus, UnitStatus, study_status
from ..spec import SpecError
from ..store import CoordinatorRecord, Store, StoredState, StoreError, split_ref
from ..store.verification import verify_store
from .common import out


def cmd_status(args: argparse.Namespace) -> int:
    store = Store(args.store)
    status = study_status(store, details=args.units)
    console = out()
    console.print(_status_table(status, store))
    if args.units:
        jobs = scheduler_states(store.root, [u.unit.id for u in status.units])
        for unit in status.units:
            console.print(_unit_line(unit, jobs.get(unit.unit.id)))
    for unit in status.failed():
        last = unit.last
        err = ((last.error if last else None) or "ended without a result").strip().splitlines()
        console.print(
            f"[red]failed[/red] {unit.stage} {unit.unit.label} ({unit.unit.id}): {err[-1] if err else ''}\n"
            f"    log: {(last.log if last else None) or '?'}  ({unit.attempts} attempt(s); "
            f"`lowloss show {store.root} {unit.unit.id[:10]}`)"
        )
    for unit in status.stopped():
        error = (unit.last.error if unit.last else None) or "no space left"
        console.print(f"[yellow]stopped[/yellow] {unit.stage} {unit.unit.label} ({unit.unit.id}): {error}")
    for unit in status.damaged():
        console.print(
            f"[red]damaged[/red] {unit.stage} {unit.unit.label} ({unit.unit.id}): {unit.damage or 'its files'}; "
            f"`lowloss verify {store.root}` names every damaged file, `lowloss resume {store.root} --repair` runs it "
            "again"
        )
    return 0


def _status_table(status: StudyStatus, store: Store) -> Table:
    table = Table(title=f"study {status.study!r} in {store.root}", title_justify="left")
    for col in ("stage", "kind", "done", "running", "pending", "failed", "planning"):
        table.add_column(col, justify="left" if col in ("stage", "kind", "planning") else "right")
    for stage in status.stages:
        c = stage.counts
        pending = str(c[StoredState.PENDING]) + (f" ({stage.resumable} resumable)" if stage.resumable else "")
        damaged = f" ({c[StoredState.DAMAGED]} damaged)" if c[StoredState.DAMAGED] else ""
        table.add_row(
            stage.name,
            stage.kind,
            str(c[StoredState.DONE]),
            str(c[StoredState.RUNNING]),
            pending,
            f"[red]{stage.bad}[/red]{damaged}" if stage.bad else "0",
            ("open: " + (stage.note or "plans more units as results arrive")) if stage.open else "closed",
        )
    return table


def _unit_line(unit: UnitStatus, job: JobState | None) -> str:
    state, extra = unit.state.value, ""
    if job is not None:
        extra = f"  job {job.job_id} {job.state} node={job.node or '-'} elapsed={job.elapsed or '-'}"
        if unit.state is StoredState.FAILED and job.state == "CANCELLED":
            state = "cancelled"
    if unit.state in (StoredState.PENDING, StoredState.FAILED, StoredState.RUNNING):
        if unit.progress is not None:
            extra += f"  {unit.progress.done}/{unit.progress.total}"
        elif unit.segments:
            extra += f"  {unit.segments} segment(s) committed, resumable"
        if unit.stale:
            extra += "  (its last attempt's process is gone without closing its record)"
    return f"  {unit.unit.id}  {unit.stage:<12} {unit.unit.label:<16} {state}{extra}"


def cmd_show(args: argparse.Namespace) -> int:
    if args.last < 0:
        raise SpecError("--last", args.last, "a number of segments ≥ 0 (0: all)")
    store = Store(args.store)
    store.check_format()
    uid, kind = store.find_unit(args.unit)
    lines = _show_lines(store, uid, kind, args.last)  # all read first: damage stops it before a line is printed
    console = out()
    for line in lines:
        console.print(line)
    return 0


def _show_lines(store: Store, uid: str, kind: str, last: int) -> list[str]:
    """What ``show`` prints of one unit. Its unit record, commit marker, segment markers and result are read checked:
    a damaged one raises the store's DamagedError (the unit, the file and the repair)."""
    rec = store.unit(uid, kind)
    commit = store.read.commit(uid, kind)
    lines = [
        f"unit {uid}\n  kind: {rec.kind} (version {rec.version})\n  state: {store.state(uid, kind).value}",
        "  params: " + json.dumps(rec.params, sort_keys=True),
    ]
    for role, inp in rec.inputs.items():
        try:
            input_id, input_kind = store.find_unit(split_ref(inp)[0])
            state = store.state(input_id, input_kind).value
        except StoreError:
            state = "not in the store: removed or moved aside; `lowloss verify` names what stands on it"
        lines.append(f"  input {role}: {inp} ({state})")
    lines += _segment_lines(store, uid, kind, last)
    lines += _attempt_lines(store, uid, kind)
    result = store.read.result(uid, kind)
    if result is not None and commit is not None:
        lines.append("  result: " + json.dumps(result, sort_keys=True))
        lines.append(f"  digest: {commit.digest}")
    return lines


def _segment_lines(store: Store, uid: str, kind: str, last: int) -> list[str]:
    segs = store.read.segments(uid, kind)
    shown = segs[-last:] if last else segs
    more = f" (the last {len(shown)}; --last 0 shows all)" if len(shown) < len(segs) else ""
    lines = [f"  segments: {len(segs)} committed{more}"]
    for m in shown:
        rows = ", ".join(f"{t}={n}" for t, n in m.rows.items())
        lines.append(f"    {m.name}: rows {rows or '-'}; files {len(m.files)}; {m.seconds:.2f}s (attempt {m.attempt})")
    return lines


def _attempt_lines(store: Store, uid: str, kind: str) -> list[str]:
    stale = store.attempts.stale(uid, kind)
    lines = []
    for a in store.attempts.records(uid, kind):
        where = f"on {a.host} pid {a.pid} job {a.job_id or '-'}"
        lines.append(f"  attempt {a.attempt}: {a.state.value} {where}; log {a.log}")
        if stale is not None and a.attempt == stale.attempt:
            lines.append("    its process is gone without closing this record; a resume continues the unit")
        if a.error:
            lines.append("    " + a.error.strip().splitlines()[-1])
    return lines


def cmd_logs(args: argparse.Namespace) -> int:
    store = Store(args.store)
    store.check_format()
    uid, kind = store.find_unit(args.unit)
    logs = attempt_logs(store, uid, kind, args.all)
    if not logs:
        raise StoreError(f"unit {uid} has not started yet: no log (`lowloss status {store.root} --units`)")
    refused = 0
    for log in logs:
        a = log.record
        print(f"==> attempt {a.attempt} ({a.state.value}) on {a.host} via {a.executor} job {a.job_id or '-'}: {a.log}")
        if a.error and a.state.value != "failed":  # why it ended: a lost attempt's log stops before it can say
            print(f"    ended: {a.error.strip().splitlines()[-1]}")  # (a failed one's traceback is in it)
        if log.path is None or log.substituted is not None:
            where = f"; printing the store's own {log.substituted}" if log.substituted else "; not printed"
            print(
                f"lowloss: {'note' if log.path is not None else 'error'}: attempt {a.attempt} of unit {uid} names log "
                f"{a.log!r}, which is not a file inside the store {store.root}{where} (a log is only ever read from "
                "inside the store)",
                file=sys.stderr,
            )
        if log.path is None:
            refused += 1
            continue
        try:
            sys.stdout.write(log.path.read_text(errors="replace"))
        except FileNotFoundError:
            print("(log file missing)")
        if log.job_output is not None:
            lines = log.job_output.read_text(errors="replace").splitlines()
            print(
                f"==> Slurm job {a.job_id} output (last {min(len(lines), 40)} of {len(lines)} lines): {log.job_output}"
            )
            print("\n".join(lines[-40:]))
    return 2 if refused else 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = Store(args.store)
    identity = store.check_format()
    console = out()
    checked = verify_store(store.read)
    notes = 0
    for uid, kind, found in checked.units:
        if found.digest is not None:
            console.print(f"{uid}  {kind:<12} {found.digest}")
        for problem in found.damage:
            console.print(f"[red]CORRUPT[/red] {uid} {problem}")
        for note in found.notes:
            notes += 1
            console.print(f"[yellow]note[/yellow] {uid} {note}")
    for gone in checked.lost_inputs:
        console.print(
            f"[red]INPUT GONE[/red] {gone.uid} {gone.kind}: its input {gone.role} = {gone.ref} is no longer "
            f"usable ({gone.why}); this unit stands on work that must run again — `lowloss resume {store.root} "
            "--repair` runs both"
        )
    for path in checked.stray_pickles:
        notes += 1
        console.print(
            f"[yellow]note[/yellow] {path.relative_to(store.root).as_posix()}: a pickle where lowloss writes none "
            "(never read by lowloss; only submitit's slurm/<job>/*.pkl belong in a store)"
        )
    lost = len(checked.lost_inputs)
    console.print(
        f"study {identity.study!r}: {checked.committed} committed unit(s) verified; {checked.corrupt} corrupt file(s); "
        + (f"{lost} committed unit(s) on an input no longer committed; " if lost else "")
        + f"{notes} uncommitted leftover(s) (invisible to readers)"
    )
    if checked.corrupt or lost:
        console.print(
            f"`lowloss resume {store.root} --repair` moves the damaged units, and those whose inputs are gone, aside "
            "and runs them (with their inputs, and what depends on them) again"
        )
    return 1 if checked.corrupt or lost else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    store = Store(args.store)
    store.check_format()
    uids = [store.find_unit(u)[0] for u in args.units] if args.units else None
    console = out()

    def asked(holder: CoordinatorRecord) -> None:
        console.print(
            f"asked the coordinator (pid {holder.pid}, executor {holder.executor}) to stop; its running units "
            "checkpoint …"
        )

    done = cancel(store, uids, asked)
    holder = done.holder
    if done.how is Cancelled.ELSEWHERE and holder is not None:
        print(
            f"lowloss: error: the coordinator of {store.root} runs on host {holder.host} (pid {holder.pid}): "
            f"stop it there (Ctrl-C, or `kill -TERM {holder.pid}`)",
            file=sys.stderr,
        )
        return 1
    if done.how is Cancelled.STILL_RUNNING and holder is not None:
        print(f"lowloss: error: the coordinator (pid {holder.pid}) still runs after 10 minutes", file=sys.stderr)
        return 1
    if done.how is Cancelled.COORDINATOR:
        console.print(f"stopped: committed work is kept — `lowloss resume {store.root}` continues the study")
    elif done.how is Cancelled.NOTHING:
        console.print(
            "nothing to cancel: no Slurm jobs are recorded for "
            + ("these units" if uids else "this store")
            + (", and no coordinator drives it" if holder is None else "")
        )
    else:
        console.print(
            f"cancelled {len(done.jobs)} Slurm job(s): {' '.join(done.jobs)}; the units keep their checkpoints — "
            f"`lowloss run` (or `lowloss resume {store.root}`) continues them"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
