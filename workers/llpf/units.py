"""The units Move works on: single tensors, or a layer's weight and bias joined (``weight_bias_groups``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch


def weight_bias_groups(names: Iterable[str]) -> list[tuple[str, ...]]:
    """LLPF Alg. 1 l.12–16 (Move) on whole layers, as the authors' LeNet5 configurations run it (DFL_torch
    ``merge_bias_with_weights = True``): the units Move works on.

    ``X.weight`` and ``X.bias``, when both are in ``names``, form one unit ``("X.weight", "X.bias")``; every other
    name is a unit of its own. Units come in the order of ``names`` (a pair at its weight's place). Choice: the pair is
    found by the last name component (``weight``/``bias`` of the same module), not by the reference's substring replace
    (``'weight' in name``), which would also pair e.g. ``weight_ih``/``bias_ih`` — equal on every model here.
    """
    names = list(names)
    present = set(names)
    taken: set[str] = set()
    units: list[tuple[str, ...]] = []
    for n in names:
        if n in taken:
            continue
        head, _, last = n.rpartition(".")
        partner = f"{head}.bias" if head else "bias"
        if last == "weight" and partner in present and partner not in taken:
            units.append((n, partner))
            taken.update((n, partner))
        elif last == "bias" and (f"{head}.weight" if head else "weight") in present:
            continue  # joined to its weight when the weight's turn comes
        else:
            units.append((n,))
            taken.add(n)
    return units


def group_label(unit: Sequence[str]) -> str:
    """The name of a Move unit: the module (``conv1``) for a joined weight and bias, else the tensor's name."""
    if len(unit) == 2:
        return unit[0].rpartition(".")[0] or "<root>"
    return unit[0]


def _move_units(
    state: Mapping[str, torch.Tensor], names: Iterable[str], group_weight_bias: bool
) -> list[tuple[str, ...]]:
    floating = [n for n in names if state[n].is_floating_point()]
    return weight_bias_groups(floating) if group_weight_bias else [(n,) for n in floating]
