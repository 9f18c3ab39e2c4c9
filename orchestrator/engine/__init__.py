"""The engine: the unit graph and its planning (``graph``: content-hash ids, static stages and planners), the
``coordinator`` that drives it through an executor, the run's ``outcome``, and its ``progress`` on the console."""

from .coordinator import Coordinator, UnitState
from .graph import Planner, PlannerError, Unit, plan_study
from .outcome import Outcome
from .progress import Reporter

__all__ = ["Coordinator", "Outcome", "Planner", "PlannerError", "Reporter", "Unit", "UnitState", "plan_study"]
