"""What the landscape units read of their inputs: the centre's model and data, states and directions on the unit's
device."""

from __future__ import annotations

from typing import Any

from ..base import UnitContext, UnitParams
from ..common.running import build_for, load_data


def canonical_without_none(params: UnitParams) -> dict:
    return params.model_dump(mode="json", by_alias=True, exclude_none=True)


def model_and_data(ctx: UnitContext, role: str) -> tuple[Any, Any]:
    """The model (built on the unit's device) and dataset of the unit behind input ``role`` (a mode or a path)."""
    p = ctx.input_params(role)
    if not (hasattr(p, "model") and hasattr(p, "data")):
        raise ValueError(
            f"input {role}: a {type(p).__name__} names no model and data; a centre must be a mode or a "
            f"point of a unit that trains a model"
        )
    data = load_data(ctx, p.data)
    return build_for(p.model, data, ctx.device), data


def centre_state(ctx: UnitContext, role: str) -> dict:
    return {k: v.to(ctx.device) for k, v in ctx.input_final_state(role).items()}


def on_cpu(tensors: dict) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def direction_input(ctx: UnitContext, role: str, prefix: str | None = None) -> dict:
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
