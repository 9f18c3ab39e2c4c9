"""An LLPF path unit's result: the path's losses from its committed rows, and on the last phase of an M2M path its
verdict (LLPF §4's three criteria: max full-set train loss ≤ L_thres, the final point near D, the test loss kept)."""

from __future__ import annotations

from typing import Any, Union

from ..base import UnitContext
from .params import M2MPhaseParams, M2OParams

VERDICT_KEYS = (
    "valid",
    "train_loss_below_threshold",
    "distance_converged",
    "test_loss_converged",
    "farthest_tensor",
    "test_loss_gap",
    "test_loss_change",
    "test_loss_rule",
    "final_minus_destination_test_loss",
)


def commit_path(
    ctx: UnitContext,
    p: Union[M2MPhaseParams, M2OParams],
    model: Any,
    moved: list[str],
    destination: dict | None,
    start_variances: dict,
    destination_test_loss: float | None,
    group_weight_bias: bool,
) -> None:
    """Commit the unit's result, read back from its committed ``path`` rows, and its final state."""
    rows = ctx.rows("path").to_pylist()
    evals = [r for r in rows if r.get("train_loss_full") is not None]
    result = _common(p, rows, evals)
    if isinstance(p, M2OParams):
        result.update(_toward_origin(p, rows, evals, moved))
    else:
        result.update(_phase(ctx, p, evals))
        if p.phase == p.phases:  # the path's summary and verdict on its last phase
            assert destination is not None
            result.update(
                _verdict(
                    p, model, result, evals[-1], destination, start_variances, destination_test_loss, group_weight_bias
                )
            )
        else:  # a phase's own end point is not the path's: keep the path metrics of the summary to last phases
            result["phase_final_test_loss"] = result.pop("final_test_loss")
            result["phase_final_test_acc"] = result.pop("final_test_acc")
    ctx.commit(result, final=model.state_dict())


def _common(p: Union[M2MPhaseParams, M2OParams], rows: list[dict], evals: list[dict]) -> dict:
    last = evals[-1]
    return {
        "iterations": p.iterations,
        "max_train_loss": max(r["train_loss_full"] for r in evals),
        "max_rolling_loss": max((r["rolling_loss"] for r in rows if r["rolling_loss"] is not None), default=None),
        "final_train_loss": last["train_loss_full"],
        "final_test_loss": last["test_loss"],
        "final_test_acc": last["test_acc"],
        "train_steps": sum(r["train_steps"] for r in rows),
    }


def _toward_origin(p: M2OParams, rows: list[dict], evals: list[dict], moved: list[str]) -> dict:
    start_norm = sum(rows[0][f"dist.{n}"] ** 2 for n in moved if rows[0].get(f"dist.{n}") is not None) ** 0.5
    final_norm = sum(rows[-1][f"dist.{n}"] ** 2 for n in moved if rows[-1].get(f"dist.{n}") is not None) ** 0.5
    max_train = max(r["train_loss_full"] for r in evals)
    return dict(
        seed=p.seed,
        start_test_loss=evals[0]["test_loss"],
        start_test_acc=evals[0]["test_acc"],
        best_test_acc=max(r["test_acc"] for r in evals),
        path_max_train_loss=max_train,
        final_norm_ratio=final_norm / start_norm if start_norm else None,
        train_loss_below_threshold=bool(max_train <= p.l_thres),
    )


def _phase(ctx: UnitContext, p: M2MPhaseParams, evals: list[dict]) -> dict:
    """The path so far: its max train loss and its start's test loss and accuracy, carried from phase to phase."""
    max_train = max(r["train_loss_full"] for r in evals)
    if p.phase == 1:
        path_max, start_loss, start_acc = max_train, evals[0]["test_loss"], evals[0]["test_acc"]
    else:
        prev = ctx.input_result("start")["path_so_far"]
        path_max = max(prev["max_train_loss"], max_train)
        start_loss, start_acc = prev["start_test_loss"], prev["start_test_acc"]
    return dict(
        pair=list(p.pair),
        phase=p.phase,
        phases=p.phases,
        path_so_far={"max_train_loss": path_max, "start_test_loss": start_loss, "start_test_acc": start_acc},
    )


def _verdict(
    p: M2MPhaseParams,
    model: Any,
    result: dict,
    last: dict,
    destination: dict,
    start_variances: dict,
    destination_test_loss: float | None,
    group_weight_bias: bool,
) -> dict:
    """LLPF §4's verdict on the final point. Distances per Move unit (joined weight+bias with grouping), to D itself
    and to D projected on P0's variance sphere (the point a converged path reaches; Eq. 4's "minor deviations"). The
    verdict's distances are the parameters' (weights, biases, BatchNorm affine): running statistics follow the
    activations in train mode and are recorded in the rows, but are no coordinates of the path."""
    from ...workers.llpf import destination_on_start_sphere, layer_distances, path_validity

    params = [n for n, _ in model.named_parameters()]
    state = model.state_dict()
    raw = layer_distances(state, destination, params, group_weight_bias)
    projected = layer_distances(
        state, destination_on_start_sphere(destination, start_variances), params, group_weight_bias
    )
    final_dist = projected if p.distance_to == "destination_on_start_sphere" else raw
    path = result["path_so_far"]
    verdict = path_validity(
        path["max_train_loss"],
        p.l_thres,
        final_dist,
        p.distance_threshold,
        last["test_loss"],
        path["start_test_loss"],
        p.test_loss_tolerance,
        p.test_loss_rule,
        destination_test_loss,
    )
    return {
        **{k: verdict[k] for k in VERDICT_KEYS},
        "path_max_train_loss": path["max_train_loss"],
        "start_test_loss": path["start_test_loss"],
        "start_test_acc": path["start_test_acc"],
        "max_final_distance": verdict["max_final_distance"],
        "distance_to": p.distance_to,
        "max_final_distance_raw": max(raw.values(), default=0.0),
        "max_final_distance_projected": max(projected.values(), default=0.0),
        "destination_test_loss": destination_test_loss,
        "verdict_failures": verdict["failures"],
    }
