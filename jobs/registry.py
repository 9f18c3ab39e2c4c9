"""The kind registry: every unit kind and stage kind by its name, and where it came from.

Built-in kinds are registered by ``lowloss.jobs``; third-party kinds come through the ``lowloss.kinds`` entry-point
group of an installed package (an entry point names a kind, a kind class, or a sequence of them), or — for
development — through modules named in ``LOWLOSS_PLUGINS`` (comma-separated import paths) that call
``register_kind``. A second kind of a name already taken is refused, naming both origins; an unknown name is an
``UnknownKind`` error listing the known ones.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Iterable, TypeVar, Union

from .base import StageKind, UnitKind

BUILT_IN = "built in"  # how lowloss.jobs registers its own kinds
ENTRY_POINT_GROUP = "lowloss.kinds"
PLUGINS_VARIABLE = "LOWLOSS_PLUGINS"

AnyKind = Union[UnitKind, StageKind]
K = TypeVar("K", UnitKind, StageKind)


class KindError(Exception):
    """A kind that cannot be registered or found."""


class DuplicateKind(KindError):
    """A second kind of a name already taken."""


class UnknownKind(KindError, KeyError):
    """No kind of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Registered:
    kind: Any
    origin: str
    builtin: bool


def _origin_of(kind: AnyKind, how: str) -> str:
    cls = type(kind)
    return f"{cls.__module__}.{cls.__qualname__} ({how})"


class KindRegistry:
    """Unit kinds and stage kinds by name, each registered once."""

    def __init__(self) -> None:
        self._units: dict[str, Registered] = {}
        self._stages: dict[str, Registered] = {}

    def register(self, kind: Any, how: str) -> Any:
        """Register a unit kind or a stage kind (an instance, or a class to instantiate); returns the instance."""
        if isinstance(kind, type) and issubclass(kind, (UnitKind, StageKind)):
            kind = kind()
        if not isinstance(kind, (UnitKind, StageKind)):
            raise KindError(f"{kind!r} ({how}) is neither a UnitKind nor a StageKind")
        table, what = (self._stages, "stage kind") if isinstance(kind, StageKind) else (self._units, "unit kind")
        name = getattr(kind, "name", None)
        if not isinstance(name, str) or not name:
            raise KindError(f"{_origin_of(kind, how)} has no name (set the class attribute `name`)")
        existing = table.get(name)
        if existing is not None:
            if type(existing.kind) is type(kind):
                return existing.kind  # the same class reached twice (e.g. by an entry point and LOWLOSS_PLUGINS)
            raise DuplicateKind(
                f"{what} {name!r} is registered twice: by {existing.origin} and by {_origin_of(kind, how)}; "
                "a name names one kind — rename one of them"
            )
        table[name] = Registered(kind, _origin_of(kind, how), how == BUILT_IN)
        return kind

    def unit(self, name: str) -> UnitKind:
        return self._get(self._units, name, "unit kind")

    def stage(self, name: str) -> StageKind:
        return self._get(self._stages, name, "stage kind")

    @staticmethod
    def _get(table: dict[str, Registered], name: str, what: str) -> Any:
        found = table.get(name)
        if found is None:
            raise UnknownKind(
                f"no {what} {name!r} is registered; known: {', '.join(sorted(table))} (a plugin's kinds come from "
                f"an installed package's {ENTRY_POINT_GROUP!r} entry points or from {PLUGINS_VARIABLE})"
            )
        return found.kind

    def units(self) -> dict[str, UnitKind]:
        return {name: r.kind for name, r in sorted(self._units.items())}

    def stages(self, builtin_only: bool = False) -> dict[str, StageKind]:
        return {name: r.kind for name, r in sorted(self._stages.items()) if r.builtin or not builtin_only}

    def origin(self, name: str) -> str:
        """Where a unit kind (or, failing that, a stage kind) of this name came from."""
        found = self._units.get(name) or self._stages.get(name)
        if found is None:
            raise UnknownKind(f"no kind {name!r} is registered")
        return found.origin

    # ------------------------------------------------------------------ loading
    def load_entry_points(self) -> None:
        """The kinds of every installed package's ``lowloss.kinds`` entry points."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            how = f"entry point {ep.name!r} = {ep.value!r}" + (f" of {ep.dist.name}" if ep.dist else "")
            try:
                found = ep.load()
            except Exception as exc:
                raise KindError(f"{how} could not be loaded: {type(exc).__name__}: {exc}") from exc
            for kind in _kinds_in(found, how):
                self.register(kind, how)

    def load_modules(self, names: Iterable[str]) -> None:
        """Import modules that register their kinds themselves (``LOWLOSS_PLUGINS``)."""
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise KindError(f"{PLUGINS_VARIABLE} names module {name!r}, which cannot be imported: {exc}") from exc


def _kinds_in(found: Any, how: str) -> list:
    """The kinds an entry point names: a kind, a kind class, or a sequence of them."""
    if isinstance(found, (UnitKind, StageKind)) or (
        isinstance(found, type) and issubclass(found, (UnitKind, StageKind))
    ):
        return [found]
    if isinstance(found, (list, tuple)):
        return list(found)
    raise KindError(f"{how} names {found!r}: a unit kind, a stage kind, or a list of them is needed")


REGISTRY = KindRegistry()


def register_kind(kind: K) -> K:
    """Register a unit kind or a stage kind (plugin modules named in ``LOWLOSS_PLUGINS`` call this)."""
    return REGISTRY.register(kind, "register_kind")


def plugin_modules() -> list[str]:
    return [s.strip() for s in os.environ.get(PLUGINS_VARIABLE, "").split(",") if s.strip()]
