"""The LLPF path loop of one unit: an M2M phase (LLPF Alg. 1, toward the destination mode D) or an M2O path (Alg. 2,
toward the origin), iteration by iteration through ``workers.llpf``, committed segment by segment.

Every iteration writes one row of the ``path`` table (batch and rolling loss, per-tensor distance to the destination
and variance, step length, learning rate); every ``eval_every`` iterations (and at the end) the full training set and
the test set are evaluated in eval mode — the validity verdict uses those honest losses, not the rolling mini-batch
loss that the stopping rule makes small by construction. Points (the model state) are stored every ``point_stride``
iterations.
"""

from __future__ import annotations

import contextlib
from typing import Any, Union

from ..base import UnitContext, point_key
from ..common.loop import Segment, TrainingState, run_segments
from ..common.running import build_for, load_data
from .params import M2MPhaseParams, M2OParams
from .result import commit_path

PathParams = Union[M2MPhaseParams, M2OParams]


class LLPFPath:
    """One unit's path: the model walking from its start, what it moves, and how each iteration is recorded."""

    def __init__(self, ctx: UnitContext, p: PathParams):
        from ...workers.training import set_precision

        self.ctx, self.p = ctx, p
        self.toward_origin = isinstance(p, M2OParams)
        self.amp = set_precision(ctx.device, p.precision)
        self.mode = ctx.input_params("p0")
        self.data = load_data(ctx, self.mode.data)
        self.model = build_for(self.mode.model, self.data, ctx.device)
        self.p0 = {k: v.to(ctx.device) for k, v in ctx.input_final_state("p0").items()}
        self.model.load_state_dict({k: v.to(ctx.device) for k, v in ctx.input_final_state("start").items()})
        self.names = list(self.model.state_dict())
        self.step_c = 0.0 if isinstance(p, M2OParams) else p.step_c
        self.moved, self.destination, self.optimizer, seed_parts = self._moves()
        self.cfg = self._config()
        self._prepare(seed_parts)

    def _moves(self) -> tuple[list[str], dict | None, Any, tuple]:
        """(the tensors Move moves, the destination D or None toward the origin, the optimizer, the batch seed)."""
        from ...workers.llpf import normalization_tensor_names, phase_optimizer, select_tensors

        p, model = self.p, self.model
        if isinstance(p, M2OParams):
            norm = set(normalization_tensor_names(model))
            moved = [n for n in self.names if n not in norm and model.state_dict()[n].is_floating_point()]
            opt_names = [n for n, _ in model.named_parameters()]  # the reference trains every parameter (norms too)
            optimizer = phase_optimizer(model, opt_names, p.lr, p.momentum, per_tensor_groups=True)
            return moved, None, optimizer, ("m2o", p.seed)
        moved = select_tensors(self.names, p.patterns)
        destination = {k: v.to(self.ctx.device) for k, v in self.ctx.input_final_state("dest").items()}
        opt_names = [n for n, _ in model.named_parameters()] if p.reference_quirks else moved
        optimizer = phase_optimizer(model, opt_names, p.lr, p.momentum)
        return moved, destination, optimizer, ("m2m", tuple(p.pair), p.phase)

    def _config(self) -> Any:
        """The phase's LLPF settings: explicit settings win; an unset one follows reference_quirks (the authors' code
        does both)."""
        from ...workers.llpf import LLPFConfig

        p = self.p
        layernorm = p.layernorm if isinstance(p, M2OParams) else None
        cfg = LLPFConfig(
            step_a=p.step_a,
            step_f=p.step_f,
            step_c=self.step_c,
            clamp=True,
            train_rounds=p.rounds,
            train_threshold=p.threshold,
            train_min_rounds=p.min_rounds,
            train_max_rounds=p.max_rounds,
            freeze_stats_outside_phase=p.freeze_stats_outside_phase if isinstance(p, M2MPhaseParams) else False,
            conformal_all_tensors=p.conformal_all_tensors if isinstance(p, M2OParams) else False,
            group_weight_bias=bool(p.group_weight_bias),
            compensate_layernorm=self.toward_origin and layernorm == "compensate",
        )
        if p.reference_quirks:
            cfg = cfg.with_reference_quirks(
                group_weight_bias=True if p.group_weight_bias is None else None,
                compensate_layernorm=self.toward_origin if layernorm is None else None,
            )
        return cfg

    def _prepare(self, seed_parts: tuple) -> None:
        import torch

        from ...workers.data import BatchStream, derive_seed
        from ...workers.evaluation import Evaluator
        from ...workers.llpf import phase_step_c_lengths, state_variances

        self.start_variances = state_variances(self.p0)
        self.stream = BatchStream(self.data, self.p.batch_size, seed=derive_seed(*seed_parts))
        state = self.model.state_dict()
        self.step_c_lengths = (
            phase_step_c_lengths(
                state,
                self.destination or {n: torch.zeros_like(t) for n, t in state.items()},
                self.moved,
                self.step_c,
                self.cfg.group_weight_bias,
            )
            if self.step_c > 0
            else None
        )
        extra = {"cursor": 0, "step_c_lengths": self.step_c_lengths}
        self.state = TrainingState(self.model, self.optimizer, self.ctx.device, extra)
        self.evaluator = Evaluator(self.model, self.data, "NoUpBN")  # the one protocol; the path's own BN statistics

    def _autocast(self) -> Any:
        return self.amp() if self.amp is not None else contextlib.nullcontext()  # autocast: matmuls/convs only

    def evaluate_row(self, row: dict) -> None:
        with self._autocast():
            measured = self.evaluator.measure()
        row["train_loss_full"], row["train_acc_full"] = measured["train"]
        row["test_loss"], row["test_acc"] = measured["test"]

    def next_batch(self) -> Any:
        batch = self.stream.batch(self.state.extra["cursor"])
        self.state.extra["cursor"] += 1
        return batch

    def first_row(self) -> dict:
        import torch

        from ...workers.llpf import layer_distances

        row0 = {
            "iteration": 0,
            "loss": None,
            "rolling_loss": None,
            "train_steps": 0,
            "step_length": 0.0,
            "lr": self.p.lr,
        }
        current = self.model.state_dict()
        destination = self.destination
        ref = destination if destination is not None else {n: torch.zeros_like(current[n]) for n in self.moved}
        for n in ref.keys() if destination is None else self.names:
            if current[n].is_floating_point():
                row0[f"dist.{n}"] = float(torch.linalg.vector_norm((current[n] - ref[n]).double()))
        if destination is not None and self.cfg.group_weight_bias:  # the distance of each Move unit (joined layers)
            layers = layer_distances(current, destination, self.moved, True)
            row0.update({f"dist_layer.{k}": v for k, v in layers.items()})
        self.evaluate_row(row0)
        return row0

    def iterate(self) -> dict:
        """One LLPF iteration (Alg. 1 l.5–17 or Alg. 2): the workers' measurements of it."""
        import torch.nn.functional as F

        from ...workers.llpf import llpf_m2m_iteration, llpf_m2o_iteration

        lengths = self.state.extra["step_c_lengths"]
        with self._autocast():
            if self.destination is None:
                return llpf_m2o_iteration(
                    self.model,
                    self.start_variances,
                    self.moved,
                    self.optimizer,
                    self.next_batch,
                    F.cross_entropy,
                    self.cfg,
                    lengths,
                )
            return llpf_m2m_iteration(
                self.model,
                self.destination,
                self.start_variances,
                self.moved,
                self.optimizer,
                self.next_batch,
                F.cross_entropy,
                self.cfg,
                lengths,
            )

    def row(self, it: int, m: dict) -> dict:
        """The ``path`` row of iteration ``it`` (0-based) from its measurements (and its evaluation when due)."""
        losses = m["losses"]
        row = {
            "iteration": it + 1,
            "loss": sum(losses) / len(losses) if losses else None,
            "rolling_loss": m["rolling_loss"],
            "train_steps": m["steps"],
            "step_length": max(m["step_lengths"].values()) if m["step_lengths"] else 0.0,
            "lr": self.p.lr if not self.toward_origin else None,
        }
        row.update({f"dist.{n}": v for n, v in m["distances"].items()})
        row.update({f"dist_layer.{k}": v for k, v in m.get("layer_distances", {}).items()})
        row.update({f"var.{n}": v for n, v in m["variances"].items() if n in self.start_variances})
        if self.toward_origin:
            row.update({f"lr.{n}": v for n, v in m["lrs"].items()})
        if (it + 1) % self.p.eval_every == 0 or it + 1 == self.p.iterations:
            self.evaluate_row(row)
        else:
            row.update(train_loss_full=None, train_acc_full=None, test_loss=None, test_acc=None)
        return row

    def segment(self, start: int, end: int) -> Segment:
        rows = [self.first_row()] if start == 0 else []
        points: dict = {}
        stride, total = self.p.point_stride, self.p.iterations
        for it in range(start, end):
            rows.append(self.row(it, self.iterate()))
            if stride and ((it + 1) % stride == 0 or it + 1 == total):
                points.update({point_key(n, it + 1): t.detach().clone() for n, t in self.model.state_dict().items()})
        return Segment({"path": rows}, points, info={"rolling_loss": rows[-1]["rolling_loss"] or 0.0})

    def destination_test_loss(self) -> float | None:
        """D's own test loss (where the path converges to), measured on the last phase of an M2M path."""
        from ...workers.evaluation import Evaluator

        if self.destination is None or not isinstance(self.p, M2MPhaseParams) or self.p.phase != self.p.phases:
            return None
        dest_model = build_for(self.mode.model, self.data, self.ctx.device)
        dest_model.load_state_dict(self.destination)
        return Evaluator(dest_model, self.data, "NoUpBN", splits=("test",)).measure()["test"][0]


def run_path(ctx: UnitContext, p: PathParams) -> None:
    """An LLPF path unit from its start (or its checkpoint) to its commit."""
    path = LLPFPath(ctx, p)
    run_segments(ctx, p.iterations, p.segment_iterations, path.state, path.segment, unit="iterations")
    commit_path(
        ctx,
        p,
        path.model,
        path.moved,
        path.destination,
        path.start_variances,
        path.destination_test_loss(),
        path.cfg.group_weight_bias,
    )
