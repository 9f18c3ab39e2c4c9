"""Executor benchmarks (issue: executors). Prints figures; asserts nothing. Needs the test cluster for Slurm:

    bash slurm/testcluster.sh start && source /tmp/lowloss-testcluster/env.sh
    RAY_AUTH_MODE=disabled .venv/bin/python bench/executors.py [--units 1000] [--only local,slurm-arrays,...]

1. Units per second dispatched (submitted to the executor) and completed (committed in the store) for N trivial units
   on each executor: local (--jobs 2), Slurm arrays (one task per unit), Slurm packed (50 units per task), Ray.
2. The store-checkpoint path on a requeue: a training unit is requeued with `scontrol requeue` mid-path; from its
   attempt records and segment markers: the time the unit spent writing its checkpoint after the signal, Slurm's
   requeue-to-restart latency, and the restart-to-first-new-segment time (start-up, checkpoint read, data load).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE / "plugins") + os.pathsep + env.get("PYTHONPATH", "")
    env["LOWLOSS_PLUGINS"] = "lowloss_bench_plugins"
    env.setdefault("RAY_AUTH_MODE", "disabled")
    return env


def _spec(n: int) -> str:
    return f"""
[study]
name = "bench-noop"
seeds = [0]
[run]
retries = 0
[[stages]]
name = "noop"
kind = "noop"
count = {n}
"""


def bench_executor(label: str, args: list[str], n: int, tmp: Path) -> None:
    spec = tmp / f"{label}.toml"
    spec.write_text(_spec(n))
    store = tmp / label
    profile = tmp / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 0.25\ntime_min = 10\narray_parallelism = 1000\n')
    args = [a.replace("PROFILE", str(profile)) for a in args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "run", str(spec), "--store", str(store), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    dispatched_at = None
    for line in proc.stdout:  # the coordinator reports each start; the last start is the end of dispatch
        if " started" in line or "started" in line:
            dispatched_at = time.perf_counter()
    proc.wait()
    total = time.perf_counter() - t0
    committed = len(list(store.glob("units/kind=noop/*/COMMIT.json")))
    records = [json.loads(p.read_text()) for p in (store / "jobs").glob("*.json")] if (store / "jobs").exists() else []
    dispatch = (dispatched_at - t0) if dispatched_at else float("nan")
    jobs = f", {sum(len(r['tasks']) for r in records)} array tasks in {len(records)} arrays" if records else ""
    print(
        f"  {label:<14} {committed}/{n} committed in {total:7.1f} s → {committed / total:7.1f} units/s completed; "
        f"dispatch done after {dispatch:6.1f} s ({n / dispatch if dispatched_at else float('nan'):7.1f} units/s){jobs}"
    )


def bench_requeue(tmp: Path) -> None:
    spec = tmp / "requeue.toml"
    spec.write_text("""
[study]
name = "bench-requeue"
seeds = [0]
[model]
name = "small_cnn"
[train]
epochs = 40
segment_steps = 10
[run]
checkpoint_seconds = 60
[[stages]]
name = "modes"
kind = "train"
""")
    store = tmp / "requeue"
    profile = tmp / "profile.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowloss.orchestrator.cli",
            "run",
            str(spec),
            "--store",
            str(store),
            "--executor",
            "slurm",
            "--profile",
            str(profile),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    unit = None
    while unit is None or len(list(unit.glob("segments/*.json"))) < 20:
        time.sleep(0.1)
        unit = next(iter(store.glob("units/kind=train/unit=*")), None)
    task = next(t for p in (store / "jobs").glob("*.json") for t in json.loads(p.read_text())["tasks"])
    t_requeue = time.time()
    subprocess.run(["scontrol", "requeue", task], check=True)
    proc.wait()
    attempts = [json.loads(p.read_text()) for p in sorted((unit / "attempts").glob("*.json"))]
    second = attempts[1]
    log = (unit / "attempts" / "002.log").read_text()
    m = re.search(r"resumed at step (\d+) \(segment (\d+)\)", log)
    resumed_segment = int(m.group(2))
    markers = {
        json.loads(p.read_text())["index"]: json.loads(p.read_text()) for p in (unit / "segments").glob("*.json")
    }
    first_new = markers[resumed_segment]
    ckpt = json.loads((unit / "attempts" / "001.json").read_text())
    print(
        f"  requeue of a small_cnn train unit "
        f"(checkpoint ~{(unit / 'final.safetensors').stat().st_size * 2 / 1e3:.0f} kB):"
    )
    print(f"    signal → checkpoint written, attempt ended : {ckpt['finished'] - t_requeue:6.2f} s")
    print(f"    Slurm requeue → job restarted             : {second['started'] - ckpt['finished']:6.2f} s")
    print(
        f"    restart → first new segment committed     : {first_new['finished'] - second['started']:6.2f} s "
        f"(python + torch import, checkpoint read, data load, {first_new['rows'].get('steps', 0)} steps)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, default=1000)
    p.add_argument("--only", default="local,slurm-arrays,slurm-packed,ray,requeue")
    args = p.parse_args()
    only = set(args.only.split(","))
    runs = {
        "local": ["--executor", "local", "--jobs", "2"],
        "slurm-arrays": ["--executor", "slurm", "--profile", "PROFILE", "--units-per-job", "1"],
        "slurm-packed": ["--executor", "slurm", "--profile", "PROFILE", "--units-per-job", "50"],
        "ray": ["--executor", "ray"],
    }
    with tempfile.TemporaryDirectory(prefix="lowloss-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "profile.toml").write_text('[defaults]\npartition = "debug"\nmem_gb = 0.25\ntime_min = 10\n')
        print(f"[executors] {args.units} trivial units each (2 CPU cores; Slurm: the two-node test cluster)")
        for label, a in runs.items():
            if label in only:
                bench_executor(label, a, args.units, tmp)
        if "requeue" in only:
            bench_requeue(tmp)


if __name__ == "__main__":
    main()
