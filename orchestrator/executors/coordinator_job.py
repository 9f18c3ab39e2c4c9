"""The coordinator itself as a Slurm job (``lowloss submit``): ``slurm/coordinator.sbatch`` submitted with the sbatch
options and environment activation of the site profile's ``[coordinator]`` table, running ``lowloss run``."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..spec import SpecError
from .profiles import SiteProfile, coordinator_sbatch_options, coordinator_setup


@dataclass(frozen=True)
class CoordinatorJob:
    command: list[str]  # the sbatch command line
    setup: list[str]  # the shell lines the job runs before lowloss (shown with --dry-run)


def coordinator_job(
    spec: str, store: Path, run_options: list[str], profile: SiteProfile, output: str | None = None
) -> CoordinatorJob:
    """The sbatch command of the coordinator's job: ``lowloss run SPEC --store STORE --executor slurm OPTIONS``."""
    script = Path(str(files("lowloss.slurm"))) / "coordinator.sbatch"
    setup = coordinator_setup(profile)
    export = "ALL" + (f",LOWLOSS_SETUP_B64={base64.b64encode(chr(10).join(setup).encode()).decode()}" if setup else "")
    command = [
        "sbatch",
        "--parsable",
        *coordinator_sbatch_options(profile),
        f"--output={os.path.abspath(output)}" if output else "--output=lowloss-coordinator-%j.out",
        f"--export={export}",
        str(script),
        spec,
        os.path.abspath(store),
        *run_options,
    ]
    return CoordinatorJob(command, setup)


def submit(job: CoordinatorJob) -> str:
    """Submit the coordinator's job; its Slurm job id."""
    if shutil.which("sbatch") is None:
        raise SpecError("submit", "sbatch", "needs Slurm's sbatch on PATH: run it on a login node of the cluster")
    proc = subprocess.run(job.command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SpecError("submit", "sbatch", f"sbatch refused the coordinator's job: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]
