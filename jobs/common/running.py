"""What the kinds share when they run: the unit's data and model on its device, and how a path or scan's points go
into segments."""

from __future__ import annotations

from typing import Any

from ..base import DataParams, ModelParams, UnitContext


def point_chunks(n: int, k: int | None) -> list[list[int]]:
    """The point indices 0..n−1 in the chunks a path or scan unit evaluates (and commits as one segment) together:
    one by one, or K at a time (``vectorize = K``)."""
    size = k if k is not None and k > 1 else 1
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def load_data(ctx: UnitContext, data: DataParams) -> Any:
    """The unit's dataset, on its device: kept by the process for the next unit on the same data (a warm worker
    loads each dataset once; ``workers.data.DatasetCache``). Image decoding uses the unit's allocated CPUs."""
    from ...workers.data import cached_dataset, process_cache

    dataset = cached_dataset(data.dataset, ctx.data_root, data.image_size, ctx.device)
    if process_cache().last_hit:
        ctx.log(f"dataset {data.dataset}: kept in memory from an earlier unit of this process")
    if hasattr(dataset, "decode_threads"):
        dataset.decode_threads = max(1, ctx.cpus)
    return dataset


def build_for(model: ModelParams, dataset: Any, device: Any) -> Any:
    """The unit's model for this dataset, on its device."""
    from ...workers.models import build_model

    return build_model(model.name, dataset.num_classes, dataset.in_channels, dataset.image_size).to(device)


def mode_data_problem(data: DataParams, data_root: str | None) -> str | None:
    from ...workers.data import check_data_root

    return check_data_root(data.dataset, data_root)
