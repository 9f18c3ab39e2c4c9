"""What the science floor offers the spec's edge checks: the model and dataset names, whether a model takes a
dataset's inputs, and the ready-made recipes shipped beside each method's kinds."""

from __future__ import annotations

import re
import warnings
from importlib.resources import files
from pathlib import Path

from .base import DataParams

RECIPE_PACKAGES = ("interpolate", "llpf", "autoneb", "compare", "landscape")  # methods shipping recipes/*.toml


def model_names() -> list[str]:
    from ..workers.models import model_names as names

    return names()


def dataset_names() -> tuple[str, ...]:
    from ..workers.data import DATASETS

    return DATASETS


def embedded_dataset_names() -> tuple[str, ...]:
    """The datasets shipped inside lowloss (no data root)."""
    from ..workers.data import EMBEDDED_DATASETS

    return tuple(EMBEDDED_DATASETS)


def input_shape(data: DataParams) -> tuple[int, int, int]:
    """(channels, image size, classes) of a dataset's inputs."""
    from ..workers.data import DATASET_SHAPES

    channels, size, classes = DATASET_SHAPES[data.dataset]
    return channels, data.image_size or size, classes


def model_input_problem(model_name: str, data: DataParams) -> str | None:
    """Why this model cannot take this dataset's inputs (a forward pass of one example), or None."""
    import torch

    from ..workers.models import build_model

    channels, size, classes = input_shape(data)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = build_model(model_name, classes, channels, size).eval()
            model(torch.zeros(1, channels, size, size))
    except Exception as exc:
        return (
            f"does not fit {data.dataset} inputs ({channels}×{size}×{size}): {str(exc).splitlines()[0]}; "
            f"pick a model for that size (small_cnn/mlp: any; lenet5: 28×28; *_cifar: 32×32; resnet18: ImageNet)"
        )
    return None


def recipes() -> dict[str, Path]:
    """The ready-made spec files by name (the papers' appendix tables and the embedded default): the ``recipes/``
    folder beside each method's kinds, shipped in the wheel."""
    found: dict[str, Path] = {}
    for package in RECIPE_PACKAGES:
        folder = Path(str(files(f"{__package__}.{package}"))) / "recipes"
        for path in sorted(folder.glob("*.toml")):
            if path.stem in found:
                raise RuntimeError(f"recipe {path.stem!r} is shipped twice: {found[path.stem]} and {path}")
            found[path.stem] = path
    return dict(sorted(found.items()))


def recipe_description(text: str, limit: int = 220) -> str:
    """A recipe's ``# source:`` line, continued over the next comment lines while its sentence runs on, without paths
    into the papers' folder, cut at a word near ``limit`` characters."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# source:")), None)
    if start is None:
        return ""
    parts = [lines[start][len("# source:") :].strip()]
    for line in lines[start + 1 :]:
        body = line[2:].strip() if line.startswith("# ") else ""
        runs_on = parts[-1].endswith((",", "(", "—", "-")) or body[:1].islower() or body[:1] == "("
        if not body or parts[-1].endswith(".") or not runs_on:
            break
        parts.append(body)
    desc = re.sub(r"\s*\([^)]*papers/[^)]*\)", "", " ".join(parts)).rstrip(".")
    return desc if len(desc) <= limit else desc[:limit].rsplit(" ", 1)[0] + " …"
