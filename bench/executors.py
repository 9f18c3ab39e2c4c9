"""Executor benchmarks (issues: executors, throughput). Prints figures; asserts nothing. Needs the test cluster for
Slurm:

    bash slurm/testcluster.sh start && source /tmp/lowloss-testcluster/env.sh
    RAY_AUTH_MODE=disabled .venv/bin/python bench/executors.py [--units 1000] [--only local-fresh,local,...]

1. Units per second dispatched (submitted to the executor) and completed (committed in the store) for N trivial units
   on each executor: local (--jobs 2) and Ray, each with a fresh process per unit (``-fresh``, ``--fresh-processes``)
   and with warm workers (the default), with the warm/fresh ratio; Slurm arrays (one task per unit), Slurm packed
   (50 units per task).
2. ``default``: the embedded default study (digits-default, 10 units) end to end, fresh processes against warm workers.
3. ``interpolations``: N interpolation units (default 200) between digits modes (trained first, not timed): wall
   time against the sum of the units' own time (their segments' wall times: data load and compute, as the segment
   markers record them), fresh processes and warm workers; overhead = wall × jobs / Σ own − 1.
4. The store-checkpoint path on a requeue: a training unit is requeued with `scontrol requeue` mid-path; from its
   attempt records and segment markers: the time the unit spent writing its checkpoint after the signal, Slurm's
   requeue-to-restart latency, and the restart-to-first-new-segment time (start-up, checkpoint read, data load).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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


def bench_executor(label: str, args: list[str], n: int, tmp: Path) -> float:
    spec = tmp / f"{label}.toml"
    spec.write_text(_spec(n))
    store = tmp / label
    profile = tmp / "profile.toml"
    profile.write_text('[defaults]\npartition = "debug"\nmem_gb = 0.25\ntime_min = 10\narray_parallelism = 1000\n')
    args = [a.replace("PROFILE", str(profile)) for a in args]
    t0, t0_wall = time.perf_counter(), time.time()
    subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "run", str(spec), "--store", str(store), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    total = time.perf_counter() - t0
    last_start = _last_start(store)
    committed = len(list(store.glob("units/kind=noop/*/COMMIT.json")))
    records = [json.loads(p.read_text()) for p in (store / "jobs").glob("*.json")] if (store / "jobs").exists() else []
    dispatch = (last_start - t0_wall) if last_start is not None else float("nan")
    jobs = f", {sum(len(r['tasks']) for r in records)} array tasks in {len(records)} arrays" if records else ""
    print(
        f"  {label:<14} {committed}/{n} committed in {total:7.1f} s → {committed / total:7.1f} units/s completed; "
        f"dispatch done after {dispatch:6.1f} s ({n / dispatch:7.1f} units/s){jobs}{_steady(store, 'noop')}",
        flush=True,
    )
    return committed / total


def _last_start(store: Path) -> float | None:
    """When the coordinator handed the last unit to the executor (the end of dispatch), as epoch seconds: its last
    ``started`` line in ``logs/coordinator.log`` (the console shows no per-unit lines). The log stamps whole seconds,
    so this is the middle of that second (±0.5 s)."""
    try:
        lines = (store / "logs" / "coordinator.log").read_text().splitlines()
    except FileNotFoundError:
        return None
    stamps = [line[:19] for line in lines if line[20:].startswith("started ")]
    if not stamps:
        return None
    return time.mktime(time.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S")) + 0.5


def _attempts(store: Path, kind: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in store.glob(f"units/kind={kind}/*/attempts/*.json")]


def _steady(store: Path, kind: str) -> str:
    """Units/s between the first unit's start and the last one's end (start-up of the CLI and of the workers left
    out), and how many worker processes ran them."""
    recs = [r for r in _attempts(store, kind) if r.get("state") == "done"]
    if len(recs) < 2:
        return ""
    span = max(r["finished"] for r in recs) - min(r["started"] for r in recs)
    return f"; steady {len(recs) / span:6.1f} units/s in {len({(r['host'], r['pid']) for r in recs})} process(es)"


def _run(spec: Path | None, store: Path, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "run", *([str(spec)] if spec else []), "--store", str(store)]
        + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lowloss run {spec} failed:\n{proc.stdout[-3000:]}")
    return wall


def _digests(store: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "verify", str(store)],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    return dict(re.findall(r"^([0-9a-f]{20})\s+\S+\s+([0-9a-f]{64})$", out, flags=re.M))


def bench_default(tmp: Path) -> None:
    """The embedded default study, fresh processes against warm workers (same digests)."""
    walls = {}
    for mode, extra in (("fresh", ["--fresh-processes"]), ("warm", [])):
        walls[mode] = _run(None, tmp / f"default-{mode}", *extra)
    same = _digests(tmp / "default-fresh") == _digests(tmp / "default-warm")
    print(
        f"  digits-default (10 units, --jobs 2): fresh {walls['fresh']:6.1f} s, warm {walls['warm']:6.1f} s → "
        f"warm takes {walls['warm'] / walls['fresh']:.2f}× the time ({walls['fresh'] / walls['warm']:.2f}× faster); "
        f"digests {'identical' if same else 'DIFFER'}",
        flush=True,
    )


def _own_time(store: Path, kind: str) -> float:
    """Σ over committed units of their segments' wall times (from the segment markers)."""
    total = 0.0
    for marker in store.glob(f"units/kind={kind}/*/segments/*.json"):
        m = json.loads(marker.read_text())
        total += float(m["finished"]) - float(m["started"])
    return total


def bench_interpolations(tmp: Path, n: int, n_fresh: int, seeds: int = 21) -> None:
    modes = f"""
[study]
name = "bench-interp"
seeds = {{ start = 0, count = {seeds} }}
[data]
dataset = "digits"
[model]
name = "small_cnn"
[train]
epochs = 1
segment_steps = 100
[run]
jobs = 2
[[stages]]
name = "modes"
kind = "train"
"""
    spec_modes = tmp / "interp-modes.toml"
    spec_modes.write_text(modes)
    base = tmp / "interp-base"
    _run(spec_modes, base)  # the modes, not timed
    print("  interpolation units (small_cnn digits modes, 11 points, BatchNorm re-estimated, --jobs 2):", flush=True)
    per_unit = {}
    for mode, count, extra in (("fresh", n_fresh, ["--fresh-processes"]), ("warm", n, [])):
        spec = tmp / f"interp-{mode}.toml"
        spec.write_text(
            modes + f'[[stages]]\nname = "lmc"\nkind = "interpolate"\nfrom = "modes"\n'
            f"pairs = {{ random = {count}, seed = 0 }}\npoints = 11\n"
        )
        store = tmp / f"interp-{mode}"
        shutil.copytree(base, store)
        wall = _run(spec, store, *extra)
        own = _own_time(store, "interpolate")
        per_unit[mode] = wall / count
        print(
            f"    {mode:<5}: {count} units, wall {wall:7.1f} s, Σ units' own time {own:7.1f} s "
            f"→ overhead {wall * 2 / own - 1:6.1%}{_steady(store, 'interpolate')}",
            flush=True,
        )
    print(
        f"    wall time per unit: fresh {per_unit['fresh']:.2f} s, warm {per_unit['warm']:.2f} s "
        f"({per_unit['fresh'] / per_unit['warm']:.1f}× faster)",
        flush=True,
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
    if m is None:
        raise SystemExit(f"the requeued attempt's log says nowhere where it resumed:\n{log[-3000:]}")
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
    p.add_argument("--fresh-units", type=int, default=0, help="trivial units of the -fresh runs (default: --units)")
    p.add_argument("--interpolations", type=int, default=200, help="interpolation units of the overhead benchmark")
    p.add_argument(
        "--fresh-interpolations", type=int, default=0, help="interpolation units of the fresh run (default: the same)"
    )
    p.add_argument(
        "--only",
        default="local-fresh,local,ray-fresh,ray,slurm-arrays,slurm-packed,default,interpolations,requeue",
    )
    args = p.parse_args()
    only = set(args.only.split(","))
    runs = {
        "local-fresh": ["--executor", "local", "--jobs", "2", "--fresh-processes"],
        "local": ["--executor", "local", "--jobs", "2"],
        "ray-fresh": ["--executor", "ray", "--fresh-processes"],
        "ray": ["--executor", "ray"],
        "slurm-arrays": ["--executor", "slurm", "--profile", "PROFILE", "--units-per-job", "1"],
        "slurm-packed": ["--executor", "slurm", "--profile", "PROFILE", "--units-per-job", "50"],
    }
    with tempfile.TemporaryDirectory(prefix="lowloss-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "profile.toml").write_text('[defaults]\npartition = "debug"\nmem_gb = 0.25\ntime_min = 10\n')
        print(
            f"[executors] {args.units} trivial units each ({os.cpu_count()} CPU cores; load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Slurm: the two-node test cluster)",
            flush=True,
        )
        rates = {
            label: bench_executor(label, a, (args.fresh_units or args.units) if "fresh" in label else args.units, tmp)
            for label, a in runs.items()
            if label in only
        }
        for ex in ("local", "ray"):
            if ex in rates and f"{ex}-fresh" in rates:
                ratio = rates[ex] / rates[ex + "-fresh"]
                print(f"  {ex}: warm workers complete {ratio:.1f}× the units/s of fresh processes", flush=True)
        if "default" in only:
            bench_default(tmp)
        if "interpolations" in only:
            bench_interpolations(tmp, args.interpolations, args.fresh_interpolations or args.interpolations)
        if "requeue" in only:
            bench_requeue(tmp)


if __name__ == "__main__":
    main()
