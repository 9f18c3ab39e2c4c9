"""Stage kind ``landscape``; unit kinds ``direction``, ``scan``, ``hessian``: loss landscapes at modes (Xu et al.).

- ``direction``: one perturbation direction ε at a centre (input ``centre``: a mode, or a stored point via
  ``Ref(uid, "point:<step>")``), committed as the tensor set ``directions``: a seeded Gaussian (normalised ``norm``,
  ``laynorm``, ``filnorm`` or ``none``, with a 1-D tensor policy), the negative gradient (normalised the same way), or
  the direction to another mode (input ``target``, never normalised: λ = 1 reaches it). Inputs ``other.<n>``: earlier
  directions of the same centre, whose angles to this one the result records.
- ``scan``: a 1-D curve θ + λε (one segment per λ, so a killed unit resumes at the next point) or one shard of a 2-D
  grid θ + λ₁ε₁ + λ₂ε₂ (one segment per grid point), every point through ``workers.landscape.PointEvaluator``.
- ``hessian``: extreme eigenpairs (eigsh over Hessian–vector products), Hutchinson's trace and the SLQ density at a
  centre; the eigenvectors are committed as ``directions`` under keys ``<which><rank>.<tensor>`` (``LA0.fc.weight``).

The stage plans, per centre (the modes of ``from`` with the chosen seeds), the direction units, then in the same plan
(naming the drafts) the curves per (direction, scale) and the surface shards, and the Hessian unit.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import (
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
from .common import build_for, load_data
from .modes import seeds_of

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
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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
        from lowloss.workers.directions import (
            angle_degrees,
            direction_between,
            direction_norm,
            gaussian_direction,
            negative_gradient_direction,
            normalise_direction,
            parameter_names,
        )
        from lowloss.workers.landscape import split_batches

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
    )

    def resources(self, params: ScanParams) -> Resources:
        return self.default_resources

    def run(self, ctx, p: ScanParams) -> None:
        from lowloss.workers.landscape import (
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
        directions = [{k: v.to(ctx.device) for k, v in ctx.input_tensors(r).items()} for r in roles]
        evaluator = PointEvaluator(model, centre, directions, data, p.bn, p.eval_examples, p.eval_seed)
        random_loss = math.log(data.num_classes)
        if p.shape == "curve":
            if p.lambda_min is None or p.lambda_max is None or p.points is None:
                raise ValueError("curve: lambda_min, lambda_max and points are needed")
            lambdas = line_lambdas(p.lambda_min, p.lambda_max, p.points)
            for i in range(ctx.committed_segments(), len(lambdas)):  # one segment per point: resume at the next one
                row = {"index": i, "lambda": lambdas[i], **evaluator.evaluate([lambdas[i]]), "random_loss": random_loss}
                ctx.write_segment(i, {"curve": [row]})
                ctx.progress(i + 1, len(lambdas), train_loss=row["train_loss"])
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
        for k in range(ctx.committed_segments(), len(points)):
            i, j, x, y = points[k]
            row = {"i": i, "j": j, "lambda1": x, "lambda2": y, **evaluator.evaluate([x, y]), "random_loss": random_loss}
            ctx.write_segment(k, {"surface": [row]})
            ctx.progress(k + 1, len(points), train_loss=row["train_loss"])
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
        from lowloss.workers.hessian import (
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
        ctx.write_segment(0, tables)
        ctx.commit(result, outputs={"directions": _on_cpu(vectors)})


# ---------------------------------------------------------------------------------------------- the stage


class DirectionSpec(_Settings):
    """One entry of the stage's ``directions``: planned once per centre."""

    kind: Literal["gaussian", "to_mode", "gradient"] = "gaussian"
    seed: int = Field(default=0, description="gaussian: the seed of the draw")
    normalisation: Literal["norm", "laynorm", "filnorm", "none"] = "norm"
    one_d: Literal["normalise", "zero", "keep"] = "normalise"
    target_seed: int | None = Field(default=None, description="to_mode: the other mode (default: the next seed)")
    examples: int | None = Field(default=None, ge=1, description="gradient: the seeded subset of training examples")


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
    directions: list[DirectionSpec] = Field(default_factory=lambda: [DirectionSpec()], min_length=1)
    scales: list[float] = Field(default=[0.1, 1.0, 4.0, 10.0], description="curve scales s: λ on [−s, s] ([]: none)")
    points: int = Field(default=41, ge=3, le=10001, description="points per curve, both ends included")
    surface: SurfaceSpec | None = None
    hessian: HessianSettings | None = None
    bn: Literal["UpBN", "NoUpBN"] = "UpBN"
    eval_examples: int | None = Field(default=None, ge=1)
    eval_seed: int = 0


def _centres(table: LandscapeStage, modes: list) -> list:
    by_seed = {u.params["seed"]: u for u in modes}
    return [by_seed[s] for s in table.seeds] if table.seeds is not None else modes


def _target_seed(spec: DirectionSpec, seed: int, seeds: list[int]) -> int:
    if spec.target_seed is not None:
        return spec.target_seed
    return seeds[(seeds.index(seed) + 1) % len(seeds)]


class LandscapeStageKind(StageKind):
    name = "landscape"
    Table = LandscapeStage
    unit_kinds = ("scan", "direction", "hessian")  # scan first: its metrics, verdicts and figures summarise the stage
    input_output = "final"
    needs_input_stage = True

    def validate(self, table: LandscapeStage, study, stages):
        problems: list[tuple[str, Any, str]] = []
        all_seeds = seeds_of(stages, table.from_, study)
        if table.seeds is not None:
            bad = [s for s in table.seeds if s not in all_seeds]
            if bad or len(set(table.seeds)) != len(table.seeds):
                problems.append(("seeds", table.seeds, f"distinct seeds of stage {table.from_!r}: {all_seeds}"))
        centres = table.seeds if table.seeds is not None else all_seeds
        for n, spec in enumerate(table.directions):
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
        return problems

    def describe(self, table: LandscapeStage, study):
        kinds = ", ".join(d.kind for d in table.directions)
        lines = [
            f"centres: modes of stage {table.from_!r} (seeds {table.seeds if table.seeds is not None else 'all'});"
            f" directions: {kinds}; curves at s = {table.scales}, {table.points} points; bn = {table.bn}"
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
        return lines

    def plan(self, table: LandscapeStage, study, view) -> Plan:
        from lowloss.workers.landscape import Grid, curve_lambdas, grid_shards

        if view.is_open(table.from_):
            return Plan([], open=True, note=f"waiting for stage {table.from_}")
        modes = view.units(table.from_)
        seeds = [u.params["seed"] for u in modes]
        by_seed = {u.params["seed"]: u for u in modes}
        drafts: list[UnitDraft] = []
        scan: dict[str, Any] = dict(bn=table.bn, eval_examples=table.eval_examples, eval_seed=table.eval_seed)
        for centre in _centres(table, modes):
            seed = centre.params["seed"]
            dirs: list[UnitDraft] = []
            for n, spec in enumerate(table.directions):
                inputs: dict = {"centre": centre.id}
                inputs.update({f"other.{m}": Ref(d, "directions") for m, d in enumerate(dirs)})
                if spec.kind == "to_mode":
                    target = _target_seed(spec, seed, seeds)
                    inputs["target"] = by_seed[target].id
                    params = DirectionParams(direction="to_mode", others=len(dirs))
                    label = f"seed={seed} dir={n} to_mode={target}"
                elif spec.kind == "gradient":
                    params = DirectionParams(
                        direction="gradient",
                        normalisation=spec.normalisation,
                        one_d=spec.one_d,
                        examples=spec.examples,
                        others=len(dirs),
                    )
                    label = f"seed={seed} dir={n} gradient"
                else:
                    params = DirectionParams(
                        direction="gaussian",
                        seed=spec.seed,
                        normalisation=spec.normalisation,
                        one_d=spec.one_d,
                        others=len(dirs),
                    )
                    label = f"seed={seed} dir={n} gaussian({spec.seed})"
                dirs.append(UnitDraft("direction", params, inputs, label))
            drafts += dirs
            for n, (spec, d) in enumerate(zip(table.directions, dirs)):
                ranges = (
                    [(*W_BASIN_RANGE, w_basin_points(table.points))]
                    if spec.kind == "to_mode"
                    else [(curve_lambdas(s, table.points)[0], s, table.points) for s in table.scales]
                )
                for lo, hi, count in ranges:
                    drafts.append(
                        UnitDraft(
                            "scan",
                            ScanParams(shape="curve", lambda_min=lo, lambda_max=hi, points=count, **scan),
                            {"centre": centre.id, "direction": Ref(d, "directions")},
                            f"seed={seed} dir={n} λ∈[{lo:g},{hi:g}]",
                        )
                    )
            if table.surface is not None:
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
                dx, dy = (dirs[i] for i in sf.directions)
                for sh in shards:
                    box = (sh.x_start, sh.x_stop, sh.y_start, sh.y_stop)
                    drafts.append(
                        UnitDraft(
                            "scan",
                            ScanParams(shape="surface", grid=grid, shard=box, **scan),
                            {"centre": centre.id, "x": Ref(dx, "directions"), "y": Ref(dy, "directions")},
                            f"seed={seed} shard={list(box)}",
                        )
                    )
            if table.hessian is not None:
                drafts.append(
                    UnitDraft(
                        "hessian",
                        HessianParams(**table.hessian.model_dump()),
                        {"centre": centre.id},
                        f"seed={seed} hessian",
                    )
                )
        if len(drafts) > study.max_units:
            from .base import ExpansionTooLarge

            raise ExpansionTooLarge(f"stage {view.stage}", len(drafts), study.max_units)
        return Plan(drafts, note=f"{len(drafts)} units")
