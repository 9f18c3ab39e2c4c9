"""Vectorized training benchmark (issue 13, item 5). Prints figures; asserts nothing.

    python bench/vectorize.py [--seeds 16] [--steps 30] [--model lenet5] [--dataset mnist5k] [--device cpu]
                              [--units] [--line POINTS]

Seed-steps per second of K seeds trained the two ways a study can train them, side by side in one run, one CPU
thread (what every train unit gets): K separate training loops (what K plain `train` units do, one after another,
each with its own model, optimizer and batch stream) against one batched model of the K seeds (`vectorize = K`: the
same batch streams, `StackedModels` through torch.func's vmap), and the ceiling of any batching on this device: one
model stepping on the K batches concatenated (K×64 examples through one set of kernels; about 1x means the device is
compute-bound at batch 64 and vectorizing cannot pay). Both loops draw each seed's batches exactly as a
train unit does (LLPF Table 4's augmentation on mnist5k); the first steps are warm-up and not timed.

With `--units`, also the wall time of a whole 16-seed `modes` stage (one epoch) through `lowloss run` with the
local executor, plain against `vectorize = K`: process start, data loading, evaluation and store writes included.
With `--line P`, also one interpolation line of P points evaluated point by point against K points at a time (the
interpolate stage's `vectorize = K`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch


def _loops(
    model_name: str, dataset: str, k: int, steps: int, device: str, warmup: int = 3
) -> tuple[float, float, float]:
    from lowloss.workers.data import BatchStream, derive_seed, load_dataset
    from lowloss.workers.models import build_model
    from lowloss.workers.training import make_optimizer, train_step
    from lowloss.workers.vectorize import StackedModels, stacked_train_step

    dev = torch.device(device)
    data = load_dataset(dataset).to(dev)
    seeds = list(range(k))
    streams = [BatchStream(data, 64, s) for s in seeds]

    def build(s):
        torch.manual_seed(derive_seed("init", s))
        return build_model(model_name, data.num_classes, data.in_channels, data.image_size).to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def seconds(step) -> float:
        """Wall time of ``steps`` calls of step(s) after ``warmup`` untimed ones."""
        for s in range(warmup):
            step(s)
        sync()
        t = time.perf_counter()
        for s in range(warmup, warmup + steps):
            step(s)
        sync()
        return time.perf_counter() - t

    # K separate loops (one after another, as K units run on one core)
    models = [build(s) for s in seeds]
    opts = [make_optimizer(m.parameters(), "sgd", 0.01, 0.9, 5e-4) for m in models]
    elapsed = sum(
        seconds(lambda s, m=m, o=o, st=st: train_step(m, o, *st.batch(s))) for m, o, st in zip(models, opts, streams)
    )
    separate = k * steps / elapsed

    stacked = StackedModels([build(s) for s in seeds])
    opt = make_optimizer(stacked.parameters(), "sgd", 0.01, 0.9, 5e-4)

    def vstep(s):
        batches = [st.batch(s) for st in streams]
        stacked_train_step(stacked, opt, torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches]))

    vectorized = k * steps / seconds(vstep)

    # the ceiling: one model stepping on the K seeds' batches concatenated (K×64 examples through one set of
    # kernels). Batching K models into one pass cannot do better than the device does on the same examples as one
    # big batch; when this is ~1x the device is compute-bound and no vectorization can pay.
    big = build(0)
    big_opt = make_optimizer(big.parameters(), "sgd", 0.01, 0.9, 5e-4)

    def bigstep(s):
        batches = [st.batch(s) for st in streams]
        train_step(big, big_opt, torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))

    ceiling = k * steps / seconds(bigstep)
    return separate, vectorized, ceiling


def _line(model_name: str, dataset: str, points: int, k: int, device: str) -> tuple[float, float]:
    """Seconds for one interpolation line of ``points`` points between two models, evaluated point by point (the
    plain interpolate unit) and K points at a time (``vectorize = K``), the same protocol (UpBN)."""
    from lowloss.workers.data import load_dataset
    from lowloss.workers.evaluation import Evaluator
    from lowloss.workers.interpolation import interpolate_state
    from lowloss.workers.models import build_model
    from lowloss.workers.vectorize import StackedEvaluator

    dev = torch.device(device)
    data = load_dataset(dataset).to(dev)
    ends = []
    for s in range(2):
        torch.manual_seed(s)
        ends.append(build_model(model_name, data.num_classes, data.in_channels, data.image_size).to(dev).state_dict())
    model = build_model(model_name, data.num_classes, data.in_channels, data.image_size).to(dev)
    states = [interpolate_state(ends[0], ends[1], i / (points - 1)) for i in range(points)]
    plain, stacked = Evaluator(model, data, "UpBN"), StackedEvaluator(model, data, k, "UpBN")
    plain.evaluate(states[0])
    stacked.evaluate(states[:k])
    t = time.perf_counter()
    for st in states:
        plain.evaluate(st)
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, points, k):
        stacked.evaluate(states[i : i + k])
    return t_plain, time.perf_counter() - t


SPEC = """
[study]
name = "bench-vectorize"
seeds = {{ start = 0, count = {k} }}
[data]
dataset = "{dataset}"
[model]
name = "{model}"
[train]
optimizer = "sgd"
lr = 0.01
momentum = 0.9
batch_size = 64
epochs = 1
segment_steps = 100
[run]
jobs = 1
checkpoint_seconds = 60
[[stages]]
name = "modes"
kind = "train"
{vectorize}
"""


def _stage_wall(model: str, dataset: str, k: int, vectorize: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "spec.toml")
        with open(spec, "w") as fh:
            fh.write(
                SPEC.format(
                    k=k, dataset=dataset, model=model, vectorize=f"vectorize = {vectorize}" if vectorize else ""
                )
            )
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "lowloss.orchestrator.cli", "run", spec, "--store", os.path.join(tmp, "s")],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--units", action="store_true", help="also time a whole modes stage through `lowloss run`")
    ap.add_argument(
        "--line", type=int, default=0, metavar="POINTS", help="also time one interpolation line of POINTS points"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.seeds} seeds of {args.model} on {args.dataset}, batch 64, {args.steps} timed steps per seed, "
        f"device {args.device}, {args.threads} thread(s), load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    separate, vectorized, ceiling = _loops(args.model, args.dataset, args.seeds, args.steps, args.device)
    print(f"  {args.seeds} separate loops : {separate:8.1f} seed-steps/s")
    print(f"  vectorize = {args.seeds:<3}      : {vectorized:8.1f} seed-steps/s   ratio {vectorized / separate:5.2f}x")
    print(
        f"  ceiling              : {ceiling:8.1f} seed-steps/s   ratio {ceiling / separate:5.2f}x"
        f"   (one model, batch {args.seeds}x64: the most any batching of these kernels can give)"
    )
    if args.line:
        plain_s, vec_s = _line(args.model, args.dataset, args.line, args.seeds, args.device)
        print(
            f"  one interpolation line, {args.line} points (UpBN): point by point {plain_s:.2f} s, "
            f"vectorize = {args.seeds} {vec_s:.2f} s, ratio {plain_s / vec_s:.2f}x"
        )
    if args.units:
        plain = _stage_wall(args.model, args.dataset, args.seeds, None)
        vec = _stage_wall(args.model, args.dataset, args.seeds, args.seeds)
        print(
            f"  modes stage, 1 epoch, `lowloss run` (local, --jobs 1): {args.seeds} units {plain:.1f} s, "
            f"vectorize = {args.seeds} {vec:.1f} s, ratio {plain / vec:.2f}x"
        )
    print(f"  load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
