"""LLPF benchmark (issue: LLPF). Prints figures; asserts nothing.

    python bench/llpf.py [--iterations 300] [--repeats 3]

M2M iterations per second for LeNet5-sized work (LeNet5, 28×28 MNIST-format data written in the real IDX format,
LLPF Table 1's LeNet5 row: all layers, r = 5, B = 64, SGD η = 0.001, step_f = 1e-3): the `m2m_phase` unit through the
real runtime and store (rows every iteration, segments, checkpoint cadence 60 s) against a bare loop calling the same
`llpf_m2m_iteration` (Move, VarianceCorrection, Train^r, VarianceCorrection) on the same data. The two modes are two
LeNet5 initialisations committed through the store API (speed does not depend on how good they are).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lowloss.jobs import ModeParams
from lowloss.jobs.llpf import M2MPhaseParams
from lowloss.orchestrator.engine.graph import Unit, plan_study
from lowloss.orchestrator.runtime import UnitOutcome, UnitTask
from lowloss.orchestrator.runtime.attempt import run_unit
from lowloss.orchestrator.spec import parse_spec
from lowloss.orchestrator.store import RunSettings, Store, UnitWriter
from lowloss.workers.data import BatchStream, TensorDataset, derive_seed, load_dataset
from lowloss.workers.llpf import LLPFConfig, llpf_m2m_iteration, phase_optimizer, select_tensors, state_variances
from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate

SPEC = """
[study]
name = "bench-llpf"
seeds = [0, 1]
[data]
dataset = "mnist"
[model]
name = "lenet5"
[run]
checkpoint_seconds = 60
[[stages]]
name = "modes"
kind = "train"
[[stages]]
name = "m2m"
kind = "m2m"
from = "modes"
batch_size = 64
lr = 0.001
eval_every = {its}
segment_iterations = 100
[[stages.phases]]
layers = ["all"]
iterations = {its}
rounds = 5
step_f = 1e-3
"""


def write_mnist(root: Path, n: int = 4096) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", n), ("t10k", n // 4)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, count) + labels.tobytes())


def setup_store(tmp: Path, its: int, root: Path) -> tuple[Store, Unit, list[Unit]]:
    study = parse_spec(SPEC.format(its=its))
    store = Store(tmp / "store")
    store.init_study(study.name, study.text)
    store.write_run_settings(RunSettings(str(root), 60.0, "cpu"))
    planner = plan_study(study)
    modes = planner.stage_units("modes")
    for unit in modes:  # the two modes: LeNet5 initialisations, committed through the store API
        store.write_unit(unit.record)
        assert isinstance(unit.params, ModeParams), unit.params
        torch.manual_seed(unit.params.seed)
        UnitWriter(store.layout, unit.record).commit(
            {"seed": unit.params.seed}, {"final": build_model("lenet5", 10, 1, 28).state_dict()}
        )
    return store, planner.stage_units("m2m")[0], modes


def bare(store: Store, unit: Unit, modes: list[Unit], root: Path, its: int) -> float:
    data = load_dataset("mnist", str(root))
    assert isinstance(data, TensorDataset)
    assert isinstance(unit.params, M2MPhaseParams), unit.params
    model = build_model("lenet5", 10, 1, 28)
    p0, dest = (store.read.tensors(mode.id, mode.kind) for mode in modes)
    model.load_state_dict(p0)
    names = select_tensors(list(model.state_dict()), ["all"])
    opt = phase_optimizer(model, names, 0.001)
    cfg = LLPFConfig(step_f=1e-3, train_rounds=5)
    variances = state_variances(p0)
    stream = BatchStream(data, 64, seed=derive_seed("m2m", tuple(unit.params.pair), 1))
    counter = [0]

    def next_batch():
        counter[0] += 1
        return stream.batch(counter[0] - 1)

    t0 = time.perf_counter()
    evaluate(model, data.train_x, data.train_y), evaluate(model, data.test_x, data.test_y)
    for _ in range(its):
        llpf_m2m_iteration(model, dest, variances, names, opt, next_batch, F.cross_entropy, cfg)
    evaluate(model, data.train_x, data.train_y), evaluate(model, data.test_x, data.test_y)
    return time.perf_counter() - t0


def through_unit(store: Store, unit: Unit, modes: list[Unit]) -> float:
    import shutil

    d = store.layout.unit_dir(unit.id, unit.kind)
    if d.exists():
        shutil.rmtree(d)
    store.write_unit(unit.record)
    kinds = {mode.id: mode.kind for mode in modes}
    task = UnitTask(unit.id, unit.kind, tuple((uid, kinds[uid]) for uid in unit.input_ids))
    t0 = time.perf_counter()
    outcome = run_unit(store, task)
    assert outcome is UnitOutcome.DONE, outcome
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    os.environ["LOWLOSS_THREADS"] = "1"
    with tempfile.TemporaryDirectory(prefix="lowloss-bench-llpf-") as tmp_dir:
        tmp = Path(tmp_dir)
        write_mnist(tmp / "mnist")
        store, unit, modes = setup_store(tmp, args.iterations, tmp / "mnist")
        bare_s, unit_s = [], []
        for _ in range(args.repeats):
            bare_s.append(bare(store, unit, modes, tmp / "mnist", args.iterations))
            unit_s.append(through_unit(store, unit, modes))
    b, u = statistics.median(bare_s), statistics.median(unit_s)
    its = args.iterations
    print(f"[m2m] LeNet5, Table 1 row (r=5, B=64), {its} iterations, 1 thread, median of {args.repeats}")
    print(f"  bare loop of llpf_m2m_iteration : {b:7.2f} s ({its / b:7.1f} it/s)")
    print(f"  m2m_phase unit (store, rows)    : {u:7.2f} s ({its / u:7.1f} it/s)")
    print(f"  ratio unit/bare                 : {u / b:7.3f}   (goal ≤ 1.05)")


if __name__ == "__main__":
    main()
