"""Stage kind ``landscape``; unit kinds ``direction``, ``scan``, ``hessian``, ``mining``, ``centre``, ``angles``: loss
landscapes at modes and at other points (Xu et al.).

- ``direction``: one perturbation direction ε at a centre (input ``centre``: a mode, or a stored point via
  ``Ref(uid, "point:<step>")``), committed as the tensor set ``directions``: a seeded Gaussian (normalised ``norm``,
  ``laynorm``, ``filnorm`` or ``none``, with a 1-D tensor policy), the negative gradient (normalised the same way), or
  the direction to another mode (input ``target``, never normalised: λ = 1 reaches it). Inputs ``other.<n>``: earlier
  directions of the same centre, whose angles to this one the result records.
- ``scan``: a 1-D curve θ + λε (one segment per λ, so a killed unit resumes at the next point) or one shard of a 2-D
  grid θ + λ₁ε₁ + λ₂ε₂ (one segment per grid point), every point through ``workers.landscape.PointEvaluator``.
- ``hessian``: extreme eigenpairs (eigsh over Hessian–vector products), Hutchinson's trace and the SLQ density at a
  centre; the eigenvectors are committed as ``directions`` under keys ``<which><rank>.<tensor>`` (``LA0.fc.weight``).

- ``mining``: a direction mined at a centre by Algo. 1 (w-peak) or Algo. 2 (vvv-basin), one segment per epoch,
  committed as ``directions``; with input ``eigen`` it records |cos| against the Hessian's eigenvectors (Fig. 9).
- ``centre``: a centre that is not a mode, materialised as a model (``final``): a stored path point, an AutoNEB
  saddle or pivot, a point of the straight line between two modes, or a training checkpoint.
- ``angles``: the angles between pairs of Gaussian directions at a centre (Fig. 5).

The stage plans, per centre (the modes of ``from`` with the chosen seeds, then the ``centres`` entries as centre
units), the direction and mining units (after the Hessian unit when they read its eigenvectors), then in the same plan
(naming the drafts) the curves per (direction, scale) and the surface shards, and the Hessian unit.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..base import (
    Figure,
    Metric,
    Plan,
    Ref,
    Resources,
    StageKind,
    StageParams,
    StrictScalars,
    UnitDraft,
    UnitKind,
    UnitParams,
    Verdict,
)
from ..common.modes import seeds_of
from ..common.params import ModeParams, build_for, load_data, point_chunks

DIRECTION_KINDS = ("gaussian", "to_mode", "gradient")
NORMALISATIONS = ("norm", "laynorm", "filnorm", "none")
ONE_D_POLICIES = ("normalise", "zero", "keep")
CURVE_CLASSES = ("v-basin", "v-side", "w-basin", "w-peak", "other")
W_BASIN_RANGE = (-1.0, 2.0)  # Xu et al. §2.4: the curve towards another mode


def w_basin_points(points: int) -> int:
    """Points of a curve on [−1, 2] that has λ = 0 (this mode) and λ = 1 (the other mode) on its grid: the smallest
    count ≥ ``points`` with (count − 1) divisible by 3 (41 → 43)."""
    return 3 * math.ceil((points - 1) / 3) + 1


class _Settings(StrictScalars):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _canonical_without_none(params: UnitParams) -> dict:
    return params.model_dump(mode="json", by_alias=True, exclude_none=True)


def _model_and_data(ctx, role: str):
    """The model (built on the unit's device) and dataset of the unit behind input ``role`` (a mode or a path)."""
    p = ctx.input_params(role)
    if not (hasattr(p, "model") and hasattr(p, "data")):
        raise ValueError(
            f"input {role}: a {type(p).__name__} names no model and data; a centre must be a mode or a "
            f"point of a unit that trains a model"
        )
    data = load_data(ctx, p.data)
    return build_for(p.model, data, ctx.device), data


def _state(ctx, role: str) -> dict:
    return {k: v.to(ctx.device) for k, v in ctx.input_final_state(role).items()}


def _on_cpu(tensors: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _direction_input(ctx, role: str, prefix: str | None = None) -> dict:
    """The direction behind input ``role`` on the unit's device; ``prefix`` picks one direction of a tensor set that
    holds several (a Hessian unit's ``directions``: ``LA0`` is the eigenvector of the largest eigenvalue)."""
    tensors = ctx.input_tensors(role)
    if prefix is not None:
        picked = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        if not picked:
            heads = sorted({k.split(".", 1)[0] for k in tensors})
            raise ValueError(f"select: no direction {prefix!r} in input {role} (it holds {', '.join(heads)})")
        tensors = picked
    return {k: v.to(ctx.device) for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------- direction


class DirectionParams(UnitParams):
    direction: Literal["gaussian", "to_mode", "gradient"]
    seed: int | None = Field(default=None, description="gaussian: the seed of the draw")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = "norm"
    one_d: Literal["normalise", "zero", "keep"] = "normalise"
    examples: int | None = Field(default=None, ge=1, description="gradient: the seeded subset of training examples")
    others: int = Field(default=0, ge=0, description="inputs other.0 … other.<n-1>: directions to measure angles to")

    def canonical(self) -> dict:
        return _canonical_without_none(self)


class DirectionUnit(UnitKind):
    name = "direction"
    version = 1
    Params = DirectionParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
    outputs = ("directions",)
    metrics = (Metric("norm", "‖ε‖", ".4g"),)

    def run(self, ctx, p: DirectionParams) -> None:
        from ...workers.landscape.directions import (
            angle_degrees,
            direction_between,
            direction_norm,
            gaussian_direction,
            negative_gradient_direction,
            normalise_direction,
            parameter_names,
        )
        from ...workers.landscape.scans import split_batches

        model, data = _model_and_data(ctx, "centre")
        centre = _state(ctx, "centre")
        names = parameter_names(model)
        if p.direction == "gaussian":
            if p.seed is None:
                raise ValueError("seed: none given; a gaussian direction needs the seed of its draw")
            eps = gaussian_direction(centre, names, p.seed, p.normalisation, p.one_d)
        elif p.direction == "gradient":
            batches = split_batches(data, "train", 1024, p.examples, 0)
            eps = normalise_direction(
                negative_gradient_direction(model, centre, batches, names), centre, p.normalisation, p.one_d
            )
        else:
            eps = direction_between(centre, _state(ctx, "target"), names)
        eps = _on_cpu(eps)
        angles = {}
        for n in range(p.others):
            angles[f"other.{n}"] = angle_degrees(eps, ctx.input_tensors(f"other.{n}"))
        ctx.commit(
            {"direction": p.direction, "norm": direction_norm(eps), "tensors": len(eps), "angles_deg": angles},
            outputs={"directions": eps},
        )


# ---------------------------------------------------------------------------------------------- scan


class GridParams(_Settings):
    x_min: float = -1.0
    x_max: float = 1.0
    x_points: int = Field(default=51, ge=2, le=10001)
    y_min: float = -1.0
    y_max: float = 1.0
    y_points: int = Field(default=51, ge=2, le=10001)


class ScanParams(UnitParams):
    """A curve (``lambda_min``, ``lambda_max``, ``points``; input ``direction``) or a surface shard (``grid`` and
    ``shard`` = [x_start, x_stop, y_start, y_stop] of grid indices; inputs ``x`` and ``y``); input ``centre``."""

    shape: Literal["curve", "surface"]
    lambda_min: float | None = None
    lambda_max: float | None = None
    points: int | None = Field(default=None, ge=2, le=10001)
    grid: GridParams | None = None
    shard: tuple[int, int, int, int] | None = None
    bn: Literal["UpBN", "NoUpBN"] = "UpBN"
    eval_examples: int | None = Field(default=None, ge=1)
    eval_seed: int = 0
    select: dict[str, str] | None = Field(
        default=None,
        description="input role -> the direction to take from a tensor set holding several (a Hessian unit's "
        "eigenvectors: LA0, SA1, ...); unset: the input is one direction",
    )
    vectorize: int | None = Field(default=None, ge=2, description="K points per batched evaluation and segment")

    def canonical(self) -> dict:
        return _canonical_without_none(self)


def _draw_curves(ax, data) -> None:
    """Xu et al. Fig. 2: train loss against λ, one line per curve, and the random-prediction loss log(C)."""
    log_c = None
    for label, table in data.items():
        ax.plot(table.column("lambda").to_numpy(), table.column("train_loss").to_numpy(), lw=1, label=label)
        log_c = float(table.column("random_loss")[0].as_py())
    if log_c is not None:
        ax.axhline(log_c, color="black", ls="--", lw=0.8, label="log(C)")
    ax.legend(fontsize=6, ncol=2)


def _draw_contour(ax, data) -> None:
    """Xu et al. §2.6 / Li et al.: contour of the train loss on the surface assembled from the shards of the first
    centre (labels ``seed=<s> shard=…``)."""
    import numpy as np

    first = sorted({label.split(" ")[0] for label in data})[0]
    rows = [r for label, t in data.items() if label.split(" ")[0] == first for r in t.to_pylist()]
    xs = sorted({r["lambda1"] for r in rows})
    ys = sorted({r["lambda2"] for r in rows})
    z = np.full((len(xs), len(ys)), np.nan)
    for r in rows:
        z[xs.index(r["lambda1"]), ys.index(r["lambda2"])] = r["train_loss"]
    cs = ax.contour(np.array(xs), np.array(ys), z.T, levels=20, cmap="viridis")
    ax.clabel(cs, fontsize=6)
    ax.set_title(f"centre {first}", fontsize=8)


def _draw_surface3d(ax, data) -> None:
    """Xu et al. Fig. 2 / Li et al.: the train-loss surface of the first centre as a 3-D plot (the shards assembled),
    with the random-prediction loss log(C) as a plane."""
    import numpy as np

    first = sorted({label.split(" ")[0] for label in data})[0]
    rows = [r for label, t in data.items() if label.split(" ")[0] == first for r in t.to_pylist()]
    xs = sorted({r["lambda1"] for r in rows})
    ys = sorted({r["lambda2"] for r in rows})
    z = np.full((len(xs), len(ys)), np.nan)
    for r in rows:
        z[xs.index(r["lambda1"]), ys.index(r["lambda2"])] = r["train_loss"]
    fig = ax.figure
    ax.set_axis_off()
    ax3 = fig.add_subplot(1, 1, 1, projection="3d")
    gx, gy = np.meshgrid(np.array(xs), np.array(ys), indexing="ij")
    ax3.plot_surface(gx, gy, z, cmap="viridis", linewidth=0, antialiased=True)
    log_c = float(rows[0]["random_loss"])
    ax3.plot_surface(gx, gy, np.full_like(z, log_c), color="grey", alpha=0.25)
    ax3.set_xlabel("λ₁")
    ax3.set_ylabel("λ₂")
    ax3.set_zlabel("train loss")
    ax3.set_title(f"centre {first}; grey plane: log(C)", fontsize=8)


def _draw_spectrum(ax, data) -> None:
    """Xu et al. App. B.1: the extreme Hessian eigenvalues by rank (LA positive, SA negative), one marker set per
    centre."""
    for label, table in data.items():
        rows = table.to_pylist()
        for which, marker in (("LA", "o"), ("SA", "v")):
            pts = [(r["rank"], r["eigenvalue"]) for r in rows if r["which"] == which]
            if pts:
                ax.plot([a for a, _ in pts], [b for _, b in pts], marker=marker, ls="", label=f"{label} {which}")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.legend(fontsize=6)


def _draw_density(ax, data) -> None:
    """Xu et al. Fig. 13 (PyHessian's SLQ): the Hessian eigenvalue density, log scale, one line per centre."""
    for label, table in data.items():
        ax.semilogy(
            table.column("eigenvalue").to_numpy(), table.column("density").to_numpy() + 1e-12, lw=1, label=label
        )
    ax.legend(fontsize=6)


def _draw_angles(ax, data) -> None:
    """Xu et al. Fig. 5: the histogram of the angles between pairs of Gaussian directions (one per centre), with the
    90° line."""
    import numpy as np

    for label, table in data.items():
        angles = table.column("angle_deg").to_numpy()
        lo, hi = min(89.0, float(angles.min())), max(91.0, float(angles.max()))
        ax.hist(angles, bins=np.linspace(lo, hi, 41), alpha=0.6, label=f"{label} ({len(angles)} pairs)")
    ax.axvline(90.0, color="black", ls="--", lw=0.8)
    ax.legend(fontsize=6)


def _draw_cosines(ax, data) -> None:
    """Xu et al. Fig. 9: |cos| between a mined direction and the Hessian's eigenvectors, P.E.1… (largest positive
    eigenvalues) then N.E.1… (most negative), one bar group per mined direction."""
    import numpy as np

    ticks: list[str] = []
    for table in data.values():
        for r in table.to_pylist():
            tick = f"{'P' if r['which'] == 'LA' else 'N'}.E.{r['rank'] + 1}"
            if tick not in ticks:
                ticks.append(tick)
    width = 0.8 / max(1, len(data))
    for n, (label, table) in enumerate(data.items()):
        rows = {f"{'P' if r['which'] == 'LA' else 'N'}.E.{r['rank'] + 1}": r["abs_cos"] for r in table.to_pylist()}
        xs = np.arange(len(ticks)) + n * width
        ax.bar(xs, [rows.get(t, np.nan) for t in ticks], width, label=label)
    ax.set_xticks(np.arange(len(ticks)) + 0.4 - width / 2, ticks, rotation=90, fontsize=6)
    ax.legend(fontsize=6)


def _point_evaluation(evaluator, model, data, p: "ScanParams", n: int):
    """A function from a chunk's coefficient lists to their values: the point evaluator one point at a time, or (with
    ``vectorize``) the stacked evaluator on the chunk's states (the same protocol, batched kernels)."""
    if p.vectorize is None or p.vectorize < 2:
        return lambda coefficients: [evaluator.evaluate(c) for c in coefficients]
    from ...workers.vectorize import StackedEvaluator

    k = min(p.vectorize, n)  # no slot beyond the scan's n points
    stacked = StackedEvaluator(model, data, k, p.bn, eval_examples=p.eval_examples, eval_seed=p.eval_seed)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")

    def evaluate(coefficients):
        values = stacked.evaluate([evaluator.point_state(c) for c in coefficients])
        return [{key: v[key] for key in keys} for v in values]

    return evaluate


class ScanUnit(UnitKind):
    name = "scan"
    version = 1
    Params = ScanParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=60, resource_class="eval")
    metrics = (
        Metric("stationary_points", "stationary points (train loss)", ".2f"),
        Metric("centre_train_loss", "train loss at θ", ".4f"),
        Metric("max_train_loss", "max train loss", ".4g"),
    )
    verdicts = tuple(Verdict(f"is_{c.replace('-', '_')}", f"curve class {c}") for c in CURVE_CLASSES)
    tables = ("curve", "surface")
    figures = (
        Figure(
            "curves",
            "1-D loss curves θ + λε",
            table="curve",
            x="lambda",
            style="custom",
            draw=_draw_curves,
            xlabel="λ",
            ylabel="train loss",
        ),
        Figure(
            "contour",
            "2-D loss surface θ + λ₁ε₁ + λ₂ε₂",
            table="surface",
            style="custom",
            draw=_draw_contour,
            xlabel="λ₁",
            ylabel="λ₂",
        ),
        Figure(
            "surface",
            "2-D loss surface θ + λ₁ε₁ + λ₂ε₂ (3-D view)",
            table="surface",
            style="custom",
            draw=_draw_surface3d,
        ),
        Figure(
            "spectrum",
            "Hessian eigenvalue spectrum",
            table="spectrum",
            style="custom",
            draw=_draw_spectrum,
            xlabel="rank (0 = largest |λ|)",
            ylabel="eigenvalue",
        ),
        Figure(
            "density",
            "Hessian eigenvalue density (SLQ)",
            table="density",
            style="custom",
            draw=_draw_density,
            xlabel="eigenvalue",
            ylabel="density (log)",
        ),
        Figure(
            "angles",
            "Angles between Gaussian directions",
            table="angles",
            style="custom",
            draw=_draw_angles,
            xlabel="angle (degrees)",
            ylabel="pairs",
        ),
        Figure(
            "cosines",
            "|cos| of mined directions against Hessian eigenvectors",
            table="cosines",
            style="custom",
            draw=_draw_cosines,
            xlabel="eigenvector (P.E.: positive, N.E.: negative eigenvalues)",
            ylabel="|cos|",
        ),
    )

    def resources(self, params: ScanParams) -> Resources:
        return self.default_resources

    def run(self, ctx, p: ScanParams) -> None:
        from ...workers.landscape.scans import (
            Grid,
            PointEvaluator,
            Shard,
            classify_curve,
            count_stationary_points,
            line_lambdas,
            shard_points,
        )

        model, data = _model_and_data(ctx, "centre")
        centre = _state(ctx, "centre")
        roles = ("direction",) if p.shape == "curve" else ("x", "y")
        directions = [_direction_input(ctx, r, (p.select or {}).get(r)) for r in roles]
        evaluator = PointEvaluator(model, centre, directions, data, p.bn, p.eval_examples, p.eval_seed)
        random_loss = math.log(data.num_classes)
        if p.shape == "curve":
            if p.lambda_min is None or p.lambda_max is None or p.points is None:
                raise ValueError("curve: lambda_min, lambda_max and points are needed")
            chunks = point_chunks(p.points, p.vectorize)
            evaluate = _point_evaluation(evaluator, model, data, p, p.points)
            lambdas = line_lambdas(p.lambda_min, p.lambda_max, p.points)
            # one segment per chunk of points (one point, or K with vectorize): a resume continues at the next one
            for c, chunk in enumerate(chunks[ctx.committed_segments() :], start=ctx.committed_segments()):
                rows = [
                    {"index": i, "lambda": lambdas[i], **values, "random_loss": random_loss}
                    for i, values in zip(chunk, evaluate([[lambdas[i]] for i in chunk]))
                ]
                ctx.write_segment(c, {"curve": rows})
                ctx.progress(chunk[-1] + 1, len(lambdas), train_loss=rows[-1]["train_loss"])
            rows = ctx.rows("curve").to_pylist()
            train = [r["train_loss"] for r in rows]
            shape = classify_curve(train, lambdas)
            centre_row = rows[min(range(len(lambdas)), key=lambda i: (abs(lambdas[i]), i))]
            ctx.commit(
                {
                    "shape": "curve",
                    "class": shape,
                    "stationary_points": count_stationary_points(train),
                    "test_class": classify_curve([r["test_loss"] for r in rows], lambdas),
                    "test_stationary_points": count_stationary_points([r["test_loss"] for r in rows]),
                    "centre_train_loss": centre_row["train_loss"],
                    "max_train_loss": max(train),
                    "min_train_loss": min(train),
                    **{f"is_{c.replace('-', '_')}": shape == c for c in CURVE_CLASSES},
                }
            )
            return
        if p.grid is None or p.shard is None:
            raise ValueError("surface: grid and shard are needed")
        grid = Grid(**p.grid.model_dump())
        points = shard_points(grid, Shard(*p.shard))
        chunks = point_chunks(len(points), p.vectorize)
        evaluate = _point_evaluation(evaluator, model, data, p, len(points))
        for c, chunk in enumerate(chunks[ctx.committed_segments() :], start=ctx.committed_segments()):
            rows = [
                {"i": i, "j": j, "lambda1": x, "lambda2": y, **values, "random_loss": random_loss}
                for (i, j, x, y), values in zip(
                    (points[k] for k in chunk), evaluate([list(points[k][2:]) for k in chunk])
                )
            ]
            ctx.write_segment(c, {"surface": rows})
            ctx.progress(chunk[-1] + 1, len(points), train_loss=rows[-1]["train_loss"])
        rows = ctx.rows("surface").to_pylist()
        ctx.commit(
            {
                "shape": "surface",
                "points": len(rows),
                "max_train_loss": max(r["train_loss"] for r in rows),
                "min_train_loss": min(r["train_loss"] for r in rows),
            }
        )


# ---------------------------------------------------------------------------------------------- hessian


class HessianSettings(_Settings):
    k: int = Field(default=5, ge=1, le=10, description="eigenpairs per end of the spectrum (App. B.1: up to 10)")
    which: list[Literal["LA", "SA"]] = Field(default=["LA", "SA"], min_length=1)
    examples: int | None = Field(default=None, ge=1, description="the seeded subset of training examples")
    trace_samples: int = Field(default=100, ge=1, le=100000)
    slq_runs: int = Field(default=1, ge=0, le=1000, description="SLQ runs (0: no density)")
    slq_steps: int = Field(default=50, ge=2, le=10000)
    seed: int = 0


class HessianParams(UnitParams, HessianSettings):
    def canonical(self) -> dict:
        return _canonical_without_none(self)


class HessianUnit(UnitKind):
    name = "hessian"
    version = 1
    Params = HessianParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=60, resource_class="eval")
    outputs = ("directions",)
    metrics = (Metric("top_eigenvalue", "largest eigenvalue", ".4g"), Metric("trace", "Hutchinson trace", ".4g"))
    tables = ("spectrum", "density")

    def run(self, ctx, p: HessianParams) -> None:
        from ...workers.landscape.hessian import (
            HessianOperator,
            eigenvector_directions,
            hessian_batches,
            hessian_eigenpairs,
            hutchinson_trace,
            slq_density,
        )

        model, data = _model_and_data(ctx, "centre")
        centre = _state(ctx, "centre")
        model.load_state_dict(centre)
        model.eval()
        operator = HessianOperator(model, hessian_batches(data, p.examples, p.seed))
        params = dict(model.named_parameters())
        rows: list[dict] = []
        vectors: dict = {}
        result: dict[str, Any] = {}
        for which in p.which:
            values, vecs = hessian_eigenpairs(operator, min(p.k, operator.dim - 1), which, seed=p.seed)
            order = sorted(range(len(values)), key=lambda n: -abs(float(values[n])))  # rank 0: the largest |λ|
            dirs = eigenvector_directions(vecs, params, operator.names)
            for rank, n in enumerate(order):
                rows.append({"which": which, "rank": rank, "eigenvalue": float(values[n])})
                vectors.update({f"{which}{rank}.{t}": v for t, v in dirs[n].items()})
            result[f"eigenvalues_{which}"] = [float(values[n]) for n in order]
        trace, trace_stderr = hutchinson_trace(operator, p.trace_samples, p.seed)
        result.update(
            {
                "trace": trace,
                "trace_stderr": trace_stderr,
                "dim": operator.dim,
                "examples": operator.examples,
                "top_eigenvalue": result["eigenvalues_LA"][0] if "eigenvalues_LA" in result else None,
            }
        )
        tables = {"spectrum": rows}
        if p.slq_runs:
            density = slq_density(operator, p.slq_runs, p.slq_steps, p.seed, grid_points=200)
            result.update(
                {
                    "density_mean": density.mean,
                    "density_mean_vs_trace_per_dim": trace / operator.dim,
                    "density_min_node": float(min(t.min() for t in density.nodes)),
                    "density_max_node": float(max(t.max() for t in density.nodes)),
                }
            )
            tables["density"] = [
                {"eigenvalue": float(g), "density": float(d)} for g, d in zip(density.grid, density.density)
            ]
        result["hvp_products"] = operator.products
        ctx.write_segment(0, tables, stop=False)  # the commit follows: a stop here would throw the spectrum away
        ctx.commit(result, outputs={"directions": _on_cpu(vectors)})


# ---------------------------------------------------------------------------------------------- mining


MINING_ALGORITHMS = ("w_peak", "vvv_basin")


class MiningSettings(_Settings):
    """The settings of Xu et al.'s Algo. 1/2 the paper leaves out, with the defaults of ``workers.mining``."""

    epochs: int = Field(default=10, ge=1, le=100000, description="E: epochs over the training set")
    lr: float = Field(default=0.1, gt=0, le=100, description="η: the step size of the plain SGD updates")
    batch_size: int = Field(default=128, ge=1, le=1 << 20, description="the paper's training batch size")
    gamma: float = Field(default=0.5, ge=0, description="vvv_basin: γ, the weight of the interpolation term")
    alpha: float = Field(default=0.0, ge=0, le=0.5, description="vvv_basin: λ ∈ [0.5 − α, 0.5 + α]")
    phi_init: Literal["fresh", "perturbed"] = Field(
        default="fresh",
        description="vvv_basin: φ₀, a fresh seeded initialisation of the architecture, or θ + 0.1·(filter-"
        "normalised Gaussian)",
    )


class MiningParams(UnitParams):
    algorithm: Literal["w_peak", "vvv_basin"]
    seed: int = 0
    epochs: int = Field(default=10, ge=1)
    lr: float = Field(default=0.1, gt=0)
    batch_size: int = Field(default=128, ge=1)
    gamma: float | None = None  # vvv_basin only
    alpha: float | None = None
    phi_init: Literal["fresh", "perturbed"] | None = None
    eigenvectors: bool = Field(default=False, description="input eigen: a Hessian unit's eigenvectors (Fig. 9)")

    def canonical(self) -> dict:
        return _canonical_without_none(self)


class _Tensors:
    """The resumable state of a mining run (``jobs.loop.Resumable``): ε (Algo. 1) or φ (Algo. 2)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def checkpoint(self) -> tuple[dict, dict]:
        return {k: v.detach().clone() for k, v in self.tensors.items()}, {}

    def restore(self, tensors: dict, meta: dict) -> None:
        self.tensors = {k: v.to(next(iter(self.tensors.values())).device) for k, v in tensors.items()}


class MiningUnit(UnitKind):
    """Xu et al. §2.4–2.5: a direction mined at a centre by Algo. 1 (w-peak) or Algo. 2 (vvv-basin), one segment per
    epoch (rows: λ and the batch loss per step), resumable; committed as ``directions`` like a direction unit's. With
    input ``eigen`` (a Hessian unit's ``directions``) the result and table ``cosines`` hold |cos| against each
    eigenvector (Fig. 9)."""

    name = "mining"
    version = 1
    Params = MiningParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=120, resource_class="train")
    outputs = ("directions",)
    metrics = (Metric("norm", "‖ε‖", ".4g"), Metric("final_loss", "batch loss, last epoch", ".4g"))
    tables = ("mining", "cosines")

    def run(self, ctx, p: MiningParams) -> None:
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.landscape.directions import cosine, direction_norm, parameter_names
        from ...workers.landscape.mining import (
            fresh_initialisation,
            mine_vvv_basin,
            mine_w_peak,
            perturbed_initialisation,
            vvv_basin_direction,
        )
        from ..common.loop import Segment, run_segments

        centre_params = ctx.input_params("centre")
        model, data = _model_and_data(ctx, "centre")
        centre = _state(ctx, "centre")
        names = parameter_names(model)
        stream = BatchStream(data, p.batch_size, derive_seed("mining", p.algorithm, p.seed), augment=False)
        spe = stream.steps_per_epoch
        if p.algorithm == "w_peak":
            state = _Tensors({n: torch.zeros_like(centre[n]) for n in names})
        else:
            if p.phi_init == "perturbed":
                phi0 = perturbed_initialisation(centre, names, p.seed)
            else:
                phi0 = fresh_initialisation(lambda: build_for(centre_params.model, data, ctx.device), p.seed)
            state = _Tensors({n: phi0[n].to(ctx.device) for n in names})

        def segment(start: int, end: int) -> Segment:
            rows: list[dict] = []

            def on_step(step: int, lam: float, loss: float) -> None:
                rows.append({"step": step, "epoch": step // spe, "lambda": lam, "loss": loss})

            for epoch in range(start, end):
                first, stop = epoch * spe, (epoch + 1) * spe
                if p.algorithm == "w_peak":
                    state.tensors = mine_w_peak(
                        model, centre, stream, names, p.epochs, p.lr, p.seed, state.tensors, first, stop, on_step
                    )
                else:
                    state.tensors = mine_vvv_basin(
                        model,
                        centre,
                        state.tensors,
                        stream,
                        names,
                        gamma=float(p.gamma if p.gamma is not None else 0.5),
                        alpha=float(p.alpha or 0.0),
                        epochs=p.epochs,
                        lr=p.lr,
                        seed=p.seed,
                        start_step=first,
                        stop_step=stop,
                        on_step=on_step,
                    )
            return Segment({"mining": rows}, info={"epoch": end, "loss": rows[-1]["loss"]})

        run_segments(ctx, p.epochs, 1, state, segment, unit="epochs")
        eps = state.tensors if p.algorithm == "w_peak" else vvv_basin_direction(state.tensors, centre)
        eps = _on_cpu(eps)
        rows = ctx.rows("mining").to_pylist()
        last = [r["loss"] for r in rows if r["epoch"] == p.epochs - 1]
        result: dict[str, Any] = {
            "algorithm": p.algorithm,
            "norm": direction_norm(eps),
            "final_loss": sum(last) / len(last),
            "steps": len(rows),
        }
        if p.eigenvectors:
            vectors = ctx.input_tensors("eigen")
            eigen = ctx.input_result("eigen")
            heads = sorted({k.split(".", 1)[0] for k in vectors}, key=lambda h: (h[:2] != "LA", int(h[2:])))
            cos_rows = []
            for head in heads:
                which, rank = head[:2], int(head[2:])
                v = {k[len(head) + 1 :]: t for k, t in vectors.items() if k.startswith(head + ".")}
                values = eigen.get(f"eigenvalues_{which}") or []
                cos_rows.append(
                    {
                        "which": which,
                        "rank": rank,
                        "eigenvalue": float(values[rank]) if rank < len(values) else float("nan"),
                        "abs_cos": abs(cosine(eps, v)),
                    }
                )
            ctx.write_segment(p.epochs, {"cosines": cos_rows}, stop=False)  # the commit follows
            result["abs_cos"] = {f"{r['which']}{r['rank']}": r["abs_cos"] for r in cos_rows}
            result["max_abs_cos"] = max(r["abs_cos"] for r in cos_rows)
        ctx.commit(result, outputs={"directions": eps})


# ---------------------------------------------------------------------------------------------- centres


CENTRE_SOURCES = ("point", "interpolation", "pivot", "checkpoint")


class CentreParams(ModeParams):
    """A centre that is not a mode, as a model of its own (``final``): a stored point of a path (``point``: input
    ``a`` is ``Ref(uid, "point:<step>")`` or an AutoNEB edge's ``saddle``), a point on the straight line between two
    modes (``interpolation``: inputs ``a``, ``b``, ``alpha``), a pivot of an AutoNEB path (``pivot``: input ``a`` the
    edge's ``pivots``, ``template`` a mode), or a training checkpoint (``checkpoint``: input ``a`` a train unit that
    stored epoch ``epoch``). ``seed``, ``model`` and ``data`` are those of the mode(s) it comes from."""

    source: Literal["point", "interpolation", "pivot", "checkpoint"]
    alpha: float | None = None
    pivot: int | None = Field(default=None, ge=0)
    epoch: int | None = Field(default=None, ge=1)
    reestimate_bn: bool = Field(default=True, description="interpolation: BN statistics re-estimated at the point")

    def canonical(self) -> dict:
        return _canonical_without_none(self)


class CentreUnit(UnitKind):
    name = "centre"
    version = 1
    Params = CentreParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=2.0, time_min=10, resource_class="eval")
    outputs = ("final",)
    metrics = (Metric("train_loss", "train loss at the centre", ".4f"), Metric("test_loss", "test loss", ".4f"))

    def run(self, ctx, p: CentreParams) -> None:
        import math as _math

        from ...workers.interpolation import interpolate_state, reestimate_batchnorm
        from ...workers.models import has_batchnorm
        from ...workers.training import evaluate_batches

        data = load_data(ctx, p.data)
        model = build_for(p.model, data, ctx.device)
        if p.source == "point":
            state = ctx.input_tensors("a")
        elif p.source == "checkpoint":
            recipe = ctx.input_params("a").recipe
            steps = p.epoch * _math.ceil(data.n_train / recipe.batch_size)  # the train kind's BatchStream epochs
            state = ctx.input_tensors("a", f"point:{steps}")
        elif p.source == "pivot":
            from ...workers.autoneb import neb

            pivots = ctx.input_tensors("a")["pivots"]
            if p.pivot is None or p.pivot >= pivots.shape[0]:
                raise ValueError(f"pivot: {p.pivot} is not an index of the path's {pivots.shape[0]} pivots")
            template = {k: v.to(ctx.device) for k, v in ctx.input_final_state("template").items()}
            state = neb.unflatten_state(pivots[p.pivot].to(ctx.device), neb.state_layout(model), template)
        else:
            sa = {k: v.to(ctx.device) for k, v in ctx.input_final_state("a").items()}
            sb = {k: v.to(ctx.device) for k, v in ctx.input_final_state("b").items()}
            state = interpolate_state(sa, sb, float(p.alpha if p.alpha is not None else 0.5))
        model.load_state_dict({k: v.to(ctx.device) for k, v in state.items()})
        if p.source == "interpolation" and p.reestimate_bn and has_batchnorm(model):
            reestimate_batchnorm(model, data.eval_batches("train", 256))
        tl, ta = evaluate_batches(model, data.eval_batches("train"))
        vl, va = evaluate_batches(model, data.eval_batches("test"))
        ctx.commit(
            {"source": p.source, "seed": p.seed, "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va},
            final=_on_cpu(model.state_dict()),
        )


# ---------------------------------------------------------------------------------------------- angles (Fig. 5)


class AnglesSettings(_Settings):
    count: int = Field(default=100, ge=2, le=1000, description="Gaussian directions drawn (Fig. 5: 100)")
    seed: int = Field(default=1000, description="the first draw's seed; draws seed, seed + 1, …")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = "norm"
    one_d: Literal["normalise", "zero", "keep"] = "normalise"


class AnglesParams(UnitParams, AnglesSettings):
    pass


class AnglesUnit(UnitKind):
    """Xu et al. Fig. 5: the angles between every pair of ``count`` Gaussian directions at a centre (table
    ``angles``: i, j, angle_deg); the directions are drawn as the direction kind draws them and not stored. Memory:
    count × the model's parameter count in float32."""

    name = "angles"
    version = 1
    Params = AnglesParams
    default_resources = Resources(cpus=1, gpus=0, mem_gb=4.0, time_min=20, resource_class="eval")
    metrics = (Metric("max_deviation_deg", "max |angle − 90°|", ".3g"),)
    tables = ("angles",)

    def run(self, ctx, p: AnglesParams) -> None:
        import torch

        from ...workers.landscape.directions import flatten, gaussian_direction, parameter_names

        model, _ = _model_and_data(ctx, "centre")
        centre = _state(ctx, "centre")
        names = parameter_names(model)
        rows = []
        vectors = torch.stack(
            [
                flatten(gaussian_direction(centre, names, p.seed + i, p.normalisation, p.one_d), names).float()
                for i in range(p.count)
            ]
        ).double()
        norms = vectors.norm(dim=1)
        gram = (vectors @ vectors.T) / (norms[:, None] * norms[None, :])
        for i in range(p.count):
            for j in range(i + 1, p.count):
                cos = max(-1.0, min(1.0, float(gram[i, j])))
                rows.append({"i": i, "j": j, "angle_deg": math.degrees(math.acos(cos))})
        ctx.write_segment(0, {"angles": rows}, stop=False)  # the commit follows
        angles = [r["angle_deg"] for r in rows]
        ctx.commit(
            {
                "pairs": len(rows),
                "min_deg": min(angles),
                "max_deg": max(angles),
                "mean_deg": sum(angles) / len(angles),
                "max_deviation_deg": max(abs(a - 90.0) for a in angles),
                "within_1_deg": sum(abs(a - 90.0) <= 1.0 for a in angles) / len(angles),
                "dim": int(vectors.shape[1]),
            }
        )


# ---------------------------------------------------------------------------------------------- the stage


class DirectionSpec(MiningSettings):
    """One entry of the stage's ``directions``: planned once per centre. ``gaussian``, ``gradient``, ``to_mode``:
    a direction unit; ``eigenvector``: the ``rank``-th eigenvector of side ``which`` of the centre's Hessian unit
    (the stage's ``hessian`` table); ``w_peak``, ``vvv_basin``: a mining unit (Algo. 1 / 2, settings of
    ``MiningSettings``; ``seed`` seeds its batches, λ draws and φ₀)."""

    kind: Literal["gaussian", "to_mode", "gradient", "eigenvector", "w_peak", "vvv_basin", "next_checkpoint"] = (
        "gaussian"
    )
    seed: int = Field(default=0, description="gaussian: the seed of the draw; w_peak/vvv_basin: the mining seed")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = "norm"
    one_d: Literal["normalise", "zero", "keep"] = "normalise"
    target_seed: int | None = Field(default=None, description="to_mode: the other mode (default: the next seed)")
    examples: int | None = Field(default=None, ge=1, description="gradient: the seeded subset of training examples")
    which: Literal["LA", "SA"] = Field(default="LA", description="eigenvector: largest (LA) or smallest (SA) side")
    rank: int = Field(default=0, ge=0, le=9, description="eigenvector: 0 = the largest |eigenvalue| of its side")


WIDE_RANGE_KINDS = (
    "to_mode",
    "vvv_basin",
    "next_checkpoint",
)  # curves on λ ∈ [−1, 2] (two models on the grid: λ = 0 and λ = 1)


class CentreSpec(_Settings):
    """A centre that is not a mode of ``from`` (an entry of the stage's ``centres``)."""

    kind: Literal["path", "interpolation", "saddle", "pivot", "checkpoint"]
    stage: str | None = Field(default=None, description="path: an m2m stage; saddle, pivot: an autoneb stage")
    pair: tuple[int, int] | None = Field(default=None, description="path, interpolation, saddle, pivot: the seeds")
    at: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="path: where on the path (fraction of its iterations; the stored point nearest it); "
        "interpolation: α of (1 − α)·θ_a + α·θ_b",
    )
    pivot: int | None = Field(default=None, ge=0, description="pivot: the pivot's index on the path (0: mode a)")
    seed: int | None = Field(default=None, description="checkpoint: the mode's seed")
    epoch: int | None = Field(default=None, ge=1, description="checkpoint: an epoch of [train] checkpoint_epochs")
    directions: list[int] | None = Field(
        default=None, description="indices into `directions` (default: all; []: none, only the centre itself)"
    )
    surface: bool = Field(default=True, description="the stage's surface at this centre too")
    hessian: bool = Field(default=True, description="the stage's Hessian at this centre too")

    def centre_seed(self) -> int:
        """The seed standing for the centre (labels, to_mode targets): a pair's first mode, a checkpoint's mode."""
        if self.kind == "checkpoint":
            return int(self.seed if self.seed is not None else 0)
        return int(self.pair[0]) if self.pair is not None else 0

    def label(self) -> str:
        a, b = self.pair if self.pair is not None else (None, None)
        if self.kind == "checkpoint":
            return f"seed={self.seed}@epoch{self.epoch}"
        if self.kind == "path":
            return f"path={self.stage}:{a}-{b}@{self.at:g}"
        if self.kind == "interpolation":
            return f"interp={a}-{b}@{self.at:g}"
        if self.kind == "saddle":
            return f"saddle={self.stage}:{a}-{b}"
        return f"pivot={self.stage}:{a}-{b}#{self.pivot}"


class SurfaceSpec(_Settings):
    x_points: int = Field(default=51, ge=2, le=10001)
    y_points: int = Field(default=51, ge=2, le=10001)
    x_range: tuple[float, float] = (-1.0, 1.0)
    y_range: tuple[float, float] = (-1.0, 1.0)
    shard: tuple[int, int] = Field(default=(10, 10), description="grid points per shard along x and y")
    directions: tuple[int, int] = Field(default=(0, 1), description="indices into `directions` of ε₁ and ε₂")


class LandscapeStage(StageParams):
    from_: str = Field(alias="from", description="the stage whose modes are the centres")
    seeds: list[int] | None = Field(default=None, description="seeds of the modes to centre on (default: all)")
    centres: list[CentreSpec] = Field(default_factory=list, description="centres besides the modes")
    directions: list[DirectionSpec] = Field(default_factory=lambda: [DirectionSpec()], min_length=1)
    scales: list[float] = Field(default=[0.1, 1.0, 4.0, 10.0], description="curve scales s: λ on [−s, s] ([]: none)")
    points: int = Field(default=41, ge=3, le=10001, description="points per curve, both ends included")
    surface: SurfaceSpec | None = None
    hessian: HessianSettings | None = None
    angles: AnglesSettings | None = Field(default=None, description="Fig. 5 at the first centre (none: not drawn)")
    bn: Literal["UpBN", "NoUpBN"] = "UpBN"
    eval_examples: int | None = Field(default=None, ge=1)
    eval_seed: int = 0
    vectorize: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="scans evaluate K points at a time as one batched model (torch.func.vmap); unset: one by one",
    )


def _centres(table: LandscapeStage, modes: list) -> list:
    by_seed = {u.params["seed"]: u for u in modes}
    return [by_seed[s] for s in table.seeds] if table.seeds is not None else modes


def _target_seed(spec: DirectionSpec, seed: int, seeds: list[int]) -> int:
    if spec.target_seed is not None:
        return spec.target_seed
    return seeds[(seeds.index(seed) + 1) % len(seeds)]


def _path_point(phases: list, at: float) -> tuple[Any, int]:
    """(phase unit, step) of the stored point of an M2M path (its phases in order) nearest ``at`` × the path's
    iterations; points are stored every ``point_stride`` iterations and at each phase's end; ties go to the earlier."""
    total = sum(u.params["iterations"] for u in phases)
    best: tuple[float, int, Any, int] | None = None
    offset = 0
    for u in phases:
        n, stride = u.params["iterations"], u.params["point_stride"]
        for step in sorted({*range(stride, n + 1, stride), n}):
            key = (abs(offset + step - at * total), offset + step, u, step)
            if best is None or key[:2] < best[:2]:
                best = key
        offset += n
    assert best is not None
    return best[2], best[3]


class LandscapeStageKind(StageKind):
    name = "landscape"
    Table = LandscapeStage
    unit_kinds = ("scan", "direction", "mining", "hessian", "centre", "angles")  # scan first: it summarises the stage
    input_output = None  # checked in validate: `from` gives modes, `centres` may name path stages
    needs_input_stage = True

    def inputs_of(self, table: Any) -> tuple[str, ...]:
        extra = [c.stage for c in getattr(table, "centres", []) if c.stage is not None]
        return tuple(dict.fromkeys([table.from_, *extra]))

    def _centre_problems(self, table: LandscapeStage, study, stages, all_seeds: list[int]) -> list:
        problems: list[tuple[str, Any, str]] = []
        needs = {"path": "m2m", "saddle": "autoneb", "pivot": "autoneb"}
        for n, c in enumerate(table.centres):
            where = f"centres[{n}]"
            if c.kind in needs:
                info = stages.get(c.stage) if c.stage is not None else None
                if info is None or info.kind != needs[c.kind]:
                    kinds = [k for k, i in stages.items() if i.kind == needs[c.kind]]
                    problems.append(
                        (f"{where}.stage", c.stage, f"the name of an earlier {needs[c.kind]} stage {kinds}")
                    )
                    continue
                if c.kind == "path" and any(ph.iterations < 1 for ph in info.params.phases):
                    problems.append((f"{where}.stage", c.stage, "an m2m stage with phases"))
                if c.kind == "path" and info.params.point_stride < 1:
                    problems.append((f"{where}.stage", c.stage, "an m2m stage that stores points (point_stride ≥ 1)"))
            if c.kind != "checkpoint":
                if c.pair is None or c.pair[0] == c.pair[1] or any(s not in all_seeds for s in c.pair):
                    problems.append(
                        (f"{where}.pair", c.pair, f"two different seeds of stage {table.from_!r}: {all_seeds}")
                    )
            else:
                if c.seed not in all_seeds:
                    problems.append((f"{where}.seed", c.seed, f"a seed of stage {table.from_!r}: {all_seeds}"))
                epochs = list(study.train.get("checkpoint_epochs") or [])
                if stages[table.from_].kind != "train" or c.epoch not in epochs:
                    problems.append(
                        (
                            f"{where}.epoch",
                            c.epoch,
                            f"an epoch of [train] checkpoint_epochs {epochs} (the train stage {table.from_!r} "
                            "stores those)",
                        )
                    )
            if c.kind == "pivot" and c.pivot is None:
                problems.append((f"{where}.pivot", None, "the index of a pivot of the path"))
            if c.directions is not None:
                bad = [i for i in c.directions if not 0 <= i < len(table.directions)]
                if bad:
                    problems.append((f"{where}.directions", c.directions, f"indices in 0..{len(table.directions) - 1}"))
        return problems

    def validate(self, table: LandscapeStage, study, stages):
        from ... import jobs

        problems: list[tuple[str, Any, str]] = []
        if "final" not in jobs.stage_produces(jobs.get_stage_kind(stages[table.from_].kind)):
            return [("from", table.from_, "a stage whose units produce modes ('final'), e.g. of kind train")]
        all_seeds = seeds_of(stages, table.from_, study)
        if table.seeds is not None:
            bad = [s for s in table.seeds if s not in all_seeds]
            if bad or len(set(table.seeds)) != len(table.seeds):
                problems.append(("seeds", table.seeds, f"distinct seeds of stage {table.from_!r}: {all_seeds}"))
        problems += self._centre_problems(table, study, stages, all_seeds)
        centres = table.seeds if table.seeds is not None else all_seeds
        centres = [*centres, *(c.centre_seed() for c in table.centres)]
        for n, spec in enumerate(table.directions):
            if spec.kind == "eigenvector":
                h = table.hessian
                if h is None or spec.which not in h.which or spec.rank >= h.k:
                    problems.append(
                        (
                            f"directions[{n}].rank",
                            spec.rank,
                            f"an eigenvector the stage's hessian computes (hessian = {{k > rank, "
                            f"which = [{spec.which!r}]}})",
                        )
                    )
                elif any(not c.hessian and (c.directions is None or n in c.directions) for c in table.centres):
                    problems.append((f"directions[{n}].kind", spec.kind, "centres with hessian = true (it needs one)"))
            if spec.kind == "vvv_basin" and spec.alpha > 0.5:
                problems.append((f"directions[{n}].alpha", spec.alpha, "α in [0, 0.5]"))
            if spec.kind == "next_checkpoint":
                takers = [c for c in table.centres if c.directions is None or n in c.directions]
                if not any(c.kind == "checkpoint" for c in takers):
                    problems.append(
                        (
                            f"directions[{n}].kind",
                            spec.kind,
                            "the direction from a training checkpoint to the next one (Xu et al. §3.2, v-side "
                            "curves): it needs a centre of kind 'checkpoint' that takes it (it is planned at "
                            "checkpoint centres only)",
                        )
                    )
            if spec.kind != "to_mode":
                continue
            if spec.target_seed is not None and spec.target_seed not in all_seeds:
                problems.append(
                    (f"directions[{n}].target_seed", spec.target_seed, f"a seed of stage {table.from_!r}: {all_seeds}")
                )
            elif any(_target_seed(spec, s, all_seeds) == s for s in centres if s in all_seeds):
                problems.append(
                    (
                        f"directions[{n}].target_seed",
                        spec.target_seed,
                        "a seed other than every centre's (to_mode needs a second mode)",
                    )
                )
        if table.points % 2 == 0:
            problems.append(("points", table.points, "an odd number of points (λ = 0, the centre, in the middle)"))
        bad_scales = [s for s in table.scales if not s > 0]
        if bad_scales:
            problems.append(("scales", table.scales, "positive view scales s"))
        if table.surface is not None:
            sf = table.surface
            for axis, rng in (("x_range", sf.x_range), ("y_range", sf.y_range)):
                if not rng[1] > rng[0]:
                    problems.append((f"surface.{axis}", list(rng), "[min, max] with max > min"))
            if min(sf.shard) < 1:
                problems.append(("surface.shard", list(sf.shard), "at least 1 grid point per shard along each axis"))
            if any(not 0 <= i < len(table.directions) for i in sf.directions) or sf.directions[0] == sf.directions[1]:
                problems.append(
                    (
                        "surface.directions",
                        list(sf.directions),
                        f"two different indices in 0..{len(table.directions) - 1}",
                    )
                )
            for n, c in enumerate(table.centres):
                if c.surface and c.directions is not None and not set(sf.directions) <= set(c.directions):
                    problems.append(
                        (
                            f"centres[{n}].directions",
                            c.directions,
                            f"the surface's directions {list(sf.directions)} too",
                        )
                    )
        return problems

    def describe(self, table: LandscapeStage, study):
        kinds = ", ".join(d.kind for d in table.directions)
        lines = [
            f"centres: modes of stage {table.from_!r} (seeds {table.seeds if table.seeds is not None else 'all'})"
            + "".join(f", {c.label()}" for c in table.centres)
            + f"; directions: {kinds}; curves at s = {table.scales}, {table.points} points; bn = {table.bn}"
        ]
        if table.surface is not None:
            sf = table.surface
            lines.append(
                f"surface {sf.x_points} × {sf.y_points} on {list(sf.x_range)} × {list(sf.y_range)} in "
                f"{math.ceil(sf.x_points / sf.shard[0]) * math.ceil(sf.y_points / sf.shard[1])} shards "
                f"per centre"
            )
        if table.hessian is not None:
            lines.append(
                f"hessian: k = {table.hessian.k} per {table.hessian.which}, trace by "
                f"{table.hessian.trace_samples} samples, SLQ {table.hessian.slq_runs} run(s)"
            )
        if table.angles is not None:
            lines.append(f"angles between {table.angles.count} Gaussian directions at the first centre (Fig. 5)")
        return lines

    def _centre_draft(self, c: CentreSpec, table: LandscapeStage, view, by_seed: dict) -> UnitDraft | None:
        """The centre unit of a ``centres`` entry, or None when its AutoNEB stage computed no edge for the pair."""
        seed = c.centre_seed()
        mode = by_seed[seed]
        common: dict[str, Any] = dict(seed=seed, model=mode.params["model"], data=mode.params["data"])
        if c.kind == "checkpoint":
            return UnitDraft(
                "centre", CentreParams(source="checkpoint", epoch=c.epoch, **common), {"a": mode.id}, c.label()
            )
        assert c.pair is not None
        a, b = (by_seed[s] for s in c.pair)
        if c.kind == "interpolation":
            return UnitDraft(
                "centre", CentreParams(source="interpolation", alpha=c.at, **common), {"a": a.id, "b": b.id}, c.label()
            )
        units = view.units(c.stage)
        if c.kind == "path":
            phases = sorted(
                (u for u in units if tuple(u.params["pair"]) == tuple(c.pair)), key=lambda u: u.params["phase"]
            )
            if not phases:
                return None
            unit, step = _path_point(phases, c.at)
            return UnitDraft(
                "centre", CentreParams(source="point", **common), {"a": Ref(unit.id, f"point:{step}")}, c.label()
            )
        edges = [u for u in units if sorted(u.params["pair"]) == sorted(c.pair)]
        if not edges:
            return None
        edge = edges[0]
        if c.kind == "saddle":
            return UnitDraft("centre", CentreParams(source="point", **common), {"a": Ref(edge.id, "saddle")}, c.label())
        return UnitDraft(
            "centre",
            CentreParams(source="pivot", pivot=c.pivot, **common),
            {"a": Ref(edge.id, "pivots"), "template": by_seed[edge.params["pair"][0]].id},
            c.label(),
        )

    def plan(self, table: LandscapeStage, study, view) -> Plan:
        from ...workers.landscape.scans import Grid, curve_lambdas, grid_shards

        waiting = [s for s in self.inputs_of(table) if view.is_open(s)]
        if waiting:
            return Plan([], open=True, note=f"waiting for stage {', '.join(waiting)}")
        modes = view.units(table.from_)
        seeds = [u.params["seed"] for u in modes]
        by_seed = {u.params["seed"]: u for u in modes}
        drafts: list[UnitDraft] = []
        skipped: list[str] = []
        scan: dict[str, Any] = dict(bn=table.bn, eval_examples=table.eval_examples, eval_seed=table.eval_seed)
        if (table.vectorize or 1) > 1:
            scan["vectorize"] = table.vectorize
        # (label prefix, centre input, its seed, its spec or None for a mode)
        centres: list[tuple[str, Any, int, CentreSpec | None]] = [
            (f"seed={u.params['seed']}", u.id, u.params["seed"], None) for u in _centres(table, modes)
        ]
        for c in table.centres:
            draft = self._centre_draft(c, table, view, by_seed)
            if draft is None:
                skipped.append(c.label())
                continue
            drafts.append(draft)
            centres.append((c.label(), draft, c.centre_seed(), c))
        if table.angles is not None and centres:
            drafts.append(
                UnitDraft(
                    "angles",
                    AnglesParams(**table.angles.model_dump()),
                    {"centre": centres[0][1]},
                    f"{centres[0][0]} angles({table.angles.count})",
                )
            )
        for name, centre, seed, cspec in centres:
            chosen = (
                list(range(len(table.directions))) if cspec is None or cspec.directions is None else cspec.directions
            )
            if cspec is None or cspec.kind != "checkpoint":  # a next checkpoint exists at checkpoint centres only
                chosen = [n for n in chosen if table.directions[n].kind != "next_checkpoint"]
            hess = None
            if table.hessian is not None and (cspec is None or cspec.hessian):
                hess = UnitDraft(
                    "hessian", HessianParams(**table.hessian.model_dump()), {"centre": centre}, f"{name} hessian"
                )
            needs_hessian = any(table.directions[n].kind in ("eigenvector", *MINING_ALGORITHMS) for n in chosen)
            if hess is not None and needs_hessian:
                drafts.append(hess)  # before the units that read its eigenvectors
            sources: dict[int, tuple[Any, str | None]] = {}  # direction index -> (input, select prefix)
            units: list[UnitDraft] = []  # direction units of this centre: the angles of later ones go to these
            for n in chosen:
                spec = table.directions[n]
                if spec.kind == "eigenvector":
                    if hess is None:  # validate refuses it; a planner bug must not pass silently
                        raise ValueError(f"directions[{n}]: an eigenvector at centre {name}, which has no hessian")
                    sources[n] = (Ref(hess, "directions"), f"{spec.which}{spec.rank}")
                    continue
                if spec.kind == "w_peak" or spec.kind == "vvv_basin":
                    vvv = spec.kind == "vvv_basin"
                    params = MiningParams(
                        algorithm=spec.kind,
                        seed=spec.seed,
                        epochs=spec.epochs,
                        lr=spec.lr,
                        batch_size=spec.batch_size,
                        gamma=spec.gamma if vvv else None,
                        alpha=spec.alpha if vvv else None,
                        phi_init=spec.phi_init if vvv else None,
                        eigenvectors=hess is not None,
                    )
                    inputs: dict = {"centre": centre}
                    if hess is not None:
                        inputs["eigen"] = Ref(hess, "directions")
                    draft = UnitDraft("mining", params, inputs, f"{name} dir={n} {spec.kind}({spec.seed})")
                    drafts.append(draft)
                    sources[n] = (Ref(draft, "directions"), None)
                    continue
                inputs = {"centre": centre}
                inputs.update({f"other.{m}": Ref(d, "directions") for m, d in enumerate(units)})
                if spec.kind == "next_checkpoint":
                    assert cspec is not None and cspec.kind == "checkpoint" and cspec.epoch is not None
                    later = sorted(e for e in study.train.get("checkpoint_epochs") or [] if e > cspec.epoch)
                    mode = by_seed[cspec.centre_seed()]
                    if later:  # the next stored checkpoint, as a centre unit of its own (its model and losses)
                        target_centre = UnitDraft(
                            "centre",
                            CentreParams(
                                source="checkpoint",
                                epoch=later[0],
                                seed=cspec.centre_seed(),
                                model=mode.params["model"],
                                data=mode.params["data"],
                            ),
                            {"a": mode.id},
                            f"seed={cspec.centre_seed()}@epoch{later[0]}",
                        )
                        drafts.append(target_centre)
                        inputs["target"] = target_centre
                        label = f"{name} dir={n} next_checkpoint=epoch{later[0]}"
                    else:  # the last checkpoint: the direction to the trained mode
                        inputs["target"] = mode.id
                        label = f"{name} dir={n} next_checkpoint=final"
                    dparams = DirectionParams(direction="to_mode", others=len(units))
                elif spec.kind == "to_mode":
                    target = _target_seed(spec, seed, seeds)
                    inputs["target"] = by_seed[target].id
                    dparams = DirectionParams(direction="to_mode", others=len(units))
                    label = f"{name} dir={n} to_mode={target}"
                elif spec.kind == "gradient":
                    dparams = DirectionParams(
                        direction="gradient",
                        normalisation=spec.normalisation,
                        one_d=spec.one_d,
                        examples=spec.examples,
                        others=len(units),
                    )
                    label = f"{name} dir={n} gradient"
                else:
                    dparams = DirectionParams(
                        direction="gaussian",
                        seed=spec.seed,
                        normalisation=spec.normalisation,
                        one_d=spec.one_d,
                        others=len(units),
                    )
                    label = f"{name} dir={n} gaussian({spec.seed})"
                draft = UnitDraft("direction", dparams, inputs, label)
                units.append(draft)
                sources[n] = (Ref(draft, "directions"), None)
            drafts += units
            for n in chosen:
                spec = table.directions[n]
                ref, prefix = sources[n]
                ranges = (
                    [(*W_BASIN_RANGE, w_basin_points(table.points))]
                    if spec.kind in WIDE_RANGE_KINDS
                    else [(curve_lambdas(s, table.points)[0], s, table.points) for s in table.scales]
                )
                for lo, hi, count in ranges:
                    drafts.append(
                        UnitDraft(
                            "scan",
                            ScanParams(
                                shape="curve",
                                lambda_min=lo,
                                lambda_max=hi,
                                points=count,
                                select={"direction": prefix} if prefix else None,
                                **scan,
                            ),
                            {"centre": centre, "direction": ref},
                            f"{name} dir={n} λ∈[{lo:g},{hi:g}]",
                        )
                    )
            if table.surface is not None and (cspec is None or cspec.surface):
                sf = table.surface
                grid = GridParams(
                    x_min=sf.x_range[0],
                    x_max=sf.x_range[1],
                    x_points=sf.x_points,
                    y_min=sf.y_range[0],
                    y_max=sf.y_range[1],
                    y_points=sf.y_points,
                )
                shards = grid_shards(Grid(**grid.model_dump()), *sf.shard)
                (rx, px), (ry, py) = (sources[i] for i in sf.directions)
                select = {k: v for k, v in (("x", px), ("y", py)) if v} or None
                for sh in shards:
                    box = (sh.x_start, sh.x_stop, sh.y_start, sh.y_stop)
                    drafts.append(
                        UnitDraft(
                            "scan",
                            ScanParams(shape="surface", grid=grid, shard=box, select=select, **scan),
                            {"centre": centre, "x": rx, "y": ry},
                            f"{name} shard={list(box)}",
                        )
                    )
            if hess is not None and not needs_hessian:
                drafts.append(hess)
        if len(drafts) > study.max_units:
            from ..base import ExpansionTooLarge

            raise ExpansionTooLarge(f"stage {view.stage}", len(drafts), study.max_units)
        note = f"{len(drafts)} units" + (
            f"; no path for centre(s) {', '.join(skipped)} (not computed by their stage)" if skipped else ""
        )
        return Plan(drafts, note=note)
