"""The study store: the only owner of the store's layout. ``layout`` names every path, ``records`` the typed records
and their JSON, ``atomic`` the writes (write, fsync, rename, fsync the directory; never through a link), ``locks`` the
coordinator's and the units' locks (``leases`` where flock does not reach across nodes), ``reading`` the checked reads
of committed content, ``writing`` a unit's segments, checkpoints and commit, ``attempts`` the attempt records,
``verification`` the integrity check, ``store`` the study's own files and the ``Store`` that holds the parts
together."""

from .atomic import StoreFullError, StoreReadOnlyError, SymlinkRefused
from .errors import DamagedError, StoreError
from .layout import FINAL, FORMAT, RESULT, output_file, segment_name, split_ref, unit_id
from .leases import LeaseLost
from .locks import UnitHold
from .records import (
    AttemptRecord,
    AttemptState,
    ClosedBy,
    CommitRecord,
    CoordinatorRecord,
    JobRecord,
    LockMechanism,
    PlannedStage,
    PlannedUnitEntry,
    PlanRecord,
    ProgressRecord,
    RunSettings,
    SegmentMarker,
    StudyIdentity,
    UnitRecord,
)
from .store import Store, StoredState
from .verification import Verification, unit_digest, verify_unit
from .writing import UnitWriter, parquet_bytes

__all__ = [
    "FINAL",
    "FORMAT",
    "RESULT",
    "AttemptRecord",
    "AttemptState",
    "ClosedBy",
    "CommitRecord",
    "CoordinatorRecord",
    "DamagedError",
    "JobRecord",
    "LeaseLost",
    "LockMechanism",
    "PlanRecord",
    "PlannedStage",
    "PlannedUnitEntry",
    "ProgressRecord",
    "RunSettings",
    "SegmentMarker",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreReadOnlyError",
    "StoredState",
    "StudyIdentity",
    "SymlinkRefused",
    "UnitHold",
    "UnitRecord",
    "UnitWriter",
    "Verification",
    "output_file",
    "parquet_bytes",
    "segment_name",
    "split_ref",
    "unit_digest",
    "unit_id",
    "verify_unit",
]
