"""Distances to the destination (or the origin) per tensor and per Move unit (LLPF §4 criterion 2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from .units import _move_units, group_label


@torch.no_grad()
def layer_distances(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor] | None,
    names: Iterable[str],
    group_weight_bias: bool,
    keyed_by_unit: bool = False,
) -> dict:
    """LLPF §4 criterion 2 (Fig. 2 second row) per Move unit: ``‖P − D‖`` of each joined weight and bias (keyed by
    the module name, ``group_label``) or single tensor (keyed by its name); ``destination=None`` is the origin.
    ``keyed_by_unit=True`` keys by the unit's tuple of names instead. One host synchronisation."""
    units = _move_units(state, names, group_weight_bias)
    if not units:
        return {}
    norms = []
    for unit in units:
        sq = torch.zeros((), dtype=torch.float64, device=state[unit[0]].device)
        for n in unit:
            t = state[n]
            diff = t if destination is None else t - destination[n].to(t.device)
            sq = sq + diff.to(torch.float64).square().sum()
        norms.append(sq.sqrt())
    keys = units if keyed_by_unit else [group_label(u) for u in units]
    return dict(zip(keys, torch.stack(norms).tolist()))


@torch.no_grad()
def tensor_distances(
    state: Mapping[str, torch.Tensor],
    destination: Mapping[str, torch.Tensor] | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """LLPF §4 criterion 2 (Fig. 2 second row): per-tensor L2 distance ``‖P − D‖``.

    ``destination=None`` means the origin (Fig. 3, Algorithm 2). Integer tensors are skipped. One host
    synchronisation for all tensors."""
    names = [n for n in (state.keys() if names is None else names) if state[n].is_floating_point()]
    if not names:
        return {}
    norms = []
    for n in names:
        t = state[n]
        diff = t if destination is None else t - destination[n].to(t.device)
        norms.append(torch.linalg.vector_norm(diff.to(torch.float64)))
    return dict(zip(names, torch.stack(norms).tolist()))
