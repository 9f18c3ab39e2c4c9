"""Unit kind ``mining``: a direction mined at a centre by Xu et al.'s Algo. 1 (w-peak) or Algo. 2 (vvv-basin), one
segment per epoch, committed as ``directions``; with input ``eigen`` it records |cos| against the Hessian's
eigenvectors (Fig. 9)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..base import Metric, Resources, UnitContext, UnitKind, UnitParams
from ..common.loop import Segment, run_segments
from ..common.running import build_for
from .inputs import canonical_without_none, centre_state, model_and_data, on_cpu


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
        return canonical_without_none(self)


class MinedTensors:
    """The resumable state of a mining run (``jobs.common.loop.Resumable``): ε (Algo. 1) or φ (Algo. 2)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def checkpoint(self) -> tuple[dict, dict]:
        return {k: v.detach().clone() for k, v in self.tensors.items()}, {}

    def restore(self, tensors: dict, meta: dict) -> None:
        self.tensors = {k: v.to(next(iter(self.tensors.values())).device) for k, v in tensors.items()}


class Mining:
    """One mining run: the centre, the batch stream, and ε (w-peak) or φ (vvv-basin) being mined."""

    def __init__(self, ctx: UnitContext, p: MiningParams):
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.landscape.directions import parameter_names
        from ...workers.landscape.mining import fresh_initialisation, perturbed_initialisation

        self.ctx, self.p = ctx, p
        centre_params = ctx.input_params("centre")
        self.model, data = model_and_data(ctx, "centre")
        self.centre = centre_state(ctx, "centre")
        self.names = parameter_names(self.model)
        self.stream = BatchStream(data, p.batch_size, derive_seed("mining", p.algorithm, p.seed), augment=False)
        self.spe = self.stream.steps_per_epoch
        if p.algorithm == "w_peak":
            self.state = MinedTensors({n: torch.zeros_like(self.centre[n]) for n in self.names})
            return
        if p.phi_init == "perturbed":
            phi0 = perturbed_initialisation(self.centre, self.names, p.seed)
        else:
            phi0 = fresh_initialisation(lambda: build_for(centre_params.model, data, ctx.device), p.seed)
        self.state = MinedTensors({n: phi0[n].to(ctx.device) for n in self.names})

    def segment(self, start: int, end: int) -> Segment:
        """Epochs [start, end) of Algo. 1 or 2; rows: λ and the batch loss per step."""
        from ...workers.landscape.mining import mine_vvv_basin, mine_w_peak

        p, rows = self.p, []

        def on_step(step: int, lam: float, loss: float) -> None:
            rows.append({"step": step, "epoch": step // self.spe, "lambda": lam, "loss": loss})

        for epoch in range(start, end):
            first, stop = epoch * self.spe, (epoch + 1) * self.spe
            if p.algorithm == "w_peak":
                self.state.tensors = mine_w_peak(
                    self.model,
                    self.centre,
                    self.stream,
                    self.names,
                    p.epochs,
                    p.lr,
                    p.seed,
                    self.state.tensors,
                    first,
                    stop,
                    on_step,
                )
            else:
                self.state.tensors = mine_vvv_basin(
                    self.model,
                    self.centre,
                    self.state.tensors,
                    self.stream,
                    self.names,
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

    def direction(self) -> dict:
        """The mined direction ε, on the CPU."""
        from ...workers.landscape.mining import vvv_basin_direction

        tensors = self.state.tensors
        return on_cpu(tensors if self.p.algorithm == "w_peak" else vvv_basin_direction(tensors, self.centre))


def cosines(ctx: UnitContext, eps: dict) -> list[dict]:
    """|cos| of ε against each eigenvector of input ``eigen`` (P.E. first, then N.E., by rank)."""
    from ...workers.landscape.directions import cosine

    vectors = ctx.input_tensors("eigen")
    eigen = ctx.input_result("eigen")
    heads = sorted({k.split(".", 1)[0] for k in vectors}, key=lambda h: (h[:2] != "LA", int(h[2:])))
    rows = []
    for head in heads:
        which, rank = head[:2], int(head[2:])
        v = {k[len(head) + 1 :]: t for k, t in vectors.items() if k.startswith(head + ".")}
        values = eigen.get(f"eigenvalues_{which}") or []
        eigenvalue = float(values[rank]) if rank < len(values) else float("nan")
        rows.append({"which": which, "rank": rank, "eigenvalue": eigenvalue, "abs_cos": abs(cosine(eps, v))})
    return rows


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

    def run(self, ctx: UnitContext, p: MiningParams) -> None:
        from ...workers.landscape.directions import direction_norm

        mining = Mining(ctx, p)
        run_segments(ctx, p.epochs, 1, mining.state, mining.segment, unit="epochs")
        eps = mining.direction()
        rows = ctx.rows("mining").to_pylist()
        last = [r["loss"] for r in rows if r["epoch"] == p.epochs - 1]
        result: dict[str, Any] = {
            "algorithm": p.algorithm,
            "norm": direction_norm(eps),
            "final_loss": sum(last) / len(last),
            "steps": len(rows),
        }
        if p.eigenvectors:
            cos_rows = cosines(ctx, eps)
            ctx.write_segment(p.epochs, {"cosines": cos_rows}, stop=False)  # the commit follows
            result["abs_cos"] = {f"{r['which']}{r['rank']}": r["abs_cos"] for r in cos_rows}
            result["max_abs_cos"] = max(r["abs_cos"] for r in cos_rows)
        ctx.commit(result, outputs={"directions": eps})
