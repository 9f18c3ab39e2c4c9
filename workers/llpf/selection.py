"""The tensors a phase moves (LLPF Table 1 / LW Table 4 "Applied layers"): name patterns (``select_tensors``)
and the tensors of normalization layers, found by module type."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from torch import nn


def _expand_braces(pattern: str) -> list[str]:
    """``fc.{weight,bias}`` → ``fc.weight``, ``fc.bias``; ``+`` separates alternatives too (the papers write
    ``bn1.{weight+bias}``). Nested and repeated groups expand recursively."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    out: list[str] = []
    for alt in re.split(r"[,+]", m.group(1)):
        out.extend(_expand_braces(head + alt.strip() + tail))
    return out


def _match_components(pat: Sequence[str], name: Sequence[str]) -> bool:
    """True when ``pat`` matches a leading run of whole components of ``name`` (a module prefix or the full name).

    A component is matched with ``fnmatch`` (``*``, ``?``, ``[..]`` never cross a dot); a ``**`` component matches
    zero or more whole components.
    """
    if not pat:
        return True  # the pattern named a module prefix; everything below it matches
    head, rest = pat[0], pat[1:]
    if head == "**":
        return any(_match_components(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    return fnmatch.fnmatchcase(name[0], head) and _match_components(rest, name[1:])


def select_tensors(names: Iterable[str], patterns: str | Iterable[str]) -> list[str]:
    """LLPF Table 1 / LW Table 4 "Applied layers": the tensor names a phase moves, from name patterns.

    Patterns use PyTorch naming and match WHOLE dot-separated components, anchored at the start of the name:

    - ``conv1.weight`` matches exactly that tensor; a module path matches every tensor under it
      (``classifier.norm`` → ``classifier.norm.weight``, ``classifier.norm.bias``; ``conv1`` never matches
      ``layer1.0.conv1.weight``);
    - ``*``/``?``/``[..]`` glob inside one component: ``layer1.*``, ``bn*.weight``; ``blocks.1.*`` never matches
      ``blocks.10.x``; ``**`` spans any number of components (``**.bias`` = every bias);
    - braces expand, with ``,`` or ``+`` between alternatives: ``fc.{weight,bias}``, ``bn1.{weight+bias}``,
      ``classifier.{positional_emb+attention_pool+norm+fc}``;
    - ``all``, ``*`` or ``**`` alone select every name;
    - a leading ``!`` removes the names it matches from what the earlier patterns selected (``["all", "!bn1"]``).

    Returns the selected names in the order of ``names``. Raises ``ValueError`` naming the pattern when a pattern
    (or a negated one) matches no name at all — a typo must never silently shrink a phase.
    """
    names = list(names)
    if isinstance(patterns, str):
        patterns = [patterns]
    split_names = [n.split(".") for n in names]
    selected: set[str] = set()
    for raw in patterns:
        text = raw.strip()
        negate = text.startswith("!")
        if negate:
            text = text[1:].strip()
        if not text:
            raise ValueError(f"empty tensor pattern {raw!r}")
        if text in ("all", "*", "**"):
            hits = set(names)
        else:
            hits = set()
            for alt in _expand_braces(text):
                comps = alt.split(".")
                if any(c == "" for c in comps):
                    raise ValueError(f"tensor pattern {raw!r} has an empty component")
                hits.update(n for n, parts in zip(names, split_names) if _match_components(comps, parts))
        if not hits:
            sample = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValueError(f"tensor pattern {raw!r} matches no tensor (names look like: {sample})")
        selected = selected - hits if negate else selected | hits
    return [n for n in names if n in selected]


def normalization_tensor_names(model: nn.Module) -> list[str]:
    """LLPF §3.2 "normalization layers should be excluded from Algorithm 2": every parameter and buffer name of the
    model's normalization modules (BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, LocalResponseNorm, RMSNorm).

    Found by module type, not by name, so ``norm1``/``pre_norm``/``bn``/``downsample.1`` are all caught.
    """
    norm_types: tuple[type, ...] = (
        nn.modules.batchnorm._BatchNorm,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.modules.instancenorm._InstanceNorm,
        nn.LocalResponseNorm,
    )
    if hasattr(nn, "RMSNorm"):
        norm_types = norm_types + (nn.RMSNorm,)
    out: list[str] = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, norm_types) and isinstance(mod, nn.Module):
            prefix = f"{mod_name}." if mod_name else ""
            out.extend(prefix + n for n, _ in mod.named_parameters(recurse=False))
            out.extend(prefix + n for n, _ in mod.named_buffers(recurse=False))
    return out


def layernorm_tensor_names(model: nn.Module) -> list[str]:
    """LLPF Alg. 2 / DFL_torch's LayerNorm detector: the parameter names of the model's ``nn.LayerNorm`` modules (the
    tensors ``compensating_move`` moves away from the origin). BatchNorm is not among them: the reference leaves it
    where it is."""
    out: list[str] = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            prefix = f"{mod_name}." if mod_name else ""
            out.extend(prefix + n for n, _ in mod.named_parameters(recurse=False))
    return out
