"""Report benchmark (issue: aggregation and reports). Prints figures; asserts nothing.

    python bench/report.py [--paths 100] [--iterations 30000] [--segment 1000] [--layers 10] [--keep DIR]

Writes a store of ``--paths`` path units with ``--iterations`` metric rows each, shaped like an LLPF M2M unit's rows
(iteration, loss, rolling_loss, dist.<tensor> and var.<tensor> for each of ``--layers`` LeNet5-like tensors, step, lr,
test_loss/test_acc every 100 iterations, null otherwise), through the real store API (``UnitWriter.write_segment`` per
segment of ``--segment`` rows, then ``commit``), and times:

1. the summary table over the units' results (``summary_rows``, as ``lowloss report`` prints it);
2. the aggregation behind a band figure (mean ± std over the units per iteration, moving average): training loss;
3. the training-loss band figure drawn and saved as PNG + PDF (aggregation included);
4. the layer-wise distance band figure (one line per tensor) drawn and saved;
5. ``lowloss report --out`` as a command (interpreter start, every table format and every figure of the stage).

Goal: 1–3 together in a few seconds. ``--keep DIR`` writes the store there once and re-uses it on later runs.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lowloss.jobs import Metric, UnitKind, register_kind
from lowloss.jobs.base import Figure, Verdict

# `lowloss report` in a subprocess loads this module as a plugin (LOWLOSS_PLUGINS=report) for the kind declarations
# below, while lowloss.jobs is still importing: the orchestrator is imported inside the functions.

TENSORS = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
]
EVAL_EVERY = 100


class BenchPathKind(UnitKind):
    """Declarations only (the rows are synthetic): what an LLPF M2M kind declares."""

    name = "bench_path"
    tables = ("path",)
    metrics = (
        Metric("max_train_loss", "max train loss"),
        Metric("final_dist", "final layer distance to D"),
        Metric("test_loss_start", "test loss at start"),
        Metric("test_loss_end", "test loss at end"),
    )
    verdicts = (Verdict("below_threshold", "train loss below threshold"), Verdict("reached", "reached D"))
    figures = (
        Figure(
            "loss",
            "Path: training loss",
            table="path",
            x="iteration",
            ys=("loss",),
            labels=("training loss",),
            xlabel="iteration",
            ylabel="cross-entropy loss (train)",
            logy=True,
            smooth=10,
        ),
        Figure(
            "distance",
            "Path: layer-wise L2 distance to D",
            table="path",
            x="iteration",
            ys=("dist.*",),
            labels=("layer",),
            xlabel="iteration",
            ylabel="‖P − D‖₂ of the layer",
            logy=True,
            smooth=10,
        ),
        Figure(
            "test",
            "Path: test loss and accuracy",
            table="path",
            x="iteration",
            ys=("test_loss",),
            labels=("test loss",),
            y2s=("test_acc",),
            y2labels=("test accuracy",),
            xlabel="iteration",
            ylabel="cross-entropy loss (test)",
            y2label="accuracy (test)",
        ),
    )


register_kind(BenchPathKind())


def _params(i: int) -> dict:
    return {"seed": i, "lr": 0.01}


def _uid(i: int) -> str:
    """The unit's real id (the store checks that unit.json hashes to it)."""
    from lowloss.orchestrator.store import unit_id

    return unit_id("bench_path", 1, _params(i), {})


def write_unit(root: str, i: int, iterations: int, segment: int, layers: int) -> None:
    from lowloss.orchestrator.store import Store, UnitRecord, UnitWriter

    store = Store(root)
    rec = UnitRecord(_uid(i), "bench_path", 1, _params(i), {})
    store.write_unit(rec)
    writer = UnitWriter(store.layout, rec)
    rng = np.random.default_rng(i)
    it = np.arange(iterations)
    bump = np.exp(-(((it - 12000.0) / 5000.0) ** 2))  # a path's loss rises on the way and settles near D
    loss = 0.01 + (0.02 + 0.005 * rng.random()) * bump + 0.004 * rng.random(iterations)
    rolling = np.convolve(loss, np.ones(10) / 10, mode="full")[:iterations]
    names = TENSORS[:layers]
    dist = {n: (3.0 + j + rng.random()) * np.exp(-it / (4000.0 + 300 * j)) for j, n in enumerate(names)}
    var = {n: np.full(iterations, 0.01 * (j + 1)) + 1e-4 * rng.random(iterations) for j, n in enumerate(names)}
    evals = it % EVAL_EVERY == 0
    test_loss = np.where(evals, 0.05 + 0.01 * rng.random(iterations), np.nan)
    test_acc = np.where(evals, 0.98 + 0.01 * rng.random(iterations), np.nan)
    cols = {
        "iteration": it.tolist(),
        "loss": loss.tolist(),
        "rolling_loss": rolling.tolist(),
        **{f"dist.{n}": dist[n].tolist() for n in names},
        **{f"var.{n}": var[n].tolist() for n in names},
        "step": (it * 4).tolist(),
        "lr": [0.01] * iterations,
        "test_loss": [None if math.isnan(v) else v for v in test_loss.tolist()],
        "test_acc": [None if math.isnan(v) else v for v in test_acc.tolist()],
    }
    keys = list(cols)
    for s, start in enumerate(range(0, iterations, segment)):
        stop = min(start + segment, iterations)
        rows = [dict(zip(keys, vals)) for vals in zip(*(cols[k][start:stop] for k in keys))]
        writer.write_segment(s, {"path": rows})
    final = max(dist[n][-1] for n in names)
    tests = test_loss[evals]
    writer.commit(
        {
            "max_train_loss": float(loss.max()),
            "final_dist": float(final),
            "test_loss_start": float(tests[0]),
            "test_loss_end": float(tests[-1]),
            "below_threshold": bool(loss.max() < 0.033),
            "reached": bool(final < 0.1),
        }
    )


def build(root: Path, paths: int, iterations: int, segment: int, layers: int) -> float:
    from lowloss.orchestrator.store import PlannedStage, PlannedUnitEntry, PlanRecord, Store

    store = Store(root)
    planned = store.plan().stages if store.exists() else ()
    if (
        planned
        and len(planned[0].units) == paths
        and all(store.read.is_committed(_uid(i), "bench_path") for i in range(paths))
    ):
        return 0.0
    t0 = time.perf_counter()
    store.init_study("bench-report", "# synthetic rows for bench/report.py\n")
    units = tuple(PlannedUnitEntry(_uid(i), "bench_path", f"pair={i}") for i in range(paths))
    store.write_plan(PlanRecord("bench-report", (PlannedStage("m2m", "bench_path", "bench_path", False, "", units),)))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(
            pool.map(
                write_unit, [str(root)] * paths, range(paths), [iterations] * paths, [segment] * paths, [layers] * paths
            )
        )
    return time.perf_counter() - t0


def read_rows_checked(root: Path, units, repeats: int) -> tuple[float, float, float]:
    """Reading every committed row of the units: size checked only, vs size and sha256 (what every reader does) with
    an empty per-process cache of hashed files, vs with every file already hashed (side by side, best of repeats)."""
    from lowloss.orchestrator.store import Store, digests

    store = Store(root)

    def read(verify: bool) -> None:
        for uid in units:
            store.read.rows(uid, "bench_path", "path", verify=verify)

    def cold() -> None:
        digests.forget_verified()  # every file hashed again, as in a fresh process
        read(True)

    t_size, _ = timed(lambda: read(False), repeats)
    t_cold, _ = timed(cold, repeats)
    t_warm, _ = timed(lambda: read(True), repeats)
    return t_size, t_cold, t_warm


def timed(fn, repeats: int):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> None:
    from lowloss.orchestrator.report.api import open_study
    from lowloss.orchestrator.report.figure_data import figure_data
    from lowloss.orchestrator.report.figures import draw_xy
    from lowloss.orchestrator.report.summary import summary_rows

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", type=int, default=100)
    p.add_argument("--iterations", type=int, default=30000)
    p.add_argument("--segment", type=int, default=1000, help="rows per committed segment")
    p.add_argument("--layers", type=int, default=10, help="tensors with dist.* / var.* columns (≤ 10)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", help="store directory to write once and re-use")
    args = p.parse_args()
    tmp = None
    if args.keep:
        root = Path(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name) / "store"
    setup = build(root, args.paths, args.iterations, args.segment, min(args.layers, len(TENSORS)))
    rows = args.paths * args.iterations
    cols = 7 + 2 * min(args.layers, len(TENSORS))
    print(
        f"[report] {args.paths} path units × {args.iterations} iterations = {rows:,} rows × {cols} columns, "
        f"{args.paths * math.ceil(args.iterations / args.segment)} committed segments "
        + (f"(written in {setup:.1f} s through UnitWriter)" if setup else f"(re-used from {root})")
    )
    print(f"  {os.cpu_count()} CPU cores; best of {args.repeats}")
    study = open_study(root)
    view = study.stage("m2m")
    loss_fig, dist_fig = BenchPathKind.figures[0], BenchPathKind.figures[1]
    out = root.parent / "bench-report-out"

    t_sum, srows = timed(lambda: summary_rows(open_study(root)), args.repeats)
    t_agg, series = timed(lambda: figure_data(open_study(root), "m2m", loss_fig), args.repeats)
    t_fig, _ = timed(lambda: draw_xy(open_study(root), view, loss_fig, out), args.repeats)
    t_dist, _ = timed(lambda: draw_xy(open_study(root), view, dist_fig, out), args.repeats)
    n = int(series[0].band.n.max())
    print(f"  summary table ({len(srows)} rows over {srows[0]['n']} results)            : {t_sum:7.3f} s")
    print(f"  loss band aggregation ({n} units × {series[0].band.x.size} iterations)   : {t_agg:7.3f} s")
    print(f"  loss band figure (read + aggregate + draw + PNG/PDF)  : {t_fig:7.3f} s")
    print(f"  summary table + loss band figure                      : {t_sum + t_fig:7.3f} s   (goal: a few seconds)")
    print(f"  layer-wise distance figure ({min(args.layers, len(TENSORS))} lines)               : {t_dist:7.3f} s")
    t_size, t_cold, t_warm = read_rows_checked(root, view.units, args.repeats)
    print(
        f"  every row of the stage, size checked only             : {t_size:7.3f} s\n"
        f"  … size and sha256 checked, first read in a process     : {t_cold:7.3f} s   ({t_cold / t_size:.2f} ×)\n"
        f"  … size and sha256 checked, files already hashed        : {t_warm:7.3f} s   ({t_warm / t_size:.2f} ×)"
    )
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", "report", str(root), "--out", str(out)],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "LOWLOSS_PLUGINS": "report",
        },
    )
    print(f"  `lowloss report --out` (command: all formats, 3 figures): {time.perf_counter() - t0:7.3f} s")
    if tmp is not None:
        tmp.cleanup()
    else:
        print(f"  figures in {out}")


if __name__ == "__main__":
    main()
