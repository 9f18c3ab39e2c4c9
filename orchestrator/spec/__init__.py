"""The edge: a study spec (TOML) parsed and validated once into typed, frozen objects (``study``), its sections
(``sections``), its ``[sweep]`` (``sweep``), and the one-line errors of bad input (``errors``, ``schema``)."""

from .errors import MISSING, SpecError, suggest
from .sections import DataSection, RunSection
from .study import Study, Variant, check_data, load_spec, parse_spec

__all__ = [
    "MISSING",
    "DataSection",
    "RunSection",
    "SpecError",
    "Study",
    "Variant",
    "check_data",
    "load_spec",
    "parse_spec",
    "suggest",
]
