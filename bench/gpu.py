"""GPU path benchmark (issue 13, item 7). Prints figures; asserts nothing. Runs on a CPU too (small sizes).

    python bench/gpu.py [--device auto|cpu|cuda] [--iterations 30] [--recipes lenet5,resnet18] [--n-train N]
                        [--rounds R] [--precision fp32|tf32|bf16]

For the LeNet5@MNIST and ResNet18@CIFAR10 M2M recipes (`llpf-lenet5-mnist`, `llpf-resnet18-cifar10`): writes
MNIST / CIFAR10 in their real on-disk formats (IDX files, CIFAR python batches; random pixels — speed does not depend
on them), commits two modes (model initialisations, through the store API), and runs the recipe's first M2M phase
for a fixed number of iterations as a real `m2m_phase` unit (runtime, store, rows, checkpoints) on the device.
Prints iterations/s (from the middle segment: no start-up, no evaluation), Train^r steps/s, one full-set evaluation,
the peak GPU memory (CUDA) or resident memory (CPU), and the projection to the paper's full M2M path: every phase's
iterations at the measured speed, plus the recipe's evaluations (every `eval_every` iterations, on the full 60 000 /
50 000 + 10 000 images), next to LLPF Table 5 (Algorithm 1: LeNet5@MNIST 2 h on an RTX 3090, ResNet18@CIFAR10 24 h on
an H100).

ResNet18's phases train "until the rolling loss < 0.04 or r > 200": from random modes that is always 200 steps, so
the projection assumes `--assume-rounds` steps per iteration (default 10, the rolling window's minimum; a path near
trained modes needs few). `--rounds R` runs exactly R steps per iteration instead (the CPU default for ResNet18: 1).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import struct
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from lowloss.jobs import ModeParams, recipes
from lowloss.orchestrator.engine.graph import plan_study
from lowloss.orchestrator.runtime import UnitOutcome, UnitTask
from lowloss.orchestrator.runtime.attempt import run_unit
from lowloss.orchestrator.spec import parse_spec
from lowloss.orchestrator.store import RunSettings, Store, UnitWriter
from lowloss.workers.data import load_dataset
from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate_batches

RECIPES = {  # short name: (recipe, dataset, full train size, full test size, paper's Table 5 Alg. 1 time, GPU)
    "lenet5": ("llpf-lenet5-mnist", "mnist", 60000, 10000, 2.0, "RTX 3090"),
    "resnet18": ("llpf-resnet18-cifar10", "cifar10", 50000, 10000, 24.0, "H100"),
}


def write_mnist(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def write_cifar10(root: Path, n_train: int, n_test: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    sizes = [n_train // 5] * 5 + [n_test]
    for name, n in zip([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], sizes):
        batch = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh, protocol=2)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def bench_spec(recipe: str, iterations: int, rounds: int | None, precision: str | None) -> tuple[str, dict]:
    """Two seeds, the recipe's data/model/train, and its m2m stage with only phase 1, cut to ``iterations``."""
    doc = tomllib.loads(recipes()[recipe].read_text())
    m2m = next(s for s in doc["stages"] if s["kind"] == "m2m")
    phase = dict(m2m["phases"][0])
    phase["iterations"] = iterations
    if rounds is not None:
        for key in ("threshold", "max_rounds", "min_rounds"):
            phase.pop(key, None)
        phase["rounds"] = rounds
    stage = {k: v for k, v in m2m.items() if k != "phases"}
    stage.update(pairs="consecutive", eval_every=iterations, point_stride=0, segment_iterations=max(iterations // 3, 1))
    train = dict(doc.get("train", {}))
    if precision:
        stage["precision"] = precision
    lines = ["[study]", 'name = "bench-gpu"', "seeds = [0, 1]"]
    for section, table in (("data", doc["data"]), ("model", doc["model"]), ("train", train)):
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if k != "root"]
    lines += ["[run]", "checkpoint_seconds = 60", "[[stages]]", 'name = "modes"', 'kind = "train"', "[[stages]]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in stage.items()]
    lines.append("[[stages.phases]]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in phase.items()]
    return "\n".join(lines) + "\n", m2m


def run_recipe(name: str, args, tmp: Path) -> None:
    recipe, dataset, full_train, full_test, paper_h, paper_gpu = RECIPES[name]
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    n_train = args.n_train or (full_train if device == "cuda" else 2000)
    n_test = max(n_train // 5, 100) if n_train < full_train else full_test
    root = tmp / name / "data"
    (write_mnist if dataset == "mnist" else write_cifar10)(root, n_train, n_test)
    rounds = args.rounds if args.rounds is not None else (1 if name == "resnet18" and device == "cpu" else None)
    text, m2m = bench_spec(recipe, args.iterations, rounds, args.precision)
    study = parse_spec(text)
    store = Store(tmp / name / "store")
    store.init_study(study.name, study.text)
    store.write_run_settings(RunSettings(str(root), 60.0, device))
    planner = plan_study(study)
    data = load_dataset(dataset, str(root))
    model_name = study.context.model.name
    for mode in planner.stage_units("modes"):
        store.write_unit(mode.record)
        assert isinstance(mode.params, ModeParams), mode.params
        seed = mode.params.seed
        torch.manual_seed(seed)
        model = build_model(model_name, data.num_classes, data.in_channels, data.image_size)
        UnitWriter(store.layout, mode.record).commit({"seed": seed}, {"final": model.state_dict()})
    (unit,) = planner.stage_units("m2m")
    store.write_unit(unit.record)
    task = UnitTask(unit.id, unit.kind, tuple((uid, planner.units[uid].kind) for uid in unit.input_ids))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    outcome = run_unit(store, task)
    wall = time.perf_counter() - t0
    if outcome is not UnitOutcome.DONE:
        log = sorted(store.layout.unit_dir(unit.id, unit.kind).glob("attempts/*.log"))
        raise SystemExit(
            f"{name}: the m2m_phase unit ended {outcome.value}\n" + (log[-1].read_text()[-3000:] if log else "")
        )
    markers = store.read.segments(unit.id, unit.kind)
    middle = markers[len(markers) // 2]  # neither the start-up evaluation nor the final one
    its_in_middle = max(args.iterations // 3, 1)  # segment_iterations of the bench spec
    it_s = its_in_middle / middle.seconds
    table = store.read.rows(unit.id, unit.kind, "path")
    assert table is not None, "the m2m_phase unit committed no path rows"
    rows = table.to_pylist()
    steps = [r["train_steps"] for r in rows if r.get("train_steps")]
    steps_per_it = sum(steps) / max(len(steps), 1)
    # one full-set evaluation (train + test), scaled to the real dataset sizes
    dev = torch.device(device)
    on_dev = data.to(dev)
    model = build_model(model_name, data.num_classes, data.in_channels, data.image_size).to(dev)
    t = time.perf_counter()
    evaluate_batches(model, on_dev.eval_batches("train")), evaluate_batches(model, on_dev.eval_batches("test"))
    if device == "cuda":
        torch.cuda.synchronize()
    eval_s = (time.perf_counter() - t) * (full_train + full_test) / (n_train + n_test)
    total_its = sum(int(p["iterations"]) for p in m2m["phases"])
    # a phase of r fixed steps runs r; one "until the rolling loss < threshold" is assumed to need --assume-rounds
    assumed = float(m2m["phases"][0].get("rounds", args.assume_rounds))
    path_s = total_its / it_s * (assumed / steps_per_it) + (total_its // int(m2m.get("eval_every", 100))) * eval_s
    if device == "cuda":
        memory = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB ({torch.cuda.get_device_name()})"
    else:
        memory = f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (CPU)"
    print(
        f"[{name}] {recipe}, phase 1 for {args.iterations} iterations, batch {m2m['batch_size']}, device {device}, "
        f"{n_train} training images, precision {args.precision or 'fp32'}, unit wall {wall:.1f} s"
    )
    print(
        f"  {it_s:8.3g} iterations/s ({steps_per_it:.1f} Train^r steps per iteration, "
        f"{it_s * steps_per_it:.3g} steps/s); {memory}"
    )
    print(f"  full-set evaluation (train + test, {full_train + full_test} images): {eval_s:.1f} s")
    print(
        f"  projection, one M2M path ({len(m2m['phases'])} phase(s), {total_its} iterations at {assumed:g} "
        f"steps each, {total_its // int(m2m.get('eval_every', 100))} evaluations): {path_s / 3600:.2f} h on this "
        f"device; LLPF Table 5: {paper_h:g} h on an {paper_gpu}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--recipes", default="lenet5,resnet18")
    p.add_argument("--n-train", type=int, default=None, help="training images written (default: full on CUDA)")
    p.add_argument("--rounds", type=int, default=None, help="exactly R Train^r steps per iteration")
    p.add_argument("--assume-rounds", type=float, default=10.0, help="steps per iteration the projection assumes")
    p.add_argument("--precision", default=None, choices=["fp32", "tf32", "bf16"])
    args = p.parse_args()
    os.environ.setdefault("LOWLOSS_THREADS", "1")
    torch.set_num_threads(int(os.environ["LOWLOSS_THREADS"]))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; torch {torch.__version__}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="lowloss-bench-gpu-") as tmp:
        for name in args.recipes.split(","):
            run_recipe(name.strip(), args, Path(tmp))


if __name__ == "__main__":
    main()
