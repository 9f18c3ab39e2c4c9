"""The one error of the edge: a bad spec or argument, naming the field, the bad value and what is allowed."""

from __future__ import annotations

import difflib
from typing import Any, Iterable


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # no value to show (a missing key, a whole table)


class SpecError(Exception):
    """A bad spec or argument: one line naming the field, the bad value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str, source: str = ""):
        self.field, self.value, self.allowed, self.source = field, value, allowed, source
        where = f"{source}: " if source else ""
        shown = "" if value is MISSING else f" = {show(value)}"
        super().__init__(f"{where}{field}{shown}: {allowed}")


class Shown(str):
    """A value already written as the spec shows it (``true``, ``'100'``)."""

    def __repr__(self) -> str:
        return str(self)


def show(value: Any) -> str:
    text = repr(value)
    limit = 400 if isinstance(value, str) else 80  # a path is shown whole
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggest(value: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed value, or nothing."""
    close = difflib.get_close_matches(value, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
