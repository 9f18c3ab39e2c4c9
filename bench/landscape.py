"""Loss-landscape benchmark (issue 12). Prints figures; asserts nothing.

    python bench/landscape.py [--points 41] [--hvps 100] [--repeats 5] [--device cpu]

Scan points per second: a 1-D curve of SmallCNN (BatchNorm) on the embedded digits, UpBN (BN statistics re-estimated
by one pass over the training set at every point, the paper's default), loss and accuracy on the full train and
test sets, through ``workers.landscape.scans.PointEvaluator`` (``scan_curve``) against a bare loop that builds θ + λε
as a state dict, loads it, re-estimates BN with ``workers.interpolation.reestimate_batchnorm`` and evaluates with
``workers.training.evaluate_batches`` at the same λ. Hessian–vector products per second:
``workers.landscape.hessian.HessianOperator.hvp`` on 1024 training examples (4 batches of 256) against a bare
``torch.autograd`` double-backward loop over the same batches. The two ways alternate, repeats times each; medians are
printed, with the ratio (goal: scan ≤ 1.05, HVP ≤ 1.1).

Through the unit kinds (``--kinds``, the default; ``--no-kinds`` skips it; ``--only-kinds`` runs only this): the
same curve as a ``scan`` unit run by the real runtime against a real store (inputs read and digest-checked, one
committed segment per point, the result) against the bare loop over the same points; and a ``hessian`` unit (eigsh
k = 3 LA, 10 Hutchinson samples, 10 SLQ steps on 256 examples; it reports how many products it computed) against the
bare double-backward loop doing that many products on the same batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lowloss.workers.data import BatchStream, TensorDataset, derive_seed, load_dataset
from lowloss.workers.interpolation import reestimate_batchnorm
from lowloss.workers.landscape.directions import gaussian_direction, parameter_names
from lowloss.workers.landscape.hessian import HessianOperator, hessian_batches
from lowloss.workers.landscape.scans import PointEvaluator, curve_lambdas, scan_curve
from lowloss.workers.models import build_model
from lowloss.workers.training import evaluate_batches, make_optimizer, train_step


def digits(device: torch.device) -> TensorDataset:
    data = load_dataset("digits")
    assert isinstance(data, TensorDataset)
    return data.to(device)


def trained_cnn(data, device):
    torch.manual_seed(0)
    model = build_model("small_cnn", data.num_classes, data.in_channels, data.image_size).to(device)
    opt = make_optimizer(model.parameters(), "sgd", 0.05, momentum=0.9)
    stream = BatchStream(data, 64, seed=0)
    for step in range(2 * stream.steps_per_epoch):
        train_step(model, opt, *stream.batch(step))
    model.eval()
    return model


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scan_bare(model, theta, direction, data, lambdas, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for lam in lambdas:
        state = {n: (t + lam * direction[n] if n in direction else t) for n, t in theta.items()}
        model.load_state_dict(state)
        reestimate_batchnorm(model, data.eval_batches("train", 256))
        evaluate_batches(model, data.eval_batches("train"))
        evaluate_batches(model, data.eval_batches("test"))
    sync(device)
    return time.perf_counter() - t0


def scan_evaluator(model, theta, direction, data, lambdas, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    scan_curve(PointEvaluator(model, theta, [direction], data, "UpBN"), lambdas)
    sync(device)
    return time.perf_counter() - t0


def hvp_bare(model, batches, vectors, device) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(int(y.shape[0]) for _, y in batches)
    model.eval()
    sync(device)
    t0 = time.perf_counter()
    for v in vectors:
        parts = list(torch.split(v, [p.numel() for p in params]))
        out = None
        for x, y in batches:
            loss = F.cross_entropy(model(x), y, reduction="sum") / total
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * u.view_as(g)).sum() for g, u in zip(grads, parts))
            assert isinstance(dot, torch.Tensor)
            hv = torch.cat([h.reshape(-1) for h in torch.autograd.grad(dot, params)])
            out = hv if out is None else out + hv
    sync(device)
    return time.perf_counter() - t0


def hvp_operator(model, batches, vectors, device) -> float:
    op = HessianOperator(model, batches)
    sync(device)
    t0 = time.perf_counter()
    for v in vectors:
        op.hvp(v)
    sync(device)
    return time.perf_counter() - t0


KIND_SPEC = """
[study]
name = "bench-landscape"
seeds = [0]
[data]
dataset = "digits"
[model]
name = "small_cnn"
[run]
checkpoint_seconds = 60
[[stages]]
name = "modes"
kind = "train"
[[stages]]
name = "land"
kind = "landscape"
from = "modes"
directions = [{{ kind = "gaussian", seed = 0 }}]
scales = [1.0]
points = {points}
hessian = {{ k = 3, which = ["LA"], examples = 256, trace_samples = 10, slq_runs = 1, slq_steps = 10 }}
"""


def bench_kinds(points: int, repeats: int, device) -> None:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from lowloss.orchestrator.engine.graph import Unit, plan_study
    from lowloss.orchestrator.runtime import UnitOutcome, UnitTask
    from lowloss.orchestrator.runtime.attempt import run_unit
    from lowloss.orchestrator.spec import parse_spec
    from lowloss.orchestrator.store import RunSettings, Store, UnitWriter

    os.environ["LOWLOSS_THREADS"] = "1"
    data = digits(device)
    study = parse_spec(KIND_SPEC.format(points=points))
    planner = plan_study(study)
    (mode,) = planner.stage_units("modes")
    units = {u.kind: u for u in planner.stage_units("land") if u.kind != "scan" or "shard" not in u.label}
    with tempfile.TemporaryDirectory(prefix="lowloss-bench-landscape-") as tmp:
        store = Store(Path(tmp) / "store")
        store.init_study(study.name, study.text)
        store.write_run_settings(RunSettings(None, 60.0, device.type))
        store.write_unit(mode.record)
        torch.manual_seed(derive_seed("init", 0))
        model = trained_cnn(data, device)
        UnitWriter(store.layout, mode.record).commit(
            {"seed": 0}, {"final": {k: v.cpu() for k, v in model.state_dict().items()}}
        )

        def task(unit: Unit) -> UnitTask:
            return UnitTask(unit.id, unit.kind, tuple((uid, planner.units[uid].kind) for uid in unit.input_ids))

        store.write_unit(units["direction"].record)
        assert run_unit(store, task(units["direction"])) is UnitOutcome.DONE
        theta = {k: v.to(device) for k, v in store.read.tensors(mode.id, mode.kind).items()}
        direction = {
            k: v.to(device)
            for k, v in store.read.tensors(units["direction"].id, units["direction"].kind, "directions").items()
        }
        lambdas = curve_lambdas(1.0, points)

        def through(unit: Unit) -> float:
            d = store.layout.unit_dir(unit.id, unit.kind)
            if d.exists():
                shutil.rmtree(d)
            store.write_unit(unit.record)
            t0 = time.perf_counter()
            assert run_unit(store, task(unit)) is UnitOutcome.DONE
            return time.perf_counter() - t0

        batches = hessian_batches(data, examples=256, seed=0)
        through(units["hessian"])  # warm-up, and the product count
        hessian = store.read.result(units["hessian"].id, units["hessian"].kind)
        assert hessian is not None
        products = hessian["hvp_products"]
        g = torch.Generator().manual_seed(1)
        dim = sum(p.numel() for p in model.parameters())
        vectors = [torch.randn(dim, generator=g).to(device) for _ in range(products)]
        scan_bare_s, scan_unit_s, hvp_bare_s, hvp_unit_s = [], [], [], []
        for _ in range(repeats):
            scan_bare_s.append(scan_bare(model, theta, direction, data, lambdas, device))
            scan_unit_s.append(through(units["scan"]))
            hvp_bare_s.append(hvp_bare(model, batches, vectors, device))
            hvp_unit_s.append(through(units["hessian"]))
    sb, su, hb, hu = map(statistics.median, (scan_bare_s, scan_unit_s, hvp_bare_s, hvp_unit_s))
    print(f"[kinds] through the runtime and store, median of {repeats}")
    print(f"  scan unit, {points}-point curve         : {su:7.3f} s ({points / su:7.2f} points/s)")
    print(f"  bare loop, same points               : {sb:7.3f} s ({points / sb:7.2f} points/s)")
    print(f"  ratio unit/bare                      : {su / sb:7.3f}   (goal ≤ 1.05)")
    print(f"  hessian unit ({products} products: eigsh, trace, SLQ): {hu:7.3f} s ({products / hu:7.1f} HVP/s)")
    print(f"  bare double backward, {products} products : {hb:7.3f} s ({products / hb:7.1f} HVP/s)")
    print(f"  ratio unit/bare                      : {hu / hb:7.3f}   (goal ≤ 1.1)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=41)
    p.add_argument("--hvps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--kinds", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--only-kinds", action="store_true", help="skip the evaluator/operator comparison")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.only_kinds:
        bench_kinds(args.points, args.repeats, device)
        return
    data = digits(device)
    model = trained_cnn(data, device)
    theta = {n: t.detach().clone() for n, t in model.state_dict().items()}
    direction = gaussian_direction(theta, parameter_names(model), seed=0)
    lambdas = curve_lambdas(1.0, args.points)
    batches = hessian_batches(data, examples=1024, seed=0, batch_size=256)
    g = torch.Generator().manual_seed(0)
    dim = sum(p.numel() for p in model.parameters())
    vectors = [torch.randn(dim, generator=g).to(device) for _ in range(args.hvps)]
    scan_evaluator(model, theta, direction, data, lambdas[:3], device)  # warm-up
    hvp_operator(model, batches, vectors[:3], device)
    scan_bare_s, scan_evaluator_s, hvp_bare_s, hvp_operator_s = [], [], [], []
    for _ in range(args.repeats):
        scan_bare_s.append(scan_bare(model, theta, direction, data, lambdas, device))
        scan_evaluator_s.append(scan_evaluator(model, theta, direction, data, lambdas, device))
        hvp_bare_s.append(hvp_bare(model, batches, vectors, device))
        hvp_operator_s.append(hvp_operator(model, batches, vectors, device))
    sb, se, hb, ho = map(statistics.median, (scan_bare_s, scan_evaluator_s, hvp_bare_s, hvp_operator_s))
    n, k = len(lambdas), len(vectors)
    print(
        f"[scan] SmallCNN on digits ({dim} parameters), UpBN, full train ({data.n_train}) + test sets, {n} points, "
        f"{args.threads} thread(s), {device}, median of {args.repeats}"
    )
    print(f"  bare loop (state dict + reestimate + evaluate) : {sb:7.3f} s ({n / sb:7.2f} points/s)")
    print(f"  PointEvaluator / scan_curve                    : {se:7.3f} s ({n / se:7.2f} points/s)")
    print(f"  ratio evaluator/bare                           : {se / sb:7.3f}   (goal ≤ 1.05)")
    print(f"[hvp] same model, 1024 examples in 4 batches, {k} products")
    print(f"  bare torch.autograd double backward            : {hb:7.3f} s ({k / hb:7.1f} HVP/s)")
    print(f"  HessianOperator.hvp                            : {ho:7.3f} s ({k / ho:7.1f} HVP/s)")
    print(f"  ratio operator/bare                            : {ho / hb:7.3f}   (goal ≤ 1.1)")
    if args.kinds:
        bench_kinds(args.points, args.repeats, device)


if __name__ == "__main__":
    main()
