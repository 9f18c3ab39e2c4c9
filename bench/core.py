"""Core benchmarks (issue: core). Prints figures measured side by side in one run; asserts nothing.

    python bench/core.py [--epochs 30] [--repeats 3]

1. `train` unit steps/s (through the real runtime and store, checkpointing at the default cadence) against a bare
   PyTorch loop doing the same steps and evaluations on the same data: ratio of times (goal ≤ 1.05).
2. Checkpoint write throughput (safetensors, atomic: temp + fsync + rename + fsync dir) against a raw write + fsync
   of the same bytes: ratio (goal ≥ 80 %).
3. Time to plan a 100-seed study with all 4950 pairs (goal < 1 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from lowloss.orchestrator.engine.graph import plan_study
from lowloss.orchestrator.runtime import UnitOutcome, UnitTask
from lowloss.orchestrator.runtime.attempt import run_unit
from lowloss.orchestrator.spec import Study, parse_spec
from lowloss.orchestrator.store import Store, UnitRecord, UnitWriter
from lowloss.workers.data import BatchStream, TensorDataset, derive_seed, load_dataset
from lowloss.workers.models import build_model
from lowloss.workers.training import Schedule, evaluate, make_optimizer, set_lr, train_step

SPEC = """
[study]
name = "bench"
seeds = [0]
[model]
name = "small_cnn"
[train]
optimizer = "sgd"
momentum = 0.9
weight_decay = 5e-4
batch_size = 64
epochs = {epochs}
schedule = "onecycle"
max_lr = 0.1
segment_steps = 100
[run]
checkpoint_seconds = 60
[[stages]]
name = "modes"
kind = "train"
"""


def bare_loop(recipe: dict, seed: int) -> float:
    data = load_dataset("digits")
    assert isinstance(data, TensorDataset)
    torch.manual_seed(derive_seed("init", seed))
    model = build_model("small_cnn", 10, 1, 8)
    opt = make_optimizer(model.parameters(), "sgd", recipe["lr"], recipe["momentum"], recipe["weight_decay"])
    sched = Schedule(kind="onecycle", max_lr=recipe["max_lr"])
    stream = BatchStream(data, recipe["batch_size"], seed)
    spe = stream.steps_per_epoch
    total = recipe["epochs"] * spe
    t0 = time.perf_counter()
    evaluate(model, data.train_x, data.train_y), evaluate(model, data.test_x, data.test_y)
    losses = []
    for s in range(total):
        set_lr(opt, sched.lr_at(s, total, spe))
        losses.append(train_step(model, opt, *stream.batch(s)))
        if (s + 1) % spe == 0:
            evaluate(model, data.train_x, data.train_y), evaluate(model, data.test_x, data.test_y)
    torch.stack(losses).tolist()
    evaluate(model, data.train_x, data.train_y), evaluate(model, data.test_x, data.test_y)
    return time.perf_counter() - t0


def unit_run(study: Study, tmp: Path, i: int) -> tuple[float, int]:
    store = Store(tmp / f"store{i}")
    store.init_study(study.name, study.text)
    (unit,) = plan_study(study).stage_units("modes")
    store.write_unit(unit.record)
    data = load_dataset("digits")  # warm the dataset cache like the bare loop's load (not timed there either)
    del data
    t0 = time.perf_counter()
    outcome = run_unit(store, UnitTask(unit.id, unit.kind))
    elapsed = time.perf_counter() - t0
    assert outcome is UnitOutcome.DONE, outcome
    result = store.read.result(unit.id, unit.kind)
    assert result is not None
    return elapsed, result["steps"]


def bench_train(epochs: int, repeats: int) -> None:
    torch.set_num_threads(1)
    os.environ["LOWLOSS_THREADS"] = "1"
    study = parse_spec(SPEC.format(epochs=epochs))
    recipe = study.train.model_dump()
    bare, unit = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved, so drift hits both alike
            bare.append(bare_loop(recipe, 0))
            t, steps = unit_run(study, Path(tmp), i)
            unit.append(t)
    b, u = statistics.median(bare), statistics.median(unit)
    print(f"[train] small_cnn on digits, {steps} steps, {epochs} evals, 1 thread, median of {repeats}")
    print(f"  bare PyTorch loop : {b:7.3f} s  ({steps / b:8.1f} steps/s)")
    print(
        f"  lowloss train unit: {u:7.3f} s  ({steps / u:8.1f} steps/s)  (store, segments every 100 steps, "
        f"checkpoint cadence 60 s, progress)"
    )
    print(f"  ratio unit/bare   : {u / b:7.3f}   (goal ≤ 1.05)")


def bench_checkpoint(mbytes: int, repeats: int) -> None:
    n = mbytes * (1 << 20) // 4
    tensors = {"model.w": torch.randn(n // 2), "optim.0.momentum_buffer": torch.randn(n - n // 2)}
    from safetensors.torch import save

    payload = save(tensors)
    ours, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s")
        store.init_study("bench", "")
        rec = UnitRecord("b" * 20, "train", 1, {}, {})
        store.write_unit(rec)
        writer = UnitWriter(store.layout, rec)
        for i in range(repeats):
            t0 = time.perf_counter()
            with open(Path(tmp) / f"raw{i}", "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            raw.append(time.perf_counter() - t0)
            os.unlink(Path(tmp) / f"raw{i}")
            t0 = time.perf_counter()
            writer.write_checkpoint(i, tensors, {"step": i})
            ours.append(time.perf_counter() - t0)
    size = len(payload) / (1 << 20)
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"[checkpoint] {size:.0f} MiB (≈ ResNet18 params + momentum), median of {repeats}")
    print(f"  raw write + fsync           : {size / r:8.1f} MiB/s")
    print(f"  lowloss checkpoint (atomic) : {size / o:8.1f} MiB/s   (serialize + temp + fsync + rename + fsync dir)")
    print(f"  throughput ratio            : {r / o:8.1%}   (goal ≥ 80 %)")


def bench_plan() -> None:
    text = (
        SPEC.format(epochs=20).replace("seeds = [0]", "seeds = {start = 0, count = 100}")
        + '\n[[stages]]\nname = "lmc"\nkind = "interpolate"\nfrom = "modes"\npairs = "all"\n'
    )
    t0 = time.perf_counter()
    study = parse_spec(text)
    t1 = time.perf_counter()
    planner = plan_study(study)
    t2 = time.perf_counter()
    n = len(planner.units)
    print(f"[plan] 100 seeds, all pairs: {n} units ({len(planner.stage_units('lmc'))} pairs)")
    print(f"  validate {t1 - t0:6.3f} s, expand + unit ids {t2 - t1:6.3f} s, total {t2 - t0:6.3f} s  (goal < 1 s)")
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(text)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lowloss.orchestrator.cli", "plan", fh.name], check=True, capture_output=True)
    print(f"  `lowloss plan` as a command, interpreter and torch import included: {time.perf_counter() - t0:6.3f} s")
    os.unlink(fh.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint-mib", type=int, default=90)
    args = p.parse_args()
    bench_plan()
    bench_checkpoint(args.checkpoint_mib, max(args.repeats, 5))
    bench_train(args.epochs, args.repeats)


if __name__ == "__main__":
    main()
