"""Loss landscapes at modes and at other points (Xu et al., "Visualizing and mining…"; Li et al.): directions
(``direction``, mined ``mining``), 1-D curves and 2-D surface shards (``scan``), Hessian eigenpairs, trace and
density (``hessian``), centres that are not modes (``centre``), the angles between random directions (``angles``),
planned per centre by the ``landscape`` stage."""

from .angles import AnglesUnit
from .centres import CentreUnit
from .directions import DirectionUnit
from .hessian import HessianUnit
from .mining import MiningUnit
from .scans import ScanParams, ScanUnit
from .settings import LandscapeStage
from .stage import LandscapeStageKind

KINDS = (DirectionUnit, ScanUnit, HessianUnit, MiningUnit, CentreUnit, AnglesUnit, LandscapeStageKind)

__all__ = [
    "KINDS",
    "AnglesUnit",
    "CentreUnit",
    "DirectionUnit",
    "HessianUnit",
    "LandscapeStage",
    "LandscapeStageKind",
    "MiningUnit",
    "ScanParams",
    "ScanUnit",
]
