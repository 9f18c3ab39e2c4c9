"""One run of a study, from the edge checks to its outcome: what ``lowloss run`` and ``lowloss resume`` do.

Everything that can be refused is refused before the store is touched (the data root, the store's study and format,
a study too large to expand, a read-only store, a site profile that does not load, ``--device cuda`` without a GPU,
Slurm without ``sbatch`` or without a controller that answers); then the coordinator lock is taken, the study written,
and the coordinator runs.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass
from typing import Any

from ..executors import make_executor, settings_of
from ..spec import SpecError, Study, check_data
from ..store import LockMechanism, Store
from ..store.atomic import check_writable
from .coordinator import Coordinator
from .graph import plan_study
from .outcome import Outcome
from .progress import Reporter


@dataclass(frozen=True)
class RunRequest:
    """What a run is asked to do beyond its study."""

    store: Store
    data_root: str | None = None
    retry_failed: bool = False
    repair: bool = False


def edge_checks(study: Study, request: RunRequest) -> list[str]:
    """Refuse, before the store is touched, what cannot run; returns notes for the user (nothing refused)."""
    check_data(study, request.data_root)
    request.store.check_study(study.name)
    plan_study(study)  # a study too large to expand is an edge error
    check_writable(request.store.root)  # a read-only store is an edge error, before the coordinator lock is made
    notes = check_where(study)
    if study.run.executor == "slurm":
        check_slurm()
    return notes


def check_slurm() -> None:
    """Slurm's ``sbatch`` is on PATH and a Slurm controller answers (``scontrol ping``, a few seconds at most)."""
    from ..executors.slurm import controller_problem

    if shutil.which("sbatch") is None:
        raise SpecError(
            "--executor",
            "slurm",
            "needs Slurm's sbatch on PATH: run on a login node of the cluster "
            "(or as a job: `lowloss submit`), or use --executor local|ray",
        )
    problem = controller_problem()
    if problem is not None:
        raise SpecError(
            "--executor",
            "slurm",
            f"no Slurm controller answers ({problem}); start the cluster's slurmctld or point SLURM_CONF at the "
            "slurm.conf of a running cluster, run on a login node of the cluster, or use --executor local|ray",
        )


def check_where(study: Study) -> list[str]:
    """Edge checks of where units run: a profile given (``--profile`` or ``[run] profile``) must load whatever the
    executor — a typo'd path is never ignored — and is noted as unused off Slurm; ``--device cuda`` on the local
    executor needs a GPU here (on Slurm and Ray the node decides)."""
    from ..executors.profiles import load_profile
    from ..runtime import cuda_problem

    notes = []
    run = study.run
    if run.executor == "slurm" or run.profile:
        load_profile(run.profile)
        if run.executor != "slurm":
            notes.append(
                f"profile {run.profile!r} is a Slurm site profile; the {run.executor} executor does not use it"
            )
    if run.executor == "local" and run.device == "cuda":
        problem = cuda_problem()
        if problem is not None:
            raise SpecError(
                "--device", "cuda", f"{problem}; use --device auto (a GPU where there is one) or --device cpu"
            )
    return notes


def stop_on_sigterm() -> None:
    """SIGTERM (kill, a Slurm job's end, systemd) stops a run like Ctrl-C: units checkpoint, then the run ends."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_study(study: Study, request: RunRequest, reporter: Reporter | None = None) -> Outcome:
    """Run a study to its end (or its stop) under the store's coordinator lock. A stop (Ctrl-C, SIGTERM) that leaves
    units to run raises KeyboardInterrupt; one that comes when nothing is left to run ends as a complete run."""
    store = request.store
    store.refuse_links()  # before the coordinator's own files are written: nothing may land outside the store
    with store.locks.coordinator(study.run.executor, LockMechanism(study.run.lock), study.run.lease_seconds):
        store.init_study(study.name, study.text)
        settings = settings_of(study.run)
        executor = make_executor(settings, store.root)
        reporter = reporter or Reporter(store)
        reporter.message(
            f"study {study.name!r} → store {store.root} (executor {study.run.executor}, {settings.describe()})"
        )
        coordinator = Coordinator(
            study, store, executor, study.run.retries, reporter, request.data_root, request.retry_failed,
            request.repair,
        )  # fmt: skip
        try:
            return coordinator.run()
        except KeyboardInterrupt:
            outcome = coordinator.outcome
            if not outcome.settled or outcome.pending or outcome.nospace:
                raise  # units are left to run: "interrupted", exit 130
            # the stop came when nothing was left to run (the running units reached their commits while stopping):
            # the run ended as an uninterrupted one would, and says so with its usual summary and exit code
            reporter.message(
                "stopped with nothing left to run (the running units reached their commits): the run is complete"
            )
            return outcome
